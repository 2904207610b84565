/* draws: the double-random draws' state machine in inspect.db — created → committed →
 * executed → published — and the inspections an execute makes. One run function per step,
 * the same for the API (server/api/draws.c, on inspect's worker) and the command line
 * (server/cli/draw_cli.c, inspect_run_now); each takes its own transaction and writes its
 * draw_log row in it. The algorithm is server/core/draw.c's; this module stores its inputs
 * and outputs. The caller owns a struct draws_job and frees it with draws_job_free (which
 * frees every malloc'd string in it, inputs included). No HTTP, no loop. */
#ifndef VW_DRAWS_H
#define VW_DRAWS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct store_exam_session;

#define DRAWS_ID_LEN 65

/* One step's inputs and what it gives back. Inputs not used by a step stay NULL/0. */
struct draws_job {
	/* --- in */
	char id[DRAWS_ID_LEN];
	char actor[300];
	char scope_city[129]; /* the asker's jurisdiction: "" = the province (everything) */
	int province;         /* the asker sees the private part */
	int64_t now_ms;
	char *plan_json;       /* create */
	char *commitment;      /* commit: 64 hex */
	char *randomness_json; /* commit: {"sources":[...],"replacements":[...]} */
	char *values_json;     /* execute: JSON array of strings */
	char *secret_hex;      /* execute */
	char *sessions_json;   /* execute: draws_sessions_json's */
	int seq;               /* replace: the inspection's seq */
	char out[65];          /* replace: the inspector who leaves */
	char *reason, *value;  /* replace */
	/* --- out */
	int status;     /* the run's return, also kept here */
	char err[512];  /* for people, naming the field or JSON path */
	char field[64]; /* the request's member the error is about ("" none) */
	char *json;     /* get/list/create/...: the answer's body (the draw as GET shows it) */
	char *document; /* export: the document alone */
	char *manifest_sha256;
	/* execute_inputs: the window [from, to) and the snapshot's sites (sorted, unique) */
	int64_t from_ms, to_ms;
	char draw_city[129]; /* the draw's scope_city */
	char **sites;
	size_t nsites;
	char in_inspector[65]; /* replace: who came in */
	size_t ninspections;   /* execute: how many inspections it made */
};

void draws_job_free(struct draws_job *j);

/* Errors (j->status, with j->err): -EINVAL bad input (422, j->field), -ENOENT no such draw in
 * the asker's scope (404), -EEXIST the id is taken (409), -EALREADY the draw is not in the
 * state the step needs (409), -EPERM the secret does not match the commitment (422 secret),
 * -EACCES a city asked for a draw outside its city (403), -EIO, -ENOMEM. */

/* plan_json → a new draw in state created (scope_city from the plan; a city asker may only
 * create draws of its own city). j->json: the draw. */
int draws_create_run(sqlite3 *db, void *job);
/* commitment + randomness: snapshot of the registers (registers_snapshot), the previous pairs
 * and draw_commit_build in one transaction; created → committed. j->json, j->manifest_sha256. */
int draws_commit_run(sqlite3 *db, void *job);
/* Read only: what execute needs from the results store — j->from_ms/to_ms (the plan's window
 * in local days), j->sites (the committed snapshot's targets' sites) and j->draw_city. The
 * draw must be committed (-EALREADY otherwise). */
int draws_execute_inputs_run(sqlite3 *db, void *job);
/* values + secret + sessions: draw_execute, the document stored and the inspections and
 * inspection_inspectors rows made in the same transaction; committed → executed. */
int draws_execute_run(sqlite3 *db, void *job);
/* seq + out + reason + value: draw_replace on the document; the leaving inspector's row
 * active = 0, replaced_by = the new one, who gets an active row. Executed or published. */
int draws_replace_run(sqlite3 *db, void *job);
/* executed → published: the document becomes public. */
int draws_publish_run(sqlite3 *db, void *job);
/* j->json: {"draws":[...]} in the asker's scope, newest first (no documents). */
int draws_list_run(sqlite3 *db, void *job);
/* j->json: the draw with plan, manifest, document and log (private only to the province). */
int draws_get_run(sqlite3 *db, void *job);
/* j->document: the document (executed or published; -EALREADY before). */
int draws_document_run(sqlite3 *db, void *job);

/* The sessions of j->sites among s[0..n) (cancelled ones left out) as draw_execute reads
 * them: [{"id":..,"org":..,"site":..,"start":"RFC3339","end":".."}]. Into j->sessions_json;
 * 0 or -ENOMEM. */
int draws_sessions_json(struct draws_job *j, const struct store_exam_session *s, size_t n);

#endif
