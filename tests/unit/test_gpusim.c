/* gpusim's libnvidia-ml.so.1, loaded the way the daemon loads a driver, over a private state
 * file; and the shared state underneath it. */
#include "common/clock.h"
#include "common/nvml_api.h"
#include "gpusim/state/config.h"
#include "gpusim/state/state.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB 1048576ull

static char dir[64] = "/tmp/gm-gpusim-XXXXXX";
static char state_path[128];
static void *lib;

/* A typed pointer to an entry point of the loaded library. */
#define N(sym) ((__typeof__(&sym))nvsym(#sym))
static void *nvsym(const char *name)
{
    void *p = dlsym(lib, name);
    cr_assert_not_null(p, "gpusim lacks %s", name);
    return p;
}

static void load_lib(void)
{
    const char *build = getenv("GM_BUILD_DIR");
    cr_assert_not_null(build, "GM_BUILD_DIR is not set");
    char path[512];
    snprintf(path, sizeof(path), "%s/lib/gpusim/libnvidia-ml.so.1", build);
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(lib, "dlopen %s: %s", path, dlerror());
}

static void setup(void)
{
    strcpy(dir, "/tmp/gm-gpusim-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(state_path, sizeof(state_path), "%s/state", dir);
    setenv("GPUSIM_STATE", state_path, 1);
    unsetenv("GPUSIM_CONFIG");
    load_lib();
}

static void teardown(void)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(gpusim, .init = setup, .fini = teardown, .timeout = 60);

static void init(void)
{
    cr_assert_eq(N(nvmlInit_v2)(), NVML_SUCCESS);
}

static nvmlDevice_t dev(unsigned i)
{
    nvmlDevice_t d = NULL;
    cr_assert_eq(N(nvmlDeviceGetHandleByIndex_v2)(i, &d), NVML_SUCCESS);
    return d;
}

static char *write_file(const char *name, const char *text)
{
    static char path[160];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* A child that sleeps until killed; its pid is a live process to register. */
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

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static struct gm_sim_state *attach(void)
{
    struct gm_sim_state *st;
    struct gm_error err;
    cr_assert_eq(gm_sim_attach(&st, &err), 0, "%s", err.msg);
    return st;
}

static void reg(struct gm_sim_state *st, int gpu, pid_t pid, uint32_t flags, uint64_t mib,
                const char *name)
{
    struct gm_error err;
    cr_assert_eq(gm_sim_proc_register(st, gpu, (uint32_t)pid, flags, mib * MIB, name, &err), 0,
                 "%s", err.msg);
}

Test(gpusim, defaults_are_two_t4s)
{
    init();
    unsigned n = 0;
    cr_assert_eq(N(nvmlDeviceGetCount_v2)(&n), NVML_SUCCESS);
    cr_assert_eq(n, 2);
    char buf[NVML_DEVICE_UUID_V2_BUFFER_SIZE], uuid0[96];
    cr_assert_eq(N(nvmlSystemGetDriverVersion)(buf, sizeof(buf)), NVML_SUCCESS);
    cr_assert_str_eq(buf, "535.104.05");
    cr_assert_eq(N(nvmlSystemGetNVMLVersion)(buf, sizeof(buf)), NVML_SUCCESS);
    cr_assert_str_eq(buf, "12.535.104.05");
    int cuda = 0;
    cr_assert_eq(N(nvmlSystemGetCudaDriverVersion_v2)(&cuda), NVML_SUCCESS);
    cr_assert_eq(cuda, 12020);

    const char *bus[] = {"00002C74:00:00.0", "0000E00B:00:00.0"};
    for (unsigned i = 0; i < 2; i++) {
        nvmlDevice_t d = dev(i);
        cr_assert_eq(N(nvmlDeviceGetName)(d, buf, sizeof(buf)), NVML_SUCCESS);
        cr_assert_str_eq(buf, "Tesla T4");
        nvmlMemory_t m;
        cr_assert_eq(N(nvmlDeviceGetMemoryInfo)(d, &m), NVML_SUCCESS);
        cr_assert_eq(m.total, 15109 * MIB);
        cr_assert_eq(m.used, 0);
        cr_assert_eq(m.free, m.total);
        unsigned v;
        cr_assert_eq(N(nvmlDeviceGetEnforcedPowerLimit)(d, &v), NVML_SUCCESS);
        cr_assert_eq(v, 70000);
        cr_assert_eq(N(nvmlDeviceGetPowerUsage)(d, &v), NVML_SUCCESS);
        cr_assert(v >= 9000 && v <= 10000, "idle power %u mW", v);
        cr_assert_eq(N(nvmlDeviceGetTemperature)(d, NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
        cr_assert(v >= 30 && v <= 40, "idle temperature %u", v);
        nvmlPstates_t ps;
        cr_assert_eq(N(nvmlDeviceGetPerformanceState)(d, &ps), NVML_SUCCESS);
        cr_assert_eq(ps, NVML_PSTATE_8);
        int major, minor;
        cr_assert_eq(N(nvmlDeviceGetCudaComputeCapability)(d, &major, &minor), NVML_SUCCESS);
        cr_assert(major == 7 && minor == 5);
        nvmlPciInfo_t pci;
        cr_assert_eq(N(nvmlDeviceGetPciInfo_v3)(d, &pci), NVML_SUCCESS);
        cr_assert_str_eq(pci.busId, bus[i]);
        cr_assert_eq(pci.bus, 0);
        nvmlComputeMode_t cm;
        cr_assert_eq(N(nvmlDeviceGetComputeMode)(d, &cm), NVML_SUCCESS);
        cr_assert_eq(cm, NVML_COMPUTEMODE_DEFAULT);
        nvmlEnableState_t es, pending;
        cr_assert_eq(N(nvmlDeviceGetPersistenceMode)(d, &es), NVML_SUCCESS);
        cr_assert_eq(es, NVML_FEATURE_ENABLED);
        cr_assert_eq(N(nvmlDeviceGetDisplayActive)(d, &es), NVML_SUCCESS);
        cr_assert_eq(es, NVML_FEATURE_DISABLED);
        cr_assert_eq(N(nvmlDeviceGetEccMode)(d, &es, &pending), NVML_SUCCESS);
        cr_assert_eq(es, NVML_FEATURE_ENABLED);
        unsigned long long ecc = 99;
        cr_assert_eq(N(nvmlDeviceGetTotalEccErrors)(d, NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                                                    NVML_VOLATILE_ECC, &ecc),
                     NVML_SUCCESS);
        cr_assert_eq(ecc, 0);
        cr_assert_eq(N(nvmlDeviceGetFanSpeed)(d, &v), NVML_ERROR_NOT_SUPPORTED);
        unsigned cur, pend;
        cr_assert_eq(N(nvmlDeviceGetMigMode)(d, &cur, &pend), NVML_ERROR_NOT_SUPPORTED);
        cr_assert_eq(N(nvmlDeviceGetUUID)(d, buf, sizeof(buf)), NVML_SUCCESS);
        cr_assert_eq(strlen(buf), 40, "uuid %s", buf);
        cr_assert_eq(strncmp(buf, "GPU-", 4), 0);
        if (i == 0)
            strcpy(uuid0, buf);
        else
            cr_assert_str_neq(buf, uuid0);
        nvmlDevice_t by;
        cr_assert_eq(N(nvmlDeviceGetHandleByUUID)(buf, &by), NVML_SUCCESS);
        cr_assert_eq(by, d);
        cr_assert_eq(N(nvmlDeviceGetHandleByPciBusId_v2)(bus[i], &by), NVML_SUCCESS);
        cr_assert_eq(by, d);
        unsigned idx = 9;
        cr_assert_eq(N(nvmlDeviceGetIndex)(d, &idx), NVML_SUCCESS);
        cr_assert_eq(idx, i);
    }
    /* The legacy 4-digit domain form finds the same device. */
    nvmlDevice_t by;
    cr_assert_eq(N(nvmlDeviceGetHandleByPciBusId_v2)("2c74:00:00.0", &by), NVML_SUCCESS);
    cr_assert_eq(by, dev(0));
    /* The UUIDs are stable: a second state file from the same defaults has the same ones. */
    struct gm_sim_state *st;
    struct gm_error err;
    char other[160];
    snprintf(other, sizeof(other), "%s/other", dir);
    cr_assert_eq(gm_sim_attach_path(other, NULL, &st, &err), 0, "%s", err.msg);
    cr_assert_str_eq(st->gpus[0].info.uuid, uuid0);
    gm_sim_detach(st);
}

Test(gpusim, uninitialized_before_init_and_after_last_shutdown)
{
    unsigned n;
    nvmlDevice_t d;
    char buf[80];
    cr_assert_eq(N(nvmlDeviceGetCount_v2)(&n), NVML_ERROR_UNINITIALIZED);
    cr_assert_eq(N(nvmlDeviceGetHandleByIndex_v2)(0, &d), NVML_ERROR_UNINITIALIZED);
    cr_assert_eq(N(nvmlSystemGetDriverVersion)(buf, sizeof(buf)), NVML_ERROR_UNINITIALIZED);
    cr_assert_eq(N(nvmlShutdown)(), NVML_ERROR_UNINITIALIZED);
    /* Reference counted: two inits need two shutdowns. */
    cr_assert_eq(N(nvmlInit)(), NVML_SUCCESS);
    cr_assert_eq(N(nvmlInitWithFlags)(0), NVML_SUCCESS);
    cr_assert_eq(N(nvmlShutdown)(), NVML_SUCCESS);
    cr_assert_eq(N(nvmlDeviceGetCount)(&n), NVML_SUCCESS);
    cr_assert_eq(N(nvmlShutdown)(), NVML_SUCCESS);
    cr_assert_eq(N(nvmlDeviceGetCount_v2)(&n), NVML_ERROR_UNINITIALIZED);
    cr_assert_eq(N(nvmlSystemGetProcessName)(1, buf, sizeof(buf)), NVML_ERROR_UNINITIALIZED);
}

Test(gpusim, invalid_arguments_and_handles)
{
    init();
    nvmlDevice_t d = dev(0), out;
    char buf[96];
    unsigned v;
    cr_assert_eq(N(nvmlDeviceGetCount_v2)(NULL), NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetHandleByIndex_v2)(2, &out), NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetHandleByIndex_v2)(0, NULL), NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetName)(NULL, buf, sizeof(buf)), NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetName)((nvmlDevice_t)buf, buf, sizeof(buf)),
                 NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetName)((nvmlDevice_t)((char *)d + 1), buf, sizeof(buf)),
                 NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetName)(d, NULL, 64), NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetPowerUsage)(d, NULL), NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetMemoryInfo)(d, NULL), NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetPciInfo_v3)(d, NULL), NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetTemperature)(d, (nvmlTemperatureSensors_t)1, &v),
                 NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetFanSpeed)(NULL, &v), NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetHandleByUUID)(NULL, &out), NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetHandleByUUID)("GPU-00000000-0000-0000-0000-000000000000", &out),
                 NVML_ERROR_NOT_FOUND);
    cr_assert_eq(N(nvmlDeviceGetHandleByPciBusId_v2)("not a bus id", &out),
                 NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetHandleByPciBusId_v2)("00000000:3B:00.0", &out),
                 NVML_ERROR_NOT_FOUND);
    /* Too-small buffers: "Tesla T4" needs 9 bytes with its terminator. */
    cr_assert_eq(N(nvmlDeviceGetName)(d, buf, 8), NVML_ERROR_INSUFFICIENT_SIZE);
    cr_assert_eq(N(nvmlDeviceGetName)(d, buf, 9), NVML_SUCCESS);
    cr_assert_eq(N(nvmlDeviceGetUUID)(d, buf, 40), NVML_ERROR_INSUFFICIENT_SIZE);
    cr_assert_eq(N(nvmlSystemGetDriverVersion)(buf, 4), NVML_ERROR_INSUFFICIENT_SIZE);
    cr_assert_str_eq(N(nvmlErrorString)(NVML_ERROR_INSUFFICIENT_SIZE), "Insufficient Size");
    cr_assert_str_eq(N(nvmlErrorString)(NVML_ERROR_UNINITIALIZED), "Uninitialized");
    cr_assert_str_eq(N(nvmlErrorString)((nvmlReturn_t)12345), "Unknown Error");
}

Test(gpusim, set_compute_mode_needs_root)
{
    init();
    nvmlDevice_t d = dev(1);
    cr_assert_eq(N(nvmlDeviceSetComputeMode)(d, (nvmlComputeMode_t)7), NVML_ERROR_INVALID_ARGUMENT);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && setuid(65534) != 0)
            _exit(10);
        _exit(N(nvmlDeviceSetComputeMode)(d, NVML_COMPUTEMODE_EXCLUSIVE_PROCESS));
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status));
    cr_assert_eq(WEXITSTATUS(status), NVML_ERROR_NO_PERMISSION);
    nvmlComputeMode_t cm;
    cr_assert_eq(N(nvmlDeviceGetComputeMode)(d, &cm), NVML_SUCCESS);
    cr_assert_eq(cm, NVML_COMPUTEMODE_DEFAULT, "an unprivileged caller changed the mode");
    if (geteuid() != 0)
        cr_skip_test("the privileged half needs root");
    cr_assert_eq(N(nvmlDeviceSetComputeMode)(d, NVML_COMPUTEMODE_EXCLUSIVE_PROCESS), NVML_SUCCESS);
    cr_assert_eq(N(nvmlDeviceGetComputeMode)(d, &cm), NVML_SUCCESS);
    cr_assert_eq(cm, NVML_COMPUTEMODE_EXCLUSIVE_PROCESS);
    cr_assert_eq(N(nvmlDeviceGetComputeMode)(dev(0), &cm), NVML_SUCCESS);
    cr_assert_eq(cm, NVML_COMPUTEMODE_DEFAULT);
}

/* The seed's MPS run: two clients of 107 MiB and the server of 25 MiB show 242 MiB used. */
Test(gpusim, process_lists_follow_nvml_count_rules)
{
    init();
    struct gm_sim_state *st = attach();
    pid_t a = sleeper(), b = sleeper(), server = sleeper();
    reg(st, 0, a, GM_SIM_PROC_COMPUTE | GM_SIM_PROC_MPS_CLIENT, 107, "/tmp/nbody");
    reg(st, 0, b, GM_SIM_PROC_COMPUTE | GM_SIM_PROC_MPS_CLIENT, 107, "/tmp/nbody");
    reg(st, 0, server, GM_SIM_PROC_MPS_SERVER, 25, "nvidia-cuda-mps-server");
    nvmlDevice_t d = dev(0);

    nvmlMemory_t m;
    cr_assert_eq(N(nvmlDeviceGetMemoryInfo)(d, &m), NVML_SUCCESS);
    cr_assert_eq(m.used, 242 * MIB);
    cr_assert_eq(m.free, m.total - m.used);

    nvmlProcessInfo_t infos[8];
    unsigned count = 0;
    cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses_v3)(d, &count, NULL),
                 NVML_ERROR_INSUFFICIENT_SIZE);
    cr_assert_eq(count, 3);
    count = 2;
    cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses_v3)(d, &count, infos),
                 NVML_ERROR_INSUFFICIENT_SIZE);
    cr_assert_eq(count, 3);
    count = 5;
    cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses_v3)(d, &count, NULL),
                 NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses_v3)(d, NULL, infos),
                 NVML_ERROR_INVALID_ARGUMENT);
    count = 8;
    cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses_v3)(d, &count, infos), NVML_SUCCESS);
    cr_assert_eq(count, 3);
    cr_assert_eq(infos[0].pid, (unsigned)a);
    cr_assert_eq(infos[0].usedGpuMemory, 107 * MIB);
    cr_assert_eq(infos[0].gpuInstanceId, NVML_GPU_INSTANCE_ID_INVALID);
    cr_assert_eq(infos[2].pid, (unsigned)server);
    cr_assert_eq(infos[2].usedGpuMemory, 25 * MIB);

    count = 8;
    cr_assert_eq(N(nvmlDeviceGetMPSComputeRunningProcesses_v3)(d, &count, infos), NVML_SUCCESS);
    cr_assert_eq(count, 2, "the MPS server is no MPS client");
    count = 8;
    cr_assert_eq(N(nvmlDeviceGetGraphicsRunningProcesses_v2)(d, &count, infos), NVML_SUCCESS);
    cr_assert_eq(count, 0);
    /* An idle GPU: a size query succeeds with none. */
    count = 0;
    cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses_v2)(dev(1), &count, NULL), NVML_SUCCESS);
    cr_assert_eq(count, 0);

    /* A context puts the GPU in P0; load drives power toward the limit. */
    nvmlPstates_t ps;
    unsigned mw;
    cr_assert_eq(N(nvmlDeviceGetPerformanceState)(d, &ps), NVML_SUCCESS);
    cr_assert_eq(ps, NVML_PSTATE_0);
    struct gm_error err;
    cr_assert_eq(gm_sim_set_util(st, 0, 100, 40, &err), 0);
    cr_assert_eq(N(nvmlDeviceGetPowerUsage)(d, &mw), NVML_SUCCESS);
    cr_assert(mw >= 66000 && mw <= 70000, "busy power %u mW", mw);
    nvmlUtilization_t u;
    cr_assert_eq(N(nvmlDeviceGetUtilizationRates)(d, &u), NVML_SUCCESS);
    cr_assert(u.gpu == 100 && u.memory == 40);

    char name[64];
    cr_assert_eq(N(nvmlSystemGetProcessName)((unsigned)server, name, sizeof(name)), NVML_SUCCESS);
    cr_assert_str_eq(name, "nvidia-cuda-mps-server");
    cr_assert_eq(N(nvmlSystemGetProcessName)((unsigned)server, name, 7), NVML_SUCCESS);
    cr_assert_str_eq(name, "nvidia");

    reap(a);
    reap(b);
    reap(server);
    cr_assert_eq(N(nvmlDeviceGetMemoryInfo)(d, &m), NVML_SUCCESS);
    cr_assert_eq(m.used, 0);
    cr_assert_eq(N(nvmlDeviceGetPerformanceState)(d, &ps), NVML_SUCCESS);
    cr_assert_eq(ps, NVML_PSTATE_8, "no context left, yet not idle");
    cr_assert_eq(N(nvmlDeviceGetUtilizationRates)(d, &u), NVML_SUCCESS);
    cr_assert_eq(u.gpu, 0);
    cr_assert_eq(N(nvmlSystemGetProcessName)((unsigned)server, name, sizeof(name)),
                 NVML_ERROR_NOT_FOUND);
    gm_sim_detach(st);
}

Test(gpusim, state_table_rules)
{
    init();
    struct gm_sim_state *st = attach();
    struct gm_error err;
    pid_t a = sleeper();
    reg(st, 1, a, GM_SIM_PROC_COMPUTE, 100, NULL);
    cr_assert_eq(gm_sim_proc_register(st, 1, (uint32_t)a, GM_SIM_PROC_COMPUTE, MIB, NULL, &err),
                 -GM_ECONFLICT);
    cr_assert_eq(gm_sim_proc_register(st, 2, (uint32_t)a, GM_SIM_PROC_COMPUTE, MIB, NULL, &err),
                 -GM_ENOTFOUND);
    cr_assert_eq(gm_sim_proc_register(st, 0, 0x3fffff, GM_SIM_PROC_COMPUTE, MIB, NULL, &err),
                 -GM_ENOTFOUND);
    cr_assert_eq(gm_sim_proc_register(st, 0, (uint32_t)a, 0, MIB, NULL, &err), -GM_EINVAL);
    /* Memory is not overcommitted: 15109 MiB less the driver's 3 MiB is all there is. */
    cr_assert_eq(gm_sim_proc_set_memory(st, 1, (uint32_t)a, 15107 * MIB, &err), -GM_ENOSPACE);
    cr_assert(strstr(err.msg, "GPU 1") != NULL, "%s", err.msg);
    cr_assert_eq(gm_sim_proc_set_memory(st, 1, (uint32_t)a, 15106 * MIB, &err), 0, "%s", err.msg);
    nvmlMemory_t m;
    cr_assert_eq(N(nvmlDeviceGetMemoryInfo)(dev(1), &m), NVML_SUCCESS);
    cr_assert_eq(m.free, 0);
    /* The registered name defaults to argv[0] of the process. */
    char name[256], argv0[256] = "";
    snprintf(name, sizeof(name), "/proc/%d/cmdline", a);
    FILE *f = fopen(name, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(argv0, sizeof(argv0), f));
    fclose(f);
    cr_assert_eq(N(nvmlSystemGetProcessName)((unsigned)a, name, sizeof(name)), NVML_SUCCESS);
    cr_assert_str_eq(name, argv0);

    /* 30% of the last 300 ms: the last complete sampling period reads 30. */
    cr_assert_eq(gm_sim_proc_add_busy(st, 1, (uint32_t)a, 90000000, 300000000, &err), 0, "%s",
                 err.msg);
    nvmlProcessUtilizationSample_t s[4];
    unsigned n = 0;
    cr_assert_eq(N(nvmlDeviceGetProcessUtilization)(dev(1), NULL, &n, 0),
                 NVML_ERROR_INSUFFICIENT_SIZE);
    cr_assert_eq(n, 1);
    n = 4;
    cr_assert_eq(N(nvmlDeviceGetProcessUtilization)(dev(1), s, &n, 0), NVML_SUCCESS);
    cr_assert(n == 1 && s[0].pid == (unsigned)a && s[0].smUtil == 30);
    cr_assert_eq(N(nvmlDeviceGetProcessUtilization)(dev(1), s, &n, s[0].timeStamp),
                 NVML_ERROR_NOT_FOUND);

    cr_assert_eq(gm_sim_proc_unregister(st, 1, (uint32_t)a, &err), 0);
    cr_assert_eq(gm_sim_proc_unregister(st, 1, (uint32_t)a, &err), -GM_ENOTFOUND);
    reap(a);
    gm_sim_detach(st);
}

/* Pid plus start time: a dead process is dropped even when its pid is alive again. */
Test(gpusim, dead_and_reused_pids_are_pruned)
{
    init();
    struct gm_sim_state *st = attach();
    pid_t a = sleeper(), b = sleeper(), z = sleeper();
    reg(st, 0, a, GM_SIM_PROC_COMPUTE, 10, "a");
    reg(st, 0, b, GM_SIM_PROC_COMPUTE, 20, "b");
    reg(st, 0, z, GM_SIM_PROC_GRAPHICS, 30, "z");
    /* b's pid now stands for another process. */
    struct gm_error err;
    cr_assert_eq(gm_sim_lock(st, &err), 0);
    st->gpus[0].procs[1].start_time += 1;
    gm_sim_unlock(st);
    /* z is a zombie: killed, not yet reaped. Its contexts are gone. */
    kill(z, SIGKILL);
    for (int i = 0; i < 200; i++) {
        char path[64], buf[256] = "";
        snprintf(path, sizeof(path), "/proc/%d/stat", z);
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            if (fgets(buf, sizeof(buf), f) == NULL)
                buf[0] = '\0';
            fclose(f);
        }
        if (strstr(buf, ") Z") != NULL)
            break;
        usleep(10000);
    }
    nvmlProcessInfo_t infos[4];
    unsigned count = 4;
    cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses_v3)(dev(0), &count, infos), NVML_SUCCESS);
    cr_assert_eq(count, 1);
    cr_assert_eq(infos[0].pid, (unsigned)a);
    count = 4;
    cr_assert_eq(N(nvmlDeviceGetGraphicsRunningProcesses_v3)(dev(0), &count, infos), NVML_SUCCESS);
    cr_assert_eq(count, 0, "a zombie still holds the GPU");
    nvmlMemory_t m;
    cr_assert_eq(N(nvmlDeviceGetMemoryInfo)(dev(0), &m), NVML_SUCCESS);
    cr_assert_eq(m.used, 13 * MIB);
    reap(z);
    reap(a);
    reap(b);
    gm_sim_detach(st);
}

static int run_gpusimctl(const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s/bin/gpusimctl %s >/dev/null 2>&1", getenv("GM_BUILD_DIR"), args);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Another process (gpusimctl) changes the device; this one sees it through NVML. */
Test(gpusim, state_is_shared_between_processes)
{
    init();
    pid_t a = sleeper();
    char args[160];
    snprintf(args, sizeof(args), "add-process --gpu 1 --pid %d --memory 109 --name /tmp/nbody", a);
    cr_assert_eq(run_gpusimctl(args), 0);
    cr_assert_eq(run_gpusimctl("set --gpu 1 --util 100 --temp 45"), 0);
    nvmlProcessInfo_t infos[4];
    unsigned count = 4, v;
    cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses_v3)(dev(1), &count, infos), NVML_SUCCESS);
    cr_assert(count == 1 && infos[0].pid == (unsigned)a && infos[0].usedGpuMemory == 109 * MIB);
    cr_assert_eq(N(nvmlDeviceGetTemperature)(dev(1), NVML_TEMPERATURE_GPU, &v), NVML_SUCCESS);
    cr_assert_eq(v, 45);
    char name[64];
    cr_assert_eq(N(nvmlSystemGetProcessName)((unsigned)a, name, sizeof(name)), NVML_SUCCESS);
    cr_assert_str_eq(name, "/tmp/nbody");
    /* A forked child sees what the parent changes, and the other way round. */
    pid_t child = fork();
    if (child == 0) {
        struct gm_sim_state *st;
        struct gm_error err;
        if (gm_sim_attach(&st, &err) < 0 || gm_sim_set_util(st, 0, 77, -1, &err) < 0)
            _exit(1);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    nvmlUtilization_t u;
    cr_assert_eq(N(nvmlDeviceGetUtilizationRates)(dev(0), &u), NVML_SUCCESS);
    cr_assert_eq(u.gpu, 77);

    snprintf(args, sizeof(args), "remove-process --gpu 1 --pid %d", a);
    cr_assert_eq(run_gpusimctl(args), 0);
    cr_assert_eq(run_gpusimctl(args), 1, "removing twice must fail");
    cr_assert_eq(run_gpusimctl("add-process --gpu 0 --memory 5"), 2);
    cr_assert_eq(run_gpusimctl("set --gpu 0 --util 101"), 2);
    cr_assert_eq(run_gpusimctl("bogus"), 2);
    cr_assert_eq(run_gpusimctl("set --gpu 7 --util 1"), 1);
    cr_assert_eq(run_gpusimctl("show --help"), 0);
    reap(a);
}

/* Racing first users: exactly one initialises, so nobody's registration is wiped. */
Test(gpusim, concurrent_first_initialisation)
{
    enum { KIDS = 16 };
    /* A config makes initialisation slow enough for racers to overlap without the flock. */
    char cfg[160];
    snprintf(cfg, sizeof(cfg), "%s",
             write_file("race.yaml", "driver_version: \"535.104.05\"\ngpus:\n  - {}\n  - {}\n"
                                     "  - {}\n  - {}\n"));
    setenv("GPUSIM_CONFIG", cfg, 1);
    int go[2], done[2];
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(done), 0);
    pid_t kids[KIDS];
    for (int i = 0; i < KIDS; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            char c;
            close(go[1]);
            if (read(go[0], &c, 1) != 0)
                _exit(3);
            struct gm_sim_state *st;
            struct gm_error err;
            int ok = gm_sim_attach(&st, &err) == 0 &&
                     gm_sim_proc_register(st, 0, (uint32_t)getpid(), GM_SIM_PROC_COMPUTE, MIB,
                                          "kid", &err) == 0;
            if (write(done[1], ok ? "x" : "F", 1) != 1)
                _exit(2);
            for (;;)
                pause();
        }
    }
    close(go[0]);
    close(go[1]); /* all children start at once */
    int failed = 0;
    for (int i = 0; i < KIDS; i++) {
        /* A racer stuck on a mutex that another one re-initialised never answers. */
        struct pollfd pfd = {.fd = done[0], .events = POLLIN};
        char c = 'F';
        if (poll(&pfd, 1, 10000) != 1 || read(done[0], &c, 1) != 1 || c != 'x')
            failed++;
    }
    cr_assert_eq(failed, 0, "%d of %d racers failed to attach or register", failed, KIDS);
    init();
    unsigned count = 32;
    nvmlProcessInfo_t infos[32];
    cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses_v3)(dev(0), &count, infos), NVML_SUCCESS);
    cr_assert_eq(count, KIDS);
    for (int i = 0; i < KIDS; i++)
        reap(kids[i]);
}

/* The robust mutex: a holder killed mid-update does not block anyone. */
Test(gpusim, holder_killed_with_the_lock_held)
{
    init();
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t holder = fork();
    if (holder == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        struct gm_sim_state *st;
        struct gm_error err;
        if (gm_sim_attach(&st, &err) < 0 || gm_sim_lock(st, &err) < 0)
            _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(2);
        for (;;)
            pause();
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    reap(holder);
    nvmlMemory_t m;
    cr_assert_eq(N(nvmlDeviceGetMemoryInfo)(dev(0), &m), NVML_SUCCESS);
    cr_assert_eq(m.used, 0);
    struct gm_sim_state *st = attach();
    pid_t a = sleeper();
    reg(st, 0, a, GM_SIM_PROC_COMPUTE, 1, "after");
    reap(a);
    gm_sim_detach(st);
}

Test(gpusim, config_is_read_when_the_state_is_created)
{
    const char *cfg =
        write_file("gpusim.yaml", "driver_version: \"550.54.15\"\n"
                                  "cuda_version: \"12.4\"\n"
                                  "gpus:\n"
                                  "  - name: NVIDIA A100-SXM4-40GB\n"
                                  "    memory_mib: 40960\n"
                                  "    power_limit_w: 400\n"
                                  "    compute_capability: \"8.0\"\n"
                                  "    sms: 108\n"
                                  "    uuid: GPU-12345678-9abc-def0-1234-56789abcdef0\n"
                                  "    pci_bus_id: \"0000:3b:00.0\"\n"
                                  "    serial: \"1564720004631\"\n"
                                  "  - {}\n");
    setenv("GPUSIM_CONFIG", cfg, 1);
    init();
    unsigned n;
    cr_assert_eq(N(nvmlDeviceGetCount_v2)(&n), NVML_SUCCESS);
    cr_assert_eq(n, 2);
    char buf[96];
    int cuda;
    cr_assert_eq(N(nvmlSystemGetDriverVersion)(buf, sizeof(buf)), NVML_SUCCESS);
    cr_assert_str_eq(buf, "550.54.15");
    cr_assert_eq(N(nvmlSystemGetCudaDriverVersion)(&cuda), NVML_SUCCESS);
    cr_assert_eq(cuda, 12040);
    nvmlDevice_t d = dev(0);
    cr_assert_eq(N(nvmlDeviceGetName)(d, buf, sizeof(buf)), NVML_SUCCESS);
    cr_assert_str_eq(buf, "NVIDIA A100-SXM4-40GB");
    cr_assert_eq(N(nvmlDeviceGetSerial)(d, buf, sizeof(buf)), NVML_SUCCESS);
    cr_assert_str_eq(buf, "1564720004631");
    nvmlPciInfo_t pci;
    cr_assert_eq(N(nvmlDeviceGetPciInfo_v2)(d, &pci), NVML_SUCCESS);
    cr_assert_str_eq(pci.busId, "00000000:3B:00.0");
    cr_assert_str_eq(pci.busIdLegacy, "0000:3B:00.0");
    nvmlMemory_t m;
    cr_assert_eq(N(nvmlDeviceGetMemoryInfo)(d, &m), NVML_SUCCESS);
    cr_assert_eq(m.total, 40960 * MIB);
    unsigned v;
    cr_assert_eq(N(nvmlDeviceGetPowerManagementLimit)(d, &v), NVML_SUCCESS);
    cr_assert_eq(v, 400000);
    int major, minor;
    cr_assert_eq(N(nvmlDeviceGetCudaComputeCapability)(d, &major, &minor), NVML_SUCCESS);
    cr_assert(major == 8 && minor == 0);
    nvmlDevice_t by;
    cr_assert_eq(N(nvmlDeviceGetHandleByUUID)("GPU-12345678-9abc-def0-1234-56789abcdef0", &by),
                 NVML_SUCCESS);
    cr_assert_eq(by, d);
    /* An empty entry is a default T4 at its index. */
    cr_assert_eq(N(nvmlDeviceGetName)(dev(1), buf, sizeof(buf)), NVML_SUCCESS);
    cr_assert_str_eq(buf, "Tesla T4");
    cr_assert_eq(N(nvmlDeviceGetPciInfo_v3)(dev(1), &pci), NVML_SUCCESS);
    cr_assert_str_eq(pci.busId, "0000E00B:00:00.0");
    N(nvmlShutdown)();

    /* An existing state file wins over a changed config, until reset. */
    const char *one = write_file("one.yaml", "gpus:\n  - name: Tesla T4\n");
    setenv("GPUSIM_CONFIG", one, 1);
    init();
    cr_assert_eq(N(nvmlDeviceGetCount_v2)(&n), NVML_SUCCESS);
    cr_assert_eq(n, 2);
    N(nvmlShutdown)();
    cr_assert_eq(run_gpusimctl("reset"), 0);
    init();
    cr_assert_eq(N(nvmlDeviceGetCount_v2)(&n), NVML_SUCCESS);
    cr_assert_eq(n, 1);
}

static void expect_config_error(const char *text, const char *needle1, const char *needle2)
{
    const char *path = write_file("bad.yaml", text);
    struct gm_sim_config cfg;
    struct gm_error err = {0};
    cr_assert_eq(gm_sim_config_load(path, &cfg, &err), -GM_EINVAL, "accepted: %s", text);
    cr_assert(strstr(err.msg, path) != NULL, "no file name in: %s", err.msg);
    cr_assert(strstr(err.msg, needle1) != NULL, "'%s' not in: %s", needle1, err.msg);
    cr_assert(strstr(err.msg, needle2) != NULL, "'%s' not in: %s", needle2, err.msg);
}

Test(gpusim, bad_configs_are_refused_with_file_line_and_key)
{
    expect_config_error("driver_version: 1\ncolour: blue\n", ":2:", "'colour'");
    expect_config_error("gpus:\n  - name: T4\n    memory_mib: lots\n", ":3:", "'memory_mib'");
    expect_config_error("gpus:\n  - memory_mib: 0\n", ":2:", "'memory_mib'");
    expect_config_error("gpus:\n  - uuid: GPU-123\n", ":2:", "'uuid'");
    expect_config_error("gpus:\n  - pci_bus_id: 12:34\n", ":2:", "'pci_bus_id'");
    expect_config_error("gpus:\n  - compute_capability: seven\n", ":2:", "'compute_capability'");
    expect_config_error("gpus:\n  - power_limit_w: 70\n    fan: yes\n", ":3:", "'fan'");
    expect_config_error("cuda_version: 12\n", ":1:", "'cuda_version'");
    expect_config_error("gpus: 2\n", ":1:", "'gpus'");
    expect_config_error("gpus: [{}, {}, {}, {}, {}, {}, {}, {}, {}]\n", ":1:", "at most 8");
    expect_config_error("gpus:\n  - {}\n  - {uuid: GPU-910a2dec-8902-5cc1-5e41-ab087439611e}\n"
                        "  - {uuid: GPU-910a2dec-8902-5cc1-5e41-ab087439611e}\n",
                        ":1:", "repeats");
    expect_config_error("gpus:\n  - name: \"unterminated\n    sms: 4\n", ":2:", "malformed YAML");
    expect_config_error("- just\n- a list\n", ":1:", "mapping");

    struct gm_sim_config cfg;
    struct gm_error err;
    char empty[160];
    snprintf(empty, sizeof(empty), "%s", write_file("empty.yaml", "gpus: []\n"));
    cr_assert_eq(gm_sim_config_load(empty, &cfg, &err), 0, "%s", err.msg);
    cr_assert_eq(cfg.ngpus, 0);
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.yaml", dir);
    cr_assert_eq(gm_sim_config_load(missing, &cfg, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "missing.yaml") != NULL, "%s", err.msg);

    /* Through NVML a bad config means no driver, and no half-made state file is left. */
    setenv("GPUSIM_CONFIG", write_file("bad2.yaml", "colour: blue\n"), 1);
    cr_assert_eq(N(nvmlInit_v2)(), NVML_ERROR_DRIVER_NOT_LOADED);
    struct stat sb;
    cr_assert(stat(state_path, &sb) != 0 || sb.st_size == 0);
    setenv("GPUSIM_CONFIG", empty, 1);
    init();
    unsigned n = 9;
    cr_assert_eq(N(nvmlDeviceGetCount_v2)(&n), NVML_SUCCESS);
    cr_assert_eq(n, 0);
}

Test(gpusim, foreign_or_old_state_files_are_refused)
{
    int fd = open(state_path, O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "something else entirely", 23), 23);
    close(fd);
    struct gm_sim_state *st;
    struct gm_error err;
    cr_assert_eq(gm_sim_attach(&st, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "not a gpusim state file") != NULL, "%s", err.msg);
    cr_assert_eq(N(nvmlInit_v2)(), NVML_ERROR_DRIVER_NOT_LOADED);

    cr_assert_eq(gm_sim_reset(state_path, NULL, &err), 0, "%s", err.msg);
    st = attach();
    st->layout = GM_SIM_LAYOUT + 1; /* as left by another gpusim version */
    gm_sim_detach(st);
    cr_assert_eq(gm_sim_attach(&st, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "gpusimctl reset") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, state_path) != NULL, "%s", err.msg);
}

/* ---- A damaged device: what any user may do to the world-writable file ------------------ */

static nvmlReturn_t memory_of(unsigned gpu)
{
    nvmlMemory_t m;
    return N(nvmlDeviceGetMemoryInfo)(dev(gpu), &m);
}

/* Each scribble makes GPU 0 (or both) read as lost, never trusted and never fatal; GPU 1 keeps
 * reading when only GPU 0 is hit; undoing it brings the GPU back. */
Test(gpusim, damaged_state_is_reported_as_lost)
{
    init();
    struct gm_sim_state *st = attach();
    pid_t a = sleeper();
    reg(st, 0, a, GM_SIM_PROC_COMPUTE, 100, "victim");
    cr_assert_eq(memory_of(0), NVML_SUCCESS);
    struct gm_sim_gpu saved = st->gpus[0];

#define SCRIBBLE(what, change)                                                                     \
    do {                                                                                           \
        change;                                                                                    \
        cr_assert_eq(memory_of(0), NVML_ERROR_GPU_IS_LOST, "%s: GPU 0 not lost", what);            \
        cr_assert_eq(memory_of(1), NVML_SUCCESS, "%s: GPU 1 lost too", what);                      \
        st->gpus[0] = saved;                                                                       \
        cr_assert_eq(memory_of(0), NVML_SUCCESS, "%s: GPU 0 not back", what);                      \
    } while (0)
    SCRIBBLE("process count", st->gpus[0].nprocs = 1000);
    SCRIBBLE("process memory", st->gpus[0].procs[0].used_memory = UINT64_MAX);
    SCRIBBLE("process flags", st->gpus[0].procs[0].flags = 0x80);
    SCRIBBLE("utilisation", st->gpus[0].util_gpu = -5);
    SCRIBBLE("compute mode", st->gpus[0].compute_mode = 7);
    SCRIBBLE("temperature", st->gpus[0].temp_c = NAN);
    SCRIBBLE("pinned temperature", st->gpus[0].temp_pinned = 1000);
    SCRIBBLE("name not terminated",
             memset(st->gpus[0].info.name, 'A', sizeof(st->gpus[0].info.name)));
    SCRIBBLE("memory total", st->gpus[0].info.memory_total = 1);
    SCRIBBLE("UUID", st->gpus[0].info.uuid[4] ^= 1);
#undef SCRIBBLE
    /* A process name without its terminator is cut, not read past. */
    memset(st->gpus[0].procs[0].name, 'x', sizeof(st->gpus[0].procs[0].name));
    char name[512];
    cr_assert_eq(N(nvmlSystemGetProcessName)((unsigned)a, name, sizeof(name)), NVML_SUCCESS);
    cr_assert_eq(strlen(name), sizeof(st->gpus[0].procs[0].name) - 1);
    st->gpus[0] = saved;

    /* Timeline slots that are no fractions: utilisation stays a percentage. */
    st->timelines[0].last_end_ns = gm_mono_ns();
    st->timelines[0].first_slot = 0;
    for (int i = 0; i < GM_SIM_SLOTS; i++)
        st->timelines[0].busy[i] = i % 2 ? NAN : 1e30f;
    nvmlUtilization_t u;
    cr_assert_eq(N(nvmlDeviceGetUtilizationRates)(dev(0), &u), NVML_SUCCESS);
    cr_assert(u.gpu <= 100, "utilisation %u", u.gpu);
    st->timelines[0].last_end_ns = 0;

    /* The header: both GPUs are lost, the count of devices stays what it was. */
    uint32_t ngpus = st->ngpus;
    st->ngpus = 200;
    cr_assert_eq(memory_of(0), NVML_ERROR_GPU_IS_LOST);
    cr_assert_eq(memory_of(1), NVML_ERROR_GPU_IS_LOST);
    unsigned count = 0;
    cr_assert_eq(N(nvmlDeviceGetCount_v2)(&count), NVML_SUCCESS);
    cr_assert_eq(count, 2);
    st->ngpus = ngpus;
    st->magic[0] = 'X';
    cr_assert_eq(memory_of(1), NVML_ERROR_GPU_IS_LOST);
    st->magic[0] = 'G';
    cr_assert_eq(memory_of(1), NVML_SUCCESS);

    /* Truncated under the reader (this process must not touch its mapping meanwhile). */
    size_t size = sizeof(*st);
    char *copy = malloc(size);
    cr_assert_not_null(copy);
    memcpy(copy, st, size);
    int fd = open(state_path, O_RDWR);
    cr_assert_geq(fd, 0);
    off_t sizes[] = {0, 100, (off_t)size / 2, (off_t)size - 1, (off_t)size * 2};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        cr_assert_eq(ftruncate(fd, sizes[i]), 0);
        cr_assert_eq(memory_of(0), NVML_ERROR_GPU_IS_LOST, "%lld bytes", (long long)sizes[i]);
        nvmlProcessInfo_t infos[4];
        unsigned n = 4;
        cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses_v3)(dev(0), &n, infos),
                     NVML_ERROR_GPU_IS_LOST);
        cr_assert_eq(N(nvmlDeviceSetComputeMode)(dev(0), NVML_COMPUTEMODE_PROHIBITED),
                     geteuid() == 0 ? NVML_ERROR_GPU_IS_LOST : NVML_ERROR_NO_PERMISSION);
        struct stat sb;
        cr_assert_eq(fstat(fd, &sb), 0);
        cr_assert_eq(sb.st_size, sizes[i], "a refused write must not change the file");
        cr_assert_eq(ftruncate(fd, (off_t)size), 0);
        cr_assert_eq(pwrite(fd, copy, size, 0), (ssize_t)size);
        cr_assert_eq(memory_of(0), NVML_SUCCESS, "restored after %lld bytes", (long long)sizes[i]);
    }
    close(fd);
    free(copy);
    reap(a);
    gm_sim_detach(st);
}

/* The checks themselves, on copies. */
Test(gpusim, validation_of_a_copy)
{
    struct gm_sim_state *st = calloc(1, sizeof(*st));
    cr_assert_not_null(st);
    struct gm_error err;
    long long size = (long long)sizeof(*st);
    memcpy(st->magic, GM_SIM_MAGIC, 8);
    st->layout = GM_SIM_LAYOUT;
    st->size = sizeof(*st);
    st->ngpus = 2;
    cr_assert_eq(gm_sim_validate_header(st, size, "f", &err), 0, "%s", err.msg);
    cr_assert_eq(gm_sim_validate_header(st, size - 1, "f", &err), -GM_EDRIVER);
    cr_assert(strstr(err.msg, "gpusim state f: damaged: ") != NULL, "%s", err.msg);
    st->ngpus = GM_SIM_MAX_GPUS + 1;
    cr_assert_eq(gm_sim_validate_header(st, size, "f", &err), -GM_EDRIVER);
    cr_assert(strstr(err.msg, "9 GPUs") != NULL, "%s", err.msg);
    st->ngpus = 2;
    memset(st->config, 'c', sizeof(st->config));
    cr_assert_eq(gm_sim_validate_header(st, size, "f", &err), -GM_EDRIVER);
    st->config[0] = '\0';
    st->size = 12;
    cr_assert_eq(gm_sim_validate_header(st, size, "f", &err), -GM_EDRIVER);

    struct gm_sim_gpu *g = &st->gpus[0];
    struct gm_sim_config cfg;
    gm_sim_config_defaults(&cfg);
    g->info = cfg.gpus[0];
    g->persistence = 1;
    g->temp_pinned = -1;
    g->temp_c = 34;
    g->nprocs = 1;
    g->procs[0].flags = GM_SIM_PROC_COMPUTE;
    g->procs[0].used_memory = MIB;
    cr_assert_eq(gm_sim_validate_gpu(g, NULL, 0, "f", &err), 0, "%s", err.msg);
    cr_assert_eq(gm_sim_validate_gpu(g, &cfg.gpus[0], 0, "f", &err), 0, "%s", err.msg);
    cr_assert_eq(gm_sim_validate_gpu(g, &cfg.gpus[1], 0, "f", &err), -GM_EDRIVER);
    cr_assert(strstr(err.msg, "static properties changed") != NULL, "%s", err.msg);
    g->nprocs = GM_SIM_MAX_PROCS + 1;
    cr_assert_eq(gm_sim_validate_gpu(g, NULL, 0, "f", &err), -GM_EDRIVER);
    cr_assert(strstr(err.msg, "65 processes") != NULL, "%s", err.msg);
    g->nprocs = 1;
    g->info.sms = 0;
    cr_assert_eq(gm_sim_validate_gpu(g, NULL, 0, "f", &err), -GM_EDRIVER);
    g->info = cfg.gpus[0];
    g->temp_c = INFINITY;
    cr_assert_eq(gm_sim_validate_gpu(g, NULL, 0, "f", &err), -GM_EDRIVER);
    g->temp_c = 34;
    memset(g->procs[0].name, 'n', sizeof(g->procs[0].name));
    cr_assert_eq(gm_sim_validate_gpu(g, NULL, 0, "f", &err), 0, "%s", err.msg);
    cr_assert_eq(g->procs[0].name[sizeof(g->procs[0].name) - 1], '\0', "terminated in place");
    free(st);
}

Test(gpusim, exports_only_nvml_and_the_marker)
{
    const char *(*marker)(void) = (const char *(*)(void))dlsym(lib, "gpusim_nvml_version");
    cr_assert_not_null(marker);
    cr_assert(strncmp(marker(), "gpusim ", 7) == 0);
    cr_assert_null(dlsym(lib, "gm_sim_attach"));
    cr_assert_null(dlsym(lib, "gm_err"));
    cr_assert_null(dlsym(lib, "gm_sim_nvml_state"));
}

/* Every function NVIDIA's nvml.h declares, from the list generated from the header. */
#define GM_NVML_FN(kind, name, params, proto) #name,
static const char *const header_functions[] = {
#include "gpusim/nvml/nvml_functions.h"
};
#undef GM_NVML_FN

Test(gpusim, every_function_of_nvml_h_is_exported)
{
    size_t n = sizeof(header_functions) / sizeof(header_functions[0]);
    cr_assert_gt(n, 400, "the list has %zu functions", n);
    for (size_t i = 0; i < n; i++)
        cr_expect_not_null(dlsym(lib, header_functions[i]), "gpusim lacks %s", header_functions[i]);
    /* Both names of the versioned calls, as a real library exports them. */
    cr_assert_not_null(dlsym(lib, "nvmlDeviceGetComputeRunningProcesses"));
    cr_assert_not_null(dlsym(lib, "nvmlDeviceGetComputeRunningProcesses_v3"));
    cr_assert_not_null(dlsym(lib, "nvmlEventSetWait"));
    cr_assert_not_null(dlsym(lib, "nvmlEventSetWait_v2"));
}

Test(gpusim, unmodelled_functions_answer_not_supported)
{
    init();
    nvmlDevice_t d = dev(0);
    /* Signatures from NVIDIA's nvml.h, NVML API 13 (enums passed as int, unknown structs as
     * void *, as in the generated list). */
    nvmlReturn_t (*nvlink_state)(nvmlDevice_t, unsigned, int *) =
        (nvmlReturn_t(*)(nvmlDevice_t, unsigned, int *))nvsym("nvmlDeviceGetNvLinkState");
    nvmlReturn_t (*fabric)(nvmlDevice_t, void *) =
        (nvmlReturn_t(*)(nvmlDevice_t, void *))nvsym("nvmlDeviceGetGpuFabricInfo");
    nvmlReturn_t (*licensable)(nvmlDevice_t, void *) =
        (nvmlReturn_t(*)(nvmlDevice_t, void *))nvsym("nvmlDeviceGetGridLicensableFeatures");
    int active = 7;
    char buf[512];
    cr_assert_eq(nvlink_state(d, 0, &active), NVML_ERROR_NOT_SUPPORTED);
    cr_assert_eq(active, 7, "nothing written");
    cr_assert_eq(fabric(d, buf), NVML_ERROR_NOT_SUPPORTED);
    cr_assert_eq(licensable(d, buf), NVML_ERROR_NOT_SUPPORTED);
}

Test(gpusim, clocks_pcie_energy_and_more_follow_the_model)
{
    init();
    nvmlDevice_t d = dev(1);
    unsigned v = 0;
    /* Idle: P8 clocks, the idle reason. */
    cr_assert_eq(N(nvmlDeviceGetClockInfo)(d, NVML_CLOCK_SM, &v), NVML_SUCCESS);
    cr_assert_eq(v, 300);
    cr_assert_eq(N(nvmlDeviceGetMaxClockInfo)(d, NVML_CLOCK_SM, &v), NVML_SUCCESS);
    cr_assert_eq(v, 1590);
    cr_assert_eq(N(nvmlDeviceGetMaxClockInfo)(d, NVML_CLOCK_MEM, &v), NVML_SUCCESS);
    cr_assert_eq(v, 5001);
    cr_assert_eq(N(nvmlDeviceGetClock)(d, NVML_CLOCK_GRAPHICS, NVML_CLOCK_ID_APP_CLOCK_DEFAULT, &v),
                 NVML_SUCCESS);
    cr_assert_eq(v, 585);
    cr_assert_eq(N(nvmlDeviceGetClockInfo)(d, NVML_CLOCK_COUNT, &v), NVML_ERROR_INVALID_ARGUMENT);
    unsigned long long reasons = 99;
    cr_assert_eq(N(nvmlDeviceGetCurrentClocksThrottleReasons)(d, &reasons), NVML_SUCCESS);
    cr_assert_eq(reasons, nvmlClocksEventReasonGpuIdle);
    /* A process puts the GPU in P0: maximum clocks, no reason. */
    struct gm_sim_state *st = attach();
    pid_t p = sleeper();
    reg(st, 1, p, GM_SIM_PROC_COMPUTE, 100, "busy");
    cr_assert_eq(N(nvmlDeviceGetClockInfo)(d, NVML_CLOCK_SM, &v), NVML_SUCCESS);
    cr_assert_eq(v, 1590);
    cr_assert_eq(N(nvmlDeviceGetCurrentClocksEventReasons)(d, &reasons), NVML_SUCCESS);
    cr_assert_eq(reasons, nvmlClocksEventReasonNone);

    cr_assert_eq(N(nvmlDeviceGetCurrPcieLinkGeneration)(d, &v), NVML_SUCCESS);
    cr_assert_eq(v, 3);
    cr_assert_eq(N(nvmlDeviceGetMaxPcieLinkWidth)(d, &v), NVML_SUCCESS);
    cr_assert_eq(v, 16);
    cr_assert_eq(N(nvmlDeviceGetPcieThroughput)(d, NVML_PCIE_UTIL_RX_BYTES, &v), NVML_SUCCESS);
    cr_assert_eq(N(nvmlDeviceGetTemperatureThreshold)(d, NVML_TEMPERATURE_THRESHOLD_SLOWDOWN, &v),
                 NVML_SUCCESS);
    cr_assert_eq(v, 93);
    cr_assert_eq(N(nvmlDeviceGetTemperatureThreshold)(d, NVML_TEMPERATURE_THRESHOLD_MEM_MAX, &v),
                 NVML_ERROR_NOT_SUPPORTED);
    cr_assert_eq(N(nvmlDeviceGetMinorNumber)(d, &v), NVML_SUCCESS);
    cr_assert_eq(v, 1);
    nvmlDeviceArchitecture_t arch = 0;
    cr_assert_eq(N(nvmlDeviceGetArchitecture)(d, &arch), NVML_SUCCESS);
    cr_assert_eq(arch, NVML_DEVICE_ARCH_TURING);
    char vbios[NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE];
    cr_assert_eq(N(nvmlDeviceGetVbiosVersion)(d, vbios, sizeof(vbios)), NVML_SUCCESS);
    cr_assert_str_eq(vbios, "90.04.96.00.02");
    unsigned period = 0;
    cr_assert_eq(N(nvmlDeviceGetEncoderUtilization)(d, &v, &period), NVML_SUCCESS);
    cr_assert_eq(v, 0);
    cr_assert_gt(period, 0);

    /* Memory v2 splits v1's used into the driver's reserve and the processes'. */
    nvmlMemory_t m1;
    nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
    cr_assert_eq(N(nvmlDeviceGetMemoryInfo)(d, &m1), NVML_SUCCESS);
    cr_assert_eq(N(nvmlDeviceGetMemoryInfo_v2)(d, &m2), NVML_SUCCESS);
    cr_assert_eq(m2.total, m1.total);
    cr_assert_eq(m2.reserved, GM_SIM_DRIVER_RESERVE);
    cr_assert_eq(m2.used, 100 * MIB);
    cr_assert_eq(m2.free, m1.free);
    m2.version = 1;
    cr_assert_eq(N(nvmlDeviceGetMemoryInfo_v2)(d, &m2), NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    nvmlBAR1Memory_t bar1;
    cr_assert_eq(N(nvmlDeviceGetBAR1MemoryInfo)(d, &bar1), NVML_SUCCESS);
    cr_assert_eq(bar1.bar1Total, 256 * MIB);
    cr_assert_eq(bar1.bar1Used + bar1.bar1Free, bar1.bar1Total);

    /* Energy grows by about the power times the time (26.6 W with a context). */
    unsigned long long e0 = 0, e1 = 0;
    cr_assert_eq(N(nvmlDeviceGetTotalEnergyConsumption)(d, &e0), NVML_SUCCESS);
    usleep(200000);
    cr_assert_eq(N(nvmlDeviceGetTotalEnergyConsumption)(d, &e1), NVML_SUCCESS);
    cr_assert_geq(e1 - e0, 26600 * 0.2 * 0.9, "%llu mJ", e1 - e0);
    cr_assert_leq(e1 - e0, 26600 * 0.2 * 3, "%llu mJ", e1 - e0);

    /* The unversioned first versions, with their smaller structs. */
    nvmlProcessInfo_v1_t v1[4];
    unsigned count = 4;
    cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses)(d, &count, v1), NVML_SUCCESS);
    cr_assert_eq(count, 1);
    cr_assert_eq(v1[0].pid, (unsigned)p);
    cr_assert_eq(v1[0].usedGpuMemory, 100 * MIB);
    count = 0;
    cr_assert_eq(N(nvmlDeviceGetComputeRunningProcesses)(d, &count, NULL),
                 NVML_ERROR_INSUFFICIENT_SIZE);
    cr_assert_eq(count, 1);
    nvmlPciInfo_t pci;
    memset(&pci, 0xAA, sizeof(pci));
    cr_assert_eq(N(nvmlDeviceGetPciInfo)(d, &pci), NVML_SUCCESS);
    cr_assert_str_eq(pci.busIdLegacy, "E00B:00:00.0");
    cr_assert_eq(((unsigned char *)&pci)[sizeof(pci) - 1], 0xAA, "nothing past the v1 struct");
    nvmlDevice_t again = NULL;
    cr_assert_eq(N(nvmlDeviceGetHandleByPciBusId)("0000E00B:00:00.0", &again), NVML_SUCCESS);
    cr_assert_eq(again, d);
    reap(p);
    gm_sim_detach(st);
}

/* A process busy 30% of the time, in kernels of 6 ms every 20 ms at any phase, or spread thin
 * as an MPS client at 30%: each sampling period reads 30, not the 0 or 100 of the last kernel. */
Test(gpusim, process_utilisation_is_averaged_over_each_sampling_period)
{
    struct gm_sim_proc p;
    memset(&p, 0, sizeof(p));
    const uint64_t ms = 1000000, base = 1000 * GM_SIM_UTIL_PERIOD_NS + 7 * ms;
    for (uint64_t t = base; t < base + 10 * GM_SIM_UTIL_PERIOD_NS; t += 20 * ms)
        gm_sim_proc_record_busy(&p, t, t + 6 * ms, 6 * ms, base);
    uint64_t end = 0;
    for (int k = 1; k < 9; k++) {
        uint64_t now = base + (uint64_t)k * GM_SIM_UTIL_PERIOD_NS + 50 * ms;
        unsigned u = gm_sim_proc_period_util(&p, now, &end);
        cr_expect(u >= 29 && u <= 31, "period %d: %u", k, u);
        cr_expect_eq(end % GM_SIM_UTIL_PERIOD_NS, 0);
        cr_expect_leq(end, now);
    }
    /* An MPS client's kernel: 600 ms of work over 2 s. */
    memset(&p, 0, sizeof(p));
    gm_sim_proc_record_busy(&p, base, base + 2000 * ms, 600 * ms, base);
    cr_assert_eq(gm_sim_proc_period_util(&p, base + 500 * ms, &end), 30);
    /* Further than the ring reaches ahead is not recorded, and does not overwrite the past. */
    cr_assert_eq(gm_sim_proc_period_util(&p, base + 1900 * ms, &end), 0);
    cr_assert_eq(gm_sim_proc_period_util(&p, base + 50 * GM_SIM_UTIL_PERIOD_NS, &end), 0);

    /* Through the library: the sample of the last period, stamped in CPU microseconds, once. */
    init();
    struct gm_sim_state *st = attach();
    pid_t a = sleeper();
    reg(st, 0, a, GM_SIM_PROC_COMPUTE, 100, "thirty");
    struct gm_error err;
    cr_assert_eq(gm_sim_lock(st, &err), 0, "%s", err.msg);
    uint64_t now = gm_mono_ns();
    for (uint64_t t = now - 400 * ms; t < now; t += 20 * ms)
        gm_sim_proc_record_busy(&st->gpus[0].procs[0], t, t + 6 * ms, 6 * ms, now);
    gm_sim_unlock(st);
    nvmlProcessUtilizationSample_t s[4];
    unsigned n = 4;
    uint64_t before = gm_now_us();
    cr_assert_eq(N(nvmlDeviceGetProcessUtilization)(dev(0), s, &n, 0), NVML_SUCCESS);
    cr_assert_eq(n, 1);
    cr_assert_eq(s[0].pid, (unsigned)a);
    cr_assert(s[0].smUtil >= 29 && s[0].smUtil <= 31, "smUtil %u", s[0].smUtil);
    cr_assert_leq(s[0].timeStamp, before + 1000);
    cr_assert_geq(s[0].timeStamp + 2 * GM_SIM_UTIL_PERIOD_NS / 1000, before);
    n = 4;
    cr_assert_eq(N(nvmlDeviceGetProcessUtilization)(dev(0), s, &n, s[0].timeStamp),
                 NVML_ERROR_NOT_FOUND);
    reap(a);
    gm_sim_detach(st);
}
