// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * scenario.c - gmemtrace scenario (old name synth): a constructed recording.
 */
#include <argp.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "recording.h"
#include "scenario.h"

#include "gmemtrace.h"

static struct synth_env {
	const char *name;
	const char *out;
	struct scenario_params p;
	bool list;
	bool stats;
	unsigned long long level;
	unsigned long long chunk_records;
} sy_env;

static const char synth_doc[] =
	"gmemtrace scenario: write a constructed scenario as a recording.\n"
	"\n"
	"Scenarios stand for what this machine's kernel cannot produce: conversions, SEV-SNP "
	"RMP and TDX transitions, huge-page splits. They are written through the recorder's "
	"own writer; every record carries the SCENARIO flag, and the file's metadata says how "
	"the scenario was constructed and from which kernel source. This is the way to see "
	"the conversion, SNP and TDX views on a host that has none (synth is the old name).\n"
	"\n"
	"USAGE: gmemtrace scenario SCENARIO -o FILE [--vcpus N] [--events N]\n"
	"       gmemtrace scenario --list\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace scenario --list\n"
	"  gmemtrace scenario private-mem-conversions --vcpus 4 -o pmc.gmtr\n"
	"  gmemtrace scenario snp-boot -o snp.gmtr && gmemtrace report snp.gmtr\n"
	"  gmemtrace scenario synthetic-churn --events 10000000 -o /tmp/c.gmtr --stats";

static const struct argp_option synth_opts[] = {
	{ "output", 'o', "FILE", 0, "Write here", 0 },
	{ "list", OPT_LIST, NULL, 0, "List the scenarios", 0 },
	{ "vcpus", OPT_VCPUS, "N", 0, "private-mem-conversions: vCPUs (default 2)", 0 },
	{ "events", OPT_EVENTS, "N", 0, "synthetic-churn: records (default 1000000)", 0 },
	{ "level", OPT_LEVEL, "1-9", 0, "zlib level (default 6)", 0 },
	{ "chunk-records", OPT_CHUNK, "N", 0, "Records per chunk (default 65536)", 0 },
	{ "stats", OPT_SCAN, NULL, 0, "Print records, bytes and rate on stderr", 0 },
	{},
};

static error_t synth_parse(int key, char *arg, struct argp_state *state)
{
	unsigned long long v;

	switch (key) {
	case 'o':
		sy_env.out = arg;
		break;
	case OPT_LIST:
		sy_env.list = true;
		break;
	case OPT_VCPUS:
		if (cli__parse_ulong(arg, 1, 64, &v))
			argp_error(state, "--vcpus: '%s' is not in [1, 64]", arg);
		sy_env.p.vcpus = v;
		break;
	case OPT_EVENTS:
		if (cli__parse_ulong(arg, 1, 1ull << 40, &v))
			argp_error(state, "--events: '%s' is not a count", arg);
		sy_env.p.events = v;
		break;
	case OPT_LEVEL:
		if (cli__parse_ulong(arg, 1, 9, &sy_env.level))
			argp_error(state, "--level: '%s' is not in [1, 9]", arg);
		break;
	case OPT_CHUNK:
		if (cli__parse_ulong(arg, 1, RECORDING_MAX_CHUNK_RECORDS, &sy_env.chunk_records))
			argp_error(state, "--chunk-records: '%s' is out of range", arg);
		break;
	case OPT_SCAN:
		sy_env.stats = true;
		break;
	case ARGP_KEY_ARG:
		if (sy_env.name)
			argp_error(state, "unexpected argument '%s'", arg);
		sy_env.name = arg;
		break;
	case ARGP_KEY_END:
		if (!sy_env.list && (!sy_env.name || !sy_env.out))
			argp_error(state, "gmemtrace scenario SCENARIO -o FILE (--list to list them)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int synth_emit(void *ctx, const struct gmem_event *e)
{
	return recording_writer__add(ctx, e);
}

int do_synth(int argc, char **argv)
{
	static const struct argp argp = { synth_opts, synth_parse, NULL, synth_doc, cli__std_children, NULL, NULL };
	struct recording_writer_opts wo = { .threaded = true, .no_host = true };
	struct recording_writer_stats st;
	const struct scenario *s;
	struct recording_writer *w = NULL;
	char err[512] = "";
	json_t *meta, *end;
	__u64 t0;
	size_t i;
	int e;

	sy_env = (struct synth_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	if (sy_env.list) {
		for (i = 0; i < scenario_count; i++)
			printf("%-24s %s\n", scenario_list[i].name, scenario_list[i].summary);
		return 0;
	}
	s = scenario__find(sy_env.name);
	if (!s) {
		fprintf(stderr, "gmemtrace: no scenario '%s' (gmemtrace scenario --list)\n",
			sy_env.name);
		return 1;
	}
	meta = scenario__meta(s, &sy_env.p);
	json_object_set_new(meta, "recording",
			    json_pack("{s:s, s:o}", "tool", "gmemtrace " GMEMTRACE_VERSION " scenario",
				      "argv", argv_json(argc, argv)));
	json_object_set_new(meta, "source", json_pack("{s:s}", "kind", "scenario"));
	wo.meta = meta;
	wo.level = sy_env.level;
	wo.chunk_records = sy_env.chunk_records;
	e = recording_writer__open(&w, sy_env.out, &wo, err, sizeof(err));
	json_decref(meta);
	if (e) {
		fprintf(stderr, "gmemtrace: %s\n", err);
		return 1;
	}
	t0 = now_ns();
	e = scenario__run(s, &sy_env.p, synth_emit, w);
	recording_writer__flush(w);
	recording_writer__stats(w, &st);
	end = json_pack("{s:s, s:I}", "reason", "scenario complete", "records",
			(json_int_t)st.records);
	if (e) {
		recording_writer__abandon(w);
		json_decref(end);
		fprintf(stderr, "gmemtrace: %s: scenario %s failed: %s\n", sy_env.out, s->name,
			strerror(-e));
		return 1;
	}
	e = recording_writer__close(w, end, err, sizeof(err));
	json_decref(end);
	if (e) {
		fprintf(stderr, "gmemtrace: %s\n", err);
		return 1;
	}
	if (sy_env.stats) {
		double secs = (now_ns() - t0) / 1e9;
		struct stat sb;

		stat(sy_env.out, &sb);
		fprintf(stderr, "gmemtrace scenario: %s: %llu records in %.3f s (%.0f records/s), "
			"%lld bytes, %.2f bytes/record\n", sy_env.out,
			(unsigned long long)st.records, secs, st.records / secs,
			(long long)sb.st_size, st.records ? (double)sb.st_size / st.records : 0.0);
	}
	return 0;
}
