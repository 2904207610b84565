/* The item-3.6 score over HTTP: GET /api/v1/orgs/{org}/score, /api/v1/sites/{site}/score,
 * /api/v1/score/ranking, /api/v1/evidence/{exam_id}-{criterion}, publishing
 * (POST .../score/publish, GET .../score/published) and the report (report.html, report.csv).
 * Loop thread: every handler queues a store read and answers in its completion, where the
 * score is computed (server/core/score.c) from the reply before the reply goes. Scope is
 * authz_site_visible per session: what a principal may not see is left out, so another
 * city's org or site answers exactly as one without sessions does. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "conf.h"
#include "credit.h"
#include "csvout.h"
#include "published.h"
#include "score.h"
#include "vtime.h"

/* A response is built whole before it goes (as sites.c does); this bounds one. */
#define RESPONSE_MAX (64u << 20)

/* The report has no script and no external resource (its style is inline, its links are
 * ours): a policy that allows nothing else keeps a string that slipped through escaping
 * inert, and nosniff keeps the CSV and JSON views from being read as HTML. */
#define REPORT_HTML_HEADERS                                                                        \
	"Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "                 \
	"img-src 'self'\r\n"                                                                       \
	"X-Content-Type-Options: nosniff\r\n"

enum score_view { VIEW_ORG, VIEW_SITE, VIEW_RANKING, VIEW_PUBLISH, VIEW_HTML, VIEW_CSV };

struct org_rank {
	char org[65];
	double held[SCORE_NCRIT];
	int64_t dur_ms, sessions;
	double frac[SCORE_NCRIT];
	int score, weakest;
};

struct rank_acc {
	struct org_rank *v;
	size_t n, cap;
	int64_t win_from; /* the window being read */
};

struct score_ctx {
	struct api *a;
	struct conn *c;
	struct authz_principal who;
	enum score_view view;
	char org[65], site[64], city[129];
	int64_t from_ms, to_ms;
	/* evidence: the session, copied from the first read for the second */
	int64_t exam_id;
	int crit;
	cJSON *exam_json, *credits_json;
	struct rank_acc *rank; /* ranking: the sums so far */
	size_t limit;          /* published: the page's length */
};

static void ctx_free(struct score_ctx *x)
{
	if (!x)
		return;
	cJSON_Delete(x->exam_json);
	cJSON_Delete(x->credits_json);
	if (x->rank)
		free(x->rank->v);
	free(x->rank);
	free(x);
}

static void respond_store_error(struct conn *c, int rc)
{
	if (rc == -E2BIG)
		conn_respond_error(c, 507, "response too large", NULL);
	else if (rc == -EAGAIN)
		conn_respond_error(c, 503, "server busy", NULL);
	else
		conn_respond_error(c, 503, "store unavailable", NULL);
}

static void respond_json(struct conn *c, int status, cJSON *doc)
{
	char *s = doc ? cJSON_PrintUnformatted(doc) : NULL;
	if (s)
		conn_respond(c, status, NULL, s, strlen(s));
	else
		conn_respond_error(c, 500, "internal", "out of memory");
	free(s);
}

/* --- query string ------------------------------------------------------------------------ */

static int hexv(int c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* The value of key in the query string, percent-decoded ('+' as a space, as forms send it).
 * 1 found, 0 absent, -1 too long for out. */
static int query_get(const char *q, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	for (const char *p = q; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t n = amp ? (size_t)(amp - p) : strlen(p);
		if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t o = 0;
			for (size_t i = kl + 1; i < n; i++) {
				int c = (unsigned char)p[i], hi, lo;
				if (c == '%' && i + 2 < n + 0 && (hi = hexv(p[i + 1])) >= 0 &&
				    (lo = hexv(p[i + 2])) >= 0) {
					c = hi * 16 + lo;
					i += 2;
				} else if (c == '+') {
					c = ' ';
				}
				if (o + 1 >= outlen)
					return -1;
				out[o++] = (char)c;
			}
			out[o] = '\0';
			return 1;
		}
		p = amp ? amp + 1 : NULL;
	}
	return 0;
}

/* Accepted times, as exams_time_parse accepts a session's: 2000-01-01 to the end of 2200
 * (UTC; the few hours' zone difference does not matter at the edges of two centuries). */
#define SCORE_TIME_MIN_MS 946684800000LL  /* 2000-01-01T00:00:00Z */
#define SCORE_TIME_END_MS 7289654400000LL /* 2201-01-01T00:00:00Z */
/* The longest period a view reads: an assessment looks back 5 years at most; 5 calendar years
 * hold at most 1827 days (two leap days), and one more day lets "from 2021-01-01 to
 * 2026-01-01" include its last day whatever the zone. Longer would tie a reader up for the
 * whole province's history. */
#define SCORE_PERIOD_MAX_MS (1828LL * 86400000)

/* from and to: both required (a score is always of a stated period), to after from. On
 * failure the 400 is sent and -1 returned. */
static int period(struct conn *c, const struct http_request *req, int64_t *from, int64_t *to)
{
	static const char *const keys[2] = {"from", "to"};
	int64_t *dst[2] = {from, to};
	for (int i = 0; i < 2; i++) {
		char v[64], why[160];
		int got = query_get(req->query, keys[i], v, sizeof(v));
		if (got <= 0 || score_parse_time(v, dst[i])) {
			snprintf(
			    why, sizeof(why),
			    "query parameter %s: %s (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][zone], "
			    "Asia/Shanghai when no zone; or epoch ms)",
			    keys[i], got == 0 ? "required" : "not a time");
			conn_respond_error(c, 400, "bad request", why);
			return -1;
		}
	}
	for (int i = 0; i < 2; i++) {
		if (*dst[i] < SCORE_TIME_MIN_MS || *dst[i] >= SCORE_TIME_END_MS) {
			char why[120];
			snprintf(why, sizeof(why),
			         "query parameter %s: outside the years 2000 to 2200", keys[i]);
			conn_respond_error(c, 400, "bad request", why);
			return -1;
		}
	}
	if (*to <= *from) {
		conn_respond_error(c, 400, "bad request",
		                   "query parameters: to must be after from");
		return -1;
	}
	if (*to - *from > SCORE_PERIOD_MAX_MS) {
		conn_respond_error(c, 400, "bad request",
		                   "query parameter to: the period from from to to is longer than "
		                   "5 years and a day");
		return -1;
	}
	return 0;
}

/* --- the computation from a reply ---------------------------------------------------------- */

/* The reply's sessions (and their credits) that the principal may see, copied shallowly:
 * strings still point into the reply. */
struct visible {
	struct store_exam *exams;
	size_t nexams;
	struct store_credit *credits;
	size_t ncredits;
};

static int visible_filter(const struct authz_principal *who, const struct store_reply *r,
                          struct visible *v)
{
	memset(v, 0, sizeof(*v));
	v->exams = malloc((r->nexams ? r->nexams : 1) * sizeof(*v->exams));
	v->credits = malloc((r->ncredits ? r->ncredits : 1) * sizeof(*v->credits));
	if (!v->exams || !v->credits) {
		free(v->exams);
		free(v->credits);
		return -ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < r->nexams; i++) {
		const struct store_exam *e = &r->exams[i];
		int ok = authz_site_visible(who, e->site, e->org, e->city);
		if (ok)
			v->exams[v->nexams++] = *e;
		/* Credits come grouped by exam in the exams' order, and a session without any
		 * has no group: take only the run at k that is this session's, never search
		 * ahead (that would skip every later session's credits). */
		for (; k < r->ncredits && r->credits[k].exam_id == e->id; k++)
			if (ok)
				v->credits[v->ncredits++] = r->credits[k];
	}
	return 0;
}

static void visible_free(struct visible *v)
{
	free(v->exams);
	free(v->credits);
}

static cJSON *rubric_json(const struct score_rubric *r)
{
	cJSON *o = cJSON_CreateObject();
	char text[256];
	score_rubric_canonical(r, text, sizeof(text));
	cJSON_AddStringToObject(o, "version", r->version);
	cJSON *p = cJSON_AddObjectToObject(o, "params");
	cJSON_AddNumberToObject(p, "full_pct", r->full_pct);
	cJSON_AddNumberToObject(p, "step4", r->step4_pct);
	cJSON_AddNumberToObject(p, "step3", r->step3_pct);
	cJSON_AddNumberToObject(p, "step2", r->step2_pct);
	cJSON_AddNumberToObject(p, "default_stale_ms", (double)r->default_stale_ms);
	cJSON_AddStringToObject(o, "canonical", text);
	return o;
}

static void add_local(cJSON *o, const char *key, int64_t ms)
{
	char t[SCORE_LOCAL_LEN];
	score_format_local(ms, t);
	cJSON_AddStringToObject(o, key, t);
}

static void add_score(cJSON *o, const char *key, int score)
{
	if (score < 0)
		cJSON_AddNullToObject(o, key);
	else
		cJSON_AddNumberToObject(o, key, score);
}

static cJSON *session_json(const struct score_rubric *r, const struct score_session *s)
{
	const struct store_exam *e = s->exam;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)e->id);
	cJSON_AddStringToObject(o, "code", e->code);
	cJSON_AddStringToObject(o, "org", e->org);
	cJSON_AddStringToObject(o, "city", e->city);
	cJSON_AddStringToObject(o, "site", e->site);
	cJSON_AddStringToObject(o, "occupation", e->occupation);
	cJSON_AddStringToObject(o, "level", e->level);
	cJSON_AddStringToObject(o, "rooms", e->rooms);
	cJSON_AddNumberToObject(o, "candidates", (double)e->candidates);
	add_local(o, "start", e->start_ms);
	add_local(o, "end", e->end_ms);
	cJSON_AddNumberToObject(o, "start_ms", (double)e->start_ms);
	cJSON_AddNumberToObject(o, "end_ms", (double)e->end_ms);
	cJSON_AddNumberToObject(o, "duration_ms", (double)s->dur_ms);
	add_score(o, "score", s->score);
	cJSON_AddStringToObject(o, "weakest", score_criterion_name(s->weakest));
	/* Until the rollup has seen [score] settle past the end, the figures may still change
	 * (a silent agent catching up, a hold open at the end closing). */
	cJSON_AddNumberToObject(o, "rolled_to_ms", (double)e->rolled_to_ms);
	cJSON_AddBoolToObject(o, "provisional", score_provisional(r, e));
	cJSON *cr = cJSON_AddObjectToObject(o, "criteria");
	for (int c = 0; c < SCORE_NCRIT; c++) {
		cJSON *k = cJSON_AddObjectToObject(cr, score_criterion_name(c));
		cJSON_AddNumberToObject(k, "fraction", s->frac[c]);
		cJSON_AddNumberToObject(k, "held_ms", s->held_ms[c]);
		cJSON_AddNumberToObject(k, "targets", (double)s->targets[c]);
		char link[96];
		snprintf(link, sizeof(link), "/api/v1/evidence/%lld-%s", (long long)e->id,
		         score_criterion_name(c));
		cJSON_AddStringToObject(k, "evidence", link);
	}
	return o;
}

/* The score document: what GET .../score serves and what publishing stores. */
static cJSON *score_doc(const struct score_ctx *x, const struct score_rubric *rub,
                        const struct score_result *res)
{
	cJSON *d = cJSON_CreateObject();
	cJSON *scope = cJSON_AddObjectToObject(d, "scope");
	if (x->site[0])
		cJSON_AddStringToObject(scope, "site", x->site);
	else
		cJSON_AddStringToObject(scope, "org", x->org);
	add_local(d, "from", x->from_ms);
	add_local(d, "to", x->to_ms);
	cJSON_AddNumberToObject(d, "from_ms", (double)x->from_ms);
	cJSON_AddNumberToObject(d, "to_ms", (double)x->to_ms);
	cJSON_AddItemToObject(d, "rubric", rubric_json(rub));
	add_score(d, "score", res->score);
	if (res->weakest >= 0)
		cJSON_AddStringToObject(d, "weakest", score_criterion_name(res->weakest));
	else
		cJSON_AddNullToObject(d, "weakest");
	cJSON_AddNumberToObject(d, "duration_ms", (double)res->dur_ms);
	cJSON *cr = cJSON_AddObjectToObject(d, "criteria");
	for (int c = 0; c < SCORE_NCRIT; c++) {
		cJSON *k = cJSON_AddObjectToObject(cr, score_criterion_name(c));
		cJSON_AddStringToObject(k, "label", score_criterion_label_zh(c));
		cJSON_AddNumberToObject(k, "fraction", res->frac[c]);
		cJSON_AddNumberToObject(k, "held_ms", res->held_ms[c]);
		cJSON_AddNumberToObject(k, "unmet_ms", res->unmet_ms[c]);
	}
	cJSON *rs = cJSON_AddObjectToObject(d, "reasons");
	for (int c = 0; c < SCORE_NCRIT; c++) {
		cJSON *arr = cJSON_AddArrayToObject(rs, score_criterion_name(c));
		for (size_t i = 0; i < res->nworst[c]; i++) {
			const struct score_reason *w = &res->worst[c][i];
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "site", w->site);
			cJSON_AddStringToObject(o, "target", w->target);
			cJSON_AddNumberToObject(o, "unmet_ms", (double)w->unmet_ms);
			cJSON_AddNumberToObject(o, "unmet_minutes", (double)w->unmet_ms / 60000.0);
			cJSON_AddNumberToObject(o, "sessions", (double)w->sessions);
			cJSON_AddItemToArray(arr, o);
		}
	}
	cJSON *ss = cJSON_AddArrayToObject(d, "sessions");
	for (size_t i = 0; i < res->nsessions; i++)
		cJSON_AddItemToArray(ss, session_json(rub, &res->sessions[i]));
	return d;
}

/* --- report ---------------------------------------------------------------------------------- */

void api_html_esc(struct vw_buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':
			vw_buf_puts(b, "&amp;");
			break;
		case '<':
			vw_buf_puts(b, "&lt;");
			break;
		case '>':
			vw_buf_puts(b, "&gt;");
			break;
		case '"':
			vw_buf_puts(b, "&quot;");
			break;
		case '\'':
			vw_buf_puts(b, "&#39;");
			break;
		default:
			vw_buf_append(b, s, 1);
		}
	}
}

static const char *frac_color(double f, const struct score_rubric *r)
{
	double pct = 100 * f;
	return pct >= r->full_pct ? "#2e7d32" : pct >= r->step3_pct ? "#f9a825" : "#c62828";
}

/* The timeline: one lane per criterion, each session a bar at its place in the period,
 * coloured by how much of it the criterion held. Inline SVG: the report has no external
 * resources (it is printed and archived; the ECharts dashboard is not built yet). */
static void html_timeline(struct vw_buf *b, const struct score_ctx *x, const struct score_rubric *r,
                          const struct score_result *res)
{
	const int W = 720, left = 110, lane = 22, H = lane * SCORE_NCRIT + 24;
	double span = (double)(x->to_ms - x->from_ms);
	vw_buf_printf(b,
	              "<svg class=\"timeline\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
	              "role=\"img\" aria-label=\"考试场次时间线\">",
	              W, H, W, H);
	for (int c = 0; c < SCORE_NCRIT; c++) {
		vw_buf_printf(b, "<text x=\"0\" y=\"%d\" font-size=\"11\">", c * lane + 15);
		api_html_esc(b, score_criterion_label_zh(c));
		vw_buf_printf(b,
		              "</text><line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" "
		              "stroke=\"#ddd\"/>",
		              left, W, c * lane + 20, c * lane + 20);
	}
	for (size_t i = 0; i < res->nsessions; i++) {
		const struct score_session *s = &res->sessions[i];
		double x0 = left + (W - left) * (double)(s->exam->start_ms - x->from_ms) / span;
		double w = (W - left) * (double)s->dur_ms / span;
		if (x0 < left)
			x0 = left;
		if (w < 2)
			w = 2; /* a 2 h session in a year is thinner than a pixel */
		for (int c = 0; c < SCORE_NCRIT; c++) {
			/* The code is the organisation's own text: escaped like every string
			 * from the store (a <title> ends at "</title>" like any element). */
			vw_buf_printf(b,
			              "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"14\" "
			              "fill=\"%s\"><title>",
			              x0, c * lane + 4, w, frac_color(s->frac[c], r));
			api_html_esc(b, s->exam->code);
			vw_buf_printf(b, " %s %.1f%%</title></rect>", score_criterion_name(c),
			              100 * s->frac[c]);
		}
	}
	char a[SCORE_LOCAL_LEN], z[SCORE_LOCAL_LEN];
	score_format_local(x->from_ms, a);
	score_format_local(x->to_ms, z);
	vw_buf_printf(
	    b,
	    "<text x=\"%d\" y=\"%d\" font-size=\"10\">%.10s</text>"
	    "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"end\">%.10s</text></svg>",
	    left, H - 4, a, W, H - 4, z);
}

static void report_html(struct vw_buf *b, const struct score_ctx *x, const struct score_rubric *r,
                        const struct score_result *res)
{
	char a[SCORE_LOCAL_LEN], z[SCORE_LOCAL_LEN];
	score_format_local(x->from_ms, a);
	score_format_local(x->to_ms, z);
	vw_buf_puts(b, "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
	               "<title>评估报告 项目 3.6 — ");
	api_html_esc(b, x->org);
	vw_buf_puts(b, "</title><style>"
	               "body{font-family:'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei',"
	               "sans-serif;margin:2em;color:#222}"
	               "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #999;"
	               "padding:4px 8px;text-align:left}th{background:#eee}"
	               ".score{font-size:2em;font-weight:bold}.muted{color:#666;font-size:.9em}"
	               "@media print{body{margin:1cm}a{color:inherit;text-decoration:none}"
	               "table,svg{page-break-inside:avoid}.noprint{display:none}}"
	               "</style></head><body>");
	vw_buf_puts(b, "<h1>社会培训评价组织评估 — 项目 3.6</h1><p>组织：");
	api_html_esc(b, x->org);
	vw_buf_printf(b, "<br>期间：%.19s 至 %.19s（北京时间）<br>评分细则版本：", a, z);
	api_html_esc(b, r->version);
	vw_buf_puts(b, "</p>");
	vw_buf_puts(b, "<table><tr><th>项目</th><th>内容</th><th>得分（0–5）</th></tr>"
	               "<tr><td>3.6</td><td>接入监管服务平台：现场网络连接顺畅、视频画面清晰、"
	               "评价现场全覆盖、影像资料有保存</td><td class=\"score\">");
	if (res->score < 0)
		vw_buf_puts(b, "—（期间内无考试场次）");
	else
		vw_buf_printf(b, "%d", res->score);
	vw_buf_puts(b, "</td></tr></table><h2>各项指标（按考试时间加权）</h2><table>"
	               "<tr><th>指标</th><th>达标时间占比</th><th>未达标（分钟）</th></tr>");
	for (int c = 0; c < SCORE_NCRIT; c++) {
		vw_buf_puts(b, "<tr><td>");
		api_html_esc(b, score_criterion_label_zh(c));
		vw_buf_printf(b, "</td><td>%.2f%%</td><td>%.1f</td></tr>", 100 * res->frac[c],
		              res->unmet_ms[c] / 60000.0);
	}
	vw_buf_puts(b, "</table><h2>考试场次时间线</h2>");
	html_timeline(b, x, r, res);
	vw_buf_puts(b, "<h2>画面不清晰时间最长的摄像机</h2><table><tr><th>考点</th><th>摄像机</th>"
	               "<th>不清晰（分钟）</th><th>场次数</th></tr>");
	for (size_t i = 0; i < res->nworst[SCORE_PICTURE]; i++) {
		const struct score_reason *w = &res->worst[SCORE_PICTURE][i];
		vw_buf_puts(b, "<tr><td>");
		api_html_esc(b, w->site);
		vw_buf_puts(b, "</td><td>");
		api_html_esc(b, w->target);
		vw_buf_printf(b, "</td><td>%.1f</td><td>%lld</td></tr>", w->unmet_ms / 60000.0,
		              (long long)w->sessions);
	}
	vw_buf_puts(b,
	            "</table><h2>考试场次</h2><table><tr><th>场次</th><th>考点</th><th>职业（工种）"
	            "</th><th>时间</th>");
	for (int c = 0; c < SCORE_NCRIT; c++) {
		vw_buf_puts(b, "<th>");
		api_html_esc(b, score_criterion_label_zh(c));
		vw_buf_puts(b, "</th>");
	}
	vw_buf_puts(b, "<th>得分</th></tr>");
	for (size_t i = 0; i < res->nsessions; i++) {
		const struct score_session *s = &res->sessions[i];
		char st[SCORE_LOCAL_LEN], en[SCORE_LOCAL_LEN];
		score_format_local(s->exam->start_ms, st);
		score_format_local(s->exam->end_ms, en);
		vw_buf_puts(b, "<tr><td>");
		api_html_esc(b, s->exam->code);
		vw_buf_puts(b, "</td><td>");
		api_html_esc(b, s->exam->site);
		vw_buf_puts(b, "</td><td>");
		api_html_esc(b, s->exam->occupation);
		vw_buf_puts(b, " ");
		api_html_esc(b, s->exam->level);
		vw_buf_printf(b, "</td><td>%.16s–%.5s</td>", st, en + 11);
		for (int c = 0; c < SCORE_NCRIT; c++)
			vw_buf_printf(b, "<td><a href=\"/api/v1/evidence/%lld-%s\">%.1f%%</a></td>",
			              (long long)s->exam->id, score_criterion_name(c),
			              100 * s->frac[c]);
		vw_buf_printf(b, "<td>%d</td></tr>", s->score);
	}
	vw_buf_puts(b, "</table><p class=\"muted\">每个百分比链接到其证据（检测结果原始记录）。"
	               "计算方法见 docs/SCORE.md；同一证据可由任何人复算。</p></body></html>");
}

static void report_csv(struct vw_buf *b, const struct score_rubric *r,
                       const struct score_result *res)
{
	vw_buf_puts(b, HTTP_CSV_BOM);
	static const char *const head[] = {
	    "session_id",   "code",          "site",        "start",         "end",
	    "duration_min", "connected_pct", "network_pct", "picture_pct",   "floor_pct",
	    "records_pct",  "score",         "weakest",     "rubric_version"};
	csvout_row(b, head, sizeof(head) / sizeof(head[0]));
	char num[SCORE_NCRIT + 3][32];
	for (size_t i = 0; i <= res->nsessions; i++) {
		int total = i == res->nsessions; /* the last row: the whole period */
		const struct score_session *s = total ? NULL : &res->sessions[i];
		char st[SCORE_LOCAL_LEN] = "", en[SCORE_LOCAL_LEN] = "";
		if (s) {
			score_format_local(s->exam->start_ms, st);
			score_format_local(s->exam->end_ms, en);
			snprintf(num[0], 32, "%lld", (long long)s->exam->id);
		}
		snprintf(num[1], 32, "%.1f", (total ? res->dur_ms : s->dur_ms) / 60000.0);
		for (int c = 0; c < SCORE_NCRIT; c++)
			snprintf(num[2 + c], 32, "%.2f", 100 * (total ? res->frac[c] : s->frac[c]));
		int sc = total ? res->score : s->score;
		int w = total ? res->weakest : s->weakest;
		if (sc >= 0)
			snprintf(num[2 + SCORE_NCRIT], 32, "%d", sc);
		else
			num[2 + SCORE_NCRIT][0] = '\0';
		const char *row[] = {total ? "total" : num[0],
		                     total ? "" : s->exam->code,
		                     total ? "" : s->exam->site,
		                     st,
		                     en,
		                     num[1],
		                     num[2],
		                     num[3],
		                     num[4],
		                     num[5],
		                     num[6],
		                     num[7],
		                     w >= 0 ? score_criterion_name(w) : "",
		                     r->version};
		csvout_row(b, row, sizeof(row) / sizeof(row[0]));
	}
}

/* --- completions ------------------------------------------------------------------------------ */

static void on_published(void *ud, int status, const struct published_row *rows, size_t n);

static void on_inputs(void *ud, const struct store_reply *r)
{
	struct score_ctx *x = ud;
	const struct score_rubric *rub = &x->a->rubric;
	if (r->status) {
		respond_store_error(x->c, r->status);
		ctx_free(x);
		return;
	}
	struct visible v;
	struct score_result res;
	if (visible_filter(&x->who, r, &v)) {
		conn_respond_error(x->c, 500, "internal", "out of memory");
		ctx_free(x);
		return;
	}
	/* A published score is the org's: none of its sessions in the period visible answers as
	 * an org that does not exist (as another scope's evidence does), and a part of them
	 * visible is refused, or a city's share would stand as the whole org's score. */
	if (x->view == VIEW_PUBLISH && (v.nexams == 0 || v.nexams < r->nexams)) {
		if (v.nexams == 0)
			conn_respond_error(
			    x->c, 404, "no such org",
			    "no session of this org in the period within your scope");
		else
			conn_respond_error(x->c, 409, "conflict",
			                   "some of this org's sessions in the period are outside "
			                   "your scope: only a principal who sees all of them may "
			                   "publish its score");
		visible_free(&v);
		ctx_free(x);
		return;
	}
	if (score_compute(rub, v.exams, v.nexams, v.credits, v.ncredits, 1, &res)) {
		visible_free(&v);
		conn_respond_error(x->c, 500, "internal", "out of memory");
		ctx_free(x);
		return;
	}
	if (x->view == VIEW_HTML || x->view == VIEW_CSV) {
		struct vw_buf b;
		vw_buf_init(&b, RESPONSE_MAX);
		char disp[128] = "";
		if (x->view == VIEW_HTML)
			report_html(&b, x, rub, &res);
		else
			report_csv(&b, rub, &res);
		if (b.err)
			conn_respond_error(x->c, 507, "response too large", NULL);
		else if (x->view == VIEW_HTML)
			conn_respond_typed(x->c, 200, HTTP_CT_HTML, REPORT_HTML_HEADERS, b.data,
			                   b.len);
		else if (http_attachment_header(disp, sizeof(disp), "report.csv") == 0)
			conn_respond_typed(x->c, 200, HTTP_CT_CSV, disp, b.data, b.len);
		else
			conn_respond_error(x->c, 500, "internal", NULL);
		vw_buf_free(&b);
	} else {
		cJSON *doc = score_doc(x, rub, &res);
		if (x->view == VIEW_PUBLISH && doc) {
			char *text = cJSON_PrintUnformatted(doc);
			char canon[256];
			score_rubric_canonical(rub, canon, sizeof(canon));
			struct published_row row = {
			    .org = x->org,
			    .scope_city = x->who.person.role == AUTH_CITY ? x->who.person.city : "",
			    .from_ms = x->from_ms,
			    .to_ms = x->to_ms,
			    .published_ms = vw_now_ms(),
			    .score = res.score,
			    .rubric_version = rub->version,
			    .rubric_text = canon,
			    .actor = x->who.person.id,
			    .doc = text ? text : "",
			};
			int rc = text && x->a->published
			             ? published_add(x->a->published, &row, on_published, x)
			             : -ESHUTDOWN;
			free(text);
			cJSON_Delete(doc);
			score_result_free(&res);
			visible_free(&v);
			if (rc) {
				conn_respond_error(x->c, 503, "published scores unavailable", NULL);
				ctx_free(x);
			}
			return; /* on_published answers */
		}
		respond_json(x->c, 200, doc);
		cJSON_Delete(doc);
	}
	score_result_free(&res);
	visible_free(&v);
	ctx_free(x);
}

static cJSON *published_json(const struct published_row *p)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)p->id);
	cJSON_AddStringToObject(o, "org", p->org);
	cJSON_AddStringToObject(o, "scope_city", p->scope_city);
	add_local(o, "from", p->from_ms);
	add_local(o, "to", p->to_ms);
	add_local(o, "published", p->published_ms);
	add_score(o, "score", p->score);
	cJSON_AddStringToObject(o, "rubric_version", p->rubric_version);
	cJSON_AddStringToObject(o, "rubric_canonical", p->rubric_text);
	cJSON_AddStringToObject(o, "by", p->actor);
	/* Served as it was stored: the document of the day it was published. */
	cJSON *doc = cJSON_Parse(p->doc);
	cJSON_AddItemToObject(o, "document", doc ? doc : cJSON_CreateNull());
	return o;
}

/* Who may see a published row: the province every one; a city those it published; an org
 * its own. */
static int published_visible(const struct authz_principal *who, const struct published_row *p)
{
	if (who->kind != AUTHZ_PERSON)
		return 0;
	switch (who->person.role) {
	case AUTH_PROVINCE:
		return 1;
	case AUTH_CITY:
		return strcmp(p->scope_city, who->person.city) == 0;
	case AUTH_ORG:
		return strcmp(p->org, who->person.org) == 0;
	default:
		return 0;
	}
}

static void on_published(void *ud, int status, const struct published_row *rows, size_t n)
{
	struct score_ctx *x = ud;
	if (status) {
		conn_respond_error(x->c, 503, "published scores unavailable", NULL);
		ctx_free(x);
		return;
	}
	if (x->view == VIEW_PUBLISH) {
		log_info("event=score_published org=%s id=%lld score=%d rubric=%s by=%s", x->org,
		         n ? (long long)rows[0].id : 0LL, n ? rows[0].score : -1,
		         x->a->rubric.version, x->who.person.id);
		cJSON *o = n ? published_json(&rows[0]) : NULL;
		respond_json(x->c, 201, o);
		cJSON_Delete(o);
	} else {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "org", x->org);
		cJSON *arr = cJSON_AddArrayToObject(d, "published");
		/* The store filtered by scope already (so a page is full); this stays as the
		 * last word on who sees what. */
		size_t shown = n < x->limit ? n : x->limit;
		for (size_t i = 0; i < shown; i++)
			if (published_visible(&x->who, &rows[i]))
				cJSON_AddItemToArray(arr, published_json(&rows[i]));
		if (n > x->limit) /* one row more than the page: another page follows */
			cJSON_AddNumberToObject(d, "next_before", (double)rows[shown - 1].id);
		else
			cJSON_AddNullToObject(d, "next_before");
		respond_json(x->c, 200, d);
		cJSON_Delete(d);
	}
	ctx_free(x);
}

/* --- ranking ------------------------------------------------------------------------------------
 */

/* A province-wide year outgrows one store reply (STORE_REPLY_MAX), so a ranking reads its
 * period in windows of this length and adds each org's held time and session time up as it
 * goes: the sum is the very Σ held / Σ duration score_compute takes over all sessions. A
 * month of a province (~26,000 sessions at issue 11's scale) is a reply of a few MiB. */
#define RANK_WINDOW_MS (31LL * 86400000)

static int exam_by_org(const void *a, const void *b)
{
	const struct store_exam *x = a, *y = b;
	int c = strcmp(x->org, y->org);
	return c ? c : (x->start_ms > y->start_ms) - (x->start_ms < y->start_ms);
}

static int rank_cmp(const void *a, const void *b)
{
	const struct org_rank *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	double fx = x->weakest >= 0 ? x->frac[x->weakest] : -1;
	double fy = y->weakest >= 0 ? y->frac[y->weakest] : -1;
	if (fx != fy)
		return fx > fy ? -1 : 1;
	return strcmp(x->org, y->org);
}

static struct org_rank *rank_entry(struct rank_acc *acc, const char *org)
{
	for (size_t i = 0; i < acc->n; i++)
		if (strcmp(acc->v[i].org, org) == 0)
			return &acc->v[i];
	if (acc->n == acc->cap) {
		size_t nc = acc->cap ? acc->cap * 2 : 64;
		struct org_rank *p = realloc(acc->v, nc * sizeof(*p));
		if (!p)
			return NULL;
		acc->v = p;
		acc->cap = nc;
	}
	struct org_rank *e = &acc->v[acc->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->org, sizeof(e->org), "%s", org);
	return e;
}

/* One window's sessions into the sums. A session overlapping several windows counts in the
 * first that holds its start (or the first window, for one that began before the period). */
static int rank_add(struct score_ctx *x, struct rank_acc *acc, const struct store_reply *r)
{
	struct visible v;
	struct score_result res;
	if (visible_filter(&x->who, r, &v))
		return -ENOMEM;
	qsort(v.exams, v.nexams, sizeof(*v.exams), exam_by_org);
	int rc = score_compute(&x->a->rubric, v.exams, v.nexams, NULL, 0, 0, &res);
	struct org_rank *cur = NULL;
	for (size_t i = 0; !rc && i < res.nsessions; i++) {
		const struct score_session *s = &res.sessions[i];
		int64_t at = s->exam->start_ms > x->from_ms ? s->exam->start_ms : x->from_ms;
		if (at < acc->win_from || at >= acc->win_from + RANK_WINDOW_MS)
			continue;
		if (!cur || strcmp(cur->org, s->exam->org) != 0)
			cur = rank_entry(acc, s->exam->org);
		if (!cur) {
			rc = -ENOMEM;
			break;
		}
		for (int c = 0; c < SCORE_NCRIT; c++)
			cur->held[c] += s->held_ms[c];
		cur->dur_ms += s->dur_ms;
		cur->sessions++;
	}
	if (!rc)
		score_result_free(&res);
	visible_free(&v);
	return rc;
}

static void rank_respond(struct score_ctx *x, struct rank_acc *acc)
{
	const struct score_rubric *rub = &x->a->rubric;
	for (size_t k = 0; k < acc->n; k++) {
		struct org_rank *o = &acc->v[k];
		for (int c = 0; c < SCORE_NCRIT; c++)
			o->frac[c] = o->dur_ms > 0 ? o->held[c] / (double)o->dur_ms : 0;
		o->score = o->dur_ms > 0 ? score_from_fractions(rub, o->frac, &o->weakest) : -1;
		if (o->dur_ms <= 0)
			o->weakest = -1;
	}
	if (acc->n)
		qsort(acc->v, acc->n, sizeof(*acc->v), rank_cmp);
	cJSON *d = cJSON_CreateObject();
	add_local(d, "from", x->from_ms);
	add_local(d, "to", x->to_ms);
	if (x->city[0])
		cJSON_AddStringToObject(d, "city", x->city);
	cJSON_AddItemToObject(d, "rubric", rubric_json(rub));
	cJSON *arr = cJSON_AddArrayToObject(d, "orgs");
	for (size_t k = 0; k < acc->n; k++) {
		const struct org_rank *s = &acc->v[k];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "rank", (double)(k + 1));
		cJSON_AddStringToObject(o, "org", s->org);
		add_score(o, "score", s->score);
		if (s->weakest >= 0)
			cJSON_AddStringToObject(o, "weakest", score_criterion_name(s->weakest));
		else
			cJSON_AddNullToObject(o, "weakest");
		cJSON_AddNumberToObject(o, "sessions", (double)s->sessions);
		cJSON_AddNumberToObject(o, "duration_ms", (double)s->dur_ms);
		cJSON *cr = cJSON_AddObjectToObject(o, "criteria");
		for (int c = 0; c < SCORE_NCRIT; c++)
			cJSON_AddNumberToObject(cr, score_criterion_name(c), s->frac[c]);
		char link[128];
		snprintf(link, sizeof(link), "/api/v1/orgs/%s/score", s->org);
		cJSON_AddStringToObject(o, "href", link);
		cJSON_AddItemToArray(arr, o);
	}
	respond_json(x->c, 200, d);
	cJSON_Delete(d);
}

static void rank_read(struct score_ctx *x);

static void on_ranking(void *ud, const struct store_reply *r)
{
	struct score_ctx *x = ud;
	struct rank_acc *acc = x->rank;
	if (r->status) {
		respond_store_error(x->c, r->status);
		ctx_free(x);
		return;
	}
	if (rank_add(x, acc, r)) {
		conn_respond_error(x->c, 500, "internal", "out of memory");
		ctx_free(x);
		return;
	}
	acc->win_from += RANK_WINDOW_MS;
	if (acc->win_from < x->to_ms && conn_peer_gone(x->c)) {
		/* Nobody is waiting: the remaining windows would only hold the reader. The
		 * answer owed is dropped by conn (the peer is gone) and releases c. */
		log_info("event=ranking_abandoned peer=%s at_ms=%lld to_ms=%lld", conn_peer(x->c),
		         (long long)acc->win_from, (long long)x->to_ms);
		conn_respond_error(x->c, 503, "client gone", NULL);
		ctx_free(x);
		return;
	}
	if (acc->win_from < x->to_ms) {
		rank_read(x); /* the next window: one read at a time, never a burst */
		return;
	}
	rank_respond(x, acc);
	ctx_free(x);
}

static void rank_read(struct score_ctx *x)
{
	struct rank_acc *acc = x->rank;
	int64_t to =
	    acc->win_from + RANK_WINDOW_MS < x->to_ms ? acc->win_from + RANK_WINDOW_MS : x->to_ms;
	/* The first window reads from the period's start, so a session that began before it
	 * and overlaps it is in; later windows start at their own start. */
	struct store_score_query q = {.from_ms = acc->win_from, .to_ms = to, .with_credits = 0};
	if (x->org[0])
		q.org = x->org;
	if (x->who.person.role == AUTH_CITY)
		q.city = x->who.person.city;
	else if (x->city[0])
		q.city = x->city;
	int rc = store_score_inputs(x->a->store, &q, on_ranking, x);
	if (rc) {
		respond_store_error(x->c, rc);
		ctx_free(x);
	}
}

/* --- evidence ------------------------------------------------------------------------------------
 */

static void on_evidence_rows(void *ud, const struct store_reply *r)
{
	struct score_ctx *x = ud;
	if (r->status) {
		if (r->status == -ENOENT)
			conn_respond_error(x->c, 404, "no such evidence", NULL);
		else
			respond_store_error(x->c, r->status);
		ctx_free(x);
		return;
	}
	int c = x->crit;
	cJSON *d = cJSON_CreateObject();
	char id[64];
	snprintf(id, sizeof(id), "%lld-%s", (long long)x->exam_id, score_criterion_name(c));
	cJSON_AddStringToObject(d, "id", id);
	cJSON_AddStringToObject(d, "criterion", score_criterion_name(c));
	cJSON_AddStringToObject(d, "label", score_criterion_label_zh(c));
	/* What counts and how long a row holds: enough to recompute the minutes from the
	 * rows alone (docs/SCORE.md). */
	cJSON_AddStringToObject(d, "counts",
	                        c == SCORE_CONNECTED || c == SCORE_RECORDS ? "ok|degraded" : "ok");
	cJSON_AddNumberToObject(d, "stale_factor", CREDIT_STALE_FACTOR);
	cJSON_AddNumberToObject(d, "default_stale_ms", (double)x->a->rubric.default_stale_ms);
	cJSON_AddStringToObject(d, "rubric_version", x->a->rubric.version);
	cJSON_AddItemToObject(d, "session", x->exam_json);
	x->exam_json = NULL;
	cJSON_AddItemToObject(d, "credits", x->credits_json);
	x->credits_json = NULL;
	cJSON_AddBoolToObject(d, "pruned", r->value == 1);
	cJSON *rows = cJSON_AddArrayToObject(d, "rows");
	for (size_t i = 0; i < r->ntargets; i++) {
		const struct store_target *t = &r->targets[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "agent", t->agent);
		cJSON_AddStringToObject(o, "kind", t->kind);
		cJSON_AddStringToObject(o, "target", t->target);
		cJSON_AddStringToObject(o, "status", t->status);
		char iso[VW_ISO_LEN];
		vw_time_iso(t->ts_ms, iso);
		cJSON_AddStringToObject(o, "ts", iso);
		cJSON_AddNumberToObject(o, "ts_ms", (double)t->ts_ms);
		cJSON_AddNumberToObject(o, "seq", (double)t->seq);
		cJSON *f = cJSON_Parse(t->faults[0] ? t->faults : "[]");
		cJSON *m = cJSON_Parse(t->metrics[0] ? t->metrics : "{}");
		cJSON_AddItemToObject(o, "faults", f ? f : cJSON_CreateArray());
		cJSON_AddItemToObject(o, "metrics", m ? m : cJSON_CreateObject());
		cJSON_AddItemToArray(rows, o);
	}
	respond_json(x->c, 200, d);
	cJSON_Delete(d);
	ctx_free(x);
}

static void on_evidence_exam(void *ud, const struct store_reply *r)
{
	struct score_ctx *x = ud;
	if (r->status) {
		respond_store_error(x->c, r->status);
		ctx_free(x);
		return;
	}
	/* Another scope's session answers like a missing one. */
	if (r->nexams != 1 ||
	    !authz_site_visible(&x->who, r->exams[0].site, r->exams[0].org, r->exams[0].city)) {
		conn_respond_error(x->c, 404, "no such evidence", NULL);
		ctx_free(x);
		return;
	}
	struct score_result res;
	if (score_compute(&x->a->rubric, r->exams, 1, r->credits, r->ncredits, 1, &res)) {
		conn_respond_error(x->c, 500, "internal", "out of memory");
		ctx_free(x);
		return;
	}
	x->exam_json = session_json(&x->a->rubric, &res.sessions[0]);
	cJSON *crit = cJSON_GetObjectItem(cJSON_GetObjectItem(x->exam_json, "criteria"),
	                                  score_criterion_name(x->crit));
	cJSON_AddItemReferenceToObject(x->exam_json, "this", crit);
	x->credits_json = cJSON_CreateArray();
	int cls = score_criterion_class(x->crit);
	for (size_t i = 0; i < r->ncredits; i++) {
		const struct store_credit *k = &r->credits[i];
		if (k->cls != cls)
			continue;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "target", k->target);
		cJSON_AddNumberToObject(o, "ok_ms", (double)k->ok_ms);
		cJSON_AddNumberToObject(o, "degraded_ms", (double)k->degraded_ms);
		cJSON_AddNumberToObject(o, "down_ms", (double)k->down_ms);
		cJSON_AddNumberToObject(o, "results", (double)k->results);
		cJSON_AddItemToArray(x->credits_json, o);
	}
	score_result_free(&res);
	int rc = store_score_evidence(x->a->store, x->exam_id, cls, NULL, on_evidence_rows, x);
	if (rc) {
		respond_store_error(x->c, rc);
		ctx_free(x);
	}
}

/* --- handlers
 * ------------------------------------------------------------------------------------- */

static struct score_ctx *ctx_new(struct api *a, struct conn *c, const struct authz_principal *who,
                                 enum score_view view)
{
	struct score_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		conn_respond_error(c, 500, "internal", "out of memory");
		return NULL;
	}
	x->a = a;
	x->c = c;
	x->who = *who;
	x->view = view;
	return x;
}

static void queue_inputs(struct score_ctx *x, int with_credits)
{
	/* Narrow the read to the principal's own scope (the filter still decides). */
	struct store_score_query q = {
	    .from_ms = x->from_ms, .to_ms = x->to_ms, .with_credits = with_credits};
	if (x->org[0])
		q.org = x->org;
	if (x->site[0])
		q.site = x->site;
	/* Publishing reads the org's every session in the period, so on_inputs can tell a
	 * whole org from the part of it this principal sees. */
	if (x->view == VIEW_PUBLISH)
		;
	else if (x->who.person.role == AUTH_CITY)
		q.city = x->who.person.city;
	else if (x->city[0])
		q.city = x->city;
	int rc = store_score_inputs(x->a->store, &q,
	                            x->view == VIEW_RANKING ? on_ranking : on_inputs, x);
	if (rc) {
		respond_store_error(x->c, rc);
		ctx_free(x);
	}
}

static void org_view(struct api *a, struct conn *c, const struct http_request *req,
                     const struct router_match *m, const struct authz_principal *who,
                     enum score_view view)
{
	const char *org = router_param(m, "org");
	int64_t from, to;
	if (!org) {
		conn_respond_error(c, 404, "not found", NULL);
		return;
	}
	if (period(c, req, &from, &to))
		return;
	struct score_ctx *x = ctx_new(a, c, who, view);
	if (!x)
		return;
	snprintf(x->org, sizeof(x->org), "%s", org);
	x->from_ms = from;
	x->to_ms = to;
	queue_inputs(x, 1);
}

void api_score_org(struct api *a, struct conn *c, const struct http_request *req,
                   const struct router_match *m, const struct authz_principal *who)
{
	org_view(a, c, req, m, who, VIEW_ORG);
}

void api_score_report_html(struct api *a, struct conn *c, const struct http_request *req,
                           const struct router_match *m, const struct authz_principal *who)
{
	org_view(a, c, req, m, who, VIEW_HTML);
}

void api_score_report_csv(struct api *a, struct conn *c, const struct http_request *req,
                          const struct router_match *m, const struct authz_principal *who)
{
	org_view(a, c, req, m, who, VIEW_CSV);
}

void api_score_publish(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who)
{
	/* A cookie-borne publish must come from our own pages (as every state change). */
	if (who->by_session && !authz_origin_ok(a, req)) {
		conn_respond_error(c, 403, "forbidden", "cross-origin request");
		return;
	}
	org_view(a, c, req, m, who, VIEW_PUBLISH);
}

void api_score_published(struct api *a, struct conn *c, const struct http_request *req,
                         const struct router_match *m, const struct authz_principal *who)
{
	const char *org = router_param(m, "org");
	if (!org) {
		conn_respond_error(c, 404, "not found", NULL);
		return;
	}
	/* A page at a time, newest first: an org published monthly for years is still one
	 * bounded read. before= is the next_before of the page before. */
	struct published_query q = {.org = org, .limit = 20};
	static const char *const keys[2] = {"limit", "before"};
	for (int i = 0; i < 2; i++) {
		char v[32], why[120], *end = NULL;
		int got = query_get(req->query, keys[i], v, sizeof(v));
		if (got == 0)
			continue;
		long long n = got > 0 && v[0] >= '0' && v[0] <= '9' ? strtoll(v, &end, 10) : -1;
		int bad = got < 0 || !end || *end || n < 1 || (i == 0 ? n > PUBLISHED_PAGE_MAX : 0);
		if (bad) {
			snprintf(why, sizeof(why), "query parameter %s: %s", keys[i],
			         i == 0 ? "a whole number from 1 to 100"
			                : "a published id (a page's next_before)");
			conn_respond_error(c, 400, "bad request", why);
			return;
		}
		if (i == 0)
			q.limit = (size_t)n;
		else
			q.before_id = n;
	}
	struct score_ctx *x = ctx_new(a, c, who, VIEW_ORG);
	if (!x)
		return;
	snprintf(x->org, sizeof(x->org), "%s", org);
	x->limit = q.limit;
	/* published_visible's rules, as the store's filter: a city reads what it published;
	 * an org only its own (another org's list reads empty, as one never published). */
	if (who->kind == AUTHZ_PERSON && who->person.role == AUTH_CITY)
		q.scope_city = who->person.city;
	if (who->kind != AUTHZ_PERSON ||
	    (who->person.role != AUTH_PROVINCE && who->person.role != AUTH_CITY &&
	     !(who->person.role == AUTH_ORG && strcmp(who->person.org, org) == 0))) {
		on_published(x, 0, NULL, 0);
		return;
	}
	int rc = a->published ? published_list(a->published, &q, on_published, x) : -ESHUTDOWN;
	if (rc) {
		conn_respond_error(c, 503, "published scores unavailable", NULL);
		ctx_free(x);
	}
}

void api_score_site(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who)
{
	const char *site = router_param(m, "site");
	int64_t from, to;
	if (!site) {
		conn_respond_error(c, 404, "no such site", NULL);
		return;
	}
	struct authz_principal granted = *who; /* issue 12 D: an inspector's one site */
	if (authz_site_grant_or_refuse(a, c, &granted, site))
		return;
	who = &granted;
	if (period(c, req, &from, &to))
		return;
	struct score_ctx *x = ctx_new(a, c, who, VIEW_SITE);
	if (!x)
		return;
	snprintf(x->site, sizeof(x->site), "%s", site);
	x->from_ms = from;
	x->to_ms = to;
	queue_inputs(x, 1);
}

void api_score_ranking(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	int64_t from, to;
	char city[129] = "";
	if (period(c, req, &from, &to))
		return;
	if (query_get(req->query, "city", city, sizeof(city)) < 0) {
		conn_respond_error(c, 400, "bad request", "query parameter city: too long");
		return;
	}
	struct score_ctx *x = ctx_new(a, c, who, VIEW_RANKING);
	if (!x)
		return;
	snprintf(x->city, sizeof(x->city), "%s", city);
	x->from_ms = from;
	x->to_ms = to;
	/* An org token ranks only itself: other orgs' figures are theirs. */
	if (who->person.role == AUTH_ORG)
		snprintf(x->org, sizeof(x->org), "%s", who->person.org);
	if (!(x->rank = calloc(1, sizeof(*x->rank)))) {
		conn_respond_error(c, 500, "internal", "out of memory");
		ctx_free(x);
		return;
	}
	x->rank->win_from = from;
	rank_read(x);
}

void api_evidence_get(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who)
{
	(void)req;
	const char *id = router_param(m, "id");
	const char *dash = id ? strchr(id, '-') : NULL;
	char *end = NULL;
	long long exam = dash ? strtoll(id, &end, 10) : 0;
	int crit = dash ? score_criterion_parse(dash + 1) : -1;
	if (!dash || end != dash || exam <= 0 || crit < 0) {
		conn_respond_error(c, 404, "no such evidence", "expected {session id}-{criterion}");
		return;
	}
	struct score_ctx *x = ctx_new(a, c, who, VIEW_ORG);
	if (!x)
		return;
	x->exam_id = exam;
	x->crit = crit;
	int rc = store_score_exam(a->store, exam, on_evidence_exam, x);
	if (rc) {
		respond_store_error(c, rc);
		ctx_free(x);
	}
}

/* issue 12 D: an inspection's 3.6 evidence snapshot at recording — its slot's session as GET
 * .../score shows a session (criteria, fractions, evidence links) with the rubric and when it
 * was taken. r is store_score_exam's reply. malloc'd JSON text, or NULL (no such session,
 * out of memory). */
char *api_score_session_snapshot(struct api *a, const struct store_reply *r, int64_t now_ms)
{
	if (r->status || r->nexams != 1)
		return NULL;
	struct score_result res;
	if (score_compute(&a->rubric, r->exams, 1, r->credits, r->ncredits, 1, &res))
		return NULL;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddItemToObject(d, "rubric", rubric_json(&a->rubric));
	cJSON_AddItemToObject(d, "session", session_json(&a->rubric, &res.sessions[0]));
	char iso[VW_ISO_LEN];
	vw_time_iso(now_ms, iso);
	cJSON_AddStringToObject(d, "taken", iso);
	score_result_free(&res);
	char *out = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	return out;
}
