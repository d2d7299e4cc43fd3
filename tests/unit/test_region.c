/* src/region: creating and attaching a region, the one liveness rule of the reaper, slots, the
 * seqlock, a bounded lock against a workload process that holds it, and the trust split: the
 * limits part read-only to the workload, owners and modes per file, the daemon's view. */
#include "test_interpose_region.h"

#include <grp.h>
#include <sys/mman.h>
#include <sys/stat.h>

static char dir[64], path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/gm-region-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/w.region", dir);
}

static void teardown(void)
{
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

TestSuite(region, .init = setup, .fini = teardown);

static struct gm_region *make(uint64_t limit, uint32_t pct)
{
    return t_region_create(path, limit, pct);
}

Test(region, create_then_attach)
{
    struct gm_region *r = make(64 * MIB, 30);
    struct stat st;
    /* The usage part: the workload's to write, the others' to read. The limits part: readable
     * by it, the daemon's. */
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0644);
    cr_expect_eq((size_t)st.st_size, GM_REGION_USAGE_SIZE);
    char lpath[160];
    cr_assert_eq(gm_region_limits_path(path, lpath, sizeof(lpath), NULL), 0);
    cr_expect(strstr(lpath, "/w.limits") != NULL, "%s", lpath);
    cr_assert_eq(stat(lpath, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0644);
    cr_expect_eq((size_t)st.st_size, GM_REGION_LIMITS_SIZE);
    cr_expect_eq(r->magic, GM_REGION_LIMITS_MAGIC);
    cr_expect_eq(r->usage_magic, GM_REGION_MAGIC);
    cr_expect_str_eq(r->workload, "test");
    cr_expect_str_eq(r->gpu_uuid, "");
    gm_region_detach(r);

    struct gm_region *a = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_region_attach(path, &a, &err), 0, "%s", err.msg);
    cr_expect_eq(a->memory_limit, 64 * MIB);
    cr_expect_eq(a->compute_pct, 30);
    /* No temporary file is left beside it. */
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    cr_expect_neq(access(tmp, F_OK), 0);
    gm_region_detach(a);
}

Test(region, attach_refuses_what_is_not_a_region)
{
    struct gm_region *r = make(0, 0), *a;
    struct gm_error err = {0};
    char link[160];
    snprintf(link, sizeof(link), "%s/link.region", dir);
    cr_assert_eq(symlink(path, link), 0);
    cr_expect_eq(gm_region_attach(link, &a, &err), -GM_EPERM, "a symlink was followed");
    cr_expect(strstr(err.msg, "symbolic link") != NULL, "%s", err.msg);

    cr_expect_lt(gm_region_attach(dir, &a, &err), 0, "a directory was mapped");

    r->version = 7;
    cr_expect_eq(gm_region_attach(path, &a, &err), -GM_EINVAL);
    cr_expect(strstr(err.msg, "layout version 7") != NULL, "%s", err.msg);
    r->version = GM_REGION_VERSION;
    r->magic = 0;
    cr_expect_eq(gm_region_attach(path, &a, &err), -GM_EINVAL);
    cr_expect(strstr(err.msg, "bad magic 0x00000000") != NULL, "%s", err.msg);
    gm_region_detach(r);

    cr_assert_eq(truncate(path, 100), 0);
    cr_expect_eq(gm_region_attach(path, &a, &err), -GM_EINVAL);
    cr_expect(strstr(err.msg, "100 bytes") != NULL, "%s", err.msg);
    cr_expect_eq(gm_region_check_usage(path, &err), -GM_EINVAL);
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/none", dir);
    cr_expect_eq(gm_region_attach(missing, &a, &err), -GM_ENOTFOUND);
}

Test(region, create_refuses_a_planted_temporary_link)
{
    /* Someone who may write the directory points the temporary name elsewhere: O_EXCL and
     * O_NOFOLLOW refuse to write through it, the link is removed and the region made. */
    char tmp[200], victim[160];
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    snprintf(victim, sizeof(victim), "%s/victim", dir);
    int fd = open(victim, O_WRONLY | O_CREAT, 0600);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(symlink(victim, tmp), 0);
    struct gm_region *r = make(0, 0);
    struct stat st;
    cr_assert_eq(stat(victim, &st), 0);
    cr_expect_eq(st.st_size, 0, "written through the link");
    gm_region_detach(r);
}

/* The one rule: a slot is freed only when its process is certainly gone. */
Test(region, reap_frees_only_the_certainly_gone)
{
    struct gm_region *r = make(0, 0);
    pid_t live = t_sleeper(), unknown = t_sleeper(), dead = t_sleeper(), reused = t_sleeper();
    uint64_t live_start = t_start_of(live), dead_start = t_start_of(dead);
    uint64_t reused_start = t_start_of(reused);
    cr_assert_eq(gm_region_lock(r, GM_REGION_WAIT), 0);
    int sl = gm_region_slot_claim_locked(r, (uint32_t)live, live_start, 1 * MIB);
    int su = gm_region_slot_claim_locked(r, (uint32_t)unknown, 0, 2 * MIB); /* not recorded */
    int sd = gm_region_slot_claim_locked(r, (uint32_t)dead, dead_start, 4 * MIB);
    int sr = gm_region_slot_claim_locked(r, (uint32_t)reused, reused_start + 1, 8 * MIB);
    gm_region_unlock(r);
    cr_assert(sl >= 0 && su >= 0 && sd >= 0 && sr >= 0);
    cr_assert_eq(r->mem_used, 15 * MIB);
    t_kill_wait(dead);

    cr_expect_eq(gm_proc_check(unknown, 0), GM_PROC_UNKNOWN);
    cr_expect_eq(gm_region_slot_gone(&r->procs[su]), 0);
    cr_expect_eq(gm_region_reap(r, GM_REGION_DAEMON_LOCK_NS), 2);
    cr_expect_eq(r->procs[sl].pid, (uint32_t)live);
    cr_expect_eq(r->procs[su].pid, (uint32_t)unknown, "an unknown process lost its slot");
    cr_expect_eq(r->procs[sd].pid, 0, "a dead process kept its slot");
    cr_expect_eq(r->procs[sr].pid, 0, "a pid with another start time kept its slot");
    cr_expect_eq(r->mem_used, 3 * MIB);
    t_kill_wait(live);
    t_kill_wait(unknown);
    t_kill_wait(reused);
    gm_region_detach(r);
}

Test(region, slots_claim_release_and_hold)
{
    struct gm_region *r = make(0, 0);
    uint32_t me = (uint32_t)getpid();
    uint64_t st = gm_proc_start_time(getpid());
    cr_assert_eq(gm_region_lock(r, GM_REGION_WAIT), 0);
    int i = gm_region_slot_claim_locked(r, me, st, 0);
    gm_region_charge_locked(r, i, 10 * MIB);
    cr_expect_eq(r->mem_used, 10 * MIB);
    cr_expect_eq(r->mem_peak, 10 * MIB);
    cr_expect(gm_region_slot_holds(r, i, me, st));
    /* The same pid and start time again (an exec): the slot is reused, its memory dropped. */
    int j = gm_region_slot_claim_locked(r, me, st, 0);
    cr_expect_eq(i, j);
    cr_expect_eq(r->mem_used, 0);
    gm_region_charge_locked(r, j, 3 * MIB);
    gm_region_uncharge_locked(r, j, 5 * MIB); /* never below zero */
    cr_expect_eq(r->procs[j].mem_used, 0);
    cr_expect_eq(r->mem_used, 0);
    gm_region_charge_locked(r, j, 3 * MIB);
    gm_region_slot_release_locked(r, j);
    cr_expect_eq(r->mem_used, 0);
    cr_expect_not(gm_region_slot_holds(r, j, me, st));
    cr_expect_not(gm_region_slot_holds(r, -1, me, st));
    gm_region_unlock(r);
    gm_region_detach(r);
}

/* A process of the workload takes the lock and is stopped (SIGSTOP, or it never lets go): a
 * bounded sweep gives up after its bound with -GM_EBUSY, and limits and windows, which need no
 * lock, are still written. */
Test(region, stopped_holder_does_not_block_the_daemon)
{
    struct gm_region *r = make(64 * MIB, 20);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        gm_region_lock(r, GM_REGION_WAIT);
        (void)!write(ready[1], "x", 1);
        raise(SIGSTOP);
        for (;;)
            pause();
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    int st;
    cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
    cr_assert(WIFSTOPPED(st));

    uint64_t t0 = gm_mono_ns();
    cr_expect_eq(gm_region_reap(r, GM_REGION_DAEMON_LOCK_NS), -GM_EBUSY);
    uint64_t took = gm_mono_ns() - t0;
    cr_expect_geq(took, GM_REGION_DAEMON_LOCK_NS, "gave up after %llu ns",
                  (unsigned long long)took);
    cr_expect_lt(took, 1000000000ull, "the reap waited %llu ns", (unsigned long long)took);
    cr_expect_eq(gm_region_lock(r, 1000000), -GM_EBUSY);

    t0 = gm_mono_ns();
    gm_region_set_limits(r, 32 * MIB, 40, 0);
    cr_expect_eq(gm_region_set_window(r, 100000000, 0, 40000000, 0), 1);
    cr_expect_lt(gm_mono_ns() - t0, 10000000ull);
    cr_expect_eq(r->memory_limit, 32 * MIB);
    cr_expect_eq(r->compute_pct, 40);

    /* Killed while stopped and holding it: the next locker repairs and gets it. */
    t_kill_wait(pid);
    cr_expect_eq(gm_region_reap(r, GM_REGION_DAEMON_LOCK_NS), 0);
    cr_expect_eq(gm_region_lock(r, GM_REGION_DAEMON_LOCK_NS), 0);
    gm_region_unlock(r);
    gm_region_detach(r);
}

Test(region, writers_keep_the_seqlock_even)
{
    struct gm_region *r = make(0, 0);
    struct gm_region_schedule s;
    uint64_t g0 = gm_region_read_schedule(r, &s);
    cr_expect_eq(g0 % 2, 0);
    cr_expect_eq(gm_region_set_window(r, 100000000, 30000000, 70000000, 5), 1);
    cr_expect_eq(gm_region_set_window(r, 100000000, 30000000, 70000000, 5), 0, "no change");
    gm_region_set_limits(r, 1 * MIB, 70, 1);
    uint64_t g1 = gm_region_read_schedule(r, &s);
    cr_expect_eq(g1 % 2, 0);
    cr_expect_gt(g1, g0);
    cr_expect_eq(s.period_ns, 100000000);
    cr_expect_eq(s.offset_ns, 30000000);
    cr_expect_eq(s.len_ns, 70000000);
    cr_expect_eq(s.epoch_ns, 5);
    cr_expect_eq(s.compute_pct, 70);
    cr_expect_eq(s.flags & GM_REGION_COMPUTE_BY_MPS, GM_REGION_COMPUTE_BY_MPS);
    gm_region_set_limits(r, 1 * MIB, 70, 0);
    gm_region_read_schedule(r, &s);
    cr_expect_eq(s.flags & GM_REGION_COMPUTE_BY_MPS, 0);

    /* A writer that died mid-write left the generation odd: readers do not hang, and the next
     * write makes it even again. */
    r->generation |= 1;
    gm_region_read_schedule(r, &s);
    cr_expect_eq(gm_region_set_window(r, 100000000, 30000000, 70000000, 5), 1);
    cr_expect_eq(r->generation % 2, 0);
    gm_region_detach(r);
}

/* A store that faults ends the child with FAULTED (its own handler, so that a sanitizer's does
 * not turn the fault into another exit status). */
#define FAULTED 77
static void on_fault(int sig)
{
    (void)sig;
    _exit(FAULTED);
}

static void catch_faults(void)
{
    struct sigaction sa = {.sa_handler = on_fault};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/* Runs fn in a child; returns its exit status, or 128 + the signal that ended it. */
static int in_child(void (*fn)(void))
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        catch_faults();
        fn();
        _exit(0);
    }
    return t_wait(pid);
}

static void write_memory_limit(void)
{
    struct gm_region *a;
    if (gm_region_attach(path, &a, NULL) < 0)
        _exit(3);
    /* What a workload that maps its own region tries: no limit at all. */
    if (mprotect(a, GM_REGION_LIMITS_SIZE, PROT_READ | PROT_WRITE) == 0)
        _exit(4); /* made writable */
    __atomic_store_n(&a->memory_limit, 0, __ATOMIC_RELEASE);
    _exit(5); /* the store went through */
}

/* The attack: a workload maps its region (as the interposer finds it) and writes memory_limit=0.
 * The limits part is mapped from a file opened read-only: the store faults, mprotect cannot lift
 * it, and the limit stays. (Before the split, the limits were in the workload's writable file.) */
Test(region, workload_cannot_write_its_limits)
{
    struct gm_region *r = make(64 * MIB, 30);
    cr_expect_eq(in_child(write_memory_limit), FAULTED, "the limit was written");
    cr_expect_eq(__atomic_load_n(&r->memory_limit, __ATOMIC_ACQUIRE), 64 * MIB);
    /* Its counters are its own: they are in the part it maps read-write. */
    struct gm_region *a;
    cr_assert_eq(gm_region_attach(path, &a, NULL), 0);
    cr_assert_eq(gm_region_lock(a, GM_REGION_WAIT), 0);
    gm_region_charge_locked(a, -1, 1 * MIB);
    gm_region_unlock(a);
    cr_expect_eq(r->mem_used, 1 * MIB);
    gm_region_detach(a);
    gm_region_detach(r);
}

#define OWNER 65534u /* the workload's user */
#define OTHER 65533u /* another user */

static void as_user(uid_t uid)
{
    if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
        _exit(2);
}

static int open_errno(const char *p, int flags)
{
    int fd = open(p, flags | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    return errno;
}

static void owner_tries(void)
{
    char lpath[160], planted[160];
    as_user(OWNER);
    if (gm_region_limits_path(path, lpath, sizeof(lpath), NULL) < 0)
        _exit(3);
    if (open_errno(path, O_RDWR) != 0)
        _exit(10); /* its own usage part: it must open it */
    if (open_errno(lpath, O_RDONLY) != 0)
        _exit(11); /* and read its limits */
    if (open_errno(lpath, O_RDWR) != EACCES)
        _exit(12);
    if (chmod(lpath, 0666) == 0 || errno != EPERM)
        _exit(13);
    /* Nor can it put a limits file of its own in place: the directory is not its. */
    snprintf(planted, sizeof(planted), "%s/planted", dir);
    if (open_errno(planted, O_WRONLY | O_CREAT) != EACCES)
        _exit(14);
    if (unlink(lpath) == 0 || errno != EACCES)
        _exit(15);
}

static void other_tries(void)
{
    char lpath[160];
    as_user(OTHER);
    if (gm_region_limits_path(path, lpath, sizeof(lpath), NULL) < 0)
        _exit(3);
    /* Another user's workload cannot write this workload's usage part; it may read its pacing
     * state, as a peer on the same GPU does. */
    if (open_errno(path, O_RDWR) != EACCES)
        _exit(20);
    int fd = gm_region_peer_open(path, "w", NULL);
    struct gm_region_pace pace;
    if (fd < 0 || gm_region_peer_pace(fd, &pace) != 0)
        _exit(23);
    close(fd);
    if (open_errno(lpath, O_RDWR) != EACCES)
        _exit(21);
    struct gm_region *a;
    if (gm_region_attach(path, &a, NULL) != -GM_EPERM)
        _exit(22);
}

/* Owners and modes per file: the workload's user owns only its usage part (0644), the daemon
 * the limits part (0644) and the directory (0755). */
Test(region, owners_and_modes_keep_users_apart)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to act as other users");
    cr_assert_eq(chmod(dir, 0755), 0);
    struct gm_region_init in = {
        .workload = "w", .gpu_uuid = "", .memory_limit = 64 * MIB, .uid = OWNER, .gid = OWNER};
    struct gm_error err = {0};
    cr_assert_eq(gm_region_create(path, &in, NULL, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect(st.st_uid == OWNER && st.st_gid == OWNER, "usage part %u:%u", st.st_uid, st.st_gid);
    char lpath[160];
    gm_region_limits_path(path, lpath, sizeof(lpath), NULL);
    cr_assert_eq(stat(lpath, &st), 0);
    cr_expect_eq(st.st_uid, 0u);
    cr_expect_eq(in_child(owner_tries), 0, "the workload's user could do what it must not");
    cr_expect_eq(in_child(other_tries), 0, "another user reached this workload's region");
}

static void touch_usage(void)
{
    struct gm_region *r;
    if (gm_region_open_limits(path, &r, NULL) < 0)
        _exit(3);
    gm_region_set_limits(r, 1 * MIB, 0, 0);
    (void)__atomic_load_n(&r->mem_used, __ATOMIC_RELAXED);
    _exit(5);
}

/* The daemon's view maps the limits part only: a workload that truncates its usage file (or
 * scribbles over it) cannot fault the daemon, whose writes still land; and the daemon refuses a
 * limits file that is not its own. */
Test(region, daemon_view_never_maps_the_usage_part)
{
    struct gm_region *r = make(64 * MIB, 30), *w;
    gm_region_detach(r);
    cr_assert_eq(truncate(path, 0), 0);
    struct gm_error err = {0};
    cr_assert_eq(gm_region_open_limits(path, &w, &err), 0, "%s", err.msg);
    gm_region_set_limits(w, 32 * MIB, 20, 0);
    cr_expect_eq(w->memory_limit, 32 * MIB);
    gm_region_detach(w);
    cr_expect_eq(gm_region_check_usage(path, &err), -GM_EINVAL);
    cr_expect_eq(in_child(touch_usage), FAULTED, "the usage part was mapped");
    if (geteuid() == 0) {
        char lpath[160];
        gm_region_limits_path(path, lpath, sizeof(lpath), NULL);
        cr_assert_eq(chown(lpath, OWNER, OWNER), 0);
        cr_expect_eq(gm_region_open_limits(path, &w, &err), -GM_EPERM);
        cr_expect(strstr(err.msg, "not by this daemon's uid") != NULL, "%s", err.msg);
    }
}

/* The peers a region names (the other capped workloads of its GPU) are read as written, cut to
 * the list's and the names' sizes, and a write that changes nothing says so. A peer's usage
 * part is opened by name beside the reader's own, never through a link or another directory,
 * and read with pread: its pacing state as its workload wrote it, nothing once it is cut
 * short. */
Test(region, peers_are_named_and_read_without_a_mapping)
{
    struct gm_region *r = make(0, 30);
    const char *names[GM_REGION_MAX_PEERS + 2];
    char buf[GM_REGION_MAX_PEERS + 2][80];
    for (size_t i = 0; i < GM_REGION_MAX_PEERS + 2; i++) {
        snprintf(buf[i], sizeof(buf[i]), "peer-%zu", i);
        names[i] = buf[i];
    }
    memset(buf[1], 'x', 79);
    buf[1][79] = '\0';
    union gm_region_name got[GM_REGION_MAX_PEERS];
    uint64_t gen = r->generation;
    cr_expect_eq(gm_region_set_peers(r, names, 2), 1);
    cr_expect_eq(gm_region_set_peers(r, names, 2), 0, "the same list again is no change");
    cr_expect_eq(r->generation, gen + 2, "one write, under the seqlock");
    cr_assert_eq(gm_region_read_peers(r, got), 2u);
    cr_expect_str_eq(got[0].s, "peer-0");
    cr_expect_eq(strlen(got[1].s), (size_t)GM_REGION_NAME_MAX - 1, "a long name is cut");
    cr_expect_eq(gm_region_set_peers(r, names, GM_REGION_MAX_PEERS + 2), 1);
    cr_expect_eq(gm_region_read_peers(r, got), (size_t)GM_REGION_MAX_PEERS);
    cr_expect_str_eq(got[GM_REGION_MAX_PEERS - 1].s, names[GM_REGION_MAX_PEERS - 1]);
    cr_expect_eq(gm_region_set_peers(r, NULL, 0), 1);
    cr_expect_eq(gm_region_read_peers(r, got), 0u);

    /* A peer "p" beside w.region, its pacing state written by its own workload. */
    char ppath[160], link[160];
    snprintf(ppath, sizeof(ppath), "%s/p.region", dir);
    struct gm_region *p = t_region_create(ppath, 0, 70);
    p->pace.valid = 1;
    p->pace.tail = 12345;
    p->pace.pending = 1;
    int fd = gm_region_peer_open(path, "p", NULL);
    cr_assert_geq(fd, 0);
    struct gm_region_pace pace;
    cr_assert_eq(gm_region_peer_pace(fd, &pace), 0);
    cr_expect(pace.valid == 1 && pace.tail == 12345 && pace.pending == 1);
    cr_assert_eq(truncate(ppath, 8), 0);
    cr_expect_lt(gm_region_peer_pace(fd, &pace), 0, "a file cut short says nothing");
    close(fd);
    gm_region_detach(p);
    snprintf(link, sizeof(link), "%s/l.region", dir);
    cr_assert_eq(symlink(ppath, link), 0);
    cr_expect_eq(gm_region_peer_open(path, "l", NULL), -GM_EPERM, "a link is not followed");
    cr_expect_eq(gm_region_peer_open(path, "../w", NULL), -GM_EINVAL);
    cr_expect_eq(gm_region_peer_open(path, "", NULL), -GM_EINVAL);
    cr_expect_eq(gm_region_peer_open(path, "none", NULL), -GM_ENOTFOUND);
    gm_region_detach(r);
}
