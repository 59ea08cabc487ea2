/*
 * hsm_int.h — what the files of hsm/ share with each other and nobody else.
 *
 * This is the only header that includes <p11-kit/pkcs11.h>; it must never be
 * included from outside hsm/, so PKCS#11 types stay out of keyward's API.
 */
#ifndef KM_HSM_INT_H
#define KM_HSM_INT_H

#include "hsm.h"

#include <p11-kit/pkcs11.h>

struct hsm {
	void *lib;                 /* dlopen() handle of the module */
	CK_FUNCTION_LIST_PTR fl;   /* the module's entry points */
	CK_SLOT_ID slot;           /* found by label/URI at open; never configured */
	CK_SESSION_HANDLE session;
	int have_session;
	int logged_in;
	/* hsm_mac runs once per catalogue row, so the MAC key's handle is kept
	 * after the first lookup; a stale one (the token logged us out, which
	 * drops private handles) is looked up again (hsm_keys.c). */
	CK_OBJECT_HANDLE mac_key;
	int mac_key_cached;
};

/* Template entries.  ATTR_BOOL points at a compound literal, which lives
 * as long as the block that holds the template. */
#define ATTR(type, ptr, len) {(type), (void *)(ptr), (CK_ULONG)(len)}
#define ATTR_BOOL(type, yes) {(type), &(CK_BBOOL){(yes) ? CK_TRUE : CK_FALSE}, sizeof(CK_BBOOL)}
#define ATTR_VAR(type, var) {(type), &(var), sizeof(var)}

/* KM_OK if h has a session and is logged in; else KM_EUSAGE / KM_ESTATE
 * with "<action> needs an HSM login first". */
km_status hsm_need_login(const hsm *h, const char *action, km_err *e);

/* How many "keyward-anchor" data objects the token shows (hsm_anchor.c). */
km_status hsm_anchor_count(hsm *h, unsigned *count, km_err *e);

/* Fill *e for a failed PKCS#11 call: "<what>[: <hint>] (<fn>: CKR_...)" and
 * return the km_status that rv maps to (PIN problems -> KM_EDENIED). */
km_status hsm_p11_fail(km_err *e, CK_RV rv, const char *what, const char *fn);

/* SoftHSM2 re-reads its token files on many calls, and a process writing
 * them at that moment makes it answer CKR_GENERAL_ERROR or miss objects
 * and tokens that exist (SoftHSMv2 issue 757).  Idempotent lookups are
 * tried HSM_TRIES times; hsm_backoff(i) sleeps before try i (none before
 * the first). */
#define HSM_TRIES 7 /* backoff 20 ms doubling: at most 1.26 s in all */
void hsm_backoff(int attempt);

#endif
