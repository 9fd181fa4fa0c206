/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The token identity marker: an object keymgr writes at `keymgr token init --env ENV` that
 * names the environment the token belongs to. Tokens whose label and serial are not unique
 * (every NSS database is "NSS Certificate DB", every tpm2 token has serial 0000000000000000)
 * are told apart by it; the environment wall (keymgr/core/env.c) refuses a token whose
 * marker names another environment.
 *
 * The marker is a private data object (CKO_DATA, CKA_TOKEN, CKA_PRIVATE) with
 * CKA_APPLICATION "keymgr-token-identity", the environment's name as CKA_VALUE and a random
 * id: 16 random bytes in hex as its CKA_LABEL (data objects have no CKA_ID; SoftHSM refuses
 * one with CKR_ATTRIBUTE_TYPE_INVALID). A token that keeps no data objects (NSS softoken:
 * C_CreateObject gives CKR_ATTRIBUTE_VALUE_INVALID) gets a small marker key instead: a P-256
 * pair, sensitive and not extractable, with CKA_ID "keymgr-token-identity" and CKA_LABEL
 * "keymgr-identity:ENV". A token that also refuses that template (Google's kmsp11: no
 * C_CreateObject, no CKA_ID chosen by the caller, labels of [a-zA-Z0-9_-], a keygen template
 * of label and algorithm only) gets two P-256 keys made from a label and the curve alone, with
 * the CKA_IDs the token gives them: one labelled "keymgr-identity-ENV", and a flag labelled
 * "keymgr-identity" that says the token has such a marker: only when the flag is found are the
 * private keys' labels read to find the environment (a token without any marker costs one more
 * search, no reads). All are private objects: only a holder of the PIN sees them.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"
#include "pkcs11/failure.h"
#include "pkcs11/internal.h"
#include "pkcs11/keys.h"
#include "pkcs11/recover.h"
#include "pkcs11/token_int.h"

#define APP "keymgr-token-identity"
#define KEY_ID "keymgr-token-identity"
#define KEY_LABEL_PREFIX "keymgr-identity:"
#define KEY_LABEL_FITTED "keymgr-identity-"
#define KEY_LABEL_FLAG "keymgr-identity"
#define MAX_MARKERS 4

/* The data markers' handles (admin_lock held). */
static CK_RV find_data(km_token_t *t, CK_OBJECT_HANDLE *objs, CK_ULONG *n)
{
	static CK_OBJECT_CLASS cls = CKO_DATA;
	static CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_APPLICATION, (void *)APP, strlen(APP) },
	};
	return km_p11_find(t, t->admin, tmpl, 3, objs, MAX_MARKERS, n);
}

/* The marker keys' private objects (admin_lock held). */
static CK_RV find_keys(km_token_t *t, CK_OBJECT_HANDLE *objs, CK_ULONG *n)
{
	static CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_ID, (void *)KEY_ID, strlen(KEY_ID) },
	};
	return km_p11_find(t, t->admin, tmpl, 2, objs, MAX_MARKERS, n);
}

/* Reads attribute type of obj as a string into out (admin_lock held). */
static CK_RV read_text(km_token_t *t, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type, char *out,
                       size_t len)
{
	CK_ATTRIBUTE a = { type, out, len - 1 };
	CK_RV rv = t->fl->C_GetAttributeValue(t->admin, obj, &a, 1);
	out[rv == CKR_OK ? a.ulValueLen : 0] = '\0';
	return rv;
}

/* The environment named after prefix in a marker key's label into env; false (env "") when
 * it does not fit (no environment name is that long: not keymgr's label). */
static bool env_after(const char *label, const char *prefix, char *env, size_t len)
{
	size_t n = strlen(label + strlen(prefix));
	env[0] = '\0';
	if (n >= len)
		return false;
	memcpy(env, label + strlen(prefix), n + 1);
	return true;
}

/* The environment a marker key with the token's own CKA_ID names (its label
 * "keymgr-identity-ENV") into env; "" when the token has no flag key (admin_lock held). */
static int find_fitted_key(km_token_t *t, char *env, size_t len)
{
	static CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE flag[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)KEY_LABEL_FLAG, strlen(KEY_LABEL_FLAG) },
	};
	CK_OBJECT_HANDLE found[1], *objs = NULL;
	CK_ULONG nflag = 0;
	size_t n = 0, cap = 0;
	char text[160];
	CK_RV rv = km_p11_find(t, t->admin, flag, 2, found, 1, &nflag);

	env[0] = '\0';
	if (rv == CKR_OK && nflag > 0)
		rv = km_p11_collect(t, CKO_PRIVATE_KEY, &objs, &n, &cap);
	for (size_t i = 0; rv == CKR_OK && i < n && env[0] == '\0'; i++)
		if (read_text(t, objs[i], CKA_LABEL, text, sizeof(text)) == CKR_OK &&
		    strncmp(text, KEY_LABEL_FITTED, strlen(KEY_LABEL_FITTED)) == 0)
			env_after(text, KEY_LABEL_FITTED, env, len);
	free(objs);
	if (rv != CKR_OK)
		return km_p11_fail(t, rv, "C_FindObjects (identity marker key, by label)");
	if (nflag > 0 && env[0] == '\0') {
		km_p11_set_error(t, "%s: the token has the identity marker flag key '"
		                 KEY_LABEL_FLAG "' but no key labelled '" KEY_LABEL_FITTED "ENV'",
		                 t->who);
		return KM_EINVAL;
	}
	return KM_EOK;
}

/* The environment the marker names into env ("" when the token has none); admin_lock held. */
static int read_locked(km_token_t *t, char *env, size_t len)
{
	CK_OBJECT_HANDLE objs[MAX_MARKERS];
	CK_ULONG n = 0;
	char text[160];
	CK_RV rv = find_data(t, objs, &n);

	env[0] = '\0';
	if (rv != CKR_OK)
		return km_p11_fail(t, rv, "C_FindObjects (identity marker)");
	if (n > 0) {
		if ((rv = read_text(t, objs[0], CKA_VALUE, text, sizeof(text))) != CKR_OK)
			return km_p11_fail(t, rv, "C_GetAttributeValue (identity marker)");
		snprintf(env, len, "%s", text);
		return KM_EOK;
	}
	if ((rv = find_keys(t, objs, &n)) != CKR_OK)
		return km_p11_fail(t, rv, "C_FindObjects (identity marker key)");
	if (n == 0)
		return find_fitted_key(t, env, len);
	if ((rv = read_text(t, objs[0], CKA_LABEL, text, sizeof(text))) != CKR_OK)
		return km_p11_fail(t, rv, "C_GetAttributeValue (identity marker key)");
	if (strncmp(text, KEY_LABEL_PREFIX, strlen(KEY_LABEL_PREFIX)) != 0) {
		km_p11_set_error(t, "%s: the identity marker key has the label '%.64s', not '"
		                 KEY_LABEL_PREFIX "ENV'", t->who, text);
		return KM_EINVAL;
	}
	if (!env_after(text, KEY_LABEL_PREFIX, env, len)) {
		km_p11_set_error(t, "%s: the identity marker key's label '%.64s...' names no "
		                 "environment (too long)", t->who, text);
		return KM_EINVAL;
	}
	return KM_EOK;
}

int km_token_marker_read(km_token_t *t, char *env, size_t len)
{
	char got[KM_TOKEN_MARKER_MAX];
	pthread_mutex_lock(&t->admin_lock);
	int r = km_p11_ready_locked(t);
	if (r == KM_EOK)
		r = read_locked(t, got, sizeof(got));
	pthread_mutex_unlock(&t->admin_lock);
	if (r == KM_EOK)
		snprintf(env, len, "%s", got);
	return r;
}

/* A P-256 pair made from label and curve alone, for a token that takes a keygen template of
 * label and algorithm only and chooses the CKA_ID itself (admin_lock held). */
static CK_RV make_fitted_key(km_token_t *t, const char *label, CK_OBJECT_HANDLE *hpub,
                             CK_OBJECT_HANDLE *hpriv)
{
	size_t params_len = 0;
	const uint8_t *params = km_p11_curve_params(KM_CRV_P256, &params_len);
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE pub[] = {
		{ CKA_EC_PARAMS, (void *)params, params_len },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_ATTRIBUTE priv[] = { { CKA_LABEL, (void *)label, strlen(label) } };
	return t->fl->C_GenerateKeyPair(t->admin, &mech, pub, 2, priv, 1, hpub, hpriv);
}

/* The fitted marker: the key naming env, then the flag; neither or both (admin_lock held). */
static CK_RV make_fitted_marker(km_token_t *t, const char *env)
{
	char label[KM_TOKEN_MARKER_MAX + sizeof(KEY_LABEL_FITTED)];
	CK_OBJECT_HANDLE hpub, hpriv, fpub, fpriv;

	snprintf(label, sizeof(label), KEY_LABEL_FITTED "%s", env);
	CK_RV rv = make_fitted_key(t, label, &hpub, &hpriv);
	if (rv != CKR_OK)
		return rv;
	if ((rv = make_fitted_key(t, KEY_LABEL_FLAG, &fpub, &fpriv)) != CKR_OK) {
		t->fl->C_DestroyObject(t->admin, hpriv);
		t->fl->C_DestroyObject(t->admin, hpub);
	}
	return rv;
}

/* The marker key: a P-256 pair that can do nothing but sign (admin_lock held). */
static CK_RV make_key(km_token_t *t, const char *env)
{
	static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	char label[KM_TOKEN_MARKER_MAX + sizeof(KEY_LABEL_PREFIX)];
	size_t params_len = 0;
	const uint8_t *params = km_p11_curve_params(KM_CRV_P256, &params_len);
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_OBJECT_HANDLE hpub, hpriv;

	snprintf(label, sizeof(label), KEY_LABEL_PREFIX "%s", env);
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_EC_PARAMS, (void *)params, params_len },
		{ CKA_ID, (void *)KEY_ID, strlen(KEY_ID) },
		{ CKA_LABEL, label, strlen(label) },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_ID, (void *)KEY_ID, strlen(KEY_ID) },
		{ CKA_LABEL, label, strlen(label) },
	};
	return t->fl->C_GenerateKeyPair(t->admin, &mech, pub, 5, priv, 7, &hpub, &hpriv);
}

static int write_locked(km_token_t *t, const char *env, bool *created)
{
	static CK_OBJECT_CLASS cls = CKO_DATA;
	static CK_BBOOL yes = CK_TRUE;
	char have[KM_TOKEN_MARKER_MAX];
	uint8_t id[16];
	char id_hex[2 * sizeof(id) + 1];
	CK_OBJECT_HANDLE h;
	int r = read_locked(t, have, sizeof(have));

	*created = false;
	if (r != KM_EOK)
		return r;
	if (strcmp(have, env) == 0)
		return KM_EOK;
	if (have[0] != '\0') {
		km_p11_set_error(t, "%s: the token's identity marker names environment '%s', not "
		                 "'%s': refused (a token belongs to one environment)", t->who, have,
		                 env);
		return KM_EWRONGENV;
	}
	if (RAND_bytes(id, sizeof(id)) != 1)
		return KM_ECRYPTO;
	km_hex_encode(id, sizeof(id), id_hex, sizeof(id_hex));
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_APPLICATION, (void *)APP, strlen(APP) },
		{ CKA_LABEL, id_hex, strlen(id_hex) },
		{ CKA_VALUE, (void *)env, strlen(env) },
	};
	CK_RV rv = t->fl->C_CreateObject(t->admin, tmpl, 6, &h);
	if (km_p11_refuses_data(rv))
		rv = make_key(t, env);
	if (km_p11_refuses_data(rv))
		rv = make_fitted_marker(t, env);
	if (rv != CKR_OK)
		return km_p11_fail(t, rv, "writing the identity marker");
	*created = true;
	return KM_EOK;
}

int km_token_marker_write(km_token_t *t, const char *env, bool *ret_created)
{
	bool created = false;
	if (env == NULL || env[0] == '\0' || strlen(env) >= KM_TOKEN_MARKER_MAX) {
		km_p11_set_error(t, "%s: identity marker: an environment name of 1..%d bytes is "
		                 "required", t->who, KM_TOKEN_MARKER_MAX - 1);
		return KM_EINVAL;
	}
	pthread_mutex_lock(&t->admin_lock);
	int r = km_p11_ready_locked(t);
	if (r == KM_EOK)
		r = write_locked(t, env, &created);
	pthread_mutex_unlock(&t->admin_lock);
	if (r == KM_EOK && ret_created != NULL)
		*ret_created = created;
	return r;
}
