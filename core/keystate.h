/*
 * keystate.h — the life cycle of a KEK version, as one table.
 *
 *   pending -> active -> decrypt-only -> retired -> destroy-scheduled -> destroyed
 *   compromised may be entered from any live state.
 *
 * The transition table in keystate.c is the only place that decides which
 * state changes are legal; the console offers exactly the legal targets and
 * the core refuses the rest with a message listing them.
 */
#ifndef KM_KEYSTATE_H
#define KM_KEYSTATE_H

#include "km.h"

/* X(enum, name, can_encrypt, can_decrypt, destructive) — destructive changes
 * need the key's name typed to confirm them in the console. */
#define KM_KEY_STATES(X)                                  \
	X(KS_PENDING,           "pending",           0, 0, 0) \
	X(KS_ACTIVE,            "active",            1, 1, 0) \
	X(KS_DECRYPT_ONLY,      "decrypt-only",      0, 1, 0) \
	X(KS_RETIRED,           "retired",           0, 0, 0) \
	X(KS_DESTROY_SCHEDULED, "destroy-scheduled", 0, 0, 1) \
	X(KS_DESTROYED,         "destroyed",         0, 0, 1) \
	X(KS_COMPROMISED,       "compromised",       0, 1, 1)

typedef enum km_key_state {
#define KS_ENUM(e, name, enc, dec, destr) e,
	KM_KEY_STATES(KS_ENUM)
#undef KS_ENUM
	KS_COUNT
} km_key_state;

const char *km_state_name(km_key_state s);
km_status km_state_parse(const char *name, km_key_state *out, km_err *e);

int km_state_can_encrypt(km_key_state s);
/* Decrypt is allowed for compromised versions so data can be re-encrypted
 * away from them; encrypt never is. */
int km_state_can_decrypt(km_key_state s);
int km_state_is_destructive(km_key_state s);

/* 1 if from -> to is in the table. */
int km_state_transition_legal(km_key_state from, km_key_state to);

/* KM_OK, or KM_ESTATE with "cannot change a X version to Y; allowed: a, b". */
km_status km_state_check_transition(km_key_state from, km_key_state to, km_err *e);

/* Fill out[] with the legal targets from `from`; returns how many. */
int km_state_targets(km_key_state from, km_key_state out[KS_COUNT]);

#endif
