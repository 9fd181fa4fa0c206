/* SPDX-License-Identifier: Apache-2.0 */
/* A probe report as JSON and as a standalone HTML page (docs/probe.md, "Reading a report"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/timefmt.h"
#include "keymgr/probe/probe_int.h"

static const char *expected(const km_probe_result_t *x)
{
	return x->check->expect_accept ? "accepted" : "refused";
}

/* What the endpoint did, in words: "accepted (200)", "refused (401)", "-". */
static const char *got(const km_probe_result_t *x, char *buf, size_t len)
{
	if (!x->sent)
		return "-";
	snprintf(buf, len, "%s (%ld)", x->accepted ? "accepted" : "refused", x->status);
	return buf;
}

static const char *result_of(const km_probe_report_t *r)
{
	if (r->n_fail > 0)
		return "vulnerable";
	return km_probe_report_failed(r) ? "inconclusive" : "clean";
}

json_t *km_probe_report_json(const km_probe_report_t *r)
{
	char a[40], b[40];
	json_t *checks = json_array();
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o, "
	                      "s:{s:I, s:I, s:I, s:I, s:I}, s:s, s:s?}",
	                      "env", r->env, "keyset", r->keyset, "kid", r->kid, "alg", r->alg,
	                      "url", r->url, "method", r->method, "accept", r->accept,
	                      "aud", r->aud,
	                      "started_at", km_time_rfc3339(r->started_at, a, sizeof(a)),
	                      "finished_at", km_time_rfc3339(r->finished_at, b, sizeof(b)),
	                      "audit_seq", (json_int_t)r->audit_seq, "checks", checks,
	                      "summary", "pass", (json_int_t)r->n_pass, "fail",
	                      (json_int_t)r->n_fail, "warn", (json_int_t)r->n_warn, "error",
	                      (json_int_t)r->n_error, "n/a", (json_int_t)r->n_na,
	                      "result", result_of(r),
	                      "stopped", r->stopped ? r->stop_reason : NULL);
	for (size_t i = 0; j != NULL && i < r->n_results; i++) {
		const km_probe_result_t *x = &r->results[i];
		json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:s}",
		                      "name", x->check->name,
		                      "group", km_probe_group_name(x->check->group),
		                      "tests", x->check->tests, "standard", x->check->standard,
		                      "expected", expected(x), "sent", x->sent,
		                      "accepted", x->accepted, "fetched", x->fetched,
		                      "verdict", km_probe_verdict_name(x->verdict));
		if (c == NULL || (x->sent && json_object_set_new(c, "status",
		                                                 json_integer(x->status)) != 0) ||
		    (x->jti[0] && json_object_set_new(c, "jti", json_string(x->jti)) != 0) ||
		    (x->note[0] && json_object_set_new(c, "note", json_string(x->note)) != 0) ||
		    json_array_append_new(checks, c) != 0) {
			json_decref(j);
			return NULL;
		}
	}
	return j;
}

/* A growing text buffer. */
typedef struct {
	char *s;
	size_t len, cap;
	bool oom;
} buf_t;

static void put(buf_t *b, const char *s, bool escape)
{
	for (; !b->oom && *s != '\0'; s++) {
		const char *rep = !escape ? NULL : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" :
		                  *s == '&' ? "&amp;" : *s == '"' ? "&quot;" : *s == '\'' ?
		                  "&#39;" : NULL;
		size_t n = rep != NULL ? strlen(rep) : 1;
		if (b->len + n + 1 > b->cap) {
			size_t cap = b->cap ? 2 * b->cap : 4096;
			char *p = realloc(b->s, cap);
			if (p == NULL) {
				b->oom = true;
				return;
			}
			b->s = p;
			b->cap = cap;
		}
		memcpy(b->s + b->len, rep != NULL ? rep : s, n);
		b->len += n;
		b->s[b->len] = '\0';
	}
}

/* <tr><td>cell</td>...</tr>, each cell escaped; class names the verdict. */
static void row(buf_t *b, const char *cls, const char *const *cells, size_t n)
{
	put(b, "<tr class=\"", false);
	put(b, cls, true);
	put(b, "\">", false);
	for (size_t i = 0; i < n; i++) {
		put(b, "<td>", false);
		put(b, cells[i] != NULL ? cells[i] : "", true);
		put(b, "</td>", false);
	}
	put(b, "</tr>\n", false);
}

int km_probe_report_html(const km_probe_report_t *r, char **ret)
{
	static const char head[] =
		"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
		"<title>keymgr probe report</title>\n<style>\n"
		"body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
		"td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
		"tr.FAIL{background:#fdd}tr.warn{background:#ffd}tr.error{background:#eee}"
		"tr.n\\/a{color:#888}code{font-size:90%}\n</style></head><body>\n";
	char a[40], b2[40], num[160], g[32];
	buf_t b = { NULL, 0, 0, false };
	put(&b, head, false);
	put(&b, "<h1>keymgr probe: ", false);
	put(&b, result_of(r), true);
	put(&b, "</h1>\n<p>Key set <code>", false);
	put(&b, r->env, true);
	put(&b, "/", false);
	put(&b, r->keyset, true);
	put(&b, "</code> (kid <code>", false);
	put(&b, r->kid, true);
	put(&b, "</code>, ", false);
	put(&b, r->alg, true);
	put(&b, ") against <code>", false);
	put(&b, r->method, true);
	put(&b, " ", false);
	put(&b, r->url, true);
	put(&b, "</code>, audience <code>", false);
	put(&b, r->aud, true);
	put(&b, "</code>, accepted means HTTP ", false);
	put(&b, r->accept, true);
	snprintf(num, sizeof(num), ". From %s to %s; audit event %lld.</p>\n",
	         km_time_rfc3339(r->started_at, a, sizeof(a)),
	         km_time_rfc3339(r->finished_at, b2, sizeof(b2)), (long long)r->audit_seq);
	put(&b, num, true);
	if (r->stopped) {
		put(&b, "<p><strong>The run stopped: ", false);
		put(&b, r->stop_reason, true);
		put(&b, "</strong></p>\n", false);
	}
	snprintf(num, sizeof(num), "<p>%zu pass, %zu FAIL, %zu warn, %zu error, %zu n/a.</p>\n",
	         r->n_pass, r->n_fail, r->n_warn, r->n_error, r->n_na);
	put(&b, num, false);
	put(&b, "<table>\n<tr><th>check</th><th>group</th><th>expected</th><th>got</th>"
	    "<th>verdict</th><th>what it tests</th><th>standard</th><th>note</th></tr>\n", false);
	for (size_t i = 0; i < r->n_results; i++) {
		const km_probe_result_t *x = &r->results[i];
		const char *cells[] = { x->check->name, km_probe_group_name(x->check->group),
		                        expected(x), got(x, g, sizeof(g)),
		                        km_probe_verdict_name(x->verdict), x->check->tests,
		                        x->check->standard, x->note };
		row(&b, km_probe_verdict_name(x->verdict), cells, sizeof(cells) / sizeof(cells[0]));
	}
	put(&b, "</table>\n<p>What each check means and how to act on it: docs/probe.md.</p>\n"
	    "</body></html>\n", false);
	if (b.oom) {
		free(b.s);
		return KM_ENOMEM;
	}
	*ret = b.s;
	return KM_EOK;
}
