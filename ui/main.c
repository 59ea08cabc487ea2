/*
 * main.c — process start: hygiene first, then the command line.
 *
 * km_hygiene_init() must run before anything could hold a secret (core
 * dumps off, umask 077, secure heap), then km_process_check() before
 * anything trusts the environment; if either fails we refuse to run.
 */
#include "cli.h"
#include "caller.h"
#include "secmem.h"

#include <locale.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	km_err e;
	km_err_clear(&e);
	km_status st = km_hygiene_init(&e);
	/* Before anything reads the environment or a file: a set-user-ID
	 * keyward keeps only harmless variables, and refuses to run where the
	 * kernel's idea of the caller is not the system's. */
	if (st == KM_OK)
		st = km_process_check(&e);
	if (st != KM_OK) {
		fprintf(stderr, "keyward: %s\n", e.msg);
		return km_status_exit_code(st);
	}
	/* Character classes only (display widths); numbers stay "C". */
	setlocale(LC_CTYPE, "");
	return ui_cli_main(argc, argv);
}
