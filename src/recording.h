/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * recording.h - gmemtrace's file format: a self-describing, versioned, chunked and checksummed
 * store of struct gmem_event records (docs/recording-format.md).
 *
 * A file is a fixed header, a JSON metadata block (host, kernel, clock anchor, probe coverage,
 * the dictionary of record kinds, how it was recorded), data chunks, and a trailer (an index
 * chunk and a fixed footer). Each chunk holds up to a few ten thousand records, column by
 * column and delta-encoded, deflated, with a CRC32 over the stored bytes and another over its
 * header. Chunks are written whole with one write(), so a file cut short at any byte (SIGKILL,
 * a full disk, a power cut after the last fdatasync) reads up to its last complete chunk.
 *
 * The writer may hand chunks to a worker thread that encodes, deflates and writes them, so the
 * thread that drains the ring buffer only copies 64 bytes per record. The reader never trusts
 * a length before its checksum has been verified, and never allocates more than a chunk's
 * declared (and bounded) size: it is fuzzed (tests/fuzz/fuzz_recording.c).
 */
#ifndef GMEM_RECORDING_H
#define GMEM_RECORDING_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <jansson.h>

#include "gmem_events.h"
#include "probe.h"

#define RECORDING_VERSION_MAJOR 1 /* a reader refuses a newer major */
#define RECORDING_VERSION_MINOR 0 /* a reader reads any minor of its major */
#define RECORDING_MAGIC_LEN 8
extern const unsigned char recording_magic[RECORDING_MAGIC_LEN];

/* Defaults and bounds (the reader enforces the bounds on what it reads). */
#define RECORDING_CHUNK_RECORDS     65536     /* records per chunk, writer default */
#define RECORDING_CHUNK_NS          1000000000ull /* a chunk is written at least this often */
#define RECORDING_MAX_CHUNK_RECORDS (1u << 20)
#define RECORDING_MAX_META          (16u << 20) /* metadata JSON */
#define RECORDING_MAX_INDEX         (64u << 20) /* trailer index JSON */

/* ---- writing ----------------------------------------------------------------------------- */

struct recording_writer;

struct recording_writer_opts {
	/*
	 * Members to add to the metadata (borrowed): what recorded it, the probe table, a --vm
	 * filter, a scenario's description... The writer adds format, clock, host and kind
	 * dictionary itself; a member given here wins over the writer's own of the same name.
	 */
	json_t *meta;
	__u32 chunk_records; /* 0 = RECORDING_CHUNK_RECORDS */
	__u64 chunk_ns;      /* 0 = RECORDING_CHUNK_NS; see recording_writer__flush_due() */
	int level;           /* zlib level 1..9; 0 = 6 */
	bool threaded;       /* encode, deflate and write on a worker thread */
	bool sync;           /* fdatasync() after each chunk (at most once per chunk_ns) */
	bool no_host;        /* leave out host identity (constructed recordings, tests) */
};

struct recording_writer_stats {
	__u64 records;     /* accepted by recording_writer__add() */
	__u64 written;     /* in chunks on disk */
	__u64 chunks;
	__u64 bytes;       /* file size so far */
	__u64 raw_bytes;   /* records * 64: what the chunks hold uncompressed */
	__u64 min_ts_ns, max_ts_ns;
};

/* Creates (truncates) path and writes the header and metadata. err: one line. */
int recording_writer__open(struct recording_writer **out, const char *path,
			   const struct recording_writer_opts *opts, char *err, size_t errlen);
/* Buffers one record; a full chunk goes to disk (or to the worker). 0 or -errno. */
int recording_writer__add(struct recording_writer *w, const struct gmem_event *e);
/* Writes what is buffered as a chunk now (no-op when empty) and waits until every chunk handed
 * over so far is on disk. */
int recording_writer__flush(struct recording_writer *w);
/* Hands the buffer over when its oldest record was added chunk_ns or more before now_ns
 * (CLOCK_MONOTONIC), without waiting for the write; call it from the loop that adds, at least
 * every chunk_ns / 2. */
int recording_writer__flush_due(struct recording_writer *w, __u64 now_ns);
/*
 * Flushes, writes the trailer (index + footer, with end: merged into the index JSON as
 * "end", borrowed, may be NULL), fsyncs and closes; frees w. 0 or -errno; err set on error.
 */
int recording_writer__close(struct recording_writer *w, json_t *end, char *err, size_t errlen);
/* Closes without a trailer and without flushing what is buffered: what a crash leaves. */
void recording_writer__abandon(struct recording_writer *w);
void recording_writer__stats(const struct recording_writer *w, struct recording_writer_stats *st);
/* The first error the writer met (a failed write: ENOSPC...), "" when none. */
const char *recording_writer__error(const struct recording_writer *w);
const char *recording_writer__path(const struct recording_writer *w);

/* ---- reading ----------------------------------------------------------------------------- */

struct recording;

int recording__open(struct recording **out, const char *path, char *err, size_t errlen);
/* The same reader over a buffer (borrowed; it must outlive r): for the fuzzer and tests. */
int recording__open_mem(struct recording **out, const void *data, size_t len, char *err,
			size_t errlen);
void recording__close(struct recording *r);

/* The metadata block (owned by r). */
const json_t *recording__meta(const struct recording *r);
unsigned int recording__version_major(const struct recording *r);
unsigned int recording__version_minor(const struct recording *r);

/*
 * The records of the next data chunk, decoded into a buffer owned by r (valid until the next
 * call). Returns 1 with recs and n set, 0 at the clean end (trailer verified), or -errno when
 * the file ends early or is damaged: recording__error() then says where and what, and what was
 * read before it.
 */
int recording__next(struct recording *r, const struct gmem_event **recs, size_t *n);

/* After recording__next() returned 0 or < 0: */
const char *recording__error(const struct recording *r); /* one line, "" when none */
bool recording__complete(const struct recording *r);     /* trailer found and verified */
__u64 recording__records_read(const struct recording *r);
__u64 recording__chunks_read(const struct recording *r);
__u64 recording__offset(const struct recording *r);  /* bytes consumed so far */
__u64 recording__size(const struct recording *r);    /* file size */
/* The trailer's "end" member (NULL unless complete and the writer gave one). */
const json_t *recording__end(const struct recording *r);

/* The probe table stored in the metadata (NULL when absent or malformed); owned by r. */
const struct probe_table *recording__probe_table(struct recording *r);

/* ---- shared helpers ---------------------------------------------------------------------- */

/* The dictionary of record kinds the writer stores: [{kind, name, size, fields}, ...]. */
json_t *recording__kinds_json(void);
/* What each field means for a kind (from gmem_events.h), "" for an unknown kind. */
const char *recording__kind_fields(unsigned int kind);

/* Encoding of one chunk's records (exposed for unit tests and the benchmark). */
size_t recording__encode_bound(size_t n);
size_t recording__encode(const struct gmem_event *recs, size_t n, unsigned char *out);
int recording__decode(const unsigned char *in, size_t len, struct gmem_event *recs, size_t n);

#endif /* GMEM_RECORDING_H */
