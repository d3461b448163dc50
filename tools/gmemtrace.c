// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * gmemtrace - record gmemscope's event stream to a file, and report, replay, export and
 * print recordings (docs/recording-format.md).
 *
 * Verbs in a command table, as bpftool does. Every verb that reads a recording goes through
 * src/recording.c's reader and, where it counts, through the one model gmemd uses, so a
 * report or a replay of a recording gives the numbers gmemd gave live. A recording that ends
 * early or is damaged is read up to its last good chunk: what was read is used, the error is
 * one line on stderr, and the exit status is 1.
 */
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "ctl.h"
#include "export.h"
#include "histo.h"
#include "kvmstats.h"
#include "loader.h"
#include "model.h"
#include "policy.h"
#include "probe.h"
#include "recording.h"
#include "scenario.h"
#include "server.h"
#include "source.h"
#include "strbuf.h"
#include "whatif.h"

#define GMEMTRACE_VERSION GMEMSCOPE_VERSION
#define DEFAULT_OUTPUT "gmemtrace.gmtr"
#define REPLAY_LISTEN "127.0.0.1:9478"
#define REPLAY_SOCKET "/run/gmemscope/replay.sock"
#define NS_PER_SEC 1000000000ull

const char *argp_program_bug_address = "<https://github.com/gmemscope/gmemscope/issues>";

/* ---- small helpers ----------------------------------------------------------------------- */

/* "64M", "1G", "4096": bytes. */
static int parse_size(const char *arg, unsigned long long *out)
{
	unsigned long long v, mul = 1;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || arg[0] == '-')
		return -1;
	if (*end == 'K' || *end == 'k')
		mul = 1ull << 10;
	else if (*end == 'M' || *end == 'm')
		mul = 1ull << 20;
	else if (*end == 'G' || *end == 'g')
		mul = 1ull << 30;
	else if (*end)
		return -1;
	if (*end && end[1])
		return -1;
	if (!v || v > ULLONG_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static __u64 now_ns(void)
{
	return source__now_ns();
}

static __u64 wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* 1258291 -> "1.2 MiB": memory is counted in powers of two. */
static const char *human_bytes(double v, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
	return buf;
}

/* ns -> "1.53 us" */
static const char *human_ns(double ns, char *buf, size_t len)
{
	if (ns < 1000)
		snprintf(buf, len, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.2f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.2f ms", ns / 1e6);
	else
		snprintf(buf, len, "%.3f s", ns / 1e9);
	return buf;
}

/* The signals a long-running verb stops on, as a pollable fd; blocked in every thread. */
static int signals_fd(void)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int read_signal(int fd)
{
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) == sizeof(si))
		return si.ssi_signo;
	return 0;
}

/* Opens a recording or says in one line why not. */
static struct recording *open_recording(const char *path)
{
	struct recording *r = NULL;
	char err[512] = "";

	if (recording__open(&r, path, err, sizeof(err))) {
		fprintf(stderr, "gmemtrace: %s: %s\n", path, err);
		return NULL;
	}
	return r;
}

/* After the last recording__next(): 0 for a complete file, 1 (and the one-line error) if it
 * ended early or was damaged. */
static int read_status(const char *path, struct recording *r, int status)
{
	if (status >= 0)
		return 0;
	fprintf(stderr, "gmemtrace: %s: %s\n", path, recording__error(r));
	return 1;
}

static json_t *argv_json(int argc, char **argv)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < argc; i++)
		json_array_append_new(a, json_string(argv[i]));
	return a;
}

/* A set of u64 keys (inode numbers), open addressing; 0 is never a member. */
struct u64set {
	__u64 *slots;
	size_t cap, n;
};

static size_t u64set_home(const struct u64set *s, __u64 k)
{
	return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20) & (s->cap - 1);
}

static bool u64set_has(const struct u64set *s, __u64 k)
{
	size_t i;

	if (!s->cap || !k)
		return false;
	for (i = u64set_home(s, k); s->slots[i]; i = (i + 1) & (s->cap - 1))
		if (s->slots[i] == k)
			return true;
	return false;
}

static void u64set_add(struct u64set *s, __u64 k);

static void u64set_grow(struct u64set *s)
{
	struct u64set b = { .cap = s->cap ? s->cap * 2 : 64 };
	size_t i;

	b.slots = calloc(b.cap, sizeof(__u64));
	if (!b.slots)
		return;
	for (i = 0; i < s->cap; i++)
		if (s->slots[i])
			u64set_add(&b, s->slots[i]);
	free(s->slots);
	*s = b;
}

static void u64set_add(struct u64set *s, __u64 k)
{
	size_t i;

	if (!k || u64set_has(s, k))
		return;
	if ((s->n + 1) * 2 > s->cap)
		u64set_grow(s);
	if ((s->n + 1) * 2 > s->cap)
		return;
	for (i = u64set_home(s, k); s->slots[i]; i = (i + 1) & (s->cap - 1))
		;
	s->slots[i] = k;
	s->n++;
}

/* Rebuilds without k: deletions are rare (one per released file). */
static void u64set_del(struct u64set *s, __u64 k)
{
	struct u64set b = { .cap = s->cap };
	size_t i;

	if (!u64set_has(s, k))
		return;
	b.slots = calloc(b.cap, sizeof(__u64));
	if (!b.slots)
		return;
	for (i = 0; i < s->cap; i++)
		if (s->slots[i] && s->slots[i] != k)
			u64set_add(&b, s->slots[i]);
	free(s->slots);
	*s = b;
}

/* ---- record ------------------------------------------------------------------------------ */

#define MAX_VMS 64

static struct record_env {
	const char *output;
	double duration;
	__u32 vms[MAX_VMS];
	int nvms;
	const char *socket;
	bool socket_given;
	bool in_process;
	unsigned long long rotate_size;
	double rotate_time;
	unsigned long long max_files;
	unsigned long long chunk_records;
	unsigned long long level;
	bool no_sync;
	unsigned long long ring_mb;
	bool no_fentry;
	double scan_interval;
	bool quiet;
	bool verbose;
	bool force;
	const char *kvm_stats;
} rec_env;

enum {
	OPT_VM = 1000,
	OPT_IN_PROCESS,
	OPT_ROTATE_SIZE,
	OPT_ROTATE_TIME,
	OPT_MAX_FILES,
	OPT_CHUNK,
	OPT_LEVEL,
	OPT_NO_SYNC,
	OPT_RING,
	OPT_NO_FENTRY,
	OPT_SCAN,
	OPT_SPEED,
	OPT_MAX,
	OPT_EXIT_AT_END,
	OPT_RETIRE,
	OPT_NO_HTTP,
	OPT_COUNTER,
	OPT_KIND,
	OPT_VCPUS,
	OPT_EVENTS,
	OPT_LIST,
	OPT_MAXFILESERIES,
	OPT_FORCE,
	OPT_REC_KVM_STATS,
};

static const char record_doc[] =
	"gmemtrace record: record the event stream to a file.\n"
	"\n"
	"Subscribes to gmemd's control socket when gmemd runs (the records gmemd's model "
	"applies, with a snapshot of the files live at that moment), else loads the probes "
	"in-process (root, or CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN). Writes a self-describing "
	"recording in checksummed, compressed chunks at least once a "
	"second, so a recorder killed or a full disk leaves a file readable up to its last "
	"chunk. SIGINT, SIGTERM and --duration end the file cleanly; SIGHUP rotates when "
	"rotating, else ends it. A line of progress shows on a terminal.\n"
	"\n"
	"USAGE: gmemtrace record [-o FILE] [--duration S] [--vm PID ...]\n"
	"                        [--rotate-size N | --rotate-time S] [--max-files K]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace record -o vm.gmtr                  # until Ctrl-C\n"
	"  gmemtrace record --duration 10 --vm 4242     # one VM, ten seconds\n"
	"  gmemtrace record --in-process -o x.gmtr      # without gmemd\n"
	"  gmemtrace record --rotate-size 64M --max-files 4 -o ring.gmtr\n"
	"\v"
	"The last example writes ring.gmtr.0, ring.gmtr.1, ... and keeps the newest 4.\n"
	"\n"
	"An existing FILE is not overwritten: it is renamed FILE.old first (replacing an older "
	"FILE.old), as perf record does; --force overwrites it. With rotation an existing "
	"FILE.0 is refused unless --force. A directory or other non-file is always refused.\n"
	"\n"
	"With rotation the files are FILE.0, FILE.1, ...; each is complete on its own and "
	"starts with the files live at the cut (FILE_DISCOVER records).";

static const struct argp_option record_opts[] = {
	{ "output", 'o', "FILE", 0, "Write here (default " DEFAULT_OUTPUT "); an existing FILE "
	  "is kept as FILE.old", 0 },
	{ "force", 'f', NULL, 0, "Overwrite an existing FILE (FILE.0 with rotation)", 0 },
	{ "duration", 'd', "SECONDS", 0, "Stop after this long", 0 },
	{ "vm", OPT_VM, "PID[,PID...]", 0,
	  "Only these VMs (repeatable); the host-wide records stay in", 0 },
	{ "socket", 's', "PATH", 0, "Read this control socket (" CTL_DEFAULT_SOCKET " by default)", 0 },
	{ "in-process", OPT_IN_PROCESS, NULL, 0, "Load the probes here even if gmemd runs", 0 },
	{ "rotate-size", OPT_ROTATE_SIZE, "BYTES", 0, "Start a new file past this size (K/M/G)",
	  1 },
	{ "rotate-time", OPT_ROTATE_TIME, "SECONDS", 0, "Start a new file this often", 1 },
	{ "max-files", OPT_MAX_FILES, "K", 0, "When rotating, keep the newest K files", 1 },
	{ "chunk-records", OPT_CHUNK, "N", 0, "Records per chunk (default 65536)", 2 },
	{ "level", OPT_LEVEL, "1-9", 0, "zlib level (default 6)", 2 },
	{ "no-sync", OPT_NO_SYNC, NULL, 0, "Do not fdatasync once a second", 2 },
	{ "ring-size", OPT_RING, "MIB", 0, "In-process: ring buffer size (default 16)", 3 },
	{ "no-fentry", OPT_NO_FENTRY, NULL, 0, "In-process: do not try the fentry tier", 3 },
	{ "scan-interval", OPT_SCAN, "SECONDS", 0, "In-process: liveness scan period (default 2)",
	  3 },
	{ "kvm-stats", OPT_REC_KVM_STATS, "SET", 0, "In-process: the KVM binary stats to record "
	  "once a second (default, all, none or NAME,... as for gmemd --kvm-stats); through "
	  "gmemd, gmemd's --kvm-stats decides", 3 },
	{ "quiet", 'q', NULL, 0, "No start and summary lines", 4 },
	{ "verbose", 'v', NULL, 0, "Show libbpf's log (in-process)", 4 },
	{},
};

static error_t record_parse(int key, char *arg, struct argp_state *state)
{
	unsigned long long v;
	char *tok, *save = NULL, *copy;

	switch (key) {
	case 'o':
		rec_env.output = arg;
		break;
	case 'f':
		rec_env.force = true;
		break;
	case 'd':
		if (cli__parse_double(arg, 0.001, 1e7, &rec_env.duration))
			argp_error(state, "--duration: '%s' is not seconds > 0", arg);
		break;
	case OPT_VM:
		copy = strdup(arg);
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (cli__parse_ulong(tok, 1, UINT32_MAX, &v) || rec_env.nvms == MAX_VMS)
				argp_error(state, "--vm: '%s' is not a pid (at most %d)", tok,
					   MAX_VMS);
			rec_env.vms[rec_env.nvms++] = v;
		}
		free(copy);
		break;
	case 's':
		rec_env.socket = arg;
		rec_env.socket_given = true;
		break;
	case OPT_IN_PROCESS:
		rec_env.in_process = true;
		break;
	case OPT_ROTATE_SIZE:
		if (parse_size(arg, &rec_env.rotate_size) || rec_env.rotate_size < 4096)
			argp_error(state, "--rotate-size: '%s' is not a size of 4K or more", arg);
		break;
	case OPT_ROTATE_TIME:
		if (cli__parse_double(arg, 0.1, 1e7, &rec_env.rotate_time))
			argp_error(state, "--rotate-time: '%s' is not seconds >= 0.1", arg);
		break;
	case OPT_MAX_FILES:
		if (cli__parse_ulong(arg, 1, 1000000, &rec_env.max_files))
			argp_error(state, "--max-files: '%s' is not a count >= 1", arg);
		break;
	case OPT_CHUNK:
		if (cli__parse_ulong(arg, 1, RECORDING_MAX_CHUNK_RECORDS, &rec_env.chunk_records))
			argp_error(state, "--chunk-records: '%s' is not in [1, %u]", arg,
				   RECORDING_MAX_CHUNK_RECORDS);
		break;
	case OPT_LEVEL:
		if (cli__parse_ulong(arg, 1, 9, &rec_env.level))
			argp_error(state, "--level: '%s' is not in [1, 9]", arg);
		break;
	case OPT_NO_SYNC:
		rec_env.no_sync = true;
		break;
	case OPT_RING:
		if (cli__parse_ulong(arg, 1, 1024, &rec_env.ring_mb) ||
		    (rec_env.ring_mb & (rec_env.ring_mb - 1)))
			argp_error(state, "--ring-size: '%s' is not a power of two from 1 to 1024",
				   arg);
		break;
	case OPT_NO_FENTRY:
		rec_env.no_fentry = true;
		break;
	case OPT_SCAN:
		if (cli__parse_double(arg, 0.05, 3600, &rec_env.scan_interval))
			argp_error(state, "--scan-interval: '%s' is not seconds in [0.05, 3600]",
				   arg);
		break;
	case 'q':
		rec_env.quiet = true;
		break;
	case 'v':
		rec_env.verbose = true;
		break;
	case OPT_REC_KVM_STATS: {
		struct kvmstats *k;
		char why[256];

		if (kvmstats__new(&k, arg, why, sizeof(why)))
			argp_error(state, "%s", why);
		kvmstats__free(k);
		rec_env.kvm_stats = arg;
		break;
	}
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	case ARGP_KEY_END:
		if (rec_env.kvm_stats && !rec_env.in_process)
			argp_error(state, "--kvm-stats needs --in-process (through gmemd, "
				   "gmemd's --kvm-stats decides)");
		if (rec_env.rotate_size && rec_env.rotate_time)
			argp_error(state, "--rotate-size and --rotate-time: choose one");
		if (rec_env.max_files && !rec_env.rotate_size && !rec_env.rotate_time)
			argp_error(state, "--max-files needs --rotate-size or --rotate-time");
		if (rec_env.in_process && rec_env.socket_given)
			argp_error(state, "--in-process and --socket: choose one");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

struct recorder {
	struct recording_writer *w;
	char path[PATH_MAX];
	unsigned long seq;          /* rotation: the number of the current file */
	__u64 file_start_ns;
	json_t *meta_base;          /* what every file of this recording says (borrowed parts) */
	struct model *carry;        /* rotating: what is live, for the next file's preamble */
	struct gmem_event *pending; /* records that came before the first file was open */
	size_t npending, cap_pending;
	struct u64set inos;         /* --vm: files of the chosen VMs */
	bool filter;
	__u64 events, dropped, filtered, total_events;
	__u64 preamble;             /* records this file opened with (carried over) */
	struct gmem_event *descs;   /* the latest KVM_STAT_DESC of each id and part, carried over */
	size_t ndescs;
	__u32 *kpids;               /* in-process: the VMs whose KVM stats to read */
	size_t nkpids, cap_kpids;
	int err;
	char errmsg[512];
};

static bool vm_in(const __u32 *vms, int n, __u32 vm)
{
	int i;

	for (i = 0; i < n; i++)
		if (vms[i] == vm)
			return true;
	return false;
}

/*
 * Keeps the records of the chosen VMs, the records that name one of their files (frees and
 * releases often cannot name the VM), and host-wide samples and drop reports. inos learns the
 * chosen VMs' files as they are created or discovered.
 */
static bool vm_filter_keep(struct u64set *inos, const __u32 *vms, int n,
			   const struct gmem_event *e)
{
	bool keep;

	if (e->vm && vm_in(vms, n, e->vm)) {
		keep = true;
		if ((e->kind == GMEM_EV_FILE_CREATE && e->result >= 0) ||
		    e->kind == GMEM_EV_FILE_DISCOVER)
			u64set_add(inos, e->ino);
	} else if (e->ino && u64set_has(inos, e->ino)) {
		keep = !e->vm; /* a file of ours under another VM: the number was reused */
	} else {
		keep = !e->vm && (e->kind == GMEM_EV_LOST || e->kind == GMEM_EV_DMAP_SAMPLE ||
				  e->kind == GMEM_EV_KVM_STAT_DESC);
	}
	if (keep && e->kind == GMEM_EV_FILE_RELEASE)
		u64set_del(inos, e->ino);
	return keep;
}

static bool rotating(void)
{
	return rec_env.rotate_size || rec_env.rotate_time;
}

/* A rotated file names the KVM stat ids it may see before the next tick names them again. */
static void rec_keep_desc(struct recorder *r, const struct gmem_event *e)
{
	struct gmem_event *nd;
	size_t i;

	for (i = 0; i < r->ndescs; i++)
		if (r->descs[i].sub == e->sub && r->descs[i].to_order == e->to_order) {
			r->descs[i] = *e;
			return;
		}
	nd = realloc(r->descs, (r->ndescs + 1) * sizeof(*nd));
	if (!nd)
		return;
	r->descs = nd;
	r->descs[r->ndescs++] = *e;
}

/* In-process: the VMs as their records show them, from their first file to their exit. */
static void rec_track_vm(struct recorder *r, const struct gmem_event *e)
{
	size_t i;

	if (!e->vm || (e->kind != GMEM_EV_FILE_CREATE && e->kind != GMEM_EV_FILE_DISCOVER &&
		       e->kind != GMEM_EV_BIND && e->kind != GMEM_EV_VM_EXIT))
		return;
	for (i = 0; i < r->nkpids && r->kpids[i] != e->vm; i++)
		;
	if (e->kind == GMEM_EV_VM_EXIT) {
		if (i < r->nkpids)
			r->kpids[i] = r->kpids[--r->nkpids];
		return;
	}
	if (i < r->nkpids)
		return;
	if (r->nkpids == r->cap_kpids) {
		size_t cap = r->cap_kpids ? r->cap_kpids * 2 : 16;
		__u32 *np = realloc(r->kpids, cap * sizeof(*np));

		if (!np)
			return;
		r->kpids = np;
		r->cap_kpids = cap;
	}
	r->kpids[r->nkpids++] = e->vm;
}

static void rec_add(struct recorder *r, const struct gmem_event *e)
{
	int err;

	if (e->kind == GMEM_EV_LOST)
		r->dropped += e->a;
	if (r->filter && !vm_filter_keep(&r->inos, rec_env.vms, rec_env.nvms, e)) {
		r->filtered++;
		return;
	}
	if (e->kind == GMEM_EV_KVM_STAT_DESC && rotating())
		rec_keep_desc(r, e);
	rec_track_vm(r, e);
	if (r->carry)
		model__apply(r->carry, e);
	if (!r->w) {
		if (r->npending == r->cap_pending) {
			size_t cap = r->cap_pending ? r->cap_pending * 2 : 1024;
			struct gmem_event *np = realloc(r->pending, cap * sizeof(*np));

			if (!np) {
				r->err = -ENOMEM;
				return;
			}
			r->pending = np;
			r->cap_pending = cap;
		}
		r->pending[r->npending++] = *e;
		return;
	}
	err = recording_writer__add(r->w, e);
	if (err && !r->err) {
		r->err = err;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s: %s", r->path,
			 recording_writer__error(r->w));
	}
	r->events++;
	r->total_events++;
}

static void rec_source_cb(void *ctx, const struct gmem_event *e)
{
	rec_add(ctx, e);
}

static void file_path(char *buf, size_t len, unsigned long seq)
{
	if (rotating())
		snprintf(buf, len, "%s.%lu", rec_env.output, seq);
	else
		snprintf(buf, len, "%s", rec_env.output);
}

/*
 * Never lose an earlier recording to a new one: the first output file, if it exists, becomes
 * FILE.old (or, rotating, is refused), unless --force. 0, or -errno with the reason printed.
 */
static int keep_previous(void)
{
	char path[PATH_MAX], old[PATH_MAX + 8];
	struct stat st;

	file_path(path, sizeof(path), 0);
	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		fprintf(stderr, "gmemtrace: -o %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "gmemtrace: -o %s is %s, not a file; refusing to write there\n",
			path, ctl__file_kind(&st));
		return -EEXIST;
	}
	if (rec_env.force)
		return 0;
	if (rotating()) {
		fprintf(stderr, "gmemtrace: %s exists (an earlier rotated recording); --force "
			"overwrites it, or pick another -o\n", path);
		return -EEXIST;
	}
	snprintf(old, sizeof(old), "%s.old", path);
	if (rename(path, old)) {
		fprintf(stderr, "gmemtrace: cannot keep the existing %s as %s: %s (--force "
			"overwrites it)\n", path, old, strerror(errno));
		return -errno;
	}
	if (!rec_env.quiet)
		fprintf(stderr, "gmemtrace: kept the existing %s as %s\n", path, old);
	return 0;
}

static int carry_cb(const struct model_file *f, void *ctx)
{
	struct recorder *r = ctx;
	struct gmem_event e = {
		.ts_ns = now_ns(),
		.kind = GMEM_EV_FILE_DISCOVER,
		.ino = f->ino,
		.vm = f->vm,
		.a = f->size_bytes,
		.b = f->populated_pages,
		.c = f->flags,
		.flags = GMEM_EVF_SYNTH,
	};

	rec_add(r, &e);
	return 0;
}

/* Opens file number seq with the preamble records given (or, rotating, what is live). */
static int rec_open_file(struct recorder *r, const char *previous, json_t *preamble_note)
{
	struct recording_writer_opts wo = {
		.chunk_records = rec_env.chunk_records,
		.level = rec_env.level,
		.threaded = true,
		.sync = !rec_env.no_sync,
	};
	json_t *meta = json_deep_copy(r->meta_base), *rec = json_object_get(meta, "recording");
	const struct model_totals *t;
	char err[512] = "";
	size_t i;
	int e;

	file_path(r->path, sizeof(r->path), r->seq);
	if (rotating()) {
		json_object_set_new(rec, "sequence", json_integer(r->seq));
		if (previous)
			json_object_set_new(rec, "previous", json_string(previous));
	}
	if (preamble_note)
		json_object_set(meta, "preamble", preamble_note);
	wo.meta = meta;
	e = recording_writer__open(&r->w, r->path, &wo, err, sizeof(err));
	json_decref(meta);
	if (e) {
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", err);
		return e;
	}
	r->file_start_ns = now_ns();
	r->events = 0;
	r->preamble = 0;
	if (previous && r->carry) {
		/* the next file stands alone: the files live now, and the host's direct map */
		model__for_each_file(r->carry, NULL, carry_cb, r);
		t = model__totals(r->carry);
		if (t->host_direct_map_bytes[0] || t->host_direct_map_bytes[1] ||
		    t->host_direct_map_bytes[2]) {
			struct gmem_event d = { .ts_ns = now_ns(), .kind = GMEM_EV_DMAP_SAMPLE,
						.a = t->host_direct_map_bytes[0],
						.b = t->host_direct_map_bytes[1],
						.c = t->host_direct_map_bytes[2],
						.flags = GMEM_EVF_SYNTH };
			/* not through rec_add: the carry model has it already */
			recording_writer__add(r->w, &d);
			r->events++;
		}
		for (i = 0; i < r->ndescs; i++) {
			struct gmem_event d = r->descs[i];

			d.ts_ns = now_ns();
			recording_writer__add(r->w, &d);
			r->events++;
		}
		r->preamble = r->events;
	}
	return 0;
}

static json_t *rec_end_json(struct recorder *r, const char *reason, const char *next)
{
	json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I}", "reason", reason, "records",
			      (json_int_t)r->events, "dropped_total", (json_int_t)r->dropped,
			      "filtered_total", (json_int_t)r->filtered, "wall_ns",
			      (json_int_t)wall_ns());

	if (next)
		json_object_set_new(o, "next", json_string(next));
	return o;
}

static int rec_close_file(struct recorder *r, const char *reason, const char *next)
{
	json_t *end = rec_end_json(r, reason, next);
	char err[512] = "";
	int e;

	e = recording_writer__close(r->w, end, err, sizeof(err));
	r->w = NULL;
	json_decref(end);
	if (e && !r->err) {
		r->err = e;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", err);
	}
	return e;
}

static int rec_rotate(struct recorder *r)
{
	char prev[PATH_MAX], next[PATH_MAX], old[PATH_MAX];
	json_t *note;
	int e;

	snprintf(prev, sizeof(prev), "%s", r->path);
	file_path(next, sizeof(next), r->seq + 1);
	e = rec_close_file(r, "rotated", next);
	if (e)
		return e;
	r->seq++;
	note = json_pack("{s:s, s:I}", "what",
			 "FILE_DISCOVER records for the files live when the previous file was cut, "
			 "the host's last DirectMap sample and the last KVM_STAT_DESC of each "
			 "KVM stat id",
			 "files", (json_int_t)model__nr_files(r->carry));
	e = rec_open_file(r, prev, note);
	json_decref(note);
	if (e)
		return e;
	if (rec_env.max_files && r->seq >= rec_env.max_files) {
		file_path(old, sizeof(old), r->seq - rec_env.max_files);
		unlink(old);
	}
	return 0;
}

/* gmemd's control socket, read in big buffers: lines during the handshake, then records. */
struct conn {
	int fd;
	char *buf;
	size_t len, cap;
};

static int conn_fill(struct conn *c, int timeout_ms)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	ssize_t n;

	if (c->cap - c->len < 65536) {
		size_t cap = c->cap ? c->cap * 2 : 1 << 20;
		char *nb = realloc(c->buf, cap);

		if (!nb)
			return -ENOMEM;
		c->buf = nb;
		c->cap = cap;
	}
	if (timeout_ms >= 0 && poll(&p, 1, timeout_ms) == 0)
		return -ETIMEDOUT;
	n = read(c->fd, c->buf + c->len, c->cap - c->len);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -errno;
	c->len += n;
	return n;
}

static int conn_line(struct conn *c, json_t **out)
{
	json_error_t jerr;
	char *nl;
	int n;

	while (!(nl = memchr(c->buf ? c->buf : "", '\n', c->len))) {
		if (c->len > (256u << 20))
			return -E2BIG;
		n = conn_fill(c, 10000);
		if (n <= 0)
			return n ? n : -ECONNRESET;
	}
	*out = json_loadb(c->buf, nl - c->buf, 0, &jerr);
	c->len -= nl + 1 - c->buf;
	memmove(c->buf, nl + 1, c->len);
	return *out ? 0 : -EPROTO;
}

static int conn_call(struct conn *c, const char *cmd, json_t **resp)
{
	json_t *req = json_pack("{s:s}", "cmd", cmd);
	char *text = json_dumps(req, JSON_COMPACT);
	int e;

	json_decref(req);
	if (!text)
		return -ENOMEM;
	e = ctl__write_all(c->fd, text, strlen(text));
	if (!e)
		e = ctl__write_all(c->fd, "\n", 1);
	free(text);
	if (!e)
		e = conn_line(c, resp);
	if (!e && !json_is_true(json_object_get(*resp, "ok"))) {
		json_decref(*resp);
		*resp = NULL;
		return -EPROTO;
	}
	return e;
}

/*
 * The files live at the moment of subscribing and the host's DirectMap mix, as records, so the
 * recording replays to the same gauges as gmemd: taken from a snapshot sent in the same write
 * as the subscribe, which gmemd answers under one hold of its lock, with no record between.
 */
static void gmemd_preamble(struct recorder *r, const json_t *snap)
{
	const json_t *model = json_object_get(snap, "model"), *vms, *vm, *files, *f, *hb;
	__u64 ts = json_integer_value(json_object_get(snap, "ts_ns"));
	size_t i, j;

	hb = json_object_get(json_object_get(model, "direct_map"), "host_bytes");
	if (json_integer_value(json_object_get(hb, "4k")) ||
	    json_integer_value(json_object_get(hb, "2M")) ||
	    json_integer_value(json_object_get(hb, "1G"))) {
		struct gmem_event d = { .ts_ns = ts, .kind = GMEM_EV_DMAP_SAMPLE,
					.a = json_integer_value(json_object_get(hb, "4k")),
					.b = json_integer_value(json_object_get(hb, "2M")),
					.c = json_integer_value(json_object_get(hb, "1G")),
					.flags = GMEM_EVF_SYNTH };

		rec_add(r, &d);
	}
	vms = json_object_get(model, "vms");
	json_array_foreach(vms, i, vm) {
		files = json_object_get(vm, "file_list");
		json_array_foreach(files, j, f) {
			struct gmem_event e = {
				.ts_ns = ts,
				.kind = GMEM_EV_FILE_DISCOVER,
				.ino = json_integer_value(json_object_get(f, "ino")),
				.vm = json_integer_value(json_object_get(f, "vm")),
				.a = json_integer_value(json_object_get(f, "size_bytes")),
				.b = json_integer_value(json_object_get(f, "populated_pages")),
				.c = json_integer_value(json_object_get(f, "flags")),
				.flags = GMEM_EVF_SYNTH,
			};

			rec_add(r, &e);
		}
	}
}

static int gmemd_handshake(struct recorder *r, struct conn *c, json_t *meta)
{
	json_t *hello = NULL, *probe = NULL, *snap = NULL, *sub = NULL, *req1, *req2, *src;
	char *t1 = NULL, *t2 = NULL;
	struct strbuf both = STRBUF_INIT;
	size_t before;
	int e;

	e = conn_call(c, "hello", &hello);
	if (e)
		goto cleanup;
	if (json_integer_value(json_object_get(hello, "proto")) != CTL_PROTO_VERSION ||
	    json_integer_value(json_object_get(hello, "record_size")) !=
		    (json_int_t)sizeof(struct gmem_event)) {
		e = -EPROTONOSUPPORT;
		goto cleanup;
	}
	if (json_integer_value(json_object_get(hello, "abi")) > GMEM_ABI_VERSION)
		fprintf(stderr, "gmemtrace: gmemd's ABI %lld is newer than ours (%d): kinds this "
			"build does not know are recorded as they come\n",
			json_integer_value(json_object_get(hello, "abi")), GMEM_ABI_VERSION);
	e = conn_call(c, "probe", &probe);
	if (e)
		goto cleanup;
	req1 = json_pack("{s:s}", "cmd", "snapshot");
	req2 = json_pack("{s:s}", "cmd", "subscribe");
	t1 = json_dumps(req1, JSON_COMPACT);
	t2 = json_dumps(req2, JSON_COMPACT);
	json_decref(req1);
	json_decref(req2);
	strbuf__printf(&both, "%s\n%s\n", t1 ? t1 : "", t2 ? t2 : "");
	e = both.err ? both.err : ctl__write_all(c->fd, strbuf__str(&both), both.len);
	if (e)
		goto cleanup;
	e = conn_line(c, &snap);
	if (!e && !json_is_true(json_object_get(snap, "ok")))
		e = -EPROTO;
	if (!e)
		e = conn_line(c, &sub);
	if (!e && !json_is_true(json_object_get(sub, "ok")))
		e = -EPROTO;
	if (e)
		goto cleanup;
	json_object_set(meta, "probe", json_object_get(probe, "probe"));
	src = json_pack("{s:s, s:s, s:O, s:I, s:O}", "kind", "gmemd", "socket", rec_env.socket,
			"server", json_object_get(hello, "server"), "abi",
			json_integer_value(json_object_get(hello, "abi")), "daemon",
			json_object_get(snap, "daemon"));
	/* what gmemd had counted before this recording began: a live /metrics minus these is
	 * what a replay of this recording shows */
	json_object_set_new(src, "at_subscribe",
			    json_pack("{s:O, s:O, s:O}", "ts_ns", json_object_get(snap, "ts_ns"),
				      "totals",
				      json_object_get(json_object_get(snap, "model"), "totals"),
				      "direct_map",
				      json_object_get(json_object_get(snap, "model"),
						      "direct_map")));
	json_object_set_new(meta, "source", src);
	before = r->npending;
	gmemd_preamble(r, snap);
	json_object_set_new(meta, "preamble",
			    json_pack("{s:s, s:I}", "what",
				      "FILE_DISCOVER records for the files live at subscribe "
				      "and the host's DirectMap mix, from gmemd's snapshot",
				      "records", (json_int_t)(r->npending - before)));
cleanup:
	free(t1);
	free(t2);
	strbuf__release(&both);
	json_decref(hello);
	json_decref(probe);
	json_decref(snap);
	json_decref(sub);
	return e;
}

static void progress(struct recorder *r, __u64 start, bool final)
{
	struct recording_writer_stats st = {};
	char b1[32];

	if (r->w)
		recording_writer__stats(r->w, &st);
	fprintf(stderr, "\r\033[Kgmemtrace: %llu events, %s in %s, %.1f B/event, %llu dropped, "
		"%.1f s%s", (unsigned long long)r->total_events,
		human_bytes(st.bytes, b1, sizeof(b1)), r->path,
		st.written ? (double)st.bytes / st.written : 0.0,
		(unsigned long long)r->dropped, (now_ns() - start) / 1e9, final ? "\n" : "");
}

static int do_record(int argc, char **argv)
{
	static const struct argp argp = { record_opts, record_parse, NULL, record_doc, cli__std_children, NULL, NULL };
	struct recording_writer_stats st = {};
	struct source_opts so = {};
	struct source *src = NULL;
	struct recorder r = {};
	struct conn c = { .fd = -1 };
	struct kvmstats *kvm = NULL;
	__u64 next_kvm = 0;
	const char *reason = "stopped";
	json_t *meta = NULL, *recj, *filter = NULL;
	__u64 start, last_progress = 0, end_at = 0;
	bool tty = isatty(STDERR_FILENO), gmemd = false;
	char err[512] = "";
	int e, sig_fd = -1, ret = 1, i;
	size_t k;

	rec_env = (struct record_env){ .output = DEFAULT_OUTPUT, .socket = CTL_DEFAULT_SOCKET,
				       .ring_mb = 16, .scan_interval = 2.0 };
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	sig_fd = signals_fd();
	r.filter = rec_env.nvms > 0;
	if (rotating()) {
		struct model_opts mo = { .retire_after_ns = ~0ull };

		r.carry = model__new(&mo);
		if (!r.carry) {
			fprintf(stderr, "gmemtrace: out of memory\n");
			goto cleanup;
		}
	}
	meta = json_object();
	if (r.filter) {
		filter = json_array();
		for (i = 0; i < rec_env.nvms; i++)
			json_array_append_new(filter, json_integer(rec_env.vms[i]));
	}
	recj = json_pack("{s:s, s:o, s:o, s:I}", "tool", "gmemtrace " GMEMTRACE_VERSION, "argv",
			 argv_json(argc, argv), "vm_filter", filter ? filter : json_null(),
			 "started_wall_ns", (json_int_t)wall_ns());
	if (rotating())
		json_object_set_new(recj, "rotation",
				    json_pack("{s:I, s:f, s:I, s:s}", "rotate_size",
					      (json_int_t)rec_env.rotate_size, "rotate_time_s",
					      rec_env.rotate_time, "max_files",
					      (json_int_t)rec_env.max_files, "naming",
					      "FILE.N, N from 0"));
	json_object_set_new(meta, "recording", recj);

	if (!rec_env.in_process) {
		c.fd = ctl__connect(rec_env.socket);
		if (c.fd >= 0) {
			gmemd = true;
		} else if (rec_env.socket_given ||
			   (c.fd != -ENOENT && c.fd != -ECONNREFUSED)) {
			/* a gmemd we may not talk to is not a reason to load probes beside it */
			char why[400];

			ctl__why(rec_env.socket, c.fd, why, sizeof(why));
			fprintf(stderr, "gmemtrace: %s (--in-process records without gmemd)\n",
				why);
			goto cleanup;
		}
	}
	if (gmemd) {
		e = gmemd_handshake(&r, &c, meta);
		if (e) {
			fprintf(stderr, "gmemtrace: %s: the control protocol handshake failed: "
				"%s\n", rec_env.socket, strerror(-e));
			goto cleanup;
		}
	} else {
		e = loader__check_privileges(err, sizeof(err));
		if (e) {
			fprintf(stderr, "gmemtrace: %s\n", err);
			goto cleanup;
		}
		so.loader.verbose = rec_env.verbose;
		so.loader.no_fentry = rec_env.no_fentry;
		so.loader.ring_bytes = rec_env.ring_mb << 20;
		so.scan_interval_ns = (__u64)(rec_env.scan_interval * 1e9);
		/* records come during the open (the first scan): held until the file exists */
		e = source__open(&src, &so, rec_source_cb, &r, err, sizeof(err));
		if (e) {
			fprintf(stderr, "gmemtrace: %s\n", err);
			goto cleanup;
		}
		json_object_set_new(meta, "probe", ctl__probe_json(source__table(src)));
		json_object_set_new(meta, "source",
				    json_pack("{s:s, s:I, s:f, s:s}", "kind", "in-process",
					      "ring_bytes", (json_int_t)(rec_env.ring_mb << 20),
					      "scan_interval_s", rec_env.scan_interval, "kvm_stats",
					      rec_env.kvm_stats ? rec_env.kvm_stats : "default"));
		/* KVM's stats as gmemd would send them: read once a second, the same records */
		if (kvmstats__new(&kvm, rec_env.kvm_stats, err, sizeof(err))) {
			fprintf(stderr, "gmemtrace: %s\n", err);
			goto cleanup;
		}
	}
	r.meta_base = meta;
	if (keep_previous())
		goto cleanup;
	if (rec_open_file(&r, NULL, NULL)) {
		fprintf(stderr, "gmemtrace: %s\n", r.errmsg);
		goto cleanup;
	}
	for (k = 0; k < r.npending; k++) {
		struct gmem_event pe = r.pending[k];

		/* already filtered and applied to the carry model: straight to the file */
		e = recording_writer__add(r.w, &pe);
		r.events++;
		r.total_events++;
		if (e && !r.err)
			r.err = e;
	}
	free(r.pending);
	r.pending = NULL;
	r.npending = 0;
	start = now_ns();
	if (rec_env.duration > 0)
		end_at = start + (__u64)(rec_env.duration * 1e9);
	if (!rec_env.quiet)
		fprintf(stderr, "gmemtrace: recording to %s from %s%s\n", r.path,
			gmemd ? "gmemd at " : "probes loaded in-process",
			gmemd ? rec_env.socket : "");

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = sig_fd, .events = POLLIN },
			{ .fd = gmemd ? c.fd : source__fd(src), .events = POLLIN },
		};
		struct recording_writer_stats ws;
		__u64 now;
		int timeout = 200, n = 0, sig;

		if (gmemd && c.len >= sizeof(struct gmem_event))
			timeout = 0;
		if (poll(pfd, 2, timeout) < 0 && errno != EINTR) {
			snprintf(r.errmsg, sizeof(r.errmsg), "poll: %s", strerror(errno));
			r.err = -errno;
			break;
		}
		if (pfd[0].revents & POLLIN) {
			sig = read_signal(sig_fd);
			if (sig == SIGHUP && rotating()) {
				if (rec_rotate(&r))
					break;
			} else if (sig) {
				reason = sig == SIGINT	? "SIGINT" :
					 sig == SIGTERM ? "SIGTERM" :
							  "SIGHUP";
				break;
			}
		}
		if (gmemd) {
			size_t off;

			if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
				n = conn_fill(&c, 0);
				if (n == 0 || (n < 0 && n != -ETIMEDOUT)) {
					reason = "gmemd closed the connection";
					if (!rec_env.quiet)
						fprintf(stderr, "%sgmemtrace: gmemd went away; "
							"ending the recording\n", tty ? "\n" : "");
					n = -1;
				}
			}
			for (off = 0; off + sizeof(struct gmem_event) <= c.len;
			     off += sizeof(struct gmem_event)) {
				struct gmem_event ev;

				memcpy(&ev, c.buf + off, sizeof(ev));
				rec_add(&r, &ev);
			}
			c.len -= off;
			memmove(c.buf, c.buf + off, c.len);
			if (n < 0)
				break;
		} else {
			/* the probes batch their wakeups: drain the ring whatever woke us */
			n = source__poll(src, 0);
			if (n >= 0)
				n = source__drain(src);
			if (n < 0) {
				snprintf(r.errmsg, sizeof(r.errmsg), "reading events: %s",
					 strerror(-n));
				r.err = n;
				break;
			}
			if (kvmstats__enabled(kvm) && now_ns() >= next_kvm) {
				kvmstats__update(kvm, r.kpids, r.nkpids);
				kvmstats__emit(kvm, now_ns(), rec_source_cb, &r);
				next_kvm = now_ns() + 1000000000ull;
			}
		}
		if (r.err)
			break;
		now = now_ns();
		recording_writer__flush_due(r.w, now);
		/* a file holds at least one record of its own: a header bigger than --rotate-size
		 * must not rotate empty files forever */
		if (rotating() && r.events > r.preamble) {
			recording_writer__stats(r.w, &ws);
			if ((rec_env.rotate_size && ws.bytes >= rec_env.rotate_size) ||
			    (rec_env.rotate_time &&
			     now - r.file_start_ns >= (__u64)(rec_env.rotate_time * 1e9))) {
				if (rec_rotate(&r))
					break;
			}
		}
		if (end_at && now >= end_at) {
			reason = "duration";
			break;
		}
		if (tty && !rec_env.quiet && now - last_progress >= 500000000ull) {
			progress(&r, start, false);
			last_progress = now;
		}
	}
	if (src && !r.err)
		source__drain(src); /* what is in the ring now belongs in this file */
	if (r.w) {
		recording_writer__flush(r.w);
		recording_writer__stats(r.w, &st);
		if (tty && !rec_env.quiet)
			progress(&r, start, true);
		rec_close_file(&r, r.err ? "error" : reason, NULL);
		if (!r.err && !rec_env.quiet)
			fprintf(stderr, "gmemtrace: %s: %llu events (%llu dropped), %llu bytes, "
				"%.2f bytes/event, %llu chunks; ended: %s\n", r.path,
				(unsigned long long)st.written, (unsigned long long)r.dropped,
				(unsigned long long)st.bytes,
				st.written ? (double)st.bytes / st.written : 0.0,
				(unsigned long long)st.chunks, reason);
	}
	if (r.err) {
		fprintf(stderr, "gmemtrace: %s", r.errmsg[0] ? r.errmsg : strerror(-r.err));
		if (st.chunks)
			fprintf(stderr, "; %s holds %llu whole chunks (%llu events), readable",
				r.path, (unsigned long long)st.chunks,
				(unsigned long long)st.written);
		fputc('\n', stderr);
		goto cleanup;
	}
	ret = 0;
cleanup:
	source__close(src);
	if (c.fd >= 0)
		close(c.fd);
	free(c.buf);
	free(r.pending);
	free(r.inos.slots);
	free(r.descs);
	free(r.kpids);
	kvmstats__free(kvm);
	model__free(r.carry);
	json_decref(meta);
	if (sig_fd >= 0)
		close(sig_fd);
	return ret;
}

/* ---- reading a whole recording through a model -------------------------------------------- */

/* A file as the model last saw it, kept when its release drops it from the model. */
struct gone_file {
	struct model_file f;
	__u64 released_ts;
};

struct readout {
	__u64 records;
	__u64 first_ts, last_ts;
	__u64 scenario, synth;
	bool any;
	int status;
	struct gone_file *gone;
	size_t ngone, cap_gone;
};

static void keep_released(struct readout *o, const struct model *m, const struct gmem_event *e)
{
	const struct model_file *f = model__file(m, e->ino);
	struct gone_file *ng;

	if (!f)
		return;
	if (o->ngone == o->cap_gone) {
		size_t cap = o->cap_gone ? o->cap_gone * 2 : 16;

		ng = realloc(o->gone, cap * sizeof(*ng));
		if (!ng)
			return;
		o->gone = ng;
		o->cap_gone = cap;
	}
	o->gone[o->ngone++] = (struct gone_file){ .f = *f, .released_ts = e->ts_ns };
}

static int read_into_model(struct recording *r, struct model *m, struct kvmstats *kvm,
			   struct readout *o, __u32 only_vm)
{
	const struct gmem_event *recs;
	struct u64set inos = {};
	size_t n, i;
	int st;

	/* o accumulates: a rotated set is read file after file into one model and readout */
	while ((st = recording__next(r, &recs, &n)) > 0) {
		for (i = 0; i < n; i++) {
			const struct gmem_event *e = &recs[i];

			if (only_vm && !vm_filter_keep(&inos, &only_vm, 1, e))
				continue;
			if (e->kind == GMEM_EV_FILE_RELEASE)
				keep_released(o, m, e);
			model__apply(m, e);
			kvmstats__apply(kvm, e);
			if (!o->any || e->ts_ns < o->first_ts)
				o->first_ts = e->ts_ns;
			if (e->ts_ns > o->last_ts)
				o->last_ts = e->ts_ns;
			o->any = true;
			o->records++;
			if (e->flags & GMEM_EVF_SCENARIO)
				o->scenario++;
			if (e->flags & GMEM_EVF_SYNTH)
				o->synth++;
		}
	}
	o->status = st;
	free(inos.slots);
	return st;
}

/* ---- report ------------------------------------------------------------------------------ */

#define REPORT_MAX_FILES 1024

static struct report_env {
	const char *file; /* the first of files[] */
	const char *files[REPORT_MAX_FILES];
	size_t nfiles;
	bool json;
	__u32 vm;
} rep_env;

/* The recordings a report reads as one: one file, or a rotated set in sequence order. */
struct rset {
	struct recording *r[REPORT_MAX_FILES];
	const char *path[REPORT_MAX_FILES];
	long long seq[REPORT_MAX_FILES];
	size_t n;
};

static long long rset_seq(struct recording *r)
{
	const json_t *s = json_object_get(json_object_get(recording__meta(r), "recording"),
					  "sequence");

	return json_is_integer(s) ? json_integer_value(s) : -1;
}

static long long rset_started(struct recording *r)
{
	return json_integer_value(json_object_get(json_object_get(recording__meta(r),
								 "recording"),
						  "started_wall_ns"));
}

/*
 * Opens every file; several must be one rotated set (the same recording's FILE.N, whatever
 * order the shell's glob gave), put in sequence order. 0, or 1 having said why.
 */
static int rset_open(struct rset *set, const char *const *paths, size_t n)
{
	size_t i, j;

	memset(set, 0, sizeof(*set));
	for (i = 0; i < n; i++) {
		set->r[i] = open_recording(paths[i]);
		if (!set->r[i])
			return 1;
		set->path[i] = paths[i];
		set->seq[i] = rset_seq(set->r[i]);
		set->n++;
	}
	if (n == 1)
		return 0;
	for (i = 0; i < n; i++) {
		if (set->seq[i] < 0) {
			fprintf(stderr, "gmemtrace: %s is not part of a rotated set (no sequence "
				"number): report several files only from one --rotate-size or "
				"--rotate-time recording\n", paths[i]);
			return 1;
		}
		if (rset_started(set->r[i]) != rset_started(set->r[0])) {
			fprintf(stderr, "gmemtrace: %s and %s are from different recordings\n",
				paths[0], paths[i]);
			return 1;
		}
	}
	for (i = 1; i < n; i++) /* insertion sort by sequence: a handful of files */
		for (j = i; j > 0 && set->seq[j - 1] > set->seq[j]; j--) {
			struct recording *r = set->r[j];
			const char *p = set->path[j];
			long long q = set->seq[j];

			set->r[j] = set->r[j - 1];
			set->path[j] = set->path[j - 1];
			set->seq[j] = set->seq[j - 1];
			set->r[j - 1] = r;
			set->path[j - 1] = p;
			set->seq[j - 1] = q;
		}
	for (i = 1; i < n; i++) {
		if (set->seq[i] == set->seq[i - 1]) {
			fprintf(stderr, "gmemtrace: %s and %s are the same part (%lld) of the set\n",
				set->path[i - 1], set->path[i], set->seq[i]);
			return 1;
		}
		if (set->seq[i] != set->seq[i - 1] + 1)
			fprintf(stderr, "gmemtrace: warning: parts %lld to %lld of the set are missing "
				"between %s and %s: the report has a gap there\n",
				set->seq[i - 1] + 1, set->seq[i] - 1, set->path[i - 1], set->path[i]);
	}
	return 0;
}

static void rset_close(struct rset *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		recording__close(set->r[i]);
}

static bool rset_complete(const struct rset *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (!recording__complete(set->r[i]))
			return false;
	return true;
}

static __u64 rset_sum(const struct rset *set, __u64 (*fn)(const struct recording *))
{
	__u64 t = 0;
	size_t i;

	for (i = 0; i < set->n; i++)
		t += fn(set->r[i]);
	return t;
}

static const char report_doc[] =
	"gmemtrace report: summarise a recording through the model gmemd uses.\n"
	"\n"
	"Every record goes through the model gmemd uses; the report shows per VM and per "
	"file what the exporter would, by event kind, with latency histograms (log2, like "
	"bcc's biolatency) and percentiles. VMs are never retired here: a report covers the "
	"whole recording.\n"
	"\n"
	"Several files must be one rotated set (record --rotate-size or --rotate-time). They "
	"are read as one recording, in sequence order, whatever order the shell gives them in.\n"
	"\n"
	"USAGE: gmemtrace report FILE... [-j] [--vm PID]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace report vm.gmtr\n"
	"  gmemtrace report ring.gmtr.*               # a rotated set, as one\n"
	"  gmemtrace report -j vm.gmtr | jq '.model.vms[].conversion_latency'\n"
	"  gmemtrace report --vm 4242 vm.gmtr";

static const struct argp_option report_opts[] = {
	{ "json", 'j', NULL, 0, "JSON: the recording and the model as gmemd's snapshot has it, plus percentiles", 0 },
	{ "vm", OPT_VM, "PID", 0, "Only this VM's records (with its files' and host-wide ones)",
	  0 },
	{},
};

static error_t report_parse(int key, char *arg, struct argp_state *state)
{
	unsigned long long v;

	switch (key) {
	case 'j':
		rep_env.json = true;
		break;
	case OPT_VM:
		if (cli__parse_ulong(arg, 1, UINT32_MAX, &v))
			argp_error(state, "--vm: '%s' is not a pid", arg);
		rep_env.vm = v;
		break;
	case ARGP_KEY_ARG:
		if (rep_env.nfiles == REPORT_MAX_FILES)
			argp_error(state, "at most %d files", REPORT_MAX_FILES);
		rep_env.files[rep_env.nfiles++] = arg;
		if (!rep_env.file)
			rep_env.file = arg;
		break;
	case ARGP_KEY_END:
		if (!rep_env.file)
			argp_error(state, "which recording? (gmemtrace report FILE...)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

/* bcc's print_log2_hist, for nanoseconds: rows from the first to the last non-empty slot. */
static void print_log2_hist(FILE *f, const struct histo *h)
{
	unsigned int i, lo = HISTO_SLOTS, hi = 0, width;
	__u64 max = 0;
	char stars[41];

	for (i = 0; i < HISTO_SLOTS; i++) {
		if (!h->slots[i])
			continue;
		if (lo == HISTO_SLOTS)
			lo = i;
		hi = i;
		if (h->slots[i] > max)
			max = h->slots[i];
	}
	if (lo == HISTO_SLOTS)
		return;
	width = hi <= 32 ? 10 : 20;
	fprintf(f, "    %*s%-*s : count    distribution\n", hi <= 32 ? 5 : 15, "",
		hi <= 32 ? 19 : 29, "nsecs");
	for (i = lo; i <= hi; i++) {
		unsigned long long low = i ? 1ull << i : 0, high = (2ull << i) - 1;
		unsigned int n = max ? (unsigned int)(h->slots[i] * 40 / max) : 0;

		memset(stars, '*', n);
		stars[n] = 0;
		fprintf(f, "    %*llu -> %-*llu : %-8llu |%-40s|\n", width, low, width, high,
			(unsigned long long)h->slots[i], stars);
	}
}

static void print_histo(FILE *f, const char *title, const struct histo *h)
{
	char b[6][24];

	if (!h->count)
		return;
	fprintf(f, "\n  %s: %llu\n    min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", title,
		(unsigned long long)h->count, human_ns(h->min, b[0], 24),
		human_ns(histo__percentile(h, 0.5), b[1], 24),
		human_ns(histo__percentile(h, 0.9), b[2], 24),
		human_ns(histo__percentile(h, 0.99), b[3], 24),
		human_ns(histo__percentile(h, 0.999), b[4], 24), human_ns(h->max, b[5], 24));
	print_log2_hist(f, h);
}

struct report_ctx {
	FILE *f;
	const struct model *m;
	const struct readout *o;
};

static void print_file(FILE *f, const struct model_file *fl, const char *state)
{
	char b1[24], b2[24];

	fprintf(f, "    %-10llu %10s %10s %-10s %-10s %10llu %10llu %8llu %6llu %6llu\n",
		(unsigned long long)fl->ino, human_bytes(fl->size_bytes, b1, sizeof(b1)),
		human_bytes(fl->populated_pages * MODEL_PAGE_SIZE, b2, sizeof(b2)),
		fl->created ? "created" : fl->discovered ? "discovered" : "?", state,
		(unsigned long long)fl->pages_allocated, (unsigned long long)fl->pages_freed,
		(unsigned long long)fl->punch_holes, (unsigned long long)fl->splits,
		(unsigned long long)fl->merges);
}

static int report_file_cb(const struct model_file *fl, void *ctx)
{
	struct report_ctx *c = ctx;

	print_file(c->f, fl, "live");
	return 0;
}

static void print_counts(FILE *f, const char *title, const __u64 *v, unsigned int n,
			 const char *(*name)(unsigned int))
{
	unsigned int i;
	bool any = false;

	for (i = 0; i < n; i++)
		any |= v[i] != 0;
	if (!any)
		return;
	fprintf(f, "  %-20s", title);
	for (i = 0; i < n; i++)
		if (v[i])
			fprintf(f, " %s %llu", name(i), (unsigned long long)v[i]);
	fputc('\n', f);
}

static int report_vm_cb(const struct model_vm *vm, void *ctx)
{
	struct report_ctx *c = ctx;
	const struct model_conv_stats *cs = &vm->conv;
	FILE *f = c->f;
	unsigned int d, i;
	char title[96], b1[24];

	fprintf(f, "\nVM %u%s   events %llu\n", vm->pid, vm->gone ? " (exited)" : "",
		(unsigned long long)vm->events);
	snprintf(b1, sizeof(b1), " (create failed %llu)",
		 (unsigned long long)vm->files_create_failed);
	fprintf(f, "  %-20s created %llu, released %llu, discovered %llu, live %llu%s\n", "files",
		(unsigned long long)vm->files_created, (unsigned long long)vm->files_released,
		(unsigned long long)vm->files_discovered, (unsigned long long)vm->files,
		vm->files_create_failed ? b1 : "");
	fprintf(f, "  %-20s %llu (failed %llu), unbinds %llu\n", "memslot binds",
		(unsigned long long)vm->memslot_binds, (unsigned long long)vm->memslot_bind_failed,
		(unsigned long long)vm->memslot_unbinds);
	print_counts(f, "pages allocated", vm->pages_allocated, GMEM_SRC_MAX, model__source_name);
	fprintf(f, "  %-20s %llu\n", "pages freed", (unsigned long long)vm->pages_freed);
	fprintf(f, "  %-20s %llu (%s invalidated, %llu failed)\n", "punch holes",
		(unsigned long long)vm->punch_holes,
		human_bytes(vm->invalidated_bytes, b1, sizeof(b1)),
		(unsigned long long)vm->punch_hole_failed);
	fprintf(f, "  %-20s %llu (%s, %llu failed)\n", "fallocates",
		(unsigned long long)vm->fallocates,
		human_bytes(vm->fallocated_bytes, b1, sizeof(b1)),
		(unsigned long long)vm->fallocate_failed);
	print_counts(f, "faults", vm->faults, GMEM_SRC_MAX, model__source_name);
	for (d = 0; d < GMEM_DIR_MAX; d++)
		if (vm->conversions[d][0] || vm->conversions[d][1])
			fprintf(f, "  conversions to %-5s ok %llu, error %llu\n",
				model__dir_name(d),
				(unsigned long long)vm->conversions[d][MODEL_RESULT_OK],
				(unsigned long long)vm->conversions[d][MODEL_RESULT_ERROR]);
	if (cs->requests || cs->unmatched_attr || cs->unmatched_resume)
		fprintf(f, "  %-20s %llu: completed %llu, abandoned %llu, superseded %llu, "
			"evicted %llu, unfinished %llu, pending %llu; unmatched attr %llu, resume "
			"%llu\n", "conversion requests", (unsigned long long)cs->requests,
			(unsigned long long)cs->completed, (unsigned long long)cs->abandoned,
			(unsigned long long)cs->superseded, (unsigned long long)cs->evicted,
			(unsigned long long)cs->unfinished, (unsigned long long)cs->pending,
			(unsigned long long)cs->unmatched_attr,
			(unsigned long long)cs->unmatched_resume);
	print_counts(f, "rmp transitions", vm->rmp, GMEM_RMP_OP_MAX, model__rmp_op_name);
	print_counts(f, "tdx transitions", vm->tdx, GMEM_TDX_OP_MAX, model__tdx_op_name);
	for (i = 0; i < vm->nr_hugepages; i++)
		fprintf(f, "  huge pages %2u -> %-2u    splits %llu, merges %llu\n",
			vm->hugepages[i].from_order, vm->hugepages[i].to_order,
			(unsigned long long)vm->hugepages[i].splits,
			(unsigned long long)vm->hugepages[i].merges);
	print_histo(f, "fault latency (fentry)", &vm->fault_ns);
	for (d = 0; d < GMEM_DIR_MAX; d++) {
		snprintf(title, sizeof(title), "conversion to %s, kernel part (attributes call)",
			 model__dir_name(d));
		print_histo(f, title, &vm->conversion_ns[d]);
	}
	for (d = 0; d < GMEM_DIR_MAX; d++) {
		snprintf(title, sizeof(title),
			 "conversion to %s, end to end (vCPU exit to its next entry)",
			 model__dir_name(d));
		print_histo(f, title, &vm->exit_to_entry_ns[d]);
	}
	for (i = 0; i < c->o->ngone && !vm->files; i++)
		if (c->o->gone[i].f.vm == vm->pid)
			break;
	if (vm->files || i < c->o->ngone) {
		/* populated: now for a live file, when released for the others */
		fprintf(f, "\n  files:\n    %-10s %10s %10s %-10s %-10s %10s %10s %8s %6s %6s\n",
			"INO", "SIZE", "POPULATED", "ORIGIN", "STATE", "ALLOCATED", "FREED",
			"PUNCHES", "SPLITS", "MERGES");
		model__for_each_file(c->m, vm, report_file_cb, c);
		for (i = 0; i < c->o->ngone; i++)
			if (c->o->gone[i].f.vm == vm->pid)
				print_file(f, &c->o->gone[i].f, "released");
	}
	return 0;
}

static void report_text(FILE *f, const struct rset *set, const struct model *m,
			const struct readout *o)
{
	struct recording *r = set->r[0];
	const char *path = set->path[0];
	__u64 size = rset_sum(set, recording__size);
	const json_t *meta = recording__meta(r), *host = json_object_get(meta, "host"),
		     *src = json_object_get(meta, "source"),
		     *scen = json_object_get(meta, "scenario"),
		     *filter = json_object_get(json_object_get(meta, "recording"), "vm_filter");
	const struct model_totals *t = model__totals(m);
	const struct model_anomalies *a = &t->anomalies;
	struct report_ctx c = { .f = f, .m = m, .o = o };
	char b1[32], b2[32];
	unsigned int k;

	if (set->n > 1)
		fprintf(f, "recording  %s .. %s: a rotated set of %zu files (parts %lld to %lld), "
			"read as one\n", path, set->path[set->n - 1], set->n, set->seq[0],
			set->seq[set->n - 1]);
	fprintf(f, "recording  %s: %s, %llu chunks, %llu events, %s (%.2f bytes/event)\n",
		set->n > 1 ? "all" : path, rset_complete(set) ? "complete" : "INCOMPLETE",
		(unsigned long long)rset_sum(set, recording__chunks_read),
		(unsigned long long)o->records, human_bytes(size, b1, sizeof(b1)),
		o->records ? (double)size / o->records : 0.0);
	fprintf(f, "span       %s (%s of recorded time)\n",
		json_string_value(json_object_get(json_object_get(json_object_get(meta, "clock"),
								  "anchor"),
						  "realtime_utc")) ?: "?",
		human_ns(o->any ? o->last_ts - o->first_ts : 0, b2, sizeof(b2)));
	if (host)
		fprintf(f, "host       %s %s %s\n",
			json_string_value(json_object_get(host, "nodename")) ?: "?",
			json_string_value(json_object_get(host, "release")) ?: "?",
			json_string_value(json_object_get(host, "machine")) ?: "?");
	if (src)
		fprintf(f, "source     %s%s%s\n",
			json_string_value(json_object_get(src, "kind")) ?: "?",
			json_object_get(src, "socket") ? " at " : "",
			json_string_value(json_object_get(src, "socket")) ?: "");
	if (json_array_size(filter)) {
		size_t i;
		json_t *v;

		fprintf(f, "vm filter ");
		json_array_foreach(filter, i, v)
			fprintf(f, " %lld", json_integer_value(v));
		fputc('\n', f);
	}
	if (scen)
		fprintf(f, "scenario   %s: %s\n           CONSTRUCTED (%llu of %llu records "
			"flagged SCENARIO); follows %s\n",
			json_string_value(json_object_get(scen, "name")) ?: "?",
			json_string_value(json_object_get(scen, "summary")) ?: "",
			(unsigned long long)o->scenario, (unsigned long long)o->records,
			json_string_value(json_object_get(scen, "source")) ?: "?");
	fprintf(f, "events     %llu applied, %llu dropped (LOST), %llu of kinds this build does "
		"not know\n", (unsigned long long)t->events, (unsigned long long)t->events_dropped,
		(unsigned long long)t->unknown_kinds);

	fprintf(f, "\nEVENTS BY KIND\n");
	for (k = 1; k < GMEM_EV_KIND_MAX; k++)
		if (t->by_kind[k])
			fprintf(f, "  %-16s %llu\n", model__kind_name(k),
				(unsigned long long)t->by_kind[k]);
	model__for_each_vm(m, report_vm_cb, &c);
	fprintf(f, "\nHOST\n");
	for (k = 0; k < GMEM_OWNER_MAX; k++)
		if (t->dmap_removals[k] || t->dmap_restores[k])
			fprintf(f, "  direct map (%s)  removed %llu pages, restored %llu pages\n",
				model__owner_name(k), (unsigned long long)t->dmap_removals[k],
				(unsigned long long)t->dmap_restores[k]);
	fprintf(f, "  DirectMap (last sample)  4k %s, 2M %s, 1G %s\n",
		human_bytes(t->host_direct_map_bytes[0], b1, sizeof(b1)),
		human_bytes(t->host_direct_map_bytes[1], b2, sizeof(b2)),
		human_bytes(t->host_direct_map_bytes[2], b1 + 16, 16));
	if (a->populated_underflow || a->untracked_file || a->release_untracked ||
	    a->ino_reowned || a->bad_sub || a->late_events || a->nomem)
		fprintf(f, "  anomalies: populated_underflow %llu, untracked_file %llu, "
			"release_untracked %llu, ino_reowned %llu, bad_sub %llu, late %llu, nomem "
			"%llu\n", (unsigned long long)a->populated_underflow,
			(unsigned long long)a->untracked_file,
			(unsigned long long)a->release_untracked,
			(unsigned long long)a->ino_reowned, (unsigned long long)a->bad_sub,
			(unsigned long long)a->late_events, (unsigned long long)a->nomem);
}

static void print_kvm_values(FILE *f, const char *title, const json_t *o)
{
	const char *name;
	json_t *v;
	int col = 23;

	if (!json_object_size(o))
		return;
	fprintf(f, "  %-20s", title);
	json_object_foreach((json_t *)o, name, v) {
		int w = (int)strlen(name) + 22;

		if (col + w > 100) {
			fprintf(f, "\n  %-20s", "");
			col = 23;
		}
		col += fprintf(f, " %s %lld", name, json_integer_value(v));
	}
	fputc('\n', f);
}

/*
 * KVM's binary stats as gmemd sampled them on its tick: the last values per VM (vCPU
 * cumulative stats summed, as /metrics has them), each vCPU's, and the mapping mix over time.
 */
static void report_kvm_text(FILE *f, const struct kvmstats *kvm)
{
	json_t *vms = kvmstats__report_json(kvm), *v, *c, *mix, *one;
	const char *name;
	size_t i, j;
	char title[32], b1[24];

	if (json_array_size(vms))
		fprintf(f, "\nKVM STATS (KVM_GET_STATS_FD, sampled on gmemd's tick; last values)\n");
	json_array_foreach(vms, i, v) {
		fprintf(f, "\nVM %lld%s   %lld samples over %s\n",
			json_integer_value(json_object_get(v, "vm")),
			json_is_true(json_object_get(v, "gone")) ? " (exited)" : "",
			json_integer_value(json_object_get(v, "samples")),
			human_ns((double)(json_integer_value(json_object_get(v, "last_ns")) -
					  json_integer_value(json_object_get(v, "first_ns"))),
				 b1, sizeof(b1)));
		print_kvm_values(f, "vCPUs (summed)", json_object_get(v, "vcpu_totals"));
		print_kvm_values(f, "VM", json_object_get(v, "vm_stats"));
		mix = json_object_get(v, "mapping");
		if (json_object_size(mix))
			fprintf(f, "  %-20s %10s %10s %10s %10s\n", "mapping mix (pages)",
				"FIRST", "LAST", "MIN", "MAX");
		json_object_foreach(mix, name, one)
			fprintf(f, "    %-18s %10lld %10lld %10lld %10lld\n", name,
				json_integer_value(json_object_get(one, "first")),
				json_integer_value(json_object_get(one, "last")),
				json_integer_value(json_object_get(one, "min")),
				json_integer_value(json_object_get(one, "max")));
		json_array_foreach(json_object_get(v, "vcpus"), j, c) {
			snprintf(title, sizeof(title), "vCPU %lld",
				 json_integer_value(json_object_get(c, "vcpu")));
			print_kvm_values(f, title, json_object_get(c, "stats"));
		}
	}
	if (kvmstats__bad_records(kvm))
		fprintf(f, "  %llu KVM stat records could not be used (an id no DESC named)\n",
			(unsigned long long)kvmstats__bad_records(kvm));
	json_decref(vms);
}

/* Files the recording saw released: the model forgets them, the report does not. */
static json_t *gone_json(const struct readout *o)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < o->ngone; i++) {
		const struct model_file *f = &o->gone[i].f;

		json_array_append_new(arr, json_pack(
			"{s:I, s:I, s:I, s:I, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			"s:I}", "ino", (json_int_t)f->ino, "vm", (json_int_t)f->vm, "size_bytes",
			(json_int_t)f->size_bytes, "populated_pages_at_release",
			(json_int_t)f->populated_pages, "created", f->created, "discovered",
			f->discovered, "first_ts_ns", (json_int_t)f->first_ts_ns,
			"released_ts_ns", (json_int_t)o->gone[i].released_ts, "pages_allocated",
			(json_int_t)f->pages_allocated, "pages_freed", (json_int_t)f->pages_freed,
			"punch_holes", (json_int_t)f->punch_holes, "invalidated_bytes",
			(json_int_t)f->invalidated_bytes, "faults", (json_int_t)f->faults, "binds",
			(json_int_t)f->binds, "splits", (json_int_t)f->splits, "merges",
			(json_int_t)f->merges));
	}
	return arr;
}

/* model__to_json() gives p50 and p99; a report adds p90 and p99.9 to each histogram. */
static void add_percentiles(json_t *h, const struct histo *src)
{
	if (!json_is_object(h))
		return;
	json_object_set_new(h, "p90_ns", json_integer(histo__percentile(src, 0.9)));
	json_object_set_new(h, "p999_ns", json_integer(histo__percentile(src, 0.999)));
}

static json_t *report_json(const struct rset *set, const struct model *m,
			   const struct readout *o)
{
	struct recording *r = set->r[0];
	const char *path = set->path[0];
	json_t *root = json_object(), *model = model__to_json(m), *vms, *v, *files = json_array();
	size_t i;
	unsigned int d;

	vms = json_object_get(model, "vms");
	json_array_foreach(vms, i, v) {
		const struct model_vm *vm =
			model__vm(m, json_integer_value(json_object_get(v, "vm")));

		if (!vm)
			continue;
		add_percentiles(json_object_get(v, "fault_latency"), &vm->fault_ns);
		for (d = 0; d < GMEM_DIR_MAX; d++) {
			add_percentiles(json_object_get(json_object_get(v, "conversion_latency"),
							model__dir_name(d)),
					&vm->conversion_ns[d]);
			add_percentiles(json_object_get(json_object_get(v,
									"conversion_exit_to_entry"),
							model__dir_name(d)),
					&vm->exit_to_entry_ns[d]);
		}
	}
	json_object_set_new(root, "recording",
			    json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:O}",
				      "path", path, "complete", rset_complete(set), "chunks",
				      (json_int_t)rset_sum(set, recording__chunks_read), "records",
				      (json_int_t)o->records, "bytes",
				      (json_int_t)rset_sum(set, recording__size), "first_ts_ns",
				      (json_int_t)o->first_ts, "last_ts_ns",
				      (json_int_t)o->last_ts, "scenario_records",
				      (json_int_t)o->scenario, "synth_records",
				      (json_int_t)o->synth, "error", recording__error(r), "meta",
				      recording__meta(r)));
	/* the set's files, in the order read: one entry for a single file */
	for (i = 0; i < set->n; i++)
		json_array_append_new(files, json_pack("{s:s, s:I, s:b, s:I, s:I, s:s}", "path",
			set->path[i], "sequence", (json_int_t)set->seq[i], "complete",
			recording__complete(set->r[i]), "chunks",
			(json_int_t)recording__chunks_read(set->r[i]), "bytes",
			(json_int_t)recording__size(set->r[i]), "error",
			recording__error(set->r[i])));
	json_object_set_new(json_object_get(root, "recording"), "files", files);
	json_object_set_new(root, "model", model ? model : json_null());
	json_object_set_new(root, "released_files", gone_json(o));
	return root;
}

static int do_report(int argc, char **argv)
{
	static const struct argp argp = { report_opts, report_parse, NULL, report_doc, cli__std_children, NULL, NULL };
	struct model_opts mo = { .retire_after_ns = ~0ull };
	static struct rset set;
	struct kvmstats *kvm = NULL;
	struct model *m = NULL;
	struct readout o = {};
	int ret = 1, st[REPORT_MAX_FILES];
	size_t i;

	rep_env = (struct report_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	if (rset_open(&set, rep_env.files, rep_env.nfiles))
		goto cleanup;
	m = model__new(&mo);
	if (!m)
		goto cleanup;
	if (kvmstats__new_replay(&kvm))
		goto cleanup;
	for (i = 0; i < set.n; i++)
		st[i] = read_into_model(set.r[i], m, kvm, &o, rep_env.vm);
	if (rep_env.json) {
		json_t *j = report_json(&set, m, &o);

		json_object_set_new(j, "kvm_stats", kvmstats__report_json(kvm));
		json_object_set_new(j, "kvm_stats_bad_records",
				    json_integer((json_int_t)kvmstats__bad_records(kvm)));
		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
	} else {
		report_text(stdout, &set, m, &o);
		report_kvm_text(stdout, kvm);
	}
	fflush(stdout);
	ret = 0;
	for (i = 0; i < set.n; i++)
		ret |= read_status(set.path[i], set.r[i], st[i]);
cleanup:
	free(o.gone);
	kvmstats__free(kvm);
	model__free(m);
	rset_close(&set);
	return ret;
}

/* ---- replay ------------------------------------------------------------------------------ */

static struct replay_env {
	const char *file;
	double speed;
	bool max;
	const char *listen;
	const char *socket;
	bool no_http;
	bool exit_at_end;
	double retire_after;
	unsigned long long max_file_series;
	bool quiet;
} rp_env;

static const char replay_doc[] =
	"gmemtrace replay: serve a recording as gmemd would.\n"
	"\n"
	"Feeds the recording through the model and serves it with gmemd's server: the same "
	"/metrics, the same control socket (hello says server \"gmemtrace replay\", live "
	"false; subscribe streams the records as they are replayed), so Prometheus, curl and "
	"gmemtop look at a recording as at a live host. Paced by the records' timestamps "
	"(--speed), or as fast as it goes (--max) for what-if analysis. Keeps serving after "
	"the end until SIGINT or SIGTERM, unless --exit-at-end. VMs retire after "
	"--retire-after of recorded time, as in gmemd.\n"
	"\n"
	"USAGE: gmemtrace replay FILE [--speed X | --max]\n"
	"                        [--listen HOST:PORT] [--socket PATH]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace replay vm.gmtr                     # real time, 127.0.0.1:9478\n"
	"  gmemtrace replay --speed 10 vm.gmtr          # ten times faster\n"
	"  gmemtrace replay --max --listen 127.0.0.1:9999 vm.gmtr\n"
	"  gmemtop --socket " REPLAY_SOCKET "   # then watch it";

static const struct argp_option replay_opts[] = {
	{ "speed", OPT_SPEED, "X", 0, "Replay X times real time (default 1)", 0 },
	{ "max", OPT_MAX, NULL, 0, "As fast as possible", 0 },
	{ "listen", 'l', "HOST:PORT", 0, "Serve /metrics here (default " REPLAY_LISTEN ")", 0 },
	{ "socket", 's', "PATH", 0, "Serve this control socket (" REPLAY_SOCKET " by default)", 0 },
	{ "no-http", OPT_NO_HTTP, NULL, 0, "Serve only the control socket", 0 },
	{ "exit-at-end", OPT_EXIT_AT_END, NULL, 0, "Exit once the recording is replayed", 0 },
	{ "retire-after", OPT_RETIRE, "SECONDS", 0,
	  "Keep an exited VM's series this long, in recorded time (default 60)", 0 },
	{ "max-file-series", OPT_MAXFILESERIES, "N", 0, "As gmemd's (default 10000)", 0 },
	{ "quiet", 'q', NULL, 0, "No ready and end lines", 0 },
	{},
};

static error_t replay_parse(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case OPT_SPEED:
		if (cli__parse_double(arg, 1e-6, 1e9, &rp_env.speed))
			argp_error(state, "--speed: '%s' is not a factor > 0", arg);
		break;
	case OPT_MAX:
		rp_env.max = true;
		break;
	case 'l':
		rp_env.listen = arg;
		break;
	case 's':
		rp_env.socket = arg;
		break;
	case OPT_NO_HTTP:
		rp_env.no_http = true;
		break;
	case OPT_EXIT_AT_END:
		rp_env.exit_at_end = true;
		break;
	case OPT_RETIRE:
		if (cli__parse_double(arg, 0, 1e9, &rp_env.retire_after))
			argp_error(state, "--retire-after: '%s' is not seconds >= 0", arg);
		break;
	case OPT_MAXFILESERIES:
		if (cli__parse_ulong(arg, 0, 10000000, &rp_env.max_file_series))
			argp_error(state, "--max-file-series: '%s' is not a count", arg);
		break;
	case 'q':
		rp_env.quiet = true;
		break;
	case ARGP_KEY_ARG:
		if (rp_env.file)
			argp_error(state, "unexpected argument '%s'", arg);
		rp_env.file = arg;
		break;
	case ARGP_KEY_END:
		if (!rp_env.file)
			argp_error(state, "which recording? (gmemtrace replay FILE)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

/* When a record is due on the wall clock: the recording's clock from its first record, scaled. */
static __u64 replay_due(__u64 wall0, __u64 first_ts, __u64 ts)
{
	return wall0 + (__u64)((ts > first_ts ? ts - first_ts : 0) / rp_env.speed);
}

struct replay_state {
	__u64 applied;
	__u64 first_ts, pos_ts;
	bool started, done;
};

static size_t replay_stats(void *ctx, struct prom_stat *stats, size_t max)
{
	struct replay_state *s = ctx;
	size_t n = 0;

	if (max < 3)
		return 0;
	stats[n++] = (struct prom_stat){ "gmemtrace_replay_records_total",
					 "Records of the recording applied so far.",
					 PROM_STAT_COUNTER, false, s->applied, 0 };
	stats[n++] = (struct prom_stat){ "gmemtrace_replay_finished",
					 "1 once the whole recording has been replayed.",
					 PROM_STAT_GAUGE, false, s->done, 0 };
	stats[n++] = (struct prom_stat){ "gmemtrace_replay_position_seconds",
					 "Recorded time replayed, since the first record.",
					 PROM_STAT_GAUGE, true, 0,
					 s->started ? (s->pos_ts - s->first_ts) / 1e9 : 0 };
	return n;
}

static void replay_kvm_apply(void *ctx, const struct gmem_event *e)
{
	kvmstats__apply(ctx, e);
}

static int do_replay(int argc, char **argv)
{
	static const struct argp argp = { replay_opts, replay_parse, NULL, replay_doc, cli__std_children, NULL, NULL };
	struct server_opts vo = { .name = "gmemtrace replay", .socket_gid = -1 };
	const struct gmem_event *recs = NULL;
	struct replay_state st = {};
	struct recording *r = NULL;
	struct server *srv = NULL;
	struct kvmstats *kvm = NULL;
	size_t n = 0, idx = 0;
	__u64 wall0 = 0, t_start = 0;
	char err[512] = "";
	int e, sig_fd = -1, ret = 1, status = 1;

	rp_env = (struct replay_env){ .speed = 1.0, .listen = REPLAY_LISTEN,
				      .socket = REPLAY_SOCKET, .retire_after = 60,
				      .max_file_series = 10000 };
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	r = open_recording(rp_env.file);
	if (!r)
		return 1;
	vo.listen = rp_env.no_http ? NULL : rp_env.listen;
	vo.socket = rp_env.socket;
	vo.model.retire_after_ns = (__u64)(rp_env.retire_after * 1e9);
	vo.model.max_file_series = rp_env.max_file_series;
	e = server__open(&srv, &vo, err, sizeof(err));
	if (e) {
		fprintf(stderr, "gmemtrace: %s\n", err);
		goto cleanup;
	}
	server__set_probe(srv, recording__probe_table(r));
	server__set_extra(srv, replay_stats, &st);
	/* KVM stats samples: the same gmem_kvm_* families and snapshot kvm_stats as gmemd's */
	if (kvmstats__new_replay(&kvm)) {
		fprintf(stderr, "gmemtrace: out of memory\n");
		goto cleanup;
	}
	server__set_ext(srv, &(struct server_ext){ .apply = replay_kvm_apply, .ctx = kvm });
	server__set_kvmstats(srv, kvm);
	sig_fd = signals_fd(); /* before the HTTP thread exists: it inherits the mask */
	e = server__start(srv, err, sizeof(err));
	if (e) {
		fprintf(stderr, "gmemtrace: %s\n", err);
		goto cleanup;
	}
	if (!rp_env.quiet)
		fprintf(stderr, "gmemtrace replay: ready; replaying %s %s; metrics on "
			"http://%s/metrics, control socket %s\n", rp_env.file,
			rp_env.max ? "as fast as possible" : "paced", rp_env.no_http ? "(off)" :
			server__listen_addr(srv), rp_env.socket);
	t_start = now_ns();
	for (;;) {
		struct pollfd pfd[1 + 80];
		int timeout = 100, nsrv, budget = 1 << 16;
		__u64 now;

		pfd[0] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		nsrv = server__pollfds(srv, pfd + 1, 80);
		if (!st.done && (rp_env.max || idx < n))
			timeout = 0;
		if (!st.done && !rp_env.max && idx < n) {
			/* sleep until the next record is due, at most 100 ms */
			__u64 due = replay_due(wall0, st.first_ts, recs[idx].ts_ns);

			now = now_ns();
			timeout = due <= now ? 0 : (int)((due - now) / 1000000 + 1);
			if (timeout > 100)
				timeout = 100;
		}
		if (poll(pfd, 1 + nsrv, timeout) < 0 && errno != EINTR) {
			fprintf(stderr, "gmemtrace: poll: %s\n", strerror(errno));
			goto cleanup;
		}
		if ((pfd[0].revents & POLLIN) && read_signal(sig_fd))
			break;
		server__lock(srv);
		now = now_ns();
		while (!st.done && budget > 0) {
			const struct gmem_event *ev;

			if (idx == n) {
				int rs = recording__next(r, &recs, &n);

				idx = 0;
				if (rs <= 0) {
					n = 0;
					st.done = true;
					status = rs;
					break;
				}
			}
			ev = &recs[idx];
			if (!st.started) {
				st.started = true;
				st.first_ts = st.pos_ts = ev->ts_ns;
				wall0 = now;
			}
			if (!rp_env.max && replay_due(wall0, st.first_ts, ev->ts_ns) > now)
				break;
			server__apply(srv, ev);
			if (ev->ts_ns > st.pos_ts)
				st.pos_ts = ev->ts_ns;
			st.applied++;
			idx++;
			budget--;
		}
		/* the model's clock is the recording's: retirement happens in recorded time */
		if (st.started)
			model__tick(server__model(srv), st.pos_ts);
		server__handle(srv, pfd + 1, nsrv);
		server__unlock(srv);
		if (st.done && !status) {
			double secs = (now_ns() - t_start) / 1e9;

			status = 2; /* reported once */
			if (!rp_env.quiet)
				fprintf(stderr, "gmemtrace replay: end of recording: %llu events "
					"in %.3f s (%.0f events/s)%s\n",
					(unsigned long long)st.applied, secs,
					secs > 0 ? st.applied / secs : 0.0,
					rp_env.exit_at_end ? "" : "; serving until SIGINT/SIGTERM");
			if (rp_env.exit_at_end)
				break;
		} else if (st.done && status < 0) {
			fprintf(stderr, "gmemtrace: %s: %s%s\n", rp_env.file, recording__error(r),
				rp_env.exit_at_end ? "" : "; serving what was read");
			status = 3;
			if (rp_env.exit_at_end)
				break;
		}
	}
	ret = status == 3 ? 1 : 0;
cleanup:
	server__close(srv);
	kvmstats__free(kvm);
	recording__close(r);
	if (sig_fd >= 0)
		close(sig_fd);
	return ret;
}

/* ---- export ------------------------------------------------------------------------------ */

static struct export_env {
	const char *file;
	const char *format;
	const char *out;
	double counter_interval_us;
} ex_env;

static const char export_doc[] =
	"gmemtrace export: convert a recording for other tools.\n"
	"\n"
	"perfetto: Chrome trace-event JSON, which ui.perfetto.dev and chrome://tracing open:\n"
	"a process per VM, a thread per vCPU; conversions as slices from the vCPU's exit to "
	"its next entry with the attributes call nested in them; populated bytes per VM, "
	"the host's DirectMap 4k/2M/1G mix and KVM's binary stats (a track per VM and per "
	"vCPU) as counters; lifecycle, punch holes, RMP, TDX, splits as instant events. csv and jsonl: one record per line, every field, with "
	"names for kinds, sources, directions and ops.\n"
	"\n"
	"USAGE: gmemtrace export FILE --format perfetto|csv|jsonl [-o OUT]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace export vm.gmtr --format perfetto -o vm.json  # for ui.perfetto.dev\n"
	"  gmemtrace export vm.gmtr --format csv | head\n"
	"  gmemtrace export vm.gmtr --format jsonl \\\n"
	"      | jq -c 'select(.kind == \"conv_attr\")'";

static const struct argp_option export_opts[] = {
	{ "format", 'f', "FORMAT", 0, "perfetto, csv or jsonl", 0 },
	{ "output", 'o', "OUT", 0, "Write here (default standard output)", 0 },
	{ "counter-interval", OPT_COUNTER, "US", 0,
	  "perfetto: at most one populated-bytes sample per VM per US microseconds (1000 by "
	  "default; 0 samples every change)", 0 },
	{},
};

static error_t export_parse(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'f':
		if (strcmp(arg, "perfetto") && strcmp(arg, "csv") && strcmp(arg, "jsonl"))
			argp_error(state, "--format: '%s' is not perfetto, csv or jsonl", arg);
		ex_env.format = arg;
		break;
	case 'o':
		ex_env.out = arg;
		break;
	case OPT_COUNTER:
		if (cli__parse_double(arg, 0, 1e12, &ex_env.counter_interval_us))
			argp_error(state, "--counter-interval: '%s' is not microseconds", arg);
		break;
	case ARGP_KEY_ARG:
		if (ex_env.file)
			argp_error(state, "unexpected argument '%s'", arg);
		ex_env.file = arg;
		break;
	case ARGP_KEY_END:
		if (!ex_env.file)
			argp_error(state, "which recording? (gmemtrace export FILE --format ...)");
		if (!ex_env.format)
			argp_error(state, "--format perfetto|csv|jsonl is required");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int do_export(int argc, char **argv)
{
	static const struct argp argp = { export_opts, export_parse, NULL, export_doc, cli__std_children, NULL, NULL };
	const struct gmem_event *recs;
	struct perfetto *pf = NULL;
	struct recording *r = NULL;
	const json_t *kinds;
	FILE *out = stdout;
	size_t n, i;
	int st, ret = 1, e = 0;
	char kb[32];

	ex_env = (struct export_env){ .counter_interval_us = 1000 };
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	r = open_recording(ex_env.file);
	if (!r)
		return 1;
	kinds = json_object_get(recording__meta(r), "kinds");
	if (ex_env.out) {
		struct stat in_st, out_st;

		/* writing over the recording would destroy it before it is read */
		if (!stat(ex_env.file, &in_st) && !stat(ex_env.out, &out_st) &&
		    in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino) {
			fprintf(stderr, "gmemtrace: -o %s is the recording being exported; "
				"refusing to overwrite it (write the export elsewhere)\n",
				ex_env.out);
			goto cleanup;
		}
		out = fopen(ex_env.out, "w");
		if (!out) {
			fprintf(stderr, "gmemtrace: cannot create %s: %s\n", ex_env.out,
				strerror(errno));
			goto cleanup;
		}
	}
	if (!strcmp(ex_env.format, "perfetto")) {
		struct perfetto_opts po = {
			.counter_interval_ns = (__u64)(ex_env.counter_interval_us * 1000),
			.kinds = kinds,
		};

		pf = perfetto__new(out, &po);
		if (!pf) {
			fprintf(stderr, "gmemtrace: out of memory\n");
			goto cleanup;
		}
	} else if (!strcmp(ex_env.format, "csv")) {
		e = export__csv_header(out);
	}
	while (!e && (st = recording__next(r, &recs, &n)) > 0) {
		for (i = 0; i < n && !e; i++) {
			const char *kn = export__kind_name(kinds, recs[i].kind, kb, sizeof(kb));

			if (pf) {
				e = perfetto__add(pf, &recs[i]);
			} else if (!strcmp(ex_env.format, "csv")) {
				e = export__csv(out, &recs[i], kn);
			} else {
				json_t *j = export__json(&recs[i], kn);

				errno = 0;
				if (json_dumpf(j, out, JSON_COMPACT) || fputc('\n', out) == EOF)
					e = errno ? -errno : -EIO;
				json_decref(j);
			}
		}
	}
	if (pf && !e) {
		const json_t *meta = recording__meta(r);
		json_t *other = json_pack("{s:s, s:s, s:b, s:O*, s:O*, s:O*}", "source",
					  "gmemtrace " GMEMTRACE_VERSION, "recording", ex_env.file,
					  "complete", recording__complete(r), "host",
					  json_object_get(meta, "host"), "scenario",
					  json_object_get(meta, "scenario"), "clock",
					  json_object_get(meta, "clock"));

		e = perfetto__finish(pf, other);
		json_decref(other);
	}
	if (fflush(out) || e) {
		fprintf(stderr, "gmemtrace: writing %s: %s\n", ex_env.out ? ex_env.out : "output",
			strerror(e ? -e : errno));
		goto cleanup;
	}
	ret = read_status(ex_env.file, r, st);
cleanup:
	perfetto__free(pf);
	if (out && out != stdout)
		fclose(out);
	recording__close(r);
	return ret;
}

/* ---- cat --------------------------------------------------------------------------------- */

static struct cat_env {
	const char *file;
	char *kinds[32];
	int nkinds;
	__u32 vm;
} cat_env;

static const char cat_doc[] =
	"gmemtrace cat: print a recording's events as text, one per line.\n"
	"\n"
	"Each line: seconds since the first record, the kind, vm and tid, then the kind's "
	"fields by meaning, and its flags ([synth], [scenario], [range]).\n"
	"\n"
	"USAGE: gmemtrace cat FILE [--kind NAME ...] [--vm PID]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace cat vm.gmtr | less\n"
	"  gmemtrace cat --kind conv_request --kind vcpu_resume vm.gmtr";

static const struct argp_option cat_opts[] = {
	{ "kind", OPT_KIND, "NAME", 0, "Only this kind (repeatable), e.g. page_alloc", 0 },
	{ "vm", OPT_VM, "PID", 0, "Only records of this VM", 0 },
	{},
};

static error_t cat_parse(int key, char *arg, struct argp_state *state)
{
	unsigned long long v;

	switch (key) {
	case OPT_KIND:
		if (cat_env.nkinds == 32)
			argp_error(state, "--kind: at most 32");
		cat_env.kinds[cat_env.nkinds++] = arg;
		break;
	case OPT_VM:
		if (cli__parse_ulong(arg, 1, UINT32_MAX, &v))
			argp_error(state, "--vm: '%s' is not a pid", arg);
		cat_env.vm = v;
		break;
	case ARGP_KEY_ARG:
		if (cat_env.file)
			argp_error(state, "unexpected argument '%s'", arg);
		cat_env.file = arg;
		break;
	case ARGP_KEY_END:
		if (!cat_env.file)
			argp_error(state, "which recording? (gmemtrace cat FILE)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int do_cat(int argc, char **argv)
{
	static const struct argp argp = { cat_opts, cat_parse, NULL, cat_doc, cli__std_children, NULL, NULL };
	struct strbuf line = STRBUF_INIT;
	const struct gmem_event *recs;
	struct recording *r;
	const json_t *kinds;
	bool have_base = false;
	__u64 base = 0;
	size_t n, i;
	int st, k, ret;
	char kb[32];

	cat_env = (struct cat_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	r = open_recording(cat_env.file);
	if (!r)
		return 1;
	kinds = json_object_get(recording__meta(r), "kinds");
	for (k = 0; k < cat_env.nkinds; k++) {
		struct strbuf known = STRBUF_INIT;
		unsigned int kind;
		bool found = false;

		for (kind = 1; kind < 256 && !found; kind++)
			found = !strcmp(cat_env.kinds[k],
					export__kind_name(kinds, kind, kb, sizeof(kb)));
		if (found)
			continue;
		/* the names a user may give: every kind this build knows, and the file's own */
		for (kind = 1; kind < 256; kind++) {
			const char *kn = export__kind_name(kinds, kind, kb, sizeof(kb));

			if (kind < GMEM_EV_KIND_MAX || strncmp(kn, "kind_", 5))
				strbuf__printf(&known, "%s%s", known.len ? ", " : "", kn);
		}
		fprintf(stderr, "gmemtrace cat: --kind %s: no such record kind; the kinds are: %s\n",
			cat_env.kinds[k], strbuf__str(&known));
		strbuf__release(&known);
		recording__close(r);
		return CLI_EX_USAGE;
	}
	while ((st = recording__next(r, &recs, &n)) > 0) {
		for (i = 0; i < n; i++) {
			const char *kn = export__kind_name(kinds, recs[i].kind, kb, sizeof(kb));
			bool want = !cat_env.nkinds;

			if (!have_base) {
				base = recs[i].ts_ns;
				have_base = true;
			}
			for (k = 0; k < cat_env.nkinds && !want; k++)
				want = !strcmp(cat_env.kinds[k], kn);
			if (!want || (cat_env.vm && recs[i].vm != cat_env.vm))
				continue;
			strbuf__reset(&line);
			export__text(&line, &recs[i], base, kn);
			puts(strbuf__str(&line));
		}
	}
	fflush(stdout);
	ret = read_status(cat_env.file, r, st);
	strbuf__release(&line);
	recording__close(r);
	return ret;
}

/* ---- info -------------------------------------------------------------------------------- */

static struct info_env {
	const char *file;
	bool json;
} info_env;

static const char info_doc[] =
	"gmemtrace info: a recording's header, chunks and integrity.\n"
	"\n"
	"Reads every chunk and checks every checksum and the trailer; says what the file is, "
	"where it came from and whether it is complete.\n"
	"\n"
	"USAGE: gmemtrace info FILE [-j]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace info vm.gmtr\n"
	"  gmemtrace info -j vm.gmtr | jq .meta.host";

static const struct argp_option info_opts[] = {
	{ "json", 'j', NULL, 0, "JSON: the metadata and what was read", 0 },
	{},
};

static error_t info_parse(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'j':
		info_env.json = true;
		break;
	case ARGP_KEY_ARG:
		if (info_env.file)
			argp_error(state, "unexpected argument '%s'", arg);
		info_env.file = arg;
		break;
	case ARGP_KEY_END:
		if (!info_env.file)
			argp_error(state, "which recording? (gmemtrace info FILE)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int do_info(int argc, char **argv)
{
	static const struct argp argp = { info_opts, info_parse, NULL, info_doc, cli__std_children, NULL, NULL };
	const struct gmem_event *recs;
	struct recording *r;
	const json_t *meta, *fmt, *clk, *host, *src, *scen, *recj;
	__u64 first = 0, last = 0, count = 0;
	size_t n, i;
	int st, ret;
	char b1[32];

	info_env = (struct info_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	r = open_recording(info_env.file);
	if (!r)
		return 1;
	while ((st = recording__next(r, &recs, &n)) > 0) {
		for (i = 0; i < n; i++) {
			if (!count || recs[i].ts_ns < first)
				first = recs[i].ts_ns;
			if (recs[i].ts_ns > last)
				last = recs[i].ts_ns;
			count++;
		}
	}
	meta = recording__meta(r);
	if (info_env.json) {
		json_t *o = json_pack("{s:s, s:I, s:i, s:i, s:O, s:I, s:I, s:I, s:I, s:b, s:s, "
				      "s:O*}",
				      "path", info_env.file, "size", (json_int_t)recording__size(r),
				      "version_major", recording__version_major(r),
				      "version_minor", recording__version_minor(r), "meta", meta,
				      "chunks", (json_int_t)recording__chunks_read(r), "records",
				      (json_int_t)count, "first_ts_ns", (json_int_t)first,
				      "last_ts_ns", (json_int_t)last, "complete",
				      recording__complete(r), "error", recording__error(r), "end",
				      recording__end(r));

		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
	} else {
		fmt = json_object_get(meta, "format");
		clk = json_object_get(meta, "clock");
		host = json_object_get(meta, "host");
		src = json_object_get(meta, "source");
		scen = json_object_get(meta, "scenario");
		recj = json_object_get(meta, "recording");
		printf("file       %s, %s\n", info_env.file,
		       human_bytes(recording__size(r), b1, sizeof(b1)));
		printf("format     gmemtrace %u.%u, %lld-byte records, ABI %lld, %s-endian host, "
		       "%s\n",
		       recording__version_major(r), recording__version_minor(r),
		       json_integer_value(json_object_get(fmt, "record_size")),
		       json_integer_value(json_object_get(fmt, "abi")),
		       json_string_value(json_object_get(fmt, "byte_order")) ?: "?",
		       json_string_value(json_object_get(fmt, "encoding")) ?: "?");
		printf("clock      %s; %s = %.9f s\n",
		       json_string_value(json_object_get(clk, "id")) ?: "?",
		       json_string_value(json_object_get(json_object_get(clk, "anchor"),
							 "realtime_utc")) ?: "?",
		       json_integer_value(json_object_get(json_object_get(clk, "anchor"),
							  "monotonic_ns")) / 1e9);
		if (host)
			printf("host       %s: %s %s %s; BTF %lld bytes, crc32 %s\n",
			       json_string_value(json_object_get(host, "nodename")) ?: "?",
			       json_string_value(json_object_get(host, "sysname")) ?: "?",
			       json_string_value(json_object_get(host, "release")) ?: "?",
			       json_string_value(json_object_get(host, "machine")) ?: "?",
			       json_integer_value(json_object_get(json_object_get(host, "btf"),
								  "size")),
			       json_string_value(json_object_get(json_object_get(host, "btf"),
								 "crc32")) ?: "?");
		if (src)
			printf("source     %s\n",
			       json_string_value(json_object_get(src, "kind")) ?: "?");
		if (recj)
			printf("recorded   by %s\n",
			       json_string_value(json_object_get(recj, "tool")) ?: "?");
		if (scen)
			printf("scenario   %s (constructed): %s\n",
			       json_string_value(json_object_get(scen, "name")) ?: "?",
			       json_string_value(json_object_get(scen, "summary")) ?: "");
		printf("kinds      %zu in the dictionary\n",
		       json_array_size(json_object_get(meta, "kinds")));
		printf("chunks     %llu, %llu events, %.2f bytes/event\n",
		       (unsigned long long)recording__chunks_read(r), (unsigned long long)count,
		       count ? (double)recording__size(r) / count : 0.0);
		printf("span       %.9f s\n", count ? (last - first) / 1e9 : 0.0);
		printf("status     %s\n", recording__complete(r) ? "complete (trailer verified)" :
			"INCOMPLETE (see the error)");
	}
	fflush(stdout);
	ret = read_status(info_env.file, r, st);
	recording__close(r);
	return ret;
}

/* ---- features ---------------------------------------------------------------------------- */

static struct features_env {
	bool json;
	bool no_fentry;
	bool verbose;
} ft_env;

static const char features_doc[] =
	"gmemtrace features: which events this kernel lets gmemscope see, on which tier, and "
	"why not the others (the same table as gmemd --probe).\n"
	"\n"
	"Loads and attaches the probes for real, so \"live\" means attached. Needs root or "
	"CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN.\n"
	"\n"
	"USAGE: gmemtrace features [-j] [--no-fentry]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace features\n"
	"  gmemtrace features -j | jq '.events[] | select(.state != \"live\")'";

static const struct argp_option features_opts[] = {
	{ "json", 'j', NULL, 0, "JSON (as gmemd's probe command)", 0 },
	{ "no-fentry", OPT_NO_FENTRY, NULL, 0, "Do not try the fentry tier", 0 },
	{ "verbose", 'v', NULL, 0, "Show libbpf's log", 0 },
	{},
};

static error_t features_parse(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'j':
		ft_env.json = true;
		break;
	case OPT_NO_FENTRY:
		ft_env.no_fentry = true;
		break;
	case 'v':
		ft_env.verbose = true;
		break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int do_features(int argc, char **argv)
{
	static const struct argp argp = { features_opts, features_parse, NULL, features_doc,
					  cli__std_children, NULL, NULL };
	struct loader_opts lo = {};

	ft_env = (struct features_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	lo.verbose = ft_env.verbose;
	lo.no_fentry = ft_env.no_fentry;
	return cli__print_coverage(&lo, ft_env.json, "gmemtrace");
}

/* ---- synth (hidden) ---------------------------------------------------------------------- */

static struct synth_env {
	const char *name;
	const char *out;
	struct scenario_params p;
	bool list;
	bool stats;
	unsigned long long level;
	unsigned long long chunk_records;
} sy_env;

static const char synth_doc[] =
	"gmemtrace scenario: write a constructed scenario as a recording.\n"
	"\n"
	"Scenarios stand for what this machine's kernel cannot produce: conversions, SEV-SNP "
	"RMP and TDX transitions, huge-page splits. They are written through the recorder's "
	"own writer; every record carries the SCENARIO flag, and the file's metadata says how "
	"the scenario was constructed and from which kernel source. This is the way to see "
	"the conversion, SNP and TDX views on a host that has none (synth is the old name).\n"
	"\n"
	"USAGE: gmemtrace scenario SCENARIO -o FILE [--vcpus N] [--events N]\n"
	"       gmemtrace scenario --list\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace scenario --list\n"
	"  gmemtrace scenario private-mem-conversions --vcpus 4 -o pmc.gmtr\n"
	"  gmemtrace scenario snp-boot -o snp.gmtr && gmemtrace report snp.gmtr\n"
	"  gmemtrace scenario synthetic-churn --events 10000000 -o /tmp/c.gmtr --stats";

static const struct argp_option synth_opts[] = {
	{ "output", 'o', "FILE", 0, "Write here", 0 },
	{ "list", OPT_LIST, NULL, 0, "List the scenarios", 0 },
	{ "vcpus", OPT_VCPUS, "N", 0, "private-mem-conversions: vCPUs (default 2)", 0 },
	{ "events", OPT_EVENTS, "N", 0, "synthetic-churn: records (default 1000000)", 0 },
	{ "level", OPT_LEVEL, "1-9", 0, "zlib level (default 6)", 0 },
	{ "chunk-records", OPT_CHUNK, "N", 0, "Records per chunk (default 65536)", 0 },
	{ "stats", OPT_SCAN, NULL, 0, "Print records, bytes and rate on stderr", 0 },
	{},
};

static error_t synth_parse(int key, char *arg, struct argp_state *state)
{
	unsigned long long v;

	switch (key) {
	case 'o':
		sy_env.out = arg;
		break;
	case OPT_LIST:
		sy_env.list = true;
		break;
	case OPT_VCPUS:
		if (cli__parse_ulong(arg, 1, 64, &v))
			argp_error(state, "--vcpus: '%s' is not in [1, 64]", arg);
		sy_env.p.vcpus = v;
		break;
	case OPT_EVENTS:
		if (cli__parse_ulong(arg, 1, 1ull << 40, &v))
			argp_error(state, "--events: '%s' is not a count", arg);
		sy_env.p.events = v;
		break;
	case OPT_LEVEL:
		if (cli__parse_ulong(arg, 1, 9, &sy_env.level))
			argp_error(state, "--level: '%s' is not in [1, 9]", arg);
		break;
	case OPT_CHUNK:
		if (cli__parse_ulong(arg, 1, RECORDING_MAX_CHUNK_RECORDS, &sy_env.chunk_records))
			argp_error(state, "--chunk-records: '%s' is out of range", arg);
		break;
	case OPT_SCAN:
		sy_env.stats = true;
		break;
	case ARGP_KEY_ARG:
		if (sy_env.name)
			argp_error(state, "unexpected argument '%s'", arg);
		sy_env.name = arg;
		break;
	case ARGP_KEY_END:
		if (!sy_env.list && (!sy_env.name || !sy_env.out))
			argp_error(state, "gmemtrace scenario SCENARIO -o FILE (--list to list them)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int synth_emit(void *ctx, const struct gmem_event *e)
{
	return recording_writer__add(ctx, e);
}

static int do_synth(int argc, char **argv)
{
	static const struct argp argp = { synth_opts, synth_parse, NULL, synth_doc, cli__std_children, NULL, NULL };
	struct recording_writer_opts wo = { .threaded = true, .no_host = true };
	struct recording_writer_stats st;
	const struct scenario *s;
	struct recording_writer *w = NULL;
	char err[512] = "";
	json_t *meta, *end;
	__u64 t0;
	size_t i;
	int e;

	sy_env = (struct synth_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	if (sy_env.list) {
		for (i = 0; i < scenario_count; i++)
			printf("%-24s %s\n", scenario_list[i].name, scenario_list[i].summary);
		return 0;
	}
	s = scenario__find(sy_env.name);
	if (!s) {
		fprintf(stderr, "gmemtrace: no scenario '%s' (gmemtrace scenario --list)\n",
			sy_env.name);
		return 1;
	}
	meta = scenario__meta(s, &sy_env.p);
	json_object_set_new(meta, "recording",
			    json_pack("{s:s, s:o}", "tool", "gmemtrace " GMEMTRACE_VERSION " scenario",
				      "argv", argv_json(argc, argv)));
	json_object_set_new(meta, "source", json_pack("{s:s}", "kind", "scenario"));
	wo.meta = meta;
	wo.level = sy_env.level;
	wo.chunk_records = sy_env.chunk_records;
	e = recording_writer__open(&w, sy_env.out, &wo, err, sizeof(err));
	json_decref(meta);
	if (e) {
		fprintf(stderr, "gmemtrace: %s\n", err);
		return 1;
	}
	t0 = now_ns();
	e = scenario__run(s, &sy_env.p, synth_emit, w);
	recording_writer__flush(w);
	recording_writer__stats(w, &st);
	end = json_pack("{s:s, s:I}", "reason", "scenario complete", "records",
			(json_int_t)st.records);
	if (e) {
		recording_writer__abandon(w);
		json_decref(end);
		fprintf(stderr, "gmemtrace: %s: scenario %s failed: %s\n", sy_env.out, s->name,
			strerror(-e));
		return 1;
	}
	e = recording_writer__close(w, end, err, sizeof(err));
	json_decref(end);
	if (e) {
		fprintf(stderr, "gmemtrace: %s\n", err);
		return 1;
	}
	if (sy_env.stats) {
		double secs = (now_ns() - t0) / 1e9;
		struct stat sb;

		stat(sy_env.out, &sb);
		fprintf(stderr, "gmemtrace scenario: %s: %llu records in %.3f s (%.0f records/s), "
			"%lld bytes, %.2f bytes/record\n", sy_env.out,
			(unsigned long long)st.records, secs, st.records / secs,
			(long long)sb.st_size, st.records ? (double)sb.st_size / st.records : 0.0);
	}
	return 0;
}

/* ---- the command table ------------------------------------------------------------------- */

/* ---- whatif ------------------------------------------------------------------------------ */
enum {
	OPT_WI_MAX_ORDER = 2000,
	OPT_WI_WINDOW,
	OPT_WI_SAMPLE,
	OPT_WI_NO_DMAP,
	OPT_WI_VM,
};

#define WHATIF_MAX_POLICIES 16

static struct whatif_env {
	const char *file;
	const char *policies[WHATIF_MAX_POLICIES];
	int npolicies;
	bool json, verbose, no_direct_map;
	unsigned long long max_order, window_ms, sample_ms, vm;
} whatif_env;

static const char whatif_doc[] =
	"gmemtrace whatif: replay a recording through a huge-page model per policy, side by side.\n"
	"\n"
	"Each policy (a name, as gmem-policy list shows, or a path to a .bpf.o) runs in the kernel's BPF VM on a model "
	"of every guest_memfd file of the recording (folio orders per region, shared/private per "
	"page): splits and merges by order, huge coverage over time, the direct-map estimate for "
	"no-direct-map files, merge/split ping-pongs, and the cost of each decision. Needs "
	"CAP_BPF.\n"
	"\n"
	"USAGE: gmemtrace whatif FILE --policy A [--policy B ...] [-j]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace whatif vm.gmtr --policy split4k --policy buddy --policy churn\n"
	"  gmemtrace whatif vm.gmtr -p churn -j --no-direct-map \\\n"
	"      | jq .policies[0].pingpongs";

static const struct argp_option whatif_opts[] = {
	{ "policy", 'p', "NAME|FILE", 0, "A policy (repeat to compare several)", 0 },
	{ "json", 'j', NULL, 0, "JSON output", 0 },
	{ "max-order", OPT_WI_MAX_ORDER, "N", 0, "Largest folio: 9 = 2M (default) to 18 = 1G", 0 },
	{ "window", OPT_WI_WINDOW, "MS", 0, "Region history window (default 1000)", 0 },
	{ "sample", OPT_WI_SAMPLE, "MS", 0, "Coverage series period (default 100)", 0 },
	{ "no-direct-map", OPT_WI_NO_DMAP, NULL, 0, "Count every file as no-direct-map", 0 },
	{ "vm", OPT_WI_VM, "PID", 0, "Only this VM's records (and its files')", 0 },
	{ "verbose", 'v', NULL, 0, "libbpf's and the verifier's log", 0 },
	{},
};

static error_t whatif_parse(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'p':
		if (whatif_env.npolicies == WHATIF_MAX_POLICIES)
			argp_error(state, "at most %d policies", WHATIF_MAX_POLICIES);
		whatif_env.policies[whatif_env.npolicies++] = arg;
		break;
	case 'j':
		whatif_env.json = true;
		break;
	case 'v':
		whatif_env.verbose = true;
		break;
	case OPT_WI_NO_DMAP:
		whatif_env.no_direct_map = true;
		break;
	case OPT_WI_MAX_ORDER:
		if (cli__parse_ulong(arg, 1, GMEM_POLICY_MAX_ORDER, &whatif_env.max_order))
			argp_error(state, "--max-order: 1 to %d", GMEM_POLICY_MAX_ORDER);
		break;
	case OPT_WI_WINDOW:
	case OPT_WI_SAMPLE:
		if (cli__parse_ulong(arg, 1, 86400000, key == OPT_WI_WINDOW ? &whatif_env.window_ms :
									  &whatif_env.sample_ms))
			argp_error(state, "'%s' is not milliseconds", arg);
		break;
	case OPT_WI_VM:
		if (cli__parse_ulong(arg, 1, UINT32_MAX, &whatif_env.vm))
			argp_error(state, "--vm: '%s' is not a pid", arg);
		break;
	case ARGP_KEY_ARG:
		if (whatif_env.file)
			argp_error(state, "unexpected argument '%s'", arg);
		whatif_env.file = arg;
		break;
	case ARGP_KEY_END:
		if (!whatif_env.file)
			argp_error(state, "which recording? (gmemtrace whatif FILE --policy NAME)");
		if (!whatif_env.npolicies)
			argp_error(state, "name at least one policy (--policy split4k --policy buddy)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

/* whatif__run() pulls one record at a time; a recording hands out whole chunks. */
struct whatif_src {
	struct recording *r;
	const struct gmem_event *recs;
	size_t n, i;
	int status;   /* recording__next()'s last: < 0 is a damaged file, reported after */
	__u32 vm;     /* --vm: keep its records and its files' (releases found by a scan have vm 0) */
	__u64 inos[256];
	unsigned int ninos;
};

static bool whatif_keep(struct whatif_src *s, const struct gmem_event *e)
{
	unsigned int k;

	if (!s->vm || e->kind == GMEM_EV_KVM_STAT_DESC)
		return true;
	if (e->vm == s->vm) {
		if ((e->kind == GMEM_EV_FILE_CREATE || e->kind == GMEM_EV_FILE_DISCOVER) &&
		    e->ino && s->ninos < sizeof(s->inos) / sizeof(s->inos[0]))
			s->inos[s->ninos++] = e->ino;
		return true;
	}
	for (k = 0; e->ino && k < s->ninos; k++)
		if (s->inos[k] == e->ino)
			return true;
	return false;
}

static int whatif_next(void *ctx, struct gmem_event *ev)
{
	struct whatif_src *s = ctx;

	for (;;) {
		while (s->i < s->n) {
			const struct gmem_event *e = &s->recs[s->i++];

			if (whatif_keep(s, e)) {
				*ev = *e;
				return 1;
			}
		}
		s->status = recording__next(s->r, &s->recs, &s->n);
		s->i = 0;
		if (s->status <= 0)
			return 0;
	}
}

static int do_whatif(int argc, char **argv)
{
	static const struct argp argp = { whatif_opts, whatif_parse, NULL, whatif_doc, cli__std_children, NULL, NULL };
	struct policy *pols[WHATIF_MAX_POLICIES] = {};
	struct policy_opts po = {};
	struct whatif_opts wo = {};
	struct whatif_src src = {};
	struct whatif_result res;
	char err[1024];
	int i, e, ret = 1;

	whatif_env = (struct whatif_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	po.verbose = whatif_env.verbose;
	for (i = 0; i < whatif_env.npolicies; i++) {
		if (policy__open(&pols[i], whatif_env.policies[i], &po, err, sizeof(err))) {
			fprintf(stderr, "gmemtrace: %s\n", err);
			goto cleanup;
		}
	}
	src.r = open_recording(whatif_env.file);
	if (!src.r)
		goto cleanup;
	src.vm = whatif_env.vm;
	wo.max_order = whatif_env.max_order;
	wo.window_ns = whatif_env.window_ms * 1000000ull;
	wo.sample_ns = whatif_env.sample_ms * 1000000ull;
	wo.no_direct_map = whatif_env.no_direct_map;
	e = whatif__run(&wo, whatif_next, &src, pols, whatif_env.npolicies, &res);
	if (e) {
		fprintf(stderr, "gmemtrace: what-if on %s: %s\n", whatif_env.file, strerror(-e));
		goto cleanup;
	}
	if (whatif_env.json) {
		json_t *j = whatif__json(&res);

		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
	} else {
		whatif__print(stdout, &res);
	}
	whatif__result_free(&res);
	/* a damaged file still gave its readable part; say so and fail */
	ret = read_status(whatif_env.file, src.r, src.status);
cleanup:
	if (src.r)
		recording__close(src.r);
	for (i = 0; i < whatif_env.npolicies; i++)
		policy__close(pols[i]);
	return ret;
}

static int do_help(int argc, char **argv);

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	bool hidden;
};

static const struct cmd cmds[] = {
	{ "record", do_record, "record the event stream to a file (from gmemd or in-process)",
	  false },
	{ "report", do_report, "summarise a recording through gmemd's model (-j: JSON)", false },
	{ "replay", do_replay, "serve a recording as gmemd would: /metrics, control socket",
	  false },
	{ "export", do_export, "convert a recording: perfetto (Chrome trace), csv, jsonl", false },
	{ "cat", do_cat, "print a recording's events as text, one per line", false },
	{ "info", do_info, "a recording's header, chunks and integrity", false },
	{ "features", do_features, "this kernel's probe coverage table (as gmemd --probe)", false },
	{ "whatif", do_whatif, "replay a recording through huge-page policies, side by side", false },
	{ "scenario", do_synth, "write a constructed recording: conversions, SNP, TDX, splits",
	  false },
	{ "help", do_help, "this list; gmemtrace VERB --help for a verb's", false },
	{ "synth", do_synth, "the old name of scenario", true },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"Usage: gmemtrace VERB [OPTION...] [ARGS...]\n"
		"gmemtrace: recordings of guest_memfd activity to replay, report and export.\n"
		"\nUSAGE: gmemtrace VERB [OPTIONS]\n       gmemtrace help [VERB]\n\nVERBS:\n");
	for (i = 0; i < NCMDS; i++)
		if (!cmds[i].hidden)
			fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f, "\nEXAMPLES:\n"
		"  gmemtrace record -o vm.gmtr --duration 30\n"
		"  gmemtrace report vm.gmtr\n"
		"  gmemtrace replay --max vm.gmtr        # then curl 127.0.0.1:9478/metrics\n"
		"  gmemtrace export vm.gmtr --format perfetto -o vm.json\n"
		"  gmemtrace features\n"
		"\nOPTIONS:\n"
		"  -h, --help       this list; gmemtrace VERB --help for a verb's options\n"
		"  -V, --version    print the version\n"
		"\nEXIT STATUS: 0 success; 1 the verb failed, or a recording was damaged (what\n"
		"could be read was still used); 64 bad usage.\n"
		"\nReport bugs to %s.\n",
		argp_program_bug_address);
}

static const struct cmd *find_cmd(const char *name)
{
	const struct cmd *found = NULL;
	size_t i, len = strlen(name);

	for (i = 0; i < NCMDS; i++) {
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
		/* a unique prefix will do, as in bpftool */
		if (len && !strncmp(cmds[i].name, name, len) && !cmds[i].hidden) {
			if (found)
				return NULL;
			found = &cmds[i];
		}
	}
	return found;
}

static int run_cmd(const struct cmd *c, int argc, char **argv)
{
	char name[64];

	/* argp names the program after argv[0] in its messages: "gmemtrace record: ..." */
	snprintf(name, sizeof(name), "gmemtrace %s", c->name);
	argv[0] = name;
	return c->fn(argc, argv);
}

static int do_help(int argc, char **argv)
{
	const struct cmd *c;
	char *hargv[3];

	if (argc < 2) {
		usage(stdout);
		return 0;
	}
	c = find_cmd(argv[1]);
	if (!c || c->fn == do_help) {
		fprintf(stderr, "gmemtrace: no verb '%s' (gmemtrace help)\n", argv[1]);
		return CLI_EX_USAGE;
	}
	hargv[0] = argv[0];
	hargv[1] = "--help";
	hargv[2] = NULL;
	return run_cmd(c, 2, hargv);
}

int main(int argc, char **argv)
{
	const struct cmd *c;

	cli__set_prog_name(argv);
	if (argc < 2) {
		usage(stderr);
		return CLI_EX_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "-?")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		cli__print_version(stdout, "gmemtrace");
		return 0;
	}
	c = find_cmd(argv[1]);
	if (!c) {
		fprintf(stderr, "gmemtrace: unknown or ambiguous verb '%s' (gmemtrace help lists "
			"them)\n", argv[1]);
		return CLI_EX_USAGE;
	}
	return run_cmd(c, argc - 1, argv + 1);
}
