/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared pieces of the keymgr command line: the command table type, option parsing on top of
 * getopt_long, the token flags every token verb accepts, error output and exit codes.
 *
 * Exit codes: 0 success, 1 refused operation or failed check, 2 usage error.
 * Errors go to stderr as "keymgr: <message>". --help prints usage to stdout and exits 0.
 */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define KM_CLI_EXIT_OK 0
#define KM_CLI_EXIT_REFUSED 1
#define KM_CLI_EXIT_USAGE 2

#define KM_CLI_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

/*
 * One entry of a command table. run() gets argv[0] = the command's own name and returns an
 * exit code. Tables end with an entry whose name is NULL.
 */
typedef struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;  /* one line for the parent's --help */
} km_cli_command_t;

/*
 * Runs the entry of table named argv[0] with the remaining arguments. prog is the full
 * command prefix for messages ("keymgr", "keymgr token"). "--help", "-h" or "help" print
 * the table (with intro, if given) to stdout and return 0; "help VERB..." runs
 * "VERB... --help". No or an unknown command is a usage error (2), naming the closest
 * command when one is close enough.
 */
int km_cli_dispatch(const km_cli_command_t *table, const char *prog, const char *intro,
                    int argc, char **argv);

/*
 * Usage error for an enumerated value outside its list ("unknown <what> 'activ': expected
 * generated, published, ... or revoked; did you mean 'active'?"): names the value (cut at 32
 * characters), every valid one and the closest. Returns KM_CLI_EXIT_USAGE.
 */
int km_cli_bad_choice(const char *cmd, const char *what, const char *value,
                      const char *const *choices, size_t n);

/* km_cli_bad_choice() for an algorithm: lists the JOSE names keymgr signs with. */
int km_cli_bad_alg(const char *cmd, const char *what, const char *value);

/* Prints "keymgr: <message>\n" to stderr. */
void km_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "keymgr: <message>\nTry '<cmd> --help'.\n" to stderr and returns KM_CLI_EXIT_USAGE. */
int km_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Option values shared by all commands; command-specific options use values below 0x100. */
enum {
	KM_OPT_HELP = 0x100,
	KM_OPT_JSON,
	KM_OPT_MODULE,
	KM_OPT_TOKEN,
	KM_OPT_PIN_SOURCE,
	KM_OPT_SO_PIN_SOURCE,
	KM_OPT_FORBIDDEN_PIN,   /* --pin / --so-pin / --user-pin: refused, never read */
};

/* getopt_long table entries for the options above (spread into a command's table). */
#define KM_CLI_OPTS_COMMON                                                   \
	{ "help", no_argument, NULL, KM_OPT_HELP },                          \
	{ "json", no_argument, NULL, KM_OPT_JSON },                          \
	{ "pin", optional_argument, NULL, KM_OPT_FORBIDDEN_PIN },            \
	{ "so-pin", optional_argument, NULL, KM_OPT_FORBIDDEN_PIN },         \
	{ "user-pin", optional_argument, NULL, KM_OPT_FORBIDDEN_PIN }
#define KM_CLI_OPTS_TOKEN                                                    \
	{ "module", required_argument, NULL, KM_OPT_MODULE },                \
	{ "token", required_argument, NULL, KM_OPT_TOKEN },                  \
	{ "pin-source", required_argument, NULL, KM_OPT_PIN_SOURCE }

/* Values of the common and token options after parsing. */
typedef struct {
	bool help;
	bool json;
	const char *module;         /* --module, $KEYMGR_MODULE, or KM_CLI_DEFAULT_MODULE */
	const char *token;          /* --token or $KEYMGR_TOKEN */
	const char *pin_source;     /* --pin-source or $KEYMGR_PIN_SOURCE */
	const char *so_pin_source;  /* --so-pin-source (token init only) */
} km_cli_common_t;

/* Fills defaults, including the KEYMGR_* environment variables (read with secure_getenv). */
void km_cli_common_init(km_cli_common_t *c);

/*
 * Iterates over argv like getopt_long (call until it returns -1), handling the common and
 * token options itself. Returns the next command-specific option, -1 at the end, or
 * -2 after printing a usage error (unknown option with the closest known one, ambiguous
 * abbreviation with its candidates, missing or unwanted value, --pin, a positional
 * argument). The offending option is named, but never a value that might be a secret.
 */
int km_cli_getopt(int argc, char **argv, const char *cmd, const struct option *opts,
                  km_cli_common_t *c);

/*
 * Checks that a PIN source has one of the accepted forms (file:PATH, env:NAME, prompt)
 * without printing its value. Returns true when it does.
 */
bool km_cli_pin_source_ok(const char *src);

/*
 * Checks the token flags a verb needs (token label, pin source when need_pin), printing a
 * usage error naming the missing one. Returns 0 or KM_CLI_EXIT_USAGE.
 */
int km_cli_check_token_flags(const km_cli_common_t *c, const char *cmd, bool need_pin);

/* Prints text to stdout and returns KM_CLI_EXIT_OK (for --help). */
int km_cli_help(const char *text);

/* Prints json compactly plus a newline to stdout. Returns 0 or KM_CLI_EXIT_REFUSED. */
int km_cli_print_json(const json_t *json);

/*
 * Writes a document made in memory (a picture, a page) to stdout when path is NULL or "-",
 * else to the file path, atomically (mode 0644): a failed write leaves no half file and an
 * earlier file of that name as it was. Prints the error naming the file. Returns 0 or
 * KM_CLI_EXIT_REFUSED.
 */
int km_cli_write_output(const char *path, const char *data, size_t len);


/*
 * Reads a value that is either literal text or "@FILE" ("@-" for stdin), at most max bytes.
 * *ret is malloc'd and NUL-terminated. Writes a message naming the file into err on failure.
 * Returns KM_EOK, KM_EIO, KM_ERANGE (too large), KM_EMALFORMED (NUL byte), KM_ENOMEM.
 */
int km_cli_read_arg(const char *arg, size_t max, char **ret, char *err, size_t errlen);
