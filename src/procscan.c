// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * procscan.c - find live guest_memfd files through /proc, for kernels that refuse BPF
 * iterators (or when asked to, for comparison).
 *
 * A gmem fd reads as "anon_inode:[kvm-gmem]" in /proc/PID/fd up to 6.18; from 6.19 guest_memfd
 * has its own pseudo-filesystem and the link reads "/[kvm-gmem] (deleted)", which a file of that
 * name could also read, so that form is confirmed by the filesystem's magic (statfs through the
 * link). A gmem mapping shows the same name, with its inode number, in /proc/PID/maps. The populated size comes from cachestat(2)
 * (6.5+) on a copy of the fd taken with pidfd_getfd(2). The VM is the holding process: the
 * pid in kvm->stats_id is the thread that created the VM, which for a VMM is its main thread.
 * Slower than the iterators (a readlink per fd on the host) and blind to a mapping whose fd was
 * closed when the holder cannot be asked for the size; it is the fallback, not the default.
 */
#include <ctype.h>
#include <stdbool.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "procscan.h"

#define GMEM_LINK "anon_inode:[kvm-gmem]"
#define GMEM_LINK_FS "/[kvm-gmem] (deleted)" /* 6.19+: alloc_file_pseudo on its own fs */
#define GUEST_MEMFD_MAGIC 0x474d454d

#define GMEM_SYS_cachestat 451 /* not in bookworm's headers */

struct gmem_cachestat_range {
	__u64 off;
	__u64 len;
};

struct gmem_cachestat {
	__u64 nr_cache;
	__u64 nr_dirty;
	__u64 nr_writeback;
	__u64 nr_evicted;
	__u64 nr_recently_evicted;
};

static int add_rec(struct gmem_scan_rec **recs, size_t *n, size_t *cap,
		   const struct gmem_scan_rec *r)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if ((*recs)[i].ino == r->ino)
			return 0;
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 32;
		struct gmem_scan_rec *nr = realloc(*recs, nc * sizeof(*nr));

		if (!nr)
			return -ENOMEM;
		*recs = nr;
		*cap = nc;
	}
	(*recs)[(*n)++] = *r;
	return 0;
}

/* Pages in the file's page cache, through a copy of the holder's fd. */
static __u64 populated_pages(int pid, int fd)
{
	struct gmem_cachestat_range range = { 0, 0 }; /* len 0: to the end */
	struct gmem_cachestat cs = {};
	int pidfd, copy;
	__u64 pages = 0;

	pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return 0;
	copy = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (copy >= 0) {
		if (syscall(GMEM_SYS_cachestat, copy, &range, &cs, 0) == 0)
			pages = cs.nr_cache;
		close(copy);
	}
	close(pidfd);
	return pages;
}

static bool is_gmem_fd(const char *path, const char *link, size_t len)
{
	struct statfs sfs;

	if (len == strlen(GMEM_LINK) && !memcmp(link, GMEM_LINK, len))
		return true;
	if (len != strlen(GMEM_LINK_FS) || memcmp(link, GMEM_LINK_FS, len))
		return false;
	return statfs(path, &sfs) == 0 && (unsigned long)sfs.f_type == GUEST_MEMFD_MAGIC;
}

static int scan_fds(int pid, struct gmem_scan_rec **recs, size_t *n, size_t *cap)
{
	char dir[64], path[128], link[64];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int err = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	d = opendir(dir);
	if (!d)
		return 0; /* gone, or not ours to look at */
	while (!err && (de = readdir(d))) {
		struct gmem_scan_rec r = {};
		ssize_t len;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0 || !is_gmem_fd(path, link, len))
			continue;
		if (stat(path, &st))
			continue;
		r.ino = st.st_ino;
		r.size = st.st_size;
		r.nrpages = populated_pages(pid, atoi(de->d_name));
		r.vm = pid;
		r.holder = pid;
		err = add_rec(recs, n, cap, &r);
	}
	closedir(d);
	return err;
}

/* Mappings whose fd is gone still hold the file. */
static int scan_maps(int pid, struct gmem_scan_rec **recs, size_t *n, size_t *cap)
{
	char path[64], line[512];
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (!err && fgets(line, sizeof(line), f)) {
		struct gmem_scan_rec r = {};
		unsigned long long ino;

		if (!strstr(line, "[kvm-gmem]"))
			continue;
		/* start-end perms offset dev inode path */
		if (sscanf(line, "%*s %*s %*s %*s %llu", &ino) != 1 || !ino)
			continue;
		r.ino = ino;
		r.vm = pid;
		r.holder = pid;
		err = add_rec(recs, n, cap, &r);
	}
	fclose(f);
	return err;
}

int procscan__run(struct gmem_scan_rec **recs, size_t *n)
{
	struct dirent *de;
	size_t cap = 0;
	int err = 0;
	DIR *d;

	*recs = NULL;
	*n = 0;
	d = opendir("/proc");
	if (!d)
		return -errno;
	/* fds first: they carry the size and populated pages, a mapping only the inode */
	while (!err && (de = readdir(d)))
		if (isdigit((unsigned char)de->d_name[0]))
			err = scan_fds(atoi(de->d_name), recs, n, &cap);
	rewinddir(d);
	while (!err && (de = readdir(d)))
		if (isdigit((unsigned char)de->d_name[0]))
			err = scan_maps(atoi(de->d_name), recs, n, &cap);
	closedir(d);
	if (err) {
		free(*recs);
		*recs = NULL;
		*n = 0;
	}
	return err;
}
