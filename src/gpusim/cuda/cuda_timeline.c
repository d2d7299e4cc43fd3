/* gpusim's libcuda.so.1: the device timeline. Each GPU has one timeline in the shared state;
 * every launch of every process is placed on it under the state's lock, so processes see each
 * other's work the way they would on one real GPU. The model, and why its numbers are what they
 * are, is in docs/gpusim.md, "CUDA and the device timeline". */
#include "common/clock.h"
#include "gpusim/cuda/cuda_internal.h"

#include <string.h>
#include <time.h>

/* A T4 (40 SMs) runs NVIDIA's n-body at 216.4 G interactions/s alone (20 flops each, 4.3
 * TFLOP/s, about half the T4's FP32 peak). Calibrated on the seed: two processes time-sliced
 * measured 98.5 G interactions/s each (40960^2 x 10000 in 170.4 s), which with the switch cost
 * below is 216.4 / (2 x 1.099); under MPS the same model gives 108.2 each (seed: 108.3). Other
 * devices scale with their SM count. */
#define T4_SMS                40.0
#define T4_INTERACTIONS_PER_S 216.4e9
/* Any other kernel: 1 ns of the whole T4 per thread, and never less than a launch costs. */
#define NS_PER_THREAD 1.0
#define MIN_KERNEL_NS 5000.0
/* Time-slicing: while several processes have work queued, the GPU switches between their
 * contexts every TIMESLICE_NS and a switch costs SWITCH_NS, so a kernel scheduled while another
 * process's work is outstanding pays 9.9% of its time (at least one switch): two saturating
 * processes each get 1/2 x 1/1.099 = 0.455 of the GPU, and MPS, which does not switch, is ~9%
 * faster, as in the seed's walk-through. */
#define TIMESLICE_NS 2000000.0
#define SWITCH_NS    198000.0

uint64_t gm_sim_cuda_kernel_work(const struct CUfunc_st *f, uint32_t sms, uint64_t threads,
                                 void **params)
{
    double scale = sms > 0 ? T4_SMS / sms : 1.0;
    double ns;
    /* The sample's kernel: parameter 3 is n, and a launch does n^2 interactions. */
    if (strcmp(f->name, "integrateBodies") == 0 && f->nparams >= 4 &&
        strcmp(f->params[3].type, "u32") == 0 && params != NULL && params[3] != NULL) {
        uint32_t n;
        memcpy(&n, params[3], sizeof(n));
        ns = (double)n * (double)n / T4_INTERACTIONS_PER_S * 1e9 * scale;
    } else {
        ns = (double)threads * NS_PER_THREAD * scale;
    }
    return (uint64_t)(ns < MIN_KERNEL_NS ? MIN_KERNEL_NS : ns);
}

static float add_clamped(float a, double b)
{
    double v = a + b;
    return (float)(v > 1.0 ? 1.0 : v);
}

/* Records that [from, to) ran at share of the SMs, for the slots the ring holds. */
static void mark(struct gm_sim_timeline *t, uint64_t from, uint64_t to, double share)
{
    for (uint64_t k = from / GM_SIM_SLOT_NS; k * GM_SIM_SLOT_NS < to; k++) {
        if (k < t->first_slot)
            continue;
        if (k >= t->first_slot + GM_SIM_SLOTS)
            break;
        uint64_t a = k * GM_SIM_SLOT_NS > from ? k * GM_SIM_SLOT_NS : from;
        uint64_t b = (k + 1) * GM_SIM_SLOT_NS < to ? (k + 1) * GM_SIM_SLOT_NS : to;
        double frac = (double)(b - a) / (double)GM_SIM_SLOT_NS;
        t->used[k % GM_SIM_SLOTS] = add_clamped(t->used[k % GM_SIM_SLOTS], frac * share);
        t->busy[k % GM_SIM_SLOTS] = add_clamped(t->busy[k % GM_SIM_SLOTS], frac);
    }
}

/* MPS: from start, take at most share of each slot's free capacity until the work is done.
 * Past the ring's horizon nobody else has booked anything yet, so the rest runs at share. */
static uint64_t fill(struct gm_sim_timeline *t, uint64_t start, double work, double share)
{
    uint64_t cur = start;
    while (work > 0.5) {
        uint64_t k = cur / GM_SIM_SLOT_NS;
        if (k >= t->first_slot + GM_SIM_SLOTS)
            return cur + (uint64_t)(work / share);
        uint64_t slot_end = (k + 1) * GM_SIM_SLOT_NS;
        float *used = &t->used[k % GM_SIM_SLOTS];
        double avail = 1.0 - *used;
        if (avail > share)
            avail = share;
        if (avail < 1e-4) {
            cur = slot_end;
            continue;
        }
        double span = (double)(slot_end - cur);
        double dt = work / avail < span ? work / avail : span;
        *used = add_clamped(*used, avail * dt / (double)GM_SIM_SLOT_NS);
        t->busy[k % GM_SIM_SLOTS] =
            add_clamped(t->busy[k % GM_SIM_SLOTS], dt / (double)GM_SIM_SLOT_NS);
        work -= avail * dt;
        cur += (uint64_t)(dt + 0.5);
        if (dt >= span)
            cur = slot_end;
    }
    return cur;
}

int gm_sim_cuda_schedule(struct gm_sim_state *st, const struct gm_sim_cuda_job *job,
                         uint64_t *start_ns, uint64_t *end_ns)
{
    int rc = gm_sim_lock(st, NULL);
    if (rc < 0)
        return rc;
    struct gm_sim_timeline *t = &st->timelines[job->gpu];
    uint64_t now = gm_mono_ns();
    gm_sim_timeline_advance_locked(t, now);
    uint64_t start = now > job->not_before_ns ? now : job->not_before_ns, end;
    double work = (double)job->work_ns;
    struct gm_sim_timeline_proc *mine = NULL, *spare = NULL;
    int contended = 0;
    for (int i = 0; i < GM_SIM_MAX_PROCS; i++) {
        struct gm_sim_timeline_proc *p = &t->procs[i];
        if (p->pid == job->pid)
            mine = p;
        else if (p->end_ns > now)
            contended = 1;
        else if (spare == NULL)
            spare = p;
    }
    if (job->mps) {
        end = fill(t, start, work, job->share);
    } else {
        if (t->tail_ns > start)
            start = t->tail_ns;
        double dur = work;
        if (contended)
            dur += SWITCH_NS * (work > TIMESLICE_NS ? work / TIMESLICE_NS : 1.0);
        end = start + (uint64_t)dur;
        mark(t, start, end, 1.0);
    }
    if (mine == NULL && spare != NULL) {
        mine = spare;
        mine->pid = job->pid;
        mine->end_ns = 0;
    }
    if (mine != NULL && end > mine->end_ns)
        mine->end_ns = end;
    if (end > t->tail_ns)
        t->tail_ns = end;
    if (end > t->last_end_ns)
        t->last_end_ns = end;

    /* Per-process samples: this kernel's work over the time since the process's last one. */
    struct gm_sim_gpu *g = &st->gpus[job->gpu];
    for (uint32_t i = 0; i < g->nprocs && i < GM_SIM_MAX_PROCS; i++) {
        struct gm_sim_proc *p = &g->procs[i];
        if (p->pid != job->pid)
            continue;
        uint64_t from =
            job->prev_end_ns != 0 && job->prev_end_ns < start ? job->prev_end_ns : start;
        uint64_t interval = end > from ? end - from : 1;
        uint64_t busy = job->work_ns < interval ? job->work_ns : interval;
        p->busy_ns += busy;
        p->sm_util = (uint32_t)(busy * 100 / interval);
        p->busy_ts_us = gm_now_us();
        gm_sim_proc_record_busy(p, start, end, job->work_ns, now);
        break;
    }
    gm_sim_unlock(st);
    *start_ns = start;
    *end_ns = end;
    return 0;
}
