/* gpumux-sample: an all-pairs n-body simulation on the CUDA driver API, reporting interactions
 * per second in the format of NVIDIA's `nbody -benchmark`, so that its numbers compare with the
 * seed's walk-through. The kernel is PTX embedded in the binary and JIT-compiled by whichever
 * libcuda.so.1 is loaded: a real driver runs it, gpusim charges simulated time for the launch
 * shape. Either way the host side is the same sequence of driver calls. */
#include "bodies.h"
#include "cuda_driver.h"
#include "options.h"
#include "ptx.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FLOPS_PER_INTERACTION 20
#define BODIES_PER_SM         (4 * GM_SAMPLE_BLOCK_SIZE) /* nbody's default: 4 blocks per SM */
#define SEED                  20240521u

struct nbody {
    CUdevice dev;
    int have_ctx;
    CUmodule mod;
    CUfunction kernel;
    unsigned n;
    size_t bytes;    /* of one float4 array */
    float *host_pos; /* host copies, n float4 each */
    float *host_vel;
    CUdeviceptr pos[2]; /* read one, write the other, then swap */
    CUdeviceptr vel;
    int cur; /* index of the current positions in pos[] */
    CUevent start, stop, mark[2];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* cuModuleLoadDataEx when present, for the JIT's error log: this PTX was written by hand and a
 * driver that refuses it should say where. */
static int load_module(struct nbody *nb)
{
    CUresult rc;
    char log[8192] = "";
    if (gm_cu.cuModuleLoadDataEx != NULL) {
        CUjit_option opts[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
        void *vals[] = {log, (void *)(uintptr_t)sizeof(log)};
        rc = gm_cu.cuModuleLoadDataEx(&nb->mod, gm_sample_ptx, 2, opts, vals);
    } else {
        rc = gm_cu.cuModuleLoadData(&nb->mod, gm_sample_ptx);
    }
    if (rc != CUDA_SUCCESS) {
        nb->mod = NULL;
        gm_sample_cuda_fail(rc, "loading the n-body PTX (%zu bytes)", gm_sample_ptx_len);
        log[sizeof(log) - 1] = '\0';
        if (log[0] != '\0')
            fprintf(stderr, "JIT log:\n%s\n", log);
        return -1;
    }
    rc = gm_cu.cuModuleGetFunction(&nb->kernel, nb->mod, GM_SAMPLE_KERNEL);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuModuleGetFunction(%s)", GM_SAMPLE_KERNEL);
    return 0;
}

static int attribute(CUdevice_attribute attr, const char *what, CUdevice dev, int *out)
{
    CUresult rc = gm_cu.cuDeviceGetAttribute(out, attr, dev);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuDeviceGetAttribute(%s, device %d)", what, (int)dev);
    return 0;
}

static int open_device(struct nbody *nb, const struct gm_sample_options *o)
{
    CUresult rc = gm_cu.cuInit(0);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuInit (driver %s)", gm_sample_cuda_path());
    int count = 0;
    rc = gm_cu.cuDeviceGetCount(&count);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuDeviceGetCount");
    if (o->device >= count)
        return gm_sample_fail("-device=%d: no such CUDA device (%d visible%s)", o->device, count,
                              count > 0 ? ", numbered from 0" : "");
    rc = gm_cu.cuDeviceGet(&nb->dev, o->device);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuDeviceGet(%d)", o->device);

    char name[256] = "";
    int major = 0, minor = 0, sms = 0;
    rc = gm_cu.cuDeviceGetName(name, (int)sizeof(name), nb->dev);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuDeviceGetName(device %d)", o->device);
    if (attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "compute capability", nb->dev,
                  &major) < 0 ||
        attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "compute capability", nb->dev,
                  &minor) < 0 ||
        attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "multiprocessor count", nb->dev, &sms) <
            0)
        return -1;

    long n = o->bodies;
    if (n == 0)
        n = o->compare ? GM_SAMPLE_COMPARE_BODIES : (long)(sms > 0 ? sms : 1) * BODIES_PER_SM;
    if (n > GM_SAMPLE_MAX_BODIES)
        n = GM_SAMPLE_MAX_BODIES;
    nb->n = (unsigned)n;
    nb->bytes = (size_t)nb->n * 4 * sizeof(float);

    /* The primary context, as the runtime API uses: under MPS this is where a full server or a
     * missing control daemon shows up. */
    CUcontext ctx = NULL;
    rc = gm_cu.cuDevicePrimaryCtxRetain(&ctx, nb->dev);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuDevicePrimaryCtxRetain(device %d)", o->device);
    nb->have_ctx = 1;
    rc = gm_cu.cuCtxSetCurrent(ctx);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuCtxSetCurrent");

    if (!o->quiet) {
        printf("> Simulation data stored in video memory\n"
               "> Single precision floating point simulation\n"
               "> 1 Devices used for simulation\n"
               "> Compute %d.%d CUDA device: [%s]\n",
               major, minor, name);
        if (o->bodies != 0)
            printf("number of bodies = %u\n", nb->n);
        fflush(stdout);
    }
    return 0;
}

static int alloc(CUdeviceptr *p, size_t bytes)
{
    CUresult rc = gm_cu.cuMemAlloc(p, bytes);
    if (rc != CUDA_SUCCESS) {
        *p = 0;
        return gm_sample_cuda_fail(rc, "cuMemAlloc(%zu bytes)", bytes);
    }
    return 0;
}

static int setup(struct nbody *nb)
{
    nb->host_pos = malloc(nb->bytes);
    nb->host_vel = malloc(nb->bytes);
    if (nb->host_pos == NULL || nb->host_vel == NULL)
        return gm_sample_fail("out of host memory for %u bodies", nb->n);
    gm_sample_bodies_init(nb->host_pos, nb->host_vel, nb->n, SEED);

    if (load_module(nb) < 0 || alloc(&nb->pos[0], nb->bytes) < 0 ||
        alloc(&nb->pos[1], nb->bytes) < 0 || alloc(&nb->vel, nb->bytes) < 0)
        return -1;
    CUresult rc = gm_cu.cuMemcpyHtoD(nb->pos[0], nb->host_pos, nb->bytes);
    if (rc == CUDA_SUCCESS)
        rc = gm_cu.cuMemcpyHtoD(nb->vel, nb->host_vel, nb->bytes);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuMemcpyHtoD(%zu bytes)", nb->bytes);

    CUevent *evs[] = {&nb->start, &nb->stop, &nb->mark[0], &nb->mark[1]};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        rc = gm_cu.cuEventCreate(evs[i], CU_EVENT_DEFAULT);
        if (rc != CUDA_SUCCESS) {
            *evs[i] = NULL;
            return gm_sample_cuda_fail(rc, "cuEventCreate");
        }
    }
    return 0;
}

/* One time step: reads pos[cur], writes pos[1 - cur] and vel. */
static int step(struct nbody *nb, float dt)
{
    CUdeviceptr newpos = nb->pos[1 - nb->cur], oldpos = nb->pos[nb->cur];
    unsigned n = nb->n;
    float damping = GM_SAMPLE_DAMPING;
    float soft2 = GM_SAMPLE_SOFTENING * GM_SAMPLE_SOFTENING;
    /* The order of nbody.ptx's parameters; n at index 3 is what a simulator reads the cost
     * from. */
    void *params[] = {&newpos, &oldpos, &nb->vel, &n, &dt, &damping, &soft2};
    unsigned grid = (n + GM_SAMPLE_BLOCK_SIZE - 1) / GM_SAMPLE_BLOCK_SIZE;
    CUresult rc = gm_cu.cuLaunchKernel(nb->kernel, grid, 1, 1, GM_SAMPLE_BLOCK_SIZE, 1, 1, 0, NULL,
                                       params, NULL);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuLaunchKernel(%s, %u x %d threads)", GM_SAMPLE_KERNEL,
                                   grid, GM_SAMPLE_BLOCK_SIZE);
    nb->cur = 1 - nb->cur;
    return 0;
}

static int record(CUevent ev)
{
    CUresult rc = gm_cu.cuEventRecord(ev, NULL);
    return rc == CUDA_SUCCESS ? 0 : gm_sample_cuda_fail(rc, "cuEventRecord");
}

static int wait_event(CUevent ev)
{
    CUresult rc = gm_cu.cuEventSynchronize(ev);
    return rc == CUDA_SUCCESS ? 0 : gm_sample_cuda_fail(rc, "cuEventSynchronize");
}

/* With -t the loop must see the clock, so it waits for step i-1 while step i is queued: the GPU
 * never idles for the wait, and the host never runs more than one step ahead. */
static int run_steps(struct nbody *nb, const struct gm_sample_options *o, long *done)
{
    long max = o->iterations > 0 ? o->iterations
               : o->seconds > 0  ? 0
                                 : GM_SAMPLE_DEFAULT_ITERATIONS;
    double deadline = now_s() + o->seconds;
    long i = 0;
    for (;;) {
        if (step(nb, GM_SAMPLE_DT) < 0)
            return -1;
        i++;
        if (max > 0 && i >= max)
            break;
        if (o->seconds > 0) {
            if (record(nb->mark[i & 1]) < 0 || (i > 1 && wait_event(nb->mark[(i - 1) & 1]) < 0))
                return -1;
            if (now_s() >= deadline)
                break;
        }
    }
    *done = i;
    return 0;
}

static int benchmark(struct nbody *nb, const struct gm_sample_options *o)
{
    /* Once untimed, as nbody does, so that first-launch costs stay out of the number. */
    if (step(nb, GM_SAMPLE_DT) < 0)
        return -1;
    CUresult rc = gm_cu.cuCtxSynchronize();
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuCtxSynchronize after the first step");

    long iters = 0;
    float ms = 0;
    if (record(nb->start) < 0 || run_steps(nb, o, &iters) < 0 || record(nb->stop) < 0 ||
        wait_event(nb->stop) < 0)
        return -1;
    rc = gm_cu.cuEventElapsedTime(&ms, nb->start, nb->stop);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuEventElapsedTime");

    rc = gm_cu.cuMemcpyDtoH(nb->host_pos, nb->pos[nb->cur], nb->bytes);
    if (rc != CUDA_SUCCESS)
        return gm_sample_cuda_fail(rc, "cuMemcpyDtoH(%zu bytes)", nb->bytes);
    size_t bad = gm_sample_bodies_nonfinite(nb->host_pos, nb->n);
    if (bad > 0)
        fprintf(stderr, "gpumux-sample: warning: %zu of %u final positions are not finite\n", bad,
                nb->n);

    double interactions = (double)nb->n * (double)nb->n * (double)iters;
    double rate = ms > 0 ? interactions / ((double)ms * 1e-3) * 1e-9 : 0.0;
    if (ms <= 0)
        fprintf(stderr, "gpumux-sample: warning: the event timer measured %.3f ms\n", (double)ms);
    printf("%u bodies, total time for %ld iterations: %.3f ms\n", nb->n, iters, (double)ms);
    printf("= %.3f billion interactions per second\n", rate);
    printf("= %.3f single-precision GFLOP/s at %d flops per interaction\n",
           rate * FLOPS_PER_INTERACTION, FLOPS_PER_INTERACTION);
    fflush(stdout);
    return 0;
}

/* nbody's -compare: one short step on both sides. The host sums in double precision and the
 * kernel uses an approximate rsqrt, hence a tolerance rather than equality. */
static int compare(struct nbody *nb)
{
    const float dt = 0.001f, tolerance = 0.0005f;
    float *want = malloc(nb->bytes), *got = malloc(nb->bytes);
    int rc = -1;
    if (want == NULL || got == NULL) {
        gm_sample_fail("out of host memory for %u bodies", nb->n);
        goto out;
    }
    if (step(nb, dt) < 0)
        goto out;
    CUresult crc = gm_cu.cuMemcpyDtoH(got, nb->pos[nb->cur], nb->bytes);
    if (crc != CUDA_SUCCESS) {
        gm_sample_cuda_fail(crc, "cuMemcpyDtoH(%zu bytes)", nb->bytes);
        goto out;
    }
    gm_sample_bodies_step(nb->host_pos, nb->host_vel, want, nb->n, dt);
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)nb->n * 4; i++) {
        if (!(fabsf(want[i] - got[i]) <= tolerance)) {
            if (bad++ < 10)
                printf("Error: body %zu: (host)%f != (device)%f\n", i / 4, (double)want[i],
                       (double)got[i]);
        }
    }
    if (bad > 0) {
        gm_sample_fail("-compare: %zu of %u coordinates differ by more than %g", bad, nb->n * 4,
                       (double)tolerance);
        goto out;
    }
    printf("  OK\n");
    rc = 0;
out:
    free(want);
    free(got);
    return rc;
}

/* What setup made, given back (the context stays). */
static void release(struct nbody *nb)
{
    CUevent *evs[] = {&nb->start, &nb->stop, &nb->mark[0], &nb->mark[1]};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (*evs[i] != NULL)
            gm_cu.cuEventDestroy(*evs[i]);
        *evs[i] = NULL;
    }
    CUdeviceptr *bufs[] = {&nb->pos[0], &nb->pos[1], &nb->vel};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        if (*bufs[i] != 0)
            gm_cu.cuMemFree(*bufs[i]);
        *bufs[i] = 0;
    }
    if (nb->mod != NULL)
        gm_cu.cuModuleUnload(nb->mod);
    nb->mod = NULL;
    free(nb->host_pos);
    free(nb->host_vel);
    nb->host_pos = nb->host_vel = NULL;
    nb->cur = 0;
}

/* -kernel-ms: a step's time grows with the square of the bodies, so one measurement with
 * GM_SAMPLE_CALIBRATE_BODIES fixes the count. The shortest of a few steps: a step held back by
 * a compute cap inside its launch is timed long. */
static int calibrate(struct nbody *nb, const struct gm_sample_options *o)
{
    nb->n = GM_SAMPLE_CALIBRATE_BODIES;
    nb->bytes = (size_t)nb->n * 4 * sizeof(float);
    if (setup(nb) < 0 || step(nb, GM_SAMPLE_DT) < 0 || gm_cu.cuCtxSynchronize() != CUDA_SUCCESS)
        return gm_sample_fail("-kernel-ms: the calibration step failed");
    float best = 0;
    for (int i = 0; i < 5; i++) {
        float ms = 0;
        if (record(nb->start) < 0 || step(nb, GM_SAMPLE_DT) < 0 || record(nb->stop) < 0 ||
            wait_event(nb->stop) < 0)
            return -1;
        if (gm_cu.cuEventElapsedTime(&ms, nb->start, nb->stop) == CUDA_SUCCESS && ms > 0 &&
            (best == 0 || ms < best))
            best = ms;
    }
    release(nb);
    if (best <= 0)
        return gm_sample_fail("-kernel-ms: the event timer measured nothing");
    double n = GM_SAMPLE_CALIBRATE_BODIES * sqrt(o->kernel_ms / (double)best);
    long bodies = lround(n / GM_SAMPLE_BLOCK_SIZE) * GM_SAMPLE_BLOCK_SIZE;
    if (bodies < GM_SAMPLE_BLOCK_SIZE)
        bodies = GM_SAMPLE_BLOCK_SIZE;
    if (bodies > GM_SAMPLE_MAX_BODIES)
        return gm_sample_fail("-kernel-ms=%g needs %.0f bodies, more than %ld", o->kernel_ms, n,
                              GM_SAMPLE_MAX_BODIES);
    nb->n = (unsigned)bodies;
    nb->bytes = (size_t)nb->n * 4 * sizeof(float);
    if (!o->quiet) {
        printf("number of bodies = %u (a step of %.3f ms at %d bodies: %.3f ms aimed at)\n", nb->n,
               (double)best, GM_SAMPLE_CALIBRATE_BODIES, o->kernel_ms);
        fflush(stdout);
    }
    return 0;
}

/* Best effort: the process is about to exit, and the driver frees what is left then anyway. */
static void teardown(struct nbody *nb)
{
    release(nb);
    if (nb->have_ctx)
        gm_cu.cuDevicePrimaryCtxRelease(nb->dev);
}

int main(int argc, char **argv)
{
    struct gm_sample_options o;
    int rc = gm_sample_parse_options(argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (gm_sample_cuda_load() < 0)
        return 1;

    struct nbody nb;
    memset(&nb, 0, sizeof(nb));
    int ok = open_device(&nb, &o) == 0 && (o.kernel_ms <= 0 || calibrate(&nb, &o) == 0) &&
             setup(&nb) == 0 && (o.compare ? compare(&nb) : benchmark(&nb, &o)) == 0;
    teardown(&nb);
    gm_sample_cuda_unload();
    return ok ? 0 : 1;
}
