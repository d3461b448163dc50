/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * policy_host.h - live advice: gmemd's huge-page model, the active policy deciding in it, and
 * the control commands and metrics around them.
 *
 * The model (hugemodel.h) is fed every record gmemd sees while a policy is active, so every
 * fault, punch hole and conversion the kernel reports becomes the decisions a huge-page
 * guest_memfd would have asked of that policy; they are counted per policy in
 * gmem_policy_decisions_total{policy,callback,decision}. A VMM asks the same policy, on the
 * same model, over the control socket (include/gmem_advice.h) before it acts: those answers
 * change nothing and are counted apart ("advice" in the policy command).
 *
 * Control commands (docs/control-protocol.md): "policy" (state), "policy_set" (swap: the new
 * policy takes over the same model; one that fails to load or verify leaves the old one
 * active, and the reply says why), "decide" (advice).
 *
 * Not thread-safe: gmemd calls everything under its server lock.
 */
#ifndef GMEM_POLICY_HOST_LIVE_H
#define GMEM_POLICY_HOST_LIVE_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <jansson.h>

#include "gmem_events.h"
#include "hugemodel.h"
#include "policy.h"
#include "prom.h"

struct policy_host;

struct policy_host_opts {
	struct policy_opts policy;
	struct hugemodel_opts model;
};

int policy_host__new(struct policy_host **out, const struct policy_host_opts *opts);
void policy_host__free(struct policy_host *h);

/* Load spec and make it the active policy; on failure the previous one stays and err says
 * why (and that it stays). */
int policy_host__set(struct policy_host *h, const char *spec, char *err, size_t errlen);
struct policy *policy_host__active(struct policy_host *h);

void policy_host__apply(struct policy_host *h, const struct gmem_event *e);
void policy_host__tick(struct policy_host *h, __u64 now_ns);
/* "policy", "policy_set", "decide": the reply, or NULL for another command. */
json_t *policy_host__command(struct policy_host *h, const char *cmd, json_t *req);
/* The gmem_policy_decisions_total rows; valid until the next call. */
void policy_host__metrics(struct policy_host *h, struct prom_extra *x);
json_t *policy_host__json(struct policy_host *h);

#endif /* GMEM_POLICY_HOST_LIVE_H */
