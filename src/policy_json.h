/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * policy_json.h - policy contexts and answers as JSON: what gmemd's "decide" command takes and
 * gives, what `gmem-policy decide` builds from key=value pairs, and what the client library
 * sends. Field names are the C names of include/gmem_policy.h; the region history is a nested
 * "hist" object. cause, to and source also take their names ("punch", "shared", "guest_fault");
 * a 64-bit field that is all ones (GMEM_HIST_NEVER) is null.
 */
#ifndef GMEM_POLICY_JSON_H
#define GMEM_POLICY_JSON_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stddef.h>
#include <jansson.h>

#include "policy.h"

/*
 * Fills ctx (of cb's type, zeroed first; hist's since_* default to GMEM_HIST_NEVER) from o.
 * Unknown members are an error, so a typo is not silently a zero. 0 or -EINVAL with err set.
 */
int policy_json__ctx(enum gmem_policy_cb cb, json_t *o, void *ctx, char *err, size_t errlen);
/* Whether o has a "hist" member (else a host may fill the history from its own model). */
int policy_json__has_hist(json_t *o);
json_t *policy_json__ctx_to_json(enum gmem_policy_cb cb, const void *ctx);
/* {"callback", "answer", "raw", "clamped", "error", "decision"} */
json_t *policy_json__answer(enum gmem_policy_cb cb, const struct policy_answer *a);

#endif /* GMEM_POLICY_JSON_H */
