/* SPDX-License-Identifier: MIT */
/* The control protocol seen from a hostile or careless client: raw frames
 * that are truncated, oversized, of another version, random, of unknown
 * ops or with bad attributes each get an error answer and the daemon goes
 * on serving; and a user who is not the daemon's owner cannot manage
 * queues. White-box: builds frames with the library's proto.h. */
/* ctest-timeout: 120 */
#include <grp.h>
#include <pwd.h>
#include <shmq/ctl.h>
#include <shmq/shmq.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "proto.h"
#include "shmqd_test.h"

static struct tdaemon d;

static void setup(void)
{
    td_init(&d);
}

static void teardown(void)
{
    td_cleanup(&d);
}

TestSuite(shmqd_proto, .init = setup, .fini = teardown, .timeout = 60);

static int raw_connect(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d.sock);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {5, 0}; /* a test never hangs */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Send len raw bytes, read the one-frame answer; returns its status and
 * copies its message. */
static int32_t ask(int fd, const void *buf, size_t len, char *msg,
                   size_t cap)
{
    static uint8_t frame[SHMQ_PROTO_FRAME_MAX];
    struct shmq__resp r;
    struct shmq__pr pr;
    struct shmq__pattr a;

    cr_assert_eq(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
    ssize_t n = recv(fd, frame, sizeof(frame), 0);
    cr_assert_gt(n, 0, "no answer from the daemon");
    cr_assert_eq(shmq__proto_parse_response(frame, (size_t)n, &r), 0);
    cr_assert_eq(r.flags, 0);
    msg[0] = 0;
    shmq__pr_init(&pr, r.attrs, r.attrs_len);
    while (shmq__pr_next(&pr, &a) > 0)
        if (a.type == SHMQ_A_MESSAGE)
            snprintf(msg, cap, "%s", (const char *)a.data);
    cr_assert(msg[0], "an answer without a message");
    return r.status;
}

static size_t frame(uint8_t *buf, size_t cap, unsigned op,
                    void (*attrs)(struct shmq__pw *w))
{
    struct shmq__pw w;
    shmq__pw_init(&w, buf, cap, op, 42, 0, 0);
    if (attrs)
        attrs(&w);
    int n = shmq__pw_finish(&w);
    cr_assert_gt(n, 0);
    return (size_t)n;
}

static void a_bad_name(struct shmq__pw *w)
{
    shmq__pw_str(w, SHMQ_A_NAME, "../etc");
}
static void a_good_name(struct shmq__pw *w)
{
    shmq__pw_str(w, SHMQ_A_NAME, "exists");
}
static void a_twice(struct shmq__pw *w)
{
    shmq__pw_str(w, SHMQ_A_NAME, "a");
    shmq__pw_str(w, SHMQ_A_NAME, "b");
}
static void a_short_u32(struct shmq__pw *w)
{
    shmq__pw_str(w, SHMQ_A_NAME, "a");
    uint16_t v = 4;
    shmq__pw_put(w, SHMQ_A_CAPACITY, &v, sizeof(v));
}
static void a_foreign(struct shmq__pw *w)
{
    shmq__pw_str(w, SHMQ_A_NAME, "a");
    shmq__pw_u32(w, SHMQ_A_TOKEN, 1); /* not an attribute of delete */
}

Test(shmqd_proto, bad_requests_get_errors_and_the_daemon_goes_on)
{
    uint8_t buf[8192];
    char msg[SHMQ_CTL_MSG_MAX];
    size_t n;

    td_start(&d, NULL);
    td_create(&d, "exists", 16, 64);
    int fd = raw_connect();

    /* truncated: shorter than a header */
    cr_assert_eq(ask(fd, "SMC", 3, msg, sizeof(msg)), -EBADMSG);
    cr_assert(strstr(msg, "truncated"), "%s", msg);
    /* truncated: shorter than its length field says */
    n = frame(buf, sizeof(buf), SHMQ_OP_INFO, a_good_name);
    cr_assert_eq(ask(fd, buf, n - 4, msg, sizeof(msg)), -EBADMSG);
    /* oversized */
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(ask(fd, buf, sizeof(buf), msg, sizeof(msg)), -EMSGSIZE);
    cr_assert(strstr(msg, "4096"), "%s", msg);
    /* wrong version */
    n = frame(buf, sizeof(buf), SHMQ_OP_PING, NULL);
    uint16_t v2 = 2;
    memcpy(buf + 4, &v2, 2);
    cr_assert_eq(ask(fd, buf, n, msg, sizeof(msg)), -EPROTONOSUPPORT);
    /* random bytes */
    uint32_t x = 12345;
    for (size_t i = 0; i < 300; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    cr_assert_eq(ask(fd, buf, 300, msg, sizeof(msg)), -EBADMSG);
    /* random attributes behind a valid header */
    n = frame(buf, sizeof(buf), SHMQ_OP_CREATE, NULL);
    for (size_t i = n; i < n + 64; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    uint32_t len = (uint32_t)n + 64;
    memcpy(buf + 8, &len, 4);
    cr_assert_lt(ask(fd, buf, len, msg, sizeof(msg)), 0);
    /* unknown op */
    n = frame(buf, sizeof(buf), 99, NULL);
    cr_assert_eq(ask(fd, buf, n, msg, sizeof(msg)), -EOPNOTSUPP);
    /* invalid name */
    n = frame(buf, sizeof(buf), SHMQ_OP_CREATE, a_bad_name);
    cr_assert_eq(ask(fd, buf, n, msg, sizeof(msg)), -EINVAL);
    cr_assert(strstr(msg, "invalid queue name"), "%s", msg);
    /* missing, duplicate, wrong-size and foreign attributes */
    n = frame(buf, sizeof(buf), SHMQ_OP_DELETE, NULL);
    cr_assert_eq(ask(fd, buf, n, msg, sizeof(msg)), -EINVAL);
    n = frame(buf, sizeof(buf), SHMQ_OP_DELETE, a_twice);
    cr_assert_eq(ask(fd, buf, n, msg, sizeof(msg)), -EINVAL);
    n = frame(buf, sizeof(buf), SHMQ_OP_CREATE, a_short_u32);
    cr_assert_eq(ask(fd, buf, n, msg, sizeof(msg)), -EINVAL);
    n = frame(buf, sizeof(buf), SHMQ_OP_DELETE, a_foreign);
    cr_assert_eq(ask(fd, buf, n, msg, sizeof(msg)), -EINVAL);
    /* a queue that exists */
    n = frame(buf, sizeof(buf), SHMQ_OP_CREATE, a_good_name);
    cr_assert_eq(ask(fd, buf, n, msg, sizeof(msg)), -EEXIST);
    cr_assert(strstr(msg, "already exists"), "%s", msg);

    /* The same connection still works, and so does a new one. */
    n = frame(buf, sizeof(buf), SHMQ_OP_PING, NULL);
    cr_assert_eq(ask(fd, buf, n, msg, sizeof(msg)), 0, "%s", msg);
    close(fd);
    shmq_ctl_t *c = td_ctl(&d);
    struct shmq_queue_info info;
    cr_assert_eq(shmq_ctl_info(c, "exists", &info, NULL, 0), 0);
    shmq_ctl_close(c);
    cr_assert(td_log_has(&d, "bad request from pid"));
    td_stop(&d);
}

Test(shmqd_proto, a_client_that_does_not_read_stalls_only_itself)
{
    uint8_t buf[256];
    char msg[SHMQ_CTL_MSG_MAX];

    td_start(&d, NULL);
    /* Enough queues that one list answer spans several frames. */
    shmq_ctl_t *c = td_ctl(&d);
    struct shmq_queue_config cfg;
    shmq_queue_config_init(&cfg);
    cfg.capacity = 2;
    cfg.msg_max = 8;
    cfg.max_deliveries = 0;
    cfg.dlq_capacity = 0;
    for (int i = 0; i < 300; i++) {
        char name[32];
        snprintf(name, sizeof(name), "q%03d", i);
        cr_assert_eq(shmq_ctl_create(c, name, &cfg, NULL, 0), 0);
    }
    /* A greedy client asks for lists and reads nothing. */
    int fd = raw_connect();
    size_t n = frame(buf, sizeof(buf), SHMQ_OP_LIST, NULL);
    for (int i = 0; i < 50; i++)
        if (send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            break;
    /* Others are served meanwhile. */
    static struct shmq_queue_info qs[400];
    cr_assert_eq(shmq_ctl_list(c, qs, 400, msg, sizeof(msg)), 300, "%s", msg);
    cr_assert_str_eq(qs[299].name, "q299");
    cr_assert_eq(shmq_ctl_ping(c, NULL, NULL, 0), 0);
    close(fd);
    cr_assert_eq(shmq_ctl_ping(c, NULL, NULL, 0), 0);
    shmq_ctl_close(c);
    td_stop(&d);
}

/* In a child that became nobody: what the daemon lets it do. Exit code:
 * 0 as expected, else the step that went wrong. */
static int as_nobody(void)
{
    char msg[SHMQ_CTL_MSG_MAX];
    struct shmq_queue_config cfg;
    struct shmq_queue_info qs[4];
    shmq_ctl_t *c;

    struct passwd *pw = getpwnam("nobody");
    uid_t uid = pw ? pw->pw_uid : 65534;
    gid_t gid = pw ? pw->pw_gid : 65534;
    if (setgroups(0, NULL) || setgid(gid) || setuid(uid))
        return 1;
    if (shmq_ctl_connect(d.instance, d.sock, &c))
        return 2;
    shmq_queue_config_init(&cfg);
    int rc = shmq_ctl_create(c, "mine", &cfg, msg, sizeof(msg));
    if (rc != -EPERM || !strstr(msg, "permission denied"))
        return 3;
    rc = shmq_ctl_delete(c, "private", msg, sizeof(msg));
    if (rc != -EPERM && rc != -EACCES)
        return 4;
    if (shmq_ctl_purge(c, "public", SHMQ_RING_MAIN, NULL, 0) != -EPERM)
        return 5;
    if (shmq_ctl_dlq_drop(c, "public", 0, NULL, 0) != -EPERM)
        return 6;
    /* Reading: only what the queues' modes allow. */
    if (shmq_ctl_list(c, qs, 4, NULL, 0) != 1 ||
        strcmp(qs[0].name, "public") != 0)
        return 7;
    if (shmq_ctl_info(c, "private", &qs[0], NULL, 0) != -EACCES)
        return 8;
    if (shmq_ctl_info(c, "public", &qs[0], NULL, 0) != 0)
        return 9;
    if (shmq_ctl_ping(c, NULL, NULL, 0) != 0)
        return 10;
    shmq_ctl_close(c);
    return 0;
}

Test(shmqd_proto, non_owner_cannot_manage_queues)
{
    struct shmq_queue_config cfg;

    if (geteuid() != 0)
        cr_skip_test("needs root, to drop to nobody");
    /* Socket 0666 so that nobody can reach the daemon at all. */
    const char *args[] = {"--mode", "0666", NULL};
    td_start(&d, args);
    shmq_ctl_t *c = td_ctl(&d);
    shmq_queue_config_init(&cfg);
    cfg.mode = 0600;
    cr_assert_eq(shmq_ctl_create(c, "private", &cfg, NULL, 0), 0);
    cfg.mode = 0644;
    cr_assert_eq(shmq_ctl_create(c, "public", &cfg, NULL, 0), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(as_nobody());
    int st = t_wait(pid, 10000);
    cr_assert(WIFEXITED(st), "status %#x", st);
    cr_assert_eq(WEXITSTATUS(st), 0, "nobody: step %d went wrong",
                 WEXITSTATUS(st));
    /* Nothing changed. */
    struct shmq_queue_info qs[4];
    cr_assert_eq(shmq_ctl_list(c, qs, 4, NULL, 0), 2);
    shmq_ctl_close(c);
    cr_assert(td_log_has(&d, "queue private created"));
    cr_assert(!td_log_has(&d, "queue private deleted"));
    td_stop(&d);
}
