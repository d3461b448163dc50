// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * --churn: each iteration touches a range and punches it, fallocates a range and punches it,
 * reruns the guest over its pages and punches them, and cycles --secret-pages memfd_secret
 * pages, for --iterations or --duration, at --rate.
 */
#include <errno.h>
#include <time.h>

#include "gmem-load.h"

__u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void sleep_until_ns(__u64 t)
{
	struct timespec ts = { .tv_sec = t / 1000000000ULL, .tv_nsec = t % 1000000000ULL };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

int vm__churn(struct vm *vm)
{
	const struct opts *o = vm->o;
	__u64 start = now_ns(), next = start, period = 0, end = 0, it;
	struct gfile *f0 = &vm->files[0];
	int r;

	if (o->rate > 0)
		period = (__u64)(1e9 / o->rate);
	if (o->duration > 0)
		end = start + (__u64)(o->duration * 1e9);
	for (it = 0;; it++) {
		struct gfile *f = &vm->files[it % o->files];
		__u64 lo = f == f0 ? vm->l->churn_first0 : 0, first;

		if (o->iterations && it >= o->iterations)
			break;
		if (end && now_ns() >= end)
			break;
		if (o->user_touch) {
			first = gfile__pick(vm, f, lo, o->user_touch);
			r = vm__user_touch(vm, f, first, o->user_touch);
			if (!r)
				r = vm__punch(vm, f, first, o->user_touch);
			if (r)
				return r;
		}
		if (o->falloc_pages) {
			first = gfile__pick(vm, f, lo, o->falloc_pages);
			r = vm__fallocate(vm, f, first, o->falloc_pages);
			if (!r)
				r = vm__punch(vm, f, first, o->falloc_pages);
			if (r)
				return r;
		}
		if (vm->l->guest && vm->vcpu_fd >= 0) {
			r = vm__guest_run(vm);
			if (!r)
				r = vm__punch(vm, f0, vm->l->user0, vm->l->guest);
			if (r)
				return r;
		}
		if (o->secret_pages) {
			r = vm__secret(vm, o->secret_pages);
			if (r)
				return r;
		}
		vm->c.iterations++;
		if (period) {
			next += period;
			sleep_until_ns(next);
		}
	}
	vm->c.churn_ns = now_ns() - start;
	return 0;
}
