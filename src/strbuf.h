/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * strbuf.h - a growable, always NUL-terminated string buffer.
 *
 * Errors are sticky: once an allocation fails every later append is a no-op that returns the
 * same error, so a renderer can append a few hundred lines and check once at the end instead
 * of after every call.
 */
#ifndef GMEM_STRBUF_H
#define GMEM_STRBUF_H

#ifdef __bpf__
#error "strbuf.h is user-space only"
#endif

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *buf;  /* NULL until the first append; strbuf__str() never returns NULL */
	size_t len; /* bytes used, excluding the NUL */
	size_t cap; /* bytes allocated */
	int err;    /* 0, or the first -errno an append met */
};

#define STRBUF_INIT { 0 }

void strbuf__init(struct strbuf *sb);
/* Frees the memory and leaves sb empty and reusable; accepts NULL. */
void strbuf__release(struct strbuf *sb);
/* Empties sb and clears a sticky error, keeping the memory for reuse. */
void strbuf__reset(struct strbuf *sb);
/* Cuts sb back to len bytes (no-op when already shorter). */
void strbuf__truncate(struct strbuf *sb, size_t len);

int strbuf__append(struct strbuf *sb, const char *s, size_t n);
int strbuf__puts(struct strbuf *sb, const char *s);
int strbuf__putc(struct strbuf *sb, char c);
int strbuf__printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf__vprintf(struct strbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

const char *strbuf__str(const struct strbuf *sb);
/*
 * Hands the buffer to the caller (free() it), e.g. to an HTTP library that takes ownership;
 * sb is left empty. Returns NULL after an error or when nothing was ever appended.
 */
char *strbuf__detach(struct strbuf *sb, size_t *len);

#endif /* GMEM_STRBUF_H */
