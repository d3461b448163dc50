/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * server.h - a model served the way gmemd serves it: Prometheus /metrics over HTTP
 * (libmicrohttpd, its own thread) and the control socket (docs/control-protocol.md).
 *
 * gmemd feeds it from the live source; `gmemtrace replay` feeds it from a recording. Records
 * go in through server__apply() (model + subscribers), with the server lock held: the HTTP
 * thread renders under the same lock.
 */
#ifndef GMEM_SERVER_H
#define GMEM_SERVER_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <poll.h>
#include <stdbool.h>

#include <jansson.h>

#include "gmem_events.h"
#include "model.h"
#include "probe.h"
#include "prom.h"

struct server;
struct source;

struct web_config;

struct server_opts {
	const char *name;   /* "gmemd", "gmemtrace replay": in hello and the index page */
	const char *listen; /* HOST:PORT, NULL = no HTTP */
	const char *socket; /* control socket path, NULL = none */
	int socket_gid;     /* the socket's group (mode 0660), -1 = the creator's */
	struct web_config *web; /* TLS and basic auth for HTTP (webconfig.h), NULL = neither */
	struct model_opts model;
};

/*
 * An extension (gmemd's policy host): sees every record server__apply() applies, answers the
 * control commands the server itself does not know, and adds its families to /metrics. Every
 * hook runs with the server lock held. Before a command reaches the extension, a live source
 * is drained, so the answer reflects every record the kernel emitted before the request.
 */
struct server_ext {
	void (*apply)(void *ctx, const struct gmem_event *e);
	/* The reply for cmd ({"ok": ...}), or NULL when cmd is not the extension's. */
	json_t *(*command)(void *ctx, const char *cmd, json_t *req);
	/* Fills the policy_* members of x for one render. */
	void (*metrics)(void *ctx, struct prom_extra *x);
	void *ctx;
};
void server__set_ext(struct server *s, const struct server_ext *x);

/* Appends extra unlabelled samples for /metrics (the caller's own health); lock held. */
typedef size_t (*server_extra_fn)(void *ctx, struct prom_stat *stats, size_t max);

/* Binds the HTTP port and the control socket (clear errors for "in use" and bad addresses)
 * but starts serving HTTP only in server__start(), after the caller has blocked signals. */
int server__open(struct server **out, const struct server_opts *opts, char *err, size_t errlen);
int server__start(struct server *s, char *err, size_t errlen);
void server__close(struct server *s);
/* Serve web (TLS, basic auth) from now on: the HTTP thread is stopped and started again on the
 * same listening socket. *old is what to free: the previous config, or web itself on failure
 * (the previous one is then served again). 0 or -errno with err. */
int server__reload_web(struct server *s, struct web_config *web, struct web_config **old,
		       char *err, size_t errlen);
/* HOST:PORT the HTTP socket is bound to (the real port for --listen HOST:0); NULL if none. */
const char *server__listen_addr(struct server *s);
/* HOST:PORT (IPv6 as [HOST]:PORT) a socket is bound to, "?" when unknown. */
void server__sockname(int fd, char *buf, size_t len);

void server__lock(struct server *s);
void server__unlock(struct server *s);
/* One record into the model and to every subscriber. Lock held. */
void server__apply(struct server *s, const struct gmem_event *e);
/* Suitable as a source_cb (ctx = the server). */
void server__source_cb(void *ctx, const struct gmem_event *e);

/* What to report as probe coverage (a live source's table, or a recording's). */
void server__set_probe(struct server *s, const struct probe_table *t);
/* A live source, for the "scan" command and its stats; NULL for a replay. */
void server__set_source(struct server *s, struct source *src);
/* KVM binary stats to serve: gmem_kvm_* families in /metrics, "kvm_stats" in snapshots. The
 * caller updates k with the server lock held. */
struct kvmstats;
void server__set_kvmstats(struct server *s, struct kvmstats *k);
void server__set_extra(struct server *s, server_extra_fn fn, void *ctx);
struct model *server__model(struct server *s);

/* Clients subscribed to the event stream now. */
int server__subscribers(const struct server *s);

/* The control socket's fds for the caller's poll loop: fills at most max, returns count. */
int server__pollfds(struct server *s, struct pollfd *pfd, int max);
/* Handle what poll() reported for the fds server__pollfds() gave (same order). Lock held. */
void server__handle(struct server *s, const struct pollfd *pfd, int n);

/* Accept-header negotiation: true when OpenMetrics should be served (q-values honoured). */
bool server__wants_openmetrics(const char *accept);

/* The Prometheus listener parser, shared with tests: "127.0.0.1:9477", "[::1]:9477". */
int server__listen_tcp(const char *hostport, char *err, size_t errlen);

#endif /* GMEM_SERVER_H */
