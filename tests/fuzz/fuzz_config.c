/* The configuration files as an administrator (or a mistake) may write them. The first line
 * chooses what the rest is:
 *   "gpusim" : gpusim's device description, through gm_sim_config_load;
 *   "set"    : "key=value" lines, each through gm_config_set (the command line's path);
 *   anything else: the whole input is gpumuxd's YAML config, through gm_config_load.
 * The text is read from a memfd through /proc/self/fd, so a run writes no file.
 *
 * Contract checked: a refusal has a message; an accepted daemon config prints (--print-config)
 * as YAML that loads back to the same settings; an accepted gpusim config describes 0..8 GPUs
 * with their documented bounds, and unique UUIDs and PCI bus ids. */
#include "fuzz.h"

#include "daemon/config.h"
#include "gpusim/state/config.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int fd = -1;
static char path[64];

/* The text as the file that path names. */
static int put(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("gm-fuzz-config", MFD_CLOEXEC);
        if (fd < 0)
            return -1;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
        return -1;
    return 0;
}

static char *printed(const struct gm_config *c, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    FUZZ_CHECK(f != NULL, "open_memstream");
    gm_config_print(c, f);
    fclose(f);
    return text;
}

static void daemon_config(const uint8_t *data, size_t size)
{
    static struct gm_config c, back;
    struct gm_error err = {0};
    if (put(data, size) < 0)
        return;
    gm_config_defaults(&c);
    if (gm_config_load(&c, path, &err) < 0) {
        FUZZ_CHECK(err.msg[0] != '\0', "a refused config without a reason");
        return;
    }
    size_t len;
    char *text = printed(&c, &len);
    FUZZ_CHECK(put((const uint8_t *)text, len) == 0, "memfd");
    gm_config_defaults(&back);
    FUZZ_CHECK(gm_config_load(&back, path, &err) == 0,
               "the printed config does not load back: %s\n%s", err.msg, text);
    size_t len2;
    char *again = printed(&back, &len2);
    FUZZ_CHECK(len == len2 && memcmp(text, again, len) == 0,
               "the printed config loads back as another:\n%s\n----\n%s", text, again);
    free(again);
    free(text);
    struct gm_error ferr = {0};
    if (gm_config_finish(&c, "/nonexistent/bin", &ferr) < 0)
        FUZZ_CHECK(ferr.msg[0] != '\0', "a config refused by finish without a reason");
}

static void set_lines(const char *text)
{
    static struct gm_config c;
    gm_config_defaults(&c);
    char *copy = strdup(text);
    if (copy == NULL)
        return;
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(l, '=');
        if (eq == NULL)
            continue;
        *eq++ = '\0';
        struct gm_error err = {0};
        if (gm_config_set(&c, l, eq, "--fuzz", &err) < 0)
            FUZZ_CHECK(err.msg[0] != '\0', "key '%s' refused without a reason", l);
    }
    free(copy);
}

static void gpusim_config(const uint8_t *data, size_t size)
{
    static struct gm_sim_config cfg;
    struct gm_error err = {0};
    if (put(data, size) < 0)
        return;
    if (gm_sim_config_load(path, &cfg, &err) < 0) {
        FUZZ_CHECK(err.msg[0] != '\0', "a refused gpusim config without a reason");
        return;
    }
    FUZZ_CHECK(cfg.ngpus >= 0 && cfg.ngpus <= GM_SIM_MAX_GPUS, "%d GPUs", cfg.ngpus);
    FUZZ_CHECK(memchr(cfg.driver_version, '\0', sizeof(cfg.driver_version)) != NULL &&
                   memchr(cfg.cuda_version, '\0', sizeof(cfg.cuda_version)) != NULL,
               "unterminated version");
    for (int i = 0; i < cfg.ngpus; i++) {
        const struct gm_sim_gpu_info *g = &cfg.gpus[i];
        FUZZ_CHECK(g->memory_total >= 1048576ull && g->memory_total <= 1048576ull * 1048576ull,
                   "GPU %d: %llu bytes", i, (unsigned long long)g->memory_total);
        FUZZ_CHECK(g->sms >= 1 && g->sms <= 1024, "GPU %d: %u SMs", i, g->sms);
        FUZZ_CHECK(g->power_limit_mw >= 1000 && g->power_limit_mw <= 1000000, "GPU %d: %u mW", i,
                   g->power_limit_mw);
        FUZZ_CHECK(memchr(g->name, '\0', sizeof(g->name)) != NULL &&
                       memchr(g->uuid, '\0', sizeof(g->uuid)) != NULL &&
                       memchr(g->pci_bus_id, '\0', sizeof(g->pci_bus_id)) != NULL &&
                       memchr(g->serial, '\0', sizeof(g->serial)) != NULL,
                   "GPU %d: an unterminated string", i);
        for (int k = 0; k < i; k++) {
            FUZZ_CHECK(strcmp(cfg.gpus[k].uuid, g->uuid) != 0, "GPUs %d and %d: one UUID", k, i);
            FUZZ_CHECK(strcmp(cfg.gpus[k].pci_bus_id, g->pci_bus_id) != 0,
                       "GPUs %d and %d: one PCI bus id", k, i);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t line = nl != NULL ? (size_t)(nl - data) : 0;
    if (nl != NULL && line == 6 && memcmp(data, "gpusim", 6) == 0) {
        gpusim_config(nl + 1, size - line - 1);
    } else if (nl != NULL && line == 3 && memcmp(data, "set", 3) == 0) {
        char *text = malloc(size - line);
        if (text == NULL)
            return 0;
        memcpy(text, nl + 1, size - line - 1);
        text[size - line - 1] = '\0';
        set_lines(text);
        free(text);
    } else {
        daemon_config(data, size);
    }
    return 0;
}
