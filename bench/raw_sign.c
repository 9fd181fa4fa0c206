/* SPDX-License-Identifier: Apache-2.0 */
/* The raw C_SignInit + C_Sign peer of the signing benchmarks (raw_sign.h). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#include "bench/raw_sign.h"

struct bench_raw {
	CK_FUNCTION_LIST *fl;
	CK_SESSION_HANDLE sessions[BENCH_RAW_MAX_SESSIONS];
	int n;
	CK_OBJECT_HANDLE key;
	bool rsa;
	EVP_MD *sha256;         /* fetched once, as keymgr's token layer does (pkcs11/sign.c) */
};

/* The slot whose token is labelled label (blank-padded to 32 bytes in CK_TOKEN_INFO). */
static int find_slot(CK_FUNCTION_LIST *fl, const char *label, CK_SLOT_ID *ret)
{
	CK_SLOT_ID slots[64];
	CK_ULONG ns = 64;
	if (fl->C_GetSlotList(CK_TRUE, slots, &ns) != CKR_OK)
		return -1;
	for (CK_ULONG i = 0; i < ns; i++) {
		CK_TOKEN_INFO ti;
		char l[33];
		if (fl->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		memcpy(l, ti.label, 32);
		for (l[32] = '\0'; strlen(l) > 0 && l[strlen(l) - 1] == ' ';)
			l[strlen(l) - 1] = '\0';
		if (strcmp(l, label) == 0) {
			*ret = slots[i];
			return 0;
		}
	}
	return -1;
}

int bench_raw_open(const char *module, const char *label, const uint8_t *id, size_t id_len,
                   bool rsa, int n, bench_raw_t **ret)
{
	void *dl = dlopen(module, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	CK_C_GetFunctionList get = NULL;
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = { { CKA_CLASS, &cls, sizeof(cls) },
	                        { CKA_ID, (void *)id, id_len } };
	CK_ULONG found = 0;
	CK_SLOT_ID slot;
	bench_raw_t *r = calloc(1, sizeof(*r));

	if (r == NULL || dl == NULL || n < 1 || n > BENCH_RAW_MAX_SESSIONS)
		goto fail;
	r->rsa = rsa;
	if ((r->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		goto fail;
	*(void **)&get = dlsym(dl, "C_GetFunctionList");
	if (get == NULL || get(&r->fl) != CKR_OK)
		goto fail;
	/* keymgr initialised the module already; this only confirms it. */
	CK_RV rv = r->fl->C_Initialize(&args);
	if ((rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) ||
	    find_slot(r->fl, label, &slot) != 0)
		goto fail;
	for (; r->n < n; r->n++)
		if (r->fl->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
		                         &r->sessions[r->n]) != CKR_OK)
			goto fail;
	if (r->fl->C_FindObjectsInit(r->sessions[0], tmpl, 2) != CKR_OK ||
	    r->fl->C_FindObjects(r->sessions[0], &r->key, 1, &found) != CKR_OK ||
	    r->fl->C_FindObjectsFinal(r->sessions[0]) != CKR_OK || found != 1)
		goto fail;
	*ret = r;
	return 0;
fail:
	fprintf(stderr, "raw Cryptoki setup failed (module, token '%s' or key not found)\n", label);
	bench_raw_free(r);
	return -1;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int bench_raw_parse_id(const char *hex, uint8_t *id, size_t cap, size_t *len)
{
	size_t n = strlen(hex) / 2;
	if (strlen(hex) % 2 != 0 || n == 0 || n > cap)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n;
	return 0;
}

void bench_raw_free(bench_raw_t *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < r->n; i++)
		r->fl->C_CloseSession(r->sessions[i]);
	EVP_MD_free(r->sha256);
	free(r);
}

int bench_raw_sign_init(bench_raw_t *r, int idx)
{
	CK_MECHANISM mech = { r->rsa ? CKM_SHA256_RSA_PKCS : CKM_ECDSA, NULL, 0 };
	return r->fl->C_SignInit(r->sessions[idx], &mech, r->key) == CKR_OK ? 0 : -1;
}

int bench_raw_sign_prepared(bench_raw_t *r, int idx, const uint8_t *in, size_t len)
{
	uint8_t sig[1024], digest[32];
	CK_ULONG sl = sizeof(sig);
	if (!r->rsa) {
		unsigned dl = 0;
		if (EVP_Digest(in, len, digest, &dl, r->sha256, NULL) != 1)
			return -1;
		in = digest;
		len = dl;
	}
	return r->fl->C_Sign(r->sessions[idx], (CK_BYTE *)in, len, sig, &sl) == CKR_OK ? 0 : -1;
}

int bench_raw_sign(bench_raw_t *r, int idx, const uint8_t *in, size_t len)
{
	return bench_raw_sign_init(r, idx) == 0 ? bench_raw_sign_prepared(r, idx, in, len) : -1;
}

int bench_raw_keygen(bench_raw_t *r, int idx)
{
	static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	static CK_BYTE p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	static CK_BYTE exponent[] = { 0x01, 0x00, 0x01 };
	CK_ULONG bits = 2048;
	CK_MECHANISM mech = { r->rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE ec_pub[] = { { CKA_TOKEN, &yes, sizeof(yes) },
	                          { CKA_VERIFY, &yes, sizeof(yes) },
	                          { CKA_EC_PARAMS, p256, sizeof(p256) } };
	CK_ATTRIBUTE rsa_pub[] = { { CKA_TOKEN, &yes, sizeof(yes) },
	                           { CKA_VERIFY, &yes, sizeof(yes) },
	                           { CKA_MODULUS_BITS, &bits, sizeof(bits) },
	                           { CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent) } };
	CK_ATTRIBUTE priv[] = { { CKA_TOKEN, &yes, sizeof(yes) },
	                        { CKA_PRIVATE, &yes, sizeof(yes) },
	                        { CKA_SENSITIVE, &yes, sizeof(yes) },
	                        { CKA_EXTRACTABLE, &no, sizeof(no) },
	                        { CKA_SIGN, &yes, sizeof(yes) } };
	CK_OBJECT_HANDLE hpub, hpriv;
	CK_SESSION_HANDLE s = r->sessions[idx];
	CK_RV rv = r->rsa ? r->fl->C_GenerateKeyPair(s, &mech, rsa_pub, 4, priv, 5, &hpub, &hpriv)
	                  : r->fl->C_GenerateKeyPair(s, &mech, ec_pub, 3, priv, 5, &hpub, &hpriv);
	if (rv != CKR_OK)
		return -1;
	rv = r->fl->C_DestroyObject(s, hpriv);
	return r->fl->C_DestroyObject(s, hpub) == CKR_OK && rv == CKR_OK ? 0 : -1;
}
