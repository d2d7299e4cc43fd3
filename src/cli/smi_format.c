#include "cli/smi_format.h"
#include "common/gpuid.h"
#include "cli/cli.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MIB ((double)(1024 * 1024))
#define NA  "N/A"

/* ---- Shared checks ------------------------------------------------------------------- */

static const json_t *gpu_array(const json_t *answer, struct gm_error *err)
{
    const json_t *gpus = json_object_get(answer, "gpus");
    if (!json_is_array(gpus)) {
        gm_err(err, GM_EIO, "malformed answer from gpumuxd: no GPU list (\"gpus\")");
        return NULL;
    }
    size_t i;
    const json_t *g;
    json_array_foreach(gpus, i, g)
    {
        if (!json_is_object(g)) {
            gm_err(err, GM_EIO, "malformed answer from gpumuxd: GPU entry %zu is not an object", i);
            return NULL;
        }
    }
    return gpus;
}

static int number(const json_t *obj, const char *key, double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        return 0;
    *out = json_number_value(v);
    return 1;
}

static const char *str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* ---- CSV queries ----------------------------------------------------------------------- */

enum src { FROM_ROOT, FROM_GPU, FROM_PROC };
enum kind {
    K_STR,       /* a string as the daemon gives it */
    K_INT,       /* a whole number */
    K_MIB,       /* bytes, printed in MiB */
    K_WATT,      /* watts with two decimals */
    K_DISPLAY,   /* "On"/"Off" in the table, "Enabled"/"Disabled" in CSV */
    K_DRIVER,    /* the answer's driver.driver_version */
    K_COUNT,     /* the number of GPUs */
    K_TIMESTAMP, /* the answer's time, as nvidia-smi prints it */
    K_NONE,      /* a field nvidia-smi knows and the daemon does not report */
};

struct field {
    const char *name; /* the name in the header; nvidia-smi prints the canonical one */
    const char *alias[2];
    enum src src;
    const char *key;
    enum kind kind;
    const char *unit;
};

static const struct field gpu_fields[] = {
    {"timestamp", {NULL, NULL}, FROM_ROOT, "timestamp", K_TIMESTAMP, NULL},
    {"driver_version", {NULL, NULL}, FROM_ROOT, NULL, K_DRIVER, NULL},
    {"count", {NULL, NULL}, FROM_ROOT, NULL, K_COUNT, NULL},
    {"name", {"gpu_name", NULL}, FROM_GPU, "name", K_STR, NULL},
    {"serial", {"gpu_serial", NULL}, FROM_GPU, NULL, K_NONE, NULL},
    {"uuid", {"gpu_uuid", NULL}, FROM_GPU, "uuid", K_STR, NULL},
    {"index", {NULL, NULL}, FROM_GPU, "index", K_INT, NULL},
    {"pci.bus_id", {"gpu_bus_id", NULL}, FROM_GPU, "pci_bus_id", K_STR, NULL},
    {"display_active", {NULL, NULL}, FROM_GPU, "display_active", K_DISPLAY, NULL},
    {"persistence_mode", {NULL, NULL}, FROM_GPU, "persistence_mode", K_STR, NULL},
    {"pstate", {NULL, NULL}, FROM_GPU, "pstate", K_STR, NULL},
    {"fan.speed", {NULL, NULL}, FROM_GPU, "fan_speed", K_INT, "%"},
    {"memory.total", {NULL, NULL}, FROM_GPU, "memory_total", K_MIB, "MiB"},
    {"memory.used", {NULL, NULL}, FROM_GPU, "memory_used", K_MIB, "MiB"},
    {"memory.free", {NULL, NULL}, FROM_GPU, "memory_free", K_MIB, "MiB"},
    {"compute_mode", {NULL, NULL}, FROM_GPU, "compute_mode", K_STR, NULL},
    {"compute_cap", {NULL, NULL}, FROM_GPU, "compute_capability", K_STR, NULL},
    {"utilization.gpu", {NULL, NULL}, FROM_GPU, "utilization_gpu", K_INT, "%"},
    {"utilization.memory", {NULL, NULL}, FROM_GPU, "utilization_memory", K_INT, "%"},
    {"ecc.errors.uncorrected.volatile.total",
     {NULL, NULL},
     FROM_GPU,
     "ecc_errors_uncorrected_volatile",
     K_INT,
     NULL},
    {"temperature.gpu", {NULL, NULL}, FROM_GPU, "temperature_gpu", K_INT, NULL},
    {"power.draw", {NULL, NULL}, FROM_GPU, "power_draw_w", K_WATT, "W"},
    {"power.limit", {NULL, NULL}, FROM_GPU, "power_limit_w", K_WATT, "W"},
    {"mig.mode.current", {NULL, NULL}, FROM_GPU, "mig_mode", K_STR, NULL},
};

static const struct field app_fields[] = {
    {"timestamp", {NULL, NULL}, FROM_ROOT, "timestamp", K_TIMESTAMP, NULL},
    {"gpu_name", {NULL, NULL}, FROM_GPU, "name", K_STR, NULL},
    {"gpu_bus_id", {NULL, NULL}, FROM_GPU, "pci_bus_id", K_STR, NULL},
    {"gpu_serial", {NULL, NULL}, FROM_GPU, NULL, K_NONE, NULL},
    {"gpu_uuid", {NULL, NULL}, FROM_GPU, "uuid", K_STR, NULL},
    {"pid", {NULL, NULL}, FROM_PROC, "pid", K_INT, NULL},
    {"process_name", {"name", NULL}, FROM_PROC, "name", K_STR, NULL},
    {"used_gpu_memory", {"used_memory", NULL}, FROM_PROC, "used_memory", K_MIB, "MiB"},
};

static const struct field *find_field(enum gm_cli_query kind, const char *name)
{
    const struct field *t = kind == GM_CLI_QUERY_GPU ? gpu_fields : app_fields;
    size_t n = kind == GM_CLI_QUERY_GPU ? sizeof(gpu_fields) / sizeof(gpu_fields[0])
                                        : sizeof(app_fields) / sizeof(app_fields[0]);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
        for (size_t a = 0; a < 2; a++)
            if (t[i].alias[a] != NULL && strcmp(t[i].alias[a], name) == 0)
                return &t[i];
    }
    return NULL;
}

/* Split "a, b,c" into fields; *list is malloc'd with *n entries. */
static int parse_fields(enum gm_cli_query kind, const char *spec, const struct field ***list,
                        size_t *n, struct gm_error *err)
{
    *list = NULL;
    *n = 0;
    char *copy = strdup(spec);
    const struct field **out = calloc(strlen(spec) + 1, sizeof(*out));
    if (copy == NULL || out == NULL) {
        free(copy);
        free(out);
        return gm_err(err, GM_ENOMEM, "out of memory");
    }
    size_t count = 0;
    int rc = 0;
    /* strsep keeps empty items, so "index,,name" names the empty field as nvidia-smi does. */
    for (char *p = copy, *tok; (tok = strsep(&p, ",")) != NULL;) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t len = strlen(tok);
        while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
            tok[--len] = '\0';
        const struct field *f = find_field(kind, tok);
        if (f == NULL) {
            rc = gm_err(err, GM_EINVAL, "Field \"%s\" is not a valid field to query.", tok);
            break;
        }
        out[count++] = f;
    }
    free(copy);
    if (rc < 0) {
        free(out);
        return rc;
    }
    *list = out;
    *n = count;
    return 0;
}

int gm_cli_smi_check_fields(enum gm_cli_query kind, const char *fields, struct gm_error *err)
{
    const struct field **list;
    size_t n;
    int rc = parse_fields(kind, fields, &list, &n, err);
    if (rc == 0)
        free(list);
    return rc;
}

int gm_cli_smi_parse_format(const char *spec, unsigned *flags, struct gm_error *err)
{
    char *copy = strdup(spec);
    if (copy == NULL)
        return gm_err(err, GM_ENOMEM, "out of memory");
    int csv = 0, rc = 0;
    *flags = 0;
    for (char *p = copy, *tok; (tok = strsep(&p, ",")) != NULL;) {
        if (strcmp(tok, "csv") == 0)
            csv = 1;
        else if (strcmp(tok, "noheader") == 0)
            *flags |= GM_CLI_CSV_NOHEADER;
        else if (strcmp(tok, "nounits") == 0)
            *flags |= GM_CLI_CSV_NOUNITS;
        else {
            rc = gm_err(err, GM_EINVAL,
                        "--format: '%s' is not a format option (use csv, noheader, nounits)", tok);
            break;
        }
    }
    if (rc == 0 && !csv)
        rc = gm_err(err, GM_EINVAL, "--format: 'csv' is the only format (e.g. --format=csv)");
    free(copy);
    return rc;
}

/* nvidia-smi's CSV timestamp: "2021/01/25 10:00:00.123", local time. */
static void csv_timestamp(const char *rfc3339, char *buf, size_t len)
{
    time_t t;
    struct tm tm;
    if (gm_cli_parse_time(rfc3339, &t) < 0 || localtime_r(&t, &tm) == NULL) {
        snprintf(buf, len, "[N/A]");
        return;
    }
    int ms = 0;
    const char *dot = strchr(rfc3339, '.');
    if (dot != NULL) {
        int digits = 0;
        for (const char *d = dot + 1; *d >= '0' && *d <= '9' && digits < 3; d++, digits++)
            ms = ms * 10 + (*d - '0');
        for (; digits < 3; digits++)
            ms *= 10;
    }
    char day[32];
    strftime(day, sizeof(day), "%Y/%m/%d %H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03d", day, ms);
}

static void csv_value(const struct field *f, const json_t *root, const json_t *gpu,
                      const json_t *proc, unsigned flags, char *buf, size_t len)
{
    const json_t *obj = f->src == FROM_ROOT ? root : f->src == FROM_GPU ? gpu : proc;
    const char *unit = (flags & GM_CLI_CSV_NOUNITS) || f->unit == NULL ? NULL : f->unit;
    double d;
    const char *s;
    switch (f->kind) {
    case K_TIMESTAMP:
        csv_timestamp(str(root, "timestamp"), buf, len);
        return;
    case K_DRIVER:
        s = str(json_object_get(root, "driver"), "driver_version");
        snprintf(buf, len, "%s", s ? s : "[N/A]");
        return;
    case K_COUNT:
        snprintf(buf, len, "%zu", json_array_size(json_object_get(root, "gpus")));
        return;
    case K_STR:
        s = str(obj, f->key);
        snprintf(buf, len, "%s", s ? s : "[N/A]");
        return;
    case K_DISPLAY:
        s = str(obj, f->key);
        if (s != NULL && strcmp(s, "On") == 0)
            s = "Enabled";
        else if (s != NULL && strcmp(s, "Off") == 0)
            s = "Disabled";
        snprintf(buf, len, "%s", s ? s : "[N/A]");
        return;
    case K_INT:
    case K_MIB:
    case K_WATT:
        if (!number(obj, f->key, &d))
            break;
        if (f->kind == K_MIB)
            snprintf(buf, len, "%.0f", d < 0 ? 0 : (double)(long long)(d / MIB));
        else if (f->kind == K_WATT)
            snprintf(buf, len, "%.2f", d);
        else
            snprintf(buf, len, "%.0f", d);
        if (unit != NULL) {
            size_t n = strlen(buf);
            snprintf(buf + n, len - n, " %s", unit);
        }
        return;
    case K_NONE:
        break;
    }
    snprintf(buf, len, "[N/A]");
}

int gm_cli_smi_query(enum gm_cli_query kind, const json_t *answer, const char *fields,
                     unsigned flags, char **out, struct gm_error *err)
{
    const struct field **list;
    size_t n, size = 0;
    *out = NULL;
    const json_t *gpus = gpu_array(answer, err);
    if (gpus == NULL)
        return -GM_EIO;
    int rc = parse_fields(kind, fields, &list, &n, err);
    if (rc < 0)
        return rc;
    FILE *f = open_memstream(out, &size);
    if (f == NULL) {
        free(list);
        return gm_err(err, GM_ENOMEM, "out of memory");
    }
    if (!(flags & GM_CLI_CSV_NOHEADER)) {
        /* nvidia-smi keeps the unit in the header under nounits: it names what the bare
         * numbers below it count. */
        for (size_t i = 0; i < n; i++) {
            fprintf(f, "%s%s", i ? ", " : "", list[i]->name);
            if (list[i]->unit != NULL)
                fprintf(f, " [%s]", list[i]->unit);
        }
        fputc('\n', f);
    }
    char buf[512];
    size_t gi;
    const json_t *gpu;
    json_array_foreach(gpus, gi, gpu)
    {
        const json_t *procs = json_object_get(gpu, "processes");
        size_t rows = kind == GM_CLI_QUERY_GPU ? 1 : json_array_size(procs);
        for (size_t r = 0; r < rows; r++) {
            const json_t *proc = kind == GM_CLI_QUERY_GPU ? NULL : json_array_get(procs, r);
            for (size_t i = 0; i < n; i++) {
                csv_value(list[i], answer, gpu, proc, flags, buf, sizeof(buf));
                fprintf(f, "%s%s", i ? ", " : "", buf);
            }
            fputc('\n', f);
        }
    }
    free(list);
    if (fclose(f) != 0) {
        free(*out);
        *out = NULL;
        return gm_err(err, GM_ENOMEM, "out of memory");
    }
    return 0;
}

/* ---- The nvidia-smi table ---------------------------------------------------------------- */

static const char rule[] =
    "+-----------------------------------------------------------------------------+\n";
static const char gpu_head[] =
    "|-------------------------------+----------------------+----------------------+\n"
    "| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |\n"
    "| Fan  Temp  Perf  Pwr:Usage/Cap|         Memory-Usage | GPU-Util  Compute M. |\n"
    "|                               |                      |               MIG M. |\n"
    "|===============================+======================+======================|\n";
static const char gpu_rule[] =
    "+-------------------------------+----------------------+----------------------+\n";
static const char proc_head[] =
    "| Processes:                                                                  |\n"
    "|  GPU   GI   CI        PID   Type   Process name                  GPU Memory |\n"
    "|        ID   ID                                                   Usage      |\n"
    "|=============================================================================|\n";
static const char double_rule[] =
    "|=============================================================================|\n";

/* Write s in exactly w columns: cut when longer, padded with blanks when shorter. The box
 * stays aligned whatever the daemon answers. */
static void put_fit(FILE *f, const char *s, size_t w)
{
    size_t n = strlen(s);
    if (n > w)
        n = w;
    fwrite(s, 1, n, f);
    for (; n < w; n++)
        fputc(' ', f);
}

static void line3(FILE *f, const char *a, const char *b, const char *c)
{
    fputc('|', f);
    put_fit(f, a, 31);
    fputc('|', f);
    put_fit(f, b, 22);
    fputc('|', f);
    put_fit(f, c, 22);
    fputs("|\n", f);
}

static void line1(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line1(FILE *f, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fputc('|', f);
    put_fit(f, buf, 77);
    fputs("|\n", f);
}

/* nvidia-smi cuts long names on the right ("Tesla V100-SXM2...") in the GPU table and long
 * process names on the left ("...bin/python3") in the Processes table. */
static void cut_right(const char *s, size_t w, char *buf, size_t len)
{
    if (strlen(s) <= w)
        snprintf(buf, len, "%s", s);
    else
        snprintf(buf, len, "%.*s...", (int)(w - 3), s);
}

static void cut_left(const char *s, size_t w, char *buf, size_t len)
{
    size_t n = strlen(s);
    if (n <= w)
        snprintf(buf, len, "%s", s);
    else
        snprintf(buf, len, "...%s", s + n - (w - 3));
}

static const char *on_off(const char *s)
{
    if (s == NULL)
        return NA;
    if (strcmp(s, "Enabled") == 0 || strcmp(s, "On") == 0)
        return "On";
    if (strcmp(s, "Disabled") == 0 || strcmp(s, "Off") == 0)
        return "Off";
    return s;
}

static const char *compute_mode(const char *s)
{
    if (s == NULL)
        return NA;
    if (strcmp(s, "Exclusive_Process") == 0)
        return "E. Process";
    if (strcmp(s, "Exclusive_Thread") == 0)
        return "E. Thread";
    return s; /* "Default", "Prohibited" read the same in both places */
}

/* "%.0f" of a number with a suffix, or N/A. */
static void num_unit(const json_t *obj, const char *key, double scale, const char *suffix,
                     char *buf, size_t len)
{
    double d;
    if (number(obj, key, &d))
        snprintf(buf, len, "%lld%s", (long long)(d / scale), suffix);
    else
        snprintf(buf, len, NA);
}

static void gpu_rows(FILE *f, const json_t *g)
{
    char a[128], b[128], c[128], idx[16], name[32], fan[16], temp[16], pwr[16], cap[16], used[32],
        total[32], util[16], ecc[24];
    const char *name_s = str(g, "name");
    gm_cli_jint(g, "index", "?", idx, sizeof(idx));
    cut_right(name_s ? name_s : NA, 18, name, sizeof(name));
    snprintf(a, sizeof(a), "%4s  %-18s  %-3s  ", idx, name, on_off(str(g, "persistence_mode")));
    const char *bus = str(g, "pci_bus_id");
    snprintf(b, sizeof(b), " %-16s %3s ", bus ? bus : NA, on_off(str(g, "display_active")));
    gm_cli_jint(g, "ecc_errors_uncorrected_volatile", NA, ecc, sizeof(ecc));
    snprintf(c, sizeof(c), "%21s ", ecc);
    line3(f, a, b, c);

    num_unit(g, "fan_speed", 1, "%", fan, sizeof(fan));
    num_unit(g, "temperature_gpu", 1, "C", temp, sizeof(temp));
    num_unit(g, "power_draw_w", 1, "W", pwr, sizeof(pwr));
    num_unit(g, "power_limit_w", 1, "W", cap, sizeof(cap));
    const char *pstate = str(g, "pstate");
    /* Perf is two columns wide ("P0") but may take a third ("P12", "N/A") from its left. */
    snprintf(a, sizeof(a), " %3s  %4s   %3s  %5s / %4s ", fan, temp, pstate ? pstate : NA, pwr,
             cap);
    num_unit(g, "memory_used", MIB, "MiB", used, sizeof(used));
    num_unit(g, "memory_total", MIB, "MiB", total, sizeof(total));
    snprintf(b, sizeof(b), " %9s / %8s ", used, total);
    num_unit(g, "utilization_gpu", 1, "%", util, sizeof(util));
    snprintf(c, sizeof(c), "%8s %12s ", util, compute_mode(str(g, "compute_mode")));
    line3(f, a, b, c);

    const char *mig = str(g, "mig_mode");
    snprintf(c, sizeof(c), "%21s ", mig ? mig : NA);
    line3(f, "", "", c);
    fputs(gpu_rule, f);
}

static void process_rows(FILE *f, const json_t *gpus)
{
    size_t gi, pi, rows = 0;
    const json_t *g, *p;
    json_array_foreach(gpus, gi, g)
    {
        char idx[16];
        gm_cli_jint(g, "index", "?", idx, sizeof(idx));
        json_array_foreach(json_object_get(g, "processes"), pi, p)
        {
            char pid[24], name[32], mem[32];
            const char *type = str(p, "type"), *pname = str(p, "name");
            gm_cli_jint(p, "pid", NA, pid, sizeof(pid));
            cut_left(pname ? pname : NA, 28, name, sizeof(name));
            num_unit(p, "used_memory", MIB, "MiB", mem, sizeof(mem));
            line1(f, "%5s   %3s  %3s%10s%7s   %-28s%12s ", idx, NA, NA, pid, type ? type : NA, name,
                  mem);
            rows++;
        }
    }
    if (rows == 0)
        line1(f, "  No running processes found");
}

static int nvsmi(FILE *f, const json_t *answer, struct gm_error *err)
{
    const json_t *gpus = gpu_array(answer, err);
    if (gpus == NULL)
        return -GM_EIO;
    if (json_array_size(gpus) == 0) {
        fputs("No devices were found\n", f);
        return 0;
    }
    const json_t *drv = json_object_get(answer, "driver");
    const char *ver = str(drv, "driver_version"), *cuda = str(drv, "cuda_version");
    fputs(rule, f);
    line1(f, " NVIDIA-SMI %-12s Driver Version: %-12s CUDA Version: %-8s ", ver ? ver : NA,
          ver ? ver : NA, cuda ? cuda : NA);
    fputs(gpu_head, f);
    size_t i;
    const json_t *g;
    json_array_foreach(gpus, i, g) gpu_rows(f, g);
    fputs("\n", f);
    fputs(rule, f);
    fputs(proc_head, f);
    process_rows(f, gpus);
    fputs(rule, f);
    return 0;
}

/* ---- gpumux's section --------------------------------------------------------------- */

static void mib_pair(const json_t *g, char *buf, size_t len)
{
    char used[32], total[32];
    num_unit(g, "memory_reserved", MIB, "MiB", used, sizeof(used));
    num_unit(g, "memory_total", MIB, "MiB", total, sizeof(total));
    if (snprintf(buf, len, "%s / %s", used, total) >= (int)len && len > 4)
        snprintf(buf + len - 4, 4, "...");
}

static void joined_names(const json_t *arr, char *buf, size_t len)
{
    size_t i, used = 0;
    const json_t *v;
    buf[0] = '\0';
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", s ? s : "?");
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    if (used == 0)
        snprintf(buf, len, "-");
}

static int gpumux_section(FILE *f, const json_t *answer, const json_t *workloads,
                          struct gm_error *err)
{
    const json_t *gpus = gpu_array(answer, err);
    if (gpus == NULL)
        return -GM_EIO;
    const json_t *wl = NULL;
    if (workloads != NULL) {
        wl = json_object_get(workloads, "workloads");
        if (!json_is_array(wl))
            return gm_err(err, GM_EIO,
                          "malformed answer from gpumuxd: no workload list (\"workloads\")");
    }
    fputs(rule, f);
    /* Say which driver answered: a simulated GPU must never pass for a real one. */
    const char *kind =
        json_string_value(json_object_get(json_object_get(answer, "driver"), "kind"));
    if (kind != NULL && strcmp(kind, "sim") == 0)
        line1(f, " gpumux: simulated GPUs (gpusim driver)");
    else if (kind != NULL && strcmp(kind, "nvml") == 0)
        line1(f, " gpumux: NVIDIA driver");
    else
        line1(f, " gpumux:");
    line1(f, "%5s   %-7s  %-18s  %18s   %s", "GPU", "Mode", "Holder", "Reserved / Total",
          "Workloads");
    fputs(double_rule, f);
    size_t i;
    const json_t *g, *w;
    json_array_foreach(gpus, i, g)
    {
        char idx[16], mem[64], names[128], shown[32], holder[24];
        const char *mode = str(g, "mode"), *h = str(g, "holder");
        gm_cli_jint(g, "index", "?", idx, sizeof(idx));
        mib_pair(g, mem, sizeof(mem));
        joined_names(json_object_get(g, "workloads"), names, sizeof(names));
        cut_right(names, 19, shown, sizeof(shown));
        cut_right(h ? h : "-", 18, holder, sizeof(holder));
        line1(f, "%5s   %-7s  %-18s  %18s   %s", idx, mode ? mode : NA, holder, mem, shown);
        /* A GPU the driver fails (nvidia-smi: "GPU is lost"): its readings above are N/A. */
        const char *lost = str(g, "error");
        if (lost != NULL)
            line1(f, "%5s   LOST: %s", "", lost);
    }
    if (json_array_size(gpus) == 0)
        line1(f, "  No GPUs");
    fputs(rule, f);
    if (wl == NULL)
        return 0;
    line1(f, "  %-20s  %-5s  %-6s  %7s  %9s  %s", "Workload", "GPU", "Mode", "Compute", "Mem limit",
          "State");
    fputs(double_rule, f);
    json_array_foreach(wl, i, w)
    {
        char name[32], gpu[32], pct[16], mem[32];
        const char *n = str(w, "name"), *mode = str(w, "gpu_mode"), *state = str(w, "state");
        double d;
        cut_right(n ? n : "?", 20, name, sizeof(name));
        gm_cli_gpu_list(json_object_get(w, "gpus"), gpu, sizeof(gpu));
        if (number(w, "compute_pct", &d))
            snprintf(pct, sizeof(pct), "%.0f%%", d);
        else
            snprintf(pct, sizeof(pct), "-");
        if (number(w, "memory_limit", &d))
            snprintf(mem, sizeof(mem), "%lldMiB", (long long)(d / MIB));
        else
            snprintf(mem, sizeof(mem), "-");
        line1(f, "  %-20s  %-5s  %-6s  %7s  %9s  %s", name, gpu, mode ? mode : "-", pct, mem,
              state ? state : "?");
    }
    if (json_array_size(wl) == 0)
        line1(f, "  No workloads");
    fputs(rule, f);
    return 0;
}

/* ---- Entry points ------------------------------------------------------------------------ */

typedef int (*writer)(FILE *f, const json_t *answer, const json_t *workloads, struct gm_error *err);

static int to_string(writer w, const json_t *answer, const json_t *workloads, char **out,
                     struct gm_error *err)
{
    size_t size = 0;
    *out = NULL;
    FILE *f = open_memstream(out, &size);
    if (f == NULL)
        return gm_err(err, GM_ENOMEM, "out of memory");
    int rc = w(f, answer, workloads, err);
    if (fclose(f) != 0 && rc == 0)
        rc = gm_err(err, GM_ENOMEM, "out of memory");
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

static int write_nvsmi(FILE *f, const json_t *answer, const json_t *workloads, struct gm_error *err)
{
    (void)workloads;
    return nvsmi(f, answer, err);
}

static int write_view(FILE *f, const json_t *answer, const json_t *workloads, struct gm_error *err)
{
    const char *host = str(answer, "hostname");
    fprintf(f, "%s\n\n", host ? host : "(unknown host)");
    int rc = nvsmi(f, answer, err);
    if (rc < 0)
        return rc;
    fputc('\n', f);
    return gpumux_section(f, answer, workloads, err);
}

int gm_cli_smi_nvsmi(const json_t *answer, char **out, struct gm_error *err)
{
    return to_string(write_nvsmi, answer, NULL, out, err);
}

int gm_cli_smi_gpumux(const json_t *answer, const json_t *workloads, char **out,
                      struct gm_error *err)
{
    return to_string(gpumux_section, answer, workloads, out, err);
}

int gm_cli_smi_view(const json_t *answer, const json_t *workloads, char **out, struct gm_error *err)
{
    return to_string(write_view, answer, workloads, out, err);
}

int gm_cli_smi_select(json_t *answer, const char *ids, struct gm_error *err)
{
    const json_t *gpus = gpu_array(answer, err);
    if (gpus == NULL)
        return -GM_EIO;
    size_t n = json_array_size(gpus), i;
    json_t *keep = json_array(), *g;
    char *copy = strdup(ids);
    struct gm_gpu_id *all = calloc(n + 1, sizeof(*all));
    unsigned char *wanted = calloc(n + 1, 1);
    int rc = 0;
    if (keep == NULL || copy == NULL || all == NULL || wanted == NULL) {
        rc = gm_err(err, GM_ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(gpus, i, g)
    {
        const json_t *ix = json_object_get(g, "index");
        all[i] = (struct gm_gpu_id){json_is_integer(ix) ? (int)json_integer_value(ix) : -1,
                                    str(g, "uuid"), str(g, "pci_bus_id")};
        if (all[i].uuid == NULL)
            all[i].uuid = "";
        if (all[i].pci_bus_id == NULL)
            all[i].pci_bus_id = "";
    }
    for (char *p = copy, *tok; (tok = strsep(&p, ",")) != NULL;) {
        size_t k;
        if ((rc = gm_gpu_id_find(all, n, tok, &k, err)) < 0)
            goto out;
        wanted[k] = 1;
    }
    /* Keep the daemon's order, as nvidia-smi -i 1,0 still lists GPU 0 first. */
    json_array_foreach(gpus, i, g) if (wanted[i]) json_array_append(keep, g);
    json_object_set(answer, "gpus", keep);
out:
    json_decref(keep);
    free(copy);
    free(all);
    free(wanted);
    return rc;
}
