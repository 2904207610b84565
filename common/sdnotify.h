/* sdnotify: what the service manager sees of this process (systemd Type=notify), over
 * libsystemd's sd_notify: READY, STATUS, WATCHDOG, RELOADING, STOPPING. Loop thread only.
 * Without NOTIFY_SOCKET (not under systemd, or Type=simple) every call is a no-op and no
 * timer runs. The caller embeds struct sdnotify, calls sdnotify_init once, and must
 * sdnotify_close it before the loop ends; closed_cb runs once both timers are closed. */
#ifndef VW_SDNOTIFY_H
#define VW_SDNOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* STATUS= is re-read this often and sent only when its text changed: systemd keeps the
 * last line, so a quiet daemon sends nothing, and a busy one at most one line per period. */
#define SDNOTIFY_STATUS_MS 2000
#define SDNOTIFY_STATUS_MAX 256

/* Fills buf (a NUL-terminated line, at most len bytes) with the process's status now. */
typedef void (*sdnotify_status_fn)(void *ud, char *buf, size_t len);

struct sdnotify {
	uv_timer_t watchdog; /* WATCHDOG=1 at half of WatchdogSec= (sd_watchdog_enabled) */
	uv_timer_t status;   /* STATUS= on change, every SDNOTIFY_STATUS_MS */
	sdnotify_status_fn status_fn;
	void *ud;
	uint64_t watchdog_ms; /* ping period; 0 = no watchdog asked for */
	int enabled;          /* NOTIFY_SOCKET is set */
	int inited;           /* the timers exist and must be closed */
	int closing;          /* handles still to close */
	void (*closed_cb)(void *);
	void *closed_arg;
	char last[SDNOTIFY_STATUS_MAX];
};

/* One state line ("READY=1", "STATUS=...") to the service manager: 0 when sent or when
 * there is no manager to send to, else a negative errno. */
int sdnotify_send(const char *state);

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC and starts the watchdog and status timers when
 * asked for. status_fn may be NULL (no STATUS= lines). 0 or a negative uv error. */
int sdnotify_init(struct sdnotify *n, uv_loop_t *loop, sdnotify_status_fn status_fn, void *ud);
/* READY=1 with the current STATUS=: the service is up (systemctl start returns). Also after
 * a reload. */
int sdnotify_ready(struct sdnotify *n);
/* RELOADING=1 (systemctl reload waits for the READY=1 that ends it). */
int sdnotify_reloading(struct sdnotify *n);
/* STOPPING=1: shutdown began; the watchdog keeps pinging while the loop drains. */
int sdnotify_stopping(struct sdnotify *n);
/* Re-reads the status now and sends it if it changed (e.g. right after an event). */
void sdnotify_status_update(struct sdnotify *n);
/* The ping period in milliseconds, 0 without WatchdogSec= (for the start-up log). */
uint64_t sdnotify_watchdog_ms(const struct sdnotify *n);
/* Closes the timers; closed_cb(arg) follows from the loop (may be NULL). Safe to call on an
 * sdnotify that was never inited (closed_cb then runs at once). */
void sdnotify_close(struct sdnotify *n, void (*closed_cb)(void *), void *arg);

#endif
