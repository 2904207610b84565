/* inspections: what a draw's inspections become — the inspectors' results, their
 * confirmations, publication, and the evidence kept with them (inspect.db's inspections,
 * inspection_inspectors, inspection_confirmations, inspection_evidence). No HTTP here: the
 * API (api/inspections.c) and the command line call the same run functions.
 *
 * Threads. Every inspections_* taking a `sqlite3 *db` is a job's run function body: the
 * worker thread (inspect_submit) or the CLI's (inspect_run_now); writers take their own
 * transaction (inspect_txn). inspections_sees_site is the exception: the loop thread's short
 * indexed read on inspect_reader. JSON out-parameters are malloc'd: the caller frees. */
#ifndef VW_INSPECTIONS_H
#define VW_INSPECTIONS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Who asks, as the inspections see it (the API maps the principal, the CLI is province). */
enum insp_role { INSP_PROVINCE, INSP_CITY, INSP_INSPECTOR };
struct insp_who {
	enum insp_role role;
	char city[129];     /* INSP_CITY: its city */
	char inspector[65]; /* INSP_INSPECTOR: his register id */
	char actor[160];    /* for the records: "token:<id>" or "cli:<user>" */
};

/* The outcomes a result may name before the config is applied (api_set_capture): [inspection]
 * outcomes' own default, 未发现问题, 责令整改, 移交处理. */
#define INSPECTIONS_OUTCOMES_DEFAULT "clear:未发现问题,rectify:责令整改,refer:移交处理"

struct inspect;
struct calendar;
/* The loop thread's kept statements (inspect_reader_stmt's slots). */
enum { INSPECTIONS_RS_SEES_SITE };
/* Loop thread, on inspect.db's reader (a kept statement): 1 when inspector is an active
 * member of an inspection in state assigned or recorded whose org's register row lists site
 * (targets.sites) or whose slot is at site; 0 not; -EIO when the database cannot answer
 * (callers fail closed). */
int inspections_sees_site(struct inspect *in, const char *inspector, const char *site);

struct insp_list_query {
	const char *draw, *state, *org; /* NULL or "": any */
	int64_t after;                  /* id of the last row of the page before (0: first) */
	int limit;                      /* 1..INSPECTIONS_PAGE_MAX */
};
#define INSPECTIONS_PAGE_MAX 500
/* The results' deadline for the reads below: each row gets `due` (the slot's local date, or
 * the draw's execute date, plus `days` working days of cal) and `overdue` (not published and
 * past due at now_ms), computed as /public/ does (inspect_due). cal is read only, so a worker
 * may share the loop's. NULL: the rows carry neither. */
struct insp_deadline {
	const struct calendar *cal;
	long days;
	int64_t now_ms;
};
/* {"inspections":[...],"next":ID|null} in who's scope, ordered by id. */
int inspections_list(sqlite3 *db, const struct insp_who *who, const struct insp_list_query *q,
                     const struct insp_deadline *due, char **json);
/* One inspection with its inspectors, result, confirmations and evidence list (no JPEG
 * bytes). -ENOENT when there is none or it is outside who's scope. The note is internal:
 * it is shown to the province, the inspection's city and its inspectors only (all who may
 * see it here). */
int inspections_get(sqlite3 *db, const struct insp_who *who, int64_t id,
                    const struct insp_deadline *due, char **json);

/* The slot of an inspection as the loop thread needs it before it reads the store (the
 * 3.6 evidence of its session): on inspect_reader. -ENOENT none. */
int inspections_slot(sqlite3 *reader, int64_t id, int64_t *exam_session, char site[64]);

/* The writes. err receives what was refused (for the answer) and field the request field
 * it concerns (or ""). Returns 0; -ENOENT not found or outside the asker's scope; -EPERM
 * not an active assigned inspector / a role that may not; -EBUSY a state conflict (409);
 * -EINVAL a bad field (422); -EIO. */
struct insp_write {
	const struct insp_who *who;
	int64_t id;
	int64_t now_ms;
	/* record */
	const char *outcome, *findings, *note;
	const char *outcomes; /* the configured id:label list */
	const char *evidence; /* the 3.6 snapshot JSON (may be "") */
	/* confirm */
	int64_t result_version;
	/* out */
	int64_t out_version;
	char out_state[16];
	int out_confirmed; /* confirm: distinct active inspectors confirming the current result */
	char org[65];      /* the inspection's org, for the audit subject */
	char err[256];
	char field[32];
};
int inspections_record(sqlite3 *db, void *w /* struct insp_write */);
int inspections_confirm(sqlite3 *db, void *w /* struct insp_write */);
int inspections_publish(sqlite3 *db, void *w /* struct insp_write */);

/* One evidence row: its kind and data (JSON text) and, for a thumbnail, the JPEG. In who's
 * scope: the inspection's assigned inspectors (active or not: what they captured), its
 * city, the province. -ENOENT otherwise. */
struct insp_evidence {
	int64_t id, inspection, captured_ms;
	char kind[16];
	char camera[128];
	char *data;          /* malloc'd */
	unsigned char *jpeg; /* malloc'd, NULL for none */
	size_t jpeg_len;
};
int inspections_evidence_get(sqlite3 *db, const struct insp_who *who, int64_t id, int64_t eid,
                             struct insp_evidence *out);
void inspections_evidence_free(struct insp_evidence *e);
/* Appends rows to inspection id in one transaction (the capture's job). */
int inspections_evidence_add(sqlite3 *db, int64_t id, const struct insp_evidence *rows, size_t n);

/* Remote checks due a capture at now_ms: mode remote, state assigned, the slot running
 * (slot_start_ms <= now < slot_end_ms), a site, and no picture captured yet — a capture
 * that found the site's status but no camera picture (the agent's first pictures not in, or
 * every camera down) is taken again retry_ms later, up to INSPECTIONS_CAPTURE_TRIES status
 * rows in all. At most max into ids and sites. */
#define INSPECTIONS_CAPTURE_TRIES 3
struct insp_due {
	int64_t id;
	char site[64];
};
int inspections_capture_due(sqlite3 *db, int64_t now_ms, int64_t retry_ms, struct insp_due *out,
                            size_t max, size_t *n);
/* The manual capture's check (loop thread, reader): inspector is an active member of
 * inspection id, state assigned, its slot running at now_ms; site out. -ENOENT not his,
 * -EBUSY not now (state or time), 0 ok. */
int inspections_capture_allowed(sqlite3 *reader, const char *inspector, int64_t id, int64_t now_ms,
                                char site[64]);

/* Whether id is one of the id:label list's ids (inspect_labels_parse's syntax). */
int inspections_outcome_valid(const char *outcomes, const char *id);

#endif
