/* The HTTP client and the verbs against a stand-in daemon that plays back canned answers. */
#include "cli/cli.h"
#include "cli/client.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ANSWERS 4

TestSuite(client, .timeout = 60);

struct standin {
    char dir[64], path[108];
    int fd;
    pthread_t thread;
    const char *answers[MAX_ANSWERS]; /* whole HTTP responses, one per connection */
    char requests[MAX_ANSWERS][8192]; /* what each connection sent */
};

/* Read one request: headers, then Content-Length bytes of body. */
static void read_request(int c, char *buf, size_t cap)
{
    size_t len = 0;
    long want = -1;
    for (;;) {
        ssize_t n = read(c, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL)
            continue;
        if (want < 0) {
            want = 0;
            for (char *h = buf; h < end; h = strstr(h, "\r\n") + 2)
                if (strncasecmp(h, "Content-Length:", 15) == 0)
                    want = strtol(h + 15, NULL, 10);
        }
        if ((long)(len - (size_t)(end + 4 - buf)) >= want)
            break;
    }
    buf[len] = '\0';
}

static void *serve(void *arg)
{
    struct standin *s = arg;
    for (int i = 0; i < MAX_ANSWERS && s->answers[i] != NULL; i++) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        read_request(c, s->requests[i], sizeof(s->requests[i]));
        size_t n = strlen(s->answers[i]);
        if (write(c, s->answers[i], n) != (ssize_t)n)
            perror("stand-in write");
        close(c);
    }
    /* Later connections are refused instead of waiting in the backlog for nobody. */
    close(s->fd);
    s->fd = -1;
    return NULL;
}

static int bind_socket(struct standin *s)
{
    strcpy(s->dir, "/tmp/gm-cli-test-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    snprintf(s->path, sizeof(s->path), "%s/gpumux.sock", s->dir);
    s->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, s->path);
    cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
    return s->fd;
}

/* Start a stand-in that answers successive connections with the given responses. */
static struct standin *standin(const char *first, ...)
{
    struct standin *s = calloc(1, sizeof(*s));
    va_list ap;
    va_start(ap, first);
    int n = 0;
    for (const char *a = first; a != NULL && n < MAX_ANSWERS; a = va_arg(ap, const char *))
        s->answers[n++] = a;
    va_end(ap);
    bind_socket(s);
    cr_assert_eq(listen(s->fd, 8), 0);
    pthread_create(&s->thread, NULL, serve, s);
    return s;
}

/* Wait until every canned answer went out; the requests can be read afterwards. */
static void standin_wait(struct standin *s)
{
    pthread_join(s->thread, NULL);
    unlink(s->path);
    rmdir(s->dir);
}

/* The request body after the blank line. */
static json_t *request_json(const char *req)
{
    const char *body = strstr(req, "\r\n\r\n");
    cr_assert_not_null(body, "no request seen");
    json_error_t je;
    json_t *j = json_loads(body + 4, 0, &je);
    cr_assert_not_null(j, "request body is not JSON: %s", body + 4);
    return j;
}

struct result {
    int rc;
    char *out, *err;
};

static struct result gm(const char *socket, const char *first, ...)
{
    char *argv[32] = {"gpumux", "--socket", (char *)socket};
    int argc = 3;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    struct result r = {0};
    size_t no, ne;
    FILE *out = open_memstream(&r.out, &no), *err = open_memstream(&r.err, &ne);
    r.rc = gm_cli_main(argc, argv, out, err);
    fclose(out);
    fclose(err);
    return r;
}

static void free_result(struct result *r)
{
    free(r->out);
    free(r->err);
}

static char *http(int status, const char *extra_headers, const char *body)
{
    char *s = NULL;
    cr_assert(asprintf(&s,
                       "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%sContent-Length: "
                       "%zu\r\nConnection: close\r\n\r\n%s",
                       status, extra_headers, strlen(body), body) > 0);
    return s;
}

static const char workload_a[] =
    "{\"name\": \"a\", \"gpus\": [{\"index\": 0, \"uuid\": \"GPU-abc\"}], \"gpu_mode\": \"mps\","
    " \"compute_pct\": 30, \"memory_limit\": 1073741824, \"state\": \"running\", \"pid\": 4321}";

#define NO_SOCKET_REASON                                                                           \
    "no socket there: gpumuxd is not running, or runs elsewhere; start it ('systemctl start "      \
    "gpumuxd', or gpumuxd itself), or point GPUMUX_SOCKET or --socket at the socket of a daemon "  \
    "that runs"

Test(client, missing_socket_says_cannot_reach_and_what_to_do)
{
    struct gm_cli_response resp;
    struct gm_error err = {0};
    int rc =
        gm_cli_request("/nonexistent/dir/gpumux.sock", "GET", "/v1/info", NULL, 0, &resp, &err);
    cr_assert_eq(rc, -GM_EUNREACHABLE);
    cr_assert_str_eq(err.msg,
                     "cannot reach gpumuxd at /nonexistent/dir/gpumux.sock: " NO_SOCKET_REASON);
    gm_cli_response_free(&resp);
}

Test(client, the_binary_prints_it_and_exits_2)
{
    const char *build = getenv("GM_BUILD_DIR");
    cr_assert_not_null(build, "GM_BUILD_DIR is not set");
    char cmd[4096], line[512] = "";
    snprintf(cmd, sizeof(cmd), "%s/bin/gpumux --socket /nonexistent/x.sock ps 2>&1 >/dev/null",
             build);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(line, sizeof(line), p));
    int status = pclose(p);
    cr_assert_str_eq(line,
                     "gpumux: cannot reach gpumuxd at /nonexistent/x.sock: " NO_SOCKET_REASON "\n");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %d", status);
}

Test(client, nobody_listening_is_connection_refused)
{
    struct standin s = {0};
    bind_socket(&s); /* bound, never listening */
    struct result r = gm(s.path, "gpu", "ls", NULL);
    char want[512];
    snprintf(want, sizeof(want),
             "gpumux: cannot reach gpumuxd at %s: connection refused: the socket is there but no "
             "daemon listens on it (gpumuxd stopped or was killed); start it ('systemctl start "
             "gpumuxd', or gpumuxd itself), or point GPUMUX_SOCKET or --socket at the socket of a "
             "daemon that runs\n",
             s.path);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, want);
    free_result(&r);
    close(s.fd);
    unlink(s.path);
    rmdir(s.dir);
}

/* A daemon that accepts and never answers (stopped with SIGSTOP: the kernel still queues the
 * connection): the client gives up after --timeout, says so, and exits 3, instead of hanging for
 * minutes. */
Test(client, a_daemon_that_does_not_answer_times_out)
{
    struct standin s = {0};
    bind_socket(&s);
    cr_assert_eq(listen(s.fd, 8), 0); /* never accepted, never answered */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct result r = gm(s.path, "--timeout", "0.4", "stop", "a", NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    char want[512];
    snprintf(want, sizeof(want),
             "gpumux: the daemon at %s did not answer within 0.4 s (stopped or overloaded?); a "
             "change you asked for may still be carried out: check with 'gpumux ps'\n",
             s.path);
    cr_expect_eq(r.rc, 3, "exit status %d: %s", r.rc, r.err);
    cr_expect_str_eq(r.err, want);
    cr_expect(took >= 0.35 && took < 3, "took %.2f s", took);
    free_result(&r);
    /* A read says nothing about changes; the timeout also comes from $GPUMUX_TIMEOUT. */
    setenv("GPUMUX_TIMEOUT", "0.3", 1);
    r = gm(s.path, "ps", NULL);
    unsetenv("GPUMUX_TIMEOUT");
    snprintf(want, sizeof(want),
             "gpumux: the daemon at %s did not answer within 0.3 s (stopped or overloaded?)\n",
             s.path);
    cr_expect_eq(r.rc, 3);
    cr_expect_str_eq(r.err, want);
    free_result(&r);
    /* The default is 30 s, not curl's or the old 300 s. */
    gm_cli_set_timeout(GM_CLI_DEFAULT_TIMEOUT_MS);
    cr_expect_eq(gm_cli_timeout(), 30000);
    r = gm(s.path, "--timeout", "soon", "ps", NULL);
    cr_expect_eq(r.rc, 2);
    cr_expect(strstr(r.err, "--timeout 'soon': expected seconds from 0 (no limit) to 86400") !=
                  NULL,
              "%s", r.err);
    free_result(&r);
    close(s.fd);
    unlink(s.path);
    rmdir(s.dir);
}

Test(client, refusal_prints_the_daemons_message_and_exits_1)
{
    char *answer = http(409, "",
                        "{\"error\": {\"code\": \"conflict\", \"message\": "
                        "\"workload a: exists\"}}");
    struct standin *s = standin(answer, NULL);
    struct result r =
        gm(s->path, "run", "a", "--gpu", "0", "--compute", "30", "--memory", "1G", "--env", "K=V",
           "--env", "X=1=2", "--restart", "always", "--", "sleep", "100", "--flag", NULL);
    standin_wait(s);
    free(s);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, "gpumux: workload a: exists\n");
    cr_assert_str_eq(r.out, "");
    free_result(&r);
    free(answer);
}

Test(client, run_sends_what_the_user_typed)
{
    char *answer = http(201, "", workload_a);
    struct standin *s = standin(answer, NULL);
    struct result r =
        gm(s->path, "run", "a", "--gpu", "0", "--compute", "30", "--memory", "1G", "--env", "K=V",
           "--env", "X=1=2", "--restart", "always", "--", "sleep", "100", "--flag", NULL);
    standin_wait(s);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "a started on GPU 0 (GPU-abc) as pid 4321\n");
    cr_assert(strncmp(s->requests[0], "POST /v1/workloads HTTP/1.1\r\n", 29) == 0, "%s",
              s->requests[0]);
    json_t *body = request_json(s->requests[0]);
    /* Limits travel as the strings typed, so that the daemon's messages quote them. */
    json_t *want = json_loads("{\"name\": \"a\", \"gpu\": \"0\", \"compute\": \"30\", "
                              "\"memory\": \"1G\", \"env\": {\"K\": \"V\", \"X\": \"1=2\"}, "
                              "\"restart\": \"always\", "
                              "\"command\": [\"sleep\", \"100\", \"--flag\"]}",
                              0, NULL);
    char *got_s = json_dumps(body, JSON_SORT_KEYS), *want_s = json_dumps(want, JSON_SORT_KEYS);
    cr_assert_str_eq(got_s, want_s);
    free(got_s);
    free(want_s);
    json_decref(body);
    json_decref(want);
    free_result(&r);
    free(answer);
    free(s);
}

Test(client, malformed_answers_are_clear_errors)
{
    char *bad_json = http(200, "", "{\"gpus\": [");
    char *no_list = http(200, "", "{\"gpus\": 17}");
    char *bare_500 = http(500, "", "<html>oops</html>");
    struct standin *s = standin(bad_json, no_list, bare_500, NULL);
    struct result a = gm(s->path, "gpu", "ls", NULL);
    struct result b = gm(s->path, "smi", NULL);
    struct result c = gm(s->path, "info", NULL);
    standin_wait(s);
    free(s);
    cr_assert_eq(a.rc, 1);
    cr_assert_not_null(strstr(a.err, "gpumux: malformed answer from gpumuxd to GET /v1/gpus"), "%s",
                       a.err);
    cr_assert_eq(b.rc, 1);
    cr_assert_not_null(strstr(b.err, "gpumux: malformed answer from gpumuxd"), "%s", b.err);
    cr_assert_eq(c.rc, 1);
    cr_assert_str_eq(c.err, "gpumux: gpumuxd answered GET /v1/info with HTTP 500 and no error "
                            "message\n");
    free_result(&a);
    free_result(&b);
    free_result(&c);
    free(bad_json);
    free(no_list);
    free(bare_500);
}

Test(client, logs_are_raw_and_follow_the_offset_header)
{
    struct gm_cli_response resp;
    struct gm_error err = {0};
    char *answer =
        http(200, "X-Gpumux-Offset: 1234\r\nX-Gpumux-Log-At: 77:1000\r\n", "hello {not json}\n");
    char *end = http(200, "X-Gpumux-Offset: 1234\r\n", "");
    struct standin *s = standin(answer, answer, end, NULL);
    int rc = gm_cli_request(s->path, "GET", "/v1/workloads/a/logs?offset=1217", NULL, GM_CLI_RAW,
                            &resp, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(resp.offset, 1234);
    cr_assert_eq(resp.log_file, 77);
    cr_assert_eq(resp.log_pos, 1000);
    cr_assert_eq(resp.body_len, 17);
    cr_assert_str_eq(resp.body, "hello {not json}\n");
    cr_assert_null(resp.json);
    gm_cli_response_free(&resp);

    struct result r = gm(s->path, "logs", "a b/c", NULL);
    standin_wait(s);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "hello {not json}\n");
    cr_assert(strncmp(s->requests[1], "GET /v1/workloads/a%20b%2Fc/logs?offset=0 HTTP/1.1", 50) ==
                  0,
              "names are encoded in the path: %s", s->requests[1]);
    /* An answer holds at most one of the log's files: it asks again until nothing comes, in
     * the file the answer named (rotation may have moved it) as well as at the offset. */
    const char *next = "GET /v1/workloads/a%20b%2Fc/logs?offset=1234&file=77&pos=1000 HTTP/1.1";
    cr_assert(strncmp(s->requests[2], next, strlen(next)) == 0,
              "the next request continues where the answer ended: %s", s->requests[2]);
    free_result(&r);
    free(end);
    free(answer);
    free(s);
}

Test(client, logs_follow_until_the_workload_ended_and_the_log_drained)
{
    char *first = http(200, "X-Gpumux-Offset: 6\r\n", "line1\n");
    char *nothing = http(200, "X-Gpumux-Offset: 6\r\n", "");
    char *exited = http(200, "", "{\"name\": \"a\", \"state\": \"exited\"}");
    char *last = http(200, "X-Gpumux-Offset: 12\r\n", "line2\n");
    struct standin *s = standin(first, nothing, exited, last, NULL);
    struct result r = gm(s->path, "logs", "-f", "a", NULL);
    cr_assert_eq(r.rc, 2, "the fifth request finds no stand-in: %s", r.err);
    standin_wait(s);
    cr_assert_str_eq(r.out, "line1\nline2\n");
    cr_assert(strstr(s->requests[3], "offset=6 ") != NULL, "%s", s->requests[3]);
    free_result(&r);
    free(first);
    free(nothing);
    free(exited);
    free(last);
    free(s);
}

Test(client, several_names_go_on_past_a_refusal)
{
    char *ok = http(200, "", "{\"name\": \"a\", \"state\": \"stopped\"}");
    char *missing = http(404, "",
                         "{\"error\": {\"code\": \"not_found\", \"message\": "
                         "\"workload b: no such workload\"}}");
    char *ok2 = http(200, "", "{\"name\": \"c\", \"state\": \"stopping\"}");
    char *done2 = http(200, "", "{\"name\": \"c\", \"state\": \"stopped\"}");
    struct standin *s = standin(ok, missing, ok2, done2, NULL);
    struct result r = gm(s->path, "stop", "a", "b", "c", NULL);
    standin_wait(s);
    cr_assert_eq(r.rc, 1);
    /* c was still stopping: stop asked again until it had stopped. */
    cr_assert_str_eq(r.out, "a stopped\nc stopped\n");
    cr_assert_str_eq(r.err, "gpumux: workload b: no such workload\n");
    cr_assert(strncmp(s->requests[2], "POST /v1/workloads/c/stop HTTP/1.1", 34) == 0);
    cr_assert(strncmp(s->requests[3], "GET /v1/workloads/c HTTP/1.1", 28) == 0, "%s",
              s->requests[3]);
    free_result(&r);
    free(ok);
    free(missing);
    free(ok2);
    free(done2);
    free(s);
}

Test(client, gpu_mode_posts_the_mode_and_names_the_gpu)
{
    char *answer = http(200, "", "{\"index\": 0, \"uuid\": \"GPU-abc\", \"mode\": \"mps\"}");
    struct standin *s = standin(answer, NULL);
    struct result r = gm(s->path, "gpu", "mode", "GPU-abc", "mps", NULL);
    standin_wait(s);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "GPU 0 (GPU-abc): mode mps\n");
    cr_assert(strncmp(s->requests[0], "POST /v1/gpus/GPU-abc/mode HTTP/1.1", 35) == 0);
    json_t *body = request_json(s->requests[0]);
    cr_assert_str_eq(json_string_value(json_object_get(body, "mode")), "mps");
    json_decref(body);
    free_result(&r);
    free(answer);
    free(s);
}

Test(client, json_output_is_the_daemons_answer)
{
    char *answer = http(200, "", "{\"workloads\": [{\"name\": \"a\"}]}");
    struct standin *s = standin(answer, NULL);
    struct result r = gm(s->path, "ps", "-o", "json", NULL);
    standin_wait(s);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    json_t *got = json_loads(r.out, 0, NULL);
    cr_assert_not_null(got, "not JSON: %s", r.out);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(got, "workloads"), 0), "name")),
                     "a");
    cr_assert_not_null(strchr(r.out, '\n'), "indented over several lines");
    json_decref(got);
    free_result(&r);
    free(answer);
    free(s);
}

Test(client, ps_table_columns)
{
    char *answer = http(200, "",
                        "{\"workloads\": [{\"name\": \"a\", \"gpus\": [{\"index\": 0}, "
                        "{\"index\": 1}], \"gpu_mode\": \"shared\", \"compute_pct\": null, "
                        "\"memory_limit\": 536870912, \"state\": \"exited\", \"pid\": 77, "
                        "\"exit_code\": 1, \"restart_count\": 3, "
                        "\"finished_at\": \"2000-01-01T00:00:00Z\"}]}");
    struct standin *s = standin(answer, NULL);
    struct result r = gm(s->path, "ps", NULL);
    standin_wait(s);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strncmp(r.out,
                      "NAME   GPU   MODE     COMPUTE   MEMORY   STATE    PID   RESTARTS   "
                      "STATUS\n"
                      "a      0,1   shared   -         512MiB   exited   -     3          "
                      "Exited (1) ",
                      strlen("NAME   GPU   MODE     COMPUTE   MEMORY   STATE    PID   RESTARTS   "
                             "STATUS\na      0,1   shared   -         512MiB   exited   -     3  "
                             "        Exited (1) ")) == 0,
              "%s", r.out);
    cr_assert_not_null(strstr(r.out, " weeks ago\n"), "%s", r.out);
    free_result(&r);
    free(answer);
    free(s);
}

Test(client, urlencode)
{
    char *e = gm_cli_urlencode("a b/c?d%e~f.g_h-i");
    cr_assert_str_eq(e, "a%20b%2Fc%3Fd%25e~f.g_h-i");
    free(e);
}
