/* SPDX-License-Identifier: MIT */
/*
 * The registry: one segment per instance with the queue directory and the
 * process table.
 *
 * Liveness without pids: a registered process holds, for its lifetime, an
 * exclusive OFD lock on byte SHMQ_LOCK_PROC_BASE + index of the registry
 * file, through a descriptor of its own (O_CLOEXEC, closed in a fork
 * child). The kernel drops the lock when the process dies, whatever the
 * cause, so "entry ALIVE and lock free" means dead, and no pid reuse can
 * fool it. Registration takes the lock first and only then claims the
 * entry (CAS FREE -> ALIVE), so a live registrant is never mistaken for a
 * dead one.
 */
#include "registry.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int shmq__lock(int fd, uint64_t off, int wait)
{
    struct flock fl = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = (off_t)off,
        .l_len = 1,
    };
    for (;;) {
        if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

void shmq__unlock(int fd, uint64_t off)
{
    struct flock fl = {
        .l_type = F_UNLCK,
        .l_whence = SEEK_SET,
        .l_start = (off_t)off,
        .l_len = 1,
    };
    fcntl(fd, F_OFD_SETLK, &fl);
}

int shmq__lock_held(int fd, uint64_t off)
{
    struct flock fl = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = (off_t)off,
        .l_len = 1,
    };
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return -errno;
    return fl.l_type != F_UNLCK;
}

static uint64_t reg_size(uint32_t max_procs)
{
    return SHMQ_REG_PROCS_OFF + (uint64_t)max_procs * sizeof(struct shmq_reg_proc);
}

int shmq__reg_validate(void *base, size_t size, struct shmq__reg *out)
{
    struct shmq_reg_hdr *h = base;

    if (size < sizeof(*h))
        return -EBADMSG;
    uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    if (magic == 0)
        return -ENOENT;
    if (magic != SHMQ_REG_MAGIC)
        return -EBADMSG;
    if (h->layout_major != SHMQ_LAYOUT_MAJOR)
        return -EPROTO;
    if (h->header_size != sizeof(*h) || h->max_queues != SHMQ_MAX_QUEUES ||
        h->max_procs == 0 || h->max_procs > SHMQ_MAX_PROCS ||
        h->dir_off != SHMQ_REG_DIR_OFF || h->procs_off != SHMQ_REG_PROCS_OFF ||
        h->total_size != reg_size(h->max_procs) || h->total_size != size)
        return -EBADMSG;
    out->hdr = h;
    out->size = size;
    out->dir = (struct shmq_reg_queue *)((uint8_t *)base + SHMQ_REG_DIR_OFF);
    out->procs = (struct shmq_reg_proc *)((uint8_t *)base + SHMQ_REG_PROCS_OFF);
    out->max_procs = h->max_procs;
    return 0;
}

static int reg_init(int fd, const struct shmq_admin_opts *o)
{
    uint32_t max_procs = o->max_procs ? o->max_procs : SHMQ_DEFAULT_PROCS;
    uint64_t size = reg_size(max_procs);
    int rc = posix_fallocate(fd, 0, (off_t)size);
    if (rc)
        return -rc;
    struct shmq_reg_hdr *h =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED)
        return -errno;
    h->layout_major = SHMQ_LAYOUT_MAJOR;
    h->layout_minor = SHMQ_LAYOUT_MINOR;
    h->header_size = sizeof(*h);
    h->max_queues = SHMQ_MAX_QUEUES;
    h->max_procs = max_procs;
    h->dir_off = SHMQ_REG_DIR_OFF;
    h->procs_off = SHMQ_REG_PROCS_OFF;
    h->total_size = size;
    h->created_ns = shmq__now_ns(CLOCK_REALTIME);
    struct shmq_reg_proc *p =
        (struct shmq_reg_proc *)((uint8_t *)h + SHMQ_REG_PROCS_OFF);
    for (uint32_t i = 0; i < max_procs; i++)
        atomic_store_explicit(&p[i].word, SHMQ_PROC_WORD(1, SHMQ_PROC_FREE),
                              memory_order_relaxed);
    /* Last: magic (release); pairs with the acquire in reg_validate. */
    atomic_store_explicit(&h->magic, SHMQ_REG_MAGIC, memory_order_release);
    munmap(h, size);
    return 0;
}

/* Create the registry file under an exclusive lock on a byte nobody else
 * uses, so that two creators racing never both initialise it. */
static int reg_create(const char *path, const struct shmq_admin_opts *o)
{
    mode_t mode = (mode_t)(o->mode ? o->mode & 07777 : 0666);
    int fd = shm_open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    int rc = shmq__lock(fd, SHMQ_LOCK_ADMIN, 1);
    struct stat st;
    if (rc == 0 && fstat(fd, &st) < 0)
        rc = -errno;
    uint64_t magic = 0;
    if (rc == 0 && st.st_size >= (off_t)sizeof(magic) &&
        pread(fd, &magic, sizeof(magic), 0) != (ssize_t)sizeof(magic))
        rc = -errno;
    /* Empty, or left half-made by a creator that died before magic. */
    if (rc == 0 && (st.st_size == 0 || magic == 0)) {
        if (st.st_size != 0 && ftruncate(fd, 0) < 0)
            rc = -errno;
        if (rc == 0 && (fchmod(fd, mode) < 0 ||
            (o->gid >= 0 && fchown(fd, (uid_t)-1, (gid_t)o->gid) < 0)))
            rc = -errno;
        if (rc == 0)
            rc = reg_init(fd, o);
        if (rc)
            shm_unlink(path);
    }
    shmq__unlock(fd, SHMQ_LOCK_ADMIN);
    close(fd);
    return rc;
}

/*
 * The descriptor for the locks (admin lock, liveness queries) is a second
 * open of the file, never mapped: a mapping holds its file, so an OFD lock
 * taken through the description the registry was mapped with would
 * outlive every descriptor for as long as some process still maps it
 * through that description. A fork child keeps its parent's mappings: a
 * parent killed holding the admin lock would leave it held while the
 * child lives, and every create, delete and repair of the instance would
 * wait. The same file as the mapping (device and inode), or -ENOENT: the
 * registry was removed and made again between the two opens.
 */
static int lock_fd_of(const char *path, int writable, const struct stat *st,
                      int *out)
{
    int fd = shm_open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct stat ls;
    int rc = fstat(fd, &ls) < 0 ? -errno : 0;
    if (rc == 0 && (ls.st_dev != st->st_dev || ls.st_ino != st->st_ino))
        rc = -ENOENT;
    if (rc) {
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

int shmq__reg_open(const char *instance, int writable,
                   const struct shmq_admin_opts *create, struct shmq__reg *out)
{
    char path[64];
    int rc = shmq__shm_name(path, sizeof(path), instance, NULL);
    if (rc)
        return rc;
    if (create && (rc = reg_create(path, create)) != 0)
        return rc;
    int fd = shm_open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (st.st_size == 0) {
        rc = -ENOENT; /* being created, or left empty by a dead creator */
        goto fail;
    }
    if (st.st_size < (off_t)sizeof(struct shmq_reg_hdr) ||
        (uint64_t)st.st_size > reg_size(SHMQ_MAX_PROCS)) {
        rc = -EBADMSG;
        goto fail;
    }
    void *base = mmap(NULL, (size_t)st.st_size,
                      PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED,
                      fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    memset(out, 0, sizeof(*out));
    rc = shmq__reg_validate(base, (size_t)st.st_size, out);
    if (rc == 0)
        rc = lock_fd_of(path, writable, &st, &out->fd);
    if (rc) {
        munmap(base, (size_t)st.st_size);
        goto fail;
    }
    close(fd);
    snprintf(out->instance, sizeof(out->instance), "%s", instance);
    return 0;
fail:
    close(fd);
    return rc;
}

void shmq__reg_close(struct shmq__reg *r)
{
    if (r && r->hdr) {
        munmap(r->hdr, r->size);
        close(r->fd);
        r->hdr = NULL;
        r->fd = -1;
    }
}

int shmq__reg_find(struct shmq__reg *r, const char *name)
{
    for (uint32_t i = 0; i < SHMQ_MAX_QUEUES; i++) {
        struct shmq_reg_queue *q = &r->dir[i];
        if (atomic_load_explicit(&q->state, memory_order_acquire) !=
            SHMQ_DIR_ACTIVE)
            continue;
        if (strncmp(q->name, name, sizeof(q->name)) == 0)
            return (int)i;
    }
    return -ENOENT;
}

struct shmq_reg_proc *shmq__reg_proc(struct shmq__reg *r, uint32_t idx)
{
    return idx < r->max_procs ? &r->procs[idx] : NULL;
}

int shmq__reg_register(struct shmq__reg *r, int *lock_fd, uint32_t *token)
{
    char path[64];
    int rc = shmq__shm_name(path, sizeof(path), r->instance, NULL);
    if (rc)
        return rc;
    /* A description of our own: the lock lives and dies with it. */
    int fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    for (uint32_t i = 0; i < r->max_procs; i++) {
        struct shmq_reg_proc *p = &r->procs[i];
        uint64_t w = atomic_load_explicit(&p->word, memory_order_acquire);
        if (SHMQ_PROC_STATE(w) != SHMQ_PROC_FREE)
            continue;
        if (shmq__lock(fd, SHMQ_LOCK_PROC_BASE + i, 0) != 0)
            continue; /* someone alive is on it */
        /* Look again, now that the lock is ours: between the look above
         * and the lock, another process may have registered here and
         * died (its lock free again). Its entry must stay as it left it
         * (the queues bitmap is what its repair scans). A FREE word no
         * longer changes under our lock: only the lock holder leaves
         * FREE, and a repair writes FREE last. */
        w = atomic_load_explicit(&p->word, memory_order_acquire);
        if (SHMQ_PROC_STATE(w) != SHMQ_PROC_FREE) {
            shmq__unlock(fd, SHMQ_LOCK_PROC_BASE + i);
            continue;
        }
        uint32_t inc = SHMQ_PROC_INC(w) & 0xffffu;
        if (inc == 0)
            inc = 1;
        atomic_store_explicit(&p->pid, (int32_t)getpid(), memory_order_relaxed);
        atomic_store_explicit(&p->uid, (uint32_t)geteuid(), memory_order_relaxed);
        atomic_store_explicit(&p->start_ns, shmq__now_ns(CLOCK_REALTIME),
                              memory_order_relaxed);
        atomic_store_explicit(&p->leases, 0, memory_order_relaxed);
        for (int k = 0; k < 16; k++)
            atomic_store_explicit(&p->queues[k], 0, memory_order_relaxed);
        for (unsigned k = 0; k < SHMQ_PROC_SLEEPS; k++)
            atomic_store_explicit(&p->sleeps[k], 0, memory_order_relaxed);
        /* Release: the fields above are visible to whoever sees ALIVE. */
        if (atomic_compare_exchange_strong_explicit(
                &p->word, &w, SHMQ_PROC_WORD(inc, SHMQ_PROC_ALIVE),
                memory_order_release, memory_order_relaxed)) {
            *lock_fd = fd;
            *token = SHMQ_TOKEN(i, inc);
            return 0;
        }
        shmq__unlock(fd, SHMQ_LOCK_PROC_BASE + i);
    }
    close(fd);
    return -ENOSPC;
}

void shmq__reg_waiters(struct shmq__reg *r, uint32_t dir_idx,
                       uint64_t generation, uint32_t *producers,
                       uint32_t *consumers)
{
    uint32_t want = shmq_sleep_rec(dir_idx, generation, 0, 0);
    uint32_t np = 0, nc = 0;

    for (uint32_t i = 0; i < r->max_procs; i++) {
        struct shmq_reg_proc *p = &r->procs[i];
        /* Acquire: pairs with the release CAS to ALIVE in
         * shmq__reg_register, after it cleared the records. */
        uint64_t w = atomic_load_explicit(&p->word, memory_order_acquire);
        if (SHMQ_PROC_STATE(w) != SHMQ_PROC_ALIVE)
            continue;
        uint32_t ip = 0, ic = 0;
        for (unsigned k = 0; k < SHMQ_PROC_SLEEPS; k++) {
            uint32_t rec = atomic_load_explicit(&p->sleeps[k],
                                                memory_order_relaxed);
            if ((rec & ~SHMQ_SLEEP_NOT_FULL) != want)
                continue;
            if (rec & SHMQ_SLEEP_NOT_FULL)
                ip++;
            else
                ic++;
        }
        /* ALIVE in the table but its liveness lock free: killed and not
         * yet repaired; its records name nobody asleep. (An error of the
         * lock query proves nothing: count them.) */
        if ((ip || ic) &&
            shmq__lock_held(r->fd, SHMQ_LOCK_PROC_BASE + i) == 0)
            continue;
        np += ip;
        nc += ic;
    }
    *producers = np;
    *consumers = nc;
}
