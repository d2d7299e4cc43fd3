/* Sizes, percentages, names and configuration values. */
#include "common/parse.h"
#include "daemon/config.h"

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

Test(config, defaults_file_and_errors)
{
    struct gm_config c;
    struct gm_error err;
    gm_config_defaults(&c);
    cr_assert_str_eq(c.state_dir, "/var/lib/gpumux");
    cr_assert_eq(c.stop_timeout_s, 10);
    char path[] = "/tmp/gm-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "state_dir: /tmp/x\nplacement: spread\nmemory_reserve: 256M\n");
    fclose(f);
    cr_assert_eq(gm_config_load(&c, path, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c.state_dir, "/tmp/x");
    cr_assert_str_eq(c.placement, "spread");
    cr_assert_eq(c.memory_reserve, 256 * GM_MIB);

    f = fopen(path, "w");
    fprintf(f, "state_dir: /tmp/x\nbogus_key: 1\n");
    fclose(f);
    cr_assert_eq(gm_config_load(&c, path, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, ":2: unknown setting 'bogus_key'") != NULL, "%s", err.msg);

    f = fopen(path, "w");
    fprintf(f, "stop_timeout: 99999\n");
    fclose(f);
    cr_assert_eq(gm_config_load(&c, path, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "out of range") != NULL, "%s", err.msg);

    f = fopen(path, "w");
    fprintf(f, "state_dir: [unclosed\n");
    fclose(f);
    cr_assert_eq(gm_config_load(&c, path, &err), -GM_EINVAL);

    /* libfyaml 0.7 never returns from a directive with a stray byte: refused before it. */
    f = fopen(path, "w");
    fprintf(f, "driver: sim\n%%\x9a");
    fclose(f);
    cr_assert_eq(gm_config_load(&c, path, &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, ":2: not UTF-8 text (byte 0x9a)") != NULL, "%s", err.msg);
    unlink(path);

    gm_config_defaults(&c);
    cr_assert_eq(gm_config_set(&c, "driver", "cuda", "--driver", &err), 0);
    cr_assert_eq(gm_config_finish(&c, "/usr/bin", &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "not one of auto, nvml, sim") != NULL, "%s", err.msg);
}

Test(config, log_limits_are_bounded_and_logs_live_apart)
{
    struct gm_config c;
    struct gm_error err;
    gm_config_defaults(&c);
    cr_assert_str_eq(c.log_dir, "/var/log/gpumux");
    cr_assert_str_neq(c.log_dir, c.state_dir);
    cr_assert_eq(c.log_max_size, 10 * GM_MIB);
    cr_assert_eq(c.log_max_files, 3);
    cr_assert_eq(gm_config_set(&c, "log-max-size", "64K", "--log-max-size", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(c.log_max_size, 64 * 1024);
    /* No setting makes a log unbounded or empty. */
    cr_assert_eq(gm_config_set(&c, "log_max_size", "1K", "test", &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "log_max_size: '1K' is out of range") != NULL, "%s", err.msg);
    cr_assert_eq(gm_config_set(&c, "log_max_size", "0", "test", &err), -GM_EINVAL);
    cr_assert_eq(gm_config_set(&c, "log_max_size", "2T", "test", &err), -GM_EINVAL);
    cr_assert_eq(gm_config_set(&c, "log_max_files", "101", "test", &err), -GM_EINVAL);
    cr_assert_eq(gm_config_set(&c, "log_max_files", "-1", "test", &err), -GM_EINVAL);
    cr_assert_eq(gm_config_set(&c, "log_max_files", "0", "test", &err), 0);
    cr_assert_eq(c.log_max_size, 64 * 1024, "a refused value changes nothing");
    /* The memory reserve, a size without bounds, still takes 0. */
    cr_assert_eq(gm_config_set(&c, "memory_reserve", "0", "test", &err), 0);
    cr_assert_eq(gm_config_set(&c, "log_dir", "logs", "test", &err), 0);
    cr_assert_eq(gm_config_finish(&c, "/usr/bin", &err), -GM_EINVAL);
    cr_assert(strstr(err.msg, "log_dir must be absolute") != NULL, "%s", err.msg);
}
