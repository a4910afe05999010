/*
 * common.c: status codes, the protocol version, clocks, string and float copies of libmaed_client.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>

#include "internal.h"
#include "maed_client.h"
#include "wire.h"

int maed_protocol_version(void) { return WIRE_VERSION; }

const char *maed_strerror(int status) {
    switch (status) {
    case MAED_OK: return "ok (or, from maed_sub_next, nothing arrived in time)";
    case MAED_E_ARG: return "an argument is missing, out of range or inconsistent";
    case MAED_E_ZMQ: return "ZeroMQ refused (an endpoint that is not tcp://HOST:PORT, or a socket error)";
    case MAED_E_PROTOCOL: return "a malformed message, or one of another protocol version (dropped)";
    case MAED_E_SIZE: return "the buffer is too small";
    case MAED_E_FULL: return "the push queue is full: nothing was queued";
    case MAED_E_KEYS: return "a key file is missing or not a key file of maed keys, or libzmq lacks CURVE";
    case MAED_E_NOMEM: return "out of memory";
    case MAED_E_REFUSED: return "the bridge refused the request (maed_ctl_error says why)";
    case MAED_E_STATE: return "not now: no scan started, or the held message is of another kind";
    case MAED_E_TIMEOUT: return "no reply in time";
    default:
        if (status >= MAED_EVENT_FRAME_RAW && status <= MAED_EVENT_SCAN_FINISHED) return "a message arrived";
        return "unknown status";
    }
}

int64_t maed_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double maed_unix_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);  /* not C11's timespec_get: mingw-w64's C runtime may lack it */
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int64_t maed_deadline(int timeout_ms) { return timeout_ms < 0 ? -1 : maed_now_ms() + timeout_ms; }

long maed_left_ms(int64_t deadline) {
    if (deadline < 0) return -1;
    int64_t left = deadline - maed_now_ms();
    return left > 0 ? (long)left : 0;
}

int maed_copy_out(const char *src, char *dst, int capacity) {
    if (dst == NULL || capacity < 1) return MAED_E_ARG;
    size_t n = strlen(src);
    if (n >= (size_t)capacity) {
        dst[0] = '\0';
        return MAED_E_SIZE;
    }
    memcpy(dst, src, n + 1);
    return MAED_OK;
}

static int little_endian(void) {
    const uint16_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static void copy_swapped(uint8_t *dst, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) dst[4 * i + k] = src[4 * i + 3 - k];
}

void maed_floats_from_le(float *dst, const void *src, size_t n) {
    if (little_endian()) memcpy(dst, src, n * sizeof(float));
    else copy_swapped((uint8_t *)dst, (const uint8_t *)src, n);
}

void maed_floats_to_le(void *dst, const float *src, size_t n) {
    if (little_endian()) memcpy(dst, src, n * sizeof(float));
    else copy_swapped((uint8_t *)dst, (const uint8_t *)src, n);
}
