/* SPDX-License-Identifier: Apache-2.0 */
/* Public keys from the RFCs, shared by the JOSE unit tests. */
#pragma once

#include <string.h>

#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/common/pubkey.h"

/* RFC 7638 section 3.1 (the RFC 7517 appendix A.1 RSA key). */
#define RFC7638_N                                                                          \
	"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo" \
	"c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YG" \
	"jQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt" \
	"-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
#define RFC7638_E "AQAB"
#define RFC7638_KID "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

/* RFC 8037 appendix A.2/A.3 (Ed25519). */
#define RFC8037_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#define RFC8037_KID "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

/* RFC 7517 appendix A.1 EC P-256 key; thumbprint computed with python3-jwcrypto 1.1. */
#define RFC7517_EC_X "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"
#define RFC7517_EC_Y "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"
#define RFC7517_EC_KID "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s"

/* RFC 7520 section 3.2 EC P-521 key; thumbprint computed with python3-jwcrypto 1.1. */
#define RFC7520_P521_X                                                                     \
	"AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt"
#define RFC7520_P521_Y                                                                     \
	"AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"
#define RFC7520_P521_KID "dHri3SADZkrush5HU_50AoRhcKFryN-PI6jPBtPL55M"

static inline size_t vec_decode(const char *b64, uint8_t *out)
{
	size_t len = 0;
	if (km_b64url_decode(b64, strlen(b64), out, &len) != KM_EOK)
		return 0;
	return len;
}

static inline km_pubkey_t vec_rsa(void)
{
	km_pubkey_t k;
	memset(&k, 0, sizeof(k));
	k.kty = KM_KTY_RSA;
	k.n_len = vec_decode(RFC7638_N, k.n);
	k.e_len = vec_decode(RFC7638_E, k.e);
	k.rsa_bits = 2048;
	return k;
}

static inline km_pubkey_t vec_ed25519(void)
{
	km_pubkey_t k;
	memset(&k, 0, sizeof(k));
	k.kty = KM_KTY_OKP;
	k.crv = KM_CRV_ED25519;
	k.x_len = vec_decode(RFC8037_X, k.x);
	return k;
}

static inline km_pubkey_t vec_p256(void)
{
	km_pubkey_t k;
	memset(&k, 0, sizeof(k));
	k.kty = KM_KTY_EC;
	k.crv = KM_CRV_P256;
	k.x_len = vec_decode(RFC7517_EC_X, k.x);
	k.y_len = vec_decode(RFC7517_EC_Y, k.y);
	return k;
}

static inline km_pubkey_t vec_p521(void)
{
	km_pubkey_t k;
	memset(&k, 0, sizeof(k));
	k.kty = KM_KTY_EC;
	k.crv = KM_CRV_P521;
	k.x_len = vec_decode(RFC7520_P521_X, k.x);
	k.y_len = vec_decode(RFC7520_P521_Y, k.y);
	return k;
}
