// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * prom.c - Prometheus / OpenMetrics rendering of the model.
 *
 * Families are rendered whole, one after another, because both formats require a family's
 * samples to be contiguous; VMs and files are visited in sorted order so that two scrapes of
 * the same state are byte-identical (diffable, and testable with exact strings).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

enum fam_type {
	FAM_COUNTER,
	FAM_GAUGE,
	FAM_HISTOGRAM,
	FAM_INFO, /* a gauge of 1 with labels: OpenMetrics has a type for it */
};

struct render {
	struct strbuf *out;
	bool om;
	const struct model *m;
	const struct model_totals *t;
	const struct model_vm **vms;
	size_t nr_vms;
	const struct model_file **files; /* sorted by (vm, ino); the first nr_shown are emitted */
	size_t nr_files;
	size_t nr_shown;
	char le[HISTO_PROM_BUCKETS][32];
};

/* The exporter's order for source labels: the table's, with "other" last. */
static const unsigned int source_order[GMEM_SRC_MAX] = {
	GMEM_SRC_USER_FAULT, GMEM_SRC_GUEST_FAULT, GMEM_SRC_FALLOCATE, GMEM_SRC_POPULATE,
	GMEM_SRC_OTHER,
};

static const unsigned int dir_order[GMEM_DIR_MAX] = { GMEM_TO_PRIVATE, GMEM_TO_SHARED };

int prom__fmt_seconds(char *buf, size_t len, __u64 ns)
{
	unsigned long long s = ns / 1000000000ull, frac = ns % 1000000000ull;
	int n;

	if (!frac)
		return snprintf(buf, len, "%llu", s);
	n = snprintf(buf, len, "%llu.%09llu", s, frac);
	if (n < 0 || (size_t)n >= len)
		return n;
	while (buf[n - 1] == '0')
		buf[--n] = '\0';
	return n;
}

int prom__escape_label(struct strbuf *out, const char *s)
{
	const char *run = s, *esc;

	for (; *s; s++) {
		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '"')
			esc = "\\\"";
		else if (*s == '\n')
			esc = "\\n";
		else
			continue;
		strbuf__append(out, run, s - run);
		strbuf__puts(out, esc);
		run = s + 1;
	}
	return strbuf__append(out, run, s - run);
}

/* HELP text: 0.0.4 escapes \\ and \n only; OpenMetrics' escaped-string also \". */
static void render__help_text(struct render *r, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			strbuf__puts(r->out, "\\\\");
		else if (*s == '\n')
			strbuf__puts(r->out, "\\n");
		else if (*s == '"' && r->om)
			strbuf__puts(r->out, "\\\"");
		else
			strbuf__putc(r->out, *s);
	}
}

static size_t suffix_len(const char *name, const char *suffix)
{
	size_t n = strlen(name), k = strlen(suffix);

	return n > k && !strcmp(name + n - k, suffix) ? k : 0;
}

/*
 * HELP and TYPE of one family. name is the sample name as in docs/design.md; OpenMetrics names the
 * family without the _total of a counter (and the _info of an info).
 */
static void render__family(struct render *r, const char *name, enum fam_type type,
			   const char *help)
{
	static const char *const types[] = {
		[FAM_COUNTER] = "counter",
		[FAM_GAUGE] = "gauge",
		[FAM_HISTOGRAM] = "histogram",
		[FAM_INFO] = "gauge",
	};
	int len = strlen(name);
	const char *tname = types[type];

	if (r->om && type == FAM_COUNTER)
		len -= suffix_len(name, "_total");
	if (r->om && type == FAM_INFO) {
		len -= suffix_len(name, "_info");
		tname = "info";
	}
	strbuf__printf(r->out, "# HELP %.*s ", len, name);
	render__help_text(r, help);
	strbuf__printf(r->out, "\n# TYPE %.*s %s\n", len, name, tname);
}

static void render__vm_u64(struct render *r, const char *name, const struct model_vm *vm,
			   __u64 v)
{
	strbuf__printf(r->out, "%s{vm=\"%u\"} %llu\n", name, vm->pid, (unsigned long long)v);
}

/* A per-VM family with one sample per VM; field picks the counter from the view. */
static void render__per_vm_if(struct render *r, const char *name, enum fam_type type,
			      const char *help, bool emit, size_t field)
{
	size_t i;

	render__family(r, name, type, help);
	for (i = 0; emit && i < r->nr_vms; i++)
		render__vm_u64(r, name, r->vms[i],
			       *(const __u64 *)((const char *)r->vms[i] + field));
}

#define PER_VM(r, name, type, help, member) \
	render__per_vm_if(r, name, type, help, true, offsetof(struct model_vm, member))
/* samples only once the model has seen a record of kind: no zero per VM on kernels without it */
#define PER_VM_IF_SEEN(r, name, type, help, kind, member) \
	render__per_vm_if(r, name, type, help, (r)->t->by_kind[kind] > 0, \
			  offsetof(struct model_vm, member))

static void render__per_source(struct render *r, const char *name, const char *help,
			       bool emit, size_t field)
{
	const __u64 *v;
	unsigned int s;
	size_t i;

	render__family(r, name, FAM_COUNTER, help);
	for (i = 0; emit && i < r->nr_vms; i++) {
		v = (const __u64 *)((const char *)r->vms[i] + field);
		for (s = 0; s < GMEM_SRC_MAX; s++)
			strbuf__printf(r->out, "%s{vm=\"%u\",source=\"%s\"} %llu\n", name,
				       r->vms[i]->pid, model__source_name(source_order[s]),
				       (unsigned long long)v[source_order[s]]);
	}
}

static void render__files(struct render *r)
{
	const struct model_file *f;
	size_t i;

	render__family(r, "gmem_file_size_bytes", FAM_GAUGE,
		       "Size of a live guest_memfd file in bytes.");
	for (i = 0; i < r->nr_shown; i++) {
		f = r->files[i];
		strbuf__printf(r->out, "gmem_file_size_bytes{vm=\"%u\",gmem=\"%llu\"} %llu\n",
			       f->vm, (unsigned long long)f->ino,
			       (unsigned long long)f->size_bytes);
	}
	render__family(r, "gmem_populated_bytes", FAM_GAUGE,
		       "Bytes of a live guest_memfd file backed by allocated pages.");
	for (i = 0; i < r->nr_shown; i++) {
		f = r->files[i];
		strbuf__printf(r->out, "gmem_populated_bytes{vm=\"%u\",gmem=\"%llu\"} %llu\n",
			       f->vm, (unsigned long long)f->ino,
			       (unsigned long long)(f->populated_pages * MODEL_PAGE_SIZE));
	}
}

/* A [direction][result] counter of every VM, field its offset in struct model_vm. */
static void render__conversions(struct render *r, const char *name, const char *help,
				size_t field)
{
	const __u64(*conv)[MODEL_RESULT_MAX];
	const struct model_vm *vm;
	unsigned int d, res;
	size_t i;

	render__family(r, name, FAM_COUNTER, help);
	for (i = 0; i < r->nr_vms; i++) {
		__u64 any = 0;

		vm = r->vms[i];
		conv = (const void *)((const char *)vm + field);
		for (d = 0; d < GMEM_DIR_MAX; d++)
			for (res = 0; res < MODEL_RESULT_MAX; res++)
				any |= conv[d][res];
		/* a VM's four series appear with its first attempt (most VMs never convert) */
		if (!any)
			continue;
		for (d = 0; d < GMEM_DIR_MAX; d++) {
			for (res = 0; res < MODEL_RESULT_MAX; res++) {
				strbuf__printf(r->out, "%s{vm=\"%u\",to=\"%s\",result=\"%s\"} ",
					       name, vm->pid, model__dir_name(dir_order[d]),
					       model__result_name(res));
				strbuf__printf(r->out, "%llu\n", (unsigned long long)
					       conv[dir_order[d]][res]);
			}
		}
	}
}

static void render__histo(struct render *r, const char *name, const char *labels,
			  const struct histo *h)
{
	__u64 b[HISTO_PROM_BUCKETS];
	char sum[32];
	unsigned int k;

	histo__prom_buckets(h, b);
	for (k = 0; k < HISTO_PROM_BUCKETS; k++)
		strbuf__printf(r->out, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels, r->le[k],
			       (unsigned long long)b[k]);
	strbuf__printf(r->out, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
		       (unsigned long long)h->count);
	prom__fmt_seconds(sum, sizeof(sum), h->sum);
	strbuf__printf(r->out, "%s_sum{%s} %s\n", name, labels, sum);
	strbuf__printf(r->out, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

static void render__conv_histos(struct render *r, const char *name, const char *help,
				size_t field)
{
	const struct histo *h;
	char labels[64];
	unsigned int d;
	size_t i;

	render__family(r, name, FAM_HISTOGRAM, help);
	for (i = 0; i < r->nr_vms; i++) {
		h = (const struct histo *)((const char *)r->vms[i] + field);
		for (d = 0; d < GMEM_DIR_MAX; d++) {
			/* a series appears with its first observation: 31 zero series per direction
			 * and family for every VM that never converted were most of a scrape */
			if (!h[dir_order[d]].count)
				continue;
			snprintf(labels, sizeof(labels), "vm=\"%u\",to=\"%s\"", r->vms[i]->pid,
				 model__dir_name(dir_order[d]));
			render__histo(r, name, labels, &h[dir_order[d]]);
		}
	}
}

static void render__direct_map(struct render *r)
{
	const struct model_totals *t = r->t;
	unsigned int o;

	render__family(r, "gmem_direct_map_removals_total", FAM_COUNTER,
		       "Pages removed from the kernel direct map, by owner.");
	for (o = 0; o < GMEM_OWNER_MAX; o++)
		strbuf__printf(r->out, "gmem_direct_map_removals_total{owner=\"%s\"} %llu\n",
			       model__owner_name(o), (unsigned long long)t->dmap_removals[o]);
	render__family(r, "gmem_direct_map_restores_total", FAM_COUNTER,
		       "Pages restored to the kernel direct map, by owner.");
	for (o = 0; o < GMEM_OWNER_MAX; o++)
		strbuf__printf(r->out, "gmem_direct_map_restores_total{owner=\"%s\"} %llu\n",
			       model__owner_name(o), (unsigned long long)t->dmap_restores[o]);
	render__family(r, "gmem_host_direct_map_bytes", FAM_GAUGE,
		       "Host direct map size by page size (DirectMap4k/2M/1G), last sample.");
	for (o = 0; o < MODEL_PS_MAX; o++)
		strbuf__printf(r->out, "gmem_host_direct_map_bytes{page_size=\"%s\"} %llu\n",
			       model__page_size_name(o),
			       (unsigned long long)t->host_direct_map_bytes[o]);
}

/* One series per op for every VM; ops point into struct model_vm (rmp[] or tdx[]). */
static void render__ops(struct render *r, const char *name, const char *help, bool emit,
			size_t field, unsigned int nr_ops, const char *(*op_name)(unsigned int))
{
	const __u64 *v;
	unsigned int op;
	size_t i;

	render__family(r, name, FAM_COUNTER, help);
	for (i = 0; emit && i < r->nr_vms; i++) {
		v = (const __u64 *)((const char *)r->vms[i] + field);
		for (op = 0; op < nr_ops; op++)
			strbuf__printf(r->out, "%s{vm=\"%u\",op=\"%s\"} %llu\n", name,
				       r->vms[i]->pid, op_name(op), (unsigned long long)v[op]);
	}
}

/*
 * RMP and TDX ops are vendor-specific: a host has one or the other. Their zeros are emitted
 * for every VM once the model has seen any record of that family, so an SNP host does not
 * carry a TDX zero per VM (and vice versa) while a live family still starts every op at 0.
 */
static void render__transitions(struct render *r)
{
	render__ops(r, "gmem_rmp_transitions_total",
		    "SEV-SNP RMP page-state transitions by operation.",
		    r->t->by_kind[GMEM_EV_RMP], offsetof(struct model_vm, rmp), GMEM_RMP_OP_MAX,
		    model__rmp_op_name);
	render__ops(r, "gmem_tdx_transitions_total",
		    "TDX page-state transitions (SEAMCALLs) by operation.",
		    r->t->by_kind[GMEM_EV_TDX], offsetof(struct model_vm, tdx), GMEM_TDX_OP_MAX,
		    model__tdx_op_name);
	PER_VM_IF_SEEN(r, "gmem_mapping_invalidations_total", FAM_COUNTER,
		       "Guest frame ranges a guest_memfd invalidation (punch, truncate, "
		       "conversion) took out of the VM's mappings, one per memslot range "
		       "(kvm_arch_gmem_invalidate_range: 7.3+, fentry tier).",
		       GMEM_EV_GFN_INVALIDATE, mapping_invalidations);
	PER_VM_IF_SEEN(r, "gmem_mapping_invalidated_pages_total", FAM_COUNTER,
		       "Guest frames (4 KiB) in those ranges, whether or not KVM had mapped them.",
		       GMEM_EV_GFN_INVALIDATE, mapping_invalidated_pages);
}

static void render__hugepages(struct render *r, const char *name, const char *help, bool splits)
{
	const struct model_order_count *oc;
	size_t i, k;

	render__family(r, name, FAM_COUNTER, help);
	for (i = 0; i < r->nr_vms; i++) {
		for (k = 0; k < r->vms[i]->nr_hugepages; k++) {
			oc = &r->vms[i]->hugepages[k];
			strbuf__printf(r->out, "%s{vm=\"%u\",from_order=\"%u\",to_order=\"%u\"} ",
				       name, r->vms[i]->pid, oc->from_order, oc->to_order);
			strbuf__printf(r->out, "%llu\n",
				       (unsigned long long)(splits ? oc->splits : oc->merges));
		}
	}
}

static bool valid_name(const char *s)
{
	const char *p;

	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == ':'))
			return false;
	return true;
}

/* The daemon's stats must not collide with the model's families or with each other. */
static bool reserved_name(const char *name)
{
	static const char *const ours[] = {
		"gmemscope_probe_info", "gmemscope_events_total", "gmemscope_events_dropped_total",
		"gmemscope_file_series_capped", "gmemscope_build_info",
	};
	size_t i;

	if (!strncmp(name, "gmem_", 5))
		return true;
	for (i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		if (!strcmp(name, ours[i]))
			return true;
	return false;
}

static int check_extra(const struct prom_extra *extra)
{
	size_t i, k;

	if (!extra)
		return 0;
	if ((extra->nr_probes && !extra->probes) || (extra->nr_stats && !extra->stats) ||
	    (extra->nr_policy_rows && !extra->policy_rows))
		return -EINVAL;
	for (i = 0; i < extra->nr_policy_rows; i++)
		if (!extra->policy_rows[i].policy || !extra->policy_rows[i].callback ||
		    !extra->policy_rows[i].decision)
			return -EINVAL;
	for (i = 0; i < extra->nr_probes; i++)
		if (!extra->probes[i].event || !extra->probes[i].tier || !extra->probes[i].state)
			return -EINVAL;
	for (i = 0; i < extra->nr_stats; i++) {
		if (!valid_name(extra->stats[i].name) || !extra->stats[i].help ||
		    reserved_name(extra->stats[i].name))
			return -EINVAL;
		for (k = 0; k < i; k++)
			if (!strcmp(extra->stats[k].name, extra->stats[i].name))
				return -EINVAL;
		if (extra->stats[i].type == PROM_STAT_COUNTER &&
		    !suffix_len(extra->stats[i].name, "_total"))
			return -EINVAL;
	}
	if (extra->nr_families && !extra->families)
		return -EINVAL;
	for (i = 0; i < extra->nr_families; i++) {
		const struct prom_family *f = &extra->families[i];

		if (!valid_name(f->name) || strncmp(f->name, "gmem_kvm_", 9) || !f->help ||
		    (f->n && !f->samples) ||
		    (f->type == PROM_STAT_COUNTER && !suffix_len(f->name, "_total")))
			return -EINVAL;
		for (k = 0; k < i; k++)
			if (!strcmp(extra->families[k].name, f->name))
				return -EINVAL;
	}
	return 0;
}

static void render__double(struct render *r, double d);

/* A sample's value and its line end: a float in the shortest exact form, else the integer. */
static void render__value(struct render *r, bool is_float, __u64 u, double d)
{
	if (is_float)
		render__double(r, d);
	else
		strbuf__printf(r->out, "%llu", (unsigned long long)u);
	strbuf__putc(r->out, '\n');
}

/* Per-VM families from outside the model (KVM's binary stats), after the model's own. */
static void render__families(struct render *r, const struct prom_extra *extra)
{
	size_t i, j;

	for (i = 0; extra && i < extra->nr_families; i++) {
		const struct prom_family *f = &extra->families[i];

		render__family(r, f->name, f->type == PROM_STAT_COUNTER ? FAM_COUNTER : FAM_GAUGE,
			       f->help);
		for (j = 0; j < f->n; j++) {
			strbuf__printf(r->out, "%s{vm=\"%u\"} ", f->name, f->samples[j].vm);
			render__value(r, f->samples[j].is_float, f->samples[j].u, f->samples[j].d);
		}
	}
}

/* The shortest text that reads back as the same double. */
static void render__double(struct render *r, double d)
{
	char buf[40];
	int prec;

	if (isnan(d)) {
		strbuf__puts(r->out, "NaN");
		return;
	}
	if (isinf(d)) {
		strbuf__puts(r->out, d > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (prec = 15; prec < 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (prec == 17)
		snprintf(buf, sizeof(buf), "%.17g", d);
	strbuf__puts(r->out, buf);
}

static void render__policy(struct render *r, const struct prom_extra *extra)
{
	const struct prom_policy_row *p;
	size_t i;

	if (!extra || !extra->policy_family)
		return;
	render__family(r, "gmem_policy_decisions_total", FAM_COUNTER,
		       "Decisions the huge-page policy made on the events seen, by policy, "
		       "callback and answer.");
	for (i = 0; i < extra->nr_policy_rows; i++) {
		p = &extra->policy_rows[i];
		strbuf__puts(r->out, "gmem_policy_decisions_total{policy=\"");
		prom__escape_label(r->out, p->policy);
		strbuf__puts(r->out, "\",callback=\"");
		prom__escape_label(r->out, p->callback);
		strbuf__puts(r->out, "\",decision=\"");
		prom__escape_label(r->out, p->decision);
		strbuf__printf(r->out, "\"} %llu\n", (unsigned long long)p->count);
	}
}

static void render__self(struct render *r, const struct prom_extra *extra)
{
	const struct prom_probe_row *p;
	const struct prom_stat *s;
	size_t i;

	render__family(r, "gmemscope_probe_info", FAM_INFO,
		       "Probe coverage: one series per logical event with the tier chosen and its "
		       "state.");
	for (i = 0; extra && i < extra->nr_probes; i++) {
		p = &extra->probes[i];
		strbuf__puts(r->out, "gmemscope_probe_info{event=\"");
		prom__escape_label(r->out, p->event);
		strbuf__puts(r->out, "\",tier=\"");
		prom__escape_label(r->out, p->tier);
		strbuf__puts(r->out, "\",state=\"");
		prom__escape_label(r->out, p->state);
		strbuf__puts(r->out, "\"} 1\n");
	}
	render__family(r, "gmemscope_events_total", FAM_COUNTER,
		       "Event records applied to the model.");
	strbuf__printf(r->out, "gmemscope_events_total %llu\n",
		       (unsigned long long)r->t->events);
	render__family(r, "gmemscope_events_dropped_total", FAM_COUNTER,
		       "Event records lost before reaching the model (ring buffer full, or a "
		       "probe run the kernel skipped).");
	strbuf__printf(r->out, "gmemscope_events_dropped_total %llu\n",
		       (unsigned long long)r->t->events_dropped);
	render__family(r, "gmemscope_file_series_capped", FAM_GAUGE,
		       "Files whose gmem_file_size_bytes and gmem_populated_bytes series this "
		       "scrape left out (max_file_series cap).");
	strbuf__printf(r->out, "gmemscope_file_series_capped %llu\n",
		       (unsigned long long)(r->nr_files - r->nr_shown));

	if (extra && extra->build_version) {
		render__family(r, "gmemscope_build_info", FAM_INFO,
			       "The build serving these metrics: version, git revision, libbpf.");
		strbuf__puts(r->out, "gmemscope_build_info{version=\"");
		prom__escape_label(r->out, extra->build_version);
		strbuf__puts(r->out, "\",revision=\"");
		prom__escape_label(r->out, extra->build_revision ? extra->build_revision : "unknown");
		strbuf__puts(r->out, "\",libbpf=\"");
		prom__escape_label(r->out, extra->build_libbpf ? extra->build_libbpf : "unknown");
		strbuf__puts(r->out, "\"} 1\n");
	}
	for (i = 0; extra && i < extra->nr_stats; i++) {
		s = &extra->stats[i];
		render__family(r, s->name,
			       s->type == PROM_STAT_COUNTER ? FAM_COUNTER : FAM_GAUGE, s->help);
		strbuf__printf(r->out, "%s ", s->name);
		render__value(r, s->is_float, s->u, s->d);
	}
}

/* One series per VM the model holds, retired with it: the name is user-controlled (a VMM's
 * command line), so it is escaped, and it never multiplies the other families' series. */
static void render__vm_info(struct render *r)
{
	size_t i;

	render__family(r, "gmem_vm_info", FAM_INFO,
		       "A VM's name, read from its VMM's command line (qemu -name guest=, --name, "
		       "--id) or else its comm when gmemscope first met the VM; empty when "
		       "unknown. Join on vm to show names.");
	for (i = 0; i < r->nr_vms; i++) {
		strbuf__printf(r->out, "gmem_vm_info{vm=\"%u\",name=\"", r->vms[i]->pid);
		prom__escape_label(r->out, r->vms[i]->name);
		strbuf__puts(r->out, "\"} 1\n");
	}
}

static void render__model(struct render *r)
{
	bool faults = r->t->by_kind[GMEM_EV_FAULT];
	unsigned int k;
	size_t i;

	render__vm_info(r);
	PER_VM(r, "gmem_files", FAM_GAUGE, "Live guest_memfd files.", files);
	PER_VM(r, "gmem_files_created_total", FAM_COUNTER, "guest_memfd files created.",
	       files_created);
	PER_VM(r, "gmem_files_released_total", FAM_COUNTER, "guest_memfd files released.",
	       files_released);
	render__files(r);
	render__per_source(r, "gmem_pages_allocated_total",
			   "Pages allocated into guest_memfd files, by who made them exist.", true,
			   offsetof(struct model_vm, pages_allocated));
	PER_VM(r, "gmem_pages_freed_total", FAM_COUNTER, "Pages freed from guest_memfd files.",
	       pages_freed);
	render__family(r, "gmem_events_dropped_total", FAM_COUNTER,
		       "Records about this VM (its process was running) that found the ring buffer "
		       "full, by kind: its other counters are short by these. Host-wide drops are "
		       "gmemscope_events_dropped_total.");
	for (i = 0; i < r->nr_vms; i++)
		for (k = 1; k < GMEM_EV_KIND_MAX; k++)
			if (r->vms[i]->dropped[k])
				strbuf__printf(r->out,
					       "gmem_events_dropped_total{vm=\"%u\",kind=\"%s\"} "
					       "%llu\n", r->vms[i]->pid, model__kind_name(k),
					       (unsigned long long)r->vms[i]->dropped[k]);
	PER_VM(r, "gmem_punch_holes_total", FAM_COUNTER, "Successful hole punches.",
	       punch_holes);
	PER_VM(r, "gmem_invalidated_bytes_total", FAM_COUNTER,
	       "Bytes invalidated by hole punches: each punch's range clipped to the file's size "
	       "(a punch past EOF invalidates nothing).",
	       invalidated_bytes);
	/* Fault zeros only once faults are seen: they need the fentry tier, and a zero where the
	 * hook is missing would be a silent zero (gmemscope_probe_info reports the gap). */
	render__per_source(r, "gmem_faults_total", "guest_memfd faults (fentry tier), by source.",
			   faults, offsetof(struct model_vm, faults));
	PER_VM(r, "gmem_memslot_binds_total", FAM_COUNTER,
	       "Successful bindings of guest_memfd ranges to memslots.", memslot_binds);
	render__conversions(r, "gmem_conversions_total",
			    "Memory attribute conversions (KVM_SET_MEMORY_ATTRIBUTES calls, and "
			    "KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd fd) by direction and "
			    "result.", offsetof(struct model_vm, conversions));
	render__conversions(r, "gmem_conversions_in_place_total",
			    "Of those, in-place conversions: KVM_SET_MEMORY_ATTRIBUTES2 on a "
			    "guest_memfd fd (a kernel without them answers ENOTTY: result "
			    "error).", offsetof(struct model_vm, conversions_in_place));
	render__conv_histos(r, "gmem_conversion_seconds",
			    "Kernel time of successful conversions (the attributes call).",
			    offsetof(struct model_vm, conversion_ns));
	render__conv_histos(r, "gmem_conversion_exit_to_entry_seconds",
			    "Conversions end to end: from the vCPU exit that asked to its next "
			    "entry, by the direction converted to.",
			    offsetof(struct model_vm, exit_to_entry_ns));
	render__direct_map(r);
	render__transitions(r);
	render__hugepages(r, "gmem_hugepage_splits_total", "Huge folio splits by order.", true);
	render__hugepages(r, "gmem_hugepage_merges_total", "Huge folio merges by order.", false);
}

static int collect_vm(const struct model_vm *vm, void *ctx)
{
	struct render *r = ctx;

	r->vms[r->nr_vms++] = vm;
	return 0;
}

static int collect_file(const struct model_file *f, void *ctx)
{
	struct render *r = ctx;

	r->files[r->nr_files++] = f;
	return 0;
}

int prom__render(const struct model *m, const struct prom_extra *extra, struct strbuf *out,
		 bool openmetrics)
{
	struct render r = { .out = out, .om = openmetrics, .m = m, .t = model__totals(m) };
	size_t len0 = out->len, cap;
	unsigned int k;
	int err;

	if (out->err)
		return out->err;
	err = check_extra(extra);
	if (err)
		return err;
	r.vms = malloc((model__nr_vms(m) + 1) * sizeof(*r.vms));
	r.files = malloc((model__nr_files(m) + 1) * sizeof(*r.files));
	if (!r.vms || !r.files) {
		err = -ENOMEM;
		goto cleanup;
	}
	err = model__for_each_vm(m, collect_vm, &r);
	if (err)
		goto cleanup;
	err = model__for_each_file(m, NULL, collect_file, &r);
	if (err)
		goto cleanup;
	/* The cap keeps the lowest (vm, ino): stable from scrape to scrape while files live. */
	cap = model__opts(m)->max_file_series;
	r.nr_shown = cap && r.nr_files > cap ? cap : r.nr_files;
	for (k = 0; k < HISTO_PROM_BUCKETS; k++)
		prom__fmt_seconds(r.le[k], sizeof(r.le[k]), 1ull << (HISTO_PROM_FIRST + k));

	render__model(&r);
	render__policy(&r, extra);
	render__families(&r, extra);
	render__self(&r, extra);
	if (openmetrics)
		strbuf__puts(out, "# EOF\n");
	err = out->err;
cleanup:
	if (err) {
		strbuf__truncate(out, len0);
		out->err = 0;
	}
	free(r.vms);
	free(r.files);
	return err;
}
