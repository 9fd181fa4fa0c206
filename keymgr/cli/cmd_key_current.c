/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr key current ENV/NAME [--uri] [--json]: the active key, for issuers. */
#include <stdio.h>
#include <stdlib.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "pkcs11/token.h"

static const char current_help[] =
	"Usage: keymgr [-c FILE] key current ENV/NAME [--uri] [--json]\n"
	"\n"
	"Prints the kid of the key set's active key. With --uri, prints instead the RFC 7512\n"
	"PKCS#11 URI of its private key (pkcs11:serial=...;token=...;id=%..;type=private), for\n"
	"issuers that sign through OpenSSL and libp11's pkcs11 engine; append your own\n"
	"';pin-source=file:PATH' (never a PIN value). --json prints env, keyset, kid, alg and uri.\n"
	"Opens no token: everything comes from the store. The active key changes on rotation:\n"
	"ask again after every rotation (or follow the JWKS).\n";

enum { OPT_URI = 0x10 };

/* --uri, the only option: sets the bool ctx. */
static int uri_option(const char *cmd, int o, const char *arg, void *ctx)
{
	(void)cmd;
	(void)o;
	(void)arg;
	*(bool *)ctx = true;
	return 0;
}

static int current(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "uri", no_argument, NULL, OPT_URI },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr key current", .help = current_help, .opts = opts, .option = uri_option,
		.min_pos = 1, .max_pos = 1, .count_error = "expected exactly one ENV/NAME",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	bool want_uri = false;
	int npos, rc = km_cli_args_parse(&args, &want_uri, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	char env_name[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1], err[1024] = "";
	if (km_name_split(pos[0], false, env_name, name, err, sizeof(err)) != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);

	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	rc = km_cli_env_open_partial(env_name, &cfg, &env);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	km_store_keyset_t ks;
	km_store_key_t k;
	char *uri = NULL;
	int r = km_store_keyset_get(km_env_store(env), name, &ks, err, sizeof(err));
	if (r == KM_ENOENT)
		snprintf(err, sizeof(err), "unknown key set %s/%s", env_name, name);
	if (r == KM_EOK && (r = km_store_key_active(km_env_store(env), name, &k, err,
	                                            sizeof(err))) == KM_ENOACTIVE)
		snprintf(err, sizeof(err), "key set %s/%s has no active key (rotate it first)",
		         env_name, name);
	if (r == KM_EOK &&
	    (r = km_token_uri(k.token_label[0] ? k.token_label : NULL,
	                      k.token_serial[0] ? k.token_serial : NULL, k.cka_id, k.cka_id_len,
	                      &uri)) != KM_EOK)
		snprintf(err, sizeof(err), "cannot format the PKCS#11 URI of key %s", k.kid);
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
	} else if (c.json) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "env", env_name, "keyset", name,
		                      "kid", k.kid, "alg", km_alg_name(k.alg), "uri", uri);
		rc = km_cli_print_json(j);
		json_decref(j);
	} else {
		printf("%s\n", want_uri ? uri : k.kid);
	}
	free(uri);
	km_cli_env_close(cfg, env);
	return rc;
}

int km_cmd_key_current(int argc, char **argv)
{
	return current(argc, argv);
}
