// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * export.c - text, CSV, JSON lines and Perfetto renderings of records (see export.h).
 *
 * The Perfetto exporter runs the records through a model of its own so that a free reported
 * with vm 0 lands on its file's VM, exactly as the model counts it, and so that "populated
 * bytes" per VM is the model's own number: the populated pages of a file before and after each
 * record give the change, summed per VM.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "kvmstats.h"
#include "model.h"
#include "vmname.h"

/* ---- names ------------------------------------------------------------------------------- */

const char *export__kind_name(const json_t *kinds, unsigned int kind, char *buf, size_t len)
{
	const char *name = model__kind_name(kind);
	const json_t *k;
	size_t i;

	if (kind && strcmp(name, "?"))
		return name;
	json_array_foreach(kinds, i, k) {
		const char *n = json_string_value(json_object_get(k, "name"));

		if (json_integer_value(json_object_get(k, "kind")) == (json_int_t)kind && n &&
		    n[0] && strcmp(n, "?")) {
			snprintf(buf, len, "%s", n);
			return buf;
		}
	}
	snprintf(buf, len, "kind_%u", kind);
	return buf;
}

const char *export__sub_name(unsigned int kind, unsigned int sub)
{
	switch (kind) {
	case GMEM_EV_PAGE_ALLOC:
	case GMEM_EV_FAULT:
		return model__source_name(sub);
	case GMEM_EV_CONV_REQUEST:
	case GMEM_EV_CONV_ATTR:
		return model__dir_name(sub);
	case GMEM_EV_DMAP_REMOVE:
	case GMEM_EV_DMAP_RESTORE:
		return model__owner_name(sub);
	case GMEM_EV_RMP:
		return model__rmp_op_name(sub);
	case GMEM_EV_TDX:
		return model__tdx_op_name(sub);
	default:
		return NULL;
	}
}

static const char *exit_name(__u64 reason)
{
	if (reason == GMEM_KVM_EXIT_HYPERCALL)
		return "hypercall";
	if (reason == GMEM_KVM_EXIT_MEMORY_FAULT)
		return "memory_fault";
	return "?";
}

static const struct {
	__u16 bit;
	const char *name;
} flag_names[] = {
	{ GMEM_EVF_FENTRY, "fentry" },
	{ GMEM_EVF_SYNTH, "synth" },
	{ GMEM_EVF_SCENARIO, "scenario" },
	{ GMEM_EVF_RANGE, "range" },
	{ GMEM_EVF_INFILE, "infile" },
	{ GMEM_EVF_LATE, "late" },
	{ GMEM_EVF_EXPORTED, "exported" },
	{ GMEM_EVF_COUNTED, "counted" },
	{ GMEM_EVF_INPLACE, "inplace" },
};

#define NFLAGS (sizeof(flag_names) / sizeof(flag_names[0]))

/* ---- text -------------------------------------------------------------------------------- */

int export__text(struct strbuf *o, const struct gmem_event *e, __u64 base_ns,
		 const char *kind_name)
{
	const char *sub = export__sub_name(e->kind, e->sub);
	unsigned long long a = e->a, b = e->b, c = e->c, ino = e->ino;
	__u64 rel = e->ts_ns >= base_ns ? e->ts_ns - base_ns : base_ns - e->ts_ns;
	size_t i;

	strbuf__printf(o, "%s%llu.%09llu %-13s vm %-7u tid %-7u", e->ts_ns >= base_ns ? " " : "-",
		       (unsigned long long)(rel / 1000000000ull),
		       (unsigned long long)(rel % 1000000000ull), kind_name, e->vm, e->tid);
	switch (e->kind) {
	case GMEM_EV_FILE_CREATE:
		strbuf__printf(o, " ino=%llu size=%llu flags=%#llx result=%d", ino, a, b,
			       e->result);
		break;
	case GMEM_EV_FILE_RELEASE:
	case GMEM_EV_FD_CLOSE:
		strbuf__printf(o, " ino=%llu", ino);
		break;
	case GMEM_EV_FILE_DISCOVER:
		strbuf__printf(o, " ino=%llu size=%llu populated_pages=%llu flags=%#llx", ino, a, b,
			       c);
		break;
	case GMEM_EV_BIND:
		strbuf__printf(o, " ino=%llu gpa=%#llx size=%llu offset=%llu slot=%u result=%d",
			       ino, a, b, c, e->sub, e->result);
		break;
	case GMEM_EV_UNBIND:
		strbuf__printf(o, " slot=%u result=%d", e->sub, e->result);
		break;
	case GMEM_EV_PAGE_ALLOC:
	case GMEM_EV_PAGE_FREE:
		strbuf__printf(o, " ino=%llu index=%llu pages=%llu order=%u", ino, a, b, e->order);
		if (e->flags & GMEM_EVF_RANGE)
			strbuf__printf(o, " range=[%llu,%llu)", a, c);
		if (e->kind == GMEM_EV_PAGE_ALLOC)
			strbuf__printf(o, " source=%s", sub);
		break;
	case GMEM_EV_PUNCH_HOLE:
	case GMEM_EV_FALLOCATE:
		strbuf__printf(o, " ino=%llu offset=%llu len=%llu result=%d", ino, a, b, e->result);
		if (e->kind == GMEM_EV_PUNCH_HOLE && (e->flags & GMEM_EVF_INFILE))
			strbuf__printf(o, " in_file=%llu", c);
		break;
	case GMEM_EV_FAULT:
		strbuf__printf(o, " ino=%llu index=%llu latency_ns=%llu source=%s result=%d", ino,
			       a, c, sub, e->result);
		break;
	case GMEM_EV_CONV_REQUEST:
		strbuf__printf(o, " gpa=%#llx size=%llu to=%s exit=%s", a, b, sub, exit_name(c));
		break;
	case GMEM_EV_CONV_ATTR:
		if (e->flags & GMEM_EVF_INPLACE)
			strbuf__printf(o, " ino=%llu offset=%#llx", ino, a);
		else
			strbuf__printf(o, " gpa=%#llx", a);
		strbuf__printf(o, " size=%llu to=%s latency_ns=%llu result=%d", b, sub, c,
			       e->result);
		break;
	case GMEM_EV_VCPU_RESUME:
	case GMEM_EV_VM_EXIT:
		break;
	case GMEM_EV_VCPU_THREAD:
		strbuf__printf(o, " vcpu=%llu", a);
		break;
	case GMEM_EV_GFN_INVALIDATE:
		strbuf__printf(o, " gfn=%#llx end=%#llx filter=%llu", a, b, c);
		break;
	case GMEM_EV_DMAP_REMOVE:
	case GMEM_EV_DMAP_RESTORE:
		strbuf__printf(o, " ino=%llu index=%llu pages=%llu owner=%s", ino, a, b, sub);
		break;
	case GMEM_EV_DMAP_SAMPLE:
		strbuf__printf(o, " 4k=%llu 2M=%llu 1G=%llu", a, b, c);
		break;
	case GMEM_EV_RMP:
		strbuf__printf(o, " op=%s pfn=%#llx gpa=%#llx order=%u c=%llu result=%d", sub, a, b,
			       e->order, c, e->result);
		break;
	case GMEM_EV_TDX:
		strbuf__printf(o, " op=%s gpa=%#llx pfn=%#llx order=%u c=%llu", sub, a, b, e->order,
			       c);
		break;
	case GMEM_EV_SPLIT:
	case GMEM_EV_MERGE:
		strbuf__printf(o, " ino=%llu index=%llu order=%u->%u result=%d", ino, a, e->order,
			       e->to_order, e->result);
		break;
	case GMEM_EV_LOST:
		strbuf__printf(o, " lost=%llu", a);
		break;
	case GMEM_EV_KVM_STAT_DESC: {
		char name[40];

		if (!kvmstats__desc_name(e, name, sizeof(name)))
			snprintf(name, sizeof(name), "?");
		strbuf__printf(o, " stat_id=%u %s=%s scope=%s type=%s unit=%s base=%u "
			       "exponent=%d", e->sub, e->to_order ? "stat_part1" : "stat", name,
			       e->order ? "vcpu" : "vm", kvmstats__type_name(e->result),
			       kvmstats__unit_name(e->result),
			       kvmstats__base(e->result), (int)(__s64)e->c);
		break;
	}
	case GMEM_EV_VM_NAME: {
		char name[VMNAME_LEN] = "";

		vmname__unpack(e, name);
		strbuf__printf(o, " part=%u name=%s", e->to_order, name);
		break;
	}
	case GMEM_EV_KVM_STAT:
		if (e->order)
			strbuf__printf(o, " stat_id=%u vcpu=%llu value=%llu", e->sub, b, a);
		else
			strbuf__printf(o, " stat_id=%u value=%llu", e->sub, a);
		break;
	default:
		strbuf__printf(o, " ino=%llu a=%llu b=%llu c=%llu sub=%u order=%u to_order=%u "
			       "result=%d", ino, a, b, c, e->sub, e->order, e->to_order, e->result);
		break;
	}
	for (i = 0; i < NFLAGS; i++)
		if (e->flags & flag_names[i].bit)
			strbuf__printf(o, " [%s]", flag_names[i].name);
	return o->err;
}

/* ---- fields by meaning ------------------------------------------------------------------- */

/*
 * Each kind's fields under the names cat prints (export__text), for CSV's columns and JSON's
 * "fields": one table, so the three agree (tests/unit/test_export.c checks them against cat).
 */
enum fsrc { F_NONE, F_INO, F_A, F_B, F_C, F_SUB, F_SUBNAME, F_RESULT, F_ORDER, F_TO_ORDER,
	    F_EXIT, F_NAME };

struct fspec {
	const char *name;
	enum fsrc src;
	__u32 need_flag; /* only with this record flag (0: always) */
	__u8 need_order; /* only when order != 0 (a vCPU's stat) */
};

#define NFIELDS 7

static const struct fspec fields[GMEM_EV_KIND_MAX][NFIELDS] = {
	[GMEM_EV_FILE_CREATE] = { { "ino", F_INO }, { "size", F_A }, { "file_flags", F_B },
				  { "result", F_RESULT } },
	[GMEM_EV_FILE_RELEASE] = { { "ino", F_INO } },
	[GMEM_EV_FD_CLOSE] = { { "ino", F_INO } },
	[GMEM_EV_FILE_DISCOVER] = { { "ino", F_INO }, { "size", F_A }, { "populated_pages", F_B },
				    { "file_flags", F_C } },
	[GMEM_EV_BIND] = { { "ino", F_INO }, { "gpa", F_A }, { "size", F_B }, { "offset", F_C },
			   { "slot", F_SUB }, { "result", F_RESULT } },
	[GMEM_EV_UNBIND] = { { "slot", F_SUB }, { "result", F_RESULT } },
	[GMEM_EV_PAGE_ALLOC] = { { "ino", F_INO }, { "index", F_A }, { "pages", F_B },
				 { "order", F_ORDER }, { "source", F_SUBNAME },
				 { "range_end", F_C, GMEM_EVF_RANGE } },
	[GMEM_EV_PAGE_FREE] = { { "ino", F_INO }, { "index", F_A }, { "pages", F_B },
				{ "order", F_ORDER }, { "range_end", F_C, GMEM_EVF_RANGE } },
	[GMEM_EV_PUNCH_HOLE] = { { "ino", F_INO }, { "offset", F_A }, { "len", F_B },
				 { "result", F_RESULT }, { "in_file", F_C, GMEM_EVF_INFILE } },
	[GMEM_EV_FALLOCATE] = { { "ino", F_INO }, { "offset", F_A }, { "len", F_B },
				{ "result", F_RESULT } },
	[GMEM_EV_FAULT] = { { "ino", F_INO }, { "index", F_A }, { "latency_ns", F_C },
			    { "source", F_SUBNAME }, { "result", F_RESULT } },
	[GMEM_EV_CONV_REQUEST] = { { "gpa", F_A }, { "size", F_B }, { "to", F_SUBNAME },
				   { "exit", F_EXIT } },
	[GMEM_EV_CONV_ATTR] = { { "gpa", F_A }, { "size", F_B }, { "to", F_SUBNAME },
				{ "latency_ns", F_C }, { "result", F_RESULT } },
	[GMEM_EV_DMAP_REMOVE] = { { "ino", F_INO }, { "index", F_A }, { "pages", F_B },
				  { "owner", F_SUBNAME } },
	[GMEM_EV_DMAP_RESTORE] = { { "ino", F_INO }, { "index", F_A }, { "pages", F_B },
				   { "owner", F_SUBNAME } },
	[GMEM_EV_DMAP_SAMPLE] = { { "4k", F_A }, { "2M", F_B }, { "1G", F_C } },
	[GMEM_EV_RMP] = { { "op", F_SUBNAME }, { "pfn", F_A }, { "gpa", F_B }, { "order", F_ORDER },
			  { "c", F_C }, { "result", F_RESULT } },
	[GMEM_EV_TDX] = { { "op", F_SUBNAME }, { "gpa", F_A }, { "pfn", F_B }, { "order", F_ORDER },
			  { "c", F_C } },
	[GMEM_EV_SPLIT] = { { "ino", F_INO }, { "index", F_A }, { "order", F_ORDER },
			    { "to_order", F_TO_ORDER }, { "result", F_RESULT } },
	[GMEM_EV_MERGE] = { { "ino", F_INO }, { "index", F_A }, { "order", F_ORDER },
			    { "to_order", F_TO_ORDER }, { "result", F_RESULT } },
	[GMEM_EV_LOST] = { { "lost", F_A } },
	[GMEM_EV_KVM_STAT_DESC] = { { "stat_id", F_SUB } },
	[GMEM_EV_KVM_STAT] = { { "stat_id", F_SUB }, { "vcpu", F_B, 0, 1 }, { "value", F_A } },
	[GMEM_EV_VM_NAME] = { { "part", F_TO_ORDER }, { "name", F_NAME } },
	[GMEM_EV_VCPU_THREAD] = { { "vcpu", F_A } },
	[GMEM_EV_GFN_INVALIDATE] = { { "gfn", F_A }, { "end", F_B }, { "filter", F_C } },
};

static bool field_present(const struct fspec *f, const struct gmem_event *e)
{
	return f->name && (!f->need_flag || (e->flags & f->need_flag)) &&
	       (!f->need_order || e->order);
}

/* A field's value: a number, or (sub names, exit reasons) a name; *str set for a name. */
static __u64 field_value(const struct fspec *f, const struct gmem_event *e, const char **str)
{
	*str = NULL;
	switch (f->src) {
	case F_INO: return e->ino;
	case F_A: return e->a;
	case F_B: return e->b;
	case F_C: return e->c;
	case F_SUB: return e->sub;
	case F_ORDER: return e->order;
	case F_TO_ORDER: return e->to_order;
	case F_SUBNAME:
		*str = export__sub_name(e->kind, e->sub);
		if (!*str)
			*str = "?";
		return 0;
	case F_EXIT:
		*str = exit_name(e->c);
		return 0;
	case F_NAME: {
		/* this part's bytes alone; a reader joins the parts */
		static char part[VMNAME_LEN];

		part[0] = 0;
		vmname__unpack(&(struct gmem_event){ .kind = e->kind, .ino = e->ino, .a = e->a,
						     .b = e->b, .c = e->c }, part);
		*str = part;
		return 0;
	}
	case F_RESULT:
	case F_NONE:
		break;
	}
	return 0;
}

/* CSV's columns: every name of the table once, in table order. */
static const char *csv_cols[64];
static size_t ncsv_cols;

static void csv_cols_init(void)
{
	unsigned int k, i;
	size_t j;

	if (ncsv_cols)
		return;
	for (k = 0; k < GMEM_EV_KIND_MAX; k++)
		for (i = 0; i < NFIELDS && fields[k][i].name; i++) {
			for (j = 0; j < ncsv_cols && strcmp(csv_cols[j], fields[k][i].name); j++)
				;
			if (j == ncsv_cols && ncsv_cols < sizeof(csv_cols) / sizeof(csv_cols[0]))
				csv_cols[ncsv_cols++] = fields[k][i].name;
		}
}

static const struct fspec *field_of(const struct gmem_event *e, const char *name)
{
	unsigned int i;

	if (e->kind >= GMEM_EV_KIND_MAX)
		return NULL;
	for (i = 0; i < NFIELDS && fields[e->kind][i].name; i++)
		if (!strcmp(fields[e->kind][i].name, name))
			return field_present(&fields[e->kind][i], e) ? &fields[e->kind][i] : NULL;
	return NULL;
}

/* ---- CSV and JSON lines ------------------------------------------------------------------ */

/* What a failed stdio write says: its errno (ENOSPC on a full disk), EIO when it set none. */
static int io_err(void)
{
	return errno ? -errno : -EIO;
}

int export__csv_header(FILE *f)
{
	size_t j;

	csv_cols_init();
	errno = 0;
	fputs("ts_ns,kind,vm,tid", f);
	for (j = 0; j < ncsv_cols; j++)
		fprintf(f, ",%s", csv_cols[j]);
	/* the record's own flags, by name (file_flags is a file's creation flags) */
	return fputs(",stat,record_flags\n", f) < 0 ? io_err() : 0;
}

int export__csv(FILE *f, const struct gmem_event *e, const char *kind_name)
{
	char name[40];
	int n;

	const char *sep = "";
	size_t i, j;

	csv_cols_init();
	/* a DESC names a stat (its part of the name) */
	name[0] = 0;
	if (e->kind == GMEM_EV_KVM_STAT_DESC)
		kvmstats__desc_name(e, name, sizeof(name));
	/* fields are numbers or names of [a-zA-Z0-9_], but a VM's name may need quoting */
	errno = 0;
	fprintf(f, "%llu,%s,%u,%u", (unsigned long long)e->ts_ns, kind_name, e->vm, e->tid);
	for (j = 0; j < ncsv_cols; j++) {
		const struct fspec *fs = field_of(e, csv_cols[j]);
		const char *str;
		__u64 v;

		fputc(',', f);
		if (!fs)
			continue;
		v = field_value(fs, e, &str);
		if (str && strpbrk(str, ",\"\r\n")) {
			fputc('"', f);
			for (; *str; str++) {
				if (*str == '"')
					fputc('"', f);
				fputc(*str, f);
			}
			fputc('"', f);
		} else if (str)
			fputs(str, f);
		else if (fs->src == F_RESULT)
			fprintf(f, "%d", e->result);
		else
			fprintf(f, "%llu", (unsigned long long)v);
	}
	fprintf(f, ",%s,", name);
	for (i = 0; i < NFLAGS; i++)
		if (e->flags & flag_names[i].bit) {
			fprintf(f, "%s%s", sep, flag_names[i].name);
			sep = "|";
		}
	n = fputc('\n', f);
	return n < 0 ? io_err() : 0;
}

/* json_int_t is signed: values past 2^63 (never a count, only raw fields) go as strings. */
static json_t *ju64(__u64 v)
{
	return v > LLONG_MAX ? json_sprintf("%llu", (unsigned long long)v) :
			       json_integer((json_int_t)v);
}

/* KVM stats records: their fields by meaning, beside the raw ones. */
static void kvm_json(json_t *o, const struct gmem_event *e)
{
	char name[40];

	if (e->kind == GMEM_EV_KVM_STAT_DESC) {
		json_object_set_new(o, "stat_id", json_integer(e->sub));
		if (kvmstats__desc_name(e, name, sizeof(name)))
			json_object_set_new(o, e->to_order ? "stat_part1" : "stat",
					    json_string(name));
		json_object_set_new(o, "scope", json_string(e->order ? "vcpu" : "vm"));
		json_object_set_new(o, "type", json_string(kvmstats__type_name(e->result)));
		json_object_set_new(o, "unit", json_string(kvmstats__unit_name(e->result)));
		json_object_set_new(o, "base", json_integer(kvmstats__base(e->result)));
		json_object_set_new(o, "exponent", json_integer((json_int_t)(__s64)e->c));
		json_object_set_new(o, "exported", json_boolean(e->flags & GMEM_EVF_EXPORTED));
	} else if (e->kind == GMEM_EV_KVM_STAT) {
		json_object_set_new(o, "stat_id", json_integer(e->sub));
		json_object_set_new(o, "scope", json_string(e->order ? "vcpu" : "vm"));
		json_object_set_new(o, "value", ju64(e->a));
		if (e->order)
			json_object_set_new(o, "vcpu", ju64(e->b));
	}
}

json_t *export__fields_json(const struct gmem_event *e)
{
	json_t *o = json_object();
	unsigned int i;

	for (i = 0; e->kind < GMEM_EV_KIND_MAX && i < NFIELDS && fields[e->kind][i].name; i++) {
		const struct fspec *fs = &fields[e->kind][i];
		const char *str;
		__u64 v;

		if (!field_present(fs, e))
			continue;
		v = field_value(fs, e, &str);
		json_object_set_new(o, fs->name, str ? json_string(str) :
					fs->src == F_RESULT ? json_integer(e->result) : ju64(v));
	}
	return o;
}

json_t *export__json(const struct gmem_event *e, const char *kind_name)
{
	const char *sub = export__sub_name(e->kind, e->sub);
	json_t *o = json_object(), *fl = json_array();
	size_t i;

	json_object_set_new(o, "ts_ns", ju64(e->ts_ns));
	json_object_set_new(o, "kind", json_string(kind_name));
	json_object_set_new(o, "kind_id", json_integer(e->kind));
	json_object_set_new(o, "vm", json_integer(e->vm));
	json_object_set_new(o, "tid", json_integer(e->tid));
	json_object_set_new(o, "ino", ju64(e->ino));
	json_object_set_new(o, "a", ju64(e->a));
	json_object_set_new(o, "b", ju64(e->b));
	json_object_set_new(o, "c", ju64(e->c));
	json_object_set_new(o, "result", json_integer(e->result));
	json_object_set_new(o, "sub", json_integer(e->sub));
	if (sub)
		json_object_set_new(o, "sub_name", json_string(sub));
	json_object_set_new(o, "order", json_integer(e->order));
	json_object_set_new(o, "to_order", json_integer(e->to_order));
	json_object_set_new(o, "flags", json_integer(e->flags));
	for (i = 0; i < NFLAGS; i++)
		if (e->flags & flag_names[i].bit)
			json_array_append_new(fl, json_string(flag_names[i].name));
	json_object_set_new(o, "flag_names", fl);
	json_object_set_new(o, "fields", export__fields_json(e));
	kvm_json(o, e);
	return o;
}

/* ---- Perfetto ---------------------------------------------------------------------------- */

struct vm_counter {
	__u32 vm;
	bool named;
	bool dirty;
	__u64 bytes;
	__u64 last_emit_ns;
	bool emitted;
};

struct open_conv {
	__u32 tid, vm, dir;
	__u64 ts, gpa, size, reason;
	bool attributed;
	__u64 attr_ns;
};

struct pf_stat {
	char name[72];
	bool named;
};

struct perfetto {
	FILE *out;
	struct perfetto_opts o;
	struct model *m;
	bool any;
	bool have_base;
	__u64 base_ns, last_ns;
	struct vm_counter *vms;
	size_t nvms, cap_vms;
	struct open_conv *conv;
	size_t nconv, cap_conv;
	__u64 *threads; /* (pid << 32 | tid) already named, sorted */
	size_t nthreads, cap_threads;
	struct pf_stat *stats; /* KVM stat ids, as the DESC records named them */
	size_t nstats;
	int err;
};

/*
 * A streaming writer: the document's fixed frame ({"traceEvents":[ ... ], ...}) is written
 * here, and every value in it is a jansson value dumped as it comes, so a trace of millions
 * of events is never held in memory.
 */
static void pf_write(struct perfetto *p, const char *s)
{
	errno = 0;
	if (fputs(s, p->out) < 0 && !p->err)
		p->err = io_err();
}

static void pf_emit(struct perfetto *p, json_t *ev)
{
	if (!ev) {
		p->err = -ENOMEM;
		return;
	}
	if (p->any)
		pf_write(p, ",\n");
	errno = 0;
	if (json_dumpf(ev, p->out, JSON_COMPACT) && !p->err)
		p->err = io_err();
	p->any = true;
	json_decref(ev);
}

static double pf_us(const struct perfetto *p, __u64 ts)
{
	return ((double)(__s64)(ts - p->base_ns)) / 1000.0;
}

static struct vm_counter *pf_vm(struct perfetto *p, __u32 vm)
{
	struct vm_counter *nv;
	size_t i;

	for (i = 0; i < p->nvms; i++)
		if (p->vms[i].vm == vm)
			return &p->vms[i];
	if (p->nvms == p->cap_vms) {
		size_t cap = p->cap_vms ? p->cap_vms * 2 : 16;

		nv = realloc(p->vms, cap * sizeof(*nv));
		if (!nv) {
			p->err = -ENOMEM;
			return NULL;
		}
		p->vms = nv;
		p->cap_vms = cap;
	}
	nv = &p->vms[p->nvms++];
	memset(nv, 0, sizeof(*nv));
	nv->vm = vm;
	return nv;
}

/* A process per VM (0 = the host), named on first sight, and again when a VM_NAME tells its
 * name: "db01 (VM 9567)" rather than "VM 9567". */
static void pf_name_process(struct perfetto *p, __u32 pid)
{
	const struct model_vm *vm = pid ? model__vm(p->m, pid) : NULL;
	char name[VMNAME_LEN + 24];

	if (!pid)
		snprintf(name, sizeof(name), "host");
	else if (vm && vm->name[0])
		snprintf(name, sizeof(name), "%s (VM %u)", vm->name, pid);
	else
		snprintf(name, sizeof(name), "VM %u", pid);
	pf_emit(p, json_pack("{s:s, s:s, s:I, s:i, s:{s:s}}", "name", "process_name", "ph", "M",
			     "pid", (json_int_t)pid, "tid", 0, "args", "name", name));
}

static void pf_process(struct perfetto *p, __u32 pid)
{
	struct vm_counter *v = pf_vm(p, pid);

	if (!v || v->named)
		return;
	v->named = true;
	pf_name_process(p, pid);
}

static void pf_thread(struct perfetto *p, __u32 pid, __u32 tid)
{
	__u64 key = (__u64)pid << 32 | tid, *nt;
	size_t lo = 0, hi = p->nthreads, mid;
	char name[32];

	pf_process(p, pid);
	if (!tid)
		return;
	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (p->threads[mid] == key)
			return;
		if (p->threads[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (p->nthreads == p->cap_threads) {
		size_t cap = p->cap_threads ? p->cap_threads * 2 : 64;

		nt = realloc(p->threads, cap * sizeof(*nt));
		if (!nt) {
			p->err = -ENOMEM;
			return;
		}
		p->threads = nt;
		p->cap_threads = cap;
	}
	memmove(&p->threads[lo + 1], &p->threads[lo], (p->nthreads - lo) * sizeof(*p->threads));
	p->threads[lo] = key;
	p->nthreads++;
	snprintf(name, sizeof(name), "tid %u", tid);
	pf_emit(p, json_pack("{s:s, s:s, s:I, s:I, s:{s:s}}", "name", "thread_name", "ph", "M",
			     "pid", (json_int_t)pid, "tid", (json_int_t)tid, "args", "name", name));
}

static void pf_counter(struct perfetto *p, struct vm_counter *v, __u64 ts)
{
	pf_emit(p, json_pack("{s:s, s:s, s:f, s:I, s:{s:I}}", "name", "populated bytes", "ph", "C",
			     "ts", pf_us(p, ts), "pid", (json_int_t)v->vm, "args", "bytes",
			     (json_int_t)v->bytes));
	v->last_emit_ns = ts;
	v->emitted = true;
	v->dirty = false;
}

/* Samples due: a VM's counter goes out when it changed and its interval has passed. */
static void pf_flush_counters(struct perfetto *p, __u64 ts)
{
	size_t i;

	for (i = 0; i < p->nvms; i++) {
		struct vm_counter *v = &p->vms[i];

		if (v->dirty && (!v->emitted || ts - v->last_emit_ns >= p->o.counter_interval_ns))
			pf_counter(p, v, ts);
	}
}

static struct open_conv *pf_conv(struct perfetto *p, __u32 tid, size_t *idx)
{
	size_t i;

	for (i = 0; i < p->nconv; i++) {
		if (p->conv[i].tid == tid) {
			if (idx)
				*idx = i;
			return &p->conv[i];
		}
	}
	return NULL;
}

static void pf_close_conv(struct perfetto *p, size_t i, __u64 end, const char *outcome)
{
	struct open_conv *c = &p->conv[i];
	char name[48];

	snprintf(name, sizeof(name), "conversion to %s", model__dir_name(c->dir));
	pf_emit(p, json_pack("{s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:{s:I, s:I, s:s, s:s, s:b, "
			     "s:I}}",
			     "name", name, "cat", "conversion", "ph", "X", "ts", pf_us(p, c->ts),
			     "dur", (double)(end - c->ts) / 1000.0, "pid", (json_int_t)c->vm, "tid",
			     (json_int_t)c->tid, "args", "gpa", (json_int_t)c->gpa, "size",
			     (json_int_t)c->size, "exit", exit_name(c->reason), "outcome", outcome,
			     "attributed", c->attributed, "attr_ns", (json_int_t)c->attr_ns));
	p->conv[i] = p->conv[--p->nconv];
}

static void pf_instant(struct perfetto *p, const struct gmem_event *e, __u32 pid,
		       const char *name)
{
	json_t *args = export__json(e, name);

	pf_emit(p, json_pack("{s:s, s:s, s:s, s:s, s:f, s:I, s:I, s:o}", "name", name, "cat",
			     "gmem", "ph", "i", "s",
			     e->kind == GMEM_EV_LOST ? "g" : e->tid ? "t" : "p", "ts",
			     pf_us(p, e->ts_ns), "pid", (json_int_t)pid, "tid", (json_int_t)e->tid,
			     "args", args));
}

static __u64 pf_populated(const struct model *m, __u64 ino, __u32 *vm)
{
	const struct model_file *f = ino ? model__file(m, ino) : NULL;

	if (!f)
		return 0;
	*vm = f->vm;
	return f->populated_pages * MODEL_PAGE_SIZE;
}

#define PF_MAX_STATS 4096

static void pf_kvm_desc(struct perfetto *p, const struct gmem_event *e)
{
	struct pf_stat *ns;
	char part[40];

	if (e->sub >= PF_MAX_STATS || !kvmstats__desc_name(e, part, sizeof(part)))
		return;
	if (e->sub >= p->nstats) {
		ns = realloc(p->stats, (e->sub + 1) * sizeof(*ns));
		if (!ns) {
			p->err = -ENOMEM;
			return;
		}
		memset(ns + p->nstats, 0, (e->sub + 1 - p->nstats) * sizeof(*ns));
		p->stats = ns;
		p->nstats = e->sub + 1;
	}
	ns = &p->stats[e->sub];
	if (e->to_order == 0)
		snprintf(ns->name, sizeof(ns->name), "%s", part);
	else if (ns->named && strlen(ns->name) == 24)
		snprintf(ns->name + 24, sizeof(ns->name) - 24, "%s", part);
	ns->named = true;
}

/* A counter track per KVM stat in the VM's process: the VM's own, and one per vCPU. */
static void pf_kvm_stat(struct perfetto *p, const struct gmem_event *e, __u32 pid)
{
	char name[112];
	const char *stat;

	if (e->sub >= p->nstats || !p->stats[e->sub].named)
		return; /* no DESC named it: nothing to call the track */
	stat = p->stats[e->sub].name;
	pf_process(p, pid);
	if (e->order)
		snprintf(name, sizeof(name), "vCPU %llu %s", (unsigned long long)e->b, stat);
	else
		snprintf(name, sizeof(name), "KVM %s", stat);
	pf_emit(p, json_pack("{s:s, s:s, s:s, s:f, s:I, s:{s:I}}", "name", name, "cat", "kvm",
			     "ph", "C", "ts", pf_us(p, e->ts_ns), "pid", (json_int_t)pid, "args",
			     stat, (json_int_t)e->a));
}

int perfetto__add(struct perfetto *p, const struct gmem_event *e)
{
	__u32 pid = e->vm, owner_before = 0, owner_after = 0;
	__u64 before, after;
	struct open_conv *c;
	char kbuf[32], name[64];
	const char *kname;
	size_t i;

	if (!p->have_base) {
		p->base_ns = e->ts_ns;
		p->have_base = true;
	}
	if (e->ts_ns > p->last_ns)
		p->last_ns = e->ts_ns;
	before = pf_populated(p->m, e->ino, &owner_before);
	model__apply(p->m, e);
	after = pf_populated(p->m, e->ino, &owner_after);
	if (!pid && e->ino && (owner_after || owner_before))
		pid = owner_after ? owner_after : owner_before;
	if (before != after || owner_before != owner_after) {
		struct vm_counter *v;

		if (owner_before && (v = pf_vm(p, owner_before))) {
			v->bytes -= before;
			v->dirty = true;
		}
		if (owner_after && (v = pf_vm(p, owner_after))) {
			v->bytes += after;
			v->dirty = true;
			pf_process(p, owner_after);
		}
	}
	pf_thread(p, pid, e->tid);
	kname = export__kind_name(p->o.kinds, e->kind, kbuf, sizeof(kbuf));

	switch (e->kind) {
	case GMEM_EV_VM_NAME:
		if (pid)
			pf_name_process(p, pid);
		break;
	case GMEM_EV_VCPU_THREAD:
		/* the thread's track says which vCPU it runs (a later name replaces "tid N") */
		snprintf(name, sizeof(name), "vCPU %llu (tid %u)", (unsigned long long)e->a,
			 e->tid);
		pf_emit(p, json_pack("{s:s, s:s, s:I, s:I, s:{s:s}}", "name", "thread_name", "ph",
				     "M", "pid", (json_int_t)pid, "tid", (json_int_t)e->tid, "args",
				     "name", name));
		break;
	case GMEM_EV_CONV_REQUEST:
		if (pf_conv(p, e->tid, &i))
			pf_close_conv(p, i, e->ts_ns, "superseded");
		if (p->nconv == p->cap_conv) {
			size_t cap = p->cap_conv ? p->cap_conv * 2 : 16;
			struct open_conv *nc = realloc(p->conv, cap * sizeof(*nc));

			if (!nc)
				return p->err = -ENOMEM;
			p->conv = nc;
			p->cap_conv = cap;
		}
		p->conv[p->nconv++] = (struct open_conv){ .tid = e->tid, .vm = pid, .dir = e->sub,
							  .ts = e->ts_ns, .gpa = e->a,
							  .size = e->b, .reason = e->c };
		break;
	case GMEM_EV_CONV_ATTR:
		snprintf(name, sizeof(name), "set_memory_attributes%s to %s",
			 e->flags & GMEM_EVF_INPLACE ? "2 (in place)" : "", model__dir_name(e->sub));
		pf_emit(p, json_pack("{s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:{s:I, s:I, s:i}}",
				     "name", name, "cat", "conversion", "ph", "X", "ts",
				     pf_us(p, e->ts_ns - e->c), "dur", (double)e->c / 1000.0,
				     "pid", (json_int_t)pid, "tid", (json_int_t)e->tid, "args",
				     "gpa", (json_int_t)e->a, "size", (json_int_t)e->b, "result",
				     e->result));
		c = pf_conv(p, e->tid, NULL);
		if (c && !e->result) {
			c->attributed = true;
			c->attr_ns += e->c;
		}
		break;
	case GMEM_EV_VCPU_RESUME:
		if (pf_conv(p, e->tid, &i))
			pf_close_conv(p, i, e->ts_ns, p->conv[i].attributed ? "completed" :
									      "abandoned");
		break;
	case GMEM_EV_DMAP_SAMPLE:
		pf_process(p, 0);
		pf_emit(p, json_pack("{s:s, s:s, s:f, s:i, s:{s:I, s:I, s:I}}", "name", "DirectMap",
				     "ph", "C", "ts", pf_us(p, e->ts_ns), "pid", 0, "args", "4k",
				     (json_int_t)e->a, "2M", (json_int_t)e->b, "1G",
				     (json_int_t)e->c));
		break;
	case GMEM_EV_KVM_STAT_DESC:
		pf_kvm_desc(p, e);
		break;
	case GMEM_EV_KVM_STAT:
		pf_kvm_stat(p, e, pid);
		break;
	case GMEM_EV_FAULT:
		snprintf(name, sizeof(name), "fault (%s)", model__source_name(e->sub));
		pf_emit(p, json_pack("{s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:{s:I, s:I}}", "name",
				     name, "cat", "gmem", "ph", "X", "ts",
				     pf_us(p, e->ts_ns - e->c), "dur", (double)e->c / 1000.0,
				     "pid", (json_int_t)pid, "tid", (json_int_t)e->tid, "args",
				     "ino", (json_int_t)e->ino, "index", (json_int_t)e->a));
		break;
	case GMEM_EV_PAGE_ALLOC:
	case GMEM_EV_PAGE_FREE:
		break; /* the populated counters show them */
	case GMEM_EV_RMP:
	case GMEM_EV_TDX:
		snprintf(name, sizeof(name), "%s %s", kname, export__sub_name(e->kind, e->sub));
		pf_instant(p, e, pid, name);
		break;
	case GMEM_EV_SPLIT:
	case GMEM_EV_MERGE:
		snprintf(name, sizeof(name), "%s %u->%u", kname, e->order, e->to_order);
		pf_instant(p, e, pid, name);
		break;
	default:
		pf_instant(p, e, pid, kname);
		break;
	}
	pf_flush_counters(p, e->ts_ns);
	return p->err;
}

struct perfetto *perfetto__new(FILE *out, const struct perfetto_opts *opts)
{
	struct perfetto *p = calloc(1, sizeof(*p));
	struct model_opts mo = { .retire_after_ns = ~0ull };

	if (!p)
		return NULL;
	p->out = out;
	p->o = *opts;
	p->m = model__new(&mo);
	if (!p->m) {
		free(p);
		return NULL;
	}
	pf_write(p, "{\"traceEvents\":[\n");
	return p;
}

int perfetto__finish(struct perfetto *p, const json_t *other)
{
	char *text;
	size_t i;

	while (p->nconv)
		pf_close_conv(p, p->nconv - 1, p->last_ns, "unfinished");
	for (i = 0; i < p->nvms; i++)
		if (p->vms[i].dirty)
			pf_counter(p, &p->vms[i], p->last_ns);
	pf_write(p, "\n],\"displayTimeUnit\":\"ns\",\"otherData\":");
	if (other) {
		text = json_dumps(other, JSON_COMPACT);
	} else {
		json_t *empty = json_object();

		text = json_dumps(empty, JSON_COMPACT);
		json_decref(empty);
	}
	if (!text)
		return p->err = -ENOMEM;
	pf_write(p, text);
	free(text);
	pf_write(p, "}\n");
	errno = 0;
	if (fflush(p->out) && !p->err)
		p->err = io_err();
	return p->err;
}

void perfetto__free(struct perfetto *p)
{
	if (!p)
		return;
	model__free(p->m);
	free(p->vms);
	free(p->conv);
	free(p->threads);
	free(p->stats);
	free(p);
}
