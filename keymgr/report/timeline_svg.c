/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Drawing a laid out timeline as SVG (timeline.h). Colours come from classes (km_timeline_css)
 * and from the hatch patterns in <defs>: nothing is loaded from anywhere, and no style
 * attribute is written, so the picture works under a Content-Security-Policy that allows
 * only the page's own <style>.
 */
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/report/report_int.h"
#include "keymgr/report/timeline_int.h"

/* The colour of each state: its bar, and the stripes of its planned (hatched) part. */
static const char *const state_colour[KM_STATE_COUNT] = {
	[KM_STATE_GENERATED] = "#9e9e9e", [KM_STATE_PUBLISHED] = "#4e79a7",
	[KM_STATE_ACTIVE] = "#59a14f", [KM_STATE_RETIRED] = "#f28e2b",
	[KM_STATE_REMOVED] = "#bab0ac", [KM_STATE_DESTROYED] = "#222222",
	[KM_STATE_REVOKED] = "#e8989a",
};

const char km_timeline_css[] =
	".km-timeline text{font-family:\"DejaVu Sans Mono\",monospace;font-size:11px;fill:#222}"
	".km-timeline .title{font-weight:bold}"
	".km-timeline .sub,.km-timeline .note{fill:#666}"
	".km-timeline .tick{fill:#555}"
	".km-timeline .bg{fill:#fff}"
	".km-timeline .band-0{fill:#fff}.km-timeline .band-1{fill:#f4f6f8}"
	".km-timeline .sep{stroke:#d8dde3}"
	".km-timeline .grid{stroke:#e6e9ed}"
	".km-timeline .axis{stroke:#8a9099}"
	".km-timeline .s-generated{fill:#9e9e9e}.km-timeline .s-published{fill:#4e79a7}"
	".km-timeline .s-active{fill:#59a14f}.km-timeline .s-retired{fill:#f28e2b}"
	".km-timeline .s-removed{fill:#bab0ac}.km-timeline .s-revoked{fill:#e8989a}"
	".km-timeline .p-generated{fill:url(#km-h-generated)}"
	".km-timeline .p-published{fill:url(#km-h-published)}"
	".km-timeline .p-active{fill:url(#km-h-active)}"
	".km-timeline .p-retired{fill:url(#km-h-retired)}"
	".km-timeline .p-removed{fill:url(#km-h-removed)}"
	".km-timeline .p-revoked{fill:url(#km-h-revoked)}"
	".km-timeline .standby{stroke:#1f3b63;stroke-width:1.5;stroke-dasharray:3 2}"
	".km-timeline .exposure{fill:url(#km-h-exposure);stroke:#c0392b;stroke-width:0.5}"
	".km-timeline .revoke{stroke:#c0392b;stroke-width:2}"
	".km-timeline .destroy,.km-timeline .destroy-swatch{stroke:#222;stroke-width:2;fill:#222}"
	".km-timeline .now{stroke:#222;stroke-width:1.5;stroke-dasharray:6 3}"
	".km-timeline .moment{stroke:#8e44ad;stroke-width:1.5;stroke-dasharray:2 2}"
	".km-timeline .change{stroke:#555;stroke-dasharray:4 3}";

/* One text of the layout, drawn exactly in its box (textLength: the box's width). */
static void text(FILE *out, const km_timeline_label_t *l, const char *cls, const char *title)
{
	fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" textLength=\"%.1f\" "
	        "lengthAdjust=\"spacingAndGlyphs\"%s%s%s>", l->box.x, l->box.y + TL_ASCENT,
	        l->box.w, cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
	if (title != NULL && title[0] != '\0') {
		fputs("<title>", out);
		km_report_esc(out, title);
		fputs("</title>", out);
	}
	km_report_esc(out, l->text);
	fputs("</text>\n", out);
}

static void defs(FILE *out)
{
	fputs("<defs>\n", out);
	for (int s = 0; s < KM_STATE_COUNT; s++) {
		if (s == KM_STATE_DESTROYED)
			continue;
		fprintf(out, "<pattern id=\"km-h-%s\" width=\"6\" height=\"6\" "
		        "patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
		        "<rect width=\"6\" height=\"6\" fill=\"#ffffff\"/>"
		        "<rect width=\"3\" height=\"6\" fill=\"%s\"/></pattern>\n",
		        km_state_name((km_state_t)s), state_colour[s]);
	}
	fputs("<pattern id=\"km-h-exposure\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\" "
	      "patternTransform=\"rotate(-45)\"><rect width=\"5\" height=\"5\" fill=\"#c0392b\" "
	      "fill-opacity=\"0.12\"/><rect width=\"1.5\" height=\"5\" fill=\"#c0392b\" "
	      "fill-opacity=\"0.8\"/></pattern>\n</defs>\n", out);
}

static void rect(FILE *out, double x0, double x1, double y, double h, const char *cls)
{
	fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"%s\"/>\n",
	        x0, y, x1 - x0 > 1 ? x1 - x0 : 1, h, cls);
}

static void vline(FILE *out, double x, double y0, double y1, const char *cls)
{
	fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"%s\"/>\n", x, y0,
	        x, y1, cls);
}

/* The part [t0, t1] of a key's state, solid up to now and hatched after it. */
static void segment(FILE *out, const km_timeline_t *tl, const tl_key_t *k, km_state_t st,
                    int64_t t0, int64_t t1)
{
	char cls[64];
	if (t0 < tl->from)
		t0 = tl->from;
	if (t1 > tl->to)
		t1 = tl->to;
	if (t1 < t0)
		return;
	const char *extra = k->standby && st == KM_STATE_PUBLISHED ? " standby" : "";
	if (t0 < tl->now) {
		snprintf(cls, sizeof(cls), "seg s-%s%s", km_state_name(st), extra);
		rect(out, tl_x(tl, t0), tl_x(tl, t1 < tl->now ? t1 : tl->now), k->y + 15, 12, cls);
	}
	if (t1 > tl->now) {
		snprintf(cls, sizeof(cls), "seg p-%s%s", km_state_name(st), extra);
		rect(out, tl_x(tl, t0 > tl->now ? t0 : tl->now), tl_x(tl, t1), k->y + 15, 12, cls);
	}
}

static void key(FILE *out, const km_timeline_t *tl, const tl_key_t *k)
{
	const char *state = "planned";
	for (size_t i = 0; i < k->n_steps && k->kid[0] != '\0'; i++)
		if (k->steps[i].at <= tl->now)
			state = km_state_name(k->steps[i].state);
	fputs("<g class=\"key\" data-kid=\"", out);
	km_report_esc(out, k->kid);
	fprintf(out, "\" data-state=\"%s\"%s>\n<title>", state,
	        k->kid[0] == '\0' ? " data-planned=\"1\"" : "");
	km_report_esc(out, k->kid[0] != '\0' ? k->kid : k->label);
	if (k->detail[0] != '\0') {
		fputc('\n', out);
		km_report_esc(out, k->detail);
	}
	fputs("</title>\n", out);
	for (size_t i = 0; i < k->n_steps; i++) {
		const tl_step_t *s = &k->steps[i];
		if (s->state == KM_STATE_DESTROYED)
			break;
		int64_t t1 = i + 1 < k->n_steps ? k->steps[i + 1].at :
		             k->end != INT64_MAX ? k->end : tl->to;
		segment(out, tl, k, s->state, s->at, t1);
	}
	if (k->exp_until != 0 && k->exp_until > tl->from && k->exp_from < tl->to)
		rect(out, tl_x(tl, k->exp_from), tl_x(tl, k->exp_until), k->y + 13, 16, "exposure");
	for (size_t i = 0; i < k->n_steps; i++) {
		const tl_step_t *s = &k->steps[i];
		if (s->at < tl->from || s->at > tl->to)
			continue;
		if (s->state == KM_STATE_REVOKED)
			vline(out, tl_x(tl, s->at), k->y + 12, k->y + 30, "revoke");
		else if (s->state == KM_STATE_DESTROYED)
			vline(out, tl_x(tl, s->at), k->y + 14, k->y + 28, "destroy");
	}
	text(out, &tl->labels[k->label_ix], "klabel", NULL);
	fputs("</g>\n", out);
}

static void band(FILE *out, const km_timeline_t *tl, size_t set)
{
	const tl_set_t *s = &tl->sets[set];
	fprintf(out, "<g class=\"band\" data-keyset=\"");
	km_report_esc(out, s->title);
	fputs("\">\n", out);
	rect(out, 0, TL_WIDTH, s->y, s->h, set % 2 ? "band-1" : "band-0");
	fprintf(out, "<line x1=\"0\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"sep\"/>\n",
	        s->y + s->h, TL_WIDTH, s->y + s->h);
	for (size_t i = 0; i < tl->n_changes; i++) {
		const tl_change_t *c = &tl->changes[i];
		if (c->set != set || !c->drawn)
			continue;
		vline(out, c->x, s->y + 2, s->y + s->h - 2, "change");
		text(out, &tl->labels[c->label_ix], "chlabel", c->detail);
	}
	/* Its titles and notes (changes and keys are drawn with their lines and bars). */
	for (size_t i = s->first_label; i < s->end_label; i++) {
		const km_timeline_label_t *l = &tl->labels[i];
		if (l->kind == KM_TIMELINE_TEXT_KEYSET)
			text(out, l, "title", s->title);
		else if (l->kind == KM_TIMELINE_TEXT_SUBTITLE)
			text(out, l, "sub", s->subtitle);
		else if (l->kind == KM_TIMELINE_TEXT_NOTE)
			text(out, l, "note", NULL);
	}
	for (size_t i = 0; i < tl->n_keys; i++)
		if (tl->keys[i].set == set && tl->keys[i].drawn)
			key(out, tl, &tl->keys[i]);
	fputs("</g>\n", out);
}

int km_timeline_svg(km_timeline_t *tl, unsigned flags, FILE *out)
{
	int r = km_timeline_layout(tl);
	if (r != KM_EOK)
		return r;
	double h = tl->height;
	if (flags & KM_TIMELINE_STANDALONE)
		fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", out);
	fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"km-timeline\" "
	        "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
	        "aria-label=\"Key timeline\">\n", TL_WIDTH, h, TL_WIDTH, h);
	if (flags & KM_TIMELINE_STANDALONE)
		fprintf(out, "<style>%s</style>\n", km_timeline_css);
	defs(out);
	rect(out, 0, TL_WIDTH, 0, h, "bg");
	size_t legend = 0, header = tl->n_sets > 0 ? tl->sets[0].first_label : tl->n_labels;
	/* Legend, moments' texts and the axis' dates: the labels before the first band's. */
	for (size_t i = 0; i < header; i++) {
		const km_timeline_label_t *l = &tl->labels[i];
		if (l->kind == KM_TIMELINE_TEXT_LEGEND) {
			rect(out, l->box.x - 18, l->box.x - 4, l->box.y + 1, 10,
			     tl_legend[legend++].cls);
			text(out, l, NULL, NULL);
		} else if (l->kind == KM_TIMELINE_TEXT_MOMENT) {
			text(out, l, "mlabel", NULL);
		} else if (l->kind == KM_TIMELINE_TEXT_TICK) {
			text(out, l, "tick", NULL);
		}
	}
	for (size_t t = 0; t < tl->n_ticks; t++)
		vline(out, tl->ticks[t].x, tl->axis_y - 4, h - 8, "grid");
	fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n",
	        TL_PX0, tl->axis_y, TL_PX1, tl->axis_y);
	for (size_t s = 0; s < tl->n_sets; s++)
		band(out, tl, s);
	for (size_t m = 0; m < tl->n_moments; m++)
		if (tl->moments[m].drawn)
			vline(out, tl->moments[m].x, tl->moments_y, h - 8, m == 0 ? "now" : "moment");
	fputs("</svg>\n", out);
	return ferror(out) ? KM_EIO : KM_EOK;
}
