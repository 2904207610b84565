#include "exams_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "admin.h"
#include "conf.h"
#include "exams_csv.h"
#include "log.h"
#include "server_conf.h"
#include "store.h"
#include "vtime.h"

/* A province's plan for a year is a few MiB; this bounds reading the wrong file. */
#define PLAN_MAX_BYTES (64u << 20)

const struct vw_cli_opt exams_import_opts[EXAMS_IMPORT_NOPTS] = {
    {"file", 0, "FILE", "the plan (认定计划) as CSV, UTF-8 with or without BOM"},
    {"org", 0, "O", "only this organisation's sites; fills an org column left out"},
    {"actor", 0, "NAME", "who imports, for the change records (default: the user)"},
};
const struct vw_cli_opt exams_list_opts[EXAMS_LIST_NOPTS] = {
    {"site", 0, "S", "one site's sessions"},
    {"org", 0, "O", "one organisation's sessions"},
    {"cancelled", 0, NULL, "include cancelled sessions"},
};

/* The store with a loop of its own, for one command. */
struct cli_store {
	uv_loop_t loop;
	struct store *s;
	int loop_ok, done;
};

static int cli_store_open(struct server_conf *cfg, struct cli_store *cs)
{
	char err[512];
	memset(cs, 0, sizeof(*cs));
	struct store_options so = {.backend = cfg->store_backend,
	                           .dir = cfg->server.state_dir,
	                           .dsn = cfg->store.dsn,
	                           .password_file = cfg->store.password_file,
	                           .durability = STORE_DURABLE_FULL,
	                           .readers = 1};
	if (store_open(&so, &cs->s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	if (uv_loop_init(&cs->loop)) {
		store_close(cs->s);
		fprintf(stderr, "cannot start an event loop\n");
		return -1;
	}
	cs->loop_ok = 1;
	if (store_start(cs->s, &cs->loop, 4)) {
		fprintf(stderr, "cannot start the store's threads\n");
		store_close(cs->s);
		uv_run(&cs->loop, UV_RUN_DEFAULT);
		uv_loop_close(&cs->loop);
		return -1;
	}
	return 0;
}

static void cli_store_wait(struct cli_store *cs)
{
	while (!cs->done)
		uv_run(&cs->loop, UV_RUN_ONCE);
	cs->done = 0;
}

static void cli_store_close(struct cli_store *cs)
{
	store_close(cs->s);
	uv_run(&cs->loop, UV_RUN_DEFAULT); /* the store's memory goes with its handle */
	uv_loop_close(&cs->loop);
}

static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "session import: %s: %s\n", path, strerror(errno));
		return -1;
	}
	char *buf = malloc(PLAN_MAX_BYTES + 1);
	size_t n = buf ? fread(buf, 1, PLAN_MAX_BYTES + 1, f) : 0;
	int bad = !buf || ferror(f);
	fclose(f);
	if (bad || n > PLAN_MAX_BYTES) {
		fprintf(stderr, "session import: %s: %s\n", path,
		        bad ? "cannot read it" : "larger than 64 MiB: not a plan");
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

struct import_ctx {
	struct cli_store *cs;
	const char *path;
	struct exams_in *in;
	size_t n;
	char (*org)[65];
	char (*city)[129];
	int status;
};

static void on_sites(void *ud, const struct store_reply *r)
{
	struct import_ctx *x = ud;
	x->status = r->status;
	for (size_t i = 0; !r->status && i < x->n; i++)
		for (size_t k = 0; !x->org[i][0] && k < r->nsites; k++)
			if (strcmp(r->sites[k].site, x->in[i].site) == 0) {
				snprintf(x->org[i], sizeof(x->org[i]), "%s", r->sites[k].org);
				snprintf(x->city[i], sizeof(x->city[i]), "%s", r->sites[k].city);
			}
	x->cs->done = 1;
}

static void on_written(struct store_write *w)
{
	struct cli_store *cs = w->data;
	cs->done = 1;
}

static int import_run(struct server_conf *cfg, struct import_ctx *x, const char *only_org,
                      const char *actor)
{
	struct exams_errs errs = {0};
	struct auth *au = admin_open(cfg, 0);
	if (!au)
		return 1;
	int unplaced = 0;
	for (size_t i = 0; i < x->n; i++) {
		int rc = auth_site_place(au, x->in[i].site, x->org[i], x->city[i]);
		if (rc == -EIO) {
			auth_close(au);
			fprintf(stderr, "session import: cannot read %s\n", cfg->auth_db_path);
			return 1;
		}
		unplaced |= rc != 0;
	}
	auth_close(au);
	struct cli_store cs;
	if (cli_store_open(cfg, &cs))
		return 1;
	x->cs = &cs;
	if (unplaced && store_list_sites(cs.s, on_sites, x) == 0)
		cli_store_wait(&cs);
	int rc = 1;
	struct store_exam_session *ex = calloc(x->n, sizeof(*ex));
	if (!ex) {
		fprintf(stderr, "session import: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < x->n; i++) {
		const struct exams_in *e = &x->in[i];
		if (!x->org[i][0])
			exams_errs_add(&errs, "%s:%u: site: unknown site %s (never enrolled)",
			               x->path, e->line, e->site);
		else if (strcmp(e->org, x->org[i]) != 0)
			exams_errs_add(&errs, "%s:%u: org: site %s belongs to %s, not %s", x->path,
			               e->line, e->site, x->org[i], e->org);
		else if (only_org && strcmp(only_org, x->org[i]) != 0)
			exams_errs_add(&errs, "%s:%u: site: site %s belongs to %s, not --org %s",
			               x->path, e->line, e->site, x->org[i], only_org);
		ex[i] = (struct store_exam_session){.org = x->org[i],
		                                    .city = x->city[i],
		                                    .site = e->site,
		                                    .code = e->code,
		                                    .occupation = e->occupation,
		                                    .level = e->level,
		                                    .rooms = e->rooms,
		                                    .start_ms = e->start_ms,
		                                    .end_ms = e->end_ms,
		                                    .candidates = e->candidates};
	}
	if (!errs.total) {
		struct store_write w = {.op = STORE_EXAM_CREATE,
		                        .actor = actor,
		                        .now_ms = vw_now_ms(),
		                        .exams = ex,
		                        .nexams = x->n,
		                        .done = on_written,
		                        .data = &cs};
		int sr = store_write_submit(cs.s, &w);
		if (sr == 0)
			cli_store_wait(&cs);
		else
			w.status = sr;
		if (w.status == 0) {
			printf("imported %zu sessions from %s\n", x->n, x->path);
			for (size_t i = 0; i < x->n; i++)
				log_info("event=exam_session_change action=create ref=%lld org=%s "
				         "site=%s "
				         "source=import",
				         (long long)ex[i].id, ex[i].org, ex[i].site);
			rc = 0;
		} else if (w.bad < x->n && w.err[0]) {
			exams_errs_add(&errs, "%s:%u: %s: %s", x->path, x->in[w.bad].line,
			               w.status == -EEXIST ? "id" : "start", w.err);
		} else {
			exams_errs_add(&errs, "%s: the store refused the import: %s", x->path,
			               strerror(-w.status));
		}
	}
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (errs.total > errs.n)
		fprintf(stderr, "... and %zu more\n", errs.total - errs.n);
	if (errs.total)
		fprintf(stderr, "session import: nothing imported\n");
out:
	exams_errs_free(&errs);
	free(ex);
	cli_store_close(&cs);
	return rc;
}

int exams_cmd_import(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	struct server_conf *cfg = ctx;
	const char *path = vw_cli_str(v, "file"), *org = vw_cli_str(v, "org");
	const char *actor_opt = vw_cli_str(v, "actor");
	if (!path) {
		fprintf(stderr, "session import: --file FILE is required\n");
		return 2;
	}
	if (org && !vw_conf_id_valid(org)) {
		fprintf(stderr, "session import: --org: expected an id (1-63 of [A-Za-z0-9._-])\n");
		return 2;
	}
	char actor[160];
	if (actor_opt)
		snprintf(actor, sizeof(actor), "cli:%s", actor_opt);
	else
		auth_cli_actor(actor, sizeof(actor));
	char *data;
	size_t len;
	if (read_file(path, &data, &len))
		return 1;
	struct exams_errs errs = {0};
	struct import_ctx x = {.path = path};
	int rc = exams_csv_parse(path, data, len, org, &x.in, &x.n, &errs);
	free(data);
	if (rc) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		if (errs.total > errs.n)
			fprintf(stderr, "... and %zu more\n", errs.total - errs.n);
		fprintf(stderr, "session import: nothing imported\n");
		exams_errs_free(&errs);
		return 1;
	}
	x.org = calloc(x.n, sizeof(*x.org));
	x.city = calloc(x.n, sizeof(*x.city));
	int out = 1;
	if (x.org && x.city)
		out = import_run(cfg, &x, org, actor);
	free(x.in);
	free(x.org);
	free(x.city);
	return out;
}

struct list_ctx {
	struct cli_store *cs;
	int status;
};

static void on_list(void *ud, const struct store_reply *r)
{
	struct list_ctx *x = ud;
	x->status = r->status;
	if (!r->status) {
		printf("%-6s %-10s %-10s %-16s %-25s %-25s %-14s %5s %s\n", "ref", "org", "site",
		       "id", "start", "end", "level", "cand", "occupation / rooms");
		for (size_t i = 0; i < r->nexam_sessions; i++) {
			const struct store_exam_session *e = &r->exam_sessions[i];
			char s[EXAMS_LOCAL_LEN], t[EXAMS_LOCAL_LEN];
			exams_time_local(e->start_ms, s);
			exams_time_local(e->end_ms, t);
			printf("%-6lld %-10s %-10s %-16s %-25s %-25s %-14s %5lld %s / %s%s\n",
			       (long long)e->id, e->org, e->site, e->code, s, t, e->level,
			       (long long)e->candidates, e->occupation, e->rooms,
			       e->cancelled_ms ? " (cancelled)" : "");
		}
	}
	x->cs->done = 1;
}

int exams_cmd_list(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	struct server_conf *cfg = ctx;
	const char *site = vw_cli_str(v, "site"), *org = vw_cli_str(v, "org");
	if ((site && !vw_conf_id_valid(site)) || (org && !vw_conf_id_valid(org))) {
		fprintf(stderr, "session list: --%s: expected an id (1-63 of [A-Za-z0-9._-])\n",
		        site && !vw_conf_id_valid(site) ? "site" : "org");
		return 2;
	}
	struct cli_store cs;
	if (cli_store_open(cfg, &cs))
		return 1;
	struct list_ctx x = {.cs = &cs};
	struct store_exam_query q = {
	    .site = site, .org = org, .with_cancelled = vw_cli_flag(v, "cancelled")};
	int rc = store_exam_list(cs.s, &q, on_list, &x);
	if (rc == 0)
		cli_store_wait(&cs);
	else
		x.status = rc;
	cli_store_close(&cs);
	if (x.status) {
		fprintf(stderr, "session list: the store could not be read: %s\n",
		        strerror(-x.status));
		return 1;
	}
	return 0;
}
