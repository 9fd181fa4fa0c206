/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The peer of the signing benchmarks (bench-sign-client, bench-token-sign): a bare Cryptoki
 * loop on the same token and key as keymgr, with its own sessions from the module's function
 * list. One signature is C_SignInit + C_Sign as keymgr makes it for SoftHSM 2.6.1: ES256
 * hashes with OpenSSL first (CKM_ECDSA, with SHA-256 fetched once as keymgr fetches it), RS256
 * is CKM_SHA256_RSA_PKCS.
 *
 * The token must already be logged in by this process (km_token_open): the login is shared
 * by the process's sessions.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_RAW_MAX_SESSIONS 8

typedef struct bench_raw bench_raw_t;

/*
 * Opens n sessions (at most BENCH_RAW_MAX_SESSIONS) on the token labelled label of module and
 * finds the private key whose CKA_ID is id. rsa selects the mechanism. *ret is the caller's
 * (bench_raw_free). 0, or -1 with a message on stderr.
 */
int bench_raw_open(const char *module, const char *label, const uint8_t *id, size_t id_len,
                   bool rsa, int n, bench_raw_t **ret);

/* Parses a CKA_ID given in hex (as bench/sign passes it) into id[0..cap). 0 or -1. */
int bench_raw_parse_id(const char *hex, uint8_t *id, size_t cap, size_t *len);

/* Closes the sessions. NULL ok. */
void bench_raw_free(bench_raw_t *r);

/* One signature of in[0..len) on session idx (one thread per session). 0 or -1. */
int bench_raw_sign(bench_raw_t *r, int idx, const uint8_t *in, size_t len);

/* The same signature in two halves, for a server that runs C_SignInit before the request
 * comes (bench-sign-bare): bench_raw_sign_init, then bench_raw_sign_prepared (the digest and
 * C_Sign). 0 or -1. */
int bench_raw_sign_init(bench_raw_t *r, int idx);
int bench_raw_sign_prepared(bench_raw_t *r, int idx, const uint8_t *in, size_t len);

/*
 * One key pair made and destroyed on session idx as a bare caller would: C_GenerateKeyPair
 * of a P-256 pair (rsa: RSA 2048) as token objects, sensitive, not extractable, sign only,
 * then C_DestroyObject of both. The peer of keymgr's generation (bench-token-module).
 * 0 or -1.
 */
int bench_raw_keygen(bench_raw_t *r, int idx);
