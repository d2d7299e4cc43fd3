/* Records and live GPU state as the API's JSON objects (docs/api.md). */
#ifndef GM_DAEMON_JSON_H
#define GM_DAEMON_JSON_H

#include "daemon/daemon.h"

#include <jansson.h>

json_t *gm_json_time(int64_t ms); /* RFC 3339 string, or null for 0 */
/* The environment's values are "<redacted>" and log_path is null unless reveal (the caller is root
 * or the workload's owner: gm_perm_sees_secrets). */
#define GM_JSON_REDACTED "<redacted>"
json_t *gm_json_workload(const struct gm_daemon *d, const struct gm_workload_rec *w,
                         const struct gm_gpu_rec *gpus, size_t ngpus, int reveal);
/* live may be NULL (GPU not present). */
json_t *gm_json_gpu(const struct gm_gpu_rec *g, const struct gm_gpu_live *live,
                    const struct gm_workload_rec *ws, size_t nws);
json_t *gm_json_event(const struct gm_event *e);
json_t *gm_json_driver(const struct gm_driver_info *info);

#endif
