/* gpusim's state file as any user may leave it (it is world-writable): a valid state, then the
 * input's patches and perhaps a truncation, read through the private view that the daemon's
 * NVML uses. Input: an optional first byte 'T' and four bytes of new size, then patches of
 * [4 bytes offset][1 byte length][length bytes]. After each input the file is put back.
 *
 * Contract checked: every read either fails as damaged (-GM_EDRIVER) or returns a GPU within
 * the bounds the view promises: at most 64 processes, terminated strings, the static part as at
 * open, memory used within the total, percentages and temperatures in range. The sanitizers
 * catch any read outside the copy or undefined arithmetic on hostile numbers. */
#include "fuzz.h"

#include "gpusim/state/state.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static struct gm_sim_view *view;
static struct gm_sim_state *good;
static struct gm_sim_gpu *copy;
static int fd = -1;
static char dir[64], path[96];

static void remove_dir(void)
{
    unlink(path);
    rmdir(dir);
}

static int setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/gm-fuzz-gpusim-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/state", dir);
    atexit(remove_dir);
    struct gm_error err;
    FUZZ_CHECK(gm_sim_view_open(path, NULL, &view, &err) == 0, "%s", err.msg);
    good = malloc(sizeof(*good));
    copy = malloc(sizeof(*copy));
    fd = open(path, O_RDWR | O_CLOEXEC);
    FUZZ_CHECK(good != NULL && copy != NULL && fd >= 0, "setup");
    FUZZ_CHECK(pread(fd, good, sizeof(*good), 0) == (ssize_t)sizeof(*good), "reading the state");
    return 0;
}

static uint32_t u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_gpu(int gpu, const struct gm_sim_gpu *g, const struct gm_sim_reading *r)
{
    const struct gm_sim_gpu_info *want = &gm_sim_view_base(view)->gpus[gpu].info;
    FUZZ_CHECK(memcmp(&g->info, want, sizeof(*want)) == 0, "GPU %d: static part changed", gpu);
    FUZZ_CHECK(g->nprocs <= GM_SIM_MAX_PROCS, "GPU %d: %u processes", gpu, g->nprocs);
    for (uint32_t i = 0; i < g->nprocs; i++)
        FUZZ_CHECK(memchr(g->procs[i].name, '\0', sizeof(g->procs[i].name)) != NULL,
                   "GPU %d: process %u: name not terminated", gpu, i);
    FUZZ_CHECK(r->memory_used <= g->info.memory_total, "GPU %d: %llu bytes used", gpu,
               (unsigned long long)r->memory_used);
    FUZZ_CHECK(g->util_gpu >= 0 && g->util_gpu <= 100 && g->util_memory >= 0 &&
                   g->util_memory <= 100,
               "GPU %d: utilisation %d, %d", gpu, g->util_gpu, g->util_memory);
    FUZZ_CHECK(r->temperature >= -100 && r->temperature <= 300, "GPU %d: %d C", gpu,
               r->temperature);
    FUZZ_CHECK(r->power_mw <= g->info.power_limit_mw, "GPU %d: %u mW", gpu, r->power_mw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0 && setup() < 0)
        return 0;
    const size_t total = sizeof(*good);
    size_t at = 0;
    int truncated = 0;
    if (size >= 5 && data[0] == 'T') {
        truncated = ftruncate(fd, (off_t)(u32(data + 1) % (2 * total))) == 0;
        at = 5;
    }
    /* Where the patches went, to put the good bytes back. */
    size_t offs[64], lens[64], n = 0;
    while (at + 5 <= size && n < 64) {
        size_t off = u32(data + at) % total, len = data[at + 4];
        at += 5;
        if (len > size - at)
            len = size - at;
        if (off + len > total)
            len = total - off;
        if (pwrite(fd, data + at, len, (off_t)off) == (ssize_t)len) {
            offs[n] = off;
            lens[n++] = len;
        }
        at += len;
    }
    for (int gpu = 0; gpu < (int)gm_sim_view_base(view)->ngpus; gpu++) {
        struct gm_sim_reading r;
        struct gm_error err = {0};
        int rc = gm_sim_view_snapshot(view, gpu, copy, &r, &err);
        FUZZ_CHECK(rc == 0 || rc == -GM_EDRIVER, "GPU %d: %d: %s", gpu, rc, err.msg);
        if (rc == 0)
            check_gpu(gpu, copy, &r);
        else
            FUZZ_CHECK(strstr(err.msg, "damaged") != NULL, "GPU %d: %s", gpu, err.msg);
    }
    if (truncated)
        FUZZ_CHECK(ftruncate(fd, (off_t)total) == 0, "restoring the size");
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(pwrite(fd, (const char *)good + offs[i], lens[i], (off_t)offs[i]) ==
                       (ssize_t)lens[i],
                   "restoring");
    if (truncated)
        FUZZ_CHECK(pwrite(fd, good, total, 0) == (ssize_t)total, "restoring");
    return 0;
}
