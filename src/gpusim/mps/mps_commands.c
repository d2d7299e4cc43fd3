/* The control daemon's command interpreter: what `echo CMD | nvidia-cuda-mps-control` answers.
 * Limits set here apply to servers and clients created afterwards, as in MPS. */
#include "gpusim/mps/mps_daemon.h"

#include "common/parse.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ARGS 8

static int split(char *line, char **argv)
{
    int n = 0;
    for (char *tok = strtok(line, " \t\r"); tok != NULL && n < MAX_ARGS;
         tok = strtok(NULL, " \t\r"))
        argv[n++] = tok;
    return n;
}

static int parse_pct(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 || v > 100)
        return -1;
    *out = v;
    return 0;
}

static int parse_pid(const char *s, pid_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > INT32_MAX)
        return -1;
    *out = (pid_t)v;
    return 0;
}

static int parse_limit(const char *s, uint64_t *out)
{
    if (strcmp(s, "0") == 0) {
        *out = 0; /* no limit */
        return 0;
    }
    return gm_parse_size(s, out, "limit", NULL);
}

/* In the unit the limit was most likely given in, as the commands take it. */
static void format_limit(uint64_t v, char *buf, size_t len)
{
    const uint64_t k = 1024;
    if (v == 0)
        snprintf(buf, len, "0");
    else if (v % (k * k * k) == 0)
        snprintf(buf, len, "%" PRIu64 "G", v / (k * k * k));
    else if (v % (k * k) == 0)
        snprintf(buf, len, "%" PRIu64 "M", v / (k * k));
    else if (v % k == 0)
        snprintf(buf, len, "%" PRIu64 "K", v / k);
    else
        snprintf(buf, len, "%" PRIu64, v);
}

static struct gm_sim_mps_server *server_arg(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c,
                                            const char *s)
{
    pid_t pid;
    struct gm_sim_mps_server *srv = NULL;
    if (parse_pid(s, &pid) == 0)
        srv = gm_sim_mps_find_server(d, pid);
    if (srv == NULL || srv->stopping)
        gm_sim_mps_reply(c, "Server %s not found\n", s);
    return srv != NULL && !srv->stopping ? srv : NULL;
}

static int device_arg(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c, const char *s)
{
    int slot = gm_sim_mps_device_slot(d, s);
    if (slot < 0)
        gm_sim_mps_reply(c, "Invalid device %s: this daemon serves %d device%s\n", s, d->ngpus,
                         d->ngpus == 1 ? "" : "s");
    return slot;
}

static int limit_arg(struct gm_sim_mps_conn *c, const char *s, uint64_t *out)
{
    if (parse_limit(s, out) == 0)
        return 0;
    gm_sim_mps_reply(c, "Invalid memory limit %s: expected a size such as 512M or 10G\n", s);
    return -1;
}

static int pct_arg(struct gm_sim_mps_conn *c, const char *s, double *out)
{
    if (parse_pct(s, out) == 0)
        return 0;
    gm_sim_mps_reply(c,
                     "Invalid active thread percentage %s: must be greater than 0 and at most "
                     "100\n",
                     s);
    return -1;
}

static void start_server(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c, int argc,
                         char **argv)
{
    char *end = NULL;
    long uid = -1;
    if (argc == 3 && strcmp(argv[1], "-uid") == 0) {
        errno = 0;
        uid = strtol(argv[2], &end, 10);
        if (errno != 0 || *end != '\0' || end == argv[2] || uid < 0 || uid > INT32_MAX)
            uid = -1;
    }
    if (uid < 0) {
        gm_sim_mps_reply(c, "Usage: start_server -uid <user id>\n");
        return;
    }
    if (d->quitting) {
        gm_sim_mps_reply(c, "The control daemon is shutting down\n");
        return;
    }
    for (int i = 0; i < d->nservers; i++) {
        struct gm_sim_mps_server *s = &d->servers[i];
        if (s->stopping)
            continue;
        if (s->uid != (uid_t)uid) {
            gm_sim_mps_reply(c, "Server %d of user %u is running; it must exit first\n",
                             (int)s->pid, (unsigned)s->uid);
            return;
        }
        if (!s->ready)
            c->wait_server = s->pid;
        return;
    }
    char why[256];
    struct gm_sim_mps_server *s = gm_sim_mps_start_server(d, (uid_t)uid, why, sizeof(why));
    if (s == NULL)
        gm_sim_mps_reply(c, "Cannot start a server for user %ld: %s\n", uid, why);
    else
        c->wait_server = s->pid; /* answered once it is ready or has failed */
}

static int has_pid(pid_t *seen, int n, pid_t pid)
{
    for (int i = 0; i < n; i++)
        if (seen[i] == pid)
            return 1;
    return 0;
}

static void client_list(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c,
                        struct gm_sim_mps_server *s)
{
    pid_t seen[GM_SIM_MPS_MAX_CONNS];
    int n = 0;
    for (int i = 0; i < d->nconns; i++) {
        struct gm_sim_mps_conn *k = d->conns[i];
        if (!k->dead && k->kind == GM_SIM_MPS_CONN_CLIENT && k->server == s->pid &&
            !has_pid(seen, n, k->pid)) {
            seen[n++] = k->pid;
            gm_sim_mps_reply(c, "%d\n", (int)k->pid);
        }
    }
}

static void terminate_client(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c,
                             struct gm_sim_mps_server *s, const char *arg)
{
    pid_t pid;
    int found = 0;
    if (parse_pid(arg, &pid) == 0)
        for (int i = 0; i < d->nconns; i++) {
            struct gm_sim_mps_conn *k = d->conns[i];
            if (!k->dead && k->kind == GM_SIM_MPS_CONN_CLIENT && k->server == s->pid &&
                k->pid == pid) {
                gm_sim_mps_terminate(d, k);
                found = 1;
            }
        }
    if (!found)
        gm_sim_mps_reply(c, "Client %s not found on server %d\n", arg, (int)s->pid);
}

static void ns_of(pid_t pid, char *buf, size_t len)
{
    char path[64], link[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    snprintf(buf, len, "-");
    if (n > 0) {
        link[n] = '\0';
        const char *open = strchr(link, '[');
        if (open != NULL)
            snprintf(buf, len, "%.*s", (int)strcspn(open + 1, "]"), open + 1);
    }
}

static void command_of(pid_t pid, char *buf, size_t len)
{
    if (gm_sim_proc_name((uint32_t)pid, buf, len) < 0)
        snprintf(buf, len, "-");
}

static void ps(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c, pid_t only)
{
    char ns[32], cmd[256];
    gm_sim_mps_reply(c, "%-8s %-4s %-8s %-40s %-11s %s\n", "PID", "ID", "SERVER", "DEVICE",
                     "NAMESPACE", "COMMAND");
    for (int i = 0; i < d->nservers; i++) {
        struct gm_sim_mps_server *s = &d->servers[i];
        if (only != 0 && s->pid != only)
            continue;
        ns_of(s->pid, ns, sizeof(ns));
        gm_sim_mps_reply(c, "%-8d %-4s %-8s %-40s %-11s %s\n", (int)s->pid, "-", "-",
                         d->ngpus > 0 ? d->gpu_uuid[0] : "-", ns, GM_SIM_MPS_SERVER_NAME);
        for (int j = 0; j < d->nconns; j++) {
            struct gm_sim_mps_conn *k = d->conns[j];
            if (k->dead || k->kind != GM_SIM_MPS_CONN_CLIENT || k->server != s->pid)
                continue;
            ns_of(k->pid, ns, sizeof(ns));
            command_of(k->pid, cmd, sizeof(cmd));
            gm_sim_mps_reply(c, "%-8d %-4d %-8d %-40s %-11s %s\n", (int)k->pid, k->client_id,
                             (int)s->pid, d->gpu_uuid[k->slot], ns, cmd);
        }
    }
}

static int want(struct gm_sim_mps_conn *c, int argc, int n, const char *usage)
{
    if (argc == n)
        return 1;
    gm_sim_mps_reply(c, "Usage: %s\n", usage);
    return 0;
}

void gm_sim_mps_command(struct gm_sim_mps_daemon *d, struct gm_sim_mps_conn *c, char *line)
{
    char *argv[MAX_ARGS];
    int argc = split(line, argv);
    if (argc == 0)
        return;
    const char *cmd = argv[0];
    struct gm_sim_mps_server *s;
    double pct;
    uint64_t limit;
    char buf[32];
    int slot;

    if (strcmp(cmd, "get_server_list") == 0) {
        for (int i = 0; i < d->nservers; i++)
            gm_sim_mps_reply(c, "%d\n", (int)d->servers[i].pid);
    } else if (strcmp(cmd, "start_server") == 0) {
        start_server(d, c, argc, argv);
    } else if (strcmp(cmd, "get_client_list") == 0) {
        if (want(c, argc, 2, "get_client_list <server PID>") && (s = server_arg(d, c, argv[1])))
            client_list(d, c, s);
    } else if (strcmp(cmd, "quit") == 0) {
        double t = 0;
        char *end = NULL;
        if (argc == 3 && strcmp(argv[1], "-t") == 0)
            t = strtod(argv[2], &end);
        if (argc == 2 || argc > 3 ||
            (argc == 3 && (end == argv[2] || *end != '\0' || !isfinite(t) || t < 0 || t > 86400))) {
            gm_sim_mps_reply(c, "Usage: quit [-t <timeout in seconds>]\n");
            return;
        }
        gm_sim_mps_begin_quit(d, t);
        c->wait_quit = 1;
    } else if (strcmp(cmd, "set_default_active_thread_percentage") == 0) {
        if (want(c, argc, 2, "set_default_active_thread_percentage <percentage>") &&
            pct_arg(c, argv[1], &pct) == 0) {
            d->default_pct = pct;
            gm_sim_mps_reply(c, "%.1f\n", pct);
        }
    } else if (strcmp(cmd, "get_default_active_thread_percentage") == 0) {
        gm_sim_mps_reply(c, "%.1f\n", d->default_pct);
    } else if (strcmp(cmd, "set_active_thread_percentage") == 0) {
        if (want(c, argc, 3, "set_active_thread_percentage <server PID> <percentage>") &&
            (s = server_arg(d, c, argv[1])) && pct_arg(c, argv[2], &pct) == 0) {
            s->pct = pct;
            gm_sim_mps_reply(c, "%.1f\n", pct);
        }
    } else if (strcmp(cmd, "get_active_thread_percentage") == 0) {
        if (want(c, argc, 2, "get_active_thread_percentage <server PID>") &&
            (s = server_arg(d, c, argv[1])))
            gm_sim_mps_reply(c, "%.1f\n", s->pct);
    } else if (strcmp(cmd, "set_default_device_pinned_mem_limit") == 0) {
        if (want(c, argc, 3, "set_default_device_pinned_mem_limit <device> <limit>") &&
            (slot = device_arg(d, c, argv[1])) >= 0 && limit_arg(c, argv[2], &limit) == 0)
            d->default_mem[slot] = limit;
    } else if (strcmp(cmd, "get_default_device_pinned_mem_limit") == 0) {
        if (want(c, argc, 2, "get_default_device_pinned_mem_limit <device>") &&
            (slot = device_arg(d, c, argv[1])) >= 0) {
            format_limit(d->default_mem[slot], buf, sizeof(buf));
            gm_sim_mps_reply(c, "%s\n", buf);
        }
    } else if (strcmp(cmd, "set_device_pinned_mem_limit") == 0) {
        if (want(c, argc, 4, "set_device_pinned_mem_limit <server PID> <device> <limit>") &&
            (s = server_arg(d, c, argv[1])) && (slot = device_arg(d, c, argv[2])) >= 0 &&
            limit_arg(c, argv[3], &limit) == 0)
            s->mem_limit[slot] = limit;
    } else if (strcmp(cmd, "get_device_pinned_mem_limit") == 0) {
        if (want(c, argc, 3, "get_device_pinned_mem_limit <server PID> <device>") &&
            (s = server_arg(d, c, argv[1])) && (slot = device_arg(d, c, argv[2])) >= 0) {
            format_limit(s->mem_limit[slot], buf, sizeof(buf));
            gm_sim_mps_reply(c, "%s\n", buf);
        }
    } else if (strcmp(cmd, "terminate_client") == 0) {
        if (want(c, argc, 3, "terminate_client <server PID> <client PID>") &&
            (s = server_arg(d, c, argv[1])))
            terminate_client(d, c, s, argv[2]);
    } else if (strcmp(cmd, "ps") == 0) {
        pid_t only = 0;
        if (argc == 3 && strcmp(argv[1], "-p") == 0) {
            if (parse_pid(argv[2], &only) < 0) {
                gm_sim_mps_reply(c, "Usage: ps [-p <server PID>]\n");
                return;
            }
        } else if (argc != 1) {
            gm_sim_mps_reply(c, "Usage: ps [-p <server PID>]\n");
            return;
        }
        ps(d, c, only);
    } else {
        gm_sim_mps_reply(c, "Unrecognized command: %s\n", cmd);
    }
}
