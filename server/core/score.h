/* score: item 3.6 of the evaluation form (0-5) from exam sessions' rolled-up credits and a
 * rubric — per session and per criterion the fraction of session time held, an aggregate
 * over many sessions weighted by their duration, the rubric's step, and the reasons (the
 * targets with the most unmet minutes per criterion). Pure: no I/O, any thread.
 * score_compute allocates the result; score_result_free releases it. Session rows point at
 * the caller's store_exam array, which must outlive the result (a store reply: the callback). */
#ifndef VW_SCORE_H
#define VW_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum score_criterion {
	SCORE_CONNECTED, /* 已接入平台: results of network target "collector", ok|degraded */
	SCORE_NETWORK,   /* 网络连接顺畅: every network target, ok */
	SCORE_PICTURE,   /* 视频画面清晰: cameras' stream results, ok */
	SCORE_FLOOR,     /* 评价现场全覆盖: rooms' coverage results, ok */
	SCORE_RECORDS,   /* 影像资料有保存: cameras' recording results, ok|degraded */
	SCORE_NCRIT
};

/* The rubric: [score] in the server's config. Percentages apply to the weakest criterion. */
struct score_rubric {
	double full_pct;          /* >= this: 5 */
	double step4_pct;         /* >= this: 4 */
	double step3_pct;         /* >= this: 3 */
	double step2_pct;         /* >= this: 2; below: 1 (0 only when never connected) */
	int64_t default_stale_ms; /* a result without interval_ms holds at most this long */
	/* How long after a session's end its figures may still change (a hold open at the end
	 * settles within 2 x its target's cadence). Not part of the version: it changes no
	 * figure, only when they are called final. */
	int64_t settle_ms;
	/* First 12 hex digits of SHA-256 over score_rubric_canonical's text. */
	char version[13];
};

#define SCORE_WORST_MAX 5 /* reasons listed per criterion */

/* Names for JSON, CSV and the CLI ("connected", "network", "picture", "floor", "records"),
 * and the form's words in zh-CN. NULL past SCORE_NCRIT. */
const char *score_criterion_name(int crit);
const char *score_criterion_label_zh(int crit);
/* The criterion a name stands for, or -1. */
int score_criterion_parse(const char *name);
/* The store's credit class a criterion is scored on. */
int score_criterion_class(int crit);

/* The defaults (99/95/80/50, 120 s), version filled in. */
void score_rubric_default(struct score_rubric *r);
/* The text the version hashes: one "key=value\n" line per parameter, in a fixed order,
 * numbers in their shortest round-trip form. Returns the length (snprintf's contract). */
int score_rubric_canonical(const struct score_rubric *r, char *buf, size_t len);
/* Checks the parameters (0 <= step2 <= step3 <= step4 <= full <= 100, stale > 0) and
 * sets r->version. -EINVAL (with what in err) when they do not hold. */
int score_rubric_finish(struct score_rubric *r, char *err, size_t errlen);

/* 0-5 from per-criterion fractions: 0 when connected is 0, else the step the weakest
 * criterion's percentage reaches. *weakest gets that criterion (may be NULL). */
int score_from_fractions(const struct score_rubric *r, const double frac[SCORE_NCRIT],
                         int *weakest);

struct score_session {
	const struct store_exam *exam;
	int64_t dur_ms;
	/* Per criterion: held time as the mean over its targets (ms), the targets it is averaged
	 * over (for floor covered: the session's listed rooms unless "*"), and held / dur. */
	double held_ms[SCORE_NCRIT];
	int64_t targets[SCORE_NCRIT];
	double frac[SCORE_NCRIT];
	int weakest, score;
};

/* One target's unmet minutes over the sessions scored (a reason). */
struct score_reason {
	char *site, *target;
	int64_t unmet_ms; /* session time the target did not hold the criterion */
	int64_t sessions; /* sessions it was scored in */
};

struct score_result {
	struct score_session *sessions; /* in the order of the exams given */
	size_t nsessions;
	int64_t dur_ms;               /* total session time */
	double held_ms[SCORE_NCRIT];  /* sum of the sessions' held_ms */
	double frac[SCORE_NCRIT];     /* held / dur: the duration-weighted mean */
	double unmet_ms[SCORE_NCRIT]; /* dur - held */
	int weakest, score;           /* score -1 (weakest -1) when there is no session */
	/* Worst targets first (most unmet ms, then site, target); only with credits. */
	struct score_reason *worst[SCORE_NCRIT];
	size_t nworst[SCORE_NCRIT];
};

/* Scores the exams (cancelled ones are never handed in: the store leaves them out). The
 * fractions come from the exams' totals, so a ranking read without credits scores the same;
 * with_reasons: credits (by exam_id, as the store gives them) are the session's per-target
 * credits and give the worst targets. Sessions with end <= start count for nothing.
 * 0 or -ENOMEM. */
int score_compute(const struct score_rubric *r, const struct store_exam *exams, size_t nexams,
                  const struct store_credit *credits, size_t ncredits, int with_reasons,
                  struct score_result *out);
void score_result_free(struct score_result *res); /* accepts NULL; zeroes it */

/* Times as people enter and read them: Asia/Shanghai (UTC+8, no DST). score_parse_time
 * takes "YYYY-MM-DD" (that local day's start), "YYYY-MM-DDTHH:MM[:SS]" with "Z", "+08:00"
 * or any other offset (none = +08:00), or whole milliseconds since the epoch. 0 or -EINVAL.
 * score_format_local writes "YYYY-MM-DDTHH:MM:SS+08:00". */
#define SCORE_LOCAL_LEN 64
int score_parse_time(const char *s, int64_t *ms);
void score_format_local(int64_t ms, char out[SCORE_LOCAL_LEN]);

/* 1 while the rollup has not seen settle_ms past the session's end: its figures may still
 * change (a silent agent catching up, a hold closing). */
int score_provisional(const struct score_rubric *r, const struct store_exam *e);

/* The number of rooms a room list names (distinct, trimmed, non-empty); -1 for "*". */
int score_rooms_count(const char *rooms);

#endif
