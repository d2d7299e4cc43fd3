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

#include "docsync.h"
#include "procenv.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <grp.h>
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

static size_t query_names(void *conn, const char **names, size_t max)
{
    static char keys[32][64];
    struct query *q = conn;
    size_t n = 0;
    for (char *p = q->text; p != NULL && p < q->text + q->len; p += strlen(p) + 1, n++) {
        if (n < max && n < 32) {
            snprintf(keys[n], sizeof(keys[n]), "%.*s", (int)strcspn(p, "="), p);
            names[n] = keys[n];
        }
    }
    return n;
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
    gm_http_serve(dd, method, url, payload, len, &peer, query_get, query_names, &q, &rep);
    resp->status = rep.status;
    resp->offset = rep.offset;
    resp->log_file = rep.log_file;
    resp->log_pos = rep.log_pos;
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
    /* Its own device, not gpusim's default file that other daemons and tools share. */
    snprintf(path, sizeof(path), "%s/run/gpusim.state", dir);
    set("gpusim_state", path);
    snprintf(path, sizeof(path), "%s/logs", dir);
    set("log_dir", path);
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
    return gm_test_has_env(pid, entry) == 1;
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
    /* stop waits until it has stopped: a start right after it finds it stopped. */
    OK("stop", "a");
    {
        json_t *w = workload("a");
        const char *st = json_string_value(json_object_get(w, "state"));
        cr_expect(st != NULL && strcmp(st, "stopped") == 0, "after stop: %s", st ? st : "(none)");
        json_decref(w);
    }
    OK("start", "a");
    OK("restart", "-t", "1", "a");

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

    /* apply -f, get, describe and delete -f, with a Pod that runs as a process. */
    char manifest[] = "/tmp/gm-contract-XXXXXX.yaml";
    int mfd = mkstemps(manifest, 5);
    cr_assert_geq(mfd, 0);
    static const char pod[] = "apiVersion: v1\nkind: Pod\nmetadata: {name: m1}\nspec:\n"
                              "  containers:\n  - name: c\n    command: [/bin/sleep, \"30\"]\n";
    cr_assert_eq(write(mfd, pod, sizeof(pod) - 1), (ssize_t)(sizeof(pod) - 1));
    close(mfd);
    OK("apply", "-f", manifest, "--dry-run");
    OK("apply", "-f", manifest);
    OK("get", "pods");
    OK("get", "all", "-o", "json");
    OK("describe", "pod/m1");
    OK("delete", "-f", manifest);
    unlink(manifest);

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

/* One request as the user uid (group gid) straight to the API; the answer's error message in
 * msg, its JSON in *json when json is not NULL (the caller's then), its text in *raw likewise. */
static long call_as(uid_t uid, gid_t gid, const char *method, const char *path, const char *body,
                    char *msg, size_t len, json_t **json, char **raw)
{
    char *copy = strdup(path), *qs = strchr(copy, '?');
    if (qs != NULL)
        *qs++ = '\0';
    struct query q = query_split(qs);
    struct gm_peer peer = {.uid = uid, .gid = gid, .pid = getpid()};
    struct gm_reply rep;
    gm_http_serve(&d, method, copy, body, body ? strlen(body) : 0, &peer, query_get, query_names,
                  &q, &rep);
    const char *m =
        json_string_value(json_object_get(json_object_get(rep.json, "error"), "message"));
    snprintf(msg, len, "%s", m ? m : "");
    if (json != NULL)
        *json = rep.json;
    else
        json_decref(rep.json);
    if (raw != NULL)
        *raw = rep.raw;
    else
        free(rep.raw);
    free(copy);
    return rep.status;
}

static long call(const char *method, const char *path, const char *body, char *msg, size_t len)
{
    return call_as(getuid(), getgid(), method, path, body, msg, len, NULL, NULL);
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
            "restart, restart_max, auto_remove, enforce)",
            "POST", "/v1/workloads", "{\"name\":\"x\",\"command\":[\"true\"],\"colour\":\"red\"}");
    REFUSED(400, "unknown field 'now' (this request takes no fields)", "POST",
            "/v1/workloads/x/start", "{\"now\": true}");
    REFUSED(400, "unknown field 'now' (known fields: time)", "POST", "/v1/workloads/x/stop",
            "{\"now\": true}");
    REFUSED(400, "--time: 3601 is out of range (0..3600)", "POST", "/v1/workloads/x/stop",
            "{\"time\": 3601}");
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
    REFUSED(405, "method DELETE is not allowed on /v1/gpus (allowed: GET, HEAD)", "DELETE",
            "/v1/gpus", NULL);
    REFUSED(405, "method PUT is not allowed on /v1/workloads/x (allowed: GET, HEAD, DELETE)", "PUT",
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
    gm_test_doc_section("docs/api.md", "<!-- BEGIN ROUTES (generated from src/daemon/api.c) -->\n",
                        "<!-- END ROUTES -->", gm_api_describe, "api.md",
                        "the route table in src/daemon/api.c");
}

/* ---- Small input defects: each once read silently or answered wrongly ---------------------- */

#define REFUSED_LIKE(status, part, method, path, body)                                             \
    do {                                                                                           \
        char msg_[1024];                                                                           \
        long st_ = call(method, path, body, msg_, sizeof(msg_));                                   \
        cr_expect_eq(st_, status, "%s %s: status %ld (%s)", method, path, st_, msg_);              \
        cr_expect(strstr(msg_, part) != NULL, "%s %s: '%s' lacks '%s'", method, path, msg_, part); \
    } while (0)

Test(contract, small_input_defects_are_refused)
{
    /* A member given twice: which one counts was jansson's choice (the last). */
    REFUSED_LIKE(400, "duplicate object key", "POST", "/v1/workloads",
                 "{\"name\": \"x\", \"name\": \"y\", \"command\": [\"/bin/true\"]}");
    /* A decoded %00 (which the transport turns into 0x7f) or another control character. */
    REFUSED_LIKE(400, "control character or NUL (%00)", "GET",
                 "/v1/workloads/a\x7f"
                 "b",
                 NULL);
    REFUSED_LIKE(400, "control character", "POST", "/v1/workloads/a\nb/stop", NULL);
    /* Query parameters: unknown, twice, not numbers, out of range, overflowing. */
    REFUSED(400, "unknown query parameter 'limt' (known parameters: since, limit)", "GET",
            "/v1/events?limt=3", NULL);
    REFUSED(400, "query parameter 'since' is given more than once", "GET",
            "/v1/events?since=1&since=2", NULL);
    REFUSED(400, "unknown query parameter 'x' (this request takes no parameters)", "GET",
            "/v1/workloads?x=1", NULL);
    REFUSED(400, "since: 'abc' is not a whole number", "GET", "/v1/events?since=abc", NULL);
    REFUSED(400, "since: '1\x7f' is not a whole number", "GET", "/v1/events?since=1\x7f", NULL);
    REFUSED(400, "limit: -1 is out of range (1..100000)", "GET", "/v1/events?limit=-1", NULL);
    REFUSED(400, "offset: '99999999999999999999' is not a whole number", "GET",
            "/v1/workloads/x/logs?offset=99999999999999999999", NULL);
    /* Hexadecimal sizes were 16 bytes. */
    REFUSED(
        400,
        "--memory: '0x10' is hexadecimal; give the size in decimal, with an optional unit K, "
        "M, G or T (for example 512M)",
        "POST", "/v1/workloads",
        "{\"name\": \"x\", \"command\": [\"/bin/true\"], \"gpu\": \"0\", \"memory\": \"0x10\"}");
    /* An environment execve cannot take was a 500 from the launch. */
    size_t big = 200000;
    char *body = malloc(4 * big);
    cr_assert_not_null(body);
    int n =
        snprintf(body, 128, "{\"name\": \"x\", \"command\": [\"/bin/true\"], \"env\": {\"K\": \"");
    memset(body + n, 'v', big);
    strcpy(body + n + big, "\"}}");
    REFUSED(400,
            "workload x: --env K is 200002 bytes; one variable (NAME=value) may be at most 131071 "
            "bytes",
            "POST", "/v1/workloads", body);
    /* Many variables: the whole environment is limited too. */
    char *p = body + sprintf(body, "{\"name\": \"x\", \"command\": [\"/bin/true\"], \"env\": {");
    for (int i = 0; i < 3; i++)
        p += sprintf(p, "%s\"K%d\": \"%0100000d\"", i ? ", " : "", i, 0);
    strcpy(p, "}}");
    REFUSED_LIKE(400, "at most 262144 bytes in all", "POST", "/v1/workloads", body);
    free(body);
    char msg[1024];
    cr_expect_eq(call("GET", "/v1/workloads/x", NULL, msg, sizeof(msg)), 404, "%s", msg);
    /* HEAD is GET without a body (the transport drops it), not 405. */
    cr_expect_eq(call("HEAD", "/v1/info", NULL, msg, sizeof(msg)), 200, "%s", msg);
    cr_expect_eq(call("HEAD", "/v1/workloads", NULL, msg, sizeof(msg)), 200, "%s", msg);
    cr_expect_eq(call("HEAD", "/v1/nothing", NULL, msg, sizeof(msg)), 404, "%s", msg);
}

/* ---- Who may act on whose workloads --------------------------------------------------------- */

#define STRANGER 4012345 /* no such user: in no group */
#define MEMBERU  4012346 /* no such user, primary group 0: in the API group once it is gid 0's */

static long as(uid_t uid, const char *method, const char *path, const char *body, char *msg,
               json_t **json, char **raw)
{
    return call_as(uid, uid == MEMBERU ? 0 : uid, method, path, body, msg, 1024, json, raw);
}

static const char *state(const char *name)
{
    static char st[32];
    char msg[1024];
    json_t *j = NULL;
    call_as(0, 0, "GET", "/v1/workloads/x", NULL, msg, sizeof(msg), NULL, NULL);
    char path[128];
    snprintf(path, sizeof(path), "/v1/workloads/%s", name);
    call_as(0, 0, "GET", path, NULL, msg, sizeof(msg), &j, NULL);
    snprintf(st, sizeof(st), "%s", json_string_value(json_object_get(j, "state")) ?: "?");
    json_decref(j);
    return st;
}

static int pid_of(const char *name)
{
    char path[128], msg[1024];
    snprintf(path, sizeof(path), "/v1/workloads/%s", name);
    for (int tries = 0; tries < 200; tries++) {
        json_t *j = NULL;
        call_as(0, 0, "GET", path, NULL, msg, sizeof(msg), &j, NULL);
        int pid = (int)json_integer_value(json_object_get(j, "pid"));
        json_decref(j);
        if (pid > 0)
            return pid;
        usleep(20000);
    }
    return 0;
}

static long uid_of_pid(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long uid = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "Uid: %ld", &uid) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return uid;
}

Test(contract, owners_secrets_and_admin_actions)
{
    if (getuid() != 0)
        cr_skip_test("workloads of other users need root");
    char msg[1024];
    json_t *j = NULL;
    char *raw = NULL;
    /* The API group is gid 0's group, so that MEMBERU is a member without a user of its own. */
    char group[64];
    struct group *gr = getgrgid(0);
    cr_assert_not_null(gr);
    snprintf(group, sizeof(group), "%s", gr->gr_name);
    snprintf(d.cfg.api_group, sizeof(d.cfg.api_group), "%s", group);

    cr_assert_eq(as(0, "POST", "/v1/workloads",
                    "{\"name\": \"rootw\", \"command\": [\"/bin/sh\", \"-c\", \"echo root-secret; "
                    "exec sleep 30\"], \"env\": {\"DB_PASSWORD\": \"hunter2\"}}",
                    msg, NULL, NULL),
                 201, "%s", msg);
    cr_assert_gt(pid_of("rootw"), 0);

    /* A member may not change root's workload, and nothing changes. */
    static const char *const changes[][3] = {
        {"POST", "/v1/workloads/rootw/stop", NULL},
        {"POST", "/v1/workloads/rootw/start", NULL},
        {"DELETE", "/v1/workloads/rootw", NULL},
        {"POST", "/v1/workloads/rootw/limits", "{\"memory\": \"1G\"}"},
    };
    static const char *const verbs[] = {"stop", "start", "delete", "change the limits of"};
    for (size_t i = 0; i < 4; i++) {
        char want[512];
        snprintf(want, sizeof(want),
                 "permission denied: user uid %d (uid %d) may not %s workload rootw of user root "
                 "(uid 0): only its owner or root may",
                 MEMBERU, MEMBERU, verbs[i]);
        cr_expect_eq(as(MEMBERU, changes[i][0], changes[i][1], changes[i][2], msg, NULL, NULL), 403,
                     "%s %s: %s", changes[i][0], changes[i][1], msg);
        cr_expect_str_eq(msg, want);
        /* A user outside the group is refused by the group rule. */
        cr_expect_eq(as(STRANGER, changes[i][0], changes[i][1], changes[i][2], msg, NULL, NULL),
                     403);
        cr_expect(strstr(msg, "may only read; changes need root or membership of group") != NULL,
                  "%s", msg);
    }
    cr_expect_str_eq(state("rootw"), "running");

    /* Reads stay open, secrets do not. */
    for (uid_t u = MEMBERU; u <= MEMBERU; u++) {
        cr_expect_eq(as(u, "GET", "/v1/workloads/rootw", NULL, msg, &j, NULL), 200, "%s", msg);
        cr_expect_str_eq(
            json_string_value(json_object_get(json_object_get(j, "env"), "DB_PASSWORD")),
            "<redacted>");
        cr_expect(json_is_null(json_object_get(j, "log_path")));
        json_decref(j);
    }
    cr_expect_eq(as(STRANGER, "GET", "/v1/workloads", NULL, msg, &j, NULL), 200, "%s", msg);
    char *text = json_dumps(j, 0);
    cr_expect(strstr(text, "hunter2") == NULL && strstr(text, "<redacted>") != NULL, "%s", text);
    free(text);
    json_decref(j);
    cr_expect_eq(as(STRANGER, "GET", "/v1/workloads/rootw/logs", NULL, msg, NULL, &raw), 403);
    cr_expect(raw == NULL || strstr(raw, "root-secret") == NULL);
    cr_expect(strstr(msg, "may not read the log of workload rootw of user root (uid 0)") != NULL,
              "%s", msg);
    free(raw);
    raw = NULL;
    /* Root sees them. */
    cr_expect_eq(as(0, "GET", "/v1/workloads/rootw", NULL, msg, &j, NULL), 200);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "env"), "DB_PASSWORD")),
                     "hunter2");
    json_decref(j);

    /* A member's own workload runs as the member and is the member's to use. */
    cr_expect_eq(as(MEMBERU, "POST", "/v1/workloads",
                    "{\"name\": \"memw\", \"command\": [\"/bin/sleep\", \"30\"], \"env\": "
                    "{\"TOKEN\": \"t0k\"}}",
                    msg, NULL, NULL),
                 201, "%s", msg);
    int pid = pid_of("memw");
    cr_assert_gt(pid, 0);
    cr_expect_eq(uid_of_pid(pid), MEMBERU);
    cr_expect_eq(as(MEMBERU, "GET", "/v1/workloads/memw", NULL, msg, &j, NULL), 200);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "env"), "TOKEN")), "t0k");
    json_decref(j);
    cr_expect_eq(as(MEMBERU, "GET", "/v1/workloads/memw/logs", NULL, msg, NULL, &raw), 200, "%s",
                 msg);
    free(raw);
    raw = NULL;
    cr_expect_eq(as(STRANGER, "POST", "/v1/workloads/memw/stop", NULL, msg, NULL, NULL), 403);
    cr_expect_eq(as(MEMBERU, "POST", "/v1/workloads/memw/stop", NULL, msg, NULL, NULL), 200, "%s",
                 msg);
    for (int tries = 0; tries < 200 && strcmp(state("memw"), "stopped") != 0; tries++)
        usleep(20000);
    cr_expect_str_eq(state("memw"), "stopped");
    /* Root starts it again: it runs as its owner, not as root. */
    cr_expect_eq(as(0, "POST", "/v1/workloads/memw/start", NULL, msg, NULL, NULL), 200, "%s", msg);
    pid = pid_of("memw");
    cr_assert_gt(pid, 0);
    cr_expect_eq(uid_of_pid(pid), MEMBERU);

    /* GPU modes, MPS and VM claims: root only unless an admin group is configured. */
    static const char *const admin[][3] = {
        {"POST", "/v1/gpus/1/mode", "{\"mode\": \"mps\"}"},
        {"POST", "/v1/mps/start", "{\"gpu\": \"1\"}"},
        {"POST", "/v1/mps/stop", "{\"gpu\": \"1\"}"},
        {"POST", "/v1/vms", "{\"name\": \"vm1\", \"gpu\": \"1\"}"},
        {"DELETE", "/v1/vms/vm1", NULL},
    };
    for (size_t i = 0; i < 5; i++) {
        cr_expect_eq(as(MEMBERU, admin[i][0], admin[i][1], admin[i][2], msg, NULL, NULL), 403,
                     "%s %s: %s", admin[i][0], admin[i][1], msg);
        cr_expect(strstr(msg, "GPU modes, MPS and VM claims need root (no admin_group is "
                              "configured)") != NULL,
                  "%s", msg);
    }
    cr_expect_eq(as(0, "GET", "/v1/gpus/1", NULL, msg, &j, NULL), 200);
    cr_expect_str_eq(json_string_value(json_object_get(j, "mode")), "shared");
    json_decref(j);
    snprintf(d.cfg.admin_group, sizeof(d.cfg.admin_group), "%s", group);
    cr_expect_eq(
        as(MEMBERU, "POST", "/v1/vms", "{\"name\": \"vm1\", \"gpu\": \"1\"}", msg, NULL, NULL), 201,
        "%s", msg);
    cr_expect_eq(as(MEMBERU, "DELETE", "/v1/vms/vm1", NULL, msg, NULL, NULL), 200, "%s", msg);
    cr_expect_eq(
        as(STRANGER, "POST", "/v1/vms", "{\"name\": \"vm1\", \"gpu\": \"1\"}", msg, NULL, NULL),
        403);
    /* An admin is no owner: root's workload stays root's. */
    cr_expect_eq(as(MEMBERU, "POST", "/v1/workloads/rootw/stop", NULL, msg, NULL, NULL), 403);
    cr_expect_str_eq(state("rootw"), "running");
}
