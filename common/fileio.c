#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A replacement of more files than this is not one we have (enroll writes two). */
#define VW_FILE_PARTS_MAX 8

/* The directory holding path, for its fsync. */
static void dir_of(const char *path, char *dir, size_t dirlen)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, dirlen, ".");
	else if (slash == path)
		snprintf(dir, dirlen, "/");
	else
		snprintf(dir, dirlen, "%.*s", (int)(slash - path), path);
}

/* Without it the rename itself may not survive a power cut: the new name lives in the
 * directory's blocks, which the file's fsync does not write. */
static int dir_sync(const char *path, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	dir_of(path, dir, sizeof(dir));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "cannot sync directory %s: %s", dir, strerror(e));
		return -e;
	}
	close(fd);
	return 0;
}

/* Writes one part to a new PATH.tmp.XXXXXX (mkostemp: O_CREAT|O_EXCL, so an attacker's
 * symlink at that name is never followed), synced. tmp holds the name on success. */
static int write_part(const struct vw_file_part *p, char *tmp, size_t tmplen, char *err,
                      size_t errlen)
{
	if ((size_t)snprintf(tmp, tmplen, "%s.tmp.XXXXXX", p->path) >= tmplen) {
		snprintf(err, errlen, "path too long: %s", p->path);
		tmp[0] = '\0';
		return -ENAMETOOLONG;
	}
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot create a temporary file beside %s: %s", p->path,
		         strerror(e));
		tmp[0] = '\0';
		return -e;
	}
	/* Before anything is written, so a secret never sits in a file wider than its mode. */
	if (fchmod(fd, p->mode) != 0 || (p->set_owner && fchown(fd, p->uid, p->gid) != 0)) {
		int e = errno;
		snprintf(err, errlen, "cannot set the mode or owner of %s: %s", tmp, strerror(e));
		close(fd);
		unlink(tmp);
		tmp[0] = '\0';
		return -e;
	}
	FILE *fp = fdopen(fd, "w");
	if (!fp) {
		int e = errno;
		close(fd);
		unlink(tmp);
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(e));
		tmp[0] = '\0';
		return -e;
	}
	errno = 0;
	int ok = p->write_cb(fp, p->arg) && fflush(fp) == 0 && fsync(fd) == 0;
	int e = errno ? errno : EIO;
	if (fclose(fp) != 0 && ok) {
		ok = 0;
		e = errno ? errno : EIO;
	}
	if (!ok) {
		snprintf(err, errlen, "cannot write %s: %s", p->path, strerror(e));
		unlink(tmp);
		tmp[0] = '\0';
		return -e;
	}
	return 0;
}

int vw_file_replace_many(const struct vw_file_part *parts, size_t n, char *err, size_t errlen)
{
	char tmp[VW_FILE_PARTS_MAX][PATH_MAX + 16];
	int rc = 0;
	size_t i;
	if (n == 0 || n > VW_FILE_PARTS_MAX) {
		snprintf(err, errlen, "cannot replace %zu files at once", n);
		return -EINVAL;
	}
	for (i = 0; i < n; i++)
		tmp[i][0] = '\0';
	for (i = 0; i < n; i++)
		if ((rc = write_part(&parts[i], tmp[i], sizeof(tmp[i]), err, errlen)) != 0)
			goto fail;
	for (i = 0; i < n; i++) {
		if (rename(tmp[i], parts[i].path) != 0) {
			rc = -errno;
			if (i)
				snprintf(err, errlen,
				         "cannot rename %s over %s: %s (the %zu file%s before it "
				         "%s already replaced)",
				         tmp[i], parts[i].path, strerror(-rc), i, i == 1 ? "" : "s",
				         i == 1 ? "was" : "were");
			else
				snprintf(err, errlen, "cannot rename %s over %s: %s", tmp[i],
				         parts[i].path, strerror(-rc));
			goto fail;
		}
		tmp[i][0] = '\0';
	}
	for (i = 0; i < n; i++)
		if ((rc = dir_sync(parts[i].path, err, errlen)) != 0)
			return rc;
	return 0;
fail:
	for (i = 0; i < n; i++)
		if (tmp[i][0])
			unlink(tmp[i]);
	return rc;
}

int vw_file_replace(const char *path, mode_t mode, vw_file_write_fn write_cb, const void *arg,
                    char *err, size_t errlen)
{
	struct vw_file_part p = {.path = path, .mode = mode, .write_cb = write_cb, .arg = arg};
	return vw_file_replace_many(&p, 1, err, errlen);
}

/* An existing file at path, about to be opened by a library that follows symlinks and keeps
 * the mode it finds: a symlink (planted to point the database elsewhere) or anything but a
 * regular file is refused, and a mode wider than asked for is narrowed to it. O_NONBLOCK: a
 * FIFO planted there must not hang the open. */
static int precreated(const char *path, mode_t mode, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot open %s: %s", path,
		         e == ELOOP ? "it is a symbolic link" : strerror(e));
		return -e;
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot inspect %s: %s", path, strerror(-rc));
	} else if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s exists but is not a regular file", path);
	} else if ((st.st_mode & 07777 & ~mode) && fchmod(fd, st.st_mode & 07777 & mode) != 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot narrow the mode of %s to %04o: %s", path,
		         (unsigned)mode, strerror(-rc));
	}
	close(fd);
	return rc;
}

int vw_file_precreate(const char *path, mode_t mode, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 && errno == EEXIST)
		return precreated(path, mode, err, errlen);
	if (fd < 0 || fchmod(fd, mode) != 0) {
		int e = errno;
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(e));
		return -e;
	}
	close(fd);
	return 0;
}
