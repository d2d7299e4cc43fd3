#include "daemon/model.h"
#include "common/error.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char *const gm_mode_names[] = {"shared", "mps", "vm", NULL};
static const char *const wstate_names[] = {"starting", "running", "stopping", "exited", "stopped"};
const char *const gm_restart_names[] = {"never", "on-failure", "always", NULL};
const char *const gm_enforce_names[] = {"best-effort", "strict", NULL};

static int lookup(const char *const *names, int n, const char *s)
{
    for (int i = 0; s != NULL && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

const char *gm_mode_name(enum gm_mode m)
{
    return (unsigned)m < 3 ? gm_mode_names[m] : "?";
}

int gm_mode_parse(const char *s, enum gm_mode *out)
{
    int i = lookup(gm_mode_names, 3, s);
    if (i < 0)
        return -GM_EINVAL;
    *out = (enum gm_mode)i;
    return 0;
}

const char *gm_wstate_name(enum gm_wstate s)
{
    return (unsigned)s < 5 ? wstate_names[s] : "?";
}

int gm_wstate_parse(const char *s, enum gm_wstate *out)
{
    int i = lookup(wstate_names, 5, s);
    if (i < 0)
        return -GM_EINVAL;
    *out = (enum gm_wstate)i;
    return 0;
}

const char *gm_restart_name(enum gm_restart r)
{
    return (unsigned)r < 3 ? gm_restart_names[r] : "?";
}

int gm_restart_parse(const char *s, enum gm_restart *out)
{
    int i = lookup(gm_restart_names, 3, s);
    if (i < 0)
        return -GM_EINVAL;
    *out = (enum gm_restart)i;
    return 0;
}

const char *gm_enforce_name(enum gm_enforce e)
{
    return (unsigned)e < 2 ? gm_enforce_names[e] : "?";
}

int gm_enforce_parse(const char *s, enum gm_enforce *out)
{
    int i = lookup(gm_enforce_names, 2, s);
    if (i < 0)
        return -GM_EINVAL;
    *out = (enum gm_enforce)i;
    return 0;
}

static const char *const level_names[] = {"info", "warning", "error", NULL};

const char *gm_level_name(enum gm_level l)
{
    return (unsigned)l < 3 ? level_names[l] : "?";
}

int gm_level_parse(const char *s, enum gm_level *out)
{
    int i = lookup(level_names, 3, s);
    if (i < 0)
        return -GM_EINVAL;
    *out = (enum gm_level)i;
    return 0;
}

void gm_workload_where(const struct gm_workload_rec *w, char *buf, size_t len)
{
    snprintf(buf, len, "%s", w->ngpus ? "" : "no GPU");
    for (int i = 0; i < w->ngpus; i++) {
        size_t used = strlen(buf);
        if (used >= len)
            break;
        /* UUIDs read as GPUs already ("GPU-910a..."): no "GPU " before them. */
        snprintf(buf + used, len - used, "%s%s", i ? ", " : "", w->gpus[i]);
    }
}

int gm_workload_active(const struct gm_workload_rec *w)
{
    return w->desired_running || w->state == GM_W_STARTING || w->state == GM_W_RUNNING ||
           w->state == GM_W_STOPPING;
}

void gm_workload_rec_free(struct gm_workload_rec *w)
{
    if (w != NULL) {
        free(w->spec_json);
        w->spec_json = NULL;
    }
}

void gm_workload_list_free(struct gm_workload_rec *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        gm_workload_rec_free(&v[i]);
    free(v);
}
