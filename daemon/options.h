/*
 * The options table: every setting said once. options_table.c lists them
 * (name, type, bounds, default, restart-only or reloadable, help text);
 * options.c derives from it the command line, the configuration file's
 * keys, the defaults, what a reload may change and --help, and
 * tests/unit/check_man.py checks the man pages against it (as tmux's
 * options-table.c).
 *
 * For options.c and options_table.c only, on the loop thread (start-up and
 * SIGHUP). The table is constant and static: nothing in it is owned.
 */
#ifndef RV_OPTIONS_H
#define RV_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

enum opt_type {
	OPT_STRING,  /* char *, the last value wins */
	OPT_LIST,    /* char ** and a size_t count: each value adds one */
	OPT_BOOL,    /* bool: yes/no, true/false, on/off, 1/0; as a flag, no value */
	OPT_SIZE,    /* size_t: bytes or a count, k/m/g suffixes; at least min */
	OPT_SECONDS, /* int64_t ms from seconds (fractions allowed); 0 only if min is 0 */
	OPT_CHOICE,  /* an enum: the index of the value among choices */
	OPT_ACTION,  /* a flag only, never a key: it does something */
};

struct opt_def {
	const char *name; /* the flag (--name) and the key (name = ...) */
	enum opt_type type;
	size_t off, size;           /* the field in struct config (FIELD()) */
	size_t count_off;           /* OPT_LIST: the field counting it */
	size_t min;                 /* OPT_SIZE: least value; OPT_SECONDS: 1 if 0 is refused */
	const char *const *choices; /* OPT_CHOICE: the names, NULL-terminated */
	bool (*valid)(const char *value); /* strings and lists: NULL takes any non-empty value */
	bool empty_unsets;                /* OPT_STRING: an empty value means none (metrics = ) */
	const char *def;                  /* the default, written as a value would be; NULL: none */
	bool restart;                     /* only a restart changes it; else SIGHUP does */
	const char *section;              /* --help: the heading this option starts, or NULL */
	const char *arg;                  /* --help: the value's name, or NULL for none */
	const char *help;                 /* --help: what it does */
	const char *help_default;         /* --help: the default, when def does not say it */
	const char *expect; /* the error for a value the type takes but valid() refuses */
};

extern const struct opt_def options_table[];
extern const size_t options_count;

#endif
