/*
 * hsm.c — loading a PKCS#11 module, finding keyward's token, sessions and
 * login, and creating a token.
 *
 * The module is dlopen()ed from a configured path, never linked, so any
 * vendor's library works.  A token is found by its label or an RFC 7512 URI,
 * never by slot number: SoftHSM2 renumbers slots when tokens are added.
 * This file must never put a PIN in a message, never keep a PIN after the
 * call that used it, and never call C_Finalize under another open handle.
 */
#include "hsm_int.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define P11_LABEL_LEN 32
/* SoftHSM2 answers concurrent starters on one token directory with a
 * transient CKR_GENERAL_ERROR (SoftHSMv2 issue 757): 4 tries, 20/40/80 ms. */
#define P11_BACKOFF_MS 20

/* ---------------------------------------------------------------- modules */

typedef struct p11_module {
	void *lib;
	CK_FUNCTION_LIST_PTR fl;
} p11_module;

/* PKCS#11 initialisation is per process, not per handle: two hsm handles on
 * one module share it, and C_Finalize from one would kill the other's
 * session.  So count keyward's users of each module and finalise only when
 * the last one goes, and only if keyward's C_Initialize is the one that
 * succeeded (CKR_CRYPTOKI_ALREADY_INITIALIZED means someone else owns it).
 * The pid makes a forked child start its own count. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct live_module {
	CK_FUNCTION_LIST_PTR fl;
	pid_t pid;
	unsigned users;
	int owner;
} live[8];

static struct live_module *live_find(CK_FUNCTION_LIST_PTR fl)
{
	pid_t me = getpid();
	for (size_t i = 0; i < KM_ARRAY_LEN(live); i++)
		if (live[i].users > 0 && live[i].fl == fl && live[i].pid == me)
			return &live[i];
	return NULL;
}

static void live_acquire(CK_FUNCTION_LIST_PTR fl, int initialised_by_us)
{
	pthread_mutex_lock(&live_lock);
	struct live_module *m = live_find(fl);
	if (m) {
		m->users++;
		/* CKR_OK with users still counted: someone finalised the module
		 * behind our back and we just initialised it again, so the
		 * final C_Finalize is ours now. */
		if (initialised_by_us)
			m->owner = 1;
	} else {
		for (size_t i = 0; i < KM_ARRAY_LEN(live); i++) {
			if (live[i].users == 0 || live[i].pid != getpid()) {
				live[i] = (struct live_module){fl, getpid(), 1, initialised_by_us};
				break;
			}
		}
		/* A full table means nine modules at once; we then never
		 * finalise, which only costs memory at exit. */
	}
	pthread_mutex_unlock(&live_lock);
}

/* Returns 1 if the caller is the last user and must C_Finalize. */
static int live_release(CK_FUNCTION_LIST_PTR fl)
{
	int finalise = 0;
	pthread_mutex_lock(&live_lock);
	struct live_module *m = live_find(fl);
	if (m && --m->users == 0)
		finalise = m->owner;
	pthread_mutex_unlock(&live_lock);
	return finalise;
}

static int live_others(CK_FUNCTION_LIST_PTR fl)
{
	pthread_mutex_lock(&live_lock);
	struct live_module *m = live_find(fl);
	int others = m && m->users > 1;
	pthread_mutex_unlock(&live_lock);
	return others;
}

void hsm_backoff(int attempt)
{
	if (attempt <= 0)
		return;
	long ms = P11_BACKOFF_MS << (attempt - 1);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* A bare CKR_GENERAL_ERROR from SoftHSM2's C_Initialize usually means its
 * configuration is wrong.  Look for the two usual causes and name them;
 * KM_OK means we found nothing wrong. */
static km_status softhsm_conf_problem(km_err *e)
{
	const char *conf = getenv("SOFTHSM2_CONF");
	char line[1024];
	char tokendir[512] = "";
	struct stat st;
	FILE *f;

	if (!conf || !*conf)
		return KM_OK;
	f = fopen(conf, "r");
	if (!f)
		return km_fail(e, KM_ECONFIG, "SoftHSM2 configuration %s (SOFTHSM2_CONF) cannot be read: %s",
		               conf, strerror(errno));
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return km_fail(e, KM_ECONFIG, "SoftHSM2 configuration %s (SOFTHSM2_CONF) is not a regular file",
		               conf);
	}
	while (fgets(line, sizeof line, f)) {
		const char *key = "directories.tokendir";
		char *p = line + strspn(line, " \t");
		if (strncmp(p, key, strlen(key)) != 0)
			continue;
		p += strlen(key);
		p += strspn(p, " \t");
		if (*p != '=')
			continue;
		p++;
		p += strspn(p, " \t");
		size_t n = strcspn(p, "\r\n");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n >= sizeof tokendir)
			n = sizeof tokendir - 1;
		memcpy(tokendir, p, n);
		tokendir[n] = '\0';
	}
	fclose(f);

	if (!tokendir[0])
		return km_fail(e, KM_ECONFIG, "SoftHSM2 configuration %s sets no directories.tokendir", conf);
	if (stat(tokendir, &st) != 0)
		return km_fail(e, KM_ECONFIG, "SoftHSM2 token directory %s (directories.tokendir in %s) "
		               "does not exist: %s", tokendir, conf, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return km_fail(e, KM_ECONFIG, "SoftHSM2 token directory %s (directories.tokendir in %s) "
		               "is not a directory", tokendir, conf);
	if (access(tokendir, R_OK | W_OK | X_OK) != 0)
		return km_fail(e, KM_ECONFIG, "SoftHSM2 token directory %s (directories.tokendir in %s) "
		               "is not writable by this user: %s", tokendir, conf, strerror(errno));
	return KM_OK;
}

static void append_rv(km_err *e, const char *fn, CK_RV rv)
{
	if (e) {
		size_t n = strlen(e->msg);
		snprintf(e->msg + n, sizeof e->msg - n, " (%s: %s)", fn, hsm_rv_name(rv));
	}
}

static CK_RV initialise(CK_FUNCTION_LIST_PTR fl)
{
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv = CKR_GENERAL_ERROR;

	memset(&args, 0, sizeof args);
	args.flags = CKF_OS_LOCKING_OK; /* the module may use threads; let it lock natively */
	for (int i = 0; i < HSM_TRIES; i++) {
		hsm_backoff(i);
		rv = fl->C_Initialize(&args);
		if (rv != CKR_GENERAL_ERROR)
			break;
	}
	return rv;
}

static km_status module_load(const char *path, p11_module *m, km_err *e)
{
	CK_C_GetFunctionList get_list;
	struct stat sb;
	void *sym;
	CK_RV rv;

	memset(m, 0, sizeof *m);
	if (!path || !*path)
		return km_fail(e, KM_ECONFIG, "no PKCS#11 module configured");
	if (stat(path, &sb) != 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return km_fail(e, KM_ECONFIG, "PKCS#11 module not found: %s", path);
		return km_fail(e, KM_ECONFIG, "PKCS#11 module %s cannot be read: %s", path, strerror(errno));
	}
	m->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!m->lib)
		return km_fail(e, KM_ECONFIG, "PKCS#11 module %s cannot be loaded: %s", path, dlerror());

	sym = dlsym(m->lib, "C_GetFunctionList");
	if (!sym) {
		dlclose(m->lib);
		m->lib = NULL;
		return km_fail(e, KM_ECONFIG, "%s is not a PKCS#11 library (it has no C_GetFunctionList)",
		               path);
	}
	_Static_assert(sizeof get_list == sizeof sym, "function and data pointers differ in size");
	memcpy(&get_list, &sym, sizeof get_list); /* ISO C has no object-to-function cast */

	rv = get_list(&m->fl);
	if (rv != CKR_OK || !m->fl) {
		dlclose(m->lib);
		m->lib = NULL;
		return km_fail(e, KM_EHSM, "PKCS#11 module %s gave no function list (C_GetFunctionList: %s)",
		               path, hsm_rv_name(rv));
	}

	rv = initialise(m->fl);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		km_status st;
		if (rv == CKR_GENERAL_ERROR && softhsm_conf_problem(e) != KM_OK) {
			st = KM_ECONFIG;
			append_rv(e, "C_Initialize", rv);
		} else {
			char what[600];
			snprintf(what, sizeof what, "PKCS#11 module %s failed to initialise", path);
			st = hsm_p11_fail(e, rv, what, "C_Initialize");
		}
		dlclose(m->lib);
		memset(m, 0, sizeof *m);
		return st;
	}
	live_acquire(m->fl, rv == CKR_OK);
	return KM_OK;
}

static void module_unload(p11_module *m)
{
	if (!m->lib)
		return;
	if (m->fl && live_release(m->fl))
		m->fl->C_Finalize(NULL);
	dlclose(m->lib);
	memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- tokens */

/* CK_TOKEN_INFO text fields are fixed-width and blank-padded (some modules
 * pad with NULs): copy them as trimmed C strings. */
static void p11_text(char *dst, size_t cap, const unsigned char *src, size_t len)
{
	size_t n = len < cap - 1 ? len : cap - 1;
	memcpy(dst, src, n);
	while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\0'))
		n--;
	dst[n] = '\0';
}

/* What the configuration names: a label is a URI with only token= set. */
typedef struct token_query {
	hsm_uri uri;
	char shown[160]; /* for messages; never the URI's query part */
} token_query;

static km_status token_query_parse(const char *token, token_query *q, km_err *e)
{
	memset(q, 0, sizeof *q);
	q->uri.slot_id = -1;
	if (!token || !*token)
		return km_fail(e, KM_ECONFIG, "no HSM token configured (give a label or a pkcs11: URI)");
	if (strncasecmp(token, "pkcs11:", 7) == 0) {
		km_status st = hsm_uri_parse(token, &q->uri, e);
		if (st != KM_OK)
			return st;
		/* Finding and creating a token never needs the URI's pin-value:
		 * the caller logs in with hsm_login.  Do not carry it around. */
		hsm_uri_cleanse(&q->uri);
		/* The query may hold pin-value: keep it out of every message. */
		snprintf(q->shown, sizeof q->shown, "matching %.*s", (int)strcspn(token, "?"), token);
		return KM_OK;
	}
	if (strlen(token) > P11_LABEL_LEN)
		return km_fail(e, KM_EINVAL, "token label \"%.32s...\" is longer than %d bytes", token,
		               P11_LABEL_LEN);
	memcpy(q->uri.token, token, strlen(token) + 1);
	snprintf(q->shown, sizeof q->shown, "labelled \"%s\"", token);
	return KM_OK;
}

static const char *module_path_of(const hsm_config *cfg, const token_query *q)
{
	if (cfg->module_path && *cfg->module_path)
		return cfg->module_path;
	return q->uri.module_path[0] ? q->uri.module_path : NULL;
}

static km_status slot_list(CK_FUNCTION_LIST_PTR fl, CK_SLOT_ID **slots, CK_ULONG *n, km_err *e)
{
	*slots = NULL;
	*n = 0;
	/* A token can appear between the two calls; try again then. */
	for (int tries = 0; tries < 3; tries++) {
		CK_ULONG count = 0;
		CK_RV rv = fl->C_GetSlotList(CK_TRUE, NULL, &count);
		if (rv != CKR_OK)
			return hsm_p11_fail(e, rv, "listing the HSM's slots failed", "C_GetSlotList");
		CK_SLOT_ID *list = calloc(count ? count : 1, sizeof *list);
		if (!list)
			return km_fail(e, KM_ENOMEM, "out of memory listing the HSM's slots");
		rv = fl->C_GetSlotList(CK_TRUE, list, &count);
		if (rv == CKR_OK) {
			*slots = list;
			*n = count;
			return KM_OK;
		}
		free(list);
		if (rv != CKR_BUFFER_TOO_SMALL)
			return hsm_p11_fail(e, rv, "listing the HSM's slots failed", "C_GetSlotList");
	}
	return km_fail(e, KM_EHSM, "the HSM's slot list kept changing while it was read");
}

static int token_matches(const hsm_uri *q, CK_SLOT_ID slot, const CK_TOKEN_INFO *ti)
{
	char label[33], manufacturer[33], model[17], serial[17];

	p11_text(label, sizeof label, ti->label, sizeof ti->label);
	p11_text(manufacturer, sizeof manufacturer, ti->manufacturerID, sizeof ti->manufacturerID);
	p11_text(model, sizeof model, ti->model, sizeof ti->model);
	p11_text(serial, sizeof serial, ti->serialNumber, sizeof ti->serialNumber);
	/* An empty URI attribute means "not given". */
	return (!q->token[0] || strcmp(q->token, label) == 0) &&
	       (!q->manufacturer[0] || strcmp(q->manufacturer, manufacturer) == 0) &&
	       (!q->model[0] || strcmp(q->model, model) == 0) &&
	       (!q->serial[0] || strcmp(q->serial, serial) == 0) &&
	       (q->slot_id < 0 || (CK_SLOT_ID)q->slot_id == slot);
}

typedef struct token_scan {
	CK_SLOT_ID slot;  /* the first match */
	unsigned matches;
	char labels[300]; /* every initialised token seen, for "not found" */
	int labels_cut;
} token_scan;

static void scan_note_label(token_scan *sc, const CK_TOKEN_INFO *ti)
{
	char label[33];
	size_t used = strlen(sc->labels);

	if (sc->labels_cut)
		return;
	p11_text(label, sizeof label, ti->label, sizeof ti->label);
	/* Room for ", \"label\"" and a later ", ...". */
	if (used + strlen(label) + 4 + 5 >= sizeof sc->labels) {
		strcat(sc->labels, ", ...");
		sc->labels_cut = 1;
		return;
	}
	snprintf(sc->labels + used, sizeof sc->labels - used, "%s\"%s\"", used ? ", " : "", label);
}

/* Look at every initialised token; count those that match q. */
static km_status token_scan_run(CK_FUNCTION_LIST_PTR fl, const hsm_uri *q, token_scan *sc, km_err *e)
{
	CK_SLOT_ID *slots;
	CK_ULONG n;
	km_status st;

	memset(sc, 0, sizeof *sc);
	st = slot_list(fl, &slots, &n, e);
	if (st != KM_OK)
		return st;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		CK_RV rv = fl->C_GetTokenInfo(slots[i], &ti);
		if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_TOKEN_NOT_RECOGNIZED)
			continue; /* removed since the slot list was read */
		if (rv != CKR_OK) {
			free(slots);
			return hsm_p11_fail(e, rv, "reading an HSM token's description failed", "C_GetTokenInfo");
		}
		if (!(ti.flags & CKF_TOKEN_INITIALIZED))
			continue; /* a free slot has no meaningful label */
		scan_note_label(sc, &ti);
		if (token_matches(q, slots[i], &ti) && sc->matches++ == 0)
			sc->slot = slots[i];
	}
	free(slots);
	return KM_OK;
}

static km_status token_locate(CK_FUNCTION_LIST_PTR fl, const token_query *q, CK_SLOT_ID *slot, km_err *e)
{
	token_scan sc;
	km_status st = KM_OK;

	/* SoftHSM2 re-reads its token files on these calls, and a process
	 * writing them at the same moment makes it answer CKR_GENERAL_ERROR
	 * or show no token at all (SoftHSMv2 issue 757): look again, with
	 * backoff, before believing it. */
	for (int i = 0; i < HSM_TRIES; i++) {
		hsm_backoff(i);
		st = token_scan_run(fl, &q->uri, &sc, e);
		if (st == KM_OK && sc.matches > 0)
			break;
		if (st != KM_OK && st != KM_EHSM)
			return st;
	}
	if (st != KM_OK)
		return st;
	if (sc.matches == 0)
		return km_fail(e, KM_ENOTFOUND, "no HSM token %s; tokens found: %s", q->shown,
		               sc.labels[0] ? sc.labels : "none");
	/* Two tokens with one label: guessing could wrap keys under the wrong root. */
	if (sc.matches > 1)
		return km_fail(e, KM_ECONFIG, "%u HSM tokens %s; name one with a pkcs11: URI that adds serial=",
		               sc.matches, q->shown);
	*slot = sc.slot;
	return KM_OK;
}

static CK_RV open_session(CK_FUNCTION_LIST_PTR fl, CK_SLOT_ID slot, CK_SESSION_HANDLE *s)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	for (int i = 0; i < HSM_TRIES; i++) {
		hsm_backoff(i);
		rv = fl->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s);
		if (rv != CKR_GENERAL_ERROR)
			break;
	}
	return rv;
}

/* ---------------------------------------------------------------- handles */

km_status hsm_open(const hsm_config *cfg, hsm **out, km_err *e)
{
	token_query q;
	p11_module m;
	CK_SLOT_ID slot = 0;
	CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
	km_status st;
	CK_RV rv;
	hsm *h;

	if (!out || !cfg)
		return km_fail(e, KM_EUSAGE, "hsm_open: NULL argument");
	*out = NULL;
	st = token_query_parse(cfg->token, &q, e);
	if (st != KM_OK)
		return st;
	st = module_load(module_path_of(cfg, &q), &m, e);
	if (st != KM_OK)
		return st;
	st = token_locate(m.fl, &q, &slot, e);
	if (st != KM_OK) {
		module_unload(&m);
		return st;
	}
	rv = open_session(m.fl, slot, &session);
	if (rv != CKR_OK) {
		module_unload(&m);
		return hsm_p11_fail(e, rv, "opening a session on the HSM token failed", "C_OpenSession");
	}
	h = calloc(1, sizeof *h);
	if (!h) {
		m.fl->C_CloseSession(session);
		module_unload(&m);
		return km_fail(e, KM_ENOMEM, "out of memory opening the HSM");
	}
	h->lib = m.lib;
	h->fl = m.fl;
	h->slot = slot;
	h->session = session;
	h->have_session = 1;
	*out = h;
	return KM_OK;
}

km_status hsm_login(hsm *h, const char *pin, km_err *e)
{
	CK_RV rv;

	if (!h || !h->have_session)
		return km_fail(e, KM_EUSAGE, "hsm_login: no open HSM session");
	if (!pin)
		return km_fail(e, KM_EUSAGE, "HSM login needs a PIN");
	if (h->logged_in)
		return KM_OK;
	/* CKR_GENERAL_ERROR here is the same concurrent-reader race as in
	 * token_locate; a wrong PIN has its own codes and is never retried. */
	for (int i = 0; i < HSM_TRIES; i++) {
		hsm_backoff(i);
		rv = h->fl->C_Login(h->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
		/* The token was found initialised a moment ago, so "no user PIN"
		 * is the half-rewritten token file of that race, too. */
		if (rv != CKR_GENERAL_ERROR && rv != CKR_USER_PIN_NOT_INITIALIZED)
			break;
	}
	/* Login state is per application, so another handle may have done it. */
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
		return hsm_p11_fail(e, rv, "HSM login failed", "C_Login");
	h->logged_in = 1;
	return KM_OK;
}

void hsm_close(hsm *h)
{
	p11_module m;

	if (!h)
		return;
	if (h->fl && h->have_session) {
		/* C_Logout logs out every session of this application on the
		 * token, so with another keyward handle open we only close ours;
		 * the token logs out when its last session closes. */
		if (h->logged_in && !live_others(h->fl))
			h->fl->C_Logout(h->session);
		h->fl->C_CloseSession(h->session);
	}
	m.lib = h->lib;
	m.fl = h->fl;
	module_unload(&m);
	free(h);
}

km_status hsm_token_exists(const hsm_config *cfg, int *found, km_err *e)
{
	token_query q;
	token_scan sc;
	p11_module m;
	km_status st;

	if (!cfg || !found)
		return km_fail(e, KM_EUSAGE, "hsm_token_exists: NULL argument");
	*found = 0;
	st = token_query_parse(cfg->token, &q, e);
	if (st != KM_OK)
		return st;
	st = module_load(module_path_of(cfg, &q), &m, e);
	if (st != KM_OK)
		return st;
	st = token_scan_run(m.fl, &q.uri, &sc, e);
	if (st == KM_OK)
		*found = sc.matches > 0;
	module_unload(&m);
	return st;
}

/* A PIN the token will refuse is better caught before C_InitToken, which
 * cannot be undone. */
static km_status pin_length_ok(const CK_TOKEN_INFO *ti, const char *pin, const char *who, km_err *e)
{
	CK_ULONG len = (CK_ULONG)strlen(pin);
	CK_ULONG lo = ti->ulMinPinLen, hi = ti->ulMaxPinLen;

	if (lo == CK_UNAVAILABLE_INFORMATION)
		lo = 1;
	if (hi == CK_UNAVAILABLE_INFORMATION || hi == CK_EFFECTIVELY_INFINITE)
		hi = (CK_ULONG)-1;
	if (len < lo || len > hi)
		return km_fail(e, KM_EINVAL, "the %s PIN must be %lu to %lu characters long", who, lo, hi);
	return KM_OK;
}

/* Log in as SO on a freshly initialised token and set the user PIN. */
static km_status token_set_user_pin(CK_FUNCTION_LIST_PTR fl, CK_SLOT_ID slot, const char *so_pin,
                                    const char *user_pin, km_err *e)
{
	CK_SESSION_HANDLE s;
	CK_RV rv = open_session(fl, slot, &s);

	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "opening a session on the new token failed", "C_OpenSession");
	rv = fl->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, (CK_ULONG)strlen(so_pin));
	if (rv != CKR_OK) {
		fl->C_CloseSession(s);
		return hsm_p11_fail(e, rv, "security officer login on the new token failed", "C_Login");
	}
	rv = fl->C_InitPIN(s, (CK_UTF8CHAR_PTR)user_pin, (CK_ULONG)strlen(user_pin));
	fl->C_Logout(s);
	fl->C_CloseSession(s);
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "setting the user PIN failed", "C_InitPIN");
	return KM_OK;
}

km_status hsm_token_create(const hsm_config *cfg, const char *so_pin, const char *user_pin, km_err *e)
{
	unsigned char padded[P11_LABEL_LEN];
	token_query q, by_label;
	token_scan sc;
	CK_TOKEN_INFO ti;
	CK_SLOT_ID *slots = NULL, free_slot = 0, new_slot = 0;
	CK_ULONG n = 0;
	int have_free = 0;
	p11_module m;
	km_status st;
	CK_RV rv;

	if (!cfg || !so_pin || !user_pin)
		return km_fail(e, KM_EUSAGE, "hsm_token_create: NULL argument");
	st = token_query_parse(cfg->token, &q, e);
	if (st != KM_OK)
		return st;
	if (!q.uri.token[0])
		return km_fail(e, KM_EUSAGE, "a new HSM token needs a label (token= in a pkcs11: URI)");
	/* Only the label identifies the new token; other URI parts describe
	 * properties the module assigns itself (serial, slot). */
	st = token_query_parse(q.uri.token, &by_label, e);
	if (st != KM_OK)
		return st;

	st = module_load(module_path_of(cfg, &q), &m, e);
	if (st != KM_OK)
		return st;
	st = token_scan_run(m.fl, &by_label.uri, &sc, e);
	if (st == KM_OK && sc.matches > 0)
		st = km_fail(e, KM_EEXISTS, "an HSM token labelled \"%s\" exists already", by_label.uri.token);
	if (st == KM_OK)
		st = slot_list(m.fl, &slots, &n, e);
	for (CK_ULONG i = 0; st == KM_OK && i < n && !have_free; i++) {
		if (m.fl->C_GetTokenInfo(slots[i], &ti) == CKR_OK && !(ti.flags & CKF_TOKEN_INITIALIZED)) {
			free_slot = slots[i];
			have_free = 1;
		}
	}
	free(slots);
	if (st == KM_OK && !have_free)
		st = km_fail(e, KM_EHSM, "no free slot: every token of the PKCS#11 module is initialised "
		             "already");
	if (st == KM_OK)
		st = pin_length_ok(&ti, so_pin, "security officer", e);
	if (st == KM_OK)
		st = pin_length_ok(&ti, user_pin, "user", e);
	if (st != KM_OK) {
		module_unload(&m);
		return st;
	}

	memset(padded, ' ', sizeof padded);
	memcpy(padded, by_label.uri.token, strlen(by_label.uri.token));
	rv = m.fl->C_InitToken(free_slot, (CK_UTF8CHAR_PTR)so_pin, (CK_ULONG)strlen(so_pin), padded);
	if (rv != CKR_OK) {
		module_unload(&m);
		return hsm_p11_fail(e, rv, "initialising the HSM token failed", "C_InitToken");
	}
	/* SoftHSM2 moves an initialised token to a new slot id. */
	st = token_locate(m.fl, &by_label, &new_slot, e);
	if (st == KM_OK)
		st = token_set_user_pin(m.fl, new_slot, so_pin, user_pin, e);
	if (st != KM_OK)
		km_wrap(e, "token \"%s\" was initialised but its user PIN is not set", by_label.uri.token);
	module_unload(&m);
	return st;
}

km_status hsm_token_describe(hsm *h, hsm_token_info *out, km_err *e)
{
	CK_TOKEN_INFO ti;
	CK_SESSION_INFO si;
	CK_RV rv;

	if (!h || !out)
		return km_fail(e, KM_EUSAGE, "hsm_token_describe: NULL argument");
	memset(out, 0, sizeof *out);
	for (int i = 0; i < HSM_TRIES; i++) {  /* the race of token_locate */
		hsm_backoff(i);
		rv = h->fl->C_GetTokenInfo(h->slot, &ti);
		if (rv != CKR_GENERAL_ERROR)
			break;
	}
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "reading the HSM token's description failed", "C_GetTokenInfo");
	p11_text(out->label, sizeof out->label, ti.label, sizeof ti.label);
	p11_text(out->manufacturer, sizeof out->manufacturer, ti.manufacturerID, sizeof ti.manufacturerID);
	p11_text(out->model, sizeof out->model, ti.model, sizeof ti.model);
	p11_text(out->serial, sizeof out->serial, ti.serialNumber, sizeof ti.serialNumber);
	out->slot_id = h->slot;
	/* Ask the token rather than trust our flag: a PIN lock or a module
	 * restart can end the login behind our back. */
	if (h->fl->C_GetSessionInfo(h->session, &si) == CKR_OK)
		out->logged_in = si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS;
	else
		out->logged_in = h->logged_in;
	return KM_OK;
}
