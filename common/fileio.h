/* fileio: writing a file so that a crash never leaves half of it — through PATH.tmp, created
 * 0600 with O_NOFOLLOW, mode set with fchmod (the umask cannot widen it), fsync'd. The caller
 * renames (so several files can be swapped in together). Any thread; no shared state. */
#ifndef VW_FILEIO_H
#define VW_FILEIO_H

#include <stdio.h>
#include <sys/types.h>

/* write_cb returns nonzero on success (OpenSSL's PEM_write_* convention). On success tmp holds
 * PATH.tmp, complete and synced; on failure it is removed and err says what. 0 or -errno. */
int vw_file_write_tmp(const char *path, mode_t mode, int (*write_cb)(FILE *fp, const void *arg),
                      const void *arg, char *tmp, size_t tmplen, char *err, size_t errlen);

#endif
