/*
 * test_ui_text.c — the console's pure modules: display width and clipping
 * (textwidth.c), theme parsing and loading (theme.c), the action table, key
 * names and the keymap with rebinding (actions.c), and the generated key
 * reference (docs/keys.md must equal ui_actions_markdown()).
 *
 * The modules are compiled into this test directly (they are part of the
 * keyward binary, not of libkeyward.a).
 */
#include "km.h"
#include "../ui/textwidth.c"
#include "../ui/theme.c"
#include "../ui/actions.c"
#include "../ui/rowsel.c"
#include "../ui/audittext.c"

#include <check.h>
#include <wchar.h>
#include <locale.h>
#include <stdlib.h>
#include <sys/stat.h>

static char repo_root[PATH_MAX];

static void utf8_locale(void)
{
	ck_assert_ptr_nonnull(setlocale(LC_ALL, "C.UTF-8"));
}

/* ---- width ---------------------------------------------------------------- */

static const struct {
	const char *s;
	int width;
} width_rows[] = {
	{"", 0},
	{"abc", 3},
	{"features/credit-risk", 20},
	{"\xc3\xa9t\xc3\xa9", 3},                 /* été */
	{"\xe6\x97\xa5\xe6\x9c\xac", 4},          /* 日本: two wide characters */
	{"e\xcc\x81", 1},                         /* e + combining acute */
	{"a\tb", 6},                              /* a control character draws as \x09 */
	{"\xff", 4},                              /* an invalid byte draws as \xff */
	{"\xe6\x97", 8},                          /* a truncated sequence: \xe6\x97 */
	{"\xf0\x9f\x94\x91 key", 6},              /* emoji (wide) + " key" */
	{"a\\b", 4},                             /* a backslash draws doubled */
	{"\xe2\x80\xae", 6},                      /* U+202E (wcwidth 0) draws as \u202e */
	{"\xc2\x9b", 6},                          /* U+009B draws as \u009b */
};

START_TEST(test_width)
{
	utf8_locale();
	for (size_t i = 0; i < KM_ARRAY_LEN(width_rows); i++)
		ck_assert_msg(ui_tw_width(width_rows[i].s) == width_rows[i].width,
		              "row %zu: width %d, expected %d", i, ui_tw_width(width_rows[i].s),
		              width_rows[i].width);
}
END_TEST

static const struct {
	const char *s;
	int cells;
	size_t bytes;
	int used;
} clip_rows[] = {
	{"abcdef", 3, 3, 3},
	{"abc", 10, 3, 3},
	{"abc", 0, 0, 0},
	{"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 5, 6, 4}, /* 日本語 in 5 cells: 日本 */
	{"\xe6\x97\xa5\xe6\x9c\xac", 1, 0, 0},             /* a wide char never half-fits */
	{"\xc3\xa9t\xc3\xa9", 2, 3, 2},
};

START_TEST(test_clip)
{
	utf8_locale();
	for (size_t i = 0; i < KM_ARRAY_LEN(clip_rows); i++) {
		int used = -1;
		size_t b = ui_tw_clip(clip_rows[i].s, clip_rows[i].cells, &used);
		ck_assert_msg(b == clip_rows[i].bytes && used == clip_rows[i].used,
		              "row %zu: %zu bytes / %d cells, expected %zu / %d", i, b, used,
		              clip_rows[i].bytes, clip_rows[i].used);
	}
}
END_TEST

static const struct {
	const char *s;
	int cells;
	unsigned flags;
	const char *out;
} fit_rows[] = {
	{"abcdef", 4, UI_TW_ELLIPSIS, "abc\xe2\x80\xa6"},
	{"abcdef", 4, 0, "abcd"},
	{"ab", 4, UI_TW_PAD, "ab  "},
	{"ab", 4, UI_TW_RIGHT, "  ab"},
	{"abcd", 4, UI_TW_ELLIPSIS | UI_TW_PAD, "abcd"},
	{"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 4, UI_TW_ELLIPSIS, "\xe6\x97\xa5\xe2\x80\xa6"},
	{"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 5, UI_TW_ELLIPSIS | UI_TW_PAD,
	 "\xe6\x97\xa5\xe6\x9c\xac\xe2\x80\xa6"},      /* 日本… fills 5 cells */
	{"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 4, UI_TW_ELLIPSIS | UI_TW_PAD,
	 "\xe6\x97\xa5\xe2\x80\xa6 "},                  /* 日… padded to 4 cells */
	{"a\x1b[31mb", 10, 0, "a\\x1b[31mb"},         /* escapes never reach the terminal */
	{"x\ny", 10, 0, "x\\x0ay"},
	{"ab\x1b" "cd", 5, 0, "ab"},                  /* an escape is never cut in two */
	{"ab\x1b" "cd", 6, UI_TW_ELLIPSIS, "ab\xe2\x80\xa6"},
	{"ab\x1b" "cd", 7, UI_TW_ELLIPSIS, "ab\\x1b\xe2\x80\xa6"},
	{"a\xe2\x80\xae" "b", 10, UI_TW_PAD, "a\\u202eb  "},  /* bidi: 8 cells, padded */
	{"\xc2\x9b" "31m", 10, 0, "\\u009b31m"},
	{"\x9b" "31m", 10, 0, "\\x9b31m"},
	{"c:\\x", 10, 0, "c:\\\\x"},                 /* a typed backslash is doubled */
	{"\"a\\u001b\"", 12, UI_TW_JSON, "\"a\\u001b\""}, /* JSON: its own escapes */
	{"\"\x1b\"", 12, UI_TW_JSON, "\"\\x1b\""},
	{"anything", 0, UI_TW_PAD, ""},
	{"", 3, UI_TW_PAD, "   "},
};

START_TEST(test_fit)
{
	utf8_locale();
	for (size_t i = 0; i < KM_ARRAY_LEN(fit_rows); i++) {
		char out[64];
		ui_tw_fit(out, sizeof out, fit_rows[i].s, fit_rows[i].cells, fit_rows[i].flags);
		ck_assert_msg(strcmp(out, fit_rows[i].out) == 0, "row %zu: \"%s\", expected \"%s\"", i,
		              out, fit_rows[i].out);
		/* what is drawn is all printable (wcswidth >= 0) and fits */
		wchar_t wide[64];
		size_t nw = mbstowcs(wide, out, KM_ARRAY_LEN(wide));
		ck_assert_msg(nw != (size_t)-1, "row %zu: output is not text", i);
		int drawn = wcswidth(wide, nw);
		ck_assert_msg(drawn >= 0 && drawn <= fit_rows[i].cells,
		              "row %zu: %d cells drawn for %d", i, drawn, fit_rows[i].cells);
	}
	/* a tiny buffer is never overrun and stays terminated */
	char small[4];
	ui_tw_fit(small, sizeof small, "abcdefgh", 8, UI_TW_PAD);
	ck_assert_str_eq(small, "abc");
}
END_TEST

START_TEST(test_ascii_fallback)
{
	ck_assert_ptr_nonnull(setlocale(LC_ALL, "C"));
	ck_assert_int_eq(ui_tw_locale_is_utf8(), 0);
	const ui_glyphs *g = ui_tw_glyphs(ui_tw_locale_is_utf8());
	const char *all[] = {g->hline, g->vline, g->tl, g->tr, g->bl, g->br, g->tee_down, g->tee_up,
	                     g->ellipsis, g->bar_full, g->bar_empty, g->ok, g->bad, g->sort_asc,
	                     g->sort_desc};
	for (size_t i = 0; i < KM_ARRAY_LEN(all); i++)
		ck_assert_msg(strlen(all[i]) == 1 && (unsigned char)all[i][0] < 0x80,
		              "glyph %zu is not ASCII in the C locale", i);
	/* in the C locale the terminal may not be UTF-8: non-ASCII characters
	 * draw as their code points, and a C1 control stays escaped */
	char out[32];
	ck_assert_int_eq(ui_tw_width("\xc3\xa9"), 6);
	ui_tw_fit(out, sizeof out, "\xc3\xa9\xc2\x9b", 12, 0);
	ck_assert_str_eq(out, "\\u00e9\\u009b");
	char *whole = ui_tw_display("\xe6\x97\xa5\x1b", 0);
	ck_assert_str_eq(whole, "\\u65e5\\x1b");
	free(whole);
	utf8_locale();
	ck_assert_int_eq(ui_tw_locale_is_utf8(), 1);
	g = ui_tw_glyphs(1);
	const char *uni[] = {g->hline, g->vline, g->tl, g->tr, g->bl, g->br, g->tee_down, g->tee_up,
	                     g->ellipsis, g->bar_full, g->bar_empty, g->ok, g->bad, g->sort_asc,
	                     g->sort_desc};
	for (size_t i = 0; i < KM_ARRAY_LEN(uni); i++)
		ck_assert_int_eq(ui_tw_width(uni[i]), 1);
}
END_TEST

START_TEST(test_wrap)
{
	utf8_locale();
	size_t next;
	const char *s = "hello world and more";
	ck_assert_uint_eq(ui_tw_wrap(s, 11, &next), 11);
	ck_assert_uint_eq(next, 12);
	ck_assert_uint_eq(ui_tw_wrap("abcdefghij", 4, &next), 4); /* no space: cut */
	ck_assert_uint_eq(next, 4);
	ck_assert_uint_eq(ui_tw_wrap("ab\ncd", 10, &next), 2);    /* newline ends a line */
	ck_assert_uint_eq(next, 3);
	ck_assert_uint_eq(ui_tw_wrap("\xe6\x97\xa5", 1, &next), 3); /* always advances */
}
END_TEST

/* ---- audit events in words ------------------------------------------------- */

static const struct {
	const char *details; /* the event's details object */
	const char *summary; /* exactly what a row shows */
} summary_rows[] = {
	{"{\"from\":\"active\",\"to\":\"compromised\",\"version\":2,\"reason\":\"leaked\","
	 "\"sealed\":[{\"digest\":\"ab\"}]}", "active -> compromised  leaked"},
	{"{\"previous_version\":1,\"new_version\":2,\"kind\":\"rotate\",\"digest\":\"ff\"}",
	 "v1 -> v2  rotate"},
	{"{\"asset_id\":7,\"kind\":\"feature\",\"name\":\"credit-risk/income\",\"version\":\"1\"}",
	 "asset credit-risk/income version 1  feature"},
	{"{\"state\":\"active\",\"version\":1,\"tags\":{\"owner\":\"x\"}}", "v1 active"},
	{"{\"error\":\"not-found\",\"message\":\"no key named 'x'\"}", "no key named 'x'"},
	{"{\"sealed\":[],\"signing_key\":\"00ff\",\"digest\":\"aa\"}", ""},
	{"{}", ""},
};

START_TEST(test_audit_summary)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(summary_rows); i++) {
		char ev[600], out[300];
		snprintf(ev, sizeof ev, "{\"action\":\"x\",\"actor\":\"a\",\"details\":%s,\"object\":null,"
		         "\"outcome\":\"ok\",\"seq\":1,\"time\":\"2026-01-01T00:00:00.000Z\"}",
		         summary_rows[i].details);
		ui_audit_summary(ev, out, sizeof out);
		ck_assert_msg(strcmp(out, summary_rows[i].summary) == 0, "row %zu: '%s', want '%s'", i, out,
		              summary_rows[i].summary);
	}
	char out[8];
	ui_audit_summary("not json", out, sizeof out);
	ck_assert_str_eq(out, "");
	ui_audit_summary("{\"details\":{\"from\":\"active\",\"to\":\"compromised\"}}", out, sizeof out);
	ck_assert_uint_eq(strlen(out), 7); /* cut at cap */
}
END_TEST

struct wrap_lines {
	char text[40][128];
	int indent[40];
	int n;
};

static int wrap_collect(void *ctx, const char *text, int indent)
{
	struct wrap_lines *w = ctx;
	ck_assert_int_lt(w->n, 40);
	snprintf(w->text[w->n], sizeof w->text[w->n], "%s", text);
	w->indent[w->n++] = indent;
	return 0;
}

START_TEST(test_audit_pretty_wrap)
{
	utf8_locale();
	const char *ev = "{\"action\":\"key.compromise\",\"details\":{\"reason\":\"the key leaked in a "
	                 "debug log of the scoring service\"},\"seq\":3}";
	char *pretty = ui_audit_pretty(ev);
	ck_assert_ptr_nonnull(pretty);
	ck_assert_ptr_nonnull(strstr(pretty, "\n  \"details\": {\n    \"reason\": "));
	struct wrap_lines w = {0};
	int n = ui_audit_wrap(pretty, 30, wrap_collect, &w);
	free(pretty);
	ck_assert_int_eq(n, w.n);
	/* every display line fits, and none was cut inside a word */
	const char *words[] = {"\"reason\":", "\"the", "key", "leaked", "in", "a", "debug", "log", "of",
	                       "the", "scoring", "service\""};
	size_t wi = 0;
	int reason_line = -1;
	for (int i = 0; i < w.n; i++) {
		ck_assert_int_le(w.indent[i] + ui_tw_width(w.text[i]), 30);
		if (strstr(w.text[i], "\"reason\":"))
			reason_line = i;
		if (reason_line < 0 || wi >= KM_ARRAY_LEN(words))
			continue;
		char copy[128];
		snprintf(copy, sizeof copy, "%s", w.text[i]);
		char *save = NULL;
		for (char *t = strtok_r(copy, " ", &save); t && wi < KM_ARRAY_LEN(words); t = strtok_r(NULL, " ", &save))
			ck_assert_msg(strcmp(t, words[wi++]) == 0, "line %d: '%s' is not the word '%s'", i, t, words[wi - 1]);
	}
	ck_assert_uint_eq(wi, KM_ARRAY_LEN(words));
	/* the reason's continuation lines sit two cells under its key */
	ck_assert_int_eq(w.indent[reason_line], 4);
	ck_assert_int_eq(w.indent[reason_line + 1], 6);
	/* a caller that stops early gets no more lines */
	struct wrap_lines few = {0};
	ck_assert_int_eq(ui_audit_wrap("a\nb\nc", 10, wrap_collect, &few), 3);
}
END_TEST

/* ---- themes --------------------------------------------------------------- */

static const struct {
	const char *json;
	const char *error; /* NULL: good; else a substring of the message */
} theme_rows[] = {
	{"{\"elements\": {}}", NULL},
	{"{\"name\": \"x\", \"description\": \"d\", \"elements\": {\"title\": {\"fg\": \"red\", "
	 "\"bg\": 17, \"attrs\": [\"bold\", \"underline\"]}}}", NULL},
	{"{\"mono\": true, \"elements\": {\"selected\": {\"attrs\": [\"reverse\"]}}}", NULL},
	{"{\"elements\": {\"state.compromised\": {\"fg\": \"bright-white\", \"bg\": \"red\"}}}", NULL},
	{"{\"elements\": {\"title\": {\"fg\": \"purple\"}}}", "element \"title\": fg is not a colour"},
	{"{\"elements\": {\"title\": {\"bg\": 256}}}", "bg is not a colour"},
	{"{\"elements\": {\"title\": {\"fg\": -2}}}", "fg is not a colour"},
	{"{\"elements\": {\"nosuch\": {}}}", "unknown element \"nosuch\""},
	{"{\"elements\": {\"title\": {\"attrs\": [\"blink\"]}}}", "unknown attribute \"blink\""},
	{"{\"elements\": {\"title\": {\"attrs\": \"bold\"}}}", "attrs must be an array"},
	{"{\"elements\": {\"title\": {\"colour\": \"red\"}}}", "unknown field \"colour\""},
	{"{\"elements\": {\"title\": \"red\"}}", "element \"title\" must be an object"},
	{"{\"elements\": []}", "\"elements\" must be an object"},
	{"{\"colours\": {}}", "unknown key \"colours\""},
	{"{\"name\": \"x\"}", "no \"elements\" object"},
	{"{\"name\": 3, \"elements\": {}}", "\"name\" must be a string"},
	{"{\"mono\": \"yes\", \"elements\": {}}", "\"mono\" must be true or false"},
	{"[]", "must be a JSON object"},
	{"{\"elements\": {", "line 1 column"},
	{"", "line"},
	{"{\"elements\": {}, \"elements\": {}}", "duplicate"},
};

START_TEST(test_theme_parse_table)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(theme_rows); i++) {
		ui_theme t;
		ui_theme_builtin(&t, 0);
		ui_theme before = t;
		char msg[512] = "";
		int rc = ui_theme_parse(&t, theme_rows[i].json, "themes/x.json", msg, sizeof msg);
		if (!theme_rows[i].error) {
			ck_assert_msg(rc == 0, "row %zu refused: %s", i, msg);
			continue;
		}
		ck_assert_msg(rc == -1, "row %zu accepted", i);
		ck_assert_msg(strncmp(msg, "themes/x.json: ", 15) == 0, "row %zu: no file name in \"%s\"", i,
		              msg);
		ck_assert_msg(strstr(msg, theme_rows[i].error) != NULL, "row %zu: \"%s\" lacks \"%s\"", i, msg,
		              theme_rows[i].error);
		ck_assert_msg(memcmp(&t, &before, sizeof t) == 0, "row %zu changed the theme", i);
	}
	/* values land where they should */
	ui_theme t;
	char msg[256];
	ck_assert_int_eq(ui_theme_parse(&t, theme_rows[1].json, "x", msg, sizeof msg), 0);
	ck_assert_int_eq(t.el[UI_EL_TITLE].fg, UI_C_RED);
	ck_assert_int_eq(t.el[UI_EL_TITLE].bg, 17);
	ck_assert_uint_eq(t.el[UI_EL_TITLE].attrs, UI_A_BOLD | UI_A_UNDERLINE);
	ck_assert_str_eq(t.name, "x");
	ui_theme b;
	ui_theme_builtin(&b, 0);
	ck_assert_int_eq(t.el[UI_EL_HEADER].fg, b.el[UI_EL_HEADER].fg); /* untouched: built-in */
}
END_TEST

static char *read_all(const char *path)
{
	char err[256];
	char *s = slurp(path, err, sizeof err);
	ck_assert_msg(s != NULL, "%s", err);
	return s;
}

START_TEST(test_theme_files)
{
	static const char *const names[] = {"default", "light", "high-contrast", "mono"};
	for (size_t i = 0; i < KM_ARRAY_LEN(names); i++) {
		char path[PATH_MAX + 64], msg[512];
		snprintf(path, sizeof path, "%s/themes/%s.json", repo_root, names[i]);
		char *text = read_all(path);
		ui_theme t;
		ck_assert_msg(ui_theme_parse(&t, text, path, msg, sizeof msg) == 0, "%s", msg);
		free(text);
		/* every theme names every element: nothing silently built-in */
		json_t *j = json_load_file(path, 0, NULL);
		ck_assert_ptr_nonnull(j);
		for (int e = 0; e < UI_EL_COUNT; e++)
			ck_assert_msg(json_object_get(json_object_get(j, "elements"),
			                              ui_theme_element_name((ui_element)e)) != NULL,
			              "%s lacks element %s", names[i], ui_theme_element_name((ui_element)e));
		json_decref(j);
		if (strcmp(names[i], "default") == 0 || strcmp(names[i], "mono") == 0) {
			ui_theme b;
			ui_theme_builtin(&b, strcmp(names[i], "mono") == 0);
			ck_assert_int_eq(t.mono, b.mono);
			for (int e = 0; e < UI_EL_COUNT; e++)
				ck_assert_msg(memcmp(&t.el[e], &b.el[e], sizeof b.el[e]) == 0,
				              "themes/%s.json and the built-in table differ at %s", names[i],
				              ui_theme_element_name((ui_element)e));
		}
	}
}
END_TEST

static char tmpdir[] = "/tmp/kwtheme.XXXXXX";

static void write_file(const char *dir, const char *name, const char *text)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(test_theme_load)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	ck_assert_int_eq(chdir(tmpdir), 0); /* no ./themes here */
	write_file(tmpdir, "default.json", "{\"elements\": {\"title\": {\"fg\": \"nope\"}}}");
	write_file(tmpdir, "broken.json", "{\"elements\": {");
	write_file(tmpdir, "fine.json", "{\"elements\": {\"title\": {\"fg\": \"magenta\"}}}");
	setenv("KEYWARD_THEMES_DIR", tmpdir, 1);
	unsetenv("NO_COLOR");
	ui_theme t, b;
	char msg[1024];
	ui_theme_builtin(&b, 0);

	ck_assert_int_eq(ui_theme_load(&t, "fine", msg, sizeof msg), 0);
	ck_assert_str_eq(msg, "");
	ck_assert_int_eq(t.el[UI_EL_TITLE].fg, UI_C_MAGENTA);

	/* a broken default: the message names the file and the problem; built-in */
	ck_assert_int_eq(ui_theme_load(&t, NULL, msg, sizeof msg), -1);
	ck_assert_msg(strstr(msg, "/default.json: element \"title\": fg is not a colour") &&
	              strstr(msg, "using the default theme"), "%s", msg);
	ck_assert_int_eq(memcmp(t.el, b.el, sizeof b.el), 0);

	/* a broken named theme */
	ck_assert_int_eq(ui_theme_load(&t, "broken", msg, sizeof msg), -1);
	ck_assert_msg(strstr(msg, "/broken.json: line 1") != NULL, "%s", msg);

	/* unknown and unsafe names */
	ck_assert_int_eq(ui_theme_load(&t, "nosuch", msg, sizeof msg), -1);
	ck_assert_msg(strstr(msg, "theme \"nosuch\" not found") != NULL, "%s", msg);
	ck_assert_int_eq(ui_theme_load(&t, "../etc/passwd", msg, sizeof msg), -1);
	ck_assert_msg(strstr(msg, "a theme name is") != NULL, "%s", msg);

	/* NO_COLOR wins over the asked-for theme */
	setenv("NO_COLOR", "1", 1);
	ck_assert_int_eq(ui_theme_load(&t, "fine", msg, sizeof msg), -1); /* no mono.json here */
	ck_assert_int_eq(t.mono, 1);
	write_file(tmpdir, "mono.json", "{\"mono\": true, \"elements\": {}}");
	ck_assert_int_eq(ui_theme_load(&t, "fine", msg, sizeof msg), 0);
	ck_assert_int_eq(t.mono, 1);
	unsetenv("NO_COLOR");
	unsetenv("KEYWARD_THEMES_DIR");
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The search path: {secure, $KEYWARD_THEMES_DIR, executable} -> dirs. */
static const struct {
	int secure;
	const char *env, *exe;
	const char *dirs[UI_THEME_DIRS_MAX]; /* NULL-terminated when shorter */
} dir_rows[] = {
	{0, "/home/a/my-themes", "/src/keyward/build/keyward",
	 {"/home/a/my-themes", UI_THEMES_DIR, "/src/keyward/build/../themes"}},
	{0, NULL, "/usr/local/bin/keyward", {UI_THEMES_DIR, "/usr/local/bin/../themes"}},
	{0, "", NULL, {UI_THEMES_DIR}},
	/* set-user-ID: neither the caller's variable nor the executable's place */
	{1, "/home/a/my-themes", "/tmp/link-to-keyward", {UI_THEMES_DIR}},
	{1, NULL, NULL, {UI_THEMES_DIR}},
};

START_TEST(test_theme_search_path)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(dir_rows); i++) {
		char dirs[UI_THEME_DIRS_MAX][PATH_MAX];
		size_t n = ui_theme_dirs(dir_rows[i].secure, dir_rows[i].env, dir_rows[i].exe, dirs);
		size_t want = 0;
		while (want < UI_THEME_DIRS_MAX && dir_rows[i].dirs[want])
			want++;
		ck_assert_msg(n == want, "row %zu: %zu directories, want %zu", i, n, want);
		for (size_t j = 0; j < n; j++)
			ck_assert_msg(strcmp(dirs[j], dir_rows[i].dirs[j]) == 0, "row %zu dir %zu: %s, want %s", i, j,
			              dirs[j], dir_rows[i].dirs[j]);
		for (size_t j = 0; j < n; j++)
			ck_assert_msg(strcmp(dirs[j], "themes") != 0 && strncmp(dirs[j], "./", 2) != 0,
			              "row %zu: the current directory is searched", i);
	}
}
END_TEST

/* A themes/ directory in the current directory is never read. */
START_TEST(test_theme_not_from_cwd)
{
	char dir[] = "/tmp/kwtheme-cwd.XXXXXX", sub[PATH_MAX], path[PATH_MAX], msg[4 * PATH_MAX];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sub, sizeof sub, "%s/themes", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	write_file(sub, "planted.json", "{\"elements\": {\"title\": {\"fg\": \"red\"}}}");
	ck_assert_int_eq(chdir(dir), 0);
	unsetenv("KEYWARD_THEMES_DIR");
	ck_assert_int_eq(ui_theme_find("planted", path, sizeof path, msg, sizeof msg), -1);
	ck_assert_msg(strstr(msg, "not found in") && !strstr(msg, dir) && !strstr(msg, " themes,"), "%s", msg);
	ck_assert_msg(strstr(msg, UI_THEMES_DIR) != NULL, "%s", msg);
	/* the same file is found when named through KEYWARD_THEMES_DIR */
	setenv("KEYWARD_THEMES_DIR", sub, 1);
	ck_assert_int_eq(ui_theme_find("planted", path, sizeof path, msg, sizeof msg), 0);
	unsetenv("KEYWARD_THEMES_DIR");
	ck_assert_int_eq(chdir(repo_root), 0);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- actions and the keymap ------------------------------------------------- */

START_TEST(test_keymap_default)
{
	utf8_locale();
	ui_keymap km;
	ui_keymap_default(&km);
	size_t names = 0;
	for (int a = 0; a < UI_ACT_COUNT; a++) {
		const ui_action_info *ai = ui_action_get((ui_action)a);
		ck_assert_int_eq(ui_action_by_name(ai->name), a);
		char buf[64];
		ui_tw_format(buf, sizeof buf, "%s", ai->keys);
		char *save = NULL;
		for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
			int key;
			ck_assert_msg(ui_key_parse(t, &key) == 0, "%s: key \"%s\" does not parse", ai->name, t);
			ck_assert_msg(ui_keymap_lookup(&km, key) == a, "%s: key \"%s\" bound elsewhere",
			              ai->name, t);
			char back[32];
			ui_key_format(key, back, sizeof back);
			ck_assert_str_eq(back, t); /* the help shows what the table says */
			names++;
		}
		ck_assert_msg(ai->help[0] && ai->screens[0], "%s lacks help", ai->name);
	}
	/* no key in two rows of the table */
	ck_assert_uint_eq(km.n, names);
	ck_assert_int_eq(ui_keymap_lookup(&km, 'j'), UI_ACT_MOVE_DOWN);
	ck_assert_int_eq(ui_keymap_lookup(&km, UI_KEY_FN(KEY_DOWN)), UI_ACT_MOVE_DOWN);
	ck_assert_int_eq(ui_keymap_lookup(&km, '\r'), UI_ACT_ENTER);
	ck_assert_int_eq(ui_keymap_lookup(&km, UI_KEY_FN(KEY_ENTER)), UI_ACT_ENTER);
	ck_assert_int_eq(ui_keymap_lookup(&km, 'Z'), -1);
	ck_assert_int_eq(ui_action_by_name("nosuch"), -1);
}
END_TEST

static const struct {
	const char *name;
	int key;
} key_rows[] = {
	{"j", 'j'}, {"G", 'G'}, {":", ':'}, {"?", '?'}, {"\xc3\xa9", 0xe9},
	{"^R", 18}, {"C-r", 18}, {"c-f", 6}, {"Up", UI_KEY_FN(KEY_UP)}, {"pgdn", UI_KEY_FN(KEY_NPAGE)},
	{"PageUp", UI_KEY_FN(KEY_PPAGE)}, {"Enter", '\n'}, {"Tab", '\t'}, {"BTab", UI_KEY_FN(KEY_BTAB)},
	{"Esc", 27}, {"Space", ' '}, {"F1", UI_KEY_FN(KEY_F(1))}, {"F12", UI_KEY_FN(KEY_F(12))},
	/* malformed */
	{"", -1}, {"jj", -1}, {"F13", -1}, {"F0", -1}, {"^", '^'}, {"^I", -1}, {"C-", -1},
	{"Ctrl", -1}, {" ", -1}, {"\x01", -1}, {"\xff", -1},
};

START_TEST(test_key_names)
{
	utf8_locale();
	for (size_t i = 0; i < KM_ARRAY_LEN(key_rows); i++) {
		int key = -2;
		int rc = ui_key_parse(key_rows[i].name, &key);
		if (key_rows[i].key < 0)
			ck_assert_msg(rc == -1, "row %zu \"%s\" accepted", i, key_rows[i].name);
		else
			ck_assert_msg(rc == 0 && key == key_rows[i].key, "row %zu \"%s\": rc %d key %d", i,
			              key_rows[i].name, rc, key);
	}
}
END_TEST

static json_t *J(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	ck_assert_msg(j != NULL, "%s", je.text);
	return j;
}

START_TEST(test_keymap_rebind)
{
	utf8_locale();
	ui_keymap km;
	ui_keymap_default(&km);
	char msg[512] = "";
	json_t *j = J("{\"rotate-key\": \"R\", \"move-down\": [\"n\", \"Down\"], \"help\": \"j\"}");
	ck_assert_msg(ui_keymap_rebind(&km, j, msg, sizeof msg) == 0, "%s", msg);
	json_decref(j);
	ck_assert_int_eq(ui_keymap_lookup(&km, 'R'), UI_ACT_KEY_ROTATE);
	ck_assert_int_eq(ui_keymap_lookup(&km, 'r'), -1);           /* default replaced */
	ck_assert_int_eq(ui_keymap_lookup(&km, 'n'), UI_ACT_MOVE_DOWN);
	ck_assert_int_eq(ui_keymap_lookup(&km, UI_KEY_FN(KEY_DOWN)), UI_ACT_MOVE_DOWN);
	ck_assert_int_eq(ui_keymap_lookup(&km, 'j'), UI_ACT_HELP);   /* taken from move-down */
	ck_assert_int_eq(ui_keymap_lookup(&km, '?'), -1);            /* help's defaults replaced */
	char keys[64];
	ui_keymap_keys(&km, UI_ACT_MOVE_DOWN, keys, sizeof keys);
	ck_assert_str_eq(keys, "n Down");
	ck_assert_int_eq(ui_keymap_rebind(&km, NULL, msg, sizeof msg), 0); /* no "keys" */
}
END_TEST

static const struct {
	const char *json;
	const char *error;
} rebind_bad[] = {
	{"{\"nosuch\": \"x\"}", "unknown action \"nosuch\""},
	{"{\"help\": \"NotAKey\"}", "\"help\": \"NotAKey\" is not a key name"},
	{"{\"help\": 5}", "\"help\" must be a key name or a list"},
	{"{\"help\": [\"x\", 5]}", "(not a string)"},
	{"[\"help\"]", "must be an object"},
	{"{\"move-down\": \"n\", \"quit\": \"\"}", "\"quit\": \"\" is not a key name"},
};

START_TEST(test_keymap_rebind_bad)
{
	utf8_locale();
	for (size_t i = 0; i < KM_ARRAY_LEN(rebind_bad); i++) {
		ui_keymap km, before;
		ui_keymap_default(&km);
		before = km;
		char msg[512] = "";
		json_t *j = J(rebind_bad[i].json);
		ck_assert_msg(ui_keymap_rebind(&km, j, msg, sizeof msg) == -1, "row %zu accepted", i);
		json_decref(j);
		ck_assert_msg(strstr(msg, rebind_bad[i].error) != NULL, "row %zu: \"%s\" lacks \"%s\"", i,
		              msg, rebind_bad[i].error);
		ck_assert_msg(memcmp(&km, &before, sizeof km) == 0, "row %zu: keymap changed", i);
	}
}
END_TEST

START_TEST(test_keys_markdown)
{
	utf8_locale();
	char *live = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&live, &len);
	ck_assert_ptr_nonnull(f);
	ui_actions_markdown(f);
	fclose(f);
	for (int a = 0; a < UI_ACT_COUNT; a++) {
		char want[64];
		snprintf(want, sizeof want, "| `%s` |", ui_action_get((ui_action)a)->name);
		ck_assert_msg(strstr(live, want) != NULL, "markdown lacks %s", want);
	}
	size_t n;
	ui_command_get(0, &n);
	for (size_t i = 0; i < n; i++) {
		char want[64];
		snprintf(want, sizeof want, "| `:%s", ui_command_get(i, NULL)->name);
		ck_assert_msg(strstr(live, want) != NULL, "markdown lacks %s", want);
	}
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/docs/keys.md", repo_root);
	char *doc = read_all(path);
	ck_assert_msg(strcmp(doc, live) == 0,
	              "docs/keys.md is stale: regenerate it with `keyward help keys > docs/keys.md`");
	free(doc);
	free(live);
}
END_TEST

/* Which screens an action applies to: "all", or the names listed. */
START_TEST(test_action_on_screen)
{
	static const struct {
		ui_action a;
		const char *screen;
		int on;
	} rows[] = {
		{UI_ACT_HELP, "keys", 1},          {UI_ACT_HELP, "jobs", 1},
		{UI_ACT_KEY_ROTATE, "keys", 1},    {UI_ACT_KEY_ROTATE, "schedule", 1},
		{UI_ACT_KEY_ROTATE, "audit", 0},   {UI_ACT_KEY_ROTATE, "sched", 0},
		{UI_ACT_KEY_ROTATE, "key", 0},     {UI_ACT_AUDIT_VERIFY, "audit", 1},
		{UI_ACT_REQ_APPROVE, "inbox", 1},  {UI_ACT_REQ_APPROVE, "keys", 0},
		{UI_ACT_JOB_PAUSE, "jobs", 1},     {UI_ACT_JOB_PAUSE, "", 0},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		ck_assert_msg(ui_action_on_screen(rows[i].a, rows[i].screen) == rows[i].on, "%s on \"%s\"",
		              ui_action_get(rows[i].a)->name, rows[i].screen);
	/* every screen-specific action has a hint, so the hint line names it */
	for (int a = 0; a < UI_ACT_COUNT; a++) {
		const ui_action_info *ai = ui_action_get((ui_action)a);
		if (strcmp(ai->screens, "all") != 0 && a != UI_ACT_SORT_REVERSE)
			ck_assert_msg(ai->hint[0], "%s has no hint", ai->name);
	}
}
END_TEST

/* Selection over a short list: {n, sel, top, action, page} -> {sel, top}. */
START_TEST(test_rowsel)
{
	static const struct {
		int n, sel, top;
		ui_action a;
		int page;
		int want_sel, want_top;
	} rows[] = {
		{10, 0, 0, UI_ACT_MOVE_DOWN, 4, 1, 0},
		{10, 3, 0, UI_ACT_MOVE_DOWN, 4, 4, 1},  /* scrolls to keep it visible */
		{10, 9, 6, UI_ACT_MOVE_DOWN, 4, 9, 6},  /* at the end: stays */
		{10, 0, 0, UI_ACT_MOVE_UP, 4, 0, 0},
		{10, 5, 5, UI_ACT_MOVE_UP, 4, 4, 4},
		{10, 0, 0, UI_ACT_PAGE_DOWN, 4, 4, 4},
		{10, 8, 6, UI_ACT_PAGE_DOWN, 4, 9, 6},  /* no blank rows past the end */
		{10, 5, 4, UI_ACT_PAGE_UP, 4, 1, 0},
		{10, 5, 4, UI_ACT_LAST, 4, 9, 6},
		{10, 5, 4, UI_ACT_FIRST, 4, 0, 0},
		{0, 0, 0, UI_ACT_MOVE_DOWN, 4, 0, 0},   /* empty */
		{3, 2, 0, UI_ACT_PAGE_DOWN, 10, 2, 0},  /* shorter than the window */
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		ui_rowsel r = {rows[i].n, rows[i].sel, rows[i].top};
		ck_assert(ui_rs_move(&r, rows[i].a, rows[i].page));
		ck_assert_msg(r.sel == rows[i].want_sel && r.top == rows[i].want_top,
		              "row %zu: sel %d top %d, want %d %d", i, r.sel, r.top, rows[i].want_sel,
		              rows[i].want_top);
	}
	ui_rowsel r = {5, 2, 0};
	ck_assert(!ui_rs_move(&r, UI_ACT_KEY_ROTATE, 4));
	/* the list shrank under the selection */
	r = (ui_rowsel){10, 9, 6};
	r.n = 3;
	ui_rs_fit(&r, 4);
	ck_assert_int_eq(r.sel, 2);
	ck_assert_int_eq(r.top, 0);
}
END_TEST

static Suite *ui_text_suite(void)
{
	Suite *s = suite_create("ui_text");
	TCase *t = tcase_create("textwidth");
	tcase_add_test(t, test_width);
	tcase_add_test(t, test_clip);
	tcase_add_test(t, test_fit);
	tcase_add_test(t, test_ascii_fallback);
	tcase_add_test(t, test_wrap);
	tcase_add_test(t, test_audit_summary);
	tcase_add_test(t, test_audit_pretty_wrap);
	suite_add_tcase(s, t);
	t = tcase_create("theme");
	tcase_add_test(t, test_theme_parse_table);
	tcase_add_test(t, test_theme_files);
	tcase_add_test(t, test_theme_load);
	tcase_add_test(t, test_theme_search_path);
	tcase_add_test(t, test_theme_not_from_cwd);
	suite_add_tcase(s, t);
	t = tcase_create("actions");
	tcase_add_test(t, test_keymap_default);
	tcase_add_test(t, test_key_names);
	tcase_add_test(t, test_keymap_rebind);
	tcase_add_test(t, test_keymap_rebind_bad);
	tcase_add_test(t, test_keys_markdown);
	tcase_add_test(t, test_action_on_screen);
	tcase_add_test(t, test_rowsel);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	if (!getcwd(repo_root, sizeof repo_root))
		return 2;
	SRunner *sr = srunner_create(ui_text_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
