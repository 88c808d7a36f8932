/* SPDX-License-Identifier: MIT */
/*
 * shmq-demo: a producer hands jobs to a pool of worker processes through a
 * queue that shmqd creates; one worker is killed with SIGKILL in the
 * middle of a job, and its job is delivered again to another worker. At
 * the end it prints what every worker did and the queue's counters.
 *
 * It uses the public API only: ctl.h to ask the daemon for the queue,
 * shmq.h to send and lease. Run it with a shmqd serving the instance
 * (scripts/demo.sh does both).
 */
#include <errno.h>
#include <getopt.h>
#include <shmq/ctl.h>
#include <shmq/shmq.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_JOBS 100000
#define MAX_WORKERS 64

static const char *arg_instance;
static const char *arg_socket;
static const char *arg_queue = "demo-jobs";
static unsigned arg_jobs = 40;
static unsigned arg_workers = 4;
static unsigned arg_work_ms = 5;

/* What the processes tell each other, in shared memory. */
struct job {
    _Atomic uint32_t deliveries; /* leases of it seen by workers */
    _Atomic uint32_t done;       /* times it was finished */
    _Atomic int32_t first_worker, done_worker;
};

struct board {
    _Atomic int stop;
    _Atomic unsigned ready; /* workers that opened the queue */
    _Atomic int crash_job;  /* job the victim dies in, +1; 0: none yet */
    _Atomic uint64_t kill_ns, redelivered_ns;
    _Atomic int redelivered_to;
    _Atomic uint32_t finished;
    _Atomic uint32_t per_worker[MAX_WORKERS];
    pid_t pids[MAX_WORKERS];
    struct job jobs[MAX_JOBS];
};

static struct board *b;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void help(void)
{
    printf("Usage: shmq-demo [OPTIONS]\n"
           "\n"
           "A job queue with a pool of workers, one of which is killed in "
           "the\n"
           "middle of a job: its job is delivered again to another worker.\n"
           "\n"
           "  -i, --instance NAME  instance served by shmqd (default: "
           "$SHMQ_INSTANCE\n"
           "                       or \"default\")\n"
           "  -s, --socket PATH    shmqd's control socket (default: the "
           "advertised one)\n"
           "  -q, --queue NAME     queue to use (default demo-jobs; made "
           "anew)\n"
           "  -n, --jobs N         jobs to hand out (default 40)\n"
           "  -w, --workers N      worker processes (default 4)\n"
           "  -t, --work-ms MS     how long a job takes (default 5)\n"
           "  -h, --help\n");
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || !*s || v < lo || v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_argv(int argc, char **argv)
{
    static const struct option opts[] = {
        {"instance", required_argument, NULL, 'i'},
        {"socket", required_argument, NULL, 's'},
        {"queue", required_argument, NULL, 'q'},
        {"jobs", required_argument, NULL, 'n'},
        {"workers", required_argument, NULL, 'w'},
        {"work-ms", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "i:s:q:n:w:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': arg_instance = optarg; break;
        case 's': arg_socket = optarg; break;
        case 'q': arg_queue = optarg; break;
        case 'n':
            if (parse_uint(optarg, 4, MAX_JOBS, &arg_jobs)) {
                fprintf(stderr, "shmq-demo: --jobs must be 4 to %d\n",
                        MAX_JOBS);
                return -1;
            }
            break;
        case 'w':
            if (parse_uint(optarg, 2, MAX_WORKERS, &arg_workers)) {
                fprintf(stderr, "shmq-demo: --workers must be 2 to %d\n",
                        MAX_WORKERS);
                return -1;
            }
            break;
        case 't':
            if (parse_uint(optarg, 0, 10000, &arg_work_ms)) {
                fprintf(stderr, "shmq-demo: --work-ms must be 0 to 10000\n");
                return -1;
            }
            break;
        case 'h': help(); return 0;
        default: return -1;
        }
    }
    return 1;
}

static shmq_t *open_queue(void)
{
    struct shmq_open_opts o;
    shmq_t *q;
    shmq_open_opts_init(&o);
    o.instance = arg_instance;
    int rc = shmq_open(arg_queue, &o, &q);
    if (rc) {
        fprintf(stderr, "shmq-demo: open %s: %s\n", arg_queue,
                shmq_strerror(rc));
        exit(1);
    }
    return q;
}

/* A worker: lease a job, work on it, ack it. Worker 1 dies in the middle
 * of its second job: it tells the parent, which kills it. */
static void worker(int w)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    shmq_t *q = open_queue();
    unsigned mine = 0;
    atomic_fetch_add(&b->ready, 1);
    while (!atomic_load(&b->stop)) {
        shmq_msg_t m;
        int rc = shmq_lease(q, &m, 50000000); /* 50 ms, then look at stop */
        if (rc == -ETIMEDOUT)
            continue;
        if (rc) {
            fprintf(stderr, "shmq-demo: worker %d: lease: %s\n", w + 1,
                    shmq_strerror(rc));
            _exit(1);
        }
        unsigned id;
        if (sscanf((const char *)m.data, "job %u", &id) != 1 ||
            id >= arg_jobs)
            _exit(2);
        struct job *j = &b->jobs[id];
        if (atomic_fetch_add(&j->deliveries, 1) == 0)
            atomic_store(&j->first_worker, w);
        if (m.deliveries > 1) {
            atomic_store(&b->redelivered_ns, now_ns());
            atomic_store(&b->redelivered_to, w);
        }
        if (w == 0 && ++mine == 2) {
            /* In the middle of the job: we hold its lease. */
            atomic_store(&b->crash_job, (int)id + 1);
            for (;;)
                pause();
        }
        sleep_ms(arg_work_ms); /* the work */
        atomic_fetch_add(&j->done, 1);
        atomic_store(&j->done_worker, w);
        atomic_fetch_add(&b->per_worker[w], 1);
        atomic_fetch_add(&b->finished, 1);
        shmq_ack(q, &m);
    }
    shmq_close(q);
    _exit(0);
}

static shmq_ctl_t *connect_daemon(void)
{
    shmq_ctl_t *c = NULL;
    int rc = -ENOENT;
    /* shmqd may be starting: try for a few seconds. */
    for (int i = 0; i < 500; i++) {
        rc = shmq_ctl_connect(arg_instance, arg_socket, &c);
        if (rc == 0 && shmq_ctl_ping(c, NULL, NULL, 0) == 0)
            return c;
        if (rc == 0)
            shmq_ctl_close(c);
        sleep_ms(10);
    }
    fprintf(stderr, "shmq-demo: shmqd does not answer for instance %s: %s\n",
            arg_instance ? arg_instance : shmq_default_instance(),
            shmq_strerror(rc));
    exit(1);
}

static void make_queue(shmq_ctl_t *c)
{
    struct shmq_queue_config cfg;
    char msg[SHMQ_CTL_MSG_MAX];
    shmq_queue_config_init(&cfg);
    cfg.capacity = 256;
    cfg.msg_max = 64;
    shmq_ctl_delete(c, arg_queue, NULL, 0); /* a fresh queue each run */
    int rc = shmq_ctl_create(c, arg_queue, &cfg, msg, sizeof(msg));
    if (rc) {
        fprintf(stderr, "shmq-demo: %s\n", msg);
        exit(1);
    }
}

static void report(shmq_ctl_t *c, unsigned crash_job, uint64_t elapsed)
{
    unsigned once = 0, twice = 0, lost = 0, extra = 0;
    for (unsigned i = 0; i < arg_jobs; i++) {
        uint32_t done = atomic_load(&b->jobs[i].done);
        uint32_t dl = atomic_load(&b->jobs[i].deliveries);
        lost += done == 0;
        extra += done > 1 ? done - 1 : 0;
        if (done && dl == 1)
            once++;
        else if (done && dl > 1)
            twice++;
    }
    printf("\n  worker  pid      jobs finished\n");
    for (unsigned w = 0; w < arg_workers; w++)
        printf("  %-6u  %-7d  %u%s\n", w + 1, (int)b->pids[w],
               atomic_load(&b->per_worker[w]),
               w == 0 ? "  (killed in the middle of a job)" : "");
    printf("\njobs: %u sent, %u finished in %.0f ms: %u on their first "
           "delivery, %u after a redelivery; %u lost, %u finished twice\n",
           arg_jobs, atomic_load(&b->finished), (double)elapsed / 1e6, once,
           twice, lost, extra);
    printf("job %u: delivered to worker 1 (killed), then to worker %d with "
           "deliveries == 2, %.2f ms after the kill\n",
           crash_job, atomic_load(&b->redelivered_to) + 1,
           (double)(atomic_load(&b->redelivered_ns) -
                    atomic_load(&b->kill_ns)) / 1e6);
    struct shmq_stats st = {.size = sizeof(st)};
    if (shmq_ctl_stats(c, arg_queue, &st, NULL, 0) == 0)
        printf("queue %s (from shmqd): enqueued %llu, dequeued %llu, "
               "redelivered %llu, repaired %llu, depth %llu, in flight "
               "%llu\n",
               arg_queue, (unsigned long long)st.enqueued,
               (unsigned long long)st.dequeued,
               (unsigned long long)st.redelivered,
               (unsigned long long)st.repaired, (unsigned long long)st.depth,
               (unsigned long long)st.in_flight);
}

int main(int argc, char **argv)
{
    struct shmq_ctl_daemon info;
    int rc = parse_argv(argc, argv);
    if (rc <= 0)
        return rc == 0 ? 0 : 2;

    b = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) {
        perror("shmq-demo: mmap");
        return 1;
    }
    shmq_ctl_t *c = connect_daemon();
    shmq_ctl_ping(c, &info, NULL, 0);
    make_queue(c);
    printf("shmq demo: %u jobs, %u workers, queue %s on instance %s "
           "(shmqd %s, pid %d)\n",
           arg_jobs, arg_workers, arg_queue, info.instance, info.version,
           (int)info.pid);

    for (unsigned w = 0; w < arg_workers; w++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("shmq-demo: fork");
            return 1;
        }
        if (pid == 0)
            worker((int)w);
        b->pids[w] = pid;
    }
    /* The producer: once every worker is there, hand out every job. */
    for (int i = 0; i < 5000 && atomic_load(&b->ready) < arg_workers; i++)
        sleep_ms(1);
    uint64_t t0 = now_ns();
    shmq_t *q = open_queue();
    for (unsigned i = 0; i < arg_jobs; i++) {
        char job[64];
        int n = snprintf(job, sizeof(job), "job %u: resize image %u", i, i);
        if ((rc = shmq_send(q, job, (size_t)n + 1, 5000000000)) != 0) {
            fprintf(stderr, "shmq-demo: send: %s\n", shmq_strerror(rc));
            return 1;
        }
    }
    shmq_close(q);

    /* Kill worker 1 while it holds a job; wait for every job. */
    unsigned crash_job = 0;
    uint64_t deadline = now_ns() + 60000000000u;
    while (atomic_load(&b->finished) < arg_jobs && now_ns() < deadline) {
        int cj = atomic_load(&b->crash_job);
        if (cj && !crash_job) {
            crash_job = (unsigned)cj - 1;
            printf("worker 1 (pid %d) is in the middle of job %u: killing it "
                   "with SIGKILL\n",
                   (int)b->pids[0], crash_job);
            fflush(stdout);
            atomic_store(&b->kill_ns, now_ns());
            kill(b->pids[0], SIGKILL);
        }
        sleep_ms(1);
    }
    uint64_t elapsed = now_ns() - t0;
    atomic_store(&b->stop, 1);
    for (unsigned w = 0; w < arg_workers; w++)
        waitpid(b->pids[w], NULL, 0);
    if (!crash_job) {
        fprintf(stderr, "shmq-demo: worker 1 never got a second job; run "
                        "with more jobs (-n)\n");
        return 1;
    }
    if (atomic_load(&b->finished) < arg_jobs) {
        fprintf(stderr, "shmq-demo: only %u of %u jobs finished\n",
                atomic_load(&b->finished), arg_jobs);
        return 1;
    }
    report(c, crash_job, elapsed);
    shmq_ctl_delete(c, arg_queue, NULL, 0);
    shmq_ctl_close(c);
    return 0;
}
