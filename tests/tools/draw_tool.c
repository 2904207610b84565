/* draw_tool: runs the draw core (server/core/draw.c) over a test vector of tests/vectors/draw/
 * (docs/DRAW.md "Test vectors"): commit with the vector's salt, execute, its replacements, then
 * verify with and without the private part. `check` compares with the vector's expected
 * manifest hash, private part and document byte for byte (exit 1 on a difference); `gen` writes
 * them into the vector (a replacement without "out" takes the inspection's first inspector). */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "vtime.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
		free(s);
		s = NULL;
	}
	if (s)
		s[n] = '\0';
	fclose(f);
	return s;
}

static char *print(const cJSON *in, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(in, key);
	return j ? cJSON_PrintUnformatted(j) : strdup("[]");
}

static int64_t ms_of(const cJSON *in, const char *key)
{
	int64_t ms = 0;
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(in, key);
	if (!cJSON_IsString(j) || vw_time_parse_iso(j->valuestring, &ms) < 0) {
		fprintf(stderr, "draw_tool: input.%s: must be an RFC 3339 time\n", key);
		exit(2);
	}
	return ms;
}

static int hexbytes(const char *s, unsigned char *out, size_t n)
{
	if (!s || strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "check") && strcmp(argv[1], "gen"))) {
		fprintf(stderr, "usage: draw_tool check|gen VECTOR.json\n");
		return 2;
	}
	int gen = strcmp(argv[1], "gen") == 0;
	char *text = slurp(argv[2]), err[512];
	cJSON *vec = text ? cJSON_Parse(text) : NULL;
	cJSON *in = cJSON_GetObjectItemCaseSensitive(vec, "input");
	if (!in) {
		fprintf(stderr, "draw_tool: %s: not a vector\n", argv[2]);
		return 2;
	}
	const char *secret = cJSON_GetObjectItemCaseSensitive(in, "secret")->valuestring;
	unsigned char salt[DRAW_SALT_LEN];
	char com[65];
	if (hexbytes(cJSON_GetObjectItemCaseSensitive(in, "salt")->valuestring, salt, sizeof salt) <
	        0 ||
	    draw_commitment(secret, com, err, sizeof err) < 0) {
		fprintf(stderr, "draw_tool: input.salt/secret: bad hex\n");
		return 2;
	}
	char *plan = print(in, "plan"), *tg = print(in, "targets"), *ro = print(in, "inspectors");
	char *it = print(in, "items"), *pv = print(in, "previous"), *rnd = print(in, "randomness");
	char *vals = print(in, "values"), *sess = print(in, "sessions");
	char *man = NULL, *msha = NULL, *priv = NULL, *doc = NULL;
	int rc = draw_commit_build_salted(cJSON_GetObjectItemCaseSensitive(in, "id")->valuestring,
	                                  plan, tg, ro, it, pv, rnd, com, ms_of(in, "created"),
	                                  salt, &man, &msha, &priv, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "draw_tool: commit: %s\n", err);
		return 1;
	}
	rc = draw_execute(man, priv, vals, secret, sess, ms_of(in, "executed"), &doc, err,
	                  sizeof err);
	if (rc < 0) {
		fprintf(stderr, "draw_tool: execute: %s\n", err);
		return 1;
	}
	cJSON *reps = cJSON_GetObjectItemCaseSensitive(in, "replacements");
	for (cJSON *r = reps ? reps->child : NULL; r; r = r->next) {
		int seq = (int)cJSON_GetObjectItemCaseSensitive(r, "seq")->valuedouble;
		cJSON *out = cJSON_GetObjectItemCaseSensitive(r, "out");
		if (!out && gen) {
			cJSON *d = cJSON_Parse(doc);
			cJSON *ins = cJSON_GetArrayItem(
			    cJSON_GetObjectItemCaseSensitive(d, "inspections"), seq - 1);
			cJSON *m = cJSON_GetArrayItem(
			    cJSON_GetObjectItemCaseSensitive(ins, "inspectors"), 0);
			out = cJSON_AddStringToObject(r, "out", m->valuestring);
			cJSON_Delete(d);
		}
		char *next = NULL;
		rc = draw_replace(doc, priv, seq, out->valuestring,
		                  cJSON_GetObjectItemCaseSensitive(r, "reason")->valuestring,
		                  cJSON_GetObjectItemCaseSensitive(r, "value")->valuestring,
		                  ms_of(r, "at"), &next, err, sizeof err);
		if (rc < 0) {
			fprintf(stderr, "draw_tool: replace: %s\n", err);
			return 1;
		}
		free(doc);
		doc = next;
	}
	if ((rc = draw_verify(doc, priv, msha, err, sizeof err)) < 0 ||
	    (rc = draw_verify(doc, NULL, msha, err, sizeof err)) < 0) {
		fprintf(stderr, "draw_tool: verify: %s\n", err);
		return 1;
	}
	cJSON *exp = cJSON_GetObjectItemCaseSensitive(vec, "expected");
	if (gen) {
		cJSON_DeleteItemFromObjectCaseSensitive(vec, "expected");
		exp = cJSON_AddObjectToObject(vec, "expected");
		cJSON_AddStringToObject(exp, "manifest_sha256", msha);
		cJSON_AddItemToObject(exp, "private", cJSON_Parse(priv));
		cJSON_AddItemToObject(exp, "document", cJSON_Parse(doc));
		char *s = cJSON_Print(vec);
		FILE *f = fopen(argv[2], "w");
		if (!f || fprintf(f, "%s\n", s) < 0 || fclose(f) != 0) {
			fprintf(stderr, "draw_tool: %s: cannot write\n", argv[2]);
			return 2;
		}
		free(s);
		printf("%s: generated, manifest_sha256 %s\n", argv[2], msha);
		return 0;
	}
	const char *keys[] = {"private", "document"};
	const char *got[] = {priv, doc};
	const cJSON *es = cJSON_GetObjectItemCaseSensitive(exp, "manifest_sha256");
	if (!cJSON_IsString(es) || strcmp(es->valuestring, msha)) {
		fprintf(stderr, "%s: manifest_sha256 %s, expected %s\n", argv[2], msha,
		        cJSON_IsString(es) ? es->valuestring : "(none)");
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		char *want = NULL;
		char *e = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(exp, keys[i]));
		if (!e || draw_canonical(e, &want, err, sizeof err) < 0 || strcmp(want, got[i])) {
			fprintf(stderr, "%s: %s differs from the expected one\n", argv[2], keys[i]);
			return 1;
		}
		free(e);
		free(want);
	}
	printf("%s: ok (manifest_sha256 %s)\n", argv[2], msha);
	cJSON_Delete(vec);
	free(text);
	free(plan);
	free(tg);
	free(ro);
	free(it);
	free(pv);
	free(rnd);
	free(vals);
	free(sess);
	free(man);
	free(msha);
	free(priv);
	free(doc);
	return 0;
}
