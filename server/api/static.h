/* static: the dashboard's files under [web] root, served at / and below — ETag and
 * If-None-Match (304), a precompressed NAME.gz chosen by Accept-Encoding, Cache-Control
 * (long for hashed /assets/, no-cache otherwise), and index.html for unknown paths (the
 * single-page app routes in the browser). Path traversal is impossible by construction:
 * every segment is checked (never empty, NUL, '/' or '\' once percent-decoded, nor starting
 * with '.': no "..", no dotfiles) and opened with openat relative to the root's directory
 * fd, O_NOFOLLOW, regular files only. Files are opened and read on the libuv pool, never on
 * the loop, and sent in 64 KiB pieces through conn_body_*, the next piece read only once the
 * connection's backlog has drained (no file is ever whole in memory). The object is
 * loop-thread owned; static_destroy frees it once no response is in progress (shutdown
 * drains them). */
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
/* Answers a GET or HEAD of req->path from the root (always answers, now or later). The
 * ETag hashes size and mtime; a 304 has no Content-Length. */
void static_serve(struct web_static *w, struct conn *c, const struct http_request *req);
/* The pure part, for tests: splits path into decoded segments in out (NUL-separated, count
 * in *n). -EINVAL for any segment that could leave the root, is a dotfile or names
 * something odd. A trailing '/' adds "index.html". */
int static_path_split(const char *path, char *out, size_t outlen, size_t *n);

#endif
