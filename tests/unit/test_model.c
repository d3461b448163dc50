// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Unit tests for the model: hand-built event streams with exact expected numbers.
 *
 * Tests named constructed_* feed records this kernel cannot produce live (no SEV-SNP, no TDX,
 * no huge guest_memfd folios here): they pin the model's arithmetic for those kinds, nothing
 * about the probes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "model.h"
#include "vmname.h"

#define MS 1000000ull
#define S  1000000000ull

#define EV(...) (&(struct gmem_event){ __VA_ARGS__ })
#define APPLY(m, ...) assert_int_equal(model__apply(m, EV(__VA_ARGS__)), 0)

static struct model *new_model(__u64 retire_after_ns, __u32 max_pending)
{
	struct model_opts opts = { .retire_after_ns = retire_after_ns, .max_pending = max_pending };
	struct model *m = model__new(&opts);

	assert_non_null(m);
	return m;
}

static const struct model_vm *vm_of(const struct model *m, __u32 pid)
{
	const struct model_vm *vm = model__vm(m, pid);

	assert_non_null(vm);
	return vm;
}

static void test_lifecycle(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_file *f;
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 1, .vm = 100, .ino = 7, .a = 1 << 20,
	      .b = 1, .result = 5);
	vm = vm_of(m, 100);
	assert_int_equal(vm->files, 1);
	assert_int_equal(vm->files_created, 1);
	f = model__file(m, 7);
	assert_non_null(f);
	assert_int_equal(f->size_bytes, 1 << 20);
	assert_int_equal(f->vm, 100);
	assert_true(f->created);
	assert_false(f->discovered);

	APPLY(m, .kind = GMEM_EV_BIND, .ts_ns = 2, .vm = 100, .ino = 7, .b = 1 << 20);
	APPLY(m, .kind = GMEM_EV_BIND, .ts_ns = 3, .vm = 100, .ino = 7, .result = -EINVAL);
	APPLY(m, .kind = GMEM_EV_UNBIND, .ts_ns = 3, .vm = 100);
	assert_int_equal(vm->memslot_binds, 1);
	assert_int_equal(vm->memslot_bind_failed, 1);
	assert_int_equal(vm->memslot_unbinds, 1);

	/* one allocation per source, sizes powers of two so every sum is unambiguous */
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 4, .vm = 100, .ino = 7, .b = 1,
	      .sub = GMEM_SRC_USER_FAULT);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 5, .vm = 100, .ino = 7, .b = 2,
	      .sub = GMEM_SRC_GUEST_FAULT);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 6, .vm = 100, .ino = 7, .b = 4,
	      .sub = GMEM_SRC_FALLOCATE);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 7, .vm = 100, .ino = 7, .b = 8,
	      .sub = GMEM_SRC_POPULATE);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 8, .vm = 100, .ino = 7, .b = 16,
	      .sub = GMEM_SRC_OTHER);
	/* a source this build does not know lands in "other" and is noted */
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 9, .vm = 100, .ino = 7, .b = 32, .sub = 99);
	assert_int_equal(vm->pages_allocated[GMEM_SRC_USER_FAULT], 1);
	assert_int_equal(vm->pages_allocated[GMEM_SRC_GUEST_FAULT], 2);
	assert_int_equal(vm->pages_allocated[GMEM_SRC_FALLOCATE], 4);
	assert_int_equal(vm->pages_allocated[GMEM_SRC_POPULATE], 8);
	assert_int_equal(vm->pages_allocated[GMEM_SRC_OTHER], 48);
	assert_int_equal(model__totals(m)->anomalies.bad_sub, 1);
	assert_int_equal(f->populated_pages, 63);
	assert_int_equal(f->pages_allocated, 63);

	APPLY(m, .kind = GMEM_EV_PUNCH_HOLE, .ts_ns = 10, .vm = 100, .ino = 7, .a = 0, .b = 8192);
	APPLY(m, .kind = GMEM_EV_PUNCH_HOLE, .ts_ns = 11, .vm = 100, .ino = 7, .b = 4096,
	      .result = -EINVAL);
	assert_int_equal(vm->punch_holes, 1);
	assert_int_equal(vm->punch_hole_failed, 1);
	assert_int_equal(vm->invalidated_bytes, 8192);
	assert_int_equal(f->invalidated_bytes, 8192);

	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .ts_ns = 12, .vm = 100, .ino = 7, .b = 2);
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .ts_ns = 13, .vm = 100, .ino = 7, .b = 2);
	assert_int_equal(vm->pages_freed, 4);
	assert_int_equal(f->populated_pages, 59);
	/* more freed than populated: clamp at 0, note it */
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .ts_ns = 14, .vm = 100, .ino = 7, .b = 100);
	assert_int_equal(vm->pages_freed, 104);
	assert_int_equal(f->populated_pages, 0);
	assert_int_equal(model__totals(m)->anomalies.populated_underflow, 1);

	APPLY(m, .kind = GMEM_EV_FALLOCATE, .ts_ns = 15, .vm = 100, .ino = 7, .b = 1 << 16);
	APPLY(m, .kind = GMEM_EV_FALLOCATE, .ts_ns = 16, .vm = 100, .ino = 7, .result = -ENOSPC);
	assert_int_equal(vm->fallocates, 1);
	assert_int_equal(vm->fallocated_bytes, 1 << 16);
	assert_int_equal(vm->fallocate_failed, 1);

	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ts_ns = 17, .vm = 100, .ino = 7);
	assert_int_equal(vm->files, 0);
	assert_int_equal(vm->files_released, 1);
	assert_null(model__file(m, 7));
	assert_int_equal(model__nr_files(m), 0);

	/* the kernel reuses the inode number: a fresh file, nothing carried over */
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 18, .vm = 100, .ino = 7, .a = 2 << 20);
	f = model__file(m, 7);
	assert_non_null(f);
	assert_int_equal(f->size_bytes, 2 << 20);
	assert_int_equal(f->populated_pages, 0);
	assert_int_equal(f->pages_allocated, 0);
	assert_int_equal(vm->files, 1);
	assert_int_equal(vm->files_created, 2);
	assert_int_equal(vm->files_released, 1);

	/* a failed create is not a file */
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 19, .vm = 100, .ino = 0, .result = -ENOMEM);
	assert_int_equal(vm->files, 1);
	assert_int_equal(vm->files_created, 2);
	assert_int_equal(vm->files_create_failed, 1);

	assert_int_equal(model__totals(m)->events, 20);
	assert_int_equal(vm->events, 20);
	model__free(m);
}

static void test_discovery(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_file *f;
	const struct model_vm *vm;

	/* a file that predates us: live, populated, not counted as created */
	APPLY(m, .kind = GMEM_EV_FILE_DISCOVER, .vm = 200, .ino = 9, .a = 40960, .b = 3, .c = 1);
	vm = vm_of(m, 200);
	f = model__file(m, 9);
	assert_non_null(f);
	assert_int_equal(vm->files, 1);
	assert_int_equal(vm->files_created, 0);
	assert_int_equal(vm->files_discovered, 1);
	assert_int_equal(f->populated_pages, 3);
	assert_int_equal(f->size_bytes, 40960);
	assert_int_equal(f->flags, 1);
	assert_true(f->discovered);

	/* the same scan result again: nothing changes */
	APPLY(m, .kind = GMEM_EV_FILE_DISCOVER, .vm = 200, .ino = 9, .a = 40960, .b = 7);
	assert_int_equal(vm->files, 1);
	assert_int_equal(vm->files_discovered, 1);
	assert_int_equal(f->populated_pages, 3);

	/* a create racing the scan, seen after it: one file, and it was created */
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 200, .ino = 9, .a = 40960);
	assert_int_equal(vm->files, 1);
	assert_int_equal(vm->files_created, 1);
	assert_int_equal(f->populated_pages, 3);
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 200, .ino = 9, .a = 40960);
	assert_int_equal(vm->files_created, 1);

	/* the other order: create, then the scan finds it: the scan adds nothing */
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 200, .ino = 10, .a = 8192);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .vm = 200, .ino = 10, .b = 1);
	APPLY(m, .kind = GMEM_EV_FILE_DISCOVER, .vm = 200, .ino = 10, .a = 8192, .b = 1);
	f = model__file(m, 10);
	assert_int_equal(vm->files, 2);
	assert_int_equal(vm->files_created, 2);
	assert_int_equal(vm->files_discovered, 1);
	assert_int_equal(f->populated_pages, 1);
	assert_false(f->discovered);

	/* allocations into the discovered file add to what the scan found */
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .vm = 200, .ino = 9, .b = 2,
	      .sub = GMEM_SRC_GUEST_FAULT);
	assert_int_equal(model__file(m, 9)->populated_pages, 5);

	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .vm = 200, .ino = 9);
	assert_int_equal(vm->files, 1);
	assert_int_equal(vm->files_released, 1);

	/* a later scan's find whose CREATE never came: created while we watched, so counted
	 * as created (and as a recovered create), not as a file that predates us */
	APPLY(m, .kind = GMEM_EV_FILE_DISCOVER, .vm = 200, .ino = 12, .a = 4096, .b = 1,
	      .flags = GMEM_EVF_SYNTH | GMEM_EVF_LATE);
	f = model__file(m, 12);
	assert_non_null(f);
	assert_true(f->created);
	assert_false(f->discovered);
	assert_int_equal(f->populated_pages, 1);
	assert_int_equal(vm->files, 2);
	assert_int_equal(vm->files_created, 3);
	assert_int_equal(vm->files_discovered, 1);
	assert_int_equal(model__totals(m)->anomalies.creates_recovered, 1);
	/* and should the record come after all, it is the same create, not a second */
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 200, .ino = 12, .a = 4096);
	assert_int_equal(vm->files_created, 3);
	assert_int_equal(vm->files, 2);

	/* a release a scan told after the kernel's record was lost: released once, and counted
	 * as recovered; the kernel's record arriving after all releases nothing more */
	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ino = 12, .flags = GMEM_EVF_SYNTH | GMEM_EVF_LATE);
	assert_int_equal(vm->files, 1);
	assert_int_equal(vm->files_released, 2);
	assert_int_equal(model__totals(m)->anomalies.releases_recovered, 1);
	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .vm = 200, .ino = 12);
	assert_int_equal(vm->files_released, 2);
	assert_int_equal(model__totals(m)->anomalies.release_untracked, 1);

	/* an exit made by a scan for a VMM found gone: the VM is gone, once */
	APPLY(m, .kind = GMEM_EV_VM_EXIT, .vm = 200, .tid = 200,
	      .flags = GMEM_EVF_SYNTH | GMEM_EVF_LATE);
	assert_true(vm->gone);
	assert_int_equal(model__totals(m)->anomalies.exits_recovered, 1);
	APPLY(m, .kind = GMEM_EV_VM_EXIT, .vm = 200, .tid = 200,
	      .flags = GMEM_EVF_SYNTH | GMEM_EVF_LATE);
	assert_int_equal(model__totals(m)->anomalies.exits_recovered, 1);
	model__free(m);
}

static void test_frees_after_release(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 300, .ino = 11, .a = 1 << 20);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .vm = 300, .ino = 11, .b = 4,
	      .sub = GMEM_SRC_GUEST_FAULT);
	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .vm = 300, .ino = 11);
	/* the folios are freed after the scan saw the file go */
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .vm = 300, .ino = 11, .b = 3);
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .vm = 300, .ino = 11, .b = 1);
	vm = vm_of(m, 300);
	assert_int_equal(vm->pages_freed, 4);
	assert_int_equal(vm->files, 0);
	assert_int_equal(vm->files_released, 1);
	/* not resurrected */
	assert_null(model__file(m, 11));
	assert_int_equal(model__nr_files(m), 0);
	assert_int_equal(model__totals(m)->anomalies.untracked_file, 2);
	assert_int_equal(model__totals(m)->anomalies.populated_underflow, 0);
	/* a release for a file never known changes no gauge */
	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .vm = 300, .ino = 11);
	assert_int_equal(vm->files_released, 1);
	assert_int_equal(model__totals(m)->anomalies.release_untracked, 1);
	model__free(m);
}

static void test_untracked_file_counts_at_vm(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *vm;

	/* a file created before we started and not yet discovered */
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .vm = 400, .ino = 77, .b = 2,
	      .sub = GMEM_SRC_USER_FAULT);
	APPLY(m, .kind = GMEM_EV_PUNCH_HOLE, .vm = 400, .ino = 77, .b = 8192);
	APPLY(m, .kind = GMEM_EV_BIND, .vm = 400, .ino = 77);
	vm = vm_of(m, 400);
	assert_int_equal(vm->pages_allocated[GMEM_SRC_USER_FAULT], 2);
	assert_int_equal(vm->punch_holes, 1);
	assert_int_equal(vm->invalidated_bytes, 8192);
	assert_int_equal(vm->memslot_binds, 1);
	assert_int_equal(vm->files, 0);
	assert_null(model__file(m, 77));
	assert_int_equal(model__nr_files(m), 0);
	model__free(m);
}

static void test_vm0_and_free_attribution(void **state)
{
	struct model *m = new_model(0, 0);

	/* vm 0 is a bucket like any other */
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .vm = 0, .ino = 0, .b = 5);
	assert_int_equal(vm_of(m, 0)->pages_freed, 5);
	/* a free path that cannot name the VM still reaches the file's owner through the ino */
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 500, .ino = 12, .a = 1 << 20);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .vm = 500, .ino = 12, .b = 8);
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .vm = 0, .ino = 12, .b = 3);
	assert_int_equal(vm_of(m, 500)->pages_freed, 3);
	assert_int_equal(model__file(m, 12)->populated_pages, 5);
	assert_int_equal(vm_of(m, 0)->pages_freed, 5);
	model__free(m);
}

static void test_ino_reowned(void **state)
{
	struct model *m = new_model(0, 0);

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 1, .ino = 5, .a = 4096);
	/* a second VM gets the same number: the first file's release was missed */
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 2, .ino = 5, .a = 8192);
	assert_int_equal(vm_of(m, 1)->files, 0);
	assert_int_equal(vm_of(m, 1)->files_released, 1);
	assert_int_equal(vm_of(m, 2)->files, 1);
	assert_int_equal(model__file(m, 5)->vm, 2);
	assert_int_equal(model__file(m, 5)->size_bytes, 8192);
	assert_int_equal(model__totals(m)->anomalies.ino_reowned, 1);
	model__free(m);
}

static void test_fault(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 7, .ino = 3, .a = 1 << 20);
	APPLY(m, .kind = GMEM_EV_FAULT, .vm = 7, .ino = 3, .c = 3000, .sub = GMEM_SRC_GUEST_FAULT,
	      .flags = GMEM_EVF_FENTRY);
	APPLY(m, .kind = GMEM_EV_FAULT, .vm = 7, .ino = 3, .c = 5000, .sub = GMEM_SRC_USER_FAULT,
	      .flags = GMEM_EVF_FENTRY);
	vm = vm_of(m, 7);
	assert_int_equal(vm->faults[GMEM_SRC_GUEST_FAULT], 1);
	assert_int_equal(vm->faults[GMEM_SRC_USER_FAULT], 1);
	assert_int_equal(vm->fault_ns.count, 2);
	assert_int_equal(vm->fault_ns.sum, 8000);
	assert_int_equal(model__file(m, 3)->faults, 2);
	model__free(m);
}

/* request -> attributes ok -> resume: both histograms, exact values */
static void test_conversion_end_to_end(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 1000, .vm = 9, .tid = 11, .a = 0x100000,
	      .b = 0x1000, .sub = GMEM_TO_PRIVATE, .c = GMEM_KVM_EXIT_MEMORY_FAULT);
	vm = vm_of(m, 9);
	assert_int_equal(vm->conv.pending, 1);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 400000, .vm = 9, .tid = 11, .a = 0x100000,
	      .b = 0x1000, .sub = GMEM_TO_PRIVATE, .c = 5000);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 1000 + MS, .vm = 9, .tid = 11);
	assert_int_equal(vm->conversions[GMEM_TO_PRIVATE][MODEL_RESULT_OK], 1);
	assert_int_equal(vm->conversions[GMEM_TO_PRIVATE][MODEL_RESULT_ERROR], 0);
	assert_int_equal(vm->conversions[GMEM_TO_SHARED][MODEL_RESULT_OK], 0);
	assert_int_equal(vm->conversion_ns[GMEM_TO_PRIVATE].count, 1);
	assert_int_equal(vm->conversion_ns[GMEM_TO_PRIVATE].sum, 5000);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_PRIVATE].count, 1);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_PRIVATE].sum, MS);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_PRIVATE].max, MS);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_SHARED].count, 0);
	assert_int_equal(vm->conv.requests, 1);
	assert_int_equal(vm->conv.completed, 1);
	assert_int_equal(vm->conv.abandoned, 0);
	assert_int_equal(vm->conv.pending, 0);

	/* and the other direction, with a VMM retry: error, then ok */
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 2 * S, .vm = 9, .tid = 11, .a = 0x200000,
	      .b = 0x2000, .sub = GMEM_TO_SHARED);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 2 * S + 10, .vm = 9, .tid = 11,
	      .a = 0x200000, .b = 0x2000, .sub = GMEM_TO_SHARED, .c = 700, .result = -EAGAIN);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 2 * S + 20, .vm = 9, .tid = 11,
	      .a = 0x200000, .b = 0x2000, .sub = GMEM_TO_SHARED, .c = 900);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 2 * S + 50000, .vm = 9, .tid = 11);
	assert_int_equal(vm->conversions[GMEM_TO_SHARED][MODEL_RESULT_ERROR], 1);
	assert_int_equal(vm->conversions[GMEM_TO_SHARED][MODEL_RESULT_OK], 1);
	assert_int_equal(vm->conversion_ns[GMEM_TO_SHARED].sum, 900);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_SHARED].sum, 50000);
	assert_int_equal(vm->conv.completed, 2);
	model__free(m);
}

/*
 * An exit answered the other way than it asked (KVM_X86_SW_PROTECTED_VM: a private access to a
 * gfn without guest_memfd faults with the private flag; the VMM's one way on is to make it
 * shared): the end-to-end time goes under the direction converted to, as the kernel part does.
 */
static void test_conversion_answered_the_other_way(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 1000, .vm = 9, .tid = 14, .a = 0x200000,
	      .b = 0x1000, .sub = GMEM_TO_PRIVATE, .c = GMEM_KVM_EXIT_MEMORY_FAULT);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 2000, .vm = 9, .tid = 14, .a = 0x200000,
	      .b = 0x1000, .sub = GMEM_TO_SHARED, .c = 400);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 9000, .vm = 9, .tid = 14);
	vm = vm_of(m, 9);
	assert_int_equal(vm->conversions[GMEM_TO_SHARED][MODEL_RESULT_OK], 1);
	assert_int_equal(vm->conversion_ns[GMEM_TO_SHARED].count, 1);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_SHARED].count, 1);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_SHARED].sum, 8000);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_PRIVATE].count, 0);
	assert_int_equal(vm->conv.completed, 1);
	model__free(m);
}

static void test_conversion_attr_error(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 100, .vm = 9, .tid = 12, .a = 0x1000,
	      .b = 0x1000, .sub = GMEM_TO_PRIVATE);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 200, .vm = 9, .tid = 12, .a = 0x1000,
	      .b = 0x1000, .sub = GMEM_TO_PRIVATE, .c = 3000, .result = -EINVAL);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 300, .vm = 9, .tid = 12);
	vm = vm_of(m, 9);
	assert_int_equal(vm->conversions[GMEM_TO_PRIVATE][MODEL_RESULT_ERROR], 1);
	assert_int_equal(vm->conversions[GMEM_TO_PRIVATE][MODEL_RESULT_OK], 0);
	/* no histogram: neither the kernel part nor the end to end */
	assert_int_equal(vm->conversion_ns[GMEM_TO_PRIVATE].count, 0);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_PRIVATE].count, 0);
	assert_int_equal(vm->conv.abandoned, 1);
	assert_int_equal(vm->conv.completed, 0);
	model__free(m);
}

/* KVM_SET_MEMORY_ATTRIBUTES2 on a gmem fd: counted with the conversions and on its own; its
 * offset is no gpa, so it never claims a request by overlap, only by its thread. */
static void test_conversion_in_place(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 100, .vm = 9, .tid = 20, .a = 0x5000,
	      .b = 0x1000, .sub = GMEM_TO_PRIVATE);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 200, .vm = 9, .tid = 21, .ino = 7,
	      .a = 0x5000, .b = 0x1000, .sub = GMEM_TO_PRIVATE, .c = 300,
	      .flags = GMEM_EVF_INPLACE);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 300, .vm = 9, .tid = 21, .ino = 7,
	      .a = 0x6000, .b = 0x1000, .sub = GMEM_TO_SHARED, .c = 50, .result = -ENOTTY,
	      .flags = GMEM_EVF_INPLACE);
	vm = vm_of(m, 9);
	assert_int_equal(vm->conversions[GMEM_TO_PRIVATE][MODEL_RESULT_OK], 1);
	assert_int_equal(vm->conversions_in_place[GMEM_TO_PRIVATE][MODEL_RESULT_OK], 1);
	assert_int_equal(vm->conversions[GMEM_TO_SHARED][MODEL_RESULT_ERROR], 1);
	assert_int_equal(vm->conversions_in_place[GMEM_TO_SHARED][MODEL_RESULT_ERROR], 1);
	assert_int_equal(vm->conversions_in_place[GMEM_TO_SHARED][MODEL_RESULT_OK], 0);
	assert_int_equal(vm->conv.unmatched_attr, 1);
	/* the same call through the VM fd claims the open request by its range */
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 400, .vm = 9, .tid = 22, .a = 0x5000,
	      .b = 0x1000, .sub = GMEM_TO_PRIVATE, .c = 300);
	assert_int_equal(vm->conv.unmatched_attr, 1);
	assert_int_equal(vm->conversions_in_place[GMEM_TO_PRIVATE][MODEL_RESULT_OK], 1);
	model__free(m);
}

/* Records made from the kernel's per-file counters stand for c events each (b pages). */
static void test_counted_records(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_totals *t = model__totals(m);
	const struct model_file *f;
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 1, .vm = 100, .ino = 7, .a = 1 << 20,
	      .result = 5);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 2, .vm = 100, .ino = 7, .b = 10, .c = 3,
	      .sub = GMEM_SRC_USER_FAULT, .flags = GMEM_EVF_COUNTED | GMEM_EVF_SYNTH);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 2, .vm = 100, .ino = 7, .b = 5, .c = 0,
	      .sub = GMEM_SRC_FALLOCATE, .flags = GMEM_EVF_COUNTED | GMEM_EVF_SYNTH);
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .ts_ns = 3, .vm = 100, .ino = 7, .b = 4, .c = 4,
	      .flags = GMEM_EVF_COUNTED | GMEM_EVF_SYNTH);
	/* one record, one event, as always */
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 4, .vm = 100, .ino = 7, .b = 1,
	      .sub = GMEM_SRC_USER_FAULT);
	vm = vm_of(m, 100);
	f = model__file(m, 7);
	assert_int_equal(vm->pages_allocated[GMEM_SRC_USER_FAULT], 11);
	assert_int_equal(vm->pages_allocated[GMEM_SRC_FALLOCATE], 5);
	assert_int_equal(vm->pages_freed, 4);
	assert_int_equal(f->populated_pages, 12);
	assert_int_equal(t->by_kind[GMEM_EV_PAGE_ALLOC], 4);
	assert_int_equal(t->by_kind[GMEM_EV_PAGE_FREE], 4);
	assert_int_equal(t->events, 1 + 4 + 4);
	assert_int_equal(vm->events, 1 + 4 + 4);
	model__free(m);
}

static void test_conversion_resume_without_attr(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 100, .vm = 9, .tid = 13, .a = 0x1000,
	      .b = 0x1000, .sub = GMEM_TO_SHARED);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 900, .vm = 9, .tid = 13);
	vm = vm_of(m, 9);
	assert_int_equal(vm->conv.abandoned, 1);
	assert_int_equal(vm->conv.pending, 0);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_SHARED].count, 0);
	/* a resume with nothing open */
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 1000, .vm = 9, .tid = 13);
	assert_int_equal(vm->conv.unmatched_resume, 1);
	assert_int_equal(vm->conv.abandoned, 1);
	model__free(m);
}

/* The VMM converts from another thread: the oldest open request it overlaps is the one. */
static void test_conversion_attr_by_overlap(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 1000, .vm = 9, .tid = 21, .a = 0x10000,
	      .b = 0x2000, .sub = GMEM_TO_SHARED);
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 2000, .vm = 9, .tid = 22, .a = 0x40000,
	      .b = 0x1000, .sub = GMEM_TO_PRIVATE);
	/* tid 99 touches only tid 22's range */
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 3000, .vm = 9, .tid = 99, .a = 0x40800,
	      .b = 0x100, .sub = GMEM_TO_PRIVATE, .c = 100);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 7000, .vm = 9, .tid = 22);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 8000, .vm = 9, .tid = 21);
	vm = vm_of(m, 9);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_PRIVATE].count, 1);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_PRIVATE].sum, 5000);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_SHARED].count, 0);
	assert_int_equal(vm->conv.completed, 1);
	assert_int_equal(vm->conv.abandoned, 1);

	/* two open requests over the same range: one call serves the oldest, the next the other */
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 10000, .vm = 9, .tid = 31, .a = 0x80000,
	      .b = 0x1000, .sub = GMEM_TO_SHARED);
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 11000, .vm = 9, .tid = 32, .a = 0x80000,
	      .b = 0x1000, .sub = GMEM_TO_SHARED);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 12000, .vm = 9, .tid = 99, .a = 0x80000,
	      .b = 0x1000, .sub = GMEM_TO_SHARED, .c = 10);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 13000, .vm = 9, .tid = 32);
	assert_int_equal(vm->conv.abandoned, 2);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 14000, .vm = 9, .tid = 31);
	assert_int_equal(vm->conv.completed, 2);
	assert_int_equal(vm->exit_to_entry_ns[GMEM_TO_SHARED].sum, 4000);

	/* a call that overlaps nothing open: counted, attributes nothing */
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 20000, .vm = 9, .tid = 41, .a = 0x90000,
	      .b = 0x1000, .sub = GMEM_TO_SHARED);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 21000, .vm = 9, .tid = 99, .a = 0x91000,
	      .b = 0x1000, .sub = GMEM_TO_SHARED, .c = 10);
	assert_int_equal(vm->conv.unmatched_attr, 1);
	/* another VM's open request is never attributed across VMs */
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 22000, .vm = 8, .tid = 41, .a = 0x90000,
	      .b = 0x1000, .sub = GMEM_TO_SHARED, .c = 10);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 23000, .vm = 9, .tid = 41);
	assert_int_equal(vm->conv.abandoned, 3);
	assert_int_equal(vm_of(m, 8)->conv.unmatched_attr, 1);
	model__free(m);
}

static void test_conversion_bounds_and_exit(void **state)
{
	struct model *m = new_model(0, 2);
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 1, .vm = 9, .tid = 1,
	      .sub = GMEM_TO_SHARED);
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 2, .vm = 9, .tid = 2,
	      .sub = GMEM_TO_SHARED);
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 3, .vm = 9, .tid = 3,
	      .sub = GMEM_TO_SHARED);
	vm = vm_of(m, 9);
	/* max_pending 2: the oldest (tid 1) went */
	assert_int_equal(vm->conv.evicted, 1);
	assert_int_equal(vm->conv.pending, 2);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 4, .vm = 9, .tid = 1);
	assert_int_equal(vm->conv.unmatched_resume, 1);

	/* a new exit on a thread whose last one never resumed */
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 5, .vm = 9, .tid = 2,
	      .sub = GMEM_TO_PRIVATE);
	assert_int_equal(vm->conv.superseded, 1);
	assert_int_equal(vm->conv.pending, 2);

	/* a direction this build does not know opens nothing */
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 6, .vm = 9, .tid = 7, .sub = 5);
	assert_int_equal(vm->conv.pending, 2);
	assert_int_equal(model__totals(m)->anomalies.bad_sub, 1);

	/* open requests die with the VM */
	APPLY(m, .kind = GMEM_EV_VM_EXIT, .ts_ns = 10, .vm = 9);
	assert_true(vm->gone);
	assert_int_equal(vm->gone_ts_ns, 10);
	assert_int_equal(vm->conv.pending, 0);
	assert_int_equal(vm->conv.unfinished, 2);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 11, .vm = 9, .tid = 3);
	assert_int_equal(vm->conv.unmatched_resume, 2);
	assert_int_equal(vm->conv.requests, 5);
	model__free(m);
}

static void test_constructed_rmp_tdx(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *snp, *tdx;
	unsigned int op;

	for (op = 0; op < GMEM_RMP_OP_MAX; op++) {
		unsigned int n;

		for (n = 0; n <= op; n++)
			APPLY(m, .kind = GMEM_EV_RMP, .vm = 1000, .a = 0x1234 + n, .sub = op,
			      .flags = GMEM_EVF_SCENARIO);
	}
	for (op = 0; op < GMEM_TDX_OP_MAX; op++)
		APPLY(m, .kind = GMEM_EV_TDX, .vm = 2000, .a = 0x5000, .sub = op,
		      .flags = GMEM_EVF_SCENARIO);
	APPLY(m, .kind = GMEM_EV_TDX, .vm = 2000, .sub = GMEM_TDX_PAGE_AUG);
	APPLY(m, .kind = GMEM_EV_RMP, .vm = 1000, .sub = GMEM_RMP_OP_MAX);
	APPLY(m, .kind = GMEM_EV_TDX, .vm = 2000, .sub = GMEM_TDX_OP_MAX + 3);
	snp = vm_of(m, 1000);
	tdx = vm_of(m, 2000);
	for (op = 0; op < GMEM_RMP_OP_MAX; op++)
		assert_int_equal(snp->rmp[op], op + 1);
	assert_int_equal(tdx->tdx[GMEM_TDX_PAGE_ADD], 1);
	assert_int_equal(tdx->tdx[GMEM_TDX_PAGE_AUG], 2);
	assert_int_equal(tdx->tdx[GMEM_TDX_WBINVD], 1);
	assert_int_equal(tdx->rmp[GMEM_RMP_MAKE_PRIVATE], 0);
	assert_int_equal(snp->tdx[GMEM_TDX_PAGE_AUG], 0);
	assert_int_equal(model__totals(m)->anomalies.bad_sub, 2);
	assert_string_equal(model__rmp_op_name(GMEM_RMP_FAULT), "rmp_fault");
	assert_string_equal(model__tdx_op_name(GMEM_TDX_RANGE_BLOCK), "range_block");
	model__free(m);
}

static void test_constructed_split_merge(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 3000, .ino = 44, .a = 1ull << 30);
	APPLY(m, .kind = GMEM_EV_SPLIT, .vm = 3000, .ino = 44, .order = 9, .to_order = 0);
	APPLY(m, .kind = GMEM_EV_SPLIT, .vm = 3000, .ino = 44, .order = 18, .to_order = 9);
	APPLY(m, .kind = GMEM_EV_SPLIT, .vm = 3000, .ino = 44, .order = 9, .to_order = 0);
	APPLY(m, .kind = GMEM_EV_MERGE, .vm = 3000, .ino = 44, .order = 0, .to_order = 9);
	APPLY(m, .kind = GMEM_EV_MERGE, .vm = 3000, .ino = 44, .order = 9, .to_order = 0);
	vm = vm_of(m, 3000);
	/* sorted by (from, to) */
	assert_int_equal(vm->nr_hugepages, 3);
	assert_int_equal(vm->hugepages[0].from_order, 0);
	assert_int_equal(vm->hugepages[0].to_order, 9);
	assert_int_equal(vm->hugepages[0].splits, 0);
	assert_int_equal(vm->hugepages[0].merges, 1);
	assert_int_equal(vm->hugepages[1].from_order, 9);
	assert_int_equal(vm->hugepages[1].to_order, 0);
	assert_int_equal(vm->hugepages[1].splits, 2);
	assert_int_equal(vm->hugepages[1].merges, 1);
	assert_int_equal(vm->hugepages[2].from_order, 18);
	assert_int_equal(vm->hugepages[2].to_order, 9);
	assert_int_equal(vm->hugepages[2].splits, 1);
	assert_int_equal(model__file(m, 44)->splits, 3);
	assert_int_equal(model__file(m, 44)->merges, 2);
	model__free(m);
}

static void test_direct_map(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_totals *t;

	APPLY(m, .kind = GMEM_EV_DMAP_REMOVE, .ino = 5, .b = 512, .sub = GMEM_OWNER_GMEM);
	APPLY(m, .kind = GMEM_EV_DMAP_REMOVE, .ino = 6, .b = 1, .sub = GMEM_OWNER_SECRETMEM);
	APPLY(m, .kind = GMEM_EV_DMAP_RESTORE, .ino = 5, .b = 256, .sub = GMEM_OWNER_GMEM);
	APPLY(m, .kind = GMEM_EV_DMAP_REMOVE, .b = 9, .sub = GMEM_OWNER_MAX);
	APPLY(m, .kind = GMEM_EV_DMAP_SAMPLE, .a = 123 << 12, .b = 7ull << 21, .c = 2ull << 30,
	      .flags = GMEM_EVF_SYNTH);
	t = model__totals(m);
	assert_int_equal(t->dmap_removals[GMEM_OWNER_GMEM], 512);
	assert_int_equal(t->dmap_removals[GMEM_OWNER_SECRETMEM], 1);
	assert_int_equal(t->dmap_restores[GMEM_OWNER_GMEM], 256);
	assert_int_equal(t->dmap_restores[GMEM_OWNER_SECRETMEM], 0);
	assert_int_equal(t->host_direct_map_bytes[MODEL_PS_4K], 123 << 12);
	assert_int_equal(t->host_direct_map_bytes[MODEL_PS_2M], 7ull << 21);
	assert_int_equal(t->host_direct_map_bytes[MODEL_PS_1G], 2ull << 30);
	assert_int_equal(t->anomalies.bad_sub, 1);
	/* global: no VM is made for them */
	assert_int_equal(model__nr_vms(m), 0);
	/* a later sample replaces, not adds */
	APPLY(m, .kind = GMEM_EV_DMAP_SAMPLE, .a = 4096, .b = 0, .c = 0);
	assert_int_equal(t->host_direct_map_bytes[MODEL_PS_4K], 4096);
	assert_int_equal(t->host_direct_map_bytes[MODEL_PS_1G], 0);
	model__free(m);
}

/* Per-VM direct-map pages: gmem folios by file owner, secretmem by a known VMM's pid only. */
static void test_direct_map_per_vm(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_vm *vm;

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 1, .vm = 100, .ino = 5, .a = 1 << 20);
	/* the free path cannot name the VM: the file does */
	APPLY(m, .kind = GMEM_EV_DMAP_REMOVE, .ino = 5, .b = 512, .sub = GMEM_OWNER_GMEM);
	APPLY(m, .kind = GMEM_EV_DMAP_RESTORE, .ino = 5, .b = 256, .sub = GMEM_OWNER_GMEM);
	APPLY(m, .kind = GMEM_EV_DMAP_REMOVE, .vm = 100, .ino = 77, .b = 3,
	      .sub = GMEM_OWNER_SECRETMEM);
	APPLY(m, .kind = GMEM_EV_DMAP_RESTORE, .vm = 100, .ino = 77, .b = 1,
	      .sub = GMEM_OWNER_SECRETMEM);
	/* a process that is no VM the model knows: host-wide only, no VM made */
	APPLY(m, .kind = GMEM_EV_DMAP_REMOVE, .vm = 4242, .ino = 78, .b = 8,
	      .sub = GMEM_OWNER_SECRETMEM);
	/* an untracked gmem file: host-wide only */
	APPLY(m, .kind = GMEM_EV_DMAP_REMOVE, .ino = 6, .b = 16, .sub = GMEM_OWNER_GMEM);
	vm = vm_of(m, 100);
	assert_int_equal(vm->dmap_removals, 512 + 3);
	assert_int_equal(vm->dmap_restores, 256 + 1);
	assert_int_equal(model__nr_vms(m), 1);
	assert_null(model__vm(m, 4242));
	assert_int_equal(model__totals(m)->dmap_removals[GMEM_OWNER_SECRETMEM], 3 + 8);
	assert_int_equal(model__totals(m)->dmap_removals[GMEM_OWNER_GMEM], 512 + 16);
	model__free(m);
}

static void test_lost_and_unknown_kinds(void **state)
{
	struct model *m = new_model(0, 0);
	const struct model_totals *t = model__totals(m);

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 1, .ino = 1);
	APPLY(m, .kind = GMEM_EV_LOST, .a = 17, .flags = GMEM_EVF_SYNTH);
	APPLY(m, .kind = GMEM_EV_LOST, .a = 3, .flags = GMEM_EVF_SYNTH);
	assert_int_equal(t->events_dropped, 20);
	assert_int_equal(t->events, 1);
	/* a newer recording's kind, and the reserved 0: counted, otherwise ignored */
	APPLY(m, .kind = GMEM_EV_KIND_MAX, .vm = 1, .ino = 1, .b = 100);
	APPLY(m, .kind = 200, .vm = 1);
	APPLY(m, .kind = GMEM_EV_NONE, .vm = 1);
	assert_int_equal(t->unknown_kinds, 3);
	assert_int_equal(t->events, 1);
	assert_int_equal(vm_of(m, 1)->events, 1);
	assert_int_equal(model__nr_vms(m), 1);
	/* a known kind the model takes as a hint only */
	APPLY(m, .kind = GMEM_EV_FD_CLOSE, .vm = 1, .ino = 1);
	assert_int_equal(t->events, 2);
	assert_int_equal(vm_of(m, 1)->files, 1);
	assert_int_equal(t->by_kind[GMEM_EV_LOST], 2);
	assert_int_equal(t->by_kind[GMEM_EV_FILE_CREATE], 1);

	/* drops pinned on a process the model has not met: a VMM's own ioctl kinds make it
	 * known with its drops; a free or a direct-map change (any process's) does not */
	APPLY(m, .kind = GMEM_EV_LOST, .vm = 7, .sub = GMEM_EV_PAGE_FREE, .a = 9);
	APPLY(m, .kind = GMEM_EV_LOST, .vm = 7, .sub = GMEM_EV_DMAP_REMOVE, .a = 2);
	APPLY(m, .kind = GMEM_EV_LOST, .vm = 7, .sub = GMEM_EV_UNBIND, .a = 1);
	assert_null(model__vm(m, 7));
	APPLY(m, .kind = GMEM_EV_LOST, .vm = 7, .sub = GMEM_EV_FILE_CREATE, .a = 1);
	APPLY(m, .kind = GMEM_EV_LOST, .vm = 7, .sub = GMEM_EV_PAGE_ALLOC, .a = 4);
	assert_non_null(model__vm(m, 7));
	assert_int_equal(model__vm(m, 7)->dropped[GMEM_EV_FILE_CREATE], 1);
	assert_int_equal(model__vm(m, 7)->dropped[GMEM_EV_PAGE_ALLOC], 4);
	assert_int_equal(model__vm(m, 7)->dropped[GMEM_EV_PAGE_FREE], 0);
	assert_int_equal(model__vm(m, 7)->files, 0);
	assert_int_equal(t->events_dropped, 20 + 9 + 2 + 1 + 1 + 4);
	model__free(m);
}

static void test_retirement(void **state)
{
	struct model *m = new_model(1 * S, 0);

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 1 * S, .vm = 500, .ino = 1, .a = 1 << 20);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 2 * S, .vm = 500, .ino = 1, .b = 1);
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 3 * S, .vm = 500, .tid = 5,
	      .sub = GMEM_TO_PRIVATE);
	APPLY(m, .kind = GMEM_EV_SPLIT, .ts_ns = 3 * S, .vm = 500, .ino = 1, .order = 9);
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 4 * S, .vm = 600, .ino = 2, .a = 4096);

	/* not gone: never retired, however late */
	assert_int_equal(model__tick(m, 1000 * S), 0);
	assert_non_null(model__vm(m, 500));

	APPLY(m, .kind = GMEM_EV_VM_EXIT, .ts_ns = 10 * S, .vm = 500);
	/* a second exit does not move the clock */
	APPLY(m, .kind = GMEM_EV_VM_EXIT, .ts_ns = 11 * S, .vm = 500);
	assert_int_equal(vm_of(m, 500)->gone_ts_ns, 10 * S);
	/* a live file holds it, lingered or not */
	assert_int_equal(model__tick(m, 10 * S), 0);
	assert_int_equal(model__tick(m, 12 * S), 0);
	assert_non_null(model__vm(m, 500));

	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ts_ns = 12 * S, .vm = 500, .ino = 1);
	/* a frees-after-release still counts on the gone VM */
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .ts_ns = 12 * S, .vm = 500, .ino = 1, .b = 1);
	assert_int_equal(vm_of(m, 500)->pages_freed, 1);
	/* before the linger: stays (tick before the exit time too) */
	assert_int_equal(model__tick(m, 5 * S), 0);
	assert_int_equal(model__tick(m, 10 * S + 999999999), 0);
	assert_non_null(model__vm(m, 500));
	/* at exactly gone + retire_after: gone, with everything it had */
	assert_int_equal(model__tick(m, 11 * S), 1);
	assert_null(model__vm(m, 500));
	assert_non_null(model__vm(m, 600));
	assert_int_equal(model__nr_vms(m), 1);
	assert_int_equal(model__nr_files(m), 1);
	assert_int_equal(model__totals(m)->vms_retired, 1);

	/* late records do not bring its series back */
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .ts_ns = 13 * S, .vm = 500, .ino = 1, .b = 1);
	APPLY(m, .kind = GMEM_EV_RMP, .ts_ns = 13 * S, .vm = 500, .sub = 0);
	assert_null(model__vm(m, 500));
	assert_int_equal(model__totals(m)->anomalies.late_events, 2);

	/* the pid is reused by a new VMM: a fresh VM */
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 20 * S, .vm = 500, .ino = 3, .a = 4096);
	assert_int_equal(vm_of(m, 500)->files_created, 1);
	assert_int_equal(vm_of(m, 500)->pages_freed, 0);
	assert_false(vm_of(m, 500)->gone);

	/* the other VM goes too, and then nothing is left */
	APPLY(m, .kind = GMEM_EV_VM_EXIT, .ts_ns = 21 * S, .vm = 600);
	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ts_ns = 21 * S, .ino = 2);
	APPLY(m, .kind = GMEM_EV_VM_EXIT, .ts_ns = 21 * S, .vm = 500);
	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ts_ns = 21 * S, .ino = 3);
	assert_int_equal(model__tick(m, 22 * S), 2);
	assert_int_equal(model__nr_vms(m), 0);
	assert_int_equal(model__nr_files(m), 0);
	/* an exit for a VM never seen makes nothing */
	APPLY(m, .kind = GMEM_EV_VM_EXIT, .ts_ns = 23 * S, .vm = 777);
	assert_int_equal(model__nr_vms(m), 0);
	model__free(m);
}

static void test_gone_vm_revived_by_create(void **state)
{
	struct model *m = new_model(100 * S, 0);

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 1, .vm = 42, .ino = 1);
	APPLY(m, .kind = GMEM_EV_VM_EXIT, .ts_ns = 2, .vm = 42);
	assert_true(vm_of(m, 42)->gone);
	/* late frees and releases do not revive it */
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .ts_ns = 3, .vm = 42, .ino = 1, .b = 1);
	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ts_ns = 3, .vm = 42, .ino = 1);
	assert_true(vm_of(m, 42)->gone);
	/* a new file can only come from a live process: the pid was reused */
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 4, .vm = 42, .ino = 2);
	assert_false(vm_of(m, 42)->gone);
	assert_int_equal(model__tick(m, 1000 * S), 0);
	model__free(m);
}

static void test_immediate_retirement_default_opts(void **state)
{
	struct model *m = model__new(NULL);

	assert_non_null(m);
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 5, .vm = 1, .tid = 1);
	APPLY(m, .kind = GMEM_EV_VM_EXIT, .ts_ns = 5, .vm = 1);
	assert_int_equal(model__tick(m, 5), 1);
	assert_int_equal(model__nr_vms(m), 0);
	model__free(m);
	model__free(NULL);
}

struct walk {
	__u32 pids[16];
	__u64 inos[2048];
	size_t n;
	int stop_at;
};

static int walk_vm(const struct model_vm *vm, void *ctx)
{
	struct walk *w = ctx;

	w->pids[w->n++] = vm->pid;
	return w->stop_at && (int)w->n == w->stop_at ? 99 : 0;
}

static int walk_file(const struct model_file *f, void *ctx)
{
	struct walk *w = ctx;

	w->inos[w->n++] = f->ino;
	return 0;
}

static void test_iteration_sorted(void **state)
{
	struct model *m = new_model(0, 0);
	struct walk w = { 0 };

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 30, .ino = 300);
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 10, .ino = 900);
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 20, .ino = 200);
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 10, .ino = 100);
	assert_int_equal(model__for_each_vm(m, walk_vm, &w), 0);
	assert_int_equal(w.n, 3);
	assert_int_equal(w.pids[0], 10);
	assert_int_equal(w.pids[1], 20);
	assert_int_equal(w.pids[2], 30);

	memset(&w, 0, sizeof(w));
	assert_int_equal(model__for_each_file(m, NULL, walk_file, &w), 0);
	assert_int_equal(w.n, 4);
	assert_int_equal(w.inos[0], 100); /* vm 10 */
	assert_int_equal(w.inos[1], 900); /* vm 10 */
	assert_int_equal(w.inos[2], 200); /* vm 20 */
	assert_int_equal(w.inos[3], 300); /* vm 30 */

	memset(&w, 0, sizeof(w));
	assert_int_equal(model__for_each_file(m, model__vm(m, 10), walk_file, &w), 0);
	assert_int_equal(w.n, 2);

	/* a callback's non-zero return stops the walk and comes back */
	memset(&w, 0, sizeof(w));
	w.stop_at = 2;
	assert_int_equal(model__for_each_vm(m, walk_vm, &w), 99);
	assert_int_equal(w.n, 2);
	model__free(m);
}

/* Enough files and VMs to grow, probe, delete from and shrink the hash tables. */
static void test_many_files_and_vms(void **state)
{
	struct model *m = new_model(0, 0);
	static struct walk w;
	const struct model_file *f;
	__u64 ino;
	__u32 vm;

	for (ino = 1; ino <= 1000; ino++) {
		vm = 1000 + ino % 10;
		APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = vm, .ino = ino * 7919, .a = ino * 4096);
		APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .vm = vm, .ino = ino * 7919, .b = ino,
		      .sub = GMEM_SRC_GUEST_FAULT);
	}
	assert_int_equal(model__nr_files(m), 1000);
	assert_int_equal(model__nr_vms(m), 10);
	for (vm = 1000; vm < 1010; vm++)
		assert_int_equal(vm_of(m, vm)->files, 100);
	for (ino = 1; ino <= 1000; ino++) {
		f = model__file(m, ino * 7919);
		assert_non_null(f);
		assert_int_equal(f->populated_pages, ino);
		assert_int_equal(f->size_bytes, ino * 4096);
		assert_int_equal(f->vm, 1000 + ino % 10);
	}
	/* release every odd one; the even ones must all still be found */
	for (ino = 1; ino <= 1000; ino += 2)
		APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ino = ino * 7919);
	assert_int_equal(model__nr_files(m), 500);
	for (ino = 1; ino <= 1000; ino++) {
		f = model__file(m, ino * 7919);
		if (ino % 2)
			assert_null(f);
		else
			assert_non_null(f), assert_int_equal(f->populated_pages, ino);
	}
	w.n = 0;
	assert_int_equal(model__for_each_file(m, NULL, walk_file, &w), 0);
	assert_int_equal(w.n, 500);
	for (ino = 2; ino <= 1000; ino += 2)
		APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ino = ino * 7919);
	assert_int_equal(model__nr_files(m), 0);

	/* 1000 VMs come and go */
	for (vm = 100001; vm <= 101000; vm++) {
		APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = vm, .vm = vm, .ino = vm);
		APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = vm, .vm = vm, .tid = vm);
	}
	assert_int_equal(model__nr_vms(m), 1010);
	for (vm = 100001; vm <= 101000; vm++) {
		APPLY(m, .kind = GMEM_EV_VM_EXIT, .ts_ns = 200000, .vm = vm);
		APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ts_ns = 200000, .ino = vm);
	}
	assert_int_equal(model__tick(m, 200000), 1000);
	assert_int_equal(model__nr_vms(m), 10);
	for (vm = 1000; vm < 1010; vm++)
		assert_int_equal(vm_of(m, vm)->files_released, 100);
	model__free(m);
}

static void test_models_coexist(void **state)
{
	struct model *a = new_model(0, 0), *b = new_model(0, 0);

	APPLY(a, .kind = GMEM_EV_FILE_CREATE, .vm = 1, .ino = 1);
	APPLY(b, .kind = GMEM_EV_FILE_CREATE, .vm = 2, .ino = 1);
	APPLY(b, .kind = GMEM_EV_LOST, .a = 5);
	assert_non_null(model__vm(a, 1));
	assert_null(model__vm(a, 2));
	assert_int_equal(model__file(b, 1)->vm, 2);
	assert_int_equal(model__totals(a)->events_dropped, 0);
	assert_int_equal(model__totals(b)->events_dropped, 5);
	model__free(a);
	model__free(b);
}

static json_t *jpath(json_t *j, const char *a, const char *b, const char *c)
{
	j = json_object_get(j, a);
	if (j && b)
		j = json_object_get(j, b);
	if (j && c)
		j = json_object_get(j, c);
	assert_non_null(j);
	return j;
}

static void test_json_snapshot(void **state)
{
	struct model *m = new_model(0, 0);
	json_t *root, *vms, *vm, *file;

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 1, .vm = 1234, .ino = 42, .a = 2 << 20);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 2, .vm = 1234, .ino = 42, .b = 3,
	      .sub = GMEM_SRC_POPULATE);
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 10, .vm = 1234, .tid = 1,
	      .sub = GMEM_TO_PRIVATE);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 20, .vm = 1234, .tid = 1,
	      .sub = GMEM_TO_PRIVATE, .c = 4000);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 10 + 3000, .vm = 1234, .tid = 1);
	APPLY(m, .kind = GMEM_EV_SPLIT, .vm = 1234, .ino = 42, .order = 9);
	APPLY(m, .kind = GMEM_EV_LOST, .a = 4);
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .vm = 1234, .ino = 42, .b = 9);

	root = model__to_json(m);
	assert_non_null(root);
	assert_int_equal(json_integer_value(jpath(root, "totals", "events", NULL)), 7);
	assert_int_equal(json_integer_value(jpath(root, "totals", "events_dropped", NULL)), 4);
	assert_int_equal(json_integer_value(jpath(root, "totals", "by_kind", "fd_close")), 0);
	assert_int_equal(
		json_integer_value(jpath(root, "anomalies", "populated_underflow", NULL)), 1);
	assert_int_equal(json_integer_value(jpath(root, "direct_map", "host_bytes", "2M")), 0);
	vms = jpath(root, "vms", NULL, NULL);
	assert_int_equal(json_array_size(vms), 1);
	vm = json_array_get(vms, 0);
	assert_int_equal(json_integer_value(jpath(vm, "vm", NULL, NULL)), 1234);
	assert_int_equal(json_integer_value(jpath(vm, "pages_allocated", "populate", NULL)), 3);
	assert_int_equal(json_integer_value(jpath(vm, "conversions", "private", "ok")), 1);
	assert_int_equal(
		json_integer_value(jpath(vm, "conversion_exit_to_entry", "private", "p50_ns")),
		3000);
	assert_int_equal(
		json_integer_value(jpath(vm, "conversion_latency", "private", "p99_ns")), 4000);
	assert_int_equal(json_integer_value(jpath(vm, "conversion_requests", "completed", NULL)),
			 1);
	assert_int_equal(json_array_size(jpath(vm, "hugepages", NULL, NULL)), 1);
	assert_int_equal(json_array_size(jpath(vm, "file_list", NULL, NULL)), 1);
	file = json_array_get(jpath(vm, "file_list", NULL, NULL), 0);
	assert_int_equal(json_integer_value(jpath(file, "ino", NULL, NULL)), 42);
	assert_int_equal(json_integer_value(jpath(file, "size_bytes", NULL, NULL)), 2 << 20);
	assert_int_equal(json_integer_value(jpath(file, "populated_bytes", NULL, NULL)), 0);
	assert_true(json_is_true(jpath(file, "created", NULL, NULL)));
	json_decref(root);

	/* sparse: the same numbers, without a VM's zeros; the totals stay whole */
	root = model__to_json_opts(m, MODEL_JSON_SPARSE);
	assert_non_null(root);
	vm = json_array_get(jpath(root, "vms", NULL, NULL), 0);
	assert_int_equal(json_integer_value(jpath(vm, "pages_allocated", "populate", NULL)), 3);
	assert_null(json_object_get(jpath(vm, "pages_allocated", NULL, NULL), "user_fault"));
	assert_int_equal(json_integer_value(jpath(vm, "conversions", "private", "ok")), 1);
	assert_null(json_object_get(jpath(vm, "conversions", NULL, NULL), "shared"));
	assert_null(json_object_get(vm, "conversions_in_place"));
	assert_null(json_object_get(vm, "rmp_transitions"));
	assert_int_equal(
		json_integer_value(jpath(vm, "conversion_latency", "private", "p99_ns")), 4000);
	assert_int_equal(json_integer_value(jpath(vm, "vm", NULL, NULL)), 1234);
	assert_int_equal(json_integer_value(jpath(root, "totals", "by_kind", "fd_close")), 0);
	json_decref(root);

	/* an empty model is a valid snapshot too */
	model__free(m);
	m = new_model(0, 0);
	root = model__to_json(m);
	assert_non_null(root);
	assert_int_equal(json_array_size(jpath(root, "vms", NULL, NULL)), 0);
	json_decref(root);
	model__free(m);
}

/* VM_NAME records carry a recording's VM names: packed in 32-byte parts, cut at a character,
 * put back whole; the model names the VM it has met, and only that one. */
static void test_vm_name_records(void **state)
{
	/* 40 bytes, a two-byte character across byte 32: the cut goes before it */
	const char *long_name = "guest-with-a-long-name-01234567\xc3\xa9-xyz-42";
	struct model *m = new_model(0, 0);
	struct gmem_event e[VMNAME_PARTS];
	char back[VMNAME_LEN] = "";
	int n, i;

	assert_int_equal(vmname__pack("db01", 200, 5, e), 1);
	assert_int_equal(e[0].kind, GMEM_EV_VM_NAME);
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 200, .ino = 9, .a = 4096);
	assert_int_equal(model__apply(m, &e[0]), 0);
	assert_string_equal(model__vm(m, 200)->name, "db01");
	/* a VM the model has not met gets no entry from a name */
	assert_int_equal(vmname__pack("ghost", 300, 6, e), 1);
	assert_int_equal(model__apply(m, &e[0]), 0);
	assert_null(model__vm(m, 300));

	n = vmname__pack(long_name, 200, 7, e);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++) {
		assert_true(vmname__unpack(&e[i], back));
		assert_int_equal(model__apply(m, &e[i]), 0);
	}
	assert_string_equal(back, long_name);
	assert_string_equal(model__vm(m, 200)->name, long_name);
	model__free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_discovery),
		cmocka_unit_test(test_frees_after_release),
		cmocka_unit_test(test_untracked_file_counts_at_vm),
		cmocka_unit_test(test_vm0_and_free_attribution),
		cmocka_unit_test(test_ino_reowned),
		cmocka_unit_test(test_fault),
		cmocka_unit_test(test_conversion_end_to_end),
		cmocka_unit_test(test_conversion_answered_the_other_way),
		cmocka_unit_test(test_conversion_attr_error),
		cmocka_unit_test(test_conversion_resume_without_attr),
		cmocka_unit_test(test_conversion_in_place),
		cmocka_unit_test(test_counted_records),
		cmocka_unit_test(test_conversion_attr_by_overlap),
		cmocka_unit_test(test_conversion_bounds_and_exit),
		cmocka_unit_test(test_constructed_rmp_tdx),
		cmocka_unit_test(test_constructed_split_merge),
		cmocka_unit_test(test_direct_map),
		cmocka_unit_test(test_direct_map_per_vm),
		cmocka_unit_test(test_lost_and_unknown_kinds),
		cmocka_unit_test(test_retirement),
		cmocka_unit_test(test_gone_vm_revived_by_create),
		cmocka_unit_test(test_immediate_retirement_default_opts),
		cmocka_unit_test(test_iteration_sorted),
		cmocka_unit_test(test_many_files_and_vms),
		cmocka_unit_test(test_models_coexist),
		cmocka_unit_test(test_json_snapshot),
		cmocka_unit_test(test_vm_name_records),
	};

	return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
