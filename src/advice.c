// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * advice.c - the client side of "decide" (include/gmem_advice.h).
 *
 * One connection per handle, with a buffered line reader: a request costs one write and
 * usually one read, which matters to a VMM asking before every punch hole.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl.h"
#include "gmem_advice.h"
#include "policy.h"
#include "policy_json.h"

struct gmem_advice {
	int fd;
	size_t len;
	char buf[1 << 16];
	char err[512];
};

const char *gmem_advice__error(const struct gmem_advice *a)
{
	return a->err;
}

/* One reply line, parsed. */
static int read_reply(struct gmem_advice *a, json_t **out)
{
	json_error_t jerr;
	char *nl;
	ssize_t n;

	while (!(nl = memchr(a->buf, '\n', a->len))) {
		if (a->len == sizeof(a->buf))
			return -EPROTO;
		n = read(a->fd, a->buf + a->len, sizeof(a->buf) - a->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -ECONNRESET;
		a->len += n;
	}
	*nl = 0;
	*out = json_loads(a->buf, 0, &jerr);
	a->len -= nl + 1 - a->buf;
	memmove(a->buf, nl + 1, a->len);
	return *out ? 0 : -EPROTO;
}

static int call(struct gmem_advice *a, json_t *req, json_t **resp)
{
	char *text = json_dumps(req, JSON_COMPACT);
	int e;

	json_decref(req);
	if (!text)
		return -ENOMEM;
	e = ctl__write_all(a->fd, text, strlen(text));
	if (!e)
		e = ctl__write_all(a->fd, "\n", 1);
	free(text);
	if (!e)
		e = read_reply(a, resp);
	if (e)
		return e;
	if (!json_is_true(json_object_get(*resp, "ok"))) {
		const char *why = json_string_value(json_object_get(*resp, "error"));

		snprintf(a->err, sizeof(a->err), "%s", why ? why : "refused");
		json_decref(*resp);
		*resp = NULL;
		return -EREMOTEIO;
	}
	a->err[0] = 0;
	return 0;
}

int gmem_advice__open(struct gmem_advice **out, const char *socket)
{
	struct gmem_advice *a = calloc(1, sizeof(*a));
	json_t *resp;
	int e;

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->fd = ctl__connect(socket ? socket : CTL_DEFAULT_SOCKET);
	if (a->fd < 0) {
		e = a->fd;
		free(a);
		return e;
	}
	e = call(a, json_pack("{s:s}", "cmd", "hello"), &resp);
	if (!e && json_integer_value(json_object_get(resp, "proto")) != CTL_PROTO_VERSION)
		e = -EPROTO;
	if (!e)
		json_decref(resp);
	if (e) {
		close(a->fd);
		free(a);
		return e;
	}
	*out = a;
	return 0;
}

void gmem_advice__close(struct gmem_advice *a)
{
	if (!a)
		return;
	close(a->fd);
	free(a);
}

static void fill_decision(json_t *o, struct gmem_advice_decision *d)
{
	json_t *mo = json_object_get(o, "max_order");

	memset(d, 0, sizeof(*d));
	d->ino = json_integer_value(json_object_get(o, "ino"));
	d->index = json_integer_value(json_object_get(o, "index"));
	d->answer = json_integer_value(json_object_get(o, "answer"));
	d->raw = json_integer_value(json_object_get(o, "raw"));
	d->callback = policy__cb_parse(json_string_value(json_object_get(o, "callback")));
	d->order = json_integer_value(mo ? mo : json_object_get(o, "order"));
	d->clamped = json_is_true(json_object_get(o, "clamped"));
}

static int ask(struct gmem_advice *a, json_t *req, struct gmem_advice_answer *ans)
{
	json_t *resp, *arr, *o;
	size_t i;
	int e;

	memset(ans, 0, sizeof(*ans));
	e = call(a, req, &resp);
	if (e)
		return e;
	arr = json_object_get(resp, "decisions");
	if (!json_is_array(arr)) {
		json_decref(resp);
		return -EPROTO;
	}
	snprintf(ans->policy, sizeof(ans->policy), "%s",
		 json_string_value(json_object_get(resp, "policy")) ?: "");
	json_array_foreach(arr, i, o) {
		if (ans->n == GMEM_ADVICE_MAX)
			break;
		fill_decision(o, &ans->d[ans->n++]);
	}
	json_decref(resp);
	return 0;
}

int gmem_advice__punch(struct gmem_advice *a, __u64 ino, __u64 offset, __u64 len,
		       struct gmem_advice_answer *ans)
{
	return ask(a, json_pack("{s:s, s:s, s:I, s:I, s:I}", "cmd", "decide", "op", "punch",
				"ino", (json_int_t)ino, "offset", (json_int_t)offset, "len",
				(json_int_t)len), ans);
}

int gmem_advice__convert(struct gmem_advice *a, __u32 vm, __u64 gpa, __u64 size, __u32 to,
			 struct gmem_advice_answer *ans)
{
	return ask(a, json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "cmd", "decide", "op",
				"convert", "vm", (json_int_t)vm, "gpa", (json_int_t)gpa, "size",
				(json_int_t)size, "to",
				to == GMEM_TO_SHARED ? "shared" : "private"), ans);
}

int gmem_advice__fault(struct gmem_advice *a, __u64 ino, __u64 index,
		       struct gmem_advice_answer *ans)
{
	return ask(a, json_pack("{s:s, s:s, s:I, s:I}", "cmd", "decide", "op", "fault", "ino",
				(json_int_t)ino, "index", (json_int_t)index), ans);
}

int gmem_advice__decide(struct gmem_advice *a, __u32 cb, const void *ctx, int hist_from_gmemd,
			struct gmem_advice_decision *d)
{
	struct gmem_advice_answer *ans;
	json_t *c = policy_json__ctx_to_json(cb, ctx);
	int e;

	if (!c)
		return -EINVAL;
	if (hist_from_gmemd)
		json_object_del(c, "hist");
	ans = malloc(sizeof(*ans));
	if (!ans) {
		json_decref(c);
		return -ENOMEM;
	}
	e = ask(a, json_pack("{s:s, s:s, s:o}", "cmd", "decide", "callback", policy__cb_name(cb),
			     "ctx", c), ans);
	if (!e && ans->n != 1)
		e = -EPROTO;
	if (!e)
		*d = ans->d[0];
	free(ans);
	return e;
}
