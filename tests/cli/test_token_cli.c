/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The raw token verbs through the real keymgr executable against a real SoftHSM token:
 * every bad input gets a message naming the problem, a non-zero exit code, and changes
 * nothing; no output ever contains a PIN; --help works on every command.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "keymgr/common/b64url.h"
#include "pkcs11/token.h"
#include "tests/cli/run.h"
#include "tests/common/softhsm.h"

static const char *keymgr;        /* path of the executable under test (argv[1]) */
static km_test_softhsm_t fx;
static char user_pin[64];         /* the real PIN, to check it never shows up */
static const char wrong_pin[] = "wrong-pin-98765";
static const char *const private_members[] = { "\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"",
                                               "\"qi\"", "\"k\"", "\"oth\"", NULL };

#define MAX_ARGS 32

/* Runs keymgr ARGS... (NULL-terminated) and checks that no PIN appears in its output. */
static void run(km_run_t *r, ...)
{
	const char *argv[MAX_ARGS] = { keymgr };
	size_t n = 1;
	va_list ap;
	va_start(ap, r);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
		assert_true(n < MAX_ARGS - 1);
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;
	assert_int_equal(km_run(keymgr, argv, NULL, r), 0);
	assert_null(strstr(r->out, user_pin));
	assert_null(strstr(r->err, user_pin));
	assert_null(strstr(r->out, wrong_pin));
	assert_null(strstr(r->err, wrong_pin));
	/* Sanitizer reports would land on stderr. */
	assert_null(strstr(r->err, "Sanitizer"));
}

/* Number of key pairs on the test token, counted in-process through the token layer. */
static size_t key_count(void)
{
	km_token_cfg_t cfg = { .module_path = fx.module, .token_label = fx.label,
	                       .pin_source = fx.pin_source, .sessions = 1 };
	km_token_t *t = NULL;
	km_token_key_info_t *keys = NULL;
	size_t n = 0;
	char err[256];
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), 0);
	assert_int_equal(km_token_list_keys(t, &keys, &n), 0);
	free(keys);
	km_token_free(t);
	return n;
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* Generates a key with the CLI and returns its kid (static buffer). */
static const char *keygen(const char *alg)
{
	static char kid[64];
	km_run_t *r = malloc(sizeof(*r));
	json_error_t jerr;
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", fx.pin_source, "--alg", alg,
	    "--json", NULL);
	assert_int_equal(r->status, 0);
	json_t *jwk = json_loads(r->out, 0, &jerr);
	assert_non_null(jwk);
	snprintf(kid, sizeof(kid), "%s", json_string_value(json_object_get(jwk, "kid")));
	assert_int_equal(strlen(kid), 43);
	assert_string_equal(json_string_value(json_object_get(jwk, "alg")), alg);
	for (size_t i = 0; private_members[i] != NULL; i++)
		assert_null(strstr(r->out, private_members[i]));
	json_decref(jwk);
	free(r);
	return kid;
}

static int group_setup(void **state)
{
	if (km_test_softhsm_create(&fx, "cli-test") != 0)
		return -1;
	const char *path = fx.pin_source + strlen("file:");
	FILE *f = fopen(path, "r");
	if (f == NULL || fgets(user_pin, sizeof(user_pin), f) == NULL)
		return -1;
	fclose(f);
	user_pin[strcspn(user_pin, "\r\n")] = '\0';
	if (strlen(user_pin) < 4)
		return -1;
	setenv("KEYMGR_MODULE", fx.module, 1);
	unsetenv("KEYMGR_TOKEN");
	unsetenv("KEYMGR_PIN_SOURCE");
	return 0;
}

static int group_teardown(void **state)
{
	km_test_softhsm_destroy(&fx);
	return 0;
}

/* ---- --help ---------------------------------------------------------------------------- */

static void assert_help(km_run_t *r, const char *usage)
{
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, usage));
	assert_string_equal(r->err, "");
}

static void test_cli_help_every_command(void **state)
{
	static const char *const verbs[] = { "init", "keygen", "jwks", "sign", NULL };
	km_run_t *r = malloc(sizeof(*r));
	run(r, "--help", NULL);
	assert_help(r, "Usage: keymgr COMMAND");
	assert_non_null(strstr(r->out, "token"));
	run(r, "help", NULL);
	assert_help(r, "Usage: keymgr COMMAND");
	run(r, "token", "--help", NULL);
	assert_help(r, "Usage: keymgr token COMMAND");
	run(r, "token", "-h", NULL);
	assert_help(r, "Usage: keymgr token COMMAND");
	for (size_t i = 0; verbs[i] != NULL; i++) {
		char usage[64];
		snprintf(usage, sizeof(usage), "Usage: keymgr token %s", verbs[i]);
		run(r, "token", verbs[i], "--help", NULL);
		assert_help(r, usage);
		assert_non_null(strstr(r->out, "--pin-source"));
		run(r, "token", verbs[i], "-h", NULL);
		assert_help(r, usage);
		/* --help wins over missing required options. */
		run(r, "token", verbs[i], "--token", "x", "--help", NULL);
		assert_help(r, usage);
	}
	run(r, "token", "keygen", "--help", NULL);
	assert_non_null(strstr(r->out, "keymgr:<ALG>"));
	free(r);
}

static void test_cli_usage_errors(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	run(r, NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "keymgr: missing command"));
	assert_string_equal(r->out, "");
	run(r, "frobnicate", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "keymgr: unknown command 'frobnicate'"));
	run(r, "token", "nope", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "unknown command 'nope'"));
	run(r, "token", "keygen", "--frob", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "unknown option '--frob'"));
	run(r, "token", "keygen", "--alg", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "'--alg' needs a value"));
	/* A stray word could be a PIN: refused, and not echoed. */
	run(r, "token", "keygen", "--alg", "ES256", wrong_pin, NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "unexpected argument"));
	/* Same for an unknown option with a value. */
	run(r, "token", "keygen", "--password=" "wrong-pin-98765", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "'--password'"));
	free(r);
}

/* ---- refused inputs change nothing -------------------------------------------------------- */

static void test_cli_keygen_unknown_alg_refused(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	size_t before = key_count();
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", fx.pin_source, "--alg",
	    "HS256", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "keymgr: unknown algorithm 'HS256'"));
	assert_string_equal(r->out, "");
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", fx.pin_source, "--alg",
	    "es256", NULL); /* names are case-sensitive */
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "unknown algorithm 'es256'"));
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", fx.pin_source, NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "missing --alg"));
	assert_int_equal(key_count(), before);
	free(r);
}

static void test_cli_keygen_rsa_bits_below_minimum_refused(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	size_t before = key_count();
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", fx.pin_source, "--alg",
	    "RS256", "--bits", "1024", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "minimum of 2048"));
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", fx.pin_source, "--alg",
	    "PS256", "--bits", "2047", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "minimum of 2048"));
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", fx.pin_source, "--alg",
	    "RS256", "--bits", "2500", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "2048, 3072 or 4096"));
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", fx.pin_source, "--alg",
	    "RS256", "--bits", "abc", NULL);
	assert_int_equal(r->status, 2);
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", fx.pin_source, "--alg",
	    "ES256", "--bits", "2048", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "RS* and PS*"));
	assert_int_equal(key_count(), before);
	free(r);
}

static void test_cli_missing_token_label_refused(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	size_t before = key_count();
	run(r, "token", "keygen", "--pin-source", fx.pin_source, "--alg", "ES256", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "missing token label"));
	run(r, "token", "jwks", "--pin-source", fx.pin_source, NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "missing token label"));
	/* A label that names no token. */
	run(r, "token", "keygen", "--token", "no-such-token", "--pin-source", fx.pin_source,
	    "--alg", "ES256", NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "no-such-token"));
	assert_int_equal(key_count(), before);
	free(r);
}

static void test_cli_bad_module_path_refused(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	run(r, "token", "keygen", "--module", "/nonexistent/libnope.so", "--token", fx.label,
	    "--pin-source", fx.pin_source, "--alg", "ES256", NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "keymgr: "));
	assert_non_null(strstr(r->err, "/nonexistent/libnope.so"));
	assert_string_equal(r->out, "");
	/* Not a PKCS#11 module at all. */
	run(r, "token", "jwks", "--module", "/etc/hostname", "--token", fx.label, "--pin-source",
	    fx.pin_source, NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "/etc/hostname"));
	free(r);
}

static void test_cli_wrong_pin_refused(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	char path[400], src[420];
	size_t before = key_count();
	snprintf(path, sizeof(path), "%s/wrong.pin", fx.dir);
	snprintf(src, sizeof(src), "file:%s", path);
	write_file(path, wrong_pin, 0600);
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", src, "--alg", "ES256", NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "incorrect PIN"));
	assert_string_equal(r->out, "");
	/* The same through an environment variable source. */
	setenv("KEYMGR_TEST_WRONG_PIN", wrong_pin, 1);
	run(r, "token", "jwks", "--token", fx.label, "--pin-source", "env:KEYMGR_TEST_WRONG_PIN",
	    NULL);
	unsetenv("KEYMGR_TEST_WRONG_PIN");
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "incorrect PIN"));
	assert_int_equal(key_count(), before);
	free(r);
}

static void test_cli_pin_file_readable_by_others_refused(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	char path[400], src[420];
	size_t before = key_count();
	snprintf(path, sizeof(path), "%s/open.pin", fx.dir);
	snprintf(src, sizeof(src), "file:%s", path);
	write_file(path, user_pin, 0644); /* the right PIN, in a file others can read */
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", src, "--alg", "ES256", NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "open.pin"));
	assert_non_null(strstr(r->err, "0644"));
	assert_string_equal(r->out, "");
	assert_int_equal(key_count(), before);
	unlink(path);
	free(r);
}

static void test_cli_pin_flag_refused(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	size_t before = key_count();
	run(r, "token", "keygen", "--token", fx.label, "--pin", wrong_pin, "--alg", "ES256", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "--pin-source"));
	run(r, "token", "keygen", "--token", fx.label, "--pin=" "wrong-pin-98765", "--alg", "ES256",
	    NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "--pin-source"));
	run(r, "token", "init", "--token", "x", "--so-pin", wrong_pin, NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "--pin-source"));
	/* The PIN itself given as a pin source is refused without being echoed. */
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", wrong_pin, "--alg", "ES256",
	    NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "file:PATH, env:NAME or prompt"));
	assert_int_equal(key_count(), before);
	free(r);
}

static void test_cli_malformed_claims_refused(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	char path[400], arg[420];
	const char *kid = keygen("ES256");
	size_t before = key_count();
	run(r, "token", "sign", "--token", fx.label, "--pin-source", fx.pin_source, "--kid", kid,
	    "--claims", "{\"sub\": \"a\",", NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "malformed claims JSON"));
	assert_non_null(strstr(r->err, "line 1"));
	assert_string_equal(r->out, "");
	/* From a file: the line number points into the file. */
	snprintf(path, sizeof(path), "%s/claims.json", fx.dir);
	snprintf(arg, sizeof(arg), "@%s", path);
	write_file(path, "{\n  \"sub\": \"a\",\n  \"exp\": \n}\n", 0600);
	run(r, "token", "sign", "--token", fx.label, "--pin-source", fx.pin_source, "--kid", kid,
	    "--claims", arg, NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "line 4"));
	/* Not an object. */
	run(r, "token", "sign", "--token", fx.label, "--pin-source", fx.pin_source, "--kid", kid,
	    "--claims", "[\"sub\"]", NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "JSON object"));
	/* Duplicate claim names. */
	run(r, "token", "sign", "--token", fx.label, "--pin-source", fx.pin_source, "--kid", kid,
	    "--claims", "{\"sub\":\"a\",\"sub\":\"b\"}", NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "malformed claims JSON"));
	/* Missing file. */
	run(r, "token", "sign", "--token", fx.label, "--pin-source", fx.pin_source, "--kid", kid,
	    "--claims", "@/nonexistent/claims.json", NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "/nonexistent/claims.json"));
	assert_int_equal(key_count(), before);
	free(r);
}

static void test_cli_unknown_kid_refused(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	keygen("EdDSA");
	run(r, "token", "sign", "--token", fx.label, "--pin-source", fx.pin_source, "--kid",
	    "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", "--claims", "{}", NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "unknown kid 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs'"));
	assert_string_equal(r->out, "");
	run(r, "token", "sign", "--token", fx.label, "--pin-source", fx.pin_source, "--kid",
	    "not/a kid", "--claims", "{}", NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "--kid"));
	free(r);
}

/* ---- what works ------------------------------------------------------------------------ */

static void test_cli_keygen_jwks_sign(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	json_error_t jerr;
	size_t before = key_count();
	run(r, "token", "keygen", "--token", fx.label, "--pin-source", fx.pin_source, "--alg",
	    "PS384", "--bits", "2048", "--label", "cli test key", NULL);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "label: keymgr:PS384:cli test key\n"));
	assert_non_null(strstr(r->out, "\"alg\":\"PS384\""));
	char kid[64];
	const char *k = strstr(r->out, "kid:   ");
	assert_non_null(k);
	snprintf(kid, sizeof(kid), "%.43s", k + 7);
	assert_int_equal(key_count(), before + 1);

	/* The JWKS lists it, with public members only. */
	run(r, "token", "jwks", "--token", fx.label, "--pin-source", fx.pin_source, NULL);
	assert_int_equal(r->status, 0);
	json_t *doc = json_loads(r->out, JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(doc);
	json_t *keys = json_object_get(doc, "keys");
	bool found = false;
	for (size_t i = 0; i < json_array_size(keys); i++)
		if (strcmp(json_string_value(json_object_get(json_array_get(keys, i), "kid")), kid) ==
		    0)
			found = true;
	assert_true(found);
	for (size_t i = 0; private_members[i] != NULL; i++)
		assert_null(strstr(r->out, private_members[i]));
	json_decref(doc);

	/* Sign with it, via environment variables for the token flags. */
	setenv("KEYMGR_TOKEN", fx.label, 1);
	setenv("KEYMGR_PIN_SOURCE", fx.pin_source, 1);
	run(r, "token", "sign", "--kid", kid, "--claims", "{\"sub\":\"alice\"}", "--typ", "at+jwt",
	    NULL);
	unsetenv("KEYMGR_TOKEN");
	unsetenv("KEYMGR_PIN_SOURCE");
	assert_int_equal(r->status, 0);
	char *d1 = strchr(r->out, '.');
	assert_non_null(d1);
	char hdr[256];
	size_t hlen = 0;
	assert_int_equal(km_b64url_decode(r->out, (size_t)(d1 - r->out), (uint8_t *)hdr, &hlen), 0);
	hdr[hlen] = '\0';
	char want[160];
	snprintf(want, sizeof(want), "{\"alg\":\"PS384\",\"kid\":\"%s\",\"typ\":\"at+jwt\"}", kid);
	assert_string_equal(hdr, want);
	assert_int_equal(key_count(), before + 1);
	free(r);
}

static void test_cli_jwks_output_atomic(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	char dir[400], path[450], stdout_copy[65536];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s/out", fx.dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/jwks.json", dir);
	keygen("ES384");
	run(r, "token", "jwks", "--token", fx.label, "--pin-source", fx.pin_source, NULL);
	assert_int_equal(r->status, 0);
	snprintf(stdout_copy, sizeof(stdout_copy), "%s", r->out);
	run(r, "token", "jwks", "--token", fx.label, "--pin-source", fx.pin_source, "--output",
	    path, NULL);
	assert_int_equal(r->status, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char content[65536];
	size_t n = fread(content, 1, sizeof(content) - 1, f);
	content[n] = '\0';
	fclose(f);
	assert_string_equal(content, stdout_copy);
	/* No temporary file left behind. */
	DIR *d = opendir(dir);
	int entries = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			entries++;
	closedir(d);
	assert_int_equal(entries, 1);
	/* A failed write leaves nothing behind. */
	run(r, "token", "jwks", "--token", fx.label, "--pin-source", fx.pin_source, "--output",
	    "/nonexistent/dir/jwks.json", NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "/nonexistent/dir/jwks.json"));
	free(r);
}

static void test_cli_token_init_idempotent(void **state)
{
	km_run_t *r = malloc(sizeof(*r));
	char so[400], so_src[420];
	snprintf(so, sizeof(so), "%s/cli-so.pin", fx.dir);
	snprintf(so_src, sizeof(so_src), "file:%s", so);
	write_file(so, "so-pin-for-cli", 0600);
	run(r, "token", "init", "--token", "cli-second", "--so-pin-source", so_src, "--pin-source",
	    fx.pin_source, NULL);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "initialised token 'cli-second'"));
	assert_null(strstr(r->out, "so-pin-for-cli"));
	run(r, "token", "init", "--token", "cli-second", "--so-pin-source", so_src, "--pin-source",
	    fx.pin_source, NULL);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "already exists"));
	run(r, "token", "init", "--token", "cli-second", "--so-pin-source", so_src, "--pin-source",
	    fx.pin_source, "--json", NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "{\"token\":\"cli-second\",\"created\":false}\n");
	/* The new token works with the user PIN it was given. */
	run(r, "token", "jwks", "--token", "cli-second", "--pin-source", fx.pin_source, NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "{\"keys\":[]}\n");
	/* Missing SO PIN source, label too long. */
	run(r, "token", "init", "--token", "cli-third", "--pin-source", fx.pin_source, NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "--so-pin-source"));
	run(r, "token", "init", "--token", "a-label-that-is-longer-than-32-bytes", "--so-pin-source",
	    so_src, "--pin-source", fx.pin_source, NULL);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->err, "32"));
	free(r);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH-TO-KEYMGR\n", argv[0]);
		return 2;
	}
	keymgr = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_help_every_command),
		cmocka_unit_test(test_cli_usage_errors),
		cmocka_unit_test(test_cli_keygen_unknown_alg_refused),
		cmocka_unit_test(test_cli_keygen_rsa_bits_below_minimum_refused),
		cmocka_unit_test(test_cli_missing_token_label_refused),
		cmocka_unit_test(test_cli_bad_module_path_refused),
		cmocka_unit_test(test_cli_wrong_pin_refused),
		cmocka_unit_test(test_cli_pin_file_readable_by_others_refused),
		cmocka_unit_test(test_cli_pin_flag_refused),
		cmocka_unit_test(test_cli_malformed_claims_refused),
		cmocka_unit_test(test_cli_unknown_kid_refused),
		cmocka_unit_test(test_cli_keygen_jwks_sign),
		cmocka_unit_test(test_cli_jwks_output_atomic),
		cmocka_unit_test(test_cli_token_init_idempotent),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
