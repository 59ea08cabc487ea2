/*
 * cli.h — the command-line front end: one table of commands.
 *
 * Every command is one row of ui_cli_commands[] (cli.c): its name and
 * subcommand, the positional arguments it takes, its options, a summary, a
 * longer help text and the handler.  That table alone produces the command
 * dispatch, `keyward --help`, `keyward COMMAND --help` and docs/cli.md
 * (`keyward help markdown`).  Adding a command is one row and one handler.
 *
 * Handlers call the core (the core headers) and nothing else that changes the
 * deployment: the core authorises and audits.  Handlers write data to
 * stdout; messages go to stderr as "keyward: <message>", printed once by the
 * dispatcher from the km_err a handler returns.  Exit code =
 * km_status_exit_code(status); a usage error is KM_EUSAGE (exit 2).
 */
#ifndef UI_CLI_H
#define UI_CLI_H

#include "keyward.h"

#include <stdio.h>
#include <jansson.h>

typedef struct ui_cli ui_cli;
typedef struct ui_args ui_args;

/* One option of a command.  arg == NULL: a flag taking no value. */
typedef struct ui_opt {
	const char *name;   /* long name, without "--" */
	char short_name;    /* 0: none */
	const char *arg;    /* placeholder shown in usage ("N", "FILE"), or NULL */
	const char *help;
} ui_opt;

enum {
	UI_CMD_SESSION = 1u << 0, /* needs an open session (km_open) */
	UI_CMD_JSON    = 1u << 1, /* has --json output */
	UI_CMD_HIDDEN  = 1u << 2, /* not listed in --help / docs */
};

typedef km_status (*ui_cmd_fn)(ui_cli *cli, const ui_args *a, km_err *e);

typedef struct ui_cmd {
	const char *name;     /* "key" */
	const char *sub;      /* "list", or NULL for a command without one */
	const char *args;     /* positional synopsis: "NAME VERSION STATE" */
	int min_args, max_args; /* max -1: unlimited */
	const char *summary;  /* one line */
	const char *help;     /* paragraph(s), may be NULL */
	const ui_opt *opts;   /* terminated by a row with name NULL; may be NULL */
	unsigned flags;
	ui_cmd_fn run;
} ui_cmd;

/* Parsed command line of one command.  Options are kept in the order given,
 * so a repeatable option (--tag) keeps all its values. */
struct ui_args {
	const ui_cmd *cmd;
	size_t nopts;
	struct ui_arg_val { const ui_opt *opt; const char *val; } *opts;
	int npos;
	char **pos;
};

/* Process-wide state of one CLI invocation. */
struct ui_cli {
	const char *prog;
	const char *home;       /* --home, or NULL */
	const char *pin_file;   /* global --pin-file, or NULL */
	const char *user;       /* --user (personal deployments), or NULL */
	const char *passphrase_file; /* --passphrase-file, or NULL */
	int json;               /* --json given (globally or on the command) */
	int stderr_tty;
	km_ctx *ctx;            /* open for UI_CMD_SESSION commands */
	/* init --demo only: the demo's backdated clock (demo.h) */
	int64_t (*clock)(void *c);
	void *clock_ctx;
};

/* Entry point: parse, dispatch, print the error, return the exit code. */
int ui_cli_main(int argc, char **argv);

/* Open the session with the global options (prompting on /dev/tty). */
km_status ui_cli_open(ui_cli *cli, const char *pin_file, km_err *e);

/* ---- reading parsed arguments ----------------------------------------- */

/* Last value of option `name`: "" for a flag that was given, NULL if the
 * option was not given. */
const char *ui_arg(const ui_args *a, const char *name);
int ui_arg_flag(const ui_args *a, const char *name);
/* Every value of a repeatable option, in order; returns the count. */
size_t ui_arg_all(const ui_args *a, const char *name, const char **out, size_t cap);
/* Option as an unsigned number in [min, max]; def if absent.  A malformed
 * number is a usage error naming the option. */
km_status ui_arg_u64(const ui_args *a, const char *name, uint64_t def,
                     uint64_t min, uint64_t max, uint64_t *out, km_err *e);
/* Positional i as an unsigned number; `what` names it in messages. */
km_status ui_parse_u64(const char *s, const char *what, uint64_t min, uint64_t max,
                       uint64_t *out, km_err *e);

/* ---- output ------------------------------------------------------------ */
/* Nothing reaches the terminal without being cleaned (cli_out.c): strings
 * from the catalogue, the core's messages and the command line go out only
 * through these functions, which escape what core/text.h escapes. */

/* Print one JSON document on stdout (steals the reference).  ASCII only:
 * every control, C1, bidi and non-ASCII character is a \u escape. */
km_status ui_json_print(json_t *doc, km_err *e);
/* The same to f, doc kept (the caller still owns it). */
km_status ui_json_fprint(FILE *f, json_t *doc, km_err *e);
/* A JSON string for text from the catalogue: s itself, or (for bytes that
 * are not UTF-8, which Jansson refuses) its escaped display form; null for
 * NULL.  ui_json_set_text sets obj[key] so, the key treated the same way. */
json_t *ui_json_text(const char *s);
void ui_json_set_text(json_t *obj, const char *key, const char *s);
/* RFC 3339 UTC, or JSON null / "-" when t == 0. */
json_t *ui_json_time(int64_t t);
const char *ui_time_str(int64_t t, char buf[32]);
/* s in display form (escapes, textwidth.h; NULL and "" become "-"), cut to
 * fit cap bytes.  Returns buf. */
const char *ui_clean(const char *s, char *buf, size_t cap);
/* Message to stderr: "keyward: ..." followed by a newline; the formatted
 * text is cleaned as a whole. */
void ui_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One line of data on stdout, cleaned as a whole, newline added.  The
 * format itself must hold no backslash (it would print doubled). */
void ui_print_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A plain-text table: add rows of cells, then print with columns padded to
 * the widest cell (display width, not bytes; textwidth.h).  Cells print in
 * display form: escapes, never control characters. */
typedef struct ui_table ui_table;
ui_table *ui_table_new(size_t ncols, const char *const *headers);
/* Cells are copied; NULL prints as "-". */
km_status ui_table_add(ui_table *t, const char *const *cells, km_err *e);
void ui_table_print(ui_table *t, FILE *f);
/* A listing's end: print arr as JSON if set, else the table; frees both. */
km_status ui_listing_emit(json_t *arr, ui_table *t, km_err *e);
void ui_table_free(ui_table *t);

/* ---- handlers (cli_*.c) ------------------------------------------------ */
#define UI_CLI_HANDLERS(X)  \
	X(ui_cmd_init)          \
	X(ui_cmd_status)        \
	X(ui_cmd_demo)          \
	X(ui_cmd_key_create)    \
	X(ui_cmd_key_list)      \
	X(ui_cmd_key_show)      \
	X(ui_cmd_key_tag)       \
	X(ui_cmd_key_rotate)    \
	X(ui_cmd_key_state)     \
	X(ui_cmd_protect)       \
	X(ui_cmd_unprotect)     \
	X(ui_cmd_asset_list)    \
	X(ui_cmd_asset_show)    \
	X(ui_cmd_audit_verify)  \
	X(ui_cmd_audit_tail)    \
	X(ui_cmd_audit_show)    \
	X(ui_cmd_audit_pubkey)  \
	X(ui_cmd_audit_forward) \
	X(ui_cmd_user_list)     \
	X(ui_cmd_user_add)      \
	X(ui_cmd_user_passwd)   \
	X(ui_cmd_user_totp)     \
	X(ui_cmd_user_lock)     \
	X(ui_cmd_user_unlock)   \
	X(ui_cmd_user_pubkey)   \
	X(ui_cmd_console)       \
	X(ui_cmd_policy_show)   \
	X(ui_cmd_policy_list)   \
	X(ui_cmd_policy_set)    \
	X(ui_cmd_policy_unset)  \
	X(ui_cmd_schedule)      \
	X(ui_cmd_rotate)        \
	X(ui_cmd_help)          \
	X(ui_cmd_key_compromise) \
	X(ui_cmd_key_destroy)   \
	X(ui_cmd_key_cancel_destroy) \
	X(ui_cmd_user_role)     \
	X(ui_cmd_request_list)  \
	X(ui_cmd_request_show)  \
	X(ui_cmd_request_approve) \
	X(ui_cmd_request_reject) \
	X(ui_cmd_request_execute) \
	X(ui_cmd_request_cancel) \
	X(ui_cmd_request_verify) \
	X(ui_cmd_request_export) \
	X(ui_cmd_job_list)      \
	X(ui_cmd_job_show)      \
	X(ui_cmd_job_run)       \
	X(ui_cmd_job_pause)     \
	X(ui_cmd_job_cancel)    \
	X(ui_cmd_job_unreachable) \
	X(ui_cmd_lineage_import)     \
	X(ui_cmd_lineage_impact)     \
	X(ui_cmd_lineage_provenance) \
	X(ui_cmd_lineage_show)       \
	X(ui_cmd_lineage_export)     \
	X(ui_cmd_lineage_pull)       \
	X(ui_cmd_lineage_report)     \
	X(ui_cmd_audit_checkpoint)   \
	X(ui_cmd_audit_prove)        \
	X(ui_cmd_audit_export)       \
	X(ui_cmd_audit_scan)         \
	X(ui_cmd_anomaly_list)      \
	X(ui_cmd_report)

#define UI_CLI_DECLARE(fn) km_status fn(ui_cli *cli, const ui_args *a, km_err *e);
UI_CLI_HANDLERS(UI_CLI_DECLARE)
#undef UI_CLI_DECLARE

/* Key info as JSON (tags given separately, may be NULL). */
struct km_key_info;
json_t *ui_key_json(const struct km_key_info *k, json_t *tags);
/* Audit rows: shared by `key show` and `audit tail`. */
struct audit_row;
struct audit_filter;
json_t *ui_audit_row_json(const struct audit_row *r);
void ui_audit_row_print(const struct audit_row *r, FILE *f);
/* Up to `want` events matching f, newest first, as owned copies.  With
 * key != NULL, only events about that key ("key:NAME", "key:NAME@V").
 * Free with ui_audit_rows_free. */
km_status ui_audit_collect(km_ctx *ctx, const struct audit_filter *f, const char *key,
                           size_t want, struct audit_row **rows, size_t *nrows, km_err *e);
void ui_audit_rows_free(struct audit_row *rows, size_t n);

#endif
