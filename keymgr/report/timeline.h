/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key timelines: the keys of some key sets on one time axis, drawn as SVG (`keymgr plan
 * --format svg|html`, the timeline of `keymgr audit report --format html`).
 *
 * Pure: the caller adds key sets, their keys with the steps of their lives (when each state
 * began), revocation exposure windows, the standby, and owner or purpose changes; the
 * timeline lays them out and writes the picture. No store, no clock: "now" is given, and
 * everything after it is drawn hatched (it is the plan, not the past).
 *
 * Layout: one band per key set (in the order added), its keys stacked in lanes. A key takes
 * the lowest lane where neither its bar nor its label meets another key's, so no two labels
 * overlap however many keys there are (km_timeline_label() gives every text box drawn, for
 * the tests). Only the window [from, to] is drawn: a key whose life lies outside it is left
 * out entirely.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "keymgr/common/lifecycle.h"

typedef struct km_timeline km_timeline_t;

/* A box in SVG user units (pixels): x, y of its top left corner. */
typedef struct {
	double x, y, w, h;
} km_timeline_box_t;

typedef enum {
	KM_TIMELINE_TEXT_LEGEND = 0,   /* the legend's entries */
	KM_TIMELINE_TEXT_MOMENT,       /* "now", and the moments of km_timeline_moment() */
	KM_TIMELINE_TEXT_TICK,         /* the dates of the time axis */
	KM_TIMELINE_TEXT_KEYSET,       /* a key set's title, in the left column */
	KM_TIMELINE_TEXT_SUBTITLE,     /* the line under it (owner and purpose) */
	KM_TIMELINE_TEXT_CHANGE,       /* an owner or purpose change on the axis */
	KM_TIMELINE_TEXT_KEY,          /* a key's label, over its bar */
	KM_TIMELINE_TEXT_NOTE,         /* a key set's note ("no key in this window", ...) */
} km_timeline_text_t;

/* One text drawn: its kind, the box it is drawn in (its textLength is box.w) and its text. */
typedef struct {
	km_timeline_text_t kind;
	km_timeline_box_t box;
	const char *text;              /* owned by the timeline */
} km_timeline_label_t;

/*
 * Makes an empty timeline of the window [from, to] (unix seconds, from < to) with "now" at
 * now (drawn when inside the window). Free it with km_timeline_free(). KM_EINVAL, KM_ENOMEM.
 */
int km_timeline_create(int64_t from, int64_t to, int64_t now, km_timeline_t **ret);

/* Frees a timeline. NULL is fine. */
void km_timeline_free(km_timeline_t *tl);

/* The window and the now it was made with. */
void km_timeline_window(const km_timeline_t *tl, int64_t *from, int64_t *to, int64_t *now);

/* True when a life from start to end (INT64_MAX: not over) meets the window. */
bool km_timeline_in_window(const km_timeline_t *tl, int64_t start, int64_t end);

/* Another moment drawn across the bands, with its name ("at" for a report's --at). */
int km_timeline_moment(km_timeline_t *tl, int64_t at, const char *name);

/*
 * Adds a band: title (e.g. "production/api") and subtitle (owner and purpose; may be "").
 * *ret is its number for the calls below. KM_ENOMEM.
 */
int km_timeline_keyset(km_timeline_t *tl, const char *title, const char *subtitle, size_t *ret);

/* A note shown in band set ("not planned: the policy has errors"). KM_EINVAL, KM_ENOMEM. */
int km_timeline_note(km_timeline_t *tl, size_t set, const char *text);

/*
 * An owner or purpose change of band set at time at: text is its label on the axis
 * ("owner: team-b"), detail the tooltip (who, why). Changes outside the window are not
 * drawn. KM_EINVAL, KM_ENOMEM.
 */
int km_timeline_change(km_timeline_t *tl, size_t set, int64_t at, const char *text,
                       const char *detail);

/*
 * Adds a key to band set: kid ("" for a key the plan will make), label (the text over its
 * bar) and detail (its tooltip). *ret is its number. Then give its steps. KM_EINVAL,
 * KM_ENOMEM.
 */
int km_timeline_key(km_timeline_t *tl, size_t set, const char *kid, const char *label,
                    const char *detail, size_t *ret);

/*
 * The key entered state at time at. Steps may come in any order; the bar runs from the first
 * to the destroyed step (or on past the window). KM_EINVAL, KM_ENOMEM.
 */
int km_timeline_step(km_timeline_t *tl, size_t key, int64_t at, km_state_t state);

/* After its revocation at from, verifiers' cached JWKS may hold the key until until: shaded. */
int km_timeline_exposure(km_timeline_t *tl, size_t key, int64_t from, int64_t until);

/* The key is its key set's standby: its label says so and its published time is outlined. */
int km_timeline_standby(km_timeline_t *tl, size_t key);

/*
 * Places everything (done again only after a change). Then km_timeline_label() and the
 * sizes below describe the picture km_timeline_svg() draws. KM_ENOMEM.
 */
int km_timeline_layout(km_timeline_t *tl);

size_t km_timeline_n_labels(const km_timeline_t *tl);

/* Text i of the laid out picture (0 <= i < km_timeline_n_labels()); owned by tl. */
const km_timeline_label_t *km_timeline_label(const km_timeline_t *tl, size_t i);

/* Keys drawn (those whose life meets the window), after km_timeline_layout(). */
size_t km_timeline_n_drawn(const km_timeline_t *tl);

/* The picture's size in pixels, after km_timeline_layout(). */
double km_timeline_width(const km_timeline_t *tl);
double km_timeline_height(const km_timeline_t *tl);

/* km_timeline_svg() flags. */
#define KM_TIMELINE_STANDALONE 1u  /* an SVG document of its own: XML prolog, namespace and
                                    * its own <style>; without it, an <svg> element for an
                                    * HTML page that carries km_timeline_css in its style */

/*
 * Writes the picture as SVG to out (laying it out first). Every text is escaped; each key is
 * a <g class="key" data-kid=... data-state=...> with a <title>. KM_ENOMEM, KM_EIO (a write
 * failed).
 */
int km_timeline_svg(km_timeline_t *tl, unsigned flags, FILE *out);

/* The CSS the picture's classes need (an HTML page puts it in its <style>). */
extern const char km_timeline_css[];
