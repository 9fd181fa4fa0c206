/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr policy show | check: the effective policy, and the compliance report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/core/compliance.h"

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
	"missing from the token; private keys in the token that are not safe (not sensitive,\n"
	"extractable, or able to decrypt, unwrap or derive: check unsafe-token-key);\n"
	"environments sharing a token; missing standby keys.\n"
	"Opens each environment's token (with its PIN) to compare it with the store.\n"
	"  --at TIME   judge the timing rules as of TIME (ISO 8601 UTC, a date or\n"
	"              @UNIXSECONDS) instead of now, e.g. to see what will be overdue\n"
	"Store and token are compared by reconciliation's own comparison: what this check\n"
	"flags there, 'keymgr reconcile' repairs or explains. Each finding is a violation\n"
	"(an action is needed: its repair is named), pending (satisfied at the time shown\n"
	"without any action, e.g. a standby published less than publish_lead ago) or a\n"
	"warning (a key set that cannot sign: no issuer, audiences or signers, naming what to\n"
	"set).\n"
	"  --json      {\"compliant\",\"violations_count\",\"violations\",\"pending\",\"warnings\"}:\n"
	"              each finding has env, keyset, kid, check, message, repair, and\n"
	"              pending ones until (RFC 3339 UTC)\n"
	"Exit status 1 on any violation; pending findings and warnings alone exit 0.\n";

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

/* The compliance report being printed (ctx of on_finding). */
typedef struct {
	json_t *violations, *pending, *warnings;   /* NULL for text */
	unsigned n[3];                             /* by km_finding_level_t */
} report_t;

static void on_finding(void *vctx, const km_finding_t *f)
{
	report_t *r = vctx;
	char t[32];
	r->n[f->level]++;
	json_t *arr = f->level == KM_FINDING_VIOLATION ? r->violations
	              : f->level == KM_FINDING_PENDING ? r->pending : r->warnings;
	if (arr != NULL) {
		json_t *j = json_pack("{s:s, s:s?, s:s?, s:s, s:s, s:s?}", "env", f->env, "keyset",
		                      f->keyset, "kid", f->kid, "check", f->check, "message",
		                      f->message, "repair", f->repair);
		if (f->level == KM_FINDING_PENDING)
			json_object_set_new(j, "until", json_string(km_cli_iso8601(f->until, t,
			                                                           sizeof(t))));
		json_array_append_new(arr, j);
		return;
	}
	printf("%-18s %s%s%s%s%s: ", f->check, f->env, f->keyset ? "/" : "",
	       f->keyset ? f->keyset : "", f->kid ? " " : "", f->kid ? f->kid : "");
	if (f->level == KM_FINDING_PENDING)
		printf("pending until %s: ", km_cli_iso8601(f->until, t, sizeof(t)));
	else if (f->level == KM_FINDING_WARNING)
		printf("warning: ");
	printf("%s%s%s%s\n", f->message, f->repair ? " (repair: " : "", f->repair ? f->repair : "",
	       f->repair ? ")" : "");
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
	report_t rep = { c.json ? json_array() : NULL, c.json ? json_array() : NULL,
	                 c.json ? json_array() : NULL, { 0, 0, 0 } };
	km_compliance_config(cfg, only ? only->name : NULL, on_finding, &rep);
	for (size_t i = 0; i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		if (only != NULL && e != only)
			continue;
		km_env_t *env = NULL;
		int r = km_env_open(cfg, e->name, &env, err, sizeof(err));
		if (r != KM_EOK) {
			km_finding_t f = { .level = KM_FINDING_VIOLATION, .env = e->name,
			                   .check = "store", .message = err };
			on_finding(&rep, &f);
			continue;
		}
		km_compliance_env(env, now, on_finding, &rep);
		km_env_free(env);
	}
	unsigned nv = rep.n[KM_FINDING_VIOLATION], np = rep.n[KM_FINDING_PENDING];
	if (c.json) {
		json_t *j = json_pack("{s:b, s:i, s:O, s:O, s:O}", "compliant", nv == 0,
		                      "violations_count", nv, "violations", rep.violations,
		                      "pending", rep.pending, "warnings", rep.warnings);
		km_cli_print_json(j);
		json_decref(j);
	} else if (nv == 0) {
		printf("compliant: no violation found%s%s\n",
		       np ? " (pending: satisfied later without any action)" : "",
		       rep.n[KM_FINDING_WARNING] ? " (see the warnings)" : "");
	} else {
		printf("%u violation%s\n", nv, nv == 1 ? "" : "s");
	}
	json_decref(rep.violations);
	json_decref(rep.pending);
	json_decref(rep.warnings);
	km_config_free(cfg);
	return nv == 0 ? KM_CLI_EXIT_OK : KM_CLI_EXIT_REFUSED;
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
