/*
 * outbox.c: the push handle's bounded FIFO (outbox.h).
 */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

outbox_msg *outbox_msg_new(const char *scan, int64_t seq, const char *topic, const uint8_t *header, size_t header_len,
                           const void *payload, size_t payload_len) {
    size_t topic_len = strlen(topic);
    outbox_msg *m = malloc(sizeof *m + topic_len + header_len + payload_len);
    if (m == NULL) return NULL;
    m->next = NULL;
    m->seq = seq;
    snprintf(m->scan, sizeof m->scan, "%s", scan);
    m->len[0] = topic_len;
    m->len[1] = header_len;
    m->len[2] = payload_len;
    m->part[0] = m->data;
    m->part[1] = m->data + topic_len;
    m->part[2] = m->data + topic_len + header_len;
    memcpy(m->part[0], topic, topic_len);
    memcpy(m->part[1], header, header_len);
    if (payload_len) memcpy(m->part[2], payload, payload_len);
    m->bytes = sizeof *m + topic_len + header_len + payload_len;
    return m;
}

int outbox_push(outbox *o, outbox_msg *m) {
    if (o->bytes + m->bytes > o->budget) return -1;
    if (o->tail) o->tail->next = m;
    else o->head = m;
    o->tail = m;
    if (o->unsent == NULL) o->unsent = m;
    o->bytes += m->bytes;
    o->count++;
    return 0;
}

void outbox_pop(outbox *o) {
    outbox_msg *m = o->head;
    if (m == NULL) return;
    o->head = m->next;
    if (o->head == NULL) o->tail = NULL;
    if (o->unsent == m) o->unsent = m->next;
    o->bytes -= m->bytes;
    o->count--;
    free(m);
}

int outbox_ack(outbox *o, const char *scan, int64_t journaled_seq) {
    int ours = 0, dropped = 0;
    for (outbox_msg *m = o->head; m != NULL && !ours; m = m->next) ours = strcmp(m->scan, scan) == 0;
    if (!ours) return 0;
    /* The bridge journals one sender's messages in order: every older one is on disk too. */
    while (o->head != NULL && o->head->seq <= journaled_seq) {
        outbox_pop(o);
        dropped++;
    }
    return dropped;
}

void outbox_clear(outbox *o) {
    while (o->head != NULL) outbox_pop(o);
}
