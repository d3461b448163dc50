// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * gmemd - the gmemscope daemon: probes -> model -> Prometheus /metrics and a control socket.
 *
 * Threads: the main thread owns the event source, the model and the control socket in one
 * poll loop; libmicrohttpd's thread renders /metrics under the model lock. The source is
 * drained in batches under the lock, so a scrape waits at most one batch.
 */
#include <argp.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <systemd/sd-daemon.h>

#include "cli.h"
#include "ctl.h"
#include "model.h"
#include "policy_host.h"
#include "prom.h"
#include "source.h"
#include "server.h"
#include "kvmstats.h"
#include "vmname.h"
#include "webconfig.h"

/* where make install puts docs/ (the Makefile passes its DOCDIR) */
#ifndef GMEMSCOPE_DOCDIR
#define GMEMSCOPE_DOCDIR "/usr/local/share/doc/gmemscope"
#endif

static struct env {
	const char *listen;
	const char *socket;
	int socket_gid;
	const char *web_config;
	const char *kvm_stats;
	bool probe;
	bool json;
	bool verbose;
	bool no_fentry;
	bool no_http;
	bool procfs_scan;
	bool empty_bodies;
	bool kernel_counts_off;
	unsigned long long ring_mb;
	double scan_interval;
	double retire_after;
	unsigned long long max_file_series;
	const char *policy;
	unsigned long long policy_max_order;
} env = {
	.listen = "127.0.0.1:9477",
	.socket = CTL_DEFAULT_SOCKET,
	.socket_gid = -1,
	.ring_mb = 16,
	.scan_interval = 2.0,
	.retire_after = 60.0,
	.max_file_series = 10000,
};

const char *argp_program_bug_address = "<https://github.com/gmemscope/gmemscope/issues>";
static const char doc[] =
	"gmemd: watch what the kernel does with guest_memfd memory and export it.\n"
	"\n"
	"Attaches gmemscope's BPF probes (the best tier per event that this kernel allows), keeps "
	"a model per VM and per guest_memfd file, and serves Prometheus metrics over HTTP plus a "
	"control socket from which gmemtop and gmemtrace read snapshots and the event stream. "
	"Needs root, or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN (and CAP_DAC_READ_SEARCH for a "
	"uid other than 0); once attached it keeps only CAP_BPF and CAP_PERFMON.\n"
	"\n"
	"USAGE: gmemd [--listen HOST:PORT] [--socket PATH] [--probe] [OPTIONS]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemd                       # metrics on 127.0.0.1:9477/metrics\n"
	"  gmemd --listen [::1]:9477   # IPv6 loopback\n"
	"  gmemd --probe               # what this kernel lets us see, and why not\n"
	"  gmemd --probe -j            # the same as JSON\n"
	"  curl -s localhost:9477/metrics | grep ^gmem_pages_allocated_total\n"
	"  gmemd --policy buddy        # advise on huge-page splits with that policy\n"
	"  gmemd --listen 0.0.0.0:9477 --web.config.file /etc/gmemscope/web.yml\n"
	"\v"
	"The last example serves all interfaces over HTTPS with basic auth. The vm label is the "
	"VMM's pid (kvm->stats_id), gmem is the file's inode, and gmem_vm_info{vm,name} names "
	"each VM. The HELP lines of /metrics explain every metric; " GMEMSCOPE_DOCDIR
	"/design.md lists them all with their labels (the metric contract) and says how the "
	"pieces fit.\n"
	"\n"
	"SIGNALS: SIGINT and SIGTERM stop gmemd cleanly; it removes its socket if the socket is "
	"still its own. SIGHUP reloads --web.config.file (a renewed certificate, changed users); a "
	"file that does not load leaves the running one in place.\n"
	"\n"
	"EXIT STATUS: 0 stopped by a signal, or --probe printed its table; 1 gmemd could not "
	"start (missing capabilities, a probe, socket or port it could not set up) or failed "
	"while running; 64 bad usage.";

enum {
	OPT_NO_FENTRY = 1000,
	OPT_RING,
	OPT_SCAN,
	OPT_RETIRE,
	OPT_MAXFILES,
	OPT_NO_HTTP,
	OPT_SCAN_HOW,
	OPT_POLICY,
	OPT_POLICY_ORDER,
	OPT_SOCKET_GROUP,
	OPT_WEB_CONFIG,
	OPT_KVM_STATS,
	OPT_EMPTY_BODIES,
	OPT_KERNEL_COUNTS,
};

static const struct argp_option opts[] = {
	{ "listen", 'l', "HOST:PORT", 0, "Serve /metrics here (default 127.0.0.1:9477)", 0 },
	{ "socket", 's', "PATH", 0, "Where to serve the control socket, by default " CTL_DEFAULT_SOCKET ", mode 0660", 0 },
	{ "kvm-stats", OPT_KVM_STATS, "default|all|none|NAME,...", 0,
	  "KVM binary stats to export per VM as gmem_kvm_* (read from the stats fds each VMM "
	  "holds, e.g. QEMU's per-vCPU ones; default: exits, halt_exits, io_exits, mmio_exits, "
	  "pf_taken, pf_fixed, pages_4k/2m/1g, nx_lpage_splits). Needs CAP_SYS_PTRACE, which gmemd "
	  "then keeps", 0 },
	{ "web.config.file", OPT_WEB_CONFIG, "FILE", 0,
	  "TLS and basic auth for /metrics, in the Prometheus exporter-toolkit's format "
	  "(tls_server_config: cert_file, key_file; basic_auth_users: NAME: bcrypt hash)", 0 },
	{ "socket-group", OPT_SOCKET_GROUP, "GROUP", 0,
	  "Give the control socket to this group (a name or gid), so that its members "
	  "run gmemtop and gmemtrace record without root (the default is root's group)", 0 },
	{ "probe", 'p', NULL, 0, "Print the probe coverage table and exit", 0 },
	{ "json", 'j', NULL, 0, "JSON output (with --probe)", 0 },
	{ "no-fentry", OPT_NO_FENTRY, NULL, 0, "Do not try the fentry tier", 0 },
	{ "no-http", OPT_NO_HTTP, NULL, 0, "Serve only the control socket", 0 },
	{ "ring-size", OPT_RING, "MIB", 0, "Ring buffer MiB, a power of two (default 16)",
	  0 },
	{ "scan-interval", OPT_SCAN, "SECONDS", 0,
	  "Liveness/discovery scan period (default 2)", 0 },
	{ "retire-after", OPT_RETIRE, "SECONDS", 0,
	  "Keep an exited VM's series this long (default 60)", 0 },
	{ "max-file-series", OPT_MAXFILES, "N", 0,
	  "Cap on per-file series in /metrics (10000)", 0 },
	{ "scan", OPT_SCAN_HOW, "iter|procfs", 0,
	  "How to find live gmem files: BPF iterators (default; /proc if refused) or /proc", 0 },
	{ "policy", OPT_POLICY, "NAME|FILE.bpf.o", 0,
	  "Run this huge-page policy on what gmemd sees and answer \"decide\" (live advice); "
	  "swap it at run time with the control command policy_set", 0 },
	{ "policy-max-order", OPT_POLICY_ORDER, "N", 0,
	  "Largest folio the policy's model has: 9 = 2M (default) to 18 = 1G", 0 },
	{ "kernel-counts", OPT_KERNEL_COUNTS, "auto|off", 0,
	  "auto (default): while no client subscribes and no policy runs, count guest_memfd "
	  "page allocs and frees per file in the kernel and read the counts every 250 ms, "
	  "instead of a ring record per folio (the same totals, cheaper); off: always records",
	  0 },
	{ "verbose", 'v', NULL, 0, "Show libbpf's log", 0 },
	{ NULL, 0, NULL, 0, "Benchmarking:", 1 },
	{ "empty-bodies", OPT_EMPTY_BODIES, NULL, 0,
	  "Attach every probe as usual, each returning at once and counting nothing: "
	  "the floor, what attaching alone costs the host (bench/hostcost measures it)", 1 },
	{},
};

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'l':
		env.listen = arg;
		break;
	case 's':
		env.socket = arg;
		break;
	case OPT_WEB_CONFIG:
		env.web_config = arg;
		break;
	case OPT_KVM_STATS: {
		struct kvmstats *k;
		char why[256];

		if (kvmstats__new(&k, arg, why, sizeof(why)))
			argp_error(state, "%s", why);
		kvmstats__free(k);
		env.kvm_stats = arg;
		break;
	}
	case OPT_SOCKET_GROUP: {
		struct group *g = getgrnam(arg);
		unsigned long long gid;

		if (g)
			env.socket_gid = (int)g->gr_gid;
		else if (!cli__parse_ulong(arg, 0, 0x7fffffff, &gid))
			env.socket_gid = (int)gid;
		else
			argp_error(state, "--socket-group: no group '%s' (see getent group)", arg);
		break;
	}
	case 'p':
		env.probe = true;
		break;
	case 'j':
		env.json = true;
		break;
	case 'v':
		env.verbose = true;
		break;
	case OPT_NO_FENTRY:
		env.no_fentry = true;
		break;
	case OPT_NO_HTTP:
		env.no_http = true;
		break;
	case OPT_EMPTY_BODIES:
		env.empty_bodies = true;
		break;
	case OPT_KERNEL_COUNTS:
		if (!strcmp(arg, "off"))
			env.kernel_counts_off = true;
		else if (strcmp(arg, "auto"))
			argp_error(state, "--kernel-counts: '%s' is not auto or off", arg);
		else
			env.kernel_counts_off = false;
		break;
	case OPT_SCAN_HOW:
		if (!strcmp(arg, "procfs"))
			env.procfs_scan = true;
		else if (strcmp(arg, "iter"))
			argp_error(state, "--scan: '%s' is not iter or procfs", arg);
		break;
	case OPT_RING:
		if (cli__parse_ulong(arg, 1, 1024, &env.ring_mb) || (env.ring_mb & (env.ring_mb - 1)))
			argp_error(state, "--ring-size: '%s' is not a power of two from 1 to 1024",
				   arg);
		break;
	case OPT_SCAN:
		if (cli__parse_double(arg, 0.05, 3600, &env.scan_interval))
			argp_error(state, "--scan-interval: '%s' is not seconds in [0.05, 3600]",
				   arg);
		break;
	case OPT_RETIRE:
		if (cli__parse_double(arg, 0, 86400, &env.retire_after))
			argp_error(state, "--retire-after: '%s' is not seconds in [0, 86400]", arg);
		break;
	case OPT_POLICY:
		env.policy = arg;
		break;
	case OPT_POLICY_ORDER:
		if (cli__parse_ulong(arg, 1, GMEM_POLICY_MAX_ORDER, &env.policy_max_order))
			argp_error(state, "--policy-max-order: '%s' is not an order from 1 to %d",
				   arg, GMEM_POLICY_MAX_ORDER);
		break;
	case OPT_MAXFILES:
		if (cli__parse_ulong(arg, 0, 10000000, &env.max_file_series))
			argp_error(state, "--max-file-series: '%s' is not a count", arg);
		break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

/* Our own health, beside the server's: what the source saw and did. */
struct health {
	struct source *src;
	struct kvmstats *kvm;
	double start_wall; /* process_start_time_seconds */
	/* the slab's count, read on the main loop's 1 s tick, not by each scrape: the read walks
	 * every slab cache, under the kernel's slab mutex */
	__u64 gmem_inodes;
	bool gmem_inodes_ok;
};

/* The process_* series every Prometheus exporter has, for gmemd itself. */
static size_t process_stats(struct health *h, struct prom_stat *stats)
{
	long page = sysconf(_SC_PAGESIZE), tck = sysconf(_SC_CLK_TCK);
	unsigned long long vsz = 0, rss = 0, ut = 0, st = 0;
	struct rlimit rl = {};
	size_t n = 0, fds = 0;
	struct dirent *de;
	char buf[1024];
	FILE *f;
	DIR *d;

	f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%llu %llu", &vsz, &rss) != 2)
			vsz = rss = 0;
		fclose(f);
	}
	f = fopen("/proc/self/stat", "r");
	if (f) {
		if (fgets(buf, sizeof(buf), f)) {
			/* fields after the command's closing parenthesis: utime is the 12th, stime 13th */
			char *p = strrchr(buf, ')');

			if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
					 &ut, &st) != 2)
				ut = st = 0;
		}
		fclose(f);
	}
	d = opendir("/proc/self/fd");
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			fds++;
	if (d)
		closedir(d);
	if (fds)
		fds--; /* the directory's own fd */
	getrlimit(RLIMIT_NOFILE, &rl);
	stats[n++] = (struct prom_stat){ "process_cpu_seconds_total",
					 "User and system CPU time gmemd spent, in seconds.",
					 PROM_STAT_COUNTER, true, 0, tck > 0 ? (double)(ut + st) / tck : 0 };
	stats[n++] = (struct prom_stat){ "process_resident_memory_bytes",
					 "gmemd's resident memory (including the mapped ring buffer).",
					 PROM_STAT_GAUGE, false, rss * page, 0 };
	stats[n++] = (struct prom_stat){ "process_virtual_memory_bytes",
					 "gmemd's virtual memory size.", PROM_STAT_GAUGE, false,
					 vsz * page, 0 };
	stats[n++] = (struct prom_stat){ "process_open_fds", "File descriptors gmemd has open.",
					 PROM_STAT_GAUGE, false, fds, 0 };
	stats[n++] = (struct prom_stat){ "process_max_fds", "gmemd's limit on open files.",
					 PROM_STAT_GAUGE, false, (__u64)rl.rlim_cur, 0 };
	stats[n++] = (struct prom_stat){ "process_start_time_seconds",
					 "When gmemd started, in seconds since the Unix epoch.",
					 PROM_STAT_GAUGE, true, 0, h->start_wall };
	return n;
}

/* /proc/slabinfo's kvm_gmem_inode_cache (6.19+ kernels give guest_memfd inodes a cache). */
static int gmem_inodes(__u64 *n)
{
	static char buf[1 << 18];
	size_t len = 0;
	ssize_t k;
	int fd = open("/proc/slabinfo", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (len < sizeof(buf) - 1 && (k = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += k;
	close(fd);
	if (!len)
		return -EIO;
	buf[len] = 0;
	return source__parse_slab_active(buf, "kvm_gmem_inode_cache", n);
}

static size_t source_stats(void *ctx, struct prom_stat *stats, size_t max)
{
	struct health *h = ctx;
	struct source_stats st;
	__u64 kfds, kerr;
	size_t n = 0;
	int kerrno;

	source__stats(h->src, &st);
	kvmstats__counts(h->kvm, &kfds, &kerr, &kerrno);
	if (max < 16)
		return 0;
	n = process_stats(h, stats);
	stats[n++] = (struct prom_stat){ "gmemscope_kvm_stats_reads_total",
					 "Reads of KVM stats fds (VM and vCPU) held by watched VMMs.",
					 PROM_STAT_COUNTER, false, kfds, 0 };
	stats[n++] = (struct prom_stat){ "gmemscope_kvm_stats_errors_total",
					 "KVM stats fds that could not be copied or read (EPERM: no "
					 "ptrace access to the VMM; see gmemd --kvm-stats).",
					 PROM_STAT_COUNTER, false, kerr, 0 };
	stats[n++] = (struct prom_stat){ "gmemscope_probe_misses_total",
					 "Runs of gmemscope's BPF programs the kernel skipped (a "
					 "program preempted or re-entered on a CPU); each is an event "
					 "not seen, also counted in gmemscope_events_dropped_total.",
					 PROM_STAT_COUNTER, false, st.missed, 0 };
	if (h->gmem_inodes_ok)
		stats[n++] = (struct prom_stat){ "gmemscope_kernel_gmem_inodes",
						 "Live guest_memfd inodes as the kernel's "
						 "kvm_gmem_inode_cache slab counts them (6.19+): a "
						 "cross-check of gmem_files, host-wide; the slab "
						 "counts objects in per-CPU slabs as active, so it may "
						 "run above; read once a second.", PROM_STAT_GAUGE, false, h->gmem_inodes, 0 };
	stats[n++] = (struct prom_stat){ "gmemscope_events_counted_in_kernel_total",
					 "guest_memfd page allocs and frees the probes counted per "
					 "file in the kernel instead of sending a record each "
					 "(--kernel-counts auto, while nobody subscribes); part of "
					 "gmemscope_events_total.", PROM_STAT_COUNTER, false,
					 st.counted_events, 0 };
	stats[n++] = (struct prom_stat){ "gmemscope_kernel_counting",
					 "1 while the probes count page events in the kernel, 0 "
					 "while each is a record (a subscriber, a policy, or "
					 "--kernel-counts off).", PROM_STAT_GAUGE, false,
					 st.counting, 0 };
	stats[n++] = (struct prom_stat){ "gmemscope_scans_total",
					 "Liveness/discovery scans of guest_memfd files run.",
					 PROM_STAT_COUNTER, false, st.scans, 0 };
	stats[n++] = (struct prom_stat){ "gmemscope_last_scan_seconds",
					 "How long the last liveness scan took.", PROM_STAT_GAUGE,
					 true, 0, st.scan_ns_last / 1e9 };
	return n;
}

/* SIGHUP: read --web.config.file again (a renewed certificate, changed users). A file that
 * does not load leaves the running config in place. */
static void reload(struct server *srv, struct web_config **web)
{
	struct web_config *next = NULL, *old = NULL;
	char err[512];

	if (!env.web_config) {
		fprintf(stderr, "gmemd: SIGHUP: nothing to reload (no --web.config.file)\n");
		return;
	}
	sd_notify(0, "RELOADING=1");
	if (webconfig__load(env.web_config, &next, err, sizeof(err))) {
		fprintf(stderr, "gmemd: SIGHUP: keeping the running web config: %s\n", err);
	} else if (server__reload_web(srv, next, &old, err, sizeof(err))) {
		fprintf(stderr, "gmemd: SIGHUP: keeping the running web config: %s\n", err);
		webconfig__free(old);
	} else {
		*web = next;
		webconfig__free(old);
		fprintf(stderr, "gmemd: SIGHUP: reloaded %s\n", env.web_config);
	}
	sd_notify(0, "READY=1");
}

/* KVM's stats of the VMs the model has, live ones only, once a second. */
#define KVM_STATS_INTERVAL_NS 1000000000ull

struct pids {
	__u32 *v;
	size_t n, cap;
};

static int collect_pid(const struct model_vm *vm, void *ctx)
{
	struct pids *p = ctx;

	if (vm->gone || !vm->pid)
		return 0;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		__u32 *nv = realloc(p->v, cap * sizeof(*nv));

		if (!nv)
			return 0;
		p->v = nv;
		p->cap = cap;
	}
	p->v[p->n++] = vm->pid;
	return 0;
}

/* The live VMs' stats fds looked up and read: the pids under the lock, the /proc walk and the
 * reads (1,000 VMs: thousands of readlinks) without it, so a scrape does not wait for them. */
static void kvm_refresh(struct kvmstats *k, struct server *srv)
{
	struct pids p = {};

	server__lock(srv);
	model__for_each_vm(server__model(srv), collect_pid, &p);
	server__unlock(srv);
	kvmstats__refresh(k, p.v, p.n);
	free(p.v);
}

/* The policy host rides on the server: every record, the commands it knows, its family. */
static void ph_apply(void *ctx, const struct gmem_event *e)
{
	policy_host__apply(ctx, e);
}

static json_t *ph_command(void *ctx, const char *cmd, json_t *req)
{
	return policy_host__command(ctx, cmd, req);
}

static void ph_metrics(void *ctx, struct prom_extra *x)
{
	policy_host__metrics(ctx, x);
}

static int open_policy_host(struct policy_host **ph, char *err, size_t errlen)
{
	struct policy_host_opts po = {
		.policy = { .verbose = env.verbose },
		.model = { .max_order = env.policy_max_order },
	};
	const char *why;
	int e;

	e = policy_host__new(ph, &po);
	if (e) {
		snprintf(err, errlen, "out of memory");
		return e;
	}
	if (!env.policy)
		return 0;
	e = policy_host__set(*ph, env.policy, err, errlen);
	if (e)
		return e;
	policy__struct_ops(policy_host__active(*ph), &why);
	fprintf(stderr, "gmemd: policy %s (%s); struct_ops: %s\n",
		policy__name(policy_host__active(*ph)), policy__path(policy_host__active(*ph)), why);
	return 0;
}

/* ---- main -------------------------------------------------------------------------------- */

static int print_probe(void)
{
	struct loader_opts lo = { .verbose = env.verbose, .no_fentry = env.no_fentry };

	return cli__print_coverage(&lo, env.json, "gmemd");
}

/* Around a scan's walk of every task, which touches no model: scrapes go ahead meanwhile. */
static void walk_unlock(void *srv)
{
	server__unlock(srv);
}

static void walk_lock(void *srv)
{
	server__lock(srv);
}

/* Names a VM when the model first meets it (its create or discovery), so a VM gone by the next
 * scrape keeps its name in gmem_vm_info and the snapshots. */
static void name_vm(void *ctx, __u32 pid, char *buf, size_t len)
{
	vmname__read(NULL, pid, buf, len);
}

int main(int argc, char **argv)
{
	static const struct argp argp = { opts, parse_arg, NULL, doc, cli__std_children, NULL, NULL };
	struct server_opts vo = { .name = "gmemd", .socket_gid = -1 };
	struct source_opts so = {};
	struct server *srv = NULL;
	struct source *src = NULL;
	struct policy_host *ph = NULL;
	struct web_config *web = NULL;
	struct kvmstats *kvm = NULL;
	struct health health = {};
	__u64 next_kvm = 0, next_inodes = 0;
	char err[512] = "";
	int e, sig_fd = -1, ret = 1;
	bool notified = false;
	__u64 retired_seen = 0;
	sigset_t mask;

	cli__set_prog_name(argv);
	e = argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL);
	if (e)
		return CLI_EX_USAGE;
	if (env.probe)
		return print_probe();

	e = loader__check_privileges(err, sizeof(err));
	if (e) {
		fprintf(stderr, "gmemd: %s\n", err);
		return 1;
	}
	if (env.web_config) {
		e = webconfig__load(env.web_config, &web, err, sizeof(err));
		if (e) {
			fprintf(stderr, "gmemd: %s\n", err);
			return 1;
		}
	}
	vo.web = web;
	e = kvmstats__new(&kvm, env.kvm_stats, err, sizeof(err));
	if (e) {
		fprintf(stderr, "gmemd: %s\n", err);
		webconfig__free(web);
		return e == -EINVAL ? 2 : 1;
	}
	health.kvm = kvm;
	vo.listen = env.no_http ? NULL : env.listen;
	vo.socket = env.socket;
	vo.socket_gid = env.socket_gid;
	vo.model.retire_after_ns = (__u64)(env.retire_after * 1e9);
	vo.model.max_file_series = env.max_file_series;
	vo.model.name_fn = name_vm;
	e = server__open(&srv, &vo, err, sizeof(err));
	if (e) {
		fprintf(stderr, "gmemd: %s\n", err);
		goto cleanup;
	}
	e = open_policy_host(&ph, err, sizeof(err));
	if (e) {
		fprintf(stderr, "gmemd: %s\n", err);
		goto cleanup;
	}
	server__set_ext(srv, &(struct server_ext){ ph_apply, ph_command, ph_metrics, ph });
	server__set_kvmstats(srv, kvm);
	so.loader.verbose = env.verbose;
	so.loader.no_fentry = env.no_fentry;
	so.loader.empty_bodies = env.empty_bodies;
	so.loader.ring_bytes = env.ring_mb << 20;
	so.scan_interval_ns = (__u64)(env.scan_interval * 1e9);
	so.procfs_scan = env.procfs_scan;
	/* a scan's walk of every task takes milliseconds: scrapes are served meanwhile */
	so.walk_begin = walk_unlock;
	so.walk_end = walk_lock;
	so.walk_ctx = srv;
	server__lock(srv);
	e = source__open(&src, &so, server__source_cb, srv, err, sizeof(err));
	if (!e) {
		server__set_source(srv, src);
		server__set_probe(srv, source__table(src));
		health.src = src;
		{
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			health.start_wall = ts.tv_sec + ts.tv_nsec / 1e9;
		}
		health.gmem_inodes_ok = gmem_inodes(&health.gmem_inodes) == 0;
		server__set_extra(srv, source_stats, &health);
	}
	/* nobody can have subscribed yet: counting in the kernel from the start, unless off or
	 * a policy runs (the main loop decides again after every client's command) */
	if (!e)
		source__set_records(src, env.kernel_counts_off || policy_host__active(ph));
	server__unlock(srv);
	if (e) {
		fprintf(stderr, "gmemd: %s\n", err);
		goto cleanup;
	}

	{
		/* attached: what the rest of the run needs, before the HTTP thread exists (threads
		 * have their own capability sets) */
		struct source_stats st;
		char kept[160];

		source__stats(src, &st);
		e = loader__drop_privileges(st.scan_procfs, kvmstats__enabled(kvm), kept,
					    sizeof(kept));
		if (e) {
			fprintf(stderr, "gmemd: cannot drop capabilities: %s\n", strerror(-e));
			goto cleanup;
		}
		fprintf(stderr, "gmemd: attached; capabilities kept: %s\n", kept);
	}
	{
		char why[256];

		if (cli__gmem_support(why, sizeof(why)) == 0)
			fprintf(stderr, "gmemd: warning: %s\n", why);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL); /* before the HTTP thread exists: it inherits */
	signal(SIGPIPE, SIG_IGN);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	e = server__start(srv, err, sizeof(err));
	if (e) {
		fprintf(stderr, "gmemd: %s\n", err);
		goto cleanup;
	}
	fprintf(stderr, "gmemd: ready; metrics on http%s://%s/metrics%s, control socket %s\n",
		webconfig__cert(web) ? "s" : "", env.no_http ? "(off)" : server__listen_addr(srv),
		webconfig__wants_auth(web) ? " (basic auth)" : "", env.socket);
	if (env.empty_bodies)
		fprintf(stderr, "gmemd: --empty-bodies: every probe returns at once; nothing is "
				"counted but what the scans find\n");
	/* Type=notify: systemd starts what depends on gmemd once the socket and port answer.
	 * A no-op (0) without $NOTIFY_SOCKET; a failure to notify is not a reason to stop. */
	notified = sd_notify(0, "READY=1\nSTATUS=serving metrics and the control socket") > 0;

	for (;;) {
		struct pollfd pfd[2 + 80];
		int n = 0, nsrv;
		__u64 inodes = 0;
		bool inodes_fresh = false, inodes_ok = false, kvm_fresh = false;

		pfd[n++] = (struct pollfd){ .fd = source__fd(src), .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		nsrv = server__pollfds(srv, pfd + n, 80);
		if (poll(pfd, n + nsrv, 100) < 0 && errno != EINTR) {
			fprintf(stderr, "gmemd: poll: %s\n", strerror(errno));
			goto cleanup;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sig_fd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGHUP) {
				reload(srv, &web);
				continue;
			}
			fprintf(stderr, "gmemd: %s, stopping\n", strsignal(si.ssi_signo));
			break;
		}
		if (source__now_ns() >= next_inodes) {
			/* outside the lock: a scrape meanwhile renders the last count */
			inodes_ok = gmem_inodes(&inodes) == 0;
			inodes_fresh = true;
			next_inodes = source__now_ns() + KVM_STATS_INTERVAL_NS;
		}
		if (kvmstats__enabled(kvm) && source__now_ns() >= next_kvm) {
			kvm_refresh(kvm, srv);
			kvm_fresh = true;
			next_kvm = source__now_ns() + KVM_STATS_INTERVAL_NS;
		}
		server__lock(srv);
		if (inodes_fresh) {
			health.gmem_inodes = inodes;
			health.gmem_inodes_ok = inodes_ok;
		}
		e = source__poll(src, 0);
		model__tick(server__model(srv), source__now_ns());
		/* a wave of retired VMs leaves free chunks all over the heap: give them back, so
		 * gmemd's RSS follows the VMs it watches, not the most it ever watched */
		if (model__totals(server__model(srv))->vms_retired != retired_seen) {
			retired_seen = model__totals(server__model(srv))->vms_retired;
			malloc_trim(0);
		}
		policy_host__tick(ph, source__now_ns());
		if (kvm_fresh) {
			kvmstats__publish(kvm);
			/* the samples as records too: the model counts them, gmemtrace records them */
			kvmstats__emit(kvm, source__now_ns(), server__source_cb, srv);
		}
		server__handle(srv, pfd + n, nsrv);
		/* records only while something needs each folio: a subscriber (gmemtop, a
		 * recording) or a policy's model; the totals are the same either way */
		source__set_records(src, env.kernel_counts_off || server__subscribers(srv) ||
						 policy_host__active(ph));
		server__unlock(srv);
		if (e < 0) {
			fprintf(stderr, "gmemd: reading events: %s\n", strerror(-e));
			goto cleanup;
		}
	}
	ret = 0;
cleanup:
	if (notified)
		sd_notify(0, "STOPPING=1");
	/* the server first: its HTTP thread may be rendering from the source's table */
	server__close(srv);
	source__close(src);
	policy_host__free(ph);
	webconfig__free(web);
	kvmstats__free(kvm);
	if (sig_fd >= 0)
		close(sig_fd);
	return ret;
}
