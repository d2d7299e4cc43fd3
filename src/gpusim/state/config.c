#include "gpusim/state/config.h"

#include "common/parse.h"

#include <ctype.h>
#include <errno.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T4_MEMORY_MIB  15109
#define MAX_MEMORY_MIB (1024 * 1024)

/* Stable, distinct and realistic-looking values for GPU i: a UUID must look like the real ones
 * because users paste them into NVIDIA_VISIBLE_DEVICES. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void gm_sim_config_gpu_defaults(int index, struct gm_sim_gpu_info *g)
{
    /* The seed's appliance shows these two Hyper-V style PCI domains. */
    static const uint32_t domains[] = {0x2C74, 0xE00B};
    uint64_t a = mix((uint64_t)index + 1), b = mix(a);

    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "Tesla T4");
    snprintf(g->uuid, sizeof(g->uuid), "GPU-%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff, (unsigned)(b >> 48),
             (unsigned long long)(b & 0xffffffffffffull));
    g->pci_domain = index < 2 ? domains[index] : 0;
    g->pci_bus = index < 2 ? 0 : (uint32_t)(0x3b + index);
    g->pci_device = 0;
    snprintf(g->pci_bus_id, sizeof(g->pci_bus_id), "%08X:%02X:%02X.0", g->pci_domain, g->pci_bus,
             g->pci_device);
    snprintf(g->serial, sizeof(g->serial), "13210200%05d", 22261 + index);
    g->pci_device_id = 0x1EB810DE; /* TU104GL [Tesla T4], vendor NVIDIA */
    g->pci_subsystem_id = 0x12A210DE;
    g->memory_total = (uint64_t)T4_MEMORY_MIB * 1048576;
    g->power_limit_mw = 70000;
    g->sms = 40;
    g->cc_major = 7;
    g->cc_minor = 5;
}

void gm_sim_config_defaults(struct gm_sim_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->driver_version, sizeof(cfg->driver_version), "535.104.05");
    snprintf(cfg->cuda_version, sizeof(cfg->cuda_version), "12.2");
    cfg->cuda_version_int = 12020;
    cfg->ngpus = 2;
    for (int i = 0; i < cfg->ngpus; i++)
        gm_sim_config_gpu_defaults(i, &cfg->gpus[i]);
}

/* Value parsers: 0, or -1 with why filled. */
typedef int (*parse_fn)(void *obj, const char *v, char *why, size_t len);

static int parse_uint(const char *v, long lo, long hi, long *out, char *why, size_t len)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || *end != '\0' || errno != 0 || n < lo || n > hi) {
        snprintf(why, len, "'%s' is not an integer in %ld..%ld", v, lo, hi);
        return -1;
    }
    *out = n;
    return 0;
}

static int parse_text(char *dst, size_t dstlen, const char *v, char *why, size_t len)
{
    if (v[0] == '\0' || strlen(v) >= dstlen) {
        snprintf(why, len, "'%s' must be 1..%zu characters", v, dstlen - 1);
        return -1;
    }
    snprintf(dst, dstlen, "%s", v);
    return 0;
}

/* "12.2" or "7.5": major 1..99, minor 0..9. */
static int parse_version2(const char *v, int *major, int *minor, char *why, size_t len)
{
    char tail;
    if (sscanf(v, "%d.%d%c", major, minor, &tail) != 2 || *major < 1 || *major > 99 || *minor < 0 ||
        *minor > 9 || !isdigit((unsigned char)v[0])) {
        snprintf(why, len, "'%s' is not a version like \"7.5\"", v);
        return -1;
    }
    return 0;
}

static int top_driver_version(void *obj, const char *v, char *why, size_t len)
{
    struct gm_sim_config *c = obj;
    return parse_text(c->driver_version, sizeof(c->driver_version), v, why, len);
}

static int top_cuda_version(void *obj, const char *v, char *why, size_t len)
{
    struct gm_sim_config *c = obj;
    int major, minor;
    if (parse_version2(v, &major, &minor, why, len) < 0)
        return -1;
    snprintf(c->cuda_version, sizeof(c->cuda_version), "%d.%d", major, minor);
    c->cuda_version_int = major * 1000 + minor * 10;
    return 0;
}

static int gpu_name(void *obj, const char *v, char *why, size_t len)
{
    struct gm_sim_gpu_info *g = obj;
    return parse_text(g->name, sizeof(g->name), v, why, len);
}

static int gpu_memory(void *obj, const char *v, char *why, size_t len)
{
    struct gm_sim_gpu_info *g = obj;
    long n;
    if (parse_uint(v, 1, MAX_MEMORY_MIB, &n, why, len) < 0)
        return -1;
    g->memory_total = (uint64_t)n * 1048576;
    return 0;
}

static int gpu_power(void *obj, const char *v, char *why, size_t len)
{
    struct gm_sim_gpu_info *g = obj;
    long n;
    if (parse_uint(v, 1, 1000, &n, why, len) < 0)
        return -1;
    g->power_limit_mw = (uint32_t)n * 1000;
    return 0;
}

static int gpu_cc(void *obj, const char *v, char *why, size_t len)
{
    struct gm_sim_gpu_info *g = obj;
    return parse_version2(v, &g->cc_major, &g->cc_minor, why, len);
}

static int gpu_sms(void *obj, const char *v, char *why, size_t len)
{
    struct gm_sim_gpu_info *g = obj;
    long n;
    if (parse_uint(v, 1, 1024, &n, why, len) < 0)
        return -1;
    g->sms = (uint32_t)n;
    return 0;
}

static int gpu_uuid(void *obj, const char *v, char *why, size_t len)
{
    struct gm_sim_gpu_info *g = obj;
    static const char shape[] = "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    int ok = strlen(v) == sizeof(shape) - 1;
    for (size_t i = 0; ok && i < sizeof(shape) - 1; i++)
        ok = shape[i] == 'x' ? isxdigit((unsigned char)v[i]) : v[i] == shape[i];
    if (!ok) {
        snprintf(why, len, "'%s' is not a GPU UUID like %s", v, shape);
        return -1;
    }
    snprintf(g->uuid, sizeof(g->uuid), "%s", v);
    return 0;
}

static int gpu_pci(void *obj, const char *v, char *why, size_t len)
{
    struct gm_sim_gpu_info *g = obj;
    unsigned dom, bus, dev, fn;
    char tail;
    if (sscanf(v, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) != 4 || bus > 0xff || dev > 0x1f ||
        fn != 0 || strchr(v, '-') != NULL) {
        snprintf(why, len, "'%s' is not a PCI bus id like 00002C74:00:00.0", v);
        return -1;
    }
    g->pci_domain = dom;
    g->pci_bus = bus;
    g->pci_device = dev;
    snprintf(g->pci_bus_id, sizeof(g->pci_bus_id), "%08X:%02X:%02X.0", dom, bus, dev);
    return 0;
}

static int gpu_serial(void *obj, const char *v, char *why, size_t len)
{
    struct gm_sim_gpu_info *g = obj;
    return parse_text(g->serial, sizeof(g->serial), v, why, len);
}

struct key {
    const char *name;
    parse_fn parse;
};

static const struct key top_keys[] = {
    {"driver_version", top_driver_version},
    {"cuda_version", top_cuda_version},
    {"gpus", NULL}, /* a sequence, handled by load_gpus */
};

static const struct key gpu_keys[] = {
    {"name", gpu_name},      {"memory_mib", gpu_memory},     {"power_limit_w", gpu_power},
    {"sms", gpu_sms},        {"compute_capability", gpu_cc}, {"uuid", gpu_uuid},
    {"pci_bus_id", gpu_pci}, {"serial", gpu_serial},
};

static int line_of(struct fy_node *n)
{
    struct fy_token *t = n != NULL ? fy_node_get_scalar_token(n) : NULL;
    const struct fy_mark *m = t != NULL ? fy_token_start_mark(t) : NULL;
    return m != NULL ? m->line + 1 : 0;
}

static void key_list(const struct key *keys, size_t n, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", i ? ", " : "", keys[i].name);
    }
}

/* Apply every pair of mapping m through keys; "gpus" is handed back in *gpus when asked for. */
static int apply_mapping(const char *path, struct fy_node *m, const struct key *keys, size_t nkeys,
                         void *obj, const char *where, struct fy_node **gpus, int *gpus_line,
                         struct gm_error *err)
{
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(m, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p), *v = fy_node_pair_value(p);
        const char *name = k != NULL ? fy_node_get_scalar0(k) : NULL;
        int line = line_of(k);
        if (name == NULL)
            return gm_err(err, GM_EINVAL, "%s:%d: %s: keys must be plain words", path, line, where);
        const struct key *key = NULL;
        for (size_t i = 0; i < nkeys; i++)
            if (strcmp(keys[i].name, name) == 0)
                key = &keys[i];
        if (key == NULL) {
            char known[256];
            key_list(keys, nkeys, known, sizeof(known));
            return gm_err(err, GM_EINVAL, "%s:%d: %s: unknown key '%s' (known: %s)", path, line,
                          where, name, known);
        }
        if (key->parse == NULL) {
            *gpus = v;
            *gpus_line = line;
            continue;
        }
        const char *val = v != NULL && fy_node_is_scalar(v) ? fy_node_get_scalar0(v) : NULL;
        char why[256];
        if (val == NULL)
            return gm_err(err, GM_EINVAL, "%s:%d: %s: key '%s' needs a single value", path, line,
                          where, name);
        if (key->parse(obj, val, why, sizeof(why)) < 0)
            return gm_err(err, GM_EINVAL, "%s:%d: %s: key '%s': %s", path, line_of(v), where, name,
                          why);
    }
    return 0;
}

static int load_gpus(const char *path, struct fy_node *seq, int line, struct gm_sim_config *cfg,
                     struct gm_error *err)
{
    if (seq == NULL || !fy_node_is_sequence(seq))
        return gm_err(err, GM_EINVAL, "%s:%d: key 'gpus' must be a list of GPUs", path, line);
    int n = fy_node_sequence_item_count(seq);
    if (n > GM_SIM_MAX_GPUS)
        return gm_err(err, GM_EINVAL, "%s:%d: key 'gpus': %d GPUs, at most %d are simulated", path,
                      line, n, GM_SIM_MAX_GPUS);
    cfg->ngpus = n;
    for (int i = 0; i < n; i++) {
        struct fy_node *g = fy_node_sequence_get_by_index(seq, i);
        char where[32];
        snprintf(where, sizeof(where), "gpus[%d]", i);
        gm_sim_config_gpu_defaults(i, &cfg->gpus[i]);
        if (g == NULL || !fy_node_is_mapping(g))
            return gm_err(err, GM_EINVAL, "%s:%d: %s must be a mapping of GPU keys", path, line,
                          where);
        int rc = apply_mapping(path, g, gpu_keys, sizeof(gpu_keys) / sizeof(gpu_keys[0]),
                               &cfg->gpus[i], where, NULL, NULL, err);
        if (rc < 0)
            return rc;
        for (int j = 0; j < i; j++) {
            if (strcmp(cfg->gpus[j].uuid, cfg->gpus[i].uuid) == 0 ||
                strcmp(cfg->gpus[j].pci_bus_id, cfg->gpus[i].pci_bus_id) == 0)
                return gm_err(err, GM_EINVAL,
                              "%s:%d: %s: key 'uuid' or 'pci_bus_id' repeats gpus[%d]'s", path,
                              line, where, j);
        }
    }
    return 0;
}

static int parse_error(const char *path, struct fy_diag *diag, struct gm_error *err)
{
    void *it = NULL;
    struct fy_diag_error *e = diag != NULL ? fy_diag_errors_iterate(diag, &it) : NULL;
    if (e != NULL)
        return gm_err(err, GM_EINVAL, "%s:%d: malformed YAML: %s", path, e->line, e->msg);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return gm_err_errno(err, GM_EINVAL, errno, "gpusim config %s", path);
    fclose(f);
    return gm_err(err, GM_EINVAL, "%s: malformed YAML", path);
}

int gm_sim_config_load(const char *path, struct gm_sim_config *cfg, struct gm_error *err)
{
    gm_sim_config_defaults(cfg);
    if (gm_check_utf8_file(path, "", err) < 0)
        return -GM_EINVAL;
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.colorize = false;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (diag != NULL)
        fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG, .diag = diag};
    struct fy_document *doc = fy_document_build_from_file(&pcfg, path);
    int rc = 0;
    if (doc == NULL) {
        rc = parse_error(path, diag, err);
        goto out;
    }
    struct fy_node *root = fy_document_root(doc);
    if (root == NULL)
        goto out; /* an empty file: the defaults */
    if (!fy_node_is_mapping(root)) {
        rc = gm_err(err, GM_EINVAL, "%s:1: the config must be a mapping of keys", path);
        goto out;
    }
    struct fy_node *gpus = NULL;
    int gpus_line = 0;
    rc = apply_mapping(path, root, top_keys, sizeof(top_keys) / sizeof(top_keys[0]), cfg, "config",
                       &gpus, &gpus_line, err);
    if (rc == 0 && gpus_line > 0)
        rc = load_gpus(path, gpus, gpus_line, cfg, err);
out:
    if (doc != NULL)
        fy_document_destroy(doc);
    if (diag != NULL)
        fy_diag_unref(diag);
    return rc;
}
