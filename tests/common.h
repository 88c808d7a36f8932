/* SPDX-License-Identifier: MIT */
/* Helpers shared by the tests: private instances, child processes. */
#ifndef SHMQ_TEST_COMMON_H
#define SHMQ_TEST_COMMON_H

#include <shmq/admin.h>
#include <stdint.h>
#include <sys/types.h>

/* A fresh instance name private to this test process ("t<pid>x<n>") and
 * its registry, created; removed with t_instance_destroy. */
const char *t_instance(void);
shmq_admin_t *t_admin(const char *instance);
void t_instance_destroy(shmq_admin_t *a);

/* Create a queue with the given capacity and msg_max (other settings
 * default) in instance; asserts success. */
void t_create(shmq_admin_t *a, const char *name, uint32_t capacity,
              uint32_t msg_max);
/* Open a queue in instance (main ring); asserts success. */
shmq_t *t_open(const char *instance, const char *name);

/* Wait for a child; returns its wait status. Kills it with SIGKILL if it
 * has not ended within timeout_ms (a test never hangs). */
int t_wait(pid_t pid, int timeout_ms);

#endif
