/* The API's request and reply, independent of the HTTP library, so handlers are plain
 * functions. */
#ifndef GM_DAEMON_HTTP_H
#define GM_DAEMON_HTTP_H

#include "common/error.h"
#include "daemon/daemon.h"

#include <jansson.h>
#include <sys/types.h>

struct gm_request {
    const char *method;
    const char *path;
    const char *const *parts; /* path split at '/', without the leading "v1" */
    int nparts;
    json_t *body; /* parsed body of POST/PUT, or NULL */
    uid_t uid;
    gid_t gid;
    pid_t pid;
    const char *(*query)(void *conn, const char *key);
    void *conn;
};

struct gm_reply {
    int status;
    json_t *json; /* owned */
    char *raw;    /* owned, sent as text/plain when json is NULL */
    size_t rawlen;
    long long offset; /* X-Gpumux-Offset, when >= 0 */
};

/* Dispatches a request (api.c). */
void gm_api_handle(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep);
/* Fills rep with the error body. */
void gm_api_error(struct gm_reply *rep, const struct gm_error *err);

#endif
