/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr rotate | revoke | destroy: the lifecycle verbs security teams run by hand. */
#include <stdio.h>
#include <string.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/core/apply.h"
#include "keymgr/core/keyops.h"

static const char rotate_help[] =
	"Usage: keymgr [-c FILE] rotate ENV/NAME [--force] [--now --force] [--json]\n"
	"\n"
	"Requests a rotation: the key set's next key becomes the successor, and the current key\n"
	"retires when the successor activates. The request is recorded in the store (and the\n"
	"audit log) with the successor's activation time, which is printed; `keymgr apply` or\n"
	"keymgrd activates it at that time, and `keymgr plan` and `keymgr status` show it.\n"
	"  a standby published >= publish_lead ago   promoted at once (no verification gap);\n"
	"                                            a new standby is made\n"
	"  a standby published < publish_lead ago    the successor, at its publish time +\n"
	"                                            publish_lead\n"
	"  no standby                                a new key is published; it activates at\n"
	"                                            publish time + publish_lead\n"
	"  a rotation already pending                nothing is added; the pending key and its\n"
	"                                            time are printed (exit 0)\n"
	"  no active key (a new key set)             a key activates at once\n"
	"  --force         with a rotation pending: request another one after it (a new key\n"
	"                  published now, activating publish_lead from now).\n"
	"  --now --force   activate the successor (pending, standby or new) immediately and\n"
	"                  retire the current key. Verifiers that cached the JWKS less than\n"
	"                  jwks_max_age ago do not know a new kid yet and will reject its tokens\n"
	"                  until they refetch (the gap is printed).\n"
	"  --json          the successor (key fields), env, outcome (promoted, scheduled, new,\n"
	"                  pending, first, early), previous_kid, and activates_at while it\n"
	"                  is not active yet\n"
	"A rotation that needs the token (a new key) logs in first: when that fails, nothing is\n"
	"changed.\n";

static const char revoke_help[] =
	"Usage: keymgr [-c FILE] revoke KID --env ENV --reason TEXT [--json]\n"
	"\n"
	"Takes a key out of service at once: out of the JWKS and never signing again, whatever\n"
	"its state (emergency revocation). When it was the active key, a standby key published\n"
	"for at least publish_lead is activated in its place (no verifier fails); without one,\n"
	"a new key is generated and activated at once, and verifiers that do not refetch the\n"
	"JWKS on an unknown kid may reject its tokens for up to jwks_max_age (the gap is\n"
	"printed). Verifiers that cached the JWKS keep accepting the revoked key until their\n"
	"cache expires, at most jwks_max_age (the exposure is printed).\n"
	"Works when the configuration has errors elsewhere (warned about): only ENV's token,\n"
	"store, http and audit sections must be intact. When the key set's own policy has\n"
	"errors, the key is still revoked, but no standby is promoted and no key generated\n"
	"(that would follow an unvalidated policy), and the exposure is not known: fix the\n"
	"configuration, then 'keymgr rotate ENV/NAME'.\n";

static const char destroy_help[] =
	"Usage: keymgr [-c FILE] destroy KID --env ENV [--json]\n"
	"\n"
	"Deletes a removed or revoked key's objects from the token. The key's record stays in\n"
	"the store forever, in state 'destroyed'. Any other state is refused.\n";

enum { OPT_NOW = 0x10, OPT_FORCE, OPT_ENV, OPT_REASON };

/* --now and --force of rotate (ctx of rotate_option). */
typedef struct {
	bool now, force;
} rotate_opts_t;

static int rotate_option(const char *cmd, int o, const char *arg, void *ctx)
{
	rotate_opts_t *f = ctx;
	(void)cmd;
	(void)arg;
	if (o == OPT_NOW)
		f->now = true;
	else
		f->force = true;
	return 0;
}

/* The word for each outcome, in --json. */
static const char *rotated_name(km_plan_rotated_t o)
{
	static const char *const names[] = {
		[KM_PLAN_ROTATED_PROMOTED] = "promoted", [KM_PLAN_ROTATED_SCHEDULED] = "scheduled",
		[KM_PLAN_ROTATED_NEW] = "new", [KM_PLAN_ROTATED_PENDING] = "pending",
		[KM_PLAN_ROTATED_FIRST] = "first", [KM_PLAN_ROTATED_EARLY] = "early",
	};
	return (unsigned)o < sizeof(names) / sizeof(names[0]) ? names[o] : "unknown";
}

static void rotate_print(const char *env, const char *name, const km_apply_rotation_t *res,
                         const km_policy_t *pol)
{
	char t[32], d[32];
	const char *when = km_cli_iso8601(res->activates_at, t, sizeof(t));
	switch (res->outcome) {
	case KM_PLAN_ROTATED_PROMOTED:
		printf("%s/%s: key %s, published for at least publish_lead (%s), is active now%s%s%s\n",
		       env, name, res->kid, km_duration_format(pol->publish_lead, d, sizeof(d)),
		       res->previous_kid[0] ? "; " : "", res->previous_kid,
		       res->previous_kid[0] ? " retired" : "");
		break;
	case KM_PLAN_ROTATED_SCHEDULED:
		printf("%s/%s: published key %s is the successor; it activates at %s (after "
		       "publish_lead)\n", env, name, res->kid, when);
		break;
	case KM_PLAN_ROTATED_NEW:
		printf("%s/%s: new key %s is published; it activates at %s (after publish_lead)\n",
		       env, name, res->kid, when);
		break;
	case KM_PLAN_ROTATED_PENDING:
		printf("%s/%s: a rotation is already pending: %s activates at %s; nothing added "
		       "(--force requests another)\n", env, name, res->kid, when);
		break;
	case KM_PLAN_ROTATED_FIRST:
		printf("%s/%s: new key %s is active\n", env, name, res->kid);
		break;
	case KM_PLAN_ROTATED_EARLY:
		printf("%s/%s: key %s is active%s%s%s\n", env, name, res->kid,
		       res->previous_kid[0] ? "; " : "", res->previous_kid,
		       res->previous_kid[0] ? " retired" : "");
		break;
	}
}

static int rotate(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "now", no_argument, NULL, OPT_NOW },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr rotate", .help = rotate_help, .opts = opts, .option = rotate_option,
		.min_pos = 1, .max_pos = 1, .count_error = "expected exactly one ENV/NAME",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	rotate_opts_t f = { false, false };
	int npos, rc = km_cli_args_parse(&args, &f, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if (f.now && !f.force)
		return km_cli_usage_error(cmd, "--now skips the publish lead and can make verifiers "
		                          "reject tokens: add --force to confirm");
	km_plan_rotate_mode_t mode = f.now ? KM_PLAN_ROTATE_NOW
	                                   : f.force ? KM_PLAN_ROTATE_ANOTHER : KM_PLAN_ROTATE_NORMAL;

	char env_name[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1], err[1024] = "";
	if (km_name_split(pos[0], false, env_name, name, err, sizeof(err)) != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);
	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	rc = km_cli_env_open(env_name, &cfg, &env);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	km_apply_rotation_t res;
	km_store_key_t k;
	int r = km_apply_rotate(env, name, km_cli_now(), mode, NULL, &res, err, sizeof(err));
	if (r == KM_EOK)
		r = km_store_key_get(km_env_store(env), res.kid, &k, err, sizeof(err));
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
		goto out;
	}
	km_policy_t pol;
	km_env_keyset_policy(env, name, &pol);
	if (res.outcome == KM_PLAN_ROTATED_EARLY) {
		char d[32];
		fprintf(stderr, "keymgr: warning: %s activated without publish lead; verifiers that "
		        "do not refetch the JWKS on an unknown kid may reject its tokens for up to "
		        "%s\n", k.kid, km_duration_format(res.gap, d, sizeof(d)));
	}
	if (c.json) {
		char t[32];
		json_t *j = km_cli_key_json(&k);
		json_object_set_new(j, "env", json_string(env_name));
		json_object_set_new(j, "outcome", json_string(rotated_name(res.outcome)));
		if (k.state != KM_STATE_ACTIVE)
			json_object_set_new(j, "activates_at", json_string(km_cli_iso8601(
			        res.activates_at, t, sizeof(t))));
		json_object_set_new(j, "previous_kid", res.previous_kid[0]
		                    ? json_string(res.previous_kid) : json_null());
		rc = km_cli_print_json(j);
		json_decref(j);
	} else {
		rotate_print(env_name, name, &res, &pol);
	}
	if (res.outcome != KM_PLAN_ROTATED_PENDING)
		km_cli_wake_daemon(cfg, env_name, name);
out:
	km_cli_env_close(cfg, env);
	return rc;
}

/* --env and --reason of revoke and destroy (ctx of kid_option). */
typedef struct {
	bool want_reason;
	const char *env, *reason;
} kid_opts_t;

static int kid_option(const char *cmd, int o, const char *arg, void *ctx)
{
	kid_opts_t *k = ctx;
	(void)cmd;
	if (o == OPT_ENV)
		k->env = arg;
	else if (k->want_reason)
		k->reason = arg;
	else
		return KM_CLI_EXIT_USAGE; /* --reason: revoke only */
	return 0;
}

/*
 * Parses "KID --env ENV [--reason TEXT]" for revoke and destroy; opens the environment (revoke:
 * from a configuration that may have errors elsewhere). Returns an exit code; KM_CLI_EXIT_OK
 * with *env left NULL after printing help.
 */
static int kid_verb(int argc, char **argv, const char *cmd, const char *help, bool want_reason,
                    km_config_t **cfg, km_env_t **env, const char **kid, const char **reason,
                    bool *json)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "env", required_argument, NULL, OPT_ENV },
		{ "reason", required_argument, NULL, OPT_REASON },
		{ NULL, 0, NULL, 0 },
	};
	const km_cli_args_t args = {
		.cmd = cmd, .help = help, .opts = opts, .option = kid_option,
		.min_pos = 1, .max_pos = 1, .count_error = "expected exactly one KID",
	};
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	kid_opts_t k = { want_reason, NULL, NULL };
	int npos, rc = km_cli_args_parse(&args, &k, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if (!km_name_kid_valid(pos[0]))
		return km_cli_usage_error(cmd, "invalid kid: expected 1 to %d base64url characters",
		                          KM_KID_MAX);
	if (k.env == NULL)
		return km_cli_usage_error(cmd, "missing --env ENV: every change names its "
		                          "environment");
	if (want_reason && (k.reason == NULL || k.reason[0] == '\0'))
		return km_cli_usage_error(cmd, "missing --reason TEXT");
	*kid = pos[0];
	*reason = k.reason;
	*json = c.json;
	return want_reason ? km_cli_env_open_partial(k.env, cfg, env)
	                   : km_cli_env_open(k.env, cfg, env);
}

static int revoke(int argc, char **argv)
{
	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	const char *kid = NULL, *reason = NULL;
	bool json = false;
	char err[1024] = "";
	int rc = kid_verb(argc, argv, "keymgr revoke", revoke_help, true, &cfg, &env, &kid,
	                  &reason, &json);
	if (rc != KM_CLI_EXIT_OK || env == NULL)
		return rc;
	km_store_key_t k;
	km_apply_revoke_result_t res = { 0, 0, false };
	int r = km_key_lookup(env, kid, &k, err, sizeof(err));
	if (r == KM_EOK)
		r = km_apply_revoke(env, kid, reason, km_cli_now(), NULL, &res, err, sizeof(err));
	km_store_key_t cur;
	bool replaced = r == KM_EOK && k.state == KM_STATE_ACTIVE &&
	                km_store_key_active(km_env_store(env), k.keyset, &cur, NULL, 0) == KM_EOK;
	char why[1024] = "";
	if (r == KM_EOK && res.policy_broken)
		km_config_check(cfg, km_env_name(env), k.keyset, why, sizeof(why));
	if (r == KM_EOK)
		km_cli_wake_daemon(cfg, km_env_name(env), k.keyset); /* out of the served JWKS now */
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
	} else if (json) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:s?, s:b}", "kid", kid,
		                      "state", "revoked", "was", km_state_name(k.state),
		                      "replaced_by", replaced ? cur.kid : NULL, "gap_seconds",
		                      (json_int_t)res.gap, "exposure_until", NULL,
		                      "policy_broken", res.policy_broken);
		char t[32];
		if (res.exposure_until > 0)
			json_object_set_new(j, "exposure_until",
			                    json_string(km_cli_iso8601(res.exposure_until, t, sizeof(t))));
		if (res.policy_broken)
			json_object_set_new(j, "policy_error", json_string(why));
		rc = km_cli_print_json(j);
		json_decref(j);
	} else {
		char t[32], d[32];
		printf("key %s revoked (was %s) and removed from the JWKS\n", kid,
		       km_state_name(k.state));
		if (res.exposure_until > 0)
			printf("exposure: verifiers that cached the JWKS may accept it until %s\n",
			       km_cli_iso8601(res.exposure_until, t, sizeof(t)));
		else if (res.policy_broken)
			printf("exposure: unknown: verifiers that cached the JWKS may accept it until "
			       "their cache expires (the Cache-Control max-age the JWKS was served with; "
			       "the key set's jwks_max_age is not read from a policy with errors)\n");
		if (replaced && res.gap == 0)
			printf("standby key %s is now active: no verification gap\n", cur.kid);
		else if (replaced)
			printf("new key %s is active; verifiers that do not refetch the JWKS on an "
			       "unknown kid may reject its tokens for up to %s\n", cur.kid,
			       km_duration_format(res.gap, d, sizeof(d)));
		if (!res.policy_broken && !replaced && k.state == KM_STATE_ACTIVE)
			fprintf(stderr, "keymgr: warning: %s/%s has no active key now; run 'keymgr "
			        "rotate %s/%s'\n", km_env_name(env), k.keyset, km_env_name(env), k.keyset);
	}
	if (r == KM_EOK && res.policy_broken)
		km_cli_error("warning: %s/%s: revoked only: no standby promoted and no key generated, "
		             "because %s; fix the configuration, then run 'keymgr rotate %s/%s'",
		             km_env_name(env), k.keyset, why, km_env_name(env), k.keyset);
	km_cli_env_close(cfg, env);
	return rc;
}

static int destroy(int argc, char **argv)
{
	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	const char *kid = NULL, *reason = NULL;
	bool json = false;
	char err[1024] = "";
	int rc = kid_verb(argc, argv, "keymgr destroy", destroy_help, false, &cfg, &env, &kid,
	                  &reason, &json);
	if (rc != KM_CLI_EXIT_OK || env == NULL)
		return rc;
	int r = km_key_destroy(env, kid, km_cli_now(), err, sizeof(err));
	if (r != KM_EOK)
		rc = km_cli_fail(r, err);
	else if (json)
		printf("{\"kid\":\"%s\",\"state\":\"destroyed\"}\n", kid);
	else
		printf("key %s destroyed in the token; its record is kept\n", kid);
	km_cli_env_close(cfg, env);
	return rc;
}

int km_cmd_rotate(int argc, char **argv)
{
	return rotate(argc, argv);
}

int km_cmd_revoke(int argc, char **argv)
{
	return revoke(argc, argv);
}

int km_cmd_destroy(int argc, char **argv)
{
	return destroy(argc, argv);
}
