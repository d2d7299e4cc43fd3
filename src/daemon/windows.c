#include "daemon/windows.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

static int on_gpu(const struct gm_workload_rec *w, const struct gm_gpu_rec *g)
{
    return w->ngpus == 1 && strcmp(w->gpus[0], g->uuid) == 0;
}

int gm_windows_plan(const struct gm_gpu_rec *gpus, size_t ngpus, const struct gm_workload_rec *ws,
                    size_t nws, struct gm_window_plan *out)
{
    memset(out, 0, sizeof(*out));
    if (nws == 0)
        return 0;
    out->windows = calloc(nws, sizeof(*out->windows));
    out->reap = calloc(nws, sizeof(*out->reap));
    if (out->windows == NULL || out->reap == NULL) {
        gm_window_plan_free(out);
        return -GM_ENOMEM;
    }
    for (size_t g = 0; g < ngpus; g++) {
        /* Caps are limits: when they add up past 100% each gets its share of the period. */
        uint64_t sum = 0;
        for (size_t i = 0; i < nws; i++)
            if (on_gpu(&ws[i], &gpus[g]) && gm_workload_active(&ws[i]) && ws[i].compute_pct > 0)
                sum += (uint64_t)ws[i].compute_pct;
        uint64_t scale = sum > 100 ? sum : 100;
        uint64_t offset = 0;
        for (size_t i = 0; i < nws; i++) {
            const struct gm_workload_rec *w = &ws[i];
            if (!on_gpu(w, &gpus[g]) || (w->compute_pct <= 0 && w->memory_limit == 0))
                continue;
            out->reap[out->nreap++] = i;
            if (!gm_workload_active(w) || w->compute_pct <= 0 || gpus[g].mode != GM_MODE_SHARED)
                continue;
            uint64_t len = GM_WINDOW_PERIOD_NS * (uint64_t)w->compute_pct / scale;
            out->windows[out->nwindows++] = (struct gm_window){.workload = i,
                                                               .gpu = g,
                                                               .period_ns = GM_WINDOW_PERIOD_NS,
                                                               .offset_ns = offset,
                                                               .len_ns = len};
            offset += len;
        }
    }
    return 0;
}

void gm_window_plan_free(struct gm_window_plan *p)
{
    free(p->windows);
    free(p->reap);
    memset(p, 0, sizeof(*p));
}

size_t gm_window_plan_peers(const struct gm_window_plan *p, size_t i, size_t *peers, size_t max)
{
    size_t n = 0;
    for (size_t j = 0; j < p->nwindows; j++) {
        if (j == i || p->windows[j].gpu != p->windows[i].gpu)
            continue;
        if (n < max)
            peers[n] = p->windows[j].workload;
        n++;
    }
    return n;
}

const struct gm_window *gm_window_plan_find(const struct gm_window_plan *p, size_t w)
{
    for (size_t i = 0; i < p->nwindows; i++)
        if (p->windows[i].workload == w)
            return &p->windows[i];
    return NULL;
}
