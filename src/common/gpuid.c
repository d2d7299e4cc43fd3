/* One GPU named the way CUDA, nvidia-smi and gpumux's users name it (docs/cli.md, "GPU ids"). */
#include "common/gpuid.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* nvidia-smi's short bus id: the full one without its domain's leading zeros ("2C74:00:00.0"
 * for "00002C74:00:00.0"). */
static int short_bus_id(const char *full, const char *id)
{
    size_t lf = strlen(full), li = strlen(id);
    if (strchr(id, ':') == NULL || li >= lf)
        return 0;
    const char *tail = full + lf - li;
    if (strcasecmp(tail, id) != 0)
        return 0;
    for (const char *p = full; p < tail; p++)
        if (*p != '0')
            return 0;
    return 1;
}

/* The GPUs of the node, for a message: "0 (GPU-..., 00002C74:00:00.0), 1 (...)". */
static void list_gpus(const struct gm_gpu_id *gpus, size_t n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%d (%s, %s)", i ? ", " : "", gpus[i].idx,
                         gpus[i].uuid, gpus[i].pci_bus_id);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

int gm_gpu_id_find(const struct gm_gpu_id *gpus, size_t n, const char *id, size_t *out,
                   struct gm_error *err)
{
    /* Blanks around an id are no part of it ("0, 1" as people write lists). */
    char buf[128];
    while (isspace((unsigned char)*id))
        id++;
    snprintf(buf, sizeof(buf), "%s", id);
    for (size_t l = strlen(buf); l > 0 && isspace((unsigned char)buf[l - 1]); l--)
        buf[l - 1] = '\0';
    id = buf;
    int all_digits = id[0] != '\0';
    for (const char *p = id; *p; p++)
        all_digits &= isdigit((unsigned char)*p) != 0;
    size_t prefix_of = n, prefixes = 0;
    for (size_t i = 0; i < n; i++) {
        const struct gm_gpu_id *g = &gpus[i];
        if ((all_digits && atoi(id) == g->idx) || strcasecmp(id, g->uuid) == 0 ||
            strcasecmp(id, g->pci_bus_id) == 0 || short_bus_id(g->pci_bus_id, id)) {
            *out = i;
            return 0;
        }
        /* A UUID may be shortened to any prefix that names one GPU, as CUDA_VISIBLE_DEVICES
         * takes it ("GPU-910a"). */
        if (strncasecmp(id, "GPU-", 4) == 0 && strlen(id) > 4 &&
            strncasecmp(g->uuid, id, strlen(id)) == 0) {
            prefix_of = i;
            prefixes++;
        }
    }
    if (prefixes == 1) {
        *out = prefix_of;
        return 0;
    }
    char list[1024];
    list_gpus(gpus, n, list, sizeof(list));
    if (prefixes > 1)
        return gm_err(err, GM_ENOTFOUND,
                      "GPU %s: the UUID prefix names %zu GPUs; give more of it (GPUs: %s)", id,
                      prefixes, list);
    if (n == 0)
        return gm_err(err, GM_ENOTFOUND, "GPU %s: no such GPU (this node has no GPU)", id);
    return gm_err(err, GM_ENOTFOUND,
                  "GPU %s: no such GPU; give an index, a UUID or its prefix, or a PCI bus id "
                  "(GPUs: %s)",
                  id, list);
}
