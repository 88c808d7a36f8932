/* SPDX-License-Identifier: MIT */
/*
 * shmqd: options, start-up, signals, shutdown (see shmqd.h for the map of
 * the daemon and docs/daemon.md for how to run it).
 *
 * Start-up, in this order, so that nothing a client does is missed:
 *   1. read the config file (a bad file stops us before anything changes);
 *   2. open the registry, creating it if absent, and take the instance
 *      lock (one shmqd per instance);
 *   3. bind the control socket and advertise it (and our pid) in the
 *      registry header: from here on new registrations reach us (they
 *      wait in the listen backlog until the loop runs);
 *   4. attach: sync the queue table, scan the process table, repair the
 *      dead, watch the living (watch.c);
 *   5. declare the config's queues;
 *   6. start the watch thread, tell systemd we are ready, serve.
 * SIGTERM and SIGINT end the loop; the queues stay. SIGHUP re-reads the
 * config file.
 */
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmqd.h"

volatile sig_atomic_t shmqd_stop;
volatile sig_atomic_t shmqd_reload;

static const char *arg_instance;
static const char *arg_config;
static const char *arg_socket;
static const char *arg_mode;
static const char *arg_group;
static uint32_t arg_max_procs;

static void help(void)
{
    printf("Usage: shmqd [OPTIONS]\n"
           "\n"
           "The shmq supervisor: creates the instance's registry, serves "
           "the\n"
           "control socket, watches registered processes and repairs what "
           "a\n"
           "dead one leaves behind. Runs in the foreground, logs to "
           "stderr.\n"
           "\n"
           "  -i, --instance NAME   instance (default: $SHMQ_INSTANCE or "
           "\"default\")\n"
           "  -c, --config FILE     queues to declare (INI, one [queue] "
           "section each);\n"
           "                        re-read on SIGHUP\n"
           "  -s, --socket PATH     control socket (default: "
           "/run/shmq/NAME.sock for\n"
           "                        root, else $XDG_RUNTIME_DIR/shmq/"
           "NAME.sock or\n"
           "                        /tmp/shmq-UID/NAME.sock)\n"
           "  -m, --mode MODE       mode of the registry and the socket "
           "(default 0660)\n"
           "  -g, --group GROUP     group of the registry, the socket and "
           "new queues\n"
           "      --max-procs N     process table size of a new registry "
           "(default 1024)\n"
           "  -h, --help            show this help\n"
           "  -V, --version         show versions\n"
           "\n"
           "See shmqd(8) and docs/daemon.md.\n");
}

int parse_mode(const char *s, uint32_t *out)
{
    char *end;
    if (!s || *s < '0' || *s > '7')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 8);
    if (errno || *end || v > 07777)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int parse_group(const char *s, gid_t *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    struct group *g = getgrnam(s);
    if (g) {
        *out = g->gr_gid;
        return 0;
    }
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || *s < '0' || *s > '9' || v >= (unsigned long)INT32_MAX)
        return -1;
    *out = (gid_t)v;
    return 0;
}

/* 1 go on, 0 exit with success, < 0 usage error. */
static int parse_argv(int argc, char **argv)
{
    enum { OPT_MAX_PROCS = 0x100 };
    static const struct option opts[] = {
        {"instance", required_argument, NULL, 'i'},
        {"config", required_argument, NULL, 'c'},
        {"socket", required_argument, NULL, 's'},
        {"mode", required_argument, NULL, 'm'},
        {"group", required_argument, NULL, 'g'},
        {"max-procs", required_argument, NULL, OPT_MAX_PROCS},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "i:c:s:m:g:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'i': arg_instance = optarg; break;
        case 'c': arg_config = optarg; break;
        case 's': arg_socket = optarg; break;
        case 'm': arg_mode = optarg; break;
        case 'g': arg_group = optarg; break;
        case OPT_MAX_PROCS: {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || *end || v < 1 || v > SHMQ_MAX_PROCS) {
                fprintf(stderr, "shmqd: --max-procs must be 1 to %u\n",
                        SHMQ_MAX_PROCS);
                return -EINVAL;
            }
            arg_max_procs = (uint32_t)v;
            break;
        }
        case 'h': help(); return 0;
        case 'V':
            printf("shmqd %s (library %s, shared-memory layout %u.%u, "
                   "control protocol %u)\n",
                   SHMQ_VERSION_STRING, shmq_version_string(),
                   SHMQ_LAYOUT_MAJOR, SHMQ_LAYOUT_MINOR, SHMQ_PROTO_VERSION);
            return 0;
        default:
            return -EINVAL; /* getopt said what */
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shmqd: unexpected argument \"%s\"\n", argv[optind]);
        return -EINVAL;
    }
    return 1;
}

/* Fill d from the options; messages on stderr. */
static int setup_options(struct shmqd *d)
{
    const char *inst = arg_instance ? arg_instance : shmq_default_instance();
    if (shmq_instance_check(inst)) {
        fprintf(stderr, "shmqd: invalid instance name \"%s\" (1 to 31 of "
                        "[A-Za-z0-9_-])\n",
                inst);
        return -1;
    }
    snprintf(d->instance, sizeof(d->instance), "%s", inst);
    d->mode = 0660;
    if (arg_mode && parse_mode(arg_mode, &d->mode)) {
        fprintf(stderr, "shmqd: invalid mode \"%s\" (octal, e.g. 0660)\n",
                arg_mode);
        return -1;
    }
    d->mode_set = arg_mode != NULL;
    if (arg_group && parse_group(arg_group, &d->gid)) {
        fprintf(stderr, "shmqd: no such group \"%s\"\n", arg_group);
        return -1;
    }
    d->gid_set = arg_group != NULL;
    if (arg_socket) {
        char cwd[PATH_MAX];
        int n;
        if (arg_socket[0] == '/')
            n = snprintf(d->socket_path, sizeof(d->socket_path), "%s",
                         arg_socket);
        else if (getcwd(cwd, sizeof(cwd)))
            n = snprintf(d->socket_path, sizeof(d->socket_path), "%s/%s", cwd,
                         arg_socket);
        else
            n = -1;
        if (n < 0 || (size_t)n >= sizeof(d->socket_path)) {
            fprintf(stderr, "shmqd: socket path too long (at most %u bytes)\n",
                    SHMQ_CTL_PATH_MAX - 1);
            return -1;
        }
    } else if (shmq_ctl_default_socket(d->instance, d->socket_path,
                                       sizeof(d->socket_path)) < 0) {
        fprintf(stderr, "shmqd: default socket path too long; use --socket\n");
        return -1;
    }
    d->config_path = arg_config;
    return 0;
}

/* The directory of a default socket path: made if absent, and refused if
 * someone else could have planted it (in /tmp). */
static int socket_dir(struct shmqd *d)
{
    char dir[SHMQ_CTL_PATH_MAX];
    struct stat st;

    if (arg_socket)
        return 0; /* the operator's path: its directory is theirs */
    snprintf(dir, sizeof(dir), "%s", d->socket_path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = 0;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        log_err("cannot create %s: %m", dir);
        return -1;
    }
    if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != d->euid || (st.st_mode & 0022)) {
        log_err("%s must be a directory owned by uid %u and writable by "
                "nobody else",
                dir, (unsigned)d->euid);
        return -1;
    }
    return 0;
}

static int open_registry(struct shmqd *d)
{
    struct shmq_admin_opts o;
    int created = 0;

    int rc = shmq_admin_open(d->instance, NULL, &d->admin);
    if (rc == -ENOENT) {
        shmq_admin_opts_init(&o);
        o.flags = SHMQ_ADMIN_CREATE;
        o.mode = d->mode;
        o.gid = d->gid_set ? (int32_t)d->gid : -1;
        if (arg_max_procs)
            o.max_procs = arg_max_procs;
        rc = shmq_admin_open(d->instance, &o, &d->admin);
        created = rc == 0;
    }
    if (rc == 0)
        rc = shmq_admin_open(d->instance, NULL, &d->admin_watch);
    if (rc == 0)
        rc = shmq__reg_open(d->instance, 1, NULL, &d->reg);
    if (rc) {
        log_err("cannot open the registry of instance %s: %s%s", d->instance,
                shmq_strerror(rc),
                rc == -EBADMSG || rc == -EPROTO
                    ? " (left as it is; remove it by hand if it is garbage)"
                    : "");
        return rc;
    }
    if (!created && (d->mode_set || d->gid_set)) {
        /* The operator asked for this mode/group: apply it to the
         * existing registry too. */
        if ((d->mode_set && fchmod(d->reg.fd, d->mode) < 0) ||
            (d->gid_set && fchown(d->reg.fd, (uid_t)-1, d->gid) < 0))
            log_warn("cannot set the mode/group of the registry: %m");
    }
    log_info("%s the registry of instance %s (%u process slots)",
             created ? "created" : "attached to", d->instance,
             d->reg.max_procs);
    return 0;
}

/* One shmqd per instance: an OFD lock on a byte of the registry. */
static int lock_instance(struct shmqd *d)
{
    char path[64];
    if (shmq__shm_name(path, sizeof(path), d->instance, NULL))
        return -EINVAL;
    d->lock_fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
    if (d->lock_fd < 0)
        return -errno;
    int rc = shmq__lock(d->lock_fd, SHMQD_LOCK_INSTANCE, 0);
    if (rc == -EAGAIN || rc == -EACCES) {
        log_err("another shmqd serves instance %s (pid %u)", d->instance,
                (unsigned)atomic_load(&d->reg.hdr->daemon_pid));
        return -EBUSY;
    }
    return rc;
}

/* Write our socket path and pid into the registry header. daemon_pid is
 * zeroed while the path changes; clients read the path between two equal
 * non-zero loads of it (ctl.c shmq__ctl_advertised). */
static void advertise(struct shmqd *d, int on)
{
    struct shmq_reg_hdr *h = d->reg.hdr;
    atomic_store_explicit(&h->daemon_pid, 0, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    memset(h->socket_path, 0, sizeof(h->socket_path));
    if (on) {
        memcpy(h->socket_path, d->socket_path, strlen(d->socket_path));
        /* Release: a client that sees our pid sees the path. */
        atomic_store_explicit(&h->daemon_pid, (uint32_t)getpid(),
                              memory_order_release);
    }
}

static void declare(struct shmqd *d, const char *why)
{
    struct config *c;
    if (!d->config_path)
        return;
    if (config_load(d->config_path, &c) != 0) {
        log_err("config %s not applied (%s)", d->config_path, why);
        return;
    }
    int conflicts = config_apply(d, c);
    if (conflicts)
        log_warn("config %s: %d queue%s differ from the file and were left "
                 "unchanged",
                 d->config_path, conflicts, conflicts == 1 ? "" : "s");
    config_free(c);
}

void shmqd_reload_config(struct shmqd *d)
{
    log_info("SIGHUP: reading %s again",
             d->config_path ? d->config_path : "(no config file)");
    declare(d, "reload");
}

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        shmqd_reload = 1;
    else
        shmqd_stop = sig;
}

static void signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigset_t set;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Blocked everywhere but in the control loop's epoll_pwait. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct shmqd d;
    struct config *cfg = NULL;
    int rc = parse_argv(argc, argv);
    if (rc <= 0)
        return rc == 0 ? EXIT_SUCCESS : 2;

    memset(&d, 0, sizeof(d));
    d.lock_fd = d.listen_fd = d.watch_ep = d.watch_stop_fd = -1;
    d.reg.fd = -1;
    d.euid = geteuid();
    d.start_ns = shmq__now_ns(CLOCK_MONOTONIC);
    if (setup_options(&d))
        return 2;
    log_init();
    signals();
    raise_fd_limit();
    /* 1. a bad config file stops us before anything is touched */
    if (d.config_path && config_load(d.config_path, &cfg) != 0)
        return EXIT_FAILURE;
    config_free(cfg);
    rcu_register_thread();
    rc = EXIT_FAILURE;
    /* 2. */
    if (open_registry(&d) || lock_instance(&d))
        goto out;
    if (tables_init()) {
        log_err("out of memory");
        goto out;
    }
    /* 3. */
    if (socket_dir(&d) || control_open(&d))
        goto out_tables;
    advertise(&d, 1);
    /* 4. */
    if (watch_init(&d)) {
        log_err("cannot set up the death watch: %m");
        goto out_socket;
    }
    watch_attach(&d);
    /* 5. */
    declare(&d, "start");
    /* 6. */
    if (watch_start(&d)) {
        log_err("cannot start the watch thread");
        goto out_socket;
    }
    log_info("ready: instance %s, socket %s, pid %d", d.instance,
             d.socket_path, (int)getpid());
    notify("READY=1\nSTATUS=serving instance %s: %u queues, %u processes "
           "watched\nMAINPID=%d",
           d.instance, tables_queue_count(), tables_proc_count(),
           (int)getpid());
    rc = control_run(&d) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    notify("STOPPING=1");
    log_info("stopping (%s); queues and messages stay",
             shmqd_stop == SIGINT ? "SIGINT"
             : shmqd_stop       ? "SIGTERM"
                                : "error");
    advertise(&d, 0);
    control_close(&d);
    watch_stop(&d);
    goto out_tables;
out_socket:
    advertise(&d, 0);
    control_close(&d);
out_tables:
    tables_fini();
out:
    rcu_unregister_thread();
    if (d.reg.hdr)
        shmq__reg_close(&d.reg);
    if (d.lock_fd >= 0)
        close(d.lock_fd);
    shmq_admin_close(d.admin_watch);
    shmq_admin_close(d.admin);
    return rc;
}
