/* log.h - leveled logging to stderr, one line per event, logfmt-style. */
#ifndef INFERGW_LOG_H
#define INFERGW_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* log_set_level - messages below level are dropped. */
void log_set_level(enum log_level level);
/* log_level_parse - "debug"|"info"|"warn"|"error" -> level; -1 when unknown. */
int log_level_parse(const char *s);
bool log_enabled(enum log_level level);
/* log_msg - "2026-11-25T16:54:00.123Z level=info msg..." to stderr; thread-safe. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
