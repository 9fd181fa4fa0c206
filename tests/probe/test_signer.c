/* SPDX-License-Identifier: Apache-2.0 */
/*
 * km_claims_sign_probe (keymgr/claims/claims_probe.h), the narrow signer of keymgr probe,
 * on a real SoftHSM token: each deviation makes exactly the token it names, with the key
 * set's real key (keymgr's own strict verifier accepts the genuine one and refuses each of
 * the others for the reason it tests), valid for at most 60 s, with a probe jti; and it
 * refuses an environment probe.environments does not name, claims the key set's policy
 * refuses, and a "wrong" value that is not wrong.
 * And km_probe_run with an injected clock: a real-signature token is never sent once it is
 * older than KM_PROBE_SEND_WINDOW (it could expire on the way and be refused for its age).
 */
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "keymgr/claims/claims_probe.h"
#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/core/apply.h"
#include "keymgr/core/env.h"
#include "keymgr/core/keyops.h"
#include "keymgr/jose/jwks.h"
#include "keymgr/jose/jws.h"
#include "keymgr/probe/probe.h"
#include "keymgr/verify/verify.h"
#include "policy/policy.h"
#include "tests/common/softhsm.h"

static struct {
	km_test_softhsm_t hsm;
	char config[320];
	km_config_t *cfg;
	km_env_t *dev, *prod;
	km_policy_t pol;
	km_jwks_entry_t *keys;
	size_t n_keys;
	km_store_key_t active;
} fx;

#define CLAIMS "{\"sub\":\"probe\",\"client_id\":\"probe\",\"aud\":\"api.test\"}"

static int make_keyset(km_env_t *env)
{
	km_store_keyset_t ks;
	km_apply_created_t made;
	char err[1024] = "";
	memset(&ks, 0, sizeof(ks));
	snprintf(ks.name, sizeof(ks.name), "api");
	ks.alg = KM_ALG_ES256;
	snprintf(ks.owner, sizeof(ks.owner), "probe-tests");
	snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
	int r = km_apply_keyset_create(env, &ks, "tester", (int64_t)time(NULL), true, &made, err,
	                               sizeof(err));
	if (r != KM_EOK || !made.made)
		fprintf(stderr, "keyset create: %s %s\n", err, made.why_not);
	return r == KM_EOK && made.made ? 0 : -1;
}

static int group_setup(void **state)
{
	char prod_pin[320], err[1024] = "", *doc = NULL;
	size_t len = 0;
	if (km_test_softhsm_create(&fx.hsm, "probe-dev") != 0 ||
	    km_test_softhsm_add_token(&fx.hsm, "probe-prod", "prodpin1234", prod_pin,
	                              sizeof(prod_pin)) != 0)
		return -1;
	snprintf(fx.config, sizeof(fx.config), "%s/keymgr.yaml", fx.hsm.dir);
	FILE *f = fopen(fx.config, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "version: 1\nenvironments:\n"
	        "  development:\n    token: { module: %s, label: probe-dev, pin: '%s' }\n"
	        "    store: %s/development.db\n"
	        "    keysets:\n      api: { issuer: https://issuer.test, audiences: [ api.test, "
	        "admin.test ] }\n"
	        "  production:\n    token: { module: %s, label: probe-prod, pin: '%s' }\n"
	        "    store: %s/production.db\n"
	        "    keysets:\n      api: { issuer: https://issuer.test, audiences: [ api.test ] }\n"
	        "probe:\n  environments: [ development ]\n", fx.hsm.module, fx.hsm.pin_source,
	        fx.hsm.dir, fx.hsm.module, prod_pin, fx.hsm.dir);
	if (fclose(f) != 0)
		return -1;
	int r = km_config_load(fx.config, &fx.cfg, err, sizeof(err));
	if (r == KM_EOK)
		r = km_env_open(fx.cfg, "development", &fx.dev, err, sizeof(err));
	if (r == KM_EOK)
		r = km_env_open(fx.cfg, "production", &fx.prod, err, sizeof(err));
	if (r == KM_EOK)
		r = km_env_keyset_policy(fx.dev, "api", &fx.pol);
	if (r != KM_EOK || make_keyset(fx.dev) != 0 || make_keyset(fx.prod) != 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	r = km_store_key_active(km_env_store(fx.dev), "api", &fx.active, err, sizeof(err));
	if (r == KM_EOK)
		r = km_env_jwks(fx.dev, "api", &doc, &len, err, sizeof(err));
	if (r == KM_EOK)
		r = km_jwks_parse(doc, len, &fx.keys, &fx.n_keys, err, sizeof(err));
	free(doc);
	*state = &fx;
	return r == KM_EOK ? 0 : -1;
}

static int group_teardown(void **state)
{
	free(fx.keys);
	km_env_free(fx.dev);
	km_env_free(fx.prod);
	km_config_free(fx.cfg);
	km_test_softhsm_destroy(&fx.hsm);
	return 0;
}

/* Segment i (0 header, 1 payload) of a compact token as JSON, duplicate members allowed
 * (jansson keeps the last): the duplicate-claim token is what it is meant to be. */
static json_t *segment(const char *jwt, int i)
{
	const char *start = jwt, *end;
	uint8_t text[4096];
	size_t n = sizeof(text) - 1;
	while (i-- > 0)
		start = strchr(start, '.') + 1;
	end = strchr(start, '.');
	assert_non_null(end);
	assert_int_equal(km_b64url_decode(start, (size_t)(end - start), text, &n), KM_EOK);
	text[n] = '\0';
	json_t *j = json_loads((const char *)text, 0, NULL);
	assert_non_null(j);
	return j;
}

/* One probe token of development/api at now: its header and claims (new references). */
static char *sign(km_claims_probe_t what, const char *arg, int64_t now, json_t **hdr,
                  json_t **claims, char jti[KM_CLAIMS_PROBE_JTI_MAX + 1])
{
	char err[1024] = "", *jwt = NULL;
	json_t *in = json_loads(CLAIMS, 0, NULL);
	int r = km_claims_sign_probe(fx.dev, "api", what, arg, in, now, &jwt, jti, err,
	                             sizeof(err));
	json_decref(in);
	if (r != KM_EOK)
		fail_msg("probe token %d: %s (%s)", (int)what, err, km_strerror(r));
	if (hdr != NULL)
		*hdr = segment(jwt, 0);
	if (claims != NULL)
		*claims = segment(jwt, 1);
	return jwt;
}

static int64_t num(const json_t *c, const char *name)
{
	assert_true(json_is_integer(json_object_get(c, name)));
	return (int64_t)json_integer_value(json_object_get(c, name));
}

/* keymgr verify's answer to jwt, as a verifier of this key set at now would give it. */
static int verify(const char *jwt, int64_t now, char *err, size_t errlen)
{
	km_verify_opts_t o = { .alg = KM_ALG_ES256, .iss = "https://issuer.test",
	                       .aud = "api.test", .typ = "at+jwt", .leeway = 30, .now = now,
	                       .max_ttl = fx.pol.max_token_ttl };
	err[0] = '\0';
	return km_verify_jwt(&o, jwt, strlen(jwt), fx.keys, fx.n_keys, NULL, err, errlen);
}

static void test_signer_genuine(void **state)
{
	char jti[KM_CLAIMS_PROBE_JTI_MAX + 1], err[512];
	json_t *h = NULL, *c = NULL;
	int64_t now = (int64_t)time(NULL);
	char *jwt = sign(KM_CLAIMS_PROBE_GENUINE, NULL, now, &h, &c, jti);
	assert_string_equal(json_string_value(json_object_get(h, "typ")), "at+jwt");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), fx.active.kid);
	assert_string_equal(json_string_value(json_object_get(c, "jti")), jti);
	assert_memory_equal(jti, KM_CLAIMS_PROBE_JTI_PREFIX, strlen(KM_CLAIMS_PROBE_JTI_PREFIX));
	assert_true(strlen(jti) > strlen(KM_CLAIMS_PROBE_JTI_PREFIX) + 20);
	assert_int_equal(num(c, "exp") - now, KM_CLAIMS_PROBE_TTL);
	assert_int_equal(num(c, "iat"), now);
	assert_int_equal(num(c, "nbf"), now);
	assert_int_equal(verify(jwt, now, err, sizeof(err)), KM_EOK);
	/* a second token: another jti */
	char jti2[KM_CLAIMS_PROBE_JTI_MAX + 1];
	char *jwt2 = sign(KM_CLAIMS_PROBE_GENUINE, NULL, now, NULL, NULL, jti2);
	assert_string_not_equal(jti, jti2);
	free(jwt2);
	free(jwt);
	json_decref(h);
	json_decref(c);
}

/* Each deviation: the claim or header it names, at most 60 s of validity, the real
 * signature, and keymgr verify refusing it for exactly that reason. */
static void test_signer_deviations(void **state)
{
	static const struct {
		km_claims_probe_t what;
		const char *arg;
		const char *refusal;
	} cases[] = {
		{ KM_CLAIMS_PROBE_EXPIRED, NULL, "exp: expired" },
		{ KM_CLAIMS_PROBE_NOT_YET_VALID, NULL, "nbf: not valid before" },
		{ KM_CLAIMS_PROBE_WRONG_ISS, NULL, "iss: another issuer" },
		{ KM_CLAIMS_PROBE_WRONG_AUD, "admin.test", "aud: the token is not for api.test" },
		{ KM_CLAIMS_PROBE_WRONG_TYP, "logout+jwt", "typ" },
		{ KM_CLAIMS_PROBE_OVERLONG, NULL, "lifetime: exp - iat" },
		{ KM_CLAIMS_PROBE_CRIT, NULL, "crit: refused" },
		{ KM_CLAIMS_PROBE_DUPLICATE_ISS, NULL, "duplicate" },
	};
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char jti[KM_CLAIMS_PROBE_JTI_MAX + 1], err[512];
		json_t *h = NULL, *c = NULL;
		char *jwt = sign(cases[i].what, cases[i].arg, now, &h, &c, jti);
		int64_t from = num(c, "nbf") > now ? num(c, "nbf") : now;
		assert_true(num(c, "exp") - from <= KM_CLAIMS_PROBE_TTL);
		assert_string_equal(json_string_value(json_object_get(c, "jti")), jti);
		assert_string_equal(json_string_value(json_object_get(h, "kid")), fx.active.kid);
		assert_int_not_equal(verify(jwt, now, err, sizeof(err)), KM_EOK);
		if (strstr(err, cases[i].refusal) == NULL)
			fail_msg("deviation %d refused for '%s', not '%s'", (int)cases[i].what, err,
			         cases[i].refusal);
		/* The signature is the key set's: the same verifier at the token's own time,
		 * without the rule the deviation breaks, accepts it. */
		int64_t then = cases[i].what == KM_CLAIMS_PROBE_EXPIRED ? num(c, "exp") - 10 :
		               cases[i].what == KM_CLAIMS_PROBE_NOT_YET_VALID ? num(c, "nbf") + 10 : 0;
		if (then != 0 && verify(jwt, then, err, sizeof(err)) != KM_EOK)
			fail_msg("deviation %d refused at its own time: %s", (int)cases[i].what, err);
		switch (cases[i].what) {
		case KM_CLAIMS_PROBE_EXPIRED:
			assert_int_equal(num(c, "exp"), now - fx.pol.clock_skew - 60);
			break;
		case KM_CLAIMS_PROBE_NOT_YET_VALID:
			assert_int_equal(num(c, "nbf"), now + fx.pol.clock_skew + 60);
			break;
		case KM_CLAIMS_PROBE_WRONG_ISS:
			assert_string_equal(json_string_value(json_object_get(c, "iss")),
			                    KM_CLAIMS_PROBE_BAD_ISSUER);
			break;
		case KM_CLAIMS_PROBE_WRONG_AUD:
			assert_string_equal(json_string_value(json_object_get(c, "aud")), "admin.test");
			break;
		case KM_CLAIMS_PROBE_WRONG_TYP:
			assert_string_equal(json_string_value(json_object_get(h, "typ")), "logout+jwt");
			break;
		case KM_CLAIMS_PROBE_OVERLONG:
			assert_int_equal(num(c, "exp"), now + 60);
			assert_int_equal(num(c, "exp") - num(c, "iat"), fx.pol.max_token_ttl + 60);
			break;
		case KM_CLAIMS_PROBE_CRIT:
			assert_true(json_is_true(json_object_get(h, KM_CLAIMS_PROBE_CRIT_NAME)));
			assert_string_equal(json_string_value(json_array_get(json_object_get(h, "crit"),
			                                                     0)),
			                    KM_CLAIMS_PROBE_CRIT_NAME);
			break;
		default:
			break;
		}
		free(jwt);
		json_decref(h);
		json_decref(c);
	}
}

/* The duplicate: the payload text carries iss twice, the wrong one last. */
static void test_signer_duplicate_text(void **state)
{
	char jti[KM_CLAIMS_PROBE_JTI_MAX + 1];
	char *jwt = sign(KM_CLAIMS_PROBE_DUPLICATE_ISS, NULL, (int64_t)time(NULL), NULL, NULL, jti);
	char *dot = strchr(jwt, '.'), *end = strchr(dot + 1, '.');
	uint8_t payload[2048];
	size_t n = sizeof(payload) - 1;
	assert_int_equal(km_b64url_decode(dot + 1, (size_t)(end - dot - 1), payload, &n), KM_EOK);
	payload[n] = '\0';
	const char *first = strstr((char *)payload, "\"iss\":\"https://issuer.test\"");
	const char *last = strstr((char *)payload, "\"iss\":\"" KM_CLAIMS_PROBE_BAD_ISSUER "\"}");
	assert_non_null(first);
	assert_non_null(last);
	assert_true(first < last);
	free(jwt);
}

typedef struct {
	km_token_t *token;
} raw_ctx_t;

static int raw_sign(void *ctx, const uint8_t *data, size_t len, uint8_t *sig, size_t *sig_len)
{
	raw_ctx_t *c = ctx;
	return km_token_sign(c->token, fx.active.cka_id, fx.active.cka_id_len, fx.active.alg, data,
	                     len, sig, sig_len);
}

/* keymgr verify --max-ttl (the check the over-long token meets) needs iat: a token of the
 * key set's key without one is refused with it, and accepted without it. */
static void test_verify_max_ttl_needs_iat(void **state)
{
	char err[512] = "", *jwt = NULL;
	raw_ctx_t ctx = { NULL };
	int64_t now = (int64_t)time(NULL);
	assert_int_equal(km_env_token(fx.dev, &ctx.token, err, sizeof(err)), KM_EOK);
	km_jws_signer_t signer = { .alg = KM_ALG_ES256, .kid = fx.active.kid, .typ = "at+jwt",
	                           .sign = raw_sign, .sign_ctx = &ctx };
	json_t *c = json_pack("{s:s, s:s, s:I}", "iss", "https://issuer.test", "aud", "api.test",
	                      "exp", (json_int_t)(now + 60));
	assert_int_equal(km_jws_sign_claims(&signer, c, &jwt), KM_EOK);
	assert_int_not_equal(verify(jwt, now, err, sizeof(err)), KM_EOK);
	assert_non_null(strstr(err, "iat: missing, and --max-ttl needs it"));
	km_verify_opts_t o = { .alg = KM_ALG_ES256, .iss = "https://issuer.test",
	                       .aud = "api.test", .typ = "at+jwt", .leeway = 30, .now = now };
	assert_int_equal(km_verify_jwt(&o, jwt, strlen(jwt), fx.keys, fx.n_keys, NULL, err,
	                               sizeof(err)), KM_EOK);
	json_decref(c);
	free(jwt);
}

static void test_signer_refusals(void **state)
{
	static const struct {
		int env_prod;
		km_claims_probe_t what;
		const char *arg, *claims, *words;
		int code;
	} cases[] = {
		{ 1, KM_CLAIMS_PROBE_GENUINE, NULL, CLAIMS, "not marked for probing",
		  KM_POLICY_EDENIED },
		{ 0, KM_CLAIMS_PROBE_GENUINE, NULL,
		  "{\"sub\":\"s\",\"client_id\":\"c\",\"aud\":\"api.test\",\"jti\":\"mine\"}", "jti",
		  KM_POLICY_EDENIED },
		{ 0, KM_CLAIMS_PROBE_GENUINE, NULL,
		  "{\"sub\":\"s\",\"client_id\":\"c\",\"aud\":\"api.test\",\"exp\":1}", "exp",
		  KM_POLICY_EDENIED },
		{ 0, KM_CLAIMS_PROBE_GENUINE, NULL, "{\"sub\":\"s\",\"client_id\":\"c\","
		  "\"aud\":\"evil.test\"}", "not an allowed audience", KM_POLICY_EDENIED },
		{ 0, KM_CLAIMS_PROBE_WRONG_TYP, "AT+JWT", CLAIMS, "must differ", KM_EINVAL },
		{ 0, KM_CLAIMS_PROBE_WRONG_TYP, NULL, CLAIMS, "must differ", KM_EINVAL },
		{ 0, KM_CLAIMS_PROBE_WRONG_AUD, "api.test", CLAIMS, "must differ", KM_EINVAL },
		{ 0, KM_CLAIMS_PROBE_WRONG_AUD, "", CLAIMS, "must differ", KM_EINVAL },
		{ 0, (km_claims_probe_t)99, NULL, CLAIMS, "", KM_EINVAL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char jti[KM_CLAIMS_PROBE_JTI_MAX + 1] = "untouched", err[1024] = "", *jwt = NULL;
		json_t *in = json_loads(cases[i].claims, 0, NULL);
		int r = km_claims_sign_probe(cases[i].env_prod ? fx.prod : fx.dev, "api",
		                             cases[i].what, cases[i].arg, in, (int64_t)time(NULL),
		                             &jwt, jti, err, sizeof(err));
		json_decref(in);
		assert_int_equal(r, cases[i].code);
		assert_null(jwt);
		assert_string_equal(jti, "untouched");
		if (strstr(err, cases[i].words) == NULL)
			fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].words);
	}
	char jti[KM_CLAIMS_PROBE_JTI_MAX + 1], err[1024] = "", *jwt = NULL;
	json_t *in = json_loads(CLAIMS, 0, NULL);
	assert_int_equal(km_claims_sign_probe(fx.dev, "nothing", KM_CLAIMS_PROBE_GENUINE, NULL, in,
	                                      (int64_t)time(NULL), &jwt, jti, err, sizeof(err)),
	                 KM_ENOENT);
	assert_non_null(strstr(err, "unknown key set development/nothing"));
	json_decref(in);
}

/* An endpoint on 127.0.0.1 that refuses everything (401) and counts what it was sent. */
static struct {
	int fd;
	pthread_t thread;
	int requests, with_token;
} ep;

static void *endpoint(void *arg)
{
	char buf[8192];
	int c;
	(void)arg;
	while ((c = accept(ep.fd, NULL, NULL)) >= 0) {
		size_t n = 0;
		ssize_t k;
		while (n < sizeof(buf) - 1 && (k = read(c, buf + n, sizeof(buf) - 1 - n)) > 0) {
			n += (size_t)k;
			buf[n] = '\0';
			if (strstr(buf, "\r\n\r\n") != NULL)
				break;
		}
		buf[n] = '\0';
		ep.requests++;
		ep.with_token += strstr(buf, "Authorization:") != NULL;
		static const char answer[] = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
		                             "Connection: close\r\n\r\n";
		if (write(c, answer, sizeof(answer) - 1) < 0)
			break;
		close(c);
	}
	return NULL;
}

static int64_t clock_base;
static int clock_reads;

/* Moves 100 s on every reading: every token is stale by the time it could be sent. */
static int64_t fast_clock(void)
{
	return clock_base + 100 * (int64_t)clock_reads++;
}

static void test_run_never_sends_a_stale_real_token(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	char url[64], err[1024] = "";
	km_probe_report_t *rep = NULL;
	ep.fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(ep.fd >= 0);
	assert_int_equal(bind(ep.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ep.fd, 8), 0);
	assert_int_equal(getsockname(ep.fd, (struct sockaddr *)&a, &len), 0);
	assert_int_equal(pthread_create(&ep.thread, NULL, endpoint, NULL), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api", ntohs(a.sin_port));
	clock_base = (int64_t)time(NULL);
	km_probe_opts_t o = { .env = "development", .keyset = "api", .url = url,
	                      .aud = "api.test", .clock = fast_clock };
	int r = km_probe_run(fx.cfg, &o, &rep, err, sizeof(err));
	shutdown(ep.fd, SHUT_RDWR);
	close(ep.fd);
	pthread_join(ep.thread, NULL);
	if (r != KM_EOK)
		fail_msg("probe: %s", err);
	/* The request without a token went; the genuine token, older than the window, did not,
	 * and the run stopped there. */
	assert_int_equal(ep.requests, 1);
	assert_int_equal(ep.with_token, 0);
	assert_true(rep->stopped);
	assert_non_null(strstr(rep->stop_reason, "the genuine token got no answer"));
	assert_non_null(strstr(rep->results[1].note, "not sent: more than 40 s after it was "
	                                               "signed"));
	assert_false(rep->results[1].sent);
	assert_true(km_probe_report_failed(rep));
	km_probe_report_free(rep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signer_genuine),
		cmocka_unit_test(test_signer_deviations),
		cmocka_unit_test(test_signer_duplicate_text),
		cmocka_unit_test(test_signer_refusals),
		cmocka_unit_test(test_verify_max_ttl_needs_iat),
		cmocka_unit_test(test_run_never_sends_a_stale_real_token),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
