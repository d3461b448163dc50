// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Unit tests for the Prometheus / OpenMetrics rendering: exact lines for a small model, every
 * family's HELP and TYPE, the OpenMetrics differences, escaping, the file-series cap, and a
 * structural check of every line of a full render.
 */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "prom.h"

#define EV(...) (&(struct gmem_event){ __VA_ARGS__ })
#define APPLY(m, ...) assert_int_equal(model__apply(m, EV(__VA_ARGS__)), 0)

/* The docs/design.md contract: sample name (counters with _total) and type. */
static const struct {
	const char *name;
	const char *type;
} families[] = {
	{ "gmem_vm_info", "gauge" },
	{ "gmem_files", "gauge" },
	{ "gmem_files_created_total", "counter" },
	{ "gmem_files_released_total", "counter" },
	{ "gmem_file_size_bytes", "gauge" },
	{ "gmem_populated_bytes", "gauge" },
	{ "gmem_pages_allocated_total", "counter" },
	{ "gmem_pages_freed_total", "counter" },
	{ "gmem_events_dropped_total", "counter" },
	{ "gmem_punch_holes_total", "counter" },
	{ "gmem_invalidated_bytes_total", "counter" },
	{ "gmem_faults_total", "counter" },
	{ "gmem_memslot_binds_total", "counter" },
	{ "gmem_conversions_total", "counter" },
	{ "gmem_conversions_in_place_total", "counter" },
	{ "gmem_conversion_seconds", "histogram" },
	{ "gmem_conversion_exit_to_entry_seconds", "histogram" },
	{ "gmem_direct_map_removals_total", "counter" },
	{ "gmem_direct_map_restores_total", "counter" },
	{ "gmem_host_direct_map_bytes", "gauge" },
	{ "gmem_rmp_transitions_total", "counter" },
	{ "gmem_tdx_transitions_total", "counter" },
	{ "gmem_hugepage_splits_total", "counter" },
	{ "gmem_hugepage_merges_total", "counter" },
	{ "gmem_mapping_invalidations_total", "counter" },
	{ "gmem_mapping_invalidated_pages_total", "counter" },
	{ "gmemscope_probe_info", "gauge" },
	{ "gmemscope_events_total", "counter" },
	{ "gmemscope_events_dropped_total", "counter" },
	{ "gmemscope_file_series_capped", "gauge" },
};

#define NR_FAMILIES (sizeof(families) / sizeof(families[0]))

static const struct prom_probe_row probes[] = {
	{ "file_create", "tracepoint", "live" },
	{ "fault", "fentry", "unsupported" },
};

/* line (without its newline) is one whole line of text */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line))) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
		p++;
	}
	return false;
}

#define assert_line(text, line)                                       \
	do {                                                          \
		if (!has_line(text, line))                            \
			fail_msg("missing line: %s", line);           \
	} while (0)
#define assert_no_line(text, line)                                    \
	do {                                                          \
		if (has_line(text, line))                             \
			fail_msg("unexpected line: %s", line);        \
	} while (0)

static size_t count_prefix(const char *text, const char *prefix)
{
	size_t n = 0, k = strlen(prefix);
	const char *p = text;

	for (; *p; p = strchr(p, '\n') + 1) {
		if (!strncmp(p, prefix, k))
			n++;
		if (!strchr(p, '\n'))
			break;
	}
	return n;
}

static struct model *small_model(__u32 max_file_series)
{
	struct model_opts opts = { .retire_after_ns = 0, .max_file_series = max_file_series };
	struct model *m = model__new(&opts);

	assert_non_null(m);
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 1, .vm = 1234, .ino = 42, .a = 2 << 20);
	APPLY(m, .kind = GMEM_EV_BIND, .ts_ns = 2, .vm = 1234, .ino = 42);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 3, .vm = 1234, .ino = 42, .b = 3,
	      .sub = GMEM_SRC_GUEST_FAULT);
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .ts_ns = 4, .vm = 1234, .ino = 42, .b = 1);
	APPLY(m, .kind = GMEM_EV_PUNCH_HOLE, .ts_ns = 5, .vm = 1234, .ino = 42, .b = 8192);
	APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 10, .vm = 1234, .tid = 7,
	      .sub = GMEM_TO_PRIVATE);
	/* exactly 2^12 ns: inclusive le puts it in le=2^12 */
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 20, .vm = 1234, .tid = 7,
	      .sub = GMEM_TO_PRIVATE, .c = 4096);
	APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 10 + 1500000, .vm = 1234, .tid = 7);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 30, .vm = 1234, .tid = 8,
	      .sub = GMEM_TO_SHARED, .c = 100, .result = -EINVAL);
	APPLY(m, .kind = GMEM_EV_DMAP_REMOVE, .b = 512, .sub = GMEM_OWNER_SECRETMEM);
	APPLY(m, .kind = GMEM_EV_DMAP_SAMPLE, .a = 1 << 20, .b = 6ull << 30, .c = 2ull << 30);
	APPLY(m, .kind = GMEM_EV_LOST, .a = 2);
	return m;
}

static void render(const struct model *m, const struct prom_extra *extra, bool om,
		   struct strbuf *sb)
{
	strbuf__init(sb);
	assert_int_equal(prom__render(m, extra, sb, om), 0);
}

static void test_small_model_exact_lines(void **state)
{
	struct prom_extra extra = { .probes = probes, .nr_probes = 2 };
	struct model *m = small_model(0);
	struct strbuf sb;
	const char *t;

	render(m, &extra, false, &sb);
	t = strbuf__str(&sb);
	assert_line(t, "gmem_files{vm=\"1234\"} 1");
	assert_line(t, "gmem_files_created_total{vm=\"1234\"} 1");
	assert_line(t, "gmem_files_released_total{vm=\"1234\"} 0");
	assert_line(t, "gmem_file_size_bytes{vm=\"1234\",gmem=\"42\"} 2097152");
	assert_line(t, "gmem_populated_bytes{vm=\"1234\",gmem=\"42\"} 8192");
	assert_line(t, "gmem_pages_allocated_total{vm=\"1234\",source=\"guest_fault\"} 3");
	assert_line(t, "gmem_pages_allocated_total{vm=\"1234\",source=\"user_fault\"} 0");
	assert_line(t, "gmem_pages_allocated_total{vm=\"1234\",source=\"fallocate\"} 0");
	assert_line(t, "gmem_pages_allocated_total{vm=\"1234\",source=\"populate\"} 0");
	assert_line(t, "gmem_pages_allocated_total{vm=\"1234\",source=\"other\"} 0");
	assert_line(t, "gmem_pages_freed_total{vm=\"1234\"} 1");
	assert_line(t, "gmem_punch_holes_total{vm=\"1234\"} 1");
	assert_line(t, "gmem_invalidated_bytes_total{vm=\"1234\"} 8192");
	assert_line(t, "gmem_memslot_binds_total{vm=\"1234\"} 1");
	assert_line(t, "gmem_conversions_total{vm=\"1234\",to=\"private\",result=\"ok\"} 1");
	assert_line(t, "gmem_conversions_total{vm=\"1234\",to=\"private\",result=\"error\"} 0");
	assert_line(t, "gmem_conversions_total{vm=\"1234\",to=\"shared\",result=\"ok\"} 0");
	assert_line(t, "gmem_conversions_total{vm=\"1234\",to=\"shared\",result=\"error\"} 1");
	assert_line(t, "gmem_conversion_seconds_bucket{vm=\"1234\",to=\"private\","
		       "le=\"0.000001024\"} 0");
	assert_line(t, "gmem_conversion_seconds_bucket{vm=\"1234\",to=\"private\","
		       "le=\"0.000002048\"} 0");
	assert_line(t, "gmem_conversion_seconds_bucket{vm=\"1234\",to=\"private\","
		       "le=\"0.000004096\"} 1");
	assert_line(t, "gmem_conversion_seconds_bucket{vm=\"1234\",to=\"private\","
		       "le=\"68.719476736\"} 1");
	assert_line(t, "gmem_conversion_seconds_bucket{vm=\"1234\",to=\"private\",le=\"+Inf\"} 1");
	assert_line(t, "gmem_conversion_seconds_sum{vm=\"1234\",to=\"private\"} 0.000004096");
	assert_line(t, "gmem_conversion_seconds_count{vm=\"1234\",to=\"private\"} 1");
	/* the failed call is not timed: no observation, so no series yet */
	assert_null(strstr(t, "gmem_conversion_seconds_count{vm=\"1234\",to=\"shared\"}"));
	assert_null(strstr(t, "gmem_conversion_seconds_bucket{vm=\"1234\",to=\"shared\""));
	/* 1.5 ms end to end: first in le=2^21 ns = 2.097152 ms */
	assert_line(t, "gmem_conversion_exit_to_entry_seconds_bucket{vm=\"1234\",to=\"private\","
		       "le=\"0.001048576\"} 0");
	assert_line(t, "gmem_conversion_exit_to_entry_seconds_bucket{vm=\"1234\",to=\"private\","
		       "le=\"0.002097152\"} 1");
	assert_line(t, "gmem_conversion_exit_to_entry_seconds_sum{vm=\"1234\",to=\"private\"} "
		       "0.0015");
	assert_line(t, "gmem_direct_map_removals_total{owner=\"gmem\"} 0");
	assert_line(t, "gmem_direct_map_removals_total{owner=\"secretmem\"} 512");
	assert_line(t, "gmem_direct_map_restores_total{owner=\"gmem\"} 0");
	assert_line(t, "gmem_direct_map_restores_total{owner=\"secretmem\"} 0");
	assert_line(t, "gmem_host_direct_map_bytes{page_size=\"4k\"} 1048576");
	assert_line(t, "gmem_host_direct_map_bytes{page_size=\"2M\"} 6442450944");
	assert_line(t, "gmem_host_direct_map_bytes{page_size=\"1G\"} 2147483648");
	assert_line(t, "gmemscope_probe_info{event=\"file_create\",tier=\"tracepoint\","
		       "state=\"live\"} 1");
	assert_line(t, "gmemscope_probe_info{event=\"fault\",tier=\"fentry\","
		       "state=\"unsupported\"} 1");
	assert_line(t, "gmemscope_events_total 11");
	assert_line(t, "gmemscope_events_dropped_total 2");
	assert_line(t, "gmemscope_file_series_capped 0");
	/* 27 finite buckets and +Inf per series, only where there were observations: the one
	 * timed conversion to private, and its exit to entry */
	assert_int_equal(count_prefix(t, "gmem_conversion_seconds_bucket{"), 28);
	assert_int_equal(count_prefix(t, "gmem_conversion_exit_to_entry_seconds_bucket{"), 28);
	/* no faults seen, no RMP/TDX seen, no splits: families without samples */
	assert_int_equal(count_prefix(t, "gmem_faults_total{"), 0);
	assert_int_equal(count_prefix(t, "gmem_rmp_transitions_total{"), 0);
	assert_int_equal(count_prefix(t, "gmem_tdx_transitions_total{"), 0);
	assert_int_equal(count_prefix(t, "gmem_hugepage_splits_total{"), 0);
	assert_int_equal(count_prefix(t, "gmem_mapping_invalidations_total{"), 0);
	/* 0.0.4 has no EOF marker */
	assert_null(strstr(t, "# EOF"));
	strbuf__release(&sb);
	model__free(m);
}

static void check_help_type(const char *t, bool om)
{
	char want[160];
	size_t i, n;

	for (i = 0; i < NR_FAMILIES; i++) {
		const char *name = families[i].name, *type = families[i].type;

		n = strlen(name);
		if (om && !strcmp(type, "counter"))
			n -= strlen("_total");
		if (om && strstr(name, "_info")) {
			n -= strlen("_info");
			type = "info";
		}
		snprintf(want, sizeof(want), "\n# HELP %.*s ", (int)n, name);
		if (!strstr(t, want) && strncmp(t, want + 1, strlen(want + 1)))
			fail_msg("no HELP for %s", name);
		snprintf(want, sizeof(want), "# TYPE %.*s %s", (int)n, name, type);
		assert_line(t, want);
	}
	/* nothing but these families (and no family twice) */
	assert_int_equal(count_prefix(t, "# TYPE "), NR_FAMILIES);
	assert_int_equal(count_prefix(t, "# HELP "), NR_FAMILIES);
}

static void test_help_type_every_family(void **state)
{
	struct model *m = model__new(NULL);
	struct strbuf sb;

	/* even an empty model declares every family */
	assert_non_null(m);
	render(m, NULL, false, &sb);
	check_help_type(strbuf__str(&sb), false);
	strbuf__release(&sb);
	render(m, NULL, true, &sb);
	check_help_type(strbuf__str(&sb), true);
	strbuf__release(&sb);
	model__free(m);

	m = small_model(0);
	render(m, NULL, false, &sb);
	check_help_type(strbuf__str(&sb), false);
	strbuf__release(&sb);
	render(m, NULL, true, &sb);
	check_help_type(strbuf__str(&sb), true);
	strbuf__release(&sb);
	model__free(m);
}

static void test_openmetrics(void **state)
{
	struct prom_extra extra = { .probes = probes, .nr_probes = 2 };
	struct model *m = small_model(0);
	struct strbuf sb;
	const char *t;
	size_t len;

	render(m, &extra, true, &sb);
	t = strbuf__str(&sb);
	len = strlen(t);
	assert_true(len > 6);
	assert_string_equal(t + len - 6, "# EOF\n");
	assert_int_equal(count_prefix(t, "# EOF"), 1);
	/* counter families lose _total, their samples keep it */
	assert_line(t, "# TYPE gmem_files_created counter");
	assert_line(t, "gmem_files_created_total{vm=\"1234\"} 1");
	assert_line(t, "# TYPE gmem_conversion_seconds histogram");
	assert_line(t, "# TYPE gmemscope_probe info");
	assert_line(t, "gmemscope_probe_info{event=\"file_create\",tier=\"tracepoint\","
		       "state=\"live\"} 1");
	assert_line(t, "gmemscope_events_total 11");
	assert_null(strstr(t, "# TYPE gmem_files_created_total"));
	strbuf__release(&sb);
	model__free(m);
}

static void test_escaping(void **state)
{
	static const struct prom_probe_row odd[] = { { "a\"b\\c\nd", "tp", "live" } };
	static const struct prom_stat stats[] = {
		{ .name = "gmemscope_odd", .help = "back\\slash\nnew \"q\"", .u = 1 },
	};
	struct prom_extra extra = { .probes = odd, .nr_probes = 1, .stats = stats, .nr_stats = 1 };
	struct model *m = model__new(NULL);
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(prom__escape_label(&sb, "plain"), 0);
	assert_string_equal(strbuf__str(&sb), "plain");
	strbuf__reset(&sb);
	assert_int_equal(prom__escape_label(&sb, "\\\"\n\"x"), 0);
	assert_string_equal(strbuf__str(&sb), "\\\\\\\"\\n\\\"x");
	strbuf__release(&sb);

	render(m, &extra, false, &sb);
	assert_line(strbuf__str(&sb),
		    "gmemscope_probe_info{event=\"a\\\"b\\\\c\\nd\",tier=\"tp\",state=\"live\"} 1");
	/* 0.0.4 HELP escapes backslash and newline only */
	assert_line(strbuf__str(&sb), "# HELP gmemscope_odd back\\\\slash\\nnew \"q\"");
	strbuf__release(&sb);
	/* OpenMetrics' HELP escapes quotes too */
	render(m, &extra, true, &sb);
	assert_line(strbuf__str(&sb), "# HELP gmemscope_odd back\\\\slash\\nnew \\\"q\\\"");
	strbuf__release(&sb);
	model__free(m);
}

struct namer {
	unsigned int calls[4];
	const char *names[4]; /* by pid */
};

static void fake_namer(void *ctx, __u32 pid, char *buf, size_t len)
{
	struct namer *n = ctx;

	assert_true(pid > 0 && pid < 4);
	n->calls[pid]++;
	snprintf(buf, len, "%s", n->names[pid]);
}

/* CONSTRUCTED: gmem_vm_info is one series per VM the model holds, named once when the model
 * meets the VM (not at render), escaped, renamed when a create revives a gone pid (a reused
 * pid), and gone with the VM when it retires. */
static void test_vm_info(void **state)
{
	struct namer n = { .names = { "", "qemu \"db01\"", "back\\slash\nline", "new" } };
	struct model_opts opts = { .retire_after_ns = 100, .name_fn = fake_namer, .name_ctx = &n };
	struct model *m = model__new(&opts);
	struct strbuf sb;
	const char *t;

	assert_non_null(m);
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 1, .vm = 1, .ino = 10, .a = 4096);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 2, .vm = 1, .ino = 10, .b = 1,
	      .sub = GMEM_SRC_USER_FAULT);
	APPLY(m, .kind = GMEM_EV_FILE_DISCOVER, .ts_ns = 3, .vm = 2, .ino = 20, .a = 4096);
	APPLY(m, .kind = GMEM_EV_LOST, .a = 1); /* vm 0: no process to name */
	assert_int_equal(n.calls[1], 1);
	assert_int_equal(n.calls[2], 1);
	assert_string_equal(model__vm(m, 1)->name, "qemu \"db01\"");

	render(m, NULL, false, &sb);
	t = strbuf__str(&sb);
	assert_line(t, "# TYPE gmem_vm_info gauge");
	assert_line(t, "gmem_vm_info{vm=\"1\",name=\"qemu \\\"db01\\\"\"} 1");
	assert_line(t, "gmem_vm_info{vm=\"2\",name=\"back\\\\slash\\nline\"} 1");
	assert_int_equal(count_prefix(t, "gmem_vm_info{"), 2);
	strbuf__release(&sb);
	/* rendering reads no name */
	assert_int_equal(n.calls[1] + n.calls[2], 2);
	render(m, NULL, true, &sb);
	assert_line(strbuf__str(&sb), "# TYPE gmem_vm info");
	strbuf__release(&sb);

	/* pid 1 exits; the name outlives the process, until the VM retires */
	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ts_ns = 4, .vm = 1, .ino = 10);
	APPLY(m, .kind = GMEM_EV_VM_EXIT, .ts_ns = 5, .vm = 1);
	n.names[1] = "reused";
	render(m, NULL, false, &sb);
	assert_line(strbuf__str(&sb), "gmem_vm_info{vm=\"1\",name=\"qemu \\\"db01\\\"\"} 1");
	strbuf__release(&sb);
	/* a create under the gone pid is a new process: named again */
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 6, .vm = 1, .ino = 11, .a = 4096);
	assert_int_equal(n.calls[1], 2);
	assert_string_equal(model__vm(m, 1)->name, "reused");
	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ts_ns = 7, .vm = 1, .ino = 11);
	APPLY(m, .kind = GMEM_EV_VM_EXIT, .ts_ns = 8, .vm = 1);
	assert_int_equal(model__tick(m, 1000), 1);
	render(m, NULL, false, &sb);
	t = strbuf__str(&sb);
	assert_int_equal(count_prefix(t, "gmem_vm_info{vm=\"1\""), 0);
	assert_int_equal(count_prefix(t, "gmem_vm_info{"), 1);
	strbuf__release(&sb);
	model__free(m);

	/* without a namer (a replay) every VM still has its series, with an empty name */
	m = model__new(NULL);
	assert_non_null(m);
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 1, .vm = 3, .ino = 30, .a = 4096);
	render(m, NULL, false, &sb);
	assert_line(strbuf__str(&sb), "gmem_vm_info{vm=\"3\",name=\"\"} 1");
	strbuf__release(&sb);
	model__free(m);
}

static void test_file_series_cap(void **state)
{
	struct model_opts opts = { .max_file_series = 2 };
	struct model *m = model__new(&opts);
	struct strbuf sb;
	const char *t;
	__u64 ino;

	assert_non_null(m);
	/* five files over two VMs; the cap keeps the lowest (vm, ino) */
	for (ino = 5; ino >= 1; ino--)
		APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = ino % 2 ? 20 : 10, .ino = ino,
		      .a = ino * 4096);
	render(m, NULL, false, &sb);
	t = strbuf__str(&sb);
	assert_int_equal(count_prefix(t, "gmem_file_size_bytes{"), 2);
	assert_int_equal(count_prefix(t, "gmem_populated_bytes{"), 2);
	assert_line(t, "gmem_file_size_bytes{vm=\"10\",gmem=\"2\"} 8192");
	assert_line(t, "gmem_file_size_bytes{vm=\"10\",gmem=\"4\"} 16384");
	assert_line(t, "gmem_populated_bytes{vm=\"10\",gmem=\"2\"} 0");
	assert_no_line(t, "gmem_file_size_bytes{vm=\"20\",gmem=\"1\"} 4096");
	assert_line(t, "gmemscope_file_series_capped 3");
	/* the per-VM gauges still count every file */
	assert_line(t, "gmem_files{vm=\"10\"} 2");
	assert_line(t, "gmem_files{vm=\"20\"} 3");
	strbuf__release(&sb);
	model__free(m);

	/* 0 = no cap */
	opts.max_file_series = 0;
	m = model__new(&opts);
	for (ino = 1; ino <= 5; ino++)
		APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 10, .ino = ino);
	render(m, NULL, false, &sb);
	assert_int_equal(count_prefix(strbuf__str(&sb), "gmem_file_size_bytes{"), 5);
	assert_line(strbuf__str(&sb), "gmemscope_file_series_capped 0");
	strbuf__release(&sb);
	model__free(m);
}

static void test_fmt_seconds(void **state)
{
	char buf[32];

	prom__fmt_seconds(buf, sizeof(buf), 0);
	assert_string_equal(buf, "0");
	prom__fmt_seconds(buf, sizeof(buf), 1);
	assert_string_equal(buf, "0.000000001");
	prom__fmt_seconds(buf, sizeof(buf), 1024);
	assert_string_equal(buf, "0.000001024");
	prom__fmt_seconds(buf, sizeof(buf), 1000000000);
	assert_string_equal(buf, "1");
	prom__fmt_seconds(buf, sizeof(buf), 1500000000);
	assert_string_equal(buf, "1.5");
	prom__fmt_seconds(buf, sizeof(buf), 1ull << 36);
	assert_string_equal(buf, "68.719476736");
	prom__fmt_seconds(buf, sizeof(buf), UINT64_MAX);
	assert_string_equal(buf, "18446744073.709551615");
}

static void test_rmp_tdx_faults_splits(void **state)
{
	struct model *m = model__new(NULL);
	struct strbuf sb;
	const char *t;

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 1, .ino = 1);
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .vm = 2, .ino = 2);
	/* constructed: this kernel has no SEV-SNP and no huge guest_memfd folios */
	APPLY(m, .kind = GMEM_EV_RMP, .vm = 1, .sub = GMEM_RMP_PSMASH, .flags = GMEM_EVF_SCENARIO);
	APPLY(m, .kind = GMEM_EV_SPLIT, .vm = 2, .ino = 2, .order = 18, .to_order = 9,
	      .flags = GMEM_EVF_SCENARIO);
	APPLY(m, .kind = GMEM_EV_MERGE, .vm = 2, .ino = 2, .order = 9, .to_order = 18,
	      .flags = GMEM_EVF_SCENARIO);
	APPLY(m, .kind = GMEM_EV_FAULT, .vm = 2, .ino = 2, .c = 2000,
	      .sub = GMEM_SRC_GUEST_FAULT);
	render(m, NULL, false, &sb);
	t = strbuf__str(&sb);
	/* once RMP is live, every op for every VM */
	assert_int_equal(count_prefix(t, "gmem_rmp_transitions_total{"), 2 * GMEM_RMP_OP_MAX);
	assert_line(t, "gmem_rmp_transitions_total{vm=\"1\",op=\"psmash\"} 1");
	assert_line(t, "gmem_rmp_transitions_total{vm=\"1\",op=\"make_private\"} 0");
	assert_line(t, "gmem_rmp_transitions_total{vm=\"2\",op=\"gmem_invalidate\"} 0");
	assert_int_equal(count_prefix(t, "gmem_tdx_transitions_total{"), 0);
	/* once faults are seen, every source for every VM */
	assert_int_equal(count_prefix(t, "gmem_faults_total{"), 2 * GMEM_SRC_MAX);
	assert_line(t, "gmem_faults_total{vm=\"2\",source=\"guest_fault\"} 1");
	assert_line(t, "gmem_faults_total{vm=\"1\",source=\"guest_fault\"} 0");
	assert_line(t, "gmem_hugepage_splits_total{vm=\"2\",from_order=\"18\",to_order=\"9\"} 1");
	assert_line(t, "gmem_hugepage_merges_total{vm=\"2\",from_order=\"18\",to_order=\"9\"} 0");
	assert_line(t, "gmem_hugepage_merges_total{vm=\"2\",from_order=\"9\",to_order=\"18\"} 1");
	assert_int_equal(count_prefix(t, "gmem_mapping_invalidated_pages_total{"), 0);
	strbuf__release(&sb);

	/* constructed: 7.3's kvm_arch_gmem_invalidate_range, gfns [0x10, 0x30) then [0x40, 0x41) */
	APPLY(m, .kind = GMEM_EV_GFN_INVALIDATE, .vm = 1, .a = 0x10, .b = 0x30, .c = 2,
	      .flags = GMEM_EVF_SCENARIO);
	APPLY(m, .kind = GMEM_EV_GFN_INVALIDATE, .vm = 1, .a = 0x40, .b = 0x41,
	      .flags = GMEM_EVF_SCENARIO);
	render(m, NULL, false, &sb);
	t = strbuf__str(&sb);
	assert_int_equal(count_prefix(t, "gmem_mapping_invalidations_total{"), 2);
	assert_line(t, "gmem_mapping_invalidations_total{vm=\"1\"} 2");
	assert_line(t, "gmem_mapping_invalidated_pages_total{vm=\"1\"} 33");
	assert_line(t, "gmem_mapping_invalidated_pages_total{vm=\"2\"} 0");
	strbuf__release(&sb);

	APPLY(m, .kind = GMEM_EV_TDX, .vm = 2, .sub = GMEM_TDX_WBINVD, .flags = GMEM_EVF_SCENARIO);
	render(m, NULL, false, &sb);
	t = strbuf__str(&sb);
	assert_int_equal(count_prefix(t, "gmem_tdx_transitions_total{"), 2 * GMEM_TDX_OP_MAX);
	assert_line(t, "gmem_tdx_transitions_total{vm=\"2\",op=\"wbinvd\"} 1");
	assert_line(t, "gmem_tdx_transitions_total{vm=\"1\",op=\"page_aug\"} 0");
	strbuf__release(&sb);
	model__free(m);
}

static void test_integers_exact(void **state)
{
	struct model *m = model__new(NULL);
	struct strbuf sb;

	/* 2^53 + 1 has no exact double: a %g would print ...992 */
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .vm = 1, .b = (1ull << 53) + 1);
	APPLY(m, .kind = GMEM_EV_LOST, .a = UINT64_MAX);
	render(m, NULL, false, &sb);
	assert_line(strbuf__str(&sb),
		    "gmem_pages_allocated_total{vm=\"1\",source=\"other\"} 9007199254740993");
	assert_line(strbuf__str(&sb), "gmemscope_events_dropped_total 18446744073709551615");
	strbuf__release(&sb);
	model__free(m);
}

static void test_extra_stats(void **state)
{
	static const struct prom_stat stats[] = {
		{ .name = "process_cpu_seconds_total", .help = "CPU time.",
		  .type = PROM_STAT_COUNTER, .is_float = true, .d = 0.25 },
		{ .name = "process_resident_memory_bytes", .help = "RSS.", .u = 123456789 },
		{ .name = "gmemscope_ratio", .help = "A third.", .is_float = true, .d = 1.0 / 3 },
	};
	static const struct prom_stat bad_counter[] = {
		{ .name = "gmemscope_scrapes", .help = "x", .type = PROM_STAT_COUNTER },
	};
	static const struct prom_stat bad_name[] = { { .name = "9bad-name", .help = "x" } };
	static const struct prom_stat reserved[] = {
		{ .name = "gmem_files", .help = "x" },
	};
	static const struct prom_stat dup[] = {
		{ .name = "gmemscope_x", .help = "x" },
		{ .name = "gmemscope_x", .help = "y" },
	};
	static const struct prom_probe_row bad_row[] = { { "e", NULL, "live" } };
	struct prom_extra extra = { .stats = stats, .nr_stats = 3 };
	struct model *m = model__new(NULL);
	struct strbuf sb;
	const char *t;

	render(m, &extra, false, &sb);
	t = strbuf__str(&sb);
	assert_line(t, "# TYPE process_cpu_seconds_total counter");
	assert_line(t, "process_cpu_seconds_total 0.25");
	assert_line(t, "# TYPE process_resident_memory_bytes gauge");
	assert_line(t, "process_resident_memory_bytes 123456789");
	assert_line(t, "gmemscope_ratio 0.3333333333333333");
	strbuf__release(&sb);
	render(m, &extra, true, &sb);
	assert_line(strbuf__str(&sb), "# TYPE process_cpu_seconds counter");
	assert_line(strbuf__str(&sb), "process_cpu_seconds_total 0.25");

	/* a bad extra leaves out untouched */
	extra.stats = bad_counter;
	extra.nr_stats = 1;
	assert_int_equal(prom__render(m, &extra, &sb, false), -EINVAL);
	extra.stats = bad_name;
	assert_int_equal(prom__render(m, &extra, &sb, false), -EINVAL);
	extra.stats = reserved;
	assert_int_equal(prom__render(m, &extra, &sb, false), -EINVAL);
	extra.stats = dup;
	extra.nr_stats = 2;
	assert_int_equal(prom__render(m, &extra, &sb, false), -EINVAL);
	extra.stats = NULL;
	extra.nr_stats = 0;
	extra.probes = bad_row;
	extra.nr_probes = 1;
	assert_int_equal(prom__render(m, &extra, &sb, false), -EINVAL);
	t = strbuf__str(&sb);
	assert_string_equal(t + strlen(t) - 6, "# EOF\n");
	strbuf__release(&sb);
	model__free(m);
}

/* A render appends, and the same state renders byte for byte the same. */
static void test_append_and_deterministic(void **state)
{
	struct model *m = small_model(0);
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;

	strbuf__puts(&a, "# prefix\n");
	assert_int_equal(prom__render(m, NULL, &a, false), 0);
	assert_int_equal(prom__render(m, NULL, &b, false), 0);
	assert_int_equal(strncmp(strbuf__str(&a), "# prefix\n", 9), 0);
	assert_string_equal(strbuf__str(&a) + 9, strbuf__str(&b));
	strbuf__release(&a);
	strbuf__release(&b);
	model__free(m);
}

static bool is_name_char(char c, bool first)
{
	return isalpha((unsigned char)c) || c == '_' || c == ':' || (!first && isdigit(c));
}

/*
 * Every line of a full render is a comment or `name{labels} value` with quoted, escaped label
 * values; every sample belongs to the family its last TYPE line declared (families are
 * contiguous); a histogram's buckets are cumulative and end at +Inf equal to _count.
 */
static void check_structure(const char *t, bool om)
{
	char family[128] = "", type[16] = "", name[128];
	unsigned long long prev_bucket = 0, v;
	const char *p = t, *eol, *q;
	size_t n, k;

	for (; *p; p = eol + 1) {
		eol = strchr(p, '\n');
		assert_non_null(eol);
		if (*p == '#') {
			if (!strncmp(p, "# TYPE ", 7))
				assert_int_equal(sscanf(p, "# TYPE %127s %15s", family, type), 2);
			else if (!strncmp(p, "# EOF", 5))
				assert_true(om && eol[1] == '\0');
			else
				assert_int_equal(strncmp(p, "# HELP ", 7), 0);
			continue;
		}
		for (q = p; q < eol && is_name_char(*q, q == p); q++)
			;
		n = q - p;
		assert_true(n > 0 && n < sizeof(name));
		memcpy(name, p, n);
		name[n] = '\0';
		/* the sample belongs to the current family */
		k = strlen(family);
		assert_int_equal(strncmp(name, family, k), 0);
		if (!strcmp(type, "histogram"))
			assert_true(!strcmp(name + k, "_bucket") || !strcmp(name + k, "_sum") ||
				    !strcmp(name + k, "_count"));
		else if (om && !strcmp(type, "counter"))
			assert_string_equal(name + k, "_total");
		else if (om && !strcmp(type, "info"))
			assert_string_equal(name + k, "_info");
		else
			assert_string_equal(name + k, "");
		if (*q == '{') {
			for (q++; *q != '}'; ) {
				while (is_name_char(*q, false))
					q++;
				assert_true(q[0] == '=' && q[1] == '"');
				for (q += 2; *q != '"'; q++) {
					assert_true(q < eol);
					if (*q == '\\')
						q++;
				}
				q++;
				if (*q == ',')
					q++;
			}
			q++;
		}
		assert_true(*q == ' ');
		q++;
		assert_true(q < eol && !memchr(q, ' ', eol - q));
		if (!strcmp(name + k, "_bucket")) {
			assert_int_equal(sscanf(q, "%llu", &v), 1);
			if (strstr(p, "le=\"0.000001024\""))
				prev_bucket = 0;
			assert_true(v >= prev_bucket);
			prev_bucket = v;
		} else if (!strcmp(name + k, "_count")) {
			assert_int_equal(sscanf(q, "%llu", &v), 1);
			assert_int_equal(v, prev_bucket);
		}
	}
}

static void test_line_structure(void **state)
{
	struct prom_extra extra = { .probes = probes, .nr_probes = 2 };
	struct model *m = small_model(0);
	struct strbuf sb;
	unsigned int i;

	/* fill in every family */
	for (i = 0; i < 40; i++)
		APPLY(m, .kind = GMEM_EV_FAULT, .vm = 1234, .ino = 42, .c = 1000ull << (i % 30));
	APPLY(m, .kind = GMEM_EV_RMP, .vm = 1234, .sub = GMEM_RMP_FAULT);
	APPLY(m, .kind = GMEM_EV_TDX, .vm = 99, .sub = GMEM_TDX_TRACK);
	APPLY(m, .kind = GMEM_EV_SPLIT, .vm = 1234, .ino = 42, .order = 9);
	for (i = 0; i < 30; i++) {
		APPLY(m, .kind = GMEM_EV_CONV_REQUEST, .ts_ns = 1000000 * i, .vm = 99, .tid = 3,
		      .sub = GMEM_TO_SHARED);
		APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 1000000 * i + 1, .vm = 99, .tid = 3,
		      .sub = GMEM_TO_SHARED, .c = 1ull << i);
		APPLY(m, .kind = GMEM_EV_VCPU_RESUME, .ts_ns = 1000000 * i + (1ull << (i % 20)),
		      .vm = 99, .tid = 3);
	}
	render(m, &extra, false, &sb);
	check_structure(strbuf__str(&sb), false);
	strbuf__release(&sb);
	render(m, &extra, true, &sb);
	check_structure(strbuf__str(&sb), true);
	strbuf__release(&sb);
	model__free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_model_exact_lines),
		cmocka_unit_test(test_help_type_every_family),
		cmocka_unit_test(test_openmetrics),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_vm_info),
		cmocka_unit_test(test_file_series_cap),
		cmocka_unit_test(test_fmt_seconds),
		cmocka_unit_test(test_rmp_tdx_faults_splits),
		cmocka_unit_test(test_integers_exact),
		cmocka_unit_test(test_extra_stats),
		cmocka_unit_test(test_append_and_deterministic),
		cmocka_unit_test(test_line_structure),
	};

	return cmocka_run_group_tests_name("prom", tests, NULL, NULL);
}
