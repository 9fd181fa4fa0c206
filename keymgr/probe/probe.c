/* SPDX-License-Identifier: Apache-2.0 */
/*
 * km_probe_run: one probe run, in the order that keeps its promises (probe.h):
 *   1. everything that can be refused without sending anything: the options, the target
 *      (loopback or probe.allowed_hosts), the environment (probe.environments);
 *   2. every token made in memory: the real-key ones through km_claims_sign_probe() (a key
 *      set that cannot sign stops the run here), the forgeries with keys made for the run,
 *      and the loopback key server for jku and x5u started;
 *   3. the probe.run audit event with every token's jti;
 *   4. the requests: no token, the genuine token (the run stops unless it is accepted), the
 *      rest, a genuine token again; then the key server's fetch counts;
 *   5. the probe.result audit event, and the report.
 */
#include <openssl/rand.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "keymgr/claims/claims.h"
#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"
#include "keymgr/common/sigverify.h"
#include "keymgr/core/env.h"
#include "keymgr/jose/jwk.h"
#include "keymgr/jose/jws.h"
#include "keymgr/probe/probe_int.h"
#include "keymgr/store/store.h"

/* A run: what it was given, what it made, what it found. */
typedef struct {
	const km_config_t *cfg;
	const km_probe_opts_t *o;
	km_probe_report_t *rep;
	km_env_t *env;
	probe_target_t target;
	probe_client_t *client;
	probe_keyserver_t *keys;
	probe_key_t *run_key;
	json_t *run_jwk;
	json_t *claims;                  /* what every token claims, before keymgr's own */
	char purpose[KM_PURPOSE_MAX + 1];
	char typ[KM_CLAIMS_TYP_MAX + 1];
	char other_aud[256];
	char run_id[25];
	char *tokens[PROBE_COUNT];
	bool applies[PROBE_COUNT];
	int64_t signed_at;
	km_store_key_t key;              /* the active key, as the genuine token names it */
	char *public_pem;
	char *cert_pem;
	char jku_url[256], x5u_url[256];
} run_t;

static int64_t now_of(const run_t *run)
{
	return run->o->clock != NULL ? run->o->clock() : (int64_t)time(NULL);
}

static km_probe_result_t *res(run_t *run, probe_id_t id)
{
	return &run->rep->results[id];
}

/* ---- 1. refusals before anything is made ---- */

static int check_names(const km_probe_opts_t *o, char *err, size_t errlen)
{
	if (o->env == NULL || !km_name_env_valid(o->env) || o->keyset == NULL ||
	    !km_name_keyset_valid(o->keyset)) {
		snprintf(err, errlen, "expected ENV/NAME: a valid environment and key set name");
		return KM_ENAME;
	}
	return KM_EOK;
}

/* The claims of every token: sub and what the class requires, then --claims, then aud. */
static int base_claims(run_t *run, const char *aud, char *err, size_t errlen)
{
	const char *p = run->purpose;
	json_t *c = json_object(), *extra = NULL;
	json_error_t jerr;
	int bad = c == NULL;
	if (strcmp(p, "security-event-token") != 0)
		bad |= json_object_set_new(c, "sub", json_string("keymgr-probe"));
	if (strcmp(p, "access-token") == 0)
		bad |= json_object_set_new(c, "client_id", json_string("keymgr-probe"));
	if (strcmp(p, "logout-token") == 0)
		bad |= json_object_set_new(c, "events", json_pack("{s:{}}", KM_CLAIMS_BCL_EVENT));
	if (strcmp(p, "security-event-token") == 0)
		bad |= json_object_set_new(c, "events", json_pack("{s:{}}",
		                           "https://keymgr-probe.invalid/event/probe"));
	if (bad) {
		json_decref(c);
		return KM_ENOMEM;
	}
	if (run->o->claims != NULL) {
		extra = json_loads(run->o->claims, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(extra)) {
			snprintf(err, errlen, "--claims: %s", extra == NULL ? jerr.text :
			         "must be a JSON object");
			json_decref(extra);
			json_decref(c);
			return KM_EINVAL;
		}
		if (json_object_get(extra, "aud") != NULL) {
			snprintf(err, errlen, "--claims: give the endpoint's audience with --aud, not "
			         "in the claims");
			json_decref(extra);
			json_decref(c);
			return KM_EINVAL;
		}
		bad |= json_object_update(c, extra);
		json_decref(extra);
	}
	if (aud != NULL)
		bad |= json_object_set_new(c, "aud", json_string(aud));
	run->claims = c;
	return bad ? KM_ENOMEM : KM_EOK;
}

/* Purpose, typ, audiences: what the checks that depend on the key set need. */
static int keyset_facts(run_t *run, const char **aud, char *err, size_t errlen)
{
	km_store_keyset_t ks;
	int r = km_store_keyset_get(km_env_store(run->env), run->o->keyset, &ks, err, errlen);
	if (r == KM_ENOENT)
		snprintf(err, errlen, "unknown key set %s/%s", run->o->env, run->o->keyset);
	if (r != KM_EOK)
		return r;
	snprintf(run->purpose, sizeof(run->purpose), "%s", ks.purpose);
	km_claims_typ(ks.purpose, run->typ);
	const km_keyset_cfg_t *k = km_config_keyset(run->cfg, run->o->env, run->o->keyset);
	*aud = run->o->aud;
	if (*aud == NULL && k != NULL && k->n_audiences > 0)
		*aud = k->audiences[0];
	for (size_t i = 0; k != NULL && *aud != NULL && i < k->n_audiences; i++)
		if (strcmp(k->audiences[i], *aud) != 0 && run->other_aud[0] == '\0')
			snprintf(run->other_aud, sizeof(run->other_aud), "%s", k->audiences[i]);
	return KM_EOK;
}

/* Which checks apply to this key set (the others are n/a, with why). */
static void applicability(run_t *run)
{
	const km_alg_info_t *ai = km_alg_info(run->key.alg);
	static const struct { probe_id_t id; const char *typ; } typs[] = {
		{ PROBE_TYP_ACCESS, "at+jwt" }, { PROBE_TYP_ID, "JWT" },
		{ PROBE_TYP_LOGOUT, "logout+jwt" },
	};
	for (size_t i = 0; i < PROBE_COUNT; i++)
		run->applies[i] = true;
	for (size_t i = 0; i < sizeof(typs) / sizeof(typs[0]); i++) {
		if (strcasecmp(typs[i].typ, run->typ) != 0)
			continue;
		run->applies[typs[i].id] = false;
		snprintf(res(run, typs[i].id)->note, sizeof(res(run, 0)->note),
		         "the key set's own typ (%s)", run->typ);
	}
	if (run->other_aud[0] == '\0') {
		run->applies[PROBE_OTHER_AUDIENCE] = false;
		snprintf(res(run, PROBE_OTHER_AUDIENCE)->note, sizeof(res(run, 0)->note),
		         "the key set has no other audience");
	}
	for (probe_id_t id = PROBE_ECDSA_R0; id <= PROBE_ECDSA_ZERO; id++) {
		if (ai->kty == KM_KTY_EC)
			continue;
		run->applies[id] = false;
		snprintf(res(run, id)->note, sizeof(res(run, 0)->note), "ECDSA key sets only (%s)",
		         ai->name);
	}
	if (ai->kty != KM_KTY_RSA) {
		run->applies[PROBE_RSA_SWAP] = false;
		snprintf(res(run, PROBE_RSA_SWAP)->note, sizeof(res(run, 0)->note),
		         "RSA key sets only (%s)", ai->name);
	}
}

/* ---- 2. the tokens ---- */

/* The deviation and its argument of each check signed with the real key. */
static bool real_deviation(const run_t *run, probe_id_t id, km_claims_probe_t *what,
                           const char **arg)
{
	static const struct { probe_id_t id; km_claims_probe_t what; const char *arg; } map[] = {
		{ PROBE_GENUINE, KM_CLAIMS_PROBE_GENUINE, NULL },
		{ PROBE_GENUINE_AGAIN, KM_CLAIMS_PROBE_GENUINE, NULL },
		{ PROBE_SIG_LENGTH, KM_CLAIMS_PROBE_GENUINE, NULL },
		{ PROBE_EXPIRED, KM_CLAIMS_PROBE_EXPIRED, NULL },
		{ PROBE_NOT_YET_VALID, KM_CLAIMS_PROBE_NOT_YET_VALID, NULL },
		{ PROBE_WRONG_ISSUER, KM_CLAIMS_PROBE_WRONG_ISS, NULL },
		{ PROBE_WRONG_AUDIENCE, KM_CLAIMS_PROBE_WRONG_AUD, KM_PROBE_BAD_AUDIENCE },
		{ PROBE_OTHER_AUDIENCE, KM_CLAIMS_PROBE_WRONG_AUD, NULL },
		{ PROBE_TYP_ACCESS, KM_CLAIMS_PROBE_WRONG_TYP, "at+jwt" },
		{ PROBE_TYP_ID, KM_CLAIMS_PROBE_WRONG_TYP, "JWT" },
		{ PROBE_TYP_LOGOUT, KM_CLAIMS_PROBE_WRONG_TYP, "logout+jwt" },
		{ PROBE_OVERLONG, KM_CLAIMS_PROBE_OVERLONG, NULL },
		{ PROBE_CRIT, KM_CLAIMS_PROBE_CRIT, NULL },
		{ PROBE_DUPLICATE, KM_CLAIMS_PROBE_DUPLICATE_ISS, NULL },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (map[i].id != id)
			continue;
		*what = map[i].what;
		*arg = id == PROBE_OTHER_AUDIENCE ? run->other_aud : map[i].arg;
		return true;
	}
	return false;
}

/* The signature of token, one zero byte longer (a genuine signature, stretched). */
static int stretch_signature(char **token)
{
	char *dot = strrchr(*token, '.');
	uint8_t sig[KM_JWS_SIG_MAX + 1];
	size_t n = sizeof(sig) - 1;
	if (dot == NULL || km_b64url_decode(dot + 1, strlen(dot + 1), sig, &n) != KM_EOK)
		return KM_EMALFORMED;
	size_t head = (size_t)(dot - *token) + 1;
	sig[n++] = 0;
	char *out = malloc(head + km_b64url_encoded_len(n) + 1);
	if (out == NULL)
		return KM_ENOMEM;
	memcpy(out, *token, head);
	out[head + km_b64url_encode(sig, n, out + head)] = '\0';
	free(*token);
	*token = out;
	return KM_EOK;
}

/* Every token signed with the key set's key, the genuine one first: a key set that cannot
 * sign stops the run before anything else is made. */
static int sign_real(run_t *run, char *err, size_t errlen)
{
	static const probe_id_t order[] = {
		PROBE_GENUINE, PROBE_EXPIRED, PROBE_NOT_YET_VALID, PROBE_WRONG_ISSUER,
		PROBE_WRONG_AUDIENCE, PROBE_OTHER_AUDIENCE, PROBE_TYP_ACCESS, PROBE_TYP_ID,
		PROBE_TYP_LOGOUT, PROBE_OVERLONG, PROBE_CRIT, PROBE_DUPLICATE, PROBE_SIG_LENGTH,
		PROBE_GENUINE_AGAIN,
	};
	char why[512];
	int r;
	run->signed_at = now_of(run);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		probe_id_t id = order[i];
		km_claims_probe_t what;
		const char *arg = NULL;
		if (!run->applies[id] || !real_deviation(run, id, &what, &arg))
			continue;
		r = km_claims_sign_probe(run->env, run->o->keyset, what, arg, run->claims,
		                         run->signed_at, &run->tokens[id], res(run, id)->jti, why,
		                         sizeof(why));
		if (r == KM_EOK && id == PROBE_SIG_LENGTH)
			r = stretch_signature(&run->tokens[id]);
		if (r != KM_EOK) {
			snprintf(err, errlen, "key set %s/%s cannot sign probe tokens, nothing was "
			         "sent: %s", run->o->env, run->o->keyset, why[0] ? why : km_strerror(r));
			return r;
		}
	}
	return KM_EOK;
}

/* The active key: its algorithm decides which checks apply, its public JWK and PEM key the
 * HS256 forgeries. */
static int active_key(run_t *run, char *err, size_t errlen)
{
	json_t *jwk = NULL;
	km_pubkey_t pub;
	json_error_t jerr;
	char why[256] = "";
	int r = km_store_key_active(km_env_store(run->env), run->o->keyset, &run->key, why,
	                            sizeof(why));
	if (r != KM_EOK) {
		snprintf(err, errlen, "key set %s/%s cannot sign probe tokens, nothing was sent: %s",
		         run->o->env, run->o->keyset, r == KM_ENOACTIVE ? "it has no active key "
		         "(rotate it first)" : why[0] ? why : km_strerror(r));
		return r;
	}
	if ((jwk = json_loads(run->key.jwk, 0, &jerr)) == NULL ||
	    km_jwk_to_pubkey(jwk, &pub, NULL, NULL, 0, err, errlen) != KM_EOK)
		r = KM_EMALFORMED;
	else
		r = km_pubkey_pem(&pub, &run->public_pem);
	json_decref(jwk);
	return r;
}

/* The genuine token must name the key read above: a rotation in between is a rerun. */
static int same_key(run_t *run, char *err, size_t errlen)
{
	json_t *hdr = NULL;
	int r = km_jws_peek(run->tokens[PROBE_GENUINE], &hdr, NULL);
	const char *kid = json_string_value(json_object_get(hdr, "kid"));
	if (r == KM_EOK && (kid == NULL || strcmp(kid, run->key.kid) != 0)) {
		snprintf(err, errlen, "key set %s/%s rotated during the probe: run it again",
		         run->o->env, run->o->keyset);
		r = KM_EBUSY;
	}
	json_decref(hdr);
	return r;
}

/* The genuine claims with a jti of their own for forgery id (recorded as the others). */
static char *forged_payload(run_t *run, probe_id_t id)
{
	json_t *claims = NULL;
	char *text = NULL;
	if (km_jws_peek(run->tokens[PROBE_GENUINE], NULL, &claims) != KM_EOK)
		return NULL;
	snprintf(res(run, id)->jti, sizeof(res(run, 0)->jti), "%s%s-%02d",
	         KM_CLAIMS_PROBE_JTI_PREFIX, run->run_id, (int)id);
	if (json_object_set_new(claims, "jti", json_string(res(run, id)->jti)) == 0)
		text = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(claims);
	return text;
}

static int forge_all(run_t *run, char *err, size_t errlen)
{
	json_t *jwks = NULL;
	char *doc = NULL;
	int r;
	if ((r = probe_key_new(run->key.alg, &run->run_key)) != KM_EOK ||
	    (r = probe_key_jwk(run->run_key, run->key.alg, &run->run_jwk)) != KM_EOK ||
	    (r = probe_key_cert_pem(run->run_key, now_of(run), &run->cert_pem)) != KM_EOK) {
		snprintf(err, errlen, "cannot make the run's own key: %s", km_strerror(r));
		return r;
	}
	if ((jwks = json_pack("{s:[O]}", "keys", run->run_jwk)) == NULL ||
	    (doc = json_dumps(jwks, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		r = KM_ENOMEM;
	else
		r = probe_keyserver_start(doc, run->cert_pem, &run->keys, run->jku_url, run->x5u_url,
		                          err, errlen);
	free(doc);
	json_decref(jwks);
	if (r != KM_EOK)
		return r;
	probe_forge_t f = {
		.alg = run->key.alg, .kid = run->key.kid, .typ = run->typ,
		.public_pem = run->public_pem, .public_jwk = run->key.jwk,
		.jku_url = run->jku_url, .x5u_url = run->x5u_url, .same = run->run_key,
		.same_jwk = run->run_jwk,
		.rsa = km_alg_info(run->key.alg)->kty == KM_KTY_RSA ? run->run_key : NULL,
	};
	for (probe_id_t id = PROBE_ALG_NONE; id <= PROBE_RSA_SWAP; id++) {
		if (!run->applies[id])
			continue;
		char *payload = forged_payload(run, id);
		r = payload != NULL ? probe_forge(&f, id, payload, &run->tokens[id]) : KM_ENOMEM;
		free(payload);
		if (r != KM_EOK) {
			snprintf(err, errlen, "cannot make the %s forgery: %s",
			         km_probe_checks(NULL)[id].name, km_strerror(r));
			return r;
		}
	}
	return KM_EOK;
}

/* ---- 3. and 5. the audit log ---- */

static int record_run(run_t *run, char *err, size_t errlen)
{
	json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "run", run->run_id, "url",
	                      run->target.url, "method", run->rep->method, "kid", run->key.kid,
	                      "tokens");
	json_t *list = json_object_get(a, "tokens");
	char *text = NULL;
	int r = KM_ENOMEM;
	for (size_t i = 0; a != NULL && i < PROBE_COUNT; i++) {
		const km_probe_result_t *x = &run->rep->results[i];
		if (run->tokens[i] != NULL &&
		    json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "check", x->check->name,
		                          "jti", x->jti, "signed_by", x->check->group ==
		                          KM_PROBE_FORGED ? "forged" : "key set")) != 0)
			goto out;
	}
	if (a == NULL || (text = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		goto out;
	r = km_store_audit_append(km_env_store(run->env), "probe.run", run->o->keyset,
	                          run->key.kid, NULL, text, "keymgr probe: tokens made, about to "
	                          "be sent", now_of(run), &run->rep->audit_seq, err, errlen);
out:
	free(text);
	json_decref(a);
	return r;
}

static void record_result(run_t *run)
{
	const km_probe_report_t *rep = run->rep;
	json_t *a = json_pack("{s:s, s:i, s:i, s:i, s:i, s:[], s:[], s:s?}", "run", run->run_id,
	                      "pass", (json_int_t)rep->n_pass, "fail", (json_int_t)rep->n_fail,
	                      "warn", (json_int_t)rep->n_warn, "error", (json_int_t)rep->n_error,
	                      "failed", "warned", "stopped",
	                      rep->stopped ? rep->stop_reason : NULL);
	char *text = NULL;
	for (size_t i = 0; a != NULL && i < rep->n_results; i++) {
		const km_probe_result_t *x = &rep->results[i];
		if (x->verdict == KM_PROBE_FAIL)
			json_array_append_new(json_object_get(a, "failed"), json_string(x->check->name));
		if (x->verdict == KM_PROBE_WARN)
			json_array_append_new(json_object_get(a, "warned"), json_string(x->check->name));
	}
	if (a != NULL && (text = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS)) != NULL)
		km_store_audit_append(km_env_store(run->env), "probe.result", run->o->keyset,
		                      run->key.kid, NULL, text, "keymgr probe: the endpoint's answers",
		                      now_of(run), NULL, NULL, 0);
	free(text);
	json_decref(a);
}

/* ---- 4. the requests ---- */

static void send_one(run_t *run, probe_id_t id)
{
	km_probe_result_t *x = res(run, id);
	char why[256] = "";
	if (!run->applies[id])
		return;
	if (run->rep->stopped) {
		snprintf(x->note, sizeof(x->note), "not sent: the run stopped");
		return;
	}
	/* A real-key token must still be valid when the endpoint reads it, or it would be
	 * refused for its age and not for what it tests. */
	if (run->tokens[id] != NULL && x->check->group != KM_PROBE_FORGED &&
	    now_of(run) > run->signed_at + KM_PROBE_SEND_WINDOW) {
		snprintf(x->note, sizeof(x->note), "not sent: more than %d s after it was signed "
		         "(the endpoint is too slow for 60 s tokens)", KM_PROBE_SEND_WINDOW);
		return;
	}
	int r = probe_client_send(run->client, run->tokens[id], &x->status, why, sizeof(why));
	if (r != KM_EOK) {
		snprintf(x->note, sizeof(x->note), "%s", why);
		return;
	}
	x->sent = true;
	x->accepted = probe_client_accepts(run->client, x->status);
}

/* Ends the run early: "WHAT (HTTP STATUS): WHY". */
static void stop(run_t *run, const char *what, long status, const char *why)
{
	run->rep->stopped = true;
	snprintf(run->rep->stop_reason, sizeof(run->rep->stop_reason), "%s (HTTP %ld): %s", what,
	         status, why);
}

static void grade(km_probe_report_t *rep, const bool *applies)
{
	for (size_t i = 0; i < rep->n_results; i++) {
		km_probe_result_t *x = &rep->results[i];
		if (!applies[i])
			x->verdict = KM_PROBE_NA;
		else if (!x->sent)
			x->verdict = KM_PROBE_ERROR;
		else if (x->check->expect_accept)
			x->verdict = x->accepted ? KM_PROBE_PASS : KM_PROBE_FAIL;
		else
			x->verdict = x->accepted ? KM_PROBE_FAIL :
			             x->fetched ? KM_PROBE_WARN : KM_PROBE_PASS;
		rep->n_pass += x->verdict == KM_PROBE_PASS;
		rep->n_fail += x->verdict == KM_PROBE_FAIL;
		rep->n_warn += x->verdict == KM_PROBE_WARN;
		rep->n_error += x->verdict == KM_PROBE_ERROR;
		rep->n_na += x->verdict == KM_PROBE_NA;
	}
}

static int send_all(run_t *run, char *err, size_t errlen)
{
	km_probe_result_t *none = res(run, PROBE_NO_TOKEN), *genuine = res(run, PROBE_GENUINE);
	char why[256] = "";
	int r = probe_client_send(run->client, NULL, &none->status, why, sizeof(why));
	if (r != KM_EOK) {
		snprintf(err, errlen, "cannot probe %s: %s; no token was sent", run->target.url, why);
		stop(run, "no answer to the request without a token", 0, why);
		return r;
	}
	none->sent = true;
	none->accepted = probe_client_accepts(run->client, none->status);
	if (none->accepted)
		stop(run, "the endpoint accepted a request without any token", none->status,
		     "it checks no token, there is nothing to probe");
	send_one(run, PROBE_GENUINE);
	if (!run->rep->stopped && !genuine->sent)
		stop(run, "the genuine token got no answer", genuine->status, genuine->note);
	else if (!run->rep->stopped && !genuine->accepted)
		stop(run, "the endpoint refused the genuine token", genuine->status, "it does not "
		     "trust this key set, or --aud, --header or --accept do not match what it "
		     "expects");
	for (probe_id_t id = PROBE_GENUINE + 1; id < PROBE_COUNT; id++)
		send_one(run, id);
	/* Fetches are counted once every request was answered: a verifier that fetches the key
	 * after it answered is still seen. */
	res(run, PROBE_JKU)->fetched = probe_keyserver_fetches(run->keys, false) > 0;
	res(run, PROBE_X5U)->fetched = probe_keyserver_fetches(run->keys, true) > 0;
	for (probe_id_t id = PROBE_JKU; id <= PROBE_X5U; id++)
		if (res(run, id)->fetched)
			snprintf(res(run, id)->note, sizeof(res(run, 0)->note), "the endpoint fetched "
			         "the probe's %s URL", id == PROBE_JKU ? "jku" : "x5u");
	return KM_EOK;
}

/* ---- the run ---- */

static int new_report(run_t *run)
{
	size_t n;
	const km_probe_check_t *checks = km_probe_checks(&n);
	km_probe_report_t *rep = calloc(1, sizeof(*rep));
	if (rep == NULL || (rep->results = calloc(n, sizeof(*rep->results))) == NULL) {
		free(rep);
		return KM_ENOMEM;
	}
	rep->n_results = n;
	for (size_t i = 0; i < n; i++)
		rep->results[i].check = &checks[i];
	snprintf(rep->env, sizeof(rep->env), "%s", run->o->env);
	snprintf(rep->keyset, sizeof(rep->keyset), "%s", run->o->keyset);
	snprintf(rep->url, sizeof(rep->url), "%s", run->target.url);
	snprintf(rep->method, sizeof(rep->method), "%s", run->o->method ? run->o->method : "GET");
	snprintf(rep->accept, sizeof(rep->accept), "%s", run->o->accept ? run->o->accept : "2xx");
	run->rep = rep;
	return KM_EOK;
}

static int prepare(run_t *run, char *err, size_t errlen)
{
	const char *aud = NULL;
	uint8_t raw[12];
	int r;
	if ((r = keyset_facts(run, &aud, err, errlen)) != KM_EOK ||
	    (r = base_claims(run, aud, err, errlen)) != KM_EOK)
		return r;
	snprintf(run->rep->aud, sizeof(run->rep->aud), "%s", aud ? aud : "");
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return KM_ECRYPTO;
	km_hex_encode(raw, sizeof(raw), run->run_id, sizeof(run->run_id));
	if ((r = active_key(run, err, errlen)) != KM_EOK)
		return r;
	applicability(run);
	if ((r = sign_real(run, err, errlen)) != KM_EOK)
		return r;
	return same_key(run, err, errlen);
}

int km_probe_run(const km_config_t *cfg, const km_probe_opts_t *o, km_probe_report_t **ret,
                 char *err, size_t errlen)
{
	run_t run = { .cfg = cfg, .o = o };
	int r;

	if (cfg == NULL || o == NULL || ret == NULL)
		return KM_EINVAL;
	if ((r = check_names(o, err, errlen)) != KM_EOK ||
	    (r = probe_target_parse(cfg, o->url, &run.target, err, errlen)) != KM_EOK ||
	    (r = probe_client_new(&run.target, o, &run.client, err, errlen)) != KM_EOK)
		goto out;
	if (!km_config_probe_env(cfg, o->env)) {
		const km_env_cfg_t *ecfg = NULL;
		if ((r = km_config_env_lookup(cfg, o->env, &ecfg, err, errlen)) == KM_EOK) {
			snprintf(err, errlen, "environment '%s' is not marked for probing: name it in "
			         "probe.environments of %s (nothing was signed or sent)", o->env,
			         km_config_path(cfg));
			r = KM_POLICY_EDENIED;
		}
		goto out;
	}
	if ((r = new_report(&run)) != KM_EOK ||
	    (r = km_env_open(cfg, o->env, &run.env, err, errlen)) != KM_EOK)
		goto out;
	run.rep->started_at = now_of(&run);
	if ((r = prepare(&run, err, errlen)) != KM_EOK)
		goto out;
	snprintf(run.rep->kid, sizeof(run.rep->kid), "%s", run.key.kid);
	snprintf(run.rep->alg, sizeof(run.rep->alg), "%s", km_alg_name(run.key.alg));
	if ((r = forge_all(&run, err, errlen)) != KM_EOK ||
	    (r = record_run(&run, err, errlen)) != KM_EOK)
		goto out;
	r = send_all(&run, err, errlen);
	run.rep->finished_at = now_of(&run);
	grade(run.rep, run.applies);
	record_result(&run);
	if (r == KM_EOK) {
		*ret = run.rep;
		run.rep = NULL;
	}
out:
	for (size_t i = 0; i < PROBE_COUNT; i++)
		free(run.tokens[i]);
	km_probe_report_free(run.rep);
	probe_keyserver_free(run.keys);
	probe_client_free(run.client);
	probe_key_free(run.run_key);
	json_decref(run.run_jwk);
	json_decref(run.claims);
	free(run.public_pem);
	free(run.cert_pem);
	km_env_free(run.env);
	return r;
}

void km_probe_report_free(km_probe_report_t *r)
{
	if (r == NULL)
		return;
	free(r->results);
	free(r);
}

bool km_probe_report_failed(const km_probe_report_t *r)
{
	return r == NULL || r->stopped || r->n_fail > 0 || r->n_error > 0;
}
