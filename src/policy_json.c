// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * policy_json.c - contexts <-> JSON through one field table per context type, so the JSON
 * names cannot drift from the C layout: each entry is the C member's name, offset and width.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "policy_json.h"

enum fkind {
	F_U64,
	F_U32,
	F_CAUSE,  /* u32, or a cause name */
	F_DIR,    /* u32, or "shared" / "private" */
	F_SOURCE, /* u32, or a source name */
};

struct field {
	const char *name;
	size_t off;
	enum fkind kind;
};

#define F(type, member, kind) { #member, offsetof(type, member), kind }

#define HIST_FIELDS(type)                                                                     \
	F(type, hist.age_ns, F_U64), F(type, hist.layout_age_ns, F_U64),                      \
	F(type, hist.since_conv_ns, F_U64), F(type, hist.since_punch_ns, F_U64),              \
	F(type, hist.since_split_ns, F_U64), F(type, hist.since_merge_ns, F_U64),             \
	F(type, hist.window_ns, F_U64), F(type, hist.conversions, F_U32),                     \
	F(type, hist.recent_conversions, F_U32), F(type, hist.punches, F_U32),                \
	F(type, hist.recent_punches, F_U32), F(type, hist.splits, F_U32),                     \
	F(type, hist.merges, F_U32), F(type, hist.shared_pages, F_U32),                       \
	F(type, hist.populated_pages, F_U32), F(type, hist.folios, F_U32),                    \
	F(type, hist.huge_pages, F_U32)

static const struct field split_fields[] = {
	F(struct gmem_split_ctx, ino, F_U64),	 F(struct gmem_split_ctx, index, F_U64),
	F(struct gmem_split_ctx, start, F_U64),	 F(struct gmem_split_ctx, nr_pages, F_U64),
	F(struct gmem_split_ctx, now_ns, F_U64), F(struct gmem_split_ctx, vm, F_U32),
	F(struct gmem_split_ctx, order, F_U32),	 F(struct gmem_split_ctx, cause, F_CAUSE),
	F(struct gmem_split_ctx, to, F_DIR),	 F(struct gmem_split_ctx, flags, F_U32),
	HIST_FIELDS(struct gmem_split_ctx),	 {},
};

static const struct field merge_fields[] = {
	F(struct gmem_merge_ctx, ino, F_U64),	    F(struct gmem_merge_ctx, index, F_U64),
	F(struct gmem_merge_ctx, now_ns, F_U64),    F(struct gmem_merge_ctx, vm, F_U32),
	F(struct gmem_merge_ctx, order, F_U32),	    F(struct gmem_merge_ctx, folios, F_U32),
	F(struct gmem_merge_ctx, min_order, F_U32), F(struct gmem_merge_ctx, flags, F_U32),
	HIST_FIELDS(struct gmem_merge_ctx),	    {},
};

static const struct field alloc_fields[] = {
	F(struct gmem_alloc_ctx, ino, F_U64),	    F(struct gmem_alloc_ctx, index, F_U64),
	F(struct gmem_alloc_ctx, nr_pages, F_U64),  F(struct gmem_alloc_ctx, now_ns, F_U64),
	F(struct gmem_alloc_ctx, vm, F_U32),	    F(struct gmem_alloc_ctx, max_order, F_U32),
	F(struct gmem_alloc_ctx, source, F_SOURCE), F(struct gmem_alloc_ctx, flags, F_U32),
	HIST_FIELDS(struct gmem_alloc_ctx),	    {},
};

static const struct field *fields_of(enum gmem_policy_cb cb)
{
	switch (cb) {
	case GMEM_POLICY_SPLIT:
		return split_fields;
	case GMEM_POLICY_MERGE:
		return merge_fields;
	case GMEM_POLICY_ALLOC:
		return alloc_fields;
	default:
		return NULL;
	}
}

static int name_value(enum fkind k, const char *s, __u64 *v)
{
	unsigned int i, n = k == F_CAUSE ? GMEM_SPLIT_CAUSE_MAX : k == F_DIR ? GMEM_DIR_MAX :
				 GMEM_SRC_MAX;

	for (i = 0; i < n; i++) {
		const char *name = k == F_CAUSE ? policy__cause_name(i) :
				   k == F_DIR	? model__dir_name(i) :
						  model__source_name(i);

		if (!strcmp(s, name)) {
			*v = i;
			return 0;
		}
	}
	return -EINVAL;
}

static int set_field(const struct field *f, void *ctx, json_t *v, const char *prefix, char *err,
		     size_t errlen)
{
	__u64 x;

	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		x = json_integer_value(v);
	} else if (json_is_null(v) && f->kind == F_U64) {
		x = ~0ull; /* GMEM_HIST_NEVER */
	} else if (json_is_string(v) && f->kind >= F_CAUSE &&
		   !name_value(f->kind, json_string_value(v), &x)) {
	} else {
		snprintf(err, errlen, "%s%s: expected a non-negative integer%s", prefix,
			 f->name + (*prefix ? 5 : 0), f->kind >= F_CAUSE ? " or a name" : "");
		return -EINVAL;
	}
	if (f->kind == F_U64) {
		memcpy((char *)ctx + f->off, &x, sizeof(x));
	} else {
		__u32 y = (__u32)x;

		if (x > 0xffffffffull) {
			snprintf(err, errlen, "%s%s: out of range", prefix,
				 f->name + (*prefix ? 5 : 0));
			return -EINVAL;
		}
		memcpy((char *)ctx + f->off, &y, sizeof(y));
	}
	return 0;
}

static const struct field *find(const struct field *fs, const char *name, bool hist)
{
	char full[64];

	snprintf(full, sizeof(full), "%s%s", hist ? "hist." : "", name);
	for (; fs->name; fs++)
		if (!strcmp(fs->name, full))
			return fs;
	return NULL;
}

int policy_json__ctx(enum gmem_policy_cb cb, json_t *o, void *ctx, char *err, size_t errlen)
{
	const struct field *fs = fields_of(cb);
	struct gmem_region_hist *h;
	const char *key;
	json_t *v, *hv;
	int e;

	if (!fs) {
		snprintf(err, errlen, "unknown callback");
		return -EINVAL;
	}
	if (!json_is_object(o)) {
		snprintf(err, errlen, "the context must be a JSON object");
		return -EINVAL;
	}
	memset(ctx, 0, policy__ctx_size(cb));
	/* hist sits at the same offset in all three contexts' field tables */
	h = (struct gmem_region_hist *)((char *)ctx + find(fs, "since_conv_ns", true)->off -
					offsetof(struct gmem_region_hist, since_conv_ns));
	h->since_conv_ns = h->since_punch_ns = GMEM_HIST_NEVER;
	h->since_split_ns = h->since_merge_ns = GMEM_HIST_NEVER;
	json_object_foreach(o, key, v) {
		const struct field *f;

		if (!strcmp(key, "hist")) {
			const char *hk;

			if (!json_is_object(v)) {
				snprintf(err, errlen, "hist: expected an object");
				return -EINVAL;
			}
			json_object_foreach(v, hk, hv) {
				f = find(fs, hk, true);
				if (!f) {
					snprintf(err, errlen, "hist.%s: no such field", hk);
					return -EINVAL;
				}
				e = set_field(f, ctx, hv, "hist.", err, errlen);
				if (e)
					return e;
			}
			continue;
		}
		f = find(fs, key, false);
		if (!f) {
			snprintf(err, errlen, "%s: no such field in the %s context", key,
				 policy__cb_name(cb));
			return -EINVAL;
		}
		e = set_field(f, ctx, v, "", err, errlen);
		if (e)
			return e;
	}
	return 0;
}

int policy_json__has_hist(json_t *o)
{
	return json_object_get(o, "hist") != NULL;
}

json_t *policy_json__ctx_to_json(enum gmem_policy_cb cb, const void *ctx)
{
	const struct field *f = fields_of(cb);
	json_t *o = json_object(), *h = json_object();

	if (!f || !o || !h) {
		json_decref(o);
		json_decref(h);
		return NULL;
	}
	for (; f->name; f++) {
		__u64 x = 0;
		__u32 y;
		bool hist = !strncmp(f->name, "hist.", 5);

		if (f->kind == F_U64) {
			memcpy(&x, (const char *)ctx + f->off, sizeof(x));
		} else {
			memcpy(&y, (const char *)ctx + f->off, sizeof(y));
			x = y;
		}
		json_object_set_new(hist ? h : o, f->name + (hist ? 5 : 0),
				    x == ~0ull && f->kind == F_U64 ? json_null() :
								     json_integer((json_int_t)x));
	}
	json_object_set_new(o, "hist", h);
	return o;
}

json_t *policy_json__answer(enum gmem_policy_cb cb, const struct policy_answer *a)
{
	return json_pack("{s:s, s:i, s:i, s:b, s:b, s:s}", "callback", policy__cb_name(cb),
			 "answer", a->value, "raw", a->raw, "clamped", a->clamped, "error",
			 a->error, "decision",
			 policy__slot_name(cb, policy__decision_slot(cb, a->value)));
}
