/*
 * prompt.c — secrets from /dev/tty without echo, and from PIN files.
 *
 * Must hold: the terminal's settings are restored whatever happens once
 * echo is off (normal return, error, or a terminating signal), and every
 * byte of a secret that was read is cleansed on failure paths.  Signals are
 * blocked except inside ppoll(), so one cannot slip in between checking the
 * flag and waiting for input.
 */
#include "prompt.h"
#include "caller.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* The signals that would otherwise leave the terminal without echo. */
static const int prompt_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};

static volatile sig_atomic_t prompt_caught;

static void prompt_on_signal(int sig)
{
	prompt_caught = sig;
}

static ssize_t prompt_write(int fd, const char *s)
{
	size_t n = strlen(s);
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, s + done, n - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)w;
	}
	return (ssize_t)done;
}

/* Read one line into buf with signals unblocked only while waiting.
 * Returns KM_OK, or an error; *sig receives a caught signal (0 if none). */
static km_status prompt_read_line(int fd, const sigset_t *waitmask, char *buf, size_t cap,
                                  int *sig, km_err *e)
{
	size_t len = 0;
	int too_long = 0;
	for (;;) {
		if (prompt_caught) {
			*sig = prompt_caught;
			return km_fail(e, KM_EUSAGE, "interrupted");
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = ppoll(&p, 1, NULL, waitmask);
		if (r < 0) {
			if (errno == EINTR)
				continue; /* the flag is checked at the top */
			return km_fail(e, KM_EIO, "reading from the terminal: %s", strerror(errno));
		}
		char c;
		ssize_t n = read(fd, &c, 1);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return km_fail(e, KM_EIO, "reading from the terminal: %s", strerror(errno));
		}
		if (n == 0 || c == '\n' || c == '\r')
			break;
		if (len + 1 < cap)
			buf[len++] = c;
		else
			too_long = 1;
		c = 0;
	}
	buf[len] = '\0';
	if (too_long)
		return km_fail(e, KM_EINVAL, "the answer is longer than %zu bytes", cap - 1);
	if (len == 0)
		return km_fail(e, KM_EINVAL, "empty answer");
	return KM_OK;
}

km_status ui_prompt_secret(void *ctx, const char *question, char *buf, size_t cap,
                           km_err *e)
{
	/* ctx: how else the secret can be given, for the message when there
	 * is no terminal ("set KEYWARD_SO_PIN or use --so-pin-file"). */
	const char *hint = ctx ? (const char *)ctx : "see keyward --help for other ways to give it";
	if (!buf || cap < 2)
		return km_fail(e, KM_EUSAGE, "prompt buffer too small");
	buf[0] = '\0';

	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return km_fail(e, KM_EUSAGE, "%s: there is no terminal to ask on (%s)", question, hint);

	struct termios saved;
	if (tcgetattr(fd, &saved) != 0) {
		close(fd);
		return km_fail(e, KM_EUSAGE, "%s: /dev/tty is not a terminal (%s)", question, hint);
	}

	/* Block the signals first, then install the handlers: from here until
	 * they are restored, a signal is only ever delivered inside ppoll(). */
	sigset_t block, oldmask;
	sigemptyset(&block);
	for (size_t i = 0; i < KM_ARRAY_LEN(prompt_signals); i++)
		sigaddset(&block, prompt_signals[i]);
	sigprocmask(SIG_BLOCK, &block, &oldmask);

	struct sigaction sa, old_sa[KM_ARRAY_LEN(prompt_signals)];
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = prompt_on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: ppoll must return EINTR */
	prompt_caught = 0;
	for (size_t i = 0; i < KM_ARRAY_LEN(prompt_signals); i++)
		sigaction(prompt_signals[i], &sa, &old_sa[i]);

	struct termios quiet = saved;
	quiet.c_lflag &= (tcflag_t)~(ECHO | ECHOE | ECHOK | ECHONL);
	quiet.c_lflag |= ICANON;
	km_status st = KM_OK;
	int sig = 0;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
		st = km_fail(e, KM_EIO, "cannot turn off echo on the terminal: %s", strerror(errno));
	} else {
		prompt_write(fd, question);
		prompt_write(fd, ": ");
		sigset_t waitmask = oldmask;
		for (size_t i = 0; i < KM_ARRAY_LEN(prompt_signals); i++)
			sigdelset(&waitmask, prompt_signals[i]);
		st = prompt_read_line(fd, &waitmask, buf, cap, &sig, e);
		prompt_write(fd, "\n");
		tcsetattr(fd, TCSAFLUSH, &saved);
	}
	close(fd);

	for (size_t i = 0; i < KM_ARRAY_LEN(prompt_signals); i++)
		sigaction(prompt_signals[i], &old_sa[i], NULL);
	if (st != KM_OK)
		OPENSSL_cleanse(buf, cap);
	if (sig) {
		/* Terminal restored: now let the signal do what it would have
		 * done (usually end the process). */
		raise(sig);
	}
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	return st;
}

km_status ui_secret_from_file(const char *path, char *buf, size_t cap, km_err *e)
{
	return km_secret_file_read(path, KM_SECRET_CALLER | KM_SECRET_COMMENTS, "PIN", buf, cap, e);
}
