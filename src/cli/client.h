/* HTTP/JSON client for gpumuxd's unix socket (docs/api.md).
 *
 * One request per call; there is no connection reuse because the CLI makes a handful of
 * requests per run and a fresh connection keeps every call independent of the last. */
#ifndef GM_CLI_CLIENT_H
#define GM_CLI_CLIENT_H

#include "common/error.h"

#include <jansson.h>
#include <stddef.h>

/* Keep the body as bytes and do not parse it as JSON (the logs endpoint answers text/plain). */
#define GM_CLI_RAW 1u

struct gm_cli_response {
    long status;      /* HTTP status, 0 when no answer came */
    json_t *json;     /* parsed body of a 2xx answer; NULL with GM_CLI_RAW */
    char *body;       /* the raw body, always NUL-terminated; never NULL after a request */
    size_t body_len;  /* bytes in body, not counting the terminator */
    long long offset; /* X-Gpumux-Offset, -1 when the answer had none */
    long long log_file, log_pos; /* X-Gpumux-Log-At: FILE:POS; log_file 0 when none */
};

/* Send `method path` to the daemon listening on `socket`, with `body` (borrowed, may be NULL)
 * as the JSON request body. On success returns 0 and fills *resp, which the caller releases
 * with gm_cli_response_free(). On failure returns a negative GM_E* code and sets err:
 *   GM_EUNREACHABLE  no connection: "cannot reach gpumuxd at PATH: <reason>"
 *   GM_ETIMEDOUT     no answer within the timeout (gm_cli_set_timeout): the daemon may be
 *                    stopped or overloaded, and a change asked for may still be carried out
 *   the code named by the daemon's error body, with its message, for a 4xx/5xx answer
 *   GM_EIO           the answer is not what docs/api.md promises (malformed JSON, no error body)
 * *resp is filled as far as the exchange got and must be released in every case. */
int gm_cli_request(const char *socket, const char *method, const char *path, const json_t *body,
                   unsigned flags, struct gm_cli_response *resp, struct gm_error *err);
void gm_cli_response_free(struct gm_cli_response *resp);

/* How a request reaches the daemon: the default speaks HTTP over the unix socket with libcurl;
 * a test replaces it to hand requests to the daemon's handler in-process. It sends `method
 * path` with payload (len bytes of JSON, or NULL) and, when an answer came (any status), fills
 * resp->status, resp->body (malloc'd, NUL-terminated), resp->body_len and resp->offset and
 * returns 0; else it returns a negative GM_E* code and sets err (GM_EUNREACHABLE: no answer).
 * gm_cli_request interprets the answer the same way whichever transport brought it. */
typedef int (*gm_cli_transport_fn)(void *arg, const char *socket, const char *method,
                                   const char *path, const char *payload, size_t len,
                                   struct gm_cli_response *resp, struct gm_error *err);
/* How long one request may take, connecting included, in milliseconds; 0: no limit. The
 * default is GM_CLI_DEFAULT_TIMEOUT_MS. */
#define GM_CLI_DEFAULT_TIMEOUT_MS 30000L
void gm_cli_set_timeout(long ms);
long gm_cli_timeout(void);

/* Replaces the transport for every later request; NULL restores libcurl. */
void gm_cli_set_transport(gm_cli_transport_fn fn, void *arg);

/* Percent-encode one path segment or query value (RFC 3986 unreserved characters pass).
 * Returns a malloc'd string, or NULL when out of memory. */
char *gm_cli_urlencode(const char *s);

#endif
