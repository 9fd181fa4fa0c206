/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr jwks ENV[/NAME], keymgr publish ENV --to DIR and keymgr sign ENV/NAME: the public
 * output of an environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/cmd_audit.h"
#include "keymgr/common/atomic_file.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/claims/claims.h"
#include "keymgr/common/error.h"
#include "keymgr/control/control_proto.h"
#include "keymgr/core/keyops.h"
#include "keymgr/core/static_tree.h"
#include "keymgr/jose/jws.h"

static const char jwks_help[] =
	"Usage: keymgr [-c FILE] jwks ENV[/NAME] [--output FILE] [--json]\n"
	"       keymgr [-c FILE] jwks history ENV | jwks show ENV --serial N | --at TIME\n"
	"\n"
	"Prints the JWKS of an environment, or of one key set: every published, active and\n"
	"retired key. Opens no token: the public keys come from the store.\n"
	"  --output FILE   write atomically (temporary file, fsync, rename; mode 0644), so a\n"
	"                  reader never sees a torn document\n"
	"  --json          accepted for uniformity: the JWKS is JSON either way\n";

static const char publish_help[] =
	"Usage: keymgr [-c FILE] publish ENV --to DIR [--json]\n"
	"\n"
	"Writes everything ENV publishes into DIR, a static tree for a web server or an object\n"
	"store (docs/static-hosting.md): its JWKS and each key set's at keymgrd's paths, each\n"
	"key set's OpenID Connect discovery document (key sets with an issuer, when\n"
	"http.public_url is set), the same documents again under issuers/HOST/PATH where\n"
	"OIDC clients look for them, and manifest.json (serial, and each file's path, ETag and\n"
	"size). Each file is replaced atomically; files an earlier run wrote that are no\n"
	"longer published are removed; nothing else in DIR is touched. Opens no token.\n"
	"keymgrd does the same after every change when http.static_dir is set.\n"
	"  --to DIR   an existing directory, writable by its owner only\n"
	"  --json     print {\"env\",\"dir\",\"serial\",\"written\",\"unchanged\",\"removed\",\n"
	"             \"discovery\",\"shared_issuers\"}\n";

static const char sign_help[] =
	"Usage: keymgr [-c FILE] sign ENV/NAME --claims JSON|@FILE [--ttl DURATION]\n"
	"                        [--via auto|daemon|token] [--socket PATH] [--json]\n"
	"\n"
	"Signs the claims (a JSON object; @FILE reads a file, @- standard input) into a compact\n"
	"JWT with the key set's active key. The header carries alg, kid and the typ of the key\n"
	"set's purpose (at+jwt for access tokens, logout+jwt, secevent+jwt, ...).\n"
	"The claims policy of the key set's class applies (docs/claims.md): iss is the key set's\n"
	"configured issuer, aud must be among its audiences, exp is required and at most\n"
	"max_token_ttl away (or give --ttl DURATION and keymgr sets exp), iat, nbf and jti are\n"
	"set by keymgr, and claims of other token classes are refused.\n"
	"When keymgrd answers on its control socket (--socket, else $KEYMGR_CONTROL_SOCKET,\n"
	"else daemon.control_socket), it signs, and its signers list decides who may;\n"
	"otherwise keymgr signs with the token itself. Output, errors and exit status are the\n"
	"same either way.\n"
	"  --via auto      the daemon if it answers and signs for ENV, else the token (default)\n"
	"  --via daemon    only through keymgrd (exit 1 if it does not answer)\n"
	"  --via token     only with the token (needs its PIN source)\n"
	"  --json          print {\"jwt\",\"via\":\"daemon\"|\"token\",\"env\",\"keyset\",\"kid\",\n"
	"                  \"alg\",\"typ\",\"expires_at\"}: via says who signed\n";

enum { OPT_OUTPUT = 0x10, OPT_CLAIMS, OPT_TTL, OPT_VIA, OPT_SOCKET, OPT_TO };

#define SIGN_TIMEOUT_MS 30000

#define CLAIMS_MAX (64 * 1024)

static int jwks(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr jwks", .help = jwks_help, .opts = opts, .option = km_cli_args_store,
		.min_pos = 1, .max_pos = 1, .count_error = "expected exactly one ENV or ENV/NAME",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	const char *output = NULL;
	int npos, rc = km_cli_args_parse(&args, &output, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	char env_name[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1], err[1024] = "";
	if (km_name_split(pos[0], true, env_name, name, err, sizeof(err)) != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);

	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	rc = km_cli_env_open_partial(env_name, &cfg, &env);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	char *doc = NULL;
	size_t len = 0;
	km_store_keyset_t ks;
	int r = KM_EOK;
	if (name[0] && (r = km_store_keyset_get(km_env_store(env), name, &ks, err,
	                                        sizeof(err))) == KM_ENOENT)
		snprintf(err, sizeof(err), "unknown key set %s/%s", env_name, name);
	if (r == KM_EOK)
		r = km_env_jwks(env, name[0] ? name : NULL, &doc, &len, err, sizeof(err));
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
	} else if (output != NULL) {
		r = km_file_write_atomic(output, doc, len, 0644);
		if (r != KM_EOK)
			rc = km_cli_fail(r, NULL);
	} else {
		printf("%s\n", doc);
	}
	if (output != NULL && r != KM_EOK && rc == KM_CLI_EXIT_REFUSED)
		km_cli_error("cannot write %s", output);
	free(doc);
	km_cli_env_close(cfg, env);
	return rc;
}

static int publish(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "to", required_argument, NULL, OPT_TO },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr publish", .help = publish_help, .opts = opts,
		.option = km_cli_args_store, .min_pos = 1, .max_pos = 1,
		.count_error = "expected exactly one ENV",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	const char *dir = NULL;
	int npos, rc = km_cli_args_parse(&args, &dir, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if (dir == NULL || dir[0] == '\0')
		return km_cli_usage_error(cmd, "--to DIR is required");
	if (!km_name_env_valid(pos[0]))
		return km_cli_usage_error(cmd, "'%s' is not an environment name (ENV, no key set)",
		                          pos[0]);
	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	rc = km_cli_env_open_partial(pos[0], &cfg, &env);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	km_static_result_t res;
	char err[1024] = "";
	int r = km_static_write(env, dir, 0, &res, err, sizeof(err));
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
	} else if (c.json) {
		json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "env", pos[0],
		                      "dir", dir, "serial", (json_int_t)res.serial, "written",
		                      (json_int_t)res.written, "unchanged", (json_int_t)res.unchanged,
		                      "removed", (json_int_t)res.removed, "discovery",
		                      (json_int_t)res.discovery, "shared_issuers",
		                      (json_int_t)res.shared_issuers);
		rc = j != NULL ? km_cli_print_json(j) : km_cli_fail(KM_ENOMEM, NULL);
		json_decref(j);
	} else {
		if (res.shared_issuers > 0)
			km_cli_error("warning: %zu key sets share their issuer with another key set: their "
			               "discovery documents are at keymgrd's paths only, not under "
			               "issuers/ (one issuer URL, one document)", res.shared_issuers);
		printf("%s: %zu files in %s (JWKS serial %lld): %zu written, %zu unchanged, %zu "
		       "removed; %zu discovery documents\n", pos[0], res.written + res.unchanged,
		       dir, (long long)res.serial, res.written, res.unchanged, res.removed,
		       res.discovery);
	}
	km_cli_env_close(cfg, env);
	return rc;
}

typedef enum { VIA_AUTO, VIA_DAEMON, VIA_TOKEN } via_t;

/* The result of asking keymgrd. */
typedef enum { ASKED_DONE, ASKED_UNAVAILABLE } asked_t;

/*
 * Asks keymgrd to sign (docs/control-protocol.md). The claims travel as the text the user
 * gave, so that the daemon parses exactly what the token path would. Sets *rc, and *jwt
 * (malloc'd) when it signed; prints errors like the token path. ASKED_UNAVAILABLE (nothing
 * printed) when no daemon answers on the socket or it does not sign for this environment,
 * and via is auto.
 */
static asked_t ask_daemon(const km_config_t *cfg, const char *socket, via_t via,
                          const char *ref, const char *claims, int64_t ttl, char **jwt_out,
                          int *rc)
{
	char err[1024] = "";
	if (socket == NULL || socket[0] == '\0')
		socket = secure_getenv("KEYMGR_CONTROL_SOCKET");
	if (socket == NULL || socket[0] == '\0')
		socket = km_config_daemon(cfg)->control_socket;
	json_t *req = json_pack("{s:s, s:s, s:s}", "op", "sign", "keyset", ref, "claims", claims);
	json_t *reply = NULL;
	if (req == NULL) {
		/* Not UTF-8, so not JSON text: the words the claims check uses for it. */
		json_error_t jerr;
		json_t *j = json_loads(claims, JSON_REJECT_DUPLICATES, &jerr);
		json_decref(j);
		snprintf(err, sizeof(err), "claims are not valid JSON: %s (line %d, column %d)",
		         jerr.text, jerr.line, jerr.column);
		*rc = km_cli_fail(KM_EMALFORMED, j == NULL ? err : "out of memory");
		return ASKED_DONE;
	}
	if (ttl > 0)
		json_object_set_new(req, "ttl", json_integer((json_int_t)ttl));
	int r = km_ctl_call(socket, req, SIGN_TIMEOUT_MS, &reply, err, sizeof(err));
	json_decref(req);
	if (r == KM_ENOENT || r == KM_EACCES) {
		if (via == VIA_AUTO)
			return ASKED_UNAVAILABLE;
		*rc = km_cli_fail(r, err);
		return ASKED_DONE;
	}
	if (r != KM_EOK) {
		*rc = km_cli_fail(r, err[0] ? err : NULL);
		return ASKED_DONE;
	}
	const char *jwt = json_string_value(json_object_get(reply, "jwt"));
	const char *code = json_string_value(json_object_get(reply, "code"));
	const char *msg = json_string_value(json_object_get(reply, "error"));
	if (json_is_true(json_object_get(reply, "ok")) && jwt != NULL) {
		*jwt_out = strdup(jwt);
		*rc = *jwt_out != NULL ? KM_CLI_EXIT_OK : km_cli_fail(KM_ENOMEM, NULL);
	} else if (via == VIA_AUTO && code != NULL && strcmp(code, "not_served") == 0) {
		json_decref(reply);
		return ASKED_UNAVAILABLE;
	} else {
		*rc = km_cli_fail(km_ctl_code_value(code), msg ? msg : "keymgrd refused the request");
	}
	json_decref(reply);
	return ASKED_DONE;
}

/*
 * Prints what sign made: the JWT alone, or with --json what it says about itself (read back
 * from the token keymgr just signed) and who signed it. Returns the exit code.
 */
static int print_jwt(const char *jwt, bool json, const char *via, const char *env,
                     const char *keyset)
{
	if (!json) {
		printf("%s\n", jwt);
		return KM_CLI_EXIT_OK;
	}
	json_t *header = NULL, *claims = NULL;
	if (km_jws_peek(jwt, &header, &claims) != KM_EOK)
		return km_cli_fail(KM_EMALFORMED, "the signed token cannot be read back");
	char t[32];
	json_t *exp = json_object_get(claims, "exp");
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:O?, s:O?, s:O?, s:s?}", "jwt", jwt,
	                      "via", via, "env", env, "keyset", keyset,
	                      "kid", json_object_get(header, "kid"),
	                      "alg", json_object_get(header, "alg"),
	                      "typ", json_object_get(header, "typ"),
	                      "expires_at", json_is_integer(exp) ? km_cli_iso8601(
	                              (int64_t)json_integer_value(exp), t, sizeof(t)) : NULL);
	int rc = j != NULL ? km_cli_print_json(j) : km_cli_fail(KM_ENOMEM, NULL);
	json_decref(j);
	json_decref(header);
	json_decref(claims);
	return rc;
}

/* The options of sign as given (ctx of sign_option). */
typedef struct {
	const char *claims, *ttl, *via, *socket;
} sign_args_t;

static int sign_option(const char *cmd, int o, const char *arg, void *ctx)
{
	sign_args_t *a = ctx;
	(void)cmd;
	if (o == OPT_CLAIMS)
		a->claims = arg;
	else if (o == OPT_TTL)
		a->ttl = arg;
	else if (o == OPT_VIA)
		a->via = arg;
	else
		a->socket = arg;
	return 0;
}

static int sign(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "claims", required_argument, NULL, OPT_CLAIMS },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "via", required_argument, NULL, OPT_VIA },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr sign", .help = sign_help, .opts = opts, .option = sign_option,
		.min_pos = 1, .max_pos = 1, .count_error = "expected exactly one ENV/NAME",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	sign_args_t a = { NULL, NULL, NULL, NULL };
	int64_t ttl = 0;
	via_t via = VIA_AUTO;
	int npos, rc = km_cli_args_parse(&args, &a, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if (a.claims == NULL)
		return km_cli_usage_error(cmd, "missing --claims JSON|@FILE");
	if (a.via != NULL) {
		static const char *const vias[] = { "auto", "daemon", "token" };
		if (strcmp(a.via, "auto") == 0)
			via = VIA_AUTO;
		else if (strcmp(a.via, "daemon") == 0)
			via = VIA_DAEMON;
		else if (strcmp(a.via, "token") == 0)
			via = VIA_TOKEN;
		else
			return km_cli_bad_choice(cmd, "--via", a.via, vias, 3);
	}
	char env_name[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1], err[1024] = "";
	if (km_name_split(pos[0], false, env_name, name, err, sizeof(err)) != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);
	if (a.ttl != NULL && (km_duration_parse_err(a.ttl, &ttl, err, sizeof(err)) != KM_EOK ||
	                      ttl <= 0))
		return km_cli_usage_error(cmd, "--ttl: %s", err[0] ? err : "must be positive");
	char *claims = NULL;
	int r = km_cli_read_arg(a.claims, CLAIMS_MAX, &claims, err, sizeof(err));
	if (r != KM_EOK)
		return km_cli_fail(r, err);

	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	const km_env_cfg_t *ecfg = NULL;
	char *jwt = NULL;
	const char *signed_by = "token";
	rc = km_cli_config_load(&cfg);
	if (rc != KM_CLI_EXIT_OK) {
		free(claims);
		return rc;
	}
	/* The same check, and message, as opening the environment below. */
	if ((r = km_config_env_lookup(cfg, env_name, &ecfg, err, sizeof(err))) != KM_EOK) {
		rc = km_cli_fail(r, err);
		goto out;
	}
	if (via != VIA_TOKEN &&
	    ask_daemon(cfg, a.socket, via, pos[0], claims, ttl, &jwt, &rc) == ASKED_DONE) {
		signed_by = "daemon";
		goto out;
	}
	if ((r = km_env_open(cfg, env_name, &env, err, sizeof(err))) != KM_EOK) {
		rc = km_cli_fail(r, err);
		goto out;
	}
	r = km_claims_sign(env, name, claims, km_cli_now(), ttl, &jwt, err, sizeof(err));
	if (r == KM_EMALFORMED)
		rc = km_cli_fail(r, err[0] ? err : "malformed claims JSON");
	else if (r != KM_EOK)
		rc = km_cli_fail(r, err);
out:
	if (jwt != NULL && rc == KM_CLI_EXIT_OK)
		rc = print_jwt(jwt, c.json, signed_by, env_name, name);
	free(jwt);
	free(claims);
	km_cli_env_close(cfg, env);
	return rc;
}

int km_cmd_jwks(int argc, char **argv)
{
	/* keymgr jwks history|show ENV: the recorded versions (cmd_audit_report.c). */
	if (argc > 1 && strcmp(argv[1], "history") == 0)
		return km_cmd_jwks_history(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "show") == 0)
		return km_cmd_jwks_show(argc - 1, argv + 1);
	return jwks(argc, argv);
}

int km_cmd_publish(int argc, char **argv)
{
	return publish(argc, argv);
}

int km_cmd_sign(int argc, char **argv)
{
	return sign(argc, argv);
}
