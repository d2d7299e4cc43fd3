/* A record and the event that tells of its change, saved in one transaction: either both are
 * kept or neither. */
#include "daemon/store/store.h"

#include <stdio.h>

int gm_store_workload_save(struct gm_store *s, struct gm_workload_rec *w, int insert,
                           enum gm_level level, const char *event, struct gm_error *err)
{
    int rc = gm_store_begin(s, err);
    if (rc < 0)
        return rc;
    rc = insert ? gm_store_workload_insert(s, w, err) : gm_store_workload_update(s, w, err);
    if (rc < 0) {
        gm_store_rollback(s);
        return rc;
    }
    if (event != NULL && event[0]) {
        char object[96];
        snprintf(object, sizeof(object), "workload/%s", w->name);
        gm_store_event(s, level, object, "%s", event);
    }
    return gm_store_commit(s, err);
}

int gm_store_gpu_save(struct gm_store *s, const struct gm_gpu_rec *g, const char *object,
                      enum gm_level level, const char *event, struct gm_error *err)
{
    int rc = gm_store_begin(s, err);
    if (rc < 0)
        return rc;
    rc = gm_store_gpu_update(s, g, err);
    if (rc < 0) {
        gm_store_rollback(s);
        return rc;
    }
    if (event != NULL && event[0])
        gm_store_event(s, level, object, "%s", event);
    return gm_store_commit(s, err);
}
