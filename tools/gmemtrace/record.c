// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * record.c - gmemtrace record: the event stream to a file, from gmemd or in-process, with rotation.
 */
#include <argp.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "ctl.h"
#include "kvmstats.h"
#include "loader.h"
#include "model.h"
#include "recording.h"
#include "source.h"
#include "strbuf.h"

#include "gmemtrace.h"
#include "vmname.h"

#define DEFAULT_OUTPUT "gmemtrace.gmtr"

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
	struct u64set named;        /* VMs whose name was looked up (VM_NAME written if known) */
	bool names_from_gmemd;      /* subscribed: gmemd sends VM_NAME as it meets a VM */
	__u32 *kpids;               /* in-process: the VMs whose KVM stats to read */
	size_t nkpids, cap_kpids;
	int err;
	char errmsg[512];
};

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

static void rec_add(struct recorder *r, const struct gmem_event *e);

/*
 * A VM's name, read from /proc the first time one of its records is written, goes in the file
 * right after that record (VM_NAME), so report, replay and Perfetto show "db01", not a pid. A
 * VM gone before its first record was read keeps none.
 */
static void rec_name_vm(struct recorder *r, const struct gmem_event *e)
{
	struct gmem_event parts[VMNAME_PARTS];
	char name[VMNAME_LEN];
	int n, i;

	if (r->names_from_gmemd || !e->vm || e->kind == GMEM_EV_VM_NAME ||
	    e->kind == GMEM_EV_LOST || u64set_has(&r->named, e->vm))
		return;
	u64set_add(&r->named, e->vm);
	vmname__read(NULL, e->vm, name, sizeof(name));
	if (!name[0])
		return;
	n = vmname__pack(name, e->vm, e->ts_ns, parts);
	for (i = 0; i < n; i++)
		rec_add(r, &parts[i]);
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
	rec_name_vm(r, e);
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

/* The next file names the VMs the last one named. */
static int carry_name_cb(const struct model_vm *vm, void *ctx)
{
	struct gmem_event parts[VMNAME_PARTS];
	struct recorder *r = ctx;
	int n, i;

	if (!vm->name[0])
		return 0;
	n = vmname__pack(vm->name, vm->pid, now_ns(), parts);
	for (i = 0; i < n; i++) {
		recording_writer__add(r->w, &parts[i]);
		r->events++;
	}
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
		model__for_each_vm(r->carry, carry_name_cb, r);
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
		const char *name = json_string_value(json_object_get(vm, "name"));

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
		/* the name gmemd read when it met the VM, after its files as for a new VM */
		if (name && *name) {
			struct gmem_event parts[VMNAME_PARTS];
			int n = vmname__pack(name, json_integer_value(json_object_get(vm, "vm")),
					     ts, parts), k;

			for (k = 0; k < n; k++)
				rec_add(r, &parts[k]);
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
	r->names_from_gmemd = true;
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

int do_record(int argc, char **argv)
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
	free(r.named.slots);
	free(r.descs);
	free(r.kpids);
	kvmstats__free(kvm);
	model__free(r.carry);
	json_decref(meta);
	if (sig_fd >= 0)
		close(sig_fd);
	return ret;
}
