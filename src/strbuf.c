// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

void strbuf__init(struct strbuf *sb)
{
	memset(sb, 0, sizeof(*sb));
}

void strbuf__release(struct strbuf *sb)
{
	if (!sb)
		return;
	free(sb->buf);
	strbuf__init(sb);
}

void strbuf__reset(struct strbuf *sb)
{
	sb->len = 0;
	sb->err = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

void strbuf__truncate(struct strbuf *sb, size_t len)
{
	if (len >= sb->len)
		return;
	sb->len = len;
	sb->buf[len] = '\0';
}

/* Makes room for extra more bytes plus the NUL. */
static int strbuf__grow(struct strbuf *sb, size_t extra)
{
	size_t need, cap;
	char *buf;

	if (sb->err)
		return sb->err;
	if (extra > (size_t)-1 - sb->len - 1) {
		sb->err = -EOVERFLOW;
		return sb->err;
	}
	need = sb->len + extra + 1;
	if (need <= sb->cap)
		return 0;
	cap = sb->cap ? sb->cap : 256;
	while (cap < need)
		cap = cap > (size_t)-1 / 2 ? need : cap * 2;
	buf = realloc(sb->buf, cap);
	if (!buf) {
		sb->err = -ENOMEM;
		return sb->err;
	}
	sb->buf = buf;
	sb->cap = cap;
	return 0;
}

int strbuf__append(struct strbuf *sb, const char *s, size_t n)
{
	int err;

	err = strbuf__grow(sb, n);
	if (err)
		return err;
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
	return 0;
}

int strbuf__puts(struct strbuf *sb, const char *s)
{
	return strbuf__append(sb, s, strlen(s));
}

int strbuf__putc(struct strbuf *sb, char c)
{
	return strbuf__append(sb, &c, 1);
}

int strbuf__vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list ap2;
	int n, err;

	if (sb->err)
		return sb->err;
	/* Try in the space there is; most lines fit, so most calls format once. */
	va_copy(ap2, ap);
	n = vsnprintf(sb->buf ? sb->buf + sb->len : NULL, sb->buf ? sb->cap - sb->len : 0, fmt,
		      ap2);
	va_end(ap2);
	if (n < 0) {
		sb->err = -EINVAL;
		goto cleanup;
	}
	if (sb->buf && (size_t)n < sb->cap - sb->len) {
		sb->len += n;
		return 0;
	}
	err = strbuf__grow(sb, (size_t)n);
	if (err)
		goto cleanup;
	vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
	sb->len += n;
	return 0;
cleanup:
	/* A failed vsnprintf may have written into the spare room: keep the string whole. */
	if (sb->buf)
		sb->buf[sb->len] = '\0';
	return sb->err;
}

int strbuf__printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = strbuf__vprintf(sb, fmt, ap);
	va_end(ap);
	return err;
}

const char *strbuf__str(const struct strbuf *sb)
{
	return sb->buf ? sb->buf : "";
}

char *strbuf__detach(struct strbuf *sb, size_t *len)
{
	char *buf = NULL;

	if (!sb->err)
		buf = sb->buf;
	else
		free(sb->buf);
	if (len)
		*len = buf ? sb->len : 0;
	strbuf__init(sb);
	return buf;
}
