/*
 * main.c — process start: hygiene first, then the command line.
 *
 * km_hygiene_init() must run before anything could hold a secret (core
 * dumps off, umask 077, secure heap); if it fails we refuse to run.
 */
#include "cli.h"
#include "secmem.h"

#include <locale.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	km_err e;
	km_err_clear(&e);
	km_status st = km_hygiene_init(&e);
	if (st != KM_OK) {
		fprintf(stderr, "keyward: %s\n", e.msg);
		return km_status_exit_code(st);
	}
	/* Character classes only (display widths); numbers stay "C". */
	setlocale(LC_CTYPE, "");
	return ui_cli_main(argc, argv);
}
