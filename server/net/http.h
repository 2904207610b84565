/* http: HTTP/1.1 request framing and response formatting — the one place that talks to
 * libhttp-parser. Bytes in, decisions out: no sockets, so it is unit-tested and fuzzed on
 * its own. Framing rules the library is lenient about (Content-Length with
 * Transfer-Encoding, duplicate Content-Length, obs-fold, bare LF/CR, header size, and in
 * chunked bodies the size lines, the CRLF after each chunk and the trailers) are checked
 * here before the library sees the bytes. Any thread, one reader per connection;
 * http_reader_destroy frees the request's buffers. */
#ifndef VW_HTTP_H
#define VW_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum http_verb {
	HTTP_VERB_OTHER,
	HTTP_VERB_GET,
	HTTP_VERB_HEAD,
	HTTP_VERB_POST,
	HTTP_VERB_DELETE,
	HTTP_VERB_PATCH,
};

/* What http_reader_feed stopped at. */
enum http_event {
	HTTP_NEED_MORE,   /* every byte consumed; the request is not complete */
	HTTP_GOT_HEADERS, /* consumed through the end of the header block; a body follows */
	HTTP_GOT_REQUEST, /* consumed through the request's last byte; see http_reader_request */
	HTTP_GOT_ERROR,   /* answer http_reader_error's status and close the connection */
};

struct http_request {
	enum http_verb verb;
	const char *method;  /* "GET", "POST", ... */
	const char *path;    /* target up to '?', NUL-terminated, not percent-decoded */
	const char *query;   /* after '?', "" when absent */
	int keep_alive;      /* the client allows another request on this connection */
	int expect_continue; /* "Expect: 100-continue": send 100 before reading the body */
	int chunked;
	int gzip;                  /* "Content-Encoding: gzip": the body is still compressed */
	int64_t content_length;    /* -1 when absent */
	const char *authorization; /* the Authorization header's value, "" when absent */
	const char *if_none_match; /* If-None-Match's value, "" when absent or too long */
	/* Last-Event-ID's value (SSE resume, issue 16), "" when absent, "invalid" when
	 * repeated or too long. */
	const char *last_event_id;
	int accept_gzip;            /* Accept-Encoding names gzip (or *) with a q above 0 */
	const char *host;           /* Host's value, "" when absent or too long */
	const char *origin;         /* Origin's value; "invalid" when repeated or too long */
	int has_origin;             /* an Origin header was sent */
	const char *sec_fetch_site; /* Sec-Fetch-Site's value, "" when absent or repeated */
	/* The __Host-vw_session cookie's value, from every Cookie header (RFC 6265 4.2.1 pairs):
	 * "" unless it appeared exactly once, "invalid" when too long. No other cookie is kept. */
	const char *session_cookie;
	unsigned session_cookies; /* how many times it appeared (more than once: ambiguous) */
	const char *body;         /* NUL-terminated for convenience; body_len excludes the NUL */
	size_t body_len;
};

/* http_request carries the Authorization header (for api.c's bearer tokens). */
#define HTTP_HAVE_AUTHORIZATION 1

struct http_reader;

struct http_reader *http_reader_create(size_t max_header_bytes, size_t max_body_bytes);
void http_reader_destroy(struct http_reader *r);
/* Consumes up to len bytes and says why it stopped (see enum http_event). After
 * HTTP_GOT_REQUEST, call http_reader_reset before feeding the next request's bytes. */
size_t http_reader_feed(struct http_reader *r, const char *data, size_t len, enum http_event *ev);
/* The complete request (after HTTP_GOT_REQUEST) or its head (after HTTP_GOT_HEADERS). */
const struct http_request *http_reader_request(const struct http_reader *r);
/* After HTTP_GOT_ERROR: the status to answer (400, 413, 415, 417, 431, 501) and why. */
const char *http_reader_error(const struct http_reader *r, int *status);
/* 1 once a byte of a request (not a blank line between requests) has been seen. */
int http_reader_started(const struct http_reader *r);
/* Ready for the next request on the same connection; large buffers are released. */
void http_reader_reset(struct http_reader *r);

const char *http_status_text(int status);
/* Appends a response head with Date, Content-Type: application/json, Content-Length and,
 * when !keep_alive, Connection: close. extra is NULL or "Name: value\r\n" lines. */
int http_format_head(struct vw_buf *out, int status, const char *extra, size_t body_len,
                     int keep_alive, int64_t now_ms);

/* The content types the collector answers with. CSV is UTF-8 with a BOM (so a spreadsheet
 * opens it as UTF-8, not the local code page); Prometheus is its text format 0.0.4. */
#define HTTP_CT_JSON "application/json"
#define HTTP_CT_HTML "text/html; charset=utf-8"
#define HTTP_CT_SSE "text/event-stream"
#define HTTP_CT_PROMETHEUS "text/plain; version=0.0.4"
#define HTTP_CT_CSV "text/csv; charset=utf-8"
#define HTTP_CSV_BOM "\xEF\xBB\xBF"

struct http_head {
	int status;
	const char *content_type; /* NULL: application/json */
	const char *extra;        /* NULL or "Name: value\r\n" lines */
	int64_t content_length;   /* -1: none, the body ends with the connection (a stream) */
	int keep_alive;
};

/* The general form of http_format_head. -EINVAL (nothing appended) when content_type holds
 * a CR or LF, or content_length < 0 with keep_alive (a body without an end cannot be
 * followed by another response). */
int http_format_response_head(struct vw_buf *out, const struct http_head *h, int64_t now_ms);
/* "Content-Disposition: attachment; filename=NAME\r\n" into out. NAME may hold only
 * [A-Za-z0-9._-] and must not start with '.': anything else is -EINVAL, so no quoting or
 * header injection question arises. */
int http_attachment_header(char *out, size_t outlen, const char *filename);

#endif
