/* api: request routing and the read API (/healthz, /api/v1/sites, /api/v1/sites/{site});
 * POST /api/v1/ingest is passed to ingest. Loop thread only; reads go through the store's
 * read-only connection. The api object holds borrowed pointers and is freed by
 * api_destroy. */
#ifndef VW_API_H
#define VW_API_H

#include "conn.h"
#include "ingest.h"
#include "store.h"

struct api;

struct api *api_create(struct store *store, struct ingest *ingest);
void api_destroy(struct api *a); /* accepts NULL */
/* The conn_handler: ud is the struct api. */
void api_handle(void *ud, struct conn *c, const struct http_request *req);
/* Whether this client may make this request: 0, or the HTTP status to refuse with.
 * Supervisor tokens and roles (province/city/inspector/public) land here later. */
int api_authorize(const struct conn *c, const struct http_request *req);

#endif
