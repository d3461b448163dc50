/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* procscan.h - live guest_memfd files from /proc, where BPF iterators are refused. */
#ifndef GMEM_PROCSCAN_H
#define GMEM_PROCSCAN_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stddef.h>
#include "gmem_events.h"

/* Copying another process's fds (procscan, kvmstats): syscall numbers older headers lack. */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* One record per file (deduplicated); *recs is malloc'd. 0 or -errno. */
int procscan__run(struct gmem_scan_rec **recs, size_t *n);

#endif /* GMEM_PROCSCAN_H */
