/* Parsing and formatting of user-facing quantities. */
#ifndef GM_COMMON_PARSE_H
#define GM_COMMON_PARSE_H

#include "common/error.h"

#include <stddef.h>
#include <stdint.h>

#define GM_MIB ((uint64_t)1024 * 1024)
#define GM_GIB ((uint64_t)1024 * GM_MIB)

/* A memory size: "1073741824", "512M", "512MiB", "1G", "1.5GiB", "2T" (binary units; K/M/G/T
 * with an optional "i", "iB" or "B"). `what` names the value in the error ("--memory").
 * Zero, values over 1 PiB, hexadecimal ("0x10", with a hint) and exponents ("1e3") are refused. */
int gm_parse_size(const char *s, uint64_t *out, const char *what, struct gm_error *err);
/* A percentage 1..100 given as an integer ("30"). */
int gm_parse_percent(const char *s, int *out, const char *what, struct gm_error *err);
/* A non-negative integer in [min, max]. */
int gm_parse_int(const char *s, long long min, long long max, long long *out, const char *what,
                 struct gm_error *err);
/* "1536MiB", "15109MiB", "1GiB": exact in the largest unit that divides, else MiB rounded. */
void gm_format_size(uint64_t bytes, char *buf, size_t len);
/* A valid object name: 1..63 of [a-z0-9A-Z._-], starting with an alphanumeric. */
int gm_check_name(const char *s, const char *what, struct gm_error *err);
/* Length of the valid UTF-8 sequence that s starts with (1..4), or 0 when it starts none (an
 * ill-formed, overlong or surrogate sequence, or the terminating NUL). */
size_t gm_utf8_len(const char *s);
/* Refuses a file that is not UTF-8 text, with "PREFIXPATH:LINE: not UTF-8 text (byte 0xNN)"
 * (GM_EINVAL), or with errno's reason when it cannot be read. The YAML files are checked with it
 * before libfyaml sees them: libfyaml 0.7 never returns from some invalid bytes (in a
 * directive, "%\x9a"). */
int gm_check_utf8_file(const char *path, const char *prefix, struct gm_error *err);

#endif
