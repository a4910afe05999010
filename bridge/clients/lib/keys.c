/*
 * keys.c: CURVE keys for libmaed_client's sockets, read from the key files of maed keys (ZeroMQ's
 * certificate format: `public-key = "<40 Z85 characters>"`, and `secret-key = ...` in NAME.key_secret).
 */
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "internal.h"
#include "maed_client.h"

static int given(const char *path) { return path != NULL && path[0] != '\0'; }

int maed_keys_given(const char *secret_key_file, const char *server_key_file) {
    if (given(secret_key_file) != given(server_key_file)) return -1;
    return given(secret_key_file);
}

/* Copy the 40-character Z85 key of `name = "..."` into key (41 bytes); 0, or -1 when missing. */
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

int maed_keys_apply(void *socket, const char *secret_key_file, const char *server_key_file) {
    char public_key[41], secret_key[41], server_key[41];
    if (!zmq_has("curve")) return MAED_E_KEYS;
    if (read_key(secret_key_file, "public-key", public_key) != 0 || read_key(secret_key_file, "secret-key", secret_key) != 0 ||
        read_key(server_key_file, "public-key", server_key) != 0)
        return MAED_E_KEYS;
    int rc = zmq_setsockopt(socket, ZMQ_CURVE_SERVERKEY, server_key, 41) != 0 ||
             zmq_setsockopt(socket, ZMQ_CURVE_PUBLICKEY, public_key, 41) != 0 ||
             zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, secret_key, 41) != 0;
    memset(secret_key, 0, sizeof secret_key);
    return rc ? MAED_E_KEYS : MAED_OK;
}
