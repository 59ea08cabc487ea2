/*
 * cli_init.c — `keyward init`, `status`, `demo`, `user list`, `user add`.
 *
 * init gathers the PINs (environment, file, or a no-echo prompt asked twice)
 * and hands them to km_init_deployment(); PINs live in locked memory and are
 * cleansed on every path.  `init --demo` makes random PINs and writes the
 * user PIN to HOME/demo-pin.DEMO-ONLY: a deliberate, clearly marked
 * convenience for demonstrations that config.json records as pin_file.
 */
#include "cli.h"
#include "request.h"
#include "prompt.h"
#include "demo.h"
#include "anomaly.h"
#include "user.h"
#include "secmem.h"
#include "caller.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define PIN_CAP 256
#define PASS_CAP 1026 /* a passphrase of up to 1024 bytes, its newline and NUL */

/* ---------------------------------------------------------------- secrets */

/* A secret from a file (opened with your rights), the environment, or the
 * terminal (twice when `confirm`).  The file comes first, as for every
 * command.  buf is locked memory of `cap` bytes. */
static km_status secret_get(const char *file, const char *env, const char *hint, const char *question,
                            int confirm, char *buf, size_t cap, km_err *e)
{
	if (file)
		return km_secret_file_read(file, KM_SECRET_CALLER | KM_SECRET_COMMENTS, "secret", buf, cap, e);
	const char *v = env ? getenv(env) : NULL;
	if (v && *v) {
		if (strlen(v) >= cap)
			return km_fail(e, KM_EUSAGE, "%s is longer than %zu bytes", env, cap - 1);
		memcpy(buf, v, strlen(v) + 1);
		return KM_OK;
	}
	km_status st = ui_prompt_secret((void *)hint, question, buf, cap, e);
	if (st != KM_OK || !confirm)
		return st;
	char *again = km_secure_alloc(cap);
	if (!again)
		return km_fail(e, KM_ENOMEM, "out of locked memory");
	char q2[128];
	snprintf(q2, sizeof q2, "%.100s (again)", question);
	st = ui_prompt_secret((void *)hint, q2, again, cap, e);
	if (st == KM_OK && strcmp(buf, again) != 0)
		st = km_fail(e, KM_EINVAL, "the two answers differ; nothing was changed");
	km_secure_free(again, cap);
	if (st != KM_OK)
		OPENSSL_cleanse(buf, cap);
	return st;
}

/* ---------------------------------------------------------------- progress */

/* init --demo's clock: static, because the session it is given to lives
 * until the CLI closes it, after the handler returned. */
static km_demo_timeline timeline;

static void demo_progress(void *c, const char *what, uint64_t done, uint64_t total)
{
	ui_cli *cli = c;
	if (!cli->stderr_tty)
		return;
	fprintf(stderr, "\r\033[Kkeyward: %s %" PRIu64 "/%" PRIu64, what, done, total);
	if (done >= total)
		fputc('\n', stderr);
	fflush(stderr);
}

static km_status demo_fill(ui_cli *cli, uint64_t keys, uint64_t events, km_err *e)
{
	km_demo_opts o = {.extra_keys = keys, .extra_events = events,
	                  .progress = demo_progress, .pctx = cli};
	km_status st = km_demo_fill(cli->ctx, &o, e);
	if (cli->stderr_tty)
		fputs("\r\033[K", stderr);
	return st;
}

/* ---------------------------------------------------------------- init */

km_status ui_cmd_init(ui_cli *cli, const ui_args *a, km_err *e)
{
	int demo = ui_arg_flag(a, "demo"), sys = ui_arg_flag(a, "system");
	char home[PATH_MAX], conf[PATH_MAX], pin_path[PATH_MAX + 32];
	if (demo && sys)
		return km_fail(e, KM_EUSAGE, "init: --demo and --system do not go together");
	if (sys && (cli->home || ui_arg(a, "module") || ui_arg(a, "token") || ui_arg(a, "softhsm2-conf") ||
	            ui_arg(a, "pin-file") || ui_arg(a, "so-pin-file")))
		return km_fail(e, KM_EUSAGE, "init --system takes no paths, module, token or PIN: the "
		               "system deployment lives in %s with a token of its own", KM_SYSTEM_HOME);
	if (sys && !ui_arg(a, "admin"))
		return km_fail(e, KM_EUSAGE, "init --system needs --admin NAME: the login name of the "
		               "first administrator");
	if (!sys && ui_arg(a, "admin"))
		return km_fail(e, KM_EUSAGE, "init: --admin is for --system; a personal deployment's "
		               "first user is you (or --user NAME)");
	km_status st = km_config_home(sys ? NULL : cli->home, home, sizeof home, e);
	if (st != KM_OK)
		return st;

	/* Record absolute paths: config.json resolves relative ones against
	 * the home, not against where init was run. */
	const char *softhsm2_conf = ui_arg(a, "softhsm2-conf");
	if (softhsm2_conf) {
		if (!realpath(softhsm2_conf, conf))
			return km_fail(e, KM_ECONFIG, "SoftHSM2 configuration %s: %s", softhsm2_conf,
			               strerror(errno));
		softhsm2_conf = conf;
	}
	snprintf(pin_path, sizeof pin_path, "%s/config.json", home);
	if (access(pin_path, F_OK) == 0)
		return km_fail(e, KM_EEXISTS, "%s is already a keyward deployment (config.json exists)",
		               home);

	char *pin = km_secure_alloc(PIN_CAP);
	char *so_pin = km_secure_alloc(PIN_CAP);
	char *pass = km_secure_alloc(PASS_CAP);
	if (!pin || !so_pin || !pass) {
		st = km_fail(e, KM_ENOMEM, "out of locked memory");
		goto out;
	}
	km_init_opts o = {
		.home = sys ? NULL : cli->home,
		.module_path = ui_arg(a, "module"),
		.token = ui_arg(a, "token"),
		.softhsm2_conf = softhsm2_conf,
		.mode = sys ? KM_MODE_SYSTEM : KM_MODE_PERSONAL,
		.first_user = sys ? ui_arg(a, "admin") : cli->user,
	};
	/* The cost of every passphrase made here (and kept in config.json for
	 * later ones); the core refuses values below Argon2's floor. */
	uint64_t a2m = 0, a2t = 0;
	if (st == KM_OK)
		st = ui_arg_u64(a, "argon2-memory", 0, 8, 4u * 1024 * 1024, &a2m, e);
	if (st == KM_OK)
		st = ui_arg_u64(a, "argon2-passes", 0, 1, 64, &a2t, e);
	o.argon2_m_kib = (uint32_t)a2m;
	o.argon2_t = (uint32_t)a2t;
	if (st != KM_OK)
		goto out;
	if (demo) {
		snprintf(pin_path, sizeof pin_path, "%s/%s", home, KM_DEMO_PIN_FILE);
		snprintf(pass, PASS_CAP, "%s", KM_DEMO_PASSPHRASE);
		o.first_user_roles = KM_ROLE_OFFICER | KM_ROLE_AUDITOR;
		o.demo = 1;
		/* The demo's history is backdated (demo.h): init and every
		 * session of the fill run on its clock. */
		km_demo_timeline_start(&timeline, km_now());
		o.clock = cli->clock = km_demo_clock;
		o.clock_ctx = cli->clock_ctx = &timeline;
	} else {
		if (!sys)
			st = secret_get(ui_arg(a, "pin-file") ? ui_arg(a, "pin-file") : cli->pin_file,
			                "KEYWARD_PIN", "use --pin-file or set KEYWARD_PIN",
			                "New user PIN", 1, pin, PIN_CAP, e);
		int needs = 0;
		if (st == KM_OK)
			st = km_init_needs_so_pin(&o, &needs, e);
		if (st == KM_OK && needs)
			st = secret_get(ui_arg(a, "so-pin-file"), "KEYWARD_SO_PIN",
			                "use --so-pin-file or set KEYWARD_SO_PIN",
			                "The token will be created: its SO PIN", 1, so_pin, PIN_CAP, e);
		if (st == KM_OK)
			st = secret_get(cli->passphrase_file, "KEYWARD_PASSPHRASE",
			                "use --passphrase-file or set KEYWARD_PASSPHRASE",
			                sys ? "The first administrator's passphrase" : "Your keyward passphrase",
			                1, pass, PASS_CAP, e);
	}
	o.pin = pin;
	o.so_pin = so_pin[0] ? so_pin : NULL;
	o.passphrase = pass;
	if (st == KM_OK)
		st = km_init_deployment(&o, e);
	if (st != KM_OK)
		goto out;

	ui_note("initialised the %s deployment at %s", sys ? "system" : "personal", home);
	if (!demo)
		goto out;
	/* The demo: open it like any later session would and fill it; its
	 * changes step up with the demo passphrase. */
	setenv("KEYWARD_PASSPHRASE", KM_DEMO_PASSPHRASE, 1);
	st = ui_cli_open(cli, pin_path, e);
	if (st == KM_OK)
		st = demo_fill(cli, 0, 0, e);
	/* One scan of the history, as cron would have run it, so that the
	 * anomalies screen opens on the incidents the demo plants
	 * (docs/audit.md) rather than on "run a scan". */
	km_anomaly_scan_result scan = {0};
	if (st == KM_OK)
		st = km_anomaly_scan(cli->ctx, &scan, e);
	if (st == KM_OK)
		ui_note("demo content added (a scan of its history found %" PRIu64 " anomalies); the PIN is in %s "
		        "and every demo person's passphrase is \"%s\" (DEMO ONLY)",
		        scan.anomalies, pin_path, KM_DEMO_PASSPHRASE);
out:
	km_secure_free(pass, PASS_CAP);
	km_secure_free(so_pin, PIN_CAP);
	km_secure_free(pin, PIN_CAP);
	return st;
}

/* ---------------------------------------------------------------- status */

km_status ui_cmd_status(ui_cli *cli, const ui_args *a, km_err *e)
{
	(void)a;
	km_status_info s;
	km_status st = km_status_get(cli->ctx, &s, e);
	if (st != KM_OK)
		return st;
	const km_actor *who = km_actor_get(cli->ctx);
	char roles[128], t[32];
	km_roles_format(who->roles, roles, sizeof roles);
	if (cli->json) {
		json_t *o = json_object();
		ui_json_set_text(o, "home", s.home);
		ui_json_set_text(o, "deployment_id", s.deployment_id);
		ui_json_set_text(o, "token", s.token_label);
		ui_json_set_text(o, "token_description", s.token_desc);
		json_object_set_new(o, "hsm_logged_in", json_boolean(s.hsm_logged_in));
		ui_json_set_text(o, "user", who->name);
		json_object_set_new(o, "roles", json_string(roles));
		ui_json_set_text(o, "os_user", who->os_user);
		json_object_set_new(o, "mode", json_string(s.mode == KM_MODE_SYSTEM ? "system" : "personal"));
		ui_json_set_text(o, "trust_boundary", s.boundary);
		ui_json_set_text(o, "memory_lock", s.memlock);
		json_object_set_new(o, "keys", json_integer((json_int_t)s.keys));
		json_object_set_new(o, "versions", json_integer((json_int_t)s.versions));
		json_object_set_new(o, "assets", json_integer((json_int_t)s.assets));
		json_object_set_new(o, "audit_events", json_integer((json_int_t)s.audit_events));
		json_object_set_new(o, "audit_head_size", json_integer((json_int_t)s.audit_head_size));
		json_object_set_new(o, "audit_head_time", ui_json_time(s.audit_head_time));
		json_object_set_new(o, "last_verified",
		                    s.last_verified[0] ? ui_json_text(s.last_verified) : json_null());
		json_object_set_new(o, "last_verified_intact",
		                    s.last_verified[0] ? json_boolean(s.last_verified_intact)
		                                       : json_null());
		json_object_set_new(o, "keys_due", json_integer((json_int_t)s.keys_due));
		json_object_set_new(o, "keys_overdue", json_integer((json_int_t)s.keys_overdue));
		json_t *sinks = json_object();
		for (uint32_t i = 0; i < s.sinks; i++)
			json_object_set_new(sinks, s.sink[i].name, json_pack("{s:I}", "lag", (json_int_t)s.sink[i].lag));
		json_object_set_new(o, "audit_sinks", sinks);
		if (s.sinks_problem[0])
			ui_json_set_text(o, "audit_sinks_problem", s.sinks_problem);
		return ui_json_print(o, e);
	}
	ui_print_line("deployment: %s (%s)", s.home, s.deployment_id);
	ui_print_line("token:      %s (%s)%s", s.token_label, s.token_desc,
	              s.hsm_logged_in ? ", logged in" : "");
	ui_print_line("user:       %s (%s)%s%s", who->name, roles[0] ? roles : "no roles",
	              strcmp(who->os_user, who->name) ? ", OS user " : "",
	              strcmp(who->os_user, who->name) ? who->os_user : "");
	ui_print_line("mode:       %s", s.boundary);
	ui_print_line("memory:     %s", s.memlock);
	printf("keys:       %" PRIu64 " (%" PRIu64 " versions), %" PRIu64 " due, %" PRIu64
	       " overdue\n", s.keys, s.versions, s.keys_due, s.keys_overdue);
	printf("assets:     %" PRIu64 "\n", s.assets);
	printf("audit log:  %" PRIu64 " events; newest signed head: size %" PRIu64 " at %s\n",
	       s.audit_events, s.audit_head_size, ui_time_str(s.audit_head_time, t));
	if (s.last_verified[0])
		ui_print_line("verified:   %s, %s", s.last_verified,
		              s.last_verified_intact ? "intact" : "FAILED");
	else
		printf("verified:   never (run `keyward audit verify`)\n");
	for (uint32_t i = 0; i < s.sinks; i++)
		printf("%s %s: %" PRIu64 " entries not yet delivered\n", i ? "           " : "forwarding:",
		       s.sink[i].name, s.sink[i].lag);
	if (s.sinks_problem[0])
		ui_print_line("forwarding: %s", s.sinks_problem);
	return KM_OK;
}

/* ---------------------------------------------------------------- demo */

km_status ui_cmd_demo(ui_cli *cli, const ui_args *a, km_err *e)
{
	uint64_t keys, events;
	km_status st = ui_arg_u64(a, "keys", 0, 0, 1000000, &keys, e);
	if (st == KM_OK)
		st = ui_arg_u64(a, "events", 0, 0, 100000000, &events, e);
	if (st == KM_OK)
		st = demo_fill(cli, keys, events, e);
	if (st == KM_OK)
		ui_note("demo content added");
	return st;
}

/* ---------------------------------------------------------------- users */

typedef struct user_list {
	json_t *arr;
	ui_table *t;
	km_status st;
} user_list;

static void user_state(const km_user_info *u, char *buf, size_t cap)
{
	char t[32];
	if (!u->sealed)
		snprintf(buf, cap, "DAMAGED (MAC fails)");
	else if (u->disabled)
		snprintf(buf, cap, "locked");
	else if (u->locked_until > km_now())
		snprintf(buf, cap, "locked out until %s", ui_time_str(u->locked_until, t));
	else
		snprintf(buf, cap, "%s%s", u->has_passphrase ? "passphrase" : "no passphrase",
		         u->totp ? "+totp" : "");
}

static int user_cb(void *c, const km_user_info *u)
{
	user_list *l = c;
	char roles[128], created[32], state[64];
	km_roles_format(u->roles, roles, sizeof roles);
	user_state(u, state, sizeof state);
	if (l->arr) {
		json_t *o = json_object();
		ui_json_set_text(o, "name", u->name);
		json_object_set_new(o, "roles", json_string(roles));
		ui_json_set_text(o, "scopes", u->scopes);
		json_object_set_new(o, "passphrase", json_boolean(u->has_passphrase));
		json_object_set_new(o, "totp", json_boolean(u->totp));
		json_object_set_new(o, "locked", json_boolean(u->disabled));
		json_object_set_new(o, "locked_until", ui_json_time(u->locked_until));
		json_object_set_new(o, "sealed", json_boolean(u->sealed));
		json_object_set_new(o, "created", ui_json_time(u->created));
		ui_json_set_text(o, "created_by", u->created_by);
		return json_array_append_new(l->arr, o) != 0;
	}
	const char *cells[] = {u->name, roles, u->scopes[0] ? u->scopes : "-", state,
	                       ui_time_str(u->created, created), u->created_by};
	l->st = ui_table_add(l->t, cells, NULL);
	return l->st != KM_OK;
}

km_status ui_cmd_user_list(ui_cli *cli, const ui_args *a, km_err *e)
{
	(void)a;
	static const char *const hdr[] = {"USER", "ROLES", "SCOPES", "CREDENTIAL", "CREATED", "BY"};
	user_list l = {0};
	if (cli->json)
		l.arr = json_array();
	else
		l.t = ui_table_new(KM_ARRAY_LEN(hdr), hdr);
	if (!l.arr && !l.t)
		return km_fail(e, KM_ENOMEM, "out of memory");
	km_status st = km_user_list(cli->ctx, user_cb, &l, e);
	if (st == KM_OK && l.st != KM_OK)
		st = km_fail(e, l.st, "out of memory listing users");
	if (st == KM_OK)
		return ui_listing_emit(l.arr, l.t, e);
	json_decref(l.arr);
	ui_table_free(l.t);
	return st;
}

/* A new passphrase for someone (yourself, or a user being enrolled):
 * --new-passphrase-file, KEYWARD_NEW_PASSPHRASE, or the terminal, twice. */
static km_status new_passphrase(const ui_args *a, const char *whose, char *buf, km_err *e)
{
	char q[128];
	snprintf(q, sizeof q, "New passphrase for %.64s", whose);
	return secret_get(ui_arg(a, "new-passphrase-file"), "KEYWARD_NEW_PASSPHRASE",
	                  "use --new-passphrase-file or set KEYWARD_NEW_PASSPHRASE", q, 1, buf, PASS_CAP, e);
}

km_status ui_cmd_user_add(ui_cli *cli, const ui_args *a, km_err *e)
{
	const char *rolestr = ui_arg(a, "role");
	if (!rolestr || !*rolestr)
		return km_fail(e, KM_EUSAGE, "user add: --role R[,R] is required");
	unsigned roles;
	km_status st = km_roles_parse(rolestr, &roles, e);
	if (st != KM_OK)
		return st;
	const char *scopes = ui_arg(a, "scope");
	/* Services never step up, so they get no passphrase unless asked. */
	int want_pass = !(roles & KM_ROLE_SERVICE) || ui_arg(a, "new-passphrase-file");
	char *pass = km_secure_alloc(PASS_CAP);
	if (!pass)
		return km_fail(e, KM_ENOMEM, "out of locked memory");
	/* Your own step-up first: nobody types a new passphrase for an
	 * enrolment they may not make. */
	char obj[96];
	snprintf(obj, sizeof obj, "user:%.63s", a->pos[0]);
	st = km_authorize(cli->ctx, KM_ACT_USER_ADD, obj, e);
	if (st == KM_OK && want_pass)
		st = new_passphrase(a, a->pos[0], pass, e);
	char id[KM_REQUEST_ID_MAX] = "";
	if (st == KM_OK)
		st = km_request_user_add(cli->ctx, a->pos[0], roles, scopes, want_pass ? pass : NULL,
		                         ui_arg(a, "reason"), id, e);
	km_secure_free(pass, PASS_CAP);
	if (st != KM_OK)
		return st;
	char fmt[128];
	km_roles_format(roles, fmt, sizeof fmt);
	if (cli->json) {
		json_t *o = json_object();
		ui_json_set_text(o, "name", a->pos[0]);
		json_object_set_new(o, "roles", json_string(fmt));
		ui_json_set_text(o, "scopes", scopes ? scopes : "");
		json_object_set_new(o, "request", id[0] ? json_string(id) : json_null());
		return ui_json_print(o, e);
	}
	if (id[0]) {
		ui_print_line("request %s opened: enrol %s as %s; a second administrator approves it "
		              "(`keyward request approve %s`), then `keyward request execute %s`", id, a->pos[0],
		              fmt, id, id);
		return KM_OK;
	}
	ui_print_line("added user %s (%s)%s%s (no other administrator could approve, so at once)", a->pos[0],
	              fmt, scopes ? " with scopes " : "", scopes ? scopes : "");
	return KM_OK;
}

km_status ui_cmd_user_passwd(ui_cli *cli, const ui_args *a, km_err *e)
{
	const km_actor *who = km_actor_get(cli->ctx);
	char *pass = km_secure_alloc(PASS_CAP);
	if (!pass)
		return km_fail(e, KM_ENOMEM, "out of locked memory");
	char obj[96];
	snprintf(obj, sizeof obj, "user:%s", who->name);
	km_status st = km_authorize(cli->ctx, KM_ACT_USER_PASSWD, obj, e);
	if (st == KM_OK)
		st = new_passphrase(a, who->name, pass, e);
	if (st == KM_OK)
		st = km_user_passwd(cli->ctx, pass, e);
	km_secure_free(pass, PASS_CAP);
	if (st == KM_OK)
		ui_print_line("changed the passphrase of %s; the signing key stays the same", who->name);
	return st;
}

km_status ui_cmd_user_totp(ui_cli *cli, const ui_args *a, km_err *e)
{
	const char *what = a->pos[0];
	if (strcmp(what, "enrol") == 0 || strcmp(what, "enroll") == 0) {
		if (a->npos > 1)
			return km_fail(e, KM_EUSAGE, "user totp enrol: you can only enrol your own second factor");
		char uri[256], secret[128];
		km_status st = km_user_totp_enrol(cli->ctx, uri, sizeof uri, secret, sizeof secret, e);
		if (st != KM_OK)
			return st;
		/* Shown once, on purpose: the person types it into an
		 * authenticator.  Formatted on the stack and written with
		 * write(2), not through a Jansson document or stdio, whose heap
		 * buffers would keep a copy of the secret uncleansed.  Both
		 * strings are JSON-safe ASCII: base32, and a URI of base32, a
		 * validated user name and fixed words. */
		char out[512];
		int n = cli->json
		            ? snprintf(out, sizeof out, "{\n  \"otpauth_uri\": \"%s\",\n  \"secret\": \"%s\"\n}\n", uri,
		                       secret)
		            : snprintf(out, sizeof out,
		                       "second factor enrolled; add it to your authenticator app now (shown once):\n"
		                       "  secret: %s\n  uri:    %s\n", secret, uri);
		fflush(stdout);
		size_t left = n > 0 && (size_t)n < sizeof out ? (size_t)n : 0;
		const char *p = out;
		while (left > 0) {
			ssize_t w = write(STDOUT_FILENO, p, left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			p += w;
			left -= (size_t)w;
		}
		OPENSSL_cleanse(out, sizeof out);
		OPENSSL_cleanse(uri, sizeof uri);
		OPENSSL_cleanse(secret, sizeof secret);
		if (left > 0 || n <= 0 || (size_t)n >= sizeof out)
			return km_fail(e, KM_EIO, "the second factor was enrolled, but its secret could not be "
			               "written out: disable it (user totp disable) and enrol again");
		return st;
	}
	if (strcmp(what, "disable") == 0) {
		const char *name = a->npos > 1 ? a->pos[1] : NULL;
		km_status st = km_user_totp_disable(cli->ctx, name, e);
		if (st == KM_OK)
			ui_print_line("second factor of %s removed", name ? name : km_actor_get(cli->ctx)->name);
		return st;
	}
	return km_fail(e, KM_EUSAGE, "user totp: \"%s\" is neither enrol nor disable", what);
}

km_status ui_cmd_user_lock(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_status st = km_user_lock(cli->ctx, a->pos[0], e);
	if (st == KM_OK)
		ui_print_line("locked %s: every session of theirs is refused until `user unlock`", a->pos[0]);
	return st;
}

km_status ui_cmd_user_unlock(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_status st = km_user_unlock(cli->ctx, a->pos[0], e);
	if (st == KM_OK)
		ui_print_line("unlocked %s", a->pos[0]);
	return st;
}

km_status ui_cmd_user_pubkey(ui_cli *cli, const ui_args *a, km_err *e)
{
	char *pem = NULL;
	km_status st = km_user_pubkey_pem(cli->ctx, a->npos ? a->pos[0] : km_actor_get(cli->ctx)->name,
	                                  &pem, e);
	if (st == KM_OK)
		fputs(pem, stdout);
	free(pem);
	return st;
}
