/* A GPU given to a VM: its IOMMU group's PCI functions moved from their host drivers to vfio-pci
 * through sysfs, and back. Decided purely (gm_vfio_plan_*: a snapshot of the group in, steps
 * out) and carried out by one executor (vfio.c) that checks each step took effect, rolls back
 * what it did when one fails, and keeps a journal in the state directory so that a daemon
 * killed between two steps repairs the group at its next start. */
#ifndef GM_DAEMON_VFIO_H
#define GM_DAEMON_VFIO_H

#include "common/error.h"

#include <stddef.h>

#define GM_VFIO_MAX_FUNCS 16
#define GM_VFIO_MAX_STEPS (GM_VFIO_MAX_FUNCS * 3)
#define GM_VFIO_DRIVER    "vfio-pci"

/* One PCI function of the group, as sysfs shows it. */
struct gm_pci_func {
    char bdf[32];      /* "2c74:00:00.0", as sysfs names it */
    char driver[64];   /* bound driver, "" for none */
    char override[64]; /* driver_override, "" for none ("(null)") */
    unsigned vendor, device, klass;
};

/* The GPU's IOMMU group, read from sysfs. */
struct gm_vfio_group {
    int iommu;       /* the IOMMU is on: SYSFS/kernel/iommu_groups has groups */
    int vfio_loaded; /* SYSFS/bus/pci/drivers/vfio-pci exists */
    int found;       /* the GPU's function is in SYSFS/bus/pci/devices */
    int group;       /* its IOMMU group, -1 for none */
    int dev_node;    /* DEV/vfio/GROUP exists */
    size_t n;
    struct gm_pci_func f[GM_VFIO_MAX_FUNCS];
};

enum gm_vfio_op {
    GM_VFIO_OVERRIDE, /* write arg to BDF/driver_override ("" clears it) */
    GM_VFIO_UNBIND,   /* write BDF to drivers/ARG/unbind */
    GM_VFIO_PROBE,    /* write BDF to drivers_probe */
    GM_VFIO_BIND,     /* write BDF to drivers/ARG/bind */
};

struct gm_vfio_step {
    enum gm_vfio_op op;
    size_t func;     /* index into the group's functions */
    char arg[64];    /* the driver (or the override) the step names */
    char expect[64]; /* the function's driver once the step took effect ("" none) */
};

struct gm_vfio_plan {
    size_t n;
    struct gm_vfio_step s[GM_VFIO_MAX_STEPS];
};

/* "00002C74:00:00.0" (nvidia-smi's form) -> "2c74:00:00.0" (sysfs's); -GM_EINVAL if not one. */
int gm_vfio_bdf(const char *pci_bus_id, char *buf, size_t len);

/* The steps that put every function of the GPU's group on vfio-pci: override, unbind from the
 * host driver, probe, for each function not on vfio-pci yet (none when all are: a re-bind is a
 * no-op). Refuses, with the reason and what to do, when the IOMMU is off, vfio-pci is not
 * loaded, the GPU is in no group, or the group holds a device that is not one of the GPU's
 * functions (PCI bridges excepted, which the kernel allows in a viable group). */
int gm_vfio_plan_bind(const struct gm_vfio_group *g, const char *gpu_bdf, struct gm_vfio_plan *p,
                      struct gm_error *err);

/* The steps that put each function back on the driver `original[i]` names for the function
 * whose bdf is `bdfs[i]` (of n), with no override: detach, the rollback of a bind that failed,
 * and the repair of one a killed daemon left half done all start from what sysfs shows. A
 * function already as it was is left alone; bridges are never touched. */
int gm_vfio_plan_restore(const struct gm_vfio_group *g, const char (*bdfs)[32],
                         const char (*original)[64], size_t n, struct gm_vfio_plan *p,
                         struct gm_error *err);

/* A PCI-to-PCI bridge: allowed in a viable group, never moved. */
int gm_vfio_is_bridge(const struct gm_pci_func *f);

/* Is every non-bridge function of the group on vfio-pci (the group is viable for a VM)? */
int gm_vfio_group_on_vfio(const struct gm_vfio_group *g);

/* "override", "unbind", "drivers_probe", "bind": the step's name in messages and the
 * simulated kernel's fail file. */
const char *gm_vfio_op_name(enum gm_vfio_op op);

/* QEMU's -device arguments and libvirt's <hostdev> elements for the group's functions (not its
 * bridges), one a line; multifunction=on on function 0 of a slot with several. */
void gm_vfio_qemu_args(const struct gm_vfio_group *g, char *buf, size_t len);
void gm_vfio_libvirt_xml(const struct gm_vfio_group *g, char *buf, size_t len);

/* ---- the executor (vfio.c) ------------------------------------------------------------------ */

struct gm_strv;

/* Reads the IOMMU group of the PCI function bdf from the sysfs at sys (SYSFS/bus/pci/devices/
 * BDF, its iommu_group, every device of the group) and whether DEV/vfio/GROUP exists. A bdf
 * sysfs does not have reads with found = 0; errors are only for what cannot be read. */
int gm_vfio_read(const char *sys, const char *dev, const char *bdf, struct gm_vfio_group *g,
                 struct gm_error *err);

/* Carries out the plan's steps in order, each checked: the function's driver (or override) is
 * what the step says within timeout_ms (a real kernel acts before the write returns; a
 * simulated one a moment later). Stops at the first step that fails or does not take effect:
 * *done is then the number of steps done, and the error names the step and the function. */
int gm_vfio_apply(const char *sys, const struct gm_vfio_group *g, const struct gm_vfio_plan *p,
                  long timeout_ms, size_t *done, struct gm_error *err);

/* The processes that hold DEV/vfio/GROUP open (a running VM), as "PID (COMM)". */
int gm_vfio_holders(const char *dev, int group, struct gm_strv *out);

/* What an attach is doing or did, kept in STATE_DIR/vfio/UUID.json until the GPU is back on
 * its drivers: the functions and their drivers before the attach, so that a detach, a rollback
 * or the next start after a kill gives them back. */
enum gm_vfio_phase { GM_VFIO_BINDING, GM_VFIO_ATTACHED, GM_VFIO_RELEASING };
struct gm_vfio_journal {
    char uuid[96];
    char vm[64];
    char gpu_bdf[32];
    enum gm_vfio_phase phase;
    int group;
    size_t n;
    char bdf[GM_VFIO_MAX_FUNCS][32];
    char driver[GM_VFIO_MAX_FUNCS][64];
};
int gm_vfio_journal_write(const char *state_dir, const struct gm_vfio_journal *j,
                          struct gm_error *err);
/* 0, -GM_ENOTFOUND when there is none, or another error for one that cannot be read. */
int gm_vfio_journal_read(const char *state_dir, const char *uuid, struct gm_vfio_journal *j,
                         struct gm_error *err);
void gm_vfio_journal_remove(const char *state_dir, const char *uuid);
/* The UUIDs of the journals there are. */
int gm_vfio_journal_list(const char *state_dir, struct gm_strv *uuids);
const char *gm_vfio_phase_name(enum gm_vfio_phase p);

#endif
