/*
 * maed_subscriber: a C subscriber of the MAED-RT bridge (wire protocol v2, bridge/PROTOCOL.md).
 *
 * The stand-in for a LabVIEW program: it subscribes to the bridge's PUB socket (topics
 * frame.raw, frame.denoised, alert and scan.finished), parses each msgpack header with msgpack-c,
 * checks the protocol version (the integer 2), checks the payload against the header's dtype and
 * shape, and reads the frame with a plain cast to float (little-endian float32, C order). It
 * prints one line per message and exits after COUNT finished scans (default 1).
 *
 *   maed_subscriber [--secret-key FILE --server-key FILE] [ENDPOINT [COUNT]]
 *                                          (ENDPOINT default tcp://127.0.0.1:5571)
 *
 * With keys, it connects with ZeroMQ CURVE to a bridge that has keys (maed serve --secret-key):
 * FILE are the key files of maed keys, this client's NAME.key_secret and the bridge's NAME.key.
 *
 * Build: cc -O2 -Wall -o maed_subscriber maed_subscriber.c -lzmq -lmsgpackc
 * Exit status: 0 when COUNT scans finished, 1 on a malformed message or another protocol version,
 * 2 on a ZeroMQ error.
 */
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MAX_PARTS 3
#define PROTOCOL_VERSION 2

typedef struct {
    char scan[257], dtype[8], pass[8], reason[16], model[128], kind[32], severity[16];
    int64_t v, seq, rows, cols, rows_done, shape[2], row, columns[2];
    int nshape, final, complete, ncolumns, nevidence;
    double latency_ms;
} header_t;

static int key_is(const msgpack_object_kv *kv, const char *key) {
    return kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
           memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) == 0;
}

static void copy_str(const msgpack_object *o, char *dst, size_t cap) {
    size_t n = 0;
    if (o->type == MSGPACK_OBJECT_STR) {
        n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
        memcpy(dst, o->via.str.ptr, n);
    }
    dst[n] = '\0';
}

static int64_t as_int(const msgpack_object *o) {
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (int64_t)o->via.u64;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return o->via.i64;
    return -1;
}

/* Copy the 40-character Z85 key of `name = "..."` in a key file of maed keys (ZeroMQ's certificate
 * format) into key (41 bytes); 0 on success, -1 when the file or the line is missing. */
static int read_key(const char *path, const char *name, char *key) {
    FILE *f = fopen(path, "r");
    char line[512];
    int found = -1;
    if (f == NULL) return -1;
    while (found != 0 && fgets(line, sizeof line, f) != NULL) {
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (strncmp(p, name, strlen(name)) != 0) continue;
        const char *open = strchr(p, '"');
        if (open != NULL && strlen(open + 1) > 40 && open[41] == '"') {
            memcpy(key, open + 1, 40);
            key[40] = '\0';
            found = 0;
        }
    }
    fclose(f);
    return found;
}

/* Make sub a CURVE client with this client's key pair and the bridge's public key; 0 on success. */
static int use_keys(void *sub, const char *secret_file, const char *server_file) {
    char public_key[41], secret_key[41], server_key[41];
    if (!zmq_has("curve")) {
        fprintf(stderr, "maed_subscriber: this libzmq was built without CURVE; keys cannot be used\n");
        return -1;
    }
    if (read_key(secret_file, "public-key", public_key) != 0 || read_key(secret_file, "secret-key", secret_key) != 0) {
        fprintf(stderr, "maed_subscriber: %s is not a secret key file of maed keys (NAME.key_secret)\n", secret_file);
        return -1;
    }
    if (read_key(server_file, "public-key", server_key) != 0) {
        fprintf(stderr, "maed_subscriber: %s is not a key file of maed keys (the bridge's NAME.key)\n", server_file);
        return -1;
    }
    if (zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, server_key, 41) != 0 ||
        zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, public_key, 41) != 0 ||
        zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, secret_key, 41) != 0) {
        fprintf(stderr, "maed_subscriber: keys refused by libzmq: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

/* Fill h from the msgpack map in buf; 0 on success, -1 if it is not a map. h->v is -1 unless
 * "v" is a msgpack integer (a boolean or a float is not). */
static int parse_header(const char *buf, size_t len, header_t *h) {
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    memset(h, 0, sizeof *h);
    h->v = -1;
    if (msgpack_unpack_next(&msg, buf, len, NULL) != MSGPACK_UNPACK_SUCCESS || msg.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&msg);
        return -1;
    }
    for (uint32_t i = 0; i < msg.data.via.map.size; i++) {
        const msgpack_object_kv *kv = &msg.data.via.map.ptr[i];
        const msgpack_object *val = &kv->val;
        if (key_is(kv, "v")) h->v = as_int(val);
        else if (key_is(kv, "scan")) copy_str(val, h->scan, sizeof h->scan);
        else if (key_is(kv, "seq")) h->seq = as_int(val);
        else if (key_is(kv, "rows")) h->rows = as_int(val);
        else if (key_is(kv, "cols")) h->cols = as_int(val);
        else if (key_is(kv, "rows_done")) h->rows_done = as_int(val);
        else if (key_is(kv, "dtype")) copy_str(val, h->dtype, sizeof h->dtype);
        else if (key_is(kv, "pass")) copy_str(val, h->pass, sizeof h->pass);
        else if (key_is(kv, "reason")) copy_str(val, h->reason, sizeof h->reason);
        else if (key_is(kv, "model")) copy_str(val, h->model, sizeof h->model);
        else if (key_is(kv, "kind")) copy_str(val, h->kind, sizeof h->kind);
        else if (key_is(kv, "severity")) copy_str(val, h->severity, sizeof h->severity);
        else if (key_is(kv, "row")) h->row = as_int(val);
        else if (key_is(kv, "evidence") && val->type == MSGPACK_OBJECT_MAP) h->nevidence = (int)val->via.map.size;
        else if (key_is(kv, "columns") && val->type == MSGPACK_OBJECT_ARRAY && val->via.array.size == 2) {
            h->ncolumns = 2;
            for (int k = 0; k < 2; k++) h->columns[k] = as_int(&val->via.array.ptr[k]);
        }
        else if (key_is(kv, "final")) h->final = val->type == MSGPACK_OBJECT_BOOLEAN && val->via.boolean;
        else if (key_is(kv, "complete")) h->complete = val->type == MSGPACK_OBJECT_BOOLEAN && val->via.boolean;
        else if (key_is(kv, "latency_ms"))
            h->latency_ms = val->type == MSGPACK_OBJECT_FLOAT64 || val->type == MSGPACK_OBJECT_FLOAT32 ? val->via.f64
                                                                                                          : (double)as_int(val);
        else if (key_is(kv, "shape") && val->type == MSGPACK_OBJECT_ARRAY && val->via.array.size <= 2) {
            h->nshape = (int)val->via.array.size;
            for (int k = 0; k < h->nshape; k++) h->shape[k] = as_int(&val->via.array.ptr[k]);
        }
    }
    msgpack_unpacked_destroy(&msg);
    return 0;
}

static int little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

int main(int argc, char **argv) {
    const char *secret_file = NULL, *server_file = NULL, *positional[2] = {NULL, NULL};
    int npositional = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--secret-key") == 0 && i + 1 < argc) {
            secret_file = argv[++i];
        } else if (strcmp(argv[i], "--server-key") == 0 && i + 1 < argc) {
            server_file = argv[++i];
        } else if (argv[i][0] == '-' || npositional == 2) {
            fprintf(stderr, "usage: maed_subscriber [--secret-key FILE --server-key FILE] [ENDPOINT [COUNT]]\n");
            return 2;
        } else {
            positional[npositional++] = argv[i];
        }
    }
    if ((secret_file == NULL) != (server_file == NULL)) {
        fprintf(stderr, "maed_subscriber: CURVE needs both --secret-key (yours) and --server-key (the bridge's)\n");
        return 2;
    }
    const char *endpoint = positional[0] ? positional[0] : "tcp://127.0.0.1:5571";
    int scans = positional[1] ? atoi(positional[1]) : 1, ended = 0, status = 0;
    if (!little_endian()) {
        fprintf(stderr, "maed_subscriber: this reader casts the little-endian payload directly; big-endian hosts must swap bytes\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    if (secret_file != NULL && use_keys(sub, secret_file, server_file) != 0) return 2;
    if (zmq_connect(sub, endpoint) != 0) {
        fprintf(stderr, "maed_subscriber: cannot connect to %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        return 2;
    }
    /* One topic per message type; frame.rows is left to clients that want it. */
    const char *topics[] = {"frame.raw", "frame.denoised", "alert", "scan.finished"};
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++) zmq_setsockopt(sub, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i]));
    while (ended < scans && status == 0) {
        zmq_msg_t part[MAX_PARTS];
        int n = 0, more = 1, extra = 0;
        while (more) {  /* read the whole message; parts beyond MAX_PARTS are discarded and flag it */
            zmq_msg_t scratch, *m = n < MAX_PARTS ? &part[n] : &scratch;
            zmq_msg_init(m);
            if (zmq_msg_recv(m, sub, 0) < 0) {
                fprintf(stderr, "maed_subscriber: receive failed: %s\n", zmq_strerror(zmq_errno()));
                return 2;
            }
            more = zmq_msg_more(m);
            if (n < MAX_PARTS) {
                n++;
            } else {
                zmq_msg_close(m);
                extra = 1;
            }
        }
        char topic[32] = {0};
        size_t tlen = zmq_msg_size(&part[0]) < sizeof topic - 1 ? zmq_msg_size(&part[0]) : sizeof topic - 1;
        memcpy(topic, zmq_msg_data(&part[0]), tlen);
        header_t h;
        if (extra || n < 2 || parse_header(zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), &h) != 0) {
            fprintf(stderr, "maed_subscriber: malformed %s message\n", topic);
            status = 1;
        } else if (h.v != PROTOCOL_VERSION) {
            if (h.v < 0)
                fprintf(stderr, "maed_subscriber: %s message without an integer protocol version 'v'; this client speaks version %d\n",
                        topic, PROTOCOL_VERSION);
            else
                fprintf(stderr, "maed_subscriber: %s message of protocol version %lld; this client speaks version %d only\n",
                        topic, (long long)h.v, PROTOCOL_VERSION);
            status = 1;
        } else if (strcmp(topic, "scan.finished") == 0) {
            printf("scan.finished scan=%s seq=%lld complete=%d reason=%s\n", h.scan, (long long)h.seq, h.complete, h.reason);
            ended++;
        } else if (strcmp(topic, "alert") == 0) {  /* scan health: the row and columns to look at, and why */
            if (n != 2 || h.kind[0] == '\0' || h.ncolumns != 2 || h.row < 0) {
                fprintf(stderr, "maed_subscriber: malformed alert message\n");
                status = 1;
            } else {
                printf("alert scan=%s seq=%lld kind=%s severity=%s row=%lld columns=%lld:%lld evidence=%d\n", h.scan,
                       (long long)h.seq, h.kind, h.severity, (long long)h.row, (long long)h.columns[0],
                       (long long)h.columns[1], h.nevidence);
            }
        } else if (n != 3 || strcmp(h.dtype, "<f4") != 0 || h.nshape != 2 || h.shape[0] != h.rows || h.shape[1] != h.cols ||
                   zmq_msg_size(&part[2]) != (size_t)(h.rows * h.cols) * sizeof(float)) {
            fprintf(stderr, "maed_subscriber: %s payload does not match its header\n", topic);
            status = 1;
        } else {
            const float *frame = (const float *)zmq_msg_data(&part[2]);  /* the LabVIEW-style type cast */
            size_t count = (size_t)(h.rows * h.cols), finite = 0;
            double sum = 0;
            for (size_t i = 0; i < count; i++)
                if (isfinite(frame[i])) finite++, sum += frame[i];
            printf("%s scan=%s seq=%lld pass=%s rows=%lld cols=%lld rows_done=%lld final=%d finite=%zu mean=%.6g latency_ms=%.3f model=%s\n",
                   topic, h.scan, (long long)h.seq, h.pass, (long long)h.rows, (long long)h.cols, (long long)h.rows_done,
                   h.final, finite, finite ? sum / finite : NAN, h.latency_ms, h.model);
        }
        fflush(stdout);
        for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
    }
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return status;
}
