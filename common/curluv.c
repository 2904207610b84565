#include "curluv.h"

#include <errno.h>
#include <stdlib.h>

struct curluv_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct curluv *c;
	struct curluv_sock *next, *prev; /* every open poll, so close can reach them all */
};

struct curluv_req {
	curluv_done_cb cb;
	void *arg;
};

struct curluv {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	struct curluv_sock *socks;
	int closing;
	void (*closed_cb)(void *);
	void *closed_arg;
};

static void check_done(struct curluv *c)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(c->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *easy = msg->easy_handle;
		CURLcode cc = msg->data.result;
		struct curluv_req *req = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req);
		curl_multi_remove_handle(c->multi, easy);
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		if (req) {
			curluv_done_cb cb = req->cb;
			void *arg = req->arg;
			free(req);
			cb(easy, cc, arg); /* may add a new transfer: msg is not used after this */
		}
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct curluv_sock *s = h->data;
	struct curluv *c = s->c; /* s may be freed inside socket_action */
	int flags = 0, running;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(c->multi, s->fd, flags, &running);
	check_done(c);
}

static void on_sock_closed(uv_handle_t *h)
{
	free(h->data);
}

static void sock_close(struct curluv_sock *s)
{
	struct curluv *c = s->c;
	if (s->prev)
		s->prev->next = s->next;
	else
		c->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	struct curluv *c = userp;
	struct curluv_sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			sock_close(s);
			curl_multi_assign(c->multi, fd, NULL);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->fd = fd;
		s->c = c;
		if (uv_poll_init_socket(c->loop, &s->poll, fd)) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		s->next = c->socks;
		if (c->socks)
			c->socks->prev = s;
		c->socks = s;
		curl_multi_assign(c->multi, fd, s);
	}
	int events = 0;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, on_poll);
	return 0;
}

static void on_timer(uv_timer_t *t)
{
	struct curluv *c = t->data;
	int running;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct curluv *c = userp;
	if (c->closing)
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

int curluv_create(uv_loop_t *loop, struct curluv **out)
{
	struct curluv *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->multi = curl_multi_init();
	if (!c->multi) {
		free(c);
		return -ENOMEM;
	}
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	*out = c;
	return 0;
}

int curluv_add(struct curluv *c, CURL *easy, curluv_done_cb cb, void *arg)
{
	struct curluv_req *req = malloc(sizeof(*req));
	if (!req)
		return -ENOMEM;
	req->cb = cb;
	req->arg = arg;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
	if (curl_multi_add_handle(c->multi, easy) != CURLM_OK) {
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		free(req);
		return -EINVAL;
	}
	return 0;
}

void curluv_remove(struct curluv *c, CURL *easy)
{
	struct curluv_req *req = NULL;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req);
	curl_multi_remove_handle(c->multi, easy);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
	free(req);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct curluv *c = h->data;
	if (c->closed_cb)
		c->closed_cb(c->closed_arg);
}

void curluv_close(struct curluv *c, void (*closed_cb)(void *), void *arg)
{
	c->closing = 1;
	c->closed_cb = closed_cb;
	c->closed_arg = arg;
	/* Stop watching before curl closes the fds; curl may or may not report the removal. */
	while (c->socks) {
		curl_multi_assign(c->multi, c->socks->fd, NULL);
		sock_close(c->socks);
	}
	curl_multi_cleanup(c->multi);
	c->multi = NULL;
	/* Close callbacks run in order: the polls' go first, so closed_cb comes last. */
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

void curluv_destroy(struct curluv **cp)
{
	struct curluv *c = *cp;
	if (!c)
		return;
	if (c->multi)
		curl_multi_cleanup(c->multi);
	free(c);
	*cp = NULL;
}
