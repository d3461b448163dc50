// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * probe.c - the table of logical events and the sources that can serve them, and the choice
 * between them. Facts come from outside (see probe.h); nothing here touches the kernel.
 */
#include <stdio.h>
#include <string.h>

#include "probe.h"

#define TRACEFS(p, t) { .prog = p, .target = t, .need = NEED_TRACEFS }
#define TRACEFS_OPT(p, t) { .prog = p, .target = t, .need = NEED_TRACEFS, .optional = true }
#define TPBTF(p, t) { .prog = p, .target = t, .need = NEED_TP_BTF }
#define FUNC(p, t) { .prog = p, .target = t, .need = NEED_FUNC }
#define FUNC_OPT(p, t) { .prog = p, .target = t, .need = NEED_FUNC, .optional = true }
#define ITER(p, t) { .prog = p, .target = t, .need = NEED_ITER }

#define IOCTL_PAIR TRACEFS("handle_ioctl_enter", "syscalls/sys_enter_ioctl"), \
		   TRACEFS("handle_ioctl_exit", "syscalls/sys_exit_ioctl")
/* The same calls seen from KVM's own functions: with these on the fentry tier, no program runs
 * on the host's other ioctls (the syscall tracepoints cost every ioctl, see bench/hostcost). */
#define KVM_RUN_PAIR FUNC("handle_vcpu_run_entry", "kvm_arch_vcpu_ioctl_run"), \
		     FUNC("handle_vcpu_run_exit", "kvm_arch_vcpu_ioctl_run")
#define VM_IOCTL_PAIR FUNC("handle_vm_ioctl_entry", "kvm_vm_ioctl"), \
		      FUNC("handle_vm_ioctl_exit", "kvm_vm_ioctl")

const struct probe_event_def probe_events[] = {
	{ "create", "guest_memfd files created",
	  .tp = { IOCTL_PAIR },
	  .fentry = { FUNC("handle_gmem_create", "kvm_gmem_create") } },
	{ "bind", "memslots bound to a guest_memfd",
	  .tp = { IOCTL_PAIR },
	  .fentry = { FUNC("handle_gmem_bind", "kvm_gmem_bind"),
		      FUNC_OPT("handle_gmem_unbind", "kvm_gmem_unbind") } },
	{ "discover", "files that existed before we started",
	  .tp = { ITER("scan_files", "task_file"), ITER("scan_vmas", "task_vma") } },
	{ "release", "guest_memfd files released",
	  .tp = { ITER("scan_files", "task_file"), ITER("scan_vmas", "task_vma"),
		  TRACEFS_OPT("handle_close_enter", "syscalls/sys_enter_close") },
	  .fentry = { FUNC("handle_gmem_release", "kvm_gmem_release") } },
	{ "page_alloc", "folios added, by source (user/guest fault, fallocate, populate)",
	  .tp = { TPBTF("handle_folio_add", "mm_filemap_add_to_page_cache"), IOCTL_PAIR,
		  TRACEFS("handle_fallocate_enter", "syscalls/sys_enter_fallocate") },
	  /* the folio hook is the tracepoint object's either way; the call context it reads
	   * comes from KVM's and guest_memfd's functions instead of the syscalls */
	  .fentry = { TPBTF("handle_folio_add", "mm_filemap_add_to_page_cache"), KVM_RUN_PAIR,
		      FUNC("handle_gmem_fallocate_entry", "kvm_gmem_fallocate"),
		      FUNC("handle_gmem_fallocate_exit", "kvm_gmem_fallocate"),
		      FUNC_OPT("handle_gmem_populate_entry", "kvm_gmem_populate"),
		      FUNC_OPT("handle_gmem_populate_exit", "kvm_gmem_populate") } },
	{ "fault", "every gmem fault with its latency",
	  .fentry = { FUNC("handle_get_pfn_entry", "kvm_gmem_get_pfn"),
		      FUNC("handle_get_pfn_exit", "kvm_gmem_get_pfn"),
		      FUNC_OPT("handle_user_fault_entry", "kvm_gmem_fault_user_mapping"),
		      FUNC_OPT("handle_user_fault_exit", "kvm_gmem_fault_user_mapping") } },
	{ "prepare", "arch prepare of a gmem folio (SNP)",
	  /* 7.3: kvm_arch_gmem_prepare became kvm_arch_gmem_make_private; either serves */
	  .fentry = { FUNC_OPT("handle_gmem_prepare", "kvm_arch_gmem_prepare"),
		      FUNC_OPT("handle_gmem_make_private", "kvm_arch_gmem_make_private") } },
	{ "punch_hole", "punch holes and bytes invalidated",
	  .tp = { TRACEFS("handle_fallocate_enter", "syscalls/sys_enter_fallocate"),
		  TRACEFS("handle_fallocate_exit", "syscalls/sys_exit_fallocate") },
	  .fentry = { FUNC("handle_gmem_fallocate_entry", "kvm_gmem_fallocate"),
		      FUNC("handle_gmem_fallocate_exit", "kvm_gmem_fallocate") } },
	/* The folio hook is the page-cache tracepoint on both tiers: kvm_gmem_free_folio runs
	 * after page_cache_delete() cleared folio->mapping, so it cannot name the file or the VM.
	 * What a tier changes is the call context that folds a punch's frees into its record:
	 * the fallocate syscall hooks, or kvm_gmem_fallocate itself (no program on the host's
	 * other fallocates). Without that context each folio is still counted, one record each. */
	{ "free_folio", "folios freed",
	  .tp = { TPBTF("handle_folio_delete", "mm_filemap_delete_from_page_cache"),
		  TRACEFS_OPT("handle_fallocate_enter", "syscalls/sys_enter_fallocate"),
		  TRACEFS_OPT("handle_fallocate_exit", "syscalls/sys_exit_fallocate") },
	  .fentry = { TPBTF("handle_folio_delete", "mm_filemap_delete_from_page_cache"),
		      FUNC("handle_gmem_fallocate_entry", "kvm_gmem_fallocate"),
		      FUNC("handle_gmem_fallocate_exit", "kvm_gmem_fallocate") } },
	/* 7.3+: each memslot range a guest_memfd invalidation unmaps, named by VM and gfn */
	{ "mapping_invalidate", "guest frames a gmem invalidation unmapped (7.3+)",
	  .fentry = { FUNC_OPT("handle_gmem_invalidate_range", "kvm_arch_gmem_invalidate_range") } },
	{ "conversion", "private<->shared conversions, kernel part and exit-to-entry",
	  .tp = { IOCTL_PAIR },
	  .fentry = { KVM_RUN_PAIR, VM_IOCTL_PAIR } },
	{ "direct_map_secretmem", "secretmem folios out of / back in the direct map",
	  .tp = { TPBTF("handle_folio_add", "mm_filemap_add_to_page_cache"),
		  TPBTF("handle_folio_delete", "mm_filemap_delete_from_page_cache") } },
	{ "direct_map_gmem", "no-direct-map gmem folios zapped / restored",
	  .fentry = { FUNC("handle_folio_zap", "folio_zap_direct_map"),
		      FUNC("handle_folio_restore", "folio_restore_direct_map"),
		      FUNC_OPT("handle_free_folio", "kvm_gmem_free_folio") } },
	{ "rmp", "SNP RMP transitions",
	  .tp = { TPBTF("handle_rmp_fault", "kvm_rmp_fault") },
	  .fentry = { FUNC_OPT("handle_rmp_make_private", "rmp_make_private"),
		      FUNC_OPT("handle_rmp_make_shared", "rmp_make_shared"),
		      FUNC_OPT("handle_psmash", "psmash"),
		      FUNC_OPT("handle_snp_leak", "snp_leak_pages"),
		      FUNC_OPT("handle_gmem_invalidate", "kvm_arch_gmem_invalidate"),
		      /* 7.3: kvm_gmem_free_folio calls kvm_arch_gmem_reclaim instead */
		      FUNC_OPT("handle_gmem_reclaim", "kvm_arch_gmem_reclaim") } },
	{ "tdx", "TDX page-state transitions",
	  .fentry = { FUNC_OPT("handle_tdx_page_add", "tdh_mem_page_add"),
		      FUNC_OPT("handle_tdx_page_aug", "tdh_mem_page_aug"),
		      FUNC_OPT("handle_tdx_page_remove", "tdh_mem_page_remove"),
		      FUNC_OPT("handle_tdx_range_block", "tdh_mem_range_block"),
		      FUNC_OPT("handle_tdx_track", "tdh_mem_track"),
		      FUNC_OPT("handle_tdx_wbinvd", "tdh_phymem_page_wbinvd_hkid") } },
	{ "hugepage_split", "huge folio / mapping splits",
	  .tp = { TPBTF("handle_mmu_split", "kvm_mmu_split_huge_page") },
	  .fentry = { FUNC_OPT("handle_gmem_split", "kvm_gmem_split_folio_in_filemap"),
		      FUNC_OPT("handle_tdx_demote", "tdh_mem_page_demote") } },
	{ "hugepage_merge", "huge folio merges",
	  .fentry = { FUNC("handle_gmem_merge", "kvm_gmem_merge_folio_in_filemap") } },
	{ "vm_exit", "VMM processes exiting",
	  .tp = { TPBTF("handle_process_exit", "sched_process_exit") } },
};

const int probe_nr_events = sizeof(probe_events) / sizeof(probe_events[0]);

static int nprogs(const struct probe_prog *p)
{
	int n = 0;

	while (n < PROBE_MAX_PROGS && p[n].prog)
		n++;
	return n;
}

static bool prog_present(const struct probe_facts *f, const struct probe_prog *p)
{
	switch (p->need) {
	case NEED_TP_BTF:
		return f->has_tp_btf(f->ctx, p->target);
	case NEED_TRACEFS:
		return f->has_tracefs(f->ctx, p->target);
	case NEED_FUNC:
		return f->has_func(f->ctx, p->target);
	case NEED_ITER:
		return f->has_iter(f->ctx, p->target);
	}
	return false;
}

/*
 * Can this set of programs serve the event? Every required program's target must exist; if all
 * are optional, at least one must. On failure, say which target is missing.
 */
static bool tier_usable(const struct probe_facts *f, const struct probe_prog *progs, char *why,
			size_t whylen)
{
	int i, n = nprogs(progs), present = 0, required = 0;

	if (!n) {
		snprintf(why, whylen, "no source at this tier");
		return false;
	}
	for (i = 0; i < n; i++) {
		bool ok = prog_present(f, &progs[i]);

		present += ok;
		if (!progs[i].optional) {
			required++;
			if (!ok) {
				snprintf(why, whylen, "%s %s not in this kernel",
					 progs[i].need == NEED_FUNC ? "function" :
					 progs[i].need == NEED_ITER ? "iterator" : "tracepoint",
					 progs[i].target);
				return false;
			}
		}
	}
	if (!required && !present) {
		snprintf(why, whylen, "none of its %d functions in this kernel (e.g. %s)", n,
			 progs[0].target);
		return false;
	}
	return true;
}

void probe__decide(const struct probe_facts *facts, struct probe_table *table)
{
	int i;

	table->n = 0;
	table->fentry_permitted = facts->fentry_permitted;
	snprintf(table->fentry_reason, sizeof(table->fentry_reason), "%s",
		 facts->fentry_permitted ? "" : (facts->fentry_reason ? facts->fentry_reason : "?"));

	for (i = 0; i < probe_nr_events && i < PROBE_MAX_EVENTS; i++) {
		const struct probe_event_def *d = &probe_events[i];
		struct probe_row *r = &table->rows[table->n++];
		char why_fe[PROBE_REASON_LEN], why_tp[PROBE_REASON_LEN];
		bool fe_ok = false, tp_ok;

		memset(r, 0, sizeof(*r));
		r->event = d->event;
		r->what = d->what;
		if (!nprogs(d->fentry))
			snprintf(why_fe, sizeof(why_fe), "no fentry source for this event");
		else if (!facts->fentry_permitted)
			snprintf(why_fe, sizeof(why_fe), "fentry not permitted by this kernel (%s)",
				 table->fentry_reason);
		else
			fe_ok = tier_usable(facts, d->fentry, why_fe, sizeof(why_fe));
		tp_ok = tier_usable(facts, d->tp, why_tp, sizeof(why_tp));

		/* fentry first: it sees the kernel function itself, at lower cost per event */
		if (fe_ok) {
			r->tier = TIER_FENTRY;
			r->state = PROBE_LIVE;
			r->other_tier = TIER_TRACEPOINT;
			snprintf(r->other_reason, sizeof(r->other_reason), "%s",
				 tp_ok ? "available, not needed" : why_tp);
		} else if (tp_ok) {
			r->tier = TIER_TRACEPOINT;
			r->state = PROBE_LIVE;
			r->other_tier = TIER_FENTRY;
			snprintf(r->other_reason, sizeof(r->other_reason), "unavailable: %s", why_fe);
		} else {
			r->tier = TIER_NONE;
			r->state = PROBE_UNAVAILABLE;
			snprintf(r->reason, sizeof(r->reason), "tracepoint: %s; fentry: %s", why_tp,
				 why_fe);
		}
	}
}

static const struct probe_prog *find_prog(const struct probe_event_def *d, const char *prog,
					  enum probe_tier tier)
{
	const struct probe_prog *progs = tier == TIER_FENTRY ? d->fentry : d->tp;
	int i, n = nprogs(progs);

	for (i = 0; i < n; i++)
		if (!strcmp(progs[i].prog, prog))
			return &progs[i];
	return NULL;
}

bool probe__want_prog(const struct probe_facts *facts, const struct probe_table *table,
		      const char *prog, enum probe_tier tier)
{
	int i;

	for (i = 0; i < table->n; i++) {
		const struct probe_prog *p = find_prog(&probe_events[i], prog, tier);

		if (p && table->rows[i].tier == tier && prog_present(facts, p))
			return true;
	}
	return false;
}

void probe__mark_failed(struct probe_table *table, const char *prog, enum probe_tier tier,
			const char *reason)
{
	int i;

	for (i = 0; i < table->n; i++) {
		struct probe_row *r = &table->rows[i];
		/* the tracepoint object's programs also serve fentry rows that list them (the
		 * folio hooks): those rows fail with them */
		const struct probe_prog *p = find_prog(&probe_events[i], prog, r->tier);

		if (!p || r->state != PROBE_LIVE ||
		    (r->tier != tier && !(tier == TIER_TRACEPOINT && p->need != NEED_FUNC)))
			continue;
		/* An optional program failing costs the event nothing it cannot do without. */
		if (p->optional)
			continue;
		r->state = PROBE_FAILED;
		snprintf(r->reason, sizeof(r->reason), "%s: %s", prog, reason);
	}
}

struct probe_row *probe__row(struct probe_table *table, const char *event)
{
	int i;

	for (i = 0; i < table->n; i++)
		if (!strcmp(table->rows[i].event, event))
			return &table->rows[i];
	return NULL;
}

const char *probe__tier_str(enum probe_tier tier)
{
	switch (tier) {
	case TIER_TRACEPOINT:
		return "tracepoint";
	case TIER_FENTRY:
		return "fentry";
	default:
		return "none";
	}
}

const char *probe__state_str(enum probe_state state)
{
	switch (state) {
	case PROBE_LIVE:
		return "live";
	case PROBE_FAILED:
		return "failed";
	default:
		return "unavailable";
	}
}

void probe__print(const struct probe_table *t, FILE *out)
{
	int i;

	fprintf(out, "kernel: %s\n", t->kernel);
	fprintf(out, "fentry tier: %s%s\n", t->fentry_permitted ? "permitted" : "unavailable: ",
		t->fentry_permitted ? "" : t->fentry_reason);
	fprintf(out, "%-22s %-11s %-12s %s\n", "EVENT", "TIER", "STATE", "NOTES");
	for (i = 0; i < t->n; i++) {
		const struct probe_row *r = &t->rows[i];

		if (r->state == PROBE_UNAVAILABLE)
			fprintf(out, "%-22s %-11s %-12s %s\n", r->event, "-", "unavailable",
				r->reason);
		else
			fprintf(out, "%-22s %-11s %-12s %s%s%s: %s\n", r->event,
				probe__tier_str(r->tier), probe__state_str(r->state), r->reason,
				r->reason[0] ? "; " : "", probe__tier_str(r->other_tier),
				r->other_reason);
	}
}
