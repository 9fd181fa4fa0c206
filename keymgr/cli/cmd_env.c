/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr env list: the configured environments and what each one uses. */
#include <stdio.h>

#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"

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
		if (c.json)
			json_array_append_new(arr, json_pack("{s:s, s:{s:s, s:s?, s:s?, s:s}, s:s, s:s}",
			        "name", e->name, "token", "module", e->token.module_path,
			        "label", e->token.token_label, "serial", e->token.token_serial,
			        "pin_source", pin, "store", e->store, "http_path", e->http_path));
		else
			printf("%-16s %-24s %-10s %-24s %s\n", e->name, tok, pin, e->http_path, e->store);
	}
	if (c.json) {
		rc = km_cli_print_json(arr);
		json_decref(arr);
	}
	rc = km_cli_config_complete(cfg, rc);
	km_config_free(cfg);
	return rc;
}

static const km_cli_command_t env_commands[] = {
	{ "list", env_list, "list the configured environments" },
	{ NULL, NULL, NULL },
};

int km_cmd_env(int argc, char **argv)
{
	return km_cli_dispatch(env_commands, "keymgr env", NULL, argc - 1, argv + 1);
}
