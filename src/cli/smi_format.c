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

/* Text built in memory: *out is malloc'd for the caller, NULL on failure. */
static FILE *text_open(char **out, size_t *size, struct gm_error *err)
{
    *out = NULL;
    FILE *f = open_memstream(out, size);
    if (f == NULL)
        gm_err(err, GM_ENOMEM, "out of memory");
    return f;
}

static int text_close(FILE *f, char **out, int rc, struct gm_error *err)
{
    if (fclose(f) != 0 && rc == 0)
        rc = gm_err(err, GM_ENOMEM, "out of memory");
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- CSV queries ----------------------------------------------------------------------- */

enum src { FROM_ROOT, FROM_GPU, FROM_PROC };
enum kind {
    K_STR,       /* a string as the daemon gives it */
    K_INT,       /* a whole number */
    K_MIB,       /* bytes, printed in MiB */
    K_WATT,      /* watts with two decimals */
    K_DISPLAY,   /* "On"/"Off" in the table, "Enabled"/"Disabled" in CSV */
    K_HEX,       /* a bit mask, as nvidia-smi prints it: 0x0000000000000000 */
    K_DRIVER,    /* the answer's driver.driver_version */
    K_COUNT,     /* the number of GPUs */
    K_TIMESTAMP, /* the answer's time, as nvidia-smi prints it */
};

struct field {
    const char *name; /* the name in the header; nvidia-smi prints the canonical one */
    const char *alias[2];
    enum src src;
    const char *key;
    enum kind kind;
    const char *unit;
    const char *help; /* for --help-query-gpu / --help-query-compute-apps */
};

/* clang-format off */
static const struct field gpu_fields[] = {
    {"timestamp", {NULL, NULL}, FROM_ROOT, "timestamp", K_TIMESTAMP, NULL,
      "The time of the query, as \"YYYY/MM/DD HH:MM:SS.msec\" in local time."},
    {"driver_version", {NULL, NULL}, FROM_ROOT, NULL, K_DRIVER, NULL,
      "The version of the installed NVIDIA driver (gpusim's own under the simulated driver)."},
    {"count", {NULL, NULL}, FROM_ROOT, NULL, K_COUNT, NULL, "The number of GPUs shown (after -i)."},
    {"name", {"gpu_name", NULL}, FROM_GPU, "name", K_STR, NULL, "The product name of the GPU."},
    {"serial", {"gpu_serial", NULL}, FROM_GPU, "serial", K_STR, NULL,
      "The serial number printed on the board, as NVML reports it."},
    {"uuid", {"gpu_uuid", NULL}, FROM_GPU, "uuid", K_STR, NULL,
      "The GPU's globally unique id (GPU-...), which stays the same when indices change."},
    {"index", {NULL, NULL}, FROM_GPU, "index", K_INT, NULL,
      "The GPU's index as NVML enumerates it (by PCI bus id)."},
    {"pci.bus_id", {"gpu_bus_id", NULL}, FROM_GPU, "pci_bus_id", K_STR, NULL,
      "The PCI bus id, \"domain:bus:device.function\" in hex."},
    {"display_active", {NULL, NULL}, FROM_GPU, "display_active", K_DISPLAY, NULL,
      "Whether a display is initialised on the GPU (Enabled, Disabled)."},
    {"persistence_mode", {NULL, NULL}, FROM_GPU, "persistence_mode", K_STR, NULL,
      "Whether the driver stays loaded with no client (Enabled, Disabled)."},
    {"pstate", {NULL, NULL}, FROM_GPU, "pstate", K_STR, NULL,
      "The performance state, from P0 (most) to P12 (least)."},
    {"fan.speed", {NULL, NULL}, FROM_GPU, "fan_speed", K_INT, "%",
      "The fan speed the driver asks for, in percent; [N/A] on passively cooled boards."},
    {"memory.total", {NULL, NULL}, FROM_GPU, "memory_total", K_MIB, "MiB",
      "The GPU's total memory."},
    {"memory.reserved", {NULL, NULL}, FROM_GPU, "memory_driver_reserved", K_MIB, "MiB",
      "The memory the driver keeps for itself."},
    {"memory.used", {NULL, NULL}, FROM_GPU, "memory_used", K_MIB, "MiB",
      "The memory in use by processes and the driver."},
    {"memory.free", {NULL, NULL}, FROM_GPU, "memory_free", K_MIB, "MiB", "The memory not in use."},
    {"compute_mode", {NULL, NULL}, FROM_GPU, "compute_mode", K_STR, NULL,
      "Default, Exclusive_Process or Prohibited."},
    {"compute_cap", {NULL, NULL}, FROM_GPU, "compute_capability", K_STR, NULL,
      "The CUDA compute capability, major.minor."},
    {"utilization.gpu", {NULL, NULL}, FROM_GPU, "utilization_gpu", K_INT, "%",
      "The share of the last sample period in which a kernel ran."},
    {"utilization.memory", {NULL, NULL}, FROM_GPU, "utilization_memory", K_INT, "%",
      "The share of the last sample period in which memory was read or written."},
    {"utilization.encoder", {NULL, NULL}, FROM_GPU, "utilization_encoder", K_INT, "%",
      "The video encoder's utilisation."},
    {"utilization.decoder", {NULL, NULL}, FROM_GPU, "utilization_decoder", K_INT, "%",
      "The video decoder's utilisation."},
    {"ecc.mode.current", {NULL, NULL}, FROM_GPU, "ecc_mode", K_STR, NULL,
      "Whether ECC is on (Enabled, Disabled)."},
    {"ecc.errors.uncorrected.volatile.total", {NULL, NULL}, FROM_GPU,
      "ecc_errors_uncorrected_volatile", K_INT, NULL,
      "Uncorrected ECC errors since the driver was loaded."},
    {"temperature.gpu", {NULL, NULL}, FROM_GPU, "temperature_gpu", K_INT, NULL,
      "The core temperature in degrees C."},
    {"temperature.memory", {NULL, NULL}, FROM_GPU, "temperature_memory", K_INT, NULL,
      "The memory temperature in degrees C; [N/A] where the board has no sensor for it (a T4)."},
    {"power.draw", {NULL, NULL}, FROM_GPU, "power_draw_w", K_WATT, "W", "The board's power draw."},
    {"power.draw.average", {NULL, NULL}, FROM_GPU, "power_draw_average_w", K_WATT, "W",
      "The power draw averaged over one second; Ampere (not GA100) and later boards only."},
    {"power.limit", {NULL, NULL}, FROM_GPU, "power_mgmt_limit_w", K_WATT, "W",
      "The power management limit set by software."},
    {"enforced.power.limit", {NULL, NULL}, FROM_GPU, "power_limit_w", K_WATT, "W",
      "The power limit the board enforces: the lowest of all limits."},
    {"clocks.current.graphics", {"clocks.gr", NULL}, FROM_GPU, "clocks_graphics", K_INT, "MHz",
      "The graphics clock now."},
    {"clocks.current.sm", {"clocks.sm", NULL}, FROM_GPU, "clocks_sm", K_INT, "MHz",
      "The SM (streaming multiprocessor) clock now."},
    {"clocks.current.memory", {"clocks.mem", NULL}, FROM_GPU, "clocks_mem", K_INT, "MHz",
      "The memory clock now."},
    {"clocks.max.graphics", {"clocks.max.gr", NULL}, FROM_GPU, "clocks_max_graphics", K_INT, "MHz",
      "The highest graphics clock."},
    {"clocks.max.sm", {NULL, NULL}, FROM_GPU, "clocks_max_sm", K_INT, "MHz",
      "The highest SM clock."},
    {"clocks.max.memory", {"clocks.max.mem", NULL}, FROM_GPU, "clocks_max_mem", K_INT, "MHz",
      "The highest memory clock."},
    {"clocks_event_reasons.active", {"clocks_throttle_reasons.active", NULL}, FROM_GPU,
      "clocks_event_reasons", K_HEX, NULL,
      "Why the clocks are held down now, NVML's bit mask; 0x0000000000000000: they are not."},
    {"pcie.link.gen.current", {NULL, NULL}, FROM_GPU, "pcie_link_gen_current", K_INT, NULL,
      "The PCIe link generation in use."},
    {"pcie.link.gen.max", {NULL, NULL}, FROM_GPU, "pcie_link_gen_max", K_INT, NULL,
      "The highest PCIe generation the GPU and the slot allow."},
    {"pcie.link.width.current", {NULL, NULL}, FROM_GPU, "pcie_link_width_current", K_INT, NULL,
      "The PCIe link width in use (lanes)."},
    {"pcie.link.width.max", {NULL, NULL}, FROM_GPU, "pcie_link_width_max", K_INT, NULL,
      "The widest PCIe link the GPU and the slot allow."},
    {"vbios_version", {NULL, NULL}, FROM_GPU, "vbios_version", K_STR, NULL,
      "The version of the board's VBIOS."},
    {"mig.mode.current", {NULL, NULL}, FROM_GPU, "mig_mode", K_STR, NULL,
      "Whether MIG is on (Enabled, Disabled); [N/A] where the GPU has no MIG."},
};
/* clang-format on */

/* clang-format off */
static const struct field app_fields[] = {
    {"timestamp", {NULL, NULL}, FROM_ROOT, "timestamp", K_TIMESTAMP, NULL,
      "The time of the query, as \"YYYY/MM/DD HH:MM:SS.msec\" in local time."},
    {"gpu_name", {NULL, NULL}, FROM_GPU, "name", K_STR, NULL,
      "The product name of the process's GPU."},
    {"gpu_bus_id", {NULL, NULL}, FROM_GPU, "pci_bus_id", K_STR, NULL,
      "The PCI bus id of the process's GPU."},
    {"gpu_serial", {NULL, NULL}, FROM_GPU, "serial", K_STR, NULL,
      "The serial number of the process's GPU."},
    {"gpu_uuid", {NULL, NULL}, FROM_GPU, "uuid", K_STR, NULL, "The UUID of the process's GPU."},
    {"pid", {NULL, NULL}, FROM_PROC, "pid", K_INT, NULL, "The process id."},
    {"process_name", {"name", NULL}, FROM_PROC, "name", K_STR, NULL,
      "The process's name (its executable's path)."},
    {"used_gpu_memory", {"used_memory", NULL}, FROM_PROC, "used_memory", K_MIB, "MiB",
      "The memory the process holds on the GPU; [N/A] where the driver does not say (MPS)."},
};
/* clang-format on */

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

int gm_cli_smi_help_query(enum gm_cli_query kind, char **out, struct gm_error *err)
{
    const struct field *t = kind == GM_CLI_QUERY_GPU ? gpu_fields : app_fields;
    size_t n = kind == GM_CLI_QUERY_GPU ? NFIELDS(gpu_fields) : NFIELDS(app_fields), size = 0;
    FILE *f = text_open(out, &size, err);
    if (f == NULL)
        return -GM_ENOMEM;
    fprintf(f, "List of valid properties to query for the switch \"%s\":\n\n",
            kind == GM_CLI_QUERY_GPU ? "--query-gpu=" : "--query-compute-apps=");
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "\"%s\"", t[i].name);
        for (size_t a = 0; a < 2; a++)
            if (t[i].alias[a] != NULL)
                fprintf(f, " or \"%s\"", t[i].alias[a]);
        fprintf(f, "\n%s%s%s%s\n\n", t[i].help, t[i].unit ? " Unit: " : "",
                t[i].unit ? t[i].unit : "", t[i].unit ? "." : "");
    }
    return text_close(f, out, 0, err);
}

static const struct field *find_field(enum gm_cli_query kind, const char *name)
{
    const struct field *t = kind == GM_CLI_QUERY_GPU ? gpu_fields : app_fields;
    size_t n = kind == GM_CLI_QUERY_GPU ? NFIELDS(gpu_fields) : NFIELDS(app_fields);
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
    case K_HEX:
        if (!number(obj, f->key, &d))
            break;
        snprintf(buf, len, "0x%016llx",
                 (unsigned long long)json_integer_value(json_object_get(obj, f->key)));
        return;
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
    FILE *f = text_open(out, &size, err);
    if (f == NULL) {
        free(list);
        return -GM_ENOMEM;
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
    return text_close(f, out, 0, err);
}

/* ---- The nvidia-smi table ---------------------------------------------------------------- */

/* nvidia-smi's table as each driver generation prints it. Each layout is checked line for line
 * against a real nvidia-smi output of that generation (tests/unit/data/nvidia-smi-*.txt); the
 * driver version in the answer picks the layout, so the table looks like the nvidia-smi of the
 * node's own driver (gpusim reports one too). */
struct layout {
    int from_major;      /* the first driver branch printing it */
    int a, b, c;         /* the three GPU columns' inner widths */
    int ver_w, drv_w;    /* banner: NVIDIA-SMI version and Driver Version fields */
    int name_w;          /* GPU name, cut on the right beyond it */
    int draw_w, cap_w;   /* Pwr:Usage/Cap */
    int bus_pad;         /* blanks before the bus id */
    int used_w, total_w; /* Memory-Usage */
    int pid_w, pname_w;  /* Processes: PID and process name columns */
    int spaced_gap;      /* the line between the two boxes is blanks, not empty */
    char head_corner;    /* '|' or '+' at the ends of the rule under the banner */
    const char *head[3]; /* the GPU header's three lines, inside the outer bars */
    const char *proc[2]; /* the Processes header's two column lines, likewise */
};

/* clang-format off */
static const struct layout layouts[] = {
    /* 79 columns: nvidia-smi up to the 525 drivers (the seed's sample is 460.32.03). */
    {0, 31, 22, 22, 12, 12, 18, 7, 4, 1, 9, 8, 10, 28, 0, '|',
      {" GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC ", " Fan  Temp  Perf  Pwr:Usage/Cap|         Memory-Usage | GPU-Util  Compute M. ", "                               |                      |               MIG M. "},
      {"  GPU   GI   CI        PID   Type   Process name                  GPU Memory ", "        ID   ID                                                   Usage      "}},
    /* 89 columns: the 530 to 545 drivers (sample: 535.104.05). */
    {530, 41, 22, 22, 22, 12, 29, 17, 4, 1, 9, 8, 10, 38, 1, '|',
      {" GPU  Name                 Persistence-M | Bus-Id        Disp.A | Volatile Uncorr. ECC ", " Fan  Temp   Perf          Pwr:Usage/Cap |         Memory-Usage | GPU-Util  Compute M. ", "                                         |                      |               MIG M. "},
      {"  GPU   GI   CI        PID   Type   Process name                            GPU Memory ", "        ID   ID                                                             Usage      "}},
    /* 91 columns: the 550 to 575 drivers (sample: 550.54.15). */
    {550, 41, 24, 22, 22, 14, 29, 16, 5, 3, 10, 9, 10, 40, 1, '|',
      {" GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC ", " Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. ", "                                         |                        |               MIG M. "},
      {"  GPU   GI   CI        PID   Type   Process name                              GPU Memory ", "        ID   ID                                                               Usage      "}},
    /* 91 columns with a wider PID: the 580 drivers on (sample: 590.48.01). */
    {580, 41, 24, 22, 22, 14, 29, 16, 5, 3, 10, 9, 16, 34, 1, '+',
      {" GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC ", " Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. ", "                                         |                        |               MIG M. "},
      {"  GPU   GI   CI              PID   Type   Process name                        GPU Memory ", "        ID   ID                                                               Usage      "}},
};
/* clang-format on */

/* The layout for a driver version ("535.104.05"); the oldest for none or an unreadable one. */
static const struct layout *layout_for(const char *driver_version)
{
    int major = driver_version != NULL ? atoi(driver_version) : 0;
    const struct layout *l = &layouts[0];
    for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
        if (major >= layouts[i].from_major)
            l = &layouts[i];
    return l;
}

static const struct layout *answer_layout(const json_t *answer)
{
    return layout_for(str(json_object_get(answer, "driver"), "driver_version"));
}

/* The width inside the outer bars. */
static int inner(const struct layout *l)
{
    return l->a + l->b + l->c + 2;
}

static void dashes(FILE *f, int n, char ch)
{
    for (int i = 0; i < n; i++)
        fputc(ch, f);
}

/* "+-----+" across the whole table, with the given ends. */
static void rule_line(FILE *f, const struct layout *l, char end, char ch)
{
    fputc(end, f);
    dashes(f, inner(l), ch);
    fputc(end, f);
    fputc('\n', f);
}

/* "+----+----+----+" with the three GPU columns. */
static void column_rule(FILE *f, const struct layout *l, char left, char mid, char right, char ch)
{
    fputc(left, f);
    dashes(f, l->a, ch);
    fputc(mid, f);
    dashes(f, l->b, ch);
    fputc(mid, f);
    dashes(f, l->c, ch);
    fputc(right, f);
    fputc('\n', f);
}

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

static void line3(FILE *f, const struct layout *l, const char *a, const char *b, const char *c)
{
    fputc('|', f);
    put_fit(f, a, (size_t)l->a);
    fputc('|', f);
    put_fit(f, b, (size_t)l->b);
    fputc('|', f);
    put_fit(f, c, (size_t)l->c);
    fputs("|\n", f);
}

static void line1(FILE *f, const struct layout *l, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void line1(FILE *f, const struct layout *l, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fputc('|', f);
    put_fit(f, buf, (size_t)inner(l));
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

static void gpu_rows(FILE *f, const struct layout *l, const json_t *g)
{
    char a[160], b[160], c[160], idx[16], name[64], fan[16], temp[16], pwr[16], cap[16], used[32],
        total[32], util[16], ecc[24];
    const char *name_s = str(g, "name");
    gm_cli_jint(g, "index", "?", idx, sizeof(idx));
    cut_right(name_s ? name_s : NA, (size_t)l->name_w, name, sizeof(name));
    snprintf(a, sizeof(a), "%4s  %-*s  %-4s", idx, l->name_w, name,
             on_off(str(g, "persistence_mode")));
    const char *bus = str(g, "pci_bus_id");
    snprintf(b, sizeof(b), "%*s%-16s %3s ", l->bus_pad, "", bus ? bus : NA,
             on_off(str(g, "display_active")));
    gm_cli_jint(g, "ecc_errors_uncorrected_volatile", NA, ecc, sizeof(ecc));
    snprintf(c, sizeof(c), "%21s ", ecc);
    line3(f, l, a, b, c);

    num_unit(g, "fan_speed", 1, "%", fan, sizeof(fan));
    num_unit(g, "temperature_gpu", 1, "C", temp, sizeof(temp));
    num_unit(g, "power_draw_w", 1, "W", pwr, sizeof(pwr));
    num_unit(g, "power_limit_w", 1, "W", cap, sizeof(cap));
    const char *pstate = str(g, "pstate");
    /* Perf is two columns wide ("P0") but may take a third ("P12", "N/A") from its left. */
    snprintf(a, sizeof(a), " %3s  %4s   %3s%*s / %*s ", fan, temp, pstate ? pstate : NA, l->draw_w,
             pwr, l->cap_w, cap);
    /* From driver 530 on nvidia-smi reads memory with NVML's v2 call, whose used leaves out
     * what the driver reserves; the older ones count it in. */
    double u, r;
    if (l->from_major >= 530 && number(g, "memory_used", &u) &&
        number(g, "memory_driver_reserved", &r))
        snprintf(used, sizeof(used), "%lldMiB", (long long)((u > r ? u - r : 0) / MIB));
    else
        num_unit(g, "memory_used", MIB, "MiB", used, sizeof(used));
    num_unit(g, "memory_total", MIB, "MiB", total, sizeof(total));
    snprintf(b, sizeof(b), " %*s / %*s ", l->used_w, used, l->total_w, total);
    num_unit(g, "utilization_gpu", 1, "%", util, sizeof(util));
    snprintf(c, sizeof(c), "%8s %12s ", util, compute_mode(str(g, "compute_mode")));
    line3(f, l, a, b, c);

    const char *mig = str(g, "mig_mode");
    snprintf(c, sizeof(c), "%21s ", mig ? mig : NA);
    line3(f, l, "", "", c);
    column_rule(f, l, '+', '+', '+', '-');
}

static void process_rows(FILE *f, const struct layout *l, const json_t *gpus)
{
    size_t gi, pi, rows = 0;
    const json_t *g, *p;
    json_array_foreach(gpus, gi, g)
    {
        char idx[16];
        gm_cli_jint(g, "index", "?", idx, sizeof(idx));
        json_array_foreach(json_object_get(g, "processes"), pi, p)
        {
            char pid[24], name[64], mem[32];
            const char *type = str(p, "type"), *pname = str(p, "name");
            gm_cli_jint(p, "pid", NA, pid, sizeof(pid));
            cut_left(pname ? pname : NA, (size_t)l->pname_w, name, sizeof(name));
            num_unit(p, "used_memory", MIB, "MiB", mem, sizeof(mem));
            line1(f, l, "%5s   %3s  %3s%*s%7s   %-*s%12s ", idx, NA, NA, l->pid_w, pid,
                  type ? type : NA, l->pname_w, name, mem);
            rows++;
        }
    }
    if (rows == 0)
        line1(f, l, "  No running processes found");
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
    const struct layout *l = layout_for(ver);
    rule_line(f, l, '+', '-');
    line1(f, l, " NVIDIA-SMI %-*s Driver Version: %-*s CUDA Version: %-8s ", l->ver_w,
          ver ? ver : NA, l->drv_w, ver ? ver : NA, cuda ? cuda : NA);
    column_rule(f, l, l->head_corner, '+', '+', '-');
    for (int i = 0; i < 3; i++)
        fprintf(f, "|%s|\n", l->head[i]);
    column_rule(f, l, '|', '+', '|', '=');
    size_t i;
    const json_t *g;
    /* A GPU on vfio-pci for a VM is not the host driver's: nvidia-smi does not list it, and the
     * gpumux section below says where it is. */
    json_array_foreach(gpus, i, g) if (!json_is_string(json_object_get(g, "passthrough")))
        gpu_rows(f, l, g);
    /* nvidia-smi's newer layouts fill the line between the boxes with blanks. */
    if (l->spaced_gap)
        dashes(f, inner(l) + 2, ' ');
    fputc('\n', f);
    rule_line(f, l, '+', '-');
    line1(f, l, " Processes:");
    for (int k = 0; k < 2; k++)
        fprintf(f, "|%s|\n", l->proc[k]);
    rule_line(f, l, '|', '=');
    process_rows(f, l, gpus);
    rule_line(f, l, '+', '-');
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

/* Running workloads first, then the rest, each group in the daemon's order. */
static int is_running(const json_t *w)
{
    const char *s = str(w, "state");
    return s != NULL && strcmp(s, "running") == 0;
}

static void workload_row(FILE *f, const struct layout *l, const json_t *w)
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
    line1(f, l, "  %-20s  %-5s  %-6s  %7s  %9s  %s", name, gpu, mode ? mode : "-", pct, mem,
          state ? state : "?");
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
    /* As wide as the nvidia-smi table above it; the wider layouts give the room to names. */
    const struct layout *l = answer_layout(answer);
    size_t names_w = 19 + (size_t)(inner(l) - 77);
    rule_line(f, l, '+', '-');
    /* Say which driver answered: a simulated GPU must never pass for a real one. */
    const char *kind =
        json_string_value(json_object_get(json_object_get(answer, "driver"), "kind"));
    if (kind != NULL && strcmp(kind, "sim") == 0)
        line1(f, l, " gpumux: simulated GPUs (gpusim driver)");
    else if (kind != NULL && strcmp(kind, "nvml") == 0)
        line1(f, l, " gpumux: NVIDIA driver");
    else
        line1(f, l, " gpumux:");
    line1(f, l, "%5s   %-7s  %-18s  %18s   %s", "GPU", "Mode", "Holder", "Reserved / Total",
          "Workloads");
    rule_line(f, l, '|', '=');
    size_t i;
    const json_t *g, *w;
    json_array_foreach(gpus, i, g)
    {
        char idx[16], mem[64], names[256], shown[128], holder[24];
        const char *mode = str(g, "mode"), *h = str(g, "holder");
        gm_cli_jint(g, "index", "?", idx, sizeof(idx));
        mib_pair(g, mem, sizeof(mem));
        joined_names(json_object_get(g, "workloads"), names, sizeof(names));
        cut_right(names, names_w, shown, sizeof(shown));
        char vfio[64];
        if (h != NULL && json_is_string(json_object_get(g, "passthrough")))
            snprintf(vfio, sizeof(vfio), "%s (vfio)", h), h = vfio;
        cut_right(h ? h : "-", 18, holder, sizeof(holder));
        line1(f, l, "%5s   %-7s  %-18s  %18s   %s", idx, mode ? mode : NA, holder, mem, shown);
        /* A GPU the driver fails (nvidia-smi: "GPU is lost"): its readings above are N/A. */
        const char *lost = str(g, "error");
        if (lost != NULL)
            line1(f, l, "%5s   LOST: %s", "", lost);
    }
    if (json_array_size(gpus) == 0)
        line1(f, l, "  No GPUs");
    rule_line(f, l, '+', '-');
    if (wl == NULL)
        return 0;
    line1(f, l, "  %-20s  %-5s  %-6s  %7s  %9s  %s", "Workload", "GPU", "Mode", "Compute",
          "Mem limit", "State");
    rule_line(f, l, '|', '=');
    json_array_foreach(wl, i, w) if (is_running(w)) workload_row(f, l, w);
    json_array_foreach(wl, i, w) if (!is_running(w)) workload_row(f, l, w);
    if (json_array_size(wl) == 0)
        line1(f, l, "  No workloads");
    rule_line(f, l, '+', '-');
    return 0;
}

/* ---- Entry points ------------------------------------------------------------------------ */

typedef int (*writer)(FILE *f, const json_t *answer, const json_t *workloads, struct gm_error *err);

static int to_string(writer w, const json_t *answer, const json_t *workloads, char **out,
                     struct gm_error *err)
{
    size_t size = 0;
    FILE *f = text_open(out, &size, err);
    if (f == NULL)
        return -GM_ENOMEM;
    return text_close(f, out, w(f, answer, workloads, err), err);
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

/* ---- -L, -q, dmon, pmon ------------------------------------------------------------------ */

int gm_cli_smi_list(const json_t *answer, char **out, struct gm_error *err)
{
    const json_t *gpus = gpu_array(answer, err);
    if (gpus == NULL)
        return -GM_EIO;
    size_t size = 0, i;
    const json_t *g;
    FILE *f = text_open(out, &size, err);
    if (f == NULL)
        return -GM_ENOMEM;
    json_array_foreach(gpus, i, g)
    {
        char idx[16];
        const char *name = str(g, "name"), *uuid = str(g, "uuid");
        gm_cli_jint(g, "index", "?", idx, sizeof(idx));
        fprintf(f, "GPU %s: %s (UUID: %s)\n", idx, name ? name : NA, uuid ? uuid : NA);
    }
    return text_close(f, out, 0, err);
}

#define GM_SMI_SECTIONS(X)                                                                         \
    X(MEMORY, 1u << 0)                                                                             \
    X(UTILIZATION, 1u << 1)                                                                        \
    X(ECC, 1u << 2)                                                                                \
    X(TEMPERATURE, 1u << 3)                                                                        \
    X(POWER, 1u << 4)                                                                              \
    X(CLOCK, 1u << 5)                                                                              \
    X(COMPUTE, 1u << 6)                                                                            \
    X(PIDS, 1u << 7)                                                                               \
    X(PERFORMANCE, 1u << 8)

enum {
#define GM_X(name, bit) SEC_##name = bit,
    GM_SMI_SECTIONS(GM_X)
#undef GM_X
};

int gm_cli_smi_parse_display(const char *spec, unsigned *sections, struct gm_error *err)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {
#define GM_X(name, bit) {#name, bit},
        GM_SMI_SECTIONS(GM_X)
#undef GM_X
    };
    char *copy = strdup(spec);
    if (copy == NULL)
        return gm_err(err, GM_ENOMEM, "out of memory");
    int rc = 0;
    *sections = 0;
    for (char *p = copy, *tok; (tok = strsep(&p, ",")) != NULL;) {
        while (*tok == ' ')
            tok++;
        size_t k, n = sizeof(names) / sizeof(names[0]);
        for (k = 0; k < n && strcasecmp(names[k].name, tok) != 0; k++)
            ;
        if (k == n) {
            rc = gm_err(err, GM_EINVAL,
                        "-d: '%s' is not a display type (MEMORY, UTILIZATION, ECC, TEMPERATURE, "
                        "POWER, CLOCK, COMPUTE, PIDS, PERFORMANCE)",
                        tok);
            break;
        }
        *sections |= names[k].bit;
    }
    free(copy);
    return rc;
}

/* "    Label                                 : value": the colon in column 43, as nvidia-smi. */
static void kv(FILE *f, int depth, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void kv(FILE *f, int depth, const char *label, const char *fmt, ...)
{
    char value[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    int pad = 42 - 4 * depth;
    fprintf(f, "%*s%-*s: %s\n", 4 * depth, "", pad < 1 ? 1 : pad, label, value);
}

static void head(FILE *f, int depth, const char *label)
{
    fprintf(f, "%*s%s\n", 4 * depth, "", label);
}

/* A number with a unit ("15109 MiB", "9.52 W"), or N/A. */
static const char *val(const json_t *obj, const char *key, double scale, const char *fmt_unit,
                       char *buf, size_t len)
{
    double d;
    if (!number(obj, key, &d))
        return NA;
    if (strcmp(fmt_unit, "W") == 0)
        snprintf(buf, len, "%.2f W", d);
    else
        snprintf(buf, len, "%lld%s%s", (long long)(d / scale), fmt_unit[0] ? " " : "", fmt_unit);
    return buf;
}

static const char *sval(const json_t *obj, const char *key)
{
    const char *s = str(obj, key);
    return s != NULL ? s : NA;
}

static void detail_gpu(FILE *f, const json_t *g, unsigned sec)
{
    char b[64];
    fprintf(f, "GPU %s\n", sval(g, "pci_bus_id"));
    if (sec == 0) {
        kv(f, 1, "Product Name", "%s", sval(g, "name"));
        kv(f, 1, "Display Active", "%s",
           strcmp(on_off(str(g, "display_active")), "On") == 0 ? "Enabled" : "Disabled");
        kv(f, 1, "Persistence Mode", "%s", sval(g, "persistence_mode"));
        head(f, 1, "MIG Mode");
        kv(f, 2, "Current", "%s", sval(g, "mig_mode"));
        kv(f, 1, "Serial Number", "%s", sval(g, "serial"));
        kv(f, 1, "GPU UUID", "%s", sval(g, "uuid"));
        kv(f, 1, "Minor Number", "%s", val(g, "minor_number", 1, "", b, sizeof(b)));
        kv(f, 1, "VBIOS Version", "%s", sval(g, "vbios_version"));
        head(f, 1, "PCI");
        kv(f, 2, "Bus Id", "%s", sval(g, "pci_bus_id"));
        head(f, 2, "GPU Link Info");
        head(f, 3, "PCIe Generation");
        kv(f, 4, "Max", "%s", val(g, "pcie_link_gen_max", 1, "", b, sizeof(b)));
        kv(f, 4, "Current", "%s", val(g, "pcie_link_gen_current", 1, "", b, sizeof(b)));
        head(f, 3, "Link Width");
        kv(f, 4, "Max", "%s", val(g, "pcie_link_width_max", 1, "", b, sizeof(b)));
        kv(f, 4, "Current", "%s", val(g, "pcie_link_width_current", 1, "", b, sizeof(b)));
        kv(f, 1, "Fan Speed", "%s", val(g, "fan_speed", 1, "%", b, sizeof(b)));
    }
    if (sec == 0 || (sec & SEC_PERFORMANCE)) {
        kv(f, 1, "Performance State", "%s", sval(g, "pstate"));
        const json_t *r = json_object_get(g, "clocks_event_reasons");
        if (json_is_integer(r))
            kv(f, 1, "Clocks Event Reasons", "0x%016llx",
               (unsigned long long)json_integer_value(r));
        else
            kv(f, 1, "Clocks Event Reasons", "%s", NA);
    }
    if (sec == 0 || (sec & SEC_MEMORY)) {
        head(f, 1, "FB Memory Usage");
        kv(f, 2, "Total", "%s", val(g, "memory_total", MIB, "MiB", b, sizeof(b)));
        kv(f, 2, "Reserved", "%s", val(g, "memory_driver_reserved", MIB, "MiB", b, sizeof(b)));
        /* As nvidia-smi's -q: Reserved, Used and Free add up to Total, so Used leaves out
         * what the driver keeps for itself. */
        double used, reserved;
        if (number(g, "memory_used", &used) && number(g, "memory_driver_reserved", &reserved))
            kv(f, 2, "Used", "%lld MiB",
               (long long)((used > reserved ? used - reserved : 0) / MIB));
        else
            kv(f, 2, "Used", "%s", val(g, "memory_used", MIB, "MiB", b, sizeof(b)));
        kv(f, 2, "Free", "%s", val(g, "memory_free", MIB, "MiB", b, sizeof(b)));
    }
    if (sec == 0 || (sec & SEC_COMPUTE))
        kv(f, 1, "Compute Mode", "%s", sval(g, "compute_mode"));
    if (sec == 0 || (sec & SEC_UTILIZATION)) {
        head(f, 1, "Utilization");
        kv(f, 2, "Gpu", "%s", val(g, "utilization_gpu", 1, "%", b, sizeof(b)));
        kv(f, 2, "Memory", "%s", val(g, "utilization_memory", 1, "%", b, sizeof(b)));
        kv(f, 2, "Encoder", "%s", val(g, "utilization_encoder", 1, "%", b, sizeof(b)));
        kv(f, 2, "Decoder", "%s", val(g, "utilization_decoder", 1, "%", b, sizeof(b)));
    }
    if (sec == 0 || (sec & SEC_ECC)) {
        head(f, 1, "ECC Mode");
        kv(f, 2, "Current", "%s", sval(g, "ecc_mode"));
        head(f, 1, "ECC Errors");
        head(f, 2, "Volatile");
        kv(f, 3, "DRAM Uncorrectable", "%s",
           val(g, "ecc_errors_uncorrected_volatile", 1, "", b, sizeof(b)));
    }
    if (sec == 0 || (sec & SEC_TEMPERATURE)) {
        head(f, 1, "Temperature");
        kv(f, 2, "GPU Current Temp", "%s", val(g, "temperature_gpu", 1, "C", b, sizeof(b)));
        kv(f, 2, "Memory Current Temp", "%s", val(g, "temperature_memory", 1, "C", b, sizeof(b)));
    }
    if (sec == 0 || (sec & SEC_POWER)) {
        head(f, 1, "GPU Power Readings");
        kv(f, 2, "Power Draw", "%s", val(g, "power_draw_w", 1, "W", b, sizeof(b)));
        kv(f, 2, "Current Power Limit", "%s", val(g, "power_mgmt_limit_w", 1, "W", b, sizeof(b)));
        kv(f, 2, "Enforced Power Limit", "%s", val(g, "power_limit_w", 1, "W", b, sizeof(b)));
    }
    if (sec == 0 || (sec & SEC_CLOCK)) {
        head(f, 1, "Clocks");
        kv(f, 2, "Graphics", "%s", val(g, "clocks_graphics", 1, "MHz", b, sizeof(b)));
        kv(f, 2, "SM", "%s", val(g, "clocks_sm", 1, "MHz", b, sizeof(b)));
        kv(f, 2, "Memory", "%s", val(g, "clocks_mem", 1, "MHz", b, sizeof(b)));
        head(f, 1, "Max Clocks");
        kv(f, 2, "Graphics", "%s", val(g, "clocks_max_graphics", 1, "MHz", b, sizeof(b)));
        kv(f, 2, "SM", "%s", val(g, "clocks_max_sm", 1, "MHz", b, sizeof(b)));
        kv(f, 2, "Memory", "%s", val(g, "clocks_max_mem", 1, "MHz", b, sizeof(b)));
    }
    if (sec == 0 || (sec & SEC_PIDS)) {
        const json_t *procs = json_object_get(g, "processes"), *p;
        size_t i;
        if (json_array_size(procs) == 0)
            kv(f, 1, "Processes", "None");
        else
            head(f, 1, "Processes");
        json_array_foreach(procs, i, p)
        {
            kv(f, 2, "GPU instance ID", "%s", NA);
            kv(f, 2, "Compute instance ID", "%s", NA);
            kv(f, 2, "Process ID", "%s", val(p, "pid", 1, "", b, sizeof(b)));
            kv(f, 3, "Type", "%s", sval(p, "type"));
            kv(f, 3, "Name", "%s", sval(p, "name"));
            kv(f, 3, "Used GPU Memory", "%s", val(p, "used_memory", MIB, "MiB", b, sizeof(b)));
            /* gpumux's addition: the workload the process belongs to. */
            if (str(p, "workload") != NULL)
                kv(f, 3, "Workload", "%s", str(p, "workload"));
        }
    }
    if (sec == 0) {
        char names[256];
        head(f, 1, "gpumux");
        kv(f, 2, "Sharing Mode", "%s", sval(g, "mode"));
        kv(f, 2, "Holder", "%s", str(g, "holder") ? str(g, "holder") : "None");
        kv(f, 2, "Reserved by Workloads", "%s",
           val(g, "memory_reserved", MIB, "MiB", b, sizeof(b)));
        joined_names(json_object_get(g, "workloads"), names, sizeof(names));
        kv(f, 2, "Workloads", "%s", strcmp(names, "-") == 0 ? "None" : names);
    }
    fputc('\n', f);
}

int gm_cli_smi_detail(const json_t *answer, unsigned sections, char **out, struct gm_error *err)
{
    const json_t *gpus = gpu_array(answer, err);
    if (gpus == NULL)
        return -GM_EIO;
    size_t size = 0, i;
    const json_t *g, *drv = json_object_get(answer, "driver");
    FILE *f = text_open(out, &size, err);
    if (f == NULL)
        return -GM_ENOMEM;
    char stamp[64] = NA;
    time_t t;
    struct tm tm;
    if (gm_cli_parse_time(str(answer, "timestamp"), &t) == 0 && localtime_r(&t, &tm) != NULL)
        strftime(stamp, sizeof(stamp), "%a %b %e %H:%M:%S %Y", &tm);
    fputs("\n==============NVSMI LOG==============\n\n", f);
    kv(f, 0, "Timestamp", "%s", stamp);
    kv(f, 0, "Driver Version", "%s", sval(drv, "driver_version"));
    kv(f, 0, "CUDA Version", "%s", sval(drv, "cuda_version"));
    fputc('\n', f);
    kv(f, 0, "Attached GPUs", "%zu", json_array_size(gpus));
    json_array_foreach(gpus, i, g) detail_gpu(f, g, sections);
    return text_close(f, out, 0, err);
}

/* A right-aligned column of width w: the number, or "-" as nvidia-smi's monitors print. */
static void mon_col(FILE *f, const json_t *obj, const char *key, double scale, int w)
{
    double d;
    if (obj != NULL && number(obj, key, &d))
        fprintf(f, " %*lld", w, (long long)(d / scale));
    else
        fprintf(f, " %*s", w, "-");
}

int gm_cli_smi_dmon(const json_t *answer, int header, char **out, struct gm_error *err)
{
    const json_t *gpus = gpu_array(answer, err);
    if (gpus == NULL)
        return -GM_EIO;
    size_t size = 0, i;
    const json_t *g;
    FILE *f = text_open(out, &size, err);
    if (f == NULL)
        return -GM_ENOMEM;
    if (header)
        fputs("# gpu   pwr gtemp mtemp    sm   mem   enc   dec  mclk  pclk\n"
              "# Idx     W     C     C     %     %     %     %   MHz   MHz\n",
              f);
    json_array_foreach(gpus, i, g)
    {
        char idx[16];
        gm_cli_jint(g, "index", "-", idx, sizeof(idx));
        fprintf(f, "%5s", idx);
        mon_col(f, g, "power_draw_w", 1, 5);
        mon_col(f, g, "temperature_gpu", 1, 5);
        mon_col(f, g, "temperature_memory", 1, 5);
        mon_col(f, g, "utilization_gpu", 1, 5);
        mon_col(f, g, "utilization_memory", 1, 5);
        mon_col(f, g, "utilization_encoder", 1, 5);
        mon_col(f, g, "utilization_decoder", 1, 5);
        mon_col(f, g, "clocks_mem", 1, 5);
        mon_col(f, g, "clocks_graphics", 1, 5);
        fputc('\n', f);
    }
    return text_close(f, out, 0, err);
}

int gm_cli_smi_pmon(const json_t *answer, int header, char **out, struct gm_error *err)
{
    const json_t *gpus = gpu_array(answer, err);
    if (gpus == NULL)
        return -GM_EIO;
    size_t size = 0, i, k;
    const json_t *g, *p;
    FILE *f = text_open(out, &size, err);
    if (f == NULL)
        return -GM_ENOMEM;
    /* nvidia-smi pmon's columns, then gpumux's: the workload each process belongs to. */
    if (header)
        fputs("# gpu        pid  type    sm   mem   fb   command            workload\n"
              "# Idx          #   C/G     %     %   MB   name               name\n",
              f);
    json_array_foreach(gpus, i, g)
    {
        char idx[16];
        gm_cli_jint(g, "index", "-", idx, sizeof(idx));
        const json_t *procs = json_object_get(g, "processes");
        if (json_array_size(procs) == 0) {
            fprintf(f, "%5s %10s %5s %5s %5s %4s   %-18s %s\n", idx, "-", "-", "-", "-", "-", "-",
                    "-");
            continue;
        }
        json_array_foreach(procs, k, p)
        {
            char pid[24], cmd[64];
            const char *name = str(p, "name"), *wl = str(p, "workload");
            const char *base = name != NULL && strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
            gm_cli_jint(p, "pid", "-", pid, sizeof(pid));
            snprintf(cmd, sizeof(cmd), "%.18s", base ? base : "-");
            fprintf(f, "%5s %10s %5s", idx, pid, sval(p, "type"));
            mon_col(f, p, "sm_util", 1, 5);
            mon_col(f, p, "mem_util", 1, 5);
            mon_col(f, p, "used_memory", MIB, 4);
            fprintf(f, "   %-18s %s\n", cmd, wl ? wl : "-");
        }
    }
    return text_close(f, out, 0, err);
}

/* Keep only the workloads on the answer's GPUs (after -i), for gpumux's section. */
void gm_cli_smi_select_workloads(const json_t *answer, json_t *workloads)
{
    json_t *wl = json_object_get(workloads, "workloads"), *keep = json_array(), *w;
    const json_t *gpus = json_object_get(answer, "gpus"), *g, *wg;
    size_t i, k, j;
    if (!json_is_array(wl) || keep == NULL) {
        json_decref(keep);
        return;
    }
    json_array_foreach(wl, i, w)
    {
        int on = 0;
        json_array_foreach(json_object_get(w, "gpus"), k, wg)
        {
            const char *u = str(wg, "uuid");
            json_array_foreach(gpus, j, g) if (u != NULL && str(g, "uuid") != NULL &&
                                               strcmp(u, str(g, "uuid")) == 0) on = 1;
        }
        if (on)
            json_array_append(keep, w);
    }
    json_object_set_new(workloads, "workloads", keep);
}
