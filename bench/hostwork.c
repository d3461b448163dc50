// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * hostwork: host work that has nothing to do with guest_memfd, timed, for bench/hostcost.
 *
 * An observer on a production host is paid for by everything it is *not* watching: every
 * ioctl QEMU, vhost or storage issues, every close, every fallocate on a disk image, every page
 * the page cache takes in. Each loop here is one such kind of work; it prints the loop's wall
 * time in nanoseconds per operation, so that bench/hostcost can compare the same loop untraced,
 * under gmemd --empty-bodies (the floor) and under gmemd.
 *
 *   hostwork getppid N      N getppid(): a syscall gmemd hooks nowhere, the cheapest there is
 *   hostwork ioctl N        N ioctl(FIONREAD) on a pipe: the cheapest syscall gmemd hooks
 *   hostwork openclose N    N open()+close() of /dev/null
 *   hostwork fallocate N    N fallocate(64 KiB) + punch of it, on a regular file in DIR
 *   hostwork pagecache N    N reads of a 16 MiB file in DIR, its cache dropped before each
 *
 * DIR is $HOSTWORK_DIR or /var/tmp (a disk filesystem, where tmpfs would not be the page
 * cache path a disk image takes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PC_BYTES (16u << 20)

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int die(const char *what)
{
	fprintf(stderr, "hostwork: %s: %s\n", what, strerror(errno));
	return 1;
}

static int tmpfile_in_dir(char *path, size_t len)
{
	const char *dir = getenv("HOSTWORK_DIR");
	int fd;

	snprintf(path, len, "%s/hostwork.XXXXXX", dir && *dir ? dir : "/var/tmp");
	fd = mkstemp(path);
	if (fd >= 0)
		unlink(path);
	return fd;
}

int main(int argc, char **argv)
{
	unsigned long long t0, t1, n, i;
	char path[256], *end;
	int fd, p[2];

	if (argc != 3 || !*argv[2] || (n = strtoull(argv[2], &end, 10), *end) || !n) {
		fprintf(stderr, "usage: hostwork getppid|ioctl|openclose|fallocate|pagecache N\n");
		return 64;
	}
	if (!strcmp(argv[1], "getppid")) {
		t0 = now_ns();
		for (i = 0; i < n; i++)
			syscall(SYS_getppid); /* not glibc's, which might not enter the kernel */
		t1 = now_ns();
	} else if (!strcmp(argv[1], "ioctl")) {
		int avail;

		if (pipe(p))
			return die("pipe");
		t0 = now_ns();
		for (i = 0; i < n; i++)
			if (ioctl(p[0], FIONREAD, &avail))
				return die("ioctl");
		t1 = now_ns();
	} else if (!strcmp(argv[1], "openclose")) {
		t0 = now_ns();
		for (i = 0; i < n; i++) {
			fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				return die("open /dev/null");
			close(fd);
		}
		t1 = now_ns();
	} else if (!strcmp(argv[1], "fallocate")) {
		fd = tmpfile_in_dir(path, sizeof(path));
		if (fd < 0)
			return die(path);
		t0 = now_ns();
		for (i = 0; i < n; i++) {
			if (fallocate(fd, 0, 0, 65536))
				return die("fallocate");
			if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 65536))
				return die("fallocate punch");
		}
		t1 = now_ns();
	} else if (!strcmp(argv[1], "pagecache")) {
		static char buf[1 << 20];
		unsigned int off;

		fd = tmpfile_in_dir(path, sizeof(path));
		if (fd < 0)
			return die(path);
		memset(buf, 0x5a, sizeof(buf));
		for (off = 0; off < PC_BYTES; off += sizeof(buf))
			if (pwrite(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf))
				return die("pwrite");
		if (fdatasync(fd))
			return die("fdatasync");
		t0 = now_ns();
		for (i = 0; i < n; i++) {
			if (posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED))
				return die("posix_fadvise");
			for (off = 0; off < PC_BYTES; off += sizeof(buf))
				if (pread(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf))
					return die("pread");
		}
		t1 = now_ns();
	} else {
		fprintf(stderr, "hostwork: '%s' is not getppid, ioctl, openclose, fallocate or pagecache\n",
			argv[1]);
		return 64;
	}
	printf("%.1f\n", (double)(t1 - t0) / n);
	return 0;
}
