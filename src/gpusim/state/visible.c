/* CUDA_VISIBLE_DEVICES as the CUDA driver reads it: used by gpusim's libcuda.so.1 and by its
 * MPS control daemon and servers (gpumuxd starts one control daemon per GPU by naming that GPU
 * there), so that all of them see the same GPUs. */
#include "gpusim/state/state.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* A UUID or a prefix of one that matches exactly one GPU, as CUDA accepts; -1 otherwise. */
static int by_uuid(const struct gm_sim_state *st, const char *tok, size_t n)
{
    int found = -1;
    for (uint32_t i = 0; i < st->ngpus && i < GM_SIM_MAX_GPUS; i++)
        if (strlen(st->gpus[i].info.uuid) >= n && strncmp(st->gpus[i].info.uuid, tok, n) == 0) {
            if (found >= 0)
                return -1;
            found = (int)i;
        }
    return found;
}

static int by_index(const struct gm_sim_state *st, const char *tok, size_t n)
{
    if (n == 0 || n > 3)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)tok[i]))
            return -1;
    int v = atoi(tok);
    return (uint32_t)v < st->ngpus ? v : -1;
}

int gm_sim_visible_gpus(const struct gm_sim_state *st, const char *cvd, int *out, int max)
{
    int n = 0;
    if (cvd == NULL) {
        for (uint32_t i = 0; i < st->ngpus && n < max; i++)
            out[n++] = (int)i;
        return n;
    }
    const char *p = cvd;
    while (*p != '\0' && n < max) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, ",");
        size_t tl = len;
        while (tl > 0 && (p[tl - 1] == ' ' || p[tl - 1] == '\t'))
            tl--;
        int gpu = strncmp(p, "GPU-", 4) == 0 && tl > 4 ? by_uuid(st, p, tl) : by_index(st, p, tl);
        if (gpu < 0)
            break;
        for (int i = 0; i < n; i++)
            if (out[i] == gpu)
                return n;
        out[n++] = gpu;
        p += len;
        if (*p == ',')
            p++;
    }
    return n;
}
