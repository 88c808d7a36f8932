/* SPDX-License-Identifier: MIT */
/*
 * One repetition of one case on one transport, in child processes.
 *
 *   parent                                children (fork)
 *   setup: create the queues
 *   fork n children  ------------------>  open their ends
 *   read n bytes of the ready pipe  <---  write one byte each
 *   attached: drop names; t0 = now
 *   close the go pipe  ----------------->  read() returns 0: all start
 *   throughput: a warm-up of duration / 4, then raise `measuring`
 *   (consumers note their count when they see it) and sleep for the
 *   duration; then raise stop; producers
 *   finish their message, the last one sends a stop message to each
 *   consumer; consumers note when their stop arrived
 *   round trip: the pinger stops by itself (rounds or duration)
 *   reap every child before t0 + watchdog, else kill them all: a stall
 *   teardown
 *
 * Each child writes its counts into its own slot of a shared anonymous
 * mapping; CPU time comes from wait4(). A child also arms alarm() and
 * PR_SET_PDEATHSIG, so that nothing outlives the parent or the watchdog.
 */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SEQ_MASK ((UINT64_C(1) << 56) - 1)
#define PROGRESS_EVERY 256u

struct slot {
    _Alignas(128) _Atomic uint64_t progress; /* consumers: received so far */
    uint64_t sent;     /* producers: messages sent (stop not counted) */
    uint64_t got;      /* consumers: messages received */
    uint64_t base;     /* consumers: received before the measured window */
    uint64_t end_ns;   /* consumers: when the stop arrived */
    uint64_t disorder; /* messages out of per-producer order */
    uint64_t lat[4];   /* pinger: p50, p99, p99.9, max */
    int32_t rc;        /* 0 or -errno */
    int32_t stage;     /* 1: opening, 2: running */
};

struct shared {
    _Alignas(128) _Atomic uint32_t stop;  /* producers: finish */
    _Atomic uint32_t measuring;           /* the measured window began */
    _Alignas(128) _Atomic uint32_t producers_done;
    uint64_t t0;  /* go */
    uint64_t t1;  /* start of the measured window */
    struct slot slot[BT_MAX_CHILDREN];
};

uint64_t bt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void bt_backoff(unsigned *spins)
{
    if ((++*spins & 255u) != 0)
        cpu_relax();
    else
        sched_yield();
}

void bt_errf(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

static inline void put_seq(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

static inline uint64_t get_seq(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Per-producer order: with one consumer every message of a producer comes
 * in sequence; with several, each consumer sees an increasing subsequence. */
struct order {
    uint64_t next[BT_MAX_CHILDREN];
    uint32_t nprod;
    int strict;
    uint64_t bad;
};

static inline void check_order(struct order *o, uint64_t v)
{
    uint32_t p = (uint32_t)(v >> 56);
    uint64_t sq = v & SEQ_MASK;
    if (p >= o->nprod) {
        o->bad++;
        return;
    }
    if (o->strict ? sq != o->next[p] : sq < o->next[p])
        o->bad++;
    o->next[p] = sq + 1;
}

/* ---- child roles ---------------------------------------------------------- */

static int produce(const struct bt_run *r, struct shared *sh, unsigned idx,
                   struct bt_end *e, unsigned char *buf)
{
    const struct bt_case *c = r->c;
    const struct bt_transport *t = r->t;
    const uint64_t tag = (uint64_t)idx << 56;
    uint64_t seq = 0;
    uint32_t qi = 0;
    int rc;

    if (c->batch <= 1) {
        while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
            put_seq(buf, tag | seq);
            if ((rc = t->send(&e[qi], buf)) < 0)
                return rc;
            seq++;
            if (++qi == c->queues)
                qi = 0;
        }
    } else {
        struct iovec v[BT_MAX_BATCH];
        for (unsigned i = 0; i < c->batch; i++)
            v[i] = (struct iovec){buf + (size_t)i * c->size, c->size};
        while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
            for (unsigned i = 0; i < c->batch; i++)
                put_seq(v[i].iov_base, tag | (seq + i));
            for (unsigned done = 0; done < c->batch; done += (unsigned)rc)
                if ((rc = t->send_batch(&e[qi], v + done,
                                        c->batch - done)) < 0)
                    return rc;
            seq += c->batch;
            if (++qi == c->queues)
                qi = 0;
        }
    }
    sh->slot[idx].sent = seq;
    /* The last producer to finish ends the run: every message sent is
     * ahead of these stops in FIFO order. */
    if (atomic_fetch_add_explicit(&sh->producers_done, 1,
                                  memory_order_acq_rel) +
            1 ==
        c->producers) {
        put_seq(buf, BT_STOP);
        for (uint32_t k = 0; k < c->consumers; k++) {
            if ((rc = t->send(&e[qi], buf)) < 0)
                return rc;
            if (++qi == c->queues)
                qi = 0;
        }
    }
    return 0;
}

static int consume(const struct bt_run *r, struct shared *sh, unsigned idx,
                   struct bt_end *e, unsigned char *buf)
{
    const struct bt_case *c = r->c;
    const struct bt_transport *t = r->t;
    struct slot *s = &sh->slot[idx];
    struct order o = {.nprod = c->producers, .strict = c->consumers == 1};
    uint64_t got = 0;
    uint32_t qi = 0;
    int rc, done = 0, measuring = 0;

    while (!done) {
        if (!measuring &&
            atomic_load_explicit(&sh->measuring, memory_order_relaxed)) {
            measuring = 1;
            s->base = got;
        }
        if (c->batch <= 1) {
            if ((rc = t->recv(&e[qi], buf)) < 0)
                return rc;
            if ((uint32_t)rc != c->size)
                return -EBADMSG;
            uint64_t v = get_seq(buf);
            if (v == BT_STOP)
                break;
            check_order(&o, v);
            got++;
        } else {
            struct iovec v[BT_MAX_BATCH];
            for (unsigned i = 0; i < c->batch; i++)
                v[i] = (struct iovec){buf + (size_t)i * c->size, c->size};
            if ((rc = t->recv_batch(&e[qi], v, c->batch)) < 0)
                return rc;
            for (int i = 0; i < rc; i++) {
                uint64_t x = get_seq(v[i].iov_base);
                if (x == BT_STOP) {
                    done = 1;
                    break;
                }
                check_order(&o, x);
                got++;
            }
        }
        if ((got % PROGRESS_EVERY) == 0 || c->batch > 1)
            atomic_store_explicit(&s->progress, got, memory_order_relaxed);
        if (++qi == c->queues)
            qi = 0;
    }
    s->end_ns = bt_now_ns();
    if (!measuring)
        s->base = got;
    s->got = got;
    s->disorder = o.bad;
    atomic_store_explicit(&s->progress, got, memory_order_relaxed);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank on sorted samples. */
static uint64_t pct(const uint64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static int ping(const struct bt_run *r, struct shared *sh, struct slot *s,
                struct bt_end *e, unsigned char *buf, uint64_t *lat)
{
    const struct bt_transport *t = r->t;
    const uint64_t rounds = bt_opt.rounds;
    const uint64_t warm = rounds / 10 < 1000 ? rounds / 10 : 1000;
    uint64_t n = 0, bad = 0;
    int rc;

    uint64_t seq = 0;
    for (uint64_t i = 0; i < warm; i++, seq++) {
        put_seq(buf, seq);
        if ((rc = t->send(&e[0], buf)) < 0 || (rc = t->recv(&e[1], buf)) < 0)
            return rc;
        bad += get_seq(buf) != seq;
    }
    const uint64_t end = sh->t0 + bt_opt.duration_ns;
    uint64_t prev = bt_now_ns();
    for (uint64_t i = 0; i < rounds; i++, seq++) {
        put_seq(buf, seq);
        if ((rc = t->send(&e[0], buf)) < 0 || (rc = t->recv(&e[1], buf)) < 0)
            return rc;
        uint64_t now = bt_now_ns();
        bad += get_seq(buf) != seq;
        lat[n++] = now - prev;
        prev = now;
        if (now >= end)
            break;
    }
    put_seq(buf, BT_STOP);
    if ((rc = t->send(&e[0], buf)) < 0)
        return rc;
    qsort(lat, n, sizeof(*lat), cmp_u64);
    s->lat[0] = pct(lat, n, 0.50);
    s->lat[1] = pct(lat, n, 0.99);
    s->lat[2] = pct(lat, n, 0.999);
    s->lat[3] = lat[n - 1];
    s->got = n;
    s->sent = n;
    s->disorder = bad;
    s->end_ns = bt_now_ns();
    return 0;
}

static int pong(const struct bt_run *r, struct bt_end *e, unsigned char *buf)
{
    const struct bt_transport *t = r->t;
    int rc;
    for (;;) {
        if ((rc = t->recv(&e[0], buf)) < 0)
            return rc;
        if (get_seq(buf) == BT_STOP)
            return 0;
        if ((rc = t->send(&e[1], buf)) < 0)
            return rc;
    }
}

/* Child idx of the run: open, say ready, wait for go, work, exit. */
static _Noreturn void child(const struct bt_run *r, struct shared *sh,
                            unsigned idx, int ready_fd, int go_fd,
                            pid_t parent)
{
    const struct bt_case *c = r->c;
    struct slot *s = &sh->slot[idx];
    sigset_t none;
    int rtt = c->wl == BT_RTT;
    int sender = rtt ? idx == 0 : idx < c->producers;
    uint32_t nq = rtt ? 2 : c->queues;
    int rc = 0;

    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(3);
    alarm((unsigned)(bt_opt.watchdog_ns / 1000000000u) + 30u);

    struct bt_end *e = calloc(nq, sizeof(*e));
    unsigned char *buf = calloc(BT_MAX_BATCH, c->size);
    uint64_t *lat = rtt && idx == 0 ? calloc(bt_opt.rounds, sizeof(*lat))
                                    : NULL;
    if (!e || !buf || (rtt && idx == 0 && !lat)) {
        rc = -ENOMEM;
        goto fail_open;
    }
    memset(buf, 0xa5, (size_t)BT_MAX_BATCH * c->size);
    for (uint32_t qi = 0; qi < nq; qi++) {
        int role = rtt ? ((qi == 0) == (idx == 0) ? BT_SEND : BT_RECV)
                       : (sender ? BT_SEND : BT_RECV);
        e[qi].run = r;
        e[qi].role = role;
        e[qi].qi = qi;
        e[qi].size = c->size;
        e[qi].fd = -1;
        if ((rc = r->t->open(r, qi, role, &e[qi])) < 0) {
            while (qi-- > 0)
                r->t->close(&e[qi]);
            goto fail_open;
        }
    }
    char one = 1;
    if (write(ready_fd, &one, 1) != 1)
        _exit(4);
    close(ready_fd);
    char x;
    while (read(go_fd, &x, 1) < 0 && errno == EINTR)
        ;
    close(go_fd);

    if (rtt)
        rc = idx == 0 ? ping(r, sh, s, e, buf, lat) : pong(r, e, buf);
    else if (sender)
        rc = produce(r, sh, idx, e, buf);
    else
        rc = consume(r, sh, idx, e, buf);
    for (uint32_t qi = 0; qi < nq; qi++)
        r->t->close(&e[qi]);
    if (rc < 0) {
        s->rc = rc;
        s->stage = 2;
        _exit(1);
    }
    _exit(0);

fail_open:
    s->rc = rc;
    s->stage = 1;
    _exit(1);
}

/* ---- parent side ---------------------------------------------------------- */

struct kids {
    unsigned n, left;
    pid_t pid[BT_MAX_CHILDREN];
    int status[BT_MAX_CHILDREN];
    struct rusage ru[BT_MAX_CHILDREN];
    int failed; /* index of a child that ended badly, or -1 */
};

/* Reap children until all are gone (0), one fails (-ECHILD), the deadline
 * passes (-ETIMEDOUT), or a signal asks us to stop (-EINTR). SIGCHLD is
 * blocked in the parent, so sigtimedwait sees it. */
static int reap(struct kids *k, uint64_t deadline)
{
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    for (;;) {
        for (unsigned i = 0; i < k->n; i++) {
            if (k->pid[i] <= 0)
                continue;
            pid_t p = wait4(k->pid[i], &k->status[i], WNOHANG, &k->ru[i]);
            if (p != k->pid[i])
                continue;
            k->pid[i] = -k->pid[i];
            k->left--;
            if (!WIFEXITED(k->status[i]) || WEXITSTATUS(k->status[i]) != 0) {
                k->failed = (int)i;
                return -ECHILD;
            }
        }
        if (k->left == 0)
            return 0;
        if (bt_interrupted)
            return -EINTR;
        uint64_t now = bt_now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        uint64_t wait = deadline - now;
        if (wait > 100000000u)
            wait = 100000000u;
        struct timespec ts = {(time_t)(wait / 1000000000u),
                              (long)(wait % 1000000000u)};
        sigtimedwait(&chld, NULL, &ts);
    }
}

static void kill_all(struct kids *k)
{
    for (unsigned i = 0; i < k->n; i++)
        if (k->pid[i] > 0)
            kill(k->pid[i], SIGKILL);
    for (unsigned i = 0; i < k->n; i++) {
        if (k->pid[i] <= 0)
            continue;
        while (wait4(k->pid[i], &k->status[i], 0, &k->ru[i]) < 0 &&
               errno == EINTR)
            ;
        k->pid[i] = -k->pid[i];
        k->left--;
    }
}

/* Read one byte from each child; 0, or -EIO when a child closed its end
 * without writing (it failed to open), -ETIMEDOUT, -EINTR. */
static int wait_ready(int fd, unsigned n, uint64_t deadline)
{
    unsigned got = 0;
    while (got < n) {
        if (bt_interrupted)
            return -EINTR;
        uint64_t now = bt_now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        uint64_t ms = (deadline - now) / 1000000u + 1;
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, ms > 100 ? 100 : (int)ms);
        if (rc <= 0)
            continue;
        char buf[BT_MAX_CHILDREN];
        ssize_t k = read(fd, buf, sizeof(buf));
        if (k == 0)
            return -EIO;
        if (k > 0)
            got += (unsigned)k;
    }
    return 0;
}

static const char *role_name(const struct bt_case *c, unsigned i)
{
    if (c->wl == BT_RTT)
        return i == 0 ? "pinger" : "ponger";
    return i < c->producers ? "producer" : "consumer";
}

static void explain_failure(const struct bt_case *c, const struct kids *k,
                            const struct shared *sh, char *err, size_t len)
{
    unsigned i = (unsigned)k->failed;
    const struct slot *s = &sh->slot[i];
    int st = k->status[i];
    if (s->rc < 0)
        bt_errf(err, len, "%s %u: %s: %s", role_name(c, i), i,
                s->stage == 1 ? "open" : "run", strerror(-s->rc));
    else if (WIFSIGNALED(st))
        bt_errf(err, len, "%s %u killed by %s", role_name(c, i), i,
                strsignal(WTERMSIG(st)));
    else
        bt_errf(err, len, "%s %u exited with status %d", role_name(c, i), i,
                WEXITSTATUS(st));
}

static double cpu_seconds(const struct kids *k)
{
    double s = 0;
    for (unsigned i = 0; i < k->n; i++)
        s += (double)k->ru[i].ru_utime.tv_sec +
             (double)k->ru[i].ru_utime.tv_usec / 1e6 +
             (double)k->ru[i].ru_stime.tv_sec +
             (double)k->ru[i].ru_stime.tv_usec / 1e6;
    return s;
}

/* Fill rep from the children's slots. */
static int account(const struct bt_case *c, const struct shared *sh,
                   const struct kids *k, uint64_t t0, int stalled,
                   struct bt_rep *rep, char *err, size_t errlen)
{
    uint64_t sent = 0, got = 0, base = 0, bad = 0, end = sh->t1;
    unsigned n = k->n;

    memset(rep, 0, sizeof(*rep));
    rep->stalled = stalled;
    if (c->wl == BT_RTT) {
        const struct slot *s = &sh->slot[0];
        if (stalled) {
            rep->count = 0;
            rep->lat[0] = rep->lat[1] = rep->lat[2] = rep->lat[3] =
                (double)bt_opt.watchdog_ns;
            return 0;
        }
        if (s->disorder) {
            bt_errf(err, errlen, "%llu replies did not match their request",
                    (unsigned long long)s->disorder);
            return -EBADMSG;
        }
        for (int j = 0; j < 4; j++)
            rep->lat[j] = (double)s->lat[j];
        rep->count = s->got;
        rep->msgs = s->end_ns > t0 ? (double)(2 * s->got) * 1e9 /
                                         (double)(s->end_ns - t0)
                                   : 0;
        rep->cpu = s->got ? cpu_seconds(k) * 1e6 / (double)(2 * s->got) : 0;
        return 0;
    }
    for (unsigned i = 0; i < n; i++) {
        const struct slot *s = &sh->slot[i];
        if (i < c->producers) {
            sent += s->sent;
            continue;
        }
        got += stalled ? atomic_load_explicit(
                             &((struct slot *)s)->progress,
                             memory_order_relaxed)
                       : s->got;
        base += s->base;
        bad += s->disorder;
        if (s->end_ns > end)
            end = s->end_ns;
    }
    if (!stalled && sent != got) {
        bt_errf(err, errlen, "%llu messages sent but %llu received",
                (unsigned long long)sent, (unsigned long long)got);
        return -EBADMSG;
    }
    if (bad) {
        bt_errf(err, errlen, "%llu messages out of order", (unsigned long long)bad);
        return -EBADMSG;
    }
    /* Throughput over the measured window; CPU over the whole life of
     * the processes and every message they moved. A stall counts what
     * got through over the whole watchdog time. */
    double secs = stalled ? (double)bt_opt.watchdog_ns / 1e9
                          : (double)(end - sh->t1) / 1e9;
    uint64_t window = stalled ? got : got - base;
    rep->count = got;
    rep->msgs = secs > 0 ? (double)window / secs : 0;
    rep->cpu = got ? cpu_seconds(k) * 1e6 / (double)got : 0;
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int bt_run_rep(const struct bt_case *c, const struct bt_transport *t,
               struct bt_rep *rep, char *err, size_t errlen)
{
    static unsigned serial;
    struct bt_run run = {c, t, ++serial, NULL};
    unsigned n = c->wl == BT_RTT ? 2 : c->producers + c->consumers;
    struct kids k = {.n = 0, .failed = -1};
    int ready[2] = {-1, -1}, go[2] = {-1, -1};
    int rc, stalled = 0;

    if (n > BT_MAX_CHILDREN)
        return -EINVAL;
    struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        rc = -errno;
        bt_errf(err, errlen, "mmap: %s", strerror(errno));
        return rc;
    }
    if ((rc = t->setup(&run, err, errlen)) < 0)
        goto out_unmap;
    if (pipe(ready) < 0 || pipe(go) < 0) {
        rc = -errno;
        bt_errf(err, errlen, "pipe: %s", strerror(errno));
        goto out_teardown;
    }
    fflush(NULL);
    pid_t self = getpid();
    for (unsigned i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) {
            close(ready[0]);
            close(go[1]);
            child(&run, sh, i, ready[1], go[0], self);
        }
        if (p < 0) {
            rc = -errno;
            bt_errf(err, errlen, "fork: %s", strerror(errno));
            kill_all(&k);
            goto out_teardown;
        }
        k.pid[k.n++] = p;
        k.left++;
    }
    close_fd(&ready[1]);
    close_fd(&go[0]);

    uint64_t start = bt_now_ns();
    rc = wait_ready(ready[0], n, start + bt_opt.watchdog_ns);
    if (rc < 0) {
        /* A child that failed to open has exited: find it. */
        if (rc == -EIO && reap(&k, bt_now_ns() + 1000000000u) == -ECHILD)
            explain_failure(c, &k, sh, err, errlen);
        else if (rc == -ETIMEDOUT)
            bt_errf(err, errlen, "children did not open their queues "
                                 "within the watchdog");
        else
            bt_errf(err, errlen, "%s", strerror(-rc));
        kill_all(&k);
        goto out_teardown;
    }
    if (t->attached)
        t->attached(&run);
    uint64_t t0 = bt_now_ns();
    sh->t0 = t0;
    close_fd(&go[1]); /* go: every child's read() returns 0 */

    if (c->wl != BT_RTT) {
        /* Warm-up (first touch of every page, caches, branch
         * predictors), then the measured window, then stop. */
        rc = reap(&k, t0 + bt_opt.duration_ns / 4);
        if (rc == -ETIMEDOUT) {
            sh->t1 = bt_now_ns();
            atomic_store_explicit(&sh->measuring, 1, memory_order_relaxed);
            rc = reap(&k, sh->t1 + bt_opt.duration_ns);
        }
        if (rc == 0) {
            bt_errf(err, errlen, "children ended before they were told to");
            rc = -EPROTO;
            goto out_teardown;
        }
        if (rc == -ETIMEDOUT)
            atomic_store_explicit(&sh->stop, 1, memory_order_relaxed);
    }
    if (rc == 0 || rc == -ETIMEDOUT)
        rc = reap(&k, t0 + bt_opt.watchdog_ns);
    if (rc == -ETIMEDOUT) {
        stalled = 1;
        rc = 0;
    }
    if (rc == -ECHILD) {
        explain_failure(c, &k, sh, err, errlen);
        kill_all(&k);
        goto out_teardown;
    }
    if (rc == -EINTR) {
        bt_errf(err, errlen, "interrupted");
        kill_all(&k);
        goto out_teardown;
    }
    kill_all(&k); /* stalled ones, if any */
    rc = account(c, sh, &k, t0, stalled, rep, err, errlen);

out_teardown:
    close_fd(&ready[0]);
    close_fd(&ready[1]);
    close_fd(&go[0]);
    close_fd(&go[1]);
    t->teardown(&run, stalled || rc < 0);
out_unmap:
    munmap(sh, sizeof(*sh));
    return rc;
}
