#include "cli/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define OFFSET_HEADER "x-gpumux-offset:"
#define LOG_AT_HEADER "x-gpumux-log-at:"

struct buffer {
    char *data;
    size_t len, cap;
    int oom;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct buffer *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL) {
            b->oom = 1;
            return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* A header's value after name, when the header is that one: its text in tmp. */
static int header_value(const char *ptr, size_t n, const char *name, char *tmp, size_t len)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(ptr, name, k) != 0)
        return 0;
    size_t m = n - k < len - 1 ? n - k : len - 1;
    memcpy(tmp, ptr + k, m);
    tmp[m] = '\0';
    return 1;
}

/* A whole number at *s (after blanks), ending at one of stop or at blanks to the end. */
static int header_number(const char **s, const char *stop, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(*s, &end, 10);
    if (errno != 0 || end == *s || v < 0)
        return -1;
    *s = end;
    if (**s != '\0' && strchr(stop, **s) != NULL)
        (*s)++;
    else {
        while (**s == ' ' || **s == '\t' || **s == '\r' || **s == '\n')
            (*s)++;
        if (**s != '\0')
            return -1;
    }
    *out = v;
    return 0;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct gm_cli_response *resp = userdata;
    size_t n = size * nmemb;
    char tmp[64];
    const char *s = tmp;
    long long v, w;
    if (header_value(ptr, n, OFFSET_HEADER, tmp, sizeof(tmp))) {
        if (header_number(&s, "", &v) == 0)
            resp->offset = v;
    } else if (header_value(ptr, n, LOG_AT_HEADER, tmp, sizeof(tmp))) {
        if (header_number(&s, ":", &v) == 0 && s[-1] == ':' && header_number(&s, "", &w) == 0 &&
            v > 0) {
            resp->log_file = v;
            resp->log_pos = w;
        }
    }
    return n;
}

/* Turn a failed transfer into the message users and scripts rely on. Connection failures
 * carry the socket's errno ("No such file or directory", "Connection refused"), which says
 * more than curl's generic "Couldn't connect to server". */
static long timeout_ms = GM_CLI_DEFAULT_TIMEOUT_MS;

void gm_cli_set_timeout(long ms)
{
    timeout_ms = ms < 0 ? 0 : ms;
}

long gm_cli_timeout(void)
{
    return timeout_ms;
}

#define START_HINT                                                                                 \
    "start it ('systemctl start gpumuxd', or gpumuxd itself), or point GPUMUX_SOCKET or "          \
    "--socket at the socket of a daemon that runs"

/* Why a connection to the socket failed, in words that say what to do: no socket, a socket
 * nobody listens on, a directory or a file in its place, a socket this user may not use. */
static const char *unreachable_reason(const char *socket, int os_errno, const char *reason,
                                      char *buf, size_t len)
{
    struct stat st;
    if (lstat(socket, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        if (S_ISDIR(st.st_mode))
            snprintf(buf, len,
                     "it is a directory, not a socket; point GPUMUX_SOCKET or --socket at the "
                     "socket itself (gpumuxd makes RUN_DIR/gpumux.sock, here %s/gpumux.sock "
                     "if %s is its run directory)",
                     socket, socket);
        else
            snprintf(buf, len,
                     "it is not a socket (a file of another kind is in its place); point "
                     "GPUMUX_SOCKET or --socket at gpumuxd's socket");
        return buf;
    }
    switch (os_errno) {
    case ENOENT:
        snprintf(buf, len,
                 "no socket there: gpumuxd is not running, or runs elsewhere; " START_HINT);
        return buf;
    case ECONNREFUSED:
        snprintf(buf, len,
                 "connection refused: the socket is there but no daemon listens on it (gpumuxd "
                 "stopped or was killed); " START_HINT);
        return buf;
    case EACCES:
    case EPERM:
        snprintf(buf, len,
                 "permission denied: the socket admits root and the daemon's api_group (default "
                 "gpumux); ask for your user to be added to it, or run as root");
        return buf;
    default:
        return reason;
    }
}

static int transport_error(CURL *h, CURLcode rc, const char *socket, const char *method,
                           const char *errbuf, struct gm_error *err)
{
    char buf[512];
    long os_errno = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    const char *reason = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (os_errno != 0)
        reason = strerror((int)os_errno);
    /* A stopped or overloaded daemon accepts connections (the kernel queues them) and never
     * answers; a request it already read may still be carried out when it resumes. */
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        char secs[32];
        snprintf(secs, sizeof(secs), "%.3g", (double)timeout_ms / 1000.0);
        int change = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
        return gm_err(err, GM_ETIMEDOUT,
                      "the daemon at %s did not answer within %s s (stopped or overloaded?)%s",
                      socket, secs,
                      change ? "; a change you asked for may still be carried out: check with "
                               "'gpumux ps'"
                             : "");
    }
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        return gm_err(err, GM_EUNREACHABLE, "cannot reach gpumuxd at %s: %s", socket,
                      unreachable_reason(socket, (int)os_errno, reason, buf, sizeof(buf)));
    return gm_err(err, GM_EUNREACHABLE, "lost the connection to gpumuxd at %s: %s", socket, reason);
}

/* A 4xx/5xx answer: take the code and message from {"error": {"code", "message"}}. */
static int answer_error(const struct gm_cli_response *resp, const char *method, const char *path,
                        struct gm_error *err)
{
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_t *e = json_object_get(root, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    int rc;
    if (msg != NULL && msg[0] != '\0')
        rc = gm_err(err, gm_errcode_from_name(code), "%s", msg);
    else
        rc = gm_err(err, GM_EIO, "gpumuxd answered %s %s with HTTP %ld and no error message",
                    method, path, resp->status);
    json_decref(root);
    return rc;
}

/* The default transport: HTTP over the unix socket with libcurl. */
static int curl_transport(void *arg, const char *socket, const char *method, const char *path,
                          const char *payload, size_t len, struct gm_cli_response *resp,
                          struct gm_error *err)
{
    (void)arg;
    struct buffer buf = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    char *url = NULL;
    struct curl_slist *headers = NULL;
    int rc = 0;

    CURL *h = curl_easy_init();
    if (h == NULL)
        return gm_err(err, GM_ENOMEM, "cannot start an HTTP request: out of memory");
    if (asprintf(&url, "http://localhost%s", path) < 0) {
        url = NULL;
        rc = gm_err(err, GM_ENOMEM, "out of memory");
        goto out;
    }
    headers = curl_slist_append(headers, "Accept: application/json");
    if (payload != NULL)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    /* The daemon answers at once; waiting a second for "100 Continue" only adds latency. */
    headers = curl_slist_append(headers, "Expect:");

    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, socket);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload ? payload : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "gpumux/" GM_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    /* The CLI handles SIGINT itself (smi -l, logs -f); curl must not touch signals. */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* The whole request within --timeout (a delete waits for the workload's stop, up to the
     * daemon's stop_timeout); connecting within 5 s of it. 0: no limit. */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms > 0 && timeout_ms < 5000 ? timeout_ms : 5000L);

    CURLcode cc = curl_easy_perform(h);
    if (buf.oom) {
        rc = gm_err(err, GM_ENOMEM, "out of memory reading the answer of gpumuxd");
        goto out;
    }
    if (cc != CURLE_OK) {
        rc = transport_error(h, cc, socket, method, errbuf, err);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    if (buf.data == NULL) {
        buf.data = calloc(1, 1);
        if (buf.data == NULL) {
            rc = gm_err(err, GM_ENOMEM, "out of memory");
            goto out;
        }
    }
    resp->body = buf.data;
    resp->body_len = buf.len;
    buf.data = NULL;
out:
    free(buf.data);
    free(url);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return rc;
}

static gm_cli_transport_fn transport = curl_transport;
static void *transport_arg;

void gm_cli_set_transport(gm_cli_transport_fn fn, void *arg)
{
    transport = fn != NULL ? fn : curl_transport;
    transport_arg = fn != NULL ? arg : NULL;
}

int gm_cli_request(const char *socket, const char *method, const char *path, const json_t *body,
                   unsigned flags, struct gm_cli_response *resp, struct gm_error *err)
{
    memset(resp, 0, sizeof(*resp));
    resp->offset = -1;
    char *payload = NULL;
    if (body != NULL) {
        payload = json_dumps(body, JSON_COMPACT);
        if (payload == NULL)
            return gm_err(err, GM_EINTERNAL, "cannot encode the request body");
    }
    int rc = transport(transport_arg, socket, method, path, payload, payload ? strlen(payload) : 0,
                       resp, err);
    free(payload);
    if (rc < 0)
        return rc;
    if (resp->body == NULL) {
        resp->body = calloc(1, 1);
        resp->body_len = 0;
        if (resp->body == NULL)
            return gm_err(err, GM_ENOMEM, "out of memory");
    }
    if (resp->status >= 400 || resp->status < 200)
        return answer_error(resp, method, path, err);
    if (!(flags & GM_CLI_RAW)) {
        json_error_t je;
        resp->json = json_loadb(resp->body, resp->body_len, 0, &je);
        if (resp->json == NULL)
            return gm_err(err, GM_EIO, "malformed answer from gpumuxd to %s %s: %s", method, path,
                          je.text);
    }
    return 0;
}

void gm_cli_response_free(struct gm_cli_response *resp)
{
    if (resp == NULL)
        return;
    json_decref(resp->json);
    free(resp->body);
    resp->json = NULL;
    resp->body = NULL;
    resp->body_len = 0;
}

char *gm_cli_urlencode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *p = out;
    if (out == NULL)
        return NULL;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '.' || *c == '_' || *c == '~') {
            *p++ = (char)*c;
        } else {
            *p++ = '%';
            *p++ = hex[*c >> 4];
            *p++ = hex[*c & 15];
        }
    }
    *p = '\0';
    return out;
}
