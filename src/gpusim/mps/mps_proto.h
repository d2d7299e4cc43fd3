/* gpusim's MPS: what the control daemon, its servers, the control client and the simulated
 * libcuda share. The wire protocol is line-based text over the unix stream socket
 * <pipe dir>/control; every line ends in '\n' and is at most GM_SIM_MPS_LINE_MAX bytes.
 *
 *   control client:  "UI <command line>"          -> the answer text, then the daemon closes
 *   CUDA client:     "CLIENT <pid> <uid> <uuid|-> <pct> <mem>"
 *                                                 -> "OK <server pid> <pct> <mem>" | "ERR
 * <CUresult>" the connection then stays open for the client's life; the daemon may send
 *                    "TERMINATED" (terminate_client, quit) and close it
 *   MPS server:      "SERVER <pid>" once it has registered on its GPUs; the daemon sends "QUIT"
 *                    to stop it, and the server also stops when the connection closes
 *
 * The daemon takes pid and uid from SO_PEERCRED; the numbers on the line are informational. */
#ifndef GM_GPUSIM_MPS_PROTO_H
#define GM_GPUSIM_MPS_PROTO_H

#include "gpusim/mps/mps_client.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define GM_SIM_MPS_LINE_MAX        1024
#define GM_SIM_MPS_SOCKET          "control"
#define GM_SIM_MPS_PID_FILE        "nvidia-cuda-mps-control.pid"
#define GM_SIM_MPS_DEFAULT_PIPE    "/tmp/nvidia-mps"
#define GM_SIM_MPS_DEFAULT_LOG     "/var/log/nvidia-mps"
#define GM_SIM_MPS_SERVER_NAME     "nvidia-cuda-mps-server"
#define GM_SIM_MPS_MAX_CLIENTS     48 /* client contexts per GPU per server, Volta and later */
#define GM_SIM_MPS_SERVER_MEMORY   ((uint64_t)25 * 1048576) /* the seed's nvidia-smi */
#define GM_SIM_MPS_IO_TIMEOUT_MS   10000                    /* any answer the daemon owes */
#define GM_SIM_MPS_NO_DAEMON       "Cannot find MPS control daemon process"
#define GM_SIM_MPS_ALREADY_RUNNING "An instance of this daemon is already running"

/* $CUDA_MPS_LOG_DIRECTORY or the default. */
const char *gm_sim_mps_log_dir(void);

/* Connects to <pipe_dir>/control. Returns the fd; -1 with errno when nothing listens there
 * (ENOENT, ECONNREFUSED) or the path is unusable. */
int gm_sim_mps_connect(const char *pipe_dir);
/* Sends all of buf without raising SIGPIPE in the caller. 0 or -1 with errno. */
int gm_sim_mps_send(int fd, const char *buf, size_t len);
/* Reads one line (without its '\n') within timeout_ms. Returns its length, 0 at a clean EOF
 * before any byte, -1 with errno (ETIMEDOUT, EPROTO for an over-long line). Reads byte by byte
 * so that nothing after the line is consumed. */
int gm_sim_mps_read_line(int fd, char *buf, size_t len, int timeout_ms);

/* Appends one line in the real daemon's format, "[2026-11-25 17:00:00.123 Control 1234] msg",
 * to fd with a single write, so that processes sharing a log file never interleave a line. */
void gm_sim_mps_vlog(int fd, const char *who, int pid, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
void gm_sim_mps_log(int fd, const char *who, int pid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* True once the daemon has ended this client's context (terminate_client, or the daemon quit),
 * as CUDA_ERROR_MPS_CLIENT_TERMINATED would report it. Does not block. */
int gm_sim_mps_client_terminated(const struct gm_sim_mps_client *c);

#endif
