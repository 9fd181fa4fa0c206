/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal helpers of the HTTP server: If-None-Match evaluation (RFC 7232
 * section 3.2, weak comparison), IMF-fixdate (RFC 7231 section 7.1.1.1) and Prometheus label
 * escaping. No I/O, no locks: unit-testable on their own.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "keymgr/common/etag.h"

/* "Sun, 06 Nov 1994 08:49:37 GMT" + NUL */
#define KM_HTTP_DATE_SIZE 30

/* Entity tags: keymgr/common/etag.h (km_etag_compute, KM_ETAG_SIZE). */

/*
 * Evaluates one If-None-Match field value against the current entity tag: true when it is
 * "*" or lists a tag whose opaque part equals etag's (weak comparison: W/"x" matches "x").
 * A malformed field value is ignored as a whole (false), so the full 200 is sent.
 */
bool km_http_etag_none_match(const char *field, const char *etag);

/* Formats t as an IMF-fixdate, independent of the locale. Returns KM_EOK or KM_ERANGE. */
int km_http_date_format(time_t t, char out[KM_HTTP_DATE_SIZE]);

/* Writes s to f as a Prometheus label value (backslash, double quote, newline escaped). */
void km_http_prom_label(FILE *f, const char *s);
