// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * loader.c - from a bare kernel to attached probes.
 *
 * Order matters: facts first (BTF, tracefs, and an fentry program really loaded once, because
 * only trying tells whether this kernel permits it), then the decision, then the tracepoint
 * object with every program the kernel has (it is also the fallback), then the fentry object
 * sharing its maps, and last the tracepoint links made redundant by fentry are dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "loader.h"
#include "gmem_tp.skel.h"
#include "gmem_fentry.skel.h"
#include "gmem_scan.skel.h"

#define MAX_LINKS 64
#define MAX_MOD_BTF 16

struct loader {
	struct gmem_tp *tp;
	struct gmem_fentry *fe;
	struct gmem_scan *scan;
	struct btf *btf;
	/* Module BTF split on vmlinux's: with KVM a module (every distribution kernel), kvm_gmem_*,
	 * the kvm:/kvmmmu: tracepoints and struct kvm_gmem live in /sys/kernel/btf/kvm, and
	 * kvm_rmp_fault in kvm_amd. Only the modules that matter are read. */
	struct btf *mod_btf[MAX_MOD_BTF];
	int nmod;
	struct probe_facts facts;
	struct probe_table table;
	char tracefs[64];
	char fentry_why[PROBE_REASON_LEN];
	struct bpf_link *links[MAX_LINKS];
	const struct bpf_program *link_prog[MAX_LINKS];
	enum probe_tier link_tier[MAX_LINKS];
	int nlinks;
	struct bpf_link *iter_files, *iter_vmas;
	int ncpus;
	bool empty_bodies;
};

static bool verbose_log;

/*
 * Programs this kernel's verifier refused, learned from libbpf's log. One program a kernel
 * will not take (a tracepoint whose argument became maybe-NULL, a helper it lacks) fails the
 * whole object's load, so the loader reopens the object without it and reports the event as
 * failed, instead of losing every event.
 */
#define MAX_REJECTED 32
static char rejected[MAX_REJECTED][64];
static int nrejected;

static bool is_rejected(const char *prog)
{
	int i;

	for (i = 0; i < nrejected; i++)
		if (!strcmp(rejected[i], prog))
			return true;
	return false;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	char line[256], name[64];
	va_list copy;

	if (level == LIBBPF_WARN) {
		va_copy(copy, args);
		vsnprintf(line, sizeof(line), fmt, copy);
		va_end(copy);
		if (sscanf(line, "libbpf: prog '%63[^']': failed to load", name) == 1 &&
		    !is_rejected(name) && nrejected < MAX_REJECTED)
			snprintf(rejected[nrejected++], sizeof(rejected[0]), "%s", name);
	}
	if (!verbose_log)
		return 0; /* errors are reported by us, with context */
	return vfprintf(stderr, fmt, args);
}

static void mark_rejected(struct loader *l, struct bpf_object *obj, enum probe_tier tier)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj)
		if (is_rejected(bpf_program__name(prog)))
			probe__mark_failed(&l->table, bpf_program__name(prog), tier,
					   "refused by this kernel's verifier (-v shows its log)");
}

/* ---- facts ------------------------------------------------------------------------------- */

/* Is name of kind in vmlinux's BTF or in one of the modules'? */
static bool in_btf(const struct loader *l, const char *name, __u32 kind)
{
	int i;

	if (btf__find_by_name_kind(l->btf, name, kind) > 0)
		return true;
	for (i = 0; i < l->nmod; i++)
		if (btf__find_by_name_kind(l->mod_btf[i], name, kind) > 0)
			return true;
	return false;
}

static bool has_func(void *ctx, const char *name)
{
	return in_btf(ctx, name, BTF_KIND_FUNC);
}

static bool has_tp_btf(void *ctx, const char *tp)
{
	char name[128];

	snprintf(name, sizeof(name), "btf_trace_%s", tp);
	return in_btf(ctx, name, BTF_KIND_TYPEDEF);
}

/*
 * Read the BTF of the modules gmemscope's events live in. Files under /sys/kernel/btf are
 * world-readable, unlike the BPF BTF-object iteration libbpf does, so this needs no capability.
 * A module loaded after gmemd started is not seen until gmemd restarts.
 */
static void load_module_btf(struct loader *l)
{
	static const char *const mods[] = { "kvm", "kvm_amd", "kvm_intel" };
	char path[64];
	size_t i;

	for (i = 0; i < sizeof(mods) / sizeof(mods[0]) && l->nmod < MAX_MOD_BTF; i++) {
		struct btf *b;

		snprintf(path, sizeof(path), "/sys/kernel/btf/%s", mods[i]);
		if (faccessat(AT_FDCWD, path, R_OK, AT_EACCESS))
			continue;
		b = btf__parse_split(path, l->btf);
		if (!b)
			continue;
		l->mod_btf[l->nmod++] = b;
	}
}

static bool has_tracefs(void *ctx, const char *group_tp)
{
	struct loader *l = ctx;
	char path[256];

	if (!l->tracefs[0])
		return false;
	snprintf(path, sizeof(path), "%s/events/%s/id", l->tracefs, group_tp);
	/* the effective ids and capabilities decide (CAP_DAC_READ_SEARCH on root's tracefs),
	 * not access(2)'s real ids */
	return faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) == 0;
}

static bool has_iter(void *ctx, const char *iter)
{
	struct loader *l = ctx;
	char name[128];

	snprintf(name, sizeof(name), "bpf_iter_%s", iter);
	return btf__find_by_name_kind(l->btf, name, BTF_KIND_FUNC) > 0;
}

/*
 * Classic tracepoints need tracefs for their ids. It is often not mounted at boot; mount it
 * where libbpf looks (/sys/kernel/tracing) when we can.
 */
static void find_tracefs(struct loader *l)
{
	static const char *const dirs[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };
	char path[128];
	size_t i;

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/events", dirs[i]);
		if (faccessat(AT_FDCWD, path, F_OK, AT_EACCESS) == 0) {
			snprintf(l->tracefs, sizeof(l->tracefs), "%s", dirs[i]);
			return;
		}
	}
	if (mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL) == 0 &&
	    faccessat(AT_FDCWD, "/sys/kernel/tracing/events", F_OK, AT_EACCESS) == 0)
		snprintf(l->tracefs, sizeof(l->tracefs), "/sys/kernel/tracing");
}

/*
 * Load a two-instruction fentry program against a function that exists. Lockdown, a
 * BPF LSM or a kernel without trampolines all answer here, before we depend on it.
 */
static bool try_fentry(struct loader *l, char *why, size_t whylen)
{
	static const char *const targets[] = { "kvm_gmem_get_pfn", "kvm_gmem_release",
					       "do_sys_openat2", "vfs_read" };
	struct bpf_insn insns[2] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	const char *target = NULL;
	int id = -1, fd, err;
	size_t i;

	for (i = 0; i < sizeof(targets) / sizeof(targets[0]) && id <= 0; i++) {
		id = btf__find_by_name_kind(l->btf, targets[i], BTF_KIND_FUNC);
		target = targets[i];
	}
	if (id <= 0) {
		snprintf(why, whylen, "no traceable function found in BTF");
		return false;
	}
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_TRACE_FENTRY,
		    .attach_btf_id = id);
	fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "gmem_fe_probe", "GPL", insns, 2, &o);
	if (fd < 0) {
		err = errno;
		snprintf(why, whylen, "loading an fentry program on %s: %s", target,
			 strerror(err));
		return false;
	}
	close(fd);
	return true;
}

/*
 * The capabilities gmemscope needs, measured (README, "Privileges"): CAP_BPF and CAP_PERFMON to
 * load and attach tracing programs; CAP_SYS_ADMIN because KVM's types and functions live in
 * module BTF, which libbpf finds by walking BTF object ids (BPF_BTF_GET_NEXT_ID), also for any
 * CO-RE type not in vmlinux; not as uid 0, CAP_DAC_READ_SEARCH to read root's tracefs.
 */
#define CAPB(c) (1ull << (c))
#define CAP_BPF_ 39
#define CAP_PERFMON_ 38

static const struct {
	int cap;
	const char *name;
} cap_names[] = {
	{ CAP_BPF_, "CAP_BPF" },
	{ CAP_PERFMON_, "CAP_PERFMON" },
	{ CAP_SYS_ADMIN, "CAP_SYS_ADMIN" },
	{ CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH" },
	{ CAP_SYS_PTRACE, "CAP_SYS_PTRACE" },
};

static void caps_text(__u64 set, char *buf, size_t len)
{
	size_t i, n = 0;

	buf[0] = 0;
	for (i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++)
		if (set & CAPB(cap_names[i].cap))
			n += snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? ", " : "",
				      cap_names[i].name);
	if (!n)
		snprintf(buf, len, "none");
}

static int caps_get(__u64 *eff, __u64 *prm)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	*eff = data[0].effective | ((__u64)data[1].effective << 32);
	*prm = data[0].permitted | ((__u64)data[1].permitted << 32);
	return 0;
}

__u64 loader__caps_needed(void)
{
	return CAPB(CAP_BPF_) | CAPB(CAP_PERFMON_) | CAPB(CAP_SYS_ADMIN) |
	       (geteuid() ? CAPB(CAP_DAC_READ_SEARCH) : 0);
}

int loader__check_privileges(char *err, size_t errlen)
{
	__u64 eff, prm, need = loader__caps_needed(), missing;
	char miss[160], all[160];

	if (caps_get(&eff, &prm))
		eff = 0;
	missing = need & ~eff;
	if (!missing)
		return 0;
	caps_text(missing, miss, sizeof(miss));
	caps_text(CAPB(CAP_BPF_) | CAPB(CAP_PERFMON_) | CAPB(CAP_SYS_ADMIN) |
			  CAPB(CAP_DAC_READ_SEARCH), all, sizeof(all));
	snprintf(err, errlen, "permission denied: gmemscope loads BPF programs against KVM's "
		 "module BTF and needs root, or %s (the last only when not uid 0); missing: %s",
		 all, miss);
	return -EPERM;
}

int loader__drop_privileges(bool procfs, bool ptrace, char *kept, size_t keptlen)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};
	__u64 eff, prm, keep;

	/* live policy swaps load programs; a /proc scan reads other processes' fd tables */
	keep = CAPB(CAP_BPF_) | CAPB(CAP_PERFMON_);
	if (procfs)
		keep |= CAPB(CAP_SYS_PTRACE) | CAPB(CAP_DAC_READ_SEARCH);
	/* copying the KVM stats fds VMMs hold (pidfd_getfd) is a ptrace access */
	if (ptrace)
		keep |= CAPB(CAP_SYS_PTRACE);
	if (caps_get(&eff, &prm))
		return -errno;
	keep &= prm;
	data[0].effective = data[0].permitted = (__u32)keep;
	data[1].effective = data[1].permitted = (__u32)(keep >> 32);
	if (syscall(SYS_capset, &hdr, data))
		return -errno;
	caps_text(keep, kept, keptlen);
	return 0;
}

void loader__caps_plan(char *buf, size_t len)
{
	char need[160];

	caps_text(loader__caps_needed(), need, sizeof(need));
	snprintf(buf, len, "needs %s to attach; gmemd then keeps CAP_BPF, CAP_PERFMON (live policy "
		 "swaps), CAP_SYS_PTRACE when it has it for KVM stats (--kvm-stats) or a /proc scan, "
		 "CAP_DAC_READ_SEARCH for a /proc scan, and drops the rest", need);
}

/* ---- loading ----------------------------------------------------------------------------- */

static void add_link(struct loader *l, struct bpf_link *link, const struct bpf_program *prog,
		     enum probe_tier tier)
{
	if (l->nlinks < MAX_LINKS) {
		l->links[l->nlinks] = link;
		l->link_prog[l->nlinks] = prog;
		l->link_tier[l->nlinks] = tier;
		l->nlinks++;
	} else {
		bpf_link__destroy(link);
	}
}

/* Autoload what the kernel has; attach each program on its own so one failure costs one
 * event, not all of them. */
static void set_autoload(struct loader *l, struct bpf_object *obj, enum probe_tier tier,
			 bool any_present)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj) {
		const char *name = bpf_program__name(prog);
		bool want;

		if (any_present) {
			/* the tracepoint object: everything present, it is the fallback too */
			struct probe_table all = l->table;
			int i;

			for (i = 0; i < all.n; i++)
				if (all.rows[i].tier == TIER_FENTRY || all.rows[i].tier == TIER_NONE)
					all.rows[i].tier = TIER_TRACEPOINT;
			want = probe__want_prog(&l->facts, &all, name, tier);
		} else {
			want = probe__want_prog(&l->facts, &l->table, name, tier);
		}
		bpf_program__set_autoload(prog, want && !is_rejected(name));
	}
}

static void attach_all(struct loader *l, struct bpf_object *obj, enum probe_tier tier)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj) {
		const char *name = bpf_program__name(prog);
		struct bpf_link *link;
		char why[96];

		if (!bpf_program__autoload(prog))
			continue;
		link = bpf_program__attach(prog);
		if (!link) {
			snprintf(why, sizeof(why), "attach failed: %s", strerror(errno));
			probe__mark_failed(&l->table, name, tier, why);
			continue;
		}
		add_link(l, link, prog, tier);
	}
}

/*
 * A tracepoint program is redundant once no event served at that tier lists it. Programs
 * shared with events still on this tier (the ioctl pair) stay, but must stop emitting the
 * record kinds the fentry tier now emits, or those would count twice.
 */
static void drop_redundant_tp(struct loader *l)
{
	static const struct {
		const char *event;
		__u32 kinds;
	} owned[] = {
		{ "create", 1u << GMEM_EV_FILE_CREATE },
		{ "bind", 1u << GMEM_EV_BIND }, /* UNBIND: below, its fentry hook is optional */
	};
	size_t k;
	int i;

	for (k = 0; k < sizeof(owned) / sizeof(owned[0]); k++) {
		const struct probe_row *r = probe__row(&l->table, owned[k].event);

		if (r && r->tier == TIER_FENTRY && r->state == PROBE_LIVE && l->tp->bss)
			l->tp->bss->tp_skip_kinds |= owned[k].kinds;
	}
	/* with kvm_gmem_unbind hooked, the ioctl pair (still there for another event) must not
	 * report the unbinds it sees too */
	for (i = 0; i < l->nlinks && l->tp->bss; i++)
		if (l->links[i] && l->link_tier[i] == TIER_FENTRY &&
		    !strcmp(bpf_program__name(l->link_prog[i]), "handle_gmem_unbind"))
			l->tp->bss->tp_skip_kinds |= 1u << GMEM_EV_UNBIND;

	for (i = 0; i < l->nlinks; i++) {
		if (l->link_tier[i] != TIER_TRACEPOINT || !l->links[i])
			continue;
		/* a tracepoint program an fentry-tier event lists (the folio hook) stays too */
		if (probe__want_prog(&l->facts, &l->table, bpf_program__name(l->link_prog[i]),
				     TIER_TRACEPOINT) ||
		    probe__want_prog(&l->facts, &l->table, bpf_program__name(l->link_prog[i]),
				     TIER_FENTRY))
			continue;
		bpf_link__destroy(l->links[i]);
		l->links[i] = NULL;
	}
}

static int reuse_maps(struct bpf_object *obj, struct gmem_tp *tp)
{
	static const char *const shared[] = { "events", "counters", "drops", "ino_vm", "vmm_tgids",
						"calls" };
	struct bpf_map *m, *src;
	size_t i;
	int err;

	for (i = 0; i < sizeof(shared) / sizeof(shared[0]); i++) {
		m = bpf_object__find_map_by_name(obj, shared[i]);
		src = bpf_object__find_map_by_name(tp->obj, shared[i]);
		if (!m || !src)
			continue;
		err = bpf_map__reuse_fd(m, bpf_map__fd(src));
		if (err)
			return err;
	}
	return 0;
}

/*
 * A trampoline that attaches is not always one that fires: on Debian's 6.18 the one on
 * kvm_vm_ioctl attaches and is never called, which would lose every conversion silently. So
 * gmemd makes one VM ioctl of its own (KVM_CHECK_EXTENSION on a VM it creates and closes at
 * once) and sees whether the program ran; if not, or if it cannot try (no /dev/kvm access),
 * the conversion event falls back to the tracepoint tier, saying why.
 */
static void check_vm_ioctl_fires(struct loader *l)
{
	const struct probe_row *r = probe__row(&l->table, "conversion");
	char why[96] = "";
	__u64 before;
	int kvm, vm;

	if (!r || r->tier != TIER_FENTRY || r->state != PROBE_LIVE || !l->fe->bss)
		return;
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		snprintf(why, sizeof(why), "cannot test it (open /dev/kvm: %s)", strerror(errno));
		goto failed;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	close(kvm);
	if (vm < 0) {
		snprintf(why, sizeof(why), "cannot test it (KVM_CREATE_VM: %s)", strerror(errno));
		goto failed;
	}
	before = __atomic_load_n(&l->fe->bss->vm_ioctl_runs, __ATOMIC_SEQ_CST);
	(void)ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY);
	close(vm);
	if (__atomic_load_n(&l->fe->bss->vm_ioctl_runs, __ATOMIC_SEQ_CST) != before)
		return;
	snprintf(why, sizeof(why), "attached, but a test ioctl did not reach it");
failed:
	probe__mark_failed(&l->table, "handle_vm_ioctl_entry", TIER_FENTRY, why);
}

static void load_fentry(struct loader *l)
{
	struct probe_facts nofe;
	int err;

	for (int tries = 0;; tries++) {
		int before = nrejected;

		l->fe = gmem_fentry__open();
		if (!l->fe) {
			snprintf(l->fentry_why, sizeof(l->fentry_why), "open: %s", strerror(errno));
			goto fallback;
		}
		set_autoload(l, l->fe->obj, TIER_FENTRY, false);
		l->fe->rodata->targ_empty_bodies = l->empty_bodies;
		err = reuse_maps(l->fe->obj, l->tp);
		if (!err)
			err = gmem_fentry__load(l->fe);
		if (!err)
			break;
		if (nrejected == before || tries >= MAX_REJECTED) {
			snprintf(l->fentry_why, sizeof(l->fentry_why), "load failed: %s",
				 strerror(-err));
			goto fallback;
		}
		gmem_fentry__destroy(l->fe);
		l->fe = NULL;
	}
	mark_rejected(l, l->fe->obj, TIER_FENTRY);
	attach_all(l, l->fe->obj, TIER_FENTRY);
	check_vm_ioctl_fires(l);
	/* events whose fentry attach failed fall back to the tracepoint tier where it exists */
	for (int i = 0; i < l->table.n; i++) {
		struct probe_row *r = &l->table.rows[i];

		if (r->tier == TIER_FENTRY && r->state == PROBE_FAILED &&
		    !strncmp(r->other_reason, "available", 9)) {
			snprintf(r->other_reason, sizeof(r->other_reason), "fentry %s", r->reason);
			r->reason[0] = 0;
			r->tier = TIER_TRACEPOINT;
			r->other_tier = TIER_FENTRY;
			r->state = PROBE_LIVE;
		}
	}
	return;
fallback:
	gmem_fentry__destroy(l->fe);
	l->fe = NULL;
	nofe = l->facts;
	nofe.fentry_permitted = false;
	nofe.fentry_reason = l->fentry_why;
	probe__decide(&nofe, &l->table);
}

static int load_scan(struct loader *l, char *err, size_t errlen)
{
	int e;

	l->scan = gmem_scan__open();
	if (!l->scan)
		return -errno;
	e = reuse_maps(l->scan->obj, l->tp);
	if (!e)
		e = gmem_scan__load(l->scan);
	if (e) {
		probe__mark_failed(&l->table, "scan_files", TIER_TRACEPOINT, "iterator load failed");
		gmem_scan__destroy(l->scan);
		l->scan = NULL;
		return 0;
	}
	l->iter_files = bpf_program__attach_iter(l->scan->progs.scan_files, NULL);
	l->iter_vmas = bpf_program__attach_iter(l->scan->progs.scan_vmas, NULL);
	if (!l->iter_files || !l->iter_vmas)
		probe__mark_failed(&l->table, "scan_files", TIER_TRACEPOINT,
				   "iterator attach failed");
	(void)err;
	(void)errlen;
	return 0;
}

int loader__open(struct loader **out, const struct loader_opts *opts, char *err, size_t errlen)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
	struct utsname u;
	struct loader *l;
	int e;

	*out = NULL;
	verbose_log = opts->verbose;
	libbpf_set_print(libbpf_print);

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->ncpus = libbpf_num_possible_cpus();
	l->empty_bodies = opts->empty_bodies;
	if (uname(&u) == 0)
		snprintf(l->table.kernel, sizeof(l->table.kernel), "%s %s", u.release, u.machine);

	e = loader__check_privileges(err, errlen);
	if (e)
		goto fail;

	l->btf = btf__load_vmlinux_btf();
	if (!l->btf) {
		e = -errno;
		snprintf(err, errlen, "cannot read kernel BTF (/sys/kernel/btf/vmlinux): %s; "
			 "gmemscope needs a kernel built with CONFIG_DEBUG_INFO_BTF",
			 strerror(-e));
		goto fail;
	}
	load_module_btf(l);
	find_tracefs(l);

	l->facts = (struct probe_facts){
		.ctx = l,
		.has_func = has_func,
		.has_tp_btf = has_tp_btf,
		.has_tracefs = has_tracefs,
		.has_iter = has_iter,
	};
	if (opts->no_fentry) {
		snprintf(l->fentry_why, sizeof(l->fentry_why), "disabled by --no-fentry");
	} else {
		l->facts.fentry_permitted = try_fentry(l, l->fentry_why, sizeof(l->fentry_why));
	}
	l->facts.fentry_reason = l->fentry_why;
	probe__decide(&l->facts, &l->table);
	snprintf(l->table.kernel, sizeof(l->table.kernel), "%s %s", u.release, u.machine);

	if (opts->probe_only) {
		*out = l;
		return 0;
	}

	setrlimit(RLIMIT_MEMLOCK, &rl);
	for (int tries = 0;; tries++) {
		int before = nrejected;

		l->tp = gmem_tp__open();
		if (!l->tp) {
			e = -errno;
			snprintf(err, errlen, "cannot open the tracepoint BPF object: %s",
				 strerror(-e));
			goto fail;
		}
		if (opts->ring_bytes)
			bpf_map__set_max_entries(l->tp->maps.events, opts->ring_bytes);
		set_autoload(l, l->tp->obj, TIER_TRACEPOINT, true);
		l->tp->rodata->targ_empty_bodies = opts->empty_bodies;
		e = gmem_tp__load(l->tp);
		if (!e)
			break;
		/* a program this verifier refused: reopen without it (bounded) */
		if (nrejected == before || tries >= MAX_REJECTED) {
			snprintf(err, errlen, "cannot load BPF programs: %s%s", strerror(-e),
				 e == -EPERM ? " (run as root or grant CAP_BPF+CAP_PERFMON; a "
					       "locked-down kernel may refuse BPF entirely)" :
					       " (run with -v for the verifier log)");
			goto fail;
		}
		gmem_tp__destroy(l->tp);
		l->tp = NULL;
	}
	mark_rejected(l, l->tp->obj, TIER_TRACEPOINT);
	attach_all(l, l->tp->obj, TIER_TRACEPOINT);
	if (l->facts.fentry_permitted)
		load_fentry(l);
	drop_redundant_tp(l);
	e = load_scan(l, err, errlen);
	if (e)
		goto fail;
	*out = l;
	return 0;
fail:
	loader__close(l);
	return e;
}

void loader__close(struct loader *l)
{
	int i;

	if (!l)
		return;
	bpf_link__destroy(l->iter_files);
	bpf_link__destroy(l->iter_vmas);
	for (i = 0; i < l->nlinks; i++)
		bpf_link__destroy(l->links[i]);
	gmem_scan__destroy(l->scan);
	gmem_fentry__destroy(l->fe);
	gmem_tp__destroy(l->tp);
	for (i = 0; i < l->nmod; i++)
		btf__free(l->mod_btf[i]);
	btf__free(l->btf);
	free(l);
}

const struct probe_table *loader__table(const struct loader *l)
{
	return &l->table;
}

int loader__events_fd(const struct loader *l)
{
	return l->tp ? bpf_map__fd(l->tp->maps.events) : -1;
}

/*
 * Runs of our programs the kernel skipped: a tracing program is not re-entered on a CPU where it
 * is already running, and on a preemptible kernel (Debian's default, lazy preemption) a thread
 * preempted inside an fexit or syscall-tracepoint program makes the next thread that hits the
 * same hook on that CPU skip it. The kernel counts each skip (bpf_prog_info.recursion_misses,
 * 5.12+); every one is an event we did not see.
 */
__u64 loader__prog_misses(const struct loader *l)
{
	__u64 total = 0;
	int i;

	for (i = 0; i < l->nlinks; i++) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		int fd;

		if (!l->links[i])
			continue;
		fd = bpf_program__fd(l->link_prog[i]);
		if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len))
			total += info.recursion_misses;
	}
	return total;
}

int loader__read_drops(const struct loader *l, loader_drop_cb cb, void *ctx)
{
	struct gmem_drop_key key, next, *prev = NULL;
	__u64 n;
	int fd;

	if (!l->tp)
		return -ENOENT;
	fd = bpf_map__fd(l->tp->maps.drops);
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &n) == 0)
			cb(ctx, next.tgid, next.kind, n);
		key = next;
		prev = &key;
	}
	return 0;
}

int loader__read_counters(const struct loader *l, struct gmem_counters *sum)
{
	struct gmem_counters *per;
	__u32 zero = 0;
	int i, k, e;

	memset(sum, 0, sizeof(*sum));
	if (!l->tp)
		return -ENOENT;
	per = calloc(l->ncpus, sizeof(*per));
	if (!per)
		return -ENOMEM;
	e = bpf_map_lookup_elem(bpf_map__fd(l->tp->maps.counters), &zero, per);
	if (e) {
		e = -errno;
		free(per);
		return e;
	}
	for (i = 0; i < l->ncpus; i++)
		for (k = 0; k < GMEM_EV_KIND_MAX; k++) {
			sum->emitted[k] += per[i].emitted[k];
			sum->dropped[k] += per[i].dropped[k];
			sum->counted[k] += per[i].counted[k];
		}
	free(per);
	return 0;
}

static int read_iter(struct bpf_link *link, struct gmem_scan_rec **recs, size_t *n, size_t *cap)
{
	struct gmem_scan_rec r;
	size_t got = 0;
	ssize_t rd;
	int fd;

	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0)
		return -errno;
	for (;;) {
		rd = read(fd, (char *)&r + got, sizeof(r) - got);
		if (rd < 0) {
			if (errno == EINTR)
				continue;
			rd = -errno;
			close(fd);
			return (int)rd;
		}
		if (rd == 0)
			break;
		got += rd;
		if (got < sizeof(r))
			continue;
		got = 0;
		/* dedup: one record per inode, first holder wins */
		size_t i;

		for (i = 0; i < *n; i++)
			if ((*recs)[i].ino == r.ino)
				break;
		if (i < *n)
			continue;
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 64;
			struct gmem_scan_rec *nr = realloc(*recs, nc * sizeof(*nr));

			if (!nr) {
				close(fd);
				return -ENOMEM;
			}
			*recs = nr;
			*cap = nc;
		}
		(*recs)[(*n)++] = r;
	}
	close(fd);
	return 0;
}

int loader__scan(struct loader *l, struct gmem_scan_rec **recs, size_t *n)
{
	size_t cap = 0;
	int e;

	*recs = NULL;
	*n = 0;
	if (!l->iter_files || !l->iter_vmas)
		return -EOPNOTSUPP;
	e = read_iter(l->iter_files, recs, n, &cap);
	if (!e)
		e = read_iter(l->iter_vmas, recs, n, &cap);
	if (e) {
		free(*recs);
		*recs = NULL;
		*n = 0;
	}
	return e;
}

void loader__use_procfs_scan(struct loader *l, const char *why)
{
	static const char *const events[] = { "discover", "release" };
	size_t i;

	for (i = 0; i < 2; i++) {
		struct probe_row *r = probe__row(&l->table, events[i]);

		if (!r || r->tier == TIER_FENTRY)
			continue;
		r->tier = TIER_TRACEPOINT;
		r->state = PROBE_LIVE;
		snprintf(r->reason, sizeof(r->reason), "scanning /proc: %s", why);
	}
}

int loader__forget_ino(struct loader *l, __u64 ino)
{
	if (!l->tp)
		return -ENOENT;
	return bpf_map_delete_elem(bpf_map__fd(l->tp->maps.ino_vm), &ino) ? -errno : 0;
}

int loader__count_pages(struct loader *l, bool on)
{
	if (!l->tp || !l->tp->bss)
		return -ENOENT;
	__atomic_store_n(&l->tp->bss->gmem_count_pages, on ? 1 : 0, __ATOMIC_SEQ_CST);
	return 0;
}

/* One file's per-CPU counters, summed; vm is the first CPU's that names one. */
static void sum_page_count(const struct gmem_page_count *per, int ncpus,
			   struct gmem_page_count *sum)
{
	int i, k;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < ncpus; i++) {
		for (k = 0; k < GMEM_SRC_MAX; k++)
			sum->alloc_pages[k] += per[i].alloc_pages[k];
		sum->alloc_events += per[i].alloc_events;
		sum->free_pages += per[i].free_pages;
		sum->free_events += per[i].free_events;
		if (!sum->vm)
			sum->vm = per[i].vm;
	}
}

int loader__read_page_count(const struct loader *l, __u64 ino, struct gmem_page_count *sum)
{
	struct gmem_page_count *per;
	int e = 0;

	if (!l->tp)
		return -ENOENT;
	per = calloc(l->ncpus, sizeof(*per));
	if (!per)
		return -ENOMEM;
	if (bpf_map_lookup_elem(bpf_map__fd(l->tp->maps.page_counts), &ino, per))
		e = -errno;
	else
		sum_page_count(per, l->ncpus, sum);
	free(per);
	return e;
}

/* Keys and per-CPU values a batch lookup asks for at once; a hash bucket with more entries
 * than that makes the kernel say ENOSPC, and the batch is then retried larger. */
#define PAGE_COUNT_BATCH 256

int loader__read_page_counts(const struct loader *l, loader_page_count_cb cb, void *ctx)
{
	size_t batch = PAGE_COUNT_BATCH;
	struct gmem_page_count *per = NULL, sum;
	__u64 *keys = NULL, in = 0, out = 0;
	bool first = true;
	int fd, e = 0;

	if (!l->tp)
		return -ENOENT;
	fd = bpf_map__fd(l->tp->maps.page_counts);
	for (;;) {
		__u32 n = batch, i;

		if (!keys) {
			keys = calloc(batch, sizeof(*keys));
			per = calloc(batch * l->ncpus, sizeof(*per));
			if (!keys || !per) {
				e = -ENOMEM;
				break;
			}
		}
		e = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys, per, &n, NULL);
		if (e && errno == ENOSPC && batch < 65536) {
			/* a bucket larger than the batch: again, larger, from the same place */
			free(keys);
			free(per);
			keys = NULL;
			per = NULL;
			batch *= 4;
			continue;
		}
		if (e && errno != ENOENT) {
			e = -errno;
			break;
		}
		for (i = 0; i < n; i++) {
			sum_page_count(per + (size_t)i * l->ncpus, l->ncpus, &sum);
			cb(ctx, keys[i], &sum);
		}
		if (e) { /* ENOENT: that was the last of them */
			e = 0;
			break;
		}
		in = out;
		first = false;
	}
	free(keys);
	free(per);
	return e;
}

int loader__forget_page_count(struct loader *l, __u64 ino)
{
	if (!l->tp)
		return -ENOENT;
	return bpf_map_delete_elem(bpf_map__fd(l->tp->maps.page_counts), &ino) ? -errno : 0;
}

int loader__map_entries(const struct loader *l, const char *name)
{
	struct bpf_map *m = l->tp ? bpf_object__find_map_by_name(l->tp->obj, name) : NULL;
	__u8 key[64], next[64];
	void *prev = NULL;
	int n = 0, fd;

	if (!m || bpf_map__key_size(m) > sizeof(key))
		return -ENOENT;
	fd = bpf_map__fd(m);
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, bpf_map__key_size(m));
		prev = key;
		n++;
	}
	return n;
}

int loader__sweep_vmms(struct loader *l)
{
	__u32 key, next, *prev = NULL, gone[256];
	int fd, n = 0, i;

	if (!l->tp)
		return -ENOENT;
	fd = bpf_map__fd(l->tp->maps.vmm_tgids);
	while (n < 256 && bpf_map_get_next_key(fd, prev, &next) == 0) {
		/* a scan can note a VMM that exits right after its walk: its exit never comes */
		if (kill((pid_t)next, 0) && errno == ESRCH)
			gone[n++] = next;
		key = next;
		prev = &key;
	}
	for (i = 0; i < n; i++)
		bpf_map_delete_elem(fd, &gone[i]);
	return n;
}

int loader__note_vmm(struct loader *l, __u32 tgid, __u32 vm)
{
	if (!l->tp)
		return -ENOENT;
	return bpf_map_update_elem(bpf_map__fd(l->tp->maps.vmm_tgids), &tgid, &vm, BPF_ANY) ?
		       -errno : 0;
}
