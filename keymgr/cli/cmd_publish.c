/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr jwks ENV[/NAME] and keymgr sign ENV/NAME: the public output of an environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/cmd_audit.h"
#include "keymgr/common/atomic_file.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/claims/claims.h"
#include "keymgr/common/error.h"
#include "keymgr/core/keyops.h"

static const char jwks_help[] =
	"Usage: keymgr [-c FILE] jwks ENV[/NAME] [--output FILE]\n"
	"       keymgr [-c FILE] jwks history ENV | jwks show ENV --serial N | --at TIME\n"
	"\n"
	"Prints the JWKS of an environment, or of one key set: every published, active and\n"
	"retired key. Opens no token: the public keys come from the store.\n"
	"  --output FILE   write atomically (temporary file, fsync, rename; mode 0644), so a\n"
	"                  reader never sees a torn document\n";

static const char sign_help[] =
	"Usage: keymgr [-c FILE] sign ENV/NAME --claims JSON|@FILE [--ttl DURATION]\n"
	"\n"
	"Signs the claims (a JSON object; @FILE reads a file, @- standard input) into a compact\n"
	"JWT with the key set's active key. The header carries alg, kid and the typ of the key\n"
	"set's purpose (at+jwt for access tokens, logout+jwt, secevent+jwt, ...).\n"
	"The claims policy of the key set's class applies (docs/claims.md): iss is the key set's\n"
	"configured issuer, aud must be among its audiences, exp is required and at most\n"
	"max_token_ttl away (or give --ttl DURATION and keymgr sets exp), iat, nbf and jti are\n"
	"set by keymgr, and claims of other token classes are refused.\n";

enum { OPT_OUTPUT = 0x10, OPT_CLAIMS, OPT_TTL };

#define CLAIMS_MAX (64 * 1024)

static int jwks(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "keymgr jwks";
	char *pos[KM_CLI_MAX_POSITIONAL];
	int npos = km_cli_take_positionals(&argc, argv, opts, pos, KM_CLI_MAX_POSITIONAL);
	km_cli_common_t c;
	const char *output = NULL;
	int o;
	km_cli_common_init(&c);
	while ((o = km_cli_getopt(argc, argv, cmd, opts, &c)) != -1) {
		if (o != OPT_OUTPUT)
			return KM_CLI_EXIT_USAGE;
		output = optarg;
	}
	if (c.help)
		return km_cli_help(jwks_help);
	if (npos != 1)
		return km_cli_usage_error(cmd, "expected exactly one ENV or ENV/NAME");
	char env_name[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1], err[1024] = "";
	if (km_name_split(pos[0], true, env_name, name, err, sizeof(err)) != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);

	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	int rc = km_cli_env_open(env_name, &cfg, &env);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	char *doc = NULL;
	size_t len = 0;
	km_store_keyset_t ks;
	int r = KM_EOK;
	if (name[0] && (r = km_store_keyset_get(km_env_store(env), name, &ks, err,
	                                        sizeof(err))) == KM_ENOENT)
		snprintf(err, sizeof(err), "unknown key set %s/%s", env_name, name);
	if (r == KM_EOK)
		r = km_env_jwks(env, name[0] ? name : NULL, &doc, &len, err, sizeof(err));
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
	} else if (output != NULL) {
		r = km_file_write_atomic(output, doc, len, 0644);
		if (r != KM_EOK)
			rc = km_cli_fail(r, NULL);
	} else {
		printf("%s\n", doc);
	}
	if (output != NULL && r != KM_EOK && rc == KM_CLI_EXIT_REFUSED)
		km_cli_error("cannot write %s", output);
	free(doc);
	km_cli_env_close(cfg, env);
	return rc;
}

static int sign(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "claims", required_argument, NULL, OPT_CLAIMS },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "keymgr sign";
	char *pos[KM_CLI_MAX_POSITIONAL];
	int npos = km_cli_take_positionals(&argc, argv, opts, pos, KM_CLI_MAX_POSITIONAL);
	km_cli_common_t c;
	const char *claims_arg = NULL, *ttl_arg = NULL;
	int64_t ttl = 0;
	int o;
	km_cli_common_init(&c);
	while ((o = km_cli_getopt(argc, argv, cmd, opts, &c)) != -1) {
		if (o == OPT_CLAIMS)
			claims_arg = optarg;
		else if (o == OPT_TTL)
			ttl_arg = optarg;
		else
			return KM_CLI_EXIT_USAGE;
	}
	if (c.help)
		return km_cli_help(sign_help);
	if (npos != 1)
		return km_cli_usage_error(cmd, "expected exactly one ENV/NAME");
	if (claims_arg == NULL)
		return km_cli_usage_error(cmd, "missing --claims JSON|@FILE");
	char env_name[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1], err[1024] = "";
	if (km_name_split(pos[0], false, env_name, name, err, sizeof(err)) != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);
	if (ttl_arg != NULL && (km_duration_parse_err(ttl_arg, &ttl, err, sizeof(err)) != KM_EOK ||
	                        ttl <= 0))
		return km_cli_usage_error(cmd, "--ttl: %s", err[0] ? err : "must be positive");
	char *claims = NULL;
	int r = km_cli_read_arg(claims_arg, CLAIMS_MAX, &claims, err, sizeof(err));
	if (r != KM_EOK)
		return km_cli_fail(r, err);

	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	int rc = km_cli_env_open(env_name, &cfg, &env);
	if (rc != KM_CLI_EXIT_OK) {
		free(claims);
		return rc;
	}
	char *jwt = NULL;
	r = km_claims_sign(env, name, claims, km_cli_now(), ttl, &jwt, err, sizeof(err));
	if (r == KM_EMALFORMED)
		rc = km_cli_fail(r, err[0] ? err : "malformed claims JSON");
	else if (r != KM_EOK)
		rc = km_cli_fail(r, err);
	else
		printf("%s\n", jwt);
	free(jwt);
	free(claims);
	km_cli_env_close(cfg, env);
	return rc;
}

int km_cmd_jwks(int argc, char **argv)
{
	/* keymgr jwks history|show ENV: the recorded versions (cmd_audit_report.c). */
	if (argc > 1 && strcmp(argv[1], "history") == 0)
		return km_cmd_jwks_history(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "show") == 0)
		return km_cmd_jwks_show(argc - 1, argv + 1);
	return jwks(argc, argv);
}

int km_cmd_sign(int argc, char **argv)
{
	return sign(argc, argv);
}
