/* SPDX-License-Identifier: MIT */
/* ctest-timeout: 300 */
/*
 * Corrupt and truncated shared memory (libshmq/src/segment.c, registry.c,
 * and the ring's bounds checks in ring.c). White-box: the test maps the
 * segments itself and writes into the structures of layout.h.
 *
 * Whatever the bytes, every call returns 0 or a documented error (-EBADMSG
 * for a bad value, -EPROTO for another layout major, -ENOENT for a segment
 * whose magic was never stored) and never crashes or hangs. Criterion runs
 * each test in a process of its own, so a signal fails the test.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <shmq/admin.h>
#include <shmq/shmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "layout.h"

TestSuite(segment, .init = t_setup, .fini = t_teardown, .timeout = 120);

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rnd_state;
static void rnd_seed(uint64_t s)
{
    rnd_state = s ? s : 1;
}
static uint64_t rnd(void)
{
    return t_rnd(&rnd_state);
}
static uint32_t rnd_below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

/* A mapping of a segment file of our own, read-write. */
struct seg {
    uint8_t *base;
    size_t size;
};

static void seg_path(char *buf, size_t cap, const char *name)
{
    if (name)
        snprintf(buf, cap, "/dev/shm/shmq.%s.%s", t_inst, name);
    else
        snprintf(buf, cap, "/dev/shm/shmq.%s", t_inst);
}

static struct seg seg_map(const char *name)
{
    char p[128];
    struct stat st;
    struct seg s;
    seg_path(p, sizeof(p), name);
    int fd = open(p, O_RDWR | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s", p);
    cr_assert_eq(fstat(fd, &st), 0);
    s.size = (size_t)st.st_size;
    s.base = mmap(NULL, s.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq(s.base, MAP_FAILED);
    close(fd);
    return s;
}

static void seg_unmap(struct seg *s)
{
    munmap(s->base, s->size);
    s->base = NULL;
}

/* The main ring's header in a mapping of a queue segment, and its slot
 * idx (layout.h). */
static struct shmq_ring_hdr *main_ring(const struct seg *s)
{
    const struct shmq_q_hdr *h = (const struct shmq_q_hdr *)s->base;
    return (struct shmq_ring_hdr *)(s->base + h->main_off);
}

static struct shmq_slot *slot_of(struct shmq_ring_hdr *rh, uint32_t idx)
{
    return (struct shmq_slot *)((uint8_t *)rh + rh->slots_off +
                                (uint64_t)idx * rh->stride);
}

/* A queue of 4 slots takes and gives 4 messages again: every slot of it
 * is usable. */
static void expect_four_slots_usable(shmq_t *q)
{
    char buf[64];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(shmq_send(q, "x", 1, 0), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 1);
}

static int try_open(const char *name, shmq_t **q)
{
    struct shmq_open_opts o;
    shmq_open_opts_init(&o);
    o.instance = t_inst;
    *q = NULL;
    return shmq_open(name, &o, q);
}

static int stats_by_name(const char *name)
{
    struct shmq_stats st;
    st.size = sizeof(st);
    return shmq_stats_by_name(t_inst, name, &st);
}

static int info_of(const char *name)
{
    struct shmq_queue_info info;
    return shmq_admin_info(t_adm, name, &info);
}

static uint64_t get_field(const uint8_t *p, unsigned width)
{
    if (width == 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void put_field(uint8_t *p, unsigned width, uint64_t v)
{
    if (width == 4) {
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, 4);
    } else {
        memcpy(p, &v, 8);
    }
}

/* A value other than orig: random, near it, a bit flipped, an edge. */
static uint64_t mutate(uint64_t orig, unsigned width)
{
    uint64_t mask = width == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * width)) - 1;
    unsigned bits = 8 * width;
    uint64_t v;
    do {
        switch (rnd_below(8)) {
        case 0: v = rnd(); break;
        case 1: v = orig + 1 + rnd_below(3); break;
        case 2: v = orig - 1 - rnd_below(3); break;
        case 3: v = orig ^ (UINT64_C(1) << rnd_below(bits)); break;
        case 4: v = 0; break;
        case 5: v = UINT64_MAX; break;
        case 6: v = orig * 2; break;
        default: v = UINT64_C(1) << rnd_below(bits); break;
        }
        v &= mask;
    } while (v == orig);
    return v;
}

/* Does the round trip work on this handle? For handles of segments that
 * were accepted. */
static void check_works(shmq_t *q)
{
    char buf[8];
    cr_assert_eq(shmq_send(q, "ok", 2, 0), 0);
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 2);
    cr_assert_eq(memcmp(buf, "ok", 2), 0);
}

/* ---- (a) queue header fields --------------------------------------------- */

enum want {
    W_BAD,   /* -EBADMSG whatever the value */
    W_PROTO, /* layout_major: -EPROTO */
    W_MAGIC, /* 0: -ENOENT (never finished), else -EBADMSG */
    W_CFG,   /* a configuration value: accepted exactly when valid */
    W_ANY,   /* not checked, harmless: accepted */
};

struct field {
    const char *what;
    size_t off; /* in the segment */
    unsigned width;
    enum want want;
};

#define QF(f, w) {#f, offsetof(struct shmq_q_hdr, f), \
                  sizeof(((struct shmq_q_hdr *)0)->f), w}

static size_t header_fields(const struct shmq_q_hdr *h, struct field *out)
{
    static const struct field q[] = {
        QF(magic, W_MAGIC),          QF(layout_major, W_PROTO),
        QF(layout_minor, W_ANY),     QF(header_size, W_BAD),
        QF(flags, W_CFG),            QF(total_size, W_BAD),
        QF(generation, W_BAD),       QF(capacity, W_BAD),
        QF(msg_max, W_BAD),          QF(stride, W_BAD),
        QF(max_deliveries, W_CFG),   QF(dlq_capacity, W_BAD),
        QF(mode, W_CFG),             QF(lease_timeout_ns, W_CFG),
        QF(main_off, W_BAD),         QF(dlq_off, W_BAD),
        QF(created_ns, W_ANY),
    };
    static const struct {
        const char *what;
        size_t off;
        unsigned width;
    } r[] = {
        {"capacity", offsetof(struct shmq_ring_hdr, capacity), 4},
        {"shift", offsetof(struct shmq_ring_hdr, shift), 4},
        {"stride", offsetof(struct shmq_ring_hdr, stride), 4},
        {"msg_max", offsetof(struct shmq_ring_hdr, msg_max), 4},
        {"bitmap_off", offsetof(struct shmq_ring_hdr, bitmap_off), 8},
        {"slots_off", offsetof(struct shmq_ring_hdr, slots_off), 8},
        {"ring_size", offsetof(struct shmq_ring_hdr, ring_size), 8},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
        out[n++] = q[i];
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
        out[n++] = (struct field){r[i].what, h->main_off + r[i].off,
                                  r[i].width, W_BAD};
        out[n++] = (struct field){r[i].what, h->dlq_off + r[i].off,
                                  r[i].width, W_BAD};
    }
    return n;
}

/* What the configuration check says of the header as it now is. */
static int cfg_verdict(const struct shmq_q_hdr *h)
{
    struct shmq_queue_config c;
    if (h->flags & ~SHMQ_QF_TS_MASK)
        return -EBADMSG;
    shmq_queue_config_init(&c);
    c.capacity = h->capacity;
    c.msg_max = h->msg_max;
    c.mode = h->mode;
    c.max_deliveries = h->max_deliveries;
    c.dlq_capacity = h->dlq_capacity;
    c.lease_timeout_ns = h->lease_timeout_ns;
    c.timestamps = h->flags & SHMQ_QF_TS_MASK;
    return shmq_queue_config_check(&c, NULL) ? -EBADMSG : 0;
}

Test(segment, header_fields_random)
{
    struct field fields[64];
    t_mkq("keeper", 2, 8, 0, 0, 0);
    t_mkq("victim", 16, 100, 3, 8, 0);
    /* A handle elsewhere keeps this process registered throughout. */
    shmq_t *keeper = NULL;
    cr_assert_eq(try_open("keeper", &keeper), 0);

    struct seg s = seg_map("victim");
    struct shmq_q_hdr *h = (struct shmq_q_hdr *)s.base;
    cr_assert_eq(h->magic, SHMQ_Q_MAGIC);
    size_t nf = header_fields(h, fields);
    size_t keep = h->dlq_off + sizeof(struct shmq_ring_hdr);
    uint8_t *orig = malloc(keep);
    cr_assert_not_null(orig);
    memcpy(orig, s.base, keep);
    unsigned seen[5] = {0};

    rnd_seed(0x5e6d1);
    for (int it = 0; it < 2000; it++) {
        const struct field *f = &fields[rnd_below((uint32_t)nf)];
        uint8_t *p = s.base + f->off;
        uint64_t was = get_field(p, f->width);
        uint64_t v = mutate(was, f->width);
        put_field(p, f->width, v);

        int want;
        switch (f->want) {
        case W_MAGIC: want = v == 0 ? -ENOENT : -EBADMSG; break;
        case W_PROTO: want = -EPROTO; break;
        case W_CFG: want = cfg_verdict(h); break;
        case W_ANY: want = 0; break;
        default: want = -EBADMSG; break;
        }
        seen[f->want]++;

        shmq_t *q = NULL;
        int rc = try_open("victim", &q);
        cr_assert_eq(rc, want,
                     "iteration %d: %s (+%zu) = %#llx: open gave %d (%s), "
                     "want %d", it, f->what, f->off, (unsigned long long)v,
                     rc, shmq_strerror(rc), want);
        if (rc == 0) {
            check_works(q);
            shmq_close(q);
        } else {
            cr_assert_null(q, "out-parameter set on failure");
        }
        /* Every reader validates the segment the same way; only shmq_open
         * compares the generation with the directory's. */
        int want_ro =
            f->off == offsetof(struct shmq_q_hdr, generation) ? 0 : want;
        rc = stats_by_name("victim");
        cr_assert_eq(rc, want_ro, "iteration %d: %s: stats_by_name %d", it,
                     f->what, rc);
        rc = info_of("victim");
        cr_assert_eq(rc, want_ro, "iteration %d: %s: info %d", it, f->what,
                     rc);

        memcpy(s.base, orig, keep);
    }
    /* Every kind of field was exercised. */
    for (int k = 0; k < 5; k++)
        cr_assert_gt(seen[k], 10, "kind %d seen %u times", k, seen[k]);

    /* The restored segment is as good as new. */
    shmq_t *q = NULL;
    cr_assert_eq(try_open("victim", &q), 0);
    check_works(q);
    shmq_close(q);
    free(orig);
    seg_unmap(&s);
    shmq_close(keeper);
}

Test(segment, header_name)
{
    t_mkq("named-queue", 4, 16, 0, 0, 0);
    struct seg s = seg_map("named-queue");
    struct shmq_q_hdr *h = (struct shmq_q_hdr *)s.base;
    size_t len = strlen(h->name);
    cr_assert_eq(len, strlen("named-queue"));
    rnd_seed(77);
    for (int it = 0; it < 500; it++) {
        /* One byte of the name or its terminator. */
        size_t i = rnd_below((uint32_t)len + 1);
        char was = h->name[i];
        char v;
        do
            v = (char)rnd();
        while (v == was);
        h->name[i] = v;
        shmq_t *q = NULL;
        cr_assert_eq(try_open("named-queue", &q), -EBADMSG,
                     "byte %zu = %#x", i, (unsigned char)v);
        cr_assert_eq(stats_by_name("named-queue"), -EBADMSG);
        h->name[i] = was;
    }
    /* No terminator anywhere. */
    char saved[64];
    memcpy(saved, h->name, sizeof(saved));
    memset(h->name, 'n', sizeof(h->name));
    shmq_t *q = NULL;
    cr_assert_eq(try_open("named-queue", &q), -EBADMSG);
    memcpy(h->name, saved, sizeof(saved));
    /* Bytes after the terminator do not matter. */
    memset(h->name + len + 1, 'x', sizeof(h->name) - len - 1);
    cr_assert_eq(try_open("named-queue", &q), 0);
    check_works(q);
    shmq_close(q);
    seg_unmap(&s);
}

Test(segment, header_random_bytes)
{
    t_mkq("keeper", 2, 8, 0, 0, 0);
    t_mkq("victim", 8, 64, 2, 4, 0);
    shmq_t *keeper = NULL;
    cr_assert_eq(try_open("keeper", &keeper), 0);
    struct seg s = seg_map("victim");
    struct shmq_q_hdr *h = (struct shmq_q_hdr *)s.base;
    const size_t ring_cfg = 40; /* the read-only part of a ring header */
    const size_t main_off = h->main_off, dlq_off = h->dlq_off;
    uint8_t *orig = malloc(s.size);
    cr_assert_not_null(orig);
    memcpy(orig, s.base, s.size);
    unsigned accepted = 0, refused = 0;

    rnd_seed(0xbadc0de);
    for (int it = 0; it < 2000; it++) {
        int nbytes = 1 + (int)rnd_below(8);
        for (int k = 0; k < nbytes; k++) {
            uint32_t where = rnd_below(3);
            size_t off = where == 0   ? rnd_below(sizeof(struct shmq_q_hdr))
                         : where == 1 ? main_off + rnd_below(ring_cfg)
                                      : dlq_off + rnd_below(ring_cfg);
            s.base[off] = (uint8_t)rnd();
        }
        shmq_t *q = NULL;
        int rc = try_open("victim", &q);
        cr_assert(rc == 0 || rc == -EBADMSG || rc == -EPROTO ||
                      rc == -ENOENT,
                  "iteration %d: open %d (%s)", it, rc, shmq_strerror(rc));
        int rs = stats_by_name("victim");
        cr_assert(rs == 0 || rs == -EBADMSG || rs == -EPROTO || rs == -ENOENT,
                  "iteration %d: stats_by_name %d", it, rs);
        if (rc == 0) {
            accepted++;
            char buf[64];
            int r1 = shmq_send(q, "x", 1, 0);
            ssize_t r2 = shmq_recv(q, buf, sizeof(buf), 0);
            cr_assert(r1 == 0 || r1 == -EIDRM, "send %d", r1);
            cr_assert(r2 == 1 || r2 == -EIDRM, "recv %zd", r2);
            shmq_close(q);
        } else {
            refused++;
        }
        memcpy(s.base, orig, s.size);
    }
    cr_assert_gt(refused, 100);
    cr_assert_gt(accepted, 10, "only reserved bytes changed: accepted");
    free(orig);
    seg_unmap(&s);
    shmq_close(keeper);
}

/* ---- (b) truncation ------------------------------------------------------ */

Test(segment, truncated)
{
    char p[128];
    struct stat st;
    t_mkq("probe", 8, 64, 2, 4, 0);
    seg_path(p, sizeof(p), "probe");
    cr_assert_eq(stat(p, &st), 0);
    const off_t full = st.st_size;
    const off_t sizes[] = {full - 1, full - 64,   full - 4096, full / 2,
                           1025,     1024,        1023,        100,
                           8,        1,           0,           full + 1,
                           full + 4096};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char name[16];
        snprintf(name, sizeof(name), "t%zu", i);
        t_mkq(name, 8, 64, 2, 4, 0);
        seg_path(p, sizeof(p), name);
        int fd = open(p, O_RDWR | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, sizes[i]), 0);
        close(fd);
        shmq_t *q = NULL;
        cr_expect_eq(try_open(name, &q), -EBADMSG, "size %lld of %lld",
                     (long long)sizes[i], (long long)full);
        cr_expect_null(q);
        cr_expect_eq(stats_by_name(name), -EBADMSG, "size %lld",
                     (long long)sizes[i]);
        cr_expect_eq(info_of(name), -EBADMSG, "size %lld",
                     (long long)sizes[i]);
        cr_expect_eq(shmq_admin_purge(t_adm, name, SHMQ_RING_MAIN), -EBADMSG);
        cr_expect_eq(shmq_admin_expire_leases(t_adm, name, 0), -EBADMSG);
    }
    /* The list still answers, and a truncated queue can be deleted. */
    cr_assert_eq(shmq_admin_list(t_adm, NULL, 0), 14);
    cr_assert_eq(shmq_admin_delete(t_adm, "t3"), 0);
    seg_path(p, sizeof(p), "t3");
    cr_assert_neq(stat(p, &st), 0);
    shmq_t *q = NULL;
    cr_assert_eq(try_open("probe", &q), 0);
    check_works(q);
    shmq_close(q);
}

/* ---- (c) corruption of an open queue ------------------------------------- */

struct rt {
    struct seg s;
    struct shmq_ring_hdr *ring[2];
    uint8_t *slots[2];
    uint32_t cap[2];
    uint32_t nrings;
    uint32_t stride, msg_max;
    unsigned owner;
};

static struct shmq_slot *rt_slot(struct rt *t, uint32_t k, uint32_t idx)
{
    return (struct shmq_slot *)(t->slots[k] + (size_t)idx * t->stride);
}

static uint64_t near(uint64_t v, uint64_t span)
{
    return v + rnd_below((uint32_t)(2 * span + 1)) - span;
}

/* One random corruption of the rings' live state. */
static void corrupt(struct rt *t)
{
    uint32_t k = t->nrings > 1 && rnd_below(4) == 0 ? 1 : 0;
    struct shmq_ring_hdr *rh = t->ring[k];
    uint32_t idx = rnd_below(t->cap[k]);
    struct shmq_slot *sl = rt_slot(t, k, idx);
    uint64_t tail = atomic_load_explicit(&rh->tail, memory_order_relaxed);

    switch (rnd_below(10)) {
    case 0: /* a random state word */
        atomic_store_explicit(&sl->word, rnd(), memory_order_relaxed);
        break;
    case 1:
    case 2: { /* a plausible one: a lap near the tail's, any phase */
        uint64_t lap = near(tail >> rh->shift, 2);
        unsigned owners[3] = {t->owner, SHMQ_OWNER_NONE,
                              rnd_below(SHMQ_OWNER_NONE + 1)};
        atomic_store_explicit(
            &sl->word,
            shmq_word(lap, rnd_below(8), rnd_below(256), owners[rnd_below(3)]),
            memory_order_relaxed);
        break;
    }
    case 3: { /* a length: random, or just past the limit */
        uint32_t len = rnd_below(2) ? (uint32_t)rnd()
                                    : t->msg_max + rnd_below(3);
        memcpy(&sl->len, &len, sizeof(len));
        break;
    }
    case 4:
        atomic_store_explicit(&rh->head,
                              rnd_below(2) ? rnd() : near(rh->head, 2 * t->cap[k]),
                              memory_order_relaxed);
        break;
    case 5:
        atomic_store_explicit(&rh->tail,
                              rnd_below(2) ? rnd() : near(tail, 2 * t->cap[k]),
                              memory_order_relaxed);
        break;
    case 6:
        atomic_store_explicit(&rh->retry_count,
                              rnd_below(2) ? rnd() : rnd_below(4),
                              memory_order_relaxed);
        break;
    case 7: { /* retry bitmap */
        _Atomic uint64_t *bm =
            (_Atomic uint64_t *)((uint8_t *)rh + rh->bitmap_off);
        uint32_t words = (t->cap[k] + 63) / 64;
        atomic_store_explicit(&bm[rnd_below(words)],
                              rnd_below(2) ? rnd()
                                           : UINT64_C(1) << rnd_below(64),
                              memory_order_relaxed);
        break;
    }
    case 8:
        atomic_store_explicit(&sl->lease_ms, (uint32_t)rnd(),
                              memory_order_relaxed);
        break;
    default: /* the high-water mark and the eventcounts */
        atomic_store_explicit(&rh->high_water, rnd(), memory_order_relaxed);
        atomic_store_explicit(&rh->not_empty.word, (uint32_t)rnd(),
                              memory_order_relaxed);
        atomic_store_explicit(&rh->not_full.word, (uint32_t)rnd(),
                              memory_order_relaxed);
        break;
    }
}

static int documented(long rc)
{
    return rc >= 0 || rc == -EAGAIN || rc == -EBADMSG || rc == -EMSGSIZE ||
           rc == -ESTALE || rc == -ETIMEDOUT;
}

/* How the calls of a run ended: a run where everything failed (or
 * nothing did) tested little. */
static unsigned n_ok, n_badmsg, n_other;

static long check_doc(long rc, const char *call, int round, int op)
{
    cr_assert(documented(rc), "round %d op %d: %s returned %ld (%s)", round,
              op, call, rc, shmq_strerror((int)rc));
    if (rc >= 0)
        n_ok++;
    else if (rc == -EBADMSG)
        n_badmsg++;
    else
        n_other++;
    return rc;
}

#define CHECK(call) check_doc((long)(call), #call, round, op)

struct held {
    shmq_msg_t m[8];
    int nm;
    shmq_resv_t r[2];
    int nr;
};

static void drop_msg(struct held *hd, int i)
{
    hd->m[i] = hd->m[--hd->nm];
}

static void one_op(shmq_t *q, const char *name, struct rt *t, struct held *hd,
                   int round, int op)
{
    uint8_t big[256], small[8];
    const uint32_t mm = t->msg_max;
    int64_t tmo = rnd_below(32) == 0 ? 1000000 : 0; /* now and then 1 ms */
    cr_assert_leq(mm, sizeof(big));

    switch (rnd_below(15)) {
    case 0: {
        size_t len = rnd_below(mm + 2);
        long rc = CHECK(shmq_send(q, big, len, tmo));
        if (len > mm)
            cr_assert_eq(rc, -EMSGSIZE);
        break;
    }
    case 1: {
        long n = CHECK(shmq_recv(q, big, sizeof(big), tmo));
        cr_assert_leq(n, (long)mm);
        break;
    }
    case 2: {
        long n = CHECK(shmq_recv(q, small, sizeof(small), 0));
        cr_assert_leq(n, (long)sizeof(small));
        break;
    }
    case 3:
        if (hd->nm == 8) {
            CHECK(shmq_ack(q, &hd->m[0]));
            drop_msg(hd, 0);
        }
        if (CHECK(shmq_lease(q, &hd->m[hd->nm], tmo)) == 0) {
            cr_assert_leq(hd->m[hd->nm].len, mm);
            cr_assert_geq(hd->m[hd->nm].deliveries, 1);
            hd->nm++;
        }
        break;
    case 4:
    case 5:
        if (hd->nm) {
            int i = (int)rnd_below((uint32_t)hd->nm);
            long rc = CHECK(rnd_below(2) ? shmq_ack(q, &hd->m[i])
                                         : shmq_nack(q, &hd->m[i]));
            cr_assert(rc == 0 || rc == -ESTALE, "ack/nack: %ld", rc);
            drop_msg(hd, i);
        }
        break;
    case 6:
        if (hd->nr == 2) {
            CHECK(shmq_abort(q, &hd->r[0]));
            hd->r[0] = hd->r[--hd->nr];
        }
        if (CHECK(shmq_reserve(q, &hd->r[hd->nr], tmo)) == 0) {
            cr_assert_eq(hd->r[hd->nr].cap, mm);
            memset(hd->r[hd->nr].data, 0x5a, mm);
            hd->nr++;
        }
        break;
    case 7:
        if (hd->nr) {
            size_t len = rnd_below(mm + 2);
            long rc = CHECK(shmq_commit(q, &hd->r[0], len));
            if (len > mm)
                cr_assert_eq(rc, -EMSGSIZE);
            else
                hd->r[0] = hd->r[--hd->nr];
        }
        break;
    case 8:
        if (hd->nr) {
            long rc = CHECK(shmq_abort(q, &hd->r[0]));
            cr_assert(rc == 0 || rc == -ESTALE, "abort: %ld", rc);
            hd->r[0] = hd->r[--hd->nr];
        }
        break;
    case 9: {
        struct iovec v[3] = {{big, rnd_below(mm + 1)},
                             {big, rnd_below(mm + 2)},
                             {big, rnd_below(mm + 1)}};
        long n = CHECK(shmq_send_batch(q, v, 3, tmo));
        cr_assert_leq(n, 3);
        break;
    }
    case 10: {
        uint8_t b[3][256];
        struct iovec v[3] = {{b[0], mm}, {b[1], rnd_below(mm + 1)}, {b[2], mm}};
        size_t lens[3] = {SIZE_MAX, SIZE_MAX, SIZE_MAX};
        long n = CHECK(shmq_recv_batch(q, v, lens, 3, tmo));
        cr_assert_leq(n, 3);
        for (long i = 0; i < n; i++)
            cr_assert_leq(lens[i], v[i].iov_len);
        break;
    }
    case 11: {
        int room = 8 - hd->nm;
        if (room == 0) {
            long n = CHECK(shmq_ack_batch(q, hd->m, (size_t)hd->nm));
            cr_assert_leq(n, hd->nm);
            hd->nm = 0;
            room = 8;
        }
        long n = CHECK(shmq_lease_batch(q, hd->m + hd->nm, (size_t)room, tmo));
        if (n > 0) {
            cr_assert_leq(n, room);
            for (long i = 0; i < n; i++)
                cr_assert_leq(hd->m[hd->nm + i].len, mm);
            hd->nm += (int)n;
        }
        break;
    }
    case 12: {
        struct shmq_stats st;
        st.size = sizeof(st);
        cr_assert_eq(shmq_stats(q, &st), 0);
        cr_assert_leq(st.depth, t->cap[0]);
        cr_assert_leq(st.in_flight, t->cap[0]);
        cr_assert_leq(st.retry_pending, st.depth);
        cr_assert_leq(st.high_water, t->cap[0]);
        cr_assert_geq(st.high_water, st.depth);
        if (t->nrings > 1)
            cr_assert_leq(st.dlq_depth, t->cap[1]);
        st.size = sizeof(st);
        cr_assert_eq(shmq_stats_by_name(t_inst, name, &st), 0);
        break;
    }
    case 13: {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t later = (uint64_t)ts.tv_sec * 1000000000u +
                         (uint64_t)ts.tv_nsec + UINT64_C(3600) * 1000000000u;
        CHECK(shmq_admin_expire_leases(t_adm, name, later));
        struct shmq_queue_info info;
        cr_assert_eq(shmq_admin_info(t_adm, name, &info), 0);
        break;
    }
    default:
        if (rnd_below(4) == 0)
            CHECK(shmq_admin_purge(t_adm, name,
                                   t->nrings > 1 && rnd_below(2)
                                       ? SHMQ_RING_DLQ
                                       : SHMQ_RING_MAIN));
        else
            CHECK(shmq_admin_reap(t_adm, NULL));
        break;
    }
}

static void runtime_fuzz(const char *name, uint64_t seed, int rounds)
{
    shmq_t *q = NULL;
    cr_assert_eq(try_open(name, &q), 0);
    uint32_t token;
    cr_assert_eq(shmq_token(q, &token), 0);

    struct rt t;
    memset(&t, 0, sizeof(t));
    t.s = seg_map(name);
    struct shmq_q_hdr *h = (struct shmq_q_hdr *)t.s.base;
    t.owner = token & 0xfffu;
    t.msg_max = h->msg_max;
    t.stride = h->stride;
    t.nrings = h->dlq_off ? 2 : 1;
    uint64_t offs[2] = {h->main_off, h->dlq_off};
    for (uint32_t k = 0; k < t.nrings; k++) {
        t.ring[k] = (struct shmq_ring_hdr *)(t.s.base + offs[k]);
        t.slots[k] = (uint8_t *)t.ring[k] + t.ring[k]->slots_off;
        t.cap[k] = t.ring[k]->capacity;
    }
    uint8_t *clean = malloc(t.s.size);
    cr_assert_not_null(clean);
    memcpy(clean, t.s.base, t.s.size);

    rnd_seed(seed);
    for (int round = 0; round < rounds; round++) {
        struct held hd;
        memset(&hd, 0, sizeof(hd));
        memcpy(t.s.base, clean, t.s.size);
        for (int op = 0; op < 60; op++) {
            int nc = rnd_below(2) ? (int)rnd_below(3) : 0;
            for (int c = 0; c < nc; c++)
                corrupt(&t);
            one_op(q, name, &t, &hd, round, op);
        }
    }
    cr_log_info("%s: %u calls succeeded, %u -EBADMSG, %u other errors",
                name, n_ok, n_badmsg, n_other);
    cr_assert_gt(n_ok, 1000);
    cr_assert_gt(n_badmsg, 100);
    cr_assert_gt(n_other, 100);
    /* Whatever the rounds left, a clean ring works at once. */
    memcpy(t.s.base, clean, t.s.size);
    check_works(q);
    free(clean);
    seg_unmap(&t.s);
    shmq_close(q);
}

Test(segment, open_queue_live_state)
{
    t_mkq("live", 16, 64, 3, 4, 0);
    runtime_fuzz("live", 0x1badd00d, 150);
}

Test(segment, open_queue_live_state_lease_timeout)
{
    t_mkq("live", 8, 48, 2, 2, 50000000);
    runtime_fuzz("live", 0xfeedface, 150);
}

Test(segment, open_queue_live_state_no_dlq)
{
    t_mkq("live", 4, 16, 0, 0, 0);
    runtime_fuzz("live", 0xc0ffee, 150);
}

/* The configuration of an open queue is read once, when it is opened:
 * changing it in shared memory later does not change what a handle does. */
Test(segment, open_queue_config_not_read_back)
{
    t_mkq("q", 4, 16, 0, 0, 0);
    shmq_t *q = NULL;
    cr_assert_eq(try_open("q", &q), 0);
    struct seg s = seg_map("q");
    struct shmq_q_hdr *h = (struct shmq_q_hdr *)s.base;
    struct shmq_ring_hdr *rh = (struct shmq_ring_hdr *)(s.base + h->main_off);
    h->capacity = 1u << 20;
    h->msg_max = 1u << 20;
    h->stride = 1u << 20;
    rh->capacity = 1u << 20;
    rh->stride = 1u << 20;
    rh->msg_max = 1u << 20;
    rh->slots_off = UINT64_C(1) << 40;
    char big[64] = {0};
    cr_assert_eq(shmq_send(q, big, 17, 0), -EMSGSIZE);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(shmq_send(q, big, 16, 0), 0);
    cr_assert_eq(shmq_send(q, big, 16, 0), -EAGAIN);
    struct shmq_stats st;
    st.size = sizeof(st);
    cr_assert_eq(shmq_stats(q, &st), 0);
    cr_assert_eq(st.capacity, 4);
    cr_assert_eq(st.msg_max, 16);
    cr_assert_eq(st.depth, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(shmq_recv(q, big, sizeof(big), 0), 16);
    /* A new attacher refuses it. */
    shmq_t *q2 = NULL;
    cr_assert_eq(try_open("q", &q2), -EBADMSG);
    seg_unmap(&s);
    shmq_close(q);
}

/* A message whose length is impossible is taken out of the ring (the
 * consumer gets -EBADMSG once) and what follows it is delivered. */
Test(segment, corrupt_length_is_dropped)
{
    t_mkq("q", 4, 16, 0, 0, 0);
    shmq_t *q = NULL;
    cr_assert_eq(try_open("q", &q), 0);
    cr_assert_eq(shmq_send(q, "bad", 3, 0), 0);
    cr_assert_eq(shmq_send(q, "good", 4, 0), 0);
    struct seg s = seg_map("q");
    struct shmq_ring_hdr *rh = main_ring(&s);
    struct shmq_slot *s0 = slot_of(rh, 0);
    uint32_t len = 17;
    memcpy(&s0->len, &len, sizeof(len));
    char buf[64];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EBADMSG);
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 4);
    cr_assert_eq(memcmp(buf, "good", 4), 0);
    expect_four_slots_usable(q); /* the slot is usable again */
    seg_unmap(&s);
    shmq_close(q);
}

/* The same for a message waiting for redelivery: it is taken out of the
 * ring (one -EBADMSG) instead of failing every later receive, which would
 * take redeliveries first and meet it again each time. */
Test(segment, corrupt_length_of_a_redelivery_is_dropped)
{
    t_mkq("q", 4, 16, 0, 0, 0);
    shmq_t *q = NULL;
    cr_assert_eq(try_open("q", &q), 0);
    cr_assert_eq(shmq_send(q, "bad", 3, 0), 0);
    shmq_msg_t m;
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(shmq_nack(q, &m), 0);
    cr_assert_eq(shmq_send(q, "good", 4, 0), 0);
    struct seg s = seg_map("q");
    struct shmq_ring_hdr *rh = main_ring(&s);
    struct shmq_slot *s0 = slot_of(rh, 0);
    cr_assert_eq(shmq_w_phase(atomic_load(&s0->word)), SHMQ_PH_RETRY);
    uint32_t len = 17;
    memcpy(&s0->len, &len, sizeof(len));
    char buf[64];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EBADMSG);
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 4,
                 "the corrupt redelivery still blocks the queue");
    cr_assert_eq(memcmp(buf, "good", 4), 0);
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.retry_pending, 0);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(atomic_load(&rh->retry_count), 0);
    expect_four_slots_usable(q); /* the slot is usable again */
    seg_unmap(&s);
    shmq_close(q);
}

/* A bad phase in the slot at the head: -EBADMSG, not a hang, not a wild
 * read, for every call that walks the ring. */
Test(segment, corrupt_phase_at_head)
{
    t_mkq("q", 4, 16, 0, 0, 0);
    shmq_t *q = NULL;
    cr_assert_eq(try_open("q", &q), 0);
    struct seg s = seg_map("q");
    struct shmq_ring_hdr *rh = main_ring(&s);
    struct shmq_slot *s0 = slot_of(rh, 0);
    for (unsigned ph = 0; ph < 16; ph++) {
        if (ph >= SHMQ_PH_FREE && ph <= SHMQ_PH_SKIP)
            continue;
        atomic_store_explicit(&s0->word, shmq_word(0, ph, 0, SHMQ_OWNER_NONE),
                              memory_order_relaxed);
        char buf[16];
        shmq_msg_t m;
        shmq_resv_t r;
        cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EBADMSG, "phase %u",
                     ph);
        cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 1000000), -EBADMSG);
        cr_assert_eq(shmq_lease(q, &m, 0), -EBADMSG);
        cr_assert_eq(shmq_send(q, "x", 1, 0), -EBADMSG);
        cr_assert_eq(shmq_send(q, "x", 1, 1000000), -EBADMSG);
        cr_assert_eq(shmq_reserve(q, &r, 0), -EBADMSG);
    }
    seg_unmap(&s);
    shmq_close(q);
}

/* ---- (d) the registry ---------------------------------------------------- */

#define RF(f, w) {#f, offsetof(struct shmq_reg_hdr, f), \
                  sizeof(((struct shmq_reg_hdr *)0)->f), w}

Test(segment, registry_header_random)
{
    static const struct field fields[] = {
        RF(magic, W_MAGIC),       RF(layout_major, W_PROTO),
        RF(layout_minor, W_ANY),  RF(header_size, W_BAD),
        RF(max_queues, W_BAD),    RF(max_procs, W_BAD),
        RF(dir_off, W_BAD),       RF(procs_off, W_BAD),
        RF(total_size, W_BAD),    RF(created_ns, W_ANY),
        RF(queue_gen, W_ANY),
    };
    const size_t nf = sizeof(fields) / sizeof(fields[0]);
    t_mkq("q", 4, 16, 0, 0, 0);
    /* No handle open in this process: every open maps the registry
     * afresh and checks it. */
    struct seg s = seg_map(NULL);
    uint8_t orig[sizeof(struct shmq_reg_hdr)];
    memcpy(orig, s.base, sizeof(orig));
    unsigned seen[5] = {0};

    rnd_seed(0x7e6157);
    for (int it = 0; it < 2000; it++) {
        const struct field *f = &fields[rnd_below((uint32_t)nf)];
        uint8_t *p = s.base + f->off;
        uint64_t v = mutate(get_field(p, f->width), f->width);
        put_field(p, f->width, v);
        int want = f->want == W_MAGIC   ? (v == 0 ? -ENOENT : -EBADMSG)
                   : f->want == W_PROTO ? -EPROTO
                   : f->want == W_ANY   ? 0
                                        : -EBADMSG;
        seen[f->want]++;

        shmq_t *q = NULL;
        int rc = try_open("q", &q);
        cr_assert_eq(rc, want, "iteration %d: %s = %#llx: open %d, want %d",
                     it, f->what, (unsigned long long)v, rc, want);
        if (rc == 0) {
            check_works(q);
            shmq_close(q);
        }
        shmq_admin_t *a = NULL;
        rc = shmq_admin_open(t_inst, NULL, &a);
        cr_assert_eq(rc, want, "iteration %d: %s = %#llx: admin_open %d",
                     it, f->what, (unsigned long long)v, rc);
        if (rc == 0)
            shmq_admin_close(a);
        else
            cr_assert_null(a);
        memcpy(s.base, orig, sizeof(orig));
    }
    cr_assert_gt(seen[W_BAD], 100);
    cr_assert_gt(seen[W_ANY], 50);
    cr_assert_gt(seen[W_MAGIC], 50);
    cr_assert_gt(seen[W_PROTO], 50);
    seg_unmap(&s);
}

Test(segment, registry_truncated)
{
    char p[128];
    struct stat st;
    t_mkq("q", 4, 16, 0, 0, 0);
    seg_path(p, sizeof(p), NULL);
    cr_assert_eq(stat(p, &st), 0);
    const off_t full = st.st_size;
    /* Keep the whole file to put back. */
    struct seg s = seg_map(NULL);
    uint8_t *copy = malloc((size_t)full);
    cr_assert_not_null(copy);
    memcpy(copy, s.base, (size_t)full);
    seg_unmap(&s);

    const off_t sizes[] = {full - 1, full - 256, 135168, 4097,
                           4096,     4095,       100,    full + 256};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        int fd = open(p, O_RDWR | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, sizes[i]), 0);
        shmq_t *q = NULL;
        cr_expect_eq(try_open("q", &q), -EBADMSG, "size %lld of %lld",
                     (long long)sizes[i], (long long)full);
        shmq_admin_t *a = NULL;
        cr_expect_eq(shmq_admin_open(t_inst, NULL, &a), -EBADMSG, "size %lld",
                     (long long)sizes[i]);
        cr_assert_eq(ftruncate(fd, full), 0);
        cr_assert_eq(pwrite(fd, copy, (size_t)full, 0), (ssize_t)full);
        close(fd);
    }
    free(copy);
    shmq_t *q = NULL;
    cr_assert_eq(try_open("q", &q), 0);
    check_works(q);
    shmq_close(q);
}

/* Garbage in the queue directory and the process table: every call
 * answers with a documented value, and the table heals (a reap frees
 * what no live process holds). */
Test(segment, registry_tables_garbage)
{
    t_mkq("q", 8, 16, 0, 0, 0);
    t_mkq("other", 8, 16, 0, 0, 0);
    struct seg s = seg_map(NULL);
    struct shmq_reg_hdr *rh = (struct shmq_reg_hdr *)s.base;
    struct shmq_reg_queue *dir = (struct shmq_reg_queue *)(s.base + rh->dir_off);
    struct shmq_reg_proc *procs =
        (struct shmq_reg_proc *)(s.base + rh->procs_off);
    const uint32_t max_procs = rh->max_procs;
    uint8_t *orig = malloc(s.size);
    cr_assert_not_null(orig);
    memcpy(orig, s.base, s.size);

    rnd_seed(0xd1c7);
    for (int it = 0; it < 300; it++) {
        /* Garbage in some entries; directory entries 0 and 1 ("q" and
         * "other") only now and then. */
        int n = 1 + (int)rnd_below(16);
        for (int k = 0; k < n; k++) {
            uint8_t *e;
            size_t len;
            if (rnd_below(2)) {
                uint32_t i = rnd_below(8) == 0 ? rnd_below(2)
                                               : 2 + rnd_below(SHMQ_MAX_QUEUES - 2);
                e = (uint8_t *)&dir[i];
                len = sizeof(dir[i]);
            } else {
                e = (uint8_t *)&procs[rnd_below(max_procs)];
                len = sizeof(procs[0]);
            }
            if (rnd_below(2)) {
                for (size_t b = 0; b < len; b++)
                    e[b] = (uint8_t)rnd();
            } else {
                e[rnd_below((uint32_t)len)] = (uint8_t)rnd();
            }
        }
        shmq_t *q = NULL;
        int rc = try_open("q", &q);
        cr_assert(rc == 0 || rc == -ENOENT || rc == -EBADMSG ||
                      rc == -ENOSPC,
                  "iteration %d: open %d (%s)", it, rc, shmq_strerror(rc));
        if (rc == 0) {
            check_works(q);
            shmq_close(q);
        }
        struct shmq_queue_info info[4];
        rc = shmq_admin_list(t_adm, info, 4);
        cr_assert_geq(rc, 0, "list %d", rc);
        struct shmq_proc_info pi[8];
        rc = shmq_admin_procs(t_adm, pi, 8);
        cr_assert_geq(rc, 0, "procs %d", rc);
        for (int i = 0; i < rc && i < 8; i++)
            cr_assert_neq(pi[i].state, SHMQ_PROC_FREE);
        rc = shmq_admin_reap(t_adm, NULL);
        cr_assert(rc >= 0 || rc == -EBADMSG, "reap %d", rc);
        rc = shmq_admin_info(t_adm, "q", &info[0]);
        cr_assert(rc == 0 || rc == -ENOENT || rc == -EBADMSG, "info %d", rc);
        memcpy(s.base, orig, s.size);
    }
    free(orig);
    seg_unmap(&s);
    shmq_t *q = NULL;
    cr_assert_eq(try_open("q", &q), 0);
    check_works(q);
    shmq_close(q);
}

/* ---- (e) layout versions -------------------------------------------------- */

Test(segment, queue_layout_major)
{
    t_mkq("q", 4, 16, 0, 0, 0);
    struct seg s = seg_map("q");
    struct shmq_q_hdr *h = (struct shmq_q_hdr *)s.base;
    const uint32_t majors[] = {0, SHMQ_LAYOUT_MAJOR + 1, SHMQ_LAYOUT_MAJOR + 100,
                               UINT32_MAX};
    for (size_t i = 0; i < sizeof(majors) / sizeof(majors[0]); i++) {
        h->layout_major = majors[i];
        shmq_t *q = NULL;
        cr_assert_eq(try_open("q", &q), -EPROTO, "major %u", majors[i]);
        cr_assert_eq(stats_by_name("q"), -EPROTO);
        cr_assert_eq(info_of("q"), -EPROTO);
    }
    /* Another minor is compatible. */
    h->layout_major = SHMQ_LAYOUT_MAJOR;
    h->layout_minor = SHMQ_LAYOUT_MINOR + 7;
    shmq_t *q = NULL;
    cr_assert_eq(try_open("q", &q), 0);
    check_works(q);
    shmq_close(q);
    /* A segment whose creator never stored magic is not there yet. */
    uint64_t magic = h->magic;
    atomic_store_explicit(&h->magic, 0, memory_order_relaxed);
    cr_assert_eq(try_open("q", &q), -ENOENT);
    cr_assert_eq(stats_by_name("q"), -ENOENT);
    atomic_store_explicit(&h->magic, magic, memory_order_relaxed);
    seg_unmap(&s);
}

Test(segment, registry_layout_major)
{
    t_mkq("q", 4, 16, 0, 0, 0);
    struct seg s = seg_map(NULL);
    struct shmq_reg_hdr *h = (struct shmq_reg_hdr *)s.base;
    const uint32_t majors[] = {0, SHMQ_LAYOUT_MAJOR + 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof(majors) / sizeof(majors[0]); i++) {
        h->layout_major = majors[i];
        shmq_t *q = NULL;
        shmq_admin_t *a = NULL;
        cr_assert_eq(try_open("q", &q), -EPROTO, "major %u", majors[i]);
        cr_assert_eq(shmq_admin_open(t_inst, NULL, &a), -EPROTO);
        struct shmq_admin_opts o;
        shmq_admin_opts_init(&o);
        o.flags = SHMQ_ADMIN_CREATE;
        cr_assert_eq(shmq_admin_open(t_inst, &o, &a), -EPROTO,
                     "create must not replace a registry it cannot read");
    }
    h->layout_major = SHMQ_LAYOUT_MAJOR;
    shmq_t *q = NULL;
    cr_assert_eq(try_open("q", &q), 0);
    check_works(q);
    shmq_close(q);
    seg_unmap(&s);
}

/* A process that dies between making a slot RETRY (N1 in ring.c) and
 * setting its retry bit (B1) leaves a redelivery no consumer can find.
 * Any pass over every slot (lease expiry here; repair does the same) sets
 * the bit again, so the message is delivered. */
Test(segment, retry_without_its_bit_is_found_again)
{
    t_mkq("q", 4, 16, 0, 0, UINT64_C(60000000000));
    shmq_t *q = NULL;
    cr_assert_eq(try_open("q", &q), 0);
    cr_assert_eq(shmq_send(q, "lost?", 5, 0), 0);
    shmq_msg_t m;
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(shmq_nack(q, &m), 0);
    struct seg s = seg_map("q");
    struct shmq_ring_hdr *rh = main_ring(&s);
    _Atomic uint64_t *bitmap =
        (_Atomic uint64_t *)((uint8_t *)rh + rh->bitmap_off);
    /* The state a nacker killed between N1 and B1 leaves. */
    atomic_store(&bitmap[0], 0);
    char buf[16];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN,
                 "the redelivery was found without its bit");
    cr_assert_geq(shmq_admin_expire_leases(t_adm, "q", 0), 0);
    cr_assert_eq(shmq_lease(q, &m, 0), 0,
                 "the redelivery is still lost after a pass over the slots");
    cr_assert_eq(m.len, 5);
    cr_assert_eq(m.deliveries, 2);
    cr_assert_eq(shmq_ack(q, &m), 0);
    seg_unmap(&s);
    shmq_close(q);
}
