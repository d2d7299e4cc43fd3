/* The CUDA side of gpusim's MPS: what the simulated libcuda does at context creation when a
 * control daemon runs in CUDA_MPS_PIPE_DIRECTORY. Linked into libcuda.so.1, so it must never
 * raise a signal or leave a descriptor behind in the host process. */
#include "common/cuda_api.h"
#include "gpusim/mps/mps_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int gm_sim_mps_attach(const char *pipe_dir, const char *device_uuid, int requested_pct,
                      uint64_t requested_mem_limit, struct gm_sim_mps_client *out)
{
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (pipe_dir == NULL || pipe_dir[0] == '\0')
        pipe_dir = gm_sim_mps_pipe_dir();
    int fd = gm_sim_mps_connect(pipe_dir);
    if (fd < 0) {
        /* As the real driver: no daemon listening means no MPS, not an error. */
        if (errno == ENOENT || errno == ECONNREFUSED || errno == ENOTDIR)
            return 1;
        return -CUDA_ERROR_MPS_CONNECTION_FAILED;
    }
    char line[GM_SIM_MPS_LINE_MAX];
    int n = snprintf(line, sizeof(line), "CLIENT %d %u %s %d %" PRIu64 "\n", (int)getpid(),
                     (unsigned)getuid(),
                     device_uuid != NULL && device_uuid[0] != '\0' ? device_uuid : "-",
                     requested_pct, requested_mem_limit);
    if (n < 0 || (size_t)n >= sizeof(line) || strchr(device_uuid ? device_uuid : "", ' ')) {
        close(fd);
        return -CUDA_ERROR_INVALID_VALUE;
    }
    if (gm_sim_mps_send(fd, line, (size_t)n) < 0) {
        close(fd);
        return -CUDA_ERROR_MPS_CONNECTION_FAILED;
    }
    int len = gm_sim_mps_read_line(fd, line, sizeof(line), GM_SIM_MPS_IO_TIMEOUT_MS);
    if (len <= 0) {
        int timed_out = len < 0 && errno == ETIMEDOUT;
        close(fd);
        /* A daemon that never answers is still waiting for a server; one that hung up has
         * gone away mid-conversation. */
        return timed_out ? -CUDA_ERROR_MPS_SERVER_NOT_READY : -CUDA_ERROR_MPS_RPC_FAILURE;
    }
    int server_pid, pct, code;
    uint64_t mem;
    if (sscanf(line, "OK %d %d %" SCNu64, &server_pid, &pct, &mem) == 3) {
        out->fd = fd;
        out->server_pid = server_pid;
        out->active_thread_pct = pct;
        out->pinned_mem_limit = mem;
        return 0;
    }
    close(fd);
    if (sscanf(line, "ERR %d", &code) == 1 && code > 0)
        return -code;
    return -CUDA_ERROR_MPS_RPC_FAILURE;
}

void gm_sim_mps_detach(struct gm_sim_mps_client *c)
{
    if (c != NULL && c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

int gm_sim_mps_client_terminated(const struct gm_sim_mps_client *c)
{
    if (c == NULL || c->fd < 0)
        return 1;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    /* Anything readable is either "TERMINATED" or the daemon's end of the connection: after
     * either the server no longer serves this context. MSG_PEEK keeps the answer repeatable. */
    char buf[16];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}
