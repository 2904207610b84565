#include "assess.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sessions.h"
#include "vtime.h"

#define ASSESS_MAX_NET 32

/* What we know of one camera: its latest stream and recording verdicts. */
struct cam_state {
	int stream; /* enum vw_status, -1 unknown */
	int recording;
	double kbps;
};

struct net_state {
	char target[VW_NAME_MAX];
	int status;
};

struct assess {
	const struct agent_conf *cfg;
	struct cam_state *cams;
	struct net_state net[ASSESS_MAX_NET];
	size_t nnet;
	int connected; /* -1 unknown */
};

int assess_create(const struct agent_conf *cfg, struct assess **out)
{
	struct assess *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->cfg = cfg;
	a->cams = calloc(cfg->cameras.n ? cfg->cameras.n : 1, sizeof(*a->cams));
	if (!a->cams) {
		free(a);
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->cameras.n; i++)
		a->cams[i].stream = a->cams[i].recording = -1;
	a->connected = -1;
	*out = a;
	return 0;
}

void assess_destroy(struct assess **ap)
{
	if (!*ap)
		return;
	free((*ap)->cams);
	free(*ap);
	*ap = NULL;
}

static int camera_index(const struct assess *a, const char *name)
{
	for (size_t i = 0; i < a->cfg->cameras.n; i++)
		if (strcmp(agent_conf_camera(a->cfg, i)->name, name) == 0)
			return (int)i;
	return -1;
}

void assess_observe(struct assess *a, const struct vw_result *results, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct vw_result *r = &results[i];
		int ci;
		switch (r->kind) {
		case VW_KIND_STREAM:
			if ((ci = camera_index(a, r->target)) >= 0) {
				double kbps = 0;
				a->cams[ci].stream = (int)r->status;
				a->cams[ci].kbps =
				    vw_result_get_metric(r, "bitrate_kbps", &kbps) ? kbps : 0;
			}
			break;
		case VW_KIND_RECORDING:
			if ((ci = camera_index(a, r->target)) >= 0)
				a->cams[ci].recording = (int)r->status;
			break;
		case VW_KIND_NETWORK: {
			size_t k;
			for (k = 0; k < a->nnet; k++)
				if (strcmp(a->net[k].target, r->target) == 0)
					break;
			if (k == a->nnet) {
				if (a->nnet == ASSESS_MAX_NET)
					break;
				snprintf(a->net[a->nnet++].target, VW_NAME_MAX, "%s", r->target);
			}
			a->net[k].status = (int)r->status;
			break;
		}
		default:
			break;
		}
	}
}

void assess_set_connected(struct assess *a, int connected)
{
	a->connected = connected;
}

size_t assess_cameras_down(const struct assess *a)
{
	size_t n = 0;
	for (size_t i = 0; i < a->cfg->cameras.n; i++)
		n += a->cams[i].stream == VW_STATUS_DOWN;
	return n;
}

double assess_camera_kbps(const struct assess *a)
{
	double sum = 0;
	for (size_t i = 0; i < a->cfg->cameras.n; i++)
		if (a->cams[i].stream == VW_STATUS_OK || a->cams[i].stream == VW_STATUS_DEGRADED)
			sum += a->cams[i].kbps;
	return sum;
}

size_t assess_max_results(const struct agent_conf *cfg)
{
	return cfg->rooms.n + 1;
}

/* Rooms that count now: those in a running session, or every room outside sessions (the
 * venue should be ready any time; the server weighs session time when scoring). */
static int room_counts(const struct sessions_view *v, const char *room, int64_t now, int in_session)
{
	return !in_session || sessions_view_at(v, room, now) != NULL;
}

static size_t emit(struct assess *a, const struct sessions_view *vp, int64_t now_ms,
                   struct vw_result *out, size_t max)
{
	const struct agent_conf *cfg = a->cfg;
	const struct sessions_view v = *vp;
	size_t n = 0;
	int in_session = sessions_view_at(&v, NULL, now_ms) != NULL;
	/* Emitted on main's assessment timer, whose cadence is this one. */
	double interval =
	    (double)(in_session ? cfg->agent.session_interval_ms : cfg->agent.interval_ms);
	int rooms_counted = 0, rooms_covered = 0;

	for (size_t ri = 0; ri < cfg->rooms.n && n < max; ri++) {
		const struct room_conf *room = agent_conf_room(cfg, ri);
		int total = 0, ok = 0, unknown = 0;
		for (size_t ci = 0; ci < cfg->cameras.n; ci++) {
			if (strcmp(agent_conf_camera(cfg, ci)->room, room->name) != 0)
				continue;
			total++;
			if (a->cams[ci].stream < 0)
				unknown++;
			else if (a->cams[ci].stream == VW_STATUS_OK)
				ok++;
		}
		if (unknown)
			continue; /* not every camera has been seen yet: no verdict */
		struct vw_result *r = &out[n++];
		vw_result_init(r, VW_KIND_COVERAGE, room->name);
		r->ts_ms = now_ms;
		const struct session_conf *se = sessions_view_at(&v, room->name, now_ms);
		if (se)
			snprintf(r->session, sizeof(r->session), "%s", se->id);
		vw_result_set_metric(r, VW_M_INTERVAL_MS, interval);
		vw_result_set_metric(r, VW_M_CAMERAS_OK, ok);
		vw_result_set_metric(r, VW_M_CAMERAS_REQUIRED, (double)room->min_cameras);
		vw_result_set_metric(r, VW_M_CAMERAS_TOTAL, total);
		int covered = ok >= room->min_cameras;
		if (!covered) {
			vw_result_add_fault(r, VW_FAULT_ROOM_UNCOVERED);
			r->status = VW_STATUS_DOWN;
		}
		if (room_counts(&v, room->name, now_ms, in_session)) {
			rooms_counted++;
			rooms_covered += covered;
		}
	}
	if (n >= max)
		return n;

	/* The site's assessment: the four phrases of item 3.6 as measured now. */
	int cams = 0, clear = 0, rec_known = 0, kept = 0;
	for (size_t ci = 0; ci < cfg->cameras.n; ci++) {
		if (a->cams[ci].stream >= 0) {
			cams++;
			clear += a->cams[ci].stream == VW_STATUS_OK;
		}
		if (a->cams[ci].recording >= 0) {
			rec_known++;
			kept += a->cams[ci].recording == VW_STATUS_OK;
		}
	}
	if (!cams)
		return n; /* nothing measured yet */
	int net_ok = 0;
	for (size_t k = 0; k < a->nnet; k++)
		net_ok += a->net[k].status == VW_STATUS_OK;
	struct vw_result *r = &out[n++];
	vw_result_init(r, VW_KIND_ASSESSMENT, cfg->agent.site);
	r->ts_ms = now_ms;
	const struct session_conf *se = sessions_view_at(&v, NULL, now_ms);
	if (se)
		snprintf(r->session, sizeof(r->session), "%s", se->id);
	vw_result_set_metric(r, VW_M_INTERVAL_MS, interval);
	/* Connected: the last upload got through; without uploads (--once), the collector
	 * answered the network probe. */
	int connected = a->connected == 1;
	if (a->connected < 0)
		for (size_t k = 0; k < a->nnet; k++)
			if (strcmp(a->net[k].target, "collector") == 0)
				connected = a->net[k].status != VW_STATUS_DOWN;
	double net_frac = a->nnet ? (double)net_ok / (double)a->nnet : 0;
	double clear_frac = (double)clear / (double)cams;
	double cover_frac = rooms_counted ? (double)rooms_covered / rooms_counted : 0;
	/* Without a recording tree to check, "records kept" is unproven, not true. */
	double kept_frac = rec_known ? (double)kept / (double)cfg->cameras.n : 0;
	static const char *const names[][2] = {
	    {"connected", "not_connected"},         {"network_smooth", "network_not_smooth"},
	    {"picture_clear", "picture_not_clear"}, {"floor_covered", "floor_not_covered"},
	    {"records_kept", "records_not_kept"},
	};
	int holds[5] = {connected, connected && a->nnet && net_ok == (int)a->nnet,
	                clear == cams && cams == (int)cfg->cameras.n,
	                rooms_counted && rooms_covered == rooms_counted,
	                rec_known && kept == (int)cfg->cameras.n};
	double fracs[5] = {connected, net_frac, clear_frac, cover_frac, kept_frac};
	int failing = 0;
	for (int i = 0; i < 5; i++) {
		char key[VW_NAME_MAX];
		snprintf(key, sizeof(key), "%s", names[i][0]);
		vw_result_set_metric_name(r, key, holds[i]);
		snprintf(key, sizeof(key), "%s_fraction", names[i][0]);
		vw_result_set_metric_name(r, key, round(fracs[i] * 1000) / 1000);
		if (!holds[i]) {
			vw_result_add_fault_name(r, names[i][1]);
			failing++;
		}
	}
	r->status = !connected ? VW_STATUS_DOWN : failing ? VW_STATUS_DEGRADED : VW_STATUS_OK;
	return n;
}

size_t assess_emit(struct assess *a, int64_t now_ms, struct vw_result *out, size_t max)
{
	struct sessions_view v;
	sessions_view_get(a->cfg, &v);
	size_t n = emit(a, &v, now_ms, out, max);
	sessions_view_put(&v);
	return n;
}
