// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* cli.c - command-line helpers shared by gmemd, gmemtrace and gmemtop. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#include <bpf/libbpf.h>
#include <jansson.h>

#include "cli.h"
#include "ctl.h"
#include "kvmstats.h"

#ifndef GMEMSCOPE_REVISION
#define GMEMSCOPE_REVISION "unknown"
#endif

enum { OPT_USAGE = 0x7f00 };

static const struct argp_option std_opts[] = {
	{ "help", 'h', NULL, 0, "Give this help list", -1 },
	{ "usage", OPT_USAGE, NULL, 0, "Give a short usage message", -1 },
	{ "version", 'V', NULL, 0, "Print program version", -1 },
	{},
};

void cli__print_version(FILE *f, const char *prog)
{
	fprintf(f, "%s %s (git %s, libbpf %u.%u)\n", prog, GMEMSCOPE_VERSION, GMEMSCOPE_REVISION,
		libbpf_major_version(), libbpf_minor_version());
}

char *cli__rfc3339(const struct timespec *ts, char *buf, size_t len)
{
	char zone[8];
	struct tm tm;
	size_t n;

	if (!len)
		return buf;
	buf[0] = 0;
	if (!localtime_r(&ts->tv_sec, &tm))
		return buf;
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	/* %z is "+0100"; RFC 3339 wants "+01:00" */
	if (!n || strftime(zone, sizeof(zone), "%z", &tm) != 5)
		return buf;
	snprintf(buf + n, len - n, ".%03ld%.3s:%.2s", ts->tv_nsec / 1000000, zone, zone + 3);
	return buf;
}

const char *cli__revision(void)
{
	return GMEMSCOPE_REVISION;
}

const char *cli__libbpf_version(void)
{
	static char buf[32];

	snprintf(buf, sizeof(buf), "%u.%u", libbpf_major_version(), libbpf_minor_version());
	return buf;
}

void cli__set_prog_name(char **argv)
{
	const char *slash = argv[0] ? strrchr(argv[0], '/') : NULL;

	if (slash && slash[1])
		argv[0] = (char *)slash + 1;
	program_invocation_name = argv[0];
}

static error_t std_parse(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'h':
		argp_state_help(state, stdout, ARGP_HELP_STD_HELP);
		return 0; /* not reached: ARGP_HELP_STD_HELP exits 0 */
	case OPT_USAGE:
		argp_state_help(state, stdout, ARGP_HELP_USAGE | ARGP_HELP_EXIT_OK);
		return 0;
	case 'V':
		cli__print_version(stdout, program_invocation_short_name);
		exit(0);
	default:
		return ARGP_ERR_UNKNOWN;
	}
}

static const struct argp std_argp = { std_opts, std_parse, NULL, NULL, NULL, NULL, NULL };

const struct argp_child cli__std_children[] = {
	{ &std_argp, 0, NULL, -1 },
	{},
};

int cli__parse_ulong(const char *arg, unsigned long long lo, unsigned long long hi,
		     unsigned long long *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int cli__parse_double(const char *arg, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* Not in every linux/kvm.h this builds against (bookworm's is 6.1). */
#define CLI_KVM_CAP_GUEST_MEMFD 234
#define CLI_KVM_CAP_GUEST_MEMFD_FLAGS 244

int cli__gmem_support(char *why, size_t len)
{
	int kvm, cap, flags;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		int err = errno;

		/* a distribution kernel loads kvm as a module: it may come later */
		snprintf(why, len, "cannot open /dev/kvm: %s (is the kvm module loaded?)",
			 strerror(err));
		return -1;
	}
	cap = ioctl(kvm, KVM_CHECK_EXTENSION, CLI_KVM_CAP_GUEST_MEMFD);
	flags = ioctl(kvm, KVM_CHECK_EXTENSION, CLI_KVM_CAP_GUEST_MEMFD_FLAGS);
	close(kvm);
	if (cap <= 0) {
		snprintf(why, len, "KVM_CAP_GUEST_MEMFD is 0: this kernel's KVM has no guest_memfd "
			 "(Linux 6.8+ built with it), so there is nothing to watch");
		return 0;
	}
	snprintf(why, len, "KVM_CAP_GUEST_MEMFD %d, flags %s%s%s", cap,
		 flags > 0 && (flags & 1) ? "MMAP" : "",
		 flags > 0 && (flags & 1) && (flags & 2) ? "|" : "",
		 flags > 0 && (flags & 2) ? "INIT_SHARED" : (flags > 0 ? "" : "none (private only)"));
	return 1;
}

int cli__print_coverage(const struct loader_opts *lo, bool json, const char *prog)
{
	struct loader *l = NULL;
	char err[512] = "", kwhy[256], gwhy[256];
	const char *gstate;
	int nstats, gmem;

	if (loader__open(&l, lo, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 1;
	}
	loader__caps_plan(err, sizeof(err));
	/* KVM's binary stats are no probe event: a line of their own, found by asking a VM */
	nstats = kvmstats__probe(kwhy, sizeof(kwhy));
	gmem = cli__gmem_support(gwhy, sizeof(gwhy));
	gstate = gmem > 0 ? "available" : gmem == 0 ? "absent" : "unknown";
	if (json) {
		json_t *o = ctl__probe_json(loader__table(l));

		json_object_set_new(o, "privileges", json_string(err));
		json_object_set_new(o, "kvm_stats",
				    json_pack("{s:s, s:s}", "state",
					      nstats >= 0 ? "available" : "unavailable", "reason",
					      kwhy));
		json_object_set_new(o, "guest_memfd",
				    json_pack("{s:s, s:s}", "state", gstate, "reason", gwhy));
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
	} else {
		probe__print(loader__table(l), stdout);
		printf("guest_memfd: %s: %s\n", gstate, gwhy);
		printf("kvm binary stats: %s: %s\n", nstats >= 0 ? "available" : "unavailable",
		       kwhy);
		printf("privileges: %s\n", err);
	}
	loader__close(l);
	return 0;
}
