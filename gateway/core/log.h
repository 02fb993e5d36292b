/* log.h - leveled logging to stderr, one line per event, logfmt-style. */
#ifndef INFERGW_LOG_H
#define INFERGW_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* log_set_level - messages below level are dropped. */
void log_set_level(enum log_level level);
/* log_level_parse - "debug"|"info"|"warn"|"error" -> level; -1 when unknown. */
int log_level_parse(const char *s);
bool log_enabled(enum log_level level);
/* log_msg - "2026-11-25T16:54:00.123Z level=info msg..." to stderr; thread-safe. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One kind of log line printed at most once per period (what a client can
 * provoke at will), whatever threads provoke it; zero-initialised. */
struct log_limit {
	_Atomic uint64_t last_ns;	/* when one last printed; 0: never */
	_Atomic uint64_t suppressed;	/* held back since */
};

/*
 * log_limit_ok - whether the line of kind l provoked at now (ns, a
 * monotonic clock) may print: the first always, then one per period_ns.
 * true with *suppressed the number held back since the last one printed;
 * false counts this one among them.
 */
bool log_limit_ok(struct log_limit *l, uint64_t now, uint64_t period_ns, uint64_t *suppressed);

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
