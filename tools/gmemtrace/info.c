// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * info.c - gmemtrace info: a recording's header, chunks and integrity.
 */
#include <argp.h>
#include <errno.h>
#include <stdio.h>

#include <jansson.h>

#include "cli.h"
#include "recording.h"

#include "gmemtrace.h"

static struct info_env {
	const char *file;
	bool json;
} info_env;

static const char info_doc[] =
	"gmemtrace info: a recording's header, chunks and integrity.\n"
	"\n"
	"Reads every chunk and checks every checksum and the trailer; says what the file is, "
	"where it came from and whether it is complete.\n"
	"\n"
	"USAGE: gmemtrace info FILE [-j]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace info vm.gmtr\n"
	"  gmemtrace info -j vm.gmtr | jq .meta.host";

static const struct argp_option info_opts[] = {
	{ "json", 'j', NULL, 0, "JSON: the metadata and what was read", 0 },
	{},
};

static error_t info_parse(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'j':
		info_env.json = true;
		break;
	case ARGP_KEY_ARG:
		if (info_env.file)
			argp_error(state, "unexpected argument '%s'", arg);
		info_env.file = arg;
		break;
	case ARGP_KEY_END:
		if (!info_env.file)
			argp_error(state, "which recording? (gmemtrace info FILE)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

int do_info(int argc, char **argv)
{
	static const struct argp argp = { info_opts, info_parse, NULL, info_doc, cli__std_children, NULL, NULL };
	const struct gmem_event *recs;
	struct recording *r;
	const json_t *meta, *fmt, *clk, *host, *src, *scen, *recj;
	__u64 first = 0, last = 0, count = 0;
	size_t n, i;
	int st, ret;
	char b1[32];

	info_env = (struct info_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	r = open_recording(info_env.file);
	if (!r)
		return 1;
	while ((st = recording__next(r, &recs, &n)) > 0) {
		for (i = 0; i < n; i++) {
			if (!count || recs[i].ts_ns < first)
				first = recs[i].ts_ns;
			if (recs[i].ts_ns > last)
				last = recs[i].ts_ns;
			count++;
		}
	}
	meta = recording__meta(r);
	if (info_env.json) {
		json_t *o = json_pack("{s:s, s:I, s:i, s:i, s:O, s:I, s:I, s:I, s:I, s:b, s:s, "
				      "s:O*}",
				      "path", info_env.file, "size", (json_int_t)recording__size(r),
				      "version_major", recording__version_major(r),
				      "version_minor", recording__version_minor(r), "meta", meta,
				      "chunks", (json_int_t)recording__chunks_read(r), "records",
				      (json_int_t)count, "first_ts_ns", (json_int_t)first,
				      "last_ts_ns", (json_int_t)last, "complete",
				      recording__complete(r), "error", recording__error(r), "end",
				      recording__end(r));

		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
	} else {
		fmt = json_object_get(meta, "format");
		clk = json_object_get(meta, "clock");
		host = json_object_get(meta, "host");
		src = json_object_get(meta, "source");
		scen = json_object_get(meta, "scenario");
		recj = json_object_get(meta, "recording");
		printf("file       %s, %s\n", info_env.file,
		       human_bytes(recording__size(r), b1, sizeof(b1)));
		printf("format     gmemtrace %u.%u, %lld-byte records, ABI %lld, %s-endian host, "
		       "%s\n",
		       recording__version_major(r), recording__version_minor(r),
		       json_integer_value(json_object_get(fmt, "record_size")),
		       json_integer_value(json_object_get(fmt, "abi")),
		       json_string_value(json_object_get(fmt, "byte_order")) ?: "?",
		       json_string_value(json_object_get(fmt, "encoding")) ?: "?");
		printf("clock      %s; %s = %.9f s\n",
		       json_string_value(json_object_get(clk, "id")) ?: "?",
		       json_string_value(json_object_get(json_object_get(clk, "anchor"),
							 "realtime_utc")) ?: "?",
		       json_integer_value(json_object_get(json_object_get(clk, "anchor"),
							  "monotonic_ns")) / 1e9);
		if (host)
			printf("host       %s: %s %s %s; BTF %lld bytes, crc32 %s\n",
			       json_string_value(json_object_get(host, "nodename")) ?: "?",
			       json_string_value(json_object_get(host, "sysname")) ?: "?",
			       json_string_value(json_object_get(host, "release")) ?: "?",
			       json_string_value(json_object_get(host, "machine")) ?: "?",
			       json_integer_value(json_object_get(json_object_get(host, "btf"),
								  "size")),
			       json_string_value(json_object_get(json_object_get(host, "btf"),
								 "crc32")) ?: "?");
		if (src)
			printf("source     %s\n",
			       json_string_value(json_object_get(src, "kind")) ?: "?");
		if (recj)
			printf("recorded   by %s\n",
			       json_string_value(json_object_get(recj, "tool")) ?: "?");
		if (scen)
			printf("scenario   %s (constructed): %s\n",
			       json_string_value(json_object_get(scen, "name")) ?: "?",
			       json_string_value(json_object_get(scen, "summary")) ?: "");
		printf("kinds      %zu in the dictionary\n",
		       json_array_size(json_object_get(meta, "kinds")));
		printf("chunks     %llu, %llu events, %.2f bytes/event\n",
		       (unsigned long long)recording__chunks_read(r), (unsigned long long)count,
		       count ? (double)recording__size(r) / count : 0.0);
		printf("span       %.9f s\n", count ? (last - first) / 1e9 : 0.0);
		printf("status     %s\n", recording__complete(r) ? "complete (trailer verified)" :
			"INCOMPLETE (see the error)");
	}
	fflush(stdout);
	ret = read_status(info_env.file, r, st);
	recording__close(r);
	return ret;
}
