/* loadgen: load generator for the collector, acting as many venue agents at once.
 *
 *   loadgen ingest --port P[,P...] --ca CA --certs DIR [--conns 1000] [--batches 4]
 *                  [--batch 500] [--server-pid PID[,PID...]] [--ceiling-dir DIR]
 *                  [--ceiling-pg DSN [--ceiling-streams N]] [--acked-out FILE]
 *                  [--flap-per-mille N]
 *   loadgen idle   --port P --ca CA --certs DIR [--conns 10000] [--hold 10] [--server-pid PID]
 *
 * ingest: --conns mutual-TLS keep-alive connections, connection i presenting the certificate
 * of site i (DIR/site-NNNN/agent.{crt,key}, from `venuewatch-server ca issue`), each posting
 * --batches gzip'd batches of --batch results in seq order, one request at a time, as the
 * agent's uplink does. Every batch is generated before the clock starts (the agent's own
 * encode+deflate cost is not the server's), every ack is checked against the batch's last
 * seq. Reports results/s, ack latency p50/p99, server CPU and RSS from /proc/PID. With
 * --ceiling-dir, then writes the same rows into a fresh store there through the store's own
 * write path (store_bench_commit) with no network, TLS, HTTP or JSON: the ceiling, and the
 * ratio. --flap-per-mille: camera results not ok per 1000 (default 50; each is a status
 * change, so events and problems, when the feed is on).
 *
 * Several collectors (issue 13, tests/bench/scale_bench.sh): --port takes a list and
 * connection i goes to port i mod n (every agent its own site, agent id and seqs, sticky to
 * one collector); --server-pid a list in the same order (their CPU summed). --acked-out
 * writes "site<TAB>last acked seq" per agent, for checking the database afterwards.
 * --ceiling-pg: the ceiling on PostgreSQL instead, the same rows by the backend's own raw
 * COPY (store_bench_raw: one batch, one COPY, one commit, durability full) into a fresh
 * schema in that database, --ceiling-streams connections at once (default: one per port,
 * as many writers as the collectors had).
 *
 * idle: opens --conns connections (at most 200 handshakes at a time), each sends one GET
 * /healthz (so the server counts it as keep-alive idle, not as a slow first request) and
 * then holds it for --hold seconds, while one more connection measures /healthz latency.
 *
 * One thread, epoll, non-blocking OpenSSL on the sockets. Output: key=value lines. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "result.h"
#include "store.h"
#include "vtime.h"

#define MAX_HANDSHAKING 200 /* connects in flight: the server's backlog is 511 */
#define IN_MAX 4096         /* a response: head + {"acked_seq":N} */
#define RETRY_MS 200        /* after a 503, as an agent would back off (shorter) */
#define CAMERAS 64          /* per site: a large venue (DOMAIN.md: 2-200) */

enum state {
	ST_CONNECT,
	ST_HANDSHAKE,
	ST_READY,
	ST_WRITE,
	ST_READ,
	ST_WAIT,
	ST_IDLE,
	ST_DONE,
	ST_FAILED
};

struct body {
	char *data; /* request head + gzip'd JSON */
	size_t len;
	int64_t last_seq;
	size_t rows;
};

struct conn {
	int fd;
	SSL *ssl;
	enum state st;
	int site;
	int port;   /* the collector it sticks to */
	int events; /* current epoll interest */
	struct body *bodies;
	int nbodies, next; /* next body to send */
	const char *out;
	size_t out_len, out_off;
	char in[IN_MAX];
	size_t in_len;
	int64_t t_send, retry_at;
	int64_t acked_through; /* the last seq the collector acknowledged */
	int probe;             /* the /healthz prober (idle mode) */
};

struct site {
	char name[64];
	X509 *cert;
	EVP_PKEY *key;
};

#define MAX_SERVERS 8

static struct {
	const char *host, *ca, *certs, *ceiling_dir, *ceiling_pg, *acked_out;
	int port, conns, batches, batch, hold_s, gen_threads;
	long server_pid;
	int ports[MAX_SERVERS], nports;
	long server_pids[MAX_SERVERS];
	int npids, ceiling_streams;
	/* issue 16 (sse_bench): --flap-per-mille N, results not ok per 1000 (default 50: 4 %
	 * degraded, 1 % down, each a status change twice, so an event and a problem). */
	int flap;
} opt = {
    .host = "127.0.0.1", .batches = 4, .batch = 500, .hold_s = 10, .gen_threads = 2, .flap = 50};

static SSL_CTX *ctx;
static struct site *sites;
static int nsites;
static int ep;
static struct conn *conns;
static int handshaking, established, failed, done_conns;
static uint64_t rows_acked, requests_ok, ack_mismatch, status_other, status_503;
static int64_t *lat; /* ns, one per completed request */
static size_t nlat, lat_cap;
static int64_t *probe_lat;
static size_t nprobe, probe_cap;
static int go; /* ingest: all connected, start sending */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void push(int64_t **arr, size_t *n, size_t *cap, int64_t v)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 4096;
		*arr = realloc(*arr, *cap * sizeof(**arr));
		if (!*arr)
			die("realloc");
	}
	(*arr)[(*n)++] = v;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static double pct_ms(int64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp64);
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return (double)v[i] / 1e6;
}

/* --- /proc ------------------------------------------------------------------------------ */

struct proc_sample {
	double cpu_s; /* utime + stime */
	long rss_kb, hwm_kb;
};

static int proc_sample(long pid, struct proc_sample *s)
{
	memset(s, 0, sizeof(*s));
	if (!pid)
		return -1;
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* comm may hold spaces */
	unsigned long ut = 0, st = 0;
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	s->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(buf, sizeof(buf), f)) {
		sscanf(buf, "VmRSS: %ld", &s->rss_kb);
		sscanf(buf, "VmHWM: %ld", &s->hwm_kb);
	}
	fclose(f);
	return 0;
}

/* --- batches ---------------------------------------------------------------------------- */

/* One result as the agent would report it: per cycle every camera's stream check, a
 * recording scan for every eighth camera, the network probe and the room coverage. About
 * 4% of cameras degraded, 1% down, as a province on a normal day. */
static void make_result(int site, int64_t seq, struct vw_result *r)
{
	static const int64_t base_ms = 1781000000000; /* 2026-06: a June exam season */
	int64_t slot = (seq - 1) % (CAMERAS + CAMERAS / 8 + 2);
	uint64_t h = (uint64_t)seq * 0x9e3779b97f4a7c15ull ^ (uint64_t)site * 0xbf58476d1ce4e5b9ull;
	h ^= h >> 31;
	char target[32];
	if (slot < CAMERAS) {
		snprintf(target, sizeof(target), "cam-%03d", (int)slot + 1);
		vw_result_init(r, VW_KIND_STREAM, target);
		snprintf(r->codec, sizeof(r->codec), "h264");
		vw_result_set_metric(r, VW_M_WIDTH, 1920);
		vw_result_set_metric(r, VW_M_HEIGHT, 1080);
		vw_result_set_metric(r, VW_M_FPS, 25.0 - (double)(h % 3) * 0.5);
		vw_result_set_metric(r, VW_M_BITRATE_KBPS, 1800 + (double)(h % 600));
		vw_result_set_metric(r, VW_M_OPEN_MS, 80 + (double)(h % 120));
		vw_result_set_metric(r, VW_M_FIRST_KEYFRAME_MS, 200 + (double)(h % 900));
		vw_result_set_metric(r, VW_M_CHECK_MS, 1500 + (double)(h % 700));
		vw_result_set_metric(r, VW_M_FRAMES_ANALYSED, 8);
		vw_result_set_metric(r, VW_M_LUMA_MEAN, 90 + (double)(h % 60));
		vw_result_set_metric(r, VW_M_LUMA_STDDEV, 30 + (double)(h % 20));
		vw_result_set_metric(r, VW_M_BLUR, 2.5 + (double)(h % 10) / 10.0);
		if (h % 1000 < (uint64_t)opt.flap * 4 / 5) {
			r->status = VW_STATUS_DEGRADED;
			vw_result_add_fault(r, VW_FAULT_LOW_FPS);
		} else if (h % 1000 < (uint64_t)opt.flap) {
			r->status = VW_STATUS_DOWN;
			r->nmetrics = 0;
			vw_result_add_fault(r, VW_FAULT_TIMEOUT);
		}
	} else if (slot < CAMERAS + CAMERAS / 8) {
		snprintf(target, sizeof(target), "cam-%03d", (int)(slot - CAMERAS) * 8 + 1);
		vw_result_init(r, VW_KIND_RECORDING, target);
		vw_result_set_metric(r, VW_M_SEGMENTS, 288);
		vw_result_set_metric(r, VW_M_GAP_COUNT, 0);
		vw_result_set_metric(r, VW_M_RETENTION_DAYS_KEPT, 31);
		vw_result_set_metric(r, VW_M_NEWEST_AGE_S, (double)(h % 300));
		vw_result_set_metric(r, VW_M_FREE_PCT, 42);
	} else if (slot == CAMERAS + CAMERAS / 8) {
		vw_result_init(r, VW_KIND_NETWORK, "collector");
		vw_result_set_metric(r, VW_M_RTT_MS, 12 + (double)(h % 30));
		vw_result_set_metric(r, VW_M_JITTER_MS, (double)(h % 5));
		vw_result_set_metric(r, VW_M_LOSS_PCT, 0);
		vw_result_set_metric(r, VW_M_UPLINK_KBPS, 150000);
		vw_result_set_metric(r, VW_M_REQUIRED_KBPS, 131072);
	} else {
		vw_result_init(r, VW_KIND_COVERAGE, "hall-1");
		vw_result_set_metric(r, VW_M_CAMERAS_OK, CAMERAS);
		vw_result_set_metric(r, VW_M_CAMERAS_REQUIRED, 2);
		vw_result_set_metric(r, VW_M_CAMERAS_TOTAL, CAMERAS);
	}
	r->seq = seq;
	r->ts_ms = base_ms + seq * 500;
	r->mono_ms = seq * 500;
	snprintf(r->session, sizeof(r->session), "2026-06-15-am");
}

struct gen_job {
	int from, to; /* connections */
};

static void *gen_thread(void *arg)
{
	struct gen_job *job = arg;
	struct vw_result *r = malloc(sizeof(*r));
	struct vw_buf json;
	vw_buf_init(&json, 64u << 20);
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	/* The agent's settings (uplink.c): default level, gzip wrapper. */
	if (!r || deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	                       Z_DEFAULT_STRATEGY) != Z_OK)
		die("deflateInit2");
	for (int i = job->from; i < job->to; i++) {
		struct conn *c = &conns[i];
		const char *site = sites[c->site].name;
		for (int b = 0; b < c->nbodies; b++) {
			vw_buf_reset(&json);
			vw_buf_puts(&json, "{\"site\":");
			vw_buf_json_str(&json, site);
			vw_buf_puts(&json, ",\"agent\":");
			vw_buf_json_str(&json, site);
			vw_buf_puts(&json, ",\"results\":[");
			int64_t first = (int64_t)b * opt.batch + 1;
			for (int k = 0; k < opt.batch; k++) {
				make_result(c->site, first + k, r);
				if (k)
					vw_buf_puts(&json, ",");
				vw_result_encode(r, &json);
			}
			vw_buf_puts(&json, "]}");
			if (json.err)
				die("json too large");
			deflateReset(&zs);
			uLong bound = deflateBound(&zs, (uLong)json.len);
			char head[256];
			int hl = 0;
			struct body *bd = &c->bodies[b];
			bd->data = malloc(sizeof(head) + bound);
			if (!bd->data)
				die("malloc");
			zs.next_in = (Bytef *)json.data;
			zs.avail_in = (uInt)json.len;
			zs.next_out = (Bytef *)bd->data + sizeof(head);
			zs.avail_out = (uInt)bound;
			if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
				die("deflate");
			size_t gz = bound - zs.avail_out;
			hl = snprintf(head, sizeof(head),
			              "POST /api/v1/ingest HTTP/1.1\r\nHost: collector\r\n"
			              "User-Agent: venuewatch-loadgen\r\nAccept: */*\r\n"
			              "Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
			              "Content-Length: %zu\r\n\r\n",
			              gz);
			memmove(bd->data + hl, bd->data + sizeof(head), gz);
			memcpy(bd->data, head, (size_t)hl);
			bd->len = (size_t)hl + gz;
			bd->last_seq = first + opt.batch - 1;
			bd->rows = (size_t)opt.batch;
		}
	}
	deflateEnd(&zs);
	vw_buf_free(&json);
	free(r);
	return NULL;
}

/* --- connections ------------------------------------------------------------------------ */

static void set_events(struct conn *c, int events)
{
	if (c->events == events || c->fd < 0)
		return;
	struct epoll_event ev = {.events = (uint32_t)events, .data.ptr = c};
	if (epoll_ctl(ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) != 0)
		die("epoll_ctl");
	c->events = events;
}

static void conn_fail(struct conn *c, const char *why)
{
	static int reported;
	if (reported++ < 10)
		fprintf(stderr, "loadgen: conn site=%s failed: %s\n", sites[c->site].name, why);
	if (c->st == ST_CONNECT || c->st == ST_HANDSHAKE)
		handshaking--;
	else if (c->st != ST_DONE)
		established--;
	c->st = ST_FAILED;
	failed++;
	if (c->ssl)
		SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void conn_start(struct conn *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket");
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
	inet_pton(AF_INET, opt.host, &sa.sin_addr);
	c->events = 0;
	c->st = ST_CONNECT;
	handshaking++;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
		conn_fail(c, strerror(errno));
		return;
	}
	set_events(c, EPOLLOUT);
}

static void begin_request(struct conn *c, const char *data, size_t len)
{
	c->out = data;
	c->out_len = len;
	c->out_off = 0;
	c->in_len = 0;
	c->st = ST_WRITE;
	c->t_send = now_ns();
}

static const char healthz[] = "GET /healthz HTTP/1.1\r\nHost: collector\r\n\r\n";

static void next_request(struct conn *c)
{
	if (c->probe) {
		begin_request(c, healthz, sizeof(healthz) - 1);
	} else if (c->nbodies) {
		if (c->next >= c->nbodies) {
			c->st = ST_DONE;
			done_conns++;
			set_events(c, EPOLLIN);
			return;
		}
		begin_request(c, c->bodies[c->next].data, c->bodies[c->next].len);
	} else {
		begin_request(c, healthz, sizeof(healthz) - 1);
	}
}

/* A complete response in c->in: returns its status, or 0 while incomplete, -1 if garbled. */
static int parse_response(struct conn *c, const char **body, size_t *blen)
{
	c->in[c->in_len < IN_MAX ? c->in_len : IN_MAX - 1] = '\0';
	char *end = strstr(c->in, "\r\n\r\n");
	if (!end)
		return c->in_len >= IN_MAX - 1 ? -1 : 0;
	int status = 0;
	if (sscanf(c->in, "HTTP/1.1 %d", &status) != 1)
		return -1;
	const char *cl = strcasestr(c->in, "\r\nContent-Length:");
	if (!cl || cl > end)
		return -1;
	size_t n = strtoul(cl + 17, NULL, 10);
	size_t have = c->in_len - (size_t)(end + 4 - c->in);
	if (have < n)
		return c->in_len >= IN_MAX - 1 ? -1 : 0;
	*body = end + 4;
	*blen = n;
	return status;
}

static void on_response(struct conn *c, int status, const char *body)
{
	int64_t t = now_ns() - c->t_send;
	if (c->probe) {
		push(&probe_lat, &nprobe, &probe_cap, t);
		c->st = ST_WAIT;
		c->retry_at = now_ns() + 10 * 1000000LL; /* 100 probes a second */
		set_events(c, EPOLLIN);
		return;
	}
	if (!c->nbodies) { /* idle mode: the one request done, now hold */
		c->st = ST_IDLE;
		set_events(c, EPOLLIN);
		return;
	}
	if (status == 200) {
		struct body *bd = &c->bodies[c->next];
		long long acked = -1;
		const char *a = strstr(body, "\"acked_seq\":");
		if (a)
			acked = strtoll(a + 12, NULL, 10);
		if (acked != bd->last_seq)
			ack_mismatch++;
		else
			c->acked_through = bd->last_seq;
		push(&lat, &nlat, &lat_cap, t);
		rows_acked += bd->rows;
		requests_ok++;
		c->next++;
		next_request(c);
		return;
	}
	if (status == 503) {
		status_503++;
		c->st = ST_WAIT;
		c->retry_at = now_ns() + RETRY_MS * 1000000LL;
		set_events(c, EPOLLIN);
		return;
	}
	static int reported;
	if (reported++ < 5)
		fprintf(stderr, "loadgen: site=%s status=%d body=%.200s\n", sites[c->site].name,
		        status, body);
	status_other++;
	c->next++;
	next_request(c);
}

static void step(struct conn *c, uint32_t events)
{
	for (;;) {
		switch (c->st) {
		case ST_CONNECT: {
			int err = 0;
			socklen_t l = sizeof(err);
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
			if (err) {
				conn_fail(c, strerror(err));
				return;
			}
			c->ssl = SSL_new(ctx);
			if (!c->ssl) {
				conn_fail(c, "SSL_new");
				return;
			}
			SSL_set_fd(c->ssl, c->fd);
			if (SSL_use_certificate(c->ssl, sites[c->site].cert) != 1 ||
			    SSL_use_PrivateKey(c->ssl, sites[c->site].key) != 1) {
				conn_fail(c, "client certificate");
				return;
			}
			SSL_set_connect_state(c->ssl);
			c->st = ST_HANDSHAKE;
			continue;
		}
		case ST_HANDSHAKE: {
			ERR_clear_error();
			int r = SSL_do_handshake(c->ssl);
			if (r == 1) {
				handshaking--;
				established++;
				c->st = ST_READY;
				if (!c->nbodies || go)
					next_request(c);
				else
					set_events(c, EPOLLIN);
				if (c->st == ST_READY)
					return;
				continue;
			}
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ)
				set_events(c, EPOLLIN);
			else if (e == SSL_ERROR_WANT_WRITE)
				set_events(c, EPOLLOUT);
			else {
				char buf[160];
				ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
				conn_fail(c, buf);
			}
			return;
		}
		case ST_WRITE:
			while (c->out_off < c->out_len) {
				ERR_clear_error();
				int n = SSL_write(c->ssl, c->out + c->out_off,
				                  (int)(c->out_len - c->out_off));
				if (n > 0) {
					c->out_off += (size_t)n;
					continue;
				}
				int e = SSL_get_error(c->ssl, n);
				if (e == SSL_ERROR_WANT_WRITE)
					set_events(c, EPOLLOUT);
				else if (e == SSL_ERROR_WANT_READ)
					set_events(c, EPOLLIN);
				else
					conn_fail(c, "write");
				return;
			}
			c->st = ST_READ;
			set_events(c, EPOLLIN);
			continue;
		case ST_READ: {
			ERR_clear_error();
			int n = SSL_read(c->ssl, c->in + c->in_len, (int)(IN_MAX - 1 - c->in_len));
			if (n <= 0) {
				int e = SSL_get_error(c->ssl, n);
				if (e == SSL_ERROR_WANT_READ) {
					set_events(c, EPOLLIN);
					return;
				}
				if (e == SSL_ERROR_WANT_WRITE) {
					set_events(c, EPOLLOUT);
					return;
				}
				conn_fail(c, "closed by the server");
				return;
			}
			c->in_len += (size_t)n;
			const char *body;
			size_t blen;
			int status = parse_response(c, &body, &blen);
			if (status < 0) {
				conn_fail(c, "garbled response");
				return;
			}
			if (status == 0)
				continue;
			on_response(c, status, body);
			if (c->st != ST_WRITE)
				return;
			continue;
		}
		case ST_IDLE:
		case ST_DONE:
		case ST_WAIT:
		case ST_READY:
			if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				/* nothing is expected: the server closed it (idle timeout?) */
				char b[256];
				ERR_clear_error();
				int n = SSL_read(c->ssl, b, sizeof(b));
				if (n <= 0 && SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_READ) {
					if (c->st == ST_DONE)
						done_conns--;
					conn_fail(c, "server closed an idle connection");
				}
			}
			return;
		case ST_FAILED:
			return;
		}
	}
}

static void loop_once(int timeout_ms)
{
	struct epoll_event evs[512];
	int n = epoll_wait(ep, evs, 512, timeout_ms);
	if (n < 0 && errno != EINTR)
		die("epoll_wait");
	for (int i = 0; i < n; i++)
		step(evs[i].data.ptr, evs[i].events);
}

static void retry_due(struct conn *all, int n)
{
	int64_t t = now_ns();
	for (int i = 0; i < n; i++) {
		struct conn *c = &all[i];
		if (c->st == ST_WAIT && t >= c->retry_at) {
			next_request(c);
			step(c, 0);
		}
	}
}

/* --- setup ------------------------------------------------------------------------------ */

static void load_sites(int want)
{
	sites = calloc((size_t)want, sizeof(*sites));
	if (!sites)
		die("calloc");
	for (int i = 0; i < want; i++) {
		struct site *s = &sites[i];
		snprintf(s->name, sizeof(s->name), "site-%04d", i + 1);
		char path[4200];
		snprintf(path, sizeof(path), "%s/%s/agent.crt", opt.certs, s->name);
		FILE *f = fopen(path, "r");
		if (!f)
			break;
		s->cert = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
		snprintf(path, sizeof(path), "%s/%s/agent.key", opt.certs, s->name);
		if (!(f = fopen(path, "r")))
			break;
		s->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (!s->cert || !s->key) {
			fprintf(stderr, "loadgen: cannot read %s\n", path);
			exit(1);
		}
		nsites++;
	}
	if (!nsites) {
		fprintf(stderr, "loadgen: no DIR/site-0001/agent.crt under %s\n", opt.certs);
		exit(1);
	}
}

static void make_ctx(void)
{
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1) {
		fprintf(stderr, "loadgen: cannot load CA %s\n", opt.ca);
		exit(1);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Full handshakes every time, as many venues connecting for the first time would. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Opens every connection in all[0..n), at most MAX_HANDSHAKING at a time. */
static void connect_all(struct conn *all, int n, int64_t deadline)
{
	int started = 0;
	while ((established + failed < n) && now_ns() < deadline) {
		while (started < n && handshaking < MAX_HANDSHAKING)
			conn_start(&all[started++]);
		loop_once(10);
		for (int i = 0; i < opt.npids; i++)
			if (kill((pid_t)opt.server_pids[i], 0) != 0) {
				fprintf(stderr, "loadgen: the server %ld is gone\n",
				        opt.server_pids[i]);
				exit(1);
			}
	}
}

/* --- ceiling ---------------------------------------------------------------------------- */

/* Same rows (regenerated, so memory stays small) through the store's own write path
 * (store_bench_commit: the writer's statements and transaction, on this thread, without the
 * writer thread), into a fresh store in --ceiling-dir; durability NORMAL, so the ceiling
 * does not include the fsyncs the server pays. Only the store call is timed. One
 * transaction per `group` batches: at least as generous as the server's group commit
 * under this load. */
static double run_ceiling(size_t *rows_out)
{
	char err[512], path[4096];
	struct store *st;
	snprintf(path, sizeof(path), "%s/venuewatch.db", opt.ceiling_dir);
	if (mkdir(opt.ceiling_dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "loadgen: ceiling dir %s: %s\n", opt.ceiling_dir, strerror(errno));
		exit(1);
	}
	unlink(path);
	struct store_options so = {.backend = "sqlite",
	                           .dir = opt.ceiling_dir,
	                           .durability = STORE_DURABLE_NORMAL,
	                           .readers = 1};
	if (store_open(&so, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "loadgen: ceiling store: %s\n", err);
		exit(1);
	}
	struct vw_result *r = malloc(sizeof(*r));
	enum { GROUP = 20 };
	struct store_batch *group[GROUP];
	int64_t timed = 0;
	size_t rows = 0, inbatch = 0;
	for (int b = 0; b < opt.batches; b++) {
		for (int i = 0; i < opt.conns; i++) {
			struct store_batch *sb = store_batch_create();
			if (!sb || !r)
				die("store_batch_create");
			snprintf(sb->site, sizeof(sb->site), "%s", sites[conns[i].site].name);
			snprintf(sb->agent, sizeof(sb->agent), "%s", sb->site);
			snprintf(sb->org, sizeof(sb->org), "org-01");
			snprintf(sb->city, sizeof(sb->city), "jinan");
			sb->received_ms = 1781000000000 + b;
			for (int k = 0; k < opt.batch; k++) {
				make_result(conns[i].site, (int64_t)b * opt.batch + 1 + k, r);
				if (store_batch_add(sb, r))
					die("store_batch_add");
			}
			if (inbatch)
				group[inbatch - 1]->next = sb;
			group[inbatch++] = sb;
			int last = b == opt.batches - 1 && i == opt.conns - 1;
			if (inbatch < GROUP && !last)
				continue;
			int64_t t0 = now_ns();
			int rc = store_bench_commit(st, group[0]);
			timed += now_ns() - t0;
			if (rc) {
				fprintf(stderr, "loadgen: ceiling commit: %s\n", strerror(-rc));
				exit(1);
			}
			for (size_t k = 0; k < inbatch; k++) {
				rows += group[k]->stored;
				store_batch_destroy(group[k]);
			}
			inbatch = 0;
		}
	}
	store_close(st);
	free(r);
	*rows_out = rows;
	return (double)rows / ((double)timed / 1e9);
}

/* The ceiling on PostgreSQL (issue 13): the same rows, regenerated, by the backend's raw
 * COPY (store_bench_raw: the agent row it needs, one COPY of one batch, COMMIT; no lock,
 * mark, latest, feed or counts) into the database dsn names, whose store tables the caller
 * left empty. `streams` threads, each its own store (its own connection), take the agents
 * i = k mod streams, as the collectors' writers did. Durability full, as the collectors'.
 * Each thread times only its store calls; the rate is rows over the slowest thread's time. */
struct ceil_job {
	int k, streams;
	struct store *st;
	int64_t timed_ns;
	size_t rows;
};

static void *ceil_thread(void *arg)
{
	struct ceil_job *j = arg;
	struct vw_result *r = malloc(sizeof(*r));
	if (!r)
		die("malloc");
	for (int b = 0; b < opt.batches; b++)
		for (int i = j->k; i < opt.conns; i += j->streams) {
			struct store_batch *sb = store_batch_create();
			if (!sb)
				die("store_batch_create");
			snprintf(sb->site, sizeof(sb->site), "%s", sites[conns[i].site].name);
			snprintf(sb->agent, sizeof(sb->agent), "%s", sb->site);
			/* the collector's clock, as ingest stamps it: today's partition */
			sb->received_ms = vw_now_ms();
			for (int k = 0; k < opt.batch; k++) {
				make_result(conns[i].site, (int64_t)b * opt.batch + 1 + k, r);
				if (store_batch_add(sb, r))
					die("store_batch_add");
			}
			int64_t t0 = now_ns();
			int rc = store_bench_raw(j->st, sb);
			j->timed_ns += now_ns() - t0;
			if (rc) {
				fprintf(stderr, "loadgen: ceiling COPY: %s\n", strerror(-rc));
				exit(1);
			}
			j->rows += sb->nrows;
			store_batch_destroy(sb);
		}
	free(r);
	return NULL;
}

static double run_ceiling_pg(int streams, size_t *rows_out)
{
	struct ceil_job jobs[16];
	pthread_t th[16];
	char err[512];
	for (int k = 0; k < streams; k++) {
		struct store_options so = {.backend = "postgresql",
		                           .dsn = opt.ceiling_pg,
		                           .durability = STORE_DURABLE_FULL,
		                           .readers = 1,
		                           .rollup_tick_ms = -1};
		jobs[k] = (struct ceil_job){.k = k, .streams = streams};
		if (store_open(&so, &jobs[k].st, err, sizeof(err)) != 0) {
			fprintf(stderr, "loadgen: ceiling store: %s\n", err);
			exit(1);
		}
	}
	for (int k = 0; k < streams; k++)
		pthread_create(&th[k], NULL, ceil_thread, &jobs[k]);
	int64_t slowest = 1;
	size_t rows = 0;
	for (int k = 0; k < streams; k++) {
		pthread_join(th[k], NULL);
		slowest = jobs[k].timed_ns > slowest ? jobs[k].timed_ns : slowest;
		rows += jobs[k].rows;
		store_close(jobs[k].st);
	}
	*rows_out = rows;
	return (double)rows / ((double)slowest / 1e9);
}

/* "site<TAB>last acked seq" per agent (0: nothing acked), for the caller to hold the
 * database to: every acked seq stored once, nothing above the ack. */
static void write_acked(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die(path);
	for (int i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];
		long long seq = c->next > 0 ? (long long)c->bodies[c->next - 1].last_seq : 0;
		/* a batch answered other than 200 moved next on too: count only acked ones */
		if (c->acked_through < seq)
			seq = c->acked_through;
		fprintf(f, "%s\t%lld\n", sites[c->site].name, seq);
	}
	if (fclose(f) != 0)
		die(path);
}

/* --- modes ------------------------------------------------------------------------------ */

static int mode_ingest(void)
{
	if (opt.conns > nsites) {
		fprintf(stderr, "loadgen: %d connections need %d site certificates, found %d\n",
		        opt.conns, opt.conns, nsites);
		return 1;
	}
	conns = calloc((size_t)opt.conns, sizeof(*conns));
	if (!conns)
		die("calloc");
	for (int i = 0; i < opt.conns; i++) {
		conns[i].fd = -1;
		conns[i].site = i;
		conns[i].port = opt.ports[i % opt.nports];
		conns[i].nbodies = opt.batches;
		conns[i].bodies = calloc((size_t)opt.batches, sizeof(struct body));
		if (!conns[i].bodies)
			die("calloc");
	}
	int64_t t0 = now_ns();
	pthread_t th[16];
	struct gen_job jobs[16];
	int nt = opt.gen_threads < 1 ? 1 : opt.gen_threads > 16 ? 16 : opt.gen_threads;
	for (int t = 0; t < nt; t++) {
		jobs[t].from = opt.conns * t / nt;
		jobs[t].to = opt.conns * (t + 1) / nt;
		pthread_create(&th[t], NULL, gen_thread, &jobs[t]);
	}
	size_t wire = 0;
	for (int t = 0; t < nt; t++)
		pthread_join(th[t], NULL);
	for (int i = 0; i < opt.conns; i++)
		for (int b = 0; b < opt.batches; b++)
			wire += conns[i].bodies[b].len;
	printf("phase=generate batches=%d results_per_batch=%d avg_request_bytes=%zu ms=%.0f\n",
	       opt.conns * opt.batches, opt.batch, wire / (size_t)(opt.conns * opt.batches),
	       (double)(now_ns() - t0) / 1e6);

	t0 = now_ns();
	connect_all(conns, opt.conns, t0 + 120 * 1000000000LL);
	printf("phase=connect conns=%d established=%d failed=%d ms=%.0f\n", opt.conns, established,
	       failed, (double)(now_ns() - t0) / 1e6);
	if (established == 0)
		return 1;
	fflush(stdout);

	struct proc_sample p0[MAX_SERVERS], p1[MAX_SERVERS];
	for (int i = 0; i < opt.npids; i++)
		proc_sample(opt.server_pids[i], &p0[i]);
	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	go = 1;
	int64_t start = now_ns();
	for (int i = 0; i < opt.conns; i++)
		if (conns[i].st == ST_READY) {
			next_request(&conns[i]);
			step(&conns[i], 0);
		}
	int64_t deadline = start + 600 * 1000000000LL;
	while (done_conns + failed < opt.conns && now_ns() < deadline) {
		loop_once(5);
		retry_due(conns, opt.conns);
	}
	double secs = (double)(now_ns() - start) / 1e9;
	for (int i = 0; i < opt.npids; i++)
		proc_sample(opt.server_pids[i], &p1[i]);
	getrusage(RUSAGE_SELF, &ru1);
	double self_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
	                  (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
	                  (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
	                  (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
	double rate = (double)rows_acked / secs;
	printf(
	    "phase=ingest conns=%d requests_ok=%llu results=%llu seconds=%.2f results_per_s=%.0f "
	    "ack_p50_ms=%.1f ack_p99_ms=%.1f ack_max_ms=%.1f status_503=%llu status_other=%llu "
	    "ack_mismatch=%llu failed_conns=%d\n",
	    opt.conns, (unsigned long long)requests_ok, (unsigned long long)rows_acked, secs, rate,
	    pct_ms(lat, nlat, 0.50), pct_ms(lat, nlat, 0.99), pct_ms(lat, nlat, 1.0),
	    (unsigned long long)status_503, (unsigned long long)status_other,
	    (unsigned long long)ack_mismatch, failed);
	if (opt.npids) {
		/* cpu: all the servers together; memory: the largest (each is one process) */
		double cpu = 0;
		long rss = 0, hwm = 0;
		for (int i = 0; i < opt.npids; i++) {
			cpu += p1[i].cpu_s - p0[i].cpu_s;
			rss = p1[i].rss_kb > rss ? p1[i].rss_kb : rss;
			hwm = p1[i].hwm_kb > hwm ? p1[i].hwm_kb : hwm;
		}
		printf("phase=server servers=%d cpu_s=%.2f cpu_pct=%.0f rss_mib=%.1f "
		       "peak_rss_mib=%.1f loadgen_cpu_pct=%.0f\n",
		       opt.npids, cpu, 100.0 * cpu / secs, (double)rss / 1024, (double)hwm / 1024,
		       100.0 * self_cpu / secs);
	}
	if (opt.acked_out)
		write_acked(opt.acked_out);
	fflush(stdout);
	int rc = failed || ack_mismatch || status_other || requests_ok == 0 ? 1 : 0;
	for (int i = 0; i < opt.conns; i++) {
		if (conns[i].ssl)
			SSL_free(conns[i].ssl);
		if (conns[i].fd >= 0)
			close(conns[i].fd);
		conns[i].fd = -1;
		conns[i].ssl = NULL;
	}
	if (opt.ceiling_pg) {
		size_t rows;
		int streams = opt.ceiling_streams ? opt.ceiling_streams : opt.nports;
		double ceil = run_ceiling_pg(streams, &rows);
		printf("phase=ceiling backend=postgresql streams=%d rows=%zu results_per_s=%.0f "
		       "ratio=%.2f\n",
		       streams, rows, ceil, rate / ceil);
	} else if (opt.ceiling_dir) {
		size_t rows;
		double ceil = run_ceiling(&rows);
		printf("phase=ceiling rows=%zu results_per_s=%.0f ratio=%.2f\n", rows, ceil,
		       rate / ceil);
	}
	return rc;
}

static int mode_idle(void)
{
	/* one extra: the prober */
	conns = calloc((size_t)opt.conns + 1, sizeof(*conns));
	if (!conns)
		die("calloc");
	for (int i = 0; i <= opt.conns; i++) {
		conns[i].fd = -1;
		conns[i].site = i % nsites;
		conns[i].port = opt.ports[i % opt.nports];
	}
	struct conn *probe = &conns[opt.conns];
	probe->probe = 1;
	struct proc_sample p0, p1;
	proc_sample(opt.server_pid, &p0);
	int64_t t0 = now_ns();
	/* the prober first, so latency during the handshake storm is measured too */
	conn_start(probe);
	while (probe->st == ST_CONNECT || probe->st == ST_HANDSHAKE)
		loop_once(10);
	if (probe->st == ST_FAILED)
		return 1;
	established = 0; /* count only the idle ones below */
	int started = 0;
	int64_t deadline = t0 + 300 * 1000000000LL;
	while (established + failed < opt.conns && now_ns() < deadline) {
		while (started < opt.conns && handshaking < MAX_HANDSHAKING)
			conn_start(&conns[started++]);
		loop_once(2);
		retry_due(probe, 1);
	}
	double ramp = (double)(now_ns() - t0) / 1e9;
	/* wait for every idle connection's one request to finish */
	int idle = 0;
	while (now_ns() < deadline) {
		idle = 0;
		for (int i = 0; i < opt.conns; i++)
			idle += conns[i].st == ST_IDLE;
		if (idle + failed >= opt.conns)
			break;
		loop_once(2);
		retry_due(probe, 1);
	}
	size_t ramp_probes = nprobe;
	double ramp_p50 = pct_ms(probe_lat, nprobe, 0.5),
	       ramp_p99 = pct_ms(probe_lat, nprobe, 0.99);
	printf("phase=connect conns=%d idle=%d failed=%d seconds=%.1f healthz_n=%zu "
	       "healthz_p50_ms=%.1f healthz_p99_ms=%.1f\n",
	       opt.conns, idle, failed, ramp, ramp_probes, ramp_p50, ramp_p99);
	fflush(stdout);
	nprobe = 0;
	int64_t hold_end = now_ns() + (int64_t)opt.hold_s * 1000000000LL;
	while (now_ns() < hold_end) {
		loop_once(2);
		retry_due(probe, 1);
	}
	proc_sample(opt.server_pid, &p1);
	idle = 0;
	for (int i = 0; i < opt.conns; i++)
		idle += conns[i].st == ST_IDLE;
	printf("phase=hold conns_idle=%d seconds=%d healthz_n=%zu healthz_p50_ms=%.2f "
	       "healthz_p99_ms=%.2f healthz_max_ms=%.2f",
	       idle, opt.hold_s, nprobe, pct_ms(probe_lat, nprobe, 0.5),
	       pct_ms(probe_lat, nprobe, 0.99), pct_ms(probe_lat, nprobe, 1.0));
	if (opt.server_pid)
		printf(" server_rss_mib=%.1f server_peak_rss_mib=%.1f server_cpu_s=%.1f",
		       (double)p1.rss_kb / 1024, (double)p1.hwm_kb / 1024, p1.cpu_s - p0.cpu_s);
	printf("\n");
	return idle < opt.conns ? 1 : 0;
}

/* "A,B,C" into v (at most max): the count, or -1 when an item is not a positive number. */
static int parse_list(const char *arg, long *v, int max)
{
	int n = 0;
	for (const char *p = arg; *p;) {
		char *end;
		long x = strtol(p, &end, 10);
		if (end == p || x <= 0 || n == max || (*end && *end != ','))
			return -1;
		v[n++] = x;
		p = *end ? end + 1 : end;
	}
	return n;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: loadgen ingest|idle --port P[,P...] --ca CA.crt --certs DIR\n"
	        "         [--host 127.0.0.1] [--conns N] [--batches N] [--batch N]\n"
	        "         [--hold SECONDS] [--server-pid PID[,PID...]] [--ceiling-dir DIR]\n"
	        "         [--ceiling-pg DSN [--ceiling-streams N]] [--acked-out FILE]\n"
	        "         [--gen-threads N] [--flap-per-mille N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	static const struct option lo[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"ca", required_argument, NULL, 'a'},
	    {"certs", required_argument, NULL, 'c'},
	    {"conns", required_argument, NULL, 'n'},
	    {"batches", required_argument, NULL, 'b'},
	    {"batch", required_argument, NULL, 'r'},
	    {"hold", required_argument, NULL, 'H'},
	    {"server-pid", required_argument, NULL, 's'},
	    {"ceiling-dir", required_argument, NULL, 'D'},
	    {"gen-threads", required_argument, NULL, 'g'},
	    {"flap-per-mille", required_argument, NULL, 'f'},
	    {"ceiling-pg", required_argument, NULL, 'P'},
	    {"ceiling-streams", required_argument, NULL, 'S'},
	    {"acked-out", required_argument, NULL, 'o'},
	    {NULL, 0, NULL, 0},
	};
	int o;
	optind = 2;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'h':
			opt.host = optarg;
			break;
		case 'p': {
			long v[MAX_SERVERS];
			if ((opt.nports = parse_list(optarg, v, MAX_SERVERS)) < 1)
				usage();
			for (int i = 0; i < opt.nports; i++)
				opt.ports[i] = (int)v[i];
			opt.port = opt.ports[0];
			break;
		}
		case 'a':
			opt.ca = optarg;
			break;
		case 'c':
			opt.certs = optarg;
			break;
		case 'n':
			opt.conns = atoi(optarg);
			break;
		case 'b':
			opt.batches = atoi(optarg);
			break;
		case 'r':
			opt.batch = atoi(optarg);
			break;
		case 'H':
			opt.hold_s = atoi(optarg);
			break;
		case 's':
			if ((opt.npids = parse_list(optarg, opt.server_pids, MAX_SERVERS)) < 1)
				usage();
			opt.server_pid = opt.server_pids[0];
			break;
		case 'P':
			opt.ceiling_pg = optarg;
			break;
		case 'S':
			opt.ceiling_streams = atoi(optarg);
			if (opt.ceiling_streams < 1 || opt.ceiling_streams > 16)
				usage();
			break;
		case 'o':
			opt.acked_out = optarg;
			break;
		case 'D':
			opt.ceiling_dir = optarg;
			break;
		case 'g':
			opt.gen_threads = atoi(optarg);
			break;
		case 'f':
			opt.flap = atoi(optarg);
			if (opt.flap < 0 || opt.flap > 1000)
				usage();
			break;
		default:
			usage();
		}
	}
	int ingest = strcmp(mode, "ingest") == 0;
	if ((!ingest && strcmp(mode, "idle") != 0) || !opt.port || !opt.ca || !opt.certs ||
	    opt.batch < 1 || opt.batches < 1)
		usage();
	if (!opt.conns)
		opt.conns = ingest ? 1000 : 10000;
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");
	load_sites(ingest ? opt.conns : 100000);
	make_ctx();
	return ingest ? mode_ingest() : mode_idle();
}
