/* API handlers: one function per endpoint of docs/api.md. */
#include "common/log.h"
#include "daemon/http.h"
#include "common/parse.h"
#include "daemon/json.h"
#include "daemon/mps.h"
#include "daemon/sched.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_CHUNK (1024 * 1024)

void gm_api_error(struct gm_reply *rep, const struct gm_error *err)
{
    int code = err->code ? err->code : GM_EINTERNAL;
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(gm_errcode_name(code)));
    json_object_set_new(e, "message", json_string(err->msg));
    json_decref(rep->json);
    rep->json = json_object();
    json_object_set_new(rep->json, "error", e);
    rep->status = gm_errcode_http(code);
}

static void reply_err(struct gm_reply *rep, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_err(struct gm_reply *rep, int code, const char *fmt, ...)
{
    struct gm_error err = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
    va_end(ap);
    gm_api_error(rep, &err);
}

/* Refuses fields not in the NULL-terminated list. */
static int only_fields(const json_t *body, const char *const *allowed, struct gm_reply *rep)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(*a, k) == 0;
        if (!ok) {
            char list[256] = "";
            for (const char *const *a = allowed; *a; a++) {
                size_t used = strlen(list);
                snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", *a);
            }
            reply_err(rep, GM_EINVAL, "unknown field '%s' (known fields: %s)", k, list);
            return -1;
        }
    }
    return 0;
}

/* A string field, also accepting a number (compute: 30, memory: 1073741824). */
static int opt_text(const json_t *body, const char *key, char *buf, size_t len, const char **out,
                    struct gm_reply *rep)
{
    json_t *v = body ? json_object_get(body, key) : NULL;
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else {
        reply_err(rep, GM_EINVAL, "field '%s' must be a string or a number", key);
        return -1;
    }
    *out = buf;
    return 0;
}

/* The lines of an outcome as the answer's "messages" text, one per line. */
static json_t *messages_json(const struct gm_strv *lines)
{
    char *text = gm_strv_join(lines, "\n");
    json_t *j = json_sprintf("%s%s", text ? text : "", lines->n ? "\n" : "");
    free(text);
    return j;
}

static int load_lists(struct gm_daemon *d, struct gm_gpu_rec **gpus, size_t *ngpus,
                      struct gm_workload_rec **ws, size_t *nws, struct gm_reply *rep)
{
    struct gm_error err;
    *gpus = NULL;
    *ngpus = 0;
    if (ws != NULL) {
        *ws = NULL;
        *nws = 0;
    }
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_gpu_list(d->store, gpus, ngpus, &err);
    if (rc == 0 && ws != NULL)
        rc = gm_store_workload_list(d->store, ws, nws, &err);
    pthread_mutex_unlock(&d->lock);
    if (rc < 0)
        gm_api_error(rep, &err);
    return rc;
}

static json_t *workload_json(struct gm_daemon *d, const struct gm_workload_rec *w)
{
    struct gm_gpu_rec *gpus = NULL;
    size_t n = 0;
    struct gm_error err;
    pthread_mutex_lock(&d->lock);
    gm_store_gpu_list(d->store, &gpus, &n, &err);
    pthread_mutex_unlock(&d->lock);
    json_t *o = gm_json_workload(d, w, gpus, n);
    free(gpus);
    return o;
}

static void get_info(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep)
{
    (void)req;
    json_t *o = json_object();
    json_object_set_new(o, "version", json_string(GM_VERSION));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "hostname", json_string(d->hostname));
    json_object_set_new(o, "driver", gm_json_driver(&d->driver));
    json_object_set_new(o, "state_dir", json_string(d->cfg.state_dir));
    json_object_set_new(o, "run_dir", json_string(d->cfg.run_dir));
    rep->json = o;
}

static json_t *gpu_with_live(const struct gm_gpu_rec *g, const struct gm_workload_rec *ws,
                             size_t nws)
{
    struct gm_gpu_live *live = NULL;
    if (g->present) {
        live = calloc(1, sizeof(*live));
        struct gm_error err;
        if (live != NULL &&
            (gm_gpu_query(g->idx, live, &err) < 0 || strcmp(live->uuid, g->uuid) != 0)) {
            free(live);
            live = NULL;
        }
    }
    json_t *o = gm_json_gpu(g, live, ws, nws);
    free(live);
    return o;
}

static void get_gpus(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep)
{
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus, nws;
    if (load_lists(d, &gpus, &ngpus, &ws, &nws, rep) < 0)
        return;
    if (req->nparts == 2) {
        size_t i;
        struct gm_error err;
        if (gm_gpu_resolve(gpus, ngpus, req->parts[1], &i, &err) < 0)
            gm_api_error(rep, &err);
        else
            rep->json = gpu_with_live(&gpus[i], ws, nws);
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; i < ngpus; i++)
            json_array_append_new(arr, gpu_with_live(&gpus[i], ws, nws));
        json_t *o = json_object();
        json_object_set_new(o, "hostname", json_string(d->hostname));
        json_object_set_new(o, "timestamp", gm_json_time(gm_now_ms()));
        json_object_set_new(o, "driver", gm_json_driver(&d->driver));
        json_object_set_new(o, "gpus", arr);
        rep->json = o;
    }
    free(gpus);
    gm_workload_list_free(ws, nws);
}

static void reply_gpu(struct gm_daemon *d, const struct gm_gpu_rec *g, struct gm_reply *rep)
{
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus, nws;
    if (load_lists(d, &gpus, &ngpus, &ws, &nws, rep) < 0)
        return;
    rep->json = gpu_with_live(g, ws, nws);
    free(gpus);
    gm_workload_list_free(ws, nws);
}

static int parse_on_busy(const json_t *body, enum gm_on_busy *out, struct gm_reply *rep)
{
    const char *v = json_string_value(json_object_get(body, "on_busy"));
    *out = GM_ON_BUSY_REFUSE;
    if (json_object_get(body, "on_busy") == NULL || (v && strcmp(v, "refuse") == 0))
        return 0;
    if (v && strcmp(v, "stop") == 0)
        *out = GM_ON_BUSY_STOP;
    else if (v && strcmp(v, "restart") == 0)
        *out = GM_ON_BUSY_RESTART;
    else {
        reply_err(rep, GM_EINVAL, "field 'on_busy' must be one of refuse, stop, restart");
        return -1;
    }
    return 0;
}

static void post_gpu_mode(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep)
{
    static const char *const fields[] = {"mode", "on_busy", NULL};
    if (req->body == NULL) {
        reply_err(rep, GM_EINVAL, "a body {\"mode\": \"shared|mps|vm\"} is required");
        return;
    }
    enum gm_on_busy ob;
    if (only_fields(req->body, fields, rep) < 0 || parse_on_busy(req->body, &ob, rep) < 0)
        return;
    struct gm_error err;
    enum gm_mode mode;
    const char *ms = json_string_value(json_object_get(req->body, "mode"));
    if (ms == NULL || gm_mode_parse(ms, &mode) < 0) {
        reply_err(rep, GM_EINVAL, "mode '%s': must be one of shared, mps, vm", ms ? ms : "");
        return;
    }
    struct gm_mode_outcome o;
    if (gm_gpu_set_mode(d, req->parts[1], mode, ob, &o, &err) < 0) {
        gm_api_error(rep, &err);
        return;
    }
    reply_gpu(d, &o.gpu, rep);
    struct gm_strv lines = {0};
    gm_msg_mode(&o, &lines);
    if (rep->json != NULL)
        json_object_set_new(rep->json, "messages", messages_json(&lines));
    gm_strv_free(&lines);
    gm_mode_outcome_free(&o);
}

static json_t *mps_json(struct gm_daemon *d, const struct gm_gpu_rec *g,
                        const struct gm_workload_rec *ws, size_t nws)
{
    struct gm_mps_status st;
    gm_mps_status(d, g, &st);
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer(g->idx));
    json_object_set_new(o, "uuid", json_string(g->uuid));
    json_object_set_new(o, "mode", json_string(gm_mode_name(g->mode)));
    json_object_set_new(o, "running", json_boolean(st.running));
    json_object_set_new(o, "control_pid", st.running ? json_integer(st.control_pid) : json_null());
    json_object_set_new(o, "pipe_dir", json_string(st.pipe_dir));
    json_object_set_new(o, "log_dir", json_string(st.log_dir));
    json_object_set_new(o, "servers", json_string(st.servers));
    json_object_set_new(o, "default_active_thread_percentage",
                        st.default_pct[0] ? json_string(st.default_pct) : json_null());
    json_object_set_new(o, "configured_active_thread_percentage",
                        g->mps_default_pct ? json_integer(g->mps_default_pct) : json_null());
    json_object_set_new(o, "configured_pinned_mem_limit",
                        g->mps_default_mem ? json_integer((json_int_t)g->mps_default_mem)
                                           : json_null());
    char names[512];
    gm_sched_users(ws, nws, g->uuid, NULL, names, sizeof(names));
    json_t *clients = json_array();
    for (size_t i = 0; i < nws; i++)
        for (int k = 0; k < ws[i].ngpus; k++)
            if (strcmp(ws[i].gpus[k], g->uuid) == 0 && gm_workload_active(&ws[i]))
                json_array_append_new(clients, json_string(ws[i].name));
    json_object_set_new(o, "clients", clients);
    return o;
}

/* GET /v1/mps, POST /v1/mps/start, POST /v1/mps/stop. */
static void mps(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep)
{
    const char *action = req->nparts == 2 ? req->parts[1] : NULL;
    struct gm_strv msgs = {0};
    char gbuf[128];
    const char *gpu = NULL;
    struct gm_error err;
    if (action != NULL) {
        static const char *const fields[] = {
            "gpu", "force", "on_busy", "active_thread_percentage", "pinned_mem_limit", NULL};
        if (strcmp(req->method, "POST") != 0 ||
            (strcmp(action, "start") != 0 && strcmp(action, "stop") != 0)) {
            reply_err(rep, GM_ENOTFOUND, "no such API path: %s %s", req->method, req->path);
            return;
        }
        json_t *body = req->body ? req->body : json_object();
        char pbuf[64], mbuf[64];
        const char *pct_s = NULL, *mem_s = NULL;
        enum gm_on_busy ob;
        if (only_fields(body, fields, rep) < 0 || parse_on_busy(body, &ob, rep) < 0 ||
            opt_text(body, "gpu", gbuf, sizeof(gbuf), &gpu, rep) < 0 ||
            opt_text(body, "active_thread_percentage", pbuf, sizeof(pbuf), &pct_s, rep) < 0 ||
            opt_text(body, "pinned_mem_limit", mbuf, sizeof(mbuf), &mem_s, rep) < 0)
            goto done_body;
        if (json_is_true(json_object_get(body, "force")))
            ob = GM_ON_BUSY_STOP;
        int pct = 0;
        uint64_t mem = 0;
        if ((pct_s && gm_parse_percent(pct_s, &pct, "active thread percentage", &err) < 0) ||
            (mem_s && gm_parse_size(mem_s, &mem, "pinned memory limit", &err) < 0)) {
            gm_api_error(rep, &err);
            goto done_body;
        }
        struct gm_gpu_rec *gpus;
        size_t n;
        if (load_lists(d, &gpus, &n, NULL, NULL, rep) < 0)
            goto done_body;
        int failed = 0;
        for (size_t i = 0; i < n && !failed; i++) {
            char idx[16];
            snprintf(idx, sizeof(idx), "%d", gpus[i].idx);
            if (gpu != NULL) {
                size_t k;
                if (gm_gpu_resolve(gpus, n, gpu, &k, &err) < 0) {
                    gm_api_error(rep, &err);
                    failed = 1;
                    break;
                }
                if (k != i)
                    continue;
            } else if (gpus[i].mode == GM_MODE_VM || !gpus[i].present) {
                gm_strv_addf(&msgs, "GPU %d is %s; skipped.", gpus[i].idx,
                             gpus[i].present ? "held for VMs" : "not present");
                continue;
            }
            if (strcmp(action, "start") == 0 && (pct || mem) &&
                gm_gpu_set_mps_defaults(d, idx, pct, mem, &err) < 0) {
                gm_api_error(rep, &err);
                failed = 1;
                break;
            }
            struct gm_mode_outcome o;
            if (gm_gpu_set_mode(d, idx, strcmp(action, "start") == 0 ? GM_MODE_MPS : GM_MODE_SHARED,
                                ob, &o, &err) < 0) {
                gm_api_error(rep, &err);
                failed = 1;
                break;
            }
            gm_msg_mode(&o, &msgs);
            gm_mode_outcome_free(&o);
        }
        free(gpus);
        if (failed)
            goto done_body;
        gm_strv_add(&msgs, "All done.");
    done_body:
        if (req->body == NULL)
            json_decref(body);
        if (rep->json != NULL) {
            gm_strv_free(&msgs);
            return; /* an error answer */
        }
    } else if (strcmp(req->method, "GET") != 0) {
        reply_err(rep, GM_ENOTFOUND, "no such API path: %s %s", req->method, req->path);
        return;
    }
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus, nws;
    if (load_lists(d, &gpus, &ngpus, &ws, &nws, rep) < 0)
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < ngpus; i++) {
        size_t k;
        if (gpu != NULL && (gm_gpu_resolve(gpus, ngpus, gpu, &k, NULL) < 0 || k != i))
            continue;
        json_array_append_new(arr, mps_json(d, &gpus[i], ws, nws));
    }
    rep->json = json_object();
    if (action != NULL)
        json_object_set_new(rep->json, "messages", messages_json(&msgs));
    gm_strv_free(&msgs);
    json_object_set_new(rep->json, "gpus", arr);
    free(gpus);
    gm_workload_list_free(ws, nws);
}

static json_t *vm_json(const struct gm_gpu_rec *g)
{
    json_t *o = json_object(), *gpu = json_object();
    json_object_set_new(o, "name", json_string(g->holder));
    json_object_set_new(gpu, "index", json_integer(g->idx));
    json_object_set_new(gpu, "uuid", json_string(g->uuid));
    json_object_set_new(gpu, "pci_bus_id", json_string(g->pci_bus_id));
    json_object_set_new(o, "gpu", gpu);
    json_object_set_new(o, "since", gm_json_time(g->holder_since));
    return o;
}

static void vms(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep)
{
    struct gm_error err;
    struct gm_gpu_rec g;
    if (strcmp(req->method, "POST") == 0 && req->nparts == 1) {
        static const char *const fields[] = {"name", "gpu", NULL};
        if (req->body == NULL) {
            reply_err(rep, GM_EINVAL, "a body {\"name\": VM, \"gpu\": ID} is required");
            return;
        }
        if (only_fields(req->body, fields, rep) < 0)
            return;
        char gbuf[128];
        const char *gpu;
        if (opt_text(req->body, "gpu", gbuf, sizeof(gbuf), &gpu, rep) < 0)
            return;
        const char *name = json_string_value(json_object_get(req->body, "name"));
        if (gm_vm_attach(d, name ? name : "", gpu, &g, &err) < 0) {
            gm_api_error(rep, &err);
            return;
        }
        rep->status = 201;
        rep->json = vm_json(&g);
        return;
    }
    if (strcmp(req->method, "DELETE") == 0 && req->nparts == 2) {
        if (gm_vm_detach(d, req->parts[1], &g, &err) < 0) {
            gm_api_error(rep, &err);
            return;
        }
        rep->json = vm_json(&g);
        return;
    }
    if (strcmp(req->method, "GET") != 0) {
        reply_err(rep, GM_ENOTFOUND, "no such API path: %s %s", req->method, req->path);
        return;
    }
    struct gm_gpu_rec *gpus;
    size_t n;
    if (load_lists(d, &gpus, &n, NULL, NULL, rep) < 0)
        return;
    json_t *arr = json_array();
    json_t *one = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!gpus[i].holder[0])
            continue;
        if (req->nparts == 2 && strcmp(gpus[i].holder, req->parts[1]) == 0)
            one = vm_json(&gpus[i]);
        json_array_append_new(arr, vm_json(&gpus[i]));
    }
    free(gpus);
    if (req->nparts == 2) {
        json_decref(arr);
        if (one == NULL)
            reply_err(rep, GM_ENOTFOUND, "no VM named %s holds a GPU", req->parts[1]);
        else
            rep->json = one;
        return;
    }
    rep->json = json_object();
    json_object_set_new(rep->json, "vms", arr);
}

static void post_workload(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep)
{
    static const char *const fields[] = {"name", "command", "gpu",     "compute", "memory",
                                         "env",  "restart", "enforce", NULL};
    if (req->body == NULL) {
        reply_err(rep, GM_EINVAL, "a JSON body describing the workload is required");
        return;
    }
    if (only_fields(req->body, fields, rep) < 0)
        return;
    json_t *name = json_object_get(req->body, "name"), *cmd = json_object_get(req->body, "command");
    json_t *env = json_object_get(req->body, "env");
    if (!json_is_string(name)) {
        reply_err(rep, GM_EINVAL, "field 'name' (a string) is required");
        return;
    }
    if (!json_is_array(cmd) || json_array_size(cmd) == 0) {
        reply_err(rep, GM_EINVAL,
                  "workload %s: field 'command' (a non-empty array of strings) is required",
                  json_string_value(name));
        return;
    }
    if (env != NULL && !json_is_object(env) && !json_is_null(env)) {
        reply_err(rep, GM_EINVAL, "field 'env' must be an object of strings");
        return;
    }
    char gbuf[512], cbuf[64], mbuf[64], rbuf[64], ebuf[64];
    const char *compute = NULL, *memory = NULL, *restart = NULL, *enforce = NULL;
    struct gm_run_request r = {
        .name = json_string_value(name), .uid = (int)req->uid, .gid = (int)req->gid};
    if (opt_text(req->body, "gpu", gbuf, sizeof(gbuf), &r.gpu, rep) < 0 ||
        opt_text(req->body, "compute", cbuf, sizeof(cbuf), &compute, rep) < 0 ||
        opt_text(req->body, "memory", mbuf, sizeof(mbuf), &memory, rep) < 0 ||
        opt_text(req->body, "restart", rbuf, sizeof(rbuf), &restart, rep) < 0 ||
        opt_text(req->body, "enforce", ebuf, sizeof(ebuf), &enforce, rep) < 0)
        return;
    struct gm_error perr;
    if ((compute != NULL && gm_parse_percent(compute, &r.compute_pct, "--compute", &perr) < 0) ||
        (memory != NULL && gm_parse_size(memory, &r.memory_limit, "--memory", &perr) < 0)) {
        gm_api_error(rep, &perr);
        return;
    }
    if (restart != NULL && gm_restart_parse(restart, &r.restart) < 0) {
        reply_err(rep, GM_EINVAL, "--restart '%s': must be one of never, on-failure, always",
                  restart);
        return;
    }
    if (enforce != NULL && gm_enforce_parse(enforce, &r.enforce) < 0) {
        reply_err(rep, GM_EINVAL, "--enforce '%s': must be strict or best-effort", enforce);
        return;
    }
    size_t n = json_array_size(cmd), nenv = env && json_is_object(env) ? json_object_size(env) : 0;
    char **argv = calloc(n + 1, sizeof(*argv));
    const char **keys = calloc(nenv + 1, sizeof(*keys)), **vals = calloc(nenv + 1, sizeof(*vals));
    if (argv == NULL || keys == NULL || vals == NULL) {
        reply_err(rep, GM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(cmd, i);
        if (!json_is_string(a)) {
            reply_err(rep, GM_EINVAL, "field 'command': element %zu is not a string", i);
            goto out;
        }
        argv[i] = (char *)json_string_value(a);
    }
    size_t k = 0;
    const char *key;
    json_t *v;
    if (nenv > 0) {
        json_object_foreach(env, key, v)
        {
            if (!json_is_string(v)) {
                reply_err(rep, GM_EINVAL, "field 'env': %s is not a string", key);
                goto out;
            }
            keys[k] = key;
            vals[k++] = json_string_value(v);
        }
    }
    r.argv = argv;
    r.env_keys = keys;
    r.env_vals = vals;
    r.nenv = k;
    struct gm_workload_rec w;
    struct gm_error err;
    if (gm_workload_create(d, &r, &w, &err) < 0) {
        gm_api_error(rep, &err);
        goto out;
    }
    rep->status = 201;
    rep->json = workload_json(d, &w);
    gm_workload_rec_free(&w);
out:
    free(argv);
    free(keys);
    free(vals);
}

static void get_logs(struct gm_daemon *d, const char *name, const struct gm_request *req,
                     struct gm_reply *rep)
{
    struct gm_workload_rec w;
    struct gm_error err;
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_get(d->store, name, &w, &err);
    pthread_mutex_unlock(&d->lock);
    if (rc < 0) {
        gm_api_error(rep, &err);
        return;
    }
    gm_workload_rec_free(&w);
    const char *q = req->query(req->conn, "offset");
    long long off = 0;
    if (q != NULL) {
        char *end;
        off = strtoll(q, &end, 10);
        if (*end != '\0' || off < 0) {
            reply_err(rep, GM_EINVAL, "offset '%s' is not a byte offset", q);
            return;
        }
    }
    char path[PATH_MAX];
    gm_workload_log_path(d, name, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    rep->offset = off;
    if (fd < 0) {
        rep->raw = NULL;
        rep->rawlen = 0;
        return; /* nothing written yet */
    }
    struct stat st;
    fstat(fd, &st);
    if (off > st.st_size)
        off = 0; /* the log was replaced: start over */
    size_t want = (size_t)(st.st_size - off) < LOG_CHUNK ? (size_t)(st.st_size - off) : LOG_CHUNK;
    rep->raw = malloc(want + 1);
    ssize_t got = rep->raw ? pread(fd, rep->raw, want, off) : -1;
    close(fd);
    if (got < 0) {
        free(rep->raw);
        rep->raw = NULL;
        reply_err(rep, GM_EIO, "reading %s: %s", path, strerror(errno));
        return;
    }
    rep->rawlen = (size_t)got;
    rep->offset = off + got;
}

static void workloads(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep)
{
    const char *m = req->method;
    struct gm_workload_rec w;
    struct gm_error err;
    int rc;
    if (req->nparts == 1) {
        if (strcmp(m, "POST") == 0) {
            post_workload(d, req, rep);
            return;
        }
        if (strcmp(m, "GET") != 0) {
            reply_err(rep, GM_ENOTFOUND, "no such API path: %s %s", m, req->path);
            return;
        }
        struct gm_gpu_rec *gpus;
        struct gm_workload_rec *ws;
        size_t ngpus, nws;
        if (load_lists(d, &gpus, &ngpus, &ws, &nws, rep) < 0)
            return;
        json_t *arr = json_array();
        for (size_t i = 0; i < nws; i++)
            json_array_append_new(arr, gm_json_workload(d, &ws[i], gpus, ngpus));
        rep->json = json_object();
        json_object_set_new(rep->json, "workloads", arr);
        free(gpus);
        gm_workload_list_free(ws, nws);
        return;
    }
    const char *name = req->parts[1];
    if (req->nparts == 3 && strcmp(req->parts[2], "logs") == 0 && strcmp(m, "GET") == 0) {
        get_logs(d, name, req, rep);
        return;
    }
    if (req->nparts == 3 && strcmp(m, "POST") == 0 && strcmp(req->parts[2], "limits") == 0) {
        static const char *const fields[] = {"compute", "memory", NULL};
        char cbuf[64], mbuf[64];
        const char *compute = NULL, *memory = NULL;
        json_t *body = req->body ? req->body : json_object();
        int bad = only_fields(body, fields, rep) < 0 ||
                  opt_text(body, "compute", cbuf, sizeof(cbuf), &compute, rep) < 0 ||
                  opt_text(body, "memory", mbuf, sizeof(mbuf), &memory, rep) < 0;
        if (req->body == NULL)
            json_decref(body);
        if (bad)
            return;
        int pct = -1;
        uint64_t mem = UINT64_MAX;
        if ((compute != NULL && strcmp(compute, "none") == 0 ? (pct = 0, 0)
             : compute != NULL ? gm_parse_percent(compute, &pct, "--compute", &err)
                               : 0) < 0 ||
            (memory != NULL && strcmp(memory, "none") == 0 ? (mem = 0, 0)
             : memory != NULL ? gm_parse_size(memory, &mem, "--memory", &err)
                              : 0) < 0) {
            gm_api_error(rep, &err);
            return;
        }
        struct gm_limits_outcome lo;
        if (gm_workload_set_limits(d, name, pct, mem, &w, &lo, &err) < 0) {
            gm_api_error(rep, &err);
            return;
        }
        rep->json = workload_json(d, &w);
        struct gm_strv lines = {0};
        gm_msg_limits(name, &w, &lo, &lines);
        json_object_set_new(rep->json, "messages", messages_json(&lines));
        gm_strv_free(&lines);
        gm_workload_rec_free(&w);
        return;
    }
    if (req->nparts == 3 && strcmp(m, "POST") == 0 && strcmp(req->parts[2], "stop") == 0)
        rc = gm_workload_stop(d, name, &w, &err);
    else if (req->nparts == 3 && strcmp(m, "POST") == 0 && strcmp(req->parts[2], "start") == 0)
        rc = gm_workload_start(d, name, &w, &err);
    else if (req->nparts == 2 && strcmp(m, "DELETE") == 0)
        rc = gm_workload_delete(d, name, &w, &err);
    else if (req->nparts == 2 && strcmp(m, "GET") == 0) {
        pthread_mutex_lock(&d->lock);
        rc = gm_store_workload_get(d->store, name, &w, &err);
        pthread_mutex_unlock(&d->lock);
    } else {
        reply_err(rep, GM_ENOTFOUND, "no such API path: %s %s", m, req->path);
        return;
    }
    if (rc < 0) {
        gm_api_error(rep, &err);
        return;
    }
    rep->json = workload_json(d, &w);
    gm_workload_rec_free(&w);
}

static void get_events(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep)
{
    const char *s = req->query(req->conn, "since"), *l = req->query(req->conn, "limit");
    long long since = s ? atoll(s) : 0, limit = l ? atoll(l) : 1000;
    if (limit <= 0 || limit > 100000)
        limit = 1000;
    struct gm_event *ev = NULL;
    size_t n = 0;
    struct gm_error err;
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_event_list(d->store, since, (int)limit, &ev, &n, &err);
    pthread_mutex_unlock(&d->lock);
    if (rc < 0) {
        gm_api_error(rep, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, gm_json_event(&ev[i]));
    free(ev);
    rep->json = json_object();
    json_object_set_new(rep->json, "events", arr);
}

void gm_api_handle(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep)
{
    const char *m = req->method, *top = req->nparts > 0 ? req->parts[0] : "";
    int get = strcmp(m, "GET") == 0;
    if (strcmp(top, "info") == 0 && req->nparts == 1 && get)
        get_info(d, req, rep);
    else if (strcmp(top, "gpus") == 0 && req->nparts <= 2 && get)
        get_gpus(d, req, rep);
    else if (strcmp(top, "gpus") == 0 && req->nparts == 3 && strcmp(req->parts[2], "mode") == 0 &&
             strcmp(m, "POST") == 0)
        post_gpu_mode(d, req, rep);
    else if (strcmp(top, "mps") == 0 && req->nparts <= 2)
        mps(d, req, rep);
    else if (strcmp(top, "vms") == 0 && req->nparts <= 2)
        vms(d, req, rep);
    else if (strcmp(top, "workloads") == 0 && req->nparts <= 3)
        workloads(d, req, rep);
    else if (strcmp(top, "events") == 0 && req->nparts == 1 && get)
        get_events(d, req, rep);
    else
        reply_err(rep, GM_ENOTFOUND, "no such API path: %s %s", m, req->path);
}
