// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * policy.c - a policy object loaded once, its decisions run with BPF_PROG_RUN.
 *
 * A run costs one bpf() syscall (~0.6 us here). A syscall program's ctx is copied in and back
 * out in place, so a decision copies the caller's context onto the stack first and the
 * caller's stays untouched. The batch program decides up to GMEM_POLICY_BATCH_MAX contexts
 * written into the policy's mmapped .data.gmem_batch map in one run.
 */
#include <errno.h>
#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "policy.h"
#include "strbuf.h"

#define INFO_SEC  ".rodata.gmem_policy"
#define BATCH_SEC ".data.gmem_batch"
#define SO_SUFFIX ".struct_ops.bpf.o"
#define OBJ_SUFFIX ".bpf.o"
#define LOG_SIZE  (1 << 20)

struct policy {
	struct bpf_object *obj;
	struct bpf_object *so_obj;
	struct bpf_link *so_link;
	int fd[GMEM_POLICY_CB_MAX];
	int init_fd, exit_fd, batch_fd;
	void *batch_map; /* the mmapped .data.gmem_batch */
	size_t batch_len;
	size_t off_ctx[GMEM_POLICY_CB_MAX], off_ret;
	enum policy_so_state so_state;
	char so_reason[256];
	char name[GMEM_POLICY_NAME_LEN];
	char path[PATH_MAX];
	struct policy_stats st;
};

static const char *const cb_names[GMEM_POLICY_CB_MAX] = {
	[GMEM_POLICY_SPLIT] = "split",
	[GMEM_POLICY_MERGE] = "merge",
	[GMEM_POLICY_ALLOC] = "alloc_order",
};

static const char *const prog_names[GMEM_POLICY_CB_MAX] = {
	[GMEM_POLICY_SPLIT] = "gmem_split",
	[GMEM_POLICY_MERGE] = "gmem_merge",
	[GMEM_POLICY_ALLOC] = "gmem_alloc",
};

static const char *const batch_vars[GMEM_POLICY_CB_MAX] = {
	[GMEM_POLICY_SPLIT] = "gmem_batch_split",
	[GMEM_POLICY_MERGE] = "gmem_batch_merge",
	[GMEM_POLICY_ALLOC] = "gmem_batch_alloc",
};

/* ---- pure helpers ------------------------------------------------------------------------ */

const char *policy__cb_name(unsigned int cb)
{
	return cb < GMEM_POLICY_CB_MAX ? cb_names[cb] : "?";
}

int policy__cb_parse(const char *name)
{
	int i;

	if (!name)
		return -1;
	if (!strcmp(name, "alloc"))
		return GMEM_POLICY_ALLOC;
	for (i = 0; i < GMEM_POLICY_CB_MAX; i++)
		if (!strcmp(name, cb_names[i]))
			return i;
	return -1;
}

const char *policy__cause_name(unsigned int cause)
{
	static const char *const n[] = { "convert", "punch", "invalidate" };

	return cause < GMEM_SPLIT_CAUSE_MAX ? n[cause] : "?";
}

size_t policy__ctx_size(enum gmem_policy_cb cb)
{
	switch (cb) {
	case GMEM_POLICY_SPLIT:
		return sizeof(struct gmem_split_ctx);
	case GMEM_POLICY_MERGE:
		return sizeof(struct gmem_merge_ctx);
	case GMEM_POLICY_ALLOC:
		return sizeof(struct gmem_alloc_ctx);
	default:
		return 0;
	}
}

__s32 policy__safe_default(enum gmem_policy_cb cb)
{
	/* split to 4 KiB isolates every request; never merging and 4 KiB allocation are always
	 * correct. */
	return cb == GMEM_POLICY_MERGE ? GMEM_MERGE_NEVER : 0;
}

__s32 policy__clamp(enum gmem_policy_cb cb, const void *ctx, __s32 raw, bool *clamped)
{
	__s32 lo, hi, v = raw;

	switch (cb) {
	case GMEM_POLICY_SPLIT: {
		const struct gmem_split_ctx *c = ctx;

		lo = 0;
		hi = c->order ? (__s32)c->order - 1 : 0;
		break;
	}
	case GMEM_POLICY_MERGE:
		lo = GMEM_MERGE_NEVER;
		hi = GMEM_MERGE_MAX_DELAY_MS;
		break;
	case GMEM_POLICY_ALLOC: {
		const struct gmem_alloc_ctx *c = ctx;

		lo = 0;
		hi = c->max_order > GMEM_POLICY_MAX_ORDER ? GMEM_POLICY_MAX_ORDER :
							   (__s32)c->max_order;
		break;
	}
	default:
		*clamped = true;
		return 0;
	}
	if (v < lo)
		v = lo;
	if (v > hi)
		v = hi;
	*clamped = v != raw;
	return v;
}

unsigned int policy__decision_slot(enum gmem_policy_cb cb, __s32 value)
{
	if (cb == GMEM_POLICY_MERGE)
		return value == GMEM_MERGE_NOW	 ? POLICY_MERGE_NOW :
		       value == GMEM_MERGE_NEVER ? POLICY_MERGE_NEVER :
						   POLICY_MERGE_DELAY;
	if (value < 0)
		return 0;
	return value > GMEM_POLICY_MAX_ORDER ? GMEM_POLICY_MAX_ORDER : (unsigned int)value;
}

const char *policy__slot_name(enum gmem_policy_cb cb, unsigned int slot)
{
	static const char *const sizes[POLICY_DECISIONS] = {
		"4k",	"8k",	"16k",	"32k", "64k", "128k", "256k", "512k", "1M", "2M",
		"4M",	"8M",	"16M",	"32M", "64M", "128M", "256M", "512M", "1G",
	};
	static const char *const merges[] = { "now", "delay", "never" };

	if (cb == GMEM_POLICY_MERGE)
		return slot <= POLICY_MERGE_NEVER ? merges[slot] : "?";
	return slot < POLICY_DECISIONS ? sizes[slot] : "?";
}

const char *policy__so_state_name(enum policy_so_state s)
{
	switch (s) {
	case POLICY_SO_NOT_REGISTERED:
		return "not_registered";
	case POLICY_SO_ATTACHED:
		return "attached";
	case POLICY_SO_FAILED:
		return "failed";
	case POLICY_SO_MISSING:
		return "missing";
	case POLICY_SO_DISABLED:
		return "disabled";
	}
	return "?";
}

/* ---- finding policies -------------------------------------------------------------------- */

static bool valid_policy_name(const char *s)
{
	const char *p;

	if (!*s || strlen(s) >= GMEM_POLICY_NAME_LEN)
		return false;
	for (p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

/* The directories a NAME is looked up in, in order: $GMEM_POLICY_DIR, the build tree beside
 * the running binary (build/bin/.. or build/tests/..), an installed tree. */
static int search_dirs(char dirs[][PATH_MAX], int max)
{
	const char *env = getenv("GMEM_POLICY_DIR");
	char exe[PATH_MAX], *slash;
	ssize_t n;
	int k = 0;

	if (env && *env && k < max)
		snprintf(dirs[k++], PATH_MAX, "%s", env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			if (k < max)
				snprintf(dirs[k++], PATH_MAX, "%s/../bpf/policies", exe);
			if (k < max)
				snprintf(dirs[k++], PATH_MAX, "%s/../lib/gmemscope/policies", exe);
		}
	}
	if (k < max)
		snprintf(dirs[k++], PATH_MAX, "/usr/lib/gmemscope/policies");
	return k;
}

int policy__resolve(const char *spec, char *path, size_t pathlen, char *err, size_t errlen)
{
	char dirs[4][PATH_MAX];
	struct strbuf tried = STRBUF_INIT;
	int i, n;

	if (!spec || !*spec) {
		snprintf(err, errlen, "no policy named");
		return -EINVAL;
	}
	if (strchr(spec, '/') || ends_with(spec, OBJ_SUFFIX)) {
		if (access(spec, R_OK)) {
			int e = errno;

			snprintf(err, errlen, "policy object %s: %s", spec, strerror(e));
			return -e;
		}
		snprintf(path, pathlen, "%s", spec);
		return 0;
	}
	if (!valid_policy_name(spec)) {
		snprintf(err, errlen, "'%s' is neither a policy name ([a-z0-9_], at most %d "
			 "characters) nor a path to a .bpf.o", spec, GMEM_POLICY_NAME_LEN - 1);
		return -EINVAL;
	}
	n = search_dirs(dirs, 4);
	for (i = 0; i < n; i++) {
		snprintf(path, pathlen, "%s/%s%s", dirs[i], spec, OBJ_SUFFIX);
		if (!access(path, R_OK)) {
			char real[PATH_MAX];

			if (realpath(path, real))
				snprintf(path, pathlen, "%s", real);
			strbuf__release(&tried);
			return 0;
		}
		strbuf__printf(&tried, "%s%s", i ? ", " : "", dirs[i]);
	}
	snprintf(err, errlen, "no policy '%s' (looked in %s; set GMEM_POLICY_DIR or give a path)",
		 spec, strbuf__str(&tried));
	strbuf__release(&tried);
	return -ENOENT;
}

int policy__for_each_installed(int (*cb)(const char *name, const char *path, void *ctx),
			       void *ctx)
{
	char dirs[4][PATH_MAX], path[PATH_MAX * 2], name[GMEM_POLICY_NAME_LEN];
	char seen[64][GMEM_POLICY_NAME_LEN];
	int i, k, n, nseen = 0, r = 0;

	n = search_dirs(dirs, 4);
	for (i = 0; i < n && !r; i++) {
		struct dirent **ents;
		int m = scandir(dirs[i], &ents, NULL, alphasort);

		for (k = 0; k < m; k++) {
			const char *d = ents[k]->d_name;
			size_t len = strlen(d);
			bool dup = false;
			int j;

			if (!r && ends_with(d, OBJ_SUFFIX) && !ends_with(d, SO_SUFFIX) &&
			    len - strlen(OBJ_SUFFIX) < GMEM_POLICY_NAME_LEN) {
				snprintf(name, sizeof(name), "%.*s",
					 (int)(len - strlen(OBJ_SUFFIX)), d);
				for (j = 0; j < nseen; j++)
					dup |= !strcmp(seen[j], name);
				if (!dup && nseen < 64) {
					snprintf(seen[nseen++], GMEM_POLICY_NAME_LEN, "%s", name);
					snprintf(path, sizeof(path), "%s/%s", dirs[i], d);
					r = cb(name, path, ctx);
				}
			}
			free(ents[k]);
		}
		if (m >= 0)
			free(ents);
	}
	return r;
}

/* ---- libbpf's messages, captured while loading --------------------------------------------- */

static struct strbuf *capture_sb;
static bool capture_verbose;

static int capture_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	va_list aq;

	if (capture_verbose) {
		va_copy(aq, ap);
		vfprintf(stderr, fmt, aq);
		va_end(aq);
	}
	if (capture_sb && level != LIBBPF_DEBUG)
		strbuf__vprintf(capture_sb, fmt, ap);
	return 0;
}

/*
 * The verifier's last word on the program that failed: the last line of the log that is not
 * its statistics. The log holds the failing program's, as each load overwrites it.
 */
static void verifier_reason(const char *log, char *out, size_t outlen)
{
	const char *end = log + strlen(log), *line_end, *p;

	out[0] = 0;
	while (end > log) {
		while (end > log && (end[-1] == '\n' || end[-1] == ' '))
			end--;
		line_end = end;
		p = end;
		while (p > log && p[-1] != '\n')
			p--;
		end = p;
		if (line_end == p || !strncmp(p, "processed ", 10) ||
		    !strncmp(p, "verification time", 17) || !strncmp(p, "stack depth", 11) ||
		    !strncmp(p, "-- END", 6) || strstr(p, "BEGIN PROG LOAD LOG"))
			continue;
		snprintf(out, outlen, "%.*s", (int)(line_end - p), p);
		return;
	}
}

/* Which program libbpf says it failed on, from its captured messages. */
static void failed_prog(const char *msgs, char *out, size_t outlen)
{
	const char *p = msgs, *q;

	out[0] = 0;
	while ((p = strstr(p, "prog '"))) {
		p += 6;
		q = strchr(p, '\'');
		if (!q)
			break;
		if (strstr(q, "failed to load") && (size_t)(q - p) < outlen &&
		    (!strchr(q, '\n') || strstr(q, "failed to load") < strchr(q, '\n'))) {
			snprintf(out, outlen, "%.*s", (int)(q - p), p);
			return;
		}
		p = q;
	}
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* ---- struct_ops -------------------------------------------------------------------------- */

/* Whether the kernel (or the BTF at path) knows struct gmem_policy_ops. Cached for the kernel. */
static int btf_has_ops(const char *path)
{
	static int cached = -1;
	struct btf *btf;
	int has;

	if (!path && cached >= 0)
		return cached;
	btf = path ? btf__parse(path, NULL) : btf__load_vmlinux_btf();
	if (!btf)
		return -errno;
	has = btf__find_by_name_kind(btf, "gmem_policy_ops", BTF_KIND_STRUCT) > 0;
	btf__free(btf);
	if (!path)
		cached = has;
	return has;
}

static void open_struct_ops(struct policy *p, const struct policy_opts *opts,
			    struct strbuf *msgs)
{
	char so_path[PATH_MAX + 32];
	struct bpf_map *map;
	size_t len = strlen(p->path);
	int has, e;

	if (opts->no_struct_ops) {
		p->so_state = POLICY_SO_DISABLED;
		snprintf(p->so_reason, sizeof(p->so_reason), "not looked for (disabled)");
		return;
	}
	has = btf_has_ops(opts->btf_path);
	if (has <= 0) {
		p->so_state = POLICY_SO_NOT_REGISTERED;
		if (has < 0)
			snprintf(p->so_reason, sizeof(p->so_reason),
				 "not registered by this kernel (cannot read kernel BTF: %s); "
				 "decisions run through BPF_PROG_RUN", strerror(-has));
		else
			snprintf(p->so_reason, sizeof(p->so_reason),
				 "not registered by this kernel (no struct gmem_policy_ops in "
				 "kernel BTF); decisions run through BPF_PROG_RUN");
		return;
	}
	if (!ends_with(p->path, OBJ_SUFFIX)) {
		p->so_state = POLICY_SO_MISSING;
		snprintf(p->so_reason, sizeof(p->so_reason),
			 "the kernel registers gmem_policy_ops but %s is not NAME.bpf.o", p->path);
		return;
	}
	snprintf(so_path, sizeof(so_path), "%.*s%s", (int)(len - strlen(OBJ_SUFFIX)), p->path,
		 SO_SUFFIX);
	if (access(so_path, R_OK)) {
		p->so_state = POLICY_SO_MISSING;
		snprintf(p->so_reason, sizeof(p->so_reason),
			 "the kernel registers gmem_policy_ops but %s is missing", so_path);
		return;
	}
	strbuf__reset(msgs);
	p->so_obj = bpf_object__open_file(so_path, NULL);
	if (!p->so_obj) {
		e = -errno;
		goto fail;
	}
	e = bpf_object__load(p->so_obj);
	if (e)
		goto fail;
	bpf_object__for_each_map(map, p->so_obj) {
		if (bpf_map__type(map) != BPF_MAP_TYPE_STRUCT_OPS)
			continue;
		p->so_link = bpf_map__attach_struct_ops(map);
		if (!p->so_link) {
			e = -errno;
			goto fail;
		}
	}
	p->so_state = POLICY_SO_ATTACHED;
	snprintf(p->so_reason, sizeof(p->so_reason), "attached: the kernel runs %s", so_path);
	return;
fail: {
	char last[200] = "";
	const char *m = strstr(strbuf__str(msgs), "struct_ops");

	/* libbpf says why in a struct_ops line ("... is not found in kernel BTF") */
	if (m)
		snprintf(last, sizeof(last), "%.*s", (int)strcspn(m, "\n"), m);
	else
		verifier_reason(strbuf__str(msgs), last, sizeof(last));
	p->so_state = POLICY_SO_FAILED;
	snprintf(p->so_reason, sizeof(p->so_reason), "%s: %s (%s); decisions run through "
		 "BPF_PROG_RUN", so_path, last[0] ? last : "load failed", strerror(-e));
	bpf_object__close(p->so_obj);
	p->so_obj = NULL;
}
}

/* ---- open / close ------------------------------------------------------------------------ */

static int run_prog(int fd, void *ctx, size_t len, __s32 *ret)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = ctx, .ctx_size_in = len);
	int e;

	e = bpf_prog_test_run_opts(fd, &o);
	if (e)
		return -errno;
	*ret = (__s32)o.retval;
	return 0;
}

/* Finds the offsets of the batch arrays in .data.gmem_batch from the object's BTF. */
static int find_batch(struct policy *p)
{
	const struct btf_var_secinfo *vs;
	struct btf *btf = bpf_object__btf(p->obj);
	const struct btf_type *t;
	struct bpf_map *map;
	unsigned int found = 0;
	int id, i, cb;

	map = bpf_object__find_map_by_name(p->obj, BATCH_SEC);
	if (!map || !btf)
		return -ENOENT;
	id = btf__find_by_name_kind(btf, BATCH_SEC, BTF_KIND_DATASEC);
	if (id <= 0)
		return -ENOENT;
	t = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(t);
	for (i = 0; i < btf_vlen(t); i++, vs++) {
		const char *vn = btf__name_by_offset(btf, btf__type_by_id(btf, vs->type)->name_off);

		for (cb = 0; cb < GMEM_POLICY_CB_MAX; cb++) {
			if (!strcmp(vn, batch_vars[cb])) {
				p->off_ctx[cb] = vs->offset;
				found |= 1u << cb;
			}
		}
		if (!strcmp(vn, "gmem_batch_ret")) {
			p->off_ret = vs->offset;
			found |= 1u << GMEM_POLICY_CB_MAX;
		}
	}
	if (found != (1u << (GMEM_POLICY_CB_MAX + 1)) - 1)
		return -ENOENT;
	p->batch_len = bpf_map__value_size(map);
	p->batch_map = mmap(NULL, p->batch_len, PROT_READ | PROT_WRITE, MAP_SHARED,
			    bpf_map__fd(map), 0);
	if (p->batch_map == MAP_FAILED) {
		p->batch_map = NULL;
		return -errno;
	}
	return 0;
}

static int check_info(struct policy *p, char *err, size_t errlen)
{
	const struct gmem_policy_info *info;
	struct bpf_map *map;
	size_t sz = 0;

	map = bpf_object__find_map_by_name(p->obj, INFO_SEC);
	info = map ? bpf_map__initial_value(map, &sz) : NULL;
	if (!info || sz < sizeof(*info)) {
		snprintf(err, errlen, "%s is not a gmemscope policy (no " INFO_SEC " record: "
			 "write it with GMEM_POLICY() from bpf/policies/gmem_policy.bpf.h)",
			 p->path);
		return -EINVAL;
	}
	if (info->abi != GMEM_POLICY_ABI_VERSION ||
	    info->split_ctx_size != sizeof(struct gmem_split_ctx) ||
	    info->merge_ctx_size != sizeof(struct gmem_merge_ctx) ||
	    info->alloc_ctx_size != sizeof(struct gmem_alloc_ctx)) {
		snprintf(err, errlen, "%s was built for policy ABI %u (contexts %u/%u/%u bytes); "
			 "this host speaks ABI %u (%zu/%zu/%zu): rebuild it against this "
			 "include/gmem_policy.h", p->path, info->abi, info->split_ctx_size,
			 info->merge_ctx_size, info->alloc_ctx_size, GMEM_POLICY_ABI_VERSION,
			 sizeof(struct gmem_split_ctx), sizeof(struct gmem_merge_ctx),
			 sizeof(struct gmem_alloc_ctx));
		return -EPROTO;
	}
	snprintf(p->name, sizeof(p->name), "%.*s", GMEM_POLICY_NAME_LEN - 1, info->name);
	if (!p->name[0] || !valid_policy_name(p->name)) {
		snprintf(err, errlen, "%s names itself '%s': not a valid policy name", p->path,
			 p->name);
		return -EINVAL;
	}
	return 0;
}

int policy__open(struct policy **out, const char *spec, const struct policy_opts *opts_in,
		 char *err, size_t errlen)
{
	static const struct policy_opts none = {};
	const struct policy_opts *opts = opts_in ? opts_in : &none;
	struct strbuf msgs = STRBUF_INIT;
	libbpf_print_fn_t old_print;
	struct bpf_program *prog;
	struct policy *p;
	char *log = NULL;
	int e, cb;
	__s32 ret = 0;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->init_fd = p->exit_fd = p->batch_fd = -1;
	e = policy__resolve(spec, p->path, sizeof(p->path), err, errlen);
	if (e)
		goto fail;

	log = malloc(LOG_SIZE);
	if (!log) {
		e = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	log[0] = 0;
	capture_sb = &msgs;
	capture_verbose = opts->verbose;
	old_print = libbpf_set_print(capture_print);
	{
		LIBBPF_OPTS(bpf_object_open_opts, oo, .kernel_log_buf = log,
			    .kernel_log_size = LOG_SIZE);

		p->obj = bpf_object__open_file(p->path, &oo);
	}
	if (!p->obj) {
		char why[128];

		e = -errno;
		if (e == -LIBBPF_ERRNO__FORMAT || e == -LIBBPF_ERRNO__LIBELF) {
			snprintf(why, sizeof(why), "not a BPF object file (a policy is an ELF "
				 ".bpf.o; make builds bpf/policies/*.bpf.c into one)");
			e = -ENOEXEC;
		} else if (e <= -__LIBBPF_ERRNO__START) {
			libbpf_strerror(e, why, sizeof(why));
		} else {
			snprintf(why, sizeof(why), "%s", strerror(-e));
		}
		snprintf(err, errlen, "cannot open policy %s: %s", p->path, why);
		goto restore;
	}
	e = check_info(p, err, errlen);
	if (e)
		goto restore;
	for (cb = 0; cb < GMEM_POLICY_CB_MAX; cb++) {
		if (!bpf_object__find_program_by_name(p->obj, prog_names[cb])) {
			e = -EINVAL;
			snprintf(err, errlen, "policy %s has no %s program (GMEM_POLICY() makes "
				 "it)", p->path, prog_names[cb]);
			goto restore;
		}
	}
	e = bpf_object__load(p->obj);
	if (e) {
		char prog_name[64], why[256];

		failed_prog(strbuf__str(&msgs), prog_name, sizeof(prog_name));
		verifier_reason(log, why, sizeof(why));
		if (!why[0])
			verifier_reason(strbuf__str(&msgs), why, sizeof(why));
		snprintf(err, errlen, "cannot load policy %s: %s%s%s%s%s (-v for the full log)",
			 p->path, prog_name[0] ? "the verifier rejected " : "",
			 prog_name, prog_name[0] ? ": " : "", why[0] ? why : strerror(-e),
			 e == -EPERM ? "; run as root or grant CAP_BPF" : "");
		goto restore;
	}
	for (cb = 0; cb < GMEM_POLICY_CB_MAX; cb++)
		p->fd[cb] = bpf_program__fd(bpf_object__find_program_by_name(p->obj,
									     prog_names[cb]));
	prog = bpf_object__find_program_by_name(p->obj, "gmem_init");
	p->init_fd = prog ? bpf_program__fd(prog) : -1;
	prog = bpf_object__find_program_by_name(p->obj, "gmem_exit");
	p->exit_fd = prog ? bpf_program__fd(prog) : -1;
	prog = bpf_object__find_program_by_name(p->obj, "gmem_batch");
	if (prog && !find_batch(p))
		p->batch_fd = bpf_program__fd(prog);

	if (p->init_fd >= 0) {
		char dummy[8] = {};

		e = run_prog(p->init_fd, dummy, sizeof(dummy), &ret);
		if (e || ret) {
			snprintf(err, errlen, "policy %s (%s): init %s %d", p->name, p->path,
				 e ? "could not run:" : "refused, returning", e ? e : ret);
			p->exit_fd = -1; /* no exit for a policy that never started */
			e = e ? e : -ECANCELED;
			goto restore;
		}
	}
	open_struct_ops(p, opts, &msgs);
	e = 0;
restore:
	libbpf_set_print(old_print);
	capture_sb = NULL;
	capture_verbose = false;
	strbuf__release(&msgs);
	free(log);
	if (e)
		goto fail;
	*out = p;
	return 0;
fail:
	policy__close(p);
	return e;
}

void policy__close(struct policy *p)
{
	__s32 ret = 0;
	char dummy[8] = {};

	if (!p)
		return;
	if (p->exit_fd >= 0)
		run_prog(p->exit_fd, dummy, sizeof(dummy), &ret);
	bpf_link__destroy(p->so_link);
	bpf_object__close(p->so_obj);
	if (p->batch_map)
		munmap(p->batch_map, p->batch_len);
	bpf_object__close(p->obj);
	free(p);
}

const char *policy__name(const struct policy *p)
{
	return p->name;
}

const char *policy__path(const struct policy *p)
{
	return p->path;
}

enum policy_so_state policy__struct_ops(const struct policy *p, const char **reason)
{
	if (reason)
		*reason = p->so_reason;
	return p->so_state;
}

const struct policy_stats *policy__stats(const struct policy *p)
{
	return &p->st;
}

/* ---- decisions --------------------------------------------------------------------------- */

static void account(struct policy *p, enum gmem_policy_cb cb, const void *ctx, __s32 raw,
		    int run_err, struct policy_answer *a)
{
	a->raw = raw;
	a->error = run_err != 0;
	if (a->error) {
		a->value = policy__safe_default(cb);
		a->clamped = false;
		p->st.errors[cb]++;
	} else {
		a->value = policy__clamp(cb, ctx, raw, &a->clamped);
		if (a->clamped)
			p->st.clamped[cb]++;
	}
	p->st.calls[cb]++;
	p->st.decided[cb][policy__decision_slot(cb, a->value)]++;
}

int policy__decide(struct policy *p, enum gmem_policy_cb cb, const void *ctx,
		   struct policy_answer *a)
{
	union {
		struct gmem_split_ctx s;
		struct gmem_merge_ctx m;
		struct gmem_alloc_ctx al;
	} copy;
	size_t len = policy__ctx_size(cb);
	__s32 raw = 0;
	__u64 t0;
	int e;

	if (!len)
		return -EINVAL;
	memcpy(&copy, ctx, len);
	t0 = now_ns();
	e = run_prog(p->fd[cb], &copy, len, &raw);
	p->st.run_ns[cb] += now_ns() - t0;
	p->st.runs++;
	account(p, cb, ctx, raw, e, a);
	return e;
}

int policy__split(struct policy *p, const struct gmem_split_ctx *ctx, struct policy_answer *a)
{
	return policy__decide(p, GMEM_POLICY_SPLIT, ctx, a);
}

int policy__merge(struct policy *p, const struct gmem_merge_ctx *ctx, struct policy_answer *a)
{
	return policy__decide(p, GMEM_POLICY_MERGE, ctx, a);
}

int policy__alloc(struct policy *p, const struct gmem_alloc_ctx *ctx, struct policy_answer *a)
{
	return policy__decide(p, GMEM_POLICY_ALLOC, ctx, a);
}

int policy__batch(struct policy *p, enum gmem_policy_cb cb, const void *ctxs, unsigned int n,
		  struct policy_answer *a)
{
	size_t len = policy__ctx_size(cb);
	const char *src = ctxs;
	unsigned int i, k, chunk;
	int e, first_err = 0;
	__s32 raw = 0;
	__u64 t0;

	if (!len)
		return -EINVAL;
	if (p->batch_fd < 0) {
		for (i = 0; i < n; i++) {
			e = policy__decide(p, cb, src + i * len, &a[i]);
			if (e && !first_err)
				first_err = e;
		}
		return first_err;
	}
	for (i = 0; i < n; i += chunk) {
		struct gmem_policy_batch b = { .callback = cb };
		const __s32 *ret = (const __s32 *)((char *)p->batch_map + p->off_ret);

		chunk = n - i < GMEM_POLICY_BATCH_MAX ? n - i : GMEM_POLICY_BATCH_MAX;
		b.n = chunk;
		memcpy((char *)p->batch_map + p->off_ctx[cb], src + i * len, chunk * len);
		t0 = now_ns();
		e = run_prog(p->batch_fd, &b, sizeof(b), &raw);
		p->st.run_ns[cb] += now_ns() - t0;
		p->st.runs++;
		if (!e && raw != (__s32)chunk)
			e = -EIO;
		if (e && !first_err)
			first_err = e;
		for (k = 0; k < chunk; k++)
			account(p, cb, src + (i + k) * len, e ? 0 : ret[k], e, &a[i + k]);
	}
	return first_err;
}
