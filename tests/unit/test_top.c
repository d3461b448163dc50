// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Unit tests for gmemtop's screen model: snapshots are made by a real model (model__to_json,
 * the JSON gmemd sends), so these pin what the dashboard shows for known events, exactly:
 * rates between frames, totals after a reset, sorting, filtering, keys and their reactions,
 * the text of the table, the drill-down, and batch output.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "model.h"
#include "top.h"
#include "vmname.h"

#define S 1000000000ull
#define EV(...) (&(struct gmem_event){ __VA_ARGS__ })
#define APPLY(m, ...) assert_int_equal(model__apply(m, EV(__VA_ARGS__)), 0)

/* Names as /proc would give them, for three pids. */
static void fake_names(void *ctx, __u32 pid, char *buf, size_t len)
{
	int *calls = ctx;

	if (calls)
		(*calls)++;
	snprintf(buf, len, "%s",
		 pid == 100 ? "qemu-a" : pid == 200 ? "web" : pid == 300 ? "db" : "");
}

/* The control socket's snapshot shape around the model's JSON. */
static json_t *snapshot(struct model *m, __u64 ts_ns)
{
	json_t *snap = json_pack(
		"{s:I, s:o, s:{s:b, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}, s:{s:s, s:i}}",
		"ts_ns", (json_int_t)ts_ns, "model", model__to_json(m), "probe", "fentry_permitted",
		0, "events", "event", "create", "state", "live", "event", "page_alloc", "state",
		"live", "event", "fault", "state", "unavailable", "daemon", "name", "gmemd", "pid",
		42);

	assert_non_null(snap);
	return snap;
}

static void update(struct top *t, struct model *m, __u64 ts_ns)
{
	json_t *snap = snapshot(m, ts_ns);

	assert_int_equal(top__update(t, snap), 0);
	json_decref(snap);
}

static void create(struct model *m, __u32 vm, __u64 ino, __u64 size)
{
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 1, .vm = vm, .ino = ino, .a = size,
	      .result = 3);
}

static void alloc(struct model *m, __u32 vm, __u64 ino, __u64 pages, __u32 src)
{
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 2, .vm = vm, .ino = ino, .b = pages,
	      .sub = src);
}

static struct top *new_top(int *calls)
{
	struct top_opts o = { .interval_s = 1, .name_fn = fake_names, .name_ctx = calls,
			      .source = "socket /x.sock" };
	struct top *t = top__new(&o);

	assert_non_null(t);
	top__resize(t, 24, 80);
	return t;
}

/* Three VMs: 100 (qemu-a, 2 files), 200 (web, 1 file), 300 (db, 1 file, most populated). */
static struct model *three_vms(void)
{
	struct model *m = model__new(NULL);

	assert_non_null(m);
	create(m, 100, 11, 2 << 20);
	create(m, 100, 12, 4 << 20);
	create(m, 200, 21, 2 << 20);
	create(m, 300, 31, 1ull << 30);
	alloc(m, 100, 11, 3, GMEM_SRC_USER_FAULT);
	alloc(m, 100, 12, 2, GMEM_SRC_GUEST_FAULT);
	alloc(m, 200, 21, 1, GMEM_SRC_FALLOCATE);
	alloc(m, 300, 31, 1000, GMEM_SRC_POPULATE);
	return m;
}

static void test_fmt(void **state)
{
	char b[32];

	top__fmt_bytes(b, sizeof(b), 0);
	assert_string_equal(b, "0");
	top__fmt_bytes(b, sizeof(b), 512);
	assert_string_equal(b, "512B");
	top__fmt_bytes(b, sizeof(b), 12 * 4096);
	assert_string_equal(b, "48K");
	top__fmt_bytes(b, sizeof(b), 4 << 20);
	assert_string_equal(b, "4M");
	top__fmt_bytes(b, sizeof(b), 1000 * 4096);
	assert_string_equal(b, "4000K");
	top__fmt_bytes(b, sizeof(b), 1536ull << 20);
	assert_string_equal(b, "1536M");
	top__fmt_bytes(b, sizeof(b), 99999ull << 10);
	assert_string_equal(b, "99999K");
	/* no unit divides it within five digits: rounded, and marked by the decimal */
	top__fmt_bytes(b, sizeof(b), 123456789);
	assert_string_equal(b, "118M");
	top__fmt_bytes(b, sizeof(b), (3ull << 30) / 2 + 1);
	assert_string_equal(b, "1.5G");

	top__fmt_count(b, sizeof(b), 1234567, 7);
	assert_string_equal(b, "1234567");
	top__fmt_count(b, sizeof(b), 12345678, 7);
	assert_string_equal(b, "12.3M");

	top__fmt_rate(b, sizeof(b), -1);
	assert_string_equal(b, "-");
	top__fmt_rate(b, sizeof(b), 0);
	assert_string_equal(b, "0");
	top__fmt_rate(b, sizeof(b), 2);
	assert_string_equal(b, "2");
	top__fmt_rate(b, sizeof(b), 0.5);
	assert_string_equal(b, "0.5");
	top__fmt_rate(b, sizeof(b), 1234);
	assert_string_equal(b, "1234");
	top__fmt_rate(b, sizeof(b), 12345);
	assert_string_equal(b, "12.3k");
	top__fmt_rate(b, sizeof(b), 2.5e6);
	assert_string_equal(b, "2.5M");

	top__fmt_ns(b, sizeof(b), 850);
	assert_string_equal(b, "850ns");
	top__fmt_ns(b, sizeof(b), 1200);
	assert_string_equal(b, "1.2us");
	top__fmt_ns(b, sizeof(b), 35000000);
	assert_string_equal(b, "35.0ms");
	top__fmt_ns(b, sizeof(b), 2 * S);
	assert_string_equal(b, "2.00s");
}

#define CMD(s) s, sizeof(s) /* keeps the final NUL, as /proc/PID/cmdline has it */

static void test_cmdline_name(void **state)
{
	char out[64];

	assert_true(vmname__from_cmdline(CMD("qemu-system-x86_64\0-name\0guest=vm1,debug-threads=on\0"
					  "-m\0001G"), out, sizeof(out)));
	assert_string_equal(out, "vm1");
	assert_true(vmname__from_cmdline(CMD("qemu\0-name\0web,process=qemu:web\0-smp\0002"), out,
				      sizeof(out)));
	assert_string_equal(out, "web");
	assert_true(vmname__from_cmdline(CMD("qemu\0-name\0debug-threads=on,guest=a,,b"), out,
				      sizeof(out)));
	assert_string_equal(out, "a,b");
	assert_true(vmname__from_cmdline(CMD("qemu\0--name=db"), out, sizeof(out)));
	assert_string_equal(out, "db");
	assert_true(vmname__from_cmdline(CMD("lkvm\0run\0--name\0guest-7"), out, sizeof(out)));
	assert_string_equal(out, "guest-7");
	assert_true(vmname__from_cmdline(CMD("firecracker\0--api-sock\0/s\0--id\0fc1"), out,
				      sizeof(out)));
	assert_string_equal(out, "fc1");
	/* names nothing: the caller falls back to comm */
	assert_false(vmname__from_cmdline(CMD("gmem-load\0--vms\0002"), out, sizeof(out)));
	assert_false(vmname__from_cmdline(CMD("qemu\0-name"), out, sizeof(out)));
	assert_false(vmname__from_cmdline(CMD("qemu\0-name\0debug-threads=on"), out, sizeof(out)));
	assert_false(vmname__from_cmdline(CMD("qemu\0-namex\0a"), out, sizeof(out)));
	/* a read cut in the middle of an argument */
	assert_false(vmname__from_cmdline("qemu\0-name\0vm", 13, out, sizeof(out)));
	assert_false(vmname__from_cmdline("", 0, out, sizeof(out)));
}

static void put_file(const char *dir, const char *name, const char *data, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* CONSTRUCTED: vmname__read on a made-up /proc: the command line's name first, else comm
 * (kernel newline dropped, one inside kept), invalid UTF-8 replaced, "" for a gone pid. */
static void test_vmname_read(void **state)
{
	char root[] = "/tmp/gmem-vmname-XXXXXX", dir[512], out[VMNAME_LEN];

	assert_non_null(mkdtemp(root));
	snprintf(dir, sizeof(dir), "%s/7", root);
	assert_int_equal(mkdir(dir, 0700), 0);
	put_file(dir, "cmdline", CMD("qemu\0-name\0guest=db01\0"));
	put_file(dir, "comm", "qemu-system-x86\n", 16);
	vmname__read(root, 7, out, sizeof(out));
	assert_string_equal(out, "db01");
	/* a zombie's cmdline reads empty: comm */
	put_file(dir, "cmdline", "", 0);
	put_file(dir, "comm", "a\"b\\c\nd\n", 8);
	vmname__read(root, 7, out, sizeof(out));
	assert_string_equal(out, "a\"b\\c\nd");
	put_file(dir, "comm", "x\xff\xc3\xa9\xed\xa0\x80\n", 8);
	vmname__read(root, 7, out, sizeof(out));
	assert_string_equal(out, "x?\xc3\xa9???");
	/* cut inside a character: the partial one is replaced */
	put_file(dir, "cmdline", CMD("lkvm\0--name\0\xc3\xa9\xc3\xa9"));
	vmname__read(root, 7, out, 4);
	assert_string_equal(out, "\xc3\xa9?");
	vmname__read(root, 8, out, sizeof(out));
	assert_string_equal(out, "");
	vmname__read(root, 0, out, sizeof(out));
	assert_string_equal(out, "");
	snprintf(dir, sizeof(dir), "rm -rf %s", root);
	assert_int_equal(system(dir), 0);
}

static void test_first_frame_then_rates(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top(NULL);
	const struct top_vm *v;
	const struct top_host *h;

	update(t, m, 10 * S);
	assert_int_equal(top__nr_vms(t), 3);
	v = top__vm(t, 100);
	assert_non_null(v);
	assert_string_equal(v->name, "qemu-a");
	assert_int_equal(v->files, 2);
	assert_int_equal(v->size_bytes, 6 << 20);
	assert_int_equal(v->populated_bytes, 5 * 4096);
	assert_int_equal(v->raw[TOP_C_ALLOC_USER], 3);
	assert_int_equal(v->raw[TOP_C_ALLOC_GUEST], 2);
	assert_int_equal(v->raw[TOP_C_FILES_CREATED], 2);
	assert_false(v->rated);
	h = top__host(t);
	assert_false(h->rated);
	assert_int_equal(h->probes_live, 2);
	assert_int_equal(h->probes_unavailable, 1);
	assert_string_equal(h->server, "gmemd");

	/* two seconds later: 30 more user-fault pages, 4 freed, 2 punches, a new VM */
	alloc(m, 100, 11, 30, GMEM_SRC_USER_FAULT);
	APPLY(m, .kind = GMEM_EV_PAGE_FREE, .ts_ns = 3, .ino = 11, .b = 4);
	APPLY(m, .kind = GMEM_EV_PUNCH_HOLE, .ts_ns = 3, .vm = 100, .ino = 11, .b = 8192);
	APPLY(m, .kind = GMEM_EV_PUNCH_HOLE, .ts_ns = 3, .vm = 100, .ino = 11, .b = 8192);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 4, .vm = 100, .sub = GMEM_TO_PRIVATE,
	      .result = -22);
	create(m, 400, 41, 2 << 20);
	update(t, m, 12 * S);
	v = top__vm(t, 100);
	assert_true(v->rated);
	assert_true(v->rate[TOP_C_ALLOC_USER] == 15.0);
	assert_true(v->rate[TOP_C_ALLOC_GUEST] == 0.0);
	assert_true(v->rate[TOP_C_FREED] == 2.0);
	assert_true(v->rate[TOP_C_PUNCH] == 1.0);
	assert_true(v->rate[TOP_C_CONV] == 0.5);
	assert_int_equal(v->raw[TOP_C_CONV_PRIVATE_ERR], 1);
	assert_int_equal(v->populated_bytes, (5 + 30 - 4) * 4096);
	assert_string_equal(v->name, "qemu-a");
	/* a VM new in this frame has no rate yet */
	v = top__vm(t, 400);
	assert_non_null(v);
	assert_false(v->rated);
	h = top__host(t);
	assert_true(h->rated);
	assert_true(h->interval_s == 2.0);
	/* 5 records (alloc, free, 2 punches, attr) and the create, over 2 s */
	assert_true(h->events_rate == 3.0);
	top__free(t);
	model__free(m);
}

static struct top *new_top_sel(__u32 pid, const char *name, bool zero, const char *fields)
{
	struct top_opts o = { .interval_s = 1, .name_fn = fake_names, .only_pid = pid,
			      .only_name = name, .skip_zero = zero };
	char err[512];
	struct top *t;

	if (fields)
		assert_int_equal(top__parse_fields(fields, o.fields, &o.nr_fields, err,
						   sizeof(err)), 0);
	t = top__new(&o);
	assert_non_null(t);
	return t;
}

/* CONSTRUCTED: -p keeps one pid, -g names matched exactly (not a substring, any case), and
 * both combine with the interactive filter. */
static void test_only_pid_and_name(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top_sel(200, NULL, false, NULL);

	update(t, m, 1 * S);
	assert_int_equal(top__nr_vms(t), 3);
	assert_int_equal(top__nr_rows(t), 1);
	assert_int_equal(top__row(t, 0)->pid, 200);
	top__set_filter(t, "300");
	assert_int_equal(top__nr_rows(t), 0);
	top__free(t);

	t = new_top_sel(0, "qemu-a", false, NULL);
	update(t, m, 1 * S);
	assert_int_equal(top__nr_rows(t), 1);
	assert_int_equal(top__row(t, 0)->pid, 100);
	top__free(t);
	t = new_top_sel(0, "qemu", false, NULL);
	update(t, m, 1 * S);
	assert_int_equal(top__nr_rows(t), 0);
	top__free(t);
	t = new_top_sel(0, "QEMU-A", false, NULL);
	update(t, m, 1 * S);
	assert_int_equal(top__nr_rows(t), 0);
	top__free(t);
	model__free(m);
}

/* CONSTRUCTED: -z keeps every row while rates are unknown, then leaves out the VMs whose
 * counter columns shown are all zero: in rates, in totals, and over -f's columns only
 * (gauges do not count). */
static void test_skip_zero(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top_sel(0, NULL, true, NULL);

	update(t, m, 1 * S);
	assert_int_equal(top__nr_rows(t), 3); /* no rates yet: nothing is known to be zero */
	alloc(m, 100, 11, 4, GMEM_SRC_USER_FAULT);
	update(t, m, 2 * S);
	assert_int_equal(top__nr_rows(t), 1);
	assert_int_equal(top__row(t, 0)->pid, 100);
	/* totals since start: every VM allocated something */
	top__key(t, 't');
	assert_int_equal(top__nr_rows(t), 3);
	top__free(t);

	/* only gflt and popul shown: 100's user faults do not count, its gauge neither */
	t = new_top_sel(0, NULL, true, "pid,gflt,popul");
	update(t, m, 1 * S);
	alloc(m, 100, 11, 4, GMEM_SRC_USER_FAULT);
	alloc(m, 300, 31, 2, GMEM_SRC_GUEST_FAULT);
	update(t, m, 2 * S);
	assert_int_equal(top__nr_rows(t), 1);
	assert_int_equal(top__row(t, 0)->pid, 300);
	top__free(t);
	model__free(m);
}

/* CONSTRUCTED: -f's names (any case, a rate's /s, HUGE%'s %), its order in the batch text,
 * and the errors: an unknown field names every valid one, a repeated or empty one is bad. */
static void test_fields(void **state)
{
	enum top_col f[TOP_COL_MAX];
	struct strbuf sb = STRBUF_INIT;
	struct model *m = three_vms();
	char err[512];
	struct top *t;
	size_t n;

	assert_int_equal(top__parse_fields("pid,NAME,uflt/s,Huge%,convp99", f, &n, err,
					   sizeof(err)), 0);
	assert_int_equal(n, 5);
	assert_int_equal(f[0], TOP_COL_PID);
	assert_int_equal(f[1], TOP_COL_NAME);
	assert_int_equal(f[2], TOP_COL_ALLOC_USER);
	assert_int_equal(f[3], TOP_COL_HUGE);
	assert_int_equal(f[4], TOP_COL_CONV_P99);
	assert_true(top__col_is_counter(TOP_COL_ALLOC_USER));
	assert_false(top__col_is_counter(TOP_COL_POPULATED));
	assert_false(top__col_is_counter(TOP_COL_CONV_P99));

	assert_int_equal(top__parse_fields("pid,bogus", f, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "-f: no field 'bogus'; the fields are pid, name, files, gmem, "
				 "popul, uflt, gflt, falc, popl, othr, punch, free, conv, convp50, "
				 "convp99, dmap, rmp, tdx, split, exits, huge");
	assert_int_equal(top__parse_fields("pid,pid", f, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "twice the field 'pid'"));
	assert_int_equal(top__parse_fields("pid,,name", f, &n, err, sizeof(err)), -EINVAL);
	assert_int_equal(top__parse_fields("", f, &n, err, sizeof(err)), -EINVAL);
	assert_int_equal(top__parse_fields("name,", f, &n, err, sizeof(err)), -EINVAL);

	t = new_top_sel(0, NULL, false, "popul,pid,name");
	update(t, m, 1 * S);
	assert_int_equal(top__print_text(t, "T", &sb), 0);
	/* the header line, then rows sorted as the table sorts them (by pid) */
	assert_non_null(strstr(strbuf__str(&sb), "\n  POPUL     PID NAME\n    20K     100 qemu-a\n"));
	assert_null(strstr(strbuf__str(&sb), "UFLT"));
	strbuf__release(&sb);
	top__free(t);
	model__free(m);
}

static void server_names(void *ctx, __u32 pid, char *buf, size_t len)
{
	snprintf(buf, len, pid == 100 ? "db01" : "");
}

/* CONSTRUCTED: the server's name in the snapshot (gmemd's, read when it met the VM) is shown
 * and no lookup is made for it; a VM the server could not name is looked up here. */
static void test_server_names_win(void **state)
{
	struct model_opts mo = { .name_fn = server_names };
	struct model *m = model__new(&mo);
	int calls = 0;
	struct top *t = new_top(&calls);

	assert_non_null(m);
	create(m, 100, 11, 2 << 20);
	create(m, 200, 21, 2 << 20);
	update(t, m, 1 * S);
	assert_string_equal(top__vm(t, 100)->name, "db01");
	assert_string_equal(top__vm(t, 200)->name, "web");
	assert_int_equal(calls, 1);
	top__free(t);
	model__free(m);
}

static void test_names_resolved_once(void **state)
{
	struct model *m = three_vms();
	int calls = 0;
	struct top *t = new_top(&calls);

	update(t, m, 1 * S);
	update(t, m, 2 * S);
	update(t, m, 3 * S);
	assert_int_equal(calls, 3);
	assert_string_equal(top__vm(t, 200)->name, "web");
	top__free(t);
	model__free(m);
}

static void test_reset_rebases_totals_and_latency(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top(NULL);
	const struct top_vm *v;
	struct strbuf sb = STRBUF_INIT;
	int i;

	/* 100 conversions of 1 us (slot 9..10) */
	for (i = 0; i < 100; i++)
		APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 5, .vm = 100,
		      .sub = GMEM_TO_PRIVATE, .c = 1000);
	update(t, m, 1 * S);
	v = top__vm(t, 100);
	assert_int_equal(v->conv_count, 100);
	assert_int_equal(v->conv_p50_ns, 1000);
	assert_int_equal(v->conv_p99_ns, 1000);

	assert_int_equal(top__key(t, 'r'), TOP_R_REDRAW);
	v = top__vm(t, 100);
	assert_int_equal(v->conv_count, 0);
	assert_int_equal(v->raw[TOP_C_ALLOC_USER] - v->base[TOP_C_ALLOC_USER], 0);

	/* after the reset: 10 slow conversions (1 ms) and 7 user-fault pages */
	for (i = 0; i < 10; i++)
		APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 6, .vm = 100,
		      .sub = GMEM_TO_SHARED, .c = 1000000);
	alloc(m, 100, 11, 7, GMEM_SRC_USER_FAULT);
	update(t, m, 2 * S);
	v = top__vm(t, 100);
	assert_int_equal(v->conv_count, 10);
	/* only the slow ones count now: slot 19 is [524288, 1048576) */
	assert_true(v->conv_p50_ns >= 524288 && v->conv_p50_ns < 1048576);
	assert_int_equal(v->raw[TOP_C_ALLOC_USER] - v->base[TOP_C_ALLOC_USER], 7);
	assert_true(v->rate[TOP_C_ALLOC_USER] == 7.0);
	/* batch totals are since the reset too */
	assert_int_equal(top__print_csv(t, "T", &sb, false), 0);
	assert_non_null(strstr(strbuf__str(&sb), "T,100,qemu-a,0,2,6291456,49152,7,0,"));
	strbuf__release(&sb);
	top__free(t);
	model__free(m);
}

static __u32 row_pid(struct top *t, size_t i)
{
	const struct top_vm *v = top__row(t, i);

	assert_non_null(v);
	return v->pid;
}

static void test_sort_and_filter(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top(NULL);

	update(t, m, 1 * S);
	assert_int_equal(top__sort_col(t), TOP_COL_PID);
	assert_int_equal(row_pid(t, 0), 100);
	assert_int_equal(row_pid(t, 2), 300);

	assert_int_equal(top__key(t, 'M'), TOP_R_REDRAW); /* populated, descending */
	assert_int_equal(top__sort_col(t), TOP_COL_POPULATED);
	assert_true(top__sort_desc(t));
	assert_int_equal(row_pid(t, 0), 300);
	assert_int_equal(row_pid(t, 1), 100);
	assert_int_equal(row_pid(t, 2), 200);
	top__key(t, 'i');
	assert_int_equal(row_pid(t, 0), 200);

	top__key(t, 'N');
	assert_int_equal(row_pid(t, 0), 300); /* db, qemu-a, web */
	assert_int_equal(row_pid(t, 1), 100);
	top__key(t, '>'); /* FILES, descending: 100 has two */
	assert_int_equal(top__sort_col(t), TOP_COL_FILES);
	assert_int_equal(row_pid(t, 0), 100);
	top__key(t, '<');
	top__key(t, '<');
	assert_int_equal(top__sort_col(t), TOP_COL_PID);
	top__key(t, '<'); /* wraps to the last column */
	assert_int_equal(top__sort_col(t), TOP_COL_HUGE);

	/* filter by name, typed into the prompt */
	assert_int_equal(top__key(t, 'f'), TOP_R_REDRAW);
	top__key(t, 'W');
	top__key(t, 'e');
	assert_int_equal(top__nr_rows(t), 3); /* not applied until Enter */
	top__key(t, TOP_KEY_ENTER);
	assert_string_equal(top__filter(t), "We");
	assert_int_equal(top__nr_rows(t), 1);
	assert_int_equal(row_pid(t, 0), 200);
	/* by pids */
	top__set_filter(t, "300, 100");
	assert_int_equal(top__nr_rows(t), 2);
	top__set_filter(t, "30");
	assert_int_equal(top__nr_rows(t), 0);
	assert_int_equal(top__selected(t), -1);
	assert_int_equal(top__key(t, TOP_KEY_ENTER), TOP_R_NONE);
	/* Esc on the list clears it */
	top__key(t, TOP_KEY_ESC);
	assert_string_equal(top__filter(t), "");
	assert_int_equal(top__nr_rows(t), 3);
	/* a prompt cancelled with Esc changes nothing */
	top__key(t, 'f');
	top__key(t, 'x');
	top__key(t, TOP_KEY_ESC);
	assert_int_equal(top__nr_rows(t), 3);
	/* the prompt starts empty, not with the filter in force; Ctrl-U clears what was typed */
	top__set_filter(t, "We");
	top__key(t, 'f');
	top__key(t, 'd');
	top__key(t, 'x');
	top__key(t, 0x15);
	top__key(t, 'd');
	top__key(t, 'b');
	top__key(t, TOP_KEY_ENTER);
	assert_string_equal(top__filter(t), "db");
	assert_int_equal(top__nr_rows(t), 1);
	assert_int_equal(row_pid(t, 0), 300);
	top__free(t);
	model__free(m);
}

/* The help screen at 80x24: no line wider than the screen, it says it scrolls, and it does. */
static void test_help_fits_80x24_and_scrolls(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top(NULL);
	const struct top_line *lines;
	struct top_line foot;
	size_t n, i;
	bool says = false;

	update(t, m, 1 * S);
	top__key(t, 'h');
	n = top__page(t, &lines);
	assert_true(n > 22); /* more than fits: it must scroll */
	for (i = 0; i < n; i++) {
		if (strlen(lines[i].text) > 80)
			fail_msg("help line %zu is %zu columns: %s", i, strlen(lines[i].text),
				 lines[i].text);
		says |= strstr(lines[i].text, "scrolls") != NULL;
	}
	assert_true(says);
	top__footer(t, &foot, NULL);
	assert_true(strlen(foot.text) <= 80);
	assert_non_null(strstr(foot.text, "scroll"));
	assert_int_equal(top__page_scroll(t), 0);
	top__key(t, TOP_KEY_PGDN);
	assert_true(top__page_scroll(t) > 0);
	top__key(t, TOP_KEY_HOME);
	assert_int_equal(top__page_scroll(t), 0);
	top__key(t, 'x'); /* any other key: back */
	assert_int_equal(top__view(t), TOP_VIEW_MAIN);
	top__free(t);
	model__free(m);
}

static void test_selection_follows_vm(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top(NULL);

	update(t, m, 1 * S);
	assert_int_equal(top__selected(t), 0);
	top__key(t, TOP_KEY_DOWN);
	top__key(t, TOP_KEY_DOWN);
	top__key(t, TOP_KEY_DOWN); /* stops at the last */
	assert_int_equal(top__selected(t), 2);
	assert_int_equal(row_pid(t, top__selected(t)), 300);
	top__key(t, 'M'); /* 300 moves to the top: the selection goes with it */
	assert_int_equal(top__selected(t), 0);
	assert_int_equal(row_pid(t, 0), 300);
	top__key(t, TOP_KEY_END);
	assert_int_equal(top__selected(t), 2);
	top__key(t, TOP_KEY_HOME);
	assert_int_equal(top__selected(t), 0);
	top__free(t);
	model__free(m);
}

static void test_keys_and_reactions(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top(NULL);
	struct top_line l;
	int cursor;

	update(t, m, 1 * S);
	assert_int_equal(top__key(t, 'q'), TOP_R_QUIT);
	assert_int_equal(top__key(t, TOP_KEY_F10), TOP_R_QUIT);

	assert_int_equal(top__key(t, 'p'), TOP_R_REDRAW);
	assert_true(top__paused(t));
	assert_int_equal(top__key(t, ' '), TOP_R_REDRAW | TOP_R_REFRESH);
	assert_false(top__paused(t));

	assert_int_equal(top__key(t, '+'), TOP_R_REDRAW | TOP_R_INTERVAL);
	assert_true(top__interval(t) == 2);
	top__key(t, '-');
	top__key(t, '-');
	assert_true(top__interval(t) == 0.5);
	top__key(t, '-');
	assert_int_equal(top__key(t, '-'), TOP_R_NONE); /* 0.2 is the floor */
	assert_true(top__interval(t) == 0.2);

	assert_int_equal(top__key(t, 'd'), TOP_R_REDRAW);
	top__footer(t, &l, &cursor);
	assert_string_equal(l.text, "Refresh interval in seconds: ");
	assert_int_equal(cursor, 29);
	top__key(t, '2');
	top__key(t, '.');
	top__key(t, '5');
	assert_int_equal(top__key(t, TOP_KEY_ENTER), TOP_R_REDRAW | TOP_R_INTERVAL);
	assert_true(top__interval(t) == 2.5);
	top__key(t, 'd');
	top__key(t, 'x');
	assert_int_equal(top__key(t, TOP_KEY_ENTER), TOP_R_REDRAW);
	assert_true(top__interval(t) == 2.5);
	top__footer(t, &l, &cursor);
	assert_non_null(strstr(l.text, "not an interval: \"x\""));
	assert_int_equal(cursor, -1);

	/* help over the list; any key returns */
	assert_int_equal(top__key(t, 'h'), TOP_R_REDRAW);
	assert_int_equal(top__view(t), TOP_VIEW_HELP);
	assert_int_equal(top__key(t, 'q'), TOP_R_REDRAW);
	assert_int_equal(top__view(t), TOP_VIEW_MAIN);

	/* totals mode changes the headers */
	top__key(t, 't');
	top__table_header(t, &l, NULL, NULL);
	assert_non_null(strstr(l.text, " UFLT "));
	top__key(t, 't');
	top__table_header(t, &l, NULL, NULL);
	assert_non_null(strstr(l.text, " UFLT/s "));

	assert_int_equal(top__key(t, 12), TOP_R_REDRAW | TOP_R_CLEAR);
	assert_int_equal(top__key(t, 'Z'), TOP_R_NONE);
	top__free(t);
	model__free(m);
}

static void test_table_text(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top(NULL);
	struct top_line l, hdr[TOP_HEADER_ROWS];
	int hs, hl;

	update(t, m, 1 * S);
	alloc(m, 100, 11, 20, GMEM_SRC_USER_FAULT);
	update(t, m, 3 * S);
	top__table_header(t, &l, &hs, &hl);
	assert_string_equal(l.text, "    PID NAME            FILES    GMEM   POPUL  UFLT/s  GFLT/s"
				    "  FALC/s  POPL/s");
	assert_int_equal(hs, 0); /* sorted by PID */
	assert_int_equal(hl, 7);
	top__table_row(t, 0, &l);
	assert_string_equal(l.text, "    100 qemu-a              2      6M    100K      10       0"
				    "       0       0");
	top__table_row(t, 2, &l);
	assert_string_equal(l.text, "    300 db                  1      1G   4000K       0       0"
				    "       0       0");
	/* scroll the columns: PID and NAME stay */
	assert_int_equal(top__key(t, TOP_KEY_RIGHT), TOP_R_REDRAW);
	top__table_header(t, &l, NULL, NULL);
	assert_string_equal(l.text, "    PID NAME               GMEM   POPUL  UFLT/s  GFLT/s"
				    "  FALC/s  POPL/s  OTHR/s");
	for (hs = 0; hs < 40; hs++)
		top__key(t, TOP_KEY_RIGHT);
	top__table_header(t, &l, NULL, NULL);
	/* as far as it goes: the last column just shows */
	assert_string_equal(l.text, "    PID NAME            CONVp99  DMAP/s   RMP/s   TDX/s"
				    " SPLIT/s  EXIT/s  HUGE%");
	/* totals */
	top__key(t, 't');
	for (hs = 0; hs < 40; hs++)
		top__key(t, TOP_KEY_LEFT);
	top__table_row(t, 0, &l);
	assert_string_equal(l.text, "    100 qemu-a              2      6M    100K      23       2"
				    "       0       0");
	/* a wide screen shows every column */
	top__resize(t, 30, 200);
	top__table_header(t, &l, NULL, NULL);
	assert_non_null(strstr(l.text, "SPLIT"));
	top__header(t, hdr);
	assert_string_equal(hdr[0].text, "gmemtop  refresh 1s  gmemd pid 42 via socket /x.sock");
	assert_string_equal(hdr[3].text, "VMs 3  files 4  gmem 1032M  populated 4104K  [totals, "
					 "sort PID+]");
	/* and a tiny one still gives a line */
	top__resize(t, 3, 10);
	top__table_row(t, 0, &l);
	assert_string_equal(l.text, "    100 qe");
	top__free(t);
	model__free(m);
}

static void test_drill_down_and_events(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top(NULL);
	const struct top_line *lines;
	size_t n, i;
	bool file_row = false, histo = false, ev_alloc = false, ev_free = false, slot = false;
	int k;

	for (k = 0; k < 8; k++)
		APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 5, .vm = 100,
		      .sub = GMEM_TO_PRIVATE, .c = 3000);
	update(t, m, 1 * S);
	assert_false(top__wants_events(t));
	assert_int_equal(top__key(t, TOP_KEY_ENTER), TOP_R_REDRAW | TOP_R_STREAM);
	assert_int_equal(top__view(t), TOP_VIEW_VM);
	assert_true(top__wants_events(t));

	/* this VM's, by vm or (free paths) by its file's inode; not another VM's */
	top__event(t, EV(.kind = GMEM_EV_PAGE_ALLOC, .vm = 100, .ino = 11, .a = 7, .b = 1,
			 .sub = GMEM_SRC_USER_FAULT, .ts_ns = 5 * S));
	top__event(t, EV(.kind = GMEM_EV_PAGE_FREE, .ino = 12, .a = 9, .b = 1, .ts_ns = 6 * S));
	top__event(t, EV(.kind = GMEM_EV_PAGE_ALLOC, .vm = 200, .ino = 21, .b = 1));
	top__event(t, EV(.kind = GMEM_EV_PAGE_FREE, .ino = 21, .b = 1));

	n = top__page(t, &lines);
	assert_true(n > 20);
	assert_string_equal(lines[0].text, "VM 100  qemu-a   files 2  gmem 6M  populated 20K");
	for (i = 0; i < n; i++) {
		if (!strcmp(lines[i].text, "11                 2M        12K        3        3"
					   "        0      0 created"))
			file_row = true;
		if (strstr(lines[i].text, "kernel part, to private  n=8  p50 3.0us  p99 3.0us"))
			histo = true;
		/* 3000 ns lands in slot 11, labelled as gmemtrace report labels it */
		if (!strncmp(lines[i].text, "        2048 -> 4095       |", 28))
			slot = true;
		if (!strcmp(lines[i].text, "  5.000000 page_alloc    ino 11 index 7 pages 1 "
					   "user_fault"))
			ev_alloc = true;
		if (!strcmp(lines[i].text, "  6.000000 page_free     ino 12 index 9 pages 1"))
			ev_free = true;
		assert_null(strstr(lines[i].text, "ino 21"));
	}
	assert_true(file_row);
	assert_true(histo);
	assert_true(slot);
	assert_true(ev_alloc);
	assert_true(ev_free);

	/* scrolling the page is clamped; at the bottom it follows new events */
	top__key(t, TOP_KEY_END);
	assert_int_equal(top__page_scroll(t), n - (24 - TOP_HEADER_ROWS - 1));
	top__event(t, EV(.kind = GMEM_EV_PUNCH_HOLE, .vm = 100, .ino = 11, .b = 4096,
			 .ts_ns = 7 * S));
	assert_int_equal(top__page(t, &lines), n + 1);
	assert_int_equal(top__page_scroll(t), n + 1 - (24 - TOP_HEADER_ROWS - 1));
	assert_string_equal(lines[n].text, "  7.000000 punch_hole    ino 11 offset 0x0 len 4K");
	top__key(t, TOP_KEY_UP);
	top__event(t, EV(.kind = GMEM_EV_PUNCH_HOLE, .vm = 100, .ino = 11, .b = 4096));
	assert_int_equal(top__page(t, &lines), n + 2);
	assert_int_equal(top__page_scroll(t), n - (24 - TOP_HEADER_ROWS - 1)); /* stays put */
	top__key(t, TOP_KEY_HOME);
	assert_int_equal(top__page_scroll(t), 0);

	assert_int_equal(top__key(t, TOP_KEY_ESC), TOP_R_REDRAW | TOP_R_STREAM);
	assert_int_equal(top__view(t), TOP_VIEW_MAIN);
	assert_false(top__wants_events(t));
	top__free(t);
	model__free(m);
}

static void test_event_text(void **state)
{
	char b[TOP_LINE_MAX];

	top__event_text(EV(.kind = GMEM_EV_FILE_CREATE, .ino = 5, .a = 2 << 20, .b = 3,
			   .result = 7, .ts_ns = 1500000000), 0, b, sizeof(b));
	assert_string_equal(b, "1.500000 file_create   ino 5 size 2M flags 0x3 fd 7");
	top__event_text(EV(.kind = GMEM_EV_CONV_ATTR, .tid = 9, .a = 0x1000, .b = 4096,
			   .sub = GMEM_TO_SHARED, .c = 2500, .result = -22), 0, b, sizeof(b));
	assert_string_equal(b, "0.000000 conv_attr     tid 9 gpa 0x1000 size 4K to shared 2.5us "
			       "failed");
	top__event_text(EV(.kind = GMEM_EV_LOST, .a = 12), 0, b, sizeof(b));
	assert_string_equal(b, "0.000000 lost          12 records lost");
	/* cut, never overrun */
	top__event_text(EV(.kind = GMEM_EV_PAGE_ALLOC, .ino = 5), 0, b, 12);
	assert_string_equal(b, "0.000000 pa");
}

static void test_batch_output(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top(NULL);
	struct strbuf sb = STRBUF_INIT;
	json_t *j, *vm;
	const char *s;

	update(t, m, 1 * S);
	assert_int_equal(top__print_csv(t, "2025-01-01T00:00:00", &sb, true), 0);
	s = strbuf__str(&sb);
	assert_true(!strncmp(s, "time,pid,name,gone,files,size_bytes,populated_bytes,"
			     "alloc_user_fault,alloc_guest_fault,", 87));
	/* first frame: totals, and empty rates */
	assert_non_null(strstr(s, "\n2025-01-01T00:00:00,300,db,0,1,1073741824,4096000,0,0,0,"
				  "1000,0,"));
	assert_non_null(strstr(s, ",,,,,,,,,,,,,,,,,,,,,,,,\n"));
	strbuf__reset(&sb);

	update(t, m, 2 * S);
	j = top__to_json(t);
	assert_non_null(j);
	assert_true(json_real_value(json_object_get(j, "interval_s")) == 1.0);
	assert_int_equal(json_array_size(json_object_get(j, "vms")), 3);
	vm = json_array_get(json_object_get(j, "vms"), 0);
	assert_int_equal(json_integer_value(json_object_get(vm, "pid")), 100);
	assert_string_equal(json_string_value(json_object_get(vm, "name")), "qemu-a");
	assert_int_equal(json_integer_value(json_object_get(vm, "populated_bytes")), 5 * 4096);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(vm, "totals"),
							    "alloc_user_fault")), 3);
	assert_true(json_is_real(json_object_get(json_object_get(vm, "rates"),
						 "alloc_user_fault")));
	assert_int_equal(json_array_size(json_object_get(vm, "file_list")), 2);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_object_get(j, "host"), "probes"), "live")),
			 2);
	json_decref(j);

	assert_int_equal(top__print_text(t, "NOW", &sb), 0);
	s = strbuf__str(&sb);
	assert_true(!strncmp(s, "NOW  gmemd  VMs 3  events 0/s  drops 0", 38));
	assert_non_null(strstr(s, "\n    PID NAME            FILES    GMEM   POPUL  UFLT/s"));
	assert_non_null(strstr(s, "SPLIT/s  EXIT/s  HUGE%\n    100 qemu-a "));
	strbuf__release(&sb);
	top__free(t);
	model__free(m);
}

/* KVM stats from the snapshot's kvm_stats: summed over vCPUs, rated, the 2M/1G share. */
static void kvm_update(struct top *t, struct model *m, __u64 ts_ns, __u64 exits0, __u64 exits1,
		       __u64 halt_ns)
{
	json_t *snap = snapshot(m, ts_ns);

	json_object_set_new(snap, "kvm_stats", json_pack(
		"[{s:i, s:{s:i, s:i, s:i}, s:[{s:i, s:{s:I, s:i, s:i, s:I}},"
		" {s:i, s:{s:I, s:i, s:i, s:I}}]}]", "vm", 100, "vm_stats", "pages_4k", 512,
		"pages_2m", 3, "pages_1g", 0, "vcpus", "vcpu", 0, "stats", "exits",
		(json_int_t)exits0, "halt_exits", 2, "pf_taken", 5, "halt_wait_ns", (json_int_t)halt_ns,
		"vcpu", 1, "stats", "exits", (json_int_t)exits1, "halt_exits", 1, "pf_taken", 0,
		"halt_wait_ns", (json_int_t)0));
	assert_int_equal(top__update(t, snap), 0);
	json_decref(snap);
}

static void test_kvm_stats(void **state)
{
	struct model_opts mo = {};
	struct model *m = model__new(&mo);
	struct top *t = new_top(NULL);
	const struct top_vm *v;
	struct top_line l;
	json_t *j, *kv;

	(void)state;
	create(m, 100, 7, 2 << 20);
	create(m, 200, 8, 2 << 20);
	kvm_update(t, m, 1000000000ull, 10, 4, 0);
	kvm_update(t, m, 3000000000ull, 30, 4, 1000000000ull);
	v = top__vm(t, 100);
	assert_non_null(v);
	assert_true(v->kvm && v->kvm_vm_stats);
	assert_int_equal(v->raw[TOP_C_KVM_EXITS], 34);
	assert_true(v->rate[TOP_C_KVM_EXITS] == 10.0); /* 20 more in 2 s */
	assert_int_equal(v->nr_vcpus, 2);
	assert_true(v->vcpus[0].rated && v->vcpus[0].exits_rate == 10.0);
	assert_true(v->vcpus[0].halted == 0.5); /* 1 s halted of 2 */
	/* 3 x 2M = 1536 4k pages of 2048 mapped: 75% huge */
	assert_true(top__huge_percent(v) == 75.0);
	assert_false(top__vm(t, 200)->kvm);
	assert_true(top__huge_percent(top__vm(t, 200)) < 0);
	/* the row shows them; a VM without stats fds shows "-" */
	top__set_filter(t, "100");
	top__resize(t, 40, 300);
	top__table_row(t, 0, &l);
	assert_non_null(strstr(l.text, "     10    75%"));
	j = top__to_json(t);
	kv = json_object_get(json_array_get(json_object_get(j, "vms"), 0), "kvm");
	assert_true(json_real_value(json_object_get(kv, "huge_percent")) == 75.0);
	assert_int_equal(json_array_size(json_object_get(kv, "vcpus")), 2);
	json_decref(j);
	top__free(t);
	model__free(m);
}

static void test_bad_snapshots(void **state)
{
	struct model *m = three_vms();
	struct top *t = new_top(NULL);
	json_t *bad = json_pack("{s:b}", "ok", 1);

	assert_int_equal(top__update(t, bad), -EINVAL);
	assert_int_equal(top__frames(t), 0);
	update(t, m, 1 * S);
	assert_int_equal(top__update(t, bad), -EINVAL);
	assert_int_equal(top__frames(t), 1);
	assert_int_equal(top__nr_vms(t), 3); /* the last good frame stays */
	json_decref(bad);
	/* a server that restarted: counters go backwards, rates are 0, not huge */
	model__free(m);
	m = model__new(NULL);
	create(m, 100, 11, 2 << 20);
	update(t, m, 2 * S);
	assert_true(top__vm(t, 100)->rate[TOP_C_ALLOC_USER] == 0.0);
	assert_int_equal(top__nr_vms(t), 1);
	top__free(t);
	model__free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fmt),
		cmocka_unit_test(test_cmdline_name),
		cmocka_unit_test(test_vmname_read),
		cmocka_unit_test(test_only_pid_and_name),
		cmocka_unit_test(test_skip_zero),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_server_names_win),
		cmocka_unit_test(test_first_frame_then_rates),
		cmocka_unit_test(test_names_resolved_once),
		cmocka_unit_test(test_reset_rebases_totals_and_latency),
		cmocka_unit_test(test_sort_and_filter),
		cmocka_unit_test(test_help_fits_80x24_and_scrolls),
		cmocka_unit_test(test_selection_follows_vm),
		cmocka_unit_test(test_keys_and_reactions),
		cmocka_unit_test(test_table_text),
		cmocka_unit_test(test_drill_down_and_events),
		cmocka_unit_test(test_event_text),
		cmocka_unit_test(test_batch_output),
		cmocka_unit_test(test_bad_snapshots),
		cmocka_unit_test(test_kvm_stats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
