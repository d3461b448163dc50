/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* cli.h - what every gmemscope program's command line shares. */
#ifndef GMEM_CLI_H
#define GMEM_CLI_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <argp.h>
#include <stdbool.h>

#include "loader.h"

/* One version for every gmemscope program; the git revision comes from the build. */
#define GMEMSCOPE_VERSION "0.1.0"

/* Usage errors exit with this everywhere (sysexits.h's EX_USAGE, also argp's default). */
#define CLI_EX_USAGE 64

/*
 * The options every program and verb shares: -h/--help, --usage, -V/--version. Put
 * cli__std_children in an argp's children and parse with CLI_ARGP_FLAGS: argp's own help
 * option is -? only, and libbpf-tools users type -h.
 */
extern const struct argp_child cli__std_children[];
#define CLI_ARGP_FLAGS ARGP_NO_HELP

/* "gmemd 0.1.0 (git v0.1-12-gabcdef, libbpf 1.5)": what --version prints, then a newline. */
void cli__print_version(FILE *f, const char *prog);

/*
 * Name the program after argv[0]'s basename, so getopt's and our errors say "gmemd: ...",
 * not "/usr/local/bin/gmemd: ...". Call first thing in main.
 */
void cli__set_prog_name(char **argv);

/* A whole decimal number in [lo, hi], nothing after it; 0 or -1. */
int cli__parse_ulong(const char *arg, unsigned long long lo, unsigned long long hi,
		     unsigned long long *out);
/* A number (strtod syntax) in [lo, hi], nothing after it; 0 or -1. */
int cli__parse_double(const char *arg, double lo, double hi, double *out);

/*
 * Can this kernel's KVM make guest_memfd files? 1 yes, 0 no (KVM_CAP_GUEST_MEMFD is 0), -1
 * cannot tell (/dev/kvm does not open). why says which, with the flags on a yes.
 */
int cli__gmem_support(char *why, size_t len);

/*
 * Load and attach the probes for real ("live" means attached, not merely present), print the
 * coverage table (JSON with json) and unload. prog names the program in errors. Exit status.
 */
int cli__print_coverage(const struct loader_opts *lo, bool json, const char *prog);

/* A CLOCK_REALTIME time as RFC 3339 in local time with its offset and milliseconds,
 * "2026-12-02T06:01:02.345+01:00" (at least 30 bytes); returns buf. */
struct timespec;
char *cli__rfc3339(const struct timespec *ts, char *buf, size_t len);

/* The git revision this build came from ("unknown" outside git), and libbpf's version "X.Y". */
const char *cli__revision(void);
const char *cli__libbpf_version(void);

#endif /* GMEM_CLI_H */
