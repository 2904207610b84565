/* server_conf: the collector's configuration schema ([server], [pki], [limits], [web],
 * [store], [score]) and the checks that span keys (listen address, hostnames, derived paths).
 * Loaded once on the main thread before the loop starts; server_conf_free releases everything
 * server_conf_load allocated, including the derived paths. */
#ifndef VW_SERVER_CONF_H
#define VW_SERVER_CONF_H

#include <stddef.h>

#include "conf.h"
#include "score.h"

struct server_section {
	char *listen;    /* "host:port" or "[v6]:port"; parsed into listen_host/listen_port */
	char *state_dir; /* venuewatch.db lives here */
	char *hostnames; /* comma-separated DNS names and IPs for the server certificate */
	int log_level;   /* enum vw_log_level */
	int line;
};

struct pki_section {
	char *dir; /* "" = <state_dir>/pki */
	int line;
};

struct limits_section {
	long long max_header_bytes;
	long long max_body_bytes;
	long max_connections;
	long header_timeout_ms;
	long request_timeout_ms;
	long idle_timeout_ms;
	long shutdown_timeout_ms;
	long long stream_queue_bytes;
	long new_epochs_per_day;
	int line;
};

struct web_section {
	char *root;    /* "" = no dashboard */
	char *origins; /* "" = https:// + the request's Host */
	long session_idle_ms;
	long session_lifetime_ms;
	long stream_recheck_ms;
	char *public_url; /* issue 16 D: "" = no dashboard link in notifications */
	int line;
};

/* issue 14: GET /metrics. */
struct metrics_section {
	char *allow; /* peers let in without a token: addresses/CIDRs; "" = token only */
	int line;
};

enum store_backend_id { STORE_BACKEND_SQLITE, STORE_BACKEND_POSTGRESQL };
struct store_section {
	int backend; /* enum store_backend_id (the choices' index) */
	/* issue 13, backend = postgresql: libpq's connection string (never a password: refused
	 * at load) and the libpq password file for it ("" = libpq's default) */
	char *dsn;
	char *password_file;
	long raw_retention_ms;
	long thumb_retention_ms; /* issue 16 C: 0 = raw_retention_ms */
	/* issue 16 C: thumbnail_access rows older than this are pruned */
	long thumb_access_retention_ms;
	/* issue 13, backend = postgresql: the singleton jobs' leases */
	long lease_ttl_ms, lease_renew_ms;
	int line;
};

/* The item-3.6 rubric (docs/SCORE.md); checked and versioned into server_conf.rubric. */
struct score_section {
	double full_pct, step4, step3, step2;
	long default_stale_ms;
	long settle_ms;
	int line;
};

/* issue 16 (A): the live feed (problems, silence, events). */
struct feed_section {
	char *silent_after; /* "3x" (times the site's cadence) or a duration */
	long event_retention_ms;
	int line;
};

/* issue 16 D: one [notify NAME] sink (server/notify/notify.h). */
struct notify_section {
	char *name;
	int type; /* enum notify_type */
	char *url;
	char *secret;
	char *secret_file;
	int min_severity; /* enum notify_severity */
	char *scope;
	char *events;
	char *rate;
	long burst;
	char *ca;
	long timeout_ms;
	long retry_first_ms, retry_max_ms;
	long attempts;
	long queue;
	int line;
	/* Derived by server_conf_load: secret_file's contents when set (else secret). */
	char *secret_value;
};

/* issue 12 B: [inspection] (双随机、一公开). The id:label lists are checked here with
 * inspect_labels_parse; the modules that use them parse them again (a few hundred bytes). */
struct inspection_section {
	char *risk_grades; /* id:label list, first = highest risk */
	char *outcomes;    /* id:label list of inspection outcomes */
	char *holidays;    /* CSV path, "" = weekends only */
	long result_due_days;
	long capture_every_ms;
	int line;
};

struct server_conf {
	const char *path;
	struct server_section server;
	struct pki_section pki;
	struct limits_section limits;
	struct web_section web;
	struct store_section store;
	struct score_section score;
	struct feed_section feed;
	struct vw_conf_list notify;           /* issue 16 D: struct notify_section */
	struct inspection_section inspection; /* issue 12 B */
	struct metrics_section metrics;       /* issue 14 */
	/* Derived by server_conf_load once the file is valid. */
	char listen_host[64];
	int listen_port;
	char *pki_dir; /* resolved [pki] dir */
	char *db_path; /* <state_dir>/venuewatch.db (the sqlite store's file, for logs) */
	const char *store_backend; /* [store] backend by name, for store_open */
	char *auth_db_path; /* <state_dir>/auth.db: tokens, certificates, audit (see auth.h) */
	char *crl_path;     /* <pki_dir>/ca.crl */
	struct score_rubric rubric; /* [score], with its version */
	/* [feed] silent_after: a fixed bound (ms > 0), or factor x the site's cadence. */
	long long feed_silent_ms;
	double feed_silent_factor;
};

extern const struct vw_conf_schema server_conf_schema;

/* Loads and validates path. Returns 0, the number of errors (> 0, text in errs) or -errno. */
int server_conf_load(struct server_conf *cfg, const char *path, struct vw_conf_errors *errs);
int server_conf_load_string(struct server_conf *cfg, const char *name, const char *text,
                            struct vw_conf_errors *errs);
void server_conf_free(struct server_conf *cfg);

/* What a reload (SIGHUP) cannot apply to a running server: the first key that differs
 * between old and new among listen, state_dir and pki dir, as "section.key" in out; 0 when
 * none does. log_level and [limits] apply at once; hostnames matter only to 'ca server'. */
int server_conf_restart_needed(const struct server_conf *old, const struct server_conf *new_,
                               char *out, size_t outlen);
/* Splits "host:port" / "[v6]:port". 0 or -EINVAL. host must hold 64 bytes. */
int server_conf_parse_listen(const char *s, char host[64], int *port);
/* Calls fn for each trimmed, non-empty name of a comma-separated list; stops at the first
 * non-zero return and passes it on. */
int server_conf_each_hostname(const char *list, int (*fn)(void *ud, const char *name), void *ud);

#endif
