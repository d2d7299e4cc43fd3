/* A simple model of how a T4-class GPU's P-state, power and temperature follow its load.
 *
 * Idle (no context, no utilisation): P8 at 13.5% of the power limit (9.5 W on a 70 W T4).
 * Any context or utilisation: P0 at 38% of the limit plus 59% of it scaled by utilisation, so a
 * busy T4 draws 68 W of 70 W as in the seed's nvidia-smi output. The temperature heads for
 * 32 C + 14 C x (power / limit) (34 C idle, 45-46 C at full load, again as in the seed) with a
 * first-order lag of THERMAL_TAU_S seconds, so a watcher sees it climb and fall. */
#include "gpusim/state/state.h"

#include "common/clock.h"

#include <math.h>

#define IDLE_POWER_FRAC 0.135
#define P0_BASE_FRAC    0.38
#define P0_LOAD_FRAC    0.59
#define TEMP_AMBIENT_C  32.0
#define TEMP_RISE_C     14.0
#define THERMAL_TAU_S   20.0

void gm_sim_model_update_locked(struct gm_sim_gpu *g, struct gm_sim_reading *out)
{
    uint64_t used = 0;
    for (uint32_t i = 0; i < g->nprocs; i++)
        used += g->procs[i].used_memory;
    if (g->nprocs > 0)
        used += GM_SIM_DRIVER_RESERVE;
    out->memory_used = used > g->info.memory_total ? g->info.memory_total : used;

    int active = g->nprocs > 0 || g->util_gpu > 0;
    double limit = g->info.power_limit_mw;
    double frac = active ? P0_BASE_FRAC + P0_LOAD_FRAC * g->util_gpu / 100.0 : IDLE_POWER_FRAC;
    out->pstate = active ? 0 : 8;
    out->power_mw = (uint32_t)(limit * frac);

    double target = TEMP_AMBIENT_C + TEMP_RISE_C * frac;
    uint64_t now = gm_mono_ns();
    if (g->temp_pinned >= 0) {
        g->temp_c = g->temp_pinned;
    } else if (g->temp_ts_ns == 0) {
        g->temp_c = target;
    } else {
        double dt = (double)(now - g->temp_ts_ns) / 1e9;
        g->temp_c += (target - g->temp_c) * (1.0 - exp(-dt / THERMAL_TAU_S));
    }
    g->temp_ts_ns = now;
    out->temperature = (int)lround(g->temp_c);
}
