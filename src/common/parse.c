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
