/* SPDX-License-Identifier: MIT */
/*
 * shmq-ctl: options, the verbs table, help and version. Options may come
 * before or after the verb; each verb accepts the options that make sense
 * for it and names any other one it is given.
 */
#include "shmq-ctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *arg_instance;
const char *arg_socket;
int arg_json;
int arg_quiet;
struct shmq_queue_config arg_config;
int arg_whole;
int arg_lease;
uint64_t arg_count;
int arg_count_set;
uint64_t arg_timeout_ns;
int arg_timeout_set;
static int arg_help;

volatile sig_atomic_t stop_signal;

/* Option groups: which verbs take which options. */
enum {
    O_JSON = 1 << 0,
    O_QUIET = 1 << 1,
    O_SOCKET = 1 << 2,
    O_CREATE = 1 << 3,
    O_WHOLE = 1 << 4,
    O_TIMEOUT = 1 << 5,
    O_COUNT = 1 << 6,
    O_LEASE = 1 << 7,
};

enum {
    OPT_VERSION = 0x100,
    OPT_SOCKET,
    OPT_CAPACITY,
    OPT_MSG_MAX,
    OPT_MODE,
    OPT_GROUP,
    OPT_MAX_DELIVERIES,
    OPT_DLQ_CAPACITY,
    OPT_LEASE_TIMEOUT,
    OPT_TIMESTAMPS,
    OPT_WHOLE,
    OPT_LEASE,
};

static const struct option options[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"instance", required_argument, NULL, 'I'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"json", no_argument, NULL, 'j'},
    {"quiet", no_argument, NULL, 'q'},
    {"capacity", required_argument, NULL, OPT_CAPACITY},
    {"msg-max", required_argument, NULL, OPT_MSG_MAX},
    {"mode", required_argument, NULL, OPT_MODE},
    {"group", required_argument, NULL, OPT_GROUP},
    {"max-deliveries", required_argument, NULL, OPT_MAX_DELIVERIES},
    {"dlq-capacity", required_argument, NULL, OPT_DLQ_CAPACITY},
    {"lease-timeout", required_argument, NULL, OPT_LEASE_TIMEOUT},
    {"timestamps", required_argument, NULL, OPT_TIMESTAMPS},
    {"whole", no_argument, NULL, OPT_WHOLE},
    {"timeout", required_argument, NULL, 't'},
    {"count", required_argument, NULL, 'n'},
    {"lease", no_argument, NULL, OPT_LEASE},
    {NULL, 0, NULL, 0},
};

struct verb {
    const char *name;
    int min_args, max_args; /* after the verb; -1: no limit */
    unsigned opts;          /* O_* it accepts */
    int (*run)(int argc, char **argv);
    const char *usage;
    const char *help;
};

static const struct verb verbs[] = {
    {"create", 1, 1, O_CREATE | O_SOCKET | O_QUIET, verb_create,
     "create NAME [OPTIONS]",
     "Create a queue (through shmqd).\n"
     "\n"
     "      --capacity N          slots, a power of two (default 1024)\n"
     "      --msg-max SIZE        largest message, e.g. 4KiB (default 4KiB)\n"
     "      --mode MODE           octal permission mode (default 0660)\n"
     "      --group GROUP         group name or number of the queue\n"
     "      --max-deliveries N    deliveries before a message is dead-\n"
     "                            lettered; 0: no limit (default 5)\n"
     "      --dlq-capacity N      dead-letter slots, a power of two (64)\n"
     "      --lease-timeout DUR   take back leases held longer, e.g. 30s\n"
     "                            (default: never)\n"
     "      --timestamps MODE     precise, coarse or none (default coarse)\n"
     "  -q, --quiet               print nothing on success\n"},
    {"delete", 1, 1, O_SOCKET | O_QUIET, verb_delete, "delete NAME",
     "Delete a queue and every message in it (through shmqd).\n"
     "\n"
     "  -q, --quiet               print nothing on success\n"},
    {"purge", 1, 1, O_SOCKET | O_QUIET | O_JSON, verb_purge, "purge NAME",
     "Drop every message waiting in a queue; leased messages stay\n"
     "(through shmqd).\n"
     "\n"
     "  -j, --json                print {\"queue\",\"purged\"}\n"
     "  -q, --quiet               print nothing on success\n"},
    {"list", 0, 0, O_JSON | O_QUIET, verb_list, "list",
     "List the queues of the instance with their size and depth.\n"
     "\n"
     "  -j, --json                print JSON\n"
     "  -q, --quiet               print the names only, one a line\n"},
    {"info", 1, 1, O_JSON, verb_info, "info NAME",
     "Show a queue's configuration and counters.\n"
     "\n"
     "  -j, --json                print JSON\n"},
    {"send", 1, -1, O_TIMEOUT | O_WHOLE, verb_send, "send NAME [MESSAGE...]",
     "Send each MESSAGE; without any, send each line of standard input as\n"
     "one message (without its newline).\n"
     "\n"
     "      --whole               send all of standard input as one message\n"
     "  -t, --timeout DUR         wait at most DUR for room for each message\n"
     "                            (default: wait as long as it takes)\n"},
    {"recv", 1, 1, O_COUNT | O_TIMEOUT | O_LEASE | O_JSON, verb_recv,
     "recv NAME [-n COUNT] [--timeout DUR] [--lease]",
     "Receive messages and write each to standard output on a line.\n"
     "\n"
     "  -n, --count N             receive N messages (default 1; 0: go on\n"
     "                            until the timeout or a signal)\n"
     "  -t, --timeout DUR         wait at most DUR for each message (default:\n"
     "                            as long as it takes; 0: do not wait)\n"
     "      --lease               acknowledge each message only after it was\n"
     "                            written out (at-least-once)\n"
     "  -j, --json                one JSON object a line, with id,\n"
     "                            deliveries and enqueue time\n"},
    {"dlq", 2, 2, O_COUNT | O_JSON | O_SOCKET | O_QUIET, verb_dlq,
     "dlq NAME list|requeue|drop [-n COUNT]",
     "Work on a queue's dead letters (through shmqd): list them (oldest\n"
     "first), requeue them into the queue as new messages, or drop them.\n"
     "\n"
     "  -n, --count N             at most N dead letters (list: default 100,\n"
     "                            at most 1000; requeue, drop: default all)\n"
     "  -j, --json                print JSON\n"
     "  -q, --quiet               requeue, drop: print nothing on success\n"},
    {"ps", 0, 0, O_JSON | O_SOCKET, verb_ps, "ps",
     "List the processes registered in the instance (through shmqd): pid,\n"
     "user, queues opened, leases held.\n"
     "\n"
     "  -j, --json                print JSON\n"},
};

static const struct verb *find_verb(const char *name)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verbs[i].name, name) == 0)
            return &verbs[i];
    return NULL;
}

static void help(void)
{
    printf("Usage: %s [OPTIONS] VERB [ARGS]\n"
           "\n"
           "Manage shmq queues.\n"
           "\n"
           "Verbs:\n",
           program_invocation_short_name);
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        printf("  %s\n", verbs[i].usage);
    printf("\n"
           "Options:\n"
           "  -h, --help                show this help, or a verb's\n"
           "      --version             show the library and layout versions\n"
           "  -I, --instance NAME       the instance (default: $SHMQ_INSTANCE\n"
           "                            or \"default\")\n"
           "      --socket PATH         shmqd's control socket (default: the\n"
           "                            one the instance's daemon advertises)\n"
           "  -j, --json                JSON output (verbs that print data)\n"
           "\n"
           "Durations: 250ms, 5s, 1.5s, 1m30s (ns us ms s m h d; a bare\n"
           "number is seconds). Sizes: 4096, 4KiB, 1MiB (K M G: 1024;\n"
           "kB MB GB: 1000).\n"
           "\n"
           "Exit status: 0 ok, 1 failure, 2 bad usage, 3 no such queue,\n"
           "4 timeout or empty, 5 permission denied, 6 shmqd unreachable.\n"
           "\n"
           "See '%s VERB --help' and shmq-ctl(1).\n",
           program_invocation_short_name);
}

static void verb_help(const struct verb *v)
{
    printf("Usage: %s [-I INSTANCE] %s\n\n%s", program_invocation_short_name,
           v->usage, v->help);
    if (v->opts & O_SOCKET)
        printf("      --socket PATH         shmqd's control socket\n");
    printf("  -I, --instance NAME       the instance\n");
}

static void version(void)
{
    printf("shmq-ctl %s\n"
           "library %s, shared-memory layout %d.%d, control protocol %d\n",
           SHMQ_VERSION_STRING, shmq_version_string(), SHMQ_LAYOUT_MAJOR,
           SHMQ_LAYOUT_MINOR, SHMQ_CTL_PROTO_VERSION);
}

static const char *option_name(int c)
{
    for (const struct option *o = options; o->name; o++)
        if (o->val == c)
            return o->name;
    return "?";
}

static int bad_value(int c, const char *value, int err, const char *what)
{
    log_error("--%s '%s': %s%s%s", option_name(c), value,
              err == -ERANGE ? "out of range" : "invalid",
              what ? ": " : "", what ? what : "");
    return -EXIT_USAGE;
}

/* An option value into a config field of 32 bits. */
static int opt_u32(int c, const char *s, uint64_t max, uint32_t *out)
{
    uint64_t v;
    int rc = parse_u64(s, max, &v);
    if (rc)
        return bad_value(c, s, rc, NULL);
    *out = (uint32_t)v;
    return 0;
}

static int parse_timestamps(const char *s, uint32_t *out)
{
    static const char *const names[] = {"precise", "coarse", "none"};
    _Static_assert(SHMQ_TS_PRECISE == 0 && SHMQ_TS_COARSE == 1 &&
                       SHMQ_TS_NONE == 2,
                   "names follow SHMQ_TS_*");
    for (uint32_t i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    return -EINVAL;
}

/* One option; 0 or -exit code. *group gets its O_* group (0: any verb). */
static int take_option(int c, const char *v, unsigned *group)
{
    uint64_t n;
    int rc;

    *group = 0;
    switch (c) {
    case 'h':
        arg_help = 1;
        return 0;
    case 'I':
        if (shmq_instance_check(v))
            return bad_value(c, v, -EINVAL, "up to 31 of [A-Za-z0-9_-]");
        arg_instance = v;
        return 0;
    case OPT_SOCKET:
        *group = O_SOCKET;
        if (!*v || strlen(v) >= SHMQ_CTL_PATH_MAX)
            return bad_value(c, v, -EINVAL, "empty or too long");
        arg_socket = v;
        return 0;
    case 'j':
        *group = O_JSON;
        arg_json = 1;
        return 0;
    case 'q':
        *group = O_QUIET;
        arg_quiet = 1;
        return 0;
    case OPT_WHOLE:
        *group = O_WHOLE;
        arg_whole = 1;
        return 0;
    case OPT_LEASE:
        *group = O_LEASE;
        arg_lease = 1;
        return 0;
    case 't':
        *group = O_TIMEOUT;
        if ((rc = parse_duration(v, &arg_timeout_ns)) != 0)
            return bad_value(c, v, rc, "a duration like 250ms or 5s");
        if (arg_timeout_ns > INT64_MAX / 2)
            return bad_value(c, v, -ERANGE, NULL);
        arg_timeout_set = 1;
        return 0;
    case 'n':
        *group = O_COUNT;
        if ((rc = parse_u64(v, UINT32_MAX, &arg_count)) != 0)
            return bad_value(c, v, rc, NULL);
        arg_count_set = 1;
        return 0;
    }

    *group = O_CREATE;
    switch (c) {
    case OPT_CAPACITY:
        return opt_u32(c, v, UINT32_MAX, &arg_config.capacity);
    case OPT_DLQ_CAPACITY:
        return opt_u32(c, v, UINT32_MAX, &arg_config.dlq_capacity);
    case OPT_MAX_DELIVERIES:
        return opt_u32(c, v, UINT32_MAX, &arg_config.max_deliveries);
    case OPT_MSG_MAX:
        if ((rc = parse_size(v, &n)) != 0)
            return bad_value(c, v, rc, "a size like 4096 or 4KiB");
        if (n > UINT32_MAX)
            return bad_value(c, v, -ERANGE, NULL);
        arg_config.msg_max = (uint32_t)n;
        return 0;
    case OPT_MODE:
        if ((rc = parse_mode(v, &arg_config.mode)) != 0)
            return bad_value(c, v, rc, "an octal mode like 0660");
        return 0;
    case OPT_GROUP:
        if ((rc = parse_group(v, &arg_config.gid)) != 0)
            return bad_value(c, v, rc, rc == -ENOENT ? "no such group" : NULL);
        return 0;
    case OPT_LEASE_TIMEOUT:
        if ((rc = parse_duration(v, &arg_config.lease_timeout_ns)) != 0)
            return bad_value(c, v, rc, "a duration like 30s");
        return 0;
    case OPT_TIMESTAMPS:
        if (parse_timestamps(v, &arg_config.timestamps))
            return bad_value(c, v, -EINVAL, "precise, coarse or none");
        return 0;
    }
    return -EXIT_USAGE; /* getopt's '?': it said what was wrong */
}

/* Returns 1 go on (with *verb set), 0 exit successfully, < 0 -exit code. */
static int parse_argv(int argc, char **argv, const struct verb **verb)
{
    unsigned given = 0, group;
    const char *given_name[8] = {0};
    int c;

    shmq_queue_config_init(&arg_config);
    arg_instance = shmq_default_instance();
    while ((c = getopt_long(argc, argv, "hI:jqt:n:", options, NULL)) >= 0) {
        if (c == OPT_VERSION) {
            version();
            return 0;
        }
        int rc = take_option(c, optarg, &group);
        if (rc)
            return rc;
        if (group) {
            given |= group;
            given_name[__builtin_ctz(group)] = option_name(c);
        }
    }
    if (optind >= argc) {
        if (arg_help) {
            help();
            return 0;
        }
        log_error("no verb given (see --help)");
        return -EXIT_USAGE;
    }
    const struct verb *v = find_verb(argv[optind]);
    if (!v) {
        log_error("unknown verb '%s' (see --help)", argv[optind]);
        return -EXIT_USAGE;
    }
    if (arg_help) {
        verb_help(v);
        return 0;
    }
    if (given & ~v->opts) {
        unsigned bad = given & ~v->opts;
        log_error("--%s does not apply to %s",
                  given_name[__builtin_ctz(bad)], v->name);
        return -EXIT_USAGE;
    }
    int nargs = argc - optind - 1;
    if (nargs < v->min_args) {
        log_error("%s: missing argument (usage: %s)", v->name, v->usage);
        return -EXIT_USAGE;
    }
    if (v->max_args >= 0 && nargs > v->max_args) {
        log_error("%s: unexpected argument '%s' (usage: %s)", v->name,
                  argv[optind + 1 + v->max_args], v->usage);
        return -EXIT_USAGE;
    }
    *verb = v;
    return 1;
}

int check_queue_name(const char *name)
{
    if (shmq_name_check(name) == 0)
        return 0;
    log_error("invalid queue name '%s': up to %d of [A-Za-z0-9_.-], not "
              "starting with '.' or containing '..'",
              name, SHMQ_NAME_MAX);
    return EXIT_USAGE;
}

static void on_stop(int sig)
{
    stop_signal = sig;
}

void catch_stop_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

void die_by_stop_signal(void)
{
    int sig = stop_signal;

    fflush(stdout);
    signal(sig, SIG_DFL);
    raise(sig);
    exit(128 + sig);
}

int main(int argc, char **argv)
{
    const struct verb *v = NULL;

    /* A closed reader shows up as EPIPE on the write, reported there. */
    signal(SIGPIPE, SIG_IGN);
    /* getopt names the program by argv[0] in its messages. */
    argv[0] = program_invocation_short_name;
    int rc = parse_argv(argc, argv, &v);
    if (rc <= 0)
        return -rc;
    rc = v->run(argc - optind, argv + optind);
    if (fflush(stdout) != 0 && rc == EXIT_OK)
        rc = log_error("write to standard output: %s", strerror(errno));
    return rc;
}
