// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * feed.c - gmemtop's snapshots and events: from the control socket, or in-process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "feed.h"
#include "model.h"
#include "source.h"
#include "top.h"
#include "vmname.h"

#define FEED_TIMEOUT_MS   5000
#define FEED_LOCAL_TICK   100 /* ms: the in-process source's timers (scans, DirectMap) */
#define STREAM_READ_MAX   (4u << 20) /* bytes of records consumed per feed__handle() */

/* A control-socket connection with a read buffer: replies are lines, records follow. */
struct conn {
	int fd;
	char *buf;
	size_t len, cap;
};

struct feed {
	struct feed_opts opts;
	char socket[256];
	char describe[300];
	bool local;
	bool live;

	/* socket mode */
	struct conn ctl;    /* request/reply */
	struct conn stream; /* subscribe: records only */

	/* in-process */
	struct source *src;
	struct model *model;

	feed_event_cb cb;
	void *cb_ctx;
};

static __u64 now_ms(void)
{
	return source__now_ns() / 1000000;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
	c->len = c->cap = 0;
}

static int conn_fill(struct conn *c, int timeout_ms)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	ssize_t n;
	int r;

	if (c->cap - c->len < 65536) {
		size_t cap = c->cap ? c->cap * 2 : 256 * 1024;
		char *nb;

		if (cap > (size_t)CTL_MAX_LINE * 64)
			return -EPROTO;
		nb = realloc(c->buf, cap);
		if (!nb)
			return -ENOMEM;
		c->buf = nb;
		c->cap = cap;
	}
	r = poll(&p, 1, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (!r)
		return -ETIMEDOUT;
	n = read(c->fd, c->buf + c->len, c->cap - c->len);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -errno;
	if (!n)
		return -ECONNRESET;
	c->len += n;
	return 0;
}

/* One reply line (NUL-terminated, without '\n'), within the deadline; *line is malloc'd. */
static int conn_line(struct conn *c, int timeout_ms, char **line)
{
	__u64 deadline = now_ms() + timeout_ms;
	char *nl;
	size_t used;
	int err;

	for (;;) {
		nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl)
			break;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		err = conn_fill(c, (int)(deadline - now_ms()));
		if (err)
			return err;
	}
	used = nl - c->buf + 1;
	*line = malloc(used);
	if (!*line)
		return -ENOMEM;
	memcpy(*line, c->buf, used - 1);
	(*line)[used - 1] = 0;
	memmove(c->buf, c->buf + used, c->len - used);
	c->len -= used;
	return 0;
}

static int conn_call(struct conn *c, const char *req, int timeout_ms, json_t **resp)
{
	json_error_t jerr;
	char *line = NULL;
	int err;

	err = ctl__write_all(c->fd, req, strlen(req));
	if (err)
		return err;
	err = conn_line(c, timeout_ms, &line);
	if (err)
		return err;
	*resp = json_loads(line, 0, &jerr);
	free(line);
	return *resp ? 0 : -EPROTO;
}

/* Connects and says hello; -errno, with err filled. */
static int feed__connect(struct feed *f, char *err, size_t errlen)
{
	json_t *hello = NULL;
	const char *server;
	int e;

	conn_close(&f->ctl);
	e = ctl__connect(f->socket);
	if (e < 0) {
		ctl__why(f->socket, e, err, errlen);
		return e;
	}
	f->ctl.fd = e;
	e = conn_call(&f->ctl, "{\"cmd\":\"hello\",\"proto\":1}\n", f->opts.timeout_ms, &hello);
	if (e) {
		snprintf(err, errlen, "no hello from %s: %s", f->socket, strerror(-e));
		goto fail;
	}
	if (!json_is_true(json_object_get(hello, "ok")) ||
	    json_integer_value(json_object_get(hello, "proto")) != CTL_PROTO_VERSION ||
	    json_integer_value(json_object_get(hello, "record_size")) !=
		    (json_int_t)sizeof(struct gmem_event)) {
		e = -EPROTO;
		snprintf(err, errlen,
			 "%s speaks another protocol (want proto %d, %zu-byte records)", f->socket,
			 CTL_PROTO_VERSION, sizeof(struct gmem_event));
		goto fail;
	}
	server = json_string_value(json_object_get(hello, "server"));
	f->live = json_is_true(json_object_get(hello, "live"));
	snprintf(f->describe, sizeof(f->describe), "%s %s",
		 server && strstr(server, "replay") ? "recording on" : "socket", f->socket);
	json_decref(hello);
	return 0;
fail:
	json_decref(hello);
	conn_close(&f->ctl);
	return e;
}

/* ---- in-process ------------------------------------------------------------------------- */

/* The in-process model's namer: the same as gmemd's, at the VM's first record. */
static void feed__model_name(void *ctx, __u32 pid, char *buf, size_t len)
{
	vmname__read(NULL, pid, buf, len);
}

static void local_cb(void *ctx, const struct gmem_event *e)
{
	struct feed *f = ctx;

	model__apply(f->model, e);
	if (f->cb)
		f->cb(f->cb_ctx, e);
}

static int feed__open_local(struct feed *f, char *err, size_t errlen)
{
	struct model_opts mo = {
		.name_fn = feed__model_name,
		.retire_after_ns = (__u64)((f->opts.retire_after > 0 ? f->opts.retire_after : 60) *
					   1e9),
	};
	struct source_opts so = {
		.loader = { .verbose = f->opts.verbose, .no_fentry = f->opts.no_fentry },
	};
	int e;

	e = loader__check_privileges(err, errlen);
	if (e)
		return e;
	f->model = model__new(&mo);
	if (!f->model) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	e = source__open(&f->src, &so, local_cb, f, err, errlen);
	if (e)
		return e;
	f->local = true;
	f->live = true;
	snprintf(f->describe, sizeof(f->describe), "own probes (no gmemd)");
	return 0;
}

/* ---- API ---------------------------------------------------------------------------------- */

int feed__open(struct feed **out, const struct feed_opts *opts, char *err, size_t errlen)
{
	char why[512] = "";
	struct feed *f;
	int e;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->opts = *opts;
	if (f->opts.timeout_ms <= 0)
		f->opts.timeout_ms = FEED_TIMEOUT_MS;
	f->ctl.fd = f->stream.fd = -1;
	snprintf(f->socket, sizeof(f->socket), "%s",
		 opts->socket ? opts->socket : CTL_DEFAULT_SOCKET);

	if (f->opts.mode != FEED_LOCAL) {
		e = feed__connect(f, why, sizeof(why));
		if (!e)
			goto done;
		/* something answered but is not a server we know: never fall back silently */
		if (f->opts.mode == FEED_SOCKET || (e != -ENOENT && e != -ECONNREFUSED)) {
			snprintf(err, errlen, "%s", why);
			goto fail;
		}
	}
	e = feed__open_local(f, err, errlen);
	if (e) {
		if (f->opts.mode == FEED_AUTO) {
			char local[400];

			snprintf(local, sizeof(local), "%s", err);
			snprintf(err, errlen, "no gmemd on %s, and the probes here failed: %s",
				 f->socket, local);
		}
		goto fail;
	}
done:
	*out = f;
	return 0;
fail:
	feed__close(f);
	return e ? e : -EIO;
}

void feed__close(struct feed *f)
{
	if (!f)
		return;
	conn_close(&f->ctl);
	conn_close(&f->stream);
	source__close(f->src);
	model__free(f->model);
	free(f);
}

bool feed__local(const struct feed *f)
{
	return f->local;
}

bool feed__live(const struct feed *f)
{
	return f->live;
}

const char *feed__describe(const struct feed *f)
{
	return f->describe;
}

int feed__snapshot(struct feed *f, json_t **out, char *err, size_t errlen)
{
	json_t *resp = NULL, *model;
	int e;

	*out = NULL;
	if (f->local) {
		e = source__poll(f->src, 0);
		if (e < 0) {
			snprintf(err, errlen, "reading events: %s", strerror(-e));
			return e;
		}
		model__tick(f->model, source__now_ns());
		model = model__to_json_opts(f->model, MODEL_JSON_SPARSE);
		if (!model) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		*out = json_pack("{s:b, s:I, s:o, s:o, s:{s:s, s:i, s:b}}", "ok", 1, "ts_ns",
				 (json_int_t)source__now_ns(), "model", model, "probe",
				 ctl__probe_json(source__table(f->src)), "daemon", "name",
				 "in-process", "pid", (int)getpid(), "live", 1);
		return *out ? 0 : -ENOMEM;
	}
	if (f->ctl.fd < 0) {
		e = feed__connect(f, err, errlen);
		if (e)
			return e;
	}
	/* sparse: an idle VM's zeros are most of a snapshot, and a missing member reads as 0 */
	e = conn_call(&f->ctl, "{\"cmd\":\"snapshot\", \"sparse\":true}\n", f->opts.timeout_ms,
		      &resp);
	if (e) {
		snprintf(err, errlen, "lost %s: %s", f->socket, strerror(-e));
		conn_close(&f->ctl);
		return e;
	}
	if (!json_is_true(json_object_get(resp, "ok"))) {
		const char *why = json_string_value(json_object_get(resp, "error"));

		snprintf(err, errlen, "snapshot refused: %s", why ? why : "?");
		json_decref(resp);
		return -EPROTO;
	}
	*out = resp;
	return 0;
}

int feed__stream(struct feed *f, feed_event_cb cb, void *ctx, char *err, size_t errlen)
{
	json_t *ack = NULL;
	char *line = NULL;
	json_error_t jerr;
	int e;

	f->cb = cb;
	f->cb_ctx = ctx;
	if (f->local)
		return 0;
	conn_close(&f->stream);
	if (!cb)
		return 0;
	e = ctl__connect(f->socket);
	if (e < 0) {
		char why[400];

		ctl__why(f->socket, e, why, sizeof(why));
		snprintf(err, errlen, "cannot subscribe: %s", why);
		return e;
	}
	f->stream.fd = e;
	e = ctl__write_all(f->stream.fd, "{\"cmd\":\"subscribe\"}\n", 20);
	if (!e)
		e = conn_line(&f->stream, f->opts.timeout_ms, &line);
	if (!e) {
		ack = json_loads(line, 0, &jerr);
		if (!json_is_true(json_object_get(ack, "ok")) ||
		    json_integer_value(json_object_get(ack, "record_size")) !=
			    (json_int_t)sizeof(struct gmem_event))
			e = -EPROTO;
	}
	free(line);
	json_decref(ack);
	if (e) {
		snprintf(err, errlen, "cannot subscribe on %s: %s", f->socket, strerror(-e));
		conn_close(&f->stream);
		return e;
	}
	fcntl(f->stream.fd, F_SETFL, fcntl(f->stream.fd, F_GETFL) | O_NONBLOCK);
	return 0;
}

int feed__pollfds(struct feed *f, struct pollfd *pfd, int max)
{
	int n = 0;

	if (max < 1)
		return 0;
	if (f->local)
		pfd[n++] = (struct pollfd){ .fd = source__fd(f->src), .events = POLLIN };
	else if (f->stream.fd >= 0)
		pfd[n++] = (struct pollfd){ .fd = f->stream.fd, .events = POLLIN };
	return n;
}

/* Hands out whole records; a partial one waits in the buffer for the rest. */
static int stream_read(struct feed *f)
{
	struct conn *c = &f->stream;
	size_t got = 0, off;
	ssize_t n;

	while (got < STREAM_READ_MAX) {
		if (!c->buf) {
			c->cap = 64 * 1024;
			c->buf = malloc(c->cap);
			if (!c->buf)
				return -ENOMEM;
		}
		n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		c->len += n;
		got += n;
		for (off = 0; off + sizeof(struct gmem_event) <= c->len;
		     off += sizeof(struct gmem_event)) {
			struct gmem_event ev;

			memcpy(&ev, c->buf + off, sizeof(ev));
			if (f->cb)
				f->cb(f->cb_ctx, &ev);
		}
		memmove(c->buf, c->buf + off, c->len - off);
		c->len -= off;
	}
	return 0;
}

int feed__handle(struct feed *f, const struct pollfd *pfd, int n)
{
	int e;

	if (f->local) {
		/* the source's own timers run here too, ready or not */
		e = source__poll(f->src, 0);
		if (e < 0)
			return e;
		model__tick(f->model, source__now_ns());
		return 0;
	}
	if (f->stream.fd >= 0 && n > 0 && pfd[0].fd == f->stream.fd &&
	    (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
		e = stream_read(f);
		if (e)
			conn_close(&f->stream); /* the next snapshot says why */
	}
	return 0;
}

int feed__timeout_ms(const struct feed *f)
{
	return f->local ? FEED_LOCAL_TICK : -1;
}

void feed__vm_name(void *ctx, __u32 pid, char *buf, size_t len)
{
	struct feed *f = ctx;

	buf[0] = 0;
	if (f->live)
		vmname__read(NULL, pid, buf, len);
}
