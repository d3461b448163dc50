// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * scenario.c - the constructed scenarios (see scenario.h and tests/scenarios/README.md).
 *
 * A scenario is a small simulation of the workload: per-page state (populated, private, the
 * RMP level of a 2M region, a folio's order) and a clock per thread, stepping through the
 * source's sequence and emitting exactly the records the probes emit at each step, with the
 * fields they fill. Threads run side by side, so their records are merged by time at the end
 * (ties keep emission order). The tests recompute every count from the same definitions.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "probe.h"
#include "scenario.h"

#define PAGE          4096ull
#define SZ_2M         (2ull << 20)
#define T0            1000000000000ull /* 1000 s after boot: a plausible CLOCK_MONOTONIC */
#define RES_HYPERCALL GMEM_KVM_EXIT_HYPERCALL
#define RES_MEMFAULT  GMEM_KVM_EXIT_MEMORY_FAULT

/* Illustrative costs (ns), the same in every scenario and in the tests. */
#define GUEST_NS   2000 /* guest work before an exit */
#define FAULT_NS   1500 /* one guest fault that allocates a page */
#define UCALL_NS   3000 /* a ucall (KVM_EXIT_IO) round trip */
#define HANDLER_NS 2500 /* the VMM, from its last syscall to the next KVM_RUN */
#define FALLOC_NS(pages) (1000 + 200 * (pages))
#define PUNCH_NS(pages)  (1000 + 100 * (pages))
#define ATTR_NS(pages)   (1500 + 30 * (pages))

/* ---- a growable, time-sorted record list ------------------------------------------------- */

struct sev {
	struct gmem_event e;
	__u64 seq;
};

struct gen {
	struct sev *v;
	size_t n, cap;
	__u64 seq;
	int err;
};

static void push(struct gen *g, struct gmem_event e)
{
	struct sev *nv;

	if (g->err)
		return;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 4096;

		nv = realloc(g->v, cap * sizeof(*nv));
		if (!nv) {
			g->err = -ENOMEM;
			return;
		}
		g->v = nv;
		g->cap = cap;
	}
	e.flags |= GMEM_EVF_SCENARIO;
	g->v[g->n].e = e;
	g->v[g->n].seq = g->seq++;
	g->n++;
}

static int sev_cmp(const void *a, const void *b)
{
	const struct sev *x = a, *y = b;

	if (x->e.ts_ns != y->e.ts_ns)
		return x->e.ts_ns < y->e.ts_ns ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int gen_finish(struct gen *g, scenario_emit_fn emit, void *ctx)
{
	size_t i;
	int e = g->err;

	if (!e) {
		qsort(g->v, g->n, sizeof(*g->v), sev_cmp);
		for (i = 0; i < g->n && !e; i++)
			e = emit(ctx, &g->v[i].e);
	}
	free(g->v);
	return e;
}

/* One thread of the simulated VMM: its identity and its clock. */
struct thr {
	struct gen *g;
	__u32 vm, tid;
	__u64 ino;
	__u64 t;
};

static struct gmem_event ev(const struct thr *c, __u32 kind)
{
	return (struct gmem_event){ .ts_ns = c->t, .kind = kind, .vm = c->vm, .tid = c->tid,
				    .ino = c->ino };
}

static void conv_request(struct thr *c, __u64 gpa, __u64 size, __u32 dir, __u64 reason)
{
	struct gmem_event e = ev(c, GMEM_EV_CONV_REQUEST);

	e.ino = 0;
	e.a = gpa;
	e.b = size;
	e.sub = dir;
	e.c = reason;
	push(c->g, e);
}

/* KVM_SET_MEMORY_ATTRIBUTES from this thread; the clock moves by its latency. */
static void conv_attr(struct thr *c, __u64 gpa, __u64 size, __u32 dir, __u64 lat)
{
	struct gmem_event e;

	c->t += lat;
	e = ev(c, GMEM_EV_CONV_ATTR);
	e.ino = 0;
	e.a = gpa;
	e.b = size;
	e.sub = dir;
	e.c = lat;
	push(c->g, e);
}

static void vcpu_resume(struct thr *c)
{
	struct gmem_event e;

	c->t += HANDLER_NS;
	e = ev(c, GMEM_EV_VCPU_RESUME);
	e.ino = 0;
	push(c->g, e);
}

static void page_alloc(struct thr *c, __u64 index, __u32 order, __u32 src)
{
	struct gmem_event e = ev(c, GMEM_EV_PAGE_ALLOC);

	e.a = index;
	e.b = 1ull << order;
	e.order = order;
	e.sub = src;
	push(c->g, e);
}

static void page_free(struct thr *c, __u32 vm, __u64 index, __u32 order)
{
	struct gmem_event e = ev(c, GMEM_EV_PAGE_FREE);

	e.vm = vm;
	e.a = index;
	e.b = 1ull << order;
	e.order = order;
	push(c->g, e);
}

/* A fallocate() on the file: the folded PAGE_* record (when any page changed), then the call. */
static void falloc_call(struct thr *c, bool punch, __u64 off, __u64 len, __u64 changed,
			__u64 first, __u64 end)
{
	struct gmem_event e;

	c->t += punch ? PUNCH_NS(changed) : FALLOC_NS(changed);
	if (changed) {
		e = ev(c, punch ? GMEM_EV_PAGE_FREE : GMEM_EV_PAGE_ALLOC);
		e.a = first;
		e.b = changed;
		e.c = end;
		e.sub = punch ? 0 : GMEM_SRC_FALLOCATE;
		e.flags = GMEM_EVF_RANGE;
		push(c->g, e);
	}
	e = ev(c, punch ? GMEM_EV_PUNCH_HOLE : GMEM_EV_FALLOCATE);
	e.a = off;
	e.b = len;
	push(c->g, e);
}

static void file_create(struct thr *c, __u64 size, __u64 flags, int fd)
{
	struct gmem_event e = ev(c, GMEM_EV_FILE_CREATE);

	e.a = size;
	e.b = flags;
	e.result = fd;
	push(c->g, e);
}

static void bind(struct thr *c, __u64 gpa, __u64 size, __u64 off, __u32 slot)
{
	struct gmem_event e = ev(c, GMEM_EV_BIND);

	e.a = gpa;
	e.b = size;
	e.c = off;
	e.sub = slot;
	push(c->g, e);
}

static void simple(struct thr *c, __u32 kind, __u32 vm, __u64 ino, __u16 flags)
{
	struct gmem_event e = ev(c, kind);

	e.vm = vm;
	e.ino = ino;
	e.flags = flags;
	push(c->g, e);
}

static void rmp(struct thr *c, __u32 op, __u64 pfn, __u64 gpa, __u64 cval, __u32 order)
{
	struct gmem_event e = ev(c, GMEM_EV_RMP);

	e.ino = 0;
	e.a = pfn;
	e.b = gpa;
	e.c = cval;
	e.order = order;
	e.sub = op;
	push(c->g, e);
}

static void tdx(struct thr *c, __u32 op, __u64 gpa, __u64 pfn, __u64 cval)
{
	struct gmem_event e = ev(c, GMEM_EV_TDX);

	e.ino = 0;
	e.a = gpa;
	e.b = pfn;
	e.c = cval;
	e.sub = op;
	push(c->g, e);
}

static void split_merge(struct thr *c, __u32 kind, __u64 ino, __u64 a, __u32 from, __u32 to)
{
	struct gmem_event e = ev(c, kind);

	e.ino = ino;
	e.a = a;
	e.order = from;
	e.to_order = to;
	push(c->g, e);
}

/* ---- private_mem_conversions_test -------------------------------------------------------- */

#define PMC_PID        4242
#define PMC_INO        70001
#define PMC_BASE_GPA   (1ull << 32)
#define PMC_PAGES      513           /* PER_CPU_DATA_SIZE = SZ_2M + PAGE_SIZE */
#define PMC_STRIDE     (4ull << 20)  /* per_cpu_size: PER_CPU_DATA_SIZE aligned up to 2M */
#define PMC_SLOT       10
#define MAP_SET_ATTR   (1u << 0)     /* the selftest's MAP_GPA_* flags (arbitrary bits) */
#define MAP_SHARED     (1u << 1)
#define MAP_FALLOCATE  (1u << 2)

struct pmc_vcpu {
	struct thr t;
	unsigned int idx;
	bool populated[PMC_PAGES];
	bool priv[PMC_PAGES];
};

static const struct {
	__u64 offset, size;
} pmc_ranges[] = {
	{ 0, PAGE }, { 0, SZ_2M }, { PAGE, PAGE }, { PAGE, SZ_2M }, { SZ_2M, PAGE },
};

static __u64 pmc_index(const struct pmc_vcpu *v, unsigned int page)
{
	return v->idx * (PMC_STRIDE / PAGE) + page;
}

/* vm_guest_mem_fallocate(): punch (shared) or allocate (private) [off, off + size). */
static void pmc_fallocate(struct pmc_vcpu *v, __u64 off, __u64 size, bool punch)
{
	unsigned int p, p0 = off / PAGE, p1 = (off + size) / PAGE;
	__u64 changed = 0, first = 0, end = 0;

	for (p = p0; p < p1; p++) {
		if (v->populated[p] != punch)
			continue;
		v->populated[p] = !punch;
		if (!changed)
			first = pmc_index(v, p);
		end = pmc_index(v, p) + 1;
		changed++;
	}
	falloc_call(&v->t, punch, v->idx * PMC_STRIDE + off, size, changed, first, end);
}

/*
 * KVM_HC_MAP_GPA_RANGE exit and handle_exit_hypercall(). The request's direction is what the
 * probe decodes from args[2] & KVM_MAP_GPA_RANGE_ENCRYPTED; the selftest never sets that bit
 * (its flags are arbitrary), so every request reads "to shared". The attributes call carries
 * the real direction.
 */
static void pmc_hypercall(struct pmc_vcpu *v, __u64 off, __u64 size, unsigned int flags)
{
	__u64 gpa = PMC_BASE_GPA + v->idx * PMC_STRIDE + off;
	unsigned int p, pages = size / PAGE;
	bool shared = flags & MAP_SHARED;

	v->t.t += GUEST_NS;
	conv_request(&v->t, gpa, size, GMEM_TO_SHARED, RES_HYPERCALL);
	if (flags & MAP_FALLOCATE)
		pmc_fallocate(v, off, size, shared);
	if (flags & MAP_SET_ATTR) {
		conv_attr(&v->t, gpa, size, shared ? GMEM_TO_SHARED : GMEM_TO_PRIVATE,
			  ATTR_NS(pages));
		for (p = off / PAGE; p < (off + size) / PAGE; p++)
			v->priv[p] = !shared;
	}
	vcpu_resume(&v->t);
}

/* A guest access to [off, off + size): private pages not in the file fault one by one. */
static void pmc_touch(struct pmc_vcpu *v, __u64 off, __u64 size)
{
	unsigned int p;

	v->t.t += GUEST_NS;
	for (p = off / PAGE; p < (off + size) / PAGE; p++) {
		if (!v->priv[p] || v->populated[p])
			continue;
		v->t.t += FAULT_NS;
		page_alloc(&v->t, pmc_index(v, p), 0, GMEM_SRC_GUEST_FAULT);
		v->populated[p] = true;
	}
}

static void pmc_ucall(struct pmc_vcpu *v)
{
	v->t.t += UCALL_NS;
}

static void pmc_explicit(struct pmc_vcpu *v, bool do_fallocate)
{
	const __u64 full = PMC_PAGES * PAGE;
	unsigned int fa = do_fallocate ? MAP_FALLOCATE : 0;
	size_t i;
	__u64 j;

	pmc_touch(v, 0, full);
	pmc_ucall(v); /* guest_sync_shared */
	pmc_touch(v, 0, full);
	for (i = 0; i < sizeof(pmc_ranges) / sizeof(pmc_ranges[0]); i++) {
		__u64 off = pmc_ranges[i].offset, size = pmc_ranges[i].size;

		pmc_touch(v, off, size);
		pmc_hypercall(v, off, size, MAP_SET_ATTR | fa); /* guest_map_private */
		if (size > PAGE) {
			pmc_touch(v, off, PAGE);
			goto skip;
		}
		pmc_touch(v, off, size);
		pmc_ucall(v); /* guest_sync_private */
		pmc_touch(v, off, size);
		for (j = 0; j < size; j += PAGE) {
			if ((j / PAGE) & 1) {
				pmc_hypercall(v, off + j, PAGE, MAP_SET_ATTR | MAP_SHARED | fa);
				pmc_ucall(v);
				pmc_touch(v, off + j, PAGE);
			} else {
				pmc_ucall(v);
			}
		}
skip:
		pmc_hypercall(v, off, size, MAP_SET_ATTR | MAP_SHARED | fa); /* guest_map_shared */
		pmc_touch(v, off, size);
		pmc_ucall(v);
		pmc_touch(v, off, size);
		pmc_touch(v, off, size);
		/* guest_map_shared(base_gpa, PER_CPU_DATA_SIZE, true) */
		pmc_hypercall(v, 0, full, MAP_SET_ATTR | MAP_SHARED | MAP_FALLOCATE);
	}
}

static void pmc_punch_hole(struct pmc_vcpu *v, bool precise)
{
	const __u64 full = PMC_PAGES * PAGE;
	size_t i;

	pmc_hypercall(v, 0, full, MAP_SET_ATTR); /* guest_map_private(base, full, false) */
	for (i = 0; i < sizeof(pmc_ranges) / sizeof(pmc_ranges[0]); i++) {
		__u64 off = pmc_ranges[i].offset, size = pmc_ranges[i].size;

		pmc_hypercall(v, 0, full, MAP_SHARED | MAP_FALLOCATE); /* guest_punch_hole */
		if (precise) {
			pmc_touch(v, off, size);
			pmc_touch(v, off, size);
		} else {
			pmc_touch(v, 0, full);
			pmc_touch(v, 0, full);
		}
		pmc_hypercall(v, off, size, MAP_SHARED | MAP_FALLOCATE);
		pmc_touch(v, off, size);
	}
}

static int run_pmc(const struct scenario_params *p, scenario_emit_fn emit, void *ctx)
{
	const __u64 memfd_size = PMC_STRIDE * p->vcpus;
	struct thr main_thr;
	struct gen g = {};
	struct pmc_vcpu *v;
	__u64 end = 0, pg, left;
	unsigned int i, k;

	v = calloc(p->vcpus, sizeof(*v));
	if (!v)
		return -ENOMEM;
	main_thr = (struct thr){ .g = &g, .vm = PMC_PID, .tid = PMC_PID, .ino = PMC_INO,
				 .t = T0 - 100000 };
	/* vm_create_guest_memfd(vm, memfd_size, 0), then one memslot over all of it */
	file_create(&main_thr, memfd_size, 0, 5);
	main_thr.t += 20000;
	bind(&main_thr, PMC_BASE_GPA, memfd_size, 0, PMC_SLOT);
	for (i = 0; i < p->vcpus; i++) {
		v[i].idx = i;
		v[i].t = (struct thr){ .g = &g, .vm = PMC_PID, .tid = PMC_PID + 1 + i,
				       .ino = PMC_INO, .t = T0 + i * 1000 };
		/* guest_code() */
		pmc_explicit(&v[i], false);
		pmc_explicit(&v[i], true);
		pmc_punch_hole(&v[i], false);
		pmc_punch_hole(&v[i], true);
		if (v[i].t.t > end)
			end = v[i].t.t;
	}
	/* kvm_vm_free(); then punch all of the file, allocate all of it, close it */
	main_thr.t = end + 50000;
	{
		__u64 changed = 0, first = 0, last = 0;

		for (i = 0; i < p->vcpus; i++) {
			for (k = 0; k < PMC_PAGES; k++) {
				if (!v[i].populated[k])
					continue;
				v[i].populated[k] = false;
				if (!changed)
					first = pmc_index(&v[i], k);
				last = pmc_index(&v[i], k) + 1;
				changed++;
			}
		}
		falloc_call(&main_thr, true, 0, memfd_size, changed, first, last);
	}
	left = memfd_size / PAGE;
	falloc_call(&main_thr, false, 0, memfd_size, left, 0, left);
	main_thr.t += 5000;
	simple(&main_thr, GMEM_EV_FD_CLOSE, PMC_PID, PMC_INO, 0);
	/* the last reference goes: every folio leaves the page cache (free paths report vm 0) */
	for (pg = 0; pg < left; pg++) {
		main_thr.t += 100;
		page_free(&main_thr, 0, pg, 0);
	}
	main_thr.t += 10000;
	simple(&main_thr, GMEM_EV_VM_EXIT, PMC_PID, 0, 0);
	/* the tracepoint tier learns of the release from the scan after the close */
	main_thr.t += 30000000;
	simple(&main_thr, GMEM_EV_FILE_RELEASE, 0, PMC_INO, GMEM_EVF_SYNTH);
	free(v);
	return gen_finish(&g, emit, ctx);
}

/* ---- SEV-SNP guest on 2M guest_memfd folios ---------------------------------------------- */

#define SNP_PID     5100
#define SNP_INO     80001
#define SNP_FOLIOS  16 /* 32 MiB of guest memory, 2M folios */
#define SNP_ASID    1
#define SNP_PFN0    0x200000ull
#define SNP_RMP_ERR 0x100000001ull /* PFERR_GUEST_RMP_MASK | PFERR_PRESENT */

struct snp {
	struct gen g;
	struct thr vmm, vcpu[2];
	bool split[SNP_FOLIOS];      /* the folio was split to 4K folios */
	bool rmp_4k[SNP_FOLIOS];     /* the region's RMP entries are 4K (populated, psmashed) */
	bool rmp_2m[SNP_FOLIOS];     /* one 2M RMP entry covers the region */
	bool populated[SNP_FOLIOS][512];
	bool assigned[SNP_FOLIOS][512]; /* 4K RMP entry assigned (private) */
};

static __u64 snp_pfn(unsigned int f, unsigned int i)
{
	return SNP_PFN0 + f * 512ull + i;
}

/* sev_gmem_invalidate() on one freed folio [f, i .. i + n): a 2M entry over the whole folio
 * goes back in one 2M RMPUPDATE; otherwise psmash first if needed, then page by page. */
static void snp_invalidate(struct snp *s, struct thr *c, unsigned int f, unsigned int i,
			   unsigned int n)
{
	unsigned int k;

	rmp(c, GMEM_RMP_GMEM_INVALIDATE, snp_pfn(f, i), 0, n, 0);
	if (s->rmp_2m[f] && n == 512) {
		rmp(c, GMEM_RMP_MAKE_SHARED, snp_pfn(f, 0), 0, 0, 9);
		s->rmp_2m[f] = false;
		return;
	}
	for (k = i; k < i + n; k++) {
		if (s->rmp_2m[f]) {
			rmp(c, GMEM_RMP_PSMASH, snp_pfn(f, 0), 0, 0, 9);
			s->rmp_2m[f] = false;
			s->rmp_4k[f] = true;
			memset(s->assigned[f], 1, sizeof(s->assigned[f]));
		}
		if (!s->assigned[f][k])
			continue;
		rmp(c, GMEM_RMP_MAKE_SHARED, snp_pfn(f, k), 0, 0, 0);
		s->assigned[f][k] = false;
	}
}

/* PSC to shared of pages [i, i + n) of folio f, handled as QEMU does: attributes, then discard
 * (a punch hole: the 2M folio is split first, and each freed page is invalidated). */
static void snp_to_shared(struct snp *s, struct thr *c, unsigned int f, unsigned int i,
			  unsigned int n)
{
	__u64 gpa = (f * 512ull + i) * PAGE;
	unsigned int k;

	c->t += GUEST_NS;
	conv_request(c, gpa, n * PAGE, GMEM_TO_SHARED, RES_HYPERCALL);
	conv_attr(c, gpa, n * PAGE, GMEM_TO_SHARED, ATTR_NS(n));
	c->t += 500;
	if (!s->split[f]) {
		split_merge(c, GMEM_EV_SPLIT, SNP_INO, f * 512ull, 9, 0);
		s->split[f] = true;
	}
	for (k = i; k < i + n; k++) {
		c->t += 100;
		snp_invalidate(s, c, f, k, 1);
		s->populated[f][k] = false;
	}
	falloc_call(c, true, gpa, n * PAGE, n, f * 512ull + i, f * 512ull + i + n);
	vcpu_resume(c);
}

static int run_snp(const struct scenario_params *p, scenario_emit_fn emit, void *ctx)
{
	struct snp *s = calloc(1, sizeof(*s));
	unsigned int f, i, k;
	struct thr *c;
	int e;

	if (!s)
		return -ENOMEM;
	s->vmm = (struct thr){ .g = &s->g, .vm = SNP_PID, .tid = SNP_PID, .ino = SNP_INO,
			       .t = T0 - 1000000 };
	for (i = 0; i < 2; i++)
		s->vcpu[i] = (struct thr){ .g = &s->g, .vm = SNP_PID, .tid = SNP_PID + 1 + i,
					   .ino = SNP_INO };
	c = &s->vmm;
	file_create(c, SNP_FOLIOS * SZ_2M, 0, 12);
	c->t += 20000;
	bind(c, 0, SNP_FOLIOS * SZ_2M, 0, 0);

	/* KVM_SEV_SNP_LAUNCH_UPDATE of the 2M firmware image: kvm_gmem_populate() allocates the
	 * folio, sev_gmem_post_populate() makes each 4K page private */
	c->t += 100000;
	page_alloc(c, 0, 9, GMEM_SRC_POPULATE);
	memset(s->populated[0], 1, sizeof(s->populated[0]));
	for (i = 0; i < 512; i++) {
		c->t += 600;
		rmp(c, GMEM_RMP_MAKE_PRIVATE, snp_pfn(0, i), i * PAGE, SNP_ASID, 0);
		s->assigned[0][i] = true;
	}
	s->rmp_4k[0] = true;

	/* boot: the vCPUs fault the rest in, a 2M folio at a time; kvm_arch_gmem_prepare() ->
	 * sev_gmem_prepare() makes each private with one 2M RMP entry */
	s->vcpu[0].t = c->t + 1000000;
	s->vcpu[1].t = c->t + 1000500;
	for (f = 1; f < SNP_FOLIOS; f++) {
		struct thr *v = &s->vcpu[f & 1];

		v->t += GUEST_NS + 20000;
		page_alloc(v, f * 512ull, 9, GMEM_SRC_GUEST_FAULT);
		memset(s->populated[f], 1, sizeof(s->populated[f]));
		v->t += 300;
		rmp(v, GMEM_RMP_GMEM_PREPARE, snp_pfn(f, 0), f * SZ_2M, 0, 9);
		v->t += 900;
		rmp(v, GMEM_RMP_MAKE_PRIVATE, snp_pfn(f, 0), f * SZ_2M, SNP_ASID, 9);
		s->rmp_2m[f] = true;
	}

	/* each vCPU's GHCB page goes shared (folio 14), then the SWIOTLB buffer: folio 15 in
	 * four 512K page-state changes from vCPU 0 */
	for (i = 0; i < 2; i++)
		snp_to_shared(s, &s->vcpu[i], 14, i, 1);
	for (k = 0; k < 4; k++)
		snp_to_shared(s, &s->vcpu[0], 15, k * 128, 128);

	/* the first quarter of the buffer goes back to private; the guest touches it again */
	c = &s->vcpu[0];
	c->t += GUEST_NS;
	conv_request(c, 15 * SZ_2M, 128 * PAGE, GMEM_TO_PRIVATE, RES_HYPERCALL);
	conv_attr(c, 15 * SZ_2M, 128 * PAGE, GMEM_TO_PRIVATE, ATTR_NS(128));
	vcpu_resume(c);
	for (i = 0; i < 128; i++) {
		c->t += FAULT_NS;
		page_alloc(c, 15 * 512ull + i, 0, GMEM_SRC_GUEST_FAULT);
		s->populated[15][i] = true;
		c->t += 300;
		rmp(c, GMEM_RMP_GMEM_PREPARE, snp_pfn(15, i), (15 * 512ull + i) * PAGE, 0, 0);
		c->t += 600;
		rmp(c, GMEM_RMP_MAKE_PRIVATE, snp_pfn(15, i), (15 * 512ull + i) * PAGE, SNP_ASID,
		    0);
		s->assigned[15][i] = true;
	}

	/* 4K validations inside 2M-assigned regions 5..8: an RMP #NPF (size mismatch) that
	 * sev_handle_rmp_fault() resolves with psmash, then one more fault each at 4K */
	c = &s->vcpu[1];
	for (f = 5; f <= 8; f++) {
		__u64 gpa = (f * 512ull + 7) * PAGE;

		c->t += GUEST_NS;
		rmp(c, GMEM_RMP_PSMASH, snp_pfn(f, 0), 0, 0, 9);
		s->rmp_2m[f] = false;
		s->rmp_4k[f] = true;
		memset(s->assigned[f], 1, sizeof(s->assigned[f]));
		c->t += 400;
		rmp(c, GMEM_RMP_FAULT, snp_pfn(f, 7), gpa, SNP_RMP_ERR, 9);
		c->t += GUEST_NS;
		rmp(c, GMEM_RMP_FAULT, snp_pfn(f, 8), gpa + PAGE, SNP_RMP_ERR, 0);
	}

	/* teardown: the last reference goes, every folio is freed and invalidated */
	c = &s->vmm;
	c->t = s->vcpu[0].t > s->vcpu[1].t ? s->vcpu[0].t : s->vcpu[1].t;
	c->t += 1000000;
	simple(c, GMEM_EV_FD_CLOSE, SNP_PID, SNP_INO, 0);
	for (f = 0; f < SNP_FOLIOS; f++) {
		if (!s->split[f]) {
			c->t += 2000;
			page_free(c, SNP_PID, f * 512ull, 9);
			snp_invalidate(s, c, f, 0, 512);
			continue;
		}
		for (i = 0; i < 512; i++) {
			if (!s->populated[f][i])
				continue;
			c->t += 200;
			page_free(c, SNP_PID, f * 512ull + i, 0);
			snp_invalidate(s, c, f, i, 1);
		}
	}
	c->t += 10000;
	simple(c, GMEM_EV_FILE_RELEASE, SNP_PID, SNP_INO, 0);
	c->t += 10000;
	simple(c, GMEM_EV_VM_EXIT, SNP_PID, 0, 0);
	e = gen_finish(&s->g, emit, ctx);
	free(s);
	return e;
}

/* ---- TDX guest --------------------------------------------------------------------------- */

#define TDX_PID    6100
#define TDX_INO    90001
#define TDX_PAGES  8192 /* 32 MiB */
#define TDX_PFN0   0x400000ull
#define TDX_HKID   33
#define TDX_GLOBAL_KEYID 0

static int run_tdx(const struct scenario_params *p, scenario_emit_fn emit, void *ctx)
{
	bool *mapped = calloc(TDX_PAGES, sizeof(bool));
	struct thr vmm, vcpu[2], *c;
	struct gen g = {};
	unsigned int i, k;

	if (!mapped)
		return -ENOMEM;
	vmm = (struct thr){ .g = &g, .vm = TDX_PID, .tid = TDX_PID, .ino = TDX_INO,
			    .t = T0 - 1000000 };
	for (i = 0; i < 2; i++)
		vcpu[i] = (struct thr){ .g = &g, .vm = TDX_PID, .tid = TDX_PID + 1 + i,
					.ino = TDX_INO };
	c = &vmm;
	file_create(c, TDX_PAGES * PAGE, 0, 14);
	c->t += 20000;
	bind(c, 0, TDX_PAGES * PAGE, 0, 0);
	/* KVM_TDX_INIT_MEM_REGION of the 2M TDVF image: populate, then TDH.MEM.PAGE.ADD each */
	c->t += 100000;
	for (i = 0; i < 512; i++) {
		c->t += 800;
		page_alloc(c, i, 0, GMEM_SRC_POPULATE);
		c->t += 2000;
		tdx(c, GMEM_TDX_PAGE_ADD, i * PAGE, TDX_PFN0 + i, 0);
		mapped[i] = true;
	}
	/* the guest accepts 16 MiB (TDG.MEM.PAGE.ACCEPT): EPT violation, gmem fault, PAGE.AUG */
	vcpu[0].t = c->t + 1000000;
	vcpu[1].t = c->t + 1000700;
	for (i = 512; i < 512 + 4096; i++) {
		struct thr *v = &vcpu[i & 1];

		v->t += FAULT_NS;
		page_alloc(v, i, 0, GMEM_SRC_GUEST_FAULT);
		v->t += 1200;
		tdx(v, GMEM_TDX_PAGE_AUG, i * PAGE, TDX_PFN0 + i, 0);
		mapped[i] = true;
	}
	/*
	 * MapGPA to shared: 4 x 512K of SWIOTLB from vCPU 0 and one page from vCPU 1. Setting the
	 * attributes zaps each private mapping (tdx_sept_remove_private_spte: block, track,
	 * remove, wbinvd with the TD's HKID), then QEMU discards the private pages (punch hole).
	 */
	for (k = 0; k < 5; k++) {
		unsigned int first = k < 4 ? 4096 + k * 128 : 4000, n = k < 4 ? 128 : 1;
		__u64 gpa = first * PAGE, lat = ATTR_NS(n) + 10000ull * n, t0;

		c = &vcpu[k < 4 ? 0 : 1];
		c->t += GUEST_NS;
		conv_request(c, gpa, n * PAGE, GMEM_TO_SHARED, RES_HYPERCALL);
		t0 = c->t;
		for (i = first; i < first + n; i++) {
			c->t += 1500;
			tdx(c, GMEM_TDX_RANGE_BLOCK, i * PAGE, 0, 0);
			c->t += 2000;
			tdx(c, GMEM_TDX_TRACK, 0, 0, 0);
			c->t += 1500;
			tdx(c, GMEM_TDX_PAGE_REMOVE, i * PAGE, 0, 0);
			c->t += 5000;
			tdx(c, GMEM_TDX_WBINVD, 0, TDX_PFN0 + i, TDX_HKID);
			mapped[i] = false;
		}
		c->t = t0; /* the zaps happen inside the attributes call: one latency */
		conv_attr(c, gpa, n * PAGE, GMEM_TO_SHARED, lat);
		falloc_call(c, true, gpa, n * PAGE, n, first, first + n);
		vcpu_resume(c);
	}
	/* the first 256K of the buffer back to private; the guest accepts it again */
	c = &vcpu[0];
	c->t += GUEST_NS;
	conv_request(c, 4096 * PAGE, 64 * PAGE, GMEM_TO_PRIVATE, RES_HYPERCALL);
	conv_attr(c, 4096 * PAGE, 64 * PAGE, GMEM_TO_PRIVATE, ATTR_NS(64));
	vcpu_resume(c);
	for (i = 4096; i < 4096 + 64; i++) {
		c->t += FAULT_NS;
		page_alloc(c, i, 0, GMEM_SRC_GUEST_FAULT);
		c->t += 1200;
		tdx(c, GMEM_TDX_PAGE_AUG, i * PAGE, TDX_PFN0 + 8192 + i, 0);
		mapped[i] = true;
	}
	/* teardown: the HKID is released first, so each private page still mapped is reclaimed
	 * (tdx_reclaim_page) and flushed with the global KeyID; then the file goes */
	c = &vmm;
	c->t = (vcpu[0].t > vcpu[1].t ? vcpu[0].t : vcpu[1].t) + 1000000;
	for (i = 0; i < TDX_PAGES; i++) {
		if (!mapped[i])
			continue;
		c->t += 4000;
		tdx(c, GMEM_TDX_WBINVD, 0, TDX_PFN0 + i, TDX_GLOBAL_KEYID);
	}
	c->t += 10000;
	simple(c, GMEM_EV_FD_CLOSE, TDX_PID, TDX_INO, 0);
	for (i = 0; i < TDX_PAGES; i++) {
		if (!mapped[i])
			continue;
		c->t += 100;
		page_free(c, TDX_PID, i, 0);
	}
	c->t += 10000;
	simple(c, GMEM_EV_FILE_RELEASE, TDX_PID, TDX_INO, 0);
	c->t += 10000;
	simple(c, GMEM_EV_VM_EXIT, TDX_PID, 0, 0);
	free(mapped);
	return gen_finish(&g, emit, ctx);
}

/* ---- huge guest_memfd folios: splits and merges ------------------------------------------ */

#define HP_PID      7100
#define HP_INO_1G   95001
#define HP_INO_2M   95002
#define HP_2M_FOLIOS 32

static void hp_convert(struct thr *c, __u64 gpa, __u32 dir)
{
	c->t += GUEST_NS;
	conv_request(c, gpa, PAGE, dir, RES_MEMFAULT);
	conv_attr(c, gpa, PAGE, dir, ATTR_NS(1));
}

static int run_hugepages(const struct scenario_params *p, scenario_emit_fn emit, void *ctx)
{
	struct thr vmm, vcpu, *c = &vmm;
	bool split2m[HP_2M_FOLIOS] = {};
	const __u64 gpa_2m = 1ull << 30; /* file B is bound after file A's 1 GiB */
	struct gen g = {};
	unsigned int f, i, cycle;

	vmm = (struct thr){ .g = &g, .vm = HP_PID, .tid = HP_PID, .ino = HP_INO_1G,
			    .t = T0 - 1000000 };
	vcpu = (struct thr){ .g = &g, .vm = HP_PID, .tid = HP_PID + 1, .ino = HP_INO_1G };
	/* file A: 1 GiB on one 1G hugetlb folio; file B: 64 MiB on 2M folios */
	file_create(c, 1ull << 30, 0, 20);
	c->t += 10000;
	bind(c, 0, 1ull << 30, 0, 0);
	c->ino = HP_INO_2M;
	c->t += 10000;
	file_create(c, HP_2M_FOLIOS * SZ_2M, 0, 21);
	c->t += 10000;
	bind(c, gpa_2m, HP_2M_FOLIOS * SZ_2M, 0, 1);

	/* the guest faults everything in: one 1G folio, 32 2M folios */
	vcpu.t = c->t + 1000000;
	vcpu.t += 200000;
	page_alloc(&vcpu, 0, 18, GMEM_SRC_GUEST_FAULT);
	vcpu.ino = HP_INO_2M;
	for (f = 0; f < HP_2M_FOLIOS; f++) {
		vcpu.t += 20000;
		page_alloc(&vcpu, f * 512ull, 9, GMEM_SRC_GUEST_FAULT);
	}

	/* file A, three times: page 3 goes shared (the 1G folio is split to 4K, the page is
	 * punched), then private again (refaulted; the range is uniform, the folio is merged) */
	for (cycle = 0; cycle < 3; cycle++) {
		vcpu.ino = HP_INO_1G;
		hp_convert(&vcpu, 3 * PAGE, GMEM_TO_SHARED);
		split_merge(&vcpu, GMEM_EV_SPLIT, HP_INO_1G, 0, 18, 0);
		falloc_call(&vcpu, true, 3 * PAGE, PAGE, 1, 3, 4);
		vcpu_resume(&vcpu);
		hp_convert(&vcpu, 3 * PAGE, GMEM_TO_PRIVATE);
		vcpu_resume(&vcpu);
		vcpu.t += FAULT_NS;
		page_alloc(&vcpu, 3, 0, GMEM_SRC_GUEST_FAULT);
		vcpu.t += 50000;
		split_merge(&vcpu, GMEM_EV_MERGE, HP_INO_1G, 0, 0, 18);
	}
	/* file B: folios 0..19 have their page 1 converted to shared (split 9 -> 0); folios
	 * 0..11 later come back whole (merge 0 -> 9) */
	vcpu.ino = HP_INO_2M;
	for (f = 0; f < 20; f++) {
		__u64 idx = f * 512ull + 1;

		hp_convert(&vcpu, gpa_2m + idx * PAGE, GMEM_TO_SHARED);
		split_merge(&vcpu, GMEM_EV_SPLIT, HP_INO_2M, f * 512ull, 9, 0);
		split2m[f] = true;
		falloc_call(&vcpu, true, idx * PAGE, PAGE, 1, idx, idx + 1);
		vcpu_resume(&vcpu);
	}
	for (f = 0; f < 12; f++) {
		__u64 idx = f * 512ull + 1;

		hp_convert(&vcpu, gpa_2m + idx * PAGE, GMEM_TO_PRIVATE);
		vcpu_resume(&vcpu);
		vcpu.t += FAULT_NS;
		page_alloc(&vcpu, idx, 0, GMEM_SRC_GUEST_FAULT);
		vcpu.t += 20000;
		split_merge(&vcpu, GMEM_EV_MERGE, HP_INO_2M, f * 512ull, 0, 9);
		split2m[f] = false;
	}
	/* dirty logging: KVM's TDP MMU eagerly splits huge mappings (kvm_mmu_split_huge_page):
	 * 4 of 1G to 2M, 64 of 2M to 4K; no file, the gfn in a */
	c = &vmm;
	c->ino = 0;
	c->t = vcpu.t + 500000;
	for (i = 0; i < 4; i++) {
		c->t += 3000;
		split_merge(c, GMEM_EV_SPLIT, 0, (i + 1ull) << 18, 18, 9);
	}
	for (i = 0; i < 64; i++) {
		c->t += 700;
		split_merge(c, GMEM_EV_SPLIT, 0, (1ull << 18) + i * 512ull, 9, 0);
	}
	/* teardown: whole folios go as one record each, split ones page by page */
	c->t += 1000000;
	c->ino = HP_INO_1G;
	simple(c, GMEM_EV_FD_CLOSE, HP_PID, HP_INO_1G, 0);
	c->t += 5000;
	page_free(c, HP_PID, 0, 18);
	c->t += 5000;
	simple(c, GMEM_EV_FILE_RELEASE, HP_PID, HP_INO_1G, 0);
	c->ino = HP_INO_2M;
	c->t += 5000;
	simple(c, GMEM_EV_FD_CLOSE, HP_PID, HP_INO_2M, 0);
	for (f = 0; f < HP_2M_FOLIOS; f++) {
		if (!split2m[f]) {
			c->t += 2000;
			page_free(c, HP_PID, f * 512ull, 9);
			continue;
		}
		for (i = 0; i < 512; i++) {
			if (i == 1)
				continue; /* punched */
			c->t += 100;
			page_free(c, HP_PID, f * 512ull + i, 0);
		}
	}
	c->t += 5000;
	simple(c, GMEM_EV_FILE_RELEASE, HP_PID, HP_INO_2M, 0);
	c->t += 5000;
	simple(c, GMEM_EV_VM_EXIT, HP_PID, 0, 0);
	return gen_finish(&g, emit, ctx);
}

/* ---- synthetic churn (the benchmark's producer) ------------------------------------------ */

#define CHURN_PID 8100
#define CHURN_INO 99001

/*
 * The record stream of gmem-load --churn --user-touch 32 --fallocate 32 --no-vcpu, generated
 * on the fly (no sorting, no memory): per iteration 32 host user faults on consecutive pages,
 * a punch of them, an allocating fallocate of 32 pages and its punch. Gaps between records are
 * ~1 us with pseudo-random jitter, as on this machine. Not a kernel scenario: the upper bound
 * of what the recorder can take, and a compression benchmark.
 */
static int run_churn(const struct scenario_params *p, scenario_emit_fn emit, void *ctx)
{
	struct gmem_event e;
	__u64 n = 0, t = T0, x = 0x9E3779B97F4A7C15ull, base = 0;
	unsigned int i;
	int err = 0;

#define CHURN_EMIT(...)                                                                       \
	do {                                                                                  \
		x ^= x << 13;                                                                 \
		x ^= x >> 7;                                                                  \
		x ^= x << 17;                                                                 \
		t += 700 + (x & 511);                                                         \
		e = (struct gmem_event){ .ts_ns = t, .vm = CHURN_PID, .tid = CHURN_PID,       \
					 .ino = CHURN_INO, __VA_ARGS__ };                     \
		e.flags |= GMEM_EVF_SCENARIO;                                                 \
		err = emit(ctx, &e);                                                          \
		if (err || ++n >= p->events)                                                  \
			return err;                                                           \
	} while (0)

	for (;;) {
		for (i = 0; i < 32; i++)
			CHURN_EMIT(.kind = GMEM_EV_PAGE_ALLOC, .a = base + i, .b = 1,
				   .sub = GMEM_SRC_USER_FAULT);
		CHURN_EMIT(.kind = GMEM_EV_PAGE_FREE, .a = base, .b = 32, .c = base + 32,
			   .flags = GMEM_EVF_RANGE);
		CHURN_EMIT(.kind = GMEM_EV_PUNCH_HOLE, .a = base * PAGE, .b = 32 * PAGE);
		CHURN_EMIT(.kind = GMEM_EV_PAGE_ALLOC, .a = base + 32, .b = 32, .c = base + 64,
			   .sub = GMEM_SRC_FALLOCATE, .flags = GMEM_EVF_RANGE);
		CHURN_EMIT(.kind = GMEM_EV_FALLOCATE, .a = (base + 32) * PAGE, .b = 32 * PAGE);
		CHURN_EMIT(.kind = GMEM_EV_PAGE_FREE, .a = base + 32, .b = 32, .c = base + 64,
			   .flags = GMEM_EVF_RANGE);
		CHURN_EMIT(.kind = GMEM_EV_PUNCH_HOLE, .a = (base + 32) * PAGE, .b = 32 * PAGE);
		base = (base + 64) % 512;
	}
#undef CHURN_EMIT
}

/* ---- the table --------------------------------------------------------------------------- */

const struct scenario scenario_list[] = {
	{
		.name = "private-mem-conversions",
		.summary = "KVM selftest private_mem_conversions_test: explicit conversions and "
			   "punch holes, per vCPU",
		.source = "tools/testing/selftests/kvm/x86/private_mem_conversions_test.c "
			  "(guest_code, handle_exit_hypercall, test_mem_conversions)",
		.description =
			"Constructed by stepping through the selftest's guest_code() for each vCPU "
			"(-n vcpus, one memslot): guest_test_explicit_conversion() without and "
			"with fallocate, guest_test_punch_hole() imprecise and precise. Per vCPU: "
			"52 KVM_HC_MAP_GPA_RANGE exits (CONV_REQUEST, c=3), 32 of them set "
			"attributes (CONV_ATTR: 12 to private, 20 to shared), 35 punch holes and 5 "
			"allocating fallocates from handle_exit_hypercall(); a guest access to a "
			"private page absent from the file faults it in (PAGE_ALLOC guest_fault); "
			"fallocate folds its pages into one RANGE record as the tracepoint tier "
			"does. The selftest's MAP_GPA flags are arbitrary bits without "
			"KVM_MAP_GPA_RANGE_ENCRYPTED, so every request decodes as 'to shared' "
			"(end-to-end latency lands under shared); the attributes calls carry the "
			"real direction. After the VM is freed the main thread punches and then "
			"allocates the whole file and closes it; release comes from the liveness "
			"scan (SYNTH). Timings are illustrative: guest work 2 us per exit, 1.5 us "
			"per faulting page, ucall 3 us, attributes 1.5 us + 30 ns/page, fallocate "
			"1 us + 200 ns/page, punch 1 us + 100 ns/page, VMM 2.5 us to re-enter.",
		.run = run_pmc,
	},
	{
		.name = "snp-boot",
		.summary = "SEV-SNP guest on 2M guest_memfd folios: launch, boot, page-state "
			   "changes, RMP faults, teardown",
		.source = "arch/x86/kvm/svm/sev.c (sev_gmem_post_populate, sev_gmem_prepare, "
			  "sev_gmem_invalidate, sev_handle_rmp_fault), QEMU kvm_convert_memory()",
		.description =
			"Constructed from the SNP paths of arch/x86/kvm/svm/sev.c, with 2M "
			"guest_memfd folios (the hugepage guest_memfd series: the configuration in "
			"which psmash happens; mainline folios are order 0). 32 MiB in 16 folios. "
			"LAUNCH_UPDATE populates folio 0 (PAGE_ALLOC populate) and makes its 512 "
			"pages private at 4K (rmp_make_private). Boot faults folios 1-15 in; "
			"kvm_arch_gmem_prepare -> sev_gmem_prepare makes each private with one 2M "
			"entry. Page-state changes to shared (KVM_HC_MAP_GPA_RANGE with the real "
			"DECRYPTED flag): each vCPU's GHCB page (folio 14) and the SWIOTLB buffer "
			"(folio 15, four 512K requests); QEMU sets attributes then discards "
			"(punch): the folio is split 9->0, each freed page is invalidated "
			"(kvm_arch_gmem_invalidate), psmash'd once per 2M entry and made shared at "
			"4K. 128 pages come back private and are refaulted (prepare + make_private "
			"at 4K). Four 4K validations in 2M regions 5-8 each psmash and raise an "
			"RMP fault at 2M, then one more fault each at 4K (kvm_rmp_fault). Teardown "
			"frees every folio: a 2M entry over a whole folio goes back in one 2M "
			"rmp_make_shared, 4K entries page by page. Release and VM exit follow. "
			"Timings illustrative.",
		.run = run_snp,
	},
	{
		.name = "tdx-guest",
		.summary = "TDX guest: TDVF page.add at build, page.aug on accept, "
			   "block/track/remove/wbinvd on conversion, wbinvd at teardown",
		.source = "arch/x86/kvm/vmx/tdx.c (tdx_gmem_post_populate, "
			  "tdx_sept_set_private_spte, tdx_sept_remove_private_spte, "
			  "tdx_reclaim_page), KVM 6.16+",
		.description =
			"Constructed from KVM TDX (6.16+), order-0 guest_memfd folios, 32 MiB. "
			"KVM_TDX_INIT_MEM_REGION populates the 2M TDVF image: PAGE_ALLOC populate "
			"and TDH.MEM.PAGE.ADD per page. The guest accepts 16 MiB: per page an EPT "
			"violation faults it in (PAGE_ALLOC guest_fault) and TDH.MEM.PAGE.AUG maps "
			"it. MapGPA to shared (4 x 512K SWIOTLB from vCPU 0, one page from vCPU "
			"1): KVM_SET_MEMORY_ATTRIBUTES zaps each private mapping with "
			"tdh_mem_range_block, tdh_mem_track, tdh_mem_page_remove and "
			"tdh_phymem_page_wbinvd_hkid (the TD's HKID, 33 here), then QEMU punches "
			"the pages out. 64 pages go back private and are accepted again "
			"(PAGE.AUG). At teardown the HKID is released first, so every private page "
			"still mapped is reclaimed and flushed with the global KeyID (wbinvd, "
			"c=0), then the file is released. b carries the pfn as kernels after 6.18 "
			"pass it. Timings illustrative.",
		.run = run_tdx,
	},
	{
		.name = "hugepage-splits",
		.summary = "huge guest_memfd folios split and merged by conversions; TDP MMU "
			   "eager splits",
		.source = "the hugetlb guest_memfd series (kvm_gmem_split_folio_in_filemap, "
			  "kvm_gmem_merge_folio_in_filemap), arch/x86/kvm/mmu/tdp_mmu.c "
			  "(kvm_mmu_split_huge_page tracepoint)",
		.description =
			"Constructed: a 1 GiB file on one 1G hugetlb folio and a 64 MiB file on 32 "
			"2M folios (out-of-tree hugetlb/THP guest_memfd: mainline folios are order "
			"0). Three times a page of the 1G folio is converted to shared "
			"(memory-fault exit c=39; SPLIT 18->0, the page punched) and back to "
			"private (refaulted; MERGE 0->18). In the 2M file, 20 folios have a page "
			"converted to shared (SPLIT 9->0) and 12 of them come back whole (MERGE "
			"0->9). Dirty logging makes KVM's TDP MMU split 4 1G mappings to 2M and 64 "
			"2M mappings to 4K (kvm_mmu_split_huge_page: ino 0, a=gfn). Teardown frees "
			"whole folios as one record and split ones page by page. Timings "
			"illustrative.",
		.run = run_hugepages,
	},
	{
		.name = "synthetic-churn",
		.summary = "gmem-load --churn's record stream at any length (benchmark producer)",
		.source = "tools/gmem-load/churn.c --churn --user-touch 32 --fallocate 32 --no-vcpu",
		.description =
			"Not a kernel scenario: gmem-load churn's records (32 user faults, punch, "
			"32-page fallocate, punch; fallocate pages folded into RANGE records) "
			"generated on the fly, ~1 us apart with pseudo-random jitter, for "
			"benchmarking the recorder and the replay at rates gmem-load cannot reach.",
		.run = run_churn,
	},
};

const size_t scenario_count = sizeof(scenario_list) / sizeof(scenario_list[0]);

const struct scenario *scenario__find(const char *name)
{
	size_t i;

	for (i = 0; i < scenario_count; i++)
		if (!strcmp(scenario_list[i].name, name))
			return &scenario_list[i];
	return NULL;
}

void scenario__defaults(const struct scenario *s, struct scenario_params *p)
{
	if (!p->vcpus)
		p->vcpus = 2;
	if (!p->events)
		p->events = 1000000;
}

int scenario__run(const struct scenario *s, const struct scenario_params *p,
		  scenario_emit_fn emit, void *ctx)
{
	struct scenario_params q = *p;

	scenario__defaults(s, &q);
	if (q.vcpus > 64)
		return -EINVAL;
	return s->run(&q, emit, ctx);
}

/* Every hook present and fentry permitted: the kernel these scenarios stand for. */
static bool yes(void *ctx, const char *name)
{
	return true;
}

json_t *scenario__meta(const struct scenario *s, const struct scenario_params *p)
{
	const struct probe_facts facts = { .has_func = yes, .has_tp_btf = yes,
					   .has_tracefs = yes, .has_iter = yes,
					   .fentry_permitted = true };
	struct scenario_params q = *p;
	struct probe_table t = {};
	json_t *params, *probe;

	scenario__defaults(s, &q);
	probe__decide(&facts, &t);
	snprintf(t.kernel, sizeof(t.kernel), "constructed: a kernel with every hook");
	probe = ctl__probe_json(&t);
	params = json_object();
	if (!strcmp(s->name, "private-mem-conversions"))
		json_object_set_new(params, "vcpus", json_integer(q.vcpus));
	if (!strcmp(s->name, "synthetic-churn"))
		json_object_set_new(params, "events", json_integer(q.events));
	return json_pack("{s:{s:s, s:s, s:s, s:s, s:o, s:b}, s:o}", "scenario", "name", s->name,
			 "summary", s->summary, "source", s->source, "description",
			 s->description, "params", params, "constructed", 1, "probe", probe);
}
