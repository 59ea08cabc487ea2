/*
 * atomicfile.c — write-then-rename output files (see atomicfile.h).
 */
#include "atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <unistd.h>

static const char tmp_suffix[] = ".kwtmp.XXXXXX";
#define TMP_MARK ".kwtmp."

/* A writer holds an exclusive flock on its temp file until it commits or
 * aborts.  A temp file for the same destination that can be locked now
 * belongs to a writer that was killed: remove it, because it may hold
 * part of a decrypted file. */
static void sweep_stale(const char *dir, const char *base)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	size_t bl = strlen(base);
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (n[0] != '.' || strncmp(n + 1, base, bl) != 0 ||
		    strncmp(n + 1 + bl, TMP_MARK, sizeof TMP_MARK - 1) != 0 ||
		    strlen(n + 1 + bl + sizeof TMP_MARK - 1) != 6)
			continue;
		int fd = openat(dirfd(d), n, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			unlinkat(dirfd(d), n, 0);
		close(fd);
	}
	closedir(d);
}

/* The directory part of path ("." when there is none); malloc'd. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static void release(atomicfile *af)
{
	free(af->final_path);
	free(af->tmp_path);
	af->final_path = NULL;
	af->tmp_path = NULL;
	af->fd = -1;
}

km_status atomicfile_open(const char *final_path, atomicfile *af, km_err *e)
{
	if (!af)
		return km_fail(e, KM_EUSAGE, "atomicfile_open: no handle");
	af->fd = -1;
	af->final_path = NULL;
	af->tmp_path = NULL;
	if (!final_path || !*final_path)
		return km_fail(e, KM_EUSAGE, "no output path given");
	const char *slash = strrchr(final_path, '/');
	const char *base = slash ? slash + 1 : final_path;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return km_fail(e, KM_EUSAGE, "the output path %s names a directory, not a file", final_path);

	char *dir = dir_of(final_path);
	size_t need = (dir ? strlen(dir) : 0) + 2 + strlen(base) + sizeof tmp_suffix;
	af->final_path = strdup(final_path);
	af->tmp_path = malloc(need);
	if (!dir || !af->final_path || !af->tmp_path) {
		free(dir);
		release(af);
		return km_fail(e, KM_ENOMEM, "out of memory (output path)");
	}
	snprintf(af->tmp_path, need, "%s/.%s%s", dir, base, tmp_suffix);
	sweep_stale(dir, base);
	free(dir);

	/* mkostemp: O_CREAT|O_EXCL, mode 0600. */
	af->fd = mkostemp(af->tmp_path, O_CLOEXEC);
	if (af->fd < 0) {
		int err = errno;
		km_status st = km_fail(e, KM_EIO, "cannot create a temporary file beside %s: %s",
		                       final_path, strerror(err));
		release(af);
		return st;
	}
	/* Held until commit or abort (closing the fd releases it). */
	if (flock(af->fd, LOCK_EX | LOCK_NB) != 0) {
		km_status st = km_fail(e, KM_EIO, "cannot lock the temporary file beside %s: %s",
		                       final_path, strerror(errno));
		close(af->fd);
		unlink(af->tmp_path);
		release(af);
		return st;
	}
	return KM_OK;
}

void atomicfile_abort(atomicfile *af)
{
	if (!af)
		return;
	if (af->fd >= 0)
		close(af->fd);
	if (af->tmp_path && af->final_path)
		unlink(af->tmp_path);
	release(af);
}

km_status atomicfile_commit(atomicfile *af, km_err *e)
{
	if (!af || af->fd < 0 || !af->final_path)
		return km_fail(e, KM_EUSAGE, "atomicfile_commit: the file is not open");

	if (fsync(af->fd) != 0) {
		km_status st = km_fail(e, KM_EIO, "cannot flush %s to disk: %s", af->final_path, strerror(errno));
		atomicfile_abort(af);
		return st;
	}
	int rc = close(af->fd);
	af->fd = -1;
	if (rc != 0) {
		km_status st = km_fail(e, KM_EIO, "cannot close the output for %s: %s", af->final_path, strerror(errno));
		atomicfile_abort(af);
		return st;
	}
	if (rename(af->tmp_path, af->final_path) != 0) {
		km_status st = km_fail(e, KM_EIO, "cannot move the output into place at %s: %s",
		                       af->final_path, strerror(errno));
		atomicfile_abort(af);
		return st;
	}

	/* The rename is durable only once the directory is. */
	km_status st = KM_OK;
	char *dir = dir_of(af->final_path);
	int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dfd < 0 || fsync(dfd) != 0)
		st = km_fail(e, KM_EIO, "%s is written, but its directory could not be flushed to disk: %s",
		             af->final_path, dir ? strerror(errno) : "out of memory");
	if (dfd >= 0)
		close(dfd);
	free(dir);
	release(af);
	return st;
}
