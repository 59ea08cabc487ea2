/*
 * audittext.c — audit events in words (audittext.h).
 */
#include "audittext.h"
#include "textwidth.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Changes recorded as a pair of detail keys, old and new; `prefix` marks
 * version numbers. */
static const struct {
	const char *old_key, *new_key, *prefix;
} audit_changes[] = {
	{"from", "to", ""},
	{"previous_version", "new_version", "v"},
	{"from_version", "to_version", "v"},
	{"previous_state", "state", ""},
};

/* Single particulars worth a list row, in the order shown, with their
 * label ("" for none). */
static const struct {
	const char *key, *label;
} audit_particulars[] = {
	{"name", "asset "},
	{"rule", "rule "},
	{"kind", ""},
	{"reason", ""},
	{"message", ""},
	{"count", "count "},
	{"roles", "roles "},
};

/* A scalar as text: strings as they are, integers and booleans in JSON. */
static int scalar_text(const json_t *v, char *buf, size_t cap)
{
	if (json_is_string(v))
		snprintf(buf, cap, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
	else
		return 0;
	return buf[0] != '\0';
}

static void append(char *buf, size_t cap, const char *text)
{
	size_t n = strlen(buf);
	if (n + 1 < cap)
		snprintf(buf + n, cap - n, "%s%s", n ? "  " : "", text);
}

void ui_audit_summary(const char *event_json, char *buf, size_t cap)
{
	if (cap == 0)
		return;
	buf[0] = '\0';
	json_t *ev = event_json ? json_loads(event_json, 0, NULL) : NULL;
	json_t *d = ev ? json_object_get(ev, "details") : NULL;
	if (!json_is_object(d)) {
		json_decref(ev);
		return;
	}
	char a[160], b[160], t[400];
	int changed_state = 0;
	for (size_t i = 0; i < sizeof audit_changes / sizeof audit_changes[0]; i++) {
		if (!scalar_text(json_object_get(d, audit_changes[i].new_key), b, sizeof b))
			continue;
		/* "state" alone (a job's) is not a change; with its old value it is */
		if (!scalar_text(json_object_get(d, audit_changes[i].old_key), a, sizeof a))
			continue;
		snprintf(t, sizeof t, "%s%s -> %s%s", audit_changes[i].prefix, a, audit_changes[i].prefix, b);
		append(buf, cap, t);
		changed_state = 1;
	}
	/* a key version named on its own (key.create, key.state on one
	 * version); a string "version" is an asset's own, shown with its name */
	const json_t *ver = json_object_get(d, "version");
	if (!changed_state && json_is_integer(ver) && scalar_text(ver, a, sizeof a)) {
		const json_t *st = json_object_get(d, "state");
		snprintf(t, sizeof t, "v%s%s%s", a, json_is_string(st) ? " " : "",
		         json_is_string(st) ? json_string_value(st) : "");
		append(buf, cap, t);
	}
	for (size_t i = 0; i < sizeof audit_particulars / sizeof audit_particulars[0]; i++) {
		if (!scalar_text(json_object_get(d, audit_particulars[i].key), a, sizeof a))
			continue;
		if (strcmp(audit_particulars[i].key, "name") == 0 && json_is_string(ver))
			snprintf(t, sizeof t, "asset %s version %s", a, json_string_value(ver));
		else
			snprintf(t, sizeof t, "%s%s", audit_particulars[i].label, a);
		append(buf, cap, t);
	}
	json_decref(ev);
}

char *ui_audit_pretty(const char *event_json)
{
	json_t *ev = event_json ? json_loads(event_json, 0, NULL) : NULL;
	if (!ev)
		return strdup(event_json ? event_json : "");
	char *s = json_dumps(ev, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(ev);
	return s;
}

int ui_audit_wrap(const char *text, int cells, int (*line)(void *ctx, const char *text, int indent),
                  void *ctx)
{
	int emitted = 0;
	const char *p = text ? text : "";
	char out[1024];
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char src[4096];
		snprintf(src, sizeof src, "%.*s", (int)len, p);
		int indent = 0;
		while (src[indent] == ' ')
			indent++;
		/* a line indented past half the width is drawn from the left */
		if (indent > cells / 2)
			indent = 0;
		const char *q = src + indent;
		int first = 1;
		while (first || *q) {
			int ind = first ? indent : indent + 2;
			if (ind > cells / 2)
				ind = cells / 2;
			size_t next = 0;
			size_t n = *q ? ui_tw_wrap(q, cells - ind, &next) : 0;
			snprintf(out, sizeof out, "%.*s", (int)n, q);
			/* no trailing space where it broke */
			size_t o = strlen(out);
			while (o > 0 && out[o - 1] == ' ')
				out[--o] = '\0';
			emitted++;
			if (line(ctx, out, ind))
				return emitted;
			q += *q ? next : 0;
			first = 0;
		}
		p += len + (eol ? 1 : 0);
	}
	return emitted;
}
