/* gpusim's libcuda.so.1: modules. gpusim runs no code, but it reads PTX as far as a launch
 * needs: that the image is PTX the driver of this CUDA version would take, its kernels
 * (.entry) with their parameters, and its .global variables for cuModuleGetGlobal. */
#include "gpusim/cuda/cuda_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IMAGE ((size_t)64 << 20)
/* PTX ISA 8.2 came with CUDA 12.2, the version gpusim reports. */
#define PTX_MAX_MAJOR 8
#define PTX_MAX_MINOR 2

struct scan {
    char *s; /* the text with comments blanked out */
    size_t pos, len;
    char *log;
    size_t loglen;
    int cc; /* the device's compute capability, 75 for 7.5 */
};

static int line_of(const struct scan *sc, size_t pos)
{
    int line = 1;
    for (size_t i = 0; i < pos && i < sc->len; i++)
        line += sc->s[i] == '\n';
    return line;
}

__attribute__((format(printf, 3, 4))) static CUresult fail(struct scan *sc, CUresult rc,
                                                           const char *fmt, ...)
{
    if (sc->log != NULL && sc->loglen > 0) {
        int n = snprintf(sc->log, sc->loglen,
                         "ptxas application ptx input, line %d; error   : ", line_of(sc, sc->pos));
        if (n >= 0 && (size_t)n < sc->loglen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(sc->log + n, sc->loglen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

/* Comments become blanks (newlines kept, for line numbers). */
static void strip_comments(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"') {
            for (i++; i < len && s[i] != '"'; i++)
                ;
        } else if (s[i] == '/' && i + 1 < len && s[i + 1] == '/') {
            for (; i < len && s[i] != '\n'; i++)
                s[i] = ' ';
        } else if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
            size_t j = i;
            for (; j < len && !(s[j] == '*' && j + 1 < len && s[j + 1] == '/' && j > i + 1); j++)
                if (s[j] != '\n')
                    s[j] = ' ';
            if (j < len)
                s[j] = s[j + 1] = ' ';
            i = j + 1;
        }
    }
}

static void skip_space(struct scan *sc)
{
    while (sc->pos < sc->len && isspace((unsigned char)sc->s[sc->pos]))
        sc->pos++;
}

static int is_ident(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$' || c == '.' || c == '%';
}

/* The next word (identifier or directive) into buf; 0 when there is none here. */
static size_t word(struct scan *sc, char *buf, size_t len)
{
    skip_space(sc);
    size_t n = 0;
    while (sc->pos < sc->len && is_ident(sc->s[sc->pos])) {
        if (n + 1 < len)
            buf[n++] = sc->s[sc->pos];
        sc->pos++;
    }
    buf[n] = '\0';
    return n;
}

static int type_size(const char *t)
{
    if (t[0] != '.' || strchr("bsuf", t[1]) == NULL)
        return 0;
    int bits = atoi(t + 2);
    return bits == 8 || bits == 16 || bits == 32 || bits == 64 ? bits / 8 : 0;
}

static CUresult header(struct scan *sc)
{
    char w[64];
    word(sc, w, sizeof(w));
    if (strcmp(w, ".version") != 0)
        return fail(sc, CUDA_ERROR_INVALID_IMAGE, "not PTX: no .version directive");
    skip_space(sc);
    int major = -1, minor = -1, used = 0;
    if (sscanf(sc->s + sc->pos, "%d.%d%n", &major, &minor, &used) != 2 || major < 1)
        return fail(sc, CUDA_ERROR_INVALID_PTX, "Malformed .version directive");
    sc->pos += (size_t)used;
    if (major > PTX_MAX_MAJOR || (major == PTX_MAX_MAJOR && minor > PTX_MAX_MINOR))
        return fail(sc, CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
                    "Unsupported .version %d.%d; current version is '%d.%d'", major, minor,
                    PTX_MAX_MAJOR, PTX_MAX_MINOR);
    word(sc, w, sizeof(w));
    if (strcmp(w, ".target") != 0)
        return fail(sc, CUDA_ERROR_INVALID_PTX, "Missing .target directive after .version");
    word(sc, w, sizeof(w));
    int sm = 0;
    if (sscanf(w, "sm_%d", &sm) != 1)
        return fail(sc, CUDA_ERROR_INVALID_PTX, "Unknown .target '%s'", w);
    if (sm > sc->cc)
        return fail(sc, CUDA_ERROR_INVALID_PTX,
                    "SM version specified by .target is higher than default SM version assumed");
    return CUDA_SUCCESS;
}

static CUresult entry(struct scan *sc, struct CUmod_st *mod)
{
    char name[128];
    if (word(sc, name, sizeof(name)) == 0 || name[0] == '.')
        return fail(sc, CUDA_ERROR_INVALID_PTX, "Expected a kernel name after .entry");
    struct CUfunc_st *funcs = realloc(mod->funcs, ((size_t)mod->nfuncs + 1) * sizeof(*funcs));
    if (funcs == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    mod->funcs = funcs;
    struct CUfunc_st *f = &funcs[mod->nfuncs];
    memset(f, 0, sizeof(*f));
    f->magic = GM_SIM_CUDA_MAGIC_FUNC;
    snprintf(f->name, sizeof(f->name), "%s", name);
    skip_space(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == '(') {
        sc->pos++;
        for (;;) {
            char w[64];
            skip_space(sc);
            if (sc->pos < sc->len && sc->s[sc->pos] == ')') {
                sc->pos++;
                break;
            }
            if (word(sc, w, sizeof(w)) == 0 || strcmp(w, ".param") != 0)
                return fail(sc, CUDA_ERROR_INVALID_PTX, "Expected .param in the parameters of %s",
                            f->name);
            struct gm_sim_cuda_param p = {""};
            while (word(sc, w, sizeof(w)) > 0 && w[0] == '.') {
                if (strcmp(w, ".align") == 0) {
                    word(sc, w, sizeof(w)); /* its byte count */
                    continue;
                }
                /* .ptr and its state space qualify a pointer; the type is the one sized word. */
                if (type_size(w) > 0 && p.type[0] == '\0' &&
                    snprintf(p.type, sizeof(p.type), "%s", w + 1) >= (int)sizeof(p.type))
                    p.type[0] = '\0'; /* no type of PTX is that long */
            }
            if (p.type[0] == '\0' || w[0] == '\0')
                return fail(sc, CUDA_ERROR_INVALID_PTX, "Malformed .param in %s", f->name);
            if (f->nparams < (int)(sizeof(f->params) / sizeof(f->params[0])))
                f->params[f->nparams] = p;
            f->nparams++;
            /* The rest of the declaration: an array size, then ',' or ')'. */
            while (sc->pos < sc->len && sc->s[sc->pos] != ',' && sc->s[sc->pos] != ')')
                sc->pos++;
            if (sc->pos >= sc->len)
                return fail(sc, CUDA_ERROR_INVALID_PTX, "Unterminated parameter list of %s",
                            f->name);
            if (sc->s[sc->pos] == ',')
                sc->pos++;
        }
    }
    mod->nfuncs++;
    return CUDA_SUCCESS;
}

static CUresult global(struct scan *sc, struct CUmod_st *mod, size_t *total)
{
    char w[128];
    int size = 0;
    while (word(sc, w, sizeof(w)) > 0 && w[0] == '.') {
        if (strcmp(w, ".align") == 0) {
            word(sc, w, sizeof(w));
            continue;
        }
        if (type_size(w) > 0)
            size = type_size(w);
    }
    if (size == 0 || w[0] == '\0')
        return fail(sc, CUDA_ERROR_INVALID_PTX, "Malformed .global declaration");
    size_t count = 1;
    skip_space(sc);
    while (sc->pos < sc->len && sc->s[sc->pos] == '[') {
        count *= strtoul(sc->s + sc->pos + 1, NULL, 10);
        while (sc->pos < sc->len && sc->s[sc->pos] != ']')
            sc->pos++;
        sc->pos++;
        skip_space(sc);
    }
    struct gm_sim_cuda_global *g = realloc(mod->globals, ((size_t)mod->nglobals + 1) * sizeof(*g));
    if (g == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    mod->globals = g;
    g = &g[mod->nglobals++];
    snprintf(g->name, sizeof(g->name), "%s", w);
    *total = (*total + 15) / 16 * 16;
    g->offset = *total;
    g->size = count * (size_t)size;
    *total += g->size;
    return CUDA_SUCCESS;
}

static CUresult parse(struct scan *sc, struct CUmod_st *mod, size_t *globals_size)
{
    CUresult rc = header(sc);
    if (rc != CUDA_SUCCESS)
        return rc;
    int depth = 0;
    while (sc->pos < sc->len) {
        char c = sc->s[sc->pos];
        if (c == '{') {
            depth++;
            sc->pos++;
        } else if (c == '}') {
            if (--depth < 0)
                return fail(sc, CUDA_ERROR_INVALID_PTX, "syntax error at '}'");
            sc->pos++;
        } else if (c == '.' && depth == 0) {
            char w[64];
            word(sc, w, sizeof(w));
            if (strcmp(w, ".entry") == 0)
                rc = entry(sc, mod);
            else if (strcmp(w, ".global") == 0)
                rc = global(sc, mod, globals_size);
            if (rc != CUDA_SUCCESS)
                return rc;
        } else if (c == '"') {
            for (sc->pos++; sc->pos < sc->len && sc->s[sc->pos] != '"'; sc->pos++)
                ;
            sc->pos++;
        } else {
            sc->pos++;
        }
    }
    if (depth != 0)
        return fail(sc, CUDA_ERROR_INVALID_PTX, "syntax error: unbalanced '{' at end of input");
    return CUDA_SUCCESS;
}

static void module_free(struct CUmod_st *m)
{
    for (int i = 0; i < m->nfuncs; i++)
        m->funcs[i].magic = 0;
    free(m->funcs);
    free(m->globals);
    m->magic = 0;
    free(m);
}

/* Modules of each context, so that destroying it unloads them. */
struct mod_node {
    struct CUmod_st *mod;
    struct mod_node *next;
};
static struct mod_node *modules;

static CUresult load(CUmodule *module, const void *image, char *log, size_t loglen)
{
    struct CUctx_st *ctx;
    CUresult rc = gm_sim_cuda_current(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (module == NULL || image == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    const unsigned char *u = image;
    /* Cubins and fatbins hold machine code for a real GPU; gpusim can only take PTX. */
    if ((u[0] == 0x7f && u[1] == 'E' && u[2] == 'L' && u[3] == 'F') ||
        (u[0] == 0x50 && u[1] == 0xed && u[2] == 0x55 && u[3] == 0xba))
        return CUDA_ERROR_INVALID_IMAGE;
    size_t len = strnlen(image, MAX_IMAGE);
    if (len == MAX_IMAGE)
        return CUDA_ERROR_INVALID_IMAGE;
    struct CUmod_st *m = calloc(1, sizeof(*m));
    struct scan sc = {.s = malloc(len + 1), .len = len, .log = log, .loglen = loglen};
    if (m == NULL || sc.s == NULL) {
        free(m);
        free(sc.s);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    memcpy(sc.s, image, len + 1);
    strip_comments(sc.s, len);
    const struct gm_sim_gpu_info *info =
        &gm_sim_cuda_g.st->gpus[gm_sim_cuda_g.dev[ctx->dev].gpu].info;
    sc.cc = info->cc_major * 10 + info->cc_minor;
    m->magic = GM_SIM_CUDA_MAGIC_MODULE;
    m->ctx = ctx;
    size_t globals = 0;
    rc = parse(&sc, m, &globals);
    free(sc.s);
    for (int i = 0; i < m->nfuncs; i++)
        m->funcs[i].mod = m;
    struct mod_node *node = rc == CUDA_SUCCESS ? malloc(sizeof(*node)) : NULL;
    if (rc == CUDA_SUCCESS && node == NULL)
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    if (rc != CUDA_SUCCESS) {
        free(node);
        module_free(m);
        return rc;
    }
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    struct gm_sim_cuda_dev *d = &gm_sim_cuda_g.dev[ctx->dev];
    rc = gm_sim_cuda_from_gm(gm_sim_cuda_account_locked(d, 0, (int64_t)GM_SIM_CUDA_MODULE_MEMORY),
                             GM_SIM_CUDA_IN_CALL);
    if (rc == CUDA_SUCCESS && globals > 0) {
        rc = gm_sim_cuda_globals_alloc_locked(ctx, globals, &m->globals_base);
        if (rc != CUDA_SUCCESS)
            gm_sim_cuda_account_locked(d, 0, -(int64_t)GM_SIM_CUDA_MODULE_MEMORY);
    }
    if (rc == CUDA_SUCCESS) {
        node->mod = m;
        node->next = modules;
        modules = node;
    }
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    if (rc != CUDA_SUCCESS) {
        free(node);
        module_free(m);
        return rc;
    }
    *module = m;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuModuleLoadData(CUmodule *module, const void *image)
{
    return load(module, image, NULL, 0);
}

GM_SIM_CUDA_API CUresult cuModuleLoadDataEx(CUmodule *module, const void *image,
                                            unsigned int numOptions, CUjit_option *options,
                                            void **optionValues)
{
    char *log = NULL;
    size_t loglen = 0;
    if (numOptions > 0 && (options == NULL || optionValues == NULL))
        return CUDA_ERROR_INVALID_VALUE;
    for (unsigned i = 0; i < numOptions; i++) {
        if (options[i] == CU_JIT_ERROR_LOG_BUFFER)
            log = optionValues[i];
        else if (options[i] == CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
            loglen = (size_t)(uintptr_t)optionValues[i];
    }
    if (log != NULL && loglen > 0)
        log[0] = '\0';
    return load(module, image, log, log != NULL ? loglen : 0);
}

/* Caller holds the lock. */
static void unload_locked(struct mod_node **link)
{
    struct mod_node *n = *link;
    struct CUmod_st *m = n->mod;
    *link = n->next;
    if (m->ctx->live) {
        if (m->globals_base != 0)
            gm_sim_cuda_free_locked(m->globals_base);
        gm_sim_cuda_account_locked(&gm_sim_cuda_g.dev[m->ctx->dev], 0,
                                   -(int64_t)GM_SIM_CUDA_MODULE_MEMORY);
    }
    module_free(m);
    free(n);
}

void gm_sim_cuda_modules_release_ctx_locked(struct CUctx_st *ctx)
{
    for (struct mod_node **l = &modules; *l != NULL;)
        if ((*l)->mod->ctx == ctx)
            unload_locked(l);
        else
            l = &(*l)->next;
}

void gm_sim_cuda_modules_release_all_locked(void)
{
    while (modules != NULL) {
        struct mod_node *n = modules;
        modules = n->next;
        module_free(n->mod);
        free(n);
    }
}

GM_SIM_CUDA_API CUresult cuModuleUnload(CUmodule hmod)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&gm_sim_cuda_g.lock);
    for (struct mod_node **l = &modules; *l != NULL; l = &(*l)->next)
        if ((*l)->mod == hmod) {
            unload_locked(l);
            rc = CUDA_SUCCESS;
            break;
        }
    pthread_mutex_unlock(&gm_sim_cuda_g.lock);
    return rc;
}

static CUresult check_module(CUmodule hmod)
{
    CUresult rc = gm_sim_cuda_check_init();
    if (rc != CUDA_SUCCESS)
        return rc;
    if (hmod == NULL || hmod->magic != GM_SIM_CUDA_MAGIC_MODULE)
        return CUDA_ERROR_INVALID_HANDLE;
    return CUDA_SUCCESS;
}

GM_SIM_CUDA_API CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)
{
    CUresult rc = check_module(hmod);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (hfunc == NULL || name == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    for (int i = 0; i < hmod->nfuncs; i++)
        if (strcmp(hmod->funcs[i].name, name) == 0) {
            *hfunc = &hmod->funcs[i];
            return CUDA_SUCCESS;
        }
    return CUDA_ERROR_NOT_FOUND;
}

GM_SIM_CUDA_API CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes, CUmodule hmod,
                                              const char *name)
{
    CUresult rc = check_module(hmod);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (name == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    for (int i = 0; i < hmod->nglobals; i++)
        if (strcmp(hmod->globals[i].name, name) == 0) {
            if (dptr != NULL)
                *dptr = hmod->globals_base + hmod->globals[i].offset;
            if (bytes != NULL)
                *bytes = hmod->globals[i].size;
            return CUDA_SUCCESS;
        }
    return CUDA_ERROR_NOT_FOUND;
}
