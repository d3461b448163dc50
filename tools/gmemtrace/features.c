// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * features.c - gmemtrace features: this kernel's probe coverage table.
 */
#include <argp.h>
#include <errno.h>

#include "cli.h"

#include "gmemtrace.h"

static struct features_env {
	bool json;
	bool no_fentry;
	bool verbose;
} ft_env;

static const char features_doc[] =
	"gmemtrace features: which events this kernel lets gmemscope see, on which tier, and "
	"why not the others (the same table as gmemd --probe).\n"
	"\n"
	"Loads and attaches the probes for real, so \"live\" means attached. Needs root or "
	"CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN.\n"
	"\n"
	"USAGE: gmemtrace features [-j] [--no-fentry]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace features\n"
	"  gmemtrace features -j | jq '.events[] | select(.state != \"live\")'";

static const struct argp_option features_opts[] = {
	{ "json", 'j', NULL, 0, "JSON (as gmemd's probe command)", 0 },
	{ "no-fentry", OPT_NO_FENTRY, NULL, 0, "Do not try the fentry tier", 0 },
	{ "verbose", 'v', NULL, 0, "Show libbpf's log", 0 },
	{},
};

static error_t features_parse(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'j':
		ft_env.json = true;
		break;
	case OPT_NO_FENTRY:
		ft_env.no_fentry = true;
		break;
	case 'v':
		ft_env.verbose = true;
		break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

int do_features(int argc, char **argv)
{
	static const struct argp argp = { features_opts, features_parse, NULL, features_doc,
					  cli__std_children, NULL, NULL };
	struct loader_opts lo = {};

	ft_env = (struct features_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	lo.verbose = ft_env.verbose;
	lo.no_fentry = ft_env.no_fentry;
	return cli__print_coverage(&lo, ft_env.json, "gmemtrace");
}
