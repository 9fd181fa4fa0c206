/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the control-socket protocol as keymgrd serves one connection
 * (docs/control-protocol.md), from the bytes on the socket to the reply, with no token and no
 * store:
 *
 *   1. frames: km_ctl_reader_next() over a real Unix socket pair, up to 4 frames per input
 *      (pipelined requests), as ctl_server.c's connection thread reads them;
 *   2. routing as ctl_server.c does it: "sign" to the signing service, no op or an unknown op
 *      refused by the connection's thread (kd_control_refuse_early()), everything else to the
 *      main thread's dispatcher;
 *   3. status/reload/tick/keys: kd_control_check() (known op, env and keyset names, served
 *      environment), then kd_control_dispatch() for refusals, for status and for keys (none
 *      of these key sets is kubernetes: true, so keys is refused before a store), on a
 *      synthetic daemon serving two environments of a real configuration (loaded once from a
 *      YAML file in a temp dir). An accepted tick or reload stops there: they run a pass over
 *      the stores and tokens, or reload the configuration file;
 *   4. sign: kd_signing_request() of the real signing service with no signing context open:
 *      keyset reference, claims type and ttl checks, then "not_served". A request that gets
 *      that far continues as the signing context would take it: the authorisation decision
 *      (kd_allow_check, the peer picked by input byte 0 against each key set's synthetic
 *      uid/gid list), then km_claims_sign_resolved[_object]() with the key set's claims
 *      policy (issuer, audiences, max_token_ttl from the configuration; the purpose, i.e. the
 *      token class, from the table below) and a token callback that answers as signer.c does
 *      when its token is not open. So the whole claims policy runs, and signing stops at the
 *      token: no request here can be signed, and none is answered with a made-up JWT.
 *
 * Invariants checked (abort on violation): every refusal has ok:false, a non-empty error and
 * a non-empty code; every accepted status is ok:true with an environments array; a reply
 * frames again (km_ctl_write); claims that pass the policy reach the token and nothing else,
 * and their prepared form carries iss, aud, exp, iat, nbf and jti with 0 < exp - iat <=
 * max_token_ttl.
 *
 * Input byte 0: bit 0 set = the harness prefixes the correct length (reaches the JSON);
 * clear = the bytes are sent as they are (lying and huge lengths). Bits 1-3 pick the peer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/claims/claims.h"
#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/control/control_proto.h"
#include "keymgr/daemon/authz.h"
#include "keymgr/daemon/control.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/pass.h"
#include "keymgr/daemon/reload.h"
#include "keymgr/daemon/signer.h"
#include "keymgr/daemon/state.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* tick and reload act on stores and tokens: kd_control_check() is the harness's last step
 * for them, so these are never called (keymgr/daemon/pass.c and reload.c define them in
 * keymgrd; fuzz/meson.build leaves those files out). */
size_t kd_run_once(kd_daemon_t *d, bool force, const char *env, const char *keyset,
                   size_t *failed)
{
	(void)d, (void)force, (void)env, (void)keyset, (void)failed;
	abort();
}

int kd_reload(kd_daemon_t *d, const char *who, const kd_peer_t *peer, char *err, size_t errlen)
{
	(void)d, (void)who, (void)peer, (void)err, (void)errlen;
	abort();
}

static const char config_yaml[] =
	"version: 1\n"
	"environments:\n"
	"  production:\n"
	"    token: { module: /nonexistent/libsofthsm2.so, label: fuzz, pin: 'file:/nonexistent' }\n"
	"    store: /nonexistent/production.db\n"
	"    http: { path: /production }\n"
	"    policy: { max_token_ttl: 1h }\n"
	"    keysets:\n"
	"      api:\n"
	"        issuer: https://auth.example.com\n"
	"        audiences: [ api.example.com, other.example.com ]\n"
	"        signers: { users: [ root ], groups: [ root ] }\n"
	"      idt:\n"
	"        issuer: https://id.example.com\n"
	"        audiences: [ client-1 ]\n"
	"        signers: { users: [ root ] }\n"
	"      bcl:\n"
	"        issuer: https://id.example.com\n"
	"        audiences: [ rp-1 ]\n"
	"        signers: { users: [ root ] }\n"
	"      set:\n"
	"        issuer: https://events.example.com\n"
	"        audiences: [ receiver ]\n"
	"        policy: { max_token_ttl: 5m }\n"
	"        signers: { users: [ root ] }\n"
	"      noiss:\n"
	"        audiences: [ api.example.com ]\n"
	"        signers: { users: [ root ] }\n"
	"      sa:\n"
	"        issuer: https://kubernetes.default.svc\n"
	"        audiences: [ https://kubernetes.default.svc, vault ]\n"
	"        signers: { users: [ root ] }\n"
	"  staging:\n"
	"    token: { module: /nonexistent/libsofthsm2.so, label: fuzz-st, pin: 'file:/nonexistent' }\n"
	"    store: /nonexistent/staging.db\n"
	"    http: { path: /staging }\n"
	"    keysets:\n"
	"      api:\n"
	"        issuer: https://staging.example.com\n"
	"        audiences: [ api ]\n"
	"        signers: { users: [ root ] }\n";

/* Key sets the signing context would hold: the purpose is the store's (token class). */
static const struct {
	const char *env, *keyset, *purpose;
	uid_t uid;      /* allowed uid */
	gid_t gid;      /* allowed gid, (gid_t)-1: none */
} keyset_table[] = {
	{ "production", "api", "access-token", 1000, 2000 },
	{ "production", "bcl", "logout-token", 1001, (gid_t)-1 },
	{ "production", "idt", "id-token", 1000, (gid_t)-1 },
	{ "production", "noiss", "refresh-token", 1000, 2000 },
	{ "production", "set", "security-event-token", 1000, 2001 },
	{ "production", "sa", "service-account-token", 1000, 2000 },
	{ "staging", "api", "custom-thing", 1000, 2000 },
};
#define N_KEYSETS (sizeof(keyset_table) / sizeof(keyset_table[0]))

typedef struct {
	km_claims_key_t key;
	kd_allow_t allow;
	uid_t uids[1];
	gid_t gids[1];
} fz_keyset_t;

static km_config_t *cfg;
static kd_daemon_t daemon_state;
static kd_env_t envs[2];
static kd_signing_t *signing;
static fz_keyset_t keysets[N_KEYSETS];
static kd_peer_t peers[8];

static const char token_msg[] = "environment's signing token is not open (fuzz harness: no token)";

/* What signer.c's signing_token() answers while its token is not open. */
static int no_token(void *ctx, km_token_t **ret, char *err, size_t errlen)
{
	(void)ctx, (void)ret;
	snprintf(err, errlen, "%s", token_msg);
	return KM_P11_ENOTOKEN;
}

static void setup_peer(kd_peer_t *p, bool known, uid_t uid, gid_t gid, gid_t supp)
{
	memset(p, 0, sizeof(*p));
	p->known = known;
	p->uid = uid;
	p->gid = gid;
	p->pid = 4242;
	if (supp != (gid_t)-1)
		p->groups[p->n_groups++] = supp;
	snprintf(p->user, sizeof(p->user), "uid-%d", (int)uid);
	snprintf(p->who, sizeof(p->who), "uid=%d pid=%d", (int)uid, (int)p->pid);
}

static void setup(void)
{
	char dir[] = "/tmp/fuzz_ctl.XXXXXX", path[64], err[1024];
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/keymgr.yaml", dir);
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs(config_yaml, f) < 0 || fclose(f) != 0 || chmod(path, 0600) != 0)
		abort();
	if (km_config_load(path, &cfg, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "fuzz_ctl: config: %s\n", err);
		abort();
	}
	unlink(path);
	rmdir(dir);
	kd_log_set_level(KD_LOG_ERROR);   /* refusals are logged as warnings: keep stderr quiet */

	static const char *names[2] = { "production", "staging" };
	for (size_t i = 0; i < 2; i++) {
		kd_env_t *e = &envs[i];
		snprintf(e->name, sizeof(e->name), "%s", names[i]);
		e->cfg = km_config_env(cfg, names[i]);
		if (e->cfg == NULL)
			abort();
		snprintf(e->path, sizeof(e->path), "/%s/.well-known/jwks.json", names[i]);
		e->serial = 7;
		e->token_ok = i == 0;
		e->token_error = i == 0 ? NULL : strdup("token 'fuzz-st' not found");
	}
	daemon_state.cfg = cfg;
	daemon_state.envs = envs;
	daemon_state.n_envs = 2;
	daemon_state.ctl_fd = -1;
	daemon_state.started = 1700000000;
	daemon_state.healthy = true;
	if (kd_signing_create(&signing) != KM_EOK)
		abort();
	daemon_state.signing = signing;

	for (size_t i = 0; i < N_KEYSETS; i++) {
		fz_keyset_t *k = &keysets[i];
		const km_keyset_cfg_t *kc = km_config_keyset(cfg, keyset_table[i].env,
		                                             keyset_table[i].keyset);
		if (kc == NULL)
			abort();
		k->key.pol_r = km_claims_policy_init(&k->key.pol, keyset_table[i].env,
		                                     keyset_table[i].keyset, keyset_table[i].purpose,
		                                     kc, kc->policy.max_token_ttl);
		if (k->key.pol_r != KM_EOK)
			abort();
		k->key.key_r = KM_EOK;
		snprintf(k->key.kid, sizeof(k->key.kid), "fuzz-kid-%zu", i);
		k->key.alg = KM_ALG_ES256;
		k->uids[0] = keyset_table[i].uid;
		k->gids[0] = keyset_table[i].gid;
		k->allow.uids = k->uids;
		k->allow.n_uids = 1;
		k->allow.gids = k->gids;
		k->allow.n_gids = keyset_table[i].gid != (gid_t)-1;
	}
	setup_peer(&peers[0], true, 1000, 100, (gid_t)-1);          /* listed uid */
	setup_peer(&peers[1], true, 1001, 100, (gid_t)-1);          /* listed for bcl only */
	setup_peer(&peers[2], true, 1002, 2000, (gid_t)-1);         /* listed primary group */
	setup_peer(&peers[3], true, 1003, 100, 2001);               /* listed supplementary group */
	setup_peer(&peers[4], true, 0, 0, (gid_t)-1);               /* root: no implicit right */
	setup_peer(&peers[5], false, (uid_t)-1, (gid_t)-1, 2000);   /* SO_PEERCRED failed */
	setup_peer(&peers[6], true, 1004, 100, 2002);               /* nobody listed */
	setup_peer(&peers[7], true, 1000, 2000, 2001);              /* listed every way */
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* A refusal: ok false, a non-empty error and code; code_want when given. */
static void check_refusal(const json_t *reply, const char *code_want)
{
	const char *error = json_string_value(json_object_get(reply, "error"));
	const char *code = json_string_value(json_object_get(reply, "code"));
	if (!json_is_false(json_object_get(reply, "ok")) || error == NULL || error[0] == '\0' ||
	    code == NULL || code[0] == '\0' || (code_want != NULL && strcmp(code, code_want) != 0)) {
		char *s = json_dumps(reply, 0);
		fprintf(stderr, "fuzz_ctl: bad refusal (want code %s): %s\n",
		        code_want ? code_want : "any", s ? s : "(null)");
		abort();
	}
}

static fz_keyset_t *find_keyset(const char *env, const char *name)
{
	for (size_t i = 0; i < N_KEYSETS; i++)
		if (strcmp(keyset_table[i].env, env) == 0 && strcmp(keyset_table[i].keyset, name) == 0)
			return &keysets[i];
	return NULL;
}

/* ttl as kd_signing_request() accepted it: absent, positive seconds or a positive duration. */
static int64_t accepted_ttl(json_t *v)
{
	int64_t ttl = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (!json_is_string(v) || km_duration_parse(json_string_value(v), &ttl) != KM_EOK ||
	    ttl <= 0)
		abort();   /* kd_signing_request() let a bad ttl through */
	return ttl;
}

/* The prepared claims of an accepted request: what km_claims_prepare*() promise. */
static void check_prepared(const km_claims_policy_t *pol, const json_t *claims, int64_t now,
                           int64_t ttl)
{
	char err[1024] = "";
	json_t *out = NULL;
	if (km_claims_prepare_object(pol, claims, now, ttl, &out, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "fuzz_ctl: claims passed once, then refused: %s\n", err);
		abort();
	}
	const char *iss = json_string_value(json_object_get(out, "iss"));
	json_t *aud = json_object_get(out, "aud"), *exp = json_object_get(out, "exp");
	json_t *iat = json_object_get(out, "iat");
	if (iss == NULL || pol->issuer == NULL || strcmp(iss, pol->issuer) != 0 ||
	    !(json_is_string(aud) || json_is_array(aud)) || !json_is_integer(exp) ||
	    !json_is_integer(iat) || json_integer_value(iat) != now ||
	    !json_is_integer(json_object_get(out, "nbf")) ||
	    !json_is_string(json_object_get(out, "jti")) ||
	    json_integer_value(exp) - now <= 0 ||
	    json_integer_value(exp) - now > pol->max_token_ttl)
		abort();
	json_decref(out);
}

/* The signing context's part of a sign request that passed kd_signing_request()'s checks. */
static void sign_in_context(const kd_peer_t *peer, json_t *req)
{
	char env[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1], err[1024] = "";
	const char *ref = json_string_value(json_object_get(req, "keyset"));
	json_t *cv = json_object_get(req, "claims");
	if (ref == NULL || km_name_split(ref, false, env, name, err, sizeof(err)) != KM_EOK)
		abort();   /* kd_signing_request() let a bad reference through */
	int64_t ttl = accepted_ttl(json_object_get(req, "ttl"));
	fz_keyset_t *k = find_keyset(env, name);
	if (k == NULL || !kd_allow_check(&k->allow, peer))
		return;   /* "denied": an open context answers that (its reply is not built here) */
	if (peer->uid == 0 || !peer->known)
		abort();   /* root or an unknown peer was allowed: no list names them */

	char *jwt = NULL;
	bool audit_denied = true;
	int64_t now = (int64_t)time(NULL);
	int r;
	const char *payload = json_string_value(json_object_get(req, "payload"));
	if (payload != NULL && cv == NULL)   /* keymgr-k8s-signer's form */
		r = km_claims_sign_payload_resolved(&k->key, no_token, NULL, payload, now, &jwt,
		                                    &audit_denied, err, sizeof(err));
	else if (json_is_object(cv))
		r = km_claims_sign_resolved_object(&k->key, no_token, NULL, cv, now, ttl, &jwt,
		                                   &audit_denied, err, sizeof(err));
	else
		r = km_claims_sign_resolved(&k->key, no_token, NULL, json_string_value(cv), now, ttl,
		                            &jwt, &audit_denied, err, sizeof(err));
	if (r == KM_EOK || jwt != NULL || audit_denied || err[0] == '\0')
		abort();
	if (r == KM_P11_ENOTOKEN) {
		/* Everything but the token passed: the claims are what the policy allows. */
		if (strcmp(err, token_msg) != 0)
			abort();
		if (cv == NULL) {
			/* a payload reached the token: only a service-account key set takes one */
			if (!km_claims_is_sa(k->key.pol.purpose))
				abort();
		} else if (json_is_object(cv)) {
			check_prepared(&k->key.pol, cv, now, ttl);
		} else {
			json_t *o = json_loads(json_string_value(cv), JSON_REJECT_DUPLICATES, NULL);
			if (!json_is_object(o))
				abort();
			check_prepared(&k->key.pol, o, now, ttl);
			json_decref(o);
		}
		return;
	}
	if (r != KM_EMALFORMED && r != KM_POLICY_EDENIED && r != KM_EINVAL) {
		fprintf(stderr, "fuzz_ctl: unexpected claims code %d (%s): %s\n", r, km_strerror(r),
		        err);
		abort();
	}
	json_t *reply = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", err, "code",
	                          km_ctl_code_name(r));
	check_refusal(reply, NULL);
	json_decref(reply);
}

/* One request, routed as ctl_server.c's connection thread routes it. */
static json_t *serve(const kd_peer_t *peer, json_t *req)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	if (op != NULL && strcmp(op, "sign") == 0) {
		char *jwt = NULL;
		json_t *reply = kd_signing_request(signing, peer, req, &jwt);
		if (jwt != NULL || reply == NULL)
			abort();   /* no signing context: nothing can be signed */
		check_refusal(reply, NULL);
		if (strcmp(json_string_value(json_object_get(reply, "code")), "not_served") == 0)
			sign_in_context(peer, req);
		return reply;
	}
	json_t *early = kd_control_refuse_early(req, peer);
	if (early != NULL) {
		check_refusal(early, "bad_request");
		return early;
	}
	const char *env = NULL, *keyset = NULL;
	json_t *refused = kd_control_check(&daemon_state, req, &op, &env, &keyset);
	if (refused != NULL) {
		check_refusal(refused, "bad_request");
		json_decref(refused);
	} else if (strcmp(op, "status") != 0 && strcmp(op, "keys") != 0) {
		if (strcmp(op, "tick") != 0 && strcmp(op, "reload") != 0)
			abort();
		return NULL;   /* accepted tick/reload: a pass or a reload, not run here */
	}
	json_t *reply = kd_control_dispatch(&daemon_state, req, peer);
	if (reply == NULL)
		abort();
	if (refused != NULL) {
		check_refusal(reply, "bad_request");
		return reply;
	}
	if (strcmp(op, "keys") == 0) {
		/* no key set of this configuration is served to kube-apiserver (kubernetes: true):
		 * refused before any store is read */
		check_refusal(reply, NULL);
		return reply;
	}
	json_t *list = json_object_get(reply, "environments");
	if (!json_is_true(json_object_get(reply, "ok")) || !json_is_array(list) ||
	    json_array_size(list) > daemon_state.n_envs || (env != NULL && json_array_size(list) != 1))
		abort();
	return reply;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (cfg == NULL)
		setup();
	const kd_peer_t *peer = &peers[(data[0] >> 1) & 7];
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	if (data[0] & 1) {
		uint32_t n = (uint32_t)(size - 1);
		uint8_t len[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
		send_all(sv[1], len, 4);
	}
	send_all(sv[1], data + 1, size - 1); /* inputs are small: fits the socket buffer */
	shutdown(sv[1], SHUT_WR);

	km_ctl_reader_t *rd = NULL;
	if (km_ctl_reader_create(sv[0], KM_CTL_MAX_REQUEST, &rd) != KM_EOK)
		abort();
	for (int i = 0; i < 4; i++) {
		json_t *req = NULL, *reply = NULL;
		char err[256] = "";
		int r = km_ctl_reader_next(rd, &req, err, sizeof(err));
		if (r != KM_EOK) {
			if (err[0] == '\0' || req != NULL)
				abort();
			break;   /* KM_EIO: the end of the input; others are answered and close */
		}
		if (!json_is_object(req))
			abort();
		reply = serve(peer, req);
		json_decref(req);
		if (reply != NULL && km_ctl_write(sv[0], reply) != KM_EOK)
			abort();   /* what the server answers must frame again */
		json_decref(reply);
	}
	km_ctl_reader_free(rd);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
