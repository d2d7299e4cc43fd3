/* The pure half of VM passthrough (vfio.h): from a snapshot of a GPU's IOMMU group to the
 * sysfs steps that move its functions, and to the VMM's view of them. */
#include "daemon/vfio.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCI_CLASS_BRIDGE_PCI 0x0604

int gm_vfio_bdf(const char *id, char *buf, size_t len)
{
    unsigned dom, bus, dev, fn;
    char tail;
    if (id == NULL || sscanf(id, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) != 4 ||
        bus > 0xff || dev > 0x1f || fn > 7)
        return -GM_EINVAL;
    int n = snprintf(buf, len, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
    return n < 0 || (size_t)n >= len ? -GM_EINVAL : 0;
}

const char *gm_vfio_op_name(enum gm_vfio_op op)
{
    switch (op) {
    case GM_VFIO_OVERRIDE:
        return "driver_override";
    case GM_VFIO_UNBIND:
        return "unbind";
    case GM_VFIO_PROBE:
        return "drivers_probe";
    case GM_VFIO_BIND:
        return "bind";
    }
    return "?";
}

int gm_vfio_is_bridge(const struct gm_pci_func *f)
{
    return (f->klass >> 8) == PCI_CLASS_BRIDGE_PCI;
}

/* "2c74:00:00.3" and "2c74:00:00.0" are functions of one slot. */
static int same_slot(const char *a, const char *b)
{
    const char *da = strrchr(a, '.'), *db = strrchr(b, '.');
    return da != NULL && db != NULL && da - a == db - b && strncmp(a, b, (size_t)(da - a)) == 0;
}

static int add(struct gm_vfio_plan *p, enum gm_vfio_op op, size_t func, const char *arg,
               const char *expect, struct gm_error *err)
{
    if (p->n >= GM_VFIO_MAX_STEPS)
        return gm_err(err, GM_EINVAL, "too many steps for one IOMMU group");
    struct gm_vfio_step *s = &p->s[p->n++];
    s->op = op;
    s->func = func;
    snprintf(s->arg, sizeof(s->arg), "%s", arg);
    snprintf(s->expect, sizeof(s->expect), "%s", expect);
    return 0;
}

static long find(const struct gm_vfio_group *g, const char *bdf)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->f[i].bdf, bdf) == 0)
            return (long)i;
    return -1;
}

int gm_vfio_plan_bind(const struct gm_vfio_group *g, const char *gpu_bdf, struct gm_vfio_plan *p,
                      struct gm_error *err)
{
    memset(p, 0, sizeof(*p));
    if (!g->found)
        return gm_err(err, GM_ENOTFOUND, "PCI device %s is not in sysfs (bus/pci/devices)",
                      gpu_bdf);
    if (!g->iommu)
        return gm_err(err, GM_EINVAL,
                      "the IOMMU is off (no IOMMU groups in sysfs): a GPU cannot be passed "
                      "through; enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on "
                      "or amd_iommu=on");
    if (g->group < 0)
        return gm_err(err, GM_EINVAL, "PCI device %s is in no IOMMU group", gpu_bdf);
    if (!g->vfio_loaded)
        return gm_err(err, GM_EINVAL,
                      "the vfio-pci driver is not loaded (modprobe vfio-pci), so %s cannot be "
                      "given to a VM",
                      gpu_bdf);
    if (find(g, gpu_bdf) < 0)
        return gm_err(err, GM_EINVAL, "PCI device %s is not in its own IOMMU group %d", gpu_bdf,
                      g->group);
    for (size_t i = 0; i < g->n; i++) {
        const struct gm_pci_func *f = &g->f[i];
        if (same_slot(f->bdf, gpu_bdf) || gm_vfio_is_bridge(f))
            continue;
        return gm_err(err, GM_EINVAL,
                      "IOMMU group %d of GPU %s also holds %s (vendor 0x%04x, device 0x%04x, "
                      "class 0x%06x%s%s), which is not one of the GPU's functions: a VM gets a "
                      "whole group, so it would get that device too; move the GPU to a slot "
                      "with a group of its own",
                      g->group, gpu_bdf, f->bdf, f->vendor, f->device, f->klass,
                      f->driver[0] ? ", driver " : "", f->driver);
    }
    int rc = 0;
    for (size_t i = 0; i < g->n && rc == 0; i++) {
        const struct gm_pci_func *f = &g->f[i];
        if (gm_vfio_is_bridge(f) || strcmp(f->driver, GM_VFIO_DRIVER) == 0)
            continue;
        if (strcmp(f->override, GM_VFIO_DRIVER) != 0)
            rc = add(p, GM_VFIO_OVERRIDE, i, GM_VFIO_DRIVER, f->driver, err);
        if (rc == 0 && f->driver[0] != '\0')
            rc = add(p, GM_VFIO_UNBIND, i, f->driver, "", err);
        if (rc == 0)
            rc = add(p, GM_VFIO_PROBE, i, "", GM_VFIO_DRIVER, err);
    }
    return rc;
}

int gm_vfio_plan_restore(const struct gm_vfio_group *g, const char (*bdfs)[32],
                         const char (*original)[64], size_t n, struct gm_vfio_plan *p,
                         struct gm_error *err)
{
    memset(p, 0, sizeof(*p));
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        long i = find(g, bdfs[k]);
        if (i < 0)
            continue; /* gone: nothing to give back (said by the caller) */
        const struct gm_pci_func *f = &g->f[i];
        if (gm_vfio_is_bridge(f))
            continue;
        const char *want = original[k];
        if (f->override[0] != '\0')
            rc = add(p, GM_VFIO_OVERRIDE, (size_t)i, "", f->driver, err);
        if (rc == 0 && strcmp(f->driver, want) == 0)
            continue;
        if (rc == 0 && f->driver[0] != '\0')
            rc = add(p, GM_VFIO_UNBIND, (size_t)i, f->driver, "", err);
        /* A function that had a driver gets it by name; one that had none is probed, which
         * leaves it as the kernel would. */
        if (rc == 0 && want[0] != '\0')
            rc = add(p, GM_VFIO_BIND, (size_t)i, want, want, err);
    }
    return rc;
}

int gm_vfio_group_on_vfio(const struct gm_vfio_group *g)
{
    int any = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (gm_vfio_is_bridge(&g->f[i]))
            continue;
        if (strcmp(g->f[i].driver, GM_VFIO_DRIVER) != 0)
            return 0;
        any = 1;
    }
    return any;
}

/* domain, bus, slot and function of a sysfs BDF. */
static int split(const char *bdf, unsigned *dom, unsigned *bus, unsigned *dev, unsigned *fn)
{
    return sscanf(bdf, "%x:%x:%x.%x", dom, bus, dev, fn) == 4 ? 0 : -1;
}

static int slot_has_others(const struct gm_vfio_group *g, size_t i)
{
    for (size_t k = 0; k < g->n; k++)
        if (k != i && !gm_vfio_is_bridge(&g->f[k]) && same_slot(g->f[k].bdf, g->f[i].bdf))
            return 1;
    return 0;
}

void gm_vfio_qemu_args(const struct gm_vfio_group *g, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < g->n; i++) {
        unsigned dom, bus, dev, fn;
        if (gm_vfio_is_bridge(&g->f[i]) || split(g->f[i].bdf, &dom, &bus, &dev, &fn) < 0)
            continue;
        int n = snprintf(buf + used, len - used, "-device vfio-pci,host=%s%s\n", g->f[i].bdf,
                         fn == 0 && slot_has_others(g, i) ? ",multifunction=on" : "");
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

void gm_vfio_libvirt_xml(const struct gm_vfio_group *g, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < g->n; i++) {
        unsigned dom, bus, dev, fn;
        if (gm_vfio_is_bridge(&g->f[i]) || split(g->f[i].bdf, &dom, &bus, &dev, &fn) < 0)
            continue;
        int n = snprintf(buf + used, len - used,
                         "<hostdev mode='subsystem' type='pci' managed='no'>\n"
                         "  <source>\n"
                         "    <address domain='0x%04x' bus='0x%02x' slot='0x%02x' "
                         "function='0x%x'/>\n"
                         "  </source>\n"
                         "</hostdev>\n",
                         dom, bus, dev, fn);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}
