/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-token-sign: ES256 signatures per second through km_token_sign(), next to the peer
 * that bounds it: a bare Cryptoki loop (SHA-256 with OpenSSL, then C_SignInit + C_Sign with
 * CKM_ECDSA) on the same SoftHSM token and key, with its own sessions from the module's
 * function list. Both run in the same process and the same run, on 1 and 2 threads, in
 * alternating quarter-second rounds so that machine noise hits both alike. Prints the ratio.
 *
 * Usage: bench-token-sign [SECONDS]   (per path and thread count; default 4)
 * Creates a temporary SoftHSM token (tests/common fixture) and removes it afterwards.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#include "keymgr/common/error.h"
#include "pkcs11/token.h"
#include "tests/common/softhsm.h"

#define MAX_THREADS 2

static const uint8_t input[] =
	"eyJhbGciOiJFUzI1NiIsImtpZCI6ImJlbmNoIiwidHlwIjoiYXQrand0In0."
	"eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoiYmVuY2giLCJleHAiOjE3MDAwMDAwMDB9";

static km_token_t *tok;
static uint8_t key_id[KM_TOKEN_ID_LEN];
static CK_FUNCTION_LIST *fl;
static CK_SESSION_HANDLE raw_sessions[MAX_THREADS];
static CK_OBJECT_HANDLE raw_key;
static atomic_bool stop;

typedef struct {
	int idx;
	bool raw;
	unsigned long ops;
	unsigned long errors;
} worker_t;

static void *worker(void *arg)
{
	worker_t *w = arg;
	uint8_t sig[132];

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (w->raw) {
			uint8_t digest[32];
			unsigned dl = 0;
			CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
			CK_ULONG sl = sizeof(sig);
			CK_SESSION_HANDLE s = raw_sessions[w->idx];
			if (EVP_Digest(input, sizeof(input) - 1, digest, &dl, EVP_sha256(), NULL) != 1 ||
			    fl->C_SignInit(s, &mech, raw_key) != CKR_OK ||
			    fl->C_Sign(s, digest, dl, sig, &sl) != CKR_OK) {
				w->errors++;
				continue;
			}
		} else {
			size_t sl = sizeof(sig);
			if (km_token_sign(tok, key_id, sizeof(key_id), KM_ALG_ES256, input,
			                  sizeof(input) - 1, sig, &sl) != KM_EOK) {
				w->errors++;
				continue;
			}
		}
		w->ops++;
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs one path on n threads for about `seconds`; adds ops and elapsed time. */
static int run_round(bool raw, int n, double seconds, unsigned long *ops, double *elapsed)
{
	pthread_t th[MAX_THREADS];
	worker_t w[MAX_THREADS];
	struct timespec d = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };

	atomic_store(&stop, false);
	double t0 = now();
	for (int i = 0; i < n; i++) {
		w[i] = (worker_t){ .idx = i, .raw = raw };
		if (pthread_create(&th[i], NULL, worker, &w[i]) != 0)
			return -1;
	}
	nanosleep(&d, NULL);
	atomic_store(&stop, true);
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		*ops += w[i].ops;
		if (w[i].errors > 0) {
			fprintf(stderr, "%s path: %lu signing errors\n", raw ? "raw" : "keymgr",
			        w[i].errors);
			return -1;
		}
	}
	*elapsed += now() - t0;
	return 0;
}

/* The raw peer: its own sessions and its own key lookup, through the module's function list. */
static int raw_setup(const km_test_softhsm_t *hsm)
{
	void *dl = dlopen(hsm->module, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	CK_C_GetFunctionList get = NULL;
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16, found = 0;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = { { CKA_CLASS, &cls, sizeof(cls) },
	                        { CKA_ID, key_id, sizeof(key_id) } };
	km_token_info_t info;

	if (dl == NULL)
		return -1;
	*(void **)&get = dlsym(dl, "C_GetFunctionList");
	if (get == NULL || get(&fl) != CKR_OK)
		return -1;
	/* keymgr initialised the module already; this only confirms it. */
	CK_RV rv = fl->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
		return -1;
	km_token_get_info(tok, &info);
	if (fl->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
		return -1;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		char label[33];
		if (fl->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		memcpy(label, ti.label, 32);
		for (label[32] = '\0'; strlen(label) > 0 && label[strlen(label) - 1] == ' ';)
			label[strlen(label) - 1] = '\0';
		if (strcmp(label, info.label) != 0)
			continue;
		for (int t = 0; t < MAX_THREADS; t++)
			if (fl->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL,
			                      &raw_sessions[t]) != CKR_OK)
				return -1;
		/* Login state is per process and token: keymgr's login covers these sessions. */
		if (fl->C_FindObjectsInit(raw_sessions[0], tmpl, 2) != CKR_OK ||
		    fl->C_FindObjects(raw_sessions[0], &raw_key, 1, &found) != CKR_OK ||
		    fl->C_FindObjectsFinal(raw_sessions[0]) != CKR_OK || found != 1)
			return -1;
		return 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	km_test_softhsm_t hsm;
	km_token_cfg_t cfg = { 0 };
	km_pubkey_t pub;
	char err[512];
	double seconds = argc > 1 ? atof(argv[1]) : 4.0;
	int rc = 1;

	if (seconds <= 0) {
		fprintf(stderr, "usage: %s [SECONDS]\n", argv[0]);
		return 2;
	}
	if (km_test_softhsm_create(&hsm, "bench") != 0)
		return 1;
	cfg.module_path = hsm.module;
	cfg.token_label = "bench";
	cfg.pin_source = hsm.pin_source;
	if (km_token_open(&cfg, &tok, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	if (km_token_generate(tok, KM_ALG_ES256, 0, "keymgr:bench/es256", key_id, &pub) != KM_EOK) {
		fprintf(stderr, "%s\n", km_token_last_error(tok));
		goto out;
	}
	if (raw_setup(&hsm) != 0) {
		fprintf(stderr, "raw Cryptoki setup failed\n");
		goto out;
	}

	printf("ES256 sign/s on one SoftHSM 2.6.1 token, %.1f s per path and thread count\n",
	       seconds);
	printf("%-8s %16s %16s %8s\n", "threads", "km_token_sign", "raw C_Sign", "ratio");
	for (int n = 1; n <= MAX_THREADS; n++) {
		unsigned long ops[2] = { 0, 0 };
		double el[2] = { 0, 0 };
		/* Short alternating rounds: load from elsewhere then hits both paths alike. */
		int rounds = seconds < 0.5 ? 1 : (int)(seconds / 0.25);
		/* Warm-up: fills keymgr's handle cache and the token's own state. */
		if (run_round(false, n, 0.2, &(unsigned long){ 0 }, &(double){ 0 }) != 0 ||
		    run_round(true, n, 0.2, &(unsigned long){ 0 }, &(double){ 0 }) != 0)
			goto out;
		for (int r = 0; r < rounds; r++) {
			/* Alternate which path goes first in each round. */
			for (int k = 0; k < 2; k++) {
				int path = (r + k) % 2;       /* 0 = keymgr, 1 = raw */
				if (run_round(path == 1, n, seconds / rounds, &ops[path], &el[path]) != 0)
					goto out;
			}
		}
		double km = (double)ops[0] / el[0], raw = (double)ops[1] / el[1];
		printf("%-8d %16.0f %16.0f %8.3f\n", n, km, raw, km / raw);
	}
	rc = 0;
out:
	for (int t = 0; t < MAX_THREADS; t++)
		if (fl != NULL && raw_sessions[t] != 0)
			fl->C_CloseSession(raw_sessions[t]);
	if (tok != NULL)
		km_token_destroy(tok, key_id, sizeof(key_id));
	km_token_free(tok);
	km_test_softhsm_destroy(&hsm);
	return rc;
}
