/* SPDX-License-Identifier: Apache-2.0 */
/* What the files of keymgr/report share: escaped output and the HTML page's frame. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "keymgr/common/timefmt.h"

/*
 * Writes s as XML/HTML text or attribute value: & < > " ' as character references, a
 * control character (but tab and newline) or a byte that is not valid UTF-8 as U+FFFD. What
 * users typed (owners, descriptions, reasons) and what a store holds never becomes markup.
 */
void km_report_esc(FILE *out, const char *s);

/* printf, then km_report_esc() of the result (at most 4095 bytes). */
void km_report_escf(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "2026-12-07T05:03:21Z" into buf (KM_TIME_TEXT_MAX), "" for KM_STORE_TIME_NONE. */
const char *km_report_time(int64_t t, char *buf, size_t len);

/* Which inline script a page carries (each is allowed by its hash in the page's CSP). */
typedef enum {
	KM_PAGE_NO_SCRIPT = 0,
	KM_PAGE_SORT_SCRIPT,       /* sorts table#keys by the column named in #sort=COL */
} km_page_script_t;

/*
 * Writes the top of a self-contained page: <!DOCTYPE html>, a Content-Security-Policy that
 * allows nothing from anywhere (default-src 'none'), its one <style> and its script by their
 * SHA-256 only, the title and the opening <body>. KM_ECRYPTO (the hash), KM_EOK.
 */
int km_page_begin(FILE *out, const char *title, km_page_script_t script);

/* Writes the script (if any) and closes the page. */
void km_page_end(FILE *out, km_page_script_t script);
