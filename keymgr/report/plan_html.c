/* SPDX-License-Identifier: Apache-2.0 */
/* The page of `keymgr plan --format html` (report.h): the timeline and the plan as a table. */
#include <stdio.h>

#include "keymgr/common/error.h"
#include "keymgr/report/report.h"
#include "keymgr/report/report_int.h"

static const char *s_of(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

static void cell(FILE *out, const char *cls, const char *text)
{
	fprintf(out, "<td%s%s%s>", cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
	km_report_esc(out, text);
	fputs("</td>", out);
}

int km_report_plan_html(const char *title, km_timeline_t *tl, json_t *events,
                        json_t *warnings, FILE *out)
{
	int64_t from, to, now;
	char a[KM_TIME_TEXT_MAX], b[KM_TIME_TEXT_MAX], c[KM_TIME_TEXT_MAX];
	int r = km_page_begin(out, title, KM_PAGE_NO_SCRIPT);
	if (r != KM_EOK)
		return r;
	km_timeline_window(tl, &from, &to, &now);
	fputs("<header><h1>", out);
	km_report_esc(out, title);
	fprintf(out, "</h1>\n<p class=\"meta\">From %s to %s; now is %s. Solid: what happened; "
	        "hatched: what the planner will do (after now).</p></header>\n",
	        km_report_time(from, a, sizeof(a)), km_report_time(to, b, sizeof(b)),
	        km_report_time(now, c, sizeof(c)));
	fputs("<section id=\"timeline\"><h2>Timeline</h2>\n<div class=\"timeline\">\n", out);
	if ((r = km_timeline_svg(tl, 0, out)) != KM_EOK)
		return r;
	fputs("</div></section>\n<section id=\"plan\"><h2>Planned actions</h2>\n", out);
	size_t i;
	json_t *e;
	if (json_array_size(events) == 0) {
		fputs("<p class=\"none\">Nothing is planned in this window.</p>\n", out);
	} else {
		fputs("<table id=\"events\"><thead><tr><th>Time</th><th>Key set</th><th>Action</th>"
		      "<th>Key</th><th>Reason</th></tr></thead>\n<tbody>\n", out);
		json_array_foreach(events, i, e) {
			char ks[160];
			snprintf(ks, sizeof(ks), "%s/%s", s_of(e, "env"), s_of(e, "keyset"));
			fputs("<tr class=\"event\">", out);
			cell(out, "mono", s_of(e, "at"));
			cell(out, NULL, ks);
			cell(out, "state", s_of(e, "action"));
			cell(out, "mono", s_of(e, "key"));
			cell(out, NULL, s_of(e, "reason"));
			fputs("</tr>\n", out);
		}
		fputs("</tbody></table>\n", out);
	}
	fputs("</section>\n", out);
	if (json_array_size(warnings) > 0) {
		fputs("<section id=\"warnings\"><h2>Warnings</h2><ul>\n", out);
		json_array_foreach(warnings, i, e) {
			fputs("<li class=\"finding\">", out);
			km_report_escf(out, "%s/%s: %s: %s", s_of(e, "env"), s_of(e, "keyset"),
			               s_of(e, "warning"), s_of(e, "message"));
			fputs("</li>\n", out);
		}
		fputs("</ul></section>\n", out);
	}
	km_page_end(out, KM_PAGE_NO_SCRIPT);
	return ferror(out) ? KM_EIO : KM_EOK;
}
