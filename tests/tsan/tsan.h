/* What the concurrency stress programs share: a check any thread may make, and the closing
 * line ctest and CI read. Plain programs, not Criterion tests: Criterion's sandbox cannot
 * start under ThreadSanitizer. */
#ifndef GM_TEST_TSAN_H
#define GM_TEST_TSAN_H

#include <stdatomic.h>
#include <stdio.h>

static atomic_int tsan_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            atomic_fetch_add(&tsan_failures, 1);                                                   \
        }                                                                                          \
    } while (0)

/* Prints "1 passed, 0 failed" (or the other way round) and returns the exit status. */
static inline int tsan_finish(void)
{
    int f = atomic_load(&tsan_failures);
    printf("%d passed, %d failed\n", f ? 0 : 1, f ? 1 : 0);
    return f ? 1 : 0;
}

#endif
