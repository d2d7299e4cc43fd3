/* gpusim's MPS control daemon: its state, shared by the event loop (mps_daemon.c) and the
 * command interpreter (mps_commands.c). Single-threaded: everything runs in the loop. */
#ifndef GM_GPUSIM_MPS_DAEMON_H
#define GM_GPUSIM_MPS_DAEMON_H

#include "gpusim/mps/mps_proto.h"
#include "gpusim/state/state.h"

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#define GM_SIM_MPS_MAX_CONNS   512
#define GM_SIM_MPS_MAX_SERVERS 8

enum gm_sim_mps_conn_kind {
    GM_SIM_MPS_CONN_NEW, /* has not sent its first line yet */
    GM_SIM_MPS_CONN_UI,
    GM_SIM_MPS_CONN_CLIENT,
    GM_SIM_MPS_CONN_SERVER,
};

struct gm_sim_mps_conn {
    int fd;
    enum gm_sim_mps_conn_kind kind;
    pid_t pid; /* SO_PEERCRED */
    uid_t uid;
    uint64_t since_ns; /* accepted, or queued as a pending client */
    char in[GM_SIM_MPS_LINE_MAX];
    size_t inlen;
    char *out;
    size_t outlen, outoff;
    int close_after_flush;
    int dead;
    /* A UI connection whose answer waits for an event: the quit to finish, or a server. */
    int wait_quit;
    pid_t wait_server;
    /* CUDA clients */
    int pending;   /* waiting for a server of its user */
    int slot;      /* index into the daemon's visible GPUs */
    pid_t server;  /* serving server, once admitted */
    int client_id; /* the server's number for it */
    int req_pct;   /* 0 = none */
    uint64_t req_mem;
};

struct gm_sim_mps_server {
    pid_t pid;
    uid_t uid;
    int ready;
    int stopping;
    struct gm_sim_mps_conn *conn; /* its registration, once ready */
    double pct;
    uint64_t mem_limit[GM_SIM_MAX_GPUS]; /* per visible GPU, 0 = none */
    int next_client_id;
    uint64_t started_ns;
};

struct gm_sim_mps_daemon {
    char pipe_dir[PATH_MAX];
    char log_dir[PATH_MAX];
    char sock_path[PATH_MAX];
    char pid_path[PATH_MAX];
    char server_exe[PATH_MAX];
    int listen_fd;
    int pid_fd;
    int log_fd;         /* control.log */
    int server_log_fd;  /* server.log, handed to each server as its stderr */
    int foreground;     /* -f: the log also goes to stderr */
    int start_delay_ms; /* test-only: GPUSIM_MPS_START_DELAY_MS */
    pid_t pid;

    int ngpus; /* the GPUs of CUDA_VISIBLE_DEVICES, in its order */
    int gpu_index[GM_SIM_MAX_GPUS];
    char gpu_uuid[GM_SIM_MAX_GPUS][96];
    char gpu_name[GM_SIM_MAX_GPUS][96];

    double default_pct;
    uint64_t default_mem[GM_SIM_MAX_GPUS];

    struct gm_sim_mps_conn *conns[GM_SIM_MPS_MAX_CONNS];
    int nconns;
    struct gm_sim_mps_server servers[GM_SIM_MPS_MAX_SERVERS];
    int nservers;

    int quitting;
    int stopping_servers;
    uint64_t quit_deadline_ns;
    uint64_t stop_deadline_ns;
};

/* mps_daemon.c */
void gm_sim_mps_dlog(struct gm_sim_mps_daemon *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void gm_sim_mps_slog(struct gm_sim_mps_daemon *d, pid_t server, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Queue text for a connection; it goes out as the socket takes it. */
void gm_sim_mps_reply(struct gm_sim_mps_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
struct gm_sim_mps_server *gm_sim_mps_find_server(struct gm_sim_mps_daemon *d, pid_t pid);
/* Starts a server for uid; NULL with a reason in why when it cannot. */
struct gm_sim_mps_server *gm_sim_mps_start_server(struct gm_sim_mps_daemon *d, uid_t uid, char *why,
                                                  size_t len);
/* Ends a client's context: tells it, then forgets it. */
void gm_sim_mps_terminate(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c);
/* Begins the shutdown: clients get up to timeout_s to leave (0: none), then the servers stop. */
void gm_sim_mps_begin_quit(struct gm_sim_mps_daemon *d, double timeout_s);
/* Resolves a device argument (index among the visible GPUs, or a UUID or its unique prefix). */
int gm_sim_mps_device_slot(const struct gm_sim_mps_daemon *d, const char *arg);

/* mps_commands.c: answers one control-client command line on c. */
void gm_sim_mps_command(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c, char *line);

/* Test-only: GPUSIM_MPS_START_DELAY_MS makes `nvidia-cuda-mps-control -d` (and -f) wait that
 * long before it creates its pid file and socket, so that callers can be tested against an MPS
 * start that takes a while. Reads it into ms (0 when unset); -1 with why for a bad value. */
#define GM_SIM_MPS_START_DELAY_ENV    "GPUSIM_MPS_START_DELAY_MS"
#define GM_SIM_MPS_START_DELAY_MAX_MS 60000
int gm_sim_mps_start_delay(int *ms, char *why, size_t len);

/* mps_daemon.c: sets up d (lock, socket, log) and runs the loop; returns the exit status. */
int gm_sim_mps_daemon_setup(struct gm_sim_mps_daemon *d, char *why, size_t len);
int gm_sim_mps_daemon_run(struct gm_sim_mps_daemon *d);

#endif
