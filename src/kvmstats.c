// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* kvmstats.c - KVM binary stats of watched VMs, from the stats fds their VMMs hold. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct desc {
	char name[NAME_MAX_LEN];
	__u32 flags;
	__s16 exponent;
	__u16 size;   /* values (u64 each) */
	__u32 offset; /* bytes into the data block */
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
};

struct vm {
	__u32 pid;
	struct src *s;
	size_t n;
	bool seen;
};

struct kvmstats {
	enum { SEL_NONE, SEL_DEFAULT, SEL_ALL, SEL_LIST } sel;
	char *list[MAX_SELECT];
	size_t nlist;
	struct vm *vms;
	size_t nvms;
	/* the families of the last update, rebuilt each time */
	struct prom_family *fams;
	size_t nfams, cap_fams;
	__u64 fds_read, errors;
	int last_errno;
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

int kvmstats__update(struct kvmstats *k, const __u32 *pids, size_t n)
{
	size_t i, j, s, read = 0;

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
	fams_clear(k);
	for (i = 0; i < k->nvms; i++) {
		struct vm *v = &k->vms[i];

		for (s = 0; s < v->n; s++) {
			struct src *src = &v->s[s];

			if (src_read(src)) {
				k->errors++;
				continue;
			}
			read++;
			for (j = 0; j < src->nd; j++) {
				const struct desc *d = &src->d[j];
				__u32 type = d->flags & KVM_STATS_TYPE_MASK;
				struct prom_family *f;
				bool fl;
				double val;

				/* histograms stay in the JSON: their buckets are not Prometheus's */
				if (type > KVM_STATS_TYPE_PEAK || d->size != 1 ||
				    !selected(k, d->name))
					continue;
				val = scaled(d, src->data[d->offset / 8], &fl);
				f = fam_get(k, d, src->vcpu >= 0);
				if (f)
					fam_add(f, v->pid, val, fl);
			}
		}
	}
	k->fds_read += read;
	return (int)read;
}

void kvmstats__families(struct kvmstats *k, const struct prom_family **fams, size_t *n)
{
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

		if (!v->n)
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
	*fds = k ? k->fds_read : 0;
	*errors = k ? k->errors : 0;
	*last_errno = k ? k->last_errno : 0;
}
