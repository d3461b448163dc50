// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* ctl.c - control socket client helpers and shared JSON shapes. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

const char *ctl__file_kind(const struct stat *st)
{
	switch (st->st_mode & S_IFMT) {
	case S_IFSOCK: return "a socket";
	case S_IFDIR: return "a directory";
	case S_IFREG: return "a regular file";
	case S_IFLNK: return "a symbolic link";
	case S_IFIFO: return "a FIFO";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	default: return "not a socket";
	}
}

void ctl__why(const char *path, int err, char *buf, size_t len)
{
	struct stat st;
	bool have_st;

	if (err == -ENOENT) {
		snprintf(buf, len, "no gmemd is listening on %s (no such socket: start gmemd, or "
			 "pass the --socket it was given)", path);
		return;
	}
	if (err == -ENAMETOOLONG) {
		snprintf(buf, len, "socket path %s is too long (at most 107 bytes)", path);
		return;
	}
	have_st = lstat(path, &st) == 0;
	if (have_st && !S_ISSOCK(st.st_mode)) {
		snprintf(buf, len, "%s is %s, not a gmemd control socket", path,
			 ctl__file_kind(&st));
		return;
	}
	if (err == -ECONNREFUSED) {
		snprintf(buf, len, "no gmemd is listening on %s (a stale socket left behind; "
			 "start gmemd, which replaces it)", path);
		return;
	}
	if (err == -EACCES || err == -EPERM) {
		struct group *g = have_st ? getgrgid(st.st_gid) : NULL;
		struct passwd *u = g ? getpwuid(st.st_uid) : NULL;
		char grp[64];

		if (!g) {
			snprintf(buf, len, "permission denied on %s or its directory", path);
			return;
		}
		snprintf(grp, sizeof(grp), "%s", g->gr_name);
		snprintf(buf, len, "permission denied on %s (owner %s, group %s, mode %04o): run as "
			 "root, or as a member of group %s (gmemd --socket-group sets it)", path,
			 u ? u->pw_name : "?", grp, st.st_mode & 07777, grp);
		return;
	}
	snprintf(buf, len, "cannot connect to %s: %s", path, strerror(-err));
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
