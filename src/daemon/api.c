/* The API: one route table (method, path pattern, handler, body and query specs) from which
 * gm_api_handle dispatches, and one handler per endpoint of docs/api.md. Bodies are validated
 * and parsed into typed request structs from their field specs (fields.h) before a handler
 * runs: handlers see enums, percentages and byte counts, never the text they came as. */
#include "common/logindex.h"
#include "common/log.h"
#include "common/parse.h"
#include "daemon/apply.h"
#include "daemon/http.h"
#include "daemon/json.h"
#include "daemon/mps.h"
#include "daemon/route.h"
#include "daemon/sched.h"
#include "daemon/supervise.h"
#include "gpusim/state/state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_CHUNK (1024 * 1024)

/* Messages quote what the client sent (a path, a parameter), which need not be UTF-8; JSON
 * strings must be, so each byte that is not part of a valid sequence becomes '?'. */
static json_t *message_json(const char *msg)
{
    char text[sizeof(((struct gm_error *)0)->msg)];
    size_t i = 0;
    for (const unsigned char *s = (const unsigned char *)msg; *s != '\0' && i + 4 < sizeof(text);) {
        size_t n = gm_utf8_len((const char *)s);
        if (n == 0) {
            text[i++] = '?';
            s++;
        } else {
            memcpy(text + i, s, n);
            i += n;
            s += n;
        }
    }
    text[i] = '\0';
    return json_string(text);
}

void gm_api_error(struct gm_reply *rep, const struct gm_error *err)
{
    int code = err->code ? err->code : GM_EINTERNAL;
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(gm_errcode_name(code)));
    json_object_set_new(e, "message", message_json(err->msg));
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

static json_t *workload_json(struct gm_daemon *d, const struct gm_workload_rec *w,
                             const struct gm_caller *who)
{
    struct gm_gpu_rec *gpus = NULL;
    size_t n = 0;
    struct gm_error err;
    pthread_mutex_lock(&d->lock);
    gm_store_gpu_list(d->store, &gpus, &n, &err);
    pthread_mutex_unlock(&d->lock);
    json_t *o = gm_json_workload(d, w, gpus, n, gm_perm_sees_secrets(who, w->uid));
    free(gpus);
    return o;
}

/* A workload operation's answer: the workload, or the error. */
static void reply_workload(struct gm_daemon *d, const struct gm_call *c, int rc,
                           struct gm_workload_rec *w, const struct gm_error *err,
                           struct gm_reply *rep)
{
    if (rc < 0) {
        gm_api_error(rep, err);
        return;
    }
    rep->json = workload_json(d, w, c->who);
    gm_workload_rec_free(w);
}

/* ---- Request bodies and query parameters: one spec each ---------------------------------- */

static const char *const on_busy_names[] = {"refuse", "stop", "restart", NULL};

#define SPEC(name, ...)                                                                            \
    static const struct gm_field name##_fields[] = {__VA_ARGS__};                                  \
    static const struct gm_fields name = {name##_fields,                                           \
                                          sizeof(name##_fields) / sizeof(name##_fields[0])}

struct mode_req {
    enum gm_mode mode;
    enum gm_on_busy on_busy;
};
#define ON_BUSY_FIELD(T)                                                                           \
    {                                                                                              \
        .name = "on_busy", .type = GM_FIELD_ENUM, GM_FIELD_AT(T, on_busy), .names = on_busy_names, \
        .dflt = GM_ON_BUSY_REFUSE,                                                                 \
        .doc = "workloads on the GPU: refuse the change (default), stop them first, or restart "   \
               "them under the new mode"                                                           \
    }
SPEC(mode_spec,
     {.name = "mode",
      .type = GM_FIELD_ENUM,
      .required = 1,
      GM_FIELD_AT(struct mode_req, mode),
      .names = gm_mode_names,
      .doc = "the sharing mode"},
     ON_BUSY_FIELD(struct mode_req));

struct mps_req {
    const char *gpu;
    int pct;
    uint64_t mem;
    int force;
    enum gm_on_busy on_busy;
};
/* The least memory limit gpumux takes: below it a CUDA program cannot hold its context's data
 * and its libraries' first allocations (cuBLAS alone asks for workspaces of up to 32 MiB), and
 * a figure that small is almost always a unit left out. */
#define GM_MEMORY_LIMIT_MIN (64 * GM_MIB)

#define MPS_GPU_FIELD                                                                              \
    {                                                                                              \
        .name = "gpu", .type = GM_FIELD_TEXT, GM_FIELD_AT(struct mps_req, gpu),                    \
        .doc = "one GPU (index, UUID or PCI bus id); absent: every GPU no VM holds"                \
    }
SPEC(mps_start_spec, MPS_GPU_FIELD,
     {.name = "active_thread_percentage",
      .type = GM_FIELD_PERCENT,
      GM_FIELD_AT(struct mps_req, pct),
      .what = "active thread percentage",
      .doc = "default active thread percentage of the GPU's MPS clients"},
     {.name = "pinned_mem_limit",
      .type = GM_FIELD_SIZE,
      GM_FIELD_AT(struct mps_req, mem),
      .unit = 1,
      .min_size = GM_MEMORY_LIMIT_MIN,
      .what = "pinned memory limit",
      .doc = "default pinned device memory limit of the GPU's MPS clients"},
     ON_BUSY_FIELD(struct mps_req));
SPEC(mps_stop_spec, MPS_GPU_FIELD,
     {.name = "force",
      .type = GM_FIELD_BOOL,
      GM_FIELD_AT(struct mps_req, force),
      .doc = "stop the GPU's workloads first instead of refusing (as on_busy stop)"},
     ON_BUSY_FIELD(struct mps_req));

struct vm_req {
    const char *name, *gpu;
};
SPEC(vm_spec,
     {.name = "name",
      .type = GM_FIELD_STRING,
      .required = 1,
      GM_FIELD_AT(struct vm_req, name),
      .doc = "the VM"},
     {.name = "gpu",
      .type = GM_FIELD_TEXT,
      .required = 1,
      GM_FIELD_AT(struct vm_req, gpu),
      .doc = "the GPU to give: index, UUID or PCI bus id"});

struct vm_detach_query {
    int force;
};
SPEC(vm_detach_spec, {.name = "force",
                      .type = GM_FIELD_BOOL,
                      GM_FIELD_AT(struct vm_detach_query, force),
                      .doc = "take the GPU back even while a running VM holds its vfio node"});

SPEC(run_spec,
     {.name = "name",
      .type = GM_FIELD_STRING,
      .required = 1,
      GM_FIELD_AT(struct gm_run_request, name),
      .doc = "the workload's name"},
     {.name = "command",
      .type = GM_FIELD_STRINGS,
      .required = 1,
      .min = 1,
      GM_FIELD_AT(struct gm_run_request, argv),
      .doc = "the program and its arguments"},
     {.name = "gpu",
      .type = GM_FIELD_TEXT,
      GM_FIELD_AT(struct gm_run_request, gpu),
      .doc = "index, UUID or PCI bus id, a list `0,1`, `all`, or `none`; absent: placed by "
             "policy"},
     {.name = "compute",
      .type = GM_FIELD_PERCENT,
      GM_FIELD_AT(struct gm_run_request, compute_pct),
      .what = "--compute",
      .doc = "compute cap; absent: none"},
     {.name = "memory",
      .type = GM_FIELD_SIZE,
      GM_FIELD_AT(struct gm_run_request, memory_limit),
      .unit = 1,
      .min_size = GM_MEMORY_LIMIT_MIN,
      .what = "--memory",
      .doc = "memory limit, a size with its unit (`4G`, `512Mi`) or an integer of bytes, at "
             "least 64MiB; absent: none"},
     {.name = "env",
      .type = GM_FIELD_STRMAP,
      GM_FIELD_AT(struct gm_run_request, env),
      .doc = "environment variables"},
     {.name = "restart",
      .type = GM_FIELD_ENUM,
      GM_FIELD_AT(struct gm_run_request, restart),
      .names = gm_restart_names,
      .dflt = GM_RESTART_NEVER,
      .what = "--restart",
      .doc = "restart policy; default never"},
     {.name = "restart_max",
      .type = GM_FIELD_INT,
      GM_FIELD_AT(struct gm_run_request, restart_max),
      .min = 0,
      .max = GM_RESTART_MAX_BOUND,
      .what = "--restart on-failure:N",
      .doc = "with restart on-failure, at most this many restarts; absent or 0: no bound"},
     {.name = "auto_remove",
      .type = GM_FIELD_BOOL,
      GM_FIELD_AT(struct gm_run_request, auto_remove),
      .what = "--rm",
      .doc = "delete the workload once it has ended (docker's --rm); only with restart never"},
     {.name = "enforce",
      .type = GM_FIELD_ENUM,
      GM_FIELD_AT(struct gm_run_request, enforce),
      .names = gm_enforce_names,
      .dflt = GM_ENFORCE_BEST_EFFORT,
      .what = "--enforce",
      .doc = "strict: CUDA initialisation fails when the limits cannot be enforced; default "
             "best-effort"});

SPEC(apply_spec,
     {.name = "file",
      .type = GM_FIELD_STRING,
      .required = 1,
      GM_FIELD_AT(struct gm_apply_req, file),
      .doc = "the manifest's file name, for messages (`-` for standard input)"},
     {.name = "manifest",
      .type = GM_FIELD_STRING,
      .required = 1,
      GM_FIELD_AT(struct gm_apply_req, manifest),
      .doc = "the manifest's text: Kubernetes YAML, IoT Edge deployment JSON or gpumux's own "
             "(docs/manifests.md)"},
     {.name = "dry_run",
      .type = GM_FIELD_BOOL,
      GM_FIELD_AT(struct gm_apply_req, dry_run),
      .doc = "decide and say what would be done; change nothing"});

struct stop_req {
    int time; /* -1: the daemon's stop_timeout */
};
SPEC(stop_spec, {.name = "time",
                 .type = GM_FIELD_INT,
                 GM_FIELD_AT(struct stop_req, time),
                 .min = 0,
                 .max = 3600,
                 .dflt = -1,
                 .what = "--time",
                 .doc = "seconds from SIGTERM to SIGKILL, 0..3600; absent: the daemon's "
                        "stop_timeout"});

struct limits_req {
    int compute_pct; /* -1: keep, 0: none */
    uint64_t memory; /* UINT64_MAX: keep, 0: none */
};
SPEC(limits_spec,
     {.name = "compute",
      .type = GM_FIELD_PERCENT,
      GM_FIELD_AT(struct limits_req, compute_pct),
      .none = 1,
      .dflt = -1,
      .what = "--compute",
      .doc = "new compute cap; `none` removes it; absent: unchanged"},
     {.name = "memory",
      .type = GM_FIELD_SIZE,
      GM_FIELD_AT(struct limits_req, memory),
      .none = 1,
      .unit = 1,
      .min_size = GM_MEMORY_LIMIT_MIN,
      .dflt_size = UINT64_MAX,
      .what = "--memory",
      .doc = "new memory limit; `none` removes it; absent: unchanged"});

struct logs_query {
    long long offset, file, pos, since;
};
SPEC(logs_query_spec,
     {.name = "offset",
      .type = GM_FIELD_INT,
      GM_FIELD_AT(struct logs_query, offset),
      .min = 0,
      .max = INT64_MAX,
      .what = "offset",
      .doc = "byte offset in the kept log to read from; default 0"},
     {.name = "file",
      .type = GM_FIELD_INT,
      GM_FIELD_AT(struct logs_query, file),
      .min = 0,
      .max = INT64_MAX,
      .what = "file",
      .doc = "with `pos`: continue in this file of the log (the first number of "
             "`X-Gpumux-Log-At`), wherever rotation has moved it; when it is gone, `offset` "
             "counts; default 0: none"},
     {.name = "pos",
      .type = GM_FIELD_INT,
      GM_FIELD_AT(struct logs_query, pos),
      .min = 0,
      .max = INT64_MAX,
      .what = "pos",
      .doc = "the byte of `file` to continue at; default 0"},
     {.name = "since",
      .type = GM_FIELD_INT,
      GM_FIELD_AT(struct logs_query, since),
      .min = 0,
      .max = INT64_MAX,
      .what = "since",
      .doc = "without `offset` and `file`: start at the output written at or after this Unix "
             "time in milliseconds (within a second before it: the log's time index has one "
             "mark a second); the answer's `X-Gpumux-Offset` says where that is"});

struct events_query {
    long long since, limit;
};
SPEC(events_query_spec,
     {.name = "since",
      .type = GM_FIELD_INT,
      GM_FIELD_AT(struct events_query, since),
      .min = 0,
      .max = INT64_MAX,
      .what = "since",
      .doc = "answer events with ids greater than this; default 0"},
     {.name = "limit",
      .type = GM_FIELD_INT,
      GM_FIELD_AT(struct events_query, limit),
      .min = 1,
      .max = 100000,
      .dflt = 1000,
      .what = "limit",
      .doc = "at most this many events; default 1000"});

/* ---- Handlers ---------------------------------------------------------------------------- */

/* The driver's reading of a present GPU; NULL with why in err when it has none. */
static struct gm_gpu_live *query_live(const struct gm_gpu_rec *g, struct gm_error *err)
{
    struct gm_gpu_live *live = calloc(1, sizeof(*live));
    if (live == NULL) {
        gm_err(err, GM_ENOMEM, "out of memory");
        return NULL;
    }
    int rc = gm_gpu_query(g->idx, live, err);
    if (rc == 0 && strcmp(live->uuid, g->uuid) != 0)
        rc = gm_err(err, GM_EDRIVER, "GPU %d: the driver now reports %s there, not %s", g->idx,
                    live->uuid, g->uuid);
    if (rc == 0)
        return live;
    free(live);
    return NULL;
}

static void get_info(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    (void)c;
    json_t *o = json_object();
    json_object_set_new(o, "version", json_string(GM_VERSION));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "hostname", json_string(d->hostname));
    json_object_set_new(o, "driver", gm_json_driver(&d->driver));
    json_object_set_new(o, "state_dir", json_string(d->cfg.state_dir));
    json_object_set_new(o, "run_dir", json_string(d->cfg.run_dir));
    /* Where an NVML tool finds the simulated device this daemon manages: gpusim's libraries on
     * its library path and, when the daemon's state file is not gpusim's default, GPUSIM_STATE. */
    if (d->driver.kind == GM_DRIVER_SIM)
        json_object_set_new(o, "gpusim",
                            json_pack("{s:s, s:s, s:b}", "state_file", d->cfg.gpusim_state,
                                      "library_dir", d->driver.sim_dir, "default_state",
                                      strcmp(d->cfg.gpusim_state, GM_SIM_DEFAULT_STATE) == 0));
    /* The GPUs the driver fails now: a daemon that answers must not hide a lost device. */
    json_t *lost = json_array();
    struct gm_gpu_rec *gpus = NULL;
    size_t n = 0;
    struct gm_error err;
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_gpu_list(d->store, &gpus, &n, &err);
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct gm_error why = {0};
        int bound = gm_vfio_bound(d, gpus[i].idx);
        struct gm_gpu_live *live = gpus[i].present && !bound ? query_live(&gpus[i], &why) : NULL;
        if (gpus[i].present && !bound && live == NULL)
            json_array_append_new(lost, json_pack("{s:i, s:s, s:s}", "index", gpus[i].idx, "uuid",
                                                  gpus[i].uuid, "error", why.msg));
        free(live);
    }
    free(gpus);
    json_object_set_new(o, "gpus_lost", lost);
    rep->json = o;
}

/* A GPU the driver fails (lost, or a damaged simulated device) stays in the answer, with
 * "present": false and "error" saying why. */
static json_t *gpu_with_live(struct gm_daemon *d, const struct gm_gpu_rec *g,
                             const struct gm_workload_rec *ws, size_t nws)
{
    struct gm_gpu_live *live = NULL;
    struct gm_error err = {0};
    /* On vfio-pci for a VM: the host driver does not have it, and NVML is not asked. */
    int bound = gm_vfio_bound(d, g->idx);
    if (g->present && !bound)
        live = query_live(g, &err);
    json_t *o = gm_json_gpu(g, live, ws, nws);
    json_object_set_new(o, "passthrough", bound ? json_string(GM_VFIO_DRIVER) : json_null());
    json_object_set_new(o, "error",
                        g->present && !bound && live == NULL ? json_string(err.msg) : json_null());
    free(live);
    return o;
}

static void get_gpus(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    (void)c;
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus, nws;
    if (load_lists(d, &gpus, &ngpus, &ws, &nws, rep) < 0)
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < ngpus; i++)
        json_array_append_new(arr, gpu_with_live(d, &gpus[i], ws, nws));
    json_t *o = json_object();
    json_object_set_new(o, "hostname", json_string(d->hostname));
    json_object_set_new(o, "timestamp", gm_json_time(gm_now_ms()));
    json_object_set_new(o, "driver", gm_json_driver(&d->driver));
    json_object_set_new(o, "gpus", arr);
    rep->json = o;
    free(gpus);
    gm_workload_list_free(ws, nws);
}

static void get_gpu(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus, nws, i;
    struct gm_error err;
    if (load_lists(d, &gpus, &ngpus, &ws, &nws, rep) < 0)
        return;
    if (gm_gpu_resolve(gpus, ngpus, c->arg[0], &i, &err) < 0)
        gm_api_error(rep, &err);
    else
        rep->json = gpu_with_live(d, &gpus[i], ws, nws);
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
    rep->json = gpu_with_live(d, g, ws, nws);
    free(gpus);
    gm_workload_list_free(ws, nws);
}

/* The lines of an outcome as the answer's "messages" text, one per line. */
static json_t *messages_json(const struct gm_strv *lines)
{
    char *text = gm_strv_join(lines, "\n");
    json_t *j = json_sprintf("%s%s", text ? text : "", lines->n ? "\n" : "");
    free(text);
    return j;
}

/* A stop or delete that was made but could not be recorded yet says so in its answer:
 * "pending" (stop, delete) and the lines users read. */
static void add_pending(struct gm_daemon *d, const char *name, struct gm_reply *rep)
{
    pthread_mutex_lock(&d->lock);
    const struct gm_wmem *m = gm_wmem_find(d, name);
    struct gm_strv lines = {0};
    const char *what = NULL;
    if (m != NULL && m->delete_pending) {
        what = "delete";
        gm_strv_addf(&lines,
                     "workload %s: its processes are gone and its files removed; its record is "
                     "deleted when the state database can be written again (%s)",
                     name, m->pending_err);
    } else if (m != NULL && m->stop_pending) {
        what = "stop";
        gm_strv_addf(&lines,
                     "workload %s: SIGTERM sent (SIGKILL follows after the grace period); the stop "
                     "is recorded when the state database can be written again (%s)",
                     name, m->pending_err);
    }
    pthread_mutex_unlock(&d->lock);
    if (what != NULL && rep->json != NULL) {
        json_object_set_new(rep->json, "pending", json_string(what));
        json_object_set_new(rep->json, "messages", messages_json(&lines));
    }
    gm_strv_free(&lines);
}

static void post_gpu_mode(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    const struct mode_req *b = c->body;
    struct gm_mode_outcome o;
    struct gm_error err;
    if (gm_gpu_set_mode(d, c->arg[0], b->mode, b->on_busy, &o, &err) < 0) {
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
    /* Numbers as numbers: the servers' pids, and the percentage MPS prints as "40.0" (a whole
     * one as an integer, as the table shows it). */
    json_t *servers = json_array();
    for (char *p = st.servers, *end; *p != '\0'; p = end) {
        long pid = strtol(p, &end, 10);
        if (end == p) {
            end = p + 1;
            continue;
        }
        if (pid > 0)
            json_array_append_new(servers, json_integer(pid));
    }
    json_object_set_new(o, "servers", servers);
    char *pend = NULL;
    double pct = st.default_pct[0] ? strtod(st.default_pct, &pend) : -1;
    json_t *pj = json_null();
    if (pend != NULL && pend != st.default_pct && pct >= 0 && pct <= 100)
        pj = pct == (double)(long)pct ? json_integer((long)pct) : json_real(pct);
    json_object_set_new(o, "default_active_thread_percentage", pj);
    json_object_set_new(o, "configured_active_thread_percentage",
                        g->mps_default_pct ? json_integer(g->mps_default_pct) : json_null());
    json_object_set_new(o, "configured_pinned_mem_limit",
                        g->mps_default_mem ? json_integer((json_int_t)g->mps_default_mem)
                                           : json_null());
    json_t *clients = json_array();
    for (size_t i = 0; i < nws; i++)
        for (int k = 0; k < ws[i].ngpus; k++)
            if (strcmp(ws[i].gpus[k], g->uuid) == 0 && gm_workload_active(&ws[i]))
                json_array_append_new(clients, json_string(ws[i].name));
    json_object_set_new(o, "clients", clients);
    return o;
}

/* {"gpus": [...]} of the GPU named gpu (NULL: all), with "messages" when msgs is not NULL. */
static void reply_mps(struct gm_daemon *d, const char *gpu, const struct gm_strv *msgs,
                      struct gm_reply *rep)
{
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
    if (msgs != NULL)
        json_object_set_new(rep->json, "messages", messages_json(msgs));
    json_object_set_new(rep->json, "gpus", arr);
    free(gpus);
    gm_workload_list_free(ws, nws);
}

static void get_mps(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    (void)c;
    reply_mps(d, NULL, NULL, rep);
}

/* mps start and stop: the mode change on one GPU, or on every GPU no VM holds. */
static void mps_switch(struct gm_daemon *d, const struct gm_call *c, int start,
                       struct gm_reply *rep)
{
    const struct mps_req *b = c->body;
    enum gm_on_busy ob = b->force ? GM_ON_BUSY_STOP : b->on_busy;
    struct gm_strv msgs = {0};
    struct gm_error err;
    struct gm_gpu_rec *gpus;
    size_t n;
    if (load_lists(d, &gpus, &n, NULL, NULL, rep) < 0)
        return;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char idx[16];
        snprintf(idx, sizeof(idx), "%d", gpus[i].idx);
        if (b->gpu != NULL) {
            size_t k;
            if ((rc = gm_gpu_resolve(gpus, n, b->gpu, &k, &err)) < 0)
                break;
            if (k != i)
                continue;
        } else if (gpus[i].mode == GM_MODE_VM || !gpus[i].present) {
            gm_strv_addf(&msgs, "GPU %d is %s; skipped.", gpus[i].idx,
                         gpus[i].present ? "held for VMs" : "not present");
            continue;
        }
        if (start && (b->pct || b->mem) &&
            (rc = gm_gpu_set_mps_defaults(d, idx, b->pct, b->mem, &err)) < 0)
            break;
        struct gm_mode_outcome o;
        rc = gm_gpu_set_mode(d, idx, start ? GM_MODE_MPS : GM_MODE_SHARED, ob, &o, &err);
        if (rc == 0) {
            gm_msg_mode(&o, &msgs);
            gm_mode_outcome_free(&o);
        }
    }
    free(gpus);
    if (rc < 0) {
        gm_strv_free(&msgs);
        gm_api_error(rep, &err);
        return;
    }
    gm_strv_add(&msgs, "All done.");
    reply_mps(d, b->gpu, &msgs, rep);
    gm_strv_free(&msgs);
}

static void post_mps_start(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    mps_switch(d, c, 1, rep);
}

static void post_mps_stop(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    mps_switch(d, c, 0, rep);
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

/* GET /v1/vms (name NULL) and GET /v1/vms/{name}. */
static void reply_vms(struct gm_daemon *d, const char *name, struct gm_reply *rep)
{
    struct gm_gpu_rec *gpus;
    size_t n;
    if (load_lists(d, &gpus, &n, NULL, NULL, rep) < 0)
        return;
    json_t *arr = json_array();
    json_t *one = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!gpus[i].holder[0])
            continue;
        if (name != NULL && one == NULL && strcmp(gpus[i].holder, name) == 0)
            one = vm_json(&gpus[i]);
        json_array_append_new(arr, vm_json(&gpus[i]));
    }
    free(gpus);
    if (name != NULL) {
        json_decref(arr);
        if (one == NULL)
            reply_err(rep, GM_ENOTFOUND, "no VM named %s holds a GPU", name);
        else
            rep->json = one;
        return;
    }
    rep->json = json_object();
    json_object_set_new(rep->json, "vms", arr);
}

static void get_vms(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    (void)c;
    reply_vms(d, NULL, rep);
}

static void get_vm(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    reply_vms(d, c->arg[0], rep);
}

/* The group as a VMM takes it: its functions, QEMU's arguments and libvirt's XML. */
static json_t *passthrough_json(const struct gm_vfio_group *grp)
{
    json_t *o = json_object(), *fs = json_array(), *qemu = json_array();
    json_object_set_new(o, "iommu_group", json_integer(grp->group));
    for (size_t i = 0; i < grp->n; i++)
        json_array_append_new(fs, json_pack("{s:s, s:s, s:s}", "bdf", grp->f[i].bdf, "driver",
                                            grp->f[i].driver, "class",
                                            (grp->f[i].klass >> 16) == 0x03   ? "display"
                                            : (grp->f[i].klass >> 16) == 0x04 ? "multimedia"
                                                                              : "other"));
    json_object_set_new(o, "functions", fs);
    char buf[4096];
    gm_vfio_qemu_args(grp, buf, sizeof(buf));
    for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n"))
        json_array_append_new(qemu, json_string(line));
    json_object_set_new(o, "qemu", qemu);
    gm_vfio_libvirt_xml(grp, buf, sizeof(buf));
    json_object_set_new(o, "libvirt", json_string(buf));
    return o;
}

static void post_vm(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    const struct vm_req *b = c->body;
    struct gm_gpu_rec g;
    struct gm_vm_outcome o;
    struct gm_error err;
    if (gm_vm_attach(d, b->name, b->gpu, &g, &o, &err) < 0) {
        gm_api_error(rep, &err);
        return;
    }
    rep->status = 201;
    rep->json = vm_json(&g);
    json_object_set_new(rep->json, "passthrough",
                        o.passthrough ? passthrough_json(&o.group) : json_null());
    if (o.claim_only)
        json_object_set_new(rep->json, "note",
                            json_string("gpusim without a sysfs tree: the claim is recorded, no "
                                        "function was moved (see gpusimctl sysfs and "
                                        "sysfs_root)"));
}

static void delete_vm(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    const struct vm_detach_query *q = c->query;
    struct gm_gpu_rec g;
    struct gm_vm_outcome o;
    struct gm_error err;
    if (gm_vm_detach(d, c->arg[0], q != NULL && q->force, &g, &o, &err) < 0) {
        gm_api_error(rep, &err);
        return;
    }
    rep->json = vm_json(&g);
    json_t *back = json_array();
    for (size_t i = 0; o.passthrough && i < o.released.n; i++)
        json_array_append_new(back, json_pack("{s:s, s:s}", "bdf", o.released.bdf[i], "driver",
                                              o.released.driver[i]));
    json_object_set_new(rep->json, "returned", back);
}

static void get_workloads(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    struct gm_gpu_rec *gpus;
    struct gm_workload_rec *ws;
    size_t ngpus, nws;
    if (load_lists(d, &gpus, &ngpus, &ws, &nws, rep) < 0)
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < nws; i++)
        json_array_append_new(
            arr, gm_json_workload(d, &ws[i], gpus, ngpus, gm_perm_sees_secrets(c->who, ws[i].uid)));
    rep->json = json_object();
    json_object_set_new(rep->json, "workloads", arr);
    free(gpus);
    gm_workload_list_free(ws, nws);
}

static void apply_common(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep,
                         int remove)
{
    struct gm_apply_req *r = c->body;
    r->uid = (int)c->req->uid;
    r->gid = (int)c->req->gid;
    struct gm_error err = {0};
    struct gm_strv lines = {0};
    int rc =
        remove ? gm_workload_unapply(d, r, &lines, &err) : gm_workload_apply(d, r, &lines, &err);
    if (rc < 0) {
        gm_api_error(rep, &err);
    } else {
        rep->json = json_object();
        json_object_set_new(rep->json, "messages", messages_json(&lines));
    }
    gm_strv_free(&lines);
}

static void post_apply(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    apply_common(d, c, rep, 0);
}

static void post_apply_delete(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    apply_common(d, c, rep, 1);
}

/* A deployment record, with its workloads' names and, from the manifest kept with it, the
 * object's kind and the fields it carries that gpumux does not act on. */
static json_t *deployment_json(const struct gm_deployment_rec *dep,
                               const struct gm_workload_rec *ws, size_t nws)
{
    json_t *o = json_object(), *names = json_array(), *ne = json_array();
    json_object_set_new(o, "name", json_string(dep->name));
    json_object_set_new(o, "format", json_string(dep->format));
    json_object_set_new(o, "generation", json_integer(dep->generation));
    json_object_set_new(o, "created_at", json_integer(dep->created_at));
    json_object_set_new(o, "updated_at", json_integer(dep->updated_at));
    for (size_t i = 0; i < nws; i++)
        if (strcmp(ws[i].deployment, dep->name) == 0)
            json_array_append_new(names, json_string(ws[i].name));
    json_object_set_new(o, "workloads", names);
    struct gm_manifest m;
    json_t *kind = json_null();
    if (dep->manifest != NULL &&
        gm_manifest_parse("manifest", dep->manifest, strlen(dep->manifest), &m, NULL) == 0) {
        for (size_t i = 0; i < m.n; i++) {
            char dn[64];
            gm_apply_dep_name(&m.o[i], dn, sizeof(dn));
            if (strcmp(dn, dep->name) != 0)
                continue;
            json_decref(kind);
            kind = json_string(gm_mf_kind_name(m.o[i].kind));
            for (char **f = m.o[i].not_enforced; f != NULL && *f != NULL; f++)
                json_array_append_new(ne, json_string(*f));
        }
        gm_manifest_free(&m);
    }
    json_object_set_new(o, "kind", kind);
    json_object_set_new(o, "not_enforced", ne);
    return o;
}

static void get_deployments(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    struct gm_deployment_rec *deps = NULL;
    struct gm_workload_rec *ws = NULL;
    size_t ndeps = 0, nws = 0;
    struct gm_error err = {0};
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_deployment_list(d->store, &deps, &ndeps, &err);
    if (rc == 0)
        rc = gm_store_workload_list(d->store, &ws, &nws, &err);
    pthread_mutex_unlock(&d->lock);
    if (rc < 0) {
        gm_api_error(rep, &err);
    } else {
        json_t *arr = json_array();
        char one[160] = "";
        if (c->arg[0] != NULL && c->arg[1] != NULL)
            snprintf(one, sizeof(one), "%s/%s", c->arg[0], c->arg[1]);
        for (size_t i = 0; i < ndeps; i++)
            if (one[0] == '\0' || strcmp(deps[i].name, one) == 0)
                json_array_append_new(arr, deployment_json(&deps[i], ws, nws));
        if (one[0] != '\0' && json_array_size(arr) == 0) {
            json_decref(arr);
            gm_err(&err, GM_ENOTFOUND, "nothing applied is named %s", one);
            gm_api_error(rep, &err);
        } else if (one[0] != '\0') {
            rep->json = json_incref(json_array_get(arr, 0));
            json_decref(arr);
        } else {
            rep->json = json_object();
            json_object_set_new(rep->json, "deployments", arr);
        }
    }
    gm_store_deployment_list_free(deps, ndeps);
    gm_workload_list_free(ws, nws);
}

static void post_workload(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    struct gm_run_request *r = c->body;
    r->uid = (int)c->req->uid;
    r->gid = (int)c->req->gid;
    struct gm_workload_rec w;
    struct gm_error err;
    int rc = gm_workload_create(d, r, &w, &err);
    reply_workload(d, c, rc, &w, &err, rep);
    if (rc == 0)
        rep->status = 201;
}

static void get_workload(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    struct gm_workload_rec w;
    struct gm_error err;
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_workload_get(d->store, c->arg[0], &w, &err);
    pthread_mutex_unlock(&d->lock);
    reply_workload(d, c, rc, &w, &err, rep);
}

static void delete_workload(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    struct gm_workload_rec w;
    struct gm_error err;
    int rc = gm_workload_delete(d, c->arg[0], &w, &err);
    reply_workload(d, c, rc, &w, &err, rep);
    if (rc == 0)
        add_pending(d, c->arg[0], rep);
}

static void post_workload_stop(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    const struct stop_req *b = c->body;
    struct gm_workload_rec w;
    struct gm_error err;
    int rc = gm_workload_stop(d, c->arg[0], b != NULL ? b->time : -1, &w, &err);
    reply_workload(d, c, rc, &w, &err, rep);
    if (rc == 0)
        add_pending(d, c->arg[0], rep);
}

static void post_workload_start(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    struct gm_workload_rec w;
    struct gm_error err;
    int rc = gm_workload_start(d, c->arg[0], &w, &err);
    reply_workload(d, c, rc, &w, &err, rep);
}

static void post_workload_limits(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    const struct limits_req *b = c->body;
    struct gm_workload_rec w;
    struct gm_error err;
    struct gm_limits_outcome lo;
    struct gm_strv lines = {0};
    int rc = gm_workload_set_limits(d, c->arg[0], b->compute_pct, b->memory, &w, &lo, &err);
    if (rc == 0)
        gm_msg_limits(c->arg[0], &w, &lo, &lines);
    reply_workload(d, c, rc, &w, &err, rep);
    if (rc == 0)
        json_object_set_new(rep->json, "messages", messages_json(&lines));
    gm_strv_free(&lines);
}

/* Where in the kept log (files fds[nf-1] oldest .. fds[0] current) the output written at or
 * after since_ms begins: from each file's time index, or, for a file without one, from when
 * it was last written (all of it when that was at or after since_ms). */
static long long log_since(struct gm_daemon *d, const char *name, int nf, const int *fds,
                           const off_t *sizes, long long since_ms)
{
    long long before = 0; /* the bytes of the older files, skipped */
    char path[PATH_MAX], index[PATH_MAX];
    for (int i = nf - 1; i >= 0; i--) {
        if (fds[i] < 0 || sizes[i] == 0)
            continue;
        uint64_t at = 0;
        int found = -1;
        if (gm_workload_log_file(d, name, i, path, sizeof(path)) == 0 &&
            gm_logindex_name(path, index, sizeof(index)) == 0) {
            int ifd = open(index, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            found = gm_logindex_find(ifd, since_ms, &at);
            if (ifd >= 0)
                close(ifd);
        }
        if (found < 0) {
            struct stat st;
            found = fstat(fds[i], &st) == 0 &&
                    (long long)st.st_mtime * 1000 + st.st_mtim.tv_nsec / 1000000 >= since_ms;
            at = 0;
        }
        if (found == 1 && (off_t)at < sizes[i])
            return before + (long long)at;
        before += sizes[i];
    }
    return before; /* nothing as new: the end */
}

static void get_workload_logs(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    const char *name = c->arg[0];
    const struct logs_query *q = c->query;
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
    /* The log as kept, oldest first: NAME.log.K .. NAME.log.1, then NAME.log. The offset is a
     * position in that sequence, which moves when a rotation removes the oldest file; a file
     * keeps its inode through rotations, so (file, pos) continues where the last answer ended.
     * Each answer reads from one file; the client asks again. fds[0] is the current file. */
    int fds[GM_LOG_FILES_MAX + 1];
    off_t sizes[GM_LOG_FILES_MAX + 1];
    long long inos[GM_LOG_FILES_MAX + 1];
    int nf = 0;
    char path[PATH_MAX];
    for (int k = 0; k <= GM_LOG_FILES_MAX; k++) {
        if (gm_workload_log_file(d, name, k, path, sizeof(path)) < 0)
            break;
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
            close(fd);
            fd = -1;
        }
        if (fd < 0 && k > 0)
            break; /* the rotated files are numbered without gaps */
        fds[nf] = fd;
        sizes[nf] = fd >= 0 ? st.st_size : 0;
        inos[nf++] = fd >= 0 ? (long long)st.st_ino : 0;
    }
    long long total = 0;
    for (int i = 0; i < nf; i++)
        total += sizes[i];
    long long off = q->offset > total ? 0 : q->offset; /* the log was replaced: start over */
    if (q->since > 0 && q->offset == 0 && q->file == 0)
        off = log_since(d, name, nf, fds, sizes, q->since);
    int from = -1; /* the file to read, and where in it */
    long long at = 0;
    if (q->file > 0) {
        for (int i = nf - 1; i >= 0; i--) {
            if (inos[i] == q->file) {
                from = i;
                at = q->pos <= sizes[i] ? q->pos : 0; /* emptied in place: from its start */
                break;
            }
        }
        if (from >= 0) {
            off = at;
            for (int i = nf - 1; i > from; i--)
                off += sizes[i];
        }
    }
    if (from < 0) {
        at = off;
        from = 0; /* at the end: the current file */
        for (int i = nf - 1; i >= 0; i--) {
            if (at < sizes[i] || i == 0) {
                from = i;
                break;
            }
            at -= sizes[i];
        }
    }
    /* At the end of a rotated file: continue in the next, newer one. */
    while (from > 0 && at >= sizes[from]) {
        from--;
        at = 0;
    }
    rep->raw = NULL;
    rep->rawlen = 0;
    rep->offset = off;
    int failed = 0, e = 0;
    if (at < sizes[from]) {
        size_t want =
            (size_t)(sizes[from] - at) < LOG_CHUNK ? (size_t)(sizes[from] - at) : LOG_CHUNK;
        rep->raw = malloc(want + 1);
        ssize_t got = rep->raw ? pread(fds[from], rep->raw, want, at) : -1;
        if (got < 0) {
            e = rep->raw ? errno : ENOMEM;
            failed = 1;
            gm_workload_log_file(d, name, from, path, sizeof(path));
        } else {
            rep->rawlen = (size_t)got;
            rep->offset = off + got;
            at += got;
        }
    }
    if (inos[from] > 0) {
        rep->log_file = inos[from];
        rep->log_pos = at;
    }
    for (int i = 0; i < nf; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (failed) {
        free(rep->raw);
        rep->raw = NULL;
        rep->rawlen = 0;
        reply_err(rep, GM_EIO, "reading %s: %s", path, strerror(e));
    }
}

static void get_events(struct gm_daemon *d, const struct gm_call *c, struct gm_reply *rep)
{
    const struct events_query *q = c->query;
    struct gm_event *ev = NULL;
    size_t n = 0;
    struct gm_error err;
    pthread_mutex_lock(&d->lock);
    int rc = gm_store_event_list(d->store, q->since, (int)q->limit, &ev, &n, &err);
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

/* ---- The route table --------------------------------------------------------------------- */

#define BODY(spec, T)  .body = &spec, .body_size = sizeof(T)
#define QUERY(spec, T) .query = &spec, .query_size = sizeof(T)

static const struct gm_route routes[] = {
    {"GET", "/v1/info", get_info,
     .answer = "`{\"version\", \"pid\", \"driver\": {...}, "
               "\"state_dir\", \"run_dir\", \"hostname\", "
               "\"gpus_lost\": [{\"index\", \"uuid\", \"error\"}], "
               "\"gpusim\"?: {\"state_file\", \"library_dir\", \"default_state\"}}` "
               "(`gpusim` with the simulated driver only: where NVML tools find its device)"},
    {"GET", "/v1/gpus", get_gpus,
     .answer = "`{\"hostname\", \"timestamp\", \"driver\", "
               "\"gpus\": [GPU]}`"},
    {"GET", "/v1/gpus/{id}", get_gpu, .answer = "GPU"},
    {"POST", "/v1/gpus/{id}/mode", post_gpu_mode, BODY(mode_spec, struct mode_req),
     .answer = "GPU, plus `\"messages\"`: what was done, one line each", .perm = GM_PERM_ADMIN,
     .action = "change the sharing mode of GPU"},
    {"GET", "/v1/mps", get_mps, .answer = "`{\"gpus\": [MPS status]}`"},
    {"POST", "/v1/mps/start", post_mps_start, BODY(mps_start_spec, struct mps_req),
     .answer = "`{\"messages\", \"gpus\": [MPS status]}`", .perm = GM_PERM_ADMIN,
     .action = "start MPS"},
    {"POST", "/v1/mps/stop", post_mps_stop, BODY(mps_stop_spec, struct mps_req),
     .answer = "`{\"messages\", \"gpus\": [MPS status]}`", .perm = GM_PERM_ADMIN,
     .action = "stop MPS"},
    {"GET", "/v1/vms", get_vms, .answer = "`{\"vms\": [VM]}`"},
    {"POST", "/v1/vms", post_vm, BODY(vm_spec, struct vm_req),
     .answer = "`201` VM, with `passthrough`: its IOMMU group, functions, QEMU arguments and "
               "libvirt XML (null when only the claim was recorded)",
     .perm = GM_PERM_ADMIN, .action = "give a GPU to a VM"},
    {"GET", "/v1/vms/{name}", get_vm, .answer = "VM"},
    {"DELETE", "/v1/vms/{name}", delete_vm, QUERY(vm_detach_spec, struct vm_detach_query),
     .answer = "the VM that was detached, with `returned`: its functions and the drivers they "
               "are on again",
     .perm = GM_PERM_ADMIN, .action = "take its GPU back from VM"},
    {"GET", "/v1/workloads", get_workloads, .answer = "`{\"workloads\": [Workload]}`"},
    {"POST", "/v1/workloads", post_workload, BODY(run_spec, struct gm_run_request),
     .answer = "`201` Workload (it runs as the caller)", .perm = GM_PERM_MEMBER,
     .action = "create workloads"},
    {"GET", "/v1/workloads/{name}", get_workload, .answer = "Workload"},
    {"DELETE", "/v1/workloads/{name}", delete_workload,
     .answer = "Workload as it was (a running one is stopped first)", .perm = GM_PERM_OWNER,
     .action = "delete"},
    {"POST", "/v1/workloads/{name}/stop", post_workload_stop, BODY(stop_spec, struct stop_req),
     .answer = "Workload (state `stopping` until its processes are gone)", .perm = GM_PERM_OWNER,
     .action = "stop"},
    {"POST", "/v1/workloads/{name}/start", post_workload_start,
     .answer = "Workload (it runs as its owner)", .perm = GM_PERM_OWNER, .action = "start"},
    {"POST", "/v1/workloads/{name}/limits", post_workload_limits,
     BODY(limits_spec, struct limits_req),
     .answer = "Workload, plus `\"messages\"`: whether the limits act now or at the next start",
     .perm = GM_PERM_OWNER, .action = "change the limits of"},
    {"GET", "/v1/workloads/{name}/logs", get_workload_logs,
     QUERY(logs_query_spec, struct logs_query),
     .answer = "the log from byte `offset` as `text/plain` (the kept log: rotated files oldest "
               "first, then the current one; at most 1 MiB an answer); header `X-Gpumux-Offset` "
               "is the offset to ask for next, `X-Gpumux-Log-At: FILE:POS` the `file` and `pos` "
               "to ask for next, which stay right when a rotation removes the oldest file",
     .perm = GM_PERM_SECRET, .action = "read the log of"},
    {"POST", "/v1/apply", post_apply, BODY(apply_spec, struct gm_apply_req),
     .answer = "`{\"messages\"}`: one line per workload, created, unchanged or deleted (a "
               "manifest that cannot be applied as a whole changes nothing and is refused)",
     .perm = GM_PERM_MEMBER, .action = "apply manifests"},
    {"POST", "/v1/apply/delete", post_apply_delete, BODY(apply_spec, struct gm_apply_req),
     .answer = "`{\"messages\"}`: the workloads of the manifest's objects that were deleted",
     .perm = GM_PERM_MEMBER, .action = "delete what manifests made"},
    {"GET", "/v1/deployments", get_deployments,
     .answer = "`{\"deployments\": [Deployment]}`: each applied object, with `kind`, `format`, "
               "`generation`, `workloads` (names) and `not_enforced` (its fields gpumux accepts "
               "and does not act on)"},
    {"GET", "/v1/deployments/{kind}/{name}", get_deployments, .answer = "Deployment"},
    {"GET", "/v1/events", get_events, QUERY(events_query_spec, struct events_query),
     .answer = "`{\"events\": [Event]}`, oldest first"},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

const struct gm_route *gm_api_routes(size_t *n)
{
    *n = NROUTES;
    return routes;
}

/* Does the pattern match the request's path parts? Fills the {parameters}. */
static int route_match(const char *pattern, const struct gm_request *req,
                       const char *arg[GM_ROUTE_MAX_ARGS])
{
    const char *p = pattern + strlen("/v1");
    int nargs = 0, i = 0;
    while (*p == '/') {
        p++;
        size_t len = strcspn(p, "/");
        if (i >= req->nparts)
            return 0;
        if (p[0] == '{') {
            if (nargs < GM_ROUTE_MAX_ARGS)
                arg[nargs++] = req->parts[i];
        } else if (strlen(req->parts[i]) != len || strncmp(p, req->parts[i], len) != 0) {
            return 0;
        }
        i++;
        p += len;
    }
    return i == req->nparts;
}

static const char *query_param(void *ctx, const char *name)
{
    const struct gm_request *req = ctx;
    return req->query != NULL ? req->query(req->conn, name) : NULL;
}

static const struct gm_fields no_fields = {NULL, 0};

/* Every query parameter must be one of the route's, and given once. */
static int check_query_names(const struct gm_route *r, const struct gm_request *req,
                             struct gm_error *err)
{
    const char *names[32];
    if (req->query_names == NULL)
        return 0;
    size_t n = req->query_names(req->conn, names, 32);
    if (n > 32)
        return gm_err(err, GM_EINVAL, "%zu query parameters; at most 32", n);
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (r->query != NULL && k < r->query->n && strcmp(r->query->v[k].name, names[i]) != 0)
            k++;
        if (r->query == NULL || r->query->n == 0)
            return gm_err(err, GM_EINVAL,
                          "unknown query parameter '%s' (this request takes no parameters)",
                          names[i]);
        if (k == r->query->n) {
            char list[256] = "";
            for (k = 0; k < r->query->n; k++) {
                size_t used = strlen(list);
                snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "",
                         r->query->v[k].name);
            }
            return gm_err(err, GM_EINVAL, "unknown query parameter '%s' (known parameters: %s)",
                          names[i], list);
        }
        for (k = 0; k < i; k++)
            if (strcmp(names[k], names[i]) == 0)
                return gm_err(err, GM_EINVAL, "query parameter '%s' is given more than once",
                              names[i]);
    }
    return 0;
}

/* The route's permission, for this caller on this target (perm.h). OWNER and SECRET routes
 * name a workload: its recorded owner decides. A workload that does not exist has no owner,
 * and its handler answers 404. */
static int check_perm(struct gm_daemon *d, const struct gm_route *r, const struct gm_call *c,
                      struct gm_error *err)
{
    struct gm_perm_groups g = {d->cfg.api_group, d->cfg.admin_group};
    struct gm_perm_target t = {.action = r->action, .owner_uid = -1};
    char object[128] = "", owner[64] = "";
    if (r->perm == GM_PERM_READ || c->who->uid == 0)
        return 0;
    if (r->perm == GM_PERM_OWNER || r->perm == GM_PERM_SECRET) {
        struct gm_workload_rec w;
        snprintf(object, sizeof(object), "workload %s", c->arg[0]);
        pthread_mutex_lock(&d->lock);
        int found = gm_store_workload_get(d->store, c->arg[0], &w, NULL) == 0;
        pthread_mutex_unlock(&d->lock);
        if (found) {
            t.owner_uid = w.uid;
            gm_user_name((uid_t)w.uid, owner, sizeof(owner));
            t.owner_name = owner;
            gm_workload_rec_free(&w);
        }
    } else if (c->arg[0] != NULL) {
        snprintf(object, sizeof(object), "%s", c->arg[0]);
    }
    t.object = object[0] ? object : NULL;
    return gm_perm_decide(r->perm, c->who, &t, &g, err);
}

static int parse_only;

void gm_api_set_parse_only(int on)
{
    parse_only = on;
}

static void dispatch(struct gm_daemon *d, const struct gm_route *r, struct gm_call *c,
                     struct gm_reply *rep)
{
    struct gm_fields_mem mem = {0};
    struct gm_error err = {0};
    struct gm_perm_groups g = {d->cfg.api_group, d->cfg.admin_group};
    struct gm_caller who;
    gm_caller_resolve(c->req->uid, c->req->gid, &g, &who);
    c->who = &who;
    if (check_perm(d, r, c, &err) < 0 || check_query_names(r, c->req, &err) < 0) {
        gm_api_error(rep, &err);
        return;
    }
    void *body = calloc(1, r->body_size ? r->body_size : 1);
    void *query = calloc(1, r->query_size ? r->query_size : 1);
    if (body == NULL || query == NULL)
        reply_err(rep, GM_ENOMEM, "out of memory");
    else if (gm_fields_parse(r->body ? r->body : &no_fields, c->req->body, body, &mem, &err) < 0 ||
             (r->query != NULL &&
              gm_fields_parse_text(r->query, query_param, (void *)c->req, query, &mem, &err) < 0))
        gm_api_error(rep, &err);
    else if (parse_only) {
        rep->json = json_pack("{s:s, s:s}", "method", r->method, "route", r->pattern);
    } else {
        c->body = body;
        c->query = query;
        r->handler(d, c, rep);
    }
    gm_fields_mem_free(&mem);
    free(body);
    free(query);
}

/* Does a request of this method go to a route of that method? HEAD is GET without the body. */
static int method_matches(const char *route, const char *asked)
{
    return strcmp(route, asked) == 0 || (strcmp(asked, "HEAD") == 0 && strcmp(route, "GET") == 0);
}

void gm_api_handle(struct gm_daemon *d, const struct gm_request *req, struct gm_reply *rep)
{
    char allow[64] = "";
    for (size_t i = 0; i < NROUTES; i++) {
        struct gm_call c = {.req = req};
        if (!route_match(routes[i].pattern, req, c.arg))
            continue;
        if (method_matches(routes[i].method, req->method)) {
            dispatch(d, &routes[i], &c, rep);
            return;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof(allow) - used, "%s%s%s", used ? ", " : "", routes[i].method,
                 strcmp(routes[i].method, "GET") == 0 ? ", HEAD" : "");
    }
    if (allow[0] == '\0') {
        reply_err(rep, GM_ENOTFOUND, "no such API path: %s %s", req->method, req->path);
        return;
    }
    /* A known path asked with the wrong method: 405 and the methods it has. */
    reply_err(rep, GM_EINVAL, "method %s is not allowed on %s (allowed: %s)", req->method,
              req->path, allow);
    json_object_set_new(json_object_get(rep->json, "error"), "code",
                        json_string("method_not_allowed"));
    rep->status = 405;
    snprintf(rep->allow, sizeof(rep->allow), "%s", allow);
}

/* ---- docs/api.md ------------------------------------------------------------------------- */

static void describe_fields(FILE *out, const char *title, const struct gm_fields *spec)
{
    fprintf(out, "\n%s\n\n| field | type | required | meaning |\n|---|---|---|---|\n", title);
    for (size_t i = 0; i < spec->n; i++) {
        const struct gm_field *f = &spec->v[i];
        char type[256];
        gm_field_type_text(f, type, sizeof(type));
        fprintf(out, "| `%s` | %s | %s | %s |\n", f->name, type, f->required ? "yes" : "no",
                f->doc);
    }
}

void gm_api_describe(FILE *out)
{
    fprintf(out, "| method and path | who may | body | query | answer |\n"
                 "|---|---|---|---|---|\n");
    for (size_t i = 0; i < NROUTES; i++) {
        const struct gm_route *r = &routes[i];
        char body[512] = "", query[256] = "";
        for (size_t k = 0; r->body != NULL && k < r->body->n; k++) {
            size_t used = strlen(body);
            snprintf(body + used, sizeof(body) - used, "%s`%s`%s", k ? ", " : "",
                     r->body->v[k].name, r->body->v[k].required ? "" : "?");
        }
        for (size_t k = 0; r->query != NULL && k < r->query->n; k++) {
            size_t used = strlen(query);
            snprintf(query + used, sizeof(query) - used, "%s`%s`%s", k ? ", " : "",
                     r->query->v[k].name, r->query->v[k].required ? "" : "?");
        }
        fprintf(out, "| `%s %s` | %s | %s | %s | %s |\n", r->method, r->pattern,
                gm_perm_name(r->perm), body, query, r->answer);
    }
    for (size_t i = 0; i < NROUTES; i++) {
        const struct gm_route *r = &routes[i];
        char title[160];
        if (r->body != NULL) {
            snprintf(title, sizeof(title), "`%s %s` body:", r->method, r->pattern);
            describe_fields(out, title, r->body);
        }
        if (r->query != NULL) {
            snprintf(title, sizeof(title), "`%s %s` query parameters:", r->method, r->pattern);
            describe_fields(out, title, r->query);
        }
    }
}
