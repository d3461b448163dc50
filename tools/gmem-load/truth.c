// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The ground truth: how each VM counts what it did, sends the counts to the parent, and how the
 * parent renders them as JSON.
 *
 * Every count comes from a syscall's return value or from cachestat() on the gmem fd (the
 * page cache as the kernel sees it), never from what should have happened: a per-file bitmap
 * holds the pages we know are present, and each step's effect is the difference the kernel
 * reports. A page that appears or vanishes outside any step is counted as "other" and warned
 * about, so the totals stay exact even when the kernel surprises us.
 */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gmem-load.h"
#include "kvmstats.h"

/* ---- reports: child -> parent ---------------------------------------------------------------- */

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Returns bytes read: less than len only at end of file. */
ssize_t read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!n)
			break;
		got += n;
	}
	return got;
}

/* ---- the page cache, as the kernel sees it --------------------------------------------------- */


/*
 * cachestat(2) counts the folios in a file's page cache over a range, whatever their state.
 * mincore(2) is no substitute here: it reports a page only if it is mapped or uptodate, and
 * guest_memfd marks a folio uptodate only once it is prepared (zeroed on a fault), so pages
 * that fallocate allocated are invisible to it.
 */
#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

struct gl_cachestat_range {
	__u64 off;
	__u64 len;
};

struct gl_cachestat {
	__u64 nr_cache;
	__u64 nr_dirty;
	__u64 nr_writeback;
	__u64 nr_evicted;
	__u64 nr_recently_evicted;
};

static bool no_cachestat;

static int gfile__cached(struct vm *vm, struct gfile *f, __u64 first, __u64 n, __u64 *cached)
{
	struct gl_cachestat_range r = { .off = first * PAGE_SZ, .len = n * PAGE_SZ };
	struct gl_cachestat cs;

	/* len 0 would mean "to the end of the file". */
	if (!n) {
		*cached = 0;
		return 0;
	}
	if (no_cachestat)
		return -ENOSYS;
	if (syscall(SYS_cachestat, f->fd, &r, &cs, 0)) {
		int err = -errno;

		if (err == -ENOSYS) {
			/* Pre-6.5 kernels, seccomp filters and valgrind 3.19 lack it. */
			vm_err(vm, "warning: no cachestat(2): counting from syscall results alone");
			no_cachestat = true;
			return err;
		}
		vm_err(vm, "cachestat on gmem ino %llu pages [%llu, %llu): %s",
		       (unsigned long long)f->ino, (unsigned long long)first,
		       (unsigned long long)(first + n), strerror(-err));
		return err;
	}
	*cached = cs.nr_cache;
	return 0;
}

/*
 * Learns which pages of [first, first + n) are in the page cache by halving mixed ranges: one
 * call for a range that is all present or all absent (every step's expected outcome), a few
 * dozen for a mixed 2 MiB file.
 */
static int gfile__learn(struct vm *vm, struct gfile *f, __u64 first, __u64 n, __u64 *a,
			__u64 *d)
{
	__u64 cached = 0, i, half;
	int r;

	r = gfile__cached(vm, f, first, n, &cached);
	if (r)
		return r;
	if (cached == 0 || cached == n) {
		for (i = first; i < first + n; i++) {
			bool was = bit_test(f->bits, i);

			if (cached && !was) {
				bit_set(f->bits, i);
				(*a)++;
			} else if (!cached && was) {
				bit_clear(f->bits, i);
				(*d)++;
			}
		}
		return 0;
	}
	half = n / 2;
	r = gfile__learn(vm, f, first, half, a, d);
	if (!r)
		r = gfile__learn(vm, f, first + half, n - half, a, d);
	return r;
}



/*
 * Without cachestat, trust the successful syscall for its range, and otherwise add what mincore
 * shows; mincore cannot see fallocated, unprepared folios, so it never clears a page.
 */
static int gfile__guess(struct vm *vm, struct gfile *f, __u64 first, __u64 n, enum expect exp,
			__u64 *a, __u64 *d)
{
	unsigned char *vec;
	__u64 i;
	int err = 0;

	if (exp != EXPECT_ANY) {
		for (i = first; i < first + n; i++) {
			bool was = bit_test(f->bits, i);

			if (exp == EXPECT_PRESENT && !was) {
				bit_set(f->bits, i);
				(*a)++;
			} else if (exp == EXPECT_ABSENT && was) {
				bit_clear(f->bits, i);
				(*d)++;
			}
		}
		return 0;
	}
	vec = malloc(n);
	if (!vec)
		return -ENOMEM;
	if (mincore(f->map + first * PAGE_SZ, n * PAGE_SZ, vec)) {
		err = -errno;
		vm_err(vm, "mincore on gmem ino %llu: %s", (unsigned long long)f->ino,
		       strerror(-err));
	}
	for (i = 0; !err && i < n; i++) {
		if ((vec[i] & 1) && !bit_test(f->bits, first + i)) {
			bit_set(f->bits, first + i);
			(*a)++;
		}
	}
	free(vec);
	return err;
}

/*
 * Brings the bitmap in line with the kernel's page cache for [first, first + n) and books every
 * difference: absent->present as an allocation from src, present->absent as a free. Returns the
 * number of changes, or -errno.
 */
long gfile__sync(struct vm *vm, struct gfile *f, __u64 first, __u64 n, enum gmem_source src,
			enum expect exp, __u64 *allocs, __u64 *frees)
{
	__u64 a = 0, d = 0;
	int r;

	r = gfile__learn(vm, f, first, n, &a, &d);
	if (r == -ENOSYS && no_cachestat)
		r = gfile__guess(vm, f, first, n, exp, &a, &d);
	f->populated += a;
	f->populated -= d;
	vm->c.alloc[src] += a;
	vm->c.pages_freed += d;
	if (allocs)
		*allocs = a;
	if (frees)
		*frees = d;
	return r ? r : (long)(a + d);
}

/* At a phase boundary nothing should have changed: anything that did is booked as "other". */
int vm__sync_all(struct vm *vm, const char *when)
{
	__u64 a, d;
	unsigned int i;
	long r;

	for (i = 0; i < vm->o->files; i++) {
		struct gfile *f = &vm->files[i];

		r = gfile__sync(vm, f, 0, f->npages, GMEM_SRC_OTHER, EXPECT_ANY, &a, &d);
		if (r < 0)
			return r;
		if (r)
			vm_err(vm, "warning: %s: file %u (ino %llu) gained %llu and lost %llu "
			       "pages outside any step; counted as other/freed", when, i,
			       (unsigned long long)f->ino, (unsigned long long)a,
			       (unsigned long long)d);
	}
	return 0;
}

int vm__report(struct vm *vm, enum rep_type type)
{
	unsigned int i, n = vm->o->files;
	size_t len = sizeof(struct rep_hdr) + n * sizeof(struct rep_file);
	struct rep_hdr *h;
	struct rep_file *rf;
	int err;

	h = calloc(1, len);
	if (!h)
		return -ENOMEM;
	h->type = type;
	h->nfiles = n;
	h->c = vm->c;
	rf = (struct rep_file *)(h + 1);
	for (i = 0; i < n; i++) {
		rf[i].ino = vm->files[i].ino;
		rf[i].size = vm->o->file_size;
		rf[i].flags = vm->files[i].flags;
		rf[i].populated = vm->files[i].populated;
		rf[i].released = vm->files[i].released;
	}
	err = write_all(vm->rep_fd, h, len);
	free(h);
	if (err)
		vm_err(vm, "cannot report to the parent: %s", strerror(-err));
	return err;
}

/* What KVM's own stats fds say, read by the VM itself: the truth gmemd's copy must equal. */
static const char *const kvm_stat_names[6] = { "exits",    "halt_exits", "io_exits",
					       "pages_4k", "pages_2m",   "pages_1g" };

void vm__read_stats(struct vm *vm)
{
	if (vm->vcpu_stats_fd < 0 || vm->vm_stats_fd < 0)
		return;
	if (kvmstats__read_fd(vm->vcpu_stats_fd, kvm_stat_names, vm->c.kvm_stat, 3) < 0 ||
	    kvmstats__read_fd(vm->vm_stats_fd, kvm_stat_names + 3, vm->c.kvm_stat + 3, 3) < 0)
		return;
	vm->c.kvm_stats_read = 1;
}

/* ---- the counts as JSON (the parent) --------------------------------------------------------- */

static json_t *json_errno(int e)
{
	const char *name;

	if (!e)
		return json_null();
	name = strerrorname_np(e);
	return name ? json_string(name) : json_integer(e);
}

/* --advise given: the counts carry an "advice" object. */
bool advise_json;

/* Adds the counters to obj. Returns obj, or NULL (obj released) when out of memory. */
json_t *counts__json(const struct counts *c, json_t *obj)
{
	json_t *secret;

	secret = json_pack("{sbsIsI}", "available", c->secret_state == SECRET_AVAILABLE,
			   "pages_removed", (json_int_t)c->secret_removed,
			   "pages_restored", (json_int_t)c->secret_restored);
	/*
	 * json_object_set_new() steals its value even when it fails, so nothing leaks; secret,
	 * filled in first, is set with a reference of its own and dropped on every path.
	 */
	if (!obj || !secret || json_object_set_new(secret, "errno", json_errno(c->secret_errno)) ||
	    json_object_set_new(obj, "files_created", json_integer(c->files_created)) ||
	    json_object_set_new(obj, "files_released", json_integer(c->files_released)) ||
	    json_object_set_new(obj, "memslot_binds", json_integer(c->memslot_binds)) ||
	    json_object_set_new(obj, "pages_allocated", json_pack("{sIsIsIsIsI}",
			"user_fault", (json_int_t)c->alloc[GMEM_SRC_USER_FAULT],
			"guest_fault", (json_int_t)c->alloc[GMEM_SRC_GUEST_FAULT],
			"fallocate", (json_int_t)c->alloc[GMEM_SRC_FALLOCATE],
			"populate", (json_int_t)c->alloc[GMEM_SRC_POPULATE],
			"other", (json_int_t)c->alloc[GMEM_SRC_OTHER])) ||
	    json_object_set_new(obj, "pages_freed", json_integer(c->pages_freed)) ||
	    json_object_set_new(obj, "fallocates", json_integer(c->fallocates)) ||
	    json_object_set_new(obj, "punch_holes", json_integer(c->punch_holes)) ||
	    json_object_set_new(obj, "invalidated_bytes", json_integer(c->invalidated_bytes)) ||
	    json_object_set_new(obj, "conversions", json_pack("{s{sIsI}s{sIsI}}",
			"private", "ok", (json_int_t)c->conv[GMEM_TO_PRIVATE][0],
			"error", (json_int_t)c->conv[GMEM_TO_PRIVATE][1],
			"shared", "ok", (json_int_t)c->conv[GMEM_TO_SHARED][0],
			"error", (json_int_t)c->conv[GMEM_TO_SHARED][1])) ||
	    json_object_set_new(obj, "conversion_errno", json_errno(c->conv_errno)) ||
	    json_object_set_new(obj, "conversions_in_place", json_pack("{s{sIsI}s{sIsI}}",
			"private", "ok", (json_int_t)c->conv_in_place[GMEM_TO_PRIVATE][0],
			"error", (json_int_t)c->conv_in_place[GMEM_TO_PRIVATE][1],
			"shared", "ok", (json_int_t)c->conv_in_place[GMEM_TO_SHARED][0],
			"error", (json_int_t)c->conv_in_place[GMEM_TO_SHARED][1])) ||
	    json_object_set_new(obj, "vcpu_tid", json_integer(c->vcpu_tid)) ||
	    json_object_set_new(obj, "conversion_in_place_errno",
				json_errno(c->conv_in_place_errno)) ||
	    (c->kvm_stats_read &&
	     json_object_set_new(obj, "kvm_stats", json_pack("{sIsIsIsIsIsI}",
			kvm_stat_names[0], (json_int_t)c->kvm_stat[0],
			kvm_stat_names[1], (json_int_t)c->kvm_stat[1],
			kvm_stat_names[2], (json_int_t)c->kvm_stat[2],
			kvm_stat_names[3], (json_int_t)c->kvm_stat[3],
			kvm_stat_names[4], (json_int_t)c->kvm_stat[4],
			kvm_stat_names[5], (json_int_t)c->kvm_stat[5]))) ||
	    json_object_set_new(obj, "vcpu_exits", json_pack("{sIsIsIsIsI}",
			"hlt", (json_int_t)c->exits_hlt, "io", (json_int_t)c->exits_io,
			"hypercall", (json_int_t)c->exits_hypercall,
			"memory_fault", (json_int_t)c->exits_memory_fault,
			"other", (json_int_t)c->exits_other)) ||
	    json_object_set_new(obj, "conversion_requests", json_pack("{sIsI}",
			"private", (json_int_t)c->conv_requests[GMEM_TO_PRIVATE],
			"shared", (json_int_t)c->conv_requests[GMEM_TO_SHARED])) ||
	    json_object_set_new(obj, "conversions_on_exit", json_pack("{sIsI}",
			"private", (json_int_t)c->conv_on_exit[GMEM_TO_PRIVATE],
			"shared", (json_int_t)c->conv_on_exit[GMEM_TO_SHARED])) ||
	    json_object_set(obj, "secretmem", secret) ||
	    json_object_set_new(obj, "iterations", json_integer(c->iterations)) ||
	    json_object_set_new(obj, "churn_seconds", json_real(c->churn_ns / 1e9)) ||
	    (advise_json && json_object_set_new(obj, "advice", json_pack("{sIsIsIsI}",
			"asked", (json_int_t)c->advice_asked,
			"answered", (json_int_t)c->advice_answered,
			"decisions", (json_int_t)c->advice_decisions,
			"errors", (json_int_t)c->advice_errors)))) {
		json_decref(secret);
		json_decref(obj);
		return NULL;
	}
	json_decref(secret);
	return obj;
}

void counts__add(struct counts *t, const struct counts *c)
{
	int i;

	for (i = 0; i < GMEM_SRC_MAX; i++)
		t->alloc[i] += c->alloc[i];
	t->pages_freed += c->pages_freed;
	t->fallocates += c->fallocates;
	t->punch_holes += c->punch_holes;
	t->invalidated_bytes += c->invalidated_bytes;
	for (i = 0; i < GMEM_DIR_MAX; i++) {
		t->conv[i][0] += c->conv[i][0];
		t->conv[i][1] += c->conv[i][1];
		t->conv_requests[i] += c->conv_requests[i];
		t->conv_on_exit[i] += c->conv_on_exit[i];
	}
	t->exits_hlt += c->exits_hlt;
	t->exits_io += c->exits_io;
	t->exits_hypercall += c->exits_hypercall;
	t->exits_memory_fault += c->exits_memory_fault;
	t->exits_other += c->exits_other;
	t->secret_removed += c->secret_removed;
	t->secret_restored += c->secret_restored;
	t->iterations += c->iterations;
	t->advice_asked += c->advice_asked;
	t->advice_answered += c->advice_answered;
	t->advice_decisions += c->advice_decisions;
	t->advice_errors += c->advice_errors;
	if (c->churn_ns > t->churn_ns)
		t->churn_ns = c->churn_ns;
	t->files_created += c->files_created;
	t->files_released += c->files_released;
	t->memslot_binds += c->memslot_binds;
	if (!t->conv_errno)
		t->conv_errno = c->conv_errno;
	if (!t->secret_errno)
		t->secret_errno = c->secret_errno;
	/* The fleet has secretmem only if every VM had it. */
	if (t->secret_state != SECRET_UNAVAILABLE)
		t->secret_state = c->secret_state;
}

json_t *view__json(const struct vm_view *v)
{
	json_t *vj, *files;
	__u64 pop = 0;
	unsigned int j;

	vj = json_object();
	files = json_array();
	if (!vj || !files || json_object_set_new(vj, "pid", json_integer(v->pid)) ||
	    json_object_set_new(vj, "exited_early", json_boolean(v->early)) ||
	    json_object_set(vj, "files", files)) {
		json_decref(files);
		json_decref(vj);
		return NULL;
	}
	json_decref(files); /* vj holds it now */
	for (j = 0; j < v->c.files_created; j++) {
		const struct rep_file *rf = &v->files[j];

		pop += rf->populated;
		if (json_array_append_new(files, json_pack("{sIsIsIsIsb}",
				"ino", (json_int_t)rf->ino, "size", (json_int_t)rf->size,
				"flags", (json_int_t)rf->flags,
				"populated_pages", (json_int_t)rf->populated,
				"released", (int)rf->released))) {
			json_decref(vj);
			return NULL;
		}
	}
	vj = counts__json(&v->c, vj);
	if (vj && json_object_set_new(vj, "populated_pages", json_integer(pop))) {
		json_decref(vj);
		return NULL;
	}
	return vj;
}
