/* What the files of libgpumux.so share. Everything here is hidden (-fvisibility=hidden); the
 * library exports only the hooks of hooks.h and dlsym.
 *
 * Threads: the region's robust mutex guards the workload-wide counters and the slots; a process
 * mutex guards the allocation map (memory.c) and another the pacing state (launch.c). The region
 * lock is taken inside the map lock, never the other way round, and none is held across fork
 * (pthread_atfork). The map lock is held across the driver calls that destroy a context, and
 * across no other driver call. Nothing here ever aborts, exits or signals the host process. */
#ifndef GM_INTERPOSE_INTERPOSE_H
#define GM_INTERPOSE_INTERPOSE_H

#include "common/error.h"
#include "gpumux/region.h"
#include "interpose/hooks.h"

#include <stddef.h>
#include <stdint.h>

#define GM_IP_EXPORT __attribute__((visibility("default")))

/* The hooks, declared from the list; a mismatch with common/cuda_api.h does not compile. */
#define GM_IP_X(ret, sym, base, since, ptds, params) GM_IP_EXPORT ret sym params;
GM_IP_HOOKS(GM_IP_X)
#undef GM_IP_X

enum gm_ip_sym {
#define GM_IP_X(ret, sym, base, since, ptds, params) GM_IP_SYM_##sym,
    GM_IP_HOOKS(GM_IP_X)
#undef GM_IP_X
#define GM_IP_X(sym) GM_IP_SYM_##sym,
        GM_IP_INTERNAL(GM_IP_X)
#undef GM_IP_X
            GM_IP_SYM_COUNT
};
enum {
#define GM_IP_X(ret, sym, base, since, ptds, params) +1
    GM_IP_NHOOKS = 0 GM_IP_HOOKS(GM_IP_X)
#undef GM_IP_X
};

/* The real driver's functions, each typed from its declaration; NULL until resolved. */
struct gm_ip_real {
#define GM_IP_X(ret, sym, base, since, ptds, params) __typeof__(&sym) sym;
    GM_IP_HOOKS(GM_IP_X)
#undef GM_IP_X
#define GM_IP_X(sym) __typeof__(&sym) sym;
    GM_IP_INTERNAL(GM_IP_X)
#undef GM_IP_X
};
extern struct gm_ip_real gm_ip_real;

/* Looks the real symbol up (after this library, then in the libcuda.so.1 the program loaded)
 * and stores it in gm_ip_real; leaves NULL when the driver lacks it. */
void gm_ip_resolve(enum gm_ip_sym i);

/* The real function, typed; NULL when the driver lacks it. */
#define GM_REAL(sym)                                                                               \
    (__extension__({                                                                               \
        __typeof__(&sym) gm_p_ = __atomic_load_n(&gm_ip_real.sym, __ATOMIC_ACQUIRE);               \
        if (__builtin_expect(gm_p_ == NULL, 0)) {                                                  \
            gm_ip_resolve(GM_IP_SYM_##sym);                                                        \
            gm_p_ = __atomic_load_n(&gm_ip_real.sym, __ATOMIC_ACQUIRE);                            \
        }                                                                                          \
        gm_p_;                                                                                     \
    }))

/* Calls the real function, or answers CUDA_ERROR_NOT_FOUND when the driver has none. */
#define GM_CALL_REAL(sym, ...)                                                                     \
    (__extension__({                                                                               \
        __typeof__(&sym) gm_f_ = GM_REAL(sym);                                                     \
        gm_f_ != NULL ? gm_f_(__VA_ARGS__) : CUDA_ERROR_NOT_FOUND;                                 \
    }))

/* The hook's address for entry i (what dlsym and cuGetProcAddress hand out). */
void *gm_ip_hook_addr(int i);

/* Calls made by the driver into its own exported entry points land in our hooks when we are
 * preloaded (gpusim's cuMemGetInfo calls cuMemGetInfo_v2); they must pass straight through, or
 * one allocation would be counted twice. initial-exec: the library is preloaded, never
 * dlopen'ed late, and this keeps the check a single %fs-relative load. */
extern __thread int gm_ip_depth __attribute__((tls_model("initial-exec")));

/* init.c. */
/* Internal functions follow the project's convention (0 or a negative GM_E* code, a struct
 * gm_error for the message); this is the one place their result becomes the driver's answer:
 * 0 CUDA_SUCCESS, -GM_ENOSPACE CUDA_ERROR_OUT_OF_MEMORY (a limit), -GM_EPERM
 * CUDA_ERROR_NOT_PERMITTED (strict enforcement without a region), -GM_ENOTFOUND
 * CUDA_ERROR_NOT_FOUND, anything else CUDA_ERROR_UNKNOWN. */
CUresult gm_ip_cu_result(int rc);
void gm_ip_init(void);
/* 1 when GPUMUX_ENFORCE=strict found no usable region: CUDA is refused. */
extern int gm_ip_refused;
/* Writes "gpumux: <message>\n" to stderr in one write. */
void gm_ip_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* region.c. The mapped region, or NULL when running without one. */
extern struct gm_region *gm_ip_region;
/* Its usage file's path ($GPUMUX_REGION), beside which the peers' usage files are. */
extern char gm_ip_region_path[];
/* Maps path and checks its header. 0, or a negative GM_E* code with err filled. */
int gm_ip_region_attach(const char *path, struct gm_error *err);
/* Claims this process's slot (also in a forked child: the parent's slot is not ours). */
void gm_ip_region_claim(void);
void gm_ip_region_release(void);
/* Takes the region lock, repairing the counters when the last holder died. 0, or a negative
 * GM_E* code when the lock cannot be had (it is then not held). */
int gm_ip_region_lock(void);
void gm_ip_region_unlock(void);
/* Caller holds the lock: drops the slots of processes that died without releasing them (exit
 * without destructors, SIGKILL) and recounts the total from the live slots. */
void gm_ip_region_sweep_locked(void);
/* This process's slot, or NULL (no region, or all slots taken). Checked on every use: a slot
 * that no longer holds our pid and start time (the daemon freed it, another process may have
 * claimed it) is claimed again, carrying what this process holds. Takes the region lock when
 * it must claim; the caller must not hold it. */
struct gm_region_proc *gm_ip_slot(void);
/* The same for a caller that holds the region lock: the slot's index, or -1. */
int gm_ip_slot_locked(void);
/* Caller holds the region lock: counts size bytes into the workload's total and this
 * process's slot, or takes them off. */
void gm_ip_charge_locked(uint64_t size);
void gm_ip_uncharge_locked(uint64_t size);

/* memory.c: forget the parent's allocations in a forked child. */
void gm_ip_memory_atfork_prepare(void);
void gm_ip_memory_atfork_parent(void);
void gm_ip_memory_atfork_child(void);

/* launch.c. */
void gm_ip_launch_atfork_prepare(void);
void gm_ip_launch_atfork_parent(void);
void gm_ip_launch_atfork_child(void);
/* Publishes the process's launch count into its slot. */
void gm_ip_launch_flush(void);
/* At exit: the exiting thread's last launches too. */
void gm_ip_launch_exit(void);

#endif
