/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr policy show | check: the effective policy, and the compliance report. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/core/apply.h"

static const char show_help[] =
	"Usage: keymgr [-c FILE] policy show [ENV[/NAME]] [--json]\n"
	"\n"
	"Prints the effective policy of each environment (and of each key set with overrides,\n"
	"or of the key set named), and where every value comes from: builtin (keymgr's\n"
	"defaults for the environment class), env (environments.ENV.policy or defaults.policy)\n"
	"or keyset (environments.ENV.keysets.NAME.policy).\n"
	"When the configuration has errors, a policy they touch is not shown (exit status 1),\n"
	"never filled in from defaults; the others are.\n";

static const char check_help[] =
	"Usage: keymgr [-c FILE] policy check [ENV] [--at TIME] [--json]\n"
	"\n"
	"Compliance report. Finds: key sets overdue for rotation; keys active past\n"
	"rotation_period; keys whose algorithm or size the policy no longer allows; missing or\n"
	"disallowed owners and purposes; key sets sharing a purpose against\n"
	"require_distinct_purpose; keys in the token unknown to the store, and store keys\n"
	"missing from the token; environments sharing a token; missing standby keys.\n"
	"Opens each environment's token (with its PIN) to compare it with the store.\n"
	"  --at TIME   judge the timing rules as of TIME (ISO 8601 UTC, a date or\n"
	"              @UNIXSECONDS) instead of now, e.g. to see what will be overdue\n"
	"Exit status 1 on any violation.\n";

static const char *src_name(km_policy_src_t s)
{
	return s == KM_POLICY_SRC_KEYSET ? "keyset" : s == KM_POLICY_SRC_ENV ? "env" : "builtin";
}

/* The value of field f of p as text. */
static void field_text(const km_policy_t *p, km_policy_field_t f, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	switch (f) {
	case KM_POLICY_F_ALGORITHMS:
		for (int a = 1; a <= KM_ALG_COUNT; a++)
			if (p->algorithms & (1u << a))
				used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
				                         used ? "," : "", km_alg_name((km_alg_t)a));
		break;
	case KM_POLICY_F_MIN_RSA_BITS: snprintf(buf, len, "%u", p->min_rsa_bits); break;
	case KM_POLICY_F_ROTATION_PERIOD: km_duration_format(p->rotation_period, buf, len); break;
	case KM_POLICY_F_JWKS_MAX_AGE: km_duration_format(p->jwks_max_age, buf, len); break;
	case KM_POLICY_F_MAX_TOKEN_TTL: km_duration_format(p->max_token_ttl, buf, len); break;
	case KM_POLICY_F_CLOCK_SKEW: km_duration_format(p->clock_skew, buf, len); break;
	case KM_POLICY_F_PUBLISH_LEAD: km_duration_format(p->publish_lead, buf, len); break;
	case KM_POLICY_F_RETIRE_RETENTION: km_duration_format(p->retire_retention, buf, len); break;
	case KM_POLICY_F_DESTROY_AFTER: km_duration_format(p->destroy_after, buf, len); break;
	case KM_POLICY_F_STANDBY: snprintf(buf, len, "%s", p->standby ? "true" : "false"); break;
	case KM_POLICY_F_REQUIRE_DISTINCT_PURPOSE:
		snprintf(buf, len, "%s", p->require_distinct_purpose ? "true" : "false");
		break;
	case KM_POLICY_F_OWNERS:
	case KM_POLICY_F_PURPOSES: {
		size_t n = f == KM_POLICY_F_OWNERS ? p->n_owners : p->n_purposes;
		for (size_t i = 0; i < n; i++)
			used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
			                         i ? "," : "", f == KM_POLICY_F_OWNERS ? p->owners[i]
			                                                               : p->purposes[i]);
		if (n == 0)
			snprintf(buf, len, "%s", f == KM_POLICY_F_OWNERS ? "(any)" : "(built-in classes)");
		break;
	}
	case KM_POLICY_F_ACTIVATE_WHEN_SEEN_BY:
		for (size_t i = 0; i < p->n_activate_when_seen_by; i++)
			used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
			                         i ? "," : "", p->activate_when_seen_by[i]);
		if (p->n_activate_when_seen_by == 0)
			snprintf(buf, len, "(none)");
		break;
	case KM_POLICY_F_ACTIVATE_WHEN_SEEN_CEILING:
		km_duration_format(p->activate_when_seen_ceiling, buf, len);
		break;
	default: break;
	}
}

static void show_policy(const char *title, const km_policy_t *p, json_t *arr)
{
	char v[512];
	json_t *fields = arr ? json_object() : NULL;
	if (arr == NULL)
		printf("%s\n", title);
	for (int f = 0; f < KM_POLICY_F_COUNT; f++) {
		field_text(p, (km_policy_field_t)f, v, sizeof(v));
		const char *name = km_policy_field_name((km_policy_field_t)f);
		if (arr != NULL)
			json_object_set_new(fields, name, json_pack("{s:s, s:s}", "value", v,
			                    "source", src_name(p->src[f])));
		else
			printf("  %-26s %-40s %s\n", name, v, src_name(p->src[f]));
	}
	if (arr != NULL)
		json_array_append_new(arr, json_pack("{s:s, s:o}", "scope", title, "policy", fields));
}

/* A policy that errors in the configuration touch: named, not shown. Returns the exit code. */
static int show_broken(const char *title, const char *why, json_t *arr)
{
	if (arr != NULL)
		json_array_append_new(arr, json_pack("{s:s, s:n, s:s}", "scope", title, "policy",
		                                     "error", why));
	else
		printf("%s\n  not shown: %s\n", title, why);
	return KM_CLI_EXIT_REFUSED;
}

static int policy_show(int argc, char **argv)
{
	static const km_cli_args_t args = {
		.cmd = "keymgr policy show", .help = show_help,
		.min_pos = 0, .max_pos = 1, .count_error = "expected at most one ENV or ENV/NAME",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	int npos, rc = km_cli_args_parse(&args, NULL, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	char env[KM_ENV_NAME_MAX + 1] = "", name[KM_KEYSET_NAME_MAX + 1] = "", err[1024];
	if (npos == 1 && km_name_split(pos[0], true, env, name, err, sizeof(err)) != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);
	km_config_t *cfg = NULL;
	rc = km_cli_config_load_partial(&cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	const km_env_cfg_t *only = NULL;
	if (env[0]) {
		int r = km_config_env_lookup(cfg, env, &only, err, sizeof(err));
		if (r != KM_EOK) {
			km_config_free(cfg);
			return km_cli_fail(r, err);
		}
	}
	json_t *arr = c.json ? json_array() : NULL;
	for (size_t i = 0; i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		char title[KM_ENV_NAME_MAX + KM_KEYSET_NAME_MAX + 2];
		km_policy_t p;
		if (only != NULL && e != only)
			continue;
		if (name[0]) {
			snprintf(title, sizeof(title), "%s/%s", e->name, name);
			if (km_config_check(cfg, e->name, name, err, sizeof(err)) != KM_EOK ||
			    km_config_keyset_policy(cfg, e->name, name, &p) != KM_EOK)
				rc = show_broken(title, err, arr);
			else
				show_policy(title, &p, arr);
			continue;
		}
		if (km_config_env_policy(cfg, e->name, &p) != KM_EOK) {
			km_config_env_errors(cfg, e->name, err, sizeof(err));
			rc = show_broken(e->name, err, arr);
			continue;
		}
		show_policy(e->name, &p, arr);
		for (size_t k = 0; k < e->n_keysets; k++) {
			snprintf(title, sizeof(title), "%s/%s", e->name, e->keysets[k]->name);
			show_policy(title, &e->keysets[k]->policy, arr);
		}
		if (km_config_env_errors(cfg, e->name, err, sizeof(err)) > 0) {
			snprintf(title, sizeof(title), "%s/*", e->name);   /* key sets left out */
			rc = show_broken(title, err, arr);
		}
	}
	if (c.json)
		km_cli_print_json(arr);
	json_decref(arr);
	if (only == NULL)
		rc = km_cli_config_complete(cfg, rc);
	km_config_free(cfg);
	return rc;
}

/* The compliance report being built. */
typedef struct {
	json_t *json;          /* array of violations, or NULL for text */
	unsigned count;
} report_t;

static void violation(report_t *r, const char *env, const char *keyset, const char *kid,
                      const char *check, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void violation(report_t *r, const char *env, const char *keyset, const char *kid,
                      const char *check, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->count++;
	if (r->json != NULL)
		json_array_append_new(r->json, json_pack("{s:s, s:s?, s:s?, s:s, s:s}", "env", env,
		                      "keyset", keyset, "kid", kid, "check", check, "message", msg));
	else
		printf("%-14s %s%s%s%s%s: %s\n", check, env, keyset ? "/" : "", keyset ? keyset : "",
		       kid ? " " : "", kid ? kid : "", msg);
}

static void check_keyset(km_env_t *env, const km_store_keyset_t *ks, int64_t now, report_t *rep)
{
	const char *e = km_env_name(env);
	km_policy_t pol;
	char a[32], b[32], err[512];
	if (km_env_keyset_policy(env, ks->name, &pol) != KM_EOK)
		return;
	if (ks->owner[0] == '\0')
		violation(rep, e, ks->name, NULL, "owner", "key set has no owner");
	else if (!km_policy_owner_allowed(&pol, ks->owner))
		violation(rep, e, ks->name, NULL, "owner", "owner '%s' is not allowed by the policy",
		          ks->owner);
	if (!km_policy_purpose_allowed(&pol, ks->purpose))
		violation(rep, e, ks->name, NULL, "purpose", "purpose '%s' is not allowed by the "
		          "policy", ks->purpose);

	km_plan_key_t *keys = NULL;
	km_store_key_t *recs = NULL;
	size_t n = 0;
	if (km_apply_load_keys(env, ks->name, &keys, &recs, &n, err, sizeof(err)) != KM_EOK)
		return;
	bool has_successor = false;
	const km_store_key_t *active = NULL;
	for (size_t i = 0; i < n; i++) {
		const km_store_key_t *k = &recs[i];
		if (k->state == KM_STATE_ACTIVE)
			active = k;
		if (k->state == KM_STATE_PUBLISHED)
			has_successor = true;
		if ((k->state == KM_STATE_GENERATED || k->state == KM_STATE_PUBLISHED ||
		     k->state == KM_STATE_ACTIVE) && !km_policy_alg_allowed(&pol, k->alg, k->rsa_bits))
			violation(rep, e, ks->name, k->kid, "algorithm", "%s%s key is no longer allowed "
			          "by the policy (algorithms, min_rsa_bits %u)", km_alg_name(k->alg),
			          k->rsa_bits ? (k->rsa_bits < pol.min_rsa_bits ? " (RSA too small)" : "")
			                      : "", pol.min_rsa_bits);
	}
	if (active != NULL) {
		int64_t t_act = active->state_at[KM_STATE_ACTIVE];
		if (now > t_act + pol.rotation_period)
			violation(rep, e, ks->name, active->kid, "active-too-long", "active for %s, "
			          "longer than rotation_period %s",
			          km_duration_format(now - t_act, a, sizeof(a)),
			          km_duration_format(pol.rotation_period, b, sizeof(b)));
		if (now > t_act + pol.rotation_period - pol.publish_lead && !has_successor)
			violation(rep, e, ks->name, NULL, "rotation-overdue", "the successor should have "
			          "been published %s ago (rotation_period %s - publish_lead %s)",
			          km_duration_format(now - (t_act + pol.rotation_period -
			                                    pol.publish_lead), a, sizeof(a)),
			          km_duration_format(pol.rotation_period, b, sizeof(b)),
			          km_duration_format(pol.publish_lead, err, sizeof(err)));
	}
	km_plan_t *plan = NULL;
	if (km_plan_create(&plan) == KM_EOK && km_plan_compute(plan, keys, n, &pol, now) == KM_EOK) {
		for (size_t i = 0; i < km_plan_n_warnings(plan); i++) {
			const km_plan_warning_t *w = km_plan_warning(plan, i);
			if (w->code == KM_PLAN_W_NO_STANDBY || w->code == KM_PLAN_W_NO_ACTIVE ||
			    w->code == KM_PLAN_W_MULTI_ACTIVE || w->code == KM_PLAN_W_BAD_RECORD)
				violation(rep, e, ks->name, NULL, km_plan_warn_name(w->code), "%s", w->msg);
		}
	}
	km_plan_free(plan);
	km_store_keys_free(recs);
	free(keys);
}

/* Keys in the token unknown to the store, and store keys missing from the token. */
static void check_token(km_env_t *env, report_t *rep)
{
	const char *e = km_env_name(env);
	char err[1024] = "";
	km_token_t *t = NULL;
	int r = km_env_token(env, &t, err, sizeof(err));
	if (r != KM_EOK) {
		violation(rep, e, NULL, NULL, "token", "token not reachable, store and token not "
		          "compared: %s", err);
		return;
	}
	km_token_key_info_t *tk = NULL;
	km_store_key_t *sk = NULL;
	size_t nt = 0, ns = 0;
	km_store_key_filter_t all = { 0 };
	if ((r = km_token_list_keys(t, &tk, &nt)) != KM_EOK ||
	    (r = km_store_keys_query(km_env_store(env), &all, &sk, &ns, err, sizeof(err))) != KM_EOK) {
		violation(rep, e, NULL, NULL, "token", "cannot list keys: %s", km_strerror(r));
		goto out;
	}
	for (size_t i = 0; i < nt; i++) {
		bool known = false;
		for (size_t j = 0; j < ns && !known; j++)
			known = sk[j].cka_id_len == tk[i].id_len &&
			        memcmp(sk[j].cka_id, tk[i].id, tk[i].id_len) == 0;
		/* The environment's audit key (keymgr-audit:ENV) is known to the store's audit
		 * tables, not to the key sets. */
		bool audit_key = false;
		if (!known && km_store_audit_key_is(km_env_store(env), tk[i].id, tk[i].id_len,
		                                    &audit_key, NULL, 0) == KM_EOK && audit_key)
			known = true;
		if (!known) {
			char hex[2 * 64 + 1] = "";
			for (size_t b = 0; b < tk[i].id_len && b < 64; b++)
				snprintf(hex + 2 * b, 3, "%02x", tk[i].id[b]);
			violation(rep, e, NULL, NULL, "unknown-token-key", "token holds a %s key pair "
			          "unknown to the store (CKA_ID %s, label '%s')",
			          tk[i].keymgr_id ? "keymgr" : "foreign", hex[0] ? hex : "(none)",
			          tk[i].label);
		}
	}
	for (size_t j = 0; j < ns; j++) {
		if (!km_state_in_token(sk[j].state) || (sk[j].pending && sk[j].kid[0] == '\0'))
			continue;
		bool present = false;
		for (size_t i = 0; i < nt && !present; i++)
			present = sk[j].cka_id_len == tk[i].id_len &&
			          memcmp(sk[j].cka_id, tk[i].id, tk[i].id_len) == 0 && tk[i].has_private;
		if (!present)
			violation(rep, e, sk[j].keyset, sk[j].kid, "missing-token-key", "the store has "
			          "this %s key but the token does not hold its private key",
			          km_state_name(sk[j].state));
	}
out:
	free(tk);
	km_store_keys_free(sk);
}

/* Environments whose tokens turn out to be the same device (same serial). */
static void check_shared_tokens(const km_config_t *cfg, report_t *rep)
{
	size_t n = km_config_env_count(cfg);
	char (*serials)[KM_TOKEN_SERIAL_MAX + 1] = calloc(n ? n : 1, KM_TOKEN_SERIAL_MAX + 1);
	if (serials == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		km_token_cfg_t tc = e->token;
		km_token_t *t = NULL;
		char err[256];
		tc.pin_source = NULL; /* token info only: no login, no PIN needed */
		if (km_token_open(&tc, &t, err, sizeof(err)) != KM_EOK)
			continue;
		km_token_info_t info;
		km_token_get_info(t, &info);
		snprintf(serials[i], sizeof(serials[i]), "%s", info.serial);
		km_token_free(t);
		for (size_t j = 0; j < i; j++)
			if (serials[j][0] && strcmp(serials[j], serials[i]) == 0)
				violation(rep, e->name, NULL, NULL, "shared-token", "uses the same token "
				          "(serial %s) as environment '%s'", serials[i],
				          km_config_env_at(cfg, j)->name);
	}
	free(serials);
}

enum { OPT_AT = 0x10 };

/* --at, the only option of policy check: into the int64_t ctx. */
static int at_option(const char *cmd, int o, const char *arg, void *ctx)
{
	(void)o;
	if (km_cli_parse_time(arg, ctx) != KM_EOK)
		return km_cli_usage_error(cmd, "invalid --at: expected ISO 8601 UTC "
		                          "(2026-12-01T00:00:00Z), a date or @UNIXSECONDS");
	return 0;
}

static int policy_check(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "at", required_argument, NULL, OPT_AT },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr policy check", .help = check_help, .opts = opts, .option = at_option,
		.min_pos = 0, .max_pos = 1, .count_error = "expected at most one ENV",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	int64_t now = km_cli_now();
	int npos, rc = km_cli_args_parse(&args, &now, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if (npos == 1 && !km_name_env_valid(pos[0]))
		return km_cli_usage_error(cmd, "invalid environment name: expected a lowercase slug");
	km_config_t *cfg = NULL;
	rc = km_cli_config_load(&cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	char err[1024] = "";
	const km_env_cfg_t *only = NULL;
	if (npos == 1) {
		int r = km_config_env_lookup(cfg, pos[0], &only, err, sizeof(err));
		if (r != KM_EOK) {
			km_config_free(cfg);
			return km_cli_fail(r, err);
		}
	}
	report_t rep = { c.json ? json_array() : NULL, 0 };
	if (only == NULL)
		check_shared_tokens(cfg, &rep);
	for (size_t i = 0; i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		if (only != NULL && e != only)
			continue;
		km_env_t *env = NULL;
		int r = km_env_open(cfg, e->name, &env, err, sizeof(err));
		if (r != KM_EOK) {
			violation(&rep, e->name, NULL, NULL, "store", "%s", err);
			continue;
		}
		km_store_keyset_t *list = NULL;
		size_t n = 0;
		if (km_store_keyset_list(km_env_store(env), NULL, &list, &n, err, sizeof(err)) == KM_EOK) {
			for (size_t k = 0; k < n; k++) {
				check_keyset(env, &list[k], now, &rep);
				km_policy_t pol;
				km_env_keyset_policy(env, list[k].name, &pol);
				for (size_t j = 0; pol.require_distinct_purpose && j < k; j++)
					if (strcmp(list[j].purpose, list[k].purpose) == 0)
						violation(&rep, e->name, list[k].name, NULL, "distinct-purpose",
						          "shares purpose '%s' with key set %s, but the policy "
						          "requires a distinct purpose", list[k].purpose,
						          list[j].name);
			}
		}
		km_store_keysets_free(list);
		check_token(env, &rep);
		km_env_free(env);
	}
	if (c.json) {
		json_t *j = json_pack("{s:b, s:i, s:O}", "compliant", rep.count == 0, "violations_count",
		                      rep.count, "violations", rep.json);
		km_cli_print_json(j);
		json_decref(j);
	} else if (rep.count == 0) {
		printf("compliant: no violation found\n");
	} else {
		printf("%u violation%s\n", rep.count, rep.count == 1 ? "" : "s");
	}
	json_decref(rep.json);
	km_config_free(cfg);
	return rep.count == 0 ? KM_CLI_EXIT_OK : KM_CLI_EXIT_REFUSED;
}

static const km_cli_command_t policy_commands[] = {
	{ "show", policy_show, "print the effective policy and where each value comes from" },
	{ "check", policy_check, "compliance report; exit 1 on any violation" },
	{ NULL, NULL, NULL },
};

int km_cmd_policy(int argc, char **argv)
{
	return km_cli_dispatch(policy_commands, "keymgr policy", NULL, argc - 1, argv + 1);
}
