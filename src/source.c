// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * source.c - ring buffer consumer, liveness scans, DirectMap sampling and drop accounting.
 *
 * Scans are what tell a release on the tracepoint tier: no tracepoint fires when the last
 * reference to a file goes. A scan is run when a VMM closes a gmem fd (after a short delay,
 * since the final fput runs as task work on return to user space), shortly after a VMM exits
 * (its files are put in exit_files(), after the exit tracepoint), and on a slow timer for
 * references dropped by munmap or by a process that received the fd. Before a scan the ring is
 * drained, so every create that happened before it is known and is not taken for a discovery.
 *
 * Scans also repair what a lost record would leave wrong for good. On a preemptible kernel the
 * kernel skips some runs of our programs (counted, see check_drops); a skipped release on the
 * fentry tier would leave a file open in the model forever, a skipped exit a VM that never
 * retires. Once any loss has been counted, scans therefore also tell releases on the fentry
 * tier, and a VMM whose process is gone (or a zombie) without its VM_EXIT gets one made here.
 * Both carry GMEM_EVF_LATE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "model.h"
#include "procscan.h"
#include "source.h"
#include "u64map.h"

#define NS_PER_MS 1000000ull
#define CLOSE_SCAN_DELAY_NS (30 * NS_PER_MS)
#define EXIT_SCAN_DELAY_NS (100 * NS_PER_MS)
#define EXIT_SCAN_AGAIN_NS (1000 * NS_PER_MS)
/* How often the probes' per-file page counters become records while the kernel counts. */
#define COUNT_FLUSH_NS (250 * NS_PER_MS)

/* A small open-addressing set of live inode numbers (0 is never an inode number). */
struct inoset {
	__u64 *slots;
	size_t cap; /* power of two */
	size_t n;
};

struct source {
	struct loader *loader;
	struct ring_buffer *rb;
	source_cb cb;
	void *ctx;
	struct source_opts opts;
	struct inoset known;
	struct inoset suspects; /* unknown files the last scan found: discovered if found again */
	struct inoset vmms;     /* VM pids a record proved to be VMMs, until their VM_EXIT */
	__u64 next_scan_ns;   /* periodic */
	__u64 urgent_scan_ns; /* earliest hinted scan, 0 = none */
	__u64 again_scan_ns;  /* a second look after a VM exit */
	__u64 next_dmap_ns;
	__u64 next_misses_ns; /* probe misses cost a syscall per program: read them at this pace */
	__u64 dmap[3];
	bool dmap_valid;
	bool releases_from_scan;
	__u64 dropped_seen;
	struct forget {
		__u64 ino, at;
	} *forget; /* released inodes to drop from ino_vm, in release order */
	size_t nforget, cap_forget;
	struct drop_seen *drops; /* per (process, kind), as the drops map said last */
	size_t ndrops, cap_drops;
	/* ino -> struct gmem_page_count: each file's kernel counters as the last flush saw them */
	struct u64map counted;
	bool counting;        /* the probes count page events instead of sending records */
	bool counted_ever;    /* they have, so flushes and forgets have work to do */
	__u64 counted_seen;   /* the probes' counted[] total at the last flush */
	__u64 next_flush_ns;
	struct source_stats st;
};

__u64 source__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static size_t ino_hash(__u64 ino, size_t cap)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static bool inoset_has(const struct inoset *s, __u64 ino)
{
	size_t i;

	if (!s->cap)
		return false;
	for (i = ino_hash(ino, s->cap);; i = (i + 1) & (s->cap - 1)) {
		if (s->slots[i] == ino)
			return true;
		if (!s->slots[i])
			return false;
	}
}

static int inoset_add(struct inoset *s, __u64 ino);

static int inoset_grow(struct inoset *s)
{
	struct inoset bigger = { .cap = s->cap ? s->cap * 2 : 256 };
	size_t i;

	bigger.slots = calloc(bigger.cap, sizeof(__u64));
	if (!bigger.slots)
		return -ENOMEM;
	for (i = 0; i < s->cap; i++)
		if (s->slots[i])
			inoset_add(&bigger, s->slots[i]);
	free(s->slots);
	*s = bigger;
	return 0;
}

static int inoset_add(struct inoset *s, __u64 ino)
{
	size_t i;

	if (!ino || inoset_has(s, ino))
		return 0;
	if ((s->n + 1) * 2 > s->cap && inoset_grow(s))
		return -ENOMEM;
	for (i = ino_hash(ino, s->cap); s->slots[i]; i = (i + 1) & (s->cap - 1))
		;
	s->slots[i] = ino;
	s->n++;
	return 0;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void inoset_del(struct inoset *s, __u64 ino)
{
	size_t i, j, k;

	if (!s->cap)
		return;
	for (i = ino_hash(ino, s->cap); s->slots[i] != ino; i = (i + 1) & (s->cap - 1))
		if (!s->slots[i])
			return;
	s->slots[i] = 0;
	s->n--;
	for (j = (i + 1) & (s->cap - 1); s->slots[j]; j = (j + 1) & (s->cap - 1)) {
		k = ino_hash(s->slots[j], s->cap);
		/* move slots[j] back to i if its home is not in (i, j] */
		if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
			s->slots[i] = s->slots[j];
			s->slots[j] = 0;
			i = j;
		}
	}
}

static void emit_synth(struct source *s, struct gmem_event *e)
{
	e->ts_ns = source__now_ns();
	e->flags |= GMEM_EVF_SYNTH;
	s->st.synthesized++;
	s->cb(s->ctx, e);
}

/* A record that proves its process is a VMM: a kind only a VMM's own KVM calls emit (the
 * model's rule), and for FILE_CREATE one that succeeded. A scan's discovery is noted in
 * source__scan. */
static bool proves_vmm(const struct gmem_event *e)
{
	if (e->kind == GMEM_EV_FILE_CREATE)
		return e->result >= 0;
	return model__kind_proves_vmm(e->kind);
}

static void schedule(__u64 *slot, __u64 when)
{
	if (!*slot || when < *slot)
		*slot = when;
}

/*
 * A released file's inode stays in the BPF ino -> vm map until its folios are surely freed
 * (eviction frees them right after the release, in the same task), then leaves it: the map
 * holds the live files, not every file since the start.
 */
#define FORGET_AFTER_NS (2000 * NS_PER_MS)

static void forget_later(struct source *s, __u64 ino)
{
	if (s->nforget == s->cap_forget) {
		size_t cap = s->cap_forget ? s->cap_forget * 2 : 256;
		struct forget *nf = realloc(s->forget, cap * sizeof(*nf));

		if (!nf)
			return; /* the LRU bound still holds */
		s->forget = nf;
		s->cap_forget = cap;
	}
	s->forget[s->nforget++] = (struct forget){ ino, source__now_ns() + FORGET_AFTER_NS };
}

/* ---- page events the kernel counted ----------------------------------------------------- */

static void emit_counted(struct source *s, __u64 ino, __u32 vm, __u32 kind, __u32 sub,
			 __u64 pages, __u64 events)
{
	struct gmem_event e = { .kind = kind, .ino = ino, .vm = vm, .sub = sub, .b = pages,
				.c = events, .flags = GMEM_EVF_COUNTED };

	s->st.counted_records++;
	s->st.counted_events += events;
	emit_synth(s, &e);
}

/*
 * What a file's counters gained since the last look, as records: one PAGE_ALLOC per source
 * that gained pages (the events on the first of them), then one PAGE_FREE. Allocs go first:
 * whatever order the events had, the file's population never dips below zero on the way. Read
 * between a program's two adds, pages can arrive one flush before their event: an event with
 * no new pages still gets a record (b 0), so the counts of events stay exact.
 */
static void counts_cb(void *ctx, __u64 ino, const struct gmem_page_count *now)
{
	struct source *s = ctx;
	struct gmem_page_count *was = u64map__get(&s->counted, ino), zero = {};
	__u64 events;
	bool sent = false;
	int k;

	if (!was) {
		was = calloc(1, sizeof(*was));
		if (!was || u64map__put(&s->counted, ino, was)) {
			free(was);
			return; /* read again, whole, at the next flush */
		}
	}
	/* fewer than before: the entry was made anew (forgotten, then counted again) */
	if (now->alloc_events < was->alloc_events || now->free_events < was->free_events)
		*was = zero;
	events = now->alloc_events - was->alloc_events;
	for (k = 0; k < GMEM_SRC_MAX; k++) {
		__u64 pages = now->alloc_pages[k] - was->alloc_pages[k];

		if (!pages)
			continue;
		emit_counted(s, ino, now->vm, GMEM_EV_PAGE_ALLOC, k, pages, sent ? 0 : events);
		sent = true;
	}
	if (!sent && events)
		emit_counted(s, ino, now->vm, GMEM_EV_PAGE_ALLOC, GMEM_SRC_OTHER, 0, events);
	if (now->free_pages != was->free_pages || now->free_events != was->free_events)
		emit_counted(s, ino, now->vm, GMEM_EV_PAGE_FREE, 0,
			     now->free_pages - was->free_pages,
			     now->free_events - was->free_events);
	*was = *now;
}

static __u64 counted_total(struct source *s)
{
	struct gmem_counters c;
	__u64 total = 0;
	int k;

	if (loader__read_counters(s->loader, &c))
		return s->counted_seen;
	for (k = 0; k < GMEM_EV_KIND_MAX; k++)
		total += c.counted[k];
	return total;
}

/* Every file's counters into records, if the probes counted anything since the last time. The
 * probes bump counted[] after a file's counters, so a total read first never runs ahead of the
 * map read after it: what it misses, the next flush sees. */
static void flush_counts(struct source *s)
{
	__u64 total;

	if (!s->counted_ever)
		return;
	s->next_flush_ns = source__now_ns() + COUNT_FLUSH_NS;
	total = counted_total(s);
	if (total == s->counted_seen)
		return;
	s->counted_seen = total;
	loader__read_page_counts(s->loader, counts_cb, s);
}

/* One file's counters into records: before its release is passed on, and before it leaves the
 * map. */
static void flush_file(struct source *s, __u64 ino)
{
	struct gmem_page_count now;

	if (s->counted_ever && !loader__read_page_count(s->loader, ino, &now))
		counts_cb(s, ino, &now);
}

static void forget_counts(struct source *s, __u64 ino)
{
	if (!s->counted_ever)
		return;
	flush_file(s, ino);
	loader__forget_page_count(s->loader, ino);
	free(u64map__del(&s->counted, ino));
	u64map__shrink(&s->counted);
}

int source__set_records(struct source *s, bool on)
{
	int e;

	if (on == !s->counting)
		return 0;
	e = loader__count_pages(s->loader, !on);
	if (e)
		return e;
	s->counting = !on;
	s->st.counting = !on;
	s->st.count_switches++;
	if (!on) {
		s->counted_ever = true;
		s->next_flush_ns = source__now_ns() + COUNT_FLUSH_NS;
		return 0;
	}
	/* records from here on: what was counted before goes out first, as records */
	ring_buffer__consume(s->rb);
	flush_counts(s);
	return 0;
}

static void forget_due(struct source *s, __u64 now)
{
	size_t i = 0, k;

	while (i < s->nforget && s->forget[i].at <= now) {
		/* a file with that number live again (a discovery, a new create) keeps its entry */
		if (!inoset_has(&s->known, s->forget[i].ino)) {
			loader__forget_ino(s->loader, s->forget[i].ino);
			forget_counts(s, s->forget[i].ino);
		}
		i++;
	}
	if (!i)
		return;
	for (k = i; k < s->nforget; k++)
		s->forget[k - i] = s->forget[k];
	s->nforget -= i;
}

/* Gone, or a zombie (its exit done, not yet reaped): /proc/PID/stat's state after "(comm)". */
static bool process_gone(__u32 pid)
{
	char path[32], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* VMMs whose exit never came: made here, flagged late (see the top of this file). A VM some
 * process still holds a file of (this scan's owners) is not gone, whatever its pid: the pid
 * is the thread that created the VM, which need not be the one that lives longest. */
static void exits_due(struct source *s, const struct inoset *owners)
{
	__u64 *gone;
	size_t i, n = 0;

	if (!s->vmms.n || !s->st.dropped)
		return;
	gone = calloc(s->vmms.n, sizeof(*gone));
	for (i = 0; gone && i < s->vmms.cap; i++)
		if (s->vmms.slots[i] && !inoset_has(owners, s->vmms.slots[i]) &&
		    process_gone((__u32)s->vmms.slots[i]))
			gone[n++] = s->vmms.slots[i];
	for (i = 0; i < n; i++) {
		struct gmem_event e = { .kind = GMEM_EV_VM_EXIT, .vm = (__u32)gone[i],
					.tid = (__u32)gone[i], .flags = GMEM_EVF_LATE };

		inoset_del(&s->vmms, gone[i]);
		emit_synth(s, &e);
	}
	free(gone);
}

static int handle_record(void *ctx, void *data, size_t size)
{
	struct source *s = ctx;
	struct gmem_event e;
	__u64 now;

	if (size < sizeof(e))
		return 0;
	memcpy(&e, data, sizeof(e));
	s->st.records++;
	if (e.vm && proves_vmm(&e))
		inoset_add(&s->vmms, e.vm);
	switch (e.kind) {
	case GMEM_EV_FILE_CREATE:
		if (e.result >= 0)
			inoset_add(&s->known, e.ino);
		break;
	case GMEM_EV_FILE_RELEASE:
		inoset_del(&s->known, e.ino);
		forget_later(s, e.ino);
		/* the file's counted events reach the model while it still has the file */
		flush_file(s, e.ino);
		break;
	case GMEM_EV_PAGE_FREE:
		/*
		 * While the kernel counts, a punch's frees still come as one record, and the
		 * pages it frees may be ones the kernel counted since the last flush: those
		 * allocations go to the model first, or the file's population would dip below
		 * zero on the way (clamped, and then wrong for good).
		 */
		if (s->counting)
			flush_file(s, e.ino);
		break;
	case GMEM_EV_FD_CLOSE:
		now = source__now_ns();
		schedule(&s->urgent_scan_ns, now + CLOSE_SCAN_DELAY_NS);
		break;
	case GMEM_EV_VM_EXIT:
		inoset_del(&s->vmms, e.vm);
		now = source__now_ns();
		schedule(&s->urgent_scan_ns, now + EXIT_SCAN_DELAY_NS);
		schedule(&s->again_scan_ns, now + EXIT_SCAN_AGAIN_NS);
		break;
	default:
		break;
	}
	s->cb(s->ctx, &e);
	return 0;
}

/* Turn the kernel's failed-reservation counters, and the runs of our programs the kernel
 * skipped, into LOST records, so a consumer (and a
 * recording) knows exactly how much it did not see. */
#define MISSES_INTERVAL_NS (100 * NS_PER_MS)

/* What the drops map said last, per (process, kind): LOST records carry the increase. */
struct drop_seen {
	__u32 tgid, kind;
	__u64 n;
};

struct drop_walk {
	struct source *s;
	__u64 named; /* drops this walk pinned on a process */
};

static void drop_cb(void *ctx, __u32 tgid, __u32 kind, __u64 n)
{
	struct drop_walk *w = ctx;
	struct source *s = w->s;
	struct drop_seen *d = NULL;
	size_t i;

	for (i = 0; i < s->ndrops; i++)
		if (s->drops[i].tgid == tgid && s->drops[i].kind == kind) {
			d = &s->drops[i];
			break;
		}
	if (!d) {
		if (s->ndrops == s->cap_drops) {
			size_t cap = s->cap_drops ? s->cap_drops * 2 : 64;
			struct drop_seen *nd = realloc(s->drops, cap * sizeof(*nd));

			if (!nd)
				return; /* the drop stays in the unnamed remainder */
			s->drops = nd;
			s->cap_drops = cap;
		}
		d = &s->drops[s->ndrops++];
		*d = (struct drop_seen){ .tgid = tgid, .kind = kind };
	}
	if (n > d->n) {
		struct gmem_event e = { .kind = GMEM_EV_LOST, .vm = tgid, .sub = kind,
					.a = n - d->n };

		w->named += e.a;
		d->n = n;
		/* a lost create or bind still proves a VMM (the model makes the VM known), so
		 * its exit, likely lost with it, is watched for too */
		if (tgid && proves_vmm(&(struct gmem_event){ .kind = kind }))
			inoset_add(&s->vmms, tgid);
		emit_synth(s, &e);
	}
}

static void check_drops(struct source *s, bool force)
{
	__u64 now = source__now_ns();
	struct gmem_counters c;
	struct gmem_event e = { .kind = GMEM_EV_LOST };
	struct drop_walk w = { .s = s };
	__u64 total = 0;
	int k;

	if (loader__read_counters(s->loader, &c))
		return;
	for (k = 0; k < GMEM_EV_KIND_MAX; k++)
		total += c.dropped[k];
	if (force || now >= s->next_misses_ns) {
		s->st.missed = loader__prog_misses(s->loader);
		s->next_misses_ns = now + MISSES_INTERVAL_NS;
	}
	total += s->st.missed;
	if (total <= s->dropped_seen)
		return;
	/*
	 * New drops: name the processes they happened in (one LOST record per process and kind),
	 * then the rest (kernel threads, probe misses, entries the LRU map let go) in one more.
	 * The map is read before the counters again, so it never holds more than they count.
	 */
	loader__read_drops(s->loader, drop_cb, &w);
	if (!loader__read_counters(s->loader, &c)) {
		total = s->st.missed;
		for (k = 0; k < GMEM_EV_KIND_MAX; k++)
			total += c.dropped[k];
	}
	s->st.dropped += total - s->dropped_seen;
	if (total - s->dropped_seen > w.named) {
		e.a = total - s->dropped_seen - w.named;
		emit_synth(s, &e);
	}
	s->dropped_seen = total;
}

int source__parse_slab_active(const char *text, const char *cache, __u64 *active)
{
	size_t len = strlen(cache);
	const char *p = text;
	unsigned long long n;

	for (; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, cache, len) && (p[len] == ' ' || p[len] == '\t') &&
		    sscanf(p + len, "%llu", &n) == 1) {
			*active = n;
			return 0;
		}
	return -ENOENT;
}

int source__parse_directmap(const char *text, __u64 bytes[3])
{
	static const char *const keys[3] = { "DirectMap4k:", "DirectMap2M:", "DirectMap1G:" };
	int i, found = 0;

	for (i = 0; i < 3; i++) {
		const char *p = strstr(text, keys[i]);
		unsigned long long kb;

		bytes[i] = 0;
		if (p && sscanf(p + strlen(keys[i]), "%llu", &kb) == 1) {
			bytes[i] = kb * 1024;
			found++;
		}
	}
	return found ? 0 : -ENOENT;
}

static void sample_dmap(struct source *s)
{
	struct gmem_event e = { .kind = GMEM_EV_DMAP_SAMPLE };
	char buf[8192];
	__u64 bytes[3];
	ssize_t n;
	int fd;

	fd = open(s->opts.meminfo ? s->opts.meminfo : "/proc/meminfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	if (source__parse_directmap(buf, bytes))
		return;
	/* only changes are records: a recording of a quiet host stays small */
	if (s->dmap_valid && !memcmp(bytes, s->dmap, sizeof(bytes)))
		return;
	memcpy(s->dmap, bytes, sizeof(bytes));
	s->dmap_valid = true;
	e.a = bytes[0];
	e.b = bytes[1];
	e.c = bytes[2];
	emit_synth(s, &e);
}

static int inoset_copy(struct inoset *dst, const struct inoset *src)
{
	*dst = *src;
	if (!src->cap)
		return 0;
	dst->slots = malloc(src->cap * sizeof(__u64));
	if (!dst->slots) {
		*dst = (struct inoset){};
		return -ENOMEM;
	}
	memcpy(dst->slots, src->slots, src->cap * sizeof(__u64));
	return 0;
}

static void walk(struct source *s, bool begin)
{
	void (*fn)(void *) = begin ? s->opts.walk_begin : s->opts.walk_end;

	if (fn)
		fn(s->opts.walk_ctx);
}

/*
 * The walk of every task's fd table takes milliseconds, and files come and go meanwhile. Two
 * rules keep that from inventing events:
 *  - Only a file known before the walk began can be found gone. One created during the walk
 *    may be missing from it (its task was walked already) although it is open; its CREATE
 *    record, read after the walk, makes it known, and the next scan checks it.
 *  - A file the walk finds but no record told us of is discovered at once only by the first
 *    scan (what was open before we watched). Later, such a file may simply be one whose
 *    create call has installed the fd but not yet returned, so its CREATE record is still to
 *    come: it is discovered when the next scan finds it again and still unknown (after a
 *    lost record, say).
 */
int source__scan(struct source *s)
{
	struct gmem_scan_rec *recs = NULL;
	struct inoset seen = {}, before = {}, suspects = {}, owners = {};
	__u64 t0 = source__now_ns();
	bool first = s->st.scans == 0;
	/* on the fentry tier, once a record was lost: see the top of this file */
	bool releases = s->releases_from_scan || s->st.dropped;
	size_t i, n = 0;
	int err;

	ring_buffer__consume(s->rb);
	if (releases && inoset_copy(&before, &s->known))
		return -ENOMEM;
	if (!s->st.scan_procfs) {
		walk(s, true);
		err = loader__scan(s->loader, &recs, &n);
		walk(s, false);
	} else {
		err = -EOPNOTSUPP;
	}
	if (err == -EOPNOTSUPP) {
		/* iterators refused by this kernel (or --scan procfs): the slower /proc walk */
		if (!s->st.scan_procfs || s->st.scans == 0)
			loader__use_procfs_scan(s->loader, s->opts.procfs_scan ?
								 "asked for (--scan procfs)" :
								 "BPF iterators unavailable");
		s->st.scan_procfs = true;
		walk(s, true);
		err = procscan__run(&recs, &n);
		walk(s, false);
	}
	if (err) {
		s->st.scan_errors++;
		free(before.slots);
		return err;
	}
	/* creates and releases that raced with the walk are in the ring now; what the kernel
	 * counted goes in before any release the scan tells */
	ring_buffer__consume(s->rb);
	flush_counts(s);
	for (i = 0; i < n; i++) {
		struct gmem_scan_rec *r = &recs[i];

		inoset_add(&seen, r->ino);
		inoset_add(&owners, r->vm);
		if (r->vm && r->holder) {
			loader__note_vmm(s->loader, r->holder, r->vm);
			inoset_add(&s->vmms, r->vm);
		}
		if (inoset_has(&s->known, r->ino))
			continue;
		if (!first && !inoset_has(&s->suspects, r->ino)) {
			inoset_add(&suspects, r->ino);
			continue;
		}
		inoset_add(&s->known, r->ino);
		struct gmem_event e = {
			.kind = GMEM_EV_FILE_DISCOVER,
			.ino = r->ino,
			.vm = r->vm,
			.tid = r->holder,
			.a = r->size,
			.b = r->nrpages,
			.c = r->flags,
			.flags = first ? 0 : GMEM_EVF_LATE,
		};
		emit_synth(s, &e);
	}
	free(s->suspects.slots);
	s->suspects = suspects;
	if (releases) {
		/* collect first: deleting while walking the table would skip entries */
		__u64 *gone = calloc(before.n + 1, sizeof(*gone));
		size_t ngone = 0;

		for (i = 0; gone && i < before.cap; i++) {
			__u64 ino = before.slots[i];

			if (ino && inoset_has(&s->known, ino) && !inoset_has(&seen, ino))
				gone[ngone++] = ino;
		}
		for (i = 0; i < ngone; i++) {
			struct gmem_event e = { .kind = GMEM_EV_FILE_RELEASE, .ino = gone[i],
						.flags = s->releases_from_scan ? 0 : GMEM_EVF_LATE };

			inoset_del(&s->known, gone[i]);
			forget_later(s, gone[i]);
			emit_synth(s, &e);
		}
		free(gone);
	}
	free(before.slots);
	free(seen.slots);
	free(recs);
	exits_due(s, &owners);
	free(owners.slots);
	loader__sweep_vmms(s->loader);
	s->st.scans++;
	s->st.scan_ns_last = source__now_ns() - t0;
	return 0;
}

int source__open(struct source **out, const struct source_opts *opts, source_cb cb, void *ctx,
		 char *err, size_t errlen)
{
	const struct probe_row *rel;
	struct source *s;
	int e;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	if (!s->opts.scan_interval_ns)
		s->opts.scan_interval_ns = 2000 * NS_PER_MS;
	if (!s->opts.dmap_interval_ns)
		s->opts.dmap_interval_ns = 1000 * NS_PER_MS;
	s->cb = cb;
	s->ctx = ctx;
	e = loader__open(&s->loader, &s->opts.loader, err, errlen);
	if (e)
		goto fail;
	s->rb = ring_buffer__new(loader__events_fd(s->loader), handle_record, s, NULL);
	if (!s->rb) {
		e = -errno;
		snprintf(err, errlen, "cannot set up the ring buffer: %s", strerror(-e));
		goto fail;
	}
	/* with fentry on kvm_gmem_release, releases are seen directly; scans only discover */
	rel = probe__row((struct probe_table *)loader__table(s->loader), "release");
	s->st.scan_procfs = s->opts.procfs_scan;
	/* fentry on kvm_gmem_release sees releases itself; otherwise scans tell them, through
	 * the iterators or, where those failed, through /proc */
	s->releases_from_scan = !rel || rel->tier != TIER_FENTRY || rel->state != PROBE_LIVE;

	sample_dmap(s);
	source__scan(s);
	s->next_scan_ns = source__now_ns() + s->opts.scan_interval_ns;
	s->next_dmap_ns = source__now_ns() + s->opts.dmap_interval_ns;
	*out = s;
	return 0;
fail:
	source__close(s);
	return e;
}

void source__close(struct source *s)
{
	if (!s)
		return;
	ring_buffer__free(s->rb);
	loader__close(s->loader);
	free(s->known.slots);
	free(s->suspects.slots);
	free(s->vmms.slots);
	free(s->drops);
	free(s->forget);
	for (size_t i = 0; i < s->counted.cap; i++)
		free(s->counted.slots[i].val);
	u64map__release(&s->counted);
	free(s);
}

int source__fd(const struct source *s)
{
	return ring_buffer__epoll_fd(s->rb);
}

static int ms_until(__u64 now, __u64 when)
{
	if (!when)
		return -1;
	return when <= now ? 0 : (int)((when - now + NS_PER_MS - 1) / NS_PER_MS);
}

int source__drain(struct source *s)
{
	int n = ring_buffer__consume(s->rb);

	flush_counts(s);
	check_drops(s, true);
	return n;
}

int source__poll(struct source *s, int timeout_ms)
{
	__u64 now = source__now_ns();
	int n, wait = timeout_ms, t;

	/* never sleep past a due timer */
	t = ms_until(now, s->next_scan_ns);
	if (t >= 0 && (wait < 0 || t < wait))
		wait = t;
	t = ms_until(now, s->urgent_scan_ns);
	if (t >= 0 && (wait < 0 || t < wait))
		wait = t;
	t = ms_until(now, s->again_scan_ns);
	if (t >= 0 && (wait < 0 || t < wait))
		wait = t;
	t = ms_until(now, s->next_dmap_ns);
	if (t >= 0 && (wait < 0 || t < wait))
		wait = t;
	t = s->counted_ever ? ms_until(now, s->next_flush_ns) : -1;
	if (t >= 0 && (wait < 0 || t < wait))
		wait = t;

	n = ring_buffer__poll(s->rb, wait);
	if (n < 0 && n != -EINTR)
		return n;
	/*
	 * The probes wake us only every Nth record, so a quiet host can leave records in the
	 * ring with no wakeup to come: always take what is there, not only after a wakeup.
	 */
	n = ring_buffer__consume(s->rb);
	if (n < 0)
		return n;
	check_drops(s, false);

	now = source__now_ns();
	if (s->counted_ever && now >= s->next_flush_ns)
		flush_counts(s);
	forget_due(s, now);
	if (now >= s->next_dmap_ns) {
		sample_dmap(s);
		s->next_dmap_ns = now + s->opts.dmap_interval_ns;
	}
	if ((s->urgent_scan_ns && now >= s->urgent_scan_ns) ||
	    (s->again_scan_ns && now >= s->again_scan_ns) || now >= s->next_scan_ns) {
		if (s->urgent_scan_ns && now >= s->urgent_scan_ns)
			s->urgent_scan_ns = 0;
		if (s->again_scan_ns && now >= s->again_scan_ns)
			s->again_scan_ns = 0;
		source__scan(s);
		s->next_scan_ns = source__now_ns() + s->opts.scan_interval_ns;
	}
	return n < 0 ? 0 : n;
}

int source__map_entries(const struct source *s, const char *name)
{
	return loader__map_entries(s->loader, name);
}

int source__kernel_counters(const struct source *s, struct gmem_counters *c)
{
	return loader__read_counters(s->loader, c);
}

const struct probe_table *source__table(const struct source *s)
{
	return loader__table(s->loader);
}

void source__stats(const struct source *s, struct source_stats *st)
{
	*st = s->st;
}
