/*
 * commands.c — the operations the console performs on the deployment, and
 * the `:` command line that names them.
 *
 * Each operation is the same core call as the CLI's command (km_key_create,
 * km_key_tag, km_request_rotate, km_request_set_state, km_key_compromise,
 * km_request_destroy): the core authorises and audits; a refusal comes
 * back as the core's sentence, shown verbatim.  Rotation and state changes
 * open requests that others approve; only a compromise acts at once.  The
 * console adds only confirmation: rotation asks, a destructive state change
 * needs the key's name typed.
 *
 * Must never: change a key without the core call, or offer a state the
 * transition table does not allow from the version's state.
 */
#include "ui.h"
#include "dialog.h"
#include "kek.h"
#include "request.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define UI_MAX_TAGS 32

/* ---- tags text: "k=v, k=v" ------------------------------------------------ */

/* Parse a comma-separated tag list; 0 or -1 with the core's message. */
static int tags_parse(const char *text, km_tag *tags, size_t *n, km_err *e)
{
	*n = 0;
	char buf[1024];
	ui_tw_format(buf, sizeof buf, "%s", text);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		size_t len = strlen(t);
		while (len > 0 && t[len - 1] == ' ')
			t[--len] = '\0';
		if (!*t)
			continue;
		if (*n >= UI_MAX_TAGS) {
			km_fail(e, KM_EINVAL, "at most %d tags at once", UI_MAX_TAGS);
			return -1;
		}
		if (km_tag_parse(t, tags[*n].key, tags[*n].value, e) != KM_OK)
			return -1;
		(*n)++;
	}
	return 0;
}

/* ---- create -------------------------------------------------------------- */

struct create_ctx {
	ui_console *c;
};

static int create_submit(void *ctx, ui_field *f, size_t n, char *general, size_t cap)
{
	struct create_ctx *cc = ctx;
	(void)n;
	km_err e;
	km_err_clear(&e);
	const char *name = f[0].value;
	if (km_key_name_validate(name, &e) != KM_OK) {
		ui_tw_format(f[0].error, sizeof f[0].error, "%s", e.msg);
		return -1;
	}
	km_tag tags[UI_MAX_TAGS];
	size_t ntags;
	if (tags_parse(f[1].value, tags, &ntags, &e) != 0) {
		ui_tw_format(f[1].error, sizeof f[1].error, "%s", e.msg);
		return -1;
	}
	if (km_key_create(ui_ctx(cc->c), name, tags, ntags, &e) != KM_OK) {
		if (e.code == KM_EEXISTS || e.code == KM_EINVAL)
			ui_tw_format(f[0].error, sizeof f[0].error, "%s", e.msg);
		else
			ui_tw_format(general, cap, "%s", e.msg);
		return -1;
	}
	return 0;
}

void ui_op_create(ui_console *c, const char *name, const char *tags)
{
	ui_field f[2] = {
		{.label = "Name", .hint = "scope/name: lower-case letters, digits, . _ - and /"},
		{.label = "Tags", .hint = "comma-separated key=value, e.g. sensitivity=high, owner=risk"},
	};
	ui_tw_format(f[0].value, sizeof f[0].value, "%s", name ? name : "");
	ui_tw_format(f[1].value, sizeof f[1].value, "%s", tags ? tags : "");
	struct create_ctx cc = {c};
	if (ui_dialog_form(c, "Create key", f, 2, create_submit, &cc)) {
		ui_message(c, "created %s (version 1 active)", f[0].value);
		ui_changed(c);
	}
}

/* ---- tags ---------------------------------------------------------------- */

struct tags_ctx {
	ui_console *c;
	const char *name;
	km_tag old[UI_MAX_TAGS];
	size_t nold;
};

static int tags_collect(void *ctx, const km_tag *t)
{
	struct tags_ctx *tc = ctx;
	if (tc->nold >= UI_MAX_TAGS)
		return 1;
	tc->old[tc->nold++] = *t;
	return 0;
}

static int tags_submit(void *ctx, ui_field *f, size_t n, char *general, size_t cap)
{
	struct tags_ctx *tc = ctx;
	(void)n;
	km_err e;
	km_err_clear(&e);
	km_tag tags[2 * UI_MAX_TAGS];
	size_t nt;
	if (tags_parse(f[0].value, tags, &nt, &e) != 0) {
		ui_tw_format(f[0].error, sizeof f[0].error, "%s", e.msg);
		return -1;
	}
	/* a tag that was there and is no longer listed is removed ("k=") */
	for (size_t i = 0; i < tc->nold; i++) {
		int kept = 0;
		for (size_t j = 0; j < nt && !kept; j++)
			kept = strcmp(tags[j].key, tc->old[i].key) == 0;
		if (!kept && nt < KM_ARRAY_LEN(tags)) {
			tags[nt] = tc->old[i];
			tags[nt].value[0] = '\0';
			nt++;
		}
	}
	if (nt == 0)
		return 0;
	if (km_key_tag(ui_ctx(tc->c), tc->name, tags, nt, &e) != KM_OK) {
		if (e.code == KM_EINVAL)
			ui_tw_format(f[0].error, sizeof f[0].error, "%s", e.msg);
		else
			ui_tw_format(general, cap, "%s", e.msg);
		return -1;
	}
	return 0;
}

void ui_op_edit_tags(ui_console *c, const char *name)
{
	struct tags_ctx tc = {.c = c, .name = name};
	km_err e;
	km_err_clear(&e);
	if (km_key_tags(ui_ctx(c), name, tags_collect, &tc, &e) != KM_OK) {
		ui_error(c, &e);
		return;
	}
	ui_field f[1] = {{.label = "Tags", .hint = "comma-separated key=value; remove one by deleting it"}};
	for (size_t i = 0; i < tc.nold; i++)
		ui_tw_format(f[0].value + strlen(f[0].value), sizeof f[0].value - strlen(f[0].value),
		             "%s%s=%s", i ? ", " : "", tc.old[i].key, tc.old[i].value);
	char title[200];
	ui_tw_format(title, sizeof title, "Tags of %s", name);
	if (ui_dialog_form(c, title, f, 1, tags_submit, &tc)) {
		ui_message(c, "tags of %s saved", name);
		ui_changed(c);
	}
}

/* ---- rotate, state --------------------------------------------------------- */

/* What was opened and what happens next. */
static void requested(ui_console *c, const char *id)
{
	km_request_info r;
	km_err e;
	if (km_request_get(ui_ctx(c), id, &r, &e) != KM_OK) {
		ui_message(c, "request %s opened", id);
		return;
	}
	ui_message(c, "request %.12s opened (%s): it needs %u approval%s, then execution", id, r.summary,
	           r.quorum, r.quorum == 1 ? "" : "s");
}

/* The core call for one target state: compromise acts at once, the rest
 * are requests. */
static km_status state_call(ui_console *c, const char *name, uint32_t version, km_key_state from,
                            km_key_state to, char id[KM_REQUEST_ID_MAX], km_err *e)
{
	const char *why = "requested in the console";
	if (to == KS_COMPROMISED)
		return km_key_compromise(ui_ctx(c), name, version, "marked compromised in the console", id, e);
	if (to == KS_DESTROY_SCHEDULED)
		return km_request_destroy(ui_ctx(c), name, version, why, id, e);
	if (from == KS_DESTROY_SCHEDULED && to == KS_RETIRED)
		return km_request_cancel_destroy(ui_ctx(c), name, version, why, id, e);
	return km_request_set_state(ui_ctx(c), name, version, to, why, id, e);
}

void ui_op_rotate(ui_console *c, const char *name, int ask)
{
	/* a name that is not a key is said before anything is asked */
	km_err e;
	km_err_clear(&e);
	km_key_info k;
	if (km_key_get(ui_ctx(c), name, &k, &e) != KM_OK) {
		ui_error(c, &e);
		ui_changed(c); /* the failed lookup is audited */
		return;
	}
	char text[512];
	ui_tw_format(text, sizeof text,
	             "Request a rotation of %s? Once approved and executed, a new version becomes "
	             "active; the version active now becomes decrypt-only (it still decrypts, it no "
	             "longer encrypts).", name);
	if (ask && !ui_dialog_confirm(c, "Rotate key", text, NULL)) {
		ui_message(c, "rotation of %s cancelled", name);
		return;
	}
	char id[KM_REQUEST_ID_MAX];
	if (km_request_rotate(ui_ctx(c), name, "requested in the console", id, &e) != KM_OK) {
		ui_error(c, &e);
		ui_changed(c); /* a denial is audited: the event list changed */
		return;
	}
	requested(c, id);
	ui_changed(c);
}

void ui_op_set_state(ui_console *c, const char *name, uint32_t version, km_key_state from, int to)
{
	if (to < 0) {
		km_key_state targets[KS_COUNT];
		int n = km_state_targets(from, targets);
		if (n == 0) {
			ui_error_text(c, "version %u of %s is %s: no state change is possible from there",
			              version, name, km_state_name(from));
			return;
		}
		const char *items[KS_COUNT];
		char labels[KS_COUNT][64];
		for (int i = 0; i < n; i++) {
			ui_tw_format(labels[i], sizeof labels[i], "%s%s", km_state_name(targets[i]),
			             km_state_is_destructive(targets[i]) ? "   (destructive)" : "");
			items[i] = labels[i];
		}
		char text[300];
		ui_tw_format(text, sizeof text, "Version %u of %s is %s. Change it to:", version, name,
		             km_state_name(from));
		int pick = ui_dialog_choose(c, "Change version state", text, items, n, 0);
		if (pick < 0) {
			ui_message(c, "no change");
			return;
		}
		to = (int)targets[pick];
	}
	km_key_state target = (km_key_state)to;
	if (km_state_is_destructive(target)) {
		char text[600];
		ui_tw_format(text, sizeof text,
		             "Change version %u of %s to %s. This is destructive: data protected by this "
		             "version may become unusable, and it cannot be undone.", version, name,
		             km_state_name(target));
		if (!ui_dialog_confirm(c, "Destructive change", text, name)) {
			ui_message(c, "no change");
			return;
		}
	}
	km_err e;
	km_err_clear(&e);
	char id[KM_REQUEST_ID_MAX];
	if (state_call(c, name, version, from, target, id, &e) != KM_OK) {
		ui_error(c, &e);
		ui_changed(c);
		return;
	}
	if (target == KS_COMPROMISED) {
		/* what the compromised version's data went into, at once */
		ui_goto_impact(c, name, version);
		ui_message(c, "version %u of %s is compromised; emergency rotation request %.12s opened. "
		           "Its impact:", version, name, id);
	} else
		requested(c, id);
	ui_changed(c);
}

/* ---- the command line -------------------------------------------------------- */

/* Split at spaces; "double quotes" keep spaces.  Returns argc. */
static int split_args(char *line, char **argv, int max)
{
	int argc = 0;
	char *p = line;
	while (*p && argc < max) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		char *out = p;
		argv[argc++] = out;
		int quoted = 0;
		while (*p && (quoted || (*p != ' ' && *p != '\t'))) {
			if (*p == '"')
				quoted = !quoted;
			else
				*out++ = *p;
			p++;
		}
		if (*p)
			p++;
		*out = '\0';
	}
	return argc;
}

static const struct {
	const char *name;
	void (*fn)(ui_console *c, int argc, char **argv);
} colon_table[] = {
#define UI_CMD_FN(name, args, help, fn) {name, fn},
	UI_COMMANDS(UI_CMD_FN)
#undef UI_CMD_FN
};

void ui_op_command(ui_console *c, const char *text)
{
	char line[1024];
	ui_tw_format(line, sizeof line, "%s", text);
	char *argv[64];
	int argc = split_args(line, argv, 64);
	if (argc == 0)
		return;
	for (size_t i = 0; i < KM_ARRAY_LEN(colon_table); i++)
		if (strcmp(colon_table[i].name, argv[0]) == 0) {
			colon_table[i].fn(c, argc, argv);
			return;
		}
	ui_error_text(c, "unknown command :%s (:help lists the commands)", argv[0]);
}

static int usage(ui_console *c, const char *name)
{
	size_t n;
	ui_command_get(0, &n);
	for (size_t i = 0; i < n; i++) {
		const ui_command_info *ci = ui_command_get(i, NULL);
		if (strcmp(ci->name, name) == 0)
			ui_error_text(c, "usage: :%s %s", ci->name, ci->args);
	}
	return 0;
}

void ui_colon_create(ui_console *c, int argc, char **argv)
{
	if (argc < 2) {
		usage(c, "create");
		return;
	}
	km_tag tags[UI_MAX_TAGS];
	km_err e;
	km_err_clear(&e);
	if (argc - 2 > UI_MAX_TAGS) {
		ui_error_text(c, "at most %d tags at once", UI_MAX_TAGS);
		return;
	}
	for (int i = 2; i < argc; i++)
		if (km_tag_parse(argv[i], tags[i - 2].key, tags[i - 2].value, &e) != KM_OK) {
			ui_error(c, &e);
			return;
		}
	if (km_key_create(ui_ctx(c), argv[1], tags, (size_t)(argc - 2), &e) != KM_OK) {
		ui_error(c, &e);
		ui_changed(c);
		return;
	}
	ui_message(c, "created %s (version 1 active)", argv[1]);
	ui_changed(c);
}

void ui_colon_tag(ui_console *c, int argc, char **argv)
{
	if (argc < 3 || argc - 2 > UI_MAX_TAGS) {
		usage(c, "tag");
		return;
	}
	km_tag tags[UI_MAX_TAGS];
	km_err e;
	km_err_clear(&e);
	for (int i = 2; i < argc; i++)
		if (km_tag_parse(argv[i], tags[i - 2].key, tags[i - 2].value, &e) != KM_OK) {
			ui_error(c, &e);
			return;
		}
	if (km_key_tag(ui_ctx(c), argv[1], tags, (size_t)(argc - 2), &e) != KM_OK) {
		ui_error(c, &e);
		ui_changed(c);
		return;
	}
	ui_message(c, "tags of %s saved", argv[1]);
	ui_changed(c);
}

void ui_colon_rotate(ui_console *c, int argc, char **argv)
{
	if (argc != 2) {
		usage(c, "rotate");
		return;
	}
	ui_op_rotate(c, argv[1], 1);
}

void ui_colon_state(ui_console *c, int argc, char **argv)
{
	if (argc != 4) {
		usage(c, "state");
		return;
	}
	char *end;
	errno = 0;
	unsigned long ver = strtoul(argv[2], &end, 10);
	if (errno || *end || ver == 0 || ver > UINT32_MAX || argv[2][0] == '-') {
		ui_error_text(c, "version \"%s\" is not a version number", argv[2]);
		return;
	}
	km_key_state to;
	km_err e;
	km_err_clear(&e);
	if (km_state_parse(argv[3], &to, &e) != KM_OK) {
		ui_error(c, &e);
		return;
	}
	/* `from` only matters for the chooser; the core checks the transition */
	ui_op_set_state(c, argv[1], (uint32_t)ver, KS_ACTIVE, (int)to);
}

void ui_colon_verify(ui_console *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	ui_view *v = ui_view_find(c, "audit");
	if (!v)
		return;
	ui_view_show(c, v);
	v->ops->handle(v, UI_ACT_AUDIT_VERIFY);
}

void ui_colon_filter(ui_console *c, int argc, char **argv)
{
	ui_view *v = ui_view_current(c);
	if (!v->ops->filter) {
		ui_error_text(c, "the %s screen has no filter", v->ops->title);
		return;
	}
	char text[512] = "";
	for (int i = 1; i < argc; i++)
		ui_tw_format(text + strlen(text), sizeof text - strlen(text), "%s%s", i > 1 ? " " : "",
		             argv[i]);
	v->ops->filter(v, text);
	if (v->ops->filter_settled)
		v->ops->filter_settled(v);
}

void ui_colon_sort(ui_console *c, int argc, char **argv)
{
	ui_view *v = ui_view_current(c);
	if (!v->ops->sort) {
		ui_error_text(c, "the %s screen has one order", v->ops->title);
		return;
	}
	if (argc < 2 || argc > 3 ||
	    (argc == 3 && strcmp(argv[2], "asc") != 0 && strcmp(argv[2], "desc") != 0)) {
		usage(c, "sort");
		return;
	}
	v->ops->sort(v, argv[1], argc == 3 && strcmp(argv[2], "desc") == 0);
}

/* ---- Tab completion on the command line ------------------------------------- */

#define UI_COMPLETE_MAX 64

typedef struct completion {
	const char *word;          /* what is being completed */
	size_t wlen;
	char cand[UI_COMPLETE_MAX][KM_KEY_NAME_MAX + 1];
	int n;
	int more;                  /* there were more than UI_COMPLETE_MAX */
} completion;

static void complete_offer(completion *cp, const char *s)
{
	if (strncmp(s, cp->word, cp->wlen) != 0)
		return;
	if (cp->n >= UI_COMPLETE_MAX) {
		cp->more = 1;
		return;
	}
	ui_tw_format(cp->cand[cp->n++], sizeof cp->cand[0], "%s", s);
}

/* Keys whose name starts with the word: the name index from the word on
 * (names after it in order), so it costs one short seek at any size. */
static int complete_key_cb(void *ctx, const km_key_info *k)
{
	completion *cp = ctx;
	if (strncmp(k->name, cp->word, cp->wlen) != 0)
		return 1; /* past the names with this prefix */
	complete_offer(cp, k->name);
	return cp->more;
}

static void complete_keys(ui_console *c, completion *cp)
{
	/* Start just before the word in name order without naming a key (a
	 * lookup of a half-typed name would be audited as not found): the
	 * word with its last byte lowered, then a byte above every name
	 * character, sorts after every name below the word and before it. */
	km_key_info from;
	memset(&from, 0, sizeof from);
	if (cp->wlen > 0 && cp->wlen < sizeof from.name - 1) {
		memcpy(from.name, cp->word, cp->wlen);
		from.name[cp->wlen - 1] = (char)(from.name[cp->wlen - 1] - 1);
		from.name[cp->wlen] = 0x7f;
	}
	km_key_query q = {.sort = KM_KEY_SORT_NAME, .cursor = cp->wlen ? &from : NULL,
	                  .limit = UI_COMPLETE_MAX + 1};
	km_err e;
	km_err_clear(&e);
	km_key_list(ui_ctx(c), &q, complete_key_cb, cp, &e);
}

void ui_op_complete(ui_console *c, char *buf, size_t cap, char *note, size_t notecap)
{
	note[0] = '\0';
	/* the word under completion: after the last space */
	char *word = strrchr(buf, ' ');
	word = word ? word + 1 : buf;
	int argi = 0; /* 0: the command; i: its i-th argument */
	for (const char *p = buf; p < word; p++)
		if (*p != ' ' && (p == buf || p[-1] == ' '))
			argi++;
	completion *cp = calloc(1, sizeof *cp);
	if (!cp)
		return;
	cp->word = word;
	cp->wlen = strlen(word);
	if (argi == 0) {
		for (size_t i = 0; i < KM_ARRAY_LEN(colon_table); i++)
			complete_offer(cp, colon_table[i].name);
	} else {
		/* the argument's placeholder in the command's row of the table */
		char cmd[64];
		ui_tw_format(cmd, sizeof cmd, "%.*s", (int)strcspn(buf + strspn(buf, " "), " "),
		             buf + strspn(buf, " "));
		size_t ncmd;
		ui_command_get(0, &ncmd);
		char arg[32] = "";
		for (size_t i = 0; i < ncmd; i++) {
			const ui_command_info *ci = ui_command_get(i, NULL);
			if (strcmp(ci->name, cmd) != 0)
				continue;
			const char *a = ci->args;
			for (int k = 1; k < argi && *a; k++) {
				a += strcspn(a, " ");
				a += strspn(a, " ");
			}
			ui_tw_format(arg, sizeof arg, "%.*s", (int)strcspn(a, " "), a);
		}
		if (strcmp(arg, "NAME") == 0) {
			complete_keys(c, cp);
		} else if (strcmp(arg, "SCREEN") == 0) {
			ui_view *v;
			for (int i = 0; (v = ui_view_nth(c, i)) != NULL; i++)
				complete_offer(cp, v->ops->name);
		} else if (strcmp(arg, "STATE") == 0) {
			for (int i = 0; i < KS_COUNT; i++)
				complete_offer(cp, km_state_name((km_key_state)i));
		} else {
			ui_tw_format(note, notecap, "%s", arg[0] ? "(nothing to complete here)"
			                                         : "(unknown command)");
			free(cp);
			return;
		}
	}
	if (cp->n == 0) {
		ui_tw_format(note, notecap, "(no match)");
	} else {
		/* the longest prefix common to every candidate */
		size_t common = strlen(cp->cand[0]);
		for (int i = 1; i < cp->n; i++) {
			size_t j = 0;
			while (j < common && cp->cand[i][j] == cp->cand[0][j])
				j++;
			common = j;
		}
		size_t at = (size_t)(word - buf);
		if (at + common + 2 <= cap) {
			memcpy(word, cp->cand[0], common);
			word[common] = '\0';
			if (cp->n == 1)
				ui_tw_format(word + common, cap - at - common, " ");
		}
		if (cp->n > 1)
			for (int i = 0; i < cp->n; i++) {
				size_t len = strlen(note);
				ui_tw_format(note + len, notecap - len, "%s%s", i ? "  " : "", cp->cand[i]);
			}
		if (cp->more) {
			size_t len = strlen(note);
			ui_tw_format(note + len, notecap - len, "  ...");
		}
	}
	free(cp);
}
