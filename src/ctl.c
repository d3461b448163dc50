// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* ctl.c - control socket client helpers and shared JSON shapes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"

int ctl__connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int ctl__write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

int ctl__read_line(int fd, char **line, size_t max)
{
	size_t len = 0, cap = 256;
	char *buf = malloc(cap), c;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -ECONNRESET;
		}
		if (c == '\n')
			break;
		if (len + 2 > cap) {
			char *nb;

			if (cap >= max) {
				free(buf);
				return -EPROTO;
			}
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		buf[len++] = c;
	}
	buf[len] = 0;
	*line = buf;
	return 0;
}

int ctl__call(int fd, json_t *req, json_t **resp)
{
	char *text = json_dumps(req, JSON_COMPACT), *line = NULL;
	json_error_t jerr;
	int err;

	if (!text)
		return -ENOMEM;
	err = ctl__write_all(fd, text, strlen(text));
	if (!err)
		err = ctl__write_all(fd, "\n", 1);
	free(text);
	if (err)
		return err;
	err = ctl__read_line(fd, &line, CTL_MAX_LINE * 64);
	if (err)
		return err;
	*resp = json_loads(line, 0, &jerr);
	free(line);
	return *resp ? 0 : -EPROTO;
}

json_t *ctl__probe_json(const struct probe_table *t)
{
	json_t *rows = json_array(), *o;
	int i;

	for (i = 0; i < t->n; i++) {
		const struct probe_row *r = &t->rows[i];

		json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
						      "event", r->event, "what", r->what,
						      "tier", probe__tier_str(r->tier),
						      "state", probe__state_str(r->state),
						      "reason", r->reason,
						      "other", r->other_reason));
	}
	o = json_pack("{s:s, s:b, s:s, s:o}", "kernel", t->kernel, "fentry_permitted",
		      t->fentry_permitted, "fentry_reason", t->fentry_reason, "events", rows);
	return o;
}
