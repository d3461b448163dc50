/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* cli.h - what every gmemscope program's command line shares. */
#ifndef GMEM_CLI_H
#define GMEM_CLI_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stdbool.h>

#include "loader.h"

/* A whole decimal number in [lo, hi], nothing after it; 0 or -1. */
int cli__parse_ulong(const char *arg, unsigned long long lo, unsigned long long hi,
		     unsigned long long *out);
/* A number (strtod syntax) in [lo, hi], nothing after it; 0 or -1. */
int cli__parse_double(const char *arg, double lo, double hi, double *out);

/*
 * Load and attach the probes for real ("live" means attached, not merely present), print the
 * coverage table (JSON with json) and unload. prog names the program in errors. Exit status.
 */
int cli__print_coverage(const struct loader_opts *lo, bool json, const char *prog);

#endif /* GMEM_CLI_H */
