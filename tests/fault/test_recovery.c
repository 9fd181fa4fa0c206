/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Re-opening lost sessions in the token layer (pkcs11/recover.c), through keymgr-p11fault
 * wrapping a real SoftHSM token. The fault module's call log (KEYMGR_P11FAULT_CALLS) shows
 * every Cryptoki call with its session and object handles, so the tests check what really
 * reached the token: after a re-open the key is searched again, and every C_SignInit uses a
 * session opened by the re-open and a key handle found after it.
 *
 * Usage: test_fault_recovery PATH-TO-P11FAULT-MODULE
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "pkcs11/token.h"
#include "tests/common/softhsm.h"
#include "tests/fault/p11calls.h"
#include "tests/pkcs11/ossl_verify.h"

#define LABEL "keymgr-recover"

static km_test_softhsm_t hsm;
static const char *fault_module;
static km_token_t *tok;
static uint8_t kid[KM_TOKEN_ID_LEN];
static km_pubkey_t pub;
static const uint8_t msg[] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyZWNvdmVyIn0";

static int sign_once(km_token_t *t, uint8_t *sig, size_t *len)
{
	*len = 64;
	return km_token_sign(t, kid, sizeof(kid), KM_ALG_ES256, msg, sizeof(msg) - 1, sig, len);
}

static void sign_ok(km_token_t *t)
{
	uint8_t sig[64];
	size_t len;
	int r = sign_once(t, sig, &len);
	if (r != KM_EOK)
		fail_msg("sign: %s: %s", km_strerror(r), km_token_last_error(t));
	assert_true(test_ossl_verify(&pub, KM_ALG_ES256, msg, sizeof(msg) - 1, sig, len));
}

static int group_setup(void **state)
{
	char err[512];
	(void)state;
	if (km_test_softhsm_create(&hsm, LABEL) != 0)
		return -1;
	p11calls_init(hsm.dir, hsm.module);
	km_token_cfg_t cfg = { .module_path = fault_module, .token_label = LABEL,
	                       .pin_source = hsm.pin_source, .sessions = 2 };
	if (km_token_open(&cfg, &tok, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "km_token_open: %s\n", err);
		return -1;
	}
	if (km_token_generate(tok, KM_ALG_ES256, 0, "keymgr:test/recover", kid, &pub) != KM_EOK) {
		fprintf(stderr, "generate: %s\n", km_token_last_error(tok));
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	km_token_free(tok);
	km_test_softhsm_destroy(&hsm);
	return 0;
}

/* Before each test: the token works, no fault rule, an empty call log. */
static int test_setup(void **state)
{
	(void)state;
	p11calls_rules("");
	km_token_health_t h;
	for (int i = 0; i < 400; i++) {
		km_token_get_health(tok, &h);
		if (!h.lost || km_token_recover(tok) == KM_EOK)
			break;
		usleep(100 * 1000);   /* a previous test left it lost: wait out its backoff */
	}
	km_token_get_health(tok, &h);
	assert_false(h.lost);
	p11calls_reset();
	return 0;
}

/* Numbers after "word=" on the lines of log starting at from (comma lists included). */
static size_t handles_of(const char *from, const char *func, const char *word,
                         unsigned long *out, size_t max)
{
	size_t n = 0;
	for (const char *p = from; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (strncmp(p, func, strlen(func)) != 0 || p[strlen(func)] != ' ')
			continue;
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)len, p);
		if (strstr(line, " FAULT") != NULL)
			continue;
		char *w = strstr(line, word);
		if (w == NULL)
			continue;
		for (char *q = w + strlen(word); n < max;) {
			char *end;
			unsigned long v = strtoul(q, &end, 10);
			if (end == q)
				break;
			out[n++] = v;
			if (*end != ',')
				break;
			q = end + 1;
		}
	}
	return n;
}

static bool contains(const unsigned long *a, size_t n, unsigned long v)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] == v)
			return true;
	return false;
}

/*
 * Checks the log from the first injected fault on: a re-open happened (sessions opened, login
 * repeated), the key was searched again, and every later C_SignInit ran on a session opened by
 * the re-open with a key handle found after it. Returns the number of such C_SignInit lines.
 */
static size_t check_fresh_handles(const char *log, const char *fault_func)
{
	char marker[64];
	snprintf(marker, sizeof(marker), "%s rv=", fault_func);
	const char *f = NULL;
	for (const char *p = log; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		const char *eol = strchr(p, '\n');
		if (strncmp(p, marker, strlen(marker)) == 0 && eol != NULL &&
		    memmem(p, (size_t)(eol - p), " FAULT", 6) != NULL) {
			f = eol + 1;
			break;
		}
	}
	if (f == NULL)
		fail_msg("no injected %s in the call log:\n%s", fault_func, log);
	unsigned long before_keys[64], opened[64], found[256], used_keys[64], used_sessions[64];
	char *prefix = strndup(log, (size_t)(f - log));
	assert_non_null(prefix);
	size_t n_before = handles_of(prefix, "C_SignInit", "key=", before_keys, 64);
	free(prefix);
	size_t n_open = handles_of(f, "C_OpenSession", "opened=", opened, 64);
	size_t n_found = handles_of(f, "C_FindObjects", "found=", found, 256);
	size_t n_used = handles_of(f, "C_SignInit", "key=", used_keys, 64);
	handles_of(f, "C_SignInit", "session=", used_sessions, 64);
	if (n_open < 3)   /* the admin session and the two pool sessions */
		fail_msg("no re-open after the fault (%zu sessions opened):\n%s", n_open, log);
	if (p11calls_count(f, "C_Login ") == 0)
		fail_msg("the login was not repeated after the fault:\n%s", log);
	if (n_found == 0)
		fail_msg("the key was not searched again after the re-open:\n%s", log);
	assert_true(n_used > 0);
	for (size_t i = 0; i < n_used; i++) {
		if (!contains(found, n_found, used_keys[i]))
			fail_msg("C_SignInit used key handle %lu, not found after the re-open:\n%s",
			         used_keys[i], log);
		if (!contains(opened, n_open, used_sessions[i]))
			fail_msg("C_SignInit used session %lu, not opened by the re-open:\n%s",
			         used_sessions[i], log);
		/* SoftHSM numbers the objects anew once all sessions of the slot closed. */
		if (contains(before_keys, n_before, used_keys[i]))
			fail_msg("C_SignInit used key handle %lu from before the re-open:\n%s",
			         used_keys[i], log);
	}
	return n_used;
}

static unsigned open_sessions(km_token_t *t, unsigned *wanted)
{
	km_token_health_t h;
	km_token_get_health(t, &h);
	*wanted = h.sessions_wanted;
	return h.sessions;
}

/*
 * A token out of sessions (the fault module's LIMIT: CKR_SESSION_COUNT beyond N sessions of
 * the process, as YubiHSM 2 answers past its 16): a second token of 4 signing sessions opens
 * with the one that fits and signs; km_token_check() grows its pool back as places free up;
 * a re-open while sessions are short opens fewer again. Runs first: the group's token holds
 * its 3 sessions (admin and 2 signing), nothing else is open.
 */
static void test_recovery_pool_shrinks_on_session_count_and_grows_back(void **state)
{
	char err[512];
	unsigned wanted;
	km_token_t *t2 = NULL;
	km_token_cfg_t cfg = { .module_path = fault_module, .token_label = LABEL,
	                       .pin_source = hsm.pin_source, .sessions = 4 };
	(void)state;
	p11calls_rules("C_OpenSession:LIMIT=5");
	if (km_token_open(&cfg, &t2, err, sizeof(err)) != KM_EOK)
		fail_msg("km_token_open with 2 sessions left: %s", err);
	assert_int_equal(open_sessions(t2, &wanted), 1);
	assert_int_equal(wanted, 4);
	for (int i = 0; i < 3; i++)
		sign_ok(t2);

	p11calls_rules("C_OpenSession:LIMIT=7");
	for (int i = 0; i < 3; i++)
		assert_int_equal(km_token_check(t2), KM_EOK);
	assert_int_equal(open_sessions(t2, &wanted), 3);   /* as many as the token allows */
	p11calls_rules("");
	for (int i = 0; i < 3; i++)
		assert_int_equal(km_token_check(t2), KM_EOK);
	assert_int_equal(open_sessions(t2, &wanted), 4);   /* never more than wanted */
	sign_ok(t2);

	/* Every session of the slot dropped (both tokens'), then 3 places: the re-open keeps
	 * its admin session and 2 signing ones, and the signature is made on one of them. */
	p11calls_rules("C_OpenSession:LIMIT=3\nC_SignInit:DROP:count=1");
	sign_ok(t2);
	assert_int_equal(open_sessions(t2, &wanted), 2);
	p11calls_rules("");
	km_token_free(t2);
	/* The group's token lost its sessions to the DROP too: it notices and re-opens. */
	assert_int_not_equal(km_token_check(tok), KM_EOK);
	assert_int_equal(km_token_recover(tok), KM_EOK);
}

/* One injected CKR_SESSION_HANDLE_INVALID at C_Sign: the signature is made again, once,
 * after the sessions were re-opened; the caller sees only that it signed. A second loss
 * during the retry is reported. */
static void test_recovery_sign_after_session_handle_invalid(void **state)
{
	uint8_t sig[64];
	size_t len;
	km_token_health_t h0, h;
	(void)state;
	km_token_get_health(tok, &h0);
	sign_ok(tok);                                  /* the handle is cached */
	p11calls_rules("C_Sign:CKR_SESSION_HANDLE_INVALID:count=1");
	sign_ok(tok);
	km_token_get_health(tok, &h);
	assert_false(h.lost);
	assert_int_equal(h.recoveries, h0.recoveries + 1);
	char *log = p11calls_read();
	check_fresh_handles(log, "C_Sign");
	free(log);
	/* retried once only: a token that closes the new session too is reported */
	p11calls_rules("C_Sign:CKR_SESSION_HANDLE_INVALID:count=2");
	int r = sign_once(tok, sig, &len);
	assert_int_equal(r, KM_P11_ESESSION);
	assert_non_null(strstr(km_token_last_error(tok), "CKR_SESSION_HANDLE_INVALID"));
	assert_non_null(strstr(km_token_last_error(tok), "token '" LABEL "'"));
	km_token_get_health(tok, &h);
	assert_true(h.lost);
}

/*
 * DROP: the module really closes every session of the slot (and logs out), as a re-plugged
 * token does. The old session and key handles are dead in SoftHSM itself; the signature is
 * made again after the re-open, and the next ones work.
 */
static void test_recovery_sign_after_real_session_loss(void **state)
{
	(void)state;
	sign_ok(tok);
	p11calls_rules("C_SignInit:DROP:count=1");
	sign_ok(tok);
	sign_ok(tok);
	char *log = p11calls_read();
	assert_int_equal(check_fresh_handles(log, "C_SignInit"), 2);
	/* Apart from closing the dead sessions, every call after the fault succeeded: nothing
	 * used a dead session or key handle. */
	const char *f = strstr(log, " FAULT\n");
	assert_non_null(f);
	for (const char *p = f + 7; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "") {
		if (strncmp(p, "C_CloseSession ", 15) == 0)
			continue;
		if (strncmp(p, "C_Login rv=0x100 ", 17) == 0)   /* ALREADY_LOGGED_IN: accepted */
			continue;
		if (strncmp(strchr(p, ' '), " rv=0x0 ", 8) != 0)
			fail_msg("a call after the re-open failed:\n%s", log);
	}
	free(log);
}

/* The login lost (CKR_USER_NOT_LOGGED_IN): re-opened, logged in again, and key generation,
 * listing and public key reads work too, not only signing. */
static void test_recovery_not_logged_in_admin_operations(void **state)
{
	uint8_t sig[64], id2[KM_TOKEN_ID_LEN];
	size_t len, n = 0;
	km_pubkey_t p2;
	km_token_key_info_t *keys = NULL;
	(void)state;
	p11calls_rules("C_Sign:CKR_USER_NOT_LOGGED_IN:count=1");
	assert_int_equal(sign_once(tok, sig, &len), KM_P11_ENOTLOGGEDIN);
	/* The next operation is a listing: it re-opens the sessions first. */
	assert_int_equal(km_token_list_keys(tok, &keys, &n), KM_EOK);
	assert_true(n >= 1);
	free(keys);
	char *log = p11calls_read();
	assert_true(p11calls_count(log, "C_Login ") >= 1);
	free(log);
	assert_int_equal(km_token_generate(tok, KM_ALG_ES256, 0, "keymgr:test/second", id2, &p2),
	                 KM_EOK);
	km_pubkey_t again;
	assert_int_equal(km_token_get_public(tok, kid, sizeof(kid), &again), KM_EOK);
	assert_memory_equal(&again, &pub, sizeof(pub));
	sign_ok(tok);
	assert_int_equal(km_token_destroy(tok, id2, sizeof(id2)), KM_EOK);
}

/*
 * The token stays away (every call fails with CKR_DEVICE_REMOVED): each re-open attempt fails
 * and doubles the wait (100, 200, 400, 800 ms, as the messages say; the first attempt is the
 * failed signature's own retry); calls made during the wait fail at once without reaching
 * the token; once the token is back, signing works.
 */
static void test_recovery_backoff_while_token_gone(void **state)
{
	uint8_t sig[64];
	size_t len;
	km_token_health_t h;
	(void)state;
	sign_ok(tok);
	p11calls_rules("*:CKR_DEVICE_REMOVED");
	km_token_get_health(tok, &h);
	unsigned long failed0 = h.failed_attempts;
	assert_int_equal(sign_once(tok, sig, &len), KM_P11_EDEVICE);
	assert_non_null(strstr(km_token_last_error(tok), "CKR_DEVICE_REMOVED"));
	assert_non_null(strstr(km_token_last_error(tok), "re-open failed; next attempt in 100 ms"));
	km_token_get_health(tok, &h);
	assert_int_equal(h.failed_attempts, failed0 + 1);
	static const unsigned delays[] = { 200, 400, 800 };
	for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
		/* Wait until an attempt is allowed (polling the health, not a clock). */
		for (int w = 0; w < 1000; w++) {
			km_token_get_health(tok, &h);
			if (h.retry_in_ms == 0)
				break;
			usleep(20 * 1000);
		}
		unsigned long failed = h.failed_attempts;
		assert_int_not_equal(sign_once(tok, sig, &len), KM_EOK);
		km_token_get_health(tok, &h);
		assert_true(h.lost);
		assert_int_equal(h.failed_attempts, failed + 1);
		char want[64];
		snprintf(want, sizeof(want), "re-open failed; next attempt in %u ms", delays[i]);
		if (strstr(km_token_last_error(tok), want) == NULL)
			fail_msg("attempt %zu: expected '%s' in: %s", i + 1, want,
			         km_token_last_error(tok));
	}
	/* Inside the 800 ms wait: 100 calls, no token call at all, the same attempt count. */
	char *log = p11calls_read();
	size_t lines = p11calls_count(log, "C_");
	free(log);
	unsigned long failed = h.failed_attempts;
	for (int i = 0; i < 100; i++) {
		assert_int_not_equal(sign_once(tok, sig, &len), KM_EOK);
		if (strstr(km_token_last_error(tok), "next re-open attempt in") == NULL)
			fail_msg("call %d during the backoff: %s", i, km_token_last_error(tok));
	}
	log = p11calls_read();
	assert_int_equal(p11calls_count(log, "C_"), lines);
	free(log);
	km_token_get_health(tok, &h);
	assert_int_equal(h.failed_attempts, failed);
	/* The token comes back. */
	p11calls_rules("");
	for (int w = 0; w < 1000; w++) {
		km_token_get_health(tok, &h);
		if (h.retry_in_ms == 0)
			break;
		usleep(20 * 1000);
	}
	sign_ok(tok);
	km_token_get_health(tok, &h);
	assert_false(h.lost);
}

/* A locked PIN at the re-open: a clear error naming it (never the PIN); later it works. */
static void test_recovery_pin_locked_at_login(void **state)
{
	uint8_t sig[64];
	size_t len;
	km_token_health_t h;
	(void)state;
	sign_ok(tok);
	p11calls_rules("C_Sign:CKR_USER_NOT_LOGGED_IN:count=1\nC_Login:CKR_PIN_LOCKED");
	assert_int_equal(sign_once(tok, sig, &len), KM_P11_ENOTLOGGEDIN);
	assert_int_equal(sign_once(tok, sig, &len), KM_P11_EPINLOCKED);
	const char *e = km_token_last_error(tok);
	assert_non_null(strstr(e, "CKR_PIN_LOCKED"));
	assert_non_null(strstr(e, "re-open"));
	FILE *pf = fopen(hsm.pin_source + 5, "r");
	char pin[128] = "";
	assert_non_null(pf);
	assert_non_null(fgets(pin, sizeof(pin), pf));
	fclose(pf);
	pin[strcspn(pin, "\n")] = '\0';
	assert_null(strstr(e, pin));
	p11calls_rules("");
	for (int w = 0; w < 1000; w++) {
		km_token_get_health(tok, &h);
		if (h.retry_in_ms == 0)
			break;
		usleep(20 * 1000);
	}
	sign_ok(tok);
}

/*
 * A refused PIN at the re-login (CKR_PIN_INCORRECT) is not tried again by later calls, even
 * after the backoff would have allowed it (a real token locks the PIN after a few wrong
 * ones); km_token_recover() tries again.
 */
static void test_recovery_refused_pin_not_retried(void **state)
{
	uint8_t sig[64];
	size_t len;
	(void)state;
	sign_ok(tok);
	p11calls_rules("C_Sign:CKR_USER_NOT_LOGGED_IN:count=1\nC_Login:CKR_PIN_INCORRECT");
	assert_int_equal(sign_once(tok, sig, &len), KM_P11_ENOTLOGGEDIN);
	assert_int_equal(sign_once(tok, sig, &len), KM_P11_ELOGIN);
	assert_non_null(strstr(km_token_last_error(tok), "not tried again automatically"));
	char *log = p11calls_read();
	size_t logins = p11calls_count(log, "C_Login ");
	free(log);
	assert_int_equal(logins, 1);
	/* Ten times the first backoff step passes, calls keep coming: no new login. */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(sign_once(tok, sig, &len), KM_P11_ELOGIN);
		usleep(50 * 1000);
	}
	log = p11calls_read();
	assert_int_equal(p11calls_count(log, "C_Login "), logins);
	free(log);
	p11calls_rules("");
	assert_int_equal(km_token_recover(tok), KM_EOK);
	sign_ok(tok);
}

/* km_token_check reaches the token and notices sessions dropped behind our back. */
static void test_recovery_check_notices_loss(void **state)
{
	km_token_health_t h;
	(void)state;
	assert_int_equal(km_token_check(tok), KM_EOK);
	p11calls_rules("C_GetSessionInfo:DROP:count=1");
	assert_int_equal(km_token_check(tok), KM_P11_ESESSION);
	assert_non_null(strstr(km_token_last_error(tok), "C_GetSessionInfo (check)"));
	km_token_get_health(tok, &h);
	assert_true(h.lost);
	assert_int_equal(km_token_check(tok), KM_EOK);   /* re-opened by the check itself */
	km_token_get_health(tok, &h);
	assert_false(h.lost);
	sign_ok(tok);
}

typedef struct {
	int ok, lost, other;
	int other_code;
} worker_t;

/* Signs until 300 good signatures (a failed call waits 1 ms, as a client would), at most
 * 5,000 calls. */
static void *signer(void *arg)
{
	worker_t *w = arg;
	uint8_t sig[64];
	size_t len;
	for (int i = 0; i < 5000 && w->ok < 300; i++) {
		int r = sign_once(tok, sig, &len);
		if (r == KM_EOK && test_ossl_verify(&pub, KM_ALG_ES256, msg, sizeof(msg) - 1, sig, len))
			w->ok++;
		else if (r == KM_P11_ESESSION || r == KM_P11_ENOTLOGGEDIN)
			w->lost++;
		else {
			w->other++;
			w->other_code = r;
		}
		if (r != KM_EOK)
			usleep(1000);
	}
	return NULL;
}

/* Four threads sign while the sessions are lost twice: the losses are recovered (a signature
 * that met one is made again on re-opened sessions, so a signer rarely sees it), at most
 * lost-session errors reach the signers, then good signatures again (and no crash or race
 * under the sanitizers). */
static void test_recovery_concurrent_signers(void **state)
{
	pthread_t th[4];
	worker_t w[4];
	km_token_health_t h0, h1;
	(void)state;
	memset(w, 0, sizeof(w));
	km_token_get_health(tok, &h0);
	p11calls_reset();
	/*
	 * Sessions are reported lost while the other threads keep signing. No DROP here: a real
	 * C_CloseAllSessions while other threads are inside C_Sign crashes SoftHSM 2.6.1 itself
	 * (SoftHSMv2#688), which is why the token layer drains the pool before it re-opens.
	 */
	p11calls_rules("C_SignInit:CKR_SESSION_HANDLE_INVALID:after=100:count=1\n"
	      "C_Sign:CKR_SESSION_HANDLE_INVALID:after=400:count=1");
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, signer, &w[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	int ok = 0, lost = 0, other = 0, code = KM_EOK;
	for (int i = 0; i < 4; i++) {
		ok += w[i].ok;
		lost += w[i].lost;
		other += w[i].other;
		if (w[i].other)
			code = w[i].other_code;
	}
	/*
	 * Calls made while the pool is being re-opened may fail with another token error.
	 * Never a key-level error: a stale handle would show as KM_P11_ENOKEY or KM_EALG.
	 */
	char *log = p11calls_read();
	size_t init_lost = p11calls_count(log, "C_SignInit rv=0xb3 ");
	size_t sign_lost = p11calls_count(log, "C_Sign rv=0xb3 ");
	free(log);
	km_token_get_health(tok, &h1);
	if (other > 4 || code == KM_P11_ENOKEY || code == KM_EALG || ok != 4 * 300 ||
	    init_lost < 1 || sign_lost < 1 || h1.recoveries < h0.recoveries + 1)
		fail_msg("%d good signatures, %d lost-session errors, %d other failures (last: %s); "
		         "losses injected: C_SignInit %zu, C_Sign %zu; recoveries %lu -> %lu", ok,
		         lost, other, km_strerror(code), init_lost, sign_lost,
		         (unsigned long)h0.recoveries, (unsigned long)h1.recoveries);
	p11calls_rules("");
	sign_ok(tok);
}

/*
 * A token that closes sessions idle for more than a minute (the fault module's IDLECLOSE, on
 * its own clock): the signature after the idle period meets the closed session, and the
 * caller gets it signed anyway, through re-opened sessions.
 */
static void test_recovery_idle_closed_session_signs(void **state)
{
	uint8_t sig[64];
	size_t len;
	km_token_health_t h0, h;
	(void)state;
	p11calls_clock(0);
	p11calls_rules("*:IDLECLOSE=60000");
	km_token_get_health(tok, &h0);
	sign_ok(tok);
	p11calls_clock(120000);
	p11calls_reset();
	int r = sign_once(tok, sig, &len);
	if (r != KM_EOK)
		fail_msg("the signature after the idle period: %s: %s", km_strerror(r),
		         km_token_last_error(tok));
	assert_true(test_ossl_verify(&pub, KM_ALG_ES256, msg, sizeof(msg) - 1, sig, len));
	char *log = p11calls_read();
	if (strstr(log, " idle FAULT\n") == NULL || p11calls_count(log, "C_OpenSession ") == 0)
		fail_msg("no idle session closed and re-opened:\n%s", log);
	free(log);
	km_token_get_health(tok, &h);
	assert_false(h.lost);
	assert_int_equal(h.recoveries, h0.recoveries + 1);
	p11calls_rules("");
	p11calls_clock(0);
}

/*
 * Keep-alive: a C_GetSessionInfo on each signing session idle for the interval keeps it from
 * the token's idle close; the signature after the idle period needs no re-open.
 */
static void test_recovery_keepalive_keeps_sessions_open(void **state)
{
	unsigned kept = 99;
	km_token_health_t h0, h;
	(void)state;
	p11calls_clock(0);
	p11calls_rules("*:IDLECLOSE=60000");
	sign_ok(tok);
	km_token_get_health(tok, &h0);
	/* used just now: not idle for an hour, nothing asked */
	assert_int_equal(km_token_keepalive(tok, 3600 * 1000, &kept), KM_EOK);
	assert_int_equal(kept, 0);
	p11calls_clock(50000);
	p11calls_reset();
	assert_int_equal(km_token_keepalive(tok, 0, &kept), KM_EOK);
	assert_int_equal(kept, 2);                    /* the pool's two sessions */
	char *log = p11calls_read();
	assert_int_equal(p11calls_count(log, "C_GetSessionInfo rv=0x0 "), 2);
	free(log);
	p11calls_clock(100000);                       /* 50 s after the keep-alive */
	p11calls_reset();
	sign_ok(tok);
	log = p11calls_read();
	if (strstr(log, " idle FAULT\n") != NULL || p11calls_count(log, "C_OpenSession ") != 0)
		fail_msg("a session kept alive was closed as idle:\n%s", log);
	free(log);
	km_token_get_health(tok, &h);
	assert_int_equal(h.recoveries, h0.recoveries);
	p11calls_rules("");
	p11calls_clock(0);
}

int main(int argc, char **argv)
{
	static char module_abs[4096];
	if (argc < 2 || realpath(argv[1], module_abs) == NULL) {
		fprintf(stderr, "usage: %s PATH-TO-P11FAULT\n", argv[0]);
		return 2;
	}
	fault_module = module_abs;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_recovery_pool_shrinks_on_session_count_and_grows_back,
		                       test_setup),
		cmocka_unit_test_setup(test_recovery_sign_after_session_handle_invalid, test_setup),
		cmocka_unit_test_setup(test_recovery_sign_after_real_session_loss, test_setup),
		cmocka_unit_test_setup(test_recovery_not_logged_in_admin_operations, test_setup),
		cmocka_unit_test_setup(test_recovery_backoff_while_token_gone, test_setup),
		cmocka_unit_test_setup(test_recovery_pin_locked_at_login, test_setup),
		cmocka_unit_test_setup(test_recovery_refused_pin_not_retried, test_setup),
		cmocka_unit_test_setup(test_recovery_check_notices_loss, test_setup),
		cmocka_unit_test_setup(test_recovery_concurrent_signers, test_setup),
		cmocka_unit_test_setup(test_recovery_idle_closed_session_signs, test_setup),
		cmocka_unit_test_setup(test_recovery_keepalive_keeps_sessions_open, test_setup),
	};
	return cmocka_run_group_tests_name("recovery", tests, group_setup, group_teardown);
}
