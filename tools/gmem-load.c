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
 * Every count comes from a syscall's return value or from cachestat() on the gmem fd (the
 * page cache as the kernel sees it), never from what should have happened: a per-file bitmap
 * holds the pages we know are present, and each step's effect is the difference the kernel
 * reports. A page that appears or vanishes outside any step is counted as "other" and warned
 * about, so the totals stay exact even when the kernel surprises us.
 */
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/kvm.h>
#include <math.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "gmem_advice.h"
#include "gmem_events.h"
#include "kvmstats.h"

/*
 * uapi this tool needs from Linux 6.8-6.18. Distro headers often predate it (Debian 12 ships
 * 6.1), so keep local copies with the uapi layout and tie their sizes to the ioctl numbers the
 * probes decode, which would catch a layout slip at compile time.
 */
#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2 231
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD 234
#endif
#ifndef KVM_CAP_GUEST_MEMFD_FLAGS
#define KVM_CAP_GUEST_MEMFD_FLAGS 244
#endif
#ifndef KVM_MEM_GUEST_MEMFD
#define KVM_MEM_GUEST_MEMFD GMEM_KVM_MEM_GUEST_MEMFD
#endif
#ifndef KVM_MEMORY_ATTRIBUTE_PRIVATE
#define KVM_MEMORY_ATTRIBUTE_PRIVATE GMEM_KVM_MEMORY_ATTRIBUTE_PRIVATE
#endif
#ifndef GUEST_MEMFD_FLAG_MMAP
#define GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
#endif
#ifndef GUEST_MEMFD_FLAG_INIT_SHARED
#define GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)
#endif
#ifndef KVM_CAP_MEMORY_ATTRIBUTES
#define KVM_CAP_MEMORY_ATTRIBUTES 233
#endif
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif
#ifndef KVM_CAP_EXIT_HYPERCALL
#define KVM_CAP_EXIT_HYPERCALL 201
#endif
#ifndef KVM_X86_SW_PROTECTED_VM
#define KVM_X86_SW_PROTECTED_VM 1
#endif

#ifndef KVM_CREATE_GUEST_MEMFD
struct kvm_create_guest_memfd {
	__u64 size;
	__u64 flags;
	__u64 reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD GMEM_KVM_CREATE_GUEST_MEMFD
#endif

#ifndef KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 GMEM_KVM_SET_USER_MEMORY_REGION2
#endif

#ifndef KVM_SET_MEMORY_ATTRIBUTES
struct kvm_memory_attributes {
	__u64 address;
	__u64 size;
	__u64 attributes;
	__u64 flags;
};
#define KVM_SET_MEMORY_ATTRIBUTES GMEM_KVM_SET_MEMORY_ATTRIBUTES
#endif

_Static_assert(_IOC_SIZE(GMEM_KVM_CREATE_GUEST_MEMFD) == sizeof(struct kvm_create_guest_memfd),
	       "kvm_create_guest_memfd layout");
_Static_assert(_IOC_SIZE(GMEM_KVM_SET_USER_MEMORY_REGION2) ==
		       sizeof(struct kvm_userspace_memory_region2),
	       "kvm_userspace_memory_region2 layout");
_Static_assert(_IOC_SIZE(GMEM_KVM_SET_MEMORY_ATTRIBUTES) == sizeof(struct kvm_memory_attributes),
	       "kvm_memory_attributes layout");

/*
 * kvm_run's memory_fault member (6.8) is missing from old headers; it sits at the union's start.
 * hypercall (nr, args[6], ret) is old and stable; its longmode/flags word is not read here.
 */
struct gl_memory_fault {
	__u64 flags;
	__u64 gpa;
	__u64 size;
};

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif

#define PAGE_SZ 4096ULL
#define GMEM_FLAGS (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)
/* A software-protected VM's files: private memory, never mapped by the host. */
#define GMEM_FLAGS_PRIVATE 0ULL
/* A real-mode guest with plain segment:offset addressing reaches the first 1 MiB. */
#define REALMODE_PAGES 256ULL
#define MAX_VMS 256
#define MAX_FILES 256
#define MAX_FILE_SIZE (64ULL << 30)
#define JSON_VERSION 1

/* Exit statuses: 64 is argp's usage error; 77 is the automake convention for "skip". */
#define EXIT_FAIL 1
#define EXIT_UNSUPPORTED 77

/* ---- options --------------------------------------------------------------------------------- */

/*
 * The page layout every VM uses. File 0: [0, user0) host writes (page 0 always, since the guest
 * code lives there when a vCPU runs), [user0, user0 + guest) guest writes, then the fallocate
 * range. Other files: [0, user) then the fallocate range. Churn ranges cycle through
 * [churn_first0, npages) of file 0 so the guest code survives.
 */
struct layout {
	__u64 npages;
	__u64 user0;
	__u64 guest;
	__u64 conv;   /* --guest-convert: pages [user0 + guest, + conv) of file 0 */
	__u64 churn_first0;
	__u64 mf_gpa; /* --mem-faults: the memslot without guest_memfd, after the files' */
};

struct opts {
	__u64 file_size;
	__u64 user_touch;
	__u64 guest_touch;
	__u64 falloc_pages;
	__u64 punch;
	__u64 punch_size;
	__u64 convert;
	__u64 guest_convert;
	__u64 mem_faults;
	__u64 secret_pages;
	__u64 iterations;
	__u64 start_delay_ms;
	__u64 seed;
	double linger;
	double duration;
	double rate;
	long exit_early;
	struct layout lay; /* derived from the rest once parsing ends */
	unsigned int vms;
	unsigned int files;
	unsigned int vm_type; /* KVM_CREATE_VM's type: 0, or KVM_X86_SW_PROTECTED_VM */
	bool no_vcpu;
	bool stats_fds;
	bool pause;
	bool linger_set;
	bool churn;
	const char *advise; /* gmemd's control socket, with --advise */
};

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

/* ---- reports: child -> parent ---------------------------------------------------------------- */

enum rep_type {
	REP_PAUSED = 1,
	REP_DONE = 2,
	REP_EARLY = 3, /* like DONE, then the child _exits with everything open */
	REP_FINAL = 4, /* after closing everything */
};

enum secret_state {
	SECRET_UNTRIED = 0,
	SECRET_AVAILABLE = 1,
	SECRET_UNAVAILABLE = 2,
};

struct counts {
	__u64 alloc[GMEM_SRC_MAX]; /* by enum gmem_source */
	__u64 pages_freed;
	__u64 fallocates;
	__u64 punch_holes;
	__u64 invalidated_bytes;
	__u64 conv[GMEM_DIR_MAX][2]; /* [enum gmem_dir][0 ok, 1 error] */
	__u64 exits_hlt;
	__u64 exits_io;
	__u64 exits_hypercall;    /* KVM_HC_MAP_GPA_RANGE */
	__u64 exits_memory_fault; /* KVM_EXIT_MEMORY_FAULT */
	__u64 exits_other;
	__u64 conv_requests[GMEM_DIR_MAX]; /* exits asking for a conversion, by what they asked */
	__u64 conv_on_exit[GMEM_DIR_MAX];  /* ... answered by a conversion to, then re-entered */
	__u64 secret_removed;
	__u64 secret_restored;
	__u64 iterations;
	__u64 churn_ns;
	__u64 advice_asked;     /* --advise: punch holes asked about */
	__u64 advice_answered;  /* ... that gmemd answered */
	__u64 advice_decisions; /* decisions in those answers */
	__u64 advice_errors;    /* refusals and socket errors */
	__u64 kvm_stat[6]; /* --stats-fds: kvm_stat_names, as the VM's own stats fds said */
	__u32 kvm_stats_read;
	__u32 files_created;
	__u32 files_released;
	__u32 memslot_binds;
	__s32 conv_errno;
	__s32 secret_errno;
	__u32 secret_state;
};

struct rep_hdr {
	__u32 type;
	__u32 nfiles;
	struct counts c;
};

struct rep_file {
	__u64 ino;
	__u64 size;
	__u64 flags;
	__u64 populated;
	__u32 released;
	__u32 pad;
};

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Returns bytes read: less than len only at end of file. */
static ssize_t read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!n)
			break;
		got += n;
	}
	return got;
}

/* ---- the child: one VMM ---------------------------------------------------------------------- */

struct gfile {
	int fd;
	__u64 ino;
	__u64 npages;
	__u64 populated;
	__u64 cursor; /* next sequential churn/punch offset, in pages */
	__u8 *map;
	__u8 *shared; /* sw-protected: the memslot's shared half (anonymous memory) */
	__u64 flags;  /* the guest_memfd's creation flags */
	__u64 *bits; /* pages known to be in the page cache */
	bool released;
};

struct vm {
	const struct opts *o;
	const struct layout *l;
	struct gfile *files;
	struct kvm_run *run;
	size_t run_size;
	__u8 *mf_map; /* --mem-faults: the memslot without guest_memfd */
	__u64 rng;
	struct counts c;
	unsigned int idx;
	int kvm_fd;
	int vm_fd;
	int vcpu_fd;
	int vm_stats_fd, vcpu_stats_fd; /* --stats-fds */
	int rep_fd;
	int ctl_fd;
	struct gmem_advice *adv;
};

static void vm_err(const struct vm *vm, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "gmem-load: vm %u (pid %d): ", vm->idx, (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* splitmix64: turns neighbouring seeds (seed + VM index) into unrelated xorshift states. */
static __u64 rng_seed(__u64 x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	x ^= x >> 31;
	return x ? x : 1;
}

static __u64 rng_next(__u64 *s)
{
	/* xorshift64*: reproducible offsets from --seed without libc's hidden state. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static bool bit_test(const __u64 *bits, __u64 i)
{
	return bits[i / 64] & (1ULL << (i % 64));
}

static void bit_set(__u64 *bits, __u64 i)
{
	bits[i / 64] |= 1ULL << (i % 64);
}

static void bit_clear(__u64 *bits, __u64 i)
{
	bits[i / 64] &= ~(1ULL << (i % 64));
}

/*
 * A write to an mmapped gmem or secretmem page can fail only by SIGBUS (allocation refused).
 * Catch it so a failed touch is reported as one rather than killing the VMM mid-count. The
 * handler runs with SA_NODEFER, so siglongjmp without restoring the mask is safe and keeps the
 * hot path free of sigprocmask calls.
 */
static sigjmp_buf touch_env;
static volatile sig_atomic_t touch_armed;

static void on_sigbus(int sig)
{
	if (touch_armed)
		siglongjmp(touch_env, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int touch_page(volatile __u8 *p, __u8 val)
{
	if (sigsetjmp(touch_env, 0)) {
		touch_armed = 0;
		return -EFAULT;
	}
	touch_armed = 1;
	*p = val;
	touch_armed = 0;
	return 0;
}

/*
 * cachestat(2) counts the folios in a file's page cache over a range, whatever their state.
 * mincore(2) is no substitute here: it reports a page only if it is mapped or uptodate, and
 * guest_memfd marks a folio uptodate only once it is prepared (zeroed on a fault), so pages
 * that fallocate allocated are invisible to it.
 */
#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

struct gl_cachestat_range {
	__u64 off;
	__u64 len;
};

struct gl_cachestat {
	__u64 nr_cache;
	__u64 nr_dirty;
	__u64 nr_writeback;
	__u64 nr_evicted;
	__u64 nr_recently_evicted;
};

static bool no_cachestat;

static int gfile__cached(struct vm *vm, struct gfile *f, __u64 first, __u64 n, __u64 *cached)
{
	struct gl_cachestat_range r = { .off = first * PAGE_SZ, .len = n * PAGE_SZ };
	struct gl_cachestat cs;

	/* len 0 would mean "to the end of the file". */
	if (!n) {
		*cached = 0;
		return 0;
	}
	if (no_cachestat)
		return -ENOSYS;
	if (syscall(SYS_cachestat, f->fd, &r, &cs, 0)) {
		int err = -errno;

		if (err == -ENOSYS) {
			/* Pre-6.5 kernels, seccomp filters and valgrind 3.19 lack it. */
			vm_err(vm, "warning: no cachestat(2): counting from syscall results alone");
			no_cachestat = true;
			return err;
		}
		vm_err(vm, "cachestat on gmem ino %llu pages [%llu, %llu): %s",
		       (unsigned long long)f->ino, (unsigned long long)first,
		       (unsigned long long)(first + n), strerror(-err));
		return err;
	}
	*cached = cs.nr_cache;
	return 0;
}

/*
 * Learns which pages of [first, first + n) are in the page cache by halving mixed ranges: one
 * call for a range that is all present or all absent (every step's expected outcome), a few
 * dozen for a mixed 2 MiB file.
 */
static int gfile__learn(struct vm *vm, struct gfile *f, __u64 first, __u64 n, __u64 *a,
			__u64 *d)
{
	__u64 cached = 0, i, half;
	int r;

	r = gfile__cached(vm, f, first, n, &cached);
	if (r)
		return r;
	if (cached == 0 || cached == n) {
		for (i = first; i < first + n; i++) {
			bool was = bit_test(f->bits, i);

			if (cached && !was) {
				bit_set(f->bits, i);
				(*a)++;
			} else if (!cached && was) {
				bit_clear(f->bits, i);
				(*d)++;
			}
		}
		return 0;
	}
	half = n / 2;
	r = gfile__learn(vm, f, first, half, a, d);
	if (!r)
		r = gfile__learn(vm, f, first + half, n - half, a, d);
	return r;
}

/* What the step that ran over a range should have left there. */
enum expect {
	EXPECT_ANY,
	EXPECT_PRESENT, /* a successful allocating fallocate */
	EXPECT_ABSENT,  /* a successful punch */
};

/*
 * Without cachestat, trust the successful syscall for its range, and otherwise add what mincore
 * shows; mincore cannot see fallocated, unprepared folios, so it never clears a page.
 */
static int gfile__guess(struct vm *vm, struct gfile *f, __u64 first, __u64 n, enum expect exp,
			__u64 *a, __u64 *d)
{
	unsigned char *vec;
	__u64 i;
	int err = 0;

	if (exp != EXPECT_ANY) {
		for (i = first; i < first + n; i++) {
			bool was = bit_test(f->bits, i);

			if (exp == EXPECT_PRESENT && !was) {
				bit_set(f->bits, i);
				(*a)++;
			} else if (exp == EXPECT_ABSENT && was) {
				bit_clear(f->bits, i);
				(*d)++;
			}
		}
		return 0;
	}
	vec = malloc(n);
	if (!vec)
		return -ENOMEM;
	if (mincore(f->map + first * PAGE_SZ, n * PAGE_SZ, vec)) {
		err = -errno;
		vm_err(vm, "mincore on gmem ino %llu: %s", (unsigned long long)f->ino,
		       strerror(-err));
	}
	for (i = 0; !err && i < n; i++) {
		if ((vec[i] & 1) && !bit_test(f->bits, first + i)) {
			bit_set(f->bits, first + i);
			(*a)++;
		}
	}
	free(vec);
	return err;
}

/*
 * Brings the bitmap in line with the kernel's page cache for [first, first + n) and books every
 * difference: absent->present as an allocation from src, present->absent as a free. Returns the
 * number of changes, or -errno.
 */
static long gfile__sync(struct vm *vm, struct gfile *f, __u64 first, __u64 n, enum gmem_source src,
			enum expect exp, __u64 *allocs, __u64 *frees)
{
	__u64 a = 0, d = 0;
	int r;

	r = gfile__learn(vm, f, first, n, &a, &d);
	if (r == -ENOSYS && no_cachestat)
		r = gfile__guess(vm, f, first, n, exp, &a, &d);
	f->populated += a;
	f->populated -= d;
	vm->c.alloc[src] += a;
	vm->c.pages_freed += d;
	if (allocs)
		*allocs = a;
	if (frees)
		*frees = d;
	return r ? r : (long)(a + d);
}

/* At a phase boundary nothing should have changed: anything that did is booked as "other". */
static int vm__sync_all(struct vm *vm, const char *when)
{
	__u64 a, d;
	unsigned int i;
	long r;

	for (i = 0; i < vm->o->files; i++) {
		struct gfile *f = &vm->files[i];

		r = gfile__sync(vm, f, 0, f->npages, GMEM_SRC_OTHER, EXPECT_ANY, &a, &d);
		if (r < 0)
			return r;
		if (r)
			vm_err(vm, "warning: %s: file %u (ino %llu) gained %llu and lost %llu "
			       "pages outside any step; counted as other/freed", when, i,
			       (unsigned long long)f->ino, (unsigned long long)a,
			       (unsigned long long)d);
	}
	return 0;
}

static int vm__report(struct vm *vm, enum rep_type type)
{
	unsigned int i, n = vm->o->files;
	size_t len = sizeof(struct rep_hdr) + n * sizeof(struct rep_file);
	struct rep_hdr *h;
	struct rep_file *rf;
	int err;

	h = calloc(1, len);
	if (!h)
		return -ENOMEM;
	h->type = type;
	h->nfiles = n;
	h->c = vm->c;
	rf = (struct rep_file *)(h + 1);
	for (i = 0; i < n; i++) {
		rf[i].ino = vm->files[i].ino;
		rf[i].size = vm->o->file_size;
		rf[i].flags = vm->files[i].flags;
		rf[i].populated = vm->files[i].populated;
		rf[i].released = vm->files[i].released;
	}
	err = write_all(vm->rep_fd, h, len);
	free(h);
	if (err)
		vm_err(vm, "cannot report to the parent: %s", strerror(-err));
	return err;
}

/* Blocks until the parent says go (a byte) or goes away (EOF). */
static int vm__wait_go(struct vm *vm)
{
	char b;
	ssize_t n;

	do
		n = read(vm->ctl_fd, &b, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1) {
		vm_err(vm, "parent went away while waiting");
		return -EPIPE;
	}
	return 0;
}

/*
 * A software-protected VM: private memory attributes must be there, and KVM_HC_MAP_GPA_RANGE
 * must exit to us (KVM answers it with -KVM_ENOSYS otherwise), since --guest-convert's guest
 * asks for its conversions that way.
 */
static int vm__create_private(struct vm *vm)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL };
	int r;

	r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES);
	if (r < 0 || !(r & KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
		vm_err(vm, "KVM here lacks KVM_SW_PROTECTED_VM private memory "
		       "(KVM_CAP_MEMORY_ATTRIBUTES = %d)", r);
		return -EOPNOTSUPP;
	}
	r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD);
	if (r <= 0) {
		vm_err(vm, "KVM here lacks KVM_SW_PROTECTED_VM guest_memfd (KVM_CAP_GUEST_MEMFD = "
		       "%d)", r);
		return -EOPNOTSUPP;
	}
	if (!vm->o->guest_convert)
		return 0;
	r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_HYPERCALL);
	if (r < 0 || !(r & (1 << GMEM_KVM_HC_MAP_GPA_RANGE))) {
		vm_err(vm, "KVM here lacks KVM_SW_PROTECTED_VM hypercall exits for "
		       "KVM_HC_MAP_GPA_RANGE (KVM_CAP_EXIT_HYPERCALL = %d)", r);
		return -EOPNOTSUPP;
	}
	cap.args[0] = 1ULL << GMEM_KVM_HC_MAP_GPA_RANGE;
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap)) {
		r = -errno;
		vm_err(vm, "KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL, MAP_GPA_RANGE): %s",
		       strerror(-r));
		return r;
	}
	return 0;
}

static int vm__create(struct vm *vm)
{
	int r;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		r = -errno;
		vm_err(vm, "cannot open /dev/kvm: %s", strerror(-r));
		return r;
	}
	if (vm->o->vm_type) {
		r = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
		if (r < 0 || !(r & (1 << vm->o->vm_type))) {
			vm_err(vm, "KVM here lacks KVM_SW_PROTECTED_VM (KVM_CAP_VM_TYPES = %d, no bit "
			       "%u): it needs a kvm built with CONFIG_KVM_SW_PROTECTED_VM=y", r,
			       vm->o->vm_type);
			return -EOPNOTSUPP;
		}
	}
	do
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, (unsigned long)vm->o->vm_type);
	while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0) {
		r = -errno;
		vm_err(vm, "KVM_CREATE_VM (type %u): %s", vm->o->vm_type, strerror(-r));
		return r;
	}
	if (vm->o->vm_type)
		return vm__create_private(vm);
	/* The flags capability is per VM type; only a VM fd answers it for sure. */
	r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
	if (r < 0 || (r & GMEM_FLAGS) != GMEM_FLAGS) {
		vm_err(vm, "guest_memfd here lacks MMAP|INIT_SHARED (KVM_CAP_GUEST_MEMFD_FLAGS = "
		       "%d); gmem-load needs Linux 6.18 or later", r);
		return -EOPNOTSUPP;
	}
	return 0;
}

static int vm__add_file(struct vm *vm, unsigned int i)
{
	bool priv = vm->o->vm_type == KVM_X86_SW_PROTECTED_VM;
	struct kvm_create_guest_memfd cg = { .size = vm->o->file_size,
					     .flags = priv ? GMEM_FLAGS_PRIVATE : GMEM_FLAGS };
	struct kvm_userspace_memory_region2 mr = { 0 };
	struct gfile *f = &vm->files[i];
	struct stat st;
	int r;

	f->flags = cg.flags;
	f->npages = vm->l->npages;
	f->bits = calloc((f->npages + 63) / 64, sizeof(*f->bits));
	if (!f->bits)
		return -ENOMEM;

	f->fd = ioctl(vm->vm_fd, KVM_CREATE_GUEST_MEMFD, &cg);
	if (f->fd < 0) {
		r = -errno;
		vm_err(vm, "KVM_CREATE_GUEST_MEMFD (file %u, %llu bytes, flags %#llx): %s", i,
		       (unsigned long long)cg.size, (unsigned long long)cg.flags, strerror(-r));
		return r;
	}
	vm->c.files_created++;
	if (fstat(f->fd, &st)) {
		r = -errno;
		vm_err(vm, "fstat on guest_memfd %d: %s", f->fd, strerror(-r));
		return r;
	}
	f->ino = st.st_ino;

	if (priv) {
		/* Shared accesses go to userspace_addr; the file holds only private pages. */
		f->shared = mmap(NULL, vm->o->file_size, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (f->shared == MAP_FAILED) {
			r = -errno;
			f->shared = NULL;
			vm_err(vm, "mmap of %llu bytes of shared guest memory: %s",
			       (unsigned long long)vm->o->file_size, strerror(-r));
			return r;
		}
	} else {
		f->map = mmap(NULL, vm->o->file_size, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd,
			      0);
		if (f->map == MAP_FAILED) {
			r = -errno;
			f->map = NULL;
			vm_err(vm, "mmap of guest_memfd ino %llu: %s", (unsigned long long)f->ino,
			       strerror(-r));
			return r;
		}
	}

	mr.slot = i;
	mr.flags = KVM_MEM_GUEST_MEMFD;
	mr.guest_phys_addr = (__u64)i * vm->o->file_size;
	mr.memory_size = vm->o->file_size;
	mr.userspace_addr = (__u64)(uintptr_t)(priv ? f->shared : f->map);
	mr.guest_memfd_offset = 0;
	mr.guest_memfd = f->fd;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION2, &mr)) {
		r = -errno;
		vm_err(vm, "KVM_SET_USER_MEMORY_REGION2 (slot %u, gpa %#llx, ino %llu): %s", i,
		       (unsigned long long)mr.guest_phys_addr, (unsigned long long)f->ino,
		       strerror(-r));
		return r;
	}
	vm->c.memslot_binds++;
	return 0;
}

/* One byte to each page of [first, first + n): a write that succeeds made its page present. */
static int vm__user_touch(struct vm *vm, struct gfile *f, __u64 first, __u64 n)
{
	__u64 p;

	for (p = first; p < first + n; p++) {
		if (touch_page(f->map + p * PAGE_SZ, 0xa5)) {
			vm_err(vm, "SIGBUS writing gmem ino %llu page %llu: the kernel refused the "
			       "page (out of memory?)", (unsigned long long)f->ino,
			       (unsigned long long)p);
			return -EFAULT;
		}
		if (!bit_test(f->bits, p)) {
			bit_set(f->bits, p);
			f->populated++;
			vm->c.alloc[GMEM_SRC_USER_FAULT]++;
		}
	}
	return 0;
}

static int vm__fallocate(struct vm *vm, struct gfile *f, __u64 first, __u64 n)
{
	__u64 p, d, missing = 0;
	long r;

	if (!n)
		return 0;
	if (fallocate(f->fd, FALLOC_FL_KEEP_SIZE, first * PAGE_SZ, n * PAGE_SZ)) {
		int err = -errno;

		vm_err(vm, "fallocate(KEEP_SIZE) on gmem ino %llu, pages [%llu, %llu): %s",
		       (unsigned long long)f->ino, (unsigned long long)first,
		       (unsigned long long)(first + n), strerror(-err));
		/* It may have allocated part of the range before failing: book that too. */
		gfile__sync(vm, f, first, n, GMEM_SRC_FALLOCATE, EXPECT_ANY, NULL, NULL);
		return err;
	}
	vm->c.fallocates++;
	r = gfile__sync(vm, f, first, n, GMEM_SRC_FALLOCATE, EXPECT_PRESENT, NULL, &d);
	if (r < 0)
		return r;
	for (p = first; p < first + n; p++)
		if (!bit_test(f->bits, p))
			missing++;
	if (missing || d)
		vm_err(vm, "warning: fallocate on ino %llu succeeded but %llu page(s) of "
		       "[%llu, %llu) are absent", (unsigned long long)f->ino,
		       (unsigned long long)missing,
		       (unsigned long long)first, (unsigned long long)(first + n));
	return 0;
}

/* --advise: what gmemd's policy would decide for this punch, asked before doing it. */
static void vm__advise(struct vm *vm, struct gfile *f, __u64 first, __u64 n)
{
	struct gmem_advice_answer ans;
	int r;

	vm->c.advice_asked++;
	r = gmem_advice__punch(vm->adv, f->ino, first * PAGE_SZ, n * PAGE_SZ, &ans);
	if (r) {
		if (!vm->c.advice_errors)
			vm_err(vm, "advice for a punch of ino %llu: %s",
			       (unsigned long long)f->ino,
			       r == -EREMOTEIO ? gmem_advice__error(vm->adv) : strerror(-r));
		vm->c.advice_errors++;
		return;
	}
	vm->c.advice_answered++;
	vm->c.advice_decisions += ans.n;
}

static int vm__punch(struct vm *vm, struct gfile *f, __u64 first, __u64 n)
{
	__u64 a;
	long r;

	if (vm->adv)
		vm__advise(vm, f, first, n);

	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, first * PAGE_SZ,
		      n * PAGE_SZ)) {
		int err = -errno;

		vm_err(vm, "fallocate(PUNCH_HOLE) on gmem ino %llu, pages [%llu, %llu): %s",
		       (unsigned long long)f->ino, (unsigned long long)first,
		       (unsigned long long)(first + n), strerror(-err));
		gfile__sync(vm, f, first, n, GMEM_SRC_OTHER, EXPECT_ANY, NULL, NULL);
		return err;
	}
	vm->c.punch_holes++;
	vm->c.invalidated_bytes += n * PAGE_SZ;
	r = gfile__sync(vm, f, first, n, GMEM_SRC_OTHER, EXPECT_ABSENT, &a, NULL);
	if (r < 0)
		return r;
	if (a)
		vm_err(vm, "warning: %llu page(s) appeared inside a punched hole (ino %llu)",
		       (unsigned long long)a, (unsigned long long)f->ino);
	return 0;
}

/* KVM_SET_MEMORY_ATTRIBUTES over [gpa, gpa + size): counted by direction and result. */
static int vm__set_attr(struct vm *vm, __u64 gpa, __u64 size, enum gmem_dir dir)
{
	struct kvm_memory_attributes ma = {
		.address = gpa,
		.size = size,
		.attributes = dir == GMEM_TO_PRIVATE ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	if (ioctl(vm->vm_fd, KVM_SET_MEMORY_ATTRIBUTES, &ma)) {
		vm->c.conv_errno = errno;
		vm->c.conv[dir][1]++;
		return -vm->c.conv_errno;
	}
	vm->c.conv[dir][0]++;
	return 0;
}

/* ---- the vCPU -------------------------------------------------------------------------------- */

static void put16(__u8 *p, __u16 v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

/*
 * 16-bit real-mode code: one byte written at the start of each of n pages from page first on,
 * by moving DS a page (0x100 paragraphs) at a time, then hlt. first + n <= 256 keeps DS <= 0xff00.
 */
static size_t guest_code(__u8 *buf, __u64 first, __u64 n)
{
	size_t i = 0, loop;

	if (n) {
		buf[i++] = 0xb9; /* mov cx, n */
		put16(buf + i, n);
		i += 2;
		buf[i++] = 0xb8; /* mov ax, first << 8 */
		put16(buf + i, first << 8);
		i += 2;
		loop = i;
		buf[i++] = 0x8e; /* mov ds, ax */
		buf[i++] = 0xd8;
		buf[i++] = 0xc6; /* mov byte [0], 0x5a */
		buf[i++] = 0x06;
		buf[i++] = 0x00;
		buf[i++] = 0x00;
		buf[i++] = 0x5a;
		buf[i++] = 0x05; /* add ax, 0x100 */
		buf[i++] = 0x00;
		buf[i++] = 0x01;
		buf[i++] = 0x49; /* dec cx */
		buf[i++] = 0x75; /* jnz loop */
		buf[i] = (__u8)(loop - (i + 1));
		i++;
	}
	buf[i++] = 0xf4; /* hlt */
	return i;
}

static size_t put_imm32(__u8 *buf, size_t i, __u8 op1, __u8 op2, __u32 v)
{
	buf[i++] = 0x66; /* operand size: 32 bits */
	buf[i++] = op1;
	if (op2)
		buf[i++] = op2;
	buf[i++] = v & 0xff;
	buf[i++] = (v >> 8) & 0xff;
	buf[i++] = (v >> 16) & 0xff;
	buf[i++] = v >> 24;
	return i;
}

/* KVM_HC_MAP_GPA_RANGE(gpa = edi, 1 page, private or shared): eax nr, ebx, ecx, edx args. */
static size_t put_map_gpa(__u8 *buf, size_t i, bool to_private)
{
	i = put_imm32(buf, i, 0xb8, 0, GMEM_KVM_HC_MAP_GPA_RANGE); /* mov eax, 12 */
	buf[i++] = 0x66; /* mov ebx, edi */
	buf[i++] = 0x89;
	buf[i++] = 0xfb;
	i = put_imm32(buf, i, 0xb9, 0, 1); /* mov ecx, 1 (pages) */
	if (to_private) {
		i = put_imm32(buf, i, 0xba, 0, GMEM_KVM_MAP_GPA_RANGE_ENCRYPTED); /* mov edx, */
	} else {
		buf[i++] = 0x66; /* xor edx, edx */
		buf[i++] = 0x31;
		buf[i++] = 0xd2;
	}
	buf[i++] = 0x0f; /* vmmcall (AMD; the lab's vCPUs are SVM) */
	buf[i++] = 0x01;
	buf[i++] = 0xd9;
	return i;
}

static size_t put_write_edi(__u8 *buf, size_t i, __u8 val)
{
	buf[i++] = 0x67; /* address size: 32 bits; DS has a 4 GiB limit (vm__vcpu_reset) */
	buf[i++] = 0xc6; /* mov byte [edi], val */
	buf[i++] = 0x07;
	buf[i++] = val;
	return i;
}

/* add edi, 4096; dec bp; jnz loop (rel16) */
static size_t put_next_page(__u8 *buf, size_t i, size_t loop)
{
	i = put_imm32(buf, i, 0x81, 0xc7, PAGE_SZ);
	buf[i++] = 0x4d;
	buf[i++] = 0x0f;
	buf[i++] = 0x85;
	put16(buf + i, (__u16)(loop - (i + 2)));
	return i + 2;
}

/*
 * The software-protected guest, 16-bit real mode with 32-bit offsets ("unreal": DS base 0,
 * limit 4 GiB): for each of nconv pages from conv_gpa, ask for it private, write it, ask for it
 * shared, write it; then write each of nmf pages from mf_gpa; then hlt.
 */
static size_t guest_code_private(__u8 *buf, __u64 conv_gpa, __u64 nconv, __u64 mf_gpa,
				 __u64 nmf)
{
	size_t i = 0, loop;

	if (nconv) {
		buf[i++] = 0xbd; /* mov bp, nconv */
		put16(buf + i, nconv);
		i += 2;
		i = put_imm32(buf, i, 0xbf, 0, conv_gpa); /* mov edi, conv_gpa */
		loop = i;
		i = put_map_gpa(buf, i, true);
		i = put_write_edi(buf, i, 0x5a);
		i = put_map_gpa(buf, i, false);
		i = put_write_edi(buf, i, 0xa5);
		i = put_next_page(buf, i, loop);
	}
	if (nmf) {
		buf[i++] = 0xbd; /* mov bp, nmf */
		put16(buf + i, nmf);
		i += 2;
		i = put_imm32(buf, i, 0xbf, 0, mf_gpa); /* mov edi, mf_gpa */
		loop = i;
		i = put_write_edi(buf, i, 0x5a);
		i = put_next_page(buf, i, loop);
	}
	buf[i++] = 0xf4; /* hlt */
	return i;
}

/* Host writes page 0 (a user fault like any other), then the guest code goes in. */
static int vm__guest_code(struct vm *vm)
{
	__u8 code[160];
	size_t len;
	int r;

	if (vm->o->vm_type == KVM_X86_SW_PROTECTED_VM) {
		/* Page 0 is shared: the code lives in the memslot's anonymous half. */
		len = guest_code_private(code, (vm->l->user0 + vm->l->guest) * PAGE_SZ, vm->l->conv,
					 vm->l->mf_gpa, vm->o->mem_faults);
		memcpy(vm->files[0].shared, code, len);
		return 0;
	}

	r = vm__user_touch(vm, &vm->files[0], 0, 1);
	if (r)
		return r;
	len = guest_code(code, vm->l->user0, vm->l->guest);
	memcpy(vm->files[0].map, code, len);
	return 0;
}

static int vm__vcpu_create(struct vm *vm)
{
	int r, sz;

	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0) {
		r = -errno;
		vm_err(vm, "KVM_CREATE_VCPU: %s", strerror(-r));
		return r;
	}
	if (vm->o->stats_fds) {
		/* as QEMU does at vCPU creation: the fds stay open for the VM's life */
		vm->vm_stats_fd = ioctl(vm->vm_fd, KVM_GET_STATS_FD, 0);
		vm->vcpu_stats_fd = ioctl(vm->vcpu_fd, KVM_GET_STATS_FD, 0);
		if (vm->vm_stats_fd < 0 || vm->vcpu_stats_fd < 0) {
			r = -errno;
			vm_err(vm, "KVM_GET_STATS_FD: %s", strerror(-r));
			return r;
		}
	}
	sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run)) {
		r = sz < 0 ? -errno : -EINVAL;
		vm_err(vm, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(-r));
		return r;
	}
	vm->run = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		r = -errno;
		vm->run = NULL;
		vm_err(vm, "mmap of kvm_run: %s", strerror(-r));
		return r;
	}
	vm->run_size = sz;
	return 0;
}

/* Reset to real mode at 0000:0000 so the same code can run again each churn iteration. */
static int vm__vcpu_reset(struct vm *vm)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int r;

	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs)) {
		r = -errno;
		vm_err(vm, "KVM_GET_SREGS: %s", strerror(-r));
		return r;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ds.base = 0;
	sregs.ds.selector = 0;
	/* The software-protected guest reaches its pages with 32-bit offsets. */
	if (vm->o->vm_type == KVM_X86_SW_PROTECTED_VM)
		sregs.ds.limit = 0xffffffff;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs)) {
		r = -errno;
		vm_err(vm, "KVM_SET_SREGS: %s", strerror(-r));
		return r;
	}
	memset(&regs, 0, sizeof(regs));
	regs.rip = 0;
	regs.rflags = 0x2; /* bit 1 is reserved-as-one */
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs)) {
		r = -errno;
		vm_err(vm, "KVM_SET_REGS: %s", strerror(-r));
		return r;
	}
	return 0;
}

static void vm__describe_exit(struct vm *vm)
{
	struct kvm_run *run = vm->run;
	struct gl_memory_fault mf;

	switch (run->exit_reason) {
	case KVM_EXIT_FAIL_ENTRY:
		vm_err(vm, "KVM_RUN: entry failed, hardware reason %#llx",
		       (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		vm_err(vm, "KVM_RUN: KVM internal error, suberror %u", run->internal.suberror);
		break;
	case KVM_EXIT_SHUTDOWN:
		vm_err(vm, "KVM_RUN: the guest shut down (triple fault)");
		break;
	case KVM_EXIT_MMIO:
		vm_err(vm, "KVM_RUN: the guest touched gpa %#llx outside every memslot",
		       (unsigned long long)run->mmio.phys_addr);
		break;
	case GMEM_KVM_EXIT_MEMORY_FAULT:
		memcpy(&mf, &run->hw, sizeof(mf));
		vm_err(vm, "KVM_RUN: memory fault at gpa %#llx size %llu flags %#llx "
		       "(private/shared mismatch or gmem refused the page)",
		       (unsigned long long)mf.gpa,
		       (unsigned long long)mf.size, (unsigned long long)mf.flags);
		break;
	default:
		vm_err(vm, "KVM_RUN: unexpected exit reason %u", run->exit_reason);
		break;
	}
}

/*
 * A KVM_HC_MAP_GPA_RANGE exit: convert as asked. On the way to shared the private copy is
 * discarded (punched), as a VMM does: the page the guest wrote while private is booked as its
 * guest fault first, then its free and the invalidation.
 */
static int vm__on_map_gpa(struct vm *vm)
{
	__u64 gpa = vm->run->hypercall.args[0], npages = vm->run->hypercall.args[1];
	enum gmem_dir dir = vm->run->hypercall.args[2] & GMEM_KVM_MAP_GPA_RANGE_ENCRYPTED ?
				    GMEM_TO_PRIVATE : GMEM_TO_SHARED;
	__u64 fi = gpa / vm->o->file_size, first = gpa % vm->o->file_size / PAGE_SZ;
	struct gfile *f;
	int r;

	vm->c.exits_hypercall++;
	vm->c.conv_requests[dir]++;
	if (fi >= vm->o->files || first + npages > vm->l->npages) {
		vm_err(vm, "KVM_HC_MAP_GPA_RANGE for gpa %#llx, %llu pages: outside the files",
		       (unsigned long long)gpa, (unsigned long long)npages);
		return -EINVAL;
	}
	f = &vm->files[fi];
	if (dir == GMEM_TO_SHARED) {
		r = gfile__sync(vm, f, first, npages, GMEM_SRC_GUEST_FAULT, EXPECT_ANY, NULL, NULL);
		if (r < 0)
			return r;
	}
	r = vm__set_attr(vm, gpa, npages * PAGE_SZ, dir);
	if (r) {
		vm_err(vm, "KVM_SET_MEMORY_ATTRIBUTES(gpa %#llx, %llu pages, %s) for the guest: %s",
		       (unsigned long long)gpa, (unsigned long long)npages,
		       dir == GMEM_TO_PRIVATE ? "private" : "shared", strerror(-r));
		return r;
	}
	if (dir == GMEM_TO_SHARED) {
		r = vm__punch(vm, f, first, npages);
		if (r)
			return r;
	}
	vm->c.conv_on_exit[dir]++;
	vm->run->hypercall.ret = 0;
	return 0;
}

/*
 * KVM_EXIT_MEMORY_FAULT: a private access KVM could not back. On the --mem-faults memslot,
 * which has no guest_memfd, the one way on is to make the page shared.
 */
static int vm__on_memory_fault(struct vm *vm)
{
	struct gl_memory_fault mf;
	enum gmem_dir asked;
	int r;

	memcpy(&mf, &vm->run->hw, sizeof(mf));
	asked = mf.flags & GMEM_KVM_MEMORY_EXIT_FLAG_PRIVATE ? GMEM_TO_PRIVATE : GMEM_TO_SHARED;
	vm->c.exits_memory_fault++;
	vm->c.conv_requests[asked]++;
	if (asked != GMEM_TO_PRIVATE || mf.gpa < vm->l->mf_gpa ||
	    mf.gpa + mf.size > vm->l->mf_gpa + vm->o->mem_faults * PAGE_SZ) {
		vm__describe_exit(vm);
		return -EIO;
	}
	r = vm__set_attr(vm, mf.gpa, mf.size, GMEM_TO_SHARED);
	if (r) {
		vm_err(vm, "KVM_SET_MEMORY_ATTRIBUTES(gpa %#llx, shared) after a memory fault: %s",
		       (unsigned long long)mf.gpa, strerror(-r));
		return r;
	}
	vm->c.conv_on_exit[GMEM_TO_SHARED]++;
	return 0;
}

/* The software-protected guest to its hlt, answering the exits that ask for conversions. */
static int vm__guest_run_private(struct vm *vm)
{
	__u64 budget = 4 * (vm->l->conv + vm->o->mem_faults) + 16;
	int r;

	r = vm__vcpu_reset(vm);
	if (r)
		return r;
	while (budget--) {
		r = ioctl(vm->vcpu_fd, KVM_RUN, 0) ? -errno : 0;
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r == -EFAULT && vm->run->exit_reason == GMEM_KVM_EXIT_MEMORY_FAULT) {
			r = vm__on_memory_fault(vm);
			if (r)
				return r;
			continue;
		}
		if (r) {
			vm_err(vm, "KVM_RUN: %s", strerror(-r));
			return r;
		}
		switch (vm->run->exit_reason) {
		case KVM_EXIT_HLT:
			vm->c.exits_hlt++;
			return 0;
		case KVM_EXIT_HYPERCALL:
			if (vm->run->hypercall.nr == GMEM_KVM_HC_MAP_GPA_RANGE) {
				r = vm__on_map_gpa(vm);
				if (r)
					return r;
				continue;
			}
			break;
		case KVM_EXIT_IO:
			vm->c.exits_io++;
			continue;
		}
		vm->c.exits_other++;
		vm__describe_exit(vm);
		return -EIO;
	}
	vm_err(vm, "KVM_RUN: the guest did not reach its hlt within %llu exits",
	       (unsigned long long)(4 * (vm->l->conv + vm->o->mem_faults) + 16));
	return -EIO;
}

/*
 * Runs the guest to its hlt. Pages of file 0 that became present meanwhile were made by KVM on
 * the guest's behalf, so they are guest faults; the sync covers all the guest can reach, not
 * just the pages it meant to write.
 */
static int vm__guest_run(struct vm *vm)
{
	struct gfile *f0 = &vm->files[0];
	__u64 reach = f0->npages < REALMODE_PAGES + 16 ? f0->npages : REALMODE_PAGES + 16;
	int r;

	if (vm->o->vm_type == KVM_X86_SW_PROTECTED_VM) {
		r = vm__guest_run_private(vm);
		reach = vm->l->user0 + vm->l->conv;
		if (reach > f0->npages)
			reach = f0->npages;
		if (gfile__sync(vm, f0, 0, reach, GMEM_SRC_GUEST_FAULT, EXPECT_ANY, NULL,
				NULL) < 0 && !r)
			r = -EIO;
		return r;
	}

	/* A punch over page 0 would leave the vCPU running zeros; put the code back first. */
	if (!bit_test(f0->bits, 0)) {
		r = vm__guest_code(vm);
		if (r)
			return r;
	}
	r = vm__vcpu_reset(vm);
	if (r)
		return r;
	for (;;) {
		if (ioctl(vm->vcpu_fd, KVM_RUN, 0)) {
			r = -errno;
			if (r == -EINTR || r == -EAGAIN)
				continue;
			vm_err(vm, "KVM_RUN: %s", strerror(-r));
			gfile__sync(vm, f0, 0, reach, GMEM_SRC_GUEST_FAULT, EXPECT_ANY, NULL, NULL);
			return r;
		}
		if (vm->run->exit_reason == KVM_EXIT_HLT) {
			vm->c.exits_hlt++;
			break;
		}
		if (vm->run->exit_reason == KVM_EXIT_IO) {
			/* Nothing here emulates a port; reads see whatever kvm_run holds. */
			vm->c.exits_io++;
			continue;
		}
		vm->c.exits_other++;
		vm__describe_exit(vm);
		gfile__sync(vm, f0, 0, reach, GMEM_SRC_GUEST_FAULT, EXPECT_ANY, NULL, NULL);
		return -EIO;
	}
	r = gfile__sync(vm, f0, 0, reach, GMEM_SRC_GUEST_FAULT, EXPECT_ANY, NULL, NULL);
	return r < 0 ? r : 0;
}

static int vm__guest_setup(struct vm *vm)
{
	int r;

	r = vm__guest_code(vm);
	if (r)
		return r;
	return vm__vcpu_create(vm);
}

/* ---- the other steps ------------------------------------------------------------------------- */

static __u64 gfile__pick(struct vm *vm, struct gfile *f, __u64 lo, __u64 len)
{
	__u64 first;

	if (vm->o->seed)
		return lo + rng_next(&vm->rng) % (f->npages - lo - len + 1);
	if (f->cursor < lo || f->cursor + len > f->npages)
		f->cursor = lo;
	first = f->cursor;
	f->cursor += len;
	return first;
}

static int vm__punches(struct vm *vm)
{
	__u64 len = vm->o->punch_size / PAGE_SZ, k;
	unsigned int i;
	int r;

	for (i = 0; i < vm->o->files; i++) {
		struct gfile *f = &vm->files[i];
		/* Churn reruns the guest, so its code and pages in file 0 must survive. */
		__u64 lo = i ? 0 : vm->l->churn_first0;

		f->cursor = lo;
		for (k = 0; k < vm->o->punch; k++) {
			r = vm__punch(vm, f, gfile__pick(vm, f, lo, len), len);
			if (r)
				return r;
		}
	}
	return 0;
}

static void vm__convert(struct vm *vm)
{
	__u64 k;

	for (k = 0; k < vm->o->convert; k++)
		vm__set_attr(vm, 0, PAGE_SZ, k % 2 ? GMEM_TO_SHARED : GMEM_TO_PRIVATE);
}

/*
 * Each touched secretmem page left the direct map when it was faulted in; closing the last
 * reference frees the pages and puts them back. A failed memfd_secret means the feature is off,
 * which is reported, not fatal.
 */
static int vm__secret(struct vm *vm, __u64 n)
{
	__u64 i, touched = 0;
	bool pinned = false;
	__u8 *map;
	int fd, r = 0;

	fd = syscall(SYS_memfd_secret, 0);
	if (fd < 0) {
		vm->c.secret_state = SECRET_UNAVAILABLE;
		vm->c.secret_errno = errno;
		return 0;
	}
	vm->c.secret_state = SECRET_AVAILABLE;
	if (!n)
		goto out_close;
	if (ftruncate(fd, n * PAGE_SZ)) {
		r = -errno;
		vm_err(vm, "ftruncate of memfd_secret to %llu pages: %s", (unsigned long long)n,
		       strerror(-r));
		goto out_close;
	}
	map = mmap(NULL, n * PAGE_SZ, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		r = -errno;
		vm_err(vm, "mmap of memfd_secret (%llu pages): %s (raise RLIMIT_MEMLOCK?)",
		       (unsigned long long)n, strerror(-r));
		goto out_close;
	}
	for (i = 0; i < n; i++) {
		if (touch_page(map + i * PAGE_SZ, 0x5e)) {
			vm_err(vm, "SIGBUS touching memfd_secret page %llu", (unsigned long long)i);
			r = -EFAULT;
			break;
		}
		touched++;
	}
	vm->c.secret_removed += touched;
	/* A mapping left behind would pin the file, and its pages would stay out of the map. */
	if (munmap(map, n * PAGE_SZ)) {
		r = -errno;
		vm_err(vm, "munmap of memfd_secret: %s", strerror(-r));
		pinned = true;
	}
out_close:
	if (close(fd)) {
		vm_err(vm, "close of memfd_secret: %s", strerror(errno));
		if (!r)
			r = -EIO;
	} else if (!pinned) {
		vm->c.secret_restored += touched;
	}
	return r;
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void sleep_until_ns(__u64 t)
{
	struct timespec ts = { .tv_sec = t / 1000000000ULL, .tv_nsec = t % 1000000000ULL };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int vm__churn(struct vm *vm)
{
	const struct opts *o = vm->o;
	__u64 start = now_ns(), next = start, period = 0, end = 0, it;
	struct gfile *f0 = &vm->files[0];
	int r;

	if (o->rate > 0)
		period = (__u64)(1e9 / o->rate);
	if (o->duration > 0)
		end = start + (__u64)(o->duration * 1e9);
	for (it = 0;; it++) {
		struct gfile *f = &vm->files[it % o->files];
		__u64 lo = f == f0 ? vm->l->churn_first0 : 0, first;

		if (o->iterations && it >= o->iterations)
			break;
		if (end && now_ns() >= end)
			break;
		if (o->user_touch) {
			first = gfile__pick(vm, f, lo, o->user_touch);
			r = vm__user_touch(vm, f, first, o->user_touch);
			if (!r)
				r = vm__punch(vm, f, first, o->user_touch);
			if (r)
				return r;
		}
		if (o->falloc_pages) {
			first = gfile__pick(vm, f, lo, o->falloc_pages);
			r = vm__fallocate(vm, f, first, o->falloc_pages);
			if (!r)
				r = vm__punch(vm, f, first, o->falloc_pages);
			if (r)
				return r;
		}
		if (vm->l->guest && vm->vcpu_fd >= 0) {
			r = vm__guest_run(vm);
			if (!r)
				r = vm__punch(vm, f0, vm->l->user0, vm->l->guest);
			if (r)
				return r;
		}
		if (o->secret_pages) {
			r = vm__secret(vm, o->secret_pages);
			if (r)
				return r;
		}
		vm->c.iterations++;
		if (period) {
			next += period;
			sleep_until_ns(next);
		}
	}
	vm->c.churn_ns = now_ns() - start;
	return 0;
}

/*
 * Drop every reference we hold. The mapping goes first: it pins the file too, and the file is
 * released (and every page it still holds freed) only when both are gone.
 */
static int vm__close(struct vm *vm)
{
	unsigned int i;
	int err = 0;

	for (i = 0; i < vm->o->files; i++) {
		struct gfile *f = &vm->files[i];
		bool ok = true;

		if (f->map && munmap(f->map, vm->o->file_size)) {
			vm_err(vm, "munmap of gmem ino %llu: %s", (unsigned long long)f->ino,
			       strerror(errno));
			ok = false;
		}
		f->map = NULL;
		if (f->shared && munmap(f->shared, vm->o->file_size)) {
			vm_err(vm, "munmap of shared guest memory: %s", strerror(errno));
			ok = false;
		}
		f->shared = NULL;
		if (f->fd >= 0 && close(f->fd)) {
			vm_err(vm, "close of gmem ino %llu: %s", (unsigned long long)f->ino,
			       strerror(errno));
			ok = false;
		}
		if (f->fd < 0)
			ok = false;
		f->fd = -1;
		if (ok) {
			vm->c.pages_freed += f->populated;
			f->populated = 0;
			memset(f->bits, 0, (f->npages + 63) / 64 * sizeof(*f->bits));
			f->released = true;
			vm->c.files_released++;
		} else {
			err = -EIO;
		}
	}
	if (vm->run)
		munmap(vm->run, vm->run_size);
	vm->run = NULL;
	if (vm->mf_map)
		munmap(vm->mf_map, vm->o->mem_faults * PAGE_SZ);
	vm->mf_map = NULL;
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->vm_stats_fd >= 0)
		close(vm->vm_stats_fd);
	if (vm->vcpu_stats_fd >= 0)
		close(vm->vcpu_stats_fd);
	vm->vm_stats_fd = vm->vcpu_stats_fd = -1;
	vm->vcpu_fd = vm->vm_fd = vm->kvm_fd = -1;
	return err;
}

static void vm__free(struct vm *vm)
{
	unsigned int i;

	if (!vm->files)
		return;
	for (i = 0; i < vm->o->files; i++)
		free(vm->files[i].bits);
	free(vm->files);
	vm->files = NULL;
}

/*
 * --mem-faults: a memslot of anonymous memory alone, after the files', with every page set
 * private (one call): a private access there has nothing to back it.
 */
static int vm__mem_fault_slot(struct vm *vm)
{
	struct kvm_userspace_memory_region2 mr = { 0 };
	__u64 size = vm->o->mem_faults * PAGE_SZ;
	int r;

	vm->mf_map = mmap(NULL, size, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mf_map == MAP_FAILED) {
		r = -errno;
		vm->mf_map = NULL;
		vm_err(vm, "mmap of %llu bytes for --mem-faults: %s", (unsigned long long)size,
		       strerror(-r));
		return r;
	}
	mr.slot = vm->o->files;
	mr.guest_phys_addr = vm->l->mf_gpa;
	mr.memory_size = size;
	mr.userspace_addr = (__u64)(uintptr_t)vm->mf_map;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION2, &mr)) {
		r = -errno;
		vm_err(vm, "KVM_SET_USER_MEMORY_REGION2 (slot %u, gpa %#llx, no guest_memfd): %s",
		       mr.slot, (unsigned long long)mr.guest_phys_addr, strerror(-r));
		return r;
	}
	r = vm__set_attr(vm, vm->l->mf_gpa, size, GMEM_TO_PRIVATE);
	if (r)
		vm_err(vm, "KVM_SET_MEMORY_ATTRIBUTES(gpa %#llx, %llu pages, private): %s",
		       (unsigned long long)vm->l->mf_gpa, (unsigned long long)vm->o->mem_faults,
		       strerror(-r));
	return r;
}

static int vm__setup(struct vm *vm)
{
	const struct opts *o = vm->o;
	const struct layout *l = vm->l;
	unsigned int i;
	int r;

	r = vm__create(vm);
	if (r)
		return r;
	/* Learn whether secretmem exists now, so even the paused report can say. */
	r = vm__secret(vm, 0);
	if (r)
		return r;
	for (i = 0; i < o->files; i++) {
		r = vm__add_file(vm, i);
		if (r)
			return r;
	}
	if (!o->churn && !o->vm_type) {
		for (i = 0; i < o->files; i++) {
			r = vm__user_touch(vm, &vm->files[i], 0, i ? o->user_touch : l->user0);
			if (r)
				return r;
		}
	}
	if (o->mem_faults) {
		r = vm__mem_fault_slot(vm);
		if (r)
			return r;
	}
	if (!o->no_vcpu) {
		r = vm__guest_setup(vm);
		if (!r)
			r = vm__guest_run(vm);
		if (r)
			return r;
	}
	if (!o->churn) {
		for (i = 0; i < o->files; i++) {
			__u64 first = i ? o->user_touch : l->user0 + l->guest + l->conv;

			r = vm__fallocate(vm, &vm->files[i], first, o->falloc_pages);
			if (r)
				return r;
		}
	}
	return 0;
}

/* What KVM's own stats fds say, read by the VM itself: the truth gmemd's copy must equal. */
static const char *const kvm_stat_names[6] = { "exits",    "halt_exits", "io_exits",
					       "pages_4k", "pages_2m",   "pages_1g" };

static void vm__read_stats(struct vm *vm)
{
	if (vm->vcpu_stats_fd < 0 || vm->vm_stats_fd < 0)
		return;
	if (kvmstats__read_fd(vm->vcpu_stats_fd, kvm_stat_names, vm->c.kvm_stat, 3) < 0 ||
	    kvmstats__read_fd(vm->vm_stats_fd, kvm_stat_names + 3, vm->c.kvm_stat + 3, 3) < 0)
		return;
	vm->c.kvm_stats_read = 1;
}

static int vm__main(struct vm *vm)
{
	const struct opts *o = vm->o;
	bool early = o->exit_early == (long)vm->idx;
	int r;

	if (o->start_delay_ms) {
		struct timespec ts = { .tv_sec = o->start_delay_ms / 1000,
				       .tv_nsec = (o->start_delay_ms % 1000) * 1000000 };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	r = vm__setup(vm);
	if (r)
		return r;
	if (o->pause) {
		r = vm__sync_all(vm, "paused");
		if (!r)
			r = vm__report(vm, REP_PAUSED);
		if (!r)
			r = vm__wait_go(vm);
		if (r)
			return r;
	}
	r = vm__punches(vm);
	if (r)
		return r;
	vm__convert(vm);
	if (o->churn)
		r = vm__churn(vm);
	else if (o->secret_pages)
		r = vm__secret(vm, o->secret_pages);
	if (r)
		return r;
	r = vm__sync_all(vm, "done");
	if (r)
		return r;
	if (early) {
		/* The parent books the release once it has reaped us; the kernel does the rest. */
		vm__read_stats(vm);
		r = vm__report(vm, REP_EARLY);
		_exit(r ? EXIT_FAIL : 0);
	}
	vm__read_stats(vm);
	r = vm__report(vm, REP_DONE);
	if (!r && o->linger_set)
		r = vm__wait_go(vm);
	if (r)
		return r;
	r = vm__sync_all(vm, "before close");
	if (r)
		return r;
	r = vm__close(vm);
	if (r)
		return r;
	return vm__report(vm, REP_FINAL);
}

static void vm__child(unsigned int idx, const struct opts *o, const struct layout *l, int rep_fd,
		      int ctl_fd)
{
	struct sigaction sa = { .sa_handler = on_sigbus, .sa_flags = SA_NODEFER };
	struct vm vm = {
		.o = o, .l = l, .idx = idx, .rep_fd = rep_fd, .ctl_fd = ctl_fd,
		.kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1, .vm_stats_fd = -1, .vcpu_stats_fd = -1,
	};
	unsigned int i;
	sigset_t none;
	int r;

	/* SIGUSR1 is the parent's business; a stray one to the group must not kill a VMM. */
	signal(SIGUSR1, SIG_IGN);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigaction(SIGBUS, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);

	vm.rng = rng_seed(rng_seed(o->seed) + idx);
	if (o->advise) {
		r = gmem_advice__open(&vm.adv, o->advise);
		if (r) {
			vm_err(&vm, "--advise: cannot talk to gmemd at %s: %s", o->advise,
			       strerror(-r));
			_exit(EXIT_FAIL);
		}
	}
	vm.files = calloc(o->files, sizeof(*vm.files));
	if (!vm.files) {
		vm_err(&vm, "out of memory");
		_exit(EXIT_FAIL);
	}
	for (i = 0; i < o->files; i++)
		vm.files[i].fd = -1;
	r = vm__main(&vm);
	gmem_advice__close(vm.adv);
	if (r) {
		/* Close what exists so the kernel frees it now rather than at our exit. */
		vm__close(&vm);
		vm__free(&vm);
		_exit(r == -EOPNOTSUPP ? EXIT_UNSUPPORTED : EXIT_FAIL);
	}
	vm__free(&vm);
	_exit(0);
}

/* ---- the parent ------------------------------------------------------------------------------ */

struct vm_view {
	struct counts c;
	struct rep_file *files;
	pid_t pid;
	int rep_fd;
	int ctl_fd;
	__u32 last;
	bool early;
	bool reaped;
};

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

static json_t *json_errno(int e)
{
	const char *name;

	if (!e)
		return json_null();
	name = strerrorname_np(e);
	return name ? json_string(name) : json_integer(e);
}

/* Adds the counters to obj. Returns obj, or NULL (obj released) when out of memory. */
/* --advise given: the counts carry an "advice" object. */
static bool advise_json;

static json_t *counts__json(const struct counts *c, json_t *obj)
{
	json_t *secret;

	secret = json_pack("{sbsIsI}", "available", c->secret_state == SECRET_AVAILABLE,
			   "pages_removed", (json_int_t)c->secret_removed,
			   "pages_restored", (json_int_t)c->secret_restored);
	/*
	 * json_object_set_new() steals its value even when it fails, so nothing leaks; secret,
	 * filled in first, is set with a reference of its own and dropped on every path.
	 */
	if (!obj || !secret || json_object_set_new(secret, "errno", json_errno(c->secret_errno)) ||
	    json_object_set_new(obj, "files_created", json_integer(c->files_created)) ||
	    json_object_set_new(obj, "files_released", json_integer(c->files_released)) ||
	    json_object_set_new(obj, "memslot_binds", json_integer(c->memslot_binds)) ||
	    json_object_set_new(obj, "pages_allocated", json_pack("{sIsIsIsIsI}",
			"user_fault", (json_int_t)c->alloc[GMEM_SRC_USER_FAULT],
			"guest_fault", (json_int_t)c->alloc[GMEM_SRC_GUEST_FAULT],
			"fallocate", (json_int_t)c->alloc[GMEM_SRC_FALLOCATE],
			"populate", (json_int_t)c->alloc[GMEM_SRC_POPULATE],
			"other", (json_int_t)c->alloc[GMEM_SRC_OTHER])) ||
	    json_object_set_new(obj, "pages_freed", json_integer(c->pages_freed)) ||
	    json_object_set_new(obj, "fallocates", json_integer(c->fallocates)) ||
	    json_object_set_new(obj, "punch_holes", json_integer(c->punch_holes)) ||
	    json_object_set_new(obj, "invalidated_bytes", json_integer(c->invalidated_bytes)) ||
	    json_object_set_new(obj, "conversions", json_pack("{s{sIsI}s{sIsI}}",
			"private", "ok", (json_int_t)c->conv[GMEM_TO_PRIVATE][0],
			"error", (json_int_t)c->conv[GMEM_TO_PRIVATE][1],
			"shared", "ok", (json_int_t)c->conv[GMEM_TO_SHARED][0],
			"error", (json_int_t)c->conv[GMEM_TO_SHARED][1])) ||
	    json_object_set_new(obj, "conversion_errno", json_errno(c->conv_errno)) ||
	    (c->kvm_stats_read &&
	     json_object_set_new(obj, "kvm_stats", json_pack("{sIsIsIsIsIsI}",
			kvm_stat_names[0], (json_int_t)c->kvm_stat[0],
			kvm_stat_names[1], (json_int_t)c->kvm_stat[1],
			kvm_stat_names[2], (json_int_t)c->kvm_stat[2],
			kvm_stat_names[3], (json_int_t)c->kvm_stat[3],
			kvm_stat_names[4], (json_int_t)c->kvm_stat[4],
			kvm_stat_names[5], (json_int_t)c->kvm_stat[5]))) ||
	    json_object_set_new(obj, "vcpu_exits", json_pack("{sIsIsIsIsI}",
			"hlt", (json_int_t)c->exits_hlt, "io", (json_int_t)c->exits_io,
			"hypercall", (json_int_t)c->exits_hypercall,
			"memory_fault", (json_int_t)c->exits_memory_fault,
			"other", (json_int_t)c->exits_other)) ||
	    json_object_set_new(obj, "conversion_requests", json_pack("{sIsI}",
			"private", (json_int_t)c->conv_requests[GMEM_TO_PRIVATE],
			"shared", (json_int_t)c->conv_requests[GMEM_TO_SHARED])) ||
	    json_object_set_new(obj, "conversions_on_exit", json_pack("{sIsI}",
			"private", (json_int_t)c->conv_on_exit[GMEM_TO_PRIVATE],
			"shared", (json_int_t)c->conv_on_exit[GMEM_TO_SHARED])) ||
	    json_object_set(obj, "secretmem", secret) ||
	    json_object_set_new(obj, "iterations", json_integer(c->iterations)) ||
	    json_object_set_new(obj, "churn_seconds", json_real(c->churn_ns / 1e9)) ||
	    (advise_json && json_object_set_new(obj, "advice", json_pack("{sIsIsIsI}",
			"asked", (json_int_t)c->advice_asked,
			"answered", (json_int_t)c->advice_answered,
			"decisions", (json_int_t)c->advice_decisions,
			"errors", (json_int_t)c->advice_errors)))) {
		json_decref(secret);
		json_decref(obj);
		return NULL;
	}
	json_decref(secret);
	return obj;
}

static void counts__add(struct counts *t, const struct counts *c)
{
	int i;

	for (i = 0; i < GMEM_SRC_MAX; i++)
		t->alloc[i] += c->alloc[i];
	t->pages_freed += c->pages_freed;
	t->fallocates += c->fallocates;
	t->punch_holes += c->punch_holes;
	t->invalidated_bytes += c->invalidated_bytes;
	for (i = 0; i < GMEM_DIR_MAX; i++) {
		t->conv[i][0] += c->conv[i][0];
		t->conv[i][1] += c->conv[i][1];
		t->conv_requests[i] += c->conv_requests[i];
		t->conv_on_exit[i] += c->conv_on_exit[i];
	}
	t->exits_hlt += c->exits_hlt;
	t->exits_io += c->exits_io;
	t->exits_hypercall += c->exits_hypercall;
	t->exits_memory_fault += c->exits_memory_fault;
	t->exits_other += c->exits_other;
	t->secret_removed += c->secret_removed;
	t->secret_restored += c->secret_restored;
	t->iterations += c->iterations;
	t->advice_asked += c->advice_asked;
	t->advice_answered += c->advice_answered;
	t->advice_decisions += c->advice_decisions;
	t->advice_errors += c->advice_errors;
	if (c->churn_ns > t->churn_ns)
		t->churn_ns = c->churn_ns;
	t->files_created += c->files_created;
	t->files_released += c->files_released;
	t->memslot_binds += c->memslot_binds;
	if (!t->conv_errno)
		t->conv_errno = c->conv_errno;
	if (!t->secret_errno)
		t->secret_errno = c->secret_errno;
	/* The fleet has secretmem only if every VM had it. */
	if (t->secret_state != SECRET_UNAVAILABLE)
		t->secret_state = c->secret_state;
}

static json_t *view__json(const struct vm_view *v)
{
	json_t *vj, *files;
	__u64 pop = 0;
	unsigned int j;

	vj = json_object();
	files = json_array();
	if (!vj || !files || json_object_set_new(vj, "pid", json_integer(v->pid)) ||
	    json_object_set_new(vj, "exited_early", json_boolean(v->early)) ||
	    json_object_set(vj, "files", files)) {
		json_decref(files);
		json_decref(vj);
		return NULL;
	}
	json_decref(files); /* vj holds it now */
	for (j = 0; j < v->c.files_created; j++) {
		const struct rep_file *rf = &v->files[j];

		pop += rf->populated;
		if (json_array_append_new(files, json_pack("{sIsIsIsIsb}",
				"ino", (json_int_t)rf->ino, "size", (json_int_t)rf->size,
				"flags", (json_int_t)rf->flags,
				"populated_pages", (json_int_t)rf->populated,
				"released", (int)rf->released))) {
			json_decref(vj);
			return NULL;
		}
	}
	vj = counts__json(&v->c, vj);
	if (vj && json_object_set_new(vj, "populated_pages", json_integer(pop))) {
		json_decref(vj);
		return NULL;
	}
	return vj;
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
