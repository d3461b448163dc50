// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * u64map.c - a u64 -> pointer open-addressing table (linear probing, backward-shift deletion):
 * the model's VMs by pid and files by inode, the source's per-file kernel counts by inode.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "u64map.h"

#define U64MAP_MIN_CAP 16

static size_t u64map__home(const struct u64map *t, __u64 key)
{
	/* splitmix64's finaliser: pids and inode numbers are dense, so spread them. */
	key ^= key >> 30;
	key *= 0xbf58476d1ce4e5b9ull;
	key ^= key >> 27;
	key *= 0x94d049bb133111ebull;
	key ^= key >> 31;
	return key & (t->cap - 1);
}

static void u64map__insert_raw(struct u64map *t, __u64 key, void *val)
{
	size_t i = u64map__home(t, key);

	while (t->slots[i].val)
		i = (i + 1) & (t->cap - 1);
	t->slots[i].key = key;
	t->slots[i].val = val;
}

static int u64map__resize(struct u64map *t, size_t cap)
{
	struct u64map_slot *old = t->slots;
	size_t old_cap = t->cap, i;

	t->slots = calloc(cap, sizeof(*t->slots));
	if (!t->slots) {
		t->slots = old;
		return -ENOMEM;
	}
	t->cap = cap;
	for (i = 0; i < old_cap; i++)
		if (old[i].val)
			u64map__insert_raw(t, old[i].key, old[i].val);
	free(old);
	return 0;
}

void *u64map__get(const struct u64map *t, __u64 key)
{
	size_t i;

	if (!t->len)
		return NULL;
	for (i = u64map__home(t, key); t->slots[i].val; i = (i + 1) & (t->cap - 1))
		if (t->slots[i].key == key)
			return t->slots[i].val;
	return NULL;
}

/* key must not be present. */
int u64map__put(struct u64map *t, __u64 key, void *val)
{
	int err;

	/* Keep the load at or under 3/4: probe runs stay short. */
	if ((t->len + 1) * 4 > t->cap * 3) {
		err = u64map__resize(t, t->cap ? t->cap * 2 : U64MAP_MIN_CAP);
		if (err)
			return err;
	}
	u64map__insert_raw(t, key, val);
	t->len++;
	return 0;
}

/*
 * Removes key and returns its value. Never resizes, so a walk by slot index may delete the
 * slot it stands on and look at the same index again (an entry may have shifted into it).
 */
void *u64map__del(struct u64map *t, __u64 key)
{
	size_t mask = t->cap - 1, i, j, home;
	void *val;

	if (!t->len)
		return NULL;
	for (i = u64map__home(t, key); t->slots[i].val; i = (i + 1) & mask)
		if (t->slots[i].key == key)
			break;
	if (!t->slots[i].val)
		return NULL;
	val = t->slots[i].val;
	/* Pull later members of the probe run back so that no lookup meets a false hole. */
	for (j = (i + 1) & mask; t->slots[j].val; j = (j + 1) & mask) {
		home = u64map__home(t, t->slots[j].key);
		/* Entry j may move to i unless its home lies cyclically in (i, j]. */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		t->slots[i] = t->slots[j];
		i = j;
	}
	t->slots[i].val = NULL;
	t->slots[i].key = 0;
	t->len--;
	return val;
}

/* Gives memory back after many deletions; failing to is harmless. */
void u64map__shrink(struct u64map *t)
{
	size_t cap = t->cap;

	while (cap > U64MAP_MIN_CAP && t->len * 8 < cap)
		cap /= 2;
	if (cap != t->cap)
		u64map__resize(t, cap);
}

void u64map__release(struct u64map *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}
