#include "draw_cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "auth.h"
#include "conf.h"
#include "draw.h"
#include "draws.h"
#include "inspect.h"
#include "server_conf.h"
#include "store.h"
#include "vtime.h"

/* A plan is a few hundred bytes; a province's published document tens of MiB
 * (docs/BENCHMARKS.md "Draw"): this bounds reading the wrong file. */
#define FILE_MAX (512u << 20)
#define SECRET_BYTES 32 /* 256 bits: as much as SHA-256 can commit to */

/* A macro, not a const object: C allows only constant expressions in static initializers
 * (gcc takes the object as an extension, clang refuses it). */
#define ACTOR_OPT                                                                                  \
	{                                                                                          \
		"actor", 0, "NAME", "who acts, for the log and the audit (default: the user)"      \
	}

const struct vw_cli_opt draw_create_opts[DRAW_CREATE_NOPTS] = {
    {"id", 0, "ID", "the draw's id (1-63 of [A-Za-z0-9._-])"},
    {"plan", 0, "FILE", "the plan as JSON (docs/DRAW.md \"Plan\")"},
    ACTOR_OPT,
};
const struct vw_cli_opt draw_commit_opts[DRAW_COMMIT_NOPTS] = {
    {"source", 0, "NAME", "a public randomness source (repeat; each with --expected)"},
    {"replacement-source", 0, "NAME", "a source kept for replacements (repeat; with --expected)"},
    {"expected", 0, "TIME", "when the source before it will exist (RFC 3339)"},
    {"form", 0, "FORM", "the source before it: ordered (default) | sorted (docs/DRAW.md)"},
    {"secret-out", 0, "FILE", "where the new secret goes (created, mode 0600)"},
    ACTOR_OPT,
};
const struct vw_cli_opt draw_execute_opts[DRAW_EXECUTE_NOPTS] = {
    {"value", 0, "V", "a declared source's value as announced (repeat, in declared order)"},
    {"secret-file", 0, "FILE", "the secret 'draw commit' wrote"},
    ACTOR_OPT,
};
const struct vw_cli_opt draw_replace_opts[DRAW_REPLACE_NOPTS] = {
    {"seq", 0, "N", "the inspection's seq in the document"},
    {"out", 0, "ID", "the inspector who leaves"},
    {"reason", 0, "TEXT", "why (logged and published)"},
    {"value", 0, "V", "the next declared replacement source's value"},
    ACTOR_OPT,
};
const struct vw_cli_opt draw_publish_opts[DRAW_PUBLISH_NOPTS] = {ACTOR_OPT};
const struct vw_cli_opt draw_export_opts[DRAW_EXPORT_NOPTS] = {
    {"out", 0, "FILE", "write the document there (default: stdout)"},
};
const struct vw_cli_opt draw_verify_opts[DRAW_VERIFY_NOPTS] = {
    {"manifest-sha256", 0, "HEX", "the manifest hash published at commit"},
    {"private", 0, "FILE", "the private part: recusal and availability are checked too"},
};

/* --- files -------------------------------------------------------------------------------------
 */

static char *read_all(const char *what, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "draw %s: %s: %s\n", what, path, strerror(errno));
		return NULL;
	}
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap + 1);
	while (buf) {
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n < cap)
			break;
		if (cap >= FILE_MAX) {
			fprintf(stderr, "draw %s: %s: larger than %u MiB\n", what, path,
			        FILE_MAX >> 20);
			free(buf);
			buf = NULL;
			break;
		}
		char *nb = realloc(buf, cap * 2 + 1);
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	int bad = ferror(f);
	fclose(f);
	if (buf && bad) {
		fprintf(stderr, "draw %s: %s: cannot read it\n", what, path);
		free(buf);
		return NULL;
	}
	if (buf)
		buf[n] = '\0';
	return buf;
}

/* The whole of s to fd, then fsync: 0 or -errno. */
static int write_fd(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += w;
		n -= (size_t)w;
	}
	return fsync(fd) ? -errno : 0;
}

/* --- inspect.db and the audit ------------------------------------------------------------------
 */

struct ctx {
	struct server_conf *cfg;
	struct inspect *in;
	struct auth *au;
	struct draws_job *j;
	const char *name; /* the command, for messages */
};

/* inspect.db (and auth.db when audit): 0, or 1 after saying why. */
static int ctx_open(struct ctx *x, struct server_conf *cfg, const char *name, const char *id,
                    const struct vw_cli_vals *v, int audit)
{
	memset(x, 0, sizeof(*x));
	x->cfg = cfg;
	x->name = name;
	if (id && !vw_conf_id_valid(id)) {
		fprintf(stderr, "draw %s: %s: expected a draw id (1-63 of [A-Za-z0-9._-])\n", name,
		        id);
		return 2;
	}
	/* The audit log is opened first: a change it could not record is not made. */
	if (audit && !(x->au = admin_open(cfg, 0)))
		return 1;
	char path[PATH_MAX], err[512];
	snprintf(path, sizeof(path), "%s/inspect.db", cfg->server.state_dir);
	if (inspect_open(NULL, path, &x->in, err, sizeof(err))) {
		fprintf(stderr, "draw %s: %s\n", name, err);
		auth_close(x->au);
		return 1;
	}
	x->j = calloc(1, sizeof(*x->j));
	if (!x->j) {
		fprintf(stderr, "draw %s: out of memory\n", name);
		inspect_close(x->in);
		auth_close(x->au);
		return 1;
	}
	if (id)
		snprintf(x->j->id, sizeof(x->j->id), "%s", id);
	const char *actor = v ? vw_cli_str(v, "actor") : NULL;
	if (actor)
		snprintf(x->j->actor, sizeof(x->j->actor), "cli:%s", actor);
	else
		auth_cli_actor(x->j->actor, sizeof(x->j->actor));
	x->j->province = 1; /* the command line is the server's operator */
	x->j->now_ms = vw_now_ms();
	return 0;
}

static void ctx_close(struct ctx *x)
{
	draws_job_free(x->j);
	inspect_close(x->in);
	auth_close(x->au);
}

static int say_failed(struct ctx *x, int rc)
{
	const struct draws_job *j = x->j;
	const char *what = j->err[0] ? j->err : strerror(-rc);
	if (j->field[0] && !strstr(what, j->field))
		fprintf(stderr, "draw %s: %s: %s: %s\n", x->name, j->id, j->field, what);
	else
		fprintf(stderr, "draw %s: %s: %s\n", x->name, j->id, what);
	return 1;
}

/* Runs run; on success audits action (when given) and prints j->json (when print). */
static int run_step(struct ctx *x, inspect_run_fn run, const char *action, const char *detail,
                    int print)
{
	int rc = inspect_run_now(x->in, run, x->j);
	if (rc)
		return say_failed(x, rc);
	if (action && auth_audit(x->au, x->j->actor, action, x->j->id, detail ? detail : "")) {
		/* Done and stored already: say that the audit row is missing, and fail. */
		fprintf(stderr, "draw %s: %s: done, but the audit row could not be written\n",
		        x->name, x->j->id);
		return 1;
	}
	if (print && x->j->json)
		printf("%s\n", x->j->json);
	return 0;
}

/* --- create, publish, show, export -------------------------------------------------------------
 */

int draw_cmd_create(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	const char *id = vw_cli_str(v, "id"), *plan = vw_cli_str(v, "plan");
	if (!id || !plan) {
		fprintf(stderr, "draw create: --id ID and --plan FILE are required\n");
		return 2;
	}
	struct ctx x;
	int rc = ctx_open(&x, ctx, "create", id, v, 1);
	if (rc)
		return rc;
	rc = 1;
	if ((x.j->plan_json = read_all("create", plan)) != NULL &&
	    run_step(&x, draws_create_run, "draw_create", "", 0) == 0) {
		printf("draw %s created\n", id);
		rc = 0;
	}
	ctx_close(&x);
	return rc;
}

int draw_cmd_publish(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	struct ctx x;
	int rc = ctx_open(&x, ctx, "publish", v->pos[0], v, 1);
	if (rc)
		return rc;
	rc = run_step(&x, draws_publish_run, "draw_publish", "", 0);
	if (!rc)
		printf("draw %s published\n", x.j->id);
	ctx_close(&x);
	return rc;
}

int draw_cmd_show(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	struct ctx x;
	int rc = ctx_open(&x, ctx, "show", v->pos[0], v, 0);
	if (rc)
		return rc;
	rc = run_step(&x, draws_get_run, NULL, NULL, 1);
	ctx_close(&x);
	return rc;
}

int draw_cmd_export(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	const char *out = vw_cli_str(v, "out");
	struct ctx x;
	int rc = ctx_open(&x, ctx, "export", v->pos[0], v, 0);
	if (rc)
		return rc;
	rc = run_step(&x, draws_document_run, NULL, NULL, 0);
	if (!rc && !out) {
		printf("%s\n", x.j->document);
		rc = fflush(stdout) ? 1 : 0;
	} else if (!rc) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int w = fd < 0 ? -errno : write_fd(fd, x.j->document, strlen(x.j->document));
		if (fd >= 0 && close(fd) && !w)
			w = -errno;
		if (w) {
			fprintf(stderr, "draw export: %s: %s\n", out, strerror(-w));
			rc = 1;
		}
	}
	ctx_close(&x);
	return rc;
}

/* --- commit ------------------------------------------------------------------------------------
 */

/* --source/--replacement-source NAME, each followed by --expected TIME [--form F], in the
 * order given, into {"sources":[...],"replacements":[...]}; NULL after saying why. */
static char *randomness_of(const struct vw_cli_vals *v)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *src = cJSON_AddArrayToObject(root, "sources");
	cJSON *rep = cJSON_AddArrayToObject(root, "replacements");
	cJSON *cur = NULL;
	const char *bad = NULL;
	for (size_t k = 0; k < v->ngiven && !bad; k++) {
		const char *name = v->opts[v->given[k].opt].name, *val = v->given[k].val;
		if (strcmp(name, "source") == 0 || strcmp(name, "replacement-source") == 0) {
			if (cur && !cJSON_GetObjectItemCaseSensitive(cur, "expected")) {
				bad = "every source needs its --expected TIME";
				break;
			}
			cur = cJSON_CreateObject();
			cJSON_AddStringToObject(cur, "name", val);
			cJSON_AddItemToArray(name[0] == 's' ? src : rep, cur);
		} else if (strcmp(name, "expected") == 0 || strcmp(name, "form") == 0) {
			if (!cur)
				bad = "--expected and --form follow the --source they are about";
			else if (cJSON_GetObjectItemCaseSensitive(cur, name))
				bad = "--expected or --form given twice for one source";
			else if (name[0] == 'e') {
				int64_t ms;
				if (vw_time_parse_iso(val, &ms))
					bad = "--expected: expected an RFC 3339 UTC time "
					      "(2026-12-05T12:30:00Z)";
				cJSON_AddStringToObject(cur, "expected", val);
			} else {
				cJSON_AddStringToObject(cur, "form", val);
			}
		}
	}
	if (!bad && cur && !cJSON_GetObjectItemCaseSensitive(cur, "expected"))
		bad = "every source needs its --expected TIME";
	/* Without --form a value counts as announced, its numbers in their order. */
	cJSON *each;
	cJSON_ArrayForEach(each, src)
	{
		if (!cJSON_GetObjectItemCaseSensitive(each, "form"))
			cJSON_AddStringToObject(each, "form", "ordered");
	}
	cJSON_ArrayForEach(each, rep)
	{
		if (!cJSON_GetObjectItemCaseSensitive(each, "form"))
			cJSON_AddStringToObject(each, "form", "ordered");
	}
	if (!bad && cJSON_GetArraySize(src) == 0)
		bad = "at least one --source NAME --expected TIME is required";
	char *s = bad ? NULL : cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (bad)
		fprintf(stderr, "draw commit: %s\n", bad);
	return s;
}

int draw_cmd_commit(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	const char *out = vw_cli_str(v, "secret-out");
	if (!out) {
		fprintf(stderr, "draw commit: --secret-out FILE is required\n");
		return 2;
	}
	char *randomness = randomness_of(v);
	if (!randomness)
		return 2;
	struct ctx x;
	int rc = ctx_open(&x, ctx, "commit", v->pos[0], v, 1);
	if (rc) {
		free(randomness);
		return rc;
	}
	x.j->randomness_json = randomness;
	unsigned char secret[SECRET_BYTES];
	char hex[2 * SECRET_BYTES + 2], err[256];
	x.j->commitment = malloc(65);
	rc = 1;
	if (!x.j->commitment || RAND_bytes(secret, sizeof(secret)) != 1) {
		fprintf(stderr, "draw commit: no random bytes from OpenSSL\n");
		goto out;
	}
	for (size_t i = 0; i < sizeof(secret); i++)
		snprintf(hex + 2 * i, 3, "%02x", secret[i]);
	if (draw_commitment(hex, x.j->commitment, err, sizeof(err))) {
		fprintf(stderr, "draw commit: %s\n", err);
		goto out;
	}
	/* The secret is on disk (synced) before its commitment is stored: a commit whose
	 * secret was lost could never be executed. An existing file is never overwritten — it
	 * may be another draw's secret. */
	int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "draw commit: %s: %s\n", out, strerror(errno));
		goto out;
	}
	hex[2 * SECRET_BYTES] = '\n';
	int w = write_fd(fd, hex, 2 * SECRET_BYTES + 1);
	if (close(fd) && !w)
		w = -errno;
	if (w) {
		fprintf(stderr, "draw commit: %s: %s\n", out, strerror(-w));
		unlink(out);
		goto out;
	}
	char detail[120];
	snprintf(detail, sizeof(detail), "commitment=%s", x.j->commitment);
	if (inspect_run_now(x.in, draws_commit_run, x.j)) {
		say_failed(&x, x.j->status);
		unlink(out); /* nothing refers to it */
		goto out;
	}
	snprintf(detail, sizeof(detail), "manifest_sha256=%s", x.j->manifest_sha256);
	if (auth_audit(x.au, x.j->actor, "draw_commit", x.j->id, detail)) {
		fprintf(stderr,
		        "draw commit: %s: committed, but the audit row could not be written\n",
		        x.j->id);
		goto out;
	}
	printf("draw %s committed\nmanifest_sha256 %s\ncommitment %s\nsecret in %s (keep it until "
	       "execute)\n",
	       x.j->id, x.j->manifest_sha256, x.j->commitment, out);
	rc = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(hex, sizeof(hex));
	ctx_close(&x);
	return rc;
}

/* --- execute -----------------------------------------------------------------------------------
 */

struct cli_store {
	uv_loop_t loop;
	struct store *s;
	int done;
	struct draws_job *j;
	int status;
};

static void on_sessions(void *ud, const struct store_reply *r)
{
	struct cli_store *cs = ud;
	cs->status = r->status;
	if (!r->status)
		cs->status = draws_sessions_json(cs->j, r->exam_sessions, r->nexam_sessions);
	cs->done = 1;
}

/* The window's sessions from the results store, as the API reads them (draws.c). */
static int read_sessions(struct server_conf *cfg, struct draws_job *j)
{
	char err[512];
	struct cli_store cs = {.j = j};
	struct store_options so = {.backend = cfg->store_backend,
	                           .dir = cfg->server.state_dir,
	                           .dsn = cfg->store.dsn,
	                           .password_file = cfg->store.password_file,
	                           .durability = STORE_DURABLE_FULL,
	                           .readers = 1};
	if (store_open(&so, &cs.s, err, sizeof(err))) {
		fprintf(stderr, "draw execute: %s\n", err);
		return -1;
	}
	if (uv_loop_init(&cs.loop)) {
		store_close(cs.s);
		fprintf(stderr, "draw execute: cannot start an event loop\n");
		return -1;
	}
	int rc = store_start(cs.s, &cs.loop, 4);
	if (!rc) {
		struct store_exam_query q = {.from_ms = j->from_ms, .to_ms = j->to_ms};
		rc = store_exam_list(cs.s, &q, on_sessions, &cs);
		while (!rc && !cs.done)
			uv_run(&cs.loop, UV_RUN_ONCE);
		rc = rc ? rc : cs.status;
	}
	store_close(cs.s);
	uv_run(&cs.loop, UV_RUN_DEFAULT);
	uv_loop_close(&cs.loop);
	if (rc)
		fprintf(stderr, "draw execute: the exam sessions could not be read: %s\n",
		        strerror(-rc));
	return rc ? -1 : 0;
}

int draw_cmd_execute(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	const char *sf = vw_cli_str(v, "secret-file");
	if (!sf || !vw_cli_str(v, "value")) {
		fprintf(stderr, "draw execute: --value V (one per declared source) and "
		                "--secret-file FILE are required\n");
		return 2;
	}
	cJSON *values = cJSON_CreateArray();
	for (size_t k = 0; k < v->ngiven; k++)
		if (strcmp(v->opts[v->given[k].opt].name, "value") == 0)
			cJSON_AddItemToArray(values, cJSON_CreateString(v->given[k].val));
	char *vj = cJSON_PrintUnformatted(values);
	cJSON_Delete(values);
	struct ctx x;
	int rc = ctx_open(&x, ctx, "execute", v->pos[0], v, 1);
	if (rc) {
		free(vj);
		return rc;
	}
	x.j->values_json = vj;
	rc = 1;
	if (!(x.j->secret_hex = read_all("execute", sf)))
		goto out;
	x.j->secret_hex[strcspn(x.j->secret_hex, " \t\r\n")] = '\0';
	if (inspect_run_now(x.in, draws_execute_inputs_run, x.j)) {
		say_failed(&x, x.j->status);
		goto out;
	}
	if (read_sessions(x.cfg, x.j))
		goto out;
	char detail[64];
	if (inspect_run_now(x.in, draws_execute_run, x.j)) {
		say_failed(&x, x.j->status);
		goto out;
	}
	snprintf(detail, sizeof(detail), "inspections=%zu", x.j->ninspections);
	if (auth_audit(x.au, x.j->actor, "draw_execute", x.j->id, detail)) {
		fprintf(stderr,
		        "draw execute: %s: executed, but the audit row could not be written\n",
		        x.j->id);
		goto out;
	}
	printf("draw %s executed: %zu inspections\n", x.j->id, x.j->ninspections);
	rc = 0;
out:
	ctx_close(&x);
	return rc;
}

/* --- replace -----------------------------------------------------------------------------------
 */

int draw_cmd_replace(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	const char *seq = vw_cli_str(v, "seq"), *out = vw_cli_str(v, "out");
	const char *reason = vw_cli_str(v, "reason"), *value = vw_cli_str(v, "value");
	char *end = NULL;
	long n = seq ? strtol(seq, &end, 10) : 0;
	if (!seq || !out || !reason || !value) {
		fprintf(stderr,
		        "draw replace: --seq N --out ID --reason TEXT --value V are required\n");
		return 2;
	}
	if (!*seq || *end || n < 1 || n > INT_MAX) {
		fprintf(stderr, "draw replace: --seq: expected the inspection's seq (1, 2, ...)\n");
		return 2;
	}
	struct ctx x;
	int rc = ctx_open(&x, ctx, "replace", v->pos[0], v, 1);
	if (rc)
		return rc;
	x.j->seq = (int)n;
	snprintf(x.j->out, sizeof(x.j->out), "%s", out);
	x.j->reason = strdup(reason);
	x.j->value = strdup(value);
	rc = inspect_run_now(x.in, draws_replace_run, x.j);
	if (rc) {
		rc = say_failed(&x, rc);
	} else {
		char detail[200];
		snprintf(detail, sizeof(detail), "seq=%d out=%s in=%s", x.j->seq, x.j->out,
		         x.j->in_inspector);
		if (auth_audit(x.au, x.j->actor, "draw_replace", x.j->id, detail)) {
			fprintf(stderr,
			        "draw replace: %s: done, but the audit row could not be written\n",
			        x.j->id);
			rc = 1;
		} else {
			printf("draw %s: inspection %d: %s replaced by %s\n", x.j->id, x.j->seq,
			       x.j->out, x.j->in_inspector);
		}
	}
	ctx_close(&x);
	return rc;
}

/* --- verify ------------------------------------------------------------------------------------
 */

int draw_cmd_verify(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)ctx, (void)cmd;
	const char *sha = vw_cli_str(v, "manifest-sha256"), *pf = vw_cli_str(v, "private");
	char *doc = read_all("verify", v->pos[0]);
	char *priv = pf ? read_all("verify", pf) : NULL;
	if (!doc || (pf && !priv)) {
		free(doc);
		free(priv);
		return 2;
	}
	char err[1024] = "";
	int rc = draw_verify(doc, priv, sha, err, sizeof(err));
	free(doc);
	free(priv);
	if (rc == 0) {
		printf("%s: ok: the draw recomputes from its published inputs%s%s\n", v->pos[0],
		       sha ? " and its manifest hash matches" : "",
		       pf ? " (recusal and availability checked)" : "");
		return 0;
	}
	fprintf(stderr, "%s: %s: %s\n", v->pos[0],
	        rc == -EBADMSG ? "does not match" : "cannot be verified",
	        err[0] ? err : strerror(-rc));
	return 1; /* a file that is no longer a readable document does not match either */
}
