// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * gmemtop - a live terminal dashboard of guest_memfd memory, per VM.
 *
 * Three parts, as in htop: the feed (src/feed.c: gmemd's control socket, or the pipeline run
 * in this process when no gmemd answers), the curses-free screen model (src/top.c: frames,
 * rates, sorting, keys, every line of text), and this file: the views, which only draw, and
 * the one loop that owns timing. A key goes to top__key() and comes back as reactions: redraw,
 * snapshot now, reschedule, (un)subscribe, quit.
 *
 * The first snapshot is taken before the first draw and the second one second later at most,
 * whatever the interval, so rates show within a second of starting.
 */
#include <argp.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <curses.h>
#include <jansson.h>

#include "cli.h"
#include "ctl.h"
#include "feed.h"
#include "source.h"
#include "strbuf.h"
#include "top.h"

#define FIRST_RATE_MS   1000 /* the second snapshot comes this soon at most */
#define EVENT_REDRAW_MS 250  /* a drill-down redraws for new events at most this often */

enum fmt { FMT_TEXT, FMT_CSV, FMT_JSON };

static struct env {
	const char *socket;
	enum feed_mode mode;
	bool batch;
	enum fmt format;
	unsigned long count;
	double delay;
	bool totals;
	bool no_color;
	bool verbose;
	bool no_fentry;
	const char *filter;
	bool once;
	__u32 pid;
	const char *guest;
	bool skip_zero;
	const char *fields;
} env = {
	.mode = FEED_AUTO,
	.delay = 1.0,
};

const char *argp_program_bug_address = "<https://github.com/gmemscope/gmemscope/issues>";
static const char doc[] =
	"gmemtop: a live dashboard of guest_memfd memory, one row per VM.\n"
	"\n"
	"Reads gmemd's control socket when gmemd runs, and otherwise runs gmemscope's probes in "
	"this process (root, or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN). Also views a recording "
	"that gmemtrace replay serves (--socket PATH). One row per VM: files, guest_memfd size "
	"and populated bytes, allocations per second by source, punches, frees, conversions with "
	"p50/p99 latency, direct-map removals, RMP/TDX ops, splits. Enter drills into a VM; h "
	"shows every key.\n"
	"\n"
	"USAGE: gmemtop [--socket PATH | --in-process] [-d SECONDS]\n"
	"               [-p PID | -g NAME] [-z]\n"
	"       gmemtop -b [--format text|csv|json] [-n COUNT] [-t] [-f FIELDS]\n"
	"       gmemtop --once [-d SECONDS] [-f FIELDS] ...\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtop                          # live, from gmemd or in-process\n"
	"  gmemtop -d 2                     # refresh every 2 s\n"
	"  gmemtop --socket /tmp/replay.sock   # a recording served by gmemtrace replay\n"
	"  gmemtop -b -n 10 -d 1            # 10 text snapshots, like kvm_stat -l\n"
	"  gmemtop --once -z                # busy VMs' rates over 1 s (kvm_stat -1)\n"
	"  gmemtop --once -g db01 -f pid,name,popul,uflt,gflt\n"
	"  gmemtop -b --format csv -t       # CSV of totals for a log, until Ctrl-C\n"
	"  gmemtop --once -j | jq '.vms[] | {pid, populated_bytes}'\n"
	"\v"
	"Batch output: text (the table), csv (one row per VM per snapshot, totals and rates), "
	"json (one object per snapshot and line). Rates need two snapshots: with -b the first "
	"has none (\"-\", empty, null); --once waits one interval and prints the second.\n"
	"\n"
	"FIELDS for -f are the text table's columns, named as the totals header names them: "
	"pid, name, files, gmem, popul, uflt, gflt, falc, popl, othr, punch, free, conv, "
	"convp50, convp99, dmap, rmp, tdx, split, exits, huge. -z leaves out a VM whose counter "
	"columns shown (rates, or totals with -t) are all zero; the columns of gauges (files, "
	"gmem, popul, huge) and latencies do not count.\n"
	"\n"
	"EXIT STATUS: 0 quit with q, Ctrl-C, or the snapshots asked for printed; 1 no data "
	"source could be opened (no socket answers, or the probes could not load) or it failed "
	"while running; 64 bad usage.";

enum {
	OPT_FORMAT = 1000,
	OPT_ONCE,
	OPT_LOCAL,
	OPT_NO_COLOR,
	OPT_NO_FENTRY,
	OPT_FILTER,
};


static const struct argp_option opts[] = {
	{ "socket", 's', "PATH", 0,
	  "Read this control socket (gmemd or gmemtrace replay); fail if none answers", 0 },
	{ "in-process", OPT_LOCAL, NULL, 0, "Run the probes here even if gmemd runs", 0 },
	{ "delay", 'd', "SECONDS", 0, "Refresh interval (default 1)", 0 },
	{ "batch", 'b', NULL, 0, "Print snapshots instead of the dashboard", 0 },
	{ "once", OPT_ONCE, NULL, 0,
	  "Batch mode: wait one interval and print one snapshot, with rates (kvm_stat -1)", 0 },
	{ "format", OPT_FORMAT, "FMT", 0, "Batch output: text (default), csv or json", 0 },
	{ "json", 'j', NULL, 0, "Batch output as JSON lines (--format json)", 0 },
	{ "iterations", 'n', "COUNT", 0, "Stop after COUNT snapshots", 0 },
	{ "totals", 't', NULL, 0, "Show totals since start instead of rates", 0 },
	{ "filter", OPT_FILTER, "TEXT", 0, "Only VMs whose name contains TEXT, or these pids", 0 },
	{ "pid", 'p', "PID", 0, "Only the VM of this VMM pid", 0 },
	{ "guest", 'g', "NAME", 0, "Only VMs named exactly NAME (the NAME column)", 0 },
	{ "fields", 'f', "FIELDS", 0, "Batch text: these columns in this order", 0 },
	{ "skip-zero", 'z', NULL, 0, "Leave out VMs whose counters shown are all zero", 0 },
	{ "no-color", OPT_NO_COLOR, NULL, 0, "No colours (also when NO_COLOR is set)", 0 },
	{ "no-fentry", OPT_NO_FENTRY, NULL, 0, "In-process: do not try the fentry tier", 0 },
	{ "verbose", 'v', NULL, 0, "In-process: show libbpf's log", 0 },
	{},
};

/* Options given, for refusing combinations that contradict each other. */
static struct {
	bool socket, local, once, iterations, json, format, batch, filter;
	int format_value;
} given;

static enum top_col fields[TOP_COL_MAX];
static size_t nr_fields;

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	unsigned long ul;
	char *end;

	switch (key) {
	case 's':
		env.socket = arg;
		env.mode = FEED_SOCKET;
		given.socket = true;
		break;
	case OPT_LOCAL:
		env.mode = FEED_LOCAL;
		given.local = true;
		break;
	case 'd':
		errno = 0;
		env.delay = strtod(arg, &end);
		if (errno || end == arg || *end || !(env.delay >= TOP_INTERVAL_MIN) ||
		    env.delay > TOP_INTERVAL_MAX)
			argp_error(state, "--delay: '%s' is not seconds in [%g, %g]", arg,
				   TOP_INTERVAL_MIN, TOP_INTERVAL_MAX);
		break;
	case 'b':
		env.batch = true;
		given.batch = true;
		break;
	case OPT_ONCE:
		env.batch = true;
		env.once = true;
		given.once = true;
		break;
	case 'p':
		errno = 0;
		ul = strtoul(arg, &end, 10);
		if (errno || end == arg || *end || arg[0] == '-' || !ul || ul > UINT32_MAX)
			argp_error(state, "--pid: '%s' is not a pid", arg);
		env.pid = ul;
		break;
	case 'g':
		if (!*arg)
			argp_error(state, "--guest: an empty name");
		env.guest = arg;
		break;
	case 'f': {
		char ferr[512];

		if (top__parse_fields(arg, fields, &nr_fields, ferr, sizeof(ferr)))
			argp_error(state, "%s", ferr);
		env.fields = arg;
		break;
	}
	case 'z':
		env.skip_zero = true;
		break;
	case OPT_FORMAT:
		if (!strcmp(arg, "text"))
			env.format = FMT_TEXT;
		else if (!strcmp(arg, "csv"))
			env.format = FMT_CSV;
		else if (!strcmp(arg, "json"))
			env.format = FMT_JSON;
		else
			argp_error(state, "--format: '%s' is not text, csv or json", arg);
		given.format = true;
		given.format_value = env.format;
		break;
	case 'j':
		env.format = FMT_JSON;
		given.json = true;
		break;
	case 'n':
		errno = 0;
		env.count = strtoul(arg, &end, 10);
		if (errno || end == arg || *end || arg[0] == '-' || !env.count)
			argp_error(state, "--iterations: '%s' is not a count >= 1", arg);
		given.iterations = true;
		break;
	case 't':
		env.totals = true;
		break;
	case OPT_FILTER:
		env.filter = arg;
		given.filter = true;
		break;
	case OPT_NO_COLOR:
		env.no_color = true;
		break;
	case OPT_NO_FENTRY:
		env.no_fentry = true;
		break;
	case 'v':
		env.verbose = true;
		break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	case ARGP_KEY_END:
		/* contradictions are refused, not resolved by whichever came last */
		if (given.socket && given.local)
			argp_error(state, "--socket reads gmemd, --in-process runs the probes here: "
				   "give one");
		if (given.once && given.iterations)
			argp_error(state, "--once is -b -n 1: give --once or -n, not both");
		if (given.json && given.format && given.format_value != FMT_JSON)
			argp_error(state, "-j is --format json: it contradicts --format %s",
				   given.format_value == FMT_CSV ? "csv" : "text");
		if (env.pid && env.guest)
			argp_error(state, "-p picks one VM by pid, -g VMs by name: give one");
		if ((env.pid || env.guest) && given.filter)
			argp_error(state, "--filter also picks VMs: give it or %s, not both",
				   env.pid ? "-p" : "-g");
		if (env.fields && env.format != FMT_TEXT)
			argp_error(state, "-f picks the text table's columns; csv and json carry "
				   "every field: give -f or --format %s",
				   env.format == FMT_CSV ? "csv" : "json");
		if (env.skip_zero && nr_fields) {
			size_t i;
			bool counter = false;

			for (i = 0; i < nr_fields; i++)
				counter |= top__col_is_counter(fields[i]);
			if (!counter)
				argp_error(state, "-z leaves out rows whose counters are zero, but -f "
					   "'%s' shows no counter", env.fields);
		}
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static __u64 now_ms(void)
{
	return source__now_ns() / 1000000;
}

static __s64 mono_to_real_ns(void)
{
	struct timespec rt, mt;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	return ((__s64)rt.tv_sec - mt.tv_sec) * 1000000000ll + (rt.tv_nsec - mt.tv_nsec);
}

/* One snapshot into the model; errors go to the footer (or, in batch mode, to the caller). */
static int take_snapshot(struct feed *feed, struct top *t, char *err, size_t errlen)
{
	json_t *snap = NULL;
	int e;

	e = feed__snapshot(feed, &snap, err, errlen);
	if (!e) {
		e = top__update(t, snap);
		if (e)
			snprintf(err, errlen, "a snapshot without a model");
	}
	json_decref(snap);
	if (e && !env.batch) {
		/* the dashboard reconnects on its next refresh; batch mode stops (run_batch) */
		size_t n = strlen(err);

		snprintf(err + n, errlen - n, " (retrying)");
		top__set_error(t, err);
	}
	return e;
}

static bool events_arrived; /* since the last draw */

static void on_event(void *ctx, const struct gmem_event *e)
{
	top__event(ctx, e);
	events_arrived = true;
}

/*
 * Sleeps until deadline (ms, monotonic) while the feed keeps running: an in-process source
 * must be drained all the time, whatever the refresh interval. Returns 1 on a stop signal.
 */
static int feed_wait(struct feed *feed, int sig_fd, __u64 deadline)
{
	struct pollfd pfd[4];
	int n, nf, timeout, ft;
	__u64 now;

	for (;;) {
		now = now_ms();
		if (now >= deadline)
			return 0;
		timeout = (int)(deadline - now);
		ft = feed__timeout_ms(feed);
		if (ft >= 0 && ft < timeout)
			timeout = ft;
		n = 0;
		pfd[n++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		nf = feed__pollfds(feed, pfd + n, 3);
		if (poll(pfd, n + nf, timeout) < 0 && errno != EINTR)
			return -errno;
		if (pfd[0].revents & POLLIN)
			return 1;
		feed__handle(feed, pfd + n, nf);
	}
}

/* ---- batch ------------------------------------------------------------------------------- */

/* RFC 3339 with the offset, so batch output from hosts in other zones lines up */
static void stamp_now(char *buf, size_t len)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	cli__rfc3339(&ts, buf, len);
}

static int run_batch(struct feed *feed, struct top *t, int sig_fd)
{
	struct strbuf sb = STRBUF_INIT;
	char err[512], stamp[64];
	unsigned long i;
	__u64 next = now_ms();
	json_t *o;
	int e, ret = 0;

	/* --once: a first snapshot to take rates against, one interval, the one printed */
	unsigned long count = env.once ? 2 : env.count, printed = 0;

	for (i = 0; !count || i < count; i++) {
		if (i) {
			e = feed_wait(feed, sig_fd, next);
			if (e)
				break;
		}
		next = now_ms() + (__u64)(top__interval(t) * 1000);
		if (take_snapshot(feed, t, err, sizeof(err))) {
			fprintf(stderr, "gmemtop: %s; batch mode stops here\n", err);
			ret = 1;
			break;
		}
		if (env.once && !i)
			continue;
		strbuf__reset(&sb);
		stamp_now(stamp, sizeof(stamp));
		switch (env.format) {
		case FMT_TEXT:
			if (printed)
				strbuf__putc(&sb, '\n');
			top__print_text(t, stamp, &sb);
			break;
		case FMT_CSV:
			top__print_csv(t, stamp, &sb, printed == 0);
			break;
		case FMT_JSON:
			o = top__to_json(t);
			if (o) {
				char *s;

				json_object_set_new(o, "time", json_string(stamp));
				s = json_dumps(o, JSON_COMPACT);
				if (s)
					strbuf__printf(&sb, "%s\n", s);
				free(s);
				json_decref(o);
			}
			break;
		}
		printed++;
		if (sb.err || fputs(strbuf__str(&sb), stdout) < 0 || fflush(stdout)) {
			if (sb.err)
				fprintf(stderr, "gmemtop: out of memory\n");
			ret = 1;
			break;
		}
	}
	strbuf__release(&sb);
	return ret;
}

/* ---- views: draw only ---------------------------------------------------------------------- */

enum { PAIR_TITLE = 1, PAIR_HEADER, PAIR_SORT, PAIR_BAR, PAIR_ERROR, PAIR_SELECT };

static bool use_color;

static attr_t style_attr(enum top_style s)
{
	switch (s) {
	case TOP_S_TITLE:
		return A_BOLD | (use_color ? COLOR_PAIR(PAIR_TITLE) : 0);
	case TOP_S_HEADER:
		return use_color ? COLOR_PAIR(PAIR_HEADER) : A_REVERSE;
	case TOP_S_BAR:
		return use_color ? COLOR_PAIR(PAIR_BAR) : A_NORMAL;
	case TOP_S_DIM:
		return A_DIM;
	case TOP_S_ERROR:
		return A_BOLD | (use_color ? COLOR_PAIR(PAIR_ERROR) : A_REVERSE);
	default:
		return A_NORMAL;
	}
}

/* A line across the whole width: padded, so reverse video reaches the edge. */
static void draw_line(int y, const struct top_line *l, attr_t extra, bool pad)
{
	attr_t a = style_attr(l->style) | extra;

	attrset(a);
	mvaddnstr(y, 0, l->text, COLS);
	if (pad) {
		int x = strlen(l->text);

		for (; x < COLS; x++)
			mvaddch(y, x, ' ');
	}
	attrset(A_NORMAL);
}

static void draw(struct top *t)
{
	struct top_line lines[TOP_HEADER_ROWS], l;
	const struct top_line *page;
	size_t i, n, first, h;
	int y, hs, hl, cursor;

	erase();
	top__header(t, lines);
	for (y = 0; y < TOP_HEADER_ROWS && y < LINES - 1; y++)
		draw_line(y, &lines[y], 0, false);
	if (top__view(t) == TOP_VIEW_MAIN) {
		top__table_header(t, &l, &hs, &hl);
		if (y < LINES - 1) {
			draw_line(y, &l, 0, true);
			if (hs >= 0 && hs < COLS)
				mvchgat(y, hs, hl, (use_color ? 0 : A_REVERSE) | A_BOLD,
					use_color ? PAIR_SORT : 0, NULL);
		}
		y++;
		first = top__first_row(t);
		h = top__table_rows(t);
		for (i = 0; i < h && first + i < top__nr_rows(t) && y < LINES - 1; i++, y++) {
			bool sel = (long)(first + i) == top__selected(t);

			top__table_row(t, first + i, &l);
			if (sel)
				l.style = TOP_S_NORMAL;
			draw_line(y, &l,
				  sel ? (use_color ? COLOR_PAIR(PAIR_SELECT) : A_REVERSE) : 0, sel);
		}
		if (!top__nr_rows(t) && y < LINES - 1)
			mvaddstr(y, 0, top__nr_vms(t) ? "  (no VM matches the filter)"
						       : "  (no VM uses guest_memfd yet)");
	} else {
		n = top__page(t, &page);
		for (i = top__page_scroll(t); i < n && y < LINES - 1; i++, y++)
			draw_line(y, &page[i], 0, page[i].style == TOP_S_HEADER);
	}
	top__footer(t, &l, &cursor);
	draw_line(LINES - 1, &l, 0, true);
	if (cursor >= 0) {
		curs_set(1);
		move(LINES - 1, cursor);
	} else {
		curs_set(0);
	}
}

static int key_of(int ch)
{
	switch (ch) {
	case KEY_UP: return TOP_KEY_UP;
	case KEY_DOWN: return TOP_KEY_DOWN;
	case KEY_LEFT: return TOP_KEY_LEFT;
	case KEY_RIGHT: return TOP_KEY_RIGHT;
	case KEY_PPAGE: return TOP_KEY_PGUP;
	case KEY_NPAGE: return TOP_KEY_PGDN;
	case KEY_HOME: return TOP_KEY_HOME;
	case KEY_END: return TOP_KEY_END;
	case KEY_ENTER: case '\n': case '\r': return TOP_KEY_ENTER;
	case 27: return TOP_KEY_ESC;
	case KEY_BACKSPACE: case 127: case 8: return TOP_KEY_BACKSPACE;
	case KEY_F(1): return TOP_KEY_F1;
	case KEY_F(4): return TOP_KEY_F4;
	case KEY_F(6): return TOP_KEY_F6;
	case KEY_F(10): return TOP_KEY_F10;
	default: return ch;
	}
}

static void colors_init(void)
{
	use_color = !env.no_color && !getenv("NO_COLOR") && has_colors();
	if (!use_color)
		return;
	start_color();
	use_default_colors();
	init_pair(PAIR_TITLE, COLOR_CYAN, -1);
	init_pair(PAIR_HEADER, COLOR_BLACK, COLOR_GREEN);
	init_pair(PAIR_SORT, COLOR_BLACK, COLOR_CYAN);
	init_pair(PAIR_BAR, COLOR_GREEN, -1);
	init_pair(PAIR_ERROR, COLOR_WHITE, COLOR_RED);
	init_pair(PAIR_SELECT, COLOR_BLACK, COLOR_CYAN);
}

static int run_tui(struct feed *feed, struct top *t, int sig_fd)
{
	__u64 next_snap = 0, last_draw = 0, now;
	bool dirty = true, events_dirty = false, streaming = false;
	unsigned long frames = 0;
	char err[512];
	int ret = 0;
	SCREEN *scr;

	scr = newterm(NULL, stdout, stdin);
	if (scr) {
		char *cup = tigetstr("cup");

		/* a terminal that cannot move the cursor (TERM=dumb) gets text, not a mess */
		if (!cup || cup == (char *)-1) {
			endwin();
			delscreen(scr);
			scr = NULL;
		}
	}
	if (!scr) {
		fprintf(stderr, "gmemtop: terminal '%s' cannot show the dashboard; printing text "
			"snapshots\n", getenv("TERM") ? getenv("TERM") : "(unset)");
		return run_batch(feed, t, sig_fd);
	}
	set_term(scr);
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	curs_set(0);
	colors_init();
	top__resize(t, LINES, COLS);

	for (;;) {
		struct pollfd pfd[4];
		int n = 0, nf, timeout, ft, ch;
		unsigned int r = 0;

		now = now_ms();
		if (!top__paused(t) && now >= next_snap) {
			take_snapshot(feed, t, err, sizeof(err));
			frames++;
			next_snap = now_ms() + (__u64)(top__interval(t) * 1000);
			if (frames == 1 && next_snap > now + FIRST_RATE_MS)
				next_snap = now + FIRST_RATE_MS;
			dirty = true;
		}
		if (events_dirty && now >= last_draw + EVENT_REDRAW_MS)
			dirty = true;
		if (dirty) {
			draw(t);
			refresh();
			dirty = events_dirty = false;
			last_draw = now_ms();
		}
		if (env.count && frames >= env.count)
			break;

		timeout = top__paused(t) ? -1 : (int)(next_snap > now ? next_snap - now : 0);
		ft = feed__timeout_ms(feed);
		if (ft >= 0 && (timeout < 0 || ft < timeout))
			timeout = ft;
		if (events_dirty) {
			int et = (int)(last_draw + EVENT_REDRAW_MS - now);

			if (timeout < 0 || et < timeout)
				timeout = et < 0 ? 0 : et;
		}
		pfd[n++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		nf = feed__pollfds(feed, pfd + n, 2);
		if (poll(pfd, n + nf, timeout) < 0 && errno != EINTR) {
			ret = 1;
			break;
		}
		if (pfd[1].revents & POLLIN)
			break; /* SIGINT, SIGTERM, SIGHUP: a clean stop */
		if (nf) {
			feed__handle(feed, pfd + n, nf);
			if (events_arrived && top__wants_events(t))
				events_dirty = true;
			events_arrived = false;
		}
		/* keys, and KEY_RESIZE after a SIGWINCH interrupted the poll */
		while ((ch = getch()) != ERR) {
			if (ch == KEY_RESIZE) {
				top__resize(t, LINES, COLS);
				r |= TOP_R_REDRAW | TOP_R_CLEAR;
				continue;
			}
			r |= top__key(t, key_of(ch));
			if (r & TOP_R_QUIT)
				break;
		}
		if (r & TOP_R_QUIT)
			break;
		if (r & TOP_R_STREAM) {
			bool want = top__wants_events(t);

			if (want != streaming) {
				if (feed__stream(feed, want ? on_event : NULL, t, err, sizeof(err)))
					top__set_error(t, err);
				streaming = want;
			}
		}
		if (r & TOP_R_REFRESH)
			next_snap = 0;
		else if (r & TOP_R_INTERVAL)
			next_snap = now_ms() + (__u64)(top__interval(t) * 1000);
		if (r & TOP_R_CLEAR)
			clearok(curscr, TRUE);
		if (r & TOP_R_REDRAW)
			dirty = true;
	}
	endwin();
	delscreen(scr);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct argp argp = { opts, parse_arg, NULL, doc, cli__std_children, NULL, NULL };
	struct feed_opts fo = {};
	struct top_opts to = {};
	struct feed *feed = NULL;
	struct top *t = NULL;
	char err[512] = "";
	int e, sig_fd = -1, ret = 1;
	sigset_t mask;

	cli__set_prog_name(argv);
	setlocale(LC_ALL, "");
	e = argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL);
	if (e)
		return CLI_EX_USAGE;
	/* not a terminal: the dashboard has nowhere to go; print what it would show */
	if (!env.batch && (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO)))
		env.batch = true;
	if (env.fields && !env.batch) {
		fprintf(stderr, "gmemtop: -f picks the batch table's columns: add -b or --once "
				"(the dashboard scrolls its columns with < and >)\n");
		return CLI_EX_USAGE;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sig_fd < 0) {
		fprintf(stderr, "gmemtop: signalfd: %s\n", strerror(errno));
		return 1;
	}

	fo.mode = env.mode;
	fo.socket = env.socket;
	fo.verbose = env.verbose;
	fo.no_fentry = env.no_fentry;
	e = feed__open(&feed, &fo, err, sizeof(err));
	if (e) {
		fprintf(stderr, "gmemtop: %s\n", err);
		goto cleanup;
	}
	to.interval_s = env.delay;
	to.totals = env.totals;
	to.name_fn = feed__vm_name;
	to.name_ctx = feed;
	to.mono_to_real_ns = feed__live(feed) ? mono_to_real_ns() : 0;
	to.source = feed__describe(feed);
	to.only_pid = env.pid;
	to.only_name = env.guest;
	to.skip_zero = env.skip_zero;
	memcpy(to.fields, fields, sizeof(fields));
	to.nr_fields = nr_fields;
	t = top__new(&to);
	if (!t) {
		fprintf(stderr, "gmemtop: out of memory\n");
		goto cleanup;
	}
	if (env.filter)
		top__set_filter(t, env.filter);
	ret = env.batch ? run_batch(feed, t, sig_fd) : run_tui(feed, t, sig_fd);
cleanup:
	top__free(t);
	feed__close(feed);
	if (sig_fd >= 0)
		close(sig_fd);
	return ret;
}
