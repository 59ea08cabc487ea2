/*
 * atomicfile.c — write-then-rename output files (see atomicfile.h).
 */
#include "atomicfile.h"
#include "caller.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ".<name>" + mark + six characters from mkostemp.  Both marks have the
 * same length, so a pending name becomes its ".kwtmp." name in place. */
static const char tmp_mark[] = ".kwtmp.";
static const char new_mark[] = ".kwnew.";
#define MARK_LEN (sizeof tmp_mark - 1)
#define SUFFIX_LEN 6
/* Fresh names to try when a sweep or a collision gets in the way. */
#define CREATE_ATTEMPTS 8

_Static_assert(sizeof tmp_mark == sizeof new_mark, "the two marks must be the same length");

enum temp_kind { NOT_OURS, TEMP_TMP, TEMP_PENDING };

static enum temp_kind temp_kind_of(const char *n, const char *base, size_t bl)
{
	if (n[0] != '.' || strncmp(n + 1, base, bl) != 0)
		return NOT_OURS;
	const char *m = n + 1 + bl;
	if (strlen(m) != MARK_LEN + SUFFIX_LEN)
		return NOT_OURS;
	if (strncmp(m, tmp_mark, MARK_LEN) == 0)
		return TEMP_TMP;
	if (strncmp(m, new_mark, MARK_LEN) == 0)
		return TEMP_PENDING;
	return NOT_OURS;
}

static int same_inode(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Remove one temporary of ours if its writer is provably gone (see
 * atomicfile.h).  Never blocks: not on a FIFO (O_NONBLOCK, and the type is
 * checked before opening), not on a lock (LOCK_NB). */
static void sweep_one(int dfd, const char *n, enum temp_kind kind)
{
	struct stat named, opened, again;
	if (fstatat(dfd, n, &named, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(named.st_mode))
		return;
	int fd = openat(dfd, n, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* The name may have been pointed elsewhere between the two looks. */
	if (fstat(fd, &opened) != 0 || !S_ISREG(opened.st_mode) || !same_inode(&named, &opened))
		goto out;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0)
		goto out; /* a live writer holds it */
	if (kind == TEMP_PENDING) {
		time_t now = time(NULL);
		if (opened.st_size != 0 || opened.st_mtime > now ||
		    now - opened.st_mtime < ATOMICFILE_PENDING_GRACE_S)
			goto out; /* possibly a writer between creating and locking */
	}
	/* Unlink only the inode we hold locked: the name could have been
	 * removed and reused since we opened it.  (A reuse between this look
	 * and the unlink would need a writer to draw the same six random
	 * characters for the same destination in that instant.) */
	if (fstatat(dfd, n, &again, AT_SYMLINK_NOFOLLOW) == 0 && same_inode(&opened, &again))
		unlinkat(dfd, n, 0);
out:
	close(fd);
}

static void sweep_stale(const char *dir, const char *base)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	size_t bl = strlen(base);
	struct dirent *de;
	while ((de = readdir(d))) {
		enum temp_kind kind = temp_kind_of(de->d_name, base, bl);
		if (kind != NOT_OURS)
			sweep_one(dirfd(d), de->d_name, kind);
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

/* Unlink path if it still names the file open on fd. */
static void unlink_if_ours(const char *path, int fd)
{
	struct stat mine, named;
	if (fstat(fd, &mine) == 0 && lstat(path, &named) == 0 && same_inode(&mine, &named))
		unlink(path);
}

/* rename(from, to), but never replacing an existing `to`. */
static int rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
		return -1;
	/* A file system without RENAME_NOREPLACE (NFS): link(2) never
	 * replaces either. */
	if (link(from, to) == 0) {
		unlink(from);
		return 0;
	}
	if (errno == EEXIST || errno == ENOENT)
		return -1;
	/* No hard links either (FAT, some FUSE file systems): a plain
	 * rename, which replaces only on a six-character collision. */
	return rename(from, to);
}

/* Create the temporary: locked under its pending name first, so that it
 * is never visible under the swept ".kwtmp." name without its lock. */
static km_status create_locked(atomicfile *af, const char *dir, const char *base, km_err *e)
{
	size_t need = strlen(dir) + 2 + strlen(base) + MARK_LEN + SUFFIX_LEN + 1;
	char *pending = malloc(need);
	af->tmp_path = malloc(need);
	if (!pending || !af->tmp_path) {
		free(pending);
		return km_fail(e, KM_ENOMEM, "out of memory (output path)");
	}
	int err = 0;
	for (int attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
		snprintf(pending, need, "%s/.%s%sXXXXXX", dir, base, new_mark);
		/* mkostemp: O_CREAT|O_EXCL, mode 0600. */
		int fd = mkostemp(pending, O_CLOEXEC);
		if (fd < 0) {
			err = errno;
			break;
		}
		snprintf(af->tmp_path, need, "%s/.%s%s%s", dir, base, tmp_mark,
		         pending + strlen(pending) - SUFFIX_LEN);
		/* A sweep may be looking at the fresh file this instant (it
		 * holds the lock for microseconds, then leaves it): try a new
		 * name rather than wait. */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && rename_noreplace(pending, af->tmp_path) == 0) {
			af->fd = fd;
			free(pending);
			return KM_OK;
		}
		err = errno;
		unlink_if_ours(pending, fd);
		close(fd);
		if (err != EWOULDBLOCK && err != EEXIST && err != ENOENT)
			break;
	}
	free(pending);
	return km_fail(e, (err == EACCES || err == EPERM) ? KM_EDENIED : KM_EIO,
	               "cannot create a temporary file beside %s: %s", af->final_path, strerror(err));
}

static km_status atomicfile_open_fs(const char *final_path, atomicfile *af, km_err *e)
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
	af->final_path = strdup(final_path);
	if (!dir || !af->final_path) {
		free(dir);
		release(af);
		return km_fail(e, KM_ENOMEM, "out of memory (output path)");
	}
	sweep_stale(dir, base);
	km_status st = create_locked(af, dir, base, e);
	free(dir);
	if (st)
		release(af);
	return st;
}

static void atomicfile_abort_fs(atomicfile *af)
{
	if (!af)
		return;
	/* Unlink before closing: closing lets go of the lock, and the name
	 * must not outlive it. */
	if (af->fd >= 0 && af->tmp_path && af->final_path)
		unlink(af->tmp_path);
	if (af->fd >= 0)
		close(af->fd);
	release(af);
}

static km_status atomicfile_commit_fs(atomicfile *af, km_err *e)
{
	if (!af || af->fd < 0 || !af->final_path)
		return km_fail(e, KM_EUSAGE, "atomicfile_commit: the file is not open");

	if (fsync(af->fd) != 0) {
		km_status st = km_fail(e, KM_EIO, "cannot flush %s to disk: %s", af->final_path, strerror(errno));
		atomicfile_abort_fs(af);
		return st;
	}
	/* Renamed while still locked: an unlocked ".kwtmp." file would be
	 * fair game for another writer's sweep. */
	if (rename(af->tmp_path, af->final_path) != 0) {
		km_status st = km_fail(e, KM_EIO, "cannot move the output into place at %s: %s",
		                       af->final_path, strerror(errno));
		atomicfile_abort_fs(af);
		return st;
	}
	km_status st = KM_OK;
	if (close(af->fd) != 0)
		st = km_fail(e, KM_EIO, "%s is written, but closing it reported an error: %s",
		             af->final_path, strerror(errno));
	af->fd = -1;

	/* The rename is durable only once the directory is. */
	char *dir = dir_of(af->final_path);
	int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (!st && (dfd < 0 || fsync(dfd) != 0))
		st = km_fail(e, KM_EIO, "%s is written, but its directory could not be flushed to disk: %s",
		             af->final_path, dir ? strerror(errno) : "out of memory");
	if (dfd >= 0)
		close(dfd);
	free(dir);
	release(af);
	return st;
}

/* Every file operation on a path the person named runs with the person's
 * file-system rights (caller.h): a set-user-ID keyward never writes where
 * its caller could not. */
km_status atomicfile_open(const char *final_path, atomicfile *af, km_err *e)
{
	km_caller_rights_begin();
	km_status st = atomicfile_open_fs(final_path, af, e);
	km_caller_rights_end();
	return st;
}

km_status atomicfile_commit(atomicfile *af, km_err *e)
{
	km_caller_rights_begin();
	km_status st = atomicfile_commit_fs(af, e);
	km_caller_rights_end();
	return st;
}

void atomicfile_abort(atomicfile *af)
{
	km_caller_rights_begin();
	atomicfile_abort_fs(af);
	km_caller_rights_end();
}
