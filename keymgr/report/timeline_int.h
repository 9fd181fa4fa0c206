/* SPDX-License-Identifier: Apache-2.0 */
/* The timeline's data and layout, shared by timeline.c (layout) and timeline_svg.c (drawing). */
#pragma once

#include "keymgr/report/timeline.h"

/* Geometry, in pixels. Text is monospace: a character is TL_CW wide at TL_FONT. */
#define TL_WIDTH 1200.0
#define TL_GUTTER 210.0      /* the left column: key set titles */
#define TL_PX0 222.0         /* the plot: the window's first second */
#define TL_PX1 1186.0        /* ... and its last */
#define TL_FONT 11.0
#define TL_CW 6.7
#define TL_TEXT_H 12.0       /* a text box: from baseline - TL_ASCENT, TL_TEXT_H high */
#define TL_ASCENT 9.0
#define TL_GAP 8.0           /* between two things in one lane */
#define TL_KEY_LANE 30.0     /* a key: its label, then its bar */
#define TL_CHANGE_LANE 15.0
#define TL_MOMENT_LANE 15.0
#define TL_BAND_MIN 40.0     /* room for the title and the subtitle */

typedef struct {
	int64_t at;
	km_state_t state;
} tl_step_t;

typedef struct {
	size_t set;
	char *kid, *label, *detail;
	tl_step_t *steps;
	size_t n_steps, cap_steps;
	int64_t exp_from, exp_until;   /* exposure window; exp_until 0: none */
	bool standby;
	/* layout */
	bool drawn;
	int64_t start, end;            /* first step, destroyed step (INT64_MAX: not destroyed) */
	double x0, x1, ex1;            /* bar, exposure end */
	double y;                      /* lane top */
	size_t label_ix;
} tl_key_t;

typedef struct {
	size_t set;
	int64_t at;
	char *text, *detail;
	bool drawn;                    /* layout */
	double x;
	size_t label_ix;
} tl_change_t;

typedef struct {
	char *title, *subtitle;
	char **notes;
	size_t n_notes;
	double y, h;                   /* layout */
	size_t first_label, end_label; /* its texts: labels[first_label .. end_label) */
} tl_set_t;

typedef struct {
	int64_t at;
	char *name;
	bool drawn;                    /* layout */
	double x;
} tl_moment_t;

typedef struct {
	int64_t at;
	double x;
} tl_tick_t;

struct km_timeline {
	int64_t from, to, now;
	tl_set_t *sets;
	size_t n_sets, cap_sets;
	tl_key_t *keys;
	size_t n_keys, cap_keys;
	tl_change_t *changes;
	size_t n_changes, cap_changes;
	tl_moment_t *moments;          /* [0] is now */
	size_t n_moments, cap_moments;
	/* layout */
	bool laid_out;
	km_timeline_label_t *labels;
	size_t n_labels, cap_labels;
	tl_tick_t *ticks;
	size_t n_ticks, cap_ticks;
	size_t n_drawn;
	double height, moments_y, axis_y, bands_y;
};

/* The legend's entries, in order: the text and the class of the swatch drawn before it. */
typedef struct {
	const char *text;
	const char *cls;
} tl_legend_t;

extern const tl_legend_t tl_legend[];
extern const size_t tl_n_legend;

/* The x of time t, clamped to the window. */
double tl_x(const km_timeline_t *tl, int64_t t);

/* Rank of a state among steps at one second: the order of a key's life. */
int tl_state_rank(km_state_t s);
