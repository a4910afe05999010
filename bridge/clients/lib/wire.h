/*
 * wire.h: protocol v2 headers (bridge/PROTOCOL.md) for libmaed_client: the bridge's published
 * headers read into a fixed struct with every field checked, and the controller's headers written.
 */
#ifndef MAED_WIRE_H
#define MAED_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 2
#define WIRE_MAX_SIDE 4096       /* rows and cols of a scan, at most */
#define WIRE_MAX_SCAN 256        /* bytes of a scan id this library sends, at most */
#define WIRE_MAX_TEXT 1024       /* bytes of a scan id, channel or unit it reads: 256 characters (bridge/PROTOCOL.md) of
                                  * up to 4 bytes each in UTF-8 */
#define WIRE_MAX_HEADER (1 << 20) /* bytes of one header frame, at most (ZeroMQ's own frame budget) */

/* The fields of a published header this library uses; absent ones keep the values wire_parse sets
 * (-1 for integers, empty strings, has_* 0). v is -1 unless it is a msgpack integer (a boolean or
 * a float is not the integer 2: the caller refuses it with its reason). */
typedef struct {
    int64_t v, seq, rows, cols, rows_done, row, row_start, row_stop, journaled_seq;
    int64_t shape[2], columns[2];
    int nshape, ncolumns, nplane, nrange, final, complete;
    double plane[3], range[2];
    char scan[WIRE_MAX_TEXT + 1], dtype[8], pass[8], slow_axis[8], unit[WIRE_MAX_TEXT + 1], channel[WIRE_MAX_TEXT + 1];
    char kind[64], severity[16], reason[32], trust[16];
    /* the key of the field wire_parse refused ("" when it refused no field but the header as a whole) */
    char refused[32];
    /* trace_retrace: the "value" of its "model", "classical" and "raw" entries; has_trace_retrace 1 where all
     * three came (a skipped figure or an absent field leaves it 0). */
    double trace_retrace[3];
    int has_trace_retrace;
    /* an alert's evidence: 1 where its "late" figure is 1 (found once the scan ended), else 0; the same for its
     * "recovered" figure (found again on lines a restarted bridge rebuilt from its journal) */
    int late, recovered;
} wire_header;

/* Read a header frame into h: 0 when it is a msgpack map with string keys and every known field
 * has its documented type and fits; -1 otherwise (h is then partly filled: do not use it, but for
 * h->refused, which names the field). */
int wire_parse(const void *buf, size_t len, wire_header *h);

/* The controller's headers, written into buf (cap bytes); the length, or 0 when it does not fit. */
size_t wire_scan_start(uint8_t *buf, size_t cap, const char *scan, int64_t seq, int rows, int cols,
                       const char *channel, const char *unit, double width, double height, int slow_axis_up);
size_t wire_line(uint8_t *buf, size_t cap, const char *scan, int64_t seq, int row, int retrace, double t, int cols);
size_t wire_scan_end(uint8_t *buf, size_t cap, const char *scan, int64_t seq, int complete);

#endif
