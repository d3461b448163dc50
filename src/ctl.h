/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * ctl.h - gmemd's control socket protocol, version 1 (docs/control-protocol.md), client side
 * and the JSON shapes both sides share.
 *
 * A UNIX stream socket. The client sends one JSON object per line ({"cmd": ...}); gmemd answers
 * each with one JSON object per line ({"ok": true, ...} or {"ok": false, "error": "..."}).
 * After a successful "subscribe" the connection carries only raw struct gmem_event records
 * (64 bytes, host endianness) until it is closed.
 */
#ifndef GMEM_CTL_H
#define GMEM_CTL_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <jansson.h>
#include <stddef.h>

#include "probe.h"

#define CTL_PROTO_VERSION 1
#define CTL_DEFAULT_SOCKET "/run/gmemscope/gmemd.sock"
#define CTL_MAX_LINE (1 << 20)

/* Connect; -errno on failure. */
int ctl__connect(const char *path);
/* What kind of file st describes, in words ("a directory", "a regular file", ...). */
struct stat;
const char *ctl__file_kind(const struct stat *st);
/*
 * Why connecting to path failed with err (-errno from ctl__connect), as one clause a user can
 * act on: "no gmemd is listening on PATH (...)", "PATH is a regular file, not a control
 * socket", "permission denied on PATH (owner root, group G, mode 0660: ...)".
 */
void ctl__why(const char *path, int err, char *buf, size_t len);
/* Send req (not consumed) and read one response line; *resp is new. 0 or -errno / -EPROTO. */
int ctl__call(int fd, json_t *req, json_t **resp);
/* Read one '\n'-terminated line (without the '\n') into a malloc'd string; -errno or -EPROTO
 * when the line is longer than max. Reads byte by byte: only for the short handshake. */
int ctl__read_line(int fd, char **line, size_t max);
/* Write all of buf, retrying on EINTR; 0 or -errno. */
int ctl__write_all(int fd, const void *buf, size_t len);

json_t *ctl__probe_json(const struct probe_table *t);

#endif /* GMEM_CTL_H */
