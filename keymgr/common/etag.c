/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include <openssl/evp.h>

#include "keymgr/common/error.h"
#include "keymgr/common/etag.h"
#include "keymgr/common/hex.h"

int km_etag_compute(const void *body, size_t len, char out[KM_ETAG_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 16)
		return KM_ECRYPTO;
	out[0] = '"';
	km_hex_encode(md, 16, out + 1, KM_ETAG_SIZE - 1);
	out[33] = '"';
	out[34] = '\0';
	return KM_EOK;
}
