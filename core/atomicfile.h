/*
 * atomicfile.h — write an output file so that its final path only ever
 * holds a complete file: write to a temporary file beside it, then fsync,
 * rename over the final path and fsync the directory.
 *
 * Must never: leave anything partial at the final path, follow a symlink
 * when creating the temporary (O_EXCL), or create it readable by others
 * (mode 0600, whatever the umask).  A crash may leave a temporary named
 * ".<name>.kwtmp.XXXXXX" in the directory; never a partial final file.
 */
/* Recovery: the writer holds an exclusive flock on its temp file; the next
 * atomicfile_open for the same destination removes temp files nobody
 * holds (left by a killed writer). */
#ifndef KM_ATOMICFILE_H
#define KM_ATOMICFILE_H

#include "km.h"

typedef struct atomicfile {
	int fd;           /* write the content here; -1 once closed */
	char *final_path; /* owned; NULL once committed or aborted */
	char *tmp_path;   /* owned */
} atomicfile;

/* Create the temporary beside final_path (same directory, so the rename is
 * atomic).  KM_EIO if the directory is missing or not writable, KM_EUSAGE
 * if final_path is empty or names a directory ("dir/"). */
km_status atomicfile_open(const char *final_path, atomicfile *af, km_err *e);

/* fsync the content, close, rename over the final path (replacing any file
 * there), fsync the directory.  On failure the temporary is removed and the
 * final path is untouched (unless only the directory fsync failed: then the
 * file is in place and the message says so).  Either way *af is released. */
km_status atomicfile_commit(atomicfile *af, km_err *e);

/* Close and unlink the temporary; the final path is untouched.  Safe to
 * call after commit, after a failed open and more than once. */
void atomicfile_abort(atomicfile *af);

#endif
