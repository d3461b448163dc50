// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * model.c - per-VM and per-file state built from gmem_event records.
 *
 * Two hash tables own everything: VMs by pid and live files by inode number. Files are keyed
 * globally, not per VM, because the free paths often cannot name the VM (vm 0) but always
 * name the inode, and the inode is what ties a free to the file it shrinks. A VM is freed only
 * once it has no live file, so a file's owner pointer never dangles.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "u64map.h"
#include "vmname.h"

/* Retired pids remembered so that late records do not resurrect a retired VM's series. */
#define MODEL_RETIRED_RING 64

/* ---- state ---- */

struct pending_conv {
	__u64 ts_ns;
	__u64 gpa;
	__u64 size;
	__u32 tid;
	__u32 dir;
	bool attributed; /* an ok attributes call was matched to it */
};

struct vm_state {
	struct model_vm pub; /* first: what model__vm() hands out */
	struct pending_conv *pending; /* oldest first; pub.conv.pending in use */
	size_t cap_pending;
	struct model_order_count *orders; /* pub.hugepages; pub.nr_hugepages in use */
	size_t cap_orders;
	struct model_vcpu_thread *threads; /* pub.vcpu_threads; pub.nr_vcpu_threads in use */
	size_t cap_threads;
	size_t last_thread; /* the one a record named last: a vCPU thread's records come in runs */
};

struct file_state {
	struct model_file pub; /* first: what model__file() hands out */
	struct vm_state *owner;
};

struct retired_pid {
	__u32 pid;
	bool valid;
};

struct model {
	struct model_opts opts;
	struct model_totals totals;
	struct u64map vms;   /* pid -> struct vm_state */
	struct u64map files; /* ino -> struct file_state, live files only */
	struct retired_pid retired[MODEL_RETIRED_RING];
	unsigned int retired_next;
};

/* ---- names ---- */

static const char *const source_names[GMEM_SRC_MAX] = {
	[GMEM_SRC_OTHER] = "other",
	[GMEM_SRC_USER_FAULT] = "user_fault",
	[GMEM_SRC_GUEST_FAULT] = "guest_fault",
	[GMEM_SRC_FALLOCATE] = "fallocate",
	[GMEM_SRC_POPULATE] = "populate",
};

static const char *const dir_names[GMEM_DIR_MAX] = {
	[GMEM_TO_SHARED] = "shared",
	[GMEM_TO_PRIVATE] = "private",
};

static const char *const result_names[MODEL_RESULT_MAX] = {
	[MODEL_RESULT_OK] = "ok",
	[MODEL_RESULT_ERROR] = "error",
};

static const char *const owner_names[GMEM_OWNER_MAX] = {
	[GMEM_OWNER_GMEM] = "gmem",
	[GMEM_OWNER_SECRETMEM] = "secretmem",
};

static const char *const page_size_names[MODEL_PS_MAX] = {
	[MODEL_PS_4K] = "4k",
	[MODEL_PS_2M] = "2M",
	[MODEL_PS_1G] = "1G",
};

static const char *const rmp_op_names[GMEM_RMP_OP_MAX] = {
	[GMEM_RMP_MAKE_PRIVATE] = "make_private",
	[GMEM_RMP_MAKE_SHARED] = "make_shared",
	[GMEM_RMP_PSMASH] = "psmash",
	[GMEM_RMP_FAULT] = "rmp_fault",
	[GMEM_RMP_LEAK] = "leak",
	[GMEM_RMP_GMEM_PREPARE] = "gmem_prepare",
	[GMEM_RMP_GMEM_INVALIDATE] = "gmem_invalidate",
};

static const char *const tdx_op_names[GMEM_TDX_OP_MAX] = {
	[GMEM_TDX_PAGE_ADD] = "page_add",
	[GMEM_TDX_PAGE_AUG] = "page_aug",
	[GMEM_TDX_PAGE_REMOVE] = "page_remove",
	[GMEM_TDX_RANGE_BLOCK] = "range_block",
	[GMEM_TDX_TRACK] = "track",
	[GMEM_TDX_WBINVD] = "wbinvd",
};

static const char *const kind_names[GMEM_EV_KIND_MAX] = {
	[GMEM_EV_NONE] = "none",
	[GMEM_EV_FILE_CREATE] = "file_create",
	[GMEM_EV_FILE_RELEASE] = "file_release",
	[GMEM_EV_FILE_DISCOVER] = "file_discover",
	[GMEM_EV_BIND] = "bind",
	[GMEM_EV_UNBIND] = "unbind",
	[GMEM_EV_PAGE_ALLOC] = "page_alloc",
	[GMEM_EV_PAGE_FREE] = "page_free",
	[GMEM_EV_PUNCH_HOLE] = "punch_hole",
	[GMEM_EV_FALLOCATE] = "fallocate",
	[GMEM_EV_FAULT] = "fault",
	[GMEM_EV_CONV_REQUEST] = "conv_request",
	[GMEM_EV_CONV_ATTR] = "conv_attr",
	[GMEM_EV_VCPU_RESUME] = "vcpu_resume",
	[GMEM_EV_DMAP_REMOVE] = "dmap_remove",
	[GMEM_EV_DMAP_RESTORE] = "dmap_restore",
	[GMEM_EV_DMAP_SAMPLE] = "dmap_sample",
	[GMEM_EV_RMP] = "rmp",
	[GMEM_EV_TDX] = "tdx",
	[GMEM_EV_SPLIT] = "split",
	[GMEM_EV_MERGE] = "merge",
	[GMEM_EV_LOST] = "lost",
	[GMEM_EV_VM_EXIT] = "vm_exit",
	[GMEM_EV_VM_NAME] = "vm_name",
	[GMEM_EV_VCPU_THREAD] = "vcpu_thread",
	[GMEM_EV_GFN_INVALIDATE] = "gfn_invalidate",
	[GMEM_EV_FD_CLOSE] = "fd_close",
	[GMEM_EV_KVM_STAT_DESC] = "kvm_stat_desc",
	[GMEM_EV_KVM_STAT] = "kvm_stat",
};

#define NAME_OF(table, i) \
	((i) < sizeof(table) / sizeof((table)[0]) && (table)[i] ? (table)[i] : "?")

const char *model__source_name(unsigned int source)
{
	return NAME_OF(source_names, source);
}

const char *model__dir_name(unsigned int dir)
{
	return NAME_OF(dir_names, dir);
}

const char *model__result_name(unsigned int result)
{
	return NAME_OF(result_names, result);
}

const char *model__owner_name(unsigned int owner)
{
	return NAME_OF(owner_names, owner);
}

const char *model__page_size_name(unsigned int ps)
{
	return NAME_OF(page_size_names, ps);
}

const char *model__rmp_op_name(unsigned int op)
{
	return NAME_OF(rmp_op_names, op);
}

const char *model__tdx_op_name(unsigned int op)
{
	return NAME_OF(tdx_op_names, op);
}

const char *model__kind_name(unsigned int kind)
{
	return NAME_OF(kind_names, kind);
}

/* ---- lifetime ---- */

struct model *model__new(const struct model_opts *opts)
{
	struct model *m;

	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	if (opts)
		m->opts = *opts;
	if (!m->opts.max_pending)
		m->opts.max_pending = MODEL_PENDING_DEFAULT;
	return m;
}

static void vm__free(struct vm_state *vm)
{
	if (!vm)
		return;
	free(vm->pending);
	free(vm->orders);
	free(vm->threads);
	free(vm);
}

void model__free(struct model *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->files.cap; i++)
		free(m->files.slots[i].val);
	for (i = 0; i < m->vms.cap; i++)
		vm__free(m->vms.slots[i].val);
	u64map__release(&m->files);
	u64map__release(&m->vms);
	free(m);
}

/* ---- VMs ---- */

/* The events a record stands for: one, or for a record made from the kernel's counters the
 * number it carries (GMEM_EVF_COUNTED). */
static __u64 ev_weight(const struct gmem_event *ev)
{
	if ((ev->flags & GMEM_EVF_COUNTED) &&
	    (ev->kind == GMEM_EV_PAGE_ALLOC || ev->kind == GMEM_EV_PAGE_FREE))
		return ev->c;
	return 1;
}

/* One more record counted on vm. */
static void vm__touch(struct vm_state *vm, const struct gmem_event *ev)
{
	vm->pub.events += ev_weight(ev);
	if (ev->ts_ns > vm->pub.last_ts_ns)
		vm->pub.last_ts_ns = ev->ts_ns;
}

/* Record kinds emitted only in the VMM's own KVM ioctls (KVM_CREATE_GUEST_MEMFD, binding a
 * memslot, memory attributes, KVM_RUN). Not UNBIND: the fentry tier also sees a VM's teardown
 * unbind its memslots, which can run from a workqueue. */
bool model__kind_proves_vmm(__u32 kind)
{
	switch (kind) {
	case GMEM_EV_FILE_CREATE:
	case GMEM_EV_BIND:
	case GMEM_EV_CONV_REQUEST:
	case GMEM_EV_CONV_ATTR:
	case GMEM_EV_VCPU_RESUME:
	case GMEM_EV_VCPU_THREAD:
		return true;
	default:
		return false;
	}
}

static struct retired_pid *model__retired(struct model *m, __u32 pid)
{
	unsigned int i;

	for (i = 0; i < MODEL_RETIRED_RING; i++)
		if (m->retired[i].valid && m->retired[i].pid == pid)
			return &m->retired[i];
	return NULL;
}

static void model__vm_name(struct model *m, struct vm_state *vm)
{
	vm->pub.name[0] = 0;
	if (m->opts.name_fn && vm->pub.pid)
		m->opts.name_fn(m->opts.name_ctx, vm->pub.pid, vm->pub.name, sizeof(vm->pub.name));
}

/*
 * The VM a record counts under, created on first sight; NULL when none may be (a late record
 * for a retired VM) or on -ENOMEM. `alive` says the record proves a live process of that pid
 * (only a successful FILE_CREATE does): it revives a gone VM and may recreate a retired pid,
 * both of which mean the pid was reused.
 */
static int model__vm_get(struct model *m, const struct gmem_event *ev, __u32 pid, bool alive,
			 struct vm_state **out)
{
	struct retired_pid *r;
	struct vm_state *vm;
	int err;

	*out = NULL;
	vm = u64map__get(&m->vms, pid);
	if (vm) {
		if (alive && vm->pub.gone) {
			vm->pub.gone = false;
			vm->pub.gone_ts_ns = 0;
			model__vm_name(m, vm); /* a new process under the old pid */
		}
		goto found;
	}
	r = model__retired(m, pid);
	if (r && !alive) {
		m->totals.anomalies.late_events++;
		return 0;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		err = -ENOMEM;
		goto cleanup;
	}
	vm->pub.pid = pid;
	vm->pub.first_ts_ns = ev->ts_ns;
	err = u64map__put(&m->vms, pid, vm);
	if (err)
		goto cleanup;
	if (r)
		r->valid = false;
	model__vm_name(m, vm);
found:
	vm__touch(vm, ev);
	*out = vm;
	return 0;
cleanup:
	free(vm);
	m->totals.anomalies.nomem++;
	return err;
}

static void model__vm_retire(struct model *m, struct vm_state *vm)
{
	struct retired_pid *r = &m->retired[m->retired_next];

	r->pid = vm->pub.pid;
	r->valid = true;
	m->retired_next = (m->retired_next + 1) % MODEL_RETIRED_RING;
	u64map__del(&m->vms, vm->pub.pid);
	vm__free(vm);
	m->totals.vms_retired++;
}

unsigned int model__tick(struct model *m, __u64 now_ns)
{
	unsigned int retired = 0;
	struct vm_state *vm;
	size_t i = 0;

	while (i < m->vms.cap) {
		vm = m->vms.slots[i].val;
		if (vm && vm->pub.gone && !vm->pub.files && now_ns >= vm->pub.gone_ts_ns &&
		    now_ns - vm->pub.gone_ts_ns >= m->opts.retire_after_ns) {
			model__vm_retire(m, vm);
			retired++;
			/* Deletion may have shifted another entry into slot i: look again. */
			continue;
		}
		i++;
	}
	if (retired)
		u64map__shrink(&m->vms);
	return retired;
}

/* ---- files ---- */

static void model__file_release(struct model *m, struct file_state *f)
{
	f->owner->pub.files--;
	f->owner->pub.files_released++;
	u64map__del(&m->files, f->pub.ino);
	free(f);
	u64map__shrink(&m->files);
}

/*
 * FILE_CREATE (created) or FILE_DISCOVER (!created). The pair is order-independent: a
 * discovery scan racing a create sees the same file, so a second record for an ino already
 * live under the same VM adds nothing, except that a CREATE after a DISCOVER still counts the
 * file as created (the create proves it was). Either order ends with created_total 1, files 1.
 * A late DISCOVER (GMEM_EVF_LATE) is a create whose record was lost: it counts as created.
 */
static int model__file_open(struct model *m, const struct gmem_event *ev, bool created)
{
	bool late = !created && (ev->flags & GMEM_EVF_LATE);
	struct file_state *f;
	struct vm_state *vm;
	int err;

	err = model__vm_get(m, ev, ev->vm, created, &vm);
	if (!vm)
		return err;
	if (!ev->ino) {
		m->totals.anomalies.untracked_file++;
		return 0;
	}
	f = u64map__get(&m->files, ev->ino);
	if (f && f->owner == vm) {
		if (created && !f->pub.created) {
			f->pub.created = true;
			vm->pub.files_created++;
		}
		return 0;
	}
	if (f) {
		/* The kernel handed the number to a new inode: the old file is gone unseen. */
		m->totals.anomalies.ino_reowned++;
		model__file_release(m, f);
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		err = -ENOMEM;
		goto cleanup;
	}
	f->owner = vm;
	f->pub.ino = ev->ino;
	f->pub.vm = vm->pub.pid;
	f->pub.size_bytes = ev->a;
	f->pub.first_ts_ns = ev->ts_ns;
	if (created) {
		f->pub.created = true;
		f->pub.flags = ev->b;
	} else {
		/* a late discovery is a file created while we watched, its CREATE lost */
		f->pub.created = late;
		f->pub.discovered = !late;
		f->pub.populated_pages = ev->b;
		f->pub.flags = ev->c;
	}
	err = u64map__put(&m->files, ev->ino, f);
	if (err)
		goto cleanup;
	vm->pub.files++;
	if (created || late)
		vm->pub.files_created++;
	else
		vm->pub.files_discovered++;
	if (late)
		m->totals.anomalies.creates_recovered++;
	return 0;
cleanup:
	free(f);
	m->totals.anomalies.nomem++;
	return err;
}

/* The live file a file-scoped record names; NULL (counted) when the model does not track it. */
static struct file_state *model__file_of(struct model *m, const struct gmem_event *ev)
{
	struct file_state *f;

	if (!ev->ino)
		return NULL;
	f = u64map__get(&m->files, ev->ino);
	if (!f)
		m->totals.anomalies.untracked_file++;
	return f;
}

/*
 * The VM of a file-scoped record: its own vm, or the file's owner when the probe could not
 * tell (free paths run outside the VMM and report vm 0).
 */
static int model__file_vm(struct model *m, const struct gmem_event *ev, struct file_state *f,
			  struct vm_state **out)
{
	if (!ev->vm && f) {
		*out = f->owner;
		vm__touch(f->owner, ev);
		return 0;
	}
	return model__vm_get(m, ev, ev->vm, false, out);
}

static int model__file_release_ev(struct model *m, const struct gmem_event *ev)
{
	struct file_state *f = ev->ino ? u64map__get(&m->files, ev->ino) : NULL;

	if (!f) {
		m->totals.anomalies.release_untracked++;
		return 0;
	}
	vm__touch(f->owner, ev);
	if (ev->flags & GMEM_EVF_LATE)
		m->totals.anomalies.releases_recovered++;
	model__file_release(m, f);
	return 0;
}

static unsigned int model__source(struct model *m, __u32 sub)
{
	if (sub < GMEM_SRC_MAX)
		return sub;
	m->totals.anomalies.bad_sub++;
	return GMEM_SRC_OTHER;
}

/* The vCPU thread tid of vm, or NULL: the last one asked for first. */
static struct model_vcpu_thread *vm__thread(struct vm_state *vm, __u32 tid)
{
	size_t i;

	if (vm->last_thread < vm->pub.nr_vcpu_threads && vm->threads[vm->last_thread].tid == tid)
		return &vm->threads[vm->last_thread];
	for (i = 0; i < vm->pub.nr_vcpu_threads; i++)
		if (vm->threads[i].tid == tid) {
			vm->last_thread = i;
			return &vm->threads[i];
		}
	return NULL;
}

static int model__file_ev(struct model *m, const struct gmem_event *ev)
{
	struct file_state *f = model__file_of(m, ev);
	struct model_file *fp = f ? &f->pub : NULL;
	struct vm_state *vm;
	unsigned int src;
	int err;

	err = model__file_vm(m, ev, f, &vm);
	if (!vm)
		return err;
	switch (ev->kind) {
	case GMEM_EV_BIND:
		if (ev->result < 0) {
			vm->pub.memslot_bind_failed++;
			break;
		}
		vm->pub.memslot_binds++;
		if (fp)
			fp->binds++;
		break;
	case GMEM_EV_PAGE_ALLOC:
		src = model__source(m, ev->sub);
		vm->pub.pages_allocated[src] += ev->b;
		if (src == GMEM_SRC_GUEST_FAULT && !(ev->flags & GMEM_EVF_COUNTED) &&
		    vm->pub.nr_vcpu_threads) {
			struct model_vcpu_thread *t = vm__thread(vm, ev->tid);

			if (t)
				t->guest_fault_pages += ev->b;
		}
		if (fp) {
			fp->pages_allocated += ev->b;
			fp->populated_pages += ev->b;
		}
		break;
	case GMEM_EV_PAGE_FREE:
		vm->pub.pages_freed += ev->b;
		if (!fp)
			break;
		fp->pages_freed += ev->b;
		if (fp->populated_pages < ev->b) {
			m->totals.anomalies.populated_underflow++;
			fp->populated_pages = 0;
		} else {
			fp->populated_pages -= ev->b;
		}
		break;
	case GMEM_EV_PUNCH_HOLE:
		if (ev->result) {
			vm->pub.punch_hole_failed++;
			break;
		}
		vm->pub.punch_holes++;
		{
			__u64 inv = ev->flags & GMEM_EVF_INFILE ? ev->c : ev->b;

			vm->pub.invalidated_bytes += inv;
			if (fp) {
				fp->punch_holes++;
				fp->invalidated_bytes += inv;
			}
		}
		break;
	case GMEM_EV_FALLOCATE:
		if (ev->result) {
			vm->pub.fallocate_failed++;
			break;
		}
		vm->pub.fallocates++;
		vm->pub.fallocated_bytes += ev->b;
		break;
	case GMEM_EV_FAULT:
		src = model__source(m, ev->sub);
		vm->pub.faults[src]++;
		if (vm->pub.nr_vcpu_threads) {
			struct model_vcpu_thread *t = vm__thread(vm, ev->tid);

			if (t)
				t->faults++;
		}
		histo__add(&vm->pub.fault_ns, ev->c);
		if (fp)
			fp->faults++;
		break;
	default:
		break;
	}
	return 0;
}

/* ---- huge pages ---- */

static int model__order_ev(struct model *m, const struct gmem_event *ev)
{
	struct file_state *f = model__file_of(m, ev);
	struct model_order_count *oc, *orders;
	struct vm_state *vm;
	size_t i, n, cap;
	int err;

	err = model__file_vm(m, ev, f, &vm);
	if (!vm)
		return err;
	n = vm->pub.nr_hugepages;
	/* Kept sorted by (from, to): few pairs exist, and the exporter wants them in order. */
	for (i = 0; i < n; i++) {
		oc = &vm->orders[i];
		if (oc->from_order > ev->order ||
		    (oc->from_order == ev->order && oc->to_order >= ev->to_order))
			break;
	}
	if (i == n || vm->orders[i].from_order != ev->order ||
	    vm->orders[i].to_order != ev->to_order) {
		if (n == vm->cap_orders) {
			cap = n ? n * 2 : 4;
			orders = realloc(vm->orders, cap * sizeof(*orders));
			if (!orders) {
				m->totals.anomalies.nomem++;
				return -ENOMEM;
			}
			vm->orders = orders;
			vm->cap_orders = cap;
		}
		memmove(&vm->orders[i + 1], &vm->orders[i], (n - i) * sizeof(*vm->orders));
		memset(&vm->orders[i], 0, sizeof(*vm->orders));
		vm->orders[i].from_order = ev->order;
		vm->orders[i].to_order = ev->to_order;
		vm->pub.nr_hugepages = n + 1;
		vm->pub.hugepages = vm->orders;
	}
	if (ev->kind == GMEM_EV_SPLIT) {
		vm->orders[i].splits++;
		if (f)
			f->pub.splits++;
	} else {
		vm->orders[i].merges++;
		if (f)
			f->pub.merges++;
	}
	return 0;
}

/* ---- conversions ---- */

static void vm__pending_remove(struct vm_state *vm, size_t i)
{
	size_t n = vm->pub.conv.pending;

	memmove(&vm->pending[i], &vm->pending[i + 1], (n - i - 1) * sizeof(*vm->pending));
	vm->pub.conv.pending = n - 1;
}

static struct pending_conv *vm__pending_of_tid(struct vm_state *vm, __u32 tid, size_t *idx)
{
	size_t i;

	for (i = 0; i < vm->pub.conv.pending; i++) {
		if (vm->pending[i].tid == tid) {
			if (idx)
				*idx = i;
			return &vm->pending[i];
		}
	}
	return NULL;
}

/* [a, a+len) ranges; a zero length still names its first byte. */
static bool ranges_overlap(__u64 a, __u64 alen, __u64 b, __u64 blen)
{
	__u64 aend = a + (alen ? alen : 1), bend = b + (blen ? blen : 1);

	if (aend < a)
		aend = ~0ull;
	if (bend < b)
		bend = ~0ull;
	return a < bend && b < aend;
}

static int model__conv_request(struct model *m, struct vm_state *vm, const struct gmem_event *ev)
{
	struct pending_conv *p, *pending;
	size_t i, cap;

	vm->pub.conv.requests++;
	if (ev->sub >= GMEM_DIR_MAX) {
		m->totals.anomalies.bad_sub++;
		return 0;
	}
	/* A vCPU thread has one exit outstanding at most: an older one lost its resume. */
	if (vm__pending_of_tid(vm, ev->tid, &i)) {
		vm->pub.conv.superseded++;
		vm__pending_remove(vm, i);
	}
	if (vm->pub.conv.pending >= m->opts.max_pending) {
		vm->pub.conv.evicted++;
		vm__pending_remove(vm, 0);
	}
	if (vm->pub.conv.pending == vm->cap_pending) {
		cap = vm->cap_pending ? vm->cap_pending * 2 : 4;
		if (cap > m->opts.max_pending)
			cap = m->opts.max_pending;
		pending = realloc(vm->pending, cap * sizeof(*pending));
		if (!pending) {
			m->totals.anomalies.nomem++;
			return -ENOMEM;
		}
		vm->pending = pending;
		vm->cap_pending = cap;
	}
	p = &vm->pending[vm->pub.conv.pending++];
	p->ts_ns = ev->ts_ns;
	p->gpa = ev->a;
	p->size = ev->b;
	p->tid = ev->tid;
	p->dir = ev->sub;
	p->attributed = false;
	return 0;
}

static void model__conv_attr(struct model *m, struct vm_state *vm, const struct gmem_event *ev)
{
	struct pending_conv *p;
	size_t i;

	if (ev->sub >= GMEM_DIR_MAX) {
		m->totals.anomalies.bad_sub++;
		return;
	}
	if (ev->flags & GMEM_EVF_INPLACE)
		vm->pub.conversions_in_place[ev->sub][ev->result ? MODEL_RESULT_ERROR :
								   MODEL_RESULT_OK]++;
	if (ev->result) {
		/* A failed call converted nothing: its request stays unattributed. */
		vm->pub.conversions[ev->sub][MODEL_RESULT_ERROR]++;
		return;
	}
	vm->pub.conversions[ev->sub][MODEL_RESULT_OK]++;
	histo__add(&vm->pub.conversion_ns[ev->sub], ev->c);
	/*
	 * The VMM usually converts on the vCPU thread that exited; when another thread does it,
	 * the oldest open request whose range it touches is the one it serves. An in-place call
	 * names a file offset, not a gpa: only its thread can tie it to a request.
	 */
	p = vm__pending_of_tid(vm, ev->tid, NULL);
	for (i = 0; !p && !(ev->flags & GMEM_EVF_INPLACE) && i < vm->pub.conv.pending; i++) {
		if (!vm->pending[i].attributed &&
		    ranges_overlap(vm->pending[i].gpa, vm->pending[i].size, ev->a, ev->b))
			p = &vm->pending[i];
	}
	if (p) {
		/*
		 * The end-to-end histogram is by the direction converted to, as the kernel part
		 * is: an exit need not get what it asked for (a software-protected VM's private
		 * access to a gfn without guest_memfd faults "private" and is answered shared).
		 */
		p->attributed = true;
		p->dir = ev->sub;
	} else {
		vm->pub.conv.unmatched_attr++;
	}
}

static void model__vcpu_resume(struct vm_state *vm, const struct gmem_event *ev)
{
	struct pending_conv *p;
	size_t i;

	p = vm__pending_of_tid(vm, ev->tid, &i);
	if (!p) {
		vm->pub.conv.unmatched_resume++;
		return;
	}
	if (p->attributed) {
		histo__add(&vm->pub.exit_to_entry_ns[p->dir],
			   ev->ts_ns >= p->ts_ns ? ev->ts_ns - p->ts_ns : 0);
		vm->pub.conv.completed++;
	} else {
		vm->pub.conv.abandoned++;
	}
	vm__pending_remove(vm, i);
}

/* VCPU_THREAD: tid runs vCPU a. A thread that moves to another vCPU keeps its counts under
 * the new pair; a pair seen again (its thread's context aged out) adds nothing. */
static int model__vcpu_thread(struct model *m, struct vm_state *vm, const struct gmem_event *ev)
{
	struct model_vcpu_thread *t = vm__thread(vm, ev->tid), *nt;

	if (t) {
		t->vcpu = (__u32)ev->a;
		return 0;
	}
	if (vm->pub.nr_vcpu_threads == vm->cap_threads) {
		size_t cap = vm->cap_threads ? vm->cap_threads * 2 : 4;

		nt = realloc(vm->threads, cap * sizeof(*nt));
		if (!nt) {
			m->totals.anomalies.nomem++;
			return -ENOMEM;
		}
		vm->threads = nt;
		vm->cap_threads = cap;
		vm->pub.vcpu_threads = nt;
	}
	vm->threads[vm->pub.nr_vcpu_threads++] =
		(struct model_vcpu_thread){ .vcpu = (__u32)ev->a, .tid = ev->tid };
	return 0;
}

static int model__vm_ev(struct model *m, const struct gmem_event *ev)
{
	struct vm_state *vm;
	int err;

	err = model__vm_get(m, ev, ev->vm, false, &vm);
	if (!vm)
		return err;
	switch (ev->kind) {
	case GMEM_EV_UNBIND:
		if (ev->result >= 0)
			vm->pub.memslot_unbinds++;
		break;
	case GMEM_EV_CONV_REQUEST:
		return model__conv_request(m, vm, ev);
	case GMEM_EV_CONV_ATTR:
		model__conv_attr(m, vm, ev);
		break;
	case GMEM_EV_VCPU_RESUME:
		model__vcpu_resume(vm, ev);
		break;
	case GMEM_EV_VCPU_THREAD:
		return model__vcpu_thread(m, vm, ev);
	case GMEM_EV_RMP:
		if (ev->sub < GMEM_RMP_OP_MAX)
			vm->pub.rmp[ev->sub]++;
		else
			m->totals.anomalies.bad_sub++;
		break;
	case GMEM_EV_GFN_INVALIDATE:
		vm->pub.mapping_invalidations++;
		if (ev->b > ev->a)
			vm->pub.mapping_invalidated_pages += ev->b - ev->a;
		break;
	case GMEM_EV_TDX:
		if (ev->sub < GMEM_TDX_OP_MAX)
			vm->pub.tdx[ev->sub]++;
		else
			m->totals.anomalies.bad_sub++;
		break;
	default:
		break;
	}
	return 0;
}

static void model__vm_exit(struct model *m, const struct gmem_event *ev)
{
	struct vm_state *vm = u64map__get(&m->vms, ev->vm);

	/* A VMM that never touched guest_memfd has nothing to retire. */
	if (!vm)
		return;
	vm__touch(vm, ev);
	if (vm->pub.gone)
		return;
	if (ev->flags & GMEM_EVF_LATE)
		m->totals.anomalies.exits_recovered++;
	vm->pub.gone = true;
	vm->pub.gone_ts_ns = ev->ts_ns;
	/* Its vCPU threads are dead: no open request will ever resume. */
	vm->pub.conv.unfinished += vm->pub.conv.pending;
	vm->pub.conv.pending = 0;
	free(vm->pending);
	vm->pending = NULL;
	vm->cap_pending = 0;
}

static void model__dmap_ev(struct model *m, const struct gmem_event *ev)
{
	struct model_totals *t = &m->totals;
	struct file_state *f;
	struct vm_state *vm;

	if (ev->kind == GMEM_EV_DMAP_SAMPLE) {
		t->host_direct_map_bytes[MODEL_PS_4K] = ev->a;
		t->host_direct_map_bytes[MODEL_PS_2M] = ev->b;
		t->host_direct_map_bytes[MODEL_PS_1G] = ev->c;
		return;
	}
	if (ev->sub >= GMEM_OWNER_MAX) {
		t->anomalies.bad_sub++;
		return;
	}
	if (ev->kind == GMEM_EV_DMAP_REMOVE)
		t->dmap_removals[ev->sub] += ev->b;
	else
		t->dmap_restores[ev->sub] += ev->b;

	/* Per VM too, without creating one: a secretmem user need not be a VMM at all. */
	if (ev->sub == GMEM_OWNER_GMEM) {
		f = ev->ino ? u64map__get(&m->files, ev->ino) : NULL;
		vm = f ? f->owner : NULL;
	} else {
		vm = ev->vm ? u64map__get(&m->vms, ev->vm) : NULL;
	}
	if (!vm)
		return;
	if (ev->kind == GMEM_EV_DMAP_REMOVE)
		vm->pub.dmap_removals += ev->b;
	else
		vm->pub.dmap_restores += ev->b;
}

int model__apply(struct model *m, const struct gmem_event *ev)
{
	struct model_totals *t = &m->totals;

	if (ev->kind == GMEM_EV_NONE || ev->kind >= GMEM_EV_KIND_MAX) {
		/* A newer recording: skip what this build cannot interpret. */
		t->unknown_kinds++;
		return 0;
	}
	t->by_kind[ev->kind] += ev_weight(ev);
	if (ev->ts_ns > t->last_ts_ns)
		t->last_ts_ns = ev->ts_ns;
	if (ev->kind == GMEM_EV_LOST) {
		t->events_dropped += ev->a;
		/*
		 * Drops the source could pin on a process (vm) and a record kind (sub). A VM
		 * whose every record so far was dropped is not in the model yet: the kinds only
		 * a VMM's own ioctls emit prove it is one, so they make it known (other kinds,
		 * frees and direct-map changes, may run in any process).
		 */
		if (ev->vm && ev->sub && ev->sub < GMEM_EV_KIND_MAX) {
			struct vm_state *vm = u64map__get(&m->vms, ev->vm);

			if (!vm && model__kind_proves_vmm(ev->sub))
				model__vm_get(m, ev, ev->vm, false, &vm);
			if (vm)
				vm->pub.dropped[ev->sub] += ev->a;
		}
		return 0;
	}
	/* a VM's name is about the recording, not an event: gmemd's count never sees them, and
	 * a replay's must equal it */
	if (ev->kind != GMEM_EV_VM_NAME)
		t->events += ev_weight(ev);

	switch (ev->kind) {
	case GMEM_EV_FILE_CREATE:
		if (ev->result < 0) {
			struct vm_state *vm;
			int err = model__vm_get(m, ev, ev->vm, false, &vm);

			if (vm)
				vm->pub.files_create_failed++;
			return err;
		}
		return model__file_open(m, ev, true);
	case GMEM_EV_FILE_DISCOVER:
		return model__file_open(m, ev, false);
	case GMEM_EV_FILE_RELEASE:
		return model__file_release_ev(m, ev);
	case GMEM_EV_BIND:
	case GMEM_EV_PAGE_ALLOC:
	case GMEM_EV_PAGE_FREE:
	case GMEM_EV_PUNCH_HOLE:
	case GMEM_EV_FALLOCATE:
	case GMEM_EV_FAULT:
		return model__file_ev(m, ev);
	case GMEM_EV_SPLIT:
	case GMEM_EV_MERGE:
		return model__order_ev(m, ev);
	case GMEM_EV_UNBIND:
	case GMEM_EV_CONV_REQUEST:
	case GMEM_EV_CONV_ATTR:
	case GMEM_EV_VCPU_RESUME:
	case GMEM_EV_VCPU_THREAD:
	case GMEM_EV_RMP:
	case GMEM_EV_TDX:
	case GMEM_EV_GFN_INVALIDATE:
		return model__vm_ev(m, ev);
	case GMEM_EV_DMAP_REMOVE:
	case GMEM_EV_DMAP_RESTORE:
	case GMEM_EV_DMAP_SAMPLE:
		model__dmap_ev(m, ev);
		return 0;
	case GMEM_EV_VM_EXIT:
		model__vm_exit(m, ev);
		return 0;
	case GMEM_EV_VM_NAME: {
		/* a recording's name for a VM it has met: what gmemd read from /proc then */
		struct vm_state *vm = u64map__get(&m->vms, ev->vm);

		if (vm)
			vmname__unpack(ev, vm->pub.name);
		return 0;
	}
	case GMEM_EV_FD_CLOSE:
		/* A hint for the consumer to scan sooner; only the release itself counts. */
		return 0;
	default:
		/* A kind added to the header, not yet modelled: counted in events, by_kind. */
		return 0;
	}
}

/* ---- read access ---- */

const struct model_opts *model__opts(const struct model *m)
{
	return &m->opts;
}

const struct model_totals *model__totals(const struct model *m)
{
	return &m->totals;
}

size_t model__nr_vms(const struct model *m)
{
	return m->vms.len;
}

size_t model__nr_files(const struct model *m)
{
	return m->files.len;
}

const struct model_vm *model__vm(const struct model *m, __u32 pid)
{
	struct vm_state *vm = u64map__get(&m->vms, pid);

	return vm ? &vm->pub : NULL;
}

const struct model_file *model__file(const struct model *m, __u64 ino)
{
	struct file_state *f = u64map__get(&m->files, ino);

	return f ? &f->pub : NULL;
}

static int vm_cmp(const void *a, const void *b)
{
	const struct model_vm *x = *(const struct model_vm *const *)a;
	const struct model_vm *y = *(const struct model_vm *const *)b;

	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static int file_cmp(const void *a, const void *b)
{
	const struct model_file *x = *(const struct model_file *const *)a;
	const struct model_file *y = *(const struct model_file *const *)b;

	if (x->vm != y->vm)
		return x->vm < y->vm ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

int model__for_each_vm(const struct model *m, model_vm_cb cb, void *ctx)
{
	const struct model_vm **vms;
	size_t i, n = 0;
	int err = 0;

	if (!m->vms.len)
		return 0;
	vms = malloc(m->vms.len * sizeof(*vms));
	if (!vms)
		return -ENOMEM;
	for (i = 0; i < m->vms.cap; i++)
		if (m->vms.slots[i].val)
			vms[n++] = m->vms.slots[i].val;
	qsort(vms, n, sizeof(*vms), vm_cmp);
	for (i = 0; i < n && !err; i++)
		err = cb(vms[i], ctx);
	free(vms);
	return err;
}

int model__for_each_file(const struct model *m, const struct model_vm *vm, model_file_cb cb,
			 void *ctx)
{
	const struct model_file **files;
	const struct file_state *f;
	size_t i, n = 0;
	int err = 0;

	if (!m->files.len)
		return 0;
	files = malloc(m->files.len * sizeof(*files));
	if (!files)
		return -ENOMEM;
	for (i = 0; i < m->files.cap; i++) {
		f = m->files.slots[i].val;
		if (f && (!vm || &f->owner->pub == vm))
			files[n++] = &f->pub;
	}
	qsort(files, n, sizeof(*files), file_cmp);
	for (i = 0; i < n && !err; i++)
		err = cb(files[i], ctx);
	free(files);
	return err;
}

/* ---- JSON ---- */

/*
 * Builders that remember the first failure, so the snapshot reads as a list of fields and is
 * checked once. json_object_set_new() consumes the value even when it fails.
 */
struct jctx {
	bool failed;
	bool sparse_vms; /* MODEL_JSON_SPARSE: VMs without their zero members */
	bool sparse;     /* now: jset() leaves zeros and empty objects and arrays out */
};

/* Nothing to say: 0, or an object or array with nothing in it (its zeros left out). */
static bool json_nothing(json_t *v)
{
	return (json_is_integer(v) && !json_integer_value(v)) ||
	       (json_is_object(v) && !json_object_size(v)) ||
	       (json_is_array(v) && !json_array_size(v));
}

static json_t *json_u64(__u64 v)
{
	/* json_int_t is signed: no counter gets near 2^63, but never emit a negative one. */
	return json_integer(v > LLONG_MAX ? LLONG_MAX : (json_int_t)v);
}

static void jset(struct jctx *j, json_t *obj, const char *key, json_t *val)
{
	if (!obj) {
		json_decref(val);
		j->failed = true;
		return;
	}
	if (j->sparse && val && json_nothing(val)) {
		json_decref(val);
		return;
	}
	if (json_object_set_new(obj, key, val))
		j->failed = true;
}

static void jappend(struct jctx *j, json_t *arr, json_t *val)
{
	if (!arr) {
		json_decref(val);
		j->failed = true;
		return;
	}
	if (json_array_append_new(arr, val))
		j->failed = true;
}

static json_t *json_histo(struct jctx *j, const struct histo *h)
{
	json_t *o = json_object(), *slots = json_array(), *s;
	unsigned int i;

	jset(j, o, "count", json_u64(h->count));
	jset(j, o, "sum_ns", json_u64(h->sum));
	jset(j, o, "min_ns", json_u64(h->count ? h->min : 0));
	jset(j, o, "max_ns", json_u64(h->max));
	jset(j, o, "p50_ns", json_u64(histo__percentile(h, 0.50)));
	jset(j, o, "p99_ns", json_u64(histo__percentile(h, 0.99)));
	/* Non-empty slots only, as [slot, count]: slot i covers [2^i, 2^(i+1)) ns. */
	for (i = 0; i < HISTO_SLOTS; i++) {
		if (!h->slots[i])
			continue;
		s = json_array();
		jappend(j, s, json_integer(i));
		jappend(j, s, json_u64(h->slots[i]));
		jappend(j, slots, s);
	}
	jset(j, o, "slots", slots);
	return o;
}

static json_t *json_file(struct jctx *j, const struct model_file *f)
{
	json_t *o = json_object();

	jset(j, o, "ino", json_u64(f->ino));
	jset(j, o, "vm", json_u64(f->vm));
	jset(j, o, "size_bytes", json_u64(f->size_bytes));
	jset(j, o, "populated_pages", json_u64(f->populated_pages));
	jset(j, o, "populated_bytes", json_u64(f->populated_pages * MODEL_PAGE_SIZE));
	jset(j, o, "flags", json_u64(f->flags));
	jset(j, o, "created", json_boolean(f->created));
	jset(j, o, "discovered", json_boolean(f->discovered));
	jset(j, o, "first_ts_ns", json_u64(f->first_ts_ns));
	jset(j, o, "pages_allocated", json_u64(f->pages_allocated));
	jset(j, o, "pages_freed", json_u64(f->pages_freed));
	jset(j, o, "punch_holes", json_u64(f->punch_holes));
	jset(j, o, "invalidated_bytes", json_u64(f->invalidated_bytes));
	jset(j, o, "faults", json_u64(f->faults));
	jset(j, o, "binds", json_u64(f->binds));
	jset(j, o, "splits", json_u64(f->splits));
	jset(j, o, "merges", json_u64(f->merges));
	return o;
}

struct json_walk {
	struct jctx *j;
	const struct model *m;
	json_t *arr;
};

static int json_file_cb(const struct model_file *f, void *ctx)
{
	struct json_walk *w = ctx;

	jappend(w->j, w->arr, json_file(w->j, f));
	return 0;
}

/* {private: {ok, error}, shared: {...}}: a counter by direction and result. */
static json_t *json_per_dir_result(struct jctx *j, const __u64 (*c)[MODEL_RESULT_MAX])
{
	json_t *x = json_object(), *y;
	unsigned int i, r;

	for (i = 0; i < GMEM_DIR_MAX; i++) {
		y = json_object();
		for (r = 0; r < MODEL_RESULT_MAX; r++)
			jset(j, y, result_names[r], json_u64(c[i][r]));
		jset(j, x, dir_names[i], y);
	}
	return x;
}

static json_t *json_per_dir_histo(struct jctx *j, const struct histo h[GMEM_DIR_MAX])
{
	json_t *o = json_object();
	unsigned int d;

	for (d = 0; d < GMEM_DIR_MAX; d++)
		jset(j, o, dir_names[d], json_histo(j, &h[d]));
	return o;
}

static json_t *json_vm(struct jctx *j, const struct model *m, const struct model_vm *vm)
{
	json_t *o = json_object(), *x, *y;
	struct json_walk w = { .j = j, .m = m };
	const struct model_conv_stats *c = &vm->conv;
	unsigned int i;
	int err;

	jset(j, o, "vm", json_u64(vm->pid));
	jset(j, o, "name", json_string(vm->name));
	jset(j, o, "gone", json_boolean(vm->gone));
	jset(j, o, "gone_ts_ns", json_u64(vm->gone_ts_ns));
	jset(j, o, "first_ts_ns", json_u64(vm->first_ts_ns));
	jset(j, o, "last_ts_ns", json_u64(vm->last_ts_ns));
	jset(j, o, "events", json_u64(vm->events));
	jset(j, o, "files", json_u64(vm->files));
	jset(j, o, "files_created", json_u64(vm->files_created));
	jset(j, o, "files_released", json_u64(vm->files_released));
	jset(j, o, "files_discovered", json_u64(vm->files_discovered));
	jset(j, o, "files_create_failed", json_u64(vm->files_create_failed));
	jset(j, o, "memslot_binds", json_u64(vm->memslot_binds));
	jset(j, o, "memslot_bind_failed", json_u64(vm->memslot_bind_failed));
	jset(j, o, "memslot_unbinds", json_u64(vm->memslot_unbinds));

	x = json_object();
	for (i = 0; i < GMEM_SRC_MAX; i++)
		jset(j, x, source_names[i], json_u64(vm->pages_allocated[i]));
	jset(j, o, "pages_allocated", x);
	jset(j, o, "pages_freed", json_u64(vm->pages_freed));
	jset(j, o, "punch_holes", json_u64(vm->punch_holes));
	jset(j, o, "punch_hole_failed", json_u64(vm->punch_hole_failed));
	jset(j, o, "invalidated_bytes", json_u64(vm->invalidated_bytes));
	jset(j, o, "fallocates", json_u64(vm->fallocates));
	jset(j, o, "fallocate_failed", json_u64(vm->fallocate_failed));
	jset(j, o, "fallocated_bytes", json_u64(vm->fallocated_bytes));

	x = json_object();
	for (i = 0; i < GMEM_SRC_MAX; i++)
		jset(j, x, source_names[i], json_u64(vm->faults[i]));
	jset(j, o, "faults", x);
	jset(j, o, "fault_latency", json_histo(j, &vm->fault_ns));

	jset(j, o, "conversions", json_per_dir_result(j, vm->conversions));
	jset(j, o, "conversions_in_place", json_per_dir_result(j, vm->conversions_in_place));
	x = json_array();
	for (size_t t = 0; x && t < vm->nr_vcpu_threads; t++) {
		const struct model_vcpu_thread *th = &vm->vcpu_threads[t];

		json_array_append_new(x, json_pack("{s:I, s:I, s:I, s:I}", "vcpu",
						   (json_int_t)th->vcpu, "tid", (json_int_t)th->tid,
						   "guest_fault_pages",
						   (json_int_t)th->guest_fault_pages, "faults",
						   (json_int_t)th->faults));
	}
	jset(j, o, "vcpu_threads", x);
	jset(j, o, "conversion_latency", json_per_dir_histo(j, vm->conversion_ns));
	jset(j, o, "conversion_exit_to_entry", json_per_dir_histo(j, vm->exit_to_entry_ns));

	x = json_object();
	jset(j, x, "requests", json_u64(c->requests));
	jset(j, x, "completed", json_u64(c->completed));
	jset(j, x, "abandoned", json_u64(c->abandoned));
	jset(j, x, "superseded", json_u64(c->superseded));
	jset(j, x, "evicted", json_u64(c->evicted));
	jset(j, x, "unfinished", json_u64(c->unfinished));
	jset(j, x, "unmatched_attr", json_u64(c->unmatched_attr));
	jset(j, x, "unmatched_resume", json_u64(c->unmatched_resume));
	jset(j, x, "pending", json_u64(c->pending));
	jset(j, o, "conversion_requests", x);

	x = json_object();
	for (i = 0; i < GMEM_RMP_OP_MAX; i++)
		jset(j, x, rmp_op_names[i], json_u64(vm->rmp[i]));
	jset(j, o, "rmp_transitions", x);
	x = json_object();
	for (i = 0; i < GMEM_TDX_OP_MAX; i++)
		jset(j, x, tdx_op_names[i], json_u64(vm->tdx[i]));
	jset(j, o, "tdx_transitions", x);
	jset(j, o, "mapping_invalidations", json_u64(vm->mapping_invalidations));
	jset(j, o, "mapping_invalidated_pages", json_u64(vm->mapping_invalidated_pages));

	x = json_object();
	for (i = 1; i < GMEM_EV_KIND_MAX; i++)
		if (vm->dropped[i])
			jset(j, x, kind_names[i], json_u64(vm->dropped[i]));
	jset(j, o, "events_dropped", x);

	x = json_object();
	jset(j, x, "removals_pages", json_u64(vm->dmap_removals));
	jset(j, x, "restores_pages", json_u64(vm->dmap_restores));
	jset(j, o, "direct_map", x);

	x = json_array();
	for (i = 0; i < vm->nr_hugepages; i++) {
		y = json_object();
		jset(j, y, "from_order", json_integer(vm->hugepages[i].from_order));
		jset(j, y, "to_order", json_integer(vm->hugepages[i].to_order));
		jset(j, y, "splits", json_u64(vm->hugepages[i].splits));
		jset(j, y, "merges", json_u64(vm->hugepages[i].merges));
		jappend(j, x, y);
	}
	jset(j, o, "hugepages", x);

	w.arr = json_array();
	err = model__for_each_file(m, vm, json_file_cb, &w);
	if (err)
		j->failed = true;
	jset(j, o, "file_list", w.arr);
	return o;
}

static int json_vm_cb(const struct model_vm *vm, void *ctx)
{
	struct json_walk *w = ctx;

	w->j->sparse = w->j->sparse_vms;
	jappend(w->j, w->arr, json_vm(w->j, w->m, vm));
	w->j->sparse = false;
	return 0;
}

json_t *model__to_json(const struct model *m)
{
	return model__to_json_opts(m, 0);
}

json_t *model__to_json_opts(const struct model *m, unsigned int flags)
{
	const struct model_totals *t = &m->totals;
	const struct model_anomalies *a = &t->anomalies;
	struct jctx j = { .sparse_vms = flags & MODEL_JSON_SPARSE };
	struct json_walk w = { .j = &j, .m = m };
	json_t *root = json_object(), *x, *y;
	unsigned int i;

	jset(&j, root, "abi", json_integer(GMEM_ABI_VERSION));

	x = json_object();
	jset(&j, x, "retire_after_ns", json_u64(m->opts.retire_after_ns));
	jset(&j, x, "max_file_series", json_u64(m->opts.max_file_series));
	jset(&j, x, "max_pending", json_u64(m->opts.max_pending));
	jset(&j, root, "opts", x);

	x = json_object();
	jset(&j, x, "events", json_u64(t->events));
	jset(&j, x, "events_dropped", json_u64(t->events_dropped));
	jset(&j, x, "unknown_kinds", json_u64(t->unknown_kinds));
	jset(&j, x, "vms", json_u64(m->vms.len));
	jset(&j, x, "files", json_u64(m->files.len));
	jset(&j, x, "vms_retired", json_u64(t->vms_retired));
	jset(&j, x, "last_ts_ns", json_u64(t->last_ts_ns));
	y = json_object();
	for (i = 1; i < GMEM_EV_KIND_MAX; i++) {
		char key[24];

		/* A kind newer than the names table still shows, by number. */
		if (kind_names[i])
			snprintf(key, sizeof(key), "%s", kind_names[i]);
		else
			snprintf(key, sizeof(key), "kind_%u", i);
		jset(&j, y, key, json_u64(t->by_kind[i]));
	}
	jset(&j, x, "by_kind", y);
	jset(&j, root, "totals", x);

	x = json_object();
	y = json_object();
	for (i = 0; i < GMEM_OWNER_MAX; i++)
		jset(&j, y, owner_names[i], json_u64(t->dmap_removals[i]));
	jset(&j, x, "removals_pages", y);
	y = json_object();
	for (i = 0; i < GMEM_OWNER_MAX; i++)
		jset(&j, y, owner_names[i], json_u64(t->dmap_restores[i]));
	jset(&j, x, "restores_pages", y);
	y = json_object();
	for (i = 0; i < MODEL_PS_MAX; i++)
		jset(&j, y, page_size_names[i], json_u64(t->host_direct_map_bytes[i]));
	jset(&j, x, "host_bytes", y);
	jset(&j, root, "direct_map", x);

	x = json_object();
	jset(&j, x, "populated_underflow", json_u64(a->populated_underflow));
	jset(&j, x, "untracked_file", json_u64(a->untracked_file));
	jset(&j, x, "release_untracked", json_u64(a->release_untracked));
	jset(&j, x, "ino_reowned", json_u64(a->ino_reowned));
	jset(&j, x, "bad_sub", json_u64(a->bad_sub));
	jset(&j, x, "late_events", json_u64(a->late_events));
	jset(&j, x, "nomem", json_u64(a->nomem));
	jset(&j, x, "creates_recovered", json_u64(a->creates_recovered));
	jset(&j, x, "releases_recovered", json_u64(a->releases_recovered));
	jset(&j, x, "exits_recovered", json_u64(a->exits_recovered));
	jset(&j, root, "anomalies", x);

	w.arr = json_array();
	if (model__for_each_vm(m, json_vm_cb, &w))
		j.failed = true;
	jset(&j, root, "vms", w.arr);

	if (j.failed) {
		json_decref(root);
		return NULL;
	}
	return root;
}
