/* SPDX-License-Identifier: MIT */
/* The registry segment of an instance: queue directory, process table,
 * liveness locks (see registry.c). */
#ifndef SHMQ_REGISTRY_H
#define SHMQ_REGISTRY_H

#include <shmq/admin.h>

#include "layout.h"
#include "util.h"

struct shmq__reg {
    int fd; /* O_RDWR (or O_RDONLY), its own open file description */
    struct shmq_reg_hdr *hdr;
    size_t size;
    struct shmq_reg_queue *dir;
    struct shmq_reg_proc *procs;
    uint32_t max_procs;
    char instance[SHMQ_INSTANCE_MAX + 1];
};

SHMQ_INTERNAL int shmq__reg_open(const char *instance, int writable,
                                 const struct shmq_admin_opts *create,
                                 struct shmq__reg *out);
SHMQ_INTERNAL void shmq__reg_close(struct shmq__reg *r);
SHMQ_INTERNAL int shmq__reg_validate(void *base, size_t size,
                                     struct shmq__reg *out);

/* OFD byte locks on the registry file. */
SHMQ_INTERNAL int shmq__lock(int fd, uint64_t off, int wait);
SHMQ_INTERNAL void shmq__unlock(int fd, uint64_t off);
/* 1 if some other open file description holds a lock on off. */
SHMQ_INTERNAL int shmq__lock_held(int fd, uint64_t off);

/* Directory index of an ACTIVE queue, or -ENOENT. */
SHMQ_INTERNAL int shmq__reg_find(struct shmq__reg *r, const char *name);

/* Register the calling process: *lock_fd gets the descriptor that holds
 * its liveness lock for its lifetime. */
SHMQ_INTERNAL int shmq__reg_register(struct shmq__reg *r, int *lock_fd,
                                     uint32_t *token);

/* Validated process entry for a token: NULL if the index is out of
 * range. */
SHMQ_INTERNAL struct shmq_reg_proc *shmq__reg_proc(struct shmq__reg *r,
                                                   uint32_t idx);

/* Threads asleep on the main ring of the queue at directory index dir_idx
 * with this generation, from the sleep records (layout.h) of the
 * processes that are alive: ALIVE in the table and holding their liveness
 * lock. One query of the lock per process that has a matching record. */
SHMQ_INTERNAL void shmq__reg_waiters(struct shmq__reg *r, uint32_t dir_idx,
                                     uint64_t generation, uint32_t *producers,
                                     uint32_t *consumers);

#endif
