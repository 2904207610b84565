#include "capture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "inspections.h"
#include "log.h"
#include "store.h"
#include "vtime.h"

/* A site has 2-200 cameras (docs/DOMAIN.md): room for every one, and a bound. */
#define CAPTURE_CAMERAS_MAX 256
/* Captures in flight at once: a remote check a slot, a few slots running at a time. */
#define CAPTURE_INFLIGHT_MAX 16
#define CAPTURE_SITE_JSON_MAX (1u << 20)
/* An agent checks a camera every 120 s by default, and every 2-30 s in an exam session (its
 * session cadence): a minute later its first pictures are usually in. */
#define CAPTURE_RETRY_MS 60000

struct capture {
	uv_loop_t *loop;
	struct store *store;
	struct inspect *in;
	capture_render_fn render;
	uv_timer_t timer;
	int64_t every_ms;
	int timer_on, closing, scanning;
	size_t inflight;
	uint64_t count;
};

struct op {
	struct capture *cap;
	int64_t id;
	char site[64];
	capture_done_fn done;
	void *ud;
	struct insp_evidence rows[1 + CAPTURE_CAMERAS_MAX];
	size_t nrows, next_cam;
	char *cameras[CAPTURE_CAMERAS_MAX];
	size_t ncams;
	int status;
};

static void cap_maybe_free(struct capture *c)
{
	if (c->closing && !c->timer_on && !c->inflight && !c->scanning)
		free(c);
}

static void op_free(struct op *o)
{
	for (size_t i = 0; i < o->nrows; i++)
		inspections_evidence_free(&o->rows[i]);
	for (size_t i = 0; i < o->ncams; i++)
		free(o->cameras[i]);
	free(o);
}

static void op_finish(struct op *o, int status)
{
	struct capture *c = o->cap;
	if (o->done)
		o->done(o->ud, status, status ? 0 : o->nrows);
	else if (status && status != -ECANCELED)
		log_warn("event=capture_failed inspection=%lld site=%s error=%s", (long long)o->id,
		         o->site, strerror(-status));
	c->inflight--;
	op_free(o);
	cap_maybe_free(c);
}

static int write_rows(sqlite3 *db, void *arg)
{
	struct op *o = arg;
	return inspections_evidence_add(db, o->id, o->rows, o->nrows);
}

static void on_written(void *arg, int status)
{
	struct op *o = arg;
	if (!status) {
		o->cap->count++;
		log_info("event=inspection_captured inspection=%lld site=%s rows=%zu",
		         (long long)o->id, o->site, o->nrows);
	}
	op_finish(o, status);
}

static void next_thumb(struct op *o);

static void on_thumb(void *ud, const struct store_reply *r)
{
	struct op *o = ud;
	if (!r->status && r->thumb && r->thumb_len) {
		struct insp_evidence *e = &o->rows[o->nrows];
		memset(e, 0, sizeof(*e));
		e->captured_ms = vw_now_ms();
		snprintf(e->kind, sizeof(e->kind), "thumbnail");
		snprintf(e->camera, sizeof(e->camera), "%s", o->cameras[o->next_cam]);
		char iso[VW_ISO_LEN];
		vw_time_iso(r->thumb_ts_ms, iso);
		char data[256];
		snprintf(data, sizeof(data), "{\"thumbnail_at\":\"%s\",\"seq\":%lld}", iso,
		         (long long)r->thumb_seq);
		e->data = strdup(data);
		e->jpeg = malloc(r->thumb_len);
		if (e->data && e->jpeg) {
			memcpy(e->jpeg, r->thumb, r->thumb_len);
			e->jpeg_len = r->thumb_len;
			o->nrows++;
		} else {
			inspections_evidence_free(e);
		}
	}
	o->next_cam++;
	next_thumb(o);
}

/* One camera at a time: a capture is a handful of small reads, and it keeps the store's
 * queue for everyone else. */
static void next_thumb(struct op *o)
{
	if (o->cap->closing) { /* inspect.db may be closed already: nothing more is queued */
		op_finish(o, -ECANCELED);
		return;
	}
	while (o->next_cam < o->ncams) {
		if (store_thumbnail(o->cap->store, o->site, o->cameras[o->next_cam], 0, on_thumb,
		                    o) == 0)
			return;
		o->next_cam++;
	}
	int rc = inspect_submit(o->cap->in, write_rows, on_written, o);
	if (rc)
		op_finish(o, rc);
}

static void on_site(void *ud, const struct store_reply *r)
{
	struct op *o = ud;
	if (o->cap->closing) {
		op_finish(o, -ECANCELED);
		return;
	}
	if (r->status || r->nsites != 1) {
		op_finish(o, r->status ? r->status : -EIO);
		return;
	}
	struct vw_buf b;
	vw_buf_init(&b, CAPTURE_SITE_JSON_MAX);
	o->cap->render(&b, r);
	if (b.err) {
		vw_buf_free(&b);
		op_finish(o, b.err);
		return;
	}
	struct insp_evidence *e = &o->rows[0];
	memset(e, 0, sizeof(*e));
	e->captured_ms = vw_now_ms();
	snprintf(e->kind, sizeof(e->kind), "status");
	e->data = strdup(vw_buf_cstr(&b));
	vw_buf_free(&b);
	if (!e->data) {
		op_finish(o, -ENOMEM);
		return;
	}
	o->nrows = 1;
	for (size_t i = 0; i < r->ntargets && o->ncams < CAPTURE_CAMERAS_MAX; i++) {
		const struct store_target *t = &r->targets[i];
		if (strcmp(t->kind, "stream") || !t->thumb_ts_ms)
			continue;
		int dup = 0;
		for (size_t k = 0; k < o->ncams && !dup; k++)
			dup = strcmp(o->cameras[k], t->target) == 0;
		if (!dup && (o->cameras[o->ncams] = strdup(t->target)) != NULL)
			o->ncams++;
	}
	next_thumb(o);
}

int capture_now(struct capture *c, int64_t id, const char *site, capture_done_fn done, void *ud)
{
	if (!c || c->closing)
		return -ESHUTDOWN;
	if (c->inflight >= CAPTURE_INFLIGHT_MAX)
		return -EAGAIN;
	struct op *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->cap = c;
	o->id = id;
	snprintf(o->site, sizeof(o->site), "%s", site);
	o->done = done;
	o->ud = ud;
	c->inflight++;
	int rc = store_get_site(c->store, site, on_site, o);
	if (rc) {
		c->inflight--;
		op_free(o);
	}
	return rc;
}

/* --- the timer ------------------------------------------------------------------------------- */

struct scan {
	struct capture *cap;
	int64_t now_ms, retry_ms;
	struct insp_due due[CAPTURE_INFLIGHT_MAX];
	size_t n;
};

static int scan_run(sqlite3 *db, void *arg)
{
	struct scan *s = arg;
	return inspections_capture_due(db, s->now_ms, s->retry_ms, s->due, CAPTURE_INFLIGHT_MAX,
	                               &s->n);
}

static void scan_done(void *arg, int status)
{
	struct scan *s = arg;
	struct capture *c = s->cap;
	c->scanning = 0;
	if (!status && !c->closing)
		for (size_t i = 0; i < s->n; i++) {
			int rc = capture_now(c, s->due[i].id, s->due[i].site, NULL, NULL);
			if (rc)
				log_warn("event=capture_failed inspection=%lld site=%s error=%s",
				         (long long)s->due[i].id, s->due[i].site, strerror(-rc));
		}
	else if (status && status != -ECANCELED && status != -ESHUTDOWN)
		log_warn("event=capture_scan_failed error=%s", strerror(-status));
	free(s);
	cap_maybe_free(c);
}

static void on_tick(uv_timer_t *t)
{
	struct capture *c = t->data;
	/* One scan at a time, and none while captures are still out: a slow store makes the
	 * next tick wait instead of piling up the same inspections twice. */
	if (c->scanning || c->inflight || c->closing)
		return;
	struct scan *s = calloc(1, sizeof(*s));
	if (!s)
		return;
	s->cap = c;
	s->now_ms = vw_now_ms();
	/* A status without pictures is taken again a minute later (or a tick, if longer). */
	s->retry_ms = c->every_ms > CAPTURE_RETRY_MS ? c->every_ms : CAPTURE_RETRY_MS;
	c->scanning = 1;
	if (inspect_submit(c->in, scan_run, scan_done, s)) {
		c->scanning = 0;
		free(s);
	}
}

int capture_create(uv_loop_t *loop, struct store *store, struct inspect *in, int64_t every_ms,
                   capture_render_fn render, struct capture **out)
{
	*out = NULL;
	struct capture *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct capture){
	    .loop = loop, .store = store, .in = in, .render = render, .every_ms = every_ms};
	if (every_ms > 0) {
		int rc = uv_timer_init(loop, &c->timer);
		if (rc) {
			free(c);
			return rc;
		}
		c->timer.data = c;
		c->timer_on = 1;
		uv_timer_start(&c->timer, on_tick, (uint64_t)every_ms, (uint64_t)every_ms);
	}
	*out = c;
	return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct capture *c = h->data;
	c->timer_on = 0;
	cap_maybe_free(c);
}

void capture_destroy(struct capture *c)
{
	if (!c)
		return;
	c->closing = 1;
	if (c->timer_on)
		uv_close((uv_handle_t *)&c->timer, on_timer_closed);
	else
		cap_maybe_free(c);
}

uint64_t capture_count(const struct capture *c)
{
	return c ? c->count : 0;
}
