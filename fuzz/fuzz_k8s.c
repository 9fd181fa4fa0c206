/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: keymgr-k8s-signer's network face (keymgr/k8s/grpc.c and service.c), from
 * the bytes a client writes on the Unix socket to the gRPC answers. A process that can reach
 * the socket writes what it likes, so HTTP/2 framing, the gRPC message framing and the
 * protobuf decoding of SignJWTRequest, FetchKeysRequest and MetadataRequest are an attack
 * surface.
 *
 * The input follows the HTTP/2 client preface (added here, so that the fuzzer spends its time
 * past it) and is fed in two pieces split at the first byte's value, to a server connection
 * whose handler is the real service with a stand-in for keymgrd: "sign" answers a JWT
 * carrying the payload as given, "keys" a fixed JWKS with one P-256 key. The first byte also
 * says whether the peer is allowed. Invariants (abort on violation): the connection never
 * writes more than 1 MiB per input; every handler reply is OK with a message or an error
 * with one, never both.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/k8s/grpc.h"
#include "keymgr/k8s/service.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static const char jwks[] =
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES256\",\"use\":\"sig\","
	"\"kid\":\"k1\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	"\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

static size_t written;

static int fake_keymgrd(void *ctx, const json_t *req, json_t **reply, char *err, size_t errlen)
{
	(void)ctx;
	const char *op = json_string_value(json_object_get(req, "op"));
	if (op != NULL && strcmp(op, "sign") == 0) {
		const char *p = json_string_value(json_object_get(req, "payload"));
		char *jwt = NULL;
		if (p == NULL || asprintf(&jwt, "eyJhbGciOiJFUzI1NiJ9.%s.c2ln", p) < 0)
			return KM_ENOMEM;
		*reply = json_pack("{s:b, s:s}", "ok", 1, "jwt", jwt);
		free(jwt);
	} else if (op != NULL && strcmp(op, "keys") == 0) {
		json_error_t je;
		*reply = json_pack("{s:b, s:o, s:I, s:I, s:I}", "ok", 1, "jwks",
		                   json_loads(jwks, 0, &je), "max_token_ttl", (json_int_t)3600,
		                   "refresh_hint", (json_int_t)60, "now", (json_int_t)1900000000);
	} else {
		snprintf(err, errlen, "unknown op");
		return KM_EIO;
	}
	return *reply != NULL ? KM_EOK : KM_ENOMEM;
}

static void handle(void *ctx, const char *path, const uint8_t *msg, size_t len,
                   km_grpc_reply_t *reply)
{
	km_k8s_handle(ctx, path, msg, len, reply);
	if ((reply->status == KM_GRPC_OK) != (reply->resp != NULL) ||
	    (reply->status != KM_GRPC_OK && reply->msg[0] == '\0'))
		abort();
}

static ssize_t sink(void *ctx, const uint8_t *data, size_t len)
{
	(void)ctx;
	(void)data;
	written += len;
	if (written > (1u << 20))
		abort();
	return (ssize_t)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	km_k8s_service_t svc = { .env = "production", .keyset = "k8s", .call = fake_keymgrd };
	km_k8s_peer_t peer = { .svc = &svc, .allowed = size == 0 || (data[0] & 1) == 0,
	                       .peer = "fuzz" };
	km_grpc_conn_t *c = NULL;
	written = 0;
	if (km_grpc_conn_create(handle, &peer, sink, NULL, &c) != KM_EOK)
		return 0;
	size_t split = size > 0 ? data[0] % (size + 1) : 0;
	if (km_grpc_conn_recv(c, (const uint8_t *)preface, sizeof(preface) - 1) == KM_EOK &&
	    km_grpc_conn_recv(c, data, split) == KM_EOK) {
		km_grpc_conn_send(c);
		if (km_grpc_conn_recv(c, data + split, size - split) == KM_EOK)
			km_grpc_conn_send(c);
	}
	km_grpc_conn_free(c);
	return 0;
}
