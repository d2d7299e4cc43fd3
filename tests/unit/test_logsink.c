/* The workload log writer: rotation at the size, the number of files kept, links and FIFOs in
 * the log's place, and a full disk (a file size limit, and a tiny tmpfs when run as root). */
#include "daemon/supervise.h"
#include "common/logindex.h"
#include "monitor/logsink.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char base[PATH_MAX];

static void setup(void)
{
    snprintf(base, sizeof(base), "/tmp/gm-logsink.XXXXXX");
    cr_assert_not_null(mkdtemp(base));
}

static void teardown(void)
{
    char cmd[PATH_MAX + 32];
    umount2(base, MNT_DETACH); /* the tmpfs of the full-disk test, if any */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", base);
}

TestSuite(logsink, .init = setup, .fini = teardown);
TestSuite(logindex, .init = setup, .fini = teardown);

static void path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", base, name);
}

/* Size of base/name, -1 when it does not exist. */
static long long size_of(const char *name)
{
    char p[PATH_MAX + 64];
    path_of(p, sizeof(p), name);
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* Appends the content of base/name to buf at *len. */
static void append_file(const char *name, char *buf, size_t cap, size_t *len)
{
    char p[PATH_MAX + 64];
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return;
    *len += fread(buf + *len, 1, cap - *len, f);
    fclose(f);
}

/* A stream whose every byte says where it is: a tail of it shows what was kept. */
static char stream_byte(size_t i)
{
    return (char)('a' + (i * 7 + i / 26) % 26);
}

static void write_stream(struct gm_logsink *s, size_t from, size_t total, size_t chunk)
{
    char buf[4096];
    for (size_t at = from; at < total;) {
        size_t n = total - at < chunk ? total - at : chunk;
        for (size_t i = 0; i < n; i++)
            buf[i] = stream_byte(at + i);
        gm_logsink_write(s, buf, n);
        at += n;
    }
}

static void open_sink(struct gm_logsink *s, uint64_t max_size, int max_files)
{
    char p[PATH_MAX + 16];
    path_of(p, sizeof(p), "w.log");
    struct gm_error err = {0};
    cr_assert_eq(gm_logsink_open(s, p, max_size, max_files, -1, &err), 0, "%s", err.msg);
}

Test(logsink, rotates_at_the_size_and_keeps_the_newest_files)
{
    struct gm_logsink s;
    open_sink(&s, 100, 2);
    write_stream(&s, 0, 1037, 7); /* chunks that do not divide the size */
    gm_logsink_close(&s);
    /* Every rotated file is exactly the size; only two are kept; nothing else is there. */
    cr_assert_eq(size_of("w.log.1"), 100);
    cr_assert_eq(size_of("w.log.2"), 100);
    cr_assert_eq(size_of("w.log.3"), -1);
    cr_assert_eq(size_of("w.log"), 37);
    /* Together, oldest first, they are exactly the end of what was written. */
    char got[1024];
    size_t n = 0;
    append_file("w.log.2", got, sizeof(got), &n);
    append_file("w.log.1", got, sizeof(got), &n);
    append_file("w.log", got, sizeof(got), &n);
    cr_assert_eq(n, 237);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], stream_byte(1037 - 237 + i), "byte %zu of the kept log", i);
}

Test(logsink, no_rotated_files_keeps_one_bounded_file)
{
    struct gm_logsink s;
    open_sink(&s, 4096, 0);
    write_stream(&s, 0, 100000, 4096);
    gm_logsink_close(&s);
    cr_assert_leq(size_of("w.log"), 4096);
    cr_assert_eq(size_of("w.log.1"), -1);
}

Test(logsink, reopening_continues_and_honours_a_smaller_setting)
{
    struct gm_logsink s;
    open_sink(&s, 100, 5);
    write_stream(&s, 0, 550, 50);
    gm_logsink_close(&s);
    cr_assert_eq(size_of("w.log.5"), 100);
    /* A later launch with fewer files removes the extra ones at once, and a current file larger
     * than the new size is rotated before the next byte. */
    open_sink(&s, 40, 2);
    cr_assert_eq(size_of("w.log.3"), -1);
    cr_assert_eq(size_of("w.log.5"), -1);
    cr_assert_eq(size_of("w.log.2"), 100);
    write_stream(&s, 550, 551, 1);
    gm_logsink_close(&s);
    cr_assert_eq(size_of("w.log"), 1);
    cr_assert_eq(size_of("w.log.1"), 50);
    cr_assert_eq(size_of("w.log.2"), 100);
}

Test(logsink, refuses_a_link_or_fifo_in_the_logs_place)
{
    char p[PATH_MAX + 16], target[PATH_MAX + 16];
    path_of(target, sizeof(target), "target");
    int fd = open(target, O_WRONLY | O_CREAT, 0600);
    cr_assert(fd >= 0);
    close(fd);
    path_of(p, sizeof(p), "w.log");
    cr_assert_eq(symlink(target, p), 0);
    struct gm_logsink s;
    struct gm_error err = {0};
    cr_assert_lt(gm_logsink_open(&s, p, 100, 1, -1, &err), 0);
    cr_assert(strstr(err.msg, "w.log") != NULL, "the message names the log: %s", err.msg);
    cr_assert_eq(size_of("target"), 0);
    unlink(p);
    /* A FIFO with no reader: refused at once, never waited on. */
    cr_assert_eq(mkfifo(p, 0600), 0);
    time_t t0 = time(NULL);
    cr_assert_lt(gm_logsink_open(&s, p, 100, 1, -1, &err), 0);
    cr_assert_leq(time(NULL) - t0, 1);
    unlink(p);
    /* A hard link to another file: refused as well. */
    cr_assert_eq(link(target, p), 0);
    cr_assert_lt(gm_logsink_open(&s, p, 100, 1, -1, &err), 0);
    cr_assert(strstr(err.msg, "not a regular file with one name") != NULL, "%s", err.msg);
    cr_assert_eq(size_of("target"), 0);
    unlink(p);
    /* A link planted as the next rotated name is replaced, not followed. */
    open_sink(&s, 10, 1);
    char r1[PATH_MAX + 16];
    path_of(r1, sizeof(r1), "w.log.1");
    cr_assert_eq(symlink(target, r1), 0);
    write_stream(&s, 0, 25, 5);
    gm_logsink_close(&s);
    cr_assert_eq(size_of("target"), 0);
    struct stat st;
    cr_assert_eq(lstat(r1, &st), 0);
    cr_assert(S_ISREG(st.st_mode));
}

/* Bytes dropped while writes fail are counted, the writer does not wait, and when space is back
 * one line says how many were lost, followed by the new output. */
static void check_loss_and_note(const char *log, size_t kept_before, size_t lost)
{
    char want[128];
    snprintf(want, sizeof(want),
             "gpumux-monitor: %zu bytes of output lost: no space left for the "
             "log\nback\n",
             lost);
    cr_assert_str_eq(log + kept_before, want);
}

Test(logsink, file_size_limit_drops_counts_and_notes_once)
{
    signal(SIGXFSZ, SIG_IGN);
    struct gm_logsink s;
    open_sink(&s, 1 << 20, 1);
    struct rlimit old, lim = {.rlim_cur = 1000, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    write_stream(&s, 0, 5000, 300);
    cr_assert_eq(s.dropped, 4000);
    cr_assert_eq(size_of("w.log"), 1000);
    write_stream(&s, 5000, 5100, 50); /* still no room: more is counted, no note yet */
    cr_assert_eq(s.dropped, 4100);
    cr_assert_eq(size_of("w.log"), 1000);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    gm_logsink_write(&s, "back\n", 5);
    gm_logsink_write(&s, "", 0);
    cr_assert_eq(s.dropped, 0);
    gm_logsink_close(&s);
    char log[4096];
    size_t n = 0;
    append_file("w.log", log, sizeof(log) - 1, &n);
    log[n] = '\0';
    check_loss_and_note(log, 1000, 4100);
}

Test(logsink, full_tmpfs_drops_without_waiting)
{
    if (geteuid() != 0 || mount("tmpfs", base, "tmpfs", 0, "size=64k") != 0)
        cr_skip("needs root to mount a tmpfs");
    /* Another file takes half the disk, the log fills the rest. */
    char filler[PATH_MAX + 16];
    path_of(filler, sizeof(filler), "filler");
    FILE *f = fopen(filler, "w");
    cr_assert_not_null(f);
    static char block[32768];
    cr_assert_eq(fwrite(block, 1, sizeof(block), f), sizeof(block));
    cr_assert_eq(fclose(f), 0);
    struct gm_logsink s;
    open_sink(&s, 1 << 20, 2);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    write_stream(&s, 0, 1 << 20, 4096); /* 16 times the disk */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long kept = size_of("w.log");
    cr_assert_gt(kept, 0);
    cr_assert_lt(kept, 65536);
    cr_assert_eq((uint64_t)kept + s.dropped, 1 << 20, "every byte is written or counted");
    cr_assert_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 2000,
                 "a full disk costs output, not time");
    uint64_t lost = s.dropped;
    cr_assert_eq(unlink(filler), 0); /* space is back */
    gm_logsink_write(&s, "back\n", 5);
    cr_assert_eq(s.dropped, 0);
    gm_logsink_close(&s);
    char *log = calloc(1, 65536 + 256);
    size_t n = 0;
    append_file("w.log", log, 65536 + 255, &n);
    check_loss_and_note(log, (size_t)kept, (size_t)lost);
    free(log);
}

/* ---- the time index (logs --since) ---------------------------------------------------------- */

static long long index_line(const char *name, int line, long long *offset)
{
    char p[PATH_MAX + 16], buf[256];
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return -1;
    long long t = -1;
    for (int i = 0; i <= line && fgets(buf, sizeof(buf), f) != NULL; i++)
        if (i == line && sscanf(buf, "%lld %lld", &t, offset) != 2)
            t = -1;
    fclose(f);
    return t;
}

Test(logsink, the_time_index_marks_each_second_and_rotates_with_its_file)
{
    struct gm_logsink s;
    open_sink(&s, 100, 2);
    gm_logsink_write(&s, "first\n", 6);
    gm_logsink_write(&s, "same second\n", 12);
    long long off;
    cr_assert_gt(index_line("w.log.t", 0, &off), 0, "the first write is marked");
    cr_assert_eq(off, 0);
    cr_assert_eq(index_line("w.log.t", 1, &off), -1, "one mark a second at most");
    usleep(1100 * 1000);
    gm_logsink_write(&s, "next second\n", 12);
    cr_assert_gt(index_line("w.log.t", 1, &off), 0);
    cr_assert_eq(off, 18, "the mark says where that second's output begins");
    /* Past the size: the file and its index become w.log.1 and w.log.1.t together. */
    write_stream(&s, 0, 90, 90);
    gm_logsink_close(&s);
    cr_assert_gt(index_line("w.log.1.t", 0, &off), 0);
    cr_assert_eq(off, 0);
    cr_assert_gt(index_line("w.log.1.t", 1, &off), 0);
    cr_assert_eq(off, 18);
    cr_assert_gt(index_line("w.log.t", 0, &off), 0, "the new file has its own index");
    cr_assert_eq(off, 0);
}

Test(logindex, find_returns_where_output_at_or_after_a_time_begins)
{
    char p[PATH_MAX + 16];
    path_of(p, sizeof(p), "x.t");
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    int64_t last = 0;
    gm_logindex_note(fd, 0, 10000, &last);
    gm_logindex_note(fd, 5, 10500, &last); /* the same second: no mark */
    gm_logindex_note(fd, 9, 11000, &last);
    gm_logindex_note(fd, 30, 20000, &last);
    uint64_t off = 99;
    cr_assert_eq(gm_logindex_find(fd, 0, &off), 1);
    cr_assert_eq(off, 0);
    cr_assert_eq(gm_logindex_find(fd, 10999, &off), 1);
    cr_assert_eq(off, 0, "written within the second after 10000: may be as new as 10999");
    cr_assert_eq(gm_logindex_find(fd, 11000, &off), 1);
    cr_assert_eq(off, 9);
    cr_assert_eq(gm_logindex_find(fd, 15000, &off), 1);
    cr_assert_eq(off, 30, "nothing between 12000 and 20000");
    cr_assert_eq(gm_logindex_find(fd, 21000, &off), 0, "all older");
    cr_assert_eq(write(fd, "garbage\n", 8), 8);
    cr_assert_eq(gm_logindex_find(fd, 21000, &off), -1, "a file that is no index is not trusted");
    close(fd);
    cr_assert_eq(gm_logindex_find(-1, 0, &off), -1);
}
