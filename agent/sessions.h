/* sessions: the exam sessions this agent follows — its [session] sections merged with the
 * collector's (GET /api/v1/agent/sessions, fetched by sessions_fetch.c); the same id in both:
 * the collector's wins. Owns the merged set as immutable, reference-counted snapshots: the
 * loop thread replaces it (sessions_update), any thread reads one snapshot for the length of
 * a decision (sessions_view_get/put), so a check never sees half an update. The collector's
 * last good answer is kept in <state_dir>/sessions.json and loaded at start. Created and
 * destroyed on the main thread; destroy after every view was put. */
#ifndef VW_SESSIONS_H
#define VW_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "agent_conf.h"

/* Sessions with their own strings (every field of struct session_conf strdup'd). */
struct session_list {
	struct session_conf *items;
	size_t n;
};
void session_list_free(struct session_list *l);

struct sessions;
struct sessions_snap;

/* A consistent view of the merged set; items valid until sessions_view_put. */
struct sessions_view {
	const struct session_conf *items;
	size_t n;
	struct sessions_snap *snap; /* NULL: cfg->live was NULL, items are the [session] sections */
};

/* Any thread. */
void sessions_view_get(const struct agent_conf *cfg, struct sessions_view *v);
void sessions_view_put(struct sessions_view *v);
static inline const struct session_conf *sessions_view_at(const struct sessions_view *v,
                                                          const char *room, int64_t now_ms)
{
	return agent_conf_session_find(v->items, v->n, room, now_ms);
}

/* Starts with the [session] sections alone; sessions_load adds the kept answer. */
int sessions_create(const struct agent_conf *cfg, struct sessions **out);
void sessions_destroy(struct sessions **ss);
/* Reads <state_dir>/sessions.json (absent: nothing yet). A bad file is logged and ignored
 * (the next good answer replaces it). Loop thread (or before the loop runs). */
int sessions_load(struct sessions *ss);
/* The collector's version of the set in force, -1 before its first answer. */
int64_t sessions_version(const struct sessions *ss);
/* Replaces the collector's part with list (taken over, emptied) at version; body (the
 * answer as received, len bytes) is kept in the state dir first, so a restart without the
 * collector follows the same set. 0, or -errno when it could not be kept (the new set is
 * in force all the same). Loop thread. */
int sessions_update(struct sessions *ss, struct session_list *list, int64_t version,
                    const char *body, size_t len);

/* Reads the collector's answer {"site","version","sessions":[...]} to GET
 * /api/v1/agent/sessions: times as start_ms/end_ms and the same instants in local time
 * ("…T09:00:00+08:00", to the second), rooms an array (["*"] = every room). Every
 * field is checked; on the first bad one returns -EBADMSG with why naming it
 * ("sessions[2].end_ms: not after start_ms") and out empty. site is this agent's site. Pure:
 * any thread. */
int sessions_parse(const char *body, size_t len, const char *site, struct session_list *out,
                   int64_t *version, char *why, size_t wl);
/* ini[0..nini) and col merged into out (copies): col's sessions, then ini's whose id col
 * does not have; overridden(arg, id) for each of those. 0 or -ENOMEM. Pure. */
int sessions_merge(const struct session_conf *ini, size_t nini, const struct session_list *col,
                   struct session_list *out, void (*overridden)(void *arg, const char *id),
                   void *arg);

#endif
