/* Opening and closing a daemon: everything gpumuxd needs before it serves, in one place for the
 * daemon itself and for the tests that run its core in-process. */
#include "common/cgroup.h"
#include "common/log.h"
#include "common/path.h"
#include "common/safedir.h"
#include "daemon/daemon.h"
#include "daemon/memcheck.h"
#include "daemon/mps.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* One daemon per state directory: two would both believe they own the workloads. */
static int lock_state(int dfd, const char *dir, struct gm_error *err)
{
    char path[PATH_MAX];
    int rc = gm_path(err, path, sizeof(path), "%s/gpumuxd.lock", dir);
    if (rc < 0)
        return rc;
    int fd = gm_safe_openat(dfd, dir, "gpumuxd.lock", O_RDWR | O_CREAT, 0640, err);
    if (fd < 0)
        return gm_err_wrap(err, "state directory %s is not writable", dir);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        return gm_err(err, GM_ECONFLICT, "another gpumuxd is already using state directory %s",
                      dir);
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", getpid());
    if (ftruncate(fd, 0) < 0 || write(fd, pid, (size_t)n) != n) {
        int e = errno;
        close(fd);
        return gm_err_errno(err, GM_EIO, e, "writing %s", path);
    }
    return fd; /* kept open for the daemon's life */
}

/* The directory of the gpusim state file, when gpusim may be loaded: the file is made and
 * mapped by root and shared with every workload, so it may only live where nobody else can put
 * a file or a link of theirs in its place. */
static int check_gpusim_dir(const struct gm_config *c, struct gm_error *err)
{
    if (strcmp(c->driver, "nvml") == 0 || c->gpusim_state[0] == '\0')
        return 0;
    char dir[PATH_MAX];
    int rc = gm_path(err, dir, sizeof(dir), "%s", c->gpusim_state);
    if (rc < 0)
        return rc;
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    /* gpusim's default lives in /dev/shm, root's and sticky like /tmp: another user cannot
     * replace our entry there, links are refused (gpusim opens it O_NOFOLLOW), and the daemon
     * reads the file only through gpusim's validated private view. So a sticky directory of
     * root's is accepted when the directory above it is trusted. */
    struct stat sb;
    if (lstat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) && sb.st_uid == 0 && (sb.st_mode & S_ISVTX)) {
        char *up = strrchr(dir, '/');
        if (up != NULL && up != dir)
            *up = '\0';
        else if (up == dir)
            up[1] = '\0';
    }
    int fd = gm_safedir_open(dir, 0755, 0, err);
    if (fd < 0)
        return gm_err_wrap(err, "gpusim_state %s", c->gpusim_state);
    close(fd);
    return 0;
}

/* Finds where launches get their cgroups. A configured place that does not work is an error;
 * with "auto" the daemon says why there is none and tracks launches by their locks only. */
static int open_cgroups(struct gm_daemon *d, struct gm_error *err)
{
    enum gm_cg_kind kind = GM_CG_NONE;
    struct gm_error cerr = {0};
    const char *setting = d->cfg.cgroup_root;
    int rc = gm_cgroup_resolve_root(setting, d->cgroup_root, sizeof(d->cgroup_root), &kind, &cerr);
    d->cgroup_kind = kind;
    if (rc < 0 && strcmp(setting, "auto") != 0) {
        *err = cerr;
        return rc;
    }
    if (kind != GM_CG_NONE)
        gm_info("supervision: each launch runs in its own cgroup under %s (%s)", d->cgroup_root,
                gm_cgroup_kind_name(kind));
    else
        gm_warn("supervision: %s%s: launches are tracked by their locks only, which a workload "
                "can escape (setsid and closing its descriptors, then its monitor's end); see "
                "cgroup_root",
                rc < 0 ? "no usable cgroup: " : "cgroup_root is none", rc < 0 ? cerr.msg : "");
    return 0;
}

/* Where `make install` puts the monitor, relative to the directory of gpumuxd: the build sets it
 * from its install directories (sbin and libexec/gpumux under one prefix). */
#ifndef GM_MONITOR_LIBEXEC_REL
#define GM_MONITOR_LIBEXEC_REL "../libexec/gpumux"
#endif

/* gpumux-monitor beside gpumuxd (the build tree, the GPU bundle), else in the installed
 * libexec directory. */
static int find_monitor(char *buf, size_t len, const char *exe_dir, struct gm_error *err)
{
    int rc = gm_path(err, buf, len, "%s/gpumux-monitor", exe_dir);
    if (rc < 0 || access(buf, X_OK) == 0)
        return rc;
    int beside = errno;
    char installed[PATH_MAX];
    rc = gm_path(err, installed, sizeof(installed), "%s/" GM_MONITOR_LIBEXEC_REL "/gpumux-monitor",
                 exe_dir);
    if (rc < 0)
        return rc;
    if (access(installed, X_OK) == 0) {
        char real[PATH_MAX];
        /* PREFIX/libexec/gpumux/gpumux-monitor rather than PREFIX/sbin/../libexec/... */
        return gm_path(err, buf, len, "%s", realpath(installed, real) != NULL ? real : installed);
    }
    return gm_err_errno(err, GM_EINVAL, beside, "gpumux-monitor is neither at %s nor at %s", buf,
                        installed);
}

int gm_daemon_open(struct gm_daemon *d, const char *exe_dir, struct gm_error *err)
{
    d->lock_fd = -1;
    d->state_fd = -1;
    d->run_fd = -1;
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->region_lock, NULL);
    int rc = find_monitor(d->monitor_path, sizeof(d->monitor_path), exe_dir, err);
    if (rc < 0)
        return rc;
    gethostname(d->hostname, sizeof(d->hostname) - 1);
    if (gm_memcheck_new(&d->memcheck) < 0)
        return gm_err(err, GM_ENOMEM, "out of memory");
    if (gm_mps_new(&d->mps) < 0)
        return gm_err(err, GM_ENOMEM, "out of memory");
    /* Root creates, truncates, chowns and appends to files in these: refused unless nobody
     * else can write to them or to a directory above them. */
    if ((d->state_fd = gm_safedir_open(d->cfg.state_dir, 0750, 1, err)) < 0)
        return gm_err_wrap(err, "state_dir");
    if ((d->run_fd = gm_safedir_open(d->cfg.run_dir, 0755, 1, err)) < 0)
        return gm_err_wrap(err, "run_dir");
    /* The monitors (root) append the workloads' output here. */
    int log_fd = gm_safedir_open(d->cfg.log_dir, 0750, 1, err);
    if (log_fd < 0)
        return gm_err_wrap(err, "log_dir");
    close(log_fd);
    if ((rc = check_gpusim_dir(&d->cfg, err)) < 0)
        return rc;
    if ((d->lock_fd = lock_state(d->state_fd, d->cfg.state_dir, err)) < 0)
        return d->lock_fd;
    if ((rc = open_cgroups(d, err)) < 0)
        return rc;
    if ((rc = gm_store_open(d->cfg.state_dir, &d->store, err)) < 0)
        return rc;
    /* gpusim reads these when it is loaded; workloads get the same values. */
    setenv("GPUSIM_STATE", d->cfg.gpusim_state, 1);
    if (d->cfg.gpusim_config[0])
        setenv("GPUSIM_CONFIG", d->cfg.gpusim_config, 1);
    if ((rc = gm_gpu_open(d->cfg.driver, d->cfg.gpusim_dir, &d->driver, err)) < 0)
        return rc;
    d->gpu_open = 1;
    gm_info("gpumuxd %s: driver %s (%s, driver %s, CUDA %s), %d GPU(s)", GM_VERSION,
            d->driver.kind == GM_DRIVER_SIM ? "gpusim (simulated GPUs)" : "NVIDIA (real GPUs)",
            d->driver.library, d->driver.driver_version, d->driver.cuda_version, gm_gpu_count());
    if ((rc = gm_inventory_sync(d, err)) < 0)
        return rc;
    /* Before any workload is placed: VMs' GPUs back on vfio-pci, half-done attaches undone. */
    gm_vfio_recover(d);
    gm_store_event(d->store, GM_LEVEL_INFO, "daemon", "started (pid %d, driver %s)", getpid(),
                   gm_driver_kind_name(d->driver.kind));
    return 0;
}

void gm_daemon_close(struct gm_daemon *d)
{
    pthread_mutex_lock(&d->lock);
    if (d->store != NULL) {
        gm_store_event(d->store, GM_LEVEL_INFO, "daemon", "stopped");
        gm_store_close(d->store);
        d->store = NULL;
    }
    pthread_mutex_unlock(&d->lock);
    if (d->gpu_open)
        gm_gpu_close();
    d->gpu_open = 0;
    free(d->wmem);
    d->wmem = NULL;
    d->nwmem = 0;
    gm_strv_free(&d->changing);
    gm_mps_free(d->mps);
    d->mps = NULL;
    gm_memcheck_free(d->memcheck);
    d->memcheck = NULL;
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    d->lock_fd = -1;
    if (d->state_fd >= 0)
        close(d->state_fd);
    if (d->run_fd >= 0)
        close(d->run_fd);
    d->state_fd = d->run_fd = -1;
}
