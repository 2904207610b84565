/* sse_bench: event delivery to many Server-Sent Events subscribers while ingest runs
 * (issue 16, docs/BENCHMARKS.md "Feed"). Used by sse_bench.sh.
 *
 *   sse_bench --port P --ca CA --tokens FILE --subs 1000 --probe-cert CRT --probe-key KEY
 *             --probe-site SITE [--rate 20] [--server-pid PID] [--max-seconds 600]
 *
 * FILE has one "SCOPE TOKEN" line per scope (province, or a city's name); subscriber i takes
 * line i % lines, so the subscribers spread across scopes as the file lists them. Each opens
 * GET /api/v1/events over its own TLS connection (blocking handshake, then non-blocking,
 * one epoll loop on this thread).
 *
 * A probe thread acts as one more agent (its client certificate): it posts a one-result
 * batch every 1/rate s over a keep-alive TLS connection and notes when each seq was sent
 * and when it was acknowledged. Every subscriber in the probe site's scope gets that batch's
 * "report" event (acked_seq = the seq): delivery latency = the time the event's bytes were
 * read here - the time the batch was sent (and - the time its ack came back: the part after
 * the commit). Same process, one monotonic clock, so no clock skew enters.
 *
 * The first subscriber of the file's first scope (list province first) also counts every
 * report event's results per second: the ingest rate the server committed, so the figures
 * can be split into the seconds with at least --min-rate results/s (default 50000).
 *
 * Runs until SIGINT/SIGTERM (or --max-seconds); then prints key=value lines: latencies
 * (all, and in the seconds at or above --min-rate), events received, subscribers lost,
 * server RSS (start, max, end from /proc/PID/status). Prints "ready subs=N" once every
 * subscriber is connected. Exits 1 when a subscriber was lost or no probe event arrived. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SEQ_MAX 200000  /* probe batches per run */
#define LAT_MAX 4000000 /* latency samples kept */
#define LINE_MAX_ 65536
#define SECONDS_MAX 4096

static struct {
	int port, subs, rate, max_seconds, min_rate;
	long server_pid;
	const char *ca, *tokens, *cert, *key, *site;
} opt = {0, 1000, 20, 600, 50000, 0, NULL, NULL, NULL, NULL, NULL};

static int64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static _Atomic int64_t sent_ns[SEQ_MAX], acked_ns[SEQ_MAX];
static int64_t t_start;

static int tcp_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("sse_bench: connect");
		exit(1);
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static SSL *tls_open(SSL_CTX *ctx, int fd)
{
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	if (SSL_connect(ssl) != 1) {
		ERR_print_errors_fp(stderr);
		fprintf(stderr, "sse_bench: TLS handshake failed\n");
		exit(1);
	}
	return ssl;
}

static void write_all(SSL *ssl, const char *p, size_t n)
{
	while (n) {
		int w = SSL_write(ssl, p, (int)n);
		if (w <= 0) {
			fprintf(stderr, "sse_bench: write failed\n");
			exit(1);
		}
		p += w;
		n -= (size_t)w;
	}
}

/* --- the probe agent --------------------------------------------------------------------- */

static void *probe_main(void *arg)
{
	(void)arg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) ||
	    SSL_CTX_use_certificate_file(ctx, opt.cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, opt.key, SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		exit(1);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL *ssl = tls_open(ctx, tcp_connect());
	char body[1024], req[2048], in[8192];
	int64_t period = 1000000000 / opt.rate, next = mono_ns();
	for (int64_t seq = 1; seq < SEQ_MAX && !stop; seq++) {
		while (mono_ns() < next && !stop) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
		next += period;
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		int bl =
		    snprintf(body, sizeof(body),
		             "{\"site\":\"%s\",\"agent\":\"%s\",\"results\":[{\"seq\":%lld,"
		             "\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.000Z\",\"mono_ms\":%lld,"
		             "\"kind\":\"stream\",\"target\":\"cam-1\",\"status\":\"ok\","
		             "\"codec\":\"h264\",\"faults\":[],\"metrics\":{\"fps\":25}}]}",
		             opt.site, opt.site, (long long)seq, tm.tm_year + 1900, tm.tm_mon + 1,
		             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)seq);
		int rl = snprintf(req, sizeof(req),
		                  "POST /api/v1/ingest HTTP/1.1\r\nHost: localhost\r\n"
		                  "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		                  bl, body);
		atomic_store(&sent_ns[seq], mono_ns());
		write_all(ssl, req, (size_t)rl);
		/* the answer: head + {"acked_seq":N}; read until the body is in */
		size_t n = 0;
		for (;;) {
			int r = SSL_read(ssl, in + n, (int)(sizeof(in) - 1 - n));
			if (r <= 0) {
				fprintf(stderr, "sse_bench: probe connection lost\n");
				exit(1);
			}
			n += (size_t)r;
			in[n] = '\0';
			char *h = strstr(in, "\r\n\r\n");
			char *cl = strcasestr(in, "Content-Length:");
			if (h && cl && n >= (size_t)(h + 4 - in) + (size_t)atol(cl + 15))
				break;
		}
		if (strncmp(in, "HTTP/1.1 200", 12) != 0) {
			fprintf(stderr, "sse_bench: probe batch refused: %.200s\n", in);
			exit(1);
		}
		atomic_store(&acked_ns[seq], mono_ns());
	}
	int fd = SSL_get_fd(ssl);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	return NULL;
}

/* --- subscribers -------------------------------------------------------------------------- */

struct sub {
	SSL *ssl;
	int fd, alive, counts; /* counts: this one tallies the ingest rate */
	size_t len;
	char buf[LINE_MAX_];
	char event[32];
	int64_t events;
};

static int64_t *lat_send, *lat_ack; /* ns */
static int64_t *lat_sec;
static size_t nlat;
static int64_t results_in_sec[SECONDS_MAX];
static int64_t events_total, events_probe, subs_lost;

static int64_t json_int(const char *data, const char *key)
{
	const char *p = strstr(data, key);
	return p ? atoll(p + strlen(key)) : -1;
}

static void on_event(struct sub *s, const char *data, int64_t now)
{
	s->events++;
	events_total++;
	if (strcmp(s->event, "report") != 0)
		return;
	int64_t sec = (now - t_start) / 1000000000;
	if (s->counts && sec >= 0 && sec < SECONDS_MAX) {
		int64_t ok = json_int(data, "\"ok\":"), dg = json_int(data, "\"degraded\":"),
		        dn = json_int(data, "\"down\":");
		if (ok >= 0 && dg >= 0 && dn >= 0)
			results_in_sec[sec] += ok + dg + dn;
	}
	char want[96];
	snprintf(want, sizeof(want), "\"site\":\"%s\"", opt.site);
	if (!strstr(data, want))
		return;
	int64_t seq = json_int(data, "\"acked_seq\":");
	if (seq <= 0 || seq >= SEQ_MAX || nlat >= LAT_MAX)
		return;
	int64_t sent = atomic_load(&sent_ns[seq]), acked = atomic_load(&acked_ns[seq]);
	if (!sent)
		return;
	events_probe++;
	lat_send[nlat] = now - sent;
	/* the ack may still be on its way to the probe thread: then the event came first */
	lat_ack[nlat] = acked ? now - acked : 0;
	lat_sec[nlat] = sec;
	nlat++;
}

/* Splits what arrived into SSE lines; a blank line ends an event. */
static void parse(struct sub *s, int64_t now)
{
	char *p = s->buf, *end = s->buf + s->len, *nl;
	static char data[LINE_MAX_];
	while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
		*nl = '\0';
		if (p == nl) {
			if (s->event[0])
				on_event(s, data, now);
			s->event[0] = '\0';
			data[0] = '\0';
		} else if (strncmp(p, "event: ", 7) == 0) {
			snprintf(s->event, sizeof(s->event), "%s", p + 7);
		} else if (strncmp(p, "data: ", 6) == 0) {
			snprintf(data, sizeof(data), "%s", p + 6);
		}
		p = nl + 1;
	}
	s->len = (size_t)(end - p);
	memmove(s->buf, p, s->len);
}

static void sub_read(struct sub *s)
{
	for (;;) {
		if (s->len >= sizeof(s->buf) - 1)
			s->len = 0; /* a line longer than any event: drop it */
		int r = SSL_read(s->ssl, s->buf + s->len, (int)(sizeof(s->buf) - 1 - s->len));
		if (r > 0) {
			s->len += (size_t)r;
			parse(s, mono_ns());
			continue;
		}
		int e = SSL_get_error(s->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return;
		if (subs_lost < 5) {
			char why[256] = "";
			ERR_error_string_n(ERR_peek_last_error(), why, sizeof(why));
			fprintf(stderr, "sse_bench: stream lost: r=%d ssl_error=%d errno=%d %s\n",
			        r, e, errno, why);
		}
		ERR_clear_error();
		s->alive = 0;
		subs_lost++;
		close(s->fd);
		return;
	}
}

static void sub_open(struct sub *s, SSL_CTX *ctx, const char *token)
{
	s->fd = tcp_connect();
	s->ssl = tls_open(ctx, s->fd);
	char req[512];
	int n = snprintf(req, sizeof(req),
	                 "GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n"
	                 "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
	                 token);
	write_all(s->ssl, req, (size_t)n);
	/* the head, blocking: 200 and the event-stream type */
	for (;;) {
		int r = SSL_read(s->ssl, s->buf + s->len, (int)(sizeof(s->buf) - 1 - s->len));
		if (r <= 0) {
			fprintf(stderr, "sse_bench: subscription refused (connection closed)\n");
			exit(1);
		}
		s->len += (size_t)r;
		s->buf[s->len] = '\0';
		char *h = strstr(s->buf, "\r\n\r\n");
		if (!h)
			continue;
		if (strncmp(s->buf, "HTTP/1.1 200", 12) != 0 ||
		    !strcasestr(s->buf, "text/event-stream")) {
			fprintf(stderr, "sse_bench: subscription refused: %.200s\n", s->buf);
			exit(1);
		}
		size_t rest = s->len - (size_t)(h + 4 - s->buf);
		memmove(s->buf, h + 4, rest);
		s->len = rest;
		break;
	}
	fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
	s->alive = 1;
}

static double rss_mib(void)
{
	if (!opt.server_pid)
		return 0;
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%ld/status", opt.server_pid);
	FILE *f = fopen(path, "r");
	double v = 0;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			v = atof(line + 6) / 1024;
	if (f)
		fclose(f);
	return v;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void print_lat(const char *what, int64_t *v, size_t n)
{
	if (!n) {
		printf("%s samples=0\n", what);
		return;
	}
	qsort(v, n, sizeof(*v), cmp64);
	printf("%s samples=%zu p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", what, n,
	       (double)v[n / 2] / 1e6, (double)v[(size_t)((double)(n - 1) * 0.99)] / 1e6,
	       (double)v[n - 1] / 1e6);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"port", 1, 0, 'p'},        {"ca", 1, 0, 'a'},         {"tokens", 1, 0, 't'},
	    {"subs", 1, 0, 's'},        {"probe-cert", 1, 0, 'c'}, {"probe-key", 1, 0, 'k'},
	    {"probe-site", 1, 0, 'S'},  {"rate", 1, 0, 'r'},       {"server-pid", 1, 0, 'P'},
	    {"max-seconds", 1, 0, 'm'}, {"min-rate", 1, 0, 'M'},   {0, 0, 0, 0}};
	for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
		switch (c) {
		case 'p':
			opt.port = atoi(optarg);
			break;
		case 'a':
			opt.ca = optarg;
			break;
		case 't':
			opt.tokens = optarg;
			break;
		case 's':
			opt.subs = atoi(optarg);
			break;
		case 'c':
			opt.cert = optarg;
			break;
		case 'k':
			opt.key = optarg;
			break;
		case 'S':
			opt.site = optarg;
			break;
		case 'r':
			opt.rate = atoi(optarg);
			break;
		case 'P':
			opt.server_pid = atol(optarg);
			break;
		case 'm':
			opt.max_seconds = atoi(optarg);
			break;
		case 'M':
			opt.min_rate = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (!opt.port || !opt.ca || !opt.tokens || !opt.cert || !opt.key || !opt.site ||
	    opt.subs < 1 || opt.rate < 1) {
		fprintf(stderr, "usage: see the comment at the top of tests/bench/sse_bench.c\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	char(*tok)[128] = calloc(64, sizeof(*tok));
	int ntok = 0;
	FILE *tf = fopen(opt.tokens, "r");
	char line[512], scope[128];
	while (tf && ntok < 64 && fgets(line, sizeof(line), tf))
		if (sscanf(line, "%127s %127s", scope, tok[ntok]) == 2)
			ntok++;
	if (!ntok) {
		fprintf(stderr, "sse_bench: no tokens in %s\n", opt.tokens);
		return 2;
	}
	lat_send = calloc(LAT_MAX, sizeof(*lat_send));
	lat_ack = calloc(LAT_MAX, sizeof(*lat_ack));
	lat_sec = calloc(LAT_MAX, sizeof(*lat_sec));
	struct sub *subs = calloc((size_t)opt.subs, sizeof(*subs));
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_load_verify_locations(ctx, opt.ca, NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	double rss_start = rss_mib();
	int ep = epoll_create1(0);
	for (int i = 0; i < opt.subs; i++) {
		sub_open(&subs[i], ctx, tok[i % ntok]);
		subs[i].counts = i == 0;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &subs[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev);
	}
	double rss_subs = rss_mib(), rss_max = rss_subs;
	printf("ready subs=%d scopes=%d\n", opt.subs, ntok);
	fflush(stdout);
	t_start = mono_ns();
	pthread_t probe;
	pthread_create(&probe, NULL, probe_main, NULL);
	struct epoll_event evs[256];
	int64_t last_rss = t_start;
	while (!stop && mono_ns() - t_start < (int64_t)opt.max_seconds * 1000000000) {
		int n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			struct sub *s = evs[i].data.ptr;
			if (s->alive)
				sub_read(s);
			if (!s->alive)
				epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
		}
		if (mono_ns() - last_rss > 1000000000) {
			double r = rss_mib();
			if (r > rss_max)
				rss_max = r;
			last_rss = mono_ns();
		}
	}
	stop = 1;
	pthread_join(probe, NULL);
	int64_t secs = (mono_ns() - t_start) / 1000000000;
	/* the seconds at or above the ingest rate asked for */
	int64_t *hot_send = calloc(nlat + 1, sizeof(*hot_send));
	size_t nhot = 0;
	int hot_secs = 0;
	int64_t max_rate = 0, sum_hot = 0;
	for (int64_t s = 0; s <= secs && s < SECONDS_MAX; s++) {
		if (results_in_sec[s] > max_rate)
			max_rate = results_in_sec[s];
		if (results_in_sec[s] >= opt.min_rate)
			hot_secs++, sum_hot += results_in_sec[s];
	}
	for (size_t i = 0; i < nlat; i++)
		if (lat_sec[i] < SECONDS_MAX && results_in_sec[lat_sec[i]] >= opt.min_rate)
			hot_send[nhot++] = lat_send[i];
	int alive = 0;
	for (int i = 0; i < opt.subs; i++)
		alive += subs[i].alive;
	printf("run seconds=%lld subs=%d alive=%d lost=%lld events=%lld probe_events=%lld\n",
	       (long long)secs, opt.subs, alive, (long long)subs_lost, (long long)events_total,
	       (long long)events_probe);
	printf("ingest seconds_at_or_above_%d=%d mean_results_per_s_in_them=%.0f "
	       "max_results_per_s=%lld\n",
	       opt.min_rate, hot_secs, hot_secs ? (double)sum_hot / hot_secs : 0.0,
	       (long long)max_rate);
	print_lat("delivery_from_send_all", lat_send, nlat);
	print_lat("delivery_from_ack_all", lat_ack, nlat);
	print_lat("delivery_from_send_under_load", hot_send, nhot);
	printf("server_rss_mib start=%.1f with_subs=%.1f max=%.1f end=%.1f\n", rss_start, rss_subs,
	       rss_max, rss_mib());
	/* Everything freed, so the sanitizer build's leak check stays meaningful. */
	for (int i = 0; i < opt.subs; i++) {
		if (subs[i].alive)
			close(subs[i].fd);
		SSL_free(subs[i].ssl);
	}
	SSL_CTX_free(ctx);
	close(ep);
	free(subs);
	free(tok);
	free(hot_send);
	free(lat_send);
	free(lat_ack);
	free(lat_sec);
	if (tf)
		fclose(tf);
	/* A stream lost or no probe event seen is a failure, not a figure. */
	return alive < opt.subs || events_probe == 0 ? 1 : 0;
}
