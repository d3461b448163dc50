// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * whatif.c - one huge-page model per policy, fed the same records in lockstep, then the
 * comparison: as text side by side, or as JSON.
 *
 * Each model reaches its policy through a decider that runs the policy's program with
 * BPF_PROG_RUN (policy.c); the answer is already clamped there, so the model's own clamp
 * count stays 0 and the policy's counts what it had to fix.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvmstats.h"
#include "recording.h"
#include "whatif.h"

#define NS_PER_S  1000000000ull
#define NS_PER_MS 1000000ull
#define PAGE      4096ull

/* ---- deciders: the model asks, the policy answers in the BPF VM ---------------------------- */

static int dec_split(void *ctx, const struct gmem_split_ctx *c)
{
	struct policy_answer a;

	policy__split(ctx, c, &a);
	return a.value;
}

static int dec_merge(void *ctx, const struct gmem_merge_ctx *c)
{
	struct policy_answer a;

	policy__merge(ctx, c, &a);
	return a.value;
}

static int dec_alloc(void *ctx, const struct gmem_alloc_ctx *c)
{
	struct policy_answer a;

	policy__alloc(ctx, c, &a);
	return a.value;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* this run's share of a policy's statistics: after - before */
static void stats_sub(struct policy_stats *d, const struct policy_stats *a,
		      const struct policy_stats *b)
{
	const __u64 *pa = (const __u64 *)a, *pb = (const __u64 *)b;
	__u64 *pd = (__u64 *)d;
	size_t i;

	for (i = 0; i < sizeof(*d) / sizeof(__u64); i++)
		pd[i] = pa[i] - pb[i];
}

/*
 * The recorded mapping mix: which stat ids are a VM's pages_4k/2m/1g (their DESC records say),
 * each VM's last values, and a point of the sums per tick.
 */
#define KVM_IDS 4096
#define KVM_VMS 1024

struct kvm_mix {
	__s8 which[KVM_IDS]; /* 0..2, or -1 */
	struct {
		__u32 vm;
		__u64 pages[3];
	} vm[KVM_VMS];
	size_t nvm, cap;
	int err;
};

static void kvm_mix_apply(struct kvm_mix *k, struct whatif_result *out, const struct gmem_event *e)
{
	static const char *const names[3] = KVMSTATS_MIX_NAMES;
	struct whatif_kvm_point *pt;
	char name[40];
	size_t i, v;
	int w;

	if (e->kind == GMEM_EV_KVM_STAT_DESC && e->sub < KVM_IDS && !e->to_order) {
		k->which[e->sub] = -1;
		for (w = 0; !e->order && w < 3 && kvmstats__desc_name(e, name, sizeof(name)); w++)
			if (!strcmp(name, names[w]))
				k->which[e->sub] = w;
		return;
	}
	if (e->kind != GMEM_EV_KVM_STAT || e->order || e->sub >= KVM_IDS || k->which[e->sub] < 0)
		return;
	for (v = 0; v < k->nvm && k->vm[v].vm != e->vm; v++)
		;
	if (v == k->nvm) {
		if (k->nvm == KVM_VMS)
			return;
		k->vm[k->nvm++] = (typeof(k->vm[0])){ .vm = e->vm };
	}
	k->vm[v].pages[k->which[e->sub]] = e->a;
	/* one point per tick: the samples of one tick share its timestamp */
	pt = out->nr_kvm ? &out->kvm[out->nr_kvm - 1] : NULL;
	if (!pt || pt->ts_ns != e->ts_ns) {
		if (out->nr_kvm == k->cap) {
			size_t cap = k->cap ? k->cap * 2 : 64;
			struct whatif_kvm_point *np = realloc(out->kvm, cap * sizeof(*np));

			if (!np) {
				k->err = -ENOMEM;
				return;
			}
			out->kvm = np;
			k->cap = cap;
		}
		pt = &out->kvm[out->nr_kvm++];
		pt->ts_ns = e->ts_ns;
	}
	memset(pt->pages, 0, sizeof(pt->pages));
	for (i = 0; i < k->nvm; i++)
		for (w = 0; w < 3; w++)
			pt->pages[w] += k->vm[i].pages[w];
}

int whatif__run(const struct whatif_opts *opts, whatif_next_fn next, void *ctx,
		struct policy **pols, int n, struct whatif_result *out)
{
	static const struct whatif_opts none = {};
	const struct whatif_opts *o = opts ? opts : &none;
	struct hugemodel_opts ho = {
		.max_order = o->max_order, .window_ns = o->window_ns,
		.sample_ns = o->no_series ? 0 : o->sample_ns ? o->sample_ns : 100 * NS_PER_MS,
		.ctx_flags = GMEM_POLF_WHATIF, .no_direct_map = o->no_direct_map,
	};
	struct hugemodel **models = NULL;
	struct policy_stats *before = NULL;
	struct kvm_mix *kmix = NULL;
	struct gmem_event ev;
	__u64 t0;
	int i, r, err = 0;

	memset(out, 0, sizeof(*out));
	if (n <= 0)
		return -EINVAL;
	models = calloc(n, sizeof(*models));
	before = calloc(n, sizeof(*before));
	out->pol = calloc(n, sizeof(*out->pol));
	kmix = calloc(1, sizeof(*kmix));
	if (kmix)
		memset(kmix->which, -1, sizeof(kmix->which));
	if (!models || !before || !out->pol || !kmix) {
		err = -ENOMEM;
		goto cleanup;
	}
	out->nr = n;
	for (i = 0; i < n; i++) {
		struct hm_decider d = { dec_split, dec_merge, dec_alloc, pols[i] };

		models[i] = hugemodel__new(&ho, &d);
		if (!models[i]) {
			err = -ENOMEM;
			goto cleanup;
		}
		before[i] = *policy__stats(pols[i]);
	}
	out->max_order = hugemodel__opts(models[0])->max_order;
	out->no_direct_map = o->no_direct_map;
	t0 = mono_ns();
	while ((r = next(ctx, &ev)) > 0) {
		if (!out->records)
			out->first_ts_ns = ev.ts_ns;
		if (ev.ts_ns > out->last_ts_ns)
			out->last_ts_ns = ev.ts_ns;
		out->records++;
		kvm_mix_apply(kmix, out, &ev);
		for (i = 0; i < n; i++) {
			r = hugemodel__apply(models[i], &ev);
			if (r && !err)
				err = r;
		}
	}
	if (r < 0 && !err)
		err = r;
	if (kmix->err && !err)
		err = kmix->err;
	if (err)
		goto cleanup;
	for (i = 0; i < n; i++)
		hugemodel__tick(models[i], out->last_ts_ns);
	out->wall_ns = mono_ns() - t0;

	for (i = 0; i < n; i++) {
		struct whatif_policy_result *pr = &out->pol[i];
		const struct hm_sample *s;
		size_t ns;

		snprintf(pr->name, sizeof(pr->name), "%s", policy__name(pols[i]));
		pr->path = policy__path(pols[i]);
		pr->hm = *hugemodel__stats(models[i]);
		stats_sub(&pr->pol, policy__stats(pols[i]), &before[i]);
		s = hugemodel__samples(models[i], &ns);
		if (ns) {
			pr->series = malloc(ns * sizeof(*s));
			if (!pr->series) {
				err = -ENOMEM;
				break;
			}
			memcpy(pr->series, s, ns * sizeof(*s));
			pr->nr_series = ns;
		}
	}
cleanup:
	for (i = 0; models && i < n; i++)
		hugemodel__free(models[i]);
	free(models);
	free(before);
	free(kmix);
	if (err)
		whatif__result_free(out);
	return err;
}

void whatif__result_free(struct whatif_result *r)
{
	int i;

	if (!r)
		return;
	for (i = 0; r->pol && i < r->nr; i++)
		free(r->pol[i].series);
	free(r->pol);
	free(r->kvm);
	memset(r, 0, sizeof(*r));
}

/* ---- sources ------------------------------------------------------------------------------- */

int whatif__next_array(void *ctx, struct gmem_event *ev)
{
	struct whatif_array *a = ctx;

	if (a->i >= a->n)
		return 0;
	*ev = a->ev[a->i++];
	return 1;
}

int whatif__next_fd(void *ctx, struct gmem_event *ev)
{
	struct whatif_fd *r = ctx;
	ssize_t k;

	while (r->len - r->off < sizeof(*ev)) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
		k = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return r->len ? -EPROTO : 0;
		r->len += k;
	}
	memcpy(ev, r->buf + r->off, sizeof(*ev));
	r->off += sizeof(*ev);
	return 1;
}

int whatif__next_recording(void *ctx, struct gmem_event *ev)
{
	struct whatif_rec *s = ctx;

	for (;;) {
		while (s->i < s->n) {
			const struct gmem_event *e = &s->recs[s->i++];

			if (!s->keep || s->keep(s->kctx, e)) {
				*ev = *e;
				return 1;
			}
		}
		s->status = recording__next(s->r, &s->recs, &s->n);
		s->i = 0;
		if (s->status <= 0)
			return 0; /* the end, or damage: the caller reports status */
	}
}

/* ---- rendering ----------------------------------------------------------------------------- */

static const char *order_name(unsigned int o)
{
	return policy__slot_name(GMEM_POLICY_SPLIT, o);
}

static __u64 sum_decisions(const struct policy_stats *s)
{
	__u64 t = 0;
	int cb;

	for (cb = 0; cb < GMEM_POLICY_CB_MAX; cb++)
		t += s->calls[cb];
	return t;
}

static __u64 sum_run_ns(const struct policy_stats *s)
{
	__u64 t = 0;
	int cb;

	for (cb = 0; cb < GMEM_POLICY_CB_MAX; cb++)
		t += s->run_ns[cb];
	return t;
}

static json_t *pairs_json(const __u64 (*m)[HM_ORDERS])
{
	json_t *a = json_array();
	unsigned int f, t;

	for (f = 0; a && f < HM_ORDERS; f++)
		for (t = 0; t < HM_ORDERS; t++)
			if (m[f][t])
				json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:i, s:I}",
					"from", order_name(f), "to", order_name(t), "from_order", f,
					"to_order", t, "count", (json_int_t)m[f][t]));
	return a;
}

static json_t *slots_json(const struct policy_stats *s, enum gmem_policy_cb cb)
{
	unsigned int k, n = cb == GMEM_POLICY_MERGE ? 3 : POLICY_DECISIONS;
	json_t *o = json_object();

	for (k = 0; o && k < n; k++)
		if (s->decided[cb][k])
			json_object_set_new(o, policy__slot_name(cb, k),
					    json_integer(s->decided[cb][k]));
	return o;
}

static json_t *policy_json(const struct whatif_result *r, const struct whatif_policy_result *p)
{
	const struct hugemodel_stats *h = &p->hm;
	const struct policy_stats *s = &p->pol;
	__u64 dec = sum_decisions(s);
	json_t *o, *series = json_array(), *allocs = json_object(), *dm, *cost;
	json_t *decided = json_object();
	unsigned int k;
	size_t i;
	int cb;

	for (k = 0; allocs && k < HM_ORDERS; k++)
		if (h->allocs[k])
			json_object_set_new(allocs, order_name(k), json_integer(h->allocs[k]));
	for (i = 0; series && i < p->nr_series; i++)
		json_array_append_new(series, json_pack("{s:f, s:I, s:I, s:I}",
			"t", (p->series[i].ts_ns - r->first_ts_ns) / 1e9,
			"populated_bytes", (json_int_t)(p->series[i].populated_pages * PAGE),
			"huge_bytes", (json_int_t)(p->series[i].huge_pages * PAGE),
			"dmap_fragmented", (json_int_t)p->series[i].dmap_fragmented));
	for (cb = 0; decided && cb < GMEM_POLICY_CB_MAX; cb++)
		json_object_set_new(decided, policy__cb_name(cb), slots_json(s, cb));
	cost = json_pack("{s:I, s:I, s:f, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}}",
			"decisions", (json_int_t)dec, "runs", (json_int_t)s->runs,
			"ns_per_decision", dec ? (double)sum_run_ns(s) / dec : 0.0,
			"clamped", "split", (json_int_t)s->clamped[GMEM_POLICY_SPLIT],
			"merge", (json_int_t)s->clamped[GMEM_POLICY_MERGE],
			"alloc_order", (json_int_t)s->clamped[GMEM_POLICY_ALLOC],
			"errors", "split", (json_int_t)s->errors[GMEM_POLICY_SPLIT],
			"merge", (json_int_t)s->errors[GMEM_POLICY_MERGE],
			"alloc_order", (json_int_t)s->errors[GMEM_POLICY_ALLOC]);
	dm = json_pack("{s:b, s:I, s:I, s:I}", "all_files", r->no_direct_map, "splits_estimate",
		       (json_int_t)h->dmap_splits, "fragmented_peak",
		       (json_int_t)h->dmap_fragmented_peak, "fragmented_final",
		       (json_int_t)h->dmap_fragmented);
	o = json_pack("{s:s, s:s?, s:{s:I, s:I, s:I}, s:o, s:o, s:o, s:o, s:o, "
		      "s:{s:I, s:I, s:I, s:I}, s:I, s:{s:f, s:f, s:I, s:I, s:I, s:o}, s:o, "
		      "s:o, s:{s:I, s:I}}",
		"name", p->name, "path", p->path,
		"decisions", "split", (json_int_t)h->decisions[GMEM_POLICY_SPLIT],
		"merge", (json_int_t)h->decisions[GMEM_POLICY_MERGE],
		"alloc_order", (json_int_t)h->decisions[GMEM_POLICY_ALLOC],
		"decided", decided ? decided : json_null(),
		"splits", pairs_json(h->splits), "merges", pairs_json(h->merges),
		"allocs", allocs ? allocs : json_null(), "merge_answers",
		json_pack("{s:I, s:I, s:I}", "now", (json_int_t)h->merge_now, "delayed",
			  (json_int_t)h->merge_delayed, "never", (json_int_t)h->merge_never),
		"delayed_merges", "cancelled", (json_int_t)h->merges_cancelled, "pending",
		(json_int_t)h->pending_merges, "conversions", (json_int_t)h->conversions,
		"unmapped_conversions", (json_int_t)h->unmapped_conversions,
		"pingpongs", (json_int_t)h->pingpongs,
		"coverage", "avg", h->coverage_avg, "final", h->coverage_final,
		"populated_bytes", (json_int_t)(h->populated_pages * PAGE),
		"huge_bytes", (json_int_t)(h->huge_pages * PAGE),
		"peak_populated_bytes", (json_int_t)(h->peak_populated_pages * PAGE),
		"series", series ? series : json_null(),
		"direct_map", dm ? dm : json_null(), "cost", cost ? cost : json_null(),
		"records", "applied", (json_int_t)h->events, "untracked_files",
		(json_int_t)h->untracked);
	return o;
}

/* The part of the guests KVM mapped with huge pages, by 4 KiB: -1 when it mapped nothing. */
static double kvm_huge(const struct whatif_kvm_point *p)
{
	double huge = (double)p->pages[1] * 512 + (double)p->pages[2] * 262144;
	double all = (double)p->pages[0] + huge;

	return all > 0 ? huge / all : -1;
}

static double kvm_huge_avg(const struct whatif_result *r)
{
	double sum = 0;
	size_t i, n = 0;

	for (i = 0; i < r->nr_kvm; i++)
		if (kvm_huge(&r->kvm[i]) >= 0) {
			sum += kvm_huge(&r->kvm[i]);
			n++;
		}
	return n ? sum / n : -1;
}

/* The recorded point at or before t, NULL before the first. */
static const struct whatif_kvm_point *kvm_at(const struct whatif_result *r, __u64 t)
{
	const struct whatif_kvm_point *p = NULL;
	size_t i;

	for (i = 0; i < r->nr_kvm && r->kvm[i].ts_ns <= t; i++)
		p = &r->kvm[i];
	return p;
}

static void pct_cell(char *buf, size_t len, double v)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f%%", 100 * v);
}

/* first, last, min, max of one page size over the recorded points */
static void kvm_mix_stats(const struct whatif_result *r, int w, __u64 out[4])
{
	size_t i;

	out[0] = r->kvm[0].pages[w];
	out[1] = r->kvm[r->nr_kvm - 1].pages[w];
	out[2] = out[3] = out[0];
	for (i = 0; i < r->nr_kvm; i++) {
		if (r->kvm[i].pages[w] < out[2])
			out[2] = r->kvm[i].pages[w];
		if (r->kvm[i].pages[w] > out[3])
			out[3] = r->kvm[i].pages[w];
	}
}

static json_t *num_or_null(double v)
{
	return v < 0 ? json_null() : json_real(v);
}

/* KVM's mapping of the guests beside the policies' coverage: null without samples. */
static json_t *kvm_json(const struct whatif_result *r)
{
	static const char *const names[3] = KVMSTATS_MIX_NAMES;
	json_t *o, *series = json_array();
	__u64 st[4];
	size_t i;
	int w;

	if (!r->nr_kvm) {
		json_decref(series);
		return json_null();
	}
	for (i = 0; series && i < r->nr_kvm; i++) {
		const struct whatif_kvm_point *p = &r->kvm[i];

		json_array_append_new(series, json_pack("{s:f, s:I, s:I, s:I, s:o}", "t",
			((double)p->ts_ns - (double)r->first_ts_ns) / 1e9,
			"pages_4k", (json_int_t)p->pages[0], "pages_2m", (json_int_t)p->pages[1],
			"pages_1g", (json_int_t)p->pages[2], "huge_fraction",
			num_or_null(kvm_huge(p))));
	}
	o = json_pack("{s:s, s:o, s:o, s:o}", "what",
		      "KVM's pages_4k/2m/1g (binary stats sampled by gmemd), summed over VMs; "
		      "huge_fraction is the part mapped by 2M and 1G pages, by 4 KiB",
		      "huge_avg", num_or_null(kvm_huge_avg(r)), "huge_final",
		      num_or_null(kvm_huge(&r->kvm[r->nr_kvm - 1])), "series",
		      series ? series : json_null());
	for (w = 0; o && w < 3; w++) {
		kvm_mix_stats(r, w, st);
		json_object_set_new(o, names[w],
				    json_pack("{s:I, s:I, s:I, s:I}", "first", (json_int_t)st[0],
					      "last", (json_int_t)st[1], "min", (json_int_t)st[2],
					      "max", (json_int_t)st[3]));
	}
	return o;
}

json_t *whatif__json(const struct whatif_result *r)
{
	double trace = r->last_ts_ns > r->first_ts_ns ? (r->last_ts_ns - r->first_ts_ns) / 1e9 : 0;
	double wall = r->wall_ns / 1e9;
	json_t *pols = json_array(), *o;
	int i;

	for (i = 0; pols && i < r->nr; i++)
		json_array_append_new(pols, policy_json(r, &r->pol[i]));
	o = json_pack("{s:I, s:f, s:f, s:f, s:i, s:s, s:o}", "records", (json_int_t)r->records,
		      "trace_seconds", trace, "wall_seconds", wall, "records_per_second",
		      wall > 0 ? r->records / wall : 0.0, "max_order", (int)r->max_order,
		      "max_folio", order_name(r->max_order), "policies", pols ? pols : json_null());
	json_object_set_new(o, "recorded_mapping", kvm_json(r));
	return o;
}

/* one text row: a label, then one right-aligned cell per policy */
static void row(FILE *f, int n, const char *label, const char *const *cells)
{
	int i;

	fprintf(f, "%-30s", label);
	for (i = 0; i < n; i++)
		fprintf(f, " %12s", cells[i]);
	fputc('\n', f);
}

#define CELLS 16

static void row_u64(FILE *f, const struct whatif_result *r, const char *label,
		    __u64 (*get)(const struct whatif_policy_result *, int), int arg)
{
	char buf[CELLS][24];
	const char *cells[CELLS];
	int i;

	for (i = 0; i < r->nr && i < CELLS; i++) {
		__u64 v = get(&r->pol[i], arg);

		snprintf(buf[i], sizeof(buf[i]), v ? "%llu" : ".", (unsigned long long)v);
		cells[i] = buf[i];
	}
	row(f, i, label, cells);
}

static __u64 g_dec(const struct whatif_policy_result *p, int cb)
{
	return p->hm.decisions[cb];
}

static __u64 g_split(const struct whatif_policy_result *p, int k)
{
	return p->hm.splits[k / HM_ORDERS][k % HM_ORDERS];
}

static __u64 g_merge(const struct whatif_policy_result *p, int k)
{
	return p->hm.merges[k / HM_ORDERS][k % HM_ORDERS];
}

static __u64 g_alloc(const struct whatif_policy_result *p, int k)
{
	return p->hm.allocs[k];
}

static __u64 g_field(const struct whatif_policy_result *p, int which)
{
	switch (which) {
	case 0: return p->hm.merge_now;
	case 1: return p->hm.merge_delayed;
	case 2: return p->hm.merge_never;
	case 3: return p->hm.merges_cancelled;
	case 4: return p->hm.pingpongs;
	case 5: return p->hm.dmap_splits;
	case 6: return p->hm.dmap_fragmented_peak;
	case 7: return p->pol.clamped[0] + p->pol.clamped[1] + p->pol.clamped[2];
	case 8: return p->pol.errors[0] + p->pol.errors[1] + p->pol.errors[2];
	case 9: return p->hm.peak_populated_pages * PAGE >> 20;
	}
	return 0;
}

void whatif__print(FILE *f, const struct whatif_result *r)
{
	double trace = r->last_ts_ns > r->first_ts_ns ? (r->last_ts_ns - r->first_ts_ns) / 1e9 : 0;
	char buf[CELLS + 1][24], label[64];
	const char *cells[CELLS + 1];
	int i, n = r->nr < CELLS ? r->nr : CELLS, k, pts, kvm;
	unsigned int a, b;

	fprintf(f, "what-if: %llu records, %.3f s of trace, folios up to %s%s; replayed in "
		"%.3f s (%.0f records/s, all policies)\n\n", (unsigned long long)r->records,
		trace, order_name(r->max_order),
		r->no_direct_map ? ", every file no-direct-map" : "", r->wall_ns / 1e9,
		r->wall_ns ? r->records / (r->wall_ns / 1e9) : 0.0);
	/* beside the coverage rows: what KVM itself mapped, as the recording sampled it */
	kvm = r->nr_kvm && n < CELLS ? 1 : 0;
	for (i = 0; i < n; i++)
		cells[i] = r->pol[i].name;
	cells[n] = "KVM (rec.)";
	row(f, n + kvm, "", cells);
	for (k = 0; k < GMEM_POLICY_CB_MAX; k++) {
		snprintf(label, sizeof(label), "decisions: %s", policy__cb_name(k));
		row_u64(f, r, label, g_dec, k);
	}
	for (a = HM_ORDERS; a-- > 0;)
		for (b = HM_ORDERS; b-- > 0;) {
			bool any = false;

			for (i = 0; i < n; i++)
				any |= r->pol[i].hm.splits[a][b] != 0;
			if (!any)
				continue;
			snprintf(label, sizeof(label), "splits %s -> %s", order_name(a),
				 order_name(b));
			row_u64(f, r, label, g_split, a * HM_ORDERS + b);
		}
	for (b = HM_ORDERS; b-- > 0;)
		for (a = 0; a < HM_ORDERS; a++) {
			bool any = false;

			for (i = 0; i < n; i++)
				any |= r->pol[i].hm.merges[a][b] != 0;
			if (!any)
				continue;
			snprintf(label, sizeof(label), "merges %s.. -> %s", order_name(a),
				 order_name(b));
			row_u64(f, r, label, g_merge, a * HM_ORDERS + b);
		}
	for (a = HM_ORDERS; a-- > 0;) {
		bool any = false;

		for (i = 0; i < n; i++)
			any |= r->pol[i].hm.allocs[a] != 0;
		if (!any)
			continue;
		snprintf(label, sizeof(label), "allocations %s", order_name(a));
		row_u64(f, r, label, g_alloc, a);
	}
	row_u64(f, r, "merge answers: now", g_field, 0);
	row_u64(f, r, "merge answers: delay", g_field, 1);
	row_u64(f, r, "merge answers: never", g_field, 2);
	row_u64(f, r, "delayed merges cancelled", g_field, 3);
	row_u64(f, r, "merge/split ping-pongs", g_field, 4);
	for (i = 0; i < n; i++) {
		snprintf(buf[i], sizeof(buf[i]), "%.1f%%", 100 * r->pol[i].hm.coverage_avg);
		cells[i] = buf[i];
	}
	if (kvm) {
		pct_cell(buf[n], sizeof(buf[n]), kvm_huge_avg(r));
		cells[n] = buf[n];
	}
	row(f, n + kvm, "huge coverage, average", cells);
	for (i = 0; i < n; i++) {
		snprintf(buf[i], sizeof(buf[i]), "%.1f%%", 100 * r->pol[i].hm.coverage_final);
		cells[i] = buf[i];
	}
	if (kvm) {
		pct_cell(buf[n], sizeof(buf[n]), kvm_huge(&r->kvm[r->nr_kvm - 1]));
		cells[n] = buf[n];
	}
	row(f, n + kvm, "huge coverage, at the end", cells);
	/* the series at ten evenly spaced points */
	pts = r->nr && r->pol[0].nr_series ? 10 : 0;
	for (k = 1; k <= pts; k++) {
		__u64 t = r->first_ts_ns + (r->last_ts_ns - r->first_ts_ns) * k / pts;

		for (i = 0; i < n; i++) {
			const struct whatif_policy_result *p = &r->pol[i];
			size_t j = 0;

			while (j + 1 < p->nr_series && p->series[j + 1].ts_ns <= t)
				j++;
			if (p->nr_series && p->series[j].populated_pages)
				snprintf(buf[i], sizeof(buf[i]), "%.1f%%",
					 100.0 * p->series[j].huge_pages /
						 p->series[j].populated_pages);
			else
				snprintf(buf[i], sizeof(buf[i]), "-");
			cells[i] = buf[i];
		}
		if (kvm) {
			const struct whatif_kvm_point *kp = kvm_at(r, t);

			pct_cell(buf[n], sizeof(buf[n]), kp ? kvm_huge(kp) : -1);
			cells[n] = buf[n];
		}
		snprintf(label, sizeof(label), "  coverage at %5.1f s", (t - r->first_ts_ns) / 1e9);
		row(f, n + kvm, label, cells);
	}
	if (kvm) {
		static const char *const names[3] = KVMSTATS_MIX_NAMES;
		static const char *const heads[4] = { "FIRST", "LAST", "MIN", "MAX" };
		__u64 st[4];
		int w;

		row(f, 4, "KVM's mapping (recorded, pages)", heads);
		for (w = 0; w < 3; w++) {
			kvm_mix_stats(r, w, st);
			for (k = 0; k < 4; k++) {
				snprintf(buf[k], sizeof(buf[k]), "%llu", (unsigned long long)st[k]);
				cells[k] = buf[k];
			}
			snprintf(label, sizeof(label), "  %s", names[w]);
			row(f, 4, label, cells);
		}
	}
	row_u64(f, r, "peak populated (MiB)", g_field, 9);
	row_u64(f, r, "direct-map 2M splits (est.)", g_field, 5);
	row_u64(f, r, "direct-map fragmented peak", g_field, 6);
	for (i = 0; i < n; i++) {
		__u64 d = sum_decisions(&r->pol[i].pol);

		snprintf(buf[i], sizeof(buf[i]), d ? "%.2f" : "-",
			 d ? sum_run_ns(&r->pol[i].pol) / 1e3 / d : 0.0);
		cells[i] = buf[i];
	}
	row(f, n, "cost per decision (us)", cells);
	row_u64(f, r, "answers clamped", g_field, 7);
	row_u64(f, r, "BPF_PROG_RUN errors", g_field, 8);
}

/* ---- a constructed conversion-heavy stream ------------------------------------------------- */

struct gen {
	struct gmem_event *ev;
	size_t n, cap;
	int err;
	__u8 *present; /* the kernel's view: which 4 KiB pages the file holds */
	__u64 t;
	__u32 vm, tid;
	__u64 ino;
};

static void put(struct gen *g, struct gmem_event e)
{
	if (g->err)
		return;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 4096;
		struct gmem_event *ne = realloc(g->ev, cap * sizeof(*ne));

		if (!ne) {
			g->err = -ENOMEM;
			return;
		}
		g->ev = ne;
		g->cap = cap;
	}
	e.vm = g->vm;
	e.flags |= GMEM_EVF_SCENARIO;
	g->ev[g->n++] = e;
}

#define GPA_BASE   (4ull << 30)
#define CHUNK      1024ull /* pages per vCPU: 4 MiB */
#define FAULT_NS   2000ull /* a guest or host fault */

static void gen_faults(struct gen *g, __u64 s, __u64 e, __u32 source, struct whatif_gen_counts *c)
{
	__u64 p;

	for (p = s; p < e; p++) {
		if (g->present[p])
			continue;
		g->present[p] = 1;
		g->t += FAULT_NS;
		put(g, (struct gmem_event){ .ts_ns = g->t, .kind = GMEM_EV_PAGE_ALLOC, .ino = g->ino,
					    .a = p, .b = 1, .sub = source, .tid = g->tid });
		c->faults++;
	}
}

static void gen_range(struct gen *g, __u32 kind, __u64 s, __u64 e, __u64 step,
		      struct whatif_gen_counts *c)
{
	bool punch = kind == GMEM_EV_PUNCH_HOLE;
	__u64 p, k = 0;

	for (p = s; p < e; p++) {
		if (g->present[p] == punch)
			k++;
		g->present[p] = !punch;
	}
	g->t += step;
	/* as the probes emit it: the folded range record, then the syscall's, 1 ns later */
	if (k)
		put(g, (struct gmem_event){ .ts_ns = g->t, .kind = punch ? GMEM_EV_PAGE_FREE :
									 GMEM_EV_PAGE_ALLOC,
					    .ino = g->ino, .a = s, .b = k, .c = e,
					    .sub = punch ? 0 : GMEM_SRC_FALLOCATE, .tid = g->tid,
					    .flags = GMEM_EVF_RANGE });
	g->t += 1;
	put(g, (struct gmem_event){ .ts_ns = g->t, .kind = kind, .ino = g->ino, .a = s * PAGE,
				    .b = (e - s) * PAGE, .tid = g->tid });
	if (punch)
		c->punches++;
	else
		c->fallocates++;
}

/* One vCPU's iteration: the five stages over its 4 MiB at page base. */
static void gen_vcpu(struct gen *g, __u64 base, __u64 step, struct whatif_gen_counts *c)
{
	static const __u64 off[5] = { 0, 0, 1, 1, 512 }, size[5] = { 1, 512, 1, 512, 1 };
	static const unsigned int exits[5] = { 10, 10, 11, 11, 10 }, attrs[5] = { 6, 6, 6, 7, 7 };
	unsigned int k, j, i;

	for (k = 0; k < 5; k++) {
		__u64 rs = base + off[k], re = rs + size[k];
		unsigned int shift = attrs[k] % 2;

		gen_range(g, GMEM_EV_FALLOCATE, rs, re, step, c);
		for (j = 0; j < exits[k]; j++) {
			/* conversions come in pairs over one sub-range, shared then private, so a
			 * stage leaves its range private; an odd count starts with a no-op */
			unsigned int q = (j + 2 - shift) / 2;
			bool whole = j < shift || q % 2;
			__u64 s = whole ? rs : rs + (q * 97 + k * 13) % size[k];
			__u64 e = whole ? re : s + 1;
			__u32 dir = (j + shift) % 2 ? GMEM_TO_PRIVATE : GMEM_TO_SHARED;
			__u64 gpa = GPA_BASE + s * PAGE, len = (e - s) * PAGE;

			g->t += step;
			put(g, (struct gmem_event){ .ts_ns = g->t, .kind = GMEM_EV_CONV_REQUEST,
						    .a = gpa, .b = len, .sub = dir, .tid = g->tid,
						    .c = GMEM_KVM_EXIT_HYPERCALL });
			c->exits++;
			if (j < attrs[k]) {
				g->t += step;
				put(g, (struct gmem_event){ .ts_ns = g->t,
							    .kind = GMEM_EV_CONV_ATTR, .a = gpa,
							    .b = len, .sub = dir, .tid = g->tid,
							    .c = 20000 });
				c->attrs++;
				if (dir == GMEM_TO_SHARED) {
					/* the private contents go; the host writes the shared */
					gen_range(g, GMEM_EV_PUNCH_HOLE, s, e, step, c);
					gen_faults(g, s, e, GMEM_SRC_USER_FAULT, c);
				} else {
					gen_faults(g, s, e, GMEM_SRC_GUEST_FAULT, c);
				}
			}
			g->t += step;
			put(g, (struct gmem_event){ .ts_ns = g->t, .kind = GMEM_EV_VCPU_RESUME,
						    .tid = g->tid });
		}
		/* the selftest's explicit punch holes, then the guest rewrites those pages */
		for (i = 0; i < 4; i++) {
			__u64 p = rs + (i * 61 + k * 7) % size[k];

			gen_range(g, GMEM_EV_PUNCH_HOLE, p, p + 1, step, c);
		}
		gen_faults(g, rs, re, GMEM_SRC_GUEST_FAULT, c);
	}
}

static int by_ts(const void *a, const void *b)
{
	const struct gmem_event *x = a, *y = b;

	if (x->ts_ns != y->ts_ns)
		return x->ts_ns < y->ts_ns ? -1 : 1;
	/* one vCPU's records never share a ts; other vCPUs' are ordered by tid */
	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

int whatif__gen_conversions(const struct whatif_gen_opts *go, struct gmem_event **out,
			    size_t *n, struct whatif_gen_counts *counts)
{
	struct whatif_gen_counts c = {};
	__u32 vcpus = go && go->vcpus ? go->vcpus : 4;
	__u32 iters = go && go->iterations ? go->iterations : 10;
	__u64 period = go && go->period_ns ? go->period_ns : 300 * NS_PER_MS;
	__u64 step = go && go->step_ns ? go->step_ns : 100000;
	__u64 tail = go ? go->tail_ns : 0, t_end = 0, t;
	struct gen g = { .vm = go && go->vm ? go->vm : 4242, .ino = go && go->ino ? go->ino : 777 };
	__u64 size = (__u64)vcpus * CHUNK * PAGE, start;
	__u32 v, it;

	*out = NULL;
	*n = 0;
	g.present = calloc(vcpus * CHUNK, 1);
	if (!g.present)
		return -ENOMEM;
	g.t = 1 * NS_PER_S;
	put(&g, (struct gmem_event){ .ts_ns = g.t, .kind = GMEM_EV_FILE_CREATE, .ino = g.ino,
				     .a = size, .b = 0, .result = 3 });
	put(&g, (struct gmem_event){ .ts_ns = g.t, .kind = GMEM_EV_BIND, .ino = g.ino,
				     .a = GPA_BASE, .b = size, .c = 0, .sub = 0 });
	start = g.t + NS_PER_MS;
	for (it = 0; it < iters; it++) {
		for (v = 0; v < vcpus; v++) {
			g.tid = g.vm + 1 + v;
			/* each vCPU's clock starts with the iteration; they run side by side */
			g.t = start + it * period + v * 7 * step;
			gen_vcpu(&g, (__u64)v * CHUNK, step, &c);
			if (g.t > t_end)
				t_end = g.t;
		}
	}
	for (t = NS_PER_S; !g.err && t <= tail; t += NS_PER_S)
		put(&g, (struct gmem_event){ .ts_ns = t_end + t, .kind = GMEM_EV_DMAP_SAMPLE,
					     .flags = GMEM_EVF_SYNTH });
	free(g.present);
	if (g.err) {
		free(g.ev);
		return g.err;
	}
	qsort(g.ev + 2, g.n - 2, sizeof(*g.ev), by_ts);
	*out = g.ev;
	*n = g.n;
	if (counts)
		*counts = c;
	return 0;
}
