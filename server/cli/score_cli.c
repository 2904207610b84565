#include "score_cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "conf.h"
#include "score.h"
#include "server_conf.h"
#include "store.h"

const struct vw_cli_opt score_cli_opts[SCORE_CLI_NOPTS] = {
    {"org", 0, "O", "the organisation"},
    {"from", 0, "F", "period start: YYYY-MM-DD[THH:MM[:SS]][zone], Asia/Shanghai when no zone"},
    {"to", 0, "T", "period end (exclusive), same forms"},
    {"explain", 0, NULL, "print the computation step by step"},
    {"config", 0, "FILE", "take the [score] rubric from FILE instead (what a rubric would give)"},
};
_Static_assert(sizeof(score_cli_opts) / sizeof(score_cli_opts[0]) == SCORE_CLI_NOPTS,
               "SCORE_CLI_NOPTS");

struct run {
	const struct score_rubric *rubric;
	const char *org;
	int64_t from, to;
	int explain, rc, done;
};

static void pct_line(const char *name, double held, int64_t targets, int64_t dur, double frac,
                     int explain)
{
	if (explain)
		printf("    %-10s held %.0f ms (mean over %lld target%s) / %lld ms = %.2f %%\n",
		       name, held, (long long)targets, targets == 1 ? "" : "s", (long long)dur,
		       100 * frac);
}

static void step_line(const struct score_rubric *r, const double frac[SCORE_NCRIT], int weakest,
                      int score, const char *indent)
{
	double pct = 100 * frac[weakest];
	if (frac[SCORE_CONNECTED] <= 0) {
		printf("%snever connected -> score 0\n", indent);
		return;
	}
	const char *why = pct >= r->full_pct    ? "full_pct"
	                  : pct >= r->step4_pct ? "step4"
	                  : pct >= r->step3_pct ? "step3"
	                  : pct >= r->step2_pct ? "step2"
	                                        : "below step2";
	double at = pct >= r->full_pct    ? r->full_pct
	            : pct >= r->step4_pct ? r->step4_pct
	            : pct >= r->step3_pct ? r->step3_pct
	                                  : r->step2_pct;
	printf("%sweakest %s %.2f %% %s %s %g -> score %d\n", indent, score_criterion_name(weakest),
	       pct, pct >= at ? ">=" : "<", why[0] == 'b' ? "step2" : why, at, score);
}

static void on_inputs(void *ud, const struct store_reply *r)
{
	struct run *x = ud;
	x->done = 1;
	if (r->status) {
		fprintf(stderr, "score: the store could not be read: %s\n", strerror(-r->status));
		x->rc = 1;
		return;
	}
	struct score_result res;
	if (score_compute(x->rubric, r->exams, r->nexams, r->credits, r->ncredits, 1, &res)) {
		fprintf(stderr, "score: out of memory\n");
		x->rc = 1;
		return;
	}
	char a[SCORE_LOCAL_LEN], z[SCORE_LOCAL_LEN], canon[256];
	score_format_local(x->from, a);
	score_format_local(x->to, z);
	score_rubric_canonical(x->rubric, canon, sizeof(canon));
	printf("org %s, %s .. %s, rubric %s\n", x->org, a, z, x->rubric->version);
	if (x->explain) {
		printf("rubric (sha256 of this text, first 12 hex digits):\n");
		for (char *p = canon; *p;) {
			char *nl = strchr(p, '\n');
			printf("  %.*s\n", (int)(nl ? nl - p : (long)strlen(p)), p);
			p = nl ? nl + 1 : p + strlen(p);
		}
	}
	for (size_t i = 0; i < res.nsessions; i++) {
		const struct score_session *s = &res.sessions[i];
		const struct store_exam *e = s->exam;
		char st[SCORE_LOCAL_LEN], en[SCORE_LOCAL_LEN];
		score_format_local(e->start_ms, st);
		score_format_local(e->end_ms, en);
		printf("session %lld %s site %s %s .. %s rooms %s: score %d%s\n", (long long)e->id,
		       e->code, e->site, st, en, e->rooms, s->score,
		       score_provisional(x->rubric, e) ? " (provisional: may still change)" : "");
		if (!x->explain)
			continue;
		printf("    duration %lld ms\n", (long long)s->dur_ms);
		for (int c = 0; c < SCORE_NCRIT; c++) {
			int cls = score_criterion_class(c);
			printf("    %-10s class credits: ok %lld, degraded %lld, down %lld ms over "
			       "%lld "
			       "target%s%s\n",
			       score_criterion_name(c), (long long)e->ok_ms[cls],
			       (long long)e->degraded_ms[cls], (long long)e->down_ms[cls],
			       (long long)e->ntargets[cls], e->ntargets[cls] == 1 ? "" : "s",
			       c == SCORE_CONNECTED || c == SCORE_RECORDS ? " (ok+degraded count)"
			                                                  : " (ok counts)");
			pct_line("", s->held_ms[c], s->targets[c], s->dur_ms, s->frac[c], 1);
		}
		step_line(x->rubric, s->frac, s->weakest, s->score, "    ");
	}
	if (res.score < 0) {
		printf("no exam session in the period: no score\n");
	} else {
		if (x->explain) {
			printf("all sessions, weighted by duration (sum of held / %lld ms):\n",
			       (long long)res.dur_ms);
			for (int c = 0; c < SCORE_NCRIT; c++)
				printf("    %-10s %.0f ms / %lld ms = %.2f %%\n",
				       score_criterion_name(c), res.held_ms[c],
				       (long long)res.dur_ms, 100 * res.frac[c]);
			step_line(x->rubric, res.frac, res.weakest, res.score, "    ");
			for (int c = 0; c < SCORE_NCRIT; c++)
				for (size_t k = 0; k < res.nworst[c]; k++)
					printf("    reason %s: %s/%s not met %.1f min in %lld "
					       "session%s\n",
					       score_criterion_name(c), res.worst[c][k].site,
					       res.worst[c][k].target,
					       res.worst[c][k].unmet_ms / 60000.0,
					       (long long)res.worst[c][k].sessions,
					       res.worst[c][k].sessions == 1 ? "" : "s");
		}
		printf("score %d (", res.score);
		for (int c = 0; c < SCORE_NCRIT; c++)
			printf("%s%s %.2f %%", c ? ", " : "", score_criterion_name(c),
			       100 * res.frac[c]);
		printf(")\n");
	}
	score_result_free(&res);
}

int score_cli_run(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	struct server_conf *cfg = ctx;
	const char *org = vw_cli_str(v, "org"), *from = vw_cli_str(v, "from");
	const char *to = vw_cli_str(v, "to"), *other = vw_cli_str(v, "config");
	struct run x = {.rubric = &cfg->rubric, .org = org, .explain = vw_cli_flag(v, "explain")};
	if (!org || !from || !to) {
		fprintf(stderr, "score: --org, --from and --to are required\n");
		return 2;
	}
	if (strlen(org) > 64) {
		fprintf(stderr, "score: --org: longer than 64 bytes\n");
		return 2;
	}
	if (score_parse_time(from, &x.from) || score_parse_time(to, &x.to)) {
		fprintf(stderr,
		        "score: --%s: not a time: '%s' (YYYY-MM-DD or "
		        "YYYY-MM-DDTHH:MM[:SS][zone], Asia/Shanghai when no zone)\n",
		        score_parse_time(from, &x.from) ? "from" : "to",
		        score_parse_time(from, &x.from) ? from : to);
		return 2;
	}
	if (x.to <= x.from) {
		fprintf(stderr, "score: --to must be after --from\n");
		return 2;
	}
	struct server_conf alt;
	int have_alt = 0;
	if (other) {
		struct vw_conf_errors errs = {0};
		if (server_conf_load(&alt, other, &errs)) {
			fputs(errs.text, stderr);
			server_conf_free(&alt);
			return 1;
		}
		have_alt = 1;
		x.rubric = &alt.rubric;
	}
	uv_loop_t loop;
	struct store *s = NULL;
	char err[512] = "";
	int rc = uv_loop_init(&loop);
	if (rc) {
		fprintf(stderr, "score: %s\n", uv_strerror(rc));
		goto done_alt;
	}
	struct store_options so = {.backend = cfg->store_backend,
	                           .dir = cfg->server.state_dir,
	                           .dsn = cfg->store.dsn,
	                           .password_file = cfg->store.password_file,
	                           .durability = STORE_DURABLE_FULL,
	                           .raw_retention_ms = cfg->store.raw_retention_ms,
	                           .default_stale_ms = cfg->rubric.default_stale_ms,
	                           /* A reader beside a running server: the server's own
	                            * writer rolls up, never this process. */
	                           .rollup_tick_ms = -1};
	if ((rc = store_open(&so, &s, err, sizeof(err))) != 0) {
		fprintf(stderr, "score: %s\n", err);
		goto done_loop;
	}
	struct store_score_query q = {
	    .org = org, .from_ms = x.from, .to_ms = x.to, .with_credits = 1};
	if ((rc = store_start(s, &loop, 1)) != 0 ||
	    (rc = store_score_inputs(s, &q, on_inputs, &x)) != 0) {
		fprintf(stderr, "score: the store did not start: %s\n",
		        strerror(rc < 0 ? -rc : rc));
		x.rc = 1;
	}
	while (!rc && !x.done && uv_run(&loop, UV_RUN_ONCE))
		;
	store_close(s);
	uv_run(&loop, UV_RUN_DEFAULT); /* the store's handles close */
done_loop:
	uv_loop_close(&loop);
done_alt:
	if (have_alt)
		server_conf_free(&alt);
	return rc ? 1 : x.rc;
}
