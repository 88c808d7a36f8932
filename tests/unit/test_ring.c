/* SPDX-License-Identifier: MIT */
/* ctest-labels: stress */
/* ctest-timeout: 300 */
/*
 * The ring under many processes (libshmq/src/ring.c), through the public
 * API only: 4 producer and 4 consumer processes over one queue of 1,024
 * slots. Every message carries (producer, seq) and a payload derived from
 * them; consumers check it, count every (producer, seq) in a shared
 * array, and check that what THEY receive from one producer comes in
 * increasing seq order (FIFO per producer among first deliveries). At the
 * end every message was received exactly once and the queue is empty.
 *
 * Termination: consumers stop when the shared count of received messages
 * reaches the total. They wait with a short timeout only so that they can
 * look at that count again; no result depends on it.
 *
 * Variants: copying send/recv (1,000,000 messages), batches (of random
 * sizes, now and then above SHMQ_BATCH_MAX) with sleep-only waiting
 * (spin_ns = 0) and with the default spin, zero-copy reserve/commit with
 * some aborted reservations and lease/ack (single and batched). One more
 * test, in one process, checks that stale reservations and leases leave
 * their slot alone once it holds another message, and three run the
 * copying, batch and zero-copy variants in threads of one process sharing
 * one handle.
 *
 * The last test is white-box (ring.h, segment.h): shmq_recv_batch on a
 * queue with a lease timeout when a lease of its batch is taken back
 * before its ack.
 */
#include <criterion/criterion.h>
#include <shmq/admin.h>
#include <shmq/shmq.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "segment.h"

/* Smaller counts under sanitizers (T_TSAN, T_ASAN: common.h). */
#if defined(T_TSAN)
#define T_SCALE 5u
#elif defined(T_ASAN)
#define T_SCALE 2u
#else
#define T_SCALE 1u
#endif

#define NPROD 4u
#define NCONS 4u
#define CAPACITY 1024u
#define MSG_MAX 64u
#define HDR_BYTES 8u
#define SEND_TIMEOUT_NS INT64_C(10000000000) /* stuck full for 10 s: fail */
#define POLL_NS INT64_C(20000000)            /* consumers re-check the total */

/* ---- children ------------------------------------------------------------ */

/* Wait for child i (t_kids); asserts it exited with status 0. */
static void reap_kid(unsigned i, int timeout_ms, const char *what)
{
    char label[64];
    snprintf(label, sizeof(label), "%s (child %u)", what, i);
    t_reap_ok(t_kids[i], timeout_ms, label);
}

/* ---- messages ------------------------------------------------------------ */

enum mode { M_COPY, M_BATCH, M_ZEROCOPY };

/* Everything the processes of one run share (MAP_SHARED, anonymous). */
struct run {
    enum mode mode;
    uint32_t per_prod;
    int64_t spin_ns;
    uint32_t abort_every; /* zero-copy: abort a reservation every n */
    _Atomic uint64_t received;
    _Atomic uint32_t failed; /* set by a child that found an error */
    _Atomic uint64_t per_cons[NCONS];
    _Atomic uint64_t aborted;
    _Atomic uint32_t counts[]; /* NPROD * per_prod */
};

struct role {
    struct run *run;
    uint32_t index;
    shmq_t *shared; /* threads: the one handle they all use; else NULL */
};

/* The handle a role works on: its own (a process), or the shared one. */
static shmq_t *role_q(const struct role *ro)
{
    return ro->shared ? ro->shared : t_child_open("ring", ro->run->spin_ns);
}

static void role_done(const struct role *ro, shmq_t *q)
{
    if (!ro->shared)
        shmq_close(q);
}

static size_t msg_len(uint32_t producer, uint32_t seq)
{
    return HDR_BYTES + (seq * 7u + producer * 13u) % (MSG_MAX - HDR_BYTES + 1);
}

static uint8_t fill_byte(uint32_t producer, uint32_t seq, size_t i)
{
    return (uint8_t)(producer * 31u + seq + (uint32_t)i * 17u);
}

static size_t make_msg(uint8_t *buf, uint32_t producer, uint32_t seq)
{
    size_t len = msg_len(producer, seq);
    memcpy(buf, &producer, 4);
    memcpy(buf + 4, &seq, 4);
    for (size_t i = HDR_BYTES; i < len; i++)
        buf[i] = fill_byte(producer, seq, i);
    return len;
}

/* Consumer side of one message: integrity, per-producer order as this
 * consumer sees it, exactly-once count. */
static void take_msg(struct run *r, int64_t *last, const uint8_t *buf,
                     size_t len)
{
    uint32_t producer, seq;
    CHILD_REQUIRE(len >= HDR_BYTES, "message of %zu bytes", len);
    memcpy(&producer, buf, 4);
    memcpy(&seq, buf + 4, 4);
    CHILD_REQUIRE(producer < NPROD && seq < r->per_prod,
                  "bad header producer %u seq %u", producer, seq);
    CHILD_REQUIRE(len == msg_len(producer, seq),
                  "producer %u seq %u: length %zu, sent %zu", producer, seq,
                  len, msg_len(producer, seq));
    for (size_t i = HDR_BYTES; i < len; i++)
        CHILD_REQUIRE(buf[i] == fill_byte(producer, seq, i),
                      "producer %u seq %u: byte %zu corrupt", producer, seq,
                      i);
    CHILD_REQUIRE((int64_t)seq > last[producer],
                  "producer %u: seq %u received after seq %lld (out of "
                  "order)", producer, seq, (long long)last[producer]);
    last[producer] = seq;
    atomic_fetch_add_explicit(&r->counts[producer * r->per_prod + seq], 1,
                              memory_order_relaxed);
}

static uint64_t total_of(const struct run *r)
{
    return (uint64_t)NPROD * r->per_prod;
}

/* ---- producers ------------------------------------------------------------ */

static void produce_copy(shmq_t *q, struct run *r, uint32_t me)
{
    uint8_t buf[MSG_MAX];
    for (uint32_t seq = 0; seq < r->per_prod; seq++) {
        size_t len = make_msg(buf, me, seq);
        int rc = shmq_send(q, buf, len, SEND_TIMEOUT_NS);
        CHILD_REQUIRE(rc == 0, "send seq %u: %s", seq, shmq_strerror(rc));
    }
}

/* Batch sizes 1..BATCH_ASK: now and then more than one call moves
 * (SHMQ_BATCH_MAX), so the cap is taken under load too. */
#define BATCH_ASK 80u

static uint32_t batch_size(unsigned *rnd)
{
    *rnd = *rnd * 1103515245u + 12345u;
    return 1 + (*rnd >> 16) % BATCH_ASK;
}

static void produce_batch(shmq_t *q, struct run *r, uint32_t me)
{
    uint8_t bufs[BATCH_ASK][MSG_MAX];
    struct iovec iov[BATCH_ASK];
    uint32_t seq = 0;
    unsigned rnd = me * 2654435761u + 1u;

    while (seq < r->per_prod) {
        uint32_t n = batch_size(&rnd);
        if (n > r->per_prod - seq)
            n = r->per_prod - seq;
        for (uint32_t i = 0; i < n; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = make_msg(bufs[i], me, seq + i);
        }
        int rc = shmq_send_batch(q, iov, n, SEND_TIMEOUT_NS);
        CHILD_REQUIRE(rc >= 1 && (uint32_t)rc <= n && rc <= SHMQ_BATCH_MAX,
                      "send_batch of %u at seq %u: %d (%s)", n, seq, rc,
                      rc < 0 ? shmq_strerror(rc) : "bad count");
        /* The rest of a short batch is sent again next round. */
        seq += (uint32_t)rc;
    }
}

static void produce_zerocopy(shmq_t *q, struct run *r, uint32_t me)
{
    shmq_resv_t rv;
    for (uint32_t seq = 0; seq < r->per_prod; seq++) {
        int rc;
        if (r->abort_every && seq % r->abort_every == 0) {
            rc = shmq_reserve(q, &rv, SEND_TIMEOUT_NS);
            CHILD_REQUIRE(rc == 0, "reserve: %s", shmq_strerror(rc));
            memset(rv.data, 0xee, rv.cap); /* written, then dropped */
            rc = shmq_abort(q, &rv);
            CHILD_REQUIRE(rc == 0, "abort: %s", shmq_strerror(rc));
            CHILD_REQUIRE(shmq_abort(q, &rv) == -ESTALE &&
                              shmq_commit(q, &rv, 1) == -ESTALE,
                          "an aborted reservation is still usable");
            atomic_fetch_add_explicit(&r->aborted, 1, memory_order_relaxed);
        }
        rc = shmq_reserve(q, &rv, SEND_TIMEOUT_NS);
        CHILD_REQUIRE(rc == 0, "reserve seq %u: %s", seq, shmq_strerror(rc));
        CHILD_REQUIRE(rv.cap == MSG_MAX, "reservation cap %zu", rv.cap);
        size_t len = make_msg(rv.data, me, seq);
        rc = shmq_commit(q, &rv, len);
        CHILD_REQUIRE(rc == 0, "commit seq %u: %s", seq, shmq_strerror(rc));
    }
}

static void producer_main(const void *arg)
{
    const struct role *ro = arg;
    struct run *r = ro->run;
    shmq_t *q = role_q(ro);
    switch (r->mode) {
    case M_COPY:
        produce_copy(q, r, ro->index);
        break;
    case M_BATCH:
        produce_batch(q, r, ro->index);
        break;
    case M_ZEROCOPY:
        produce_zerocopy(q, r, ro->index);
        break;
    }
    role_done(ro, q);
}

/* ---- consumers ------------------------------------------------------------ */

static int keep_going(struct run *r)
{
    return atomic_load_explicit(&r->received, memory_order_relaxed) <
               total_of(r) &&
           !atomic_load_explicit(&r->failed, memory_order_relaxed);
}

static void counted(struct run *r, uint32_t me, uint64_t n)
{
    atomic_fetch_add_explicit(&r->per_cons[me], n, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->received, n, memory_order_relaxed);
}

static int wait_error(int rc)
{
    return rc != -ETIMEDOUT && rc != -EAGAIN;
}

static void consume_copy(shmq_t *q, struct run *r, uint32_t me, int64_t *last)
{
    uint8_t buf[MSG_MAX];
    while (keep_going(r)) {
        ssize_t n = shmq_recv(q, buf, sizeof(buf), POLL_NS);
        if (n < 0) {
            CHILD_REQUIRE(!wait_error((int)n), "recv: %s",
                          shmq_strerror((int)n));
            continue;
        }
        take_msg(r, last, buf, (size_t)n);
        counted(r, me, 1);
    }
}

static void consume_batch(shmq_t *q, struct run *r, uint32_t me, int64_t *last)
{
    uint8_t bufs[BATCH_ASK][MSG_MAX];
    struct iovec iov[BATCH_ASK];
    size_t lens[BATCH_ASK];
    unsigned rnd = me * 40503u + 7u;
    for (unsigned i = 0; i < BATCH_ASK; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = MSG_MAX;
    }
    while (keep_going(r)) {
        uint32_t ask = batch_size(&rnd);
        int n = shmq_recv_batch(q, iov, lens, ask, POLL_NS);
        if (n < 0) {
            CHILD_REQUIRE(!wait_error(n), "recv_batch: %s", shmq_strerror(n));
            continue;
        }
        CHILD_REQUIRE(n >= 1 && (uint32_t)n <= ask && n <= SHMQ_BATCH_MAX,
                      "recv_batch of %u returned %d", ask, n);
        for (int i = 0; i < n; i++)
            take_msg(r, last, bufs[i], lens[i]);
        counted(r, me, (uint64_t)n);
    }
}

/* Zero-copy: also the id (the position the producer claimed) increases
 * per producer, and nothing is a redelivery. */
static void check_lease(struct run *r, int64_t *last, uint64_t *last_id,
                        const shmq_msg_t *m)
{
    uint32_t producer;
    CHILD_REQUIRE(m->deliveries == 1, "deliveries %u without a failure",
                  m->deliveries);
    CHILD_REQUIRE(m->len >= HDR_BYTES, "message of %zu bytes", m->len);
    memcpy(&producer, m->data, 4);
    CHILD_REQUIRE(producer < NPROD, "bad producer %u", producer);
    CHILD_REQUIRE(last_id[producer] == UINT64_MAX ||
                      m->id > last_id[producer],
                  "producer %u: id %llu after id %llu", producer,
                  (unsigned long long)m->id,
                  (unsigned long long)last_id[producer]);
    last_id[producer] = m->id;
    take_msg(r, last, m->data, m->len);
}

static void consume_zerocopy(shmq_t *q, struct run *r, uint32_t me,
                             int64_t *last)
{
    enum { B = 8 };
    shmq_msg_t ms[B];
    uint64_t last_id[NPROD];
    for (unsigned i = 0; i < NPROD; i++)
        last_id[i] = UINT64_MAX;
    while (keep_going(r)) {
        int n;
        if (me % 2 == 0) {
            n = shmq_lease(q, &ms[0], POLL_NS);
            n = n == 0 ? 1 : n;
        } else {
            n = shmq_lease_batch(q, ms, B, POLL_NS);
        }
        if (n < 0) {
            CHILD_REQUIRE(!wait_error(n), "lease: %s", shmq_strerror(n));
            continue;
        }
        for (int i = 0; i < n; i++)
            check_lease(r, last, last_id, &ms[i]);
        int rc = me % 2 == 0 ? shmq_ack(q, &ms[0])
                             : shmq_ack_batch(q, ms, (size_t)n);
        CHILD_REQUIRE(me % 2 == 0 ? rc == 0 : rc == n, "ack: %d (%s)", rc,
                      rc < 0 ? shmq_strerror(rc) : "count");
        counted(r, me, (uint64_t)n);
    }
}

static void consumer_main(const void *arg)
{
    const struct role *ro = arg;
    struct run *r = ro->run;
    int64_t last[NPROD];
    for (unsigned i = 0; i < NPROD; i++)
        last[i] = -1;
    shmq_t *q = role_q(ro);
    switch (r->mode) {
    case M_COPY:
        consume_copy(q, r, ro->index, last);
        break;
    case M_BATCH:
        consume_batch(q, r, ro->index, last);
        break;
    case M_ZEROCOPY:
        consume_zerocopy(q, r, ro->index, last);
        break;
    }
    role_done(ro, q);
}

/* ---- the run ----------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *thread_main(void *arg)
{
    const struct role *ro = arg;
    if (ro->index >= NCONS)
        producer_main(&(struct role){ro->run, ro->index - NCONS, ro->shared});
    else
        consumer_main(ro);
    return NULL;
}

/* Processes, each with its own handle, or (threads) threads of this
 * process sharing one handle. */
static void run_mpmc(enum mode mode, uint32_t per_prod, int64_t spin_ns,
                     uint32_t abort_every, int threads, const char *label)
{
    t_create(t_adm, "ring", CAPACITY, MSG_MAX);
    size_t size = sizeof(struct run) +
                  (size_t)NPROD * per_prod * sizeof(_Atomic uint32_t);
    struct run *r = t_shared_alloc(size);
    r->mode = mode;
    r->per_prod = per_prod;
    r->spin_ns = spin_ns;
    r->abort_every = abort_every;
    t_fail_flag = &r->failed;
    struct role roles[NPROD + NCONS];

    double t0 = now_s();
    if (threads) {
        /* Thread failures end the process (CHILD_REQUIRE): the runner
         * reports the exit status and the message. */
        pthread_t tid[NPROD + NCONS];
        shmq_t *q = t_child_open("ring", spin_ns);
        for (uint32_t i = 0; i < NCONS + NPROD; i++) {
            roles[i] = (struct role){r, i, q};
            cr_assert_eq(pthread_create(&tid[i], NULL, thread_main, &roles[i]),
                         0);
        }
        for (uint32_t i = 0; i < NCONS + NPROD; i++)
            pthread_join(tid[i], NULL);
        shmq_close(q);
    } else {
        for (uint32_t i = 0; i < NCONS; i++) {
            roles[i] = (struct role){r, i, NULL};
            t_spawn(consumer_main, &roles[i]);
        }
        for (uint32_t i = 0; i < NPROD; i++) {
            roles[NCONS + i] = (struct role){r, i, NULL};
            t_spawn(producer_main, &roles[NCONS + i]);
        }
        for (unsigned i = NCONS; i < NCONS + NPROD; i++)
            reap_kid(i, 240000, "producer");
        for (unsigned i = 0; i < NCONS; i++)
            reap_kid(i, 60000, "consumer");
    }
    double secs = now_s() - t0;

    uint64_t total = total_of(r);
    cr_assert_eq(atomic_load(&r->failed), 0);
    cr_assert_eq(atomic_load(&r->received), total, "received %llu of %llu",
                 (unsigned long long)atomic_load(&r->received),
                 (unsigned long long)total);
    for (uint64_t i = 0; i < total; i++) {
        uint32_t c = atomic_load_explicit(&r->counts[i], memory_order_relaxed);
        cr_assert_eq(c, 1, "producer %llu seq %llu received %u times",
                     (unsigned long long)(i / per_prod),
                     (unsigned long long)(i % per_prod), c);
    }

    struct shmq_stats st = {.size = sizeof(st)};
    cr_assert_eq(shmq_stats_by_name(shmq_admin_instance(t_adm), "ring", &st),
                 0);
    cr_assert_eq(st.depth, 0, "depth %llu", (unsigned long long)st.depth);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.retry_pending, 0);
    cr_assert_eq(st.redelivered, 0);
    cr_assert_eq(st.enqueued, total, "enqueued %llu",
                 (unsigned long long)st.enqueued);
    cr_assert_eq(st.dequeued, total, "dequeued %llu",
                 (unsigned long long)st.dequeued);
    cr_assert_eq(st.skipped, atomic_load(&r->aborted), "skipped %llu of %llu",
                 (unsigned long long)st.skipped,
                 (unsigned long long)atomic_load(&r->aborted));
    cr_assert_leq(st.high_water, CAPACITY);

    fprintf(stderr,
            "ring %s: %llu messages, %uP/%uC %s, %.2f s (%.0f msg/s); per "
            "consumer %llu %llu %llu %llu; high water %llu; skipped %llu\n",
            label, (unsigned long long)total, NPROD, NCONS,
            threads ? "threads" : "processes", secs,
            (double)total / secs,
            (unsigned long long)atomic_load(&r->per_cons[0]),
            (unsigned long long)atomic_load(&r->per_cons[1]),
            (unsigned long long)atomic_load(&r->per_cons[2]),
            (unsigned long long)atomic_load(&r->per_cons[3]),
            (unsigned long long)st.high_water,
            (unsigned long long)st.skipped);
    t_fail_flag = NULL;
    munmap(r, size);
}

TestSuite(ring, .init = t_setup, .fini = t_teardown, .timeout = 280);

/*
 * A reservation or a lease that is no longer held (committed, aborted,
 * acked already) is refused with -ESTALE and does not touch its slot, even
 * after the slot went round the ring and holds another message: the
 * stress runs above hit that only when a process is preempted for a lap.
 */
static void expect_recv(shmq_t *q, const char *want)
{
    char buf[MSG_MAX];
    ssize_t n = shmq_recv(q, buf, sizeof(buf), 0);
    cr_assert_eq(n, (ssize_t)strlen(want) + 1, "recv %s: %zd", want, n);
    cr_assert_str_eq(buf, want);
}

Test(ring, stale_reservation_and_lease_leave_the_slot_alone)
{
    t_create(t_adm, "ring", 4, MSG_MAX);
    shmq_t *q = t_open(shmq_admin_instance(t_adm), "ring");
    shmq_resv_t done, dropped;
    shmq_msg_t acked;
    cr_assert_eq(shmq_reserve(q, &done, 0), 0);      /* position 0 */
    memcpy(done.data, "first", 6);
    cr_assert_eq(shmq_commit(q, &done, 6), 0);
    cr_assert_eq(shmq_commit(q, &done, 1), -ESTALE); /* twice */
    cr_assert_eq(shmq_abort(q, &done), -ESTALE);
    cr_assert_eq(shmq_lease(q, &acked, 0), 0);
    cr_assert_eq(acked.len, 6, "a second commit changed the length");
    cr_assert_eq(shmq_ack(q, &acked), 0);
    cr_assert_eq(shmq_ack(q, &acked), -ESTALE);
    cr_assert_eq(shmq_nack(q, &acked), -ESTALE);
    cr_assert_eq(shmq_reserve(q, &dropped, 0), 0);   /* position 1 */
    cr_assert_eq(shmq_abort(q, &dropped), 0);
    cr_assert_eq(shmq_abort(q, &dropped), -ESTALE);
    char buf[MSG_MAX];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN); /* passes 1 */

    /* Positions 2..5: the slots of 0 and 1 go round and hold m4, m5. */
    static const char *const ms[] = {"m2", "m3", "m4", "m5"};
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(shmq_send(q, ms[i], 3, 0), 0);
    cr_assert_eq(shmq_commit(q, &done, 1), -ESTALE);
    cr_assert_eq(shmq_commit(q, &dropped, 1), -ESTALE);
    cr_assert_eq(shmq_abort(q, &dropped), -ESTALE);
    cr_assert_eq(shmq_ack(q, &acked), -ESTALE);
    cr_assert_eq(shmq_nack(q, &acked), -ESTALE);
    for (unsigned i = 0; i < 4; i++)
        expect_recv(q, ms[i]);
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    struct shmq_stats st = {.size = sizeof(st)};
    cr_assert_eq(shmq_stats(q, &st), 0);
    cr_assert_eq(st.enqueued, 5);
    cr_assert_eq(st.dequeued, 5);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.redelivered, 0);
    shmq_close(q);
}

Test(ring, mpmc_copy_million)
{
    run_mpmc(M_COPY, 250000u / T_SCALE, 20000, 0, 0, "send/recv");
}

Test(ring, mpmc_batch_sleep_only)
{
    run_mpmc(M_BATCH, 50000u / T_SCALE, 0, 0, 0, "batch, spin 0");
}

/* The same with the default spin before sleeping: producers and consumers
 * mostly meet while polling. */
Test(ring, mpmc_batch_default_wait)
{
    run_mpmc(M_BATCH, 250000u / T_SCALE, 20000, 0, 0, "batch");
}

Test(ring, mpmc_zero_copy)
{
    run_mpmc(M_ZEROCOPY, 25000u / T_SCALE, 20000, 97, 0, "reserve/lease");
}

/* One handle, used by 8 threads at once (shmq.h: handles are
 * thread-safe). Under TSan this also checks the ring's acquire/release
 * pairs around the payload copies, which it cannot see across processes. */
Test(ring, mpmc_threads_share_one_handle)
{
    run_mpmc(M_COPY, 50000u / T_SCALE, 20000, 0, 1, "send/recv");
}

Test(ring, mpmc_threads_zero_copy)
{
    run_mpmc(M_ZEROCOPY, 25000u / T_SCALE, 20000, 97, 1, "reserve/lease");
}

/* Batches in threads sharing one handle: under TSan this checks that the
 * payload of a batch is ordered by its publication and by its release
 * (both from the last slot to the first, plain stores but for the first
 * slot), which TSan cannot see across processes. */
Test(ring, mpmc_threads_batch)
{
    run_mpmc(M_BATCH, 250000u / T_SCALE, 20000, 0, 1, "batch");
}

/* ---- white-box: a lease taken back inside a batch --------------------------- */

/* Our own view of a queue's segment next to a handle on it. */
struct gb {
    shmq_t *q;              /* the test's handle: registers us */
    unsigned owner;         /* our process-table index */
    struct shmq__qseg seg;  /* our own view of the same segment */
};

static void gb_open(struct gb *g, const char *name)
{
    uint32_t tok;
    g->q = t_open(shmq_admin_instance(t_adm), name);
    cr_assert_eq(shmq_token(g->q, &tok), 0);
    g->owner = SHMQ_TOKEN_IDX(tok);
    int rc = shmq__qseg_open(shmq_admin_instance(t_adm), name, 1, &g->seg);
    cr_assert_eq(rc, 0, "qseg_open: %s", shmq_strerror(rc));
}

static void gb_close(struct gb *g)
{
    shmq__qseg_close(&g->seg);
    shmq_close(g->q);
}

static struct shmq_stats gb_stats(struct gb *g)
{
    struct shmq_stats st = {.size = sizeof(st)};
    cr_assert_eq(shmq_stats(g->q, &st), 0);
    return st;
}

/* The ring's own counters: nothing left waiting for redelivery. */
static void gb_no_retry(struct gb *g)
{
    struct shmq__ring *r = &g->seg.main;
    cr_assert_eq(atomic_load(&r->hdr->retry_count), 0, "retry_count %llu",
                 (unsigned long long)atomic_load(&r->hdr->retry_count));
    for (uint32_t i = 0; i < (r->cap + 63) / 64; i++)
        cr_assert_eq(atomic_load(&r->bitmap[i]), 0, "retry bitmap word %u",
                     i);
}

static void gb_expect(struct gb *g, const char *want, uint64_t id,
                      uint32_t deliveries)
{
    shmq_msg_t m;
    int rc = shmq_lease(g->q, &m, 0);
    cr_assert_eq(rc, 0, "lease for %s: %s", want, shmq_strerror(rc));
    cr_assert_eq(m.len, strlen(want) + 1, "%s: length %zu", want, m.len);
    cr_assert_str_eq((const char *)m.data, want);
    cr_assert_eq(m.id, id, "%s: id %llu, was %llu", want,
                 (unsigned long long)m.id, (unsigned long long)id);
    cr_assert_eq(m.deliveries, deliveries, "%s: deliveries %u, want %u",
                 want, m.deliveries, deliveries);
    cr_assert_eq(shmq_ack(g->q, &m), 0);
}

/*
 * shmq_recv_batch on a queue with a lease timeout, with a lease of the
 * batch taken back between its lease and its ack: the batch ends before
 * it, the messages after it were never leased and wait in order, the one
 * taken back comes again as a redelivery. A lease is stamped with the monotonic clock as
 * it is taken, so clock_gettime, interposed for this file, is where the
 * test steps in: at the first monotonic clock read after the chosen slot
 * was leased, it takes that lease back as the lease timeout would.
 */
static int (*_Atomic g_real_clock)(clockid_t, struct timespec *);

__attribute__((constructor)) static void find_clock(void)
{
    atomic_store(&g_real_clock, (int (*)(clockid_t, struct timespec *))
                                    dlsym(RTLD_NEXT, "clock_gettime"));
}

/* Set only by the one-threaded test below. */
static struct {
    struct shmq__ring *r;
    uint32_t idx;  /* take back the lease of this slot */
    int taken;
} g_take;

int clock_gettime(clockid_t clk, struct timespec *ts)
{
    if (g_take.r && !g_take.taken && clk == CLOCK_MONOTONIC) {
        struct shmq_slot *s = shmq__slot(g_take.r, g_take.idx);
        uint64_t w = atomic_load(&s->word);
        if (shmq_w_phase(w) == SHMQ_PH_LEASED) {
            struct shmq__lease l = {s, w, SHMQ_NOPOS, g_take.idx, 0};
            g_take.taken = shmq__ring_nack(g_take.r, &l) == 0 ? 1 : -1;
        }
    }
    int (*real)(clockid_t, struct timespec *) = atomic_load_explicit(
        &g_real_clock, memory_order_relaxed);
    if (real)
        return real(clk, ts);
    return (int)syscall(SYS_clock_gettime, clk, ts);
}

/* Send four messages "<tag>0".."<tag>3" at positions from..from+3, take
 * back the lease of position from + victim inside one recv_batch of 4
 * and check what it returns; then lease what came back. */
static void taken_back_in_batch(struct gb *g, char tag, uint32_t from,
                                uint32_t victim)
{
    char bufs[4][8];
    struct iovec in[4];
    size_t lens[4];
    uint64_t ids[4];
    for (uint32_t i = 0; i < 4; i++) {
        char m[3] = {tag, (char)('0' + i), 0};
        cr_assert_eq(shmq_send(g->q, m, 3, 0), 0);
        in[i] = (struct iovec){bufs[i], sizeof(bufs[i])};
        ids[i] = from + i;
    }
    g_take.r = &g->seg.main;
    g_take.idx = (uint32_t)((from + victim) & g->seg.main.mask);
    g_take.taken = 0;
    int n = shmq_recv_batch(g->q, in, lens, 4, 0);
    g_take.r = NULL;
    cr_assert_eq(g_take.taken, 1, "the lease of position %u was not taken "
                 "back inside recv_batch (%d)", from + victim, g_take.taken);
    if (victim == 0)
        cr_assert_eq(n, -ESTALE, "first lease taken back: %d", n);
    else
        cr_assert_eq(n, (int)victim, "recv_batch returned %d", n);
    for (uint32_t i = 0; i < victim; i++) {
        char m[3] = {tag, (char)('0' + i), 0};
        cr_assert_eq(lens[i], 3);
        cr_assert_str_eq(bufs[i], m);
    }
    struct shmq_stats st = gb_stats(g);
    cr_assert_eq(st.in_flight, 0, "in flight %llu",
                 (unsigned long long)st.in_flight);
    cr_assert_eq(st.retry_pending, 1);
    cr_assert_eq(st.depth, 4 - victim);

    /* The one taken back first (redeliveries come first), delivered a
     * second time; then the others, never leased, in order. */
    for (uint32_t i = victim; i < 4; i++) {
        char m[3] = {tag, (char)('0' + i), 0};
        gb_expect(g, m, ids[i], i == victim ? 2 : 1);
    }
    shmq_msg_t m;
    cr_assert_eq(shmq_lease(g->q, &m, 0), -EAGAIN);
    gb_no_retry(g);
}

Test(ring, recv_batch_lease_taken_back)
{
    struct shmq_queue_config c;
    shmq_queue_config_init(&c);
    c.capacity = 16;
    c.msg_max = MSG_MAX;
    c.lease_timeout_ns = UINT64_C(60000000000); /* no real expiry here */
    cr_assert_eq(shmq_admin_create(t_adm, "gb", &c), 0);
    struct gb g;
    gb_open(&g, "gb");
    taken_back_in_batch(&g, 'a', 0, 1);  /* 1 received, 2 left */
    taken_back_in_batch(&g, 'b', 4, 0);  /* -ESTALE, 3 left */
    taken_back_in_batch(&g, 'c', 8, 3);  /* 3 received, none left */
    taken_back_in_batch(&g, 'd', 12, 2); /* wraps after this one */
    struct shmq_stats st = gb_stats(&g);
    cr_assert_eq(st.enqueued, 16);
    cr_assert_eq(st.dequeued, 16);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.dead_lettered, 0);
    cr_assert_eq(st.redelivered, 4,
                 "redelivered %llu: four messages were delivered twice",
                 (unsigned long long)st.redelivered);
    gb_close(&g);
}
