/*
 * mp.c: the bounded msgpack reader and the fixed-buffer writer of mp.h (big-endian on the wire,
 * whatever the host).
 */
#include "mp.h"

#include <string.h>

#define MAX_DEPTH 32

static int take(mp_reader *r, size_t n, const uint8_t **at) {
    if ((size_t)(r->end - r->p) < n) return -1;
    *at = r->p;
    r->p += n;
    return 0;
}

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int k = 0; k < n; k++) v = v << 8 | p[k];
    return v;
}

/* A length-prefixed item (str, bin, ext) of n bytes after the prefix. */
static int bytes(mp_reader *r, mp_item *it, int type, uint64_t n) {
    const uint8_t *at;
    if (take(r, (size_t)n, &at) != 0) return -1;
    it->type = type;
    it->s = (const char *)at;
    it->n = (uint32_t)n;
    return 0;
}

/* A container of n elements (pairs for a map): each needs at least one byte (two a pair), so a
 * count beyond the bytes left is refused here. */
static int container(mp_reader *r, mp_item *it, int type, uint64_t n) {
    uint64_t need = type == MP_MAP ? 2 * n : n;
    if (need > (uint64_t)(r->end - r->p)) return -1;
    it->type = type;
    it->n = (uint32_t)n;
    return 0;
}

int mp_next(mp_reader *r, mp_item *it) {
    const uint8_t *at;
    memset(it, 0, sizeof *it);
    if (take(r, 1, &at) != 0) return -1;
    uint8_t c = *at;
    if (c <= 0x7f) { it->type = MP_INT; it->i = c; return 0; }
    if (c >= 0xe0) { it->type = MP_INT; it->i = (int8_t)c; return 0; }
    if ((c & 0xf0) == 0x80) return container(r, it, MP_MAP, c & 0x0f);
    if ((c & 0xf0) == 0x90) return container(r, it, MP_ARRAY, c & 0x0f);
    if ((c & 0xe0) == 0xa0) return bytes(r, it, MP_STR, c & 0x1f);
    static const int width[] = {1, 2, 4, 8};
    switch (c) {
    case 0xc0: it->type = MP_NIL; return 0;
    case 0xc2: case 0xc3: it->type = MP_BOOL; it->b = c == 0xc3; return 0;
    case 0xc4: case 0xc5: case 0xc6:
    case 0xd9: case 0xda: case 0xdb: {
        int w = width[c >= 0xd9 ? c - 0xd9 : c - 0xc4];
        if (take(r, (size_t)w, &at) != 0) return -1;
        return bytes(r, it, c >= 0xd9 ? MP_STR : MP_BIN, be(at, w));
    }
    case 0xc7: case 0xc8: case 0xc9: {  /* ext 8/16/32: length, type byte, data */
        int w = width[c - 0xc7];
        if (take(r, (size_t)w + 1, &at) != 0) return -1;
        return bytes(r, it, MP_EXT, be(at, w));
    }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:  /* fixext 1..16: type byte, data */
        if (take(r, 1, &at) != 0) return -1;
        return bytes(r, it, MP_EXT, (uint64_t)1 << (c - 0xd4));
    case 0xca: {
        if (take(r, 4, &at) != 0) return -1;
        uint32_t u = (uint32_t)be(at, 4);
        float f;
        memcpy(&f, &u, 4);
        it->type = MP_FLOAT;
        it->f = f;
        return 0;
    }
    case 0xcb: {
        if (take(r, 8, &at) != 0) return -1;
        uint64_t u = be(at, 8);
        memcpy(&it->f, &u, 8);
        it->type = MP_FLOAT;
        return 0;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        int w = width[c - 0xcc];
        if (take(r, (size_t)w, &at) != 0) return -1;
        uint64_t u = be(at, w);
        if (u > (uint64_t)INT64_MAX) return -1;
        it->type = MP_INT;
        it->i = (int64_t)u;
        return 0;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int w = width[c - 0xd0];
        if (take(r, (size_t)w, &at) != 0) return -1;
        uint64_t u = be(at, w);
        if (w < 8 && (u >> (8 * w - 1)) & 1) u |= ~(uint64_t)0 << (8 * w);  /* sign-extend */
        it->type = MP_INT;
        it->i = (int64_t)u;
        return 0;
    }
    case 0xdc: case 0xdd: case 0xde: case 0xdf: {
        int w = c == 0xdc || c == 0xde ? 2 : 4;
        if (take(r, (size_t)w, &at) != 0) return -1;
        return container(r, it, c <= 0xdd ? MP_ARRAY : MP_MAP, be(at, w));
    }
    default:
        return -1;  /* 0xc1, never used */
    }
}

static int skip(mp_reader *r, const mp_item *it, int depth) {
    if (it->type != MP_ARRAY && it->type != MP_MAP) return 0;
    if (depth >= MAX_DEPTH) return -1;
    uint64_t count = it->type == MP_MAP ? 2 * (uint64_t)it->n : it->n;
    for (uint64_t k = 0; k < count; k++) {
        mp_item child;
        if (mp_next(r, &child) != 0 || skip(r, &child, depth + 1) != 0) return -1;
    }
    return 0;
}

int mp_skip_rest(mp_reader *r, const mp_item *it) { return skip(r, it, 0); }

int mp_number(const mp_item *it, double *out) {
    if (it->type == MP_INT) *out = (double)it->i;
    else if (it->type == MP_FLOAT) *out = it->f;
    else return -1;
    return 0;
}

int mp_str_is(const mp_item *it, const char *s) {
    return it->type == MP_STR && it->n == strlen(s) && memcmp(it->s, s, it->n) == 0;
}

static void put(mp_writer *w, const void *p, size_t n) {
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = 1;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_be(mp_writer *w, uint8_t tag, uint64_t v, int n) {
    uint8_t b[9];
    b[0] = tag;
    for (int k = 0; k < n; k++) b[1 + k] = (uint8_t)(v >> (8 * (n - 1 - k)));
    put(w, b, (size_t)n + 1);
}

void mp_w_map(mp_writer *w, uint32_t n) {
    if (n < 16) { uint8_t b = (uint8_t)(0x80 | n); put(w, &b, 1); }
    else if (n <= 0xffff) put_be(w, 0xde, n, 2);
    else put_be(w, 0xdf, n, 4);
}

void mp_w_array(mp_writer *w, uint32_t n) {
    if (n < 16) { uint8_t b = (uint8_t)(0x90 | n); put(w, &b, 1); }
    else if (n <= 0xffff) put_be(w, 0xdc, n, 2);
    else put_be(w, 0xdd, n, 4);
}

void mp_w_str(mp_writer *w, const char *s) {
    size_t n = strlen(s);
    if (n < 32) { uint8_t b = (uint8_t)(0xa0 | n); put(w, &b, 1); }
    else if (n <= 0xff) put_be(w, 0xd9, n, 1);
    else if (n <= 0xffff) put_be(w, 0xda, n, 2);
    else put_be(w, 0xdb, n, 4);
    put(w, s, n);
}

void mp_w_int(mp_writer *w, int64_t v) {
    if (v >= 0 && v <= 0x7f) { uint8_t b = (uint8_t)v; put(w, &b, 1); }
    else if (v >= 0) put_be(w, 0xcf, (uint64_t)v, 8);
    else if (v >= -32) { uint8_t b = (uint8_t)(int8_t)v; put(w, &b, 1); }
    else put_be(w, 0xd3, (uint64_t)v, 8);
}

void mp_w_double(mp_writer *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_be(w, 0xcb, u, 8);
}

void mp_w_bool(mp_writer *w, int v) {
    uint8_t b = v ? 0xc3 : 0xc2;
    put(w, &b, 1);
}
