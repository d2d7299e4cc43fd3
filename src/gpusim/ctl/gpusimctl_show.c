/* `gpusimctl show`: the whole simulated device as JSON, for tests and demos. */
#include "gpusim/ctl/gpusimctl.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

const char *gm_sim_proc_type(uint32_t flags)
{
    int c = (flags & (GM_SIM_PROC_COMPUTE | GM_SIM_PROC_MPS_SERVER)) != 0;
    int m = (flags & GM_SIM_PROC_MPS_CLIENT) != 0;
    int g = (flags & GM_SIM_PROC_GRAPHICS) != 0;
    if (m)
        return c ? "M+C" : "M";
    if (c)
        return g ? "C+G" : "C";
    return g ? "G" : "?";
}

static json_t *proc_json(const struct gm_sim_proc *p)
{
    return json_pack("{s:I, s:s, s:b, s:s, s:I, s:I, s:I, s:I, s:i}", "pid", (json_int_t)p->pid,
                     "type", gm_sim_proc_type(p->flags), "mps_server",
                     (p->flags & GM_SIM_PROC_MPS_SERVER) != 0, "name", p->name, "used_memory",
                     (json_int_t)p->used_memory, "start_time", (json_int_t)p->start_time, "busy_ns",
                     (json_int_t)p->busy_ns, "busy_ts_us", (json_int_t)p->busy_ts_us, "sm_util",
                     (int)p->sm_util);
}

static json_t *gpu_json(int index, const struct gm_sim_gpu *g, const struct gm_sim_reading *r)
{
    const struct gm_sim_gpu_info *i = &g->info;
    char cc[16];
    snprintf(cc, sizeof(cc), "%d.%d", i->cc_major, i->cc_minor);
    json_t *procs = json_array();
    for (uint32_t k = 0; k < g->nprocs; k++)
        json_array_append_new(procs, proc_json(&g->procs[k]));
    json_t *o = json_pack(
        "{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:i, s:i, s:b}", "index", index, "name",
        i->name, "uuid", i->uuid, "pci_bus_id", i->pci_bus_id, "serial", i->serial, "memory_total",
        (json_int_t)i->memory_total, "memory_used", (json_int_t)r->memory_used, "memory_free",
        (json_int_t)(i->memory_total - r->memory_used), "power_limit_w", i->power_limit_mw / 1000.0,
        "power_draw_w", r->power_mw / 1000.0, "temperature", r->temperature, "pstate", r->pstate,
        "temperature_pinned", g->temp_pinned >= 0);
    json_object_set_new(o, "utilization_gpu", json_integer(g->util_gpu));
    json_object_set_new(o, "utilization_memory", json_integer(g->util_memory));
    json_object_set_new(o, "compute_mode", json_integer(g->compute_mode));
    json_object_set_new(o, "persistence", json_boolean(g->persistence));
    json_object_set_new(o, "compute_capability", json_string(cc));
    json_object_set_new(o, "sms", json_integer(i->sms));
    json_object_set_new(o, "processes", procs);
    return o;
}

int gm_sim_show(struct gm_sim_state *st, const char *path, struct gm_error *err)
{
    struct gm_sim_gpu *g = malloc(sizeof(*g));
    if (g == NULL)
        return gm_err(err, GM_ENOMEM, "show: out of memory");
    json_t *gpus = json_array();
    int rc = 0;
    for (uint32_t i = 0; i < st->ngpus && rc == 0; i++) {
        struct gm_sim_reading r;
        rc = gm_sim_gpu_snapshot(st, (int)i, g, &r, err);
        if (rc == 0)
            json_array_append_new(gpus, gpu_json((int)i, g, &r));
    }
    free(g);
    if (rc < 0) {
        json_decref(gpus);
        return rc;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o}", "state", path, "config", st->config,
                          "driver_version", st->driver_version, "cuda_version", st->cuda_version,
                          "gpus", gpus);
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    fputc('\n', stdout);
    json_decref(o);
    return 0;
}
