/* SPDX-License-Identifier: MIT */
/*
 * Process membership. A process registers once per instance, on its first
 * shmq_open there, and stays registered until its last handle of that
 * instance closes or it dies. The in-process list of instances is guarded
 * by a mutex (it is touched only by open, close and after fork, never on
 * the send/receive path).
 *
 * fork(): the child inherits the parent's mappings and handles but must
 * never act under the parent's token. The atfork child handler closes the
 * inherited liveness-lock descriptor (the lock stays the parent's: OFD
 * locks belong to the open file description, which the parent still
 * holds) and the inherited registry descriptor, marks every instance
 * unregistered and bumps shmq__forkgen; the child opens the registry and
 * registers anew on its next call. Keeping a copy of the parent's
 * registry description would keep alive the admin lock the parent takes
 * on it (repair, reap): a parent killed holding it would leave it held
 * for as long as the child lives, and every create, delete and repair of
 * the instance would wait for it.
 */
#include "process.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proto.h"
#include "repair.h"

_Atomic uint32_t shmq__forkgen;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct shmq__inst *insts;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void) { pthread_mutex_lock(&lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&lock); }
static void atfork_child(void)
{
    for (struct shmq__inst *in = insts; in; in = in->next) {
        if (in->lock_fd >= 0)
            close(in->lock_fd);
        in->lock_fd = -1;
        in->token = 0;
        if (in->reg.fd >= 0)
            close(in->reg.fd);
        in->reg.fd = -1;
        in->fd_stale = 1;
    }
    atomic_fetch_add_explicit(&shmq__forkgen, 1, memory_order_relaxed);
    pthread_mutex_unlock(&lock);
}

static void setup(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Called with the lock held. */
static int ensure_registered(struct shmq__inst *in)
{
    if (in->fd_stale) {
        /* Our own description of the registry, so our admin locks are
         * not shared with the parent's. */
        char path[64];
        int rc = shmq__shm_name(path, sizeof(path), in->reg.instance, NULL);
        if (rc)
            return rc;
        int fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (in->reg.fd >= 0)
            close(in->reg.fd);
        in->reg.fd = fd;
        in->fd_stale = 0;
    }
    if (in->lock_fd >= 0)
        return 0;
    int rc = shmq__reg_register(&in->reg, &in->lock_fd, &in->token);
    if (rc == -ENOSPC) {
        /* The table may be full of the dead: repair them and retry. */
        shmq__reap(&in->reg, NULL);
        rc = shmq__reg_register(&in->reg, &in->lock_fd, &in->token);
    }
    /* Registration hook: tell the instance's daemon (if it advertises a
     * socket in the registry) so it watches us with a pidfd and repairs
     * our token within milliseconds of our death. Best effort and bounded
     * (ctl.c, at most SHMQ_NOTIFY_TIMEOUT_NS); nothing depends on it: the
     * liveness lock taken above is what proves death, and the daemon's
     * periodic reap finds processes it was not told about. */
    if (rc == 0)
        shmq__ctl_notify_register(&in->reg, in->token);
    return rc;
}

int shmq__inst_get(const char *instance, struct shmq__inst **out)
{
    int rc;

    pthread_once(&once, setup);
    pthread_mutex_lock(&lock);
    struct shmq__inst *in;
    for (in = insts; in; in = in->next)
        if (strcmp(in->reg.instance, instance) == 0)
            break;
    if (!in) {
        in = calloc(1, sizeof(*in));
        if (!in) {
            rc = -ENOMEM;
            goto out;
        }
        in->lock_fd = -1;
        rc = shmq__reg_open(instance, 1, NULL, &in->reg);
        if (rc) {
            free(in);
            goto out;
        }
        in->next = insts;
        insts = in;
    }
    rc = ensure_registered(in);
    if (rc == 0) {
        in->refs++;
        *out = in;
    } else if (in->refs == 0) {
        /* Nobody uses it: do not keep a half-made entry around. */
        struct shmq__inst **pp = &insts;
        while (*pp != in)
            pp = &(*pp)->next;
        *pp = in->next;
        shmq__reg_close(&in->reg);
        free(in);
    }
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

int shmq__inst_refresh(struct shmq__inst *in, uint32_t *token)
{
    pthread_mutex_lock(&lock);
    int rc = ensure_registered(in);
    if (rc == 0)
        *token = in->token;
    pthread_mutex_unlock(&lock);
    return rc;
}

void shmq__inst_put(struct shmq__inst *in)
{
    if (!in)
        return;
    pthread_mutex_lock(&lock);
    if (--in->refs == 0) {
        if (in->lock_fd >= 0) {
            /* Give back what we still hold, free the entry, then drop the
             * liveness lock. */
            shmq__repair(&in->reg, in->token, 1, NULL);
            close(in->lock_fd);
            in->lock_fd = -1;
        }
        struct shmq__inst **pp = &insts;
        while (*pp != in)
            pp = &(*pp)->next;
        *pp = in->next;
        shmq__reg_close(&in->reg);
        free(in);
    }
    pthread_mutex_unlock(&lock);
}
