/*
 * progress.c — the progress bar and the JSON progress lines (progress.h).
 *
 * Rate and ETA are measured here, over the wall time since the first
 * report, so that they describe this run (a resumed job starts from its
 * cursor, not from zero).
 */
#include "progress.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

struct ui_progress {
	FILE *f;
	int tty;
	char job[64];
	double t0;
	uint64_t done0;
	int started; /* a report was made */
	uint64_t done, total;
	double last_line;
};

static volatile sig_atomic_t interrupted;

void ui_progress_interrupt(void) { interrupted = 1; }
int ui_progress_interrupted(void) { return interrupted != 0; }

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

ui_progress *ui_progress_new(FILE *f, int tty, const char *job, uint64_t done_before)
{
	ui_progress *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->f = f;
	p->tty = tty;
	snprintf(p->job, sizeof p->job, "%s", job ? job : "");
	p->last_line = -1.0;
	p->t0 = now_s();
	p->done0 = done_before;
	return p;
}

/* 1234567 -> "1,234,567" */
static void grouped(char *buf, size_t cap, uint64_t v)
{
	char raw[32];
	snprintf(raw, sizeof raw, "%llu", (unsigned long long)v);
	size_t n = strlen(raw), j = 0;
	for (size_t i = 0; i < n && j + 2 < cap; i++) {
		if (i && (n - i) % 3 == 0)
			buf[j++] = ',';
		buf[j++] = raw[i];
	}
	buf[j] = '\0';
}

static void duration(char *buf, size_t cap, int64_t s)
{
	if (s < 0)
		snprintf(buf, cap, "?");
	else if (s >= 3600)
		snprintf(buf, cap, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60),
		         (long long)(s % 60));
	else
		snprintf(buf, cap, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
}

void ui_progress_format(char *buf, size_t cap, unsigned width, uint64_t done, uint64_t total, double rate,
                        int64_t eta_s)
{
	char d[32], t[32], r[32], eta[32], tail[160];
	grouped(d, sizeof d, done);
	grouped(t, sizeof t, total);
	grouped(r, sizeof r, (uint64_t)(rate + 0.5));
	duration(eta, sizeof eta, eta_s);
	double frac = total ? (double)done / (double)total : 1.0;
	if (frac > 1.0)
		frac = 1.0;
	snprintf(tail, sizeof tail, " %3d%%  %s/%s  %s/s  ETA %s", (int)(frac * 100.0), d, t, r, eta);
	size_t tl = strlen(tail);
	/* The bar takes what the numbers leave, between 10 and 40 cells. */
	int bar = (int)width - (int)tl - 3;
	if (bar > 40)
		bar = 40;
	if (bar < 10) {
		snprintf(buf, cap, "%s", tail + 1);
		return;
	}
	size_t j = 0;
	if (cap < (size_t)bar + tl + 3)
		return;
	buf[j++] = '[';
	int fill = (int)(frac * bar);
	for (int i = 0; i < bar; i++)
		buf[j++] = i < fill ? '#' : '.';
	buf[j++] = ']';
	memcpy(buf + j, tail, tl + 1);
}

static unsigned term_width(FILE *f)
{
	struct winsize ws;
	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

static void report(ui_progress *p, int final)
{
	double now = now_s();
	double span = now - p->t0;
	uint64_t moved = p->done >= p->done0 ? p->done - p->done0 : 0;
	double rate = span > 0.05 && moved ? (double)moved / span : 0.0;
	uint64_t left = p->total > p->done ? p->total - p->done : 0;
	int64_t eta = left == 0 ? 0 : rate > 0 ? (int64_t)((double)left / rate + 0.5) : -1;
	if (p->tty) {
		char line[256];
		unsigned w = term_width(p->f);
		ui_progress_format(line, sizeof line, w - 1 < sizeof line ? w - 1 : sizeof line - 1, p->done,
		                   p->total, rate, eta);
		fprintf(p->f, "\r%s\033[K%s", line, final ? "\n" : "");
	} else {
		if (!final && p->last_line >= 0 && now - p->last_line < 1.0)
			return;
		p->last_line = now;
		json_t *o = json_pack("{s:s,s:I,s:I,s:f,s:I}", "job", p->job, "done", (json_int_t)p->done, "total",
		                      (json_int_t)p->total, "rate", rate, "eta_s", (json_int_t)eta);
		char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER) : NULL;
		if (s)
			fprintf(p->f, "%s\n", s);
		free(s);
		json_decref(o);
	}
	fflush(p->f);
}

int ui_progress_cb(void *c, uint64_t done, uint64_t total, const char *what)
{
	(void)what;
	ui_progress *p = c;
	p->started = 1;
	p->done = done;
	p->total = total;
	report(p, 0);
	return interrupted != 0;
}

void ui_progress_end(ui_progress *p)
{
	if (!p)
		return;
	if (p->started)
		report(p, 1);
	free(p);
}
