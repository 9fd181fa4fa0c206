/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keymgr/cli/cli.h"
#include "keymgr/common/alg.h"
#include "keymgr/common/atomic_file.h"
#include "keymgr/common/error.h"
#include "keymgr/common/suggest.h"

/*
 * Prints "keymgr: <message>" to stderr with control characters shown as '?': messages echo
 * user input (names, kids, paths), and an escape sequence in it must not reach a terminal.
 */
__attribute__((format(printf, 1, 0)))
static void print_message(const char *fmt, va_list ap)
{
	char buf[2048];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	for (unsigned char *p = (unsigned char *)buf; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	fprintf(stderr, "keymgr: %s\n", buf);
}

void km_cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	print_message(fmt, ap);
	va_end(ap);
}

int km_cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	print_message(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help'.\n", cmd);
	return KM_CLI_EXIT_USAGE;
}

int km_cli_help(const char *text)
{
	fputs(text, stdout);
	return KM_CLI_EXIT_OK;
}

/* Prints the usage of a command group to out (stdout for --help, stderr for an error). */
static void print_table(FILE *out, const km_cli_command_t *table, const char *prog,
                        const char *intro)
{
	fprintf(out, "Usage: %s COMMAND [OPTIONS]\n\n", prog);
	if (intro != NULL)
		fprintf(out, "%s\n", intro);
	fprintf(out, "Commands:\n");
	for (const km_cli_command_t *c = table; c->name != NULL; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
	fprintf(out, "\nRun '%s COMMAND --help' for the options of a command.\n", prog);
}

/*
 * keymgr help VERB...: runs VERB... --help, so that both print the same text. argv holds the
 * words after "help".
 */
static int help_verb(const km_cli_command_t *table, const char *prog, const char *intro,
                     int argc, char **argv)
{
	static char help_flag[] = "--help";
	char **v = calloc((size_t)argc + 2, sizeof(*v));
	if (v == NULL) {
		km_cli_error("out of memory");
		return KM_CLI_EXIT_REFUSED;
	}
	memcpy(v, argv, (size_t)argc * sizeof(*v));
	v[argc] = help_flag;
	int rc = km_cli_dispatch(table, prog, intro, argc + 1, v);
	free(v);
	return rc;
}

int km_cli_dispatch(const km_cli_command_t *table, const char *prog, const char *intro,
                    int argc, char **argv)
{
	if (argc < 1) {
		fprintf(stderr, "keymgr: missing command\n");
		print_table(stderr, table, prog, intro);
		return KM_CLI_EXIT_USAGE;
	}
	const char *name = argv[0];
	if (strcmp(name, "help") == 0 && argc > 1)
		return help_verb(table, prog, intro, argc - 1, argv + 1);
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
		print_table(stdout, table, prog, intro);
		return KM_CLI_EXIT_OK;
	}
	for (const km_cli_command_t *c = table; c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return c->run(argc, argv);
	if (name[0] == '-')
		return km_cli_usage_error(prog, "expected a command before options");
	km_suggest_t sg;
	km_suggest_init(&sg, name);
	for (const km_cli_command_t *c = table; c->name != NULL; c++)
		km_suggest_add(&sg, c->name);
	if (km_suggest_best(&sg) != NULL)
		return km_cli_usage_error(prog, "unknown command '%.64s'; did you mean '%s'?", name,
		                          km_suggest_best(&sg));
	return km_cli_usage_error(prog, "unknown command '%.64s'", name);
}

int km_cli_bad_choice(const char *cmd, const char *what, const char *value,
                      const char *const *choices, size_t n)
{
	char list[1024];
	size_t used = 0;
	km_suggest_t sg;
	km_suggest_init(&sg, value);
	list[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(list + used, used < sizeof(list) ? sizeof(list) - used : 0, "%s%s",
		                 i == 0 ? "" : i + 1 == n ? " or " : ", ", choices[i]);
		if (w > 0)
			used += (size_t)w;
		km_suggest_add(&sg, choices[i]);
	}
	if (km_suggest_best(&sg) != NULL)
		return km_cli_usage_error(cmd, "unknown %s '%.32s': expected %s; did you mean '%s'?",
		                          what, value, list, km_suggest_best(&sg));
	return km_cli_usage_error(cmd, "unknown %s '%.32s': expected %s", what, value, list);
}

int km_cli_bad_alg(const char *cmd, const char *what, const char *value)
{
	const char *names[KM_ALG_COUNT];
	for (int a = 1; a <= KM_ALG_COUNT; a++)
		names[a - 1] = km_alg_name((km_alg_t)a);
	return km_cli_bad_choice(cmd, what, value, names, KM_ALG_COUNT);
}

void km_cli_common_init(km_cli_common_t *c)
{
	const char *v;
	memset(c, 0, sizeof(*c));
	c->module = KM_CLI_DEFAULT_MODULE;
	if ((v = secure_getenv("KEYMGR_MODULE")) != NULL && v[0] != '\0')
		c->module = v;
	if ((v = secure_getenv("KEYMGR_TOKEN")) != NULL && v[0] != '\0')
		c->token = v;
	if ((v = secure_getenv("KEYMGR_PIN_SOURCE")) != NULL && v[0] != '\0')
		c->pin_source = v;
	optind = 0; /* full re-initialisation of GNU getopt for this command's argv */
}

/* Name of the long option whose val is v, for messages. */
static const char *long_name(const struct option *opts, int v)
{
	for (const struct option *o = opts; o->name != NULL; o++)
		if (o->val == v)
			return o->name;
	return "?";
}

int km_cli_getopt(int argc, char **argv, const char *cmd, const struct option *opts,
                  km_cli_common_t *c)
{
	for (;;) {
		/* "-": positional arguments come back as 1; ":": missing values as ':'. */
		int o = getopt_long(argc, argv, "-:h", opts, NULL);
		switch (o) {
		case -1:
			return -1;
		case 'h':
		case KM_OPT_HELP:
			c->help = true;
			return -1;
		case KM_OPT_JSON:
			c->json = true;
			break;
		case KM_OPT_MODULE:
			c->module = optarg;
			break;
		case KM_OPT_TOKEN:
			c->token = optarg;
			break;
		case KM_OPT_PIN_SOURCE:
			c->pin_source = optarg;
			break;
		case KM_OPT_SO_PIN_SOURCE:
			c->so_pin_source = optarg;
			break;
		case KM_OPT_FORBIDDEN_PIN:
			km_cli_usage_error(cmd, "a PIN is never accepted on the command line; use "
			                        "--pin-source file:PATH, env:NAME or prompt instead");
			return -2;
		case 1:
			/* Not echoed: a stray word on the command line could be a PIN. */
			km_cli_usage_error(cmd, "unexpected argument at position %d (this command "
			                        "takes options only)", optind - 1);
			return -2;
		case ':':
			/* Every option that takes a value is a long one: optopt is its value. */
			km_cli_usage_error(cmd, "option '--%s' needs a value", long_name(opts, optopt));
			return -2;
		case '?':
			/* optopt: 0 for a long option getopt_long does not know or finds ambiguous,
			 * the option's value for one given "=value" it does not take, the character
			 * of an unknown short option. */
			if (optind > 0 && strncmp(argv[optind - 1], "--", 2) == 0 &&
			    (optopt == 0 || optopt >= 0x80 || strchr(argv[optind - 1], '=') != NULL)) {
				char msg[640];
				km_suggest_option(argv[optind - 1], opts, KM_OPT_FORBIDDEN_PIN, msg,
				                  sizeof(msg));
				km_cli_usage_error(cmd, "%s", msg);
				return -2;
			}
			/* A kid is base64url: one in 64 starts with '-'. */
			km_cli_usage_error(cmd, "unknown option '-%c' (a KID starting with '-' goes "
			                   "after '--')", optopt > 0x20 && optopt < 0x7f ? optopt : '?');
			return -2;
		default:
			return o;
		}
	}
}

bool km_cli_pin_source_ok(const char *src)
{
	if (src == NULL)
		return false;
	if (strncmp(src, "file:", 5) == 0)
		return src[5] != '\0';
	if (strncmp(src, "env:", 4) == 0)
		return src[4] != '\0';
	return strcmp(src, "prompt") == 0;
}

int km_cli_check_token_flags(const km_cli_common_t *c, const char *cmd, bool need_pin)
{
	if (c->token == NULL || c->token[0] == '\0')
		return km_cli_usage_error(cmd, "missing token label: give --token LABEL or set "
		                               "KEYMGR_TOKEN");
	if (strlen(c->token) > 32)
		return km_cli_usage_error(cmd, "token label is longer than 32 characters");
	if (c->module == NULL || c->module[0] == '\0')
		return km_cli_usage_error(cmd, "missing module: give --module PATH");
	if (!need_pin)
		return 0;
	if (c->pin_source == NULL)
		return km_cli_usage_error(cmd, "missing PIN source: give --pin-source SRC or set "
		                               "KEYMGR_PIN_SOURCE");
	/* The value is not echoed: someone may have typed the PIN itself here. */
	if (!km_cli_pin_source_ok(c->pin_source))
		return km_cli_usage_error(cmd, "--pin-source must be file:PATH, env:NAME or prompt");
	return 0;
}

int km_cli_print_json(const json_t *json)
{
	if (json_dumpf(json, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0) {
		km_cli_error("cannot write JSON output");
		return KM_CLI_EXIT_REFUSED;
	}
	fputc('\n', stdout);
	return KM_CLI_EXIT_OK;
}

int km_cli_write_output(const char *path, const char *data, size_t len)
{
	if (path == NULL || strcmp(path, "-") == 0) {
		if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
			km_cli_error("cannot write to standard output: %s", strerror(errno));
			return KM_CLI_EXIT_REFUSED;
		}
		return KM_CLI_EXIT_OK;
	}
	int r = km_file_write_atomic(path, data, len, 0644);
	if (r != KM_EOK) {
		km_cli_error("cannot write %s: %s", path, km_strerror(r));
		return KM_CLI_EXIT_REFUSED;
	}
	return KM_CLI_EXIT_OK;
}

int km_cli_read_arg(const char *arg, size_t max, char **ret, char *err, size_t errlen)
{
	FILE *f = NULL;
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (arg[0] != '@') {
		if (strlen(arg) > max) {
			snprintf(err, errlen, "value is larger than %zu bytes", max);
			return KM_ERANGE;
		}
		if ((buf = strdup(arg)) == NULL)
			return KM_ENOMEM;
		*ret = buf;
		return KM_EOK;
	}
	const char *path = arg + 1;
	bool is_stdin = strcmp(path, "-") == 0;
	if ((f = is_stdin ? stdin : fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
		return KM_EIO;
	}
	if ((buf = malloc(max + 2)) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	len = fread(buf, 1, max + 1, f);
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read '%s'", path);
		r = KM_EIO;
		goto out;
	}
	if (len > max) {
		snprintf(err, errlen, "'%s' is larger than %zu bytes", path, max);
		r = KM_ERANGE;
		goto out;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		snprintf(err, errlen, "'%s' contains a NUL byte", path);
		r = KM_EMALFORMED;
		goto out;
	}
	*ret = buf;
	buf = NULL;
	r = KM_EOK;
out:
	free(buf);
	if (f != NULL && !is_stdin)
		fclose(f);
	return r;
}
