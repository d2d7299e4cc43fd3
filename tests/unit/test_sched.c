/* Admission and placement rules. */
#include "common/parse.h"
#include "daemon/sched.h"
#include "records.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static struct gm_workload_rec *add(const char *name, int gpu, uint64_t mem)
{
    struct gm_workload_rec *w = &ws[nws++];
    snprintf(w->name, sizeof(w->name), "%s", name);
    w->ngpus = 1;
    snprintf(w->gpus[0], sizeof(w->gpus[0]), "%s", gpus[gpu].uuid);
    w->memory_limit = mem;
    w->desired_running = 1;
    w->state = GM_W_RUNNING;
    return w;
}

static int admit(const char *gpu, uint64_t mem, int spread, struct gm_sched_result *res,
                 struct gm_error *err)
{
    struct gm_sched_req req = {.name = "new", .gpu = gpu, .memory = mem, .spread = spread};
    return gm_sched_admit(gpus, 2, ws, nws, &req, res, err);
}

TestSuite(sched, .init = setup);

Test(sched, resolves_index_uuid_and_bus_id)
{
    size_t i;
    struct gm_error err;
    cr_assert_eq(gm_gpu_resolve(gpus, 2, "1", &i, &err), 0);
    cr_assert_eq(i, 1);
    cr_assert_eq(gm_gpu_resolve(gpus, 2, gpus[0].uuid, &i, &err), 0);
    cr_assert_eq(i, 0);
    cr_assert_eq(gm_gpu_resolve(gpus, 2, "0000e00b:00:00.0", &i, &err), 0);
    cr_assert_eq(i, 1);
    cr_assert_eq(gm_gpu_resolve(gpus, 2, "7", &i, &err), -GM_ENOTFOUND);
    cr_assert(strstr(err.msg, "GPU 7: no such GPU") != NULL, "%s", err.msg);
    /* An unknown id lists the valid ones. */
    cr_assert(strstr(err.msg,
                     "0 (GPU-00000000-aaaa-bbbb-cccc-dddddddddddd, 00002C74:00:00.0), "
                     "1 (GPU-00000001-aaaa-bbbb-cccc-dddddddddddd, 0000E00B:00:00.0)") != NULL,
              "%s", err.msg);
}

/* As CUDA_VISIBLE_DEVICES and nvidia-smi -i take them. */
Test(sched, resolves_uuid_prefixes_short_bus_ids_and_blanks)
{
    size_t i = 9;
    struct gm_error err;
    cr_assert_eq(gm_gpu_resolve(gpus, 2, "GPU-00000001", &i, &err), 0, "%s", err.msg);
    cr_assert_eq(i, 1);
    cr_assert_eq(gm_gpu_resolve(gpus, 2, "gpu-00000000-a", &i, &err), 0, "%s", err.msg);
    cr_assert_eq(i, 0);
    cr_assert_eq(gm_gpu_resolve(gpus, 2, "GPU-0000000", &i, &err), -GM_ENOTFOUND);
    cr_assert(strstr(err.msg, "the UUID prefix names 2 GPUs; give more of it") != NULL, "%s",
              err.msg);
    cr_assert_eq(gm_gpu_resolve(gpus, 2, "GPU-", &i, &err), -GM_ENOTFOUND, "'GPU-' alone is no id");
    cr_assert_eq(gm_gpu_resolve(gpus, 2, "2C74:00:00.0", &i, &err), 0, "%s", err.msg);
    cr_assert_eq(i, 0);
    cr_assert_eq(gm_gpu_resolve(gpus, 2, "e00b:00:00.0", &i, &err), 0, "%s", err.msg);
    cr_assert_eq(i, 1);
    cr_assert_eq(gm_gpu_resolve(gpus, 2, "C74:00:00.0", &i, &err), -GM_ENOTFOUND,
                 "a cut into the domain's digits is no short bus id");
    cr_assert_eq(gm_gpu_resolve(gpus, 2, " 1 ", &i, &err), 0, "%s", err.msg);
    cr_assert_eq(i, 1);
    struct gm_sched_result res;
    cr_assert_eq(admit("0, 1", 0, 0, &res, &err), 0, "a list with blanks: %s", err.msg);
    cr_assert_eq(res.ngpus, 2);
    cr_assert_eq(admit("GPU-00000001, 0", 0, 0, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(res.ngpus, 2);
}

Test(sched, binpack_fills_the_fuller_gpu)
{
    add("a", 1, 4 * GM_GIB);
    struct gm_sched_result res;
    struct gm_error err;
    cr_assert_eq(admit(NULL, GM_GIB, 0, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(res.ngpus, 1);
    cr_assert_eq(res.gpu[0], 1);
}

Test(sched, spread_takes_the_emptier_gpu)
{
    add("a", 1, 4 * GM_GIB);
    struct gm_sched_result res;
    struct gm_error err;
    cr_assert_eq(admit(NULL, GM_GIB, 1, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(res.gpu[0], 0);
}

Test(sched, memory_limits_must_fit)
{
    add("a", 0, 10 * GM_GIB);
    struct gm_sched_result res;
    struct gm_error err;
    cr_assert_eq(admit("0", 5 * GM_GIB, 0, &res, &err), -GM_ENOSPACE);
    cr_assert(strstr(err.msg, "GPU 0") && strstr(err.msg, "left for limits"), "%s", err.msg);
    /* Exactly the rest fits. */
    cr_assert_eq(admit("0", T4_MEM - 10 * GM_GIB, 0, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(admit("0", 20 * GM_GIB, 0, &res, &err), -GM_ENOSPACE);
    cr_assert(strstr(err.msg, "larger than GPU 0's 15109MiB"), "%s", err.msg);
}

Test(sched, stopped_workloads_do_not_hold_memory)
{
    struct gm_workload_rec *w = add("a", 0, 14 * GM_GIB);
    w->desired_running = 0;
    w->state = GM_W_EXITED;
    struct gm_sched_result res;
    struct gm_error err;
    cr_assert_eq(admit("0", 14 * GM_GIB, 0, &res, &err), 0, "%s", err.msg);
}

Test(sched, vm_held_gpu_refuses_with_holder_name)
{
    gpus[0].mode = GM_MODE_VM;
    snprintf(gpus[0].holder, sizeof(gpus[0].holder), "vm1");
    struct gm_sched_result res;
    struct gm_error err;
    cr_assert_eq(admit("0", 0, 0, &res, &err), -GM_ECONFLICT);
    cr_assert(strstr(err.msg, "held by VM vm1") != NULL, "%s", err.msg);
    /* Placement goes around it. */
    cr_assert_eq(admit(NULL, 0, 0, &res, &err), 0);
    cr_assert_eq(res.gpu[0], 1);
    gpus[1].mode = GM_MODE_VM;
    snprintf(gpus[1].holder, sizeof(gpus[1].holder), "vm2");
    cr_assert_eq(admit(NULL, 0, 0, &res, &err), -GM_ENOSPACE);
    cr_assert(strstr(err.msg, "Insufficient nvidia.com/gpu") && strstr(err.msg, "vm1") &&
                  strstr(err.msg, "vm2"),
              "%s", err.msg);
}

Test(sched, mps_gpu_takes_at_most_48_clients)
{
    gpus[0].mode = GM_MODE_MPS;
    for (int i = 0; i < 48; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%d", i);
        add(name, 0, 0);
    }
    struct gm_sched_result res;
    struct gm_error err;
    cr_assert_eq(admit("0", 0, 0, &res, &err), -GM_ENOSPACE);
    cr_assert(strstr(err.msg, "48 MPS clients") != NULL, "%s", err.msg);
    ws[0].desired_running = 0;
    ws[0].state = GM_W_STOPPED;
    cr_assert_eq(admit("0", 0, 0, &res, &err), 0, "%s", err.msg);
}

Test(sched, multi_gpu_whole_only)
{
    struct gm_sched_result res;
    struct gm_error err;
    cr_assert_eq(admit("0,1", 0, 0, &res, &err), 0);
    cr_assert_eq(res.ngpus, 2);
    cr_assert_eq(admit("all", 0, 0, &res, &err), 0);
    cr_assert_eq(res.ngpus, 2);
    cr_assert_eq(admit("0,1", GM_GIB, 0, &res, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "exactly one GPU") != NULL, "%s", err.msg);
    cr_assert_eq(admit("0,0", 0, 0, &res, &err), -GM_EINVAL);
}

Test(sched, no_gpu_requests)
{
    struct gm_sched_result res;
    struct gm_error err;
    cr_assert_eq(admit("none", 0, 0, &res, &err), 0);
    cr_assert_eq(res.ngpus, 0);
    cr_assert_eq(admit("void", GM_GIB, 0, &res, &err), -GM_EINVAL);
}

Test(sched, own_record_is_not_counted)
{
    add("new", 0, 14 * GM_GIB);
    struct gm_sched_result res;
    struct gm_error err;
    cr_assert_eq(admit("0", 14 * GM_GIB, 0, &res, &err), 0, "%s", err.msg);
}
