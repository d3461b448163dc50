/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * u64map.h - a u64 -> pointer hash table. Values are never NULL (NULL marks an empty slot). A
 * zeroed struct u64map is an empty table.
 */
#ifndef GMEM_U64MAP_H
#define GMEM_U64MAP_H

#include <stddef.h>
#include <linux/types.h>

struct u64map_slot {
	__u64 key;
	void *val; /* NULL marks an empty slot: values are never NULL */
};

struct u64map {
	struct u64map_slot *slots;
	size_t cap; /* 0 or a power of two */
	size_t len;
};

void *u64map__get(const struct u64map *t, __u64 key);
/* key must not be present; 0 or -ENOMEM. */
int u64map__put(struct u64map *t, __u64 key, void *val);
/*
 * Removes key and returns its value (NULL if absent). Never resizes, so a walk by slot index
 * may delete the slot it stands on and look at the same index again.
 */
void *u64map__del(struct u64map *t, __u64 key);
/* Gives memory back after many deletions; failing to is harmless. */
void u64map__shrink(struct u64map *t);
void u64map__release(struct u64map *t);

#endif /* GMEM_U64MAP_H */
