/*
 * p11rv.c — names for PKCS#11 return values, so that every HSM failure a
 * person reads says "CKR_PIN_INCORRECT" rather than "0xa0".
 *
 * One table, written from the #defines of the PKCS#11 v2.40 header that
 * p11-kit ships (plus the few v3.0 codes a newer module may return).  It
 * must never carry a PIN or key bytes: it only turns numbers into names
 * and says what a failure means for the caller.
 */
#include "hsm_int.h"

#include <stdio.h>

/* PKCS#11 v3.0 codes that the v2.40 header lacks; a v3 module may send them. */
#ifndef CKR_TOKEN_RESOURCE_EXCEEDED
#define CKR_TOKEN_RESOURCE_EXCEEDED (0x201UL)
#endif
#ifndef CKR_OPERATION_CANCEL_FAILED
#define CKR_OPERATION_CANCEL_FAILED (0x202UL)
#endif
#ifndef CKR_KEY_EXHAUSTED
#define CKR_KEY_EXHAUSTED (0x203UL)
#endif

#define RV(name) {name, #name}

static const struct {
	CK_RV rv;
	const char *name;
} rv_names[] = {
	RV(CKR_OK),
	RV(CKR_CANCEL),
	RV(CKR_HOST_MEMORY),
	RV(CKR_SLOT_ID_INVALID),
	RV(CKR_GENERAL_ERROR),
	RV(CKR_FUNCTION_FAILED),
	RV(CKR_ARGUMENTS_BAD),
	RV(CKR_NO_EVENT),
	RV(CKR_NEED_TO_CREATE_THREADS),
	RV(CKR_CANT_LOCK),
	RV(CKR_ATTRIBUTE_READ_ONLY),
	RV(CKR_ATTRIBUTE_SENSITIVE),
	RV(CKR_ATTRIBUTE_TYPE_INVALID),
	RV(CKR_ATTRIBUTE_VALUE_INVALID),
	RV(CKR_ACTION_PROHIBITED),
	RV(CKR_DATA_INVALID),
	RV(CKR_DATA_LEN_RANGE),
	RV(CKR_DEVICE_ERROR),
	RV(CKR_DEVICE_MEMORY),
	RV(CKR_DEVICE_REMOVED),
	RV(CKR_ENCRYPTED_DATA_INVALID),
	RV(CKR_ENCRYPTED_DATA_LEN_RANGE),
	RV(CKR_FUNCTION_CANCELED),
	RV(CKR_FUNCTION_NOT_PARALLEL),
	RV(CKR_FUNCTION_NOT_SUPPORTED),
	RV(CKR_KEY_HANDLE_INVALID),
	RV(CKR_KEY_SIZE_RANGE),
	RV(CKR_KEY_TYPE_INCONSISTENT),
	RV(CKR_KEY_NOT_NEEDED),
	RV(CKR_KEY_CHANGED),
	RV(CKR_KEY_NEEDED),
	RV(CKR_KEY_INDIGESTIBLE),
	RV(CKR_KEY_FUNCTION_NOT_PERMITTED),
	RV(CKR_KEY_NOT_WRAPPABLE),
	RV(CKR_KEY_UNEXTRACTABLE),
	RV(CKR_MECHANISM_INVALID),
	RV(CKR_MECHANISM_PARAM_INVALID),
	RV(CKR_OBJECT_HANDLE_INVALID),
	RV(CKR_OPERATION_ACTIVE),
	RV(CKR_OPERATION_NOT_INITIALIZED),
	RV(CKR_PIN_INCORRECT),
	RV(CKR_PIN_INVALID),
	RV(CKR_PIN_LEN_RANGE),
	RV(CKR_PIN_EXPIRED),
	RV(CKR_PIN_LOCKED),
	RV(CKR_SESSION_CLOSED),
	RV(CKR_SESSION_COUNT),
	RV(CKR_SESSION_HANDLE_INVALID),
	RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
	RV(CKR_SESSION_READ_ONLY),
	RV(CKR_SESSION_EXISTS),
	RV(CKR_SESSION_READ_ONLY_EXISTS),
	RV(CKR_SESSION_READ_WRITE_SO_EXISTS),
	RV(CKR_SIGNATURE_INVALID),
	RV(CKR_SIGNATURE_LEN_RANGE),
	RV(CKR_TEMPLATE_INCOMPLETE),
	RV(CKR_TEMPLATE_INCONSISTENT),
	RV(CKR_TOKEN_NOT_PRESENT),
	RV(CKR_TOKEN_NOT_RECOGNIZED),
	RV(CKR_TOKEN_WRITE_PROTECTED),
	RV(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
	RV(CKR_UNWRAPPING_KEY_SIZE_RANGE),
	RV(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
	RV(CKR_USER_ALREADY_LOGGED_IN),
	RV(CKR_USER_NOT_LOGGED_IN),
	RV(CKR_USER_PIN_NOT_INITIALIZED),
	RV(CKR_USER_TYPE_INVALID),
	RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
	RV(CKR_USER_TOO_MANY_TYPES),
	RV(CKR_WRAPPED_KEY_INVALID),
	RV(CKR_WRAPPED_KEY_LEN_RANGE),
	RV(CKR_WRAPPING_KEY_HANDLE_INVALID),
	RV(CKR_WRAPPING_KEY_SIZE_RANGE),
	RV(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
	RV(CKR_RANDOM_SEED_NOT_SUPPORTED),
	RV(CKR_RANDOM_NO_RNG),
	RV(CKR_DOMAIN_PARAMS_INVALID),
	RV(CKR_CURVE_NOT_SUPPORTED),
	RV(CKR_BUFFER_TOO_SMALL),
	RV(CKR_SAVED_STATE_INVALID),
	RV(CKR_INFORMATION_SENSITIVE),
	RV(CKR_STATE_UNSAVEABLE),
	RV(CKR_CRYPTOKI_NOT_INITIALIZED),
	RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
	RV(CKR_MUTEX_BAD),
	RV(CKR_MUTEX_NOT_LOCKED),
	RV(CKR_NEW_PIN_MODE),
	RV(CKR_NEXT_OTP),
	RV(CKR_EXCEEDED_MAX_ITERATIONS),
	RV(CKR_FIPS_SELF_TEST_FAILED),
	RV(CKR_LIBRARY_LOAD_FAILED),
	RV(CKR_PIN_TOO_WEAK),
	RV(CKR_PUBLIC_KEY_INVALID),
	RV(CKR_FUNCTION_REJECTED),
	RV(CKR_VENDOR_DEFINED),
	RV(CKR_TOKEN_RESOURCE_EXCEEDED),
	RV(CKR_OPERATION_CANCEL_FAILED),
	RV(CKR_KEY_EXHAUSTED),
};

const char *hsm_rv_name(unsigned long rv)
{
	/* Thread-local so that two threads formatting unknown codes at once
	 * cannot hand each other a half-written name. */
	static _Thread_local char unknown[32];

	for (size_t i = 0; i < KM_ARRAY_LEN(rv_names); i++)
		if (rv_names[i].rv == rv)
			return rv_names[i].name;
	snprintf(unknown, sizeof unknown, "CKR_0x%lX", rv);
	return unknown;
}

/* What a failure means for the caller, and a hint a person can act on.
 * Codes not listed are KM_EHSM with no hint: the CKR_ name says enough. */
static const struct {
	CK_RV rv;
	km_status status;
	const char *hint;
} rv_meanings[] = {
	{CKR_PIN_INCORRECT, KM_EDENIED, "wrong PIN"},
	{CKR_PIN_LEN_RANGE, KM_EDENIED, "wrong PIN (its length is outside what the token accepts)"},
	{CKR_PIN_INVALID, KM_EDENIED, "wrong PIN (it has characters the token does not accept)"},
	{CKR_PIN_LOCKED, KM_EDENIED, "the PIN is locked after too many wrong attempts; "
	                             "the security officer must reset it"},
	{CKR_PIN_EXPIRED, KM_EDENIED, "the PIN has expired"},
	{CKR_USER_NOT_LOGGED_IN, KM_ESTATE, "not logged in to the token"},
	{CKR_USER_PIN_NOT_INITIALIZED, KM_ESTATE, "the token has no user PIN yet"},
	{CKR_HOST_MEMORY, KM_ENOMEM, "out of memory"},
	{CKR_DEVICE_MEMORY, KM_EHSM, "the token is full"},
	{CKR_TOKEN_NOT_PRESENT, KM_EHSM, "the token is gone"},
	{CKR_DEVICE_REMOVED, KM_EHSM, "the token is gone"},
	{CKR_SESSION_HANDLE_INVALID, KM_EHSM, "the session is gone (was the process forked?)"},
	{CKR_CRYPTOKI_NOT_INITIALIZED, KM_EHSM, "the module is not initialised (was the process forked?)"},
};

km_status hsm_p11_fail(km_err *e, CK_RV rv, const char *what, const char *fn)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(rv_meanings); i++)
		if (rv_meanings[i].rv == rv)
			return km_fail(e, rv_meanings[i].status, "%s: %s (%s: %s)", what, rv_meanings[i].hint,
			               fn, hsm_rv_name(rv));
	return km_fail(e, KM_EHSM, "%s (%s: %s)", what, fn, hsm_rv_name(rv));
}
