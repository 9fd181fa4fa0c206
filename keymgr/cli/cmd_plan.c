/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr plan | apply: the planner's schedule, and carrying out what is due. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/core/apply.h"
#include "keymgr/report/report.h"

static const char plan_help[] =
	"Usage: keymgr [-c FILE] plan [ENV[/NAME]] [--horizon DURATION] [--at TIME] [--json]\n"
	"       keymgr [-c FILE] plan [ENV[/NAME]] --format svg|html [--from TIME]\n"
	"                         [--horizon DURATION] [--at TIME] [--output FILE]\n"
	"\n"
	"Shows the upcoming lifecycle events of every key set (or of one environment or key\n"
	"set) as the planner schedules them from the policy: generate, publish, activate,\n"
	"retire, remove, destroy, each with its time and reason, and any warning (overdue\n"
	"rotation, missing standby). Changes nothing.\n"
	"  --horizon D   how far ahead to look (default 90d; e.g. 12h, 30d, 1y is 365d)\n"
	"  --at TIME     plan as if it were TIME: ISO 8601 UTC (2026-12-01T00:00:00Z),\n"
	"                a date (2026-12-01) or @UNIXSECONDS (default: now)\n"
	"  --format F    text (default), json (the same as --json), or a key timeline:\n"
	"                svg (a picture) or html (a page with the picture and the planned\n"
	"                actions, self-contained). One band per key set, one bar per key\n"
	"                coloured by state, hatched after now (the plan), revocations and\n"
	"                the exposure after them, the standby, owner and purpose changes\n"
	"  --from TIME   the timeline's start (default: the horizon before now); it ends at\n"
	"                now + horizon. Keys whose life lies outside it are not drawn\n"
	"  --output FILE write the picture or page to FILE (replaced atomically), not stdout\n"
	"docs/auditor-guide.md explains how to read the timeline.\n";

static const char apply_help[] =
	"Usage: keymgr [-c FILE] apply [ENV[/NAME]] [--dry-run] [--json]\n"
	"\n"
	"Carries out every lifecycle action that is due now, exactly as keymgrd does on its\n"
	"ticks: generate and publish successors, activate them once published for\n"
	"publish_lead, retire, remove after retire_retention, destroy after destroy_after.\n"
	"Safe to run from cron at any interval: a late run never activates a key early.\n"
	"The audit log records these changes via \"apply\" (by hand: \"cli\").\n"
	"  --dry-run   print what is due without doing it\n"
	"  --json      {\"actions\":[...],\"applied\",\"failed\",\"errors\":[{\"env\",\"keyset\",\n"
	"              \"error\"}],\"dry_run\"}: errors are the key sets (\"keyset\" null: whole\n"
	"              environments) that could not be planned or changed at all (unknown,\n"
	"              the change lock held, the store busy)\n"
	"Exit status 1 if any action or key set failed (the others are still applied); the\n"
	"errors are also printed on stderr, and \"nothing due\" only when there was none.\n";

enum { OPT_HORIZON = 0x10, OPT_AT, OPT_DRY_RUN, OPT_FORMAT, OPT_FROM, OPT_OUTPUT };

/* Calls fn for each targeted key set of each targeted environment. */
typedef int (*keyset_fn)(km_env_t *env, const char *keyset, void *ctx);
/* A failure that kept an environment (keyset NULL) or a key set from being visited. */
typedef void (*target_err_fn)(void *ctx, const char *env, const char *keyset, const char *msg);

/* Says a target's failure on stderr, and to err_fn (may be NULL). Returns the exit code. */
static int target_fail(target_err_fn err_fn, void *ctx, const char *env, const char *keyset,
                       int r, const char *msg)
{
	if (err_fn != NULL)
		err_fn(ctx, env, keyset, msg[0] ? msg : km_strerror(r));
	return km_cli_fail(r, msg);
}

static int each_keyset(km_config_t *cfg, const char *env_only, const char *keyset_only,
                       keyset_fn fn, target_err_fn err_fn, void *ctx)
{
	int rc = KM_CLI_EXIT_OK;
	char err[1024] = "";
	for (size_t i = 0; i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		if (env_only != NULL && strcmp(e->name, env_only) != 0)
			continue;
		km_env_t *env = NULL;
		if (env_only == NULL && !km_store_exists(e->store))
			continue; /* never used: no key sets, and planning creates no store */
		int r = km_env_open(cfg, e->name, &env, err, sizeof(err));
		if (r != KM_EOK) {
			rc = target_fail(err_fn, ctx, e->name, NULL, r, err);
			continue;
		}
		km_store_keyset_t *list = NULL;
		size_t n = 0;
		if (keyset_only != NULL) {
			km_store_keyset_t ks;
			r = km_store_keyset_get(km_env_store(env), keyset_only, &ks, err, sizeof(err));
			if (r == KM_ENOENT)
				snprintf(err, sizeof(err), "unknown key set %s/%s", e->name, keyset_only);
			if (r == KM_EOK)
				r = fn(env, keyset_only, ctx);
			else
				rc = target_fail(err_fn, ctx, e->name, keyset_only, r, err);
			if (r != KM_EOK)
				rc = KM_CLI_EXIT_REFUSED;
		} else if ((r = km_store_keyset_list(km_env_store(env), NULL, &list, &n, err,
		                                     sizeof(err))) != KM_EOK) {
			rc = target_fail(err_fn, ctx, e->name, NULL, r, err);
		}
		for (size_t j = 0; j < n; j++)
			if (fn(env, list[j].name, ctx) != KM_EOK)
				rc = KM_CLI_EXIT_REFUSED;
		km_store_keysets_free(list);
		km_env_free(env);
	}
	return rc;
}

/* Parses [ENV[/NAME]] and checks the environment exists. */
static int target(const char *cmd, int npos, char **pos, km_config_t *cfg,
                  char env[KM_ENV_NAME_MAX + 1], char name[KM_KEYSET_NAME_MAX + 1])
{
	char err[1024];
	env[0] = name[0] = '\0';
	if (npos < 0 || npos > 1)
		return km_cli_usage_error(cmd, "expected at most one ENV or ENV/NAME");
	if (npos == 0)
		return KM_CLI_EXIT_OK;
	if (km_name_split(pos[0], true, env, name, err, sizeof(err)) != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);
	const km_env_cfg_t *e;
	int r = km_config_env_lookup(cfg, env, &e, err, sizeof(err));
	return r == KM_EOK ? KM_CLI_EXIT_OK : km_cli_fail(r, err);
}

typedef enum { PLAN_TEXT = 0, PLAN_JSON, PLAN_SVG, PLAN_HTML } plan_format_t;

typedef struct {
	int64_t now, horizon;
	json_t *json;       /* array, or NULL for text */
	/* --format svg|html */
	plan_format_t format;
	bool has_from;
	int64_t from;
	const char *output;
	km_timeline_t *tl;
	json_t *events, *warnings;
	bool undrawn;       /* a key set could not be drawn at all: nothing is written */
} plan_ctx_t;

static int plan_one(km_env_t *env, const char *keyset, void *vctx)
{
	plan_ctx_t *c = vctx;
	km_policy_t pol;
	km_plan_key_t *keys = NULL;
	km_store_key_t *recs = NULL;
	km_plan_t *plan = NULL;
	size_t n = 0;
	char err[1024] = "", t[32];
	int r = km_env_keyset_policy(env, keyset, &pol);
	if (r == KM_CONFIG_EBROKEN)   /* never planned with an unvalidated policy */
		km_config_check(km_env_config(env), km_env_name(env), keyset, err, sizeof(err));
	if (r == KM_EOK)
		r = km_apply_load_keys(env, keyset, &keys, &recs, &n, err, sizeof(err));
	if (r == KM_EOK)
		r = km_plan_create(&plan);
	if (r == KM_EOK)
		r = km_plan_upcoming(plan, keys, n, &pol, c->now, c->horizon);
	if (r != KM_EOK) {
		km_cli_fail(r, err[0] ? err : km_strerror(r));
		goto out;
	}
	json_t *ja = c->json ? json_array() : NULL, *jw = c->json ? json_array() : NULL;
	if (!c->json)
		printf("%s/%s\n", km_env_name(env), keyset);
	for (size_t i = 0; i < km_plan_n_actions(plan); i++) {
		const km_plan_action_t *a = km_plan_action(plan, i);
		char who[KM_KID_MAX + 16];
		if (a->key < n)
			snprintf(who, sizeof(who), "%s", recs[a->key].kid);
		else
			snprintf(who, sizeof(who), "new key #%zu", a->key - n); /* numbered like the planner's reasons */
		const char *when = km_cli_iso8601(a->at, t, sizeof(t));
		if (c->json)
			json_array_append_new(ja, json_pack("{s:s, s:s, s:s, s:b, s:s}", "at", when,
			        "action", km_plan_op_name(a->op), "key", who, "due", a->at <= c->now,
			        "reason", a->reason));
		else
			printf("  %s%s %-9s %-44s %s\n", when, a->at <= c->now ? " (due)" : "",
			       km_plan_op_name(a->op), who, a->reason);
	}
	if (!c->json && km_plan_n_actions(plan) == 0)
		printf("  nothing scheduled within the horizon\n");
	for (size_t i = 0; i < km_plan_n_warnings(plan); i++) {
		const km_plan_warning_t *w = km_plan_warning(plan, i);
		if (c->json)
			json_array_append_new(jw, json_pack("{s:s, s:s}", "warning",
			        km_plan_warn_name(w->code), "message", w->msg));
		else
			printf("  warning: %s: %s\n", km_plan_warn_name(w->code), w->msg);
	}
	if (c->json) {
		int64_t wake = km_plan_next_wake(plan);
		json_array_append_new(c->json, json_pack("{s:s, s:s, s:o, s:o, s:s?}",
		        "env", km_env_name(env), "keyset", keyset, "events", ja, "warnings", jw,
		        "next_wake", wake == INT64_MAX ? NULL : km_cli_iso8601(wake, t, sizeof(t))));
	}
out:
	km_plan_free(plan);
	km_store_keys_free(recs);
	free(keys);
	return r;
}

/* A key set's band of the timeline. One whose policy has errors is drawn without its plan
 * (the picture says so) and still fails the command, as the text plan does. */
static int draw_one(km_env_t *env, const char *keyset, void *vctx)
{
	plan_ctx_t *c = vctx;
	char err[1024] = "";
	int r = km_report_timeline_keyset(env, keyset, c->tl, c->events, c->warnings, err,
	                                  sizeof(err));
	if (r != KM_EOK && r != KM_CONFIG_EBROKEN)
		c->undrawn = true;
	if (r != KM_EOK)
		km_cli_fail(r, err[0] ? err : km_strerror(r));
	return r;
}

/* An environment or key set that could not be drawn at all (unknown, its store unreadable). */
static void draw_error(void *vctx, const char *env, const char *keyset, const char *msg)
{
	(void)env;
	(void)keyset;
	(void)msg;
	((plan_ctx_t *)vctx)->undrawn = true;
}

/* plan --format svg|html: the timeline of the targets, written to --output or stdout. Not
 * written when a target could not be drawn: a picture without it would look complete. */
static int draw(km_config_t *cfg, const char *env, const char *name, plan_ctx_t *ctx)
{
	int64_t to = ctx->now + ctx->horizon, from = ctx->has_from ? ctx->from :
	             ctx->now - ctx->horizon;
	char title[KM_ENV_NAME_MAX + KM_KEYSET_NAME_MAX + 32], *buf = NULL;
	size_t len = 0;
	if (from >= to)
		return km_cli_usage_error("keymgr plan", "--from must be before the timeline's end "
		                          "(now + horizon)");
	if (km_timeline_create(from, to, ctx->now, &ctx->tl) != KM_EOK)
		return km_cli_fail(KM_ENOMEM, "");
	ctx->events = json_array();
	ctx->warnings = json_array();
	int rc = each_keyset(cfg, env[0] ? env : NULL, name[0] ? name : NULL, draw_one,
	                     draw_error, ctx);
	if (!env[0])
		rc = km_cli_config_complete(cfg, rc);
	FILE *out = ctx->undrawn ? NULL : open_memstream(&buf, &len);
	if (out != NULL) {
		snprintf(title, sizeof(title), "Key timeline: %s%s%s", env[0] ? env : "all "
		         "environments", name[0] ? "/" : "", name);
		int r = ctx->format == PLAN_SVG ?
		        km_timeline_svg(ctx->tl, KM_TIMELINE_STANDALONE, out) :
		        km_report_plan_html(title, ctx->tl, ctx->events, ctx->warnings, out);
		if (fclose(out) != 0 && r == KM_EOK)
			r = KM_EIO;
		int wrc = r == KM_EOK ? km_cli_write_output(ctx->output, buf, len) :
		          km_cli_fail(r, "cannot draw the timeline");
		if (wrc != KM_CLI_EXIT_OK)
			rc = wrc;
	} else if (!ctx->undrawn) {
		rc = km_cli_fail(KM_ENOMEM, "");
	} else if (rc == KM_CLI_EXIT_OK) {
		rc = KM_CLI_EXIT_REFUSED;
	}
	free(buf);
	json_decref(ctx->events);
	json_decref(ctx->warnings);
	km_timeline_free(ctx->tl);
	return rc;
}

/* --horizon, --at, --format, --from and --output of plan: into the plan_ctx_t ctx. */
static int plan_option(const char *cmd, int o, const char *arg, void *vctx)
{
	plan_ctx_t *ctx = vctx;
	if (o == OPT_FORMAT) {
		static const char *const names[] = { "text", "json", "svg", "html" };
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(arg, names[i]) == 0) {
				ctx->format = (plan_format_t)i;
				return 0;
			}
		return km_cli_usage_error(cmd, "--format '%.40s': must be text, json, svg or html",
		                          arg);
	}
	if (o == OPT_OUTPUT) {
		ctx->output = arg;
		return 0;
	}
	if (o == OPT_FROM) {
		if (km_cli_parse_time(arg, &ctx->from) != KM_EOK)
			return km_cli_usage_error(cmd, "invalid --from: expected ISO 8601 UTC "
			                          "(2026-12-01T00:00:00Z), a date or @UNIXSECONDS");
		ctx->has_from = true;
		return 0;
	}
	if (o == OPT_HORIZON) {
		if (km_duration_parse(arg, &ctx->horizon) != KM_EOK || ctx->horizon <= 0 ||
		    ctx->horizon > 20 * 365 * 86400LL)
			return km_cli_usage_error(cmd, "invalid --horizon: expected a duration "
			                          "such as 12h, 30d or 2w, at most 20 years");
	} else if (km_cli_parse_time(arg, &ctx->now) != KM_EOK) {
		return km_cli_usage_error(cmd, "invalid --at: expected ISO 8601 UTC "
		                          "(2026-12-01T00:00:00Z), a date or @UNIXSECONDS");
	}
	return 0;
}

static int plan(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "horizon", required_argument, NULL, OPT_HORIZON },
		{ "at", required_argument, NULL, OPT_AT },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "from", required_argument, NULL, OPT_FROM },
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ NULL, 0, NULL, 0 },
	};
	/* No count_error: target() checks [ENV[/NAME]] once the configuration is loaded. */
	static const km_cli_args_t args = {
		.cmd = "keymgr plan", .help = plan_help, .opts = opts, .option = plan_option,
	};
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	plan_ctx_t ctx = { .now = km_cli_now(), .horizon = 90 * 86400 };
	int npos, rc = km_cli_args_parse(&args, &ctx, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	bool picture = ctx.format == PLAN_SVG || ctx.format == PLAN_HTML;
	if (c.json && ctx.format != PLAN_TEXT && ctx.format != PLAN_JSON)
		return km_cli_usage_error(args.cmd, "--json and --format %s ask for two formats: "
		                          "give one", ctx.format == PLAN_SVG ? "svg" : "html");
	if (!picture && (ctx.has_from || ctx.output != NULL))
		return km_cli_usage_error(args.cmd, "--from and --output draw a timeline: give "
		                          "--format svg or html");
	c.json = c.json || ctx.format == PLAN_JSON;
	km_config_t *cfg = NULL;
	rc = km_cli_config_load_partial(&cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	char env[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1];
	if ((rc = target(args.cmd, npos, pos, cfg, env, name)) == KM_CLI_EXIT_OK && picture) {
		rc = draw(cfg, env, name, &ctx);
	} else if (rc == KM_CLI_EXIT_OK) {
		ctx.json = c.json ? json_array() : NULL;
		rc = each_keyset(cfg, env[0] ? env : NULL, name[0] ? name : NULL, plan_one, NULL,
		                 &ctx);
		if (c.json && rc == KM_CLI_EXIT_OK)
			rc = km_cli_print_json(ctx.json);
		json_decref(ctx.json);
		if (!env[0])
			rc = km_cli_config_complete(cfg, rc);
	}
	km_config_free(cfg);
	return rc;
}

typedef struct {
	int64_t now;
	bool dry_run;
	json_t *json;
	json_t *errors;              /* --json: what apply_error() was told */
	unsigned applied, failed, target_errors;
} apply_ctx_t;

static void report(void *vctx, const km_apply_event_t *ev)
{
	apply_ctx_t *c = vctx;
	if (ev->result == KM_EOK && !c->dry_run)
		c->applied++;
	else if (ev->result != KM_EOK)
		c->failed++;
	if (c->json != NULL) {
		json_array_append_new(c->json, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}",
		        "env", ev->env, "keyset", ev->keyset, "action", km_plan_op_name(ev->action->op),
		        "kid", ev->kid, "result", ev->result == KM_EOK ?
		                (c->dry_run ? "planned" : "done") : "failed",
		        "error", ev->result == KM_EOK ? NULL : ev->error));
		return;
	}
	printf("%s/%s: %s %s%s%s%s\n", ev->env, ev->keyset, km_plan_op_name(ev->action->op),
	       ev->kid[0] ? ev->kid : "(new key)",
	       c->dry_run ? " (dry run: " : (ev->result == KM_EOK ? " done (" : " FAILED: "),
	       ev->result == KM_EOK ? ev->action->reason : ev->error,
	       ev->result == KM_EOK ? ")" : "");
}

static void warn(void *vctx, const char *keyset, const km_plan_warning_t *w)
{
	(void)vctx;
	fprintf(stderr, "keymgr: warning: %s: %s: %s\n", keyset, km_plan_warn_name(w->code), w->msg);
}

/* An environment or key set that could not be planned or changed at all (unknown, its
 * store busy, the change lock held, ...): counted, and listed in --json's "errors". */
static void apply_error(void *vctx, const char *env, const char *keyset, const char *msg)
{
	apply_ctx_t *c = vctx;
	c->target_errors++;
	if (c->errors != NULL)
		json_array_append_new(c->errors, json_pack("{s:s, s:s?, s:s}", "env", env, "keyset",
		                                           keyset, "error", msg));
}

static int apply_one(km_env_t *env, const char *keyset, void *vctx)
{
	apply_ctx_t *c = vctx;
	km_apply_opts_t o = { .dry_run = c->dry_run, .report = report, .warn = warn, .ctx = c };
	char err[1024] = "";
	unsigned failed = c->failed;
	int r = km_apply_keyset(env, keyset, c->now, &o, NULL, err, sizeof(err));
	if (r != KM_EOK && c->failed > failed)
		km_cli_fail(r, err);   /* an action failed: in "actions" already */
	else if (r != KM_EOK)
		target_fail(apply_error, c, km_env_name(env), keyset, r, err);
	return r;
}

/* --dry-run, the only option of apply: into the apply_ctx_t ctx. */
static int apply_option(const char *cmd, int o, const char *arg, void *vctx)
{
	(void)cmd;
	(void)o;
	(void)arg;
	((apply_ctx_t *)vctx)->dry_run = true;
	return 0;
}

static int apply(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ NULL, 0, NULL, 0 },
	};
	/* No count_error: target() checks [ENV[/NAME]] once the configuration is loaded. */
	static const km_cli_args_t args = {
		.cmd = "keymgr apply", .help = apply_help, .opts = opts, .option = apply_option,
	};
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	apply_ctx_t ctx = { .now = km_cli_now() };
	int npos, rc = km_cli_args_parse(&args, &ctx, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	km_config_t *cfg = NULL;
	rc = km_cli_config_load(&cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	char env[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1];
	if ((rc = target(args.cmd, npos, pos, cfg, env, name)) == KM_CLI_EXIT_OK) {
		ctx.json = c.json ? json_array() : NULL;
		ctx.errors = c.json ? json_array() : NULL;
		rc = each_keyset(cfg, env[0] ? env : NULL, name[0] ? name : NULL, apply_one,
		                 apply_error, &ctx);
		if (ctx.applied > 0)
			km_cli_wake_daemon(cfg, env, name);
		if (c.json) {
			json_t *j = json_pack("{s:O, s:i, s:i, s:O, s:b}", "actions", ctx.json,
			                      "applied", ctx.applied, "failed", ctx.failed,
			                      "errors", ctx.errors, "dry_run", ctx.dry_run);
			km_cli_print_json(j);
			json_decref(j);
		} else if (ctx.applied == 0 && ctx.failed == 0 && ctx.target_errors == 0 &&
		           rc == KM_CLI_EXIT_OK && !ctx.dry_run) {
			printf("nothing due\n");   /* not beside an error: something may be due */
		}
		json_decref(ctx.json);
		json_decref(ctx.errors);
	}
	km_config_free(cfg);
	return rc;
}

int km_cmd_plan(int argc, char **argv)
{
	return plan(argc, argv);
}

int km_cmd_apply(int argc, char **argv)
{
	/* The audit log tells the planner's scheduled work from commands given by hand: what
	 * this process changes is recorded via "apply" (keymgrd records "daemon"). */
	km_store_set_default_via("apply");
	return apply(argc, argv);
}
