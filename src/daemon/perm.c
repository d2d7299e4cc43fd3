/* The API's permission rule (perm.h): one decision, from the caller's facts and the target. */
#include "daemon/perm.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

const char *gm_perm_name(enum gm_perm p)
{
    switch (p) {
    case GM_PERM_READ:
        return "read";
    case GM_PERM_MEMBER:
        return "member";
    case GM_PERM_OWNER:
        return "owner";
    case GM_PERM_SECRET:
        return "secret";
    case GM_PERM_ADMIN:
        return "admin";
    }
    return "?";
}

int gm_perm_sees_secrets(const struct gm_caller *who, long owner_uid)
{
    return who->uid == 0 || (owner_uid >= 0 && (long)who->uid == owner_uid);
}

/* "may not stop workload a of user root (uid 0)" */
static void refused(const struct gm_caller *who, const struct gm_perm_target *t, char *buf,
                    size_t len)
{
    int n = snprintf(buf, len, "permission denied: user %s (uid %u) may not %s%s%s", who->name,
                     (unsigned)who->uid, t->action ? t->action : "do this", t->object ? " " : "",
                     t->object ? t->object : "");
    if (n >= 0 && (size_t)n < len && t->owner_uid >= 0)
        snprintf(buf + n, len - (size_t)n, " of user %s (uid %ld)",
                 t->owner_name && t->owner_name[0] ? t->owner_name : "?", t->owner_uid);
}

int gm_perm_decide(enum gm_perm need, const struct gm_caller *who, const struct gm_perm_target *t,
                   const struct gm_perm_groups *g, struct gm_error *err)
{
    char what[512];
    if (need == GM_PERM_READ || who->uid == 0)
        return 0;
    switch (need) {
    case GM_PERM_READ:
        return 0;
    case GM_PERM_MEMBER:
    case GM_PERM_OWNER:
        if (!who->api_member)
            return gm_err(err, GM_EPERM,
                          "permission denied: user %s (uid %u) may only read; changes need root "
                          "or membership of group %s",
                          who->name, (unsigned)who->uid, g->api_group);
        if (need == GM_PERM_MEMBER || t->owner_uid < 0 || (long)who->uid == t->owner_uid)
            return 0;
        refused(who, t, what, sizeof(what));
        return gm_err(err, GM_EPERM, "%s: only its owner or root may", what);
    case GM_PERM_SECRET:
        if (t->owner_uid < 0 || (long)who->uid == t->owner_uid)
            return 0;
        refused(who, t, what, sizeof(what));
        return gm_err(err, GM_EPERM, "%s: only its owner or root may", what);
    case GM_PERM_ADMIN:
        if (who->admin_member && g->admin_group != NULL && g->admin_group[0] != '\0')
            return 0;
        refused(who, t, what, sizeof(what));
        if (g->admin_group != NULL && g->admin_group[0] != '\0')
            return gm_err(err, GM_EPERM,
                          "%s: GPU modes, MPS and VM claims need root or membership of group %s",
                          what, g->admin_group);
        return gm_err(err, GM_EPERM,
                      "%s: GPU modes, MPS and VM claims need root (no admin_group is configured)",
                      what);
    }
    return gm_err(err, GM_EPERM, "permission denied: unknown permission %d", (int)need);
}

void gm_user_name(uid_t uid, char *buf, size_t len)
{
    struct passwd pwbuf, *pw = NULL;
    char pbuf[4096];
    if (getpwuid_r(uid, &pwbuf, pbuf, sizeof(pbuf), &pw) == 0 && pw != NULL)
        snprintf(buf, len, "%s", pw->pw_name);
    else
        snprintf(buf, len, "uid %u", (unsigned)uid);
}

/* Is the user (uid, primary gid) in the group named name? */
static int in_group(uid_t uid, gid_t gid, const char *name)
{
    if (name == NULL || name[0] == '\0')
        return 0;
    struct group grbuf, *gr = NULL;
    char buf[16384];
    if (getgrnam_r(name, &grbuf, buf, sizeof(buf), &gr) != 0 || gr == NULL)
        return 0;
    gid_t want = gr->gr_gid;
    if (gid == want)
        return 1;
    struct passwd pwbuf, *pw = NULL;
    char pbuf[16384];
    if (getpwuid_r(uid, &pwbuf, pbuf, sizeof(pbuf), &pw) != 0 || pw == NULL)
        return 0;
    gid_t groups[256];
    int ng = 256;
    if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &ng) < 0)
        return 0;
    for (int i = 0; i < ng; i++)
        if (groups[i] == want)
            return 1;
    return 0;
}

void gm_caller_resolve(uid_t uid, gid_t gid, const struct gm_perm_groups *g, struct gm_caller *who)
{
    memset(who, 0, sizeof(*who));
    who->uid = uid;
    gm_user_name(uid, who->name, sizeof(who->name));
    who->api_member = uid == 0 || in_group(uid, gid, g->api_group);
    who->admin_member = uid == 0 || in_group(uid, gid, g->admin_group);
}
