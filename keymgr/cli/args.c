/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <string.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/common/name.h"
#include "keymgr/jose/jwk.h"

/*
 * True when the long option named by arg ("--name" or "--name=value") needs the next word.
 * Like getopt_long, an exact name wins, and an abbreviation counts when it is unambiguous.
 */
static bool takes_next_word(const char *arg, const struct option *opts)
{
	const char *name = arg + 2;
	size_t len = strlen(name);
	const struct option *match = NULL;
	if (strchr(name, '=') != NULL)
		return false;
	for (const struct option *o = opts; o->name != NULL; o++) {
		if (strcmp(o->name, name) == 0)
			return o->has_arg == required_argument;
		if (len > 0 && strncmp(o->name, name, len) == 0) {
			if (match != NULL)
				return false; /* ambiguous: getopt_long reports it */
			match = o;
		}
	}
	return match != NULL && match->has_arg == required_argument;
}

/*
 * A kid keymgr issued (an RFC 7638 thumbprint: 43 base64url characters) is an argument even
 * when it starts with '-' (1 kid in 64 does): no option is that long or looks like that.
 */
static bool is_thumbprint(const char *a)
{
	return strlen(a) == KM_JWK_THUMBPRINT_LEN && km_name_kid_valid(a);
}

int km_cli_take_positionals(int *argc, char **argv, const struct option *opts, char **pos,
                            int max)
{
	int n = 0, out = 1;
	bool rest = false;
	for (int i = 1; i < *argc; i++) {
		char *a = argv[i];
		if (!rest && strcmp(a, "--") == 0) {
			rest = true;
			continue;
		}
		if (rest || a[0] != '-' || a[1] == '\0' || is_thumbprint(a)) {
			if (n == max)
				return -1;
			pos[n++] = a;
			continue;
		}
		argv[out++] = a;
		if (a[1] == '-' && takes_next_word(a, opts) && i + 1 < *argc)
			argv[out++] = argv[++i];
	}
	argv[out] = NULL;
	*argc = out;
	return n;
}

int km_cli_args_parse(const km_cli_args_t *a, void *ctx, int argc, char **argv,
                      km_cli_common_t *c, char **pos, int *npos)
{
	static const struct option common_only[] = { KM_CLI_OPTS_COMMON, { NULL, 0, NULL, 0 } };
	const struct option *opts = a->opts != NULL ? a->opts : common_only;
	int n = km_cli_take_positionals(&argc, argv, opts, pos, KM_CLI_MAX_POSITIONAL);
	int o, rc;
	km_cli_common_init(c);
	while ((o = km_cli_getopt(argc, argv, a->cmd, opts, c)) != -1) {
		if (o < 0 || a->option == NULL)
			return KM_CLI_EXIT_USAGE; /* km_cli_getopt printed why */
		if ((rc = a->option(a->cmd, o, optarg, ctx)) != 0)
			return rc;
	}
	if (c->help)
		return km_cli_help(a->help);
	if (a->count_error != NULL && (n < a->min_pos || n > a->max_pos))
		return km_cli_usage_error(a->cmd, "%s", a->count_error);
	*npos = n;
	return KM_CLI_CONTINUE;
}

int km_cli_args_store(const char *cmd, int opt, const char *arg, void *ctx)
{
	(void)cmd;
	(void)opt;
	*(const char **)ctx = arg;
	return 0;
}
