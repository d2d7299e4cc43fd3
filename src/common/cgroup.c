#include "common/cgroup.h"
#include "common/clock.h"
#include "common/path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif

const char *gm_cgroup_kind_name(enum gm_cg_kind k)
{
    switch (k) {
    case GM_CG_V2:
        return "cgroup v2";
    case GM_CG_V1_PIDS:
        return "cgroup v1 pids";
    case GM_CG_V1_FREEZER:
        return "cgroup v1 freezer";
    default:
        return "no cgroup";
    }
}

static int has_file(const char *dir, const char *name)
{
    char p[PATH_MAX];
    return gm_path_try(p, sizeof(p), "%s/%s", dir, name) == 0 && access(p, F_OK) == 0;
}

enum gm_cg_kind gm_cgroup_kind(const char *path)
{
    struct statfs sf;
    if (path == NULL || path[0] == '\0' || statfs(path, &sf) < 0)
        return GM_CG_NONE;
    if ((unsigned long)sf.f_type == (unsigned long)CGROUP2_SUPER_MAGIC)
        return GM_CG_V2;
    if ((unsigned long)sf.f_type != (unsigned long)CGROUP_SUPER_MAGIC)
        return GM_CG_NONE;
    /* A v1 hierarchy's root has no controller files; its cgroups do. */
    if (has_file(path, "pids.max"))
        return GM_CG_V1_PIDS;
    if (has_file(path, "freezer.state"))
        return GM_CG_V1_FREEZER;
    return GM_CG_NONE;
}

/* ---- small files ---------------------------------------------------------------------------- */

/* Writes text to DIR/name. Only open, write and close. Returns 0 or -errno. */
static int put(const char *dir, const char *name, const char *text)
{
    char p[PATH_MAX];
    if (gm_path_try(p, sizeof(p), "%s/%s", dir, name) < 0)
        return -ENAMETOOLONG;
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    ssize_t w;
    while ((w = write(fd, text, len)) < 0 && errno == EINTR)
        ;
    int e = w < 0 ? errno : 0;
    close(fd);
    return w < 0 ? -e : 0;
}

/* Reads DIR/name whole into a malloc'd, NUL-terminated buffer. Returns 0, -ENOENT, or -errno. */
static int get(const char *dir, const char *name, char **out)
{
    *out = NULL;
    char p[PATH_MAX];
    if (gm_path_try(p, sizeof(p), "%s/%s", dir, name) < 0)
        return -ENAMETOOLONG;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len;
    int rc = gm_read_all(fd, out, &len);
    close(fd);
    return rc;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ---- finding the hierarchy ------------------------------------------------------------------ */

/* Undoes the octal escapes (\040 for a space) of a mountinfo field, in place. */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Has the comma-separated option list opts the option want? */
static int has_opt(const char *opts, const char *want)
{
    size_t n = strlen(want);
    for (const char *p = opts; p && *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == n && strncmp(p, want, n) == 0)
            return 1;
        p = c ? c + 1 : NULL;
    }
    return 0;
}

/* The mount point of the best hierarchy: cgroup2, else v1 pids, else v1 freezer. */
static int find_mount(char *out, size_t len, struct gm_error *err)
{
    char *text = NULL;
    int rc = get("/proc/self", "mountinfo", &text);
    if (rc < 0)
        return gm_err_errno(err, GM_EIO, -rc, "reading /proc/self/mountinfo");
    char best[3][PATH_MAX] = {"", "", ""};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        /* ID PARENT MAJ:MIN ROOT MOUNT OPTS [OPTIONAL..] - FSTYPE SOURCE SUPER_OPTS */
        char *sep = strstr(line, " - ");
        if (sep == NULL)
            continue;
        *sep = '\0';
        char *f[5] = {0}, *s2 = NULL;
        int nf = 0;
        for (char *t = strtok_r(line, " ", &s2); t && nf < 5; t = strtok_r(NULL, " ", &s2))
            f[nf++] = t;
        char *rest = sep + 3, *s3 = NULL;
        char *fstype = strtok_r(rest, " ", &s3);
        strtok_r(NULL, " ", &s3); /* source */
        char *super = strtok_r(NULL, " ", &s3);
        if (nf < 5 || fstype == NULL)
            continue;
        int slot = -1;
        if (strcmp(fstype, "cgroup2") == 0)
            slot = 0;
        else if (strcmp(fstype, "cgroup") == 0 && super && has_opt(super, "pids"))
            slot = 1;
        else if (strcmp(fstype, "cgroup") == 0 && super && has_opt(super, "freezer"))
            slot = 2;
        if (slot < 0 || best[slot][0] != '\0')
            continue;
        unescape(f[4]);
        snprintf(best[slot], sizeof(best[slot]), "%s", f[4]);
    }
    free(text);
    for (int i = 0; i < 3; i++) {
        if (best[i][0] != '\0')
            return gm_path(err, out, len, "%s", best[i]);
    }
    return gm_err(err, GM_ENOTFOUND,
                  "no cgroup2 mount and no v1 pids or freezer hierarchy in /proc/self/mountinfo");
}

int gm_cgroup_resolve_root(const char *setting, char *out, size_t len, enum gm_cg_kind *kind,
                           struct gm_error *err)
{
    *kind = GM_CG_NONE;
    if (len > 0)
        out[0] = '\0';
    if (setting == NULL || strcmp(setting, "none") == 0)
        return 0;
    char path[PATH_MAX];
    int rc;
    if (setting[0] == '/') {
        rc = gm_path(err, path, sizeof(path), "%s", setting);
    } else {
        char mnt[PATH_MAX];
        rc = find_mount(mnt, sizeof(mnt), err);
        if (rc == 0)
            rc = gm_path(err, path, sizeof(path), "%s/%s", mnt,
                         strcmp(setting, "auto") == 0 ? "gpumux" : setting);
    }
    if (rc < 0)
        return gm_err_wrap(err, "cgroup_root %s", setting);
    if (gm_mkdir_p(path, 0755, err) < 0)
        return gm_err_wrap(err, "cgroup_root %s", setting);
    enum gm_cg_kind k = gm_cgroup_kind(path);
    if (k == GM_CG_NONE)
        return gm_err(err, GM_EINVAL,
                      "cgroup_root %s: %s is not in a cgroup v2 hierarchy or a cgroup of the v1 "
                      "pids or freezer hierarchy",
                      setting, path);
    char procs[PATH_MAX];
    if ((rc = gm_path(err, procs, sizeof(procs), "%s/cgroup.procs", path)) < 0)
        return rc;
    if (access(procs, W_OK) != 0)
        return gm_err_errno(err, GM_EPERM, errno, "cgroup_root %s: %s is not writable", setting,
                            procs);
    rc = gm_path(err, out, len, "%s", path);
    if (rc == 0)
        *kind = k;
    return rc;
}

/* ---- one cgroup ----------------------------------------------------------------------------- */

int gm_cgroup_create(const char *path, struct gm_error *err)
{
    if (gm_mkdir_p(path, 0755, err) < 0)
        return gm_err_wrap(err, "cgroup %s", path);
    if (gm_cgroup_kind(path) == GM_CG_NONE)
        return gm_err(err, GM_EINVAL, "cgroup %s: not in a usable cgroup hierarchy", path);
    int pop = gm_cgroup_populated(path, err);
    if (pop < 0)
        return pop;
    if (pop > 0)
        return gm_err(err, GM_EBUSY, "cgroup %s: already has processes", path);
    return 0;
}

int gm_cgroup_join(const char *path, pid_t pid)
{
    /* No stdio: a decimal by hand. */
    char num[24];
    int i = (int)sizeof(num) - 1;
    num[i] = '\0';
    unsigned long v = pid > 0 ? (unsigned long)pid : 0;
    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && i > 0);
    return put(path, "cgroup.procs", num + i);
}

int gm_cgroup_pids(const char *path, pid_t **pids, size_t *n, struct gm_error *err)
{
    *pids = NULL;
    *n = 0;
    char *text = NULL;
    int rc = get(path, "cgroup.procs", &text);
    if (rc == -ENOENT || rc == -ENODEV)
        return 0;
    if (rc < 0)
        return gm_err_errno(err, GM_EIO, -rc, "cgroup %s: reading cgroup.procs", path);
    size_t cap = 0;
    for (char *p = text; *p; p++)
        cap += *p == '\n';
    pid_t *v = calloc(cap + 1, sizeof(*v));
    if (v == NULL) {
        free(text);
        return gm_err(err, GM_ENOMEM, "cgroup %s: out of memory", path);
    }
    size_t k = 0;
    for (char *p = text; *p && k <= cap;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p)
            break;
        if (x > 0)
            v[k++] = (pid_t)x;
        p = end;
        while (*p == '\n')
            p++;
    }
    free(text);
    *pids = v;
    *n = k;
    return 0;
}

int gm_cgroup_populated(const char *path, struct gm_error *err)
{
    if (gm_cgroup_kind(path) == GM_CG_V2) {
        char *text = NULL;
        int rc = get(path, "cgroup.events", &text);
        if (rc == -ENOENT || rc == -ENODEV)
            return 0;
        if (rc < 0)
            return gm_err_errno(err, GM_EIO, -rc, "cgroup %s: reading cgroup.events", path);
        const char *p = strstr(text, "populated ");
        int pop = p != NULL && p[10] == '1';
        free(text);
        return pop;
    }
    /* v1 lists no zombies in cgroup.procs, and a workload cannot make sub-cgroups. */
    pid_t *pids;
    size_t n;
    int rc = gm_cgroup_pids(path, &pids, &n, err);
    free(pids);
    return rc < 0 ? rc : n > 0;
}

int gm_cgroup_signal(const char *path, int sig, struct gm_error *err)
{
    pid_t *pids;
    size_t n;
    int rc = gm_cgroup_pids(path, &pids, &n, err);
    if (rc < 0)
        return rc;
    int sent = 0;
    for (size_t i = 0; i < n; i++)
        if (kill(pids[i], sig) == 0)
            sent++;
    free(pids);
    return sent;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int gm_cgroup_kill(const char *path, int64_t timeout_ms, struct gm_error *err)
{
    enum gm_cg_kind k = gm_cgroup_kind(path);
    if (k == GM_CG_NONE)
        return exists(path) ? gm_err(err, GM_EINVAL, "cgroup %s: not a cgroup", path) : 0;
    int64_t deadline = gm_mono_ms() + timeout_ms;
    int have_kill = k == GM_CG_V2 && has_file(path, "cgroup.kill");
    /* Nothing new is forked while the listed pids are killed. */
    if (k == GM_CG_V1_PIDS)
        put(path, "pids.max", "0");
    else if (k == GM_CG_V2 && !have_kill)
        put(path, "cgroup.freeze", "1");
    int rc = 0;
    for (long nap = 1;; nap = nap < 20 ? nap * 2 : 20) {
        if (have_kill) {
            int w = put(path, "cgroup.kill", "1");
            if (w < 0 && w != -ENOENT && w != -ENODEV) {
                rc = gm_err_errno(err, GM_EIO, -w, "cgroup %s: writing cgroup.kill", path);
                break;
            }
        } else {
            /* v1 frozen tasks take a SIGKILL only once thawed. */
            if (k == GM_CG_V1_FREEZER)
                put(path, "freezer.state", "FROZEN");
            gm_cgroup_signal(path, SIGKILL, NULL);
            if (k == GM_CG_V1_FREEZER)
                put(path, "freezer.state", "THAWED");
        }
        int pop = gm_cgroup_populated(path, err);
        if (pop <= 0) {
            rc = pop;
            break;
        }
        if (gm_mono_ms() >= deadline) {
            rc = gm_err(err, GM_EBUSY, "cgroup %s: processes left after %lld ms of SIGKILL", path,
                        (long long)timeout_ms);
            break;
        }
        nap_ms(nap);
    }
    if (k == GM_CG_V1_PIDS)
        put(path, "pids.max", "max");
    else if (k == GM_CG_V2 && !have_kill)
        put(path, "cgroup.freeze", "0");
    return rc;
}

int gm_cgroup_remove(const char *path, struct gm_error *err)
{
    if (!exists(path))
        return 0;
    int pop = gm_cgroup_populated(path, err);
    if (pop < 0)
        return pop;
    if (pop > 0)
        return gm_err(err, GM_EBUSY, "cgroup %s: still has processes", path);
    if (rmdir(path) < 0 && errno != ENOENT)
        return gm_err_errno(err, errno == EBUSY ? GM_EBUSY : GM_EIO, errno, "cgroup %s: removing",
                            path);
    return 0;
}
