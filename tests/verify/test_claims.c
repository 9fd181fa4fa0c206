/* SPDX-License-Identifier: Apache-2.0 */
/* The claims policy (keymgr/claims): every rule of docs/claims.md, without a token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/claims/claims.h"
#include "keymgr/common/error.h"

#define NOW 1800000000
#define ISS "https://auth.example.test"
#define BCL "{\"" KM_CLAIMS_BCL_EVENT "\":{}}"

static const char *const auds[] = { "api.example.test", "admin.example.test" };

static km_claims_policy_t policy(const char *purpose)
{
	km_keyset_cfg_t k = { 0 };
	km_claims_policy_t pol;
	k.issuer = ISS;
	for (size_t i = 0; i < 2; i++)
		k.audiences[i] = auds[i];
	k.n_audiences = 2;
	assert_int_equal(km_claims_policy_init(&pol, "production", "api", purpose, &k, 3600),
	                 KM_EOK);
	/* k lives on this stack frame: point at the static list instead. */
	pol.audiences = auds;
	return pol;
}

/* Prepares text under purpose; on success returns the claims, else NULL with err/code. */
static json_t *prep(const char *purpose, const char *text, int64_t ttl, int *code, char *err,
                    size_t errlen)
{
	km_claims_policy_t pol = policy(purpose);
	json_t *out = (json_t *)0x1;
	err[0] = '\0';
	*code = km_claims_prepare(&pol, text, NOW, ttl, &out, err, errlen);
	if (*code != KM_EOK) {
		assert_ptr_equal(out, (json_t *)0x1);  /* untouched on failure */
		assert_true(err[0] != '\0');
		return NULL;
	}
	return out;
}

static void expect_ok(const char *purpose, const char *text)
{
	char err[512];
	int code;
	json_t *j = prep(purpose, text, 0, &code, err, sizeof(err));
	if (j == NULL)
		fail_msg("%s refused %s: %s", purpose, text, err);
	json_decref(j);
}

static void expect_refused(const char *purpose, const char *text, int want, const char *part)
{
	char err[512];
	int code;
	json_t *j = prep(purpose, text, 0, &code, err, sizeof(err));
	if (j != NULL)
		fail_msg("%s accepted %s", purpose, text);
	assert_int_equal(code, want);
	if (strstr(err, part) == NULL)
		fail_msg("message '%s' lacks '%s'", err, part);
	assert_null(strchr(err, '\n'));
}

#define AT_BASE "\"sub\":\"alice\",\"client_id\":\"c1\",\"aud\":\"api.example.test\""
#define EXP_OK "\"exp\":1800000600"

static void test_typ_per_purpose(void **state)
{
	char t[KM_CLAIMS_TYP_MAX + 1];
	(void)state;
	assert_string_equal(km_claims_typ("access-token", t), "at+jwt");
	assert_string_equal(km_claims_typ("id-token", t), "JWT");
	assert_string_equal(km_claims_typ("logout-token", t), "logout+jwt");
	assert_string_equal(km_claims_typ("security-event-token", t), "secevent+jwt");
	assert_string_equal(km_claims_typ("refresh-token", t), "rt+jwt");
	assert_string_equal(km_claims_typ("billing", t), "billing+jwt");
}

static void test_prepare_adds_owned_claims(void **state)
{
	char err[512];
	int code;
	(void)state;
	json_t *a = prep("access-token", "{" AT_BASE "," EXP_OK ",\"scope\":\"read\"}", 0, &code,
	                 err, sizeof(err));
	json_t *b = prep("access-token", "{" AT_BASE "," EXP_OK "}", 0, &code, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	/* iss first, then the caller's claims in order, then iat, nbf, jti. */
	const char *order[] = { "iss", "sub", "client_id", "aud", "exp", "scope", "iat", "nbf",
	                        "jti" };
	size_t i = 0;
	const char *k;
	json_t *v;
	json_object_foreach(a, k, v) {
		assert_true(i < sizeof(order) / sizeof(order[0]));
		assert_string_equal(k, order[i++]);
	}
	assert_int_equal(i, sizeof(order) / sizeof(order[0]));
	assert_string_equal(json_string_value(json_object_get(a, "iss")), ISS);
	assert_int_equal(json_integer_value(json_object_get(a, "iat")), NOW);
	assert_int_equal(json_integer_value(json_object_get(a, "nbf")), NOW);
	const char *jti = json_string_value(json_object_get(a, "jti"));
	assert_non_null(jti);
	assert_int_equal(strlen(jti), 22);  /* 128 bits in base64url */
	assert_int_equal(strspn(jti, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                             "0123456789-_"), 22);
	assert_string_not_equal(jti, json_string_value(json_object_get(b, "jti")));
	json_decref(a);
	json_decref(b);
}

static void test_prepare_iss(void **state)
{
	(void)state;
	expect_ok("access-token", "{\"iss\":\"" ISS "\"," AT_BASE "," EXP_OK "}");
	expect_refused("access-token", "{\"iss\":\"https://evil.example\"," AT_BASE "," EXP_OK "}",
	               KM_POLICY_EDENIED, "claim 'iss' must be the issuer of key set "
	               "production/api (" ISS ")");
	expect_refused("access-token", "{\"iss\":7," AT_BASE "," EXP_OK "}", KM_POLICY_EDENIED,
	               "not a string");
}

static void test_prepare_unconfigured_keyset_refused(void **state)
{
	km_claims_policy_t pol;
	json_t *out = NULL;
	char err[512];
	(void)state;
	assert_int_equal(km_claims_policy_init(&pol, "development", "api", "access-token", NULL,
	                                       3600), KM_EOK);
	assert_int_equal(km_claims_prepare(&pol, "{" AT_BASE "," EXP_OK "}", NOW, 0, &out, err,
	                                   sizeof(err)), KM_POLICY_EDENIED);
	assert_null(out);
	assert_non_null(strstr(err, "environments.development.keysets.api.issuer"));
	km_keyset_cfg_t k = { 0 };
	k.issuer = ISS;
	assert_int_equal(km_claims_policy_init(&pol, "development", "api", "access-token", &k,
	                                       3600), KM_EOK);
	assert_int_equal(km_claims_prepare(&pol, "{" AT_BASE "," EXP_OK "}", NOW, 0, &out, err,
	                                   sizeof(err)), KM_POLICY_EDENIED);
	assert_non_null(strstr(err, "environments.development.keysets.api.audiences"));
	assert_int_equal(km_claims_policy_init(&pol, "Bad/Name", "api", "access-token", &k, 3600),
	                 KM_EINVAL);
	assert_int_equal(km_claims_policy_init(&pol, "development", "api", "access-token", &k, 0),
	                 KM_EINVAL);
}

static void test_prepare_aud(void **state)
{
	(void)state;
	const char *base = "\"sub\":\"a\",\"client_id\":\"c\"," EXP_OK;
	char buf[256];
	snprintf(buf, sizeof(buf), "{%s,\"aud\":[\"api.example.test\",\"admin.example.test\"]}",
	         base);
	expect_ok("access-token", buf);
	snprintf(buf, sizeof(buf), "{%s}", base);
	expect_refused("access-token", buf, KM_POLICY_EDENIED, "claim 'aud' is required");
	snprintf(buf, sizeof(buf), "{%s,\"aud\":\"evil.example\"}", base);
	expect_refused("access-token", buf, KM_POLICY_EDENIED, "claim 'aud' value 'evil.example' "
	               "is not an allowed audience of key set production/api (allowed: "
	               "api.example.test, admin.example.test)");
	snprintf(buf, sizeof(buf), "{%s,\"aud\":[\"api.example.test\",\"evil.example\"]}", base);
	expect_refused("access-token", buf, KM_POLICY_EDENIED, "'evil.example'");
	snprintf(buf, sizeof(buf), "{%s,\"aud\":[]}", base);
	expect_refused("access-token", buf, KM_POLICY_EDENIED, "empty array");
	snprintf(buf, sizeof(buf), "{%s,\"aud\":[1]}", base);
	expect_refused("access-token", buf, KM_POLICY_EDENIED, "non-empty string");
	snprintf(buf, sizeof(buf), "{%s,\"aud\":\"\"}", base);
	expect_refused("access-token", buf, KM_POLICY_EDENIED, "non-empty string");
}

static void test_prepare_exp(void **state)
{
	(void)state;
	expect_refused("access-token", "{" AT_BASE "}", KM_POLICY_EDENIED,
	               "claim 'exp' is required");
	expect_refused("access-token", "{" AT_BASE ",\"exp\":1800000600.5}", KM_POLICY_EDENIED,
	               "integer NumericDate");
	expect_refused("access-token", "{" AT_BASE ",\"exp\":\"1800000600\"}", KM_POLICY_EDENIED,
	               "integer NumericDate");
	expect_refused("access-token", "{" AT_BASE ",\"exp\":1800000000}", KM_POLICY_EDENIED,
	               "born expired");
	expect_refused("access-token", "{" AT_BASE ",\"exp\":1}", KM_POLICY_EDENIED,
	               "born expired");
	expect_ok("access-token", "{" AT_BASE ",\"exp\":1800003600}");  /* exactly the max */
	expect_refused("access-token", "{" AT_BASE ",\"exp\":1800003601}", KM_POLICY_EDENIED,
	               "exp - iat = 1h1s exceeds max_token_ttl (1h) of key set production/api: "
	               "refused, not shortened");
	expect_refused("access-token", "{" AT_BASE ",\"exp\":9223372036854775807}",
	               KM_POLICY_EDENIED, "more than 100 years");
}

static void test_prepare_ttl(void **state)
{
	char err[512];
	int code;
	(void)state;
	json_t *j = prep("access-token", "{" AT_BASE "}", 600, &code, err, sizeof(err));
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "exp")), NOW + 600);
	json_decref(j);
	assert_null(prep("access-token", "{" AT_BASE "," EXP_OK "}", 600, &code, err,
	                 sizeof(err)));
	assert_non_null(strstr(err, "both given"));
	assert_null(prep("access-token", "{" AT_BASE "}", 3601, &code, err, sizeof(err)));
	assert_int_equal(code, KM_POLICY_EDENIED);
	assert_non_null(strstr(err, "refused, not shortened"));
}

static void test_prepare_owned_claims_refused(void **state)
{
	(void)state;
	expect_refused("access-token", "{" AT_BASE "," EXP_OK ",\"iat\":1800000000}",
	               KM_POLICY_EDENIED, "claim 'iat' is set by keymgr");
	expect_refused("access-token", "{" AT_BASE "," EXP_OK ",\"nbf\":1}", KM_POLICY_EDENIED,
	               "claim 'nbf' is set by keymgr");
	expect_refused("access-token", "{" AT_BASE "," EXP_OK ",\"jti\":\"mine\"}",
	               KM_POLICY_EDENIED, "claim 'jti' is set by keymgr");
}

static void test_prepare_malformed(void **state)
{
	(void)state;
	expect_refused("access-token", "{\"sub\":", KM_EMALFORMED, "not valid JSON");
	expect_refused("access-token", "[1,2]", KM_EMALFORMED, "must be a JSON object");
	expect_refused("access-token", "{" AT_BASE "," EXP_OK ",\"sub\":\"bob\"}", KM_EMALFORMED,
	               "duplicate");
	expect_refused("access-token", "{\"sub\":5,\"client_id\":\"c\",\"aud\":\"api.example.test\","
	               EXP_OK "}", KM_POLICY_EDENIED, "claim 'sub' must be a string");
}

static void test_class_access_token(void **state)
{
	(void)state;
	expect_ok("access-token", "{" AT_BASE "," EXP_OK ",\"auth_time\":1,\"acr\":\"1\","
	          "\"amr\":[\"pwd\"]}");
	expect_refused("access-token", "{" AT_BASE "," EXP_OK ",\"events\":" BCL "}",
	               KM_POLICY_EDENIED, "claim 'events' is reserved for security-event-token and "
	               "logout-token tokens; key set production/api signs access-token tokens "
	               "(typ at+jwt)");
	expect_refused("access-token", "{" AT_BASE "," EXP_OK ",\"nonce\":\"n\"}",
	               KM_POLICY_EDENIED, "claim 'nonce' is reserved for id-token");
	/* the class in the payload: an access token passed off as a logout token */
	expect_refused("access-token", "{" AT_BASE "," EXP_OK ",\"typ\":\"logout+jwt\"}",
	               KM_POLICY_EDENIED, "claim 'typ' names a token class and is never signed in "
	               "the payload: keymgr states the class in the header (typ at+jwt for key set "
	               "production/api, purpose access-token)");
	expect_refused("access-token", "{" AT_BASE "," EXP_OK ",\"token_use\":\"id\"}",
	               KM_POLICY_EDENIED, "claim 'token_use' names a token class");
	expect_refused("access-token", "{" AT_BASE "," EXP_OK ",\"azp\":\"c\"}", KM_POLICY_EDENIED,
	               "claim 'azp' is reserved for id-token");
	expect_refused("access-token", "{" AT_BASE "," EXP_OK ",\"sid\":\"s\"}", KM_POLICY_EDENIED,
	               "claim 'sid' is reserved for id-token and logout-token");
	expect_refused("access-token", "{\"client_id\":\"c\",\"aud\":\"api.example.test\"," EXP_OK
	               "}", KM_POLICY_EDENIED, "claim 'sub' is required in access-token tokens "
	               "(RFC 9068 section 2.2)");
	expect_refused("access-token", "{\"sub\":\"a\",\"aud\":\"api.example.test\"," EXP_OK "}",
	               KM_POLICY_EDENIED, "claim 'client_id' is required");
}

#define ID_BASE "\"sub\":\"alice\",\"aud\":\"api.example.test\"," EXP_OK

static void test_class_id_token(void **state)
{
	(void)state;
	expect_ok("id-token", "{" ID_BASE ",\"nonce\":\"n\",\"azp\":\"c\",\"auth_time\":1,"
	          "\"sid\":\"s\",\"at_hash\":\"x\"}");
	expect_refused("id-token", "{" ID_BASE ",\"events\":" BCL "}", KM_POLICY_EDENIED,
	               "claim 'events' is reserved");
	expect_refused("id-token", "{\"aud\":\"api.example.test\"," EXP_OK "}", KM_POLICY_EDENIED,
	               "claim 'sub' is required in id-token tokens");
}

#define LO_BASE "\"aud\":\"api.example.test\"," EXP_OK

static void test_class_logout_token(void **state)
{
	(void)state;
	expect_ok("logout-token", "{" LO_BASE ",\"sub\":\"alice\",\"events\":" BCL "}");
	expect_ok("logout-token", "{" LO_BASE ",\"sid\":\"s1\",\"events\":" BCL "}");
	expect_refused("logout-token", "{" LO_BASE ",\"sub\":\"alice\"}", KM_POLICY_EDENIED,
	               "claim 'events' is required in logout tokens");
	expect_refused("logout-token", "{" LO_BASE ",\"sub\":\"a\",\"events\":{\"urn:x\":{}}}",
	               KM_POLICY_EDENIED, "must contain the event '" KM_CLAIMS_BCL_EVENT "'");
	expect_refused("logout-token", "{" LO_BASE ",\"sub\":\"a\",\"events\":{\""
	               KM_CLAIMS_BCL_EVENT "\":true}}", KM_POLICY_EDENIED, "must be a JSON object");
	expect_refused("logout-token", "{" LO_BASE ",\"sub\":\"a\",\"nonce\":\"n\",\"events\":"
	               BCL "}", KM_POLICY_EDENIED, "claim 'nonce' is forbidden in logout tokens "
	               "(OIDC Back-Channel Logout 1.0 section 2.4)");
	expect_refused("logout-token", "{" LO_BASE ",\"events\":" BCL "}", KM_POLICY_EDENIED,
	               "must carry 'sub' or 'sid'");
	expect_refused("logout-token", "{" LO_BASE ",\"sid\":5,\"events\":" BCL "}",
	               KM_POLICY_EDENIED, "must be strings");
	expect_refused("logout-token", "{" LO_BASE ",\"sub\":\"a\",\"azp\":\"c\",\"events\":" BCL
	               "}", KM_POLICY_EDENIED, "claim 'azp' is reserved for id-token");
}

static void test_class_security_event_token(void **state)
{
	(void)state;
	expect_ok("security-event-token", "{" LO_BASE ",\"toe\":1,\"events\":{\"urn:ex:e\":"
	          "{\"reason\":\"x\"}}}");
	expect_refused("security-event-token", "{" LO_BASE "}", KM_POLICY_EDENIED,
	               "claim 'events' is required in security event tokens (RFC 8417");
	expect_refused("security-event-token", "{" LO_BASE ",\"events\":{}}", KM_POLICY_EDENIED,
	               "non-empty JSON object");
	expect_refused("security-event-token", "{" LO_BASE ",\"events\":" BCL "}",
	               KM_POLICY_EDENIED, "belongs in a logout-token key set");
	expect_refused("security-event-token", "{" LO_BASE ",\"events\":{\"urn:e\":{}},"
	               "\"nonce\":\"n\"}", KM_POLICY_EDENIED, "claim 'nonce' is reserved");
}

static void test_class_custom_and_refresh(void **state)
{
	(void)state;
	expect_ok("billing", "{" LO_BASE ",\"sub\":\"a\",\"plan\":\"gold\"}");
	expect_ok("refresh-token", "{" LO_BASE ",\"sub\":\"a\"}");
	expect_refused("billing", "{" LO_BASE ",\"events\":{\"urn:e\":{}}}", KM_POLICY_EDENIED,
	               "signs billing tokens (typ billing+jwt)");
	expect_refused("refresh-token", "{" LO_BASE ",\"auth_time\":1}", KM_POLICY_EDENIED,
	               "claim 'auth_time' is reserved for id-token and access-token");
}

/* The service-account class (Kubernetes): the payload as kube-apiserver built it. */
#define SA_SUB "\"sub\":\"system:serviceaccount:default:builder\""
#define SA_OK "{\"iss\":\"" ISS "\",\"aud\":[\"api.example.test\",\"admin.example.test\"]," \
	SA_SUB ",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600,\"jti\":\"j\"," \
	"\"kubernetes.io\":{\"namespace\":\"default\"}}"

static void expect_sa(const char *text, int want, const char *part)
{
	km_claims_policy_t pol = policy(KM_CLAIMS_SA_PURPOSE);
	char err[512] = "";
	int r = km_claims_check_sa(&pol, text, strlen(text), NOW, err, sizeof(err));
	assert_int_equal(r, want);
	if (part != NULL && strstr(err, part) == NULL)
		fail_msg("message '%s' lacks '%s'", err, part);
}

static void test_class_service_account(void **state)
{
	char t[KM_CLAIMS_TYP_MAX + 1];
	(void)state;
	assert_string_equal(km_claims_typ(KM_CLAIMS_SA_PURPOSE, t), "JWT");
	expect_sa(SA_OK, KM_EOK, NULL);
	/* iss: required, the key set's */
	expect_sa("{\"aud\":\"api.example.test\"," SA_SUB ",\"iat\":1800000000,"
	          "\"exp\":1800000600}", KM_POLICY_EDENIED, "claim 'iss' is required");
	expect_sa("{\"iss\":\"https://x\",\"aud\":\"api.example.test\"," SA_SUB
	          ",\"iat\":1800000000,\"exp\":1800000600}", KM_POLICY_EDENIED, "claim 'iss'");
	/* aud: every value allowed */
	expect_sa("{\"iss\":\"" ISS "\",\"aud\":[\"api.example.test\",\"vault\"]," SA_SUB
	          ",\"iat\":1800000000,\"exp\":1800000600}", KM_POLICY_EDENIED, "'vault'");
	/* sub names a service account */
	expect_sa("{\"iss\":\"" ISS "\",\"aud\":\"api.example.test\",\"sub\":\"alice\","
	          "\"iat\":1800000000,\"exp\":1800000600}", KM_POLICY_EDENIED, "service account");
	/* lifetime: exp - iat and exp - now within max_token_ttl (3600) */
	expect_sa("{\"iss\":\"" ISS "\",\"aud\":\"api.example.test\"," SA_SUB
	          ",\"iat\":1800000000,\"exp\":1800003601}", KM_POLICY_EDENIED, "max_token_ttl");
	expect_sa("{\"iss\":\"" ISS "\",\"aud\":\"api.example.test\"," SA_SUB
	          ",\"iat\":1799990000,\"exp\":1800003000}", KM_POLICY_EDENIED, "max_token_ttl");
	expect_sa("{\"iss\":\"" ISS "\",\"aud\":\"api.example.test\"," SA_SUB
	          ",\"iat\":1800000000,\"exp\":1800000000}", KM_POLICY_EDENIED, "born expired");
	expect_sa("{\"iss\":\"" ISS "\",\"aud\":\"api.example.test\"," SA_SUB
	          ",\"iat\":1800000061,\"exp\":1800000600}", KM_POLICY_EDENIED, "future");
	expect_sa("{\"iss\":\"" ISS "\",\"aud\":\"api.example.test\"," SA_SUB
	          ",\"iat\":1800000000}", KM_POLICY_EDENIED, "claim 'exp' is required");
	expect_sa("{\"iss\":\"" ISS "\",\"aud\":\"api.example.test\"," SA_SUB
	          ",\"iat\":1800000000,\"exp\":1800000600,\"nbf\":1800000601}", KM_POLICY_EDENIED,
	          "nbf");
	/* no claim of another class; one JSON object, no duplicates, no NUL */
	expect_sa("{\"iss\":\"" ISS "\",\"aud\":\"api.example.test\"," SA_SUB
	          ",\"iat\":1800000000,\"exp\":1800000600,\"nonce\":\"n\"}", KM_POLICY_EDENIED,
	          "reserved");
	expect_sa("{\"iss\":\"" ISS "\",\"iss\":\"" ISS "\"}", KM_EMALFORMED, "JSON object");
	expect_sa("[1]", KM_EMALFORMED, "JSON object");
	km_claims_policy_t sa = policy(KM_CLAIMS_SA_PURPOSE);
	char err[512];
	static const char nul[] = "{\"a\":\"x\"}\0{}";
	assert_int_equal(km_claims_check_sa(&sa, nul, sizeof(nul) - 1, NOW, err, sizeof(err)),
	                 KM_EMALFORMED);
	assert_non_null(strstr(err, "NUL"));
	/* another class never takes a payload; this class never takes claims */
	km_claims_policy_t at = policy("access-token");
	assert_int_equal(km_claims_check_sa(&at, SA_OK, strlen(SA_OK), NOW, err, sizeof(err)),
	                 KM_POLICY_EDENIED);
	expect_refused(KM_CLAIMS_SA_PURPOSE, "{\"aud\":\"api.example.test\"," EXP_OK "}",
	               KM_POLICY_EDENIED, "keymgr adds no claims");
	assert_true(km_alg_kubernetes(KM_ALG_ES256) && km_alg_kubernetes(KM_ALG_RS256) &&
	            km_alg_kubernetes(KM_ALG_ES384) && km_alg_kubernetes(KM_ALG_ES512));
	assert_false(km_alg_kubernetes(KM_ALG_PS256) || km_alg_kubernetes(KM_ALG_EDDSA) ||
	             km_alg_kubernetes(KM_ALG_RS384));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_typ_per_purpose),
		cmocka_unit_test(test_prepare_adds_owned_claims),
		cmocka_unit_test(test_prepare_iss),
		cmocka_unit_test(test_prepare_unconfigured_keyset_refused),
		cmocka_unit_test(test_prepare_aud),
		cmocka_unit_test(test_prepare_exp),
		cmocka_unit_test(test_prepare_ttl),
		cmocka_unit_test(test_prepare_owned_claims_refused),
		cmocka_unit_test(test_prepare_malformed),
		cmocka_unit_test(test_class_access_token),
		cmocka_unit_test(test_class_id_token),
		cmocka_unit_test(test_class_logout_token),
		cmocka_unit_test(test_class_security_event_token),
		cmocka_unit_test(test_class_custom_and_refresh),
		cmocka_unit_test(test_class_service_account),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
