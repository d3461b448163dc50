/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * histo.h - log2 histograms of nanosecond latencies.
 *
 * 64 slots: slot i holds values in [2^i, 2^(i+1)), slot 0 holds 0 and 1 (the layout bcc's
 * log2 histograms and the BPF side use). Beside the slots each histogram counts the values
 * that are exactly a power of two, because the Prometheus view needs them: see
 * histo__le_pow2().
 */
#ifndef GMEM_HISTO_H
#define GMEM_HISTO_H

#ifdef __bpf__
#error "histo.h is user-space only"
#endif

#include <linux/types.h>

#define HISTO_SLOTS 64

/*
 * The Prometheus buckets: le = 2^k ns for k = HISTO_PROM_FIRST .. HISTO_PROM_LAST, i.e.
 * 1.024 us ... 68.7 s, 27 buckets, then +Inf.
 */
#define HISTO_PROM_FIRST   10
#define HISTO_PROM_LAST    36
#define HISTO_PROM_BUCKETS (HISTO_PROM_LAST - HISTO_PROM_FIRST + 1)

struct histo {
	__u64 slots[HISTO_SLOTS];
	__u64 pow2[HISTO_SLOTS]; /* pow2[k]: values exactly 2^k (the bottom of slot k) */
	__u64 count;
	__u64 sum; /* ns; saturates rather than wraps */
	__u64 min; /* meaningful only when count > 0 */
	__u64 max;
};

void histo__init(struct histo *h);
/* The slot a value lands in: floor(log2(v)), with 0 and 1 in slot 0. */
unsigned int histo__slot(__u64 v);
void histo__add(struct histo *h, __u64 v);
void histo__merge(struct histo *dst, const struct histo *src);
/* Slot i's range in ns as gmemtrace report and gmemtop both print it, bcc's log2 form:
 * "1024 -> 2047" (each bound right/left aligned to width). Returns buf. */
char *histo__slot_label(unsigned int i, int width, char *buf, size_t len);

/*
 * Estimated q-quantile (0 <= q <= 1) in ns: linear interpolation inside the slot that holds
 * rank q*count, clamped to [min, max] so a narrow distribution is not widened to its slot.
 * 0 for an empty histogram.
 */
__u64 histo__percentile(const struct histo *h, double q);

/*
 * Prometheus cumulative count for le = 2^k ns: the number of values v <= 2^k, exactly.
 *
 * Slots alone give only v < 2^k (the sum of slots 0..k-1), since 2^k itself opens slot k
 * together with 2^k+1 .. 2^(k+1)-1. Prometheus' le is inclusive, so a value of exactly 2^k
 * must count in le=2^k; pow2[k] supplies those and makes every bucket exact:
 * 2^k-1 and 2^k count in le=2^k, 2^k+1 first counts in le=2^(k+1).
 */
__u64 histo__le_pow2(const struct histo *h, unsigned int k);

/* The 27 cumulative counts for le = 2^HISTO_PROM_FIRST .. 2^HISTO_PROM_LAST ns. */
void histo__prom_buckets(const struct histo *h, __u64 out[HISTO_PROM_BUCKETS]);

#endif /* GMEM_HISTO_H */
