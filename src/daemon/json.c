#include "daemon/json.h"
#include "daemon/memcheck.h"
#include "daemon/plan.h"
#include "daemon/sched.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

json_t *gm_json_time(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[48], out[64];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof(out), "%s.%03dZ", buf, (int)(ms % 1000));
    return json_string(out);
}

static json_t *int_or_null(long long v)
{
    return v < 0 ? json_null() : json_integer(v);
}

json_t *gm_json_workload(const struct gm_daemon *d, const struct gm_workload_rec *w,
                         const struct gm_gpu_rec *gpus, size_t ngpus, int reveal)
{
    json_error_t jerr;
    json_t *spec = json_loads(w->spec_json ? w->spec_json : "{}", 0, &jerr);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(w->name));
    json_object_set_new(o, "deployment",
                        w->deployment[0] ? json_string(w->deployment) : json_null());
    json_object_set_new(o, "kind", json_string(w->kind));
    json_t *cmd = spec ? json_object_get(spec, "command") : NULL;
    json_t *env = spec ? json_object_get(spec, "env") : NULL;
    json_object_set_new(o, "command", cmd ? json_incref(cmd) : json_array());
    if (reveal || !json_is_object(env)) {
        json_object_set_new(o, "env", env ? json_incref(env) : json_object());
    } else {
        json_t *hidden = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v)
        {
            (void)v;
            json_object_set_new(hidden, k, json_string(GM_JSON_REDACTED));
        }
        json_object_set_new(o, "env", hidden);
    }
    json_t *ga = json_array();
    const char *mode = NULL;
    for (int i = 0; i < w->ngpus; i++) {
        json_t *g = json_object();
        int idx = -1;
        for (size_t k = 0; k < ngpus; k++) {
            if (strcmp(gpus[k].uuid, w->gpus[i]) == 0) {
                idx = gpus[k].idx;
                mode = gm_mode_name(gpus[k].mode);
            }
        }
        json_object_set_new(g, "index", int_or_null(idx));
        json_object_set_new(g, "uuid", json_string(w->gpus[i]));
        json_array_append_new(ga, g);
    }
    json_object_set_new(o, "gpus", ga);
    /* The mode its last launch ran under; before any launch, its GPU's. */
    struct gm_in_force f;
    int noted = gm_plan_in_force(w, &f) == 0;
    if (noted && f.mode[0] != '\0' && w->ngpus == 1)
        mode = f.mode;
    json_object_set_new(o, "gpu_mode", mode ? json_string(mode) : json_null());
    /* A running workload's limits that it does not run with yet: what it runs with, and which
     * of the recorded ones wait for its next start. */
    json_t *pending = json_array();
    if (noted && gm_workload_active(w)) {
        if (f.compute_pct != w->compute_pct)
            json_array_append_new(pending, json_string("compute_pct"));
        if (f.memory_limit != (long long)w->memory_limit)
            json_array_append_new(pending, json_string("memory_limit"));
        json_t *in = json_object();
        json_object_set_new(in, "compute_pct",
                            f.compute_pct ? json_integer(f.compute_pct) : json_null());
        json_object_set_new(in, "memory_limit",
                            f.memory_limit ? json_integer(f.memory_limit) : json_null());
        json_object_set_new(o, "in_force", in);
    } else {
        json_object_set_new(o, "in_force", json_null());
    }
    json_object_set_new(o, "pending", pending);
    json_object_set_new(o, "compute_pct",
                        w->compute_pct ? json_integer(w->compute_pct) : json_null());
    json_object_set_new(o, "memory_limit",
                        w->memory_limit ? json_integer((json_int_t)w->memory_limit) : json_null());
    /* What the driver says the workload's processes hold, against its limit (memcheck.c). */
    uint64_t used = 0;
    int over = 0, seen = gm_memcheck_seen(d, w, &used, &over);
    json_object_set_new(o, "memory_used", seen ? json_integer((json_int_t)used) : json_null());
    json_object_set_new(o, "over_memory_limit", json_boolean(seen && over));
    json_object_set_new(o, "restart", json_string(gm_restart_name(w->restart)));
    json_object_set_new(o, "restart_max",
                        w->restart_max > 0 ? json_integer(w->restart_max) : json_null());
    json_object_set_new(o, "auto_remove", json_boolean(w->auto_remove));
    enum gm_enforce enforce = GM_ENFORCE_BEST_EFFORT;
    gm_enforce_parse(json_string_value(spec ? json_object_get(spec, "enforce") : NULL), &enforce);
    json_object_set_new(o, "enforce", json_string(gm_enforce_name(enforce)));
    json_object_set_new(o, "desired", json_string(w->desired_running ? "running" : "stopped"));
    json_object_set_new(o, "state", json_string(gm_wstate_name(w->state)));
    /* Ended, and to be launched again once its restart back-off has passed. */
    json_object_set_new(o, "restarting",
                        json_boolean(w->state == GM_W_EXITED && w->desired_running));
    json_object_set_new(o, "pid", w->pid > 0 ? json_integer(w->pid) : json_null());
    json_object_set_new(o, "exit_code",
                        w->has_exit && w->exit_code >= 0 ? json_integer(w->exit_code)
                                                         : json_null());
    json_object_set_new(o, "exit_signal",
                        w->has_exit && w->exit_code < 0 ? json_integer(w->exit_signal)
                                                        : json_null());
    json_object_set_new(o, "reason", json_string(w->reason));
    json_object_set_new(o, "restart_count", json_integer(w->restart_count));
    json_object_set_new(o, "uid", json_integer(w->uid));
    json_object_set_new(o, "created_at", gm_json_time(w->created_at));
    json_object_set_new(o, "started_at", gm_json_time(w->started_at));
    json_object_set_new(o, "finished_at", gm_json_time(w->finished_at));
    char log[PATH_MAX];
    gm_workload_log_path(d, w->name, log, sizeof(log));
    json_object_set_new(o, "log_path", reveal ? json_string(log) : json_null());
    json_decref(spec);
    return o;
}

static const char *pstate_name(int p, char *buf, size_t len)
{
    snprintf(buf, len, "P%d", p);
    return buf;
}

json_t *gm_json_gpu(const struct gm_gpu_rec *g, const struct gm_gpu_live *live,
                    const struct gm_workload_rec *ws, size_t nws)
{
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer(g->idx));
    json_object_set_new(o, "uuid", json_string(g->uuid));
    json_object_set_new(o, "name", json_string(g->name));
    json_object_set_new(o, "pci_bus_id", json_string(g->pci_bus_id));
    json_object_set_new(o, "mode", json_string(gm_mode_name(g->mode)));
    json_object_set_new(o, "holder", g->holder[0] ? json_string(g->holder) : json_null());
    json_object_set_new(o, "present", json_boolean(g->present && live != NULL));
    json_object_set_new(o, "memory_total", json_integer((json_int_t)g->memory_total));
    json_object_set_new(o, "memory_used",
                        live ? json_integer((json_int_t)live->memory_used) : json_null());
    json_object_set_new(o, "memory_free",
                        live ? json_integer((json_int_t)live->memory_free) : json_null());
    json_object_set_new(o, "memory_reserved",
                        json_integer((json_int_t)gm_sched_reserved(ws, nws, g->uuid, NULL)));
    char buf[16];
    if (live != NULL) {
        json_object_set_new(o, "utilization_gpu", int_or_null(live->util_gpu));
        json_object_set_new(o, "utilization_memory", int_or_null(live->util_memory));
        json_object_set_new(o, "temperature_gpu", int_or_null(live->temperature));
        json_object_set_new(o, "power_draw_w",
                            live->power_draw_mw < 0 ? json_null()
                                                    : json_real(live->power_draw_mw / 1000.0));
        json_object_set_new(o, "power_limit_w",
                            live->power_limit_mw < 0 ? json_null()
                                                     : json_real(live->power_limit_mw / 1000.0));
        json_object_set_new(o, "pstate",
                            live->pstate < 0
                                ? json_null()
                                : json_string(pstate_name(live->pstate, buf, sizeof(buf))));
        json_object_set_new(o, "compute_mode",
                            json_string(gm_compute_mode_name(live->compute_mode)));
        json_object_set_new(o, "persistence_mode",
                            live->persistence < 0
                                ? json_null()
                                : json_string(live->persistence ? "Enabled" : "Disabled"));
        json_object_set_new(o, "display_active",
                            live->display_active < 0
                                ? json_null()
                                : json_string(live->display_active ? "On" : "Off"));
        json_object_set_new(o, "fan_speed", int_or_null(live->fan));
        json_object_set_new(o, "ecc_errors_uncorrected_volatile",
                            int_or_null(live->ecc_uncorrected_volatile));
        json_object_set_new(o, "mig_mode",
                            live->mig_mode < 0
                                ? json_null()
                                : json_string(live->mig_mode ? "Enabled" : "Disabled"));
        json_object_set_new(o, "serial", live->serial[0] ? json_string(live->serial) : json_null());
        json_object_set_new(o, "vbios_version",
                            live->vbios[0] ? json_string(live->vbios) : json_null());
        json_object_set_new(o, "minor_number", int_or_null(live->minor_number));
        json_object_set_new(o, "clocks_sm", int_or_null(live->clock_sm));
        json_object_set_new(o, "clocks_mem", int_or_null(live->clock_mem));
        json_object_set_new(o, "clocks_graphics", int_or_null(live->clock_graphics));
        json_object_set_new(o, "clocks_max_sm", int_or_null(live->clock_max_sm));
        json_object_set_new(o, "clocks_max_mem", int_or_null(live->clock_max_mem));
        json_object_set_new(o, "clocks_max_graphics", int_or_null(live->clock_max_graphics));
        json_object_set_new(o, "pcie_link_gen_current", int_or_null(live->pcie_gen));
        json_object_set_new(o, "pcie_link_width_current", int_or_null(live->pcie_width));
        json_object_set_new(o, "pcie_link_gen_max", int_or_null(live->pcie_gen_max));
        json_object_set_new(o, "pcie_link_width_max", int_or_null(live->pcie_width_max));
        json_object_set_new(o, "utilization_encoder", int_or_null(live->util_encoder));
        json_object_set_new(o, "utilization_decoder", int_or_null(live->util_decoder));
        json_object_set_new(o, "power_mgmt_limit_w",
                            live->power_mgmt_limit_mw < 0
                                ? json_null()
                                : json_real(live->power_mgmt_limit_mw / 1000.0));
        json_object_set_new(o, "memory_driver_reserved",
                            live->memory_driver_reserved < 0
                                ? json_null()
                                : json_integer((json_int_t)live->memory_driver_reserved));
        json_object_set_new(o, "ecc_mode",
                            live->ecc_mode < 0
                                ? json_null()
                                : json_string(live->ecc_mode ? "Enabled" : "Disabled"));
        json_object_set_new(o, "temperature_memory", int_or_null(live->temperature_memory));
        json_object_set_new(
            o, "power_draw_average_w",
            live->power_average_mw < 0 ? json_null() : json_real(live->power_average_mw / 1000.0));
        json_object_set_new(o, "clocks_event_reasons",
                            live->clocks_event_reasons < 0
                                ? json_null()
                                : json_integer((json_int_t)live->clocks_event_reasons));
        snprintf(buf, sizeof(buf), "%d.%d", live->cc_major, live->cc_minor);
        json_object_set_new(o, "compute_capability",
                            live->cc_major < 0 ? json_null() : json_string(buf));
    }
    json_t *procs = json_array();
    for (int i = 0; live != NULL && i < live->nprocs; i++) {
        const struct gm_gpu_proc *p = &live->procs[i];
        json_t *po = json_object();
        json_object_set_new(po, "pid", json_integer(p->pid));
        json_object_set_new(po, "type", json_string(p->type));
        json_object_set_new(po, "name", json_string(p->name));
        json_object_set_new(
            po, "used_memory",
            p->used_memory == UINT64_MAX ? json_null() : json_integer((json_int_t)p->used_memory));
        json_object_set_new(po, "sm_util", int_or_null(p->sm_util));
        json_object_set_new(po, "mem_util", int_or_null(p->mem_util));
        json_array_append_new(procs, po);
    }
    json_object_set_new(o, "processes", procs);
    json_t *names = json_array();
    for (size_t i = 0; i < nws; i++)
        for (int k = 0; k < ws[i].ngpus; k++)
            if (strcmp(ws[i].gpus[k], g->uuid) == 0)
                json_array_append_new(names, json_string(ws[i].name));
    json_object_set_new(o, "workloads", names);
    return o;
}

json_t *gm_json_event(const struct gm_event *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(e->id));
    json_object_set_new(o, "time", gm_json_time(e->time_ms));
    json_object_set_new(o, "level", json_string(gm_level_name(e->level)));
    json_object_set_new(o, "object", json_string(e->object));
    json_object_set_new(o, "message", json_string(e->message));
    return o;
}

json_t *gm_json_driver(const struct gm_driver_info *info)
{
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(gm_driver_kind_name(info->kind)));
    json_object_set_new(o, "driver_version", json_string(info->driver_version));
    json_object_set_new(o, "cuda_version", json_string(info->cuda_version));
    json_object_set_new(o, "nvml_version", json_string(info->nvml_version));
    json_object_set_new(o, "library", json_string(info->library));
    return o;
}
