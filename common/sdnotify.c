#include "sdnotify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"

int sdnotify_send(const char *state)
{
	/* unset_environment=0: the CA signer child is exec'd with our environment, but
	 * NotifyAccess=main makes systemd ignore anything it might send. */
	int rc = sd_notify(0, state);
	return rc < 0 ? rc : 0;
}

static void status_send(struct sdnotify *n, int force)
{
	char now[SDNOTIFY_STATUS_MAX], line[SDNOTIFY_STATUS_MAX + 8];
	if (!n->enabled || !n->status_fn)
		return;
	now[0] = '\0';
	n->status_fn(n->ud, now, sizeof(now));
	if (!force && strcmp(now, n->last) == 0)
		return;
	snprintf(line, sizeof(line), "STATUS=%s", now);
	int rc = sdnotify_send(line);
	if (rc) {
		log_warn("event=sd_notify_failed what=status err=\"%s\"", strerror(-rc));
		return;
	}
	memcpy(n->last, now, sizeof(now));
}

static void on_watchdog(uv_timer_t *t)
{
	/* From the loop thread: a loop that stalls stops these, and systemd kills us. */
	int rc = sdnotify_send("WATCHDOG=1");
	if (rc)
		log_warn("event=sd_notify_failed what=watchdog err=\"%s\"", strerror(-rc));
	(void)t;
}

static void on_status(uv_timer_t *t)
{
	status_send(t->data, 0);
}

int sdnotify_init(struct sdnotify *n, uv_loop_t *loop, sdnotify_status_fn status_fn, void *ud)
{
	memset(n, 0, sizeof(*n));
	n->status_fn = status_fn;
	n->ud = ud;
	const char *sock = getenv("NOTIFY_SOCKET");
	n->enabled = sock && sock[0];
	if (!n->enabled)
		return 0;
	uint64_t usec = 0;
	/* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process. */
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		/* Half the interval, as sd_watchdog_enabled(3) advises: one late ping is not a
		 * kill. At least 1 ms so a tiny WatchdogSec= still makes a timer. */
		n->watchdog_ms = usec / 2000 ? usec / 2000 : 1;
	}
	int rc;
	if ((rc = uv_timer_init(loop, &n->watchdog)) != 0)
		return rc;
	if ((rc = uv_timer_init(loop, &n->status)) != 0) {
		uv_close((uv_handle_t *)&n->watchdog, NULL);
		return rc;
	}
	n->inited = 1;
	n->watchdog.data = n->status.data = n;
	if (n->watchdog_ms)
		uv_timer_start(&n->watchdog, on_watchdog, n->watchdog_ms, n->watchdog_ms);
	if (status_fn)
		uv_timer_start(&n->status, on_status, SDNOTIFY_STATUS_MS, SDNOTIFY_STATUS_MS);
	return 0;
}

int sdnotify_ready(struct sdnotify *n)
{
	if (!n->enabled)
		return 0;
	status_send(n, 1);
	return sdnotify_send("READY=1");
}

int sdnotify_reloading(struct sdnotify *n)
{
	if (!n->enabled)
		return 0;
	/* MONOTONIC_USEC: systemd 253+ (Type=notify-reload) matches the reload by it; older
	 * managers ignore the field. */
	struct timespec ts;
	char line[64];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(line, sizeof(line), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
	         (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	return sdnotify_send(line);
}

int sdnotify_stopping(struct sdnotify *n)
{
	if (!n->enabled)
		return 0;
	return sdnotify_send("STOPPING=1");
}

void sdnotify_status_update(struct sdnotify *n)
{
	status_send(n, 0);
}

uint64_t sdnotify_watchdog_ms(const struct sdnotify *n)
{
	return n->watchdog_ms;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct sdnotify *n = h->data;
	if (--n->closing == 0 && n->closed_cb)
		n->closed_cb(n->closed_arg);
}

void sdnotify_close(struct sdnotify *n, void (*closed_cb)(void *), void *arg)
{
	if (!n->inited) {
		if (closed_cb)
			closed_cb(arg);
		return;
	}
	n->inited = 0;
	n->closed_cb = closed_cb;
	n->closed_arg = arg;
	n->closing = 2;
	uv_close((uv_handle_t *)&n->watchdog, on_timer_closed);
	uv_close((uv_handle_t *)&n->status, on_timer_closed);
}
