// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * recording.c - writer and reader of gmemtrace recordings (docs/recording-format.md).
 *
 * Every integer of the framing is little-endian and every record field is stored as a varint,
 * so a file reads the same on any host; the header still says which byte order the recording
 * host had. Records are stored column by column (kind, flags, sub, order, to_order, result,
 * vm, tid, ino, a, b, c, ts): each column is a run of LEB128 varints, most of them deltas
 * against the previous record of the same kind (the previous record of any kind for ts), so
 * the page index of a fault stream becomes a run of 1s and a page count a run of 0s before
 * deflate sees them. Chunks are independent (the delta state restarts), so one bad chunk
 * costs only what follows it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "model.h"
#include "recording.h"

const unsigned char recording_magic[RECORDING_MAGIC_LEN] = { 0x89, 'G', 'M', 'T',
							     '\r', '\n', 0x1a, '\n' };

#define FILE_HDR_LEN   32
#define CHUNK_HDR_LEN  48
#define FOOTER_LEN     24
#define CHUNK_MAGIC    0x4b434d47u /* "GMCK" */
#define FOOTER_MAGIC   0x4e454d47u /* "GMEN" */
#define CHUNK_DATA     1
#define CHUNK_INDEX    2
#define ENC_COLUMNS_V1 1 /* columnar varint deltas, deflated */
#define ENC_RAW        0 /* stored as is (the index) */
#define NCOLS          13
#define NCTX           32 /* delta contexts: kind & (NCTX - 1) */
#define VARINT_MAX     10
#define MAX_PAYLOAD    (256u << 20)
#define QDEPTH         4 /* chunks queued to the worker */

enum col {
	COL_KIND, COL_FLAGS, COL_SUB, COL_ORDER, COL_TO_ORDER, COL_RESULT, COL_VM, COL_TID,
	COL_INO, COL_A, COL_B, COL_C, COL_TS,
};

/* ---- little-endian framing --------------------------------------------------------------- */

static void put16(unsigned char *p, __u16 v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(unsigned char *p, __u32 v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static void put64(unsigned char *p, __u64 v)
{
	put32(p, v);
	put32(p + 4, v >> 32);
}

static __u16 get16(const unsigned char *p)
{
	return p[0] | (__u16)p[1] << 8;
}

static __u32 get32(const unsigned char *p)
{
	return get16(p) | (__u32)get16(p + 2) << 16;
}

static __u64 get64(const unsigned char *p)
{
	return get32(p) | (__u64)get32(p + 4) << 32;
}

static __u32 crc(const void *p, size_t len)
{
	return crc32(crc32(0, Z_NULL, 0), p, len);
}

/*
 * Whether a stored checksum matches. The fuzzer's build accepts any (the libFuzzer convention),
 * so that it explores what lies behind the checksums instead of stopping at them; the unit
 * tests show every byte is covered by one.
 */
static bool crc_ok(__u32 stored, const void *p, size_t len)
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	return true;
#else
	return stored == crc(p, len);
#endif
}

/* ---- varints ----------------------------------------------------------------------------- */

static inline unsigned char *put_uv(unsigned char *p, __u64 v)
{
	while (v >= 0x80) {
		*p++ = (unsigned char)v | 0x80;
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	return p;
}

static inline __u64 zigzag(__u64 delta)
{
	return (delta << 1) ^ (__u64)((__s64)delta >> 63);
}

static inline __u64 unzigzag(__u64 v)
{
	return (v >> 1) ^ (0 - (v & 1));
}

/* Reads one varint from [*p, end); false when cut short or longer than 64 bits. */
static inline bool get_uv(const unsigned char **p, const unsigned char *end, __u64 *out)
{
	const unsigned char *q = *p;
	__u64 v = 0;
	unsigned int shift = 0;

	while (q < end) {
		unsigned char b = *q++;

		if (shift == 63 && b > 1)
			return false;
		v |= (__u64)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*p = q;
			*out = v;
			return true;
		}
		shift += 7;
		if (shift > 63)
			return false;
	}
	return false;
}

/* ---- record encoding --------------------------------------------------------------------- */

struct delta_ctx {
	__u64 vm, tid, ino, a, b, c;
};

size_t recording__encode_bound(size_t n)
{
	return VARINT_MAX + NCOLS * (VARINT_MAX + VARINT_MAX * n);
}

/*
 * One pass over the records fills the 13 columns side by side (one walk of the records, not
 * thirteen), then they are laid out one after the other, each behind its length. out must
 * hold recording__encode_bound(n) bytes; the first half of it is scratch for the columns.
 */
size_t recording__encode(const struct gmem_event *recs, size_t n, unsigned char *out)
{
	size_t colcap = VARINT_MAX * n, total = 0, i;
	unsigned char *cols = malloc(NCOLS * colcap + 1), *p[NCOLS], *start[NCOLS], *o = out;
	struct delta_ctx ctx[NCTX] = {};
	__u64 prev_ts = 0;
	int c;

	if (!cols)
		return 0;
	for (c = 0; c < NCOLS; c++)
		start[c] = p[c] = cols + c * colcap;
	for (i = 0; i < n; i++) {
		const struct gmem_event *e = &recs[i];
		struct delta_ctx *x = &ctx[e->kind & (NCTX - 1)];

		p[COL_KIND] = put_uv(p[COL_KIND], e->kind);
		p[COL_FLAGS] = put_uv(p[COL_FLAGS], e->flags);
		p[COL_SUB] = put_uv(p[COL_SUB], e->sub);
		p[COL_ORDER] = put_uv(p[COL_ORDER], e->order);
		p[COL_TO_ORDER] = put_uv(p[COL_TO_ORDER], e->to_order);
		p[COL_RESULT] = put_uv(p[COL_RESULT], zigzag((__u64)(__s64)e->result));
		p[COL_VM] = put_uv(p[COL_VM], zigzag((__u64)e->vm - x->vm));
		p[COL_TID] = put_uv(p[COL_TID], zigzag((__u64)e->tid - x->tid));
		p[COL_INO] = put_uv(p[COL_INO], zigzag(e->ino - x->ino));
		p[COL_A] = put_uv(p[COL_A], zigzag(e->a - x->a));
		p[COL_B] = put_uv(p[COL_B], zigzag(e->b - x->b));
		p[COL_C] = put_uv(p[COL_C], zigzag(e->c - x->c));
		p[COL_TS] = put_uv(p[COL_TS], zigzag(e->ts_ns - prev_ts));
		x->vm = e->vm;
		x->tid = e->tid;
		x->ino = e->ino;
		x->a = e->a;
		x->b = e->b;
		x->c = e->c;
		prev_ts = e->ts_ns;
	}
	o = put_uv(o, NCOLS);
	for (c = 0; c < NCOLS; c++) {
		size_t len = p[c] - start[c];

		o = put_uv(o, len);
		memcpy(o, start[c], len);
		o += len;
	}
	total = o - out;
	free(cols);
	return total;
}

/*
 * The inverse, for exactly n records. Columns beyond the 13 this version knows (a newer
 * writer's wider records) are skipped by their length. Every read is bounds-checked and every
 * column must be consumed exactly: -EBADMSG otherwise.
 */
int recording__decode(const unsigned char *in, size_t len, struct gmem_event *recs, size_t n)
{
	const unsigned char *p = in, *end = in + len, *cp[NCOLS], *ce[NCOLS];
	struct delta_ctx ctx[NCTX] = {};
	__u64 ncols, clen, v, prev_ts = 0;
	size_t i;
	int c;

	if (!get_uv(&p, end, &ncols) || ncols < NCOLS || ncols > 1024)
		return -EBADMSG;
	for (c = 0; c < (int)ncols; c++) {
		if (!get_uv(&p, end, &clen) || clen > (__u64)(end - p))
			return -EBADMSG;
		if (c < NCOLS) {
			cp[c] = p;
			ce[c] = p + clen;
		}
		p += clen;
	}
	if (p != end)
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		struct gmem_event *e = &recs[i];
		struct delta_ctx *x;
		__u64 f[NCOLS];

		for (c = 0; c < NCOLS; c++)
			if (!get_uv(&cp[c], ce[c], &f[c]))
				return -EBADMSG;
		if (f[COL_KIND] > UINT32_MAX || f[COL_FLAGS] > UINT16_MAX ||
		    f[COL_SUB] > UINT32_MAX || f[COL_ORDER] > UINT8_MAX ||
		    f[COL_TO_ORDER] > UINT8_MAX)
			return -EBADMSG;
		memset(e, 0, sizeof(*e));
		e->kind = f[COL_KIND];
		e->flags = f[COL_FLAGS];
		e->sub = f[COL_SUB];
		e->order = f[COL_ORDER];
		e->to_order = f[COL_TO_ORDER];
		v = unzigzag(f[COL_RESULT]);
		if ((__s64)v < INT32_MIN || (__s64)v > INT32_MAX)
			return -EBADMSG;
		e->result = (__s32)(__s64)v;
		x = &ctx[e->kind & (NCTX - 1)];
		v = x->vm + unzigzag(f[COL_VM]);
		if (v > UINT32_MAX)
			return -EBADMSG;
		e->vm = v;
		v = x->tid + unzigzag(f[COL_TID]);
		if (v > UINT32_MAX)
			return -EBADMSG;
		e->tid = v;
		e->ino = x->ino + unzigzag(f[COL_INO]);
		e->a = x->a + unzigzag(f[COL_A]);
		e->b = x->b + unzigzag(f[COL_B]);
		e->c = x->c + unzigzag(f[COL_C]);
		e->ts_ns = prev_ts + unzigzag(f[COL_TS]);
		x->vm = e->vm;
		x->tid = e->tid;
		x->ino = e->ino;
		x->a = e->a;
		x->b = e->b;
		x->c = e->c;
		prev_ts = e->ts_ns;
	}
	for (c = 0; c < NCOLS; c++)
		if (cp[c] != ce[c])
			return -EBADMSG;
	return 0;
}

/* ---- the kind dictionary ----------------------------------------------------------------- */

/* What a, b, c, sub... mean per kind: gmem_events.h's comments, stored in every file. */
static const char *const kind_fields[GMEM_EV_KIND_MAX] = {
	[GMEM_EV_NONE] = "",
	[GMEM_EV_FILE_CREATE] = "ino, a=size, b=flags, result=fd or -errno",
	[GMEM_EV_FILE_RELEASE] = "ino",
	[GMEM_EV_FILE_DISCOVER] = "ino, a=size, b=populated pages, c=flags",
	[GMEM_EV_BIND] = "ino, a=gpa, b=size bytes, c=offset, sub=slot, result",
	[GMEM_EV_UNBIND] = "sub=slot, result",
	[GMEM_EV_PAGE_ALLOC] = "ino, a=index, b=pages, order, sub=source; flags RANGE: c=end index; "
			       "flags COUNTED: b pages in c events, no index",
	[GMEM_EV_PAGE_FREE] = "ino, a=index, b=pages, order; flags RANGE: c=end index; flags "
			      "COUNTED: b pages in c events, no index",
	[GMEM_EV_PUNCH_HOLE] = "ino, a=offset, b=len bytes, result; flags INFILE: c=bytes of the "
			       "range below the file's size (what it invalidated)",
	[GMEM_EV_FALLOCATE] = "ino, a=offset, b=len bytes, result",
	[GMEM_EV_FAULT] = "ino, a=index, c=latency ns, sub=source, result",
	[GMEM_EV_CONV_REQUEST] = "tid, a=gpa, b=size bytes, sub=direction, c=exit reason",
	[GMEM_EV_CONV_ATTR] = "tid, a=gpa, b=size bytes, sub=direction, c=latency ns, result; "
			      "flags INPLACE: ino, a=offset in the file",
	[GMEM_EV_VCPU_RESUME] = "tid",
	[GMEM_EV_DMAP_REMOVE] = "ino, a=folio index, b=pages, sub=owner",
	[GMEM_EV_DMAP_RESTORE] = "ino, a=folio index, b=pages, sub=owner",
	[GMEM_EV_DMAP_SAMPLE] = "a=4k bytes, b=2M bytes, c=1G bytes",
	[GMEM_EV_RMP] = "a=pfn, b=gpa, order, sub=rmp op, result",
	[GMEM_EV_TDX] = "a=gpa, b=pfn, order, sub=tdx op, c=hkid (wbinvd)",
	[GMEM_EV_SPLIT] = "ino, a=index, order=from, to_order=to",
	[GMEM_EV_MERGE] = "ino, a=index, order=from, to_order=to, result",
	[GMEM_EV_LOST] = "a=records lost",
	[GMEM_EV_VM_EXIT] = "vm",
	[GMEM_EV_FD_CLOSE] = "ino",
	[GMEM_EV_KVM_STAT_DESC] = "sub=stat id, order=scope (0 VM, 1 vCPU), to_order=name part, "
				  "result=KVM descriptor flags, c=exponent (s64), ino a b=24 name "
				  "bytes (byte i in bits 8*(i%8)); flags EXPORTED: in /metrics",
	[GMEM_EV_KVM_STAT] = "vm, sub=stat id, order=scope, a=value, b=vCPU index (scope 1)",
	[GMEM_EV_VM_NAME] = "vm, to_order=part, ino a b c=32 bytes of the VM's name (byte i in "
			    "bits 8*(i%8))",
	[GMEM_EV_VCPU_THREAD] = "vm, tid, a=vCPU index: the thread's first KVM_RUN of it",
	[GMEM_EV_GFN_INVALIDATE] = "vm, a=first gfn, b=end gfn (exclusive), c=attr_filter (1 "
				   "shared, 2 private): frames a gmem invalidation unmapped",
};

const char *recording__kind_fields(unsigned int kind)
{
	return kind < GMEM_EV_KIND_MAX && kind_fields[kind] ? kind_fields[kind] : "";
}

json_t *recording__kinds_json(void)
{
	json_t *arr = json_array();
	unsigned int k;

	for (k = 1; k < GMEM_EV_KIND_MAX; k++)
		json_array_append_new(arr, json_pack("{s:i, s:s, s:i, s:s}", "kind", (int)k, "name",
						     model__kind_name(k), "size",
						     (int)sizeof(struct gmem_event), "fields",
						     recording__kind_fields(k)));
	return arr;
}

/* ---- writer ------------------------------------------------------------------------------ */

struct index_entry {
	__u64 offset;
	__u64 min_ts, max_ts;
	__u32 records;
};

struct chunk_buf {
	struct gmem_event *recs;
	size_t n;
};

struct recording_writer {
	int fd;
	char *path;
	struct recording_writer_opts opts;
	json_t *meta;

	/* producer side */
	struct chunk_buf cur;
	__u64 cur_since_ns;
	__u64 records;

	/* encoder (the worker when threaded), owned by whoever writes chunks */
	unsigned char *enc, *zout;
	size_t enc_cap, zout_cap;
	z_stream zs;
	bool zinit;
	__u64 last_sync_ns;

	/* shared: under mu when threaded */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct chunk_buf queue[QDEPTH];
	int qhead, qlen;
	struct gmem_event *spare[QDEPTH + 1];
	int nspare;
	bool stop, worker_busy;
	pthread_t worker;
	bool have_worker;
	struct index_entry *index;
	size_t nindex, cap_index;
	__u64 off;
	__u32 seq;
	__u64 written;
	__u64 min_ts, max_ts;
	int failed; /* -errno of the first failure, sticky; set under mu when threaded */
	char err[256];
	/* what stats() reports: published under mu by whoever writes chunks, once per chunk */
	struct recording_writer_stats pub;
};

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= n;
	}
	return 0;
}

/* The sticky failure, read from the producer side while a worker may set it. */
static int writer_failed(struct recording_writer *w)
{
	return __atomic_load_n(&w->failed, __ATOMIC_ACQUIRE);
}

static void writer_fail(struct recording_writer *w, int e, const char *what)
{
	if (w->failed)
		return;
	snprintf(w->err, sizeof(w->err), "%s: %s", what, strerror(-e));
	__atomic_store_n(&w->failed, e, __ATOMIC_RELEASE);
}

/*
 * Writes one chunk: frame holds CHUNK_HDR_LEN bytes of room for the header, then the payload,
 * so header and payload go out in a single write. A failed or short write is cut back off the
 * file, so the file still ends on a chunk boundary and reads up to its last complete chunk.
 */
static int write_chunk(struct recording_writer *w, __u16 type, __u16 enc, __u32 nrec,
		       __u32 raw_len, unsigned char *frame, __u32 len, __u64 min_ts, __u64 max_ts)
{
	unsigned char *payload = frame + CHUNK_HDR_LEN;
	int e;

	put32(frame, CHUNK_MAGIC);
	put16(frame + 4, type);
	put16(frame + 6, enc);
	put32(frame + 8, w->seq);
	put32(frame + 12, nrec);
	put32(frame + 16, raw_len);
	put32(frame + 20, len);
	put64(frame + 24, min_ts);
	put64(frame + 32, max_ts);
	put32(frame + 40, crc(payload, len));
	put32(frame + 44, crc(frame, 44));
	e = write_all(w->fd, frame, CHUNK_HDR_LEN + len);
	if (e) {
		if (ftruncate(w->fd, w->off) == 0)
			lseek(w->fd, w->off, SEEK_SET);
		return e;
	}
	w->off += CHUNK_HDR_LEN + len;
	w->seq++;
	return 0;
}

static int grow(unsigned char **buf, size_t *cap, size_t need)
{
	unsigned char *nb;

	if (*cap >= need)
		return 0;
	nb = realloc(*buf, need);
	if (!nb)
		return -ENOMEM;
	*buf = nb;
	*cap = need;
	return 0;
}

/* Encode, deflate and write one chunk: the worker's job (or the caller's, unthreaded). */
static int emit_chunk(struct recording_writer *w, const struct gmem_event *recs, size_t n)
{
	struct index_entry ent = { .records = n, .min_ts = ~0ull };
	size_t raw, bound, i;
	unsigned char *zbuf;
	int e;

	for (i = 0; i < n; i++) {
		if (recs[i].ts_ns < ent.min_ts)
			ent.min_ts = recs[i].ts_ns;
		if (recs[i].ts_ns > ent.max_ts)
			ent.max_ts = recs[i].ts_ns;
	}
	if (grow(&w->enc, &w->enc_cap, recording__encode_bound(n)))
		return -ENOMEM;
	raw = recording__encode(recs, n, w->enc);
	if (!raw)
		return -ENOMEM;
	bound = deflateBound(&w->zs, raw);
	if (grow(&w->zout, &w->zout_cap, CHUNK_HDR_LEN + bound))
		return -ENOMEM;
	zbuf = w->zout + CHUNK_HDR_LEN;
	deflateReset(&w->zs);
	w->zs.next_in = w->enc;
	w->zs.avail_in = raw;
	w->zs.next_out = zbuf;
	w->zs.avail_out = bound;
	if (deflate(&w->zs, Z_FINISH) != Z_STREAM_END)
		return -EIO;
	ent.offset = w->off;
	e = write_chunk(w, CHUNK_DATA, ENC_COLUMNS_V1, n, raw, w->zout, w->zs.total_out,
			ent.min_ts, ent.max_ts);
	if (e)
		return e;
	if (w->opts.sync) {
		__u64 now = mono_ns();

		if (now - w->last_sync_ns >= w->opts.chunk_ns) {
			fdatasync(w->fd);
			w->last_sync_ns = now;
		}
	}
	if (w->nindex == w->cap_index) {
		size_t cap = w->cap_index ? w->cap_index * 2 : 64;
		struct index_entry *ni = realloc(w->index, cap * sizeof(*ni));

		if (!ni)
			return -ENOMEM;
		w->index = ni;
		w->cap_index = cap;
	}
	w->index[w->nindex++] = ent;
	w->written += n;
	if (ent.min_ts < w->min_ts)
		w->min_ts = ent.min_ts;
	if (ent.max_ts > w->max_ts)
		w->max_ts = ent.max_ts;
	return 0;
}

/* Copies the writer-side counters for stats(); under mu when a worker exists. */
static void publish(struct recording_writer *w)
{
	w->pub.written = w->written;
	w->pub.chunks = w->nindex;
	w->pub.bytes = w->off;
	w->pub.raw_bytes = w->written * sizeof(struct gmem_event);
	w->pub.min_ts_ns = w->written ? w->min_ts : 0;
	w->pub.max_ts_ns = w->max_ts;
}

static void *worker_main(void *arg)
{
	struct recording_writer *w = arg;
	struct chunk_buf job;
	int e;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->qlen && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->qlen)
			break;
		job = w->queue[w->qhead];
		w->worker_busy = true;
		pthread_mutex_unlock(&w->mu);
		/* the index, counters and file offset are the worker's alone while it is busy */
		e = w->failed ? 0 : emit_chunk(w, job.recs, job.n);
		pthread_mutex_lock(&w->mu);
		if (e)
			writer_fail(w, e, "writing a chunk");
		publish(w);
		w->qhead = (w->qhead + 1) % QDEPTH;
		w->qlen--;
		w->spare[w->nspare++] = job.recs;
		w->worker_busy = false;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Hands the current buffer over (to the worker, or writes it here) and starts a new one. */
static int submit(struct recording_writer *w)
{
	int e = 0;

	if (!w->cur.n)
		return writer_failed(w);
	if (!w->have_worker) {
		e = w->failed ? w->failed : emit_chunk(w, w->cur.recs, w->cur.n);
		if (e)
			writer_fail(w, e, "writing a chunk");
		publish(w);
		w->cur.n = 0;
		return e;
	}
	pthread_mutex_lock(&w->mu);
	/* a slow disk throttles the producer here, never loses records */
	while (w->qlen == QDEPTH || !w->nspare)
		pthread_cond_wait(&w->cv, &w->mu);
	w->queue[(w->qhead + w->qlen) % QDEPTH] = w->cur;
	w->qlen++;
	w->cur.recs = w->spare[--w->nspare];
	w->cur.n = 0;
	e = w->failed;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return e;
}

int recording_writer__add(struct recording_writer *w, const struct gmem_event *e)
{
	if (!w->cur.n)
		w->cur_since_ns = mono_ns();
	w->cur.recs[w->cur.n++] = *e;
	w->records++;
	if (w->cur.n == w->opts.chunk_records)
		return submit(w);
	return 0;
}


int recording_writer__flush_due(struct recording_writer *w, __u64 now_ns)
{
	if (w->cur.n && now_ns >= w->cur_since_ns &&
	    now_ns - w->cur_since_ns >= w->opts.chunk_ns)
		return submit(w);
	return writer_failed(w);
}

/* Waits until the worker has written everything queued. */
static void drain(struct recording_writer *w)
{
	if (!w->have_worker)
		return;
	pthread_mutex_lock(&w->mu);
	while (w->qlen || w->worker_busy)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

int recording_writer__flush(struct recording_writer *w)
{
	int e = submit(w);

	drain(w);
	return e ? e : writer_failed(w);
}

void recording_writer__stats(const struct recording_writer *w, struct recording_writer_stats *st)
{
	struct recording_writer *mw = (struct recording_writer *)w;

	if (w->have_worker)
		pthread_mutex_lock(&mw->mu);
	*st = w->pub;
	if (w->have_worker)
		pthread_mutex_unlock(&mw->mu);
	st->records = w->records;
}

const char *recording_writer__error(const struct recording_writer *w)
{
	return w->err;
}

const char *recording_writer__path(const struct recording_writer *w)
{
	return w->path;
}

/* Host identity: uname, and a fingerprint of the kernel's BTF (what CO-RE relocated against). */
static json_t *host_json(void)
{
	json_t *h = json_object(), *btf = json_object();
	unsigned char buf[65536];
	struct utsname u;
	__u64 size = 0;
	uLong c = crc32(0, Z_NULL, 0);
	ssize_t n;
	int fd;

	if (uname(&u) == 0) {
		json_object_set_new(h, "sysname", json_string(u.sysname));
		json_object_set_new(h, "nodename", json_string(u.nodename));
		json_object_set_new(h, "release", json_string(u.release));
		json_object_set_new(h, "version", json_string(u.version));
		json_object_set_new(h, "machine", json_string(u.machine));
	}
	fd = open("/sys/kernel/btf/vmlinux", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			c = crc32(c, buf, n);
			size += n;
		}
		close(fd);
		json_object_set_new(btf, "path", json_string("/sys/kernel/btf/vmlinux"));
		json_object_set_new(btf, "size", json_integer(size));
		json_object_set_new(btf, "crc32", json_sprintf("%08lx", (unsigned long)c));
	}
	json_object_set_new(h, "btf", btf);
	json_object_set_new(h, "nr_cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_set_new(h, "page_size", json_integer(sysconf(_SC_PAGESIZE)));
	return h;
}

static json_t *clock_json(void)
{
	struct timespec mono, real, mono2;
	char when[64];
	struct tm tm;

	/* the anchor: realtime read between two monotonic reads, paired with their midpoint */
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_MONOTONIC, &mono2);
	gmtime_r(&real.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	return json_pack("{s:s, s:{s:I, s:I, s:s+}}", "id", "CLOCK_MONOTONIC", "anchor",
			 "monotonic_ns",
			 (json_int_t)(((__u64)mono.tv_sec * 1000000000ull + mono.tv_nsec) / 2 +
				      ((__u64)mono2.tv_sec * 1000000000ull + mono2.tv_nsec) / 2),
			 "realtime_ns",
			 (json_int_t)((__u64)real.tv_sec * 1000000000ull + real.tv_nsec),
			 "realtime_utc", when, "Z");
}

static int is_little_endian(void)
{
	const __u16 one = 1;

	return *(const unsigned char *)&one;
}

static json_t *build_meta(const struct recording_writer_opts *o)
{
	json_t *m = json_object();

	json_object_set_new(m, "format",
			    json_pack("{s:s, s:i, s:i, s:i, s:i, s:s, s:s}", "name", "gmemtrace",
				      "version_major", RECORDING_VERSION_MAJOR, "version_minor",
				      RECORDING_VERSION_MINOR, "record_size",
				      (int)sizeof(struct gmem_event), "abi", GMEM_ABI_VERSION,
				      "byte_order", is_little_endian() ? "little" : "big",
				      "encoding", "columns-v1+deflate"));
	json_object_set_new(m, "clock", clock_json());
	if (!o->no_host)
		json_object_set_new(m, "host", host_json());
	json_object_set_new(m, "kinds", recording__kinds_json());
	if (o->meta)
		json_object_update(m, o->meta);
	return m;
}

int recording_writer__open(struct recording_writer **out, const char *path,
			   const struct recording_writer_opts *opts, char *err, size_t errlen)
{
	unsigned char hdr[FILE_HDR_LEN] = {};
	struct recording_writer *w;
	char *text = NULL;
	size_t len;
	int e, i;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->min_ts = ~0ull;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->opts = *opts;
	w->opts.meta = NULL;
	if (!w->opts.chunk_records || w->opts.chunk_records > RECORDING_MAX_CHUNK_RECORDS)
		w->opts.chunk_records = RECORDING_CHUNK_RECORDS;
	if (!w->opts.chunk_ns)
		w->opts.chunk_ns = RECORDING_CHUNK_NS;
	if (w->opts.level < 1 || w->opts.level > 9)
		w->opts.level = 6;
	w->path = strdup(path);
	w->cur.recs = malloc(w->opts.chunk_records * sizeof(struct gmem_event));
	if (!w->path || !w->cur.recs) {
		e = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto cleanup;
	}
	if (deflateInit(&w->zs, w->opts.level) != Z_OK) {
		e = -ENOMEM;
		snprintf(err, errlen, "cannot set up zlib");
		goto cleanup;
	}
	w->zinit = true;
	w->meta = build_meta(opts);
	text = json_dumps(w->meta, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text) {
		e = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto cleanup;
	}
	len = strlen(text);
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		e = -errno;
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(-e));
		goto cleanup;
	}
	memcpy(hdr, recording_magic, RECORDING_MAGIC_LEN);
	put16(hdr + 8, RECORDING_VERSION_MAJOR);
	put16(hdr + 10, RECORDING_VERSION_MINOR);
	hdr[12] = is_little_endian() ? 1 : 2;
	put32(hdr + 16, len);
	put32(hdr + 20, crc(text, len));
	put32(hdr + 24, 0);
	put32(hdr + 28, crc(hdr, 28));
	e = write_all(w->fd, hdr, sizeof(hdr));
	if (!e)
		e = write_all(w->fd, text, len);
	if (e) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-e));
		goto cleanup;
	}
	w->off = sizeof(hdr) + len;
	publish(w);
	w->last_sync_ns = mono_ns();
	if (w->opts.threaded) {
		for (i = 0; i < QDEPTH + 1; i++) {
			w->spare[i] = malloc(w->opts.chunk_records * sizeof(struct gmem_event));
			if (!w->spare[i]) {
				e = -ENOMEM;
				snprintf(err, errlen, "out of memory");
				goto cleanup;
			}
			w->nspare++;
		}
		e = -pthread_create(&w->worker, NULL, worker_main, w);
		if (e) {
			snprintf(err, errlen, "cannot start the writer thread: %s", strerror(-e));
			goto cleanup;
		}
		w->have_worker = true;
	}
	free(text);
	*out = w;
	return 0;
cleanup:
	free(text);
	recording_writer__abandon(w);
	return e;
}

static void writer_free(struct recording_writer *w)
{
	int i;

	if (w->have_worker) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->worker, NULL);
		w->have_worker = false;
	}
	if (w->fd >= 0)
		close(w->fd);
	if (w->zinit)
		deflateEnd(&w->zs);
	for (i = 0; i < w->nspare; i++)
		free(w->spare[i]);
	for (i = 0; i < w->qlen; i++)
		free(w->queue[(w->qhead + i) % QDEPTH].recs);
	free(w->cur.recs);
	free(w->enc);
	free(w->zout);
	free(w->index);
	free(w->path);
	json_decref(w->meta);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
}

void recording_writer__abandon(struct recording_writer *w)
{
	if (!w)
		return;
	if (w->have_worker) {
		/* what the worker has queued is not written: a crash would not write it either */
		pthread_mutex_lock(&w->mu);
		w->failed = w->failed ? w->failed : -ECANCELED;
		pthread_mutex_unlock(&w->mu);
	}
	writer_free(w);
}

static int write_trailer(struct recording_writer *w, json_t *end)
{
	json_t *idx = json_object(), *arr = json_array();
	unsigned char foot[FOOTER_LEN];
	__u64 index_off = w->off;
	unsigned char *frame;
	char *text;
	size_t i, len;
	int e;

	for (i = 0; i < w->nindex; i++)
		json_array_append_new(arr, json_pack("[I, I, I, I]",
						     (json_int_t)w->index[i].offset,
						     (json_int_t)w->index[i].records,
						     (json_int_t)w->index[i].min_ts,
						     (json_int_t)w->index[i].max_ts));
	json_object_set_new(idx, "chunks", arr);
	json_object_set_new(idx, "records", json_integer(w->written));
	if (end)
		json_object_set(idx, "end", end);
	text = json_dumps(idx, JSON_COMPACT);
	json_decref(idx);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	frame = malloc(CHUNK_HDR_LEN + len);
	if (!frame) {
		free(text);
		return -ENOMEM;
	}
	memcpy(frame + CHUNK_HDR_LEN, text, len);
	free(text);
	e = write_chunk(w, CHUNK_INDEX, ENC_RAW, 0, len, frame, len, 0, 0);
	free(frame);
	if (e)
		return e;
	put64(foot, index_off);
	put64(foot + 8, w->written);
	put32(foot + 16, FOOTER_MAGIC);
	put32(foot + 20, crc(foot, 20));
	e = write_all(w->fd, foot, sizeof(foot));
	if (e) {
		/* an index without its footer reads as damage: take both back */
		if (ftruncate(w->fd, index_off) == 0)
			w->off = index_off;
		return e;
	}
	w->off += sizeof(foot);
	return 0;
}

int recording_writer__close(struct recording_writer *w, json_t *end, char *err, size_t errlen)
{
	int e;

	if (!w)
		return 0;
	submit(w);
	drain(w);
	e = w->failed;
	if (!e) {
		e = write_trailer(w, end);
		if (e)
			writer_fail(w, e, "writing the trailer");
	}
	if (!e && fsync(w->fd))
		writer_fail(w, -errno, "fsync");
	e = w->failed;
	if (e)
		snprintf(err, errlen, "%s: %s", w->path, w->err);
	if (!e && close(w->fd)) {
		e = -errno;
		snprintf(err, errlen, "%s: close: %s", w->path, strerror(-e));
	}
	w->fd = e ? w->fd : -1;
	writer_free(w);
	return e;
}

/* ---- reader ------------------------------------------------------------------------------ */

struct index_seen {
	__u64 offset;
	__u32 records;
};

struct recording {
	int fd;
	const unsigned char *mem;
	__u64 size;
	json_t *meta;
	json_t *end;
	unsigned int major, minor;
	__u64 off;
	__u32 seq;
	__u64 records, chunks;
	struct gmem_event *recs;
	size_t cap_recs;
	unsigned char *cbuf, *rbuf;
	size_t cap_cbuf, cap_rbuf;
	z_stream zs;
	bool zinit;
	int status; /* 1 = more to read, 0 = clean end, < 0 = stopped at damage */
	bool complete;
	struct index_seen *seen;
	size_t nseen, cap_seen;
	char err[384];
	struct probe_table *probe;
	bool probe_tried;
	char **strs;
	size_t nstrs;
};

/* Reads up to len bytes at off; returns what it got (short at the end of the file). */
static __s64 read_at(struct recording *r, __u64 off, void *buf, size_t len)
{
	size_t got = 0;

	if (off >= r->size)
		return 0;
	if (len > r->size - off)
		len = r->size - off;
	if (r->mem) {
		memcpy(buf, r->mem + off, len);
		return len;
	}
	while (got < len) {
		ssize_t n = pread(r->fd, (char *)buf + got, len - got, off + got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += n;
	}
	return got;
}

static int parse_header(struct recording *r, char *err, size_t errlen)
{
	unsigned char hdr[FILE_HDR_LEN];
	json_error_t jerr;
	__u32 meta_len;
	char *text;
	__s64 n;

	if (r->size == 0) {
		snprintf(err, errlen, "empty file (not a gmemtrace recording)");
		return -EINVAL;
	}
	n = read_at(r, 0, hdr, sizeof(hdr));
	if (n < 0) {
		snprintf(err, errlen, "cannot read: %s", strerror((int)-n));
		return (int)n;
	}
	if (memcmp(hdr, recording_magic, n < RECORDING_MAGIC_LEN ? n : RECORDING_MAGIC_LEN)) {
		snprintf(err, errlen, "not a gmemtrace recording (bad magic)");
		return -EINVAL;
	}
	if (n < (__s64)sizeof(hdr)) {
		snprintf(err, errlen, "cut short in its header (%lld of %d bytes)", (long long)n,
			 FILE_HDR_LEN);
		return -EINVAL;
	}
	if (!crc_ok(get32(hdr + 28), hdr, 28)) {
		snprintf(err, errlen, "header checksum mismatch (the file is damaged)");
		return -EBADMSG;
	}
	r->major = get16(hdr + 8);
	r->minor = get16(hdr + 10);
	if (r->major != RECORDING_VERSION_MAJOR) {
		bool newer = r->major > RECORDING_VERSION_MAJOR;

		snprintf(err, errlen,
			 "recording format version %u.%u %s (this gmemtrace reads %u.x)%s",
			 r->major, r->minor,
			 newer ? "is newer than this reader" : "is not supported",
			 RECORDING_VERSION_MAJOR, newer ? ": upgrade gmemtrace" : "");
		return -EPROTONOSUPPORT;
	}
	meta_len = get32(hdr + 16);
	if (meta_len > RECORDING_MAX_META) {
		snprintf(err, errlen, "metadata length %u out of bounds", meta_len);
		return -EBADMSG;
	}
	if (meta_len > r->size - FILE_HDR_LEN) {
		snprintf(err, errlen, "cut short in its metadata (%u bytes declared, %llu present)",
			 meta_len, (unsigned long long)(r->size - FILE_HDR_LEN));
		return -EINVAL;
	}
	text = malloc(meta_len + 1);
	if (!text) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	n = read_at(r, FILE_HDR_LEN, text, meta_len);
	if (n != meta_len || !crc_ok(get32(hdr + 20), text, meta_len)) {
		free(text);
		snprintf(err, errlen, "metadata checksum mismatch (the file is damaged)");
		return -EBADMSG;
	}
	text[meta_len] = 0;
	r->meta = json_loadb(text, meta_len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!r->meta) {
		snprintf(err, errlen, "metadata is not valid JSON: %s", jerr.text);
		return -EBADMSG;
	}
	if (!json_is_object(r->meta)) {
		snprintf(err, errlen, "metadata is not a JSON object");
		return -EBADMSG;
	}
	r->off = FILE_HDR_LEN + meta_len;
	return 0;
}

static int reader_init(struct recording *r, char *err, size_t errlen)
{
	int e;

	r->status = 1;
	e = parse_header(r, err, errlen);
	if (e)
		return e;
	if (inflateInit(&r->zs) != Z_OK) {
		snprintf(err, errlen, "cannot set up zlib");
		return -ENOMEM;
	}
	r->zinit = true;
	return 0;
}

int recording__open(struct recording **out, const char *path, char *err, size_t errlen)
{
	struct recording *r;
	struct stat st;
	int e;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		e = -errno;
		snprintf(err, errlen, "cannot open: %s", strerror(-e));
		goto cleanup;
	}
	if (fstat(r->fd, &st)) {
		e = -errno;
		snprintf(err, errlen, "cannot stat: %s", strerror(-e));
		goto cleanup;
	}
	if (S_ISDIR(st.st_mode)) {
		e = -EISDIR;
		snprintf(err, errlen, "is a directory, not a recording");
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		e = -EINVAL;
		snprintf(err, errlen, "not a regular file");
		goto cleanup;
	}
	r->size = st.st_size;
	e = reader_init(r, err, errlen);
	if (e)
		goto cleanup;
	*out = r;
	return 0;
cleanup:
	recording__close(r);
	return e;
}

int recording__open_mem(struct recording **out, const void *data, size_t len, char *err,
			size_t errlen)
{
	struct recording *r;
	int e;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = -1;
	r->mem = data;
	r->size = len;
	e = reader_init(r, err, errlen);
	if (e) {
		recording__close(r);
		return e;
	}
	*out = r;
	return 0;
}

void recording__close(struct recording *r)
{
	size_t i;

	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	if (r->zinit)
		inflateEnd(&r->zs);
	json_decref(r->meta);
	json_decref(r->end);
	free(r->recs);
	free(r->cbuf);
	free(r->rbuf);
	free(r->seen);
	free(r->probe);
	for (i = 0; i < r->nstrs; i++)
		free(r->strs[i]);
	free(r->strs);
	free(r);
}

const json_t *recording__meta(const struct recording *r)
{
	return r->meta;
}

unsigned int recording__version_major(const struct recording *r)
{
	return r->major;
}

unsigned int recording__version_minor(const struct recording *r)
{
	return r->minor;
}

/* Stops reading at damage: the message says where, what, and what was read before it. */
static int stop(struct recording *r, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int stop(struct recording *r, int e, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(r->err, sizeof(r->err),
		 "chunk %u at offset %llu: %s; read %llu chunks (%llu events) before it", r->seq,
		 (unsigned long long)r->off, what, (unsigned long long)r->chunks,
		 (unsigned long long)r->records);
	r->status = e;
	return e;
}

static int read_payload(struct recording *r, __u32 len)
{
	__s64 n;

	if (len > r->cap_cbuf) {
		unsigned char *nb = realloc(r->cbuf, len);

		if (!nb)
			return stop(r, -ENOMEM, "out of memory for %u bytes", len);
		r->cbuf = nb;
		r->cap_cbuf = len;
	}
	n = read_at(r, r->off + CHUNK_HDR_LEN, r->cbuf, len);
	if (n < 0)
		return stop(r, (int)n, "read error: %s", strerror((int)-n));
	if (n != len)
		return stop(r, -EINVAL, "cut short (payload of %u bytes, %lld present)", len,
			    (long long)n);
	return 0;
}

static int data_chunk(struct recording *r, const unsigned char *hdr)
{
	__u32 nrec = get32(hdr + 12), raw = get32(hdr + 16), len = get32(hdr + 20);
	__u64 min_ts = get64(hdr + 24), max_ts = get64(hdr + 32), lo = ~0ull, hi = 0;
	size_t i;
	int e;

	if (get16(hdr + 6) != ENC_COLUMNS_V1)
		return stop(r, -EPROTONOSUPPORT, "unknown encoding %u", get16(hdr + 6));
	/* bounds before any allocation: deflate expands at most ~1032:1, a record is >= 13 bytes */
	if (!nrec || nrec > RECORDING_MAX_CHUNK_RECORDS || raw > MAX_PAYLOAD ||
	    raw < (__u64)nrec * NCOLS || (__u64)raw > (__u64)len * 1032 + 1024)
		return stop(r, -EBADMSG, "bad chunk header (records %u, sizes %u/%u)", nrec, raw,
			    len);
	e = read_payload(r, len);
	if (e)
		return e;
	if (!crc_ok(get32(hdr + 40), r->cbuf, len))
		return stop(r, -EBADMSG, "checksum mismatch");
	if (raw > r->cap_rbuf) {
		unsigned char *nb = realloc(r->rbuf, raw);

		if (!nb)
			return stop(r, -ENOMEM, "out of memory for %u bytes", raw);
		r->rbuf = nb;
		r->cap_rbuf = raw;
	}
	inflateReset(&r->zs);
	r->zs.next_in = r->cbuf;
	r->zs.avail_in = len;
	r->zs.next_out = r->rbuf;
	r->zs.avail_out = raw;
	if (inflate(&r->zs, Z_FINISH) != Z_STREAM_END || r->zs.total_out != raw ||
	    r->zs.avail_in)
		return stop(r, -EBADMSG, "bad compressed data");
	if (nrec > r->cap_recs) {
		struct gmem_event *nr = realloc(r->recs, (size_t)nrec * sizeof(*nr));

		if (!nr)
			return stop(r, -ENOMEM, "out of memory for %u records", nrec);
		r->recs = nr;
		r->cap_recs = nrec;
	}
	if (recording__decode(r->rbuf, raw, r->recs, nrec))
		return stop(r, -EBADMSG, "bad record encoding");
	for (i = 0; i < nrec; i++) {
		if (r->recs[i].ts_ns < lo)
			lo = r->recs[i].ts_ns;
		if (r->recs[i].ts_ns > hi)
			hi = r->recs[i].ts_ns;
	}
	if (lo != min_ts || hi != max_ts)
		return stop(r, -EBADMSG, "records disagree with the chunk header's time span");
	if (r->nseen == r->cap_seen) {
		size_t cap = r->cap_seen ? r->cap_seen * 2 : 64;
		struct index_seen *ns = realloc(r->seen, cap * sizeof(*ns));

		if (!ns)
			return stop(r, -ENOMEM, "out of memory");
		r->seen = ns;
		r->cap_seen = cap;
	}
	r->seen[r->nseen++] = (struct index_seen){ .offset = r->off, .records = nrec };
	return 0;
}

/* The trailer: the index must list exactly the chunks read, and the footer must close it. */
static int index_chunk(struct recording *r, const unsigned char *hdr)
{
	__u32 len = get32(hdr + 20);
	unsigned char foot[FOOTER_LEN];
	json_error_t jerr;
	json_t *idx, *chunks, *c;
	__u64 foot_off;
	size_t i;
	int e;

	if (get16(hdr + 6) != ENC_RAW || len > RECORDING_MAX_INDEX)
		return stop(r, -EBADMSG, "bad trailer header");
	e = read_payload(r, len);
	if (e)
		return e;
	if (!crc_ok(get32(hdr + 40), r->cbuf, len))
		return stop(r, -EBADMSG, "trailer checksum mismatch");
	foot_off = r->off + CHUNK_HDR_LEN + len;
	if (read_at(r, foot_off, foot, sizeof(foot)) != sizeof(foot))
		return stop(r, -EINVAL, "trailer cut short (no footer)");
	if (get32(foot + 16) != FOOTER_MAGIC || !crc_ok(get32(foot + 20), foot, 20))
		return stop(r, -EBADMSG, "bad footer");
	if (get64(foot) != r->off || get64(foot + 8) != r->records)
		return stop(r, -EBADMSG, "footer disagrees with the chunks read (%llu events)",
			    (unsigned long long)get64(foot + 8));
	if (foot_off + FOOTER_LEN != r->size)
		return stop(r, -EBADMSG, "%llu bytes after the footer",
			    (unsigned long long)(r->size - foot_off - FOOTER_LEN));
	idx = json_loadb((const char *)r->cbuf, len, 0, &jerr);
	chunks = json_object_get(idx, "chunks");
	if (!json_is_array(chunks) || json_array_size(chunks) != r->nseen ||
	    json_integer_value(json_object_get(idx, "records")) != (json_int_t)r->records) {
		json_decref(idx);
		return stop(r, -EBADMSG, "trailer index disagrees with the chunks read");
	}
	json_array_foreach(chunks, i, c) {
		if (json_integer_value(json_array_get(c, 0)) != (json_int_t)r->seen[i].offset ||
		    json_integer_value(json_array_get(c, 1)) != (json_int_t)r->seen[i].records) {
			json_decref(idx);
			return stop(r, -EBADMSG, "trailer index entry %zu disagrees with chunk", i);
		}
	}
	r->end = json_incref(json_object_get(idx, "end"));
	json_decref(idx);
	r->off = r->size;
	r->complete = true;
	r->status = 0;
	return 0;
}

int recording__next(struct recording *r, const struct gmem_event **recs, size_t *n)
{
	unsigned char hdr[CHUNK_HDR_LEN];
	__u16 type;
	__s64 got;
	int e;

	while (r->status > 0) {
		if (r->off == r->size)
			return stop(r, -ENODATA, "the file ends without a trailer (the recorder "
				    "was killed, crashed or ran out of disk)");
		got = read_at(r, r->off, hdr, sizeof(hdr));
		if (got < 0)
			return stop(r, (int)got, "read error: %s", strerror((int)-got));
		if (got < CHUNK_HDR_LEN)
			return stop(r, -EINVAL,
				    "cut short (chunk header of %d bytes, %lld present)",
				    CHUNK_HDR_LEN, (long long)got);
		if (get32(hdr) != CHUNK_MAGIC)
			return stop(r, -EBADMSG, "no chunk here (bad chunk magic)");
		if (!crc_ok(get32(hdr + 44), hdr, 44))
			return stop(r, -EBADMSG, "chunk header checksum mismatch");
		if (get32(hdr + 8) != r->seq)
			return stop(r, -EBADMSG, "chunk numbered %u out of sequence",
				    get32(hdr + 8));
		if (get32(hdr + 20) > r->size - r->off - CHUNK_HDR_LEN)
			return stop(r, -EINVAL, "cut short (payload of %u bytes, %llu present)",
				    get32(hdr + 20),
				    (unsigned long long)(r->size - r->off - CHUNK_HDR_LEN));
		type = get16(hdr + 4);
		if (type == CHUNK_INDEX)
			return index_chunk(r, hdr);
		if (type != CHUNK_DATA) {
			/* a newer minor's chunk type: its length is all this reader needs */
			r->off += CHUNK_HDR_LEN + get32(hdr + 20);
			r->seq++;
			continue;
		}
		e = data_chunk(r, hdr);
		if (e)
			return e;
		*recs = r->recs;
		*n = get32(hdr + 12);
		r->off += CHUNK_HDR_LEN + get32(hdr + 20);
		r->seq++;
		r->chunks++;
		r->records += *n;
		return 1;
	}
	return r->status;
}

const char *recording__error(const struct recording *r)
{
	return r->err;
}

bool recording__complete(const struct recording *r)
{
	return r->complete;
}

__u64 recording__records_read(const struct recording *r)
{
	return r->records;
}

__u64 recording__chunks_read(const struct recording *r)
{
	return r->chunks;
}

__u64 recording__offset(const struct recording *r)
{
	return r->off;
}

__u64 recording__size(const struct recording *r)
{
	return r->size;
}

const json_t *recording__end(const struct recording *r)
{
	return r->end;
}

/* ---- the stored probe table -------------------------------------------------------------- */

static const char *keep_str(struct recording *r, const char *s)
{
	char **ns, *d;

	if (!s)
		s = "";
	d = strdup(s);
	ns = realloc(r->strs, (r->nstrs + 1) * sizeof(*ns));
	if (!d || !ns) {
		free(d);
		if (ns)
			r->strs = ns;
		return "";
	}
	r->strs = ns;
	r->strs[r->nstrs++] = d;
	return d;
}

static enum probe_tier tier_of(const char *s)
{
	if (s && !strcmp(s, "tracepoint"))
		return TIER_TRACEPOINT;
	if (s && !strcmp(s, "fentry"))
		return TIER_FENTRY;
	return TIER_NONE;
}

static enum probe_state state_of(const char *s)
{
	if (s && !strcmp(s, "live"))
		return PROBE_LIVE;
	if (s && !strcmp(s, "failed"))
		return PROBE_FAILED;
	return PROBE_UNAVAILABLE;
}

/* The inverse of ctl__probe_json(), so a replay reports the coverage of the recorded run. */
const struct probe_table *recording__probe_table(struct recording *r)
{
	const json_t *p = json_object_get(r->meta, "probe"), *rows, *row;
	struct probe_table *t;
	size_t i;

	if (r->probe_tried)
		return r->probe;
	r->probe_tried = true;
	rows = json_object_get(p, "events");
	if (!json_is_object(p) || !json_is_array(rows))
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	snprintf(t->kernel, sizeof(t->kernel), "%s",
		 json_string_value(json_object_get(p, "kernel")) ?: "");
	t->fentry_permitted = json_is_true(json_object_get(p, "fentry_permitted"));
	snprintf(t->fentry_reason, sizeof(t->fentry_reason), "%s",
		 json_string_value(json_object_get(p, "fentry_reason")) ?: "");
	json_array_foreach(rows, i, row) {
		struct probe_row *pr;

		if (t->n == PROBE_MAX_EVENTS || !json_is_object(row))
			break;
		pr = &t->rows[t->n++];
		pr->event = keep_str(r, json_string_value(json_object_get(row, "event")));
		pr->what = keep_str(r, json_string_value(json_object_get(row, "what")));
		pr->tier = tier_of(json_string_value(json_object_get(row, "tier")));
		pr->state = state_of(json_string_value(json_object_get(row, "state")));
		snprintf(pr->reason, sizeof(pr->reason), "%s",
			 json_string_value(json_object_get(row, "reason")) ?: "");
		snprintf(pr->other_reason, sizeof(pr->other_reason), "%s",
			 json_string_value(json_object_get(row, "other")) ?: "");
		pr->other_tier = pr->tier == TIER_FENTRY ? TIER_TRACEPOINT : TIER_FENTRY;
	}
	r->probe = t;
	return t;
}
