#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int vw_file_write_tmp(const char *path, mode_t mode, int (*write_cb)(FILE *fp, const void *arg),
                      const void *arg, char *tmp, size_t tmplen, char *err, size_t errlen)
{
	if ((size_t)snprintf(tmp, tmplen, "%s.tmp", path) >= tmplen) {
		snprintf(err, errlen, "path too long: %s", path);
		return -ENAMETOOLONG;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(e));
		return -e;
	}
	FILE *fp = fdopen(fd, "w");
	if (!fp) {
		close(fd);
		unlink(tmp);
		snprintf(err, errlen, "cannot write %s", tmp);
		return -EIO;
	}
	int ok = write_cb(fp, arg) && fflush(fp) == 0 && fchmod(fd, mode) == 0 && fsync(fd) == 0;
	if (fclose(fp) != 0)
		ok = 0;
	if (!ok) {
		unlink(tmp);
		snprintf(err, errlen, "cannot write %s", tmp);
		return -EIO;
	}
	return 0;
}
