/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The strong ETag of a document's bytes: the first 16 bytes of their SHA-256 in lowercase
 * hex, between double quotes. keymgrd's HTTP answers carry it, and so does the manifest of a
 * static tree (keymgr publish --to): the same bytes get the same ETag wherever they are
 * served.
 */
#pragma once

#include <stddef.h>

#define KM_ETAG_SIZE 35   /* '"' + 32 hex + '"' + NUL */

/* KM_EOK or KM_ECRYPTO. */
int km_etag_compute(const void *body, size_t len, char out[KM_ETAG_SIZE]);
