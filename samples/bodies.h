/* Initial conditions and the check of the result, on the host. */
#ifndef GM_SAMPLE_BODIES_H
#define GM_SAMPLE_BODIES_H

#include <stddef.h>
#include <stdint.h>

/* Simulation constants, those of the first demo of NVIDIA's nbody. */
#define GM_SAMPLE_DT             0.016f
#define GM_SAMPLE_SOFTENING      0.1f
#define GM_SAMPLE_DAMPING        1.0f
#define GM_SAMPLE_CLUSTER_SCALE  1.54f
#define GM_SAMPLE_VELOCITY_SCALE 8.0f

/* Fills pos (x, y, z, mass) and vel (x, y, z, 0), 4 floats per body, with a rotating shell of
 * unit-mass bodies. The same seed gives the same bodies on every machine. */
void gm_sample_bodies_init(float *pos, float *vel, size_t n, uint64_t seed);

/* One time step on the host with the kernel's arithmetic (in double precision), for -compare:
 * reads pos, writes newpos and updates vel. O(n^2); meant for a few thousand bodies. */
void gm_sample_bodies_step(const float *pos, float *vel, float *newpos, size_t n, float dt);

/* How many of the n bodies have a coordinate that is not finite. */
size_t gm_sample_bodies_nonfinite(const float *pos, size_t n);

#endif
