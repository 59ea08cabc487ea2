/*
 * atomicfile.h — write an output file so that its final path only ever
 * holds a complete file: write to a temporary file beside it, then fsync,
 * rename over the final path and fsync the directory.
 *
 * Must never: leave anything partial at the final path, follow a symlink
 * when creating the temporary (O_EXCL), or create it readable by others
 * (mode 0600, whatever the umask).  A crash may leave a temporary named
 * ".<name>.kwtmp.XXXXXX" in the directory; never a partial final file.
 *
 * Recovery.  A killed writer's temporary may hold part of a decrypted
 * file, so the next atomicfile_open for the same destination removes the
 * temporaries nobody holds.  What makes that safe against live writers:
 *   - a writer holds an exclusive flock on its temporary for as long as
 *     the temporary has its ".kwtmp." name: the file is created under a
 *     second name, ".<name>.kwnew.XXXXXX", locked there, and only then
 *     renamed to ".kwtmp."; on commit it is renamed to the final path, and
 *     on abort unlinked, before the lock is let go;
 *   - so the sweep removes a ".kwtmp." file only when it can take that
 *     lock (its writer is gone), and only if the name still denotes the
 *     inode it locked;
 *   - a ".kwnew." file is empty and, while its writer lives, at most
 *     microseconds old; the sweep removes one only when it is empty,
 *     unlocked and older than ATOMICFILE_PENDING_GRACE_S;
 *   - anything else under those names (a FIFO, a device, a symlink, a
 *     directory) is left alone and never waited on: the sweep opens with
 *     O_NONBLOCK | O_NOFOLLOW and checks the type before and after.
 */
#ifndef KM_ATOMICFILE_H
#define KM_ATOMICFILE_H

#include "km.h"

/* Seconds an unlocked, empty ".kwnew." file is left to its writer.  Its
 * writer needs microseconds; the margin covers clocks that disagree (a
 * network file system's server sets the time). */
#define ATOMICFILE_PENDING_GRACE_S 600

typedef struct atomicfile {
	int fd;           /* write the content here; -1 once closed */
	char *final_path; /* owned; NULL once committed or aborted */
	char *tmp_path;   /* owned */
} atomicfile;

/* Create the temporary beside final_path (same directory, so the rename is
 * atomic), locked, after sweeping the stale temporaries of final_path.
 * KM_EIO if the directory is missing or not writable, KM_EUSAGE if
 * final_path is empty or names a directory ("dir/"). */
km_status atomicfile_open(const char *final_path, atomicfile *af, km_err *e);

/* fsync the content, rename over the final path (replacing any file
 * there), close, fsync the directory.  On failure before the rename the
 * temporary is removed and the final path is untouched; after it (close
 * or directory fsync failed) the file is in place and the message says
 * so.  Either way *af is released. */
km_status atomicfile_commit(atomicfile *af, km_err *e);

/* Unlink the temporary and close it; the final path is untouched.  Safe
 * to call after commit, after a failed open and more than once. */
void atomicfile_abort(atomicfile *af);

#endif
