// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * report.c - gmemtrace report: a recording read through gmemd's model, as text or JSON.
 */
#include <argp.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "histo.h"
#include "kvmstats.h"
#include "model.h"
#include "recording.h"

#include "gmemtrace.h"

/* ---- reading a whole recording through a model -------------------------------------------- */

/* A file as the model last saw it, kept when its release drops it from the model. */
struct gone_file {
	struct model_file f;
	__u64 released_ts;
};

struct readout {
	__u64 records;
	__u64 first_ts, last_ts;
	__u64 scenario, synth;
	bool any;
	int status;
	struct gone_file *gone;
	size_t ngone, cap_gone;
};

static void keep_released(struct readout *o, const struct model *m, const struct gmem_event *e)
{
	const struct model_file *f = model__file(m, e->ino);
	struct gone_file *ng;

	if (!f)
		return;
	if (o->ngone == o->cap_gone) {
		size_t cap = o->cap_gone ? o->cap_gone * 2 : 16;

		ng = realloc(o->gone, cap * sizeof(*ng));
		if (!ng)
			return;
		o->gone = ng;
		o->cap_gone = cap;
	}
	o->gone[o->ngone++] = (struct gone_file){ .f = *f, .released_ts = e->ts_ns };
}

static int read_into_model(struct recording *r, struct model *m, struct kvmstats *kvm,
			   struct readout *o, __u32 only_vm)
{
	const struct gmem_event *recs;
	struct u64set inos = {};
	size_t n, i;
	int st;

	/* o accumulates: a rotated set is read file after file into one model and readout */
	while ((st = recording__next(r, &recs, &n)) > 0) {
		for (i = 0; i < n; i++) {
			const struct gmem_event *e = &recs[i];

			if (only_vm && !vm_filter_keep(&inos, &only_vm, 1, e))
				continue;
			if (e->kind == GMEM_EV_FILE_RELEASE)
				keep_released(o, m, e);
			model__apply(m, e);
			kvmstats__apply(kvm, e);
			if (!o->any || e->ts_ns < o->first_ts)
				o->first_ts = e->ts_ns;
			if (e->ts_ns > o->last_ts)
				o->last_ts = e->ts_ns;
			o->any = true;
			o->records++;
			if (e->flags & GMEM_EVF_SCENARIO)
				o->scenario++;
			if (e->flags & GMEM_EVF_SYNTH)
				o->synth++;
		}
	}
	o->status = st;
	free(inos.slots);
	return st;
}

/* ---- report ------------------------------------------------------------------------------ */

#define REPORT_MAX_FILES 1024

static struct report_env {
	const char *file; /* the first of files[] */
	const char *files[REPORT_MAX_FILES];
	size_t nfiles;
	bool json;
	__u32 vm;
} rep_env;

/* The recordings a report reads as one: one file, or a rotated set in sequence order. */
struct rset {
	struct recording *r[REPORT_MAX_FILES];
	const char *path[REPORT_MAX_FILES];
	long long seq[REPORT_MAX_FILES];
	size_t n;
};

static long long rset_seq(struct recording *r)
{
	const json_t *s = json_object_get(json_object_get(recording__meta(r), "recording"),
					  "sequence");

	return json_is_integer(s) ? json_integer_value(s) : -1;
}

static long long rset_started(struct recording *r)
{
	return json_integer_value(json_object_get(json_object_get(recording__meta(r),
								 "recording"),
						  "started_wall_ns"));
}

/*
 * Opens every file; several must be one rotated set (the same recording's FILE.N, whatever
 * order the shell's glob gave), put in sequence order. 0, or 1 having said why.
 */
static int rset_open(struct rset *set, const char *const *paths, size_t n)
{
	size_t i, j;

	memset(set, 0, sizeof(*set));
	for (i = 0; i < n; i++) {
		set->r[i] = open_recording(paths[i]);
		if (!set->r[i])
			return 1;
		set->path[i] = paths[i];
		set->seq[i] = rset_seq(set->r[i]);
		set->n++;
	}
	if (n == 1)
		return 0;
	for (i = 0; i < n; i++) {
		if (set->seq[i] < 0) {
			fprintf(stderr, "gmemtrace: %s is not part of a rotated set (no sequence "
				"number): report several files only from one --rotate-size or "
				"--rotate-time recording\n", paths[i]);
			return 1;
		}
		if (rset_started(set->r[i]) != rset_started(set->r[0])) {
			fprintf(stderr, "gmemtrace: %s and %s are from different recordings\n",
				paths[0], paths[i]);
			return 1;
		}
	}
	for (i = 1; i < n; i++) /* insertion sort by sequence: a handful of files */
		for (j = i; j > 0 && set->seq[j - 1] > set->seq[j]; j--) {
			struct recording *r = set->r[j];
			const char *p = set->path[j];
			long long q = set->seq[j];

			set->r[j] = set->r[j - 1];
			set->path[j] = set->path[j - 1];
			set->seq[j] = set->seq[j - 1];
			set->r[j - 1] = r;
			set->path[j - 1] = p;
			set->seq[j - 1] = q;
		}
	for (i = 1; i < n; i++) {
		if (set->seq[i] == set->seq[i - 1]) {
			fprintf(stderr, "gmemtrace: %s and %s are the same part (%lld) of the set\n",
				set->path[i - 1], set->path[i], set->seq[i]);
			return 1;
		}
		if (set->seq[i] != set->seq[i - 1] + 1)
			fprintf(stderr, "gmemtrace: warning: parts %lld to %lld of the set are missing "
				"between %s and %s: the report has a gap there\n",
				set->seq[i - 1] + 1, set->seq[i] - 1, set->path[i - 1], set->path[i]);
	}
	return 0;
}

static void rset_close(struct rset *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		recording__close(set->r[i]);
}

static bool rset_complete(const struct rset *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (!recording__complete(set->r[i]))
			return false;
	return true;
}

static __u64 rset_sum(const struct rset *set, __u64 (*fn)(const struct recording *))
{
	__u64 t = 0;
	size_t i;

	for (i = 0; i < set->n; i++)
		t += fn(set->r[i]);
	return t;
}

static const char report_doc[] =
	"gmemtrace report: summarise a recording through the model gmemd uses.\n"
	"\n"
	"Every record goes through the model gmemd uses; the report shows per VM and per "
	"file what the exporter would, by event kind, with latency histograms (log2, like "
	"bcc's biolatency) and percentiles. VMs are never retired here: a report covers the "
	"whole recording.\n"
	"\n"
	"Several files must be one rotated set (record --rotate-size or --rotate-time). They "
	"are read as one recording, in sequence order, whatever order the shell gives them in.\n"
	"\n"
	"USAGE: gmemtrace report FILE... [-j] [--vm PID]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace report vm.gmtr\n"
	"  gmemtrace report ring.gmtr.*               # a rotated set, as one\n"
	"  gmemtrace report -j vm.gmtr | jq '.model.vms[].conversion_latency'\n"
	"  gmemtrace report --vm 4242 vm.gmtr";

static const struct argp_option report_opts[] = {
	{ "json", 'j', NULL, 0, "JSON: the recording and the model as gmemd's snapshot has it, plus percentiles", 0 },
	{ "vm", OPT_VM, "PID", 0, "Only this VM's records (with its files' and host-wide ones)",
	  0 },
	{},
};

static error_t report_parse(int key, char *arg, struct argp_state *state)
{
	unsigned long long v;

	switch (key) {
	case 'j':
		rep_env.json = true;
		break;
	case OPT_VM:
		if (cli__parse_ulong(arg, 1, UINT32_MAX, &v))
			argp_error(state, "--vm: '%s' is not a pid", arg);
		rep_env.vm = v;
		break;
	case ARGP_KEY_ARG:
		if (rep_env.nfiles == REPORT_MAX_FILES)
			argp_error(state, "at most %d files", REPORT_MAX_FILES);
		rep_env.files[rep_env.nfiles++] = arg;
		if (!rep_env.file)
			rep_env.file = arg;
		break;
	case ARGP_KEY_END:
		if (!rep_env.file)
			argp_error(state, "which recording? (gmemtrace report FILE...)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

/* bcc's print_log2_hist, for nanoseconds: rows from the first to the last non-empty slot. */
static void print_log2_hist(FILE *f, const struct histo *h)
{
	unsigned int i, lo = HISTO_SLOTS, hi = 0, width;
	__u64 max = 0;
	char stars[41], label[48]; /* two 20-digit bounds and " -> " */

	for (i = 0; i < HISTO_SLOTS; i++) {
		if (!h->slots[i])
			continue;
		if (lo == HISTO_SLOTS)
			lo = i;
		hi = i;
		if (h->slots[i] > max)
			max = h->slots[i];
	}
	if (lo == HISTO_SLOTS)
		return;
	width = hi <= 32 ? 10 : 20;
	fprintf(f, "    %*s%-*s : count    distribution\n", hi <= 32 ? 5 : 15, "",
		hi <= 32 ? 19 : 29, "nsecs");
	for (i = lo; i <= hi; i++) {
		unsigned int n = max ? (unsigned int)(h->slots[i] * 40 / max) : 0;

		memset(stars, '*', n);
		stars[n] = 0;
		fprintf(f, "    %s : %-8llu |%-40s|\n",
			histo__slot_label(i, width, label, sizeof(label)),
			(unsigned long long)h->slots[i], stars);
	}
}

static void print_histo(FILE *f, const char *title, const struct histo *h)
{
	char b[6][24];

	if (!h->count)
		return;
	fprintf(f, "\n  %s: %llu\n    min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", title,
		(unsigned long long)h->count, human_ns(h->min, b[0], 24),
		human_ns(histo__percentile(h, 0.5), b[1], 24),
		human_ns(histo__percentile(h, 0.9), b[2], 24),
		human_ns(histo__percentile(h, 0.99), b[3], 24),
		human_ns(histo__percentile(h, 0.999), b[4], 24), human_ns(h->max, b[5], 24));
	print_log2_hist(f, h);
}

struct report_ctx {
	FILE *f;
	const struct model *m;
	const struct readout *o;
};

static void print_file(FILE *f, const struct model_file *fl, const char *state)
{
	char b1[24], b2[24];

	fprintf(f, "    %-10llu %10s %10s %-10s %-10s %10llu %10llu %8llu %6llu %6llu\n",
		(unsigned long long)fl->ino, human_bytes(fl->size_bytes, b1, sizeof(b1)),
		human_bytes(fl->populated_pages * MODEL_PAGE_SIZE, b2, sizeof(b2)),
		fl->created ? "created" : fl->discovered ? "discovered" : "?", state,
		(unsigned long long)fl->pages_allocated, (unsigned long long)fl->pages_freed,
		(unsigned long long)fl->punch_holes, (unsigned long long)fl->splits,
		(unsigned long long)fl->merges);
}

static int report_file_cb(const struct model_file *fl, void *ctx)
{
	struct report_ctx *c = ctx;

	print_file(c->f, fl, "live");
	return 0;
}

static void print_counts(FILE *f, const char *title, const __u64 *v, unsigned int n,
			 const char *(*name)(unsigned int))
{
	unsigned int i;
	bool any = false;

	for (i = 0; i < n; i++)
		any |= v[i] != 0;
	if (!any)
		return;
	fprintf(f, "  %-20s", title);
	for (i = 0; i < n; i++)
		if (v[i])
			fprintf(f, " %s %llu", name(i), (unsigned long long)v[i]);
	fputc('\n', f);
}

static int report_vm_cb(const struct model_vm *vm, void *ctx)
{
	struct report_ctx *c = ctx;
	const struct model_conv_stats *cs = &vm->conv;
	FILE *f = c->f;
	unsigned int d, i;
	char title[96], b1[24];

	/* the name the recording carries (VM_NAME), as gmemd and gmemtop show it */
	fprintf(f, "\nVM %u%s%s%s   events %llu\n", vm->pid, vm->name[0] ? "  " : "", vm->name,
		vm->gone ? " (exited)" : "", (unsigned long long)vm->events);
	snprintf(b1, sizeof(b1), " (create failed %llu)",
		 (unsigned long long)vm->files_create_failed);
	fprintf(f, "  %-20s created %llu, released %llu, discovered %llu, live %llu%s\n", "files",
		(unsigned long long)vm->files_created, (unsigned long long)vm->files_released,
		(unsigned long long)vm->files_discovered, (unsigned long long)vm->files,
		vm->files_create_failed ? b1 : "");
	fprintf(f, "  %-20s %llu (failed %llu), unbinds %llu\n", "memslot binds",
		(unsigned long long)vm->memslot_binds, (unsigned long long)vm->memslot_bind_failed,
		(unsigned long long)vm->memslot_unbinds);
	print_counts(f, "pages allocated", vm->pages_allocated, GMEM_SRC_MAX, model__source_name);
	fprintf(f, "  %-20s %llu\n", "pages freed", (unsigned long long)vm->pages_freed);
	fprintf(f, "  %-20s %llu (%s invalidated, %llu failed)\n", "punch holes",
		(unsigned long long)vm->punch_holes,
		human_bytes(vm->invalidated_bytes, b1, sizeof(b1)),
		(unsigned long long)vm->punch_hole_failed);
	fprintf(f, "  %-20s %llu (%s, %llu failed)\n", "fallocates",
		(unsigned long long)vm->fallocates,
		human_bytes(vm->fallocated_bytes, b1, sizeof(b1)),
		(unsigned long long)vm->fallocate_failed);
	print_counts(f, "faults", vm->faults, GMEM_SRC_MAX, model__source_name);
	for (d = 0; d < GMEM_DIR_MAX; d++)
		if (vm->conversions[d][0] || vm->conversions[d][1])
			fprintf(f, "  conversions to %-5s ok %llu, error %llu\n",
				model__dir_name(d),
				(unsigned long long)vm->conversions[d][MODEL_RESULT_OK],
				(unsigned long long)vm->conversions[d][MODEL_RESULT_ERROR]);
	if (cs->requests || cs->unmatched_attr || cs->unmatched_resume)
		fprintf(f, "  %-20s %llu: completed %llu, abandoned %llu, superseded %llu, "
			"evicted %llu, unfinished %llu, pending %llu; unmatched attr %llu, resume "
			"%llu\n", "conversion requests", (unsigned long long)cs->requests,
			(unsigned long long)cs->completed, (unsigned long long)cs->abandoned,
			(unsigned long long)cs->superseded, (unsigned long long)cs->evicted,
			(unsigned long long)cs->unfinished, (unsigned long long)cs->pending,
			(unsigned long long)cs->unmatched_attr,
			(unsigned long long)cs->unmatched_resume);
	print_counts(f, "rmp transitions", vm->rmp, GMEM_RMP_OP_MAX, model__rmp_op_name);
	print_counts(f, "tdx transitions", vm->tdx, GMEM_TDX_OP_MAX, model__tdx_op_name);
	for (i = 0; i < vm->nr_hugepages; i++)
		fprintf(f, "  huge pages %2u -> %-2u    splits %llu, merges %llu\n",
			vm->hugepages[i].from_order, vm->hugepages[i].to_order,
			(unsigned long long)vm->hugepages[i].splits,
			(unsigned long long)vm->hugepages[i].merges);
	print_histo(f, "fault latency (fentry)", &vm->fault_ns);
	for (d = 0; d < GMEM_DIR_MAX; d++) {
		snprintf(title, sizeof(title), "conversion to %s, kernel part (attributes call)",
			 model__dir_name(d));
		print_histo(f, title, &vm->conversion_ns[d]);
	}
	for (d = 0; d < GMEM_DIR_MAX; d++) {
		snprintf(title, sizeof(title),
			 "conversion to %s, end to end (vCPU exit to its next entry)",
			 model__dir_name(d));
		print_histo(f, title, &vm->exit_to_entry_ns[d]);
	}
	for (i = 0; i < c->o->ngone && !vm->files; i++)
		if (c->o->gone[i].f.vm == vm->pid)
			break;
	if (vm->files || i < c->o->ngone) {
		/* populated: now for a live file, when released for the others */
		fprintf(f, "\n  files:\n    %-10s %10s %10s %-10s %-10s %10s %10s %8s %6s %6s\n",
			"INO", "SIZE", "POPULATED", "ORIGIN", "STATE", "ALLOCATED", "FREED",
			"PUNCHES", "SPLITS", "MERGES");
		model__for_each_file(c->m, vm, report_file_cb, c);
		for (i = 0; i < c->o->ngone; i++)
			if (c->o->gone[i].f.vm == vm->pid)
				print_file(f, &c->o->gone[i].f, "released");
	}
	return 0;
}

static void report_text(FILE *f, const struct rset *set, const struct model *m,
			const struct readout *o)
{
	struct recording *r = set->r[0];
	const char *path = set->path[0];
	__u64 size = rset_sum(set, recording__size);
	const json_t *meta = recording__meta(r), *host = json_object_get(meta, "host"),
		     *src = json_object_get(meta, "source"),
		     *scen = json_object_get(meta, "scenario"),
		     *filter = json_object_get(json_object_get(meta, "recording"), "vm_filter");
	const struct model_totals *t = model__totals(m);
	const struct model_anomalies *a = &t->anomalies;
	struct report_ctx c = { .f = f, .m = m, .o = o };
	char b1[32], b2[32];
	unsigned int k;

	if (set->n > 1)
		fprintf(f, "recording  %s .. %s: a rotated set of %zu files (parts %lld to %lld), "
			"read as one\n", path, set->path[set->n - 1], set->n, set->seq[0],
			set->seq[set->n - 1]);
	fprintf(f, "recording  %s: %s, %llu chunks, %llu events, %s (%.2f bytes/event)\n",
		set->n > 1 ? "all" : path, rset_complete(set) ? "complete" : "INCOMPLETE",
		(unsigned long long)rset_sum(set, recording__chunks_read),
		(unsigned long long)o->records, human_bytes(size, b1, sizeof(b1)),
		o->records ? (double)size / o->records : 0.0);
	fprintf(f, "span       %s (%s of recorded time)\n",
		json_string_value(json_object_get(json_object_get(json_object_get(meta, "clock"),
								  "anchor"),
						  "realtime_utc")) ?: "?",
		human_ns(o->any ? o->last_ts - o->first_ts : 0, b2, sizeof(b2)));
	if (host)
		fprintf(f, "host       %s %s %s\n",
			json_string_value(json_object_get(host, "nodename")) ?: "?",
			json_string_value(json_object_get(host, "release")) ?: "?",
			json_string_value(json_object_get(host, "machine")) ?: "?");
	if (src)
		fprintf(f, "source     %s%s%s\n",
			json_string_value(json_object_get(src, "kind")) ?: "?",
			json_object_get(src, "socket") ? " at " : "",
			json_string_value(json_object_get(src, "socket")) ?: "");
	if (json_array_size(filter)) {
		size_t i;
		json_t *v;

		fprintf(f, "vm filter ");
		json_array_foreach(filter, i, v)
			fprintf(f, " %lld", json_integer_value(v));
		fputc('\n', f);
	}
	if (scen)
		fprintf(f, "scenario   %s: %s\n           CONSTRUCTED (%llu of %llu records "
			"flagged SCENARIO); follows %s\n",
			json_string_value(json_object_get(scen, "name")) ?: "?",
			json_string_value(json_object_get(scen, "summary")) ?: "",
			(unsigned long long)o->scenario, (unsigned long long)o->records,
			json_string_value(json_object_get(scen, "source")) ?: "?");
	fprintf(f, "events     %llu applied, %llu dropped (LOST), %llu of kinds this build does "
		"not know\n", (unsigned long long)t->events, (unsigned long long)t->events_dropped,
		(unsigned long long)t->unknown_kinds);

	fprintf(f, "\nEVENTS BY KIND\n");
	for (k = 1; k < GMEM_EV_KIND_MAX; k++)
		if (t->by_kind[k])
			fprintf(f, "  %-16s %llu\n", model__kind_name(k),
				(unsigned long long)t->by_kind[k]);
	model__for_each_vm(m, report_vm_cb, &c);
	fprintf(f, "\nHOST\n");
	for (k = 0; k < GMEM_OWNER_MAX; k++)
		if (t->dmap_removals[k] || t->dmap_restores[k])
			fprintf(f, "  direct map (%s)  removed %llu pages, restored %llu pages\n",
				model__owner_name(k), (unsigned long long)t->dmap_removals[k],
				(unsigned long long)t->dmap_restores[k]);
	fprintf(f, "  DirectMap (last sample)  4k %s, 2M %s, 1G %s\n",
		human_bytes(t->host_direct_map_bytes[0], b1, sizeof(b1)),
		human_bytes(t->host_direct_map_bytes[1], b2, sizeof(b2)),
		human_bytes(t->host_direct_map_bytes[2], b1 + 16, 16));
	if (a->populated_underflow || a->untracked_file || a->release_untracked ||
	    a->ino_reowned || a->bad_sub || a->late_events || a->nomem)
		fprintf(f, "  anomalies: populated_underflow %llu, untracked_file %llu, "
			"release_untracked %llu, ino_reowned %llu, bad_sub %llu, late %llu, nomem "
			"%llu\n", (unsigned long long)a->populated_underflow,
			(unsigned long long)a->untracked_file,
			(unsigned long long)a->release_untracked,
			(unsigned long long)a->ino_reowned, (unsigned long long)a->bad_sub,
			(unsigned long long)a->late_events, (unsigned long long)a->nomem);
}

static void print_kvm_values(FILE *f, const char *title, const json_t *o)
{
	const char *name;
	json_t *v;
	int col = 23;

	if (!json_object_size(o))
		return;
	fprintf(f, "  %-20s", title);
	json_object_foreach((json_t *)o, name, v) {
		int w = (int)strlen(name) + 22;

		if (col + w > 100) {
			fprintf(f, "\n  %-20s", "");
			col = 23;
		}
		col += fprintf(f, " %s %lld", name, json_integer_value(v));
	}
	fputc('\n', f);
}

/*
 * KVM's binary stats as gmemd sampled them on its tick: the last values per VM (vCPU
 * cumulative stats summed, as /metrics has them), each vCPU's, and the mapping mix over time.
 */
static void report_kvm_text(FILE *f, const struct kvmstats *kvm)
{
	json_t *vms = kvmstats__report_json(kvm), *v, *c, *mix, *one;
	const char *name;
	size_t i, j;
	char title[32], b1[24];

	if (json_array_size(vms))
		fprintf(f, "\nKVM STATS (KVM_GET_STATS_FD, sampled on gmemd's tick; last values)\n");
	json_array_foreach(vms, i, v) {
		fprintf(f, "\nVM %lld%s   %lld samples over %s\n",
			json_integer_value(json_object_get(v, "vm")),
			json_is_true(json_object_get(v, "gone")) ? " (exited)" : "",
			json_integer_value(json_object_get(v, "samples")),
			human_ns((double)(json_integer_value(json_object_get(v, "last_ns")) -
					  json_integer_value(json_object_get(v, "first_ns"))),
				 b1, sizeof(b1)));
		print_kvm_values(f, "vCPUs (summed)", json_object_get(v, "vcpu_totals"));
		print_kvm_values(f, "VM", json_object_get(v, "vm_stats"));
		mix = json_object_get(v, "mapping");
		if (json_object_size(mix))
			fprintf(f, "  %-20s %10s %10s %10s %10s\n", "mapping mix (pages)",
				"FIRST", "LAST", "MIN", "MAX");
		json_object_foreach(mix, name, one)
			fprintf(f, "    %-18s %10lld %10lld %10lld %10lld\n", name,
				json_integer_value(json_object_get(one, "first")),
				json_integer_value(json_object_get(one, "last")),
				json_integer_value(json_object_get(one, "min")),
				json_integer_value(json_object_get(one, "max")));
		json_array_foreach(json_object_get(v, "vcpus"), j, c) {
			snprintf(title, sizeof(title), "vCPU %lld",
				 json_integer_value(json_object_get(c, "vcpu")));
			print_kvm_values(f, title, json_object_get(c, "stats"));
		}
	}
	if (kvmstats__bad_records(kvm))
		fprintf(f, "  %llu KVM stat records could not be used (an id no DESC named)\n",
			(unsigned long long)kvmstats__bad_records(kvm));
	json_decref(vms);
}

/* Files the recording saw released: the model forgets them, the report does not. */
static json_t *gone_json(const struct readout *o)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < o->ngone; i++) {
		const struct model_file *f = &o->gone[i].f;

		json_array_append_new(arr, json_pack(
			"{s:I, s:I, s:I, s:I, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			"s:I}", "ino", (json_int_t)f->ino, "vm", (json_int_t)f->vm, "size_bytes",
			(json_int_t)f->size_bytes, "populated_pages_at_release",
			(json_int_t)f->populated_pages, "created", f->created, "discovered",
			f->discovered, "first_ts_ns", (json_int_t)f->first_ts_ns,
			"released_ts_ns", (json_int_t)o->gone[i].released_ts, "pages_allocated",
			(json_int_t)f->pages_allocated, "pages_freed", (json_int_t)f->pages_freed,
			"punch_holes", (json_int_t)f->punch_holes, "invalidated_bytes",
			(json_int_t)f->invalidated_bytes, "faults", (json_int_t)f->faults, "binds",
			(json_int_t)f->binds, "splits", (json_int_t)f->splits, "merges",
			(json_int_t)f->merges));
	}
	return arr;
}

/* model__to_json() gives p50 and p99; a report adds p90 and p99.9 to each histogram. */
static void add_percentiles(json_t *h, const struct histo *src)
{
	if (!json_is_object(h))
		return;
	json_object_set_new(h, "p90_ns", json_integer(histo__percentile(src, 0.9)));
	json_object_set_new(h, "p999_ns", json_integer(histo__percentile(src, 0.999)));
}

static json_t *report_json(const struct rset *set, const struct model *m,
			   const struct readout *o)
{
	struct recording *r = set->r[0];
	const char *path = set->path[0];
	json_t *root = json_object(), *model = model__to_json(m), *vms, *v, *files = json_array();
	size_t i;
	unsigned int d;

	vms = json_object_get(model, "vms");
	json_array_foreach(vms, i, v) {
		const struct model_vm *vm =
			model__vm(m, json_integer_value(json_object_get(v, "vm")));

		if (!vm)
			continue;
		add_percentiles(json_object_get(v, "fault_latency"), &vm->fault_ns);
		for (d = 0; d < GMEM_DIR_MAX; d++) {
			add_percentiles(json_object_get(json_object_get(v, "conversion_latency"),
							model__dir_name(d)),
					&vm->conversion_ns[d]);
			add_percentiles(json_object_get(json_object_get(v,
									"conversion_exit_to_entry"),
							model__dir_name(d)),
					&vm->exit_to_entry_ns[d]);
		}
	}
	json_object_set_new(root, "recording",
			    json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:O}",
				      "path", path, "complete", rset_complete(set), "chunks",
				      (json_int_t)rset_sum(set, recording__chunks_read), "records",
				      (json_int_t)o->records, "bytes",
				      (json_int_t)rset_sum(set, recording__size), "first_ts_ns",
				      (json_int_t)o->first_ts, "last_ts_ns",
				      (json_int_t)o->last_ts, "scenario_records",
				      (json_int_t)o->scenario, "synth_records",
				      (json_int_t)o->synth, "error", recording__error(r), "meta",
				      recording__meta(r)));
	/* the set's files, in the order read: one entry for a single file */
	for (i = 0; i < set->n; i++)
		json_array_append_new(files, json_pack("{s:s, s:I, s:b, s:I, s:I, s:s}", "path",
			set->path[i], "sequence", (json_int_t)set->seq[i], "complete",
			recording__complete(set->r[i]), "chunks",
			(json_int_t)recording__chunks_read(set->r[i]), "bytes",
			(json_int_t)recording__size(set->r[i]), "error",
			recording__error(set->r[i])));
	json_object_set_new(json_object_get(root, "recording"), "files", files);
	json_object_set_new(root, "model", model ? model : json_null());
	json_object_set_new(root, "released_files", gone_json(o));
	return root;
}

int do_report(int argc, char **argv)
{
	static const struct argp argp = { report_opts, report_parse, NULL, report_doc, cli__std_children, NULL, NULL };
	struct model_opts mo = { .retire_after_ns = ~0ull };
	static struct rset set;
	struct kvmstats *kvm = NULL;
	struct model *m = NULL;
	struct readout o = {};
	int ret = 1, st[REPORT_MAX_FILES];
	size_t i;

	rep_env = (struct report_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	if (rset_open(&set, rep_env.files, rep_env.nfiles))
		goto cleanup;
	m = model__new(&mo);
	if (!m)
		goto cleanup;
	if (kvmstats__new_replay(&kvm))
		goto cleanup;
	for (i = 0; i < set.n; i++)
		st[i] = read_into_model(set.r[i], m, kvm, &o, rep_env.vm);
	if (rep_env.json) {
		json_t *j = report_json(&set, m, &o);

		json_object_set_new(j, "kvm_stats", kvmstats__report_json(kvm));
		json_object_set_new(j, "kvm_stats_bad_records",
				    json_integer((json_int_t)kvmstats__bad_records(kvm)));
		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
	} else {
		report_text(stdout, &set, m, &o);
		report_kvm_text(stdout, kvm);
	}
	fflush(stdout);
	ret = 0;
	for (i = 0; i < set.n; i++)
		ret |= read_status(set.path[i], set.r[i], st[i]);
cleanup:
	free(o.gone);
	kvmstats__free(kvm);
	model__free(m);
	rset_close(&set);
	return ret;
}
