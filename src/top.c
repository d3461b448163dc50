// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * top.c - gmemtop's screen model: frames from snapshots, rates, sort, filter, keys, text.
 *
 * A frame is copied out of the snapshot rather than kept as JSON: the previous frame's
 * counters are what the next frame's rates are taken against, and a reset's baselines must
 * outlive both. VMs are kept sorted by pid so that the previous frame is found by bsearch.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "model.h"
#include "top.h"

static const double intervals[] = { 0.2, 0.5, 1, 2, 3, 5, 10, 30, 60 };

struct col_info {
	const char *rate_name;
	const char *total_name;
	int width;
	bool left;
	bool desc; /* sorted descending by default */
};

static const struct col_info cols[TOP_COL_MAX] = {
	[TOP_COL_PID] = { "PID", "PID", 7, false, false },
	[TOP_COL_NAME] = { "NAME", "NAME", 15, true, false },
	[TOP_COL_FILES] = { "FILES", "FILES", 5, false, true },
	[TOP_COL_SIZE] = { "GMEM", "GMEM", 7, false, true },
	[TOP_COL_POPULATED] = { "POPUL", "POPUL", 7, false, true },
	[TOP_COL_ALLOC_USER] = { "UFLT/s", "UFLT", 7, false, true },
	[TOP_COL_ALLOC_GUEST] = { "GFLT/s", "GFLT", 7, false, true },
	[TOP_COL_ALLOC_FALLOC] = { "FALC/s", "FALC", 7, false, true },
	[TOP_COL_ALLOC_POPULATE] = { "POPL/s", "POPL", 7, false, true },
	[TOP_COL_ALLOC_OTHER] = { "OTHR/s", "OTHR", 7, false, true },
	[TOP_COL_PUNCH] = { "PUNCH/s", "PUNCH", 7, false, true },
	[TOP_COL_FREED] = { "FREE/s", "FREE", 7, false, true },
	[TOP_COL_CONV] = { "CONV/s", "CONV", 7, false, true },
	[TOP_COL_CONV_P50] = { "CONVp50", "CONVp50", 7, false, true },
	[TOP_COL_CONV_P99] = { "CONVp99", "CONVp99", 7, false, true },
	[TOP_COL_DMAP] = { "DMAP/s", "DMAP", 7, false, true },
	[TOP_COL_RMP] = { "RMP/s", "RMP", 7, false, true },
	[TOP_COL_TDX] = { "TDX/s", "TDX", 7, false, true },
	[TOP_COL_SPLIT] = { "SPLIT/s", "SPLIT", 7, false, true },
	[TOP_COL_KVM_EXITS] = { "EXIT/s", "EXITS", 7, false, true },
	[TOP_COL_HUGE] = { "HUGE%", "HUGE%", 6, false, true },
};

/* The counter a column shows, or -1 for the columns that are not counters. */
static int col_ctr(enum top_col c)
{
	switch (c) {
	case TOP_COL_ALLOC_USER: return TOP_C_ALLOC_USER;
	case TOP_COL_ALLOC_GUEST: return TOP_C_ALLOC_GUEST;
	case TOP_COL_ALLOC_FALLOC: return TOP_C_ALLOC_FALLOC;
	case TOP_COL_ALLOC_POPULATE: return TOP_C_ALLOC_POPULATE;
	case TOP_COL_ALLOC_OTHER: return TOP_C_ALLOC_OTHER;
	case TOP_COL_PUNCH: return TOP_C_PUNCH;
	case TOP_COL_FREED: return TOP_C_FREED;
	case TOP_COL_CONV: return TOP_C_CONV;
	case TOP_COL_DMAP: return TOP_C_DMAP_REMOVE;
	case TOP_COL_RMP: return TOP_C_RMP;
	case TOP_COL_TDX: return TOP_C_TDX;
	case TOP_COL_SPLIT: return TOP_C_SPLIT;
	case TOP_COL_KVM_EXITS: return TOP_C_KVM_EXITS;
	default: return -1;
	}
}

static const struct {
	const char *key;   /* batch output */
	const char *label; /* drill-down */
} ctrs[TOP_C_MAX] = {
	[TOP_C_ALLOC_USER] = { "alloc_user_fault", "pages allocated: user fault" },
	[TOP_C_ALLOC_GUEST] = { "alloc_guest_fault", "pages allocated: guest fault" },
	[TOP_C_ALLOC_FALLOC] = { "alloc_fallocate", "pages allocated: fallocate" },
	[TOP_C_ALLOC_POPULATE] = { "alloc_populate", "pages allocated: populate" },
	[TOP_C_ALLOC_OTHER] = { "alloc_other", "pages allocated: other" },
	[TOP_C_PUNCH] = { "punch_holes", "hole punches" },
	[TOP_C_FREED] = { "pages_freed", "pages freed" },
	[TOP_C_CONV] = { "conversions", "conversions (all)" },
	[TOP_C_DMAP_REMOVE] = { "direct_map_removals", "direct-map removals (pages)" },
	[TOP_C_RMP] = { "rmp_transitions", "RMP transitions" },
	[TOP_C_TDX] = { "tdx_transitions", "TDX transitions" },
	[TOP_C_SPLIT] = { "hugepage_splits", "huge folio splits" },
	[TOP_C_FILES_CREATED] = { "files_created", "files created" },
	[TOP_C_FILES_RELEASED] = { "files_released", "files released" },
	[TOP_C_BINDS] = { "memslot_binds", "memslot binds" },
	[TOP_C_INVALIDATED] = { "invalidated_bytes", "bytes invalidated" },
	[TOP_C_CONV_PRIVATE_OK] = { "conversions_private_ok", "to private: ok" },
	[TOP_C_CONV_PRIVATE_ERR] = { "conversions_private_error", "to private: error" },
	[TOP_C_CONV_SHARED_OK] = { "conversions_shared_ok", "to shared: ok" },
	[TOP_C_CONV_SHARED_ERR] = { "conversions_shared_error", "to shared: error" },
	[TOP_C_DMAP_RESTORE] = { "direct_map_restores", "direct-map restores (pages)" },
	[TOP_C_MERGE] = { "hugepage_merges", "huge folio merges" },
	[TOP_C_FAULTS] = { "faults", "faults (fentry tier)" },
	[TOP_C_KVM_EXITS] = { "kvm_exits", "KVM exits (all vCPUs)" },
	[TOP_C_KVM_HALT_EXITS] = { "kvm_halt_exits", "KVM halt exits" },
	[TOP_C_KVM_PF_TAKEN] = { "kvm_pf_taken", "KVM page faults taken" },
};

/* The drill-down's counter list, in reading order. */
static const enum top_ctr drill_ctrs[] = {
	TOP_C_ALLOC_USER, TOP_C_ALLOC_GUEST, TOP_C_ALLOC_FALLOC, TOP_C_ALLOC_POPULATE,
	TOP_C_ALLOC_OTHER, TOP_C_FREED, TOP_C_PUNCH, TOP_C_INVALIDATED, TOP_C_FILES_CREATED,
	TOP_C_FILES_RELEASED, TOP_C_BINDS, TOP_C_CONV_PRIVATE_OK, TOP_C_CONV_PRIVATE_ERR,
	TOP_C_CONV_SHARED_OK, TOP_C_CONV_SHARED_ERR, TOP_C_DMAP_REMOVE, TOP_C_DMAP_RESTORE,
	TOP_C_RMP, TOP_C_TDX, TOP_C_SPLIT, TOP_C_MERGE, TOP_C_FAULTS,
	TOP_C_KVM_EXITS, TOP_C_KVM_HALT_EXITS, TOP_C_KVM_PF_TAKEN,
};

struct top {
	struct top_opts opts;
	double interval;
	size_t frames;

	struct top_vm *vms; /* sorted by pid */
	size_t nr_vms;
	size_t *rows; /* indices into vms: filtered, sorted */
	size_t nr_rows;
	struct top_host host;

	enum top_view view;
	enum top_view help_from;
	enum top_col sort_col;
	bool sort_desc;
	bool totals;
	bool paused;
	char filter[TOP_FILTER_LEN];

	int scr_rows, scr_cols;
	long sel;
	__u32 sel_pid;
	size_t first_row;
	int hscroll; /* first scrolling column shown, >= TOP_COL_FROZEN */

	__u32 drill_pid;
	size_t page_scroll;
	bool follow; /* the drill-down sticks to its bottom */
	size_t help_scroll;
	struct top_line *page;
	size_t nr_page, cap_page;

	enum top_prompt prompt;
	char pbuf[TOP_FILTER_LEN];
	size_t plen;

	char error[256];

	struct gmem_event events[TOP_EVENTS_MAX]; /* ring, newest at (head - 1) */
	size_t ev_head, ev_count;
};

/* ---- formatting ------------------------------------------------------------------------- */

void top__fmt_bytes(char *buf, size_t len, __u64 bytes)
{
	static const char units[] = "BKMGTPE";
	double v = (double)bytes;
	int u;

	if (!bytes) {
		snprintf(buf, len, "0");
		return;
	}
	/* the largest unit that divides it exactly, if five digits hold the quotient */
	for (u = 6; u >= 0; u--) {
		__u64 div = 1ull << (10 * u);

		if (bytes % div == 0 && bytes / div <= 99999) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(bytes / div), units[u]);
			return;
		}
	}
	for (u = 0; v >= 1024 && u < 6; u++)
		v /= 1024;
	snprintf(buf, len, v < 100 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

void top__fmt_count(char *buf, size_t len, __u64 v, int width)
{
	static const char units[] = "kMGTPE";
	double d = (double)v;
	int n, u = -1;

	n = snprintf(buf, len, "%llu", (unsigned long long)v);
	if (n <= width)
		return;
	while (d >= 1000 && u < 5) {
		d /= 1000;
		u++;
	}
	snprintf(buf, len, d < 100 ? "%.1f%c" : "%.0f%c", d, units[u]);
}

void top__fmt_rate(char *buf, size_t len, double r)
{
	static const char units[] = "kMGTPE";
	int u = -1;

	if (r < 0 || isnan(r)) {
		snprintf(buf, len, "-");
		return;
	}
	if (r < 10) {
		if (r == floor(r))
			snprintf(buf, len, "%.0f", r);
		else
			snprintf(buf, len, "%.1f", r);
		return;
	}
	if (r < 10000) {
		snprintf(buf, len, "%.0f", r);
		return;
	}
	while (r >= 1000 && u < 5) {
		r /= 1000;
		u++;
	}
	snprintf(buf, len, r < 100 ? "%.1f%c" : "%.0f%c", r, units[u]);
}

void top__fmt_ns(char *buf, size_t len, __u64 ns)
{
	if (ns < 1000)
		snprintf(buf, len, "%lluns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.1fus", ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.1fms", ns / 1e6);
	else
		snprintf(buf, len, "%.2fs", ns / 1e9);
}

const char *top__col_name(enum top_col col, bool totals)
{
	if (col >= TOP_COL_MAX)
		return "?";
	return totals ? cols[col].total_name : cols[col].rate_name;
}

/* A column's -f name: its totals header in lower case, without HUGE%'s "%". */
static void field_name(enum top_col c, char *buf, size_t len)
{
	size_t i;

	snprintf(buf, len, "%s", cols[c].total_name);
	for (i = 0; buf[i]; i++)
		buf[i] = buf[i] == '%' ? 0 : tolower((unsigned char)buf[i]);
}

static void fields_error(const char *what, const char *field, char *err, size_t errlen)
{
	char name[16];
	size_t n;
	int c;

	n = snprintf(err, errlen, "-f: %s '%s'; the fields are", what, field);
	for (c = 0; c < TOP_COL_MAX && n < errlen; c++) {
		field_name(c, name, sizeof(name));
		n += snprintf(err + n, errlen - n, "%s %s", c ? "," : "", name);
	}
}

int top__parse_fields(const char *list, enum top_col *out, size_t *n, char *err, size_t errlen)
{
	char buf[256], name[16], *tok, *save = NULL;
	size_t len, i;
	int c;

	*n = 0;
	snprintf(buf, sizeof(buf), "%s", list);
	if (!*buf || buf[strlen(buf) - 1] == ',' || *buf == ',' || strstr(buf, ",,")) {
		fields_error("an empty field in", list, err, errlen);
		return -EINVAL;
	}
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		len = strlen(tok);
		if (len > 2 && !strcmp(tok + len - 2, "/s"))
			tok[len -= 2] = 0;
		if (len > 1 && tok[len - 1] == '%')
			tok[--len] = 0;
		for (c = 0; c < TOP_COL_MAX; c++) {
			field_name(c, name, sizeof(name));
			if (!strcasecmp(tok, name))
				break;
		}
		if (c == TOP_COL_MAX) {
			fields_error("no field", tok, err, errlen);
			return -EINVAL;
		}
		for (i = 0; i < *n; i++) {
			if (out[i] == (enum top_col)c) {
				fields_error("twice the field", tok, err, errlen);
				return -EINVAL;
			}
		}
		if (*n >= TOP_COL_MAX)
			return -EINVAL; /* not reached: a field twice is refused first */
		out[(*n)++] = c;
	}
	return 0;
}

const char *top__ctr_key(enum top_ctr c)
{
	return c < TOP_C_MAX ? ctrs[c].key : "?";
}

/* ---- frames ------------------------------------------------------------------------------ */

static __u64 ju(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		return json_integer_value(v) < 0 ? 0 : (__u64)json_integer_value(v);
	if (json_is_real(v))
		return json_real_value(v) < 0 ? 0 : (__u64)json_real_value(v);
	return 0;
}

static __u64 ju2(json_t *o, const char *a, const char *b)
{
	return ju(json_object_get(o, a), b);
}

/* The sum of an object's integer members (rmp_transitions, tdx_transitions, faults). */
static __u64 jsum(json_t *o)
{
	const char *key;
	json_t *v;
	__u64 n = 0;

	json_object_foreach(o, key, v)
		if (json_is_integer(v) && json_integer_value(v) > 0)
			n += json_integer_value(v);
	return n;
}

static void histo_from_json(struct histo *h, json_t *o)
{
	json_t *slots = json_object_get(o, "slots"), *s;
	size_t i;

	histo__init(h);
	if (!json_is_object(o))
		return;
	h->count = ju(o, "count");
	h->sum = ju(o, "sum_ns");
	h->min = ju(o, "min_ns");
	h->max = ju(o, "max_ns");
	json_array_foreach(slots, i, s) {
		json_int_t k = json_integer_value(json_array_get(s, 0));
		json_int_t c = json_integer_value(json_array_get(s, 1));

		if (k >= 0 && k < HISTO_SLOTS && c > 0)
			h->slots[k] = c;
	}
}

static __u64 sub0(__u64 a, __u64 b)
{
	return a >= b ? a - b : 0;
}

/* cur - base: what came since a reset. min and max are only known to their slot then. */
static void histo_since(struct histo *out, const struct histo *cur, const struct histo *base)
{
	int i, lo = -1, hi = -1;

	if (!base->count || cur->count < base->count) {
		*out = *cur;
		return;
	}
	histo__init(out);
	for (i = 0; i < HISTO_SLOTS; i++) {
		out->slots[i] = sub0(cur->slots[i], base->slots[i]);
		out->count += out->slots[i];
		if (out->slots[i]) {
			if (lo < 0)
				lo = i;
			hi = i;
		}
	}
	out->sum = cur->sum >= base->sum ? cur->sum - base->sum : 0;
	if (lo >= 0) {
		out->min = lo ? 1ull << lo : 0;
		out->max = hi < 63 ? (1ull << (hi + 1)) - 1 : ~0ull;
	}
}

static void vm_derive(struct top_vm *v)
{
	struct histo a, b;

	histo_since(&a, &v->conv[GMEM_TO_SHARED], &v->conv_base[GMEM_TO_SHARED]);
	histo_since(&b, &v->conv[GMEM_TO_PRIVATE], &v->conv_base[GMEM_TO_PRIVATE]);
	histo__merge(&a, &b);
	v->conv_count = a.count;
	v->conv_p50_ns = histo__percentile(&a, 0.50);
	v->conv_p99_ns = histo__percentile(&a, 0.99);
}

static int vm_from_json(struct top_vm *v, json_t *o)
{
	json_t *files = json_object_get(o, "file_list"), *f, *hp, *x;
	__u64 *r = v->raw;
	size_t i;

	memset(v, 0, sizeof(*v));
	v->pid = ju(o, "vm");
	/* the server's name, read when it met the VM: a VM gone by now keeps it */
	snprintf(v->name, sizeof(v->name), "%s",
		 json_string_value(json_object_get(o, "name")) ?: "");
	v->gone = json_is_true(json_object_get(o, "gone"));
	v->files = ju(o, "files");
	r[TOP_C_ALLOC_USER] = ju2(o, "pages_allocated", "user_fault");
	r[TOP_C_ALLOC_GUEST] = ju2(o, "pages_allocated", "guest_fault");
	r[TOP_C_ALLOC_FALLOC] = ju2(o, "pages_allocated", "fallocate");
	r[TOP_C_ALLOC_POPULATE] = ju2(o, "pages_allocated", "populate");
	r[TOP_C_ALLOC_OTHER] = ju2(o, "pages_allocated", "other");
	r[TOP_C_PUNCH] = ju(o, "punch_holes");
	r[TOP_C_FREED] = ju(o, "pages_freed");
	x = json_object_get(o, "conversions");
	r[TOP_C_CONV_PRIVATE_OK] = ju2(x, "private", "ok");
	r[TOP_C_CONV_PRIVATE_ERR] = ju2(x, "private", "error");
	r[TOP_C_CONV_SHARED_OK] = ju2(x, "shared", "ok");
	r[TOP_C_CONV_SHARED_ERR] = ju2(x, "shared", "error");
	r[TOP_C_CONV] = r[TOP_C_CONV_PRIVATE_OK] + r[TOP_C_CONV_PRIVATE_ERR] +
			r[TOP_C_CONV_SHARED_OK] + r[TOP_C_CONV_SHARED_ERR];
	r[TOP_C_DMAP_REMOVE] = ju2(o, "direct_map", "removals_pages");
	r[TOP_C_DMAP_RESTORE] = ju2(o, "direct_map", "restores_pages");
	r[TOP_C_RMP] = jsum(json_object_get(o, "rmp_transitions"));
	r[TOP_C_TDX] = jsum(json_object_get(o, "tdx_transitions"));
	json_array_foreach(json_object_get(o, "hugepages"), i, hp) {
		r[TOP_C_SPLIT] += ju(hp, "splits");
		r[TOP_C_MERGE] += ju(hp, "merges");
	}
	r[TOP_C_FILES_CREATED] = ju(o, "files_created");
	r[TOP_C_FILES_RELEASED] = ju(o, "files_released");
	r[TOP_C_BINDS] = ju(o, "memslot_binds");
	r[TOP_C_INVALIDATED] = ju(o, "invalidated_bytes");
	r[TOP_C_FAULTS] = jsum(json_object_get(o, "faults"));
	x = json_object_get(o, "conversion_latency");
	histo_from_json(&v->conv[GMEM_TO_SHARED], json_object_get(x, "shared"));
	histo_from_json(&v->conv[GMEM_TO_PRIVATE], json_object_get(x, "private"));
	x = json_object_get(o, "conversion_exit_to_entry");
	histo_from_json(&v->e2e[GMEM_TO_SHARED], json_object_get(x, "shared"));
	histo_from_json(&v->e2e[GMEM_TO_PRIVATE], json_object_get(x, "private"));

	x = json_object_get(o, "vcpu_threads");
	if (json_array_size(x)) {
		json_t *th;

		v->threads = calloc(json_array_size(x), sizeof(*v->threads));
		if (!v->threads)
			return -ENOMEM;
		json_array_foreach(x, i, th) {
			struct top_vthread *w = &v->threads[v->nr_threads++];

			w->idx = (int)ju(th, "vcpu");
			w->tid = (__u32)ju(th, "tid");
			w->gmem_faults = ju(th, "guest_fault_pages");
		}
	}

	v->nr_files = json_array_size(files);
	if (v->nr_files) {
		v->files_list = calloc(v->nr_files, sizeof(*v->files_list));
		if (!v->files_list)
			return -ENOMEM;
	}
	json_array_foreach(files, i, f) {
		struct top_file *tf = &v->files_list[i];

		tf->ino = ju(f, "ino");
		tf->size_bytes = ju(f, "size_bytes");
		tf->populated_bytes = ju(f, "populated_bytes");
		tf->pages_allocated = ju(f, "pages_allocated");
		tf->pages_freed = ju(f, "pages_freed");
		tf->punch_holes = ju(f, "punch_holes");
		tf->binds = ju(f, "binds");
		tf->discovered = json_is_true(json_object_get(f, "discovered"));
		v->size_bytes += tf->size_bytes;
		v->populated_bytes += tf->populated_bytes;
	}
	return 0;
}

/* Share (percent) of the guest's KVM-mapped memory in 2M and 1G pages; -1 when unknown. */
double top__huge_percent(const struct top_vm *v)
{
	double small = (double)v->kvm_pages[0];
	double huge = (double)v->kvm_pages[1] * 512 + (double)v->kvm_pages[2] * 512 * 512;

	if (!v->kvm_vm_stats || small + huge <= 0)
		return -1;
	return 100.0 * huge / (small + huge);
}

/* The snapshot's kvm_stats (gmemd --kvm-stats) into the VMs it names. */
static int kvm_from_json(struct top_vm *vms, size_t n, json_t *snap)
{
	json_t *k, *vc, *st;
	size_t i, j, c;

	json_array_foreach(json_object_get(snap, "kvm_stats"), i, k) {
		__u32 pid = ju(k, "vm");
		struct top_vm *v = NULL;
		json_t *vs = json_object_get(k, "vm_stats");

		for (j = 0; j < n && !v; j++)
			if (vms[j].pid == pid)
				v = &vms[j];
		if (!v)
			continue;
		v->kvm = true;
		if (json_is_object(vs)) {
			v->kvm_vm_stats = true;
			v->kvm_pages[0] = ju(vs, "pages_4k");
			v->kvm_pages[1] = ju(vs, "pages_2m");
			v->kvm_pages[2] = ju(vs, "pages_1g");
		}
		c = json_array_size(json_object_get(k, "vcpus"));
		v->vcpus = c ? calloc(c, sizeof(*v->vcpus)) : NULL;
		if (c && !v->vcpus)
			return -ENOMEM;
		json_array_foreach(json_object_get(k, "vcpus"), j, vc) {
			struct top_vcpu *u = &v->vcpus[v->nr_vcpus++];

			st = json_object_get(vc, "stats");
			u->idx = (int)json_integer_value(json_object_get(vc, "vcpu"));
			u->exits = ju(st, "exits");
			u->halt_exits = ju(st, "halt_exits");
			u->pf_taken = ju(st, "pf_taken");
			u->halt_wait_ns = ju(st, "halt_wait_ns");
			for (c = 0; c < v->nr_threads; c++)
				if (v->threads[c].idx == u->idx) {
					u->tid = v->threads[c].tid;
					u->gmem_faults = v->threads[c].gmem_faults;
				}
			v->raw[TOP_C_KVM_EXITS] += u->exits;
			v->raw[TOP_C_KVM_HALT_EXITS] += u->halt_exits;
			v->raw[TOP_C_KVM_PF_TAKEN] += u->pf_taken;
		}
	}
	return 0;
}

static void vcpu_rates(struct top_vm *v, const struct top_vm *old, double dt)
{
	size_t i, j;

	for (i = 0; dt > 0 && i < v->nr_vcpus; i++) {
		struct top_vcpu *u = &v->vcpus[i];

		for (j = 0; j < old->nr_vcpus; j++) {
			const struct top_vcpu *o = &old->vcpus[j];

			if (o->idx != u->idx || u->exits < o->exits || u->halt_exits < o->halt_exits ||
			    u->pf_taken < o->pf_taken || u->halt_wait_ns < o->halt_wait_ns)
				continue;
			u->exits_rate = (u->exits - o->exits) / dt;
			u->halt_rate = (u->halt_exits - o->halt_exits) / dt;
			u->pf_rate = (u->pf_taken - o->pf_taken) / dt;
			u->halted = (u->halt_wait_ns - o->halt_wait_ns) / 1e9 / dt;
			u->gmem_rate = u->tid == o->tid && u->gmem_faults >= o->gmem_faults ?
					       (u->gmem_faults - o->gmem_faults) / dt : 0;
			u->rated = true;
		}
	}
}

static int vm_pid_cmp(const void *a, const void *b)
{
	const struct top_vm *x = a, *y = b;

	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static struct top_vm *find_vm(struct top_vm *vms, size_t n, __u32 pid)
{
	struct top_vm key = { .pid = pid };

	return n ? bsearch(&key, vms, n, sizeof(*vms), vm_pid_cmp) : NULL;
}

static void free_vms(struct top_vm *vms, size_t n)
{
	size_t i;

	for (i = 0; vms && i < n; i++) {
		free(vms[i].files_list);
		free(vms[i].vcpus);
		free(vms[i].threads);
	}
	free(vms);
}

/* ---- rows: filter and sort ----------------------------------------------------------------- */

bool top__col_is_counter(enum top_col c)
{
	return col_ctr(c) >= 0;
}

/* -z: every counter column shown reads 0 (rates, or totals with t). Rates not known yet are
 * not zeros: the first frame keeps every row. */
static bool row_zero(const struct top *t, const struct top_vm *v)
{
	size_t i, n = t->opts.nr_fields ? t->opts.nr_fields : TOP_COL_MAX;
	enum top_col c;
	int k;

	if (!t->totals && !v->rated)
		return false;
	for (i = 0; i < n; i++) {
		c = t->opts.nr_fields ? t->opts.fields[i] : (enum top_col)i;
		k = col_ctr(c);
		if (k < 0)
			continue;
		if (t->totals ? sub0(v->raw[k], v->base[k]) != 0 : v->rate[k] != 0)
			return false;
	}
	return true;
}

static bool filter_match(const struct top *t, const struct top_vm *v)
{
	const char *f = t->filter, *p;
	char *end;
	bool numeric = true;

	if (t->opts.only_pid && v->pid != t->opts.only_pid)
		return false;
	if (t->opts.only_name && strcmp(v->name, t->opts.only_name))
		return false;
	if (t->opts.skip_zero && row_zero(t, v))
		return false;
	if (!*f)
		return true;
	for (p = f; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == ',' || *p == ' '))
			numeric = false;
	if (!numeric)
		return strcasestr(v->name, f) != NULL;
	/* a pid, or several separated by commas */
	for (p = f; *p;) {
		unsigned long pid;

		while (*p == ',' || *p == ' ')
			p++;
		if (!*p)
			break;
		pid = strtoul(p, &end, 10);
		if (end == p)
			break;
		if (pid == v->pid)
			return true;
		p = end;
	}
	return false;
}

/* The value a column sorts by; rates not yet known sort below every known one. */
static double sort_key(const struct top *t, const struct top_vm *v, enum top_col c)
{
	int k = col_ctr(c);

	switch (c) {
	case TOP_COL_PID: return v->pid;
	case TOP_COL_FILES: return v->files;
	case TOP_COL_SIZE: return v->size_bytes;
	case TOP_COL_POPULATED: return v->populated_bytes;
	case TOP_COL_CONV_P50: return v->conv_count ? (double)v->conv_p50_ns : -1;
	case TOP_COL_CONV_P99: return v->conv_count ? (double)v->conv_p99_ns : -1;
	case TOP_COL_HUGE: return top__huge_percent(v);
	case TOP_COL_KVM_EXITS:
		if (!v->kvm)
			return -1;
		break;
	default: break;
	}
	if (k < 0)
		return 0;
	if (t->totals)
		return (double)sub0(v->raw[k], v->base[k]);
	return v->rated ? v->rate[k] : -1;
}

static int row_cmp(const void *a, const void *b, void *ctx)
{
	const struct top *t = ctx;
	const struct top_vm *x = &t->vms[*(const size_t *)a], *y = &t->vms[*(const size_t *)b];
	double kx, ky;
	int r = 0;

	if (t->sort_col == TOP_COL_NAME) {
		r = strcasecmp(x->name, y->name);
	} else {
		kx = sort_key(t, x, t->sort_col);
		ky = sort_key(t, y, t->sort_col);
		r = kx < ky ? -1 : kx > ky;
	}
	if (t->sort_desc)
		r = -r;
	/* ties by pid, always ascending: the order stays put from frame to frame */
	return r ? r : (x->pid < y->pid ? -1 : x->pid > y->pid);
}

size_t top__table_rows(const struct top *t)
{
	int n = t->scr_rows - TOP_HEADER_ROWS - 2; /* column header, footer */

	return n < 1 ? 1 : (size_t)n;
}

static size_t page_height(const struct top *t)
{
	int n = t->scr_rows - TOP_HEADER_ROWS - 1;

	return n < 1 ? 1 : (size_t)n;
}

static void fix_scroll(struct top *t)
{
	size_t h = top__table_rows(t);

	if (t->sel < 0) {
		t->first_row = 0;
		return;
	}
	if ((size_t)t->sel < t->first_row)
		t->first_row = t->sel;
	if ((size_t)t->sel >= t->first_row + h)
		t->first_row = t->sel - h + 1;
	if (t->nr_rows <= h)
		t->first_row = 0;
	else if (t->first_row > t->nr_rows - h)
		t->first_row = t->nr_rows - h;
}

static void select_row(struct top *t, long i)
{
	if (!t->nr_rows) {
		t->sel = -1;
		t->first_row = 0;
		return;
	}
	if (i < 0)
		i = 0;
	if (i >= (long)t->nr_rows)
		i = t->nr_rows - 1;
	t->sel = i;
	t->sel_pid = t->vms[t->rows[i]].pid;
	fix_scroll(t);
}

/* Filters and sorts; the selection follows its VM, or stays at its place when it went. */
static void build_rows(struct top *t)
{
	size_t i;
	long keep = t->sel;

	t->nr_rows = 0;
	for (i = 0; i < t->nr_vms; i++)
		if (filter_match(t, &t->vms[i]))
			t->rows[t->nr_rows++] = i;
	qsort_r(t->rows, t->nr_rows, sizeof(*t->rows), row_cmp, t);
	for (i = 0; i < t->nr_rows; i++) {
		if (t->vms[t->rows[i]].pid == t->sel_pid && t->sel >= 0) {
			keep = i;
			break;
		}
	}
	select_row(t, keep < 0 ? 0 : keep);
}

/* ---- lifetime and frames ----------------------------------------------------------------- */

struct top *top__new(const struct top_opts *opts)
{
	struct top *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	if (opts)
		t->opts = *opts;
	t->interval = t->opts.interval_s > 0 ? t->opts.interval_s : 1.0;
	if (t->interval < TOP_INTERVAL_MIN)
		t->interval = TOP_INTERVAL_MIN;
	if (t->interval > TOP_INTERVAL_MAX)
		t->interval = TOP_INTERVAL_MAX;
	t->totals = t->opts.totals;
	t->sort_col = TOP_COL_PID;
	t->sel = -1;
	t->hscroll = TOP_COL_FROZEN;
	t->scr_rows = 24;
	t->scr_cols = 80;
	snprintf(t->host.server, sizeof(t->host.server), "?");
	return t;
}

void top__free(struct top *t)
{
	if (!t)
		return;
	free_vms(t->vms, t->nr_vms);
	free(t->rows);
	free(t->page);
	free(t);
}

static void host_from_json(struct top *t, json_t *snap, json_t *model, __u64 ts_ns, bool first)
{
	struct top_host *h = &t->host, old = t->host;
	json_t *hb = json_object_get(json_object_get(model, "direct_map"), "host_bytes");
	json_t *probe = json_object_get(snap, "probe"), *daemon = json_object_get(snap, "daemon");
	json_t *ev, *live;
	const char *name, *state;
	size_t i;

	h->ts_ns = ts_ns;
	h->dmap[0] = ju(hb, "4k");
	h->dmap[1] = ju(hb, "2M");
	h->dmap[2] = ju(hb, "1G");
	h->events = ju2(model, "totals", "events");
	h->drops = ju2(model, "totals", "events_dropped");
	h->probes_live = h->probes_unavailable = h->probes_failed = 0;
	json_array_foreach(json_object_get(probe, "events"), i, ev) {
		state = json_string_value(json_object_get(ev, "state"));
		if (!state)
			continue;
		if (!strcmp(state, "live"))
			h->probes_live++;
		else if (!strcmp(state, "failed"))
			h->probes_failed++;
		else
			h->probes_unavailable++;
	}
	h->fentry = json_is_true(json_object_get(probe, "fentry_permitted"));
	name = json_string_value(json_object_get(daemon, "name"));
	snprintf(h->server, sizeof(h->server), "%s", name ? name : "?");
	h->server_pid = ju(daemon, "pid");
	live = json_object_get(daemon, "live");
	h->live = live ? json_is_true(live) : !(name && strstr(name, "replay"));

	if (first) {
		memcpy(h->dmap_base, h->dmap, sizeof(h->dmap));
		h->events_base = 0;
		h->drops_base = 0;
		h->rated = false;
		h->interval_s = 0;
		return;
	}
	h->interval_s = ts_ns > old.ts_ns ? (ts_ns - old.ts_ns) / 1e9 : 0;
	h->rated = h->interval_s > 0;
	h->events_rate = h->rated ? sub0(h->events, old.events) / h->interval_s : 0;
	if (h->events < h->events_base)
		h->events_base = 0;
	if (h->drops < h->drops_base)
		h->drops_base = 0;
}

int top__update(struct top *t, json_t *snap)
{
	json_t *model = json_object_get(snap, "model"), *vms, *o, *ts;
	struct top_vm *nv = NULL, *old;
	size_t *rows = NULL, n, i, k;
	__u64 ts_ns;
	double dt;
	int err;

	if (!json_is_object(model))
		return -EINVAL;
	vms = json_object_get(model, "vms");
	n = json_array_size(vms);
	ts = json_object_get(snap, "ts_ns");
	if (json_is_integer(ts))
		ts_ns = json_integer_value(ts);
	else /* a source without a clock: assume the interval passed */
		ts_ns = t->host.ts_ns + (__u64)(t->interval * 1e9);
	nv = calloc(n + 1, sizeof(*nv));
	rows = calloc(n + 1, sizeof(*rows));
	if (!nv || !rows) {
		err = -ENOMEM;
		goto fail;
	}
	json_array_foreach(vms, i, o) {
		err = vm_from_json(&nv[i], o);
		if (err) {
			n = i + 1;
			goto fail;
		}
	}
	err = kvm_from_json(nv, n, snap);
	if (err)
		goto fail;
	qsort(nv, n, sizeof(*nv), vm_pid_cmp);
	dt = t->frames && ts_ns > t->host.ts_ns ? (ts_ns - t->host.ts_ns) / 1e9 : 0;
	for (i = 0; i < n; i++) {
		struct top_vm *v = &nv[i];

		old = find_vm(t->vms, t->nr_vms, v->pid);
		if (!old) {
			if (!v->name[0] && t->opts.name_fn)
				t->opts.name_fn(t->opts.name_ctx, v->pid, v->name, sizeof(v->name));
			if (!v->name[0])
				snprintf(v->name, sizeof(v->name), "?");
			vm_derive(v);
			continue;
		}
		if (!v->name[0])
			memcpy(v->name, old->name, sizeof(v->name));
		memcpy(v->base, old->base, sizeof(v->base));
		memcpy(v->conv_base, old->conv_base, sizeof(v->conv_base));
		memcpy(v->e2e_base, old->e2e_base, sizeof(v->e2e_base));
		v->rated = dt > 0;
		for (k = 0; k < TOP_C_MAX; k++) {
			if (v->raw[k] < old->raw[k]) {
				/* went backwards: a new incarnation of the pid or server */
				v->base[k] = 0;
				v->rate[k] = 0;
				continue;
			}
			v->rate[k] = dt > 0 ? (v->raw[k] - old->raw[k]) / dt : 0;
		}
		vcpu_rates(v, old, dt);
		vm_derive(v);
	}
	host_from_json(t, snap, model, ts_ns, t->frames == 0);
	free_vms(t->vms, t->nr_vms);
	free(t->rows);
	t->vms = nv;
	t->nr_vms = n;
	t->rows = rows;
	t->frames++;
	t->error[0] = 0;
	build_rows(t);
	return 0;
fail:
	free_vms(nv, n);
	free(rows);
	return err;
}

void top__reset(struct top *t)
{
	struct top_host *h = &t->host;
	size_t i;

	for (i = 0; i < t->nr_vms; i++) {
		struct top_vm *v = &t->vms[i];

		memcpy(v->base, v->raw, sizeof(v->base));
		memcpy(v->conv_base, v->conv, sizeof(v->conv_base));
		memcpy(v->e2e_base, v->e2e, sizeof(v->e2e_base));
		vm_derive(v);
	}
	memcpy(h->dmap_base, h->dmap, sizeof(h->dmap));
	h->events_base = h->events;
	h->drops_base = h->drops;
	build_rows(t);
}

void top__set_error(struct top *t, const char *msg)
{
	snprintf(t->error, sizeof(t->error), "%s", msg ? msg : "");
}

/* ---- accessors --------------------------------------------------------------------------- */

double top__interval(const struct top *t)
{
	return t->interval;
}

void top__set_interval(struct top *t, double seconds)
{
	if (seconds < TOP_INTERVAL_MIN)
		seconds = TOP_INTERVAL_MIN;
	if (seconds > TOP_INTERVAL_MAX)
		seconds = TOP_INTERVAL_MAX;
	t->interval = seconds;
}

bool top__paused(const struct top *t)
{
	return t->paused;
}

enum top_view top__view(const struct top *t)
{
	return t->view;
}

size_t top__frames(const struct top *t)
{
	return t->frames;
}

const struct top_host *top__host(const struct top *t)
{
	return &t->host;
}

size_t top__nr_vms(const struct top *t)
{
	return t->nr_vms;
}

size_t top__nr_rows(const struct top *t)
{
	return t->nr_rows;
}

const struct top_vm *top__row(const struct top *t, size_t i)
{
	return i < t->nr_rows ? &t->vms[t->rows[i]] : NULL;
}

const struct top_vm *top__vm(const struct top *t, __u32 pid)
{
	return find_vm(t->vms, t->nr_vms, pid);
}

long top__selected(const struct top *t)
{
	return t->sel;
}

size_t top__first_row(const struct top *t)
{
	return t->first_row;
}

const char *top__filter(const struct top *t)
{
	return t->filter;
}

void top__set_filter(struct top *t, const char *filter)
{
	snprintf(t->filter, sizeof(t->filter), "%s", filter ? filter : "");
	t->sel_pid = 0;
	t->sel = 0;
	build_rows(t);
}

enum top_col top__sort_col(const struct top *t)
{
	return t->sort_col;
}

bool top__sort_desc(const struct top *t)
{
	return t->sort_desc;
}

size_t top__page_scroll(const struct top *t)
{
	return t->view == TOP_VIEW_HELP ? t->help_scroll : t->page_scroll;
}

void top__resize(struct top *t, int rows, int cols_)
{
	t->scr_rows = rows > 1 ? rows : 1;
	t->scr_cols = cols_ > 1 ? cols_ : 1;
	if (t->scr_cols >= TOP_LINE_MAX)
		t->scr_cols = TOP_LINE_MAX - 1;
	fix_scroll(t);
}

/* ---- events ------------------------------------------------------------------------------ */

bool top__wants_events(const struct top *t)
{
	return t->drill_pid != 0;
}

void top__event(struct top *t, const struct gmem_event *ev)
{
	const struct top_vm *v;
	bool mine = false;
	size_t i;

	if (!t->drill_pid)
		return;
	if (ev->kind == GMEM_EV_LOST || ev->vm == t->drill_pid) {
		mine = true;
	} else if (!ev->vm && ev->ino) {
		/* the free paths cannot name the VM: its files can */
		v = top__vm(t, t->drill_pid);
		for (i = 0; v && i < v->nr_files && !mine; i++)
			mine = v->files_list[i].ino == ev->ino;
	}
	if (!mine)
		return;
	t->events[t->ev_head] = *ev;
	t->ev_head = (t->ev_head + 1) % TOP_EVENTS_MAX;
	if (t->ev_count < TOP_EVENTS_MAX)
		t->ev_count++;
}

static const char *src_name(unsigned int s)
{
	return model__source_name(s);
}

void top__event_text(const struct gmem_event *ev, __s64 mono_to_real_ns, char *buf, size_t len)
{
	unsigned long long ino = ev->ino, a = ev->a, b = ev->b, c = ev->c;
	char when[32], x[32], y[32];
	int n;

	if (mono_to_real_ns) {
		__s64 ns = (__s64)ev->ts_ns + mono_to_real_ns;
		time_t s = ns / 1000000000;
		struct tm tm;

		localtime_r(&s, &tm);
		n = strftime(when, sizeof(when), "%H:%M:%S", &tm);
		snprintf(when + n, sizeof(when) - n, ".%03lld",
			 (long long)(ns % 1000000000) / 1000000);
	} else {
		snprintf(when, sizeof(when), "%llu.%06llu",
			 (unsigned long long)(ev->ts_ns / 1000000000),
			 (unsigned long long)(ev->ts_ns % 1000000000) / 1000);
	}
	n = snprintf(buf, len, "%s %-13s ", when, model__kind_name(ev->kind));
	if (n < 0 || (size_t)n >= len)
		return;
	buf += n;
	len -= n;
	switch (ev->kind) {
	case GMEM_EV_FILE_CREATE:
		top__fmt_bytes(x, sizeof(x), a);
		if (ev->result < 0)
			snprintf(buf, len, "failed: error %d", -ev->result);
		else
			snprintf(buf, len, "ino %llu size %s flags 0x%llx fd %d", ino, x, b,
				 ev->result);
		break;
	case GMEM_EV_FILE_DISCOVER:
		top__fmt_bytes(x, sizeof(x), a);
		snprintf(buf, len, "ino %llu size %s populated %llu pages", ino, x, b);
		break;
	case GMEM_EV_FILE_RELEASE:
	case GMEM_EV_FD_CLOSE:
		snprintf(buf, len, "ino %llu", ino);
		break;
	case GMEM_EV_BIND:
		top__fmt_bytes(x, sizeof(x), b);
		snprintf(buf, len, "ino %llu slot %u gpa 0x%llx size %s offset 0x%llx%s", ino,
			 ev->sub, a, x, c, ev->result < 0 ? " failed" : "");
		break;
	case GMEM_EV_UNBIND:
		snprintf(buf, len, "slot %u", ev->sub);
		break;
	case GMEM_EV_PAGE_ALLOC:
		if (ev->flags & GMEM_EVF_COUNTED)
			snprintf(buf, len, "ino %llu pages %llu %s, %llu counted", ino, b,
				 src_name(ev->sub), c);
		else
			snprintf(buf, len, "ino %llu index %llu pages %llu %s", ino, a, b,
				 src_name(ev->sub));
		break;
	case GMEM_EV_PAGE_FREE:
		if (ev->flags & GMEM_EVF_COUNTED)
			snprintf(buf, len, "ino %llu pages %llu, %llu counted", ino, b, c);
		else
			snprintf(buf, len, "ino %llu index %llu pages %llu", ino, a, b);
		break;
	case GMEM_EV_PUNCH_HOLE:
	case GMEM_EV_FALLOCATE:
		top__fmt_bytes(x, sizeof(x), b);
		snprintf(buf, len, "ino %llu offset 0x%llx len %s%s", ino, a, x,
			 ev->result ? " failed" : "");
		break;
	case GMEM_EV_FAULT:
		top__fmt_ns(x, sizeof(x), c);
		snprintf(buf, len, "ino %llu index %llu %s %s", ino, a, src_name(ev->sub), x);
		break;
	case GMEM_EV_CONV_REQUEST:
		top__fmt_bytes(x, sizeof(x), b);
		snprintf(buf, len, "tid %u gpa 0x%llx size %s to %s", ev->tid, a, x,
			 model__dir_name(ev->sub));
		break;
	case GMEM_EV_CONV_ATTR:
		top__fmt_bytes(x, sizeof(x), b);
		top__fmt_ns(y, sizeof(y), c);
		snprintf(buf, len, "tid %u gpa 0x%llx size %s to %s %s%s", ev->tid, a, x,
			 model__dir_name(ev->sub), y, ev->result ? " failed" : "");
		break;
	case GMEM_EV_VCPU_RESUME:
		snprintf(buf, len, "tid %u", ev->tid);
		break;
	case GMEM_EV_VCPU_THREAD:
		snprintf(buf, len, "tid %u runs vCPU %llu", ev->tid, a);
		break;
	case GMEM_EV_GFN_INVALIDATE:
		snprintf(buf, len, "gfn 0x%llx-0x%llx unmapped (%llu pages)", a, b, b > a ? b - a : 0);
		break;
	case GMEM_EV_DMAP_REMOVE:
	case GMEM_EV_DMAP_RESTORE:
		snprintf(buf, len, "%s ino %llu index %llu pages %llu", model__owner_name(ev->sub),
			 ino, a, b);
		break;
	case GMEM_EV_RMP:
		snprintf(buf, len, "%s pfn 0x%llx gpa 0x%llx order %u%s",
			 model__rmp_op_name(ev->sub), a, b, ev->order, ev->result ? " failed" : "");
		break;
	case GMEM_EV_TDX:
		snprintf(buf, len, "%s 0x%llx order %u%s", model__tdx_op_name(ev->sub), a,
			 ev->order, ev->result ? " failed" : "");
		break;
	case GMEM_EV_SPLIT:
	case GMEM_EV_MERGE:
		snprintf(buf, len, "ino %llu index %llu order %u -> %u", ino, a, ev->order,
			 ev->to_order);
		break;
	case GMEM_EV_LOST:
		snprintf(buf, len, "%llu records lost", a);
		break;
	default:
		snprintf(buf, len, "ino %llu a %llu b %llu", ino, a, b);
		break;
	}
}

/* ---- text -------------------------------------------------------------------------------- */

static void line_set(struct top_line *l, enum top_style style, int width, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void line_set(struct top_line *l, enum top_style style, int width, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->text, sizeof(l->text), fmt, ap);
	va_end(ap);
	if (width >= 0 && (size_t)width < sizeof(l->text))
		l->text[width] = 0;
	l->style = style;
}

static void fmt_interval(char *buf, size_t len, double s)
{
	if (s == floor(s))
		snprintf(buf, len, "%.0fs", s);
	else
		snprintf(buf, len, "%gs", s);
}

static void fmt_delta_bytes(char *buf, size_t len, __u64 now, __u64 base)
{
	char x[24];

	if (now == base) {
		snprintf(buf, len, "0");
		return;
	}
	top__fmt_bytes(x, sizeof(x), now > base ? now - base : base - now);
	snprintf(buf, len, "%c%s", now > base ? '+' : '-', x);
}

void top__header(const struct top *t, struct top_line lines[TOP_HEADER_ROWS])
{
	const struct top_host *h = &t->host;
	char iv[16], d[3][24], dd[3][24], ev[24], tot[24], gm[24], pop[24], srv[80], fail[32];
	__u64 size = 0, popl = 0, files = 0;
	size_t i;

	fmt_interval(iv, sizeof(iv), t->interval);
	if (h->server_pid)
		snprintf(srv, sizeof(srv), "%s pid %u", h->server, h->server_pid);
	else
		snprintf(srv, sizeof(srv), "%s", h->server);
	/* what changes goes first: a long socket path is what the width cuts */
	line_set(&lines[0], TOP_S_TITLE, t->scr_cols, "gmemtop  refresh %s%s  %s via %s", iv,
		 t->paused ? " [PAUSED]" : "", srv, t->opts.source ? t->opts.source : "?");
	for (i = 0; i < 3; i++) {
		top__fmt_bytes(d[i], sizeof(d[i]), h->dmap[i]);
		fmt_delta_bytes(dd[i], sizeof(dd[i]), h->dmap[i], h->dmap_base[i]);
	}
	line_set(&lines[1], TOP_S_NORMAL, t->scr_cols,
		 "DirectMap 4k %s (%s)  2M %s (%s)  1G %s (%s)", d[0], dd[0], d[1], dd[1], d[2],
		 dd[2]);
	if (h->rated)
		top__fmt_rate(ev, sizeof(ev), h->events_rate);
	else
		snprintf(ev, sizeof(ev), "-");
	top__fmt_count(tot, sizeof(tot), sub0(h->events, h->events_base), 12);
	if (h->probes_failed)
		snprintf(fail, sizeof(fail), ", %u FAILED", h->probes_failed);
	else
		fail[0] = 0;
	line_set(&lines[2], h->probes_failed ? TOP_S_ERROR : TOP_S_NORMAL, t->scr_cols,
		 "events %s/s (%s)  drops %llu  probes %u live, %u unavailable%s", ev, tot,
		 (unsigned long long)sub0(h->drops, h->drops_base), h->probes_live,
		 h->probes_unavailable, fail);
	for (i = 0; i < t->nr_vms; i++) {
		files += t->vms[i].files;
		size += t->vms[i].size_bytes;
		popl += t->vms[i].populated_bytes;
	}
	top__fmt_bytes(gm, sizeof(gm), size);
	top__fmt_bytes(pop, sizeof(pop), popl);
	line_set(&lines[3], TOP_S_NORMAL, t->scr_cols,
		 "VMs %zu  files %llu  gmem %s  populated %s  [%s, sort %s%s]%s%s%s", t->nr_vms,
		 (unsigned long long)files, gm, pop, t->totals ? "totals" : "rates",
		 top__col_name(t->sort_col, t->totals), t->sort_desc ? "-" : "+",
		 t->filter[0] ? "  filter \"" : "", t->filter, t->filter[0] ? "\"" : "");
}

/* The cell text of one column for one VM (no padding). */
static void cell(const struct top *t, const struct top_vm *v, enum top_col c, char *buf,
		 size_t len)
{
	int k = col_ctr(c);

	switch (c) {
	case TOP_COL_PID:
		snprintf(buf, len, "%u", v->pid);
		return;
	case TOP_COL_NAME:
		snprintf(buf, len, "%s", v->name);
		return;
	case TOP_COL_FILES:
		top__fmt_count(buf, len, v->files, cols[c].width);
		return;
	case TOP_COL_SIZE:
		top__fmt_bytes(buf, len, v->size_bytes);
		return;
	case TOP_COL_POPULATED:
		top__fmt_bytes(buf, len, v->populated_bytes);
		return;
	case TOP_COL_CONV_P50:
	case TOP_COL_CONV_P99:
		if (!v->conv_count)
			snprintf(buf, len, "-");
		else
			top__fmt_ns(buf, len,
				    c == TOP_COL_CONV_P50 ? v->conv_p50_ns : v->conv_p99_ns);
		return;
	case TOP_COL_HUGE: {
		double pct = top__huge_percent(v);

		if (pct < 0)
			snprintf(buf, len, "-");
		else
			snprintf(buf, len, "%.0f%%", pct);
		return;
	}
	case TOP_COL_KVM_EXITS:
		if (!v->kvm) {
			snprintf(buf, len, "-");
			return;
		}
		break;
	default:
		break;
	}
	if (k < 0)
		snprintf(buf, len, "?");
	else if (t->totals)
		top__fmt_count(buf, len, sub0(v->raw[k], v->base[k]), cols[c].width);
	else if (!v->rated)
		snprintf(buf, len, "-");
	else
		top__fmt_rate(buf, len, v->rate[k]);
}

/*
 * One table line: the frozen columns, then columns from `first` on while they fit in width
 * (< 0: all). get(c) gives the text of column c. Returns the column after the last shown.
 */
static int table_line(const struct top *t, char *out, size_t outlen, int first, int width,
		      void (*get)(const struct top *, const void *, enum top_col, char *, size_t),
		      const void *arg, int *hl_start, int *hl_len)
{
	char text[64];
	size_t pos = 0;
	int c, w, n;

	out[0] = 0;
	for (c = 0; c < TOP_COL_MAX; c++) {
		if (c == TOP_COL_FROZEN)
			c = first;
		if (c >= TOP_COL_MAX)
			break;
		w = cols[c].width;
		if (width >= 0 && (int)pos + w > width && c >= TOP_COL_FROZEN)
			break;
		get(t, arg, c, text, sizeof(text));
		if (cols[c].left)
			n = snprintf(out + pos, outlen - pos, "%-*.*s ", w, w, text);
		else
			n = snprintf(out + pos, outlen - pos, "%*s ", w, text);
		if (n < 0 || (size_t)n >= outlen - pos)
			break;
		if (hl_start && (enum top_col)c == t->sort_col) {
			*hl_start = pos;
			*hl_len = n - 1;
		}
		pos += n;
	}
	while (pos && out[pos - 1] == ' ')
		out[--pos] = 0;
	if (width >= 0 && pos > (size_t)width)
		out[width] = 0;
	return c;
}

static void header_cell(const struct top *t, const void *arg, enum top_col c, char *buf,
			size_t len)
{
	snprintf(buf, len, "%s", top__col_name(c, t->totals));
}

static void row_cell(const struct top *t, const void *arg, enum top_col c, char *buf, size_t len)
{
	cell(t, arg, c, buf, len);
}

void top__table_header(const struct top *t, struct top_line *line, int *hl_start, int *hl_len)
{
	int s = -1, l = 0;

	table_line(t, line->text, sizeof(line->text), t->hscroll, t->scr_cols, header_cell, NULL,
		   &s, &l);
	line->style = TOP_S_HEADER;
	if (hl_start)
		*hl_start = s;
	if (hl_len)
		*hl_len = l;
}

void top__table_row(const struct top *t, size_t row, struct top_line *line)
{
	const struct top_vm *v = top__row(t, row);

	line->text[0] = 0;
	line->style = TOP_S_NORMAL;
	if (!v)
		return;
	table_line(t, line->text, sizeof(line->text), t->hscroll, t->scr_cols, row_cell, v, NULL,
		   NULL);
	line->style = v->gone ? TOP_S_DIM : TOP_S_NORMAL;
}

void top__footer(const struct top *t, struct top_line *line, int *cursor)
{
	static const char *const hints[] = {
		/* 78 columns: all of it shows at 80 */
		[TOP_VIEW_MAIN] = "h:help q:quit Enter:VM </>:sort f:filter p:pause r:reset "
				  "t:totals +/-:interval",
		[TOP_VIEW_VM] = "h:help q:quit Esc:back Up/Down/PgUp/PgDn:scroll End:follow "
				"r:reset p:pause",
		[TOP_VIEW_HELP] = "Up/Down/PgUp/PgDn/Home/End: scroll   any other key: back",
	};
	int n;

	if (cursor)
		*cursor = -1;
	if (t->prompt) {
		n = snprintf(line->text, sizeof(line->text), "%s: %s",
			     t->prompt == TOP_PROMPT_FILTER ? "Filter (name or pid, empty = all)"
							    : "Refresh interval in seconds",
			     t->pbuf);
		if (cursor)
			*cursor = n < t->scr_cols ? n : t->scr_cols - 1;
		line->style = TOP_S_HEADER;
	} else if (t->error[0]) {
		snprintf(line->text, sizeof(line->text), "%s", t->error);
		line->style = TOP_S_ERROR;
	} else {
		snprintf(line->text, sizeof(line->text), "%s", hints[t->view]);
		line->style = TOP_S_HEADER;
	}
	if (t->scr_cols < TOP_LINE_MAX)
		line->text[t->scr_cols] = 0;
}

/* ---- pages: drill-down and help ------------------------------------------------------------ */

static struct top_line *page_add(struct top *t, enum top_style style, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static struct top_line *page_add(struct top *t, enum top_style style, const char *fmt, ...)
{
	struct top_line *l, *np;
	va_list ap;

	if (t->nr_page == t->cap_page) {
		size_t cap = t->cap_page ? t->cap_page * 2 : 64;

		np = realloc(t->page, cap * sizeof(*np));
		if (!np)
			return NULL;
		t->page = np;
		t->cap_page = cap;
	}
	l = &t->page[t->nr_page++];
	va_start(ap, fmt);
	vsnprintf(l->text, sizeof(l->text), fmt, ap);
	va_end(ap);
	if ((size_t)t->scr_cols < sizeof(l->text))
		l->text[t->scr_cols] = 0;
	l->style = style;
	return l;
}

static void page_histo(struct top *t, const char *title, const struct histo *h)
{
	char label[48], p50[16], p99[16], bar[TOP_LINE_MAX];
	int i, first = -1, last = -1, w, n;
	__u64 max = 0;

	for (i = 0; i < HISTO_SLOTS; i++) {
		if (!h->slots[i])
			continue;
		if (first < 0)
			first = i;
		last = i;
		if (h->slots[i] > max)
			max = h->slots[i];
	}
	if (first < 0)
		return;
	top__fmt_ns(p50, sizeof(p50), histo__percentile(h, 0.5));
	top__fmt_ns(p99, sizeof(p99), histo__percentile(h, 0.99));
	page_add(t, TOP_S_TITLE, "%s  n=%llu  p50 %s  p99 %s", title, (unsigned long long)h->count,
		 p50, p99);
	/* the rows' labels are gmemtrace report's: log2 slots in ns, bounds inclusive */
	page_add(t, TOP_S_HEADER, "  %10s    %-10s  count", "nsecs", "");
	w = t->scr_cols - 36;
	if (w > 60)
		w = 60;
	if (w < 4)
		w = 4;
	for (i = first; i <= last; i++) {
		histo__slot_label(i, 10, label, sizeof(label));
		n = max ? (int)((h->slots[i] * w + max - 1) / max) : 0;
		memset(bar, '#', n);
		bar[n] = 0;
		page_add(t, TOP_S_BAR, "  %s |%-*s %llu", label, w, bar,
			 (unsigned long long)h->slots[i]);
	}
}

static void page_drill(struct top *t)
{
	const struct top_vm *v = top__vm(t, t->drill_pid);
	char a[24], b[24], c[24], iv[16];
	struct histo h;
	size_t i, k;

	if (!v) {
		page_add(t, TOP_S_ERROR, "VM %u is gone (retired from the model)", t->drill_pid);
		return;
	}
	top__fmt_bytes(a, sizeof(a), v->size_bytes);
	top__fmt_bytes(b, sizeof(b), v->populated_bytes);
	page_add(t, TOP_S_TITLE, "VM %u  %s%s   files %llu  gmem %s  populated %s", v->pid,
		 v->name, v->gone ? "  [exited]" : "", (unsigned long long)v->files, a, b);

	/* SEEN: "created" while watched, or "scan" (it predates us: ALLOC and FREED start then) */
	page_add(t, TOP_S_HEADER, "%-12s %8s %10s %8s %8s %8s %6s %-7s", "FILE (INODE)", "SIZE",
		 "POPULATED", "PAGES", "ALLOC", "FREED", "PUNCH", "SEEN");
	for (i = 0; i < v->nr_files; i++) {
		const struct top_file *f = &v->files_list[i];

		top__fmt_bytes(a, sizeof(a), f->size_bytes);
		top__fmt_bytes(b, sizeof(b), f->populated_bytes);
		page_add(t, TOP_S_NORMAL, "%-12llu %8s %10s %8llu %8llu %8llu %6llu %s",
			 (unsigned long long)f->ino, a, b,
			 (unsigned long long)(f->populated_bytes / MODEL_PAGE_SIZE),
			 (unsigned long long)f->pages_allocated,
			 (unsigned long long)f->pages_freed, (unsigned long long)f->punch_holes,
			 f->discovered ? "scan" : "created");
	}
	if (!v->nr_files)
		page_add(t, TOP_S_NORMAL, "  (no live files)");

	page_add(t, TOP_S_NORMAL, "%s", "");
	if (t->host.interval_s > 0)
		fmt_interval(iv, sizeof(iv), round(t->host.interval_s * 10) / 10);
	else
		snprintf(iv, sizeof(iv), "-");
	page_add(t, TOP_S_HEADER, "%-30s %14s %10s", "COUNTER", "TOTAL", "PER SEC");
	for (k = 0; k < sizeof(drill_ctrs) / sizeof(drill_ctrs[0]); k++) {
		enum top_ctr ct = drill_ctrs[k];

		snprintf(a, sizeof(a), "%llu", (unsigned long long)sub0(v->raw[ct], v->base[ct]));
		if (v->rated)
			top__fmt_rate(c, sizeof(c), v->rate[ct]);
		else
			snprintf(c, sizeof(c), "-");
		page_add(t, TOP_S_NORMAL, "%-30s %14s %10s", ctrs[ct].label, a, c);
	}

	page_add(t, TOP_S_NORMAL, "%s", "");
	page_add(t, TOP_S_HEADER, "KVM (binary stats from the fds the VMM holds)");
	if (!v->kvm) {
		page_add(t, TOP_S_NORMAL, "  (none: the VMM holds no KVM stats fds, or gmemd runs "
			 "with --kvm-stats none)");
	} else {
		double pct = top__huge_percent(v);

		if (v->kvm_vm_stats)
			page_add(t, TOP_S_NORMAL, "  guest mapped as 4k %llu, 2M %llu, 1G %llu pages "
				 "(%s%.0f%% huge)", (unsigned long long)v->kvm_pages[0],
				 (unsigned long long)v->kvm_pages[1],
				 (unsigned long long)v->kvm_pages[2], pct < 0 ? "-" : "",
				 pct < 0 ? 0 : pct);
		if (v->kvm_vm_stats) {
			/* what a split looks like here and in the allocations above */
			page_add(t, TOP_S_NORMAL, "  A huge-page split shows here as 2M falling by 1 "
				 "and 4k rising by 512 for");
			page_add(t, TOP_S_NORMAL, "  each 2M KVM maps small again; the allocations "
				 "above do not move, since no");
			page_add(t, TOP_S_NORMAL, "  page is allocated or freed: KVM's mapping "
				 "changed, not guest_memfd's memory.");
		}
		page_add(t, TOP_S_HEADER, "%-6s %8s %10s %10s %10s %10s %8s %9s", "VCPU", "TID",
			 "EXITS", "EXITS/s", "HALTS/s", "PF/s", "HALTED", "GMEMPF/s");
		for (i = 0; i < v->nr_vcpus; i++) {
			const struct top_vcpu *u = &v->vcpus[i];
			char r1[16] = "-", r2[16] = "-", r3[16] = "-", hw[16] = "-", tid[16] = "-";
			char r4[16] = "-";

			if (u->rated) {
				top__fmt_rate(r1, sizeof(r1), u->exits_rate);
				top__fmt_rate(r2, sizeof(r2), u->halt_rate);
				top__fmt_rate(r3, sizeof(r3), u->pf_rate);
				snprintf(hw, sizeof(hw), "%.0f%%", 100 * u->halted);
				if (u->tid)
					top__fmt_rate(r4, sizeof(r4), u->gmem_rate);
			}
			if (u->tid)
				snprintf(tid, sizeof(tid), "%u", u->tid);
			page_add(t, TOP_S_NORMAL, "%-6d %8s %10llu %10s %10s %10s %8s %9s", u->idx,
				 tid, (unsigned long long)u->exits, r1, r2, r3, hw, r4);
		}
		page_add(t, TOP_S_NORMAL, "  GMEMPF/s: guest_memfd pages the guest faulted in on "
			 "that vCPU's thread, from records");
		page_add(t, TOP_S_NORMAL, "  (they flow while this view is open; gmemd counts "
			 "pages per file, not per thread, otherwise)");
	}

	page_add(t, TOP_S_NORMAL, "%s", "");
	page_add(t, TOP_S_HEADER, "CONVERSION LATENCY");
	k = t->nr_page;
	histo_since(&h, &v->conv[GMEM_TO_PRIVATE], &v->conv_base[GMEM_TO_PRIVATE]);
	page_histo(t, "kernel part, to private", &h);
	histo_since(&h, &v->conv[GMEM_TO_SHARED], &v->conv_base[GMEM_TO_SHARED]);
	page_histo(t, "kernel part, to shared", &h);
	histo_since(&h, &v->e2e[GMEM_TO_PRIVATE], &v->e2e_base[GMEM_TO_PRIVATE]);
	page_histo(t, "exit to entry, to private", &h);
	histo_since(&h, &v->e2e[GMEM_TO_SHARED], &v->e2e_base[GMEM_TO_SHARED]);
	page_histo(t, "exit to entry, to shared", &h);
	if (k == t->nr_page)
		page_add(t, TOP_S_NORMAL, "  (no successful conversions)");

	page_add(t, TOP_S_NORMAL, "%s", "");
	page_add(t, TOP_S_HEADER, "RECENT EVENTS (since this view opened; End follows the newest)");
	for (i = 0; i < t->ev_count; i++) {
		size_t at = (t->ev_head + TOP_EVENTS_MAX - t->ev_count + i) % TOP_EVENTS_MAX;
		const struct gmem_event *ev = &t->events[at];
		char text[TOP_LINE_MAX];

		top__event_text(ev, t->opts.mono_to_real_ns, text, sizeof(text));
		page_add(t, TOP_S_NORMAL, "  %s", text);
	}
	if (!t->ev_count)
		page_add(t, TOP_S_NORMAL, "  (none yet)");
}

static const struct {
	const char *keys;
	const char *what;
} help_keys[] = {
	{ "Up/Down j/k", "select a VM (in a VM: scroll)" },
	{ "PgUp/PgDn Home/End", "page, first, last" },
	{ "Enter", "drill into the selected VM: files, latency, recent events" },
	{ "Esc Backspace Left", "back from a VM (Esc on the list clears the filter)" },
	{ "Left/Right", "scroll the columns after PID and NAME" },
	{ "< > F6", "sort by the previous / next column" },
	{ "i", "invert the sort order" },
	{ "P N M", "sort by pid, by name, by populated bytes" },
	{ "f / F4", "filter by name (substring) or pids (a,b); Ctrl-U clears" },
	{ "p Space", "pause / resume refreshing" },
	{ "r", "reset counters: totals and latencies count from now" },
	{ "t", "show totals since reset instead of rates per second" },
	{ "+ -", "refresh interval up / down" },
	{ "d", "set the refresh interval in seconds" },
	{ "Ctrl-L", "repaint the screen" },
	{ "h ? F1", "this help" },
	{ "q F10", "quit" },
};

static const struct {
	enum top_col col;
	const char *what;
} help_cols[] = {
	{ TOP_COL_PID, "the VMM's pid (kvm->stats_id), the vm label of /metrics" },
	{ TOP_COL_NAME, "qemu -name (guest=), --name or --id of its command line, or comm" },
	{ TOP_COL_FILES, "live guest_memfd files" },
	{ TOP_COL_SIZE, "their total size" },
	{ TOP_COL_POPULATED, "bytes backed by allocated pages" },
	{ TOP_COL_ALLOC_USER, "pages allocated by host user faults on the mmap" },
	{ TOP_COL_ALLOC_GUEST, "pages allocated by guest faults (inside KVM_RUN)" },
	{ TOP_COL_ALLOC_FALLOC, "pages allocated by fallocate" },
	{ TOP_COL_ALLOC_POPULATE, "pages allocated by populate (KVM_MEMORY_ENCRYPT_OP)" },
	{ TOP_COL_ALLOC_OTHER, "pages allocated otherwise" },
	{ TOP_COL_PUNCH, "hole punches" },
	{ TOP_COL_FREED, "pages freed" },
	{ TOP_COL_CONV, "private/shared conversions (ok and failed)" },
	{ TOP_COL_CONV_P50, "conversion latency p50 (kernel part, since reset)" },
	{ TOP_COL_CONV_P99, "conversion latency p99" },
	{ TOP_COL_DMAP, "pages removed from the kernel direct map" },
	{ TOP_COL_RMP, "SEV-SNP RMP transitions" },
	{ TOP_COL_TDX, "TDX page-state transitions" },
	{ TOP_COL_SPLIT, "huge folio splits" },
};

static void page_help(struct top *t)
{
	size_t i;

	page_add(t, TOP_S_TITLE, "gmemtop: what the kernel does with guest_memfd memory, per VM");
	page_add(t, TOP_S_NORMAL, "This help scrolls: Up/Down, PgUp/PgDn, Home/End. Any other key "
		 "goes back.");
	page_add(t, TOP_S_NORMAL, "%s", "");
	page_add(t, TOP_S_HEADER, "KEYS");
	for (i = 0; i < sizeof(help_keys) / sizeof(help_keys[0]); i++)
		page_add(t, TOP_S_NORMAL, "  %-20s %s", help_keys[i].keys, help_keys[i].what);
	page_add(t, TOP_S_NORMAL, "%s", "");
	page_add(t, TOP_S_HEADER, "COLUMNS (\"/s\": per second over the last interval; t: totals)");
	for (i = 0; i < sizeof(help_cols) / sizeof(help_cols[0]); i++)
		page_add(t, TOP_S_NORMAL, "  %-8s %s", top__col_name(help_cols[i].col, false),
			 help_cols[i].what);
	page_add(t, TOP_S_NORMAL, "%s", "");
	page_add(t, TOP_S_NORMAL, "Header: host DirectMap by page size (change since start or "
		 "reset),");
	page_add(t, TOP_S_NORMAL, "events/s, drops, probe coverage (gmemd --probe tells why).");
}

static void page_build(struct top *t)
{
	size_t h = page_height(t), *scroll;

	t->nr_page = 0;
	if (t->view == TOP_VIEW_HELP) {
		page_help(t);
		scroll = &t->help_scroll;
	} else {
		page_drill(t);
		scroll = &t->page_scroll;
	}
	/* at the bottom, stay there as the page grows: a tail of the events */
	if (t->view == TOP_VIEW_VM && t->follow)
		*scroll = t->nr_page;
	if (t->nr_page <= h)
		*scroll = 0;
	else if (*scroll > t->nr_page - h)
		*scroll = t->nr_page - h;
}

size_t top__page(struct top *t, const struct top_line **lines)
{
	if (t->view == TOP_VIEW_MAIN) {
		*lines = NULL;
		return 0;
	}
	page_build(t);
	*lines = t->page;
	return t->nr_page;
}

/* ---- keys -------------------------------------------------------------------------------- */

static void set_sort(struct top *t, enum top_col c)
{
	t->sort_col = c;
	t->sort_desc = cols[c].desc;
	build_rows(t);
}

static void null_cell(const struct top *t, const void *arg, enum top_col c, char *buf,
		      size_t len)
{
	buf[0] = 0;
}

/* Whether columns after the last one shown remain to scroll to. */
static bool more_right(const struct top *t)
{
	char line[TOP_LINE_MAX];

	return table_line(t, line, sizeof(line), t->hscroll, t->scr_cols, null_cell, NULL, NULL,
			  NULL) < TOP_COL_MAX;
}

static void scroll_page(struct top *t, size_t *scroll, int key)
{
	size_t h = page_height(t);

	page_build(t);
	switch (key) {
	case TOP_KEY_UP:
	case 'k':
		if (*scroll)
			(*scroll)--;
		break;
	case TOP_KEY_DOWN:
	case 'j':
		(*scroll)++;
		break;
	case TOP_KEY_PGUP:
		*scroll = *scroll > h ? *scroll - h : 0;
		break;
	case TOP_KEY_PGDN:
		*scroll += h;
		break;
	case TOP_KEY_HOME:
	case 'g':
		*scroll = 0;
		break;
	case TOP_KEY_END:
	case 'G':
		*scroll = t->nr_page;
		break;
	}
	t->follow = false;
	page_build(t);
	t->follow = t->nr_page > h && *scroll == t->nr_page - h;
}

static unsigned int key_prompt(struct top *t, int key)
{
	char *end;
	double v;

	switch (key) {
	case TOP_KEY_ESC:
		t->prompt = TOP_PROMPT_NONE;
		return TOP_R_REDRAW;
	case TOP_KEY_BACKSPACE:
	case 127:
	case 8:
		if (t->plen)
			t->pbuf[--t->plen] = 0;
		return TOP_R_REDRAW;
	case 0x15: /* Ctrl-U, as in a shell: clear the line */
		t->plen = 0;
		t->pbuf[0] = 0;
		return TOP_R_REDRAW;
	case TOP_KEY_ENTER:
	case '\n':
	case '\r':
		break;
	default:
		if (key >= 32 && key < 127 && t->plen + 1 < sizeof(t->pbuf)) {
			t->pbuf[t->plen++] = key;
			t->pbuf[t->plen] = 0;
		}
		return TOP_R_REDRAW;
	}
	if (t->prompt == TOP_PROMPT_FILTER) {
		t->prompt = TOP_PROMPT_NONE;
		top__set_filter(t, t->pbuf);
		return TOP_R_REDRAW;
	}
	t->prompt = TOP_PROMPT_NONE;
	v = strtod(t->pbuf, &end);
	if (end == t->pbuf || *end || !(v >= TOP_INTERVAL_MIN && v <= TOP_INTERVAL_MAX)) {
		snprintf(t->error, sizeof(t->error), "not an interval: \"%s\" (seconds, %g to %g)",
			 t->pbuf, TOP_INTERVAL_MIN, TOP_INTERVAL_MAX);
		return TOP_R_REDRAW;
	}
	top__set_interval(t, v);
	return TOP_R_REDRAW | TOP_R_INTERVAL;
}

static void open_prompt(struct top *t, enum top_prompt p, const char *init)
{
	t->prompt = p;
	snprintf(t->pbuf, sizeof(t->pbuf), "%s", init);
	t->plen = strlen(t->pbuf);
}

static unsigned int key_main(struct top *t, int key)
{
	long h = top__table_rows(t);
	int c;

	switch (key) {
	case TOP_KEY_UP:
	case 'k':
		select_row(t, t->sel - 1);
		break;
	case TOP_KEY_DOWN:
	case 'j':
		select_row(t, t->sel + 1);
		break;
	case TOP_KEY_PGUP:
		select_row(t, t->sel - h);
		break;
	case TOP_KEY_PGDN:
		select_row(t, t->sel + h);
		break;
	case TOP_KEY_HOME:
	case 'g':
		select_row(t, 0);
		break;
	case TOP_KEY_END:
	case 'G':
		select_row(t, (long)t->nr_rows - 1);
		break;
	case TOP_KEY_LEFT:
		if (t->hscroll > TOP_COL_FROZEN)
			t->hscroll--;
		break;
	case TOP_KEY_RIGHT:
		if (more_right(t))
			t->hscroll++;
		break;
	case '<':
	case ',':
		c = t->sort_col == 0 ? TOP_COL_MAX - 1 : (int)t->sort_col - 1;
		set_sort(t, c);
		break;
	case '>':
	case '.':
	case TOP_KEY_F6:
		set_sort(t, (t->sort_col + 1) % TOP_COL_MAX);
		break;
	case 'i':
	case 'I':
		t->sort_desc = !t->sort_desc;
		build_rows(t);
		break;
	case 'P':
		set_sort(t, TOP_COL_PID);
		break;
	case 'N':
		set_sort(t, TOP_COL_NAME);
		break;
	case 'M':
		set_sort(t, TOP_COL_POPULATED);
		break;
	case 'f':
	case '/':
	case TOP_KEY_F4:
		/* empty: typing replaces the filter, Enter alone shows all */
		open_prompt(t, TOP_PROMPT_FILTER, "");
		break;
	case TOP_KEY_ESC:
		if (!t->filter[0])
			return TOP_R_NONE;
		t->filter[0] = 0;
		build_rows(t);
		break;
	case TOP_KEY_ENTER:
	case '\n':
	case '\r':
		if (t->sel < 0)
			return TOP_R_NONE;
		t->drill_pid = t->vms[t->rows[t->sel]].pid;
		t->view = TOP_VIEW_VM;
		t->page_scroll = 0;
		t->follow = false;
		t->ev_head = t->ev_count = 0;
		return TOP_R_REDRAW | TOP_R_STREAM;
	default:
		return TOP_R_NONE;
	}
	return TOP_R_REDRAW;
}

static unsigned int key_vm(struct top *t, int key)
{
	switch (key) {
	case TOP_KEY_ESC:
	case TOP_KEY_BACKSPACE:
	case TOP_KEY_LEFT:
	case 127:
	case 8:
		t->view = TOP_VIEW_MAIN;
		t->drill_pid = 0;
		t->ev_count = t->ev_head = 0;
		return TOP_R_REDRAW | TOP_R_STREAM;
	case TOP_KEY_UP:
	case TOP_KEY_DOWN:
	case TOP_KEY_PGUP:
	case TOP_KEY_PGDN:
	case TOP_KEY_HOME:
	case TOP_KEY_END:
	case 'j':
	case 'k':
	case 'g':
	case 'G':
		scroll_page(t, &t->page_scroll, key);
		return TOP_R_REDRAW;
	default:
		return TOP_R_NONE;
	}
}

unsigned int top__key(struct top *t, int key)
{
	size_t i;

	if (t->prompt)
		return key_prompt(t, key);
	if (t->view == TOP_VIEW_HELP) {
		switch (key) {
		case TOP_KEY_UP:
		case TOP_KEY_DOWN:
		case TOP_KEY_PGUP:
		case TOP_KEY_PGDN:
		case TOP_KEY_HOME:
		case TOP_KEY_END:
			scroll_page(t, &t->help_scroll, key);
			return TOP_R_REDRAW;
		}
		t->view = t->help_from;
		return TOP_R_REDRAW;
	}
	t->error[0] = 0;
	switch (key) {
	case 'q':
	case 'Q':
	case TOP_KEY_F10:
		return TOP_R_QUIT;
	case 'h':
	case 'H':
	case '?':
	case TOP_KEY_F1:
		t->help_from = t->view;
		t->view = TOP_VIEW_HELP;
		t->help_scroll = 0;
		return TOP_R_REDRAW;
	case 'p':
	case ' ':
		t->paused = !t->paused;
		return TOP_R_REDRAW | (t->paused ? 0 : TOP_R_REFRESH);
	case 'r':
	case 'R':
		top__reset(t);
		return TOP_R_REDRAW;
	case 't':
	case 'T':
		t->totals = !t->totals;
		build_rows(t);
		return TOP_R_REDRAW;
	case '+':
	case '=':
		for (i = 0; i < sizeof(intervals) / sizeof(intervals[0]); i++)
			if (intervals[i] > t->interval + 1e-9)
				break;
		if (i == sizeof(intervals) / sizeof(intervals[0]))
			return TOP_R_NONE;
		t->interval = intervals[i];
		return TOP_R_REDRAW | TOP_R_INTERVAL;
	case '-':
	case '_':
		for (i = sizeof(intervals) / sizeof(intervals[0]); i-- > 0;)
			if (intervals[i] < t->interval - 1e-9)
				break;
		if (i == (size_t)-1)
			return TOP_R_NONE;
		t->interval = intervals[i];
		return TOP_R_REDRAW | TOP_R_INTERVAL;
	case 'd':
	case 's':
		open_prompt(t, TOP_PROMPT_INTERVAL, "");
		return TOP_R_REDRAW;
	case 12: /* Ctrl-L */
		return TOP_R_REDRAW | TOP_R_CLEAR;
	}
	if (t->view == TOP_VIEW_VM)
		return key_vm(t, key);
	return key_main(t, key);
}

/* ---- batch output ------------------------------------------------------------------------ */

/* A batch line of -f's columns, in its order, widths as the table's. */
static void fields_line(const struct top *t, char *out, size_t outlen,
			void (*get)(const struct top *, const void *, enum top_col, char *, size_t),
			const void *arg)
{
	char text[64];
	size_t pos = 0, i;
	enum top_col c;
	int n;

	out[0] = 0;
	for (i = 0; i < t->opts.nr_fields; i++) {
		c = t->opts.fields[i];
		get(t, arg, c, text, sizeof(text));
		n = snprintf(out + pos, outlen - pos, cols[c].left ? "%-*.*s " : "%*.*s ",
			     cols[c].width, cols[c].left ? cols[c].width : (int)sizeof(text), text);
		if (n < 0 || (size_t)n >= outlen - pos)
			break;
		pos += n;
	}
	while (pos && out[pos - 1] == ' ')
		out[--pos] = 0;
}

int top__print_text(const struct top *t, const char *stamp, struct strbuf *out)
{
	const struct top_host *h = &t->host;
	char line[TOP_LINE_MAX], ev[24], d[3][24];
	size_t i;

	for (i = 0; i < 3; i++)
		top__fmt_bytes(d[i], sizeof(d[i]), h->dmap[i]);
	if (h->rated)
		top__fmt_rate(ev, sizeof(ev), h->events_rate);
	else
		snprintf(ev, sizeof(ev), "-");
	strbuf__printf(out, "%s  %s  VMs %zu  events %s/s  drops %llu  DirectMap 4k %s 2M %s "
		       "1G %s  probes %u live %u unavailable\n", stamp ? stamp : "", h->server,
		       t->nr_vms, ev, (unsigned long long)sub0(h->drops, h->drops_base), d[0],
		       d[1], d[2], h->probes_live, h->probes_unavailable);
	if (t->opts.nr_fields)
		fields_line(t, line, sizeof(line), header_cell, NULL);
	else
		table_line(t, line, sizeof(line), TOP_COL_FROZEN, -1, header_cell, NULL, NULL,
			   NULL);
	strbuf__printf(out, "%s\n", line);
	for (i = 0; i < t->nr_rows; i++) {
		if (t->opts.nr_fields)
			fields_line(t, line, sizeof(line), row_cell, &t->vms[t->rows[i]]);
		else
			table_line(t, line, sizeof(line), TOP_COL_FROZEN, -1, row_cell,
				   &t->vms[t->rows[i]], NULL, NULL);
		strbuf__printf(out, "%s\n", line);
	}
	return out->err;
}

static void csv_str(struct strbuf *out, const char *s)
{
	if (!strpbrk(s, ",\"\n\r")) {
		strbuf__puts(out, s);
		return;
	}
	strbuf__putc(out, '"');
	for (; *s; s++) {
		if (*s == '"')
			strbuf__putc(out, '"');
		strbuf__putc(out, *s);
	}
	strbuf__putc(out, '"');
}

int top__print_csv(const struct top *t, const char *stamp, struct strbuf *out, bool header)
{
	size_t i, k;

	if (header) {
		strbuf__puts(out, "time,pid,name,gone,files,size_bytes,populated_bytes");
		for (k = 0; k < TOP_C_MAX; k++)
			strbuf__printf(out, ",%s", ctrs[k].key);
		for (k = 0; k < TOP_C_MAX; k++)
			strbuf__printf(out, ",%s_per_s", ctrs[k].key);
		strbuf__puts(out, ",conversion_p50_ns,conversion_p99_ns\n");
	}
	for (i = 0; i < t->nr_rows; i++) {
		const struct top_vm *v = &t->vms[t->rows[i]];

		csv_str(out, stamp ? stamp : "");
		strbuf__printf(out, ",%u,", v->pid);
		csv_str(out, v->name);
		strbuf__printf(out, ",%d,%llu,%llu,%llu", v->gone, (unsigned long long)v->files,
			       (unsigned long long)v->size_bytes,
			       (unsigned long long)v->populated_bytes);
		for (k = 0; k < TOP_C_MAX; k++)
			strbuf__printf(out, ",%llu",
				       (unsigned long long)sub0(v->raw[k], v->base[k]));
		for (k = 0; k < TOP_C_MAX; k++) {
			if (v->rated)
				strbuf__printf(out, ",%.6g", v->rate[k]);
			else
				strbuf__putc(out, ',');
		}
		if (v->conv_count)
			strbuf__printf(out, ",%llu,%llu\n", (unsigned long long)v->conv_p50_ns,
				       (unsigned long long)v->conv_p99_ns);
		else
			strbuf__puts(out, ",,\n");
	}
	return out->err;
}

static json_t *ju64(__u64 v)
{
	return json_integer(v > LLONG_MAX ? LLONG_MAX : (json_int_t)v);
}

static json_t *vm_json(const struct top_vm *v)
{
	json_t *o = json_object(), *tot = json_object(), *rates, *files = json_array(), *lat;
	size_t k;

	for (k = 0; k < TOP_C_MAX; k++)
		json_object_set_new(tot, ctrs[k].key, ju64(sub0(v->raw[k], v->base[k])));
	if (v->rated) {
		rates = json_object();
		for (k = 0; k < TOP_C_MAX; k++)
			json_object_set_new(rates, ctrs[k].key, json_real(v->rate[k]));
	} else {
		rates = json_null();
	}
	for (k = 0; k < v->nr_files; k++) {
		const struct top_file *f = &v->files_list[k];

		json_array_append_new(files,
				      json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}", "ino",
						ju64(f->ino), "size_bytes", ju64(f->size_bytes),
						"populated_bytes", ju64(f->populated_bytes),
						"pages_allocated", ju64(f->pages_allocated),
						"pages_freed", ju64(f->pages_freed), "punch_holes",
						ju64(f->punch_holes), "binds", ju64(f->binds),
						"discovered", f->discovered));
	}
	lat = json_pack("{s:o, s:o, s:o}", "count", ju64(v->conv_count), "p50_ns",
			v->conv_count ? ju64(v->conv_p50_ns) : json_null(), "p99_ns",
			v->conv_count ? ju64(v->conv_p99_ns) : json_null());
	json_object_set_new(o, "pid", json_integer(v->pid));
	json_object_set_new(o, "name", json_string(v->name));
	json_object_set_new(o, "gone", json_boolean(v->gone));
	json_object_set_new(o, "files", ju64(v->files));
	json_object_set_new(o, "size_bytes", ju64(v->size_bytes));
	json_object_set_new(o, "populated_bytes", ju64(v->populated_bytes));
	json_object_set_new(o, "totals", tot);
	json_object_set_new(o, "rates", rates);
	json_object_set_new(o, "conversion_latency", lat);
	json_object_set_new(o, "file_list", files);
	if (v->kvm) {
		json_t *kv = json_object(), *vcpus = json_array();
		double pct = top__huge_percent(v);

		for (k = 0; k < v->nr_vcpus; k++) {
			const struct top_vcpu *u = &v->vcpus[k];

			json_array_append_new(vcpus, json_pack(
				"{s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "vcpu",
				u->idx, "tid", u->tid ? json_integer(u->tid) : json_null(),
				"gmem_fault_pages", u->tid ? ju64(u->gmem_faults) : json_null(),
				"exits", ju64(u->exits), "halt_exits", ju64(u->halt_exits),
				"pf_taken", ju64(u->pf_taken), "halt_wait_ns", ju64(u->halt_wait_ns),
				"exits_per_s", u->rated ? json_real(u->exits_rate) : json_null(),
				"halt_exits_per_s", u->rated ? json_real(u->halt_rate) : json_null(),
				"pf_taken_per_s", u->rated ? json_real(u->pf_rate) : json_null(),
				"halted_share", u->rated ? json_real(u->halted) : json_null()));
		}
		if (v->kvm_vm_stats)
			json_object_set_new(kv, "pages", json_pack("{s:o, s:o, s:o}", "4k",
								   ju64(v->kvm_pages[0]), "2M",
								   ju64(v->kvm_pages[1]), "1G",
								   ju64(v->kvm_pages[2])));
		json_object_set_new(kv, "huge_percent", pct < 0 ? json_null() : json_real(pct));
		json_object_set_new(kv, "vcpus", vcpus);
		json_object_set_new(o, "kvm", kv);
	} else {
		json_object_set_new(o, "kvm", json_null());
	}
	return o;
}

json_t *top__to_json(const struct top *t)
{
	const struct top_host *h = &t->host;
	json_t *root, *vms = json_array(), *host, *dmap, *dd;
	static const char *const ps[3] = { "4k", "2M", "1G" };
	size_t i;

	dmap = json_object();
	dd = json_object();
	for (i = 0; i < 3; i++) {
		json_object_set_new(dmap, ps[i], ju64(h->dmap[i]));
		json_object_set_new(dd, ps[i], json_integer((json_int_t)h->dmap[i] -
							     (json_int_t)h->dmap_base[i]));
	}
	host = json_pack("{s:o, s:o, s:o, s:o, s:o, s:{s:i, s:i, s:i}, s:b}",
			 "direct_map_bytes", dmap, "direct_map_change_bytes", dd, "events",
			 ju64(sub0(h->events, h->events_base)), "events_per_s",
			 h->rated ? json_real(h->events_rate) : json_null(), "drops",
			 ju64(sub0(h->drops, h->drops_base)), "probes", "live", h->probes_live,
			 "unavailable", h->probes_unavailable, "failed", h->probes_failed,
			 "fentry", h->fentry);
	for (i = 0; i < t->nr_rows; i++)
		json_array_append_new(vms, vm_json(&t->vms[t->rows[i]]));
	root = json_pack("{s:o, s:o, s:{s:s, s:i, s:b}, s:o, s:o}", "ts_ns", ju64(h->ts_ns),
			 "interval_s", h->rated ? json_real(h->interval_s) : json_null(),
			 "server", "name", h->server, "pid", (int)h->server_pid, "live", h->live,
			 "host", host ? host : json_null(), "vms", vms);
	return root;
}
