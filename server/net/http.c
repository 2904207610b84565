#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Header names the framing checks care about; everything else passes through. */
enum hdr {
	H_OTHER,
	H_CONTENT_LENGTH,
	H_TRANSFER_ENCODING,
	H_HOST,
	H_CONTENT_ENCODING,
	H_EXPECT,
	H_AUTHORIZATION,
	H_ACCEPT_ENCODING,
	H_IF_NONE_MATCH,
	H_LAST_EVENT_ID, /* issue 16 (A): SSE resume */
	H_ORIGIN,
	H_SEC_FETCH_SITE,
	H_COOKIE, /* scanned as it streams (cookie_byte): only our session cookie is kept */
};

#define NAME_MAX_ 24  /* longest interesting name ("content-encoding") plus room */
#define VALUE_MAX_ 64 /* interesting values are short: digits, "chunked", "100-continue" */
/* Host and Origin: a DNS name (253) with a port and, for Origin, the scheme. */
#define HOST_MAX_ 272
#define COOKIE_NAME "__Host-vw_session"
#define COOKIE_NAME_MAX_ 24 /* a longer name is not ours */
/* A body buffer larger than this is released between requests rather than reused, so an
 * idle keep-alive connection holds kilobytes, not the last batch's megabytes. */
#define KEEP_BODY_CAP (4u << 10)
/* A chunk size longer than this many hex digits would not fit the body limit anyway, and
 * past 16 it would overflow: refuse it rather than let the library decide. */
#define CHUNK_DIGITS_MAX 15

/* Where scan_chunked is in RFC 9112 7.1's chunked-body grammar. */
enum chunk_state {
	CK_SIZE,    /* 1*HEXDIG */
	CK_EXT,     /* [ BWS ";" chunk-ext ] up to CR */
	CK_SIZE_LF, /* the LF of the size line */
	CK_DATA,    /* chunk-data */
	CK_DATA_CR, /* CRLF after chunk-data */
	CK_DATA_LF,
	CK_TRAILER, /* trailer-section lines, then the final CRLF */
	CK_TRAILER_LF,
	CK_DONE,
};

struct http_reader {
	http_parser parser;
	size_t max_header, max_body;
	struct http_request req;
	struct vw_buf url;
	struct vw_buf body;

	/* Header-block scanner, run over bytes before the library sees them. */
	int in_body;         /* the header block has ended */
	int started;         /* a non-blank byte seen */
	int complete;        /* on_message_complete ran */
	size_t header_bytes; /* including leading blank lines */
	size_t lines;        /* non-empty lines completed (0 = request line pending) */
	size_t line_len;     /* bytes on the current line, CR excluded */
	int prev_cr;
	int in_value;   /* past the ':' of the current header line */
	enum hdr which; /* the current header line's name */
	char name[NAME_MAX_];
	size_t name_len;
	char value[HOST_MAX_];
	size_t value_len;
	int value_over;
	unsigned n_cl, n_te, n_host, n_ce, n_expect, n_auth, n_inm;
	char ae[VALUE_MAX_], inm[VALUE_MAX_];
	int inm_over, accept_gzip;
	char leid[VALUE_MAX_];
	unsigned n_leid;
	int leid_over;
	char auth[VALUE_MAX_]; /* "Bearer vwt_" + 43 characters fits */
	int auth_over;
	char host[HOST_MAX_], origin[HOST_MAX_], fetch_site[VALUE_MAX_];
	int host_over, origin_over;
	unsigned n_origin, n_fetch_site;
	/* Cookie (RFC 6265 4.2.1: name=value pairs split by "; "), one header or several. */
	char ck_name[COOKIE_NAME_MAX_];
	size_t ck_name_len;
	int ck_in_value, ck_ours, ck_value_over;
	char session[VALUE_MAX_];
	size_t session_len;
	unsigned n_session;
	char cl[VALUE_MAX_], te[VALUE_MAX_], expect[VALUE_MAX_], ce[VALUE_MAX_];
	int cl_over, te_over, expect_over, ce_over;

	/* Chunked-body scanner (see scan_chunked). */
	enum chunk_state ck;
	uint64_t ck_left;   /* data bytes left in this chunk (or the size being read) */
	uint64_t ck_total;  /* data bytes in all chunks so far */
	unsigned ck_digits; /* hex digits of the current size */
	size_t ck_line;     /* bytes on the current extension or trailer line */
	size_t ck_trailer;  /* bytes of trailer section */
	int ck_colon;       /* the current trailer line has its ':' */

	int err_status;
	const char *err;
};

static int fail(struct http_reader *r, int status, const char *why)
{
	if (!r->err_status) {
		r->err_status = status;
		r->err = why;
	}
	return -1;
}

/* --- library callbacks: request line, body, completion ---------------------------------- */

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_reader *r = p->data;
	/* The scanner already bounds the whole head, so this cannot grow past max_header. */
	if (vw_buf_append(&r->url, at, len))
		return fail(r, 431, "request headers too large");
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_reader *r = p->data;
	struct http_request *q = &r->req;
	q->method = http_method_str((enum http_method)p->method);
	switch (p->method) {
	case HTTP_GET:
		q->verb = HTTP_VERB_GET;
		break;
	case HTTP_HEAD:
		q->verb = HTTP_VERB_HEAD;
		break;
	case HTTP_POST:
		q->verb = HTTP_VERB_POST;
		break;
	case HTTP_DELETE:
		q->verb = HTTP_VERB_DELETE;
		break;
	case HTTP_PATCH:
		q->verb = HTTP_VERB_PATCH;
		break;
	default:
		q->verb = HTTP_VERB_OTHER;
		break;
	}
	q->keep_alive = http_should_keep_alive(p);
	/* RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host (a
	 * second Host is refused as the header is read). HTTP/1.0 had no Host: allowed. */
	if (r->n_host == 0 && (p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1)))
		return fail(r, 400, "missing Host header (HTTP/1.1)");
	char *url = r->url.data ? (char *)vw_buf_cstr(&r->url) : NULL;
	if (!url || !url[0])
		return fail(r, 400, "empty request target");
	char *qm = strchr(url, '?');
	if (qm) {
		*qm = '\0';
		q->query = qm + 1;
	} else {
		q->query = "";
	}
	q->path = url;
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_reader *r = p->data;
	/* Reached for chunked bodies only: Content-Length was checked against the limit
	 * before the first body byte. */
	if (r->body.len + len > r->max_body)
		return fail(r, 413, "request body too large");
	if (vw_buf_append(&r->body, at, len))
		return fail(r, 503, "out of memory");
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_reader *r = p->data;
	r->complete = 1;
	r->req.body = r->body.data ? vw_buf_cstr(&r->body) : "";
	r->req.body_len = r->body.len;
	/* Stop at the message boundary: the bytes after it are the next request, which the
	 * connection feeds only once this one is answered. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* --- header-block scanner ---------------------------------------------------------------- */

static void trim_copy(char *dst, const char *src, size_t n)
{
	while (n && (*src == ' ' || *src == '\t'))
		src++, n--;
	while (n && (src[n - 1] == ' ' || src[n - 1] == '\t'))
		n--;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int name_done(struct http_reader *r)
{
	static const struct {
		const char *name;
		enum hdr h;
	} known[] = {
	    {"content-length", H_CONTENT_LENGTH},
	    {"transfer-encoding", H_TRANSFER_ENCODING},
	    {"host", H_HOST},
	    {"content-encoding", H_CONTENT_ENCODING},
	    {"expect", H_EXPECT},
	    {"authorization", H_AUTHORIZATION},
	    {"accept-encoding", H_ACCEPT_ENCODING},
	    {"if-none-match", H_IF_NONE_MATCH},
	    {"last-event-id", H_LAST_EVENT_ID},
	    {"origin", H_ORIGIN},
	    {"sec-fetch-site", H_SEC_FETCH_SITE},
	    {"cookie", H_COOKIE},
	};
	if (r->name_len == 0)
		return fail(r, 400, "empty header name");
	r->which = H_OTHER;
	if (r->name_len < sizeof(r->name)) {
		r->name[r->name_len] = '\0';
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(r->name, known[i].name) == 0)
				r->which = known[i].h;
	}
	/* Decided when the name is complete, so the library (which would judge these itself,
	 * more leniently or with a vaguer error) never sees such a head. RFC 9112 6.3. */
	switch (r->which) {
	case H_CONTENT_LENGTH:
		if (++r->n_cl > 1)
			return fail(r, 400, "duplicate Content-Length");
		if (r->n_te)
			return fail(r, 400, "Content-Length with Transfer-Encoding");
		break;
	case H_TRANSFER_ENCODING:
		if (++r->n_te > 1)
			return fail(r, 400, "duplicate Transfer-Encoding");
		if (r->n_cl)
			return fail(r, 400, "Content-Length with Transfer-Encoding");
		break;
	case H_HOST:
		if (++r->n_host > 1)
			return fail(r, 400, "duplicate Host"); /* RFC 9112 3.2 */
		break;
	case H_CONTENT_ENCODING:
		r->n_ce++;
		break;
	case H_EXPECT:
		r->n_expect++;
		break;
	case H_AUTHORIZATION:
		if (++r->n_auth > 1)
			return fail(r, 400,
			            "duplicate Authorization"); /* which one is the caller? */
		break;
	case H_IF_NONE_MATCH:
		r->n_inm++;
		break;
	case H_LAST_EVENT_ID:
		r->n_leid++;
		break;
	case H_ORIGIN:
		r->n_origin++; /* two are no origin at all (head_done) */
		break;
	case H_SEC_FETCH_SITE:
		r->n_fetch_site++;
		break;
	case H_COOKIE: /* several are one list (RFC 6265 5.4, RFC 9113 8.2.3) */
		r->ck_name_len = 0;
		r->ck_in_value = r->ck_ours = 0;
		break;
	case H_ACCEPT_ENCODING: /* several are one list (RFC 9110 5.3) */
	case H_OTHER:
		break;
	}
	r->in_value = 1;
	r->value_len = 0;
	r->value_over = 0;
	return 0;
}

/* Accept-Encoding (RFC 9110 12.5.3): a list of codings, each with an optional ;q=. gzip is
 * acceptable when "gzip", "x-gzip" or "*" is listed with a weight above 0. */
static int accepts_gzip(const char *v)
{
	while (*v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		const char *tok = v;
		while (*v && *v != ',' && *v != ';' && *v != ' ' && *v != '\t')
			v++;
		size_t n = (size_t)(v - tok);
		int named = (n == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
		            (n == 6 && strncasecmp(tok, "x-gzip", 6) == 0) ||
		            (n == 1 && tok[0] == '*');
		int zero = 0;
		while (*v && *v != ',') {
			if (*v == ';') {
				const char *p = v + 1;
				while (*p == ' ' || *p == '\t')
					p++;
				if ((p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
					/* q=0, q=0.0, q=0.000: refused; any other digit means
					 * wanted */
					p += 2;
					zero = *p == '0';
					for (p++; zero && *p && *p != ',' && *p != ';' && *p != ' ';
					     p++)
						zero = *p == '.' || *p == '0';
				}
			}
			v++;
		}
		if (named && !zero)
			return 1;
	}
	return 0;
}

/* The value into dst when it fits (trimmed), else "" and *over. */
static void take(struct http_reader *r, char *dst, size_t dstlen, int *over)
{
	*over = r->value_over || r->value_len >= dstlen;
	if (*over)
		dst[0] = '\0';
	else
		trim_copy(dst, r->value, r->value_len);
}

/* The end of one cookie-pair: ours is kept (and counted), every other one is dropped. */
static void cookie_pair_done(struct http_reader *r)
{
	if (r->ck_ours) {
		r->n_session++;
		while (r->session_len && (r->session[r->session_len - 1] == ' ' ||
		                          r->session[r->session_len - 1] == '\t'))
			r->session_len--;
		r->session[r->session_len] = '\0';
	}
	r->ck_name_len = 0;
	r->ck_in_value = r->ck_ours = 0;
}

/* One byte of a Cookie header's value. Streamed, so a long Cookie header (other sites'
 * cookies on the same host) costs no buffer: a name is compared with ours, a value kept only
 * when the name is ours. Case matters (RFC 6265 5.4: names are compared exactly). */
static void cookie_byte(struct http_reader *r, unsigned char c)
{
	if (c == ';') {
		cookie_pair_done(r);
		return;
	}
	if (!r->ck_in_value) {
		if (c == '=') {
			r->ck_in_value = 1;
			r->ck_ours = r->ck_name_len == sizeof(COOKIE_NAME) - 1 &&
			             memcmp(r->ck_name, COOKIE_NAME, r->ck_name_len) == 0;
			if (r->ck_ours) {
				r->session_len = 0;
				r->ck_value_over = 0;
			}
		} else if ((c == ' ' || c == '\t') && r->ck_name_len == 0) {
			/* the SP after "; " */
		} else if (r->ck_name_len < sizeof(r->ck_name)) {
			r->ck_name[r->ck_name_len++] = (char)c;
		} else {
			r->ck_name_len = sizeof(r->ck_name) + 1; /* too long to be ours */
		}
		return;
	}
	if (!r->ck_ours)
		return;
	if (r->session_len == 0 && (c == ' ' || c == '\t'))
		return;
	if (r->session_len < sizeof(r->session) - 1)
		r->session[r->session_len++] = (char)c;
	else
		r->ck_value_over = 1;
}

static int line_done(struct http_reader *r)
{
	if (r->lines == 0)
		return 0; /* the request line: the library parses it */
	if (!r->in_value)
		return fail(r, 400, "header line without ':'");
	switch (r->which) {
	case H_CONTENT_LENGTH:
		take(r, r->cl, sizeof(r->cl), &r->cl_over);
		break;
	case H_TRANSFER_ENCODING:
		take(r, r->te, sizeof(r->te), &r->te_over);
		break;
	case H_EXPECT:
		take(r, r->expect, sizeof(r->expect), &r->expect_over);
		break;
	case H_AUTHORIZATION:
		take(r, r->auth, sizeof(r->auth), &r->auth_over);
		break;
	case H_CONTENT_ENCODING:
		take(r, r->ce, sizeof(r->ce), &r->ce_over);
		break;
	case H_ACCEPT_ENCODING:
		/* A value past VALUE_MAX_ is judged on its start: at worst gzip is not offered. */
		trim_copy(r->ae, r->value,
		          r->value_len < sizeof(r->ae) ? r->value_len : sizeof(r->ae) - 1);
		if (accepts_gzip(r->ae))
			r->accept_gzip = 1;
		break;
	case H_IF_NONE_MATCH:
		take(r, r->inm, sizeof(r->inm), &r->inm_over);
		break;
	case H_LAST_EVENT_ID:
		take(r, r->leid, sizeof(r->leid), &r->leid_over);
		break;
	case H_HOST:
		take(r, r->host, sizeof(r->host), &r->host_over);
		break;
	case H_ORIGIN:
		take(r, r->origin, sizeof(r->origin), &r->origin_over);
		break;
	case H_SEC_FETCH_SITE: {
		int over;
		take(r, r->fetch_site, sizeof(r->fetch_site), &over);
		break;
	}
	case H_COOKIE:
		cookie_pair_done(r);
		break;
	default:
		break;
	}
	return 0;
}

static int head_done(struct http_reader *r)
{
	struct http_request *q = &r->req;
	if (r->n_cl) {
		/* Digits only: "+5", "5 5" or "0x10" are how smuggling starts. */
		size_t n = strlen(r->cl);
		if (r->cl_over || n == 0 || n > 18)
			return fail(r, 400, "invalid Content-Length");
		int64_t v = 0;
		for (size_t i = 0; i < n; i++) {
			if (!isdigit((unsigned char)r->cl[i]))
				return fail(r, 400, "invalid Content-Length");
			v = v * 10 + (r->cl[i] - '0');
		}
		q->content_length = v;
		if ((uint64_t)v > r->max_body)
			return fail(r, 413, "request body too large");
	}
	if (r->n_te) {
		if (r->te_over || strcasecmp(r->te, "chunked") != 0)
			return fail(r, 501, "unsupported Transfer-Encoding");
		q->chunked = 1;
	}
	/* gzip is what the agent sends (ingest inflates it off the loop); any other coding we
	 * could not read, so say so rather than store it. */
	if (r->n_ce) {
		if (r->n_ce > 1 || r->ce_over)
			return fail(r, 415, "unsupported Content-Encoding (gzip only)");
		if (strcasecmp(r->ce, "gzip") == 0 || strcasecmp(r->ce, "x-gzip") == 0)
			q->gzip = 1;
		else if (strcasecmp(r->ce, "identity") != 0)
			return fail(r, 415, "unsupported Content-Encoding (gzip only)");
	}
	/* Too long to be one of our tokens: passed on as a value no token matches. */
	q->authorization = r->auth_over ? "invalid" : r->auth;
	/* Our ETags are short; a longer or repeated If-None-Match cannot match one, and a
	 * full response is always a correct answer to it. */
	q->if_none_match = r->inm_over || r->n_inm > 1 ? "" : r->inm;
	q->last_event_id = r->leid_over || r->n_leid > 1 ? "invalid" : r->leid;
	q->accept_gzip = r->accept_gzip;
	q->host = r->host_over ? "" : r->host;
	/* Repeated or too long: no origin we could match, so a state-changing request that
	 * needs one is refused (authz). */
	q->origin = r->n_origin > 1 || r->origin_over ? "invalid" : r->origin;
	q->has_origin = r->n_origin > 0;
	q->sec_fetch_site = r->n_fetch_site == 1 ? r->fetch_site : "";
	q->session_cookies = r->n_session;
	q->session_cookie = r->n_session != 1 ? "" : r->ck_value_over ? "invalid" : r->session;
	if (r->n_expect) {
		if (r->n_expect > 1 || r->expect_over || strcasecmp(r->expect, "100-continue") != 0)
			return fail(r, 417, "unsupported Expect");
		q->expect_continue = 1;
	}
	return 0;
}

/* Scans up to len bytes of the head; stops after the blank line that ends it. Returns 1
 * when the head ended, 0 when more is needed, -1 on error; *used = bytes scanned. */
static int scan_head(struct http_reader *r, const char *data, size_t len, size_t *used)
{
	size_t i;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];
		if (++r->header_bytes > r->max_header) {
			*used = i + 1;
			return fail(r, 431, "request headers too large");
		}
		if (r->prev_cr && c != '\n') {
			*used = i + 1;
			return fail(r, 400, "bare CR in request head");
		}
		if (c == '\r') {
			r->prev_cr = 1;
			continue;
		}
		if (c == '\n') {
			if (!r->prev_cr) {
				*used = i + 1;
				return fail(r, 400, "bare LF in request head");
			}
			r->prev_cr = 0;
			if (r->line_len == 0) {
				if (r->lines == 0)
					continue; /* blank lines before a request: RFC 9112 2.2 */
				*used = i + 1;
				return head_done(r) ? -1 : 1;
			}
			if (line_done(r)) {
				*used = i + 1;
				return -1;
			}
			r->lines++;
			r->line_len = 0;
			r->in_value = 0;
			r->name_len = 0;
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			/* libhttp-parser does not check the first byte of a header value */
			*used = i + 1;
			return fail(r, 400, "control character in request head");
		}
		r->started = 1;
		if (r->line_len++ == 0 && r->lines > 0 && (c == ' ' || c == '\t')) {
			*used = i + 1;
			return fail(r, 400, "obs-fold in request head");
		}
		if (r->lines == 0) {
			/* RFC 9112 3.2: the request line is method SP target SP version, the
			 * target visible ASCII. libhttp-parser lets TAB and bytes >= 0x80
			 * through, which then reach handlers and logs raw. */
			if (c == '\t' || c >= 0x80) {
				*used = i + 1;
				return fail(r, 400, "invalid character in request target");
			}
			continue;
		}
		if (!r->in_value) {
			if (c == ':') {
				if (name_done(r)) {
					*used = i + 1;
					return -1;
				}
			} else if (c == ' ' || c == '\t') {
				*used = i + 1;
				return fail(r, 400, "whitespace in header name");
			} else if (r->name_len < sizeof(r->name)) {
				r->name[r->name_len++] = (char)tolower(c);
			} else {
				r->name_len = sizeof(r->name); /* too long to be one we check */
			}
		} else if (r->which == H_COOKIE) {
			cookie_byte(r, c);
		} else if (r->which != H_OTHER) {
			if (r->value_len < sizeof(r->value) - 1)
				r->value[r->value_len++] = (char)c;
			else
				r->value_over = 1;
		}
	}
	*used = i;
	return 0;
}

/* --- chunked-body scanner ---------------------------------------------------------------- */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* libhttp-parser, built without HTTP_PARSER_STRICT as distributions ship it, takes any two
 * bytes after chunk data as the CRLF, any byte after a size line's CR as its LF, control
 * bytes in chunk extensions, and trailers with bare LF or obs-fold: each a way for a proxy
 * in front of us and us to disagree on where a request ends. So the framing is checked
 * here, byte for byte, before the library sees it. Returns 1 once the last CRLF of the
 * message was scanned, 0 when more is needed, -1 on error; *used = bytes scanned. */
static int scan_chunked(struct http_reader *r, const char *data, size_t len, size_t *used)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)data[i];
		switch (r->ck) {
		case CK_SIZE: {
			int v = hexval(c);
			if (v >= 0) {
				if (++r->ck_digits > CHUNK_DIGITS_MAX) {
					*used = i + 1;
					return fail(r, 400, "invalid chunk size");
				}
				r->ck_left = r->ck_left * 16 + (uint64_t)v;
				if (r->ck_total + r->ck_left > r->max_body) {
					*used = i + 1;
					return fail(r, 413, "request body too large");
				}
			} else if (r->ck_digits && c == '\r') {
				r->ck = CK_SIZE_LF;
			} else if (r->ck_digits && (c == ';' || c == ' ')) {
				r->ck = CK_EXT; /* the library allows SP before ';' (BWS) */
				r->ck_line = 0;
			} else {
				*used = i + 1;
				return fail(r, 400, "invalid chunk size");
			}
			i++;
			break;
		}
		case CK_EXT:
			if (c == '\r') {
				r->ck = CK_SIZE_LF;
			} else if ((c < 0x20 && c != '\t') || c == 0x7f ||
			           ++r->ck_line > r->max_header) {
				*used = i + 1;
				return fail(r, 400, "invalid chunk extension");
			}
			i++;
			break;
		case CK_SIZE_LF:
			if (c != '\n') {
				*used = i + 1;
				return fail(r, 400, "bare CR in chunk size line");
			}
			r->ck_total += r->ck_left;
			r->ck = r->ck_left ? CK_DATA : CK_TRAILER;
			r->ck_line = 0;
			i++;
			break;
		case CK_DATA: {
			size_t n = len - i;
			if (n > r->ck_left)
				n = (size_t)r->ck_left;
			r->ck_left -= n;
			i += n;
			if (!r->ck_left)
				r->ck = CK_DATA_CR;
			break;
		}
		case CK_DATA_CR:
		case CK_DATA_LF:
			if (c != (r->ck == CK_DATA_CR ? '\r' : '\n')) {
				*used = i + 1;
				return fail(r, 400, "chunk data not followed by CRLF");
			}
			if (r->ck == CK_DATA_LF) {
				r->ck = CK_SIZE;
				r->ck_digits = 0;
				r->ck_left = 0;
			} else {
				r->ck = CK_DATA_LF;
			}
			i++;
			break;
		case CK_TRAILER:
			/* Trailers count against the header limit: they are headers. */
			if (++r->ck_trailer > r->max_header) {
				*used = i + 1;
				return fail(r, 431, "request headers too large");
			}
			if (c == '\r') {
				if (r->ck_line && !r->ck_colon) {
					*used = i + 1;
					return fail(r, 400, "trailer line without ':'");
				}
				r->ck = CK_TRAILER_LF;
			} else if (c == '\n') {
				*used = i + 1;
				return fail(r, 400, "bare LF in chunked trailer");
			} else if ((c < 0x20 && c != '\t') || c == 0x7f) {
				*used = i + 1;
				return fail(r, 400, "control character in chunked trailer");
			} else if (r->ck_line++ == 0 && (c == ' ' || c == '\t')) {
				*used = i + 1;
				return fail(r, 400, "obs-fold in chunked trailer");
			} else if (c == ':') {
				r->ck_colon = 1;
			}
			i++;
			break;
		case CK_TRAILER_LF:
			if (c != '\n') {
				*used = i + 1;
				return fail(r, 400, "bare CR in chunked trailer");
			}
			i++;
			if (!r->ck_line) {
				r->ck = CK_DONE;
				*used = i;
				return 1;
			}
			r->ck = CK_TRAILER;
			r->ck_line = 0;
			r->ck_colon = 0;
			break;
		case CK_DONE:
			*used = i;
			return 1;
		}
	}
	*used = i;
	return r->ck == CK_DONE;
}

/* --- public ------------------------------------------------------------------------------ */

static void start_request(struct http_reader *r)
{
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
	memset(&r->req, 0, sizeof(r->req));
	r->req.content_length = -1;
	r->req.path = r->req.query = r->req.authorization = "";
	r->req.host = r->req.origin = r->req.sec_fetch_site = r->req.session_cookie = "";
	r->host[0] = r->origin[0] = r->fetch_site[0] = r->session[0] = '\0';
	r->host_over = r->origin_over = 0;
	r->n_origin = r->n_fetch_site = r->n_session = 0;
	r->ck_name_len = r->session_len = 0;
	r->ck_in_value = r->ck_ours = r->ck_value_over = 0;
	r->req.method = "";
	r->req.body = "";
	r->in_body = r->started = r->complete = 0;
	r->header_bytes = r->lines = r->line_len = 0;
	r->prev_cr = r->in_value = 0;
	r->which = H_OTHER;
	r->name_len = r->value_len = 0;
	r->value_over = 0;
	r->n_cl = r->n_te = r->n_host = r->n_ce = r->n_expect = r->n_auth = r->n_inm = 0;
	r->ae[0] = r->inm[0] = '\0';
	r->inm_over = r->accept_gzip = 0;
	r->req.if_none_match = "";
	r->req.last_event_id = "";
	r->leid[0] = '\0';
	r->n_leid = 0;
	r->leid_over = 0;
	r->auth[0] = '\0';
	r->auth_over = 0;
	r->cl[0] = r->te[0] = r->expect[0] = r->ce[0] = '\0';
	r->cl_over = r->te_over = r->expect_over = r->ce_over = 0;
	r->err_status = 0;
	r->err = NULL;
	r->ck = CK_SIZE;
	r->ck_left = r->ck_total = 0;
	r->ck_digits = 0;
	r->ck_line = r->ck_trailer = 0;
	r->ck_colon = 0;
}

struct http_reader *http_reader_create(size_t max_header_bytes, size_t max_body_bytes)
{
	struct http_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->max_header = max_header_bytes;
	r->max_body = max_body_bytes;
	vw_buf_init(&r->url, max_header_bytes + 1);
	vw_buf_init(&r->body, max_body_bytes + 1); /* + the NUL vw_buf_cstr adds */
	start_request(r);
	return r;
}

void http_reader_destroy(struct http_reader *r)
{
	if (!r)
		return;
	vw_buf_free(&r->url);
	vw_buf_free(&r->body);
	free(r);
}

void http_reader_reset(struct http_reader *r)
{
	vw_buf_reset(&r->url);
	if (r->body.cap > KEEP_BODY_CAP)
		vw_buf_free(&r->body);
	else
		vw_buf_reset(&r->body);
	start_request(r);
}

/* The library's verdict, once our own checks passed. */
static int library_error(struct http_reader *r)
{
	enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
	if (r->err_status)
		return -1;
	switch (e) {
	case HPE_OK:
	case HPE_PAUSED:
		return 0;
	case HPE_HEADER_OVERFLOW:
		return fail(r, 431, "request headers too large");
	case HPE_INVALID_METHOD:
		return fail(r, 400, "invalid method");
	case HPE_INVALID_URL:
		return fail(r, 400, "invalid request target");
	case HPE_INVALID_VERSION:
		return fail(r, 400, "invalid HTTP version");
	case HPE_INVALID_HEADER_TOKEN:
		return fail(r, 400, "invalid character in header");
	case HPE_INVALID_CHUNK_SIZE:
		return fail(r, 400, "invalid chunk size");
	default:
		return fail(r, 400, http_errno_description(e));
	}
}

size_t http_reader_feed(struct http_reader *r, const char *data, size_t len, enum http_event *ev)
{
	size_t used = 0;
	*ev = HTTP_NEED_MORE;
	if (r->err_status) {
		*ev = HTTP_GOT_ERROR;
		return 0;
	}
	if (r->complete) {
		*ev = HTTP_GOT_REQUEST;
		return 0;
	}
	if (!r->in_body) {
		int end = scan_head(r, data, len, &used);
		if (end < 0) {
			*ev = HTTP_GOT_ERROR;
			return used;
		}
		size_t n = http_parser_execute(&r->parser, &settings, data, used);
		if (library_error(r) || (n != used && !r->complete)) {
			fail(r, 400, "malformed request");
			*ev = HTTP_GOT_ERROR;
			return used;
		}
		if (r->complete) {
			*ev = HTTP_GOT_REQUEST;
			return used;
		}
		if (end == 1) {
			r->in_body = 1;
			*ev = HTTP_GOT_HEADERS;
		}
		return used;
	}
	int end = 0;
	if (r->req.chunked) {
		end = scan_chunked(r, data, len, &used);
		if (end < 0) {
			*ev = HTTP_GOT_ERROR;
			return used;
		}
		len = used;
	}
	size_t n = http_parser_execute(&r->parser, &settings, data, len);
	/* Where our scanner saw the end, the library must agree, or the two disagree on framing. */
	if (library_error(r) || (n != len && !r->complete) || (end == 1 && !r->complete)) {
		fail(r, 400, "malformed request body");
		*ev = HTTP_GOT_ERROR;
		return n;
	}
	if (r->complete)
		*ev = HTTP_GOT_REQUEST;
	return n;
}

const struct http_request *http_reader_request(const struct http_reader *r)
{
	return &r->req;
}

const char *http_reader_error(const struct http_reader *r, int *status)
{
	*status = r->err_status ? r->err_status : 400;
	return r->err ? r->err : "bad request";
}

int http_reader_started(const struct http_reader *r)
{
	return r->started;
}

const char *http_status_text(int status)
{
	switch (status) {
	case 413:
		return "Content Too Large"; /* RFC 9110 name */
	case 431:
		return "Request Header Fields Too Large";
	default: {
		const char *s = http_status_str((enum http_status)status);
		return s && strcmp(s, "<unknown>") != 0 ? s : "Unknown";
	}
	}
}

int http_format_response_head(struct vw_buf *out, const struct http_head *h, int64_t now_ms)
{
	/* IMF-fixdate (RFC 9110 5.6.7); names spelled out so the locale cannot change them. */
	static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	const char *ct = h->content_type ? h->content_type : HTTP_CT_JSON;
	/* Without a length only the connection's end frames a body; 204 and 304 have none. */
	int bodiless = h->status == 204 || h->status == 304;
	if (strpbrk(ct, "\r\n") || (h->content_length < 0 && h->keep_alive && !bodiless))
		return -EINVAL;
	time_t t = (time_t)(now_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	vw_buf_printf(out,
	              "HTTP/1.1 %d %s\r\n"
	              "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n"
	              "Content-Type: %s\r\n",
	              h->status, http_status_text(h->status), wd[tm.tm_wday % 7], tm.tm_mday,
	              mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, ct);
	if (h->content_length >= 0)
		vw_buf_printf(out, "Content-Length: %lld\r\n", (long long)h->content_length);
	vw_buf_printf(out, "%s%s\r\n", h->keep_alive ? "" : "Connection: close\r\n",
	              h->extra ? h->extra : "");
	return out->err;
}

int http_format_head(struct vw_buf *out, int status, const char *extra, size_t body_len,
                     int keep_alive, int64_t now_ms)
{
	struct http_head h = {status, NULL, extra, (int64_t)body_len, keep_alive};
	return http_format_response_head(out, &h, now_ms);
}

int http_attachment_header(char *out, size_t outlen, const char *filename)
{
	if (!filename[0] || filename[0] == '.')
		return -EINVAL;
	for (const char *p = filename; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
			return -EINVAL;
	int n = snprintf(out, outlen, "Content-Disposition: attachment; filename=%s\r\n", filename);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}
