/* How a simulated CUDA client (gpusim's libcuda.so.1) attaches to gpusim's MPS control daemon,
 * as the real driver does when CUDA_MPS_PIPE_DIRECTORY holds a running daemon. */
#ifndef GM_GPUSIM_MPS_CLIENT_H
#define GM_GPUSIM_MPS_CLIENT_H

#include <stdint.h>

struct gm_sim_mps_client {
    int fd;                    /* the connection; open for the client's life */
    int server_pid;            /* the nvidia-cuda-mps-server serving this client */
    int active_thread_pct;     /* effective: the lower of the server's and the client's */
    uint64_t pinned_mem_limit; /* bytes on the client's device, 0 = none */
};

/* The pipe directory: $CUDA_MPS_PIPE_DIRECTORY or /tmp/nvidia-mps. */
const char *gm_sim_mps_pipe_dir(void);

/* Attaches the calling process as an MPS client of the daemon in pipe_dir for the GPU with
 * device_uuid. requested_pct (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE, 0 = none) and
 * requested_mem_limit (from CUDA_MPS_PINNED_DEVICE_MEM_LIMIT, 0 = none) can only lower what the
 * daemon allows. Returns 0 and fills out; 1 when no daemon runs there (the caller runs as an
 * ordinary, time-sliced client); or a negative CUresult value (-CUDA_ERROR_MPS_...) when the
 * daemon refuses, e.g. -808 (CUDA_ERROR_MPS_MAX_CLIENTS_REACHED) past 48 clients. */
int gm_sim_mps_attach(const char *pipe_dir, const char *device_uuid, int requested_pct,
                      uint64_t requested_mem_limit, struct gm_sim_mps_client *out);
/* Closes the connection; the daemon forgets the client. */
void gm_sim_mps_detach(struct gm_sim_mps_client *c);

#endif
