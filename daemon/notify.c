/* SPDX-License-Identifier: MIT */
/*
 * sd_notify readiness, written out rather than linked from libsystemd:
 * the protocol is one datagram of "KEY=VALUE\n" lines to the Unix socket
 * named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace),
 * a stable interface systemd documents (sd_notify(3)). Twenty lines here
 * spare a daemon that must run on hosts without systemd a dependency, and
 * without $NOTIFY_SOCKET it does nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "shmqd.h"

void notify(const char *fmt, ...)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char msg[512];
    va_list ap;

    if (!path || (path[0] != '/' && path[0] != '@'))
        return;
    size_t n = strlen(path);
    if (n >= sizeof(sa.sun_path))
        return;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = 0; /* abstract namespace */
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (len <= 0 || (size_t)len >= sizeof(msg))
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t salen =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                    (path[0] == '@' ? 0 : 1));
    if (sendto(fd, msg, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&sa,
               salen) < 0)
        log_warn("sd_notify to %s failed: %m", path);
    close(fd);
}
