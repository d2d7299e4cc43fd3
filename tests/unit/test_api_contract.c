/* The contract between the CLI and the daemon: every verb of GM_CLI_VERBS, with its typical
 * options, runs through gm_cli_main with its requests handed in-process to the real API
 * (gm_http_serve, gm_api_handle) of a daemon on gpusim in a temporary directory, so a request
 * the CLI sends can never be one the daemon refuses for its shape. Then the field specs'
 * refusals, checked on the handler directly, and docs/api.md against the route table. */
#include "cli/cli.h"
#include "cli/client.h"
#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/http.h"
#include "daemon/route.h"
#include "gpumux/region.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- A daemon on gpusim, without its HTTP server ----------------------------------------- */

static struct gm_daemon d;
static char dir[64];
static pthread_t poller;
static atomic_int polling;

/* The daemon's main loop: reconciliation notices exits and finishes stops. */
static void *poll_loop(void *arg)
{
    (void)arg;
    while (polling) {
        gm_reconcile(&d, 0);
        usleep(50000);
    }
    return NULL;
}

static void set(const char *key, const char *val)
{
    struct gm_error err = {0};
    cr_assert_eq(gm_config_set(&d.cfg, key, val, "test", &err), 0, "%s", err.msg);
}

/* Every exchange the CLI had with the API, for the assertions. */
struct exchange {
    char method[8], path[256];
    long status;
    char message[1024];
};
static struct exchange ex[256];
static size_t nex;

static char *urldecode(const char *s)
{
    char *out = malloc(strlen(s) + 1), *p = out;
    cr_assert_not_null(out);
    for (; *s; s++) {
        unsigned v;
        if (*s == '%' && sscanf(s + 1, "%2x", &v) == 1) {
            *p++ = (char)v;
            s += 2;
        } else {
            *p++ = *s;
        }
    }
    *p = '\0';
    return out;
}

/* The query string "a=1&b=2", split in place at '&' into len bytes of parameters. */
struct query {
    char *text;
    size_t len;
};

static struct query query_split(char *qs)
{
    struct query q = {.text = qs, .len = qs ? strlen(qs) : 0};
    for (char *p = qs; p != NULL && (p = strchr(p, '&')) != NULL;)
        *p++ = '\0';
    return q;
}

static const char *query_get(void *conn, const char *key)
{
    struct query *q = conn;
    size_t k = strlen(key);
    for (char *p = q->text; p != NULL && p < q->text + q->len; p += strlen(p) + 1)
        if (strncmp(p, key, k) == 0 && p[k] == '=')
            return p + k + 1;
    return NULL;
}

/* The CLI's transport: the request goes to the daemon's own request handling. */
static int in_process(void *arg, const char *socket, const char *method, const char *path,
                      const char *payload, size_t len, struct gm_cli_response *resp,
                      struct gm_error *err)
{
    (void)socket;
    (void)err;
    struct gm_daemon *dd = arg;
    char *copy = strdup(path), *qs = strchr(copy, '?');
    if (qs != NULL)
        *qs++ = '\0';
    struct query q = query_split(qs);
    char *url = urldecode(copy);
    struct gm_peer peer = {.uid = getuid(), .gid = getgid(), .pid = getpid()};
    struct gm_reply rep;
    gm_http_serve(dd, method, url, payload, len, &peer, query_get, &q, &rep);
    resp->status = rep.status;
    resp->offset = rep.offset;
    if (rep.json != NULL) {
        resp->body = json_dumps(rep.json, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        resp->body_len = strlen(resp->body);
    } else {
        resp->body = rep.raw != NULL ? rep.raw : calloc(1, 1);
        resp->body_len = rep.rawlen;
        resp->body[resp->body_len] = '\0';
    }
    if (nex < sizeof(ex) / sizeof(ex[0])) {
        struct exchange *e = &ex[nex++];
        snprintf(e->method, sizeof(e->method), "%s", method);
        snprintf(e->path, sizeof(e->path), "%s", url);
        e->status = rep.status;
        const char *m =
            json_string_value(json_object_get(json_object_get(rep.json, "error"), "message"));
        snprintf(e->message, sizeof(e->message), "%s", m ? m : "");
    }
    json_decref(rep.json);
    free(url);
    free(copy);
    return 0;
}

/* Kills what this test started (monitors, workloads, MPS daemons): they carry the tag. */
static void kill_tagged(void)
{
    char want[128];
    snprintf(want, sizeof(want), "GM_CONTRACT_TAG=%s", dir);
    DIR *proc = opendir("/proc");
    struct dirent *e;
    while (proc != NULL && (e = readdir(proc)) != NULL) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == getpid())
            continue;
        char path[64], buf[65536];
        snprintf(path, sizeof(path), "/proc/%d/environ", pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
            if (strcmp(buf + i, want) == 0) {
                kill(pid, SIGKILL);
                break;
            }
        }
    }
    if (proc != NULL)
        closedir(proc);
}

static void setup(void)
{
    const char *build = getenv("GM_BUILD_DIR");
    cr_assert_not_null(build, "GM_BUILD_DIR is not set");
    strcpy(dir, "/tmp/gm-contract-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    setenv("GM_CONTRACT_TAG", dir, 1);
    gm_log_set_level(GM_LOG_WARN);
    char path[PATH_MAX];
    struct gm_error err = {0};
    gm_config_defaults(&d.cfg);
    snprintf(path, sizeof(path), "%s/state", dir);
    mkdir(path, 0750);
    set("state_dir", path);
    snprintf(path, sizeof(path), "%s/run", dir);
    mkdir(path, 0755);
    set("run_dir", path);
    set("driver", "sim");
    set("poll_interval_ms", "50");
    set("stop_timeout", "3");
    /* Workload names repeat between test programs run at once: no shared cgroup parent. */
    set("cgroup_root", "none");
    snprintf(path, sizeof(path), "%s/bin", build);
    cr_assert_eq(gm_config_finish(&d.cfg, path, &err), 0, "%s", err.msg);
    unsetenv("GPUSIM_CONFIG");
    cr_assert_eq(gm_daemon_open(&d, path, &err), 0, "%s", err.msg);
    gm_reconcile(&d, 1);
    polling = 1;
    cr_assert_eq(pthread_create(&poller, NULL, poll_loop, NULL), 0);
    gm_cli_set_transport(in_process, &d);
}

static void teardown(void)
{
    gm_cli_set_transport(NULL, NULL);
    if (polling) {
        polling = 0;
        pthread_join(poller, NULL);
    }
    kill_tagged();
    gm_daemon_close(&d);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(contract, .init = setup, .fini = teardown, .timeout = 120);

/* ---- Running the CLI --------------------------------------------------------------------- */

static char *out_text, *err_text;
static char verbs_run[32][16];
static size_t nverbs_run;

/* gpumux ARGS... (NULL-terminated); the output lands in out_text and err_text. */
static int gm(const char *first, ...)
{
    char *argv[40];
    int argc = 0;
    argv[argc++] = strdup("gpumux");
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && argc < 39; a = va_arg(ap, const char *))
        argv[argc++] = strdup(a);
    va_end(ap);
    argv[argc] = NULL;
    size_t i = 0;
    while (i < nverbs_run && strcmp(verbs_run[i], first) != 0)
        i++;
    if (i == nverbs_run && nverbs_run < 32)
        snprintf(verbs_run[nverbs_run++], sizeof(verbs_run[0]), "%s", first);
    free(out_text);
    free(err_text);
    size_t olen, elen;
    FILE *out = open_memstream(&out_text, &olen), *err = open_memstream(&err_text, &elen);
    int rc = gm_cli_main(argc, argv, out, err);
    fclose(out);
    fclose(err);
    for (int k = 0; k < argc; k++)
        free(argv[k]);
    return rc;
}

/* No request since exchange `from` was refused for its shape: not 400 (invalid), not 405, not
 * "no such API path". */
static void assert_shapes_accepted(size_t from, const char *what)
{
    for (size_t i = from; i < nex; i++) {
        cr_assert(ex[i].status != 400 && ex[i].status != 405 &&
                      strstr(ex[i].message, "no such API path") == NULL &&
                      strstr(ex[i].message, "unknown field") == NULL,
                  "%s: %s %s was refused (%ld): %s", what, ex[i].method, ex[i].path, ex[i].status,
                  ex[i].message);
    }
}

/* gpumux ARGS... must succeed, and every request it made must have been answered 2xx. */
#define OK(...)                                                                                    \
    do {                                                                                           \
        size_t from_ = nex;                                                                        \
        int rc_ = gm(__VA_ARGS__, NULL);                                                           \
        assert_shapes_accepted(from_, #__VA_ARGS__);                                               \
        cr_assert_eq(rc_, 0, "gpumux %s: exit status %d\nstdout: %s\nstderr: %s", #__VA_ARGS__,    \
                     rc_, out_text, err_text);                                                     \
        for (size_t i_ = from_; i_ < nex; i_++)                                                    \
            cr_assert(ex[i_].status >= 200 && ex[i_].status < 300, "%s: %s %s answered %ld: %s",   \
                      #__VA_ARGS__, ex[i_].method, ex[i_].path, ex[i_].status, ex[i_].message);    \
    } while (0)

/* The answer of gpumux ARGS... -o json, parsed. */
static json_t *gm_json(const char *first, ...)
{
    const char *args[16] = {0};
    int n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && n < 13; a = va_arg(ap, const char *))
        args[n++] = a;
    va_end(ap);
    args[n++] = "-o";
    args[n++] = "json";
    args[n] = NULL;
    size_t from = nex;
    int rc = gm(args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8],
                args[9], args[10], args[11], args[12], args[13], args[14], NULL);
    assert_shapes_accepted(from, args[0]);
    cr_assert_eq(rc, 0, "gpumux %s -o json: %s", args[0], err_text);
    json_error_t jerr;
    json_t *j = json_loads(out_text, 0, &jerr);
    cr_assert_not_null(j, "gpumux %s -o json printed no JSON: %s", args[0], out_text);
    return j;
}

static int pattern_matches(const char *pattern, const char *path)
{
    while (*pattern && *path) {
        if (*pattern == '{') {
            pattern = strchr(pattern, '}') + 1;
            path += strcspn(path, "/");
        } else if (*pattern++ != *path++) {
            return 0;
        }
    }
    return *pattern == '\0' && *path == '\0';
}

static json_t *workload(const char *name)
{
    json_t *all = gm_json("ps", NULL), *w;
    size_t i;
    json_array_foreach(json_object_get(all, "workloads"), i, w)
    {
        if (strcmp(json_string_value(json_object_get(w, "name")), name) == 0) {
            json_incref(w);
            json_decref(all);
            return w;
        }
    }
    json_decref(all);
    return NULL;
}

static int has_env(int pid, const char *entry)
{
    char path[64], buf[65536];
    snprintf(path, sizeof(path), "/proc/%d/environ", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (strcmp(buf + i, entry) == 0)
            return 1;
    return 0;
}

/* ---- Every verb, through the real handler ------------------------------------------------ */

Test(contract, every_verb_is_accepted)
{
    OK("info");
    OK("gpu", "ls");
    OK("smi");
    OK("smi", "--query-gpu=index,name,memory.total", "--format=csv");
    OK("smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader");

    /* The defect this test was written for: --enforce strict was refused as unknown. */
    OK("run", "a", "--gpu", "0", "--compute", "30", "--memory", "1G", "--env", "K=V", "--restart",
       "on-failure", "--enforce", "strict", "--", "/bin/sleep", "30");
    json_t *a = workload("a");
    cr_assert_not_null(a);
    cr_assert_str_eq(json_string_value(json_object_get(a, "enforce")), "strict");
    cr_assert_str_eq(json_string_value(json_object_get(a, "restart")), "on-failure");
    cr_assert_eq(json_integer_value(json_object_get(a, "compute_pct")), 30);
    cr_assert_eq(json_integer_value(json_object_get(a, "memory_limit")), 1073741824);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "env"), "K")), "V");
    json_decref(a);
    /* ...and it reaches the workload. */
    int pid = 0;
    for (int tries = 0; tries < 100 && pid <= 0; tries++) {
        json_t *w = workload("a");
        pid = (int)json_integer_value(json_object_get(w, "pid"));
        json_decref(w);
        if (pid <= 0)
            usleep(20000);
    }
    cr_assert_gt(pid, 0, "workload a has no pid");
    cr_assert(has_env(pid, GM_REGION_STRICT_ENV "=strict"), "workload a lacks %s=strict",
              GM_REGION_STRICT_ENV);

    OK("run", "b", "--", "/bin/sleep", "30");
    OK("run", "c", "--gpu", "1", "--compute", "20", "--restart", "never", "--enforce",
       "best-effort", "--", "/bin/sleep", "30");
    json_t *c = workload("c");
    cr_assert_str_eq(json_string_value(json_object_get(c, "enforce")), "best-effort");
    json_decref(c);
    OK("ps");
    OK("ps", "-o", "json");
    OK("set", "a", "--compute", "40", "--memory", "2G");
    OK("set", "a", "--compute", "none");
    OK("set", "a", "--memory", "none");
    OK("logs", "a");
    OK("events");
    OK("events", "--since", "1");
    OK("stop", "a");
    for (int tries = 0; tries < 100; tries++) {
        json_t *w = workload("a");
        int done = strcmp(json_string_value(json_object_get(w, "state")), "stopped") == 0;
        json_decref(w);
        if (done)
            break;
        usleep(30000);
    }
    OK("start", "a");

    OK("gpu", "mode", "1", "mps", "--restart-workloads");
    OK("gpu", "mode", "1", "shared", "--stop-workloads");
    OK("mps", "start", "--gpu", "1", "--active-thread-percentage", "50", "--pinned-mem-limit",
       "2G");
    OK("mps", "status");
    OK("mps", "status", "--gpu", "1");
    OK("mps", "stop", "--gpu", "1", "--force");

    OK("vm", "attach", "vm1", "--gpu", "1");
    OK("vm", "ls");
    OK("vm", "detach", "vm1");
    OK("gpu", "mode", "1", "shared");

    OK("delete", "a", "b", "c");
    OK("mps", "start");
    OK("mps", "stop");
    OK("gpu", "mode", "0", "vm");
    OK("gpu", "mode", "0", "shared");

    /* Every verb was run... */
#define GM_CLI_X(name, summary) #name,
    static const char *const verbs[] = {GM_CLI_VERBS(GM_CLI_X)};
#undef GM_CLI_X
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        size_t k = 0;
        while (k < nverbs_run && strcmp(verbs_run[k], verbs[i]) != 0)
            k++;
        cr_assert_lt(k, nverbs_run, "verb %s is not covered by the contract test", verbs[i]);
    }
    /* ...and every route that changes state was reached through the CLI. */
    size_t nroutes;
    const struct gm_route *routes = gm_api_routes(&nroutes);
    for (size_t i = 0; i < nroutes; i++) {
        if (strcmp(routes[i].method, "GET") == 0)
            continue;
        size_t k = 0;
        while (k < nex && !(strcmp(ex[k].method, routes[i].method) == 0 &&
                            pattern_matches(routes[i].pattern, ex[k].path)))
            k++;
        cr_assert_lt(k, nex, "no CLI verb sends %s %s", routes[i].method, routes[i].pattern);
    }
}

/* ---- The field specs' refusals, on the handler directly ---------------------------------- */

static long call(const char *method, const char *path, const char *body, char *msg, size_t len)
{
    char *copy = strdup(path), *qs = strchr(copy, '?');
    if (qs != NULL)
        *qs++ = '\0';
    struct query q = query_split(qs);
    struct gm_peer peer = {.uid = getuid(), .gid = getgid(), .pid = getpid()};
    struct gm_reply rep;
    gm_http_serve(&d, method, copy, body, body ? strlen(body) : 0, &peer, query_get, &q, &rep);
    const char *m =
        json_string_value(json_object_get(json_object_get(rep.json, "error"), "message"));
    snprintf(msg, len, "%s", m ? m : "");
    json_decref(rep.json);
    free(rep.raw);
    free(copy);
    return rep.status;
}

#define REFUSED(status, message, method, path, body)                                               \
    do {                                                                                           \
        char msg_[1024];                                                                           \
        long st_ = call(method, path, body, msg_, sizeof(msg_));                                   \
        cr_expect_eq(st_, status, "%s %s %s: status %ld (%s)", method, path, body ? body : "",     \
                     st_, msg_);                                                                   \
        cr_expect_str_eq(msg_, message, "%s %s %s", method, path, body ? body : "");               \
    } while (0)

Test(contract, field_specs_refuse_clearly)
{
    REFUSED(400,
            "unknown field 'colour' (known fields: name, command, gpu, compute, memory, env, "
            "restart, enforce)",
            "POST", "/v1/workloads", "{\"name\":\"x\",\"command\":[\"true\"],\"colour\":\"red\"}");
    REFUSED(400, "unknown field 'now' (this request takes no fields)", "POST",
            "/v1/workloads/x/stop", "{\"now\": true}");
    REFUSED(400,
            "unknown field 'force' (known fields: gpu, active_thread_percentage, "
            "pinned_mem_limit, on_busy)",
            "POST", "/v1/mps/start", "{\"force\": true}");
    /* Wrong types. */
    REFUSED(400, "field 'name' must be a string", "POST", "/v1/workloads",
            "{\"name\": 5, \"command\": [\"true\"]}");
    REFUSED(400, "field 'command' must be a non-empty array of strings", "POST", "/v1/workloads",
            "{\"name\": \"x\", \"command\": \"true\"}");
    REFUSED(400, "field 'command' must be a non-empty array of strings", "POST", "/v1/workloads",
            "{\"name\": \"x\", \"command\": []}");
    REFUSED(400, "field 'command': element 1 is not a string", "POST", "/v1/workloads",
            "{\"name\": \"x\", \"command\": [\"true\", 1]}");
    REFUSED(400, "field 'compute' must be a string or an integer", "POST", "/v1/workloads",
            "{\"name\": \"x\", \"command\": [\"true\"], \"compute\": true}");
    REFUSED(400, "field 'env': K is not a string", "POST", "/v1/workloads",
            "{\"name\": \"x\", \"command\": [\"true\"], \"env\": {\"K\": 1}}");
    REFUSED(400, "field 'env' must be an object of strings", "POST", "/v1/workloads",
            "{\"name\": \"x\", \"command\": [\"true\"], \"env\": [\"K=V\"]}");
    REFUSED(400, "field 'force' must be true or false", "POST", "/v1/mps/stop",
            "{\"force\": \"yes\"}");
    REFUSED(400, "field 'mode' must be one of shared, mps, vm", "POST", "/v1/gpus/0/mode",
            "{\"mode\": 5}");
    /* Missing required fields. */
    REFUSED(400, "field 'name' (string) is required", "POST", "/v1/vms", "{\"gpu\": \"0\"}");
    REFUSED(400, "field 'mode' (one of shared, mps, vm) is required", "POST", "/v1/gpus/0/mode",
            NULL);
    REFUSED(400, "field 'command' (non-empty array of strings) is required", "POST",
            "/v1/workloads", "{\"name\": \"x\"}");
    /* Values out of range or not among the names: the CLI's option names, as before. */
    REFUSED(400, "--compute: 101 is out of range (1..100)", "POST", "/v1/workloads",
            "{\"name\": \"x\", \"command\": [\"true\"], \"compute\": 101}");
    REFUSED(400, "--compute: 0 is out of range (1..100)", "POST", "/v1/workloads/x/limits",
            "{\"compute\": \"0\"}");
    REFUSED(400, "--compute: 'abc' is not a whole number", "POST", "/v1/workloads",
            "{\"name\": \"x\", \"command\": [\"true\"], \"compute\": \"abc\"}");
    REFUSED(400,
            "--memory: '12X' is not a size (use a number with an optional unit K, M, G or T, for "
            "example 512M or 1.5G)",
            "POST", "/v1/workloads",
            "{\"name\": \"x\", \"command\": [\"true\"], \"memory\": \"12X\"}");
    REFUSED(400, "--restart 'sometimes': must be one of never, on-failure, always", "POST",
            "/v1/workloads",
            "{\"name\": \"x\", \"command\": [\"true\"], \"restart\": \"sometimes\"}");
    REFUSED(400, "--enforce 'hard': must be one of best-effort, strict", "POST", "/v1/workloads",
            "{\"name\": \"x\", \"command\": [\"true\"], \"enforce\": \"hard\"}");
    REFUSED(400, "mode 'turbo': must be one of shared, mps, vm", "POST", "/v1/gpus/0/mode",
            "{\"mode\": \"turbo\"}");
    REFUSED(400, "on_busy 'later': must be one of refuse, stop, restart", "POST", "/v1/gpus/0/mode",
            "{\"mode\": \"mps\", \"on_busy\": \"later\"}");
    REFUSED(400, "active thread percentage: 150 is out of range (1..100)", "POST", "/v1/mps/start",
            "{\"active_thread_percentage\": 150}");
    REFUSED(400, "limit: 0 is out of range (1..100000)", "GET", "/v1/events?limit=0", NULL);
    REFUSED(400, "since: 'x' is not a whole number", "GET", "/v1/events?since=x", NULL);
    /* Paths and methods. */
    REFUSED(404, "no such API path: GET /v1/nothing", "GET", "/v1/nothing", NULL);
    REFUSED(404, "no such API path: GET /v1/workloads/a/b/c", "GET", "/v1/workloads/a/b/c", NULL);
    REFUSED(405, "method DELETE is not allowed on /v1/gpus (allowed: GET)", "DELETE", "/v1/gpus",
            NULL);
    REFUSED(405, "method PUT is not allowed on /v1/workloads/x (allowed: GET, DELETE)", "PUT",
            "/v1/workloads/x", NULL);
    /* A refused request changed nothing. */
    char msg[1024];
    cr_expect_eq(call("GET", "/v1/workloads/x", NULL, msg, sizeof(msg)), 404, "%s", msg);
}

Test(contract, accepted_values_are_typed)
{
    /* Numbers and strings are both accepted where the spec says so, and mean the same. */
    char msg[1024];
    cr_assert_eq(call("POST", "/v1/workloads",
                      "{\"name\": \"n\", \"command\": [\"/bin/sleep\", \"30\"], \"gpu\": 0, "
                      "\"compute\": 25, \"memory\": 536870912, \"enforce\": \"strict\"}",
                      msg, sizeof(msg)),
                 201, "%s", msg);
    struct gm_workload_rec w;
    struct gm_error err;
    cr_assert_eq(gm_store_workload_get(d.store, "n", &w, &err), 0, "%s", err.msg);
    cr_expect_eq(w.compute_pct, 25);
    cr_expect_eq(w.memory_limit, 536870912ull);
    cr_expect(strstr(w.spec_json, "\"enforce\":\"strict\"") != NULL, "%s", w.spec_json);
    gm_workload_rec_free(&w);
    cr_assert_eq(call("POST", "/v1/workloads/n/limits",
                      "{\"compute\": \"none\", \"memory\": \"1G\"}", msg, sizeof(msg)),
                 200, "%s", msg);
    cr_assert_eq(gm_store_workload_get(d.store, "n", &w, &err), 0, "%s", err.msg);
    cr_expect_eq(w.compute_pct, 0);
    cr_expect_eq(w.memory_limit, 1073741824ull);
    gm_workload_rec_free(&w);
    /* Only memory given: compute stays as it is. */
    cr_assert_eq(call("POST", "/v1/workloads/n/limits", "{\"compute\": 10}", msg, sizeof(msg)), 200,
                 "%s", msg);
    cr_assert_eq(call("POST", "/v1/workloads/n/limits", "{\"memory\": \"none\"}", msg, sizeof(msg)),
                 200, "%s", msg);
    cr_assert_eq(gm_store_workload_get(d.store, "n", &w, &err), 0, "%s", err.msg);
    cr_expect_eq(w.compute_pct, 10);
    cr_expect_eq(w.memory_limit, 0);
    gm_workload_rec_free(&w);
    REFUSED(400, "workload n: give --compute, --memory or both", "POST", "/v1/workloads/n/limits",
            "{}");
    cr_assert_eq(call("DELETE", "/v1/workloads/n", NULL, msg, sizeof(msg)), 200, "%s", msg);
}

Test(contract, route_table_is_well_formed)
{
    size_t n;
    const struct gm_route *r = gm_api_routes(&n);
    for (size_t i = 0; i < n; i++) {
        struct gm_error err = {0};
        cr_expect(r[i].handler != NULL && r[i].answer != NULL, "%s %s", r[i].method, r[i].pattern);
        cr_expect_eq(strncmp(r[i].pattern, "/v1/", 4), 0, "%s", r[i].pattern);
        if (r[i].body != NULL)
            cr_expect_eq(gm_fields_check(r[i].body, &err), 0, "%s %s body: %s", r[i].method,
                         r[i].pattern, err.msg);
        if (r[i].query != NULL)
            cr_expect_eq(gm_fields_check(r[i].query, &err), 0, "%s %s query: %s", r[i].method,
                         r[i].pattern, err.msg);
        for (size_t k = 0; k < i; k++)
            cr_expect(strcmp(r[k].method, r[i].method) != 0 ||
                          strcmp(r[k].pattern, r[i].pattern) != 0,
                      "%s %s is in the table twice", r[i].method, r[i].pattern);
    }
}

/* docs/api.md's endpoint section is the route table's description, generated. */
Test(contract, docs_match_the_route_table)
{
    const char *src = getenv("GM_SOURCE_DIR"), *build = getenv("GM_BUILD_DIR");
    cr_assert_not_null(src, "GM_SOURCE_DIR is not set");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/docs/api.md", src);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char doc[1 << 17];
    size_t n = fread(doc, 1, sizeof(doc) - 1, f);
    fclose(f);
    doc[n] = '\0';
    static const char begin[] = "<!-- BEGIN ROUTES (generated from src/daemon/api.c) -->\n";
    static const char end[] = "<!-- END ROUTES -->";
    char *b = strstr(doc, begin), *e = b ? strstr(b, end) : NULL;
    cr_assert(b != NULL && e != NULL, "docs/api.md lacks the markers of the route section");
    b += strlen(begin);
    *e = '\0';
    char *gen = NULL;
    size_t glen;
    FILE *g = open_memstream(&gen, &glen);
    gm_api_describe(g);
    fclose(g);
    if (strcmp(b, gen) != 0) {
        snprintf(path, sizeof(path), "%s/api-routes.md", build);
        FILE *w = fopen(path, "w");
        if (w != NULL) {
            fputs(gen, w);
            fclose(w);
        }
    }
    cr_expect_str_eq(b, gen,
                     "docs/api.md's route section differs from the route table; the generated "
                     "text is in %s: put it between the markers",
                     path);
    free(gen);
}
