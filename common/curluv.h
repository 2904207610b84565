/* curluv: one libcurl multi handle driven by the libuv loop (curl_multi_socket_action with a
 * uv_poll per socket and one uv_timer). Shared by the uplink and the network probe so there
 * is one copy of the glue. Loop thread only. The caller owns each easy handle; curluv owns
 * the multi, the polls and the timer, and frees them in curluv_close/curluv_destroy. */
#ifndef VW_CURLUV_H
#define VW_CURLUV_H

#include <curl/curl.h>
#include <uv.h>

struct curluv;

/* Runs once per added transfer, after curluv removed it from the multi handle. */
typedef void (*curluv_done_cb)(CURL *easy, CURLcode result, void *arg);

int curluv_create(uv_loop_t *loop, struct curluv **out);
int curluv_add(struct curluv *c, CURL *easy, curluv_done_cb cb, void *arg);
/* Aborts a transfer without calling its callback. */
void curluv_remove(struct curluv *c, CURL *easy);
/* Every transfer must have been removed or completed. closed_cb follows the handles. */
void curluv_close(struct curluv *c, void (*closed_cb)(void *), void *arg);
void curluv_destroy(struct curluv **c);

#endif
