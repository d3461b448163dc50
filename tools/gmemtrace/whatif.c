// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * whatif.c - gmemtrace whatif: a recording replayed through huge-page policies, side by side.
 */
#include <argp.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "policy.h"
#include "recording.h"
#include "whatif.h"

#include "gmemtrace.h"

enum {
	OPT_WI_MAX_ORDER = 2000,
	OPT_WI_WINDOW,
	OPT_WI_SAMPLE,
	OPT_WI_NO_DMAP,
	OPT_WI_VM,
};

#define WHATIF_MAX_POLICIES 16

static struct whatif_env {
	const char *file;
	const char *policies[WHATIF_MAX_POLICIES];
	int npolicies;
	bool json, verbose, no_direct_map;
	unsigned long long max_order, window_ms, sample_ms, vm;
} whatif_env;

static const char whatif_doc[] =
	"gmemtrace whatif: replay a recording through a huge-page model per policy, side by side.\n"
	"\n"
	"Each policy (a name, as gmem-policy list shows, or a path to a .bpf.o) runs in the kernel's BPF VM on a model "
	"of every guest_memfd file of the recording (folio orders per region, shared/private per "
	"page): splits and merges by order, huge coverage over time, the direct-map estimate for "
	"no-direct-map files, merge/split ping-pongs, and the cost of each decision. Needs "
	"CAP_BPF.\n"
	"\n"
	"USAGE: gmemtrace whatif FILE --policy A [--policy B ...] [-j]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmemtrace whatif vm.gmtr --policy split4k --policy buddy --policy churn\n"
	"  gmemtrace whatif vm.gmtr -p churn -j --no-direct-map \\\n"
	"      | jq .policies[0].pingpongs";

static const struct argp_option whatif_opts[] = {
	{ "policy", 'p', "NAME|FILE", 0, "A policy (repeat to compare several)", 0 },
	{ "json", 'j', NULL, 0, "JSON output", 0 },
	{ "max-order", OPT_WI_MAX_ORDER, "N", 0, "Largest folio: 9 = 2M (default) to 18 = 1G", 0 },
	{ "window", OPT_WI_WINDOW, "MS", 0, "Region history window (default 1000)", 0 },
	{ "sample", OPT_WI_SAMPLE, "MS", 0, "Coverage series period (default 100)", 0 },
	{ "no-direct-map", OPT_WI_NO_DMAP, NULL, 0, "Count every file as no-direct-map", 0 },
	{ "vm", OPT_WI_VM, "PID", 0, "Only this VM's records (and its files')", 0 },
	{ "verbose", 'v', NULL, 0, "libbpf's and the verifier's log", 0 },
	{},
};

static error_t whatif_parse(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'p':
		if (whatif_env.npolicies == WHATIF_MAX_POLICIES)
			argp_error(state, "at most %d policies", WHATIF_MAX_POLICIES);
		whatif_env.policies[whatif_env.npolicies++] = arg;
		break;
	case 'j':
		whatif_env.json = true;
		break;
	case 'v':
		whatif_env.verbose = true;
		break;
	case OPT_WI_NO_DMAP:
		whatif_env.no_direct_map = true;
		break;
	case OPT_WI_MAX_ORDER:
		if (cli__parse_ulong(arg, 1, GMEM_POLICY_MAX_ORDER, &whatif_env.max_order))
			argp_error(state, "--max-order: 1 to %d", GMEM_POLICY_MAX_ORDER);
		break;
	case OPT_WI_WINDOW:
	case OPT_WI_SAMPLE:
		if (cli__parse_ulong(arg, 1, 86400000, key == OPT_WI_WINDOW ? &whatif_env.window_ms :
									  &whatif_env.sample_ms))
			argp_error(state, "'%s' is not milliseconds", arg);
		break;
	case OPT_WI_VM:
		if (cli__parse_ulong(arg, 1, UINT32_MAX, &whatif_env.vm))
			argp_error(state, "--vm: '%s' is not a pid", arg);
		break;
	case ARGP_KEY_ARG:
		if (whatif_env.file)
			argp_error(state, "unexpected argument '%s'", arg);
		whatif_env.file = arg;
		break;
	case ARGP_KEY_END:
		if (!whatif_env.file)
			argp_error(state, "which recording? (gmemtrace whatif FILE --policy NAME)");
		if (!whatif_env.npolicies)
			argp_error(state, "name at least one policy (--policy split4k --policy buddy)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

/* --vm: keep its records and its files' (releases found by a scan have vm 0). The records come
 * through whatif__next_recording, which gmem-policy whatif uses too. */
struct whatif_filter {
	__u32 vm;
	__u64 inos[256];
	unsigned int ninos;
};

static bool whatif_keep(void *ctx, const struct gmem_event *e)
{
	struct whatif_filter *s = ctx;
	unsigned int k;

	if (!s->vm || e->kind == GMEM_EV_KVM_STAT_DESC)
		return true;
	if (e->vm == s->vm) {
		if ((e->kind == GMEM_EV_FILE_CREATE || e->kind == GMEM_EV_FILE_DISCOVER) &&
		    e->ino && s->ninos < sizeof(s->inos) / sizeof(s->inos[0]))
			s->inos[s->ninos++] = e->ino;
		return true;
	}
	for (k = 0; e->ino && k < s->ninos; k++)
		if (s->inos[k] == e->ino)
			return true;
	return false;
}

int do_whatif(int argc, char **argv)
{
	static const struct argp argp = { whatif_opts, whatif_parse, NULL, whatif_doc, cli__std_children, NULL, NULL };
	struct policy *pols[WHATIF_MAX_POLICIES] = {};
	struct policy_opts po = {};
	struct whatif_opts wo = {};
	struct whatif_filter filter = {};
	struct whatif_rec src = { .keep = whatif_keep, .kctx = &filter };
	struct whatif_result res;
	char err[1024];
	int i, e, ret = 1;

	whatif_env = (struct whatif_env){};
	if (argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL))
		return CLI_EX_USAGE;
	po.verbose = whatif_env.verbose;
	for (i = 0; i < whatif_env.npolicies; i++) {
		if (policy__open(&pols[i], whatif_env.policies[i], &po, err, sizeof(err))) {
			fprintf(stderr, "gmemtrace: %s\n", err);
			goto cleanup;
		}
	}
	src.r = open_recording(whatif_env.file);
	if (!src.r)
		goto cleanup;
	filter.vm = whatif_env.vm;
	wo.max_order = whatif_env.max_order;
	wo.window_ns = whatif_env.window_ms * 1000000ull;
	wo.sample_ns = whatif_env.sample_ms * 1000000ull;
	wo.no_direct_map = whatif_env.no_direct_map;
	e = whatif__run(&wo, whatif__next_recording, &src, pols, whatif_env.npolicies, &res);
	if (e) {
		fprintf(stderr, "gmemtrace: what-if on %s: %s\n", whatif_env.file, strerror(-e));
		goto cleanup;
	}
	if (whatif_env.json) {
		json_t *j = whatif__json(&res);

		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
	} else {
		whatif__print(stdout, &res);
	}
	whatif__result_free(&res);
	/* a damaged file still gave its readable part; say so and fail */
	ret = read_status(whatif_env.file, src.r, src.status);
cleanup:
	if (src.r)
		recording__close(src.r);
	for (i = 0; i < whatif_env.npolicies; i++)
		policy__close(pols[i]);
	return ret;
}
