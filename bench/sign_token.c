/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-token-sign: ES256 signatures per second through km_token_sign(), next to the peer
 * that bounds it: a bare Cryptoki loop (SHA-256 with OpenSSL, then C_SignInit + C_Sign with
 * CKM_ECDSA) on the same SoftHSM token and key, with its own sessions from the module's
 * function list. Both run in the same process and the same run, on 1 and 2 threads, in
 * alternating quarter-second rounds so that machine noise hits both alike. Prints the ratio.
 *
 * The raw loop is bench/raw_sign.c, shared with bench-sign-client.
 *
 * Usage: bench-token-sign [SECONDS]   (per path and thread count; default 4)
 * Creates a temporary SoftHSM token (tests/common fixture) and removes it afterwards.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/raw_sign.h"
#include "keymgr/common/error.h"
#include "pkcs11/token.h"
#include "tests/common/softhsm.h"

#define MAX_THREADS 2

static const uint8_t input[] =
	"eyJhbGciOiJFUzI1NiIsImtpZCI6ImJlbmNoIiwidHlwIjoiYXQrand0In0."
	"eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoiYmVuY2giLCJleHAiOjE3MDAwMDAwMDB9";

static km_token_t *tok;
static uint8_t key_id[KM_TOKEN_ID_LEN];
static bench_raw_t *peer;
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
			if (bench_raw_sign(peer, w->idx, input, sizeof(input) - 1) != 0) {
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
	if (bench_raw_open(hsm.module, "bench", key_id, sizeof(key_id), false, MAX_THREADS,
	                   &peer) != 0)
		goto out;

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
	bench_raw_free(peer);
	if (tok != NULL)
		km_token_destroy(tok, key_id, sizeof(key_id));
	km_token_free(tok);
	km_test_softhsm_destroy(&hsm);
	return rc;
}
