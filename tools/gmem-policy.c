// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * gmem-policy - write, check and compare huge-page policies.
 *
 * The policy author's bench: load a policy into the kernel's BPF VM and ask it questions
 * (check, decide), replay a stream of records through one huge-page model per policy and
 * compare them (whatif), make the constructed conversion-heavy stream (gen), and measure what
 * a decision and a replay cost (bench). Records are raw 64-byte struct gmem_event, as gmemd's
 * "subscribe" streams them; recordings are gmemtrace's business (`gmemtrace whatif`).
 */
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "ctl.h"
#include "gmem_policy.h"
#include "hugemodel.h"
#include "policy.h"
#include "policy_json.h"
#include "recording.h"
#include "whatif.h"

#define MAX_POLICIES 16
#define NS_PER_MS 1000000ull

static struct env {
	const char *policies[MAX_POLICIES];
	int npolicies;
	bool json;
	bool verbose;
	bool no_direct_map;
	bool no_struct_ops;
	unsigned long max_order;
	unsigned long window_ms;
	unsigned long sample_ms;
	unsigned long vcpus, iterations, period_ms, tail_s, decisions;
	const char *output;
	const char *socket;
	bool raw;
	char **args;
	int nargs;
} env = { .max_order = 9, .decisions = 200000 };

const char *argp_program_bug_address = "<https://github.com/gmemscope/gmemscope/issues>";

/* Every verb's help: what it does, then examples; the options are shared. */
#define EXIT_STATUS_DOC \
	"EXIT STATUS: 0 success, 1 a policy failed to load or to answer in range, or an input " \
	"could not be read, 64 bad usage."

static const char doc[] =
	"gmem-policy: write, check and compare huge-page policies.\n"
	"\n"
	"USAGE: gmem-policy VERB [OPTIONS] [ARGS]\n"
	"       gmem-policy help [VERB]\n"
	"\n"
	"VERBS:\n"
	"  list     policies found beside this program and in $GMEM_POLICY_DIR\n"
	"  check    load policies, show their struct_ops state, ask sample questions\n"
	"  decide   one decision on a context built from FIELD=VALUE arguments\n"
	"  whatif   replay a recording through each policy, side by side\n"
	"  gen      write the constructed conversion-heavy stream as a recording\n"
	"  bench    cost per decision and what-if replay speed\n"
	"  status   the policy a running gmemd uses, and its decisions so far\n"
	"  switch   make a running gmemd use another policy, keeping its model\n"
	"  help     this text; gmem-policy help VERB or VERB --help for a verb's\n"
	"\n"
	"POLICY is a name (split4k, buddy, churn, ...) or a path to a .bpf.o file.\n"
	"\n"
	"EXAMPLES:\n"
	"  gmem-policy check buddy churn\n"
	"  gmem-policy decide churn split order=9 cause=convert \\\n"
	"      hist.recent_conversions=3\n"
	"  gmem-policy gen --vcpus 4 --iterations 20 --tail 5 -o conv.gmtr\n"
	"  gmem-policy whatif -p split4k -p buddy -p churn conv.gmtr\n"
	"  gmem-policy bench\n"
	"  gmem-policy switch churn\n"
	"\v"
	EXIT_STATUS_DOC;

static const char list_doc[] =
	"gmem-policy list: the policies this program finds.\n"
	"\n"
	"Looks beside this program (../lib/gmemscope/policies) and in $GMEM_POLICY_DIR, and "
	"prints each policy's name and object file.\n"
	"\n"
	"USAGE: gmem-policy list [-j]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmem-policy list\n"
	"  gmem-policy list -j\n"
	"\v" EXIT_STATUS_DOC;

static const char check_doc[] =
	"gmem-policy check: load each policy and ask it sample questions.\n"
	"\n"
	"Loads each POLICY into the kernel's BPF VM, shows whether its struct_ops form can "
	"register on this kernel, and runs every callback on sample contexts. Fails if a policy "
	"does not load or answers out of range. Needs CAP_BPF.\n"
	"\n"
	"USAGE: gmem-policy check POLICY...\n"
	"\n"
	"EXAMPLES:\n"
	"  gmem-policy check buddy churn\n"
	"  gmem-policy check ./my-policy.bpf.o -v\n"
	"\v" EXIT_STATUS_DOC;

static const char decide_doc[] =
	"gmem-policy decide: one decision on a hand-built context.\n"
	"\n"
	"CALLBACK is split, merge or alloc_order. Each FIELD=VALUE sets a field of that "
	"callback's context, as the policy contract names it; hist.FIELD sets a field of the "
	"region's history; fields left out are 0.\n"
	"\n"
	"USAGE: gmem-policy decide POLICY CALLBACK [FIELD=VALUE...]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmem-policy decide buddy split order=9\n"
	"  gmem-policy decide churn split order=9 cause=convert \\\n"
	"      hist.recent_conversions=3\n"
	"  gmem-policy decide buddy merge order=0 -j\n"
	"\v" EXIT_STATUS_DOC;

static const char whatif_doc[] =
	"gmem-policy whatif: replay a recording through each policy, side by side.\n"
	"\n"
	"Reads a gmemtrace recording (gmemtrace record, gmemtrace scenario, gmem-policy gen), "
	"runs its records through a huge-page model per policy and prints splits, merges, huge "
	"coverage, ping-pongs and the cost per decision. Raw 64-byte records (gen --raw) are "
	"read too, from FILE or from stdin without one or with -. gmemtrace whatif does the "
	"same with its --vm filter.\n"
	"\n"
	"USAGE: gmem-policy whatif -p POLICY [-p POLICY...] [FILE]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmem-policy whatif -p split4k -p buddy -p churn conv.gmtr\n"
	"  gmem-policy whatif -p buddy -j --no-direct-map vm.gmtr \\\n"
	"      | jq .policies[0].pingpongs\n"
	"\v" EXIT_STATUS_DOC;

static const char gen_doc[] =
	"gmem-policy gen: write the constructed conversion-heavy stream.\n"
	"\n"
	"Writes, as a gmemtrace recording, vCPUs that convert pages private and shared in "
	"turns: the workload that tells policies apart. Constructed, not recorded (its records "
	"carry the scenario flag, and gmemtrace report says so): use it to compare policies, "
	"not to measure a host. --raw writes the bare 64-byte records instead, to a pipe.\n"
	"\n"
	"USAGE: gmem-policy gen [--vcpus N] [--iterations N] -o FILE\n"
	"       gmem-policy gen --raw [-o FILE]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmem-policy gen --vcpus 4 --iterations 20 --tail 5 -o conv.gmtr\n"
	"  gmem-policy gen --raw | gmem-policy whatif -p buddy\n"
	"\v" EXIT_STATUS_DOC;

static const char bench_doc[] =
	"gmem-policy bench: cost per decision and what-if replay speed.\n"
	"\n"
	"Measures each policy's decisions through BPF_PROG_RUN and the what-if replay of the "
	"constructed stream, and prints them beside a baseline from the same run.\n"
	"\n"
	"USAGE: gmem-policy bench [-p POLICY...] [--decisions N]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmem-policy bench\n"
	"  gmem-policy bench -p buddy --decisions 1000000\n"
	"\v" EXIT_STATUS_DOC;

#define CTL_EXIT_STATUS_DOC \
	"EXIT STATUS: 0 success, 1 gmemd refused (the error says why), 2 gmemd cannot be " \
	"reached, 64 bad usage."

static const char status_doc[] =
	"gmem-policy status: the huge-page policy a running gmemd uses.\n"
	"\n"
	"Asks gmemd over its control socket which policy is active (and whether in its "
	"struct_ops form), how many swaps were made or refused and why the last one failed, and "
	"what every policy active since gmemd started has decided.\n"
	"\n"
	"USAGE: gmem-policy status [-s SOCKET] [-j]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmem-policy status\n"
	"  gmem-policy status -j | jq .active.name\n"
	"\v" CTL_EXIT_STATUS_DOC;

static const char switch_doc[] =
	"gmem-policy switch: make a running gmemd use another policy.\n"
	"\n"
	"gmemd loads POLICY (a name or a .bpf.o path), checks it and swaps it in. Its model "
	"(folios, history) carries over, so the new policy decides on what the old one built. "
	"A policy that does not load, verify or initialise is refused, and the active one stays: "
	"the error says which it is.\n"
	"\n"
	"USAGE: gmem-policy switch POLICY [-s SOCKET] [-j]\n"
	"\n"
	"EXAMPLES:\n"
	"  gmem-policy switch churn\n"
	"  gmem-policy switch ./my-policy.bpf.o -s /run/gmemscope/gmemd.sock\n"
	"\v" CTL_EXIT_STATUS_DOC;

enum {
	OPT_MAX_ORDER = 1000,
	OPT_WINDOW,
	OPT_SAMPLE,
	OPT_NO_DMAP,
	OPT_VCPUS,
	OPT_ITER,
	OPT_PERIOD,
	OPT_TAIL,
	OPT_DECISIONS,
	OPT_NO_SO,
	OPT_RAW,
};

static const struct argp_option opts[] = {
	{ "policy", 'p', "POLICY", 0, "A policy (repeat for several)", 0 },
	{ "json", 'j', NULL, 0, "JSON output", 0 },
	{ "verbose", 'v', NULL, 0, "Show libbpf's and the verifier's log", 0 },
	{ "output", 'o', "FILE", 0, "gen: write here instead of stdout", 0 },
	{ "max-order", OPT_MAX_ORDER, "N", 0, "whatif: largest folio order, 9 (2M) to 18 (1G)", 0 },
	{ "window", OPT_WINDOW, "MS", 0, "whatif: region history window (default 1000)", 0 },
	{ "sample", OPT_SAMPLE, "MS", 0, "whatif: coverage series period (default 100)", 0 },
	{ "no-direct-map", OPT_NO_DMAP, NULL, 0,
	  "whatif: count every file as no-direct-map", 0 },
	{ "no-struct-ops", OPT_NO_SO, NULL, 0, "Do not look for the struct_ops form", 0 },
	{ "raw", OPT_RAW, NULL, 0, "gen: bare 64-byte records, not a recording", 0 },
	{ "vcpus", OPT_VCPUS, "N", 0, "gen: vCPUs (default 4)", 0 },
	{ "iterations", OPT_ITER, "N", 0, "gen/bench: iterations per vCPU (default 10)", 0 },
	{ "period", OPT_PERIOD, "MS", 0, "gen: iteration period (default 300)", 0 },
	{ "tail", OPT_TAIL, "S", 0, "gen: quiet seconds after the last iteration (default 0)", 0 },
	{ "decisions", OPT_DECISIONS, "N", 0, "bench: decisions per measurement (200000)", 0 },
	{ "socket", 's', "PATH", 0,
	  "status/switch: the control socket of gmemd, by default " CTL_DEFAULT_SOCKET, 0 },
	{},
};

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	unsigned long *ul = NULL;
	char *end;

	switch (key) {
	case 'p':
		if (env.npolicies == MAX_POLICIES)
			argp_error(state, "at most %d policies", MAX_POLICIES);
		env.policies[env.npolicies++] = arg;
		return 0;
	case 'j':
		env.json = true;
		return 0;
	case 'v':
		env.verbose = true;
		return 0;
	case 'o':
		env.output = arg;
		return 0;
	case 's':
		env.socket = arg;
		return 0;
	case OPT_NO_DMAP:
		env.no_direct_map = true;
		return 0;
	case OPT_NO_SO:
		env.no_struct_ops = true;
		return 0;
	case OPT_RAW:
		env.raw = true;
		return 0;
	case OPT_MAX_ORDER: ul = &env.max_order; break;
	case OPT_WINDOW: ul = &env.window_ms; break;
	case OPT_SAMPLE: ul = &env.sample_ms; break;
	case OPT_VCPUS: ul = &env.vcpus; break;
	case OPT_ITER: ul = &env.iterations; break;
	case OPT_PERIOD: ul = &env.period_ms; break;
	case OPT_TAIL: ul = &env.tail_s; break;
	case OPT_DECISIONS: ul = &env.decisions; break;
	case ARGP_KEY_ARGS:
		env.args = state->argv + state->next;
		env.nargs = state->argc - state->next;
		return 0;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	errno = 0;
	*ul = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-')
		argp_error(state, "'%s' is not a non-negative number", arg);
	if (key == OPT_MAX_ORDER && (*ul < 1 || *ul > GMEM_POLICY_MAX_ORDER))
		argp_error(state, "--max-order: 1 to %d", GMEM_POLICY_MAX_ORDER);
	return 0;
}

static int open_policy(const char *spec, struct policy **p)
{
	struct policy_opts o = { .verbose = env.verbose, .no_struct_ops = env.no_struct_ops };
	char err[1024];
	int e = policy__open(p, spec, &o, err, sizeof(err));

	if (e)
		fprintf(stderr, "gmem-policy: %s\n", err);
	return e;
}

static int print_json(json_t *o)
{
	if (!o) {
		fprintf(stderr, "gmem-policy: out of memory\n");
		return 1;
	}
	json_dumpf(o, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(o);
	return 0;
}

/* ---- list ---------------------------------------------------------------------------------- */

static int list_one(const char *name, const char *path, void *ctx)
{
	json_t *arr = ctx;

	if (arr)
		json_array_append_new(arr, json_pack("{s:s, s:s}", "name", name, "path", path));
	else
		printf("%-16s %s\n", name, path);
	return 0;
}

static int cmd_list(void)
{
	json_t *arr = env.json ? json_array() : NULL;

	if (!env.json)
		printf("%-16s %s\n", "POLICY", "OBJECT");
	policy__for_each_installed(list_one, arr);
	return env.json ? print_json(arr) : 0;
}

/* ---- check --------------------------------------------------------------------------------- */

static struct gmem_region_hist quiet_hist(void)
{
	return (struct gmem_region_hist){ .since_conv_ns = GMEM_HIST_NEVER,
					  .since_punch_ns = GMEM_HIST_NEVER,
					  .since_split_ns = GMEM_HIST_NEVER,
					  .since_merge_ns = GMEM_HIST_NEVER,
					  .window_ns = 1000 * NS_PER_MS,
					  .populated_pages = 512,
					  .folios = 1,
					  .huge_pages = 512 };
}

/* The sample questions: a quiet region and one converting hard. */
static int check_one(const char *spec)
{
	struct gmem_split_ctx s = { .order = 9, .start = 1, .nr_pages = 1 };
	struct gmem_merge_ctx m = { .order = 9, .folios = 10 };
	struct gmem_alloc_ctx a = { .max_order = 9, .nr_pages = 1 };
	struct policy_answer ans;
	const char *why;
	struct policy *p;
	unsigned int cause, bad = 0, errors = 0;
	json_t *o = NULL, *qs = NULL;
	int hot;

	if (open_policy(spec, &p))
		return 1;
	policy__struct_ops(p, &why);
	if (env.json) {
		o = json_pack("{s:s, s:s, s:s, s:s}", "name", policy__name(p), "path",
			      policy__path(p), "struct_ops",
			      policy__so_state_name(policy__struct_ops(p, NULL)), "struct_ops_reason",
			      why);
		qs = json_array();
	} else {
		printf("%s: %s\n  struct_ops: %s\n", policy__name(p), policy__path(p), why);
	}
	for (hot = 0; hot < 2; hot++) {
		struct gmem_region_hist h = quiet_hist();

		if (hot) {
			h.conversions = h.recent_conversions = 8;
			h.since_conv_ns = 5 * NS_PER_MS;
			h.recent_punches = h.punches = 4;
			h.since_punch_ns = 20 * NS_PER_MS;
		}
		for (cause = 0; cause < GMEM_SPLIT_CAUSE_MAX; cause++) {
			s.hist = h;
			s.cause = cause;
			s.to = GMEM_TO_SHARED;
			errors += policy__split(p, &s, &ans) != 0;
			bad += ans.clamped;
			if (qs)
				json_array_append_new(qs, json_pack("{s:s, s:s, s:o}", "region",
					hot ? "hot" : "quiet", "cause", policy__cause_name(cause),
					"answer", policy_json__answer(GMEM_POLICY_SPLIT, &ans)));
			else
				printf("  %-5s split of a 2M folio (%-10s) -> %-5s%s\n",
				       hot ? "hot" : "quiet", policy__cause_name(cause),
				       policy__slot_name(GMEM_POLICY_SPLIT, ans.value),
				       ans.clamped ? " (out of range: clamped)" : "");
		}
		m.hist = h;
		errors += policy__merge(p, &m, &ans) != 0;
		bad += ans.clamped;
		if (qs)
			json_array_append_new(qs, json_pack("{s:s, s:o}", "region",
				hot ? "hot" : "quiet", "answer",
				policy_json__answer(GMEM_POLICY_MERGE, &ans)));
		else if (ans.value > 0)
			printf("  %-5s merge of 10 folios into 2m      -> after %d ms%s\n",
			       hot ? "hot" : "quiet", ans.value, ans.clamped ? " (clamped)" : "");
		else
			printf("  %-5s merge of 10 folios into 2M      -> %s%s\n",
			       hot ? "hot" : "quiet", ans.value ? "never" : "now",
			       ans.clamped ? " (clamped)" : "");
		a.hist = h;
		a.hist.populated_pages = a.hist.folios = a.hist.huge_pages = 0;
		a.source = GMEM_SRC_GUEST_FAULT;
		errors += policy__alloc(p, &a, &ans) != 0;
		bad += ans.clamped;
		if (qs)
			json_array_append_new(qs, json_pack("{s:s, s:o}", "region",
				hot ? "hot" : "quiet", "answer",
				policy_json__answer(GMEM_POLICY_ALLOC, &ans)));
		else
			printf("  %-5s guest fault, up to 2M fits      -> %s%s\n",
			       hot ? "hot" : "quiet", policy__slot_name(GMEM_POLICY_ALLOC, ans.value),
			       ans.clamped ? " (out of range: clamped)" : "");
	}
	if (o) {
		json_object_set_new(o, "answers", qs);
		json_object_set_new(o, "clamped", json_integer(bad));
		json_object_set_new(o, "errors", json_integer(errors));
		print_json(o);
	} else if (bad || errors) {
		printf("  %u answer(s) out of range, %u failed run(s)\n", bad, errors);
	}
	policy__close(p);
	return bad || errors;
}

static int cmd_check(void)
{
	int i, ret = 0;

	if (!env.nargs) {
		fprintf(stderr, "gmem-policy check: name at least one POLICY\n");
		return CLI_EX_USAGE;
	}
	for (i = 0; i < env.nargs; i++)
		ret |= check_one(env.args[i]);
	return ret;
}

/* ---- decide -------------------------------------------------------------------------------- */

static int cmd_decide(void)
{
	union {
		struct gmem_split_ctx s;
		struct gmem_merge_ctx m;
		struct gmem_alloc_ctx a;
	} ctx;
	json_t *o, *hist, *res;
	struct policy_answer ans;
	struct policy *p;
	char err[256];
	int cb, i, e;

	if (env.nargs < 2) {
		fprintf(stderr, "gmem-policy decide: POLICY CALLBACK [FIELD=VALUE...]\n");
		return CLI_EX_USAGE;
	}
	cb = policy__cb_parse(env.args[1]);
	if (cb < 0) {
		fprintf(stderr, "gmem-policy: unknown callback '%s' (split, merge, alloc_order)\n",
			env.args[1]);
		return CLI_EX_USAGE;
	}
	o = json_object();
	hist = json_object();
	for (i = 2; i < env.nargs; i++) {
		char *eq = strchr(env.args[i], '='), *end;
		json_t *v;
		unsigned long long x;

		if (!eq) {
			fprintf(stderr, "gmem-policy: '%s' is not FIELD=VALUE\n", env.args[i]);
			return CLI_EX_USAGE;
		}
		*eq = 0;
		errno = 0;
		x = strtoull(eq + 1, &end, 0);
		v = errno || *end || end == eq + 1 ? json_string(eq + 1) : json_integer(x);
		if (!strncmp(env.args[i], "hist.", 5))
			json_object_set_new(hist, env.args[i] + 5, v);
		else
			json_object_set_new(o, env.args[i], v);
	}
	json_object_set_new(o, "hist", hist);
	e = policy_json__ctx(cb, o, &ctx, err, sizeof(err));
	json_decref(o);
	if (e) {
		fprintf(stderr, "gmem-policy: %s\n", err);
		return CLI_EX_USAGE;
	}
	if (open_policy(env.args[0], &p))
		return 1;
	e = policy__decide(p, cb, &ctx, &ans);
	res = policy_json__answer(cb, &ans);
	json_object_set_new(res, "policy", json_string(policy__name(p)));
	json_object_set_new(res, "ctx", policy_json__ctx_to_json(cb, &ctx));
	if (env.json) {
		print_json(res);
	} else {
		printf("%s %s -> %d (%s)\n", policy__name(p), policy__cb_name(cb), ans.value,
		       policy__slot_name(cb, policy__decision_slot(cb, ans.value)));
		if (ans.clamped)
			printf("  out of range: the program returned %d, clamped\n", ans.raw);
		if (ans.error)
			printf("  BPF_PROG_RUN failed: the safe default was used\n");
		json_decref(res);
	}
	policy__close(p);
	return e ? 1 : 0;
}

/* ---- whatif -------------------------------------------------------------------------------- */

static int cmd_whatif(void)
{
	struct whatif_opts wo = { .max_order = env.max_order, .window_ns = env.window_ms * NS_PER_MS,
				  .sample_ns = env.sample_ms * NS_PER_MS,
				  .no_direct_map = env.no_direct_map };
	struct policy *pols[MAX_POLICIES] = {};
	struct whatif_result res;
	struct whatif_rec rec = {};
	struct whatif_fd *src;
	unsigned char magic[RECORDING_MAGIC_LEN];
	char err[512];
	int i, e, ret = 1;

	if (!env.npolicies) {
		fprintf(stderr, "gmem-policy whatif: name at least one policy with -p\n");
		return CLI_EX_USAGE;
	}
	src = calloc(1, sizeof(*src));
	if (!src)
		return 1;
	src->fd = 0;
	if (env.nargs && strcmp(env.args[0], "-")) {
		src->fd = open(env.args[0], O_RDONLY | O_CLOEXEC);
		if (src->fd < 0) {
			fprintf(stderr, "gmem-policy: cannot open %s: %s\n", env.args[0],
				strerror(errno));
			goto cleanup;
		}
		/* a gmemtrace recording, or bare records */
		if (pread(src->fd, magic, sizeof(magic), 0) == sizeof(magic) &&
		    !memcmp(magic, recording_magic, sizeof(magic)) &&
		    recording__open(&rec.r, env.args[0], err, sizeof(err))) {
			fprintf(stderr, "gmem-policy: %s: %s\n", env.args[0], err);
			goto cleanup;
		}
	}
	for (i = 0; i < env.npolicies; i++)
		if (open_policy(env.policies[i], &pols[i]))
			goto cleanup;
	e = rec.r ? whatif__run(&wo, whatif__next_recording, &rec, pols, env.npolicies, &res) :
		    whatif__run(&wo, whatif__next_fd, src, pols, env.npolicies, &res);
	if (!e && rec.r && rec.status < 0) {
		/* what was read is used; the damage is said, and the exit is 1 */
		fprintf(stderr, "gmem-policy: %s: %s\n", env.args[0], recording__error(rec.r));
		ret = 2;
	}
	if (e) {
		fprintf(stderr, "gmem-policy: replay failed: %s%s\n", strerror(-e),
			e == -EPROTO ? " (the input is not whole 64-byte records)" : "");
		goto cleanup;
	}
	if (env.json)
		print_json(whatif__json(&res));
	else
		whatif__print(stdout, &res);
	whatif__result_free(&res);
	ret = ret == 2 ? 1 : 0;
cleanup:
	recording__close(rec.r);
	for (i = 0; i < env.npolicies; i++)
		policy__close(pols[i]);
	if (src->fd > 0)
		close(src->fd);
	free(src);
	return ret;
}

/* ---- gen ----------------------------------------------------------------------------------- */

static struct whatif_gen_opts gen_opts(void)
{
	return (struct whatif_gen_opts){ .vcpus = env.vcpus, .iterations = env.iterations,
					 .period_ns = env.period_ms * NS_PER_MS,
					 .tail_ns = env.tail_s * 1000000000ull };
}

static void gen_summary(size_t n, const struct whatif_gen_counts *c)
{
	fprintf(stderr, "gmem-policy: %zu records: %llu exits, %llu set-attributes, %llu punch "
		"holes, %llu fallocates, %llu faults\n", n, (unsigned long long)c->exits,
		(unsigned long long)c->attrs, (unsigned long long)c->punches,
		(unsigned long long)c->fallocates, (unsigned long long)c->faults);
}

/* The stream as a gmemtrace recording, marked constructed as gmemtrace scenario marks its. */
static int gen_recording(const struct gmem_event *ev, size_t n)
{
	struct recording_writer_opts wo = { .no_host = true };
	struct recording_writer *w;
	char err[512];
	json_t *meta, *end;
	size_t i;
	int e;

	if (!env.output) {
		fprintf(stderr, "gmem-policy gen: writes a recording: give -o FILE (or --raw for "
			"bare records on stdout)\n");
		return CLI_EX_USAGE;
	}
	meta = json_pack("{s:{s:s}, s:{s:s, s:s, s:s}, s:{s:s}}", "source", "kind", "scenario",
			 "scenario", "name", "policy-conversions", "summary",
			 "vCPUs converting pages private and shared in turns (gmem-policy gen)",
			 "source", "tools/testing/selftests/kvm/x86/private_mem_conversions_test.c",
			 "recording", "tool", "gmem-policy gen");
	wo.meta = meta;
	e = recording_writer__open(&w, env.output, &wo, err, sizeof(err));
	json_decref(meta);
	if (e) {
		fprintf(stderr, "gmem-policy: %s\n", err);
		return 1;
	}
	for (i = 0; i < n && !e; i++)
		e = recording_writer__add(w, &ev[i]);
	if (e) {
		recording_writer__abandon(w);
		fprintf(stderr, "gmem-policy: %s: %s\n", env.output, strerror(-e));
		return 1;
	}
	end = json_pack("{s:s, s:I}", "reason", "scenario complete", "records", (json_int_t)n);
	e = recording_writer__close(w, end, err, sizeof(err));
	json_decref(end);
	if (e) {
		fprintf(stderr, "gmem-policy: %s\n", err);
		return 1;
	}
	return 0;
}

static int cmd_gen(void)
{
	struct whatif_gen_opts g = gen_opts();
	struct whatif_gen_counts c;
	struct gmem_event *ev;
	size_t n;
	FILE *f = stdout;
	int e;

	e = whatif__gen_conversions(&g, &ev, &n, &c);
	if (e) {
		fprintf(stderr, "gmem-policy: %s\n", strerror(-e));
		return 1;
	}
	if (!env.raw) {
		e = gen_recording(ev, n);
		free(ev);
		if (!e)
			gen_summary(n, &c);
		return e;
	}
	if (env.output) {
		f = fopen(env.output, "w");
		if (!f) {
			fprintf(stderr, "gmem-policy: cannot create %s: %s\n", env.output,
				strerror(errno));
			free(ev);
			return 1;
		}
	}
	if (fwrite(ev, sizeof(*ev), n, f) != n || fflush(f)) {
		fprintf(stderr, "gmem-policy: write: %s\n", strerror(errno));
		free(ev);
		return 1;
	}
	if (f != stdout)
		fclose(f);
	gen_summary(n, &c);
	free(ev);
	return 0;
}

/* ---- bench --------------------------------------------------------------------------------- */

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* The model alone, with C deciders (buddy's idea): the baseline a BPF policy adds to. */
static int c_split(void *ctx, const struct gmem_split_ctx *c)
{
	return c->order - 1;
}

static int c_merge(void *ctx, const struct gmem_merge_ctx *c)
{
	return 100;
}

static int c_alloc(void *ctx, const struct gmem_alloc_ctx *c)
{
	return c->max_order;
}

static double model_only_rate(const struct gmem_event *ev, size_t n, __u64 *decisions)
{
	struct hugemodel_opts ho = { .sample_ns = 100 * NS_PER_MS };
	struct hm_decider d = { c_split, c_merge, c_alloc, NULL };
	struct hugemodel *m = hugemodel__new(&ho, &d);
	const struct hugemodel_stats *st;
	__u64 t0 = mono_ns(), dt;
	size_t i;

	for (i = 0; i < n; i++)
		hugemodel__apply(m, &ev[i]);
	dt = mono_ns() - t0;
	st = hugemodel__stats(m);
	*decisions = st->decisions[0] + st->decisions[1] + st->decisions[2];
	hugemodel__free(m);
	return n / (dt / 1e9);
}

static int cmd_bench(void)
{
	static const char *const dflt[] = { "split4k", "buddy", "churn" };
	enum { NCTX = 1024 };
	struct whatif_gen_opts g = gen_opts();
	static struct gmem_split_ctx sc[NCTX];
	static struct policy_answer ans[NCTX];
	struct policy *pols[MAX_POLICIES] = {};
	const char *names[MAX_POLICIES];
	struct whatif_gen_counts gc;
	struct gmem_event *ev = NULL;
	__u64 base_dec, t0, dt, k;
	size_t n;
	double base;
	int np, i, e, ret = 1;
	json_t *out = env.json ? json_object() : NULL, *jd = json_array(), *jr = json_array();

	np = env.npolicies ? env.npolicies : 3;
	for (i = 0; i < np; i++) {
		names[i] = env.npolicies ? env.policies[i] : dflt[i];
		if (open_policy(names[i], &pols[i]))
			goto cleanup;
	}
	for (i = 0; i < NCTX; i++) {
		sc[i] = (struct gmem_split_ctx){ .order = 1 + i % 9, .cause = i % 3,
						 .hist = quiet_hist() };
		sc[i].hist.recent_conversions = i % 4;
	}
	if (!env.json) {
		printf("cost per decision: split decisions on %d varied contexts, %lu each way, "
		       "wall time including the copy and the bpf() call\n\n", NCTX, env.decisions);
		printf("%-12s %14s %14s %10s\n", "policy", "single (ns)", "batch64 (ns)", "ratio");
	}
	for (i = 0; i < np; i++) {
		double single, batch;

		for (k = 0; k < 20000; k++) /* warm up: caches, the CPU's clock */
			policy__split(pols[i], &sc[k % NCTX], &ans[0]);
		t0 = mono_ns();
		for (k = 0; k < env.decisions; k++)
			policy__split(pols[i], &sc[k % NCTX], &ans[0]);
		single = (double)(mono_ns() - t0) / env.decisions;
		t0 = mono_ns();
		for (k = 0; k < env.decisions; k += NCTX)
			policy__batch(pols[i], GMEM_POLICY_SPLIT, sc, NCTX, ans);
		dt = mono_ns() - t0;
		batch = (double)dt / ((env.decisions + NCTX - 1) / NCTX * NCTX);
		if (out)
			json_array_append_new(jd, json_pack("{s:s, s:f, s:f}", "policy", names[i],
							    "single_ns", single, "batch_ns", batch));
		else
			printf("%-12s %14.0f %14.0f %9.2fx\n", policy__name(pols[i]), single, batch,
			       single / batch);
	}

	if (!g.iterations)
		g.iterations = 50;
	e = whatif__gen_conversions(&g, &ev, &n, &gc);
	if (e)
		goto cleanup;
	base = model_only_rate(ev, n, &base_dec);
	if (!env.json) {
		printf("\nwhat-if replay: the constructed conversion stream, %zu records (%u vCPUs x "
		       "%u iterations), folios up to 2M\n\n", n, g.vcpus ? g.vcpus : 4,
		       g.iterations);
		printf("%-22s %12s %12s %14s %10s\n", "policies", "records/s", "decisions",
		       "ns/decision", "vs model");
		printf("%-22s %12.0f %12llu %14s %10s\n", "(model, C deciders)", base,
		       (unsigned long long)base_dec, "-", "1.00x");
	}
	for (i = 0; i <= np; i++) {
		struct whatif_array arr = { .ev = ev, .n = n };
		struct whatif_result res;
		__u64 dec = 0, run = 0;
		double rate;
		int j, first = i < np ? i : 0, cnt = i < np ? 1 : np;
		char label[64];

		e = whatif__run(NULL, whatif__next_array, &arr, pols + first, cnt, &res);
		if (e)
			goto cleanup;
		for (j = 0; j < res.nr; j++)
			for (k = 0; k < GMEM_POLICY_CB_MAX; k++) {
				dec += res.pol[j].pol.calls[k];
				run += res.pol[j].pol.run_ns[k];
			}
		rate = res.records / (res.wall_ns / 1e9);
		snprintf(label, sizeof(label), "%s", i < np ? policy__name(pols[i]) :
			 "all, side by side");
		if (out)
			json_array_append_new(jr, json_pack("{s:s, s:f, s:I, s:f, s:f}", "policies",
				label, "records_per_second", rate, "decisions", (json_int_t)dec,
				"ns_per_decision", dec ? (double)run / dec : 0.0, "model_only_rps",
				base));
		else
			printf("%-22s %12.0f %12llu %14.0f %9.2fx\n", label, rate,
			       (unsigned long long)dec, dec ? (double)run / dec : 0.0, base / rate);
		whatif__result_free(&res);
	}
	if (out) {
		json_object_set_new(out, "decision_cost", jd);
		json_object_set_new(out, "replay", jr);
		json_object_set_new(out, "records", json_integer(n));
		print_json(out);
		out = NULL;
	}
	ret = 0;
cleanup:
	if (out) {
		json_decref(jd);
		json_decref(jr);
		json_decref(out);
	}
	free(ev);
	for (i = 0; i < np; i++)
		policy__close(pols[i]);
	return ret;
}

/* ---- status, switch: a running gmemd ------------------------------------------------------- */

#define EXIT_UNREACHABLE 2

/* One request to gmemd; NULL (said why) when it cannot be reached or answers nonsense. */
static json_t *gmemd_call(json_t *req)
{
	const char *path = env.socket ? env.socket : CTL_DEFAULT_SOCKET;
	json_t *resp = NULL;
	char why[512];
	int fd, e;

	fd = ctl__connect(path);
	if (fd < 0) {
		ctl__why(path, fd, why, sizeof(why));
		fprintf(stderr, "gmem-policy: %s\n", why);
		json_decref(req);
		return NULL;
	}
	e = ctl__call(fd, req, &resp);
	close(fd);
	json_decref(req);
	if (e || !json_is_object(resp)) {
		fprintf(stderr, "gmem-policy: %s did not answer: %s\n", path,
			e ? strerror(-e) : "not a JSON object");
		json_decref(resp);
		return NULL;
	}
	return resp;
}

static const char *active_name(json_t *r)
{
	const char *n = json_string_value(json_object_get(json_object_get(r, "active"), "name"));

	return n ? n : "(none)";
}

/* "split 1M=3 8k=1; merge never=2" */
static void print_decisions(json_t *d)
{
	const char *cb, *dec, *sep = "";
	json_t *byd, *n;

	json_object_foreach(d, cb, byd) {
		if (!json_object_size(byd))
			continue;
		printf("%s%s", sep, cb);
		json_object_foreach(byd, dec, n)
			printf(" %s=%lld", dec, (long long)json_integer_value(n));
		sep = "; ";
	}
	printf("%s\n", *sep ? "" : "none");
}

static int cmd_status(void)
{
	json_t *r, *a, *p;
	const char *why;
	size_t i;

	if (env.nargs) {
		fprintf(stderr, "gmem-policy status: takes no arguments (gmem-policy switch POLICY "
			"swaps)\n");
		return CLI_EX_USAGE;
	}
	r = gmemd_call(json_pack("{s:s}", "cmd", "policy"));
	if (!r)
		return EXIT_UNREACHABLE;
	if (!json_is_true(json_object_get(r, "ok"))) {
		fprintf(stderr, "gmem-policy: gmemd: %s\n",
			json_string_value(json_object_get(r, "error")) ?: "refused");
		json_decref(r);
		return 1;
	}
	if (env.json)
		return print_json(r);
	a = json_object_get(r, "active");
	printf("active: %s", active_name(r));
	if (json_is_object(a)) {
		why = json_string_value(json_object_get(a, "struct_ops_reason"));
		printf(" (%s)", json_is_true(json_object_get(a, "struct_ops")) ?
				"struct_ops registered" : why && *why ? why : "BPF_PROG_RUN");
	}
	printf("\nswaps: %lld, refused: %lld\n",
	       (long long)json_integer_value(json_object_get(r, "swaps")),
	       (long long)json_integer_value(json_object_get(r, "failed_swaps")));
	why = json_string_value(json_object_get(r, "last_error"));
	if (why && *why)
		printf("last refusal: %s\n", why);
	json_array_foreach(json_object_get(r, "policies"), i, p) {
		printf("decisions by %s: ", json_string_value(json_object_get(p, "name")) ?: "?");
		print_decisions(json_object_get(p, "decisions"));
	}
	json_decref(r);
	return 0;
}

static int cmd_switch(void)
{
	json_t *r;
	const char *prev;

	if (env.nargs != 1) {
		fprintf(stderr, "gmem-policy switch: name one POLICY (gmem-policy switch --help)\n");
		return CLI_EX_USAGE;
	}
	r = gmemd_call(json_pack("{s:s, s:s}", "cmd", "policy_set", "policy", env.args[0]));
	if (!r)
		return EXIT_UNREACHABLE;
	if (!json_is_true(json_object_get(r, "ok"))) {
		fprintf(stderr, "gmem-policy: %s\n",
			json_string_value(json_object_get(r, "error")) ?: "gmemd refused the swap");
		if (env.json)
			print_json(r);
		else
			json_decref(r);
		return 1;
	}
	if (env.json)
		return print_json(r);
	prev = json_string_value(json_object_get(r, "previous"));
	printf("active: %s (was %s)\n", active_name(r), prev ? prev : "none");
	json_decref(r);
	return 0;
}

/* ---- main ---------------------------------------------------------------------------------- */

static const struct cmd {
	const char *name;
	int (*fn)(void);
	const char *args; /* argp's args_doc: the usage line after [OPTION...] */
	const char *doc;
} cmds[] = {
	{ "list", cmd_list, NULL, list_doc },
	{ "check", cmd_check, "POLICY...", check_doc },
	{ "decide", cmd_decide, "POLICY CALLBACK [FIELD=VALUE...]", decide_doc },
	{ "whatif", cmd_whatif, "[FILE]", whatif_doc },
	{ "gen", cmd_gen, NULL, gen_doc },
	{ "bench", cmd_bench, NULL, bench_doc },
	{ "status", cmd_status, NULL, status_doc },
	{ "switch", cmd_switch, "POLICY", switch_doc },
};

static const struct cmd *find_cmd(const char *name)
{
	unsigned int i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(name, cmds[i].name))
			return &cmds[i];
	return NULL;
}

/* Parse a verb's arguments with its own help text; argv[0] becomes "gmem-policy VERB". */
static int parse_verb(const struct cmd *c, int argc, char **argv)
{
	struct argp argp = { opts, parse_arg, c->args, c->doc, cli__std_children, NULL, NULL };
	char name[64];

	snprintf(name, sizeof(name), "gmem-policy %s", c->name);
	argv[0] = name;
	return argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL);
}

int main(int argc, char **argv)
{
	static const struct argp argp = { opts, parse_arg, "VERB [ARGS...]", doc, cli__std_children,
					  NULL, NULL };
	const struct cmd *c;

	cli__set_prog_name(argv);
	if (argc < 2 || argv[1][0] == '-') {
		argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, NULL); /* --help, --version */
		fprintf(stderr, "gmem-policy: name a verb (gmem-policy help)\n");
		return CLI_EX_USAGE;
	}
	if (!strcmp(argv[1], "help")) {
		char *hargv[] = { argv[0], "--help", NULL };

		if (argc < 3)
			return argp_parse(&argp, 2, hargv, CLI_ARGP_FLAGS, NULL, NULL);
		c = find_cmd(argv[2]);
		if (!c) {
			fprintf(stderr, "gmem-policy: no verb '%s' (gmem-policy help)\n", argv[2]);
			return CLI_EX_USAGE;
		}
		return parse_verb(c, 2, hargv);
	}
	c = find_cmd(argv[1]);
	if (!c) {
		fprintf(stderr, "gmem-policy: unknown verb '%s' (gmem-policy help)\n", argv[1]);
		return CLI_EX_USAGE;
	}
	if (parse_verb(c, argc - 1, argv + 1))
		return CLI_EX_USAGE;
	return c->fn();
}
