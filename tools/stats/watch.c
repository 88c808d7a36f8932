/* SPDX-License-Identifier: MIT */
/*
 * --watch: redraw the table every period on the terminal's alternate
 * screen, with an occupancy bar and a sparkline of recent depths per
 * queue; or, with --json, print one JSON object a line.
 *
 * It ends cleanly, exit status 0, on SIGINT or SIGTERM, and when the
 * terminal goes away: on SIGHUP, or (when SIGHUP was ignored, as under
 * nohup) on the EIO or EPIPE that a write then fails with. Each frame is
 * built in memory and written with write(2), so that a failed write is
 * seen at once and a frame is never half-buffered.
 */
#include "stats.h"

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define HIST 24      /* depths kept per queue for the sparkline */
#define BAR_WIDTH 20 /* cells of the occupancy bar */

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static void catch_signals(void)
{
    struct sigaction sa, old;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a signal cuts the sleep between frames short. */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* Under nohup SIGHUP stays ignored; the failed write ends us then. */
    if (sigaction(SIGHUP, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
        sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Write all of buf to fd. 0 or -errno. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR && !stop_signal)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- depth history ------------------------------------------------------ */

struct hist {
    char name[SHMQ_NAME_MAX + 1];
    uint64_t generation;
    uint64_t v[HIST]; /* oldest first */
    unsigned n;
    int seen;
};

struct history {
    struct hist *h;
    size_t n, cap;
};

static struct hist *hist_of(struct history *hs, const struct qrow *r)
{
    for (size_t i = 0; i < hs->n; i++)
        if (strcmp(hs->h[i].name, r->info.name) == 0) {
            struct hist *h = &hs->h[i];
            if (h->generation != r->info.stats.generation) {
                h->n = 0; /* deleted and created again: a new queue */
                h->generation = r->info.stats.generation;
            }
            return h;
        }
    if (hs->n == hs->cap) {
        size_t cap = hs->cap ? hs->cap * 2 : 16;
        struct hist *h = realloc(hs->h, cap * sizeof(*h));
        if (!h)
            return NULL;
        hs->h = h;
        hs->cap = cap;
    }
    struct hist *h = &hs->h[hs->n++];
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", r->info.name);
    h->generation = r->info.stats.generation;
    return h;
}

static void hist_push(struct hist *h, uint64_t depth)
{
    if (h->n == HIST) {
        memmove(h->v, h->v + 1, (HIST - 1) * sizeof(h->v[0]));
        h->n--;
    }
    h->v[h->n++] = depth;
}

/* Forget queues that were not in the last sample. */
static void hist_sweep(struct history *hs)
{
    size_t k = 0;
    for (size_t i = 0; i < hs->n; i++)
        if (hs->h[i].seen) {
            hs->h[i].seen = 0;
            hs->h[k++] = hs->h[i];
        }
    hs->n = k;
}

/* ---- drawing ------------------------------------------------------------ */

struct style {
    int unicode;
    int color;
};

static void draw_bar(FILE *f, const struct style *st, double occ)
{
    static const char *const eighths[] = {"", "\u258f", "\u258e", "\u258d",
                                          "\u258c", "\u258b", "\u258a",
                                          "\u2589"};
    double frac = occ < 0 ? 0 : occ > 100 ? 1 : occ / 100.0;
    int cells = 0;

    if (st->color)
        fputs(occ >= 80 ? "\033[31m" : occ >= 50 ? "\033[33m" : "\033[32m",
              f);
    fputc('[', f);
    if (st->unicode) {
        int e = (int)(frac * BAR_WIDTH * 8 + 0.5);
        for (; e >= 8 && cells < BAR_WIDTH; e -= 8, cells++)
            fputs("\u2588", f);
        if (cells < BAR_WIDTH && e > 0) {
            fputs(eighths[e], f);
            cells++;
        }
        for (; cells < BAR_WIDTH; cells++)
            fputc(' ', f);
    } else {
        int full = (int)(frac * BAR_WIDTH + 0.5);
        for (; cells < full; cells++)
            fputc('#', f);
        for (; cells < BAR_WIDTH; cells++)
            fputc('.', f);
    }
    fputc(']', f);
    if (st->color)
        fputs("\033[0m", f);
}

static void draw_spark(FILE *f, const struct style *st, const struct hist *h)
{
    static const char *const blocks[] = {"\u2581", "\u2582", "\u2583",
                                         "\u2584", "\u2585", "\u2586",
                                         "\u2587", "\u2588"};
    static const char ascii[] = "_.:-=+*#";
    uint64_t max = 1;

    for (unsigned i = 0; i < h->n; i++)
        if (h->v[i] > max)
            max = h->v[i];
    for (unsigned i = 0; i < h->n; i++) {
        unsigned lvl = (unsigned)(h->v[i] * 7 / max);
        if (st->unicode)
            fputs(blocks[lvl], f);
        else
            fputc(ascii[lvl], f);
    }
}

static unsigned terminal_columns(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 0; /* not a terminal: no limit */
}

/* One frame, into f. */
static void draw_frame(FILE *f, const struct style *st,
                       const struct sample *s, struct history *hs,
                       uint64_t period_ns)
{
    char when[48], every[32], buf[COLS][24];
    const char *cells[COLS];
    struct table *t = table_new(COLS);

    format_time(when, sizeof(when), s->real_ns);
    format_duration(every, sizeof(every), period_ns);
    fputs("\033[H", f);
    fprintf(f, "%sshmq-stats%s  instance %s  every %s  %s  %u process%s"
               "\033[K\n\033[K\n",
            st->color ? "\033[1m" : "", st->color ? "\033[0m" : "",
            arg_instance, every, when, s->nprocs, s->nprocs == 1 ? "" : "es");
    if (!t) {
        fputs("out of memory\033[K\n\033[J", f);
        return;
    }
    table_align(t, 0, 0);
    table_row(t, col_names);
    for (size_t i = 0; i < s->n; i++) {
        row_cells(&s->rows[i], buf, cells);
        table_row(t, cells);
    }
    /* Leave out the history, then the bar, when the screen is narrow. */
    unsigned cols = terminal_columns(), width = 0;
    for (unsigned c = 0; c < COLS; c++)
        width += table_width(t, c) + (c ? 2 : 0);
    int show_bar = !cols || width + 2 + BAR_WIDTH + 2 <= cols;
    int show_hist = show_bar && (!cols || width + BAR_WIDTH + 6 + HIST <= cols);

    for (size_t i = 0; i < table_rows(t); i++) {
        if (i == 0 && st->color)
            fputs("\033[1m", f);
        table_print_row(t, i, f);
        if (i == 0) {
            if (show_bar)
                fprintf(f, "  %-*s", BAR_WIDTH + 2, "OCCUPANCY");
            if (show_hist)
                fputs("  DEPTH HISTORY", f);
            if (st->color)
                fputs("\033[0m", f);
        } else {
            const struct qrow *r = &s->rows[i - 1];
            struct hist *h = r->err ? NULL : hist_of(hs, r);
            if (h) {
                h->seen = 1;
                hist_push(h, r->info.stats.depth);
            }
            if (r->err) {
                fprintf(f, "  (%s)", shmq_strerror(r->err));
            } else {
                if (show_bar) {
                    fputs("  ", f);
                    draw_bar(f, st, row_occupancy(r));
                }
                if (show_hist && h) {
                    fputs("  ", f);
                    draw_spark(f, st, h);
                }
            }
        }
        fputs("\033[K\n", f);
    }
    if (s->n == 0)
        fputs("(no queues)\033[K\n", f);
    fputs("\033[K\nCtrl-C to quit\033[K\n\033[J", f);
    hist_sweep(hs);
    table_free(t);
}

/* Whether the terminal shows UTF-8 (the locale's character set). */
static int utf8_terminal(void)
{
    if (!setlocale(LC_CTYPE, ""))
        return 0;
    const char *cs = nl_langinfo(CODESET);
    return cs && strcmp(cs, "UTF-8") == 0;
}

static void sleep_until(uint64_t when_ns)
{
    struct timespec ts = {(time_t)(when_ns / 1000000000u),
                          (long)(when_ns % 1000000000u)};
    /* EINTR: a signal; the loop looks at stop_signal. */
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Enter: alternate screen, cursor hidden, no line wrap (a line wider than
 * the terminal is cut, not wrapped). Leave: all undone. */
static const char screen_enter[] = "\033[?1049h\033[?25l\033[?7l\033[2J";
static const char screen_leave[] = "\033[?7h\033[?25h\033[?1049l";

int watch_run(shmq_admin_t *a, uint64_t period_ns, int json)
{
    struct style st = {utf8_terminal() && !arg_ascii, arg_color};
    struct history hs = {NULL, 0, 0};
    struct sample prev = {0}, cur;
    int have_prev = 0, rc = EXIT_OK, gone = 0, err = 0;
    char *frame = NULL;
    size_t frame_len = 0;

    catch_signals();
    if (!json && write_all(STDOUT_FILENO, screen_enter,
                           sizeof(screen_enter) - 1) < 0)
        return EXIT_OK; /* no terminal to draw on */
    uint64_t next = mono_ns();
    while (!stop_signal) {
        int rated = 0;
        if ((err = sample_take(a, &cur)) < 0) {
            log_error("instance %s: %s", arg_instance, shmq_strerror(err));
            rc = exit_of(err);
            break;
        }
        if (have_prev) {
            sample_rates(&cur, &prev);
            sample_free(&prev);
            rated = 1;
        }
        prev = cur;
        have_prev = 1;
        FILE *f = open_memstream(&frame, &frame_len);
        if (!f) {
            rc = EXIT_FAIL;
            break;
        }
        if (json)
            export_json(f, &cur, rated ? period_ns : 0);
        else
            draw_frame(f, &st, &cur, &hs, period_ns);
        fclose(f);
        err = write_all(STDOUT_FILENO, frame, frame_len);
        free(frame);
        frame = NULL;
        if (err == -EIO || err == -EPIPE) {
            gone = 1; /* the terminal or the reader went away */
            break;
        }
        if (err == -EINTR)
            break; /* a stop signal in the middle of the frame */
        if (err < 0) {
            log_error("write to standard output: %s", strerror(-err));
            rc = EXIT_FAIL;
            break;
        }
        next += period_ns;
        uint64_t now = mono_ns();
        if (next < now)
            next = now; /* fell behind (suspended): do not rush to catch up */
        while (!stop_signal && mono_ns() < next)
            sleep_until(next);
    }
    if (have_prev)
        sample_free(&prev);
    free(hs.h);
    if (!json && !gone && stop_signal != SIGHUP)
        write_all(STDOUT_FILENO, screen_leave, sizeof(screen_leave) - 1);
    return rc;
}
