/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: attaching to, and working on, a corrupted queue
 * segment. The input is a list of patches applied to a freshly formatted
 * queue image (so the fuzzer gets past the header checks and reaches the
 * ring), optionally followed by a truncation. Whatever the bytes, attach
 * must return 0 or a documented error, and the ring operations on an
 * accepted image must return documented values without crashing, reading
 * or writing outside the image, or looping forever.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int documented(int rc)
{
    return rc >= 0 || rc == -EAGAIN || rc == -EBADMSG || rc == -EMSGSIZE ||
           rc == -ESTALE || rc == -ENOSPC || rc == -ENOENT || rc == -EPROTO;
}

static void check(int rc)
{
    if (!documented(rc))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *pristine, *img;
    static uint64_t img_size;
    struct shmq_queue_config cfg;

    if (!pristine) {
        shmq_queue_config_init(&cfg);
        cfg.capacity = 8;
        cfg.msg_max = 40;
        cfg.max_deliveries = 2;
        cfg.dlq_capacity = 4;
        img_size = shmq__qseg_size(&cfg);
        pristine = aligned_alloc(64, img_size);
        img = aligned_alloc(64, img_size);
        if (!pristine || !img)
            abort();
        memset(pristine, 0, img_size);
        shmq__qseg_format(pristine, img_size, "fuzz", &cfg, 1);
    }
    memcpy(img, pristine, img_size);

    /* Patches: offset (2 bytes, little endian, modulo the image size),
     * length (1 byte, at most 16), then that many bytes. A patch with
     * length 0xff instead truncates the image to the offset. */
    size_t view = img_size;
    size_t i = 0;
    while (i + 3 <= size) {
        size_t off = ((size_t)data[i] | (size_t)data[i + 1] << 8) % img_size;
        size_t len = data[i + 2];
        i += 3;
        if (len == 0xff) {
            view = off;
            continue;
        }
        len &= 15;
        if (len > size - i)
            len = size - i;
        if (off + len > img_size)
            len = img_size - off;
        memcpy(img + off, data + i, len);
        i += len;
    }

    struct shmq__qseg q;
    int rc = shmq__qseg_validate(img, view, "fuzz", &q);
    check(rc);
    if (rc != 0)
        return 0;

    /* The image passed the checks: the ring must cope with any slot words,
     * lengths and hints in it. */
    struct shmq__lease c, l;
    static uint8_t payload[SHMQ_MAX_MSG];
    for (int round = 0; round < 4; round++) {
        rc = shmq__ring_claim(&q.main, 1, &c);
        check(rc);
        if (rc == 0) {
            memcpy(shmq__payload(c.slot), payload, q.main.msg_max);
            check(shmq__ring_publish(&q.main, &c, q.main.msg_max, c.pos, 0,
                                     0, 1));
        }
        rc = shmq__ring_lease(&q.main, 2, sizeof(payload), &l);
        check(rc);
        if (rc == 0) {
            if (l.len > q.main.msg_max)
                abort();
            memcpy(payload, shmq__payload(l.slot), l.len);
            check(round & 1 ? shmq__ring_nack(&q.main, &l)
                            : shmq__ring_ack(&q.main, &l, 1));
        }
    }
    uint64_t skipped = 0, returned = 0;
    shmq__ring_repair(&q.main, 2, &skipped, &returned);
    shmq__ring_expire(&q.main, shmq__now_ms32() + 100000u);
    struct shmq_stats st;
    shmq__qseg_stats(&q, NULL, -1, &st);
    if (st.depth > st.capacity)
        abort();
    if (q.has_dlq) {
        rc = shmq__ring_lease(&q.dlq, 3, sizeof(payload), &l);
        check(rc);
        if (rc == 0)
            check(shmq__ring_ack(&q.dlq, &l, 1));
    }
    return 0;
}
