#include "status.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <string.h>

#include "result.h"
#include "vtime.h"

static void print_age(FILE *out, int64_t ms)
{
	if (ms < 0)
		fprintf(out, "-");
	else if (ms < 120000)
		fprintf(out, "%llds ago", (long long)ms / 1000);
	else if (ms < 7200000)
		fprintf(out, "%lldm ago", (long long)ms / 60000);
	else
		fprintf(out, "%lldh ago", (long long)ms / 3600000);
}

static const char *room_of(const struct agent_conf *cfg, const char *camera)
{
	for (size_t i = 0; i < cfg->cameras.n; i++)
		if (strcmp(agent_conf_camera(cfg, i)->name, camera) == 0)
			return agent_conf_camera(cfg, i)->room;
	return "-";
}

static void print_result_row(FILE *out, const struct agent_conf *cfg, const char *body, int64_t now)
{
	cJSON *doc = cJSON_Parse(body);
	struct vw_result r;
	char err[128];
	if (!doc || vw_result_decode(doc, &r, err, sizeof(err))) {
		cJSON_Delete(doc);
		return;
	}
	cJSON_Delete(doc);
	char faults[256] = "";
	size_t off = 0;
	for (unsigned i = 0; i < r.nfaults && off < sizeof(faults); i++)
		off += (size_t)snprintf(faults + off, sizeof(faults) - off, "%s%s", i ? "," : "",
		                        r.faults[i]);
	fprintf(out, "  %-10s %-20s %-12s %-8s %-28s ", vw_kind_name(r.kind), r.target,
	        r.kind == VW_KIND_STREAM ? room_of(cfg, r.target) : "-", vw_status_name(r.status),
	        faults[0] ? faults : "-");
	print_age(out, now - r.ts_ms);
	fputc('\n', out);
}

int status_print(const struct agent_conf *cfg, FILE *out)
{
	char path[PATH_MAX];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = 0;
	snprintf(path, sizeof(path), "%s/outbox.db", cfg->agent.state_dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: cannot open: %s (has the agent run yet?)\n", path,
		        db ? sqlite3_errmsg(db) : "no memory");
		rc = -EIO;
		goto out;
	}
	sqlite3_busy_timeout(db, 2000);
	int64_t now = vw_now_ms();
	fprintf(out, "venuewatch site %s (org %s)\n", cfg->agent.site, cfg->agent.org);

	const char *uplink = "unknown", *detail = "";
	char ubuf[64] = "", dbuf[512] = "", wbuf[256] = "", cbuf[1024] = "";
	if (sqlite3_prepare_v2(db, "SELECT key, value FROM status", -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *k = (const char *)sqlite3_column_text(st, 0);
			const char *v = (const char *)sqlite3_column_text(st, 1);
			if (strcmp(k, "uplink") == 0)
				snprintf(ubuf, sizeof(ubuf), "%s", v), uplink = ubuf;
			else if (strcmp(k, "uplink_detail") == 0)
				snprintf(dbuf, sizeof(dbuf), "%s", v), detail = dbuf;
			else if (strcmp(k, "collector") == 0)
				snprintf(cbuf, sizeof(cbuf), "%s", v);
			else if (strcmp(k, "workers") == 0)
				snprintf(wbuf, sizeof(wbuf), "%s", v);
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	int64_t pending = 0, oldest = -1, dropped = 0;
	if (sqlite3_prepare_v2(db, "SELECT count(*), min(ts_ms) FROM outbox", -1, &st, NULL) ==
	        SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		pending = sqlite3_column_int64(st, 0);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			oldest = now - sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='dropped_total'", -1, &st,
	                       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		dropped = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;

	fprintf(out, "upload to collector: %s%s%s%s\n", uplink, detail[0] ? " (" : "", detail,
	        detail[0] ? ")" : "");
	if (cbuf[0])
		fprintf(out, "collector in use: %s\n", cbuf);
	fprintf(out, "waiting to upload: %lld result%s", (long long)pending,
	        pending == 1 ? "" : "s");
	if (oldest >= 0) {
		fprintf(out, ", oldest ");
		print_age(out, oldest);
	}
	fprintf(out, "\nresults dropped (buffer full): %lld\n", (long long)dropped);
	if (wbuf[0])
		fprintf(out, "camera check workers: %s\n", wbuf);
	fputc('\n', out);

	fprintf(out, "  %-10s %-20s %-12s %-8s %-28s %s\n", "KIND", "TARGET", "ROOM", "STATUS",
	        "FAULTS", "CHECKED");
	if (sqlite3_prepare_v2(db, "SELECT body FROM latest ORDER BY kind, target", -1, &st,
	                       NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", path, sqlite3_errmsg(db));
		rc = -EIO;
		goto out;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		print_result_row(out, cfg, (const char *)sqlite3_column_text(st, 0), now);
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}
