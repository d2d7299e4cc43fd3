/* The API's edge as a request reaches it: "METHOD PATH[?QUERY]\n" and then the body, through
 * gm_http_serve (the body's JSON, the path split after /v1, the route table, every route's body
 * and query field specs) in parse-only mode, so that no handler runs and nothing outside this
 * process changes. The path's segments and the query's values also go through the parsers the
 * handlers apply to them (names, sizes, percentages, integers).
 *
 * Contract checked on every answer: a status of 200 (parsed, naming its route) or 4xx/5xx with
 * an error object that has a code and a non-empty message; a 405 says which methods exist; the
 * answer serialises; the parsers' results are within their documented ranges. */
#include "fuzz.h"

#include "common/parse.h"
#include "daemon/daemon.h"
#include "daemon/http.h"

#include <ctype.h>
#include <string.h>
#include <unistd.h>

#define MAX_PARAMS 16

struct query {
    const char *key[MAX_PARAMS], *val[MAX_PARAMS];
    size_t n;
};

static const char *query_get(void *conn, const char *key)
{
    const struct query *q = conn;
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->key[i], key) == 0)
            return q->val[i];
    return NULL;
}

static size_t query_names(void *conn, const char **names, size_t max)
{
    const struct query *q = conn;
    for (size_t i = 0; i < q->n && i < max; i++)
        names[i] = q->key[i];
    return q->n;
}

/* "a=1&b&c=" in place: b's value is "" as a query string gives it. */
static void query_split(char *qs, struct query *q)
{
    q->n = 0;
    for (char *save = NULL, *p = strtok_r(qs, "&", &save); p != NULL && q->n < MAX_PARAMS;
         p = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(p, '=');
        if (eq != NULL)
            *eq++ = '\0';
        q->key[q->n] = p;
        q->val[q->n++] = eq != NULL ? eq : "";
    }
}

/* What the handlers do with a path segment or a parameter: their results stay in range. */
static void parse_value(const char *s)
{
    struct gm_error err;
    if (gm_check_name(s, "name", &err) == 0) {
        size_t n = strlen(s);
        FUZZ_CHECK(n >= 1 && n <= 63 && isalnum((unsigned char)s[0]), "name '%s' accepted", s);
        FUZZ_CHECK(strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                       n,
                   "name '%s' accepted", s);
    } else {
        FUZZ_CHECK(err.msg[0] != '\0', "a refused name without a reason");
    }
    uint64_t size;
    if (gm_parse_size(s, &size, "size", &err) == 0) {
        FUZZ_CHECK(size > 0 && size <= 1024 * GM_GIB * 1024, "size '%s' -> %llu", s,
                   (unsigned long long)size);
        char text[64];
        gm_format_size(size, text, sizeof(text));
        FUZZ_CHECK(text[0] != '\0', "size %llu formats as nothing", (unsigned long long)size);
    }
    int pct;
    if (gm_parse_percent(s, &pct, "percentage", &err) == 0)
        FUZZ_CHECK(pct >= 1 && pct <= 100, "percentage '%s' -> %d", s, pct);
    long long v;
    if (gm_parse_int(s, 3, 1000, &v, "integer", &err) == 0)
        FUZZ_CHECK(v >= 3 && v <= 1000, "integer '%s' -> %lld", s, v);
}

static void check_reply(const char *method, const char *url, const struct gm_reply *rep)
{
    FUZZ_CHECK(rep->json != NULL, "%s %s: no JSON answer", method, url);
    char *text = json_dumps(rep->json, 0);
    FUZZ_CHECK(text != NULL, "%s %s: the answer does not serialise", method, url);
    free(text);
    if (rep->status == 200) {
        FUZZ_CHECK(json_is_string(json_object_get(rep->json, "route")), "%s %s: 200 without route",
                   method, url);
        return;
    }
    FUZZ_CHECK(rep->status >= 400 && rep->status <= 599, "%s %s: status %d", method, url,
               rep->status);
    json_t *e = json_object_get(rep->json, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    FUZZ_CHECK(code != NULL && code[0] != '\0', "%s %s: status %d without an error code", method,
               url, rep->status);
    FUZZ_CHECK(msg != NULL && msg[0] != '\0', "%s %s: status %d (%s) without a message", method,
               url, rep->status, code);
    if (rep->status == 405)
        FUZZ_CHECK(rep->allow[0] != '\0', "%s %s: 405 without Allow", method, url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    /* A daemon of default settings and nothing else: the routes' permissions read its groups,
     * and a root caller needs no record; in parse-only mode no handler runs. */
    static struct gm_daemon d;
    if (!ready) {
        gm_api_set_parse_only(1);
        gm_config_defaults(&d.cfg);
        ready = 1;
    }
    const uint8_t *nl = memchr(data, '\n', size);
    size_t line = nl != NULL ? (size_t)(nl - data) : size;
    char *head = malloc(line + 1);
    if (head == NULL)
        return 0;
    memcpy(head, data, line);
    head[line] = '\0';
    const char *body = nl != NULL ? (const char *)nl + 1 : "";
    size_t blen = nl != NULL ? size - line - 1 : 0;

    char *url = strchr(head, ' ');
    const char *method = head;
    if (url != NULL)
        *url++ = '\0';
    else
        url = head + strlen(head);
    char *qs = strchr(url, '?');
    if (qs != NULL)
        *qs++ = '\0';
    struct query q = {.n = 0};
    char *qcopy = qs != NULL ? strdup(qs) : NULL;
    if (qs != NULL && qcopy == NULL) {
        free(head);
        return 0;
    }
    if (qcopy != NULL)
        query_split(qcopy, &q);

    struct gm_peer peer = {.uid = getuid(), .gid = getgid(), .pid = getpid()};
    struct gm_reply rep;
    gm_http_serve(&d, method, url, body, blen, &peer, query_get, query_names, &q, &rep);
    check_reply(method, url, &rep);
    json_decref(rep.json);
    free(rep.raw);

    char *segs = strdup(url);
    for (char *save = NULL, *p = segs != NULL ? strtok_r(segs, "/", &save) : NULL; p != NULL;
         p = strtok_r(NULL, "/", &save))
        parse_value(p);
    for (size_t i = 0; i < q.n; i++)
        parse_value(q.val[i]);
    free(segs);
    free(qcopy);
    free(head);
    return 0;
}
