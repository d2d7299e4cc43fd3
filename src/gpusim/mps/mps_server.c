/* nvidia-cuda-mps-server for gpusim. Started only by the control daemon, with its stdout and
 * stderr on server.log. It holds the shared context on each visible GPU, which the simulated
 * device shows as a 25 MiB compute process named nvidia-cuda-mps-server, and lives exactly as
 * long as its connection to the daemon: a QUIT, the daemon's end, or SIGTERM stop it. */
#include "gpusim/mps/mps_daemon.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}

static int pid;

#define LOG(...) gm_sim_mps_log(STDERR_FILENO, "Server", pid, __VA_ARGS__)

static void unregister(struct gm_sim_state *st, const int *gpus, int n)
{
    for (int i = 0; i < n; i++) {
        struct gm_error err;
        gm_error_clear(&err);
        if (gm_sim_proc_unregister(st, gpus[i], (uint32_t)pid, &err) < 0)
            LOG("Device %d: %s", i, err.msg);
    }
}

/* Waits for the daemon to let it go. Returns why it stopped. */
static const char *serve(int fd)
{
    for (;;) {
        if (got_term)
            return "terminated by signal";
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, -1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return "poll failed";
        char buf[64];
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return "the control daemon went away";
        buf[n] = '\0';
        if (strstr(buf, "QUIT") != NULL)
            return "asked to quit by the control daemon";
    }
}

int main(void)
{
    pid = (int)getpid();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    LOG("Server starting.");

    struct gm_sim_state *st;
    struct gm_error err;
    gm_error_clear(&err);
    if (gm_sim_attach(&st, &err) < 0) {
        LOG("Cannot open the device state: %s", err.msg);
        return 1;
    }
    int gpus[GM_SIM_MAX_GPUS];
    int n = gm_sim_visible_gpus(st, getenv("CUDA_VISIBLE_DEVICES"), gpus, GM_SIM_MAX_GPUS);
    for (int i = 0; i < n; i++) {
        LOG("Creating server context on device %d (%s)", i, st->gpus[gpus[i]].info.name);
        if (gm_sim_proc_register(st, gpus[i], (uint32_t)pid,
                                 GM_SIM_PROC_MPS_SERVER | GM_SIM_PROC_COMPUTE,
                                 GM_SIM_MPS_SERVER_MEMORY, GM_SIM_MPS_SERVER_NAME, &err) < 0) {
            LOG("Device %d: cannot create the server context: %s", i, err.msg);
            unregister(st, gpus, i);
            gm_sim_detach(st);
            return 1;
        }
    }

    int fd = gm_sim_mps_connect(gm_sim_mps_pipe_dir());
    char hello[64];
    int len = snprintf(hello, sizeof(hello), "SERVER %d\n", pid);
    if (fd < 0 || gm_sim_mps_send(fd, hello, (size_t)len) < 0) {
        LOG("Cannot reach the control daemon in %s: %s", gm_sim_mps_pipe_dir(), strerror(errno));
        if (fd >= 0)
            close(fd);
        unregister(st, gpus, n);
        gm_sim_detach(st);
        return 1;
    }
    LOG("Server has started");
    const char *why = serve(fd);
    LOG("Server shutting down: %s", why);
    close(fd);
    unregister(st, gpus, n);
    gm_sim_detach(st);
    LOG("Exit");
    return 0;
}
