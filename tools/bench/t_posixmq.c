/* SPDX-License-Identifier: MIT */
/*
 * POSIX message queues (mq_overview(7)): blocking mq_send/mq_receive,
 * priority 0 (FIFO), one queue per bench queue, depth = the case's
 * capacity where the kernel allows it.
 *
 * Limits: a queue deeper than /proc/sys/fs/mqueue/msg_max (default 10) or
 * with messages larger than msgsize_max (default 8192) needs either
 * CAP_SYS_RESOURCE or those sysctls raised; the bytes of all queues of a
 * user count against RLIMIT_MSGQUEUE (default 800 KiB), whose hard limit
 * only CAP_SYS_RESOURCE can raise. bt_mq_begin raises the soft limit to
 * the hard one, probes the deepest and the largest queue the run needs,
 * and, if a sysctl refuses them and is writable (root), raises it;
 * bt_mq_end puts the old values back. Where the kernel still refuses a
 * case's queues, their depth is halved until it accepts them, and the
 * case's note says what was used.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct knob {
    const char *name;
    long old, now;
    int changed;
};

static struct knob knobs[3] = {
    {"msg_max", -1, -1, 0},
    {"msgsize_max", -1, -1, 0},
    {"queues_max", -1, -1, 0},
};
enum { K_MSG, K_SIZE, K_QUEUES };

static int usable = 1;
static uint32_t size_max = UINT32_MAX;
/* the depth the last case needed, to start there on its next repetition */
static struct {
    uint32_t size, queues, capacity, depth;
} last;

static long knob_read(const struct knob *k)
{
    char path[64], buf[32];
    snprintf(path, sizeof(path), "/proc/sys/fs/mqueue/%s", k->name);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = fgets(buf, sizeof(buf), f) ? strtol(buf, NULL, 10) : -1;
    fclose(f);
    return v;
}

static int knob_write(const struct knob *k, long v)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/sys/fs/mqueue/%s", k->name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    int ok = fprintf(f, "%ld\n", v) > 0;
    if (fclose(f) != 0 || !ok)
        return -EIO;
    return 0;
}

/* Raise a sysctl to at least v (root only); remember the old value. */
static void knob_raise(struct knob *k, long v)
{
    long cur = knob_read(k);
    if (cur < 0 || cur >= v || geteuid() != 0)
        return;
    if (knob_write(k, v) == 0) {
        if (!k->changed)
            k->old = cur;
        k->changed = 1;
    }
}

/* Whether the effective capabilities hold CAP_SYS_RESOURCE (bit 24),
 * which lets mq_open ignore msg_max, msgsize_max and queues_max. */
static int cap_sys_resource(void)
{
    char line[128];
    int has = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "CapEff:", 7) == 0)
            has = (strtoull(line + 7, NULL, 16) >> 24) & 1u;
    fclose(f);
    return has;
}

/* Try to make (and remove) one queue of this shape. 0 or -errno. */
static int probe(uint32_t depth, uint32_t size)
{
    char name[64];
    struct mq_attr a = {.mq_maxmsg = depth, .mq_msgsize = size};
    snprintf(name, sizeof(name), "/shmq-bench.%d.probe", (int)getpid());
    mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
    if (q == (mqd_t)-1)
        return -errno;
    mq_close(q);
    mq_unlink(name);
    return 0;
}

void bt_mq_begin(uint32_t depth, uint32_t size, uint32_t queues)
{
    struct rlimit rl;
    char lim[48] = "?";
    int cap = cap_sys_resource();

    if (getrlimit(RLIMIT_MSGQUEUE, &rl) == 0) {
        struct rlimit want = {RLIM_INFINITY, RLIM_INFINITY};
        if (setrlimit(RLIMIT_MSGQUEUE, &want) != 0) {
            want = rl;
            want.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_MSGQUEUE, &want);
        }
        getrlimit(RLIMIT_MSGQUEUE, &rl);
        if (rl.rlim_cur == RLIM_INFINITY)
            snprintf(lim, sizeof(lim), "unlimited");
        else
            snprintf(lim, sizeof(lim), "%llu B",
                     (unsigned long long)rl.rlim_cur);
    }
    for (int i = 0; i < 3; i++)
        knobs[i].now = knob_read(&knobs[i]);
    /* EINVAL: a sysctl limit (EMFILE would be RLIMIT_MSGQUEUE). */
    if (probe(depth, BT_MIN_SIZE) == -EINVAL)
        knob_raise(&knobs[K_MSG], depth);
    if (probe(1, size) == -EINVAL)
        knob_raise(&knobs[K_SIZE], size);
    if (!cap && knobs[K_QUEUES].now >= 0 &&
        knobs[K_QUEUES].now < (long)queues + 16)
        knob_raise(&knobs[K_QUEUES], (long)queues + 16);

    int rc = probe(1, BT_MIN_SIZE);
    usable = rc == 0;
    if (usable && probe(1, size) < 0) {
        long sm = knob_read(&knobs[K_SIZE]);
        size_max = sm > 0 ? (uint32_t)sm : BT_MIN_SIZE;
    }

    char sysctls[160] = "";
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        const struct knob *k = &knobs[i];
        off += (size_t)snprintf(sysctls + off, sizeof(sysctls) - off,
                                "%s%s %ld", i ? ", " : "", k->name,
                                k->changed ? k->old : k->now);
        if (k->changed && off < sizeof(sysctls))
            off += (size_t)snprintf(sysctls + off, sizeof(sysctls) - off,
                                    " -> %ld", knob_read(k));
        if (off >= sizeof(sysctls))
            break;
    }
    int changed = knobs[0].changed || knobs[1].changed || knobs[2].changed;
    snprintf(bt_env.mq_note, sizeof(bt_env.mq_note),
             "POSIX mq: %s%s; %s; RLIMIT_MSGQUEUE %s; a queue's depth is "
             "halved until the kernel accepts it (see notes)",
             usable ? "" : "NOT USABLE: ", sysctls,
             changed ? "raised for this run and restored at exit"
             : cap   ? "unchanged (CAP_SYS_RESOURCE exceeds them)"
                     : "unchanged",
             lim);
}

void bt_mq_end(void)
{
    for (int i = 0; i < 3; i++)
        if (knobs[i].changed && knob_write(&knobs[i], knobs[i].old) == 0)
            knobs[i].changed = 0;
}

struct mqs {
    uint32_t n;
    int unlinked;
    pid_t owner; /* the parent, whose pid names the queues */
    mqd_t q[];
};

static void mq_name(char *buf, size_t len, const struct bt_run *r, uint32_t qi)
{
    const struct mqs *m = r->priv;
    snprintf(buf, len, "/shmq-bench.%d.%u.%u", (int)m->owner, r->serial, qi);
}

static const char *check(const struct bt_case *c)
{
    if (!usable)
        return "POSIX mq not usable (see the mq note)";
    if (c->size > size_max)
        return "message larger than the kernel's msgsize_max";
    return NULL;
}

static void drop_names(struct bt_run *r)
{
    struct mqs *m = r->priv;
    char name[64];
    if (!m || m->unlinked)
        return;
    for (uint32_t i = 0; i < m->n; i++) {
        mq_name(name, sizeof(name), r, i);
        mq_unlink(name);
        mq_close(m->q[i]);
    }
    m->unlinked = 1;
}

/* Make the run's queues at depth; on failure drop what was made. */
static int make_queues(struct bt_run *r, uint32_t nq, uint32_t depth)
{
    struct mqs *m = r->priv;
    struct mq_attr a = {.mq_maxmsg = depth, .mq_msgsize = r->c->size};
    char name[64];

    m->unlinked = 0;
    for (uint32_t i = 0; i < nq; i++) {
        mq_name(name, sizeof(name), r, i);
        m->q[i] = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
        if (m->q[i] == (mqd_t)-1) {
            int rc = -errno;
            m->n = i;
            drop_names(r);
            return rc;
        }
        m->n = i + 1;
    }
    return 0;
}

static int setup(struct bt_run *r, char *err, size_t errlen)
{
    const struct bt_case *c = r->c;
    uint32_t nq = c->wl == BT_RTT ? 2 : c->queues;
    uint32_t depth = c->capacity;
    int rc;

    struct mqs *m = calloc(1, sizeof(*m) + nq * sizeof(mqd_t));
    if (!m)
        return -ENOMEM;
    m->owner = getpid();
    r->priv = m;
    if (last.size == c->size && last.queues == nq &&
        last.capacity == c->capacity)
        depth = last.depth;
    /* EMFILE: RLIMIT_MSGQUEUE; EINVAL: msg_max; ENOMEM: memory. */
    while ((rc = make_queues(r, nq, depth)) < 0 && depth > 1 &&
           (rc == -EMFILE || rc == -EINVAL || rc == -ENOMEM))
        depth /= 2;
    if (rc < 0) {
        bt_errf(err, errlen, "mq_open (%u queues, depth %u, %u B): %s", nq,
                depth, c->size, strerror(-rc));
        free(m);
        r->priv = NULL;
        return rc;
    }
    last.size = c->size;
    last.queues = nq;
    last.capacity = c->capacity;
    last.depth = depth;
    if (depth < c->capacity)
        bt_errf(err, errlen, "depth %u, not %u: the kernel refused more "
                             "(RLIMIT_MSGQUEUE or msg_max)",
                depth, c->capacity);
    return 0;
}

static void teardown(struct bt_run *r, int killed)
{
    (void)killed;
    drop_names(r);
    free(r->priv);
    r->priv = NULL;
}

static int open_end(const struct bt_run *r, uint32_t qi, int role,
                    struct bt_end *e)
{
    char name[64];
    mq_name(name, sizeof(name), r, qi);
    mqd_t q = mq_open(name, role == BT_SEND ? O_WRONLY : O_RDONLY);
    if (q == (mqd_t)-1)
        return -errno;
    e->fd = (int)q;
    return 0;
}

static void close_end(struct bt_end *e)
{
    if (e->fd >= 0)
        mq_close((mqd_t)e->fd);
    e->fd = -1;
}

static int send1(struct bt_end *e, const void *msg)
{
    while (mq_send((mqd_t)e->fd, msg, e->size, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

static int recv1(struct bt_end *e, void *buf)
{
    ssize_t n;
    while ((n = mq_receive((mqd_t)e->fd, buf, e->size, NULL)) < 0)
        if (errno != EINTR)
            return -errno;
    return (int)n;
}

const struct bt_transport bt_mq = {
    .name = "mq",
    .about = "POSIX message queue, blocking mq_send/mq_receive",
    .check = check,
    .setup = setup,
    .attached = drop_names,
    .teardown = teardown,
    .open = open_end,
    .close = close_end,
    .send = send1,
    .recv = recv1,
    .batch_note = "POSIX mq has no batch call",
};
