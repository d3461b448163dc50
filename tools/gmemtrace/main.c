// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * gmemtrace - record gmemscope's event stream to a file, and report, replay, export and
 * print recordings (docs/recording-format.md).
 *
 * main.c: the command table, usage, help and dispatch; each verb lives in its own file
 * (gmemtrace.h says which).
 *
 * Verbs in a command table, as bpftool does. Every verb that reads a recording goes through
 * src/recording.c's reader and, where it counts, through the one model gmemd uses, so a
 * report or a replay of a recording gives the numbers gmemd gave live. A recording that ends
 * early or is damaged is read up to its last good chunk: what was read is used, the error is
 * one line on stderr, and the exit status is 1.
 */
#include <argp.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#include "gmemtrace.h"

const char *argp_program_bug_address = "<https://github.com/gmemscope/gmemscope/issues>";

static int do_help(int argc, char **argv);

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	bool hidden;
};

static const struct cmd cmds[] = {
	{ "record", do_record, "record the event stream to a file (from gmemd or in-process)",
	  false },
	{ "report", do_report, "summarise a recording through gmemd's model (-j: JSON)", false },
	{ "replay", do_replay, "serve a recording as gmemd would: /metrics, control socket",
	  false },
	{ "export", do_export, "convert a recording: perfetto (Chrome trace), csv, jsonl", false },
	{ "cat", do_cat, "print a recording's events as text, one per line", false },
	{ "info", do_info, "a recording's header, chunks and integrity", false },
	{ "features", do_features, "this kernel's probe coverage table (as gmemd --probe)", false },
	{ "whatif", do_whatif, "replay a recording through huge-page policies, side by side", false },
	{ "scenario", do_synth, "write a constructed recording: conversions, SNP, TDX, splits",
	  false },
	{ "help", do_help, "this list; gmemtrace VERB --help for a verb's", false },
	{ "synth", do_synth, "the old name of scenario", true },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"Usage: gmemtrace VERB [OPTION...] [ARGS...]\n"
		"gmemtrace: recordings of guest_memfd activity to replay, report and export.\n"
		"\nUSAGE: gmemtrace VERB [OPTIONS]\n       gmemtrace help [VERB]\n\nVERBS:\n");
	for (i = 0; i < NCMDS; i++)
		if (!cmds[i].hidden)
			fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f, "\nEXAMPLES:\n"
		"  gmemtrace record -o vm.gmtr --duration 30\n"
		"  gmemtrace report vm.gmtr\n"
		"  gmemtrace replay --max vm.gmtr        # then curl 127.0.0.1:9478/metrics\n"
		"  gmemtrace export vm.gmtr --format perfetto -o vm.json\n"
		"  gmemtrace features\n"
		"\nOPTIONS:\n"
		"  -h, --help       this list; gmemtrace VERB --help for a verb's options\n"
		"  -V, --version    print the version\n"
		"\nEXIT STATUS: 0 success; 1 the verb failed, or a recording was damaged (what\n"
		"could be read was still used); 64 bad usage.\n"
		"\nReport bugs to %s.\n",
		argp_program_bug_address);
}

static const struct cmd *find_cmd(const char *name)
{
	const struct cmd *found = NULL;
	size_t i, len = strlen(name);

	for (i = 0; i < NCMDS; i++) {
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
		/* a unique prefix will do, as in bpftool */
		if (len && !strncmp(cmds[i].name, name, len) && !cmds[i].hidden) {
			if (found)
				return NULL;
			found = &cmds[i];
		}
	}
	return found;
}

static int run_cmd(const struct cmd *c, int argc, char **argv)
{
	char name[64];

	/* argp names the program after argv[0] in its messages: "gmemtrace record: ..." */
	snprintf(name, sizeof(name), "gmemtrace %s", c->name);
	argv[0] = name;
	return c->fn(argc, argv);
}

static int do_help(int argc, char **argv)
{
	const struct cmd *c;
	char *hargv[3];

	if (argc < 2) {
		usage(stdout);
		return 0;
	}
	c = find_cmd(argv[1]);
	if (!c || c->fn == do_help) {
		fprintf(stderr, "gmemtrace: no verb '%s' (gmemtrace help)\n", argv[1]);
		return CLI_EX_USAGE;
	}
	hargv[0] = argv[0];
	hargv[1] = "--help";
	hargv[2] = NULL;
	return run_cmd(c, 2, hargv);
}

int main(int argc, char **argv)
{
	const struct cmd *c;

	cli__set_prog_name(argv);
	if (argc < 2) {
		usage(stderr);
		return CLI_EX_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "-?")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		cli__print_version(stdout, "gmemtrace");
		return 0;
	}
	c = find_cmd(argv[1]);
	if (!c) {
		fprintf(stderr, "gmemtrace: unknown or ambiguous verb '%s' (gmemtrace help lists "
			"them)\n", argv[1]);
		return CLI_EX_USAGE;
	}
	return run_cmd(c, argc - 1, argv + 1);
}
