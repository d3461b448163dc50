// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* kvmstats.c - KVM binary stats of watched VMs, from the stats fds their VMMs hold. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "kvmstats.h"
#include "procscan.h"


#define NAME_MAX_LEN 64
#define MAX_SELECT 64

/* The default /metrics set: exits by kind, page faults, and how the guest is mapped. */
static const char *const default_set[] = { "exits",    "halt_exits", "io_exits",
					   "mmio_exits", "pf_taken", "pf_fixed",
					   "pages_4k", "pages_2m", "pages_1g",
					   "nx_lpage_splits" };

/* What a recording carries on every tick beside the /metrics set (docs/recording-format.md). */
static const char *const recorded_vcpu[] = { "exits", "pf_taken", "pf_fixed", "halt_exits",
					     "halt_wait_ns" };
static const char *const recorded_vm[] = { "pages_4k", "pages_2m", "pages_1g" };

#define NMIX 3 /* pages_4k, pages_2m, pages_1g: recorded_vm's order */

struct desc {
	char name[NAME_MAX_LEN];
	__u32 flags;
	__s16 exponent;
	__u16 size;   /* values (u64 each) */
	__u32 offset; /* bytes into the data block */
	bool exported; /* replayed: the recorder's /metrics set had it */
};

/* A stat's identity in the records a recording holds: a DESC names it, samples use the id. */
struct stat_id {
	char name[NAME_MAX_LEN];
	__u32 flags;
	__s32 exponent;
	__u8 scope; /* 0 the VM's fd, 1 a vCPU's */
	bool exported;
	bool used;  /* in this tick's samples */
};

/* One stats fd: a VM's or one vCPU's. */
struct src {
	int fd;      /* our copy */
	int owner_fd; /* its number in the VMM, to know it again */
	int vcpu;    /* -1 for the VM's own */
	struct desc *d;
	__u32 nd;
	__u32 data_offset;
	size_t data_len;
	__u64 *data;
	bool seen;
	bool nd_valid; /* data holds a read (or replayed values) */
};

struct vm {
	__u32 pid;
	struct src *s;
	size_t n;
	bool seen;
	bool gone;           /* replayed: its VM_EXIT came; kept for the report */
	__u64 samples;       /* replayed: KVM_STAT records */
	__u64 first_ns, last_ns;
	struct kvmstats_mix mix[NMIX];
};

struct kvmstats {
	/* SEL_RECORDED: fed from a recording's records, exporting what the recorder exported */
	enum { SEL_NONE, SEL_DEFAULT, SEL_ALL, SEL_LIST, SEL_RECORDED } sel;
	char *list[MAX_SELECT];
	size_t nlist;
	struct vm *vms;
	size_t nvms;
	/* the families of the last update, rebuilt each time */
	struct prom_family *fams;
	size_t nfams, cap_fams;
	__u64 fds_read, errors; /* as the last refresh left them */
	int last_errno;
	/* what kvmstats__counts() reports: copied at publish, since a scrape reads them from
	 * another thread while a refresh runs unlocked */
	__u64 pub_fds_read, pub_errors;
	int pub_errno;
	struct stat_id *ids;
	size_t nids;
	bool dirty;       /* replayed records since the families were built */
	__u64 bad_records; /* replayed: samples of an id no DESC named, malformed DESCs */
};

int kvmstats__new(struct kvmstats **out, const char *select, char *err, size_t errlen)
{
	struct kvmstats *k = calloc(1, sizeof(*k));
	char *copy, *tok, *save = NULL;

	*out = NULL;
	if (!k)
		return -ENOMEM;
	if (!select || !strcmp(select, "default")) {
		k->sel = SEL_DEFAULT;
	} else if (!strcmp(select, "all")) {
		k->sel = SEL_ALL;
	} else if (!strcmp(select, "none")) {
		k->sel = SEL_NONE;
	} else {
		k->sel = SEL_LIST;
		copy = strdup(select);
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (k->nlist == MAX_SELECT || strlen(tok) >= NAME_MAX_LEN ||
			    strspn(tok, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(tok)) {
				snprintf(err, errlen, "--kvm-stats: '%s' is not a stat name (lower "
					 "case, digits, _; at most %d names)", tok, MAX_SELECT);
				free(copy);
				kvmstats__free(k);
				return -EINVAL;
			}
			k->list[k->nlist++] = strdup(tok);
		}
		free(copy);
		if (!k->nlist) {
			snprintf(err, errlen, "--kvm-stats: default, all, none or NAME[,NAME...]");
			kvmstats__free(k);
			return -EINVAL;
		}
	}
	*out = k;
	return 0;
}

static void src_close(struct src *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->d);
	free(s->data);
}

static void vm_close(struct vm *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		src_close(&v->s[i]);
	free(v->s);
}

static void fams_clear(struct kvmstats *k)
{
	size_t i;

	for (i = 0; i < k->nfams; i++)
		free(k->fams[i].samples);
	k->nfams = 0;
}

void kvmstats__free(struct kvmstats *k)
{
	size_t i;

	if (!k)
		return;
	for (i = 0; i < k->nvms; i++)
		vm_close(&k->vms[i]);
	free(k->vms);
	for (i = 0; i < k->nlist; i++)
		free(k->list[i]);
	fams_clear(k);
	free(k->fams);
	free(k->ids);
	free(k);
}

bool kvmstats__enabled(const struct kvmstats *k)
{
	return k && k->sel != SEL_NONE;
}

/* Header and descriptors of a stats fd, once. */
static int src_schema(struct src *s)
{
	struct kvm_stats_header h;
	size_t dsz, i;
	char *buf;

	if (pread(s->fd, &h, sizeof(h), 0) != sizeof(h))
		return -EIO;
	if (h.name_size == 0 || h.name_size > 4096 || h.num_desc > 4096)
		return -EPROTO;
	dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	buf = malloc(dsz * h.num_desc);
	s->d = calloc(h.num_desc ? h.num_desc : 1, sizeof(*s->d));
	if (!buf || !s->d) {
		free(buf);
		return -ENOMEM;
	}
	if (pread(s->fd, buf, dsz * h.num_desc, h.desc_offset) != (ssize_t)(dsz * h.num_desc)) {
		free(buf);
		return -EIO;
	}
	s->data_len = 0;
	for (i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *kd = (struct kvm_stats_desc *)(buf + i * dsz);
		struct desc *d = &s->d[i];
		size_t end;

		snprintf(d->name, sizeof(d->name), "%.*s", (int)h.name_size, kd->name);
		d->flags = kd->flags;
		d->exponent = kd->exponent;
		d->size = kd->size;
		d->offset = kd->offset;
		end = (size_t)kd->offset + (size_t)kd->size * sizeof(__u64);
		if (end > s->data_len)
			s->data_len = end;
	}
	free(buf);
	s->nd = h.num_desc;
	s->data_offset = h.data_offset;
	s->data = calloc(1, s->data_len ? s->data_len : 8);
	return s->data ? 0 : -ENOMEM;
}

static int src_read(struct src *s)
{
	return pread(s->fd, s->data, s->data_len, s->data_offset) == (ssize_t)s->data_len ? 0 :
											   -EIO;
}

static struct vm *vm_find(struct kvmstats *k, __u32 pid)
{
	size_t i;

	for (i = 0; i < k->nvms; i++)
		if (k->vms[i].pid == pid)
			return &k->vms[i];
	return NULL;
}

/* Look for stats fds in pid's fd table; copy the ones not held yet. */
static void vm_discover(struct kvmstats *k, struct vm *v)
{
	char dir[64], path[96], link[128];
	struct dirent *de;
	int pidfd = -1;
	size_t i;
	DIR *d;

	for (i = 0; i < v->n; i++)
		v->s[i].seen = false;
	snprintf(dir, sizeof(dir), "/proc/%u/fd", v->pid);
	d = opendir(dir);
	if (!d) {
		if (errno != ENOENT) {
			k->errors++;
			k->last_errno = errno;
		}
		return;
	}
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name), vcpu = -1, copy;
		struct src *s = NULL, *ns;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (!strcmp(link, "anon_inode:kvm-vm-stats"))
			vcpu = -1;
		else if (sscanf(link, "anon_inode:kvm-vcpu-stats:%d", &vcpu) != 1)
			continue;
		for (i = 0; i < v->n; i++)
			if (v->s[i].owner_fd == fd && v->s[i].vcpu == vcpu)
				s = &v->s[i];
		if (s) {
			s->seen = true;
			continue;
		}
		if (pidfd < 0)
			pidfd = syscall(SYS_pidfd_open, v->pid, 0);
		copy = pidfd >= 0 ? syscall(SYS_pidfd_getfd, pidfd, fd, 0) : -1;
		if (copy < 0) {
			k->errors++;
			k->last_errno = errno;
			continue;
		}
		ns = realloc(v->s, (v->n + 1) * sizeof(*ns));
		if (!ns) {
			close(copy);
			continue;
		}
		v->s = ns;
		s = &v->s[v->n];
		*s = (struct src){ .fd = copy, .owner_fd = fd, .vcpu = vcpu, .seen = true };
		if (src_schema(s)) {
			k->errors++;
			src_close(s);
			continue;
		}
		v->n++;
	}
	closedir(d);
	if (pidfd >= 0)
		close(pidfd);
	/* an fd the VMM closed (a vCPU gone, a stats fd let go) is let go too */
	for (i = 0; i < v->n;) {
		if (!v->s[i].seen) {
			src_close(&v->s[i]);
			v->s[i] = v->s[--v->n];
		} else {
			i++;
		}
	}
}

int kvmstats__read_fd(int fd, const char *const *names, __u64 *vals, size_t n)
{
	struct src s = { .fd = fd };
	size_t i, found = 0;
	__u32 j;
	int e;

	e = src_schema(&s);
	if (!e)
		e = src_read(&s);
	for (i = 0; !e && i < n; i++) {
		vals[i] = 0;
		for (j = 0; j < s.nd; j++)
			if (s.d[j].size == 1 && !strcmp(s.d[j].name, names[i])) {
				vals[i] = s.data[s.d[j].offset / 8];
				found++;
			}
	}
	free(s.d);
	free(s.data);
	return e ? e : (int)found;
}

static bool selected(const struct kvmstats *k, const char *name)
{
	size_t i;

	switch (k->sel) {
	case SEL_NONE:
	case SEL_RECORDED:
		return false;
	case SEL_ALL:
		return true;
	case SEL_DEFAULT:
		for (i = 0; i < sizeof(default_set) / sizeof(default_set[0]); i++)
			if (!strcmp(default_set[i], name))
				return true;
		return false;
	case SEL_LIST:
		for (i = 0; i < k->nlist; i++)
			if (!strcmp(k->list[i], name))
				return true;
		return false;
	}
	return false;
}

/* The value of a scalar stat in the descriptor's unit, and whether it is a float. */
static double scaled(const struct desc *d, __u64 raw, bool *is_float)
{
	int base = (d->flags & KVM_STATS_BASE_MASK) == KVM_STATS_BASE_POW2 ? 2 : 10;

	*is_float = d->exponent != 0;
	return d->exponent ? (double)raw * pow(base, d->exponent) : (double)raw;
}

static void family_name(const struct desc *d, char *buf, size_t len)
{
	char base[NAME_MAX_LEN];
	size_t n;
	bool cumulative = (d->flags & KVM_STATS_TYPE_MASK) == KVM_STATS_TYPE_CUMULATIVE;
	bool seconds = (d->flags & KVM_STATS_UNIT_MASK) == KVM_STATS_UNIT_SECONDS;

	snprintf(base, sizeof(base), "%s", d->name);
	n = strlen(base);
	if (seconds && n > 3 && !strcmp(base + n - 3, "_ns"))
		base[n - 3] = 0;
	snprintf(buf, len, "gmem_kvm_%s%s%s", base, seconds ? "_seconds" : "",
		 cumulative ? "_total" : "");
}

static struct prom_family *fam_get(struct kvmstats *k, const struct desc *d, bool vcpu)
{
	char name[128];
	size_t i;

	family_name(d, name, sizeof(name));
	for (i = 0; i < k->nfams; i++)
		if (!strcmp(k->fams[i].name, name))
			return &k->fams[i];
	if (k->nfams == k->cap_fams) {
		size_t cap = k->cap_fams ? k->cap_fams * 2 : 16;
		struct prom_family *nf = realloc(k->fams, cap * sizeof(*nf));

		if (!nf)
			return NULL;
		k->fams = nf;
		k->cap_fams = cap;
	}
	k->fams[k->nfams] = (struct prom_family){
		.type = (d->flags & KVM_STATS_TYPE_MASK) == KVM_STATS_TYPE_CUMULATIVE ?
				PROM_STAT_COUNTER : PROM_STAT_GAUGE,
		.help = vcpu ? "KVM's binary stat of this name, summed over the VM's vCPUs "
			       "(KVM_GET_STATS_FD, from the stats fds the VMM holds)." :
			       "KVM's binary stat of this name for the VM (KVM_GET_STATS_FD, from "
			       "the VM stats fd the VMM holds).",
	};
	snprintf(k->fams[k->nfams].name, sizeof(k->fams[k->nfams].name), "%s", name);
	return &k->fams[k->nfams++];
}

static void fam_add(struct prom_family *f, __u32 pid, double v, bool is_float)
{
	struct prom_sample *ns, *last = f->n ? &f->samples[f->n - 1] : NULL;

	/* kvmstats__update reads one VM's fds together, so its sample is the newest one */
	if (last && last->vm == pid) {
		last->d += v;
		last->u += (__u64)v;
		return;
	}
	ns = realloc(f->samples, (f->n + 1) * sizeof(*ns));
	if (!ns)
		return;
	f->samples = ns;
	f->samples[f->n++] = (struct prom_sample){ .vm = pid, .is_float = is_float,
						   .u = (__u64)v, .d = v };
}

/* Whether a stat is in the /metrics set: the selection, or (replayed) the recorder's. */
static bool exported(const struct kvmstats *k, const struct desc *d)
{
	return k->sel == SEL_RECORDED ? d->exported : selected(k, d->name);
}

static bool scalar(const struct desc *d)
{
	/* histograms stay in the JSON: their buckets are not Prometheus's */
	return (d->flags & KVM_STATS_TYPE_MASK) <= KVM_STATS_TYPE_PEAK && d->size == 1;
}

/* The families of what was last read (or replayed), vCPU stats summed per VM. */
static void build_families(struct kvmstats *k)
{
	size_t i, j, s;

	fams_clear(k);
	for (i = 0; i < k->nvms; i++) {
		struct vm *v = &k->vms[i];

		if (v->gone)
			continue;
		for (s = 0; s < v->n; s++) {
			struct src *src = &v->s[s];

			if (!src->nd_valid)
				continue;
			for (j = 0; j < src->nd; j++) {
				const struct desc *d = &src->d[j];
				struct prom_family *f;
				bool fl;
				double val;

				if (!scalar(d) || !exported(k, d))
					continue;
				val = scaled(d, src->data[d->offset / 8], &fl);
				f = fam_get(k, d, src->vcpu >= 0);
				if (f)
					fam_add(f, v->pid, val, fl);
			}
		}
	}
	k->dirty = false;
}

int kvmstats__refresh(struct kvmstats *k, const __u32 *pids, size_t n)
{
	size_t i, s, read = 0;

	if (!kvmstats__enabled(k))
		return 0;
	for (i = 0; i < k->nvms; i++)
		k->vms[i].seen = false;
	for (i = 0; i < n; i++) {
		struct vm *v = vm_find(k, pids[i]);

		if (!v) {
			struct vm *nv = realloc(k->vms, (k->nvms + 1) * sizeof(*nv));

			if (!nv)
				continue;
			k->vms = nv;
			v = &k->vms[k->nvms++];
			*v = (struct vm){ .pid = pids[i] };
		}
		v->seen = true;
		vm_discover(k, v);
	}
	for (i = 0; i < k->nvms;) {
		if (!k->vms[i].seen) {
			vm_close(&k->vms[i]);
			k->vms[i] = k->vms[--k->nvms];
		} else {
			i++;
		}
	}
	for (i = 0; i < k->nvms; i++) {
		struct vm *v = &k->vms[i];

		for (s = 0; s < v->n; s++) {
			if (src_read(&v->s[s])) {
				v->s[s].nd_valid = false;
				k->errors++;
				continue;
			}
			v->s[s].nd_valid = true;
			read++;
		}
	}
	k->fds_read += read;
	return (int)read;
}

void kvmstats__publish(struct kvmstats *k)
{
	if (!kvmstats__enabled(k))
		return;
	build_families(k);
	k->pub_fds_read = k->fds_read;
	k->pub_errors = k->errors;
	k->pub_errno = k->last_errno;
}

int kvmstats__update(struct kvmstats *k, const __u32 *pids, size_t n)
{
	int read = kvmstats__refresh(k, pids, n);

	kvmstats__publish(k);
	return read;
}

void kvmstats__families(struct kvmstats *k, const struct prom_family **fams, size_t *n)
{
	if (k && k->dirty)
		build_families(k);
	*fams = k ? k->fams : NULL;
	*n = k ? k->nfams : 0;
}

static json_t *src_json(const struct src *s)
{
	json_t *o = json_object();
	__u32 j, b;

	for (j = 0; o && j < s->nd; j++) {
		const struct desc *d = &s->d[j];
		const __u64 *v = &s->data[d->offset / 8];

		if (d->size == 1) {
			json_object_set_new(o, d->name, json_integer((json_int_t)v[0]));
		} else {
			json_t *a = json_array();

			for (b = 0; a && b < d->size; b++)
				json_array_append_new(a, json_integer((json_int_t)v[b]));
			json_object_set_new(o, d->name, a);
		}
	}
	return o;
}

json_t *kvmstats__json(const struct kvmstats *k)
{
	json_t *arr = json_array();
	size_t i, s;

	for (i = 0; k && arr && i < k->nvms; i++) {
		const struct vm *v = &k->vms[i];
		json_t *o, *vcpus;

		if (!v->n || v->gone)
			continue; /* its VMM holds no stats fds: nothing to say, not zeros */
		o = json_pack("{s:I}", "vm", (json_int_t)v->pid);
		vcpus = json_array();

		for (s = 0; o && vcpus && s < v->n; s++) {
			if (v->s[s].vcpu < 0)
				json_object_set_new(o, "vm_stats", src_json(&v->s[s]));
			else
				json_array_append_new(vcpus, json_pack("{s:i, s:o}", "vcpu",
								       v->s[s].vcpu, "stats",
								       src_json(&v->s[s])));
		}
		json_object_set_new(o, "vcpus", vcpus);
		json_array_append_new(arr, o);
	}
	return arr;
}

void kvmstats__counts(const struct kvmstats *k, __u64 *fds, __u64 *errors, int *last_errno)
{
	*fds = k ? k->pub_fds_read : 0;
	*errors = k ? k->pub_errors : 0;
	*last_errno = k ? k->pub_errno : 0;
}

/* ---- recordings -------------------------------------------------------------------------- */

#define MAX_IDS 4096 /* stat ids a replay takes: KVM has some 60 stats */
#define NAME_PART 24 /* name bytes per DESC record: ino, a, b */
#define NAME_PARTS 2 /* KVM's names are at most 48 bytes (KVM_STATS_NAME_SIZE) */

void kvmstats__pack_name(struct gmem_event *e, const char *name, unsigned int part)
{
	__u64 *w[3] = { &e->ino, &e->a, &e->b };
	size_t len = strlen(name), i;

	e->ino = e->a = e->b = 0;
	e->to_order = part;
	for (i = 0; i < NAME_PART && part * NAME_PART + i < len; i++)
		*w[i / 8] |= (__u64)(unsigned char)name[part * NAME_PART + i] << (8 * (i % 8));
}

bool kvmstats__unpack_name(const struct gmem_event *e, char *name, size_t len)
{
	const __u64 w[3] = { e->ino, e->a, e->b };
	size_t off = (size_t)e->to_order * NAME_PART, i;

	if (e->to_order >= NAME_PARTS || off + NAME_PART >= len)
		return false;
	for (i = 0; i < NAME_PART; i++)
		name[off + i] = (char)(w[i / 8] >> (8 * (i % 8)));
	name[len - 1] = 0;
	return true;
}

bool kvmstats__desc_name(const struct gmem_event *e, char *buf, size_t len)
{
	char name[NAME_PART * NAME_PARTS + 1] = "";
	const char *part;
	size_t i;

	if (!kvmstats__unpack_name(e, name, sizeof(name)))
		return false;
	part = name + (size_t)e->to_order * NAME_PART;
	for (i = 0; part[i]; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_", part[i]))
			return false;
	snprintf(buf, len, "%s", part);
	return i > 0;
}

static bool listed(const char *const *list, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(list[i], name))
			return true;
	return false;
}

#define NLIST(a) (sizeof(a) / sizeof((a)[0]))

static bool recorded(const struct kvmstats *k, const struct desc *d, bool vcpu)
{
	if (!scalar(d))
		return false;
	if (selected(k, d->name))
		return true;
	return vcpu ? listed(recorded_vcpu, NLIST(recorded_vcpu), d->name) :
		      listed(recorded_vm, NLIST(recorded_vm), d->name);
}

/* The id of a stat: the same name, scope and descriptor keep their id for k's lifetime. */
static int id_get(struct kvmstats *k, const char *name, __u32 flags, __s32 exponent, __u8 scope)
{
	struct stat_id *ni;
	size_t i;

	for (i = 0; i < k->nids; i++)
		if (k->ids[i].scope == scope && k->ids[i].flags == flags &&
		    k->ids[i].exponent == exponent && !strcmp(k->ids[i].name, name))
			return (int)i;
	if (k->nids == MAX_IDS)
		return -ENOSPC;
	ni = realloc(k->ids, (k->nids + 1) * sizeof(*ni));
	if (!ni)
		return -ENOMEM;
	k->ids = ni;
	ni = &k->ids[k->nids];
	*ni = (struct stat_id){ .flags = flags, .exponent = exponent, .scope = scope };
	snprintf(ni->name, sizeof(ni->name), "%s", name);
	return (int)k->nids++;
}

size_t kvmstats__emit(struct kvmstats *k, __u64 ts_ns, kvmstats_emit_fn cb, void *ctx)
{
	struct gmem_event *recs = NULL, *nr;
	size_t i, s, j, n = 0, cap = 0, out = 0;

	if (!kvmstats__enabled(k) || k->sel == SEL_RECORDED)
		return 0;
	for (i = 0; i < k->nids; i++)
		k->ids[i].used = false;
	for (i = 0; i < k->nvms; i++) {
		const struct vm *v = &k->vms[i];

		for (s = 0; s < v->n; s++) {
			const struct src *src = &v->s[s];

			for (j = 0; src->nd_valid && j < src->nd; j++) {
				const struct desc *d = &src->d[j];
				int id;

				if (!recorded(k, d, src->vcpu >= 0) ||
				    strlen(d->name) > NAME_PART * NAME_PARTS)
					continue;
				id = id_get(k, d->name, d->flags, d->exponent, src->vcpu >= 0);
				if (id < 0)
					continue;
				k->ids[id].used = true;
				k->ids[id].exported = selected(k, d->name);
				if (n == cap) {
					cap = cap ? cap * 2 : 64;
					nr = realloc(recs, cap * sizeof(*nr));
					if (!nr)
						goto out;
					recs = nr;
				}
				recs[n++] = (struct gmem_event){
					.ts_ns = ts_ns,
					.kind = GMEM_EV_KVM_STAT,
					.vm = v->pid,
					.sub = (__u32)id,
					.a = src->data[d->offset / 8],
					.b = src->vcpu >= 0 ? (__u64)src->vcpu : 0,
					.order = src->vcpu >= 0,
					.flags = GMEM_EVF_SYNTH,
				};
			}
		}
	}
	/* every tick names its ids: a file cut by rotation or a late subscriber reads alone */
	for (i = 0; i < k->nids; i++) {
		const struct stat_id *id = &k->ids[i];
		unsigned int part;

		if (!id->used)
			continue;
		for (part = 0; part == 0 || part * NAME_PART < strlen(id->name); part++) {
			struct gmem_event e = {
				.ts_ns = ts_ns,
				.kind = GMEM_EV_KVM_STAT_DESC,
				.sub = (__u32)i,
				.order = id->scope,
				.result = (__s32)id->flags,
				.c = (__u64)(__s64)id->exponent,
				.flags = GMEM_EVF_SYNTH | (id->exported ? GMEM_EVF_EXPORTED : 0),
			};

			kvmstats__pack_name(&e, id->name, part);
			cb(ctx, &e);
			out++;
		}
	}
	for (i = 0; i < n; i++)
		cb(ctx, &recs[i]);
	out += n;
out:
	free(recs);
	return out;
}

int kvmstats__new_replay(struct kvmstats **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->sel = SEL_RECORDED;
	return 0;
}

static struct vm *vm_get(struct kvmstats *k, __u32 pid)
{
	struct vm *v = vm_find(k, pid), *nv;

	if (v)
		return v;
	nv = realloc(k->vms, (k->nvms + 1) * sizeof(*nv));
	if (!nv)
		return NULL;
	k->vms = nv;
	v = &k->vms[k->nvms++];
	*v = (struct vm){ .pid = pid };
	return v;
}

/* The replayed source of a VM's stats: its VM fd's (vcpu -1) or one vCPU's. */
static struct src *src_get(struct vm *v, int vcpu)
{
	struct src *ns;
	size_t i;

	for (i = 0; i < v->n; i++)
		if (v->s[i].vcpu == vcpu)
			return &v->s[i];
	ns = realloc(v->s, (v->n + 1) * sizeof(*ns));
	if (!ns)
		return NULL;
	v->s = ns;
	ns = &v->s[v->n++];
	*ns = (struct src){ .fd = -1, .owner_fd = -1, .vcpu = vcpu, .nd_valid = true };
	return ns;
}

/* The slot of a stat in a replayed source, added on its first sample. */
static __u64 *slot_get(struct src *s, const struct stat_id *id)
{
	struct desc *nd;
	__u64 *ndata;
	__u32 j;

	for (j = 0; j < s->nd; j++)
		if (!strcmp(s->d[j].name, id->name))
			break;
	if (j == s->nd) {
		nd = realloc(s->d, (s->nd + 1) * sizeof(*nd));
		if (!nd)
			return NULL;
		s->d = nd;
		ndata = realloc(s->data, (s->nd + 1) * sizeof(*ndata));
		if (!ndata)
			return NULL;
		s->data = ndata;
		s->d[j] = (struct desc){ .size = 1, .offset = j * 8 };
		s->data[j] = 0;
		s->nd++;
		s->data_len = s->nd * 8;
	}
	/* the latest DESC of the id decides: a VMM that restarts may bring another kernel's */
	snprintf(s->d[j].name, sizeof(s->d[j].name), "%s", id->name);
	s->d[j].flags = id->flags;
	s->d[j].exponent = (__s16)id->exponent;
	s->d[j].exported = id->exported;
	return &s->data[j];
}

static void mix_add(struct vm *v, const char *name, __u64 val)
{
	static const char *const names[NMIX] = KVMSTATS_MIX_NAMES;
	size_t i;

	for (i = 0; i < NMIX; i++) {
		struct kvmstats_mix *m = &v->mix[i];

		if (strcmp(names[i], name))
			continue;
		if (!m->n++)
			m->first = m->min = m->max = val;
		m->last = val;
		if (val < m->min)
			m->min = val;
		if (val > m->max)
			m->max = val;
	}
}

static void apply_desc(struct kvmstats *k, const struct gmem_event *e)
{
	struct stat_id *id;
	char name[NAME_MAX_LEN];

	if (e->sub >= MAX_IDS || e->order > 1 || e->to_order >= NAME_PARTS) {
		k->bad_records++;
		return;
	}
	while (k->nids <= e->sub) {
		struct stat_id *ni = realloc(k->ids, (k->nids + 1) * sizeof(*ni));

		if (!ni)
			return;
		k->ids = ni;
		ni[k->nids++] = (struct stat_id){};
	}
	id = &k->ids[e->sub];
	memcpy(name, id->name, sizeof(name));
	if (!e->to_order)
		memset(name, 0, sizeof(name));
	if (!kvmstats__unpack_name(e, name, sizeof(name)) || !name[0]) {
		k->bad_records++;
		return;
	}
	memcpy(id->name, name, sizeof(name));
	id->flags = (__u32)e->result;
	if ((__s64)e->c < INT16_MIN || (__s64)e->c > INT16_MAX) {
		k->bad_records++;
		return;
	}
	id->exponent = (__s32)(__s64)e->c;
	id->scope = e->order;
	id->exported = e->flags & GMEM_EVF_EXPORTED;
	id->used = true; /* named: samples may use it */
}

void kvmstats__apply(struct kvmstats *k, const struct gmem_event *e)
{
	const struct stat_id *id;
	struct vm *v;
	struct src *s;
	__u64 *slot;

	if (!k || k->sel != SEL_RECORDED)
		return;
	if (e->kind == GMEM_EV_KVM_STAT_DESC) {
		apply_desc(k, e);
		return;
	}
	if (e->kind == GMEM_EV_VM_EXIT) {
		v = vm_find(k, e->vm);
		if (v) {
			v->gone = true;
			k->dirty = true;
		}
		return;
	}
	if (e->kind != GMEM_EV_KVM_STAT)
		return;
	if (e->sub >= k->nids || !k->ids[e->sub].used || !e->vm ||
	    e->order != k->ids[e->sub].scope || (e->order && e->b > INT32_MAX)) {
		k->bad_records++;
		return;
	}
	id = &k->ids[e->sub];
	v = vm_get(k, e->vm);
	s = v ? src_get(v, id->scope ? (int)e->b : -1) : NULL;
	slot = s ? slot_get(s, id) : NULL;
	if (!slot)
		return;
	*slot = e->a;
	if (!v->samples++)
		v->first_ns = e->ts_ns;
	v->last_ns = e->ts_ns;
	v->gone = false; /* a pid reused by a new VMM */
	if (!id->scope)
		mix_add(v, id->name, e->a);
	k->dirty = true;
}

__u64 kvmstats__bad_records(const struct kvmstats *k)
{
	return k ? k->bad_records : 0;
}

const struct kvmstats_mix *kvmstats__mix(const struct kvmstats *k, __u32 vm)
{
	const struct vm *v = k ? vm_find((struct kvmstats *)k, vm) : NULL;
	size_t i;

	for (i = 0; v && i < NMIX; i++)
		if (v->mix[i].n)
			return v->mix;
	return NULL;
}

json_t *kvmstats__report_json(const struct kvmstats *k)
{
	static const char *const mix_names[NMIX] = KVMSTATS_MIX_NAMES;
	json_t *arr = json_array();
	size_t i, s, j;

	for (i = 0; k && arr && i < k->nvms; i++) {
		const struct vm *v = &k->vms[i];
		json_t *vm_stats = json_object(), *totals = json_object(), *vcpus = json_array();
		json_t *mix = json_object();

		for (s = 0; s < v->n; s++) {
			const struct src *src = &v->s[s];
			json_t *one = src->vcpu >= 0 ? json_object() : NULL;

			for (j = 0; j < src->nd; j++) {
				const struct desc *d = &src->d[j];
				__u64 val = src->data[d->offset / 8];
				json_t *sum;

				if (!scalar(d))
					continue;
				if (src->vcpu < 0) {
					json_object_set_new(vm_stats, d->name, json_integer(val));
					continue;
				}
				json_object_set_new(one, d->name, json_integer(val));
				if ((d->flags & KVM_STATS_TYPE_MASK) != KVM_STATS_TYPE_CUMULATIVE)
					continue;
				sum = json_object_get(totals, d->name);
				json_object_set_new(totals, d->name,
						    json_integer(json_integer_value(sum) + val));
			}
			if (one)
				json_array_append_new(vcpus, json_pack("{s:i, s:o}", "vcpu",
								       src->vcpu, "stats", one));
		}
		for (j = 0; j < NMIX; j++)
			if (v->mix[j].n)
				json_object_set_new(mix, mix_names[j],
						    json_pack("{s:I, s:I, s:I, s:I, s:I}", "first",
							      (json_int_t)v->mix[j].first, "last",
							      (json_int_t)v->mix[j].last, "min",
							      (json_int_t)v->mix[j].min, "max",
							      (json_int_t)v->mix[j].max, "samples",
							      (json_int_t)v->mix[j].n));
		json_array_append_new(arr, json_pack("{s:I, s:b, s:I, s:I, s:I, s:o, s:o, s:o, s:o}",
						     "vm", (json_int_t)v->pid, "gone", v->gone,
						     "samples", (json_int_t)v->samples,
						     "first_ns", (json_int_t)v->first_ns, "last_ns",
						     (json_int_t)v->last_ns, "vm_stats", vm_stats,
						     "vcpu_totals", totals, "vcpus", vcpus, "mapping",
						     mix));
	}
	return arr;
}

const char *kvmstats__type_name(__u32 flags)
{
	switch (flags & KVM_STATS_TYPE_MASK) {
	case KVM_STATS_TYPE_CUMULATIVE: return "cumulative";
	case KVM_STATS_TYPE_INSTANT: return "instant";
	case KVM_STATS_TYPE_PEAK: return "peak";
	case KVM_STATS_TYPE_LINEAR_HIST: return "linear_hist";
	case KVM_STATS_TYPE_LOG_HIST: return "log_hist";
	default: return "?";
	}
}

const char *kvmstats__unit_name(__u32 flags)
{
	switch (flags & KVM_STATS_UNIT_MASK) {
	case KVM_STATS_UNIT_NONE: return "none";
	case KVM_STATS_UNIT_BYTES: return "bytes";
	case KVM_STATS_UNIT_SECONDS: return "seconds";
	case KVM_STATS_UNIT_CYCLES: return "cycles";
	case KVM_STATS_UNIT_BOOLEAN: return "boolean";
	default: return "?";
	}
}

unsigned int kvmstats__base(__u32 flags)
{
	return (flags & KVM_STATS_BASE_MASK) == KVM_STATS_BASE_POW2 ? 2 : 10;
}

int kvmstats__probe(char *why, size_t len)
{
	struct kvm_stats_header h;
	int kvm, vm = -1, fd = -1, err;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		err = -errno;
		snprintf(why, len, "cannot open /dev/kvm: %s", strerror(-err));
		return err;
	}
	/* the real question: does a VM of this kernel hand out a stats fd? */
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		err = -errno;
		snprintf(why, len, "cannot create a test VM: %s", strerror(-err));
		goto cleanup;
	}
	fd = ioctl(vm, KVM_GET_STATS_FD, NULL);
	if (fd < 0) {
		err = -errno;
		snprintf(why, len, "KVM_GET_STATS_FD on a test VM: %s (a kernel before 5.14, or "
			 "one that refuses it: no gmem_kvm_* series)", strerror(-err));
		goto cleanup;
	}
	if (pread(fd, &h, sizeof(h), 0) != sizeof(h)) {
		err = -EIO;
		snprintf(why, len, "KVM_GET_STATS_FD on a test VM: its header does not read");
		goto cleanup;
	}
	err = (int)h.num_desc;
	snprintf(why, len, "KVM_GET_STATS_FD on a test VM: %u VM stats", h.num_desc);
cleanup:
	if (fd >= 0)
		close(fd);
	if (vm >= 0)
		close(vm);
	close(kvm);
	return err;
}
