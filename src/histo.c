// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include <string.h>

#include <stdio.h>

#include "histo.h"

void histo__init(struct histo *h)
{
	memset(h, 0, sizeof(*h));
}

unsigned int histo__slot(__u64 v)
{
	if (v < 2)
		return 0;
	return 63 - __builtin_clzll(v);
}

static __u64 sat_add(__u64 a, __u64 b)
{
	return a + b < a ? ~0ull : a + b;
}

void histo__add(struct histo *h, __u64 v)
{
	unsigned int slot = histo__slot(v);

	h->slots[slot]++;
	/* v is a power of two iff it has one bit set; 0 is none. */
	if (v && !(v & (v - 1)))
		h->pow2[slot]++;
	if (!h->count || v < h->min)
		h->min = v;
	if (!h->count || v > h->max)
		h->max = v;
	h->count++;
	h->sum = sat_add(h->sum, v);
}

void histo__merge(struct histo *dst, const struct histo *src)
{
	unsigned int i;

	if (!src->count)
		return;
	for (i = 0; i < HISTO_SLOTS; i++) {
		dst->slots[i] += src->slots[i];
		dst->pow2[i] += src->pow2[i];
	}
	if (!dst->count || src->min < dst->min)
		dst->min = src->min;
	if (!dst->count || src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum = sat_add(dst->sum, src->sum);
}

__u64 histo__percentile(const struct histo *h, double q)
{
	double target, lo, hi, est;
	__u64 cum = 0;
	unsigned int i;

	if (!h->count)
		return 0;
	if (q <= 0)
		return h->min;
	if (q >= 1)
		return h->max;
	target = q * (double)h->count;
	for (i = 0; i < HISTO_SLOTS; i++) {
		if (!h->slots[i] || (double)(cum + h->slots[i]) < target) {
			cum += h->slots[i];
			continue;
		}
		lo = i ? (double)(1ull << i) : 0.0;
		hi = i < 63 ? (double)(1ull << (i + 1)) : 18446744073709551615.0;
		est = lo + (target - (double)cum) / (double)h->slots[i] * (hi - lo);
		if (est <= (double)h->min)
			return h->min;
		if (est >= (double)h->max)
			return h->max;
		return (__u64)(est + 0.5);
	}
	return h->max;
}

__u64 histo__le_pow2(const struct histo *h, unsigned int k)
{
	__u64 n = 0;
	unsigned int i;

	if (k >= HISTO_SLOTS)
		return h->count;
	for (i = 0; i < k; i++)
		n += h->slots[i];
	/* 2^0 = 1 already sits in slot 0 with 0; for k = 0 slot 0 is exactly v <= 1. */
	if (k == 0)
		return h->slots[0];
	return n + h->pow2[k];
}

void histo__prom_buckets(const struct histo *h, __u64 out[HISTO_PROM_BUCKETS])
{
	__u64 below = 0; /* values < 2^k */
	unsigned int i, k;

	for (i = 0; i < HISTO_PROM_FIRST; i++)
		below += h->slots[i];
	for (k = HISTO_PROM_FIRST; k <= HISTO_PROM_LAST; k++) {
		out[k - HISTO_PROM_FIRST] = below + h->pow2[k];
		below += h->slots[k];
	}
}

char *histo__slot_label(unsigned int i, int width, char *buf, size_t len)
{
	unsigned long long low = i ? 1ull << i : 0,
			   high = i < HISTO_SLOTS - 1 ? (2ull << i) - 1 : ~0ull;

	snprintf(buf, len, "%*llu -> %-*llu", width, low, width, high);
	return buf;
}
