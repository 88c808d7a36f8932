/* SPDX-License-Identifier: MIT */
/*
 * shmqd: the supervisor of one shmq instance. One header for the
 * daemon's subsystems, one file each:
 *
 *   main.c      options, start-up (attach), signals, shutdown
 *   config.c    the INI file of queues to declare (libinih)
 *   control.c   the control socket: connections, framing, peer credentials
 *   requests.c  one handler per protocol op, permission rules
 *   dlq.c       dead-letter list, requeue, drop
 *   watch.c     the death watch: pidfds in one epoll loop, repair, scans
 *   expire.c    lease timeouts
 *   tables.c    the RCU hash tables of queues and processes
 *   log.c       one line per event on stderr
 *   notify.c    sd_notify readiness
 *
 * Threads: the main thread runs the control socket (and config reloads);
 * the watch thread runs the death watch, the periodic scan and lease
 * expiry. Each has its own admin handle (admin locks are OFD locks, which
 * do not exclude two users of one open file description). They share the
 * queue and process tables through RCU: lookups and iterations are read-
 * side critical sections, nodes are freed with call_rcu.
 */
#ifndef SHMQD_H
#define SHMQD_H

#include <shmq/admin.h>
#include <shmq/ctl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include <urcu.h>
#include <urcu/rculfhash.h>

#include "proto.h"
#include "registry.h"

/* Byte of the registry file a running shmqd holds an OFD lock on, so that
 * two daemons never serve one instance. Unused by the library, which locks
 * SHMQ_LOCK_ADMIN and SHMQ_LOCK_PROC_BASE + index (layout.h). */
#define SHMQD_LOCK_INSTANCE (SHMQ_LOCK_ADMIN + 1)

#define SHMQD_SCAN_MS 1000u          /* period of the safety-net scan */
#define SHMQD_MAX_CONNS 256u         /* control connections at once */
#define SHMQD_IDLE_MS 60000u         /* an idle connection is closed */
#define SHMQD_REPLY_MAX (16u << 20)  /* bytes of one answer, all frames */
#define SHMQD_DLQ_LIST_DEFAULT 100u  /* dead letters listed by default */
#define SHMQD_DLQ_LIST_MAX 1000u     /* ... and at most */
#define SHMQD_BUSY_GIVEUP_MS 10000u  /* stop retrying a repair on -EBUSY */

struct shmqd {
    /* options */
    char instance[SHMQ_INSTANCE_MAX + 1];
    char socket_path[SHMQ_CTL_PATH_MAX];
    const char *config_path;
    uint32_t mode;  /* registry and socket mode */
    int mode_set;   /* --mode given */
    gid_t gid;      /* registry, socket and default queue group */
    int gid_set;    /* --group given */

    /* state */
    uid_t euid;
    uint64_t start_ns;          /* CLOCK_MONOTONIC */
    shmq_admin_t *admin;        /* the main (control) thread's */
    shmq_admin_t *admin_watch;  /* the watch thread's */
    struct shmq__reg reg;       /* read-write view: advertise, inspect */
    int lock_fd;                /* holds SHMQD_LOCK_INSTANCE */
    int listen_fd;
    dev_t sock_dev;             /* the socket file we bound, to unlink */
    ino_t sock_ino;
    int watch_ep;               /* the watch thread's epoll */
    int watch_stop_fd;          /* eventfd: tells the watch thread to end */
};

/* Signal flags (set by handlers only). */
extern volatile sig_atomic_t shmqd_stop;
extern volatile sig_atomic_t shmqd_reload;

/* ---- log.c --------------------------------------------------------------- */

enum { LOG_ERR_ = 3, LOG_WARN_ = 4, LOG_INFO_ = 6, LOG_DEBUG_ = 7 };

void log_init(void);
void log_line(int prio, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define log_err(...) log_line(LOG_ERR_, __VA_ARGS__)
#define log_warn(...) log_line(LOG_WARN_, __VA_ARGS__)
#define log_info(...) log_line(LOG_INFO_, __VA_ARGS__)
/* A line that a client can provoke at will (bad requests): at most
 * 20 a second, then one line saying how many were suppressed. */
void log_limited(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- notify.c ------------------------------------------------------------ */

/* Send a state string to $NOTIFY_SOCKET, if set ("READY=1", ...). */
void notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- tables.c ------------------------------------------------------------ */

/* ThreadSanitizer cannot see liburcu's ordering (the library is not
 * instrumented): a node published with cds_lfht_add_unique() and found
 * by a lookup in another thread looks like a race. The tables tell it:
 * tsan_release() on a node before it is published, tsan_acquire() on a
 * node a lookup or iteration returns. Frees after a grace period are
 * suppressed in tables.c (__tsan_default_suppressions). No-ops in other
 * builds. */
#if defined(__SANITIZE_THREAD__)
#define SHMQD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMQD_TSAN 1
#endif
#endif
#ifdef SHMQD_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static inline void tsan_acquire(void *p) { __tsan_acquire(p); }
static inline void tsan_release(void *p) { __tsan_release(p); }
#else
static inline void tsan_acquire(void *p) { (void)p; }
static inline void tsan_release(void *p) { (void)p; }
#endif

/* A queue the daemon knows: a cache of the registry directory entry and
 * the segment's immutable configuration. */
struct dq {
    struct cds_lfht_node node;
    struct rcu_head rcu;
    char name[SHMQ_NAME_MAX + 1];
    uint64_t generation;
    struct shmq_queue_config cfg; /* cfg.gid is the segment's group */
    uid_t owner;                  /* the segment's owner */
    uint64_t next_expire_ms;      /* watch thread only */
};

/* A process the daemon watches with a pidfd. */
struct dp {
    struct cds_lfht_node node;
    struct rcu_head rcu;
    uint32_t token;
    pid_t pid;
    uid_t uid;
    int pidfd;
    uint64_t since_ns;       /* CLOCK_REALTIME when watched */
    _Atomic int armed;       /* 1 once its pidfd is in the epoll set */
    /* watch thread only: */
    uint64_t busy_since_ms;  /* exited but lock still held: since when */
    uint64_t retry_at_ms;
    uint32_t backoff_ms;
    struct dp *next_retry;
};

int tables_init(void);
void tables_fini(void);

/* Bring the queue table in line with the registry directory. */
void tables_sync_queues(struct shmqd *d, shmq_admin_t *a);
/* Add or refresh one queue from the registry (after a create). */
int tables_queue_load(struct shmqd *d, shmq_admin_t *a, const char *name);
/* Forget one queue (after a delete). */
void tables_queue_forget(const char *name);
/* Within rcu_read_lock(): the queue called name, or NULL. */
struct dq *tables_queue_find(const char *name);
/* Copy the known queues (sorted by name) into a new array; returns the
 * count or -ENOMEM. */
int tables_queue_snapshot(struct dq **out);
unsigned tables_queue_count(void);
/* The queue table itself, for iteration within rcu_read_lock(). */
struct cds_lfht *tables_queues(void);

/* Insert a watched process; -EEXIST if its token is there already. */
int tables_proc_add(struct dp *p);
/* Within rcu_read_lock(): the process watched under token, or NULL. */
struct dp *tables_proc_find(uint32_t token);
/* Remove and free (after a grace period); closes its pidfd. Only the
 * watch thread removes processes, so a dp it holds stays valid. */
void tables_proc_del(struct dp *p);
/* Calls fn for every watched process within one read-side section. */
void tables_proc_each(void (*fn)(struct dp *p, void *arg), void *arg);
unsigned tables_proc_count(void);

/* ---- watch.c ------------------------------------------------------------- */

int watch_init(struct shmqd *d);
/* The start-up scan: repair the dead, watch the living. */
void watch_attach(struct shmqd *d);
int watch_start(struct shmqd *d);
void watch_stop(struct shmqd *d);
/* Make the watch thread look at the queue table now (a queue with a lease
 * timeout was created). Safe from any thread. */
void watch_poke(void);
/* Watch token's process through pidfd (owned by the callee from here on).
 * Returns 0, -EEXIST (watched already; pidfd closed) or -errno. Safe from
 * any thread. */
int watch_add(struct shmqd *d, uint32_t token, pid_t pid, uid_t uid,
              int pidfd);
/* A pidfd for pid that is known to be the process holding token's
 * liveness lock: pidfd_open, then the lock check. Returns the fd, 0 if
 * the process is dead (repair it), or -errno. */
int watch_pidfd_checked(shmq_admin_t *a, uint32_t token, pid_t pid);
void format_repair(char *buf, size_t cap,
                   const struct shmq_repair_report *rep);

/* ---- expire.c ------------------------------------------------------------ */

/* Take back expired leases of the queues that are due; returns the
 * CLOCK_MONOTONIC millisecond when it next needs to run. */
uint64_t expire_run(struct shmqd *d, shmq_admin_t *a, uint64_t now_ms);
/* How often a queue with this lease timeout is checked. */
uint64_t expire_interval_ms(uint64_t lease_timeout_ns);

/* ---- control.c ----------------------------------------------------------- */

struct peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    int ngroups;
    int manager; /* the daemon's owner or root */
};

/* An answer being built: one or more frames back to back. */
struct reply {
    uint8_t *buf;
    size_t len;  /* bytes of finished frames */
    size_t cap;
    struct shmq__pw w; /* the open frame, at buf + len */
    unsigned op;
    uint32_t seq;
    int status;
    int oom;
    char msg[SHMQ_CTL_MSG_MAX];
};

int control_open(struct shmqd *d);
int control_run(struct shmqd *d);
/* Re-read the config file (SIGHUP); main.c. */
void shmqd_reload_config(struct shmqd *d);
void control_close(struct shmqd *d);
/* Whether peer may read a queue owned by owner:gid with mode. */
int peer_can_read(const struct peer *p, uid_t owner, gid_t gid,
                  uint32_t mode);

/* Add a record with put (a shmq__pw_* record writer) to the answer. */
int reply_add(struct reply *r, int (*put)(struct shmq__pw *, const void *),
              const void *rec);
void reply_msg(struct reply *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- requests.c ---------------------------------------------------------- */

/* Handle a parsed request; passed_fd is an fd that came with it (or -1),
 * owned by the callee. Sets r->status and r->msg. */
void request_handle(struct shmqd *d, int sock, const struct peer *p,
                    const struct shmq__req *rq, int passed_fd,
                    struct reply *r);
/* Create a queue (the daemon's default group when cfg->gid is -1), log it
 * naming who asked, and put a sentence for the client in msg. Returns the
 * library's answer. */
int shmqd_create_queue(struct shmqd *d, const char *name,
                       const struct shmq_queue_config *cfg, const char *who,
                       char *msg, size_t cap);

/* ---- dlq.c --------------------------------------------------------------- */

int dlq_list(struct shmqd *d, const char *name, uint32_t max,
             struct reply *r);
int dlq_move(struct shmqd *d, const char *name, uint32_t max, int requeue,
             struct reply *r);

/* ---- config.c ------------------------------------------------------------ */

/* Read a config file; every error is reported on stderr with its line.
 * Returns 0 or -1. Nothing is created or changed. */
struct config;
int config_load(const char *path, struct config **out);
/* Declare its queues: create the absent, check the present (a difference
 * is reported, the queue is left as it is). Returns the number of
 * conflicts. */
int config_apply(struct shmqd *d, const struct config *c);
void config_free(struct config *c);

/* ---- main.c -------------------------------------------------------------- */

/* Parse "0660"-style modes and group names or numbers. */
int parse_mode(const char *s, uint32_t *out);
int parse_group(const char *s, gid_t *out);

#endif
