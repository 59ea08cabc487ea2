/*
 * test_forward.c — forward.h without a deployment: the sink configuration
 * parser (defaults, paths, each refusal naming its field) and the file
 * sink over a bare audit log (exact bytes, batches, the cursor, a torn
 * line and a crash between fsync and cursor, a gap in the log, two
 * forwarders racing for one cursor).  The HTTP sinks are exercised against
 * a real receiver in tests/sh/cli_forward.sh.
 */
#include "audit.h"
#include "forward_int.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static sqlite3 *db;

static void sql(const char *s)
{
	char *err = NULL;
	ck_assert_msg(sqlite3_exec(db, s, NULL, NULL, &err) == SQLITE_OK, "%s: %s", s, err ? err : "");
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/kw-test-forward-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char p[128];
	snprintf(p, sizeof p, "%s/log.db", dir);
	ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
	sql(audit_schema_sql);
	sql(forward_schema_sql);
	sql("INSERT INTO audit_meta(key, value) VALUES('origin', 'keyward/test')");
}

static void teardown(void)
{
	sqlite3_close(db);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void grow(int n)
{
	km_err e;
	sql("BEGIN IMMEDIATE");
	for (int i = 0; i < n; i++) {
		char obj[32];
		snprintf(obj, sizeof obj, "features/a%d", i);
		audit_event ev = {"alice", "protect", obj, "ok", NULL};
		ck_assert_int_eq(audit_append(db, &ev, NULL, &e), KM_OK);
	}
	sql("COMMIT");
}

static km_status parse(const char *text, km_sink *out, size_t *n, km_err *e)
{
	json_t *j = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(j);
	km_status st = km_sinks_parse(j, "/home/kw", "config.json", out, KM_SINKS_MAX, n, e);
	json_decref(j);
	return st;
}

START_TEST(test_parse_defaults_and_paths)
{
	km_sink s[KM_SINKS_MAX];
	size_t n;
	km_err e;
	ck_assert_int_eq(parse("[{\"name\":\"siem\",\"type\":\"webhook\",\"url\":\"https://h/x\","
	                       "\"hmac_secret_file\":\"siem.key\",\"batch\":50},"
	                       "{\"name\":\"f\",\"type\":\"file\",\"path\":\"/var/log/a.jsonl\"}]", s, &n, &e),
	                 KM_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(s[0].kind, KM_SINK_WEBHOOK);
	ck_assert_str_eq(s[0].hmac_secret_file, "/home/kw/siem.key");
	ck_assert_uint_eq(s[0].batch, 50);
	ck_assert_uint_eq(s[0].attempts, 8);
	ck_assert_uint_eq(s[0].timeout_s, 30);
	ck_assert_int_eq(s[1].kind, KM_SINK_FILE);
	ck_assert_str_eq(s[1].path, "/var/log/a.jsonl");
	ck_assert_uint_eq(s[1].batch, 1000);
	ck_assert_int_eq(km_sinks_parse(NULL, "/h", "c", s, KM_SINKS_MAX, &n, &e), KM_OK);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_parse_refusals_name_the_field)
{
	static const struct { const char *text, *says; } bad[] = {
		{"{}", "\"audit_sinks\" must be an array"},
		{"[1]", "\"audit_sinks\"[0] must be an object"},
		{"[{\"type\":\"file\",\"path\":\"f\"}]", "[0].name is missing"},
		{"[{\"name\":\"a\",\"type\":\"file\",\"path\":\"f\",\"urll\":1}]", "unknown field \"urll\""},
		{"[{\"name\":\"a\",\"type\":\"webhook\",\"url\":\"file:///etc/passwd\"}]", "[0].url must be an http"},
		{"[{\"name\":\"a\",\"type\":\"webhook\"}]", "[0].url must be an http"},
		{"[{\"name\":\"a\",\"type\":\"file\",\"url\":\"http://h/\"}]", "[0].url does not apply"},
		{"[{\"name\":\"a\",\"type\":\"witness\",\"url\":\"http://h/\",\"path\":\"p\"}]", "[0].path does not apply"},
		{"[{\"name\":\"a\",\"type\":\"file\",\"path\":\"f\",\"timeout_seconds\":3}]", "[0].timeout_seconds does not apply"},
		{"[{\"name\":\"a\",\"type\":\"file\",\"path\":\"f\",\"batch\":\"10\"}]", "[0].batch must be an integer"},
		{"[{\"name\":\"a\",\"type\":\"webhook\",\"url\":\"http://h/\",\"attempts\":0}]", "[0].attempts must be an integer from 1"},
		{"[{\"name\":\"A\",\"type\":\"file\",\"path\":\"f\"}]", "[0].name must be 1 to 31"},
		{"[{\"name\":\"a\",\"type\":\"syslog\"}]", "[0].type must be"},
		{"[{\"name\":\"a\",\"type\":\"file\",\"path\":\"\"}]", "[0].path must be a non-empty string"},
		{"[{\"name\":\"a\",\"type\":\"webhook\",\"url\":\"http://h/\",\"client_key\":\"k\"}]", "[0].client_key needs client_cert"},
		{"[{\"name\":\"a\",\"type\":\"webhook\",\"url\":\"http://h/\",\"verifier_key\":\"x+00000000+AAAA\"}]",
		 "[0].verifier_key applies to a witness sink only"},
		{"[{\"name\":\"a\",\"type\":\"witness\",\"url\":\"http://h/\",\"verifier_key\":7}]",
		 "[0].verifier_key: must be a string"},
		{"[{\"name\":\"a\",\"type\":\"witness\",\"url\":\"http://h/\",\"verifier_key\":\"w+0000000g+AAAA\"}]",
		 "[0].verifier_key: the key ID between the '+' signs must be 8 lower-case hex digits"},
		{"[{\"name\":\"a\",\"type\":\"file\",\"path\":\"f\"},{\"name\":\"a\",\"type\":\"file\",\"path\":\"g\"}]",
		 "[1].name \"a\" is already the name of sink 0"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		km_sink s[KM_SINKS_MAX];
		size_t n;
		km_err e;
		km_err_clear(&e);
		ck_assert_int_eq(parse(bad[i].text, s, &n, &e), KM_ECONFIG);
		ck_assert_msg(strstr(e.msg, bad[i].says), "%s: got \"%s\"", bad[i].text, e.msg);
	}
}
END_TEST

static km_sink file_sink(uint32_t batch)
{
	km_sink s;
	memset(&s, 0, sizeof s);
	snprintf(s.name, sizeof s.name, "f");
	s.kind = KM_SINK_FILE;
	snprintf(s.path, sizeof s.path, "%s/out.jsonl", dir);
	s.batch = batch;
	return s;
}

/* The file's lines equal the stored event texts 1..n, each once. */
static void check_file(const char *path, int n)
{
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	sqlite3_stmt *q;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT json FROM audit_events ORDER BY seq", -1, &q, NULL),
	                 SQLITE_OK);
	char line[4096];
	int k = 0;
	while (fgets(line, sizeof line, f)) {
		ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
		line[strcspn(line, "\n")] = '\0';
		ck_assert_str_eq(line, (const char *)sqlite3_column_text(q, 0));
		k++;
	}
	ck_assert_int_eq(k, n);
	sqlite3_finalize(q);
	fclose(f);
}

static uint64_t cursor(void)
{
	sqlite3_stmt *q;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT delivered FROM audit_forward WHERE sink = 'f'", -1,
	                                    &q, NULL), SQLITE_OK);
	uint64_t c = sqlite3_step(q) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(q, 0) : 0;
	sqlite3_finalize(q);
	return c;
}

START_TEST(test_file_sink_batches_and_cursor)
{
	km_sink s = file_sink(7);
	forward_run_opts o = {0};
	km_forward_sink_result r;
	km_err e;
	grow(20);
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(forward_sink_run(db, "keyward/test", &s, &o, &r, &e), KM_OK);
	ck_assert_uint_eq(r.delivered, 20);
	ck_assert_uint_eq(r.batches, 3); /* 7 + 7 + 6 */
	ck_assert_uint_eq(r.cursor, 20);
	ck_assert_uint_eq(r.lag, 0);
	ck_assert_uint_eq(cursor(), 20);
	check_file(s.path, 20);
	/* nothing new: nothing written */
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(forward_sink_run(db, "keyward/test", &s, &o, &r, &e), KM_OK);
	ck_assert_uint_eq(r.delivered, 0);
	grow(5);
	uint64_t c, lag;
	ck_assert_int_eq(forward_sink_lag(db, &s, &c, &lag, &e), KM_OK);
	ck_assert_uint_eq(c, 20);
	ck_assert_uint_eq(lag, 5);
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(forward_sink_run(db, "keyward/test", &s, &o, &r, &e), KM_OK);
	ck_assert_uint_eq(r.delivered, 5);
	check_file(s.path, 25);
}
END_TEST

START_TEST(test_file_sink_crash_repairs)
{
	km_sink s = file_sink(4);
	forward_run_opts o = {0};
	km_forward_sink_result r;
	km_err e;
	grow(10);
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(forward_sink_run(db, "keyward/test", &s, &o, &r, &e), KM_OK);
	/* died after the fsync, before the cursor: the file is ahead by 4 */
	sql("UPDATE audit_forward SET delivered = 6 WHERE sink = 'f'");
	/* and died inside write(): a torn line */
	int fd = open(s.path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "{\"action\":\"pro", 14), 14);
	close(fd);
	grow(3);
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(forward_sink_run(db, "keyward/test", &s, &o, &r, &e), KM_OK);
	ck_assert_uint_eq(r.delivered, 3);
	ck_assert_uint_eq(cursor(), 13);
	check_file(s.path, 13);
}
END_TEST

START_TEST(test_gap_stops_delivery)
{
	km_sink s = file_sink(100);
	forward_run_opts o = {0};
	km_forward_sink_result r;
	km_err e;
	grow(10);
	sql("DELETE FROM audit_events WHERE seq = 6");
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(forward_sink_run(db, "keyward/test", &s, &o, &r, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "has no entry 6"));
	ck_assert_uint_eq(cursor(), 0); /* the batch that holds the gap is not delivered */
	ck_assert_ptr_nonnull(strstr(r.error, "has no entry 6"));
}
END_TEST

/* Another forwarder on the same sink, simulated: after each acknowledged
 * batch, someone else moves the cursor on. */
static void other_forwarder(void *pctx, const km_forward_sink_result *r)
{
	(void)pctx;
	if (r->status == KM_OK)
		sql("UPDATE audit_forward SET delivered = delivered + 1 WHERE sink = 'f'");
}

START_TEST(test_cursor_beyond_log_is_truncation)
{
	km_sink s = file_sink(100);
	forward_run_opts o = {0};
	km_forward_sink_result r;
	km_err e;
	grow(10);
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(forward_sink_run(db, "keyward/test", &s, &o, &r, &e), KM_OK);
	sql("DELETE FROM audit_events WHERE seq > 7");
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(forward_sink_run(db, "keyward/test", &s, &o, &r, &e), KM_EINTEGRITY);
	ck_assert_msg(strstr(e.msg, "acknowledged entries up to 10, but the log's size is 7"), "%s", e.msg);
}
END_TEST

START_TEST(test_cursor_compare_and_set)
{
	km_sink s = file_sink(5);
	forward_run_opts o = {0};
	o.progress = other_forwarder;
	km_forward_sink_result r;
	km_err e;
	grow(20);
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(forward_sink_run(db, "keyward/test", &s, &o, &r, &e), KM_EBUSY);
	ck_assert_ptr_nonnull(strstr(e.msg, "another forwarder"));
	ck_assert_uint_eq(r.batches, 1); /* the second batch's cursor move was refused */
	ck_assert_uint_eq(cursor(), 6);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("forward");
	TCase *tc = tcase_create("forward");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_parse_defaults_and_paths);
	tcase_add_test(tc, test_parse_refusals_name_the_field);
	tcase_add_test(tc, test_file_sink_batches_and_cursor);
	tcase_add_test(tc, test_file_sink_crash_repairs);
	tcase_add_test(tc, test_gap_stops_delivery);
	tcase_add_test(tc, test_cursor_compare_and_set);
	tcase_add_test(tc, test_cursor_beyond_log_is_truncation);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
