/* The command line, in the style of NVIDIA's nbody sample: single-dash options with "=value"
 * (a double dash is accepted too). */
#ifndef GM_SAMPLE_OPTIONS_H
#define GM_SAMPLE_OPTIONS_H

struct gm_sample_options {
    int benchmark;    /* -benchmark given; the sample has no display, so it changes nothing */
    long iterations;  /* -i=N; 0 when not given */
    long bodies;      /* -n=N or -numbodies=N; 0 for the device's default */
    int device;       /* -device=N */
    double seconds;   /* -t=SECONDS; 0 when not given */
    int quiet;        /* -quiet: only the three summary lines */
    int compare;      /* -compare: one step on the GPU checked against the host */
    double kernel_ms; /* -kernel-ms=MS: bodies chosen so that a step takes MS; 0 when not given */
};

#define GM_SAMPLE_DEFAULT_ITERATIONS 10
#define GM_SAMPLE_MAX_BODIES         (1L << 24)
#define GM_SAMPLE_COMPARE_BODIES     4096
#define GM_SAMPLE_CALIBRATE_BODIES   8192

/* Returns 0 to run, 1 when --help was printed (exit 0), -1 after printing a usage error
 * (exit 2). */
int gm_sample_parse_options(int argc, char **argv, struct gm_sample_options *o);

#endif
