// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vmname.c - naming a VM from its VMM's command line or comm (vmname.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gmem_events.h"
#include "vmname.h"

/* qemu's option values: "a,b=c": commas doubled to escape. Takes guest= or the bare first. */
static bool qemu_value_name(const char *v, char *out, size_t outlen)
{
	char part[256];
	size_t n = 0;
	bool first = true;

	for (;; v++) {
		if (*v == ',' && v[1] == ',') {
			if (n + 1 < sizeof(part))
				part[n++] = ',';
			v++;
			continue;
		}
		if (*v && *v != ',') {
			if (n + 1 < sizeof(part))
				part[n++] = *v;
			continue;
		}
		part[n] = 0;
		if (!strncmp(part, "guest=", 6) && part[6]) {
			snprintf(out, outlen, "%s", part + 6);
			return true;
		}
		if (first && n && !strchr(part, '=')) {
			snprintf(out, outlen, "%s", part);
			return true;
		}
		first = false;
		n = 0;
		if (!*v)
			return false;
	}
}

bool vmname__from_cmdline(const char *cmdline, size_t len, char *out, size_t outlen)
{
	static const char *const opts[] = { "-name", "--name", "--id" };
	const char *p = cmdline, *end = cmdline + len, *arg, *val;
	size_t i, k;

	while (p < end) {
		arg = p;
		p = memchr(p, 0, end - p);
		if (!p)
			return false; /* not NUL-terminated: a truncated read */
		p++;
		for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
			k = strlen(opts[i]);
			if (strncmp(arg, opts[i], k))
				continue;
			if (arg[k] == '=')
				val = arg + k + 1;
			else if (!arg[k] && p < end && memchr(p, 0, end - p))
				val = p;
			else
				continue;
			if (qemu_value_name(val, out, outlen))
				return true;
		}
	}
	return false;
}

static ssize_t read_small(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len);
	close(fd);
	return n;
}

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates,
 * nothing past U+10FFFF), 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;
	unsigned int c;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, c = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return n;
}

void vmname__sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n;

	while (*p) {
		n = utf8_len(p);
		if (n) {
			p += n;
			continue;
		}
		*p++ = '?';
	}
}

void vmname__read(const char *proc, __u32 pid, char *out, size_t outlen)
{
	char path[4096 + 32], cmd[4096];
	ssize_t n;

	if (!outlen)
		return;
	out[0] = 0;
	if (!pid)
		return;
	if (!proc)
		proc = "/proc";
	snprintf(path, sizeof(path), "%s/%u/cmdline", proc, pid);
	n = read_small(path, cmd, sizeof(cmd));
	if (n > 0 && vmname__from_cmdline(cmd, n, out, outlen)) {
		vmname__sanitize(out);
		return;
	}
	/* comm: still there for a zombie, whose cmdline reads empty */
	snprintf(path, sizeof(path), "%s/%u/comm", proc, pid);
	n = read_small(path, cmd, sizeof(cmd) - 1);
	if (n <= 0)
		return;
	cmd[n] = 0;
	if (n && cmd[n - 1] == '\n')
		cmd[n - 1] = 0; /* the kernel's; a newline inside comm is the name's */
	snprintf(out, outlen, "%s", cmd);
	vmname__sanitize(out);
}

/* The 32 name bytes of one part live in ino, a, b, c: byte i in bits 8*(i%8) of word i/8. */
static __u64 *part_word(struct gmem_event *e, unsigned int w)
{
	__u64 *words[4] = { &e->ino, &e->a, &e->b, &e->c };

	return words[w];
}

int vmname__pack(const char *name, __u32 vm, __u64 ts_ns, struct gmem_event e[VMNAME_PARTS])
{
	size_t len = strnlen(name, VMNAME_LEN - 1), cut = len, i;
	int parts = 1, p;

	if (len > 32) {
		/* cut at a character's start, so each part is whole UTF-8 */
		for (cut = 32; cut > 0 && ((unsigned char)name[cut] & 0xc0) == 0x80; cut--)
			;
		parts = 2;
	}
	for (p = 0; p < parts; p++) {
		const char *from = name + (p ? cut : 0);
		size_t n = p ? len - cut : cut;

		e[p] = (struct gmem_event){ .ts_ns = ts_ns, .kind = GMEM_EV_VM_NAME, .vm = vm,
					    .tid = vm, .to_order = p, .flags = GMEM_EVF_SYNTH };
		for (i = 0; i < 32 && i < n; i++)
			*part_word(&e[p], i / 8) |= (__u64)(unsigned char)from[i] << (8 * (i % 8));
	}
	return parts;
}

bool vmname__unpack(const struct gmem_event *e, char name[VMNAME_LEN])
{
	struct gmem_event c = *e;
	size_t i, at;

	if (e->kind != GMEM_EV_VM_NAME || e->to_order >= VMNAME_PARTS)
		return false;
	/* part 0 starts the name, part 1 goes on from where it ended */
	at = e->to_order ? strnlen(name, VMNAME_LEN - 1) : 0;
	for (i = 0; i < 32 && at < VMNAME_LEN - 1; i++) {
		char ch = (char)(*part_word(&c, i / 8) >> (8 * (i % 8)));

		if (!ch)
			break;
		name[at++] = ch;
	}
	name[at] = 0;
	vmname__sanitize(name);
	return true;
}
