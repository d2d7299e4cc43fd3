/* Sizes, percentages, names and text; the daemon's settings are in test_config.c. */
#include "common/parse.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Test(parse, sizes)
{
    uint64_t v;
    struct gm_error err;
    cr_assert_eq(gm_parse_size("1G", &v, "--memory", &err), 0);
    cr_assert_eq(v, GM_GIB);
    cr_assert_eq(gm_parse_size("512MiB", &v, "--memory", &err), 0);
    cr_assert_eq(v, 512 * GM_MIB);
    cr_assert_eq(gm_parse_size("1.5g", &v, "--memory", &err), 0);
    cr_assert_eq(v, 1536 * GM_MIB);
    cr_assert_eq(gm_parse_size("4096", &v, "--memory", &err), 0);
    cr_assert_eq(v, 4096);
    cr_assert_eq(gm_parse_size("12X", &v, "--memory", &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "--memory: '12X' is not a size") != NULL, "%s", err.msg);
    cr_assert_eq(gm_parse_size("0", &v, "--memory", &err), -GM_EINVAL);
    cr_assert_eq(gm_parse_size("-1G", &v, "--memory", &err), -GM_EINVAL);
    cr_assert_eq(gm_parse_size("", &v, "--memory", &err), -GM_EINVAL);
    cr_assert_eq(gm_parse_size("2000T", &v, "--memory", &err), -GM_EINVAL);
    /* strtod would read these as 16, 1000, 16 and infinity: refused, hex with a hint. */
    cr_assert_eq(gm_parse_size("0x10", &v, "--memory", &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "--memory: '0x10' is hexadecimal; give the size in decimal") != NULL,
              "%s", err.msg);
    cr_assert_eq(gm_parse_size("0X1G", &v, "--memory", &err), -GM_EINVAL);
    cr_assert_eq(gm_parse_size("1e3", &v, "--memory", &err), -GM_EINVAL);
    cr_assert_eq(gm_parse_size("16.", &v, "--memory", &err), -GM_EINVAL);
    cr_assert_eq(gm_parse_size("1.5.2G", &v, "--memory", &err), -GM_EINVAL);
    cr_assert_eq(gm_parse_size("1 G", &v, "--memory", &err), -GM_EINVAL);
    cr_assert_eq(gm_parse_size("0.5K", &v, "--memory", &err), 0);
    cr_assert_eq(v, 512);
}

Test(parse, percents)
{
    int v;
    struct gm_error err;
    cr_assert_eq(gm_parse_percent("30", &v, "--compute", &err), 0);
    cr_assert_eq(v, 30);
    cr_assert_eq(gm_parse_percent("100", &v, "--compute", &err), 0);
    cr_assert_eq(gm_parse_percent("0", &v, "--compute", &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "out of range (1..100)") != NULL, "%s", err.msg);
    cr_assert_eq(gm_parse_percent("101", &v, "--compute", &err), -GM_EINVAL);
    cr_assert_eq(gm_parse_percent("abc", &v, "--compute", &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "'abc' is not a whole number") != NULL, "%s", err.msg);
    /* As ps prints it. */
    cr_assert_eq(gm_parse_percent("30%", &v, "--compute", &err), 0);
    cr_assert_eq(v, 30);
    cr_assert_eq(gm_parse_percent("%", &v, "--compute", &err), -GM_EINVAL);
    cr_assert_eq(gm_parse_percent("30%%", &v, "--compute", &err), -GM_EINVAL);
    cr_assert_eq(gm_parse_percent("101%", &v, "--compute", &err), -GM_EINVAL);
}

Test(parse, names)
{
    struct gm_error err;
    cr_assert_eq(gm_check_name("cuda-sample1", "workload", &err), 0);
    cr_assert_eq(gm_check_name("", "workload", &err), -GM_EINVAL);
    cr_assert_eq(gm_check_name("a/b", "workload", &err), -GM_EINVAL);
    cr_assert_eq(gm_check_name("-a", "workload", &err), -GM_EINVAL);
    char big[80];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(gm_check_name(big, "workload", &err), -GM_EINVAL);
}

Test(parse, utf8)
{
    cr_assert_eq(gm_utf8_len("a"), 1);
    cr_assert_eq(gm_utf8_len("\xc3\xa9"), 2);
    cr_assert_eq(gm_utf8_len("\xe2\x82\xac"), 3);
    cr_assert_eq(gm_utf8_len("\xf0\x9f\x98\x80"), 4);
    cr_assert_eq(gm_utf8_len(""), 0);
    cr_assert_eq(gm_utf8_len("\x9a"), 0, "a lone continuation byte");
    cr_assert_eq(gm_utf8_len("\xc3"), 0, "cut short by the end");
    cr_assert_eq(gm_utf8_len("\xc0\xaf"), 0, "overlong");
    cr_assert_eq(gm_utf8_len("\xed\xa0\x80"), 0, "a surrogate");
    cr_assert_eq(gm_utf8_len("\xf4\x90\x80\x80"), 0, "past U+10FFFF");
    cr_assert_eq(gm_utf8_len("\xff"), 0);
}

Test(parse, format_size)
{
    char buf[32];
    gm_format_size(15109 * GM_MIB, buf, sizeof(buf));
    cr_assert_str_eq(buf, "15109MiB");
    gm_format_size(2 * GM_GIB, buf, sizeof(buf));
    cr_assert_str_eq(buf, "2GiB");
}
