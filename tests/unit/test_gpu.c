/* The daemon's NVML layer (src/daemon/gpu.c) on gpusim, as it runs on a machine without a GPU. */
#include "daemon/gpu.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB 1048576ull

static char dir[64];
static char sim_dir[512];

static void setup(void)
{
    strcpy(dir, "/tmp/gm-gpu-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char state[128];
    snprintf(state, sizeof(state), "%s/state", dir);
    setenv("GPUSIM_STATE", state, 1);
    unsetenv("GPUSIM_CONFIG");
    const char *build = getenv("GM_BUILD_DIR");
    cr_assert_not_null(build, "GM_BUILD_DIR is not set");
    snprintf(sim_dir, sizeof(sim_dir), "%s/lib/gpusim", build);
}

static void teardown(void)
{
    gm_gpu_close();
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(gpu, .init = setup, .fini = teardown, .timeout = 60);

/* These tests describe a machine without an NVIDIA driver. */
static void require_no_real_driver(void)
{
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h != NULL) {
        dlclose(h);
        cr_skip_test("a libnvidia-ml.so.1 is installed here");
    }
}

static void open_sim(struct gm_driver_info *info)
{
    struct gm_error err = {0};
    cr_assert_eq(gm_gpu_open("sim", sim_dir, info, &err), 0, "%s", err.msg);
}

Test(gpu, sim_mode_reports_gpusim)
{
    struct gm_driver_info info;
    open_sim(&info);
    cr_assert_eq(info.kind, GM_DRIVER_SIM);
    cr_assert_str_eq(info.driver_version, "535.104.05");
    cr_assert_str_eq(info.nvml_version, "12.535.104.05");
    cr_assert_str_eq(info.cuda_version, "12.2");
    cr_assert(strstr(info.library, "/lib/gpusim/libnvidia-ml.so.1") != NULL, "%s", info.library);
    cr_assert(strstr(info.sim_dir, "/lib/gpusim") != NULL, "%s", info.sim_dir);
    cr_assert_eq(gm_gpu_count(), 2);

    struct gm_error err;
    cr_assert_eq(gm_gpu_open("sim", sim_dir, &info, &err), -GM_EINVAL, "second open accepted");
}

Test(gpu, auto_mode_falls_back_to_gpusim)
{
    require_no_real_driver();
    struct gm_driver_info info;
    struct gm_error err = {0};
    cr_assert_eq(gm_gpu_open("auto", sim_dir, &info, &err), 0, "%s", err.msg);
    cr_assert_eq(info.kind, GM_DRIVER_SIM);
    cr_assert_eq(gm_gpu_count(), 2);
}

Test(gpu, nvml_mode_fails_clearly_without_a_driver)
{
    require_no_real_driver();
    struct gm_driver_info info;
    struct gm_error err = {0};
    cr_assert_eq(gm_gpu_open("nvml", sim_dir, &info, &err), -GM_EDRIVER);
    cr_assert(strstr(err.msg, "libnvidia-ml.so.1") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "cannot load") != NULL, "%s", err.msg);
    cr_assert_eq(gm_gpu_count(), 0);
    cr_assert_eq(gm_gpu_open("auto", "/nonexistent", &info, &err), -GM_EDRIVER);
    cr_assert(strstr(err.msg, "/nonexistent/libnvidia-ml.so.1") != NULL, "%s", err.msg);
}

Test(gpu, bad_arguments)
{
    struct gm_driver_info info;
    struct gm_error err = {0};
    cr_assert_eq(gm_gpu_open("cuda", sim_dir, &info, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "cuda") != NULL, "%s", err.msg);
    cr_assert_eq(gm_gpu_open("sim", NULL, &info, &err), -GM_EINVAL);
    struct gm_gpu_live live;
    cr_assert_eq(gm_gpu_query(0, &live, &err), -GM_EDRIVER, "query without a driver");
    open_sim(&info);
    cr_assert_eq(gm_gpu_query(2, &live, &err), -GM_ENOTFOUND);
    cr_assert(strstr(err.msg, "GPU 2") != NULL, "%s", err.msg);
    cr_assert_eq(gm_gpu_set_compute_mode(0, 9, &err), -GM_EINVAL);
}

Test(gpu, query_matches_the_config)
{
    FILE *f;
    char cfg[128];
    snprintf(cfg, sizeof(cfg), "%s/gpusim.yaml", dir);
    cr_assert_not_null(f = fopen(cfg, "w"));
    fputs("gpus:\n  - name: Tesla T4\n    uuid: GPU-0a1b2c3d-4e5f-6789-abcd-ef0123456789\n"
          "    pci_bus_id: 0000E00B:00:00.0\n    memory_mib: 15109\n    power_limit_w: 70\n",
          f);
    fclose(f);
    setenv("GPUSIM_CONFIG", cfg, 1);
    struct gm_driver_info info;
    open_sim(&info);
    cr_assert_eq(gm_gpu_count(), 1);
    struct gm_gpu_live *g = calloc(1, sizeof(*g));
    struct gm_error err = {0};
    cr_assert_eq(gm_gpu_query(0, g, &err), 0, "%s", err.msg);
    cr_assert_eq(g->index, 0);
    cr_assert_str_eq(g->name, "Tesla T4");
    cr_assert_str_eq(g->uuid, "GPU-0a1b2c3d-4e5f-6789-abcd-ef0123456789");
    cr_assert_str_eq(g->pci_bus_id, "0000E00B:00:00.0");
    cr_assert_eq(g->memory_total, 15109 * MIB);
    cr_assert_eq(g->memory_used, 0);
    cr_assert_eq(g->memory_free, 15109 * MIB);
    cr_assert_eq(g->power_limit_mw, 70000);
    cr_assert(g->power_draw_mw > 9000 && g->power_draw_mw < 10000, "%d", g->power_draw_mw);
    cr_assert_eq(g->pstate, 8);
    cr_assert_eq(g->util_gpu, 0);
    cr_assert_eq(g->compute_mode, 0);
    cr_assert_eq(g->persistence, 1);
    cr_assert_eq(g->display_active, 0);
    cr_assert_eq(g->fan, -1, "a T4 has no fan: N/A");
    cr_assert_eq(g->mig_mode, -1, "a T4 has no MIG: N/A");
    cr_assert_eq(g->ecc_uncorrected_volatile, 0);
    cr_assert(g->cc_major == 7 && g->cc_minor == 5);
    cr_assert_eq(g->nprocs, 0);
    free(g);
}

static pid_t sleeper(void)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        for (;;)
            pause();
    }
    return pid;
}

static void gpusimctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void gpusimctl(const char *fmt, ...)
{
    char args[256], cmd[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "%s/bin/gpusimctl %s", getenv("GM_BUILD_DIR"), args);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(gpu, processes_are_typed_as_nvidia_smi_does)
{
    struct gm_driver_info info;
    open_sim(&info);
    const char *types[] = {"C", "M+C", "M", "G", "C+G"};
    pid_t pids[5];
    for (int i = 0; i < 5; i++) {
        pids[i] = sleeper();
        gpusimctl("add-process --gpu 0 --pid %d --memory %d --type %s --name proc-%d", pids[i],
                  100 + i, types[i], i);
    }
    pid_t server = sleeper();
    gpusimctl("add-process --gpu 0 --pid %d --memory 25 --type S --name nvidia-cuda-mps-server",
              server);
    gpusimctl("set --gpu 0 --util 100");

    struct gm_gpu_live *g = calloc(1, sizeof(*g));
    struct gm_error err = {0};
    cr_assert_eq(gm_gpu_query(0, g, &err), 0, "%s", err.msg);
    cr_assert_eq(g->nprocs, 6);
    for (int i = 0; i < 5; i++) {
        const struct gm_gpu_proc *p = NULL;
        for (int j = 0; j < g->nprocs; j++)
            if (g->procs[j].pid == (unsigned)pids[i])
                p = &g->procs[j];
        cr_assert_not_null(p, "pid of type %s missing", types[i]);
        cr_assert_str_eq(p->type, types[i]);
        char name[32];
        snprintf(name, sizeof(name), "proc-%d", i);
        cr_assert_str_eq(p->name, name);
        cr_assert_eq(p->used_memory, (100 + (uint64_t)i) * MIB);
    }
    const struct gm_gpu_proc *s = &g->procs[g->nprocs - 1];
    for (int j = 0; j < g->nprocs; j++)
        if (g->procs[j].pid == (unsigned)server)
            s = &g->procs[j];
    cr_assert_eq(s->pid, (unsigned)server);
    cr_assert_str_eq(s->type, "C");
    cr_assert_str_eq(s->name, "nvidia-cuda-mps-server");
    cr_assert_eq(g->memory_used, (100 + 101 + 102 + 103 + 104 + 25 + 3) * MIB);
    cr_assert_eq(g->pstate, 0);
    cr_assert_eq(g->util_gpu, 100);
    cr_assert(g->power_draw_mw > 60000, "%d", g->power_draw_mw);

    for (int i = 0; i < 5; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
    kill(server, SIGKILL);
    waitpid(server, NULL, 0);
    cr_assert_eq(gm_gpu_query(0, g, &err), 0, "%s", err.msg);
    cr_assert_eq(g->nprocs, 0);
    free(g);
}

Test(gpu, compute_mode)
{
    struct gm_driver_info info;
    open_sim(&info);
    struct gm_error err = {0};
    struct gm_gpu_live *g = calloc(1, sizeof(*g));
    if (geteuid() == 0) {
        cr_assert_eq(gm_gpu_set_compute_mode(1, 3, &err), 0, "%s", err.msg);
        cr_assert_eq(gm_gpu_query(1, g, &err), 0, "%s", err.msg);
        cr_assert_eq(g->compute_mode, 3);
        cr_assert_str_eq(gm_compute_mode_short(g->compute_mode), "E. Process");
    } else {
        cr_assert_eq(gm_gpu_set_compute_mode(1, 3, &err), -GM_EPERM);
        cr_assert(strstr(err.msg, "root") != NULL, "%s", err.msg);
    }
    free(g);
    cr_assert_str_eq(gm_compute_mode_name(0), "Default");
    cr_assert_str_eq(gm_compute_mode_name(2), "Prohibited");
    cr_assert_str_eq(gm_compute_mode_name(3), "Exclusive_Process");
    cr_assert_str_eq(gm_compute_mode_short(3), "E. Process");
    cr_assert_str_eq(gm_compute_mode_short(0), "Default");
}
