/*
 * keystate.c — the transition table for KEK version states.
 */
#include "keystate.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	int can_encrypt, can_decrypt, destructive;
} state_props[KS_COUNT] = {
#define KS_ROW(e, name, enc, dec, destr) [e] = {name, enc, dec, destr},
	KM_KEY_STATES(KS_ROW)
#undef KS_ROW
};

/* Legal transitions, one row per source state.  compromised is reachable
 * from every live state; destroyed is terminal.  Reactivating a
 * decrypt-only version is not offered: rotation always moves forward, and a
 * rollback is a new rotation. */
static const struct {
	km_key_state from, to;
} transitions[] = {
	{KS_PENDING, KS_ACTIVE},
	{KS_PENDING, KS_DESTROY_SCHEDULED},
	{KS_PENDING, KS_COMPROMISED},
	{KS_ACTIVE, KS_DECRYPT_ONLY},
	{KS_ACTIVE, KS_COMPROMISED},
	{KS_DECRYPT_ONLY, KS_RETIRED},
	{KS_DECRYPT_ONLY, KS_COMPROMISED},
	{KS_RETIRED, KS_DECRYPT_ONLY},
	{KS_RETIRED, KS_DESTROY_SCHEDULED},
	{KS_RETIRED, KS_COMPROMISED},
	{KS_DESTROY_SCHEDULED, KS_RETIRED},   /* cancel the destruction */
	{KS_DESTROY_SCHEDULED, KS_DESTROYED},
	{KS_DESTROY_SCHEDULED, KS_COMPROMISED},
	{KS_COMPROMISED, KS_DESTROY_SCHEDULED},
};

const char *km_state_name(km_key_state s)
{
	return (unsigned)s < KS_COUNT ? state_props[s].name : "unknown";
}

km_status km_state_parse(const char *name, km_key_state *out, km_err *e)
{
	for (int i = 0; i < KS_COUNT; i++) {
		if (name && strcmp(name, state_props[i].name) == 0) {
			*out = (km_key_state)i;
			return KM_OK;
		}
	}
	return km_fail(e, KM_EUSAGE, "unknown key state '%s'; states are pending, active, "
	               "decrypt-only, retired, destroy-scheduled, destroyed, compromised",
	               name ? name : "");
}

int km_state_can_encrypt(km_key_state s) { return (unsigned)s < KS_COUNT && state_props[s].can_encrypt; }
int km_state_can_decrypt(km_key_state s) { return (unsigned)s < KS_COUNT && state_props[s].can_decrypt; }
int km_state_is_destructive(km_key_state s) { return (unsigned)s < KS_COUNT && state_props[s].destructive; }

int km_state_transition_legal(km_key_state from, km_key_state to)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(transitions); i++)
		if (transitions[i].from == from && transitions[i].to == to)
			return 1;
	return 0;
}

int km_state_targets(km_key_state from, km_key_state out[KS_COUNT])
{
	int n = 0;
	for (size_t i = 0; i < KM_ARRAY_LEN(transitions); i++)
		if (transitions[i].from == from)
			out[n++] = transitions[i].to;
	return n;
}

km_status km_state_check_transition(km_key_state from, km_key_state to, km_err *e)
{
	if (km_state_transition_legal(from, to))
		return KM_OK;
	km_key_state t[KS_COUNT];
	int n = km_state_targets(from, t);
	char allowed[256] = "";
	size_t used = 0;
	for (int i = 0; i < n; i++) {
		int w = snprintf(allowed + used, sizeof allowed - used, "%s%s", i ? ", " : "",
		                 km_state_name(t[i]));
		if (w < 0 || (size_t)w >= sizeof allowed - used)
			break;
		used += (size_t)w;
	}
	return km_fail(e, KM_ESTATE, "cannot change a %s version to %s; allowed from %s: %s",
	               km_state_name(from), km_state_name(to), km_state_name(from),
	               n ? allowed : "nothing (terminal state)");
}
