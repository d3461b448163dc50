// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* cli.c - command-line helpers shared by gmemd, gmemtrace and gmemtop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "cli.h"
#include "ctl.h"

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

int cli__print_coverage(const struct loader_opts *lo, bool json, const char *prog)
{
	struct loader *l = NULL;
	char err[512] = "";

	if (loader__open(&l, lo, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 1;
	}
	loader__caps_plan(err, sizeof(err));
	if (json) {
		json_t *o = ctl__probe_json(loader__table(l));

		json_object_set_new(o, "privileges", json_string(err));
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
	} else {
		probe__print(loader__table(l), stdout);
		printf("privileges: %s\n", err);
	}
	loader__close(l);
	return 0;
}
