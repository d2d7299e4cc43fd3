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
    /* The names of the query parameters, in order, as many as fit in max (NULL: not known);
     * returns how many there are. */
    size_t (*query_names)(void *conn, const char **names, size_t max);
    void *conn;
};

struct gm_reply {
    int status;
    json_t *json; /* owned */
    char *raw;    /* owned, sent as text/plain when json is NULL */
    size_t rawlen;
    long long offset;            /* X-Gpumux-Offset, when >= 0 */
    long long log_file, log_pos; /* X-Gpumux-Log-At: FILE:POS, when log_file > 0 */
    char allow[64];              /* the Allow header of a 405 answer, when not empty */
};

/* Who is asking (SO_PEERCRED). */
struct gm_peer {
    uid_t uid;
    gid_t gid;
    pid_t pid;
};

/* What the server does with a request: parses the body (len bytes, none when 0) as a JSON object
 * (a member given twice is refused), refuses a path with a control character after decoding
 * (a %00 would cut a name), splits url (decoded, without the query string) after "/v1" and
 * dispatches; the route decides who may call it (perm.h). HEAD is answered as GET (the
 * transport sends no body). Fills rep (status 200 unless an answer says otherwise).
 * query(conn, key) returns a query parameter or NULL; query_names(conn, names, max) lists them
 * (NULL: unknown parameters are not looked for). http.c calls it for every request; tests call
 * it to drive the API in-process. */
void gm_http_serve(struct gm_daemon *d, const char *method, const char *url, const char *body,
                   size_t len, const struct gm_peer *peer,
                   const char *(*query)(void *conn, const char *key),
                   size_t (*query_names)(void *conn, const char **names, size_t max), void *conn,
                   struct gm_reply *rep);

/* Dispatches a request (api.c). */
void gm_api_handle(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep);
/* On: requests are routed and their bodies and queries parsed as ever, but no handler runs; a
 * request that would reach one is answered 200 {"method", "route"}. For the API fuzzer, which
 * must explore the edge without touching a daemon (d may then be NULL). Off by default. */
void gm_api_set_parse_only(int on);
/* Fills rep with the error body. */
void gm_api_error(struct gm_reply *rep, const struct gm_error *err);

#endif
