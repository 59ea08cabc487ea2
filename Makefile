# keyward — build, run, test, benchmark.
#
#   make run     install missing packages, build, set up the demo deployment in
#                ./.keyward and open the console on it
#   make check   the same setup, then every test: unit suites under a normal and an
#                AddressSanitizer + UBSan build, shell tests under ASan (see check:)

PREFIX    ?= /usr/local
# The system deployment: its home and service account are fixed at build
# time, so that nothing a caller of the set-user-ID binary sets can move them.
SYSTEM_HOME  ?= /var/lib/keyward
SERVICE_USER ?= keyward
DESTDIR   ?=
BUILD     ?= build
SAN       ?=
CC        ?= cc
VERSION   := 0.1.0

# Libraries: pkg-config for every one.  PKCS#11 is header-only (p11-kit);
# the module itself is dlopen()ed at run time so any vendor's works.
# libcurl: `lineage pull` (core/lineage_pull.c).
PKGS      := ncursesw openssl jansson sqlite3 libargon2 libcurl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) p11-kit-1 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

WARN      := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wformat=2 -Werror
HARDEN    := -fstack-protector-strong -fPIE
HARDEN_LD := -pie -Wl,-z,relro,-z,now
ifeq ($(SAN),1)
OPT       := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SAN_LD    := -fsanitize=address,undefined
else
OPT       := -O2 -g -D_FORTIFY_SOURCE=3
SAN_LD    :=
endif
CFLAGS    ?=
CFLAGS    += -std=c11 -D_GNU_SOURCE -DKEYWARD_VERSION='"$(VERSION)"' $(OPT) $(WARN) $(HARDEN) \
             -DKM_SYSTEM_HOME='"$(SYSTEM_HOME)"' -DKM_SERVICE_USER='"$(SERVICE_USER)"' $(PKG_CFLAGS)
# base/ is the shared floor (status values, error messages) of hsm/ and core/.
# hsm/ sees only base/; core/ sees base/ and hsm/; ui/ sees only the public
# core headers, copied into $(BUILD)/include, as sqlite3.h is to sqliteInt.h.
LIB_INC   := -Ibase -Icore -Ihsm
HSM_INC   := -Ibase -Ihsm
UI_INC    := -I$(BUILD)/include -Iui
TEST_INC  := -Ibase -Icore -Ihsm -Iui -Itests
LDFLAGS   += $(HARDEN_LD) $(SAN_LD)
LDLIBS    += $(PKG_LIBS) -ldl -lpthread

LIB_SRC   := $(sort $(wildcard base/*.c) $(wildcard core/*.c) $(wildcard hsm/*.c))
# The core's public API: what ui/ may include.  Everything else in core/ is
# internal (ctx.h, db.h, audit.h, ...).
PUBLIC_HDR := base/km.h core/keyward.h core/authz.h core/config.h core/kek.h core/keystate.h \
              core/asset.h core/auditlog.h core/audit_types.h core/user.h core/demo.h core/secmem.h core/text.h core/caller.h
PUBLIC_HDR += core/request.h
PUBLIC_HDR += core/policy.h core/schedule.h core/job.h core/lineage.h
PUBLIC_HDR += core/auditproof.h
PUBLIC_HDR += core/forward.h
PUBLIC_HDR += core/anomaly.h
PUBLIC_HDR += core/report.h core/atomicfile.h
UI_SRC    := $(sort $(wildcard ui/*.c))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
TH_SRC    := $(sort $(wildcard tests/th_*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
# Helpers that shell tests drive beside the real binary (never installed).
TOOL_SRC  := $(sort $(wildcard tests/tool_*.c))

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
UI_OBJ    := $(UI_SRC:%.c=$(BUILD)/%.o)
TH_OBJ    := $(TH_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
TOOL_BIN  := $(TOOL_SRC:tests/%.c=$(BUILD)/tests/%)
LIB       := $(BUILD)/libkeyward.a
BIN       := $(BUILD)/keyward

DEMO_HOME ?= $(CURDIR)/.keyward

.PHONY: all deps run check test test-bins unit shtest asan bench install uninstall clean demo distclean

# Plain `make` only builds; `make deps`, `run` and `check` install packages.
all: $(BIN)

# ---------------------------------------------------------------- packages
DEB_PKGS := build-essential pkg-config libncurses-dev libssl-dev libcurl4-openssl-dev \
            libjansson-dev libsqlite3-dev check softhsm2 opensc libp11-kit-dev tmux sqlite3 \
            python3 libargon2-dev
# Quick when everything is there: one dpkg-query, no apt-get.
deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing: $$missing"; \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
deps-quiet:
	@[ -n "$(NODEPS)" ] || $(MAKE) -s deps

# ---------------------------------------------------------------- build
$(BUILD)/base/%.o: base/%.c
	@mkdir -p $(dir $@)
	@echo '  CC  $<'
	@$(CC) $(CFLAGS) -Ibase -MMD -MP -c $< -o $@

$(BUILD)/hsm/%.o: hsm/%.c
	@mkdir -p $(dir $@)
	@echo '  CC  $<'
	@$(CC) $(CFLAGS) $(HSM_INC) -MMD -MP -c $< -o $@

$(BUILD)/core/%.o: core/%.c
	@mkdir -p $(dir $@)
	@echo '  CC  $<'
	@$(CC) $(CFLAGS) $(LIB_INC) -MMD -MP -c $< -o $@

PUBLIC_COPY := $(addprefix $(BUILD)/include/,$(notdir $(PUBLIC_HDR)))
$(BUILD)/include/%.h: base/%.h
	@mkdir -p $(dir $@) && cp $< $@
$(BUILD)/include/%.h: core/%.h
	@mkdir -p $(dir $@) && cp $< $@

$(BUILD)/ui/%.o: ui/%.c $(PUBLIC_COPY)
	@mkdir -p $(dir $@)
	@echo '  CC  $<'
	@$(CC) $(CFLAGS) $(UI_INC) -MMD -MP -c $< -o $@

# The installed binary looks for themes under PREFIX; a stamp rebuilds
# everything when PREFIX, SYSTEM_HOME or SERVICE_USER change.
THEMES_DIR := $(PREFIX)/share/keyward/themes
$(BUILD)/ui/theme.o: CFLAGS += -DUI_THEMES_DIR='"$(THEMES_DIR)"'
BUILD_STAMP := $(BUILD)/paths-$(subst /,_,$(PREFIX)-$(SYSTEM_HOME)-$(SERVICE_USER)).stamp
$(LIB_OBJ) $(UI_OBJ): $(BUILD_STAMP)
$(BUILD_STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/paths-*.stamp && touch $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo '  AR  $@'
	@$(AR) rcs $@ $^

$(BIN): $(UI_OBJ) $(LIB)
	@echo '  LD  $@'
	@$(CC) $(LDFLAGS) -o $@ $(UI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/th_%.o: tests/th_%.c
	@mkdir -p $(dir $@)
	@echo '  CC  $<'
	@$(CC) $(CFLAGS) $(CHECK_CFLAGS) $(TEST_INC) -MMD -MP -c $< -o $@

$(BUILD)/tests/test_%: tests/test_%.c $(TH_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@echo '  LD  $@'
	@$(CC) $(CFLAGS) $(CHECK_CFLAGS) $(TEST_INC) -MMD -MP $(LDFLAGS) -o $@ $< $(TH_OBJ) $(LIB) $(LDLIBS) $(CHECK_LIBS)

$(BUILD)/tests/tool_%: tests/tool_%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo '  LD  $@'
	@$(CC) $(CFLAGS) $(LIB_INC) -MMD -MP $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo '  LD  $@'
	@$(CC) $(CFLAGS) $(LIB_INC) -MMD -MP $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

-include $(wildcard $(BUILD)/*/*.d $(BUILD)/*/*/*.d)

# ---------------------------------------------------------------- run
# The demo is disposable: one left half-made by a killed init, or made by an
# older keyward, is moved aside (never deleted) and a fresh one made.
demo: deps-quiet all
	@if [ -d "$(DEMO_HOME)" ] && { [ ! -f "$(DEMO_HOME)/config.json" ] || \
	        ! grep -q '"mode"' "$(DEMO_HOME)/config.json"; }; then \
	    old="$(DEMO_HOME).old-$$(date +%Y%m%d-%H%M%S)"; mv "$(DEMO_HOME)" "$$old"; \
	    echo "the demo in $(DEMO_HOME) was incomplete or from an older keyward: moved it to $$old"; \
	fi
	@if [ ! -f "$(DEMO_HOME)/config.json" ]; then \
	    echo "setting up the demo deployment in $(DEMO_HOME) (demo only: the PIN is in a file)"; \
	    $(BIN) --home "$(DEMO_HOME)" init --demo >/dev/null || exit $$?; \
	fi

run: demo
	$(BIN) --home "$(DEMO_HOME)"

# ---------------------------------------------------------------- tests
# `unit` runs every Check binary; `shtest` drives the real binary (CLI and
# console under tmux).  Each test makes its own token directory and database.
# Suites and shell tests run side by side (each has its own token directory
# and database): JOBS at a time, default the number of cores.
NPROC     := $(shell nproc 2>/dev/null || echo 2)
unit: $(TEST_BIN)
	@BUILD=$(BUILD) JOBS=$${JOBS:-$(NPROC)} bash tests/run-unit-tests.sh $(TEST_BIN)

# SHTESTS: only these shell tests; SHTESTS_EXCEPT: all but these.
SHTESTS        ?=
SHTESTS_EXCEPT ?=
shtest: all $(TOOL_BIN)
	@KEYWARD_BIN=$(CURDIR)/$(BIN) BUILD=$(BUILD) SHTESTS_EXCEPT="$(SHTESTS_EXCEPT)" \
	    bash tests/run-shell-tests.sh $(SHTESTS)

test: all unit shtest

# Everything a test pass needs, so that it can be built in parallel first.
# The fixtures' objects and the public headers' copies are named here so that
# make keeps them: as intermediates it deleted them at the end of this make,
# and `check`'s next makes (unit, shtest) then rebuilt them, relinked every
# suite and recompiled all of ui/, on each build.
test-bins: all $(TEST_BIN) $(TOOL_BIN) $(TH_OBJ) $(PUBLIC_COPY)

# `make check` on two cores: every unit suite under both builds; every
# shell test once, under AddressSanitizer + UBSan (the stricter build),
# except the tests of the shipped binary as a process (make run, the
# set-user-ID install, kill -9 recovery), which run on the normal build.
# The two builds' streams run side by side.  `make test` and `make asan`
# still run everything on one build.
PROCESS_SHTESTS := make_run system_mode job_kill
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# In the shell tests' thousands of short CLI processes the exit-time leak
# scan is a quarter of their cost under ASan; leaks are checked in every unit
# suite (which drives the same core), and `make asan` keeps them on here too.
SAN_ENV_SH := ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
check: deps-quiet
	@$(MAKE) --no-print-directory -j$(NPROC) NODEPS=1 test-bins
	@$(MAKE) --no-print-directory -j$(NPROC) NODEPS=1 BUILD=build-asan SAN=1 test-bins
	@echo "== normal build: unit suites, then $(PROCESS_SHTESTS); beside it, ASan + UBSan: unit suites, then every other shell test"
	@( JOBS=1 LABEL=normal $(MAKE) --no-print-directory NODEPS=1 unit && \
	   JOBS=1 LABEL=normal $(MAKE) --no-print-directory NODEPS=1 shtest SHTESTS="$(PROCESS_SHTESTS)" ) & normal=$$!; \
	( $(SAN_ENV) JOBS=2 LABEL=asan $(MAKE) --no-print-directory NODEPS=1 BUILD=build-asan SAN=1 unit && \
	  $(SAN_ENV_SH) JOBS=4 LABEL=asan $(MAKE) --no-print-directory NODEPS=1 BUILD=build-asan SAN=1 shtest \
	      SHTESTS_EXCEPT="$(PROCESS_SHTESTS)" ); asan=$$?; \
	wait $$normal; normal=$$?; \
	echo "== check: normal build $$([ $$normal = 0 ] && echo passed || echo FAILED), ASan + UBSan build $$([ $$asan = 0 ] && echo passed || echo FAILED)"; \
	[ $$normal = 0 ] && [ $$asan = 0 ]

asan:
	@$(SAN_ENV) $(MAKE) --no-print-directory BUILD=build-asan SAN=1 test

# ---------------------------------------------------------------- bench
# The peers: age, the argon2 tool, and GNU time (peak RSS of each command).
BENCH_PEERS := age:/usr/bin/age argon2:/usr/bin/argon2 time:/usr/bin/time
bench: all $(BENCH_BIN)
	@missing=$$(for p in $(BENCH_PEERS); do [ -x "$${p#*:}" ] || echo "$${p%%:*}"; done); \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get install -y -qq $$missing; \
	fi
	@KEYWARD_BIN=$(CURDIR)/$(BIN) BUILD=$(BUILD) bash bench/run.sh

# ---------------------------------------------------------------- install
# As root: the service account (created when missing), its home (0700) and
# the binary set-user-ID to it.  Then `sudo keyward init --system --admin NAME`.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/keyward/themes $(DESTDIR)$(PREFIX)/share/doc/keyward
	install -m 0644 themes/*.json $(DESTDIR)$(PREFIX)/share/keyward/themes/
	install -m 0644 docs/*.md $(DESTDIR)$(PREFIX)/share/doc/keyward/
	@if [ "$$(id -u)" != 0 ]; then \
	    install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/keyward; \
	    echo "note: not root, so keyward is installed without its service account (personal use only)"; \
	else \
	    id -u $(SERVICE_USER) >/dev/null 2>&1 || \
	        useradd --system --home-dir $(SYSTEM_HOME) --no-create-home --shell /usr/sbin/nologin \
	            --user-group $(SERVICE_USER); \
	    install -d -o $(SERVICE_USER) -g $(SERVICE_USER) -m 0700 $(DESTDIR)$(SYSTEM_HOME); \
	    install -o $(SERVICE_USER) -g $(SERVICE_USER) -m 4755 $(BIN) $(DESTDIR)$(PREFIX)/bin/keyward; \
	    echo "installed set-user-ID to $(SERVICE_USER); next: sudo $(PREFIX)/bin/keyward init --system --admin LOGIN"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/keyward
	rm -rf $(DESTDIR)$(PREFIX)/share/keyward $(DESTDIR)$(PREFIX)/share/doc/keyward

clean:
	rm -rf build build-asan build-system build-dev

distclean: clean
	rm -rf .keyward .keyward.old-*
