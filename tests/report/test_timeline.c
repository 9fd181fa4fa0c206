/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key timeline (keymgr/report/timeline.h), pure: no store, no clock. Labels never overlap
 * however many keys a band holds, only the window is drawn, the plan is hatched and the past
 * solid, every text is escaped, bad windows are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/common/error.h"
#include "keymgr/report/report_int.h"
#include "keymgr/report/timeline.h"

#define DAY INT64_C(86400)
#define T0 INT64_C(1796083200)     /* 2026-12-01T00:00:00Z */

/* The picture as one string (malloc'd). */
static char *svg_of(km_timeline_t *tl, unsigned flags)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(km_timeline_svg(tl, flags, f), KM_EOK);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static bool meet(const km_timeline_box_t *a, const km_timeline_box_t *b)
{
	return a->x < b->x + b->w && b->x < a->x + a->w && a->y < b->y + b->h &&
	       b->y < a->y + a->h;
}

/* Every pair of texts drawn: no two boxes meet. Returns the number of texts. */
static size_t assert_no_overlap(const km_timeline_t *tl)
{
	size_t n = km_timeline_n_labels(tl);
	for (size_t i = 0; i < n; i++) {
		const km_timeline_label_t *a = km_timeline_label(tl, i);
		assert_true(a->box.w > 0 && a->box.h > 0);
		assert_true(a->box.x >= 0 && a->box.x + a->box.w <= km_timeline_width(tl) + 0.01);
		for (size_t j = i + 1; j < n; j++) {
			const km_timeline_label_t *b = km_timeline_label(tl, j);
			if (meet(&a->box, &b->box))
				fail_msg("labels overlap: '%s' (%.1f,%.1f %.1fx%.1f) and '%s' (%.1f,%.1f "
				         "%.1fx%.1f)", a->text, a->box.x, a->box.y, a->box.w, a->box.h,
				         b->text, b->box.x, b->box.y, b->box.w, b->box.h);
		}
	}
	return n;
}

/* A key living from start: published, active a day later, retired after rot, removed a
 * day after that, destroyed after another (or still alive at the window's end). */
static size_t add_key(km_timeline_t *tl, size_t set, const char *kid, int64_t start,
                      int64_t rot)
{
	size_t k;
	assert_int_equal(km_timeline_key(tl, set, kid, kid, "detail", &k), KM_EOK);
	assert_int_equal(km_timeline_step(tl, k, start, KM_STATE_PUBLISHED), KM_EOK);
	assert_int_equal(km_timeline_step(tl, k, start + DAY, KM_STATE_ACTIVE), KM_EOK);
	assert_int_equal(km_timeline_step(tl, k, start + DAY + rot, KM_STATE_RETIRED), KM_EOK);
	assert_int_equal(km_timeline_step(tl, k, start + 2 * DAY + rot, KM_STATE_REMOVED), KM_EOK);
	assert_int_equal(km_timeline_step(tl, k, start + 3 * DAY + rot, KM_STATE_DESTROYED),
	                 KM_EOK);
	return k;
}

/* Hundreds of keys in a few bands, rotating faster than their labels are long, with owner
 * changes close together and moments at the same time: no two labels overlap. */
static void test_timeline_labels_never_overlap(void **state)
{
	(void)state;
	km_timeline_t *tl = NULL;
	assert_int_equal(km_timeline_create(T0 - 180 * DAY, T0 + 90 * DAY, T0, &tl), KM_EOK);
	assert_int_equal(km_timeline_moment(tl, T0, "at"), KM_EOK);
	assert_int_equal(km_timeline_moment(tl, T0 + 3600, "at"), KM_EOK);
	srand(19);
	size_t keys = 0;
	for (int s = 0; s < 6; s++) {
		char title[64], kid[64];
		size_t set;
		snprintf(title, sizeof(title), "production/keyset-with-a-long-name-%d", s);
		assert_int_equal(km_timeline_keyset(tl, title, "owner-team \xC2\xB7 access-token",
		                                    &set), KM_EOK);
		for (int c = 0; c < 5; c++)
			assert_int_equal(km_timeline_change(tl, set, T0 - 10 * DAY + c * 3600,
			                                    "owner: some-team-with-a-long-name", "why"),
			                 KM_EOK);
		for (int k = 0; k < 60; k++) {
			snprintf(kid, sizeof(kid), "kid-%d-%d-abcdefghijklmnopqrstuvwxyz", s, k);
			add_key(tl, set, kid, T0 - 200 * DAY + (int64_t)(rand() % 280) * DAY,
			        (int64_t)(1 + rand() % 40) * DAY);
			keys++;
		}
	}
	assert_int_equal(km_timeline_layout(tl), KM_EOK);
	size_t n = assert_no_overlap(tl);
	/* every drawn key has its label among them */
	size_t key_labels = 0;
	for (size_t i = 0; i < n; i++)
		key_labels += km_timeline_label(tl, i)->kind == KM_TIMELINE_TEXT_KEY;
	assert_int_equal(key_labels, km_timeline_n_drawn(tl));
	assert_true(km_timeline_n_drawn(tl) > 200 && km_timeline_n_drawn(tl) <= keys);
	km_timeline_free(tl);
}

/* 10,000 historical keys, a window of 30 days: only the keys living in it are drawn, and
 * the picture stays small. */
static void test_timeline_draws_only_the_window(void **state)
{
	(void)state;
	km_timeline_t *tl = NULL;
	size_t set, expect = 0;
	int64_t from = T0 - 30 * DAY, to = T0 + 30 * DAY;
	assert_int_equal(km_timeline_create(from, to, T0, &tl), KM_EOK);
	assert_int_equal(km_timeline_keyset(tl, "production/api", "", &set), KM_EOK);
	for (int k = 0; k < 10000; k++) {
		char kid[32];
		int64_t start = T0 - (int64_t)(10000 - k) * DAY / 4;   /* one key every 6 hours */
		snprintf(kid, sizeof(kid), "k%05d", k);
		add_key(tl, set, kid, start, 2 * DAY);
		if (start <= to && start + 5 * DAY >= from)
			expect++;
	}
	char *svg = svg_of(tl, KM_TIMELINE_STANDALONE);
	assert_int_equal(km_timeline_n_drawn(tl), expect);
	assert_true(expect < 200);
	size_t g = 0;
	for (const char *p = svg; (p = strstr(p, "<g class=\"key\"")) != NULL; p++)
		g++;
	assert_int_equal(g, expect);
	assert_null(strstr(svg, "k00000"));     /* a key of years ago */
	assert_non_null(strstr(svg, "k09999"));
	assert_true(strlen(svg) < 400000);
	assert_no_overlap(tl);
	free(svg);
	km_timeline_free(tl);
}

/* Before now solid (s-STATE), after now hatched (p-STATE); a revocation is marked, its
 * exposure shaded; the standby outlined; a key set without keys in the window says so. */
static void test_timeline_past_solid_plan_hatched(void **state)
{
	(void)state;
	km_timeline_t *tl = NULL;
	size_t set, empty, k, r;
	assert_int_equal(km_timeline_create(T0 - 10 * DAY, T0 + 10 * DAY, T0, &tl), KM_EOK);
	assert_int_equal(km_timeline_keyset(tl, "production/api", "a \xC2\xB7 b", &set), KM_EOK);
	assert_int_equal(km_timeline_keyset(tl, "production/idle", "", &empty), KM_EOK);
	assert_int_equal(km_timeline_key(tl, set, "kid-active", "kid-active", "", &k), KM_EOK);
	assert_int_equal(km_timeline_step(tl, k, T0 - 5 * DAY, KM_STATE_ACTIVE), KM_EOK);
	assert_int_equal(km_timeline_step(tl, k, T0 + 5 * DAY, KM_STATE_RETIRED), KM_EOK);
	assert_int_equal(km_timeline_key(tl, set, "kid-revoked", "kid-revoked", "", &r), KM_EOK);
	assert_int_equal(km_timeline_step(tl, r, T0 - 8 * DAY, KM_STATE_PUBLISHED), KM_EOK);
	assert_int_equal(km_timeline_step(tl, r, T0 - 2 * DAY, KM_STATE_REVOKED), KM_EOK);
	assert_int_equal(km_timeline_exposure(tl, r, T0 - 2 * DAY, T0 - 2 * DAY + 3600), KM_EOK);
	assert_int_equal(km_timeline_standby(tl, k), KM_EOK);
	char *svg = svg_of(tl, 0);
	assert_non_null(strstr(svg, "class=\"seg s-active"));
	assert_non_null(strstr(svg, "class=\"seg p-active"));
	assert_non_null(strstr(svg, "class=\"seg p-retired"));
	assert_null(strstr(svg, "class=\"seg s-retired"));
	assert_non_null(strstr(svg, "class=\"revoke\""));
	assert_non_null(strstr(svg, "class=\"exposure\""));
	assert_non_null(strstr(svg, "standby"));
	assert_non_null(strstr(svg, "class=\"now\""));
	assert_non_null(strstr(svg, "no key in this window"));
	assert_non_null(strstr(svg, "data-kid=\"kid-revoked\" data-state=\"revoked\""));
	assert_null(strstr(svg, "<?xml"));          /* for a page: no prolog */
	free(svg);
	km_timeline_free(tl);
}

/* What users typed never becomes markup: key sets, owners, kids, notes, changes. */
static void test_timeline_escapes_every_text(void **state)
{
	(void)state;
	static const char evil[] = "<script>alert('x')</script>&\"";
	km_timeline_t *tl = NULL;
	size_t set, k;
	assert_int_equal(km_timeline_create(T0 - DAY, T0 + DAY, T0, &tl), KM_EOK);
	assert_int_equal(km_timeline_keyset(tl, evil, evil, &set), KM_EOK);
	assert_int_equal(km_timeline_note(tl, set, evil), KM_EOK);
	assert_int_equal(km_timeline_change(tl, set, T0 - 3600, evil, evil), KM_EOK);
	assert_int_equal(km_timeline_key(tl, set, evil, evil, evil, &k), KM_EOK);
	assert_int_equal(km_timeline_step(tl, k, T0 - 7200, KM_STATE_ACTIVE), KM_EOK);
	char *svg = svg_of(tl, KM_TIMELINE_STANDALONE);
	assert_null(strstr(svg, "<script"));
	assert_null(strstr(svg, "'x'"));
	assert_non_null(strstr(svg, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
	free(svg);
	km_timeline_free(tl);
}

static void test_escape_bad_utf8_and_controls(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	km_report_esc(f, "a\xC3\x28" "b\x1B[31m\xE2\x82\xAC\xED\xA0\x80");
	assert_int_equal(fclose(f), 0);
	/* 0xC3 0x28: a lone lead byte; ESC; the euro sign kept; a UTF-16 surrogate refused */
	assert_string_equal(buf, "a\xEF\xBF\xBD(b\xEF\xBF\xBD[31m\xE2\x82\xAC\xEF\xBF\xBD"
	                         "\xEF\xBF\xBD\xEF\xBF\xBD");
	free(buf);
}

static void test_timeline_refuses_bad_input(void **state)
{
	(void)state;
	km_timeline_t *tl = NULL;
	size_t k;
	assert_int_equal(km_timeline_create(T0, T0, T0, &tl), KM_EINVAL);
	assert_int_equal(km_timeline_create(T0, T0 - 1, T0, &tl), KM_EINVAL);
	assert_null(tl);
	assert_int_equal(km_timeline_create(T0 - DAY, T0, T0, &tl), KM_EOK);
	assert_int_equal(km_timeline_key(tl, 0, "k", "k", "", &k), KM_EINVAL);   /* no band 0 */
	assert_int_equal(km_timeline_step(tl, 3, T0, KM_STATE_ACTIVE), KM_EINVAL);
	assert_int_equal(km_timeline_note(tl, 1, "x"), KM_EINVAL);
	km_timeline_free(tl);
	km_timeline_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeline_labels_never_overlap),
		cmocka_unit_test(test_timeline_draws_only_the_window),
		cmocka_unit_test(test_timeline_past_solid_plan_hatched),
		cmocka_unit_test(test_timeline_escapes_every_text),
		cmocka_unit_test(test_escape_bad_utf8_and_controls),
		cmocka_unit_test(test_timeline_refuses_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
