/* The MPS control daemon's event loop: connections, servers, pending clients and shutdown.
 * One thread and one poll(); every peer may die at any moment, so nothing here ever blocks on
 * a peer, and each kind of wait has a deadline. */
#include "gpusim/mps/mps_daemon.h"

#include "common/clock.h"
#include "common/cuda_api.h"
#include "common/parse.h"
#include "common/path.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS        1000000ull
#define FIRST_LINE_MS    2000  /* a peer that says nothing is not a CUDA client */
#define SERVER_START_MS  5000  /* fork, exec and registration take milliseconds */
#define SERVER_STOP_MS   5000  /* then SIGKILL */
#define ANSWER_LINGER_MS 10000 /* a control client that does not read its answer */
#define TICK_MS          100

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}

void gm_sim_mps_dlog(struct gm_sim_mps_daemon *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (d->foreground) {
        va_list cp;
        va_copy(cp, ap);
        gm_sim_mps_vlog(STDERR_FILENO, "Control", d->pid, fmt, cp);
        va_end(cp);
    }
    gm_sim_mps_vlog(d->log_fd, "Control", d->pid, fmt, ap);
    va_end(ap);
}

void gm_sim_mps_slog(struct gm_sim_mps_daemon *d, pid_t server, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gm_sim_mps_vlog(d->server_log_fd, "Server", server, fmt, ap);
    va_end(ap);
}

void gm_sim_mps_reply(struct gm_sim_mps_conn *c, const char *fmt, ...)
{
    if (c->dead)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    char *p = realloc(c->out, c->outlen + (size_t)n + 1);
    if (p == NULL) {
        c->dead = 1; /* an answer cut short would mislead more than none */
        return;
    }
    c->out = p;
    va_start(ap, fmt);
    vsnprintf(c->out + c->outlen, (size_t)n + 1, fmt, ap);
    va_end(ap);
    c->outlen += (size_t)n;
}

static void flush(struct gm_sim_mps_conn *c)
{
    while (!c->dead && c->outoff < c->outlen) {
        ssize_t n =
            send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                c->dead = 1;
            return;
        }
        c->outoff += (size_t)n;
    }
    if (c->outoff == c->outlen) {
        c->outoff = c->outlen = 0;
        if (c->close_after_flush)
            c->dead = 1;
    }
}

/* Answer complete: send it and hang up, giving a slow reader a while. */
static void finish(struct gm_sim_mps_conn *c)
{
    c->close_after_flush = 1;
    c->wait_quit = 0;
    c->wait_server = 0;
    c->since_ns = gm_mono_ns();
    flush(c);
}

struct gm_sim_mps_server *gm_sim_mps_find_server(struct gm_sim_mps_daemon *d, pid_t pid)
{
    for (int i = 0; i < d->nservers; i++)
        if (d->servers[i].pid == pid)
            return &d->servers[i];
    return NULL;
}

static int count_clients(struct gm_sim_mps_daemon *d, pid_t server, int slot)
{
    int n = 0;
    for (int i = 0; i < d->nconns; i++) {
        struct gm_sim_mps_conn *c = d->conns[i];
        if (!c->dead && c->kind == GM_SIM_MPS_CONN_CLIENT && !c->pending && c->server != 0 &&
            (server == 0 || c->server == server) && (slot < 0 || c->slot == slot))
            n++;
    }
    return n;
}

void gm_sim_mps_terminate(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c)
{
    if (c->server != 0)
        gm_sim_mps_slog(d, c->server, "Client %d (pid %d) terminated", c->client_id, (int)c->pid);
    c->server = 0;
    c->pending = 0;
    gm_sim_mps_reply(c, "TERMINATED\n");
    finish(c);
}

static void refuse(struct gm_sim_mps_conn *c, int cuda_error)
{
    c->pending = 0;
    c->server = 0;
    gm_sim_mps_reply(c, "ERR %d\n", cuda_error);
    finish(c);
}

static void admit(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c,
                  struct gm_sim_mps_server *s)
{
    if (count_clients(d, s->pid, c->slot) >= GM_SIM_MPS_MAX_CLIENTS) {
        gm_sim_mps_dlog(d, "Client %d refused: server %d already has %d clients on device %s",
                        (int)c->pid, (int)s->pid, GM_SIM_MPS_MAX_CLIENTS, d->gpu_uuid[c->slot]);
        refuse(c, CUDA_ERROR_MPS_MAX_CLIENTS_REACHED);
        return;
    }
    /* A client can only lower what the server grants. */
    double pct = s->pct;
    if (c->req_pct > 0 && c->req_pct < pct)
        pct = c->req_pct;
    int ipct = (int)floor(pct + 1e-9);
    if (ipct < 1)
        ipct = 1;
    uint64_t mem = s->mem_limit[c->slot];
    if (c->req_mem != 0 && (mem == 0 || c->req_mem < mem))
        mem = c->req_mem;
    c->pending = 0;
    c->server = s->pid;
    c->client_id = s->next_client_id++;
    gm_sim_mps_reply(c, "OK %d %d %" PRIu64 "\n", (int)s->pid, ipct, mem);
    flush(c);
    gm_sim_mps_slog(d, s->pid, "New client %d connected: pid %d, device %d (%s)", c->client_id,
                    (int)c->pid, c->slot, d->gpu_uuid[c->slot]);
}

static void stop_server(struct gm_sim_mps_daemon *d, struct gm_sim_mps_server *s)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    s->started_ns = gm_mono_ns(); /* from now on: the stop deadline */
    gm_sim_mps_dlog(d, "Stopping server %d", (int)s->pid);
    if (s->conn != NULL && !s->conn->dead) {
        gm_sim_mps_reply(s->conn, "QUIT\n");
        flush(s->conn);
    } else {
        kill(s->pid, SIGTERM);
    }
}

/* The server runs as the client's user, as the real daemon starts it. */
static void become(uid_t uid)
{
    if (uid == getuid())
        return;
    if (getuid() != 0)
        _exit(126);
    struct passwd *pw = getpwuid(uid);
    gid_t gid = pw != NULL ? pw->pw_gid : (gid_t)uid;
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        _exit(126);
}

struct gm_sim_mps_server *gm_sim_mps_start_server(struct gm_sim_mps_daemon *d, uid_t uid, char *why,
                                                  size_t len)
{
    if (d->nservers >= GM_SIM_MPS_MAX_SERVERS) {
        snprintf(why, len, "too many servers");
        return NULL;
    }
    if (access(d->server_exe, X_OK) < 0) {
        snprintf(why, len, "cannot execute %s: %s", d->server_exe, strerror(errno));
        return NULL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, len, "fork: %s", strerror(errno));
        return NULL;
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL); /* an ignored signal stays ignored across exec */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        if (d->server_log_fd >= 0) {
            dup2(d->server_log_fd, STDOUT_FILENO);
            dup2(d->server_log_fd, STDERR_FILENO);
        }
        become(uid);
        setenv("CUDA_MPS_PIPE_DIRECTORY", d->pipe_dir, 1);
        setenv("CUDA_MPS_LOG_DIRECTORY", d->log_dir, 1);
        /* argv[0] is what nvidia-smi shows as the process name. */
        execl(d->server_exe, GM_SIM_MPS_SERVER_NAME, (char *)NULL);
        _exit(127);
    }
    struct gm_sim_mps_server *s = &d->servers[d->nservers++];
    memset(s, 0, sizeof(*s));
    s->pid = pid;
    s->uid = uid;
    s->pct = d->default_pct;
    memcpy(s->mem_limit, d->default_mem, sizeof(s->mem_limit));
    s->started_ns = gm_mono_ns();
    gm_sim_mps_log(d->log_fd, "Control", (int)pid, "Starting new server %d for user %u", (int)pid,
                   (unsigned)uid);
    return s;
}

int gm_sim_mps_device_slot(const struct gm_sim_mps_daemon *d, const char *arg)
{
    if (arg == NULL || arg[0] == '\0')
        return -1;
    if (strncmp(arg, "GPU-", 4) == 0) {
        int found = -1;
        for (int i = 0; i < d->ngpus; i++)
            if (strncmp(d->gpu_uuid[i], arg, strlen(arg)) == 0) {
                if (found >= 0)
                    return -1;
                found = i;
            }
        return found;
    }
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno != 0 || *end != '\0' || end == arg || v < 0 || v >= d->ngpus)
        return -1;
    return (int)v;
}

void gm_sim_mps_begin_quit(struct gm_sim_mps_daemon *d, double timeout_s)
{
    if (d->quitting)
        return;
    d->quitting = 1;
    d->quit_deadline_ns = gm_mono_ns() + (uint64_t)(timeout_s * 1e9);
    gm_sim_mps_dlog(d, "Shutting down%s", timeout_s > 0 ? ", waiting for clients to exit" : "");
}

/* ---- connections ---- */

static void lost(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    if (c->kind == GM_SIM_MPS_CONN_CLIENT && c->server != 0) {
        gm_sim_mps_slog(d, c->server, "Client %d disconnected", c->client_id);
    } else if (c->kind == GM_SIM_MPS_CONN_CLIENT && c->pending) {
        gm_sim_mps_dlog(d, "Pending client %d went away", (int)c->pid);
    } else if (c->kind == GM_SIM_MPS_CONN_SERVER) {
        struct gm_sim_mps_server *s = gm_sim_mps_find_server(d, c->pid);
        if (s != NULL && s->conn == c)
            s->conn = NULL;
    } else if (c->kind == GM_SIM_MPS_CONN_UI) {
        gm_sim_mps_dlog(d, "UI closed");
    }
}

static void new_client(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c, const char *args)
{
    int pid, pct;
    unsigned uid;
    char uuid[128];
    unsigned long long mem;
    c->kind = GM_SIM_MPS_CONN_CLIENT;
    if (sscanf(args, "%d %u %127s %d %llu", &pid, &uid, uuid, &pct, &mem) != 5 || pct < 0 ||
        pct > 100) {
        gm_sim_mps_dlog(d, "Client %d sent an invalid request", (int)c->pid);
        refuse(c, CUDA_ERROR_INVALID_VALUE);
        return;
    }
    if (d->quitting) {
        refuse(c, CUDA_ERROR_MPS_CONNECTION_FAILED);
        return;
    }
    if (d->ngpus == 0) {
        refuse(c, CUDA_ERROR_NO_DEVICE);
        return;
    }
    c->slot = 0;
    if (strcmp(uuid, "-") != 0) {
        c->slot = -1;
        for (int i = 0; i < d->ngpus; i++)
            if (strcmp(d->gpu_uuid[i], uuid) == 0)
                c->slot = i;
        if (c->slot < 0) {
            gm_sim_mps_dlog(d, "NEW CLIENT %d from user %u: device %s is not served here",
                            (int)c->pid, (unsigned)c->uid, uuid);
            refuse(c, CUDA_ERROR_INVALID_DEVICE);
            return;
        }
    }
    c->req_pct = pct;
    c->req_mem = mem;
    for (int i = 0; i < d->nservers; i++) {
        struct gm_sim_mps_server *s = &d->servers[i];
        if (s->uid == c->uid && s->ready && !s->stopping) {
            gm_sim_mps_dlog(d, "NEW CLIENT %d from user %u: Server already exists", (int)c->pid,
                            (unsigned)c->uid);
            admit(d, c, s);
            return;
        }
    }
    gm_sim_mps_dlog(d,
                    "NEW CLIENT %d from user %u: Server is not ready, push client to pending list",
                    (int)c->pid, (unsigned)c->uid);
    c->pending = 1;
    c->since_ns = gm_mono_ns();
}

static void new_server(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c)
{
    struct gm_sim_mps_server *s = gm_sim_mps_find_server(d, c->pid);
    c->kind = GM_SIM_MPS_CONN_SERVER;
    if (s == NULL || s->ready) {
        gm_sim_mps_dlog(d, "Process %d is not a server this daemon started", (int)c->pid);
        c->dead = 1;
        return;
    }
    s->ready = 1;
    s->conn = c;
    gm_sim_mps_dlog(d, "NEW SERVER %d: Ready", (int)s->pid);
    if (s->stopping) { /* quit arrived while it started */
        s->stopping = 0;
        stop_server(d, s);
    }
    for (int i = 0; i < d->nconns; i++)
        if (d->conns[i]->wait_server == s->pid)
            finish(d->conns[i]);
}

static void first_line(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c, char *line)
{
    if (strncmp(line, "UI ", 3) == 0 || strcmp(line, "UI") == 0) {
        c->kind = GM_SIM_MPS_CONN_UI;
        gm_sim_mps_dlog(d, "NEW UI");
        char *cmd = line + (line[2] == ' ' ? 3 : 2);
        gm_sim_mps_dlog(d, "Cmd:%s", cmd);
        gm_sim_mps_command(d, c, cmd);
        if (!c->wait_quit && c->wait_server == 0)
            finish(c);
    } else if (strncmp(line, "CLIENT ", 7) == 0) {
        new_client(d, c, line + 7);
    } else if (strncmp(line, "SERVER ", 7) == 0) {
        new_server(d, c);
    } else {
        gm_sim_mps_dlog(d, "User did not send valid credentials");
        c->dead = 1;
    }
}

static void readable(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c)
{
    char buf[GM_SIM_MPS_LINE_MAX];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        lost(d, c);
        return;
    }
    if (c->kind != GM_SIM_MPS_CONN_NEW)
        return; /* nothing more is expected from a peer after its first line */
    size_t room = sizeof(c->in) - 1 - c->inlen;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(c->in + c->inlen, buf, take);
    c->inlen += take;
    c->in[c->inlen] = '\0';
    char *nl = strchr(c->in, '\n');
    if (nl == NULL) {
        if (c->inlen >= sizeof(c->in) - 1)
            c->dead = 1;
        return;
    }
    *nl = '\0';
    first_line(d, c, c->in);
}

static void accept_all(struct gm_sim_mps_daemon *d)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct ucred cred;
        socklen_t cl = sizeof(cred);
        struct gm_sim_mps_conn *c = NULL;
        if (d->nconns < GM_SIM_MPS_MAX_CONNS &&
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
            c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->pid = cred.pid;
        c->uid = cred.uid;
        c->since_ns = gm_mono_ns();
        d->conns[d->nconns++] = c;
        gm_sim_mps_dlog(d, "Accepting connection...");
    }
}

static void sweep(struct gm_sim_mps_daemon *d)
{
    int kept = 0;
    for (int i = 0; i < d->nconns; i++) {
        struct gm_sim_mps_conn *c = d->conns[i];
        if (!c->dead) {
            d->conns[kept++] = c;
            continue;
        }
        for (int j = 0; j < d->nservers; j++)
            if (d->servers[j].conn == c)
                d->servers[j].conn = NULL;
        close(c->fd);
        free(c->out);
        free(c);
    }
    d->nconns = kept;
}

/* ---- servers ---- */

static void server_exited(struct gm_sim_mps_daemon *d, pid_t pid, int status)
{
    struct gm_sim_mps_server *s = gm_sim_mps_find_server(d, pid);
    if (s == NULL)
        return;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    gm_sim_mps_dlog(d, "Server %d exited with status %d", (int)pid, code);
    for (int i = 0; i < d->nconns; i++) {
        struct gm_sim_mps_conn *c = d->conns[i];
        if (c->dead)
            continue;
        if (c->kind == GM_SIM_MPS_CONN_CLIENT && c->server == pid)
            gm_sim_mps_terminate(d, c);
        if (c->wait_server == pid) {
            gm_sim_mps_reply(c, "Server %d failed to start (status %d); see %s/server.log\n",
                             (int)pid, code, d->log_dir);
            finish(c);
        }
        if (c->kind == GM_SIM_MPS_CONN_SERVER && c->pid == pid)
            c->dead = 1;
    }
    /* Pending clients of a server that never came up would only start it again. */
    if (!s->ready)
        for (int i = 0; i < d->nconns; i++) {
            struct gm_sim_mps_conn *c = d->conns[i];
            if (!c->dead && c->pending && c->uid == s->uid)
                refuse(c, CUDA_ERROR_MPS_SERVER_NOT_READY);
        }
    int i = (int)(s - d->servers);
    memmove(&d->servers[i], &d->servers[i + 1], (size_t)(d->nservers - i - 1) * sizeof(*s));
    d->nservers--;
}

static void reap(struct gm_sim_mps_daemon *d)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        server_exited(d, pid, status);
}

/* Pending clients get a server of their user. Like the real daemon without multi-user mode,
 * one user's server runs at a time: another user's clients wait until it has no clients. */
static void schedule(struct gm_sim_mps_daemon *d)
{
    for (int i = 0; i < d->nconns; i++) {
        struct gm_sim_mps_conn *c = d->conns[i];
        if (c->dead || !c->pending)
            continue;
        if (d->quitting) {
            refuse(c, CUDA_ERROR_MPS_CONNECTION_FAILED);
            continue;
        }
        struct gm_sim_mps_server *mine = NULL, *other = NULL;
        int stopping = 0;
        for (int j = 0; j < d->nservers; j++) {
            struct gm_sim_mps_server *s = &d->servers[j];
            if (s->stopping)
                stopping = 1;
            else if (s->uid == c->uid)
                mine = s;
            else
                other = s;
        }
        if (mine != NULL) {
            if (mine->ready)
                admit(d, c, mine);
            continue;
        }
        if (other != NULL) {
            if (other->ready && count_clients(d, other->pid, -1) == 0)
                stop_server(d, other);
            continue;
        }
        if (stopping)
            continue;
        char why[256];
        if (gm_sim_mps_start_server(d, c->uid, why, sizeof(why)) == NULL) {
            gm_sim_mps_dlog(d, "Cannot start a server for user %u: %s", (unsigned)c->uid, why);
            refuse(c, CUDA_ERROR_MPS_CONNECTION_FAILED);
        }
    }
}

static void timeouts(struct gm_sim_mps_daemon *d)
{
    uint64_t now = gm_mono_ns();
    for (int i = 0; i < d->nconns; i++) {
        struct gm_sim_mps_conn *c = d->conns[i];
        if (c->dead)
            continue;
        uint64_t age_ms = (now - c->since_ns) / NS_PER_MS;
        if (c->kind == GM_SIM_MPS_CONN_NEW && age_ms > FIRST_LINE_MS)
            c->dead = 1;
        else if (c->close_after_flush && age_ms > ANSWER_LINGER_MS)
            c->dead = 1;
        else if (c->pending && age_ms > GM_SIM_MPS_IO_TIMEOUT_MS)
            refuse(c, CUDA_ERROR_MPS_SERVER_NOT_READY);
    }
    for (int i = 0; i < d->nservers; i++) {
        struct gm_sim_mps_server *s = &d->servers[i];
        uint64_t age_ms = (now - s->started_ns) / NS_PER_MS;
        if ((!s->ready && !s->stopping && age_ms > SERVER_START_MS) ||
            (s->stopping && age_ms > SERVER_STOP_MS)) {
            gm_sim_mps_dlog(d, "Server %d did not %s in time, killing it", (int)s->pid,
                            s->stopping ? "stop" : "start");
            kill(s->pid, SIGKILL);
            s->stopping = 1;
            s->started_ns = now;
        }
    }
}

static void progress_quit(struct gm_sim_mps_daemon *d)
{
    if (!d->quitting || d->stopping_servers)
        return;
    if (count_clients(d, 0, -1) > 0 && gm_mono_ns() < d->quit_deadline_ns)
        return;
    for (int i = 0; i < d->nconns; i++) {
        struct gm_sim_mps_conn *c = d->conns[i];
        if (!c->dead && c->kind == GM_SIM_MPS_CONN_CLIENT && (c->server != 0 || c->pending))
            gm_sim_mps_terminate(d, c);
    }
    for (int i = 0; i < d->nservers; i++)
        stop_server(d, &d->servers[i]);
    d->stopping_servers = 1;
}

/* ---- setup and loop ---- */

static int fail(char *why, size_t len, const char *what, const char *path)
{
    snprintf(why, len, "%s %s: %s", what, path, strerror(errno));
    return -1;
}

/* dir/name into buf, or the reason in why: a cut path would name another file. */
static int path_or_why(char *why, size_t len, char *buf, size_t size, const char *dir,
                       const char *name)
{
    struct gm_error err;
    if (gm_path(&err, buf, size, "%s/%s", dir, name) == 0)
        return 0;
    snprintf(why, len, "%s", err.msg);
    return -1;
}

/* dir and its parents, then its canonical name into out. */
static int make_dir(const char *what, const char *dir, char *out, char *why, size_t len)
{
    struct gm_error err;
    if (gm_mkdir_p(dir, 0755, &err) < 0) {
        snprintf(why, len, "cannot create %s %s: %s", what, dir, err.msg);
        return -1;
    }
    if (realpath(dir, out) == NULL)
        return fail(why, len, "cannot resolve", dir);
    return 0;
}

int gm_sim_mps_start_delay(int *ms, char *why, size_t len)
{
    *ms = 0;
    const char *v = getenv(GM_SIM_MPS_START_DELAY_ENV);
    if (v == NULL || v[0] == '\0')
        return 0;
    struct gm_error err;
    long long n;
    if (gm_parse_int(v, 0, GM_SIM_MPS_START_DELAY_MAX_MS, &n, GM_SIM_MPS_START_DELAY_ENV, &err) <
        0) {
        snprintf(why, len, "%s", err.msg);
        return -1;
    }
    *ms = (int)n;
    return 0;
}

static int resolve_gpus(struct gm_sim_mps_daemon *d, char *why, size_t len)
{
    struct gm_sim_state *st;
    struct gm_error err;
    gm_error_clear(&err);
    if (gm_sim_attach(&st, &err) < 0) {
        snprintf(why, len, "%s", err.msg);
        return -1;
    }
    int idx[GM_SIM_MAX_GPUS];
    d->ngpus = gm_sim_visible_gpus(st, getenv("CUDA_VISIBLE_DEVICES"), idx, GM_SIM_MAX_GPUS);
    for (int i = 0; i < d->ngpus; i++) {
        d->gpu_index[i] = idx[i];
        snprintf(d->gpu_uuid[i], sizeof(d->gpu_uuid[i]), "%s", st->gpus[idx[i]].info.uuid);
        snprintf(d->gpu_name[i], sizeof(d->gpu_name[i]), "%s", st->gpus[idx[i]].info.name);
    }
    int version = st->cuda_version_int;
    gm_sim_detach(st);
    return version;
}

static int server_exe(struct gm_sim_mps_daemon *d, char *why, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0)
        return fail(why, len, "cannot read", "/proc/self/exe");
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash != NULL)
        *slash = '\0';
    return path_or_why(why, len, d->server_exe, sizeof(d->server_exe), self,
                       GM_SIM_MPS_SERVER_NAME);
}

static int open_log(const char *dir, const char *name, char *why, size_t len)
{
    char path[PATH_MAX];
    if (path_or_why(why, len, path, sizeof(path), dir, name) < 0)
        return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        fail(why, len, "cannot open", path);
    return fd;
}

static double default_pct_from_env(void)
{
    /* As the real daemon: its own CUDA_MPS_ACTIVE_THREAD_PERCENTAGE is the default. */
    const char *v = getenv("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE");
    if (v == NULL || v[0] == '\0')
        return 100.0;
    char *end;
    double p = strtod(v, &end);
    return *end == '\0' && isfinite(p) && p > 0 && p <= 100 ? p : 100.0;
}

int gm_sim_mps_daemon_setup(struct gm_sim_mps_daemon *d, char *why, size_t len)
{
    d->pid = getpid();
    d->listen_fd = d->pid_fd = d->log_fd = d->server_log_fd = -1;
    const char *pipe_dir = gm_sim_mps_pipe_dir(), *log_dir = gm_sim_mps_log_dir();
    if (make_dir("pipe directory", pipe_dir, d->pipe_dir, why, len) < 0 ||
        make_dir("log directory", log_dir, d->log_dir, why, len) < 0)
        return -1;
    const char *pd = d->pipe_dir;
    if (path_or_why(why, len, d->pid_path, sizeof(d->pid_path), pd, GM_SIM_MPS_PID_FILE) < 0 ||
        path_or_why(why, len, d->sock_path, sizeof(d->sock_path), pd, GM_SIM_MPS_SOCKET) < 0)
        return -1;
    /* Test-only (GPUSIM_MPS_START_DELAY_MS): a daemon that is slow to come up. Nothing of it is
     * visible meanwhile, neither the pid file nor the socket. */
    if (d->start_delay_ms > 0)
        gm_sleep_until_ns(gm_mono_ns() + (uint64_t)d->start_delay_ms * NS_PER_MS);

    d->pid_fd = open(d->pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (d->pid_fd < 0)
        return fail(why, len, "cannot open", d->pid_path);
    /* The lock, not the file, says a daemon runs: it dies with its holder, so a daemon killed
     * with SIGKILL leaves nothing that blocks the next one. */
    if (flock(d->pid_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) {
            snprintf(why, len, "%s", GM_SIM_MPS_ALREADY_RUNNING);
            return -2;
        }
        return fail(why, len, "cannot lock", d->pid_path);
    }
    int version = resolve_gpus(d, why, len);
    if (version < 0 || server_exe(d, why, len) < 0)
        return -1;
    d->default_pct = default_pct_from_env();
    d->log_fd = open_log(d->log_dir, "control.log", why, len);
    if (d->log_fd < 0)
        return -1;
    d->server_log_fd = open_log(d->log_dir, "server.log", why, len);
    if (d->server_log_fd < 0)
        return -1;

    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(d->sock_path) >= sizeof(sa.sun_path)) {
        snprintf(why, len, "socket path %s is longer than %zu bytes", d->sock_path,
                 sizeof(sa.sun_path) - 1);
        return -1;
    }
    memcpy(sa.sun_path, d->sock_path, strlen(d->sock_path) + 1);
    unlink(d->sock_path); /* left by a daemon that was killed; we hold the lock */
    d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (d->listen_fd < 0 || bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return fail(why, len, "cannot bind", d->sock_path);
    /* Workloads of every user are clients, as with the real daemon's pipes. */
    chmod(d->sock_path, 0777);
    if (listen(d->listen_fd, 128) < 0)
        return fail(why, len, "cannot listen on", d->sock_path);

    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)d->pid);
    if (ftruncate(d->pid_fd, 0) < 0 || pwrite(d->pid_fd, pid, (size_t)n, 0) != n)
        return fail(why, len, "cannot write", d->pid_path);

    struct sigaction sa_term;
    memset(&sa_term, 0, sizeof(sa_term));
    sa_term.sa_handler = on_term;
    sigaction(SIGTERM, &sa_term, NULL);
    sigaction(SIGINT, &sa_term, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);

    gm_sim_mps_dlog(d, "Starting control daemon using socket %s", d->sock_path);
    gm_sim_mps_dlog(d,
                    "To connect CUDA applications to this daemon, set env "
                    "CUDA_MPS_PIPE_DIRECTORY=%s",
                    d->pipe_dir);
    gm_sim_mps_dlog(d, "CUDA MPS Control binary version: %d", version);
    for (int i = 0; i < d->ngpus; i++)
        gm_sim_mps_dlog(d, "Device %d: %s (%s)", i, d->gpu_name[i], d->gpu_uuid[i]);
    if (d->ngpus == 0)
        gm_sim_mps_dlog(d, "No visible device: CUDA_VISIBLE_DEVICES names none");
    return 0;
}

static void teardown(struct gm_sim_mps_daemon *d)
{
    /* Everything a caller of quit may look at is gone before its answer, the hang-up, comes. */
    if (d->listen_fd >= 0) {
        unlink(d->sock_path);
        close(d->listen_fd);
    }
    if (d->pid_fd >= 0) {
        unlink(d->pid_path);
        close(d->pid_fd); /* releases the lock: a new daemon may start */
    }
    gm_sim_mps_dlog(d, "Exit");
    if (d->log_fd >= 0)
        close(d->log_fd);
    if (d->server_log_fd >= 0)
        close(d->server_log_fd);
    for (int i = 0; i < d->nconns; i++) {
        flush(d->conns[i]);
        d->conns[i]->dead = 1;
    }
    sweep(d);
}

int gm_sim_mps_daemon_run(struct gm_sim_mps_daemon *d)
{
    static struct pollfd pfd[1 + GM_SIM_MPS_MAX_CONNS];
    static struct gm_sim_mps_conn *pc[1 + GM_SIM_MPS_MAX_CONNS];
    for (;;) {
        if (got_term && !d->quitting)
            gm_sim_mps_begin_quit(d, 0);
        reap(d);
        timeouts(d);
        schedule(d);
        progress_quit(d);
        if (d->stopping_servers && d->nservers == 0) {
            for (int i = 0; i < d->nconns; i++)
                if (d->conns[i]->wait_quit)
                    finish(d->conns[i]);
            break;
        }
        for (int i = 0; i < d->nconns; i++)
            flush(d->conns[i]);
        sweep(d);
        int n = 0;
        pfd[n] = (struct pollfd){.fd = d->listen_fd, .events = POLLIN};
        pc[n++] = NULL;
        for (int i = 0; i < d->nconns; i++) {
            struct gm_sim_mps_conn *c = d->conns[i];
            short ev = POLLIN;
            if (c->outoff < c->outlen)
                ev |= POLLOUT;
            pfd[n] = (struct pollfd){.fd = c->fd, .events = ev};
            pc[n++] = c;
        }
        int rc = poll(pfd, (nfds_t)n, TICK_MS);
        if (rc <= 0)
            continue;
        if (pfd[0].revents & POLLIN)
            accept_all(d);
        for (int i = 1; i < n; i++) {
            struct gm_sim_mps_conn *c = pc[i];
            if (c->dead || pfd[i].revents == 0)
                continue;
            if (pfd[i].revents & POLLOUT)
                flush(c);
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                readable(d, c);
        }
    }
    teardown(d);
    return 0;
}
