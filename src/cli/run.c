#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char gm_cli_help_run[] =
    "NAME\n"
    "    gpumux run - start a workload\n"
    "\n"
    "SYNOPSIS\n"
    "    gpumux run NAME [--gpu ID] [--compute PCT] [--memory SIZE] [--env KEY=VALUE].. \\\n"
    "               [--restart POLICY | --rm] [--enforce strict|best-effort]\n"
    "               [-o table|json] -- CMD [ARG..]\n"
    "\n"
    "DESCRIPTION\n"
    "    Creates the workload NAME and starts CMD under gpumuxd's supervision. The command\n"
    "    runs with the GPU's environment (CUDA_VISIBLE_DEVICES, the MPS pipe directory) and,\n"
    "    when limits are given, the gpumux interposer that enforces them. Everything after\n"
    "    '--' is the command and its arguments, passed as they are.\n"
    "\n"
    "    The daemon checks the values of --compute and --memory, so every client reports the\n"
    "    same errors. On a GPU in mode mps, --compute becomes the workload's MPS active thread\n"
    "    percentage; on a shared GPU the interposer (libgpumux.so) paces its kernel launches\n"
    "    to the share. --memory is enforced across all of the workload's processes in both.\n"
    "    Limits can be changed while the workload runs with gpumux set.\n"
    "\n"
    "OPTIONS\n"
    "    --gpu ID\n"
    "        The GPU to run on: index, UUID or PCI bus id. Default: the daemon chooses.\n"
    "    --compute PCT\n"
    "        The share of the GPU's compute the workload may use, 1..100 (percent): 50 or\n"
    "        50%.\n"
    "    --memory SIZE\n"
    "        The GPU memory the workload may allocate, with its unit: 512M, 4G, 4GiB, 4Gi,\n"
    "        1.5G, 4096M (K, M, G, T; B for bytes). A number without a unit is refused with\n"
    "        the likely one ('4096' - did you mean 4096M?); the least limit is 64MiB.\n"
    "    --env KEY=VALUE\n"
    "        Set an environment variable for the command; may be repeated.\n"
    "    --restart POLICY\n"
    "        What the daemon does when the command ends: never (or no, the default), always,\n"
    "        on-failure (when it exits non-zero or is killed), on-failure:N (at most N\n"
    "        restarts), unless-stopped (the same as always: a stopped workload stays stopped,\n"
    "        across daemon restarts too). Restarts back off from 0.1 s, doubling, to 10 s.\n"
    "    --rm\n"
    "        Delete the workload once it has ended, as docker run --rm does: when its command\n"
    "        exits or it is stopped, its record and its log go; the event log keeps what\n"
    "        happened. Not with a --restart policy other than no.\n"
    "    --enforce strict|best-effort\n"
    "        strict: CUDA initialisation fails in the workload when its limits cannot be\n"
    "        enforced (no limits region), and the daemon stops the workload when the driver\n"
    "        sees it hold more than its memory limit; best-effort (default): it then runs\n"
    "        unlimited and says so once on stderr, and over its limit it is reported.\n"
    "    -o, --output table|json\n"
    "        json prints the daemon's answer: the new workload.\n"
    "    -h, --help\n"
    "        Print this help.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 the workload was created; 1 the daemon refused it (name taken, limits out of range,\n"
    "    not enough GPU memory, no such GPU); 2 usage error or gpumuxd unreachable.\n"
    "\n"
    "EXAMPLES\n"
    "    gpumux run nbody1 --gpu 0 --compute 50 --memory 2G -- /tmp/nbody -benchmark\n"
    "    gpumux run train --env PYTHONUNBUFFERED=1 --restart on-failure -- python3 train.py\n";

static void describe(const json_t *w, char *buf, size_t len)
{
    const json_t *gpus = json_object_get(w, "gpus"), *g;
    size_t i, used = 0;
    if (json_array_size(gpus) == 0) {
        snprintf(buf, len, "without a GPU");
        return;
    }
    used = (size_t)snprintf(buf, len, "on GPU%s ", json_array_size(gpus) > 1 ? "s" : "");
    json_array_foreach(gpus, i, g)
    {
        char idx[16];
        int n =
            snprintf(buf + used, len - used, "%s%s (%s)", i ? ", " : "",
                     gm_cli_jint(g, "index", "?", idx, sizeof(idx)), gm_cli_jstr(g, "uuid", "?"));
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

int gm_cli_run(struct gm_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"gpu", required_argument, NULL, 'g'},
        {"compute", required_argument, NULL, 'c'},
        {"memory", required_argument, NULL, 'm'},
        {"env", required_argument, NULL, 'e'},
        {"restart", required_argument, NULL, 'r'},
        {"enforce", required_argument, NULL, 'E'},
        {"rm", no_argument, NULL, 'X'},
        GM_CLI_COMMON_LONG,
        {0, 0, 0, 0},
    };
    /* getopt drops the "--" it stops at, so find it first: what follows is the command even
     * when it looks like options of ours. */
    int dd = 1;
    while (dd < argc && strcmp(argv[dd], "--") != 0)
        dd++;
    json_t *body = json_object(), *env = json_object(), *answer = NULL;
    int c, rc = GM_CLI_EXIT_OK;
    if (body == NULL || env == NULL) {
        fprintf(ctx->err, "gpumux: out of memory\n");
        rc = GM_CLI_EXIT_FAIL;
        goto out;
    }
    while ((c = getopt_long(dd, argv, GM_CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        const char *eq;
        switch (c) {
        case 'g':
            json_object_set_new(body, "gpu", json_string(optarg));
            break;
        case 'c':
            json_object_set_new(body, "compute", json_string(optarg));
            break;
        case 'm':
            json_object_set_new(body, "memory", json_string(optarg));
            break;
        case 'E':
            if (strcmp(optarg, "strict") != 0 && strcmp(optarg, "best-effort") != 0) {
                rc = gm_cli_usage(ctx, "--enforce '%s': expected strict or best-effort", optarg);
                goto out;
            }
            json_object_set_new(body, "enforce", json_string(optarg));
            break;
        case 'r': {
            /* docker's spellings too: no, on-failure:N, unless-stopped (which is what always is
             * here: a stopped workload stays stopped across a daemon restart). */
            const char *policy = optarg;
            long max = 0;
            char *end = NULL;
            if (strcmp(optarg, "no") == 0)
                policy = "never";
            else if (strcmp(optarg, "unless-stopped") == 0)
                policy = "always";
            else if (strncmp(optarg, "on-failure:", 11) == 0) {
                max = strtol(optarg + 11, &end, 10);
                if (optarg[11] == '\0' || *end != '\0' || max < 1 || max > 1000000) {
                    rc = gm_cli_usage(ctx, "--restart '%s': on-failure:N wants N from 1 to 1000000",
                                      optarg);
                    goto out;
                }
                policy = "on-failure";
            }
            if (strcmp(policy, "never") != 0 && strcmp(policy, "on-failure") != 0 &&
                strcmp(policy, "always") != 0) {
                rc = gm_cli_usage(ctx,
                                  "--restart '%s': expected no (never), on-failure[:N], always or "
                                  "unless-stopped",
                                  optarg);
                goto out;
            }
            json_object_set_new(body, "restart", json_string(policy));
            if (max > 0)
                json_object_set_new(body, "restart_max", json_integer(max));
            break;
        }
        case 'X':
            json_object_set_new(body, "auto_remove", json_true());
            break;
        case 'e':
            eq = strchr(optarg, '=');
            if (eq == NULL || eq == optarg) {
                rc = gm_cli_usage(ctx, "--env '%s': expected KEY=VALUE", optarg);
                goto out;
            }
            {
                char *key = strndup(optarg, (size_t)(eq - optarg));
                if (key != NULL)
                    json_object_set_new(env, key, json_string(eq + 1));
                free(key);
            }
            break;
        default:
            if ((rc = gm_cli_common_option(ctx, c, argv, gm_cli_help_run)) >= 0)
                goto out;
            rc = GM_CLI_EXIT_OK;
        }
    }
    if (optind >= dd) {
        rc = gm_cli_usage(ctx, "missing workload NAME");
        goto out;
    }
    const char *name = argv[optind];
    if (optind + 1 < dd) {
        rc = gm_cli_usage(ctx, "missing '--' before the command: gpumux run %s [OPTIONS] -- %s",
                          name, argv[optind + 1]);
        goto out;
    }
    if (dd + 1 >= argc) {
        rc = gm_cli_usage(ctx, "missing command: gpumux run %s [OPTIONS] -- CMD [ARG..]", name);
        goto out;
    }
    json_t *cmd = json_array();
    for (int i = dd + 1; i < argc; i++) {
        /* The workload does not run in this directory: a relative path to the command is
         * made absolute here, where it means what the user meant. */
        char *abs = NULL;
        if (i == dd + 1 && strchr(argv[i], '/') != NULL && argv[i][0] != '/')
            abs = realpath(argv[i], NULL);
        json_array_append_new(cmd, json_string(abs ? abs : argv[i]));
        free(abs);
    }
    json_object_set_new(body, "name", json_string(name));
    json_object_set_new(body, "command", cmd);
    if (json_object_size(env) > 0)
        json_object_set(body, "env", env);

    rc = gm_cli_call(ctx, "POST", "/v1/workloads", body, &answer);
    if (rc != 0)
        goto out;
    if (ctx->output == GM_CLI_OUT_JSON) {
        gm_cli_print_json(ctx, answer);
    } else {
        char where[512], pid[24];
        describe(answer, where, sizeof(where));
        const char *n = gm_cli_jstr(answer, "name", name);
        if (gm_cli_jint(answer, "pid", NULL, pid, sizeof(pid)) != NULL)
            fprintf(ctx->out, "%s started %s as pid %s\n", n, where, pid);
        else
            fprintf(ctx->out, "%s created %s, %s\n", n, where,
                    gm_cli_jstr(answer, "state", "starting"));
    }
out:
    json_decref(answer);
    json_decref(body);
    json_decref(env);
    return rc;
}
