/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * top.h - gmemtop's screen model, without curses.
 *
 * Frames are built from snapshots in the control protocol's shape (docs/control-protocol.md:
 * {"ts_ns", "model": model__to_json(), "probe", "daemon"}), whether they came from gmemd's
 * socket, a replay, or a model kept in-process: one path, so every mode shows the same numbers.
 * Between two frames a VM's counters give its rates; a reset rebases the totals.
 *
 * Everything the views draw is text made here: the header, the table (frozen PID and NAME,
 * the other columns scrolled horizontally), the drill-down into one VM, the help screen, the
 * footer. Keys go in as TOP_KEY_* or ASCII and come back as a set of reactions (htop's
 * Action/Reaction): what to redraw, whether to take a snapshot now, whether to quit. The loop
 * in tools/gmemtop.c owns timing and curses; nothing here reads a clock or a terminal, so the
 * unit tests drive it with constructed snapshots.
 */
#ifndef GMEM_TOP_H
#define GMEM_TOP_H

#ifdef __bpf__
#error "top.h is user-space only"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <jansson.h>

#include "gmem_events.h"
#include "histo.h"
#include "strbuf.h"
#include "vmname.h"

#define TOP_NAME_LEN    VMNAME_LEN
#define TOP_LINE_MAX    512 /* the widest line a view draws; wider screens are cut here */
#define TOP_FILTER_LEN  64
#define TOP_EVENTS_MAX  256 /* recent events kept for the drill-down */
#define TOP_HEADER_ROWS 4   /* header lines above the table */
#define TOP_INTERVAL_MIN 0.1
#define TOP_INTERVAL_MAX 3600.0

/*
 * Per-VM counters, cumulative as the model counts them. The first TOP_C_MAIN have a column in
 * the main view (total or rate); the rest show in the drill-down and in batch output.
 */
enum top_ctr {
	TOP_C_ALLOC_USER = 0, /* pages, gmem_pages_allocated_total{source} */
	TOP_C_ALLOC_GUEST,
	TOP_C_ALLOC_FALLOC,
	TOP_C_ALLOC_POPULATE,
	TOP_C_ALLOC_OTHER,
	TOP_C_PUNCH,        /* successful hole punches */
	TOP_C_FREED,        /* pages freed */
	TOP_C_CONV,         /* conversions, both directions, ok and error */
	TOP_C_DMAP_REMOVE,  /* direct-map removals, pages */
	TOP_C_RMP,          /* RMP transitions, all ops */
	TOP_C_TDX,          /* TDX transitions, all ops */
	TOP_C_SPLIT,        /* huge folio splits, all orders */
	TOP_C_KVM_EXITS,    /* KVM's own exits stat, summed over vCPUs (gmemd --kvm-stats) */
	TOP_C_MAIN,
	TOP_C_FILES_CREATED = TOP_C_MAIN,
	TOP_C_FILES_RELEASED,
	TOP_C_BINDS,
	TOP_C_INVALIDATED,  /* bytes */
	TOP_C_CONV_PRIVATE_OK,
	TOP_C_CONV_PRIVATE_ERR,
	TOP_C_CONV_SHARED_OK,
	TOP_C_CONV_SHARED_ERR,
	TOP_C_DMAP_RESTORE, /* pages */
	TOP_C_MERGE,
	TOP_C_FAULTS,       /* fentry tier */
	TOP_C_KVM_HALT_EXITS,
	TOP_C_KVM_PF_TAKEN,
	TOP_C_MAX
};

/* Main view columns, in display order. PID and NAME never scroll away. */
enum top_col {
	TOP_COL_PID = 0,
	TOP_COL_NAME,
	TOP_COL_FILES,
	TOP_COL_SIZE,
	TOP_COL_POPULATED,
	TOP_COL_ALLOC_USER, /* TOP_COL_ALLOC_USER + k shows counter k, for k < TOP_C_CONV */
	TOP_COL_ALLOC_GUEST,
	TOP_COL_ALLOC_FALLOC,
	TOP_COL_ALLOC_POPULATE,
	TOP_COL_ALLOC_OTHER,
	TOP_COL_PUNCH,
	TOP_COL_FREED,
	TOP_COL_CONV,
	TOP_COL_CONV_P50,
	TOP_COL_CONV_P99,
	TOP_COL_DMAP,
	TOP_COL_RMP,
	TOP_COL_TDX,
	TOP_COL_SPLIT,
	TOP_COL_KVM_EXITS, /* KVM exits per second */
	TOP_COL_HUGE,      /* share of the guest's mapped memory in 2M and 1G pages */
	TOP_COL_MAX
};
#define TOP_COL_FROZEN 2 /* PID, NAME */

enum top_view {
	TOP_VIEW_MAIN = 0,
	TOP_VIEW_VM,   /* drill-down into one VM */
	TOP_VIEW_HELP,
};

enum top_prompt {
	TOP_PROMPT_NONE = 0,
	TOP_PROMPT_FILTER,
	TOP_PROMPT_INTERVAL,
};

/* Keys beyond ASCII, as the view translates them from curses. */
enum top_key {
	TOP_KEY_UP = 0x1000,
	TOP_KEY_DOWN,
	TOP_KEY_LEFT,
	TOP_KEY_RIGHT,
	TOP_KEY_PGUP,
	TOP_KEY_PGDN,
	TOP_KEY_HOME,
	TOP_KEY_END,
	TOP_KEY_ENTER,
	TOP_KEY_ESC,
	TOP_KEY_BACKSPACE,
	TOP_KEY_F1,
	TOP_KEY_F4,
	TOP_KEY_F6,
	TOP_KEY_F10,
};

/* What a key asks of the loop. */
enum top_reaction {
	TOP_R_NONE = 0,
	TOP_R_REDRAW = 1 << 0,   /* draw again from the current frame */
	TOP_R_REFRESH = 1 << 1,  /* take a snapshot now (resumed, or asked) */
	TOP_R_QUIT = 1 << 2,
	TOP_R_INTERVAL = 1 << 3, /* the interval changed: reschedule */
	TOP_R_STREAM = 1 << 4,   /* top__wants_events() may have changed */
	TOP_R_CLEAR = 1 << 5,    /* repaint every cell (Ctrl-L) */
};

/* Styles a view maps to attributes; plain text ignores them. */
enum top_style {
	TOP_S_NORMAL = 0,
	TOP_S_TITLE,   /* section titles */
	TOP_S_HEADER,  /* column headers */
	TOP_S_BAR,     /* histogram bars */
	TOP_S_DIM,     /* a VM that exited */
	TOP_S_ERROR,
};

struct top_line {
	char text[TOP_LINE_MAX];
	enum top_style style;
};

struct top_file {
	__u64 ino;
	__u64 size_bytes;
	__u64 populated_bytes;
	__u64 pages_allocated;
	__u64 pages_freed;
	__u64 punch_holes;
	__u64 binds;
	bool discovered;
};

/* One vCPU's KVM stats (from the stats fd its VMM holds), and their last rates. */
struct top_vcpu {
	int idx;
	__u64 exits, halt_exits, pf_taken, halt_wait_ns;
	__u32 tid;         /* the thread that runs it (the model's vcpu_threads), 0 = unknown */
	__u64 gmem_faults; /* guest_memfd pages the guest faulted in on that thread */
	double exits_rate, halt_rate, pf_rate, halted; /* halted: share of the interval */
	double gmem_rate;
	bool rated;
};

/* The model's (vCPU, thread) pairs of a VM, joined to the KVM stats rows by index. */
struct top_vthread {
	int idx;
	__u32 tid;
	__u64 gmem_faults;
};

struct top_vm {
	__u32 pid;
	bool gone;
	bool rated; /* rate[] holds the last interval's rates */
	char name[TOP_NAME_LEN];
	__u64 files;
	__u64 size_bytes;      /* sum over live files */
	__u64 populated_bytes; /* sum over live files */
	__u64 raw[TOP_C_MAX];  /* as the model counts */
	__u64 base[TOP_C_MAX]; /* raw at the last reset */
	double rate[TOP_C_MAX];
	__u64 conv_p50_ns; /* kernel part, both directions, since the last reset */
	__u64 conv_p99_ns;
	__u64 conv_count;
	/* since the last reset: kernel part, end to end; [GMEM_TO_SHARED], [GMEM_TO_PRIVATE] */
	struct histo conv[GMEM_DIR_MAX];
	struct histo e2e[GMEM_DIR_MAX];
	struct histo conv_base[GMEM_DIR_MAX];
	struct histo e2e_base[GMEM_DIR_MAX];
	struct top_file *files_list;
	size_t nr_files;
	bool kvm;              /* KVM stats came for this VM */
	bool kvm_vm_stats;     /* ... including the VM's own (pages_4k/2m/1g) */
	__u64 kvm_pages[3];    /* pages_4k, pages_2m, pages_1g: how the guest is mapped */
	struct top_vcpu *vcpus;
	size_t nr_vcpus;
	struct top_vthread *threads;
	size_t nr_threads;
};

struct top_host {
	__u64 ts_ns;           /* the snapshot's clock */
	__u64 dmap[3];         /* host DirectMap 4k, 2M, 1G bytes */
	__u64 dmap_base[3];    /* at the first frame or the last reset */
	__u64 events;
	__u64 events_base;
	__u64 drops;
	__u64 drops_base;
	double events_rate;
	bool rated;
	double interval_s; /* between the last two frames */
	unsigned int probes_live, probes_unavailable, probes_failed;
	bool fentry;
	char server[48];  /* "gmemd", "gmemtrace replay", "in-process" */
	__u32 server_pid;
	bool live;
};

/* Looks up a VM's display name; may be NULL (names stay "?"). */
typedef void (*top_name_fn)(void *ctx, __u32 pid, char *buf, size_t len);

struct top_opts {
	double interval_s;   /* refresh interval; 0 = 1 s */
	bool totals;         /* start showing totals instead of rates */
	top_name_fn name_fn;
	void *name_ctx;
	__s64 mono_to_real_ns; /* added to an event's ts_ns for wall-clock times; 0 = show raw */
	const char *source;    /* how we read, for the header: "socket /run/...", "in-process" */
	/* kvm_stat's selections, on top of the interactive filter */
	__u32 only_pid;         /* -p: this VM only; 0 = any */
	const char *only_name;  /* -g: VMs named exactly this; NULL = any */
	bool skip_zero;         /* -z: leave out rows whose counter columns shown are all 0 */
	/* -f: the batch text table's columns, in this order; nr_fields 0 = every column */
	enum top_col fields[TOP_COL_MAX];
	size_t nr_fields;
};

struct top;

struct top *top__new(const struct top_opts *opts);
void top__free(struct top *t);

/*
 * A new frame from a snapshot ({"ts_ns", "model", "probe", "daemon"}; "ok" is not needed).
 * snap is borrowed. 0, or -EINVAL for a snapshot without a model (the last frame stays).
 */
/* Share (percent) of a VM's KVM-mapped guest memory in 2M and 1G pages, -1 when unknown. */
double top__huge_percent(const struct top_vm *v);
int top__update(struct top *t, json_t *snap);
/* Rebase every total (and latency histogram) to zero at the current frame. */
void top__reset(struct top *t);
/* An error to show in the footer until the next good frame (NULL clears). */
void top__set_error(struct top *t, const char *msg);

/* Keys: ASCII or TOP_KEY_*; returns enum top_reaction bits. */
unsigned int top__key(struct top *t, int key);
/* The screen the views draw on; clamps scrolling. */
void top__resize(struct top *t, int rows, int cols);

/* A raw record from the stream; kept when it belongs to the VM drilled into. */
void top__event(struct top *t, const struct gmem_event *ev);
bool top__wants_events(const struct top *t);

/* State the loop and the views read. */
double top__interval(const struct top *t);
void top__set_interval(struct top *t, double seconds);
bool top__paused(const struct top *t);
enum top_view top__view(const struct top *t);
size_t top__frames(const struct top *t);
const struct top_host *top__host(const struct top *t);
size_t top__nr_vms(const struct top *t);         /* all VMs in the frame */
size_t top__nr_rows(const struct top *t);        /* after the filter */
const struct top_vm *top__row(const struct top *t, size_t i); /* sorted, filtered */
const struct top_vm *top__vm(const struct top *t, __u32 pid);
long top__selected(const struct top *t);          /* row index, -1 when none */
size_t top__first_row(const struct top *t);       /* first row on screen */
size_t top__table_rows(const struct top *t);      /* table rows that fit */
const char *top__filter(const struct top *t);
/* What the f key sets: a name substring, or pids separated by commas; "" = every VM. */
void top__set_filter(struct top *t, const char *filter);
enum top_col top__sort_col(const struct top *t);
bool top__sort_desc(const struct top *t);

/* Text for the views, cut to the screen width. */
void top__header(const struct top *t, struct top_line lines[TOP_HEADER_ROWS]);
/* The column header; hl_start and hl_len: where the sort column is, to highlight. */
void top__table_header(const struct top *t, struct top_line *line, int *hl_start, int *hl_len);
void top__table_row(const struct top *t, size_t row, struct top_line *line);
void top__footer(const struct top *t, struct top_line *line, int *cursor);
/* The drill-down or help screen as lines (the view shows rows [scroll, scroll + height)). */
size_t top__page(struct top *t, const struct top_line **lines);
size_t top__page_scroll(const struct top *t);

/* Batch output of the current frame: every VM (filtered, sorted), every column. */
/* stamp: the caller's time of day for the frame, printed as is. */
int top__print_text(const struct top *t, const char *stamp, struct strbuf *out);
int top__print_csv(const struct top *t, const char *stamp, struct strbuf *out, bool header);
json_t *top__to_json(const struct top *t);

/*
 * -f's list ("pid,name,uflt"): column names as the totals header prints them, any case, with
 * a rate's "/s" or HUGE%'s "%" allowed. 0, or -EINVAL with err naming the bad field and every
 * valid one (a field twice, or an empty list, is bad too).
 */
int top__parse_fields(const char *list, enum top_col *out, size_t *n, char *err, size_t errlen);
/* True when a column shows a counter (a rate, or a total with -t): what -z looks at. */
bool top__col_is_counter(enum top_col c);

/* Helpers, exposed for tests. */
/* Bytes as "0", "512B", "96K", "4M", "1.5G": exact whenever a unit divides it and 5 digits
 * hold it. */
void top__fmt_bytes(char *buf, size_t len, __u64 bytes);
/* Counts: exact up to width digits, then "12.3k", "4.5M". */
void top__fmt_count(char *buf, size_t len, __u64 v, int width);
/* Rates per second: "0", "0.5", "12", "1.2k". */
void top__fmt_rate(char *buf, size_t len, double r);
/* Nanoseconds: "850ns", "1.2us", "35ms", "2.0s". */
void top__fmt_ns(char *buf, size_t len, __u64 ns);
void top__event_text(const struct gmem_event *ev, __s64 mono_to_real_ns, char *buf,
		     size_t len);
const char *top__col_name(enum top_col col, bool totals);
const char *top__ctr_key(enum top_ctr c);

#endif /* GMEM_TOP_H */
