/* publication: what 一公开 shows anyone, read from inspect.db — the committed draws' manifests,
 * the published draws' documents and drawn lists, and the inspections' results with their
 * due dates. Every output is built field by field from a whitelist (never a row or a stored
 * JSON passed through, except the manifest and the document, which are public by
 * construction: docs/DRAW.md), so a column added later stays private until named here.
 * Run functions for inspect's worker (or inspect_run_now); no HTTP. The job owns its out
 * tree and text; publication_job_free releases them. */
#ifndef VW_PUBLICATION_H
#define VW_PUBLICATION_H

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdint.h>

struct calendar;
struct inspect_labels;

struct publication_job {
	/* --- in */
	char draw[65];                         /* publication_draw_run, publication_document_run */
	const struct calendar *cal;            /* the holidays (read only; outlives the job) */
	long due_days;                         /* [inspection] result_due_days */
	const struct inspect_labels *outcomes; /* [inspection] outcomes; outlives the job */
	int64_t now_ms;                        /* "today" for overdue */
	/* --- out */
	cJSON *out;     /* index/draw/results: the public JSON */
	char *document; /* document: the stored text, verbatim */
};

void publication_job_free(struct publication_job *j);

/* Draws that are not public (created, or unknown) answer -ENOENT, as unknown ones do. */

/* j->out {"draws":[{"id","scope_city","state","manifest_sha256","committed","executed",
 * "published","inspections","results_published"}]}: committed, executed and published draws,
 * newest commit first. */
int publication_index_run(sqlite3 *db, void *job);
/* j->out: one draw as docs/API.md "Public" shows it: plan, manifest hash, commitment and
 * randomness declaration from commit on; the document's reveal and the drawn list with the
 * inspectors' names and each inspection's result once the draw is published. */
int publication_draw_run(sqlite3 *db, void *job);
/* j->out {"results":[...]}: every inspection of a published draw and every published
 * result, each with due, overdue and late; outcome and findings only once published. */
int publication_results_run(sqlite3 *db, void *job);
/* j->document: a published draw's document (the verify file); -EALREADY before publish. */
int publication_document_run(sqlite3 *db, void *job);

#endif
