#include "common/parse.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int gm_parse_int(const char *s, long long min, long long max, long long *out, const char *what,
                 struct gm_error *err)
{
    if (s == NULL || *s == '\0')
        return gm_err(err, GM_EINVAL, "%s: a number is required", what);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || !isdigit((unsigned char)s[s[0] == '-' ? 1 : 0]))
        return gm_err(err, GM_EINVAL, "%s: '%s' is not a whole number", what, s);
    if (v < min || v > max)
        return gm_err(err, GM_EINVAL, "%s: %lld is out of range (%lld..%lld)", what, v, min, max);
    *out = v;
    return 0;
}

int gm_parse_percent(const char *s, int *out, const char *what, struct gm_error *err)
{
    long long v;
    /* "50%" as ps prints it, as well as "50". */
    char num[32];
    size_t n = s != NULL ? strlen(s) : 0;
    if (n > 1 && n < sizeof(num) && s[n - 1] == '%') {
        memcpy(num, s, n - 1);
        num[n - 1] = '\0';
        s = num;
    }
    int rc = gm_parse_int(s, 1, 100, &v, what, err);
    if (rc < 0)
        return rc;
    *out = (int)v;
    return 0;
}

int gm_parse_size(const char *s, uint64_t *out, const char *what, struct gm_error *err)
{
    if (s == NULL || *s == '\0')
        return gm_err(err, GM_EINVAL, "%s: a size is required (for example 512M or 2G)", what);
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        return gm_err(err, GM_EINVAL,
                      "%s: '%s' is hexadecimal; give the size in decimal, with an optional unit "
                      "K, M, G or T (for example 512M)",
                      what, s);
    /* Digits with at most one decimal point, then the unit: strtod alone would also take hex
     * ("0x10"), exponents ("1e3"), "inf" and "nan". */
    size_t ndig = strspn(s, "0123456789");
    if (ndig == 0)
        goto bad;
    if (s[ndig] == '.') {
        size_t frac = strspn(s + ndig + 1, "0123456789");
        if (frac == 0)
            goto bad;
        ndig += 1 + frac;
    }
    char num[64], *end;
    if (ndig >= sizeof(num))
        goto bad;
    memcpy(num, s, ndig);
    num[ndig] = '\0';
    errno = 0;
    double v = strtod(num, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v))
        goto bad;
    end = (char *)s + ndig;
    uint64_t mult = 1;
    const char *u = end;
    if (*u != '\0') {
        switch (toupper((unsigned char)*u)) {
        case 'B':
            mult = 1;
            u--;
            break;
        case 'K':
            mult = 1024ULL;
            break;
        case 'M':
            mult = GM_MIB;
            break;
        case 'G':
            mult = GM_GIB;
            break;
        case 'T':
            mult = 1024ULL * GM_GIB;
            break;
        default:
            goto bad;
        }
        u++;
        if (strcmp(u, "") != 0 && strcasecmp(u, "i") != 0 && strcasecmp(u, "ib") != 0 &&
            strcasecmp(u, "b") != 0)
            goto bad;
    }
    double bytes = v * (double)mult;
    if (bytes < 1)
        return gm_err(err, GM_EINVAL, "%s: '%s' is zero; give a size of at least 1 byte", what, s);
    if (bytes > 1024.0 * 1024.0 * (double)GM_GIB)
        return gm_err(err, GM_EINVAL, "%s: '%s' is larger than 1 PiB", what, s);
    *out = (uint64_t)bytes;
    return 0;
bad:
    return gm_err(err, GM_EINVAL,
                  "%s: '%s' is not a size (use a number with an optional unit K, M, G or T, "
                  "for example 512M or 1.5G)",
                  what, s);
}

void gm_format_size(uint64_t bytes, char *buf, size_t len)
{
    if (bytes != 0 && bytes % GM_GIB == 0)
        snprintf(buf, len, "%" PRIu64 "GiB", bytes / GM_GIB);
    else if (bytes % GM_MIB == 0 || bytes >= GM_MIB)
        snprintf(buf, len, "%" PRIu64 "MiB", (bytes + GM_MIB / 2) / GM_MIB);
    else
        snprintf(buf, len, "%" PRIu64 "B", bytes);
}

int gm_check_name(const char *s, const char *what, struct gm_error *err)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return gm_err(err, GM_EINVAL, "%s: a name is required", what);
    if (n > 63)
        return gm_err(err, GM_EINVAL, "%s '%s': longer than 63 characters", what, s);
    if (!isalnum((unsigned char)s[0]))
        return gm_err(err, GM_EINVAL, "%s '%s': must start with a letter or digit", what, s);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return gm_err(err, GM_EINVAL,
                          "%s '%s': only letters, digits, '.', '_' and '-' are allowed", what, s);
    }
    return 0;
}

size_t gm_utf8_len(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = s[0] == 0               ? 0
               : s[0] < 0x80           ? 1
               : (s[0] & 0xe0) == 0xc0 ? 2
               : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    unsigned cp = n == 1   ? s[0]
                  : n == 2 ? (s[0] & 0x1fu) << 6 | (s[1] & 0x3fu)
                  : n == 3 ? (s[0] & 0x0fu) << 12 | (s[1] & 0x3fu) << 6 | (s[2] & 0x3fu)
                  : n == 4 ? (s[0] & 0x07u) << 18 | (s[1] & 0x3fu) << 12 | (s[2] & 0x3fu) << 6 |
                                 (s[3] & 0x3fu)
                           : 0;
    static const unsigned least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (n == 0 || cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

int gm_check_utf8_file(const char *path, const char *prefix, struct gm_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return gm_err_errno(err, GM_EINVAL, errno, "%s%s", prefix, path);
    /* Line by line: a sequence never spans a newline, and NUL bytes are caught by length. */
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    for (int no = 1; rc == 0 && (len = getline(&line, &cap, f)) >= 0; no++) {
        for (ssize_t i = 0; i < len;) {
            size_t n = gm_utf8_len(line + i);
            if (n == 0) {
                rc = gm_err(err, GM_EINVAL, "%s%s:%d: not UTF-8 text (byte 0x%02x)", prefix, path,
                            no, (unsigned char)line[i]);
                break;
            }
            i += (ssize_t)n;
        }
    }
    if (rc == 0 && ferror(f))
        rc = gm_err_errno(err, GM_EINVAL, errno, "%s%s: reading", prefix, path);
    free(line);
    fclose(f);
    return rc;
}
