/* The API's route table (api.c): every endpoint once, with its method, path pattern, handler and
 * the field specs of its body and query. gm_api_handle dispatches from it, and docs/api.md's
 * endpoint list is generated from it (gm_api_describe). */
#ifndef GM_DAEMON_ROUTE_H
#define GM_DAEMON_ROUTE_H

#include "daemon/fields.h"
#include "daemon/http.h"
#include "daemon/perm.h"

#include <stdio.h>

#define GM_ROUTE_MAX_ARGS 2

/* One dispatched request, as a handler sees it. */
struct gm_call {
    const struct gm_request *req;
    const char *arg[GM_ROUTE_MAX_ARGS]; /* the path's {parameters}, in order */
    void *body;                         /* the route's typed body, parsed from its spec */
    const void *query;                  /* the route's typed query parameters */
    const struct gm_caller *who;        /* who asks (already allowed the route's permission) */
};

struct gm_route {
    const char *method;
    const char *pattern; /* "/v1/workloads/{name}/stop": {x} matches one segment */
    void (*handler)(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep);
    const struct gm_fields *body; /* NULL: the route takes no body (any field is refused) */
    size_t body_size;             /* the typed struct body fills */
    const struct gm_fields *query;
    size_t query_size;
    const char *answer; /* what a success answers, for docs/api.md */
    /* Who may call it, checked by the dispatcher before the body is read (perm.h); OWNER and
     * SECRET routes name a workload in their first {parameter}. */
    enum gm_perm perm;
    const char *action; /* for the refusal: "stop" (workload a), "change the mode of" (GPU 0) */
};

/* The table, for tests and the docs generator. */
const struct gm_route *gm_api_routes(size_t *n);
/* Writes docs/api.md's endpoint section (Markdown) from the table. */
void gm_api_describe(FILE *out);

#endif
