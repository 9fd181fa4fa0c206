/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgr env list: the configured environments and what each one uses.
 * keymgr env login: one explicit login to an environment's token, a refused PIN included.
 */
#include <stdio.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/common/pguri.h"

static const char list_help[] =
	"Usage: keymgr [-c FILE] env list [--json]\n"
	"\n"
	"Lists the environments of the configuration with their token, store and JWKS path.\n"
	"Opens no token and no store. An environment whose own sections have errors is left\n"
	"out (the errors are printed as warnings; exit status 1).\n";

static int env_list(int argc, char **argv)
{
	static const struct option opts[] = { KM_CLI_OPTS_COMMON, { NULL, 0, NULL, 0 } };
	km_cli_common_t c;
	km_cli_common_init(&c);
	if (km_cli_getopt(argc, argv, "keymgr env list", opts, &c) != -1)
		return KM_CLI_EXIT_USAGE;
	if (c.help)
		return km_cli_help(list_help);

	km_config_t *cfg = NULL;
	int rc = km_cli_config_load_partial(&cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	json_t *arr = c.json ? json_array() : NULL;
	if (!c.json)
		printf("%-16s %-24s %-10s %-24s %s\n", "ENVIRONMENT", "TOKEN", "PIN", "JWKS PATH",
		       "STORE");
	for (size_t i = 0; i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		const char *tok = e->token.token_label ? e->token.token_label : e->token.token_serial;
		/* The kind of pin source only: even a source path is not needed here. */
		const char *pin = e->token.pin_source == NULL ? "none" :
		                  e->token.pin_source[0] == 'f' ? "file" :
		                  e->token.pin_source[0] == 'e' ? "env" : "prompt";
		char store[512];
		km_pguri_redact(e->store, store, sizeof(store));   /* no password on screen */
		if (c.json)
			json_array_append_new(arr, json_pack("{s:s, s:{s:s, s:s?, s:s?, s:s}, s:s, s:s}",
			        "name", e->name, "token", "module", e->token.module_path,
			        "label", e->token.token_label, "serial", e->token.token_serial,
			        "pin_source", pin, "store", store, "http_path", e->http_path));
		else
			printf("%-16s %-24s %-10s %-24s %s\n", e->name, tok, pin, e->http_path, store);
	}
	if (c.json) {
		rc = km_cli_print_json(arr);
		json_decref(arr);
	}
	rc = km_cli_config_complete(cfg, rc);
	km_config_free(cfg);
	return rc;
}

static const char login_help[] =
	"Usage: keymgr [-c FILE] env login ENV [--json]\n"
	"\n"
	"Logs in to the token of ENV once, with the PIN read from its PIN source, even when the\n"
	"token refused that PIN before. Once a token refuses a PIN, keymgr and keymgrd do not\n"
	"present it again while its source is unchanged (a token that counts wrong PINs locks\n"
	"the PIN, or wipes itself, after a few): every command that needs the token then says\n"
	"so at once. A PIN file that changes in any way is tried again by itself; this command\n"
	"is for the rest (an env: source, a PIN reset on the token). On success the refusal is\n"
	"forgotten and a running keymgrd is told, so it logs in at once; a refusal is recorded\n"
	"again. Each run is one attempt that the token may count.\n"
	"  --json   print {\"env\":ENV,\"logged_in\":true}\n"
	"Exit status: 0 logged in, 1 refused or failed, 2 usage error.\n";

static int env_login(int argc, char **argv)
{
	const km_cli_args_t args = {
		.cmd = "keymgr env login", .help = login_help, .min_pos = 1, .max_pos = 1,
		.count_error = "expected one ENV",
	};
	char *pos[KM_CLI_MAX_POSITIONAL], err[2048] = "";
	km_cli_common_t c;
	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	int npos, rc;
	if ((rc = km_cli_args_parse(&args, NULL, argc, argv, &c, pos, &npos)) != KM_CLI_CONTINUE)
		return rc;
	if ((rc = km_cli_env_open(pos[0], &cfg, &env)) != KM_CLI_EXIT_OK)
		return rc;
	int r = km_env_login(env, err, sizeof(err));
	km_env_close_token(env);
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
	} else {
		if (c.json) {
			json_t *j = json_pack("{s:s, s:b}", "env", pos[0], "logged_in", 1);
			rc = j != NULL ? km_cli_print_json(j) : KM_CLI_EXIT_REFUSED;
			json_decref(j);
		} else {
			printf("logged in to the token of environment '%s'\n", pos[0]);
		}
		km_cli_wake_daemon(cfg, pos[0], NULL);   /* it logs in again now */
	}
	km_cli_env_close(cfg, env);
	return rc;
}

static const km_cli_command_t env_commands[] = {
	{ "list", env_list, "list the configured environments" },
	{ "login", env_login, "log in to an environment's token once, a refused PIN included" },
	{ NULL, NULL, NULL },
};

int km_cmd_env(int argc, char **argv)
{
	return km_cli_dispatch(env_commands, "keymgr env", NULL, argc - 1, argv + 1);
}
