/* SPDX-License-Identifier: MIT */
/*
 * shmq-stats: options and the one-shot table. Rates need two samples: a
 * one-shot run takes them --interval apart (1 s by default; 0 for a
 * single sample without rates). --prometheus takes one sample: a scraper
 * derives rates from the counters itself.
 */
#include "stats.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *arg_instance;
char **arg_names;
int arg_nnames;
uint64_t arg_interval_ns = 1000000000u;
int arg_ascii;
int arg_color = 1;
static int arg_json;
static int arg_prometheus;   /* 0 no, 1 OpenMetrics, 2 Prometheus text */
static int arg_watch;
static uint64_t arg_watch_ns; /* 0: arg_interval_ns */

enum { OPT_VERSION = 0x100, OPT_ASCII, OPT_NO_COLOR };

static const struct option options[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"instance", required_argument, NULL, 'I'},
    {"interval", required_argument, NULL, 'i'},
    {"watch", optional_argument, NULL, 'w'},
    {"json", no_argument, NULL, 'j'},
    {"prometheus", optional_argument, NULL, 'p'},
    {"ascii", no_argument, NULL, OPT_ASCII},
    {"no-color", no_argument, NULL, OPT_NO_COLOR},
    {NULL, 0, NULL, 0},
};

static void help(void)
{
    printf(
        "Usage: %s [OPTIONS] [QUEUE...]\n"
        "\n"
        "Show the counters of an instance's queues (all, or the named ones):\n"
        "depth, capacity, occupancy, high-water mark, enqueue and dequeue\n"
        "rates, leases in flight, redeliveries, dead letters, skips, repairs,\n"
        "sleeping producers and consumers, attached processes. Reads shared\n"
        "memory read-only: never registers, needs no daemon.\n"
        "\n"
        "  -h, --help                show this help\n"
        "      --version             show the library and layout versions\n"
        "  -I, --instance NAME       the instance (default: $SHMQ_INSTANCE or\n"
        "                            \"default\")\n"
        "  -i, --interval DUR        time between the two samples rates come\n"
        "                            from (default 1s; 0: one sample, no\n"
        "                            rates)\n"
        "  -w, --watch[=DUR]         redraw every DUR (default: the interval)\n"
        "                            until Ctrl-C, with occupancy bars and a\n"
        "                            depth history\n"
        "  -j, --json                JSON (with --watch: one object a line)\n"
        "  -p, --prometheus[=FMT]    metrics: openmetrics (default) or text\n"
        "                            (the Prometheus text format)\n"
        "      --ascii               bars and history in ASCII\n"
        "      --no-color            no colours in --watch\n"
        "\n"
        "Durations: 250ms, 5s, 1.5s (ns us ms s m h d; a bare number is\n"
        "seconds). Exit status: 0 ok, 1 failure, 2 bad usage, 3 no such\n"
        "queue or instance, 5 permission denied. See shmq-stats(1).\n",
        program_invocation_short_name);
}

static void version(void)
{
    printf("shmq-stats %s\nlibrary %s, shared-memory layout %d.%d\n",
           SHMQ_VERSION_STRING, shmq_version_string(), SHMQ_LAYOUT_MAJOR,
           SHMQ_LAYOUT_MINOR);
}

static int bad(const char *opt, const char *v, int err, const char *what)
{
    log_error("%s '%s': %s%s%s", opt, v,
              err == -ERANGE ? "out of range" : "invalid", what ? ": " : "",
              what ? what : "");
    return -EXIT_USAGE;
}

/* The arguments getopt sees, and the strings made for them. */
struct args {
    char **v;
    int n;
    char **made;
    int nmade;
};

/*
 * "--watch 2s" and "-w 2s": getopt takes an optional argument only when
 * it is attached ("--watch=2s", "-w2s"), so join a following argument
 * that parses as a duration to the option. A queue whose name reads as a
 * duration can still be named before the option or after "--".
 */
static int join_watch_argument(int argc, char **argv, struct args *a)
{
    uint64_t ns;

    a->n = a->nmade = 0;
    a->v = calloc((size_t)argc + 1, sizeof(*a->v));
    a->made = calloc((size_t)argc + 1, sizeof(*a->made));
    if (!a->v || !a->made)
        return -ENOMEM;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc)
                a->v[a->n++] = argv[i++];
            break;
        }
        int w = strcmp(argv[i], "--watch") == 0 ? 1
                : strcmp(argv[i], "-w") == 0    ? 2
                                                : 0;
        if (w && i + 1 < argc && parse_duration(argv[i + 1], &ns) == 0) {
            size_t len = strlen(argv[i + 1]) + 9;
            char *s = malloc(len);
            if (!s)
                return -ENOMEM;
            snprintf(s, len, "%s%s", w == 1 ? "--watch=" : "-w",
                     argv[i + 1]);
            a->made[a->nmade++] = s;
            a->v[a->n++] = s;
            i++;
            continue;
        }
        a->v[a->n++] = argv[i];
    }
    a->v[a->n] = NULL;
    return 0;
}

static void args_free(struct args *a)
{
    for (int i = 0; i < a->nmade; i++)
        free(a->made[i]);
    free(a->made);
    free(a->v);
}

/* 1 go on, 0 exit ok, < 0 -exit code. */
static int parse_argv(int argc, char **argv)
{
    int c, rc;

    arg_instance = shmq_default_instance();
    while ((c = getopt_long(argc, argv, "hI:i:w::jp::", options, NULL)) >= 0) {
        switch (c) {
        case 'h':
            help();
            return 0;
        case OPT_VERSION:
            version();
            return 0;
        case 'I':
            if (shmq_instance_check(optarg))
                return bad("--instance", optarg, -EINVAL,
                           "up to 31 of [A-Za-z0-9_-]");
            arg_instance = optarg;
            break;
        case 'i':
            if ((rc = parse_duration(optarg, &arg_interval_ns)) != 0)
                return bad("--interval", optarg, rc,
                           "a duration like 500ms or 2s");
            break;
        case 'w':
            arg_watch = 1;
            if (optarg && (rc = parse_duration(optarg, &arg_watch_ns)) != 0)
                return bad("--watch", optarg, rc,
                           "a duration like 500ms or 2s");
            if (optarg && arg_watch_ns < 10000000u)
                return bad("--watch", optarg, -ERANGE, "at least 10ms");
            break;
        case 'j':
            arg_json = 1;
            break;
        case 'p':
            if (!optarg || strcmp(optarg, "openmetrics") == 0)
                arg_prometheus = 1;
            else if (strcmp(optarg, "text") == 0)
                arg_prometheus = 2;
            else
                return bad("--prometheus", optarg, -EINVAL,
                           "openmetrics or text");
            break;
        case OPT_ASCII:
            arg_ascii = 1;
            break;
        case OPT_NO_COLOR:
            arg_color = 0;
            break;
        default:
            return -EXIT_USAGE;
        }
    }
    if (arg_json && arg_prometheus) {
        log_error("--json and --prometheus exclude each other");
        return -EXIT_USAGE;
    }
    if (arg_watch && arg_prometheus) {
        log_error("--prometheus prints one sample; it does not --watch");
        return -EXIT_USAGE;
    }
    if (arg_watch && !arg_watch_ns) {
        arg_watch_ns = arg_interval_ns;
        if (arg_watch_ns < 10000000u) {
            log_error("--watch needs an interval of at least 10ms");
            return -EXIT_USAGE;
        }
    }
    for (int i = optind; i < argc; i++)
        if (shmq_name_check(argv[i])) {
            log_error("invalid queue name '%s'", argv[i]);
            return -EXIT_USAGE;
        }
    if (optind < argc) {
        arg_names = argv + optind;
        arg_nnames = argc - optind;
    }
    const char *nc = getenv("NO_COLOR");
    if (nc && *nc)
        arg_color = 0;
    return 1;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u),
                          (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void print_table(const struct sample *s)
{
    char buf[COLS][24];
    const char *cells[COLS];
    struct table *t = table_new(COLS);

    if (!t) {
        log_error("out of memory");
        return;
    }
    table_align(t, 0, 0);
    table_row(t, col_names);
    for (size_t i = 0; i < s->n; i++) {
        row_cells(&s->rows[i], buf, cells);
        table_row(t, cells);
    }
    for (size_t i = 0; i < table_rows(t); i++) {
        table_print_row(t, i, stdout);
        putchar('\n');
    }
    table_free(t);
}

/* Report queues that could not be read; the exit code of the first. */
static int report_errors(const struct sample *s)
{
    int rc = EXIT_OK;

    for (size_t i = 0; i < s->n; i++) {
        const struct qrow *r = &s->rows[i];
        if (!r->err)
            continue;
        if (r->err == -ENOENT)
            log_error("no such queue '%s' in instance %s", r->info.name,
                      arg_instance);
        else
            log_error("%s: %s", r->info.name, shmq_strerror(r->err));
        /* Every queue was asked for: one we may not read is only a gap. */
        if (arg_names && rc == EXIT_OK)
            rc = exit_of(r->err);
    }
    return rc;
}

static int one_shot(shmq_admin_t *a)
{
    struct sample before, now;
    int rates = !arg_prometheus && arg_interval_ns > 0;
    int rc;

    if (rates) {
        if ((rc = sample_take(a, &before)) < 0)
            goto fail;
        sleep_ns(arg_interval_ns);
    }
    if ((rc = sample_take(a, &now)) < 0) {
        if (rates)
            sample_free(&before);
        goto fail;
    }
    if (rates) {
        sample_rates(&now, &before);
        sample_free(&before);
    }
    if (arg_prometheus)
        export_prometheus(stdout, &now, arg_prometheus == 1);
    else if (arg_json)
        export_json(stdout, &now, rates ? arg_interval_ns : 0);
    else
        print_table(&now);
    rc = report_errors(&now);
    sample_free(&now);
    return rc;
fail:
    log_error("instance %s: %s", arg_instance, shmq_strerror(rc));
    return exit_of(rc);
}

int main(int argc, char **argv)
{
    struct shmq_admin_opts o;
    shmq_admin_t *a;

    struct args args;
    if (join_watch_argument(argc, argv, &args) < 0) {
        args_free(&args);
        return log_error("out of memory");
    }
    /* getopt names the program by argv[0] in its messages. */
    args.v[0] = program_invocation_short_name;
    int rc = parse_argv(args.n, args.v);
    if (rc <= 0) {
        args_free(&args);
        return -rc;
    }
    shmq_admin_opts_init(&o);
    o.flags = SHMQ_ADMIN_READONLY;
    rc = shmq_admin_open(arg_instance, &o, &a);
    if (rc < 0) {
        if (rc == -ENOENT)
            log_error("no such instance '%s' (no queue was ever created in "
                      "it)",
                      arg_instance);
        else
            log_error("instance %s: %s", arg_instance, shmq_strerror(rc));
        args_free(&args);
        return exit_of(rc);
    }
    if (arg_watch)
        rc = watch_run(a, arg_watch_ns, arg_json);
    else
        rc = one_shot(a);
    shmq_admin_close(a);
    if (!arg_watch && fflush(stdout) != 0)
        rc = log_error("write to standard output: %s", strerror(errno));
    args_free(&args);
    return rc;
}
