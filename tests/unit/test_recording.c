// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Unit tests for the recording format: the column codec, writer/reader round trips, and what
 * a reader does with files cut short, damaged, newer, or left by a crash (every byte of a
 * file is under a checksum: any single changed byte must be caught).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "ctl.h"
#include "kvmstats.h"
#include "prom.h"
#include "recording.h"
#include "scenario.h"

static __u64 rng = 0x853c49e6748fea9bull;

static __u64 rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Records with every field exercised: small deltas mostly, extremes sometimes. */
static void fill(struct gmem_event *e, size_t n)
{
	size_t i;
	__u64 t = 1000;

	for (i = 0; i < n; i++) {
		bool wild = (rnd() & 15) == 0;

		memset(&e[i], 0, sizeof(e[i]));
		t += rnd() % 5000;
		e[i].ts_ns = wild ? rnd() : t;
		e[i].kind = wild ? (__u32)rnd() : 1 + rnd() % (GMEM_EV_KIND_MAX - 1);
		e[i].vm = wild ? (__u32)rnd() : 4000 + rnd() % 3;
		e[i].tid = wild ? (__u32)rnd() : 4000 + rnd() % 8;
		e[i].ino = wild ? rnd() : 70000 + rnd() % 4;
		e[i].a = wild ? rnd() : i;
		e[i].b = wild ? ~0ull : 1;
		e[i].c = wild ? rnd() : 0;
		e[i].result = wild ? (__s32)rnd() : 0;
		e[i].sub = wild ? (__u32)rnd() : rnd() % 5;
		e[i].order = (__u8)rnd();
		e[i].to_order = (__u8)rnd();
		e[i].flags = (__u16)rnd();
	}
}

static char *tmp_path(const char *tag)
{
	static char path[128];

	snprintf(path, sizeof(path), "/tmp/test_recording.%d.%s", (int)getpid(), tag);
	return path;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	FILE *f = fopen(path, "rb");

	assert_non_null(f);
	assert_int_equal(fstat(fileno(f), &st), 0);
	buf = malloc(st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, st.st_size, f), (size_t)st.st_size);
	fclose(f);
	*len = st.st_size;
	return buf;
}

/* Writes n records in chunks of chunk records; returns the file's path. */
static const char *write_file(const char *tag, const struct gmem_event *e, size_t n, __u32 chunk,
			      bool threaded, bool trailer)
{
	struct recording_writer_opts o = { .chunk_records = chunk, .threaded = threaded,
					   .no_host = true };
	struct recording_writer *w;
	const char *path = tmp_path(tag);
	char err[256];
	json_t *meta = json_pack("{s:{s:s}}", "recording", "tool", "test_recording");
	size_t i;

	o.meta = meta;
	assert_int_equal(recording_writer__open(&w, path, &o, err, sizeof(err)), 0);
	json_decref(meta);
	for (i = 0; i < n; i++)
		assert_int_equal(recording_writer__add(w, &e[i]), 0);
	if (trailer) {
		json_t *end = json_pack("{s:s}", "reason", "test");

		assert_int_equal(recording_writer__close(w, end, err, sizeof(err)), 0);
		json_decref(end);
	} else {
		/* written, then killed: no trailer */
		assert_int_equal(recording_writer__flush(w), 0);
		recording_writer__abandon(w);
	}
	return path;
}

/* Reads everything; returns the final status, the records in *out (malloc'd). */
static int read_all(struct recording *r, struct gmem_event **out, size_t *n)
{
	const struct gmem_event *recs;
	size_t k, total = 0, cap = 0;
	struct gmem_event *all = NULL;
	int st;

	while ((st = recording__next(r, &recs, &k)) > 0) {
		if (total + k > cap) {
			cap = (total + k) * 2;
			all = realloc(all, cap * sizeof(*all));
			assert_non_null(all);
		}
		memcpy(all + total, recs, k * sizeof(*recs));
		total += k;
	}
	*out = all;
	*n = total;
	return st;
}

static void test_codec_round_trip(void **state)
{
	size_t n = 5000, len;
	struct gmem_event *in = malloc(n * sizeof(*in)), *out = malloc(n * sizeof(*out));
	unsigned char *buf = malloc(recording__encode_bound(n));

	fill(in, n);
	len = recording__encode(in, n, buf);
	assert_true(len > 0 && len <= recording__encode_bound(n));
	assert_int_equal(recording__decode(buf, len, out, n), 0);
	assert_memory_equal(in, out, n * sizeof(*in));
	/* one record too many or too few: the columns do not add up */
	assert_int_not_equal(recording__decode(buf, len, out, n - 1), 0);
	assert_int_not_equal(recording__decode(buf, len - 1, out, n), 0);
	free(in);
	free(out);
	free(buf);
}

/* A newer writer's extra column (a wider record) is skipped by its length. */
static void test_codec_skips_unknown_columns(void **state)
{
	struct gmem_event in[3], out[3];
	unsigned char buf[4096], ext[4200];
	size_t len;

	fill(in, 3);
	len = recording__encode(in, 3, buf);
	assert_int_equal(buf[0], 13);
	ext[0] = 14;
	memcpy(ext + 1, buf + 1, len - 1);
	/* column 14: 3 bytes of something */
	ext[len] = 3;
	ext[len + 1] = 'x';
	ext[len + 2] = 'y';
	ext[len + 3] = 'z';
	assert_int_equal(recording__decode(ext, len + 4, out, 3), 0);
	assert_memory_equal(in, out, sizeof(in));
	ext[0] = 12; /* fewer columns than this version needs */
	assert_int_not_equal(recording__decode(ext, len + 4, out, 3), 0);
}

static void round_trip(bool threaded)
{
	size_t n = 10007, got;
	struct gmem_event *in = malloc(n * sizeof(*in)), *out = NULL;
	struct recording *r;
	const char *path;
	char err[256];

	fill(in, n);
	path = write_file(threaded ? "rt_thr" : "rt", in, n, 1000, threaded, true);
	assert_int_equal(recording__open(&r, path, err, sizeof(err)), 0);
	assert_int_equal(read_all(r, &out, &got), 0);
	assert_int_equal(got, n);
	assert_memory_equal(in, out, n * sizeof(*in));
	assert_true(recording__complete(r));
	assert_int_equal(recording__chunks_read(r), 11);
	assert_string_equal(recording__error(r), "");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
				    recording__meta(r), "recording"), "tool")),
			    "test_recording");
	assert_string_equal(json_string_value(json_object_get(recording__end(r), "reason")),
			    "test");
	assert_int_equal(recording__version_major(r), RECORDING_VERSION_MAJOR);
	recording__close(r);
	unlink(path);
	free(in);
	free(out);
}

static void test_round_trip(void **state)
{
	round_trip(false);
}

static void test_round_trip_threaded(void **state)
{
	round_trip(true);
}

static void test_empty_recording_is_complete(void **state)
{
	const char *path = write_file("empty", NULL, 0, 10, true, true);
	struct gmem_event *out;
	struct recording *r;
	char err[256];
	size_t n;

	assert_int_equal(recording__open(&r, path, err, sizeof(err)), 0);
	assert_int_equal(read_all(r, &out, &n), 0);
	assert_int_equal(n, 0);
	assert_true(recording__complete(r));
	recording__close(r);
	unlink(path);
	free(out);
}

/* What SIGKILL leaves: flushed chunks, no trailer. Everything flushed reads; the end says so. */
static void test_crash_leaves_readable_chunks(void **state)
{
	size_t n = 3000, got;
	struct gmem_event *in = malloc(n * sizeof(*in)), *out;
	struct recording *r;
	const char *path;
	char err[256];

	fill(in, n);
	path = write_file("crash", in, n, 1000, true, false);
	assert_int_equal(recording__open(&r, path, err, sizeof(err)), 0);
	assert_int_equal(read_all(r, &out, &got), -ENODATA);
	assert_int_equal(got, n);
	assert_memory_equal(in, out, n * sizeof(*in));
	assert_false(recording__complete(r));
	assert_non_null(strstr(recording__error(r), "ends without a trailer"));
	assert_non_null(strstr(recording__error(r), "read 3 chunks (3000 events) before it"));
	recording__close(r);
	unlink(path);
	free(in);
	free(out);
}

/* Cut at every byte: the reader never fails to stop, and reads exactly the whole chunks. */
static void test_truncated_anywhere(void **state)
{
	size_t n = 600, len, cut, got;
	struct gmem_event *in = malloc(n * sizeof(*in)), *out;
	const char *path;
	unsigned char *data;
	__u64 last = 0;

	fill(in, n);
	path = write_file("trunc", in, n, 100, false, true);
	data = slurp(path, &len);
	for (cut = 0; cut < len; cut++) {
		struct recording *r;
		char err[256];
		int st;

		if (recording__open_mem(&r, data, cut, err, sizeof(err))) {
			assert_true(err[0]);
			continue;
		}
		st = read_all(r, &out, &got);
		assert_true(st < 0);
		assert_true(recording__error(r)[0]);
		assert_false(recording__complete(r));
		assert_int_equal(got % 100, 0);
		assert_memory_equal(in, out, got * sizeof(*in));
		assert_true(got >= last);
		last = got;
		recording__close(r);
		free(out);
	}
	assert_int_equal(last, n);
	free(data);
	free(in);
	unlink(path);
}

/* Every byte is under a checksum: changing any one of them is caught, never read as good. */
static void test_every_flipped_byte_is_caught(void **state)
{
	size_t n = 300, len, i, got;
	struct gmem_event *in = malloc(n * sizeof(*in)), *out;
	const char *path;
	unsigned char *data;

	fill(in, n);
	path = write_file("flip", in, n, 100, false, true);
	data = slurp(path, &len);
	for (i = 0; i < len; i++) {
		struct recording *r;
		char err[256];

		data[i] ^= 0x41;
		if (recording__open_mem(&r, data, len, err, sizeof(err)) == 0) {
			assert_true(read_all(r, &out, &got) < 0);
			assert_false(recording__complete(r));
			assert_memory_equal(in, out, got * sizeof(*in));
			recording__close(r);
			free(out);
		}
		data[i] ^= 0x41;
	}
	free(data);
	free(in);
	unlink(path);
}

static void patch_version(unsigned char *d, __u16 major, __u16 minor)
{
	__u32 c;

	d[8] = major;
	d[9] = major >> 8;
	d[10] = minor;
	d[11] = minor >> 8;
	c = crc32(0, d, 28);
	d[28] = c;
	d[29] = c >> 8;
	d[30] = c >> 16;
	d[31] = c >> 24;
}

static void test_versions(void **state)
{
	struct gmem_event e[10], *out;
	struct recording *r;
	unsigned char *data;
	const char *path;
	size_t len, got;
	char err[256];

	fill(e, 10);
	path = write_file("ver", e, 10, 5, false, true);
	data = slurp(path, &len);
	patch_version(data, 2, 0);
	assert_int_equal(recording__open_mem(&r, data, len, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "version 2.0 is newer"));
	patch_version(data, 1, 7); /* a newer minor of our major reads */
	assert_int_equal(recording__open_mem(&r, data, len, err, sizeof(err)), 0);
	assert_int_equal(read_all(r, &out, &got), 0);
	assert_int_equal(got, 10);
	assert_int_equal(recording__version_minor(r), 7);
	recording__close(r);
	free(out);
	free(data);
	unlink(path);
}

static void test_not_a_recording(void **state)
{
	struct recording *r;
	char err[256];

	assert_int_equal(recording__open_mem(&r, "", 0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "empty file"));
	assert_int_equal(recording__open_mem(&r, "hello world, this is text\n", 26, err,
					     sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad magic"));
	assert_int_equal(recording__open_mem(&r, recording_magic, 8, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cut short in its header"));
	assert_int_equal(recording__open(&r, "/", err, sizeof(err)), -EISDIR);
	assert_int_equal(recording__open(&r, "/nonexistent/x", err, sizeof(err)), -ENOENT);
}

static void test_write_failure_is_reported(void **state)
{
	struct recording_writer_opts o = { .no_host = true };
	struct recording_writer *w;
	char err[256];

	if (access("/dev/full", W_OK))
		skip();
	assert_int_equal(recording_writer__open(&w, "/dev/full", &o, err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "No space left"));
}

static void test_kind_dictionary(void **state)
{
	json_t *k = recording__kinds_json(), *v;
	size_t i;

	assert_int_equal(json_array_size(k), GMEM_EV_KIND_MAX - 1);
	json_array_foreach(k, i, v) {
		assert_int_equal(json_integer_value(json_object_get(v, "kind")), i + 1);
		assert_int_equal(json_integer_value(json_object_get(v, "size")), 64);
		assert_true(strlen(json_string_value(json_object_get(v, "name"))) > 1);
		assert_true(strlen(json_string_value(json_object_get(v, "fields"))) > 1);
	}
	json_decref(k);
}

static int count_emit(void *ctx, const struct gmem_event *e)
{
	__u64 *c = ctx;

	assert_true(e->flags & GMEM_EVF_SCENARIO);
	assert_true(e->ts_ns >= c[1]);
	c[1] = e->ts_ns;
	c[0]++;
	c[2] = c[2] * 31 + e->ts_ns + e->kind * 7 + e->a;
	return 0;
}

/* Scenarios are deterministic, time-ordered, and flagged; the probe table they carry reads
 * back through recording__probe_table() as ctl__probe_json() wrote it. */
static void test_scenarios(void **state)
{
	struct scenario_params p = { .events = 1000 };
	size_t i;

	for (i = 0; i < scenario_count; i++) {
		__u64 a[3] = {}, b[3] = {};

		assert_int_equal(scenario__run(&scenario_list[i], &p, count_emit, a), 0);
		assert_int_equal(scenario__run(&scenario_list[i], &p, count_emit, b), 0);
		assert_true(a[0] > 100);
		assert_memory_equal(a, b, sizeof(a));
	}
}

static void test_probe_table_round_trip(void **state)
{
	const struct scenario *s = scenario__find("snp-boot");
	struct scenario_params p = {};
	json_t *meta = scenario__meta(s, &p), *again;
	struct recording_writer_opts o = { .no_host = true, .meta = meta };
	const struct probe_table *t;
	struct recording_writer *w;
	struct recording *r;
	const char *path = tmp_path("probe");
	char err[256];

	assert_int_equal(recording_writer__open(&w, path, &o, err, sizeof(err)), 0);
	assert_int_equal(recording_writer__close(w, NULL, err, sizeof(err)), 0);
	assert_int_equal(recording__open(&r, path, err, sizeof(err)), 0);
	t = recording__probe_table(r);
	assert_non_null(t);
	assert_true(t->n > 10);
	again = ctl__probe_json(t);
	assert_true(json_equal(again, json_object_get(meta, "probe")));
	json_decref(again);
	json_decref(meta);
	recording__close(r);
	unlink(path);
}

/* The encoding is what makes a churn stream small: well under 12 bytes per record. */
static int churn_emit(void *ctx, const struct gmem_event *e)
{
	return recording_writer__add(ctx, e);
}

static void test_churn_compresses(void **state)
{
	struct scenario_params p = { .events = 200000 };
	struct recording_writer_opts o = { .no_host = true };
	struct recording_writer *w;
	const char *path = tmp_path("churn");
	char err[256];
	struct stat st;

	assert_int_equal(recording_writer__open(&w, path, &o, err, sizeof(err)), 0);
	assert_int_equal(scenario__run(scenario__find("synthetic-churn"), &p, churn_emit, w), 0);
	assert_int_equal(recording_writer__close(w, NULL, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true((double)st.st_size / 200000 < 12.0);
	unlink(path);
}

static void test_flush_due(void **state)
{
	struct recording_writer_opts o = { .no_host = true, .chunk_ns = 1000 };
	struct recording_writer_stats st;
	struct recording_writer *w;
	struct gmem_event e = { .kind = 6 };
	const char *path = tmp_path("due");
	char err[256];

	assert_int_equal(recording_writer__open(&w, path, &o, err, sizeof(err)), 0);
	assert_int_equal(recording_writer__add(w, &e), 0);
	assert_int_equal(recording_writer__flush_due(w, 0), 0);
	recording_writer__stats(w, &st);
	assert_int_equal(st.chunks, 0);
	assert_int_equal(recording_writer__flush_due(w, ~0ull >> 1), 0);
	recording_writer__stats(w, &st);
	assert_int_equal(st.chunks, 1);
	assert_int_equal(st.written, 1);
	assert_int_equal(recording_writer__close(w, NULL, err, sizeof(err)), 0);
	unlink(path);
}

/* ---- KVM binary stats records ------------------------------------------------------------ */

#define KVM_TYPE_CUMULATIVE 0x0 /* KVM_STATS_TYPE_* and UNIT_* of linux/kvm.h */
#define KVM_TYPE_INSTANT    0x1
#define KVM_UNIT_SECONDS    (0x2 << 4)

static struct gmem_event kvm_desc(__u32 id, const char *name, unsigned int part, __u8 scope,
				  __u32 flags, __s64 exponent, bool exported)
{
	struct gmem_event e = { .ts_ns = 5000, .kind = GMEM_EV_KVM_STAT_DESC, .sub = id,
				.order = scope, .result = (__s32)flags, .c = (__u64)exponent,
				.flags = GMEM_EVF_SYNTH | (exported ? GMEM_EVF_EXPORTED : 0) };

	kvmstats__pack_name(&e, name, part);
	return e;
}

static struct gmem_event kvm_sample(__u64 ts, __u32 vm, __u32 id, __u8 scope, __u64 vcpu,
				    __u64 v)
{
	return (struct gmem_event){ .ts_ns = ts, .kind = GMEM_EV_KVM_STAT, .vm = vm, .sub = id,
				    .order = scope, .a = v, .b = vcpu, .flags = GMEM_EVF_SYNTH };
}

static const char long_name[] = "max_mmu_page_hash_collisions_and_more_to_48b_x"; /* 46 */

/* Two ticks of a VM with two vCPUs, as gmemd emits them: DESCs, then samples. */
static size_t kvm_ticks(struct gmem_event *e)
{
	size_t n = 0, t;

	for (t = 0; t < 2; t++) {
		__u64 ts = 1000000000ull * (t + 1);

		e[n++] = kvm_desc(0, "exits", 0, 1, KVM_TYPE_CUMULATIVE, 0, true);
		e[n++] = kvm_desc(1, "halt_wait_ns", 0, 1, KVM_TYPE_CUMULATIVE | KVM_UNIT_SECONDS,
				  -9, false);
		e[n++] = kvm_desc(2, "pages_2m", 0, 0, KVM_TYPE_INSTANT, 0, true);
		e[n++] = kvm_desc(3, "pages_4k", 0, 0, KVM_TYPE_INSTANT, 0, false);
		e[n++] = kvm_desc(4, long_name, 0, 0, KVM_TYPE_INSTANT, 0, false);
		e[n++] = kvm_desc(4, long_name, 1, 0, KVM_TYPE_INSTANT, 0, false);
		e[n++] = kvm_sample(ts, 4242, 0, 1, 0, 100 + 10 * t);
		e[n++] = kvm_sample(ts, 4242, 0, 1, 1, 7 + t);
		e[n++] = kvm_sample(ts, 4242, 1, 1, 0, 1500000000ull * (t + 1));
		e[n++] = kvm_sample(ts, 4242, 2, 0, 0, t ? 3 : 9); /* a split: 2M pages go down */
		e[n++] = kvm_sample(ts, 4242, 3, 0, 0, t ? 3072 : 0);
		e[n++] = kvm_sample(ts, 4242, 4, 0, 0, 5);
	}
	return n;
}

/* CONSTRUCTED: the names of DESC records survive packing, 24 bytes a part, up to KVM's 48. */
static void test_kvm_stat_names_pack(void **state)
{
	struct gmem_event e = {};
	char name[64] = "", part[40];

	kvmstats__pack_name(&e, "exits", 0);
	assert_int_equal(e.ino, 'e' | 'x' << 8 | 'i' << 16 | 't' << 24 | (__u64)'s' << 32);
	assert_int_equal(e.a, 0);
	assert_true(kvmstats__unpack_name(&e, name, sizeof(name)));
	assert_string_equal(name, "exits");
	e.kind = GMEM_EV_KVM_STAT_DESC;
	assert_true(kvmstats__desc_name(&e, part, sizeof(part)));
	assert_string_equal(part, "exits");

	memset(name, 0, sizeof(name));
	kvmstats__pack_name(&e, long_name, 0);
	assert_true(kvmstats__unpack_name(&e, name, sizeof(name)));
	kvmstats__pack_name(&e, long_name, 1);
	assert_int_equal(e.to_order, 1);
	assert_true(kvmstats__unpack_name(&e, name, sizeof(name)));
	assert_string_equal(name, long_name);
	/* a third part is past KVM's names; a part of bytes no stat name has is refused */
	e.to_order = 2;
	assert_false(kvmstats__unpack_name(&e, name, sizeof(name)));
	kvmstats__pack_name(&e, "Exits,\n", 0);
	assert_false(kvmstats__desc_name(&e, part, sizeof(part)));
}

/* CONSTRUCTED: KVM stats records encode and decode exactly, in a chunk and through a file. */
static void test_kvm_stat_records_round_trip(void **state)
{
	struct gmem_event in[32], out[32], *all = NULL;
	unsigned char buf[8192];
	struct recording *r;
	const char *path;
	char err[256];
	size_t n = kvm_ticks(in), len, got;

	len = recording__encode(in, n, buf);
	assert_true(len > 0 && len <= recording__encode_bound(n));
	assert_int_equal(recording__decode(buf, len, out, n), 0);
	assert_memory_equal(in, out, n * sizeof(*in));
	path = write_file("kvm", in, n, 5, false, true);
	assert_int_equal(recording__open(&r, path, err, sizeof(err)), 0);
	assert_int_equal(read_all(r, &all, &got), 0);
	assert_int_equal(got, n);
	assert_memory_equal(in, all, n * sizeof(*in));
	recording__close(r);
	unlink(path);
	free(all);
}

static const struct prom_family *family(const struct prom_family *f, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(f[i].name, name))
			return &f[i];
	return NULL;
}

/* CONSTRUCTED: decoded records rebuild what gmemd read: values per VM and vCPU, the mapping
 * mix over time, and /metrics families of exactly the stats the recorder exported. */
static void test_kvm_stat_records_replay(void **state)
{
	struct gmem_event in[40];
	const struct prom_family *fams, *f;
	const struct kvmstats_mix *mix;
	struct kvmstats *k;
	json_t *rep, *vm;
	size_t n = kvm_ticks(in), nf, i;

	assert_int_equal(kvmstats__new_replay(&k), 0);
	for (i = 0; i < n; i++)
		kvmstats__apply(k, &in[i]);
	assert_int_equal(kvmstats__bad_records(k), 0);

	rep = kvmstats__report_json(k);
	assert_int_equal(json_array_size(rep), 1);
	vm = json_array_get(rep, 0);
	assert_int_equal(json_integer_value(json_object_get(vm, "vm")), 4242);
	assert_int_equal(json_integer_value(json_object_get(vm, "samples")), 12);
	/* cumulative vCPU stats summed over the vCPUs, each vCPU's kept */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(vm, "vcpu_totals"),
							    "exits")), 110 + 8);
	assert_int_equal(json_array_size(json_object_get(vm, "vcpus")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(vm, "vm_stats"),
							    long_name)), 5);
	json_decref(rep);
	mix = kvmstats__mix(k, 4242);
	assert_non_null(mix);
	assert_int_equal(mix[0].first, 0); /* pages_4k */
	assert_int_equal(mix[0].last, 3072);
	assert_int_equal(mix[1].first, 9); /* pages_2m */
	assert_int_equal(mix[1].last, 3);
	assert_int_equal(mix[1].min, 3);
	assert_int_equal(mix[1].max, 9);
	assert_int_equal(mix[1].n, 2);
	assert_int_equal(mix[2].n, 0); /* no pages_1g samples */
	assert_null(kvmstats__mix(k, 1));

	/* only what the recorder exported: exits (summed), pages_2m */
	kvmstats__families(k, &fams, &nf);
	assert_int_equal(nf, 2);
	f = family(fams, nf, "gmem_kvm_exits_total");
	assert_non_null(f);
	assert_int_equal(f->type, PROM_STAT_COUNTER);
	assert_int_equal(f->n, 1);
	assert_int_equal(f->samples[0].vm, 4242);
	assert_int_equal(f->samples[0].u, 118);
	f = family(fams, nf, "gmem_kvm_pages_2m");
	assert_non_null(f);
	assert_int_equal(f->type, PROM_STAT_GAUGE);
	assert_int_equal(f->samples[0].u, 3);

	/* the VM exits: its series go, the report keeps it */
	kvmstats__apply(k, &(struct gmem_event){ .kind = GMEM_EV_VM_EXIT, .vm = 4242 });
	kvmstats__families(k, &fams, &nf);
	assert_int_equal(nf, 0);
	rep = kvmstats__report_json(k);
	assert_true(json_is_true(json_object_get(json_array_get(rep, 0), "gone")));
	json_decref(rep);

	/* samples no DESC named, a scope the DESC contradicts, a DESC part past 48 bytes */
	kvmstats__apply(k, &(struct gmem_event){ .kind = GMEM_EV_KVM_STAT, .vm = 1, .sub = 9 });
	kvmstats__apply(k, &(struct gmem_event){ .kind = GMEM_EV_KVM_STAT, .vm = 1, .sub = 0,
						 .order = 0 });
	in[0].to_order = 2;
	kvmstats__apply(k, &in[0]);
	assert_int_equal(kvmstats__bad_records(k), 3);
	kvmstats__free(k);
}

/* CONSTRUCTED: an exported ns stat is in seconds, as gmemd exports it. */
static void test_kvm_stat_seconds(void **state)
{
	struct gmem_event d = kvm_desc(0, "halt_wait_ns", 0, 1,
				       KVM_TYPE_CUMULATIVE | KVM_UNIT_SECONDS, -9, true);
	struct gmem_event s = kvm_sample(1, 7, 0, 1, 0, 2500000000ull);
	const struct prom_family *fams;
	struct kvmstats *k;
	size_t nf;

	assert_int_equal(kvmstats__new_replay(&k), 0);
	kvmstats__apply(k, &d);
	kvmstats__apply(k, &s);
	kvmstats__families(k, &fams, &nf);
	assert_int_equal(nf, 1);
	assert_string_equal(fams[0].name, "gmem_kvm_halt_wait_seconds_total");
	assert_true(fams[0].samples[0].is_float);
	assert_true(fams[0].samples[0].d > 2.4999 && fams[0].samples[0].d < 2.5001);
	kvmstats__free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codec_round_trip),
		cmocka_unit_test(test_codec_skips_unknown_columns),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_round_trip_threaded),
		cmocka_unit_test(test_empty_recording_is_complete),
		cmocka_unit_test(test_crash_leaves_readable_chunks),
		cmocka_unit_test(test_truncated_anywhere),
		cmocka_unit_test(test_every_flipped_byte_is_caught),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_not_a_recording),
		cmocka_unit_test(test_write_failure_is_reported),
		cmocka_unit_test(test_kind_dictionary),
		cmocka_unit_test(test_scenarios),
		cmocka_unit_test(test_probe_table_round_trip),
		cmocka_unit_test(test_churn_compresses),
		cmocka_unit_test(test_flush_due),
		cmocka_unit_test(test_kvm_stat_names_pack),
		cmocka_unit_test(test_kvm_stat_records_round_trip),
		cmocka_unit_test(test_kvm_stat_records_replay),
		cmocka_unit_test(test_kvm_stat_seconds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
