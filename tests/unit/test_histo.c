// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Unit tests for the log2 histogram: slots, percentiles, the Prometheus buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "histo.h"

static void test_slot_edges(void **state)
{
	unsigned int k;

	assert_int_equal(histo__slot(0), 0);
	assert_int_equal(histo__slot(1), 0);
	assert_int_equal(histo__slot(2), 1);
	assert_int_equal(histo__slot(3), 1);
	assert_int_equal(histo__slot(4), 2);
	for (k = 2; k < 64; k++) {
		__u64 p = 1ull << k;

		assert_int_equal(histo__slot(p - 1), k - 1);
		assert_int_equal(histo__slot(p), k);
		assert_int_equal(histo__slot(p + 1), k);
	}
	assert_int_equal(histo__slot(UINT64_MAX), 63);
}

static void test_add_count_sum_min_max(void **state)
{
	struct histo h;

	histo__init(&h);
	assert_int_equal(h.count, 0);
	histo__add(&h, 700);
	histo__add(&h, 5);
	histo__add(&h, 1 << 20);
	assert_int_equal(h.count, 3);
	assert_int_equal(h.sum, 700 + 5 + (1 << 20));
	assert_int_equal(h.min, 5);
	assert_int_equal(h.max, 1 << 20);
	assert_int_equal(h.slots[9], 1);  /* 700 in [512, 1024) */
	assert_int_equal(h.slots[2], 1);  /* 5 in [4, 8) */
	assert_int_equal(h.slots[20], 1); /* 2^20 opens slot 20 */
	assert_int_equal(h.pow2[20], 1);
	assert_int_equal(h.pow2[9], 0);
}

static void test_sum_saturates(void **state)
{
	struct histo h;

	histo__init(&h);
	histo__add(&h, UINT64_MAX - 1);
	histo__add(&h, 10);
	assert_int_equal(h.sum, UINT64_MAX);
	assert_int_equal(h.count, 2);
}

static void test_merge(void **state)
{
	struct histo a, b, c;
	unsigned int i;

	histo__init(&a);
	histo__init(&b);
	histo__init(&c);
	for (i = 1; i <= 50; i++) {
		histo__add(&a, i * 1000);
		histo__add(&c, i * 1000);
	}
	for (i = 1; i <= 30; i++) {
		histo__add(&b, i * 7);
		histo__add(&c, i * 7);
	}
	histo__merge(&a, &b);
	assert_memory_equal(&a, &c, sizeof(a));

	/* merging into an empty one copies; merging an empty one changes nothing */
	histo__init(&a);
	histo__merge(&a, &c);
	assert_memory_equal(&a, &c, sizeof(a));
	histo__init(&b);
	histo__merge(&a, &b);
	assert_memory_equal(&a, &c, sizeof(a));
}

static void test_percentile_empty_and_extremes(void **state)
{
	struct histo h;

	histo__init(&h);
	assert_int_equal(histo__percentile(&h, 0.5), 0);
	histo__add(&h, 3000);
	histo__add(&h, 9000);
	assert_int_equal(histo__percentile(&h, 0.0), 3000);
	assert_int_equal(histo__percentile(&h, 1.0), 9000);
}

static void test_percentile_constant(void **state)
{
	struct histo h;
	unsigned int i;

	/* All values equal: the clamp to [min, max] gives the value itself, not its slot. */
	histo__init(&h);
	for (i = 0; i < 1000; i++)
		histo__add(&h, 123456);
	assert_int_equal(histo__percentile(&h, 0.5), 123456);
	assert_int_equal(histo__percentile(&h, 0.99), 123456);
}

static void test_percentile_1_to_100(void **state)
{
	struct histo h;
	unsigned int i;

	histo__init(&h);
	for (i = 1; i <= 100; i++)
		histo__add(&h, i);
	/*
	 * p50: rank 50 falls in slot 5 = [32, 64), holding 32..63 (32 values) after 31 below it:
	 * 32 + (50 - 31) / 32 * 32 = 51.
	 */
	assert_int_equal(histo__percentile(&h, 0.5), 51);
	/* p99: slot 6 = [64, 128) interpolates to 126.3, clamped to max 100. */
	assert_int_equal(histo__percentile(&h, 0.99), 100);
	/* p10: rank 10 in slot 3 = [8, 16) (8 values, 7 below): 8 + 3/8 * 8 = 11. */
	assert_int_equal(histo__percentile(&h, 0.10), 11);
}

static void test_percentile_bimodal(void **state)
{
	struct histo h;
	unsigned int i;

	histo__init(&h);
	for (i = 0; i < 50; i++)
		histo__add(&h, 1000);
	for (i = 0; i < 50; i++)
		histo__add(&h, 100000);
	/* p50: rank 50 is the top of slot 9 = [512, 1024): 1024 */
	assert_int_equal(histo__percentile(&h, 0.5), 1024);
	/* p99: slot 16 = [65536, 131072): 65536 + 49/50 * 65536 = 129761, clamped to 100000 */
	assert_int_equal(histo__percentile(&h, 0.99), 100000);
	/* p75: 65536 + 25/50 * 65536 = 98304, inside [min, max] */
	assert_int_equal(histo__percentile(&h, 0.75), 98304);
}

/* The cumulative count at le = 2^k ns must be #{v <= 2^k}, Prometheus' inclusive le. */
static void test_prom_bucket_edges(void **state)
{
	__u64 b[HISTO_PROM_BUCKETS];
	struct histo h;
	unsigned int k, i;

	for (k = HISTO_PROM_FIRST; k <= HISTO_PROM_LAST; k++) {
		__u64 p = 1ull << k;
		unsigned int at = k - HISTO_PROM_FIRST;

		/* 2^k - 1: first counted at le=2^k */
		histo__init(&h);
		histo__add(&h, p - 1);
		histo__prom_buckets(&h, b);
		for (i = 0; i < HISTO_PROM_BUCKETS; i++)
			assert_int_equal(b[i], i >= at ? 1 : 0);
		assert_int_equal(histo__le_pow2(&h, k), 1);
		assert_int_equal(histo__le_pow2(&h, k - 1), 0);

		/* 2^k: also first counted at le=2^k (le is inclusive), though it opens slot k */
		histo__init(&h);
		histo__add(&h, p);
		histo__prom_buckets(&h, b);
		for (i = 0; i < HISTO_PROM_BUCKETS; i++)
			assert_int_equal(b[i], i >= at ? 1 : 0);
		assert_int_equal(histo__le_pow2(&h, k), 1);
		assert_int_equal(histo__le_pow2(&h, k - 1), 0);

		/* 2^k + 1: first counted at le=2^(k+1); above the last bucket only in +Inf */
		histo__init(&h);
		histo__add(&h, p + 1);
		histo__prom_buckets(&h, b);
		for (i = 0; i < HISTO_PROM_BUCKETS; i++)
			assert_int_equal(b[i], i >= at + 1 ? 1 : 0);
		assert_int_equal(histo__le_pow2(&h, k), 0);
		assert_int_equal(histo__le_pow2(&h, k + 1), 1);
		assert_int_equal(h.count, 1);
	}
}

static void test_prom_buckets_cumulative(void **state)
{
	__u64 b[HISTO_PROM_BUCKETS];
	struct histo h;
	unsigned int i;

	histo__init(&h);
	histo__add(&h, 0);             /* below the range: in every bucket */
	histo__add(&h, 500);           /* below 1.024 us: in every bucket */
	histo__add(&h, 1500);          /* le=2^11 (2.048 us) and up */
	histo__add(&h, 1000000);       /* 1 ms: le=2^20 (1.048576 ms) and up */
	histo__add(&h, 1000000000);    /* 1 s: le=2^30 (1.073741824 s) and up */
	histo__add(&h, 1ull << 36);    /* exactly the last bound: in le=2^36 */
	histo__add(&h, 100000000000);  /* 100 s: only +Inf */
	histo__prom_buckets(&h, b);
	assert_int_equal(b[0], 2);  /* le=2^10 */
	assert_int_equal(b[1], 3);  /* le=2^11 */
	assert_int_equal(b[9], 3);  /* le=2^19 */
	assert_int_equal(b[10], 4); /* le=2^20 */
	assert_int_equal(b[19], 4); /* le=2^29 */
	assert_int_equal(b[20], 5); /* le=2^30 */
	assert_int_equal(b[25], 5); /* le=2^35 */
	assert_int_equal(b[26], 6); /* le=2^36 */
	assert_int_equal(h.count, 7);
	for (i = 1; i < HISTO_PROM_BUCKETS; i++)
		assert_true(b[i] >= b[i - 1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_edges),
		cmocka_unit_test(test_add_count_sum_min_max),
		cmocka_unit_test(test_sum_saturates),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_percentile_empty_and_extremes),
		cmocka_unit_test(test_percentile_constant),
		cmocka_unit_test(test_percentile_1_to_100),
		cmocka_unit_test(test_percentile_bimodal),
		cmocka_unit_test(test_prom_bucket_edges),
		cmocka_unit_test(test_prom_buckets_cumulative),
	};

	return cmocka_run_group_tests_name("histo", tests, NULL, NULL);
}
