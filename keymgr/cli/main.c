/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr: a thin dispatcher over the command table; each group lives in cmd_<group>.c. */
#include <stdio.h>
#include <string.h>

#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"

/* One line per command group, in the order --help lists them. */
static const km_cli_command_t commands[] = {
	{ "token", km_cmd_token, "low-level verbs on a PKCS#11 token named by flags" },
	{ NULL, NULL, NULL },
};

static const char intro[] =
	"Manages JWT signing keys inside PKCS#11 tokens.\n"
	"Exit status: 0 success, 1 refused operation or failed check, 2 usage error.\n";

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("keymgr %s\n", KEYMGR_VERSION);
		return KM_CLI_EXIT_OK;
	}
	return km_cli_dispatch(commands, "keymgr", intro, argc - 1, argv + 1);
}
