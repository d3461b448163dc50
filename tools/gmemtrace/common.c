// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * common.c - what several verbs share: sizes and times in words, signals, opening a recording, the
 * inode set and the VM filter.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "recording.h"
#include "source.h"

#include "gmemtrace.h"

#define NS_PER_SEC 1000000000ull

/* "64M", "1G", "4096": bytes. */
int parse_size(const char *arg, unsigned long long *out)
{
	unsigned long long v, mul = 1;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || arg[0] == '-')
		return -1;
	if (*end == 'K' || *end == 'k')
		mul = 1ull << 10;
	else if (*end == 'M' || *end == 'm')
		mul = 1ull << 20;
	else if (*end == 'G' || *end == 'g')
		mul = 1ull << 30;
	else if (*end)
		return -1;
	if (*end && end[1])
		return -1;
	if (!v || v > ULLONG_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

__u64 now_ns(void)
{
	return source__now_ns();
}

__u64 wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* 1258291 -> "1.2 MiB": memory is counted in powers of two. */
const char *human_bytes(double v, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
	return buf;
}

/* ns -> "1.53 us" */
const char *human_ns(double ns, char *buf, size_t len)
{
	if (ns < 1000)
		snprintf(buf, len, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.2f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.2f ms", ns / 1e6);
	else
		snprintf(buf, len, "%.3f s", ns / 1e9);
	return buf;
}

/* The signals a long-running verb stops on, as a pollable fd; blocked in every thread. */
int signals_fd(void)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

int read_signal(int fd)
{
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) == sizeof(si))
		return si.ssi_signo;
	return 0;
}

/* Opens a recording or says in one line why not. */
struct recording *open_recording(const char *path)
{
	struct recording *r = NULL;
	char err[512] = "";

	if (recording__open(&r, path, err, sizeof(err))) {
		fprintf(stderr, "gmemtrace: %s: %s\n", path, err);
		return NULL;
	}
	return r;
}

/* After the last recording__next(): 0 for a complete file, 1 (and the one-line error) if it
 * ended early or was damaged. */
int read_status(const char *path, struct recording *r, int status)
{
	if (status >= 0)
		return 0;
	fprintf(stderr, "gmemtrace: %s: %s\n", path, recording__error(r));
	return 1;
}

json_t *argv_json(int argc, char **argv)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < argc; i++)
		json_array_append_new(a, json_string(argv[i]));
	return a;
}

static size_t u64set_home(const struct u64set *s, __u64 k)
{
	return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20) & (s->cap - 1);
}

bool u64set_has(const struct u64set *s, __u64 k)
{
	size_t i;

	if (!s->cap || !k)
		return false;
	for (i = u64set_home(s, k); s->slots[i]; i = (i + 1) & (s->cap - 1))
		if (s->slots[i] == k)
			return true;
	return false;
}

static void u64set_grow(struct u64set *s)
{
	struct u64set b = { .cap = s->cap ? s->cap * 2 : 64 };
	size_t i;

	b.slots = calloc(b.cap, sizeof(__u64));
	if (!b.slots)
		return;
	for (i = 0; i < s->cap; i++)
		if (s->slots[i])
			u64set_add(&b, s->slots[i]);
	free(s->slots);
	*s = b;
}

void u64set_add(struct u64set *s, __u64 k)
{
	size_t i;

	if (!k || u64set_has(s, k))
		return;
	if ((s->n + 1) * 2 > s->cap)
		u64set_grow(s);
	if ((s->n + 1) * 2 > s->cap)
		return;
	for (i = u64set_home(s, k); s->slots[i]; i = (i + 1) & (s->cap - 1))
		;
	s->slots[i] = k;
	s->n++;
}

/* Rebuilds without k: deletions are rare (one per released file). */
void u64set_del(struct u64set *s, __u64 k)
{
	struct u64set b = { .cap = s->cap };
	size_t i;

	if (!u64set_has(s, k))
		return;
	b.slots = calloc(b.cap, sizeof(__u64));
	if (!b.slots)
		return;
	for (i = 0; i < s->cap; i++)
		if (s->slots[i] && s->slots[i] != k)
			u64set_add(&b, s->slots[i]);
	free(s->slots);
	*s = b;
}

static bool vm_in(const __u32 *vms, int n, __u32 vm)
{
	int i;

	for (i = 0; i < n; i++)
		if (vms[i] == vm)
			return true;
	return false;
}

/*
 * Keeps the records of the chosen VMs, the records that name one of their files (frees and
 * releases often cannot name the VM), and host-wide samples and drop reports. inos learns the
 * chosen VMs' files as they are created or discovered.
 */
bool vm_filter_keep(struct u64set *inos, const __u32 *vms, int n, const struct gmem_event *e)
{
	bool keep;

	if (e->vm && vm_in(vms, n, e->vm)) {
		keep = true;
		if ((e->kind == GMEM_EV_FILE_CREATE && e->result >= 0) ||
		    e->kind == GMEM_EV_FILE_DISCOVER)
			u64set_add(inos, e->ino);
	} else if (e->ino && u64set_has(inos, e->ino)) {
		keep = !e->vm; /* a file of ours under another VM: the number was reused */
	} else {
		keep = !e->vm && (e->kind == GMEM_EV_LOST || e->kind == GMEM_EV_DMAP_SAMPLE ||
				  e->kind == GMEM_EV_KVM_STAT_DESC);
	}
	if (keep && e->kind == GMEM_EV_FILE_RELEASE)
		u64set_del(inos, e->ino);
	return keep;
}
