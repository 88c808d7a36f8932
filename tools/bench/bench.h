/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench: shared declarations.
 *
 * A *case* is one measured configuration (a workload with its message size,
 * producers, consumers, queues and batch). A *transport* is one way of
 * moving messages between processes (shmq, POSIX mq, pipe, ...). Every
 * repetition of a case on a transport runs in fresh child processes made
 * by fork(): the parent creates the queues (setup), the children open their
 * ends (open), wait at a barrier, move messages, and report into a shared
 * mapping; the parent watches them with a watchdog (run.c).
 *
 * Messages are fixed-size records of the case's size (>= 8 bytes); their
 * first 8 bytes carry the producer index (top 8 bits) and its sequence
 * number, or BT_STOP. Consumers check per-producer order and count.
 */
#ifndef SHMQ_BENCH_H
#define SHMQ_BENCH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

#define BT_MAX_CHILDREN 32
#define BT_MAX_REPS 64
#define BT_MAX_BATCH 32
#define BT_MAX_QUEUES 1000
#define BT_MIN_SIZE 8u
#define BT_MAX_SIZE (64u << 10)
#define BT_STOP UINT64_MAX /* payload of the message that ends a run */

enum bt_workload {
    BT_TPUT,       /* 1 -> 1 throughput */
    BT_RTT,        /* ping-pong round trip */
    BT_MPMC,       /* 2 producers + 2 consumers, blocking */
    BT_SCALE_PC,   /* producers x consumers */
    BT_SCALE_SIZE, /* message size */
    BT_SCALE_Q,    /* number of queues in use */
    BT_NWORKLOADS
};

/* Roles of a process on one queue. */
enum { BT_SEND = 0, BT_RECV = 1 };

struct bt_case {
    enum bt_workload wl;
    char label[40]; /* "64 B single", "2x2", "4096 B", "100 queues" */
    uint32_t size;  /* message bytes */
    uint32_t producers, consumers;
    uint32_t queues; /* queues in use (rtt: 2, one per direction) */
    uint32_t batch;  /* 1 or BT_MAX_BATCH */
    uint32_t capacity; /* messages each queue holds (where settable) */
    double x;        /* value on the x axis of the scaling plots */
};

/* One repetition of one case on one transport, as the parent sees it. The
 * transport's setup fills priv; children inherit it through fork. */
struct bt_run {
    const struct bt_case *c;
    const struct bt_transport *t;
    unsigned serial; /* unique per run in this process: for names */
    void *priv;
};

/* One process's end of one queue. */
struct bt_end {
    const struct bt_run *run;
    void *q;      /* transport handle */
    int fd;       /* transport descriptor */
    int role;     /* BT_SEND or BT_RECV */
    uint32_t qi;  /* queue index */
    uint32_t size;
    uint64_t pos, lim; /* transport-private cursors */
};

struct bt_transport {
    const char *name;
    const char *about; /* one line for --help and the docs */
    /* NULL when the transport can run c, else a static sentence why not. */
    const char *(*check)(const struct bt_case *c);
    /* Parent, before fork: make the queues of run->c. 0 or -errno, with a
     * message in err; on success err may say how the case was adapted. */
    int (*setup)(struct bt_run *r, char *err, size_t errlen);
    /* Parent, once every child opened its ends (may drop names). */
    void (*attached)(struct bt_run *r);
    /* Parent, once every child is gone; killed: some were killed. */
    void (*teardown)(struct bt_run *r, int killed);
    /* Child: open queue qi in role. 0 or -errno. */
    int (*open)(const struct bt_run *r, uint32_t qi, int role,
                struct bt_end *e);
    void (*close)(struct bt_end *e);
    /* Child: move one message of e->size bytes, waiting as the transport
     * waits. send returns 0, recv the length; both -errno on failure. */
    int (*send)(struct bt_end *e, const void *msg);
    int (*recv)(struct bt_end *e, void *buf);
    /* Batches: v[0..n) are consecutive records of one buffer. Return how
     * many moved (>= 1, waiting for the first) or -errno. NULL: the
     * transport has no batch call (batch_note says so). */
    int (*send_batch)(struct bt_end *e, const struct iovec *v, unsigned n);
    int (*recv_batch)(struct bt_end *e, const struct iovec *v, unsigned n);
    const char *batch_note;
    int spins; /* waits by polling, not by sleeping in the kernel */
    /* the workloads it takes part in (1 << BT_*), 0: all */
    unsigned workloads;
};

extern const struct bt_transport bt_shmq, bt_shmq_sleep, bt_mq, bt_pipe,
    bt_unix, bt_dpdk, bt_spinring, bt_ownring, bt_cacheline;

/* ---- results -------------------------------------------------------------- */

enum bt_status { BT_OK = 0, BT_NA, BT_ERROR };

struct bt_rep {
    double msgs;     /* messages per second */
    double cpu;      /* CPU seconds (user + system) per million messages */
    double lat[4];   /* rtt: p50, p99, p99.9, max, in ns */
    uint64_t count;  /* messages delivered */
    int stalled;     /* the watchdog fired; msgs counts what got through */
};

struct bt_result {
    const struct bt_case *c;
    const struct bt_transport *t;
    enum bt_status status;
    char note[160];
    unsigned nreps, stalls;
    struct bt_rep rep[BT_MAX_REPS];
};

/* median, min and max of one metric over the repetitions */
struct bt_stat {
    double med, min, max;
};

enum bt_metric { BT_M_MSGS, BT_M_BYTES, BT_M_CPU, BT_M_P50, BT_M_P99,
                 BT_M_P999, BT_M_MAX };

struct bt_stat bt_stat_of(const struct bt_result *r, enum bt_metric m);

/* ---- options and environment ------------------------------------------------ */

struct bt_options {
    unsigned reps;
    uint64_t duration_ns;  /* per throughput repetition */
    uint64_t rounds;       /* round trips per rtt repetition (at most) */
    uint64_t watchdog_ns;  /* per repetition */
    int quick;
    const char *instance;
    const char *outdir;
    int json, csv, plots;
};

extern struct bt_options bt_opt;
extern volatile sig_atomic_t bt_interrupted;

/* Names of the workloads, as --only takes them. */
extern const char *const bt_workload_names[BT_NWORKLOADS];
extern const char *const bt_workload_titles[BT_NWORKLOADS];

/* What the run environment was (machine, mq limits), for the reports. */
struct bt_env {
    char cpu[96];
    char kernel[200];
    long ncpu;
    char mq_note[256];
    char instance[64];
    char started[32];
    double clock_ns; /* cost of one clock_gettime(CLOCK_MONOTONIC) */
};
extern struct bt_env bt_env;

/* ---- run.c ---------------------------------------------------------------- */

/* Run one repetition; fills rep. 0, or -errno with a message in err. On
 * success err may hold a note on how the case ran (a smaller queue). */
int bt_run_rep(const struct bt_case *c, const struct bt_transport *t,
               struct bt_rep *rep, char *err, size_t errlen);
uint64_t bt_now_ns(void);
/* Wait until a polling transport has work: a pause, and now and then a
 * yield so that an oversubscribed machine moves on. */
void bt_backoff(unsigned *spins);

/* ---- descriptor pairs (fdpair.c): the set-up of pipe and unix ------------- */

enum { BT_FD_PIPE, BT_FD_SEQPACKET };
/* One pipe or SOCK_SEQPACKET socket pair per queue of the run. */
int bt_fdpairs_setup(struct bt_run *r, int kind, char *err, size_t errlen);
void bt_fdpairs_teardown(struct bt_run *r, int killed);
int bt_fdpairs_open(const struct bt_run *r, uint32_t qi, int role,
                    struct bt_end *e);
void bt_fdpairs_close(struct bt_end *e);

/* ---- transports' global set-up (called once by main) ---------------------- */

int bt_shmq_begin(const char *instance, char *err, size_t errlen);
void bt_shmq_end(void);
/* Make POSIX mq able to hold the largest case; writes bt_env.mq_note. */
void bt_mq_begin(uint32_t depth, uint32_t size, uint32_t queues);
void bt_mq_end(void);

/* ---- report.c ------------------------------------------------------------- */

void bt_report_table(FILE *f, const struct bt_result *res, size_t n);
void bt_report_json(FILE *f, const struct bt_result *res, size_t n);
void bt_report_csv(FILE *f, const struct bt_result *res, size_t n);
/* Scaling series as CSV and PNG plots in dir. 0 or -errno. */
int bt_report_plots(const char *dir, const struct bt_result *res, size_t n,
                    int draw);

/* shared small helpers */
void bt_fmt_rate(char *buf, size_t len, double v);
void bt_errf(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
