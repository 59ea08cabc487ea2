/*
 * actions.c — the action and command tables, key names, the keymap and the
 * generated key reference.
 *
 * Must never: bind one key to two actions, or accept a rebinding it cannot
 * parse (the user would think a key works that does not).
 */
#define NCURSES_WIDECHAR 1
#include "actions.h"
#include "textwidth.h"

#include <limits.h>
#include <ncurses.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wchar.h>

static const ui_action_info action_table[UI_ACT_COUNT] = {
#define UI_ACT_ROW(e, name, keys, screens, hint, help, fn) [e] = {name, keys, screens, hint, help},
	UI_ACTIONS(UI_ACT_ROW)
#undef UI_ACT_ROW
};

static const ui_command_info command_table[] = {
#define UI_CMD_ROW(name, args, help, fn) {name, args, help},
	UI_COMMANDS(UI_CMD_ROW)
#undef UI_CMD_ROW
};

const ui_action_info *ui_action_get(ui_action a)
{
	return (unsigned)a < UI_ACT_COUNT ? &action_table[a] : NULL;
}

int ui_action_on_screen(ui_action a, const char *screen)
{
	const ui_action_info *ai = ui_action_get(a);
	if (!ai)
		return 0;
	size_t n = strlen(screen);
	for (const char *p = ai->screens; *p;) {
		size_t len = strcspn(p, " ");
		if ((len == 3 && strncmp(p, "all", 3) == 0) || (len == n && strncmp(p, screen, n) == 0))
			return 1;
		p += len;
		p += strspn(p, " ");
	}
	return 0;
}

int ui_action_by_name(const char *name)
{
	for (int i = 0; i < UI_ACT_COUNT; i++)
		if (strcmp(action_table[i].name, name) == 0)
			return i;
	return -1;
}

const ui_command_info *ui_command_get(size_t i, size_t *count)
{
	size_t n = sizeof command_table / sizeof command_table[0];
	if (count)
		*count = n;
	return i < n ? &command_table[i] : NULL;
}

/* ---- key names ------------------------------------------------------- */

static const struct {
	const char *name;
	int key;
} key_names[] = {
	{"Up", UI_KEY_FN(KEY_UP)},       {"Down", UI_KEY_FN(KEY_DOWN)},
	{"Left", UI_KEY_FN(KEY_LEFT)},   {"Right", UI_KEY_FN(KEY_RIGHT)},
	{"PgUp", UI_KEY_FN(KEY_PPAGE)},  {"PgDn", UI_KEY_FN(KEY_NPAGE)},
	{"Home", UI_KEY_FN(KEY_HOME)},   {"End", UI_KEY_FN(KEY_END)},
	{"BTab", UI_KEY_FN(KEY_BTAB)},   {"Backspace", UI_KEY_FN(KEY_BACKSPACE)},
	{"Delete", UI_KEY_FN(KEY_DC)},   {"Insert", UI_KEY_FN(KEY_IC)},
	{"Enter", UI_KEY_ENTER},         {"Tab", '\t'},
	{"Esc", 27},                     {"Space", ' '},
	/* accepted spellings, never printed */
	{"PageUp", UI_KEY_FN(KEY_PPAGE)}, {"PageDown", UI_KEY_FN(KEY_NPAGE)},
	{"Return", UI_KEY_ENTER},         {"Escape", 27},
	{"S-Tab", UI_KEY_FN(KEY_BTAB)},
};

int ui_key_normalize(int key)
{
	if (key == '\r' || key == UI_KEY_FN(KEY_ENTER))
		return UI_KEY_ENTER;
	if (key == 127 || key == 8) /* DEL / ^H as sent for Backspace */
		return UI_KEY_FN(KEY_BACKSPACE);
	return key;
}

int ui_key_parse(const char *name, int *key)
{
	if (!name || !*name)
		return -1;
	for (size_t i = 0; i < sizeof key_names / sizeof key_names[0]; i++)
		if (strcasecmp(name, key_names[i].name) == 0) {
			*key = key_names[i].key;
			return 0;
		}
	if ((name[0] == 'F' || name[0] == 'f') && name[1] >= '1' && name[1] <= '9') {
		char *end;
		long n = strtol(name + 1, &end, 10);
		if (*end == '\0' && n >= 1 && n <= 12) {
			*key = UI_KEY_FN(KEY_F((int)n));
			return 0;
		}
	}
	const char *ctl = NULL;
	if (name[0] == '^' && name[1] && !name[2])
		ctl = name + 1;
	else if ((name[0] == 'C' || name[0] == 'c') && name[1] == '-' && name[2] && !name[3])
		ctl = name + 2;
	if (ctl) {
		char c = *ctl;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c < '@' || c > '_' || c == 'I' || c == 'M' || c == '[')
			return -1; /* Tab, Enter and Esc have their own names */
		*key = c - '@';
		return 0;
	}
	/* exactly one printable character */
	mbstate_t st;
	memset(&st, 0, sizeof st);
	wchar_t wc;
	size_t len = strlen(name);
	size_t n = mbrtowc(&wc, name, len, &st);
	if (n == (size_t)-1 || n == (size_t)-2 || n == 0 || n != len || wc <= ' ' || wc == 127 ||
	    wcwidth(wc) <= 0)
		return -1;
	*key = (int)wc;
	return 0;
}

void ui_key_format(int key, char *buf, size_t cap)
{
	for (size_t i = 0; i < sizeof key_names / sizeof key_names[0]; i++)
		if (key_names[i].key == key) {
			ui_tw_format(buf, cap, "%s", key_names[i].name);
			return;
		}
	for (int n = 1; n <= 12; n++)
		if (key == UI_KEY_FN(KEY_F(n))) {
			ui_tw_format(buf, cap, "F%d", n);
			return;
		}
	if (key > 0 && key < 32) {
		ui_tw_format(buf, cap, "^%c", key + '@');
		return;
	}
	if (key > 32 && key < 0x110000) {
		char mb[MB_LEN_MAX + 1];
		mbstate_t st;
		memset(&st, 0, sizeof st);
		size_t n = wcrtomb(mb, (wchar_t)key, &st);
		if (n != (size_t)-1) {
			mb[n] = '\0';
			ui_tw_format(buf, cap, "%s", mb);
			return;
		}
	}
	ui_tw_format(buf, cap, "<%#x>", (unsigned)key);
}

/* ---- keymap -------------------------------------------------------- */

static void keymap_unbind_key(ui_keymap *km, int key)
{
	size_t o = 0;
	for (size_t i = 0; i < km->n; i++)
		if (km->b[i].key != key)
			km->b[o++] = km->b[i];
	km->n = o;
}

static void keymap_unbind_action(ui_keymap *km, ui_action a)
{
	size_t o = 0;
	for (size_t i = 0; i < km->n; i++)
		if (km->b[i].action != a)
			km->b[o++] = km->b[i];
	km->n = o;
}

static int keymap_bind(ui_keymap *km, int key, ui_action a)
{
	keymap_unbind_key(km, key);
	if (km->n >= UI_KEYMAP_MAX)
		return -1;
	km->b[km->n].key = key;
	km->b[km->n].action = a;
	km->n++;
	return 0;
}

void ui_keymap_default(ui_keymap *km)
{
	km->n = 0;
	for (int a = 0; a < UI_ACT_COUNT; a++) {
		char names[64];
		ui_tw_format(names, sizeof names, "%s", action_table[a].keys);
		char *save = NULL;
		for (char *t = strtok_r(names, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
			int key;
			/* the table is ours: a name that does not parse is a bug the
			 * unit test catches; skip it rather than crash */
			if (ui_key_parse(t, &key) == 0)
				keymap_bind(km, key, (ui_action)a);
		}
	}
}

static int rebind_one(ui_keymap *km, const char *action, const json_t *v, ui_action a,
                      char *msg, size_t cap)
{
	const json_t *list[32];
	size_t n = 0;
	if (json_is_string(v)) {
		list[n++] = v;
	} else if (json_is_array(v) && json_array_size(v) <= 32) {
		for (size_t i = 0; i < json_array_size(v); i++)
			list[n++] = json_array_get(v, i);
	} else {
		ui_tw_format(msg, cap, "config keys: \"%s\" must be a key name or a list of up to 32 "
		             "key names", action);
		return -1;
	}
	keymap_unbind_action(km, a);
	for (size_t i = 0; i < n; i++) {
		int key;
		const char *kn = json_is_string(list[i]) ? json_string_value(list[i]) : NULL;
		if (!kn || ui_key_parse(kn, &key) != 0) {
			ui_tw_format(msg, cap, "config keys: \"%s\": \"%s\" is not a key name (a character, "
			             "^X, Up, Down, Left, Right, PgUp, PgDn, Home, End, Enter, Tab, BTab, "
			             "Esc, Space, Backspace, Delete, Insert, F1..F12)",
			             action, kn ? kn : "(not a string)");
			return -1;
		}
		if (keymap_bind(km, key, a) != 0) {
			ui_tw_format(msg, cap, "config keys: too many bindings");
			return -1;
		}
	}
	return 0;
}

int ui_keymap_rebind(ui_keymap *km, const json_t *keys, char *msg, size_t cap)
{
	if (!keys)
		return 0;
	if (!json_is_object(keys)) {
		ui_tw_format(msg, cap, "config keys: must be an object of action name -> key or keys");
		return -1;
	}
	ui_keymap next = *km;
	const char *name;
	json_t *v;
	json_object_foreach((json_t *)keys, name, v) {
		int a = ui_action_by_name(name);
		if (a < 0) {
			ui_tw_format(msg, cap, "config keys: unknown action \"%s\" (see `keyward help keys`)",
			             name);
			return -1;
		}
		if (rebind_one(&next, name, v, (ui_action)a, msg, cap) != 0)
			return -1;
	}
	*km = next;
	return 0;
}

int ui_keymap_lookup(const ui_keymap *km, int key)
{
	key = ui_key_normalize(key);
	for (size_t i = 0; i < km->n; i++)
		if (km->b[i].key == key)
			return (int)km->b[i].action;
	return -1;
}

void ui_keymap_keys(const ui_keymap *km, ui_action a, char *buf, size_t cap)
{
	size_t o = 0;
	if (cap)
		buf[0] = '\0';
	for (size_t i = 0; i < km->n; i++) {
		if (km->b[i].action != a)
			continue;
		char kn[32];
		ui_key_format(km->b[i].key, kn, sizeof kn);
		int w = snprintf(buf + o, cap - o, "%s%s", o ? " " : "", kn);
		if (w < 0 || (size_t)w >= cap - o)
			break;
		o += (size_t)w;
	}
}

void ui_actions_markdown(FILE *f)
{
	fputs("# Console keys and commands\n\n"
	      "<!-- Generated from the action table in ui/actions.h by `keyward help keys`;\n"
	      "     do not edit: a test compares this file with the program's output. -->\n\n"
	      "`keyward` (or `keyward console [--theme NAME]`) opens the console. Every key\n"
	      "below is an action of one table; rebind any of them in `config.json`:\n\n"
	      "```json\n\"keys\": {\"rotate-key\": \"R\", \"move-down\": [\"j\", \"n\"]}\n```\n\n"
	      "The keys you name replace the action's defaults and are taken from any\n"
	      "other action that had them. `?` shows the keys in force.\n\n"
	      "| action | default keys | screens | what it does |\n"
	      "|---|---|---|---|\n", f);
	for (int a = 0; a < UI_ACT_COUNT; a++) {
		fprintf(f, "| `%s` |", action_table[a].name);
		char names[64];
		ui_tw_format(names, sizeof names, "%s", action_table[a].keys);
		char *save = NULL;
		for (char *t = strtok_r(names, " ", &save); t; t = strtok_r(NULL, " ", &save))
			fprintf(f, " `%s`", t);
		fprintf(f, " | %s | %s |\n", action_table[a].screens, action_table[a].help);
	}
	fputs("\nThe mouse selects a row with a click and scrolls with the wheel.\n\n"
	      "## Filters\n\n"
	      "`/` means the same on every screen: a bare word matches names containing\n"
	      "it, a `field:value` word selects by that field; the header's count follows\n"
	      "the filter; "
	      "Enter keeps the filter, Esc restores the previous one, `q` clears\n"
	      "it.\n\n"
	      "- keys screen: a word matches key names containing it; `tag:value` (e.g.\n"
	      "  `sensitivity:high`) matches keys whose tag has that value; `!` shows only\n"
	      "  the keys that need attention.\n"
	      "- audit screen: a word selects the events about the keys whose names\n"
	      "  contain it (and their versions); `key:NAME` (the key and its versions,\n"
	      "  by name prefix), `object:PREFIX`, `actor:NAME`, `action:NAME`,\n"
	      "  `outcome:ok|denied|error`, `since:TIME`, `until:TIME` (RFC 3339 or\n"
	      "  YYYY-MM-DD).  The rows follow as you type; the count, on Enter.\n"
	      "- schedule, approvals and operations screens: a word matches key names\n"
	      "  (or request objects) containing it, as you type.\n\n"
	      "## Commands (`:`)\n\n"
	      "They run the same core calls as the CLI (`keyward key rotate NAME` is\n"
	      "`:rotate NAME`), with the same authorisation and audit.\n\n"
	      "| command | what it does |\n|---|---|\n", f);
	for (size_t i = 0; i < sizeof command_table / sizeof command_table[0]; i++)
		fprintf(f, "| `:%s%s%s` | %s |\n", command_table[i].name,
		        *command_table[i].args ? " " : "", command_table[i].args,
		        command_table[i].help);
}
