/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgr store copy: an environment's whole store into a new one, between backends (an
 * SQLite file and a PostgreSQL schema, either way), with its audit chain intact.
 */
#include <stdio.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/common/pguri.h"
#include "keymgr/store/store.h"

static const char copy_help[] =
	"Usage: keymgr store copy --from SRC --to DST [--json]\n"
	"\n"
	"Copies the store at SRC into a new store at DST. Each is an SQLite file or a\n"
	"postgresql:// URI (keymgr.yaml(5)), so this moves an environment from SQLite to\n"
	"PostgreSQL (docs/ha.md) and back. Everything is copied: key sets, keys in every state and\n"
	"their history, and the audit chain event for event with its JWKS versions, audit keys\n"
	"and checkpoints, so that `keymgr audit verify` passes on the copy (given DST as its\n"
	"store). The environment is the one SRC records. SRC's change lock is held while it is\n"
	"read; DST is written in one transaction. Reads no configuration, opens no token.\n"
	"Refused, with nothing written: a DST that holds anything (a copy goes only into a new\n"
	"store), a DST of another environment, an SRC that holds no store.\n"
	"Then point the environment's store: at DST, and stop using SRC.\n"
	"  --from SRC   the store to copy\n"
	"  --to DST     the new store\n"
	"  --json       print what was copied as one JSON object\n"
	"Exit status: 0 copied, 1 refused or failed, 2 usage error.\n";

enum { OPT_FROM = 0x10, OPT_TO };

typedef struct {
	const char *from, *to;
} copy_args_t;

static int copy_option(const char *cmd, int o, const char *arg, void *ctx)
{
	copy_args_t *a = ctx;
	if (o == OPT_FROM)
		a->from = arg;
	else
		a->to = arg;
	return 0;
}

static int store_copy(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "from", required_argument, NULL, OPT_FROM },
		{ "to", required_argument, NULL, OPT_TO },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr store copy", .help = copy_help, .opts = opts, .option = copy_option,
		.min_pos = 0, .max_pos = 0, .count_error = "takes no positional arguments",
	};
	char *pos[KM_CLI_MAX_POSITIONAL], err[1024] = "", from[512], to[512];
	km_cli_common_t c;
	copy_args_t a = { NULL, NULL };
	km_store_copy_stats_t st;
	int npos, rc = km_cli_args_parse(&args, &a, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if (a.from == NULL || a.to == NULL)
		return km_cli_usage_error(args.cmd, "both --from SRC and --to DST are required");
	int r = km_store_copy(a.from, a.to, &st, err, sizeof(err));
	if (r != KM_EOK)
		return km_cli_fail(r, err);
	km_pguri_redact(a.from, from, sizeof(from));
	km_pguri_redact(a.to, to, sizeof(to));
	if (c.json) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
		                      "env", st.env, "from", from, "to", to,
		                      "keysets", (json_int_t)st.keysets, "keys", (json_int_t)st.keys,
		                      "key_events", (json_int_t)st.key_events,
		                      "audit_events", (json_int_t)st.audit_events,
		                      "jwks_versions", (json_int_t)st.jwks_versions,
		                      "audit_keys", (json_int_t)st.audit_keys,
		                      "checkpoints", (json_int_t)st.checkpoints,
		                      "head_seq", (json_int_t)st.head_seq, "head_hash", st.head_hash);
		rc = j != NULL ? km_cli_print_json(j) : KM_CLI_EXIT_REFUSED;
		json_decref(j);
		return rc;
	}
	printf("copied environment '%s' from %s to %s: %zu key sets, %zu keys, %zu audit events "
	       "(head %lld %s), %zu JWKS versions, %zu audit keys, %zu checkpoints\n", st.env,
	       from, to, st.keysets, st.keys, st.audit_events, (long long)st.head_seq,
	       st.head_hash, st.jwks_versions, st.audit_keys, st.checkpoints);
	return KM_CLI_EXIT_OK;
}

static const km_cli_command_t store_commands[] = {
	{ "copy", store_copy, "copy a store into a new one (SQLite <-> PostgreSQL)" },
	{ NULL, NULL, NULL },
};

int km_cmd_store(int argc, char **argv)
{
	return km_cli_dispatch(store_commands, "keymgr store", NULL, argc - 1, argv + 1);
}
