/* fileio: replacing a file so that a crash never leaves half of it, nor a mix of old and new
 * when several files belong together. Each file is written to a temporary file of a unique
 * name in its own directory (O_EXCL, mode set with fchmod so the umask neither widens nor
 * narrows it), fsync'd, then renamed over the target and the directory fsync'd. Any thread;
 * no shared state; the caller keeps ownership of what write_cb writes. */
#ifndef VW_FILEIO_H
#define VW_FILEIO_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* write_cb returns nonzero on success (OpenSSL's PEM_write_* convention). */
typedef int (*vw_file_write_fn)(FILE *fp, const void *arg);

struct vw_file_part {
	const char *path;
	mode_t mode;
	vw_file_write_fn write_cb;
	const void *arg;
	int set_owner; /* 1: fchown the new file to uid:gid before it replaces path */
	uid_t uid;
	gid_t gid;
};

/* Replaces path with what write_cb writes. A symlink at path is replaced, never followed.
 * 0 or -errno, with err naming the file and what failed; on failure path is untouched and no
 * temporary file is left. */
int vw_file_replace(const char *path, mode_t mode, vw_file_write_fn write_cb, const void *arg,
                    char *err, size_t errlen);

/* Replaces parts[0..n-1] together: every file is written and synced before any is renamed,
 * so a failure while writing (disk full, a bad write_cb) leaves all of them as they were.
 * Only a failing rename itself (not expected on one file system) can leave the first parts
 * new and the rest old; err then says which were replaced. 0 or -errno. */
int vw_file_replace_many(const struct vw_file_part *parts, size_t n, char *err, size_t errlen);

/* Makes sure path exists before a library (SQLite) creates it with its own mode: a new file
 * gets exactly mode (O_EXCL, then fchmod, so the umask neither widens nor narrows it); an
 * existing one must be a regular file, not a symlink (-ELOOP, -EINVAL otherwise), and has
 * any permission beyond mode taken away (a narrower mode is kept). SQLite gives a database's -wal
 * and -shm files the main file's mode, so pre-creating the database covers all three. 0 or -errno,
 * err says what. */
int vw_file_precreate(const char *path, mode_t mode, char *err, size_t errlen);

#endif
