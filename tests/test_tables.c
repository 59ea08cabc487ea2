/*
 * test_tables.c — table-driven tests of the core's small formats and
 * tables: key-state transitions, key names, tags, roles, config.json,
 * asset specs, the KEK cache bounds.
 */
#include "asset.h"
#include "authz.h"
#include "config.h"
#include "kek.h"
#include "kekcache.h"
#include "keystate.h"
#include "secmem.h"

#include <check.h>
#include <string.h>

static const struct {
	km_key_state from, to;
	int legal;
} transition_rows[] = {
	{KS_PENDING, KS_ACTIVE, 1},
	{KS_ACTIVE, KS_DECRYPT_ONLY, 1},
	{KS_DECRYPT_ONLY, KS_RETIRED, 1},
	{KS_RETIRED, KS_DESTROY_SCHEDULED, 1},
	{KS_DESTROY_SCHEDULED, KS_DESTROYED, 1},
	{KS_DESTROY_SCHEDULED, KS_RETIRED, 1},
	{KS_ACTIVE, KS_COMPROMISED, 1},
	{KS_RETIRED, KS_COMPROMISED, 1},
	{KS_COMPROMISED, KS_DESTROY_SCHEDULED, 1},
	{KS_ACTIVE, KS_DESTROYED, 0},
	{KS_ACTIVE, KS_RETIRED, 0},
	{KS_ACTIVE, KS_ACTIVE, 0},
	{KS_DESTROYED, KS_ACTIVE, 0},
	{KS_DESTROYED, KS_COMPROMISED, 0},
	{KS_COMPROMISED, KS_ACTIVE, 0},
	{KS_RETIRED, KS_ACTIVE, 0},
	{KS_DECRYPT_ONLY, KS_ACTIVE, 0},
	{KS_PENDING, KS_DESTROYED, 0},
};

START_TEST(state_transitions)
{
	km_err e;
	for (size_t i = 0; i < KM_ARRAY_LEN(transition_rows); i++) {
		int legal = transition_rows[i].legal;
		km_status st = km_state_check_transition(transition_rows[i].from, transition_rows[i].to, &e);
		ck_assert_msg((st == KM_OK) == legal, "%s -> %s: expected %s",
		              km_state_name(transition_rows[i].from), km_state_name(transition_rows[i].to),
		              legal ? "legal" : "illegal");
		if (!legal) {
			ck_assert_int_eq(st, KM_ESTATE);
			ck_assert_ptr_nonnull(strstr(e.msg, "allowed"));
		}
	}
}
END_TEST

START_TEST(state_names_round_trip)
{
	km_err e;
	for (int s = 0; s < KS_COUNT; s++) {
		km_key_state back;
		ck_assert_int_eq(km_state_parse(km_state_name((km_key_state)s), &back, &e), KM_OK);
		ck_assert_int_eq(back, s);
	}
	km_key_state x;
	ck_assert_int_eq(km_state_parse("actve", &x, &e), KM_EUSAGE);
	ck_assert_ptr_nonnull(strstr(e.msg, "actve"));
	ck_assert(km_state_can_encrypt(KS_ACTIVE));
	ck_assert(!km_state_can_encrypt(KS_DECRYPT_ONLY));
	ck_assert(!km_state_can_encrypt(KS_COMPROMISED));
	ck_assert(km_state_can_decrypt(KS_COMPROMISED));
	ck_assert(!km_state_can_decrypt(KS_RETIRED));
}
END_TEST

static const struct {
	const char *name;
	int ok;
	const char *msg_part;
} key_names[] = {
	{"features/credit-risk", 1, NULL},
	{"models/fraud-v4", 1, NULL},
	{"a", 1, NULL},
	{"datasets/claims_2025.v2", 1, NULL},
	{"", 0, "empty"},
	{"/features", 0, "start or end"},
	{"features/", 0, "start or end"},
	{"features//x", 0, "empty segment"},
	{"Features/x", 0, "not allowed"},
	{"features/x y", 0, "not allowed"},
	{"features/../x", 0, "'.'"},
	{"feat:x", 0, "not allowed"},
};

START_TEST(key_name_table)
{
	km_err e;
	for (size_t i = 0; i < KM_ARRAY_LEN(key_names); i++) {
		km_status st = km_key_name_validate(key_names[i].name, &e);
		ck_assert_msg((st == KM_OK) == key_names[i].ok, "name '%s'", key_names[i].name);
		if (!key_names[i].ok)
			ck_assert_msg(strstr(e.msg, key_names[i].msg_part), "'%s': message '%s'", key_names[i].name, e.msg);
	}
	char longname[200];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	ck_assert_int_eq(km_key_name_validate(longname, &e), KM_EINVAL);
}
END_TEST

static const struct {
	const char *kv;
	int ok;
	const char *k, *v;
} tag_rows[] = {
	{"sensitivity=high", 1, "sensitivity", "high"},
	{"region=eu-west-1", 1, "region", "eu-west-1"},
	{"owner=", 1, "owner", ""},
	{"note=a=b", 1, "note", "a=b"},
	{"noequals", 0, NULL, NULL},
	{"=x", 0, NULL, NULL},
	{"Bad Key=x", 0, NULL, NULL},
	{"k=\x01", 0, NULL, NULL},
};

START_TEST(tag_table)
{
	km_err e;
	for (size_t i = 0; i < KM_ARRAY_LEN(tag_rows); i++) {
		char k[KM_TAG_KEY_MAX + 1], v[KM_TAG_VALUE_MAX + 1];
		km_status st = km_tag_parse(tag_rows[i].kv, k, v, &e);
		ck_assert_msg((st == KM_OK) == tag_rows[i].ok, "tag '%s'", tag_rows[i].kv);
		if (tag_rows[i].ok) {
			ck_assert_str_eq(k, tag_rows[i].k);
			ck_assert_str_eq(v, tag_rows[i].v);
		}
	}
}
END_TEST

START_TEST(roles_and_policy)
{
	km_err e;
	unsigned r;
	ck_assert_int_eq(km_roles_parse("officer,auditor", &r, &e), KM_OK);
	ck_assert_uint_eq(r, KM_ROLE_OFFICER | KM_ROLE_AUDITOR);
	char buf[64];
	km_roles_format(r, buf, sizeof buf);
	ck_assert_str_eq(buf, "officer,auditor");
	ck_assert_int_eq(km_roles_parse("officer,wizard", &r, &e), KM_EUSAGE);
	ck_assert_ptr_nonnull(strstr(e.msg, "wizard"));
	ck_assert_int_eq(km_roles_check_separation(KM_ROLE_ADMIN | KM_ROLE_OFFICER, &e), KM_EDENIED);
	ck_assert_int_eq(km_roles_check_separation(KM_ROLE_OFFICER | KM_ROLE_APPROVER, &e), KM_OK);
	/* The brief's "must never" column. */
	ck_assert(!km_policy_allows(KM_ROLE_ADMIN, KM_ACT_KEY_ROTATE));
	ck_assert(!km_policy_allows(KM_ROLE_ADMIN, KM_ACT_PROTECT));
	ck_assert(!km_policy_allows(KM_ROLE_AUDITOR, KM_ACT_KEY_STATE));
	ck_assert(!km_policy_allows(KM_ROLE_SERVICE, KM_ACT_AUDIT_READ));
	ck_assert(!km_policy_allows(KM_ROLE_SERVICE, KM_ACT_KEY_CREATE));
	ck_assert(!km_policy_allows(KM_ROLE_APPROVER, KM_ACT_KEY_CREATE));
	ck_assert(km_policy_allows(KM_ROLE_OFFICER, KM_ACT_KEY_ROTATE));
	ck_assert(km_policy_allows(KM_ROLE_AUDITOR, KM_ACT_AUDIT_VERIFY));
	ck_assert(km_policy_allows(KM_ROLE_SERVICE, KM_ACT_UNPROTECT));
}
END_TEST

static const struct {
	const char *text;
	int ok;
	const char *msg_part;
} config_rows[] = {
	{"{}", 1, NULL},
	{"{\"token\": \"prod\", \"kek_max_wraps\": 1000}", 1, NULL},
	{"{\"pkcs11_module\": \"/opt/vendor/lib.so\", \"database\": \"k.db\"}", 1, NULL},
	{"{\"keys\": {\"quit\": \"Q\"}}", 1, NULL},
	{"", 0, "line"},
	{"{\"token\": ", 0, "line 1"},
	{"[]", 0, "object"},
	{"{\"tokne\": \"x\"}", 0, "unknown setting \"tokne\""},
	{"{\"token\": 5}", 0, "\"token\" must be a non-empty string"},
	{"{\"token\": \"\"}", 0, "non-empty"},
	{"{\"kek_max_wraps\": -1}", 0, "positive integer"},
	{"{\"kek_max_wraps\": \"many\"}", 0, "positive integer"},
	{"{\"cache_max_entries\": 99999999999}", 0, "positive integer"},
	{"{\"keys\": []}", 0, "must be an object"},
	{"{\"token\": \"a\", \"token\": \"b\"}", 0, "duplicate"},
};

START_TEST(config_table)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(config_rows); i++) {
		km_config c;
		km_err e;
		km_config_defaults(&c, "/tmp/kw-home");
		km_status st = km_config_parse(&c, config_rows[i].text, "config.json", &e);
		ck_assert_msg((st == KM_OK) == config_rows[i].ok, "config '%s': %s", config_rows[i].text, e.msg);
		if (!config_rows[i].ok) {
			ck_assert_int_eq(st, KM_ECONFIG);
			ck_assert_msg(strstr(e.msg, config_rows[i].msg_part), "config '%s': message '%s'",
			              config_rows[i].text, e.msg);
			ck_assert_ptr_nonnull(strstr(e.msg, "config.json"));
		}
		km_config_free(&c);
	}
	km_config c;
	km_err e;
	km_config_defaults(&c, "/tmp/kw-home");
	ck_assert_int_eq(km_config_parse(&c, "{\"database\": \"sub/k.db\", \"kek_max_wraps\": 7}", "x", &e), KM_OK);
	ck_assert_str_eq(c.db_path, "/tmp/kw-home/sub/k.db");
	ck_assert_uint_eq(c.kek_max_wraps, 7);
	km_config_free(&c);
}
END_TEST

static const struct {
	const char *spec;
	int ok;
	const char *kind, *name, *version;
} spec_rows[] = {
	{"feature:credit-risk/income@7", 1, "feature", "credit-risk/income", "7"},
	{"dataset:claims-2025", 1, "dataset", "claims-2025", ""},
	{"inference-log:scoring-api/requests@2026-11-23", 1, "inference-log", "scoring-api/requests", "2026-11-23"},
	{"model:fraud-v4/weights@4.1.0", 1, "model", "fraud-v4/weights", "4.1.0"},
	{"credit-risk", 0, NULL, NULL, NULL},
	{":x", 0, NULL, NULL, NULL},
	{"spreadsheet:x", 0, NULL, NULL, NULL},
};

START_TEST(asset_spec_table)
{
	km_err e;
	for (size_t i = 0; i < KM_ARRAY_LEN(spec_rows); i++) {
		char kind[32], name[256], version[128];
		km_status st = km_asset_spec_parse(spec_rows[i].spec, kind, name, version, &e);
		ck_assert_msg((st == KM_OK) == spec_rows[i].ok, "spec '%s': %s", spec_rows[i].spec, e.msg);
		if (spec_rows[i].ok) {
			ck_assert_str_eq(kind, spec_rows[i].kind);
			ck_assert_str_eq(name, spec_rows[i].name);
			ck_assert_str_eq(version, spec_rows[i].version);
		}
	}
}
END_TEST

static uint8_t *fresh_key(uint8_t fill)
{
	uint8_t *k = km_secure_alloc(32);
	memset(k, fill, 32);
	return k;
}

START_TEST(kek_cache_bounds)
{
	kek_cache_limits lim = {3600, 3, 1000, 2};
	kek_cache *c = kek_cache_new(&lim);
	ck_assert_ptr_nonnull(c);
	const uint8_t *k = kek_cache_put(c, 1, 1, fresh_key(0x11));
	ck_assert_uint_eq(k[0], 0x11);
	/* uses: put counted one; two more allowed, the fourth drops it */
	ck_assert_ptr_nonnull(kek_cache_get(c, 1, 1));
	ck_assert_ptr_nonnull(kek_cache_get(c, 1, 1));
	ck_assert_ptr_null(kek_cache_get(c, 1, 1));
	ck_assert_uint_eq(kek_cache_size(c), 0);
	/* LRU: a third entry evicts the least recently used */
	kek_cache_put(c, 1, 1, fresh_key(0x31));
	kek_cache_put(c, 2, 1, fresh_key(0x32));
	ck_assert_ptr_nonnull(kek_cache_get(c, 1, 1));
	kek_cache_put(c, 3, 1, fresh_key(0x33));
	ck_assert_uint_eq(kek_cache_size(c), 2);
	ck_assert_ptr_null(kek_cache_get(c, 2, 1));
	ck_assert_ptr_nonnull(kek_cache_get(c, 1, 1));
	/* explicit eviction (a state change) */
	kek_cache_evict(c, 3, 1);
	ck_assert_ptr_null(kek_cache_get(c, 3, 1));
	kek_cache_free(c);

	kek_cache_limits zero_age = {0, 100, 1000, 2};
	c = kek_cache_new(&zero_age);
	kek_cache_put(c, 1, 1, fresh_key(0x44));
	ck_assert_ptr_null(kek_cache_get(c, 1, 1));
	kek_cache_free(c);
}
END_TEST

/* Bytes reported under an entry, row by row: {bytes reported, held after}.
 * The bound is 1000; reaching it evicts, and the next use misses. */
static const struct {
	uint64_t bytes;
	int held;
} byte_rows[] = {
	{0, 1}, {600, 1}, {399, 1}, {1, 0},  /* 999 held, 1000 evicts */
	{1000, 0},                            /* one stream past the bound at once */
	{999, 1}, {UINT64_MAX, 0},            /* no wrap-around past 2^64 */
};

START_TEST(kek_cache_byte_bound)
{
	kek_cache_limits lim = {3600, 100, 1000, 4};
	kek_cache *c = kek_cache_new(&lim);
	ck_assert_ptr_nonnull(c);
	kek_cache_put(c, 7, 2, fresh_key(0x55));
	kek_cache_put(c, 8, 1, fresh_key(0x66)); /* a bystander: never charged */
	for (size_t i = 0; i < KM_ARRAY_LEN(byte_rows); i++) {
		if (!kek_cache_get(c, 7, 2))
			kek_cache_put(c, 7, 2, fresh_key(0x55)); /* a fresh unwrap starts at 0 bytes */
		ck_assert_int_eq(kek_cache_charge_bytes(c, 7, 2, byte_rows[i].bytes), byte_rows[i].held);
		ck_assert_msg((kek_cache_get(c, 7, 2) != NULL) == byte_rows[i].held, "row %zu", i);
		ck_assert_ptr_nonnull(kek_cache_get(c, 8, 1));
	}
	/* charging an absent entry changes nothing */
	ck_assert_int_eq(kek_cache_charge_bytes(c, 9, 9, 5000), 0);
	ck_assert_uint_eq(kek_cache_size(c), 1);
	kek_cache_free(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tables");
	TCase *t = tcase_create("tables");
	tcase_add_test(t, state_transitions);
	tcase_add_test(t, state_names_round_trip);
	tcase_add_test(t, key_name_table);
	tcase_add_test(t, tag_table);
	tcase_add_test(t, roles_and_policy);
	tcase_add_test(t, config_table);
	tcase_add_test(t, asset_spec_table);
	tcase_add_test(t, kek_cache_bounds);
	tcase_add_test(t, kek_cache_byte_bound);
	suite_add_tcase(s, t);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
