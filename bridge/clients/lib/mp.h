/*
 * mp.h: the msgpack subset of the wire protocol, read and written without allocating.
 *
 * The reader walks a buffer item by item and checks every length against the bytes left before
 * it looks at them, so a hostile header (a declared length beyond the buffer, nesting without
 * end) is refused without a byte read out of bounds or allocated. msgpack-c's C unpacker
 * allocates a container's declared size before checking it fits, hence this reader. The writer
 * appends to a fixed buffer and flags overflow.
 */
#ifndef MAED_MP_H
#define MAED_MP_H

#include <stddef.h>
#include <stdint.h>

enum { MP_NIL, MP_BOOL, MP_INT, MP_FLOAT, MP_STR, MP_BIN, MP_ARRAY, MP_MAP, MP_EXT };

typedef struct {
    const uint8_t *p, *end;
} mp_reader;

typedef struct {
    int type;
    int64_t i;      /* MP_INT (an unsigned integer beyond INT64_MAX is refused) */
    double f;       /* MP_FLOAT (float 32 or 64) */
    int b;          /* MP_BOOL */
    const char *s;  /* MP_STR, MP_BIN, MP_EXT: the bytes, inside the buffer */
    uint32_t n;     /* MP_STR, MP_BIN, MP_EXT: their length; MP_ARRAY: elements; MP_MAP: pairs */
} mp_item;

/* Read the next item's head: scalars whole, strings with their bytes, containers with their count
 * (the reader then stands on their first element). 0 on success, -1 on malformed or short input. */
int mp_next(mp_reader *r, mp_item *it);
/* Skip the rest of an item whose head was just read (a container's elements, nested up to
 * 32 levels). 0 on success, -1 on malformed input. */
int mp_skip_rest(mp_reader *r, const mp_item *it);
/* A number as a double: MP_INT or MP_FLOAT; -1 for anything else. */
int mp_number(const mp_item *it, double *out);
/* A string item equal to the C string s. */
int mp_str_is(const mp_item *it, const char *s);

typedef struct {
    uint8_t *buf;
    size_t cap, len;
    int overflow;
} mp_writer;

void mp_w_map(mp_writer *w, uint32_t n);
void mp_w_array(mp_writer *w, uint32_t n);
void mp_w_str(mp_writer *w, const char *s);
void mp_w_int(mp_writer *w, int64_t v);
void mp_w_double(mp_writer *w, double v);
void mp_w_bool(mp_writer *w, int v);

#endif
