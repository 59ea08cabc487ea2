/*
 * cli_asset.c — `keyward protect`, `unprotect`, `asset list`, `asset show`.
 *
 * Files are opened here and handed to the core as descriptors; when OUT is a
 * path the core gets the path too, so it writes a temporary file and renames
 * it only after success (a failed unprotect leaves no OUT behind).
 */
#include "cli.h"
#include "asset.h"
#include "caller.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *asset_json(const km_asset_info *a)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(a->id));
	ui_json_set_text(o, "uid", a->uid);
	ui_json_set_text(o, "kind", a->kind);
	ui_json_set_text(o, "name", a->name);
	json_object_set_new(o, "version", a->version[0] ? ui_json_text(a->version) : json_null());
	ui_json_set_text(o, "key", a->kek_name);
	json_object_set_new(o, "key_version", json_integer(a->kek_version));
	/* null while being written, or if the writer was stopped */
	json_object_set_new(o, "size", a->size == KM_ASSET_SIZE_PENDING ? json_null()
	                                                                : json_integer((json_int_t)a->size));
	json_object_set_new(o, "created", ui_json_time(a->created));
	ui_json_set_text(o, "created_by", a->created_by);
	return o;
}

static void asset_spec(const km_asset_info *a, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s:%s%s%s", a->kind, a->name, a->version[0] ? "@" : "", a->version);
}

static int is_std(const char *path)
{
	return !path || strcmp(path, "-") == 0;
}

/* IN: a path or stdin.  *fd is -1 until opened; caller closes if > 2. */
static km_status open_in(const char *path, int *fd, km_err *e)
{
	if (is_std(path)) {
		*fd = STDIN_FILENO;
		return KM_OK;
	}
	/* With your rights: a set-user-ID keyward reads nothing you cannot. */
	return km_caller_open(path, O_RDONLY, 0, fd, e);
}

/* Report what was done: a message on stderr, and with --json the asset on
 * stdout -- only when stdout is not carrying the data itself. */
static km_status report(ui_cli *cli, const char *verb, const km_asset_info *a,
                        const char *out_path, km_err *e)
{
	char spec[512];
	asset_spec(a, spec, sizeof spec);
	if (cli->json && out_path)
		return ui_json_print(asset_json(a), e);
	ui_note("%s %s (asset %" PRId64 ", key %s v%" PRIu32 ", %" PRIu64 " bytes)", verb, spec,
	        a->id, a->kek_name, a->kek_version, a->size);
	return KM_OK;
}

km_status ui_cmd_protect(ui_cli *cli, const ui_args *a, km_err *e)
{
	const char *key = ui_arg(a, "key");
	const char *spec = ui_arg(a, "asset");
	if (!key || !*key)
		return km_fail(e, KM_EUSAGE, "protect: --key NAME is required");
	if (!spec || !*spec)
		return km_fail(e, KM_EUSAGE, "protect: --asset KIND:NAME[@VERSION] is required");
	const char *in = a->npos > 0 ? a->pos[0] : NULL;
	const char *out = a->npos > 1 && !is_std(a->pos[1]) ? a->pos[1] : NULL;
	if (!out && isatty(STDOUT_FILENO))
		return km_fail(e, KM_EUSAGE,
		               "protect: refusing to write an envelope to a terminal (give OUT or redirect)");
	int in_fd = -1;
	km_status st = open_in(in, &in_fd, e);
	if (st != KM_OK)
		return st;
	km_asset_info info;
	memset(&info, 0, sizeof info);
	st = km_protect(cli->ctx, key, spec, in_fd, out ? -1 : STDOUT_FILENO, out, &info, e);
	if (in_fd > STDERR_FILENO)
		close(in_fd);
	if (st != KM_OK)
		return st;
	return report(cli, "protected", &info, out, e);
}

km_status ui_cmd_unprotect(ui_cli *cli, const ui_args *a, km_err *e)
{
	const char *in = a->npos > 0 ? a->pos[0] : NULL;
	const char *out = a->npos > 1 && !is_std(a->pos[1]) ? a->pos[1] : NULL;
	int in_fd = -1;
	km_status st = open_in(in, &in_fd, e);
	if (st != KM_OK)
		return st;
	km_asset_info info;
	memset(&info, 0, sizeof info);
	km_unprotect_opts o = {.override_compromised = ui_arg_flag(a, "override-compromised")};
	st = km_unprotect_ex(cli->ctx, in_fd, out ? -1 : STDOUT_FILENO, out, &o, &info, e);
	if (in_fd > STDERR_FILENO)
		close(in_fd);
	if (st != KM_OK)
		return st;
	return report(cli, "unprotected", &info, out, e);
}

/* ---------------------------------------------------------------- list/show */

typedef struct asset_list {
	json_t *arr;
	ui_table *t;
	int64_t last_id;
	uint64_t n;
	km_status st;
} asset_list;

static int asset_cb(void *c, const km_asset_info *x)
{
	asset_list *l = c;
	l->last_id = x->id;
	l->n++;
	if (l->arr)
		return json_array_append_new(l->arr, asset_json(x)) != 0;
	char id[24], spec[512], kv[160], size[24], created[32];
	snprintf(id, sizeof id, "%" PRId64, x->id);
	asset_spec(x, spec, sizeof spec);
	snprintf(kv, sizeof kv, "%s v%" PRIu32, x->kek_name, x->kek_version);
	if (x->size == KM_ASSET_SIZE_PENDING)
		snprintf(size, sizeof size, "incomplete");
	else
		snprintf(size, sizeof size, "%" PRIu64, x->size);
	const char *cells[] = {id, spec, kv, size, ui_time_str(x->created, created),
	                       x->created_by};
	l->st = ui_table_add(l->t, cells, NULL);
	return l->st != KM_OK;
}

#define ASSET_PAGE 500

km_status ui_cmd_asset_list(ui_cli *cli, const ui_args *a, km_err *e)
{
	uint64_t limit;
	km_status st = ui_arg_u64(a, "limit", 100, 1, UINT64_MAX, &limit, e);
	if (st != KM_OK)
		return st;
	static const char *const hdr[] = {"ID", "ASSET", "KEY", "SIZE", "CREATED", "BY"};
	asset_list l = {0};
	if (cli->json)
		l.arr = json_array();
	else
		l.t = ui_table_new(KM_ARRAY_LEN(hdr), hdr);
	if (!l.arr && !l.t)
		return km_fail(e, KM_ENOMEM, "out of memory");
	km_asset_query q = {.key_name = ui_arg(a, "key"), .kind = ui_arg(a, "kind")};
	for (;;) {
		uint64_t want = limit - l.n;
		q.limit = want < ASSET_PAGE ? (int)want : ASSET_PAGE;
		q.before_id = l.last_id;
		uint64_t before = l.n;
		st = km_asset_list(cli->ctx, &q, asset_cb, &l, e);
		if (st == KM_OK && l.st != KM_OK)
			st = km_fail(e, l.st, "out of memory listing assets");
		if (st != KM_OK || l.n - before < (uint64_t)q.limit || l.n >= limit ||
		    l.last_id <= 1)
			break;
	}
	if (st == KM_OK)
		return ui_listing_emit(l.arr, l.t, e);
	json_decref(l.arr);
	ui_table_free(l.t);
	return st;
}

km_status ui_cmd_asset_show(ui_cli *cli, const ui_args *a, km_err *e)
{
	uint64_t id;
	km_status st = ui_parse_u64(a->pos[0], "ID", 1, INT64_MAX, &id, e);
	if (st != KM_OK)
		return st;
	km_asset_info x;
	st = km_asset_get(cli->ctx, (int64_t)id, &x, e);
	if (st != KM_OK)
		return st;
	if (cli->json)
		return ui_json_print(asset_json(&x), e);
	char spec[512], created[32];
	asset_spec(&x, spec, sizeof spec);
	ui_print_line("asset:      %" PRId64 " (%s)", x.id, x.uid);
	ui_print_line("what:       %s", spec);
	ui_print_line("key:        %s version %" PRIu32, x.kek_name, x.kek_version);
	if (x.size == KM_ASSET_SIZE_PENDING)
		ui_print_line("size:       incomplete (being written, or its writer was stopped)");
	else
		ui_print_line("size:       %" PRIu64 " bytes", x.size);
	ui_print_line("created:    %s by %s", ui_time_str(x.created, created), x.created_by);
	return KM_OK;
}
