/* The n-body kernel's PTX, embedded at build time from nbody.ptx (see embed.cmake). */
#ifndef GM_SAMPLE_PTX_H
#define GM_SAMPLE_PTX_H

#include <stddef.h>

/* NUL-terminated, as cuModuleLoadData wants PTX text; _len excludes the NUL. */
extern const unsigned char gm_sample_ptx[];
extern const size_t gm_sample_ptx_len;

/* The kernel and its parameters, in the order of nbody.ptx's .entry. */
#define GM_SAMPLE_KERNEL     "integrateBodies"
#define GM_SAMPLE_BLOCK_SIZE 256

#endif
