/* static: the dashboard's files under [web] root, served at / and below — ETag and
 * If-None-Match (304), a precompressed NAME.gz chosen by Accept-Encoding, Cache-Control
 * (long for hashed /assets/, no-cache otherwise), and index.html for unknown paths (the
 * single-page app routes in the browser). Path traversal is impossible by construction:
 * every segment is checked (never empty, ".", "..", NUL, '/' or '\' once percent-decoded)
 * and opened with openat relative to the root's directory fd, O_NOFOLLOW, regular files
 * only. Files are read on the libuv pool, never on the loop; the object is loop-thread
 * owned, static_destroy frees it once no read is in flight (shutdown drains them). */
#ifndef VW_STATIC_H
#define VW_STATIC_H

#include <stddef.h>
#include <uv.h>

#include "conn.h"
#include "http.h"

struct web_static;

/* Opens root (a directory). err says why not. */
int static_open(uv_loop_t *loop, const char *root, struct web_static **out, char *err,
                size_t errlen);
void static_destroy(struct web_static *w); /* accepts NULL */
/* Answers a GET or HEAD of req->path from the root (always answers, now or later). */
void static_serve(struct web_static *w, struct conn *c, const struct http_request *req);
/* The pure part, for tests: splits path into decoded segments in out (NUL-separated, count
 * in *n). -EINVAL for any segment that could leave the root or name something odd. A
 * trailing '/' adds "index.html". */
int static_path_split(const char *path, char *out, size_t outlen, size_t *n);

#endif
