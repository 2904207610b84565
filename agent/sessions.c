#include "sessions.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "log.h"
#include "result.h"
#include "utf8.h"
#include "vtime.h"

/* A venue holds a few sessions a week and the collector sends 90 days of them: 10,000 is
 * far above any real answer and bounds what a broken one can make us allocate. */
#define SESSIONS_MAX 10000
#define SESSIONS_ROOMS_MAX 1000
#define SESSIONS_FILE_MAX (4u << 20)
#define SESSIONS_FILE "sessions.json"

struct sessions_snap {
	struct sessions *owner;
	int refs; /* guarded by owner->mu; the current snapshot holds one */
	struct session_list list;
};

struct sessions {
	const struct agent_conf *cfg;
	pthread_mutex_t mu; /* guards cur and every snapshot's refs */
	struct sessions_snap *cur;
	int64_t version;
	char **logged; /* ids whose override was logged already: logged once, not per poll */
	size_t nlogged;
};

void session_list_free(struct session_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].id);
		free(l->items[i].start);
		free(l->items[i].end);
		free(l->items[i].rooms);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static void snap_unref(struct sessions_snap *sn)
{
	/* called with owner->mu held */
	if (--sn->refs == 0) {
		session_list_free(&sn->list);
		free(sn);
	}
}

void sessions_view_get(const struct agent_conf *cfg, struct sessions_view *v)
{
	struct sessions *ss = cfg->live;
	if (!ss) {
		v->items = cfg->sessions.items;
		v->n = cfg->sessions.n;
		v->snap = NULL;
		return;
	}
	pthread_mutex_lock(&ss->mu);
	v->snap = ss->cur;
	v->snap->refs++;
	pthread_mutex_unlock(&ss->mu);
	v->items = v->snap->list.items;
	v->n = v->snap->list.n;
}

void sessions_view_put(struct sessions_view *v)
{
	struct sessions_snap *sn = v->snap;
	if (sn) {
		struct sessions *ss = sn->owner;
		pthread_mutex_lock(&ss->mu);
		snap_unref(sn);
		pthread_mutex_unlock(&ss->mu);
	}
	v->snap = NULL;
	v->items = NULL;
	v->n = 0;
}

static int copy_session(struct session_conf *dst, const struct session_conf *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->id = strdup(src->id);
	dst->start = strdup(src->start ? src->start : "");
	dst->end = strdup(src->end ? src->end : "");
	dst->rooms = strdup(src->rooms ? src->rooms : "*");
	dst->start_ms = src->start_ms;
	dst->end_ms = src->end_ms;
	dst->line = src->line;
	return dst->id && dst->start && dst->end && dst->rooms ? 0 : -ENOMEM;
}

int sessions_merge(const struct session_conf *ini, size_t nini, const struct session_list *col,
                   struct session_list *out, void (*overridden)(void *arg, const char *id),
                   void *arg)
{
	out->n = 0;
	out->items = calloc(nini + col->n + 1, sizeof(*out->items));
	if (!out->items)
		return -ENOMEM;
	for (size_t i = 0; i < col->n; i++) {
		if (copy_session(&out->items[out->n++], &col->items[i]))
			goto fail;
	}
	for (size_t i = 0; i < nini; i++) {
		size_t k;
		for (k = 0; k < col->n; k++)
			if (strcmp(col->items[k].id, ini[i].id) == 0)
				break;
		if (k < col->n) {
			if (overridden)
				overridden(arg, ini[i].id);
			continue;
		}
		if (copy_session(&out->items[out->n++], &ini[i]))
			goto fail;
	}
	return 0;
fail:
	session_list_free(out);
	return -ENOMEM;
}

/* --- the collector's answer ----------------------------------------------------------- */

static int bad(char *why, size_t wl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t wl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, wl, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* A name we put in results and log lines: 1..63 bytes of UTF-8 without control
 * characters; rooms also without ',' and ' ' (the separators of session_conf.rooms). */
static int name_ok(const char *s, int room)
{
	size_t n = strlen(s);
	if (n == 0 || n >= VW_NAME_MAX || !vw_utf8_valid(s))
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (room && (*p == ',' || *p == ' ')))
			return 0;
	return 1;
}

/* An integer JSON number in [lo, hi]. */
static int int_in(const cJSON *j, double lo, double hi, int64_t *out)
{
	if (!cJSON_IsNumber(j))
		return 0;
	double d = j->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < lo || d > hi)
		return 0;
	*out = (int64_t)d;
	return 1;
}

/* "YYYY-MM-DDTHH:MM:SS" with "Z" or a "+HH:MM"/"-HH:MM" offset, as the collector writes
 * local times (+08:00). */
static int parse_offset_time(const char *s, int64_t *ms)
{
	char utc[24];
	if (strlen(s) < 20)
		return -EINVAL;
	memcpy(utc, s, 19);
	utc[19] = 'Z';
	utc[20] = '\0';
	if (vw_time_parse_iso(utc, ms))
		return -EINVAL;
	const char *z = s + 19;
	if (strcmp(z, "Z") == 0)
		return 0;
	int hh, mm;
	char sign, tail;
	if (strlen(z) != 6 || sscanf(z, "%c%2d:%2d%c", &sign, &hh, &mm, &tail) != 3 ||
	    (sign != '+' && sign != '-') || z[3] != ':' || hh > 14 || mm > 59)
		return -EINVAL;
	int64_t off = ((int64_t)hh * 60 + mm) * 60000;
	*ms -= sign == '+' ? off : -off;
	return 0;
}

static const cJSON *field(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

static int parse_one(const cJSON *js, size_t i, struct session_conf *se, char *why, size_t wl)
{
	const cJSON *id = field(js, "id"), *occ = field(js, "occupation"),
	            *lvl = field(js, "level");
	const cJSON *st = field(js, "start"), *en = field(js, "end"), *rooms = field(js, "rooms");
	const cJSON *cand = field(js, "candidates");
	int64_t start_ms, end_ms, x, parsed;
	if (!cJSON_IsObject(js))
		return bad(why, wl, "sessions[%zu]: expected an object", i);
	if (!cJSON_IsString(id) || !name_ok(id->valuestring, 0))
		return bad(why, wl,
		           "sessions[%zu].id: expected a string of 1..%d bytes of UTF-8 without "
		           "control characters",
		           i, VW_NAME_MAX - 1);
	if (!cJSON_IsString(occ) || !vw_utf8_valid(occ->valuestring))
		return bad(why, wl, "sessions[%zu].occupation: expected a UTF-8 string", i);
	if (!cJSON_IsString(lvl) || !vw_utf8_valid(lvl->valuestring))
		return bad(why, wl, "sessions[%zu].level: expected a UTF-8 string", i);
	if (!int_in(field(js, "start_ms"), VW_TS_MIN_MS, VW_TS_MAX_MS - 1, &start_ms))
		return bad(
		    why, wl,
		    "sessions[%zu].start_ms: expected an integer time (UTC ms) in 2000..2099", i);
	if (!int_in(field(js, "end_ms"), VW_TS_MIN_MS, VW_TS_MAX_MS - 1, &end_ms))
		return bad(why, wl,
		           "sessions[%zu].end_ms: expected an integer time (UTC ms) in 2000..2099",
		           i);
	if (end_ms <= start_ms)
		return bad(why, wl, "sessions[%zu].end_ms: not after start_ms", i);
	/* The local-time strings are what people read: they must say the same instant (to
	 * the second, which is all they carry). */
	if (!cJSON_IsString(st) || parse_offset_time(st->valuestring, &parsed) ||
	    parsed != start_ms - start_ms % 1000)
		return bad(why, wl,
		           "sessions[%zu].start: expected \"YYYY-MM-DDTHH:MM:SS+08:00\" equal to "
		           "start_ms",
		           i);
	if (!cJSON_IsString(en) || parse_offset_time(en->valuestring, &parsed) ||
	    parsed != end_ms - end_ms % 1000)
		return bad(why, wl,
		           "sessions[%zu].end: expected \"YYYY-MM-DDTHH:MM:SS+08:00\" equal to "
		           "end_ms",
		           i);
	if (cand && !int_in(cand, 0, 1e9, &x))
		return bad(why, wl, "sessions[%zu].candidates: expected an integer >= 0", i);
	int nrooms = cJSON_IsArray(rooms) ? cJSON_GetArraySize(rooms) : -1;
	if (nrooms < 1 || nrooms > SESSIONS_ROOMS_MAX)
		return bad(why, wl, "sessions[%zu].rooms: expected an array of 1..%d room names", i,
		           SESSIONS_ROOMS_MAX);
	struct vw_buf rb;
	vw_buf_init(&rb, 0);
	size_t k = 0;
	for (const cJSON *r = rooms->child; r; r = r->next, k++) {
		if (!cJSON_IsString(r) || !name_ok(r->valuestring, 1)) {
			vw_buf_free(&rb);
			return bad(
			    why, wl,
			    "sessions[%zu].rooms[%zu]: expected a room name (1..%d bytes, no "
			    "',' or space)",
			    i, k, VW_NAME_MAX - 1);
		}
		if (strcmp(r->valuestring, "*") == 0 && nrooms != 1) {
			vw_buf_free(&rb);
			return bad(why, wl,
			           "sessions[%zu].rooms[%zu]: \"*\" (every room) stands alone", i,
			           k);
		}
		vw_buf_printf(&rb, "%s%s", k ? "," : "", r->valuestring);
	}
	memset(se, 0, sizeof(*se));
	se->id = strdup(id->valuestring);
	se->start = strdup(st->valuestring);
	se->end = strdup(en->valuestring);
	se->rooms = rb.err ? NULL : strdup(vw_buf_cstr(&rb));
	se->start_ms = start_ms;
	se->end_ms = end_ms;
	vw_buf_free(&rb);
	if (!se->id || !se->start || !se->end || !se->rooms)
		return bad(why, wl, "sessions[%zu]: out of memory", i);
	return 0;
}

int sessions_parse(const char *body, size_t len, const char *site, struct session_list *out,
                   int64_t *version, char *why, size_t wl)
{
	int rc = 0;
	out->items = NULL;
	out->n = 0;
	cJSON *root = cJSON_ParseWithLength(body ? body : "", len);
	const cJSON *jsite = field(root, "site"), *jver = field(root, "version");
	const cJSON *list = field(root, "sessions");
	if (!cJSON_IsObject(root)) {
		rc = bad(why, wl, "body: not a JSON object");
		goto done;
	}
	if (!cJSON_IsString(jsite) || strcmp(jsite->valuestring, site) != 0) {
		char esc[80];
		rc = bad(why, wl, "site: expected \"%s\", got %s", site,
		         cJSON_IsString(jsite) ? vw_log_escape(jsite->valuestring, esc, sizeof(esc))
		                               : "no string");
		goto done;
	}
	if (!int_in(jver, 0, 9007199254740991.0, version)) {
		rc = bad(why, wl, "version: expected an integer >= 0");
		goto done;
	}
	int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
	if (n < 0 || n > SESSIONS_MAX) {
		rc = bad(why, wl, "sessions: expected an array of at most %d sessions",
		         SESSIONS_MAX);
		goto done;
	}
	out->items = calloc((size_t)n + 1, sizeof(*out->items));
	if (!out->items) {
		rc = bad(why, wl, "sessions: out of memory");
		goto done;
	}
	size_t i = 0;
	for (const cJSON *js = list->child; js; js = js->next, i++) {
		rc = parse_one(js, i, &out->items[i], why, wl);
		out->n = i + 1; /* so that a half-filled item is freed too */
		if (rc)
			goto done;
		for (size_t k = 0; k < i; k++)
			if (strcmp(out->items[k].id, out->items[i].id) == 0) {
				rc = bad(why, wl, "sessions[%zu].id: same id as sessions[%zu]", i,
				         k);
				goto done;
			}
	}
done:
	cJSON_Delete(root);
	if (rc)
		session_list_free(out);
	return rc;
}

/* --- the set in force ------------------------------------------------------------------ */

static void log_override(void *arg, const char *id)
{
	struct sessions *ss = arg;
	for (size_t i = 0; i < ss->nlogged; i++)
		if (strcmp(ss->logged[i], id) == 0)
			return;
	char **p = realloc(ss->logged, (ss->nlogged + 1) * sizeof(*p));
	if (p) {
		ss->logged = p;
		if ((p[ss->nlogged] = strdup(id)))
			ss->nlogged++;
	}
	char esc[96];
	log_info("event=session_overridden session=%s source=collector "
	         "hint=\"the collector's session replaces the [session] section of the same id\"",
	         vw_log_escape(id, esc, sizeof(esc)));
}

/* Rooms the collector names that this agent has no [room] for cover nothing here. */
static void warn_unknown_rooms(const struct sessions *ss, const struct session_list *col)
{
	const struct agent_conf *cfg = ss->cfg;
	for (size_t i = 0; i < col->n; i++) {
		const struct session_conf *se = &col->items[i];
		if (strcmp(se->rooms, "*") == 0)
			continue;
		for (const char *p = se->rooms; *p;) {
			size_t n = strcspn(p, ",");
			size_t r;
			for (r = 0; r < cfg->rooms.n; r++) {
				const char *name = agent_conf_room(cfg, r)->name;
				if (strlen(name) == n && strncmp(name, p, n) == 0)
					break;
			}
			if (r == cfg->rooms.n) {
				char room[VW_NAME_MAX], e1[96], e2[96];
				snprintf(room, sizeof(room), "%.*s", (int)n, p);
				log_warn(
				    "event=session_room_unknown session=%s room=%s "
				    "hint=\"no [room] section of that name: no camera covers it\"",
				    vw_log_escape(se->id, e1, sizeof(e1)),
				    vw_log_escape(room, e2, sizeof(e2)));
			}
			p += n;
			if (*p == ',')
				p++;
		}
	}
}

static int install(struct sessions *ss, const struct session_list *col, int64_t version)
{
	struct sessions_snap *sn = calloc(1, sizeof(*sn));
	if (!sn)
		return -ENOMEM;
	sn->owner = ss;
	sn->refs = 1;
	if (sessions_merge(ss->cfg->sessions.items, ss->cfg->sessions.n, col, &sn->list,
	                   log_override, ss)) {
		free(sn);
		return -ENOMEM;
	}
	warn_unknown_rooms(ss, col);
	pthread_mutex_lock(&ss->mu);
	struct sessions_snap *old = ss->cur;
	ss->cur = sn;
	ss->version = version;
	if (old)
		snap_unref(old);
	pthread_mutex_unlock(&ss->mu);
	return 0;
}

int sessions_create(const struct agent_conf *cfg, struct sessions **out)
{
	struct sessions *ss = calloc(1, sizeof(*ss));
	if (!ss)
		return -ENOMEM;
	ss->cfg = cfg;
	ss->version = -1;
	pthread_mutex_init(&ss->mu, NULL);
	struct session_list none = {0};
	if (install(ss, &none, -1)) {
		pthread_mutex_destroy(&ss->mu);
		free(ss);
		return -ENOMEM;
	}
	*out = ss;
	return 0;
}

void sessions_destroy(struct sessions **ssp)
{
	struct sessions *ss = *ssp;
	if (!ss)
		return;
	pthread_mutex_lock(&ss->mu);
	if (ss->cur)
		snap_unref(ss->cur);
	ss->cur = NULL;
	pthread_mutex_unlock(&ss->mu);
	pthread_mutex_destroy(&ss->mu);
	for (size_t i = 0; i < ss->nlogged; i++)
		free(ss->logged[i]);
	free(ss->logged);
	free(ss);
	*ssp = NULL;
}

int64_t sessions_version(const struct sessions *ss)
{
	return ss->version; /* written only on the loop thread, which is the reader */
}

struct body_arg {
	const char *p;
	size_t n;
};

static int write_body(FILE *fp, const void *arg)
{
	const struct body_arg *b = arg;
	return fwrite(b->p, 1, b->n, fp) == b->n;
}

static void state_path(const struct sessions *ss, char *path, size_t pl)
{
	snprintf(path, pl, "%s/" SESSIONS_FILE, ss->cfg->agent.state_dir);
}

int sessions_update(struct sessions *ss, struct session_list *list, int64_t version,
                    const char *body, size_t len)
{
	int rc = 0;
	if (body) {
		char path[PATH_MAX], err[512];
		struct body_arg b = {body, len};
		state_path(ss, path, sizeof(path));
		/* Kept before it is used: a crash in between leaves the old file, and the next
		 * poll (without If-None-Match for a version we never saw) fetches it again. */
		rc = vw_file_replace(path, 0600, write_body, &b, err, sizeof(err));
		if (rc)
			log_error("event=sessions_not_kept err=\"%s\" hint=\"a restart without the "
			          "collector follows the previous set\"",
			          err);
	}
	int irc = install(ss, list, version);
	if (irc) {
		log_error("event=sessions_not_applied err=no_memory");
		session_list_free(list);
		return irc;
	}
	log_info("event=sessions_updated version=%lld collector=%zu merged=%zu", (long long)version,
	         list->n, ss->cur->list.n);
	session_list_free(list);
	return rc;
}

int sessions_load(struct sessions *ss)
{
	char path[PATH_MAX], why[256];
	state_path(ss, path, sizeof(path));
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		if (errno == ENOENT)
			return 0;
		log_error("event=sessions_state_unreadable file=%s err=\"%s\"", path,
		          strerror(errno));
		return -errno;
	}
	char *buf = malloc(SESSIONS_FILE_MAX);
	size_t n = buf ? fread(buf, 1, SESSIONS_FILE_MAX, fp) : 0;
	int toolong = buf && n == SESSIONS_FILE_MAX;
	fclose(fp);
	if (!buf)
		return -ENOMEM;
	struct session_list list;
	int64_t version;
	int rc = toolong ? -EFBIG
	                 : sessions_parse(buf, n, ss->cfg->agent.site, &list, &version, why,
	                                  sizeof(why));
	free(buf);
	if (rc) {
		char esc[320];
		log_error("event=sessions_state_bad file=%s err=%s hint=\"ignored until the "
		          "collector answers again\"",
		          path,
		          vw_log_escape(toolong ? "larger than 4 MiB" : why, esc, sizeof(esc)));
		return rc;
	}
	rc = install(ss, &list, version);
	if (!rc)
		log_info("event=sessions_loaded file=%s version=%lld collector=%zu merged=%zu",
		         path, (long long)version, list.n, ss->cur->list.n);
	session_list_free(&list);
	return rc;
}
