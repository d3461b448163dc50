// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * export.c - gmemtrace export: a recording converted to perfetto, csv or jsonl.
 */
#include <argp.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "export.h"
#include "recording.h"

#include "gmemtrace.h"

static struct export_env {
	const char *file;
	const char *format;
	const char *out;
	double counter_interval_us;
} ex_env;

static const char export_doc[] =
	"gmemtrace export: convert a recording for other tools.\n"
	"\n"
	"perfetto: Chrome trace-event JSON, which ui.perfetto.dev and chrome://tracing open:\n"
	"a process per VM, a thread per vCPU; conversions as slices from the vCPU's exit to "
	"its next entry with the attributes call nested in them; populated bytes per VM, "
	"the host's DirectMap 4k/2M/1G mix and KVM's binary stats (a track per VM and per "
	"vCPU) as counters; lifecycle, punch holes, RMP, TDX, splits as instant events. csv and jsonl: one record per line, every field, with "
	"names for kinds, sources, directions and ops.\n"
	"\n"
	"USAGE: gmemtrace export FILE --format perfetto|csv|jsonl [-o OUT]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace export vm.gmtr --format perfetto -o vm.json  # for ui.perfetto.dev\n"
	"  gmemtrace export vm.gmtr --format csv | head\n"
	"  gmemtrace export vm.gmtr --format jsonl \\\n"
	"      | jq -c 'select(.kind == \"conv_attr\")'";

static const struct argp_option export_opts[] = {
	{ "format", 'f', "FORMAT", 0, "perfetto, csv or jsonl", 0 },
	{ "output", 'o', "OUT", 0, "Write here (default standard output)", 0 },
	{ "counter-interval", OPT_COUNTER, "US", 0,
	  "perfetto: at most one populated-bytes sample per VM per US microseconds (1000 by "
	  "default; 0 samples every change)", 0 },
	{},
};

static error_t export_parse(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'f':
		if (strcmp(arg, "perfetto") && strcmp(arg, "csv") && strcmp(arg, "jsonl"))
			argp_error(state, "--format: '%s' is not perfetto, csv or jsonl", arg);
		ex_env.format = arg;
		break;
	case 'o':
		ex_env.out = arg;
		break;
	case OPT_COUNTER:
		if (cli__parse_double(arg, 0, 1e12, &ex_env.counter_interval_us))
			argp_error(state, "--counter-interval: '%s' is not microseconds", arg);
		break;
	case ARGP_KEY_ARG:
		if (ex_env.file)
			argp_error(state, "unexpected argument '%s'", arg);
		ex_env.file = arg;
		break;
	case ARGP_KEY_END:
		if (!ex_env.file)
			argp_error(state, "which recording? (gmemtrace export FILE --format ...)");
		if (!ex_env.format)
			argp_error(state, "--format perfetto|csv|jsonl is required");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

int do_export(int argc, char **argv)
{
	static const struct argp argp = { export_opts, export_parse, NULL, export_doc, cli__std_children, NULL, NULL };
	const struct gmem_event *recs;
	struct perfetto *pf = NULL;
	struct recording *r = NULL;
	const json_t *kinds;
	FILE *out = stdout;
	size_t n, i;
	int st, ret = 1, e = 0;
	char kb[32];

	ex_env = (struct export_env){ .counter_interval_us = 1000 };
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	r = open_recording(ex_env.file);
	if (!r)
		return 1;
	kinds = json_object_get(recording__meta(r), "kinds");
	if (ex_env.out) {
		struct stat in_st, out_st;

		/* writing over the recording would destroy it before it is read */
		if (!stat(ex_env.file, &in_st) && !stat(ex_env.out, &out_st) &&
		    in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino) {
			fprintf(stderr, "gmemtrace: -o %s is the recording being exported; "
				"refusing to overwrite it (write the export elsewhere)\n",
				ex_env.out);
			goto cleanup;
		}
		out = fopen(ex_env.out, "w");
		if (!out) {
			fprintf(stderr, "gmemtrace: cannot create %s: %s\n", ex_env.out,
				strerror(errno));
			goto cleanup;
		}
	}
	if (!strcmp(ex_env.format, "perfetto")) {
		struct perfetto_opts po = {
			.counter_interval_ns = (__u64)(ex_env.counter_interval_us * 1000),
			.kinds = kinds,
		};

		pf = perfetto__new(out, &po);
		if (!pf) {
			fprintf(stderr, "gmemtrace: out of memory\n");
			goto cleanup;
		}
	} else if (!strcmp(ex_env.format, "csv")) {
		e = export__csv_header(out);
	}
	while (!e && (st = recording__next(r, &recs, &n)) > 0) {
		for (i = 0; i < n && !e; i++) {
			const char *kn = export__kind_name(kinds, recs[i].kind, kb, sizeof(kb));

			if (pf) {
				e = perfetto__add(pf, &recs[i]);
			} else if (!strcmp(ex_env.format, "csv")) {
				e = export__csv(out, &recs[i], kn);
			} else {
				json_t *j = export__json(&recs[i], kn);

				errno = 0;
				if (json_dumpf(j, out, JSON_COMPACT) || fputc('\n', out) == EOF)
					e = errno ? -errno : -EIO;
				json_decref(j);
			}
		}
	}
	if (pf && !e) {
		const json_t *meta = recording__meta(r);
		json_t *other = json_pack("{s:s, s:s, s:b, s:O*, s:O*, s:O*}", "source",
					  "gmemtrace " GMEMTRACE_VERSION, "recording", ex_env.file,
					  "complete", recording__complete(r), "host",
					  json_object_get(meta, "host"), "scenario",
					  json_object_get(meta, "scenario"), "clock",
					  json_object_get(meta, "clock"));

		e = perfetto__finish(pf, other);
		json_decref(other);
	}
	if (fflush(out) || e) {
		fprintf(stderr, "gmemtrace: writing %s: %s\n", ex_env.out ? ex_env.out : "output",
			strerror(e ? -e : errno));
		goto cleanup;
	}
	ret = read_status(ex_env.file, r, st);
cleanup:
	perfetto__free(pf);
	if (out && out != stdout)
		fclose(out);
	recording__close(r);
	return ret;
}
