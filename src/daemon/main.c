/* gpumuxd: the gpumux node daemon. */
#include "common/log.h"
#include "common/path.h"
#include "daemon/daemon.h"
#include "daemon/mps.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: gpumuxd [OPTION]...\n"
            "The gpumux node daemon: keeps the GPU inventory, per-GPU sharing modes (shared,\n"
            "mps, vm), admits, places and supervises workloads, and serves the gpumux API on\n"
            "RUN_DIR/gpumux.sock. Workloads outlive the daemon: a restarted daemon re-adopts\n"
            "those still running and records those that ended.\n"
            "\n"
            "Options:\n"
            "  --config FILE        read settings from FILE (YAML); options below override it\n"
            "  --state-dir DIR      state database (default /var/lib/gpumux)\n"
            "  --run-dir DIR        API socket and launch records (default /run/gpumux)\n"
            "  --driver MODE        auto, nvml or sim (default auto: the real driver when it\n"
            "                       reports a GPU, else gpusim)\n"
            "  --gpusim-dir DIR     gpusim's libraries (default ../lib/gpusim beside gpumuxd)\n"
            "  --gpusim-config FILE gpusim's device description (default: two Tesla T4)\n"
            "  --placement POLICY   binpack or spread (default binpack)\n"
            "  --api-group GROUP    group whose members may change state (default gpumux)\n"
            "  --memory-reserve SZ  memory kept out of limits on every GPU (default 0)\n"
            "  --stop-timeout SEC   SIGTERM to SIGKILL delay on stop (default 10)\n"
            "  --log-level LEVEL    debug, info, warning or error (default info)\n"
            "  --print-config       print the settings in effect as a configuration file (YAML)\n"
            "                       and exit\n"
            "  --check              check the configuration file and options, and exit\n"
            "  -h, --help           show this help and exit\n"
            "  -V, --version        show the version and exit\n"
            "\n"
            "Every setting of the configuration file can be given as --KEY VALUE; see\n"
            "gpumuxd --print-config for all of them, and docs/config.md.\n"
            "\n"
            "Exit status: 0 after SIGTERM or SIGINT, 1 when it cannot start (the reason is\n"
            "logged), 2 for a usage error.\n");
}

static int exe_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    return 0;
}

enum action { RUN, PRINT_CONFIG, CHECK };

static int parse_args(int argc, char **argv, struct gm_config *cfg, enum action *action)
{
    const char *config_file = NULL;
    struct gm_error err;
    /* First pass: --config, so the command line overrides the file. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_file = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config_file = argv[i] + 9;
    }
    if (config_file != NULL && gm_config_load(cfg, config_file, &err) < 0) {
        fprintf(stderr, "gpumuxd: %s\n", err.msg);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("gpumuxd %s\n", GM_VERSION);
            exit(0);
        }
        if (strcmp(a, "--print-config") == 0) {
            *action = PRINT_CONFIG;
            continue;
        }
        if (strcmp(a, "--check") == 0) {
            *action = CHECK;
            continue;
        }
        /* Not in the help: the settings section of docs/config.md, from the table. */
        if (strcmp(a, "--print-config-doc") == 0) {
            gm_config_describe(stdout);
            exit(0);
        }
        /* Not in the help either: the configuration file `make install` ships. */
        if (strcmp(a, "--print-config-template") == 0) {
            gm_config_print_template(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "gpumuxd: unexpected argument '%s' (see gpumuxd --help)\n", a);
            return 2;
        }
        char key[64];
        const char *val, *eq = strchr(a, '=');
        if (eq != NULL) {
            snprintf(key, sizeof(key), "%.*s", (int)(eq - a - 2), a + 2);
            val = eq + 1;
        } else {
            snprintf(key, sizeof(key), "%s", a + 2);
            if (i + 1 >= argc) {
                fprintf(stderr, "gpumuxd: option --%s needs a value\n", key);
                return 2;
            }
            val = argv[++i];
        }
        if (strcmp(key, "config") == 0)
            continue;
        char source[80];
        snprintf(source, sizeof(source), "--%s", key);
        if (gm_config_set(cfg, key, val, source, &err) < 0) {
            fprintf(stderr, "gpumuxd: %s (see gpumuxd --help)\n", err.msg);
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct gm_daemon d;
    struct gm_error err;
    enum action action = RUN;
    gm_config_defaults(&d.cfg);
    int rc = parse_args(argc, argv, &d.cfg, &action);
    if (rc != 0)
        return rc;
    char dir[PATH_MAX] = ".";
    exe_dir(dir, sizeof(dir));
    if (gm_config_finish(&d.cfg, dir, &err) < 0) {
        fprintf(stderr, "gpumuxd: %s\n", err.msg);
        return 2;
    }
    if (action == PRINT_CONFIG) {
        gm_config_print(&d.cfg, stdout);
        return 0;
    }
    if (action == CHECK)
        return 0;
    enum gm_log_level lvl = GM_LOG_INFO;
    gm_log_parse_level(d.cfg.log_level, &lvl);
    gm_log_set_level(lvl);

    /* Signals are taken synchronously by the main loop; the HTTP threads never see them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct gm_http *http = NULL;
    if (gm_daemon_open(&d, dir, &err) < 0)
        goto fail;
    gm_reconcile(&d, 1);
    if (gm_http_start(&d, &http, &err) < 0)
        goto fail;

    struct timespec tick = {.tv_sec = d.cfg.poll_ms / 1000,
                            .tv_nsec = (d.cfg.poll_ms % 1000) * 1000000L};
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            gm_info("signal %d: shutting down; workloads keep running", sig);
            break;
        }
        gm_reconcile(&d, 0);
    }
    d.stopping = 1;
    gm_http_stop(http);
    gm_daemon_close(&d);
    return 0;
fail:
    gm_error("cannot start: %s", err.msg);
    gm_daemon_close(&d);
    return 1;
}
