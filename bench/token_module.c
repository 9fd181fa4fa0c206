/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-token-module: keygen and signing throughput of keymgr's token layer on any PKCS#11
 * module, next to a bare Cryptoki caller on the same module, token and key (bench/raw_sign.c),
 * so that a slow module shows as the token's cost, not keymgr's:
 *   keygen  km_token_generate + km_token_destroy (the template ladder, the read-back, the test
 *           signature) against C_GenerateKeyPair + 2 C_DestroyObject;
 *   sign    km_token_sign against C_SignInit + C_Sign (one thread each), in alternating
 *           rounds so that machine noise hits both alike.
 * Prints per operation the rate of each and their ratio (keymgr / raw).
 *
 * Usage: bench-token-module --module PATH --token LABEL --pin-source SRC [--init-args S]
 *                           [--alg ES256|RS256] [--seconds S] [--keygens N]
 * bench/token-modules runs it on every module of the hsm suite (tests/hsm/modules.py).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/raw_sign.h"
#include "keymgr/common/error.h"
#include "pkcs11/token.h"

static const uint8_t input[] =
	"eyJhbGciOiJFUzI1NiIsImtpZCI6ImJlbmNoIiwidHlwIjoiYXQrand0In0."
	"eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoiYmVuY2giLCJleHAiOjE3MDAwMDAwMDB9";

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
	km_token_t *tok;
	bench_raw_t *raw;
	km_alg_t alg;
	const uint8_t *id;
	size_t id_len;
} bench_t;

/* One operation of one path: 0 or -1. */
static int keygen_km(const bench_t *b)
{
	uint8_t id[KM_TOKEN_ID_LEN];
	km_pubkey_t pub;
	if (km_token_generate(b->tok, b->alg, 2048, "keymgr:bench/keygen", id, &pub) != KM_EOK)
		return -1;
	return km_token_destroy(b->tok, id, sizeof(id)) == KM_EOK ? 0 : -1;
}

static int keygen_raw(const bench_t *b)
{
	return bench_raw_keygen(b->raw, 0);
}

static int sign_km(const bench_t *b)
{
	uint8_t sig[512];
	size_t sl = sizeof(sig);
	return km_token_sign(b->tok, b->id, b->id_len, b->alg, input, sizeof(input) - 1, sig,
	                     &sl) == KM_EOK ? 0 : -1;
}

static int sign_raw(const bench_t *b)
{
	return bench_raw_sign(b->raw, 0, input, sizeof(input) - 1);
}

/*
 * Runs op[0] (keymgr) and op[1] (raw) in alternating rounds until each ran `count`
 * operations (count > 0) or for about `seconds`; writes the rates. 0 or -1.
 */
static int measure(const bench_t *b, int (*op[2])(const bench_t *), unsigned long count,
                   double seconds, double rate[2])
{
	unsigned long ops[2] = { 0, 0 };
	double el[2] = { 0, 0 };
	int rounds = count > 0 ? (int)count : (seconds < 0.5 ? 1 : (int)(seconds / 0.25));
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < 2; k++) {
			int path = (r + k) % 2;
			double t0 = now(), until = t0 + (count > 0 ? 0 : seconds / rounds);
			do {
				if (op[path](b) != 0) {
					fprintf(stderr, "%s path failed%s%s\n", path ? "raw" : "keymgr",
					        path ? "" : ": ", path ? "" : km_token_last_error(b->tok));
					return -1;
				}
				ops[path]++;
			} while (now() < until);
			el[path] += now() - t0;
		}
	}
	rate[0] = (double)ops[0] / el[0];
	rate[1] = (double)ops[1] / el[1];
	return 0;
}

static int usage(const char *argv0)
{
	fprintf(stderr, "usage: %s --module PATH --token LABEL --pin-source SRC [--init-args S] "
	        "[--alg ES256|RS256] [--seconds S] [--keygens N]\n", argv0);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "module", required_argument, NULL, 'm' }, { "token", required_argument, NULL, 't' },
		{ "pin-source", required_argument, NULL, 'p' },
		{ "init-args", required_argument, NULL, 'i' }, { "alg", required_argument, NULL, 'a' },
		{ "seconds", required_argument, NULL, 's' }, { "keygens", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	km_token_cfg_t cfg = { .sessions = 1 };
	const char *alg_name = "ES256";
	double seconds = 2.0;
	unsigned long keygens = 5;
	uint8_t id[KM_TOKEN_ID_LEN];
	km_pubkey_t pub;
	bench_t b = { 0 };
	char err[512];
	int o, rc = 1;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'm': cfg.module_path = optarg; break;
		case 't': cfg.token_label = optarg; break;
		case 'p': cfg.pin_source = optarg; break;
		case 'i': cfg.init_args = optarg; break;
		case 'a': alg_name = optarg; break;
		case 's': seconds = atof(optarg); break;
		case 'k': keygens = strtoul(optarg, NULL, 10); break;
		default: return usage(argv[0]);
		}
	}
	if (cfg.module_path == NULL || cfg.token_label == NULL || cfg.pin_source == NULL ||
	    seconds <= 0 || keygens == 0 || optind != argc)
		return usage(argv[0]);
	if (strcmp(alg_name, "ES256") != 0 && strcmp(alg_name, "RS256") != 0) {
		fprintf(stderr, "%s: --alg must be ES256 or RS256, not '%s'\n", argv[0], alg_name);
		return 2;
	}
	b.alg = alg_name[0] == 'E' ? KM_ALG_ES256 : KM_ALG_RS256;
	if (km_token_open(&cfg, &b.tok, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (km_token_generate(b.tok, b.alg, 2048, "keymgr:bench/sign", id, &pub) != KM_EOK) {
		fprintf(stderr, "%s\n", km_token_last_error(b.tok));
		goto out;
	}
	b.id = id;
	b.id_len = sizeof(id);
	if (bench_raw_open(cfg.module_path, cfg.token_label, id, sizeof(id),
	                   b.alg == KM_ALG_RS256, 1, &b.raw) != 0)
		goto destroy;

	double rate[2];
	int (*keygen[2])(const bench_t *) = { keygen_km, keygen_raw };
	int (*sign[2])(const bench_t *) = { sign_km, sign_raw };
	printf("%s on %s, token '%s'\n", alg_name, cfg.module_path, cfg.token_label);
	printf("%-8s %14s %14s %8s\n", "op", "keymgr/s", "raw/s", "ratio");
	if (measure(&b, keygen, keygens, 0, rate) != 0)
		goto destroy;
	printf("%-8s %14.2f %14.2f %8.3f\n", "keygen", rate[0], rate[1], rate[0] / rate[1]);
	if (sign_km(&b) != 0 || measure(&b, sign, 0, seconds, rate) != 0)   /* warm cache */
		goto destroy;
	printf("%-8s %14.1f %14.1f %8.3f\n", "sign", rate[0], rate[1], rate[0] / rate[1]);
	rc = 0;
destroy:
	km_token_destroy(b.tok, id, sizeof(id));
out:
	bench_raw_free(b.raw);
	km_token_free(b.tok);
	return rc;
}
