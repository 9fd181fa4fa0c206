/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signing operations initialised ahead (pkcs11/prepare.c), through keymgr-p11fault wrapping
 * a real SoftHSM token: its call log shows which C_SignInit and C_Sign reached the token, on
 * which session and with which key. Each signature is verified with OpenSSL against the
 * public key of the key that had to sign it.
 *
 * Usage: test_fault_prepare PATH-TO-P11FAULT-MODULE
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "pkcs11/token.h"
#include "tests/common/softhsm.h"
#include "tests/fault/p11calls.h"
#include "tests/pkcs11/ossl_verify.h"

#define LABEL "keymgr-prepare"

typedef struct {
	km_alg_t alg;
	uint8_t id[KM_TOKEN_ID_LEN];
	km_pubkey_t pub;
} key_t_;

static km_test_softhsm_t hsm;
static const char *fault_module;
static km_token_t *one;         /* a pool of one session: every signature uses the same */
static km_token_t *two;         /* a pool of two */
static key_t_ a = { .alg = KM_ALG_ES256 }, b = { .alg = KM_ALG_ES384 },
              ed = { .alg = KM_ALG_EDDSA }, rsa = { .alg = KM_ALG_RS256 };
static const uint8_t msg[] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJwcmVwYXJlIn0";

static int sign_with(km_token_t *t, const key_t_ *k, uint8_t *sig, size_t *len)
{
	*len = 512;
	return km_token_sign(t, k->id, sizeof(k->id), k->alg, msg, sizeof(msg) - 1, sig, len);
}

/* Signs with k and checks the signature against k's public key. */
static void sign_ok(km_token_t *t, const key_t_ *k)
{
	uint8_t sig[512];
	size_t len;
	int r = sign_with(t, k, sig, &len);
	if (r != KM_EOK)
		fail_msg("sign: %s: %s", km_strerror(r), km_token_last_error(t));
	assert_true(test_ossl_verify(&k->pub, k->alg, msg, sizeof(msg) - 1, sig, len));
}

static km_token_t *open_pool(unsigned sessions)
{
	char err[512];
	km_token_t *t = NULL;
	km_token_cfg_t cfg = { .module_path = fault_module, .token_label = LABEL,
	                       .pin_source = hsm.pin_source, .sessions = sessions };
	if (km_token_open(&cfg, &t, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "km_token_open: %s\n", err);
		return NULL;
	}
	return t;
}

static int generate(key_t_ *k, const char *label)
{
	unsigned bits = k->alg == KM_ALG_RS256 ? 2048 : 0;
	if (km_token_generate(one, k->alg, bits, label, k->id, &k->pub) == KM_EOK)
		return 0;
	fprintf(stderr, "generate %s: %s\n", label, km_token_last_error(one));
	return -1;
}

static int group_setup(void **state)
{
	(void)state;
	if (km_test_softhsm_create(&hsm, LABEL) != 0)
		return -1;
	p11calls_init(hsm.dir, hsm.module);
	if ((one = open_pool(1)) == NULL || (two = open_pool(2)) == NULL)
		return -1;
	if (generate(&a, "keymgr:test/a") || generate(&b, "keymgr:test/b") ||
	    generate(&ed, "keymgr:test/ed") || generate(&rsa, "keymgr:test/rsa"))
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	km_token_free(two);
	km_token_free(one);
	km_test_softhsm_destroy(&hsm);
	return 0;
}

/* Before each test: both pools opened anew (nothing prepared, nothing cached), no fault
 * rule, an empty call log. */
static int test_setup(void **state)
{
	(void)state;
	p11calls_rules("");
	km_token_free(two);
	km_token_free(one);
	if ((one = open_pool(1)) == NULL || (two = open_pool(2)) == NULL)
		return -1;
	p11calls_reset();
	return 0;
}

/* The C_SignInit lines of log naming key handle h (any, when h is 0). */
static size_t inits_with(const char *log, unsigned long h)
{
	size_t n = 0;
	for (const char *p = strstr(log, "C_SignInit "); p != NULL;
	     p = strstr(p + 1, "C_SignInit ")) {
		const char *eol = strchr(p, '\n'), *k = strstr(p, " key=");
		if (k != NULL && (eol == NULL || k < eol) && strstr(p, " rv=0x0 ") == strchr(p, ' ') &&
		    (h == 0 || strtoul(k + 5, NULL, 10) == h))
			n++;
	}
	return n;
}

/* The key handle of the first successful C_SignInit in log (0: none). */
static unsigned long first_init_key(const char *log)
{
	const char *p = strstr(log, "C_SignInit rv=0x0 ");
	const char *k = p ? strstr(p, " key=") : NULL;
	return k ? strtoul(k + 5, NULL, 10) : 0;
}

/*
 * log shows a prepared operation ended without a signature, then one signature: a failed
 * C_SignUpdate (which ends it), a length query answered CKR_OPERATION_NOT_INITIALIZED
 * (ended), and then one C_SignInit and one C_Sign, in that order.
 */
static void expect_ended_unsigned(const char *log)
{
	const char *upd = strstr(log, "C_SignUpdate rv=0x91 "), *query = strstr(log, "C_Sign rv=0x91 ");
	const char *init = strstr(log, "C_SignInit rv=0x0 "), *sign = strstr(log, "C_Sign rv=0x0 ");
	if (upd == NULL || query == NULL || init == NULL || sign == NULL || !(upd < query) ||
	    !(query < init) || !(init < sign) || p11calls_count(log, "C_Sign rv=0x0") != 1 ||
	    p11calls_count(log, "C_SignFinal") != 0)
		fail_msg("expected: C_SignUpdate failing, a length query saying it ended, then one "
		         "C_SignInit and one C_Sign, no other signature:\n%s", log);
}

/* What the fault module logged since the last reset, then a reset. */
static char *calls_take(void)
{
	char *log = p11calls_read();
	p11calls_reset();
	return log;
}

/* The calls since the last take ran exactly n successful C_SignInit (any key). */
static void expect_inits(size_t n)
{
	char *log = calls_take();
	if (inits_with(log, 0) != n)
		fail_msg("expected %zu successful C_SignInit, the token saw:\n%s", n, log);
	free(log);
}

/* The next signature with the same key consumes the prepared operation: C_Sign only. */
static void test_prepare_consumed_by_next_signature(void **state)
{
	(void)state;
	sign_ok(one, &a);
	char *log = calls_take();
	unsigned long ha = first_init_key(log);
	assert_int_not_equal(ha, 0);
	free(log);

	assert_int_equal(km_token_prepare(one, 4), 1);
	log = calls_take();
	assert_int_equal(inits_with(log, ha), 1);
	assert_int_equal(p11calls_count(log, "C_Sign "), 0);
	free(log);

	sign_ok(one, &a);
	log = calls_take();
	if (inits_with(log, 0) != 0 || p11calls_count(log, "C_Sign rv=0x0") != 1)
		fail_msg("a prepared signature ran C_SignInit again, or not exactly one C_Sign:\n%s",
		         log);
	free(log);

	/* The signature leaves the session to prepare again; nothing else is prepared twice. */
	assert_int_equal(km_token_prepare(one, 4), 1);
	assert_int_equal(km_token_prepare(one, 4), 0);
	sign_ok(one, &a);
	/* EdDSA is prepared the same way. */
	sign_ok(one, &ed);
	assert_int_equal(km_token_prepare(one, 4), 1);
	p11calls_reset();
	sign_ok(one, &ed);
	expect_inits(0);
}

/* A signature with another key (or algorithm) never consumes an operation prepared for the
 * first: it is ended, without a signature, then the right key is initialised, and the
 * signature verifies with the right key only. */
static void test_prepare_other_key_finishes_it(void **state)
{
	uint8_t sig[512];
	size_t len;
	(void)state;
	sign_ok(one, &a);
	char *log = calls_take();
	unsigned long ha = first_init_key(log);
	free(log);
	assert_int_equal(km_token_prepare(one, 4), 1);
	p11calls_reset();

	assert_int_equal(sign_with(one, &b, sig, &len), KM_EOK);
	assert_true(test_ossl_verify(&b.pub, b.alg, msg, sizeof(msg) - 1, sig, len));
	assert_false(test_ossl_verify(&a.pub, a.alg, msg, sizeof(msg) - 1, sig, len));
	log = calls_take();
	expect_ended_unsigned(log);
	if (inits_with(log, 0) != 1 || inits_with(log, ha) != 0)
		fail_msg("expected one C_SignInit, with b's key:\n%s", log);
	free(log);

	/* Asked for another algorithm with b's key: refused as always (a P-384 key cannot sign
	 * ES256), and the operation prepared for b stays for b. */
	assert_int_equal(km_token_prepare(one, 4), 1);      /* prepared for b now */
	key_t_ wrong = b;
	wrong.alg = KM_ALG_ES256;
	assert_int_not_equal(sign_with(one, &wrong, sig, &len), KM_EOK);
	sign_ok(one, &b);
}

/* With a free session that holds nothing, another key takes that one: nothing finished. */
static void test_prepare_left_for_its_key(void **state)
{
	(void)state;
	sign_ok(two, &a);
	assert_int_equal(km_token_prepare(two, 4), 1);
	p11calls_reset();
	sign_ok(two, &b);
	char *log = calls_take();
	if (p11calls_count(log, "C_Sign ") != 1 || inits_with(log, 0) != 1)
		fail_msg("signing with b disturbed the session prepared for a:\n%s", log);
	free(log);
	sign_ok(two, &a);
	log = calls_take();
	if (inits_with(log, 0) != 0)
		fail_msg("the session prepared for a was not used for a:\n%s", log);
	free(log);
}

/* At most max sessions are prepared per call. */
static void test_prepare_at_most_max(void **state)
{
	uint8_t sig[2][512];
	size_t len[2];
	(void)state;
	/* Two signatures at once would need two threads; one after the other on a pool of two
	 * reuse one session, so mark the second one through a signature while the first is held
	 * prepared for another key. */
	sign_ok(two, &a);
	assert_int_equal(km_token_prepare(two, 4), 1);   /* session 1 READY for a */
	assert_int_equal(sign_with(two, &b, sig[0], &len[0]), KM_EOK);   /* session 2, PENDING */
	assert_int_equal(sign_with(two, &a, sig[1], &len[1]), KM_EOK);   /* session 1, PENDING */
	assert_int_equal(km_token_prepare(two, 1), 1);
	assert_int_equal(km_token_prepare(two, 0), 0);
	assert_int_equal(km_token_prepare(two, 4), 1);
	assert_int_equal(km_token_prepare(two, 4), 0);
	sign_ok(two, &a);
	sign_ok(two, &b);
}

/* Any other use of a session (here a key search) ends the prepared operation first. */
static void test_prepare_finished_before_other_operations(void **state)
{
	key_t_ c = { .alg = KM_ALG_ES256 };
	km_pubkey_t p;
	(void)state;
	assert_int_equal(km_token_generate(two, c.alg, 0, "keymgr:test/c", c.id, &c.pub), KM_EOK);
	sign_ok(one, &a);                   /* one's cache has a, not c: c is searched for */
	assert_int_equal(km_token_prepare(one, 4), 1);
	p11calls_reset();
	assert_int_equal(km_token_get_public(one, c.id, sizeof(c.id), &p), KM_EOK);
	assert_int_equal(p.x_len, c.pub.x_len);
	assert_memory_equal(p.x, c.pub.x, p.x_len);
	char *log = calls_take();
	const char *find = strstr(log, "C_FindObjectsInit rv=0x0"),
	           *query = strstr(log, "C_Sign rv=0x91 ");
	if (find == NULL || query == NULL || query > find || p11calls_count(log, "C_Sign rv=0x0"))
		fail_msg("the search did not come after the operation ended unsigned:\n%s", log);
	free(log);
	sign_ok(one, &c);
	assert_int_equal(km_token_destroy(one, c.id, sizeof(c.id)), KM_EOK);
}

/* A key destroyed after its operation was prepared does not sign. */
static void test_prepare_not_used_after_destroy(void **state)
{
	key_t_ d = { .alg = KM_ALG_ES256 };
	uint8_t sig[512];
	size_t len;
	(void)state;
	assert_int_equal(km_token_generate(one, d.alg, 0, "keymgr:test/d", d.id, &d.pub), KM_EOK);
	sign_ok(one, &d);
	assert_int_equal(km_token_prepare(one, 4), 1);
	assert_int_equal(km_token_destroy(one, d.id, sizeof(d.id)), KM_EOK);
	assert_int_equal(sign_with(one, &d, sig, &len), KM_P11_ENOKEY);
	sign_ok(one, &a);
}

/* An operation prepared more than KM_TOKEN_PREPARED_MAX_AGE_MS (1 s) ago is finished and the key
 * initialised again, which checks the key object still exists. */
static void test_prepare_too_old_is_redone(void **state)
{
	(void)state;
	sign_ok(one, &a);
	assert_int_equal(km_token_prepare(one, 4), 1);
	usleep(1200 * 1000);
	p11calls_reset();
	sign_ok(one, &a);
	char *log = calls_take();
	expect_ended_unsigned(log);
	free(log);
}

/* A token that refuses C_SignUpdate but keeps the operation active (against PKCS#11; the
 * fault module answers without calling SoftHSM): the length query finds it active, and it
 * is finished by a signature over zero bytes. The next signature then works. */
static void test_prepare_kept_by_token_is_finished(void **state)
{
	(void)state;
	sign_ok(one, &a);
	assert_int_equal(km_token_prepare(one, 4), 1);
	p11calls_rules("C_SignUpdate:CKR_FUNCTION_FAILED:count=1");
	p11calls_reset();
	sign_ok(one, &b);
	p11calls_rules("");
	char *log = calls_take();
	if (strstr(log, "C_SignUpdate rv=0x6 ") == NULL || strstr(log, "rv=0x90 ") != NULL ||
	    p11calls_count(log, "C_Sign rv=0x0") != 3 || inits_with(log, 0) != 1)
		fail_msg("expected: the update refused, a length query, a finishing C_Sign, then "
		         "C_SignInit and C_Sign, and no CKR_OPERATION_ACTIVE:\n%s", log);
	free(log);
	sign_ok(one, &a);
}

/* A token that drops a prepared operation on its own (some end idle ones) answers the
 * C_Sign CKR_OPERATION_NOT_INITIALIZED: the signature is made as without preparation. (The
 * fault module answers without calling SoftHSM, whose operation stays active: it is ended
 * first.) */
static void test_prepare_dropped_by_token(void **state)
{
	(void)state;
	sign_ok(one, &a);
	assert_int_equal(km_token_prepare(one, 4), 1);
	p11calls_rules("C_Sign:CKR_OPERATION_NOT_INITIALIZED:count=1");
	p11calls_reset();
	sign_ok(one, &a);
	p11calls_rules("");
	char *log = calls_take();
	if (strstr(log, "C_Sign rv=0x91 ") == NULL || inits_with(log, 0) != 1 ||
	    p11calls_count(log, "C_Sign rv=0x0") != 1 || strstr(log, "rv=0x90 ") != NULL)
		fail_msg("expected: C_Sign refused, the operation ended, C_SignInit and C_Sign:\n%s",
		         log);
	free(log);
}

/* RSA keys are not prepared (an unused prepared RSA operation costs a whole signature),
 * and an RSA signature on a session that was waiting to be prepared clears it. */
static void test_prepare_skips_rsa(void **state)
{
	(void)state;
	sign_ok(one, &a);
	sign_ok(one, &rsa);
	assert_int_equal(km_token_prepare(one, 4), 0);
	expect_inits(2);
	sign_ok(one, &rsa);
	expect_inits(1);
}

/* The session of a prepared operation lost: that signature is made again after a re-open of
 * the sessions, with a fresh C_SignInit. */
static void test_prepare_session_lost(void **state)
{
	(void)state;
	sign_ok(one, &a);
	assert_int_equal(km_token_prepare(one, 4), 1);
	p11calls_rules("C_Sign:CKR_SESSION_HANDLE_INVALID:count=1");
	p11calls_reset();
	sign_ok(one, &a);
	p11calls_rules("");
	char *log = calls_take();
	if (p11calls_count(log, "C_OpenSession ") == 0 || inits_with(log, 0) != 1)
		fail_msg("no re-open and fresh C_SignInit after the loss:\n%s", log);
	free(log);
	/* Nothing is prepared while the sessions are lost; after the re-open, as before. */
	assert_int_equal(km_token_prepare(one, 4), 1);
	sign_ok(one, &a);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s P11FAULT-MODULE\n", argv[0]);
		return 2;
	}
	fault_module = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_prepare_consumed_by_next_signature, test_setup),
		cmocka_unit_test_setup(test_prepare_other_key_finishes_it, test_setup),
		cmocka_unit_test_setup(test_prepare_left_for_its_key, test_setup),
		cmocka_unit_test_setup(test_prepare_at_most_max, test_setup),
		cmocka_unit_test_setup(test_prepare_finished_before_other_operations, test_setup),
		cmocka_unit_test_setup(test_prepare_not_used_after_destroy, test_setup),
		cmocka_unit_test_setup(test_prepare_too_old_is_redone, test_setup),
		cmocka_unit_test_setup(test_prepare_kept_by_token_is_finished, test_setup),
		cmocka_unit_test_setup(test_prepare_dropped_by_token, test_setup),
		cmocka_unit_test_setup(test_prepare_skips_rsa, test_setup),
		cmocka_unit_test_setup(test_prepare_session_lost, test_setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
