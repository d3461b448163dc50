// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * fuzz_recording - libFuzzer target for everything that reads a recording: the file reader
 * (header, metadata JSON, chunk framing, inflate, the column decoder, the trailer index, the
 * stored probe table), and what consumes its records (the model, the KVM stats replay, the text
 * and Perfetto renderings), which must survive any record a damaged file can decode to.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined and -DFUZZING_BUILD_MODE_UNSAFE_FOR_
 * PRODUCTION, which makes the reader accept any checksum: otherwise the fuzzer would spend its
 * time on CRC32 and never reach the parsers behind it (the unit tests show the checksums cover
 * every byte). tests/fuzz/test_fuzz.py runs it in make check for a bounded time on a seed
 * corpus of real recordings, and replays tests/fuzz/regressions/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "kvmstats.h"
#include "model.h"
#include "recording.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Consumers see at most this many records per input: enough to reach every kind's path, few
 * enough to keep the fuzzer at thousands of inputs a second on whole recordings. */
#define CONSUME_MAX 512

static void consume(const struct gmem_event *recs, size_t n, struct model *m,
		    struct kvmstats *kvm, struct perfetto *pf, struct strbuf *sb, size_t *budget)
{
	char kb[32];
	size_t i;

	for (i = 0; i < n && *budget; i++, (*budget)--) {
		model__apply(m, &recs[i]);
		model__tick(m, recs[i].ts_ns);
		kvmstats__apply(kvm, &recs[i]);
		perfetto__add(pf, &recs[i]);
		strbuf__reset(sb);
		export__text(sb, &recs[i], 0,
			     export__kind_name(NULL, recs[i].kind, kb, sizeof(kb)));
		json_decref(export__json(&recs[i], "x"));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model_opts mo = { .retire_after_ns = 1000, .max_pending = 4 };
	struct perfetto_opts po = { .counter_interval_ns = 0 };
	struct strbuf sb = STRBUF_INIT;
	const struct gmem_event *recs;
	struct recording *r = NULL;
	struct gmem_event *dec;
	struct kvmstats *kvm = NULL;
	const struct prom_family *fams;
	struct perfetto *pf;
	struct model *m;
	FILE *sink;
	char err[512];
	size_t n, budget = CONSUME_MAX;
	json_t *j;

	sink = fopen("/dev/null", "w");
	m = model__new(&mo);
	kvmstats__new_replay(&kvm);
	pf = perfetto__new(sink, &po);
	if (recording__open_mem(&r, data, size, err, sizeof(err)) == 0) {
		recording__probe_table(r);
		po.kinds = json_object_get(recording__meta(r), "kinds");
		while (recording__next(r, &recs, &n) > 0)
			consume(recs, n, m, kvm, pf, &sb, &budget);
		if (strlen(recording__error(r)) >= sizeof(err))
			abort();
		recording__close(r);
	} else if (!err[0]) {
		abort(); /* every refusal says why */
	}
	/* the column decoder on its own, without the framing: the first two bytes say how many
	 * records the rest holds */
	if (size >= 2) {
		n = (data[0] | data[1] << 8) % 2048;
		dec = malloc((n ? n : 1) * sizeof(*dec));
		if (dec && recording__decode(data + 2, size - 2, dec, n) == 0)
			consume(dec, n, m, kvm, pf, &sb, &budget);
		free(dec);
	}
	perfetto__finish(pf, NULL);
	perfetto__free(pf);
	j = model__to_json(m);
	json_decref(j);
	/* what report and replay make of the KVM stats records */
	kvmstats__families(kvm, &fams, &n);
	json_decref(kvmstats__report_json(kvm));
	json_decref(kvmstats__json(kvm));
	kvmstats__free(kvm);
	model__free(m);
	strbuf__release(&sb);
	fclose(sink);
	return 0;
}
