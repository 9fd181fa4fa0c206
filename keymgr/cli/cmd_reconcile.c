/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr reconcile: compare each environment's store with its token and repair (reconcile.h). */
#include <stdio.h>
#include <string.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/core/reconcile.h"

static const char reconcile_help[] =
	"Usage: keymgr [-c FILE] reconcile [ENV] [--dry-run] [--remove-unsafe] [--json]\n"
	"\n"
	"Compares the store of every environment (or of ENV) with its token and completes or\n"
	"rolls back what a crash left half done, printing each repair:\n"
	"  adopt           a pending key the token did create: confirmed with its kid\n"
	"  abandon         a pending key the token never created: recorded as abandoned\n"
	"  destroyed       a removed/revoked key whose objects are gone: recorded destroyed\n"
	"  purge           a destroyed/abandoned record whose objects remain: objects destroyed\n"
	"  revoke-missing  a generated/published key missing from the token: revoked\n"
	"and what needs an operator (never changed automatically):\n"
	"  missing         an active or retired key missing from the token\n"
	"  quarantine      a keymgr key in the token that no record knows (never deleted):\n"
	"                  a KMGR CKA_ID, or on a token that cuts CKA_IDs a short one with a\n"
	"                  label keymgr gives a key of the environment\n"
	"  unsafe          a private key that is not sensitive, is extractable, or can decrypt,\n"
	"                  unwrap or derive (a generation cut off inside the token leaves them),\n"
	"                  shown with its handle's attributes: destroyed with --remove-unsafe\n"
	"                  when no record holds it; a key a record holds is to be revoked\n"
	"It holds the environment's change lock (the file STORE.lock, or a row of a PostgreSQL\n"
	"store), as rotate, apply, revoke, destroy and keymgrd's passes do: it waits up to 10 s\n"
	"for a change another keymgr process is making, then gives up, naming that process,\n"
	"with nothing changed.\n"
	"  --dry-run        report what would be repaired; change nothing\n"
	"  --remove-unsafe  destroy the unsafe private keys that no record holds\n"
	"Exit status 1 if a repair failed, a finding needs an operator, or the environment\n"
	"stayed locked.\n";

enum { OPT_DRY_RUN = 0x10, OPT_REMOVE_UNSAFE };

typedef struct {
	json_t *json;   /* array of findings, or NULL for text */
	bool dry_run;
} ctx_t;

/* A CK_BBOOL attribute as JSON: true, false or null (not reported). */
static json_t *attr_json(km_token_attr_t a)
{
	return a == KM_TOKEN_ATTR_UNKNOWN ? json_null() : json_boolean(a == KM_TOKEN_ATTR_TRUE);
}

/* The attributes of an unsafe private key object, as reconcile --json shows them. */
static json_t *object_json(const km_token_privkey_t *o)
{
	return json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "handle",
	                 (json_int_t)o->handle, "label", o->label, "sensitive",
	                 attr_json(o->sensitive), "extractable", attr_json(o->extractable),
	                 "never_extractable", attr_json(o->never_extractable),
	                 "always_sensitive", attr_json(o->always_sensitive), "sign",
	                 attr_json(o->sign), "decrypt", attr_json(o->decrypt), "unwrap",
	                 attr_json(o->unwrap), "derive", attr_json(o->derive));
}

static void report(void *vctx, const km_recon_event_t *ev)
{
	ctx_t *c = vctx;
	if (c->json != NULL) {
		json_t *f = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:s}",
		        "env", ev->env, "action", km_recon_kind_name(ev->kind), "keyset", ev->keyset,
		        "kid", ev->kid, "cka_id", ev->cka_id, "state", ev->state, "detail",
		        ev->detail, "repair", ev->repair, "attention", ev->attention, "applied",
		        ev->applied, "result", ev->result == KM_EOK ? "ok" : km_strerror(ev->result));
		if (ev->object != NULL)
			json_object_set_new(f, "object", object_json(ev->object));
		json_array_append_new(c->json, f);
		return;
	}
	const char *tag = ev->attention ? "ATTENTION" : ev->result != KM_EOK ? "FAILED"
	                  : c->dry_run ? "would" : "repaired";
	FILE *f = ev->attention || ev->result != KM_EOK ? stderr : stdout;
	fprintf(f, "%s: %s %s: %s\n", ev->env, tag, km_recon_kind_name(ev->kind), ev->detail);
}

static int reconcile(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "remove-unsafe", no_argument, NULL, OPT_REMOVE_UNSAFE },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "keymgr reconcile";
	char *pos[KM_CLI_MAX_POSITIONAL];
	int npos = km_cli_take_positionals(&argc, argv, opts, pos, KM_CLI_MAX_POSITIONAL);
	km_cli_common_t c;
	ctx_t ctx = { NULL, false };
	bool remove_unsafe = false;
	int o;
	km_cli_common_init(&c);
	while ((o = km_cli_getopt(argc, argv, cmd, opts, &c)) != -1) {
		if (o == OPT_DRY_RUN)
			ctx.dry_run = true;
		else if (o == OPT_REMOVE_UNSAFE)
			remove_unsafe = true;
		else
			return KM_CLI_EXIT_USAGE;
	}
	if (c.help)
		return km_cli_help(reconcile_help);
	if (npos < 0 || npos > 1)
		return km_cli_usage_error(cmd, "expected at most one ENV");
	km_config_t *cfg = NULL;
	int rc = km_cli_config_load(&cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	char err[1024] = "";
	const km_env_cfg_t *only = NULL;
	if (npos == 1) {
		int r = km_config_env_lookup(cfg, pos[0], &only, err, sizeof(err));
		if (r != KM_EOK) {
			rc = km_cli_fail(r, err);
			km_config_free(cfg);
			return rc;
		}
	}
	ctx.json = c.json ? json_array() : NULL;
	km_recon_summary_t total = { 0, 0, 0 };
	size_t envs_failed = 0;
	km_recon_opts_t ro = { .dry_run = ctx.dry_run, .remove_unsafe = remove_unsafe,
	                       .report = report, .ctx = &ctx };
	for (size_t i = 0; i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		if (only != NULL && e != only)
			continue;
		km_env_t *env = NULL;
		km_recon_summary_t sum = { 0, 0, 0 };
		int r = km_env_open(cfg, e->name, &env, err, sizeof(err));
		if (r == KM_EOK)
			r = km_reconcile_env(env, km_cli_now(), &ro, &sum, err, sizeof(err));
		km_env_free(env);
		if (r != KM_EOK) {
			envs_failed++;
			if (ctx.json != NULL)
				json_array_append_new(ctx.json, json_pack("{s:s, s:s, s:s}", "env",
				        e->name, "action", "error", "detail", err));
			else
				km_cli_error("%s", err[0] ? err : km_strerror(r));
			continue;
		}
		total.repaired += sum.repaired;
		total.attention += sum.attention;
		total.failed += sum.failed;
	}
	if (ctx.json != NULL) {
		json_t *j = json_pack("{s:o, s:I, s:I, s:I, s:I, s:b}", "findings",
		                      json_incref(ctx.json), "repaired", (json_int_t)total.repaired,
		                      "attention", (json_int_t)total.attention, "failed",
		                      (json_int_t)total.failed, "environments_failed",
		                      (json_int_t)envs_failed, "dry_run", ctx.dry_run);
		km_cli_print_json(j);
		json_decref(j);
		json_decref(ctx.json);
	} else if (total.repaired + total.attention + total.failed + envs_failed == 0) {
		printf("store and token agree: nothing to repair\n");
	}
	km_config_free(cfg);
	return total.attention + total.failed + envs_failed ? KM_CLI_EXIT_REFUSED : KM_CLI_EXIT_OK;
}

int km_cmd_reconcile(int argc, char **argv)
{
	return reconcile(argc, argv);
}
