/*
 * push.c: the controller handle of libmaed_client (maed_push_*). The caller's calls only encode a
 * message and queue it (outbox.h) under a mutex: they never wait for the network. A thread of the
 * handle owns the sockets: it sends what is queued, reads the journal's acknowledgements
 * (scan.journaled) and lets go what they cover, and after a lost connection sends every
 * unacknowledged message again, in order, once the new connection's handshake is done: the same
 * rules as the Python sender (bridge/sources/resend.py, docs/reliability.md).
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "internal.h"
#include "maed_client.h"
#include "outbox.h"
#include "wire.h"

#define HEADER_CAP 1024
#define MAX_LABEL 63          /* bytes of channel and unit */
#define DEFAULT_QUEUE_MIB 64

struct maed_push {
    pthread_mutex_t lock;
    pthread_t thread;
    int thread_started, stop;
    void *ctx, *push, *acks, *monitor;  /* the sockets: the thread's alone once it runs */
    int connected;                      /* 0 from a lost connection until the next handshake */
    outbox queue;
    int64_t seq;
    char scan[WIRE_MAX_SCAN + 1];       /* the current scan ("" when none is open) */
    int rows, cols, up;
    int last_row[2];                    /* the last row queued per pass (-1, or rows for an up scan, before any) */
    double sent, resent, acknowledged;
    float *scratch;                     /* a line in little-endian order, cols floats */
};

static void set_status(int *status, int value) {
    if (status != NULL) *status = value;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Read the acknowledgements waiting on the ack socket (locked). */
static void read_acks(maed_push *p) {
    for (;;) {
        zmq_msg_t part[2];
        int n = 0, more = 1;
        zmq_msg_t scratch;
        while (more) {
            zmq_msg_t *m = n < 2 ? &part[n] : &scratch;
            zmq_msg_init(m);
            if (zmq_msg_recv(m, p->acks, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(m);
                for (int i = 0; i < n && i < 2; i++) zmq_msg_close(&part[i]);
                return;  /* nothing more (a partial message cannot be: ZeroMQ delivers whole ones) */
            }
            more = zmq_msg_more(m);
            if (n >= 2) zmq_msg_close(m);
            n++;
        }
        wire_header h;
        if (n == 2 && zmq_msg_size(&part[0]) == strlen("scan.journaled") &&
            memcmp(zmq_msg_data(&part[0]), "scan.journaled", zmq_msg_size(&part[0])) == 0 &&
            wire_parse(zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), &h) == 0 && h.v == WIRE_VERSION &&
            h.scan[0] != '\0' && h.journaled_seq >= 0)
            p->acknowledged += outbox_ack(&p->queue, h.scan, h.journaled_seq);
        /* anything else is not an acknowledgement this sender can read: it keeps its messages */
        for (int i = 0; i < n && i < 2; i++) zmq_msg_close(&part[i]);
    }
}

/* Take in the monitor's events: a lost connection sends everything unacknowledged again (locked). */
static void read_monitor(maed_push *p) {
    for (;;) {
        zmq_msg_t event, address;
        zmq_msg_init(&event);
        if (zmq_msg_recv(&event, p->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&event);
            return;
        }
        uint16_t id = 0;
        if (zmq_msg_size(&event) >= 2) memcpy(&id, zmq_msg_data(&event), 2);
        int more = zmq_msg_more(&event);
        zmq_msg_close(&event);
        while (more) {  /* the endpoint's address */
            zmq_msg_init(&address);
            if (zmq_msg_recv(&address, p->monitor, 0) < 0) more = 0;
            else more = zmq_msg_more(&address);
            zmq_msg_close(&address);
        }
        if (id == ZMQ_EVENT_DISCONNECTED) {
            /* What went out on the lost connection may have died in its buffers: all of it again. */
            for (outbox_msg *m = p->queue.head; m != NULL && m != p->queue.unsent; m = m->next) p->resent++;
            p->queue.unsent = p->queue.head;
            p->connected = 0;
        } else if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            p->connected = 1;
        }
    }
}

/* Send what the connection takes now, oldest first (locked). */
static void send_queued(maed_push *p) {
    while (p->connected && p->queue.unsent != NULL) {
        outbox_msg *m = p->queue.unsent;
        int parts = m->len[2] ? 3 : 2;
        /* A multipart message is queued whole or not at all: only the first part can meet the HWM. */
        if (zmq_send(p->push, m->part[0], m->len[0], ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0) return;
        for (int i = 1; i < parts; i++) zmq_send(p->push, m->part[i], m->len[i], i + 1 < parts ? ZMQ_SNDMORE : 0);
        p->queue.unsent = m->next;
        p->sent++;
        if (p->acks == NULL) outbox_pop(&p->queue);  /* without acknowledgements ZeroMQ has it now */
    }
}

static void *run(void *arg) {
    maed_push *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        int stop = p->stop, busy = p->queue.unsent != NULL;
        pthread_mutex_unlock(&p->lock);
        if (stop) break;
        zmq_pollitem_t items[2] = {{p->acks, 0, ZMQ_POLLIN, 0}, {p->monitor, 0, ZMQ_POLLIN, 0}};
        long wait = busy ? 2 : 10;
        if (p->acks != NULL) zmq_poll(items, 2, wait);
        else sleep_ms(wait);
        pthread_mutex_lock(&p->lock);
        if (p->acks != NULL) {
            read_acks(p);
            read_monitor(p);
        }
        send_queued(p);
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

static int open_sockets(maed_push *p, const char *endpoint, const char *ack_endpoint, const char *secret,
                        const char *server, int keys) {
    int zero = 0, one = 1;
    p->ctx = zmq_ctx_new();
    if (p->ctx == NULL || (p->push = zmq_socket(p->ctx, ZMQ_PUSH)) == NULL) return MAED_E_ZMQ;
    zmq_setsockopt(p->push, ZMQ_LINGER, &zero, sizeof zero);
    if (keys && maed_keys_apply(p->push, secret, server) != MAED_OK) return MAED_E_KEYS;
    if (ack_endpoint != NULL && ack_endpoint[0] != '\0') {
        char address[64];
        /* Queue only to a live connection: what a dead bridge had queued is resent instead. */
        zmq_setsockopt(p->push, ZMQ_IMMEDIATE, &one, sizeof one);
        snprintf(address, sizeof address, "inproc://maed-push-monitor-%p", (void *)p);
        if (zmq_socket_monitor(p->push, address, ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0 ||
            (p->monitor = zmq_socket(p->ctx, ZMQ_PAIR)) == NULL || zmq_connect(p->monitor, address) != 0)
            return MAED_E_ZMQ;
        zmq_setsockopt(p->monitor, ZMQ_LINGER, &zero, sizeof zero);
        if ((p->acks = zmq_socket(p->ctx, ZMQ_SUB)) == NULL) return MAED_E_ZMQ;
        zmq_setsockopt(p->acks, ZMQ_LINGER, &zero, sizeof zero);
        int64_t max_size = WIRE_MAX_HEADER;
        zmq_setsockopt(p->acks, ZMQ_MAXMSGSIZE, &max_size, sizeof max_size);
        if (keys && maed_keys_apply(p->acks, secret, server) != MAED_OK) return MAED_E_KEYS;
        if (zmq_setsockopt(p->acks, ZMQ_SUBSCRIBE, "scan.journaled", strlen("scan.journaled")) != 0 ||
            zmq_connect(p->acks, ack_endpoint) != 0)
            return MAED_E_ZMQ;
    }
    if (zmq_connect(p->push, endpoint) != 0) return MAED_E_ZMQ;
    return MAED_OK;
}

/* linger_ms: how long what ZeroMQ still holds may take to leave where nothing is resent (no acknowledgements); -1
 * as long as it takes. */
static void free_push(maed_push *p, long linger_ms) {
    if (p->push && p->monitor) zmq_socket_monitor(p->push, NULL, 0);
    if (p->monitor) zmq_close(p->monitor);
    if (p->push) {
        if (p->monitor == NULL && p->acks == NULL && linger_ms != 0) {
            int linger = linger_ms < 0 || linger_ms > INT_MAX ? -1 : (int)linger_ms;
            zmq_setsockopt(p->push, ZMQ_LINGER, &linger, sizeof linger);
        }
        zmq_close(p->push);
    }
    if (p->acks) zmq_close(p->acks);
    if (p->ctx) zmq_ctx_term(p->ctx);
    outbox_clear(&p->queue);
    pthread_mutex_destroy(&p->lock);
    free(p->scratch);
    free(p);
}

maed_push *maed_push_open(const char *endpoint, const char *ack_endpoint, const char *secret_key_file,
                          const char *server_key_file, int queue_mib, int *status) {
    int keys = maed_keys_given(secret_key_file, server_key_file);
    if (endpoint == NULL || keys < 0 || queue_mib < 0 || queue_mib > 65536) {
        set_status(status, MAED_E_ARG);
        return NULL;
    }
    maed_push *p = calloc(1, sizeof *p);
    if (p == NULL) {
        set_status(status, MAED_E_NOMEM);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->queue.budget = (size_t)(queue_mib ? queue_mib : DEFAULT_QUEUE_MIB) << 20;
    p->connected = 1;  /* before the first handshake ZMQ_IMMEDIATE refuses sends anyway */
    int rc = open_sockets(p, endpoint, ack_endpoint, secret_key_file, server_key_file, keys);
    if (rc == MAED_OK && pthread_create(&p->thread, NULL, run, p) != 0) rc = MAED_E_NOMEM;
    if (rc != MAED_OK) {
        free_push(p, 0);
        set_status(status, rc);
        return NULL;
    }
    p->thread_started = 1;
    set_status(status, MAED_OK);
    return p;
}

/* Queue one message (locked by the caller): MAED_OK, MAED_E_FULL or MAED_E_NOMEM; seq counts only
 * queued messages, so a refused one leaves no gap. */
static int enqueue(maed_push *p, const char *topic, const uint8_t *header, size_t header_len, const void *payload,
                   size_t payload_len) {
    outbox_msg *m = outbox_msg_new(p->scan, p->seq, topic, header, header_len, payload, payload_len);
    if (m == NULL) return MAED_E_NOMEM;
    if (outbox_push(&p->queue, m) != 0) {
        free(m);
        return MAED_E_FULL;
    }
    p->seq++;
    return MAED_OK;
}

static int label_ok(const char *s) { return s != NULL && s[0] != '\0' && strlen(s) <= MAX_LABEL; }

int maed_push_start(maed_push *p, const char *scan, int rows, int cols, const char *channel, const char *unit,
                    double width_m, double height_m, int slow_axis) {
    if (p == NULL || scan == NULL || scan[0] == '\0' || strlen(scan) > WIRE_MAX_SCAN || rows < 1 ||
        rows > WIRE_MAX_SIDE || cols < 1 || cols > WIRE_MAX_SIDE || !label_ok(channel) || !label_ok(unit) ||
        !isfinite(width_m) || !isfinite(height_m) || width_m <= 0 || height_m <= 0 ||
        (slow_axis != MAED_SLOW_AXIS_DOWN && slow_axis != MAED_SLOW_AXIS_UP))
        return MAED_E_ARG;
    uint8_t header[HEADER_CAP];
    pthread_mutex_lock(&p->lock);
    size_t len = wire_scan_start(header, sizeof header, scan, p->seq, rows, cols, channel, unit, width_m, height_m,
                                 slow_axis == MAED_SLOW_AXIS_UP);
    int rc = MAED_E_ARG;
    float *scratch = realloc(p->scratch, (size_t)cols * sizeof(float));
    if (scratch == NULL) rc = MAED_E_NOMEM;
    else p->scratch = scratch;
    if (p->scan[0] != '\0' && strcmp(p->scan, scan) == 0) rc = MAED_E_ARG;  /* duplicate_start at the bridge */
    else if (len > 0 && scratch != NULL) {
        char previous[sizeof p->scan];
        memcpy(previous, p->scan, sizeof previous);
        snprintf(p->scan, sizeof p->scan, "%s", scan);
        rc = enqueue(p, "scan.start", header, len, NULL, 0);
        if (rc == MAED_OK) {
            p->rows = rows, p->cols = cols, p->up = slow_axis == MAED_SLOW_AXIS_UP;
            p->last_row[0] = p->last_row[1] = p->up ? rows : -1;
        }
        else memcpy(p->scan, previous, sizeof previous);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int maed_push_line(maed_push *p, int row, int pass, const float *data, int cols) {
    if (p == NULL || data == NULL || (pass != MAED_PASS_TRACE && pass != MAED_PASS_RETRACE)) return MAED_E_ARG;
    uint8_t header[HEADER_CAP];
    pthread_mutex_lock(&p->lock);
    int rc = MAED_OK;
    if (p->scan[0] == '\0') rc = MAED_E_STATE;
    else if (row < 0 || row >= p->rows || cols != p->cols) rc = MAED_E_ARG;
    else if (p->up ? row >= p->last_row[pass] : row <= p->last_row[pass]) rc = MAED_E_ARG;  /* row_order at the bridge */
    for (int i = 0; rc == MAED_OK && i < cols; i++)
        if (!isfinite(data[i])) rc = MAED_E_ARG;  /* the bridge would drop it (non_finite) */
    if (rc == MAED_OK) {
        size_t len = wire_line(header, sizeof header, p->scan, p->seq, row, pass == MAED_PASS_RETRACE, maed_unix_time(), cols);
        maed_floats_to_le(p->scratch, data, (size_t)cols);
        rc = len > 0 ? enqueue(p, "line", header, len, p->scratch, (size_t)cols * sizeof(float)) : MAED_E_ARG;
        if (rc == MAED_OK) p->last_row[pass] = row;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int maed_push_end(maed_push *p, int complete) {
    if (p == NULL) return MAED_E_ARG;
    uint8_t header[HEADER_CAP];
    pthread_mutex_lock(&p->lock);
    int rc = MAED_E_STATE;
    if (p->scan[0] != '\0') {
        size_t len = wire_scan_end(header, sizeof header, p->scan, p->seq, complete != 0);
        rc = len > 0 ? enqueue(p, "scan.end", header, len, NULL, 0) : MAED_E_ARG;
        if (rc == MAED_OK) p->scan[0] = '\0';
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int maed_push_pending(maed_push *p) {
    if (p == NULL) return MAED_E_ARG;
    pthread_mutex_lock(&p->lock);
    int n = p->queue.count;
    pthread_mutex_unlock(&p->lock);
    return n;
}

int maed_push_counters(maed_push *p, double *sent, double *resent, double *acknowledged) {
    if (p == NULL) return MAED_E_ARG;
    pthread_mutex_lock(&p->lock);
    if (sent) *sent = p->sent;
    if (resent) *resent = p->resent;
    if (acknowledged) *acknowledged = p->acknowledged;
    pthread_mutex_unlock(&p->lock);
    return MAED_OK;
}

int maed_push_wait(maed_push *p, int timeout_ms) {
    if (p == NULL) return MAED_E_ARG;
    int64_t deadline = maed_deadline(timeout_ms);
    for (;;) {
        if (maed_push_pending(p) == 0) return MAED_OK;
        long left = maed_left_ms(deadline);
        if (left == 0) return MAED_E_TIMEOUT;
        sleep_ms(left < 0 || left > 5 ? 5 : left);
    }
}

void maed_push_close(maed_push *p, int timeout_ms) {
    if (p == NULL) return;
    int64_t deadline = maed_deadline(timeout_ms);
    if (timeout_ms != 0) maed_push_wait(p, timeout_ms);
    if (p->thread_started) {
        pthread_mutex_lock(&p->lock);
        p->stop = 1;
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    free_push(p, maed_left_ms(deadline));  /* what is left of timeout_ms, no more */
}
