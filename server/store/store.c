/* store: the backend-independent half of the store — batches, the writer thread's group
 * commit, the reader threads and their bounded request queue, and the one uv_async that
 * hands both kinds of completion back to the loop. The backend (store_ops) does the I/O.
 * The writer and the readers share one struct, one async and one shutdown sequence (the
 * writer commits, the readers answer, then the backend closes), which is why they live in
 * one file rather than a separate batch.c. */
#include "store.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store_backend.h"
#include "vtime.h"

/* Two readers: the API's reads are short indexed queries, and the machine this runs on has
 * two cores; more threads would only wait on each other. */
#define DEFAULT_READERS 2
#define MAX_READERS 16
/* In flight at once, queued or running: beyond this a reader is far behind and the client
 * does better to come back (503 + Retry-After) than to queue for seconds. */
#define DEFAULT_MAX_READS 64
/* With no batch coming, the rollup job still wakes this often to move open holds on: a
 * session under way shows its minutes within seconds, at the cost of one small indexed
 * query. */
#define DEFAULT_ROLLUP_TICK_MS 2000

static const struct store_ops *const backends[] = {&store_sqlite_ops, &store_postgresql_ops};
const char store_backend_names[] = "sqlite|postgresql";

/* --- replies ---------------------------------------------------------------------------- */

/* Offsets into the arena while it may still grow; pointers only once the read is done. */
struct fill_site {
	struct store_site s; /* string pointers unset */
	uint32_t site, org, city;
};
struct fill_target {
	uint32_t agent, kind, target, status, session, codec, faults, metrics;
	int64_t ts_ms, seq, thumb_ts_ms;
};

struct fill_session {
	uint32_t org, city, site, code, occupation, level, rooms;
	int64_t id, start_ms, end_ms, candidates, cancelled_ms, created_ms, updated_ms;
};
struct fill_exam {
	struct store_exam e; /* string pointers unset */
	uint32_t org, city, site, code, occupation, level, rooms;
};
struct fill_credit {
	struct store_credit c; /* target unset */
	uint32_t target;
};
struct fill_event {
	int64_t id, ts_ms;
	uint32_t type, site, org, city, data;
};
struct fill_note {                   /* issue 16 D */
	struct store_notification n; /* strings unset */
	uint32_t sink, event, site, org, city, state, last_error, data;
};

struct store_fill {
	struct vw_buf arena;
	struct fill_session *sessions; /* exam sessions (store_exam_list, store_exam_get) */
	size_t nsessions, cap_sessions;
	struct fill_site *sites;
	size_t nsites, cap_sites;
	struct fill_target *targets;
	size_t ntargets, cap_targets;
	struct fill_exam *exams;
	size_t nexams, cap_exams;
	struct fill_credit *credits;
	size_t ncredits, cap_credits;
	struct fill_event *events; /* issue 16 (A) */
	size_t nevents, cap_events;
	/* issue 16 C: store_thumbnail's picture (offset and bytes in the arena) */
	int has_thumb;
	uint32_t thumb, thumb_len, thumb_agent;
	int64_t thumb_ts_ms, thumb_seq;
	struct fill_note *notes; /* issue 16 D: store_notify_list */
	size_t nnotes, cap_notes;
};

enum read_op {
	RD_SITES,
	RD_SITE,
	RD_HIGH,
	RD_COUNT,
	RD_SCORE,
	RD_EVIDENCE,
	RD_EXAMS,
	RD_EXAM,
	RD_EXAM_VERSION,
	RD_SCORE_EXAM,
	RD_EVENTS,   /* issue 16 (A) */
	RD_PROBLEMS, /* issue 16 (A) */
	RD_THUMB,    /* issue 16 C */
	RD_NOTIFY,   /* issue 16 D */
	RD_HISTORY,  /* issue 16 E */
};

struct read_req {
	enum read_op op;
	char site[64], agent[64], epoch[33];
	char exq_org[65], exq_city[129]; /* RD_EXAMS: the query's strings, copied */
	struct store_exam_query exq;
	int64_t exam_ref;
	store_read_cb cb;
	void *ud;
	/* RD_SCORE: the query, its strings pointing at the copies below (NULL stays NULL). */
	struct store_score_query score;
	char org[65], city[129];
	/* RD_EVIDENCE */
	int64_t exam_id;
	int cls, has_target;
	char target[VW_NAME_MAX + 1];
	int64_t at_ms; /* RD_THUMB (issue 16 C), with site and target */
	/* RD_HISTORY: the query, its strings pointing at site, target and hkind. */
	struct store_history_query hist;
	char hkind[16];
	struct store_fill fill;
	struct store_site *sites; /* built from fill once the read is done */
	struct store_target *targets;
	struct store_exam_session *sessions;
	struct store_exam *exams;
	struct store_credit *credits;
	/* issue 16 (A): RD_EVENTS (evq), RD_PROBLEMS (probq); strings copied to org, city */
	struct store_events_query evq;
	struct store_problem_query probq;
	struct store_event *events;
	/* RD_NOTIFY: the query, its strings pointing into the copies */
	struct store_notify_query nq;
	char nq_state[16];
	struct store_notification *notes;
	struct store_reply reply;
	struct read_req *next;
};

static size_t fill_bytes(const struct store_fill *f)
{
	return f->arena.len +
	       f->cap_sites * (sizeof(struct fill_site) + sizeof(struct store_site)) +
	       f->cap_targets * (sizeof(struct fill_target) + sizeof(struct store_target)) +
	       f->cap_sessions * (sizeof(struct fill_session) + sizeof(struct store_exam_session)) +
	       f->cap_exams * (sizeof(struct fill_exam) + sizeof(struct store_exam)) +
	       f->cap_credits * (sizeof(struct fill_credit) + sizeof(struct store_credit)) +
	       f->cap_events * (sizeof(struct fill_event) + sizeof(struct store_event)) +
	       f->cap_notes * (sizeof(struct fill_note) + sizeof(struct store_notification));
}

static uint32_t fill_str(struct store_fill *f, const char *s)
{
	uint32_t off = (uint32_t)f->arena.len;
	vw_buf_append(&f->arena, s ? s : "", (s ? strlen(s) : 0) + 1);
	return off;
}

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 16;
	void *p = realloc(*arr, c * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

/* The end of every store_fill_*: the row counts once its strings are in and the reply is
 * still within STORE_REPLY_MAX. */
static int fill_commit(struct store_fill *f, size_t *n)
{
	if (f->arena.err)
		return f->arena.err;
	if (fill_bytes(f) > STORE_REPLY_MAX)
		return -E2BIG;
	(*n)++;
	return 0;
}

int store_fill_site(struct store_fill *f, const struct store_site *site)
{
	if (grow((void **)&f->sites, &f->cap_sites, f->nsites, sizeof(*f->sites)))
		return -ENOMEM;
	struct fill_site *o = &f->sites[f->nsites];
	o->s = *site;
	o->site = fill_str(f, site->site);
	o->org = fill_str(f, site->org);
	o->city = fill_str(f, site->city);
	return fill_commit(f, &f->nsites);
}

int store_fill_target(struct store_fill *f, const struct store_target *t)
{
	if (grow((void **)&f->targets, &f->cap_targets, f->ntargets, sizeof(*f->targets)))
		return -ENOMEM;
	struct fill_target *o = &f->targets[f->ntargets];
	o->agent = fill_str(f, t->agent);
	o->kind = fill_str(f, t->kind);
	o->target = fill_str(f, t->target);
	o->status = fill_str(f, t->status);
	o->session = fill_str(f, t->session);
	o->codec = fill_str(f, t->codec);
	o->faults = fill_str(f, t->faults);
	o->metrics = fill_str(f, t->metrics);
	o->ts_ms = t->ts_ms;
	o->seq = t->seq;
	o->thumb_ts_ms = t->thumb_ts_ms;
	return fill_commit(f, &f->ntargets);
}

int store_fill_thumb(struct store_fill *f, const void *jpeg, size_t len, const char *agent,
                     int64_t ts_ms, int64_t seq)
{
	if (len > UINT32_MAX)
		return -E2BIG;
	f->thumb_agent = fill_str(f, agent);
	f->thumb = (uint32_t)f->arena.len;
	vw_buf_append(&f->arena, jpeg, len);
	f->thumb_len = (uint32_t)len;
	f->thumb_ts_ms = ts_ms;
	f->thumb_seq = seq;
	if (f->arena.err)
		return f->arena.err;
	if (fill_bytes(f) > STORE_REPLY_MAX)
		return -E2BIG;
	f->has_thumb = 1;
	return 0;
}

int store_fill_exam_session(struct store_fill *f, const struct store_exam_session *e)
{
	if (grow((void **)&f->sessions, &f->cap_sessions, f->nsessions, sizeof(*f->sessions)))
		return -ENOMEM;
	struct fill_session *o = &f->sessions[f->nsessions];
	o->org = fill_str(f, e->org);
	o->city = fill_str(f, e->city);
	o->site = fill_str(f, e->site);
	o->code = fill_str(f, e->code);
	o->occupation = fill_str(f, e->occupation);
	o->level = fill_str(f, e->level);
	o->rooms = fill_str(f, e->rooms);
	o->id = e->id;
	o->start_ms = e->start_ms;
	o->end_ms = e->end_ms;
	o->candidates = e->candidates;
	o->cancelled_ms = e->cancelled_ms;
	o->created_ms = e->created_ms;
	o->updated_ms = e->updated_ms;
	return fill_commit(f, &f->nsessions);
}

int store_fill_exam(struct store_fill *f, const struct store_exam *e)
{
	if (grow((void **)&f->exams, &f->cap_exams, f->nexams, sizeof(*f->exams)))
		return -ENOMEM;
	struct fill_exam *o = &f->exams[f->nexams];
	o->e = *e;
	o->org = fill_str(f, e->org);
	o->city = fill_str(f, e->city);
	o->site = fill_str(f, e->site);
	o->code = fill_str(f, e->code);
	o->occupation = fill_str(f, e->occupation);
	o->level = fill_str(f, e->level);
	o->rooms = fill_str(f, e->rooms);
	return fill_commit(f, &f->nexams);
}

int store_fill_credit(struct store_fill *f, const struct store_credit *c)
{
	if (grow((void **)&f->credits, &f->cap_credits, f->ncredits, sizeof(*f->credits)))
		return -ENOMEM;
	struct fill_credit *o = &f->credits[f->ncredits];
	o->c = *c;
	o->target = fill_str(f, c->target);
	return fill_commit(f, &f->ncredits);
}

int store_fill_event(struct store_fill *f, const struct store_event *ev)
{
	if (grow((void **)&f->events, &f->cap_events, f->nevents, sizeof(*f->events)))
		return -ENOMEM;
	struct fill_event *o = &f->events[f->nevents];
	o->id = ev->id;
	o->ts_ms = ev->ts_ms;
	o->type = fill_str(f, ev->type);
	o->site = fill_str(f, ev->site);
	o->org = fill_str(f, ev->org);
	o->city = fill_str(f, ev->city);
	o->data = fill_str(f, ev->data);
	return fill_commit(f, &f->nevents);
}

int store_fill_notification(struct store_fill *f, const struct store_notification *n)
{
	if (grow((void **)&f->notes, &f->cap_notes, f->nnotes, sizeof(*f->notes)))
		return -ENOMEM;
	struct fill_note *o = &f->notes[f->nnotes];
	o->n = *n;
	o->sink = fill_str(f, n->sink);
	o->event = fill_str(f, n->event);
	o->site = fill_str(f, n->site);
	o->org = fill_str(f, n->org);
	o->city = fill_str(f, n->city);
	o->state = fill_str(f, n->state);
	o->last_error = fill_str(f, n->last_error);
	o->data = fill_str(f, n->data);
	return fill_commit(f, &f->nnotes);
}

static int reply_build_notes(struct read_req *q)
{
	struct store_fill *f = &q->fill;
	const char *a = f->arena.data;
	if (f->nnotes && !(q->notes = calloc(f->nnotes, sizeof(*q->notes))))
		return -ENOMEM;
	for (size_t i = 0; i < f->nnotes; i++) {
		const struct fill_note *o = &f->notes[i];
		q->notes[i] = o->n;
		q->notes[i].sink = a + o->sink;
		q->notes[i].event = a + o->event;
		q->notes[i].site = a + o->site;
		q->notes[i].org = a + o->org;
		q->notes[i].city = a + o->city;
		q->notes[i].state = a + o->state;
		q->notes[i].last_error = a + o->last_error;
		q->notes[i].data = a + o->data;
	}
	q->reply.notifications = q->notes;
	q->reply.nnotifications = f->nnotes;
	return 0;
}

/* Reader thread, after the read: the arena no longer moves, so pointers can be made. */
static int reply_build(struct read_req *q)
{
	struct store_fill *f = &q->fill;
	const char *a = f->arena.data;
	if (f->nsites && !(q->sites = calloc(f->nsites, sizeof(*q->sites))))
		return -ENOMEM;
	if (f->ntargets && !(q->targets = calloc(f->ntargets, sizeof(*q->targets))))
		return -ENOMEM;
	if (f->nexams && !(q->exams = calloc(f->nexams, sizeof(*q->exams))))
		return -ENOMEM;
	if (f->ncredits && !(q->credits = calloc(f->ncredits, sizeof(*q->credits))))
		return -ENOMEM;
	for (size_t i = 0; i < f->nexams; i++) {
		const struct fill_exam *o = &f->exams[i];
		q->exams[i] = o->e;
		q->exams[i].org = a + o->org;
		q->exams[i].city = a + o->city;
		q->exams[i].site = a + o->site;
		q->exams[i].code = a + o->code;
		q->exams[i].occupation = a + o->occupation;
		q->exams[i].level = a + o->level;
		q->exams[i].rooms = a + o->rooms;
	}
	for (size_t i = 0; i < f->ncredits; i++) {
		q->credits[i] = f->credits[i].c;
		q->credits[i].target = a + f->credits[i].target;
	}
	q->reply.exams = q->exams;
	q->reply.nexams = f->nexams;
	q->reply.credits = q->credits;
	q->reply.ncredits = f->ncredits;
	for (size_t i = 0; i < f->nsites; i++) {
		const struct fill_site *o = &f->sites[i];
		q->sites[i] = o->s;
		q->sites[i].site = a + o->site;
		q->sites[i].org = a + o->org;
		q->sites[i].city = a + o->city;
	}
	for (size_t i = 0; i < f->ntargets; i++) {
		const struct fill_target *o = &f->targets[i];
		q->targets[i] = (struct store_target){a + o->agent,  a + o->kind,    a + o->target,
		                                      a + o->status, a + o->session, a + o->codec,
		                                      a + o->faults, a + o->metrics, o->ts_ms,
		                                      o->seq,        o->thumb_ts_ms};
	}
	if (f->has_thumb) {
		q->reply.thumb = (const unsigned char *)a + f->thumb;
		q->reply.thumb_len = f->thumb_len;
		q->reply.thumb_agent = a + f->thumb_agent;
		q->reply.thumb_ts_ms = f->thumb_ts_ms;
		q->reply.thumb_seq = f->thumb_seq;
	}
	if (f->nsessions && !(q->sessions = calloc(f->nsessions, sizeof(*q->sessions))))
		return -ENOMEM;
	for (size_t i = 0; i < f->nsessions; i++) {
		const struct fill_session *o = &f->sessions[i];
		q->sessions[i] = (struct store_exam_session){
		    o->id,         a + o->org,        a + o->city,   a + o->site,
		    a + o->code,   a + o->occupation, a + o->level,  a + o->rooms,
		    o->start_ms,   o->end_ms,         o->candidates, o->cancelled_ms,
		    o->created_ms, o->updated_ms};
	}
	q->reply.exam_sessions = q->sessions;
	q->reply.nexam_sessions = f->nsessions;
	q->reply.sites = q->sites;
	q->reply.nsites = f->nsites;
	q->reply.targets = q->targets;
	q->reply.ntargets = f->ntargets;
	if (f->nevents && !(q->events = calloc(f->nevents, sizeof(*q->events))))
		return -ENOMEM;
	for (size_t i = 0; i < f->nevents; i++) {
		const struct fill_event *o = &f->events[i];
		q->events[i] =
		    (struct store_event){o->id,      o->ts_ms,    a + o->type, a + o->site,
		                         a + o->org, a + o->city, a + o->data};
	}
	q->reply.events = q->events;
	q->reply.nevents = f->nevents;
	return reply_build_notes(q);
}

static void read_free(struct read_req *q)
{
	vw_buf_free(&q->fill.arena);
	free(q->fill.sites);
	free(q->fill.targets);
	free(q->fill.sessions);
	free(q->sessions);
	free(q->fill.exams);
	free(q->fill.credits);
	free(q->sites);
	free(q->targets);
	free(q->exams);
	free(q->credits);
	free(q->fill.events);
	free(q->events);
	free(q->fill.notes);
	free(q->notes);
	free(q);
}

/* --- batches ---------------------------------------------------------------------------- */

struct store_batch *store_batch_create(void)
{
	struct store_batch *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	/* Offsets are 32-bit; offset 0 is the empty string. */
	vw_buf_init(&b->arena, (size_t)UINT32_MAX);
	if (vw_buf_append(&b->arena, "", 1)) {
		free(b);
		return NULL;
	}
	return b;
}

void store_batch_destroy(struct store_batch *b)
{
	if (!b)
		return;
	store_events_clear(&b->events);
	vw_buf_free(&b->arena);
	free(b->rows);
	free(b);
}

static uint32_t put_str(struct store_batch *b, const char *s)
{
	if (!s[0])
		return 0;
	uint32_t off = (uint32_t)b->arena.len;
	vw_buf_append(&b->arena, s, strlen(s) + 1);
	return off;
}

int store_batch_add(struct store_batch *b, const struct vw_result *r)
{
	if (b->nrows == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct store_row *rows = realloc(b->rows, cap * sizeof(*rows));
		if (!rows)
			return -ENOMEM;
		b->rows = rows;
		b->cap = cap;
	}
	struct store_row *row = &b->rows[b->nrows];
	row->seq = r->seq;
	row->ts_ms = r->ts_ms;
	row->mono_ms = r->mono_ms;
	row->kind = (uint8_t)r->kind;
	row->status = (uint8_t)r->status;
	row->target = put_str(b, r->target);
	row->session = put_str(b, r->session);
	row->codec = put_str(b, r->codec);
	/* The cadence, from the decoded result (no JSON): a non-finite value is no cadence, and
	 * SQLite would store NaN as NULL. */
	double interval = 0;
	if (!vw_result_get_metric(r, vw_metric_name(VW_M_INTERVAL_MS), &interval) ||
	    !isfinite(interval))
		interval = 0;
	row->interval_ms = interval;
	row->faults = (uint32_t)b->arena.len;
	vw_result_encode_faults(r, &b->arena);
	vw_buf_append(&b->arena, "", 1);
	row->metrics = (uint32_t)b->arena.len;
	vw_result_encode_metrics(r, &b->arena);
	vw_buf_append(&b->arena, "", 1);
	row->thumb = row->thumb_len = 0;
	if (r->thumb && r->thumb_len && r->thumb_len <= UINT32_MAX) {
		row->thumb = (uint32_t)b->arena.len;
		row->thumb_len = (uint32_t)r->thumb_len;
		vw_buf_append(&b->arena, r->thumb, r->thumb_len);
	}
	if (b->arena.err)
		return b->arena.err;
	b->nrows++;
	return 0;
}

static int row_cmp(const void *a, const void *b)
{
	int64_t x = ((const struct store_row *)a)->seq, y = ((const struct store_row *)b)->seq;
	return (x > y) - (x < y);
}

void store_batch_sort(struct store_batch *b)
{
	if (b->nrows > 1)
		qsort(b->rows, b->nrows, sizeof(*b->rows), row_cmp);
}

const char *store_batch_str(const struct store_batch *b, uint32_t off)
{
	return b->arena.data + off;
}

/* --- the store -------------------------------------------------------------------------- */

struct reader {
	struct store *s;
	void *conn; /* the backend's read connection, this thread's only */
	uv_thread_t thread;
	int running;
};

struct store {
	const struct store_ops *ops;
	void *be;
	struct reader readers[MAX_READERS];
	unsigned nreaders;
	size_t max_reads;
	size_t reads_inflight; /* loop thread: submitted, callback not yet run */
	int64_t rollup_tick_ms;

	uv_loop_t *loop;
	uv_async_t async;
	uv_thread_t thread;
	int started, writer_running;
	/* A failed store_start closed the async handle: the memory may go only once the loop
	 * has run its close callback, whoever calls store_close first. */
	int async_closing, close_wanted;

	uv_mutex_t mu;                       /* guards everything below */
	uv_cond_t cond;                      /* the writer waits on it */
	uv_cond_t rcond;                     /* the readers wait on it */
	struct store_batch *q_head, *q_tail; /* waiting for the writer */
	size_t queued, queue_max;
	struct store_batch *d_head, *d_tail;   /* committed, waiting for the loop */
	struct store_write *w_head, *w_tail;   /* waiting for the writer, between commits */
	struct store_write *wd_head, *wd_tail; /* applied, waiting for the loop */
	size_t writes_queued;
	struct read_req *rq_head, *rq_tail; /* waiting for a reader */
	struct read_req *rd_head, *rd_tail; /* answered, waiting for the loop */
	int stopping;
	struct store_stats stats;
	/* issue 16 (A): every stored event goes to event_cb in id order (loop thread); the
	 * writer numbers each group commit and each write (commit_seq, writer thread only),
	 * and deliver() hands batches and writes back in that order. */
	store_event_fn event_cb;
	void *event_ud;
	uint64_t commit_seq;
	/* issue 13: a store several collectors write (ops->shared): event_cb gets every
	 * collector's events, read back by id from the store (follow_read), never this one's
	 * straight from its commits, so that the order stays the store's id order. */
	uv_timer_t follow_timer;
	int follow_on, following, follow_known, follow_failed, handles_open;
	int64_t follow_after; /* the last id handed to event_cb */
};

static void free_store(struct store *s)
{
	/* Readers first: see sqlite.c sq_close. */
	for (unsigned i = 0; i < s->nreaders; i++)
		s->ops->reader_close(s->readers[i].conn);
	s->ops->close(s->be);
	uv_mutex_destroy(&s->mu);
	uv_cond_destroy(&s->cond);
	uv_cond_destroy(&s->rcond);
	free(s);
}

int store_open(const struct store_options *o, struct store **out, char *err, size_t errlen)
{
	const char *name = o->backend && o->backend[0] ? o->backend : "sqlite";
	const struct store_ops *ops = NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, name) == 0)
			ops = backends[i];
	if (!ops) {
		snprintf(err, errlen, "store backend '%s' unknown (this build has: %s)", name,
		         store_backend_names);
		return -EINVAL;
	}
	unsigned nreaders = o->readers ? o->readers : DEFAULT_READERS;
	if (nreaders > MAX_READERS) {
		snprintf(err, errlen, "store: %u readers asked, at most %d", nreaders, MAX_READERS);
		return -EINVAL;
	}
	struct store *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (uv_mutex_init(&s->mu)) {
		free(s);
		snprintf(err, errlen, "mutex init failed");
		return -ENOMEM;
	}
	uv_cond_init(&s->cond);
	uv_cond_init(&s->rcond);
	s->ops = ops;
	s->max_reads = o->max_reads ? o->max_reads : DEFAULT_MAX_READS;
	s->rollup_tick_ms = o->rollup_tick_ms < 0   ? -1
	                    : o->rollup_tick_ms > 0 ? o->rollup_tick_ms
	                                            : DEFAULT_ROLLUP_TICK_MS;
	int rc = ops->open(o, &s->be, err, errlen);
	if (rc) {
		s->be = NULL;
		goto fail;
	}
	/* Read connections open here, on the caller's thread, so that a store that cannot
	 * be read fails at start-up with its reason rather than on the first request. */
	for (; s->nreaders < nreaders; s->nreaders++) {
		struct reader *r = &s->readers[s->nreaders];
		r->s = s;
		if ((rc = ops->reader_open(s->be, &r->conn, err, errlen)) != 0)
			goto fail;
	}
	*out = s;
	return 0;
fail:
	free_store(s);
	return rc;
}

/* --- writer thread ---------------------------------------------------------------------- */

static void commit_group(struct store *s, struct store_batch *list, uint64_t *rows,
                         uint64_t *skipped, uint64_t *gaps)
{
	int64_t t0 = vw_mono_ms();
	size_t nb = 0;
	for (struct store_batch *b = list; b; b = b->next)
		b->gap_seqs = 0;
	int rc = s->ops->commit(s->be, list);
	*rows = *skipped = *gaps = 0;
	for (struct store_batch *b = list; b; b = b->next) {
		nb++;
		if (b->status)
			continue;
		*rows += b->stored;
		*skipped += b->nrows - b->stored;
		*gaps += b->gap_seqs;
	}
	log_debug("event=store_commit batches=%zu rows=%llu skipped=%llu ms=%lld status=%d", nb,
	          (unsigned long long)*rows, (unsigned long long)*skipped,
	          (long long)(vw_mono_ms() - t0), rc);
}

/* Seconds: a group commit on an idle SSD takes about a millisecond (fsync), a loaded one
 * behind a slow disk hundreds. */
const double store_commit_bounds[STORE_COMMIT_BOUNDS] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                                         0.05,  0.1,    0.25,  0.5,  1};

static void count_commit(struct store *s, struct store_batch *list, uint64_t rows, uint64_t skipped,
                         uint64_t gaps)
{
	size_t nb = 0;
	for (struct store_batch *b = list; b; b = b->next)
		nb++;
	s->stats.commits++;
	s->stats.batches += nb;
	s->stats.rows_stored += rows;
	s->stats.rows_skipped += skipped;
	s->stats.gap_seqs += gaps;
}

/* Writer thread, s->mu held (released while the backend works): the queued write requests,
 * each its own transaction. They run between group commits, so a person's write waits
 * for at most one group and never splits one. */
static void run_writes(struct store *s)
{
	struct store_write *list = s->w_head, *tail = s->w_tail;
	s->w_head = s->w_tail = NULL;
	s->writes_queued = 0;
	uv_mutex_unlock(&s->mu);
	/* issue 16 C: the queued thumbnail accesses all in one transaction (each answered
	 * with that commit's outcome), so pictures opened at once cost one commit. */
	int folded = 0;
	for (struct store_write *w = list; w && s->ops->thumb_access && !folded; w = w->next)
		folded = w->op == STORE_THUMB_ACCESS;
	if (folded)
		s->ops->thumb_access(s->be, list);
	for (struct store_write *w = list; w; w = w->next) {
		if (!folded || w->op != STORE_THUMB_ACCESS)
			s->ops->write(s->be, w);
		w->commit_no = ++s->commit_seq;
		if (w->op == STORE_FEED_TICK && !w->status && w->feed.at_ms > 0) {
			uv_mutex_lock(&s->mu);
			s->stats.feed = w->feed;
			uv_mutex_unlock(&s->mu);
		}
		if (w->status)
			store_events_clear(&w->events); /* rolled back: never published */
	}
	uv_mutex_lock(&s->mu);
	if (s->wd_tail)
		s->wd_tail->next = list;
	else
		s->wd_head = list;
	s->wd_tail = tail;
	uv_mutex_unlock(&s->mu);
	uv_async_send(&s->async);
	uv_mutex_lock(&s->mu);
}

/* The calling thread's CPU time: what the writer spends on commits and on the rollup job,
 * apart, so the job's share of ingest CPU is measured on the real server (issue 11). */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Writer thread, lock not held: one slice of the rollup job. Slices are small (see
 * sqlite.c), so a batch that queues meanwhile waits for one slice at most. */
static int rollup_slice(struct store *s)
{
	struct store_stats st = {0};
	uint64_t c0 = thread_cpu_ns();
	int rc = s->ops->rollup(s->be, vw_now_ms(), &st);
	uint64_t cpu = thread_cpu_ns() - c0;
	uv_mutex_lock(&s->mu);
	s->stats.rows_rolled += st.rows_rolled;
	s->stats.rows_pruned += st.rows_pruned;
	s->stats.rollup_slices += st.rollup_slices;
	s->stats.rollup_flushes += st.rollup_flushes;
	s->stats.rollup_cpu_ns += cpu;
	uv_mutex_unlock(&s->mu);
	return rc;
}

static void writer_main(void *arg)
{
	struct store *s = arg;
	int job = s->ops->rollup && s->rollup_tick_ms > 0;
	int more = job; /* the job may be behind at start (a migrated or restarted store) */
	uint64_t tick_ns = job ? (uint64_t)s->rollup_tick_ms * 1000000u : 0, next_job = 0;
	uv_mutex_lock(&s->mu);
	for (;;) {
		/* Batches first; the job runs between group commits, at once while it is behind
		 * and otherwise every tick. People's write requests (store_write_submit) go
		 * before either: each is one short transaction. The tick is a deadline, not a
		 * wait: the feed's own write every second must not push the job back each time
		 * (it did, and an idle collector's job then never ran). */
		if (!s->q_head && !s->w_head && !s->stopping && !more) {
			uint64_t now = uv_hrtime();
			if (!job)
				uv_cond_wait(&s->cond, &s->mu);
			else if (now < next_job)
				uv_cond_timedwait(&s->cond, &s->mu, next_job - now);
		}
		if (s->w_head) {
			run_writes(s);
			continue; /* then the batches, the job, or stop */
		}
		if (!s->q_head && s->stopping)
			break; /* stopping, and nothing left to commit */
		struct store_batch *list = s->q_head, *tail = s->q_tail;
		s->q_head = s->q_tail = NULL;
		s->queued = 0;
		uv_mutex_unlock(&s->mu);

		if (list) {
			uint64_t rows, skipped, gaps, c0 = thread_cpu_ns(), w0 = uv_hrtime();
			commit_group(s, list, &rows, &skipped, &gaps);
			double wall = (double)(uv_hrtime() - w0) / 1e9;
			uint64_t no = ++s->commit_seq;
			for (struct store_batch *b = list; b; b = b->next) {
				b->commit_no = no;
				if (b->status)
					store_events_clear(&b->events);
			}
			uint64_t cpu = thread_cpu_ns() - c0;
			uv_mutex_lock(&s->mu);
			s->stats.commit_cpu_ns += cpu;
			vw_prom_hist_observe(&s->stats.commit_seconds, store_commit_bounds,
			                     STORE_COMMIT_BOUNDS, wall);
			if (s->d_tail)
				s->d_tail->next = list;
			else
				s->d_head = list;
			s->d_tail = tail;
			count_commit(s, list, rows, skipped, gaps);
			uv_mutex_unlock(&s->mu);
			uv_async_send(&s->async);
		}
		/* A failed slice (-EBUSY, -EIO) is retried at the next tick, not in a spin. */
		if (job && (list || more || uv_hrtime() >= next_job)) {
			more = rollup_slice(s) > 0;
			next_job = uv_hrtime() + tick_ns;
		}
		uv_mutex_lock(&s->mu);
	}
	uv_mutex_unlock(&s->mu);
}

/* --- reader threads --------------------------------------------------------------------- */

static void run_read(struct reader *r, struct read_req *q)
{
	const struct store_ops *ops = r->s->ops;
	int rc;
	switch (q->op) {
	case RD_SITES:
		rc = ops->list_sites(r->conn, &q->fill);
		break;
	case RD_SITE:
		rc = ops->get_site(r->conn, q->site, &q->fill);
		break;
	case RD_HIGH:
		rc = ops->high_seq(r->conn, q->site, q->agent, q->epoch, &q->reply.value);
		break;
	case RD_EXAMS:
		rc = ops->exam_list(r->conn, &q->exq, &q->fill);
		break;
	case RD_EXAM:
		rc = ops->exam_get(r->conn, q->exam_ref, &q->fill);
		break;
	case RD_EXAM_VERSION:
		rc = ops->exam_version(r->conn, q->site, &q->reply.value);
		break;
	case RD_SCORE:
		rc = ops->score_inputs(r->conn, &q->score, &q->fill);
		break;
	case RD_EVIDENCE:
		rc = ops->score_evidence(r->conn, q->exam_id, q->cls,
		                         q->has_target ? q->target : NULL, &q->fill,
		                         &q->reply.value);
		break;
	case RD_SCORE_EXAM:
		rc = ops->score_exam(r->conn, q->exam_id, &q->fill);
		break;
	case RD_HISTORY:
		rc = ops->site_history(r->conn, &q->hist, &q->fill, &q->reply.next_ts_ms,
		                       &q->reply.next_id);
		break;
	case RD_EVENTS:
		rc = ops->events_after(r->conn, &q->evq, &q->fill, &q->reply.events_pruned_id,
		                       &q->reply.events_last_id);
		break;
	case RD_PROBLEMS:
		rc = ops->problems_list(r->conn, &q->probq, vw_now_ms(), &q->fill);
		break;
	case RD_THUMB:
		rc = ops->thumbnail(r->conn, q->site, q->target, q->at_ms, &q->fill);
		break;
	case RD_NOTIFY:
		rc = ops->notify_list(r->conn, &q->nq, &q->fill, &q->reply.value);
		break;
	default:
		rc = ops->count_results(r->conn, &q->reply.value);
		break;
	}
	if (!rc)
		rc = reply_build(q);
	q->reply.status = rc;
}

static void reader_main(void *arg)
{
	struct reader *r = arg;
	struct store *s = r->s;
	uv_mutex_lock(&s->mu);
	for (;;) {
		/* Queued reads are answered even while stopping: their callers wait for them. */
		while (!s->rq_head && !s->stopping)
			uv_cond_wait(&s->rcond, &s->mu);
		struct read_req *q = s->rq_head;
		if (!q)
			break;
		s->rq_head = q->next;
		if (!s->rq_head)
			s->rq_tail = NULL;
		uv_mutex_unlock(&s->mu);

		q->next = NULL;
		run_read(r, q);

		uv_mutex_lock(&s->mu);
		if (s->rd_tail)
			s->rd_tail->next = q;
		else
			s->rd_head = q;
		s->rd_tail = q;
		s->stats.reads++;
		uv_mutex_unlock(&s->mu);
		uv_async_send(&s->async);
		uv_mutex_lock(&s->mu);
	}
	uv_mutex_unlock(&s->mu);
}

/* --- the loop side ---------------------------------------------------------------------- */

static void follow_read(struct store *s);

static void publish_events(struct store *s, const struct store_events *e)
{
	if (s->follow_on && e->n) {
		/* Our own, straight away, when nothing of another collector's lies between them
		 * and what event_cb last got (ids are contiguous: a rolled-back id is reused);
		 * else read the store from there, ours included, to keep the id order. */
		int64_t first = e->v[0].id, last = e->v[e->n - 1].id;
		if (s->follow_known && first != s->follow_after + 1) {
			follow_read(s);
			return;
		}
		if (s->follow_known && last <= s->follow_after)
			return; /* a follow read delivered them already */
		s->follow_after = last;
		s->follow_known = 1;
	}
	if (s->event_cb)
		for (size_t i = 0; i < e->n; i++)
			s->event_cb(s->event_ud, &e->v[i]);
}

void store_set_event_cb(struct store *s, store_event_fn fn, void *ud)
{
	s->event_cb = fn;
	s->event_ud = ud;
}

/* One malloc per event: the struct's strings follow it. */
int store_events_add(struct store_events *e, const struct store_event *ev)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 8;
		struct store_event *v = realloc(e->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		e->v = v;
		e->cap = cap;
	}
	const char *src[5] = {ev->type, ev->site, ev->org, ev->city, ev->data};
	size_t len[5], total = 0;
	for (int i = 0; i < 5; i++)
		total += (len[i] = strlen(src[i] ? src[i] : "")) + 1;
	char *p = malloc(total);
	if (!p)
		return -ENOMEM;
	const char *dst[5];
	for (int i = 0; i < 5; i++) {
		memcpy(p, src[i] ? src[i] : "", len[i] + 1);
		dst[i] = p;
		p += len[i] + 1;
	}
	e->v[e->n++] =
	    (struct store_event){ev->id, ev->ts_ms, dst[0], dst[1], dst[2], dst[3], dst[4]};
	return 0;
}

void store_events_clear(struct store_events *e)
{
	for (size_t i = 0; i < e->n; i++)
		free((char *)e->v[i].type); /* the block's start */
	free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
}

/* Loop thread: committed batches in commit order, then answered reads; the reply memory
 * goes as soon as its callback returns. */
static void deliver(struct store *s)
{
	uv_mutex_lock(&s->mu);
	struct store_batch *b = s->d_head;
	struct read_req *q = s->rd_head;
	struct store_write *w = s->wd_head;
	s->wd_head = s->wd_tail = NULL;
	s->d_head = s->d_tail = NULL;
	s->rd_head = s->rd_tail = NULL;
	uv_mutex_unlock(&s->mu);
	/* Batches and writes in the order the writer committed them, so that their events
	 * reach event_cb in id order. */
	while (b || w) {
		if (b && (!w || b->commit_no <= w->commit_no)) {
			struct store_batch *next = b->next;
			b->next = NULL;
			publish_events(s, &b->events);
			b->done(b); /* may free b */
			b = next;
		} else {
			struct store_write *next = w->next;
			w->next = NULL;
			publish_events(s, &w->events);
			w->done(w); /* may free w */
			w = next;
		}
	}
	while (q) {
		struct read_req *next = q->next;
		s->reads_inflight--;
		q->cb(q->ud, &q->reply);
		read_free(q);
		q = next;
	}
}

static void on_async(uv_async_t *a)
{
	deliver(a->data);
}

/* Stops and joins whatever threads are running; they finish their queues first. */
static void stop_threads(struct store *s)
{
	uv_mutex_lock(&s->mu);
	s->stopping = 1;
	uv_cond_signal(&s->cond);
	uv_cond_broadcast(&s->rcond);
	uv_mutex_unlock(&s->mu);
	if (s->writer_running)
		uv_thread_join(&s->thread); /* the writer commits what is queued before it exits */
	s->writer_running = 0;
	for (unsigned i = 0; i < s->nreaders; i++) {
		if (s->readers[i].running)
			uv_thread_join(&s->readers[i].thread);
		s->readers[i].running = 0;
	}
}

static void on_start_failed_closed(uv_handle_t *h)
{
	struct store *s = h->data;
	s->async_closing = 0;
	if (s->close_wanted)
		free_store(s);
}

/* issue 13: the follow mode of a shared store (below). */
/* Enough for a second of a province's status changes per read; a full page reads on. */
#define FOLLOW_PAGE 256
/* How often the events table is read when nothing of ours was committed: a problem
 * ingested by another collector reaches this one's streams and notifier that much later. */
#define FOLLOW_MS 500
static void on_follow_timer(uv_timer_t *t);

int store_start(struct store *s, uv_loop_t *loop, size_t queue_max)
{
	s->loop = loop;
	s->queue_max = queue_max;
	int rc = uv_async_init(loop, &s->async, on_async);
	if (rc)
		return rc;
	s->async.data = s;
	if ((rc = uv_thread_create(&s->thread, writer_main, s)) != 0)
		goto fail;
	s->writer_running = 1;
	for (unsigned i = 0; i < s->nreaders; i++) {
		if ((rc = uv_thread_create(&s->readers[i].thread, reader_main, &s->readers[i])) !=
		    0)
			goto fail;
		s->readers[i].running = 1;
	}
	s->started = 1;
	if (s->ops->shared && uv_timer_init(loop, &s->follow_timer) == 0) {
		s->follow_timer.data = s;
		s->follow_on = 1;
		uv_timer_start(&s->follow_timer, on_follow_timer, 0, FOLLOW_MS);
		uv_unref((uv_handle_t *)&s->follow_timer); /* the async handle keeps the loop */
	}
	return 0;
fail:
	stop_threads(s);
	s->stopping = 0;
	s->async_closing = 1;
	uv_close((uv_handle_t *)&s->async, on_start_failed_closed);
	return rc;
}

int store_submit(struct store *s, struct store_batch *b)
{
	int rc = 0;
	b->next = NULL;
	b->status = 0;
	uv_mutex_lock(&s->mu);
	if (!s->started || s->stopping)
		rc = -ESHUTDOWN;
	else if (s->queued >= s->queue_max)
		rc = -EAGAIN;
	if (!rc) {
		if (s->q_tail)
			s->q_tail->next = b;
		else
			s->q_head = b;
		s->q_tail = b;
		s->queued++;
		uv_cond_signal(&s->cond);
	}
	uv_mutex_unlock(&s->mu);
	return rc;
}

static void on_async_closed(uv_handle_t *h)
{
	struct store *s = h->data;
	if (--s->handles_open == 0)
		free_store(s);
}

/* --- issue 13: the events of every collector writing a shared store ----------------------- */

static void on_follow(void *ud, const struct store_reply *r)
{
	struct store *s = ud;
	s->following = 0;
	if (r->status) {
		if (r->status != -ESHUTDOWN && !s->follow_failed)
			log_warn("event=events_follow_failed error=%d", r->status);
		s->follow_failed = 1;
		return;
	}
	if (s->follow_failed)
		log_info("event=events_follow_resumed after_id=%lld", (long long)s->follow_after);
	s->follow_failed = 0;
	if (!s->follow_known) { /* the first read: from the store's newest id on */
		s->follow_after = r->events_last_id;
		s->follow_known = 1;
		return;
	}
	if (!r->nevents)
		return; /* (also the first read's answer after our own commit set the start) */
	if (r->events_pruned_id > s->follow_after) {
		log_warn("event=events_follow_skipped from_id=%lld to_id=%lld reason=pruned",
		         (long long)s->follow_after, (long long)r->events_pruned_id);
		s->follow_after = r->events_pruned_id;
	}
	for (size_t i = 0; i < r->nevents; i++) {
		const struct store_event *ev = &r->events[i];
		if (ev->id <= s->follow_after)
			continue;
		s->follow_after = ev->id;
		if (s->event_cb)
			s->event_cb(s->event_ud, ev);
	}
	if (r->nevents == FOLLOW_PAGE)
		follow_read(s);
}

static void follow_read(struct store *s)
{
	if (!s->follow_on || s->following || !s->started || s->stopping)
		return;
	int rc = s->follow_known ? store_events_after(s, s->follow_after, FOLLOW_PAGE, on_follow, s)
	                         : store_events_after(s, INT64_MAX, 1, on_follow, s);
	if (!rc)
		s->following = 1; /* -EAGAIN: reads are full, the timer tries again */
}

static void on_follow_timer(uv_timer_t *t)
{
	follow_read(t->data);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (!s->started) {
		if (s->async_closing)
			s->close_wanted = 1; /* freed by on_start_failed_closed */
		else
			free_store(s);
		return;
	}
	stop_threads(s);
	deliver(s);
	s->started = 0;
	/* The writer is joined: its totals are final (tests/bench/ingest_bench.sh reads them). */
	const struct store_stats *t = &s->stats;
	log_info("event=store_stats commits=%llu rows_stored=%llu rows_rolled=%llu"
	         " rows_pruned=%llu rollup_slices=%llu rollup_flushes=%llu commit_cpu_ns=%llu"
	         " rollup_cpu_ns=%llu",
	         (unsigned long long)t->commits, (unsigned long long)t->rows_stored,
	         (unsigned long long)t->rows_rolled, (unsigned long long)t->rows_pruned,
	         (unsigned long long)t->rollup_slices, (unsigned long long)t->rollup_flushes,
	         (unsigned long long)t->commit_cpu_ns, (unsigned long long)t->rollup_cpu_ns);
	s->handles_open = 1;
	if (s->follow_on) {
		s->handles_open++;
		uv_close((uv_handle_t *)&s->follow_timer, on_async_closed);
	}
	uv_close((uv_handle_t *)&s->async, on_async_closed);
}

const char *const store_site_state_names[STORE_SITE_STATES] = {"ok", "degraded", "down", "silent"};
const char *const store_severity_names[STORE_SEVERITIES] = {"minor", "major", "critical"};

void store_get_stats(struct store *s, struct store_stats *out)
{
	uv_mutex_lock(&s->mu);
	*out = s->stats;
	uv_mutex_unlock(&s->mu);
}

const char *const store_lease_names[STORE_LEASES] = {"feed", "notify", "rollup"};

int store_shared(const struct store *s)
{
	return s->ops->shared;
}

void store_leases(struct store *s, struct store_lease out[STORE_LEASES])
{
	if (s->ops->leases) {
		s->ops->leases(s->be, out);
		return;
	}
	for (int i = 0; i < STORE_LEASES; i++)
		out[i] = (struct store_lease){.held = 1, .epoch = 0};
}

/* --- reads ------------------------------------------------------------------------------ */

/* The request for op, or NULL with *rc set (-ESHUTDOWN, -EAGAIN, -ENOMEM). */
static struct read_req *read_new(struct store *s, enum read_op op, store_read_cb cb, void *ud,
                                 int *rc)
{
	*rc = 0;
	if (!s->started || s->stopping) {
		*rc = -ESHUTDOWN;
		return NULL;
	}
	if (s->reads_inflight >= s->max_reads) {
		uv_mutex_lock(&s->mu);
		s->stats.reads_refused++;
		uv_mutex_unlock(&s->mu);
		*rc = -EAGAIN;
		return NULL;
	}
	struct read_req *q = calloc(1, sizeof(*q));
	if (!q) {
		*rc = -ENOMEM;
		return NULL;
	}
	q->op = op;
	q->cb = cb;
	q->ud = ud;
	vw_buf_init(&q->fill.arena, STORE_REPLY_MAX);
	return q;
}

static int read_queue(struct store *s, struct read_req *q)
{
	uv_mutex_lock(&s->mu);
	if (s->rq_tail)
		s->rq_tail->next = q;
	else
		s->rq_head = q;
	s->rq_tail = q;
	uv_cond_signal(&s->rcond);
	uv_mutex_unlock(&s->mu);
	s->reads_inflight++;
	return 0;
}

static int read_submit(struct store *s, enum read_op op, const char *site, const char *agent,
                       const char *epoch, store_read_cb cb, void *ud)
{
	if ((site && strlen(site) >= sizeof(((struct read_req *)0)->site)) ||
	    (agent && strlen(agent) >= sizeof(((struct read_req *)0)->agent)) ||
	    (epoch && strlen(epoch) >= sizeof(((struct read_req *)0)->epoch)))
		return s->started && !s->stopping ? -EINVAL : -ESHUTDOWN; /* longer than any id */
	int rc;
	struct read_req *q = read_new(s, op, cb, ud, &rc);
	if (!q)
		return rc;
	if (site)
		memcpy(q->site, site, strlen(site) + 1);
	if (agent)
		memcpy(q->agent, agent, strlen(agent) + 1);
	if (epoch)
		memcpy(q->epoch, epoch, strlen(epoch) + 1);
	return read_queue(s, q);
}

/* Copies src into dst[n]; -EINVAL when it does not fit (no id a store holds is longer). */
static int copy_id(char *dst, size_t n, const char *src, const char **out)
{
	if (!src) {
		*out = NULL;
		return 0;
	}
	size_t len = strlen(src);
	if (len >= n)
		return -EINVAL;
	memcpy(dst, src, len + 1);
	*out = dst;
	return 0;
}

int store_score_inputs(struct store *s, const struct store_score_query *qr, store_read_cb cb,
                       void *ud)
{
	int rc;
	struct read_req *q = read_new(s, RD_SCORE, cb, ud, &rc);
	if (!q)
		return rc;
	q->score = *qr;
	if ((rc = copy_id(q->org, sizeof(q->org), qr->org, &q->score.org)) != 0 ||
	    (rc = copy_id(q->city, sizeof(q->city), qr->city, &q->score.city)) != 0 ||
	    (rc = copy_id(q->site, sizeof(q->site), qr->site, &q->score.site)) != 0) {
		read_free(q);
		return rc;
	}
	return read_queue(s, q);
}

int store_score_evidence(struct store *s, int64_t exam_id, int cls, const char *target,
                         store_read_cb cb, void *ud)
{
	if (cls < 0 || cls >= STORE_CLASS_COUNT)
		return -EINVAL;
	int rc;
	struct read_req *q = read_new(s, RD_EVIDENCE, cb, ud, &rc);
	if (!q)
		return rc;
	const char *t;
	if ((rc = copy_id(q->target, sizeof(q->target), target, &t)) != 0) {
		read_free(q);
		return rc;
	}
	q->exam_id = exam_id;
	q->cls = cls;
	q->has_target = t != NULL;
	return read_queue(s, q);
}

int store_list_sites(struct store *s, store_read_cb cb, void *ud)
{
	return read_submit(s, RD_SITES, NULL, NULL, NULL, cb, ud);
}

int store_get_site(struct store *s, const char *site, store_read_cb cb, void *ud)
{
	return read_submit(s, RD_SITE, site, NULL, NULL, cb, ud);
}

int store_high_seq(struct store *s, const char *site, const char *agent, const char *epoch,
                   store_read_cb cb, void *ud)
{
	return read_submit(s, RD_HIGH, site, agent, epoch ? epoch : "", cb, ud);
}

int store_count_results(struct store *s, store_read_cb cb, void *ud)
{
	return read_submit(s, RD_COUNT, NULL, NULL, NULL, cb, ud);
}

/* --- exam sessions ----------------------------------------------------------------------- */

/* Writes share the batches' bound: a person's write beyond it is as unwelcome as a batch. */
int store_write_submit(struct store *s, struct store_write *w)
{
	int rc = 0;
	w->next = NULL;
	w->status = 0;
	w->bad = 0;
	w->err[0] = '\0';
	uv_mutex_lock(&s->mu);
	if (!s->started || s->stopping)
		rc = -ESHUTDOWN;
	else if (s->writes_queued >= s->queue_max)
		rc = -EAGAIN;
	if (!rc) {
		if (s->w_tail)
			s->w_tail->next = w;
		else
			s->w_head = w;
		s->w_tail = w;
		s->writes_queued++;
		uv_cond_signal(&s->cond);
	}
	uv_mutex_unlock(&s->mu);
	return rc;
}

void store_get_avail(struct store *s, struct store_avail *out)
{
	memset(out, 0, sizeof(*out));
	out->up = 1;
	if (s && s->ops->avail)
		s->ops->avail(s->be, out);
}

int store_avail_retry_s(const struct store_avail *a)
{
	int64_t s = a->up ? 1 : a->retry_in_ms / 1000 + 1;
	return s < 1 ? 1 : s > 60 ? 60 : (int)s;
}

int store_exam_refuse(struct store_write *w, size_t i, int rc, const char *fmt, const char *a)
{
	w->bad = i;
	snprintf(w->err, sizeof(w->err), fmt, a);
	return rc;
}

int store_exam_check_new(struct store_write *w, size_t i)
{
	const struct store_exam_session *e = &w->exams[i];
	if (e->start_ms <= w->now_ms)
		return store_exam_refuse(w, i, -ETIMEDOUT, "session %s starts in the past",
		                         e->code);
	return 0;
}

/* A session is changed or cancelled only before it starts (issue 11): once candidates sit,
 * what was announced is what is scored and inspected. A cancelled session stays so. */
int store_exam_change(struct store_write *w, const struct store_exam_session *old,
                      struct store_exam_session *now)
{
	const struct store_exam_session *e = &w->exams[0];
	if (old->cancelled_ms)
		return store_exam_refuse(w, 0, -ECANCELED, "session %s was cancelled", old->code);
	if (w->now_ms >= old->start_ms)
		return store_exam_refuse(w, 0, -EALREADY,
		                         "session %s has already started: it can no longer be "
		                         "changed or cancelled",
		                         old->code);
	if (w->op == STORE_EXAM_UPDATE && e->start_ms <= w->now_ms)
		return store_exam_refuse(w, 0, -ETIMEDOUT,
		                         "the new start of session %s is in the past", old->code);
	*now = *old;
	if (w->op == STORE_EXAM_UPDATE) {
		now->occupation = e->occupation;
		now->level = e->level;
		now->rooms = e->rooms;
		now->start_ms = e->start_ms;
		now->end_ms = e->end_ms;
		now->candidates = e->candidates;
	} else {
		now->cancelled_ms = w->now_ms;
	}
	now->updated_ms = w->now_ms;
	return 0;
}

int store_write_now(struct store *s, struct store_write *w)
{
	if (s->started)
		return -EBUSY; /* the write connection belongs to the writer thread now */
	w->status = 0;
	w->bad = 0;
	w->err[0] = '\0';
	return s->ops->write(s->be, w);
}

int store_exam_list(struct store *s, const struct store_exam_query *q, store_read_cb cb, void *ud)
{
	struct read_req tmp;
	const char *unused;
	if (copy_id(tmp.site, sizeof(tmp.site), q->site ? q->site : "", &unused) ||
	    copy_id(tmp.exq_org, sizeof(tmp.exq_org), q->org ? q->org : "", &unused) ||
	    copy_id(tmp.exq_city, sizeof(tmp.exq_city), q->city ? q->city : "", &unused))
		return -EINVAL;
	int rc;
	struct read_req *r = read_new(s, RD_EXAMS, cb, ud, &rc);
	if (!r)
		return rc;
	r->exq = *q;
	copy_id(r->site, sizeof(r->site), q->site ? q->site : "", &r->exq.site);
	copy_id(r->exq_org, sizeof(r->exq_org), q->org ? q->org : "", &r->exq.org);
	copy_id(r->exq_city, sizeof(r->exq_city), q->city ? q->city : "", &r->exq.city);
	return read_queue(s, r);
}

int store_exam_get(struct store *s, int64_t id, store_read_cb cb, void *ud)
{
	int rc;
	struct read_req *r = read_new(s, RD_EXAM, cb, ud, &rc);
	if (!r)
		return rc;
	r->exam_ref = id;
	return read_queue(s, r);
}

int store_exam_version(struct store *s, const char *site, store_read_cb cb, void *ud)
{
	return read_submit(s, RD_EXAM_VERSION, site, NULL, NULL, cb, ud);
}

/* --- measurements ----------------------------------------------------------------------- */

int store_bench_commit(struct store *s, struct store_batch *list)
{
	if (s->started)
		return -EBUSY; /* the write connection belongs to the writer thread now */
	uint64_t rows, skipped, gaps;
	commit_group(s, list, &rows, &skipped, &gaps);
	count_commit(s, list, rows, skipped, gaps);
	for (struct store_batch *b = list; b; b = b->next)
		if (b->status)
			return b->status;
	return 0;
}

int store_bench_raw(struct store *s, const struct store_batch *b)
{
	if (s->started)
		return -EBUSY;
	return s->ops->raw(s->be, b);
}

int store_thumbnail(struct store *s, const char *site, const char *camera, int64_t at_ms,
                    store_read_cb cb, void *ud)
{
	struct read_req tmp;
	const char *unused;
	if (copy_id(tmp.site, sizeof(tmp.site), site, &unused) ||
	    copy_id(tmp.target, sizeof(tmp.target), camera, &unused))
		return s->started && !s->stopping ? -EINVAL : -ESHUTDOWN;
	int rc;
	struct read_req *q = read_new(s, RD_THUMB, cb, ud, &rc);
	if (!q)
		return rc;
	copy_id(q->site, sizeof(q->site), site, &unused);
	copy_id(q->target, sizeof(q->target), camera, &unused);
	q->at_ms = at_ms;
	return read_queue(s, q);
}

int store_score_exam(struct store *s, int64_t exam_id, store_read_cb cb, void *ud)
{
	int rc;
	struct read_req *q = read_new(s, RD_SCORE_EXAM, cb, ud, &rc);
	if (!q)
		return rc;
	q->exam_id = exam_id;
	return read_queue(s, q);
}

/* --- issue 16 E: site history ------------------------------------------------------------ */

int store_site_history(struct store *s, const struct store_history_query *hq, store_read_cb cb,
                       void *ud)
{
	if (!hq->site || hq->limit < 1 || hq->limit > STORE_HISTORY_MAX)
		return -EINVAL;
	struct read_req tmp;
	const char *unused;
	if (copy_id(tmp.site, sizeof(tmp.site), hq->site, &unused) ||
	    copy_id(tmp.target, sizeof(tmp.target), hq->target, &unused) ||
	    copy_id(tmp.hkind, sizeof(tmp.hkind), hq->kind, &unused))
		return -EINVAL;
	int rc;
	struct read_req *q = read_new(s, RD_HISTORY, cb, ud, &rc);
	if (!q)
		return rc;
	q->hist = *hq;
	copy_id(q->site, sizeof(q->site), hq->site, &q->hist.site);
	copy_id(q->target, sizeof(q->target), hq->target, &q->hist.target);
	copy_id(q->hkind, sizeof(q->hkind), hq->kind, &q->hist.kind);
	return read_queue(s, q);
}
/* --- issue 16 (A): events and problems ---------------------------------------------------- */

int store_events_after(struct store *s, int64_t after_id, size_t limit, store_read_cb cb, void *ud)
{
	struct store_events_query q = {.after_id = after_id, .limit = limit};
	return store_events_scoped(s, &q, cb, ud);
}

int store_events_scoped(struct store *s, const struct store_events_query *qr, store_read_cb cb,
                        void *ud)
{
	const char *org = qr->org && qr->org[0] ? qr->org : NULL;
	const char *city = qr->city && qr->city[0] ? qr->city : NULL;
	if (qr->limit < 1 || qr->limit > 10000 || qr->after_id < 0 || (org && city))
		return -EINVAL;
	int rc;
	struct read_req *q = read_new(s, RD_EVENTS, cb, ud, &rc);
	if (!q)
		return rc;
	q->evq = *qr;
	if ((rc = copy_id(q->org, sizeof(q->org), org, &q->evq.org)) != 0 ||
	    (rc = copy_id(q->city, sizeof(q->city), city, &q->evq.city)) != 0) {
		read_free(q);
		return rc;
	}
	return read_queue(s, q);
}

int store_problems_list(struct store *s, const struct store_problem_query *qr, store_read_cb cb,
                        void *ud)
{
	if (qr->limit < 1 || qr->limit > 1000)
		return -EINVAL;
	int rc;
	struct read_req *q = read_new(s, RD_PROBLEMS, cb, ud, &rc);
	if (!q)
		return rc;
	q->probq = *qr;
	const char *org = qr->org && qr->org[0] ? qr->org : NULL;
	const char *city = qr->city && qr->city[0] ? qr->city : NULL;
	const char *site = qr->site && qr->site[0] ? qr->site : NULL;
	if ((rc = copy_id(q->org, sizeof(q->org), org, &q->probq.org)) != 0 ||
	    (rc = copy_id(q->city, sizeof(q->city), city, &q->probq.city)) != 0 ||
	    (rc = copy_id(q->site, sizeof(q->site), site, &q->probq.site)) != 0) {
		read_free(q);
		return rc;
	}
	return read_queue(s, q);
}

/* --- issue 16 D: notifications ---------------------------------------------------------- */

int store_notify_list(struct store *s, const struct store_notify_query *nq, store_read_cb cb,
                      void *ud)
{
	if (!nq->limit)
		return -EINVAL;
	int rc;
	struct read_req *q = read_new(s, RD_NOTIFY, cb, ud, &rc);
	if (!q)
		return rc;
	q->nq = *nq;
	if ((rc = copy_id(q->nq_state, sizeof(q->nq_state), nq->state, &q->nq.state)) != 0 ||
	    (rc = copy_id(q->city, sizeof(q->city), nq->city, &q->nq.city)) != 0) {
		read_free(q);
		return rc;
	}
	return read_queue(s, q);
}

int store_problem_json(struct vw_buf *b, const struct store_problem *p, int64_t now_ms)
{
	char start[VW_ISO_LEN], end[VW_ISO_LEN];
	vw_time_iso(p->start_ms, start);
	int64_t until = p->end_ms ? p->end_ms : now_ms;
	int64_t dur = until > p->start_ms ? (until - p->start_ms) / 1000 : 0;
	vw_buf_printf(b, "{\"id\":%lld,\"site\":", (long long)p->id);
	vw_buf_json_str(b, p->site);
	vw_buf_puts(b, ",\"org\":");
	vw_buf_json_str(b, p->org);
	vw_buf_puts(b, ",\"city\":");
	vw_buf_json_str(b, p->city);
	vw_buf_puts(b, ",\"agent\":");
	vw_buf_json_str(b, p->agent);
	vw_buf_puts(b, ",\"kind\":");
	vw_buf_json_str(b, p->kind);
	vw_buf_puts(b, ",\"target\":");
	vw_buf_json_str(b, p->target);
	vw_buf_printf(b, ",\"state\":\"%s\",\"status\":", p->end_ms ? "closed" : "open");
	vw_buf_json_str(b, p->status);
	vw_buf_puts(b, ",\"worst\":");
	vw_buf_json_str(b, p->worst);
	vw_buf_puts(b, ",\"severity\":");
	vw_buf_json_str(b, p->severity);
	/* The store's own array text (vw_result_encode_faults, codes of [a-z0-9_]). */
	vw_buf_printf(
	    b, ",\"faults\":%s,\"start\":\"%s\",\"end\":", p->faults[0] ? p->faults : "[]", start);
	if (p->end_ms) {
		vw_time_iso(p->end_ms, end);
		vw_buf_printf(b, "\"%s\"", end);
	} else {
		vw_buf_puts(b, "null");
	}
	vw_buf_printf(b, ",\"duration_s\":%lld,\"in_session\":%s,\"ack\":", (long long)dur,
	              p->in_session ? "true" : "false");
	if (p->ack_by) {
		char at[VW_ISO_LEN];
		vw_time_iso(p->ack_ms, at);
		vw_buf_puts(b, "{\"by\":");
		vw_buf_json_str(b, p->ack_by);
		vw_buf_printf(b, ",\"at\":\"%s\",\"message\":", at);
		vw_buf_json_str(b, p->ack_message ? p->ack_message : "");
		vw_buf_puts(b, "}");
	} else {
		vw_buf_puts(b, "null");
	}
	vw_buf_puts(b, "}");
	return b->err;
}
