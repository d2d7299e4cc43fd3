/* gpusim's MPS: the control daemon and its client mode as scripts drive the real
 * nvidia-cuda-mps-control, its servers as the simulated device shows them, and the attach
 * protocol the simulated libcuda uses. Each test runs a private daemon, pipe and log directory
 * and device state under a temporary directory. */
#include "common/cuda_api.h"
#include "gpusim/mps/mps_client.h"
#include "gpusim/mps/mps_daemon.h"
#include "gpusim/mps/mps_proto.h"
#include "gpusim/state/state.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB 1048576ull
#define GIB (1024 * MIB)

static char dir[64];
static char pipe_dir[128], log_dir[128];
static char out[16384];

static void setup(void)
{
    strcpy(dir, "/tmp/gm-mps-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char state[128];
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(pipe_dir, sizeof(pipe_dir), "%s/pipe", dir);
    snprintf(log_dir, sizeof(log_dir), "%s/log", dir);
    setenv("GPUSIM_STATE", state, 1);
    setenv("CUDA_MPS_PIPE_DIRECTORY", pipe_dir, 1);
    setenv("CUDA_MPS_LOG_DIRECTORY", log_dir, 1);
    unsetenv("GPUSIM_CONFIG");
    unsetenv("CUDA_VISIBLE_DEVICES");
    unsetenv("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE");
    unsetenv(GM_SIM_MPS_START_DELAY_ENV);
}

/* Runs nvidia-cuda-mps-control with args and input on stdin; its stdout and stderr land in
 * out. Returns the exit status. */
static int ctl(const char *args, const char *input)
{
    const char *build = getenv("GM_BUILD_DIR");
    cr_assert_not_null(build, "GM_BUILD_DIR is not set");
    char in[160], cmd[1024];
    snprintf(in, sizeof(in), "%s/stdin", dir);
    FILE *f = fopen(in, "w");
    cr_assert_not_null(f);
    fputs(input, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s/lib/gpusim/nvidia-cuda-mps-control %s < %s 2>&1", build, args,
             in);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st), "%s did not exit normally", cmd);
    return WEXITSTATUS(st);
}

/* The answer to one command; the status must be 0. */
static const char *ask(const char *command)
{
    char line[512];
    snprintf(line, sizeof(line), "%s\n", command);
    int rc = ctl("", line);
    cr_assert_eq(rc, 0, "'%s' exited %d: %s", command, rc, out);
    return out;
}

static void start_daemon(void)
{
    int rc = ctl("-d", "");
    cr_assert_eq(rc, 0, "-d exited %d: %s", rc, out);
    cr_assert_str_empty(out);
}

static void teardown(void)
{
    if (access(pipe_dir, F_OK) == 0)
        ctl("", "quit\n");
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(gpusim_mps, .init = setup, .fini = teardown, .timeout = 60);

static int gone(int pid)
{
    uint64_t start;
    return gm_sim_proc_start_time((uint32_t)pid, &start, NULL) < 0; /* exited, or a zombie */
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *read_text(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static char *log_text(const char *name)
{
    char path[192];
    snprintf(path, sizeof(path), "%s/%s", log_dir, name);
    char *t = read_text(path);
    cr_assert_not_null(t, "no %s", path);
    return t;
}

static void gpu_uuid(int gpu, char *buf, size_t len)
{
    struct gm_sim_state *st;
    struct gm_error err;
    cr_assert_eq(gm_sim_attach(&st, &err), 0, "%s", err.msg);
    snprintf(buf, len, "%s", st->gpus[gpu].info.uuid);
    gm_sim_detach(st);
}

/* The process-table entry of pid on gpu, or 0 flags when it has none. */
static struct gm_sim_proc proc_on(int gpu, int pid)
{
    struct gm_sim_state *st;
    struct gm_error err;
    static struct gm_sim_gpu g;
    struct gm_sim_proc none;
    memset(&none, 0, sizeof(none));
    cr_assert_eq(gm_sim_attach(&st, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_sim_gpu_snapshot(st, gpu, &g, NULL, &err), 0, "%s", err.msg);
    gm_sim_detach(st);
    for (uint32_t i = 0; i < g.nprocs; i++)
        if ((int)g.procs[i].pid == pid)
            return g.procs[i];
    return none;
}

static int daemon_pid(void)
{
    char path[192];
    snprintf(path, sizeof(path), "%s/%s", pipe_dir, GM_SIM_MPS_PID_FILE);
    char *t = read_text(path);
    cr_assert_not_null(t, "no %s", path);
    return atoi(t);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static struct gm_sim_mps_client attach_ok(const char *uuid, int pct, uint64_t mem)
{
    struct gm_sim_mps_client c;
    int rc = gm_sim_mps_attach(pipe_dir, uuid, pct, mem, &c);
    cr_assert_eq(rc, 0, "attach returned %d", rc);
    cr_assert_geq(c.fd, 0);
    return c;
}

Test(gpusim_mps, no_daemon_is_reported_like_the_real_tool)
{
    cr_assert_eq(ctl("", "get_server_list\n"), 1);
    cr_assert_str_eq(out, "Cannot find MPS control daemon process\n");
    struct gm_sim_mps_client c;
    cr_assert_eq(gm_sim_mps_attach(pipe_dir, NULL, 0, 0, &c), 1);
    cr_assert_eq(c.fd, -1);
}

Test(gpusim_mps, daemon_files_commands_and_quit)
{
    start_daemon();
    int pid = daemon_pid();
    cr_assert_gt(pid, 0);
    cr_assert_not(gone(pid), "pid file names %d, which does not run", pid);
    char sock[192], want[256];
    snprintf(sock, sizeof(sock), "%s/control", pipe_dir);
    struct stat sb;
    cr_assert_eq(stat(sock, &sb), 0);
    cr_assert(S_ISSOCK(sb.st_mode));
    char *log = log_text("control.log");
    snprintf(want, sizeof(want), " Control %5d] Starting control daemon using socket %s\n", pid,
             sock);
    cr_assert_not_null(strstr(log, want), "control.log lacks '%s':\n%s", want, log);
    cr_assert_eq(log[0], '[');
    cr_assert_eq(log[5], '-');
    cr_assert_eq(log[20], '.', "not a millisecond timestamp: %.30s", log);

    cr_assert_eq(ctl("-d", ""), 1, "a second daemon on one pipe directory started");
    cr_assert_str_eq(out, "An instance of this daemon is already running\n");
    cr_assert_eq(daemon_pid(), pid);

    cr_assert_str_empty(ask("get_server_list"));
    cr_assert_str_eq(ask("get_default_active_thread_percentage"), "100.0\n");
    cr_assert_str_eq(ask("set_default_active_thread_percentage 40"), "40.0\n");
    cr_assert_str_eq(ask("get_default_active_thread_percentage"), "40.0\n");
    const char *bad[] = {"0", "101", "abc", "-5", "50x", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "set_default_active_thread_percentage %s", bad[i]);
        const char *a = ask(cmd);
        cr_assert(strncmp(a, "Invalid active thread percentage", 32) == 0 ||
                      strncmp(a, "Usage:", 6) == 0,
                  "'%s' answered '%s'", cmd, a);
    }
    cr_assert_str_eq(ask("get_default_active_thread_percentage"), "40.0\n");
    cr_assert_str_eq(ask("set_default_active_thread_percentage 12.5"), "12.5\n");

    cr_assert_str_eq(ask("get_default_device_pinned_mem_limit 0"), "0\n");
    cr_assert_str_empty(ask("set_default_device_pinned_mem_limit 0 10G"));
    cr_assert_str_eq(ask("get_default_device_pinned_mem_limit 0"), "10G\n");
    cr_assert_str_empty(ask("set_default_device_pinned_mem_limit 1 512M"));
    cr_assert_str_eq(ask("get_default_device_pinned_mem_limit 1"), "512M\n");
    cr_assert_str_eq(ask("get_default_device_pinned_mem_limit 0"), "10G\n");
    cr_assert(strncmp(ask("set_default_device_pinned_mem_limit 0 lots"), "Invalid memory", 14) ==
              0);
    cr_assert(strncmp(ask("set_default_device_pinned_mem_limit 7 1G"), "Invalid device", 14) == 0);
    cr_assert(strncmp(ask("frobnicate"), "Unrecognized command", 20) == 0);
    cr_assert(strncmp(ask("get_client_list 999999"), "Server 999999 not found", 23) == 0);

    /* Several commands in one run, one answer each, as a here-document gives them. */
    cr_assert_eq(ctl("", "get_default_active_thread_percentage\n\nget_server_list\n"), 0);
    cr_assert_str_eq(out, "12.5\n");

    cr_assert_str_empty(ask("quit"));
    for (int i = 0; i < 100 && !gone(pid); i++)
        sleep_ms(10); /* it hangs up just before it exits */
    cr_assert(gone(pid), "the daemon still runs after quit");
    cr_assert_neq(access(sock, F_OK), 0, "the socket outlived the daemon");
    char pidf[192];
    snprintf(pidf, sizeof(pidf), "%s/%s", pipe_dir, GM_SIM_MPS_PID_FILE);
    cr_assert_neq(access(pidf, F_OK), 0, "the pid file outlived the daemon");
    cr_assert_eq(ctl("", "get_server_list\n"), 1);
}

Test(gpusim_mps, attach_starts_a_server_on_the_device)
{
    char uuid[96];
    gpu_uuid(0, uuid, sizeof(uuid));
    start_daemon();
    cr_assert_str_empty(ask("get_server_list"));
    struct gm_sim_mps_client c = attach_ok(uuid, 0, 0);
    cr_assert_gt(c.server_pid, 0);
    cr_assert_eq(c.active_thread_pct, 100);
    cr_assert_eq(c.pinned_mem_limit, 0);

    char want[64];
    snprintf(want, sizeof(want), "%d\n", c.server_pid);
    cr_assert_str_eq(ask("get_server_list"), want);
    snprintf(want, sizeof(want), "get_client_list %d", c.server_pid);
    char mine[32];
    snprintf(mine, sizeof(mine), "%d\n", (int)getpid());
    cr_assert_str_eq(ask(want), mine);

    struct gm_sim_proc p = proc_on(0, c.server_pid);
    cr_assert_eq(p.flags, GM_SIM_PROC_MPS_SERVER | GM_SIM_PROC_COMPUTE);
    cr_assert_eq(p.used_memory, 25 * MIB);
    cr_assert_str_eq(p.name, "nvidia-cuda-mps-server");
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", c.server_pid);
    cr_assert_str_eq(read_text(path), "nvidia-cuda-mps-server");

    char *log = log_text("control.log");
    char line[160];
    snprintf(line, sizeof(line),
             "NEW CLIENT %d from user %u: Server is not ready, push client to pending list",
             (int)getpid(), (unsigned)getuid());
    cr_assert_not_null(strstr(log, line), "control.log lacks '%s':\n%s", line, log);
    snprintf(line, sizeof(line), "Starting new server %d for user %u", c.server_pid,
             (unsigned)getuid());
    cr_assert_not_null(strstr(log, line), "control.log lacks '%s':\n%s", line, log);
    snprintf(line, sizeof(line), "NEW SERVER %d: Ready", c.server_pid);
    cr_assert_not_null(strstr(log, line));

    /* A second client joins the same server. */
    struct gm_sim_mps_client c2 = attach_ok(uuid, 0, 0);
    cr_assert_eq(c2.server_pid, c.server_pid);
    snprintf(line, sizeof(line), "NEW CLIENT %d from user %u: Server already exists", (int)getpid(),
             (unsigned)getuid());
    cr_assert_not_null(strstr(log_text("control.log"), line));

    const char *ps = ask("ps");
    cr_assert(strncmp(ps, "PID", 3) == 0, "ps: %s", ps);
    cr_assert_not_null(strstr(ps, "nvidia-cuda-mps-server"), "ps: %s", ps);
    cr_assert_not_null(strstr(ps, uuid), "ps: %s", ps);
    int rows = 0;
    for (const char *l = ps; (l = strchr(l, '\n')) != NULL && l[1] != '\0'; l++)
        rows++;
    cr_assert_eq(rows, 3, "ps: one server and two clients expected:\n%s", ps);

    gm_sim_mps_detach(&c);
    gm_sim_mps_detach(&c2);
    cr_assert_eq(c.fd, -1);

    cr_assert_str_empty(ask("quit"));
    cr_assert_eq(proc_on(0, c.server_pid).flags, 0, "the server is still on the device");
    char *slog = log_text("server.log");
    snprintf(line, sizeof(line), "Server %5d] Exit", c.server_pid);
    cr_assert_not_null(strstr(slog, line), "server.log:\n%s", slog);
    snprintf(line, sizeof(line), "Server %d exited with status 0", c.server_pid);
    cr_assert_not_null(strstr(log_text("control.log"), line));
}

Test(gpusim_mps, start_server_and_percentages_only_lower)
{
    start_daemon();
    cr_assert_str_eq(ask("set_default_active_thread_percentage 50"), "50.0\n");
    cr_assert_str_empty(ask("start_server -uid 0"));
    const char *list = ask("get_server_list");
    int server = atoi(list);
    cr_assert_gt(server, 0, "no server after start_server: '%s'", list);
    cr_assert(strncmp(ask("start_server"), "Usage:", 6) == 0);

    char cmd[96];
    snprintf(cmd, sizeof(cmd), "get_active_thread_percentage %d", server);
    cr_assert_str_eq(ask(cmd), "50.0\n");

    struct gm_sim_mps_client a = attach_ok(NULL, 0, 0);
    cr_assert_eq(a.server_pid, server);
    cr_assert_eq(a.active_thread_pct, 50);
    struct gm_sim_mps_client b = attach_ok(NULL, 30, 0);
    cr_assert_eq(b.active_thread_pct, 30);
    struct gm_sim_mps_client c = attach_ok(NULL, 80, 0);
    cr_assert_eq(c.active_thread_pct, 50, "a client raised its share above the server's");

    /* Changes reach new clients and leave the running ones as they are. */
    snprintf(cmd, sizeof(cmd), "set_active_thread_percentage %d 20", server);
    cr_assert_str_eq(ask(cmd), "20.0\n");
    snprintf(cmd, sizeof(cmd), "get_active_thread_percentage %d", server);
    cr_assert_str_eq(ask(cmd), "20.0\n");
    struct gm_sim_mps_client d = attach_ok(NULL, 30, 0);
    cr_assert_eq(d.active_thread_pct, 20);
    snprintf(cmd, sizeof(cmd), "set_active_thread_percentage %d 101", server);
    cr_assert(strncmp(ask(cmd), "Invalid active thread percentage", 32) == 0);
    cr_assert(
        strncmp(ask("set_active_thread_percentage 999999 10"), "Server 999999 not found", 23) == 0);
    /* The default is for servers not yet started. */
    cr_assert_str_eq(ask("set_default_active_thread_percentage 90"), "90.0\n");
    struct gm_sim_mps_client e = attach_ok(NULL, 0, 0);
    cr_assert_eq(e.active_thread_pct, 20);

    struct gm_sim_mps_client *all[] = {&a, &b, &c, &d, &e};
    for (int i = 0; i < 5; i++)
        gm_sim_mps_detach(all[i]);
}

Test(gpusim_mps, pinned_memory_limits_only_lower)
{
    char uuid1[96];
    gpu_uuid(1, uuid1, sizeof(uuid1));
    start_daemon();
    cr_assert_str_empty(ask("set_default_device_pinned_mem_limit 1 10G"));
    struct gm_sim_mps_client a = attach_ok(uuid1, 0, 0);
    cr_assert_eq(a.pinned_mem_limit, 10 * GIB);
    struct gm_sim_mps_client b = attach_ok(uuid1, 0, 1 * GIB);
    cr_assert_eq(b.pinned_mem_limit, 1 * GIB);
    struct gm_sim_mps_client c = attach_ok(uuid1, 0, 20 * GIB);
    cr_assert_eq(c.pinned_mem_limit, 10 * GIB, "a client raised its memory limit");
    struct gm_sim_mps_client d = attach_ok(NULL, 0, 0); /* device 0: no limit set */
    cr_assert_eq(d.pinned_mem_limit, 0);

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "set_device_pinned_mem_limit %d %s 512M", a.server_pid, uuid1);
    cr_assert_str_empty(ask(cmd));
    snprintf(cmd, sizeof(cmd), "get_device_pinned_mem_limit %d 1", a.server_pid);
    cr_assert_str_eq(ask(cmd), "512M\n");
    struct gm_sim_mps_client e = attach_ok(uuid1, 0, 0);
    cr_assert_eq(e.pinned_mem_limit, 512 * MIB);
    cr_assert_eq(a.pinned_mem_limit, 10 * GIB);

    struct gm_sim_mps_client *all[] = {&a, &b, &c, &d, &e};
    for (int i = 0; i < 5; i++)
        gm_sim_mps_detach(all[i]);
}

Test(gpusim_mps, forty_eight_clients_then_808)
{
    start_daemon();
    static struct gm_sim_mps_client c[GM_SIM_MPS_MAX_CLIENTS];
    for (int i = 0; i < GM_SIM_MPS_MAX_CLIENTS; i++)
        c[i] = attach_ok(NULL, 0, 0);
    int fds = count_fds();
    struct gm_sim_mps_client extra;
    cr_assert_eq(gm_sim_mps_attach(pipe_dir, NULL, 0, 0, &extra),
                 -CUDA_ERROR_MPS_MAX_CLIENTS_REACHED);
    cr_assert_eq(extra.fd, -1);
    cr_assert_eq(gm_sim_mps_attach(pipe_dir, NULL, 0, 0, &extra),
                 -CUDA_ERROR_MPS_MAX_CLIENTS_REACHED);
    cr_assert_eq(count_fds(), fds, "a refused attach left a descriptor open");

    char cmd[64], mine[32];
    snprintf(cmd, sizeof(cmd), "get_client_list %d", c[0].server_pid);
    snprintf(mine, sizeof(mine), "%d\n", (int)getpid());
    cr_assert_str_eq(ask(cmd), mine, "one process is listed once, whatever its contexts");

    /* A detach frees a slot; the daemon learns of it asynchronously. */
    gm_sim_mps_detach(&c[7]);
    int rc = -1;
    for (int i = 0; i < 100 && rc != 0; i++) {
        rc = gm_sim_mps_attach(pipe_dir, NULL, 0, 0, &c[7]);
        if (rc != 0)
            sleep_ms(10);
    }
    cr_assert_eq(rc, 0, "the freed slot was not reused: %d", rc);
    cr_assert_eq(gm_sim_mps_attach(pipe_dir, NULL, 0, 0, &extra),
                 -CUDA_ERROR_MPS_MAX_CLIENTS_REACHED);
    for (int i = 0; i < GM_SIM_MPS_MAX_CLIENTS; i++)
        gm_sim_mps_detach(&c[i]);
    cr_assert_eq(count_fds(), fds - GM_SIM_MPS_MAX_CLIENTS);
}

Test(gpusim_mps, a_client_that_exits_is_forgotten)
{
    start_daemon();
    int up[2], go[2];
    cr_assert_eq(pipe(up), 0);
    cr_assert_eq(pipe(go), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        struct gm_sim_mps_client c;
        int rc = gm_sim_mps_attach(pipe_dir, NULL, 0, 0, &c);
        int msg[2] = {rc, c.server_pid};
        if (write(up[1], msg, sizeof(msg)) != sizeof(msg))
            _exit(2);
        char b;
        if (read(go[0], &b, 1) < 0)
            _exit(2);
        _exit(0); /* without a detach: the kernel closes the connection */
    }
    int msg[2];
    cr_assert_eq(read(up[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
    cr_assert_eq(msg[0], 0, "the child's attach returned %d", msg[0]);
    char cmd[64], want[32];
    snprintf(cmd, sizeof(cmd), "get_client_list %d", msg[1]);
    snprintf(want, sizeof(want), "%d\n", (int)child);
    cr_assert_str_eq(ask(cmd), want);

    cr_assert_eq(write(go[1], "x", 1), 1);
    cr_assert_eq(waitpid(child, NULL, 0), child);
    int forgotten = 0;
    for (int i = 0; i < 100 && !forgotten; i++) {
        forgotten = ask(cmd)[0] == '\0';
        if (!forgotten)
            sleep_ms(20);
    }
    cr_assert(forgotten, "the daemon still lists an exited client: %s", out);
    close(up[0]);
    close(up[1]);
    close(go[0]);
    close(go[1]);
}

Test(gpusim_mps, terminate_client)
{
    start_daemon();
    struct gm_sim_mps_client c = attach_ok(NULL, 0, 0);
    cr_assert_not(gm_sim_mps_client_terminated(&c));
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "terminate_client %d 999999", c.server_pid);
    cr_assert(strncmp(ask(cmd), "Client 999999 not found", 23) == 0, "%s", out);
    cr_assert_not(gm_sim_mps_client_terminated(&c));

    snprintf(cmd, sizeof(cmd), "terminate_client %d %d", c.server_pid, (int)getpid());
    cr_assert_str_empty(ask(cmd));
    int done = 0;
    for (int i = 0; i < 100 && !done; i++) {
        done = gm_sim_mps_client_terminated(&c);
        if (!done)
            sleep_ms(10);
    }
    cr_assert(done, "the client was not told it was terminated");
    snprintf(cmd, sizeof(cmd), "get_client_list %d", c.server_pid);
    cr_assert_str_empty(ask(cmd));
    gm_sim_mps_detach(&c);
}

Test(gpusim_mps, daemon_killed_means_no_mps)
{
    start_daemon();
    int pid = daemon_pid();
    struct gm_sim_mps_client c = attach_ok(NULL, 0, 0);
    int server = c.server_pid;
    cr_assert_neq(proc_on(0, server).flags, 0);

    cr_assert_eq(kill(pid, SIGKILL), 0);
    for (int i = 0; i < 200 && !gone(pid); i++)
        sleep_ms(10);
    cr_assert(gone(pid));
    cr_assert_eq(ctl("", "get_server_list\n"), 1);
    cr_assert_str_eq(out, "Cannot find MPS control daemon process\n");
    struct gm_sim_mps_client d;
    cr_assert_eq(gm_sim_mps_attach(pipe_dir, NULL, 0, 0, &d), 1);
    cr_assert_eq(d.fd, -1);

    /* Its server loses the daemon and leaves the device. */
    for (int i = 0; i < 200 && proc_on(0, server).flags != 0; i++)
        sleep_ms(10);
    cr_assert_eq(proc_on(0, server).flags, 0, "the orphaned server stayed on the device");
    gm_sim_mps_detach(&c);

    /* The next daemon takes the directory over. */
    start_daemon();
    cr_assert_neq(daemon_pid(), pid);
    struct gm_sim_mps_client e = attach_ok(NULL, 0, 0);
    cr_assert_neq(e.server_pid, server);
    gm_sim_mps_detach(&e);
    cr_assert_str_empty(ask("quit"));
}

/* The pid in the pid file, 0 while there is none (no file, or not written yet). */
static int daemon_pid_now(void)
{
    char path[192];
    snprintf(path, sizeof(path), "%s/%s", pipe_dir, GM_SIM_MPS_PID_FILE);
    char *t = read_text(path);
    return t == NULL ? 0 : atoi(t);
}

/* Test-only: GPUSIM_MPS_START_DELAY_MS makes -d slow to come up. Only a lower bound is tight;
 * the upper one is generous, for a loaded machine. */
Test(gpusim_mps, start_delay_is_honoured)
{
    const int delay_ms = 800;
    char v[16];
    snprintf(v, sizeof(v), "%d", delay_ms);
    setenv(GM_SIM_MPS_START_DELAY_ENV, v, 1);
    const char *build = getenv("GM_BUILD_DIR");
    cr_assert_not_null(build, "GM_BUILD_DIR is not set");
    char exe[512];
    snprintf(exe, sizeof(exe), "%s/lib/gpusim/nvidia-cuda-mps-control", build);

    double t0 = now_s();
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        execl(exe, "nvidia-cuda-mps-control", "-d", (char *)NULL);
        _exit(127);
    }
    double appeared = 0;
    while (appeared == 0 && now_s() - t0 < 30) {
        if (daemon_pid_now() > 0)
            appeared = now_s();
        else
            sleep_ms(5);
    }
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    double returned = now_s();
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "-d failed: status %d", status);
    cr_assert_gt(appeared, 0, "no pid file within 30 s");
    cr_assert_geq(appeared - t0, delay_ms / 1000.0, "pid file after %.3f s, before the delay",
                  appeared - t0);
    cr_assert_lt(appeared - t0, delay_ms / 1000.0 + 20, "pid file only after %.3f s",
                 appeared - t0);
    /* -d returns once the daemon answers, so not before the delay either. */
    cr_assert_geq(returned - t0, delay_ms / 1000.0);
    unsetenv(GM_SIM_MPS_START_DELAY_ENV);
    cr_assert_str_eq(ask("get_server_list"), "");
    cr_assert_str_empty(ask("quit"));
}

Test(gpusim_mps, start_delay_must_be_a_number_of_ms)
{
    setenv(GM_SIM_MPS_START_DELAY_ENV, "soon", 1);
    cr_assert_eq(ctl("-d", ""), 1);
    cr_assert(strstr(out, GM_SIM_MPS_START_DELAY_ENV) != NULL, "%s", out);
    setenv(GM_SIM_MPS_START_DELAY_ENV, "60001", 1);
    cr_assert_eq(ctl("-d", ""), 1);
    cr_assert_eq(daemon_pid_now(), 0);
    setenv(GM_SIM_MPS_START_DELAY_ENV, "0", 1);
    start_daemon();
    cr_assert_gt(daemon_pid_now(), 0);
    cr_assert_str_empty(ask("quit"));
}

Test(gpusim_mps, only_the_visible_device)
{
    char uuid0[96], uuid1[96];
    gpu_uuid(0, uuid0, sizeof(uuid0));
    gpu_uuid(1, uuid1, sizeof(uuid1));
    setenv("CUDA_VISIBLE_DEVICES", uuid1, 1);
    start_daemon();
    unsetenv("CUDA_VISIBLE_DEVICES");
    struct gm_sim_mps_client c;
    cr_assert_eq(gm_sim_mps_attach(pipe_dir, uuid0, 0, 0, &c), -CUDA_ERROR_INVALID_DEVICE);
    c = attach_ok(uuid1, 0, 0);
    cr_assert_eq(proc_on(1, c.server_pid).flags, GM_SIM_PROC_MPS_SERVER | GM_SIM_PROC_COMPUTE);
    cr_assert_eq(proc_on(0, c.server_pid).flags, 0, "the server sits on an invisible GPU");
    /* Device 0 of this daemon is the one GPU it sees. */
    cr_assert_str_empty(ask("set_default_device_pinned_mem_limit 0 2G"));
    cr_assert(strncmp(ask("get_default_device_pinned_mem_limit 1"), "Invalid device", 14) == 0);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "get_default_device_pinned_mem_limit %s", uuid1);
    cr_assert_str_eq(ask(cmd), "2G\n");
    gm_sim_mps_detach(&c);
}

Test(gpusim_mps, quit_waits_for_clients_up_to_its_timeout)
{
    start_daemon();
    struct gm_sim_mps_client c = attach_ok(NULL, 0, 0);
    int server = c.server_pid;
    double t0 = now_s();
    cr_assert_eq(ctl("", "quit -t 1\n"), 0, "%s", out);
    double waited = now_s() - t0;
    cr_assert_geq(waited, 0.9, "quit -t 1 returned after %.2f s with a client attached", waited);
    cr_assert_lt(waited, 5.0);
    cr_assert(gm_sim_mps_client_terminated(&c));
    cr_assert_eq(proc_on(0, server).flags, 0);
    gm_sim_mps_detach(&c);

    /* Without clients it does not wait. */
    start_daemon();
    t0 = now_s();
    cr_assert_eq(ctl("", "quit -t 5\n"), 0, "%s", out);
    cr_assert_lt(now_s() - t0, 2.0);
    cr_assert_eq(ctl("", "get_server_list\n"), 1, "the daemon outlived quit -t: %s", out);
}
