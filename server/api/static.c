#include "static.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* Files are sent in pieces of this size, each read on the pool only when the connection's
 * backlog is below conn's mark: a response holds one piece in memory while it is read, none
 * while it waits, whatever the file's size or the number of requests for it. */
#define CHUNK (64u << 10)
/* Responses open at once (each holds an fd; one waiting for a slow reader holds nothing
 * else); more get 503. Slow readers are ended by conn's idle timeout. */
#define JOBS_MAX 256
#define SEGMENTS_MAX 16
#define PATH_BYTES 1024

struct web_static {
	uv_loop_t *loop;
	int root_fd;
	size_t inflight; /* jobs alive: opening, reading or sending */
};

struct job {
	uv_work_t work;
	struct web_static *w;
	struct conn *conn;
	char segs[PATH_BYTES];
	size_t nsegs;
	int gzip_ok, assets, fallback_ok;
	char inm[80];
	/* results */
	int rc; /* 0, -ENOENT (no such file), other negative */
	int gz, is_index;
	char etag[80];
	int fd;
	uint64_t size;
	/* sending */
	uint64_t off;
	size_t want, got;
	char *buf;
	int read_rc;
};

static int hexv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int static_path_split(const char *path, char *out, size_t outlen, size_t *n)
{
	size_t used = 0;
	*n = 0;
	if (path[0] != '/')
		return -EINVAL;
	const char *p = path + 1;
	for (;;) {
		const char *e = strchr(p, '/');
		size_t sl = e ? (size_t)(e - p) : strlen(p);
		if (!e && sl == 0) {
			/* "/" or "dir/": the directory's index.html */
			static const char idx[] = "index.html";
			if (used + sizeof(idx) > outlen || *n >= SEGMENTS_MAX)
				return -EINVAL;
			memcpy(out + used, idx, sizeof(idx));
			(*n)++;
			return 0;
		}
		if (sl == 0 || *n >= SEGMENTS_MAX)
			return -EINVAL; /* "//": an empty segment */
		char *d = out + used;
		size_t dl = 0;
		for (size_t i = 0; i < sl; i++) {
			int ch = (unsigned char)p[i];
			if (ch == '%') {
				if (i + 2 >= sl)
					return -EINVAL; /* "%" or "%2" at the end */
				int h1 = hexv((unsigned char)p[i + 1]),
				    h2 = hexv((unsigned char)p[i + 2]);
				if (h1 < 0 || h2 < 0)
					return -EINVAL;
				ch = h1 * 16 + h2;
				i += 2;
			}
			/* Decoded, a segment may not name a separator or end a C string early. */
			if (ch == 0 || ch == '/' || ch == '\\' || ch < 0x20 || ch == 0x7f)
				return -EINVAL;
			if (used + dl + 2 > outlen)
				return -EINVAL;
			d[dl++] = (char)ch;
		}
		d[dl] = '\0';
		/* ".", ".." and every dotfile or dot-directory (.env, .git/): nothing of the
		 * bundle's is named so, and what is (editor or deploy leftovers) is not public. */
		if (dl == 0 || d[0] == '.')
			return -EINVAL;
		used += dl + 1;
		(*n)++;
		if (!e)
			return 0;
		p = e + 1;
	}
}

/* --- on the pool ----------------------------------------------------------------------- */

/* Opens segs (nsegs of them, NUL-separated) below root_fd, never following a symlink and
 * never leaving through "..": both refused by construction (split) and by the kernel
 * (O_NOFOLLOW on every component). name_suffix is added to the last segment (".gz"). */
static int open_under(int root_fd, const char *segs, size_t nsegs, const char *suffix)
{
	int dir = root_fd;
	const char *s = segs;
	for (size_t i = 0; i + 1 < nsegs; i++) {
		int fd = openat(dir, s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		if (dir != root_fd)
			close(dir);
		if (fd < 0)
			return -e;
		dir = fd;
		s += strlen(s) + 1;
	}
	char last[PATH_BYTES + 4];
	snprintf(last, sizeof(last), "%s%s", s, suffix);
	int fd = openat(dir, last, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int e = errno;
	if (dir != root_fd)
		close(dir);
	return fd < 0 ? -e : fd;
}

/* FNV-1a, 64-bit: the ETag needs only to change with its inputs, not to be secret. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static int stat_file(struct job *j, int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOENT; /* directories, fifos, devices: not a file to serve */
	/* Strong ETag from what changes when the file does: size and mtime (ns), hashed, so it
	 * tells nobody an inode number or a deploy time. */
	uint64_t v[3] = {(uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
	                 (uint64_t)st.st_mtim.tv_nsec};
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, v, sizeof(v));
	snprintf(j->etag, sizeof(j->etag), "\"%016llx%s\"", (unsigned long long)h,
	         j->gz ? "-gz" : "");
	j->size = (uint64_t)st.st_size;
	return 0;
}

static int try_open_read(struct job *j, const char *segs, size_t nsegs)
{
	int fd = -ENOENT;
	j->gz = 0;
	if (j->gzip_ok) {
		fd = open_under(j->w->root_fd, segs, nsegs, ".gz");
		if (fd >= 0)
			j->gz = 1;
	}
	if (fd < 0)
		fd = open_under(j->w->root_fd, segs, nsegs, "");
	if (fd < 0)
		return fd;
	int rc = stat_file(j, fd);
	if (rc) {
		close(fd);
		return rc;
	}
	j->fd = fd; /* the sending reads it; job_free closes it */
	return 0;
}

static void work(uv_work_t *w)
{
	struct job *j = w->data;
	j->rc = try_open_read(j, j->segs, j->nsegs);
	j->is_index = j->nsegs == 1 && strcmp(j->segs, "index.html") == 0;
	/* Only a name that is not there falls back: a symlink (ELOOP), a directory or a
	 * refused file stays refused. */
	if (j->rc == -ENOENT && j->fallback_ok) {
		j->rc = try_open_read(j, "index.html", 1);
		j->is_index = 1;
	}
}

/* --- back on the loop ------------------------------------------------------------------- */

static const char *content_type(const char *name, int is_index)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
	    {".html", HTTP_CT_HTML},
	    {".js", "text/javascript; charset=utf-8"},
	    {".mjs", "text/javascript; charset=utf-8"},
	    {".css", "text/css; charset=utf-8"},
	    {".json", "application/json"},
	    {".map", "application/json"},
	    {".svg", "image/svg+xml"},
	    {".png", "image/png"},
	    {".jpg", "image/jpeg"},
	    {".webp", "image/webp"},
	    {".ico", "image/x-icon"},
	    {".woff2", "font/woff2"},
	    {".txt", "text/plain; charset=utf-8"},
	};
	if (is_index)
		return HTTP_CT_HTML;
	size_t nl = strlen(name);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t el = strlen(types[i].ext);
		if (nl > el && strcasecmp(name + nl - el, types[i].ext) == 0)
			return types[i].type;
	}
	return "application/octet-stream";
}

/* If-None-Match (RFC 9110 13.1.2): "*" or a list of tags, compared weakly. */
static int etag_matches(const char *inm, const char *etag)
{
	if (!inm[0])
		return 0;
	const char *p = inm;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '*')
			return 1;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		const char *e = p;
		if (*e == '"') {
			e = strchr(e + 1, '"');
			if (!e)
				return 0;
			e++;
		} else {
			while (*e && *e != ',')
				e++;
		}
		size_t n = (size_t)(e - p);
		if (n == strlen(etag) && memcmp(p, etag, n) == 0)
			return 1;
		p = e;
	}
	return 0;
}

static void job_free(struct job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	free(j->buf);
	j->w->inflight--;
	free(j);
}

/* The body is over (sent, or cut short: conn then closes the connection). */
static void job_end(struct job *j)
{
	conn_body_end(j->conn);
	job_free(j);
}

static void next_piece(struct job *j);

static void read_work(uv_work_t *w)
{
	struct job *j = w->data;
	j->got = 0;
	j->read_rc = 0;
	if (!(j->buf = malloc(j->want))) {
		j->read_rc = -ENOMEM;
		return;
	}
	while (j->got < j->want) {
		ssize_t r =
		    pread(j->fd, j->buf + j->got, j->want - j->got, (off_t)(j->off + j->got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			j->read_rc = r < 0 ? -errno : -EIO; /* shrank under us */
			return;
		}
		j->got += (size_t)r;
	}
}

static void read_done(uv_work_t *w, int status)
{
	struct job *j = w->data;
	int rc = status ? status : j->read_rc;
	if (!rc)
		rc = conn_body_write(j->conn, j->buf, j->got);
	else
		log_warn("event=static_read_failed path=%s error=%d sent=%llu size=%llu", j->segs,
		         rc, (unsigned long long)j->off, (unsigned long long)j->size);
	free(j->buf);
	j->buf = NULL;
	if (rc) {
		job_end(j);
		return;
	}
	j->off += j->got;
	if (j->off == j->size) {
		job_end(j);
		return;
	}
	next_piece(j);
}

static void on_writable(void *ud, struct conn *c)
{
	(void)c;
	next_piece(ud);
}

/* The next piece once the connection's backlog allows it: read on the pool, sent on the loop. */
static void next_piece(struct job *j)
{
	int ok = conn_body_writable(j->conn);
	if (ok < 0) {
		job_end(j); /* the peer is gone */
		return;
	}
	if (!ok) {
		conn_body_wait(j->conn, on_writable, j);
		return;
	}
	uint64_t left = j->size - j->off;
	j->want = left < CHUNK ? (size_t)left : CHUNK;
	if (uv_queue_work(j->w->loop, &j->work, read_work, read_done) != 0)
		job_end(j);
}

static void done(uv_work_t *w, int status)
{
	struct job *j = w->data;
	struct conn *c = j->conn;
	if (status == UV_ECANCELED || j->rc == -ENOMEM || j->rc == -EMFILE || j->rc == -ENFILE) {
		conn_respond_error(c, 503, "server busy", NULL);
	} else if (j->rc) {
		conn_respond_error(c, 404, "not found", NULL);
	} else {
		const char *last = j->segs;
		for (size_t i = 1; i < j->nsegs; i++)
			last += strlen(last) + 1;
		/* Hashed bundle files never change under their name; index.html names them and
		 * must be revalidated every time, or a deploy would not be seen. */
		const char *cache =
		    j->assets && !j->is_index ? "public, max-age=31536000, immutable" : "no-cache";
		char extra[400];
		snprintf(extra, sizeof(extra),
		         "ETag: %s\r\nCache-Control: %s\r\nVary: Accept-Encoding\r\n"
		         "X-Content-Type-Options: nosniff\r\n%s",
		         j->etag, cache, j->gz ? "Content-Encoding: gzip\r\n" : "");
		const char *ct = content_type(last, j->is_index);
		if (etag_matches(j->inm, j->etag)) {
			conn_respond_typed(c, 304, ct, extra, "", 0);
		} else {
			int rc = conn_body_begin(c, 200, ct, extra, j->size);
			if (rc == 0) {
				next_piece(j);
				return;
			}
			if (rc < 0)
				conn_body_end(c);
		}
	}
	job_free(j);
}

int static_open(uv_loop_t *loop, const char *root, struct web_static **out, char *err,
                size_t errlen)
{
	*out = NULL;
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "[web] root %s: %s", root, strerror(e));
		return -e;
	}
	struct web_static *w = calloc(1, sizeof(*w));
	if (!w) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	w->loop = loop;
	w->root_fd = fd;
	*out = w;
	return 0;
}

void static_destroy(struct web_static *w)
{
	if (!w)
		return;
	if (w->inflight)
		log_error("event=static_destroy_busy inflight=%zu", w->inflight);
	close(w->root_fd);
	free(w);
}

void static_serve(struct web_static *w, struct conn *c, const struct http_request *req)
{
	if (w->inflight >= JOBS_MAX) {
		conn_respond_error(c, 503, "server busy", NULL);
		return;
	}
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		conn_respond_error(c, 503, "server busy", NULL);
		return;
	}
	if (static_path_split(req->path, j->segs, sizeof(j->segs), &j->nsegs)) {
		free(j);
		conn_respond_error(c, 404, "not found", NULL);
		return;
	}
	j->w = w;
	j->conn = c;
	j->fd = -1;
	j->gzip_ok = req->accept_gzip;
	j->assets = strncmp(req->path, "/assets/", 8) == 0;
	/* A missing hashed asset stays a 404: index.html served as a script helps nobody. */
	j->fallback_ok = !j->assets;
	snprintf(j->inm, sizeof(j->inm), "%s", req->if_none_match);
	j->work.data = j;
	w->inflight++;
	int rc = uv_queue_work(w->loop, &j->work, work, done);
	if (rc) {
		job_free(j);
		conn_respond_error(c, 503, "server busy", NULL);
	}
}
