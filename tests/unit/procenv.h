/* Does process pid run with entry ("NAME=value") in its environment? For the tests that check
 * what reached a workload or a monitor. Returns 1 or 0, or -1 when /proc cannot tell. */
#ifndef GM_TESTS_PROCENV_H
#define GM_TESTS_PROCENV_H

#include <stdio.h>
#include <string.h>
#include <sys/types.h>

static inline int gm_test_has_env(pid_t pid, const char *entry)
{
    char path[64], buf[65536];
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (strcmp(buf + i, entry) == 0)
            return 1;
    return 0;
}

#endif
