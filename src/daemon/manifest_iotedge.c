/* IoT Edge deployment manifests: the JSON that `az iot edge set-modules` takes, read with
 * jansson. The modules to run are $edgeAgent's: modulesContent -> $edgeAgent ->
 * "properties.desired" (one key, with a dot) -> modules -> NAME. Each module's
 * settings.createOptions is itself JSON, in a string (split over createOptions01,
 * createOptions02, ... when it is long), in the form of Docker's container create request:
 * Entrypoint, Cmd, Env, WorkingDir and the HostConfig options that reach the host are read,
 * the rest noted as not enforced. The runtime, the system modules (edgeAgent, edgeHub) and the
 * other modules' twins ($edgeHub, ...) are accepted and not run. jansson gives no positions
 * for values, so refusals name the module and the field. */
#include "daemon/manifest_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static int in(const char *s, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

static const char *jtype(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* The value of key, NULL when absent or null. */
static json_t *jget(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

static int jexpect_object(struct gm_mf_parse *p, const json_t *j, const char *path)
{
    if (json_is_object(j))
        return 0;
    return gm_mf_fail(p, 0, 0, path, "expected an object, not %s", jtype(j));
}

static int jstr(struct gm_mf_parse *p, const json_t *j, const char *path, char **out)
{
    if (!json_is_string(j))
        return gm_mf_fail(p, 0, 0, path, "expected a string, not %s", jtype(j));
    if (strlen(json_string_value(j)) != json_string_length(j))
        return gm_mf_fail(p, 0, 0, path, "a string with a NUL character in it");
    return gm_mf_strdup(p, json_string_value(j), out);
}

/* Checks that every key of o is handled or ignored (noted), as in gm_mf_ymap. */
static int jkeys(struct gm_mf_parse *p, const json_t *o, const char *path, const char *what,
                 const char *const *handled, const char *const *ignored)
{
    int rc = jexpect_object(p, o, path);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        if (rc < 0)
            break;
        char kp[GM_MF_PATH];
        gm_mf_path_key(kp, sizeof(kp), path, key);
        if (handled != NULL && in(key, handled))
            continue;
        if (ignored != NULL && in(key, ignored))
            rc = gm_mf_note(p, kp);
        else
            rc = gm_mf_fail(p, 0, 0, kp, "unknown field (%s has no field \"%s\")", what, key);
    }
    return rc;
}

/* Docker's string-or-array (Entrypoint, Cmd): a string is the one element. */
static int jargv(struct gm_mf_parse *p, const json_t *j, const char *path, char ***out)
{
    struct gm_strv v = {0};
    int rc = 0;
    if (json_is_string(j)) {
        char *s = NULL;
        rc = jstr(p, j, path, &s);
        if (rc == 0 && gm_strv_add_owned(&v, s) < 0)
            rc = gm_mf_nomem(p);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e)
        {
            char ep[GM_MF_PATH];
            gm_mf_path_index(ep, sizeof(ep), path, i);
            char *s = NULL;
            if ((rc = jstr(p, e, ep, &s)) < 0)
                break;
            if (gm_strv_add_owned(&v, s) < 0) {
                rc = gm_mf_nomem(p);
                break;
            }
        }
    } else {
        rc =
            gm_mf_fail(p, 0, 0, path, "expected a string or an array of strings, not %s", jtype(j));
    }
    if (rc == 0 && gm_strv_array(&v) == NULL)
        rc = gm_mf_nomem(p);
    if (rc < 0) {
        gm_strv_free(&v);
        return rc;
    }
    *out = v.v;
    return 0;
}

/* An array whose entries are counted (Binds, CapAdd, Devices). */
static int jcount(struct gm_mf_parse *p, const json_t *j, const char *path, int *n)
{
    if (!json_is_array(j))
        return gm_mf_fail(p, 0, 0, path, "expected an array, not %s", jtype(j));
    *n += (int)json_array_size(j);
    return 0;
}

static int host_config(struct gm_mf_parse *p, const json_t *hc, const char *path,
                       struct gm_mf_container *c)
{
    struct gm_mf_object *o = p->o;
    int rc = jexpect_object(p, hc, path);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)hc, key, v)
    {
        if (rc < 0)
            break;
        char kp[GM_MF_PATH];
        gm_mf_path_key(kp, sizeof(kp), path, key);
        if (json_is_null(v))
            continue;
        if (strcmp(key, "IpcMode") == 0 || strcmp(key, "PidMode") == 0) {
            if (!json_is_string(v)) {
                rc = gm_mf_fail(p, 0, 0, kp, "expected a string, not %s", jtype(v));
            } else if (strcmp(json_string_value(v), "host") == 0) {
                *(key[0] == 'I' ? &o->host_ipc : &o->host_pid) = 1;
            } else {
                /* private, shareable, container:NAME: namespaces gpumux does not make. */
                rc = gm_mf_note(p, kp);
            }
        } else if (strcmp(key, "Privileged") == 0) {
            if (!json_is_boolean(v))
                rc = gm_mf_fail(p, 0, 0, kp, "expected true or false, not %s", jtype(v));
            else
                c->privileged = json_is_true(v);
        } else if (strcmp(key, "Binds") == 0) {
            rc = jcount(p, v, kp, &c->host_binds);
        } else if (strcmp(key, "CapAdd") == 0) {
            rc = jcount(p, v, kp, &c->cap_add);
        } else if (strcmp(key, "Devices") == 0) {
            rc = jcount(p, v, kp, &c->devices);
        } else if (strcmp(key, "Mounts") == 0) {
            if (!json_is_array(v)) {
                rc = gm_mf_fail(p, 0, 0, kp, "expected an array, not %s", jtype(v));
                break;
            }
            size_t i;
            json_t *m;
            json_array_foreach(v, i, m)
            {
                char mp[GM_MF_PATH];
                gm_mf_path_index(mp, sizeof(mp), kp, i);
                json_t *type = json_is_object(m) ? json_object_get(m, "Type") : NULL;
                if (!json_is_object(m))
                    rc = gm_mf_fail(p, 0, 0, mp, "expected an object, not %s", jtype(m));
                else if (json_is_string(type) && strcmp(json_string_value(type), "bind") == 0)
                    c->host_binds++;
                else
                    rc = gm_mf_note(p, mp);
                if (rc < 0)
                    break;
            }
        } else {
            rc = gm_mf_note(p, kp);
        }
    }
    return rc;
}

/* The Docker create request in createOptions. */
static int create_options(struct gm_mf_parse *p, const char *text, const char *path,
                          struct gm_mf_container *c)
{
    json_error_t jerr;
    json_t *co = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (co == NULL)
        return gm_mf_fail(p, 0, 0, path, "not JSON: %s (line %d, column %d of the string)",
                          jerr.text, jerr.line, jerr.column);
    int rc = jexpect_object(p, co, path);
    const char *key;
    json_t *v;
    json_object_foreach(co, key, v)
    {
        if (rc < 0)
            break;
        char kp[GM_MF_PATH];
        gm_mf_path_key(kp, sizeof(kp), path, key);
        if (json_is_null(v))
            continue;
        if (strcmp(key, "Entrypoint") == 0)
            rc = jargv(p, v, kp, &c->command);
        else if (strcmp(key, "Cmd") == 0)
            rc = jargv(p, v, kp, &c->args);
        else if (strcmp(key, "WorkingDir") == 0)
            rc = jstr(p, v, kp, &c->workdir);
        else if (strcmp(key, "HostConfig") == 0)
            rc = host_config(p, v, kp, c);
        else if (strcmp(key, "Env") == 0) {
            if (!json_is_array(v)) {
                rc =
                    gm_mf_fail(p, 0, 0, kp, "expected an array of \"KEY=VALUE\", not %s", jtype(v));
                break;
            }
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                char ep[GM_MF_PATH];
                gm_mf_path_index(ep, sizeof(ep), kp, i);
                char *s = NULL;
                if ((rc = jstr(p, e, ep, &s)) < 0)
                    break;
                char *eq = strchr(s, '=');
                if (eq == NULL || eq == s) {
                    rc = gm_mf_fail(p, 0, 0, ep, "'%s' is not KEY=VALUE", s);
                    free(s);
                    break;
                }
                *eq = '\0';
                /* The module's env was set first and keeps its values, as IoT Edge gives the
                 * module's env precedence over createOptions' Env. */
                rc = gm_mf_env_set(p, c, s, eq + 1, 0);
                free(s);
                if (rc < 0)
                    break;
            }
        } else {
            rc = gm_mf_note(p, kp);
        }
    }
    json_decref(co);
    return rc;
}

/* settings.createOptions, with createOptions01, createOptions02, ... after it: IoT Edge splits
 * a long one over these, to be joined in order. */
static int settings(struct gm_mf_parse *p, const json_t *s, struct gm_mf_container *c)
{
    int rc = jexpect_object(p, s, "settings");
    if (rc < 0)
        return rc;
    int last = -1;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)s, key, v)
    {
        char kp[GM_MF_PATH];
        gm_mf_path_key(kp, sizeof(kp), "settings", key);
        if (strcmp(key, "image") == 0 || strcmp(key, "createOptions") == 0)
            continue;
        if (strncmp(key, "createOptions", 13) == 0 && strlen(key) == 15 && key[13] >= '0' &&
            key[13] <= '9' && key[14] >= '0' && key[14] <= '9' && strcmp(key + 13, "00") != 0) {
            int k = (key[13] - '0') * 10 + (key[14] - '0');
            if (k > last)
                last = k;
            continue;
        }
        return gm_mf_fail(p, 0, 0, kp,
                          "unknown field (a module's settings have image and createOptions)");
    }
    json_t *image = jget(s, "image");
    if (image == NULL)
        return gm_mf_fail(p, 0, 0, "settings.image", "required");
    if ((rc = jstr(p, image, "settings.image", &c->image)) < 0)
        return rc;
    if (c->image[0] == '\0')
        return gm_mf_fail(p, 0, 0, "settings.image", "empty");
    json_t *co = jget(s, "createOptions");
    if (co == NULL && last > 0)
        return gm_mf_fail(p, 0, 0, "settings.createOptions",
                          "required before createOptions01 and the parts after it");
    if (co == NULL)
        return 0;
    if (json_is_object(co))
        return gm_mf_fail(p, 0, 0, "settings.createOptions",
                          "expected a string holding JSON, not an object: write it as a string "
                          "(\"{\\\"HostConfig\\\": ...}\")");
    struct gm_strv parts = {0};
    char *text = NULL;
    if ((rc = jstr(p, co, "settings.createOptions", &text)) < 0)
        return rc;
    if (gm_strv_add_owned(&parts, text) < 0)
        return gm_mf_nomem(p);
    for (int k = 1; rc == 0 && k <= last; k++) {
        char name[32], kp[GM_MF_PATH];
        snprintf(name, sizeof(name), "createOptions%02d", k);
        gm_mf_path_key(kp, sizeof(kp), "settings", name);
        json_t *part = jget(s, name);
        text = NULL;
        if (part == NULL)
            rc =
                gm_mf_fail(p, 0, 0, kp, "missing, while settings.createOptions%02d is given", last);
        else if ((rc = jstr(p, part, kp, &text)) == 0 && gm_strv_add_owned(&parts, text) < 0)
            rc = gm_mf_nomem(p);
    }
    char *all = rc == 0 ? gm_strv_join(&parts, "") : NULL;
    if (rc == 0 && all == NULL)
        rc = gm_mf_nomem(p);
    gm_strv_free(&parts);
    if (rc == 0)
        rc = create_options(p, all, "settings.createOptions", c);
    free(all);
    return rc;
}

static int module_env(struct gm_mf_parse *p, const json_t *env, struct gm_mf_container *c)
{
    int rc = jexpect_object(p, env, "env");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)env, key, v)
    {
        if (rc < 0)
            break;
        char kp[GM_MF_PATH];
        gm_mf_path_key(kp, sizeof(kp), "env", key);
        if (!gm_mf_env_name_ok(key))
            return gm_mf_fail(p, 0, 0, kp, "'%s' is not a variable name (empty, or with '=')", key);
        if ((rc = jkeys(p, v, kp, "an environment variable", L("value"), NULL)) < 0)
            return rc;
        json_t *val = json_object_get(v, "value");
        char vp[GM_MF_PATH], num[64];
        gm_mf_path_key(vp, sizeof(vp), kp, "value");
        const char *s = NULL;
        if (json_is_string(val) && strlen(json_string_value(val)) == json_string_length(val))
            s = json_string_value(val);
        else if (json_is_integer(val)) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(val));
            s = num;
        } else if (json_is_boolean(val))
            s = json_is_true(val) ? "true" : "false";
        if (s == NULL)
            return gm_mf_fail(p, 0, 0, vp, "expected a string, not %s",
                              val != NULL ? jtype(val) : "nothing");
        rc = gm_mf_env_set(p, c, key, s, 1);
    }
    return rc;
}

static int module(struct gm_mf_parse *p, const char *name, const json_t *m)
{
    int rc = gm_mf_object_add(p, GM_MF_MODULE, 0, 0, 0);
    if (rc < 0)
        return rc;
    struct gm_mf_object *o = p->o;
    char np[GM_MF_PATH];
    snprintf(np, sizeof(np), "modules.%s", name);
    if ((rc = gm_mf_object_name(p, name, 0, 0, np)) < 0)
        return rc;
    if ((rc = jkeys(p, m, "", "an IoT Edge module",
                    L("type", "status", "restartPolicy", "env", "settings"),
                    L("version", "startupOrder", "imagePullPolicy"))) < 0)
        return rc;
    if ((rc = gm_mf_containers(p, 1)) < 0 || (rc = gm_mf_strdup(p, "", &o->c[0].name)) < 0)
        return rc;
    struct gm_mf_container *c = &o->c[0];
    json_t *v = jget(m, "type");
    if (v == NULL)
        return gm_mf_fail(p, 0, 0, "type", "required (docker)");
    if (!json_is_string(v) || strcmp(json_string_value(v), "docker") != 0)
        return gm_mf_fail(p, 0, 0, "type", "%s%s%s: only docker modules are supported",
                          json_is_string(v) ? "'" : "",
                          json_is_string(v) ? json_string_value(v) : jtype(v),
                          json_is_string(v) ? "'" : "");
    if ((v = jget(m, "status")) != NULL) {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(s, "running") == 0)
            o->running = 1;
        else if (strcmp(s, "stopped") == 0)
            o->running = 0;
        else
            return gm_mf_fail(p, 0, 0, "status", "'%s': give running or stopped",
                              json_is_string(v) ? s : jtype(v));
    }
    o->restart = GM_MF_RESTART_ALWAYS;
    if ((v = jget(m, "restartPolicy")) != NULL) {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        o->restart = strcmp(s, "never") == 0          ? GM_MF_RESTART_NEVER
                     : strcmp(s, "on-failure") == 0   ? GM_MF_RESTART_ON_FAILURE
                     : strcmp(s, "on-unhealthy") == 0 ? GM_MF_RESTART_ON_UNHEALTHY
                     : strcmp(s, "always") == 0       ? GM_MF_RESTART_ALWAYS
                                                      : GM_MF_RESTART_UNSET;
        if (o->restart == GM_MF_RESTART_UNSET)
            return gm_mf_fail(p, 0, 0, "restartPolicy",
                              "'%s': give never, on-failure, on-unhealthy or always",
                              json_is_string(v) ? s : jtype(v));
    }
    if ((v = jget(m, "env")) != NULL && (rc = module_env(p, v, c)) < 0)
        return rc;
    if ((v = jget(m, "settings")) == NULL)
        return gm_mf_fail(p, 0, 0, "settings", "required (at least settings.image)");
    return settings(p, v, c);
}

int gm_mf_iotedge_parse(struct gm_mf_parse *p, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return gm_mf_fail(p, jerr.line > 0 ? jerr.line : 0, jerr.column > 0 ? jerr.column : 0, NULL,
                          "not valid JSON: %s", jerr.text);
    int rc = 0;
    json_t *mc = json_is_object(root) ? jget(root, "modulesContent") : NULL, *ea = NULL, *pd = NULL,
           *mods = NULL;
    const char *key;
    json_t *v;
    if (mc == NULL) {
        rc = gm_mf_fail(p, 0, 0, NULL,
                        "not an IoT Edge deployment: no modulesContent at the top level");
        goto out;
    }
    /* A deployment template's "$schema-template" and the like: not part of what is run. */
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "modulesContent") != 0 && key[0] != '$') {
            rc = gm_mf_fail(p, 0, 0, key, "unknown field (a deployment has modulesContent)");
            goto out;
        }
    }
    if ((rc = jexpect_object(p, mc, "modulesContent")) < 0)
        goto out;
    if ((ea = jget(mc, "$edgeAgent")) == NULL) {
        rc = gm_mf_fail(p, 0, 0, "modulesContent.$edgeAgent",
                        "required: the edge agent's desired properties list the modules");
        goto out;
    }
    if ((rc = jexpect_object(p, ea, "modulesContent.$edgeAgent")) < 0)
        goto out;
    json_object_foreach(ea, key, v)
    {
        if (strcmp(key, "properties.desired") == 0)
            continue;
        char kp[GM_MF_PATH];
        gm_mf_path_key(kp, sizeof(kp), "modulesContent.$edgeAgent", key);
        if (strcmp(key, "properties") == 0)
            rc = gm_mf_fail(p, 0, 0, kp,
                            "write \"properties.desired\" as one key, with the dot in it, as "
                            "IoT Edge does");
        else
            rc = gm_mf_fail(p, 0, 0, kp,
                            "unknown field ($edgeAgent has the one key \"properties.desired\")");
        goto out;
    }
    static const char pdp[] = "modulesContent.$edgeAgent[\"properties.desired\"]";
    if ((pd = jget(ea, "properties.desired")) == NULL) {
        rc = gm_mf_fail(p, 0, 0, pdp, "required");
        goto out;
    }
    /* runtime and systemModules are the edge runtime's own: gpumux is the runtime here. */
    json_object_foreach(pd, key, v)
    {
        if (!in(key, L("schemaVersion", "runtime", "systemModules", "modules"))) {
            char kp[GM_MF_PATH];
            gm_mf_path_key(kp, sizeof(kp), pdp, key);
            rc = gm_mf_fail(p, 0, 0, kp,
                            "unknown field (the desired properties have "
                            "schemaVersion, runtime, systemModules and modules)");
            goto out;
        }
    }
    if ((rc = jexpect_object(p, pd, pdp)) < 0)
        goto out;
    char mp[GM_MF_PATH];
    gm_mf_path_key(mp, sizeof(mp), pdp, "modules");
    mods = jget(pd, "modules");
    if (mods == NULL || (json_is_object(mods) && json_object_size(mods) == 0)) {
        rc = gm_mf_fail(p, 0, 0, mp, "no modules to run");
        goto out;
    }
    if ((rc = jexpect_object(p, mods, mp)) < 0)
        goto out;
    json_object_foreach(mods, key, v)
    {
        if ((rc = module(p, key, v)) < 0)
            goto out;
    }
out:
    json_decref(root);
    return rc;
}
