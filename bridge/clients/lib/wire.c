/*
 * wire.c: reading the bridge's published headers and writing the controller's (wire.h).
 */
#include "wire.h"

#include <string.h>

#include "mp.h"

/* Copy a string item into dst (cap bytes): -1 when it is not a string, does not fit, or holds a NUL (which would
 * cut it short here: "s1\0evil" read as scan "s1", "<f4\0x" as a dtype the bridge never sends). */
static int str_field(const mp_item *it, char *dst, size_t cap) {
    if (it->type != MP_STR || it->n >= cap || memchr(it->s, 0, it->n) != NULL) return -1;
    memcpy(dst, it->s, it->n);
    dst[it->n] = '\0';
    return 0;
}

static int int_field(const mp_item *it, int64_t *dst) {
    if (it->type != MP_INT) return -1;
    *dst = it->i;
    return 0;
}

/* An array of at most max integers (shape, columns): the count into *n. */
static int int_array(mp_reader *r, const mp_item *it, int64_t *dst, int max, int *n) {
    if (it->type != MP_ARRAY || it->n > (uint32_t)max) return -1;
    for (uint32_t k = 0; k < it->n; k++) {
        mp_item e;
        if (mp_next(r, &e) != 0 || int_field(&e, &dst[k]) != 0) return -1;
    }
    *n = (int)it->n;
    return 0;
}

static int number_array(mp_reader *r, const mp_item *it, double *dst, int max, int *n) {
    if (it->type != MP_ARRAY || it->n > (uint32_t)max) return -1;
    for (uint32_t k = 0; k < it->n; k++) {
        mp_item e;
        if (mp_next(r, &e) != 0 || mp_number(&e, &dst[k]) != 0) return -1;
    }
    *n = (int)it->n;
    return 0;
}

/* trust: null, or a map whose "output" is a string; the rest is skipped. */
static int trust_field(mp_reader *r, const mp_item *it, char *dst, size_t cap) {
    dst[0] = '\0';  /* a repeated key replaces the earlier value, as every other msgpack reader takes it */
    if (it->type == MP_NIL) return 0;
    if (it->type != MP_MAP) return -1;
    for (uint32_t k = 0; k < it->n; k++) {
        mp_item key, val;
        if (mp_next(r, &key) != 0 || key.type != MP_STR || mp_next(r, &val) != 0) return -1;
        if (mp_str_is(&key, "output")) {
            if (str_field(&val, dst, cap) != 0) return -1;
        } else if (mp_skip_rest(r, &val) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The "value" of an entry of trace_retrace (a map): into *dst, *found set; other keys skipped. */
static int error_value(mp_reader *r, const mp_item *it, double *dst, int *found) {
    if (it->type != MP_MAP) return mp_skip_rest(r, it);
    for (uint32_t k = 0; k < it->n; k++) {
        mp_item key, val;
        if (mp_next(r, &key) != 0 || key.type != MP_STR || mp_next(r, &val) != 0) return -1;
        if (mp_str_is(&key, "value")) {
            if (mp_number(&val, dst) != 0) return -1;
            *found = 1;
        } else if (mp_skip_rest(r, &val) != 0) {
            return -1;
        }
    }
    return 0;
}

/* trace_retrace: a map (never null: the bridge leaves it out instead) of "model", "classical", "raw" (each a map
 * with a number "value") and other keys, skipped. */
static int trace_retrace_field(mp_reader *r, const mp_item *it, wire_header *h) {
    static const char *names[3] = {"model", "classical", "raw"};
    int found[3] = {0, 0, 0};
    if (it->type != MP_MAP) return -1;
    for (uint32_t k = 0; k < it->n; k++) {
        mp_item key, val;
        if (mp_next(r, &key) != 0 || key.type != MP_STR || mp_next(r, &val) != 0) return -1;
        int known = -1;
        for (int j = 0; j < 3; j++)
            if (mp_str_is(&key, names[j])) known = j;
        if (known >= 0 ? error_value(r, &val, &h->trace_retrace[known], &found[known]) != 0 : mp_skip_rest(r, &val) != 0)
            return -1;
    }
    h->has_trace_retrace = found[0] && found[1] && found[2];
    return 0;
}

/* evidence: a map of figures; "late" (a number) 1 marks an alert found once its scan ended, "recovered" 1 one found
 * again on lines a restarted bridge rebuilt; the rest is skipped. */
static int evidence_field(mp_reader *r, const mp_item *it, int *late, int *recovered) {
    *late = *recovered = 0;  /* a repeated key replaces the earlier value */
    if (it->type != MP_MAP) return -1;
    for (uint32_t k = 0; k < it->n; k++) {
        mp_item key, val;
        double value;
        if (mp_next(r, &key) != 0 || key.type != MP_STR || mp_next(r, &val) != 0) return -1;
        if (mp_str_is(&key, "late") || mp_str_is(&key, "recovered")) {
            if (mp_number(&val, &value) != 0) return -1;
            *(mp_str_is(&key, "late") ? late : recovered) = value == 1.0;
        } else if (mp_skip_rest(r, &val) != 0) {
            return -1;
        }
    }
    return 0;
}

static int boolean(const mp_item *it, int *dst) {
    if (it->type != MP_BOOL) return -1;
    *dst = it->b;
    return 0;
}

int wire_parse(const void *buf, size_t len, wire_header *h) {
    memset(h, 0, sizeof *h);
    h->v = h->seq = h->rows = h->cols = h->rows_done = h->row = h->row_start = h->row_stop = h->journaled_seq = -1;
    if (len > WIRE_MAX_HEADER) return -1;
    mp_reader r = {(const uint8_t *)buf, (const uint8_t *)buf + len};
    mp_item map;
    if (mp_next(&r, &map) != 0 || map.type != MP_MAP) return -1;
    for (uint32_t k = 0; k < map.n; k++) {
        mp_item key, val;
        if (mp_next(&r, &key) != 0 || key.type != MP_STR || mp_next(&r, &val) != 0) return -1;
        int bad = 0;
        /* A bool or a float is not the integer 2; a container is skipped whole, or its items would be read as keys. */
        if (mp_str_is(&key, "v")) {
            h->v = val.type == MP_INT ? val.i : -1;
            bad = mp_skip_rest(&r, &val);
        }
        else if (mp_str_is(&key, "scan")) bad = str_field(&val, h->scan, sizeof h->scan);
        else if (mp_str_is(&key, "seq")) bad = int_field(&val, &h->seq);
        else if (mp_str_is(&key, "rows")) bad = int_field(&val, &h->rows);
        else if (mp_str_is(&key, "cols")) bad = int_field(&val, &h->cols);
        else if (mp_str_is(&key, "rows_done")) bad = int_field(&val, &h->rows_done);
        else if (mp_str_is(&key, "row")) bad = int_field(&val, &h->row);
        else if (mp_str_is(&key, "row_start")) bad = int_field(&val, &h->row_start);
        else if (mp_str_is(&key, "row_stop")) bad = int_field(&val, &h->row_stop);
        else if (mp_str_is(&key, "journaled_seq")) bad = int_field(&val, &h->journaled_seq);
        else if (mp_str_is(&key, "shape")) bad = int_array(&r, &val, h->shape, 2, &h->nshape);
        else if (mp_str_is(&key, "columns")) bad = int_array(&r, &val, h->columns, 2, &h->ncolumns);
        else if (mp_str_is(&key, "plane")) bad = number_array(&r, &val, h->plane, 3, &h->nplane);
        else if (mp_str_is(&key, "range")) bad = number_array(&r, &val, h->range, 2, &h->nrange);
        else if (mp_str_is(&key, "final")) bad = boolean(&val, &h->final);
        else if (mp_str_is(&key, "complete")) bad = boolean(&val, &h->complete);
        else if (mp_str_is(&key, "dtype")) bad = str_field(&val, h->dtype, sizeof h->dtype);
        else if (mp_str_is(&key, "pass")) bad = str_field(&val, h->pass, sizeof h->pass);
        else if (mp_str_is(&key, "slow_axis")) bad = str_field(&val, h->slow_axis, sizeof h->slow_axis);
        else if (mp_str_is(&key, "unit")) bad = str_field(&val, h->unit, sizeof h->unit);
        else if (mp_str_is(&key, "channel")) bad = str_field(&val, h->channel, sizeof h->channel);
        else if (mp_str_is(&key, "kind")) bad = str_field(&val, h->kind, sizeof h->kind);
        else if (mp_str_is(&key, "severity")) bad = str_field(&val, h->severity, sizeof h->severity);
        else if (mp_str_is(&key, "reason")) bad = str_field(&val, h->reason, sizeof h->reason);
        else if (mp_str_is(&key, "trust")) bad = trust_field(&r, &val, h->trust, sizeof h->trust);
        else if (mp_str_is(&key, "trace_retrace")) bad = trace_retrace_field(&r, &val, h);
        else if (mp_str_is(&key, "evidence")) bad = evidence_field(&r, &val, &h->late, &h->recovered);
        else bad = mp_skip_rest(&r, &val);  /* keys this library does not use: ignored, as the protocol asks */
        if (bad) {
            size_t n = key.n < sizeof h->refused - 1 ? key.n : sizeof h->refused - 1;
            for (size_t j = 0; j < n; j++)  /* one printable line, whatever the key holds */
                h->refused[j] = key.s[j] >= 0x20 && key.s[j] < 0x7f ? key.s[j] : '?';
            h->refused[n] = '\0';
            return -1;
        }
    }
    return r.p == r.end ? 0 : -1;  /* bytes after the map: no msgpack reader of the bridge's takes such a header */
}

static void common(mp_writer *w, uint32_t fields, const char *scan, int64_t seq) {
    mp_w_map(w, fields + 3);
    mp_w_str(w, "v");
    mp_w_int(w, WIRE_VERSION);
    mp_w_str(w, "scan");
    mp_w_str(w, scan);
    mp_w_str(w, "seq");
    mp_w_int(w, seq);
}

size_t wire_scan_start(uint8_t *buf, size_t cap, const char *scan, int64_t seq, int rows, int cols,
                       const char *channel, const char *unit, double width, double height, int slow_axis_up) {
    mp_writer w = {buf, cap, 0, 0};
    common(&w, 6, scan, seq);
    mp_w_str(&w, "rows");
    mp_w_int(&w, rows);
    mp_w_str(&w, "cols");
    mp_w_int(&w, cols);
    mp_w_str(&w, "channel");
    mp_w_str(&w, channel);
    mp_w_str(&w, "unit");
    mp_w_str(&w, unit);
    mp_w_str(&w, "range");
    mp_w_array(&w, 2);
    mp_w_double(&w, width);
    mp_w_double(&w, height);
    mp_w_str(&w, "slow_axis");
    mp_w_str(&w, slow_axis_up ? "up" : "down");
    return w.overflow ? 0 : w.len;
}

size_t wire_line(uint8_t *buf, size_t cap, const char *scan, int64_t seq, int row, int retrace, double t, int cols) {
    mp_writer w = {buf, cap, 0, 0};
    common(&w, 5, scan, seq);
    mp_w_str(&w, "row");
    mp_w_int(&w, row);
    mp_w_str(&w, "pass");
    mp_w_str(&w, retrace ? "retrace" : "trace");
    mp_w_str(&w, "t");
    mp_w_double(&w, t);
    mp_w_str(&w, "dtype");
    mp_w_str(&w, "<f4");
    mp_w_str(&w, "shape");
    mp_w_array(&w, 1);
    mp_w_int(&w, cols);
    return w.overflow ? 0 : w.len;
}

size_t wire_scan_end(uint8_t *buf, size_t cap, const char *scan, int64_t seq, int complete) {
    mp_writer w = {buf, cap, 0, 0};
    common(&w, 1, scan, seq);
    mp_w_str(&w, "complete");
    mp_w_bool(&w, complete);
    return w.overflow ? 0 : w.len;
}
