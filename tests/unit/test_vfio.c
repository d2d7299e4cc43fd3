/* VM passthrough's decisions: the sysfs steps from a snapshot of a GPU's IOMMU group, the
 * refusals, the way back, and the VMM snippets. */
#include "daemon/vfio.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static struct gm_vfio_group t4(void)
{
    struct gm_vfio_group g = {.iommu = 1, .vfio_loaded = 1, .found = 1, .group = 20, .n = 2};
    g.f[0] = (struct gm_pci_func){"2c74:00:00.0", "nvidia", "", 0x10de, 0x1eb8, 0x030200};
    g.f[1] = (struct gm_pci_func){"2c74:00:00.1", "snd_hda_intel", "", 0x10de, 0x10fa, 0x040300};
    return g;
}

static void assert_step(const struct gm_vfio_plan *p, size_t i, enum gm_vfio_op op, size_t func,
                        const char *arg, const char *expect)
{
    cr_assert_lt(i, p->n, "step %zu of %zu", i, p->n);
    const struct gm_vfio_step *s = &p->s[i];
    cr_assert_eq(s->op, op, "step %zu: %s", i, gm_vfio_op_name(s->op));
    cr_assert_eq(s->func, func, "step %zu", i);
    cr_assert_str_eq(s->arg, arg, "step %zu", i);
    cr_assert_str_eq(s->expect, expect, "step %zu", i);
}

Test(vfio, the_bdf_as_sysfs_names_it)
{
    char b[32];
    cr_assert_eq(gm_vfio_bdf("00002C74:00:00.0", b, sizeof(b)), 0);
    cr_assert_str_eq(b, "2c74:00:00.0");
    cr_assert_eq(gm_vfio_bdf("00000000:3B:00.0", b, sizeof(b)), 0);
    cr_assert_str_eq(b, "0000:3b:00.0");
    cr_assert_eq(gm_vfio_bdf("nope", b, sizeof(b)), -GM_EINVAL);
    cr_assert_eq(gm_vfio_bdf("0000:00:40.0", b, sizeof(b)), -GM_EINVAL, "slot > 31");
}

Test(vfio, bind_moves_every_function_override_unbind_probe)
{
    struct gm_vfio_group g = t4();
    struct gm_vfio_plan p;
    struct gm_error err = {0};
    cr_assert_eq(gm_vfio_plan_bind(&g, "2c74:00:00.0", &p, &err), 0, "%s", err.msg);
    cr_assert_eq(p.n, 6);
    assert_step(&p, 0, GM_VFIO_OVERRIDE, 0, "vfio-pci", "nvidia");
    assert_step(&p, 1, GM_VFIO_UNBIND, 0, "nvidia", "");
    assert_step(&p, 2, GM_VFIO_PROBE, 0, "", "vfio-pci");
    assert_step(&p, 3, GM_VFIO_OVERRIDE, 1, "vfio-pci", "snd_hda_intel");
    assert_step(&p, 4, GM_VFIO_UNBIND, 1, "snd_hda_intel", "");
    assert_step(&p, 5, GM_VFIO_PROBE, 1, "", "vfio-pci");
    /* Already there (a re-bind after a reboot that did not happen): nothing to do. */
    strcpy(g.f[0].driver, "vfio-pci");
    strcpy(g.f[1].driver, "vfio-pci");
    cr_assert_eq(gm_vfio_plan_bind(&g, "2c74:00:00.0", &p, &err), 0, "%s", err.msg);
    cr_assert_eq(p.n, 0);
    cr_assert(gm_vfio_group_on_vfio(&g));
    /* A function with no driver and the override already set: just the probe. */
    g = t4();
    g.f[1].driver[0] = '\0';
    strcpy(g.f[1].override, "vfio-pci");
    cr_assert_eq(gm_vfio_plan_bind(&g, "2c74:00:00.0", &p, &err), 0, "%s", err.msg);
    cr_assert_eq(p.n, 4);
    assert_step(&p, 3, GM_VFIO_PROBE, 1, "", "vfio-pci");
}

Test(vfio, refusals_say_why_and_what_to_do)
{
    struct gm_vfio_plan p;
    struct gm_error err = {0};
    struct gm_vfio_group g = t4();
    g.iommu = 0;
    cr_assert_eq(gm_vfio_plan_bind(&g, "2c74:00:00.0", &p, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "the IOMMU is off") && strstr(err.msg, "intel_iommu=on"), "%s",
              err.msg);
    g = t4();
    g.vfio_loaded = 0;
    cr_assert_eq(gm_vfio_plan_bind(&g, "2c74:00:00.0", &p, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "modprobe vfio-pci"), "%s", err.msg);
    g = t4();
    g.found = 0;
    cr_assert_eq(gm_vfio_plan_bind(&g, "2c74:00:00.0", &p, &err), -GM_ENOTFOUND);
    g = t4();
    g.group = -1;
    cr_assert_eq(gm_vfio_plan_bind(&g, "2c74:00:00.0", &p, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "in no IOMMU group"), "%s", err.msg);
    /* A network card in the GPU's group: refused, naming it. */
    g = t4();
    g.f[g.n++] = (struct gm_pci_func){"0000:05:00.0", "e1000e", "", 0x8086, 0x10d3, 0x020000};
    cr_assert_eq(gm_vfio_plan_bind(&g, "2c74:00:00.0", &p, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "also holds 0000:05:00.0") && strstr(err.msg, "driver e1000e"), "%s",
              err.msg);
    cr_assert_eq(p.n, 0, "nothing planned when refused");
    /* A PCI bridge in the group is allowed and left alone. */
    g = t4();
    g.f[g.n++] = (struct gm_pci_func){"2c74:00:01.0", "pcieport", "", 0x10de, 0x1ad0, 0x060400};
    cr_assert_eq(gm_vfio_plan_bind(&g, "2c74:00:00.0", &p, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < p.n; i++)
        cr_assert_neq(p.s[i].func, 2, "the bridge is not touched");
}

Test(vfio, restore_puts_each_function_back_from_wherever_it_is)
{
    static const char bdfs[2][32] = {"2c74:00:00.0", "2c74:00:00.1"};
    static const char orig[2][64] = {"nvidia", "snd_hda_intel"};
    struct gm_vfio_plan p;
    struct gm_error err = {0};
    /* Fully on vfio-pci (detach). */
    struct gm_vfio_group g = t4();
    for (int i = 0; i < 2; i++) {
        strcpy(g.f[i].driver, "vfio-pci");
        strcpy(g.f[i].override, "vfio-pci");
    }
    cr_assert_eq(gm_vfio_plan_restore(&g, bdfs, orig, 2, &p, &err), 0, "%s", err.msg);
    cr_assert_eq(p.n, 6);
    assert_step(&p, 0, GM_VFIO_OVERRIDE, 0, "", "vfio-pci");
    assert_step(&p, 1, GM_VFIO_UNBIND, 0, "vfio-pci", "");
    assert_step(&p, 2, GM_VFIO_BIND, 0, "nvidia", "nvidia");
    assert_step(&p, 5, GM_VFIO_BIND, 1, "snd_hda_intel", "snd_hda_intel");
    /* Half done (the second function's unbind failed): the first comes back, the second only
     * loses its override. */
    g = t4();
    strcpy(g.f[0].driver, "vfio-pci");
    strcpy(g.f[0].override, "vfio-pci");
    strcpy(g.f[1].override, "vfio-pci");
    cr_assert_eq(gm_vfio_plan_restore(&g, bdfs, orig, 2, &p, &err), 0, "%s", err.msg);
    cr_assert_eq(p.n, 4);
    assert_step(&p, 3, GM_VFIO_OVERRIDE, 1, "", "snd_hda_intel");
    /* Unbound between two steps (a killed daemon): bound by name again. */
    g = t4();
    g.f[0].driver[0] = '\0';
    strcpy(g.f[0].override, "vfio-pci");
    cr_assert_eq(gm_vfio_plan_restore(&g, bdfs, orig, 2, &p, &err), 0, "%s", err.msg);
    cr_assert_eq(p.n, 2);
    assert_step(&p, 0, GM_VFIO_OVERRIDE, 0, "", "");
    assert_step(&p, 1, GM_VFIO_BIND, 0, "nvidia", "nvidia");
    /* As it was: nothing. */
    g = t4();
    cr_assert_eq(gm_vfio_plan_restore(&g, bdfs, orig, 2, &p, &err), 0, "%s", err.msg);
    cr_assert_eq(p.n, 0);
}

Test(vfio, qemu_and_libvirt_name_every_function)
{
    struct gm_vfio_group g = t4();
    char q[512], x[1024];
    gm_vfio_qemu_args(&g, q, sizeof(q));
    cr_assert_str_eq(q, "-device vfio-pci,host=2c74:00:00.0,multifunction=on\n"
                        "-device vfio-pci,host=2c74:00:00.1\n");
    gm_vfio_libvirt_xml(&g, x, sizeof(x));
    cr_assert(strstr(x, "<hostdev mode='subsystem' type='pci' managed='no'>\n  <source>\n"
                        "    <address domain='0x2c74' bus='0x00' slot='0x00' function='0x0'/>") !=
                  NULL,
              "%s", x);
    cr_assert(strstr(x, "function='0x1'/>") != NULL, "%s", x);
    /* One function alone: no multifunction. */
    g.n = 1;
    gm_vfio_qemu_args(&g, q, sizeof(q));
    cr_assert_str_eq(q, "-device vfio-pci,host=2c74:00:00.0\n");
}
