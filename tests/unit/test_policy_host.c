// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * gmemd's policy host on CONSTRUCTED records: the decisions it counts and exports as
 * gmem_policy_decisions_total (rendered exactly), the control commands policy, policy_set and
 * decide, and a swap that keeps the model. The policies run for real in the kernel's BPF VM
 * (root needed; the rendering case runs anywhere).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <bpf/libbpf.h>

#include "policy_host.h"
#include "prom.h"

#define M2  (2ull << 20)
#define INO 55
#define VM  77

#define EV(...) (&(struct gmem_event){ __VA_ARGS__ })

static void need_root(void)
{
	if (geteuid() != 0) {
		print_message("needs root for BPF_PROG_RUN: skipped\n");
		skip();
	}
}

static char *render(const struct prom_extra *x, bool om)
{
	struct model_opts mo = {};
	struct model *m = model__new(&mo);
	struct strbuf sb = STRBUF_INIT;
	char *s;

	assert_non_null(m);
	assert_int_equal(prom__render(m, x, &sb, om), 0);
	s = strbuf__detach(&sb, NULL);
	model__free(m);
	return s;
}

static void test_prom_family(void **state)
{
	const struct prom_policy_row rows[] = {
		{ "buddy", "split", "1M", 3 },
		{ "buddy", "alloc_order", "2M", 1 },
		{ "we\"ird", "merge", "never", 2 },
	};
	struct prom_extra x = { .policy_family = true, .policy_rows = rows, .nr_policy_rows = 3 };
	struct model_opts mo = {};
	struct strbuf sb = STRBUF_INIT;
	struct model *m;
	char *t;

	t = render(&x, false);
	assert_non_null(strstr(t, "# HELP gmem_policy_decisions_total Decisions the huge-page "
				  "policy made on the events seen, by policy, callback and "
				  "answer.\n# TYPE gmem_policy_decisions_total counter\n"
				  "gmem_policy_decisions_total{policy=\"buddy\",callback=\"split\","
				  "decision=\"1M\"} 3\n"
				  "gmem_policy_decisions_total{policy=\"buddy\",callback="
				  "\"alloc_order\",decision=\"2M\"} 1\n"
				  "gmem_policy_decisions_total{policy=\"we\\\"ird\",callback="
				  "\"merge\",decision=\"never\"} 2\n"));
	free(t);
	t = render(&x, true);
	assert_non_null(strstr(t, "# TYPE gmem_policy_decisions counter\n"));
	free(t);
	/* the family with no rows yet: HELP and TYPE only */
	x.nr_policy_rows = 0;
	t = render(&x, false);
	assert_non_null(strstr(t, "# TYPE gmem_policy_decisions_total counter\n# HELP "));
	free(t);
	/* no policy host: nothing of it */
	x.policy_family = false;
	t = render(&x, false);
	assert_null(strstr(t, "gmem_policy"));
	free(t);
	t = render(NULL, false);
	assert_null(strstr(t, "gmem_policy"));
	free(t);
	/* a row with a NULL label is refused */
	x = (struct prom_extra){ .policy_family = true, .policy_rows = (struct prom_policy_row[]){
					 { "p", NULL, "1M", 1 } }, .nr_policy_rows = 1 };
	m = model__new(&mo);
	assert_int_equal(prom__render(m, &x, &sb, false), -EINVAL);
	model__free(m);
	strbuf__release(&sb);
}

static void apply(struct policy_host *h, const struct gmem_event *e)
{
	policy_host__apply(h, e);
}

/* A 2 MiB shared file: one fault (2M), then punches at pages 0, 2 and 4 of 1 page each.
 * buddy: alloc 2m; page 0 splits 9 -> 8 (1m); [2,4) o1 splits with no choice; [4,8) o2
 * splits to 1 (8k). */
static void feed(struct policy_host *h, __u64 t)
{
	int i;

	apply(h, EV(.kind = GMEM_EV_FILE_CREATE, .ts_ns = t, .vm = VM, .ino = INO, .a = M2,
		    .b = 3));
	apply(h, EV(.kind = GMEM_EV_PAGE_ALLOC, .ts_ns = t + 1, .vm = VM, .ino = INO, .a = 0,
		    .b = 1, .sub = GMEM_SRC_USER_FAULT));
	for (i = 0; i < 3; i++)
		apply(h, EV(.kind = GMEM_EV_PUNCH_HOLE, .ts_ns = t + 2 + i, .vm = VM, .ino = INO,
			    .a = 2 * i * 4096ull, .b = 4096));
}

static json_t *cmd(struct policy_host *h, const char *c, const char *req)
{
	json_error_t jerr;
	json_t *r = json_loads(req, 0, &jerr), *out;

	assert_non_null(r);
	out = policy_host__command(h, c, r);
	json_decref(r);
	assert_non_null(out);
	return out;
}

static __u64 jget(json_t *o, const char *path)
{
	char buf[256], *p, *save = NULL;
	json_t *j = o;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = strtok_r(buf, ".", &save); p && j; p = strtok_r(NULL, ".", &save))
		j = json_is_array(j) ? json_array_get(j, strtoul(p, NULL, 10)) :
				       json_object_get(j, p);
	assert_non_null(j);
	return json_integer_value(j);
}

static void test_host(void **state)
{
	struct policy_host *h;
	struct prom_extra x = {};
	char err[1024];
	json_t *r;
	size_t i;

	need_root();
	assert_int_equal(policy_host__new(&h, NULL), 0);
	/* no policy: the model does not run, decide is refused */
	r = cmd(h, "decide", "{\"op\":\"fault\",\"ino\":55,\"index\":0}");
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_non_null(strstr(json_string_value(json_object_get(r, "error")),
			       "no policy is active"));
	json_decref(r);
	assert_null(policy_host__command(h, "snapshot", NULL));

	assert_int_equal(policy_host__set(h, "buddy", err, sizeof(err)), 0);
	feed(h, 1000);
	policy_host__metrics(h, &x);
	assert_true(x.policy_family);
	assert_int_equal(x.nr_policy_rows, 3);
	for (i = 0; i < x.nr_policy_rows; i++) {
		const struct prom_policy_row *row = &x.policy_rows[i];

		assert_string_equal(row->policy, "buddy");
		assert_int_equal(row->count, 1);
	}
	assert_string_equal(x.policy_rows[0].callback, "split");
	assert_string_equal(x.policy_rows[0].decision, "8k");
	assert_string_equal(x.policy_rows[1].decision, "1M");
	assert_string_equal(x.policy_rows[2].callback, "alloc_order");
	assert_string_equal(x.policy_rows[2].decision, "2M");

	r = cmd(h, "policy", "{\"vm\":77}");
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "active"),
							      "name")), "buddy");
	assert_int_equal(jget(r, "vm.decisions.buddy.split.1M"), 1);
	assert_int_equal(jget(r, "vm.decisions.buddy.split.8k"), 1);
	assert_int_equal(jget(r, "vm.decisions.buddy.alloc_order.2M"), 1);
	assert_int_equal(jget(r, "model.populated_bytes"), (512 - 3) * 4096);
	json_decref(r);

	/* advice: the folio [8,16) o3 would split to 2 (16k); nothing changes */
	r = cmd(h, "decide", "{\"op\":\"punch\",\"ino\":55,\"offset\":40960,\"len\":4096}");
	assert_int_equal(json_array_size(json_object_get(r, "decisions")), 1);
	assert_int_equal(jget(r, "decisions.0.order"), 3);
	assert_int_equal(jget(r, "decisions.0.answer"), 2);
	assert_int_equal(jget(r, "decisions.0.index"), 8);
	json_decref(r);
	r = cmd(h, "decide", "{\"callback\":\"alloc_order\",\"ctx\":{\"ino\":55,\"index\":600,"
			     "\"max_order\":5}}");
	assert_int_equal(jget(r, "decisions.0.answer"), 5);
	json_decref(r);

	/* a swap to a broken policy keeps buddy; a good one keeps the model */
	assert_int_equal(policy_host__set(h, "nosuch", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "policy 'buddy' stays active"));
	assert_int_equal(policy_host__set(h, "split4k", err, sizeof(err)), 0);
	r = cmd(h, "policy", "{}");
	assert_int_equal(jget(r, "model.populated_bytes"), (512 - 3) * 4096);
	assert_int_equal(jget(r, "swaps"), 2);
	assert_int_equal(jget(r, "failed_swaps"), 1);
	assert_int_equal(jget(r, "policies.0.advice"), 2);
	json_decref(r);
	/* split4k decides from here on, on buddy's folios: [8,16) o3 splits to 4k */
	apply(h, EV(.kind = GMEM_EV_PUNCH_HOLE, .ts_ns = 2000, .vm = VM, .ino = INO, .a = 40960,
		    .b = 4096));
	policy_host__metrics(h, &x);
	assert_int_equal(x.nr_policy_rows, 4);
	assert_string_equal(x.policy_rows[3].policy, "split4k");
	assert_string_equal(x.policy_rows[3].callback, "split");
	assert_string_equal(x.policy_rows[3].decision, "4k");
	policy_host__free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prom_family),
		cmocka_unit_test(test_host),
	};

	libbpf_set_print(NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
