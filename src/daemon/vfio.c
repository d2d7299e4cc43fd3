/* The executor half of VM passthrough (vfio.h): reads sysfs, writes its files one step at a
 * time and checks each took effect, finds who holds a group's vfio node, and keeps the journal
 * of an attach. Files are opened without following a link in their last component; the trees
 * are the administrator's (sysfs_root, dev_root). */
#include "daemon/vfio.h"
#include "common/clock.h"
#include "common/path.h"
#include "common/strv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The first line of a small sysfs file, without its newline; "" when it cannot be read. */
static void read_line(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    buf[n > 0 ? (size_t)n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
}

static unsigned read_hex(const char *dir, const char *name)
{
    char path[PATH_MAX], v[64];
    if (gm_path(NULL, path, sizeof(path), "%s/%s", dir, name) < 0)
        return 0;
    read_line(path, v, sizeof(v));
    return (unsigned)strtoul(v, NULL, 16);
}

/* The last component of what the link at dir/name points to; "" when there is none. */
static void link_base(const char *dir, const char *name, char *buf, size_t len)
{
    char path[PATH_MAX], target[PATH_MAX];
    buf[0] = '\0';
    if (gm_path(NULL, path, sizeof(path), "%s/%s", dir, name) < 0)
        return;
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n <= 0)
        return;
    target[n] = '\0';
    const char *slash = strrchr(target, '/'), *base = slash ? slash + 1 : target;
    if (strlen(base) < len)
        memcpy(buf, base, strlen(base) + 1);
}

static void read_func(const char *sys, const char *bdf, struct gm_pci_func *f)
{
    char dir[PATH_MAX];
    memset(f, 0, sizeof(*f));
    snprintf(f->bdf, sizeof(f->bdf), "%s", bdf);
    if (gm_path(NULL, dir, sizeof(dir), "%s/bus/pci/devices/%s", sys, bdf) < 0)
        return;
    f->vendor = read_hex(dir, "vendor");
    f->device = read_hex(dir, "device");
    f->klass = read_hex(dir, "class");
    link_base(dir, "driver", f->driver, sizeof(f->driver));
    char path[PATH_MAX];
    if (gm_path(NULL, path, sizeof(path), "%s/driver_override", dir) == 0)
        read_line(path, f->override, sizeof(f->override));
    if (strcmp(f->override, "(null)") == 0)
        f->override[0] = '\0';
}

static int by_bdf(const void *a, const void *b)
{
    return strcmp(((const struct gm_pci_func *)a)->bdf, ((const struct gm_pci_func *)b)->bdf);
}

int gm_vfio_read(const char *sys, const char *dev, const char *bdf, struct gm_vfio_group *g,
                 struct gm_error *err)
{
    memset(g, 0, sizeof(*g));
    g->group = -1;
    char path[PATH_MAX], name[64];
    struct stat st;
    if (gm_path(err, path, sizeof(path), "%s/kernel/iommu_groups", sys) < 0)
        return -GM_EINVAL;
    DIR *groups = opendir(path);
    if (groups != NULL) {
        struct dirent *e;
        while ((e = readdir(groups)) != NULL)
            if (e->d_name[0] != '.')
                g->iommu = 1;
        closedir(groups);
    }
    if (gm_path(err, path, sizeof(path), "%s/bus/pci/drivers/" GM_VFIO_DRIVER, sys) < 0)
        return -GM_EINVAL;
    g->vfio_loaded = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (gm_path(err, path, sizeof(path), "%s/bus/pci/devices/%s", sys, bdf) < 0)
        return -GM_EINVAL;
    g->found = stat(path, &st) == 0;
    if (!g->found)
        return 0;
    link_base(path, "iommu_group", name, sizeof(name));
    if (name[0] == '\0') {
        /* No group: the function alone, for the refusal to name. */
        read_func(sys, bdf, &g->f[g->n++]);
        return 0;
    }
    g->group = atoi(name);
    if (gm_path(err, path, sizeof(path), "%s/kernel/iommu_groups/%d/devices", sys, g->group) < 0)
        return -GM_EINVAL;
    DIR *devs = opendir(path);
    if (devs == NULL)
        return gm_err_errno(err, GM_EIO, errno, "IOMMU group %d: %s", g->group, path);
    struct dirent *e;
    while ((e = readdir(devs)) != NULL && g->n < GM_VFIO_MAX_FUNCS)
        if (e->d_name[0] != '.')
            read_func(sys, e->d_name, &g->f[g->n++]);
    closedir(devs);
    qsort(g->f, g->n, sizeof(g->f[0]), by_bdf);
    if (gm_path(err, path, sizeof(path), "%s/vfio/%d", dev, g->group) < 0)
        return -GM_EINVAL;
    g->dev_node = stat(path, &st) == 0;
    return 0;
}

/* Writes text to a sysfs file as `echo TEXT > FILE` does. */
static int write_file(const char *path, const char *text, struct gm_error *err)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return gm_err_errno(err, GM_EIO, errno, "%s", path);
    char line[128];
    int n = snprintf(line, sizeof(line), "%s\n", text);
    ssize_t w = write(fd, line, (size_t)n);
    int e = errno;
    if (close(fd) < 0 && w == n)
        return gm_err_errno(err, GM_EIO, errno, "%s", path);
    if (w != n)
        return gm_err_errno(err, GM_EIO, w < 0 ? e : EIO, "writing '%s' to %s", text, path);
    return 0;
}

/* The file a step writes and what it writes there. */
static int step_target(const char *sys, const struct gm_vfio_step *s, const char *bdf, char *path,
                       size_t len, const char **text, struct gm_error *err)
{
    switch (s->op) {
    case GM_VFIO_OVERRIDE:
        *text = s->arg;
        return gm_path(err, path, len, "%s/bus/pci/devices/%s/driver_override", sys, bdf);
    case GM_VFIO_UNBIND:
        *text = bdf;
        return gm_path(err, path, len, "%s/bus/pci/drivers/%s/unbind", sys, s->arg);
    case GM_VFIO_PROBE:
        *text = bdf;
        return gm_path(err, path, len, "%s/bus/pci/drivers_probe", sys);
    case GM_VFIO_BIND:
        *text = bdf;
        return gm_path(err, path, len, "%s/bus/pci/drivers/%s/bind", sys, s->arg);
    }
    return gm_err(err, GM_EINVAL, "unknown step");
}

/* Has the step taken effect on the function? */
static int took_effect(const char *sys, const struct gm_vfio_step *s, const char *bdf,
                       struct gm_pci_func *now)
{
    read_func(sys, bdf, now);
    if (strcmp(now->driver, s->expect) != 0)
        return 0;
    return s->op != GM_VFIO_OVERRIDE || strcmp(now->override, s->arg) == 0;
}

int gm_vfio_apply(const char *sys, const struct gm_vfio_group *g, const struct gm_vfio_plan *p,
                  long timeout_ms, size_t *done, struct gm_error *err)
{
    *done = 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct gm_vfio_step *s = &p->s[i];
        const char *bdf = g->f[s->func].bdf, *text = "";
        char path[PATH_MAX];
        int rc = step_target(sys, s, bdf, path, sizeof(path), &text, err);
        if (rc == 0)
            rc = write_file(path, text, err);
        if (rc < 0)
            return gm_err_wrap(err, "step %zu of %zu (%s) on %s failed", i + 1, p->n,
                               gm_vfio_op_name(s->op), bdf);
        struct gm_pci_func now;
        int64_t until = gm_mono_ms() + timeout_ms;
        while (!took_effect(sys, s, bdf, &now) && gm_mono_ms() < until)
            usleep(2000);
        if (!took_effect(sys, s, bdf, &now))
            return gm_err(err, GM_EIO,
                          "step %zu of %zu (%s%s%s) on %s did not take effect: its driver is %s, "
                          "%s was expected%s%s",
                          i + 1, p->n, gm_vfio_op_name(s->op), s->arg[0] ? " " : "", s->arg, bdf,
                          now.driver[0] ? now.driver : "none", s->expect[0] ? s->expect : "none",
                          s->op == GM_VFIO_OVERRIDE ? ", driver_override is " : "",
                          s->op == GM_VFIO_OVERRIDE ? (now.override[0] ? now.override : "(null)")
                                                    : "");
        *done = i + 1;
    }
    return 0;
}

int gm_vfio_holders(const char *dev, int group, struct gm_strv *out)
{
    char node[PATH_MAX];
    if (group < 0 || gm_path(NULL, node, sizeof(node), "%s/vfio/%d", dev, group) < 0)
        return 0;
    char real[PATH_MAX];
    const char *want = realpath(node, real) != NULL ? real : node;
    DIR *proc = opendir("/proc");
    if (proc == NULL)
        return 0;
    struct dirent *p;
    while ((p = readdir(proc)) != NULL) {
        if (p->d_name[0] < '1' || p->d_name[0] > '9')
            continue;
        char fds[300];
        snprintf(fds, sizeof(fds), "/proc/%.255s/fd", p->d_name);
        DIR *d = opendir(fds);
        if (d == NULL)
            continue;
        struct dirent *f;
        int holds = 0;
        while (!holds && (f = readdir(d)) != NULL) {
            char link[PATH_MAX], target[PATH_MAX];
            if (f->d_name[0] == '.' ||
                snprintf(link, sizeof(link), "%s/%s", fds, f->d_name) >= (int)sizeof(link))
                continue;
            ssize_t n = readlink(link, target, sizeof(target) - 1);
            if (n > 0) {
                target[n] = '\0';
                holds = strcmp(target, want) == 0;
            }
        }
        closedir(d);
        if (holds) {
            char path[300], comm[64];
            snprintf(path, sizeof(path), "/proc/%.255s/comm", p->d_name);
            read_line(path, comm, sizeof(comm));
            gm_strv_addf(out, "%s (%s)", p->d_name, comm[0] ? comm : "?");
        }
    }
    closedir(proc);
    return (int)out->n;
}

/* ---- the journal ------------------------------------------------------------------------- */

static const char *const phase_names[] = {"binding", "attached", "releasing"};

const char *gm_vfio_phase_name(enum gm_vfio_phase p)
{
    return (unsigned)p < 3 ? phase_names[p] : "?";
}

static int journal_path(const char *state_dir, const char *uuid, char *buf, size_t len)
{
    return gm_path(NULL, buf, len, "%s/vfio/%s.json", state_dir, uuid);
}

int gm_vfio_journal_write(const char *state_dir, const struct gm_vfio_journal *j,
                          struct gm_error *err)
{
    char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX + 8];
    if (gm_path(err, dir, sizeof(dir), "%s/vfio", state_dir) < 0 ||
        journal_path(state_dir, j->uuid, path, sizeof(path)) < 0)
        return gm_err(err, GM_EINVAL, "the journal's path is too long");
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return gm_err_errno(err, GM_EIO, errno, "%s", dir);
    json_t *o = json_object(), *fs = json_array();
    json_object_set_new(o, "gpu", json_string(j->uuid));
    json_object_set_new(o, "vm", json_string(j->vm));
    json_object_set_new(o, "bdf", json_string(j->gpu_bdf));
    json_object_set_new(o, "phase", json_string(gm_vfio_phase_name(j->phase)));
    json_object_set_new(o, "group", json_integer(j->group));
    for (size_t i = 0; i < j->n; i++)
        json_array_append_new(fs,
                              json_pack("{s:s, s:s}", "bdf", j->bdf[i], "driver", j->driver[i]));
    json_object_set_new(o, "functions", fs);
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd =
        text != NULL ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
    size_t len = text != NULL ? strlen(text) : 0;
    int rc = 0;
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
        rc = gm_err_errno(err, GM_EIO, errno, "writing %s", tmp);
    if (fd >= 0)
        close(fd);
    free(text);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = gm_err_errno(err, GM_EIO, errno, "renaming %s", tmp);
    if (rc < 0)
        unlink(tmp);
    /* The rename itself reaches the disk before the first step is made. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return rc;
}

int gm_vfio_journal_read(const char *state_dir, const char *uuid, struct gm_vfio_journal *j,
                         struct gm_error *err)
{
    char path[PATH_MAX];
    memset(j, 0, sizeof(*j));
    if (journal_path(state_dir, uuid, path, sizeof(path)) < 0)
        return gm_err(err, GM_EINVAL, "the journal's path is too long");
    if (access(path, F_OK) < 0)
        return -GM_ENOTFOUND;
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    const char *vm = json_string_value(json_object_get(o, "vm")),
               *bdf = json_string_value(json_object_get(o, "bdf")),
               *phase = json_string_value(json_object_get(o, "phase"));
    const json_t *fs = json_object_get(o, "functions");
    int rc = 0;
    if (vm == NULL || bdf == NULL || phase == NULL || !json_is_array(fs) ||
        json_array_size(fs) > GM_VFIO_MAX_FUNCS) {
        rc = gm_err(err, GM_EIO, "%s: not a journal of gpumuxd's%s%s", path, o ? "" : ": ",
                    o ? "" : je.text);
        json_decref(o);
        return rc;
    }
    snprintf(j->uuid, sizeof(j->uuid), "%s", uuid);
    snprintf(j->vm, sizeof(j->vm), "%s", vm);
    snprintf(j->gpu_bdf, sizeof(j->gpu_bdf), "%s", bdf);
    j->phase = GM_VFIO_BINDING;
    for (int p = 0; p < 3; p++)
        if (strcmp(phase, phase_names[p]) == 0)
            j->phase = (enum gm_vfio_phase)p;
    j->group = (int)json_integer_value(json_object_get(o, "group"));
    size_t i;
    const json_t *f;
    json_array_foreach(fs, i, f)
    {
        const char *b = json_string_value(json_object_get(f, "bdf")),
                   *d = json_string_value(json_object_get(f, "driver"));
        snprintf(j->bdf[j->n], sizeof(j->bdf[0]), "%s", b ? b : "");
        snprintf(j->driver[j->n], sizeof(j->driver[0]), "%s", d ? d : "");
        j->n++;
    }
    json_decref(o);
    return 0;
}

void gm_vfio_journal_remove(const char *state_dir, const char *uuid)
{
    char path[PATH_MAX];
    if (journal_path(state_dir, uuid, path, sizeof(path)) == 0)
        unlink(path);
}

int gm_vfio_journal_list(const char *state_dir, struct gm_strv *uuids)
{
    char dir[PATH_MAX];
    if (gm_path(NULL, dir, sizeof(dir), "%s/vfio", state_dir) < 0)
        return 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".json") == 0)
            gm_strv_addf(uuids, "%.*s", (int)(n - 5), e->d_name);
    }
    closedir(d);
    return (int)uuids->n;
}
