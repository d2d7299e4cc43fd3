/* The HTTP server: libmicrohttpd on a unix socket, one thread per connection. It parses the
 * body, tells who is asking (SO_PEERCRED), and hands the request to the API, whose routes say
 * who may make it (perm.h). */
#include "daemon/http.h"
#include "common/log.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_BODY (1024 * 1024)

struct gm_http {
    struct gm_daemon *d;
    struct MHD_Daemon *mhd;
    int fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct conn_ctx {
    char *body;
    size_t len;
    int too_big;
};

static const char *query_get(void *conn, const char *key)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)conn, MHD_GET_ARGUMENT_KIND, key);
}

struct names {
    const char **v;
    size_t n, max;
};

static enum MHD_Result add_name(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    struct names *names = cls;
    (void)kind;
    (void)value;
    if (names->n < names->max)
        names->v[names->n] = key;
    names->n++;
    return MHD_YES;
}

static size_t query_list(void *conn, const char **v, size_t max)
{
    struct names names = {v, 0, max};
    MHD_get_connection_values((struct MHD_Connection *)conn, MHD_GET_ARGUMENT_KIND, add_name,
                              &names);
    return names.n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes the path and each query parameter in place, as libmicrohttpd's own decoder
 * does, except that a decoded NUL becomes DEL (0x7f): a C string would end at the NUL and a
 * name such as "a%00b" would be read as "a". gm_http_serve refuses control characters in the
 * path and the parsers refuse them in parameters. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *r = s; *r; r++) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
            char v = (char)(hi * 16 + lo);
            *w++ = v == '\0' ? '\x7f' : v;
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static enum MHD_Result send_reply(struct MHD_Connection *c, struct gm_reply *rep)
{
    struct MHD_Response *r;
    const char *type;
    if (rep->json != NULL) {
        char *text = json_dumps(rep->json, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        size_t n = text ? strlen(text) : 0;
        if (text != NULL) {
            char *withnl = realloc(text, n + 2);
            if (withnl != NULL) {
                text = withnl;
                text[n++] = '\n';
                text[n] = '\0';
            }
        }
        r = MHD_create_response_from_buffer(n, text ? text : (char *)"",
                                            text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        type = "application/json";
    } else {
        r = MHD_create_response_from_buffer(rep->rawlen, rep->raw ? rep->raw : (char *)"",
                                            rep->raw ? MHD_RESPMEM_MUST_FREE
                                                     : MHD_RESPMEM_PERSISTENT);
        rep->raw = NULL;
        type = "text/plain; charset=utf-8";
    }
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (rep->allow[0])
        MHD_add_response_header(r, "Allow", rep->allow);
    if (rep->offset >= 0) {
        char num[32];
        snprintf(num, sizeof(num), "%lld", rep->offset);
        MHD_add_response_header(r, "X-Gpumux-Offset", num);
    }
    if (rep->log_file > 0) {
        char at[48];
        snprintf(at, sizeof(at), "%lld:%lld", rep->log_file, rep->log_pos);
        MHD_add_response_header(r, "X-Gpumux-Log-At", at);
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rep->status, r);
    MHD_destroy_response(r);
    json_decref(rep->json);
    free(rep->raw);
    return ret;
}

static void vreply_fail(struct gm_reply *rep, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void vreply_fail(struct gm_reply *rep, int code, const char *fmt, va_list ap)
{
    struct gm_error err = {.code = code};
    vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
    gm_api_error(rep, &err);
}

static void reply_fail(struct gm_reply *rep, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_fail(struct gm_reply *rep, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply_fail(rep, code, fmt, ap);
    va_end(ap);
}

/* An answer before the request reaches the API (permission, body size). */
static enum MHD_Result fail(struct MHD_Connection *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result fail(struct MHD_Connection *c, int code, const char *fmt, ...)
{
    struct gm_reply rep = {.offset = -1};
    va_list ap;
    va_start(ap, fmt);
    vreply_fail(&rep, code, fmt, ap);
    va_end(ap);
    return send_reply(c, &rep);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct gm_http *h = cls;
    (void)version;
    struct conn_ctx *ctx = *con_cls;
    if (ctx == NULL) {
        ctx = calloc(1, sizeof(*ctx));
        if (ctx == NULL)
            return MHD_NO;
        *con_cls = ctx;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!ctx->too_big && ctx->len + *upload_size <= MAX_BODY) {
            char *nb = realloc(ctx->body, ctx->len + *upload_size + 1);
            if (nb == NULL)
                return MHD_NO;
            ctx->body = nb;
            memcpy(ctx->body + ctx->len, upload, *upload_size);
            ctx->len += *upload_size;
            ctx->body[ctx->len] = '\0';
        } else {
            ctx->too_big = 1;
        }
        *upload_size = 0;
        return MHD_YES;
    }

    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct ucred cred = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
    socklen_t clen = sizeof(cred);
    if (ci == NULL || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
        return fail(c, GM_EPERM, "cannot tell who is asking (SO_PEERCRED failed)");

    /* Who may do what is the route's to say (api.c, perm.h). */
    if (ctx->too_big)
        return fail(c, GM_EINVAL, "request body larger than %d bytes", MAX_BODY);

    struct gm_peer peer = {.uid = cred.uid, .gid = cred.gid, .pid = cred.pid};
    struct gm_reply rep;
    gm_http_serve(h->d, method, url, ctx->body, ctx->len, &peer, query_get, query_list, c, &rep);
    return send_reply(c, &rep);
}

void gm_http_serve(struct gm_daemon *d, const char *method, const char *url, const char *text,
                   size_t len, const struct gm_peer *peer,
                   const char *(*query)(void *conn, const char *key),
                   size_t (*query_names)(void *conn, const char **names, size_t max), void *conn,
                   struct gm_reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    rep->status = 200;
    rep->offset = -1;
    json_t *body = NULL;
    if (len > 0) {
        json_error_t jerr;
        body = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (body == NULL) {
            reply_fail(rep, GM_EINVAL, "malformed JSON in request body at line %d, column %d: %s",
                       jerr.line, jerr.column, jerr.text);
            return;
        }
        if (!json_is_object(body)) {
            json_decref(body);
            reply_fail(rep, GM_EINVAL, "request body must be a JSON object");
            return;
        }
    }

    /* A control character after decoding (a %00, which the transport turns into 0x7f, a
     * newline) is never part of a name: refused before anything reads the path. */
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            json_decref(body);
            reply_fail(rep, GM_EINVAL,
                       "request path contains a control character or NUL (%%00) after decoding, "
                       "at byte %zu",
                       (size_t)(p - (const unsigned char *)url));
            return;
        }
    }

    /* Split "/v1/a/b" into parts after "v1". */
    char *copy = strdup(url);
    if (copy == NULL) {
        json_decref(body);
        reply_fail(rep, GM_ENOMEM, "out of memory");
        return;
    }
    const char *parts[16];
    int nparts = 0, versioned = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, "/", &save); tok && nparts < 16;
         tok = strtok_r(NULL, "/", &save)) {
        if (!versioned) {
            versioned = strcmp(tok, "v1") == 0 ? 1 : -1;
            continue;
        }
        parts[nparts++] = tok;
    }
    if (versioned != 1) {
        reply_fail(rep, GM_ENOTFOUND, "no such API path: %s %s (paths start with /v1/)", method,
                   url);
    } else {
        struct gm_request req = {
            .method = method,
            .path = url,
            .parts = parts,
            .nparts = nparts,
            .body = body,
            .uid = peer->uid,
            .gid = peer->gid,
            .pid = peer->pid,
            .query = query,
            .query_names = query_names,
            .conn = conn,
        };
        gm_api_handle(d, &req, rep);
    }
    free(copy);
    json_decref(body);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct conn_ctx *ctx = *con_cls;
    if (ctx != NULL) {
        free(ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    gm_warn("http: %s", line);
}

int gm_http_start(struct gm_daemon *d, struct gm_http **out, struct gm_error *err)
{
    struct gm_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return gm_err(err, GM_ENOMEM, "out of memory");
    h->d = d;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if ((size_t)snprintf(h->path, sizeof(h->path), "%s/gpumux.sock", d->cfg.run_dir) >=
        sizeof(h->path)) {
        free(h);
        return gm_err(err, GM_EINVAL, "run_dir %s: too long for a socket path", d->cfg.run_dir);
    }
    memcpy(sa.sun_path, h->path, sizeof(sa.sun_path));
    h->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd < 0) {
        free(h);
        return gm_err_errno(err, GM_EIO, errno, "socket");
    }
    /* A socket file left by a daemon that was killed: remove it only when nobody answers. */
    if (connect(h->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(h->fd);
        free(h);
        return gm_err(err, GM_ECONFLICT, "another gpumuxd answers at %s", sa.sun_path);
    }
    close(h->fd);
    unlink(h->path);
    h->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    mode_t old = umask(0);
    int rc = bind(h->fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || chmod(h->path, 0666) < 0 || listen(h->fd, 128) < 0) {
        int e = errno;
        close(h->fd);
        free(h);
        return gm_err_errno(err, GM_EIO, e, "listening on %s", sa.sun_path);
    }
    h->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                  MHD_USE_ERROR_LOG,
                              0, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                              MHD_OPTION_LISTEN_SOCKET, h->fd, MHD_OPTION_NOTIFY_COMPLETED,
                              completed, h, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                              /* the path's and parameters' decoding: a %00 must not cut them */
                              MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    if (h->mhd == NULL) {
        close(h->fd);
        unlink(h->path);
        free(h);
        return gm_err(err, GM_EIO, "cannot start the HTTP server on %s", sa.sun_path);
    }
    gm_info("listening on %s", h->path);
    *out = h;
    return 0;
}

void gm_http_stop(struct gm_http *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->mhd);
    close(h->fd);
    unlink(h->path);
    free(h);
}
