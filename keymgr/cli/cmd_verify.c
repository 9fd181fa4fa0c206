/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr verify: the strict reference verifier (keymgr/verify/, docs/verify.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/jose/jwks.h"
#include "keymgr/verify/verify.h"
#include "policy/policy.h"

static const char verify_help[] =
	"Usage: keymgr verify --jwks URL|FILE --alg ALG --iss ISS --aud AUD --typ TYP\n"
	"                     [--leeway 30s] [--max-ttl DUR] [--at TIME] [--low-s] [--json]\n"
	"                     TOKEN|-\n"
	"\n"
	"Verifies a compact JWT strictly; nothing in its header chooses how it is checked.\n"
	"  --jwks URL|FILE  the keys: an http:// or https:// URL (5 s timeout, at most 1 MiB,\n"
	"                   redirects not followed) or a file\n"
	"  --alg ALG        the one accepted algorithm (RS256..EdDSA); none and HS* refused\n"
	"  --iss ISS        expected issuer (exact match)\n"
	"  --aud AUD        an audience the token must name (aud string or array)\n"
	"  --typ TYP        expected header typ (at+jwt, logout+jwt, secevent+jwt, JWT, ...)\n"
	"  --leeway DUR     clock tolerance for exp, nbf and iat (default 30s, at most 10m)\n"
	"  --max-ttl DUR    the issuer's max_token_ttl: iat required and exp - iat at most DUR\n"
	"                   (a token with its iat set back to live longer is refused)\n"
	"  --at TIME        verify as of TIME (ISO 8601 UTC, @UNIXSECONDS or now; default now)\n"
	"  --low-s          ES*: refuse a signature whose s is in the high half of the curve\n"
	"                   order. JOSE accepts both r||s and r||(n-s), so anyone can make a\n"
	"                   second, byte-different token from one; keymgr signs low-s only\n"
	"  --json           accepted for uniformity: the claims are printed as JSON either way\n"
	"TOKEN is the JWT, or '-' to read it from standard input (prefer '-': a command line\n"
	"is visible to other users of the machine).\n"
	"Refused: jku, x5u, x5c and jwk headers, crit, a kid that is not 1 to 128 base64url\n"
	"characters, an unknown kid, duplicate JSON members, non-canonical base64url.\n"
	"Exit status: 0 valid (the claims are printed as JSON), 1 refused (one line naming the\n"
	"failed check), 2 usage error.\n";

enum { OPT_JWKS = 0x10, OPT_ALG, OPT_ISS, OPT_AUD, OPT_TYP, OPT_LEEWAY, OPT_AT, OPT_LOW_S,
       OPT_MAX_TTL };

typedef struct {
	const char *jwks, *alg, *iss, *aud, *typ, *leeway, *at, *token, *max_ttl;
	bool low_s;
} verify_args_t;

static int check_args(const char *cmd, const verify_args_t *a, km_verify_opts_t *o)
{
	char why[128] = "";
	static const char *const names[] = { "--jwks", "--alg", "--iss", "--aud", "--typ" };
	const char *vals[] = { a->jwks, a->alg, a->iss, a->aud, a->typ };
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		if (vals[i] == NULL || vals[i][0] == '\0')
			return km_cli_usage_error(cmd, "missing %s: nothing is taken from the token "
			                          "itself", names[i]);
	if (strcasecmp(a->alg, "none") == 0 || strncasecmp(a->alg, "HS", 2) == 0)
		return km_cli_usage_error(cmd, "--alg %.16s is refused: only public-key algorithms "
		                          "are verified", a->alg);
	if (km_alg_from_name(a->alg, &o->alg) != KM_EOK)
		return km_cli_bad_alg(cmd, "--alg", a->alg);
	o->low_s = a->low_s;
	o->leeway = 30;
	if (a->leeway != NULL &&
	    km_duration_parse_err(a->leeway, &o->leeway, why, sizeof(why)) != KM_EOK)
		return km_cli_usage_error(cmd, "--leeway: %s", why);
	if (o->leeway > KM_VERIFY_LEEWAY_MAX)
		return km_cli_usage_error(cmd, "--leeway is at most 10m");
	if (a->max_ttl != NULL &&
	    (km_duration_parse_err(a->max_ttl, &o->max_ttl, why, sizeof(why)) != KM_EOK ||
	     o->max_ttl <= 0))
		return km_cli_usage_error(cmd, "--max-ttl: %s", why[0] ? why : "must be positive");
	o->now = km_cli_now();
	if (a->at != NULL && km_cli_parse_time(a->at, &o->now) != KM_EOK)
		return km_cli_usage_error(cmd, "--at: expected ISO 8601 UTC, @UNIXSECONDS or now");
	if (strstr(a->jwks, "://") != NULL && strncasecmp(a->jwks, "http://", 7) != 0 &&
	    strncasecmp(a->jwks, "https://", 8) != 0)
		return km_cli_usage_error(cmd, "--jwks: only http:// and https:// URLs (or a file)");
	o->iss = a->iss;
	o->aud = a->aud;
	o->typ = a->typ;
	return KM_CLI_EXIT_OK;
}

/* Reads the JWKS (URL or file) and parses it. Prints the error; returns an exit code. */
static int load_jwks(const char *src, km_jwks_entry_t **keys, size_t *n)
{
	char err[1024] = "", *doc = NULL, *path = NULL;
	size_t len = 0;
	int r;
	if (strncasecmp(src, "http://", 7) == 0 || strncasecmp(src, "https://", 8) == 0) {
		r = km_verify_fetch(src, &doc, &len, err, sizeof(err));
	} else if ((path = malloc(strlen(src) + 2)) == NULL) {
		r = KM_ENOMEM;
	} else {
		sprintf(path, "@%s", src);
		r = km_cli_read_arg(path, KM_VERIFY_JWKS_MAX, &doc, err, sizeof(err));
		if (r == KM_EOK)
			len = strlen(doc);
	}
	free(path);
	if (r == KM_EOK)
		r = km_jwks_parse(doc, len, keys, n, err, sizeof(err));
	free(doc);
	if (r != KM_EOK) {
		km_cli_error("jwks: %s", err[0] ? err : km_strerror(r));
		return KM_CLI_EXIT_REFUSED;
	}
	return KM_CLI_EXIT_OK;
}

/* The options of verify: into the verify_args_t ctx. */
static int verify_option(const char *cmd, int opt, const char *arg, void *ctx)
{
	verify_args_t *a = ctx;
	(void)cmd;
	switch (opt) {
	case OPT_JWKS: a->jwks = arg; break;
	case OPT_ALG: a->alg = arg; break;
	case OPT_ISS: a->iss = arg; break;
	case OPT_AUD: a->aud = arg; break;
	case OPT_TYP: a->typ = arg; break;
	case OPT_LEEWAY: a->leeway = arg; break;
	case OPT_LOW_S: a->low_s = true; break;
	case OPT_MAX_TTL: a->max_ttl = arg; break;
	default: a->at = arg; break;
	}
	return 0;
}

static int verify(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "jwks", required_argument, NULL, OPT_JWKS },
		{ "alg", required_argument, NULL, OPT_ALG },
		{ "iss", required_argument, NULL, OPT_ISS },
		{ "aud", required_argument, NULL, OPT_AUD },
		{ "typ", required_argument, NULL, OPT_TYP },
		{ "leeway", required_argument, NULL, OPT_LEEWAY },
		{ "at", required_argument, NULL, OPT_AT },
		{ "low-s", no_argument, NULL, OPT_LOW_S },
		{ "max-ttl", required_argument, NULL, OPT_MAX_TTL },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr verify", .help = verify_help, .opts = opts, .option = verify_option,
		.min_pos = 1, .max_pos = 1,
		.count_error = "expected exactly one TOKEN (or '-' for stdin)",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL];
	km_cli_common_t c;
	verify_args_t a = { 0 };
	km_verify_opts_t o = { 0 };
	int npos, rc = km_cli_args_parse(&args, &a, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	rc = check_args(cmd, &a, &o);
	if (rc != KM_CLI_EXIT_OK)
		return rc;

	char err[1024] = "", *token = NULL;
	km_jwks_entry_t *keys = NULL;
	size_t n = 0;
	json_t *claims = NULL;
	int r = km_cli_read_arg(strcmp(pos[0], "-") == 0 ? "@-" : pos[0], KM_VERIFY_TOKEN_MAX + 2,
	                        &token, err, sizeof(err));
	if (r != KM_EOK)
		return km_cli_fail(r, err);
	size_t len = strlen(token);
	while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r' ||
	                   token[len - 1] == ' ' || token[len - 1] == '\t'))
		token[--len] = '\0';
	if ((rc = load_jwks(a.jwks, &keys, &n)) == KM_CLI_EXIT_OK) {
		r = km_verify_jwt(&o, token, len, keys, n, &claims, err, sizeof(err));
		if (r != KM_EOK) {
			km_cli_error("token refused: %s", err[0] ? err : km_strerror(r));
			rc = KM_CLI_EXIT_REFUSED;
		} else {
			rc = km_cli_print_json(claims);
		}
	}
	json_decref(claims);
	free(keys);
	free(token);
	return rc;
}

int km_cmd_verify(int argc, char **argv)
{
	return verify(argc, argv);
}
