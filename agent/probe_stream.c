#include "probe_stream.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "agent_conf.h"
#include "log.h"
#include "vtime.h"

/* Largest single FFmpeg allocation: 4K frames fit (12.4 MB for 4:2:0) with room to spare. */
#define PROBE_MAX_ALLOC (32u << 20)

static int interrupt_cb(void *opaque)
{
	struct probe_deadline *d = opaque;
	if (vw_mono_ms() >= d->limit_ms) {
		d->hit = 1;
		return 1;
	}
	return 0;
}

/* Most verbose libav* level passed to our debug log; set once by probe_stream_global_init
 * before any thread runs, read-only afterwards. */
static int av_pass_level = AV_LOG_WARNING;

static int has_word_ci(const char *s, size_t n, const char *w, size_t *at)
{
	size_t k = strlen(w);
	for (size_t i = 0; i + k <= n; i++) {
		if (strncasecmp(s + i, w, k) == 0) {
			*at = i;
			return 1;
		}
	}
	return 0;
}

static size_t put(char *out, size_t j, size_t outlen, const char *s)
{
	for (; *s && j + 1 < outlen; s++)
		out[j++] = *s;
	return j;
}

/* Query parameters whose value is a secret (a camera's ?password=, a signed URL's
 * signature), compared without case. */
static const char *const secret_params[] = {"password", "passwd", "pwd",       "pass",
                                            "token",    "auth",   "signature", "key"};

/* At s (just after '?', '&' or ';'): the length of "name=" when name is a secret parameter,
 * else 0. */
static size_t secret_param(const char *s, size_t n)
{
	for (size_t p = 0; p < sizeof(secret_params) / sizeof(secret_params[0]); p++) {
		size_t k = strlen(secret_params[p]);
		if (k < n && strncasecmp(s, secret_params[p], k) == 0 && s[k] == '=')
			return k + 1;
	}
	return 0;
}

static int at_scheme_end(const char *s, size_t i, size_t n)
{
	return i + 3 <= n && s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/';
}

/* One line of a libav* message, secrets replaced, appended to out (j = used so far). */
static size_t mask_line(const char *s, size_t n, char *out, size_t j, size_t outlen)
{
	static const char *const secret_after[] = {"authorization", "digest ", "basic "};
	size_t cut = n, at;
	/* An RTSP/HTTP request dump at debug/trace carries "Authorization: Basic <base64 of
	 * user:password>" or a digest response: everything after the word goes. */
	for (size_t w = 0; w < sizeof(secret_after) / sizeof(secret_after[0]); w++) {
		if (has_word_ci(s, cut, secret_after[w], &at)) {
			size_t e = at + strlen(secret_after[w]);
			if (w == 0 && e < cut && s[e] == ':')
				e++;
			cut = e;
		}
	}
	size_t i = 0;
	while (i < cut && j + 1 < outlen) {
		if (at_scheme_end(s, i, cut)) {
			/* After scheme://, the userinfo is everything up to the last '@' before the
			 * next '/': a password may hold any of ; = , ( ) ' and tabs, which a split
			 * into words would have let through in pieces. */
			j = put(out, j, outlen, "://");
			i += 3;
			size_t end = i, last_at = cut;
			for (; end < cut && s[end] != '/'; end++)
				if (s[end] == '@')
					last_at = end;
			if (last_at < cut) {
				j = put(out, j, outlen, "***");
				i = last_at;
			}
			continue;
		}
		if (s[i] == '?' || s[i] == '&' || s[i] == ';') {
			out[j++] = s[i++];
			size_t k = secret_param(s + i, cut - i);
			if (k) {
				for (size_t e = i + k; i < e && j + 1 < outlen; i++)
					out[j++] = s[i];
				j = put(out, j, outlen, "***");
				while (i < cut && !strchr("& \t\"'#", s[i]))
					i++;
			}
			continue;
		}
		/* A token: up to the next separator. One that ends in '@' is userinfo (a bare
		 * user:pass@host): "***". */
		size_t e = i;
		while (e < cut && !strchr(" \t\"'/<>()[],;=@?&", s[e]) && !at_scheme_end(s, e, cut))
			e++;
		if (e < cut && s[e] == '@' && e > i) {
			j = put(out, j, outlen, "***");
			i = e;
			continue;
		}
		if (e == i)
			e++; /* the separator itself */
		for (; i < e && j + 1 < outlen; i++) {
			unsigned char c = (unsigned char)s[i];
			out[j++] = c == '"' ? '\'' : c < 0x20 || c == 0x7f ? ' ' : (char)c;
		}
	}
	if (cut < n)
		j = put(out, j, outlen, " ***");
	out[j] = '\0';
	return j;
}

void probe_stream_mask_log(const char *in, char *out, size_t outlen)
{
	size_t j = 0;
	if (!outlen)
		return;
	out[0] = '\0';
	while (*in) {
		size_t n = strcspn(in, "\r\n");
		if (n) {
			if (j)
				j = put(out, j, outlen, " | "); /* one log line per message */
			j = mask_line(in, n, out, j, outlen);
		}
		in += n;
		while (*in == '\r' || *in == '\n')
			in++;
	}
}

static void av_log_cb(void *avcl, int level, const char *fmt, va_list vl)
{
	(void)avcl;
	if (level > av_pass_level || !vw_log_enabled(VW_LOG_DEBUG))
		return;
	char line[2048], safe[2048];
	vsnprintf(line, sizeof(line), fmt, vl);
	/* FFmpeg echoes URLs with userinfo and, at its verbose levels, whole RTSP requests with
	 * their Authorization header: none of that reaches a log, at any level. */
	probe_stream_mask_log(line, safe, sizeof(safe));
	explicit_bzero(line, sizeof(line));
	if (safe[0])
		log_debug("event=libav level=%d msg=\"%s\"", level, safe);
}

/* VW_LIBAV_LOG_LEVEL=verbose|debug|trace (or quiet, error, warning, info) lets FFmpeg's own
 * chatter through to the agent's debug log, for diagnosing a camera; warning by default. */
static int libav_level_from_env(void)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {{"quiet", AV_LOG_QUIET},     {"error", AV_LOG_ERROR},
	             {"warning", AV_LOG_WARNING}, {"info", AV_LOG_INFO},
	             {"verbose", AV_LOG_VERBOSE}, {"debug", AV_LOG_DEBUG},
	             {"trace", AV_LOG_TRACE}};
	const char *v = getenv("VW_LIBAV_LOG_LEVEL");
	for (size_t i = 0; v && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(v, names[i].name) == 0)
			return names[i].level;
	if (v && v[0])
		log_warn("event=bad_env name=VW_LIBAV_LOG_LEVEL expected=quiet|error|warning|info|"
		         "verbose|debug|trace using=warning");
	return AV_LOG_WARNING;
}

void probe_stream_global_init(void)
{
	avformat_network_init();
	av_pass_level = libav_level_from_env();
	/* Some FFmpeg paths test the global level before they even format a message. */
	av_log_set_level(av_pass_level);
	av_log_set_callback(av_log_cb);
	/* A camera's RTSP answer is allocated at the size it claims: a hostile one claiming a
	 * 2 GB SDP took the agent to 2 GB RSS (tests/integration/test_evidence.py). Capping
	 * FFmpeg's single allocation fails that check fast instead; the largest honest one is
	 * a decoded plane, 8.3 MB for 4K luma. */
	av_max_alloc(PROBE_MAX_ALLOC);
}

void probe_stream_mask_url(const char *url, char *out, size_t outlen)
{
	/* The same rules as a log line: one place decides what a secret in a URL is. */
	probe_stream_mask_log(url, out, outlen);
}

/* The parts of a URL as libavformat itself splits them (av_url_split: userinfo up to the
 * last '@' before the first '/', '?' or '#'; brackets of an IPv6 literal removed). */
struct url_parts {
	char proto[32], auth[256], host[256], path[2048];
	int port; /* -1: none given */
};

static void url_split(const char *url, struct url_parts *u)
{
	av_url_split(u->proto, sizeof(u->proto), u->auth, sizeof(u->auth), u->host, sizeof(u->host),
	             &u->port, u->path, sizeof(u->path), url);
}

/* proto://[auth@]host[:port]path into out; an IPv6 host gets its brackets back. */
static int url_join(const struct url_parts *u, const char *auth, const char *host, char *out,
                    size_t outlen)
{
	char port[16] = "";
	if (u->port >= 0)
		snprintf(port, sizeof(port), ":%d", u->port);
	int v6 = strchr(host, ':') != NULL;
	size_t n =
	    (size_t)snprintf(out, outlen, "%s://%s%s%s%s%s%s%s", u->proto, auth, auth[0] ? "@" : "",
	                     v6 ? "[" : "", host, v6 ? "]" : "", port, u->path);
	return n < outlen ? 0 : -ENAMETOOLONG;
}

/* The user:password from the credentials file as the URL's userinfo (replacing any).
 * The caller wipes cred. -EACCES when the file cannot be used: the camera then cannot be
 * authenticated, which is what the check reports. */
static int read_credentials(const char *file, char *cred, size_t len)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return -EACCES;
	int ok = fgets(cred, (int)len, f) != NULL;
	fclose(f);
	cred[strcspn(cred, "\r\n")] = '\0';
	/* libavformat splits userinfo at the last '@' and the first '/': such characters
	 * would send the wrong secret, so they are refused rather than guessed at. */
	return ok && cred[0] && strchr(cred, ':') && !cred[strcspn(cred, "@/ ")] ? 0 : -EACCES;
}

/* One getaddrinfo_a request. Both the check and glibc's completion notice hold a
 * reference: a request the check gave up on (its deadline passed while the resolver hung)
 * is freed by the notice when glibc finally finishes it, never under a running lookup. */
struct resolve {
	struct gaicb cb;
	struct addrinfo hints;
	char host[256];
	atomic_int refs;
};

static void resolve_unref(struct resolve *q)
{
	if (atomic_fetch_sub(&q->refs, 1) != 1)
		return;
	if (q->cb.ar_result)
		freeaddrinfo(q->cb.ar_result);
	free(q);
}

static void resolve_done(union sigval sv)
{
	resolve_unref(sv.sival_ptr);
}

/* Resolves host before limit_ms (CLOCK_MONOTONIC, vw_mono_ms): the numeric address of its
 * first answer into addr. 0, -ENOENT (no such host), -ETIMEDOUT (the resolver did not answer
 * in time) or -ENOMEM. getaddrinfo would block a worker for as long as the resolver hangs
 * (resolv.conf's timeout times attempts, per name server), past the check's deadline;
 * FFmpeg's tcp and rtsp open call plain getaddrinfo too, outside its interrupt callback. */
static int resolve_host(const char *host, int64_t limit_ms, char *addr, size_t addrlen)
{
	struct resolve *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	snprintf(q->host, sizeof(q->host), "%s", host);
	q->hints.ai_socktype = SOCK_STREAM;
	q->cb.ar_name = q->host;
	q->cb.ar_request = &q->hints;
	atomic_init(&q->refs, 2);
	struct sigevent sev = {.sigev_notify = SIGEV_THREAD,
	                       .sigev_notify_function = resolve_done,
	                       .sigev_value.sival_ptr = q};
	struct gaicb *list[1] = {&q->cb};
	if (getaddrinfo_a(GAI_NOWAIT, list, 1, &sev)) {
		free(q);
		return -ENOMEM;
	}
	int rc;
	while ((rc = gai_error(&q->cb)) == EAI_INPROGRESS) {
		int64_t left = limit_ms - vw_mono_ms();
		if (left <= 0)
			break;
		struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
		gai_suspend((const struct gaicb *const *)list, 1, &ts);
	}
	if (rc == EAI_INPROGRESS) {
		/* A request glibc had queued but not started (it runs 20 lookups at once) is
		 * dequeued by gai_cancel without a notice: its reference is dropped here. One in
		 * progress, or done meanwhile, still gets its notice, which drops it. */
		if (gai_cancel(&q->cb) == EAI_CANCELED)
			resolve_unref(q);
		resolve_unref(q);
		return -ETIMEDOUT;
	}
	int out = -ENOENT;
	/* One address goes to libavformat, which can no longer fall back to the next: an IPv4
	 * one when there is one ("localhost" sorts ::1 first; cameras are IPv4 almost always). */
	const struct addrinfo *pick = rc == 0 ? q->cb.ar_result : NULL;
	for (const struct addrinfo *a = pick; a; a = a->ai_next)
		if (a->ai_family == AF_INET) {
			pick = a;
			break;
		}
	if (pick && !getnameinfo(pick->ai_addr, pick->ai_addrlen, addr, (socklen_t)addrlen, NULL, 0,
	                         NI_NUMERICHOST))
		out = 0;
	else if (rc == EAI_MEMORY)
		out = -ENOMEM;
	resolve_unref(q);
	return out;
}

/* The URL the check opens: the configured one with the credentials file's userinfo, and for
 * RTSP with the host already resolved, within the deadline (see resolve_host): a name
 * libavformat resolves itself is resolved without a bound. HTTP(S) keeps its name (virtual
 * hosts, TLS); its name was resolved within the deadline just before, so a resolver that
 * hangs outright fails the check here, in time. libavformat would fold a DNS failure into
 * EIO too, which could not be told apart from a broken stream.
 * 0, or -ENOENT / -ETIMEDOUT (resolution), -EACCES (credentials), -ENAMETOOLONG. */
static int url_for_check(const struct probe_stream_open_req *req, int64_t limit_ms, char *out,
                         size_t outlen)
{
	struct url_parts u;
	char cred[256] = "", addr[NI_MAXHOST];
	int rc = 0;
	url_split(req->url, &u);
	if (!u.proto[0]) {
		/* a file or device: nothing to resolve, no userinfo to put */
		rc = (size_t)snprintf(out, outlen, "%s", req->url) < outlen ? 0 : -ENAMETOOLONG;
		goto done;
	}
	if (!u.host[0]) {
		rc = -ENOENT;
		goto done;
	}
	if ((rc = resolve_host(u.host, limit_ms, addr, sizeof(addr))))
		goto done;
	if (req->credentials && req->credentials[0] &&
	    (rc = read_credentials(req->credentials, cred, sizeof(cred))))
		goto done;
	rc = url_join(&u, cred[0] ? cred : u.auth, strcasecmp(u.proto, "rtsp") == 0 ? addr : u.host,
	              out, outlen);
done:
	explicit_bzero(cred, sizeof(cred));
	explicit_bzero(&u, sizeof(u));
	return rc;
}

static enum vw_fault open_error_fault(int err, const struct probe_deadline *d)
{
	if (d->hit || err == AVERROR_EXIT || err == AVERROR(ETIMEDOUT))
		return VW_FAULT_TIMEOUT;
	switch (err) {
	case AVERROR(ECONNREFUSED):
	case AVERROR(EHOSTUNREACH):
	case AVERROR(ENETUNREACH):
	case AVERROR(EHOSTDOWN):
	case AVERROR(ECONNRESET):
	case AVERROR(EADDRNOTAVAIL):
		return VW_FAULT_UNREACHABLE;
	case AVERROR_HTTP_UNAUTHORIZED:
	case AVERROR_HTTP_FORBIDDEN:
	case AVERROR(EACCES):
		return VW_FAULT_AUTH_FAILED;
	case AVERROR_STREAM_NOT_FOUND:
	case AVERROR_HTTP_NOT_FOUND:
		return VW_FAULT_NO_VIDEO;
	default:
		return VW_FAULT_PROTOCOL;
	}
}

int probe_stream_open(const struct probe_stream_open_req *req, struct probe_deadline *d,
                      struct AVFormatContext **out, enum vw_fault *fault)
{
	AVFormatContext *fmt = NULL;
	AVDictionary *opts = NULL;
	char url[2048];
	int err;
	*out = NULL;
	if ((err = url_for_check(req, d->limit_ms, url, sizeof(url)))) {
		if (err == -EACCES)
			log_warn("event=credentials_unusable camera=%s file=%s", req->name,
			         req->credentials);
		*fault = err == -EACCES         ? VW_FAULT_AUTH_FAILED
		         : err == -ETIMEDOUT    ? VW_FAULT_TIMEOUT
		         : err == -ENAMETOOLONG ? VW_FAULT_PROTOCOL
		                                : VW_FAULT_UNREACHABLE;
		goto out;
	}
	if (!(fmt = avformat_alloc_context())) {
		*fault = VW_FAULT_PROTOCOL;
		err = AVERROR(ENOMEM);
		goto out;
	}
	fmt->interrupt_callback.callback = interrupt_cb;
	fmt->interrupt_callback.opaque = d;
	/* Parameters come from the first frames; a small probe keeps the check cheap. */
	fmt->probesize = 1 << 20;
	fmt->max_analyze_duration = (int64_t)req->window_ms * 1000;
	char us[32];
	snprintf(us, sizeof(us), "%ld", req->timeout_ms * 1000);
	av_dict_set(&opts, "rtsp_transport", req->transport == VW_TRANSPORT_UDP ? "udp" : "tcp", 0);
	av_dict_set(&opts, "timeout", us, 0);        /* RTSP/TCP socket I/O, microseconds */
	av_dict_set(&opts, "rw_timeout", us, 0);     /* other protocols */
	av_dict_set(&opts, "max_redirects", "3", 0); /* HTTP: no endless redirect chains */
	err = avformat_open_input(&fmt, url, NULL, &opts);
	if (err < 0)
		*fault = open_error_fault(err, d); /* fmt freed by avformat_open_input */
	else
		*out = fmt;
out:
	av_dict_free(&opts);
	explicit_bzero(url, sizeof(url));
	return err < 0 ? err : 0;
}

/* down: no usable picture at all. degraded: a picture, but not a clear one. */
static enum vw_status judge(const struct vw_result *r)
{
	static const enum vw_fault down[] = {
	    VW_FAULT_UNREACHABLE, VW_FAULT_AUTH_FAILED, VW_FAULT_NO_VIDEO, VW_FAULT_TIMEOUT,
	    VW_FAULT_PROTOCOL,    VW_FAULT_BLACK,       VW_FAULT_FROZEN};
	if (!r->nfaults)
		return VW_STATUS_OK;
	for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++)
		if (vw_result_has_fault(r, vw_fault_name(down[i])))
			return VW_STATUS_DOWN;
	return VW_STATUS_DEGRADED;
}

int probe_stream_reference_path(const char *state_dir, const char *camera, char *out, size_t outlen)
{
	/* Camera names come from the config; one that is not a plain file name gets none. */
	if (!camera[0] || camera[0] == '.' || strchr(camera, '/'))
		return -EINVAL;
	if ((size_t)snprintf(out, outlen, "%s/reference/%s.pgm", state_dir, camera) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

static int save_reference(const struct probe_stream_req *req, const struct picture *pic,
                          const struct vw_result *r, const char *path)
{
	if (!pic || r->status == VW_STATUS_DOWN ||
	    vw_result_has_fault(r, vw_fault_name(VW_FAULT_TOO_DARK)) ||
	    vw_result_has_fault(r, vw_fault_name(VW_FAULT_TOO_BRIGHT)))
		return -ENODATA;
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/reference", req->state_dir);
	if (mkdir(dir, 0750) && errno != EEXIST)
		return -errno;
	int rc = picture_save_reference(pic, path);
	if (rc == 0)
		log_info("event=reference_saved camera=%s path=%s", req->name, path);
	return rc;
}

static int64_t thread_cpu_us(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The analysed keyframe as the result's thumbnail, when one is due. A thumbnail that cannot
 * be made costs the result nothing: it goes without one, and the log says why. */
static void attach_thumbnail(const struct probe_stream_req *req, struct picture *pic,
                             struct vw_result *r)
{
	if (!pic || !req->thumb_memory ||
	    !thumb_due(req->thumb_memory, r, r->mono_ms, req->thumb_interval_ms))
		return;
	const AVFrame *f = picture_last_frame(pic);
	if (!f)
		return;
	uint8_t *jpeg = NULL;
	size_t len = 0;
	struct thumb_stats st = {0};
	int64_t c0 = thread_cpu_us();
	int rc = thumb_encode(f, VW_THUMB_MAX_WIDTH, VW_THUMB_MAX_BYTES, &jpeg, &len, &st);
	int64_t cpu_us = thread_cpu_us() - c0;
	if (rc) {
		log_warn("event=thumbnail_failed camera=%s err=%d", req->name, rc);
		return;
	}
	r->thumb = jpeg;
	r->thumb_len = len;
	/* The encode's own CPU (docs/API.md "Thumbnails", tests/bench/thumb_cost.sh). */
	log_debug("event=thumbnail camera=%s bytes=%zu width=%d height=%d qscale=%d attempts=%d "
	          "cpu_us=%lld",
	          req->name, len, st.width, st.height, st.qscale, st.attempts, (long long)cpu_us);
}

/* save: store the picture as the reference (and do not compare against the old one). */
static int run(const struct probe_stream_req *req, struct vw_result *r, int save)
{
	vw_result_init(r, VW_KIND_STREAM, req->name);
	int64_t t0 = vw_mono_ms();
	struct probe_deadline d = {.limit_ms = t0 + req->timeout_ms};
	AVFormatContext *fmt = NULL;
	AVPacket *pkt = NULL;
	struct picture *pic = NULL;
	int err, saved = -ENODATA;
	struct picture_opts popts = req->picture;
	char refpath[4096] = "";
	popts.reference = NULL;
	if (req->state_dir &&
	    !probe_stream_reference_path(req->state_dir, req->name, refpath, sizeof(refpath)) &&
	    !save)
		popts.reference = refpath;

	pkt = av_packet_alloc();
	if (!pkt) {
		vw_result_add_fault(r, VW_FAULT_PROTOCOL);
		goto done;
	}
	const struct probe_stream_open_req oreq = {
	    .name = req->name,
	    .url = req->url,
	    .credentials = req->credentials,
	    .transport = req->transport,
	    .timeout_ms = req->timeout_ms,
	    .window_ms = req->window_ms,
	};
	enum vw_fault fault;
	err = probe_stream_open(&oreq, &d, &fmt, &fault);
	vw_result_set_metric(r, VW_M_OPEN_MS, (double)(vw_mono_ms() - t0));
	if (err < 0) {
		vw_result_add_fault(r, fault);
		goto done;
	}
	/* RTSP describes its streams in the SDP, so the costly stream-info probe (it decodes
	 * frames) is skipped there; containers that find streams lazily (FLV, HLS) need it. */
	int vs = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	if (vs < 0 || fmt->streams[vs]->codecpar->codec_id == AV_CODEC_ID_NONE) {
		err = avformat_find_stream_info(fmt, NULL);
		if (err < 0 && d.hit) {
			vw_result_add_fault(r, VW_FAULT_TIMEOUT);
			goto done;
		}
		vs = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	}
	if (vs < 0) {
		vw_result_add_fault(r, VW_FAULT_NO_VIDEO);
		goto done;
	}
	AVStream *st = fmt->streams[vs];
	/* Only the video stream's packets are read off the wire and kept. */
	for (unsigned i = 0; i < fmt->nb_streams; i++)
		if ((int)i != vs)
			fmt->streams[i]->discard = AVDISCARD_ALL;
	snprintf(r->codec, sizeof(r->codec), "%s", avcodec_get_name(st->codecpar->codec_id));
	char why[128];
	pic = picture_create(st, &popts, why, sizeof(why));
	if (!pic)
		log_debug("event=picture_unavailable camera=%s reason=\"%s\"", req->name, why);

	/* Read the window, and on past it until two keyframes were analysed (one frame proves
	 * nothing about freezing), within the deadline. */
	int64_t window_end = vw_mono_ms() + req->window_ms;
	/* n: packets; frames/frame_bytes: packets with a timestamp, counted once per distinct
	 * timestamp (a frame split over packets is one frame). The first RTP packet often
	 * has no timestamp yet, so rates come from timestamped packets only. */
	int64_t n = 0, frames = 0, bytes = 0, prev_ts = AV_NOPTS_VALUE;
	int64_t first_ts = AV_NOPTS_VALUE, last_ts = AV_NOPTS_VALUE;
	int64_t first_key_ms = -1;
	int need_frames = req->picture.max_frames < 2 ? req->picture.max_frames : 2;
	int read_err = 0;
	for (;;) {
		int64_t now = vw_mono_ms();
		if (now >= window_end && first_key_ms >= 0 &&
		    (!pic || picture_frames(pic) >= need_frames))
			break;
		err = av_read_frame(fmt, pkt);
		if (err < 0) {
			/* Past the window, a deadline only cut short a slow keyframe; before it,
			 * the camera stopped streaming (reset, end of stream) mid-check. */
			if (!(d.hit && now >= window_end))
				read_err = err;
			break;
		}
		if (pkt->stream_index == vs) {
			int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
			n++;
			if (ts != AV_NOPTS_VALUE) {
				bytes += pkt->size;
				if (ts != prev_ts)
					frames++;
				prev_ts = ts;
				if (first_ts == AV_NOPTS_VALUE || ts < first_ts)
					first_ts = ts;
				if (last_ts == AV_NOPTS_VALUE || ts > last_ts)
					last_ts = ts;
			}
			if ((pkt->flags & AV_PKT_FLAG_KEY) && first_key_ms < 0)
				first_key_ms = vw_mono_ms() - t0;
			if (pic)
				picture_feed(pic, pkt);
		}
		av_packet_unref(pkt);
	}
	if (n == 0) {
		/* Connected and described, yet no video frame within the deadline: no picture. */
		vw_result_add_fault(r, VW_FAULT_NO_VIDEO);
		goto done;
	}
	if (read_err) {
		/* A second of good picture and then a reset is a camera that drops its viewers:
		 * not ok, whatever that second showed. */
		char msg[AV_ERROR_MAX_STRING_SIZE] = "";
		av_strerror(read_err, msg, sizeof(msg));
		log_debug("event=stream_interrupted camera=%s err=\"%s\"", req->name, msg);
		vw_result_add_fault(r, open_error_fault(read_err, &d));
		goto done;
	}
	double span = first_ts != AV_NOPTS_VALUE && last_ts > first_ts
	                  ? (double)(last_ts - first_ts) * av_q2d(st->time_base)
	                  : 0;
	double fps = -1, kbps = -1;
	if (span > 0 && frames > 1) {
		/* n frames cover n-1 intervals */
		fps = (double)(frames - 1) / span;
		kbps = (double)bytes * 8 / span / 1000 * (double)(frames - 1) / (double)frames;
	} else if (st->avg_frame_rate.num > 0) {
		fps = av_q2d(st->avg_frame_rate);
	}
	if (fps >= 0)
		vw_result_set_metric(r, VW_M_FPS, round(fps * 100) / 100);
	if (kbps >= 0)
		vw_result_set_metric(r, VW_M_BITRATE_KBPS, round(kbps));
	if (first_key_ms >= 0)
		vw_result_set_metric(r, VW_M_FIRST_KEYFRAME_MS, (double)first_key_ms);
	if (st->codecpar->width > 0) {
		vw_result_set_metric(r, VW_M_WIDTH, st->codecpar->width);
		vw_result_set_metric(r, VW_M_HEIGHT, st->codecpar->height);
	}
	if (pic)
		picture_report(pic, r); /* decoded size overrides the container's */

	double w = 0, h = 0;
	if (vw_result_get_metric(r, "width", &w) && vw_result_get_metric(r, "height", &h) &&
	    (w < (double)req->min_width || h < (double)req->min_height))
		vw_result_add_fault(r, VW_FAULT_LOW_RESOLUTION);
	if (fps >= 0 && fps < req->min_fps)
		vw_result_add_fault(r, VW_FAULT_LOW_FPS);
	/* A black or still picture compresses to almost nothing: its low bitrate is a symptom,
	 * not a second fault. */
	if (kbps >= 0 && kbps < req->min_bitrate_kbps &&
	    !vw_result_has_fault(r, vw_fault_name(VW_FAULT_BLACK)) &&
	    !vw_result_has_fault(r, vw_fault_name(VW_FAULT_FROZEN)))
		vw_result_add_fault(r, VW_FAULT_LOW_BITRATE);

done:
	r->status = judge(r);
	if (save && refpath[0])
		saved = save_reference(req, pic, r, refpath);
	if (!save)
		attach_thumbnail(req, pic, r);
	picture_destroy(&pic);
	vw_result_set_metric(r, VW_M_CHECK_MS, (double)(vw_mono_ms() - t0));
	av_packet_free(&pkt);
	avformat_close_input(&fmt);
	return save ? saved : 0;
}

int probe_stream_run(const struct probe_stream_req *req, struct vw_result *r)
{
	return run(req, r, 0);
}

int probe_stream_reference(const struct probe_stream_req *req, struct vw_result *r)
{
	return run(req, r, 1);
}
