/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/common/sigverify.h"
#include "keymgr/jose/jwk.h"
#include "keymgr/k8s/externaljwt.pb-c.h"
#include "keymgr/k8s/service.h"

typedef enum { M_SIGN, M_FETCH_KEYS, M_METADATA, M_NONE } method_t;

static method_t method_of(const char *path)
{
	static const char *const pkgs[] = { "/v1.ExternalJWTSigner/", "/v1alpha1.ExternalJWTSigner/" };
	for (size_t i = 0; i < 2; i++) {
		size_t n = strlen(pkgs[i]);
		if (strncmp(path, pkgs[i], n) != 0)
			continue;
		if (strcmp(path + n, "Sign") == 0)
			return M_SIGN;
		if (strcmp(path + n, "FetchKeys") == 0)
			return M_FETCH_KEYS;
		if (strcmp(path + n, "Metadata") == 0)
			return M_METADATA;
	}
	return M_NONE;
}

__attribute__((format(printf, 3, 4)))
static void fail(km_grpc_reply_t *r, int status, const char *fmt, ...)
{
	va_list ap;
	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
}

/* keymgrd's refusal code -> gRPC status. */
static int status_of(const char *code)
{
	static const struct {
		const char *code;
		int status;
	} map[] = {
		{ "denied", KM_GRPC_PERMISSION_DENIED },
		{ "policy_denied", KM_GRPC_INVALID_ARGUMENT },
		{ "malformed", KM_GRPC_INVALID_ARGUMENT },
		{ "bad_request", KM_GRPC_INVALID_ARGUMENT },
		{ "busy", KM_GRPC_UNAVAILABLE },
		{ "unavailable", KM_GRPC_UNAVAILABLE },
		{ "token_error", KM_GRPC_UNAVAILABLE },
		{ "not_served", KM_GRPC_FAILED_PRECONDITION },
		{ "unknown_keyset", KM_GRPC_FAILED_PRECONDITION },
		{ "no_active_key", KM_GRPC_FAILED_PRECONDITION },
		{ "invalid_name", KM_GRPC_FAILED_PRECONDITION },
	};
	for (size_t i = 0; code != NULL && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].code, code) == 0)
			return map[i].status;
	return KM_GRPC_INTERNAL;
}

/* Asks keymgrd; NULL (with r filled) unless it answered ok. */
static json_t *ask(const km_k8s_service_t *svc, json_t *req, km_grpc_reply_t *r)
{
	json_t *reply = NULL;
	char err[256] = "";
	if (req == NULL) {
		fail(r, KM_GRPC_INTERNAL, "%s", "out of memory");
		return NULL;
	}
	int rc = svc->call(svc->call_ctx, req, &reply, err, sizeof(err));
	json_decref(req);
	if (rc != KM_EOK) {
		fail(r, KM_GRPC_UNAVAILABLE, "keymgrd: %s", err[0] ? err : km_strerror(rc));
		return NULL;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *msg = json_string_value(json_object_get(reply, "error"));
		fail(r, status_of(json_string_value(json_object_get(reply, "code"))), "keymgrd: %s",
		     msg ? msg : "refused");
		json_decref(reply);
		return NULL;
	}
	return reply;
}

static void pack(km_grpc_reply_t *r, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	r->resp = malloc(n ? n : 1);
	if (r->resp == NULL) {
		fail(r, KM_GRPC_INTERNAL, "%s", "out of memory");
		return;
	}
	r->resp_len = protobuf_c_message_pack(m, r->resp);
	r->status = KM_GRPC_OK;
}

static void sign(const km_k8s_service_t *svc, const uint8_t *msg, size_t len,
                 km_grpc_reply_t *r)
{
	V1__SignJWTRequest *req = v1__sign_jwtrequest__unpack(NULL, len, msg);
	if (req == NULL) {
		fail(r, KM_GRPC_INVALID_ARGUMENT, "%s", "SignJWTRequest: not a valid message");
		return;
	}
	if (req->claims == NULL || req->claims[0] == '\0') {
		v1__sign_jwtrequest__free_unpacked(req, NULL);
		fail(r, KM_GRPC_INVALID_ARGUMENT, "%s", "SignJWTRequest: claims is empty");
		return;
	}
	char ref[160];
	snprintf(ref, sizeof(ref), "%s/%s", svc->env, svc->keyset);
	json_t *reply = ask(svc, json_pack("{s:s, s:s, s:s}", "op", "sign", "keyset", ref,
	                                   "payload", req->claims), r);
	const char *jwt = json_string_value(json_object_get(reply, "jwt"));
	const char *dot1 = jwt ? strchr(jwt, '.') : NULL;
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (reply != NULL && (dot2 == NULL || (size_t)(dot2 - dot1 - 1) != strlen(req->claims) ||
	                      memcmp(dot1 + 1, req->claims, strlen(req->claims)) != 0)) {
		fail(r, KM_GRPC_INTERNAL, "%s", "keymgrd's JWT does not carry the payload as given");
	} else if (reply != NULL) {
		char *header = strndup(jwt, (size_t)(dot1 - jwt));
		V1__SignJWTResponse out = V1__SIGN_JWTRESPONSE__INIT;
		out.header = header;
		out.signature = (char *)dot2 + 1;
		if (header == NULL)
			fail(r, KM_GRPC_INTERNAL, "%s", "out of memory");
		else
			pack(r, &out.base);
		free(header);
	}
	json_decref(reply);
	v1__sign_jwtrequest__free_unpacked(req, NULL);
}

/* The key set's JWKS keys as Key messages. */
static void fetch_keys(const km_k8s_service_t *svc, json_t *reply, km_grpc_reply_t *r)
{
	json_t *keys = json_object_get(json_object_get(reply, "jwks"), "keys");
	size_t n = json_array_size(keys);
	V1__Key *kv = calloc(n ? n : 1, sizeof(*kv));
	V1__Key **kp = calloc(n ? n : 1, sizeof(*kp));
	char (*kids)[KM_KID_MAX + 1] = calloc(n ? n : 1, sizeof(*kids));
	bool ok = kv != NULL && kp != NULL && kids != NULL;
	size_t i = 0;
	if (!ok)
		fail(r, KM_GRPC_INTERNAL, "%s", "out of memory");
	for (; ok && i < n; i++) {
		km_pubkey_t pub;
		char why[160] = "";
		v1__key__init(&kv[i]);
		kp[i] = &kv[i];
		if (km_jwk_to_pubkey(json_array_get(keys, i), &pub, NULL, kids[i], sizeof(kids[i]),
		                     why, sizeof(why)) != KM_EOK || kids[i][0] == '\0') {
			fail(r, KM_GRPC_INTERNAL, "the key set's JWKS holds a key keymgr cannot read: %s",
			     why);
			ok = false;
		} else if (pub.kty != KM_KTY_RSA && pub.kty != KM_KTY_EC) {
			fail(r, KM_GRPC_FAILED_PRECONDITION, "key %s is neither RSA nor ECDSA: "
			     "kube-apiserver accepts RS256, ES256, ES384 and ES512 keys only", kids[i]);
			ok = false;
		} else if (km_pubkey_spki_der(&pub, &kv[i].key.data, &kv[i].key.len) != KM_EOK) {
			fail(r, KM_GRPC_INTERNAL, "key %s: no PKIX form", kids[i]);
			ok = false;
		} else {
			kv[i].key_id = kids[i];
		}
	}
	if (ok) {
		Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
		ts.seconds = json_integer_value(json_object_get(reply, "now"));
		V1__FetchKeysResponse out = V1__FETCH_KEYS_RESPONSE__INIT;
		out.n_keys = n;
		out.keys = kp;
		out.data_timestamp = &ts;
		out.refresh_hint_seconds = json_integer_value(json_object_get(reply, "refresh_hint"));
		if (out.refresh_hint_seconds <= 0)
			fail(r, KM_GRPC_FAILED_PRECONDITION, "%s", "keymgrd gave no refresh hint");
		else
			pack(r, &out.base);
	}
	for (size_t k = 0; kv != NULL && k < n; k++)
		free(kv[k].key.data);
	free(kv);
	free(kp);
	free(kids);
	(void)svc;
}

/* FetchKeys and Metadata: an empty request, then keymgrd's "keys". */
static void keys(const km_k8s_service_t *svc, method_t m, const uint8_t *msg, size_t len,
                 km_grpc_reply_t *r)
{
	ProtobufCMessage *req = m == M_FETCH_KEYS ?
		(ProtobufCMessage *)v1__fetch_keys_request__unpack(NULL, len, msg) :
		(ProtobufCMessage *)v1__metadata_request__unpack(NULL, len, msg);
	if (req == NULL) {
		fail(r, KM_GRPC_INVALID_ARGUMENT, "%s", m == M_FETCH_KEYS ?
		     "FetchKeysRequest: not a valid message" : "MetadataRequest: not a valid message");
		return;
	}
	protobuf_c_message_free_unpacked(req, NULL);
	json_t *reply = ask(svc, json_pack("{s:s, s:s, s:s}", "op", "keys", "env", svc->env,
	                                   "keyset", svc->keyset), r);
	if (reply == NULL)
		return;
	if (m == M_FETCH_KEYS) {
		fetch_keys(svc, reply, r);
	} else {
		V1__MetadataResponse out = V1__METADATA_RESPONSE__INIT;
		out.max_token_expiration_seconds =
			json_integer_value(json_object_get(reply, "max_token_ttl"));
		pack(r, &out.base);
	}
	json_decref(reply);
}

void km_k8s_handle(void *ctx, const char *path, const uint8_t *msg, size_t len,
                   km_grpc_reply_t *reply)
{
	const km_k8s_peer_t *p = ctx;
	method_t m = method_of(path);
	if (m == M_NONE) {
		fail(reply, KM_GRPC_UNIMPLEMENTED, "unknown method %.128s (this is "
		     "v1.ExternalJWTSigner and v1alpha1.ExternalJWTSigner)", path);
		return;
	}
	if (!p->allowed) {
		fail(reply, KM_GRPC_PERMISSION_DENIED, "%s may not call this signer "
		     "(keymgr-k8s-signer --allow-user)", p->peer);
		return;
	}
	if (m == M_SIGN)
		sign(p->svc, msg, len, reply);
	else
		keys(p->svc, m, msg, len, reply);
}
