/* The HTTP server: libmicrohttpd on a unix socket, one thread per connection. Connections are
 * accepted here, counted per uid (SO_PEERCRED) and refused over the limits before libmicrohttpd
 * sees them, so no user can take the server from the others. It parses the body, tells who is
 * asking (SO_PEERCRED), and hands the request to the API, whose routes say who may make it
 * (perm.h). */
#include "daemon/http.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_BODY (1024 * 1024)
/* Connections root may hold beyond api_max_connections: root always gets through. */
#define ROOT_RESERVE 64
/* One warning per uid (and one for libmicrohttpd's own messages) per interval. */
#define WARN_INTERVAL_MS 10000

/* An open connection: counted from its accept to libmicrohttpd's notice that it closed. */
struct conn_rec {
    struct conn_rec *next;
    int fd;
    uid_t uid;
    int attached; /* libmicrohttpd reported it started; its socket context points here */
    int64_t accepted_ms;
};

/* What one uid holds and what was refused to it since its last warning. */
struct uid_rec {
    uid_t uid;
    int open;
    unsigned long refused;
    int64_t last_warn_ms;
    char reason[160]; /* of the latest refusal */
};

struct gm_http {
    struct gm_daemon *d;
    struct MHD_Daemon *mhd;
    int fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int wake[2]; /* written to stop the acceptor */
    pthread_t acceptor;
    int acceptor_started;
    pthread_mutex_t mu; /* the records below; never held while a request is served */
    struct conn_rec *conns;
    struct uid_rec *uids;
    size_t nuids, capuids;
    int open_users, open_root; /* connections of uids other than root, and of root */
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

/* libmicrohttpd's messages, at most 20 per interval: some come once per connection. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int64_t window_ms;
    static unsigned shown, dropped;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    /* Handed over by the acceptor, a connection's kind is unknown to libmicrohttpd: it tries
     * TCP's options on every unix socket and says so. */
    if (strncmp(line, "Setting TCP_", 12) == 0 || strncmp(line, "Failed to push the data", 23) == 0)
        return;
    int64_t now = gm_mono_ms();
    pthread_mutex_lock(&mu);
    unsigned before = 0;
    if (now - window_ms >= WARN_INTERVAL_MS) {
        before = dropped;
        window_ms = now;
        shown = dropped = 0;
    }
    int show = shown < 20;
    if (show)
        shown++;
    else
        dropped++;
    pthread_mutex_unlock(&mu);
    if (before > 0)
        gm_warn("http: %u more messages of the HTTP server were not shown", before);
    if (show)
        gm_warn("http: %s", line);
}

static struct uid_rec *uid_get(struct gm_http *h, uid_t uid)
{
    for (size_t i = 0; i < h->nuids; i++)
        if (h->uids[i].uid == uid)
            return &h->uids[i];
    if (h->nuids == h->capuids) {
        size_t cap = h->capuids ? h->capuids * 2 : 16;
        struct uid_rec *nu = realloc(h->uids, cap * sizeof(*nu));
        if (nu == NULL)
            return NULL;
        h->uids = nu;
        h->capuids = cap;
    }
    struct uid_rec *u = &h->uids[h->nuids++];
    memset(u, 0, sizeof(*u));
    u->uid = uid;
    u->last_warn_ms = INT64_MIN / 2;
    return u;
}

/* Whether a new connection of uid is served: a reason to refuse it, or NULL. Root is limited
 * only by its own reserve, so that it always gets through. */
static const char *admit(const struct gm_http *h, uid_t uid, const struct uid_rec *u, char *why,
                         size_t len)
{
    const struct gm_config *c = &h->d->cfg;
    if (uid == 0) {
        if (h->open_root >= ROOT_RESERVE + c->api_conns_max)
            snprintf(why, len, "root holds %d connections, the most it may", h->open_root);
        else
            return NULL;
    } else if (u->open >= c->api_conns_per_user) {
        snprintf(why, len,
                 "uid %u holds %d open connections, the limit per user "
                 "(api_max_connections_per_user)",
                 (unsigned)uid, u->open);
    } else if (h->open_users >= c->api_conns_max) {
        snprintf(why, len, "%d connections are open, the limit (api_max_connections)",
                 h->open_users);
    } else {
        return NULL;
    }
    return why;
}

/* Tells a refused client why, without waiting for it, and closes. */
static void refuse(int fd, const char *why)
{
    char body[512], msg[768];
    int bn = snprintf(
        body, sizeof(body),
        "{\"error\": {\"code\": \"busy\", \"message\": \"too many connections: %s\"}}\n", why);
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     bn, body);
    /* Unread bytes at close make the peer's read fail (ECONNRESET) before it sees the answer. */
    char junk[4096];
    for (int i = 0; i < 16 && recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0; i++)
        ;
    if (n > 0 && (size_t)n < sizeof(msg))
        (void)!send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    close(fd);
}

/* The warnings owed: one line per uid and interval, with the number refused. */
static void warn_refusals(struct gm_http *h, int64_t now)
{
    for (size_t i = 0; i < h->nuids;) {
        struct uid_rec *u = &h->uids[i];
        if (u->refused > 0 && now - u->last_warn_ms >= WARN_INTERVAL_MS) {
            gm_warn("http: refused %lu connection%s of uid %u: %s", u->refused,
                    u->refused == 1 ? "" : "s", (unsigned)u->uid, u->reason);
            u->refused = 0;
            u->last_warn_ms = now;
        }
        if (u->open == 0 && u->refused == 0 && now - u->last_warn_ms >= WARN_INTERVAL_MS)
            h->uids[i] = h->uids[--h->nuids];
        else
            i++;
    }
}

static void conn_forget(struct gm_http *h, struct conn_rec *r)
{
    for (struct conn_rec **pp = &h->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    struct uid_rec *u = uid_get(h, r->uid);
    if (u != NULL && u->open > 0)
        u->open--;
    if (r->uid == 0)
        h->open_root--;
    else
        h->open_users--;
    free(r);
}

static void accept_one(struct gm_http *h, int fd, const struct sockaddr_un *sa, socklen_t salen)
{
    struct ucred cred = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
    socklen_t clen = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
        close(fd);
        return;
    }
    char why[160];
    pthread_mutex_lock(&h->mu);
    struct uid_rec *u = uid_get(h, cred.uid);
    struct conn_rec *r = u != NULL ? calloc(1, sizeof(*r)) : NULL;
    const char *no = r == NULL ? "out of memory" : admit(h, cred.uid, u, why, sizeof(why));
    if (no != NULL) {
        if (u != NULL) {
            u->refused++;
            snprintf(u->reason, sizeof(u->reason), "%s", no);
            warn_refusals(h, gm_mono_ms()); /* at once when none was due this interval */
        }
        pthread_mutex_unlock(&h->mu);
        free(r);
        refuse(fd, no);
        return;
    }
    r->fd = fd;
    r->uid = cred.uid;
    r->accepted_ms = gm_mono_ms();
    r->next = h->conns;
    h->conns = r;
    u->open++;
    if (cred.uid == 0)
        h->open_root++;
    else
        h->open_users++;
    pthread_mutex_unlock(&h->mu);
    if (MHD_add_connection(h->mhd, fd, (const struct sockaddr *)sa, salen) != MHD_YES) {
        /* libmicrohttpd closed the socket; it reports no end of a connection it never started. */
        pthread_mutex_lock(&h->mu);
        for (struct conn_rec *c = h->conns; c != NULL; c = c->next) {
            if (c == r && !r->attached) {
                conn_forget(h, r);
                break;
            }
        }
        pthread_mutex_unlock(&h->mu);
    }
}

/* The acceptor: drains the listen queue at once, whoever fills it, so a refused flood never
 * keeps another user's connection waiting in the kernel's queue. */
static void *acceptor(void *arg)
{
    struct gm_http *h = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = h->fd, .events = POLLIN},
                              {.fd = h->wake[0], .events = POLLIN}};
        int n = poll(p, 2, 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        int64_t now = gm_mono_ms();
        if (p[0].revents & POLLIN) {
            for (int k = 0; k < 256; k++) {
                struct sockaddr_un sa;
                socklen_t salen = sizeof(sa);
                int fd = accept4(h->fd, (struct sockaddr *)&sa, &salen, SOCK_CLOEXEC);
                if (fd < 0) {
                    if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
                        static int64_t warned = INT64_MIN / 2;
                        if (now - warned >= WARN_INTERVAL_MS) {
                            gm_warn("http: cannot accept connections: %s", strerror(errno));
                            warned = now;
                        }
                        poll(NULL, 0, 100); /* the queue stays readable: do not spin */
                    }
                    break;
                }
                accept_one(h, fd, &sa, salen);
            }
        }
        pthread_mutex_lock(&h->mu);
        warn_refusals(h, now);
        /* libmicrohttpd starts what it was handed within milliseconds, or drops it without a
         * word when it cannot (out of memory): such a record would hold its user's slot. */
        for (struct conn_rec *r = h->conns, *next; r != NULL; r = next) {
            next = r->next;
            if (!r->attached && now - r->accepted_ms > WARN_INTERVAL_MS)
                conn_forget(h, r);
        }
        pthread_mutex_unlock(&h->mu);
    }
    return NULL;
}

static void notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    struct gm_http *h = cls;
    pthread_mutex_lock(&h->mu);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        for (struct conn_rec *r = h->conns; ci != NULL && r != NULL; r = r->next) {
            if (r->fd == ci->connect_fd && !r->attached) {
                r->attached = 1;
                *socket_context = r;
                break;
            }
        }
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
        conn_forget(h, *socket_context);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&h->mu);
}

/* Enough descriptors for every connection the limits allow, and the daemon's own files. */
static void raise_nofile(const struct gm_config *c)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)(c->api_conns_max + ROOT_RESERVE + 256);
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        gm_warn("http: cannot raise the open file limit to %llu: %s", (unsigned long long)want,
                strerror(errno));
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
    h->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* The socket is made 0666 by bind itself: a chmod by path would follow whatever is at the
     * path by then. */
    mode_t old = umask(0111);
    int rc = h->fd < 0 ? -1 : bind(h->fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || listen(h->fd, SOMAXCONN) < 0) {
        int e = errno;
        if (h->fd >= 0)
            close(h->fd);
        free(h);
        return gm_err_errno(err, GM_EIO, e, "listening on %s", sa.sun_path);
    }
    raise_nofile(&d->cfg);
    pthread_mutex_init(&h->mu, NULL);
    h->wake[0] = h->wake[1] = -1;
    /* A thread per connection, because handlers may wait for seconds (a mode change waiting for
     * MPS, a stop waiting for a workload): a pool would let a few of them starve everyone. The
     * threads are bounded by the connection limits above. */
    unsigned limit = (unsigned)(d->cfg.api_conns_max + ROOT_RESERVE + 16);
    h->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC | MHD_USE_ERROR_LOG,
        0, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, completed, h, MHD_OPTION_NOTIFY_CONNECTION, notify_conn, h,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)d->cfg.api_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        limit,
        /* the path's and parameters' decoding: a %00 must not cut them */
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    if (h->mhd == NULL || pipe2(h->wake, O_CLOEXEC) < 0 ||
        pthread_create(&h->acceptor, NULL, acceptor, h) != 0) {
        gm_http_stop(h);
        return gm_err(err, GM_EIO, "cannot start the HTTP server on %s", sa.sun_path);
    }
    h->acceptor_started = 1;
    gm_info("listening on %s", h->path);
    *out = h;
    return 0;
}

void gm_http_stop(struct gm_http *h)
{
    if (h == NULL)
        return;
    if (h->acceptor_started) {
        (void)!write(h->wake[1], "x", 1);
        pthread_join(h->acceptor, NULL);
    }
    if (h->mhd != NULL)
        MHD_stop_daemon(h->mhd); /* closes the connections: their records go with them */
    for (int i = 0; i < 2; i++)
        if (h->wake[i] >= 0)
            close(h->wake[i]);
    close(h->fd);
    unlink(h->path);
    while (h->conns != NULL)
        conn_forget(h, h->conns);
    free(h->uids);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
