#include "cli/cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct gm_cli_table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows * ncols; row 0 is the header */
};

struct gm_cli_table *gm_cli_table_new(size_t ncols, const char *const *headers)
{
    struct gm_cli_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ncols = ncols;
    if (gm_cli_table_add(t, headers) < 0) {
        gm_cli_table_free(t);
        return NULL;
    }
    return t;
}

int gm_cli_table_add(struct gm_cli_table *t, const char *const *cells)
{
    if (t == NULL)
        return -1;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        char **p = realloc(t->cells, cap * t->ncols * sizeof(*p));
        if (p == NULL)
            return -1;
        t->cells = p;
        t->cap = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = strdup(cells[i] != NULL && cells[i][0] != '\0' ? cells[i] : "-");
        if (row[i] == NULL) {
            while (i-- > 0)
                free(row[i]);
            return -1;
        }
    }
    t->nrows++;
    return 0;
}

void gm_cli_table_print(const struct gm_cli_table *t, FILE *f)
{
    if (t == NULL)
        return;
    size_t *w = calloc(t->ncols, sizeof(*w));
    if (w == NULL)
        return;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t n = strlen(t->cells[r * t->ncols + c]);
            if (n > w[c])
                w[c] = n;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            if (c + 1 == t->ncols)
                fprintf(f, "%s\n", cell); /* no trailing blanks after the last column */
            else
                fprintf(f, "%-*s   ", (int)w[c], cell);
        }
    }
    free(w);
}

void gm_cli_table_free(struct gm_cli_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

const char *gm_cli_jstr(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : dflt;
}

const char *gm_cli_jint(const json_t *obj, const char *key, const char *dflt, char *buf, size_t len)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%.0f", json_real_value(v));
    else {
        /* Callers may read buf rather than the result; both must say the same. */
        snprintf(buf, len, "%s", dflt != NULL ? dflt : "");
        return dflt;
    }
    return buf;
}

void gm_cli_gpu_list(const json_t *gpus, char *buf, size_t len)
{
    size_t i, used = 0;
    const json_t *g;
    buf[0] = '\0';
    json_array_foreach(gpus, i, g)
    {
        char one[32];
        const json_t *idx = json_is_object(g) ? json_object_get(g, "index") : g;
        if (json_is_integer(idx))
            snprintf(one, sizeof(one), "%" JSON_INTEGER_FORMAT, json_integer_value(idx));
        else
            snprintf(one, sizeof(one), "?");
        int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", one);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    if (used == 0)
        snprintf(buf, len, "-");
}

int gm_cli_state_live(const char *state)
{
    return strcmp(state, "starting") == 0 || strcmp(state, "running") == 0 ||
           strcmp(state, "stopping") == 0;
}

int gm_cli_parse_time(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (s == NULL)
        return -1;
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL)
        return -1;
    if (*end == '.')
        for (end++; *end >= '0' && *end <= '9'; end++)
            ;
    if (*end != 'Z' && *end != 'z')
        return -1;
    *out = timegm(&tm);
    return 0;
}

/* "10m", "1h30m", "45s", "2d": seconds, or -1 when s is not such a duration. */
static long long duration_s(const char *s)
{
    long long total = 0;
    if (*s == '\0')
        return -1;
    while (*s != '\0') {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 0 || v > 100000000)
            return -1;
        switch (*end) {
        case 's':
            total += v;
            break;
        case 'm':
            total += v * 60;
            break;
        case 'h':
            total += v * 3600;
            break;
        case 'd':
            total += v * 86400;
            break;
        default:
            return -1;
        }
        s = end + 1;
    }
    return total;
}

int gm_cli_parse_since_ms(const char *s, long long *out)
{
    long long ago = duration_s(s);
    time_t t;
    if (ago >= 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        *out = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 - ago * 1000;
        return 0;
    }
    if (gm_cli_parse_time(s, &t) < 0)
        return -1;
    *out = (long long)t * 1000;
    return 0;
}

int gm_cli_parse_since(const char *s, time_t *out)
{
    long long ms;
    if (gm_cli_parse_since_ms(s, &ms) < 0)
        return -1;
    *out = (time_t)(ms / 1000);
    return 0;
}

void gm_cli_format_duration(long long s, char *buf, size_t len)
{
    if (s < 1)
        snprintf(buf, len, "Less than a second");
    else if (s < 60)
        snprintf(buf, len, "%lld second%s", s, s == 1 ? "" : "s");
    else if (s < 120)
        snprintf(buf, len, "About a minute");
    else if (s < 3600)
        snprintf(buf, len, "%lld minutes", s / 60);
    else if (s < 2 * 3600)
        snprintf(buf, len, "About an hour");
    else if (s < 48 * 3600)
        snprintf(buf, len, "%lld hours", s / 3600);
    else if (s < 14 * 86400)
        snprintf(buf, len, "%lld days", s / 86400);
    else
        snprintf(buf, len, "%lld weeks", s / (7 * 86400));
}

int gm_cli_call_show(struct gm_cli_ctx *ctx, const char *method, const char *path,
                     const json_t *body,
                     void (*table)(struct gm_cli_ctx *ctx, const json_t *answer))
{
    json_t *answer = NULL;
    int rc = gm_cli_call(ctx, method, path, body, &answer);
    if (rc != 0)
        return rc;
    if (ctx->output == GM_CLI_OUT_JSON)
        gm_cli_print_json(ctx, answer);
    else if (table != NULL)
        table(ctx, answer);
    else
        fputs(gm_cli_jstr(answer, "messages", ""), ctx->out);
    json_decref(answer);
    return GM_CLI_EXIT_OK;
}
