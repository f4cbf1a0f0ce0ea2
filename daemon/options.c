/*
 * Settings: defaults, the configuration file, command-line flags, --help and
 * --version, all derived from the table in options_table.c. Every setting is
 * a flag and a key of the same name in the file; flags win. SIGHUP loads
 * them again (options_load_next()), keeping what only a restart changes.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <ini.h>
#include <jansson.h>
#include <sqlite3.h>

#include "config.h"
#include "options.h"
#include "notify.h"
#include "rendezvous.h"
#include "util.h"

/* The file read when --config is not given (systemd's ConfigurationDirectory= first). */
#define CONFIG_DIR_DEFAULT "/etc/rendezvous"
#define CONFIG_NAME "rendezvousd.conf"

struct config config;

/* Loaded lists may hold this many options at most (options_table.c has fewer). */
#define OPTIONS_MAX 64

/* The index of the option named name in options_table, or -1. */
static int
opt_find(const char *name)
{
	for (size_t i = 0; i < options_count; i++) {
		if (strcmp(options_table[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

/* A field of cfg, as the table places it. */
static void *
opt_field(const struct config *cfg, size_t off)
{
	return (char *)cfg + off;
}

/* The flags given, kept for reloads: flags win over the file every time. */
struct flag {
	int id;
	char *value; /* NULL for a flag without a value */
};
static struct flag *flags;
static size_t nflags;
static char *config_path;    /* the file to read */
static bool config_explicit; /* named by --config: it must exist */

/* One load of the settings: where values come from, and how errors are told. */
struct loader {
	struct config *cfg;
	const char *file; /* while reading the file; NULL while applying flags */
	FILE *f;
	int line;    /* the file's line being read */
	bool reload; /* errors go to the log, not to stderr */
	int errors;
	struct loader_msg {
		int line;
		char *text;
	} * msgs; /* the file's errors, told in line order once it is read */
	size_t nmsgs;
	char bad_section[64];     /* the unknown section last reported */
	bool listed[OPTIONS_MAX]; /* a list flag was given: it replaces the file's list */
};
/*
 * Every restart-only option's name, "a, b and c", for --help and the log.
 * Built once from the table; static.
 */
static const char *
restart_only(void)
{
	static char names[512];
	size_t n = 0, count = 0, seen = 0;

	if (names[0] != '\0')
		return names;
	for (size_t i = 0; i < options_count; i++)
		count += options_table[i].restart;
	for (size_t i = 0; i < options_count && n < sizeof names; i++) {
		if (!options_table[i].restart)
			continue;
		seen++;
		n += (size_t)snprintf(names + n, sizeof names - n, "%s%s",
				      seen == 1       ? ""
				      : seen == count ? " and "
						      : ", ",
				      options_table[i].name);
	}
	return names;
}

/*
 * Write text to f from column col, wrapped at 80 columns, further lines
 * indented by indent. A '\1' is a space that does not break.
 */
static void
wrap(FILE *f, const char *text, int col, int indent)
{
	bool first = true; /* of its line */

	while (*text != '\0') {
		size_t word = strcspn(text, " ");

		if (!first && col + 1 + (int)word > 80) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
			first = true;
		}
		if (!first) {
			fputc(' ', f);
			col++;
		}
		for (size_t i = 0; i < word; i++)
			fputc(text[i] == '\1' ? ' ' : text[i], f);
		col += (int)word;
		first = false;
		text += word;
		text += strspn(text, " ");
	}
	fputc('\n', f);
}

/* --help: every option of the table, in its order and sections. */
static void
usage(FILE *f)
{
	enum { TEXT_COL = 28 };

	fputs("Usage: rendezvousd [OPTION]...\n"
	      "Track invitations between two parties and broadcast every state change,\n"
	      "speaking JSON-RPC 2.0, one message per line, over TCP (proto/PROTOCOL.md).\n"
	      "\n",
	      f);
	for (size_t i = 0; i < options_count; i++) {
		const struct opt_def *o = &options_table[i];
		const char *def = o->help_default != NULL ? o->help_default : o->def;
		char lead[96], text[1024];
		int n;

		if (o->section != NULL)
			fprintf(f, "%s\n", o->section);
		n = snprintf(lead, sizeof lead, "  --%s%s%s", o->name, o->arg != NULL ? " " : "",
			     o->arg != NULL ? o->arg : "");
		snprintf(text, sizeof text, "%s%s%s%s", o->help, def != NULL ? " [default:\1" : "",
			 def != NULL ? def : "", def != NULL ? "]" : "");
		if (n < TEXT_COL) {
			fprintf(f, "%-*s", TEXT_COL, lead);
			wrap(f, text, TEXT_COL, TEXT_COL);
		} else {
			fprintf(f, "%s\n%*s", lead, TEXT_COL, "");
			wrap(f, text, TEXT_COL, TEXT_COL);
		}
	}
	fputs("\n", f);
	{
		char footer[1024];
		snprintf(footer, sizeof footer,
			 "SIGHUP reloads the configuration file, keys and certificates without "
			 "dropping a connection (%s change only at a restart). SIGTERM or SIGINT "
			 "stops accepting, sends clients server.shutdown, flushes, and exits 0.",
			 restart_only());
		wrap(f, footer, 0, 0);
	}
}

static const char *
option_name(int id)
{
	return id >= 0 && (size_t)id < options_count ? options_table[id].name : "?";
}

/* Report one error: "FILE:LINE: ..." from the file, "--name ..." from flags. */
static void loader_error(struct loader *ld, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void loader_tell(const struct loader *ld, const char *where, const char *msg);

static void
loader_error(struct loader *ld, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	ld->errors++;
	if (ld->file != NULL) {
		struct loader_msg *grown = realloc(ld->msgs, (ld->nmsgs + 1) * sizeof *ld->msgs);
		if (grown == NULL || (grown[ld->nmsgs].text = strdup(msg)) == NULL)
			fatal("out of memory");
		grown[ld->nmsgs].line = ld->line;
		ld->msgs = grown;
		ld->nmsgs++;
		return;
	}
	loader_tell(ld, "", msg);
}

static void
loader_tell(const struct loader *ld, const char *where, const char *msg)
{
	if (ld->reload)
		log_error("reload: %s%s", where, msg);
	else
		fprintf(stderr, "rendezvousd: %s%s\n", where, msg);
}

static int
loader_msg_cmp(const void *a, const void *b)
{
	const struct loader_msg *x = a, *y = b;

	return (x->line > y->line) - (x->line < y->line);
}

/* Tell the file's errors in line order (inih reports syntax errors last). */
static void
loader_tell_file(struct loader *ld)
{
	if (ld->nmsgs > 1)
		qsort(ld->msgs, ld->nmsgs, sizeof *ld->msgs, loader_msg_cmp);
	for (size_t i = 0; i < ld->nmsgs; i++) {
		char where[300];
		snprintf(where, sizeof where, "%s:%d: ", ld->file, ld->msgs[i].line);
		loader_tell(ld, where, ld->msgs[i].text);
		free(ld->msgs[i].text);
	}
	free(ld->msgs);
	ld->msgs = NULL;
	ld->nmsgs = 0;
}

static void
bad_value(struct loader *ld, int id, const char *value, const char *expect)
{
	loader_error(ld, "invalid value '%s' for %s%s: %s", value, ld->file != NULL ? "" : "--",
		     option_name(id), expect);
}

static int64_t
opt_seconds(struct loader *ld, int id, const char *value, bool zero_ok, int64_t old)
{
	int64_t ms;

	if (parse_seconds_ms(value, &ms) != 0 || (!zero_ok && ms == 0)) {
		bad_value(ld, id, value,
			  zero_ok ? "expected seconds >= 0" : "expected seconds > 0");
		return old;
	}
	return ms;
}

static size_t
opt_size(struct loader *ld, int id, const char *value, size_t min, size_t old)
{
	size_t v;

	if (parse_size(value, &v) != 0 || v < min) {
		char expect[64];
		snprintf(expect, sizeof expect, "expected a number >= %zu", min);
		bad_value(ld, id, value, expect);
		return old;
	}
	return v;
}

static bool
opt_bool(struct loader *ld, int id, const char *value, bool old)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(value, yes[i]) == 0)
			return true;
		if (strcasecmp(value, no[i]) == 0)
			return false;
	}
	bad_value(ld, id, value, "expected yes or no");
	return old;
}

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		fatal("out of memory");
	return d;
}

/* Replace a string setting's value (the last one wins). */
static void
set_string(char **dst, const char *value)
{
	free(*dst);
	*dst = xstrdup(value);
}

static void
free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/*
 * Add to a list setting. The file's lines add up; so do flags, but the first
 * flag of a list drops what the file gave it.
 */
static void
push(struct loader *ld, int id, char ***list, size_t *n, const char *value)
{
	char **l;

	if (ld->file == NULL && !ld->listed[id]) {
		ld->listed[id] = true;
		free_list(*list, *n);
		*list = NULL;
		*n = 0;
	}
	l = realloc(*list, (*n + 1) * sizeof **list);
	if (l == NULL || (l[*n] = strdup(value)) == NULL)
		fatal("out of memory");
	*list = l;
	(*n)++;
}

/* "expected a, b or c" for a choice. */
static void
bad_choice(struct loader *ld, int id, const char *value)
{
	const char *const *ch = options_table[id].choices;
	char expect[256];
	size_t n = (size_t)snprintf(expect, sizeof expect, "expected");

	for (size_t i = 0; ch[i] != NULL && n < sizeof expect; i++)
		n += (size_t)snprintf(expect + n, sizeof expect - n, "%s%s",
				      i == 0              ? " "
				      : ch[i + 1] == NULL ? " or "
							  : ", ",
				      ch[i]);
	bad_value(ld, id, value, expect);
}

/* Set option id from a flag, a line of the file or the table's default. */
static void
apply(struct loader *ld, int id, const char *value)
{
	const struct opt_def *o = &options_table[id];
	struct config *cfg = ld->cfg;
	void *field = opt_field(cfg, o->off);

	switch (o->type) {
	case OPT_STRING:
		if (o->empty_unsets && *value == '\0') {
			free(*(char **)field);
			*(char **)field = NULL;
		} else if (o->valid != NULL && !o->valid(value)) {
			bad_value(ld, id, value, o->expect);
		} else {
			set_string(field, value);
		}
		break;
	case OPT_LIST:
		if (o->valid != NULL && !o->valid(value))
			bad_value(ld, id, value, o->expect);
		else
			push(ld, id, field, opt_field(cfg, o->count_off), value);
		break;
	case OPT_BOOL: *(bool *)field = opt_bool(ld, id, value, *(bool *)field); break;
	case OPT_SIZE: *(size_t *)field = opt_size(ld, id, value, o->min, *(size_t *)field); break;
	case OPT_SECONDS:
		*(int64_t *)field = opt_seconds(ld, id, value, o->min == 0, *(int64_t *)field);
		break;
	case OPT_CHOICE:
		for (int i = 0; o->choices[i] != NULL; i++) {
			if (strcmp(value, o->choices[i]) == 0) {
				memcpy(field, &i, sizeof i); /* an enum (its size is checked) */
				return;
			}
		}
		bad_choice(ld, id, value);
		break;
	case OPT_ACTION:
		if (o->size == sizeof(bool))
			*(bool *)field = true;
		break;
	}
}

/* Which settings a file may hold: every one but the actions. */
static int
key_id(const char *name)
{
	int id = opt_find(name);

	return id >= 0 && options_table[id].type != OPT_ACTION ? id : -1;
}

/* inih's reader: one line at a time, counted, and none cut short silently. */
static char *
config_read_line(char *buf, int size, void *stream)
{
	struct loader *ld = stream;
	FILE *f = ld->f;
	size_t len;

	if (fgets(buf, size, f) == NULL)
		return NULL;
	ld->line++;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] != '\n' && !feof(f)) {
		int ch;
		/* inih's line buffer, as Debian builds it, holds 198 bytes and a newline. */
		loader_error(ld, "line longer than %d bytes", size - 2);
		while ((ch = fgetc(f)) != EOF && ch != '\n')
			;
		buf[0] = '\0'; /* skip the rest of it */
	}
	return buf;
}

static int
config_on_key(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	int id;

	if (*section != '\0' && strcmp(section, "rendezvousd") != 0) {
		/* Once per section, at its first setting. */
		if (strncmp(ld->bad_section, section, sizeof ld->bad_section - 1) != 0) {
			snprintf(ld->bad_section, sizeof ld->bad_section, "%s", section);
			loader_error(ld,
				     "unknown section [%s] (settings go before any section, "
				     "or in [rendezvousd])",
				     section);
		}
		return 1;
	}
	id = key_id(name);
	if (id < 0) {
		loader_error(ld, "unknown setting '%s'", name);
		return 1;
	}
	apply(ld, id, value);
	return 1;
}

/* Read the configuration file. A missing file is fine unless --config named it. */
static void
config_read(struct loader *ld)
{
	FILE *f = fopen(config_path, "r");
	int rc;

	if (f == NULL) {
		if (errno == ENOENT && !config_explicit)
			return;
		loader_error(ld, "cannot read the configuration file %s: %s", config_path,
			     strerror(errno));
		return;
	}
	ld->file = config_path;
	ld->line = 0;
	ld->f = f;
	rc = ini_parse_stream(config_read_line, ld, config_on_key, ld);
	ld->f = NULL;
	if (rc > 0) {
		/* The first line inih could not parse (it counts lines as the reader does). */
		ld->line = rc;
		loader_error(ld, "expected 'key = value' or '[section]'");
	} else if (rc < 0) {
		loader_error(ld, "cannot read the configuration file: out of memory");
	}
	if (ferror(f))
		loader_error(ld, "cannot read the configuration file: %s", strerror(errno));
	fclose(f);
	loader_tell_file(ld);
	ld->file = NULL;
}

/* The table's defaults: each applied as if given. */
static void
config_defaults(struct config *cfg)
{
	struct loader ld = {.cfg = cfg};

	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < options_count; i++) {
		if (options_table[i].def != NULL)
			apply(&ld, (int)i, options_table[i].def);
	}
	if (ld.errors != 0)
		fatal("options_table.c: a default is not a valid value");
}

/* Checks across settings, and the defaults that depend on others. */
static void
config_complete(struct loader *ld)
{
	struct config *cfg = ld->cfg;

	if (cfg->auth == AUTH_NONE && cfg->njwt_keys > 0)
		loader_error(ld, "jwt-key needs auth jwt");
	if (cfg->max_request_burst == 0)
		cfg->max_request_burst = cfg->max_request_rate;
	if (cfg->max_hello_line > cfg->max_line)
		cfg->max_hello_line = cfg->max_line;
	if (cfg->invite_ttl_ms > cfg->max_ttl_ms)
		cfg->max_ttl_ms = cfg->invite_ttl_ms;
	if (cfg->store_timeout_ms <= 0)
		loader_error(ld, "store-timeout must be above 0");
	if (cfg->nlisten == 0 && cfg->nlisten_tls == 0 && cfg->nlisten_ws == 0 &&
	    cfg->nlisten_wss == 0) {
		int id = opt_find("listen");
		ld->listed[id] = true;
		cfg->listen_default = true;
		/* Both loopbacks, as Redis 7's "bind 127.0.0.1 -::1": ::1 where IPv6 is on. */
		push(ld, id, &cfg->listen, &cfg->nlisten, "127.0.0.1:" RV_DEFAULT_PORT_STR);
		push(ld, id, &cfg->listen, &cfg->nlisten, "[::1]:" RV_DEFAULT_PORT_STR);
	}
	if (cfg->state_dir == NULL) {
		/* systemd's StateDirectory= (the first, if it names several). */
		const char *env = getenv("STATE_DIRECTORY");
		size_t n = env != NULL ? strcspn(env, ":") : 0;
		cfg->state_dir = n > 0 ? strndup(env, n) : strdup("/var/lib/rendezvous");
		if (cfg->state_dir == NULL)
			fatal("out of memory");
	}
}

/* Fill cfg: defaults, then the file, then the flags. -1 after reporting every error. */
static int
config_load(struct config *cfg, bool reload)
{
	struct loader ld = {.cfg = cfg, .reload = reload};

	config_defaults(cfg);
	config_read(&ld);
	for (size_t i = 0; i < nflags; i++)
		apply(&ld, flags[i].id, flags[i].value != NULL ? flags[i].value : "yes");
	config_complete(&ld);
	return ld.errors == 0 ? 0 : -1;
}

static void
config_free(struct config *cfg)
{
	for (size_t i = 0; i < options_count; i++) {
		const struct opt_def *o = &options_table[i];
		void *field = opt_field(cfg, o->off);

		if (o->type == OPT_STRING)
			free(*(char **)field);
		else if (o->type == OPT_LIST)
			free_list(*(char ***)field, *(size_t *)opt_field(cfg, o->count_off));
	}
	memset(cfg, 0, sizeof *cfg);
}

static void
print_version(void)
{
	printf("rendezvousd %s (libevent %s, jansson %s, sqlite %s, systemd notify %s)\n",
	       RV_VERSION, event_get_version(), jansson_version_str(), sqlite3_libversion(),
	       notify_supported() ? "yes" : "no");
}

/* The table's check of itself: what the code relies on. */
static void
options_check_table(void)
{
	if (options_count > OPTIONS_MAX)
		fatal("options_table.c: more than %d options", OPTIONS_MAX);
	for (size_t i = 0; i < options_count; i++) {
		const struct opt_def *o = &options_table[i];
		if (o->type == OPT_CHOICE && o->size != sizeof(int))
			fatal("options_table.c: %s: a choice must be an enum", o->name);
	}
}

void
options_parse(int argc, char **argv)
{
	struct option long_options[OPTIONS_MAX + 1] = {{0}};
	int c, config_id = opt_find("config"), help_id = opt_find("help"),
	       version_id = opt_find("version");

	options_check_table();
	for (size_t i = 0; i < options_count; i++) {
		const struct opt_def *o = &options_table[i];
		long_options[i].name = o->name;
		long_options[i].has_arg = o->arg != NULL ? required_argument : no_argument;
		long_options[i].val = (int)i + 256;
	}
	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		struct flag *grown;

		if (c == '?' || c == ':' || c < 256) {
			fprintf(stderr, "Try 'rendezvousd --help'.\n");
			exit(2);
		}
		c -= 256;
		if (c == help_id) {
			usage(stdout);
			exit(0);
		}
		if (c == version_id) {
			print_version();
			exit(0);
		}
		if (c == config_id) {
			free(config_path);
			config_path = xstrdup(optarg);
			config_explicit = true;
			continue;
		}
		grown = realloc(flags, (nflags + 1) * sizeof *flags);
		if (grown == NULL)
			fatal("out of memory");
		flags = grown;
		flags[nflags].id = c;
		flags[nflags].value = optarg != NULL ? xstrdup(optarg) : NULL;
		nflags++;
	}
	if (optind < argc) {
		fprintf(stderr,
			"rendezvousd: unexpected argument '%s'\nTry 'rendezvousd --help'.\n",
			argv[optind]);
		exit(2);
	}
	if (config_path == NULL) {
		/* systemd's ConfigurationDirectory= (the first, if it names several). */
		const char *env = getenv("CONFIGURATION_DIRECTORY");
		size_t n = env != NULL ? strcspn(env, ":") : 0;
		char buf[4096];

		snprintf(buf, sizeof buf, "%.*s/%s",
			 n > 0 ? (int)n : (int)strlen(CONFIG_DIR_DEFAULT),
			 n > 0 ? env : CONFIG_DIR_DEFAULT, CONFIG_NAME);
		config_path = xstrdup(buf);
	}
	if (config_load(&config, false) != 0) {
		bool check = false;
		for (size_t i = 0; i < nflags; i++)
			check = check || flags[i].id == opt_find("check-config");
		if (!check)
			fprintf(stderr, "Try 'rendezvousd --help'.\n");
		exit(check ? 1 : 2);
	}
	log_set_level(config.log_level);
}

const char *
options_config_path(void)
{
	return config_path;
}

static bool
lists_equal(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		if (strcmp(a[i], b[i]) != 0)
			return false;
	}
	return true;
}

static bool
strings_equal(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether option o has the same value in a and b. */
static bool
opt_equal(const struct opt_def *o, const struct config *a, const struct config *b)
{
	const void *x = opt_field(a, o->off), *y = opt_field(b, o->off);

	switch (o->type) {
	case OPT_STRING: return strings_equal(*(char *const *)x, *(char *const *)y);
	case OPT_LIST:
		return lists_equal(*(char **const *)x, *(const size_t *)opt_field(a, o->count_off),
				   *(char **const *)y, *(const size_t *)opt_field(b, o->count_off));
	default: return memcmp(x, y, o->size) == 0;
	}
}

/* Swap a field of a and b. */
static void
field_swap(struct config *a, struct config *b, size_t off, size_t size)
{
	unsigned char tmp[sizeof(struct config)];

	memcpy(tmp, opt_field(a, off), size);
	memcpy(opt_field(a, off), opt_field(b, off), size);
	memcpy(opt_field(b, off), tmp, size);
}

/* Keep what only a restart changes, warning when the new settings differ. */
static void
keep_restart_only(struct config *next, struct config *cur)
{
	bool changed = false;

	for (size_t i = 0; i < options_count; i++)
		changed = changed ||
			  (options_table[i].restart && !opt_equal(&options_table[i], next, cur));
	if (changed)
		log_warn("reload: a setting among %s changed; it takes effect at the next start",
			 restart_only());
	/* next takes the values in use; cur, about to be freed, takes next's. */
	for (size_t i = 0; i < options_count; i++) {
		const struct opt_def *o = &options_table[i];
		if (!o->restart)
			continue;
		field_swap(next, cur, o->off, o->size);
		if (o->type == OPT_LIST)
			field_swap(next, cur, o->count_off, sizeof(size_t));
	}
	field_swap(next, cur, offsetof(struct config, listen_default), sizeof(bool));
}

int
options_load_next(struct config *next)
{
	if (config_load(next, true) != 0) {
		config_free(next);
		return -1;
	}
	return 0;
}

void
options_use(struct config *next)
{
	keep_restart_only(next, &config);
	config_free(&config);
	config = *next;
	memset(next, 0, sizeof *next);
	log_set_level(config.log_level);
}

void
options_discard(struct config *next)
{
	config_free(next);
}

void
options_finish(void)
{
	config_free(&config);
	for (size_t i = 0; i < nflags; i++)
		free(flags[i].value);
	free(flags);
	flags = NULL;
	nflags = 0;
	free(config_path);
	config_path = NULL;
	config_explicit = false;
}
