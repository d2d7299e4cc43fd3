/* The API's permission rule (perm.h), as a table: who asks, what the route needs, whose
 * workload. Every row that allows an attack today would fail here. */
#include "daemon/perm.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define ROOT   0
#define MEMBER 1001 /* in api_group */
#define OTHER  1002 /* in no group of ours */
#define ADMIN  1003 /* in api_group and admin_group */

static struct gm_caller caller(uid_t uid)
{
    struct gm_caller c = {.uid = uid};
    snprintf(c.name, sizeof(c.name), "%s",
             uid == ROOT     ? "root"
             : uid == MEMBER ? "member"
             : uid == OTHER  ? "other"
                             : "admin");
    c.api_member = uid == ROOT || uid == MEMBER || uid == ADMIN;
    c.admin_member = uid == ROOT || uid == ADMIN;
    return c;
}

struct row {
    enum gm_perm need;
    uid_t who;
    long owner; /* -1: not a workload, or none */
    int admin_group_set;
    int allowed;
    const char *message; /* a part of the refusal */
};

static const struct row rows[] = {
    /* Reads are open to every local user. */
    {GM_PERM_READ, OTHER, -1, 0, 1, NULL},
    {GM_PERM_READ, OTHER, ROOT, 0, 1, NULL},
    /* Creating a workload: root and the API group. */
    {GM_PERM_MEMBER, ROOT, -1, 0, 1, NULL},
    {GM_PERM_MEMBER, MEMBER, -1, 0, 1, NULL},
    {GM_PERM_MEMBER, OTHER, -1, 0, 0,
     "permission denied: user other (uid 1002) may only read; changes need root or membership "
     "of group gpumux"},
    /* Changing a workload: its owner (in the API group) or root. */
    {GM_PERM_OWNER, MEMBER, MEMBER, 0, 1, NULL},
    {GM_PERM_OWNER, ROOT, MEMBER, 0, 1, NULL},
    {GM_PERM_OWNER, MEMBER, ROOT, 0, 0,
     "permission denied: user member (uid 1001) may not stop workload w of user root (uid 0): "
     "only its owner or root may"},
    {GM_PERM_OWNER, MEMBER, OTHER, 0, 0, "may not stop workload w of user owner (uid 1002)"},
    {GM_PERM_OWNER, ADMIN, MEMBER, 1, 0, "only its owner or root may"},
    {GM_PERM_OWNER, OTHER, ROOT, 0, 0, "may only read"},
    {GM_PERM_OWNER, OTHER, OTHER, 0, 0, "may only read"}, /* left the group since */
    {GM_PERM_OWNER, MEMBER, -1, 0, 1, NULL},              /* no such workload: the handler's 404 */
    /* Secrets (a log): the owner or root, group or not. */
    {GM_PERM_SECRET, MEMBER, MEMBER, 0, 1, NULL},
    {GM_PERM_SECRET, OTHER, OTHER, 0, 1, NULL},
    {GM_PERM_SECRET, ROOT, MEMBER, 0, 1, NULL},
    {GM_PERM_SECRET, MEMBER, ROOT, 0, 0, "may not stop workload w of user root (uid 0)"},
    {GM_PERM_SECRET, OTHER, MEMBER, 0, 0, "only its owner or root may"},
    {GM_PERM_SECRET, ADMIN, MEMBER, 1, 0, "only its owner or root may"},
    /* GPU modes, MPS, VM claims: root or admin_group. */
    {GM_PERM_ADMIN, ROOT, -1, 0, 1, NULL},
    {GM_PERM_ADMIN, MEMBER, -1, 0, 0, "need root (no admin_group is configured)"},
    {GM_PERM_ADMIN, MEMBER, -1, 1, 0, "need root or membership of group gpuadmin"},
    {GM_PERM_ADMIN, ADMIN, -1, 1, 1, NULL},
    {GM_PERM_ADMIN, ADMIN, -1, 0, 0, "no admin_group is configured"},
    {GM_PERM_ADMIN, OTHER, -1, 1, 0, "may not stop workload w"},
};

Test(perm, decision_table)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        struct gm_caller who = caller(r->who);
        struct gm_perm_groups g = {"gpumux", r->admin_group_set ? "gpuadmin" : ""};
        struct gm_perm_target t = {.action = "stop",
                                   .object = "workload w",
                                   .owner_uid = r->owner,
                                   .owner_name = r->owner == ROOT ? "root" : "owner"};
        struct gm_error err = {0};
        int rc = gm_perm_decide(r->need, &who, &t, &g, &err);
        cr_expect_eq(rc == 0, r->allowed, "row %zu (%s by %s on %ld): %s", i, gm_perm_name(r->need),
                     who.name, r->owner, rc == 0 ? "allowed" : err.msg);
        if (rc < 0) {
            cr_expect_eq(rc, -GM_EPERM, "row %zu", i);
            cr_expect(r->message != NULL && strstr(err.msg, r->message) != NULL,
                      "row %zu: message '%s' lacks '%s'", i, err.msg, r->message ? r->message : "");
        }
    }
}

Test(perm, secrets_only_for_owner_and_root)
{
    struct gm_caller root = caller(ROOT), member = caller(MEMBER), admin = caller(ADMIN);
    cr_expect(gm_perm_sees_secrets(&root, MEMBER));
    cr_expect(gm_perm_sees_secrets(&member, MEMBER));
    cr_expect(!gm_perm_sees_secrets(&member, ROOT));
    cr_expect(!gm_perm_sees_secrets(&admin, MEMBER));
    cr_expect(!gm_perm_sees_secrets(&member, -1));
}

/* The caller's facts come from the user and group databases: root is in every group, an unknown
 * uid in none (unless its primary group is the one asked for). */
Test(perm, resolve_caller)
{
    struct gm_perm_groups g = {"gpumux-no-such-group", ""};
    struct gm_caller who;
    gm_caller_resolve(0, 0, &g, &who);
    cr_expect(who.api_member && who.admin_member);
    cr_expect_str_eq(who.name, "root");
    gm_caller_resolve(4012345, 4012345, &g, &who);
    cr_expect(!who.api_member && !who.admin_member);
    cr_expect_str_eq(who.name, "uid 4012345");
}
