/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr audit log | verify | checkpoint | report: the auditor's verbs (docs/auditor-guide.md). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/audit/audit.h"
#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/cmd_audit.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"
#include "keymgr/common/pguri.h"

static const char log_help[] =
	"Usage: keymgr [-c FILE] audit log [ENV] [--kid KID] [--keyset NAME] [--since TIME]\n"
	"                                  [--until TIME] [--json]\n"
	"\n"
	"Prints the audit log of one environment (or of every environment with a store):\n"
	"sequence number, time, actor (user(uid)@host and how: cli, daemon, signing), action,\n"
	"subject, change and reason. --kid includes the key's intent, recorded before it had a\n"
	"kid. TIME is ISO 8601 UTC (2026-11-28T17:00:00Z, 2026-11-28), @UNIXSECONDS or now.\n"
	"--json prints one JSON array of events (the format also streamed to the JSON lines file).\n";

static const char verify_help[] =
	"Usage: keymgr [-c FILE] audit verify [ENV] [--store FILE] [--audit-kid KID]\n"
	"                 [--expect-seq N] [--expect-head HASH] [--stream FILE] [--no-token]\n"
	"                 [--json]\n"
	"\n"
	"Verifies the audit trail: recomputes the hash chain, checks every signed checkpoint\n"
	"against the audit key's public key, checks that the key sets, keys and JWKS history in\n"
	"the store are exactly what the log records, and that the log still holds every point\n"
	"recorded outside the store: the token's record of the last checkpoint (read from the\n"
	"environment's audit token when it can be opened), the points given below. A store cut\n"
	"back to an earlier checkpoint fails only against these. Exit status 1 and the first bad\n"
	"sequence number on any tampering.\n"
	"  --store FILE        verify a copy of ENV's store (offline; no configuration, no token)\n"
	"  --audit-kid KID     require every checkpoint to be signed by this audit key (the kid you\n"
	"                      recorded out of band), so a store whose audit key was replaced fails\n"
	"  --expect-seq N      the log must still hold event N (a head you noted earlier; needs ENV)\n"
	"  --expect-head HASH  the log must hold an event with this hash (64 hex digits; with\n"
	"                      --expect-seq, event N must have it; needs ENV)\n"
	"  --stream FILE       the log must hold every event and checkpoint of these JSON lines\n"
	"                      (environments.ENV.audit.jsonl as streamed, or a SIEM's copy)\n"
	"  --no-token          do not open the token to compare its checkpoint record\n";

static const char checkpoint_help[] =
	"Usage: keymgr [-c FILE] audit checkpoint [ENV] [--json]\n"
	"\n"
	"Signs the head of the audit log now with the environment's audit key (an ES256 key, or\n"
	"PS256 or RS256 with RSA 3072 on a token without EC, in the environment's audit token:\n"
	"audit.token in keymgr.yaml, else the environment's own token; label keymgr-audit:ENV,\n"
	"created on first use; it is in no key set and never signs a JWT) and stores the\n"
	"checkpoint. The checkpoint is also streamed (audit.jsonl,\n"
	"syslog) and its seq and hash written into the audit token (a private data object,\n"
	"label keymgr-audit-head:ENV), which 'audit verify' compares with the store.\n"
	"keymgrd does this regularly.\n";

static const char audit_intro[] =
	"The audit trail: every change to an environment is one event in an append-only hash\n"
	"chain in its store, with signed checkpoints (docs/auditor-guide.md).\n";

enum {
	OPT_KID = 0x10, OPT_KEYSET, OPT_SINCE, OPT_UNTIL, OPT_STORE, OPT_AUDIT_KID, OPT_EXPECT_SEQ,
	OPT_EXPECT_HEAD, OPT_STREAM, OPT_NO_TOKEN,
};

int km_cli_audit_open(const km_config_t *cfg, const char *name, km_env_t **env)
{
	const km_env_cfg_t *e = NULL;
	char err[1024] = "";
	char shown[256];
	int r = km_config_env_lookup(cfg, name, &e, err, sizeof(err));
	if (r != KM_EOK)
		return km_cli_fail(r, err);
	if (!km_store_exists(e->store)) {
		km_pguri_redact(e->store, shown, sizeof(shown));
		km_cli_error("environment '%s' has no store yet (%s): nothing was recorded", name,
		             shown);
		return KM_CLI_EXIT_REFUSED;
	}
	if ((r = km_env_open(cfg, name, env, err, sizeof(err))) != KM_EOK)
		return km_cli_fail(r, err);
	return KM_CLI_EXIT_OK;
}

void km_cli_audit_puts(FILE *out, const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++)
		fputc(*c < 0x20 || *c == 0x7f ? '?' : *c, out);
}

/* Parses ENV given as the only (optional) positional. */
static int env_arg(const char *cmd, int npos, char **pos, const char **env)
{
	if (npos > 1)
		return km_cli_usage_error(cmd, "expected at most one ENV");
	if (npos == 1 && !km_name_env_valid(pos[0]))
		return km_cli_usage_error(cmd, "invalid environment name: expected a lowercase slug");
	*env = npos == 1 ? pos[0] : NULL;
	return KM_CLI_EXIT_OK;
}

/* The environments a verb without ENV works on: those whose store exists. */
static bool store_exists(const km_env_cfg_t *e)
{
	return km_store_exists(e->store);
}

/* ---- log ---- */

static const char *member(const char *json_text, const char *name, char *buf, size_t len)
{
	json_t *j = json_text && json_text[0] ? json_loads(json_text, 0, NULL) : NULL;
	json_t *v = json_object_get(j, name);
	buf[0] = '\0';
	if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_array(v))
		snprintf(buf, len, "%zu kids", json_array_size(v));
	json_decref(j);
	return buf;
}

/* "from -> to" for the member that changed (state, owner, purpose), or the serial. */
static void change_text(const km_store_audit_event_t *e, char *out, size_t len)
{
	static const char *const fields[] = { "state", "owner", "purpose", NULL };
	char a[160], b[160], k[32];
	out[0] = '\0';
	if (strcmp(e->action, "jwks.publish") == 0) {
		snprintf(out, len, "serial %s: %s", member(e->after, "serial", a, sizeof(a)),
		         member(e->after, "kids", k, sizeof(k)));
		return;
	}
	for (int i = 0; fields[i] != NULL; i++) {
		member(e->before, fields[i], a, sizeof(a));
		member(e->after, fields[i], b, sizeof(b));
		if (b[0] != '\0' && strcmp(a, b) != 0) {
			snprintf(out, len, "%s%s%s", a, a[0] ? " -> " : "", b);
			return;
		}
	}
	if (strcmp(e->action, "key.confirm") == 0)
		snprintf(out, len, "kid assigned");
}

/* The CKA_ID (hex) of kid, to find its intent; "" when unknown. */
static void kid_cka(km_store_t *s, const char *kid, char hex[2 * KM_STORE_CKA_ID_MAX + 1])
{
	km_store_key_t k;
	hex[0] = '\0';
	if (km_store_key_get(s, kid, &k, NULL, 0) != KM_EOK)
		return;
	km_hex_encode(k.cka_id, k.cka_id_len, hex, 2 * KM_STORE_CKA_ID_MAX + 1);
}

static bool kid_matches(const km_store_audit_event_t *e, const char *kid, const char *hex)
{
	char pat[2 * KM_STORE_CKA_ID_MAX + 16];
	if (strcmp(e->kid, kid) == 0)
		return true;
	snprintf(pat, sizeof(pat), "\"cka_id\":\"%s\"", hex);
	return hex[0] != '\0' && strncmp(e->action, "key.", 4) == 0 && strstr(e->after, pat) != NULL;
}

static int log_env(km_env_t *env, const km_store_audit_filter_t *f, const char *kid,
                   json_t *arr)
{
	km_store_t *s = km_env_store(env);
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	char err[512] = "", hex[2 * KM_STORE_CKA_ID_MAX + 1] = "";
	int r = km_store_audit_query(s, f, &ev, &n, err, sizeof(err));
	if (r != KM_EOK)
		return km_cli_fail(r, err);
	if (kid != NULL)
		kid_cka(s, kid, hex);
	for (size_t i = 0; i < n; i++) {
		const km_store_audit_event_t *e = &ev[i];
		if (kid != NULL && !kid_matches(e, kid, hex))
			continue;
		if (arr != NULL) {
			json_array_append_new(arr, km_audit_event_json(km_env_name(env), e));
			continue;
		}
		char t[32], who[160], subject[KM_KEYSET_NAME_MAX + KM_KID_MAX + 4], change[400];
		snprintf(who, sizeof(who), "%s(%lld)@%s", e->actor.user[0] ? e->actor.user : "?",
		         (long long)e->actor.uid, e->actor.host);
		snprintf(subject, sizeof(subject), "%s%s%s", e->keyset, e->keyset[0] && e->kid[0] ?
		         " " : "", e->kid);
		change_text(e, change, sizeof(change));
		char line[2048];
		snprintf(line, sizeof(line), "%-6lld %-20s %-10s %-24s %-7s %-16s %-30s %s %s",
		         (long long)e->seq, km_cli_iso8601(e->at, t, sizeof(t)), km_env_name(env), who,
		         e->actor.via, e->action, subject[0] ? subject : "-", change[0] ? change : "-",
		         e->reason);
		km_cli_audit_puts(stdout, line);
		fputc('\n', stdout);
	}
	km_store_audit_events_free(ev, n);
	return KM_CLI_EXIT_OK;
}

/* The options of audit log (ctx of log_option). */
typedef struct {
	km_store_audit_filter_t f;
	const char *kid;
} log_args_t;

static int log_option(const char *cmd, int o, const char *arg, void *ctx)
{
	log_args_t *a = ctx;
	int64_t t = 0;
	switch (o) {
	case OPT_KID:
		if (!km_name_kid_valid(arg))
			return km_cli_usage_error(cmd, "invalid --kid: 1 to %d base64url characters",
			                          KM_KID_MAX);
		a->kid = arg;
		break;
	case OPT_KEYSET:
		if (!km_name_keyset_valid(arg))
			return km_cli_usage_error(cmd, "invalid --keyset name");
		a->f.keyset = arg;
		break;
	default: /* --since, --until */
		if (km_cli_parse_time(arg, &t) != KM_EOK)
			return km_cli_usage_error(cmd, "--%s: expected ISO 8601 UTC "
			                          "(2026-11-28T17:00:00Z), @UNIXSECONDS or now",
			                          o == OPT_SINCE ? "since" : "until");
		if (o == OPT_SINCE)
			a->f.since = t;
		else
			a->f.until = t;
		break;
	}
	return 0;
}

static int audit_log(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "kid", required_argument, NULL, OPT_KID },
		{ "keyset", required_argument, NULL, OPT_KEYSET },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ NULL, 0, NULL, 0 },
	};
	/* Past KM_CLI_MAX_POSITIONAL only; env_arg() says more. */
	static const km_cli_args_t args = {
		.cmd = "keymgr audit log", .help = log_help, .opts = opts, .option = log_option,
		.min_pos = 0, .max_pos = KM_CLI_MAX_POSITIONAL, .count_error = "too many arguments",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	log_args_t a = { { 0 }, NULL };
	const char *env_name = NULL;
	int npos, rc = km_cli_args_parse(&args, &a, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	rc = env_arg(cmd, npos, pos, &env_name);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	if (a.f.since && a.f.until && a.f.since > a.f.until)
		return km_cli_usage_error(cmd, "--since is after --until");
	km_config_t *cfg = NULL;
	if ((rc = km_cli_config_load_partial(&cfg)) != KM_CLI_EXIT_OK)
		return rc;
	json_t *arr = c.json ? json_array() : NULL;
	if (!c.json)
		printf("%-6s %-20s %-10s %-24s %-7s %-16s %-30s %s %s\n", "SEQ", "TIME", "ENV",
		       "ACTOR", "VIA", "ACTION", "SUBJECT", "CHANGE", "REASON");
	for (size_t i = 0; rc == KM_CLI_EXIT_OK && i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		if (env_name != NULL ? strcmp(e->name, env_name) != 0 : !store_exists(e))
			continue;
		km_env_t *env = NULL;
		if ((rc = km_cli_audit_open(cfg, e->name, &env)) != KM_CLI_EXIT_OK)
			break;
		rc = log_env(env, &a.f, a.kid, arr);
		km_env_free(env);
	}
	if (env_name != NULL && km_config_env(cfg, env_name) == NULL && rc == KM_CLI_EXIT_OK) {
		km_env_t *unused = NULL;
		rc = km_cli_audit_open(cfg, env_name, &unused);
	}
	if (c.json && rc == KM_CLI_EXIT_OK)
		rc = km_cli_print_json(arr);
	json_decref(arr);
	if (env_name == NULL)
		rc = km_cli_config_complete(cfg, rc);
	km_config_free(cfg);
	return rc;
}

/* ---- verify ---- */

/* The options of audit verify (ctx of verify_option). */
typedef struct {
	const char *store;
	const char *stream;            /* --stream FILE */
	bool no_token;
	const char *pin_kid;
	km_audit_anchor_t expect;      /* --expect-seq / --expect-head (seq 0 and hash "": none) */
} verify_args_t;

/* What the token's record contributed: "compared", "none", "unavailable", "skipped". */
typedef struct {
	const char *token_record;
	char token_err[512];
} verify_notes_t;

/*
 * The anchors ENV's log must hold: --expect-*, the token's record (env not NULL, unless
 * --no-token), the stream's lines. *ret is malloc'd. Prints errors; returns an exit code.
 */
static int collect_anchors(const verify_args_t *a, const char *env_name, km_env_t *env,
                           km_audit_anchor_t **ret, size_t *n, verify_notes_t *notes)
{
	km_audit_anchor_t *list = NULL, tok;
	size_t count = 0;
	char err[1024] = "";
	bool found = false;
	if (a->stream != NULL) {
		int r = km_audit_stream_anchors(a->stream, env_name, &list, &count, err, sizeof(err));
		if (r != KM_EOK)
			return km_cli_fail(r, err);
	}
	km_audit_anchor_t *grown = realloc(list, (count + 2) * sizeof(*list));
	if (grown == NULL) {
		free(list);
		return km_cli_fail(KM_ENOMEM, "out of memory");
	}
	list = grown;
	if (a->expect.seq > 0 || a->expect.hash[0] != '\0')
		list[count++] = a->expect;
	notes->token_record = "skipped";
	if (env != NULL && !a->no_token) {
		int r = km_audit_token_anchor(env, &tok, &found, notes->token_err,
		                              sizeof(notes->token_err));
		notes->token_record = r != KM_EOK ? "unavailable" : found ? "compared" : "none";
		if (r == KM_EOK && found)
			list[count++] = tok;
	}
	*ret = list;
	*n = count;
	return KM_CLI_EXIT_OK;
}

static int verify_store(km_store_t *s, const km_audit_verify_opts_t *vo,
                        const verify_notes_t *notes, json_t *arr)
{
	km_audit_verify_t v;
	char err[512] = "", t[32];
	int r = km_audit_verify(s, vo, &v, err, sizeof(err));
	if (r != KM_EOK)
		return km_cli_fail(r, err);
	if (arr != NULL) {
		json_t *j = json_pack(
			"{s:s, s:b, s:o, s:s, s:I, s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:s}", "env",
			km_store_env(s), "ok", v.ok, "first_bad_seq", v.ok ? json_null() :
			json_integer(v.first_bad_seq), "problem", v.problem, "events",
			(json_int_t)v.events, "head_hash", v.head_hash, "checkpoints",
			(json_int_t)v.checkpoints, "checkpoint_seq", (json_int_t)v.checkpoint_seq,
			"audit_kid", v.checkpoint_kid, "unsigned_events",
			(json_int_t)(v.head_seq - v.checkpoint_seq), "anchors", (json_int_t)v.anchors,
			"anchor_seq", (json_int_t)v.anchor_seq, "token_record", notes->token_record);
		json_array_append_new(arr, j);
	} else if (v.ok) {
		printf("audit verify %s: OK, %lld events, head %s\n", km_store_env(s),
		       (long long)v.events, v.head_hash);
		if (v.checkpoint_seq > 0)
			printf("  signed up to seq %lld at %s by audit key %s; %lld later events not yet "
			       "signed\n", (long long)v.checkpoint_seq,
			       km_cli_iso8601(v.checkpoint_at, t, sizeof(t)), v.checkpoint_kid,
			       (long long)(v.head_seq - v.checkpoint_seq));
		if (v.anchors > 0)
			printf("  holds all %zu points recorded outside the store (up to seq %lld)%s\n",
			       v.anchors, (long long)v.anchor_seq,
			       strcmp(notes->token_record, "compared") == 0
			       ? ", the token's checkpoint record included" : "");
	} else {
		printf("audit verify %s: FAILED at seq %lld: ", km_store_env(s),
		       (long long)v.first_bad_seq);
		km_cli_audit_puts(stdout, v.problem);
		fputc('\n', stdout);
	}
	if (strcmp(notes->token_record, "unavailable") == 0)
		fprintf(stderr, "keymgr: warning: %s: the token's checkpoint record was not compared "
		        "(a rollback of the store to an earlier checkpoint is caught only with it, "
		        "--stream or --expect-seq): %s\n", km_store_env(s), notes->token_err);
	else if (v.ok && strcmp(notes->token_record, "none") == 0 && v.checkpoint_seq > 0)
		fprintf(stderr, "keymgr: warning: %s: the audit token holds no checkpoint record (the "
		        "next checkpoint writes it, where the token keeps private data objects)\n",
		        km_store_env(s));
	if (v.ok && v.checkpoint_seq == 0)
		fprintf(stderr, "keymgr: warning: %s has no signed checkpoint: removal of the last "
		        "events cannot be detected (run 'keymgr audit checkpoint %s')\n",
		        km_store_env(s), km_store_env(s));
	return v.ok ? KM_CLI_EXIT_OK : KM_CLI_EXIT_REFUSED;
}

/* Verifies store s of environment env_name (env: its open environment, or NULL offline). */
static int verify_one(const verify_args_t *a, const char *env_name, km_env_t *env,
                      km_store_t *s, json_t *arr)
{
	km_audit_anchor_t *anchors = NULL;
	size_t n = 0;
	verify_notes_t notes = { "skipped", "" };
	int rc = collect_anchors(a, env_name, env, &anchors, &n, &notes);
	if (rc == KM_CLI_EXIT_OK) {
		km_audit_verify_opts_t vo = { .pin_kid = a->pin_kid, .anchors = anchors,
		                              .n_anchors = n };
		rc = verify_store(s, &vo, &notes, arr);
	}
	free(anchors);
	return rc;
}

static int verify_option(const char *cmd, int o, const char *arg, void *ctx)
{
	verify_args_t *a = ctx;
	char *end = NULL;
	switch (o) {
	case OPT_STORE:
		a->store = arg;
		break;
	case OPT_STREAM:
		a->stream = arg;
		break;
	case OPT_NO_TOKEN:
		a->no_token = true;
		break;
	case OPT_EXPECT_SEQ:
		errno = 0;
		a->expect.seq = arg[0] >= '1' && arg[0] <= '9' ? strtoll(arg, &end, 10) : 0;
		if (a->expect.seq <= 0 || errno != 0 || *end != '\0')
			return km_cli_usage_error(cmd, "invalid --expect-seq: expected a sequence "
			                          "number (1, 2, ...)");
		break;
	case OPT_EXPECT_HEAD:
		if (strlen(arg) != KM_STORE_HASH_HEX ||
		    strspn(arg, "0123456789abcdefABCDEF") != KM_STORE_HASH_HEX)
			return km_cli_usage_error(cmd, "invalid --expect-head: expected the %d hex "
			                          "digits of an event's hash", KM_STORE_HASH_HEX);
		for (size_t i = 0; i <= KM_STORE_HASH_HEX; i++)
			a->expect.hash[i] = (char)tolower((unsigned char)arg[i]);
		break;
	default: /* --audit-kid */
		if (!km_name_kid_valid(arg))
			return km_cli_usage_error(cmd, "invalid --audit-kid");
		a->pin_kid = arg;
		break;
	}
	return 0;
}

/* Every environment with a store (or ENV) of the configuration. */
static int verify_configured(const verify_args_t *a, const char *env_name, json_t *arr)
{
	km_config_t *cfg = NULL;
	int rc = km_cli_config_load_partial(&cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	int worst = KM_CLI_EXIT_OK;
	bool any = false;
	for (size_t i = 0; i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		if (env_name != NULL ? strcmp(e->name, env_name) != 0 : !store_exists(e))
			continue;
		km_env_t *env = NULL;
		any = true;
		if ((rc = km_cli_audit_open(cfg, e->name, &env)) == KM_CLI_EXIT_OK)
			rc = verify_one(a, e->name, env, km_env_store(env), arr);
		km_env_free(env);
		if (rc != KM_CLI_EXIT_OK && worst == KM_CLI_EXIT_OK)
			worst = rc;
	}
	if (env_name != NULL && !any) {
		km_env_t *unused = NULL;
		worst = km_cli_audit_open(cfg, env_name, &unused);
	}
	if (env_name == NULL)   /* "verified" means every environment */
		worst = km_cli_config_complete(cfg, worst);
	km_config_free(cfg);
	return worst;
}

/* The refusal of a --store that holds no store: a file that does not exist, or a database
 * (named without its password) whose schema holds none. */
static int store_missing(const char *store)
{
	char shown[512];
	if (!km_pguri_is(store)) {
		km_cli_error("the --store file %s does not exist", store);
		return KM_CLI_EXIT_REFUSED;
	}
	km_pguri_redact(store, shown, sizeof(shown));
	km_cli_error("the --store database %s holds no keymgr store (no schema, or an empty one)",
	             shown);
	return KM_CLI_EXIT_REFUSED;
}

static int audit_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "store", required_argument, NULL, OPT_STORE },
		{ "audit-kid", required_argument, NULL, OPT_AUDIT_KID },
		{ "expect-seq", required_argument, NULL, OPT_EXPECT_SEQ },
		{ "expect-head", required_argument, NULL, OPT_EXPECT_HEAD },
		{ "stream", required_argument, NULL, OPT_STREAM },
		{ "no-token", no_argument, NULL, OPT_NO_TOKEN },
		{ NULL, 0, NULL, 0 },
	};
	/* Past KM_CLI_MAX_POSITIONAL only; env_arg() says more. */
	static const km_cli_args_t args = {
		.cmd = "keymgr audit verify", .help = verify_help, .opts = opts,
		.option = verify_option,
		.min_pos = 0, .max_pos = KM_CLI_MAX_POSITIONAL, .count_error = "too many arguments",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	verify_args_t a;
	const char *env_name = NULL;
	memset(&a, 0, sizeof(a));
	snprintf(a.expect.source, sizeof(a.expect.source), "--expect-seq/--expect-head");
	int npos, rc = km_cli_args_parse(&args, &a, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	rc = env_arg(cmd, npos, pos, &env_name);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	if (env_name == NULL && (a.expect.seq > 0 || a.expect.hash[0] != '\0'))
		return km_cli_usage_error(cmd, "--expect-seq and --expect-head name a point of one "
		                          "environment's log: give ENV");
	json_t *arr = c.json ? json_array() : NULL;
	if (a.store != NULL) {
		/* Offline: a copy of the store (a file or a postgresql:// URI), no configuration,
		 * no token. */
		km_store_t *s = NULL;
		char err[1024] = "";
		if (env_name == NULL)
			rc = km_cli_usage_error(cmd, "--store needs the ENV the store belongs to");
		else if (!km_store_exists(a.store))
			rc = store_missing(a.store);
		else if ((rc = km_store_open(a.store, env_name, &s, err, sizeof(err))) != KM_EOK)
			rc = km_cli_fail(rc, err);
		else
			rc = verify_one(&a, env_name, NULL, s, arr);
		km_store_free(s);
	} else {
		rc = verify_configured(&a, env_name, arr);
	}
	if (arr != NULL && json_array_size(arr) > 0)
		km_cli_print_json(arr);
	json_decref(arr);
	return rc;
}

/* ---- checkpoint ---- */

static int checkpoint_env(km_env_t *env, json_t *arr)
{
	km_store_checkpoint_t cp;
	char err[1024] = "", t[32];
	km_audit_anchor_t rec;
	bool found = false;
	int r = km_audit_checkpoint(env, km_cli_now(), true, &cp, err, sizeof(err));
	if (r != KM_EOK)
		return km_cli_fail(r, err);
	/* The audit token holds the record now, unless it keeps no private data objects. */
	bool recorded = km_audit_token_anchor(env, &rec, &found, err, sizeof(err)) == KM_EOK &&
	                found && rec.seq == cp.seq && strcmp(rec.hash, cp.hash) == 0;
	if (arr != NULL)
		json_array_append_new(arr, json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:b}", "env",
		                      km_env_name(env), "seq", (json_int_t)cp.seq, "hash", cp.hash,
		                      "time", km_cli_iso8601(cp.at, t, sizeof(t)), "audit_kid",
		                      cp.key_kid, "signature", cp.signature, "token_record",
		                      recorded));
	else
		printf("%s: signed seq %lld (hash %s) at %s with audit key %s\n", km_env_name(env),
		       (long long)cp.seq, cp.hash, km_cli_iso8601(cp.at, t, sizeof(t)), cp.key_kid);
	if (!recorded)
		fprintf(stderr, "keymgr: warning: %s: the audit token keeps no record of this "
		        "checkpoint (it keeps no private data objects): a store rolled back to an "
		        "earlier checkpoint is caught only with 'audit verify --stream' or "
		        "'--expect-seq'\n", km_env_name(env));
	return KM_CLI_EXIT_OK;
}

static int audit_checkpoint(int argc, char **argv)
{
	/* Past KM_CLI_MAX_POSITIONAL only; env_arg() says more. */
	static const km_cli_args_t args = {
		.cmd = "keymgr audit checkpoint", .help = checkpoint_help,
		.min_pos = 0, .max_pos = KM_CLI_MAX_POSITIONAL, .count_error = "too many arguments",
	};
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	const char *env_name = NULL;
	int npos, rc = km_cli_args_parse(&args, NULL, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	rc = env_arg(args.cmd, npos, pos, &env_name);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	km_config_t *cfg = NULL;
	if ((rc = km_cli_config_load(&cfg)) != KM_CLI_EXIT_OK)
		return rc;
	json_t *arr = c.json ? json_array() : NULL;
	bool any = false;
	for (size_t i = 0; rc == KM_CLI_EXIT_OK && i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		if (env_name != NULL ? strcmp(e->name, env_name) != 0 : !store_exists(e))
			continue;
		km_env_t *env = NULL;
		any = true;
		if ((rc = km_cli_audit_open(cfg, e->name, &env)) == KM_CLI_EXIT_OK)
			rc = checkpoint_env(env, arr);
		km_env_free(env);
	}
	if (env_name != NULL && !any) {
		km_env_t *unused = NULL;
		rc = km_cli_audit_open(cfg, env_name, &unused);
	}
	if (c.json && rc == KM_CLI_EXIT_OK)
		rc = km_cli_print_json(arr);
	json_decref(arr);
	km_config_free(cfg);
	return rc;
}

static const km_cli_command_t audit_commands[] = {
	{ "log", audit_log, "print the audit log (filter by kid, key set, time)" },
	{ "verify", audit_verify, "check the hash chain, the signed checkpoints and the tables" },
	{ "checkpoint", audit_checkpoint, "sign the head of the log now with the audit key" },
	{ "report", km_cmd_audit_report, "ownership review: owners, dates, who did what, "
	  "compliance, keys trusted at a time" },
	{ NULL, NULL, NULL },
};

int km_cmd_audit(int argc, char **argv)
{
	return km_cli_dispatch(audit_commands, "keymgr audit", audit_intro, argc - 1, argv + 1);
}
