/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgr token init|keygen|jwks|sign: low-level verbs on one token named by flags.
 * No store, no lifecycle: the algorithm of each key lives in its CKA_LABEL (token_keys.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/cli/cli.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/atomic_file.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/token_keys.h"
#include "keymgr/common/error.h"
#include "keymgr/core/env.h"
#include "keymgr/jose/jwk.h"
#include "keymgr/jose/jwks.h"
#include "keymgr/jose/jws.h"
#include "pkcs11/token.h"

#define TOKEN_FLAGS_HELP                                                                   \
	"Token options (also from the environment):\n"                                     \
	"  --module PATH       PKCS#11 module ($KEYMGR_MODULE;\n"                           \
	"                      default " KM_CLI_DEFAULT_MODULE ")\n"                       \
	"  --token LABEL       token label ($KEYMGR_TOKEN)\n"                               \
	"  --pin-source SRC    where the user PIN comes from ($KEYMGR_PIN_SOURCE):\n"       \
	"                      file:PATH (mode 0600 or stricter), env:NAME, or prompt.\n"   \
	"                      There is no --pin option: a PIN never goes on a command line.\n"

#define LABEL_SCHEME_HELP                                                                  \
	"Keys made by 'keymgr token keygen' carry CKA_LABEL \"keymgr:<ALG>\" or\n"         \
	"\"keymgr:<ALG>:<TEXT>\": the token does not record a key's JOSE algorithm, so the\n" \
	"label does. Other keys on the token (including keys managed through the key store,\n" \
	"labelled \"keymgr:<env>/<keyset>\") are ignored by the raw verbs.\n"

#define EXIT_HELP "Exit status: 0 success, 1 refused or failed, 2 usage error.\n"

/* Size limit of --claims (inline or @FILE). */
#define CLAIMS_MAX (64 * 1024)

/*
 * Prints a token-layer failure: the layer's detail (which names the module or token and the
 * operation), or the generic meaning when there is none. A wrong PIN always says so plainly.
 */
static int token_failed(int r, const char *detail)
{
	bool has_detail = detail != NULL && detail[0] != '\0';
	if (r == KM_P11_ELOGIN && has_detail)
		km_cli_error("%s (%s)", km_strerror(r), detail);
	else
		km_cli_error("%s", has_detail ? detail : km_strerror(r));
	return KM_CLI_EXIT_REFUSED;
}

/* Opens and logs in to the token named by c. Returns an exit code; *ret on success. */
static int open_token(const km_cli_common_t *c, km_token_t **ret)
{
	char err[512] = "";
	km_token_cfg_t cfg = {
		.module_path = c->module,
		.token_label = c->token,
		.pin_source = c->pin_source,
		.sessions = 1,
	};
	int r = km_token_open(&cfg, ret, err, sizeof(err));
	if (r < 0)
		return token_failed(r, err);
	return KM_CLI_EXIT_OK;
}

/* ---- token init ------------------------------------------------------------------------ */

static const char init_help[] =
	"Usage: keymgr token init --token LABEL --so-pin-source SRC --pin-source SRC\n"
	"                         [--module PATH] [--env ENV] [--json]\n"
	"       keymgr token init --env ENV [--json]\n"
	"\n"
	"Initialises a development token with LABEL in a free slot of the module (SoftHSM),\n"
	"setting its security officer PIN and user PIN from the two PIN sources.\n"
	"If a token with LABEL already exists, says so and succeeds without changing it.\n"
	"\n"
	"With --env ENV, then writes the token identity marker into the environment's token (as\n"
	"configured, logged in with its PIN): a private data object naming ENV with a random\n"
	"id, or, where the token keeps no data objects (NSS softoken), a small P-256 marker\n"
	"key labelled \"keymgr-identity:ENV\". Every environment then refuses a token whose\n"
	"marker names another one, whatever its label and serial. A marker naming ENV already\n"
	"there is left as it is; one naming another environment is refused, nothing changed.\n"
	"Without --token, only the marker is written (the token must exist, e.g. an NSS database\n"
	"made with certutil -N).\n"
	"\n"
	"  --so-pin-source SRC  where the security officer PIN comes from (file:, env:, prompt)\n"
	"  --env ENV            write the identity marker of environment ENV\n"
	"  --json               print {\"token\":LABEL,\"created\":true|false} (with --env also\n"
	"                       \"env\":ENV,\"marker_created\":true|false)\n"
	"\n" TOKEN_FLAGS_HELP "\n" EXIT_HELP;

enum { OPT_INIT_ENV = 900 };

/* Writes env_name's identity marker (token init --env). Returns an exit code. */
static int init_marker(const char *env_name, bool *ret_created)
{
	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	char err[1024] = "";
	int rc = km_cli_env_open(env_name, &cfg, &env);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	int r = km_env_mark_token(env, ret_created, err, sizeof(err));
	rc = r == KM_EOK ? KM_CLI_EXIT_OK : km_cli_fail(r, err);
	km_cli_env_close(cfg, env);
	return rc;
}

static int token_init(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON, KM_CLI_OPTS_TOKEN,
		{ "so-pin-source", required_argument, NULL, KM_OPT_SO_PIN_SOURCE },
		{ "env", required_argument, NULL, OPT_INIT_ENV },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "keymgr token init";
	const char *env_name = NULL;
	km_cli_common_t c;
	char err[512] = "";
	bool marker_created = false;
	int o, rc, r = KM_EEXIST;

	km_cli_common_init(&c);
	while ((o = km_cli_getopt(argc, argv, cmd, opts, &c)) != -1) {
		if (o != OPT_INIT_ENV)
			return KM_CLI_EXIT_USAGE; /* -2 already printed */
		env_name = optarg;
	}
	if (c.help)
		return km_cli_help(init_help);
	bool make = env_name == NULL || c.token != NULL || c.so_pin_source != NULL;
	if (make) {
		if ((rc = km_cli_check_token_flags(&c, cmd, true)) != 0)
			return rc;
		if (c.so_pin_source == NULL)
			return km_cli_usage_error(cmd, "missing security officer PIN source: give "
			                               "--so-pin-source SRC");
		if (!km_cli_pin_source_ok(c.so_pin_source))
			return km_cli_usage_error(cmd, "--so-pin-source must be file:PATH, env:NAME or "
			                               "prompt");
		r = km_token_init_dev(c.module, c.token, c.so_pin_source, c.pin_source, err,
		                      sizeof(err));
		if (r < 0 && r != KM_EEXIST)
			return token_failed(r, err);
	}
	if (env_name != NULL && (rc = init_marker(env_name, &marker_created)) != KM_CLI_EXIT_OK)
		return rc;
	if (c.json) {
		json_t *j = json_object();
		if (j != NULL && make)
			json_object_set_new(j, "token", json_string(c.token));
		if (j != NULL && make)
			json_object_set_new(j, "created", json_boolean(r == KM_EOK));
		if (j != NULL && env_name != NULL) {
			json_object_set_new(j, "env", json_string(env_name));
			json_object_set_new(j, "marker_created", json_boolean(marker_created));
		}
		rc = j != NULL ? km_cli_print_json(j) : KM_CLI_EXIT_REFUSED;
		json_decref(j);
		return rc;
	}
	if (make && r == KM_EEXIST)
		printf("token '%s' already exists; nothing changed\n", c.token);
	else if (make)
		printf("initialised token '%s'\n", c.token);
	if (env_name != NULL)
		printf(marker_created ? "wrote the identity marker of environment '%s'\n" :
		                        "the token already has the identity marker of environment "
		                        "'%s'\n", env_name);
	return KM_CLI_EXIT_OK;
}

/* ---- token keygen ---------------------------------------------------------------------- */

static const char keygen_help[] =
	"Usage: keymgr token keygen --token LABEL --pin-source SRC --alg ALG [--bits N]\n"
	"                           [--label TEXT] [--module PATH] [--json]\n"
	"\n"
	"Generates a signing key pair for one JOSE algorithm inside the token (private key\n"
	"sensitive, not extractable, sign only) and prints its public JWK, whose kid is the\n"
	"RFC 7638 thumbprint.\n"
	"\n"
	"  --alg ALG     RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA\n"
	"  --bits N      RSA modulus size: 2048, 3072 or 4096 (default 3072; RS*/PS* only)\n"
	"  --label TEXT  free text (1..64 printable characters) appended to the key's label\n"
	"  --json        print only the public JWK as one line of JSON\n"
	"\n" LABEL_SCHEME_HELP "\n" TOKEN_FLAGS_HELP "\n" EXIT_HELP;

enum { OPT_ALG = 1000, OPT_BITS, OPT_LABEL, OPT_OUTPUT, OPT_KID, OPT_CLAIMS, OPT_TYP, OPT_ENV };

static int parse_alg(const char *cmd, const char *name, km_alg_t *ret)
{
	if (km_alg_from_name(name, ret) == KM_EOK)
		return 0;
	return km_cli_bad_alg(cmd, "algorithm", name);
}

static int parse_bits(const char *cmd, const char *text, unsigned *ret)
{
	char *end = NULL;
	unsigned long v = strtoul(text, &end, 10);
	if (text[0] < '0' || text[0] > '9' || *end != '\0' || v > 65536)
		return km_cli_usage_error(cmd, "--bits needs a number, e.g. 3072");
	if (v < KM_RSA_MIN_BITS)
		return km_cli_usage_error(cmd, "RSA key size %lu is below the minimum of %d bits", v,
		                          KM_RSA_MIN_BITS);
	if (!km_rsa_bits_valid((unsigned)v))
		return km_cli_usage_error(cmd, "RSA key size %lu is not supported (2048, 3072 or "
		                               "4096)", v);
	*ret = (unsigned)v;
	return 0;
}

static int token_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON, KM_CLI_OPTS_TOKEN,
		{ "alg", required_argument, NULL, OPT_ALG },
		{ "bits", required_argument, NULL, OPT_BITS },
		{ "label", required_argument, NULL, OPT_LABEL },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "keymgr token keygen";
	const char *alg_name = NULL, *bits_text = NULL, *text = NULL;
	km_cli_common_t c;
	km_alg_t alg = KM_ALG_NONE;
	unsigned bits = KM_RSA_DEFAULT_BITS;
	char label[129];
	uint8_t id[KM_TOKEN_ID_LEN];
	km_pubkey_t pub;
	km_token_t *t = NULL;
	json_t *jwk = NULL;
	int o, r, rc;

	km_cli_common_init(&c);
	while ((o = km_cli_getopt(argc, argv, cmd, opts, &c)) != -1) {
		switch (o) {
		case OPT_ALG: alg_name = optarg; break;
		case OPT_BITS: bits_text = optarg; break;
		case OPT_LABEL: text = optarg; break;
		default: return KM_CLI_EXIT_USAGE;
		}
	}
	if (c.help)
		return km_cli_help(keygen_help);
	/* Everything that can be checked without the token is checked before opening it. */
	if (alg_name == NULL)
		return km_cli_usage_error(cmd, "missing --alg");
	if ((rc = parse_alg(cmd, alg_name, &alg)) != 0)
		return rc;
	if (bits_text != NULL) {
		if (km_alg_info(alg)->kty != KM_KTY_RSA)
			return km_cli_usage_error(cmd, "--bits applies to RS* and PS* algorithms only");
		if ((rc = parse_bits(cmd, bits_text, &bits)) != 0)
			return rc;
	}
	if (text != NULL && !km_raw_label_text_valid(text))
		return km_cli_usage_error(cmd, "--label must be 1..%d printable ASCII characters",
		                          KM_RAW_TEXT_MAX);
	if (km_raw_label_make(alg, text, label, sizeof(label)) < 0)
		return km_cli_usage_error(cmd, "--label is too long");
	if ((rc = km_cli_check_token_flags(&c, cmd, true)) != 0)
		return rc;

	if ((rc = open_token(&c, &t)) != 0)
		return rc;
	r = km_token_generate(t, alg, bits, label, id, &pub);
	if (r < 0) {
		rc = token_failed(r, km_token_last_error(t));
		goto out;
	}
	if ((r = km_jwk_from_pubkey(&pub, alg, &jwk)) < 0) {
		rc = token_failed(r, "building the JWK of the new key");
		goto out;
	}
	if (c.json) {
		rc = km_cli_print_json(jwk);
		goto out;
	}
	printf("kid:   %s\n", json_string_value(json_object_get(jwk, "kid")));
	printf("alg:   %s\n", km_alg_name(alg));
	printf("label: %s\n", label);
	printf("jwk:   ");
	rc = km_cli_print_json(jwk);
out:
	json_decref(jwk);
	km_token_free(t);
	return rc;
}

/* ---- token jwks ------------------------------------------------------------------------ */

static const char jwks_help[] =
	"Usage: keymgr token jwks --token LABEL --pin-source SRC [--output FILE]\n"
	"                         [--module PATH] [--json]\n"
	"\n"
	"Prints the JWK Set {\"keys\":[...]} of every key pair on the token that was made by\n"
	"'keymgr token keygen', sorted by kid. Only public members are ever written.\n"
	"\n"
	"  --output FILE  write the JWKS to FILE atomically (temporary file in the same\n"
	"                 directory, fsync, rename; mode 0644) instead of standard output\n"
	"  --json         accepted for uniformity: the JWKS is JSON either way\n"
	"\n" LABEL_SCHEME_HELP "\n" TOKEN_FLAGS_HELP "\n" EXIT_HELP;

static int token_jwks(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON, KM_CLI_OPTS_TOKEN,
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "keymgr token jwks";
	const char *output = NULL;
	km_cli_common_t c;
	km_token_t *t = NULL;
	km_raw_key_t *keys = NULL;
	km_jwks_t *jwks = NULL;
	char *text = NULL;
	size_t n = 0, skipped = 0, len = 0;
	int o, r, rc;

	km_cli_common_init(&c);
	while ((o = km_cli_getopt(argc, argv, cmd, opts, &c)) != -1) {
		switch (o) {
		case OPT_OUTPUT: output = optarg; break;
		default: return KM_CLI_EXIT_USAGE;
		}
	}
	if (c.help)
		return km_cli_help(jwks_help);
	if (output != NULL && output[0] == '\0')
		return km_cli_usage_error(cmd, "--output needs a file name");
	if ((rc = km_cli_check_token_flags(&c, cmd, true)) != 0)
		return rc;

	if ((rc = open_token(&c, &t)) != 0)
		return rc;
	rc = KM_CLI_EXIT_REFUSED;
	if ((r = km_raw_keys_list(t, &keys, &n, &skipped)) < 0) {
		token_failed(r, km_token_last_error(t));
		goto out;
	}
	if ((r = km_jwks_create(&jwks)) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if ((r = km_jwks_add(jwks, &keys[i].pub, keys[i].alg, NULL)) < 0)
			goto fail;
	if ((r = km_jwks_render(jwks, &text, &len)) < 0)
		goto fail;
	if (skipped > 0)
		fprintf(stderr, "keymgr: note: left out %zu keymgr key pair(s) whose label records "
		                "no algorithm\n", skipped);
	if (output == NULL) {
		printf("%s\n", text);
		rc = KM_CLI_EXIT_OK;
		goto out;
	}
	/* The file gets the exact document plus a newline, like standard output. */
	text[len] = '\n';
	if ((r = km_file_write_atomic(output, text, len + 1, 0644)) < 0) {
		km_cli_error("cannot write '%s': %s", output, km_strerror(r));
		goto out;
	}
	rc = KM_CLI_EXIT_OK;
	goto out;
fail:
	km_cli_error("cannot build the JWKS: %s", km_strerror(r));
out:
	free(text);
	km_jwks_free(jwks);
	free(keys);
	km_token_free(t);
	return rc;
}

/* ---- token sign ------------------------------------------------------------------------ */

static const char sign_help[] =
	"Usage: keymgr token sign --token LABEL --pin-source SRC --kid KID\n"
	"                         --claims JSON|@FILE [--typ TYP] [--module PATH] [--json]\n"
	"\n"
	"Signs the claims with the token key whose kid (RFC 7638 thumbprint) is KID, using the\n"
	"algorithm recorded in its label, and prints the compact JWT. The header is\n"
	"{\"alg\":ALG,\"kid\":KID,\"typ\":TYP} (typ only when given).\n"
	"\n"
	"  --kid KID         the key, as printed by 'keymgr token keygen' or in the JWKS\n"
	"  --claims JSON     the claims: a JSON object, inline, or @FILE, or @- for stdin\n"
	"  --typ TYP         header typ, e.g. JWT or at+jwt (RFC 8725: one per kind of token)\n"
	"  --json            print {\"jwt\":...,\"kid\":...,\"alg\":...}\n"
	"\n" LABEL_SCHEME_HELP "\n" TOKEN_FLAGS_HELP "\n" EXIT_HELP;

typedef struct {
	km_token_t *t;
	const km_raw_key_t *key;
} sign_ctx_t;

static int sign_with_token(void *ctx, const uint8_t *data, size_t len, uint8_t *sig,
                           size_t *sig_len)
{
	const sign_ctx_t *s = ctx;
	return km_token_sign(s->t, s->key->id, s->key->id_len, s->key->alg, data, len, sig,
	                     sig_len);
}

static bool typ_valid(const char *typ)
{
	size_t n = strlen(typ);
	if (n == 0 || n > 64)
		return false;
	for (const char *p = typ; *p; p++)
		if (*p <= 0x20 || *p > 0x7e)
			return false;
	return true;
}

static int token_sign(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON, KM_CLI_OPTS_TOKEN,
		{ "kid", required_argument, NULL, OPT_KID },
		{ "claims", required_argument, NULL, OPT_CLAIMS },
		{ "typ", required_argument, NULL, OPT_TYP },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "keymgr token sign";
	const char *kid = NULL, *claims_arg = NULL, *typ = NULL;
	km_cli_common_t c;
	km_token_t *t = NULL;
	km_raw_key_t *keys = NULL;
	const km_raw_key_t *key = NULL;
	char *claims_text = NULL, *jwt = NULL, err[512] = "";
	json_t *claims = NULL;
	json_error_t jerr;
	size_t n = 0;
	int o, r, rc;

	km_cli_common_init(&c);
	while ((o = km_cli_getopt(argc, argv, cmd, opts, &c)) != -1) {
		switch (o) {
		case OPT_KID: kid = optarg; break;
		case OPT_CLAIMS: claims_arg = optarg; break;
		case OPT_TYP: typ = optarg; break;
		default: return KM_CLI_EXIT_USAGE;
		}
	}
	if (c.help)
		return km_cli_help(sign_help);
	if (kid == NULL)
		return km_cli_usage_error(cmd, "missing --kid");
	if (!km_name_kid_valid(kid))
		return km_cli_usage_error(cmd, "--kid must be 1..%d base64url characters",
		                          KM_KID_MAX);
	if (claims_arg == NULL)
		return km_cli_usage_error(cmd, "missing --claims");
	if (typ != NULL && !typ_valid(typ))
		return km_cli_usage_error(cmd, "--typ must be 1..64 printable characters without "
		                               "spaces");
	if ((rc = km_cli_check_token_flags(&c, cmd, true)) != 0)
		return rc;

	/* The claims are read and checked before the token is touched. */
	rc = KM_CLI_EXIT_REFUSED;
	if ((r = km_cli_read_arg(claims_arg, CLAIMS_MAX, &claims_text, err, sizeof(err))) < 0) {
		km_cli_error("cannot read the claims: %s", err);
		goto out;
	}
	claims = json_loads(claims_text, JSON_REJECT_DUPLICATES, &jerr);
	if (claims == NULL) {
		km_cli_error("malformed claims JSON: %s (line %d, column %d)", jerr.text, jerr.line,
		             jerr.column);
		goto out;
	}
	if (!json_is_object(claims)) {
		km_cli_error("malformed claims: the claims must be a JSON object");
		goto out;
	}

	if ((rc = open_token(&c, &t)) != 0)
		goto out;
	rc = KM_CLI_EXIT_REFUSED;
	if ((r = km_raw_keys_list(t, &keys, &n, NULL)) < 0) {
		token_failed(r, km_token_last_error(t));
		goto out;
	}
	for (size_t i = 0; i < n && key == NULL; i++)
		if (strcmp(keys[i].kid, kid) == 0)
			key = &keys[i];
	if (key == NULL) {
		km_cli_error("unknown kid '%s': no key made by 'keymgr token keygen' on token '%s' "
		             "has it", kid, c.token);
		goto out;
	}
	sign_ctx_t ctx = { t, key };
	km_jws_signer_t signer = { key->alg, key->kid, typ, sign_with_token, &ctx };
	if ((r = km_jws_sign_claims(&signer, claims, &jwt)) < 0) {
		token_failed(r, km_token_last_error(t));
		goto out;
	}
	if (c.json) {
		json_t *j = json_pack("{s:s, s:s, s:s}", "jwt", jwt, "kid", key->kid, "alg",
		                      km_alg_name(key->alg));
		rc = j != NULL ? km_cli_print_json(j) : KM_CLI_EXIT_REFUSED;
		json_decref(j);
		goto out;
	}
	printf("%s\n", jwt);
	rc = KM_CLI_EXIT_OK;
out:
	free(jwt);
	json_decref(claims);
	free(claims_text);
	free(keys);
	km_token_free(t);
	return rc;
}

/* ---- token info ------------------------------------------------------------------------ */

static const char info_help[] =
	"Usage: keymgr token info --env ENV [--json]\n"
	"       keymgr token info --token LABEL [--module PATH] [--json]\n"
	"\n"
	"Prints what the token can do, as keymgr probed it when opening it (C_GetMechanismList,\n"
	"C_GetMechanismInfo): for each JOSE algorithm whether keymgr can generate and sign with\n"
	"it on this token and through which mechanism (CKM_RSA_PKCS with a DigestInfo hashed in\n"
	"software where the token lacks CKM_SHA256_RSA_PKCS, ...), or what is missing; the\n"
	"mechanisms keymgr uses with their key sizes; the module's entry in keymgr's quirk table;\n"
	"and, as a warning, a recorded exception (a property the token cannot give its keys, such\n"
	"as tpm2-pkcs11's CKA_DECRYPT=TRUE). No login is needed.\n"
	"\n"
	"  --env ENV   the token of environment ENV in the configuration (with its init_args)\n"
	"  --json      print {\"token\":{...},\"module\":...,\"library\":...,\"quirk\":...,\n"
	"              \"exceptions\":[...],\"algorithms\":[...],\"mechanisms\":[...]}\n"
	"\n" TOKEN_FLAGS_HELP "\n" EXIT_HELP;

static json_t *caps_json(const km_token_info_t *info, const char *module,
                         const km_token_caps_t *caps)
{
	json_t *algs = json_array(), *mechs = json_array(), *exc = json_array();
	for (int a = KM_ALG_RS256; a <= KM_ALG_EDDSA; a++) {
		const km_token_alg_caps_t *c = &caps->algs[a - 1];
		json_t *j = json_pack("{s:s, s:b}", "alg", km_alg_name(c->alg), "supported",
		                      c->supported);
		json_object_set_new(j, c->supported ? "via" : "missing",
		                    json_string(c->supported ? c->via : c->why));
		if (c->supported && km_alg_info(c->alg)->kty == KM_KTY_RSA && c->max_bits > 0)
			json_object_set_new(j, "rsa_bits", json_pack("[I, I]", (json_int_t)c->min_bits,
			                                             (json_int_t)c->max_bits));
		json_array_append_new(algs, j);
	}
	for (size_t i = 0; i < caps->n_mechs; i++) {
		const km_token_mech_t *m = &caps->mechs[i];
		json_array_append_new(mechs, json_pack("{s:s, s:I, s:I, s:b, s:b}", "name", m->name,
		                                       "min_size", (json_int_t)m->min_size,
		                                       "max_size", (json_int_t)m->max_size, "sign",
		                                       m->sign, "generate_key_pair",
		                                       m->generate_key_pair));
	}
	if (caps->exception[0])
		json_array_append_new(exc, json_string(caps->exception));
	return json_pack("{s:{s:s, s:s, s:s, s:s}, s:s, s:s, s:s?, s:b, s:o, s:o, s:o}",
	                 "token", "label", info->label, "serial", info->serial, "manufacturer",
	                 info->manufacturer, "model", info->model, "module", module, "library",
	                 caps->library, "quirk", caps->quirk[0] ? caps->quirk : NULL,
	                 "mechanisms_probed", caps->probed, "exceptions", exc, "algorithms", algs,
	                 "mechanisms", mechs);
}

static void caps_print(const km_token_info_t *info, const char *module,
                       const km_token_caps_t *caps)
{
	printf("token:      '%s' (serial %s, %s %s)\n", info->label, info->serial,
	       info->manufacturer, info->model);
	printf("module:     %s (%s)\n", module, caps->library);
	printf("quirks:     %s\n", caps->quirk[0] ? caps->quirk : "none known");
	if (!caps->probed)
		printf("mechanisms: the module gave no mechanism list; keymgr assumes the standard "
		       "ones\n");
	printf("algorithms:\n");
	for (int a = KM_ALG_RS256; a <= KM_ALG_EDDSA; a++) {
		const km_token_alg_caps_t *c = &caps->algs[a - 1];
		if (!c->supported) {
			printf("  %-6s no   %s\n", km_alg_name(c->alg), c->why);
			continue;
		}
		printf("  %-6s yes  %s", km_alg_name(c->alg), c->via);
		if (km_alg_info(c->alg)->kty == KM_KTY_RSA && c->max_bits > 0)
			printf(", RSA %u..%u bits", c->min_bits, c->max_bits);
		printf("\n");
	}
	printf("mechanisms:\n");
	for (size_t i = 0; i < caps->n_mechs; i++) {
		const km_token_mech_t *m = &caps->mechs[i];
		printf("  %-30s %lu..%lu%s%s\n", m->name, m->min_size, m->max_size,
		       m->sign ? " sign" : "", m->generate_key_pair ? " generate_key_pair" : "");
	}
	if (caps->exception[0])
		fprintf(stderr, "keymgr: warning: recorded exception of token '%s': %s\n",
		        info->label, caps->exception);
}

static int token_info(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON, KM_CLI_OPTS_TOKEN,
		{ "env", required_argument, NULL, OPT_ENV },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "keymgr token info";
	const char *env_name = NULL;
	km_cli_common_t c;
	km_config_t *cfg = NULL;
	km_env_t *env = NULL;
	km_token_t *t = NULL, *own = NULL;
	const char *module;
	char err[1024] = "";
	int o, r, rc;

	km_cli_common_init(&c);
	while ((o = km_cli_getopt(argc, argv, cmd, opts, &c)) != -1) {
		switch (o) {
		case OPT_ENV: env_name = optarg; break;
		default: return KM_CLI_EXIT_USAGE;
		}
	}
	if (c.help)
		return km_cli_help(info_help);
	if (env_name != NULL) {
		if ((rc = km_cli_env_open(env_name, &cfg, &env)) != KM_CLI_EXIT_OK)
			return rc;
		if ((r = km_env_token(env, &t, err, sizeof(err))) != KM_EOK) {
			rc = km_cli_fail(r, err);
			goto out;
		}
		module = km_config_env(cfg, env_name)->token.module_path;
	} else {
		if ((rc = km_cli_check_token_flags(&c, cmd, false)) != 0)
			return rc;
		c.pin_source = NULL;        /* token info only: no login */
		if ((rc = open_token(&c, &own)) != 0)
			return rc;
		t = own;
		module = c.module;
	}
	km_token_info_t info;
	km_token_caps_t caps;
	km_token_get_info(t, &info);
	km_token_get_caps(t, &caps);
	if (c.json) {
		json_t *j = caps_json(&info, module, &caps);
		rc = j != NULL ? km_cli_print_json(j) : KM_CLI_EXIT_REFUSED;
		json_decref(j);
		if (caps.exception[0])
			fprintf(stderr, "keymgr: warning: recorded exception of token '%s': %s\n",
			        info.label, caps.exception);
	} else {
		caps_print(&info, module, &caps);
		rc = KM_CLI_EXIT_OK;
	}
out:
	km_token_free(own);
	km_cli_env_close(cfg, env);
	return rc;
}

/* ---- the group ------------------------------------------------------------------------- */

static const km_cli_command_t verbs[] = {
	{ "init", token_init, "initialise a development token (idempotent)" },
	{ "keygen", token_keygen, "generate a key pair for one algorithm; print its JWK" },
	{ "jwks", token_jwks, "print or write the JWKS of the token's keymgr keys" },
	{ "sign", token_sign, "sign JSON claims as a compact JWT with the key of a kid" },
	{ "info", token_info, "what the token can do: algorithms, mechanisms, quirks" },
	{ NULL, NULL, NULL },
};

int km_cmd_token(int argc, char **argv)
{
	return km_cli_dispatch(verbs, "keymgr token",
	                       "Low-level verbs on one PKCS#11 token named by flags (no key "
	                       "store, no lifecycle).\n",
	                       argc - 1, argv + 1);
}
