/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signing hot path prints the prepared claims itself (km_claims_prepare_text,
 * keymgr/claims/claims_print.c): its text must be byte for byte what jansson prints of the
 * object km_claims_prepare_object() builds, for every kind of claim value, and refuse what it
 * refuses with the same words. Its jti comes from a per-thread pool: distinct values across
 * refills, and a forked child never repeats its parent's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "keymgr/claims/claims.h"
#include "keymgr/common/error.h"

#define NOW 1800000000
#define ISS "https://auth.example.test/a\"b"
#define BASE "\"sub\":\"alice\",\"aud\":\"api.example.test\",\"client_id\":\"web\""

static const char *const auds[] = { "api.example.test", "x\\y" };

static km_claims_policy_t policy(const char *purpose)
{
	km_keyset_cfg_t k = { 0 };
	km_claims_policy_t pol;
	k.issuer = ISS;
	k.n_audiences = 0;
	assert_int_equal(km_claims_policy_init(&pol, "production", "api", purpose, &k, 3600),
	                 KM_EOK);
	pol.audiences = auds;
	pol.n_audiences = 2;
	return pol;
}

/* Both printers on one claims text; the jti (random) is compared by shape only. */
static void same_text(const char *purpose, const char *claims, int64_t ttl)
{
	km_claims_policy_t pol = policy(purpose);
	char err[512] = "";
	json_error_t je;
	json_t *in = json_loads(claims, JSON_REJECT_DUPLICATES, &je), *obj = NULL;
	char *text = NULL, *want;
	size_t len = 0;
	if (in == NULL)
		fail_msg("test claims do not parse: %s: %s", claims, je.text);
	assert_int_equal(km_claims_prepare_object(&pol, in, NOW, ttl, &obj, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(km_claims_prepare_text(&pol, in, NOW, ttl, &text, &len, err, sizeof(err)),
	                 KM_EOK);
	want = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_non_null(want);
	assert_int_equal(len, strlen(text));
	assert_int_equal(strlen(want), len);
	/* Everything up to the jti's value, then 22 base64url characters, then "}. */
	const char *jw = strstr(want, "\"jti\":\""), *jt = strstr(text, "\"jti\":\"");
	assert_non_null(jw);
	assert_non_null(jt);
	if ((size_t)(jt - text) != (size_t)(jw - want) || memcmp(text, want, (size_t)(jt - text)))
		fail_msg("printed differently:\n jansson: %s\n keymgr:  %s", want, text);
	assert_int_equal(strlen(jt), 7 + 22 + 2);
	assert_int_equal(strspn(jt + 7, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
	                 22);
	assert_string_equal(jt + 29, "\"}");
	free(want);
	free(text);
	json_decref(obj);
	json_decref(in);
}

static void test_print_matches_jansson_strings(void **state)
{
	(void)state;
	same_text("access-token", "{" BASE "}", 60);
	same_text("access-token", "{" BASE ",\"iss\":\"" "https://auth.example.test/a\\\"b" "\"}", 60);
	same_text("access-token", "{\"scope\":\"a/b c\"," BASE ",\"name\":\"\\\"q\\\" \\\\ \\/\"}",
	          60);
	/* Every control character, DEL, and UTF-8 of 2, 3 and 4 bytes (raw and escaped input). */
	char claims[2048];
	int n = snprintf(claims, sizeof(claims), "{" BASE ",\"ctl\":\"");
	for (int c = 1; c < 0x20; c++)
		n += snprintf(claims + n, sizeof(claims) - (size_t)n, "\\u%04x", c);
	snprintf(claims + n, sizeof(claims) - (size_t)n,
	         "\\u007f\",\"utf8\":\"é € 𝄞 \\u00e9 \\ud834\\udd1e\",\"k\\u0001\\\"ey\":\"v\"}");
	same_text("access-token", claims, 60);
	/* A long value: the printer's buffer grows. */
	char *big = malloc(70000);
	assert_non_null(big);
	n = snprintf(big, 70000, "{" BASE ",\"long\":\"");
	for (int i = 0; i < 4000; i++)
		n += snprintf(big + n, 70000 - (size_t)n, "ab\\n\\u0002é/");
	snprintf(big + n, 70000 - (size_t)n, "\"}");
	same_text("access-token", big, 60);
	free(big);
}

static void test_print_matches_jansson_values(void **state)
{
	(void)state;
	same_text("access-token", "{" BASE ",\"n\":0,\"neg\":-42,\"max\":9223372036854775807,"
	          "\"min\":-9223372036854775808,\"t\":true,\"f\":false,\"z\":null}", 60);
	same_text("access-token", "{" BASE ",\"r\":1.5,\"e\":1e300,\"nz\":-0.0,\"one\":1.0,"
	          "\"tiny\":5e-324,\"third\":0.3333333333333333}", 60);
	same_text("access-token", "{" BASE ",\"arr\":[1,\"two\",[3.5,{}],{\"b\":1,\"a\":[]}],"
	          "\"obj\":{\"z\":{\"y\":\"\\u0003\"},\"a\":[true,null]},\"empty\":{}}", 60);
	/* exp given (ttl 0) stays where the caller put it; keymgr's iat/nbf/jti follow. */
	same_text("access-token", "{\"exp\":1800000600," BASE ",\"acr\":\"1\"}", 0);
	same_text("id-token", "{\"sub\":\"s\",\"aud\":[\"api.example.test\",\"x\\\\y\"],"
	          "\"nonce\":\"n\",\"azp\":\"web\"}", 3600);
	same_text("logout-token", "{\"aud\":\"api.example.test\",\"sid\":\"s1\",\"events\":{"
	          "\"" KM_CLAIMS_BCL_EVENT "\":{}}}", 120);
}

static void test_print_refuses_like_object(void **state)
{
	static const char *const bad[] = {
		"{" BASE ",\"jti\":\"x\"}", "{" BASE ",\"aud\":\"other\"}",
		"{\"sub\":\"alice\",\"aud\":\"api.example.test\"}", "{" BASE ",\"iss\":\"x\"}",
		"{" BASE ",\"nonce\":\"n\"}", "[1]", "{" BASE ",\"exp\":1}",
	};
	km_claims_policy_t pol = policy("access-token");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char e1[512] = "", e2[512] = "";
		json_t *in = json_loads(bad[i], 0, NULL), *obj = (json_t *)0x1;
		char *text = (char *)0x1;
		size_t len = 7;
		assert_non_null(in);
		int r1 = km_claims_prepare_object(&pol, in, NOW, 60, &obj, e1, sizeof(e1));
		int r2 = km_claims_prepare_text(&pol, in, NOW, 60, &text, &len, e2, sizeof(e2));
		assert_int_not_equal(r1, KM_EOK);
		assert_int_equal(r1, r2);
		assert_string_equal(e1, e2);
		assert_ptr_equal(text, (char *)0x1);   /* untouched on refusal */
		assert_int_equal(len, 7);
		json_decref(in);
	}
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(km_claims_prepare_text(&pol, NULL, NOW, 60, &text, &len, NULL, 0),
	                 KM_EINVAL);
	json_t *in = json_object();
	assert_int_equal(km_claims_prepare_text(&pol, in, NOW, -1, &text, &len, NULL, 0), KM_EINVAL);
	json_decref(in);
}

static char *one_jti(void)
{
	km_claims_policy_t pol = policy("access-token");
	json_t *in = json_loads("{" BASE "}", 0, NULL);
	char *text = NULL, *out;
	size_t len;
	assert_int_equal(km_claims_prepare_text(&pol, in, NOW, 60, &text, &len, NULL, 0), KM_EOK);
	json_decref(in);
	out = strdup(strstr(text, "\"jti\":\"") + 7);
	out[22] = '\0';
	free(text);
	return out;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_print_jti_unique(void **state)
{
	(void)state;
	enum { N = 1000 };   /* several refills of the per-thread pool */
	char *j[N];
	for (int i = 0; i < N; i++)
		j[i] = one_jti();
	qsort(j, N, sizeof(j[0]), cmp_str);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(j[i - 1], j[i]);
	for (int i = 0; i < N; i++)
		free(j[i]);
}

static void test_print_jti_fork(void **state)
{
	(void)state;
	int p[2];
	char *first = one_jti(), child[23] = "";
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *j = one_jti();
		ssize_t w = write(p[1], j, 22);
		_exit(w == 22 ? 0 : 1);
	}
	close(p[1]);
	assert_int_equal(read(p[0], child, 22), 22);
	close(p[0]);
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	char *next = one_jti();
	/* Without the fork handler both would take the same slot of the inherited pool. */
	assert_string_not_equal(child, next);
	assert_string_not_equal(child, first);
	free(first);
	free(next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_print_matches_jansson_strings),
		cmocka_unit_test(test_print_matches_jansson_values),
		cmocka_unit_test(test_print_refuses_like_object),
		cmocka_unit_test(test_print_jti_unique),
		cmocka_unit_test(test_print_jti_fork),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
