/* Parsing and formatting of user-facing quantities. */
#ifndef GM_COMMON_PARSE_H
#define GM_COMMON_PARSE_H

#include "common/error.h"

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

#endif
