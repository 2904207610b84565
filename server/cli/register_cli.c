#include "register_cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin.h"
#include "auth.h"
#include "inspect.h"
#include "labels.h"
#include "registers.h"
#include "registers_csv.h"
#include "server_conf.h"
#include "vtime.h"

/* A province's register is a few MiB; this bounds reading the wrong file. */
#define REGISTER_FILE_MAX (64u << 20)

const struct vw_cli_opt register_import_opts[REGISTER_IMPORT_NOPTS] = {
    {"kind", 0, "K", "targets, inspectors or items"},
    {"file", 0, "FILE", "the register as CSV, UTF-8 with or without BOM (docs/API.md)"},
    {"actor", 0, "NAME", "who imports, for the change records (default: the user)"},
};
const struct vw_cli_opt register_list_opts[REGISTER_LIST_NOPTS] = {
    {"kind", 0, "K", "targets, inspectors or items"},
    {"city", 0, "C", "one city's targets or inspectors"},
};

static int kind_opt(const char *cmd, const struct vw_cli_vals *v, enum registers_kind *k)
{
	const char *s = vw_cli_str(v, "kind");
	int i = s ? registers_kind_parse(s) : -1;
	if (i < 0) {
		fprintf(stderr, "register %s: --kind: expected targets, inspectors or items\n",
		        cmd);
		return -1;
	}
	*k = (enum registers_kind)i;
	return 0;
}

static struct inspect *open_inspect(struct server_conf *cfg, const char *cmd)
{
	char path[4200], err[512];
	if (mkdir(cfg->server.state_dir, 0750) != 0 && errno != EEXIST) {
		fprintf(stderr, "register %s: cannot create %s: %s\n", cmd, cfg->server.state_dir,
		        strerror(errno));
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/inspect.db", cfg->server.state_dir);
	struct inspect *in = NULL;
	if (inspect_open(NULL, path, &in, err, sizeof(err))) {
		fprintf(stderr, "register %s: %s\n", cmd, err);
		return NULL;
	}
	return in;
}

static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "register import: %s: %s\n", path, strerror(errno));
		return -1;
	}
	char *buf = malloc(REGISTER_FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, REGISTER_FILE_MAX + 1, f) : 0;
	int bad = !buf || ferror(f);
	fclose(f);
	if (bad || n > REGISTER_FILE_MAX) {
		fprintf(stderr, "register import: %s: %s\n", path,
		        bad ? "cannot read it" : "larger than 64 MiB: not a register");
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static void print_errors(const struct exams_errs *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		fprintf(stderr, "%s\n", errs->msg[i]);
	if (errs->total > errs->n)
		fprintf(stderr, "... and %zu more\n", errs->total - errs->n);
	fprintf(stderr, "register import: nothing imported\n");
}

int register_cmd_import(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	struct server_conf *cfg = ctx;
	enum registers_kind k;
	const char *path = vw_cli_str(v, "file"), *actor_opt = vw_cli_str(v, "actor");
	if (kind_opt("import", v, &k))
		return 2;
	if (!path) {
		fprintf(stderr, "register import: --file FILE is required\n");
		return 2;
	}
	char actor[160], err[256];
	if (actor_opt)
		snprintf(actor, sizeof(actor), "cli:%s", actor_opt);
	else
		auth_cli_actor(actor, sizeof(actor));
	struct inspect_labels risk;
	if (inspect_labels_parse(cfg->inspection.risk_grades, &risk, err, sizeof(err))) {
		fprintf(stderr, "register import: [inspection] risk_grades: %s\n", err);
		return 1;
	}
	char *data;
	size_t len;
	if (read_file(path, &data, &len))
		return 1;
	struct exams_errs errs = {0};
	cJSON *rows = NULL;
	unsigned *lines = NULL;
	int rc = registers_csv_parse(k, path, data, len, &risk, &rows, &lines, &errs);
	free(data);
	if (rc) {
		if (rc == -ENOMEM)
			fprintf(stderr, "register import: out of memory\n");
		print_errors(&errs);
		exams_errs_free(&errs);
		return 1;
	}
	int out = 1;
	struct auth *au = admin_open(cfg, 0); /* first: no change without its audit row */
	struct inspect *in = au ? open_inspect(cfg, "import") : NULL;
	if (in) {
		struct registers_put p = {
		    .kind = k, .rows = rows, .actor = actor, .now_ms = vw_now_ms()};
		rc = inspect_run_now(in, registers_put_run, &p);
		if (rc == 0) {
			char detail[160];
			snprintf(detail, sizeof(detail),
			         "rows=%d created=%zu updated=%zu unchanged=%zu version=%lld",
			         cJSON_GetArraySize(rows), p.created, p.updated, p.unchanged,
			         (long long)p.version);
			char subject[32];
			snprintf(subject, sizeof(subject), "%s/*", registers_names[k]);
			if (auth_audit(au, actor, "register_import", subject, detail))
				fprintf(stderr,
				        "register import: imported, but the audit row failed\n");
			printf("imported %d %s from %s: %zu created, %zu updated, %zu unchanged; "
			       "registers version %lld\n",
			       cJSON_GetArraySize(rows), registers_names[k], path, p.created,
			       p.updated, p.unchanged, (long long)p.version);
			out = 0;
		} else if (p.err[0]) {
			exams_errs_add(&errs, "%s:%u: %s: %s", path,
			               p.index >= 0 ? lines[p.index] : 0,
			               p.field[0] ? p.field : "row", p.err);
			print_errors(&errs);
		} else {
			fprintf(stderr, "register import: inspect.db refused the import: %s\n",
			        strerror(-rc));
		}
		cJSON_Delete(p.changed);
	}
	inspect_close(in);
	auth_close(au);
	exams_errs_free(&errs);
	cJSON_Delete(rows);
	free(lines);
	return out;
}

static int list_rows(struct server_conf *cfg, const char *cmd, const struct vw_cli_vals *v,
                     enum registers_kind *k, cJSON **rows, int64_t *version)
{
	if (kind_opt(cmd, v, k))
		return 2;
	struct inspect *in = open_inspect(cfg, cmd);
	if (!in)
		return 1;
	struct registers_list l = {.kind = *k, .city = vw_cli_str(v, "city")};
	int rc = inspect_run_now(in, registers_list_run, &l);
	inspect_close(in);
	if (rc || !(*rows = cJSON_Parse(l.json))) {
		fprintf(stderr, "register %s: cannot read inspect.db: %s\n", cmd,
		        strerror(rc ? -rc : ENOMEM));
		free(l.json);
		return 1;
	}
	*version = l.version;
	free(l.json);
	return 0;
}

int register_cmd_list(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	enum registers_kind k;
	cJSON *rows;
	int64_t version;
	int rc = list_rows(ctx, "list", v, &k, &rows, &version);
	if (rc)
		return rc;
	/* key, city (items: method), name (items: title), the row's version */
	const char *second = k == REGISTERS_ITEMS ? "method" : "city";
	const char *third = k == REGISTERS_ITEMS ? "title" : "name";
	printf("%-20s %-12s %-8s %s\n", registers_key_names[k], second, "version", third);
	const cJSON *r;
	cJSON_ArrayForEach(r, rows)
	{
		printf("%-20s %-12s %-8lld %s\n",
		       cJSON_GetObjectItem(r, registers_key_names[k])->valuestring,
		       cJSON_GetObjectItem(r, second)->valuestring,
		       (long long)cJSON_GetObjectItem(r, "version")->valuedouble,
		       cJSON_GetObjectItem(r, third)->valuestring);
	}
	printf("%d %s; registers version %lld\n", cJSON_GetArraySize(rows), registers_names[k],
	       (long long)version);
	cJSON_Delete(rows);
	return 0;
}

int register_cmd_export(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	enum registers_kind k;
	cJSON *rows;
	int64_t version;
	int rc = list_rows(ctx, "export", v, &k, &rows, &version);
	if (rc)
		return rc;
	struct vw_buf b;
	vw_buf_init(&b, 0);
	registers_csv_write(k, rows, &b);
	cJSON_Delete(rows);
	rc = b.err || fwrite(b.data, 1, b.len, stdout) != b.len || fflush(stdout) ? 1 : 0;
	if (rc)
		fprintf(stderr, "register export: cannot write the CSV\n");
	vw_buf_free(&b);
	return rc;
}
