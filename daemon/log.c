/*
 * Levelled logging to stderr, one line per message, errno preserved. When
 * stderr is systemd's journal, lines carry syslog priorities ("<3>") instead
 * of a time stamp, so that the journal keeps the levels (sd-daemon(3)).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"

/* Changed on the loop at reload, read by every thread. */
static _Atomic(enum log_level) current = LOG_LEVEL_INFO;
const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const int priorities[] = {3, 4, 6, 7}; /* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static int journal = -1;                      /* whether stderr is the journal; -1: not known yet */

/* Whether stderr is the stream $JOURNAL_STREAM names (systemd.exec(5)). */
static int
log_to_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;

	return env != NULL && sscanf(env, "%llu:%llu", &dev, &ino) == 2 &&
	       fstat(fileno(stderr), &sb) == 0 && (unsigned long long)sb.st_dev == dev &&
	       (unsigned long long)sb.st_ino == ino;
}

void
log_set_level(enum log_level level)
{
	atomic_store_explicit(&current, level, memory_order_relaxed);
	if (journal < 0)
		journal = log_to_journal(); /* at start-up, before any thread logs */
}

enum log_level
log_get_level(void)
{
	return atomic_load_explicit(&current, memory_order_relaxed);
}

const char *
log_level_name(enum log_level level)
{
	return log_level_names[level];
}

int
log_level_from_name(const char *name, enum log_level *level)
{
	for (unsigned i = 0; log_level_names[i] != NULL; i++) {
		if (strcmp(name, log_level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char stamp[32];
	struct timespec ts;
	struct tm tm;

	if (journal < 0)
		journal = log_to_journal();
	flockfile(stderr); /* one whole line, also from the store's checkpoint thread */
	if (journal) {
		/* The journal stamps the time and names the program itself. */
		fprintf(stderr, "<%d>%s: ", priorities[level], log_level_names[level]);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ rendezvousd %s: ", stamp, ts.tv_nsec / 1000000,
			log_level_names[level]);
	}
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (level > log_get_level()) {
		errno = saved;
		return;
	}
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
