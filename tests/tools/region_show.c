/* gm-region-show PATH: prints a limits region's limits and schedule as the interposer reads them
 * (src/region), one "key value" a line, for the end-to-end tests. Exit 1 when PATH is not a
 * region. */
#include "region/region.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gm-region-show PATH\n");
        return 2;
    }
    struct gm_region *r;
    struct gm_error err = {0};
    if (gm_region_attach(argv[1], &r, &err) < 0) {
        fprintf(stderr, "gm-region-show: %s\n", err.msg);
        return 1;
    }
    struct gm_region_schedule s;
    unsigned long long gen = gm_region_read_schedule(r, &s);
    printf("workload %s\ngpu %s\nmemory_limit %llu\ncompute_pct %u\nby_mps %d\n", r->workload,
           r->gpu_uuid, (unsigned long long)__atomic_load_n(&r->memory_limit, __ATOMIC_RELAXED),
           s.compute_pct, (s.flags & GM_REGION_COMPUTE_BY_MPS) != 0);
    printf("period_ns %llu\nwindow_offset_ns %llu\nwindow_len_ns %llu\ngeneration %llu\n",
           (unsigned long long)s.period_ns, (unsigned long long)s.offset_ns,
           (unsigned long long)s.len_ns, gen);
    gm_region_detach(r);
    return 0;
}
