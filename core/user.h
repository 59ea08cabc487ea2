/*
 * user.h — keyward users and their roles.
 *
 * A keyward user is mapped from the OS user at the terminal (the login name
 * is the authentication, as on an ssh-only admin host).  The full people /
 * roles / two-person grant work is a later issue; this is the catalogue and
 * the single path that changes it (authorised as user.add, audited).
 */
#ifndef KM_USER_H
#define KM_USER_H

#include "keyward.h"

typedef struct km_user_info {
	char name[64];
	unsigned roles;
	int64_t created;
	char created_by[64];
} km_user_info;

/* Enrol a user with roles (separation of duties enforced). */
km_status km_user_add(km_ctx *ctx, const char *name, unsigned roles, km_err *e);

km_status km_user_list(km_ctx *ctx, int (*cb)(void *c, const km_user_info *u),
                       void *cbctx, km_err *e);

/* User names: 1..63 of [A-Za-z0-9._-], not starting with '-'. */
km_status km_user_name_validate(const char *name, km_err *e);

#endif
