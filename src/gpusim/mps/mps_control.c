/* nvidia-cuda-mps-control for gpusim: with -d (or -f) the control daemon of one pipe directory;
 * without, the control client that sends each line of stdin to it and prints the answers. */
#include "gpusim/mps/mps_daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "Usage: nvidia-cuda-mps-control [-d | -f]\n"
               "  -d  start the control daemon in the background\n"
               "  -f  start the control daemon in the foreground\n"
               "Without options, commands are read from stdin, one per line, and sent to the\n"
               "daemon of $CUDA_MPS_PIPE_DIRECTORY (default " GM_SIM_MPS_DEFAULT_PIPE ").\n");
}

/* What the setup reports to the waiting parent: status byte, then the reason. */
static void report(int fd, int status, const char *why)
{
    char buf[1100];
    int n = snprintf(buf, sizeof(buf), "%c%s", status, why);
    if (n > (int)sizeof(buf) - 1)
        n = (int)sizeof(buf) - 1;
    ssize_t w = write(fd, buf, (size_t)n);
    (void)w;
}

static void detach_stdio(void)
{
    int null = open("/dev/null", O_RDWR);
    if (null < 0)
        return;
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO)
        close(null);
}

static void print_setup_error(int rc, const char *why)
{
    /* The real tool says "already running" on stdout, where scripts look for it. */
    if (rc == -2)
        printf("%s\n", why);
    else
        fprintf(stderr, "nvidia-cuda-mps-control: %s\n", why);
}

static int run_daemon(int foreground)
{
    static struct gm_sim_mps_daemon d;
    char why[1024] = "";
    if (gm_sim_mps_start_delay(&d.start_delay_ms, why, sizeof(why)) < 0) {
        fprintf(stderr, "nvidia-cuda-mps-control: %s\n", why);
        return 1;
    }
    if (foreground) {
        d.foreground = 1;
        int rc = gm_sim_mps_daemon_setup(&d, why, sizeof(why));
        if (rc < 0) {
            print_setup_error(rc, why);
            return 1;
        }
        return gm_sim_mps_daemon_run(&d);
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        perror("nvidia-cuda-mps-control: pipe");
        return 1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("nvidia-cuda-mps-control: fork");
        return 1;
    }
    if (pid == 0) {
        close(p[0]);
        setsid();
        int rc = gm_sim_mps_daemon_setup(&d, why, sizeof(why));
        if (rc < 0) {
            report(p[1], rc == -2 ? 'A' : 'E', why);
            _exit(1);
        }
        if (chdir("/") < 0)
            (void)0; /* only keeps the daemon off a directory someone may unmount */
        detach_stdio();
        report(p[1], 'K', "");
        close(p[1]);
        return gm_sim_mps_daemon_run(&d);
    }
    close(p[1]);
    char buf[1100];
    size_t got = 0;
    /* The daemon reports once it listens; it cannot take long (but for a test's start delay),
     * and it must not hang us. */
    for (;;) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int rc = poll(&pf, 1, GM_SIM_MPS_IO_TIMEOUT_MS + d.start_delay_ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        ssize_t n = read(p[0], buf + got, sizeof(buf) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == sizeof(buf) - 1)
            break;
    }
    close(p[0]);
    buf[got] = '\0';
    if (got > 0 && buf[0] == 'K')
        return 0;
    if (got > 0) {
        waitpid(pid, NULL, 0);
        print_setup_error(buf[0] == 'A' ? -2 : -1, buf + 1);
        return 1;
    }
    fprintf(stderr, "nvidia-cuda-mps-control: the daemon did not start\n");
    return 1;
}

/* One command, one connection: the daemon answers and hangs up. */
static int send_command(int fd, const char *cmd)
{
    char line[GM_SIM_MPS_LINE_MAX];
    int n = snprintf(line, sizeof(line), "UI %s\n", cmd);
    if (n >= (int)sizeof(line)) {
        fprintf(stderr, "nvidia-cuda-mps-control: command too long\n");
        close(fd);
        return 0; /* refused here, as the daemon would refuse it */
    }
    if (gm_sim_mps_send(fd, line, (size_t)n) < 0) {
        close(fd);
        return -1;
    }
    /* quit -t SEC answers only once the daemon is done waiting for its clients. */
    double extra = 0;
    if (strncmp(cmd, "quit", 4) == 0) {
        const char *t = strstr(cmd, "-t");
        if (t != NULL)
            extra = strtod(t + 2, NULL);
        if (extra < 0 || extra > 86400)
            extra = 0;
    }
    int timeout = GM_SIM_MPS_IO_TIMEOUT_MS + (int)(extra * 1000);
    char buf[4096];
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int rc = poll(&pf, 1, timeout);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0) {
            fprintf(stderr, "nvidia-cuda-mps-control: no answer from the daemon\n");
            close(fd);
            return -1;
        }
        ssize_t r = rc < 0 ? -1 : read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        fwrite(buf, 1, (size_t)r, stdout);
    }
    fflush(stdout);
    close(fd);
    return 0;
}

static int run_client(void)
{
    const char *pipe_dir = gm_sim_mps_pipe_dir();
    int fd = gm_sim_mps_connect(pipe_dir);
    if (fd < 0) {
        printf("%s\n", GM_SIM_MPS_NO_DAEMON);
        return 1;
    }
    char line[GM_SIM_MPS_LINE_MAX];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *cmd = line + strspn(line, " \t");
        if (cmd[0] == '\0')
            continue;
        if (fd < 0)
            fd = gm_sim_mps_connect(pipe_dir);
        if (fd < 0 || send_command(fd, cmd) < 0) {
            printf("%s\n", GM_SIM_MPS_NO_DAEMON);
            return 1;
        }
        fd = -1;
    }
    if (fd >= 0)
        close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 1)
        return run_client();
    if (argc == 2 && strcmp(argv[1], "-d") == 0)
        return run_daemon(0);
    if (argc == 2 && strcmp(argv[1], "-f") == 0)
        return run_daemon(1);
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 1;
}
