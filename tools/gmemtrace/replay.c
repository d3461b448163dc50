// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * replay.c - gmemtrace replay: a recording served as gmemd would serve it.
 */
#include <argp.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kvmstats.h"
#include "model.h"
#include "recording.h"
#include "server.h"

#include "gmemtrace.h"

#define REPLAY_LISTEN "127.0.0.1:9478"
#define REPLAY_SOCKET "/run/gmemscope/replay.sock"

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

int do_replay(int argc, char **argv)
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
