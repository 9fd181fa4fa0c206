/* SPDX-License-Identifier: Apache-2.0 */
/* Private to keymgr/probe/: the check numbers and the pieces a run is made of. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/claims/claims_probe.h"
#include "keymgr/common/alg.h"
#include "keymgr/probe/probe.h"

/* The checks, in the order a run sends them (checks.c holds their descriptions). */
typedef enum {
	PROBE_NO_TOKEN,
	PROBE_GENUINE,
	PROBE_EXPIRED,
	PROBE_NOT_YET_VALID,
	PROBE_WRONG_ISSUER,
	PROBE_WRONG_AUDIENCE,
	PROBE_OTHER_AUDIENCE,
	PROBE_TYP_ACCESS,
	PROBE_TYP_ID,
	PROBE_TYP_LOGOUT,
	PROBE_OVERLONG,
	PROBE_CRIT,
	PROBE_DUPLICATE,
	PROBE_SIG_LENGTH,
	PROBE_ALG_NONE,
	PROBE_HS_PEM,
	PROBE_HS_JWK,
	PROBE_WRONG_KEY,
	PROBE_JKU,
	PROBE_X5U,
	PROBE_JWK,
	PROBE_KID_PATH,
	PROBE_KID_SQL,
	PROBE_KID_HEADER,
	PROBE_ECDSA_R0,
	PROBE_ECDSA_S0,
	PROBE_ECDSA_ZERO,
	PROBE_RSA_SWAP,
	PROBE_GENUINE_AGAIN,
	PROBE_COUNT
} probe_id_t;

#define KM_PROBE_BAD_ISSUER_TEXT KM_CLAIMS_PROBE_BAD_ISSUER
#define KM_PROBE_BAD_AUDIENCE "https://wrong-audience.keymgr-probe.invalid"
#define KM_PROBE_KID_PATH "../../../../../../../../dev/null"
#define KM_PROBE_KID_SQL_SECRET "keymgr-probe"
#define KM_PROBE_KID_SQL "x' UNION SELECT '" KM_PROBE_KID_SQL_SECRET "' -- "
#define KM_PROBE_KID_SQL_TEXT "x' UNION SELECT 'keymgr-probe' --"
#define KM_PROBE_KID_HEADER_TAIL "\r\nX-Keymgr-Probe: injected"

/* ---- the target (target.c) ---- */

/* A URL that may be probed: its text as libcurl parsed it, and its host. */
typedef struct {
	char url[1024];                  /* normalised by libcurl: what is requested */
	char host[256];                  /* lower case; IPv6 without brackets */
	bool loopback;
	long port;
} probe_target_t;

/* km_probe_target_check() that also fills *ret. Same codes. */
int probe_target_parse(const km_config_t *cfg, const char *url, probe_target_t *ret,
                       char *err, size_t errlen);

/* ---- the requests (send.c) ---- */

typedef struct probe_client probe_client_t;

/*
 * Checks the request options of o (method, header templates, accept list, timeout) and
 * prepares a libcurl handle for target t: no proxy, no redirect, http(s) only; a loopback
 * name pinned to its loopback address. KM_EINVAL (err names the option), KM_ENOMEM.
 */
int probe_client_new(const probe_target_t *t, const km_probe_opts_t *o,
                     probe_client_t **ret, char *err, size_t errlen);
void probe_client_free(probe_client_t *c);

/*
 * One request with token in every header template ({token}), or, for token NULL, without
 * the headers that carry it. *status gets the HTTP status. KM_EOK, KM_EIO (no HTTP answer:
 * err says why; *status 0), KM_ETIMEDOUT, KM_ENOMEM.
 */
int probe_client_send(probe_client_t *c, const char *token, long *status, char *err,
                      size_t errlen);

/* Whether status is in the accept list. */
bool probe_client_accepts(const probe_client_t *c, long status);

/* ---- keys made for the run (keys.c) ---- */

typedef struct probe_key probe_key_t;

/* A fresh key pair that can sign alg (RSA keys are 2048 bits). KM_EOK, KM_ECRYPTO, KM_EALG. */
int probe_key_new(km_alg_t alg, probe_key_t **ret);
void probe_key_free(probe_key_t *k);

/* A JOSE signature (ECDSA as r||s) of data under alg. sig holds KM_JWS_SIG_MAX bytes. */
int probe_key_sign(const probe_key_t *k, km_alg_t alg, const uint8_t *data, size_t len,
                   uint8_t *sig, size_t *sig_len);

/* Its public JWK for alg (kid: the RFC 7638 thumbprint). New reference. */
int probe_key_jwk(const probe_key_t *k, km_alg_t alg, json_t **ret);

/* A self-signed certificate of it (CN=keymgr-probe, valid for an hour from now), PEM. */
int probe_key_cert_pem(const probe_key_t *k, int64_t now, char **ret);

/* HMAC-SHA-256 of data under key (HS256). mac holds 32 bytes. */
int probe_hs256(const void *key, size_t key_len, const uint8_t *data, size_t len,
                uint8_t mac[32]);

/* ---- the forgeries (forge.c) ---- */

typedef struct {
	km_alg_t alg;                    /* the key set's */
	const char *kid;                 /* its active key */
	const char *typ;                 /* its class's */
	const char *public_pem;          /* that key as PEM */
	const char *public_jwk;          /* as published */
	const char *jku_url, *x5u_url;   /* on the loopback key server */
	const probe_key_t *same;         /* a run key of the key set's kind */
	const json_t *same_jwk;          /* its public JWK */
	const probe_key_t *rsa;          /* a run RSA key (RSA key sets), or NULL */
} probe_forge_t;

/*
 * The forged token of check id with payload (compact JSON text). *ret malloc'd. KM_EOK,
 * KM_EINVAL (not a forgery, or not for this key set), KM_ENOMEM, KM_ECRYPTO.
 */
int probe_forge(const probe_forge_t *f, probe_id_t id, const char *payload, char **ret);

/* ---- the loopback key server (keyserver.c) ---- */

typedef struct probe_keyserver probe_keyserver_t;

/*
 * Starts a listener on 127.0.0.1 (ephemeral port) serving jwks (a JWKS document) and
 * cert_pem (a PEM certificate) at two paths under a random prefix; their URLs go to
 * jku_url and x5u_url (256 bytes each). KM_EOK, KM_EIO, KM_ENOMEM.
 */
int probe_keyserver_start(const char *jwks, const char *cert_pem, probe_keyserver_t **ret,
                          char jku_url[256], char x5u_url[256], char *err, size_t errlen);

/* How many times the jku (or x5u) document was fetched so far. */
uint64_t probe_keyserver_fetches(probe_keyserver_t *s, bool x5u);

void probe_keyserver_free(probe_keyserver_t *s);
