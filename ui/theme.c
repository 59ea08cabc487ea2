/*
 * theme.c — loading themes/NAME.json into styles per element.
 *
 * Must never: leave the console without a theme, read a file outside the
 * search path because of a theme name ("../x"), or accept a file with an
 * unknown element, colour or attribute silently (a typo must be reported).
 */
#include "theme.h"
#include "textwidth.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

static const struct {
	const char *name;
	ui_style normal, mono;
} builtin[UI_EL_COUNT] = {
#define UI_EL_ROW(e, name, fg, bg, a, m) [e] = {name, {fg, bg, a}, {UI_C_DEFAULT, UI_C_DEFAULT, m}},
	UI_ELEMENTS(UI_EL_ROW)
#undef UI_EL_ROW
};

static const struct {
	const char *name;
	unsigned bit;
} attr_names[] = {
#define UI_ATTR_ROW(e, name) {name, e},
	UI_ATTRS(UI_ATTR_ROW)
#undef UI_ATTR_ROW
};

static const char *const colour_names[16] = {
	"black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
	"bright-black", "bright-red", "bright-green", "bright-yellow",
	"bright-blue", "bright-magenta", "bright-cyan", "bright-white",
};

const char *ui_theme_element_name(ui_element e)
{
	return (unsigned)e < UI_EL_COUNT ? builtin[e].name : "?";
}

int ui_theme_element_by_name(const char *name)
{
	for (int i = 0; i < UI_EL_COUNT; i++)
		if (strcmp(builtin[i].name, name) == 0)
			return i;
	return -1;
}

void ui_theme_builtin(ui_theme *t, int mono)
{
	memset(t, 0, sizeof *t);
	ui_tw_format(t->name, sizeof t->name, "%s", mono ? "mono" : "default");
	t->mono = mono;
	for (int i = 0; i < UI_EL_COUNT; i++)
		t->el[i] = mono ? builtin[i].mono : builtin[i].normal;
}

static int fail(char *msg, size_t cap, const char *origin, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *msg, size_t cap, const char *origin, const char *fmt, ...)
{
	char what[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	ui_tw_format(msg, cap, "%s: %s", origin, what);
	return -1;
}

static int parse_colour(const json_t *v, short *out)
{
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n < 0 || n > 255)
			return -1;
		*out = (short)n;
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	const char *s = json_string_value(v);
	if (strcmp(s, "default") == 0) {
		*out = UI_C_DEFAULT;
		return 0;
	}
	for (short i = 0; i < 16; i++)
		if (strcmp(s, colour_names[i]) == 0) {
			*out = i;
			return 0;
		}
	return -1;
}

static int parse_element(const char *ename, const json_t *o, ui_style *st,
                         const char *origin, char *msg, size_t cap)
{
	if (!json_is_object(o))
		return fail(msg, cap, origin, "element \"%s\" must be an object like "
		            "{\"fg\": \"white\", \"bg\": \"blue\", \"attrs\": [\"bold\"]}", ename);
	ui_style s = {UI_C_DEFAULT, UI_C_DEFAULT, 0};
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v) {
		if (strcmp(k, "fg") == 0 || strcmp(k, "bg") == 0) {
			if (parse_colour(v, strcmp(k, "fg") == 0 ? &s.fg : &s.bg) != 0)
				return fail(msg, cap, origin, "element \"%s\": %s is not a colour "
				            "(default, black, red, green, yellow, blue, magenta, cyan, "
				            "white, bright-NAME or 0..255)", ename, k);
		} else if (strcmp(k, "attrs") == 0) {
			if (!json_is_array(v))
				return fail(msg, cap, origin, "element \"%s\": attrs must be an array of names", ename);
			size_t i;
			json_t *a;
			json_array_foreach(v, i, a) {
				const char *an = json_is_string(a) ? json_string_value(a) : NULL;
				size_t j = 0;
				while (an && j < sizeof attr_names / sizeof attr_names[0] &&
				       strcmp(an, attr_names[j].name) != 0)
					j++;
				if (!an || j == sizeof attr_names / sizeof attr_names[0])
					return fail(msg, cap, origin, "element \"%s\": unknown attribute %s%s%s "
					            "(bold, dim, underline, reverse, standout, italic)", ename,
					            an ? "\"" : "", an ? an : "(not a string)", an ? "\"" : "");
				s.attrs |= attr_names[j].bit;
			}
		} else {
			return fail(msg, cap, origin, "element \"%s\": unknown field \"%s\" (fg, bg, attrs)",
			            ename, k);
		}
	}
	*st = s;
	return 0;
}

int ui_theme_parse(ui_theme *t, const char *text, const char *origin, char *msg, size_t cap)
{
	json_error_t je;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return fail(msg, cap, origin, "line %d column %d: %s", je.line, je.column, je.text);
	int rc = -1;
	ui_theme n;
	const char *k;
	json_t *v;
	if (!json_is_object(root)) {
		fail(msg, cap, origin, "a theme must be a JSON object with \"elements\"");
		goto out;
	}
	json_t *mono = json_object_get(root, "mono");
	if (mono && !json_is_boolean(mono)) {
		fail(msg, cap, origin, "\"mono\" must be true or false");
		goto out;
	}
	ui_theme_builtin(&n, mono && json_is_true(mono));
	json_object_foreach(root, k, v) {
		if (strcmp(k, "name") == 0 || strcmp(k, "description") == 0) {
			if (!json_is_string(v)) {
				fail(msg, cap, origin, "\"%s\" must be a string", k);
				goto out;
			}
		} else if (strcmp(k, "elements") == 0) {
			if (!json_is_object(v)) {
				fail(msg, cap, origin, "\"elements\" must be an object of element name -> style");
				goto out;
			}
		} else if (strcmp(k, "mono") != 0) {
			fail(msg, cap, origin, "unknown key \"%s\" (name, description, mono, elements)", k);
			goto out;
		}
	}
	json_t *els = json_object_get(root, "elements");
	if (!els) {
		fail(msg, cap, origin, "no \"elements\" object");
		goto out;
	}
	json_object_foreach(els, k, v) {
		int e = ui_theme_element_by_name(k);
		if (e < 0) {
			fail(msg, cap, origin, "unknown element \"%s\"", k);
			goto out;
		}
		if (parse_element(k, v, &n.el[e], origin, msg, cap) != 0)
			goto out;
	}
	json_t *name = json_object_get(root, "name");
	if (name)
		ui_tw_format(n.name, sizeof n.name, "%s", json_string_value(name));
	ui_tw_format(n.path, sizeof n.path, "%s", origin);
	*t = n;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

static int name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

size_t ui_theme_dirs(int secure, const char *env_dir, const char *exe_path,
                     char dirs[UI_THEME_DIRS_MAX][PATH_MAX])
{
	size_t n = 0;
	if (!secure && env_dir && *env_dir)
		ui_tw_format(dirs[n++], PATH_MAX, "%s", env_dir);
	ui_tw_format(dirs[n++], PATH_MAX, "%s", UI_THEMES_DIR);
	if (!secure && exe_path && *exe_path) {
		char copy[PATH_MAX];
		ui_tw_format(copy, sizeof copy, "%s", exe_path);
		ui_tw_format(dirs[n++], PATH_MAX, "%s/../themes", dirname(copy));
	}
	return n;
}

int ui_theme_find(const char *name, char *path, size_t cap, char *msg, size_t msgcap)
{
	if (!name_ok(name)) {
		ui_tw_format(msg, msgcap, "theme \"%s\": a theme name is 1-63 letters, digits, '-' or '_'", name);
		return -1;
	}
	/* AT_SECURE: set-user-ID, set-group-ID or file capabilities. */
	int secure = getauxval(AT_SECURE) != 0;
	char exe[PATH_MAX];
	ssize_t len = secure ? -1 : readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (len >= 0)
		exe[len] = '\0';
	char dirs[UI_THEME_DIRS_MAX][PATH_MAX];
	size_t n = ui_theme_dirs(secure, secure_getenv("KEYWARD_THEMES_DIR"), len >= 0 ? exe : NULL, dirs);
	for (size_t i = 0; i < n; i++) {
		ui_tw_format(path, cap, "%s/%s.json", dirs[i], name);
		if (access(path, F_OK) == 0)
			return 0;
	}
	char where[3 * PATH_MAX + 8] = "";
	for (size_t i = 0; i < n; i++)
		ui_tw_format(where + strlen(where), sizeof where - strlen(where), "%s%s", i ? ", " : "", dirs[i]);
	ui_tw_format(msg, msgcap, "theme \"%s\" not found in %s", name, where);
	return -1;
}

static char *slurp(const char *path, char *err, size_t cap)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		ui_tw_format(err, cap, "%s: %s", path, strerror(errno));
		return NULL;
	}
	size_t n = 0, size = 4096;
	char *buf = malloc(size);
	while (buf) {
		size_t got = fread(buf + n, 1, size - n - 1, f);
		n += got;
		if (n + 1 < size)
			break;
		if (size >= (1u << 20)) { /* a theme is a few KiB */
			free(buf);
			buf = NULL;
			ui_tw_format(err, cap, "%s: larger than 1 MiB", path);
			fclose(f);
			return NULL;
		}
		char *nb = realloc(buf, size * 2);
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		size *= 2;
	}
	if (!buf)
		ui_tw_format(err, cap, "%s: out of memory", path);
	else if (ferror(f)) {
		ui_tw_format(err, cap, "%s: %s", path, strerror(errno));
		free(buf);
		buf = NULL;
	} else
		buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Load one named theme from the search path; 0 or -1 with msg. */
static int load_named(ui_theme *t, const char *name, char *msg, size_t cap)
{
	char path[PATH_MAX];
	if (ui_theme_find(name, path, sizeof path, msg, cap) != 0)
		return -1;
	char *text = slurp(path, msg, cap);
	if (!text)
		return -1;
	int rc = ui_theme_parse(t, text, path, msg, cap);
	free(text);
	if (rc == 0)
		ui_tw_format(t->name, sizeof t->name, "%s", name);
	return rc;
}

int ui_theme_load(ui_theme *t, const char *name, char *msg, size_t cap)
{
	const char *nc = getenv("NO_COLOR");
	int no_color = nc && *nc;
	if (no_color || !name || !*name)
		name = no_color ? "mono" : "default";
	msg[0] = '\0';
	char why[512];
	if (load_named(t, name, why, sizeof why) == 0) {
		if (no_color)
			t->mono = 1; /* NO_COLOR wins even over a coloured "mono" file */
		return 0;
	}
	int builtin_default = strcmp(name, "default") == 0 && strstr(why, "not found");
	if (!builtin_default)
		ui_tw_format(msg, cap, "using the default theme: %s", why);
	if (no_color) {
		ui_theme_builtin(t, 1);
		return -1;
	}
	if (strcmp(name, "default") == 0 || load_named(t, "default", why, sizeof why) != 0)
		ui_theme_builtin(t, 0);
	return builtin_default ? 0 : -1;
}
