/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * feed.h - where gmemtop's snapshots and events come from.
 *
 * Two ways, one shape. With a server on the control socket (gmemd, or `gmemtrace replay`
 * serving a recording) a snapshot is its "snapshot" reply and events come from a "subscribe"
 * connection. Without one, the feed runs the pipeline itself, as gmemd does: source -> model,
 * and a snapshot is built in the same shape from model__to_json(). The front end cannot tell
 * the difference, which is the point: the numbers are the model's either way.
 *
 * Socket replies are read in blocks with a deadline (ctl__call reads byte by byte, which is
 * fine for a handshake and far too slow for a snapshot every second). A lost server is
 * reported, and reconnected to at the next snapshot.
 */
#ifndef GMEM_FEED_H
#define GMEM_FEED_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "gmem_events.h"

enum feed_mode {
	FEED_AUTO = 0, /* the socket if a server answers there, else in-process */
	FEED_SOCKET,   /* the socket or fail */
	FEED_LOCAL,    /* in-process, even if a server runs */
};

struct feed_opts {
	enum feed_mode mode;
	const char *socket;  /* NULL = CTL_DEFAULT_SOCKET */
	int timeout_ms;      /* a socket reply's deadline; 0 = 5000 */
	bool verbose;        /* in-process: libbpf's log */
	bool no_fentry;      /* in-process: do not try the fentry tier */
	double retire_after; /* in-process: seconds an exited VM lingers; 0 = 60 */
};

typedef void (*feed_event_cb)(void *ctx, const struct gmem_event *e);

struct feed;

/* Connects or loads; err says what failed and what to do. */
int feed__open(struct feed **out, const struct feed_opts *opts, char *err, size_t errlen);
void feed__close(struct feed *f);

bool feed__local(const struct feed *f);
/* For the header: "socket /run/gmemscope/gmemd.sock", "own probes (no gmemd)". */
const char *feed__describe(const struct feed *f);
/* Whether the server watches this host now (gmemd, in-process), not a recording. */
bool feed__live(const struct feed *f);

/* A snapshot in the control protocol's shape; json_decref() it. */
int feed__snapshot(struct feed *f, json_t **out, char *err, size_t errlen);

/* Start (cb != NULL) or stop the raw event stream. */
int feed__stream(struct feed *f, feed_event_cb cb, void *ctx, char *err, size_t errlen);

/* The fds the caller polls for the feed, and what it does when they are ready. */
int feed__pollfds(struct feed *f, struct pollfd *pfd, int max);
/* Consumes what is ready (and runs the in-process timers); -errno on a fatal error. */
int feed__handle(struct feed *f, const struct pollfd *pfd, int n);
/* How long the caller may sleep before calling feed__handle() anyway; -1 = no limit. */
int feed__timeout_ms(const struct feed *f);

/* A VM's display name from /proc (a top_name_fn; ctx is the feed). "" for a recording. */
void feed__vm_name(void *ctx, __u32 pid, char *buf, size_t len);

#endif /* GMEM_FEED_H */
