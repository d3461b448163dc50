// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * cat.c - gmemtrace cat: a recording's events as text, one per line.
 */
#include <argp.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "export.h"
#include "recording.h"
#include "strbuf.h"

#include "gmemtrace.h"

static struct cat_env {
	const char *file;
	char *kinds[32];
	int nkinds;
	__u32 vm;
} cat_env;

static const char cat_doc[] =
	"gmemtrace cat: print a recording's events as text, one per line.\n"
	"\n"
	"Each line: seconds since the first record, the kind, vm and tid, then the kind's "
	"fields by meaning, and its flags ([synth], [scenario], [range]).\n"
	"\n"
	"USAGE: gmemtrace cat FILE [--kind NAME ...] [--vm PID]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace cat vm.gmtr | less\n"
	"  gmemtrace cat --kind conv_request --kind vcpu_resume vm.gmtr";

static const struct argp_option cat_opts[] = {
	{ "kind", OPT_KIND, "NAME", 0, "Only this kind (repeatable), e.g. page_alloc", 0 },
	{ "vm", OPT_VM, "PID", 0, "Only records of this VM", 0 },
	{},
};

static error_t cat_parse(int key, char *arg, struct argp_state *state)
{
	unsigned long long v;

	switch (key) {
	case OPT_KIND:
		if (cat_env.nkinds == 32)
			argp_error(state, "--kind: at most 32");
		cat_env.kinds[cat_env.nkinds++] = arg;
		break;
	case OPT_VM:
		if (cli__parse_ulong(arg, 1, UINT32_MAX, &v))
			argp_error(state, "--vm: '%s' is not a pid", arg);
		cat_env.vm = v;
		break;
	case ARGP_KEY_ARG:
		if (cat_env.file)
			argp_error(state, "unexpected argument '%s'", arg);
		cat_env.file = arg;
		break;
	case ARGP_KEY_END:
		if (!cat_env.file)
			argp_error(state, "which recording? (gmemtrace cat FILE)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

int do_cat(int argc, char **argv)
{
	static const struct argp argp = { cat_opts, cat_parse, NULL, cat_doc, cli__std_children, NULL, NULL };
	struct strbuf line = STRBUF_INIT;
	const struct gmem_event *recs;
	struct recording *r;
	const json_t *kinds;
	bool have_base = false;
	__u64 base = 0;
	size_t n, i;
	int st, k, ret;
	char kb[32];

	cat_env = (struct cat_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	r = open_recording(cat_env.file);
	if (!r)
		return 1;
	kinds = json_object_get(recording__meta(r), "kinds");
	for (k = 0; k < cat_env.nkinds; k++) {
		struct strbuf known = STRBUF_INIT;
		unsigned int kind;
		bool found = false;

		for (kind = 1; kind < 256 && !found; kind++)
			found = !strcmp(cat_env.kinds[k],
					export__kind_name(kinds, kind, kb, sizeof(kb)));
		if (found)
			continue;
		/* the names a user may give: every kind this build knows, and the file's own */
		for (kind = 1; kind < 256; kind++) {
			const char *kn = export__kind_name(kinds, kind, kb, sizeof(kb));

			if (kind < GMEM_EV_KIND_MAX || strncmp(kn, "kind_", 5))
				strbuf__printf(&known, "%s%s", known.len ? ", " : "", kn);
		}
		fprintf(stderr, "gmemtrace cat: --kind %s: no such record kind; the kinds are: %s\n",
			cat_env.kinds[k], strbuf__str(&known));
		strbuf__release(&known);
		recording__close(r);
		return CLI_EX_USAGE;
	}
	while ((st = recording__next(r, &recs, &n)) > 0) {
		for (i = 0; i < n; i++) {
			const char *kn = export__kind_name(kinds, recs[i].kind, kb, sizeof(kb));
			bool want = !cat_env.nkinds;

			if (!have_base) {
				base = recs[i].ts_ns;
				have_base = true;
			}
			for (k = 0; k < cat_env.nkinds && !want; k++)
				want = !strcmp(cat_env.kinds[k], kn);
			if (!want || (cat_env.vm && recs[i].vm != cat_env.vm))
				continue;
			strbuf__reset(&line);
			export__text(&line, &recs[i], base, kn);
			puts(strbuf__str(&line));
		}
	}
	fflush(stdout);
	ret = read_status(cat_env.file, r, st);
	strbuf__release(&line);
	recording__close(r);
	return ret;
}
