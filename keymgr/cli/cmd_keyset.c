/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr keyset create|list|show|set-owner */
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
#include "keymgr/core/compliance.h"
#include "keymgr/core/keyops.h"
#include "keymgr/core/readiness.h"

#define CREATE_HELP                                                                        \
	"Usage: keymgr [-c FILE] keyset create ENV/NAME --alg ALG --owner OWNER\n"             \
	"                 --purpose PURPOSE [--bits N] [--description TEXT] [--label k=v]...\n" \
	"                 [--no-key] [--json]\n"                                             \
	"\n"                                                                                 \
	"Creates a key set: one algorithm, one owner, one purpose, and, when the environment's\n"\
	"token can be opened, its first key (active at once) and a standby where the policy\n"  \
	"asks for one. Without the token the key set is still created, and keymgrd or\n"      \
	"'keymgr apply ENV/NAME' makes the key once the token can be opened. A key set whose\n" \
	"configuration lacks an issuer, audiences or signers is created with a warning naming\n"\
	"what to set.\n"                                                                     \
	"  --alg ALG         RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA\n"   \
	"  --bits N          RSA modulus size: 2048, 3072 or 4096 (default 3072; the policy's\n" \
	"                    min_rsa_bits may require more)\n"                                \
	"  --owner OWNER     the team or person accountable for the keys (required)\n"       \
	"  --purpose P       access-token, id-token, refresh-token, logout-token,\n"          \
	"                    security-event-token, service-account-token (Kubernetes,\n"     \
	"                    docs/kubernetes.md), or a custom lowercase slug\n"              \
	"  --description T   free text (at most 255 characters)\n"                           \
	"  --label k=v       free label; repeat for several (at most 16)\n"                \
	"  --no-key          record the key set only; no key is made (keymgrd, 'keymgr apply'\n"\
	"                    or 'keymgr rotate' make it later)\n"                            \
	"  --json            the key set, with first_key (the active key, or null),\n"       \
	"                    first_key_note (why no key was made), can_sign and signing_gaps\n"

static const char create_help[] = CREATE_HELP;

static const char list_help[] =
	"Usage: keymgr [-c FILE] keyset list [ENV] [--owner OWNER] [--purpose PURPOSE] [--json]\n"
	"\n"
	"Lists the key sets of one environment, or of every environment.\n";

static const char show_help[] =
	"Usage: keymgr [-c FILE] keyset show ENV/NAME [--json]\n"
	"\n"
	"Shows a key set, its keys and its owner/purpose history, with warnings: a key set that\n"
	"cannot sign, and keys made in a token with a recorded exception (a property the token\n"
	"could not give them, such as tpm2-pkcs11's CKA_DECRYPT=TRUE; keymgr only signs with\n"
	"them).\n";

static const char set_owner_help[] =
	"Usage: keymgr [-c FILE] keyset set-owner ENV/NAME OWNER --reason TEXT [--json]\n"
	"\n"
	"Changes the owner of a key set. The change is recorded with who made it, when, the\n"
	"old and new owner and the reason.\n";

static const char set_purpose_help[] =
	"Usage: keymgr [-c FILE] keyset set-purpose ENV/NAME PURPOSE --reason TEXT [--json]\n"
	"\n"
	"Changes the purpose (token class) of a key set. The change is recorded with who made\n"
	"it, when, the old and new purpose and the reason. Keys remember the purpose they were\n"
	"made for: a key made for another purpose never signs the new class, so rotate the key\n"
	"set afterwards (one key per token class, RFC 8725).\n";

enum {
	OPT_ALG = 0x10, OPT_BITS, OPT_OWNER, OPT_PURPOSE, OPT_DESC, OPT_LABEL, OPT_REASON,
	OPT_NO_KEY,
};

/* The options of keyset create as given; --label goes into ks (ctx of create_option). */
typedef struct {
	const char *alg, *bits, *owner, *purpose, *desc;
	km_store_keyset_t *ks;
	bool no_key;
} create_args_t;

static int create_option(const char *cmd, int o, const char *arg, void *ctx)
{
	create_args_t *a = ctx;
	km_store_keyset_t *ks = a->ks;
	switch (o) {
	case OPT_ALG: a->alg = arg; break;
	case OPT_BITS: a->bits = arg; break;
	case OPT_OWNER: a->owner = arg; break;
	case OPT_PURPOSE: a->purpose = arg; break;
	case OPT_DESC: a->desc = arg; break;
	case OPT_NO_KEY: a->no_key = true; break;
	default: /* --label */
		if (ks->n_labels == KM_STORE_LABELS_MAX)
			return km_cli_usage_error(cmd, "at most %d labels", KM_STORE_LABELS_MAX);
		if (!km_name_label_valid(arg))
			return km_cli_usage_error(cmd, "invalid label: expected k=v with k of "
			                          "[a-z0-9._/-] and a printable value");
		snprintf(ks->labels[ks->n_labels++], KM_STORE_LABEL_MAX + 1, "%s", arg);
		break;
	}
	return 0;
}

static int keyset_create(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "alg", required_argument, NULL, OPT_ALG },
		{ "bits", required_argument, NULL, OPT_BITS },
		{ "owner", required_argument, NULL, OPT_OWNER },
		{ "purpose", required_argument, NULL, OPT_PURPOSE },
		{ "description", required_argument, NULL, OPT_DESC },
		{ "label", required_argument, NULL, OPT_LABEL },
		{ "no-key", no_argument, NULL, OPT_NO_KEY },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr keyset create", .help = create_help, .opts = opts,
		.option = create_option,
		.min_pos = 1, .max_pos = 1, .count_error = "expected exactly one ENV/NAME",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	km_store_keyset_t ks;
	memset(&ks, 0, sizeof(ks));
	create_args_t a = { NULL, NULL, NULL, NULL, "", &ks, false };
	int npos, rc = km_cli_args_parse(&args, &a, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	char env_name[KM_ENV_NAME_MAX + 1], err[1024] = "";
	int r = km_name_split(pos[0], false, env_name, ks.name, err, sizeof(err));
	if (r != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);
	if (a.alg == NULL)
		return km_cli_usage_error(cmd, "missing --alg");
	if (km_alg_from_name(a.alg, &ks.alg) != KM_EOK)
		return km_cli_usage_error(cmd, "unknown algorithm '%.32s': use RS256, RS384, RS512, "
		                          "PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA", a.alg);
	if (km_alg_info(ks.alg)->kty == KM_KTY_RSA) {
		char *end = NULL;
		unsigned long b = a.bits ? strtoul(a.bits, &end, 10) : KM_RSA_DEFAULT_BITS;
		if (a.bits != NULL && (end == a.bits || *end != '\0' || b > 65536))
			return km_cli_usage_error(cmd, "--bits must be 2048, 3072 or 4096");
		if (b < KM_RSA_MIN_BITS)
			return km_cli_usage_error(cmd, "RSA keys below %d bits are refused (got %lu)",
			                          KM_RSA_MIN_BITS, b);
		if (!km_rsa_bits_valid((unsigned)b))
			return km_cli_usage_error(cmd, "--bits must be 2048, 3072 or 4096");
		ks.rsa_bits = (unsigned)b;
	} else if (a.bits != NULL) {
		return km_cli_usage_error(cmd, "--bits applies to RS* and PS* algorithms only");
	}
	if (a.owner == NULL)
		return km_cli_usage_error(cmd, "missing --owner: every key set needs an owner");
	if (a.purpose == NULL)
		return km_cli_usage_error(cmd, "missing --purpose");
	if (strlen(a.desc) > KM_STORE_DESC_MAX)
		return km_cli_usage_error(cmd, "--description is longer than %d characters",
		                          KM_STORE_DESC_MAX);
	snprintf(ks.owner, sizeof(ks.owner), "%s", a.owner);
	snprintf(ks.purpose, sizeof(ks.purpose), "%s", a.purpose);
	snprintf(ks.description, sizeof(ks.description), "%s", a.desc);
	if (strlen(a.owner) > KM_OWNER_MAX || strlen(a.purpose) > KM_PURPOSE_MAX)
		return km_cli_usage_error(cmd, "--owner or --purpose is too long");

	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	rc = km_cli_env_open(env_name, &cfg, &env);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	char who[256], gaps_msg[512];
	km_apply_created_t made;
	r = km_apply_keyset_create(env, &ks, km_env_actor(who, sizeof(who)), km_cli_now(),
	                           !a.no_key, &made, err, sizeof(err));
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
		goto out;
	}
	unsigned gaps = km_keyset_signing_gaps(env, ks.name, gaps_msg, sizeof(gaps_msg));
	if (gaps != 0)
		fprintf(stderr, "keymgr: warning: %s\n", gaps_msg);
	if (!a.no_key && !made.made)
		fprintf(stderr, "keymgr: warning: no key made yet for %s/%s: %s; keymgrd or 'keymgr "
		        "apply %s/%s' makes it once the token can be opened\n", env_name, ks.name,
		        made.why_not, env_name, ks.name);
	km_store_key_t first;
	bool have_first = made.made && km_store_key_get(km_env_store(env), made.rotation.kid,
	                                                &first, NULL, 0) == KM_EOK;
	if (km_store_keyset_get(km_env_store(env), ks.name, &ks, err, sizeof(err)) != KM_EOK) {
		rc = km_cli_fail(KM_STORE_EIO, err);
	} else if (c.json) {
		json_t *j = km_cli_keyset_json(&ks);
		json_object_set_new(j, "first_key", have_first ? km_cli_key_json(&first) : json_null());
		json_object_set_new(j, "first_key_note", a.no_key ? json_string("--no-key")
		                    : made.made ? json_null() : json_string(made.why_not));
		json_object_set_new(j, "can_sign", json_boolean(gaps == 0));
		json_object_set_new(j, "signing_gaps", km_cli_signing_gaps_json(gaps));
		rc = km_cli_print_json(j);
		json_decref(j);
	} else {
		printf("created key set %s/%s (%s, owner %s, purpose %s)\n", env_name, ks.name,
		       km_alg_name(ks.alg), ks.owner, ks.purpose);
		if (have_first)
			printf("%s/%s: key %s is active\n", env_name, ks.name, first.kid);
	}
out:
	km_cli_env_close(cfg, env);
	return rc;
}

/* Prints the key sets of one open environment; appends to arr in JSON mode. */
static int list_env(km_env_t *env, const km_store_keyset_filter_t *f, json_t *arr)
{
	km_store_keyset_t *list = NULL;
	size_t n = 0;
	char err[512] = "";
	int r = km_store_keyset_list(km_env_store(env), f, &list, &n, err, sizeof(err));
	if (r != KM_EOK)
		return km_cli_fail(r, err);
	for (size_t i = 0; i < n; i++) {
		if (arr != NULL) {
			json_array_append_new(arr, km_cli_keyset_json(&list[i]));
			continue;
		}
		km_store_key_t active;
		const char *kid = "-";
		if (km_store_key_active(km_env_store(env), list[i].name, &active, NULL, 0) == KM_EOK)
			kid = active.kid;
		char ref[KM_ENV_NAME_MAX + KM_KEYSET_NAME_MAX + 2];
		snprintf(ref, sizeof(ref), "%s/%s", list[i].env, list[i].name);
		printf("%-32s %-6s %-20s %-22s %s\n", ref, km_alg_name(list[i].alg), list[i].owner,
		       list[i].purpose, kid);
	}
	km_store_keysets_free(list);
	return KM_CLI_EXIT_OK;
}

/* --owner and --purpose of keyset list: the filter (ctx). */
static int list_option(const char *cmd, int o, const char *arg, void *ctx)
{
	km_store_keyset_filter_t *f = ctx;
	(void)cmd;
	if (o == OPT_OWNER)
		f->owner = arg;
	else
		f->purpose = arg;
	return 0;
}

static int keyset_list(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "owner", required_argument, NULL, OPT_OWNER },
		{ "purpose", required_argument, NULL, OPT_PURPOSE },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr keyset list", .help = list_help, .opts = opts, .option = list_option,
		.min_pos = 0, .max_pos = 1, .count_error = "expected at most one ENV",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	km_store_keyset_filter_t f = { 0 };
	int npos, rc = km_cli_args_parse(&args, &f, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if (npos == 1 && !km_name_env_valid(pos[0]))
		return km_cli_usage_error(cmd, "invalid environment name: expected a lowercase slug");

	km_config_t *cfg = NULL;
	rc = km_cli_config_load_partial(&cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	json_t *arr = c.json ? json_array() : NULL;
	if (!c.json)
		printf("%-32s %-6s %-20s %-22s %s\n", "KEY SET", "ALG", "OWNER", "PURPOSE",
		       "ACTIVE KID");
	for (size_t i = 0; rc == KM_CLI_EXIT_OK && i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		if (npos == 1 && strcmp(e->name, pos[0]) != 0)
			continue;
		km_env_t *env = NULL;
		char err[1024] = "";
		if (npos == 0 && !km_store_exists(e->store))
			continue; /* never used: nothing to list, and listing creates no store */
		int r = km_env_open(cfg, e->name, &env, err, sizeof(err));
		if (r != KM_EOK) {
			rc = km_cli_fail(r, err);
			break;
		}
		rc = list_env(env, &f, arr);
		km_env_free(env);
	}
	if (npos == 1 && km_config_env(cfg, pos[0]) == NULL && rc == KM_CLI_EXIT_OK) {
		char err[1024];
		const km_env_cfg_t *unused;
		rc = km_cli_fail(km_config_env_lookup(cfg, pos[0], &unused, err, sizeof(err)), err);
	}
	if (c.json && rc == KM_CLI_EXIT_OK)
		rc = km_cli_print_json(arr);
	json_decref(arr);
	if (npos == 0)
		rc = km_cli_config_complete(cfg, rc);
	km_config_free(cfg);
	return rc;
}

/* Opens ENV/NAME given as the first positional (from a configuration that may have errors
 * elsewhere when partial: the read-only verbs); prints errors. */
static int open_ref(const char *cmd, const char *ref, bool partial, km_config_t **cfg,
                    km_env_t **env, char name[KM_KEYSET_NAME_MAX + 1])
{
	char env_name[KM_ENV_NAME_MAX + 1], err[512];
	if (km_name_split(ref, false, env_name, name, err, sizeof(err)) != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);
	return partial ? km_cli_env_open_partial(env_name, cfg, env)
	               : km_cli_env_open(env_name, cfg, env);
}

/* The recorded exceptions of a key set's keys (on_exception's ctx). */
typedef struct {
	json_t *arr;              /* --json: [{"kid","check","message"}], else NULL */
} show_warnings_t;

static void on_exception(void *vctx, const km_finding_t *f)
{
	show_warnings_t *w = vctx;
	if (w->arr != NULL)
		json_array_append_new(w->arr, json_pack("{s:s, s:s?, s:s}", "check", f->check, "kid",
		                                        f->kid, "message", f->message));
	else
		printf("warning      key %s: %s\n", f->kid ? f->kid : "-", f->message);
}

static int keyset_show(int argc, char **argv)
{
	static const km_cli_args_t args = {
		.cmd = "keymgr keyset show", .help = show_help,
		.min_pos = 1, .max_pos = 1, .count_error = "expected exactly one ENV/NAME",
	};
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	int npos, rc = km_cli_args_parse(&args, NULL, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;

	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	char name[KM_KEYSET_NAME_MAX + 1], err[1024] = "";
	rc = open_ref(args.cmd, pos[0], true, &cfg, &env, name);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	km_store_t *s = km_env_store(env);
	km_store_keyset_t ks;
	km_store_key_t *keys = NULL;
	km_store_change_t *changes = NULL;
	size_t nkeys = 0, nchanges = 0;
	km_store_key_filter_t f = { .keyset = name };
	int r = km_store_keyset_get(s, name, &ks, err, sizeof(err));
	if (r == KM_ENOENT)
		snprintf(err, sizeof(err), "unknown key set %s/%s", km_env_name(env), name);
	if (r == KM_EOK)
		r = km_store_keys_query(s, &f, &keys, &nkeys, err, sizeof(err));
	if (r == KM_EOK)
		r = km_store_keyset_changes(s, name, &changes, &nchanges, err, sizeof(err));
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
		goto out;
	}
	char t[32], gaps_msg[512];
	unsigned gaps = km_keyset_signing_gaps(env, name, gaps_msg, sizeof(gaps_msg));
	if (c.json) {
		json_t *j = km_cli_keyset_json(&ks), *jk = json_array(), *jc = json_array();
		for (size_t i = 0; i < nkeys; i++)
			json_array_append_new(jk, km_cli_key_json(&keys[i]));
		for (size_t i = 0; i < nchanges; i++)
			json_array_append_new(jc, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
			        "field", changes[i].field, "old", changes[i].old_value,
			        "new", changes[i].new_value, "who", changes[i].who,
			        "at", km_cli_iso8601(changes[i].at, t, sizeof(t)),
			        "reason", changes[i].reason));
		json_object_set_new(j, "keys", jk);
		json_object_set_new(j, "history", jc);
		json_object_set_new(j, "can_sign", json_boolean(gaps == 0));
		json_object_set_new(j, "signing_gaps", km_cli_signing_gaps_json(gaps));
		show_warnings_t w = { json_array() };
		km_compliance_exceptions(env, name, on_exception, &w);
		json_object_set_new(j, "exceptions", w.arr);
		rc = km_cli_print_json(j);
		json_decref(j);
		goto out;
	}
	printf("key set      %s/%s\nalgorithm    %s", ks.env, ks.name, km_alg_name(ks.alg));
	if (ks.rsa_bits)
		printf(" (RSA %u)", ks.rsa_bits);
	printf("\nowner        %s\npurpose      %s\ndescription  %s\ncreated      %s by %s\n",
	       ks.owner, ks.purpose, ks.description,
	       km_cli_iso8601(ks.created_at, t, sizeof(t)), ks.created_by);
	for (size_t i = 0; i < ks.n_labels; i++)
		printf("label        %s\n", ks.labels[i]);
	if (gaps != 0)
		printf("warning      %s\n", gaps_msg);
	show_warnings_t w = { NULL };
	km_compliance_exceptions(env, name, on_exception, &w);
	printf("\n%-44s %-10s %s\n", "KID", "STATE", "SINCE");
	for (size_t i = 0; i < nkeys; i++)
		printf("%-44s %-10s %s\n", keys[i].pending ? "(pending)" : keys[i].kid,
		       km_state_name(keys[i].state),
		       km_cli_iso8601(keys[i].state_at[keys[i].state], t, sizeof(t)));
	for (size_t i = 0; i < nchanges; i++)
		printf("%s %s changed %s -> %s by %s: %s\n",
		       km_cli_iso8601(changes[i].at, t, sizeof(t)), changes[i].field,
		       changes[i].old_value, changes[i].new_value, changes[i].who, changes[i].reason);
out:
	km_store_keys_free(keys);
	km_store_changes_free(changes);
	km_cli_env_close(cfg, env);
	return rc;
}

/* What `keyset set-owner` and `keyset set-purpose` change: one field, with a recorded reason. */
typedef struct {
	const char *cmd, *help, *field, *count_error;
	bool (*valid)(const char *);          /* the value's syntax: a usage error */
	const char *invalid_msg;
	int (*set)(km_env_t *, const char *, const char *, const char *, int64_t, const char *,
	           km_keyset_change_t *, char *, size_t);
} field_change_t;

static int keyset_set_field(int argc, char **argv, const field_change_t *f)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "reason", required_argument, NULL, OPT_REASON },
		{ NULL, 0, NULL, 0 },
	};
	const km_cli_args_t args = {
		.cmd = f->cmd, .help = f->help, .opts = opts, .option = km_cli_args_store,
		.min_pos = 2, .max_pos = 2, .count_error = f->count_error,
	};
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	const char *reason = NULL;
	int npos, rc = km_cli_args_parse(&args, &reason, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if (reason == NULL || reason[0] == '\0')
		return km_cli_usage_error(f->cmd, "missing --reason: %s changes are recorded with a "
		                          "reason", f->field);
	if (!f->valid(pos[1]))
		return km_cli_usage_error(f->cmd, "%s", f->invalid_msg);
	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	char name[KM_KEYSET_NAME_MAX + 1], err[1024] = "", who[256];
	rc = open_ref(f->cmd, pos[0], false, &cfg, &env, name);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	km_keyset_change_t res;
	int r = f->set(env, name, pos[1], km_env_actor(who, sizeof(who)), km_cli_now(), reason,
	               &res, err, sizeof(err));
	if (r != KM_EOK)
		rc = km_cli_fail(r, err);
	else if (c.json)
		printf("{\"keyset\":\"%s/%s\",\"%s\":\"%s\"}\n", km_env_name(env), name, f->field,
		       pos[1]);
	else
		printf("%s of %s/%s is now %s\n", f->field, km_env_name(env), name, pos[1]);
	if (r == KM_EOK && res.stale_kid[0])
		fprintf(stderr, "keymgr: warning: the active key %s was made for purpose '%s' and "
		        "will not sign '%s' tokens: rotate %s/%s (one key per token class)\n",
		        res.stale_kid, res.stale_purpose, pos[1], km_env_name(env), name);
	km_cli_env_close(cfg, env);
	return rc;
}

static int keyset_set_owner(int argc, char **argv)
{
	static const field_change_t f = {
		"keymgr keyset set-owner", set_owner_help, "owner", "expected ENV/NAME and OWNER",
		km_name_owner_valid,
		"invalid owner: use 1 to 128 of letters, digits and . _ @ + : -",
		km_keyset_set_owner,
	};
	return keyset_set_field(argc, argv, &f);
}

static int keyset_set_purpose(int argc, char **argv)
{
	static const field_change_t f = {
		"keymgr keyset set-purpose", set_purpose_help, "purpose",
		"expected ENV/NAME and PURPOSE", km_name_purpose_valid,
		"unknown purpose: use access-token, id-token, refresh-token, logout-token, "
		"security-event-token, service-account-token or a custom lowercase slug",
		km_keyset_set_purpose,
	};
	return keyset_set_field(argc, argv, &f);
}

static const km_cli_command_t keyset_commands[] = {
	{ "create", keyset_create, "create a key set (algorithm, owner, purpose)" },
	{ "list", keyset_list, "list key sets" },
	{ "show", keyset_show, "show a key set, its keys and its history" },
	{ "set-owner", keyset_set_owner, "change the owner of a key set, with a reason" },
	{ "set-purpose", keyset_set_purpose, "change the purpose of a key set, with a reason" },
	{ NULL, NULL, NULL },
};

int km_cmd_keyset(int argc, char **argv)
{
	return km_cli_dispatch(keyset_commands, "keymgr keyset", NULL, argc - 1, argv + 1);
}
