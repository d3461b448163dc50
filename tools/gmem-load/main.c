// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * gmem-load - a real guest_memfd workload on /dev/kvm, and the ground truth gmemscope is tested
 * against.
 *
 * The parent forks one child per VM. Each child is a small VMM: it creates the VM from its main
 * thread (so kvm->stats_id is "kvm-<child pid>", which is how gmemscope names VMs), creates
 * guest_memfd files, binds them to memslots, faults pages in from host user space and from a
 * real-mode vCPU, fallocates, punches holes, attempts memory-attribute conversions and churns
 * memfd_secret pages. Children send binary count reports up a pipe at each phase; only the
 * parent prints, one jansson-built JSON object per line.
 *
 * This file is the command line and the parent; gmem-load.h says where the rest lives.
 */
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/kvm.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "gmem-load.h"

/* ---- options --------------------------------------------------------------------------------- */

enum {
	OPT_VMS = 256,
	OPT_FILES,
	OPT_FILE_SIZE,
	OPT_USER_TOUCH,
	OPT_GUEST_TOUCH,
	OPT_FALLOCATE,
	OPT_PUNCH,
	OPT_PUNCH_SIZE,
	OPT_CONVERT,
	OPT_CONVERT_IN_PLACE,
	OPT_VM_TYPE,
	OPT_GUEST_CONVERT,
	OPT_MEM_FAULTS,
	OPT_SECRET_PAGES,
	OPT_NO_VCPU,
	OPT_STATS_FDS,
	OPT_PAUSE,
	OPT_LINGER,
	OPT_EXIT_EARLY,
	OPT_CHURN,
	OPT_ITERATIONS,
	OPT_DURATION,
	OPT_RATE,
	OPT_START_DELAY,
	OPT_SEED,
	OPT_ADVISE,
};


static const char doc[] =
	"gmem-load -- drive real guest_memfd activity on /dev/kvm and print exact counts as JSON.\n"
	"\n"
	"One child process per VM creates the VM (its pid is the VM's identity, as in kvm-PID), "
	"creates --files guest_memfd files (MMAP|INIT_SHARED), binds each to its own memslot "
	"(file i at guest physical address i*FILE_SIZE), then per file: writes --user-touch pages "
	"through the mmap, runs a real-mode vCPU from file 0 that writes --guest-touch pages "
	"(file 0 only; guest code lives in page 0), fallocates --fallocate more pages, punches "
	"--punch holes; per VM: attempts --convert memory-attribute conversions and churns "
	"--secret-pages memfd_secret pages; then closes everything.\n"
	"\n"
	"Output: one JSON object per line on stdout, each with a \"phase\" field: \"paused\" "
	"(with --pause), \"done\" (with --linger), and always \"exit\" once every VM has closed "
	"its files and exited. Counts are cumulative and exact: they come from syscall results "
	"and cachestat() on the gmem files.\n"
	"\n"
	"With --churn, --user-touch, --fallocate and --guest-touch are per-iteration sizes: each "
	"iteration touches a range and punches it, fallocates a range and punches it, reruns the "
	"guest over its pages and punches them, and cycles --secret-pages memfd_secret pages.\n"
	"\n"
	"With --vm-type sw-protected (KVM_X86_SW_PROTECTED_VM; the kernel needs "
	"CONFIG_KVM_SW_PROTECTED_VM) memory is really private: the guest_memfd files are created "
	"without MMAP|INIT_SHARED and never mapped by the host, each memslot's shared half is "
	"anonymous memory, and the vCPU asks for conversions itself. --guest-convert N: for each "
	"of N pages of file 0 after the guest code, the guest asks (a KVM_HC_MAP_GPA_RANGE "
	"hypercall exit) for the page private, writes it (a guest fault into guest_memfd), asks "
	"for it shared and writes it again; gmem-load answers each exit with "
	"KVM_SET_MEMORY_ATTRIBUTES and, on the way to shared, punches the page out of the file, "
	"as a VMM discards private memory. --mem-faults N: N pages of an extra memslot without "
	"guest_memfd are set private; each guest write there is a private access KVM cannot back, "
	"so KVM_RUN exits with KVM_EXIT_MEMORY_FAULT, and gmem-load converts the page shared and "
	"re-enters. (In a software-protected VM the attributes decide whether an access is "
	"private, so a gfn backed by guest_memfd never faults for a mismatch.) Counted under "
	"\"vcpu_exits\", \"conversion_requests\" (by what each exit asked: the hypercall's "
	"attributes, the fault's private flag) and \"conversions_on_exit\" (what gmem-load "
	"converted to before the next KVM_RUN).\n"
	"\n"
	"USAGE: gmem-load [--vms N] [--files N] [--user-touch PAGES] [OPTIONS]\n"
	"\v"
	"EXAMPLES:\n"
	"  gmem-load --vms 3 --user-touch 8 --guest-touch 16 --fallocate 32 --punch 4\n"
	"  gmem-load --pause --user-touch 10 &   # then: kill -USR1 <gmem-load pid>\n"
	"  gmem-load --vms 2 --linger 30 --exit-early 1 --secret-pages 64 --convert 4\n"
	"  gmem-load --churn --duration 2 --user-touch 16 --fallocate 16 --rate 0\n"
	"  gmem-load --vm-type sw-protected --guest-convert 32 --mem-faults 8\n"
	"\n"
	"SIGNALS: SIGUSR1 to the parent ends --pause, then ends --linger early (one signal each; a "
	"signal sent before the wait begins is kept). The VM children ignore it.\n"
	"\n"
	"EXIT STATUS: 0 success, 1 a step failed, 64 bad usage, 77 this machine lacks /dev/kvm or "
	"guest_memfd with MMAP|INIT_SHARED (with --vm-type sw-protected: KVM_X86_SW_PROTECTED_VM "
	"with private memory attributes).\n";

static const struct argp_option options[] = {
	{ "vms", OPT_VMS, "N", 0, "VMs (child processes) to run (default 1)", 0 },
	{ "files", OPT_FILES, "N", 0, "guest_memfd files per VM, one memslot each (default 1)", 0 },
	{ "file-size", OPT_FILE_SIZE, "BYTES", 0,
	  "size of each file, page multiple, K/M/G suffixes (default 2M)", 0 },
	{ "user-touch", OPT_USER_TOUCH, "PAGES", 0, "pages written through the mmap, per file", 0 },
	{ "guest-touch", OPT_GUEST_TOUCH, "PAGES", 0,
	  "pages the vCPU writes in file 0 (capped to the first 1 MiB)", 0 },
	{ "fallocate", OPT_FALLOCATE, "PAGES", 0, "unpopulated pages to fallocate, per file", 0 },
	{ "punch", OPT_PUNCH, "N", 0, "holes to punch, per file", 0 },
	{ "punch-size", OPT_PUNCH_SIZE, "BYTES", 0, "bytes per hole, page multiple (default 4K)",
	  0 },
	{ "convert", OPT_CONVERT, "N", 0,
	  "KVM_SET_MEMORY_ATTRIBUTES attempts per VM, alternating private/shared", 0 },
	{ "convert-in-place", OPT_CONVERT_IN_PLACE, "N", 0,
	  "KVM_SET_MEMORY_ATTRIBUTES2 attempts on file 0's guest_memfd fd (in-place conversion, "
	  "one page each, alternating private/shared); kernels without it answer ENOTTY, "
	  "counted as errors", 0 },
	{ "vm-type", OPT_VM_TYPE, "TYPE", 0,
	  "default, or sw-protected (KVM_X86_SW_PROTECTED_VM: real private memory)", 0 },
	{ "guest-convert", OPT_GUEST_CONVERT, "PAGES", 0,
	  "sw-protected: pages the guest converts private and back through hypercall exits", 0 },
	{ "mem-faults", OPT_MEM_FAULTS, "PAGES", 0,
	  "sw-protected: private pages without guest_memfd the guest writes "
	  "(KVM_EXIT_MEMORY_FAULT each, answered by a conversion to shared)", 0 },
	{ "secret-pages", OPT_SECRET_PAGES, "N", 0, "memfd_secret pages to touch and free, per VM",
	  0 },
	{ "no-vcpu", OPT_NO_VCPU, NULL, 0, "create no vCPU (no guest faults)", 0 },
	{ "stats-fds", OPT_STATS_FDS, NULL, 0,
	  "hold KVM_GET_STATS_FD fds on the VM and the vCPU, as QEMU does, and report what they "
	  "say (\"kvm_stats\") once the work is done", 0 },
	{ "pause", OPT_PAUSE, NULL, 0,
	  "after setup, print {\"phase\":\"paused\"} and wait until SIGUSR1 comes", 0 },
	{ "linger", OPT_LINGER, "SECONDS", 0,
	  "before closing print {\"phase\":\"done\"} and hold everything open this long "
	  "(or until SIGUSR1)", 0 },
	{ "exit-early", OPT_EXIT_EARLY, "K", 0,
	  "VM K (0-based) _exits with its files still open right after its work", 0 },
	{ "churn", OPT_CHURN, NULL, 0, "loop touch/punch/fallocate/punch (needs --iterations or "
	  "--duration)", 0 },
	{ "iterations", OPT_ITERATIONS, "N", 0, "churn iterations per VM", 0 },
	{ "duration", OPT_DURATION, "SECONDS", 0, "churn for this long", 0 },
	{ "rate", OPT_RATE, "OPS", 0, "churn iterations per second per VM (0 = flat out)", 0 },
	{ "start-delay", OPT_START_DELAY, "MS", 0, "each VM waits this long before KVM_CREATE_VM",
	  0 },
	{ "advise", OPT_ADVISE, "SOCKET", 0,
	  "before each punch hole, ask the policy of the gmemd at this control socket what it "
	  "would decide; the answers are counted under \"advice\"", 0 },
	{ "seed", OPT_SEED, "N", 0,
	  "0 (default): sequential punch/churn offsets; else pseudo-random ones from this seed",
	  0 },
	{ 0 },
};

static int parse_u64(const char *s, __u64 *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_size(const char *s, __u64 *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (*end)
		return -EINVAL;
	if (shift && v > (~0ULL >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

static void opts__check(struct argp_state *state)
{
	struct opts *o = state->input;
	struct layout *l = &o->lay;
	bool vcpu_runs;
	__u64 need0, needn, area;

	l->npages = o->file_size / PAGE_SZ;
	if (o->file_size > MAX_FILE_SIZE)
		argp_error(state, "--file-size %llu is over the %llu GiB this tool allows",
			   (unsigned long long)o->file_size, MAX_FILE_SIZE >> 30);
	if (o->punch_size > o->file_size)
		argp_error(state, "--punch-size %llu is larger than --file-size %llu",
			   (unsigned long long)o->punch_size, (unsigned long long)o->file_size);
	if (o->guest_touch && o->no_vcpu)
		argp_error(state, "--guest-touch needs a vCPU; drop --no-vcpu");
	if (o->exit_early >= (long)o->vms)
		argp_error(state, "--exit-early %ld names no VM (there are %u, numbered from 0)",
			   o->exit_early, o->vms);
	if (o->churn && !o->iterations && o->duration == 0)
		argp_error(state, "--churn needs --iterations N or --duration SECONDS");
	if (!o->churn && (o->iterations || o->duration > 0 || o->rate > 0))
		argp_error(state, "--iterations, --duration and --rate only apply with --churn");
	if (o->churn && !o->user_touch && !o->falloc_pages && !o->guest_touch &&
	    !o->secret_pages)
		argp_error(state, "--churn has nothing to do: give --user-touch, --fallocate, "
			   "--guest-touch or --secret-pages");

	if (o->vm_type == KVM_X86_SW_PROTECTED_VM) {
		if (o->user_touch || o->guest_touch)
			argp_error(state, "--vm-type sw-protected: its files are private, never "
				   "mapped by the host, and its guest runs --guest-convert; drop "
				   "--user-touch and --guest-touch");
		if (o->churn)
			argp_error(state, "--churn does not apply to --vm-type sw-protected");
		if ((o->guest_convert || o->mem_faults) && o->no_vcpu)
			argp_error(state, "--guest-convert and --mem-faults need a vCPU; drop "
				   "--no-vcpu");
		if (o->guest_convert > 0xffff || o->mem_faults > 0xffff)
			argp_error(state, "--guest-convert and --mem-faults take at most 65535 pages");
	} else if (o->guest_convert || o->mem_faults) {
		argp_error(state, "--guest-convert and --mem-faults need --vm-type sw-protected");
	}
	vcpu_runs = !o->no_vcpu;
	if (o->user_touch > l->npages)
		argp_error(state, "--user-touch %llu is larger than the file (%llu pages)",
			   (unsigned long long)o->user_touch, (unsigned long long)l->npages);
	if (o->guest_touch > l->npages)
		argp_error(state, "--guest-touch %llu is larger than the file (%llu pages)",
			   (unsigned long long)o->guest_touch, (unsigned long long)l->npages);
	if (o->falloc_pages > l->npages)
		argp_error(state, "--fallocate %llu is larger than the file (%llu pages)",
			   (unsigned long long)o->falloc_pages, (unsigned long long)l->npages);

	/* In churn mode the host ranges are punched each iteration, so only page 0 is kept. */
	l->user0 = o->churn ? 0 : o->user_touch;
	if (vcpu_runs && l->user0 < 1)
		l->user0 = 1;
	l->guest = o->guest_touch;
	if (l->user0 + l->guest > l->npages)
		argp_error(state, "file 0 cannot hold %llu host page(s) then %llu guest page(s): "
			   "it has %llu", (unsigned long long)l->user0,
			   (unsigned long long)l->guest, (unsigned long long)l->npages);
	if (l->user0 + l->guest > REALMODE_PAGES) {
		__u64 capped = l->user0 < REALMODE_PAGES ? REALMODE_PAGES - l->user0 : 0;

		fprintf(stderr, "gmem-load: note: --guest-touch %llu capped to %llu: the real-mode "
			"guest reaches only the first 1 MiB, and pages [0, %llu) are the host's\n",
			(unsigned long long)l->guest, (unsigned long long)capped,
			(unsigned long long)l->user0);
		l->guest = capped;
	}
	if (o->churn) {
		l->churn_first0 = vcpu_runs ? l->user0 + l->guest : 0;
		area = l->npages - l->churn_first0;
		if (o->user_touch > area || o->falloc_pages > area ||
		    (o->punch && o->punch_size / PAGE_SZ > area))
			argp_error(state, "file 0 has %llu pages free for churn ranges after the "
				   "guest's pages; --user-touch/--fallocate/--punch-size must fit",
				   (unsigned long long)area);
	} else {
		l->conv = o->guest_convert;
		need0 = l->user0 + l->guest + l->conv + o->falloc_pages;
		needn = o->user_touch + o->falloc_pages;
		if (need0 > l->npages || needn > l->npages)
			argp_error(state, "the touched, converted and fallocated pages (%llu in "
				   "file 0) do not fit in a %llu-page file",
				   (unsigned long long)need0, (unsigned long long)l->npages);
	}
	/* The guest addresses these with 32-bit offsets from DS base 0 (see guest_code_private). */
	l->mf_gpa = (__u64)o->files * o->file_size;
	if (o->mem_faults && l->mf_gpa + o->mem_faults * PAGE_SZ > (1ULL << 32))
		argp_error(state, "--mem-faults pages would sit above 4 GiB (after %u files of "
			   "%llu bytes); the real-mode guest reaches only the first 4 GiB",
			   o->files, (unsigned long long)o->file_size);
}

static error_t parse_opt(int key, char *arg, struct argp_state *state)
{
	struct opts *o = state->input;
	__u64 v = 0;

	switch (key) {
	case OPT_VMS:
	case OPT_FILES:
		if (parse_u64(arg, &v) || v < 1 || v > (key == OPT_VMS ? MAX_VMS : MAX_FILES))
			argp_error(state, "--%s wants a number from 1 to %d, not '%s'",
				   key == OPT_VMS ? "vms" : "files",
				   key == OPT_VMS ? MAX_VMS : MAX_FILES, arg);
		if (key == OPT_VMS)
			o->vms = v;
		else
			o->files = v;
		break;
	case OPT_FILE_SIZE:
	case OPT_PUNCH_SIZE:
		if (parse_size(arg, &v) || !v || v % PAGE_SZ)
			argp_error(state, "--%s wants a positive multiple of %llu bytes "
				   "(suffixes K, M, G), not '%s'",
				   key == OPT_FILE_SIZE ? "file-size" : "punch-size", PAGE_SZ, arg);
		if (key == OPT_FILE_SIZE)
			o->file_size = v;
		else
			o->punch_size = v;
		break;
	case OPT_USER_TOUCH:
	case OPT_GUEST_TOUCH:
	case OPT_FALLOCATE:
	case OPT_PUNCH:
	case OPT_CONVERT:
	case OPT_CONVERT_IN_PLACE:
	case OPT_GUEST_CONVERT:
	case OPT_MEM_FAULTS:
	case OPT_SECRET_PAGES:
	case OPT_ITERATIONS:
	case OPT_START_DELAY:
	case OPT_SEED:
		if (parse_u64(arg, &v))
			argp_error(state, "option wants a non-negative integer, not '%s'", arg);
		switch (key) {
		case OPT_USER_TOUCH: o->user_touch = v; break;
		case OPT_GUEST_TOUCH: o->guest_touch = v; break;
		case OPT_FALLOCATE: o->falloc_pages = v; break;
		case OPT_PUNCH: o->punch = v; break;
		case OPT_CONVERT: o->convert = v; break;
		case OPT_CONVERT_IN_PLACE: o->convert_in_place = v; break;
		case OPT_GUEST_CONVERT: o->guest_convert = v; break;
		case OPT_MEM_FAULTS: o->mem_faults = v; break;
		case OPT_SECRET_PAGES: o->secret_pages = v; break;
		case OPT_ITERATIONS: o->iterations = v; break;
		case OPT_START_DELAY: o->start_delay_ms = v; break;
		case OPT_SEED: o->seed = v; break;
		}
		break;
	case OPT_LINGER:
		if (parse_seconds(arg, &o->linger))
			argp_error(state, "--linger wants seconds >= 0, not '%s'", arg);
		o->linger_set = true;
		break;
	case OPT_DURATION:
		if (parse_seconds(arg, &o->duration) || o->duration == 0)
			argp_error(state, "--duration wants seconds > 0, not '%s'", arg);
		break;
	case OPT_RATE:
		if (parse_seconds(arg, &o->rate))
			argp_error(state, "--rate wants iterations per second >= 0, not '%s'", arg);
		break;
	case OPT_EXIT_EARLY:
		if (parse_u64(arg, &v) || v >= MAX_VMS)
			argp_error(state, "--exit-early wants a VM index, not '%s'", arg);
		o->exit_early = v;
		break;
	case OPT_VM_TYPE:
		if (!strcmp(arg, "default"))
			o->vm_type = 0;
		else if (!strcmp(arg, "sw-protected"))
			o->vm_type = KVM_X86_SW_PROTECTED_VM;
		else
			argp_error(state, "--vm-type wants default or sw-protected, not '%s'", arg);
		break;
	case OPT_ADVISE: o->advise = arg; break;
	case OPT_NO_VCPU: o->no_vcpu = true; break;
	case OPT_STATS_FDS: o->stats_fds = true; break;
	case OPT_PAUSE: o->pause = true; break;
	case OPT_CHURN: o->churn = true; break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	case ARGP_KEY_END:
		opts__check(state);
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

/* ---- the parent ------------------------------------------------------------------------------ */

struct fleet {
	const struct opts *o;
	struct vm_view *v;
	sigset_t waitmask; /* the mask ppoll sleeps with: our signals let through */
	unsigned int n;
};

static volatile sig_atomic_t usr1_count;
static volatile sig_atomic_t stop_sig;
static int usr1_used;

static void on_usr1(int sig __attribute__((unused)))
{
	usr1_count++;
}

static void on_stop(int sig)
{
	stop_sig = sig;
}

static int fleet__print(struct fleet *fl, const char *phase)
{
	struct counts tot = { 0 };
	json_t *root, *vms, *totals;
	__u64 pop = 0;
	unsigned int i, j;
	char *s = NULL;
	int err = -ENOMEM;

	root = json_object();
	vms = json_array();
	if (!root || !vms || json_object_set_new(root, "phase", json_string(phase)) ||
	    json_object_set_new(root, "tool", json_string("gmem-load")) ||
	    json_object_set_new(root, "version", json_integer(JSON_VERSION)) ||
	    json_object_set_new(root, "pid", json_integer(getpid())) ||
	    json_object_set(root, "vms", vms)) {
		json_decref(vms);
		goto out;
	}
	json_decref(vms); /* root holds it now */
	for (i = 0; i < fl->n; i++) {
		const struct vm_view *v = &fl->v[i];

		if (json_array_append_new(vms, view__json(v)))
			goto out;
		counts__add(&tot, &v->c);
		for (j = 0; j < v->c.files_created; j++)
			pop += v->files[j].populated;
	}
	totals = counts__json(&tot, json_object());
	if (!totals || json_object_set_new(totals, "populated_pages", json_integer(pop)) ||
	    json_object_set_new(root, "totals", totals))
		goto out;
	s = json_dumps(root, JSON_COMPACT);
	if (!s)
		goto out;
	if (printf("%s\n", s) < 0 || fflush(stdout)) {
		err = -errno;
		fprintf(stderr, "gmem-load: cannot write to stdout: %s\n", strerror(-err));
		goto out;
	}
	err = 0;
out:
	if (err == -ENOMEM)
		fprintf(stderr, "gmem-load: out of memory building JSON\n");
	free(s);
	json_decref(root);
	return err;
}

/* The kernel released an early VM's files when it exited; book what that freed. */
static void view__released(struct vm_view *v)
{
	unsigned int j;

	for (j = 0; j < v->c.files_created; j++) {
		if (v->files[j].released)
			continue;
		v->c.pages_freed += v->files[j].populated;
		v->files[j].populated = 0;
		v->files[j].released = 1;
		v->c.files_released++;
	}
}

static int fleet__reap(struct fleet *fl, struct vm_view *v)
{
	int status;
	pid_t p;

	if (v->reaped)
		return 0;
	do
		p = waitpid(v->pid, &status, 0);
	while (p < 0 && errno == EINTR);
	v->reaped = true;
	if (p < 0) {
		fprintf(stderr, "gmem-load: waitpid %d: %s\n", (int)v->pid, strerror(errno));
		return -ECHILD;
	}
	if (WIFEXITED(status) && !WEXITSTATUS(status))
		return 0;
	if (WIFEXITED(status)) {
		fprintf(stderr, "gmem-load: vm %ld (pid %d) failed with exit status %d\n",
			(long)(v - fl->v), (int)v->pid, WEXITSTATUS(status));
		return WEXITSTATUS(status) == EXIT_UNSUPPORTED ? -EOPNOTSUPP : -EIO;
	}
	fprintf(stderr, "gmem-load: vm %ld (pid %d) killed by signal %d (%s)\n",
		(long)(v - fl->v), (int)v->pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
	return -EIO;
}

static void fleet__kill(struct fleet *fl)
{
	unsigned int i;

	for (i = 0; i < fl->n; i++) {
		if (fl->v[i].pid > 0 && !fl->v[i].reaped) {
			kill(fl->v[i].pid, SIGKILL);
			waitpid(fl->v[i].pid, NULL, 0);
			fl->v[i].reaped = true;
		}
	}
}

/* Reads one report from v. A child that hangs up instead has failed: say why. */
static int fleet__read(struct fleet *fl, struct vm_view *v)
{
	struct rep_hdr h;
	ssize_t n;
	int err;

	n = read_all(v->rep_fd, &h, sizeof(h));
	if (n == (ssize_t)sizeof(h) && h.nfiles == fl->o->files)
		n = read_all(v->rep_fd, v->files, h.nfiles * sizeof(struct rep_file));
	else if (n == (ssize_t)sizeof(h))
		n = -EPROTO;
	if (n != (ssize_t)(fl->o->files * sizeof(struct rep_file))) {
		err = fleet__reap(fl, v);
		if (!err) {
			fprintf(stderr, "gmem-load: vm %ld (pid %d) exited without reporting\n",
				(long)(v - fl->v), (int)v->pid);
			err = -EIO;
		}
		return err;
	}
	v->c = h.c;
	v->last = h.type;
	if (h.type == REP_EARLY) {
		v->early = true;
		err = fleet__reap(fl, v);
		if (err)
			return err;
		view__released(v);
	}
	return 0;
}

static void ns_to_timespec(__u64 ns, struct timespec *ts)
{
	ts->tv_sec = ns / 1000000000ULL;
	ts->tv_nsec = ns % 1000000000ULL;
}

/*
 * Waits until every VM that is still running has sent a report of type want (an early exit
 * counts as DONE), or, when want is 0, until SIGUSR1 or the deadline. Children are watched all
 * the while, so one that dies is noticed at once rather than at the next phase.
 */
static int fleet__wait(struct fleet *fl, __u32 want, __u64 deadline_ns)
{
	struct pollfd *pfd = calloc(fl->n, sizeof(*pfd));
	struct vm_view **who = calloc(fl->n, sizeof(*who));
	int err = 0;

	if (!pfd || !who) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		struct timespec ts, *tsp = NULL;
		unsigned int i, n = 0;
		__u64 now;
		int r;

		if (stop_sig) {
			fprintf(stderr, "gmem-load: interrupted by %s; stopping the VMs\n",
				strsignal(stop_sig));
			err = -EINTR;
			goto out;
		}
		if (!want && usr1_count > usr1_used) {
			usr1_used++;
			goto out;
		}
		for (i = 0; i < fl->n; i++) {
			struct vm_view *v = &fl->v[i];

			if (v->reaped)
				continue;
			if (want && (v->last == want || (want == REP_DONE && v->early)))
				continue;
			pfd[n].fd = v->rep_fd;
			pfd[n].events = POLLIN;
			who[n++] = v;
		}
		if (want && !n)
			goto out;
		if (deadline_ns) {
			now = now_ns();
			if (now >= deadline_ns)
				goto out;
			ns_to_timespec(deadline_ns - now, &ts);
			tsp = &ts;
		}
		r = ppoll(pfd, n, tsp, &fl->waitmask);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			fprintf(stderr, "gmem-load: ppoll: %s\n", strerror(-err));
			goto out;
		}
		for (i = 0; i < n; i++) {
			struct vm_view *v = who[i];

			if (!pfd[i].revents)
				continue;
			err = fleet__read(fl, v);
			if (err)
				goto out;
			if (!want || (v->last != want && !(want == REP_DONE && v->early))) {
				fprintf(stderr, "gmem-load: vm %ld (pid %d) sent report %u "
					"out of turn\n", (long)(v - fl->v), (int)v->pid, v->last);
				err = -EPROTO;
				goto out;
			}
		}
	}
out:
	free(pfd);
	free(who);
	return err;
}

static int fleet__go(struct fleet *fl)
{
	unsigned int i;
	int err;

	for (i = 0; i < fl->n; i++) {
		if (fl->v[i].reaped)
			continue;
		err = write_all(fl->v[i].ctl_fd, "g", 1);
		if (err) {
			fprintf(stderr, "gmem-load: cannot wake vm %u: %s\n", i, strerror(-err));
			return err;
		}
	}
	return 0;
}

static int fleet__spawn(struct fleet *fl, const struct layout *l)
{
	unsigned int i, j;

	for (i = 0; i < fl->n; i++) {
		struct vm_view *v = &fl->v[i];
		int rep[2], ctl[2];
		pid_t pid;

		v->files = calloc(fl->o->files, sizeof(*v->files));
		if (!v->files)
			return -ENOMEM;
		if (pipe2(rep, O_CLOEXEC)) {
			fprintf(stderr, "gmem-load: pipe: %s\n", strerror(errno));
			return -errno;
		}
		if (pipe2(ctl, O_CLOEXEC)) {
			fprintf(stderr, "gmem-load: pipe: %s\n", strerror(errno));
			close(rep[0]);
			close(rep[1]);
			return -errno;
		}
		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			fprintf(stderr, "gmem-load: fork: %s\n", strerror(errno));
			close(rep[0]);
			close(rep[1]);
			close(ctl[0]);
			close(ctl[1]);
			return -errno;
		}
		if (!pid) {
			/* Earlier VMs' pipe ends are the parent's; holding them hides its exit. */
			for (j = 0; j < i; j++) {
				close(fl->v[j].rep_fd);
				close(fl->v[j].ctl_fd);
			}
			close(rep[0]);
			close(ctl[1]);
			if (getppid() == 1)
				_exit(EXIT_FAIL);
			vm__child(i, fl->o, l, rep[1], ctl[0]);
		}
		close(rep[1]);
		close(ctl[0]);
		v->pid = pid;
		v->rep_fd = rep[0];
		v->ctl_fd = ctl[1];
	}
	return 0;
}

/* Fails with exit status 77 where the machine cannot run this at all, so tests can skip. */
static int preflight(const struct opts *o)
{
	int fd, r, api;

	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = errno;
		fprintf(stderr, "gmem-load: cannot open /dev/kvm: %s (%s)\n", strerror(r),
			r == ENOENT ? "no KVM here: load kvm_intel/kvm_amd or run on a host with "
				      "hardware virtualisation" :
			r == EACCES || r == EPERM ? "run as root or join the kvm group" :
			"check the KVM module");
		return EXIT_UNSUPPORTED;
	}
	api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		fprintf(stderr, "gmem-load: /dev/kvm speaks API %d, not %d\n", api,
			KVM_API_VERSION);
		close(fd);
		return EXIT_UNSUPPORTED;
	}
	r = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD);
	if (r <= 0) {
		fprintf(stderr, "gmem-load: KVM_CAP_GUEST_MEMFD is %d: this kernel has no "
			"guest_memfd (needs Linux 6.8+ built with KVM guest_memfd support)\n", r);
		close(fd);
		return EXIT_UNSUPPORTED;
	}
	r = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2);
	if (r <= 0) {
		fprintf(stderr, "gmem-load: KVM_CAP_USER_MEMORY2 is %d: memslots cannot be bound "
			"to guest_memfd here\n", r);
		close(fd);
		return EXIT_UNSUPPORTED;
	}
	r = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	if (r > 0 && (unsigned int)r < o->files) {
		fprintf(stderr, "gmem-load: --files %u is more than the %d memslots KVM allows\n",
			o->files, r);
		close(fd);
		return CLI_EX_USAGE;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.vms = 1, .files = 1, .file_size = 2ULL << 20, .punch_size = PAGE_SZ,
		.exit_early = -1,
	};
	struct argp argp = { options, parse_opt, NULL, doc, cli__std_children, NULL, NULL };
	struct sigaction sa = { 0 };
	struct fleet fl = { .o = &o };
	sigset_t block;
	unsigned int i;
	int err, ret;

	cli__set_prog_name(argv);
	if (sysconf(_SC_PAGESIZE) != (long)PAGE_SZ) {
		fprintf(stderr, "gmem-load: needs %llu-byte pages\n", PAGE_SZ);
		return EXIT_UNSUPPORTED;
	}
	argp_parse(&argp, argc, argv, CLI_ARGP_FLAGS, NULL, &o);
	advise_json = o.advise;

	/*
	 * Our signals stay blocked except inside ppoll, so a SIGUSR1 sent before the wait is
	 * remembered rather than lost or fatal.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &fl.waitmask);
	sigdelset(&fl.waitmask, SIGUSR1);
	sigdelset(&fl.waitmask, SIGINT);
	sigdelset(&fl.waitmask, SIGTERM);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	ret = preflight(&o);
	if (ret)
		return ret;

	fl.n = o.vms;
	fl.v = calloc(fl.n, sizeof(*fl.v));
	if (!fl.v) {
		fprintf(stderr, "gmem-load: out of memory\n");
		return EXIT_FAIL;
	}
	for (i = 0; i < fl.n; i++)
		fl.v[i].rep_fd = fl.v[i].ctl_fd = -1;

	err = fleet__spawn(&fl, &o.lay);
	if (err)
		goto cleanup;
	if (o.pause) {
		err = fleet__wait(&fl, REP_PAUSED, 0);
		if (!err)
			err = fleet__print(&fl, "paused");
		if (!err)
			err = fleet__wait(&fl, 0, 0);
		if (!err)
			err = fleet__go(&fl);
		if (err)
			goto cleanup;
	}
	err = fleet__wait(&fl, REP_DONE, 0);
	if (err)
		goto cleanup;
	if (o.linger_set) {
		err = fleet__print(&fl, "done");
		if (!err && o.linger > 0)
			err = fleet__wait(&fl, 0, now_ns() + (__u64)(o.linger * 1e9));
		if (!err)
			err = fleet__go(&fl);
		if (err)
			goto cleanup;
	}
	err = fleet__wait(&fl, REP_FINAL, 0);
	for (i = 0; !err && i < fl.n; i++)
		err = fleet__reap(&fl, &fl.v[i]);
	if (!err)
		err = fleet__print(&fl, "exit");
cleanup:
	fleet__kill(&fl);
	for (i = 0; i < fl.n; i++) {
		if (fl.v[i].rep_fd >= 0)
			close(fl.v[i].rep_fd);
		if (fl.v[i].ctl_fd >= 0)
			close(fl.v[i].ctl_fd);
		free(fl.v[i].files);
	}
	free(fl.v);
	if (err == -EOPNOTSUPP)
		return EXIT_UNSUPPORTED;
	return err ? EXIT_FAIL : 0;
}
