/* The gpumux command line: shared context, verb table and the routines every verb uses. */
#ifndef GM_CLI_CLI_H
#define GM_CLI_CLI_H

#include "common/error.h"

#include <jansson.h>
#include <stdio.h>
#include <time.h>

/* Exit statuses, documented in `gpumux --help` and docs/cli.md. */
enum {
    GM_CLI_EXIT_OK = 0,      /* success */
    GM_CLI_EXIT_FAIL = 1,    /* the daemon refused, or the operation failed */
    GM_CLI_EXIT_USAGE = 2,   /* usage error, or gpumuxd cannot be reached */
    GM_CLI_EXIT_TIMEOUT = 3, /* gpumuxd did not answer within --timeout */
    GM_CLI_EXIT_NO_GPU = 6,  /* smi: no GPU to show, nvidia-smi's "No devices were found" */
};

enum gm_cli_output { GM_CLI_OUT_TABLE, GM_CLI_OUT_JSON };

#define GM_CLI_DEFAULT_SOCKET "/run/gpumux/gpumux.sock"
#define GM_CLI_SOCKET_ENV     "GPUMUX_SOCKET"
#define GM_CLI_TIMEOUT_ENV    "GPUMUX_TIMEOUT"

struct gm_cli_ctx {
    const char *socket;        /* the daemon's socket, never NULL once parsed */
    enum gm_cli_output output; /* -o */
    const char *verb;          /* names the verb in usage messages */
    FILE *out, *err;
};

/* Runs `gpumux ARGS...` and returns its exit status; output goes to out and err. */
int gm_cli_main(int argc, char **argv, FILE *out, FILE *err);

/* Every verb: argv[0] is the verb's name; returns the exit status. */
#define GM_CLI_VERBS(X)                                                                            \
    X(smi, "show the GPUs the way nvidia-smi does, plus gpumux's view")                            \
    X(gpu, "list GPUs and set their sharing mode")                                                 \
    X(vm, "give a GPU to a virtual machine, take it back, list VMs")                               \
    X(mps, "start, stop and show NVIDIA MPS per GPU")                                              \
    X(run, "start a workload")                                                                     \
    X(ps, "list workloads")                                                                        \
    X(set, "change a workload's compute and memory limits while it runs")                          \
    X(logs, "print a workload's output")                                                           \
    X(stop, "stop workloads")                                                                      \
    X(start, "start stopped workloads again")                                                      \
    X(restart, "stop workloads and start them again")                                              \
    X(delete, "delete workloads")                                                                  \
    X(apply, "create and update workloads from a manifest")                                        \
    X(get, "list what manifests made")                                                             \
    X(describe, "show one applied object and its workloads")                                       \
    X(events, "show the daemon's event log")                                                       \
    X(info, "show the daemon's version, driver and directories")

#define GM_CLI_X(name, summary)                                                                    \
    int gm_cli_##name(struct gm_cli_ctx *ctx, int argc, char **argv);                              \
    extern const char gm_cli_help_##name[];
GM_CLI_VERBS(GM_CLI_X)
#undef GM_CLI_X

/* Options every verb takes, for getopt_long tables: -o FMT, -h/--help, and --socket and
 * --timeout, which people also type after the verb. */
#define GM_CLI_COMMON_SHORT ":o:h"
/* clang-format off */
#define GM_CLI_COMMON_LONG                                                                         \
    {"output", required_argument, NULL, 'o'},                                                      \
    {"help", no_argument, NULL, 'h'},                                                              \
    {"socket", required_argument, NULL, 'S'},                                                      \
    {"timeout", required_argument, NULL, 'T'}
/* clang-format on */

/* Handle one getopt_long result shared by all verbs (-o, -h, --socket, unknown option,
 * missing argument). Returns -1 when parsing goes on, else the exit status to return at once. */
int gm_cli_common_option(struct gm_cli_ctx *ctx, int c, char **argv, const char *help);

/* The one of cands[0..n) a mistyped word most likely meant ("stpo" -> "stop"), NULL when none
 * is close: for "did you mean" in usage errors. */
const char *gm_cli_suggest(const char *word, const char *const *cands, size_t n);

/* "'WORD' is not WHAT subcommand (a, b, c)", with "did you mean" when one is close; returns
 * GM_CLI_EXIT_USAGE. */
int gm_cli_not_a_subcommand(struct gm_cli_ctx *ctx, const char *what, const char *word,
                            const char *const *subs, size_t n);

/* Print "gpumux: MESSAGE" and a pointer to the verb's help; returns GM_CLI_EXIT_USAGE. */
/* apply -f and delete -f (remove): send the manifest at path (- for standard input). */
int gm_cli_apply_file(struct gm_cli_ctx *ctx, const char *path, int dry_run, int remove);

int gm_cli_usage(struct gm_cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print "gpumux: MESSAGE" for a failed call; returns 2 when the daemon is unreachable, 3 when it
 * did not answer in time, else 1. */
int gm_cli_fail(struct gm_cli_ctx *ctx, const struct gm_error *err);

/* One request to the daemon. On success returns 0 and *answer (owned by the caller; may be
 * NULL if answer is NULL). On failure prints the error and returns the exit status. */
int gm_cli_call(struct gm_cli_ctx *ctx, const char *method, const char *path, const json_t *body,
                json_t **answer);
/* "/v1/workloads/" + encoded name + "/stop". Returns a malloc'd path, NULL on no memory. */
char *gm_cli_path(const char *prefix, const char *name, const char *suffix);

/* For each NAME in argv[first..]: act(ctx, NAME, arg, &answer) returns an exit status and the
 * answer to show, `report` prints it in table mode (several answers as one JSON array with -o
 * json). Goes on past refusals. Returns 0 when all succeeded, 2 or 3 as soon as the daemon
 * cannot be reached or does not answer, else 1. */
int gm_cli_each_name(struct gm_cli_ctx *ctx, int first, int argc, char **argv,
                     int (*act)(struct gm_cli_ctx *ctx, const char *name, void *arg,
                                json_t **answer),
                     void *arg, void (*report)(struct gm_cli_ctx *ctx, const json_t *answer));

/* "NAME started as pid N" (what: "started", "restarted"), or NAME and its state when it has
 * no pid yet. */
void gm_cli_report_launched(struct gm_cli_ctx *ctx, const json_t *w, const char *what);

/* stop, start and delete: send `method /v1/workloads/NAME SUFFIX` for each NAME in argv,
 * going on past refusals. `report` prints one answer in table mode. Returns 0 when all
 * succeeded, 2 as soon as the daemon cannot be reached, else 1. */
int gm_cli_each_workload(struct gm_cli_ctx *ctx, int argc, char **argv, const char *help,
                         const char *method, const char *suffix,
                         void (*report)(struct gm_cli_ctx *ctx, const json_t *answer));

/* One request whose answer is shown: with -o json the answer itself, else table(ctx, answer),
 * or with table NULL the answer's "messages" (what the daemon did, a line each). Returns the
 * exit status. */
int gm_cli_call_show(struct gm_cli_ctx *ctx, const char *method, const char *path,
                     const json_t *body,
                     void (*table)(struct gm_cli_ctx *ctx, const json_t *answer));

/* Print a JSON value indented, as `-o json` shows the daemon's answers. */
void gm_cli_print_json(struct gm_cli_ctx *ctx, const json_t *json);

/* SIGINT ends `smi -l`, `logs -f` and `events -f` normally, with exit status 0. */
void gm_cli_catch_sigint(void);
int gm_cli_interrupted(void);
/* Sleep ms milliseconds; returns early (non-zero) once SIGINT arrived. */
int gm_cli_sleep_ms(long ms);

/* Plain-text tables: columns padded to their widest cell, three spaces apart. */
struct gm_cli_table;
struct gm_cli_table *gm_cli_table_new(size_t ncols, const char *const *headers);
/* Copies the ncols cells (NULL prints as "-"). Returns 0, or -1 when out of memory. */
int gm_cli_table_add(struct gm_cli_table *t, const char *const *cells);
void gm_cli_table_print(const struct gm_cli_table *t, FILE *f);
void gm_cli_table_free(struct gm_cli_table *t);

/* Small accessors over the daemon's JSON that never fail: a missing or mistyped member reads
 * as the default, so a surprising answer prints "-" instead of crashing. */
const char *gm_cli_jstr(const json_t *obj, const char *key, const char *dflt);
/* Integer member as text ("1234") in buf, or dflt when null or absent (copied into buf too
 * when not NULL). Returns buf or dflt. */
const char *gm_cli_jint(const json_t *obj, const char *key, const char *dflt, char *buf,
                        size_t len);
/* The GPU list of a workload as "0", "0,1" or "-". */
void gm_cli_gpu_list(const json_t *gpus, char *buf, size_t len);

/* RFC 3339 UTC ("2026-11-25T17:01:02.123Z") to time_t; returns 0, or -1 if not one. */
int gm_cli_parse_time(const char *s, time_t *out);
/* --since as docker takes it: a duration back from now (10m, 1h30m, 45s, 2d) or a UTC time
 * (2026-12-03T09:00:00Z); 0 and the moment in *out, or -1. */
int gm_cli_parse_since(const char *s, time_t *out);
int gm_cli_parse_since_ms(const char *s, long long *out); /* the same in Unix milliseconds */
/* A workload in this state has processes, or is about to: starting, running, stopping. */
int gm_cli_state_live(const char *state);
/* A duration the way docker ps prints it: "Less than a second", "5 seconds", "About a
 * minute", "12 minutes", "About an hour", "3 hours", "2 days", "5 weeks". */
void gm_cli_format_duration(long long seconds, char *buf, size_t len);

#endif
