/*
 * dialog.c — confirmation, choice and form dialogs; the message-line
 * editor.
 *
 * Must never: confirm a destructive change without the exact typed name,
 * or lose what the user typed in a form when the core refuses it (the
 * form stays open with the core's message under the field).
 */
#include "dialog.h"

#include <openssl/crypto.h>

#include <string.h>
#include <time.h>
#include <wchar.h>

int ui_edit_key(char *buf, size_t cap, int key)
{
	size_t n = strlen(buf);
	if (key == UI_KEY_FN(KEY_BACKSPACE)) {
		if (n == 0)
			return 1;
		do
			n--;
		while (n > 0 && ((unsigned char)buf[n] & 0xC0) == 0x80);
		buf[n] = '\0';
		return 1;
	}
	if (key == 21) { /* ^U: clear */
		buf[0] = '\0';
		return 1;
	}
	if (key == 23) { /* ^W: delete the last word */
		while (n > 0 && buf[n - 1] == ' ')
			n--;
		while (n > 0 && buf[n - 1] != ' ')
			n--;
		buf[n] = '\0';
		return 1;
	}
	if (key < ' ' || key == 127 || key >= 0x110000)
		return 0;
	char mb[8];
	mbstate_t st;
	memset(&st, 0, sizeof st);
	size_t len = wcrtomb(mb, (wchar_t)key, &st);
	if (len == (size_t)-1 || n + len + 1 > cap)
		return 1; /* swallow: not representable, or full */
	memcpy(buf + n, mb, len);
	buf[n + len] = '\0';
	return 1;
}

int ui_prompt(ui_console *c, const char *prefix, char *buf, size_t cap,
              void (*changed)(void *ctx, const char *text), void *ctx)
{
	return ui_prompt_complete(c, prefix, buf, cap, changed, ctx, NULL);
}

int ui_prompt_complete(ui_console *c, const char *prefix, char *buf, size_t cap,
                       void (*changed)(void *ctx, const char *text), void *ctx,
                       ui_complete_fn complete)
{
	int result = 0;
	ui_prompt_show(c, prefix, buf);
	struct timespec t0;
	int timed = 0;
	for (;;) {
		if (ui_needs_paint(c)) {
			ui_paint(c);
			ui_flush(c);
			if (timed)
				ui_timing_key(timed, &t0);
		}
		timed = 0;
		int key;
		int got = ui_read_key(c, &key);
		if (got < 0)
			break;
		if (got == 0)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		timed = key;
		ui_dirty(c);
		if (key == UI_KEY_ENTER) {
			result = 1;
			break;
		}
		if (key == 27 || key == 7) /* Esc, ^G */
			break;
		if (key == UI_KEY_FN(KEY_BACKSPACE) && buf[0] == '\0')
			break; /* backspace on an empty line leaves, like vi */
		if (key == '\t' && complete) {
			char note[512] = "";
			complete(c, buf, cap, note, sizeof note);
			ui_prompt_note(c, note);
			if (changed)
				changed(ctx, buf);
			continue;
		}
		ui_prompt_note(c, NULL);
		if (ui_edit_key(buf, cap, key) && changed)
			changed(ctx, buf);
	}
	ui_prompt_show(c, NULL, NULL);
	return result;
}

/* A centred box of height h (content rows + 2) and width up to 76. */
static ui_rect dialog_rect(ui_console *c, int h)
{
	int rows, cols;
	ui_size(c, &rows, &cols);
	int w = cols - 8 < 76 ? cols - 8 : 76;
	if (h > rows - 4)
		h = rows - 4;
	ui_rect r = {(rows - h) / 2, (cols - w) / 2, h, w};
	return r;
}

/* Draw wrapped text from row y; returns rows used (at most max). */
static int dialog_text(ui_console *c, int y, int x, int w, int max, ui_element el, const char *s)
{
	int used = 0;
	while (s && *s && used < max) {
		size_t next;
		size_t len = ui_tw_wrap(s, w, &next);
		char line[512];
		ui_tw_format(line, sizeof line, "%.*s", (int)len, s);
		ui_draw_text(c, y + used, x, w, el, UI_TW_ELLIPSIS, line);
		used++;
		s += next;
	}
	return used;
}

static int text_rows(const char *s, int w)
{
	int n = 0;
	while (s && *s) {
		size_t next;
		ui_tw_wrap(s, w, &next);
		s += next;
		n++;
	}
	return n;
}

/* One key for a dialog's loop: 1 with *key set, 0 when none came (paint
 * and wait again), -1 when the dialog must close (a quit signal, Esc, ^G).
 * Every key marks the screen for a repaint. */
static int dialog_key(ui_console *c, int *key)
{
	int got = ui_read_key(c, key);
	if (got <= 0)
		return got;
	ui_dirty(c);
	return (*key == 27 || *key == 7) ? -1 : 1;
}

int ui_dialog_confirm(ui_console *c, const char *title, const char *text, const char *typed)
{
	char input[256] = "";
	char problem[256] = "";
	int result = 0;
	ui_dirty(c);
	for (;;) {
		if (ui_needs_paint(c)) {
			ui_paint(c);
			if (!ui_too_small(c)) {
				ui_rect r = dialog_rect(c, 0);
				int iw = r.w - 4;
				int h = text_rows(text, iw) + (typed ? 4 : 0) + 4;
				r = dialog_rect(c, h);
				ui_draw_box(c, r, UI_EL_BORDER, UI_EL_DIALOG, title);
				int y = r.y + 1;
				y += dialog_text(c, y, r.x + 2, iw, r.h - 4, UI_EL_DIALOG, text);
				y++;
				if (typed) {
					char label[300];
					ui_tw_format(label, sizeof label, "Type %s to confirm:", typed);
					ui_draw_text(c, y++, r.x + 2, iw, UI_EL_DIALOG, UI_TW_ELLIPSIS, label);
					ui_draw_text(c, y, r.x + 2, iw, UI_EL_FIELD_FOCUS, UI_TW_PAD, input);
					ui_prompt_show(c, NULL, NULL);
					y++;
					ui_draw_text(c, y++, r.x + 2, iw, UI_EL_FIELD_ERROR, UI_TW_ELLIPSIS, problem);
					ui_draw_text(c, r.y + r.h - 2, r.x + 2, iw, UI_EL_DIM, UI_TW_ELLIPSIS,
					             "Enter: confirm   Esc: cancel");
				} else {
					ui_draw_text(c, r.y + r.h - 2, r.x + 2, iw, UI_EL_DIALOG_TITLE, UI_TW_ELLIPSIS,
					             "y: yes   n or Esc: no");
				}
			}
			ui_flush(c);
		}
		int key, k = dialog_key(c, &key);
		if (k < 0)
			break;
		if (k == 0)
			continue;
		if (!typed) {
			if (key == 'y' || key == 'Y') {
				result = 1;
				break;
			}
			if (key == 'n' || key == 'N' || key == 'q')
				break;
			continue;
		}
		if (key == UI_KEY_ENTER) {
			if (strcmp(input, typed) == 0) {
				result = 1;
				break;
			}
			ui_tw_format(problem, sizeof problem, "that is not %s; type the name exactly, or Esc",
			             typed);
			continue;
		}
		ui_edit_key(input, sizeof input, key);
		problem[0] = '\0';
	}
	ui_dirty(c);
	return result;
}

int ui_dialog_secret(ui_console *c, const char *title, const char *question, char *buf, size_t cap)
{
	/* The secret is edited in place in the caller's (locked) buffer and
	 * shown only as one '*' per character. */
	int result = 0;
	buf[0] = '\0';
	ui_dirty(c);
	for (;;) {
		if (ui_needs_paint(c)) {
			ui_paint(c);
			if (!ui_too_small(c)) {
				ui_rect r = dialog_rect(c, 7);
				int iw = r.w - 4;
				ui_draw_box(c, r, UI_EL_BORDER, UI_EL_DIALOG, title);
				ui_draw_text(c, r.y + 1, r.x + 2, iw, UI_EL_DIALOG, UI_TW_ELLIPSIS, question);
				char stars[80];
				size_t n = 0;
				for (const char *p = buf; *p && n + 1 < sizeof stars; p++)
					if (((unsigned char)*p & 0xC0) != 0x80)
						stars[n++] = '*';
				stars[n] = '\0';
				ui_draw_text(c, r.y + 3, r.x + 2, iw, UI_EL_FIELD_FOCUS, UI_TW_PAD, stars);
				ui_draw_text(c, r.y + r.h - 2, r.x + 2, iw, UI_EL_DIM, UI_TW_ELLIPSIS,
				             "Enter: continue   Esc: cancel");
			}
			ui_flush(c);
		}
		int key, k = dialog_key(c, &key);
		if (k < 0)
			break;
		if (k == 0)
			continue;
		if (key == UI_KEY_ENTER) {
			result = buf[0] != '\0';
			if (result)
				break;
			continue;
		}
		if (key != 23) /* ^W would show word boundaries of a secret */
			ui_edit_key(buf, cap, key);
	}
	if (!result)
		OPENSSL_cleanse(buf, cap);
	ui_dirty(c);
	return result;
}

int ui_dialog_choose(ui_console *c, const char *title, const char *text,
                     const char *const *items, int n, int initial)
{
	int sel = initial >= 0 && initial < n ? initial : 0;
	int result = -1;
	ui_dirty(c);
	for (;;) {
		if (ui_needs_paint(c)) {
			ui_paint(c);
			if (!ui_too_small(c)) {
				ui_rect r = dialog_rect(c, 0);
				int iw = r.w - 4;
				r = dialog_rect(c, text_rows(text, iw) + n + 5);
				ui_draw_box(c, r, UI_EL_BORDER, UI_EL_DIALOG, title);
				int y = r.y + 1;
				y += dialog_text(c, y, r.x + 2, iw, r.h - 4, UI_EL_DIALOG, text);
				y++;
				for (int i = 0; i < n && y < r.y + r.h - 2; i++, y++)
					ui_draw_text(c, y, r.x + 2, iw, i == sel ? UI_EL_SELECTED : UI_EL_DIALOG,
					             UI_TW_PAD | UI_TW_ELLIPSIS, items[i]);
				ui_draw_text(c, r.y + r.h - 2, r.x + 2, iw, UI_EL_DIM, UI_TW_ELLIPSIS,
				             "j/k or arrows: choose   Enter: apply   Esc: cancel");
			}
			ui_flush(c);
		}
		int key, k = dialog_key(c, &key);
		if (k < 0)
			break;
		if (k == 0)
			continue;
		if (key == 'q')
			break;
		if (key == UI_KEY_ENTER) {
			result = sel;
			break;
		}
		if ((key == 'j' || key == UI_KEY_FN(KEY_DOWN)) && sel < n - 1)
			sel++;
		else if ((key == 'k' || key == UI_KEY_FN(KEY_UP)) && sel > 0)
			sel--;
	}
	ui_dirty(c);
	return result;
}

int ui_dialog_form(ui_console *c, const char *title, ui_field *f, size_t n,
                   ui_form_submit_fn submit, void *ctx)
{
	size_t focus = 0;
	char general[KM_ERR_MSG_MAX] = "";
	int result = 0;
	ui_dirty(c);
	for (;;) {
		if (ui_needs_paint(c)) {
			ui_paint(c);
			if (!ui_too_small(c)) {
				ui_rect r = dialog_rect(c, 0);
				int lw = 0;
				for (size_t i = 0; i < n; i++) {
					int w = ui_tw_width(f[i].label);
					lw = w > lw ? w : lw;
				}
				int fw = r.w - 4 - lw - 2;
				int h = 2 + 2 + 1;
				for (size_t i = 0; i < n; i++)
					h += 1 + (f[i].error[0] ? text_rows(f[i].error, fw) : 0) + (f[i].hint ? 1 : 0) + 1;
				h += general[0] ? text_rows(general, r.w - 4) : 0;
				r = dialog_rect(c, h);
				ui_draw_box(c, r, UI_EL_BORDER, UI_EL_DIALOG, title);
				int y = r.y + 2;
				int fx = r.x + 2 + lw + 2;
				int cy = -1, cx = 0;
				for (size_t i = 0; i < n && y < r.y + r.h - 2; i++) {
					ui_draw_text(c, y, r.x + 2, lw, UI_EL_DIALOG, UI_TW_RIGHT, f[i].label);
					/* show the end of a long value */
					const char *v = f[i].value;
					while (ui_tw_width(v) > fw - 1 && *v)
						v++;
					while ((*v & 0xC0) == 0x80)
						v++;
					ui_draw_text(c, y, fx, fw, i == focus ? UI_EL_FIELD_FOCUS : UI_EL_FIELD, UI_TW_PAD,
					             v);
					if (i == focus) {
						cy = y;
						cx = fx + ui_tw_width(v);
					}
					y++;
					if (f[i].error[0])
						y += dialog_text(c, y, fx, fw, r.y + r.h - 2 - y, UI_EL_FIELD_ERROR, f[i].error);
					if (f[i].hint)
						ui_draw_text(c, y++, fx, fw, UI_EL_DIM, UI_TW_ELLIPSIS, f[i].hint);
					y++;
				}
				if (general[0])
					y += dialog_text(c, y, r.x + 2, r.w - 4, r.y + r.h - 2 - y, UI_EL_FIELD_ERROR,
					                 general);
				ui_draw_text(c, r.y + r.h - 2, r.x + 2, r.w - 4, UI_EL_DIM, UI_TW_ELLIPSIS,
				             "Enter: save   Tab/Down: next field   Shift-Tab/Up: previous   Esc: cancel");
				if (cy >= 0) {
					ui_flush(c);
					move(cy, cx);
					curs_set(1);
					refresh();
					goto painted;
				}
			}
			ui_flush(c);
		}
	painted:;
		int key, k = dialog_key(c, &key);
		if (k < 0)
			break;
		if (k == 0)
			continue;
		if (key == '\t' || key == UI_KEY_FN(KEY_DOWN)) {
			focus = (focus + 1) % n;
			continue;
		}
		if (key == UI_KEY_FN(KEY_BTAB) || key == UI_KEY_FN(KEY_UP)) {
			focus = (focus + n - 1) % n;
			continue;
		}
		if (key == UI_KEY_ENTER) {
			for (size_t i = 0; i < n; i++)
				f[i].error[0] = '\0';
			general[0] = '\0';
			if (submit(ctx, f, n, general, sizeof general) == 0) {
				result = 1;
				break;
			}
			for (size_t i = 0; i < n; i++)
				if (f[i].error[0]) {
					focus = i;
					break;
				}
			continue;
		}
		ui_edit_key(f[focus].value, sizeof f[focus].value, key);
	}
	curs_set(0);
	ui_dirty(c);
	return result;
}
