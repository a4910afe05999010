/*
 * internal.h: what the parts of libmaed_client share and do not export: CURVE keys, clocks,
 * copying strings out to a caller, and a ZeroMQ context per handle.
 */
#ifndef MAED_INTERNAL_H
#define MAED_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Both key files given (non-empty): 1; neither: 0; only one: -1. */
int maed_keys_given(const char *secret_key_file, const char *server_key_file);
/* Make socket a CURVE client with the key pair in secret_key_file (NAME.key_secret of maed keys)
 * and the bridge's public key in server_key_file (NAME.key): MAED_OK or MAED_E_KEYS. */
int maed_keys_apply(void *socket, const char *secret_key_file, const char *server_key_file);

/* Milliseconds of a monotonic clock; seconds since the Unix epoch. */
int64_t maed_now_ms(void);
double maed_unix_time(void);
/* Milliseconds left before deadline (-1 when deadline is -1: forever), at least 0. */
long maed_left_ms(int64_t deadline);
/* The deadline of a timeout in ms (-1: forever). */
int64_t maed_deadline(int timeout_ms);

/* Copy the NUL-terminated src into dst of capacity bytes: MAED_OK, or MAED_E_SIZE (dst gets "")
 * or MAED_E_ARG (dst NULL or capacity < 1). */
int maed_copy_out(const char *src, char *dst, int capacity);

/* Copy n little-endian float32 values from src into dst (any alignment; swapped on big-endian hosts). */
void maed_floats_from_le(float *dst, const void *src, size_t n);
void maed_floats_to_le(void *dst, const float *src, size_t n);

#endif
