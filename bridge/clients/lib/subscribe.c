/*
 * subscribe.c: the subscriber handle of libmaed_client (maed_sub_*): a SUB socket on the bridge's
 * frames, each message read whole, checked against protocol v2 (version, sizes, shapes, payload
 * length) before it is held, and copied out to the caller on request.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "internal.h"
#include "maed_client.h"
#include "wire.h"

#define MAX_PARTS 3
#define MAX_FRAME_BYTES ((int64_t)WIRE_MAX_SIDE * WIRE_MAX_SIDE * 4)
#define RECEIVE_QUEUE 64  /* messages this client holds that its caller has not read yet (ZMQ_RCVHWM) */

struct maed_sub {
    pthread_mutex_t lock;
    void *ctx, *socket;
    int event;            /* MAED_EVENT_* of the held message, 0 when none */
    wire_header h;
    zmq_msg_t payload;    /* the held message's payload (frames), valid when has_payload */
    int has_payload;
    char error[160];      /* why the last message was refused ("" when none was) */
};

static const struct {
    int mask, event;
    const char *topic;
} TOPICS[] = {
    {MAED_TOPIC_RAW, MAED_EVENT_FRAME_RAW, "frame.raw"},
    {MAED_TOPIC_DENOISED, MAED_EVENT_FRAME_DENOISED, "frame.denoised"},
    {MAED_TOPIC_ROWS, MAED_EVENT_FRAME_ROWS, "frame.rows"},
    {MAED_TOPIC_ALERT, MAED_EVENT_ALERT, "alert"},
    {MAED_TOPIC_FINISHED, MAED_EVENT_SCAN_FINISHED, "scan.finished"},
};
#define NTOPICS ((int)(sizeof TOPICS / sizeof *TOPICS))

static void set_status(int *status, int value) {
    if (status != NULL) *status = value;
}

maed_sub *maed_sub_open(const char *endpoint, int topics, const char *secret_key_file, const char *server_key_file,
                        int *status) {
    int keys = maed_keys_given(secret_key_file, server_key_file), rc = MAED_OK;
    if (endpoint == NULL || keys < 0 || topics < 0 || topics > 31) {
        set_status(status, MAED_E_ARG);
        return NULL;
    }
    maed_sub *s = calloc(1, sizeof *s);
    if (s == NULL) {
        set_status(status, MAED_E_NOMEM);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->ctx = zmq_ctx_new();
    s->socket = s->ctx ? zmq_socket(s->ctx, ZMQ_SUB) : NULL;
    int64_t max_size = MAX_FRAME_BYTES;
    int linger = 0;
    if (s->socket == NULL) rc = MAED_E_ZMQ;
    else {
        zmq_setsockopt(s->socket, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(s->socket, ZMQ_MAXMSGSIZE, &max_size, sizeof max_size);  /* a larger frame drops the peer */
        /* ZeroMQ's default would hold 1000 messages here besides the bridge's 64: a slow reader fell half a minute
         * behind, every message late, where the protocol promises it gaps and the newest frames */
        int receive_queue = RECEIVE_QUEUE;
        zmq_setsockopt(s->socket, ZMQ_RCVHWM, &receive_queue, sizeof receive_queue);
    }
    if (rc == MAED_OK && keys) rc = maed_keys_apply(s->socket, secret_key_file, server_key_file);
    for (int i = 0; rc == MAED_OK && i < NTOPICS; i++)
        if (topics == 0 || (topics & TOPICS[i].mask))
            if (zmq_setsockopt(s->socket, ZMQ_SUBSCRIBE, TOPICS[i].topic, strlen(TOPICS[i].topic)) != 0) rc = MAED_E_ZMQ;
    if (rc == MAED_OK && zmq_connect(s->socket, endpoint) != 0) rc = MAED_E_ZMQ;
    if (rc != MAED_OK) {
        maed_sub_close(s);
        set_status(status, rc);
        return NULL;
    }
    set_status(status, MAED_OK);
    return s;
}

static void release(maed_sub *s) {
    if (s->has_payload) zmq_msg_close(&s->payload);
    s->has_payload = 0;
    s->event = 0;
}

void maed_sub_close(maed_sub *s) {
    if (s == NULL) return;
    release(s);
    if (s->socket) zmq_close(s->socket);
    if (s->ctx) zmq_ctx_term(s->ctx);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int is_pass(const char *p) { return strcmp(p, "trace") == 0 || strcmp(p, "retrace") == 0; }

static int severity_of(const char *s) {
    if (strcmp(s, "info") == 0) return MAED_SEVERITY_INFO;
    if (strcmp(s, "warning") == 0) return MAED_SEVERITY_WARNING;
    if (strcmp(s, "critical") == 0) return MAED_SEVERITY_CRITICAL;
    return -1;
}

/* Every one of the n numbers finite (and, with positive, above 0). */
static int finite_all(const double *v, int n, int positive) {
    for (int k = 0; k < n; k++)
        if (!isfinite(v[k]) || (positive && !(v[k] > 0))) return 0;
    return 1;
}

/* The checks of a message of `event` with n parts: 0 when it follows protocol v2, as the bridge's own decoder
 * (maed.bridge.protocol.decode_published) checks it. */
static int valid(int event, const wire_header *h, int n, size_t payload_size) {
    if (h->scan[0] == '\0' || h->seq < 0) return -1;
    if (event == MAED_EVENT_ALERT)
        return n == 2 && h->kind[0] != '\0' && h->row >= 0 && h->row < WIRE_MAX_SIDE && h->ncolumns == 2 &&
                       h->columns[0] >= 0 && h->columns[0] < h->columns[1] && h->columns[1] <= WIRE_MAX_SIDE &&
                       severity_of(h->severity) >= 0
                   ? 0 : -1;
    if (event == MAED_EVENT_SCAN_FINISHED)
        return n == 2 && h->reason[0] != '\0' && h->rows_done >= 0 && h->rows_done <= WIRE_MAX_SIDE ? 0 : -1;
    /* frames */
    if (n != 3 || h->rows < 1 || h->rows > WIRE_MAX_SIDE || h->cols < 1 || h->cols > WIRE_MAX_SIDE ||
        strcmp(h->dtype, "<f4") != 0 || h->nshape != 2 || h->shape[1] != h->cols || !is_pass(h->pass) ||
        h->rows_done < 0 || h->rows_done > h->rows || h->nrange != 2 || !finite_all(h->range, 2, 1))
        return -1;
    int64_t payload_rows = h->rows;
    if (event == MAED_EVENT_FRAME_ROWS) {
        if (h->row_start < 0 || h->row_start >= h->row_stop || h->row_stop > h->rows || h->nplane != 3 ||
            !finite_all(h->plane, 3, 0))
            return -1;
        payload_rows = h->row_stop - h->row_start;
    }
    return h->shape[0] == payload_rows && (uint64_t)payload_size == (uint64_t)(payload_rows * h->cols) * 4 ? 0 : -1;
}

/* Receive one whole message (its parts beyond MAX_PARTS read and let go); its event, or an error. */
static int receive(maed_sub *s) {
    zmq_msg_t part[MAX_PARTS];
    int n = 0, more = 1, extra = 0, rc = MAED_OK;
    while (more) {
        zmq_msg_t scratch, *m = n < MAX_PARTS ? &part[n] : &scratch;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, s->socket, 0) < 0) {
            zmq_msg_close(m);
            for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
            return MAED_E_ZMQ;
        }
        more = zmq_msg_more(m);
        if (n < MAX_PARTS) n++;
        else zmq_msg_close(m), extra = 1;
    }
    int event = 0;
    for (int i = 0; i < NTOPICS; i++)
        if (zmq_msg_size(&part[0]) == strlen(TOPICS[i].topic) &&
            memcmp(zmq_msg_data(&part[0]), TOPICS[i].topic, zmq_msg_size(&part[0])) == 0)
            event = TOPICS[i].event;
    char topic[32];
    size_t tlen = zmq_msg_size(&part[0]) < sizeof topic - 1 ? zmq_msg_size(&part[0]) : sizeof topic - 1;
    memcpy(topic, zmq_msg_data(&part[0]), tlen);
    topic[tlen] = '\0';
    for (size_t i = 0; i < tlen; i++)
        if (topic[i] < 0x20 || topic[i] > 0x7e) topic[i] = '?';  /* printable in the reason below */
    rc = MAED_E_PROTOCOL;
    if (event == 0) rc = 0;  /* a topic this library does not know (a longer one matching a prefix): skipped */
    else if (extra || n < 2)
        snprintf(s->error, sizeof s->error, "malformed %s message (%s)", topic, extra ? "too many parts" : "no header");
    else if (wire_parse(zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), &s->h) != 0)
        snprintf(s->error, sizeof s->error, "malformed %s message%s%s%s", topic, s->h.refused[0] ? " (field '" : "",
                 s->h.refused, s->h.refused[0] ? "' of the wrong type or too long)" : "");
    else if (s->h.v < 0)
        snprintf(s->error, sizeof s->error,
                 "%s message without an integer protocol version 'v'; this client speaks version %d", topic, WIRE_VERSION);
    else if (s->h.v != WIRE_VERSION)
        snprintf(s->error, sizeof s->error, "%s message of protocol version %lld; this client speaks version %d only",
                 topic, (long long)s->h.v, WIRE_VERSION);
    else if (valid(event, &s->h, n, n == 3 ? zmq_msg_size(&part[2]) : 0) != 0)
        snprintf(s->error, sizeof s->error, "%s message does not match protocol version %d (fields, shape or payload size)",
                 topic, WIRE_VERSION);
    else rc = event;
    if (rc > 0 && n == 3) {
        zmq_msg_init(&s->payload);
        zmq_msg_move(&s->payload, &part[2]);
        s->has_payload = 1;
    }
    for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
    if (rc > 0) s->event = rc;
    return rc;
}

int maed_sub_next(maed_sub *s, int timeout_ms) {
    if (s == NULL) return MAED_E_ARG;
    pthread_mutex_lock(&s->lock);
    release(s);
    s->error[0] = '\0';
    int64_t deadline = maed_deadline(timeout_ms);
    int rc = MAED_TIMEOUT;
    for (;;) {
        zmq_pollitem_t item = {s->socket, 0, ZMQ_POLLIN, 0};
        int ready = zmq_poll(&item, 1, maed_left_ms(deadline));
        if (ready < 0) {
            rc = zmq_errno() == EINTR ? MAED_TIMEOUT : MAED_E_ZMQ;
            if (rc == MAED_TIMEOUT && maed_left_ms(deadline) != 0) continue;
            break;
        }
        if (ready == 0) break;
        rc = receive(s);
        if (rc != 0) break;  /* an unknown topic (0) was skipped: wait on */
        rc = MAED_TIMEOUT;
        if (maed_left_ms(deadline) == 0) break;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Lock s and check that it holds a message of one of the events in mask (bit 1 << event). */
static int hold(maed_sub *s, int mask) {
    if (s == NULL) return MAED_E_ARG;
    pthread_mutex_lock(&s->lock);
    if (s->event == 0 || !(mask & (1 << s->event))) {
        pthread_mutex_unlock(&s->lock);
        return MAED_E_STATE;
    }
    return MAED_OK;
}

#define FRAMES ((1 << MAED_EVENT_FRAME_RAW) | (1 << MAED_EVENT_FRAME_DENOISED) | (1 << MAED_EVENT_FRAME_ROWS))
#define ANY (FRAMES | (1 << MAED_EVENT_ALERT) | (1 << MAED_EVENT_SCAN_FINISHED))

int maed_sub_frame(maed_sub *s, float *data, int capacity, int *rows, int *cols, int *rows_done, int *final) {
    int rc = hold(s, FRAMES);
    if (rc != MAED_OK) return rc;
    int64_t n_rows = s->h.shape[0], n_cols = s->h.cols;  /* checked against the payload's size */
    if (rows) *rows = (int)n_rows;
    if (cols) *cols = (int)n_cols;
    if (rows_done) *rows_done = (int)s->h.rows_done;
    if (final) *final = s->h.final;
    if (capacity < 0) rc = MAED_E_ARG;
    else if ((int64_t)capacity < n_rows * n_cols) rc = MAED_E_SIZE;  /* data may be NULL to ask the shape */
    else if (data == NULL) rc = MAED_E_ARG;
    else maed_floats_from_le(data, zmq_msg_data(&s->payload), (size_t)(n_rows * n_cols));
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int maed_sub_rows_range(maed_sub *s, int *row_start, int *row_stop, int *frame_rows, double *plane3) {
    int rc = hold(s, 1 << MAED_EVENT_FRAME_ROWS);
    if (rc != MAED_OK) return rc;
    if (row_start) *row_start = (int)s->h.row_start;
    if (row_stop) *row_stop = (int)s->h.row_stop;
    if (frame_rows) *frame_rows = (int)s->h.rows;
    if (plane3) memcpy(plane3, s->h.plane, sizeof s->h.plane);
    pthread_mutex_unlock(&s->lock);
    return MAED_OK;
}

/* Copy a string field of the held message (any event in mask). */
static int text(maed_sub *s, int mask, size_t offset, char *dst, int capacity) {
    int rc = hold(s, mask);
    if (rc != MAED_OK) return rc;
    rc = maed_copy_out((const char *)&s->h + offset, dst, capacity);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int maed_sub_scan(maed_sub *s, char *scan, int capacity) {
    return text(s, ANY, offsetof(wire_header, scan), scan, capacity);
}

int maed_sub_unit(maed_sub *s, char *unit, int capacity) {
    return text(s, FRAMES, offsetof(wire_header, unit), unit, capacity);
}

int maed_sub_channel(maed_sub *s, char *channel, int capacity) {
    return text(s, FRAMES, offsetof(wire_header, channel), channel, capacity);
}

int maed_sub_trust(maed_sub *s, char *output, int capacity) {
    return text(s, 1 << MAED_EVENT_FRAME_DENOISED, offsetof(wire_header, trust), output, capacity);
}

int maed_sub_trace_retrace(maed_sub *s, int *present, double *model, double *classical, double *raw) {
    int rc = hold(s, 1 << MAED_EVENT_FRAME_DENOISED);
    if (rc != MAED_OK) return rc;
    if (present) *present = s->h.has_trace_retrace;
    if (model) *model = s->h.has_trace_retrace ? s->h.trace_retrace[0] : 0.0;
    if (classical) *classical = s->h.has_trace_retrace ? s->h.trace_retrace[1] : 0.0;
    if (raw) *raw = s->h.has_trace_retrace ? s->h.trace_retrace[2] : 0.0;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int maed_sub_seq(maed_sub *s, double *seq) {
    int rc = hold(s, ANY);
    if (rc != MAED_OK) return rc;
    if (seq) *seq = (double)s->h.seq;
    pthread_mutex_unlock(&s->lock);
    return MAED_OK;
}

int maed_sub_pass(maed_sub *s, int *pass) {
    int rc = hold(s, ANY);
    if (rc != MAED_OK) return rc;
    if (pass) *pass = strcmp(s->h.pass, "trace") == 0 ? MAED_PASS_TRACE : strcmp(s->h.pass, "retrace") == 0 ? MAED_PASS_RETRACE : -1;
    pthread_mutex_unlock(&s->lock);
    return MAED_OK;
}

int maed_sub_range(maed_sub *s, double *width_m, double *height_m, int *slow_axis) {
    int rc = hold(s, FRAMES);
    if (rc != MAED_OK) return rc;
    if (width_m) *width_m = s->h.nrange == 2 ? s->h.range[0] : 0.0;
    if (height_m) *height_m = s->h.nrange == 2 ? s->h.range[1] : 0.0;
    if (slow_axis) *slow_axis = strcmp(s->h.slow_axis, "up") == 0 ? MAED_SLOW_AXIS_UP : MAED_SLOW_AXIS_DOWN;
    pthread_mutex_unlock(&s->lock);
    return MAED_OK;
}

int maed_sub_alert(maed_sub *s, char *kind, int capacity, int *row, int *col_start, int *col_stop, int *severity) {
    int rc = hold(s, 1 << MAED_EVENT_ALERT);
    if (rc != MAED_OK) return rc;
    if (row) *row = (int)s->h.row;
    /* columns are checked 0 <= start < stop; stop is clamped to what an int holds */
    if (col_start) *col_start = s->h.columns[0] > INT32_MAX ? INT32_MAX : (int)s->h.columns[0];
    if (col_stop) *col_stop = s->h.columns[1] > INT32_MAX ? INT32_MAX : (int)s->h.columns[1];
    if (severity) *severity = severity_of(s->h.severity);
    rc = kind != NULL ? maed_copy_out(s->h.kind, kind, capacity) : MAED_OK;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int maed_sub_alert_late(maed_sub *s, int *late) {
    int rc = hold(s, 1 << MAED_EVENT_ALERT);
    if (rc != MAED_OK) return rc;
    if (late) *late = s->h.late;
    pthread_mutex_unlock(&s->lock);
    return MAED_OK;
}

int maed_sub_alert_recovered(maed_sub *s, int *recovered) {
    int rc = hold(s, 1 << MAED_EVENT_ALERT);
    if (rc != MAED_OK) return rc;
    if (recovered) *recovered = s->h.recovered;
    pthread_mutex_unlock(&s->lock);
    return MAED_OK;
}

int maed_sub_finished(maed_sub *s, int *complete, int *rows_done, char *reason, int capacity) {
    int rc = hold(s, 1 << MAED_EVENT_SCAN_FINISHED);
    if (rc != MAED_OK) return rc;
    if (complete) *complete = s->h.complete;
    if (rows_done) *rows_done = s->h.rows_done > INT32_MAX ? INT32_MAX : (int)s->h.rows_done;
    rc = reason != NULL ? maed_copy_out(s->h.reason, reason, capacity) : MAED_OK;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int maed_sub_error(maed_sub *s, char *message, int capacity) {
    if (s == NULL) return MAED_E_ARG;
    pthread_mutex_lock(&s->lock);
    int rc = maed_copy_out(s->error, message, capacity);
    pthread_mutex_unlock(&s->lock);
    return rc;
}
