/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr: a thin dispatcher over the command table; each group lives in cmd_<group>.c. */
#include <stdio.h>
#include <string.h>

#include "keymgr/audit/audit.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/common/no_dump.h"
#include "keymgr/store/store.h"

/* One line per command group, in the order --help lists them. */
static const km_cli_command_t commands[] = {
	{ "env", km_cmd_env, "list the configured environments" },
	{ "keyset", km_cmd_keyset, "create, list and show key sets; change their owner" },
	{ "key", km_cmd_key, "list and show keys; retire or remove one by hand" },
	{ "rotate", km_cmd_rotate, "generate and publish a successor key for a key set" },
	{ "revoke", km_cmd_revoke, "take a key out of service at once" },
	{ "destroy", km_cmd_destroy, "delete a removed or revoked key from the token" },
	{ "plan", km_cmd_plan, "show upcoming lifecycle events from the policy" },
	{ "apply", km_cmd_apply, "carry out every lifecycle action due now (cron-friendly)" },
	{ "policy", km_cmd_policy, "show the effective policy; check compliance" },
	{ "jwks", km_cmd_jwks, "print or write the JWKS of an environment or key set; "
	  "its history" },
	{ "publish", km_cmd_publish, "write an environment's JWKS and discovery documents as a "
	  "static tree" },
	{ "sign", km_cmd_sign, "sign claims into a JWT with a key set's active key" },
	{ "verify", km_cmd_verify, "verify a JWT strictly against a JWKS (the reference verifier)" },
	{ "probe", km_cmd_probe, "audit a live verifier: which wrong or forged tokens it accepts" },
	{ "status", km_cmd_status, "ask the running keymgrd: keys, next events, propagation" },
	{ "reload", km_cmd_reload, "make keymgrd reload its configuration (like SIGHUP)" },
	{ "tick", km_cmd_tick, "wake keymgrd now: re-read the stores and apply what is due" },
	{ "audit", km_cmd_audit, "audit log, verification, signed checkpoints, ownership report" },
	{ "reconcile", km_cmd_reconcile, "compare store and token; repair what a crash left "
	  "half done" },
	{ "store", km_cmd_store, "copy an environment's store between SQLite and PostgreSQL" },
	{ "token", km_cmd_token, "low-level verbs on a PKCS#11 token named by flags" },
	{ NULL, NULL, NULL },
};

static const char intro[] =
	"Manages JWT signing keys inside PKCS#11 tokens.\n"
	"  -c, --config FILE   configuration file (default: $KEYMGR_CONFIG, then\n"
	"                      /etc/keymgr/keymgr.yaml); refused unless owned by root or\n"
	"                      you, and writable by its owner only\n"
	"With errors in the file, revoke, status, reload, tick and the verbs that only read\n"
	"still work where the errors do not reach, warning about each; a verb over every\n"
	"environment that has to leave one out exits 1 (man keymgr: A BROKEN CONFIGURATION).\n"
	"Exit status: 0 success, 1 refused operation or failed check, 2 usage error.\n";

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("keymgr %s\n", KEYMGR_VERSION);
		return KM_CLI_EXIT_OK;
	}
	/* Any verb may log in to a token: its PIN passes through this process's memory, which
	 * stays out of core files and away from other processes of this user, as keymgrd's. */
	char err[256];
	if (km_process_no_dump(err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "keymgr: %s\n", err);
		return KM_CLI_EXIT_REFUSED;
	}
	/* Every change this process makes is recorded in the audit log as made via the CLI. */
	km_store_set_default_via("cli");
	km_env_set_hooks(&km_audit_env_hooks);
	/* Global options come before the command. */
	int i = 1;
	while (i < argc) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0)) {
			if (i + 1 >= argc)
				return km_cli_usage_error("keymgr", "option '%s' needs a FILE", argv[i]);
			km_cli_set_config_path(argv[i + 1]);
			i += 2;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			km_cli_set_config_path(argv[i] + 9);
			i++;
		} else {
			break;
		}
	}
	return km_cli_dispatch(commands, "keymgr", intro, argc - i, argv + i);
}
