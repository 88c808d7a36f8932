/* SPDX-License-Identifier: MIT */
/* Repair after dead processes (see repair.c). */
#ifndef SHMQ_REPAIR_H
#define SHMQ_REPAIR_H

#include "registry.h"

/* Repair token: 1 if it repaired, 0 if there was nothing to do. self: the caller is the token's own process giving up its
 * membership (skips the liveness check). */
SHMQ_INTERNAL int shmq__repair(struct shmq__reg *reg, uint32_t token, int self,
                               struct shmq_repair_report *rep);
/* Repair every dead registered process; returns how many. */
SHMQ_INTERNAL int shmq__reap(struct shmq__reg *reg,
                             struct shmq_repair_report *rep);

#endif
