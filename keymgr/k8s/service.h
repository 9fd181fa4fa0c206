/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ExternalJWTSigner service (service.c; docs/kubernetes.md) of keymgr-k8s-signer:
 * /v1.ExternalJWTSigner/{Sign,FetchKeys,Metadata} and the same under v1alpha1, answered
 * by asking keymgrd over its control socket (docs/control-protocol.md: "sign" with
 * "payload", and "keys"). No signing key, token or store here: keymgrd authorises this
 * process like any issuer (the key set's signers) and checks the service-account class.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/k8s/grpc.h"

/* Sends req to keymgrd, *reply its answer (new reference). KM_EOK, or a transport code with
 * err set (keymgrd not reachable). */
typedef int (*km_k8s_call_fn)(void *ctx, const json_t *req, json_t **reply, char *err,
                              size_t errlen);

typedef struct {
	const char *env;          /* the key set served */
	const char *keyset;
	km_k8s_call_fn call;
	void *call_ctx;
} km_k8s_service_t;

/* One client connection's context for km_k8s_handle. */
typedef struct {
	const km_k8s_service_t *svc;
	bool allowed;             /* the peer may call (SO_PEERCRED, --allow-user) */
	char peer[64];            /* "uid N" or the user name, for messages */
} km_k8s_peer_t;

/* The km_grpc_handler_fn of the service; ctx is a km_k8s_peer_t. */
void km_k8s_handle(void *ctx, const char *path, const uint8_t *msg, size_t len,
                   km_grpc_reply_t *reply);
