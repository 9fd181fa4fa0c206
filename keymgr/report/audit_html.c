/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The page of `keymgr audit report --format html` (report.h), drawn from the report's JSON
 * (keymgr/audit/report.c builds it from the replayed log) so that the page says exactly what
 * the table, CSV and JSON say: a failed verification first, in plain words; the chain's
 * state; the keys trusted at --at; the key sets; the timeline; one row per key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/report/report.h"
#include "keymgr/report/report_int.h"

#define DAY INT64_C(86400)

static const char *const steps[] = { "generated", "published", "activated", "retired",
                                     "removed", "revoked", "destroyed" };

static const char *s_of(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

static long long i_of(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void esc_el(FILE *out, const char *open, const char *text, const char *close)
{
	fputs(open, out);
	km_report_esc(out, text);
	fputs(close, out);
}

/* The audit key that signed the checkpoint at seq ("" when there is none). */
static void checkpoint_kid(km_env_t *env, long long seq, char kid[KM_KID_MAX + 1])
{
	km_store_checkpoint_t *c = NULL;
	size_t n = 0;
	char err[256];
	kid[0] = '\0';
	if (seq <= 0 || km_store_checkpoints(km_env_store(env), &c, &n, err, sizeof(err)) != KM_EOK)
		return;
	for (size_t i = n; i-- > 0;)
		if (c[i].seq == seq) {
			snprintf(kid, KM_KID_MAX + 1, "%s", c[i].key_kid);
			break;
		}
	free(c);
}

static void alarm(FILE *out, json_t *rep, json_t *audit)
{
	fputs("<section class=\"alarm\" role=\"alert\" id=\"verification-failed\">\n<h1>Do not "
	      "trust this report: the audit log failed verification</h1>\n<p>", out);
	km_report_escf(out, "Event %lld of the audit log of %s does not check out: %s.",
	               i_of(audit, "first_bad_seq"), s_of(rep, "env"), s_of(audit, "problem"));
	fputs("</p>\n<p>The log or the store was changed after the events were written, so the "
	      "owners, keys, times and people below may be false. Keep the store file as "
	      "evidence, and verify a copy you trust with <code>keymgr audit verify ", out);
	km_report_esc(out, s_of(rep, "env"));
	fputs(" --store COPY</code>.</p>\n</section>\n", out);
}

static void chain(FILE *out, km_env_t *env, json_t *audit)
{
	bool ok = json_is_true(json_object_get(audit, "verified"));
	long long cp = i_of(audit, "checkpoint_seq"), unsigned_ev = i_of(audit, "unsigned_events");
	char kid[KM_KID_MAX + 1];
	fprintf(out, "<section id=\"chain\"><h2>Audit chain</h2>\n<p class=\"badge %s\" "
	        "id=\"chain-badge\">%s</p>\n<ul>\n", ok ? "ok" : "failed",
	        ok ? "Audit log verified" : "Audit log FAILED verification");
	if (ok)
		fprintf(out, "<li>%lld events, verified up to sequence %lld: every event's hash, "
		        "every checkpoint's signature, and the store agreeing with the log.</li>\n",
		        i_of(audit, "events"), cp + unsigned_ev);
	else
		fprintf(out, "<li>Verification stopped at event %lld of %lld.</li>\n",
		        i_of(audit, "first_bad_seq"), i_of(audit, "events"));
	checkpoint_kid(env, cp, kid);
	if (cp > 0) {
		fprintf(out, "<li>Last signed checkpoint: sequence %lld at ", cp);
		km_report_esc(out, s_of(audit, "checkpoint_at"));
		fputs(", signed by audit key <code id=\"audit-kid\">", out);
		km_report_esc(out, kid[0] ? kid : "(unknown)");
		fputs("</code>. Compare it with the kid you keep out of band.</li>\n", out);
	} else {
		fputs("<li>No signed checkpoint yet: nothing signed covers the log "
		      "(<code>keymgr audit checkpoint</code>).</li>\n", out);
	}
	if (unsigned_ev > 0)
		fprintf(out, "<li>%lld later event%s not yet covered by a signed checkpoint: they are "
		        "hash-chained, but could be cut without a trace.</li>\n", unsigned_ev,
		        unsigned_ev == 1 ? " is" : "s are");
	fputs("</ul></section>\n", out);
}

static void trusted(FILE *out, json_t *t)
{
	size_t i;
	json_t *v;
	fputs("<section id=\"trusted\"><h2>Trusted at ", out);
	km_report_esc(out, s_of(t, "at"));
	fputs("</h2>\n<p>", out);
	if (json_is_integer(json_object_get(t, "jwks_serial")))
		fprintf(out, "JWKS serial %lld was served then. ", i_of(t, "jwks_serial"));
	else
		fputs("No JWKS had been served yet. ", out);
	fprintf(out, "%zu key%s in it:</p>\n<ul id=\"trusted-kids\">\n",
	        json_array_size(json_object_get(t, "kids")),
	        json_array_size(json_object_get(t, "kids")) == 1 ? " was" : "s were");
	json_array_foreach(json_object_get(t, "kids"), i, v)
		esc_el(out, "<li><code>", json_string_value(v), "</code></li>\n");
	fputs("</ul>\n", out);
	json_t *cached = json_object_get(t, "cached");
	if (json_array_size(cached) == 0) {
		fputs("<p>No key had left the JWKS recently enough to be in a verifier's cached "
		      "copy.</p>\n", out);
	} else {
		fputs("<p>Possibly still trusted by verifiers that cached an earlier JWKS (out of "
		      "the JWKS for less than jwks_max_age):</p>\n<ul id=\"cached-kids\">\n", out);
		json_array_foreach(cached, i, v) {
			esc_el(out, "<li><code>", s_of(v, "kid"), "</code> (");
			km_report_escf(out, "%s; left the JWKS %s, cached until %s", s_of(v, "keyset"),
			               s_of(v, "left_jwks_at"), s_of(v, "cached_until"));
			fputs(")</li>\n", out);
		}
		fputs("</ul>\n", out);
	}
	fputs("</section>\n", out);
}

static void keysets(FILE *out, json_t *rep)
{
	size_t i, j;
	json_t *ks, *v;
	fputs("<section id=\"keysets\"><h2>Key sets</h2>\n<table id=\"keyset-table\"><thead><tr>"
	      "<th>Key set</th><th>Algorithm</th><th>Owner</th><th>Purpose</th><th>Description"
	      "</th><th>Created</th><th>Policy</th><th>Compliance</th><th>Owner and purpose "
	      "history</th></tr></thead>\n<tbody>\n", out);
	json_array_foreach(json_object_get(rep, "keysets"), i, ks) {
		json_t *pol = json_object_get(ks, "policy");
		fputs("<tr class=\"keyset\" data-keyset=\"", out);
		km_report_esc(out, s_of(ks, "name"));
		fputs("\">", out);
		esc_el(out, "<td class=\"mono\">", s_of(ks, "name"), "</td>");
		esc_el(out, "<td>", s_of(ks, "alg"), "</td>");
		esc_el(out, "<td class=\"owner\">", s_of(ks, "owner"), "</td>");
		esc_el(out, "<td>", s_of(ks, "purpose"), "</td>");
		esc_el(out, "<td>", s_of(ks, "description"), "</td>");
		esc_el(out, "<td><span class=\"mono\">", s_of(ks, "created_at"), "</span>");
		esc_el(out, "<span class=\"actor\">", s_of(ks, "created_by_actor"), "</span></td>");
		if (json_is_object(pol)) {
			fputs("<td>", out);
			km_report_escf(out, "rotation %s, publish lead %s, retire retention %s, destroy "
			               "after %s, jwks_max_age %s", s_of(pol, "rotation_period"),
			               s_of(pol, "publish_lead"), s_of(pol, "retire_retention"),
			               s_of(pol, "destroy_after"), s_of(pol, "jwks_max_age"));
			fputs("</td>", out);
		} else {
			fputs("<td class=\"finding\">the policy has errors in the configuration</td>", out);
		}
		if (json_is_true(json_object_get(ks, "compliant"))) {
			fputs("<td>compliant</td>", out);
		} else {
			fputs("<td><ul>", out);
			json_array_foreach(json_object_get(ks, "findings"), j, v)
				esc_el(out, "<li class=\"finding\">", json_string_value(v), "</li>");
			fputs("</ul></td>", out);
		}
		fputs("<td><ul>", out);
		json_array_foreach(json_object_get(ks, "history"), j, v) {
			if (strcmp(s_of(v, "action"), "keyset.create") == 0)
				continue;
			fputs("<li>", out);
			km_report_escf(out, "%s %s: %s \xE2\x86\x92 %s by %s via %s%s%s", s_of(v, "time"),
			               s_of(v, "action") + 7, s_of(v, "from"), s_of(v, "to"),
			               s_of(v, "by"), s_of(v, "via"), s_of(v, "reason")[0] ? ": " : "",
			               s_of(v, "reason"));
			fputs("</li>", out);
		}
		fputs("</ul></td></tr>\n", out);
	}
	fputs("</tbody></table></section>\n", out);
}

/* A step's cell: its time (sort key), who did it and how, and why when it says. */
static void step_cell(FILE *out, json_t *step)
{
	if (!json_is_object(step)) {
		fputs("<td data-sort=\"\"><span class=\"none\">-</span></td>", out);
		return;
	}
	json_t *a = json_object_get(step, "actor");
	fputs("<td data-sort=\"", out);
	km_report_esc(out, s_of(step, "at"));
	esc_el(out, "\"><span class=\"mono\">", s_of(step, "at"), "</span>");
	if (json_is_object(a)) {
		fputs("<span class=\"actor\">", out);
		km_report_escf(out, "%s (uid %lld) @ %s via %s, pid %lld", s_of(a, "user"),
		               i_of(a, "uid"), s_of(a, "host"), s_of(a, "via"), i_of(a, "pid"));
		fputs("</span>", out);
	} else {
		fputs("<span class=\"actor\">before the log began</span>", out);
	}
	if (s_of(step, "reason")[0] != '\0')
		esc_el(out, "<span class=\"actor\">", s_of(step, "reason"), "</span>");
	fputs("</td>", out);
}

static void two_lines(FILE *out, const char *cls, const char *a, const char *b)
{
	fprintf(out, "<td class=\"%s\" data-sort=\"", cls);
	km_report_esc(out, a);
	esc_el(out, "\">", a, "");
	esc_el(out, "<span class=\"actor\">", b, "</span></td>");
}

static void ownership(FILE *out, json_t *rep, bool has_at)
{
	static const char *const cols[][2] = {
		{ "keyset", "Key set" }, { "kid", "Kid" }, { "state", "State" }, { "alg", "Alg" },
		{ "made_for", "Made for (owner, purpose)" }, { "owner_now", "Now (owner, purpose)" },
		{ "generated", "Generated" }, { "published", "Published" },
		{ "activated", "Activated" }, { "retired", "Retired" }, { "removed", "Removed" },
		{ "revoked", "Revoked" }, { "destroyed", "Destroyed" }, { "rotation", "Rotation" },
		{ "cached_until", "Cached by verifiers until" }, { "at", "At --at" },
	};
	size_t n_cols = sizeof(cols) / sizeof(cols[0]) - (has_at ? 0 : 1), i, j;
	json_t *ks, *k;
	fputs("<section id=\"ownership\"><h2>Ownership: every key</h2>\n<p class=\"meta\">One row "
	      "per key. Select a column's title to sort by it (again: the other way).</p>\n"
	      "<table id=\"keys\"><thead><tr>", out);
	for (i = 0; i < n_cols; i++)
		fprintf(out, "<th data-col=\"%s\"><a href=\"#sort=%s\">%s</a></th>", cols[i][0],
		        cols[i][0], cols[i][1]);
	fputs("</tr></thead>\n<tbody>\n", out);
	json_array_foreach(json_object_get(rep, "keysets"), i, ks) {
		json_array_foreach(json_object_get(ks, "keys"), j, k) {
			json_t *st = json_object_get(k, "steps");
			const char *kid = s_of(k, "kid"), *state = s_of(k, "state");
			fputs("<tr class=\"key\" data-kid=\"", out);
			km_report_esc(out, kid);
			esc_el(out, "\" data-state=\"", state, "\">");
			esc_el(out, "<td class=\"mono\">", s_of(ks, "name"), "</td>");
			esc_el(out, "<td class=\"mono kid\">", kid[0] ? kid :
			       "(no kid: the token never made it)", "</td>");
			esc_el(out, "<td class=\"state st-", state, "\">");
			km_report_esc(out, state);
			fprintf(out, "%s</td>", json_is_true(json_object_get(k, "pending")) ?
			        " (pending)" : "");
			esc_el(out, "<td>", s_of(ks, "alg"), "</td>");
			if (json_is_string(json_object_get(k, "owner_at_creation")))
				two_lines(out, "owner-made", s_of(k, "owner_at_creation"),
				          s_of(k, "purpose_at_creation"));
			else
				fputs("<td class=\"owner-made none\" data-sort=\"\">older than the log</td>",
				      out);
			two_lines(out, "owner-now", s_of(k, "owner"), s_of(k, "purpose"));
			for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++)
				step_cell(out, json_object_get(st, steps[s]));
			esc_el(out, "<td>", s_of(k, "rotation"), "");
			if (s_of(k, "signed_for")[0])
				esc_el(out, "<span class=\"actor\">signed for ", s_of(k, "signed_for"),
				       "</span>");
			fputs("</td>", out);
			esc_el(out, "<td class=\"mono\" data-sort=\"", s_of(k, "cached_until"), "\">");
			km_report_esc(out, s_of(k, "cached_until"));
			fputs("</td>", out);
			if (has_at) {
				const char *trust = s_of(k, "trust_at");
				const char *how = strcmp(trust, "jwks") == 0 ? "trusted: in the JWKS" :
				                  strcmp(trust, "cache") == 0 ? "possibly trusted from a "
				                  "cached JWKS" : "not trusted";
				two_lines(out, "at", s_of(k, "state_at")[0] ? s_of(k, "state_at") :
				          "not made yet", how);
			}
			fputs("</tr>\n", out);
		}
	}
	fputs("</tbody></table></section>\n", out);
}

/* Where the page's timeline starts: a year before ref, or a week before the first key set
 * was created when that is later (a young environment is not drawn in its last pixels). */
static int timeline_from(km_env_t *env, int64_t ref, int64_t *ret, char *err, size_t errlen)
{
	km_store_keyset_t *list = NULL;
	size_t n = 0;
	int64_t from = ref - 365 * DAY, first = INT64_MAX;
	int r = km_store_keyset_list(km_env_store(env), NULL, &list, &n, err, errlen);
	for (size_t i = 0; r == KM_EOK && i < n; i++)
		if (list[i].created_at < first)
			first = list[i].created_at;
	km_store_keysets_free(list);
	if (r != KM_EOK)
		return r;
	if (first != INT64_MAX && first - 7 * DAY > from)
		from = first - 7 * DAY < ref ? first - 7 * DAY : ref - 7 * DAY;
	*ret = from;
	return KM_EOK;
}

int km_report_audit_html(km_env_t *env, json_t *rep, const km_report_audit_opts_t *o,
                         FILE *out, char *err, size_t errlen)
{
	json_t *audit = json_object_get(rep, "audit");
	bool ok = json_is_true(json_object_get(audit, "verified"));
	char title[128], t[KM_TIME_TEXT_MAX];
	km_timeline_t *tl = NULL;
	int64_t ref = o->has_at && o->at < o->now ? o->at : o->now, from = 0;
	snprintf(title, sizeof(title), "Audit report: %s", km_env_name(env));
	int r = timeline_from(env, ref, &from, err, errlen);
	if (r == KM_EOK)
		r = km_timeline_create(from, o->now + 90 * DAY, o->now, &tl);
	if (r == KM_EOK && o->has_at)
		r = km_timeline_moment(tl, o->at, "at");
	if (r == KM_EOK)
		r = km_report_timeline_env(env, tl, err, errlen);
	if (r == KM_EOK)
		r = km_page_begin(out, title, KM_PAGE_SORT_SCRIPT);
	if (r != KM_EOK)
		goto out;
	if (!ok)
		alarm(out, rep, audit);
	esc_el(out, "<header><h1>", title, "</h1>\n");
	fprintf(out, "<p class=\"meta\">Generated %s by keymgr from the environment's audit log "
	        "(report version %lld).", km_report_time(o->now, t, sizeof(t)),
	        i_of(rep, "version"));
	if (o->has_at)
		fprintf(out, " Trust is shown at %s.", km_report_time(o->at, t, sizeof(t)));
	fputs("</p></header>\n", out);
	chain(out, env, audit);
	if (o->has_at)
		trusted(out, json_object_get(rep, "trusted_at"));
	keysets(out, rep);
	fputs("<section id=\"timeline\"><h2>Timeline</h2>\n<p class=\"meta\">One band per key set, "
	      "one bar per key, coloured by state; hatched after now (the planner's schedule); "
	      "red stripes: the exposure after a revocation; dashed lines: owner and purpose "
	      "changes. Hover a bar for its kid and dates.</p>\n<div class=\"timeline\">\n", out);
	if ((r = km_timeline_svg(tl, 0, out)) != KM_EOK)
		goto out;
	fputs("</div></section>\n", out);
	ownership(out, rep, o->has_at);
	km_page_end(out, KM_PAGE_SORT_SCRIPT);
	r = ferror(out) ? KM_EIO : KM_EOK;
out:
	if (r != KM_EOK && err[0] == '\0')
		snprintf(err, errlen, "%s", km_strerror(r));
	km_timeline_free(tl);
	return r;
}
