/*
 * outbox.h: the push handle's bounded queue of messages, oldest first: those not yet sent and,
 * with acknowledgements, those sent and not yet acknowledged. Not thread-safe: push.c locks it.
 */
#ifndef MAED_OUTBOX_H
#define MAED_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef struct outbox_msg {
    struct outbox_msg *next;
    int64_t seq;
    char scan[WIRE_MAX_SCAN + 1];
    size_t len[3];      /* topic, header, payload (0: no payload frame) */
    uint8_t *part[3];   /* into data */
    size_t bytes;       /* what it counts against the budget */
    uint8_t data[];
} outbox_msg;

typedef struct {
    outbox_msg *head, *tail;
    outbox_msg *unsent;  /* the oldest message not sent on the current connection (NULL: all sent) */
    size_t bytes, budget;
    int count;
} outbox;

/* A message of the given parts (payload may be NULL); NULL when out of memory. */
outbox_msg *outbox_msg_new(const char *scan, int64_t seq, const char *topic, const uint8_t *header, size_t header_len,
                           const void *payload, size_t payload_len);
/* Append m: 0, or -1 when it does not fit in the budget (m is then the caller's to free). */
int outbox_push(outbox *o, outbox_msg *m);
/* Drop the oldest message (sent or acknowledged). */
void outbox_pop(outbox *o);
/* Drop every message of seq <= journaled_seq from the front, if any held message is of scan (an
 * acknowledgement of another sender's scan is ignored); how many were dropped. */
int outbox_ack(outbox *o, const char *scan, int64_t journaled_seq);
void outbox_clear(outbox *o);

#endif
