/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr key list|show|retire|remove */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/core/keyops.h"
#include "keymgr/core/standby.h"

static const char list_help[] =
	"Usage: keymgr [-c FILE] key list [ENV[/NAME]] [--state STATE] [--owner OWNER]\n"
	"                 [--purpose PURPOSE] [--json]\n"
	"\n"
	"Lists keys, of every environment or of one environment or key set.\n"
	"STATE is one of generated, published, active, retired, removed, destroyed, revoked.\n";

static const char show_help[] =
	"Usage: keymgr [-c FILE] key show KID [--env ENV] [--json]\n"
	"\n"
	"Shows one key: key set, algorithm, state, token identity, CKA_ID, owner and purpose at\n"
	"creation, and the time of every state it entered, in the order of its life. The key\n"
	"set's standby (with the policy's standby: true, the oldest published key: the one an\n"
	"emergency activates) is marked \"published (standby)\"; --json says \"standby\":true.\n"
	"Without --env every environment's store is searched.\n";

static const char retire_help[] =
	"Usage: keymgr [-c FILE] key retire KID --env ENV [--json]\n"
	"\n"
	"Retires an active key by hand: it stops signing and stays in the JWKS. The key set has\n"
	"no active key until the next rotation; prefer 'keymgr rotate'.\n";

static const char remove_help[] =
	"Usage: keymgr [-c FILE] key remove KID --env ENV [--force] [--json]\n"
	"\n"
	"Removes a retired (or never-activated published) key from the JWKS. A retired key is\n"
	"kept until retire_retention has passed since its retirement, so that every token it\n"
	"signed can still be verified; --force removes it earlier.\n";

enum { OPT_STATE = 0x10, OPT_OWNER, OPT_PURPOSE, OPT_ENV, OPT_FORCE };

static void print_key_row(const km_store_key_t *k, const char *env)
{
	char t[32], ref[KM_ENV_NAME_MAX + KM_KEYSET_NAME_MAX + 2];
	snprintf(ref, sizeof(ref), "%s/%s", env, k->keyset);
	printf("%-44s %-28s %-6s %-10s %s\n", k->pending ? "(pending)" : k->kid, ref,
	       km_alg_name(k->alg), km_state_name(k->state),
	       km_cli_iso8601(k->state_at[k->state], t, sizeof(t)));
}

/* --state, --owner and --purpose of key list: the filter (ctx). */
static int list_option(const char *cmd, int o, const char *arg, void *ctx)
{
	km_store_key_filter_t *f = ctx;
	km_state_t st;
	switch (o) {
	case OPT_STATE:
		if (km_state_from_name(arg, &st) != KM_EOK) {
			const char *names[KM_STATE_COUNT];
			for (int s = 0; s < KM_STATE_COUNT; s++)
				names[s] = km_state_name((km_state_t)s);
			return km_cli_bad_choice(cmd, "state", arg, names, KM_STATE_COUNT);
		}
		f->states |= KM_STORE_STATE_BIT(st);
		break;
	case OPT_OWNER: f->owner = arg; break;
	default: f->purpose = arg; break;
	}
	return 0;
}

static int key_list(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "state", required_argument, NULL, OPT_STATE },
		{ "owner", required_argument, NULL, OPT_OWNER },
		{ "purpose", required_argument, NULL, OPT_PURPOSE },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr key list", .help = list_help, .opts = opts, .option = list_option,
		.min_pos = 0, .max_pos = 1, .count_error = "expected at most one ENV or ENV/NAME",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	km_store_key_filter_t f = { 0 };
	int npos, rc = km_cli_args_parse(&args, &f, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	char env_name[KM_ENV_NAME_MAX + 1] = "", name[KM_KEYSET_NAME_MAX + 1] = "", err[1024];
	if (npos == 1 && km_name_split(pos[0], true, env_name, name, err, sizeof(err)) != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);
	if (name[0])
		f.keyset = name;

	km_config_t *cfg = NULL;
	rc = km_cli_config_load_partial(&cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	const km_env_cfg_t *only = NULL;
	if (env_name[0] && km_config_env_lookup(cfg, env_name, &only, err, sizeof(err)) != KM_EOK) {
		rc = km_cli_fail(KM_ENOENT, err);
		km_config_free(cfg);
		return rc;
	}
	json_t *arr = c.json ? json_array() : NULL;
	if (!c.json)
		printf("%-44s %-28s %-6s %-10s %s\n", "KID", "KEY SET", "ALG", "STATE", "SINCE");
	for (size_t i = 0; rc == KM_CLI_EXIT_OK && i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		if (only != NULL && e != only)
			continue;
		km_env_t *env = NULL;
		km_store_key_t *keys = NULL;
		size_t n = 0;
		if (only == NULL && !km_store_exists(e->store))
			continue; /* never used: nothing to list, and listing creates no store */
		int r = km_env_open(cfg, e->name, &env, err, sizeof(err));
		if (r == KM_EOK)
			r = km_store_keys_query(km_env_store(env), &f, &keys, &n, err, sizeof(err));
		if (r != KM_EOK)
			rc = km_cli_fail(r, err);
		for (size_t j = 0; j < n; j++) {
			if (arr != NULL) {
				json_t *jk = km_cli_key_json(&keys[j]);
				json_object_set_new(jk, "env", json_string(e->name));
				json_array_append_new(arr, jk);
			} else {
				print_key_row(&keys[j], e->name);
			}
		}
		km_store_keys_free(keys);
		km_env_free(env);
	}
	if (c.json && rc == KM_CLI_EXIT_OK)
		rc = km_cli_print_json(arr);
	json_decref(arr);
	if (only == NULL)
		rc = km_cli_config_complete(cfg, rc);
	km_config_free(cfg);
	return rc;
}

/*
 * Finds the environment holding kid: the one given with --env, or the first whose store
 * knows it (partial: in a configuration that may have errors elsewhere, for key show).
 * Prints errors. On success *env is open.
 */
static int open_key_env(const char *cmd, const char *kid, const char *env_name, bool partial,
                        km_config_t **cfg, km_env_t **env, km_store_key_t *k)
{
	char err[1024] = "";
	if (!km_name_kid_valid(kid))
		return km_cli_usage_error(cmd, "invalid kid: expected 1 to %d base64url characters",
		                          KM_KID_MAX);
	if (env_name != NULL) {
		int rc = partial ? km_cli_env_open_partial(env_name, cfg, env)
		                 : km_cli_env_open(env_name, cfg, env);
		if (rc != KM_CLI_EXIT_OK)
			return rc;
		int r = km_key_lookup(*env, kid, k, err, sizeof(err));
		if (r != KM_EOK) {
			km_cli_env_close(*cfg, *env);
			return km_cli_fail(r, err);
		}
		return KM_CLI_EXIT_OK;
	}
	int rc = partial ? km_cli_config_load_partial(cfg) : km_cli_config_load(cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	for (size_t i = 0; i < km_config_env_count(*cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(*cfg, i);
		/* A search reads: it must not create the store of an environment never used. */
		if (!km_store_exists(e->store) || km_env_open(*cfg, e->name, env, err,
		                                            sizeof(err)) != KM_EOK)
			continue;
		if (km_store_key_get(km_env_store(*env), kid, k, err, sizeof(err)) == KM_EOK)
			return KM_CLI_EXIT_OK;
		km_env_free(*env);
	}
	km_cli_error("unknown kid %s in every environment this process can read", kid);
	rc = km_cli_config_complete(*cfg, KM_CLI_EXIT_REFUSED);
	km_config_free(*cfg);
	return rc;
}

static int key_show(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "env", required_argument, NULL, OPT_ENV },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr key show", .help = show_help, .opts = opts,
		.option = km_cli_args_store,
		.min_pos = 1, .max_pos = 1, .count_error = "expected exactly one KID",
	};
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	const char *env_name = NULL;
	int npos, rc = km_cli_args_parse(&args, &env_name, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;

	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	km_store_key_t k;
	rc = open_key_env(args.cmd, pos[0], env_name, true, &cfg, &env, &k);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	char standby[KM_KID_MAX + 1] = "", err[1024] = "";
	int r = km_keyset_standby(env, k.keyset, standby, err, sizeof(err));
	/* A key set whose policy has errors (a broken configuration) still shows its keys:
	 * whether one is the standby is then unknown (JSON null, no mark). */
	bool known = r == KM_EOK;
	if (r != KM_EOK && r != KM_CONFIG_EBROKEN) {
		rc = km_cli_fail(r, err);
		km_cli_env_close(cfg, env);
		return rc;
	}
	bool is_standby = known && strcmp(standby, k.kid) == 0;
	if (c.json) {
		json_t *j = km_cli_key_json(&k);
		json_object_set_new(j, "env", json_string(km_env_name(env)));
		json_object_set_new(j, "standby", known ? json_boolean(is_standby) : json_null());
		rc = km_cli_print_json(j);
		json_decref(j);
	} else {
		char t[32], hex[2 * KM_STORE_CKA_ID_MAX + 1];
		km_state_t order[KM_STATE_COUNT];
		size_t n = km_cli_key_times(&k, order);
		km_cli_cka_id_hex(&k, hex);
		char when[64] = "";
		if (k.state == KM_STATE_PUBLISHED && k.activate_at != KM_STORE_TIME_NONE)
			snprintf(when, sizeof(when), " (successor, activates at %s)",
			         km_cli_iso8601(k.activate_at, t, sizeof(t)));
		printf("kid          %s\nenvironment  %s\nkey set      %s\nalgorithm    %s\n"
		       "state        %s%s%s\nowner        %s\npurpose      %s\n"
		       "token        %s (serial %s)\nCKA_ID       %s\n", k.kid, km_env_name(env),
		       k.keyset, km_alg_name(k.alg), km_state_name(k.state),
		       is_standby ? " (standby)" : "", when, k.owner, k.purpose, k.token_label,
		       k.token_serial, hex);
		for (size_t i = 0; i < n; i++)
			printf("%-12s %s\n", km_state_name(order[i]),
			       km_cli_iso8601(k.state_at[order[i]], t, sizeof(t)));
		if (k.revoke_reason[0])
			printf("reason       %s\n", k.revoke_reason);
	}
	km_cli_env_close(cfg, env);
	return rc;
}

/* The options of key retire|remove (ctx of move_option). */
typedef struct {
	km_state_t to;
	const char *env;
	bool force;
} move_opts_t;

static int move_option(const char *cmd, int o, const char *arg, void *ctx)
{
	move_opts_t *m = ctx;
	(void)cmd;
	if (o == OPT_ENV)
		m->env = arg;
	else if (m->to == KM_STATE_REMOVED)
		m->force = true;
	else
		return KM_CLI_EXIT_USAGE; /* --force: remove only */
	return 0;
}

/* key retire / key remove: one state change by hand. */
static int key_move(int argc, char **argv, km_state_t to, const char *cmd, const char *help)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "env", required_argument, NULL, OPT_ENV },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ NULL, 0, NULL, 0 },
	};
	const km_cli_args_t args = {
		.cmd = cmd, .help = help, .opts = opts, .option = move_option,
		.min_pos = 1, .max_pos = 1, .count_error = "expected exactly one KID",
	};
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	move_opts_t m = { .to = to };
	int npos, rc = km_cli_args_parse(&args, &m, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if (m.env == NULL)
		return km_cli_usage_error(cmd, "missing --env ENV: state changes name their "
		                          "environment");

	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	km_store_key_t k;
	char err[1024] = "";
	rc = open_key_env(cmd, pos[0], m.env, false, &cfg, &env, &k);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	int64_t now = km_cli_now();
	km_policy_t pol;
	int r = km_env_keyset_policy(env, k.keyset, &pol);
	if (r == KM_EOK && to == KM_STATE_REMOVED && k.state == KM_STATE_RETIRED && !m.force &&
	    now < k.state_at[KM_STATE_RETIRED] + pol.retire_retention) {
		char ago[32], ret[32];
		snprintf(err, sizeof(err), "key %s retired %s ago; tokens it signed may be checked "
		         "for retire_retention (%s): refusing to remove it (use --force to accept "
		         "failed verifications)", k.kid,
		         km_duration_format(now - k.state_at[KM_STATE_RETIRED], ago, sizeof(ago)),
		         km_duration_format(pol.retire_retention, ret, sizeof(ret)));
		r = KM_POLICY_EDENIED;
	}
	if (r == KM_EOK)
		r = km_key_set_state(env, k.kid, to, now, NULL, err, sizeof(err));
	if (r == KM_EOK)
		km_cli_wake_daemon(cfg, km_env_name(env), k.keyset);
	if (r != KM_EOK)
		rc = km_cli_fail(r, err);
	else if (c.json)
		printf("{\"kid\":\"%s\",\"state\":\"%s\"}\n", k.kid, km_state_name(to));
	else
		printf("key %s is now %s\n", k.kid, km_state_name(to));
	km_cli_env_close(cfg, env);
	return rc;
}

static int key_retire(int argc, char **argv)
{
	return key_move(argc, argv, KM_STATE_RETIRED, "keymgr key retire", retire_help);
}

static int key_remove(int argc, char **argv)
{
	return key_move(argc, argv, KM_STATE_REMOVED, "keymgr key remove", remove_help);
}

static const km_cli_command_t key_commands[] = {
	{ "list", key_list, "list keys" },
	{ "show", key_show, "show one key and its dates" },
	{ "retire", key_retire, "stop an active key from signing (it stays in the JWKS)" },
	{ "remove", key_remove, "take a retired key out of the JWKS" },
	{ "current", km_cmd_key_current, "print the active key's kid or PKCS#11 URI" },
	{ NULL, NULL, NULL },
};

int km_cmd_key(int argc, char **argv)
{
	return km_cli_dispatch(key_commands, "keymgr key", NULL, argc - 1, argv + 1);
}
