/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * gmem_advice.h - ask gmemd's active huge-page policy what it would decide, before acting.
 *
 * For VMMs: connect once to gmemd's control socket, then before a punch hole, a conversion or
 * a fault, ask; the answer lists the decisions the policy makes for it on gmemd's huge-page
 * model of the file (an empty list: nothing to decide, e.g. no huge folio is partly inside the
 * range). Asking changes nothing; gmemd sees what the VMM then does through its probes. Link
 * with libgmemscope (and jansson). User space only; not thread-safe per handle.
 *
 *	struct gmem_advice *adv;
 *	struct gmem_advice_answer ans;
 *
 *	if (!gmem_advice__open(&adv, NULL) &&
 *	    !gmem_advice__punch(adv, ino, offset, len, &ans) && ans.n)
 *		printf("%s splits the %u-order folio at %llu to order %d\n", ans.policy,
 *		       ans.d[0].order, ans.d[0].index, ans.d[0].answer);
 *	gmem_advice__close(adv);
 *
 * Protocol: the "decide" command of docs/control-protocol.md.
 */
#ifndef GMEM_ADVICE_H
#define GMEM_ADVICE_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <linux/types.h>

#include "gmem_events.h"
#include "gmem_policy.h"

#define GMEM_ADVICE_MAX 16

struct gmem_advice;

struct gmem_advice_decision {
	__u64 ino;
	__u64 index;    /* split, merge: the folio or block; alloc_order: the page */
	__s32 answer;   /* an order (split, alloc_order), or merge's answer; clamped */
	__s32 raw;      /* what the policy's program returned */
	__u32 callback; /* enum gmem_policy_cb */
	__u32 order;    /* split, merge: the folio's or block's order; alloc_order: max_order */
	__u32 clamped;  /* raw was out of range */
	__u32 pad;
};

struct gmem_advice_answer {
	char policy[GMEM_POLICY_NAME_LEN]; /* who answered */
	__u32 n;
	__u32 pad;
	struct gmem_advice_decision d[GMEM_ADVICE_MAX];
};

/* socket NULL: the default (/run/gmemscope/gmemd.sock). 0 or -errno. */
int gmem_advice__open(struct gmem_advice **out, const char *socket);
void gmem_advice__close(struct gmem_advice *a);

/* What punching [offset, offset + len) bytes of guest_memfd inode ino would need decided. */
int gmem_advice__punch(struct gmem_advice *a, __u64 ino, __u64 offset, __u64 len,
		       struct gmem_advice_answer *ans);
/* ... converting [gpa, gpa + size) of VM vm (its pid) to enum gmem_dir `to`. */
int gmem_advice__convert(struct gmem_advice *a, __u32 vm, __u64 gpa, __u64 size, __u32 to,
			 struct gmem_advice_answer *ans);
/* ... a fault on page `index` of ino. */
int gmem_advice__fault(struct gmem_advice *a, __u64 ino, __u64 index,
		       struct gmem_advice_answer *ans);
/* One decision on a context built by the caller (enum gmem_policy_cb cb); gmemd fills the
 * region history from its model when hist_from_gmemd is set. */
int gmem_advice__decide(struct gmem_advice *a, __u32 cb, const void *ctx, int hist_from_gmemd,
			struct gmem_advice_decision *d);

/*
 * Every call returns 0 on an answer, -EREMOTEIO when gmemd refused (no active policy, a file
 * it has not seen: gmem_advice__error() says what), -EPROTO on a reply it could not read, or
 * -errno from the socket (then reopen).
 */
const char *gmem_advice__error(const struct gmem_advice *a);

#endif /* GMEM_ADVICE_H */
