/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgr probe: audits a live verifier for the checks it skips (docs/probe.md).
 *
 * km_probe_run() sends a series of tokens to one endpoint and grades each answer:
 *   - controls: no token at all (must be refused), a genuine token of the key set (must be
 *     accepted, or the run stops: the endpoint does not trust this key set), and a second
 *     genuine one at the end (the run was not cut short by a rate limit or a block);
 *   - tokens with the key set's real signature that are wrong for the endpoint (expired, not
 *     yet valid, another issuer or audience, another class's typ, too long a lifetime, an
 *     unknown crit, a duplicate claim, a stretched signature), signed through the one
 *     narrow signer that exists for this (keymgr/claims/claims_probe.h), each valid for at
 *     most 60 s and recorded in the audit log by its jti before anything is sent;
 *   - forgeries signed with keys generated for the run (OpenSSL; never another key of any
 *     environment): alg none, HS256 keyed with the public key, keys from jku, x5u or an
 *     embedded jwk (served from a loopback listener that records the endpoint's fetches),
 *     kid injections, the right kid with the wrong key, ECDSA r or s zero, an RSA-PSS/PKCS#1
 *     swap.
 * Only loopback and probe.allowed_hosts may be probed, only key sets of probe.environments:
 * a refused target or key set is refused before anything is signed or sent.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/config/config.h"

#define KM_PROBE_MAX_HEADERS 8
#define KM_PROBE_TIMEOUT_MS_DEFAULT 5000
#define KM_PROBE_TIMEOUT_MS_MAX 60000
/* Tokens with the real signature are sent only this long after they were signed: each is
 * valid for 60 s, and must still be when the endpoint reads it. */
#define KM_PROBE_SEND_WINDOW 40

typedef struct {
	const char *env;                 /* ENV of ENV/NAME */
	const char *keyset;              /* NAME */
	const char *url;                 /* http:// or https:// */
	const char *method;              /* GET, HEAD or POST; NULL: GET */
	const char *headers[KM_PROBE_MAX_HEADERS];  /* "Name: value"; {token} is replaced */
	size_t n_headers;                /* 0: "Authorization: Bearer {token}" */
	const char *accept;              /* statuses that mean accepted: "2xx", "200,204"...;
	                                  * NULL: "2xx" */
	const char *aud;                 /* the endpoint's audience; NULL: the key set's first */
	const char *claims;              /* more claims for every token (JSON object text), or
	                                  * NULL: sub (and client_id, events) as the class needs */
	unsigned timeout_ms;             /* per request; 0: KM_PROBE_TIMEOUT_MS_DEFAULT */
	int64_t (*clock)(void);          /* seconds since the epoch; NULL: time(2) */
} km_probe_opts_t;

typedef enum {
	KM_PROBE_CONTROL,                /* no token, genuine tokens */
	KM_PROBE_REAL,                   /* the key set's real signature, wrong for the endpoint */
	KM_PROBE_FORGED,                 /* signed by a per-run key, or not at all */
} km_probe_group_t;

typedef enum {
	KM_PROBE_PASS,                   /* answered as expected */
	KM_PROBE_FAIL,                   /* a hostile token accepted, or a genuine one refused */
	KM_PROBE_WARN,                   /* refused, but the endpoint fetched the probe's key URL */
	KM_PROBE_ERROR,                  /* no answer to grade (transport error, not sent) */
	KM_PROBE_NA,                     /* does not apply to this key set (its algorithm...) */
} km_probe_verdict_t;

/* One check of the catalogue (static; km_probe_checks()). */
typedef struct {
	const char *name;                /* "wrong-audience" */
	km_probe_group_t group;
	bool expect_accept;
	const char *tests;               /* one line: what the token is */
	const char *standard;            /* "RFC 8725 3.9; RFC 7519 4.1.3" */
} km_probe_check_t;

/* The catalogue, in the order a run sends it. *n receives its length. */
const km_probe_check_t *km_probe_checks(size_t *n);

typedef struct {
	const km_probe_check_t *check;
	km_probe_verdict_t verdict;
	bool sent;
	bool accepted;                   /* the status is in the accept list */
	bool fetched;                    /* the endpoint fetched this check's key URL */
	long status;                     /* HTTP status; 0 when there was none */
	char jti[64];                    /* the jti of a token with the real signature, or "" */
	char note[256];                  /* why n/a or error, what was fetched */
} km_probe_result_t;

typedef struct {
	char env[64], keyset[80], kid[160], alg[16], url[1024], method[8], accept[64];
	char aud[256];
	int64_t started_at, finished_at;
	km_probe_result_t *results;      /* one per catalogue entry, in its order */
	size_t n_results;
	size_t n_pass, n_fail, n_warn, n_error, n_na;
	bool stopped;                    /* the run stopped early: stop_reason says why */
	char stop_reason[512];
	int64_t audit_seq;               /* the probe.run audit event */
} km_probe_report_t;

/*
 * Runs the probe o against o->url with key set o->env/o->keyset of cfg (see above). Refusals
 * before anything is sent (a target outside loopback and probe.allowed_hosts, an environment
 * probe.environments does not name, a key set that cannot sign, bad options, an endpoint
 * that cannot be reached or does not answer HTTP) return their code with one line in err
 * and no report. Otherwise *ret (km_probe_report_free) holds every check's result; a run
 * that stopped early (the endpoint accepts requests without a token, or refuses the genuine
 * token) is a report too, with stopped and stop_reason.
 * Returns KM_EOK, KM_EINVAL (bad options: err names it), KM_POLICY_EDENIED (target or
 * environment refused), KM_EIO (unreachable, not HTTP), the codes of the signer, the
 * store and the token, KM_ENOMEM, KM_ECRYPTO.
 */
int km_probe_run(const km_config_t *cfg, const km_probe_opts_t *o, km_probe_report_t **ret,
                 char *err, size_t errlen);

void km_probe_report_free(km_probe_report_t *r);

/* True when the report shows a hostile token accepted, a genuine one refused, an ungraded
 * check or an early stop: what makes `keymgr probe` exit 1. */
bool km_probe_report_failed(const km_probe_report_t *r);

/* "pass", "FAIL", "warn", "error", "n/a"; "control", "real key", "forged". */
const char *km_probe_verdict_name(km_probe_verdict_t v);
const char *km_probe_group_name(km_probe_group_t g);

/* The report as JSON (new reference; NULL on ENOMEM). Times in RFC 3339 UTC. */
json_t *km_probe_report_json(const km_probe_report_t *r);

/* The report as a standalone HTML page. *ret is malloc'd. KM_EOK or KM_ENOMEM. */
int km_probe_report_html(const km_probe_report_t *r, char **ret);

/*
 * Whether url may be probed under cfg: http or https, no user name or password, and its
 * host loopback (127.0.0.0/8, ::1, localhost) or listed in probe.allowed_hosts. Writes why
 * not into err. KM_EOK, KM_EINVAL (not such a URL), KM_POLICY_EDENIED (host not allowed).
 * Nothing is resolved or sent.
 */
int km_probe_target_check(const km_config_t *cfg, const char *url, char *err, size_t errlen);
