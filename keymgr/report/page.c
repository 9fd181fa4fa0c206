/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The frame of keymgr's HTML pages (report_int.h): one file that needs nothing else. Its
 * Content-Security-Policy allows nothing from anywhere (default-src 'none'), and its one
 * <style> and its one script only by their SHA-256, so that no text a user typed can become
 * a style or a script even if it escaped its escaping, and the page fetches nothing.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "keymgr/common/error.h"
#include "keymgr/report/report_int.h"
#include "keymgr/report/timeline.h"

static const char page_css[] =
	"body{font-family:\"DejaVu Sans\",sans-serif;font-size:13px;color:#1d2329;margin:24px;"
	"max-width:1500px}"
	"h1{font-size:20px;margin:0 0 4px}"
	"h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #d8dde3;padding-bottom:2px}"
	".meta{color:#555;margin:2px 0}"
	".alarm{border:3px solid #b3261e;background:#fdecea;color:#4a0f0a;padding:10px 16px;"
	"margin:0 0 18px}"
	".alarm h1{color:#b3261e}"
	".badge{display:inline-block;padding:5px 10px;border-radius:4px;font-weight:bold}"
	".badge.ok{background:#e3f4e1;color:#1e5a1a;border:1px solid #59a14f}"
	".badge.failed{background:#fdecea;color:#b3261e;border:1px solid #b3261e}"
	"table{border-collapse:collapse;width:100%;font-size:12px;margin:6px 0}"
	"th,td{border:1px solid #d8dde3;padding:3px 5px;text-align:left;vertical-align:top}"
	"th{background:#eef1f4}"
	"th a{color:inherit;text-decoration:none}"
	"th[aria-sort=ascending] a::after{content:\" \\25B2\"}"
	"th[aria-sort=descending] a::after{content:\" \\25BC\"}"
	"code,.mono{font-family:\"DejaVu Sans Mono\",monospace;font-size:11px;"
	"overflow-wrap:anywhere}"
	".state{font-weight:bold}"
	".st-active{color:#2f6b29}.st-published{color:#2c4f78}.st-retired{color:#a65a10}"
	".st-removed,.st-destroyed{color:#6b6b6b}.st-revoked{color:#b3261e}"
	".actor{color:#666;font-size:11px;display:block}"
	".finding{color:#b3261e}"
	".none{color:#999}"
	".timeline{overflow-x:auto}"
	".timeline svg{max-width:100%;height:auto}"
	"@page{size:A4 landscape;margin:10mm}"
	"@media print{body{margin:0;font-size:10px;max-width:none}.timeline{overflow:visible}"
	"tr{break-inside:avoid}h2{break-after:avoid}"
	"*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}";

/* Sorts table#keys by the column whose th has data-col=COL when the address ends in
 * #sort=COL (or #sort=-COL, descending): the headers' links set it, so it needs no handler
 * attribute, works offline, and a sorted view can be bookmarked. Cells sort by their
 * data-sort value (times as RFC 3339) or their text. */
static const char sort_script[] =
	"(function(){var t=document.getElementById('keys');if(!t)return;"
	"function v(r,i){var c=r.cells[i];return c?(c.getAttribute('data-sort')||c.textContent):''}"
	"function sort(){var m=/^#sort=(-?)([a-z_]+)$/.exec(location.hash),h=t.tHead.rows[0].cells,"
	"i=-1,j;for(j=0;j<h.length;j++){var a=h[j].querySelector('a');h[j].removeAttribute("
	"'aria-sort');if(a)a.setAttribute('href','#sort='+h[j].getAttribute('data-col'));"
	"if(m&&h[j].getAttribute('data-col')===m[2])i=j}if(i<0)return;var d=m[1]?-1:1,"
	"b=t.tBodies[0],rs=Array.prototype.slice.call(b.rows);rs.sort(function(x,y){"
	"var p=v(x,i),q=v(y,i);return p<q?-d:p>q?d:0});rs.forEach(function(r){b.appendChild(r)});"
	"h[i].setAttribute('aria-sort',d>0?'ascending':'descending');h[i].querySelector('a')"
	".setAttribute('href','#sort='+(d>0?'-':'')+m[2])}"
	"window.addEventListener('hashchange',sort);sort()})();";

/* 'sha256-BASE64' of text, for the CSP. */
static int csp_hash(const char *a, const char *b, char out[64])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	         EVP_DigestUpdate(ctx, a, strlen(a)) == 1 &&
	         (b == NULL || EVP_DigestUpdate(ctx, b, strlen(b)) == 1) &&
	         EVP_DigestFinal_ex(ctx, md, &len) == 1 && len == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return KM_ECRYPTO;
	memcpy(out, "'sha256-", 8);
	EVP_EncodeBlock((unsigned char *)out + 8, md, 32);   /* 44 characters */
	memcpy(out + 52, "'", 2);
	return KM_EOK;
}

int km_page_begin(FILE *out, const char *title, km_page_script_t script)
{
	char style_hash[64], script_hash[64];
	int r = csp_hash(page_css, km_timeline_css, style_hash);
	if (r == KM_EOK && script == KM_PAGE_SORT_SCRIPT)
		r = csp_hash(sort_script, NULL, script_hash);
	if (r != KM_EOK)
		return r;
	fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	        "style-src %s; script-src %s; base-uri 'none'; form-action 'none'\">\n"
	        "<meta name=\"referrer\" content=\"no-referrer\">\n"
	        "<meta name=\"generator\" content=\"keymgr\">\n<title>", style_hash,
	        script == KM_PAGE_SORT_SCRIPT ? script_hash : "'none'");
	km_report_esc(out, title);
	fprintf(out, "</title>\n<style>%s%s</style>\n</head>\n<body>\n", page_css, km_timeline_css);
	return KM_EOK;
}

void km_page_end(FILE *out, km_page_script_t script)
{
	if (script == KM_PAGE_SORT_SCRIPT)
		fprintf(out, "<script>%s</script>\n", sort_script);
	fputs("</body>\n</html>\n", out);
}
