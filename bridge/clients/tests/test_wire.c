/*
 * test_wire.c: libmaed_client's msgpack reader and header checks against hostile input, and its
 * push queue's budget and acknowledgements; no bridge, no socket. Every malformed header must be
 * refused without reading outside its buffer (run it under valgrind to see that too).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"
#include "outbox.h"
#include "wire.h"

static int failures = 0;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "test_wire: %s:%d: failed: %s\n", __FILE__, __LINE__, #cond);   \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

/* Parse a copy of exactly len bytes (a heap block of that size, so valgrind sees any overrun). */
static int parse(const uint8_t *bytes, size_t len, wire_header *h) {
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, bytes, len);
    int rc = wire_parse(copy, len, h);
    free(copy);
    return rc;
}

static size_t header_with(uint8_t *buf, size_t cap, const char *key, const uint8_t *value, size_t value_len) {
    mp_writer w = {buf, cap, 0, 0};
    mp_w_map(&w, 3);
    mp_w_str(&w, "v");
    mp_w_int(&w, 2);
    mp_w_str(&w, "scan");
    mp_w_str(&w, "s");
    mp_w_str(&w, key);
    if (w.len + value_len > cap) return 0;
    memcpy(buf + w.len, value, value_len);
    return w.len + value_len;
}

int main(void) {
    uint8_t buf[4096];
    wire_header h;

    /* A header written by the library reads back. */
    size_t n = wire_line(buf, sizeof buf, "scan-1", 41, 7, 1, 1.5, 256);
    CHECK(n > 0 && parse(buf, n, &h) == 0);
    CHECK(h.v == 2 && h.seq == 41 && h.row == 7 && strcmp(h.scan, "scan-1") == 0 && strcmp(h.pass, "retrace") == 0 &&
          h.nshape == 1 && h.shape[0] == 256 && strcmp(h.dtype, "<f4") == 0);
    n = wire_scan_start(buf, sizeof buf, "s", 0, 4096, 3, "Current", "A", 1e-8, 2e-8, 1);
    CHECK(n > 0 && parse(buf, n, &h) == 0 && h.rows == 4096 && h.cols == 3 && h.nrange == 2 && h.range[1] == 2e-8 &&
          strcmp(h.unit, "A") == 0 && strcmp(h.slow_axis, "up") == 0);
    CHECK(wire_scan_end(buf, 8, "s", 0, 1) == 0);  /* does not fit: refused, not cut */

    /* Every prefix of a valid header is refused, none read beyond its length. */
    n = wire_scan_start(buf, sizeof buf, "scan-2", 5, 16, 16, "Z", "m", 1e-8, 1e-8, 0);
    int prefixes_refused = 1;
    for (size_t len = 0; len < n; len++) prefixes_refused &= parse(buf, len, &h) != 0;
    CHECK(prefixes_refused);

    /* Declared lengths beyond the buffer, nesting without end, wrong types. */
    static const uint8_t huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t huge_str[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t never_used[] = {0xc1};
    static const uint8_t true_v[] = {0xc3};
    static const uint8_t float_2[] = {0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t shape3[] = {0x93, 1, 2, 3};
    static const uint8_t big_uint[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t columns_str[] = {0x92, 0xa1, 'a', 1};
    struct { const char *key; const uint8_t *value; size_t len; } bad[] = {
        {"shape", huge_array, sizeof huge_array}, {"unknown", huge_array, sizeof huge_array},
        {"scan", huge_str, sizeof huge_str}, {"unknown", huge_map, sizeof huge_map},
        {"unknown", never_used, sizeof never_used},
        {"shape", shape3, sizeof shape3}, {"seq", big_uint, sizeof big_uint}, {"columns", columns_str, sizeof columns_str},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len = header_with(buf, sizeof buf, bad[i].key, bad[i].value, bad[i].len);
        CHECK(len > 0 && parse(buf, len, &h) != 0);
    }
    /* A v that is not a msgpack integer reads as -1, for the caller to refuse with its reason. */
    size_t len = header_with(buf, sizeof buf, "v", true_v, sizeof true_v);
    CHECK(parse(buf, len, &h) == 0 && h.v == -1);
    len = header_with(buf, sizeof buf, "v", float_2, sizeof float_2);
    CHECK(parse(buf, len, &h) == 0 && h.v == -1);
    uint8_t deep[2048];
    memset(deep, 0x91, sizeof deep);  /* [[[[...]]]]: 2048 levels, each declaring one element */
    n = header_with(buf, sizeof buf, "unknown", deep, sizeof deep);
    CHECK(n > 0 && parse(buf, n, &h) != 0);
    uint8_t long_scan[3 + WIRE_MAX_TEXT + 1];
    memset(long_scan, 'x', sizeof long_scan);
    long_scan[0] = 0xda, long_scan[1] = 4, long_scan[2] = 1;  /* a scan id of 1025 bytes: one too many */
    mp_writer w = {buf, sizeof buf, 0, 0};
    mp_w_map(&w, 1);
    mp_w_str(&w, "scan");
    memcpy(buf + w.len, long_scan, 3 + 1025);
    CHECK(parse(buf, w.len + 3 + 1025, &h) != 0 && strcmp(h.refused, "scan") == 0);
    long_scan[2] = 0;  /* 1024 bytes: 256 characters of 4 bytes in UTF-8, the most a scan id may have */
    memcpy(buf + w.len, long_scan, 3 + 1024);
    CHECK(parse(buf, w.len + 3 + 1024, &h) == 0 && strlen(h.scan) == 1024);
    static const uint8_t int_key[] = {0x81, 0x01, 0x02};
    CHECK(parse(int_key, sizeof int_key, &h) != 0);
    static const uint8_t not_a_map[] = {0x92, 0x01, 0x02};
    CHECK(parse(not_a_map, sizeof not_a_map, &h) != 0);
    /* Unknown keys of any shape are skipped; the known ones still read. */
    static const uint8_t nested[] = {0x81, 0xa1, 'x', 0x81, 0xa1, 'y', 0x92, 0xc0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0};
    n = header_with(buf, sizeof buf, "extra", nested, sizeof nested);
    CHECK(parse(buf, n, &h) == 0 && h.v == 2 && strcmp(h.scan, "s") == 0);

    /* trace_retrace: the value of each of model, classical and raw; a skipped figure leaves it absent. */
    uint8_t figures[256];
    mp_writer f = {figures, sizeof figures, 0, 0};
    mp_w_map(&f, 4);
    mp_w_str(&f, "rows");
    mp_w_int(&f, 128);
    const char *names[3] = {"model", "classical", "raw"};
    const double values[3] = {1e-13, 2e-13, 3e-13};
    for (int j = 0; j < 3; j++) {
        mp_w_str(&f, names[j]);
        mp_w_map(&f, 2);
        mp_w_str(&f, "value");
        mp_w_double(&f, values[j]);
        mp_w_str(&f, "low");
        mp_w_double(&f, 0.5e-13);
    }
    n = header_with(buf, sizeof buf, "trace_retrace", figures, f.len);
    CHECK(parse(buf, n, &h) == 0 && h.has_trace_retrace == 1 && h.trace_retrace[0] == 1e-13 &&
          h.trace_retrace[1] == 2e-13 && h.trace_retrace[2] == 3e-13);
    f.len = 0;
    mp_w_map(&f, 1);
    mp_w_str(&f, "skipped");
    mp_w_str(&f, "scan larger than 262144 pixels");
    n = header_with(buf, sizeof buf, "trace_retrace", figures, f.len);
    CHECK(parse(buf, n, &h) == 0 && h.has_trace_retrace == 0);
    static const uint8_t value_str[] = {0x81, 0xa5, 'm', 'o', 'd', 'e', 'l', 0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0xa1, 'x'};
    n = header_with(buf, sizeof buf, "trace_retrace", value_str, sizeof value_str);
    CHECK(parse(buf, n, &h) != 0);  /* a value that is not a number */
    static const uint8_t nil[] = {0xc0};
    n = header_with(buf, sizeof buf, "trace_retrace", nil, sizeof nil);
    CHECK(parse(buf, n, &h) != 0);  /* null: refused, as the Python decoder refuses it */

    /* evidence: "late" 1 marks an alert found once its scan ended; other figures skipped; not a map: refused. */
    f.len = 0;
    mp_w_map(&f, 2);
    mp_w_str(&f, "z");
    mp_w_double(&f, 7.5);
    mp_w_str(&f, "late");
    mp_w_int(&f, 1);
    n = header_with(buf, sizeof buf, "evidence", figures, f.len);
    CHECK(parse(buf, n, &h) == 0 && h.late == 1);
    f.len = 0;
    mp_w_map(&f, 1);
    mp_w_str(&f, "z");
    mp_w_double(&f, 7.5);
    n = header_with(buf, sizeof buf, "evidence", figures, f.len);
    CHECK(parse(buf, n, &h) == 0 && h.late == 0);
    n = header_with(buf, sizeof buf, "evidence", nil, sizeof nil);
    CHECK(parse(buf, n, &h) != 0);

    /* Read as the bridge's Python decoder reads them (found by fuzzing under sanitizers, 2026-12-07). A container as
     * v is skipped whole: its items are not read as keys ({"v": ["v", 2, "scan", "evil"], ...} read as scan "evil"). */
    static const uint8_t v_array[] = {0x83, 0xa1, 'v', 0x94, 0xa1, 'v', 0x02, 0xa4, 's', 'c', 'a', 'n', 0xa4, 'e', 'v', 'i', 'l',
                                      0xa3, 's', 'e', 'q', 0x00, 0xa4, 's', 'c', 'a', 'n', 0xa1, 's'};
    CHECK(parse(v_array, sizeof v_array, &h) == 0 && h.v == -1 && strcmp(h.scan, "s") == 0);
    /* Bytes after the map: no header of the bridge's. */
    n = wire_scan_end(buf, sizeof buf, "s", 0, 1);
    buf[n] = 0xc0;
    CHECK(parse(buf, n, &h) == 0 && parse(buf, n + 1, &h) != 0);
    /* A NUL inside a string would cut it here: "s1\0evil" is not the scan "s1". */
    static const uint8_t nul_scan[] = {0xa7, 's', '1', 0, 'e', 'v', 'i', 'l'};
    mp_writer nw = {buf, sizeof buf, 0, 0};
    mp_w_map(&nw, 1);
    mp_w_str(&nw, "scan");
    memcpy(buf + nw.len, nul_scan, sizeof nul_scan);
    CHECK(parse(buf, nw.len + sizeof nul_scan, &h) != 0 && strcmp(h.refused, "scan") == 0);
    /* A repeated evidence replaces the earlier one: {"late": 1} then {} is not late. */
    f.len = 0;
    mp_w_map(&f, 2);
    mp_w_str(&f, "evidence");
    mp_w_map(&f, 1);
    mp_w_str(&f, "late");
    mp_w_int(&f, 1);
    mp_w_str(&f, "evidence");
    mp_w_map(&f, 0);
    CHECK(parse(figures, f.len, &h) == 0 && h.late == 0);
    /* The refused key (here one whose value nests past the reader's depth) is said on one printable line. */
    uint8_t odd_key[5 + 40] = {0x81, 0xa3, '\n', 0x1b, 'k'};
    memset(odd_key + 5, 0x91, 40);
    CHECK(parse(odd_key, sizeof odd_key, &h) != 0 && strcmp(h.refused, "??k") == 0);

    /* Random bytes and random corruptions of a valid header: refused or read, never a crash. */
    srand(16);
    size_t valid = wire_scan_start(buf, sizeof buf, "scan-3", 9, 64, 64, "Z", "m", 1e-8, 1e-8, 0);
    uint8_t fuzz[512];
    for (int round = 0; round < 20000; round++) {
        size_t len = valid;
        memcpy(fuzz, buf, valid);
        for (int k = 0; k < 1 + rand() % 4; k++) fuzz[rand() % len] = (uint8_t)rand();
        if (round % 2) len = (size_t)rand() % valid;
        parse(fuzz, len, &h);
    }

    /* The push queue: a budget in bytes, acknowledgements of its own scans only, in seq order. */
    outbox o = {0};
    uint8_t header[16] = {0};
    float line[64] = {0};
    outbox_msg *m = outbox_msg_new("a", 0, "line", header, sizeof header, line, sizeof line);
    o.budget = 3 * m->bytes;
    CHECK(outbox_push(&o, m) == 0);
    for (int seq = 1; seq < 4; seq++) {
        m = outbox_msg_new("a", seq, "line", header, sizeof header, line, sizeof line);
        if (outbox_push(&o, m) != 0) {
            CHECK(seq == 3);  /* the fourth does not fit */
            free(m);
        }
    }
    CHECK(o.count == 3 && o.unsent == o.head);
    o.unsent = NULL;                                       /* all sent */
    CHECK(outbox_ack(&o, "b", 10) == 0 && o.count == 3);  /* another sender's scan */
    CHECK(outbox_ack(&o, "a", 1) == 2 && o.count == 1 && o.head->seq == 2);
    outbox_clear(&o);
    CHECK(o.count == 0 && o.bytes == 0 && o.head == NULL && o.tail == NULL);

    if (failures) fprintf(stderr, "test_wire: %d checks failed\n", failures);
    else printf("test_wire: every check passed\n");
    return failures ? 1 : 0;
}
