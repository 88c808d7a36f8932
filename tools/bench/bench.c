/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench: throughput and latency of shmq against what users would
 * pick instead (POSIX mq, pipes, Unix sockets, DPDK rte_ring) and against
 * the hardware (a raw spin ring, a raw cache-line ping-pong), on the same
 * workloads in one run, every one across separate processes.
 *
 * This file: options, the plan of cases, the loop over repetitions and
 * transports, signals and clean-up. run.c runs one repetition; t_*.c are
 * the transports; report.c prints and plots.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <shmq/shmq.h>

struct bt_options bt_opt;
struct bt_env bt_env;
volatile sig_atomic_t bt_interrupted;

const char *const bt_workload_names[BT_NWORKLOADS] = {
    "tput", "rtt", "mpmc", "scale-pc", "scale-size", "scale-queues",
};
const char *const bt_workload_titles[BT_NWORKLOADS] = {
    "Throughput, 1 producer -> 1 consumer",
    "Round trip, ping-pong over two queues",
    "2 producers + 2 consumers, blocking",
    "Scaling: producers x consumers, 64 B",
    "Scaling: message size, 1 -> 1",
    "Scaling: queues in use, 1 -> 1 round-robin, 64 B",
};

/* Every transport, in the order of the tables. */
static const struct bt_transport *const transports[] = {
    &bt_shmq,
    &bt_shmq_sleep,
#ifdef SHMQ_BENCH_DPDK
    &bt_dpdk,
#endif
    &bt_mq,
    &bt_pipe,
    &bt_unix,
    &bt_spinring,
    &bt_ownring,
    &bt_cacheline,
};
#define NTRANSPORTS (sizeof(transports) / sizeof(transports[0]))

static unsigned arg_workloads = (1u << BT_NWORKLOADS) - 1;
static unsigned arg_transports = (1u << NTRANSPORTS) - 1;
static int arg_reps_set, arg_duration_set, arg_rounds_set, arg_watchdog_set;
static char arg_instance[SHMQ_INSTANCE_MAX + 1];

#define MAX_CASES 64
static struct bt_case cases[MAX_CASES];
static size_t ncases;

/* ---- options ---------------------------------------------------------------- */

static void help(void)
{
    printf("Usage: shmq-bench [OPTIONS]\n"
           "\n"
           "Measure shmq against POSIX message queues, pipes, Unix sockets,\n"
           "DPDK rte_ring (when built with it) and three references,\n"
           "on the same workloads in one run, each across separate\n"
           "processes. Prints medians and min-max over the repetitions, and\n"
           "the ratio of shmq to each of the others.\n"
           "\n"
           "Options:\n"
           "  -q, --quick             tiny counts: a smoke run of every\n"
           "                          workload in a few seconds\n"
           "  -r, --reps N            repetitions of each case (default 5)\n"
           "  -w, --only LIST         workloads, comma-separated (default all):\n"
           "                          tput rtt mpmc scale-pc scale-size\n"
           "                          scale-queues, or scale (all three)\n"
           "  -t, --transports LIST   transports, comma-separated (default all):\n");
    for (size_t i = 0; i < NTRANSPORTS; i++)
        printf("                            %-11s %s\n", transports[i]->name,
               transports[i]->about);
    printf("                          raw = spinring,ownring,cacheline\n"
           "  -i, --instance NAME     shmq instance for the bench's queues\n"
           "                          (default bench<pid>; created and\n"
           "                          destroyed by the bench if absent)\n"
           "  -d, --duration MS       length of each throughput repetition\n"
           "                          and limit of each round-trip one\n"
           "                          (default 500)\n"
           "  -n, --rounds N          most round trips per repetition\n"
           "                          (default 100000)\n"
           "      --watchdog SEC      a repetition still running this long\n"
           "                          after its start is killed and reported\n"
           "                          as a stall (default 60)\n"
           "  -o, --outdir DIR        also write bench.txt, bench.json,\n"
           "                          bench.csv, the scaling series as CSV\n"
           "                          and their plots (PNG, via gnuplot)\n"
           "      --no-plots          with --outdir: CSV only, no gnuplot\n"
           "      --json              print JSON instead of the table\n"
           "      --csv               print CSV instead of the table\n"
           "      --list              list workloads and transports\n"
           "  -h, --help              this text\n"
           "  -V, --version           library and layout versions\n"
           "\n"
           "Throughput: msg/s over the repetition, from the start signal to\n"
           "the last consumer's end. Round trip: one clock read per round\n"
           "trip. CPU: user + system seconds of all the run's processes per\n"
           "million messages. shmq/x: shmq's value divided by the row's.\n"
           "See docs/bench.md.\n");
}

static int parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi,
                     uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "shmq-bench: %s: '%s' is not a number from %llu to "
                        "%llu\n",
                opt, s, (unsigned long long)lo, (unsigned long long)hi);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_workloads(const char *s)
{
    char buf[256];
    unsigned mask = 0;
    if (strlen(s) >= sizeof(buf)) {
        fprintf(stderr, "shmq-bench: --only: list too long\n");
        return -EINVAL;
    }
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *save, *w = strtok_r(buf, ",", &save); w;
         w = strtok_r(NULL, ",", &save)) {
        unsigned m = 0;
        if (strcmp(w, "scale") == 0)
            m = (1u << BT_SCALE_PC) | (1u << BT_SCALE_SIZE) |
                (1u << BT_SCALE_Q);
        else if (strcmp(w, "all") == 0)
            m = (1u << BT_NWORKLOADS) - 1;
        for (unsigned i = 0; i < BT_NWORKLOADS && !m; i++)
            if (strcmp(w, bt_workload_names[i]) == 0)
                m = 1u << i;
        if (!m) {
            fprintf(stderr, "shmq-bench: --only: unknown workload '%s' "
                            "(see --list)\n", w);
            return -EINVAL;
        }
        mask |= m;
    }
    if (!mask) {
        fprintf(stderr, "shmq-bench: --only: empty list\n");
        return -EINVAL;
    }
    arg_workloads = mask;
    return 0;
}

static int parse_transports(const char *s)
{
    char buf[256];
    unsigned mask = 0;
    if (strlen(s) >= sizeof(buf)) {
        fprintf(stderr, "shmq-bench: --transports: list too long\n");
        return -EINVAL;
    }
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *save, *w = strtok_r(buf, ",", &save); w;
         w = strtok_r(NULL, ",", &save)) {
        unsigned m = 0;
        for (size_t i = 0; i < NTRANSPORTS; i++) {
            const char *n = transports[i]->name;
            if (strcmp(w, n) == 0 || strcmp(w, "all") == 0 ||
                (strcmp(w, "raw") == 0 && (transports[i] == &bt_spinring ||
                                           transports[i] == &bt_ownring ||
                                           transports[i] == &bt_cacheline)))
                m |= 1u << i;
        }
        if (!m) {
            if (strcmp(w, "dpdk") == 0)
                fprintf(stderr, "shmq-bench: --transports: dpdk was not "
                                "built in (libdpdk not found at build "
                                "time)\n");
            else
                fprintf(stderr, "shmq-bench: --transports: unknown "
                                "transport '%s' (see --list)\n", w);
            return -EINVAL;
        }
        mask |= m;
    }
    if (!mask) {
        fprintf(stderr, "shmq-bench: --transports: empty list\n");
        return -EINVAL;
    }
    arg_transports = mask;
    return 0;
}

static void list(void)
{
    printf("Workloads:\n");
    for (unsigned i = 0; i < BT_NWORKLOADS; i++)
        printf("  %-13s %s\n", bt_workload_names[i], bt_workload_titles[i]);
    printf("Transports:\n");
    for (size_t i = 0; i < NTRANSPORTS; i++)
        printf("  %-13s %s\n", transports[i]->name, transports[i]->about);
}

/* 1: go on, 0: done (exit 0), < 0: error (exit 2). */
static int parse_argv(int argc, char **argv)
{
    enum { OPT_WATCHDOG = 0x100, OPT_NOPLOTS, OPT_JSON, OPT_CSV, OPT_LIST };
    static const struct option opts[] = {
        {"quick", no_argument, NULL, 'q'},
        {"reps", required_argument, NULL, 'r'},
        {"only", required_argument, NULL, 'w'},
        {"transports", required_argument, NULL, 't'},
        {"instance", required_argument, NULL, 'i'},
        {"duration", required_argument, NULL, 'd'},
        {"rounds", required_argument, NULL, 'n'},
        {"watchdog", required_argument, NULL, OPT_WATCHDOG},
        {"outdir", required_argument, NULL, 'o'},
        {"no-plots", no_argument, NULL, OPT_NOPLOTS},
        {"json", no_argument, NULL, OPT_JSON},
        {"csv", no_argument, NULL, OPT_CSV},
        {"list", no_argument, NULL, OPT_LIST},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    uint64_t v;
    int c;

    bt_opt.reps = 5;
    bt_opt.duration_ns = 500000000u;
    bt_opt.rounds = 100000;
    bt_opt.watchdog_ns = UINT64_C(60000000000);
    bt_opt.plots = 1;
    snprintf(arg_instance, sizeof(arg_instance), "bench%d", (int)getpid());

    while ((c = getopt_long(argc, argv, "qr:w:t:i:d:n:o:hV", opts, NULL)) !=
           -1) {
        switch (c) {
        case 'q':
            bt_opt.quick = 1;
            break;
        case 'r':
            if (parse_u64("--reps", optarg, 1, BT_MAX_REPS, &v) < 0)
                return -EINVAL;
            bt_opt.reps = (unsigned)v;
            arg_reps_set = 1;
            break;
        case 'w':
            if (parse_workloads(optarg) < 0)
                return -EINVAL;
            break;
        case 't':
            if (parse_transports(optarg) < 0)
                return -EINVAL;
            break;
        case 'i':
            if (shmq_instance_check(optarg) < 0) {
                fprintf(stderr, "shmq-bench: --instance: '%s' is not a valid "
                                "instance name\n", optarg);
                return -EINVAL;
            }
            snprintf(arg_instance, sizeof(arg_instance), "%s", optarg);
            break;
        case 'd':
            if (parse_u64("--duration", optarg, 1, 3600000, &v) < 0)
                return -EINVAL;
            bt_opt.duration_ns = v * 1000000u;
            arg_duration_set = 1;
            break;
        case 'n':
            if (parse_u64("--rounds", optarg, 10, 100000000, &v) < 0)
                return -EINVAL;
            bt_opt.rounds = v;
            arg_rounds_set = 1;
            break;
        case OPT_WATCHDOG:
            if (parse_u64("--watchdog", optarg, 1, 86400, &v) < 0)
                return -EINVAL;
            bt_opt.watchdog_ns = v * 1000000000u;
            arg_watchdog_set = 1;
            break;
        case 'o':
            bt_opt.outdir = optarg;
            break;
        case OPT_NOPLOTS:
            bt_opt.plots = 0;
            break;
        case OPT_JSON:
            bt_opt.json = 1;
            break;
        case OPT_CSV:
            bt_opt.csv = 1;
            break;
        case OPT_LIST:
            list();
            return 0;
        case 'h':
            help();
            return 0;
        case 'V':
            printf("shmq-bench %s (libshmq %s, layout %d.%d)\n",
                   SHMQ_VERSION_STRING, shmq_version_string(),
                   SHMQ_LAYOUT_MAJOR, SHMQ_LAYOUT_MINOR);
            return 0;
        default:
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shmq-bench: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    if (bt_opt.json && bt_opt.csv) {
        fprintf(stderr, "shmq-bench: --json and --csv exclude each other\n");
        return -EINVAL;
    }
    if (bt_opt.quick) {
        if (!arg_reps_set)
            bt_opt.reps = 2;
        if (!arg_duration_set)
            bt_opt.duration_ns = 30000000u;
        if (!arg_rounds_set)
            bt_opt.rounds = 2000;
        if (!arg_watchdog_set)
            bt_opt.watchdog_ns = UINT64_C(20000000000);
    }
    if (bt_opt.watchdog_ns <= bt_opt.duration_ns) {
        fprintf(stderr, "shmq-bench: --watchdog must be longer than "
                        "--duration\n");
        return -EINVAL;
    }
    bt_opt.instance = arg_instance;
    return 1;
}

/* ---- the plan ----------------------------------------------------------------- */

static void add(enum bt_workload wl, const char *label, uint32_t size,
                uint32_t p, uint32_t c, uint32_t q, uint32_t batch,
                uint32_t cap, double x)
{
    struct bt_case *k = &cases[ncases++];
    k->wl = wl;
    snprintf(k->label, sizeof(k->label), "%s", label);
    k->size = size;
    k->producers = p;
    k->consumers = c;
    k->queues = q;
    k->batch = batch;
    k->capacity = cap;
    k->x = x;
}

static void size_label(char *buf, size_t len, uint32_t size)
{
    if (size >= 1024 && size % 1024 == 0)
        snprintf(buf, len, "%u KiB", size / 1024);
    else
        snprintf(buf, len, "%u B", size);
}

static void plan(void)
{
    char label[40], sz[16];
    int q = bt_opt.quick;

    if (arg_workloads & (1u << BT_TPUT)) {
        static const uint32_t sizes[] = {64, 1024};
        for (size_t i = 0; i < 2; i++) {
            size_label(sz, sizeof(sz), sizes[i]);
            snprintf(label, sizeof(label), "%s single", sz);
            add(BT_TPUT, label, sizes[i], 1, 1, 1, 1, 1024, 0);
            snprintf(label, sizeof(label), "%s batch %u", sz, BT_MAX_BATCH);
            add(BT_TPUT, label, sizes[i], 1, 1, 1, BT_MAX_BATCH, 1024, 0);
        }
    }
    if (arg_workloads & (1u << BT_RTT))
        add(BT_RTT, "64 B", 64, 1, 1, 2, 1, 1024, 0);
    if (arg_workloads & (1u << BT_MPMC))
        add(BT_MPMC, "2x2 64 B", 64, 2, 2, 1, 1, 1024, 0);
    if (arg_workloads & (1u << BT_SCALE_PC)) {
        static const uint32_t pc[][2] = {{1, 1}, {1, 4}, {4, 1},
                                         {2, 2}, {4, 4}, {8, 8}};
        static const uint32_t quick[][2] = {{1, 1}, {4, 4}};
        size_t n = q ? 2 : 6;
        for (size_t i = 0; i < n; i++) {
            const uint32_t *v = q ? quick[i] : pc[i];
            snprintf(label, sizeof(label), "%ux%u", v[0], v[1]);
            add(BT_SCALE_PC, label, 64, v[0], v[1], 1, 1, 1024,
                (double)(i + 1));
        }
    }
    if (arg_workloads & (1u << BT_SCALE_SIZE)) {
        static const uint32_t sizes[] = {8, 64, 256, 1024, 4096, 16384, 65536};
        static const uint32_t quick[] = {8, 65536};
        size_t n = q ? 2 : 7;
        for (size_t i = 0; i < n; i++) {
            uint32_t s = q ? quick[i] : sizes[i];
            /* at most 8 MiB of messages per queue */
            uint32_t cap = s <= 8192 ? 1024 : (8u << 20) / s;
            size_label(label, sizeof(label), s);
            add(BT_SCALE_SIZE, label, s, 1, 1, 1, 1, cap, s);
        }
    }
    if (arg_workloads & (1u << BT_SCALE_Q)) {
        static const uint32_t nq[] = {1, 10, 100, 1000};
        static const uint32_t quick[] = {1, 100};
        size_t n = q ? 2 : 4;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = q ? quick[i] : nq[i];
            snprintf(label, sizeof(label), "%u queue%s", v, v > 1 ? "s" : "");
            add(BT_SCALE_Q, label, 64, 1, 1, v, 1, 128, v);
        }
    }
}

/* ---- environment and clean-up ----------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    bt_interrupted = 1;
}

static void cleanup(void)
{
    bt_shmq_end();
    bt_mq_end();
}

/* What one clock read costs here: each round trip includes one, and
 * virtual machines make it expensive. Best of a few tries. */
static double clock_cost(void)
{
    double best = 0;
    for (int t = 0; t < 5; t++) {
        uint64_t t0 = bt_now_ns();
        for (int i = 0; i < 100000; i++)
            bt_now_ns();
        double ns = (double)(bt_now_ns() - t0) / 100000.0;
        if (t == 0 || ns < best)
            best = ns;
    }
    return best;
}

static void describe_machine(void)
{
    struct utsname u;
    char line[256];
    FILE *f;

    bt_env.ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(bt_env.cpu, sizeof(bt_env.cpu), "unknown CPU");
    if ((f = fopen("/proc/cpuinfo", "r"))) {
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "model name", 10) != 0)
                continue;
            char *p = strchr(line, ':');
            if (p) {
                p += 1 + strspn(p + 1, " \t");
                p[strcspn(p, "\n")] = 0;
                snprintf(bt_env.cpu, sizeof(bt_env.cpu), "%s", p);
            }
            break;
        }
        fclose(f);
    }
    if (uname(&u) == 0)
        snprintf(bt_env.kernel, sizeof(bt_env.kernel), "%s %s %s", u.sysname,
                 u.release, u.machine);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(bt_env.started, sizeof(bt_env.started), "%Y-%m-%dT%H:%M:%SZ",
             &tm);
    snprintf(bt_env.instance, sizeof(bt_env.instance), "%s", bt_opt.instance);
    bt_env.clock_ns = clock_cost();
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int selected(size_t i)
{
    return (arg_transports >> i) & 1u;
}

static int wanted(const struct bt_transport *t)
{
    for (size_t i = 0; i < NTRANSPORTS; i++)
        if (transports[i] == t)
            return selected(i);
    return 0;
}

/* ---- running ---------------------------------------------------------------- */

static struct bt_result *results;
static size_t nresults;

/* Run every case: for each case, the repetitions interleave the
 * transports, so that noise from the rest of the machine falls on all of
 * them alike. Returns the number of failed results. */
static int run_all(void)
{
    int failed = 0;
    char err[256];

    results = calloc(ncases * NTRANSPORTS, sizeof(*results));
    if (!results)
        return -ENOMEM;
    for (size_t ci = 0; ci < ncases && !bt_interrupted; ci++) {
        const struct bt_case *c = &cases[ci];
        struct bt_result *row = &results[nresults];
        size_t nrow = 0;
        uint64_t t_case = bt_now_ns();

        for (size_t ti = 0; ti < NTRANSPORTS; ti++) {
            if (!selected(ti))
                continue;
            const struct bt_transport *t = transports[ti];
            if (t->workloads && !(t->workloads & (1u << c->wl)))
                continue;
            struct bt_result *r = &row[nrow++];
            const char *why = t->check(c);
            r->c = c;
            r->t = t;
            if (!why && c->batch > 1 && !t->send_batch)
                why = t->batch_note;
            if (why) {
                r->status = BT_NA;
                snprintf(r->note, sizeof(r->note), "%s", why);
            }
        }
        nresults += nrow;
        for (unsigned rep = 0; rep < bt_opt.reps && !bt_interrupted; rep++) {
            for (size_t k = 0; k < nrow && !bt_interrupted; k++) {
                struct bt_result *r = &row[k];
                if (r->status != BT_OK)
                    continue;
                struct bt_rep *x = &r->rep[r->nreps];
                err[0] = 0;
                int rc = bt_run_rep(c, r->t, x, err, sizeof(err));
                if (rc < 0) {
                    if (bt_interrupted)
                        break;
                    r->status = BT_ERROR;
                    snprintf(r->note, sizeof(r->note), "%s",
                             err[0] ? err : strerror(-rc));
                    fprintf(stderr, "shmq-bench: %s %s, %s: %s\n",
                            bt_workload_names[c->wl], c->label, r->t->name,
                            r->note);
                    failed++;
                    continue;
                }
                r->nreps++;
                if (err[0] && !r->note[0])
                    snprintf(r->note, sizeof(r->note), "%s", err);
                if (x->stalled) {
                    r->stalls++;
                    fprintf(stderr, "shmq-bench: %s %s, %s: stalled (no end "
                                    "within the watchdog), repetition %u\n",
                            bt_workload_names[c->wl], c->label, r->t->name,
                            rep + 1);
                }
            }
        }
        fprintf(stderr, "shmq-bench: [%zu/%zu] %s %s: %.1f s\n", ci + 1,
                ncases, bt_workload_names[c->wl], c->label,
                (double)(bt_now_ns() - t_case) / 1e9);
    }
    return failed;
}

static int write_file(const char *dir, const char *name,
                      void (*fn)(FILE *, const struct bt_result *, size_t))
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "shmq-bench: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    fn(f, results, nresults);
    if (fclose(f) != 0) {
        fprintf(stderr, "shmq-bench: %s: %s\n", path, strerror(errno));
        return -EIO;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[256];
    int rc = parse_argv(argc, argv);
    if (rc <= 0)
        return rc == 0 ? 0 : 2;

    if (bt_opt.outdir && mkdir(bt_opt.outdir, 0777) < 0 && errno != EEXIST) {
        fprintf(stderr, "shmq-bench: --outdir %s: %s\n", bt_opt.outdir,
                strerror(errno));
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: waits return EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    raise_nofile();
    describe_machine();
    plan();
    atexit(cleanup);

    if (wanted(&bt_shmq) || wanted(&bt_shmq_sleep)) {
        if (bt_shmq_begin(bt_opt.instance, err, sizeof(err)) < 0) {
            fprintf(stderr, "shmq-bench: %s\n", err);
            return 1;
        }
    }
    if (wanted(&bt_mq)) {
        uint32_t depth = 0, size = 0, queues = 2;
        for (size_t i = 0; i < ncases; i++) {
            if (cases[i].capacity > depth)
                depth = cases[i].capacity;
            if (cases[i].size > size)
                size = cases[i].size;
            if (cases[i].queues > queues)
                queues = cases[i].queues;
        }
        bt_mq_begin(depth, size, queues);
    }

    int failed = run_all();
    if (failed < 0) {
        fprintf(stderr, "shmq-bench: %s\n", strerror(-failed));
        return 1;
    }
    if (bt_interrupted) {
        fprintf(stderr, "shmq-bench: interrupted; queues removed\n");
        return 130;
    }

    if (bt_opt.json)
        bt_report_json(stdout, results, nresults);
    else if (bt_opt.csv)
        bt_report_csv(stdout, results, nresults);
    else
        bt_report_table(stdout, results, nresults);
    fflush(stdout);
    if (bt_opt.outdir) {
        if (write_file(bt_opt.outdir, "bench.txt", bt_report_table) < 0 ||
            write_file(bt_opt.outdir, "bench.json", bt_report_json) < 0 ||
            write_file(bt_opt.outdir, "bench.csv", bt_report_csv) < 0)
            failed++;
        rc = bt_report_plots(bt_opt.outdir, results, nresults, bt_opt.plots);
        if (rc < 0 && rc != -ENOENT)
            failed++;
    }
    return failed ? 1 : 0;
}
