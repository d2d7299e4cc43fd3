/* The smi formatters against nvidia-smi's own output. */
#include "cli/smi_format.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB "1048576"

/* The seed's sample: one T4 under MPS running two n-body benchmarks. */
static const char sample_json[] =
    "{\"hostname\": \"edge-1\", \"timestamp\": \"2021-01-25T10:00:00.250Z\","
    " \"driver\": {\"kind\": \"nvml\", \"driver_version\": \"460.32.03\","
    "              \"cuda_version\": \"11.2\", \"nvml_version\": \"11.460.32.03\"},"
    " \"gpus\": [{\"index\": 0, \"uuid\": \"GPU-6d1a2b3c-0000-1111-2222-333344445555\","
    "   \"name\": \"Tesla T4\", \"pci_bus_id\": \"0000E00B:00:00.0\", \"mode\": \"mps\","
    "   \"holder\": null, \"memory_total\": 15842934784, \"memory_used\": 253755392,"
    "   \"memory_free\": 15589179392, \"memory_reserved\": 2147483648,"
    "   \"utilization_gpu\": 100, \"utilization_memory\": 41, \"temperature_gpu\": 45,"
    "   \"power_draw_w\": 68.12, \"power_limit_w\": 70.0, \"power_mgmt_limit_w\": 70.0,"
    "   \"pstate\": \"P0\","
    "   \"compute_mode\": \"Exclusive_Process\", \"persistence_mode\": \"Enabled\","
    "   \"display_active\": \"Off\", \"fan_speed\": null, \"ecc_errors_uncorrected_volatile\": 0,"
    "   \"mig_mode\": null, \"compute_capability\": \"7.5\","
    "   \"processes\": ["
    "     {\"pid\": 144377, \"type\": \"M+C\", \"name\": \"/tmp/nbody\", \"used_memory\": "
    "112197632},"
    "     {\"pid\": 144379, \"type\": \"M+C\", \"name\": \"/tmp/nbody\", \"used_memory\": "
    "112197632},"
    "     {\"pid\": 144443, \"type\": \"C\", \"name\": \"nvidia-cuda-mps-server\","
    "      \"used_memory\": 26214400}],"
    "   \"workloads\": [\"cuda-sample1\", \"cuda-sample2\"]}]}";

/* Two idle T4s as a cloud VM shows them: persistence off, nothing running. */
static const char idle_json[] =
    "{\"hostname\": \"edge-2\", \"timestamp\": \"2026-11-25T17:01:02.123Z\","
    " \"driver\": {\"kind\": \"nvml\", \"driver_version\": \"470.82.01\","
    "              \"cuda_version\": \"11.4\"},"
    " \"gpus\": ["
    "  {\"index\": 0, \"uuid\": \"GPU-0\", \"name\": \"Tesla T4\", \"pci_bus_id\": "
    "\"00000000:00:04.0\","
    "   \"mode\": \"shared\", \"holder\": null, \"memory_total\": 15842934784, \"memory_used\": 0,"
    "   \"memory_free\": 15842934784, \"memory_reserved\": 0, \"utilization_gpu\": 0,"
    "   \"utilization_memory\": 0, \"temperature_gpu\": 30, \"power_draw_w\": 9.5,"
    "   \"power_limit_w\": 70.0, \"pstate\": \"P8\", \"compute_mode\": \"Default\","
    "   \"persistence_mode\": \"Disabled\", \"display_active\": \"Off\", \"fan_speed\": null,"
    "   \"ecc_errors_uncorrected_volatile\": 0, \"mig_mode\": null, \"processes\": [],"
    "   \"workloads\": []},"
    "  {\"index\": 1, \"uuid\": \"GPU-1\", \"name\": \"Tesla T4\", \"pci_bus_id\": "
    "\"00000000:00:05.0\","
    "   \"mode\": \"vm\", \"holder\": \"vm1\", \"memory_total\": 15842934784, \"memory_used\": 0,"
    "   \"memory_free\": 15842934784, \"memory_reserved\": 0, \"utilization_gpu\": 0,"
    "   \"utilization_memory\": 0, \"temperature_gpu\": 29, \"power_draw_w\": 8.9,"
    "   \"power_limit_w\": 70.0, \"pstate\": \"P8\", \"compute_mode\": \"Prohibited\","
    "   \"persistence_mode\": \"Disabled\", \"display_active\": \"Off\", \"fan_speed\": null,"
    "   \"ecc_errors_uncorrected_volatile\": null, \"mig_mode\": null, \"processes\": [],"
    "   \"workloads\": []}]}";

static const char idle_table[] =
    "+-----------------------------------------------------------------------------+\n"
    "| NVIDIA-SMI 470.82.01    Driver Version: 470.82.01    CUDA Version: 11.4     |\n"
    "|-------------------------------+----------------------+----------------------+\n"
    "| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |\n"
    "| Fan  Temp  Perf  Pwr:Usage/Cap|         Memory-Usage | GPU-Util  Compute M. |\n"
    "|                               |                      |               MIG M. |\n"
    "|===============================+======================+======================|\n"
    "|   0  Tesla T4            Off  | 00000000:00:04.0 Off |                    0 |\n"
    "| N/A   30C    P8     9W /  70W |      0MiB / 15109MiB |      0%      Default |\n"
    "|                               |                      |                  N/A |\n"
    "+-------------------------------+----------------------+----------------------+\n"
    "|   1  Tesla T4            Off  | 00000000:00:05.0 Off |                  N/A |\n"
    "| N/A   29C    P8     8W /  70W |      0MiB / 15109MiB |      0%   Prohibited |\n"
    "|                               |                      |                  N/A |\n"
    "+-------------------------------+----------------------+----------------------+\n"
    "\n"
    "+-----------------------------------------------------------------------------+\n"
    "| Processes:                                                                  |\n"
    "|  GPU   GI   CI        PID   Type   Process name                  GPU Memory |\n"
    "|        ID   ID                                                   Usage      |\n"
    "|=============================================================================|\n"
    "|  No running processes found                                                 |\n"
    "+-----------------------------------------------------------------------------+\n";

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    cr_assert_not_null(j, "test JSON does not parse: %s (line %d)", je.text, je.line);
    return j;
}

static char *read_file(const char *rel)
{
    const char *src = getenv("GM_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", src ? src : ".", rel);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s (is GM_SOURCE_DIR set?)", path);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&buf, &cap, '\0', f);
    fclose(f);
    cr_assert(n > 0, "%s is empty", path);
    return buf;
}

/* Compare line by line so a failure names the first differing line. */
static void assert_same_lines(const char *got, const char *want)
{
    int line = 1;
    while (*got || *want) {
        size_t g = strcspn(got, "\n"), w = strcspn(want, "\n");
        cr_assert(g == w && strncmp(got, want, g) == 0,
                  "line %d differs:\n  got:  '%.*s'\n  want: '%.*s'", line, (int)g, got, (int)w,
                  want);
        got += g + (got[g] == '\n');
        want += w + (want[w] == '\n');
        line++;
    }
}

static void assert_all_79(const char *text)
{
    int line = 1;
    for (const char *p = text; *p; line++) {
        size_t n = strcspn(p, "\n");
        cr_assert(n == 79 || n == 0, "line %d is %zu columns: '%.*s'", line, n, (int)n, p);
        p += n + (p[n] == '\n');
    }
}

Test(smi_table, reproduces_the_seed_sample_line_for_line)
{
    json_t *answer = load(sample_json);
    char *want = read_file("tests/unit/data/nvidia-smi-sample.txt"), *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_nvsmi(answer, &got, &err), 0, "%s", err.msg);
    assert_same_lines(got, want);
    cr_assert_str_eq(got, want);
    free(got);
    free(want);
    json_decref(answer);
}

Test(smi_table, view_is_hostname_blank_line_table_then_gpumux_section)
{
    json_t *answer = load(sample_json);
    json_t *wl =
        load("{\"workloads\": ["
             " {\"name\": \"cuda-sample1\", \"gpus\": [{\"index\": 0, \"uuid\": \"GPU-6d\"}],"
             "  \"gpu_mode\": \"mps\", \"compute_pct\": 20, \"memory_limit\": 1073741824,"
             "  \"state\": \"running\", \"pid\": 144377},"
             " {\"name\": \"a-very-long-workload-name-indeed\", \"gpus\": [],"
             "  \"gpu_mode\": \"shared\", \"compute_pct\": null, \"memory_limit\": null,"
             "  \"state\": \"exited\", \"pid\": null}]}");
    char *sample = read_file("tests/unit/data/nvidia-smi-sample.txt"), *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_view(answer, wl, &got, &err), 0, "%s", err.msg);
    cr_assert(strncmp(got, "edge-1\n\n", 8) == 0, "starts with '%.20s'", got);
    cr_assert(strncmp(got + 8, sample, strlen(sample)) == 0, "nvidia-smi part differs:\n%s", got);
    const char *rest = got + 8 + strlen(sample);
    cr_assert(rest[0] == '\n', "a blank line separates the sections");
    assert_all_79(rest + 1);
    static const char gpumux[] =
        "+-----------------------------------------------------------------------------+\n"
        "| gpumux: NVIDIA driver                                                       |\n"
        "|  GPU   Mode     Holder                Reserved / Total   Workloads          |\n"
        "|=============================================================================|\n"
        "|    0   mps      -                   2048MiB / 15109MiB   cuda-sample1,cud...|\n"
        "+-----------------------------------------------------------------------------+\n"
        "|  Workload              GPU    Mode    Compute  Mem limit  State             |\n"
        "|=============================================================================|\n"
        "|  cuda-sample1          0      mps         20%    1024MiB  running           |\n"
        "|  a-very-long-workl...  -      shared        -          -  exited            |\n"
        "+-----------------------------------------------------------------------------+\n";
    assert_same_lines(rest + 1, gpumux);
    free(got);
    free(sample);
    json_decref(answer);
    json_decref(wl);
}

Test(smi_table, two_idle_gpus_show_no_running_processes)
{
    json_t *answer = load(idle_json);
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_nvsmi(answer, &got, &err), 0, "%s", err.msg);
    assert_same_lines(got, idle_table);
    free(got);

    cr_assert_eq(gm_cli_smi_gpumux(answer, NULL, &got, &err), 0, "%s", err.msg);
    cr_assert_not_null(strstr(got, "|    1   vm       vm1                    0MiB / 15109MiB   -"),
                       "the VM holding GPU 1 is shown:\n%s", got);
    cr_assert_null(strstr(got, "Workload "), "no workload table without workloads:\n%s", got);
    free(got);
    json_decref(answer);
}

/* One GPU as the daemon answers for it, with the readings of a published nvidia-smi output. */
static json_t *one_gpu(const char *driver, const char *cuda, const char *name, const char *bus,
                       const char *persistence, int temp, const char *pstate, double draw,
                       double cap, long long used_mib, long long total_mib, int util,
                       const char *ecc, const char *mig, const char *procs)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "{\"hostname\": \"h\", \"driver\": {\"kind\": \"nvml\", \"driver_version\": \"%s\","
             " \"cuda_version\": \"%s\"}, \"gpus\": [{\"index\": 0, \"uuid\": \"GPU-x\","
             " \"name\": \"%s\", \"pci_bus_id\": \"%s\", \"mode\": \"shared\", \"holder\": null,"
             " \"memory_total\": %lld, \"memory_used\": %lld, \"memory_reserved\": 0,"
             " \"utilization_gpu\": %d, \"temperature_gpu\": %d, \"power_draw_w\": %.2f,"
             " \"power_limit_w\": %.2f, \"pstate\": \"%s\", \"compute_mode\": \"Default\","
             " \"persistence_mode\": \"%s\", \"display_active\": \"Off\", \"fan_speed\": null,"
             " \"ecc_errors_uncorrected_volatile\": %s, \"mig_mode\": %s, \"processes\": [%s],"
             " \"workloads\": []}]}",
             driver, cuda, name, bus, total_mib * 1048576, used_mib * 1048576, util, temp, draw,
             cap, pstate, persistence, ecc, mig, procs);
    return load(text);
}

static void assert_table(json_t *answer, const char *sample)
{
    char *want = read_file(sample), *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_nvsmi(answer, &got, &err), 0, "%s", err.msg);
    assert_same_lines(got, want);
    cr_assert_str_eq(got, want);
    free(got);
    free(want);
    json_decref(answer);
}

/* The data files are nvidia-smi's own output on each driver generation, as published with
 * those readings; the blank line between the boxes is the row of blanks nvidia-smi prints
 * (copies pasted into documents often lose it). */
Test(smi_layout, driver_535_prints_the_89_column_table)
{
    assert_table(one_gpu("535.104.05", "12.2", "NVIDIA L4", "00000000:00:03.0", "Enabled", 53, "P8",
                         13.2, 72.0, 4, 23034, 0, "0", "null", ""),
                 "tests/unit/data/nvidia-smi-535.txt");
}

Test(smi_layout, driver_550_prints_the_91_column_table)
{
    assert_table(one_gpu("550.54.15", "12.5", "NVIDIA A100 80GB PCIe", "00000001:00:00.0",
                         "Enabled", 29, "P0", 40.1, 300.0, 0, 81920, 0, "0", "\"Disabled\"", ""),
                 "tests/unit/data/nvidia-smi-550.txt");
}

/* The name is given as that nvidia-smi printed it: how it shortened the board's full name is
 * not in the sample. */
Test(smi_layout, driver_590_prints_the_wide_pid_column)
{
    assert_table(one_gpu("590.48.01", "13.1", "NVIDIA GeForce RTX 3050 ...", "00000000:01:00.0",
                         "Disabled", 41, "P0", 11.0, 75.0, 8, 6144, 6, "null", "null",
                         "{\"pid\": 4462, \"type\": \"G\", \"name\": \"/usr/bin/gnome-shell\","
                         " \"used_memory\": 1048576},"
                         "{\"pid\": 78525, \"type\": \"C\", \"name\": \"/usr/local/bin/ollama\","
                         " \"used_memory\": 5257560064}"),
                 "tests/unit/data/nvidia-smi-590.txt");
}

/* Process rows of a 535.129.03 nvidia-smi, the second name cut on the left to 38 columns. */
Test(smi_layout, driver_535_process_rows)
{
    json_t *answer = one_gpu(
        "535.129.03", "12.2", "NVIDIA GeForce GTX 1050 Ti", "00000000:01:00.0", "Disabled", 46,
        "P8", 0, 75, 6, 4096, 0, "null", "null",
        "{\"pid\": 2239, \"type\": \"G\", \"name\": \"/usr/lib/xorg/Xorg\", \"used_memory\": "
        "4194304},"
        "{\"pid\": 2515, \"type\": \"G\","
        " \"name\": \"/usr/libexec/gnome-remote-desktop-daemon\", \"used_memory\": 1048576}");
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_nvsmi(answer, &got, &err), 0, "%s", err.msg);
    cr_assert_not_null(strstr(got, "|    0   N/A  N/A      2239      G   /usr/lib/xorg/Xorg"
                                   "                            4MiB |\n"),
                       "%s", got);
    cr_assert_not_null(strstr(got, "|    0   N/A  N/A      2515      G   ...libexec/gnome-remote-"
                                   "desktop-daemon        1MiB |\n"),
                       "%s", got);
    cr_assert_not_null(strstr(got, "|   0  NVIDIA GeForce GTX 1050 Ti     Off | 00000000:01:00.0 "
                                   "Off |                  N/A |\n"),
                       "%s", got);
    free(got);
    json_decref(answer);
}

/* Memory-Usage as each generation reads it: v2 (used without the driver's reserve) from 530. */
Test(smi_layout, memory_usage_leaves_out_the_reserve_from_530)
{
    static const struct {
        const char *version, *want;
    } cases[] = {{"470.82.01", "   1024MiB / 15360MiB"}, {"535.104.05", "    768MiB / 15360MiB"}};
    for (size_t i = 0; i < 2; i++) {
        json_t *answer = one_gpu(cases[i].version, "12.0", "Tesla T4", "00000000:00:04.0",
                                 "Enabled", 40, "P0", 20, 70, 1024, 15360, 0, "0", "null", "");
        json_object_set_new(json_array_get(json_object_get(answer, "gpus"), 0),
                            "memory_driver_reserved", json_integer(256LL << 20));
        char *got = NULL;
        struct gm_error err = {0};
        cr_assert_eq(gm_cli_smi_nvsmi(answer, &got, &err), 0, "%s", err.msg);
        cr_assert_not_null(strstr(got, cases[i].want), "%s: %s", cases[i].version, got);
        free(got);
        json_decref(answer);
    }
}

Test(smi_layout, version_picks_the_layout_and_the_gpumux_section_follows)
{
    static const struct {
        const char *version;
        size_t width;
    } cases[] = {{"470.82.01", 79}, {"525.60.13", 79}, {"530.30.02", 89}, {"545.23.08", 89},
                 {"550.54.15", 91}, {"575.51.03", 91}, {"580.65.06", 91}, {"garbage", 79}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *answer = one_gpu(cases[i].version, "12.0", "Tesla T4", "00000000:00:04.0",
                                 "Enabled", 40, "P0", 20, 70, 1, 15360, 0, "0", "null", "");
        json_t *wl =
            load("{\"workloads\": [{\"name\": \"w\", \"gpus\": [], \"state\": \"exited\"}]}");
        char *got = NULL;
        struct gm_error err = {0};
        cr_assert_eq(gm_cli_smi_view(answer, wl, &got, &err), 0, "%s", err.msg);
        int line = 1;
        for (const char *p = strchr(got, '\n') + 2; *p; line++) {
            size_t n = strcspn(p, "\n");
            cr_assert(n == cases[i].width || n == 0, "%s: line %d is %zu columns: '%.*s'",
                      cases[i].version, line, n, (int)n, p);
            p += n + (p[n] == '\n');
        }
        free(got);
        json_decref(answer);
        json_decref(wl);
    }
}

Test(smi_table, running_workloads_come_first_in_the_gpumux_section)
{
    json_t *answer = load(sample_json);
    json_t *wl = load("{\"workloads\": ["
                      " {\"name\": \"old-job\", \"gpus\": [], \"state\": \"exited\"},"
                      " {\"name\": \"waiting\", \"gpus\": [], \"state\": \"pending\"},"
                      " {\"name\": \"serving\", \"gpus\": [], \"state\": \"running\"}]}");
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_gpumux(answer, wl, &got, &err), 0, "%s", err.msg);
    const char *r = strstr(got, "serving"), *p = strstr(got, "waiting"),
               *e = strstr(got, "old-job");
    cr_assert(r != NULL && p != NULL && e != NULL, "%s", got);
    cr_assert(r < e && e < p, "running first, then the others in the daemon's order:\n%s", got);
    free(got);
    json_decref(answer);
    json_decref(wl);
}

Test(smi_table, long_names_are_cut_like_nvidia_smi)
{
    json_t *answer = load(sample_json);
    json_t *gpu = json_array_get(json_object_get(answer, "gpus"), 0);
    json_object_set_new(gpu, "name", json_string("NVIDIA A100-SXM4-40GB"));
    json_t *proc = json_array_get(json_object_get(gpu, "processes"), 0);
    json_object_set_new(proc, "name",
                        json_string("/opt/conda/envs/train/bin/python3.10-distributed"));
    json_t *exact = json_array_get(json_object_get(gpu, "processes"), 1);
    json_object_set_new(exact, "name", json_string("/usr/local/bin/exactly-28-ch"));
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_nvsmi(answer, &got, &err), 0, "%s", err.msg);
    assert_all_79(got);
    cr_assert_not_null(
        strstr(got,
               "|   0  NVIDIA A100-SXM...  On   | 0000E00B:00:00.0 Off |                    0 |"),
        "GPU name cut on the right:\n%s", got);
    cr_assert_not_null(
        strstr(got,
               "|    0   N/A  N/A    144377    M+C   ...in/python3.10-distributed      107MiB |"),
        "process name cut on the left to 28 columns:\n%s", got);
    cr_assert_not_null(
        strstr(got,
               "|    0   N/A  N/A    144379    M+C   /usr/local/bin/exactly-28-ch      107MiB |"),
        "a name of exactly 28 columns stays whole:\n%s", got);
    free(got);
    json_decref(answer);
}

Test(smi_table, missing_members_print_na_and_keep_the_box)
{
    json_t *answer = load("{\"gpus\": [{\"index\": 3, \"processes\": [{\"pid\": 7}]}]}");
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_nvsmi(answer, &got, &err), 0, "%s", err.msg);
    assert_all_79(got);
    cr_assert_not_null(strstr(got, "| NVIDIA-SMI N/A          Driver Version: N/A"), "%s", got);
    cr_assert_not_null(strstr(got, "| N/A   N/A   N/A    N/A /  N/A |       N/A /      N/A |"),
                       "%s", got);
    free(got);
    json_decref(answer);
}

Test(smi_table, malformed_answer_is_an_error_not_a_crash)
{
    static const char *bad[] = {"{}", "{\"gpus\": 5}", "{\"gpus\": [1]}", "[]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *answer = load(bad[i]);
        char *got = (char *)"untouched";
        struct gm_error err = {0};
        cr_assert_eq(gm_cli_smi_view(answer, NULL, &got, &err), -GM_EIO, "for %s", bad[i]);
        cr_assert_null(got);
        cr_assert_not_null(strstr(err.msg, "malformed answer from gpumuxd"), "%s", err.msg);
        cr_assert_eq(gm_cli_smi_query(GM_CLI_QUERY_GPU, answer, "index", 0, &got, &err), -GM_EIO);
        json_decref(answer);
    }
    json_t *answer = load(sample_json), *wl = load("{\"workloads\": {}}");
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_view(answer, wl, &got, &err), -GM_EIO);
    cr_assert_null(got);
    json_decref(answer);
    json_decref(wl);
}

static char *query(enum gm_cli_query kind, const char *json, const char *fields, const char *format)
{
    json_t *answer = load(json);
    unsigned flags = 0;
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_parse_format(format, &flags, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_cli_smi_query(kind, answer, fields, flags, &got, &err), 0, "%s", err.msg);
    json_decref(answer);
    return got;
}

Test(smi_query, csv_with_header_and_units)
{
    char *got = query(GM_CLI_QUERY_GPU, sample_json,
                      "index,name,memory.total,memory.used,memory.free,utilization.gpu,"
                      "power.draw,power.limit,temperature.gpu,pstate,compute_mode",
                      "csv");
    cr_assert_str_eq(got, "index, name, memory.total [MiB], memory.used [MiB], memory.free [MiB], "
                          "utilization.gpu [%], power.draw [W], power.limit [W], "
                          "temperature.gpu, pstate, compute_mode\n"
                          "0, Tesla T4, 15109 MiB, 242 MiB, 14867 MiB, 100 %, 68.12 W, 70.00 W, "
                          "45, P0, Exclusive_Process\n");
    free(got);
}

Test(smi_query, noheader_and_nounits)
{
    char *got = query(GM_CLI_QUERY_GPU, idle_json, "index,memory.used,utilization.gpu,power.draw",
                      "csv,noheader");
    cr_assert_str_eq(got, "0, 0 MiB, 0 %, 9.50 W\n1, 0 MiB, 0 %, 8.90 W\n");
    free(got);
    got = query(GM_CLI_QUERY_GPU, idle_json, "index,memory.used,utilization.gpu,power.draw",
                "csv,nounits");
    cr_assert_str_eq(got, "index, memory.used [MiB], utilization.gpu [%], power.draw [W]\n"
                          "0, 0, 0, 9.50\n1, 0, 0, 8.90\n");
    free(got);
    got = query(GM_CLI_QUERY_GPU, idle_json, "memory.total", "csv,noheader,nounits");
    cr_assert_str_eq(got, "15109\n15109\n");
    free(got);
}

Test(smi_query, null_values_print_na_and_aliases_use_canonical_names)
{
    char *got =
        query(GM_CLI_QUERY_GPU, idle_json,
              "gpu_name,gpu_uuid,gpu_bus_id,fan.speed,ecc.errors.uncorrected.volatile.total,"
              "mig.mode.current,driver_version,count,persistence_mode,display_active",
              "csv");
    cr_assert_str_eq(got, "name, uuid, pci.bus_id, fan.speed [%], "
                          "ecc.errors.uncorrected.volatile.total, mig.mode.current, "
                          "driver_version, count, persistence_mode, display_active\n"
                          "Tesla T4, GPU-0, 00000000:00:04.0, [N/A], 0, [N/A], 470.82.01, 2, "
                          "Disabled, Disabled\n"
                          "Tesla T4, GPU-1, 00000000:00:05.0, [N/A], [N/A], [N/A], 470.82.01, 2, "
                          "Disabled, Disabled\n");
    free(got);
    got = query(GM_CLI_QUERY_GPU, idle_json, "fan.speed", "csv,noheader,nounits");
    cr_assert_str_eq(got, "[N/A]\n[N/A]\n");
    free(got);
}

Test(smi_query, compute_apps_one_row_per_process)
{
    char *got =
        query(GM_CLI_QUERY_APPS, sample_json, "pid,process_name,used_memory,gpu_uuid", "csv");
    cr_assert_str_eq(got, "pid, process_name, used_gpu_memory [MiB], gpu_uuid\n"
                          "144377, /tmp/nbody, 107 MiB, GPU-6d1a2b3c-0000-1111-2222-333344445555\n"
                          "144379, /tmp/nbody, 107 MiB, GPU-6d1a2b3c-0000-1111-2222-333344445555\n"
                          "144443, nvidia-cuda-mps-server, 25 MiB, "
                          "GPU-6d1a2b3c-0000-1111-2222-333344445555\n");
    free(got);
    got = query(GM_CLI_QUERY_APPS, sample_json, "name,gpu_bus_id,used_gpu_memory",
                "csv,noheader,nounits");
    cr_assert_str_eq(got, "/tmp/nbody, 0000E00B:00:00.0, 107\n/tmp/nbody, 0000E00B:00:00.0, 107\n"
                          "nvidia-cuda-mps-server, 0000E00B:00:00.0, 25\n");
    free(got);
    got = query(GM_CLI_QUERY_APPS, idle_json, "pid,used_memory", "csv");
    cr_assert_str_eq(got, "pid, used_gpu_memory [MiB]\n", "no processes: only the header");
    free(got);
}

Test(smi_query, unknown_field_is_refused_with_nvidia_smi_words)
{
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_check_fields(GM_CLI_QUERY_GPU, "index,foo,name", &err), -GM_EINVAL);
    cr_assert_str_eq(err.msg, "Field \"foo\" is not a valid field to query.");
    cr_assert_eq(gm_cli_smi_check_fields(GM_CLI_QUERY_GPU, "index,,name", &err), -GM_EINVAL);
    cr_assert_str_eq(err.msg, "Field \"\" is not a valid field to query.");
    /* A compute-apps field is not a GPU field, and the other way round. */
    cr_assert_eq(gm_cli_smi_check_fields(GM_CLI_QUERY_GPU, "pid", &err), -GM_EINVAL);
    cr_assert_eq(gm_cli_smi_check_fields(GM_CLI_QUERY_APPS, "memory.total", &err), -GM_EINVAL);
    cr_assert_eq(gm_cli_smi_check_fields(GM_CLI_QUERY_GPU, "index, name ,uuid", &err), 0);

    json_t *answer = load(sample_json);
    char *got = NULL;
    cr_assert_eq(gm_cli_smi_query(GM_CLI_QUERY_GPU, answer, "utilization.bogus", 0, &got, &err),
                 -GM_EINVAL);
    cr_assert_null(got);
    json_decref(answer);
}

Test(smi_query, format_options)
{
    unsigned flags = 99;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_parse_format("csv,nounits,noheader", &flags, &err), 0);
    cr_assert_eq(flags, GM_CLI_CSV_NOHEADER | GM_CLI_CSV_NOUNITS);
    cr_assert_lt(gm_cli_smi_parse_format("xml", &flags, &err), 0);
    cr_assert_lt(gm_cli_smi_parse_format("noheader", &flags, &err), 0, "csv is required");
}

Test(smi_select, keeps_the_named_gpus)
{
    json_t *answer = load(idle_json);
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_select(answer, "00000000:00:05.0", &err), 0, "%s", err.msg);
    json_t *gpus = json_object_get(answer, "gpus");
    cr_assert_eq(json_array_size(gpus), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(gpus, 0), "uuid")), "GPU-1");
    json_decref(answer);

    answer = load(idle_json);
    cr_assert_eq(gm_cli_smi_select(answer, "1,GPU-0", &err), 0, "%s", err.msg);
    cr_assert_eq(json_array_size(json_object_get(answer, "gpus")), 2);
    cr_assert_eq(gm_cli_smi_select(answer, "7", &err), -GM_ENOTFOUND);
    cr_assert(strncmp(err.msg, "GPU 7: no such GPU; give an index, a UUID or its prefix", 55) == 0,
              "%s", err.msg);
    cr_assert(strstr(err.msg, "1 (GPU-1, 00000000:00:05.0)") != NULL, "the valid ones: %s",
              err.msg);
    /* The same rule as the daemon's: blanks in a list, nvidia-smi's short bus id. */
    cr_assert_eq(gm_cli_smi_select(answer, "0:00:05.0", &err), 0, "%s", err.msg);
    cr_assert_eq(json_array_size(json_object_get(answer, "gpus")), 1);
    json_decref(answer);
}

/* ---- -L, -q, --help-query-*, dmon, pmon -------------------------------------------------- */

Test(smi_list, one_line_per_gpu_as_nvidia_smi_L)
{
    json_t *answer = load(idle_json);
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_list(answer, &got, &err), 0, "%s", err.msg);
    cr_assert_str_eq(got, "GPU 0: Tesla T4 (UUID: GPU-0)\nGPU 1: Tesla T4 (UUID: GPU-1)\n");
    free(got);
    json_decref(answer);
}

Test(smi_detail, sections_and_the_gpumux_part)
{
    json_t *answer = load(sample_json);
    json_t *proc = json_array_get(
        json_object_get(json_array_get(json_object_get(answer, "gpus"), 0), "processes"), 0);
    json_object_set_new(proc, "workload", json_string("cuda-sample1"));
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_detail(answer, 0, &got, &err), 0, "%s", err.msg);
    cr_assert(strncmp(got, "\n==============NVSMI LOG==============\n\n", 40) == 0, "%s", got);
    static const char *want[] = {
        "Driver Version                            : 460.32.03\n",
        "Attached GPUs                             : 1\n",
        "GPU 0000E00B:00:00.0\n",
        "    Product Name                          : Tesla T4\n",
        "    FB Memory Usage\n        Total                             : 15109 MiB\n",
        "        Gpu                               : 100 %\n",
        "        GPU Current Temp                  : 45 C\n",
        "        Power Draw                        : 68.12 W\n",
        "    Compute Mode                          : Exclusive_Process\n",
        "        Process ID                        : 144377\n"
        "            Type                          : M+C\n"
        "            Name                          : /tmp/nbody\n"
        "            Used GPU Memory               : 107 MiB\n"
        "            Workload                      : cuda-sample1\n",
        "    gpumux\n        Sharing Mode                      : mps\n",
        "        Workloads                         : cuda-sample1,cuda-sample2\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_not_null(strstr(got, want[i]), "missing '%s' in:\n%s", want[i], got);
    free(got);

    unsigned sections;
    cr_assert_eq(gm_cli_smi_parse_display("memory,PIDS", &sections, &err), 0, "%s", err.msg);
    cr_assert_eq(gm_cli_smi_detail(answer, sections, &got, &err), 0, "%s", err.msg);
    cr_assert_not_null(strstr(got, "FB Memory Usage"), "%s", got);
    cr_assert_not_null(strstr(got, "Process ID"), "%s", got);
    cr_assert_null(strstr(got, "Utilization"), "-d MEMORY,PIDS shows only those:\n%s", got);
    cr_assert_null(strstr(got, "Product Name"), "%s", got);
    cr_assert_null(strstr(got, "gpumux\n"), "%s", got);
    free(got);
    cr_assert_eq(gm_cli_smi_parse_display("MEMORY,BOGUS", &sections, &err), -GM_EINVAL);
    cr_assert_not_null(strstr(err.msg, "'BOGUS' is not a display type"), "%s", err.msg);
    json_decref(answer);
}

Test(smi_help_query, lists_every_field_with_its_aliases)
{
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_help_query(GM_CLI_QUERY_GPU, &got, &err), 0, "%s", err.msg);
    cr_assert(
        strncmp(got, "List of valid properties to query for the switch \"--query-gpu=\":", 64) == 0,
        "%s", got);
    static const char *fields[] = {
        "\"clocks.current.sm\" or \"clocks.sm\"\n",
        "\"clocks.current.memory\" or \"clocks.mem\"\n",
        "\"clocks.max.sm\"\n",
        "\"pcie.link.gen.current\"\n",
        "\"pcie.link.width.current\"\n",
        "\"enforced.power.limit\"\n",
        "\"vbios_version\"\n",
        "\"serial\" or \"gpu_serial\"\n",
        "\"temperature.memory\"\n",
        "\"utilization.encoder\"\n",
        "\"utilization.decoder\"\n",
        "\"memory.reserved\"\n",
        "\"ecc.mode.current\"\n",
        "\"power.draw.average\"\n",
        "\"clocks_event_reasons.active\" or \"clocks_throttle_reasons.active\"\n",
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        cr_assert_not_null(strstr(got, fields[i]), "missing %s", fields[i]);
        /* and what is listed is accepted by the query */
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)(strchr(fields[i] + 1, '"') - fields[i] - 1),
                 fields[i] + 1);
        cr_assert_eq(gm_cli_smi_check_fields(GM_CLI_QUERY_GPU, name, &err), 0, "%s", err.msg);
    }
    free(got);
    cr_assert_eq(gm_cli_smi_help_query(GM_CLI_QUERY_APPS, &got, &err), 0, "%s", err.msg);
    cr_assert_not_null(strstr(got, "\"used_gpu_memory\" or \"used_memory\"\n"), "%s", got);
    free(got);
}

Test(smi_query, the_fields_scripts_use)
{
    json_t *answer = load(sample_json);
    json_t *g = json_array_get(json_object_get(answer, "gpus"), 0);
    json_object_set_new(g, "serial", json_string("1321020022261"));
    json_object_set_new(g, "clocks_sm", json_integer(1590));
    json_object_set_new(g, "clocks_event_reasons", json_integer(0x41));
    json_object_set_new(g, "memory_driver_reserved", json_integer(264241152));
    json_object_set_new(g, "ecc_mode", json_string("Enabled"));
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_query(GM_CLI_QUERY_GPU, answer,
                                  "serial,clocks.sm,clocks_throttle_reasons.active,memory.reserved,"
                                  "ecc.mode.current,temperature.memory,pcie.link.gen.current",
                                  0, &got, &err),
                 0, "%s", err.msg);
    cr_assert_str_eq(got, "serial, clocks.current.sm [MHz], clocks_event_reasons.active, "
                          "memory.reserved [MiB], ecc.mode.current, temperature.memory, "
                          "pcie.link.gen.current\n"
                          "1321020022261, 1590 MHz, 0x0000000000000041, 252 MiB, Enabled, [N/A], "
                          "[N/A]\n");
    free(got);
    json_decref(answer);
}

/* Where the driver answers the field values (an H200 does, a T4 does not), they are printed. */
Test(smi_query, field_values_when_the_driver_has_them)
{
    json_t *answer = load(sample_json);
    json_t *g = json_array_get(json_object_get(answer, "gpus"), 0);
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_query(GM_CLI_QUERY_GPU, answer, "temperature.memory,power.draw.average",
                                  GM_CLI_CSV_NOHEADER, &got, &err),
                 0, "%s", err.msg);
    cr_assert_str_eq(got, "[N/A], [N/A]\n");
    free(got);
    json_object_set_new(g, "temperature_memory", json_integer(41));
    json_object_set_new(g, "power_draw_average_w", json_real(121.5));
    cr_assert_eq(gm_cli_smi_query(GM_CLI_QUERY_GPU, answer, "temperature.memory,power.draw.average",
                                  GM_CLI_CSV_NOHEADER, &got, &err),
                 0, "%s", err.msg);
    cr_assert_str_eq(got, "41, 121.50 W\n");
    free(got);
    cr_assert_eq(gm_cli_smi_detail(answer, 0, &got, &err), 0, "%s", err.msg);
    cr_assert_not_null(strstr(got, "        Memory Current Temp               : 41 C\n"), "%s",
                       got);
    free(got);
    json_decref(answer);
}

Test(smi_monitors, dmon_and_pmon_lines)
{
    json_t *answer = load(sample_json);
    json_t *g = json_array_get(json_object_get(answer, "gpus"), 0);
    json_object_set_new(g, "clocks_mem", json_integer(5001));
    json_object_set_new(g, "clocks_graphics", json_integer(1590));
    json_t *p = json_array_get(json_object_get(g, "processes"), 0);
    json_object_set_new(p, "sm_util", json_integer(97));
    json_object_set_new(p, "mem_util", json_integer(3));
    json_object_set_new(p, "workload", json_string("cuda-sample1"));
    char *got = NULL;
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_dmon(answer, 1, &got, &err), 0, "%s", err.msg);
    cr_assert_str_eq(got, "# gpu   pwr gtemp mtemp    sm   mem   enc   dec  mclk  pclk\n"
                          "# Idx     W     C     C     %     %     %     %   MHz   MHz\n"
                          "    0    68    45     -   100    41     -     -  5001  1590\n");
    free(got);
    cr_assert_eq(gm_cli_smi_pmon(answer, 0, &got, &err), 0, "%s", err.msg);
    cr_assert_str_eq(got,
                     "    0     144377   M+C    97     3  107   nbody              cuda-sample1\n"
                     "    0     144379   M+C     -     -  107   nbody              -\n"
                     "    0     144443     C     -     -   25   nvidia-cuda-mps-se -\n");
    free(got);
    json_decref(answer);
}

Test(smi_select, workloads_follow_the_chosen_gpus)
{
    json_t *answer = load(idle_json);
    json_t *wl = load("{\"workloads\": ["
                      " {\"name\": \"on0\", \"gpus\": [{\"index\": 0, \"uuid\": \"GPU-0\"}]},"
                      " {\"name\": \"on1\", \"gpus\": [{\"index\": 1, \"uuid\": \"GPU-1\"}]},"
                      " {\"name\": \"nowhere\", \"gpus\": []}]}");
    struct gm_error err = {0};
    cr_assert_eq(gm_cli_smi_select(answer, "1", &err), 0, "%s", err.msg);
    gm_cli_smi_select_workloads(answer, wl);
    json_t *left = json_object_get(wl, "workloads");
    cr_assert_eq(json_array_size(left), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(left, 0), "name")), "on1");
    json_decref(answer);
    json_decref(wl);
}
