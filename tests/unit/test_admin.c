/* SPDX-License-Identifier: MIT */
/* ctest-timeout: 120 */
/*
 * The supervisor API of admin.h (libshmq/src/admin.c), through the public
 * headers only: instance and queue lifecycle, the process table, repair.
 */
#include <criterion/criterion.h>
#include <shmq/admin.h>
#include <shmq/shmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

TestSuite(admin, .init = t_setup, .fini = t_teardown, .timeout = 30);

/* ---- helpers ------------------------------------------------------------ */

static struct shmq_queue_config tiny(void)
{
    struct shmq_queue_config c;
    shmq_queue_config_init(&c);
    c.capacity = 2;
    c.msg_max = 1;
    c.max_deliveries = 0;
    c.dlq_capacity = 0;
    return c;
}

static void qpath(char *buf, size_t cap, const char *instance,
                  const char *name)
{
    if (name)
        snprintf(buf, cap, "/dev/shm/shmq.%s.%s", instance, name);
    else
        snprintf(buf, cap, "/dev/shm/shmq.%s", instance);
}

static int exists(const char *instance, const char *name)
{
    char p[128];
    struct stat st;
    qpath(p, sizeof(p), instance, name);
    return stat(p, &st) == 0;
}

/* This file's seed of t_rnd. */
static uint64_t rnd_state = 0x51ed270b27a5c3f1u;

#define SENTINEL ((shmq_admin_t *)(uintptr_t)0x5a5a5a5au)

/* ---- open --------------------------------------------------------------- */

Test(admin, open_create_or_not)
{
    char name[32];
    struct shmq_admin_opts o;
    shmq_admin_t *a = SENTINEL;

    snprintf(name, sizeof(name), "%s", t_instance());
    cr_assert_eq(shmq_admin_open(name, NULL, &a), -ENOENT);
    shmq_admin_opts_init(&o);
    cr_assert_eq(shmq_admin_open(name, &o, &a), -ENOENT);
    cr_assert_eq(a, SENTINEL);
    cr_assert(!exists(name, NULL), "a failed open must not create");

    o.flags = SHMQ_ADMIN_CREATE;
    cr_assert_eq(shmq_admin_open(name, &o, &a), 0);
    cr_assert_neq(a, SENTINEL);
    cr_assert_str_eq(shmq_admin_instance(a), name);
    cr_assert(exists(name, NULL));
    struct shmq_queue_config c = tiny();
    cr_assert_eq(shmq_admin_create(a, "kept", &c), 0);
    shmq_admin_close(a);

    /* Present now: opened with or without the flag, data kept. */
    a = NULL;
    cr_assert_eq(shmq_admin_open(name, NULL, &a), 0);
    shmq_admin_close(a);
    a = NULL;
    cr_assert_eq(shmq_admin_open(name, &o, &a), 0);
    struct shmq_queue_info info;
    cr_assert_eq(shmq_admin_info(a, "kept", &info), 0);
    cr_assert_eq(shmq_admin_destroy(a), 0);
    shmq_admin_close(a);
    cr_assert(!exists(name, NULL));
    cr_assert(!exists(name, "kept"));
}

Test(admin, open_bad_args)
{
    struct shmq_admin_opts o;
    shmq_admin_t *a = SENTINEL;
    const char *bad_inst[] = {"", "a.b", "a/b", "..", ".x",
                              "0123456789012345678901234567890123"};

    cr_assert_eq(shmq_admin_open(t_inst, NULL, NULL), -EINVAL);
    for (size_t i = 0; i < sizeof(bad_inst) / sizeof(bad_inst[0]); i++) {
        shmq_admin_opts_init(&o);
        o.flags = SHMQ_ADMIN_CREATE;
        cr_expect_eq(shmq_admin_open(bad_inst[i], &o, &a), -EINVAL,
                     "instance \"%s\"", bad_inst[i]);
    }
    uint32_t sizes[] = {0, 4, (uint32_t)sizeof(o) - 8, (uint32_t)sizeof(o) + 8};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        shmq_admin_opts_init(&o);
        o.size = sizes[i];
        cr_expect_eq(shmq_admin_open(t_inst, &o, &a), -EINVAL, "size %u",
                     sizes[i]);
    }
    shmq_admin_opts_init(&o);
    o.flags = 1u << 7;
    cr_assert_eq(shmq_admin_open(t_inst, &o, &a), -EINVAL);
    o.flags = 0xffffffffu;
    cr_assert_eq(shmq_admin_open(t_inst, &o, &a), -EINVAL);
    shmq_admin_opts_init(&o);
    o.mode = 010000;
    cr_assert_eq(shmq_admin_open(t_inst, &o, &a), -EINVAL);
    shmq_admin_opts_init(&o);
    o.max_procs = 4095;
    cr_assert_eq(shmq_admin_open(t_inst, &o, &a), -EINVAL);
    cr_assert_eq(a, SENTINEL);

    shmq_admin_opts_init(&o);
    o.max_procs = 4094;
    a = NULL;
    cr_assert_eq(shmq_admin_open(t_inst, &o, &a), 0, "an existing registry");
    shmq_admin_close(a);
    shmq_admin_close(NULL);
    cr_assert_null(shmq_admin_instance(NULL));
}

Test(admin, opts_defaults)
{
    struct shmq_admin_opts o;
    memset(&o, 0xff, sizeof(o));
    shmq_admin_opts_init(&o);
    cr_assert_eq(o.size, sizeof(o));
    cr_assert_eq(o.flags, 0);
    cr_assert_eq(o.mode, 0666);
    cr_assert_eq(o.gid, -1);
    cr_assert_eq(o.max_procs, 1024);
    shmq_admin_opts_init(NULL);
}

Test(admin, open_instance_from_env)
{
    shmq_admin_t *a = NULL;
    cr_assert_eq(setenv("SHMQ_INSTANCE", t_inst, 1), 0);
    cr_assert_eq(shmq_admin_open(NULL, NULL, &a), 0);
    cr_assert_str_eq(shmq_admin_instance(a), t_inst);
    shmq_admin_close(a);
    cr_assert_eq(unsetenv("SHMQ_INSTANCE"), 0);
}

Test(admin, registry_mode)
{
    char name[32], p[128];
    struct shmq_admin_opts o;
    shmq_admin_t *a = NULL;
    struct stat st;

    snprintf(name, sizeof(name), "%s", t_instance());
    mode_t old = umask(0077);
    shmq_admin_opts_init(&o);
    o.flags = SHMQ_ADMIN_CREATE;
    o.mode = 0640;
    o.max_procs = 8;
    int rc = shmq_admin_open(name, &o, &a);
    umask(old);
    cr_assert_eq(rc, 0);
    qpath(p, sizeof(p), name, NULL);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0640, "registry mode %o",
                 (unsigned)(st.st_mode & 07777));
    cr_assert_eq(shmq_admin_destroy(a), 0);
    shmq_admin_close(a);
}

/* ---- configuration ------------------------------------------------------ */

Test(admin, config_defaults)
{
    struct shmq_queue_config c;
    const char *why = "unset";
    memset(&c, 0xff, sizeof(c));
    shmq_queue_config_init(&c);
    cr_assert_eq(c.size, sizeof(c));
    cr_assert_eq(c.capacity, 1024);
    cr_assert_eq(c.msg_max, 4096);
    cr_assert_eq(c.mode, 0660);
    cr_assert_eq(c.gid, -1);
    cr_assert_eq(c.max_deliveries, 5);
    cr_assert_eq(c.dlq_capacity, 64);
    cr_assert_eq(c.timestamps, SHMQ_TS_COARSE);
    cr_assert_eq(c.lease_timeout_ns, 0);
    cr_assert_eq(shmq_queue_config_check(&c, &why), 0);
    cr_assert_null(why, "a good configuration has no complaint");
    cr_assert_eq(shmq_queue_config_check(&c, NULL), 0);
    shmq_queue_config_init(NULL);
}

struct bad_field {
    const char *what;
    void (*set)(struct shmq_queue_config *c, uint64_t v);
    uint64_t v;
};

static void set_size(struct shmq_queue_config *c, uint64_t v)
{
    c->size = (uint32_t)v;
}
static void set_cap(struct shmq_queue_config *c, uint64_t v)
{
    c->capacity = (uint32_t)v;
}
static void set_msg(struct shmq_queue_config *c, uint64_t v)
{
    c->msg_max = (uint32_t)v;
}
static void set_mode(struct shmq_queue_config *c, uint64_t v)
{
    c->mode = (uint32_t)v;
}
static void set_maxd(struct shmq_queue_config *c, uint64_t v)
{
    c->max_deliveries = (uint32_t)v;
}
static void set_dlq(struct shmq_queue_config *c, uint64_t v)
{
    c->dlq_capacity = (uint32_t)v;
}
static void set_lease(struct shmq_queue_config *c, uint64_t v)
{
    c->lease_timeout_ns = v;
}
static void set_ts(struct shmq_queue_config *c, uint64_t v)
{
    c->timestamps = (uint32_t)v;
}
static void set_huge(struct shmq_queue_config *c, uint64_t v)
{
    (void)v;
    c->capacity = 1u << 24;
    c->msg_max = 16u << 20;
}

static const struct bad_field bad_fields[] = {
    {"size 0", set_size, 0},
    {"size short", set_size, sizeof(struct shmq_queue_config) - 8},
    {"size long", set_size, sizeof(struct shmq_queue_config) + 8},
    {"capacity 0", set_cap, 0},
    {"capacity 1", set_cap, 1},
    {"capacity 3", set_cap, 3},
    {"capacity 6", set_cap, 6},
    {"capacity 1023", set_cap, 1023},
    {"capacity 2^25", set_cap, 1u << 25},
    {"capacity 2^31", set_cap, 1u << 31},
    {"capacity max", set_cap, UINT32_MAX},
    {"msg_max 0", set_msg, 0},
    {"msg_max 16MiB+1", set_msg, (16u << 20) + 1},
    {"msg_max max", set_msg, UINT32_MAX},
    {"mode 010000", set_mode, 010000},
    {"mode max", set_mode, UINT32_MAX},
    {"max_deliveries 255", set_maxd, 255},
    {"max_deliveries max", set_maxd, UINT32_MAX},
    {"dlq_capacity 1", set_dlq, 1},
    {"dlq_capacity 3", set_dlq, 3},
    {"dlq_capacity 100", set_dlq, 100},
    {"dlq_capacity 2^25", set_dlq, 1u << 25},
    {"dlq_capacity 0 with max_deliveries", set_dlq, 0},
    {"lease_timeout 1 ns", set_lease, 1},
    {"lease_timeout under 1 ms", set_lease, 999999},
    {"lease_timeout too long", set_lease, UINT64_C(2000000000000001)},
    {"lease_timeout max", set_lease, UINT64_MAX},
    {"timestamps 3", set_ts, 3},
    {"timestamps max", set_ts, UINT32_MAX},
    {"segment over 1 TiB", set_huge, 0},
};

Test(admin, config_invalid)
{
    for (size_t i = 0; i < sizeof(bad_fields) / sizeof(bad_fields[0]); i++) {
        const struct bad_field *b = &bad_fields[i];
        struct shmq_queue_config c;
        const char *why = NULL;
        char name[16];
        shmq_queue_config_init(&c);
        c.capacity = 4;
        c.msg_max = 8;
        b->set(&c, b->v);
        cr_expect_eq(shmq_queue_config_check(&c, &why), -EINVAL, "%s",
                     b->what);
        cr_expect(why != NULL && strlen(why) > 10, "%s: no reason given",
                  b->what);
        cr_expect_eq(shmq_queue_config_check(&c, NULL), -EINVAL, "%s",
                     b->what);
        snprintf(name, sizeof(name), "bad%zu", i);
        cr_expect_eq(shmq_admin_create(t_adm, name, &c), -EINVAL, "%s",
                     b->what);
        cr_expect(!exists(t_inst, name), "%s: a segment was left", b->what);
    }
    const char *why = NULL;
    cr_assert_eq(shmq_queue_config_check(NULL, &why), -EINVAL);
    cr_assert_not_null(why);
    cr_assert_eq(shmq_admin_create(t_adm, "nullcfg", NULL), -EINVAL);
    cr_assert_eq(shmq_admin_list(t_adm, NULL, 0), 0, "nothing was created");
}

Test(admin, config_edges_valid)
{
    struct {
        const char *what;
        void (*set)(struct shmq_queue_config *c, uint64_t v);
        uint64_t v;
    } good[] = {
        {"capacity 2", set_cap, 2},
        {"capacity 2^24", set_cap, 1u << 24},
        {"msg_max 1", set_msg, 1},
        {"msg_max 16MiB", set_msg, 16u << 20},
        {"mode 0", set_mode, 0},
        {"mode 07777", set_mode, 07777},
        {"max_deliveries 0", set_maxd, 0},
        {"max_deliveries 254", set_maxd, 254},
        {"dlq_capacity 2", set_dlq, 2},
        {"dlq_capacity 2^24", set_dlq, 1u << 24},
        {"lease_timeout 1 ms", set_lease, 1000000},
        {"lease_timeout longest", set_lease, UINT64_C(2000000000000000)},
        {"timestamps none", set_ts, SHMQ_TS_NONE},
        {"timestamps coarse", set_ts, SHMQ_TS_COARSE},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct shmq_queue_config c;
        const char *why = "unset";
        shmq_queue_config_init(&c);
        good[i].set(&c, good[i].v);
        cr_expect_eq(shmq_queue_config_check(&c, &why), 0, "%s: %s",
                     good[i].what, why ? why : "");
        cr_expect_null(why, "%s", good[i].what);
    }
    /* No dead-letter ring at all is fine without a delivery limit. */
    struct shmq_queue_config c = tiny();
    cr_assert_eq(shmq_queue_config_check(&c, NULL), 0);
    /* And the smallest queue works. */
    cr_assert_eq(shmq_admin_create(t_adm, "smallest", &c), 0);
    shmq_t *q = t_open(t_inst, "smallest");
    char b = 0;
    cr_assert_eq(shmq_send(q, "x", 1, 0), 0);
    cr_assert_eq(shmq_send(q, "xy", 2, 0), -EMSGSIZE);
    cr_assert_eq(shmq_send(q, "y", 1, 0), 0);
    cr_assert_eq(shmq_send(q, "z", 1, 0), -EAGAIN);
    cr_assert_eq(shmq_recv(q, &b, 1, 0), 1);
    cr_assert_eq(b, 'x');
    shmq_close(q);
}

/* ---- create / delete ---------------------------------------------------- */

Test(admin, create_errors)
{
    struct shmq_queue_config c = tiny();
    cr_assert_eq(shmq_admin_create(t_adm, "q", &c), 0);
    cr_assert_eq(shmq_admin_create(t_adm, "q", &c), -EEXIST);
    c.capacity = 64; /* another configuration changes nothing */
    cr_assert_eq(shmq_admin_create(t_adm, "q", &c), -EEXIST);
    struct shmq_queue_info info;
    cr_assert_eq(shmq_admin_info(t_adm, "q", &info), 0);
    cr_assert_eq(info.config.capacity, 2);

    cr_assert_eq(shmq_admin_create(NULL, "q2", &c), -EINVAL);
    const char *bad[] = {"", "..", ".q", "a/b", "a..b", "sp ace"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(shmq_admin_create(t_adm, bad[i], &c), -EINVAL, "\"%s\"",
                     bad[i]);
    cr_assert_eq(shmq_admin_create(t_adm, NULL, &c), -EINVAL);
    cr_assert_eq(shmq_admin_list(t_adm, NULL, 0), 1);
}

Test(admin, directory_full, .timeout = 90)
{
    struct shmq_queue_config c = tiny();
    char name[32];
    for (int i = 0; i < 1024; i++) {
        snprintf(name, sizeof(name), "q%04d", i);
        int rc = shmq_admin_create(t_adm, name, &c);
        cr_assert_eq(rc, 0, "queue %d: %s", i, shmq_strerror(rc));
    }
    cr_assert_eq(shmq_admin_create(t_adm, "one-too-many", &c), -ENOSPC);
    cr_assert(!exists(t_inst, "one-too-many"));
    cr_assert_eq(shmq_admin_list(t_adm, NULL, 0), 1024);
    /* A name already there is still -EEXIST, not -ENOSPC. */
    cr_assert_eq(shmq_admin_create(t_adm, "q0000", &c), -EEXIST);
    /* Room again after a delete. */
    cr_assert_eq(shmq_admin_delete(t_adm, "q0512"), 0);
    cr_assert_eq(shmq_admin_create(t_adm, "one-too-many", &c), 0);
    cr_assert_eq(shmq_admin_create(t_adm, "q0512", &c), -ENOSPC);
    shmq_t *q = t_open(t_inst, "one-too-many");
    cr_assert_eq(shmq_send(q, "x", 1, 0), 0);
    shmq_close(q);
}

Test(admin, segment_mode_exact)
{
    const uint32_t modes[] = {0600, 0640, 0660, 0666, 0604, 0444, 0620};
    mode_t old = umask(0077);
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct shmq_queue_config c = tiny();
        char name[16], p[128];
        struct stat st;
        c.mode = modes[i];
        snprintf(name, sizeof(name), "m%o", modes[i]);
        int rc = shmq_admin_create(t_adm, name, &c);
        cr_assert_eq(rc, 0, "%s: %s", name, shmq_strerror(rc));
        qpath(p, sizeof(p), t_inst, name);
        cr_assert_eq(stat(p, &st), 0, "%s", p);
        cr_expect_eq(st.st_mode & 07777, modes[i], "%s: mode %o, want %o",
                     name, (unsigned)(st.st_mode & 07777), modes[i]);
        cr_expect_eq(st.st_gid, getegid());
        struct shmq_queue_info info;
        cr_assert_eq(shmq_admin_info(t_adm, name, &info), 0);
        cr_expect_eq(info.config.mode, modes[i]);
        cr_expect_eq(info.stats.mode, modes[i]);
    }
    umask(old);
}

Test(admin, segment_group)
{
    struct shmq_queue_config c = tiny();
    char p[128];
    struct stat st;
    /* The caller's own group always works. */
    c.gid = (int32_t)getegid();
    cr_assert_eq(shmq_admin_create(t_adm, "own", &c), 0);
    qpath(p, sizeof(p), t_inst, "own");
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_gid, getegid());
    /* Another group: root may, others get -EPERM and no segment. */
    c.gid = (int32_t)getegid() + 1;
    int rc = shmq_admin_create(t_adm, "other", &c);
    qpath(p, sizeof(p), t_inst, "other");
    if (geteuid() == 0) {
        cr_assert_eq(rc, 0);
        cr_assert_eq(stat(p, &st), 0);
        cr_assert_eq(st.st_gid, getegid() + 1);
    } else {
        cr_assert_eq(rc, -EPERM);
        cr_assert_neq(stat(p, &st), 0);
    }
}

Test(admin, delete)
{
    t_mkq("q", 4, 16, 0, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    t_send_str(q, "doomed");
    cr_assert(exists(t_inst, "q"));
    cr_assert_eq(shmq_admin_delete(t_adm, "q"), 0);
    cr_assert(!exists(t_inst, "q"), "segment still in /dev/shm");
    cr_assert_eq(shmq_admin_delete(t_adm, "q"), -ENOENT);
    cr_assert_eq(shmq_admin_delete(t_adm, "never"), -ENOENT);
    struct shmq_queue_info info;
    cr_assert_eq(shmq_admin_info(t_adm, "q", &info), -ENOENT);
    cr_assert_eq(shmq_send(q, "x", 1, 0), -EIDRM);
    shmq_close(q);
    cr_assert_eq(shmq_admin_delete(NULL, "q"), -EINVAL);
    cr_assert_eq(shmq_admin_delete(t_adm, NULL), -EINVAL);
    cr_assert_eq(shmq_admin_delete(t_adm, "../x"), -EINVAL);
    cr_assert_eq(shmq_admin_list(t_adm, NULL, 0), 0);
}

/* ---- purge -------------------------------------------------------------- */

Test(admin, purge_main)
{
    t_mkq("q", 8, 16, 0, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    shmq_msg_t held, back;
    for (int i = 0; i < 6; i++)
        t_send_str(q, "m");
    cr_assert_eq(shmq_lease(q, &held, 0), 0);
    cr_assert_eq(shmq_lease(q, &back, 0), 0);
    cr_assert_eq(shmq_nack(q, &back), 0); /* waiting for redelivery */
    int procs = t_procs_count();

    /* 4 ready + 1 waiting for redelivery; the lease stays. */
    cr_assert_eq(shmq_admin_purge(t_adm, "q", SHMQ_RING_MAIN), 5);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.retry_pending, 0);
    cr_assert_eq(st.in_flight, 1);
    cr_assert_eq(t_procs_count(), procs);
    char buf[16];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    cr_assert_eq(shmq_ack(q, &held), 0, "the lease in flight was touched");
    cr_assert_eq(shmq_admin_purge(t_adm, "q", SHMQ_RING_MAIN), 0);

    /* The queue works on. */
    t_send_str(q, "after");
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 5);
    shmq_close(q);

    /* Purging without a handle leaves no registration behind. */
    cr_assert_eq(t_procs_count(), 0);
    cr_assert_eq(shmq_admin_purge(t_adm, "q", SHMQ_RING_MAIN), 0);
    cr_assert_eq(t_procs_count(), 0);
}

/* Producers that outrun the purge: it still ends, after at most a
 * ring's worth of messages, and the queue works on. */
static void flood(const char *name)
{
    shmq_t *q = t_open(t_inst, name);
    char m[16] = "flood";
    struct iovec v[SHMQ_BATCH_MAX];
    for (int i = 0; i < SHMQ_BATCH_MAX; i++)
        v[i] = (struct iovec){m, sizeof(m)};
    for (;;)
        if (shmq_send_batch(q, v, SHMQ_BATCH_MAX, 1000000000) < 0 &&
            getppid() == 1)
            _exit(0);
}

Test(admin, purge_ends_while_producers_send)
{
    t_mkq("q", 256, 16, 0, 0, 0);
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        cr_assert_geq(kids[i], 0);
        if (kids[i] == 0) {
            flood("q");
            _exit(0);
        }
    }
    shmq_t *q = t_open(t_inst, "q");
    /* Wait (bounded) until both producers are registered (one alone can
     * fill the ring) and the ring is full. */
    struct shmq_stats st;
    for (int waited = 0;; waited++) {
        st = t_stats(q);
        if (st.depth == 256 && t_procs_count() == 3)
            break;
        cr_assert_lt(waited, 10000, "producers never filled the ring");
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    /* The first finds a full ring; the others whatever the producers
     * sent meanwhile, never more than a ring's worth. */
    for (int round = 0; round < 20; round++) {
        int n = shmq_admin_purge(t_adm, "q", SHMQ_RING_MAIN);
        cr_assert(n >= (round == 0 ? 1 : 0) && n <= 256,
                  "purge %d dropped %d", round, n);
    }
    for (int i = 0; i < 2; i++) {
        kill(kids[i], SIGKILL);
        t_wait(kids[i], 10000);
    }
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 2);
    /* The producers are gone: one more purge empties the queue. */
    cr_assert_eq(shmq_admin_purge(t_adm, "q", SHMQ_RING_MAIN) >= 0, 1);
    st = t_stats(q);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    t_send_str(q, "after");
    char buf[16];
    ssize_t got = shmq_recv(q, buf, sizeof(buf), 0);
    cr_assert_eq(got, 5, "recv after: %zd (%s)", got,
                 got < 0 ? shmq_strerror((int)got) : buf);
    shmq_close(q);
}

/* The leases a process holds, as the process list reports them: counted
 * from the slots, so a lease ended any way (ack, nack, expiry) is gone. */
static uint64_t my_leases(void)
{
    struct shmq_proc_info pi[4];
    int n = shmq_admin_procs(t_adm, pi, 4);
    cr_assert_eq(n, 1, "procs: %d", n);
    cr_assert_eq(pi[0].pid, getpid());
    return pi[0].leases;
}

Test(admin, procs_count_leases_from_the_slots)
{
    t_mkq("a", 8, 16, 0, 0, UINT64_C(1000000000)); /* 1 s lease timeout */
    t_mkq("b", 8, 16, 1, 4, 0);                    /* dead letters after 1 */
    shmq_t *qa = t_open(t_inst, "a"), *qb = t_open(t_inst, "b");
    shmq_t *db = NULL;
    struct shmq_open_opts o;
    shmq_open_opts_init(&o);
    o.instance = t_inst;
    o.ring = SHMQ_RING_DLQ;
    cr_assert_eq(shmq_open("b", &o, &db), 0);
    for (int i = 0; i < 4; i++) {
        t_send_str(qa, "a");
        t_send_str(qb, "b");
    }
    cr_assert_eq(my_leases(), 0);
    shmq_msg_t ma[3], mb[2], mx, md;
    cr_assert_eq(shmq_lease_batch(qa, ma, 3, 0), 3);
    cr_assert_eq(shmq_lease_batch(qb, mb, 2, 0), 2);
    cr_assert_eq(my_leases(), 5);
    cr_assert_eq(shmq_ack(qa, &ma[0]), 0);
    cr_assert_eq(shmq_nack(qb, &mb[0]), 0);
    cr_assert_eq(my_leases(), 3);
    /* Taken back by the lease timeout: no longer ours, whatever we do. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t later = (uint64_t)ts.tv_sec * 1000000000u +
                     (uint64_t)ts.tv_nsec + UINT64_C(5000000000);
    cr_assert_eq(shmq_admin_expire_leases(t_adm, "a", later), 2);
    cr_assert_eq(my_leases(), 1);
    cr_assert_eq(shmq_ack(qa, &ma[1]), -ESTALE);
    cr_assert_eq(my_leases(), 1);
    /* A lease in the dead-letter ring counts too: the nacked message
     * went there when leased again (max_deliveries 1). */
    cr_assert_eq(shmq_lease(qb, &mx, 0), 0);
    cr_assert_eq(mx.deliveries, 1, "a fresh message, not the nacked one");
    cr_assert_eq(shmq_lease(db, &md, 0), 0);
    cr_assert_eq(my_leases(), 3);
    cr_assert_eq(shmq_ack(qb, &mb[1]), 0);
    cr_assert_eq(shmq_ack(qb, &mx), 0);
    cr_assert_eq(shmq_ack(db, &md), 0);
    cr_assert_eq(my_leases(), 0);
    shmq_close(db);
    shmq_close(qb);
    shmq_close(qa);
}

Test(admin, purge_errors)
{
    t_mkq("nodlq", 4, 16, 0, 0, 0);
    cr_assert_eq(shmq_admin_purge(t_adm, "absent", SHMQ_RING_MAIN), -ENOENT);
    cr_assert_eq(shmq_admin_purge(t_adm, "nodlq", SHMQ_RING_DLQ), -ENOENT);
    cr_assert_eq(shmq_admin_purge(t_adm, "nodlq", 2), -EINVAL);
    cr_assert_eq(shmq_admin_purge(t_adm, "nodlq", -1), -EINVAL);
    cr_assert_eq(shmq_admin_purge(t_adm, "a/b", SHMQ_RING_MAIN), -EINVAL);
    cr_assert_eq(shmq_admin_purge(NULL, "nodlq", SHMQ_RING_MAIN), -EINVAL);
}

Test(admin, purge_dead_letters)
{
    t_mkq("q", 8, 16, 1, 4, 0);
    shmq_t *q = t_open(t_inst, "q");
    shmq_msg_t m;
    for (int i = 0; i < 3; i++) {
        t_send_str(q, "poison");
        cr_assert_eq(shmq_lease(q, &m, 0), 0);
        cr_assert_eq(shmq_nack(q, &m), 0);
    }
    t_send_str(q, "fine");
    /* This lease moves the three to the dead-letter ring. */
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.len, 4);
    cr_assert_eq(shmq_nack(q, &m), 0);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.dlq_depth, 3);
    cr_assert_eq(st.depth, 1);

    cr_assert_eq(shmq_admin_purge(t_adm, "q", SHMQ_RING_DLQ), 3);
    st = t_stats(q);
    cr_assert_eq(st.dlq_depth, 0);
    cr_assert_eq(st.depth, 1, "the main ring is untouched");
    cr_assert_eq(st.dead_lettered, 3);

    /* Purging the main ring drops, it does not dead-letter (the message
     * waiting for redelivery is at its limit). */
    cr_assert_eq(shmq_admin_purge(t_adm, "q", SHMQ_RING_MAIN), 1);
    st = t_stats(q);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.dlq_depth, 0);
    cr_assert_eq(st.dead_lettered, 3);
    shmq_close(q);
}

/* ---- list / info -------------------------------------------------------- */

static const struct shmq_queue_info *find_info(const struct shmq_queue_info *v,
                                               int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

Test(admin, list_and_info)
{
    struct shmq_queue_info v[8];
    t_mkq("alpha", 4, 16, 0, 0, 0);
    t_mkq("beta.v2", 64, 1000, 7, 16, 0);
    t_mkq("gamma", 2, 1, 0, 2, 5000000);
    shmq_t *q = t_open(t_inst, "beta.v2");
    t_send_str(q, "one");
    t_send_str(q, "two");

    cr_assert_eq(shmq_admin_list(t_adm, NULL, 0), 3);
    cr_assert_eq(shmq_admin_list(t_adm, NULL, 1), -EINVAL);
    cr_assert_eq(shmq_admin_list(NULL, v, 8), -EINVAL);
    memset(v, 0, sizeof(v));
    cr_assert_eq(shmq_admin_list(t_adm, v, 2), 3, "the total, not the filled");
    cr_assert_neq(v[0].name[0], 0);
    cr_assert_neq(v[1].name[0], 0);
    cr_assert_eq(v[2].name[0], 0, "wrote past n");

    memset(v, 0, sizeof(v));
    cr_assert_eq(shmq_admin_list(t_adm, v, 8), 3);
    const struct shmq_queue_info *a = find_info(v, 3, "alpha");
    const struct shmq_queue_info *b = find_info(v, 3, "beta.v2");
    const struct shmq_queue_info *g = find_info(v, 3, "gamma");
    cr_assert(a && b && g, "a queue is missing from the list");
    cr_assert_eq(a->config.capacity, 4);
    cr_assert_eq(a->config.msg_max, 16);
    cr_assert_eq(a->config.max_deliveries, 0);
    cr_assert_eq(a->config.dlq_capacity, 0);
    cr_assert_eq(a->config.mode, 0660);
    cr_assert_eq(b->config.capacity, 64);
    cr_assert_eq(b->config.msg_max, 1000);
    cr_assert_eq(b->config.max_deliveries, 7);
    cr_assert_eq(b->config.dlq_capacity, 16);
    cr_assert_eq(b->stats.depth, 2);
    cr_assert_eq(b->stats.enqueued, 2);
    cr_assert_eq(b->stats.capacity, 64);
    cr_assert_eq(b->stats.dlq_capacity, 16);
    cr_assert_eq(g->config.lease_timeout_ns, 5000000);
    cr_assert_eq(g->stats.lease_timeout_ns, 5000000);
    cr_assert_eq(g->stats.depth, 0);
    cr_assert_neq(a->stats.generation, b->stats.generation);

    struct shmq_queue_info one;
    cr_assert_eq(shmq_admin_info(t_adm, "beta.v2", &one), 0);
    cr_assert_str_eq(one.name, "beta.v2");
    cr_assert_eq(one.config.capacity, 64);
    cr_assert_eq(one.stats.depth, 2);
    cr_assert_eq(one.stats.generation, b->stats.generation);
    cr_assert_eq(shmq_admin_info(t_adm, "delta", &one), -ENOENT);
    cr_assert_eq(shmq_admin_info(t_adm, "beta.v2", NULL), -EINVAL);
    cr_assert_eq(shmq_admin_info(t_adm, "..", &one), -EINVAL);
    cr_assert_eq(shmq_admin_info(NULL, "alpha", &one), -EINVAL);

    cr_assert_eq(shmq_admin_delete(t_adm, "alpha"), 0);
    memset(v, 0, sizeof(v));
    cr_assert_eq(shmq_admin_list(t_adm, v, 8), 2);
    cr_assert_null(find_info(v, 2, "alpha"));
    shmq_close(q);
}

/* ---- the process table -------------------------------------------------- */

Test(admin, register_procs_unregister)
{
    struct shmq_proc_info pi[4];
    uint32_t tok = 0, qt = 0;
    uint64_t t0 = (uint64_t)time(NULL);

    t_mkq("q1", 8, 16, 0, 0, 0);
    t_mkq("q2", 8, 16, 0, 0, 0);
    cr_assert_eq(t_procs_count(), 0);
    cr_assert_eq(shmq_admin_register(t_adm, NULL), -EINVAL);
    cr_assert_eq(shmq_admin_register(NULL, &tok), -EINVAL);
    cr_assert_eq(shmq_admin_register(t_adm, &tok), 0);
    cr_assert_neq(tok >> 16, 0, "incarnation is never 0");

    memset(pi, 0, sizeof(pi));
    cr_assert_eq(shmq_admin_procs(t_adm, pi, 4), 1);
    cr_assert_eq(pi[0].token, tok);
    cr_assert_eq(pi[0].state, SHMQ_PROC_ALIVE);
    cr_assert_eq(pi[0].pid, getpid());
    cr_assert_eq(pi[0].uid, geteuid());
    cr_assert_eq(pi[0].alive, 1);
    cr_assert_eq(pi[0].leases, 0);
    cr_assert_eq(pi[0].nqueues, 0);
    cr_assert_geq(pi[0].start_ns / 1000000000u, t0 - 1);
    cr_assert_leq(pi[0].start_ns / 1000000000u, (uint64_t)time(NULL) + 1);
    cr_assert_eq(shmq_admin_alive(t_adm, tok), 1);

    /* Handles act under the same token. */
    shmq_t *q1 = t_open(t_inst, "q1");
    shmq_t *q2 = t_open(t_inst, "q2");
    cr_assert_eq(shmq_token(q1, &qt), 0);
    cr_assert_eq(qt, tok);
    shmq_msg_t m[3];
    t_send_str(q1, "a");
    t_send_str(q1, "b");
    t_send_str(q2, "c");
    cr_assert_eq(shmq_lease(q1, &m[0], 0), 0);
    cr_assert_eq(shmq_lease(q1, &m[1], 0), 0);
    cr_assert_eq(shmq_lease(q2, &m[2], 0), 0);
    cr_assert_eq(shmq_admin_procs(t_adm, pi, 4), 1);
    cr_assert_eq(pi[0].leases, 3);
    cr_assert_eq(pi[0].nqueues, 2);
    cr_assert_neq(pi[0].queues[0], pi[0].queues[1]);
    cr_assert_lt(pi[0].queues[0], 1024);
    cr_assert_lt(pi[0].queues[1], 1024);
    cr_assert_eq(shmq_ack(q2, &m[2]), 0);
    cr_assert_eq(shmq_admin_procs(t_adm, pi, 4), 1);
    cr_assert_eq(pi[0].leases, 2);

    /* Closing the handles keeps the registration (and its leases). */
    shmq_close(q1);
    shmq_close(q2);
    cr_assert_eq(t_procs_count(), 1);
    cr_assert_eq(shmq_admin_unregister(t_adm, tok ^ 0x10000u), -EINVAL);
    cr_assert_eq(shmq_admin_unregister(NULL, tok), -EINVAL);
    cr_assert_eq(t_procs_count(), 1);

    /* Unregistering gives the leases back. */
    cr_assert_eq(shmq_admin_unregister(t_adm, tok), 0);
    cr_assert_eq(t_procs_count(), 0);
    cr_assert_eq(shmq_admin_alive(t_adm, tok), 0, "a stale token is not alive");
    q1 = t_open(t_inst, "q1");
    shmq_msg_t r;
    cr_assert_eq(shmq_lease(q1, &r, 0), 0);
    cr_assert_eq(r.id, m[0].id);
    cr_assert_eq(r.deliveries, 2);
    cr_assert_eq(shmq_ack(q1, &r), 0);
    cr_assert_eq(shmq_lease(q1, &r, 0), 0);
    cr_assert_eq(r.id, m[1].id);
    cr_assert_eq(r.deliveries, 2);
    cr_assert_eq(shmq_ack(q1, &r), 0);
    shmq_close(q1);
    cr_assert_eq(shmq_admin_procs(NULL, pi, 4), -EINVAL);
    cr_assert_eq(shmq_admin_procs(t_adm, NULL, 4), -EINVAL);
}

Test(admin, unregister_only_what_register_took)
{
    t_mkq("q", 4, 16, 0, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    uint32_t tok;
    cr_assert_eq(shmq_token(q, &tok), 0);
    /* The registration belongs to the open handle, not to the admin
     * handle: it is not this call's to drop. */
    cr_assert_eq(shmq_admin_unregister(t_adm, tok), -EINVAL);
    cr_assert_eq(t_procs_count(), 1);
    cr_assert_eq(shmq_admin_alive(t_adm, tok), 1);
    t_send_str(q, "still here");
    char buf[16];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 10);

    /* Registered twice through the admin handle: two unregisters. */
    uint32_t t1, t2;
    cr_assert_eq(shmq_admin_register(t_adm, &t1), 0);
    cr_assert_eq(shmq_admin_register(t_adm, &t2), 0);
    cr_assert_eq(t1, tok);
    cr_assert_eq(t2, tok);
    cr_assert_eq(shmq_admin_unregister(t_adm, tok), 0);
    cr_assert_eq(shmq_admin_unregister(t_adm, tok), 0);
    cr_assert_eq(shmq_admin_unregister(t_adm, tok), -EINVAL);
    cr_assert_eq(t_procs_count(), 1, "the open handle keeps it registered");
    t_send_str(q, "and here");
    shmq_close(q);
    cr_assert_eq(t_procs_count(), 0);
}

Test(admin, queue_name_by_index)
{
    char buf[SHMQ_NAME_MAX + 1];
    char longname[SHMQ_NAME_MAX + 1];
    memset(longname, 'L', SHMQ_NAME_MAX);
    longname[SHMQ_NAME_MAX] = 0;
    t_mkq("alpha", 4, 16, 0, 0, 0);
    t_mkq(longname, 4, 16, 0, 0, 0);
    shmq_t *q1 = t_open(t_inst, "alpha");
    shmq_t *q2 = t_open(t_inst, longname);
    struct shmq_proc_info pi[2];
    cr_assert_eq(shmq_admin_procs(t_adm, pi, 2), 1);
    cr_assert_eq(pi[0].nqueues, 2);

    int seen_alpha = 0, seen_long = 0;
    for (uint32_t k = 0; k < 2; k++) {
        uint32_t idx = pi[0].queues[k];
        int n = shmq_admin_queue_name(t_adm, idx, buf, sizeof(buf));
        cr_assert_gt(n, 0, "index %u: %d", idx, n);
        cr_assert_eq((size_t)n, strlen(buf));
        if (strcmp(buf, "alpha") == 0) {
            seen_alpha = 1;
            char exact[6];
            cr_assert_eq(shmq_admin_queue_name(t_adm, idx, exact, 6), 5);
            cr_assert_str_eq(exact, "alpha");
            cr_assert_eq(shmq_admin_queue_name(t_adm, idx, exact, 5),
                         -ENAMETOOLONG);
            cr_assert_eq(shmq_admin_queue_name(t_adm, idx, exact, 0),
                         -ENAMETOOLONG);
            cr_assert_eq(shmq_admin_queue_name(t_adm, idx, NULL, 6), -EINVAL);
            /* Deleted: nothing there; made again: the new queue. */
            cr_assert_eq(shmq_admin_delete(t_adm, "alpha"), 0);
            cr_assert_eq(shmq_admin_queue_name(t_adm, idx, buf, sizeof(buf)),
                         -ENOENT);
            t_mkq("alpha2", 4, 16, 0, 0, 0);
            cr_assert_eq(shmq_admin_queue_name(t_adm, idx, buf, sizeof(buf)),
                         6);
            cr_assert_str_eq(buf, "alpha2");
        } else {
            cr_assert_str_eq(buf, longname);
            cr_assert_eq(n, SHMQ_NAME_MAX, "the longest name fits");
            seen_long = 1;
        }
    }
    cr_assert(seen_alpha && seen_long);
    cr_assert_eq(shmq_admin_queue_name(t_adm, 1024, buf, sizeof(buf)), -EINVAL);
    cr_assert_eq(shmq_admin_queue_name(t_adm, UINT32_MAX, buf, sizeof(buf)),
                 -EINVAL);
    cr_assert_eq(shmq_admin_queue_name(NULL, 0, buf, sizeof(buf)), -EINVAL);
    /* An index never used. */
    cr_assert_eq(shmq_admin_queue_name(t_adm, 1023, buf, sizeof(buf)), -ENOENT);
    shmq_close(q2);
    shmq_close(q1);
}

Test(admin, read_only_handle)
{
    char missing[32];
    struct shmq_admin_opts o;
    shmq_admin_t *ro = SENTINEL;

    snprintf(missing, sizeof(missing), "%s", t_instance());
    shmq_admin_opts_init(&o);
    o.flags = SHMQ_ADMIN_READONLY;
    cr_assert_eq(shmq_admin_open(missing, &o, &ro), -ENOENT);
    o.flags = SHMQ_ADMIN_READONLY | SHMQ_ADMIN_CREATE;
    cr_assert_eq(shmq_admin_open(missing, &o, &ro), -EINVAL);
    cr_assert(!exists(missing, NULL));
    cr_assert_eq(ro, SENTINEL);

    t_mkq("q", 4, 16, 0, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    uint32_t tok;
    cr_assert_eq(shmq_token(q, &tok), 0);
    t_send_str(q, "m");
    o.flags = SHMQ_ADMIN_READONLY;
    ro = NULL;
    cr_assert_eq(shmq_admin_open(t_inst, &o, &ro), 0);
    cr_assert_str_eq(shmq_admin_instance(ro), t_inst);

    /* Looking works. */
    struct shmq_queue_info info;
    cr_assert_eq(shmq_admin_list(ro, NULL, 0), 1);
    cr_assert_eq(shmq_admin_info(ro, "q", &info), 0);
    cr_assert_eq(info.stats.depth, 1);
    struct shmq_proc_info pi[2];
    cr_assert_eq(shmq_admin_procs(ro, pi, 2), 1);
    cr_assert_eq(pi[0].token, tok);
    cr_assert_eq(pi[0].alive, 1);
    cr_assert_eq(shmq_admin_alive(ro, tok), 1);
    char buf[SHMQ_NAME_MAX + 1];
    cr_assert_eq(shmq_admin_queue_name(ro, pi[0].queues[0], buf, sizeof(buf)),
                 1);

    /* Everything that writes is refused. */
    struct shmq_queue_config c = tiny();
    uint32_t t2;
    cr_assert_eq(shmq_admin_create(ro, "new", &c), -EPERM);
    cr_assert_eq(shmq_admin_delete(ro, "q"), -EPERM);
    cr_assert_eq(shmq_admin_purge(ro, "q", SHMQ_RING_MAIN), -EPERM);
    cr_assert_eq(shmq_admin_register(ro, &t2), -EPERM);
    cr_assert_eq(shmq_admin_unregister(ro, tok), -EPERM);
    cr_assert_eq(shmq_admin_repair(ro, tok, NULL), -EPERM);
    cr_assert_eq(shmq_admin_reap(ro, NULL), -EPERM);
    cr_assert_eq(shmq_admin_expire_leases(ro, "q", 0), -EPERM);
    cr_assert_eq(shmq_admin_destroy(ro), -EPERM);
    shmq_admin_close(ro);

    /* And nothing changed. */
    cr_assert(exists(t_inst, NULL));
    cr_assert(!exists(t_inst, "new"));
    cr_assert_eq(shmq_admin_info(t_adm, "q", &info), 0);
    cr_assert_eq(info.stats.depth, 1);
    cr_assert_eq(t_procs_count(), 1);
    char m;
    cr_assert_eq(shmq_recv(q, &m, 1, 0), 1);
    shmq_close(q);
}

/* A child that opens name, leases one message, optionally reserves a
 * slot, reports its token and the message id, and exits without closing:
 * a death. */
struct child_report {
    uint32_t token;
    uint32_t pad;
    uint64_t id;
};

static pid_t dead_holder(const char *name, int reserve,
                         struct child_report *out)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct child_report r = {0, 0, 0};
        struct shmq_open_opts o;
        shmq_t *q = NULL;
        shmq_msg_t m;
        shmq_resv_t rv;
        close(fds[0]);
        shmq_open_opts_init(&o);
        o.instance = t_inst;
        if (shmq_open(name, &o, &q) != 0)
            _exit(10);
        if (shmq_lease(q, &m, 0) != 0)
            _exit(11);
        if (reserve && shmq_reserve(q, &rv, 0) != 0)
            _exit(12);
        if (shmq_token(q, &r.token) != 0)
            _exit(13);
        r.id = m.id;
        if (write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
            _exit(14);
        _exit(0);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], out, sizeof(*out));
    close(fds[0]);
    int st = t_wait(pid, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: %#x",
              st);
    cr_assert_eq(n, (ssize_t)sizeof(*out));
    return pid;
}

Test(admin, alive_and_repair_of_the_dead)
{
    t_mkq("q", 8, 16, 0, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    uint32_t me;
    cr_assert_eq(shmq_token(q, &me), 0);
    t_send_str(q, "m1");
    t_send_str(q, "m2");

    struct child_report cr;
    pid_t pid = dead_holder("q", 1, &cr);
    cr_assert_neq(cr.token, me, "a child acts under a token of its own");

    struct shmq_proc_info pi[4];
    cr_assert_eq(shmq_admin_procs(t_adm, pi, 4), 2);
    const struct shmq_proc_info *child = pi[0].token == cr.token ? &pi[0]
                                         : pi[1].token == cr.token ? &pi[1]
                                                                   : NULL;
    cr_assert_not_null(child);
    cr_assert_eq(child->pid, pid);
    cr_assert_eq(child->alive, 0);
    cr_assert_eq(child->leases, 1);
    cr_assert_eq(child->nqueues, 1);
    cr_assert_eq(shmq_admin_alive(t_adm, cr.token), 0);
    cr_assert_eq(shmq_admin_alive(t_adm, me), 1);

    /* The living are not repaired. */
    cr_assert_eq(shmq_admin_repair(t_adm, me, NULL), -EBUSY);

    struct shmq_repair_report rep;
    memset(&rep, 0, sizeof(rep));
    rep.size = sizeof(rep);
    cr_assert_gt(shmq_admin_repair(t_adm, cr.token, &rep), 0);
    cr_assert_eq(rep.queues, 1);
    cr_assert_eq(rep.redelivered, 1);
    cr_assert_eq(rep.skipped, 1);
    /* Idempotent. */
    memset(&rep, 0, sizeof(rep));
    rep.size = sizeof(rep);
    cr_assert_eq(shmq_admin_repair(t_adm, cr.token, &rep), 0);
    cr_assert_eq(rep.redelivered, 0);
    cr_assert_eq(shmq_admin_repair(t_adm, cr.token, NULL), 0);
    cr_assert_eq(t_procs_count(), 1);
    cr_assert_eq(shmq_admin_alive(t_adm, cr.token), 0);

    /* m1 again, same id, second delivery; then m2; the dead producer's
     * slot is passed. */
    shmq_msg_t m;
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.id, cr.id);
    cr_assert_eq(m.deliveries, 2);
    cr_assert_eq(memcmp(m.data, "m1", 2), 0);
    cr_assert_eq(shmq_ack(q, &m), 0);
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(memcmp(m.data, "m2", 2), 0);
    cr_assert_eq(m.deliveries, 1);
    cr_assert_eq(shmq_ack(q, &m), 0);
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.repaired, 2);
    cr_assert_eq(st.redelivered, 1);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    shmq_close(q);
}

Test(admin, reap)
{
    t_mkq("q", 8, 16, 0, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    uint32_t me;
    cr_assert_eq(shmq_token(q, &me), 0);
    t_send_str(q, "a");
    t_send_str(q, "b");
    struct child_report c1, c2;
    dead_holder("q", 0, &c1);
    dead_holder("q", 1, &c2);
    cr_assert_eq(t_procs_count(), 3);

    struct shmq_repair_report rep;
    memset(&rep, 0, sizeof(rep));
    rep.size = sizeof(rep);
    cr_assert_eq(shmq_admin_reap(t_adm, &rep), 2);
    cr_assert_eq(rep.redelivered, 2);
    cr_assert_eq(rep.skipped, 1);
    cr_assert_eq(rep.queues, 2);
    cr_assert_eq(t_procs_count(), 1, "the living stay registered");
    cr_assert_eq(shmq_admin_alive(t_adm, me), 1);
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 0);

    char buf[16];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 1);
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 1);
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    cr_assert_eq(t_stats(q).redelivered, 2);

    rep.size = 0;
    cr_assert_eq(shmq_admin_reap(t_adm, &rep), -EINVAL);
    cr_assert_eq(shmq_admin_reap(NULL, NULL), -EINVAL);
    shmq_close(q);
}

Test(admin, repair_garbage_tokens)
{
    struct shmq_repair_report rep;
    memset(&rep, 0, sizeof(rep));
    cr_assert_eq(shmq_admin_repair(NULL, 1u << 16, NULL), -EINVAL);
    rep.size = 3;
    cr_assert_eq(shmq_admin_repair(t_adm, 1u << 16, &rep), -EINVAL);
    cr_assert_eq(shmq_admin_repair(t_adm, 0, NULL), -EINVAL, "incarnation 0");
    cr_assert_eq(shmq_admin_repair(t_adm, 0xffffu | (1u << 16), NULL),
                 -EINVAL, "index past the table");
    cr_assert_eq(shmq_admin_repair(t_adm, 5u | (77u << 16), NULL), 0,
                 "a free entry: nothing to do");
    cr_assert_eq(shmq_admin_alive(NULL, 1u << 16), -EINVAL);

    rnd_state = 42;
    for (int i = 0; i < 3000; i++) {
        uint32_t t = (uint32_t)t_rnd(&rnd_state);
        if (i % 2)
            t &= 0xffff03ffu; /* an index inside the table */
        int rc = shmq_admin_repair(t_adm, t, NULL);
        cr_assert(rc == 0 || rc == -EINVAL, "token %#x: %d", t, rc);
        rc = shmq_admin_alive(t_adm, t);
        cr_assert(rc == 0 || rc == -EINVAL, "alive %#x: %d", t, rc);
    }
    cr_assert_eq(t_procs_count(), 0);

    /* And the table still works. */
    t_mkq("q", 4, 8, 0, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    uint32_t me;
    cr_assert_eq(shmq_token(q, &me), 0);
    cr_assert_eq(shmq_admin_alive(t_adm, me), 1);
    cr_assert_eq(shmq_admin_repair(t_adm, me, NULL), -EBUSY);
    t_send_str(q, "ok");
    shmq_close(q);
}

/* ---- lease timeout ------------------------------------------------------ */

Test(admin, expire_leases)
{
    const uint64_t timeout = UINT64_C(60) * 1000000000u;
    t_mkq("q", 8, 16, 5, 4, timeout);
    t_mkq("forever", 8, 16, 0, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    shmq_t *f = t_open(t_inst, "forever");
    shmq_msg_t m, other, fm;
    t_send_str(q, "slow");
    t_send_str(q, "fast");
    t_send_str(f, "kept");
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(shmq_lease(f, &fm, 0), 0);
    uint64_t id = m.id;

    /* Not yet: the lease is a minute young. */
    cr_assert_eq(shmq_admin_expire_leases(t_adm, "q", 0), 0);
    cr_assert_eq(shmq_admin_expire_leases(t_adm, "q", t_mono_ns()), 0);

    uint64_t later = t_mono_ns() + timeout + UINT64_C(5) * 1000000000u;
    cr_assert_eq(shmq_admin_expire_leases(t_adm, "q", later), 1);
    cr_assert_eq(shmq_admin_expire_leases(t_adm, "q", later), 0, "once");
    /* A queue without a lease timeout keeps its leases. */
    cr_assert_eq(shmq_admin_expire_leases(t_adm, "forever", later), 0);
    cr_assert_eq(shmq_ack(f, &fm), 0);

    /* The late consumer lost it. */
    cr_assert_eq(shmq_ack(q, &m), -ESTALE);
    cr_assert_eq(shmq_nack(q, &m), -ESTALE);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.retry_pending, 1);
    cr_assert_eq(st.repaired, 1);

    /* Delivered again, first. */
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.id, id);
    cr_assert_eq(m.deliveries, 2);
    cr_assert_eq(memcmp(m.data, "slow", 4), 0);
    cr_assert_eq(shmq_lease(q, &other, 0), 0);
    cr_assert_eq(memcmp(other.data, "fast", 4), 0);
    cr_assert_eq(shmq_ack(q, &m), 0);
    cr_assert_eq(shmq_ack(q, &other), 0);
    st = t_stats(q);
    cr_assert_eq(st.redelivered, 1);
    cr_assert_eq(st.dequeued, 2);

    cr_assert_eq(shmq_admin_expire_leases(t_adm, "absent", 0), -ENOENT);
    cr_assert_eq(shmq_admin_expire_leases(t_adm, "a..b", 0), -EINVAL);
    cr_assert_eq(shmq_admin_expire_leases(NULL, "q", 0), -EINVAL);
    shmq_close(f);
    shmq_close(q);
}

/* ---- destroy ------------------------------------------------------------ */

Test(admin, destroy_removes_everything)
{
    char name[32];
    struct shmq_admin_opts o;
    shmq_admin_t *a = NULL;

    snprintf(name, sizeof(name), "%s", t_instance());
    shmq_admin_opts_init(&o);
    o.flags = SHMQ_ADMIN_CREATE;
    cr_assert_eq(shmq_admin_open(name, &o, &a), 0);
    struct shmq_queue_config c = tiny();
    cr_assert_eq(shmq_admin_create(a, "one", &c), 0);
    cr_assert_eq(shmq_admin_create(a, "two.b", &c), 0);
    struct shmq_open_opts qo;
    shmq_open_opts_init(&qo);
    qo.instance = name;
    shmq_t *q = NULL;
    cr_assert_eq(shmq_open("one", &qo, &q), 0);
    cr_assert(exists(name, NULL));
    cr_assert(exists(name, "one"));
    cr_assert(exists(name, "two.b"));

    cr_assert_eq(shmq_admin_destroy(a), 0);
    cr_assert(!exists(name, NULL), "registry left in /dev/shm");
    cr_assert(!exists(name, "one"), "queue left in /dev/shm");
    cr_assert(!exists(name, "two.b"), "queue left in /dev/shm");
    cr_assert_eq(shmq_send(q, "x", 1, 0), -EIDRM);
    shmq_close(q);
    shmq_admin_close(a);

    shmq_admin_t *b = SENTINEL;
    cr_assert_eq(shmq_admin_open(name, NULL, &b), -ENOENT);
    cr_assert_eq(b, SENTINEL);
    q = NULL;
    cr_assert_eq(shmq_open("one", &qo, &q), -ENOENT);
    cr_assert_eq(shmq_admin_destroy(NULL), -EINVAL);
}
