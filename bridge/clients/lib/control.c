/*
 * control.c: the control handle of libmaed_client (maed_ctl_*): a REQ socket on the bridge's
 * control port; one request, one reply, within a timeout. A request that gets no reply in time
 * leaves the REQ socket waiting, so it is closed and a new one connected (ZeroMQ's "lazy pirate").
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "internal.h"
#include "maed_client.h"
#include "mp.h"
#include "wire.h"

#define MAX_REPLY (1 << 20)
#define MAX_ERROR 512

struct maed_ctl {
    pthread_mutex_t lock;
    void *ctx, *socket;
    char endpoint[512], secret[1024], server[1024];
    int keys;
    char error[MAX_ERROR];
};

static void set_status(int *status, int value) {
    if (status != NULL) *status = value;
}

static int connect_socket(maed_ctl *c) {
    int zero = 0;
    int64_t max_size = MAX_REPLY;
    if ((c->socket = zmq_socket(c->ctx, ZMQ_REQ)) == NULL) return MAED_E_ZMQ;
    zmq_setsockopt(c->socket, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c->socket, ZMQ_MAXMSGSIZE, &max_size, sizeof max_size);
    if (c->keys && maed_keys_apply(c->socket, c->secret, c->server) != MAED_OK) return MAED_E_KEYS;
    return zmq_connect(c->socket, c->endpoint) == 0 ? MAED_OK : MAED_E_ZMQ;
}

maed_ctl *maed_ctl_open(const char *endpoint, const char *secret_key_file, const char *server_key_file, int *status) {
    int keys = maed_keys_given(secret_key_file, server_key_file);
    if (endpoint == NULL || keys < 0 || strlen(endpoint) >= 512 ||
        (keys && (strlen(secret_key_file) >= 1024 || strlen(server_key_file) >= 1024))) {
        set_status(status, MAED_E_ARG);
        return NULL;
    }
    maed_ctl *c = calloc(1, sizeof *c);
    if (c == NULL) {
        set_status(status, MAED_E_NOMEM);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    strcpy(c->endpoint, endpoint);
    if (keys) strcpy(c->secret, secret_key_file), strcpy(c->server, server_key_file);
    c->keys = keys;
    c->ctx = zmq_ctx_new();
    int rc = c->ctx ? connect_socket(c) : MAED_E_ZMQ;
    if (rc != MAED_OK) {
        maed_ctl_close(c);
        set_status(status, rc);
        return NULL;
    }
    set_status(status, MAED_OK);
    return c;
}

void maed_ctl_close(maed_ctl *c) {
    if (c == NULL) return;
    if (c->socket) zmq_close(c->socket);
    if (c->ctx) zmq_ctx_term(c->ctx);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Send request (len bytes) and receive the one-frame reply into *reply (locked): MAED_OK,
 * MAED_E_TIMEOUT (the socket is replaced), MAED_E_PROTOCOL (a reply of several frames) or MAED_E_ZMQ. */
/* A REQ socket left between its request and the reply cannot send again: close it and connect a
 * new one (a failed connect leaves socket NULL, tried again at the next request); returns rc. */
static int replace_socket(maed_ctl *c, int rc) {
    if (c->socket) zmq_close(c->socket);
    c->socket = NULL;
    if (connect_socket(c) != MAED_OK && c->socket) {
        zmq_close(c->socket);
        c->socket = NULL;
    }
    return rc;
}

static int exchange(maed_ctl *c, const void *request, size_t len, int timeout_ms, zmq_msg_t *reply) {
    if (c->socket == NULL && replace_socket(c, MAED_OK) == MAED_OK && c->socket == NULL) return MAED_E_ZMQ;
    if (zmq_send(c->socket, request, len, 0) < 0) return replace_socket(c, MAED_E_ZMQ);
    zmq_pollitem_t item = {c->socket, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms < 0 ? -1 : timeout_ms) <= 0) return replace_socket(c, MAED_E_TIMEOUT);
    zmq_msg_init(reply);
    if (zmq_msg_recv(reply, c->socket, 0) < 0) {
        zmq_msg_close(reply);
        return replace_socket(c, MAED_E_ZMQ);
    }
    if (zmq_msg_more(reply)) {  /* a reply is one frame: read the rest and refuse it */
        int more = 1;
        while (more) {
            zmq_msg_t rest;
            zmq_msg_init(&rest);
            more = zmq_msg_recv(&rest, c->socket, 0) >= 0 && zmq_msg_more(&rest);
            zmq_msg_close(&rest);
        }
        zmq_msg_close(reply);
        return MAED_E_PROTOCOL;
    }
    return MAED_OK;
}

/* The fields of a msgpack reply this library reads. */
typedef struct {
    int ok, scanning, paused, has_ok;
    int64_t rows_done;
    double lines_received, lines_dropped;
    char scan[WIRE_MAX_SCAN + 1], state[16], error[MAX_ERROR];
} reply_t;

static int copy_str(const mp_item *it, char *dst, size_t cap) {
    if (it->type == MP_NIL) {
        dst[0] = '\0';
        return 0;
    }
    if (it->type != MP_STR) return -1;
    size_t n = it->n < cap - 1 ? it->n : cap - 1;  /* an error message may be cut, never overrun */
    memcpy(dst, it->s, n);
    dst[n] = '\0';
    return 0;
}

static int parse_reply(const void *buf, size_t len, reply_t *r) {
    memset(r, 0, sizeof *r);
    mp_reader rd = {(const uint8_t *)buf, (const uint8_t *)buf + len};
    mp_item map;
    if (mp_next(&rd, &map) != 0 || map.type != MP_MAP) return -1;
    for (uint32_t k = 0; k < map.n; k++) {
        mp_item key, val;
        double number;
        if (mp_next(&rd, &key) != 0 || key.type != MP_STR || mp_next(&rd, &val) != 0) return -1;
        int bad = 0;
        if (mp_str_is(&key, "ok")) bad = val.type != MP_BOOL, r->ok = val.b, r->has_ok = 1;
        else if (mp_str_is(&key, "paused")) bad = val.type != MP_BOOL, r->paused = val.b;
        else if (mp_str_is(&key, "state")) bad = copy_str(&val, r->state, sizeof r->state);
        else if (mp_str_is(&key, "scan")) bad = val.type == MP_STR && val.n > WIRE_MAX_SCAN ? -1 : copy_str(&val, r->scan, sizeof r->scan);
        else if (mp_str_is(&key, "error")) bad = copy_str(&val, r->error, sizeof r->error);
        else if (mp_str_is(&key, "rows_done")) bad = val.type == MP_NIL ? 0 : val.type != MP_INT, r->rows_done = val.i;
        else if (mp_str_is(&key, "lines_received")) bad = mp_number(&val, &number), r->lines_received = number;
        else if (mp_str_is(&key, "lines_dropped")) bad = mp_number(&val, &number), r->lines_dropped = number;
        else bad = mp_skip_rest(&rd, &val);
        if (bad) return -1;
    }
    r->scanning = strcmp(r->state, "scanning") == 0;
    return r->has_ok && rd.p == rd.end ? 0 : -1;  /* bytes after the map: no reply of the bridge's */
}

/* Send {"cmd": cmd, "v": 2} and read the reply into r (locked). */
static int command(maed_ctl *c, const char *cmd, int timeout_ms, reply_t *r) {
    uint8_t request[64];
    mp_writer w = {request, sizeof request, 0, 0};
    mp_w_map(&w, 2);
    mp_w_str(&w, "cmd");
    mp_w_str(&w, cmd);
    mp_w_str(&w, "v");
    mp_w_int(&w, WIRE_VERSION);
    zmq_msg_t reply;
    int rc = exchange(c, request, w.len, timeout_ms, &reply);
    if (rc != MAED_OK) return rc;
    if (parse_reply(zmq_msg_data(&reply), zmq_msg_size(&reply), r) != 0) rc = MAED_E_PROTOCOL;
    else if (!r->ok) {
        rc = MAED_E_REFUSED;
        memcpy(c->error, r->error, sizeof c->error);
    }
    zmq_msg_close(&reply);
    return rc;
}

int maed_ctl_status(maed_ctl *c, int timeout_ms, int *scanning, int *paused, int *rows_done, double *lines_received,
                    double *lines_dropped, char *scan, int capacity) {
    if (c == NULL) return MAED_E_ARG;
    reply_t *r = malloc(sizeof *r);
    if (r == NULL) return MAED_E_NOMEM;
    pthread_mutex_lock(&c->lock);
    int rc = command(c, "status", timeout_ms, r);
    pthread_mutex_unlock(&c->lock);
    if (rc == MAED_OK) {
        if (scanning) *scanning = r->scanning;
        if (paused) *paused = r->paused;
        if (rows_done) *rows_done = r->rows_done < 0 || r->rows_done > INT32_MAX ? 0 : (int)r->rows_done;
        if (lines_received) *lines_received = r->lines_received;
        if (lines_dropped) *lines_dropped = r->lines_dropped;
        if (scan) rc = maed_copy_out(r->scan, scan, capacity);
    }
    free(r);
    return rc;
}

static int simple(maed_ctl *c, const char *cmd, int timeout_ms) {
    if (c == NULL) return MAED_E_ARG;
    reply_t *r = malloc(sizeof *r);
    if (r == NULL) return MAED_E_NOMEM;
    pthread_mutex_lock(&c->lock);
    int rc = command(c, cmd, timeout_ms, r);
    pthread_mutex_unlock(&c->lock);
    free(r);
    return rc;
}

int maed_ctl_pause(maed_ctl *c, int timeout_ms) { return simple(c, "pause", timeout_ms); }

int maed_ctl_resume(maed_ctl *c, int timeout_ms) { return simple(c, "resume", timeout_ms); }

int maed_ctl_request_json(maed_ctl *c, const char *request, int timeout_ms, char *reply_buf, int capacity) {
    if (c == NULL || request == NULL || request[0] != '{' || reply_buf == NULL || capacity < 1) return MAED_E_ARG;
    pthread_mutex_lock(&c->lock);
    zmq_msg_t reply;
    int rc = exchange(c, request, strlen(request), timeout_ms, &reply);
    if (rc == MAED_OK) {
        size_t n = zmq_msg_size(&reply);
        if (n >= (size_t)capacity) {
            reply_buf[0] = '\0';
            rc = MAED_E_SIZE;
        } else if (memchr(zmq_msg_data(&reply), '\0', n) != NULL) {
            reply_buf[0] = '\0';
            rc = MAED_E_PROTOCOL;  /* not text */
        } else {
            memcpy(reply_buf, zmq_msg_data(&reply), n);
            reply_buf[n] = '\0';
        }
        zmq_msg_close(&reply);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int maed_ctl_error(maed_ctl *c, char *message, int capacity) {
    if (c == NULL) return MAED_E_ARG;
    pthread_mutex_lock(&c->lock);
    int rc = maed_copy_out(c->error, message, capacity);
    pthread_mutex_unlock(&c->lock);
    return rc;
}
