/* The cgroup helpers, on every kind of hierarchy this machine offers (cgroup v2, v1 pids, v1
 * freezer) where it is writable; skipped with the reason where none is. */
#include "common/cgroup.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The mount point of fstype (with option opt among its super options, when given), read here
 * independently of the code under test. */
static int find_mount(const char *fstype, const char *opt, char *out, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (f == NULL)
        return -1;
    char line[4096];
    int found = -1;
    while (found < 0 && fgets(line, sizeof(line), f)) {
        char *sep = strstr(line, " - ");
        if (sep == NULL)
            continue;
        char mnt[PATH_MAX], type[64], src[256], super[1024] = "";
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
            sscanf(sep + 3, "%63s %255s %1023s", type, src, super) < 2)
            continue;
        if (strcmp(type, fstype) != 0)
            continue;
        if (opt != NULL) {
            char pat[80];
            snprintf(pat, sizeof(pat), ",%s,", opt);
            char sup[1100];
            snprintf(sup, sizeof(sup), ",%s,", super);
            if (strstr(sup, pat) == NULL)
                continue;
        }
        snprintf(out, len, "%s", mnt);
        found = 0;
    }
    fclose(f);
    return found;
}

struct kind {
    const char *fstype, *opt;
    enum gm_cg_kind want;
};
static const struct kind kinds[] = {
    {"cgroup2", NULL, GM_CG_V2},
    {"cgroup", "pids", GM_CG_V1_PIDS},
    {"cgroup", "freezer", GM_CG_V1_FREEZER},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

/* The cgroups made by a test, emptied and removed after it, also when it failed. */
static char made[8][PATH_MAX];
static int nmade;

static void teardown(void)
{
    for (int i = 0; i < nmade; i++) {
        gm_cgroup_kill(made[i], 5000, NULL);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        gm_cgroup_remove(made[i], NULL);
    }
    nmade = 0;
}

TestSuite(cgroup, .fini = teardown);

/* A fresh test cgroup of kind k in buf; 0 when this machine lets us make one. */
static int make_test_cgroup(const struct kind *k, char *buf, size_t len)
{
    char mnt[PATH_MAX - 64];
    if (find_mount(k->fstype, k->opt, mnt, sizeof(mnt)) < 0)
        return -1;
    static int seq;
    snprintf(buf, len, "%s/gpumux-unit-%d-%d", mnt, (int)getpid(), ++seq);
    struct gm_error err = {0};
    if (gm_cgroup_create(buf, &err) < 0)
        return -1;
    if (nmade < 8)
        snprintf(made[nmade++], PATH_MAX, "%s", buf);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A child that joins cg, then forks `forks` children of its own that each leave the process
 * group and the session (setsid), and waits forever. */
static pid_t start_in(const char *cg, int forks)
{
    pid_t p = fork();
    cr_assert_geq(p, 0);
    if (p == 0) {
        if (gm_cgroup_join(cg, 0) < 0)
            _exit(3);
        for (int i = 0; i < forks; i++) {
            if (fork() == 0) {
                setsid();
                if (fork() == 0) /* a double fork: the grandchild's parent is gone */
                    for (;;)
                        pause();
                _exit(0);
            }
        }
        for (;;)
            pause();
    }
    return p;
}

static size_t count(const char *cg)
{
    pid_t *pids;
    size_t n;
    struct gm_error err = {0};
    cr_assert_eq(gm_cgroup_pids(cg, &pids, &n, &err), 0, "%s", err.msg);
    free(pids);
    return n;
}

static void reap_all(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

Test(cgroup, each_kind_counts_signals_kills_and_removes, .timeout = 60)
{
    int tried = 0;
    for (size_t i = 0; i < NKINDS; i++) {
        const struct kind *k = &kinds[i];
        char cg[PATH_MAX];
        if (make_test_cgroup(k, cg, sizeof(cg)) < 0) {
            cr_log_info("%s%s%s: not mounted or not writable here, not tested", k->fstype,
                        k->opt ? " " : "", k->opt ? k->opt : "");
            continue;
        }
        tried++;
        struct gm_error err = {0};
        cr_assert_eq(gm_cgroup_kind(cg), k->want, "%s: kind %d", cg, gm_cgroup_kind(cg));
        cr_assert_eq(gm_cgroup_populated(cg, &err), 0, "%s: a new cgroup is empty", cg);

        pid_t p = start_in(cg, 3);
        /* The middle ones exit at once; their children stay. Until the last middle one has gone
         * the count may pass through 4 with one of them in it: wait for 4 that stay 4. */
        for (int t = 0, same = 0; t < 400 && same < 10; t++) {
            same = count(cg) == 4 && gm_cgroup_signal(cg, 0, NULL) == 4 ? same + 1 : 0;
            sleep_ms(5);
        }
        cr_assert_eq(count(cg), 4, "%s: the child and its three double-forked grandchildren", cg);
        cr_assert_eq(gm_cgroup_populated(cg, &err), 1, "%s: %s", cg, err.msg);
        cr_assert_eq(gm_cgroup_create(cg, &err), -GM_EBUSY, "%s: a populated cgroup is not reused",
                     cg);
        cr_assert_eq(gm_cgroup_remove(cg, &err), -GM_EBUSY, "%s", cg);
        /* Signal 0 reaches every process, whatever its session. */
        cr_assert_eq(gm_cgroup_signal(cg, 0, &err), 4, "%s: %s", cg, err.msg);

        cr_assert_eq(gm_cgroup_kill(cg, 5000, &err), 0, "%s: %s", cg, err.msg);
        cr_assert_eq(gm_cgroup_populated(cg, &err), 0, "%s: empty after the kill", cg);
        int st;
        cr_assert_eq(waitpid(p, &st, 0), p);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: status %#x", cg, st);
        reap_all();
        cr_assert_eq(gm_cgroup_signal(cg, SIGTERM, &err), 0, "%s: nothing left to signal", cg);
        cr_assert_eq(gm_cgroup_remove(cg, &err), 0, "%s: %s", cg, err.msg);
        struct stat sb;
        cr_assert_neq(stat(cg, &sb), 0, "%s removed", cg);
        cr_assert_eq(gm_cgroup_remove(cg, &err), 0, "%s: removing twice is fine", cg);
        cr_assert_eq(gm_cgroup_populated(cg, &err), 0, "a missing cgroup is empty");
    }
    if (tried == 0)
        cr_skip("no writable cgroup hierarchy here (needs root and cgroup v2 or v1 pids/freezer)");
}

/* A chain of processes, each forking the next as fast as it can, is still emptied by one kill. */
Test(cgroup, kill_wins_against_a_fork_loop, .timeout = 60)
{
    int tried = 0;
    for (size_t i = 0; i < NKINDS; i++) {
        char cg[PATH_MAX];
        if (make_test_cgroup(&kinds[i], cg, sizeof(cg)) < 0)
            continue;
        tried++;
        pid_t p = fork();
        cr_assert_geq(p, 0);
        if (p == 0) {
            if (gm_cgroup_join(cg, 0) < 0)
                _exit(3);
            for (int n = 0; n < 300; n++) {
                pid_t c = fork();
                if (c > 0)
                    break; /* the parent stays, the child forks the next */
                if (c < 0)
                    sleep_ms(1);
            }
            for (;;)
                pause();
        }
        /* Killed once the chain has begun in the cgroup. */
        for (int t = 0; t < 1000 && count(cg) < 2; t++)
            sleep_ms(2);
        cr_assert_geq(count(cg), 2, "%s: the chain did not start", cg);
        struct gm_error err = {0};
        cr_assert_eq(gm_cgroup_kill(cg, 10000, &err), 0, "%s: %s", cg, err.msg);
        cr_assert_eq(gm_cgroup_populated(cg, &err), 0, "%s", cg);
        waitpid(p, NULL, 0);
        reap_all();
        cr_assert_eq(gm_cgroup_remove(cg, &err), 0, "%s: %s", cg, err.msg);
    }
    if (tried == 0)
        cr_skip("no writable cgroup hierarchy here (needs root and cgroup v2 or v1 pids/freezer)");
}

Test(cgroup, resolve_root)
{
    char out[PATH_MAX];
    enum gm_cg_kind k;
    struct gm_error err = {0};
    cr_assert_eq(gm_cgroup_resolve_root("none", out, sizeof(out), &k, &err), 0);
    cr_assert_eq(k, GM_CG_NONE);
    cr_assert_str_eq(out, "");
    /* A directory outside any cgroup file system is refused, naming it. */
    char tmp[] = "/tmp/gm-cg-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    cr_assert_lt(gm_cgroup_resolve_root(tmp, out, sizeof(out), &k, &err), 0);
    cr_assert(strstr(err.msg, tmp) != NULL && strstr(err.msg, "cgroup") != NULL, "%s", err.msg);
    cr_assert_str_eq(out, "");
    rmdir(tmp);
    cr_assert_eq(gm_cgroup_kind(tmp), GM_CG_NONE);

    /* A relative path lies under the mount that auto would take: cgroup2 first. */
    char want[PATH_MAX], rel[64];
    int have = find_mount("cgroup2", NULL, want, sizeof(want)) == 0 ||
               find_mount("cgroup", "pids", want, sizeof(want)) == 0 ||
               find_mount("cgroup", "freezer", want, sizeof(want)) == 0;
    snprintf(rel, sizeof(rel), "gpumux-unit-root-%d", (int)getpid());
    int rc = gm_cgroup_resolve_root(rel, out, sizeof(out), &k, &err);
    if (!have || (rc < 0 && geteuid() != 0))
        cr_skip("no writable cgroup hierarchy here: %s", err.msg);
    cr_assert_eq(rc, 0, "%s", err.msg);
    size_t n = strlen(want);
    cr_assert(strncmp(out, want, n) == 0 && strcmp(out + n + 1, rel) == 0, "%s under %s", out,
              want);
    cr_assert_neq(k, GM_CG_NONE);
    cr_assert_eq(gm_cgroup_remove(out, &err), 0, "%s", err.msg);
}
