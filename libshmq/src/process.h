/* SPDX-License-Identifier: MIT */
/* This process's membership in each instance it uses (see process.c). */
#ifndef SHMQ_PROCESS_H
#define SHMQ_PROCESS_H

#include "registry.h"

struct shmq__inst {
    struct shmq__reg reg;
    int lock_fd;    /* holds our liveness lock; -1: not registered */
    uint32_t token; /* valid while lock_fd >= 0 */
    int fd_stale;   /* reg.fd is shared with a parent after fork */
    unsigned refs;
    struct shmq__inst *next;
};

/* Bumped in every fork child; handles compare it to know that they must
 * re-register before acting. */
SHMQ_INTERNAL extern _Atomic uint32_t shmq__forkgen;

/* Find or attach an instance and make sure this process is registered in
 * it; takes a reference. */
SHMQ_INTERNAL int shmq__inst_get(const char *instance,
                                 struct shmq__inst **out);
/* Drop a reference; the last one unregisters (giving back leases). */
SHMQ_INTERNAL void shmq__inst_put(struct shmq__inst *in);
/* After a fork: register anew if needed; returns our token. */
SHMQ_INTERNAL int shmq__inst_refresh(struct shmq__inst *in, uint32_t *token);

#endif
