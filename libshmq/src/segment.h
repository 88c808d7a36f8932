/* SPDX-License-Identifier: MIT */
/* Queue segments: create, attach and validate (see segment.c). */
#ifndef SHMQ_SEGMENT_H
#define SHMQ_SEGMENT_H

#include <shmq/admin.h>

#include "ring.h"

struct shmq__reg;

/* A process-local mapping of one queue segment, validated. */
struct shmq__qseg {
    void *base;
    size_t size;
    struct shmq_q_hdr *hdr;
    struct shmq__ring main;
    struct shmq__ring dlq;
    int has_dlq;
    uint64_t generation;
    struct shmq_queue_config cfg; /* as validated at attach */
};

SHMQ_INTERNAL uint64_t shmq__qseg_size(const struct shmq_queue_config *cfg);

/* Create /shmq.<instance>.<name>; fails with -EEXIST if a valid segment
 * is there (a half-made one, magic never stored, is replaced). */
SHMQ_INTERNAL int shmq__qseg_create(const char *instance, const char *name,
                                    const struct shmq_queue_config *cfg,
                                    uint64_t generation);

/* Write a new, empty queue into zeroed memory of shmq__qseg_size(cfg)
 * bytes; magic is stored last (release). */
SHMQ_INTERNAL void shmq__qseg_format(void *base, uint64_t size,
                                     const char *name,
                                     const struct shmq_queue_config *cfg,
                                     uint64_t generation);

/* Attach. writable: map read-write (else read-only, for stats). */
SHMQ_INTERNAL int shmq__qseg_open(const char *instance, const char *name,
                                  int writable, struct shmq__qseg *out);
SHMQ_INTERNAL void shmq__qseg_close(struct shmq__qseg *q);
/* Validate a mapping of size bytes (exposed for the fuzz target). */
SHMQ_INTERNAL int shmq__qseg_validate(void *base, size_t size,
                                      const char *name, struct shmq__qseg *out);

/* Counters of q. The waiter counts come from the process table of reg
 * (the registry of q's instance) for the queue at directory index dir_idx;
 * reg NULL or dir_idx < 0: they are 0. */
SHMQ_INTERNAL void shmq__qseg_stats(const struct shmq__qseg *q,
                                    struct shmq__reg *reg, int dir_idx,
                                    struct shmq_stats *st);

#endif
