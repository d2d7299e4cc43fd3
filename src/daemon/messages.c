/* Text at the edge: the lines the API answers with for the outcomes the daemon's operations
 * return, worded as the appliance and NVIDIA's tools word them. */
#include "common/parse.h"
#include "daemon/daemon.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

void gm_msg_mps(const struct gm_mps_outcome *o, int starting, struct gm_strv *lines)
{
    if (starting) {
        if (o->already_ran)
            gm_strv_addf(lines, "MPS control daemon for GPU %d already runs (pid %d).", o->gpu_idx,
                         o->pid);
        if (o->exclusive_set)
            gm_strv_addf(lines, "Set compute mode to EXCLUSIVE_PROCESS for GPU %s.", o->pci_bus_id);
        if (o->started)
            gm_strv_addf(lines,
                         "Started the MPS control daemon for GPU %d (pid %d, pipe directory %s).",
                         o->gpu_idx, o->pid, o->pipe_dir);
        if (o->pct_set && o->pct_was >= 0)
            gm_strv_addf(lines, "Set the default active thread percentage from %g to %d.",
                         o->pct_was, o->pct_set);
        else if (o->pct_set)
            gm_strv_addf(lines, "Set the default active thread percentage to %d.", o->pct_set);
        if (o->mem_set)
            gm_strv_addf(lines, "Set the default pinned device memory limit to %" PRIu64 "MiB.",
                         o->mem_set / GM_MIB);
        if (o->defaults_to_running)
            gm_strv_addf(lines, "As with nvidia-cuda-mps-control, the new defaults apply to "
                                "clients started from now on; running clients keep theirs "
                                "(restart them to apply).");
        return;
    }
    if (o->killed)
        gm_strv_addf(lines, "The MPS control daemon of GPU %d did not quit; killed it.",
                     o->gpu_idx);
    if (o->stopped)
        gm_strv_addf(lines, "Stopped the MPS control daemon for GPU %d (pid %d).", o->gpu_idx,
                     o->pid);
    if (o->was_not_running)
        gm_strv_addf(lines, "No MPS control daemon ran for GPU %d.", o->gpu_idx);
    if (o->exclusive_reset)
        gm_strv_addf(lines, "Set compute mode to DEFAULT for GPU %s.", o->pci_bus_id);
}

void gm_msg_mode(const struct gm_mode_outcome *o, struct gm_strv *lines)
{
    if (o->mps_started)
        gm_msg_mps(&o->mps_start, 1, lines);
    if (o->mps_stopped)
        gm_msg_mps(&o->mps_stop, 0, lines);
    if (o->restarted.n > 0 || o->not_restarted.n > 0) {
        for (size_t i = 0; i < o->restarted.n; i++)
            gm_strv_addf(lines, "Restarted workload %s.", o->restarted.v[i]);
        for (size_t i = 0; i < o->not_restarted.n; i++)
            gm_strv_addf(lines, "workload %s could not start again: %s", o->not_restarted.v[i],
                         i < o->why_not.n ? o->why_not.v[i] : "");
    } else if (o->stopped.n > 0) {
        char *names = gm_strv_join(&o->stopped, " ");
        gm_strv_addf(lines, "Stopped workloads: %s.", names ? names : "");
        free(names);
    }
}

void gm_msg_limits(const char *name, const struct gm_workload_rec *w,
                   const struct gm_limits_outcome *o, struct gm_strv *lines)
{
    char mem[32] = "none", pct[32] = "none";
    if (w->memory_limit)
        gm_format_size(w->memory_limit, mem, sizeof(mem));
    if (w->compute_pct)
        snprintf(pct, sizeof(pct), "%d%%", w->compute_pct);
    if (o->live)
        gm_strv_addf(
            lines, "Limits of %s changed while it runs: compute %s, memory %s.%s", name, pct, mem,
            o->compute_next_run ? " MPS applies the compute share when the workload starts next."
                                : "");
    else
        gm_strv_addf(lines,
                     "Limits of %s recorded: compute %s, memory %s; they apply when it "
                     "starts%s.",
                     name, pct, mem,
                     o->not_interposed ? " next (it runs without the interposer)" : "");
}
