/* 一公开 over HTTP: /public/ (zh-CN HTML rendered here: no script, no external asset, a CSP
 * that allows neither), the CSVs and /public/api/ JSON of the same — committed draws'
 * manifests, published draws' drawn lists and documents, results with their due dates.
 * Anonymous (AUTHZ_ANON): what is shown is publication.c's whitelist and nothing else; an
 * unpublished draw answers as an unknown one. Loop thread: each handler queues one read on
 * inspect's worker and renders in its completion. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_int.h"
#include "calendar.h"
#include "csvout.h"
#include "inspect.h"
#include "publication.h"
#include "vtime.h"

#define RESPONSE_MAX (64u << 20)

/* As the score report: no script, inline style only, nothing fetched from elsewhere. */
#define PUBLIC_HTML_HEADERS                                                                        \
	"Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n"               \
	"X-Content-Type-Options: nosniff\r\n"
#define PUBLIC_DATA_HEADERS "X-Content-Type-Options: nosniff\r\n"

enum public_view {
	PV_INDEX_HTML,
	PV_DRAW_HTML,
	PV_DRAW_CSV,
	PV_RESULTS_CSV,
	PV_DRAWS_JSON,
	PV_DRAW_JSON,
	PV_DOCUMENT,
	PV_RESULTS_JSON,
};

struct public_ctx {
	struct api *a;
	struct conn *c;
	enum public_view view;
	struct publication_job job;
	/* the index page shows the draws and the results: two reads */
	struct publication_job results;
};

static void ctx_free(struct public_ctx *x)
{
	publication_job_free(&x->job);
	publication_job_free(&x->results);
	free(x);
}

/* --- rendering ---------------------------------------------------------------------------------
 */

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static int flag(const cJSON *o, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* "2026-12-07T01:30:00.000Z" → "2026-12-07 09:30" (Beijing time, as the bureaus write it). */
static void local_minute(const char *iso, char out[24])
{
	int64_t ms;
	out[0] = '\0';
	if (!iso || !iso[0] || vw_time_parse_iso(iso, &ms))
		return;
	time_t t = (time_t)((ms + 8LL * 3600000) / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char txt[96];
	snprintf(txt, sizeof(txt), "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min);
	snprintf(out, 24, "%.16s", txt);
}

static void td(struct vw_buf *b, const char *s)
{
	vw_buf_puts(b, "<td>");
	api_html_esc(b, s);
	vw_buf_puts(b, "</td>");
}

static void td_time(struct vw_buf *b, const cJSON *o, const char *key)
{
	char t[24];
	local_minute(str(o, key), t);
	td(b, t);
}

static const char *state_zh(const char *s)
{
	if (strcmp(s, "committed") == 0)
		return "已承诺（待抽取）";
	if (strcmp(s, "executed") == 0)
		return "已抽取（待公布）";
	if (strcmp(s, "published") == 0)
		return "已公布";
	return s;
}

static const char *mode_zh(const char *s)
{
	return strcmp(s, "remote") == 0 ? "远程核查" : strcmp(s, "onsite") == 0 ? "现场检查" : s;
}

static const char *finding_zh(const char *s)
{
	return strcmp(s, "no_session") == 0 ? "抽查期间无考试场次" : s;
}

static void page_head(struct vw_buf *b, const char *title)
{
	vw_buf_puts(b, "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
	               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
	               "<title>");
	api_html_esc(b, title);
	vw_buf_puts(b, "</title><style>"
	               "body{font-family:'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei',"
	               "sans-serif;margin:2em;color:#222;max-width:72em}"
	               "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #999;"
	               "padding:4px 8px;text-align:left;vertical-align:top}th{background:#eee}"
	               "code{font-size:.85em;word-break:break-all}.muted{color:#666;font-size:.9em}"
	               ".overdue{color:#c62828;font-weight:bold}"
	               "@media print{body{margin:1cm}a{color:inherit;text-decoration:none}}"
	               "</style></head><body>");
}

static void result_cells(struct vw_buf *b, const cJSON *r)
{
	int published = strcmp(str(r, "state"), "published") == 0;
	td(b, published ? str(r, "outcome_label") : "待公示");
	td(b, published ? str(r, "findings") : "");
	vw_buf_puts(b, "<td>");
	api_html_esc(b, str(r, "due"));
	if (flag(r, "overdue"))
		vw_buf_puts(b, " <span class=\"overdue\">已逾期</span>");
	vw_buf_puts(b, "</td>");
	vw_buf_puts(b, "<td>");
	char t[24];
	local_minute(str(r, "published"), t);
	api_html_esc(b, t);
	if (flag(r, "late"))
		vw_buf_puts(b, " <span class=\"overdue\">逾期公示</span>");
	vw_buf_puts(b, "</td>");
}

static void index_html(struct vw_buf *b, const cJSON *draws, const cJSON *results)
{
	page_head(b, "双随机抽查公示");
	vw_buf_puts(
	    b, "<h1>双随机、一公开 — 抽查公示</h1>"
	       "<p class=\"muted\">社会培训评价组织考点监管。抽查计划在随机数产生之前公示"
	       "（承诺），抽取结果任何人可用公示文件复算（<code>venuewatch-server draw "
	       "verify</code>）。</p><h2>抽查计划</h2>"
	       "<table><tr><th>编号</th><th>范围</th><th>状态</th><th>公示承诺</th>"
	       "<th>抽取</th><th>公布</th><th>抽中机构数</th><th>清单摘要（SHA-256）</th></tr>");
	const cJSON *d;
	cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(draws, "draws"))
	{
		vw_buf_puts(b, "<tr><td><a href=\"/public/draws/");
		api_html_esc(b, str(d, "id"));
		vw_buf_puts(b, "\">");
		api_html_esc(b, str(d, "id"));
		vw_buf_puts(b, "</a></td>");
		td(b, str(d, "scope_city")[0] ? str(d, "scope_city") : "全省");
		td(b, state_zh(str(d, "state")));
		td_time(b, d, "committed");
		td_time(b, d, "executed");
		td_time(b, d, "published");
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(d, "inspections");
		if (cJSON_IsNumber(n))
			vw_buf_printf(b, "<td>%d</td>", n->valueint);
		else
			vw_buf_puts(b, "<td></td>");
		vw_buf_puts(b, "<td><code>");
		api_html_esc(b, str(d, "manifest_sha256"));
		vw_buf_puts(b, "</code></td></tr>");
	}
	vw_buf_puts(b, "</table><h2>抽查结果</h2><p><a href=\"/public/results.csv\">下载 CSV</a>"
	               "　结果应在检查之日起规定的工作日内公示（节假日按国务院安排）。</p>"
	               "<table><tr><th>计划</th><th>序号</th><th>机构</th><th>所在城市</th>"
	               "<th>方式</th><th>检查日期</th><th>结果</th><th>发现的问题</th>"
	               "<th>应公示日期</th><th>公示时间</th></tr>");
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(results, "results"))
	{
		vw_buf_puts(b, "<tr>");
		td(b, str(r, "draw"));
		const cJSON *seq = cJSON_GetObjectItemCaseSensitive(r, "seq");
		vw_buf_printf(b, "<td>%d</td>", cJSON_IsNumber(seq) ? seq->valueint : 0);
		vw_buf_puts(b, "<td>");
		api_html_esc(b, str(r, "name")[0] ? str(r, "name") : str(r, "org"));
		vw_buf_puts(b, "<br><span class=\"muted\">");
		api_html_esc(b, str(r, "org"));
		vw_buf_puts(b, "</span></td>");
		td(b, str(r, "city"));
		td(b, mode_zh(str(r, "mode")));
		td(b, str(r, "date")[0] ? str(r, "date") : finding_zh(str(r, "finding")));
		result_cells(b, r);
		vw_buf_puts(b, "</tr>");
	}
	vw_buf_puts(b, "</table><p class=\"muted\">数据接口：<a href=\"/public/api/draws\">"
	               "/public/api/draws</a>、<a href=\"/public/api/results\">/public/api/results"
	               "</a>（JSON）。</p></body></html>");
}

static void plan_html(struct vw_buf *b, const cJSON *plan)
{
	vw_buf_puts(b, "<h2>抽查计划</h2><table>");
	const char *scope = str(plan, "scope_city");
	vw_buf_puts(b, "<tr><th>范围</th>");
	td(b, scope[0] ? scope : "全省（按城市分层）");
	vw_buf_puts(b, "</tr><tr><th>方式</th>");
	td(b, mode_zh(str(plan, "mode")));
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(plan, "window");
	vw_buf_puts(b, "</tr><tr><th>检查时段</th><td>");
	api_html_esc(b, str(w, "from"));
	vw_buf_puts(b, " 至 ");
	api_html_esc(b, str(w, "to"));
	vw_buf_puts(b, "</td></tr><tr><th>每项检查人员</th>");
	const cJSON *per = cJSON_GetObjectItemCaseSensitive(plan, "inspectors_per");
	vw_buf_printf(b, "<td>%d 人</td></tr>", cJSON_IsNumber(per) ? per->valueint : 0);
	vw_buf_puts(b, "<tr><th>抽查比例</th><td>");
	const cJSON *g;
	cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(plan, "grades"))
	{
		/* the normalised plan has ratio_bp (1/10000, docs/DRAW.md); a raw one ratio */
		const cJSON *bp = cJSON_GetObjectItemCaseSensitive(g, "ratio_bp");
		const cJSON *ratio = cJSON_GetObjectItemCaseSensitive(g, "ratio");
		const cJSON *min = cJSON_GetObjectItemCaseSensitive(g, "min");
		double pct = cJSON_IsNumber(bp)      ? bp->valuedouble / 100
		             : cJSON_IsNumber(ratio) ? 100 * ratio->valuedouble
		                                     : 0.0;
		api_html_esc(b, str(g, "risk"));
		vw_buf_printf(b, "：%.4g%%，至少 %d 家<br>", pct,
		              cJSON_IsNumber(min) ? min->valueint : 0);
	}
	const cJSON *rec = cJSON_GetObjectItemCaseSensitive(plan, "recusal");
	vw_buf_printf(
	    b, "</td></tr><tr><th>回避规则</th><td>与被检查机构有关联的人员回避%s%s</td></tr>",
	    flag(rec, "home_city") ? "；不派本市人员" : "",
	    flag(rec, "same_pair") ? "；不与上次检查同一组人员" : "");
	vw_buf_puts(b, "<tr><th>抽查事项</th><td>");
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(plan, "items"))
	{
		if (cJSON_IsString(it)) {
			api_html_esc(b, it->valuestring);
			vw_buf_puts(b, " ");
		}
	}
	vw_buf_puts(b, "</td></tr></table>");
}

static void draw_html(struct vw_buf *b, const cJSON *d)
{
	char title[160];
	snprintf(title, sizeof(title), "抽查计划 %s", str(d, "id"));
	page_head(b, title);
	vw_buf_puts(b, "<p><a href=\"/public/\">← 抽查公示</a></p><h1>");
	api_html_esc(b, title);
	vw_buf_puts(b, "</h1><p>状态：");
	api_html_esc(b, state_zh(str(d, "state")));
	char t[24];
	local_minute(str(d, "committed"), t);
	vw_buf_puts(b, "<br>公示承诺：");
	api_html_esc(b, t);
	local_minute(str(d, "executed"), t);
	if (t[0]) {
		vw_buf_puts(b, "<br>抽取：");
		api_html_esc(b, t);
	}
	local_minute(str(d, "published"), t);
	if (t[0]) {
		vw_buf_puts(b, "<br>公布：");
		api_html_esc(b, t);
	}
	vw_buf_puts(b, "<br>清单摘要（SHA-256）：<code>");
	api_html_esc(b, str(d, "manifest_sha256"));
	vw_buf_puts(b, "</code><br>承诺值（机关秘密值的 SHA-256）：<code>");
	api_html_esc(b, str(d, "commitment"));
	vw_buf_puts(b, "</code></p>");
	plan_html(b, cJSON_GetObjectItemCaseSensitive(d, "plan"));
	const cJSON *reveal = cJSON_GetObjectItemCaseSensitive(d, "reveal");
	const cJSON *values = cJSON_GetObjectItemCaseSensitive(reveal, "values");
	vw_buf_puts(b,
	            "<h2>公开随机数来源</h2><p class=\"muted\">事先声明、任何人无法控制的公开数值，"
	            "按声明的时间产生后录入。</p><table><tr><th>来源</th><th>产生时间</th>"
	            "<th>形式</th><th>公布的数值</th></tr>");
	const cJSON *rnd = cJSON_GetObjectItemCaseSensitive(d, "randomness");
	const cJSON *s;
	int i = 0;
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(rnd, "sources"))
	{
		vw_buf_puts(b, "<tr>");
		td(b, str(s, "name"));
		td_time(b, s, "expected");
		td(b, str(s, "form"));
		const cJSON *v = cJSON_GetArrayItem(values, i++);
		td(b, cJSON_IsString(v) ? v->valuestring : "（尚未产生）");
		vw_buf_puts(b, "</tr>");
	}
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(rnd, "replacements"))
	{
		vw_buf_puts(b, "<tr><td>（替换用）");
		api_html_esc(b, str(s, "name"));
		vw_buf_puts(b, "</td>");
		td_time(b, s, "expected");
		td(b, str(s, "form"));
		td(b, "");
		vw_buf_puts(b, "</tr>");
	}
	vw_buf_puts(b, "</table>");
	if (strcmp(str(d, "state"), "published") != 0) {
		vw_buf_puts(b, "<p>抽取结果在公布后显示于此。</p></body></html>");
		return;
	}
	vw_buf_puts(b, "<p>秘密值（已揭示）：<code>");
	api_html_esc(b, str(reveal, "secret"));
	vw_buf_puts(b, "</code></p><h2>抽取结果</h2><p><a href=\"/public/api/draws/");
	api_html_esc(b, str(d, "id"));
	vw_buf_puts(b, "/document\">下载公示文件（供复算）</a>　<a href=\"/public/draws/");
	api_html_esc(b, str(d, "id"));
	vw_buf_puts(b, ".csv\">下载 CSV</a></p><table><tr><th>序号</th><th>机构</th>"
	               "<th>所在城市</th><th>风险等级</th><th>方式</th><th>检查时间</th>"
	               "<th>检查人员</th><th>结果</th><th>发现的问题</th><th>应公示日期</th>"
	               "<th>公示时间</th></tr>");
	const cJSON *in;
	cJSON_ArrayForEach(in, cJSON_GetObjectItemCaseSensitive(d, "inspections"))
	{
		const cJSON *seq = cJSON_GetObjectItemCaseSensitive(in, "seq");
		vw_buf_printf(b, "<tr><td>%d</td><td>", cJSON_IsNumber(seq) ? seq->valueint : 0);
		api_html_esc(b, str(in, "name")[0] ? str(in, "name") : str(in, "org"));
		vw_buf_puts(b, "<br><span class=\"muted\">");
		api_html_esc(b, str(in, "org"));
		vw_buf_puts(b, "</span></td>");
		td(b, str(in, "city"));
		td(b, str(in, "risk"));
		td(b, mode_zh(str(in, "mode")));
		char a[24], z[24];
		local_minute(str(in, "start"), a);
		local_minute(str(in, "end"), z);
		vw_buf_puts(b, "<td>");
		if (a[0]) {
			api_html_esc(b, a);
			vw_buf_puts(b, "–");
			api_html_esc(b, z + 11); /* the end's time of day */
			vw_buf_puts(b, "<br><span class=\"muted\">考点 ");
			api_html_esc(b, str(in, "site"));
			vw_buf_puts(b, "</span>");
		} else
			api_html_esc(b, finding_zh(str(in, "finding")));
		vw_buf_puts(b, "</td><td>");
		const cJSON *p;
		int first = 1;
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(in, "inspectors"))
		{
			if (!first)
				vw_buf_puts(b, "、");
			first = 0;
			api_html_esc(b, str(p, "name")[0] ? str(p, "name") : str(p, "id"));
		}
		vw_buf_puts(b, "</td>");
		result_cells(b, in);
		vw_buf_puts(b, "</tr>");
	}
	vw_buf_puts(b, "</table></body></html>");
}

/* The CSV columns of a result row (results.csv; a draw's CSV adds the inspectors). */
static void result_csv_row(struct vw_buf *b, const cJSON *r, const char *draw, int with_inspectors)
{
	char seq[24], names[1024] = "";
	const cJSON *sv = cJSON_GetObjectItemCaseSensitive(r, "seq");
	snprintf(seq, sizeof(seq), "%d", cJSON_IsNumber(sv) ? sv->valueint : 0);
	if (with_inspectors) {
		const cJSON *p;
		size_t n = 0;
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(r, "inspectors"))
		{
			int w = snprintf(names + n, sizeof(names) - n, "%s%s", n ? ";" : "",
			                 str(p, "name")[0] ? str(p, "name") : str(p, "id"));
			if (w < 0 || (size_t)w >= sizeof(names) - n)
				break;
			n += (size_t)w;
		}
	}
	const char *f[] = {draw,
	                   seq,
	                   str(r, "org"),
	                   str(r, "name"),
	                   str(r, "city"),
	                   str(r, "mode"),
	                   str(r, "date"),
	                   str(r, "site"),
	                   str(r, "finding"),
	                   str(r, "state"),
	                   str(r, "outcome"),
	                   str(r, "outcome_label"),
	                   str(r, "findings"),
	                   str(r, "due"),
	                   flag(r, "overdue") ? "yes" : "no",
	                   str(r, "published"),
	                   names};
	csvout_row(b, f, with_inspectors ? 17 : 16);
}

static const char *const csv_header[] = {
    "draw",     "seq",  "org",     "name",      "city",      "mode",
    "date",     "site", "finding", "state",     "outcome",   "outcome_label",
    "findings", "due",  "overdue", "published", "inspectors"};

/* --- completion ----------------------------------------------------------------------------- */

static void respond_json(struct conn *c, const cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	if (!s) {
		conn_respond_error(c, 500, "internal", "out of memory");
		return;
	}
	conn_respond(c, 200, PUBLIC_DATA_HEADERS, s, strlen(s));
	free(s);
}

static void respond_status(struct conn *c, int status)
{
	if (status == -ENOENT)
		conn_respond_error(c, 404, "not found", "no such public draw");
	else if (status == -EALREADY)
		conn_respond_error(c, 404, "not found", "the draw's result is not published yet");
	else if (status == -EAGAIN)
		conn_respond_error(c, 503, "server busy", NULL);
	else
		conn_respond_error(c, 503, "inspections unavailable", NULL);
}

static void render(struct public_ctx *x)
{
	struct vw_buf b;
	vw_buf_init(&b, RESPONSE_MAX);
	const char *ctype = HTTP_CT_HTML, *extra = PUBLIC_HTML_HEADERS;
	char disp[160] = "";
	switch (x->view) {
	case PV_INDEX_HTML:
		index_html(&b, x->job.out, x->results.out);
		break;
	case PV_DRAW_HTML:
		draw_html(&b, x->job.out);
		break;
	case PV_DRAW_CSV: {
		if (strcmp(str(x->job.out, "state"), "published") != 0) {
			vw_buf_free(&b);
			respond_status(x->c, -EALREADY);
			return;
		}
		csvout_row(&b, csv_header, 17);
		const cJSON *in;
		cJSON_ArrayForEach(in, cJSON_GetObjectItemCaseSensitive(x->job.out, "inspections"))
		    result_csv_row(&b, in, x->job.draw, 1);
		char name[96];
		snprintf(name, sizeof(name), "%s.csv", x->job.draw);
		ctype = HTTP_CT_CSV;
		if (http_attachment_header(disp, sizeof(disp) - 40, name) == 0)
			strcat(disp, PUBLIC_DATA_HEADERS);
		extra = disp;
		break;
	}
	case PV_RESULTS_CSV: {
		csvout_row(&b, csv_header, 16);
		const cJSON *r;
		cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(x->job.out, "results"))
		    result_csv_row(&b, r, str(r, "draw"), 0);
		ctype = HTTP_CT_CSV;
		if (http_attachment_header(disp, sizeof(disp) - 40, "results.csv") == 0)
			strcat(disp, PUBLIC_DATA_HEADERS);
		extra = disp;
		break;
	}
	default:
		break;
	}
	if (b.err)
		conn_respond_error(x->c, 507, "response too large", NULL);
	else
		conn_respond_typed(x->c, 200, ctype, extra, b.data, b.len);
	vw_buf_free(&b);
}

static void on_done(void *arg, int status)
{
	struct public_ctx *x = arg;
	if (status == -ECANCELED) {
		ctx_free(x);
		return;
	}
	if (status) {
		respond_status(x->c, status);
		ctx_free(x);
		return;
	}
	switch (x->view) {
	case PV_DRAWS_JSON:
	case PV_DRAW_JSON:
	case PV_RESULTS_JSON:
		respond_json(x->c, x->job.out);
		break;
	case PV_DOCUMENT: {
		char disp[160];
		char name[96];
		snprintf(name, sizeof(name), "%s.json", x->job.draw);
		if (http_attachment_header(disp, sizeof(disp) - 40, name))
			disp[0] = '\0';
		strcat(disp, PUBLIC_DATA_HEADERS);
		conn_respond(x->c, 200, disp, x->job.document, strlen(x->job.document));
		break;
	}
	default:
		render(x);
	}
	ctx_free(x);
}

/* The index needs the results after the draws: one job, both reads. */
static int index_run(sqlite3 *db, void *arg)
{
	struct public_ctx *x = arg;
	int rc = publication_index_run(db, &x->job);
	return rc ? rc : publication_results_run(db, &x->results);
}

static int draw_run(sqlite3 *db, void *arg)
{
	return publication_draw_run(db, &((struct public_ctx *)arg)->job);
}

static int results_run(sqlite3 *db, void *arg)
{
	return publication_results_run(db, &((struct public_ctx *)arg)->job);
}

static int list_run(sqlite3 *db, void *arg)
{
	return publication_index_run(db, &((struct public_ctx *)arg)->job);
}

static int document_run(sqlite3 *db, void *arg)
{
	return publication_document_run(db, &((struct public_ctx *)arg)->job);
}

static void start(struct api *a, struct conn *c, enum public_view view, const char *draw)
{
	if (!a->inspect) {
		conn_respond_error(c, 503, "inspections unavailable", NULL);
		return;
	}
	struct public_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		conn_respond_error(c, 503, "server busy", NULL);
		return;
	}
	x->a = a;
	x->c = c;
	x->view = view;
	struct publication_job base = {
	    .cal = &a->calendar,
	    .due_days = a->result_due_days,
	    .outcomes = &a->outcome_labels,
	    .now_ms = vw_now_ms(),
	};
	x->job = base;
	x->results = base;
	if (draw)
		snprintf(x->job.draw, sizeof(x->job.draw), "%s", draw);
	inspect_run_fn run = view == PV_INDEX_HTML ? index_run
	                     : view == PV_DRAW_HTML || view == PV_DRAW_CSV || view == PV_DRAW_JSON
	                         ? draw_run
	                     : view == PV_RESULTS_CSV || view == PV_RESULTS_JSON ? results_run
	                     : view == PV_DOCUMENT                               ? document_run
	                                                                         : list_run;
	int rc = inspect_submit(a->inspect, run, on_done, x);
	if (rc) {
		respond_status(c, rc == -EAGAIN ? -EAGAIN : -EIO);
		ctx_free(x);
	}
}

/* --- handlers -------------------------------------------------------------------------------- */

void api_public_redirect(struct api *a, struct conn *c, const struct http_request *req,
                         const struct router_match *m, const struct authz_principal *who)
{
	(void)a, (void)req, (void)m, (void)who;
	static const char body[] = "{\"error\":\"moved\",\"detail\":\"see /public/\"}";
	conn_respond(c, 308, "Location: /public/\r\n", body, sizeof(body) - 1);
}

void api_public_index(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m, (void)who;
	start(a, c, PV_INDEX_HTML, NULL);
}

/* /public/draws/{id} is the page; /public/draws/{id}.csv its drawn list (ids may hold '.',
 * so the suffix is looked at here rather than in the pattern). */
void api_public_draw(struct api *a, struct conn *c, const struct http_request *req,
                     const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)who;
	char id[ROUTER_PARAM_LEN];
	snprintf(id, sizeof(id), "%s", router_param(m, "id"));
	size_t n = strlen(id);
	if (n > 4 && strcmp(id + n - 4, ".csv") == 0) {
		id[n - 4] = '\0';
		start(a, c, PV_DRAW_CSV, id);
	} else
		start(a, c, PV_DRAW_HTML, id);
}

void api_public_results_csv(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m, (void)who;
	start(a, c, PV_RESULTS_CSV, NULL);
}

void api_public_draws_json(struct api *a, struct conn *c, const struct http_request *req,
                           const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m, (void)who;
	start(a, c, PV_DRAWS_JSON, NULL);
}

void api_public_draw_json(struct api *a, struct conn *c, const struct http_request *req,
                          const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)who;
	start(a, c, PV_DRAW_JSON, router_param(m, "id"));
}

void api_public_document(struct api *a, struct conn *c, const struct http_request *req,
                         const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)who;
	start(a, c, PV_DOCUMENT, router_param(m, "id"));
}

void api_public_results_json(struct api *a, struct conn *c, const struct http_request *req,
                             const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m, (void)who;
	start(a, c, PV_RESULTS_JSON, NULL);
}
