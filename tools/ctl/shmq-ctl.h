/* SPDX-License-Identifier: MIT */
/*
 * shmq-ctl: manage shmq queues from the shell. One file per verb group:
 *
 *   main.c      options, the verbs table, help, exit codes
 *   queues.c    create, delete, purge (through shmqd); list, info (read
 *               from shared memory, read-only)
 *   messages.c  send, recv (through the library, as a participant)
 *   procs.c     dlq, ps (through shmqd)
 *
 * A verb returns the process's exit code (EXIT_* of tools.h).
 */
#ifndef SHMQ_CTL_TOOL_H
#define SHMQ_CTL_TOOL_H

#include <shmq/admin.h>
#include <shmq/ctl.h>
#include <signal.h>
#include <stdint.h>

#include "tools.h"

/* Options (main.c). */
extern const char *arg_instance; /* never NULL after parse_argv */
extern const char *arg_socket;   /* NULL: the instance's socket */
extern int arg_json;
extern int arg_quiet;
extern struct shmq_queue_config arg_config; /* create */
extern int arg_whole;                       /* send */
extern int arg_lease;                       /* recv */
extern uint64_t arg_count;                  /* recv, dlq; 0: all */
extern int arg_count_set;
extern uint64_t arg_timeout_ns;             /* send, recv */
extern int arg_timeout_set;

/* The signal that asked send or recv to stop (0: none). */
extern volatile sig_atomic_t stop_signal;
/* Catch SIGINT, SIGTERM and SIGHUP into stop_signal (without SA_RESTART,
 * so a blocked read returns). */
void catch_stop_signals(void);
/* Exit by the signal that stopped us, as if we had not caught it. */
void die_by_stop_signal(void);

/* A checked queue name, or an error line and EXIT_USAGE. */
int check_queue_name(const char *name);

/* Connect to the instance's daemon; on failure print why and return the
 * exit code (EXIT_DAEMON, EXIT_PERM). */
int daemon_connect(shmq_ctl_t **ret);
/* Report a failed request: the daemon's message (or strerror) on stderr;
 * returns the exit code. */
int daemon_failed(const char *what, int err, const char *msg);

/* Open the instance's registry read-only; on failure print why and
 * return the exit code. */
int registry_open(shmq_admin_t **ret);

/* Verbs: argv[0] is the verb. */
int verb_create(int argc, char **argv);
int verb_delete(int argc, char **argv);
int verb_purge(int argc, char **argv);
int verb_list(int argc, char **argv);
int verb_info(int argc, char **argv);
int verb_send(int argc, char **argv);
int verb_recv(int argc, char **argv);
int verb_dlq(int argc, char **argv);
int verb_ps(int argc, char **argv);

#endif
