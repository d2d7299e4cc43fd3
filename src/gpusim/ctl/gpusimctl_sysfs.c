/* `gpusimctl sysfs`: a simulated sysfs for VM passthrough, and a small simulated kernel that
 * honours writes to it.
 *
 * `sysfs create ROOT` lays out under ROOT/sys the part of Linux's sysfs that moving a PCI device
 * to vfio-pci goes through (the functions of gpusim's GPUs, the PCI drivers, the IOMMU groups),
 * ROOT/dev/vfio, and the simulation's own files under ROOT/sim (default drivers, failure
 * injection, a log). `sysfs kernel ROOT` watches the files Linux lets an administrator write
 * (driver_override, bind, unbind, drivers_probe) with inotify, changes the tree as the kernel
 * would when a writer closes one, and where it may, holds the next opens until then (fanotify,
 * see gate_thread). Every path is opened below ROOT one component at a time without following
 * links, so nothing a writer places in the tree takes either command out of it. See
 * docs/gpusim.md, "A simulated sysfs for VM passthrough". */
#include "gpusim/ctl/gpusimctl.h"

#include "common/clock.h"
#include "common/parse.h"
#include "common/path.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_USAGE 2

#define USAGE_CREATE "sysfs create ROOT [--no-iommu] [--no-vfio-pci] [--foreign-in-group INDEX]"
#define USAGE_KERNEL "sysfs kernel ROOT [--exit-after-idle-ms N]"

/* The IOMMU group of GPU i: both its functions, and the foreign device when asked. */
#define GROUP_BASE 20
/* What Linux accepts in one write to a sysfs attribute. */
#define ATTR_MAX 4096

static const char *root_arg; /* ROOT as given, for messages */

__attribute__((format(printf, 1, 2))) static int say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gpusimctl sysfs: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

/* "ROOT/rel: reason" for the failed call's errno. */
static int path_error(const char *rel, int errnum)
{
    return say("%s/%s: %s", root_arg, rel, strerror(errnum));
}

static int usage(const char *line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage(const char *line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gpusimctl sysfs: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: gpusimctl %s\n", line);
    return EXIT_USAGE;
}

/* ---- Paths below ROOT ----------------------------------------------------------------------- */

/* One path component that stays in its directory. */
static int plain_name(const char *s)
{
    return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* The directory rel ("a/b/c", "" for dfd itself) below dfd, each component opened without
 * following a link; with create, missing ones are made with mode 0755. Returns a descriptor the
 * caller closes, or -1 with errno set. */
static int walk(int dfd, const char *rel, int create)
{
    char buf[PATH_MAX];
    if (gm_path_try(buf, sizeof(buf), "%s", rel) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    char *save = NULL;
    for (char *c = strtok_r(buf, "/", &save); c != NULL && fd >= 0;
         c = strtok_r(NULL, "/", &save)) {
        if (!plain_name(c)) {
            close(fd);
            errno = EINVAL;
            return -1;
        }
        int made = create && mkdirat(fd, c, 0755) == 0;
        if (create && !made && errno != EEXIST) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(fd);
        if (next >= 0 && made)
            (void)fchmod(next, 0755); /* whatever the umask, as sysfs shows its directories */
        errno = e;
        fd = next;
    }
    return fd;
}

/* The directory holding rel's last component (opened as walk does), and that component. */
static int walk_parent(int dfd, const char *rel, int create, const char **name)
{
    const char *slash = strrchr(rel, '/');
    *name = slash != NULL ? slash + 1 : rel;
    if (!plain_name(*name)) {
        errno = EINVAL;
        return -1;
    }
    char dir[PATH_MAX];
    size_t n = slash != NULL ? (size_t)(slash - rel) : 0;
    if (n >= sizeof(dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, rel, n);
    dir[n] = '\0';
    return walk(dfd, dir, create);
}

/* Reads the regular file name in dfd (never a link), at most size - 1 bytes, NUL-terminated.
 * A write-only attribute (mode 0200, as Linux has them) is made readable for the moment when
 * its owner is not root. Returns the length or -1 with errno set. */
static ssize_t read_at(int dfd, const char *name, char *buf, size_t size)
{
    const int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
    int fd = openat(dfd, name, flags);
    if (fd < 0 && errno == EACCES) {
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            st.st_uid == geteuid() && fchmodat(dfd, name, st.st_mode | 0400, 0) == 0) {
            fd = openat(dfd, name, flags);
            int e = errno;
            (void)fchmodat(dfd, name, st.st_mode & 07777, 0);
            errno = e;
        } else {
            errno = EACCES;
        }
    }
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return (ssize_t)len;
}

static int write_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes content into name in dfd (never a link): a new file with mode when excl, else the
 * existing one, truncated first. Returns 0 or -1 with errno set. */
static int write_at(int dfd, const char *name, const char *content, mode_t mode, int excl)
{
    int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | (excl ? O_CREAT | O_EXCL : O_TRUNC);
    int fd = openat(dfd, name, flags, mode);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, content, strlen(content));
    if (rc == 0 && excl)
        rc = fchmod(fd, mode);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* Leading and trailing white space off s, in place. */
static char *strip(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* What a write to an attribute says: its first line, without white space around it. Linux
 * takes a write's text up to its first newline; a writer that does not truncate the file
 * (open O_WRONLY, as sysfs needs no O_TRUNC) leaves the rest of the earlier content after it. */
static char *written_value(char *s)
{
    s[strcspn(s, "\n")] = '\0';
    return strip(s);
}

/* ---- sysfs create --------------------------------------------------------------------------- */

/* PCI device ids of NVIDIA models by the name NVML reports, with their boards' subsystem id.
 * Other names get the state's ids (a T4's). */
static const struct model {
    const char *name;
    unsigned device, subsystem;
} models[] = {
    {"Tesla T4", 0x1eb8, 0x12a2},
    {"Tesla P4", 0x1bb3, 0x11d8},
    {"Tesla P40", 0x1b38, 0x11d9},
    {"Tesla P100-PCIE-16GB", 0x15f8, 0x118f},
    {"Tesla V100-PCIE-16GB", 0x1db4, 0x1214},
    {"Tesla V100-PCIE-32GB", 0x1db6, 0x124a},
    {"Tesla V100-SXM2-16GB", 0x1db1, 0x1212},
    {"Tesla V100-SXM2-32GB", 0x1db5, 0x1249},
    {"NVIDIA A2", 0x25b6, 0x157e},
    {"NVIDIA A10", 0x2236, 0x1482},
    {"NVIDIA A16", 0x25b6, 0x14a9},
    {"NVIDIA A30", 0x20b7, 0x1532},
    {"NVIDIA A40", 0x2235, 0x145a},
    {"NVIDIA A100-PCIE-40GB", 0x20f1, 0x145f},
    {"NVIDIA A100-SXM4-40GB", 0x20b0, 0x134f},
    {"NVIDIA A100 80GB PCIe", 0x20b5, 0x1533},
    {"NVIDIA A100-SXM4-80GB", 0x20b2, 0x1463},
    {"NVIDIA L4", 0x27b8, 0x16ca},
    {"NVIDIA L40", 0x26b5, 0x169d},
    {"NVIDIA L40S", 0x26b9, 0x1851},
    {"NVIDIA H100 PCIe", 0x2331, 0x1626},
    {"NVIDIA H100 80GB HBM3", 0x2330, 0x16c1},
    {"NVIDIA H200", 0x2335, 0x18be},
};

/* Names compare without case and without NVIDIA's prefix ("A10" is "NVIDIA A10"). */
static const char *model_key(const char *s)
{
    return strncasecmp(s, "NVIDIA ", 7) == 0 ? s + 7 : s;
}

static void model_ids(const struct gm_sim_gpu_info *g, unsigned *device, unsigned *subsystem)
{
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        if (strcasecmp(model_key(models[i].name), model_key(g->name)) == 0) {
            *device = models[i].device;
            *subsystem = models[i].subsystem;
            return;
        }
    *device = g->pci_device_id >> 16;
    *subsystem = g->pci_subsystem_id >> 16;
}

/* One PCI function of the tree. */
struct sdev {
    char bdf[32]; /* "2c74:00:00.0", Linux's "%04x:%02x:%02x.%x" */
    char bus[32]; /* "pci2c74:00", its directory under sys/devices */
    char vendor[16], device[16], cls[16], svendor[16], sdevice[16];
    const char *driver; /* the one it starts on, and its default */
    int group;          /* IOMMU group, -1 for none */
};

static void sdev_init(struct sdev *d, unsigned dom, unsigned bus, unsigned dev, unsigned fn,
                      unsigned vendor, unsigned device, unsigned cls, unsigned svendor,
                      unsigned sdevice, const char *driver, int group)
{
    snprintf(d->bdf, sizeof(d->bdf), "%04x:%02x:%02x.%x", dom, bus, dev, fn);
    snprintf(d->bus, sizeof(d->bus), "pci%04x:%02x", dom, bus);
    snprintf(d->vendor, sizeof(d->vendor), "0x%04x\n", vendor);
    snprintf(d->device, sizeof(d->device), "0x%04x\n", device);
    snprintf(d->cls, sizeof(d->cls), "0x%06x\n", cls);
    snprintf(d->svendor, sizeof(d->svendor), "0x%04x\n", svendor);
    snprintf(d->sdevice, sizeof(d->sdevice), "0x%04x\n", sdevice);
    d->driver = driver;
    d->group = group;
}

/* Removes name in dfd and, for a directory, everything below it, never following a link nor
 * leaving dev's file system. rel names it for messages. */
static int remove_tree(int dfd, const char *name, const char *rel, dev_t dev)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : path_error(rel, errno);
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dfd, name, 0) == 0 || errno == ENOENT ? 0 : path_error(rel, errno);
    if (st.st_dev != dev)
        return say("%s/%s: another file system is mounted there: not removed", root_arg, rel);
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return path_error(rel, e);
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char sub[PATH_MAX];
        if (gm_path_try(sub, sizeof(sub), "%s/%s", rel, e->d_name) < 0)
            rc = path_error(rel, ENAMETOOLONG);
        else
            rc = remove_tree(dirfd(d), e->d_name, sub, dev);
    }
    closedir(d);
    if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = path_error(rel, errno);
    return rc;
}

/* The files and links of the tree, each made below rootfd and reported by its path. */
static int put_dir(int rootfd, const char *rel)
{
    int fd = walk(rootfd, rel, 1);
    if (fd < 0)
        return path_error(rel, errno);
    close(fd);
    return 0;
}

static int put_file(int rootfd, const char *rel, const char *content, mode_t mode)
{
    const char *name;
    int dfd = walk_parent(rootfd, rel, 1, &name);
    int rc = dfd >= 0 ? write_at(dfd, name, content, mode, 1) : -1;
    int e = errno;
    if (dfd >= 0)
        close(dfd);
    return rc < 0 ? path_error(rel, e) : 0;
}

static int put_link(int rootfd, const char *rel, const char *target)
{
    const char *name;
    int dfd = walk_parent(rootfd, rel, 1, &name);
    int rc = dfd >= 0 ? symlinkat(target, dfd, name) : -1;
    int e = errno;
    if (dfd >= 0)
        close(dfd);
    return rc < 0 ? path_error(rel, e) : 0;
}

/* put_file and put_link at a path given as a format. */
__attribute__((format(printf, 4, 5))) static int put_filef(int rootfd, const char *content,
                                                           mode_t mode, const char *fmt, ...)
{
    char rel[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(rel))
        return say("%s/%s...: %s", root_arg, fmt, strerror(ENAMETOOLONG));
    return put_file(rootfd, rel, content, mode);
}

__attribute__((format(printf, 3, 4))) static int put_linkf(int rootfd, const char *target,
                                                           const char *fmt, ...)
{
    char rel[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(rel))
        return say("%s/%s...: %s", root_arg, fmt, strerror(ENAMETOOLONG));
    return put_link(rootfd, rel, target);
}

/* A function's directory with its attributes and links, its entries under the bus, its driver
 * and its group, and its default driver under sim. */
static int create_device(int rootfd, const struct sdev *d)
{
    char dir[256], target[512], drv[64];
    snprintf(dir, sizeof(dir), "sys/devices/%s/%s", d->bus, d->bdf);
    const struct {
        const char *name, *content;
        mode_t mode;
    } attrs[] = {
        {"vendor", d->vendor, 0444},
        {"device", d->device, 0444},
        {"class", d->cls, 0444},
        {"subsystem_vendor", d->svendor, 0444},
        {"subsystem_device", d->sdevice, 0444},
        {"driver_override", "(null)\n", 0644},
    };
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
        if (put_filef(rootfd, attrs[i].content, attrs[i].mode, "%s/%s", dir, attrs[i].name) < 0)
            return -1;
    snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", d->driver);
    if (put_linkf(rootfd, target, "%s/driver", dir) < 0)
        return -1;
    snprintf(target, sizeof(target), "../../../../devices/%s/%s", d->bus, d->bdf);
    if (put_linkf(rootfd, target, "sys/bus/pci/drivers/%s/%s", d->driver, d->bdf) < 0)
        return -1;
    if (d->group >= 0) {
        snprintf(target, sizeof(target), "../../../kernel/iommu_groups/%d", d->group);
        if (put_linkf(rootfd, target, "%s/iommu_group", dir) < 0)
            return -1;
        snprintf(target, sizeof(target), "../../../../devices/%s/%s", d->bus, d->bdf);
        if (put_linkf(rootfd, target, "sys/kernel/iommu_groups/%d/devices/%s", d->group, d->bdf) <
            0)
            return -1;
    }
    snprintf(target, sizeof(target), "../../../devices/%s/%s", d->bus, d->bdf);
    if (put_linkf(rootfd, target, "sys/bus/pci/devices/%s", d->bdf) < 0)
        return -1;
    snprintf(drv, sizeof(drv), "%s\n", d->driver);
    return put_filef(rootfd, drv, 0644, "sim/devices/%s/default_driver", d->bdf);
}

static int create_driver(int rootfd, const char *name)
{
    static const char *const files[] = {"bind", "unbind", "new_id"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (put_filef(rootfd, "", 0200, "sys/bus/pci/drivers/%s/%s", name, files[i]) < 0)
            return -1;
    return 0;
}

static int do_create(const char *root, int iommu, int vfio, int foreign,
                     const struct gm_sim_gpu_info *gpus, int ngpus)
{
    struct sdev devs[2 * GM_SIM_MAX_GPUS + 1];
    int n = 0;
    for (int i = 0; i < ngpus; i++) {
        const struct gm_sim_gpu_info *g = &gpus[i];
        unsigned device, subsystem;
        model_ids(g, &device, &subsystem);
        int group = iommu ? GROUP_BASE + i : -1;
        sdev_init(&devs[n++], g->pci_domain, g->pci_bus, g->pci_device, 0, 0x10de, device, 0x030200,
                  0x10de, subsystem, "nvidia", group);
        sdev_init(&devs[n++], g->pci_domain, g->pci_bus, g->pci_device, 1, 0x10de, 0x10fa, 0x040300,
                  0x10de, subsystem, "snd_hda_intel", group);
    }
    if (foreign >= 0) {
        /* An Intel 82574L network function on a slot of its own, in GPU foreign's group: the
         * first of 0000:05:00.0, 0000:05:01.0, ... that no GPU takes. */
        for (unsigned slot = 0; slot < 32; slot++) {
            sdev_init(&devs[n], 0, 0x05, slot, 0, 0x8086, 0x10d3, 0x020000, 0x8086, 0xa01f,
                      "e1000e", GROUP_BASE + foreign);
            int taken = 0;
            for (int k = 0; k < n; k++)
                taken |= strcmp(devs[k].bdf, devs[n].bdf) == 0;
            if (!taken)
                break;
        }
        n++;
    }

    struct gm_error err;
    if (gm_mkdir_p(root, 0755, &err) < 0)
        return say("%s", err.msg);
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return say("%s: %s", root, strerror(errno));
    struct stat rst, slash;
    if (fstat(rootfd, &rst) < 0 || stat("/", &slash) < 0 ||
        (rst.st_dev == slash.st_dev && rst.st_ino == slash.st_ino)) {
        close(rootfd);
        return say("%s: the tree is not laid out over the system's own /sys and /dev", root);
    }

    /* Replace an earlier tree: only one that has the simulation's directory, so that a ROOT
     * whose sys or dev is something else is never emptied. sim goes last: a removal that stops
     * half-way still leaves a tree that the next create replaces. */
    static const char *const tops[] = {"sys", "dev", "sim"};
    struct stat st;
    int have_sim = fstatat(rootfd, "sim", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) {
        if (fstatat(rootfd, tops[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (!have_sim) {
            close(rootfd);
            return say("%s/%s: exists and %s holds no simulated tree (no directory %s/sim): "
                       "not replaced",
                       root, tops[i], root, root);
        }
        if (remove_tree(rootfd, tops[i], tops[i], rst.st_dev) < 0) {
            close(rootfd);
            return -1;
        }
    }

    int rc = put_file(rootfd, "sim/fail", "", 0644);
    if (rc == 0)
        rc = put_file(rootfd, "sim/log", "", 0644);
    const char *drivers[] = {"nvidia", "snd_hda_intel", vfio ? "vfio-pci" : NULL,
                             foreign >= 0 ? "e1000e" : NULL};
    for (size_t i = 0; rc == 0 && i < sizeof(drivers) / sizeof(drivers[0]); i++)
        if (drivers[i] != NULL)
            rc = create_driver(rootfd, drivers[i]);
    if (rc == 0)
        rc = put_dir(rootfd, "sys/kernel/iommu_groups");
    for (int i = 0; rc == 0 && i < n; i++)
        rc = create_device(rootfd, &devs[i]);
    if (rc == 0)
        rc = put_file(rootfd, "sys/bus/pci/drivers_probe", "", 0200);
    if (rc == 0)
        rc = put_file(rootfd, "dev/vfio/vfio", "", 0666);
    close(rootfd);
    return rc;
}

static int cmd_create(int argc, char **argv)
{
    enum { OPT_NO_IOMMU = 256, OPT_NO_VFIO, OPT_FOREIGN };
    static const struct option longopts[] = {
        {"no-iommu", no_argument, NULL, OPT_NO_IOMMU},
        {"no-vfio-pci", no_argument, NULL, OPT_NO_VFIO},
        {"foreign-in-group", required_argument, NULL, OPT_FOREIGN},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int iommu = 1, vfio = 1, c;
    long long foreign = -1;
    struct gm_error err;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            printf("usage: gpusimctl %s\n", USAGE_CREATE);
            return 0;
        case OPT_NO_IOMMU:
            iommu = 0;
            break;
        case OPT_NO_VFIO:
            vfio = 0;
            break;
        case OPT_FOREIGN:
            if (gm_parse_int(optarg, 0, GM_SIM_MAX_GPUS - 1, &foreign, "--foreign-in-group", &err) <
                0)
                return usage(USAGE_CREATE, "%s", err.msg);
            break;
        default:
            return usage(USAGE_CREATE, "unknown option or missing value: %s", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return usage(USAGE_CREATE, "%s", optind < argc ? "one ROOT only" : "ROOT is required");
    if (foreign >= 0 && !iommu)
        return usage(USAGE_CREATE, "--foreign-in-group needs IOMMU groups: not with --no-iommu");
    const char *root = argv[optind];
    root_arg = root;

    struct gm_sim_state *st;
    if (gm_sim_attach(&st, &err) < 0) {
        say("%s", err.msg);
        return 1;
    }
    int ngpus = (int)st->ngpus;
    struct gm_sim_gpu_info gpus[GM_SIM_MAX_GPUS];
    for (int i = 0; i < ngpus && i < GM_SIM_MAX_GPUS; i++)
        gpus[i] = st->gpus[i].info; /* the static part: written once, at creation */
    gm_sim_detach(st);
    if (foreign >= ngpus)
        return usage(USAGE_CREATE, "--foreign-in-group %lld: no such GPU (the state has %d)",
                     foreign, ngpus);
    return do_create(root, iommu, vfio, (int)foreign, gpus, ngpus) < 0 ? 1 : 0;
}

/* ---- sysfs kernel --------------------------------------------------------------------------- */

#define K_MAX_DEVS   64
#define K_MAX_DRVS   32
#define NAME_MAX_LEN 64

struct kdev {
    char bdf[NAME_MAX_LEN];
    char rel[2 * NAME_MAX_LEN + 16]; /* "devices/pci2c74:00/2c74:00:00.0", from sys/ */
    int fd, wd;
    int group; /* -1: none */
    int has_override;
    char override[256];
};

struct kdrv {
    char name[NAME_MAX_LEN];
    int wd; /* -1 once its directory is gone */
};

struct kern {
    int rootfd, sysfd, pcifd, driversfd, vfiofd, simfd;
    int ino, pci_wd, root_wd;
    /* The gate (see gate_thread): fanotify, -1 without it; the main loop's eventfd on which the
     * gate asks for the queued writes to be handled, and the pipe on which it is told which
     * request was served; requests made so far; whether the main loop is handling writes. */
    int fan, gate_req, gate_done[2];
    atomic_uint_fast64_t gate_asked;
    atomic_int busy;
    int ndevs, ndrvs;
    struct kdev devs[K_MAX_DEVS];
    struct kdrv drvs[K_MAX_DRVS];
};

/* One line to ROOT/sim/log, appended (the file may have been emptied meanwhile). */
__attribute__((format(printf, 2, 3))) static void klog(struct kern *k, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    int fd = openat(k->simfd, "log", O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, line, (size_t)n) < 0)
        say("%s/sim/log: %s", root_arg, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* Whether ROOT/sim/fail, read now, has the line "STEP BDF". */
static int failing(struct kern *k, const char *step, const char *bdf)
{
    char buf[ATTR_MAX * 4];
    if (read_at(k->simfd, "fail", buf, sizeof(buf)) < 0)
        return 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char s[64], b[64], extra;
        if (sscanf(line, "%63s %63s %c", s, b, &extra) == 2 && strcmp(s, step) == 0 &&
            strcmp(b, bdf) == 0)
            return 1;
    }
    return 0;
}

/* A write refused by the fail file: logged, not honoured. */
static int refused(struct kern *k, const char *step, const char *bdf)
{
    if (!failing(k, step, bdf))
        return 0;
    klog(k, "refused %s %s", step, bdf);
    return 1;
}

static struct kdev *find_dev(struct kern *k, const char *bdf)
{
    for (int i = 0; i < k->ndevs; i++)
        if (strcmp(k->devs[i].bdf, bdf) == 0)
            return &k->devs[i];
    return NULL;
}

/* The driver d is bound to, from its driver link; "" when it has none. */
static const char *bound_to(struct kdev *d, char *buf, size_t len)
{
    ssize_t n = readlinkat(d->fd, "driver", buf, len - 1);
    if (n < 0)
        return buf[0] = '\0', buf;
    buf[n] = '\0';
    const char *slash = strrchr(buf, '/');
    return slash != NULL ? slash + 1 : buf;
}

/* The driver directory name, when it is one (not a link) under ROOT/sys/bus/pci/drivers. */
static int driver_dir(struct kern *k, const char *name)
{
    if (!plain_name(name) || strlen(name) >= NAME_MAX_LEN)
        return -1;
    return openat(k->driversfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* ROOT/dev/vfio/N exists while a device of group N is bound to vfio-pci. The devices' driver
 * links say where they are, except for d, which is taken to be on d_drv ("" for none): the
 * node is made before d's link appears and removed before it goes, so that whoever sees the
 * link sees the node as it then is. */
static void sync_vfio(struct kern *k, struct kdev *d, const char *d_drv)
{
    for (int i = 0; i < k->ndevs; i++) {
        int g = k->devs[i].group, on = 0, seen = 0;
        if (g < 0)
            continue;
        for (int j = 0; j < k->ndevs; j++) {
            char buf[PATH_MAX];
            if (k->devs[j].group != g)
                continue;
            seen |= j < i;
            const char *drv = &k->devs[j] == d ? d_drv : bound_to(&k->devs[j], buf, sizeof(buf));
            on |= strcmp(drv, "vfio-pci") == 0;
        }
        if (seen)
            continue; /* the group was done with its first device */
        char name[16];
        snprintf(name, sizeof(name), "%d", g);
        if (on) {
            int fd =
                openat(k->vfiofd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd >= 0)
                close(fd);
            else if (errno != EEXIST)
                say("%s/dev/vfio/%s: %s", root_arg, name, strerror(errno));
        } else if (unlinkat(k->vfiofd, name, 0) < 0 && errno != ENOENT) {
            say("%s/dev/vfio/%s: %s", root_arg, name, strerror(errno));
        }
    }
}

/* Binds unbound d to driver drv, as a successful probe does. vfio-pci takes only a device in an
 * IOMMU group (without one its probe fails and the device stays unbound, as on Linux). The
 * device's driver link comes last and the log line after it: whoever sees either sees the
 * rest done. */
static void bind_dev(struct kern *k, struct kdev *d, const char *drv)
{
    if (strcmp(drv, "vfio-pci") == 0 && d->group < 0) {
        klog(k, "failed bind %s %s: no IOMMU group", d->bdf, drv);
        return;
    }
    int dfd = driver_dir(k, drv);
    if (dfd < 0)
        return;
    char link[PATH_MAX], target[PATH_MAX];
    snprintf(link, sizeof(link), "../../../bus/pci/drivers/%s", drv);
    snprintf(target, sizeof(target), "../../../../%s", d->rel);
    if (symlinkat(target, dfd, d->bdf) < 0 && errno != EEXIST) {
        say("%s/sys/bus/pci/drivers/%s/%s: %s", root_arg, drv, d->bdf, strerror(errno));
    } else {
        sync_vfio(k, d, drv);
        if (symlinkat(link, d->fd, "driver") < 0) {
            say("%s/sys/%s/driver: %s", root_arg, d->rel, strerror(errno));
            (void)unlinkat(dfd, d->bdf, 0);
            sync_vfio(k, d, "");
        } else {
            klog(k, "bind %s %s", d->bdf, drv);
        }
    }
    close(dfd);
}

/* Unbinds d from drv: the driver's link and the group's node first, the device's link last. */
static void unbind_dev(struct kern *k, struct kdev *d, const char *drv)
{
    int dfd = driver_dir(k, drv);
    if (dfd >= 0) {
        if (unlinkat(dfd, d->bdf, 0) < 0 && errno != ENOENT)
            say("%s/sys/bus/pci/drivers/%s/%s: %s", root_arg, drv, d->bdf, strerror(errno));
        close(dfd);
    }
    sync_vfio(k, d, "");
    if (unlinkat(d->fd, "driver", 0) < 0 && errno != ENOENT)
        say("%s/sys/%s/driver: %s", root_arg, d->rel, strerror(errno));
    klog(k, "unbind %s %s", d->bdf, drv);
}

/* The driver a probe picks for d without an override (ROOT/sim/devices/BDF/default_driver). */
static int default_driver(struct kern *k, struct kdev *d, char *buf, size_t len)
{
    char rel[PATH_MAX];
    const char *name;
    if (gm_path_try(rel, sizeof(rel), "devices/%s/default_driver", d->bdf) < 0)
        return -1;
    int dfd = walk_parent(k->simfd, rel, 0, &name);
    ssize_t n = dfd >= 0 ? read_at(dfd, name, buf, len) : -1;
    if (dfd >= 0)
        close(dfd);
    if (n < 0)
        return -1;
    memmove(buf, strip(buf), strlen(strip(buf)) + 1);
    return buf[0] != '\0' ? 0 : -1;
}

/* Reads a write-only attribute (bind, unbind, drivers_probe) of dfd and empties it again: the
 * name written, or NULL when there is none. */
static char *take_write(int dfd, const char *name, const char *where, char *buf, size_t len)
{
    ssize_t n = read_at(dfd, name, buf, len);
    if (n <= 0)
        return NULL;
    if (write_at(dfd, name, "", 0, 0) < 0)
        say("%s/%s/%s: %s", root_arg, where, name, strerror(errno));
    char *s = written_value(buf);
    return s[0] != '\0' ? s : NULL;
}

/* Writes content over d's driver_override in place, then cuts what is left of the earlier
 * content: a reader holding the file open sees the new text, and a reader at any moment sees
 * the new first line or the old one (the text always ends in a newline). */
static int write_override(struct kdev *d, const char *content)
{
    int fd = openat(d->fd, "driver_override", O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    size_t len = strlen(content);
    ssize_t n = pwrite(fd, content, len, 0);
    int rc = n == (ssize_t)len && ftruncate(fd, (off_t)len) == 0 ? 0 : -1;
    int e = n >= 0 && n != (ssize_t)len ? EIO : errno;
    close(fd);
    errno = e;
    return rc;
}

/* A write to d's driver_override: the name is stored ("" or white space clears it) and the
 * attribute reads "NAME\n" or "(null)\n" again, as Linux shows it. */
static void on_override(struct kern *k, struct kdev *d)
{
    char buf[ATTR_MAX + 1], written[ATTR_MAX + 1], now[sizeof(d->override) + 2];
    snprintf(now, sizeof(now), "%s\n", d->has_override ? d->override : "(null)");
    ssize_t n = read_at(d->fd, "driver_override", buf, sizeof(buf));
    if (n < 0 || strcmp(buf, now) == 0)
        return; /* what the attribute shows already (it was written back so) */
    memcpy(written, buf, (size_t)n + 1);
    char *v = written_value(buf);
    int changed = 0, refuse = 0;
    /* Linux refuses a value of a page or more; the fail file refuses any write it names. */
    if ((size_t)n < ATTR_MAX && strlen(v) < sizeof(d->override)) {
        refuse = failing(k, "driver_override", d->bdf);
        changed = !refuse && ((v[0] != '\0') != d->has_override || strcmp(v, d->override) != 0);
    }
    if (changed) {
        d->has_override = v[0] != '\0';
        snprintf(d->override, sizeof(d->override), "%s", v);
    }
    snprintf(now, sizeof(now), "%s\n", d->has_override ? d->override : "(null)");
    if (strcmp(written, now) != 0 && write_override(d, now) < 0)
        say("%s/sys/%s/driver_override: %s", root_arg, d->rel, strerror(errno));
    if (refuse)
        klog(k, "refused driver_override %s", d->bdf);
    else if (changed)
        klog(k, "driver_override %s %s", d->bdf, d->has_override ? d->override : "(null)");
}

static void on_unbind(struct kern *k, struct kdrv *drv)
{
    char buf[ATTR_MAX + 1], cur[PATH_MAX], where[PATH_MAX];
    snprintf(where, sizeof(where), "sys/bus/pci/drivers/%s", drv->name);
    int dfd = driver_dir(k, drv->name);
    char *bdf = dfd >= 0 ? take_write(dfd, "unbind", where, buf, sizeof(buf)) : NULL;
    if (dfd >= 0)
        close(dfd);
    if (bdf == NULL || refused(k, "unbind", bdf))
        return;
    struct kdev *d = find_dev(k, bdf);
    if (d != NULL && strcmp(bound_to(d, cur, sizeof(cur)), drv->name) == 0)
        unbind_dev(k, d, drv->name);
}

static void on_bind(struct kern *k, struct kdrv *drv)
{
    char buf[ATTR_MAX + 1], cur[PATH_MAX], def[NAME_MAX_LEN], where[PATH_MAX];
    snprintf(where, sizeof(where), "sys/bus/pci/drivers/%s", drv->name);
    int dfd = driver_dir(k, drv->name);
    char *bdf = dfd >= 0 ? take_write(dfd, "bind", where, buf, sizeof(buf)) : NULL;
    if (dfd >= 0)
        close(dfd);
    if (bdf == NULL || refused(k, "bind", bdf))
        return;
    struct kdev *d = find_dev(k, bdf);
    if (d == NULL || bound_to(d, cur, sizeof(cur))[0] != '\0')
        return;
    /* The driver must match the device: by the override when one is set (vfio-pci matches
     * nothing else), else by its id table, which is what the default driver stands for. */
    if (d->has_override
            ? strcmp(d->override, drv->name) == 0
            : default_driver(k, d, def, sizeof(def)) == 0 && strcmp(def, drv->name) == 0)
        bind_dev(k, d, drv->name);
}

static void on_probe(struct kern *k)
{
    char buf[ATTR_MAX + 1], cur[PATH_MAX], def[NAME_MAX_LEN];
    char *bdf = take_write(k->pcifd, "drivers_probe", "sys/bus/pci", buf, sizeof(buf));
    if (bdf == NULL || refused(k, "drivers_probe", bdf))
        return;
    struct kdev *d = find_dev(k, bdf);
    if (d == NULL || bound_to(d, cur, sizeof(cur))[0] != '\0')
        return;
    const char *drv = d->has_override                               ? d->override
                      : default_driver(k, d, def, sizeof(def)) == 0 ? def
                                                                    : NULL;
    int dfd = drv != NULL ? driver_dir(k, drv) : -1;
    if (dfd < 0)
        return; /* an override naming a driver that is not loaded: no driver */
    close(dfd);
    bind_dev(k, d, drv);
}

/* Every attribute at once, after the event queue overflowed. */
static void rescan(struct kern *k)
{
    for (int i = 0; i < k->ndevs; i++)
        on_override(k, &k->devs[i]);
    for (int i = 0; i < k->ndrvs; i++)
        if (k->drvs[i].wd >= 0) {
            on_unbind(k, &k->drvs[i]);
            on_bind(k, &k->drvs[i]);
        }
    on_probe(k);
}

/* A watch on the directory open at fd, reached through the descriptor (never by path). */
static int watch_dir(struct kern *k, int fd, const char *rel, uint32_t mask)
{
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(k->ino, proc, mask | IN_ONLYDIR);
    if (wd < 0)
        path_error(rel, errno);
    return wd;
}

/* The gate on the opens of the files in the directory open at fd (see gate_thread). */
static void gate_mark(struct kern *k, int fd, const char *rel)
{
    if (k->fan >= 0 &&
        fanotify_mark(k->fan, FAN_MARK_ADD, FAN_OPEN_PERM | FAN_EVENT_ON_CHILD, fd, NULL) < 0)
        path_error(rel, errno); /* its opens do not wait: as without the gate */
}

/* The devices of ROOT/sys/bus/pci/devices: each a link ../../../devices/BUS/BDF. */
static int load_devices(struct kern *k)
{
    int fd = openat(k->pcifd, "devices", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (dir == NULL) {
        if (fd >= 0)
            close(fd);
        return path_error("sys/bus/pci/devices", errno);
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(dir)) != NULL) {
        char link[PATH_MAX], bus[PATH_MAX], rel[PATH_MAX];
        if (e->d_name[0] == '.')
            continue;
        if (strlen(e->d_name) >= NAME_MAX_LEN || k->ndevs == K_MAX_DEVS) {
            rc = say("%s/sys/bus/pci/devices/%s: too many or too long names", root_arg, e->d_name);
            break;
        }
        ssize_t n = readlinkat(dirfd(dir), e->d_name, link, sizeof(link) - 1);
        if (n < 0) {
            snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s", e->d_name);
            rc = path_error(rel, errno);
            break;
        }
        link[n] = '\0';
        const char *prefix = "../../../devices/";
        char *slash = strncmp(link, prefix, strlen(prefix)) == 0 ? strchr(link + 17, '/') : NULL;
        if (slash != NULL) {
            snprintf(bus, sizeof(bus), "%.*s", (int)(slash - (link + 17)), link + 17);
            if (!plain_name(bus) || strlen(bus) >= NAME_MAX_LEN || strcmp(slash + 1, e->d_name))
                slash = NULL;
        }
        if (slash == NULL) {
            rc = say("%s/sys/bus/pci/devices/%s: a link to '%s', not ../../../devices/BUS/%s",
                     root_arg, e->d_name, link, e->d_name);
            break;
        }
        struct kdev *d = &k->devs[k->ndevs];
        memset(d, 0, sizeof(*d));
        if (strlen(e->d_name) >= sizeof(d->bdf)) {
            rc = say("%s/sys/bus/pci/devices/%s: not a PCI address", root_arg, e->d_name);
            break;
        }
        memcpy(d->bdf, e->d_name, strlen(e->d_name) + 1);
        snprintf(d->rel, sizeof(d->rel), "devices/%.*s/%.*s", NAME_MAX_LEN - 1, bus,
                 NAME_MAX_LEN - 1, e->d_name);
        snprintf(rel, sizeof(rel), "sys/%s", d->rel);
        d->fd = walk(k->sysfd, d->rel, 0);
        if (d->fd < 0) {
            rc = path_error(rel, errno);
            break;
        }
        d->group = -1;
        n = readlinkat(d->fd, "iommu_group", link, sizeof(link) - 1);
        const char *gprefix = "../../../kernel/iommu_groups/";
        if (n > 0) {
            link[n] = '\0';
            char *end;
            long g = strtol(link + strlen(gprefix), &end, 10);
            if (strncmp(link, gprefix, strlen(gprefix)) == 0 && *end == '\0' && g >= 0 &&
                g < INT_MAX && isdigit((unsigned char)link[strlen(gprefix)]))
                d->group = (int)g;
        }
        char buf[ATTR_MAX + 1];
        if (read_at(d->fd, "driver_override", buf, sizeof(buf)) < 0) {
            snprintf(rel, sizeof(rel), "sys/%s/driver_override", d->rel);
            close(d->fd);
            rc = path_error(rel, errno);
            break;
        }
        char *v = written_value(buf);
        d->has_override = v[0] != '\0' && strcmp(v, "(null)") != 0;
        snprintf(d->override, sizeof(d->override), "%s", d->has_override ? v : "");
        d->wd = watch_dir(k, d->fd, rel, IN_CLOSE_WRITE);
        gate_mark(k, d->fd, rel);
        if (d->wd < 0) {
            close(d->fd);
            rc = -1;
            break;
        }
        k->ndevs++;
    }
    closedir(dir);
    return rc;
}

static int load_drivers(struct kern *k)
{
    int fd = fcntl(k->driversfd, F_DUPFD_CLOEXEC, 0);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (dir == NULL) {
        if (fd >= 0)
            close(fd);
        return path_error("sys/bus/pci/drivers", errno);
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char rel[PATH_MAX];
        snprintf(rel, sizeof(rel), "sys/bus/pci/drivers/%s", e->d_name);
        int dfd = driver_dir(k, e->d_name);
        if (dfd < 0)
            continue; /* not a driver directory: never one to bind to */
        if (k->ndrvs == K_MAX_DRVS) {
            close(dfd);
            rc = say("%s/sys/bus/pci/drivers: more than %d drivers", root_arg, K_MAX_DRVS);
            break;
        }
        struct kdrv *drv = &k->drvs[k->ndrvs];
        snprintf(drv->name, sizeof(drv->name), "%.*s", (int)sizeof(drv->name) - 1, e->d_name);
        drv->wd = watch_dir(k, dfd, rel, IN_CLOSE_WRITE);
        gate_mark(k, dfd, rel);
        close(dfd);
        if (drv->wd < 0)
            rc = -1;
        else
            k->ndrvs++;
    }
    closedir(dir);
    return rc;
}

/* ROOT/sim/kernel.pid, written whole (a reader never sees half of it). */
static int write_pid(struct kern *k)
{
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    (void)unlinkat(k->simfd, "kernel.pid.new", 0);
    if (write_at(k->simfd, "kernel.pid.new", pid, 0644, 1) < 0 ||
        renameat(k->simfd, "kernel.pid.new", k->simfd, "kernel.pid") < 0)
        return path_error("sim/kernel.pid", errno);
    return 0;
}

static void remove_pid(struct kern *k)
{
    char buf[32], pid[32];
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (read_at(k->simfd, "kernel.pid", buf, sizeof(buf)) > 0 && strcmp(buf, pid) == 0)
        (void)unlinkat(k->simfd, "kernel.pid", 0);
}

/* Handles the events in buf; 1 when the tree went away. */
static int handle_events(struct kern *k, const char *buf, ssize_t len)
{
    for (const char *p = buf; p < buf + len;) {
        const struct inotify_event *ev = (const struct inotify_event *)(const void *)p;
        p += sizeof(*ev) + ev->len;
        if (ev->mask & IN_Q_OVERFLOW) {
            rescan(k);
            continue;
        }
        if (ev->mask & IN_IGNORED) {
            /* A driver's directory may go (the module unloaded). */
            for (int i = 0; i < k->ndrvs; i++)
                if (k->drvs[i].wd == ev->wd)
                    k->drvs[i].wd = -1;
            if (ev->wd == k->pci_wd)
                return 1;
            for (int i = 0; i < k->ndevs; i++)
                if (k->devs[i].wd == ev->wd)
                    return 1;
            continue;
        }
        if (ev->wd == k->root_wd) {
            if (ev->len > 0 && (strcmp(ev->name, "sys") == 0 || strcmp(ev->name, "dev") == 0 ||
                                strcmp(ev->name, "sim") == 0))
                return 1;
            continue;
        }
        if (!(ev->mask & IN_CLOSE_WRITE) || ev->len == 0)
            continue;
        const char *name = ev->name;
        if (ev->wd == k->pci_wd) {
            if (strcmp(name, "drivers_probe") == 0)
                on_probe(k);
            continue;
        }
        for (int i = 0; i < k->ndevs; i++)
            if (k->devs[i].wd == ev->wd && strcmp(name, "driver_override") == 0)
                on_override(k, &k->devs[i]);
        for (int i = 0; i < k->ndrvs; i++)
            if (k->drvs[i].wd == ev->wd) {
                if (strcmp(name, "bind") == 0)
                    on_bind(k, &k->drvs[i]);
                else if (strcmp(name, "unbind") == 0)
                    on_unbind(k, &k->drvs[i]);
            }
    }
    return 0;
}

/* Handles every write queued so far; 1 when the tree went away. */
static int drain(struct kern *k)
{
    char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t len;
    int gone = 0;
    atomic_store(&k->busy, 1);
    while (!gone && (len = read(k->ino, buf, sizeof(buf))) > 0)
        gone = handle_events(k, buf, len);
    atomic_store(&k->busy, 0);
    return gone;
}

/* ---- The gate: writes in effect by their writer's next open ----------------------------------
 * Linux handles a write to sysfs inside write(2); this kernel sees it only once its writer has
 * closed the file. Where it may (CAP_SYS_ADMIN), it closes the gap with fanotify: an open of a
 * file in the watched directories by another process waits (FAN_OPEN_PERM) until the writes
 * closed before it have been handled. So a write is in effect by the time its writer opens the
 * next file there, to write the next step or to read what happened, and a second write to the
 * same file cannot empty the first before it was read (O_TRUNC truncates after the permission).
 * This thread answers the permission events, and never opens a file itself: this process's own
 * opens at once, others at once when nothing is queued or being handled, else once the main loop
 * has served its request. None waits more than GATE_MAX_MS. */
#define GATE_HELD   256
#define GATE_MAX_MS 2000

static void gate_allow(struct kern *k, int fd)
{
    struct fanotify_response r = {.fd = fd, .response = FAN_ALLOW};
    if (write(k->fan, &r, sizeof(r)) < 0)
        say("fanotify: %s", strerror(errno));
    close(fd);
}

/* Nothing queued and nothing being handled: the queue first, the flag after (the main loop sets
 * it before it reads the queue). */
static int gate_idle(struct kern *k)
{
    struct pollfd p = {.fd = k->ino, .events = POLLIN};
    return poll(&p, 1, 0) == 0 && !atomic_load(&k->busy);
}

static void *gate_thread(void *arg)
{
    struct kern *k = arg;
    struct held {
        int fd;
        uint64_t ticket;
        int64_t since_ms;
    } held[GATE_HELD];
    int nheld = 0;
    uint64_t served = 0;
    pid_t self = getpid();
    for (;;) {
        struct pollfd p[2] = {{.fd = k->fan, .events = POLLIN},
                              {.fd = k->gate_done[0], .events = POLLIN}};
        if (poll(p, 2, nheld > 0 ? 100 : -1) < 0 && errno != EINTR)
            break;
        uint64_t t;
        while (read(k->gate_done[0], &t, sizeof(t)) == (ssize_t)sizeof(t))
            served = t > served ? t : served;
        int64_t now = gm_mono_ms();
        for (int i = 0; i < nheld;) {
            if (held[i].ticket <= served || now - held[i].since_ms >= GATE_MAX_MS) {
                gate_allow(k, held[i].fd);
                held[i] = held[--nheld];
            } else {
                i++;
            }
        }
        if (!(p[0].revents & POLLIN))
            continue;
        char buf[4096] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
        ssize_t len = read(k->fan, buf, sizeof(buf));
        const struct fanotify_event_metadata *m = (const void *)buf;
        for (; len > 0 && FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
            if (m->vers != FANOTIFY_METADATA_VERSION || m->fd < 0)
                continue;
            if (!(m->mask & FAN_OPEN_PERM)) {
                close(m->fd);
            } else if (m->pid == self || nheld == GATE_HELD || gate_idle(k)) {
                gate_allow(k, m->fd);
            } else {
                uint64_t one = 1;
                held[nheld++] = (struct held){m->fd, atomic_fetch_add(&k->gate_asked, 1) + 1, now};
                if (write(k->gate_req, &one, sizeof(one)) < 0)
                    say("eventfd: %s", strerror(errno));
            }
        }
    }
    /* Closing the group lets every open it holds through, and any later one. */
    say("fanotify: %s: writes are no longer awaited at the next open", strerror(errno));
    close(k->fan);
    return NULL;
}

/* fanotify where this process may use it; without it the kernel works as well, but a writer
 * sees its write take effect some time after it closed the file. */
static void gate_start(struct kern *k)
{
    k->fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_CLOEXEC);
    if (k->fan < 0) {
        say("fanotify: %s: a write takes effect a little after its writer closed the file, and a "
            "second write to the same file before then replaces the first",
            strerror(errno));
        return;
    }
    pthread_t th;
    k->gate_req = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (k->gate_req < 0 || pipe2(k->gate_done, O_CLOEXEC | O_NONBLOCK) < 0 ||
        pthread_create(&th, NULL, gate_thread, k) != 0) {
        say("fanotify: %s: not used", strerror(errno));
        close(k->fan);
        k->fan = -1;
        return;
    }
    pthread_detach(th);
}

static int open_tree(struct kern *k, const char *root)
{
    k->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (k->rootfd < 0)
        return say("%s: %s", root, strerror(errno));
    const struct {
        int *fd;
        const char *rel;
    } dirs[] = {
        {&k->sysfd, "sys"},
        {&k->pcifd, "sys/bus/pci"},
        {&k->driversfd, "sys/bus/pci/drivers"},
        {&k->vfiofd, "dev/vfio"},
        {&k->simfd, "sim"},
    };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        *dirs[i].fd = walk(k->rootfd, dirs[i].rel, 0);
        if (*dirs[i].fd < 0)
            return path_error(dirs[i].rel, errno);
    }
    return 0;
}

static int run_kernel(const char *root, long long idle_ms)
{
    static struct kern kern;
    struct kern *k = &kern;
    memset(k, 0, sizeof(*k));
    k->rootfd = k->sysfd = k->pcifd = k->driversfd = k->vfiofd = k->simfd = -1;
    k->fan = k->gate_req = k->gate_done[0] = k->gate_done[1] = -1;

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0)
        return say("sigprocmask: %s", strerror(errno));
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0)
        return say("signalfd: %s", strerror(errno));
    k->ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (k->ino < 0)
        return say("inotify_init1: %s", strerror(errno));
    if (open_tree(k, root) < 0)
        return -1;
    /* Before the first mark: from then on this process's own opens are answered by the gate. */
    gate_start(k);
    k->pci_wd = watch_dir(k, k->pcifd, "sys/bus/pci", IN_CLOSE_WRITE);
    gate_mark(k, k->pcifd, "sys/bus/pci");
    /* The directories it holds open stay, and so do their watches, when the tree is removed:
     * ROOT tells when its sys, dev or sim goes. */
    k->root_wd = watch_dir(k, k->rootfd, ".", IN_DELETE | IN_MOVED_FROM);
    if (k->pci_wd < 0 || k->root_wd < 0 || load_drivers(k) < 0 || load_devices(k) < 0)
        return -1;
    sync_vfio(k, NULL, "");
    if (write_pid(k) < 0)
        return -1;

    int rc = 0;
    for (;;) {
        struct pollfd pfd[3] = {{.fd = k->ino, .events = POLLIN},
                                {.fd = sfd, .events = POLLIN},
                                {.fd = k->gate_req, .events = POLLIN}};
        int n = poll(pfd, 3, idle_ms > 0 ? (int)idle_ms : -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = say("poll: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break; /* idle for idle_ms */
        if (pfd[1].revents & POLLIN)
            break; /* SIGTERM or SIGINT */
        int gone = 0;
        if (pfd[2].revents & POLLIN) {
            /* The gate holds opens: every request made until now is served by this drain. */
            uint64_t count, asked;
            if (read(k->gate_req, &count, sizeof(count)) < 0 && errno != EAGAIN)
                say("eventfd: %s", strerror(errno));
            asked = atomic_load(&k->gate_asked);
            gone = drain(k);
            if (write(k->gate_done[1], &asked, sizeof(asked)) < 0)
                say("gate: %s", strerror(errno));
        } else if (pfd[0].revents & POLLIN) {
            gone = drain(k);
        }
        if (gone) {
            say("%s/sys: removed or replaced; the kernel ends", root);
            break;
        }
    }
    remove_pid(k);
    return rc;
}

static int cmd_kernel(int argc, char **argv)
{
    enum { OPT_IDLE = 256 };
    static const struct option longopts[] = {
        {"exit-after-idle-ms", required_argument, NULL, OPT_IDLE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long long idle = 0;
    int c;
    struct gm_error err;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            printf("usage: gpusimctl %s\n", USAGE_KERNEL);
            return 0;
        case OPT_IDLE:
            if (gm_parse_int(optarg, 1, INT_MAX, &idle, "--exit-after-idle-ms", &err) < 0)
                return usage(USAGE_KERNEL, "%s", err.msg);
            break;
        default:
            return usage(USAGE_KERNEL, "unknown option or missing value: %s", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return usage(USAGE_KERNEL, "%s", optind < argc ? "one ROOT only" : "ROOT is required");
    root_arg = argv[optind];
    return run_kernel(argv[optind], idle) < 0 ? 1 : 0;
}

int gm_sim_sysfs_main(int argc, char **argv)
{
    const char *both = USAGE_CREATE "\n       gpusimctl " USAGE_KERNEL;
    if (argc < 2)
        return usage(both, "a command is required: create or kernel");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        printf("usage: gpusimctl %s\n", both);
        return 0;
    }
    if (strcmp(argv[1], "create") == 0)
        return cmd_create(argc - 1, argv + 1);
    if (strcmp(argv[1], "kernel") == 0)
        return cmd_kernel(argc - 1, argv + 1);
    return usage(both, "unknown command '%s': create or kernel", argv[1]);
}
