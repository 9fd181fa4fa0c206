/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr audit report (table, CSV, JSON) and keymgr jwks history | show. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/audit/audit.h"
#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/cmd_audit.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/report/report.h"

static const char report_help[] =
	"Usage: keymgr [-c FILE] audit report [ENV] [--format table|csv|json|html] [--json]\n"
	"                                     [--at TIME] [--output FILE]\n"
	"\n"
	"The ownership review, built from the audit log (verified first; a failed verification\n"
	"is shown and makes the exit status 1). For each key set: owner, purpose, algorithm,\n"
	"policy, owner/purpose history and compliance findings. For each key: state, the owner\n"
	"and purpose it was made for and the current ones, every step (generated, published,\n"
	"activated, retired, removed, destroyed, revoked) with its time and actor (user, uid,\n"
	"host, via, pid), how long it signed against the policy's rotation_period, and when it\n"
	"left the JWKS and until when verifiers' cached JWKS may still hold it (+ jwks_max_age).\n"
	"  --at TIME      also each key's state at TIME and whether verifiers trusted it then:\n"
	"                 in the JWKS, or out of it for less than jwks_max_age (a verifier that\n"
	"                 cached an earlier JWKS may still accept it; until when is shown);\n"
	"                 the JWKS serial in force then.\n"
	"                 TIME: RFC 3339 UTC (2026-11-28T17:00:00Z), a date, @UNIXSECONDS or now\n"
	"  --format csv   one header row (the same with and without --at), one row per key,\n"
	"                 RFC 4180 quoting, CRLF line ends, RFC 3339 UTC times; free text\n"
	"                 starting with = + - @ gets a leading '\n"
	"  --json         the same as --format json (schema version 2)\n"
	"  --format html  one self-contained page (inline style and pictures, a small sorting\n"
	"                 script allowed by its hash; loads nothing, works offline, prints):\n"
	"                 a failed verification first, the chain's state, with --at the keys\n"
	"                 trusted then, the key sets, their timeline, every key in a table\n"
	"                 sortable by each column\n"
	"  --output FILE  write the html page to FILE (replaced atomically), not stdout\n"	"The columns and fields are listed in docs/auditor-guide.md.\n";

static const char history_help[] =
	"Usage: keymgr [-c FILE] jwks history ENV [--json]\n"
	"\n"
	"Every JWKS version the environment published: serial, time, and the kids in it.\n"
	"A new version is recorded whenever a key enters or leaves the JWKS.\n";

static const char show_help[] =
	"Usage: keymgr [-c FILE] jwks show ENV --serial N | --at TIME [--json]\n"
	"\n"
	"Prints the JWKS document of a recorded version: the one with serial N, or the one in\n"
	"force at TIME (ISO 8601 UTC, @UNIXSECONDS or now), i.e. exactly the keys that were\n"
	"published then.\n";

enum { OPT_FORMAT = 0x10, OPT_AT, OPT_SERIAL, OPT_OUTPUT };

/* ---- report rendering ---- */

static const char *s_of(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

/* A CSV field: quoted when it holds a comma, quote, CR or LF (RFC 4180); free text that a
 * spreadsheet would take for a formula is prefixed with a quote. */
static void csv_field(const char *v, bool free_text, bool last)
{
	bool formula = free_text && strchr("=+-@\t\r", v[0]) != NULL && v[0] != '\0';
	bool quote = formula || strpbrk(v, ",\"\r\n") != NULL;
	if (quote)
		fputc('"', stdout);
	if (formula)
		fputc('\'', stdout);
	for (const char *c = v; *c != '\0'; c++) {
		if (*c == '"')
			fputc('"', stdout);
		fputc(*c, stdout);
	}
	if (quote)
		fputc('"', stdout);
	fputs(last ? "\r\n" : ",", stdout);
}

static void history_text(json_t *hist, char *out, size_t len)
{
	size_t used = 0;
	size_t i;
	json_t *h;
	out[0] = '\0';
	json_array_foreach(hist, i, h) {
		const char *from = s_of(h, "from"), *to = s_of(h, "to"), *reason = s_of(h, "reason");
		int n = snprintf(out + used, used < len ? len - used : 0, "%s%s %s %s%s%s by %s via %s%s%s%s",
		                 used ? "; " : "", s_of(h, "time"), s_of(h, "action"), from,
		                 from[0] && to[0] ? " -> " : "", to, s_of(h, "by"), s_of(h, "via"),
		                 reason[0] ? " (" : "", reason, reason[0] ? ")" : "");
		if (n > 0)
			used += (size_t)n;
	}
}

/*
 * One CSV row (or, with header, the header row): every column is named where its value is
 * taken, so that the header and the rows cannot disagree. The order is the documented one
 * (docs/auditor-guide.md): the columns of the first report version, then the ones added.
 */
#define CSV_MAX_COLS 72

typedef struct {
	bool header;
	size_t n;
	const char *v[CSV_MAX_COLS];
	bool free_text[CSV_MAX_COLS];
	char text[CSV_MAX_COLS][32];   /* numbers of a row, generated names of the header */
} csv_row_t;

static void col(csv_row_t *r, const char *name, const char *value, bool free_text)
{
	if (r->n == CSV_MAX_COLS)
		abort();       /* a column added without raising CSV_MAX_COLS */
	r->v[r->n] = r->header ? name : value;
	r->free_text[r->n] = !r->header && free_text;
	r->n++;
}

/* An integer column (empty when v is not an integer). */
static void col_int(csv_row_t *r, const char *name, json_t *v)
{
	if (r->n == CSV_MAX_COLS)
		abort();
	r->text[r->n][0] = '\0';
	if (json_is_integer(v))
		snprintf(r->text[r->n], sizeof(r->text[r->n]), "%lld",
		         (long long)json_integer_value(v));
	col(r, name, r->text[r->n], false);
}

/* A column of the actor of a step: STEP_by_FIELD. */
static void col_actor(csv_row_t *r, const char *step, const char *field, json_t *actor)
{
	if (r->n == CSV_MAX_COLS)
		abort();
	snprintf(r->text[r->n], sizeof(r->text[r->n]), "%s_by_%s", step, field);
	if (r->header)
		col(r, r->text[r->n], NULL, false);
	else if (strcmp(field, "uid") == 0 || strcmp(field, "pid") == 0)
		col_int(r, NULL, json_object_get(actor, field));
	else        /* user and host names come from the system: guarded as free text */
		col(r, NULL, s_of(actor, field), strcmp(field, "via") != 0);
}

static const char *const csv_steps[] = { "generated", "published", "activated", "retired",
                                         "removed", "destroyed", "revoked" };

/* k is NULL for a key set without keys (its key columns are empty). */
static void csv_row(csv_row_t *r, json_t *rep, json_t *ks, json_t *k, bool has_at,
                    const char *hist)
{
	static const char *const actor_fields[] = { "user", "uid", "host", "via", "pid" };
	json_t *times = json_object_get(k, "times"), *steps = json_object_get(k, "steps");
	col(r, "env", s_of(rep, "env"), false);
	col(r, "keyset", s_of(ks, "name"), false);
	col(r, "owner", s_of(ks, "owner"), false);
	col(r, "purpose", s_of(ks, "purpose"), false);
	col(r, "alg", s_of(ks, "alg"), false);
	col(r, "keyset_compliant", json_is_true(json_object_get(ks, "compliant")) ? "yes" : "no",
	    false);
	col(r, "kid", s_of(k, "kid"), false);
	col(r, "cka_id", s_of(k, "cka_id"), false);
	col(r, "state", s_of(k, "state"), false);
	for (size_t d = 0; d < sizeof(csv_steps) / sizeof(csv_steps[0]); d++)
		col(r, csv_steps[d], s_of(times, csv_steps[d]), false);
	col(r, "revoke_reason", s_of(k, "revoke_reason"), true);
	col(r, "signed_for", s_of(k, "signed_for"), false);
	col(r, "rotation", s_of(k, "rotation"), false);
	col(r, "history", hist, true);
	col(r, "state_at", has_at ? s_of(k, "state_at") : "", false);
	col(r, "trusted_at", has_at && k != NULL ?
	    (json_is_true(json_object_get(k, "trusted_at")) ? "yes" : "no") : "", false);
	/* Added in report version 2. */
	col(r, "owner_at_creation", s_of(k, "owner_at_creation"), false);
	col(r, "purpose_at_creation", s_of(k, "purpose_at_creation"), false);
	for (size_t d = 0; d < sizeof(csv_steps) / sizeof(csv_steps[0]); d++) {
		json_t *actor = json_object_get(json_object_get(steps, csv_steps[d]), "actor");
		for (size_t f = 0; f < sizeof(actor_fields) / sizeof(actor_fields[0]); f++)
			col_actor(r, csv_steps[d], actor_fields[f], actor);
	}
	col(r, "left_jwks_at", s_of(k, "left_jwks_at"), false);
	col(r, "jwks_max_age", s_of(k, "jwks_max_age"), false);
	col(r, "jwks_max_age_from", s_of(k, "jwks_max_age_from"), false);
	col(r, "cached_until", s_of(k, "cached_until"), false);
	col(r, "trust_at", has_at ? s_of(k, "trust_at") : "", false);
}

static void csv_print(const csv_row_t *r)
{
	for (size_t i = 0; i < r->n; i++)
		csv_field(r->v[i], r->free_text[i], i + 1 == r->n);
}

static void csv_report(json_t *rep, bool has_at)
{
	csv_row_t r = { .header = true };
	csv_row(&r, NULL, NULL, NULL, has_at, "");
	csv_print(&r);
	size_t i, j;
	json_t *ks, *k;
	static char hist[65536];
	json_array_foreach(json_object_get(rep, "keysets"), i, ks) {
		json_t *keys = json_object_get(ks, "keys");
		if (json_array_size(keys) == 0) {
			r = (csv_row_t){ .header = false };
			csv_row(&r, rep, ks, NULL, has_at, "");
			csv_print(&r);
			continue;
		}
		json_array_foreach(keys, j, k) {
			history_text(json_object_get(k, "history"), hist, sizeof(hist));
			r = (csv_row_t){ .header = false };
			csv_row(&r, rep, ks, k, has_at, hist);
			csv_print(&r);
		}
	}
}

static void out(const char *s)
{
	km_cli_audit_puts(stdout, s);
}

static void table_report(json_t *rep, bool has_at)
{
	json_t *audit = json_object_get(rep, "audit");
	printf("Audit report of environment %s, generated %s\n", s_of(rep, "env"),
	       s_of(rep, "generated_at"));
	if (json_is_true(json_object_get(audit, "verified")))
		printf("Audit log: verified, %lld events, signed up to seq %lld%s%s\n",
		       (long long)json_integer_value(json_object_get(audit, "events")),
		       (long long)json_integer_value(json_object_get(audit, "checkpoint_seq")),
		       json_is_string(json_object_get(audit, "checkpoint_at")) ? " at " : "",
		       s_of(audit, "checkpoint_at"));
	else {
		printf("Audit log: VERIFICATION FAILED at seq %lld: ",
		       (long long)json_integer_value(json_object_get(audit, "first_bad_seq")));
		out(s_of(audit, "problem"));
		printf("\n");
	}
	json_t *trusted = json_object_get(rep, "trusted_at");
	if (has_at && trusted != NULL) {
		printf("Trusted by verifiers at %s (JWKS serial ", s_of(trusted, "at"));
		if (json_is_integer(json_object_get(trusted, "jwks_serial")))
			printf("%lld", (long long)json_integer_value(json_object_get(trusted, "jwks_serial")));
		else
			printf("none");
		printf("):");
		size_t i;
		json_t *kid;
		json_array_foreach(json_object_get(trusted, "kids"), i, kid)
			printf(" %s", json_string_value(kid));
		printf("\n");
		json_t *cached = json_object_get(trusted, "cached");
		if (json_array_size(cached) > 0) {
			printf("Possibly still trusted at %s by verifiers that cached an earlier JWKS:",
			       s_of(trusted, "at"));
			json_array_foreach(cached, i, kid)
				printf(" %s (until %s)", s_of(kid, "kid"), s_of(kid, "cached_until"));
			printf("\n");
		}
	}
	size_t i, j;
	json_t *ks, *k;
	json_array_foreach(json_object_get(rep, "keysets"), i, ks) {
		json_t *pol = json_object_get(ks, "policy");
		printf("\nKey set %s/%s  %s  owner %s  purpose %s  compliant: %s\n", s_of(rep, "env"),
		       s_of(ks, "name"), s_of(ks, "alg"), s_of(ks, "owner"), s_of(ks, "purpose"),
		       json_is_true(json_object_get(ks, "compliant")) ? "yes" : "NO");
		printf("  created %s by %s; rotation_period %s, publish_lead %s, retire_retention %s\n",
		       s_of(ks, "created_at"), s_of(ks, "created_by"), s_of(pol, "rotation_period"),
		       s_of(pol, "publish_lead"), s_of(pol, "retire_retention"));
		json_t *h;
		json_array_foreach(json_object_get(ks, "history"), j, h) {
			if (strcmp(s_of(h, "action"), "keyset.create") == 0)
				continue;
			printf("  %s %s: %s -> %s by %s via %s ", s_of(h, "time"), s_of(h, "action") + 7,
			       s_of(h, "from"), s_of(h, "to"), s_of(h, "by"), s_of(h, "via"));
			out(s_of(h, "reason"));
			printf("\n");
		}
		json_t *f;
		json_array_foreach(json_object_get(ks, "findings"), j, f) {
			printf("  finding: ");
			out(json_string_value(f));
			printf("\n");
		}
		printf("  %-44s %-9s %-20s %-20s %-20s %-20s %-10s%s\n", "KID", "STATE", "PUBLISHED",
		       "ACTIVATED", "RETIRED", "REMOVED/REVOKED", "ROTATION", has_at ? " AT --at" : "");
		json_array_foreach(json_object_get(ks, "keys"), j, k) {
			json_t *t = json_object_get(k, "times");
			const char *gone = s_of(t, "revoked")[0] ? s_of(t, "revoked") : s_of(t, "removed");
			printf("  %-44s %-9s %-20s %-20s %-20s %-20s %-10s", s_of(k, "kid")[0] ?
			       s_of(k, "kid") : "(no kid)", s_of(k, "state"), s_of(t, "published")[0] ?
			       s_of(t, "published") : "-", s_of(t, "activated")[0] ? s_of(t, "activated")
			       : "-", s_of(t, "retired")[0] ? s_of(t, "retired") : "-", gone[0] ? gone :
			       "-", s_of(k, "rotation"));
			if (has_at) {
				const char *trust = s_of(k, "trust_at");
				printf(" %s", s_of(k, "state_at")[0] ? s_of(k, "state_at") : "-");
				if (strcmp(trust, "jwks") == 0)
					printf(" (trusted: in the JWKS)");
				else if (strcmp(trust, "cache") == 0)
					printf(" (possibly trusted from a cached JWKS until %s)",
					       s_of(k, "cached_until"));
			}
			printf("\n");
			if (json_is_string(json_object_get(k, "owner_at_creation")) &&
			    (strcmp(s_of(k, "owner_at_creation"), s_of(k, "owner")) != 0 ||
			     strcmp(s_of(k, "purpose_at_creation"), s_of(k, "purpose")) != 0))
				printf("      made for owner %s, purpose %s (now %s, %s)\n",
				       s_of(k, "owner_at_creation"), s_of(k, "purpose_at_creation"),
				       s_of(k, "owner"), s_of(k, "purpose"));
			if (s_of(k, "left_jwks_at")[0])
				printf("      left the JWKS %s; verifiers' cached JWKS may hold it until %s "
				       "(jwks_max_age %s, from the %s)\n", s_of(k, "left_jwks_at"),
				       s_of(k, "cached_until"), s_of(k, "jwks_max_age"),
				       strcmp(s_of(k, "jwks_max_age_from"), "log") == 0 ?
				       "policy in force then" : "current policy");
			size_t x;
			json_array_foreach(json_object_get(k, "history"), x, h) {
				printf("      %s %-14s %s%s%s by %s via %s ", s_of(h, "time"), s_of(h, "action"),
				       s_of(h, "from"), s_of(h, "from")[0] ? " -> " : "", s_of(h, "to"),
				       s_of(h, "by"), s_of(h, "via"));
				out(s_of(h, "reason"));
				printf("\n");
			}
		}
	}
}

/* The options of audit report (ctx of report_option). */
typedef struct {
	const char *format;        /* NULL: not given */
	const char *output;        /* --output: NULL for stdout */
	km_audit_report_opts_t ro;
} report_args_t;

static int report_option(const char *cmd, int o, const char *arg, void *ctx)
{
	report_args_t *a = ctx;
	if (o == OPT_FORMAT) {
		if (strcmp(arg, "table") != 0 && strcmp(arg, "csv") != 0 &&
		    strcmp(arg, "json") != 0 && strcmp(arg, "html") != 0)
			return km_cli_usage_error(cmd, "--format '%.40s': must be table, csv, json or "
			                          "html", arg);
		a->format = arg;
		return 0;
	}
	if (o == OPT_OUTPUT) {
		a->output = arg;
		return 0;
	}
	if (km_cli_parse_time(arg, &a->ro.at) != KM_EOK)
		return km_cli_usage_error(cmd, "--at '%.40s': expected RFC 3339 UTC "
		                          "(2026-11-28T17:00:00Z), a date (2026-11-28), @UNIXSECONDS "
		                          "or now", arg);
	a->ro.has_at = true;
	return 0;
}

/* --format html: the page, written to --output or stdout. */
static int html_report(km_env_t *env, json_t *rep, const report_args_t *a)
{
	km_report_audit_opts_t o = { .now = a->ro.now, .has_at = a->ro.has_at, .at = a->ro.at };
	char err[1024] = "", *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		return km_cli_fail(KM_ENOMEM, "");
	int r = km_report_audit_html(env, rep, &o, f, err, sizeof(err));
	if (fclose(f) != 0 && r == KM_EOK)
		r = KM_EIO;
	int rc = r == KM_EOK ? km_cli_write_output(a->output, buf, len) : km_cli_fail(r, err);
	free(buf);
	return rc;
}

int km_cmd_audit_report(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "at", required_argument, NULL, OPT_AT },
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ NULL, 0, NULL, 0 },
	};
	/* No count_error: --format is checked first. */
	static const km_cli_args_t args = {
		.cmd = "keymgr audit report", .help = report_help, .opts = opts,
		.option = report_option,
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	report_args_t a = { NULL, NULL, { .now = km_cli_now() } };
	int npos, rc = km_cli_args_parse(&args, &a, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if (c.json && a.format != NULL && strcmp(a.format, "json") != 0)
		return km_cli_usage_error(cmd, "--json and --format %s ask for two formats: give one",
		                          a.format);
	const char *format = c.json ? "json" : a.format != NULL ? a.format : "table";
	if (a.output != NULL && strcmp(format, "html") != 0)
		return km_cli_usage_error(cmd, "--output writes the html page: give --format html");
	if (npos < 0 || npos > 1)
		return km_cli_usage_error(cmd, "expected at most one ENV");
	if (npos == 1 && !km_name_env_valid(pos[0]))
		return km_cli_usage_error(cmd, "invalid environment name: expected a lowercase slug");
	km_config_t *cfg = NULL;
	rc = km_cli_config_load_partial(&cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	const char *name = npos == 1 ? pos[0] : NULL;
	if (name == NULL && km_config_env_count(cfg) == 1 && km_config_envs_complete(cfg))
		name = km_config_env_at(cfg, 0)->name;
	if (name == NULL) {
		km_config_free(cfg);
		return km_cli_usage_error(cmd, "several environments are configured (or some have "
		                          "errors): name one");
	}
	km_env_t *env = NULL;
	json_t *rep = NULL;
	char err[1024] = "";
	if ((rc = km_cli_audit_open(cfg, name, &env)) != KM_CLI_EXIT_OK)
		goto out;
	int r = km_audit_report(env, &a.ro, &rep, err, sizeof(err));
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
		goto out;
	}
	if (strcmp(format, "html") == 0)
		rc = html_report(env, rep, &a);
	else if (strcmp(format, "json") == 0)
		rc = km_cli_print_json(rep);
	else if (strcmp(format, "csv") == 0)
		csv_report(rep, a.ro.has_at);
	else
		table_report(rep, a.ro.has_at);
	json_t *audit = json_object_get(rep, "audit");
	if (!json_is_true(json_object_get(audit, "verified"))) {
		km_cli_error("the audit log of %s failed verification at seq %lld: this report "
		             "cannot be trusted", name,
		             (long long)json_integer_value(json_object_get(audit, "first_bad_seq")));
		rc = KM_CLI_EXIT_REFUSED;
	}
out:
	json_decref(rep);
	km_env_free(env);
	km_config_free(cfg);
	return rc;
}

/* ---- jwks history | show ---- */

/* Opens the single ENV positional of a jwks verb. */
static int jwks_env(const char *cmd, int npos, char **pos, km_config_t **cfg, km_env_t **env)
{
	if (npos != 1)
		return km_cli_usage_error(cmd, "expected exactly one ENV");
	if (!km_name_env_valid(pos[0]))
		return km_cli_usage_error(cmd, "invalid environment name: expected a lowercase slug");
	int rc = km_cli_config_load_partial(cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	if ((rc = km_cli_audit_open(*cfg, pos[0], env)) != KM_CLI_EXIT_OK) {
		km_config_free(*cfg);
		*cfg = NULL;
	}
	return rc;
}

int km_cmd_jwks_history(int argc, char **argv)
{
	/* No count_error: jwks_env() checks ENV. */
	static const km_cli_args_t args = { .cmd = "keymgr jwks history", .help = history_help };
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	int npos, rc = km_cli_args_parse(&args, NULL, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	rc = jwks_env(args.cmd, npos, pos, &cfg, &env);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	km_store_jwks_version_t *v = NULL;
	size_t n = 0;
	char err[512] = "", t[32];
	int r = km_store_jwks_versions(km_env_store(env), &v, &n, err, sizeof(err));
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
		goto out;
	}
	json_t *arr = c.json ? json_array() : NULL;
	if (!c.json)
		printf("%-7s %-20s %-6s %s\n", "SERIAL", "TIME", "KEYS", "KIDS");
	for (size_t i = 0; i < n; i++) {
		json_t *kids = json_loads(v[i].kids, 0, NULL);
		if (arr != NULL) {
			json_array_append_new(arr, json_pack("{s:I, s:s, s:I, s:o}", "serial",
			                      (json_int_t)v[i].serial, "time",
			                      km_cli_iso8601(v[i].at, t, sizeof(t)), "at",
			                      (json_int_t)v[i].at, "kids", kids ? kids : json_array()));
			continue;
		}
		printf("%-7llu %-20s %-6zu", (unsigned long long)v[i].serial,
		       km_cli_iso8601(v[i].at, t, sizeof(t)), json_array_size(kids));
		size_t j;
		json_t *kid;
		json_array_foreach(kids, j, kid)
			printf(" %s", json_string_value(kid));
		printf("\n");
		json_decref(kids);
	}
	if (arr != NULL)
		rc = km_cli_print_json(arr);
	json_decref(arr);
	km_store_jwks_versions_free(v, n);
out:
	km_cli_env_close(cfg, env);
	return rc;
}

/* --serial and --at of jwks show (ctx of show_option). */
typedef struct {
	uint64_t serial;
	int64_t at;
	bool has_at;
} show_args_t;

static int show_option(const char *cmd, int o, const char *arg, void *ctx)
{
	show_args_t *a = ctx;
	if (o == OPT_SERIAL) {
		char *end = NULL;
		unsigned long long v = strtoull(arg, &end, 10);
		if (arg[0] < '1' || arg[0] > '9' || end == arg || *end != '\0')
			return km_cli_usage_error(cmd, "--serial must be a positive integer");
		a->serial = (uint64_t)v;
	} else {
		if (km_cli_parse_time(arg, &a->at) != KM_EOK)
			return km_cli_usage_error(cmd, "--at: expected ISO 8601 UTC "
			                          "(2026-11-28T17:00:00Z), @UNIXSECONDS or now");
		a->has_at = true;
	}
	return 0;
}

int km_cmd_jwks_show(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "serial", required_argument, NULL, OPT_SERIAL },
		{ "at", required_argument, NULL, OPT_AT },
		{ NULL, 0, NULL, 0 },
	};
	/* No count_error: jwks_env() checks ENV after the options. */
	static const km_cli_args_t args = {
		.cmd = "keymgr jwks show", .help = show_help, .opts = opts, .option = show_option,
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	show_args_t a = { 0, 0, false };
	int npos, rc = km_cli_args_parse(&args, &a, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if ((a.serial != 0) == a.has_at)
		return km_cli_usage_error(cmd, "give exactly one of --serial N and --at TIME");
	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	rc = jwks_env(cmd, npos, pos, &cfg, &env);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	km_store_jwks_version_t v = { 0 };
	char err[1024] = "", *doc = NULL;
	size_t len = 0;
	int r = km_audit_jwks_version(km_env_store(env), a.serial, a.at, &v, err, sizeof(err));
	if (r == KM_EOK)
		r = km_audit_jwks_render(km_env_store(env), v.kids, &doc, &len, err, sizeof(err));
	if (r != KM_EOK)
		rc = km_cli_fail(r, err);
	else
		printf("%s\n", doc);
	free(doc);
	free(v.kids);
	km_cli_env_close(cfg, env);
	return rc;
}
