/* gpumuxd's settings (src/daemon/config.h): the file, the command line's setter, the checks and
 * their messages, booleans, paths, `gpumuxd --print-config` as a file that loads back the same,
 * and docs/config.md's settings section against the table. */
#include "common/parse.h"
#include "daemon/config.h"
#include "docsync.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The table as the test sees it. */
static const struct {
    const char *name, *type;
    long long min, max;
} table[] = {
#define GM_X(k, t, f, d, lo, hi, h) {k, #t, lo, hi},
    GM_CONFIG_KEYS(GM_X)
#undef GM_X
};
#define NTABLE (sizeof(table) / sizeof(table[0]))

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/gm-config-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Writes text to dir/name and returns its path (static). */
static const char *file(const char *name, const char *text)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0755);
    *slash = '/';
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads text as a config file over the defaults; returns gm_config_load's result. */
static int load(struct gm_config *c, const char *text, struct gm_error *err)
{
    gm_config_defaults(c);
    return gm_config_load(c, file("gpumuxd.yaml", text), err);
}

static char *printed(const struct gm_config *c)
{
    char *text = NULL;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    gm_config_print(c, f);
    fclose(f);
    return text;
}

/* The expected message is a part of err.msg. */
#define REFUSED(call, part)                                                                        \
    do {                                                                                           \
        struct gm_error err_ = {0};                                                                \
        struct gm_error *ERR = &err_;                                                              \
        cr_expect_eq((call), -GM_EINVAL, "accepted: %s", #call);                                   \
        cr_expect(strstr(err_.msg, part) != NULL, "'%s' lacks '%s'", err_.msg, part);              \
    } while (0)

TestSuite(config, .init = make_dir, .fini = remove_dir);

Test(config, defaults_file_and_errors)
{
    struct gm_config c;
    struct gm_error err;
    gm_config_defaults(&c);
    cr_assert_str_eq(c.state_dir, "/var/lib/gpumux");
    cr_assert_eq(c.stop_timeout_s, 10);
    cr_assert_eq(load(&c, "state_dir: /tmp/x\nplacement: spread\nmemory_reserve: 256M\n", &err), 0,
                 "%s", err.msg);
    cr_assert_str_eq(c.state_dir, "/tmp/x");
    cr_assert_str_eq(c.placement, "spread");
    cr_assert_eq(c.memory_reserve, 256 * GM_MIB);
    cr_assert_eq(gm_config_finish(&c, "/usr/bin", &err), 0, "%s", err.msg);
    cr_assert_eq(c.spread, 1);
    /* An empty file, one of comments only or an empty document keeps the defaults. */
    static const char *const empty[] = {"", "\n", "# placement: spread\n  # x\n\n", "---\n",
                                        "---\n...\n"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        cr_assert_eq(load(&c, "placement: spread\n", &err), 0, "%s", err.msg);
        cr_assert_eq(gm_config_load(&c, file("gpumuxd.yaml", empty[i]), &err), 0, "'%s': %s",
                     empty[i], err.msg);
        cr_expect_str_eq(c.placement, "spread", "'%s'", empty[i]);
    }

    REFUSED(load(&c, "state_dir: [unclosed\n", ERR), "not valid YAML");
    REFUSED(load(&c, "- a\n- b\n", ERR), "expected a mapping of settings");
    REFUSED(load(&c, "state_dir:\n  - /a\n", ERR), ":1: each setting must be a plain 'key: value'");
    /* libfyaml 0.7 never returns from a directive with a stray byte: refused before it. */
    REFUSED(load(&c, "driver: sim\n%\x9a", ERR), ":2: not UTF-8 text (byte 0x9a)");
    gm_config_defaults(&c);
    REFUSED(gm_config_load(&c, "/nonexistent/gpumuxd.yaml", ERR), "/nonexistent/gpumuxd.yaml");
}

/* Unknown settings, values of the wrong kind and numbers out of range: the message names the
 * place, the setting, the value and what is allowed. */
Test(config, errors_name_the_setting_the_value_and_what_is_allowed)
{
    struct gm_config c;
    gm_config_defaults(&c);
    REFUSED(load(&c, "state_dir: /tmp/x\nbogus_key: 1\n", ERR),
            "gpumuxd.yaml:2: unknown setting 'bogus_key' (gpumuxd --print-config lists them all)");
    REFUSED(gm_config_set(&c, "bogus", "1", "--bogus", ERR), "--bogus: unknown setting 'bogus'");
    REFUSED(load(&c, "stop_timeout: 99999\n", ERR),
            "gpumuxd.yaml:1: stop_timeout: 99999 is out of range (0..3600)");
    REFUSED(gm_config_set(&c, "stop-timeout", "-1", "--stop-timeout", ERR),
            "--stop-timeout: stop_timeout: -1 is out of range (0..3600)");
    REFUSED(load(&c, "\npoll_interval_ms: 5\n", ERR),
            ":2: poll_interval_ms: 5 is out of range (10..10000)");
    REFUSED(load(&c, "stop_timeout: ten\n", ERR), ":1: stop_timeout: 'ten' is not a whole number");
    REFUSED(load(&c, "stop_timeout: 1.5\n", ERR), "stop_timeout: '1.5' is not a whole number");
    REFUSED(load(&c, "stop_timeout:\n", ERR), "stop_timeout: a number is required");
    REFUSED(load(&c, "memory_reserve: 12X\n", ERR), ":1: memory_reserve: '12X' is not a size");
    REFUSED(load(&c, "log_max_size: 1K\n", ERR), "log_max_size: '1K' is out of range (4K to 1T)");
    REFUSED(load(&c, "log_max_size: 2T\n", ERR), "log_max_size: '2T' is out of range (4K to 1T)");
    REFUSED(load(&c, "log_max_size: 0\n", ERR), "log_max_size: '0' is out of range (4K to 1T)");
    REFUSED(load(&c, "driver: cuda\n", ERR), ":1: driver: 'cuda' is not one of auto, nvml, sim");
    REFUSED(gm_config_set(&c, "driver", "cuda", "--driver", ERR),
            "--driver: driver: 'cuda' is not one of auto, nvml, sim");
    REFUSED(load(&c, "placement: random\n", ERR),
            "placement: 'random' is not one of binpack, spread");
    REFUSED(load(&c, "log_level: verbose\n", ERR),
            "log_level: 'verbose' is not one of debug, info, warning, error");
    REFUSED(load(&c, "mps_exclusive: maybe\n", ERR),
            ":1: mps_exclusive: 'maybe' is not a boolean: give true or false (also yes/no, "
            "on/off, 1/0)");
    char big[200];
    memset(big, 'g', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    REFUSED(gm_config_set(&c, "api_group", big, "--api-group", ERR),
            "api_group: 'gggg"); /* and how long it may be: */
    REFUSED(gm_config_set(&c, "api_group", big, "--api-group", ERR), "(at most 63 bytes)");

    /* A refused value changes nothing. */
    gm_config_defaults(&c);
    REFUSED(gm_config_set(&c, "log_max_files", "101", "test", ERR), "(0..100)");
    REFUSED(gm_config_set(&c, "mps_exclusive", "2", "test", ERR), "'2' is not a boolean");
    REFUSED(gm_config_set(&c, "driver", "cuda", "test", ERR), "not one of");
    cr_expect_eq(c.log_max_files, 3);
    cr_expect_eq(c.mps_exclusive, false);
    cr_expect_str_eq(c.driver, "auto");
}

Test(config, log_limits_are_bounded_and_logs_live_apart)
{
    struct gm_config c;
    struct gm_error err;
    gm_config_defaults(&c);
    cr_assert_str_eq(c.log_dir, "/var/log/gpumux");
    cr_assert_str_neq(c.log_dir, c.state_dir);
    cr_assert_eq(c.log_max_size, 10 * GM_MIB);
    cr_assert_eq(c.log_max_files, 3);
    cr_assert_eq(gm_config_set(&c, "log-max-size", "64K", "--log-max-size", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(c.log_max_size, 64 * 1024);
    /* No setting makes a log unbounded or empty. */
    REFUSED(gm_config_set(&c, "log_max_size", "1K", "test", ERR), "log_max_size: '1K' is out");
    REFUSED(gm_config_set(&c, "log_max_size", "0", "test", ERR), "out of range");
    REFUSED(gm_config_set(&c, "log_max_size", "2T", "test", ERR), "out of range");
    REFUSED(gm_config_set(&c, "log_max_files", "101", "test", ERR), "out of range");
    REFUSED(gm_config_set(&c, "log_max_files", "-1", "test", ERR), "out of range");
    cr_assert_eq(gm_config_set(&c, "log_max_files", "0", "test", &err), 0);
    cr_assert_eq(c.log_max_size, 64 * 1024, "a refused value changes nothing");
    /* The memory reserve, a size without bounds, still takes 0. */
    cr_assert_eq(gm_config_set(&c, "memory_reserve", "0", "test", &err), 0);
}

/* YAML's spellings of a boolean, and nothing else. */
Test(config, booleans_take_yaml_spellings)
{
    static const char *yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "1"};
    static const char *no[] = {"false", "False", "FALSE", "no",  "No",
                               "NO",    "off",   "Off",   "OFF", "0"};
    static const char *bad[] = {"tRuE",    "truE", "yES",   "oN", "y",  "n",     "Y",
                                "t",       "2",    "-1",    "01", "",   " true", "true ",
                                "enabled", "none", "truee", "nO", "0x1"};
    struct gm_config c;
    struct gm_error err;
    char text[64];
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        gm_config_defaults(&c);
        cr_expect_eq(gm_config_set(&c, "mps_exclusive", yes[i], "test", &err), 0, "%s: %s", yes[i],
                     err.msg);
        cr_expect_eq(c.mps_exclusive, true, "%s", yes[i]);
        snprintf(text, sizeof(text), "mps_exclusive: %s\n", yes[i]);
        cr_expect_eq(load(&c, text, &err), 0, "%s: %s", yes[i], err.msg);
        cr_expect_eq(c.mps_exclusive, true, "file: %s", yes[i]);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        gm_config_defaults(&c);
        cr_assert_eq(gm_config_set(&c, "mps_exclusive", "true", "test", &err), 0);
        cr_expect_eq(gm_config_set(&c, "mps-exclusive", no[i], "--mps-exclusive", &err), 0,
                     "%s: %s", no[i], err.msg);
        cr_expect_eq(c.mps_exclusive, false, "%s", no[i]);
        snprintf(text, sizeof(text), "mps_exclusive: %s\n", no[i]);
        cr_expect_eq(load(&c, text, &err), 0, "%s: %s", no[i], err.msg);
        cr_expect_eq(c.mps_exclusive, false, "file: %s", no[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[128];
        snprintf(want, sizeof(want),
                 "test: mps_exclusive: '%s' is not a boolean: give true or false (also yes/no, "
                 "on/off, 1/0)",
                 bad[i]);
        gm_config_defaults(&c);
        REFUSED(gm_config_set(&c, "mps_exclusive", bad[i], "test", ERR), want);
    }
    /* In the file: quoted alike, and YAML's null is no boolean. */
    cr_expect_eq(load(&c, "mps_exclusive: \"on\"\n", &err), 0, "%s", err.msg);
    cr_expect_eq(c.mps_exclusive, true);
    REFUSED(load(&c, "mps_exclusive: ~\n", ERR), "mps_exclusive: '' is not a boolean");
    REFUSED(load(&c, "mps_exclusive: tRuE\n", ERR), ":1: mps_exclusive: 'tRuE' is not a boolean");
}

/* Every on/off setting is a boolean: an integer from 0 to 1 is one written as a number. */
Test(config, on_off_settings_are_booleans)
{
    for (size_t i = 0; i < NTABLE; i++)
        cr_expect(!(strcmp(table[i].type, "I") == 0 && table[i].min == 0 && table[i].max == 1),
                  "%s is an integer 0..1: make it a boolean (B)", table[i].name);
}

Test(config, paths_are_absolute_and_normalised)
{
    struct gm_config c;
    struct gm_error err;
    gm_config_defaults(&c);
    cr_assert_eq(gm_config_set(&c, "state_dir", "/var/lib//gpumux/", "test", &err), 0);
    cr_expect_str_eq(c.state_dir, "/var/lib/gpumux");
    cr_assert_eq(gm_config_set(&c, "run_dir", "/run/./gpumux/../gm//", "test", &err), 0);
    cr_expect_str_eq(c.run_dir, "/run/gm");
    cr_assert_eq(gm_config_set(&c, "log_dir", "/../..//", "test", &err), 0);
    cr_expect_str_eq(c.log_dir, "/");
    /* On the command line, relative to the working directory. */
    cr_assert_eq(chdir(dir), 0);
    char cwd[PATH_MAX], want[PATH_MAX + 32];
    cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
    cr_assert_eq(gm_config_set(&c, "state-dir", "./state", "--state-dir", &err), 0, "%s", err.msg);
    snprintf(want, sizeof(want), "%s/state", cwd);
    cr_expect_str_eq(c.state_dir, want);
    cr_assert_eq(gm_config_set(&c, "log_dir", "logs", "test", &err), 0);
    snprintf(want, sizeof(want), "%s/logs", cwd);
    cr_expect_str_eq(c.log_dir, want);
    cr_assert_eq(gm_config_set(&c, "interposer", "../x/./libgpumux.so", "test", &err), 0);
    snprintf(want, sizeof(want), "%.*s/x/libgpumux.so", (int)(strrchr(cwd, '/') - cwd), cwd);
    cr_expect_str_eq(c.interposer, want);
    /* In a file, relative to the file's directory, whichever the working directory. */
    cr_assert_eq(chdir("/"), 0);
    gm_config_defaults(&c);
    const char *path = file("etc/gpumuxd.yaml", "state_dir: state\nrun_dir: ../run/\n"
                                                "gpusim_config: ./gpusim.yaml\n"
                                                "mps_control: /usr//bin/nvidia-cuda-mps-control\n");
    cr_assert_eq(gm_config_load(&c, path, &err), 0, "%s", err.msg);
    snprintf(want, sizeof(want), "%s/etc/state", cwd);
    cr_expect_str_eq(c.state_dir, want);
    snprintf(want, sizeof(want), "%s/run", cwd);
    cr_expect_str_eq(c.run_dir, want);
    snprintf(want, sizeof(want), "%s/etc/gpusim.yaml", cwd);
    cr_expect_str_eq(c.gpusim_config, want);
    cr_expect_str_eq(c.mps_control, "/usr/bin/nvidia-cuda-mps-control");
    /* A file named relative to the working directory. */
    cr_assert_eq(chdir(dir), 0);
    gm_config_defaults(&c);
    cr_assert_eq(gm_config_load(&c, "etc/gpumuxd.yaml", &err), 0, "%s", err.msg);
    snprintf(want, sizeof(want), "%s/etc/state", cwd);
    cr_expect_str_eq(c.state_dir, want);
    /* Empty: the default the help describes; the directories have none. */
    cr_assert_eq(gm_config_set(&c, "gpusim_dir", "", "test", &err), 0);
    cr_assert_eq(gm_config_set(&c, "interposer", "", "test", &err), 0);
    REFUSED(gm_config_set(&c, "state_dir", "", "--state-dir", ERR),
            "--state-dir: state_dir: may not be empty");
    REFUSED(gm_config_set(&c, "log_dir", "", "test", ERR), "log_dir: may not be empty");
    REFUSED(gm_config_set(&c, "gpusim_config", "~/gpusim.yaml", "test", ERR),
            "gpusim_config: '~/gpusim.yaml': gpumuxd does not expand ~");
    cr_assert_eq(load(&c, "gpusim_config: ~\nmps_control: null\ngpusim_dir:\n", &err), 0, "%s",
                 err.msg);
    cr_expect_str_eq(c.gpusim_config, "");
    cr_expect_str_eq(c.mps_control, "");
    /* The defaults derived from where gpumuxd is, normalised. */
    cr_assert_eq(gm_config_finish(&c, "/opt/gpumux/bin/", &err), 0, "%s", err.msg);
    cr_expect_str_eq(c.gpusim_dir, "/opt/gpumux/lib/gpusim");
    cr_expect_str_eq(c.interposer, "/opt/gpumux/lib/libgpumux.so");
    cr_expect_str_eq(c.gpusim_state, "/dev/shm/gpumux-gpusim");
    /* A path that does not fit is refused, never cut. */
    char big[PATH_MAX + 16];
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    REFUSED(gm_config_set(&c, "state_dir", big, "test", ERR), "is too long");
}

/* Each setting once per line "key: value", whatever else is comments and blank lines. */
static void each_setting_once(const char *text)
{
    int seen[NTABLE] = {0};
    char *copy = strdup(text);
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '#')
            continue;
        size_t i = 0;
        for (; i < NTABLE; i++) {
            size_t n = strlen(table[i].name);
            if (strncmp(l, table[i].name, n) == 0 && strncmp(l + n, ": ", 2) == 0)
                break;
        }
        cr_expect(i < NTABLE, "a line that is no setting: '%s'", l);
        if (i < NTABLE)
            seen[i]++;
    }
    free(copy);
    for (size_t i = 0; i < NTABLE; i++)
        cr_expect_eq(seen[i], 1, "%s is printed %d times", table[i].name, seen[i]);
}

/* --print-config's text is a config file that loads back as the same settings, each once. */
Test(config, print_loads_back_the_same)
{
    struct gm_config c, back;
    struct gm_error err;
    gm_config_defaults(&c);
    cr_assert_eq(gm_config_finish(&c, "/usr/bin", &err), 0, "%s", err.msg);
    char *text = printed(&c);
    each_setting_once(text);
    cr_expect(strstr(text, "\nmps_exclusive: false\n") != NULL, "%s", text);
    cr_expect(strstr(text, "\nmemory_check_slack: 512M\n") != NULL, "%s", text);
    cr_expect(strstr(text, "\nlog_max_size: 10M\n") != NULL, "%s", text);
    cr_expect(strstr(text, "\ngpusim_dir: \"/usr/lib/gpusim\"\n") != NULL, "%s", text);
    free(text);

    /* Every type away from its default, with text YAML would read otherwise. */
    static const char *const set[][2] = {
        {"state_dir", "/srv//gm state/"}, {"driver", "sim"},
        {"placement", "spread"},          {"log_level", "debug"},
        {"api_group", "a\"b\\c: #d"},     {"admin_group", "null"},
        {"memory_reserve", "1536M"},      {"memory_check_slack", "1000"},
        {"log_max_size", "1T"},           {"stop_timeout", "0"},
        {"mps_exclusive", "on"},          {"gpusim_config", "/etc/gm/'q'.yaml"},
        {"cgroup_root", "gpumux/x"},
    };
    gm_config_defaults(&c);
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        cr_assert_eq(gm_config_set(&c, set[i][0], set[i][1], "test", &err), 0, "%s: %s", set[i][0],
                     err.msg);
    cr_assert_eq(gm_config_finish(&c, "/usr/bin", &err), 0, "%s", err.msg);
    text = printed(&c);
    each_setting_once(text);
    cr_expect(strstr(text, "\nstate_dir: \"/srv/gm state\"\n") != NULL, "%s", text);
    cr_expect(strstr(text, "\nmps_exclusive: true\n") != NULL, "%s", text);
    cr_expect(strstr(text, "\nmemory_reserve: 1536M\n") != NULL, "%s", text);
    cr_expect(strstr(text, "\nmemory_check_slack: 1000\n") != NULL, "%s", text);
    cr_expect(strstr(text, "\nlog_max_size: 1T\n") != NULL, "%s", text);
    cr_assert_eq(load(&back, text, &err), 0, "%s\n%s", err.msg, text);
    cr_assert_eq(gm_config_finish(&back, "/elsewhere/bin", &err), 0, "%s", err.msg);
    char *again = printed(&back);
    cr_expect_str_eq(again, text);
    cr_expect_str_eq(back.api_group, "a\"b\\c: #d");
    cr_expect_str_eq(back.admin_group, "null");
    cr_expect_eq(back.memory_reserve, 1536 * GM_MIB);
    free(again);
    free(text);
}

/* The configuration `make install` puts in place, every setting commented out, is taken as it
 * is and with every setting uncommented, and changes nothing either way. */
Test(config, installed_sample_loads_as_the_defaults)
{
    const char *build = getenv("GM_BUILD_DIR");
    cr_assert_not_null(build, "GM_BUILD_DIR is not set");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/dist/gpumuxd.yaml", build);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        cr_skip_test("%s is not built", path);
    char *uncommented = NULL;
    size_t len;
    FILE *o = open_memstream(&uncommented, &len);
    char line[4096];
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t key = strspn(line + 1, "abcdefghijklmnopqrstuvwxyz_");
        fputs(line[0] == '#' && key > 0 && line[1 + key] == ':' ? line + 1 : line, o);
    }
    fclose(f);
    fclose(o);
    struct gm_config defaults, c;
    struct gm_error err;
    gm_config_defaults(&defaults);
    char *want = printed(&defaults);
    gm_config_defaults(&c);
    cr_assert_eq(gm_config_load(&c, path, &err), 0, "%s", err.msg);
    char *got = printed(&c);
    cr_expect_str_eq(got, want, "%s as it is", path);
    free(got);
    cr_assert_eq(load(&c, uncommented, &err), 0, "%s uncommented: %s\n%s", path, err.msg,
                 uncommented);
    got = printed(&c);
    cr_expect_str_eq(got, want, "%s uncommented", path);
    free(got);
    free(want);
    free(uncommented);
}

/* Runs the command (sh -c) with its output to out; returns its exit status. */
static int run(const char *cmd, const char *out)
{
    char line[4 * PATH_MAX + 64];
    snprintf(line, sizeof(line), "%s >'%s' 2>&1", cmd, out);
    int st = system(line);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

/* The daemon itself: what it prints, started elsewhere with that file, it prints again. */
Test(config, daemon_print_config_is_a_config_it_takes)
{
    const char *build = getenv("GM_BUILD_DIR");
    cr_assert_not_null(build, "GM_BUILD_DIR is not set");
    char cwd[1024], cmd[3 * PATH_MAX], p1[PATH_MAX], p2[PATH_MAX], out[PATH_MAX];
    cr_assert_eq(chdir(dir), 0);
    cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
    snprintf(p1, sizeof(p1), "%s/printed.yaml", cwd);
    snprintf(p2, sizeof(p2), "%s/again.yaml", cwd);
    snprintf(out, sizeof(out), "%s/out", cwd);
    file("etc/gpumuxd.yaml", "run_dir: ../run//\nmps_exclusive: Yes\nlog_max_size: 65536\n");
    snprintf(cmd, sizeof(cmd),
             "'%s/bin/gpumuxd' --config etc/gpumuxd.yaml --state-dir ./s//x/ --driver sim "
             "--print-config",
             build);
    cr_assert_eq(run(cmd, p1), 0, "%s", slurp(p1));
    char *one = slurp(p1);
    each_setting_once(one);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "\nstate_dir: \"%s/s/x\"\n", cwd);
    cr_expect(strstr(one, want) != NULL, "%s lacks %s", one, want);
    snprintf(want, sizeof(want), "\nrun_dir: \"%s/run\"\n", cwd);
    cr_expect(strstr(one, want) != NULL, "%s lacks %s", one, want);
    cr_expect(strstr(one, "\nmps_exclusive: true\n") != NULL, "%s", one);
    cr_expect(strstr(one, "\nlog_max_size: 64K\n") != NULL, "%s", one);
    cr_expect(strstr(one, "\ndriver: \"sim\"\n") != NULL, "%s", one);

    cr_assert_eq(chdir("/"), 0);
    snprintf(cmd, sizeof(cmd), "'%s/bin/gpumuxd' --config '%s' --check", build, p1);
    cr_expect_eq(run(cmd, out), 0, "--check: %s", slurp(out));
    snprintf(cmd, sizeof(cmd), "'%s/bin/gpumuxd' --config '%s' --print-config", build, p1);
    cr_assert_eq(run(cmd, p2), 0, "%s", slurp(p2));
    char *two = slurp(p2);
    cr_expect_str_eq(two, one);
    free(two);
    free(one);

    /* --check refuses what a start refuses, with the message. */
    file("bad.yaml", "stop_timeout: 99999\n");
    snprintf(cmd, sizeof(cmd), "'%s/bin/gpumuxd' --config '%s/bad.yaml' --check", build, cwd);
    cr_expect_eq(run(cmd, out), 1);
    char *msg = slurp(out);
    cr_expect(strstr(msg, "bad.yaml:1: stop_timeout: 99999 is out of range (0..3600)") != NULL,
              "%s", msg);
    free(msg);
    snprintf(cmd, sizeof(cmd), "'%s/bin/gpumuxd' --mps-exclusive maybe --check", build);
    cr_expect_eq(run(cmd, out), 2);
    msg = slurp(out);
    cr_expect(strstr(msg, "--mps-exclusive: mps_exclusive: 'maybe' is not a boolean") != NULL, "%s",
              msg);
    free(msg);
}

/* docs/config.md's settings section is the table's description, generated. */
Test(config, docs_match_the_table)
{
    gm_test_doc_section("docs/config.md",
                        "<!-- BEGIN SETTINGS (generated from src/daemon/config.h) -->\n",
                        "<!-- END SETTINGS -->", gm_config_describe, "config.md",
                        "the settings table in src/daemon/config.h (gpumuxd --print-config-doc)");
}
