/* Initial conditions for the sample. A shell of bodies rotating about the z axis, as in
 * NVIDIA's nbody: the bodies neither collapse nor fly apart at once, so positions stay finite
 * for long runs and a non-finite one points at a kernel or driver fault. */
#include "bodies.h"

#include <math.h>

/* splitmix64: a fixed, portable sequence, unlike rand(). */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float uniform(uint64_t *s)
{
    return (float)((double)(next(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

void gm_sample_bodies_init(float *pos, float *vel, size_t n, uint64_t seed)
{
    const float scale = GM_SAMPLE_CLUSTER_SCALE * (n > 1024 ? (float)n / 1024.0f : 1.0f);
    const float vscale = scale * GM_SAMPLE_VELOCITY_SCALE;
    const float inner = 2.5f * scale, outer = 4.0f * scale;
    uint64_t s = seed;

    for (size_t i = 0; i < n; i++) {
        /* Rejection sampling: a point in the unit ball, pushed out into the shell. */
        float x, y, z, len;
        do {
            x = uniform(&s);
            y = uniform(&s);
            z = uniform(&s);
            len = sqrtf(x * x + y * y + z * z);
        } while (len > 1.0f || len < 1e-3f);
        float r = inner + (outer - inner) * len;
        x = x / len * r;
        y = y / len * r;
        z = z / len * r;
        pos[4 * i + 0] = x;
        pos[4 * i + 1] = y;
        pos[4 * i + 2] = z;
        pos[4 * i + 3] = 1.0f;

        /* Tangential velocity, (0, 0, 1) x position, slightly tilted so the shell is not flat. */
        float vx = -y, vy = x, vz = 0.1f * z;
        float vlen = sqrtf(vx * vx + vy * vy + vz * vz);
        float k = vlen > 0 ? vscale / vlen * (0.5f + 0.25f * (uniform(&s) + 1.0f)) : 0.0f;
        vel[4 * i + 0] = vx * k;
        vel[4 * i + 1] = vy * k;
        vel[4 * i + 2] = vz * k;
        vel[4 * i + 3] = 0.0f;
    }
}

size_t gm_sample_bodies_nonfinite(const float *pos, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(pos[4 * i]) || !isfinite(pos[4 * i + 1]) || !isfinite(pos[4 * i + 2]) ||
            !isfinite(pos[4 * i + 3]))
            bad++;
    }
    return bad;
}

void gm_sample_bodies_step(const float *pos, float *vel, float *newpos, size_t n, float dt)
{
    const double soft2 = (double)GM_SAMPLE_SOFTENING * GM_SAMPLE_SOFTENING;
    for (size_t i = 0; i < n; i++) {
        double a[3] = {0, 0, 0};
        for (size_t j = 0; j < n; j++) {
            double r[3];
            for (int k = 0; k < 3; k++)
                r[k] = (double)pos[4 * j + k] - pos[4 * i + k];
            double d2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2] + soft2;
            double s = pos[4 * j + 3] / (d2 * sqrt(d2));
            for (int k = 0; k < 3; k++)
                a[k] += r[k] * s;
        }
        for (int k = 0; k < 3; k++) {
            double v = ((double)vel[4 * i + k] + a[k] * dt) * GM_SAMPLE_DAMPING;
            vel[4 * i + k] = (float)v;
            newpos[4 * i + k] = (float)(pos[4 * i + k] + v * dt);
        }
        newpos[4 * i + 3] = pos[4 * i + 3];
    }
}
