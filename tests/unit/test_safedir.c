/* The trusted-directory check and the no-follow opens, on temporary directories under /tmp (a
 * sticky directory writable by all, as the tests' state directories are). The attacks that need
 * another owner chown as root to an unprivileged uid. */
#include "common/safedir.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OTHER_UID 54321 /* no user of the machine: chown needs none */

static char tmp[64];
static char p[PATH_MAX], q[PATH_MAX];

static void setup(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/gm-safedir-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void teardown(void)
{
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(safedir, .init = setup, .fini = teardown);

static void need_root(void)
{
    if (geteuid() != 0) {
        teardown();
        cr_skip_test("chown to another uid needs root");
    }
}

static const char *at(const char *rel)
{
    static char buf[4][PATH_MAX];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, PATH_MAX, "%s/%s", tmp, rel);
    return b;
}

static void refused(const char *dir, const char *want)
{
    struct gm_error err = {0};
    int fd = gm_safedir_open(dir, 0750, 1, &err);
    cr_assert_lt(fd, 0, "%s was trusted", dir);
    cr_assert_eq(err.code, GM_EPERM, "%s: %s", dir, err.msg);
    cr_assert(strstr(err.msg, want) != NULL, "expected '%s' in: %s", want, err.msg);
}

Test(safedir, creates_missing_directories_with_exact_modes)
{
    mode_t old = umask(0077); /* modes do not depend on the umask */
    struct gm_error err = {0};
    int fd = gm_safedir_open(at("a/b/state"), 0750, 1, &err);
    umask(old);
    cr_assert_geq(fd, 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(st.st_mode & 07777, 0750);
    cr_assert_eq(stat(at("a/b"), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0755);
    close(fd);
    /* Opened again: the same checks pass on what exists. */
    fd = gm_safedir_open(at("a/b/state"), 0750, 0, &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    close(fd);
}

Test(safedir, missing_without_create_is_not_found)
{
    struct gm_error err = {0};
    cr_assert_eq(gm_safedir_open(at("none"), 0750, 0, &err), -GM_ENOTFOUND, "%s", err.msg);
    cr_assert(strstr(err.msg, at("none")) != NULL, "%s", err.msg);
}

Test(safedir, directory_of_another_user_refused)
{
    need_root();
    cr_assert_eq(mkdir(at("state"), 0755), 0);
    cr_assert_eq(chown(at("state"), OTHER_UID, OTHER_UID), 0);
    refused(at("state"), "owned by uid 54321, not root");
    /* Nothing made below it either. */
    refused(at("state/sub"), "owned by uid 54321");
    cr_assert_neq(access(at("state/sub"), F_OK), 0, "created inside a refused directory");
}

Test(safedir, writable_by_others_refused)
{
    cr_assert_eq(mkdir(at("state"), 0755), 0);
    cr_assert_eq(chmod(at("state"), 0777), 0);
    refused(at("state"), "writable by others (mode 0777)");
    /* Sticky does not make the directory itself safe: others may still create names in it. */
    cr_assert_eq(chmod(at("state"), 01777), 0);
    refused(at("state"), "writable by others (mode 1777)");
    cr_assert_eq(chmod(at("state"), 0775), 0);
    refused(at("state"), "writable by group");
}

Test(safedir, ancestor_writable_by_others_refused_unless_sticky)
{
    cr_assert_eq(mkdir(at("up"), 0777), 0);
    cr_assert_eq(chmod(at("up"), 0777), 0);
    cr_assert_eq(mkdir(at("up/state"), 0750), 0);
    refused(at("up/state"), "directory "
                            "/tmp/gm-safedir-");
    refused(at("up/state"), "/up: writable by others (mode 0777)");
    /* Sticky (as /tmp): an entry we own cannot be replaced by another user. */
    cr_assert_eq(chmod(at("up"), 01777), 0);
    struct gm_error err = {0};
    int fd = gm_safedir_open(at("up/state"), 0750, 0, &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    close(fd);
}

Test(safedir, entry_of_another_user_in_sticky_directory_refused)
{
    need_root();
    cr_assert_eq(mkdir(at("up"), 01777), 0);
    cr_assert_eq(chmod(at("up"), 01777), 0);
    cr_assert_eq(mkdir(at("up/state"), 0755), 0);
    cr_assert_eq(chown(at("up/state"), OTHER_UID, OTHER_UID), 0);
    refused(at("up/state/run"), "up/state: owned by uid 54321");
}

Test(safedir, symlink_of_another_user_not_followed)
{
    need_root();
    cr_assert_eq(mkdir(at("real"), 0750), 0);
    cr_assert_eq(symlink(at("real"), at("link")), 0);
    cr_assert_eq(lchown(at("link"), OTHER_UID, OTHER_UID), 0);
    refused(at("link"), "symbolic link");
    refused(at("link"), "owned by uid 54321");
}

Test(safedir, own_symlinks_followed_and_target_checked)
{
    cr_assert_eq(mkdir(at("real"), 0750), 0);
    cr_assert_eq(symlink("real", at("rel")), 0);     /* relative */
    cr_assert_eq(symlink(at("real"), at("abs")), 0); /* absolute */
    struct gm_error err = {0};
    struct stat want, got;
    cr_assert_eq(stat(at("real"), &want), 0);
    const char *names[] = {"rel", "abs", "real/../rel", "./abs/."};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int fd = gm_safedir_open(at(names[i]), 0750, 0, &err);
        cr_assert_geq(fd, 0, "%s: %s", names[i], err.msg);
        cr_assert_eq(fstat(fd, &got), 0);
        cr_assert(got.st_ino == want.st_ino && got.st_dev == want.st_dev, "%s", names[i]);
        close(fd);
    }
    /* A trusted link to an untrusted directory: the target is what is checked. */
    cr_assert_eq(chmod(at("real"), 0777), 0);
    refused(at("rel"), "real: writable by others");
}

Test(safedir, file_in_the_way_refused)
{
    int fd = open(at("file"), O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    struct gm_error err = {0};
    cr_assert_lt(gm_safedir_open(at("file/sub"), 0750, 1, &err), 0);
    cr_assert(strstr(err.msg, "not a directory") != NULL, "%s", err.msg);
}

Test(safedir, openat_refuses_links_fifos_and_hard_links)
{
    struct gm_error err = {0};
    int dfd = gm_safedir_open(tmp, 0700, 0, &err);
    cr_assert_geq(dfd, 0, "%s", err.msg);
    int victim = open(at("victim"), O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(victim, 0);
    cr_assert_eq(write(victim, "keep", 4), 4);
    close(victim);

    cr_assert_eq(symlink(at("victim"), at("log")), 0);
    int fd = gm_safe_openat(dfd, tmp, "log", O_WRONLY | O_CREAT | O_TRUNC, 0640, &err);
    cr_assert_lt(fd, 0);
    cr_assert(strstr(err.msg, "symbolic link") != NULL, "%s", err.msg);

    cr_assert_eq(link(at("victim"), at("hard")), 0);
    fd = gm_safe_openat(dfd, tmp, "hard", O_WRONLY | O_APPEND, 0640, &err);
    cr_assert_lt(fd, 0);
    cr_assert(strstr(err.msg, "hard links") != NULL, "%s", err.msg);

    cr_assert_eq(mkfifo(at("fifo"), 0600), 0);
    fd = gm_safe_openat(dfd, tmp, "fifo", O_RDONLY, 0, &err); /* would block without a writer */
    cr_assert_lt(fd, 0);
    cr_assert(strstr(err.msg, "not a regular file") != NULL, "%s", err.msg);

    struct stat st;
    cr_assert_eq(stat(at("victim"), &st), 0);
    cr_assert_eq(st.st_size, 4, "the victim was truncated");

    fd = gm_safe_openat(dfd, tmp, "new", O_WRONLY | O_CREAT | O_EXCL, 0640, &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    cr_assert_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0, "left non-blocking");
    cr_assert_neq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    close(fd);
    cr_assert_lt(gm_safe_openat(dfd, tmp, "../x", O_RDONLY, 0, &err), 0);
    close(dfd);
}

Test(safedir, open_by_path_checks_the_directory)
{
    need_root();
    cr_assert_eq(mkdir(at("logs"), 0755), 0);
    snprintf(p, sizeof(p), "%s", at("logs/w.log"));
    struct gm_error err = {0};
    int fd = gm_safe_open(p, O_WRONLY | O_APPEND | O_CREAT, 0640, &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    close(fd);
    cr_assert_eq(chown(at("logs"), OTHER_UID, OTHER_UID), 0);
    snprintf(q, sizeof(q), "%s", at("logs/x.log"));
    fd = gm_safe_open(q, O_WRONLY | O_APPEND | O_CREAT, 0640, &err);
    cr_assert_lt(fd, 0);
    cr_assert(strstr(err.msg, "owned by uid 54321") != NULL, "%s", err.msg);
    cr_assert_neq(access(q, F_OK), 0, "created in an untrusted directory");
}
