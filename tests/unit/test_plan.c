/* The daemon's pure decisions (src/daemon/plan.c): launch environment, the reconcile table,
 * mode changes, desired against actual. No daemon, no files, no clock. */
#include "common/parse.h"
#include "daemon/plan.h"
#include "records.h"

#include <criterion/criterion.h>
#include <gpumux/region.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static struct gm_workload_rec *add(const char *name, int gpu)
{
    struct gm_workload_rec *w = &ws[nws++];
    snprintf(w->name, sizeof(w->name), "%s", name);
    snprintf(w->kind, sizeof(w->kind), "process");
    w->ngpus = gpu < 0 ? 0 : 1;
    if (gpu >= 0)
        snprintf(w->gpus[0], sizeof(w->gpus[0]), "%s", gpus[gpu].uuid);
    w->desired_running = 1;
    w->state = GM_W_RUNNING;
    w->launch_id = 1;
    w->pid = 100;
    w->pid_start = 5;
    w->spec_json = (char *)"{\"command\":[\"/bin/sleep\",\"5\"],\"env\":{\"A\":\"1\"}}";
    return w;
}

/* ---- launch environment ---------------------------------------------------------------------- */

TestSuite(launch, .init = setup);

static const char *env_of(const struct gm_strv *env, const char *key)
{
    return gm_strv_getenv(env, key);
}

Test(launch, devices_user_env_and_what_gpumux_sets)
{
    struct gm_workload_rec *w = add("a", 1);
    char *base[] = {"PATH=/usr/bin", "CUDA_VISIBLE_DEVICES=7", "GPUMUX_X=1", "NOTIFY_SOCKET=/x",
                    NULL};
    struct gm_launch_inputs in = {.base_env = base};
    struct gm_strv argv = {0}, env = {0};
    struct gm_error err;
    cr_assert_eq(gm_plan_launch(&in, w, &gpus[1], &argv, &env, &err), 0, "%s", err.msg);
    cr_assert_eq(argv.n, 2);
    cr_assert_str_eq(argv.v[0], "/bin/sleep");
    cr_assert_str_eq(env_of(&env, "PATH"), "/usr/bin");
    cr_assert_str_eq(env_of(&env, "A"), "1");
    cr_assert_str_eq(env_of(&env, "CUDA_VISIBLE_DEVICES"), gpus[1].uuid);
    cr_assert_str_eq(env_of(&env, "NVIDIA_VISIBLE_DEVICES"), gpus[1].uuid);
    cr_assert_str_eq(env_of(&env, "GPUMUX_WORKLOAD"), "a");
    cr_assert_str_eq(env_of(&env, "GPUMUX_GPU_MODE"), "shared");
    cr_assert_null(env_of(&env, "GPUMUX_X"), "the daemon's own GPUMUX_ variables stay out");
    cr_assert_null(env_of(&env, "NOTIFY_SOCKET"));
    cr_assert_null(env_of(&env, GM_REGION_ENV), "no limits, no region");
    cr_assert_null(env_of(&env, "LD_LIBRARY_PATH"), "a real driver: no gpusim path");
    cr_assert_null(env.v[env.n]);
    gm_strv_free(&argv);
    gm_strv_free(&env);
}

Test(launch, no_gpu_is_void)
{
    struct gm_workload_rec *w = add("cpu", -1);
    char *base[] = {NULL};
    struct gm_launch_inputs in = {.base_env = base};
    struct gm_strv argv = {0}, env = {0};
    cr_assert_eq(gm_plan_launch(&in, w, NULL, &argv, &env, NULL), 0);
    cr_assert_str_eq(env_of(&env, "NVIDIA_VISIBLE_DEVICES"), "void");
    cr_assert_str_eq(env_of(&env, "CUDA_VISIBLE_DEVICES"), "");
    gm_strv_free(&argv);
    gm_strv_free(&env);
}

Test(launch, limits_preload_the_interposer_only_with_a_region)
{
    struct gm_workload_rec *w = add("lim", 0);
    w->memory_limit = 1024 * GM_MIB;
    w->compute_pct = 30;
    char *base[] = {"LD_PRELOAD=/x.so", NULL};
    struct gm_launch_inputs in = {.base_env = base, .interposer = "/lib/libgpumux.so"};
    struct gm_strv argv = {0}, env = {0};
    cr_assert(gm_plan_needs_region(w));
    cr_assert_eq(gm_plan_launch(&in, w, &gpus[0], &argv, &env, NULL), 0);
    cr_assert_null(env_of(&env, "GPUMUX_LD_PRELOAD"), "no region prepared: no interposer");
    cr_assert_str_eq(env_of(&env, "GPUMUX_COMPUTE_PCT"), "30");
    cr_assert_str_eq(env_of(&env, "GPUMUX_MEMORY_LIMIT"), "1073741824");
    gm_strv_free(&argv);
    gm_strv_free(&env);

    in.region_path = "/run/regions/lim.region";
    cr_assert_eq(gm_plan_launch(&in, w, &gpus[0], &argv, &env, NULL), 0);
    cr_assert_str_eq(env_of(&env, "GPUMUX_LD_PRELOAD"), "/lib/libgpumux.so:/x.so");
    cr_assert_str_eq(env_of(&env, GM_REGION_ENV), "/run/regions/lim.region");
    cr_assert_str_eq(env_of(&env, "LD_PRELOAD"), "/x.so", "the monitor itself never loads it");
    gm_strv_free(&argv);
    gm_strv_free(&env);
}

Test(launch, mps_gpu_gets_pipe_share_and_pinned_limit)
{
    struct gm_workload_rec *w = add("m", 0);
    w->compute_pct = 25;
    w->memory_limit = 1536 * GM_MIB + 1;
    gpus[0].mode = GM_MODE_MPS;
    char *base[] = {NULL};
    struct gm_launch_inputs in = {.base_env = base, .mps_pipe = "/p", .mps_log = "/l"};
    struct gm_strv argv = {0}, env = {0};
    cr_assert_eq(gm_plan_launch(&in, w, &gpus[0], &argv, &env, NULL), 0);
    cr_assert_str_eq(env_of(&env, "CUDA_MPS_PIPE_DIRECTORY"), "/p");
    cr_assert_str_eq(env_of(&env, "CUDA_MPS_LOG_DIRECTORY"), "/l");
    cr_assert_str_eq(env_of(&env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "25");
    cr_assert_str_eq(env_of(&env, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"), "0=1537M", "rounded up");
    cr_assert_str_eq(env_of(&env, "GPUMUX_GPU_MODE"), "mps");
    gm_strv_free(&argv);
    gm_strv_free(&env);
}

Test(launch, gpusim_comes_first_on_the_library_path)
{
    struct gm_workload_rec *w = add("s", 0);
    w->spec_json = (char *)"{\"command\":[\"x\"],\"env\":{},\"enforce\":\"strict\"}";
    char *base[] = {"LD_LIBRARY_PATH=/opt/lib", NULL};
    struct gm_launch_inputs in = {
        .base_env = base, .sim = 1, .sim_dir = "/sim", .gpusim_state = "/st", .gpusim_config = ""};
    struct gm_strv argv = {0}, env = {0};
    cr_assert_eq(gm_plan_launch(&in, w, &gpus[0], &argv, &env, NULL), 0);
    cr_assert_str_eq(env_of(&env, "LD_LIBRARY_PATH"), "/sim:/opt/lib");
    cr_assert_str_eq(env_of(&env, "GPUSIM_STATE"), "/st");
    cr_assert_null(env_of(&env, "GPUSIM_CONFIG"));
    cr_assert_str_eq(env_of(&env, GM_REGION_STRICT_ENV), "strict");
    gm_strv_free(&argv);
    gm_strv_free(&env);
}

Test(launch, a_spec_that_is_not_json_is_refused)
{
    struct gm_workload_rec *w = add("bad", 0);
    w->spec_json = (char *)"{nope";
    char *base[] = {NULL};
    struct gm_launch_inputs in = {.base_env = base};
    struct gm_strv argv = {0}, env = {0};
    struct gm_error err;
    cr_assert_eq(gm_plan_launch(&in, w, &gpus[0], &argv, &env, &err), -GM_EINTERNAL);
    cr_assert(strstr(err.msg, "workload bad") != NULL, "%s", err.msg);
    w->spec_json = (char *)"{\"command\":[]}";
    cr_assert_eq(gm_plan_launch(&in, w, &gpus[0], &argv, &env, &err), -GM_EINTERNAL);
    cr_assert(strstr(err.msg, "no command") != NULL, "%s", err.msg);
    gm_strv_free(&argv);
    gm_strv_free(&env);
}

/* ---- reconcile: the table of docs/design.md ------------------------------------------------- */

TestSuite(reconcile, .init = setup);

static struct gm_sup_status alive(pid_t pid, uint64_t start)
{
    return (struct gm_sup_status){
        .state = GM_SUP_ALIVE, .pid = pid, .pid_start = start, .monitor_pid = pid - 1};
}

Test(reconcile, alive_as_recorded_changes_nothing)
{
    struct gm_workload_rec *w = add("a", 0);
    struct gm_sup_status st = alive(100, 5);
    struct gm_rc_plan p;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.action, GM_RC_NONE);
    cr_assert_eq(p.save, 0);
    cr_assert_eq(p.signal, 0);
}

Test(reconcile, alive_at_start_is_readopted)
{
    struct gm_workload_rec *w = add("a", 0);
    struct gm_sup_status st = alive(100, 5);
    struct gm_rc_plan p;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 1, 10, &p);
    cr_assert_eq(p.action, GM_RC_READOPTED);
    cr_assert_str_eq(p.event, "re-adopted (pid 100)");
    cr_assert_eq(p.save, 0, "an event, no change of the record");
}

Test(reconcile, a_new_pid_is_recorded_and_starting_becomes_running)
{
    struct gm_workload_rec *w = add("a", 0);
    w->state = GM_W_STARTING;
    w->pid = 0;
    struct gm_sup_status st = alive(200, 9);
    struct gm_rc_plan p;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.action, GM_RC_PID);
    cr_assert(p.save);
    cr_assert_eq(p.next.pid, 200);
    cr_assert_eq(p.next.pid_start, 9);
    cr_assert_eq(p.next.state, GM_W_RUNNING);
    cr_assert_str_eq(p.event, "running (pid 200)");
}

Test(reconcile, stopping_gets_sigterm_then_sigkill_after_the_timeout)
{
    struct gm_workload_rec *w = add("a", 0);
    w->state = GM_W_STOPPING;
    w->desired_running = 0;
    struct gm_sup_status st = alive(100, 5);
    struct gm_timers t = {0};
    struct gm_rc_plan p;
    gm_plan_reconcile(w, &st, 0, &t, 1000, 0, 3, &p);
    cr_assert_eq(p.signal, SIGTERM, "not signalled yet (the timer was lost): SIGTERM");
    cr_assert(p.set_timers);
    cr_assert_eq(p.timers.kill_at_ms, 4000);
    t = p.timers;
    gm_plan_reconcile(w, &st, 0, &t, 3999, 0, 3, &p);
    cr_assert_eq(p.signal, 0, "before the timeout nothing more");
    gm_plan_reconcile(w, &st, 0, &t, 4000, 0, 3, &p);
    cr_assert_eq(p.signal, SIGKILL);
    gm_plan_reconcile(w, &st, 0, &t, 5000, 1, 3, &p);
    cr_assert_eq(p.signal, SIGTERM, "after a daemon restart the stop is asked for again");
}

Test(reconcile, an_exit_is_recorded_and_restarts_follow_the_policy)
{
    struct gm_workload_rec *w = add("a", 0);
    struct gm_sup_status st = {.state = GM_SUP_EXITED, .exit_code = 3, .finished_ms = 777};
    struct gm_rc_plan p;

    w->restart = GM_RESTART_NEVER;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.action, GM_RC_ENDED);
    cr_assert_eq(p.next.state, GM_W_EXITED);
    cr_assert_eq(p.next.desired_running, 0);
    cr_assert_eq(p.next.exit_code, 3);
    cr_assert_eq(p.next.finished_at, 777);
    cr_assert_eq(p.next.pid, 0);
    cr_assert(p.remove_dir);
    cr_assert_eq(p.level, GM_LEVEL_WARNING);
    cr_assert_str_eq(p.event, "exited with status 3");

    w->restart = GM_RESTART_ON_FAILURE;
    w->restart_count = 2;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.next.desired_running, 1);
    cr_assert_eq(p.timers.restart_at_ms, 1000 + 400, "back-off 0.1 s doubled twice");

    st.exit_code = 0;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.next.desired_running, 0, "on-failure: a clean exit is final");
    cr_assert_eq(p.level, GM_LEVEL_INFO);

    w->restart = GM_RESTART_ALWAYS;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.next.desired_running, 1);
}

Test(reconcile, a_signal_death_is_named)
{
    struct gm_workload_rec *w = add("a", 0);
    struct gm_sup_status st = {.state = GM_SUP_EXITED, .exit_code = -1, .exit_signal = SIGKILL};
    struct gm_rc_plan p;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert(strncmp(p.event, "killed by signal 9 (", 20) == 0, "%s", p.event);
}

Test(reconcile, a_stopping_workload_that_ended_is_stopped)
{
    struct gm_workload_rec *w = add("a", 0);
    w->state = GM_W_STOPPING;
    w->restart = GM_RESTART_ALWAYS;
    struct gm_sup_status st = {.state = GM_SUP_EXITED, .exit_code = -1, .exit_signal = SIGTERM};
    struct gm_rc_plan p;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.next.state, GM_W_STOPPED);
    cr_assert_eq(p.next.desired_running, 0);
    cr_assert_eq(p.level, GM_LEVEL_INFO, "an ending that was asked for is no warning");
}

Test(reconcile, nothing_left_of_a_running_launch_is_lost)
{
    struct gm_workload_rec *w = add("a", 0);
    struct gm_sup_status st = {.state = GM_SUP_GONE};
    struct gm_rc_plan p;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 1, 10, &p);
    cr_assert_eq(p.action, GM_RC_ENDED);
    cr_assert_eq(p.next.has_exit, 0);
    cr_assert(strncmp(p.next.reason, "lost:", 5) == 0, "%s", p.next.reason);
}

Test(reconcile, a_launch_recorded_but_never_made_is_made_once_with_its_number)
{
    struct gm_workload_rec *w = add("a", 0);
    w->state = GM_W_STARTING;
    w->pid = 0;
    w->launch_id = 4;
    struct gm_sup_status st = {.state = GM_SUP_GONE};
    struct gm_rc_plan p;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 1, 10, &p);
    cr_assert_eq(p.action, GM_RC_LAUNCH);
    cr_assert(p.launch);
    cr_assert_eq(p.next.launch_id, 4, "the same launch: it never ran");
    cr_assert_eq(p.next.restart_count, 0, "not a restart");

    w->desired_running = 0;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 1, 10, &p);
    cr_assert_eq(p.action, GM_RC_NEVER_RAN);
    cr_assert_eq(p.launch, 0);
    cr_assert_eq(p.next.state, GM_W_STOPPED);
}

Test(reconcile, an_exited_workload_restarts_when_its_back_off_passed)
{
    struct gm_workload_rec *w = add("a", 0);
    w->state = GM_W_EXITED;
    w->restart = GM_RESTART_ALWAYS;
    w->launch_id = 2;
    w->restart_count = 1;
    struct gm_timers t = {.restart_at_ms = 2000};
    struct gm_rc_plan p;
    gm_plan_reconcile(w, NULL, 0, &t, 1999, 0, 10, &p);
    cr_assert_eq(p.action, GM_RC_NONE);
    gm_plan_reconcile(w, NULL, 0, &t, 2000, 0, 10, &p);
    cr_assert_eq(p.action, GM_RC_RESTART);
    cr_assert(p.launch);
    cr_assert_eq(p.next.launch_id, 3);
    cr_assert_eq(p.next.restart_count, 2);
    cr_assert_eq(p.next.state, GM_W_STARTING);
    cr_assert_str_eq(p.event, "restarting (launch 3)");

    w->state = GM_W_STOPPED;
    gm_plan_reconcile(w, NULL, 0, &t, 9000, 0, 10, &p);
    cr_assert_eq(p.action, GM_RC_NONE, "a stopped workload stays stopped");
}

Test(reconcile, an_unreadable_launch_directory_changes_nothing)
{
    struct gm_workload_rec *w = add("a", 0);
    struct gm_rc_plan p;
    gm_plan_reconcile(w, NULL, 1, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.action, GM_RC_POLL_FAILED);
    cr_assert_eq(p.save, 0);
}

/* ---- a stop, and a stop the store could not record yet (a full disk) --------------------- */

Test(reconcile, a_stop_is_stopping_and_cancels_a_pending_restart)
{
    struct gm_workload_rec *w = add("a", 0);
    struct gm_workload_rec n;
    cr_assert_eq(gm_plan_stop(w, "stopped by request", &n), 1, "it runs: SIGTERM");
    cr_assert_eq(n.state, GM_W_STOPPING);
    cr_assert_eq(n.desired_running, 0);
    cr_assert_str_eq(n.reason, "stopped by request");

    w->state = GM_W_EXITED;
    w->restart = GM_RESTART_ON_FAILURE;
    cr_assert_eq(gm_plan_stop(w, "deleted by request", &n), 0, "nothing runs: no signal");
    cr_assert_eq(n.state, GM_W_STOPPED);
    struct gm_rc_plan p;
    gm_plan_reconcile(&n, NULL, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.action, GM_RC_NONE, "the restart that was due is not made");
    cr_assert_eq(p.launch, 0);
}

/* The stop was signalled while its record could not be written; the workload then died of the
 * SIGTERM. Decided on the record alone, the death is a failure and on-failure starts it again;
 * decided on the record with the pending stop applied first (what the reconciler does), it is
 * the stop that was asked for. */
Test(reconcile, an_end_after_a_stop_not_yet_recorded_is_never_restarted)
{
    struct gm_workload_rec *w = add("a", 0);
    w->restart = GM_RESTART_ON_FAILURE;
    struct gm_sup_status st = {.state = GM_SUP_EXITED, .exit_code = -1, .exit_signal = SIGTERM};
    struct gm_rc_plan p;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.next.desired_running, 1, "the record alone would restart it");

    struct gm_workload_rec cur;
    gm_plan_stop(w, "stopped by request", &cur);
    gm_plan_reconcile(&cur, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.action, GM_RC_ENDED);
    cr_assert_eq(p.next.state, GM_W_STOPPED);
    cr_assert_eq(p.next.desired_running, 0);
    cr_assert_eq(p.launch, 0);
    cr_assert_eq(p.timers.restart_at_ms, 0);
    struct gm_workload_rec after = p.next;
    struct gm_timers t = p.timers;
    gm_plan_reconcile(&after, NULL, 0, &t, 60000, 0, 10, &p);
    cr_assert_eq(p.action, GM_RC_NONE, "and later polls start nothing");
}

/* A commit that fails leaves the record as it was and the exit file in place: the next poll
 * decides the same exit again, once, with its code; not a lost launch, not a second exit. */
Test(reconcile, an_exit_whose_commit_failed_is_decided_the_same_on_the_next_poll)
{
    struct gm_workload_rec *w = add("a", 0);
    w->restart = GM_RESTART_ON_FAILURE;
    struct gm_sup_status st = {.state = GM_SUP_EXITED, .exit_code = 0, .finished_ms = 900};
    struct gm_rc_plan p1, p2;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p1);
    gm_plan_reconcile(w, &st, 0, NULL, 5000, 0, 10, &p2);
    cr_assert_eq(p2.action, GM_RC_ENDED);
    cr_assert(p2.remove_dir, "its directory goes only with the record that says how it ended");
    cr_assert_eq(p2.next.has_exit, 1);
    cr_assert_eq(p2.next.exit_code, 0);
    cr_assert_eq(p2.next.finished_at, 900, "the time of the exit, not of the retry");
    cr_assert_eq(p2.next.desired_running, 0, "on-failure: exit 0 is final");
    cr_assert_eq(p2.launch, 0);
    cr_assert_str_eq(p1.event, p2.event);
}

Test(reconcile, back_off_doubles_to_ten_seconds)
{
    cr_assert_eq(gm_plan_backoff_ms(0), 100);
    cr_assert_eq(gm_plan_backoff_ms(3), 800);
    cr_assert_eq(gm_plan_backoff_ms(7), 10000);
    cr_assert_eq(gm_plan_backoff_ms(1000), 10000);
}

/* ---- mode changes -------------------------------------------------------------------------- */

TestSuite(mode, .init = setup);

Test(mode, an_idle_gpu_changes_with_mps_started_first)
{
    struct gm_mode_plan p;
    struct gm_error err;
    cr_assert_eq(
        gm_plan_mode(gpus, 2, ws, nws, "0", GM_MODE_MPS, GM_ON_BUSY_REFUSE, NULL, &p, &err), 0,
        "%s", err.msg);
    cr_assert(p.change);
    cr_assert(p.start_mps);
    cr_assert_eq(p.stop_mps, 0);
    cr_assert_eq(p.users.n, 0);
    gm_mode_plan_free(&p);

    gpus[1].mode = GM_MODE_MPS;
    cr_assert_eq(
        gm_plan_mode(gpus, 2, ws, nws, "1", GM_MODE_SHARED, GM_ON_BUSY_REFUSE, NULL, &p, &err), 0);
    cr_assert(p.stop_mps);
    cr_assert_eq(p.start_mps, 0);
    cr_assert_eq(p.gpu, 1);
    gm_mode_plan_free(&p);
}

Test(mode, the_same_mode_changes_nothing_but_makes_sure_of_mps)
{
    struct gm_mode_plan p;
    gpus[0].mode = GM_MODE_MPS;
    add("busy", 0);
    cr_assert_eq(
        gm_plan_mode(gpus, 2, ws, nws, "0", GM_MODE_MPS, GM_ON_BUSY_REFUSE, NULL, &p, NULL), 0);
    cr_assert_eq(p.change, 0);
    cr_assert(p.start_mps);
    cr_assert_eq(p.stop_users, 0, "its workloads are not touched");
    gm_mode_plan_free(&p);
}

Test(mode, busy_gpus_are_refused_naming_the_workloads)
{
    add("w1", 0);
    add("w2", 0);
    add("elsewhere", 1);
    ws[nws - 1].state = GM_W_STOPPED;
    ws[nws - 1].desired_running = 0;
    struct gm_mode_plan p;
    struct gm_error err;
    cr_assert_eq(
        gm_plan_mode(gpus, 2, ws, nws, "0", GM_MODE_MPS, GM_ON_BUSY_REFUSE, NULL, &p, &err),
        -GM_EBUSY);
    cr_assert(strstr(err.msg, "would break the workloads running on it: w1, w2") != NULL, "%s",
              err.msg);
}

Test(mode, stop_and_restart_lists_hold_every_name_whole)
{
    /* Twenty workloads with long names: the list is a list, not a joined string. */
    char names[20][64];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof(names[i]), "workload-with-a-rather-long-descriptive-name-%02d",
                 i);
        add(names[i], 0);
    }
    struct gm_mode_plan p;
    cr_assert_eq(
        gm_plan_mode(gpus, 2, ws, nws, "0", GM_MODE_MPS, GM_ON_BUSY_RESTART, NULL, &p, NULL), 0);
    cr_assert(p.stop_users);
    cr_assert(p.restart_users);
    cr_assert_eq(p.users.n, 20);
    for (int i = 0; i < 20; i++)
        cr_assert_str_eq(p.users.v[i], names[i]);
    gm_mode_plan_free(&p);

    cr_assert_eq(gm_plan_mode(gpus, 2, ws, nws, "0", GM_MODE_MPS, GM_ON_BUSY_STOP, NULL, &p, NULL),
                 0);
    cr_assert(p.stop_users);
    cr_assert_eq(p.restart_users, 0);
    gm_mode_plan_free(&p);
}

Test(mode, a_vm_held_gpu_and_a_gpu_already_changing_are_refused)
{
    gpus[1].mode = GM_MODE_VM;
    snprintf(gpus[1].holder, sizeof(gpus[1].holder), "vm1");
    struct gm_mode_plan p;
    struct gm_error err;
    cr_assert_eq(
        gm_plan_mode(gpus, 2, ws, nws, "1", GM_MODE_SHARED, GM_ON_BUSY_STOP, NULL, &p, &err),
        -GM_ECONFLICT);
    cr_assert(strstr(err.msg, "held by VM vm1") != NULL, "%s", err.msg);

    struct gm_strv changing = {0};
    gm_strv_add(&changing, gpus[0].uuid);
    cr_assert_eq(
        gm_plan_mode(gpus, 2, ws, nws, "0", GM_MODE_MPS, GM_ON_BUSY_STOP, &changing, &p, &err),
        -GM_EBUSY);
    cr_assert(strstr(err.msg, "changing its mode now") != NULL, "%s", err.msg);
    gm_strv_free(&changing);

    cr_assert_eq(gm_plan_mode(gpus, 2, ws, nws, "7", GM_MODE_MPS, GM_ON_BUSY_STOP, NULL, &p, &err),
                 -GM_ENOTFOUND);
}

/* ---- desired against actual ------------------------------------------------------------- */

TestSuite(diff, .init = setup);

Test(diff, create_update_delete_keep)
{
    struct gm_workload_rec desired[3], actual[3];
    memset(desired, 0, sizeof(desired));
    memset(actual, 0, sizeof(actual));
    const char *dn[] = {"same", "changed", "new"}, *an[] = {"gone", "changed", "same"};
    for (int i = 0; i < 3; i++) {
        snprintf(desired[i].name, sizeof(desired[i].name), "%s", dn[i]);
        snprintf(actual[i].name, sizeof(actual[i].name), "%s", an[i]);
        desired[i].spec_json = (char *)"{\"command\": [\"a\"], \"env\": {}}";
        actual[i].spec_json = (char *)"{\"env\":{},\"command\":[\"a\"]}";
        actual[i].state = GM_W_RUNNING; /* run-time fields do not count */
        actual[i].pid = 42;
    }
    desired[1].memory_limit = GM_MIB;
    struct gm_diff df;
    cr_assert_eq(gm_plan_diff(desired, 3, actual, 3, &df, NULL), 0);
    cr_assert_eq(df.n, 4);
    cr_assert_eq(df.items[0].op, GM_DIFF_KEEP);
    cr_assert_eq(df.items[0].actual, 2);
    cr_assert_eq(df.items[1].op, GM_DIFF_UPDATE);
    cr_assert_eq(df.items[2].op, GM_DIFF_CREATE);
    cr_assert_eq(df.items[2].actual, -1);
    cr_assert_eq(df.items[3].op, GM_DIFF_DELETE);
    cr_assert_eq(df.items[3].actual, 0);
    cr_assert_eq(df.count[GM_DIFF_CREATE], 1);
    cr_assert_eq(df.count[GM_DIFF_UPDATE], 1);
    cr_assert_eq(df.count[GM_DIFF_DELETE], 1);
    cr_assert_eq(df.count[GM_DIFF_KEEP], 1);
    gm_diff_free(&df);
}

Test(diff, a_name_given_twice_is_refused)
{
    struct gm_workload_rec desired[2];
    memset(desired, 0, sizeof(desired));
    snprintf(desired[0].name, sizeof(desired[0].name), "x");
    snprintf(desired[1].name, sizeof(desired[1].name), "x");
    struct gm_diff df;
    struct gm_error err;
    cr_assert_eq(gm_plan_diff(desired, 2, NULL, 0, &df, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "workload x is given twice") != NULL, "%s", err.msg);
}

Test(diff, the_spec_compares_gpus_limits_and_command)
{
    struct gm_workload_rec a = {0}, b = {0};
    a.spec_json = b.spec_json = (char *)"{\"command\":[\"a\"]}";
    cr_assert(gm_plan_same_spec(&a, &b));
    b.ngpus = a.ngpus = 1;
    snprintf(a.gpus[0], sizeof(a.gpus[0]), "GPU-a");
    snprintf(b.gpus[0], sizeof(b.gpus[0]), "GPU-b");
    cr_assert_not(gm_plan_same_spec(&a, &b));
    snprintf(b.gpus[0], sizeof(b.gpus[0]), "GPU-a");
    b.compute_pct = 10;
    cr_assert_not(gm_plan_same_spec(&a, &b));
    b.compute_pct = 0;
    b.spec_json = (char *)"{\"command\":[\"b\"]}";
    cr_assert_not(gm_plan_same_spec(&a, &b));
    /* What a launch runs with is noted with the spec; it is not part of what was asked. */
    b.spec_json = strdup("{\"command\":[\"a\"]}");
    struct gm_in_force f;
    cr_assert_eq(gm_plan_in_force(&b, &f), -1, "nothing noted before a launch");
    gm_plan_note_in_force(&b, "mps", 30, 1 << 30);
    cr_assert(gm_plan_same_spec(&a, &b));
    cr_assert_eq(gm_plan_in_force(&b, &f), 0);
    cr_assert_str_eq(f.mode, "mps");
    cr_assert_eq(f.compute_pct, 30);
    cr_assert_eq(f.memory_limit, 1 << 30);
    /* a change applied live notes only what it changed */
    gm_plan_note_in_force(&b, NULL, -1, 2LL << 30);
    cr_assert_eq(gm_plan_in_force(&b, &f), 0);
    cr_assert_str_eq(f.mode, "mps");
    cr_assert_eq(f.compute_pct, 30);
    cr_assert_eq(f.memory_limit, 2LL << 30);
    gm_plan_note_in_force(&b, "", -1, -1);
    cr_assert_eq(gm_plan_in_force(&b, &f), 0);
    cr_assert_str_eq(f.mode, "", "a launch without a GPU has no mode");
    free(b.spec_json);
}

/* on-failure:2: a failing workload is restarted twice, then stays exited. */
Test(reconcile, on_failure_n_restarts_at_most_n_times)
{
    struct gm_workload_rec *w = add("a", 0);
    w->restart = GM_RESTART_ON_FAILURE;
    w->restart_max = 2;
    struct gm_sup_status st = {.state = GM_SUP_EXITED, .exit_code = 1};
    struct gm_rc_plan p;
    for (int round = 0; round < 2; round++) {
        w->restart_count = round;
        gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
        cr_assert_eq(p.action, GM_RC_ENDED);
        cr_assert_eq(p.next.desired_running, 1, "restart %d of 2 is wanted", round + 1);
    }
    w->restart_count = 2;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.next.state, GM_W_EXITED);
    cr_assert_eq(p.next.desired_running, 0, "after 2 restarts it stays exited");
    cr_assert_eq(p.timers.restart_at_ms, 0);
    /* No bound: it goes on. */
    w->restart_max = 0;
    w->restart_count = 50;
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.next.desired_running, 1);
}

/* run --rm: the record goes with the end, whether the command exited or was stopped, and not
 * before. */
Test(reconcile, auto_remove_deletes_once_it_has_ended)
{
    struct gm_workload_rec *w = add("a", 0);
    w->auto_remove = 1;
    struct gm_sup_status alive = {.state = GM_SUP_ALIVE, .pid = 100, .pid_start = 5};
    struct gm_rc_plan p;
    gm_plan_reconcile(w, &alive, 0, NULL, 1000, 0, 10, &p);
    cr_assert_not(p.remove_record, "it still runs");
    struct gm_sup_status st = {.state = GM_SUP_EXITED, .exit_code = 0};
    gm_plan_reconcile(w, &st, 0, NULL, 1000, 0, 10, &p);
    cr_assert_eq(p.action, GM_RC_ENDED);
    cr_assert(p.remove_record, "its command exited");
    w->state = GM_W_STOPPING;
    struct gm_sup_status killed = {.state = GM_SUP_EXITED, .exit_code = -1, .exit_signal = SIGTERM};
    gm_plan_reconcile(w, &killed, 0, NULL, 1000, 0, 10, &p);
    cr_assert(p.remove_record, "it was stopped");
    /* An ended record left over (a launch that could not be made): removed on the next pass. */
    w->state = GM_W_EXITED;
    w->desired_running = 0;
    gm_plan_reconcile(w, NULL, 0, NULL, 1000, 0, 10, &p);
    cr_assert(p.remove_record);
    /* Without --rm nothing is removed. */
    w->auto_remove = 0;
    gm_plan_reconcile(w, NULL, 0, NULL, 1000, 0, 10, &p);
    cr_assert_not(p.remove_record);
}
