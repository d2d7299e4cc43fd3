/* The daemon's memory check against the driver (src/daemon/memcheck.c): whose a GPU process is,
 * and what a workload over its limit gets (an event once per crossing, the flag, a stop under
 * --enforce strict). Pure functions: no daemon, no driver, no files. */
#include "common/parse.h"
#include "common/proc.h"
#include "daemon/memcheck.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MIB GM_MIB

static struct gm_workload_rec rec(const char *name, int pid, uint64_t limit, const char *spec)
{
    struct gm_workload_rec w;
    memset(&w, 0, sizeof(w));
    snprintf(w.name, sizeof(w.name), "%s", name);
    w.state = GM_W_RUNNING;
    w.desired_running = 1;
    w.launch_id = 1;
    w.pid = pid;
    w.memory_limit = limit;
    w.spec_json = (char *)spec;
    return w;
}

static const char plain[] = "{\"command\":[\"x\"]}";
static const char strict[] = "{\"command\":[\"x\"],\"enforce\":\"strict\"}";

Test(memcheck, over_the_limit_is_an_event_once_per_crossing)
{
    struct gm_workload_rec w = rec("big", 100, 64 * MIB, plain);
    struct gm_mc_plan p;
    gm_memcheck_decide(&w, 4096 * MIB, 1, 0, 0, &p);
    cr_expect(p.over);
    cr_expect(p.event);
    cr_expect_eq(p.level, GM_LEVEL_WARNING);
    cr_expect_str_eq(p.message, "over memory limit: uses 4096 MiB of 64 MiB (seen by the driver)");
    cr_expect_not(p.stop, "best-effort: reported, not stopped");

    /* The next poll, still over: the flag stays, no second event. */
    gm_memcheck_decide(&w, 4000 * MIB, 1, 0, 1, &p);
    cr_expect(p.over);
    cr_expect_not(p.event, "an event per poll: %s", p.message);

    /* Back under: one event saying so, the flag goes. */
    gm_memcheck_decide(&w, 10 * MIB, 1, 0, 1, &p);
    cr_expect_not(p.over);
    cr_expect(p.event);
    cr_expect_eq(p.level, GM_LEVEL_INFO);
    cr_expect_str_eq(p.message,
                     "back under memory limit: uses 10 MiB of 64 MiB (seen by the driver)");
    gm_memcheck_decide(&w, 10 * MIB, 1, 0, 0, &p);
    cr_expect_not(p.event);
}

Test(memcheck, at_the_limit_is_not_over_a_byte_past_is)
{
    struct gm_workload_rec w = rec("edge", 100, 64 * MIB, plain);
    struct gm_mc_plan p;
    gm_memcheck_decide(&w, 64 * MIB, 1, 0, 0, &p);
    cr_expect_not(p.over);
    gm_memcheck_decide(&w, 64 * MIB + 1, 1, 0, 0, &p);
    cr_expect(p.over);
    /* Rounded up: never "uses 64 MiB of 64 MiB" for one that is over. */
    cr_expect_str_eq(p.message, "over memory limit: uses 65 MiB of 64 MiB (seen by the driver)");
}

/* What the driver counts beyond allocations (contexts, modules) is allowed per process. */
Test(memcheck, slack_per_process)
{
    struct gm_workload_rec w = rec("ctx", 100, 64 * MIB, plain);
    struct gm_mc_plan p;
    gm_memcheck_decide(&w, 64 * MIB + 105 * MIB, 1, 512 * MIB, 0, &p);
    cr_expect_not(p.over, "one process's context is not an excess");
    gm_memcheck_decide(&w, 64 * MIB + 3 * 105 * MIB, 3, 128 * MIB, 0, &p);
    cr_expect_not(p.over, "three processes, three contexts");
    gm_memcheck_decide(&w, 4201 * MIB, 1, 512 * MIB, 0, &p);
    cr_expect(p.over);
    cr_expect_str_eq(p.message, "over memory limit: uses 4201 MiB of 64 MiB (seen by the driver)");
    gm_memcheck_decide(&w, UINT64_MAX, 1, UINT64_MAX, 0, &p);
    cr_expect_not(p.over, "the allowance saturates, it does not wrap");
}

Test(memcheck, strict_stops_with_the_reason)
{
    struct gm_workload_rec w = rec("big", 100, 64 * MIB, strict);
    struct gm_mc_plan p;
    gm_memcheck_decide(&w, 4096 * MIB, 1, 0, 0, &p);
    cr_expect(p.over && p.event && p.stop);
    cr_expect_str_eq(p.reason, "stopped (--enforce strict): over memory limit: uses 4096 MiB of "
                               "64 MiB (seen by the driver)");
    gm_memcheck_decide(&w, 1 * MIB, 1, 0, 0, &p);
    cr_expect_not(p.stop, "stopped under its limit");
}

Test(memcheck, no_limit_is_never_over)
{
    struct gm_workload_rec w = rec("free", 100, 0, strict);
    struct gm_mc_plan p;
    gm_memcheck_decide(&w, 100000 * MIB, 1, 0, 1, &p);
    cr_expect_not(p.over || p.event || p.stop);
}

/* Whose is a GPU process: the workload's own pid, its process group, its session, or a process
 * that descends from it (a child that left the group with setpgid, even setsid). */
Test(memcheck, processes_map_to_their_workload)
{
    struct gm_workload_rec ws[3] = {rec("a", 100, 64 * MIB, plain), rec("b", 200, 64 * MIB, plain),
                                    rec("gone", 300, 64 * MIB, plain)};
    ws[2].state = GM_W_EXITED; /* an ended workload owns nothing, even if its pid came back */
    struct gm_mc_proc p = {.pid = 100, .pgrp = 100, .session = 100};
    cr_expect_eq(gm_memcheck_owner(&p, ws, 3), 0);
    p = (struct gm_mc_proc){.pid = 150, .pgrp = 200, .session = 200};
    cr_expect_eq(gm_memcheck_owner(&p, ws, 3), 1, "by its process group");
    p = (struct gm_mc_proc){.pid = 151, .pgrp = 151, .session = 200};
    cr_expect_eq(gm_memcheck_owner(&p, ws, 3), 1, "by its session");
    p = (struct gm_mc_proc){
        .pid = 152, .pgrp = 152, .session = 152, .ancestors = {151, 200}, .nancestors = 2};
    cr_expect_eq(gm_memcheck_owner(&p, ws, 3), 1, "by its ancestry, after setsid");
    /* Left the session and was reparented, but holds b's launch lock open (fd 3). */
    p = (struct gm_mc_proc){
        .pid = 160, .pgrp = 160, .session = 160, .lock_workload = "b", .lock_launch = 1};
    cr_expect_eq(gm_memcheck_owner(&p, ws, 3), 1, "by the launch lock it holds");
    p.lock_launch = 2; /* another launch's lock: not this launch's process */
    cr_expect_eq(gm_memcheck_owner(&p, ws, 3), -1);
    p = (struct gm_mc_proc){.pid = 300, .pgrp = 300, .session = 300};
    cr_expect_eq(gm_memcheck_owner(&p, ws, 3), -1);
    p = (struct gm_mc_proc){.pid = 999, .pgrp = 1, .session = 1};
    cr_expect_eq(gm_memcheck_owner(&p, ws, 3), -1, "a stranger's process");
}

/* The facts gm_memcheck_owner gets come from /proc/PID/stat, fields 4 to 6. */
Test(memcheck, stat_fields_for_the_mapping)
{
    const char line[] = "4242 (a (b) c) S 17 4240 4200 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 "
                        "12345 0 0";
    struct gm_proc_ids ids;
    cr_assert_eq(gm_proc_parse_ids(line, sizeof(line) - 1, &ids), 0);
    cr_expect_eq(ids.ppid, 17);
    cr_expect_eq(ids.pgrp, 4240);
    cr_expect_eq(ids.session, 4200);
    cr_expect_eq(gm_proc_parse_ids("42 (x) S", 8, &ids), -1);
    cr_assert_eq(gm_proc_ids(getpid(), &ids), 0);
    cr_expect_eq(ids.ppid, getppid());
    cr_expect_eq(ids.pgrp, getpgrp());
    cr_expect_eq(ids.session, getsid(0));
}
