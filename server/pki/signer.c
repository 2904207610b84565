#include "signer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "ca.h"
#include "crashpoint.h"
#include "log.h"
#include "vtime.h"

/* A signer that does not say "ready" within this at start-up is not going to (auth.db's
 * busy timeout is 2 s, the CRL a few milliseconds). */
#define SIGNER_READY_MS 10000
/* Restart back-off after a death: 250 ms, doubling, at most 8 s, so a signer that dies at
 * once (a broken ca.key) does not spin. Reset when one says ready. */
#define SIGNER_RESTART_MIN_MS 250
#define SIGNER_RESTART_MAX_MS 8000
/* A request not answered within this was not going to be: one enrollment is a CSR check, a
 * signature and a transaction under auth.db's 2 s busy timeout, milliseconds normally. The
 * signer is then killed and restarted, and every pending request answered 503 (as on exit),
 * so a stopped or wedged signer cannot hold SIGNER_QUEUE_MAX connections forever. */
#define SIGNER_REQUEST_MS 10000
/* After signer_stop's SIGTERM: a signer that has not exited by then (stopped, wedged) is
 * killed, so shutdown never waits on it. */
#define SIGNER_STOP_MS 2000

/* --- framing (both sides) ------------------------------------------------------------------ */

static void be32_put(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t be32_get(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The frame for a JSON object (length prefix + text), malloc'ed; NULL when too long. */
static unsigned char *frame_of(cJSON *obj, size_t *len)
{
	char *text = cJSON_PrintUnformatted(obj);
	if (!text)
		return NULL;
	size_t n = strlen(text);
	unsigned char *f = n <= SIGNER_FRAME_MAX ? malloc(n + 4) : NULL;
	if (f) {
		be32_put(f, (uint32_t)n);
		memcpy(f + 4, text, n);
		*len = n + 4;
	}
	explicit_bzero(text, n); /* it may hold a token */
	free(text);
	return f;
}

/* --- parent side: loop thread ------------------------------------------------------------------
 */

enum signer_state { SG_DOWN, SG_STARTING, SG_READY };

struct signer_req {
	uint32_t id;
	int64_t deadline_ms; /* vw_mono_ms by which the answer is due */
	signer_cb cb;
	void *ud;
	struct signer_req *next;
};

struct signer {
	uv_loop_t *loop;
	char *conf_path;
	char exe[4096];
	enum signer_state state;
	int stopping;
	/* The current child: the process handle and our end of its socketpair. A new pair of
	 * handles per child (the old ones close asynchronously). */
	uv_process_t *proc;
	uv_pipe_t *pipe;
	int pid;
	unsigned restarts, fails;
	uv_timer_t restart_timer;
	uv_timer_t req_timer; /* the oldest request's deadline; at stop, the kill deadline */
	int req_timer_closed;
	int handles_open; /* the two timers + per-child handles still to close */
	/* Bytes read, not yet a whole frame. */
	unsigned char *rbuf;
	size_t rlen, rcap;
	struct signer_req *head, *tail;
	size_t pending;
	uint32_t next_id;
};

static void maybe_free(struct signer *s)
{
	if (!s->stopping || s->handles_open)
		return;
	free(s->rbuf);
	free(s->conf_path);
	free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct signer *s = h->data;
	if ((void *)h != (void *)&s->restart_timer && (void *)h != (void *)&s->req_timer)
		free(h);
	s->handles_open--;
	maybe_free(s);
}

/* Every request still waiting is answered "signer down" (503). */
static void fail_pending(struct signer *s)
{
	struct signer_reply r = {.rc = -EPIPE, .err = "the signer is down", .token_id = ""};
	while (s->head) {
		struct signer_req *q = s->head;
		s->head = q->next;
		q->cb(q->ud, &r);
		free(q);
	}
	s->tail = NULL;
	s->pending = 0;
	if (!s->stopping)
		uv_timer_stop(&s->req_timer);
}

static void kill_child(struct signer *s, int sig);
static void child_down(struct signer *s);

static void on_req_timer(uv_timer_t *t)
{
	struct signer *s = t->data;
	if (s->stopping) {
		if (s->proc)
			log_warn("event=signer_stop_timeout pid=%d action=kill", s->pid);
		kill_child(s, SIGKILL);
		return;
	}
	struct signer_req *q = s->head;
	if (!q)
		return;
	int64_t left = q->deadline_ms - vw_mono_ms();
	if (left > 0) {
		uv_timer_start(t, on_req_timer, (uint64_t)left, 0); /* the loop's clock ran ahead */
		return;
	}
	log_error("event=signer_timeout pid=%d id=%u pending=%zu after_ms=%d action=restart",
	          s->pid, q->id, s->pending, SIGNER_REQUEST_MS);
	child_down(s);          /* 503 to every pending request */
	kill_child(s, SIGKILL); /* SIGKILL also ends a stopped process; on_child_exit restarts */
}

/* The timer follows the oldest request: replies come in request order. */
static void arm_deadline(struct signer *s)
{
	if (s->stopping)
		return;
	if (!s->head) {
		uv_timer_stop(&s->req_timer);
		return;
	}
	int64_t left = s->head->deadline_ms - vw_mono_ms();
	uv_timer_start(&s->req_timer, on_req_timer, left > 0 ? (uint64_t)left : 1, 0);
}

static void child_down(struct signer *s)
{
	if (s->pipe) {
		uv_close((uv_handle_t *)s->pipe, on_handle_closed);
		s->pipe = NULL;
	}
	s->state = SG_DOWN;
	s->rlen = 0;
	fail_pending(s);
}

static int spawn(struct signer *s, int *parent_fd, char *err, size_t errlen);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);

static void on_restart(uv_timer_t *t)
{
	struct signer *s = t->data;
	char err[256];
	int fd = -1;
	if (s->stopping)
		return;
	int rc = spawn(s, &fd, err, sizeof(err));
	if (!rc) {
		s->pipe = malloc(sizeof(*s->pipe));
		if (!s->pipe || uv_pipe_init(s->loop, s->pipe, 0) != 0) {
			free(s->pipe);
			s->pipe = NULL;
			close(fd);
			rc = -ENOMEM;
		} else {
			s->handles_open++;
			s->pipe->data = s;
			uv_pipe_open(s->pipe, fd);
			uv_read_start((uv_stream_t *)s->pipe, on_alloc, on_read);
			s->state = SG_STARTING; /* READY at its "ready" frame */
			log_info("event=signer_restarted pid=%d restarts=%u", s->pid, s->restarts);
			return;
		}
	}
	log_error("event=signer_restart_failed error=\"%s\"", rc == -ENOMEM ? "ENOMEM" : err);
	uint64_t delay = SIGNER_RESTART_MIN_MS << (s->fails < 5 ? s->fails : 5);
	s->fails++;
	uv_timer_start(&s->restart_timer, on_restart,
	               delay > SIGNER_RESTART_MAX_MS ? SIGNER_RESTART_MAX_MS : delay, 0);
}

static void on_child_exit(uv_process_t *p, int64_t status, int sig)
{
	struct signer *s = p->data;
	if (p == s->proc) {
		s->proc = NULL;
		s->pid = 0;
		child_down(s);
		if (!s->stopping) {
			uint64_t delay = SIGNER_RESTART_MIN_MS << (s->fails < 5 ? s->fails : 5);
			s->fails++;
			s->restarts++;
			log_error("event=signer_exited status=%lld signal=%d action=restart "
			          "in_ms=%llu",
			          (long long)status, sig, (unsigned long long)delay);
			uv_timer_start(
			    &s->restart_timer, on_restart,
			    delay > SIGNER_RESTART_MAX_MS ? SIGNER_RESTART_MAX_MS : delay, 0);
		} else {
			log_info("event=signer_stopped status=%lld signal=%d", (long long)status,
			         sig);
			if (!s->req_timer_closed) {
				s->req_timer_closed = 1;
				uv_close((uv_handle_t *)&s->req_timer, on_handle_closed);
			}
		}
	}
	uv_close((uv_handle_t *)p, on_handle_closed);
}

/* socketpair + fork/exec of our own binary ("-c CONF signer"), the child's end as its fd 3.
 * exec rather than a bare fork: the server has threads by now (store writer, libuv pool),
 * and a fresh image gives the signer an address space with nothing of the server's in it. */
static int spawn(struct signer *s, int *parent_fd, char *err, size_t errlen)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -errno;
	}
	uv_process_t *p = malloc(sizeof(*p));
	if (!p) {
		close(sv[0]);
		close(sv[1]);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	char *args[] = {s->exe, "-c", s->conf_path, "signer", NULL};
	uv_stdio_container_t stdio[4] = {
	    {.flags = UV_IGNORE},
	    {.flags = UV_INHERIT_FD, .data.fd = 1},
	    {.flags = UV_INHERIT_FD, .data.fd = 2},
	    {.flags = UV_INHERIT_FD, .data.fd = sv[1]},
	};
	uv_process_options_t o = {
	    .exit_cb = on_child_exit,
	    .file = s->exe,
	    .args = args,
	    .stdio_count = 4,
	    .stdio = stdio,
	};
	p->data = s;
	int rc = uv_spawn(s->loop, p, &o);
	close(sv[1]);
	if (rc) {
		/* uv_spawn's handle must still be closed. */
		s->handles_open++;
		uv_close((uv_handle_t *)p, on_handle_closed);
		close(sv[0]);
		snprintf(err, errlen, "cannot start the signer %s: %s", s->exe, uv_strerror(rc));
		return rc;
	}
	s->handles_open++;
	s->proc = p;
	s->pid = p->pid;
	*parent_fd = sv[0];
	return 0;
}

static void kill_child(struct signer *s, int sig)
{
	if (s->proc)
		uv_process_kill(s->proc, sig);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct signer *s = h->data;
	(void)hint;
	size_t want = s->rlen + 16384;
	if (want > s->rcap) {
		unsigned char *p = realloc(s->rbuf, want);
		if (!p) {
			*buf = uv_buf_init(NULL, 0);
			return;
		}
		s->rbuf = p;
		s->rcap = want;
	}
	*buf = uv_buf_init((char *)s->rbuf + s->rlen, (unsigned)(s->rcap - s->rlen));
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* A JSON number that is finite, integral and within [min, max] (both exactly representable
 * as doubles), into *out; converting any other double is undefined behaviour. Absent: dflt.
 * 0, or -EPROTO: the signer sent what it never sends. */
int signer_json_int(const cJSON *o, const char *k, int64_t min, int64_t max, int64_t dflt,
                    int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v) {
		*out = dflt;
		return 0;
	}
	if (!cJSON_IsNumber(v))
		return -EPROTO;
	double d = v->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
		return -EPROTO;
	*out = (int64_t)d;
	return 0;
}

/* One frame from the signer: "ready", or the reply to the oldest request. 0, or -EPROTO
 * for anything else (the signer is then killed and restarted). */
static int handle_frame(struct signer *s, const unsigned char *p, size_t n)
{
	cJSON *o = cJSON_ParseWithLength((const char *)p, n);
	if (!o)
		return -EPROTO;
	int rc = 0;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ready"))) {
		if (s->state == SG_STARTING) {
			s->state = SG_READY;
			s->fails = 0;
			log_info("event=signer_ready pid=%d restarts=%u", s->pid, s->restarts);
		} else {
			rc = -EPROTO;
		}
	} else {
		struct signer_req *q = s->head;
		int64_t id = 0, rcv = 0, not_after = 0;
		if (s->state != SG_READY || !q || !cJSON_GetObjectItemCaseSensitive(o, "id") ||
		    signer_json_int(o, "id", 0, UINT32_MAX, 0, &id) || (uint32_t)id != q->id ||
		    signer_json_int(o, "rc", -4095, 0, -EIO, &rcv) ||
		    signer_json_int(o, "not_after_ms", 0, INT64_C(1) << 53, 0, &not_after)) {
			rc = -EPROTO;
		} else {
			s->head = q->next;
			if (!s->head)
				s->tail = NULL;
			s->pending--;
			struct signer_reply r = {
			    .rc = (int)rcv,
			    .err = jstr(o, "err"),
			    .token_id = jstr(o, "token_id"),
			    .site = jstr(o, "site"),
			    .agent = jstr(o, "agent"),
			    .org = jstr(o, "org"),
			    .city = jstr(o, "city"),
			    .serial = jstr(o, "serial"),
			    .cert = jstr(o, "cert"),
			    .ca = jstr(o, "ca"),
			    .not_after_ms = not_after,
			};
			/* A signature without its certificate is no answer. */
			if (r.rc == 0 && (!r.cert[0] || !r.ca[0] || !r.serial[0]))
				r.rc = -EIO;
			q->cb(q->ud, &r);
			free(q);
			arm_deadline(s);
		}
	}
	cJSON_Delete(o);
	return rc;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct signer *s = st->data;
	(void)buf;
	if (n == 0)
		return;
	if (n < 0) {
		/* EOF or an error: the signer is gone or going. Requests fail now (503); the
		 * exit callback restarts it. */
		log_warn("event=signer_lost pid=%d error=%s pending=%zu", s->pid,
		         uv_err_name((int)n), s->pending);
		child_down(s);
		kill_child(s, SIGKILL);
		return;
	}
	s->rlen += (size_t)n;
	size_t off = 0;
	while (s->rlen - off >= 4) {
		uint32_t len = be32_get(s->rbuf + off);
		if (len > SIGNER_FRAME_MAX) {
			log_error("event=signer_protocol_error pid=%d frame_bytes=%u", s->pid, len);
			child_down(s);
			kill_child(s, SIGKILL);
			return;
		}
		if (s->rlen - off - 4 < len)
			break;
		if (handle_frame(s, s->rbuf + off + 4, len)) {
			log_error("event=signer_protocol_error pid=%d reason=unexpected_frame",
			          s->pid);
			child_down(s);
			kill_child(s, SIGKILL);
			return;
		}
		if (!s->pipe)
			return; /* a callback stopped us */
		off += 4 + len;
	}
	memmove(s->rbuf, s->rbuf + off, s->rlen - off);
	s->rlen -= off;
}

/* Start-up only, before the loop runs: a blocking wait for the first frame, "ready". */
static int wait_ready(int fd, char *err, size_t errlen)
{
	unsigned char buf[256];
	size_t got = 0;
	int64_t deadline = vw_mono_ms() + SIGNER_READY_MS;
	for (;;) {
		if (got >= 4) {
			uint32_t len = be32_get(buf);
			if (len > sizeof(buf) - 4)
				break;
			if (got >= 4 + len) {
				cJSON *o = cJSON_ParseWithLength((const char *)buf + 4, len);
				int ok =
				    o && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ready"));
				cJSON_Delete(o);
				if (ok && got == 4 + len)
					return 0;
				break;
			}
		}
		int64_t left = deadline - vw_mono_ms();
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			snprintf(err, errlen, "the signer did not say ready within %d ms",
			         SIGNER_READY_MS);
			return -ETIMEDOUT;
		}
		ssize_t n = read(fd, buf + got, sizeof(buf) - got);
		if (n <= 0) {
			snprintf(err, errlen,
			         "the signer exited during start-up (see its log lines)");
			return -EPIPE;
		}
		got += (size_t)n;
	}
	snprintf(err, errlen, "the signer's first message was not 'ready'");
	return -EPROTO;
}

int signer_start(uv_loop_t *loop, const char *conf_path, struct signer **out, char *err,
                 size_t errlen)
{
	*out = NULL;
	struct signer *s = calloc(1, sizeof(*s));
	if (!s || !(s->conf_path = strdup(conf_path))) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	size_t sz = sizeof(s->exe);
	int rc = uv_exepath(s->exe, &sz);
	if (rc) {
		snprintf(err, errlen, "cannot find our own executable: %s", uv_strerror(rc));
		free(s->conf_path);
		free(s);
		return rc;
	}
	s->loop = loop;
	s->next_id = 1;
	uv_timer_init(loop, &s->restart_timer);
	s->restart_timer.data = s;
	uv_timer_init(loop, &s->req_timer);
	s->req_timer.data = s;
	s->handles_open = 2;
	*out = s; /* from here on, signer_stop frees it */
	int fd = -1;
	if ((rc = spawn(s, &fd, err, errlen)) != 0)
		return rc;
	if ((rc = wait_ready(fd, err, errlen)) != 0) {
		close(fd);
		kill_child(s, SIGKILL);
		return rc;
	}
	s->pipe = malloc(sizeof(*s->pipe));
	if (!s->pipe || uv_pipe_init(loop, s->pipe, 0) != 0) {
		free(s->pipe);
		s->pipe = NULL;
		close(fd);
		kill_child(s, SIGKILL);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->handles_open++;
	s->pipe->data = s;
	if ((rc = uv_pipe_open(s->pipe, fd)) != 0 ||
	    (rc = uv_read_start((uv_stream_t *)s->pipe, on_alloc, on_read)) != 0) {
		snprintf(err, errlen, "cannot watch the signer's socket: %s", uv_strerror(rc));
		kill_child(s, SIGKILL);
		return rc;
	}
	s->state = SG_READY;
	log_info("event=signer_ready pid=%d restarts=0", s->pid);
	return 0;
}

struct signer_write {
	uv_write_t req;
	size_t len;
	unsigned char *frame; /* holds the enrollment token: wiped before it is freed */
};

static void on_written(uv_write_t *w, int status)
{
	struct signer_write *sw = (struct signer_write *)w;
	(void)status; /* a failed write shows as EOF on the read side */
	explicit_bzero(sw->frame, sw->len);
	free(sw->frame);
	free(sw);
}

int signer_enroll(struct signer *s, const char *token, const char *csr, size_t csr_len,
                  const char *peer, signer_cb cb, void *ud)
{
	if (!s || s->state != SG_READY || s->stopping)
		return -EAGAIN;
	if (s->pending >= SIGNER_QUEUE_MAX)
		return -ENOBUFS;
	struct signer_req *q = calloc(1, sizeof(*q));
	struct signer_write *w = malloc(sizeof(*w));
	cJSON *o = cJSON_CreateObject();
	char *csr_copy = malloc(csr_len + 1);
	unsigned char *frame = NULL;
	size_t flen = 0;
	int rc = -ENOMEM;
	if (!q || !w || !o || !csr_copy)
		goto fail;
	memcpy(csr_copy, csr, csr_len);
	csr_copy[csr_len] = '\0';
	q->id = s->next_id++;
	if (!cJSON_AddNumberToObject(o, "id", q->id) ||
	    !cJSON_AddStringToObject(o, "token", token) ||
	    !cJSON_AddStringToObject(o, "csr", csr_copy) ||
	    !cJSON_AddStringToObject(o, "peer", peer) || !(frame = frame_of(o, &flen)))
		goto fail;
	uv_buf_t b = uv_buf_init((char *)frame, (unsigned)flen);
	w->frame = frame;
	w->len = flen;
	if ((rc = uv_write(&w->req, (uv_stream_t *)s->pipe, &b, 1, on_written)) != 0)
		goto fail;
	q->cb = cb;
	q->ud = ud;
	q->deadline_ms = vw_mono_ms() + SIGNER_REQUEST_MS;
	if (s->tail)
		s->tail->next = q;
	else
		s->head = q;
	s->tail = q;
	s->pending++;
	if (s->head == q)
		arm_deadline(s);
	log_debug("event=signer_request id=%u pending=%zu", q->id, s->pending);
	cJSON_Delete(o);
	free(csr_copy);
	return 0;
fail:
	if (o) {
		/* the token is in there */
		cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "token");
		if (cJSON_IsString(t))
			explicit_bzero(t->valuestring, strlen(t->valuestring));
	}
	cJSON_Delete(o);
	free(csr_copy);
	if (frame)
		explicit_bzero(frame, flen);
	free(frame);
	free(w);
	free(q);
	return rc == -ENOMEM ? -ENOMEM : -EAGAIN;
}

int signer_pid(const struct signer *s)
{
	return s ? s->pid : 0;
}

void signer_stop(struct signer *s)
{
	if (!s || s->stopping)
		return;
	s->stopping = 1;
	uv_timer_stop(&s->restart_timer);
	uv_close((uv_handle_t *)&s->restart_timer, on_handle_closed);
	child_down(s);          /* EOF: the signer leaves its loop and exits */
	kill_child(s, SIGTERM); /* and if it is inside a request, it stops there */
	if (s->proc) {
		/* a stopped or wedged signer hears neither: SIGKILL after SIGNER_STOP_MS */
		uv_timer_start(&s->req_timer, on_req_timer, SIGNER_STOP_MS, 0);
	} else if (!s->req_timer_closed) {
		s->req_timer_closed = 1;
		uv_close((uv_handle_t *)&s->req_timer, on_handle_closed);
	}
	maybe_free(s);
}

/* --- child side: the signer process ------------------------------------------------------------
 */

/* Landlock (Linux 5.13+) through the raw syscalls: glibc has no wrappers. TRUNCATE is ABI 3;
 * bookworm's header stops at ABI 2, the value is the kernel's stable uapi. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

/* The filesystem narrowed to dirs (each with everything below it): read, write, create,
 * remove and rename there, nothing anywhere else. The abi (> 0), 0 when the kernel has no
 * Landlock (the caller logs it), or a negative errno. */
static int landlock_apply(const char *const *dirs, size_t ndirs)
{
#ifdef __NR_landlock_create_ruleset
	long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 0)
		return errno == ENOSYS || errno == EOPNOTSUPP ? 0 : -errno;
	uint64_t fs = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
	              LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
	              LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
	              LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
	              LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
	              LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
	              LANDLOCK_ACCESS_FS_MAKE_SYM;
	if (abi >= 2)
		fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	/* Inside the two directories: files only, no devices, fifos, sockets or programs. */
	uint64_t inside =
	    fs & ~(uint64_t)(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
	                     LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SOCK |
	                     LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_SYM);
	struct landlock_ruleset_attr attr = {.handled_access_fs = fs};
	int rs = (int)syscall(__NR_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rs < 0)
		return -errno;
	int rc = 0;
	for (size_t i = 0; i < ndirs && !rc; i++) {
		int dfd = open(dirs[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			rc = -errno;
			break;
		}
		struct landlock_path_beneath_attr pb = {.allowed_access = inside, .parent_fd = dfd};
		if (syscall(__NR_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) != 0)
			rc = -errno;
		close(dfd);
	}
	if (!rc && syscall(__NR_landlock_restrict_self, rs, 0) != 0)
		rc = -errno;
	close(rs);
	return rc ? rc : (int)abi;
#else
	(void)dirs;
	(void)ndirs;
	return 0;
#endif
}

#if defined(__x86_64__)
#define SG_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SG_ARCH AUDIT_ARCH_AARCH64
#endif
#ifdef SG_ARCH
#define SG_RET(nr, action)                                                                         \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, (action))
#define SG_ALLOW(nr) SG_RET(__NR_##nr, SECCOMP_RET_ALLOW)
#define SG_KILL(nr) SG_RET(__NR_##nr, SECCOMP_RET_KILL_PROCESS)
#endif

/* Default deny: the signer may do exactly what serving requests takes (found with strace -f
 * of a signer redeeming tokens and signing: SQLite's reads, writes, locks and syncs, the
 * anchor file's write + rename, OpenSSL's reads of ca.key and ca.crt, malloc), everything
 * else fails with EPERM. clone3 says ENOSYS, so a library would fall back to clone, which is
 * refused too (no fork, no threads). Only a hijacked signer calls exec, ptrace, another
 * process's memory or io_uring (whose socket/connect bypass seccomp): those kill it. */
static int seccomp_apply(void)
{
#ifdef SG_ARCH
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SG_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
		/* x32 numbers would alias the list below */
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		SG_ALLOW(open),
		SG_ALLOW(stat),
		SG_ALLOW(lstat),
		SG_ALLOW(rename),
		SG_ALLOW(unlink),
		SG_ALLOW(access),
		SG_ALLOW(readlink),
		SG_ALLOW(time),
#endif
		/* file I/O: SQLite and the CA's files */
		SG_ALLOW(read),
		SG_ALLOW(write),
		SG_ALLOW(readv),
		SG_ALLOW(writev),
		SG_ALLOW(pread64),
		SG_ALLOW(pwrite64),
		SG_ALLOW(openat),
		SG_ALLOW(close),
		SG_ALLOW(fstat),
		SG_ALLOW(newfstatat),
		SG_ALLOW(statx),
		SG_ALLOW(lseek),
		SG_ALLOW(fsync),
		SG_ALLOW(fdatasync),
		SG_ALLOW(fcntl),
		SG_ALLOW(ftruncate),
		SG_ALLOW(fchmod),
		SG_ALLOW(fchown),
		SG_ALLOW(renameat),
		SG_ALLOW(renameat2),
		SG_ALLOW(unlinkat),
		SG_ALLOW(faccessat),
		SG_ALLOW(faccessat2),
		SG_ALLOW(getcwd),
		SG_ALLOW(readlinkat),
		/* memory */
		SG_ALLOW(mmap),
		SG_ALLOW(munmap),
		SG_ALLOW(mprotect),
		SG_ALLOW(mremap),
		SG_ALLOW(brk),
		SG_ALLOW(madvise),
		SG_ALLOW(futex),
		/* time, randomness, identity (the log line, SQLite's busy wait) */
		SG_ALLOW(getrandom),
		SG_ALLOW(clock_gettime),
		SG_ALLOW(clock_getres),
		SG_ALLOW(gettimeofday),
		SG_ALLOW(nanosleep),
		SG_ALLOW(clock_nanosleep),
		SG_ALLOW(getpid),
		SG_ALLOW(gettid),
		SG_ALLOW(getuid),
		SG_ALLOW(geteuid),
		SG_ALLOW(getgid),
		SG_ALLOW(getegid),
		SG_ALLOW(getppid),
		SG_ALLOW(sched_yield),
		/* leaving, signals */
		SG_ALLOW(exit),
		SG_ALLOW(exit_group),
		SG_ALLOW(rt_sigreturn),
		SG_ALLOW(rt_sigprocmask),
		SG_ALLOW(restart_syscall),
		/* reads (never sets) the alternate signal stack: AddressSanitizer's hook before
		 * every no-return call (exit, longjmp) does this, and a refusal aborts it */
		SG_ALLOW(sigaltstack),
		/* hostile: nothing the signer does, everything an intruder wants */
		SG_KILL(execve),
		SG_KILL(execveat),
		SG_KILL(ptrace),
		SG_KILL(process_vm_readv),
		SG_KILL(process_vm_writev),
		SG_KILL(io_uring_setup),
		SG_KILL(io_uring_enter),
		SG_KILL(io_uring_register),
		SG_RET(__NR_clone3, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
	};
	struct sock_fprog prog = {.len = (unsigned short)(sizeof(f) / sizeof(f[0])), .filter = f};
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
		return -errno;
	return 0;
#else
	return -ENOSYS;
#endif
}

int signer_sandbox_apply(const char *const *dirs, size_t ndirs, int *landlock_abi)
{
	*landlock_abi = 0;
	/* Both Landlock and an unprivileged seccomp filter need it; it also makes set-uid
	 * binaries powerless, which exec (killed anyway) would otherwise reach. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	int ll = landlock_apply(dirs, ndirs);
	if (ll < 0)
		return ll; /* a kernel that has Landlock and refuses our rules: fail closed */
	*landlock_abi = ll;
	return seccomp_apply();
}

/* Reads exactly n bytes: 0, or -1 at EOF or an error. */
static int read_full(int fd, unsigned char *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int send_obj(int fd, cJSON *o)
{
	size_t n;
	unsigned char *f = frame_of(o, &n);
	int rc = f ? write_full(fd, f, n) : -1;
	free(f);
	return rc;
}

struct issue_ctx {
	const char *pki_dir, *csr;
	char *cert, *ca;
	char serial[AUTH_SERIAL_LEN];
	int64_t not_after_ms;
	char err[256];
};

/* auth_enroll_redeem's issuer: the CA signs, inside the redemption's transaction. */
static int issue(void *ud, const struct auth_enrollment *e, char serial[AUTH_SERIAL_LEN],
                 int64_t *not_after_ms)
{
	struct issue_ctx *x = ud;
	int rc = ca_sign_csr(x->pki_dir, x->csr, strlen(x->csr), e->site, e->agent, e->org, e->city,
	                     &x->cert, &x->ca, serial, AUTH_SERIAL_LEN, not_after_ms, x->err,
	                     sizeof(x->err));
	if (!rc) {
		snprintf(x->serial, sizeof(x->serial), "%s", serial);
		x->not_after_ms = *not_after_ms;
	}
	return rc;
}

/* A peer address as the network process passed it: printable, short; else "?". It only
 * goes into the audit row. */
static const char *peer_clean(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n > 64)
		return "?";
	for (size_t i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return "?";
	return p;
}

/* One request: the token redeemed and the CSR signed, or the reason why not. */
static cJSON *serve(struct server_conf *cfg, struct auth *au, const cJSON *req)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(req, "token");
	const cJSON *csr = cJSON_GetObjectItemCaseSensitive(req, "csr");
	const cJSON *peer = cJSON_GetObjectItemCaseSensitive(req, "peer");
	if (!cJSON_IsNumber(id) || !cJSON_IsString(tok) || !cJSON_IsString(csr) ||
	    !cJSON_IsString(peer))
		return NULL;
	struct issue_ctx x = {.pki_dir = cfg->pki_dir, .csr = csr->valuestring};
	struct auth_enrollment e = {0};
	const char *who = peer_clean(peer->valuestring);
	int rc = auth_enroll_redeem(au, tok->valuestring, who, issue, &x, &e);
	explicit_bzero(tok->valuestring, strlen(tok->valuestring));
	cJSON *o = cJSON_CreateObject();
	if (!o)
		goto out;
	cJSON_AddNumberToObject(o, "id", id->valuedouble);
	cJSON_AddNumberToObject(o, "rc", rc);
	cJSON_AddStringToObject(o, "token_id", e.id);
	if (rc == 0) {
		crashpoint("enroll_after_commit");
		cJSON_AddStringToObject(o, "site", e.site);
		cJSON_AddStringToObject(o, "agent", e.agent);
		cJSON_AddStringToObject(o, "org", e.org);
		cJSON_AddStringToObject(o, "city", e.city);
		cJSON_AddStringToObject(o, "serial", x.serial);
		cJSON_AddNumberToObject(o, "not_after_ms", (double)x.not_after_ms);
		cJSON_AddStringToObject(o, "cert", x.cert);
		cJSON_AddStringToObject(o, "ca", x.ca);
		log_info("event=signer_signed site=%s agent=%s serial=%s token=%s", e.site, e.agent,
		         x.serial, e.id);
	} else {
		cJSON_AddStringToObject(o, "err", rc == -EINVAL ? x.err : "");
		log_info("event=signer_refused token=%s rc=%d", rc == -ENOENT ? "-" : e.id, rc);
	}
out:
	free(x.cert);
	free(x.ca);
	return o;
}

int signer_main(struct server_conf *cfg)
{
	struct stat st;
	if (fstat(SIGNER_FD, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "signer: started by venuewatch-server itself, not by hand\n");
		return 2;
	}
	/* Nothing of the parent's but stdio and the socket: close_range covers any descriptor a
	 * library left without O_CLOEXEC. */
	if (syscall(SYS_close_range, SIGNER_FD + 1, ~0U, 0) != 0)
		for (int fd = SIGNER_FD + 1; fd < 1024; fd++)
			close(fd);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		close(null);
	}
	/* No core file, no ptrace by the same user, and gone with the parent. */
	struct rlimit no_core = {0, 0};
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	if (getppid() == 1)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN); /* a terminal's ^C reaches the server, which stops us */
	signal(SIGHUP, SIG_IGN);

	char err[512];
	struct auth *au = NULL;
	if (auth_open(cfg->auth_db_path, &au, err, sizeof(err))) {
		log_error("event=signer_start_failed auth_db=%s error=\"%s\"", cfg->auth_db_path,
		          err);
		return 1;
	}
	/* The CRL current before the server listens: missing, or behind a revocation whose
	 * 'revoke' crashed before rewriting it. */
	admin_crl_ensure(cfg, au);
	/* auth.db's directory (its journal and anchor files are made there) and the CA's. */
	char *db_dir = strdup(cfg->auth_db_path);
	char *slash = db_dir ? strrchr(db_dir, '/') : NULL;
	if (slash == db_dir && db_dir)
		slash[1] = '\0'; /* "/auth.db": the root itself */
	else if (slash)
		*slash = '\0';
	const char *dirs[2] = {cfg->pki_dir, slash ? db_dir : "."};
	int abi = 0;
	int sb = db_dir ? signer_sandbox_apply(dirs, 2, &abi) : -ENOMEM;
	free(db_dir);
	if (sb) {
		/* A signer without its filter would hold the key with the network's reach. */
		log_error("event=signer_sandbox_failed error=\"%s\"", strerror(-sb));
		auth_close(au);
		return 1;
	}
	if (!abi)
		log_warn("event=signer_landlock_unavailable detail=\"the kernel has no Landlock; "
		         "seccomp only\"");
	log_info("event=signer_started pid=%d", (int)getpid());
	cJSON *ready = cJSON_CreateObject();
	int rc = ready && cJSON_AddTrueToObject(ready, "ready") ? send_obj(SIGNER_FD, ready) : -1;
	cJSON_Delete(ready);
	unsigned char *buf = malloc(SIGNER_FRAME_MAX);
	while (!rc && buf) {
		unsigned char hdr[4];
		if (read_full(SIGNER_FD, hdr, 4) != 0)
			break; /* EOF: the server stops us */
		uint32_t len = be32_get(hdr);
		if (len > SIGNER_FRAME_MAX || read_full(SIGNER_FD, buf, len) != 0) {
			log_error("event=signer_protocol_error frame_bytes=%u", len);
			rc = -1;
			break;
		}
		cJSON *req = cJSON_ParseWithLength((const char *)buf, len);
		explicit_bzero(buf, len);
		cJSON *reply = req ? serve(cfg, au, req) : NULL;
		cJSON_Delete(req);
		if (!reply) {
			log_error("event=signer_protocol_error reason=bad_request");
			rc = -1;
			break;
		}
		rc = send_obj(SIGNER_FD, reply);
		cJSON_Delete(reply);
	}
	free(buf);
	auth_close(au);
	return rc ? 1 : 0;
}
