/*
 * caller.c — the real uid's name and rights; the checks a set-user-ID
 * program owes its deployment before it does anything else.
 */
#include "caller.h"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* What a privileged keyward keeps of its caller's environment: nothing
 * that names a path or a library. */
static const char *const env_keep[] = {
	"TERM", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "NO_COLOR", "COLUMNS", "LINES",
	"KEYWARD_PASSPHRASE", "KEYWARD_NEW_PASSPHRASE", "KEYWARD_OTP",
};

/* 1 when /proc/self/uid_map is the initial namespace's identity map. */
static int initial_user_namespace(void)
{
	FILE *f = fopen("/proc/self/uid_map", "re");
	if (!f)
		return 0;
	unsigned long inside = 1, outside = 1, count = 0;
	int n = fscanf(f, "%lu %lu %lu", &inside, &outside, &count);
	int more = fgetc(f) != EOF && fgetc(f) != EOF; /* a second mapping line */
	fclose(f);
	return n == 3 && inside == 0 && outside == 0 && count == 4294967295UL && !more;
}

static km_status sanitize_environment(km_err *e)
{
	size_t n = KM_ARRAY_LEN(env_keep);
	char *saved[KM_ARRAY_LEN(env_keep)] = {0};
	for (size_t i = 0; i < n; i++) {
		const char *v = getenv(env_keep[i]);
		saved[i] = v ? strdup(v) : NULL;
	}
	km_status st = KM_OK;
	if (clearenv() != 0)
		st = km_fail(e, KM_EINTERNAL, "cannot clear the environment");
	for (size_t i = 0; i < n; i++) {
		if (!st && saved[i] && setenv(env_keep[i], saved[i], 1) != 0)
			st = km_fail(e, KM_EINTERNAL, "cannot rebuild the environment");
		if (saved[i]) {
			memset(saved[i], 0, strlen(saved[i]));
			free(saved[i]);
		}
	}
	if (!st && setenv("PATH", "/usr/bin:/bin", 1) != 0)
		st = km_fail(e, KM_EINTERNAL, "cannot rebuild the environment");
	return st;
}

km_status km_process_check(km_err *e)
{
	struct stat sb;
	int installed_suid = stat("/proc/self/exe", &sb) == 0 && (sb.st_mode & S_ISUID) &&
	                     sb.st_uid != getuid();
	if (km_process_privileged()) {
		if (!initial_user_namespace())
			return km_fail(e, KM_EDENIED, "keyward refuses to run set-user-ID inside a user "
			               "namespace: the identity it would see there is not the one the "
			               "system knows");
		return sanitize_environment(e);
	}
	if (installed_suid)
		return km_fail(e, KM_EDENIED, "keyward is installed set-user-ID (to uid %u) but runs "
		               "without that privilege — inside a user namespace, on a nosuid mount or "
		               "under a debugger — so it cannot reach its deployment; refusing",
		               (unsigned)sb.st_uid);
	return KM_OK;
}

km_status km_caller_name(char *out, size_t cap, km_err *e)
{
	struct passwd *pw = getpwuid(getuid());
	if (!pw)
		return km_fail(e, KM_EDENIED, "cannot tell who you are: uid %u has no passwd entry",
		               (unsigned)getuid());
	if (strlen(pw->pw_name) >= cap)
		return km_fail(e, KM_EDENIED, "your login name is longer than %zu characters", cap - 1);
	snprintf(out, cap, "%s", pw->pw_name);
	return KM_OK;
}

void km_caller_rights_begin(void)
{
	if (km_process_privileged()) {
		setfsgid(getgid());
		setfsuid(getuid());
	}
}

void km_caller_rights_end(void)
{
	if (km_process_privileged()) {
		setfsuid(geteuid());
		setfsgid(getegid());
	}
}

km_status km_caller_open(const char *path, int flags, mode_t mode, int *fd, km_err *e)
{
	km_caller_rights_begin();
	/* setfsuid reports the previous value, never an error: ask again. */
	if (km_process_privileged() && (uid_t)setfsuid((uid_t)-1) != getuid()) {
		km_caller_rights_end();
		return km_fail(e, KM_EINTERNAL, "cannot take on your rights to open %s", path);
	}
	*fd = open(path, flags | O_CLOEXEC, mode);
	int err = errno;
	km_caller_rights_end();
	if (*fd >= 0)
		return KM_OK;
	return km_fail(e, (err == EACCES || err == EPERM) ? KM_EDENIED : KM_EIO, "%s: %s", path,
	               strerror(err));
}

km_status km_secret_file_read(const char *path, unsigned flags, const char *what, char *buf,
                              size_t cap, km_err *e)
{
	int fd = -1;
	km_status st;
	if (!buf || cap < 2)
		return km_fail(e, KM_EUSAGE, "secret buffer too small");
	buf[0] = '\0';
	if (flags & KM_SECRET_CALLER)
		st = km_caller_open(path, O_RDONLY | O_NOFOLLOW, 0, &fd, e);
	else if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		st = km_fail(e, errno == EACCES ? KM_EDENIED : KM_ECONFIG, "%s: %s", path, strerror(errno));
	else
		st = KM_OK;
	if (st)
		return km_wrap(e, "cannot read the %s file", what);
	struct stat sb;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return km_fail(e, KM_ECONFIG, "the %s file %s is not a regular file", what, path);
	}
	if (sb.st_mode & 077) {
		close(fd);
		return km_fail(e, KM_ECONFIG, "the %s file %s can be read by others (mode %03o): make it "
		               "private (chmod 600)", what, path, (unsigned)(sb.st_mode & 0777));
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return km_fail(e, KM_EIO, "cannot read the %s file %s", what, path);
	}
	char *line = NULL;
	size_t lcap = 0;
	ssize_t n;
	st = km_fail(e, KM_ECONFIG, "the %s file %s holds no %s", what, path, what);
	while ((n = getline(&line, &lcap, f)) >= 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if ((flags & KM_SECRET_COMMENTS) && (line[0] == '#' || !line[0]))
			continue;
		if (!line[0])
			break;
		if (strlen(line) >= cap)
			st = km_fail(e, KM_ECONFIG, "the %s in %s is longer than %zu bytes", what, path, cap - 1);
		else {
			memcpy(buf, line, strlen(line) + 1);
			st = KM_OK;
		}
		break;
	}
	if (line) {
		OPENSSL_cleanse(line, lcap);
		free(line);
	}
	fclose(f);
	if (st)
		OPENSSL_cleanse(buf, cap);
	return st;
}
