/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * vmname.h - a VM's display name, the one way gmemd and gmemtop both name a VM: the guest name
 * on its VMM's command line (qemu -name guest=, lkvm --name, firecracker --id), else the VMM's
 * comm.
 */
#ifndef GMEM_VMNAME_H
#define GMEM_VMNAME_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/* Long enough for qemu's guest names; longer ones are cut. */
#define VMNAME_LEN 64

/* A guest's name from a VMM's NUL-separated command line; false when it names none. */
bool vmname__from_cmdline(const char *cmdline, size_t len, char *out, size_t outlen);

/* Replaces every byte that does not start a well-formed UTF-8 sequence with '?', in place:
 * a name goes into JSON and Prometheus labels, which must be UTF-8, and the cut to a buffer
 * may split a character. */
void vmname__sanitize(char *s);

/*
 * The name of pid's process from /proc (proc: its root, NULL = "/proc"): the command line's
 * guest name, else comm, made valid UTF-8. "" when the process is gone (or pid is 0). Reads two small files: a
 * caller does it once per VM, when it first meets it, not per record.
 */
void vmname__read(const char *proc, __u32 pid, char *out, size_t outlen);

/* VM_NAME records: a name in VMNAME_PARTS records of 32 bytes each (a short name needs the
 * first only: returns how many were filled). */
struct gmem_event;
#define VMNAME_PARTS 2
int vmname__pack(const char *name, __u32 vm, __u64 ts_ns, struct gmem_event e[VMNAME_PARTS]);
/* Puts one record's part in its place in name (VMNAME_LEN bytes, kept NUL-terminated);
 * false for a part out of range. */
bool vmname__unpack(const struct gmem_event *e, char name[VMNAME_LEN]);

#endif /* GMEM_VMNAME_H */
