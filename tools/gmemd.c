// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * gmemd - the gmemscope daemon: probes -> model -> Prometheus /metrics and a control socket.
 *
 * Threads: the main thread owns the event source, the model and the control socket in one
 * poll loop; libmicrohttpd's thread renders /metrics under the model lock. The source is
 * drained in batches under the lock, so a scrape waits at most one batch.
 */
#include <argp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "ctl.h"
#include "model.h"
#include "prom.h"
#include "source.h"
#include "strbuf.h"

#define GMEMD_VERSION "0.1.0"
#define MAX_CLIENTS 64
#define CLIENT_OUT_MAX (8u << 20) /* per subscriber, beyond which its records are dropped */

static struct env {
	const char *listen;
	const char *socket;
	bool probe;
	bool json;
	bool verbose;
	bool no_fentry;
	bool no_http;
	unsigned long ring_mb;
	double scan_interval;
	double retire_after;
	unsigned long max_file_series;
} env = {
	.listen = "127.0.0.1:9477",
	.socket = CTL_DEFAULT_SOCKET,
	.ring_mb = 16,
	.scan_interval = 2.0,
	.retire_after = 60.0,
	.max_file_series = 10000,
};

const char *argp_program_version = "gmemd " GMEMD_VERSION;
const char *argp_program_bug_address = "<https://github.com/gmemscope/gmemscope/issues>";
static const char doc[] =
	"gmemd: watch what the kernel does with guest_memfd memory and export it.\n"
	"\n"
	"Attaches gmemscope's BPF probes (the best tier per event that this kernel\n"
	"allows), keeps a model per VM and per guest_memfd file, and serves\n"
	"Prometheus metrics over HTTP plus a control socket from which gmemtop and\n"
	"gmemtrace read snapshots and the event stream. Needs root or\n"
	"CAP_BPF+CAP_PERFMON.\n"
	"\n"
	"USAGE: gmemd [--listen HOST:PORT] [--socket PATH] [--probe] [OPTIONS]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemd                       # metrics on 127.0.0.1:9477/metrics\n"
	"  gmemd --listen [::1]:9477   # IPv6 loopback\n"
	"  gmemd --probe               # what this kernel lets us see, and why not\n"
	"  gmemd --probe -j            # the same as JSON\n"
	"  curl -s localhost:9477/metrics | grep ^gmem_pages_allocated_total\n"
	"\v"
	"The vm label is the VMM's pid (kvm->stats_id), gmem is the file's inode.\n"
	"Metric names: see DESIGN.md or the HELP lines of /metrics.";

enum {
	OPT_NO_FENTRY = 1000,
	OPT_RING,
	OPT_SCAN,
	OPT_RETIRE,
	OPT_MAXFILES,
	OPT_NO_HTTP,
};

static const struct argp_option opts[] = {
	{ "listen", 'l', "HOST:PORT", 0, "Serve /metrics here (default 127.0.0.1:9477)", 0 },
	{ "socket", 's', "PATH", 0, "Control socket (default " CTL_DEFAULT_SOCKET ")", 0 },
	{ "probe", 'p', NULL, 0, "Print the probe coverage table and exit", 0 },
	{ "json", 'j', NULL, 0, "JSON output (with --probe)", 0 },
	{ "no-fentry", OPT_NO_FENTRY, NULL, 0, "Do not try the fentry tier", 0 },
	{ "no-http", OPT_NO_HTTP, NULL, 0, "Serve only the control socket", 0 },
	{ "ring-size", OPT_RING, "MIB", 0, "Ring buffer size in MiB, a power of two (default 16)",
	  0 },
	{ "scan-interval", OPT_SCAN, "SECONDS", 0,
	  "Liveness/discovery scan period (default 2)", 0 },
	{ "retire-after", OPT_RETIRE, "SECONDS", 0,
	  "Keep an exited VM's series this long (default 60)", 0 },
	{ "max-file-series", OPT_MAXFILES, "N", 0,
	  "Cap on per-file series in /metrics (default 10000)", 0 },
	{ "verbose", 'v', NULL, 0, "Show libbpf's log", 0 },
	{},
};

static int parse_double(const char *arg, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_ulong(const char *arg, unsigned long lo, unsigned long hi, unsigned long *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'l':
		env.listen = arg;
		break;
	case 's':
		env.socket = arg;
		break;
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
	case OPT_RING:
		if (parse_ulong(arg, 1, 1024, &env.ring_mb) || (env.ring_mb & (env.ring_mb - 1)))
			argp_error(state, "--ring-size: '%s' is not a power of two from 1 to 1024",
				   arg);
		break;
	case OPT_SCAN:
		if (parse_double(arg, 0.05, 3600, &env.scan_interval))
			argp_error(state, "--scan-interval: '%s' is not seconds in [0.05, 3600]",
				   arg);
		break;
	case OPT_RETIRE:
		if (parse_double(arg, 0, 86400, &env.retire_after))
			argp_error(state, "--retire-after: '%s' is not seconds in [0, 86400]", arg);
		break;
	case OPT_MAXFILES:
		if (parse_ulong(arg, 0, 10000000, &env.max_file_series))
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

/* ---- daemon state ------------------------------------------------------------------------ */

struct client {
	int fd;
	bool subscribed;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	__u64 dropped; /* records this subscriber missed, reported as LOST when it catches up */
};

static struct gmemd {
	pthread_mutex_t lock;
	struct model *model;
	struct source *src;
	struct MHD_Daemon *mhd;
	int http_fd, ctl_fd, sig_fd;
	struct client clients[MAX_CLIENTS];
	int nclients;
	__u64 start_ns;
	__u64 scrapes, http_bad;
} d = { .lock = PTHREAD_MUTEX_INITIALIZER, .http_fd = -1, .ctl_fd = -1, .sig_fd = -1 };

static void client_queue(struct client *c, const void *data, size_t len)
{
	size_t pending = c->out_len - c->out_off;
	char *nb;

	if (pending + len > CLIENT_OUT_MAX) {
		c->dropped++;
		return;
	}
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	nb = realloc(c->out, c->out_len + len);
	if (!nb) {
		c->dropped++;
		return;
	}
	c->out = nb;
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
}

/* Called by the source for every record, with d.lock held. */
static void on_event(void *ctx, const struct gmem_event *e)
{
	int i;

	model__apply(d.model, e);
	for (i = 0; i < d.nclients; i++) {
		struct client *c = &d.clients[i];

		if (!c->subscribed)
			continue;
		if (c->dropped && c->out_len - c->out_off + 2 * sizeof(*e) <= CLIENT_OUT_MAX) {
			struct gmem_event lost = { .ts_ns = e->ts_ns, .kind = GMEM_EV_LOST,
						   .a = c->dropped, .flags = GMEM_EVF_SYNTH };

			c->dropped = 0;
			client_queue(c, &lost, sizeof(lost));
		}
		client_queue(c, e, sizeof(*e));
	}
}

/* ---- HTTP -------------------------------------------------------------------------------- */

static bool wants_openmetrics(struct MHD_Connection *conn)
{
	const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept");

	return accept && strstr(accept, "application/openmetrics-text");
}

/* The exporter's view of what the model does not own: probe coverage and our own health. */
struct extra_buf {
	struct prom_probe_row rows[PROBE_MAX_EVENTS];
	struct prom_stat stats[8];
};

static void fill_extra(struct prom_extra *x, struct extra_buf *b)
{
	const struct probe_table *t = source__table(d.src);
	struct source_stats st;
	size_t n = 0;
	int i;

	for (i = 0; i < t->n; i++) {
		b->rows[i].event = t->rows[i].event;
		b->rows[i].tier = probe__tier_str(t->rows[i].tier);
		b->rows[i].state = probe__state_str(t->rows[i].state);
	}
	source__stats(d.src, &st);
	b->stats[n++] = (struct prom_stat){ "gmemscope_scrapes_total", "Scrapes of /metrics served.",
					    PROM_STAT_COUNTER, false, d.scrapes, 0 };
	b->stats[n++] = (struct prom_stat){ "gmemscope_scans_total",
					    "Liveness/discovery scans of guest_memfd files run.",
					    PROM_STAT_COUNTER, false, st.scans, 0 };
	b->stats[n++] = (struct prom_stat){ "gmemscope_last_scan_seconds",
					    "How long the last liveness scan took.", PROM_STAT_GAUGE,
					    true, 0, st.scan_ns_last / 1e9 };
	b->stats[n++] = (struct prom_stat){ "gmemscope_uptime_seconds", "Seconds since gmemd started.",
					    PROM_STAT_GAUGE, true, 0,
					    (source__now_ns() - d.start_ns) / 1e9 };
	b->stats[n++] = (struct prom_stat){ "gmemscope_http_bad_requests_total",
					    "HTTP requests refused (bad method or path).",
					    PROM_STAT_COUNTER, false,
					    __atomic_load_n(&d.http_bad, __ATOMIC_RELAXED), 0 };
	x->probes = b->rows;
	x->nr_probes = t->n;
	x->stats = b->stats;
	x->nr_stats = n;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned int status,
				  const char *text, const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle_http(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version,
				   const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct strbuf sb = STRBUF_INIT;
	struct prom_extra x = {};
	struct extra_buf xb;
	struct MHD_Response *r;
	enum MHD_Result ret;
	bool om;
	char *body;
	size_t len;
	int err;

	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		__atomic_add_fetch(&d.http_bad, 1, __ATOMIC_RELAXED);
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n",
				  "text/plain");
	}
	if (!strcmp(url, "/")) {
		return reply_text(conn, MHD_HTTP_OK,
				  "<html><head><title>gmemd</title></head><body><h1>gmemd</h1>"
				  "<p><a href=\"/metrics\">/metrics</a></p></body></html>\n",
				  "text/html; charset=utf-8");
	}
	if (strcmp(url, "/metrics")) {
		__atomic_add_fetch(&d.http_bad, 1, __ATOMIC_RELAXED);
		return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n",
				  "text/plain");
	}
	om = wants_openmetrics(conn);
	pthread_mutex_lock(&d.lock);
	d.scrapes++;
	fill_extra(&x, &xb);
	err = prom__render(d.model, &x, &sb, om);
	pthread_mutex_unlock(&d.lock);
	body = strbuf__detach(&sb, &len);
	if (err || !body) {
		free(body);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed\n",
				  "text/plain");
	}
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type",
				om ? "application/openmetrics-text; version=1.0.0; charset=utf-8" :
				     "text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* Bind ourselves so "address in use" and bad addresses get a clear message. */
static int listen_tcp(const char *hostport, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai, *p;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	const char *port;
	int fd = -1, e, one = 1;

	if (!colon || colon == hostport || !colon[1] || (size_t)(colon - hostport) >= sizeof(host)) {
		snprintf(err, errlen, "--listen '%s': expected HOST:PORT, e.g. 127.0.0.1:9477",
			 hostport);
		return -EINVAL;
	}
	memcpy(host, hostport, colon - hostport);
	host[colon - hostport] = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	port = colon + 1;
	e = getaddrinfo(host, port, &hints, &ai);
	if (e) {
		snprintf(err, errlen, "--listen '%s': %s", hostport, gai_strerror(e));
		return -EINVAL;
	}
	e = 0;
	for (p = ai; p; p = p->ai_next) {
		fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, p->ai_addr, p->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s%s", hostport, strerror(e),
			 e == EADDRINUSE ? " (another gmemd? pick another port with --listen)" : "");
		return -(e ? e : EINVAL);
	}
	return fd;
}

/* ---- control socket ---------------------------------------------------------------------- */

static int listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)], *slash;
	int fd, e, probe;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "--socket '%s': path too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir(dir, 0755);
	}
	/* a live gmemd answers on it; a stale file from a crash does not */
	probe = ctl__connect(path);
	if (probe >= 0) {
		close(probe);
		snprintf(err, errlen, "control socket %s is in use by a running gmemd (stop it, "
			 "or pick another path with --socket)", path);
		return -EADDRINUSE;
	}
	unlink(path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16)) {
		e = errno;
		close(fd);
		snprintf(err, errlen, "cannot create control socket %s: %s", path, strerror(e));
		return -e;
	}
	chmod(path, 0600);
	return fd;
}

static void client_close(int i)
{
	struct client *c = &d.clients[i];

	close(c->fd);
	free(c->in);
	free(c->out);
	d.clients[i] = d.clients[--d.nclients];
	memset(&d.clients[d.nclients], 0, sizeof(struct client));
}

static void reply_json(struct client *c, json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);

	if (text) {
		client_queue(c, text, strlen(text));
		client_queue(c, "\n", 1);
		free(text);
	}
	json_decref(o);
}

static json_t *daemon_json(void)
{
	struct source_stats st;

	source__stats(d.src, &st);
	return json_pack("{s:s, s:i, s:f, s:I, s:I, s:I, s:I, s:I, s:I}", "version", GMEMD_VERSION,
			 "pid", (int)getpid(), "uptime_seconds",
			 (source__now_ns() - d.start_ns) / 1e9, "records", (json_int_t)st.records,
			 "synthesized", (json_int_t)st.synthesized, "dropped",
			 (json_int_t)st.dropped, "scans", (json_int_t)st.scans, "scrapes",
			 (json_int_t)d.scrapes, "clients", (json_int_t)d.nclients);
}

static void handle_request(struct client *c, const char *line)
{
	json_error_t jerr;
	json_t *req = json_loads(line, 0, &jerr), *snap;
	const char *cmd;

	if (!req || !json_is_object(req)) {
		reply_json(c, json_pack("{s:b, s:s}", "ok", 0, "error",
					"bad request: expected one JSON object per line"));
		json_decref(req);
		return;
	}
	cmd = json_string_value(json_object_get(req, "cmd"));
	if (!cmd) {
		reply_json(c, json_pack("{s:b, s:s}", "ok", 0, "error", "bad request: no \"cmd\""));
	} else if (!strcmp(cmd, "hello")) {
		reply_json(c, json_pack("{s:b, s:i, s:i, s:s, s:s, s:i}", "ok", 1, "proto",
					CTL_PROTO_VERSION, "abi", GMEM_ABI_VERSION, "server", "gmemd",
					"version", GMEMD_VERSION, "record_size",
					(int)sizeof(struct gmem_event)));
	} else if (!strcmp(cmd, "snapshot")) {
		snap = model__to_json(d.model);
		reply_json(c, json_pack("{s:b, s:I, s:o, s:o, s:o}", "ok", 1, "ts_ns",
					(json_int_t)source__now_ns(), "model",
					snap ? snap : json_null(), "probe",
					ctl__probe_json(source__table(d.src)), "daemon",
					daemon_json()));
	} else if (!strcmp(cmd, "probe")) {
		reply_json(c, json_pack("{s:b, s:o}", "ok", 1, "probe",
					ctl__probe_json(source__table(d.src))));
	} else if (!strcmp(cmd, "scan")) {
		/* drain + rescan now: lets a client wait for releases deterministically */
		source__scan(d.src);
		reply_json(c, json_pack("{s:b}", "ok", 1));
	} else if (!strcmp(cmd, "subscribe")) {
		reply_json(c, json_pack("{s:b, s:s, s:i, s:i}", "ok", 1, "stream", "gmem_event",
					"record_size", (int)sizeof(struct gmem_event), "abi",
					GMEM_ABI_VERSION));
		c->subscribed = true;
	} else {
		reply_json(c, json_pack("{s:b, s:s}", "ok", 0, "error", "unknown command"));
	}
	json_decref(req);
}

/* Returns false when the client must be closed. */
static bool client_read(struct client *c)
{
	char buf[4096];
	ssize_t n = read(c->fd, buf, sizeof(buf));
	char *nl, *nb;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return false;
	if (n < 0 || c->subscribed)
		return true; /* a subscriber's further input is ignored */
	if (c->in_len + n > CTL_MAX_LINE)
		return false;
	nb = realloc(c->in, c->in_len + n + 1);
	if (!nb)
		return false;
	c->in = nb;
	memcpy(c->in + c->in_len, buf, n);
	c->in_len += n;
	c->in[c->in_len] = 0;
	while (!c->subscribed && (nl = memchr(c->in, '\n', c->in_len))) {
		size_t used = nl - c->in + 1;

		*nl = 0;
		handle_request(c, c->in);
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
		c->in[c->in_len] = 0;
	}
	return true;
}

static bool client_write(struct client *c)
{
	ssize_t n;

	if (c->out_off == c->out_len)
		return true;
	n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	c->out_off += n;
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	return true;
}

static void accept_clients(void)
{
	int fd;

	while ((fd = accept4(d.ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (d.nclients == MAX_CLIENTS) {
			const char *busy = "{\"ok\":false,\"error\":\"too many clients\"}\n";

			if (write(fd, busy, strlen(busy)) < 0) {
				/* nothing more to tell it */
			}
			close(fd);
			continue;
		}
		d.clients[d.nclients++] = (struct client){ .fd = fd };
	}
}

/* ---- main -------------------------------------------------------------------------------- */

static int print_probe(void)
{
	struct loader_opts lo = { .verbose = env.verbose, .no_fentry = env.no_fentry };
	struct loader *l = NULL;
	char err[512] = "";
	int e;

	/* load and attach for real: "live" means attached, not merely present */
	e = loader__open(&l, &lo, err, sizeof(err));
	if (e) {
		fprintf(stderr, "gmemd: %s\n", err);
		return 1;
	}
	if (env.json) {
		json_t *o = ctl__probe_json(loader__table(l));

		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
	} else {
		probe__print(loader__table(l), stdout);
	}
	loader__close(l);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct argp argp = { opts, parse_arg, NULL, doc, NULL, NULL, NULL };
	struct model_opts mo = {};
	struct source_opts so = {};
	char err[512] = "";
	sigset_t mask;
	int e, ret = 1;

	e = argp_parse(&argp, argc, argv, 0, NULL, NULL);
	if (e)
		return 2;
	if (env.probe)
		return print_probe();

	e = loader__check_privileges(err, sizeof(err));
	if (e) {
		fprintf(stderr, "gmemd: %s\n", err);
		return 1;
	}
	if (!env.no_http) {
		d.http_fd = listen_tcp(env.listen, err, sizeof(err));
		if (d.http_fd < 0) {
			fprintf(stderr, "gmemd: %s\n", err);
			goto cleanup;
		}
	}
	d.ctl_fd = listen_unix(env.socket, err, sizeof(err));
	if (d.ctl_fd < 0) {
		fprintf(stderr, "gmemd: %s\n", err);
		goto cleanup;
	}

	mo.retire_after_ns = (__u64)(env.retire_after * 1e9);
	mo.max_file_series = env.max_file_series;
	d.model = model__new(&mo);
	if (!d.model) {
		fprintf(stderr, "gmemd: out of memory\n");
		goto cleanup;
	}
	so.loader.verbose = env.verbose;
	so.loader.no_fentry = env.no_fentry;
	so.loader.ring_bytes = env.ring_mb << 20;
	so.scan_interval_ns = (__u64)(env.scan_interval * 1e9);
	d.start_ns = source__now_ns();
	pthread_mutex_lock(&d.lock);
	e = source__open(&d.src, &so, on_event, NULL, err, sizeof(err));
	pthread_mutex_unlock(&d.lock);
	if (e) {
		fprintf(stderr, "gmemd: %s\n", err);
		goto cleanup;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL); /* before MHD's thread exists: it inherits */
	signal(SIGPIPE, SIG_IGN);
	d.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);

	if (!env.no_http) {
		d.mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY,
					 0, NULL, NULL, handle_http, NULL, MHD_OPTION_LISTEN_SOCKET,
					 d.http_fd, MHD_OPTION_CONNECTION_LIMIT, 256,
					 MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
		if (!d.mhd) {
			fprintf(stderr, "gmemd: cannot start the HTTP server on %s\n", env.listen);
			goto cleanup;
		}
		d.http_fd = -1; /* MHD owns it now */
	}
	fprintf(stderr, "gmemd: ready; metrics on http://%s/metrics, control socket %s\n",
		env.no_http ? "(off)" : env.listen, env.socket);

	for (;;) {
		struct pollfd pfd[3 + MAX_CLIENTS];
		int i, n = 0, nc;

		pfd[n++] = (struct pollfd){ .fd = source__fd(d.src), .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = d.ctl_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = d.sig_fd, .events = POLLIN };
		nc = d.nclients;
		for (i = 0; i < nc; i++) {
			struct client *c = &d.clients[i];

			pfd[n++] = (struct pollfd){
				.fd = c->fd,
				.events = POLLIN | (c->out_len > c->out_off ? POLLOUT : 0),
			};
		}
		if (poll(pfd, n, 100) < 0 && errno != EINTR) {
			fprintf(stderr, "gmemd: poll: %s\n", strerror(errno));
			goto cleanup;
		}
		if (pfd[2].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(d.sig_fd, &si, sizeof(si)) == sizeof(si))
				fprintf(stderr, "gmemd: %s, stopping\n", strsignal(si.ssi_signo));
			break;
		}
		pthread_mutex_lock(&d.lock);
		e = source__poll(d.src, 0);
		model__tick(d.model, source__now_ns());
		/* clients, walked backwards so closing one does not skip another */
		for (i = nc - 1; i >= 0; i--) {
			struct pollfd *p = &pfd[3 + i];
			bool ok = true;

			if (p->revents & (POLLIN | POLLHUP | POLLERR))
				ok = client_read(&d.clients[i]);
			if (ok)
				ok = client_write(&d.clients[i]);
			if (!ok)
				client_close(i);
		}
		if (pfd[1].revents & POLLIN)
			accept_clients();
		pthread_mutex_unlock(&d.lock);
		if (e < 0) {
			fprintf(stderr, "gmemd: reading events: %s\n", strerror(-e));
			goto cleanup;
		}
	}
	ret = 0;
cleanup:
	if (d.mhd)
		MHD_stop_daemon(d.mhd);
	while (d.nclients)
		client_close(d.nclients - 1);
	if (d.ctl_fd >= 0) {
		close(d.ctl_fd);
		unlink(env.socket);
	}
	if (d.http_fd >= 0)
		close(d.http_fd);
	if (d.sig_fd >= 0)
		close(d.sig_fd);
	source__close(d.src);
	model__free(d.model);
	return ret;
}
