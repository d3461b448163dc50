// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * server.c - /metrics and the control socket around one model.
 *
 * Subscribers get raw records through a bounded per-client buffer: a client that does not
 * read fast enough loses records rather than stalling the daemon, and is told how many with
 * a LOST record once it has room again.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "cli.h"
#include "ctl.h"
#include "server.h"
#include "vmname.h"
#include "source.h"
#include "strbuf.h"
#include "kvmstats.h"
#include "webconfig.h"

#define MAX_CLIENTS 64
#define CLIENT_OUT_MAX (8u << 20)
/*
 * At the connection limit libmicrohttpd stops accepting until an idle connection times out,
 * so a pile of idle connections would hold scrapes off for the whole timeout: make the pile
 * large (the fd limit is raised to fit) and the wait short. Scrapers that keep connections
 * alive between scrapes just reconnect.
 */
#define HTTP_MAX_CONNECTIONS 1024
#define HTTP_IDLE_TIMEOUT_S 3
#define MAX_EXTRA 32

struct client {
	int fd;
	bool subscribed;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off, out_cap;
	__u64 dropped;
};

struct server {
	pthread_mutex_t lock;
	struct server_opts opts;
	struct model *model;
	struct source *src;
	const struct probe_table *probe;
	struct MHD_Daemon *mhd;
	int http_fd, ctl_fd;
	char listen_addr[80]; /* what the HTTP socket is bound to: the port --listen :0 picked */
	dev_t sock_dev; /* the control socket this server created, removed only if still it */
	ino_t sock_ino;
	struct client clients[MAX_CLIENTS];
	int nclients;
	__u64 start_ns;
	double start_wall; /* CLOCK_REALTIME seconds at start */
	__u64 scrapes, http_bad, http_unauthorized;
	__u64 series_dropped; /* per-file series the cap left out, summed over scrapes */
	server_extra_fn extra_fn;
	void *extra_ctx;
	struct kvmstats *kvm; /* KVM binary stats: families for /metrics, JSON for snapshots */
	struct server_ext ext;
};

/* ---- subscribers ------------------------------------------------------------------------- */

static void client_queue(struct client *c, const void *data, size_t len)
{
	size_t pending = c->out_len - c->out_off;
	char *nb;

	if (pending + len > CLIENT_OUT_MAX) {
		c->dropped++;
		return;
	}
	/* reclaim what was written before growing: the buffer is a queue, not a log */
	if (c->out_off && (c->out_off == c->out_len || c->out_len + len > c->out_cap)) {
		memmove(c->out, c->out + c->out_off, pending);
		c->out_len = pending;
		c->out_off = 0;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;

		while (cap < c->out_len + len)
			cap *= 2;
		nb = realloc(c->out, cap);
		if (!nb) {
			c->dropped++;
			return;
		}
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
}

static void broadcast(struct server *s, const struct gmem_event *e);

/* A VM the model just met, named (gmemd reads the name then): subscribers get VM_NAME right
 * after its first record, so a recording names it even if it is gone by the time a recorder
 * could have looked. */
static void name_new_vm(struct server *s, const struct gmem_event *e)
{
	const struct model_vm *vm = e->vm ? model__vm(s->model, e->vm) : NULL;
	struct gmem_event parts[VMNAME_PARTS];
	int n, i;

	if (!vm || !vm->name[0])
		return;
	n = vmname__pack(vm->name, vm->pid, e->ts_ns, parts);
	for (i = 0; i < n; i++)
		broadcast(s, &parts[i]);
}

void server__apply(struct server *s, const struct gmem_event *e)
{
	size_t nvms = model__nr_vms(s->model);

	model__apply(s->model, e);
	if (s->ext.apply)
		s->ext.apply(s->ext.ctx, e);
	broadcast(s, e);
	if (model__nr_vms(s->model) > nvms && s->nclients)
		name_new_vm(s, e);
}

static void broadcast(struct server *s, const struct gmem_event *e)
{
	int i;

	for (i = 0; i < s->nclients; i++) {
		struct client *c = &s->clients[i];

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

void server__source_cb(void *ctx, const struct gmem_event *e)
{
	server__apply(ctx, e);
}

/* ---- HTTP -------------------------------------------------------------------------------- */

struct extra_buf {
	struct prom_probe_row rows[PROBE_MAX_EVENTS];
	struct prom_stat stats[MAX_EXTRA];
};

static void fill_extra(struct server *s, struct prom_extra *x, struct extra_buf *b)
{
	size_t n = 0;
	int i;

	if (s->probe) {
		for (i = 0; i < s->probe->n; i++) {
			b->rows[i].event = s->probe->rows[i].event;
			b->rows[i].tier = probe__tier_str(s->probe->rows[i].tier);
			b->rows[i].state = probe__state_str(s->probe->rows[i].state);
		}
		x->probes = b->rows;
		x->nr_probes = s->probe->n;
	}
	b->stats[n++] = (struct prom_stat){ "gmemscope_scrapes_total",
					    "Scrapes of /metrics served.", PROM_STAT_COUNTER,
					    false, s->scrapes, 0 };
	b->stats[n++] = (struct prom_stat){ "gmemscope_http_bad_requests_total",
					    "HTTP requests refused (bad method or path).",
					    PROM_STAT_COUNTER, false,
					    __atomic_load_n(&s->http_bad, __ATOMIC_RELAXED), 0 };
	b->stats[n++] = (struct prom_stat){ "gmemscope_http_unauthorized_total",
					    "HTTP requests refused for missing or wrong basic-auth "
					    "credentials (--web.config.file).", PROM_STAT_COUNTER, false,
					    __atomic_load_n(&s->http_unauthorized, __ATOMIC_RELAXED), 0 };
	b->stats[n++] = (struct prom_stat){ "gmemscope_file_series_dropped_total",
					    "Per-file series left out of scrapes by the "
					    "--max-file-series cap, summed over scrapes (two per file).",
					    PROM_STAT_COUNTER, false, s->series_dropped, 0 };
	b->stats[n++] = (struct prom_stat){ "gmemscope_start_time_seconds",
					    "When this server started, in seconds since the Unix epoch: "
					    "a change means it restarted (counters began again).",
					    PROM_STAT_GAUGE, true, 0, s->start_wall };
	b->stats[n++] = (struct prom_stat){ "gmemscope_uptime_seconds",
					    "Seconds since this server started.", PROM_STAT_GAUGE,
					    true, 0, (source__now_ns() - s->start_ns) / 1e9 };
	if (s->extra_fn)
		n += s->extra_fn(s->extra_ctx, b->stats + n, MAX_EXTRA - n);
	x->stats = b->stats;
	x->nr_stats = n;
	if (s->ext.metrics)
		s->ext.metrics(s->ext.ctx, x);
	if (s->kvm)
		kvmstats__families(s->kvm, &x->families, &x->nr_families);
	x->build_version = GMEMSCOPE_VERSION;
	x->build_revision = cli__revision();
	x->build_libbpf = cli__libbpf_version();
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

/* q of one media range ("type/sub;a=b;q=0.5"), -1 when it is not the one asked about */
static double accept_q(const char *range, size_t len, const char *type, bool *version_ok)
{
	char buf[256], *save = NULL, *tok;
	double q = 1.0;
	bool first = true, match = false;

	*version_ok = true;
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, range, len);
	buf[len] = 0;
	for (tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		if (first) {
			char *end = tok + strlen(tok);

			while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
				*--end = 0;
			match = !strcasecmp(tok, type);
			first = false;
		} else if (!strncasecmp(tok, "q=", 2)) {
			q = strtod(tok + 2, NULL);
		} else if (!strncasecmp(tok, "version=", 8)) {
			/* we speak OpenMetrics 1.0.0, which 0.0.1 scrapers read too */
			*version_ok = !strncmp(tok + 8, "1.0.0", 5) || !strncmp(tok + 8, "0.0.1", 5) ||
				      !strncmp(tok + 8, "0.0.4", 5);
		}
	}
	return match ? q : -1;
}

/*
 * Content negotiation: OpenMetrics when the client accepts it (q > 0, a version we speak) at
 * least as much as plain text; the 0.0.4 text format otherwise, and for no Accept at all.
 */
bool server__wants_openmetrics(const char *accept)
{
	double om = -1, text = -1, any = -1;
	const char *p = accept;

	if (!accept)
		return false;
	while (*p) {
		size_t len = strcspn(p, ",");
		bool vok;
		double q;

		if ((q = accept_q(p, len, "application/openmetrics-text", &vok)) >= 0) {
			if (vok && q > om)
				om = q;
		} else if ((q = accept_q(p, len, "text/plain", &vok)) >= 0) {
			if (q > text)
				text = q;
		} else if ((q = accept_q(p, len, "*/*", &vok)) >= 0) {
			if (q > any)
				any = q;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	if (text < 0)
		text = any;
	return om > 0 && om >= text;
}

static enum MHD_Result handle_http(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version,
				   const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct server *s = cls;
	struct strbuf sb = STRBUF_INIT;
	struct prom_extra x = {};
	struct extra_buf xb;
	struct MHD_Response *r;
	const char *accept;
	enum MHD_Result ret;
	char *body;
	size_t len;
	bool om;
	int err;

	if (webconfig__wants_auth(s->opts.web)) {
		char *pass = NULL, *user = MHD_basic_auth_get_username_password(conn, &pass);
		bool ok = webconfig__check(s->opts.web, user, pass);

		if (pass)
			memset(pass, 0, strlen(pass));
		MHD_free(user);
		MHD_free(pass);
		if (!ok) {
			struct MHD_Response *deny;

			__atomic_add_fetch(&s->http_unauthorized, 1, __ATOMIC_RELAXED);
			deny = MHD_create_response_from_buffer(strlen("unauthorized\n"),
							       (void *)"unauthorized\n",
							       MHD_RESPMEM_PERSISTENT);
			if (!deny)
				return MHD_NO;
			ret = MHD_queue_basic_auth_fail_response(conn, "gmemscope", deny);
			MHD_destroy_response(deny);
			return ret;
		}
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		__atomic_add_fetch(&s->http_bad, 1, __ATOMIC_RELAXED);
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n",
				  "text/plain");
	}
	if (!strcmp(url, "/"))
		return reply_text(conn, MHD_HTTP_OK,
				  "<html><head><title>gmemscope</title></head><body><h1>gmemscope"
				  "</h1><p><a href=\"/metrics\">/metrics</a></p></body></html>\n",
				  "text/html; charset=utf-8");
	if (strcmp(url, "/metrics")) {
		__atomic_add_fetch(&s->http_bad, 1, __ATOMIC_RELAXED);
		return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n",
				  "text/plain");
	}
	accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept");
	om = server__wants_openmetrics(accept);
	pthread_mutex_lock(&s->lock);
	s->scrapes++;
	{
		size_t files = model__nr_files(s->model);
		__u32 cap = model__opts(s->model)->max_file_series;

		if (cap && files > cap)
			s->series_dropped += 2 * (files - cap);
	}
	fill_extra(s, &x, &xb);
	err = prom__render(s->model, &x, &sb, om);
	pthread_mutex_unlock(&s->lock);
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
	MHD_add_response_header(r, "Content-Type", om ? PROM_OM_CONTENT_TYPE : PROM_CONTENT_TYPE);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

void server__sockname(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";

	if (getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		snprintf(buf, len, "?");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
	}
}

const char *server__listen_addr(struct server *s)
{
	return s->listen_addr[0] ? s->listen_addr : NULL;
}

int server__listen_tcp(const char *hostport, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai, *p;
	const char *colon = strrchr(hostport, ':');
	int fd = -1, e, one = 1;
	char host[256];

	if (!colon || colon == hostport || !colon[1] ||
	    (size_t)(colon - hostport) >= sizeof(host)) {
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
	{
		char *end;
		unsigned long port;

		errno = 0;
		port = strtoul(colon + 1, &end, 10);
		if (*end || errno || port > 65535 || !isdigit((unsigned char)colon[1])) {
			snprintf(err, errlen, "--listen '%s': port '%s' is not a number from 0 to "
				 "65535 (0 picks a free one)", hostport, colon + 1);
			return -EINVAL;
		}
	}
	hints.ai_flags |= AI_NUMERICSERV;
	e = getaddrinfo(host, colon + 1, &hints, &ai);
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

/*
 * The control socket at path, replacing only a stale socket: a regular file, a directory or any
 * other non-socket there is refused, and so is a socket another server answers on. As root this
 * must never delete a file the user asked it to create a socket next to, or over.
 */
static int listen_unix(struct server *s, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)], *slash;
	struct stat st;
	int fd, e, probe;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "--socket '%s': path too long (at most %zu bytes)", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir(dir, 0755);
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "--socket %s: that path is %s, not a socket; refusing "
				 "to replace it (pick another path with --socket)", path,
				 ctl__file_kind(&st));
			return -EEXIST;
		}
		/* a live server answers on it; a stale socket left by a crash refuses */
		probe = ctl__connect(path);
		if (probe >= 0) {
			close(probe);
			snprintf(err, errlen, "control socket %s is in use by a running gmemd or replay "
				 "(stop it, or pick another path with --socket)", path);
			return -EADDRINUSE;
		}
		if (probe != -ECONNREFUSED) {
			snprintf(err, errlen, "--socket %s: cannot tell whether a server is "
				 "listening there (%s); refusing to replace it", path,
				 strerror(-probe));
			return probe;
		}
		if (unlink(path) && errno != ENOENT) {
			e = errno;
			snprintf(err, errlen, "cannot remove the stale socket %s: %s", path,
				 strerror(e));
			return -e;
		}
	} else if (errno != ENOENT) {
		e = errno;
		snprintf(err, errlen, "--socket %s: %s", path, strerror(e));
		return -e;
	}
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
	/* owner and group may connect: the group is root's, or the operators' (--socket-group) */
	if ((s->opts.socket_gid >= 0 && chown(path, (uid_t)-1, (gid_t)s->opts.socket_gid)) ||
	    chmod(path, 0660)) {
		e = errno;
		close(fd);
		unlink(path);
		snprintf(err, errlen, "cannot set the owner group or mode of control socket %s: "
			 "%s", path, strerror(e));
		return -e;
	}
	if (lstat(path, &st) == 0) {
		s->sock_dev = st.st_dev;
		s->sock_ino = st.st_ino;
	}
	return fd;
}

static void client_close(struct server *s, int i)
{
	struct client *c = &s->clients[i];

	close(c->fd);
	free(c->in);
	free(c->out);
	s->clients[i] = s->clients[--s->nclients];
	memset(&s->clients[s->nclients], 0, sizeof(struct client));
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

static json_t *server_json(struct server *s)
{
	json_t *o = json_pack("{s:s, s:i, s:f, s:I, s:I}", "name", s->opts.name, "pid",
			      (int)getpid(), "uptime_seconds",
			      (source__now_ns() - s->start_ns) / 1e9, "scrapes",
			      (json_int_t)s->scrapes, "clients", (json_int_t)s->nclients);
	struct source_stats st;

	if (o && s->src) {
		struct gmem_counters kc;

		source__stats(s->src, &st);
		json_object_set_new(o, "records", json_integer(st.records));
		json_object_set_new(o, "synthesized", json_integer(st.synthesized));
		json_object_set_new(o, "dropped", json_integer(st.dropped));
		json_object_set_new(o, "scans", json_integer(st.scans));
		json_object_set_new(o, "kernel_counting", json_boolean(st.counting));
		json_object_set_new(o, "counted_events", json_integer(st.counted_events));
		if (!source__kernel_counters(s->src, &kc)) {
			json_t *k = json_object();

			for (int i = 1; i < GMEM_EV_KIND_MAX; i++)
				if (kc.emitted[i] || kc.dropped[i] || kc.counted[i])
					json_object_set_new(k, model__kind_name(i),
							    json_pack("{s:I, s:I, s:I}", "emitted",
								      (json_int_t)kc.emitted[i],
								      "dropped",
								      (json_int_t)kc.dropped[i],
								      "counted",
								      (json_int_t)kc.counted[i]));
			json_object_set_new(o, "kernel_records", k);
		}
		{
			static const char *const maps[] = { "ino_vm", "vmm_tgids", "calls", "drops",
							    "page_counts" };
			json_t *k = json_object();

			for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
				int n = source__map_entries(s->src, maps[i]);

				if (n >= 0)
					json_object_set_new(k, maps[i], json_integer(n));
			}
			json_object_set_new(o, "bpf_map_entries", k);
		}
	}
	return o;
}

static json_t *probe_json(struct server *s)
{
	return s->probe ? ctl__probe_json(s->probe) : json_null();
}

static void handle_request(struct server *s, struct client *c, const char *line)
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
		reply_json(c, json_pack("{s:b, s:i, s:i, s:s, s:i, s:b}", "ok", 1, "proto",
					CTL_PROTO_VERSION, "abi", GMEM_ABI_VERSION, "server",
					s->opts.name, "record_size", (int)sizeof(struct gmem_event),
					"live", s->src != NULL));
	} else if (!strcmp(cmd, "snapshot")) {
		struct timespec wall;
		char when[48];

		/* "sparse": VMs without their zero members (gmemtop's snapshot a second) */
		snap = model__to_json_opts(s->model,
					   json_is_true(json_object_get(req, "sparse")) ?
						   MODEL_JSON_SPARSE : 0);
		/* ts_ns is the records' clock (CLOCK_MONOTONIC); wall time beside it */
		clock_gettime(CLOCK_REALTIME, &wall);
		reply_json(c, json_pack("{s:b, s:I, s:s, s:I, s:o, s:o, s:o, s:o}", "ok", 1,
					"ts_ns", (json_int_t)source__now_ns(), "time",
					cli__rfc3339(&wall, when, sizeof(when)), "wall_ns",
					(json_int_t)wall.tv_sec * 1000000000 + wall.tv_nsec, "model",
					snap ? snap : json_null(), "probe", probe_json(s), "daemon",
					server_json(s), "kvm_stats",
					s->kvm ? kvmstats__json(s->kvm) : json_array()));
	} else if (!strcmp(cmd, "probe")) {
		reply_json(c, json_pack("{s:b, s:o}", "ok", 1, "probe", probe_json(s)));
	} else if (!strcmp(cmd, "scan")) {
		/* drain + rescan now: lets a client see releases deterministically */
		if (s->src) {
			source__scan(s->src);
			reply_json(c, json_pack("{s:b}", "ok", 1));
		} else {
			reply_json(c, json_pack("{s:b, s:s}", "ok", 0, "error",
						"no live source (serving a recording)"));
		}
	} else if (!strcmp(cmd, "subscribe")) {
		/* every folio as a record from here on; what the kernel counted while nobody
		 * listened reaches the model first, not this subscriber */
		if (s->src)
			source__set_records(s->src, true);
		reply_json(c, json_pack("{s:b, s:s, s:i, s:i}", "ok", 1, "stream", "gmem_event",
					"record_size", (int)sizeof(struct gmem_event), "abi",
					GMEM_ABI_VERSION));
		c->subscribed = true;
	} else {
		json_t *r = NULL;

		if (s->ext.command) {
			if (s->src)
				source__drain(s->src);
			r = s->ext.command(s->ext.ctx, cmd, req);
		}
		reply_json(c, r ? r : json_pack("{s:b, s:s}", "ok", 0, "error", "unknown command"));
	}
	json_decref(req);
}

/* Returns false when the client must be closed. */
static bool client_read(struct server *s, struct client *c)
{
	char buf[4096], *nl, *nb;
	ssize_t n = read(c->fd, buf, sizeof(buf));

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
		handle_request(s, c, c->in);
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

static void accept_clients(struct server *s)
{
	int fd;

	while ((fd = accept4(s->ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (s->nclients == MAX_CLIENTS) {
			static const char busy[] = "{\"ok\":false,\"error\":\"too many clients\"}\n";

			if (write(fd, busy, sizeof(busy) - 1) < 0) {
				/* it is going away either way */
			}
			close(fd);
			continue;
		}
		s->clients[s->nclients++] = (struct client){ .fd = fd };
	}
}

int server__pollfds(struct server *s, struct pollfd *pfd, int max)
{
	int i, n = 0;

	if (s->ctl_fd < 0 || max < 1)
		return 0;
	pfd[n++] = (struct pollfd){ .fd = s->ctl_fd, .events = POLLIN };
	for (i = 0; i < s->nclients && n < max; i++) {
		struct client *c = &s->clients[i];

		pfd[n++] = (struct pollfd){
			.fd = c->fd,
			.events = POLLIN | (c->out_len > c->out_off ? POLLOUT : 0),
		};
	}
	return n;
}

void server__handle(struct server *s, const struct pollfd *pfd, int n)
{
	int i;

	if (n < 1)
		return;
	/* walked backwards: closing one client moves the last into its slot */
	for (i = n - 2; i >= 0; i--) {
		const struct pollfd *p = &pfd[1 + i];
		struct client *c;
		bool ok = true;

		if (i >= s->nclients || s->clients[i].fd != p->fd)
			continue;
		c = &s->clients[i];
		if (p->revents & (POLLIN | POLLHUP | POLLERR))
			ok = client_read(s, c);
		if (ok)
			ok = client_write(c);
		if (!ok)
			client_close(s, i);
	}
	/* flush what records queued since the poll, for clients that did not report */
	for (i = s->nclients - 1; i >= 0; i--)
		if (!client_write(&s->clients[i]))
			client_close(s, i);
	if (pfd[0].revents & POLLIN)
		accept_clients(s);
}

/* ---- lifecycle --------------------------------------------------------------------------- */

int server__open(struct server **out, const struct server_opts *opts, char *err, size_t errlen)
{
	struct server *s;
	int e;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->opts = *opts;
	s->http_fd = -1;
	s->ctl_fd = -1;
	s->start_ns = source__now_ns();
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		s->start_wall = ts.tv_sec + ts.tv_nsec / 1e9;
	}
	if (opts->listen) {
		s->http_fd = server__listen_tcp(opts->listen, err, errlen);
		if (s->http_fd < 0) {
			e = s->http_fd;
			goto fail;
		}
		server__sockname(s->http_fd, s->listen_addr, sizeof(s->listen_addr));
	}
	if (opts->socket) {
		s->ctl_fd = listen_unix(s, opts->socket, err, errlen);
		if (s->ctl_fd < 0) {
			e = s->ctl_fd;
			goto fail;
		}
	}
	s->model = model__new(&opts->model);
	if (!s->model) {
		e = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	server__close(s);
	return e;
}

int server__start(struct server *s, char *err, size_t errlen)
{
	struct rlimit rl;

	if (s->http_fd < 0)
		return 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < HTTP_MAX_CONNECTIONS + 256) {
		rl.rlim_cur = rl.rlim_max < HTTP_MAX_CONNECTIONS + 256 ? rl.rlim_max :
									   HTTP_MAX_CONNECTIONS + 256;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (webconfig__cert(s->opts.web)) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			snprintf(err, errlen, "this libmicrohttpd was built without TLS; HTTPS from "
				 "--web.config.file is not possible");
			return -ENOTSUP;
		}
		s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
						  MHD_USE_ITC | MHD_USE_TLS, 0, NULL, NULL,
					  handle_http, s,
					  MHD_OPTION_LISTEN_SOCKET, s->http_fd,
					  MHD_OPTION_CONNECTION_LIMIT,
					  (unsigned int)HTTP_MAX_CONNECTIONS,
					  MHD_OPTION_CONNECTION_TIMEOUT,
					  (unsigned int)HTTP_IDLE_TIMEOUT_S,
					  MHD_OPTION_HTTPS_MEM_KEY, webconfig__key(s->opts.web),
					  MHD_OPTION_HTTPS_MEM_CERT, webconfig__cert(s->opts.web),
					  MHD_OPTION_END);
	} else {
		s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
						  MHD_USE_ITC, 0, NULL, NULL, handle_http, s,
					  MHD_OPTION_LISTEN_SOCKET,
					  s->http_fd, MHD_OPTION_CONNECTION_LIMIT,
					  (unsigned int)HTTP_MAX_CONNECTIONS,
					  MHD_OPTION_CONNECTION_TIMEOUT,
					  (unsigned int)HTTP_IDLE_TIMEOUT_S, MHD_OPTION_END);
	}
	if (!s->mhd) {
		snprintf(err, errlen, "cannot start the HTTP%s server on %s",
			 webconfig__cert(s->opts.web) ? "S" : "", s->opts.listen);
		return -EIO;
	}
	s->http_fd = -1; /* libmicrohttpd owns it now */
	return 0;
}

int server__reload_web(struct server *s, struct web_config *web, struct web_config **old,
		       char *err, size_t errlen)
{
	MHD_socket fd;
	int e;

	*old = s->opts.web;
	if (!s->mhd) {
		s->opts.web = web;
		return 0;
	}
	/* the listening socket survives: no scrape is refused a connection, only delayed */
	fd = MHD_quiesce_daemon(s->mhd);
	if (fd == MHD_INVALID_SOCKET) {
		*old = NULL;
		snprintf(err, errlen, "cannot pause the HTTP server to reload");
		return -EIO;
	}
	MHD_stop_daemon(s->mhd); /* waits for its thread: nobody reads the old config after */
	s->mhd = NULL;
	s->http_fd = fd;
	s->opts.web = web;
	e = server__start(s, err, errlen);
	if (e) {
		/* the new file was checked; if it still fails, serve the old one again */
		char again[256];

		s->opts.web = *old;
		*old = web;
		if (server__start(s, again, sizeof(again)))
			snprintf(err + strlen(err), errlen - strlen(err), "; and the old one: %s",
				 again);
	}
	return e;
}

void server__close(struct server *s)
{
	if (!s)
		return;
	if (s->mhd)
		MHD_stop_daemon(s->mhd);
	while (s->nclients)
		client_close(s, s->nclients - 1);
	if (s->ctl_fd >= 0) {
		struct stat st;

		close(s->ctl_fd);
		if (lstat(s->opts.socket, &st) == 0 && st.st_dev == s->sock_dev &&
		    st.st_ino == s->sock_ino)
			unlink(s->opts.socket);
	}
	if (s->http_fd >= 0)
		close(s->http_fd);
	model__free(s->model);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void server__lock(struct server *s)
{
	pthread_mutex_lock(&s->lock);
}

void server__unlock(struct server *s)
{
	pthread_mutex_unlock(&s->lock);
}

void server__set_probe(struct server *s, const struct probe_table *t)
{
	s->probe = t;
}

int server__subscribers(const struct server *s)
{
	int i, n = 0;

	for (i = 0; i < s->nclients; i++)
		n += s->clients[i].subscribed;
	return n;
}

void server__set_source(struct server *s, struct source *src)
{
	s->src = src;
}

void server__set_ext(struct server *s, const struct server_ext *x)
{
	if (x)
		s->ext = *x;
	else
		memset(&s->ext, 0, sizeof(s->ext));
}

void server__set_kvmstats(struct server *s, struct kvmstats *k)
{
	s->kvm = k;
}

void server__set_extra(struct server *s, server_extra_fn fn, void *ctx)
{
	s->extra_fn = fn;
	s->extra_ctx = ctx;
}

struct model *server__model(struct server *s)
{
	return s->model;
}
