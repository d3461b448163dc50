// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * hugemodel.c - the folios a huge-page guest_memfd would have, and the policy's hand in them.
 *
 * A file is an array of 2 MiB regions, allocated when first needed: per page the order of the
 * folio holding it (folios are aligned, so a page's order names its folio), a present bit, a
 * shared bit and a "made by a merge" bit; per region the history policies see. Folios above
 * 2 MiB simply carry their order in every region they span.
 *
 * Every folio comes and goes through folio_add()/folio_del(), which keep the counts coverage,
 * the direct-map estimate and the history are made of; so splits and merges are "delete the
 * old folios, add the new ones", and the accounting cannot drift.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hugemodel.h"

#define RP     512u /* pages per region */
#define RW     8u   /* bitmap words per region */
#define NEVER  (~0ull)
#define RING   GMEM_HIST_RECENT_MAX
#define BUCKETS 256u
#define MAX_SAMPLES 4096u
#define MAX_CAND 16
#define NS_PER_MS 1000000ull

struct hm_region {
	__u64 pop[RW], shared[RW], merged[RW];
	__u64 first_ns, layout_ns, conv_ns, punch_ns, split_ns, merge_ns;
	__u64 conv_ring[RING], punch_ring[RING];
	__u64 touch_seq;
	__u32 conversions, punches, splits, merges;
	__u32 npop, nhuge, nsmall;
	__u32 nfolios; /* folios with a page here */
	__u8 conv_head, conv_n, punch_head, punch_n;
	__u8 ord[RP];
};

struct hm_file {
	struct hm_file *next;
	struct hm_region **regions;
	__u64 ino;
	__u64 npages; /* pages, when size_known; else the highest page seen + 1 */
	__u64 nregions;
	__u64 gen;
	__u32 vm;
	bool size_known;
	bool init_shared;
	bool nodmap;
};

struct hm_bind {
	__u64 gpa, size, ino, off;
	__u32 vm, slot;
};

struct hm_pending {
	__u64 due_ns, seq, ino, gen, start;
	__u32 order;
};

struct hugemodel {
	struct hugemodel_opts o;
	struct hm_decider d;
	struct hm_file *buckets[BUCKETS];
	struct hm_file *last;
	struct hm_bind *binds;
	size_t nbinds, capbinds;
	struct hm_pending *pend;
	size_t npend, cappend;
	struct hm_sample *samples;
	size_t nsamples;
	__u64 sample_ns, next_sample;
	__u64 now, seq, gen;
	bool started;
	unsigned __int128 cov_huge, cov_pop;
	struct hugemodel_stats st;
	struct {
		__u64 ino, start;
		__u32 order;
	} cand[MAX_CAND];
	int ncand;
};

/* ---- bitmaps within a region --------------------------------------------------------------- */

static inline __u64 wmask(unsigned int lo, unsigned int hi, unsigned int i)
{
	unsigned int a = lo > i * 64 ? lo - i * 64 : 0;
	unsigned int b = hi < i * 64 + 64 ? hi - i * 64 : 64;
	__u64 m;

	if (b <= a)
		return 0;
	m = b == 64 ? ~0ull : (1ull << b) - 1;
	return m & ~((1ull << a) - 1);
}

static void bits_set(__u64 *w, unsigned int lo, unsigned int hi)
{
	unsigned int i;

	for (i = lo / 64; i < RW && i * 64 < hi; i++)
		w[i] |= wmask(lo, hi, i);
}

static void bits_clear(__u64 *w, unsigned int lo, unsigned int hi)
{
	unsigned int i;

	for (i = lo / 64; i < RW && i * 64 < hi; i++)
		w[i] &= ~wmask(lo, hi, i);
}

static unsigned int bits_count(const __u64 *w, unsigned int lo, unsigned int hi)
{
	unsigned int i, n = 0;

	for (i = lo / 64; i < RW && i * 64 < hi; i++)
		n += __builtin_popcountll(w[i] & wmask(lo, hi, i));
	return n;
}

/* First bit in [lo, hi) equal to val, or hi. */
static unsigned int bits_find(const __u64 *w, unsigned int lo, unsigned int hi, bool val)
{
	unsigned int i;

	for (i = lo / 64; i < RW && i * 64 < hi; i++) {
		__u64 x = (val ? w[i] : ~w[i]) & wmask(lo, hi, i);

		if (x)
			return i * 64 + __builtin_ctzll(x);
	}
	return hi;
}

static __u32 sat_inc(__u32 v)
{
	return v == ~0u ? v : v + 1;
}

/* ---- files and regions --------------------------------------------------------------------- */

static inline struct hm_region *reg(const struct hm_file *f, __u64 ri)
{
	return ri < f->nregions ? f->regions[ri] : NULL;
}

static inline __u8 page_ord(const struct hm_file *f, __u64 p)
{
	const struct hm_region *r = reg(f, p / RP);

	return r ? r->ord[p % RP] : HM_NO_FOLIO;
}

static inline bool page_shared(const struct hm_file *f, __u64 p)
{
	const struct hm_region *r = reg(f, p / RP);

	if (!r)
		return f->init_shared;
	return r->shared[(p % RP) / 64] & (1ull << (p % 64));
}

static struct hm_region *region_get(struct hm_file *f, __u64 ri)
{
	struct hm_region *r;

	if (ri >= f->nregions) {
		__u64 n = f->nregions ? f->nregions : 1;
		struct hm_region **nr;

		while (n <= ri)
			n *= 2;
		nr = realloc(f->regions, n * sizeof(*nr));
		if (!nr)
			return NULL;
		memset(nr + f->nregions, 0, (n - f->nregions) * sizeof(*nr));
		f->regions = nr;
		f->nregions = n;
	}
	if (f->regions[ri])
		return f->regions[ri];
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	memset(r->ord, HM_NO_FOLIO, sizeof(r->ord));
	if (f->init_shared)
		memset(r->shared, 0xff, sizeof(r->shared));
	r->first_ns = r->layout_ns = r->conv_ns = r->punch_ns = r->split_ns = r->merge_ns = NEVER;
	f->regions[ri] = r;
	return r;
}

static struct hm_file *file_get(struct hugemodel *m, __u64 ino)
{
	struct hm_file *f;

	if (m->last && m->last->ino == ino)
		return m->last;
	for (f = m->buckets[ino % BUCKETS]; f; f = f->next)
		if (f->ino == ino)
			return m->last = f;
	return NULL;
}

static const struct hm_file *file_cget(const struct hugemodel *m, __u64 ino)
{
	const struct hm_file *f;

	for (f = m->buckets[ino % BUCKETS]; f; f = f->next)
		if (f->ino == ino)
			return f;
	return NULL;
}

/* Drops a file and its folios from the counts (no decisions: a release frees everything). */
static void file_drop(struct hugemodel *m, struct hm_file *f)
{
	struct hm_file **pp;
	__u64 ri;

	for (pp = &m->buckets[f->ino % BUCKETS]; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	if (m->last == f)
		m->last = NULL;
	for (ri = 0; ri < f->nregions; ri++) {
		struct hm_region *r = f->regions[ri];

		if (!r)
			continue;
		m->st.populated_pages -= r->npop;
		m->st.huge_pages -= r->nhuge;
		if (f->nodmap && r->nsmall)
			m->st.dmap_fragmented--;
		free(r);
	}
	free(f->regions);
	free(f);
}

static struct hm_file *file_new(struct hugemodel *m, __u64 ino, __u32 vm, __u64 size,
				__u64 flags, bool size_known)
{
	struct hm_file *f = file_get(m, ino);

	if (f)
		file_drop(m, f);
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->ino = ino;
	f->vm = vm;
	f->npages = size / 4096;
	f->size_known = size_known && f->npages;
	f->init_shared = flags & HM_FLAG_INIT_SHARED;
	f->nodmap = m->o.no_direct_map || (flags & HM_FLAG_NO_DIRECT_MAP);
	f->gen = ++m->gen;
	f->next = m->buckets[ino % BUCKETS];
	m->buckets[ino % BUCKETS] = f;
	return f;
}

/* A file-scoped record for a file never created or discovered: model it from here on. */
static struct hm_file *file_or_new(struct hugemodel *m, __u64 ino, __u32 vm)
{
	struct hm_file *f = file_get(m, ino);

	if (f)
		return f;
	m->st.untracked++;
	return file_new(m, ino, vm, 0, 0, false);
}

/* Pages of [s, e) present (which = 0) or shared (which = 1). */
static __u64 range_count(const struct hm_file *f, __u64 s, __u64 e, int which)
{
	__u64 n = 0, p = s;

	while (p < e) {
		__u64 ri = p / RP, re = (ri + 1) * RP < e ? (ri + 1) * RP : e;
		const struct hm_region *r = reg(f, ri);

		if (r)
			n += bits_count(which ? r->shared : r->pop, p - ri * RP, re - ri * RP);
		else if (which && f->init_shared)
			n += re - p;
		p = re;
	}
	return n;
}

/* First page in [p, e) that is present (want = true) or absent, or e. */
static __u64 next_page(const struct hm_file *f, __u64 p, __u64 e, bool want)
{
	while (p < e) {
		__u64 ri = p / RP, re = (ri + 1) * RP < e ? (ri + 1) * RP : e;
		const struct hm_region *r = reg(f, ri);
		unsigned int k;

		if (!r) {
			if (!want)
				return p;
			p = re;
			continue;
		}
		k = bits_find(r->pop, p - ri * RP, re - ri * RP, want);
		if (ri * RP + k < re)
			return ri * RP + k;
		p = re;
	}
	return e;
}

/* ---- folios ---------------------------------------------------------------------------------- */

static int folio_add(struct hugemodel *m, struct hm_file *f, __u64 start, unsigned int order)
{
	__u64 n = 1ull << order, e = start + n, p = start;

	if (!f->size_known && e > f->npages)
		f->npages = e;
	while (p < e) {
		__u64 ri = p / RP, re = (ri + 1) * RP < e ? (ri + 1) * RP : e;
		struct hm_region *r = region_get(f, ri);
		unsigned int lo = p - ri * RP, hi = re - ri * RP, cnt = hi - lo;

		if (!r)
			return -ENOMEM;
		memset(r->ord + lo, order, cnt);
		bits_set(r->pop, lo, hi);
		r->npop += cnt;
		r->nfolios++;
		if (order >= HM_HUGE_ORDER) {
			r->nhuge += cnt;
		} else {
			if (!r->nsmall && f->nodmap) {
				m->st.dmap_splits++;
				if (++m->st.dmap_fragmented > m->st.dmap_fragmented_peak)
					m->st.dmap_fragmented_peak = m->st.dmap_fragmented;
			}
			r->nsmall += cnt;
		}
		if (r->first_ns == NEVER)
			r->first_ns = m->now;
		r->layout_ns = m->now;
		p = re;
	}
	m->st.populated_pages += n;
	if (order >= HM_HUGE_ORDER)
		m->st.huge_pages += n;
	if (m->st.populated_pages > m->st.peak_populated_pages)
		m->st.peak_populated_pages = m->st.populated_pages;
	return 0;
}

static void folio_del(struct hugemodel *m, struct hm_file *f, __u64 start, unsigned int order)
{
	__u64 n = 1ull << order, e = start + n, p = start;

	while (p < e) {
		__u64 ri = p / RP, re = (ri + 1) * RP < e ? (ri + 1) * RP : e;
		struct hm_region *r = reg(f, ri);
		unsigned int lo = p - ri * RP, hi = re - ri * RP, cnt = hi - lo;

		p = re;
		if (!r)
			continue;
		memset(r->ord + lo, HM_NO_FOLIO, cnt);
		bits_clear(r->pop, lo, hi);
		bits_clear(r->merged, lo, hi);
		r->npop -= cnt;
		r->nfolios--;
		if (order >= HM_HUGE_ORDER) {
			r->nhuge -= cnt;
		} else {
			r->nsmall -= cnt;
			if (!r->nsmall && f->nodmap)
				m->st.dmap_fragmented--;
		}
		r->layout_ns = m->now;
	}
	m->st.populated_pages -= n;
	if (order >= HM_HUGE_ORDER)
		m->st.huge_pages -= n;
}

/* Marks the 2 MiB regions of [s, e) as touched by the current operation. */
static void touch(struct hugemodel *m, struct hm_file *f, __u64 s, __u64 e)
{
	__u64 ri;

	for (ri = s / RP; ri * RP < e; ri++) {
		struct hm_region *r = reg(f, ri);

		if (r)
			r->touch_seq = m->seq;
	}
}

/* ---- history ------------------------------------------------------------------------------ */

static __u64 since(__u64 now, __u64 t)
{
	if (t == NEVER)
		return GMEM_HIST_NEVER;
	return now > t ? now - t : 0;
}

static __u32 recent(const __u64 *ring, __u8 n, __u64 now, __u64 window)
{
	__u32 k = 0;
	__u8 i;

	for (i = 0; i < n; i++)
		if (ring[i] <= now && now - ring[i] < window)
			k++;
	return k;
}

static void ring_push(__u64 *ring, __u8 *head, __u8 *n, __u64 t)
{
	ring[*head] = t;
	*head = (*head + 1) % RING;
	if (*n < RING)
		(*n)++;
}

static void fill_hist(const struct hugemodel *m, const struct hm_file *f, __u64 p, __u64 now,
		      struct gmem_region_hist *h)
{
	const struct hm_region *r = reg(f, p / RP);

	memset(h, 0, sizeof(*h));
	h->window_ns = m->o.window_ns;
	if (!r) {
		h->since_conv_ns = h->since_punch_ns = GMEM_HIST_NEVER;
		h->since_split_ns = h->since_merge_ns = GMEM_HIST_NEVER;
		h->shared_pages = f->init_shared ? RP : 0;
		return;
	}
	h->age_ns = r->first_ns == NEVER ? 0 : since(now, r->first_ns);
	h->layout_age_ns = r->layout_ns == NEVER ? 0 : since(now, r->layout_ns);
	h->since_conv_ns = since(now, r->conv_ns);
	h->since_punch_ns = since(now, r->punch_ns);
	h->since_split_ns = since(now, r->split_ns);
	h->since_merge_ns = since(now, r->merge_ns);
	h->conversions = r->conversions;
	h->recent_conversions = recent(r->conv_ring, r->conv_n, now, m->o.window_ns);
	h->punches = r->punches;
	h->recent_punches = recent(r->punch_ring, r->punch_n, now, m->o.window_ns);
	h->splits = r->splits;
	h->merges = r->merges;
	h->shared_pages = bits_count(r->shared, 0, RP);
	h->populated_pages = r->npop;
	h->huge_pages = r->nhuge;
	h->folios = r->nfolios;
}

static __u32 base_flags(const struct hugemodel *m, const struct hm_file *f)
{
	return m->o.ctx_flags | (f->nodmap ? GMEM_POLF_NO_DIRECT_MAP : 0);
}

/* ---- decisions ------------------------------------------------------------------------------ */

static void split_ctx(const struct hugemodel *m, const struct hm_file *f, __u64 fs,
		      unsigned int o, __u64 s, __u64 e, __u32 cause, __u32 to, __u64 now,
		      struct gmem_split_ctx *c)
{
	__u64 fe = fs + (1ull << o), rs = s > fs ? s : fs, re = e < fe ? e : fe;

	memset(c, 0, sizeof(*c));
	c->ino = f->ino;
	c->index = fs;
	c->start = rs;
	c->nr_pages = re - rs;
	c->now_ns = now;
	c->vm = f->vm;
	c->order = o;
	c->cause = cause;
	c->to = to;
	c->flags = base_flags(m, f) | (page_shared(f, fs) ? GMEM_POLF_SHARED : 0);
	fill_hist(m, f, fs, now, &c->hist);
}

/* An order-1 folio can only be split to 0: that is no decision, and the policy is not asked. */
static unsigned int ask_split(struct hugemodel *m, const struct gmem_split_ctx *c)
{
	int raw, v;

	if (c->order <= 1)
		return 0;
	raw = m->d.split ? m->d.split(m->d.ctx, c) : 0;
	v = raw < 0 ? 0 : raw > (int)c->order - 1 ? (int)c->order - 1 : raw;

	m->st.decisions[GMEM_POLICY_SPLIT]++;
	if (v != raw)
		m->st.clamped[GMEM_POLICY_SPLIT]++;
	return v;
}

/* Largest order of an aligned block around p, up to max_order, inside the file, without a
 * present page, and in p's state. p must be absent. */
static unsigned int max_fit(const struct hugemodel *m, const struct hm_file *f, __u64 p)
{
	bool sh = page_shared(f, p);
	unsigned int k, fit = 0;

	for (k = 1; k <= m->o.max_order; k++) {
		__u64 n = 1ull << k, b = p & ~(n - 1), c;

		if (f->size_known && b + n > f->npages)
			break;
		if (range_count(f, b, b + n, 0))
			break;
		c = range_count(f, b, b + n, 1);
		if (c != (sh ? n : 0))
			break;
		fit = k;
	}
	return fit;
}

static void alloc_ctx(const struct hugemodel *m, const struct hm_file *f, __u64 p, __u64 e,
		      __u32 source, __u64 now, struct gmem_alloc_ctx *c)
{
	__u64 be = ((p >> m->o.max_order) + 1) << m->o.max_order;

	memset(c, 0, sizeof(*c));
	c->ino = f->ino;
	c->index = p;
	c->nr_pages = (e < be ? e : be) - p;
	c->now_ns = now;
	c->vm = f->vm;
	c->max_order = max_fit(m, f, p);
	c->source = source;
	c->flags = base_flags(m, f) | (page_shared(f, p) ? GMEM_POLF_SHARED : 0);
	fill_hist(m, f, p, now, &c->hist);
}

/* ---- splits -------------------------------------------------------------------------------- */

struct split_job {
	struct hm_file *f;
	__u64 rs, re;
	unsigned int R;
	bool free_touched;
	int err;
};

static void decompose(struct hugemodel *m, struct split_job *j, __u64 b, unsigned int k)
{
	__u64 e = b + (1ull << k), x;
	bool inside = b >= j->rs && e <= j->re, outside = e <= j->rs || b >= j->re;

	if (inside && j->free_touched)
		return;
	if (outside && k > j->R) {
		for (x = b; x < e && !j->err; x += 1ull << j->R)
			j->err = folio_add(m, j->f, x, j->R);
		return;
	}
	if ((inside || outside) && k <= j->R) {
		if (!j->err)
			j->err = folio_add(m, j->f, b, k);
		return;
	}
	decompose(m, j, b, k - 1);
	decompose(m, j, b + (1ull << (k - 1)), k - 1);
}

/* Split folio (fs, o) around [s, e) so no piece is above order R; pieces inside the range go
 * when free_touched. */
static int split_folio(struct hugemodel *m, struct hm_file *f, __u64 fs, unsigned int o,
		       __u64 s, __u64 e, unsigned int R, bool free_touched)
{
	struct split_job j = { .f = f, .rs = s, .re = e, .R = R, .free_touched = free_touched };
	const struct hm_region *r0 = reg(f, fs / RP);
	bool pingpong = r0 && (r0->merged[(fs % RP) / 64] & (1ull << (fs % 64)));
	__u64 ri;

	folio_del(m, f, fs, o);
	decompose(m, &j, fs, o);
	if (pingpong)
		m->st.pingpongs++;
	m->st.splits[o][R]++;
	for (ri = fs / RP; ri * RP < fs + (1ull << o); ri++) {
		struct hm_region *r = reg(f, ri);

		if (r) {
			r->splits = sat_inc(r->splits);
			r->split_ns = m->now;
		}
	}
	return j.err;
}

/* The folio holding page p, when it is partly outside [s, e). */
static bool partial_folio(const struct hm_file *f, __u64 p, __u64 s, __u64 e, __u64 *fs,
			  unsigned int *o)
{
	__u8 k = page_ord(f, p);

	if (k == HM_NO_FOLIO)
		return false;
	*o = k;
	*fs = p & ~((1ull << k) - 1);
	return *fs < s || *fs + (1ull << k) > e;
}

/* ---- merges -------------------------------------------------------------------------------- */

static int do_merge(struct hugemodel *m, struct hm_file *f, __u64 b, unsigned int k)
{
	__u64 e = b + (1ull << k), p = b, ri;
	unsigned int min = 0xff;
	int err;

	while (p < e) {
		unsigned int o = page_ord(f, p);

		folio_del(m, f, p, o);
		if (o < min)
			min = o;
		p += 1ull << o;
	}
	err = folio_add(m, f, b, k);
	for (ri = b / RP; ri * RP < e; ri++) {
		struct hm_region *r = reg(f, ri);
		__u64 lo = b > ri * RP ? b - ri * RP : 0, hi = e < (ri + 1) * RP ? e - ri * RP : RP;

		if (!r)
			continue;
		bits_set(r->merged, lo, hi);
		r->merges = sat_inc(r->merges);
		r->merge_ns = m->now;
	}
	m->st.merges[min][k]++;
	return err;
}

/* Whether block (b, k) is fully present, in one state (*shared) and of several folios. */
static bool mergeable(const struct hm_file *f, __u64 b, unsigned int k, bool *shared)
{
	__u64 n = 1ull << k, sh;

	if (f->size_known && b + n > f->npages)
		return false;
	if (range_count(f, b, b + n, 0) != n)
		return false;
	sh = range_count(f, b, b + n, 1);
	if (sh && sh != n)
		return false;
	*shared = sh == n;
	return page_ord(f, b) < k;
}

static void pend_add(struct hugemodel *m, const struct hm_pending *pd)
{
	size_t i;

	if (m->npend == m->cappend) {
		size_t n = m->cappend ? m->cappend * 2 : 64;
		struct hm_pending *np = realloc(m->pend, n * sizeof(*np));

		if (!np)
			return;
		m->pend = np;
		m->cappend = n;
	}
	/* sorted by due time; equal times keep their order */
	for (i = m->npend; i > 0 && m->pend[i - 1].due_ns > pd->due_ns; i--)
		m->pend[i] = m->pend[i - 1];
	m->pend[i] = *pd;
	m->npend++;
}

static int offer_merge(struct hugemodel *m, struct hm_file *f, __u64 b, unsigned int k,
		       bool shared)
{
	struct gmem_merge_ctx c = {};
	__u64 p = b, e = b + (1ull << k);
	int i, raw, v;

	for (i = 0; i < m->ncand; i++)
		if (m->cand[i].ino == f->ino && m->cand[i].start == b && m->cand[i].order == k)
			return 0;
	if (m->ncand < MAX_CAND) {
		m->cand[m->ncand].ino = f->ino;
		m->cand[m->ncand].start = b;
		m->cand[m->ncand++].order = k;
	}
	c.ino = f->ino;
	c.index = b;
	c.now_ns = m->now;
	c.vm = f->vm;
	c.order = k;
	c.min_order = 0xff;
	c.flags = base_flags(m, f) | (shared ? GMEM_POLF_SHARED : 0);
	while (p < e) {
		unsigned int o = page_ord(f, p);

		c.folios++;
		if (o < c.min_order)
			c.min_order = o;
		p += 1ull << o;
	}
	fill_hist(m, f, b, m->now, &c.hist);
	raw = m->d.merge ? m->d.merge(m->d.ctx, &c) : GMEM_MERGE_NEVER;
	v = raw < GMEM_MERGE_NEVER ? GMEM_MERGE_NEVER :
	    raw > GMEM_MERGE_MAX_DELAY_MS ? GMEM_MERGE_MAX_DELAY_MS : raw;
	m->st.decisions[GMEM_POLICY_MERGE]++;
	if (v != raw)
		m->st.clamped[GMEM_POLICY_MERGE]++;
	if (v == GMEM_MERGE_NOW) {
		m->st.merge_now++;
		return do_merge(m, f, b, k);
	}
	if (v == GMEM_MERGE_NEVER) {
		m->st.merge_never++;
		return 0;
	}
	m->st.merge_delayed++;
	pend_add(m, &(struct hm_pending){ .due_ns = m->now + (__u64)v * NS_PER_MS,
					  .seq = m->seq, .ino = f->ino, .gen = f->gen,
					  .start = b, .order = k });
	return 0;
}

/* The largest mergeable block around p, offered to the policy. */
static int merge_check(struct hugemodel *m, struct hm_file *f, __u64 p)
{
	unsigned int k;
	bool shared;

	for (k = m->o.max_order; k >= HM_HUGE_ORDER; k--) {
		__u64 b = p & ~((1ull << k) - 1);

		__u8 o = page_ord(f, b);

		if (o != HM_NO_FOLIO && o >= k)
			return 0; /* inside one folio: nothing smaller to merge either */
		if (mergeable(f, b, k, &shared))
			return offer_merge(m, f, b, k, shared);
	}
	return 0;
}

/* Merge checks at both ends of [s, e) in every max-order block it touches. */
static int merge_checks(struct hugemodel *m, struct hm_file *f, __u64 s, __u64 e)
{
	__u64 bs, n = 1ull << m->o.max_order;
	int err = 0;

	for (bs = s & ~(n - 1); bs < e && !err; bs += n) {
		__u64 lo = s > bs ? s : bs, hi = e < bs + n ? e : bs + n;

		err = merge_check(m, f, lo);
		if (!err && hi - 1 != lo)
			err = merge_check(m, f, hi - 1);
	}
	return err;
}

static void run_pending(struct hugemodel *m)
{
	struct hm_pending pd = m->pend[0];
	struct hm_file *f;
	bool touched = false, shared;
	__u64 ri, e = pd.start + (1ull << pd.order);

	memmove(m->pend, m->pend + 1, (m->npend - 1) * sizeof(*m->pend));
	m->npend--;
	f = file_get(m, pd.ino);
	if (!f || f->gen != pd.gen) {
		m->st.merges_cancelled++;
		return;
	}
	for (ri = pd.start / RP; ri * RP < e; ri++) {
		const struct hm_region *r = reg(f, ri);

		if (!r || r->touch_seq > pd.seq)
			touched = true;
	}
	if (touched || !mergeable(f, pd.start, pd.order, &shared)) {
		m->st.merges_cancelled++;
		return;
	}
	do_merge(m, f, pd.start, pd.order);
}

/* ---- time ---------------------------------------------------------------------------------- */

static void integrate(struct hugemodel *m, __u64 t)
{
	__u64 dt = t - m->now;

	m->cov_huge += (unsigned __int128)m->st.huge_pages * dt;
	m->cov_pop += (unsigned __int128)m->st.populated_pages * dt;
	m->now = t;
}

static void take_sample(struct hugemodel *m)
{
	size_t i;

	if (m->nsamples == MAX_SAMPLES) {
		/* keep every other sample and halve the rate */
		for (i = 0; 2 * i + 1 < m->nsamples; i++)
			m->samples[i] = m->samples[2 * i + 1];
		m->nsamples = i;
		m->sample_ns *= 2;
		m->next_sample = m->samples[i - 1].ts_ns + m->sample_ns;
		return;
	}
	m->samples[m->nsamples++] = (struct hm_sample){
		.ts_ns = m->next_sample,
		.populated_pages = m->st.populated_pages,
		.huge_pages = m->st.huge_pages,
		.dmap_fragmented = m->st.dmap_fragmented,
	};
	m->next_sample += m->sample_ns;
}

static void advance(struct hugemodel *m, __u64 t)
{
	if (!m->started) {
		m->started = true;
		m->now = t;
		m->st.first_ts_ns = t;
		m->next_sample = t + m->sample_ns;
	}
	if (t < m->now)
		t = m->now; /* records from different CPUs may arrive slightly out of order */
	for (;;) {
		__u64 next = m->npend ? m->pend[0].due_ns : NEVER;
		bool sample = false;

		if (m->samples && m->next_sample < next) {
			next = m->next_sample;
			sample = true;
		}
		if (next > t)
			break;
		integrate(m, next);
		if (sample)
			take_sample(m);
		else
			run_pending(m);
	}
	integrate(m, t);
	if (t > m->st.last_ts_ns)
		m->st.last_ts_ns = t;
}

void hugemodel__tick(struct hugemodel *m, __u64 now_ns)
{
	if (m->started)
		advance(m, now_ns);
}

/* ---- operations ---------------------------------------------------------------------------- */

static int op_alloc(struct hugemodel *m, struct hm_file *f, __u64 s, __u64 e, __u32 source)
{
	__u64 p = s, block = NEVER;
	unsigned int answer = 0;
	bool greedy = false; /* the answer was "as large as fits" */
	int err = 0;

	if (f->size_known && e > f->npages)
		e = f->npages;
	if (s >= e)
		return 0;
	while (!err && (p = next_page(f, p, e, false)) < e) {
		__u64 mb = p >> m->o.max_order;
		unsigned int o, fit;

		if (mb != block && !max_fit(m, f, p)) {
			/* only 4 KiB fits: no choice, so no decision; the next page may have one */
			o = 0;
		} else if (mb != block) {
			struct gmem_alloc_ctx c;
			int raw;

			alloc_ctx(m, f, p, e, source, m->now, &c);
			raw = m->d.alloc ? m->d.alloc(m->d.ctx, &c) : 0;
			answer = raw < 0 ? 0 : raw > (int)c.max_order ? c.max_order : (unsigned)raw;
			m->st.decisions[GMEM_POLICY_ALLOC]++;
			if ((int)answer != raw)
				m->st.clamped[GMEM_POLICY_ALLOC]++;
			block = mb;
			greedy = answer == c.max_order;
			o = answer;
		} else {
			fit = max_fit(m, f, p);
			o = greedy || answer > fit ? fit : answer;
		}
		err = folio_add(m, f, p & ~((1ull << o) - 1), o);
		m->st.allocs[o]++;
		p = (p & ~((1ull << o) - 1)) + (1ull << o);
	}
	touch(m, f, s, e);
	if (!err)
		err = merge_checks(m, f, s, e);
	return err;
}

static int op_punch(struct hugemodel *m, struct hm_file *f, __u64 s, __u64 e)
{
	__u64 ends[2] = { s, e - 1 }, fs, p, ri;
	unsigned int o, i;
	int err = 0;

	if (s >= e)
		return 0;
	for (i = 0; i < 2 && !err; i++) {
		if (partial_folio(f, ends[i], s, e, &fs, &o)) {
			struct gmem_split_ctx c;

			split_ctx(m, f, fs, o, s, e, GMEM_SPLIT_PUNCH, 0, m->now, &c);
			err = split_folio(m, f, fs, o, s, e, ask_split(m, &c), true);
		}
	}
	/* everything left in the range is a folio wholly inside it */
	for (p = next_page(f, s, e, true); p < e; p = next_page(f, p, e, true)) {
		o = page_ord(f, p);
		folio_del(m, f, p, o);
		p += 1ull << o;
	}
	for (ri = s / RP; ri * RP < e; ri++) {
		struct hm_region *r = reg(f, ri);

		if (!r)
			continue;
		r->punches = sat_inc(r->punches);
		ring_push(r->punch_ring, &r->punch_head, &r->punch_n, m->now);
		r->punch_ns = m->now;
	}
	touch(m, f, s, e);
	return err;
}

static int op_convert(struct hugemodel *m, struct hm_file *f, __u64 s, __u64 e, __u32 to)
{
	bool sh = to == GMEM_TO_SHARED;
	__u64 ends[2] = { s, e - 1 }, fs, ri;
	unsigned int o, i;
	int err = 0;

	if (f->size_known && e > f->npages)
		e = f->npages;
	if (s >= e)
		return 0;
	for (i = 0; i < 2 && !err; i++) {
		if (partial_folio(f, ends[i], s, e, &fs, &o) && page_shared(f, fs) != sh) {
			struct gmem_split_ctx c;

			split_ctx(m, f, fs, o, s, e, GMEM_SPLIT_CONVERT, to, m->now, &c);
			err = split_folio(m, f, fs, o, s, e, ask_split(m, &c), false);
		}
	}
	for (ri = s / RP; ri * RP < e && !err; ri++) {
		struct hm_region *r = region_get(f, ri);
		__u64 lo = s > ri * RP ? s - ri * RP : 0;
		__u64 hi = e < (ri + 1) * RP ? e - ri * RP : RP;

		if (!r) {
			err = -ENOMEM;
			break;
		}
		if (sh)
			bits_set(r->shared, lo, hi);
		else
			bits_clear(r->shared, lo, hi);
		r->conversions = sat_inc(r->conversions);
		ring_push(r->conv_ring, &r->conv_head, &r->conv_n, m->now);
		r->conv_ns = m->now;
	}
	m->st.conversions++;
	touch(m, f, s, e);
	if (!err)
		err = merge_checks(m, f, s, e);
	return err;
}

static int bind_add(struct hugemodel *m, const struct hm_bind *b)
{
	size_t i;

	for (i = 0; i < m->nbinds; i++) {
		if (m->binds[i].vm == b->vm && m->binds[i].slot == b->slot) {
			m->binds[i] = *b;
			return 0;
		}
	}
	if (m->nbinds == m->capbinds) {
		size_t n = m->capbinds ? m->capbinds * 2 : 16;
		struct hm_bind *nb = realloc(m->binds, n * sizeof(*nb));

		if (!nb)
			return -ENOMEM;
		m->binds = nb;
		m->capbinds = n;
	}
	m->binds[m->nbinds++] = *b;
	return 0;
}

static void bind_del(struct hugemodel *m, __u32 vm, bool all, __u32 slot)
{
	size_t i = 0;

	while (i < m->nbinds) {
		if (m->binds[i].vm == vm && (all || m->binds[i].slot == slot))
			m->binds[i] = m->binds[--m->nbinds];
		else
			i++;
	}
}

/* Calls fn for each (file, page range) the gpa range of vm maps to; returns ranges found. */
static int for_each_mapping(const struct hugemodel *m, __u32 vm, __u64 gpa, __u64 size,
			    int (*fn)(void *ctx, __u64 ino, __u64 s, __u64 e), void *ctx,
			    int *err)
{
	size_t i;
	int n = 0;

	for (i = 0; i < m->nbinds && !*err; i++) {
		const struct hm_bind *b = &m->binds[i];
		__u64 lo = gpa > b->gpa ? gpa : b->gpa;
		__u64 hi = gpa + size < b->gpa + b->size ? gpa + size : b->gpa + b->size;

		if (b->vm != vm || lo >= hi)
			continue;
		n++;
		*err = fn(ctx, b->ino, (b->off + lo - b->gpa) / 4096,
			  (b->off + hi - b->gpa + 4095) / 4096);
	}
	return n;
}

struct conv_arg {
	struct hugemodel *m;
	__u32 to;
};

static int convert_fn(void *ctx, __u64 ino, __u64 s, __u64 e)
{
	struct conv_arg *a = ctx;
	struct hm_file *f = file_get(a->m, ino);

	if (!f)
		return 0;
	return op_convert(a->m, f, s, e, a->to);
}

int hugemodel__apply(struct hugemodel *m, const struct gmem_event *ev)
{
	struct hm_file *f;
	int err = 0;

	/* a file's counted totals name no page: nothing to place (gmemd counts only while no
	 * policy runs, so a policy meets these only around a switch) */
	if (ev->flags & GMEM_EVF_COUNTED)
		return 0;
	advance(m, ev->ts_ns);
	m->seq++;
	m->ncand = 0;
	m->st.events++;
	switch (ev->kind) {
	case GMEM_EV_FILE_CREATE:
		if (ev->result >= 0 && ev->ino)
			err = file_new(m, ev->ino, ev->vm, ev->a, ev->b, true) ? 0 : -ENOMEM;
		break;
	case GMEM_EV_FILE_DISCOVER:
		if (ev->ino && !file_get(m, ev->ino))
			err = file_new(m, ev->ino, ev->vm, ev->a, ev->c, true) ? 0 : -ENOMEM;
		break;
	case GMEM_EV_FILE_RELEASE:
		f = file_get(m, ev->ino);
		if (f)
			file_drop(m, f);
		break;
	case GMEM_EV_BIND:
		if (ev->result == 0)
			err = bind_add(m, &(struct hm_bind){ .gpa = ev->a, .size = ev->b,
							     .ino = ev->ino, .off = ev->c,
							     .vm = ev->vm, .slot = ev->sub });
		break;
	case GMEM_EV_UNBIND:
		if (ev->result == 0)
			bind_del(m, ev->vm, false, ev->sub);
		break;
	case GMEM_EV_VM_EXIT:
		bind_del(m, ev->vm, true, 0);
		break;
	case GMEM_EV_PAGE_ALLOC:
		f = file_or_new(m, ev->ino, ev->vm);
		if (!f)
			return -ENOMEM;
		if (ev->flags & GMEM_EVF_RANGE)
			err = op_alloc(m, f, ev->a, ev->c > ev->a ? ev->c : ev->a + 1, ev->sub);
		else
			err = op_alloc(m, f, ev->a, ev->a + (ev->b ? ev->b : 1), ev->sub);
		break;
	case GMEM_EV_FALLOCATE:
		if (ev->result)
			break;
		f = file_or_new(m, ev->ino, ev->vm);
		if (!f)
			return -ENOMEM;
		err = op_alloc(m, f, ev->a / 4096, (ev->a + ev->b) / 4096, GMEM_SRC_FALLOCATE);
		break;
	case GMEM_EV_PUNCH_HOLE:
		if (ev->result)
			break;
		f = file_or_new(m, ev->ino, ev->vm);
		if (!f)
			return -ENOMEM;
		err = op_punch(m, f, ev->a / 4096, (ev->a + ev->b) / 4096);
		break;
	case GMEM_EV_CONV_ATTR: {
		struct conv_arg a = { .m = m, .to = ev->sub };

		if (ev->result || ev->sub >= GMEM_DIR_MAX || !ev->b)
			break;
		if (!for_each_mapping(m, ev->vm, ev->a, ev->b, convert_fn, &a, &err))
			m->st.unmapped_conversions++;
		break;
	}
	default:
		break;
	}
	return err;
}

/* ---- lifecycle and views ----------------------------------------------------------------- */

struct hugemodel *hugemodel__new(const struct hugemodel_opts *opts, const struct hm_decider *d)
{
	struct hugemodel *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	if (opts)
		m->o = *opts;
	if (!m->o.max_order)
		m->o.max_order = 9;
	if (m->o.max_order > GMEM_POLICY_MAX_ORDER)
		m->o.max_order = GMEM_POLICY_MAX_ORDER;
	if (!m->o.window_ns)
		m->o.window_ns = 1000 * NS_PER_MS;
	m->sample_ns = m->o.sample_ns;
	if (m->sample_ns) {
		m->samples = calloc(MAX_SAMPLES, sizeof(*m->samples));
		if (!m->samples) {
			free(m);
			return NULL;
		}
	}
	if (d)
		m->d = *d;
	return m;
}

void hugemodel__free(struct hugemodel *m)
{
	unsigned int i;

	if (!m)
		return;
	for (i = 0; i < BUCKETS; i++)
		while (m->buckets[i])
			file_drop(m, m->buckets[i]);
	free(m->binds);
	free(m->pend);
	free(m->samples);
	free(m);
}

void hugemodel__set_decider(struct hugemodel *m, const struct hm_decider *d)
{
	if (d)
		m->d = *d;
	else
		memset(&m->d, 0, sizeof(m->d));
}

const struct hugemodel_stats *hugemodel__stats(struct hugemodel *m)
{
	m->st.pending_merges = m->npend;
	m->st.coverage_avg = m->cov_pop ? (double)m->cov_huge / (double)m->cov_pop : 0.0;
	m->st.coverage_final = m->st.populated_pages ?
				       (double)m->st.huge_pages / m->st.populated_pages : 0.0;
	return &m->st;
}

const struct hm_sample *hugemodel__samples(const struct hugemodel *m, size_t *n)
{
	*n = m->nsamples;
	return m->samples;
}

const struct hugemodel_opts *hugemodel__opts(const struct hugemodel *m)
{
	return &m->o;
}

int hugemodel__orders(const struct hugemodel *m, __u64 ino, __u64 first, __u64 n, __u8 *orders)
{
	const struct hm_file *f = file_cget(m, ino);
	__u64 i;

	if (!f)
		return -ENOENT;
	for (i = 0; i < n; i++)
		orders[i] = page_ord(f, first + i);
	return 0;
}

int hugemodel__hist(const struct hugemodel *m, __u64 ino, __u64 index, __u64 now_ns,
		    struct gmem_region_hist *h)
{
	const struct hm_file *f = file_cget(m, ino);

	if (!f)
		return -ENOENT;
	fill_hist(m, f, index, now_ns ? now_ns : m->now, h);
	return 0;
}

struct plan_arg {
	const struct hugemodel *m;
	const struct hm_plan_req *req;
	struct hm_plan *out;
	__u64 now;
};

static int plan_range(void *ctx, __u64 ino, __u64 s, __u64 e)
{
	struct plan_arg *a = ctx;
	const struct hugemodel *m = a->m;
	const struct hm_file *f = file_cget(m, ino);
	bool convert = a->req->op == HM_PLAN_CONVERT, sh = a->req->to == GMEM_TO_SHARED;
	__u64 ends[2] = { s, e - 1 }, fs, prev = NEVER;
	unsigned int o, i;

	if (!f)
		return -ENOENT;
	if (f->size_known && e > f->npages)
		e = f->npages;
	if (s >= e)
		return 0;
	if (a->req->op == HM_PLAN_FAULT) {
		if (page_ord(f, s) != HM_NO_FOLIO || a->out->n >= HM_PLAN_MAX || !max_fit(m, f, s))
			return 0;
		a->out->cb[a->out->n] = GMEM_POLICY_ALLOC;
		alloc_ctx(m, f, s, e, a->req->source, a->now, &a->out->ctx[a->out->n].alloc);
		a->out->ctx[a->out->n++].alloc.flags |= GMEM_POLF_ADVICE;
		return 0;
	}
	for (i = 0; i < 2; i++) {
		if (!partial_folio(f, ends[i], s, e, &fs, &o) || fs == prev)
			continue;
		prev = fs;
		if ((convert && page_shared(f, fs) == sh) || o <= 1)
			continue; /* nothing to split, or nothing to choose */
		if (a->out->n >= HM_PLAN_MAX)
			return 0;
		a->out->cb[a->out->n] = GMEM_POLICY_SPLIT;
		split_ctx(m, f, fs, o, s, e, convert ? GMEM_SPLIT_CONVERT : GMEM_SPLIT_PUNCH,
			  convert ? a->req->to : 0, a->now, &a->out->ctx[a->out->n].split);
		a->out->ctx[a->out->n++].split.flags |= GMEM_POLF_ADVICE;
	}
	return 0;
}

int hugemodel__plan(const struct hugemodel *m, const struct hm_plan_req *req,
		    struct hm_plan *out)
{
	struct plan_arg a = { .m = m, .req = req, .out = out,
			      .now = req->now_ns ? req->now_ns : m->now };
	int err = 0;

	out->n = 0;
	if (req->op == HM_PLAN_CONVERT && !req->ino) {
		if (!for_each_mapping(m, req->vm, req->gpa, req->size, plan_range, &a, &err))
			return -ENOENT;
		return err;
	}
	if (req->op == HM_PLAN_FAULT)
		return plan_range(&a, req->ino, req->first, req->first + (req->n ? req->n : 1));
	return plan_range(&a, req->ino, req->first, req->first + req->n);
}
