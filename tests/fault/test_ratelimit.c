/* SPDX-License-Identifier: Apache-2.0 */
/* The per-peer token buckets (keymgr/common/ratelimit.c), driven by an explicit clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/ratelimit.h"

static const uint8_t a[4] = { 127, 0, 0, 1 }, b[4] = { 127, 0, 0, 2 };

static void test_ratelimit_burst_then_rate(void **state)
{
	km_ratelimit_t *rl = NULL;
	unsigned retry = 0;
	(void)state;
	assert_int_equal(km_ratelimit_create(10, 5, 0, &rl), KM_EOK);
	for (int i = 0; i < 5; i++)
		assert_true(km_ratelimit_take(rl, a, sizeof(a), 1000, NULL));
	assert_false(km_ratelimit_take(rl, a, sizeof(a), 1000, &retry));
	assert_int_equal(retry, 100);                /* one token every 100 ms at 10/s */
	assert_false(km_ratelimit_take(rl, a, sizeof(a), 1050, &retry));
	assert_int_equal(retry, 50);
	assert_true(km_ratelimit_take(rl, a, sizeof(a), 1100, NULL));
	assert_false(km_ratelimit_take(rl, a, sizeof(a), 1100, NULL));
	/* Another peer has its own bucket. */
	assert_true(km_ratelimit_take(rl, b, sizeof(b), 1100, NULL));
	/* Idle for long: the bucket refills to the burst, not beyond. */
	for (int i = 0; i < 5; i++)
		assert_true(km_ratelimit_take(rl, a, sizeof(a), 100000, NULL));
	assert_false(km_ratelimit_take(rl, a, sizeof(a), 100000, NULL));
	km_ratelimit_free(rl);
}

static void test_ratelimit_default_burst_and_bad_input(void **state)
{
	km_ratelimit_t *rl = NULL;
	(void)state;
	assert_int_equal(km_ratelimit_create(0, 0, 0, &rl), KM_EINVAL);
	assert_null(rl);
	assert_int_equal(km_ratelimit_create(3, 0, 0, &rl), KM_EOK);
	for (int i = 0; i < 6; i++)                  /* burst 0: twice the rate */
		assert_true(km_ratelimit_take(rl, a, sizeof(a), 0, NULL));
	assert_false(km_ratelimit_take(rl, a, sizeof(a), 0, NULL));
	/* Keys of no or too many bytes are not limited (and not stored). */
	assert_true(km_ratelimit_take(rl, a, 0, 0, NULL));
	uint8_t big[KM_RATELIMIT_KEY_MAX + 1] = { 0 };
	assert_true(km_ratelimit_take(rl, big, sizeof(big), 0, NULL));
	km_ratelimit_free(rl);
	km_ratelimit_free(NULL);
}

/* Far more peers than the table holds: new peers are never refused for lack of room, and a
 * peer that is over its rate stays limited while the table churns around it. */
static void test_ratelimit_full_table(void **state)
{
	km_ratelimit_t *rl = NULL;
	(void)state;
	assert_int_equal(km_ratelimit_create(1, 1, 64, &rl), KM_EOK);
	assert_true(km_ratelimit_take(rl, a, sizeof(a), 5000, NULL));
	assert_false(km_ratelimit_take(rl, a, sizeof(a), 5000, NULL));
	for (uint32_t i = 0; i < 10000; i++) {
		uint8_t k[4];
		memcpy(k, &i, sizeof(k));
		if (memcmp(k, a, 4) == 0)
			continue;
		assert_true(km_ratelimit_take(rl, k, sizeof(k), 5000 + i % 7, NULL));
	}
	km_ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ratelimit_burst_then_rate),
		cmocka_unit_test(test_ratelimit_default_burst_and_bad_input),
		cmocka_unit_test(test_ratelimit_full_table),
	};
	return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
