// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * policy_host.c - the active policy, gmemd's huge-page model, and what is counted of them.
 *
 * Counts are kept per policy name for as long as gmemd runs, so swapping back and forth never
 * makes a counter go backwards; a swap changes only which policy the model's decider calls.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "policy_host.h"
#include "policy_json.h"

#define MAX_NAMES 32
#define MAX_VMS 4096
#define PAGE 4096ull

struct name_stats {
	char name[GMEM_POLICY_NAME_LEN];
	__u64 decided[GMEM_POLICY_CB_MAX][POLICY_DECISIONS]; /* acted on by the model */
	__u64 advice;                                        /* answered to clients */
};

/* Per VM and policy, so a client (a test, an operator) can see one VM's share exactly. */
struct vm_stats {
	__u32 vm;
	int name;
	__u64 decided[GMEM_POLICY_CB_MAX][POLICY_DECISIONS];
};

struct policy_host {
	struct policy_host_opts o;
	struct policy *active;
	struct name_stats *cur;
	struct hugemodel *model;
	struct name_stats names[MAX_NAMES];
	int nnames;
	__u64 swaps, failed_swaps;
	char last_error[512];
	struct prom_policy_row *rows;
	size_t caprows;
	struct vm_stats *vms;
	size_t nvms, capvms;
	__u64 vms_dropped; /* decisions of VMs beyond MAX_VMS (still in the totals) */
};

/* ---- the decider the model calls ----------------------------------------------------------- */

static struct vm_stats *vm_entry(struct policy_host *h, __u32 vm)
{
	int name = h->cur - h->names;
	size_t i;

	for (i = 0; i < h->nvms; i++)
		if (h->vms[i].vm == vm && h->vms[i].name == name)
			return &h->vms[i];
	if (h->nvms == h->capvms) {
		size_t n = h->capvms ? h->capvms * 2 : 16;
		struct vm_stats *nv;

		if (n > MAX_VMS)
			return NULL;
		nv = realloc(h->vms, n * sizeof(*nv));
		if (!nv)
			return NULL;
		h->vms = nv;
		h->capvms = n;
	}
	memset(&h->vms[h->nvms], 0, sizeof(h->vms[0]));
	h->vms[h->nvms].vm = vm;
	h->vms[h->nvms].name = name;
	return &h->vms[h->nvms++];
}

static int host_decide(struct policy_host *h, enum gmem_policy_cb cb, const void *ctx,
		       __u32 vm)
{
	struct policy_answer a;
	struct vm_stats *v;
	unsigned int slot;

	policy__decide(h->active, cb, ctx, &a);
	slot = policy__decision_slot(cb, a.value);
	h->cur->decided[cb][slot]++;
	v = vm_entry(h, vm);
	if (v)
		v->decided[cb][slot]++;
	else
		h->vms_dropped++;
	return a.value;
}

static int d_split(void *ctx, const struct gmem_split_ctx *c)
{
	return host_decide(ctx, GMEM_POLICY_SPLIT, c, c->vm);
}

static int d_merge(void *ctx, const struct gmem_merge_ctx *c)
{
	return host_decide(ctx, GMEM_POLICY_MERGE, c, c->vm);
}

static int d_alloc(void *ctx, const struct gmem_alloc_ctx *c)
{
	return host_decide(ctx, GMEM_POLICY_ALLOC, c, c->vm);
}

static struct name_stats *name_entry(struct policy_host *h, const char *name)
{
	int i;

	for (i = 0; i < h->nnames; i++)
		if (!strcmp(h->names[i].name, name))
			return &h->names[i];
	if (h->nnames == MAX_NAMES)
		return &h->names[MAX_NAMES - 1]; /* the last slot absorbs the overflow */
	snprintf(h->names[h->nnames].name, GMEM_POLICY_NAME_LEN, "%s", name);
	return &h->names[h->nnames++];
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int policy_host__new(struct policy_host **out, const struct policy_host_opts *opts)
{
	struct policy_host *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h)
		return -ENOMEM;
	if (opts)
		h->o = *opts;
	h->o.model.ctx_flags &= ~GMEM_POLF_WHATIF;
	h->model = hugemodel__new(&h->o.model, NULL);
	if (!h->model) {
		free(h);
		return -ENOMEM;
	}
	*out = h;
	return 0;
}

void policy_host__free(struct policy_host *h)
{
	if (!h)
		return;
	hugemodel__free(h->model);
	policy__close(h->active);
	free(h->rows);
	free(h->vms);
	free(h);
}

struct policy *policy_host__active(struct policy_host *h)
{
	return h->active;
}

int policy_host__set(struct policy_host *h, const char *spec, char *err, size_t errlen)
{
	struct hm_decider d = { d_split, d_merge, d_alloc, h };
	struct policy *p;
	char why[1024];
	int e;

	e = policy__open(&p, spec, &h->o.policy, why, sizeof(why));
	if (e) {
		h->failed_swaps++;
		if (h->active)
			snprintf(err, errlen, "%s; policy '%s' stays active", why,
				 policy__name(h->active));
		else
			snprintf(err, errlen, "%s; no policy is active", why);
		snprintf(h->last_error, sizeof(h->last_error), "%s", err);
		return e;
	}
	policy__close(h->active);
	h->active = p;
	h->cur = name_entry(h, policy__name(p));
	hugemodel__set_decider(h->model, &d);
	h->swaps++;
	return 0;
}

void policy_host__apply(struct policy_host *h, const struct gmem_event *e)
{
	/* the model runs while a policy is active: its state is that policy's (and its
	 * successors') view of the files */
	if (h->active)
		hugemodel__apply(h->model, e);
}

void policy_host__tick(struct policy_host *h, __u64 now_ns)
{
	if (h->active)
		hugemodel__tick(h->model, now_ns);
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static json_t *active_json(struct policy_host *h)
{
	const char *why;
	enum policy_so_state so;

	if (!h->active)
		return json_null();
	so = policy__struct_ops(h->active, &why);
	return json_pack("{s:s, s:s, s:s, s:s}", "name", policy__name(h->active), "path",
			 policy__path(h->active), "struct_ops", policy__so_state_name(so),
			 "struct_ops_reason", why);
}

static json_t *decided_json(const __u64 (*d)[POLICY_DECISIONS])
{
	json_t *o = json_object();
	unsigned int cb, k;

	for (cb = 0; o && cb < GMEM_POLICY_CB_MAX; cb++) {
		json_t *c = json_object();

		for (k = 0; c && k < POLICY_DECISIONS; k++)
			if (d[cb][k])
				json_object_set_new(c, policy__slot_name(cb, k),
						    json_integer(d[cb][k]));
		json_object_set_new(o, policy__cb_name(cb), c);
	}
	return o;
}

/* One VM's decisions, by policy: {"buddy": {"split": {"1M": 1}, ...}, ...}. */
static json_t *vm_json(struct policy_host *h, __u32 vm)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o && i < h->nvms; i++)
		if (h->vms[i].vm == vm)
			json_object_set_new(o, h->names[h->vms[i].name].name,
					    decided_json(h->vms[i].decided));
	return o;
}

json_t *policy_host__json(struct policy_host *h)
{
	const struct hugemodel_stats *st = hugemodel__stats(h->model);
	json_t *names = json_array();
	__u64 ns = 0, nm = 0;
	unsigned int a, b;
	int i;

	for (a = 0; a < HM_ORDERS; a++)
		for (b = 0; b < HM_ORDERS; b++) {
			ns += st->splits[a][b];
			nm += st->merges[a][b];
		}
	for (i = 0; names && i < h->nnames; i++)
		json_array_append_new(names, json_pack("{s:s, s:o, s:I}", "name", h->names[i].name,
						       "decisions", decided_json(h->names[i].decided),
						       "advice", (json_int_t)h->names[i].advice));
	return json_pack("{s:o, s:o, s:{s:i, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I}, "
			 "s:I, s:I, s:s}",
			 "active", active_json(h), "policies", names ? names : json_null(),
			 "model", "max_order", (int)hugemodel__opts(h->model)->max_order,
			 "populated_bytes", (json_int_t)(st->populated_pages * PAGE),
			 "huge_bytes", (json_int_t)(st->huge_pages * PAGE),
			 "coverage", st->coverage_final,
			 "splits", (json_int_t)ns, "merges", (json_int_t)nm,
			 "pingpongs", (json_int_t)st->pingpongs,
			 "pending_merges", (json_int_t)st->pending_merges,
			 "records", (json_int_t)st->events,
			 "untracked_files", (json_int_t)st->untracked,
			 "swaps", (json_int_t)h->swaps, "failed_swaps", (json_int_t)h->failed_swaps,
			 "last_error", h->last_error);
}

static json_t *fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *fail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", buf);
}

static int get_u64(json_t *req, const char *key, __u64 *v, bool required)
{
	json_t *j = json_object_get(req, key);

	if (!j)
		return required ? -ENOENT : 0;
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return -EINVAL;
	*v = json_integer_value(j);
	return 0;
}

static int get_name(json_t *req, const char *key, unsigned int max,
		    const char *(*name)(unsigned int), __u32 *v)
{
	json_t *j = json_object_get(req, key);
	unsigned int i;

	if (!j)
		return 0;
	if (json_is_integer(j) && json_integer_value(j) >= 0 && json_integer_value(j) < max) {
		*v = json_integer_value(j);
		return 0;
	}
	for (i = 0; json_is_string(j) && i < max; i++) {
		if (!strcmp(json_string_value(j), name(i))) {
			*v = i;
			return 0;
		}
	}
	return -EINVAL;
}

static json_t *decision_json(enum gmem_policy_cb cb, const void *ctx,
			     const struct policy_answer *a)
{
	json_t *o = policy_json__answer(cb, a);

	if (!o)
		return NULL;
	if (cb == GMEM_POLICY_SPLIT) {
		const struct gmem_split_ctx *c = ctx;

		json_object_set_new(o, "ino", json_integer(c->ino));
		json_object_set_new(o, "index", json_integer(c->index));
		json_object_set_new(o, "order", json_integer(c->order));
		json_object_set_new(o, "start", json_integer(c->start));
		json_object_set_new(o, "nr_pages", json_integer(c->nr_pages));
	} else if (cb == GMEM_POLICY_ALLOC) {
		const struct gmem_alloc_ctx *c = ctx;

		json_object_set_new(o, "ino", json_integer(c->ino));
		json_object_set_new(o, "index", json_integer(c->index));
		json_object_set_new(o, "max_order", json_integer(c->max_order));
	} else {
		const struct gmem_merge_ctx *c = ctx;

		json_object_set_new(o, "ino", json_integer(c->ino));
		json_object_set_new(o, "index", json_integer(c->index));
		json_object_set_new(o, "order", json_integer(c->order));
	}
	return o;
}

/* {"cmd": "decide", "callback": CB, "ctx": {...}}: one decision on a given context; without
 * a "hist", the history of (ino, index) in gmemd's model is filled in. */
static json_t *decide_ctx(struct policy_host *h, json_t *req)
{
	union {
		struct gmem_split_ctx s;
		struct gmem_merge_ctx m;
		struct gmem_alloc_ctx a;
	} ctx;
	json_t *c = json_object_get(req, "ctx"), *arr;
	const char *cbname = json_string_value(json_object_get(req, "callback"));
	struct gmem_region_hist *hist = NULL;
	struct policy_answer ans;
	int cb = policy__cb_parse(cbname);
	char err[256];
	__u64 ino = 0, index = 0;

	if (cb < 0)
		return fail("bad request: \"callback\" must be split, merge or alloc_order");
	if (policy_json__ctx(cb, c, &ctx, err, sizeof(err)))
		return fail("bad request: ctx: %s", err);
	switch (cb) {
	case GMEM_POLICY_SPLIT:
		ctx.s.flags |= GMEM_POLF_ADVICE;
		hist = &ctx.s.hist;
		ino = ctx.s.ino;
		index = ctx.s.index;
		break;
	case GMEM_POLICY_MERGE:
		ctx.m.flags |= GMEM_POLF_ADVICE;
		hist = &ctx.m.hist;
		ino = ctx.m.ino;
		index = ctx.m.index;
		break;
	default:
		ctx.a.flags |= GMEM_POLF_ADVICE;
		hist = &ctx.a.hist;
		ino = ctx.a.ino;
		index = ctx.a.index;
		break;
	}
	if (!policy_json__has_hist(c) && ino)
		hugemodel__hist(h->model, ino, index, 0, hist);
	policy__decide(h->active, cb, &ctx, &ans);
	h->cur->advice++;
	arr = json_array();
	json_array_append_new(arr, decision_json(cb, &ctx, &ans));
	return json_pack("{s:b, s:s, s:s, s:o}", "ok", 1, "policy", policy__name(h->active),
			 "op", "ctx", "decisions", arr);
}

/* {"cmd": "decide", "op": "punch" | "convert" | "fault", ...}: what gmemd's model would ask
 * the active policy for that operation now, and the answers. Nothing changes. */
static json_t *decide_op(struct policy_host *h, const char *op, json_t *req)
{
	struct hm_plan_req pr = { .source = GMEM_SRC_GUEST_FAULT };
	struct policy_answer ans[HM_PLAN_MAX];
	struct gmem_split_ctx sc[HM_PLAN_MAX];
	struct gmem_alloc_ctx ac[HM_PLAN_MAX];
	unsigned int i, ns = 0, na = 0;
	struct hm_plan *plan;
	__u64 off = 0, len = 0;
	json_t *arr;
	int e;

	if (!strcmp(op, "punch")) {
		pr.op = HM_PLAN_PUNCH;
		if (get_u64(req, "ino", &pr.ino, true) || get_u64(req, "offset", &off, true) ||
		    get_u64(req, "len", &len, true))
			return fail("bad request: punch needs ino, offset and len (bytes)");
	} else if (!strcmp(op, "convert")) {
		pr.op = HM_PLAN_CONVERT;
		if (get_name(req, "to", GMEM_DIR_MAX, model__dir_name, &pr.to))
			return fail("bad request: \"to\" must be shared or private");
		if (json_object_get(req, "gpa")) {
			__u64 vm = 0;

			if (get_u64(req, "vm", &vm, true) || get_u64(req, "gpa", &pr.gpa, true) ||
			    get_u64(req, "size", &pr.size, true))
				return fail("bad request: convert needs vm, gpa and size, or ino, "
					    "offset and len");
			pr.vm = vm;
		} else if (get_u64(req, "ino", &pr.ino, true) ||
			   get_u64(req, "offset", &off, true) || get_u64(req, "len", &len, true)) {
			return fail("bad request: convert needs vm, gpa and size, or ino, offset "
				    "and len");
		}
	} else if (!strcmp(op, "fault")) {
		pr.op = HM_PLAN_FAULT;
		if (get_u64(req, "ino", &pr.ino, true) || get_u64(req, "index", &pr.first, true))
			return fail("bad request: fault needs ino and index (a page)");
		if (get_name(req, "source", GMEM_SRC_MAX, model__source_name, &pr.source))
			return fail("bad request: unknown source");
		pr.n = 1;
	} else {
		return fail("bad request: op must be punch, convert or fault");
	}
	if (pr.op != HM_PLAN_FAULT && !pr.gpa) {
		pr.first = off / PAGE;
		pr.n = (off + len) / PAGE - pr.first;
	}
	plan = malloc(sizeof(*plan));
	if (!plan)
		return fail("out of memory");
	e = hugemodel__plan(h->model, &pr, plan);
	if (e == -ENOENT) {
		free(plan);
		if (pr.gpa)
			return fail("no memslot of vm %u that gmemd has seen maps gpa 0x%llx",
				    pr.vm, (unsigned long long)pr.gpa);
		return fail("gmemd's model has no guest_memfd inode %llu (not seen since the "
			    "policy became active)", (unsigned long long)pr.ino);
	}
	for (i = 0; i < plan->n; i++) {
		if (plan->cb[i] == GMEM_POLICY_SPLIT)
			sc[ns++] = plan->ctx[i].split;
		else
			ac[na++] = plan->ctx[i].alloc;
	}
	free(plan);
	arr = json_array();
	if (ns) {
		policy__batch(h->active, GMEM_POLICY_SPLIT, sc, ns, ans);
		for (i = 0; i < ns; i++)
			json_array_append_new(arr, decision_json(GMEM_POLICY_SPLIT, &sc[i], &ans[i]));
	}
	if (na) {
		policy__batch(h->active, GMEM_POLICY_ALLOC, ac, na, ans);
		for (i = 0; i < na; i++)
			json_array_append_new(arr, decision_json(GMEM_POLICY_ALLOC, &ac[i], &ans[i]));
	}
	h->cur->advice += ns + na;
	return json_pack("{s:b, s:s, s:s, s:o}", "ok", 1, "policy", policy__name(h->active),
			 "op", op, "decisions", arr);
}

json_t *policy_host__command(struct policy_host *h, const char *cmd, json_t *req)
{
	if (!strcmp(cmd, "policy")) {
		json_t *o = policy_host__json(h), *vm = json_object_get(req, "vm");

		if (o && json_is_integer(vm))
			json_object_set_new(o, "vm", json_pack("{s:I, s:o}", "vm",
				json_integer_value(vm), "decisions",
				vm_json(h, (__u32)json_integer_value(vm))));
		if (o)
			json_object_set_new(o, "ok", json_true());
		return o;
	}
	if (!strcmp(cmd, "policy_set")) {
		const char *spec = json_string_value(json_object_get(req, "policy"));
		const char *prev = h->active ? policy__name(h->active) : NULL;
		char prevbuf[GMEM_POLICY_NAME_LEN] = "", err[1024];

		if (!spec)
			return fail("bad request: policy_set needs \"policy\": a name or a path "
				    "to a .bpf.o");
		if (prev)
			snprintf(prevbuf, sizeof(prevbuf), "%s", prev);
		if (policy_host__set(h, spec, err, sizeof(err)))
			return json_pack("{s:b, s:s, s:o}", "ok", 0, "error", err, "active",
					 active_json(h));
		return json_pack("{s:b, s:o, s:o}", "ok", 1, "active", active_json(h), "previous",
				 prevbuf[0] ? json_string(prevbuf) : json_null());
	}
	if (!strcmp(cmd, "decide")) {
		const char *op = json_string_value(json_object_get(req, "op"));

		if (!h->active)
			return fail("no policy is active (start gmemd with --policy NAME, or send "
				    "policy_set)");
		if (op)
			return decide_op(h, op, req);
		return decide_ctx(h, req);
	}
	return NULL;
}

/* ---- metrics ------------------------------------------------------------------------------ */

void policy_host__metrics(struct policy_host *h, struct prom_extra *x)
{
	size_t n = 0, need = (size_t)h->nnames * GMEM_POLICY_CB_MAX * POLICY_DECISIONS;
	unsigned int cb, k;
	int i;

	x->policy_family = true;
	if (need > h->caprows) {
		struct prom_policy_row *r = realloc(h->rows, need * sizeof(*r));

		if (!r)
			return;
		h->rows = r;
		h->caprows = need;
	}
	for (i = 0; i < h->nnames; i++)
		for (cb = 0; cb < GMEM_POLICY_CB_MAX; cb++)
			for (k = 0; k < POLICY_DECISIONS; k++)
				if (h->names[i].decided[cb][k])
					h->rows[n++] = (struct prom_policy_row){
						h->names[i].name, policy__cb_name(cb),
						policy__slot_name(cb, k), h->names[i].decided[cb][k],
					};
	x->policy_rows = h->rows;
	x->nr_policy_rows = n;
}
