/*
 * Levelled logging to stderr. Every function keeps errno.
 *
 * Nothing is returned to own (level names are static). Any thread: the
 * store's checkpointer thread logs too, and its lines may
 * interleave with the loop's (stdio locks stderr per call, not per line).
 */
#ifndef RV_LOG_H
#define RV_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* The levels' names, by level, NULL-terminated. */
extern const char *const log_level_names[];
const char *log_level_name(enum log_level level);
/* Parse "error", "warn", "info" or "debug"; 0 on success, -1 otherwise. */
int log_level_from_name(const char *name, enum log_level *level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Log an error and exit(1). For start-up only. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                         \
	do {                                                   \
		if (log_get_level() >= LOG_LEVEL_DEBUG)        \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
