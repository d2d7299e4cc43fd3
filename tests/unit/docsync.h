/* A generated section of a document (docs/api.md's routes, docs/config.md's settings) against
 * the table it is generated from. */
#ifndef GM_TEST_DOCSYNC_H
#define GM_TEST_DOCSYNC_H

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The part of GM_SOURCE_DIR/doc between the lines begin and end must be what gen prints. When
 * it is not, the whole document as it should be is written to GM_BUILD_DIR/fixed and the test
 * fails with the command that puts it in place; `source` names what gen prints from. */
static inline void gm_test_doc_section(const char *doc, const char *begin, const char *end,
                                       void (*gen)(FILE *), const char *fixed, const char *source)
{
    const char *src = getenv("GM_SOURCE_DIR"), *build = getenv("GM_BUILD_DIR");
    cr_assert_not_null(src, "GM_SOURCE_DIR is not set");
    cr_assert_not_null(build, "GM_BUILD_DIR is not set");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", src, doc);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char text[1 << 18];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    char *b = strstr(text, begin), *e = b ? strstr(b, end) : NULL;
    cr_assert(b != NULL && e != NULL, "%s lacks the lines '%s' and '%s'", doc, begin, end);
    b += strlen(begin);
    char *want = NULL;
    size_t len = 0;
    FILE *g = open_memstream(&want, &len);
    cr_assert_not_null(g);
    gen(g);
    fclose(g);
    if ((size_t)(e - b) != len || memcmp(b, want, len) != 0) {
        snprintf(path, sizeof(path), "%s/%s", build, fixed);
        FILE *w = fopen(path, "w");
        if (w != NULL) {
            fwrite(text, 1, (size_t)(b - text), w);
            fputs(want, w);
            fputs(e, w);
            fclose(w);
        }
        cr_expect_fail("%s's generated section differs from %s; to update it: cp %s %s/%s", doc,
                       source, path, src, doc);
    }
    free(want);
}

#endif
