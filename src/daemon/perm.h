/* Who may do what through the API. Every route of the table (api.c) names the permission it
 * needs; one pure function decides from the caller's facts (uid, membership of the API group and
 * of the admin group, resolved once per request from SO_PEERCRED) and the workload's owner. */
#ifndef GM_DAEMON_PERM_H
#define GM_DAEMON_PERM_H

#include "common/error.h"

#include <sys/types.h>

enum gm_perm {
    GM_PERM_READ,   /* any local user: lists, GPUs, events; other users' secrets redacted */
    GM_PERM_MEMBER, /* root or a member of api_group: create a workload (it runs as the caller) */
    GM_PERM_OWNER,  /* root, or the workload's owner while in api_group: stop, start, delete,
                       set limits */
    GM_PERM_SECRET, /* root or the workload's owner: its log */
    GM_PERM_ADMIN,  /* root or a member of admin_group: GPU modes, MPS, VM claims */
};

/* The caller, as resolved for one request. */
struct gm_caller {
    uid_t uid;
    char name[64];    /* the user's name, or "uid N" when it has none */
    int api_member;   /* in api_group (primary or supplementary group) */
    int admin_member; /* in admin_group; 0 when no admin group is configured */
};

/* What the request acts on, for the decision and its message. */
struct gm_perm_target {
    const char *action; /* "stop", "change the sharing mode of" */
    const char *object; /* "workload a", "GPU 0", NULL: none */
    long owner_uid;     /* the workload's owner; -1: not a workload (or none found) */
    const char *owner_name;
};

/* The groups, by name, for the messages ("" admin_group: none configured). */
struct gm_perm_groups {
    const char *api_group, *admin_group;
};

/* May who do need on t? Pure: reads only its arguments. Returns 0, or -GM_EPERM with a message
 * that names the user, what was refused and who may do it ("permission denied: user bob (uid
 * 1001) may not stop workload a of user root (uid 0): only its owner or root may"). Root may do
 * everything. A target without an owner (a workload that does not exist) passes OWNER and
 * SECRET once the group rule holds, so that the handler answers 404. */
int gm_perm_decide(enum gm_perm need, const struct gm_caller *who, const struct gm_perm_target *t,
                   const struct gm_perm_groups *g, struct gm_error *err);

/* May who read the secrets (environment values, log) of a workload owned by owner_uid? */
int gm_perm_sees_secrets(const struct gm_caller *who, long owner_uid);

/* "read", "member", "owner", "secret", "admin": for docs/api.md. */
const char *gm_perm_name(enum gm_perm p);

/* Fills who from the peer's uid and primary gid: the user's name and whether the user is in
 * the groups (the group database, getgrouplist). Not pure: reads the user and group databases. */
void gm_caller_resolve(uid_t uid, gid_t gid, const struct gm_perm_groups *g, struct gm_caller *who);

/* The name of uid for messages: the user's name, or "uid N". */
void gm_user_name(uid_t uid, char *buf, size_t len);

#endif
