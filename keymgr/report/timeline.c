/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The timeline's data and its layout (timeline.h): where each band, bar and text goes. Every
 * text gets a box, and each row of texts is packed so that no box meets another: lanes are
 * filled left to right, a thing going to the lowest lane whose last thing ends before it
 * starts (TL_GAP apart).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keymgr/common/error.h"
#include "keymgr/report/timeline_int.h"

const tl_legend_t tl_legend[] = {
	{ "generated", "s-generated" },
	{ "published", "s-published" },
	{ "active", "s-active" },
	{ "retired", "s-retired" },
	{ "removed", "s-removed" },
	{ "revoked", "s-revoked" },
	{ "exposure after a revocation", "exposure" },
	{ "planned (after now)", "p-active" },
	{ "standby", "s-published standby" },
	{ "destroyed", "destroy-swatch" },
};
const size_t tl_n_legend = sizeof(tl_legend) / sizeof(tl_legend[0]);

/* Longest texts, in characters; longer ones end in "..." (their whole text is in a title). */
#define KEY_LABEL_MAX 48
#define CHANGE_LABEL_MAX 40
#define NOTE_MAX 80

/* Grows *arr (of elements of size) to hold n + 1. */
static int grow(void *arr, size_t *cap, size_t n, size_t size)
{
	void **p = arr;
	if (n < *cap)
		return KM_EOK;
	size_t c = *cap ? *cap * 2 : 16;
	void *q = realloc(*p, c * size);
	if (q == NULL)
		return KM_ENOMEM;
	*p = q;
	*cap = c;
	return KM_EOK;
}

static char *dup(const char *s)
{
	return strdup(s != NULL ? s : "");
}

/* Characters (code points) of UTF-8 text: the bytes that do not continue one. */
static size_t u8_len(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		n += (*p & 0xC0) != 0x80;
	return n;
}

/* s cut to max characters, the last one then "…". malloc'd, or NULL. */
static char *u8_cut(const char *s, size_t max)
{
	if (u8_len(s) <= max)
		return strdup(s);
	size_t chars = 0, i = 0;
	for (; s[i] != '\0'; i++) {
		if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == max - 1)
			break;
	}
	char *r = malloc(i + 4);
	if (r == NULL)
		return NULL;
	memcpy(r, s, i);
	memcpy(r + i, "\xE2\x80\xA6", 4);    /* U+2026 */
	return r;
}

int km_timeline_create(int64_t from, int64_t to, int64_t now, km_timeline_t **ret)
{
	if (ret == NULL || from >= to)
		return KM_EINVAL;
	km_timeline_t *tl = calloc(1, sizeof(*tl));
	if (tl == NULL)
		return KM_ENOMEM;
	tl->from = from;
	tl->to = to;
	tl->now = now;
	if (km_timeline_moment(tl, now, "now") != KM_EOK) {
		km_timeline_free(tl);
		return KM_ENOMEM;
	}
	*ret = tl;
	return KM_EOK;
}

static void clear_layout(km_timeline_t *tl)
{
	for (size_t i = 0; i < tl->n_labels; i++)
		free((char *)tl->labels[i].text);
	tl->n_labels = 0;
	tl->n_ticks = 0;
	tl->n_drawn = 0;
	tl->laid_out = false;
}

void km_timeline_free(km_timeline_t *tl)
{
	if (tl == NULL)
		return;
	clear_layout(tl);
	for (size_t i = 0; i < tl->n_sets; i++) {
		free(tl->sets[i].title);
		free(tl->sets[i].subtitle);
		for (size_t j = 0; j < tl->sets[i].n_notes; j++)
			free(tl->sets[i].notes[j]);
		free(tl->sets[i].notes);
	}
	for (size_t i = 0; i < tl->n_keys; i++) {
		free(tl->keys[i].kid);
		free(tl->keys[i].label);
		free(tl->keys[i].detail);
		free(tl->keys[i].steps);
	}
	for (size_t i = 0; i < tl->n_changes; i++) {
		free(tl->changes[i].text);
		free(tl->changes[i].detail);
	}
	for (size_t i = 0; i < tl->n_moments; i++)
		free(tl->moments[i].name);
	free(tl->sets);
	free(tl->keys);
	free(tl->changes);
	free(tl->moments);
	free(tl->labels);
	free(tl->ticks);
	free(tl);
}

void km_timeline_window(const km_timeline_t *tl, int64_t *from, int64_t *to, int64_t *now)
{
	*from = tl->from;
	*to = tl->to;
	*now = tl->now;
}

bool km_timeline_in_window(const km_timeline_t *tl, int64_t start, int64_t end)
{
	return start <= tl->to && end >= tl->from;
}

int km_timeline_moment(km_timeline_t *tl, int64_t at, const char *name)
{
	if (grow(&tl->moments, &tl->cap_moments, tl->n_moments, sizeof(*tl->moments)) != KM_EOK)
		return KM_ENOMEM;
	tl_moment_t *m = &tl->moments[tl->n_moments];
	memset(m, 0, sizeof(*m));
	m->at = at;
	if ((m->name = dup(name)) == NULL)
		return KM_ENOMEM;
	tl->n_moments++;
	tl->laid_out = false;
	return KM_EOK;
}

int km_timeline_keyset(km_timeline_t *tl, const char *title, const char *subtitle, size_t *ret)
{
	if (grow(&tl->sets, &tl->cap_sets, tl->n_sets, sizeof(*tl->sets)) != KM_EOK)
		return KM_ENOMEM;
	tl_set_t *s = &tl->sets[tl->n_sets];
	memset(s, 0, sizeof(*s));
	s->title = dup(title);
	s->subtitle = dup(subtitle);
	if (s->title == NULL || s->subtitle == NULL) {
		free(s->title);
		free(s->subtitle);
		return KM_ENOMEM;
	}
	*ret = tl->n_sets++;
	tl->laid_out = false;
	return KM_EOK;
}

int km_timeline_note(km_timeline_t *tl, size_t set, const char *text)
{
	if (set >= tl->n_sets)
		return KM_EINVAL;
	tl_set_t *s = &tl->sets[set];
	char **n = realloc(s->notes, (s->n_notes + 1) * sizeof(*n));
	if (n == NULL)
		return KM_ENOMEM;
	s->notes = n;
	if ((n[s->n_notes] = dup(text)) == NULL)
		return KM_ENOMEM;
	s->n_notes++;
	tl->laid_out = false;
	return KM_EOK;
}

int km_timeline_change(km_timeline_t *tl, size_t set, int64_t at, const char *text,
                       const char *detail)
{
	if (set >= tl->n_sets)
		return KM_EINVAL;
	if (grow(&tl->changes, &tl->cap_changes, tl->n_changes, sizeof(*tl->changes)) != KM_EOK)
		return KM_ENOMEM;
	tl_change_t *c = &tl->changes[tl->n_changes];
	memset(c, 0, sizeof(*c));
	c->set = set;
	c->at = at;
	c->text = dup(text);
	c->detail = dup(detail);
	if (c->text == NULL || c->detail == NULL) {
		free(c->text);
		free(c->detail);
		return KM_ENOMEM;
	}
	tl->n_changes++;
	tl->laid_out = false;
	return KM_EOK;
}

int km_timeline_key(km_timeline_t *tl, size_t set, const char *kid, const char *label,
                    const char *detail, size_t *ret)
{
	if (set >= tl->n_sets)
		return KM_EINVAL;
	if (grow(&tl->keys, &tl->cap_keys, tl->n_keys, sizeof(*tl->keys)) != KM_EOK)
		return KM_ENOMEM;
	tl_key_t *k = &tl->keys[tl->n_keys];
	memset(k, 0, sizeof(*k));
	k->set = set;
	k->kid = dup(kid);
	k->label = dup(label);
	k->detail = dup(detail);
	if (k->kid == NULL || k->label == NULL || k->detail == NULL) {
		free(k->kid);
		free(k->label);
		free(k->detail);
		return KM_ENOMEM;
	}
	*ret = tl->n_keys++;
	tl->laid_out = false;
	return KM_EOK;
}

int km_timeline_step(km_timeline_t *tl, size_t key, int64_t at, km_state_t state)
{
	if (key >= tl->n_keys || (unsigned)state >= KM_STATE_COUNT)
		return KM_EINVAL;
	tl_key_t *k = &tl->keys[key];
	if (grow(&k->steps, &k->cap_steps, k->n_steps, sizeof(*k->steps)) != KM_EOK)
		return KM_ENOMEM;
	k->steps[k->n_steps++] = (tl_step_t){ at, state };
	tl->laid_out = false;
	return KM_EOK;
}

int km_timeline_exposure(km_timeline_t *tl, size_t key, int64_t from, int64_t until)
{
	if (key >= tl->n_keys || until <= from)
		return KM_EINVAL;
	tl->keys[key].exp_from = from;
	tl->keys[key].exp_until = until;
	tl->laid_out = false;
	return KM_EOK;
}

int km_timeline_standby(km_timeline_t *tl, size_t key)
{
	if (key >= tl->n_keys)
		return KM_EINVAL;
	tl->keys[key].standby = true;
	tl->laid_out = false;
	return KM_EOK;
}

/* ---- layout ---- */

double tl_x(const km_timeline_t *tl, int64_t t)
{
	if (t <= tl->from)
		return TL_PX0;
	if (t >= tl->to)
		return TL_PX1;
	return TL_PX0 + (double)(t - tl->from) * (TL_PX1 - TL_PX0) / (double)(tl->to - tl->from);
}

int tl_state_rank(km_state_t s)
{
	/* revoked comes before destroyed, though its number is higher */
	static const int rank[KM_STATE_COUNT] = {
		[KM_STATE_GENERATED] = 0, [KM_STATE_PUBLISHED] = 1, [KM_STATE_ACTIVE] = 2,
		[KM_STATE_RETIRED] = 3, [KM_STATE_REMOVED] = 4, [KM_STATE_REVOKED] = 5,
		[KM_STATE_DESTROYED] = 6,
	};
	return (unsigned)s < KM_STATE_COUNT ? rank[s] : 7;
}

static int cmp_step(const void *a, const void *b)
{
	const tl_step_t *x = a, *y = b;
	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return tl_state_rank(x->state) - tl_state_rank(y->state);
}

static double text_w(const char *s)
{
	return (double)u8_len(s) * TL_CW;
}

/* Adds a text (a copy of text, cut to max characters when max > 0) with its baseline at
 * (x, baseline); *ix (may be NULL) receives its number. */
static int add_label(km_timeline_t *tl, km_timeline_text_t kind, const char *text, size_t max,
                     double x, double baseline, size_t *ix)
{
	if (grow(&tl->labels, &tl->cap_labels, tl->n_labels, sizeof(*tl->labels)) != KM_EOK)
		return KM_ENOMEM;
	char *t = max > 0 ? u8_cut(text, max) : strdup(text);
	if (t == NULL)
		return KM_ENOMEM;
	km_timeline_label_t *l = &tl->labels[tl->n_labels];
	l->kind = kind;
	l->text = t;
	l->box = (km_timeline_box_t){ x, baseline - TL_ASCENT, text_w(t), TL_TEXT_H };
	if (ix != NULL)
		*ix = tl->n_labels;
	tl->n_labels++;
	return KM_EOK;
}

/* Lanes of one row: where each lane's last thing ends. */
typedef struct {
	double *end;
	size_t n, cap;
} lanes_t;

/* The lowest lane where [x0, x1] fits after what it holds; it then holds x1. */
static int lane_place(lanes_t *l, double x0, double x1, size_t *ret)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->end[i] + TL_GAP <= x0) {
			l->end[i] = x1;
			*ret = i;
			return KM_EOK;
		}
	}
	if (grow(&l->end, &l->cap, l->n, sizeof(*l->end)) != KM_EOK)
		return KM_ENOMEM;
	l->end[l->n] = x1;
	*ret = l->n++;
	return KM_EOK;
}

static int layout_legend(km_timeline_t *tl, double *y)
{
	double x = 8, baseline = *y + 12;
	for (size_t i = 0; i < tl_n_legend; i++) {
		double w = 18 + text_w(tl_legend[i].text);
		if (x + w > TL_WIDTH - 8 && x > 8) {
			x = 8;
			baseline += 16;
		}
		if (add_label(tl, KM_TIMELINE_TEXT_LEGEND, tl_legend[i].text, 0, x + 18, baseline,
		              NULL) != KM_EOK)
			return KM_ENOMEM;
		x += w + 16;
	}
	*y = baseline + 8;
	return KM_EOK;
}

/* How a time is written: literal formats only (strftime's format is checked). */
typedef enum { FMT_HOUR, FMT_DAY, FMT_MONTH, FMT_YEAR, FMT_MOMENT } fmt_t;

static void fmt_time(int64_t t, fmt_t fmt, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	buf[0] = '\0';
	if (gmtime_r(&tt, &tm) == NULL)
		return;
	switch (fmt) {
	case FMT_HOUR: strftime(buf, len, "%m-%d %H:%M", &tm); break;
	case FMT_DAY: strftime(buf, len, "%Y-%m-%d", &tm); break;
	case FMT_MONTH: strftime(buf, len, "%Y-%m", &tm); break;
	case FMT_YEAR: strftime(buf, len, "%Y", &tm); break;
	case FMT_MOMENT: strftime(buf, len, "%Y-%m-%d %H:%MZ", &tm); break;
	}
}

/* "now", --at: their lines run across the bands; their texts are packed in rows above. */
static int layout_moments(km_timeline_t *tl, double *y)
{
	lanes_t lanes = { 0 };
	int r = KM_EOK;
	tl->moments_y = *y;
	for (size_t i = 0; i < tl->n_moments && r == KM_EOK; i++) {
		tl_moment_t *m = &tl->moments[i];
		char when[32], text[96];
		m->drawn = m->at >= tl->from && m->at <= tl->to;
		if (!m->drawn)
			continue;
		m->x = tl_x(tl, m->at);
		fmt_time(m->at, FMT_MOMENT, when, sizeof(when));
		snprintf(text, sizeof(text), "%.40s %s", m->name, when);
		double w = text_w(text), x = m->x + 3;
		if (x + w > TL_PX1)
			x = m->x - 3 - w;    /* near the end: written before the line */
		size_t lane;
		if ((r = lane_place(&lanes, x, x + w, &lane)) == KM_EOK)
			r = add_label(tl, KM_TIMELINE_TEXT_MOMENT, text, 0, x,
			              *y + (double)lane * TL_MOMENT_LANE + 11, NULL);
	}
	*y += (double)lanes.n * TL_MOMENT_LANE + 2;
	free(lanes.end);
	return r;
}

/* The axis: the first step of hours, days, months or years whose dates fit. */
typedef struct {
	int unit;          /* 0 hours, 1 days, 2 months, 3 years */
	int n;
	fmt_t fmt;
} tick_step_t;

static const tick_step_t tick_steps[] = {
	{ 0, 1, FMT_HOUR }, { 0, 3, FMT_HOUR }, { 0, 6, FMT_HOUR }, { 0, 12, FMT_HOUR },
	{ 1, 1, FMT_DAY }, { 1, 2, FMT_DAY }, { 1, 7, FMT_DAY }, { 1, 14, FMT_DAY },
	{ 2, 1, FMT_MONTH }, { 2, 2, FMT_MONTH }, { 2, 3, FMT_MONTH }, { 2, 6, FMT_MONTH },
	{ 3, 1, FMT_YEAR }, { 3, 2, FMT_YEAR }, { 3, 5, FMT_YEAR }, { 3, 10, FMT_YEAR },
	{ 3, 50, FMT_YEAR }, { 3, 100, FMT_YEAR }, { 3, 1000, FMT_YEAR },
};

/* The first tick of step st at or after t (after: strictly after t). */
static int64_t tick_next(const tick_step_t *st, int64_t t, bool after)
{
	if (st->unit < 2) {
		int64_t len = (st->unit == 0 ? 3600 : 86400) * (int64_t)st->n;
		int64_t q = t / len * len;
		if (q < t || (after && q == t))
			q += len;
		return q;
	}
	/* Months and years: the first of a month (year) whose number is a multiple of n. */
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL)
		return INT64_MAX;
	int64_t idx = st->unit == 2 ? (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon
	                            : (int64_t)tm.tm_year + 1900;
	for (;; idx++) {
		if (idx % st->n != 0)
			continue;
		struct tm b = { .tm_mday = 1 };
		b.tm_year = (int)(st->unit == 2 ? idx / 12 : idx) - 1900;
		b.tm_mon = st->unit == 2 ? (int)(idx % 12) : 0;
		int64_t q = (int64_t)timegm(&b);
		if (after ? q > t : q >= t)
			return q;
	}
}

static int layout_axis(km_timeline_t *tl, double *y)
{
	const tick_step_t *st = &tick_steps[sizeof(tick_steps) / sizeof(tick_steps[0]) - 1];
	double span = (double)(tl->to - tl->from);
	for (size_t i = 0; i < sizeof(tick_steps) / sizeof(tick_steps[0]); i++) {
		double approx = tick_steps[i].unit == 0 ? 3600 : tick_steps[i].unit == 1 ? 86400 :
		                tick_steps[i].unit == 2 ? 28 * 86400.0 : 365 * 86400.0;
		char sample[32];
		fmt_time(tl->from, tick_steps[i].fmt, sample, sizeof(sample));
		/* the shortest gap between two ticks (February), in pixels */
		double px = approx * tick_steps[i].n * (TL_PX1 - TL_PX0) / span;
		if (px >= text_w(sample) + 3 + TL_GAP + 4) {
			st = &tick_steps[i];
			break;
		}
	}
	double baseline = *y + 11;
	for (int64_t t = tick_next(st, tl->from, false); t <= tl->to;
	     t = tick_next(st, t, true)) {
		char text[32];
		if (grow(&tl->ticks, &tl->cap_ticks, tl->n_ticks, sizeof(*tl->ticks)) != KM_EOK)
			return KM_ENOMEM;
		double x = tl_x(tl, t);
		tl->ticks[tl->n_ticks++] = (tl_tick_t){ t, x };
		fmt_time(t, st->fmt, text, sizeof(text));
		if (x + 3 + text_w(text) <= TL_PX1 &&
		    add_label(tl, KM_TIMELINE_TEXT_TICK, text, 0, x + 3, baseline, NULL) != KM_EOK)
			return KM_ENOMEM;
	}
	tl->axis_y = *y + 16;
	*y = tl->axis_y + 4;
	return KM_EOK;
}

/* Where a key's bar and exposure go; false when its life is outside the window. */
static bool key_extent(km_timeline_t *tl, tl_key_t *k)
{
	if (k->n_steps == 0)
		return false;
	qsort(k->steps, k->n_steps, sizeof(*k->steps), cmp_step);
	k->start = k->steps[0].at;
	k->end = INT64_MAX;
	for (size_t i = 0; i < k->n_steps; i++)
		if (k->steps[i].state == KM_STATE_DESTROYED) {
			k->end = k->steps[i].at;
			break;
		}
	int64_t last = k->end;
	if (k->exp_until != 0 && last != INT64_MAX && k->exp_until > last)
		last = k->exp_until;
	if (!km_timeline_in_window(tl, k->start, last))
		return false;
	k->x0 = tl_x(tl, k->start);
	k->x1 = k->end == INT64_MAX ? TL_PX1 : tl_x(tl, k->end);
	if (k->x1 < k->x0 + 2)
		k->x1 = k->x0 + 2;
	k->ex1 = k->exp_until != 0 ? tl_x(tl, k->exp_until) : k->x1;
	return true;
}

/* The text over a key's bar (before it is cut to KEY_LABEL_MAX). */
static void key_label(const tl_key_t *k, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", k->label, k->standby ? " (standby)" : "");
}

typedef struct {
	size_t key;
	double x0, x1, lx;
} placed_t;

static int cmp_placed(const void *a, const void *b)
{
	const placed_t *x = a, *y = b;
	if (x->x0 != y->x0)
		return x->x0 < y->x0 ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

static int layout_band(km_timeline_t *tl, size_t set, double *y, placed_t *placed)
{
	tl_set_t *s = &tl->sets[set];
	lanes_t changes = { 0 }, keys = { 0 };
	size_t n = 0, lane, ix, ignored;
	int r = KM_EOK;
	char label[256];
	s->y = *y;
	s->first_label = tl->n_labels;
	/* Owner and purpose changes, in time order, packed on their own rows. */
	for (size_t i = 0; i < tl->n_changes && r == KM_EOK; i++) {
		tl_change_t *c = &tl->changes[i];
		if (c->set != set || !(c->drawn = c->at >= tl->from && c->at <= tl->to))
			continue;
		char *cut = u8_cut(c->text, CHANGE_LABEL_MAX);
		if (cut == NULL) {
			r = KM_ENOMEM;
			break;
		}
		c->x = tl_x(tl, c->at);
		double w = text_w(cut), x = c->x + 3 + w > TL_PX1 ? c->x - 3 - w : c->x + 3;
		if ((r = lane_place(&changes, x, x + w, &lane)) == KM_EOK)
			r = add_label(tl, KM_TIMELINE_TEXT_CHANGE, cut, 0, x,
			              *y + 4 + (double)lane * TL_CHANGE_LANE + 11, &c->label_ix);
		free(cut);
	}
	double keys_y = *y + 4 + (double)changes.n * TL_CHANGE_LANE;
	/* Notes first (each on the lowest free row), then the keys by where they start. */
	for (size_t i = 0; i < s->n_notes && r == KM_EOK; i++) {
		char *cut = u8_cut(s->notes[i], NOTE_MAX);
		if (cut == NULL) {
			r = KM_ENOMEM;
			break;
		}
		double w = text_w(cut);
		if ((r = lane_place(&keys, TL_PX0, TL_PX0 + 4 + w, &lane)) == KM_EOK)
			r = add_label(tl, KM_TIMELINE_TEXT_NOTE, cut, 0, TL_PX0 + 4,
			              keys_y + (double)lane * TL_KEY_LANE + 11, &ignored);
		free(cut);
	}
	for (size_t i = 0; i < tl->n_keys && r == KM_EOK; i++) {
		tl_key_t *k = &tl->keys[i];
		if (k->set != set || !(k->drawn = key_extent(tl, k)))
			continue;
		key_label(k, label, sizeof(label));
		double w = (double)(u8_len(label) < KEY_LABEL_MAX ? u8_len(label) : KEY_LABEL_MAX) *
		           TL_CW;
		double lx = k->x0 + w > TL_PX1 ? TL_PX1 - w : k->x0;
		double x1 = k->x1 > k->ex1 ? k->x1 : k->ex1;
		placed[n++] = (placed_t){ i, lx < k->x0 ? lx : k->x0, lx + w > x1 ? lx + w : x1, lx };
	}
	qsort(placed, n, sizeof(*placed), cmp_placed);
	for (size_t i = 0; i < n && r == KM_EOK; i++) {
		tl_key_t *k = &tl->keys[placed[i].key];
		key_label(k, label, sizeof(label));
		if ((r = lane_place(&keys, placed[i].x0, placed[i].x1, &lane)) != KM_EOK)
			break;
		k->y = keys_y + (double)lane * TL_KEY_LANE;
		r = add_label(tl, KM_TIMELINE_TEXT_KEY, label, KEY_LABEL_MAX, placed[i].lx,
		              k->y + 11, &ix);
		k->label_ix = ix;
		tl->n_drawn++;
	}
	if (r == KM_EOK && keys.n == 0) {
		const char *none = "no key in this window";
		if ((r = lane_place(&keys, TL_PX0, TL_PX0 + 4 + text_w(none), &lane)) == KM_EOK)
			r = add_label(tl, KM_TIMELINE_TEXT_NOTE, none, 0, TL_PX0 + 4, keys_y + 11,
			              &ignored);
	}
	s->h = keys_y - *y + (double)keys.n * TL_KEY_LANE + 4;
	if (s->h < TL_BAND_MIN)
		s->h = TL_BAND_MIN;
	if (r == KM_EOK)
		r = add_label(tl, KM_TIMELINE_TEXT_KEYSET, s->title,
		              (size_t)((TL_GUTTER - 16) / TL_CW), 8, *y + 15, &ignored);
	if (r == KM_EOK && s->subtitle[0] != '\0')
		r = add_label(tl, KM_TIMELINE_TEXT_SUBTITLE, s->subtitle,
		              (size_t)((TL_GUTTER - 16) / TL_CW), 8, *y + 29, &ignored);
	*y += s->h;
	s->end_label = tl->n_labels;
	free(changes.end);
	free(keys.end);
	return r;
}

int km_timeline_layout(km_timeline_t *tl)
{
	if (tl->laid_out)
		return KM_EOK;
	clear_layout(tl);
	double y = 6;
	placed_t *placed = calloc(tl->n_keys + 1, sizeof(*placed));
	int r = placed != NULL ? KM_EOK : KM_ENOMEM;
	if (r == KM_EOK)
		r = layout_legend(tl, &y);
	if (r == KM_EOK)
		r = layout_moments(tl, &y);
	if (r == KM_EOK)
		r = layout_axis(tl, &y);
	tl->bands_y = y;
	for (size_t i = 0; i < tl->n_sets && r == KM_EOK; i++)
		r = layout_band(tl, i, &y, placed);
	free(placed);
	if (r != KM_EOK) {
		clear_layout(tl);
		return r;
	}
	tl->height = y + 8;
	tl->laid_out = true;
	return KM_EOK;
}

size_t km_timeline_n_labels(const km_timeline_t *tl)
{
	return tl->laid_out ? tl->n_labels : 0;
}

const km_timeline_label_t *km_timeline_label(const km_timeline_t *tl, size_t i)
{
	return tl->laid_out && i < tl->n_labels ? &tl->labels[i] : NULL;
}

size_t km_timeline_n_drawn(const km_timeline_t *tl)
{
	return tl->laid_out ? tl->n_drawn : 0;
}

double km_timeline_width(const km_timeline_t *tl)
{
	(void)tl;
	return TL_WIDTH;
}

double km_timeline_height(const km_timeline_t *tl)
{
	return tl->laid_out ? tl->height : 0;
}
