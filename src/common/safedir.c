#include "common/safedir.h"
#include "common/path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Links followed (and ".." taken back) in one walk before giving up, as the kernel's ELOOP. */
#define MAX_RESTARTS 40

static int trusted_uid(uid_t uid)
{
    return uid == 0 || uid == geteuid();
}

static int refuse_owner(struct gm_error *err, const char *what, const char *path, uid_t uid)
{
    if (geteuid() == 0)
        return gm_err(err, GM_EPERM, "%s %s: owned by uid %u, not root", what, path, (unsigned)uid);
    return gm_err(err, GM_EPERM, "%s %s: owned by uid %u, not root or uid %u", what, path,
                  (unsigned)uid, (unsigned)geteuid());
}

/* One directory of the walk; last: the directory asked for, which may not even be sticky. */
static int check_dir(const char *path, const struct stat *st, int last, struct gm_error *err)
{
    if (!trusted_uid(st->st_uid))
        return refuse_owner(err, "directory", path, st->st_uid);
    mode_t m = st->st_mode;
    if ((m & (S_IWGRP | S_IWOTH)) && (last || !(m & S_ISVTX))) {
        if (m & S_IWOTH)
            return gm_err(err, GM_EPERM, "directory %s: writable by others (mode %04o)", path,
                          (unsigned)(m & 07777));
        return gm_err(err, GM_EPERM, "directory %s: writable by group %u (mode %04o)", path,
                      (unsigned)st->st_gid, (unsigned)(m & 07777));
    }
    return 0;
}

/* Joins the walk's next path: head (a directory reached, or a link's target) and the rest. */
static int join(char *out, size_t len, const char *head, size_t headlen, const char *rest,
                const char *dir, struct gm_error *err)
{
    int n = snprintf(out, len, "%.*s/%s", (int)headlen, head, rest);
    if (n < 0 || (size_t)n >= len)
        return gm_err(err, GM_EINVAL, "directory %s: path too long", dir);
    return 0;
}

int gm_safedir_open(const char *dir, mode_t mode, int create, struct gm_error *err)
{
    char cur[PATH_MAX], next[PATH_MAX], prefix[PATH_MAX], link[PATH_MAX];
    int rc;
    if (dir == NULL || dir[0] == '\0')
        return gm_err(err, GM_EINVAL, "directory '': empty path");
    if (dir[0] == '/') {
        rc = gm_path(err, cur, sizeof(cur), "%s", dir);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return gm_err_errno(err, GM_EIO, errno, "directory %s: working directory", dir);
        rc = gm_path(err, cur, sizeof(cur), "%s/%s", cwd, dir);
    }
    if (rc < 0)
        return rc;

    for (int restarts = 0; restarts <= MAX_RESTARTS; restarts++) {
        int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return gm_err_errno(err, GM_EIO, e, "directory /");
        }
        size_t i = 0;
        int again = 0;
        while (cur[i] == '/')
            i++;
        if ((rc = check_dir("/", &st, cur[i] == '\0', err)) < 0) {
            close(fd);
            return rc;
        }
        while (cur[i] != '\0' && !again) {
            size_t start = i;
            while (cur[i] != '\0' && cur[i] != '/')
                i++;
            size_t clen = i - start;
            char comp[NAME_MAX + 1];
            if (clen > NAME_MAX) {
                close(fd);
                return gm_err(err, GM_EINVAL, "directory %s: a name longer than %d bytes", dir,
                              NAME_MAX);
            }
            memcpy(comp, cur + start, clen);
            comp[clen] = '\0';
            memcpy(prefix, cur, i);
            prefix[i] = '\0';
            size_t j = i;
            while (cur[j] == '/')
                j++;
            const char *rest = cur + j;
            int last = *rest == '\0';
            /* The parent's path in prefix: every directory so far is a real one (links
             * restart the walk), so ".." is the lexical parent. */
            size_t plen = start;
            while (plen > 0 && cur[plen - 1] == '/')
                plen--;
            if (strcmp(comp, ".") == 0) {
                i = j;
                continue;
            }
            if (strcmp(comp, "..") == 0) {
                while (plen > 0 && cur[plen - 1] != '/')
                    plen--;
                if ((rc = join(next, sizeof(next), cur, plen, rest, dir, err)) < 0) {
                    close(fd);
                    return rc;
                }
                again = 1;
                break;
            }
            int made = 0;
            if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                int e = errno;
                if (e == ENOENT && create) {
                    if (mkdirat(fd, comp, last ? mode : 0755) == 0)
                        made = 1;
                    else if (errno != EEXIST)
                        e = errno;
                    if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0)
                        e = 0;
                }
                if (e != 0) {
                    close(fd);
                    return gm_err_errno(err, e == ENOENT ? GM_ENOTFOUND : GM_EIO, e,
                                        made || create ? "creating %s" : "directory %s", prefix);
                }
            }
            if (S_ISLNK(st.st_mode)) {
                if (!trusted_uid(st.st_uid)) {
                    close(fd);
                    return refuse_owner(err, "symbolic link", prefix, st.st_uid);
                }
                ssize_t n = readlinkat(fd, comp, link, sizeof(link) - 1);
                if (n < 0 || (size_t)n >= sizeof(link) - 1) {
                    int e = n < 0 ? errno : ENAMETOOLONG;
                    close(fd);
                    return gm_err_errno(err, GM_EIO, e, "symbolic link %s", prefix);
                }
                link[n] = '\0';
                if (link[0] == '/')
                    rc = join(next, sizeof(next), link, (size_t)n, rest, dir, err);
                else {
                    char base[PATH_MAX];
                    int k = snprintf(base, sizeof(base), "%.*s/%s", (int)plen, cur, link);
                    rc = k < 0 || (size_t)k >= sizeof(base)
                             ? gm_err(err, GM_EINVAL, "directory %s: path too long", dir)
                             : join(next, sizeof(next), base, (size_t)k, rest, dir, err);
                }
                if (rc < 0) {
                    close(fd);
                    return rc;
                }
                again = 1;
                break;
            }
            if (!S_ISDIR(st.st_mode)) {
                close(fd);
                return gm_err(err, GM_EIO, "%s exists and is not a directory", prefix);
            }
            int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int e = errno;
            close(fd);
            if (nfd < 0)
                return gm_err_errno(err, GM_EIO, e, "directory %s", prefix);
            fd = nfd;
            if (made && fchmod(fd, last ? mode : 0755) < 0) {
                e = errno;
                close(fd);
                return gm_err_errno(err, GM_EIO, e, "directory %s: setting its mode", prefix);
            }
            if (fstat(fd, &st) < 0 || (rc = check_dir(prefix, &st, last, err)) < 0) {
                if (rc == 0)
                    rc = gm_err_errno(err, GM_EIO, errno, "directory %s", prefix);
                close(fd);
                return rc;
            }
            i = j;
        }
        if (!again)
            return fd;
        close(fd);
        memcpy(cur, next, sizeof(cur));
    }
    return gm_err(err, GM_EINVAL, "directory %s: too many symbolic links", dir);
}

int gm_safe_openat(int dfd, const char *dir, const char *name, int flags, mode_t mode,
                   struct gm_error *err)
{
    if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return gm_err(err, GM_EINVAL, "%s/%s: not a file name", dir, name);
    int fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, mode);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return gm_err(err, GM_EPERM, "%s/%s: is a symbolic link, not followed", dir, name);
        return gm_err_errno(err, e == ENOENT ? GM_ENOTFOUND : GM_EIO, e, "%s/%s", dir, name);
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0)
        rc = gm_err_errno(err, GM_EIO, errno, "%s/%s", dir, name);
    else if (!S_ISREG(st.st_mode))
        rc = gm_err(err, GM_EPERM, "%s/%s: not a regular file", dir, name);
    else if (st.st_nlink > 1)
        rc = gm_err(err, GM_EPERM, "%s/%s: has %lu hard links, not opened", dir, name,
                    (unsigned long)st.st_nlink);
    else if (!(flags & O_NONBLOCK)) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
            rc = gm_err_errno(err, GM_EIO, errno, "%s/%s", dir, name);
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int gm_safe_open(const char *path, int flags, mode_t mode, struct gm_error *err)
{
    char dir[PATH_MAX];
    int rc = gm_path(err, dir, sizeof(dir), "%s", path);
    if (rc < 0)
        return rc;
    char *slash = strrchr(dir, '/');
    const char *name = path;
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        name = path + (slash - dir) + 1;
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
    int dfd = gm_safedir_open(dir, 0, 0, err);
    if (dfd < 0)
        return dfd;
    int fd = gm_safe_openat(dfd, dir, name, flags, mode, err);
    close(dfd);
    return fd;
}
