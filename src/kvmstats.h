/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * kvmstats.h - KVM's binary statistics (KVM_GET_STATS_FD, 5.14+) of the VMs gmemscope watches,
 * without debugfs.
 *
 * KVM refuses every VM and vCPU ioctl, KVM_GET_STATS_FD among them, from a process other than
 * the VM's creator (kvm->mm != current->mm: EIO), so a daemon cannot open a VM's stats itself.
 * What it can do is read the stats fds a VMM holds open: QEMU opens one per vCPU at vCPU
 * creation and keeps it (anon_inode:kvm-vcpu-stats), and a VMM may hold its VM's
 * (anon_inode:kvm-vm-stats). Those are found in the VMM's fd table, copied with pidfd_getfd
 * (ptrace access: CAP_SYS_PTRACE for a daemon that dropped its other capabilities) and read
 * with pread, which KVM allows from anywhere. The schema comes from each fd's descriptors, so
 * a newer kernel's stats appear by themselves.
 */
#ifndef GMEM_KVMSTATS_H
#define GMEM_KVMSTATS_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include <jansson.h>

#include "gmem_events.h"
#include "prom.h"

struct kvmstats;

/* Which stats become /metrics series: the default set, all, none, or a comma list of names. */
int kvmstats__new(struct kvmstats **out, const char *select, char *err, size_t errlen);
void kvmstats__free(struct kvmstats *k);
bool kvmstats__enabled(const struct kvmstats *k);

/*
 * Track exactly these VMM pids: new ones (and new vCPUs) are looked up in /proc/PID/fd, gone
 * ones closed; then every tracked fd is read. Returns how many fds were read.
 */
int kvmstats__update(struct kvmstats *k, const __u32 *pids, size_t n);
/*
 * kvmstats__update in two halves, for a daemon whose scrapes run on another thread: refresh
 * does the /proc lookups and reads (milliseconds with many VMs) and touches nothing
 * kvmstats__families() or kvmstats__counts() return, so it may run without the lock those
 * readers hold; publish, under it, rebuilds the families and the counts.
 */
int kvmstats__refresh(struct kvmstats *k, const __u32 *pids, size_t n);
void kvmstats__publish(struct kvmstats *k);

/* The selected stats as families (gmem_kvm_NAME_total counters, gmem_kvm_NAME gauges; *_ns
 * stats in seconds), vCPU stats summed per VM. Valid until the next update. */
void kvmstats__families(struct kvmstats *k, const struct prom_family **fams, size_t *n);

/* Every stat of every tracked VM and vCPU: [{vm, vm_stats: {...}, vcpus: [{vcpu, stats}]}]. */
json_t *kvmstats__json(const struct kvmstats *k);

/* Counts for gmemd's own health: fds read, and lookups that failed (EPERM: no ptrace access). */
void kvmstats__counts(const struct kvmstats *k, __u64 *fds, __u64 *errors, int *last_errno);

/*
 * Whether this kernel gives binary stats: creates a VM, asks for its stats fd, closes both at
 * once. The number of VM stats, or -errno; why says what was found either way.
 */
int kvmstats__probe(char *why, size_t len);

/* ---- recordings (docs/recording-format.md: KVM_STAT_DESC, KVM_STAT) ------------------------ */

/*
 * The tick's samples as records, to cb, all with timestamp ts_ns: a DESC for every stat id the
 * samples use, then one KVM_STAT per VM or vCPU stat. Recorded: the scalar stats the /metrics
 * set selects (their DESC flagged EXPORTED), and always exits, halt_exits, pf_taken, pf_fixed
 * and halt_wait_ns per vCPU, pages_4k/2m/1g per VM. Histograms are not recorded. Returns the
 * records emitted.
 */
typedef void (*kvmstats_emit_fn)(void *ctx, const struct gmem_event *e);
size_t kvmstats__emit(struct kvmstats *k, __u64 ts_ns, kvmstats_emit_fn cb, void *ctx);

/* A stats set fed from a recording's records instead of fds: families, JSON and report work
 * on it; it exports what the recorder exported. */
int kvmstats__new_replay(struct kvmstats **out);
/* Takes KVM_STAT_DESC, KVM_STAT and VM_EXIT records; ignores the rest. */
void kvmstats__apply(struct kvmstats *k, const struct gmem_event *e);

/* A VM's mapping mix over a recording: pages_4k, pages_2m, pages_1g in that order. */
struct kvmstats_mix {
	__u64 first, last, min, max;
	__u64 n; /* samples */
};
#define KVMSTATS_MIX_NAMES { "pages_4k", "pages_2m", "pages_1g" }

/*
 * What a recording said per VM: [{vm, gone, samples, first_ns, last_ns, vm_stats: {name: v},
 * vcpu_totals: {name: sum over vCPUs}, vcpus: [{vcpu, stats}], mapping: {pages_4k: {first,
 * last, min, max, samples}, ...}}] (last values, in the descriptors' units), and how many
 * records could not be used.
 */
json_t *kvmstats__report_json(const struct kvmstats *k);
__u64 kvmstats__bad_records(const struct kvmstats *k);
/* The mapping mix of one VM, NULL when the recording has no samples of it. */
const struct kvmstats_mix *kvmstats__mix(const struct kvmstats *k, __u32 vm);

/* Name bytes of a DESC record (ino, a, b: 24 bytes) and back; part selects bytes 24*part.. */
void kvmstats__pack_name(struct gmem_event *e, const char *name, unsigned int part);
/* Appends the record's bytes to name (size len, NUL-terminated); false on a bad part. */
bool kvmstats__unpack_name(const struct gmem_event *e, char *name, size_t len);

/* This DESC record's part of the name, when it is one KVM could give ([a-z0-9_]+). */
bool kvmstats__desc_name(const struct gmem_event *e, char *buf, size_t len);
/* The descriptor flags' parts by name ("cumulative", "seconds", ...; "?" for others). */
const char *kvmstats__type_name(__u32 flags);
const char *kvmstats__unit_name(__u32 flags);
unsigned int kvmstats__base(__u32 flags); /* 10 or 2 */

/* Named scalar stats from one stats fd (a VMM reading its own); how many were found, -errno. */
int kvmstats__read_fd(int fd, const char *const *names, __u64 *vals, size_t n);

#endif /* GMEM_KVMSTATS_H */
