/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Validation of every name a user can type: environments, key sets, owners, purposes,
 * labels and kids. One place, so that the environment wall cannot be escaped by a name
 * ("production/../staging", slashes, control characters).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define KM_ENV_NAME_MAX 32
#define KM_KEYSET_NAME_MAX 64
#define KM_OWNER_MAX 128
#define KM_PURPOSE_MAX 64
#define KM_KID_MAX 128

/* A slug: [a-z][a-z0-9-]*, no trailing or doubled '-', 1..max characters. */
bool km_name_is_slug(const char *s, size_t max);

/* Environment name: a slug of at most KM_ENV_NAME_MAX characters. */
bool km_name_env_valid(const char *s);

/* Key set name (the part after ENV/): a slug of at most KM_KEYSET_NAME_MAX characters. */
bool km_name_keyset_valid(const char *s);

/*
 * A refused name or word as messages echo it: at most max bytes of in, every byte outside
 * printable ASCII shown as '?', into out (outlen > 0). The echo reaches logs and JSON replies
 * (keymgrd's control socket): cut inside a UTF-8 sequence, or with control bytes, it is neither
 * valid JSON text nor a safe log line (fuzz_ctl found refusals jansson could not build). Returns
 * out.
 */
const char *km_name_echo(const char *in, size_t max, char *out, size_t outlen);

/*
 * Splits "ENV/NAME" into its parts (each buffer at least max+1). With allow_env_only,
 * "ENV" alone is accepted and name_out is set to "". Writes a message naming the problem into
 * err. Returns KM_EOK or KM_ENAME.
 */
int km_name_split(const char *ref, bool allow_env_only, char env_out[KM_ENV_NAME_MAX + 1],
                  char name_out[KM_KEYSET_NAME_MAX + 1], char *err, size_t errlen);

/* Owner: 1..128 of [A-Za-z0-9._@+:-], starting with an alphanumeric. */
bool km_name_owner_valid(const char *s);

/* Built-in token classes: access-token, id-token, refresh-token, logout-token,
 * security-event-token, service-account-token (Kubernetes; docs/kubernetes.md). */
bool km_purpose_is_builtin(const char *s);

/* The purpose of Kubernetes service-account tokens (keymgr-k8s-signer, docs/kubernetes.md). */
#define KM_PURPOSE_SERVICE_ACCOUNT "service-account-token"
bool km_purpose_is_service_account(const char *purpose);

/* The built-in token classes, comma-separated ("access-token, id-token, ..."). Static. */
const char *km_purpose_builtin_list(void);

/* Purpose: a built-in class or a custom slug. */
bool km_name_purpose_valid(const char *s);

/* Label "k=v": k is 1..63 of [a-z0-9._/-]; v is 0..255 printable ASCII without control chars. */
bool km_name_label_valid(const char *kv);

/* kid: 1..128 base64url characters (what keymgr issues: RFC 7638 thumbprints). */
bool km_name_kid_valid(const char *s);
