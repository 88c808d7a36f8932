/* SPDX-License-Identifier: MIT */
/*
 * Logging: one line per event on stderr, written with a single write(2)
 * so that lines from the two threads never interleave. Under systemd
 * (stderr is the journal stream named by $JOURNAL_STREAM) each line
 * carries a "<prio>" prefix and no timestamp, since the journal adds its
 * own; by hand each line starts with a UTC timestamp.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shmqd.h"

static int to_journal;

void log_init(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
        fstat(STDERR_FILENO, &st) == 0 &&
        (unsigned long long)st.st_dev == dev &&
        (unsigned long long)st.st_ino == ino)
        to_journal = 1;
}

static const char *prio_name(int prio)
{
    switch (prio) {
    case LOG_ERR_: return "error";
    case LOG_WARN_: return "warning";
    case LOG_DEBUG_: return "debug";
    default: return "info";
    }
}

static void vlog(int prio, const char *fmt, va_list ap)
{
    char line[1024];
    size_t n;

    if (to_journal) {
        n = (size_t)snprintf(line, sizeof(line), "<%d>", prio);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n,
                              ".%03ldZ shmqd[%d] %s: ",
                              ts.tv_nsec / 1000000, (int)getpid(),
                              prio_name(prio));
    }
    if (n < sizeof(line)) {
        int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        if (m > 0)
            n += (size_t)m;
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w; /* nowhere to report a failed log write */
}

void log_line(int prio, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(prio, fmt, ap);
    va_end(ap);
}

static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t rl_window; /* second of the current window */
static unsigned rl_count, rl_dropped;

void log_limited(const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t sec = (uint64_t)ts.tv_sec;
    unsigned dropped = 0;
    int emit;

    pthread_mutex_lock(&rl_lock);
    if (sec != rl_window) {
        dropped = rl_dropped;
        rl_window = sec;
        rl_count = 0;
        rl_dropped = 0;
    }
    emit = rl_count < 20;
    if (emit)
        rl_count++;
    else
        rl_dropped++;
    pthread_mutex_unlock(&rl_lock);
    if (dropped)
        log_warn("%u more bad requests were not logged", dropped);
    if (emit) {
        va_list ap;
        va_start(ap, fmt);
        vlog(LOG_WARN_, fmt, ap);
        va_end(ap);
    }
}
