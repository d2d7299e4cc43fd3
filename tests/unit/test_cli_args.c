/* Command-line parsing: usage errors exit 2 with a message, before any request is made. */
#include "cli/cli.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A socket that does not exist: a verb that got past parsing says "cannot reach". */
#define NOSOCK "/nonexistent/gpumux-test.sock"
#define NO_SOCKET_REASON                                                                           \
    "no socket there: gpumuxd is not running, or runs elsewhere; start it ('systemctl start "      \
    "gpumuxd', or gpumuxd itself), or point GPUMUX_SOCKET or --socket at the socket of a daemon "  \
    "that runs"

struct result {
    int rc;
    char *out, *err;
};

static struct result run_argv(int argc, char **argv)
{
    struct result r = {0};
    size_t no, ne;
    FILE *out = open_memstream(&r.out, &no), *err = open_memstream(&r.err, &ne);
    cr_assert(out && err);
    r.rc = gm_cli_main(argc, argv, out, err);
    fclose(out);
    fclose(err);
    return r;
}

/* gpumux --socket NOSOCK ARGS... (NULL-terminated) */
static struct result gm(const char *first, ...)
{
    char *argv[64] = {"gpumux", "--socket", NOSOCK};
    int argc = 3;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && argc < 63; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return run_argv(argc, argv);
}

static void free_result(struct result *r)
{
    free(r->out);
    free(r->err);
}

static void assert_usage(struct result r, const char *verb, const char *msg)
{
    cr_assert_eq(r.rc, 2, "exit status %d, stderr: %s", r.rc, r.err);
    cr_assert_not_null(strstr(r.err, msg), "stderr lacks '%s': %s", msg, r.err);
    char hint[128];
    snprintf(hint, sizeof(hint), "Try 'gpumux %s%s--help'", verb ? verb : "", verb ? " " : "");
    cr_assert_not_null(strstr(r.err, hint), "stderr lacks '%s': %s", hint, r.err);
    cr_assert_null(strstr(r.err, "cannot reach"), "a usage error must not reach for the daemon");
    cr_assert_str_eq(r.out, "", "nothing on stdout: %s", r.out);
    free_result(&r);
}

Test(args_run, env_without_equals_is_a_usage_error)
{
    assert_usage(gm("run", "a", "--env", "FOO", "--", "sleep", "1", NULL), "run",
                 "gpumux: --env 'FOO': expected KEY=VALUE");
    assert_usage(gm("run", "a", "--env=", "--", "sleep", "1", NULL), "run",
                 "--env '': expected KEY=VALUE");
    assert_usage(gm("run", "a", "--env", "=v", "--", "sleep", "1", NULL), "run",
                 "--env '=v': expected KEY=VALUE");
}

Test(args_run, well_formed_options_get_as_far_as_the_daemon)
{
    struct result r =
        gm("run", "a", "--env", "K=V=W", "--env", "EMPTY=", "--gpu", "0", "--compute", "30",
           "--memory", "1G", "--restart", "on-failure", "--", "sleep", "--not-ours", NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "gpumux: cannot reach gpumuxd at " NOSOCK ": " NO_SOCKET_REASON "\n");
    free_result(&r);
}

Test(args_run, unknown_option)
{
    assert_usage(gm("run", "a", "--bogus", "--", "true", NULL), "run", "unknown option '--bogus'");
    assert_usage(gm("run", "-z", "a", "--", "true", NULL), "run", "unknown option '-z'");
    assert_usage(gm("ps", "--all=yes", NULL), "ps", "option '--all' takes no value");
}

Test(args_run, missing_name)
{
    assert_usage(gm("run", NULL), "run", "missing workload NAME");
    assert_usage(gm("run", "--gpu", "0", "--", "sleep", "1", NULL), "run", "missing workload NAME");
}

Test(args_run, missing_double_dash_or_command)
{
    assert_usage(gm("run", "a", "sleep", "1", NULL), "run", "missing '--' before the command");
    assert_usage(gm("run", "a", NULL), "run", "missing command");
    assert_usage(gm("run", "a", "--gpu", "0", "--", NULL), "run", "missing command");
}

Test(args_run, restart_policy_is_checked)
{
    assert_usage(
        gm("run", "a", "--restart", "sometimes", "--", "true", NULL), "run",
        "--restart 'sometimes': expected no (never), on-failure[:N], always or unless-stopped");
}

Test(args_run, option_value_missing)
{
    assert_usage(gm("run", "a", "--gpu", NULL), "run", "option '--gpu' needs a value");
    assert_usage(gm("ps", "-o", NULL), "ps", "option '-o' needs a value");
}

Test(args_global, unknown_verb_and_output)
{
    assert_usage(gm("frobnicate", NULL), NULL, "'frobnicate' is not a gpumux verb");
    assert_usage(gm("-o", "yaml", "ps", NULL), NULL, "-o 'yaml': expected table or json");
    assert_usage(gm("ps", "-o", "xml", NULL), "ps", "-o 'xml': expected table or json");
    assert_usage(gm("--bogus", NULL), NULL, "unknown option '--bogus'");
    struct result r = gm(NULL);
    cr_assert_eq(r.rc, 2, "no verb is a usage error");
    cr_assert_not_null(strstr(r.err, "SYNOPSIS"));
    free_result(&r);
}

Test(args_global, verbs_check_their_arguments)
{
    assert_usage(gm("gpu", NULL), "gpu", "missing subcommand");
    assert_usage(gm("gpu", "mode", "0", "turbo", NULL), "gpu",
                 "mode 'turbo': expected shared, mps or vm");
    assert_usage(gm("gpu", "mode", "0", NULL), "gpu", "gpumux gpu mode ID shared|mps|vm");
    assert_usage(gm("vm", "attach", "vm1", NULL), "vm", "missing --gpu ID");
    assert_usage(gm("vm", "detach", NULL), "vm", "missing VM name");
    assert_usage(gm("vm", "ls", "--gpu", "0", NULL), "vm", "--gpu belongs to 'vm attach'");
    assert_usage(gm("logs", NULL), "logs", "missing workload NAME");
    assert_usage(gm("stop", NULL), "stop", "missing workload NAME");
    assert_usage(gm("delete", NULL), "delete", "missing workload NAME");
    assert_usage(gm("events", "--since", "soon", NULL), "events", "--since");
}

Test(args_smi, unknown_field_exits_2_with_nvidia_smi_message)
{
    struct result r = gm("smi", "--query-gpu=index,foo", "--format=csv", NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "Field \"foo\" is not a valid field to query.\n");
    free_result(&r);
    r = gm("smi", "--query-compute-apps=pid,memory.total", NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "Field \"memory.total\" is not a valid field to query.\n");
    free_result(&r);
}

Test(args_smi, option_combinations)
{
    assert_usage(gm("smi", "--format=csv", NULL), "smi", "--format needs --query-gpu");
    assert_usage(gm("smi", "--query-gpu=index", "--format=xml", NULL), "smi",
                 "'xml' is not a format option");
    assert_usage(gm("smi", "--query-gpu=index", "--query-compute-apps=pid", NULL), "smi",
                 "use one of --query-gpu, --query-compute-apps, -L and -q");
    assert_usage(gm("smi", "-L", "-q", NULL), "smi", "use one of");
    assert_usage(gm("smi", "-d", "MEMORY", NULL), "smi", "-d (--display) selects sections of -q");
    assert_usage(gm("smi", "-q", "-d", "VOLTAGE", NULL), "smi", "'VOLTAGE' is not a display type");
    assert_usage(gm("smi", "dmon", "-c", "0", NULL), "smi", "-c");
    assert_usage(gm("smi", "pmon", "-d", "soon", NULL), "smi", "-d");
    assert_usage(gm("smi", "pmon", "extra", NULL), "smi", "unexpected argument 'extra'");
    assert_usage(gm("smi", "top", NULL), "smi", "the monitors are 'smi dmon' and 'smi pmon'");
    assert_usage(gm("smi", "-l", "0", NULL), "smi", "-l");
    assert_usage(gm("smi", "-l", "soon", NULL), "smi", "-l");
    assert_usage(gm("-o", "json", "smi", "--query-gpu=index", NULL), "smi", "-o json");
}

Test(args_help, global_help_and_version)
{
    struct result r = gm("--help", NULL);
    cr_assert_eq(r.rc, 0);
    static const char *const want[] = {"SYNOPSIS", "EXIT STATUS", "GPUMUX_SOCKET",
                                       "--socket", "smi",         "run",
                                       "events",   "0   success", "cannot reach gpumuxd"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_not_null(strstr(r.out, want[i]), "--help lacks '%s'", want[i]);
    free_result(&r);
    r = gm("--version", NULL);
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "gpumux version " GM_VERSION "\n");
    free_result(&r);
}

Test(args_help, every_verb_has_a_manual_page)
{
#define GM_CLI_X(name, summary) {#name, gm_cli_help_##name},
    static const struct {
        const char *name, *help;
    } verbs[] = {GM_CLI_VERBS(GM_CLI_X)};
#undef GM_CLI_X
    static const char *const sections[] = {"NAME\n",    "SYNOPSIS\n",    "DESCRIPTION\n",
                                           "OPTIONS\n", "EXIT STATUS\n", "EXAMPLES\n"};
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++)
            cr_assert_not_null(strstr(verbs[i].help, sections[s]), "%s --help lacks %s",
                               verbs[i].name, sections[s]);
        struct result a = gm("help", verbs[i].name, NULL);
        struct result b = gm(verbs[i].name, "--help", NULL);
        cr_assert_eq(a.rc, 0);
        cr_assert_eq(b.rc, 0);
        cr_assert_str_eq(a.out, verbs[i].help);
        cr_assert_str_eq(b.out, verbs[i].help);
        free_result(&a);
        free_result(&b);
    }
    assert_usage(gm("help", "nope", NULL), NULL, "'nope' is not a gpumux verb");
}

Test(args_socket, environment_then_default)
{
    char *argv[] = {"gpumux", "ps", NULL};
    setenv("GPUMUX_SOCKET", "/nonexistent/from-env.sock", 1);
    struct result r = run_argv(2, argv);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err,
                     "gpumux: cannot reach gpumuxd at /nonexistent/from-env.sock: " NO_SOCKET_REASON
                     "\n");
    free_result(&r);

    r = gm("ps", NULL); /* --socket wins over the environment */
    cr_assert_not_null(strstr(r.err, "at " NOSOCK ":"), "%s", r.err);
    free_result(&r);

    r = gm("ps", "--socket", "/nonexistent/after-verb.sock", NULL); /* the last one wins */
    cr_assert_eq(r.rc, 2);
    cr_assert_not_null(strstr(r.err, "at /nonexistent/after-verb.sock:"), "%s", r.err);
    free_result(&r);
    assert_usage(gm("ps", "--socket=", NULL), "ps", "--socket: the path is empty");

    struct stat st;
    setenv("GPUMUX_SOCKET", "", 1);
    if (stat(GM_CLI_DEFAULT_SOCKET, &st) == 0)
        return; /* a daemon runs here; its answer is not this test's business */
    r = run_argv(2, argv);
    cr_assert_eq(r.rc, 2);
    cr_assert_not_null(strstr(r.err, "cannot reach gpumuxd at " GM_CLI_DEFAULT_SOCKET ": "), "%s",
                       r.err);
    free_result(&r);
}

/* A directory or a file where the socket should be says so (no socket and a socket nobody
 * listens on: test_cli_client). */
Test(args_socket, unreachable_says_why)
{
    char dir[] = "/tmp/gm-cli-sock-XXXXXX", path[96];
    cr_assert_not_null(mkdtemp(dir));
    struct result r = gm("ps", "--socket", dir, NULL);
    cr_assert_eq(r.rc, 2);
    cr_expect_not_null(strstr(r.err, ": it is a directory, not a socket; point GPUMUX_SOCKET"),
                       "%s", r.err);
    free_result(&r);

    snprintf(path, sizeof(path), "%s/file", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    r = gm("ps", "--socket", path, NULL);
    cr_expect_not_null(strstr(r.err, ": it is not a socket"), "%s", r.err);
    free_result(&r);

    snprintf(path, sizeof(path), "%s/file", dir);
    unlink(path);
    rmdir(dir);
}

/* A mistyped verb, subcommand or option gets the one it most likely meant; a word close to
 * nothing gets no guess. */
Test(args_suggest, did_you_mean)
{
    assert_usage(gm("stpo", "a", NULL), NULL, "'stpo' is not a gpumux verb; did you mean 'stop'?");
    assert_usage(gm("restrat", "a", NULL), NULL, "did you mean 'restart'?");
    assert_usage(gm("help", "logz", NULL), NULL, "did you mean 'logs'?");
    struct result r = gm("frobnicate", NULL);
    cr_assert_null(strstr(r.err, "did you mean"), "no guess for a word close to nothing: %s",
                   r.err);
    free_result(&r);
    assert_usage(gm("mps", "strat", NULL), "mps",
                 "'strat' is not an mps subcommand (start, stop, status); did you mean 'start'?");
    assert_usage(gm("gpu", "lss", NULL), "gpu", "did you mean 'ls'?");
    assert_usage(gm("vm", "atach", "v", NULL), "vm", "did you mean 'attach'?");
    assert_usage(gm("run", "a", "--memroy", "1G", "--", "true", NULL), "run",
                 "unknown option '--memroy'; did you mean '--memory'?");
    assert_usage(gm("stop", "--tiem", "3", "a", NULL), "stop", "did you mean '--time'?");
    assert_usage(gm("--sokcet", "/x", "ps", NULL), NULL, "did you mean '--socket'?");
    r = gm("run", "a", "--zzzzzzzz", "--", "true", NULL);
    cr_assert_null(strstr(r.err, "did you mean"), "%s", r.err);
    free_result(&r);
}
