/* gpumux apply -f FILE, gpumux delete -f FILE (delete.c hands -f here), gpumux get KIND and
 * gpumux describe KIND/NAME: manifests as kubectl takes them (docs/manifests.md). The file is
 * read here and sent as it is; the daemon parses it, so that what it says about a line and a
 * column is about the text the user wrote. */
#include "cli/cli.h"
#include "cli/client.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The largest manifest sent: the daemon refuses larger ones (GM_MANIFEST_MAX_BYTES). */
#define MANIFEST_MAX (512u << 10)

const char gm_cli_help_apply[] =
    "NAME\n"
    "    gpumux apply - create and update workloads from a manifest\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux apply -f FILE|- [--dry-run] [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Applies a Kubernetes YAML file (v1 Pod, batch/v1 Job, apps/v1 Deployment, several\n"
    "    documents in one file), an IoT Edge deployment manifest (JSON) or a gpumux manifest\n"
    "    (docs/manifests.md), as kubectl apply does: each object becomes one or more workloads\n"
    "    (a Deployment of N replicas NAME-0..NAME-N-1), created as the caller. The whole file is\n"
    "    admitted as one: when one workload cannot be placed (its GPU is a VM's, its memory does\n"
    "    not fit), nothing changes and the error names it. Applying a file again changes and\n"
    "    restarts nothing that did not change; a Deployment scaled from 2 to 3 replicas starts\n"
    "    one more, scaled down it deletes the extra ones. An IoT Edge manifest is the device's\n"
    "    whole module set: modules of an earlier one that it no longer lists are deleted.\n"
    "    A changed container of a running object is refused for now: delete -f, then apply.\n"
    "    Workloads with an image (containers) are refused for now: the command runs as a\n"
    "    process on the host when no image is given.\n"
    "\n"
    "OPTIONS\n"
    "    -f, --filename FILE\n"
    "        The manifest; - reads standard input. At most 512 KiB.\n"
    "    --dry-run\n"
    "        Say what would be done; change nothing.\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer: {\"messages\": \"...\"}.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 applied; 1 refused (the message names the file, the object and the field);\n"
    "    2 usage error, unreadable file or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux apply -f jobs.yaml\n"
    "    gpumux apply -f deployment.json --dry-run\n"
    "    gpumux delete -f jobs.yaml\n";

const char gm_cli_help_get[] =
    "NAME\n"
    "    gpumux get - list what manifests made, in the spirit of kubectl get\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux get pods|jobs|deployments|modules|workloads|all [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    pods lists the workloads of Pods, Jobs and Deployments with their phase (Pending,\n"
    "    Running, Completed, Failed, Stopped, Terminating) and reason; jobs, deployments and\n"
    "    modules list those objects with how many of their workloads are ready or done;\n"
    "    workloads (native manifests) and all list every applied object.\n"
    "\n"
    "OPTIONS\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's deployments with their workloads.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 listed; 2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux get jobs\n"
    "    gpumux get pods -o json\n";

const char gm_cli_help_describe[] =
    "NAME\n"
    "    gpumux describe - show one applied object and its workloads\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux describe KIND/NAME [-o table|json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Shows the object (job/cuda-sample1, deployment/web, module/sample1, workload/train):\n"
    "    its format, generation, workloads with phase, GPUs and limits, and the fields of the\n"
    "    manifest that gpumux accepts and does not act on (labels, probes, cpu limits), marked\n"
    "    not enforced.\n"
    "\n"
    "OPTIONS\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's deployment record with its workloads.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 shown; 1 no such object; 2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux describe job/cuda-sample1\n";

/* Reads path (- for standard input) whole; NULL with a message printed on failure. */
static char *read_manifest(struct gm_cli_ctx *ctx, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        fprintf(ctx->err, "gpumux: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf != NULL) {
        if (n == cap) {
            if (cap > MANIFEST_MAX)
                break;
            char *nb = realloc(buf, cap * 2 + 1);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (buf == NULL) {
        fprintf(ctx->err, "gpumux: %s: out of memory\n", path);
        return NULL;
    }
    if (bad) {
        fprintf(ctx->err, "gpumux: %s: read error\n", path);
        free(buf);
        return NULL;
    }
    if (n > MANIFEST_MAX) {
        fprintf(ctx->err, "gpumux: %s: larger than %u KiB, the most a manifest may be\n", path,
                MANIFEST_MAX >> 10);
        free(buf);
        return NULL;
    }
    if (memchr(buf, '\0', n) != NULL) {
        fprintf(ctx->err, "gpumux: %s: holds a NUL byte: not a text manifest\n", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int gm_cli_apply_file(struct gm_cli_ctx *ctx, const char *path, int dry_run, int remove)
{
    char *text = read_manifest(ctx, path);
    if (text == NULL)
        return GM_CLI_EXIT_USAGE;
    json_t *body = json_object();
    json_object_set_new(body, "file", json_string(path));
    json_t *m = json_string(text);
    free(text);
    if (m == NULL) {
        json_decref(body);
        fprintf(ctx->err, "gpumux: %s: not UTF-8 text\n", path);
        return GM_CLI_EXIT_USAGE;
    }
    json_object_set_new(body, "manifest", m);
    if (dry_run)
        json_object_set_new(body, "dry_run", json_true());
    int rc = gm_cli_call_show(ctx, "POST", remove ? "/v1/apply/delete" : "/v1/apply", body, NULL);
    json_decref(body);
    return rc;
}

int gm_cli_apply(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longs[] = {
        {"filename", required_argument, NULL, 'f'},
        {"dry-run", no_argument, NULL, 'n'},
        GM_CLI_COMMON_LONG,
        {0},
    };
    const char *file = NULL;
    int dry = 0, c;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT "f:", longs, NULL)) != -1) {
        if (c == 'f') {
            file = optarg;
        } else if (c == 'n') {
            dry = 1;
        } else {
            int r = gm_cli_common_option(ctx, c, argv, gm_cli_help_apply);
            if (r >= 0)
                return r;
        }
    }
    if (optind < argc)
        return gm_cli_usage(ctx, "unexpected argument '%s'", argv[optind]);
    if (file == NULL)
        return gm_cli_usage(ctx, "-f FILE is required (- for standard input)");
    return gm_cli_apply_file(ctx, file, dry, 0);
}

/* ---- get, describe --------------------------------------------------------------------- */

/* A workload's phase as kubectl shows a pod's, and why. */
static const char *phase_of(const json_t *w, char *why, size_t len)
{
    const char *st = gm_cli_jstr(w, "state", "");
    const char *reason = gm_cli_jstr(w, "reason", "");
    snprintf(why, len, "%s", reason);
    if (strcmp(st, "starting") == 0)
        return "Pending";
    if (strcmp(st, "running") == 0)
        return "Running";
    if (strcmp(st, "stopping") == 0)
        return "Terminating";
    if (strcmp(st, "stopped") == 0)
        return "Stopped";
    if (strcmp(st, "exited") == 0) {
        const json_t *code = json_object_get(w, "exit_code");
        if (json_is_integer(code) && json_integer_value(code) == 0)
            return "Completed";
        if (json_is_integer(code) && why[0] == '\0')
            snprintf(why, len, "exit code %lld", (long long)json_integer_value(code));
        return "Failed";
    }
    return st[0] ? st : "-";
}

static const json_t *find_workload(const json_t *ws, const char *name)
{
    size_t i;
    const json_t *w;
    json_array_foreach(ws, i, w)
    {
        if (strcmp(gm_cli_jstr(w, "name", ""), name) == 0)
            return w;
    }
    return NULL;
}

/* A deployment as -o json shows it: its workloads' names replaced by the workloads. */
static json_t *with_workloads(const json_t *d, const json_t *warr)
{
    json_t *o = json_deep_copy(d), *ws = json_array();
    size_t j;
    const json_t *n;
    json_array_foreach(json_object_get(d, "workloads"), j, n)
    {
        const json_t *w = find_workload(warr, json_string_value(n));
        if (w != NULL)
            json_array_append(ws, (json_t *)w);
    }
    json_object_set_new(o, "workloads", ws);
    return o;
}

static const char *kind_of_dep(const json_t *d)
{
    const char *k = gm_cli_jstr(d, "kind", "");
    return k[0] ? k : "?";
}

/* Which objects a KIND of `get` lists: by their kind's name, "" for all. */
static int lists(const char *what, const char *kind)
{
    if (strcmp(what, "") == 0)
        return 1;
    return strcasecmp(what, kind) == 0;
}

static int get_lists(struct gm_cli_ctx *ctx, json_t **deps, json_t **ws)
{
    int rc = gm_cli_call(ctx, "GET", "/v1/deployments", NULL, deps);
    if (rc != 0)
        return rc;
    rc = gm_cli_call(ctx, "GET", "/v1/workloads", NULL, ws);
    if (rc != 0)
        json_decref(*deps);
    return rc;
}

int gm_cli_get(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longs[] = {GM_CLI_COMMON_LONG, {0}};
    int c;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT, longs, NULL)) != -1) {
        int r = gm_cli_common_option(ctx, c, argv, gm_cli_help_get);
        if (r >= 0)
            return r;
    }
    static const char *const kinds[] = {"pods",    "jobs",      "deployments",
                                        "modules", "workloads", "all"};
    static const char *const kind1[] = {"", "Job", "Deployment", "module", "workload", ""};
    if (optind >= argc)
        return gm_cli_usage(ctx, "what to list: pods, jobs, deployments, modules, workloads, all");
    const char *what = argv[optind];
    size_t k = 0;
    for (; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        if (strcmp(what, kinds[k]) == 0 || strncmp(what, kinds[k], strlen(kinds[k]) - 1) == 0)
            break;
    if (k == sizeof(kinds) / sizeof(kinds[0]))
        return gm_cli_not_a_subcommand(ctx, "a get", what, kinds, k);
    if (optind + 1 < argc)
        return gm_cli_usage(ctx, "unexpected argument '%s'", argv[optind + 1]);
    json_t *deps, *wl;
    int rc = get_lists(ctx, &deps, &wl);
    if (rc != 0)
        return rc;
    const json_t *darr = json_object_get(deps, "deployments"),
                 *warr = json_object_get(wl, "workloads");
    if (ctx->output == GM_CLI_OUT_JSON) {
        json_t *out = json_array();
        size_t i;
        const json_t *d;
        json_array_foreach(darr, i, d)
        {
            if (k == 0 ? strcmp(kind_of_dep(d), "module") == 0 : !lists(kind1[k], kind_of_dep(d)))
                continue;
            json_array_append_new(out, with_workloads(d, warr));
        }
        gm_cli_print_json(ctx, out);
        json_decref(out);
    } else if (k == 0) {
        static const char *const h[] = {"NAME", "OBJECT", "PHASE", "RESTARTS", "GPU", "REASON"};
        struct gm_cli_table *t = gm_cli_table_new(6, h);
        size_t i;
        const json_t *d;
        json_array_foreach(darr, i, d)
        {
            if (strcmp(kind_of_dep(d), "module") == 0)
                continue;
            size_t j;
            const json_t *n;
            json_array_foreach(json_object_get(d, "workloads"), j, n)
            {
                const json_t *w = find_workload(warr, json_string_value(n));
                if (w == NULL)
                    continue;
                char why[256], restarts[32], gpus[128];
                const char *ph = phase_of(w, why, sizeof(why));
                gm_cli_jint(w, "restart_count", "0", restarts, sizeof(restarts));
                gm_cli_gpu_list(json_object_get(w, "gpus"), gpus, sizeof(gpus));
                const char *cells[] = {
                    gm_cli_jstr(w, "name", "?"), gm_cli_jstr(d, "name", "?"), ph, restarts, gpus,
                    why[0] ? why : NULL};
                gm_cli_table_add(t, cells);
            }
        }
        gm_cli_table_print(t, ctx->out);
        gm_cli_table_free(t);
    } else {
        static const char *const h[] = {"NAME",   "KIND",   "READY",     "DONE",
                                        "FAILED", "FORMAT", "GENERATION"};
        struct gm_cli_table *t = gm_cli_table_new(7, h);
        size_t i;
        const json_t *d;
        json_array_foreach(darr, i, d)
        {
            if (!lists(kind1[k], kind_of_dep(d)))
                continue;
            int total = 0, running = 0, done = 0, failed = 0;
            size_t j;
            const json_t *n;
            json_array_foreach(json_object_get(d, "workloads"), j, n)
            {
                const json_t *w = find_workload(warr, json_string_value(n));
                if (w == NULL)
                    continue;
                char why[256];
                const char *ph = phase_of(w, why, sizeof(why));
                total++;
                running += strcmp(ph, "Running") == 0;
                done += strcmp(ph, "Completed") == 0;
                failed += strcmp(ph, "Failed") == 0;
            }
            char ready[32], dn[16], fl[16], gen[32];
            snprintf(ready, sizeof(ready), "%d/%d", running, total);
            snprintf(dn, sizeof(dn), "%d", done);
            snprintf(fl, sizeof(fl), "%d", failed);
            gm_cli_jint(d, "generation", "-", gen, sizeof(gen));
            const char *cells[] = {gm_cli_jstr(d, "name", "?"),
                                   kind_of_dep(d),
                                   ready,
                                   dn,
                                   fl,
                                   gm_cli_jstr(d, "format", "?"),
                                   gen};
            gm_cli_table_add(t, cells);
        }
        gm_cli_table_print(t, ctx->out);
        gm_cli_table_free(t);
    }
    json_decref(deps);
    json_decref(wl);
    return GM_CLI_EXIT_OK;
}

int gm_cli_describe(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longs[] = {GM_CLI_COMMON_LONG, {0}};
    int c;
    while ((c = getopt_long(argc, argv, GM_CLI_COMMON_SHORT, longs, NULL)) != -1) {
        int r = gm_cli_common_option(ctx, c, argv, gm_cli_help_describe);
        if (r >= 0)
            return r;
    }
    if (optind >= argc)
        return gm_cli_usage(ctx, "KIND/NAME is required (job/cuda-sample1)");
    if (optind + 1 < argc)
        return gm_cli_usage(ctx, "unexpected argument '%s'", argv[optind + 1]);
    char name[128];
    snprintf(name, sizeof(name), "%s", argv[optind]);
    for (char *p = name; *p && *p != '/'; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    if (strchr(name, '/') == NULL)
        return gm_cli_usage(ctx, "'%s': give KIND/NAME (job/cuda-sample1)", name);
    char *slash = strchr(name, '/');
    *slash = '\0';
    char *prefix = gm_cli_path("/v1/deployments/", name, "/");
    char *full = prefix != NULL ? gm_cli_path(prefix, slash + 1, "") : NULL;
    free(prefix);
    *slash = '/';
    if (full == NULL)
        return GM_CLI_EXIT_FAIL;
    json_t *d = NULL, *wl = NULL;
    int rc = gm_cli_call(ctx, "GET", full, NULL, &d);
    free(full);
    if (rc == 0)
        rc = gm_cli_call(ctx, "GET", "/v1/workloads", NULL, &wl);
    if (rc != 0) {
        json_decref(d);
        return rc;
    }
    const json_t *warr = json_object_get(wl, "workloads");
    if (ctx->output == GM_CLI_OUT_JSON) {
        json_t *o = with_workloads(d, warr);
        gm_cli_print_json(ctx, o);
        json_decref(o);
    } else {
        char gen[32];
        fprintf(ctx->out, "Name:         %s\n", gm_cli_jstr(d, "name", "?"));
        fprintf(ctx->out, "Kind:         %s\n", kind_of_dep(d));
        fprintf(ctx->out, "Format:       %s\n", gm_cli_jstr(d, "format", "?"));
        fprintf(ctx->out, "Generation:   %s\n",
                gm_cli_jint(d, "generation", "-", gen, sizeof(gen)));
        fprintf(ctx->out, "Workloads:\n");
        size_t j;
        const json_t *n;
        json_array_foreach(json_object_get(d, "workloads"), j, n)
        {
            const json_t *w = find_workload(warr, json_string_value(n));
            if (w == NULL)
                continue;
            char why[256], gpus[128];
            const char *ph = phase_of(w, why, sizeof(why));
            gm_cli_gpu_list(json_object_get(w, "gpus"), gpus, sizeof(gpus));
            fprintf(ctx->out, "  %s: %s%s%s%s, GPU %s\n", gm_cli_jstr(w, "name", "?"), ph,
                    why[0] ? " (" : "", why, why[0] ? ")" : "", gpus);
        }
        const json_t *ne = json_object_get(d, "not_enforced");
        if (json_array_size(ne) > 0) {
            fprintf(ctx->out, "Not enforced (accepted, not acted on):\n");
            json_array_foreach(ne, j, n)
            {
                fprintf(ctx->out, "  %s\n", json_string_value(n));
            }
        }
    }
    json_decref(d);
    json_decref(wl);
    return GM_CLI_EXIT_OK;
}
