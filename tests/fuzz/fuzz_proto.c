/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the control protocol (libshmq/src/proto.c): the
 * request parser shmqd runs on every message a client sends, and the
 * response decoders the library runs on what the daemon sends back.
 *
 * Input byte 0 picks the mode:
 *   bit 0 clear  the rest is a raw frame, parsed as a request
 *   bit 0 set    the rest is attributes behind a valid header (magic,
 *                version, length; op from byte 1), so the fuzzer spends
 *                its time in the attribute parser instead of guessing
 *                magic numbers
 *   bit 1 set    also decode the frame as a response, record by record
 * Every accepted request is re-encoded and parsed again: the result must
 * be the same request.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* Re-encode an accepted request and parse it again. */
static void round_trip(const struct shmq__req *rq)
{
    uint8_t buf[SHMQ_PROTO_REQ_MAX];
    struct shmq__pw w;
    struct shmq__req again;
    const char *why;

    shmq__pw_init(&w, buf, sizeof(buf), rq->op, rq->seq, 0, 0);
    if (shmq__req_has(rq, SHMQ_A_NAME))
        shmq__pw_str(&w, SHMQ_A_NAME, rq->name);
    if (shmq__req_has(rq, SHMQ_A_TOKEN))
        shmq__pw_u32(&w, SHMQ_A_TOKEN, rq->token);
    if (shmq__req_has(rq, SHMQ_A_RING))
        shmq__pw_u32(&w, SHMQ_A_RING, rq->ring);
    if (shmq__req_has(rq, SHMQ_A_COUNT))
        shmq__pw_u32(&w, SHMQ_A_COUNT, rq->count);
    if (rq->op == SHMQ_OP_CREATE)
        shmq__pw_config(&w, &rq->cfg);
    int len = shmq__pw_finish(&w);
    check(len > 0);
    check(shmq__proto_parse_request(buf, (size_t)len, &again, &why) == 0);
    check(again.op == rq->op && again.seq == rq->seq);
    check(strcmp(again.name, rq->name) == 0);
    check(again.token == rq->token && again.ring == rq->ring &&
          again.count == rq->count);
    check(memcmp(&again.cfg, &rq->cfg, sizeof(rq->cfg)) == 0);
}

static void as_response(const uint8_t *buf, size_t len)
{
    struct shmq__resp r;
    struct shmq__pr pr;
    struct shmq__pattr a;
    struct shmq_queue_info q;
    struct shmq_stats st;
    struct shmq_ctl_proc p;
    struct shmq_dlq_entry e;
    struct shmq_ctl_daemon d;

    if (shmq__proto_parse_response(buf, len, &r) != 0)
        return;
    shmq__pr_init(&pr, r.attrs, r.attrs_len);
    while (shmq__pr_next(&pr, &a) > 0) {
        switch (a.type) {
        case SHMQ_A_QUEUE:
            if (shmq__pr_queue(&a, &q) == 0)
                check(shmq_name_check(q.name) == 0);
            break;
        case SHMQ_A_STATS:
            shmq__pr_stats(&a, &st);
            break;
        case SHMQ_A_PROC:
            shmq__pr_proc(&a, &p);
            break;
        case SHMQ_A_DLQ_MSG:
            if (shmq__pr_dlq_msg(&a, &e) == 0)
                check(e.data_len <= e.len &&
                      e.data_len <= SHMQ_CTL_PREVIEW_MAX);
            break;
        case SHMQ_A_DAEMON:
            if (shmq__pr_daemon(&a, &d) == 0)
                check(memchr(d.version, 0, sizeof(d.version)) != NULL);
            break;
        default:
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t frame[SHMQ_PROTO_REQ_MAX + SHMQ_PROTO_HDR];
    struct shmq__req rq;
    const char *why = NULL;

    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *body = data + 2;
    size_t blen = size - 2;
    size_t len;

    if (mode & 1) {
        if (blen > sizeof(frame) - SHMQ_PROTO_HDR)
            blen = sizeof(frame) - SHMQ_PROTO_HDR;
        uint32_t magic = SHMQ_PROTO_MAGIC, flen = (uint32_t)(SHMQ_PROTO_HDR +
                                                              blen);
        uint32_t seq = 7, zero = 0;
        uint16_t ver = SHMQ_PROTO_VERSION, op = data[1] % (SHMQ_OP_MAX + 2);
        memcpy(frame, &magic, 4);
        memcpy(frame + 4, &ver, 2);
        memcpy(frame + 6, &op, 2);
        memcpy(frame + 8, &flen, 4);
        memcpy(frame + 12, &seq, 4);
        memcpy(frame + 16, &zero, 4);
        memcpy(frame + 20, &zero, 4);
        memcpy(frame + SHMQ_PROTO_HDR, body, blen);
        len = SHMQ_PROTO_HDR + blen;
    } else {
        /* A raw message as recvmsg() would hand it over: the daemon's
         * buffer holds at most SHMQ_PROTO_REQ_MAX bytes. */
        len = blen < SHMQ_PROTO_REQ_MAX ? blen : SHMQ_PROTO_REQ_MAX;
        memcpy(frame, body, len);
    }
    int rc = shmq__proto_parse_request(frame, len, &rq, &why);
    if (rc == 0) {
        check(rq.op >= 1 && rq.op <= SHMQ_OP_MAX);
        if (shmq__req_has(&rq, SHMQ_A_NAME))
            check(shmq_name_check(rq.name) == 0);
        round_trip(&rq);
    } else {
        check(rc < 0 && why != NULL);
    }
    if (mode & 2)
        as_response(frame, len);
    return 0;
}
