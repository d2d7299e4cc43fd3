/* Logging to stderr (the daemon's journal) with a level threshold. */
#ifndef GM_COMMON_LOG_H
#define GM_COMMON_LOG_H

enum gm_log_level { GM_LOG_DEBUG, GM_LOG_INFO, GM_LOG_WARN, GM_LOG_ERROR };

void gm_log_set_level(enum gm_log_level level);
int gm_log_parse_level(const char *s, enum gm_log_level *out); /* 0 or -GM_EINVAL */
void gm_log(enum gm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define gm_debug(...) gm_log(GM_LOG_DEBUG, __VA_ARGS__)
#define gm_info(...)  gm_log(GM_LOG_INFO, __VA_ARGS__)
#define gm_warn(...)  gm_log(GM_LOG_WARN, __VA_ARGS__)
#define gm_error(...) gm_log(GM_LOG_ERROR, __VA_ARGS__)

#endif
