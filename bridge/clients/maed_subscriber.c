/*
 * maed_subscriber: a C subscriber of the MAED-RT bridge, a thin user of libmaed_client
 * (include/maed_client.h; wire protocol v2, bridge/PROTOCOL.md).
 *
 * The stand-in for a LabVIEW program: it subscribes to frame.raw, frame.denoised, alert and
 * scan.finished, takes each message through maed_sub_next (which refuses any protocol version
 * but the integer 2 and checks every payload against its header), prints one line per message
 * and exits after COUNT finished scans (default 1).
 *
 *   maed_subscriber [--secret-key FILE --server-key FILE] [ENDPOINT [COUNT]]
 *                                          (ENDPOINT default tcp://127.0.0.1:5571)
 *
 * With keys, it connects with ZeroMQ CURVE to a bridge that has keys (maed serve --secret-key):
 * FILE are the key files of maed keys, this client's NAME.key_secret and the bridge's NAME.key.
 *
 * Exit status: 0 when COUNT scans finished, 1 on a malformed message or another protocol version,
 * 2 on a ZeroMQ error or bad arguments.
 */
#include <math.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maed_client.h"

static const char *TOPIC[] = {"", "frame.raw", "frame.denoised", "frame.rows", "alert", "scan.finished"};
static const char *SEVERITY[] = {"info", "warning", "critical"};

/* One line for a frame: its shape, progress, and the count and mean of its finite values. */
static int print_frame(maed_sub *sub, int event, float **buffer, int *capacity) {
    int rows, cols, rows_done, final, pass = 0, rc;
    while ((rc = maed_sub_frame(sub, *buffer, *capacity, &rows, &cols, &rows_done, &final)) == MAED_E_SIZE) {
        float *bigger = realloc(*buffer, (size_t)rows * (size_t)cols * sizeof(float));
        if (bigger == NULL) return MAED_E_NOMEM;
        *buffer = bigger;
        *capacity = rows * cols;
    }
    if (rc != MAED_OK) return rc;
    char scan[257], unit[64];
    double seq = 0, sum = 0;
    size_t finite = 0;
    maed_sub_scan(sub, scan, sizeof scan);
    maed_sub_unit(sub, unit, sizeof unit);
    maed_sub_seq(sub, &seq);
    maed_sub_pass(sub, &pass);
    for (int i = 0; i < rows * cols; i++)
        if (isfinite((*buffer)[i])) finite++, sum += (*buffer)[i];
    printf("%s scan=%s seq=%.0f pass=%s rows=%d cols=%d rows_done=%d final=%d finite=%zu mean=%.6g unit=%s\n",
           TOPIC[event], scan, seq, pass == MAED_PASS_RETRACE ? "retrace" : "trace", rows, cols, rows_done, final, finite,
           finite ? sum / (double)finite : NAN, unit);
    return MAED_OK;
}

int main(int argc, char **argv) {
    const char *secret_file = "", *server_file = "", *positional[2] = {NULL, NULL};
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
    if ((secret_file[0] == '\0') != (server_file[0] == '\0')) {
        fprintf(stderr, "maed_subscriber: CURVE needs both --secret-key (yours) and --server-key (the bridge's)\n");
        return 2;
    }
    const char *endpoint = positional[0] ? positional[0] : "tcp://127.0.0.1:5571";
    int scans = 1, ended = 0, status = 0, rc;
    if (positional[1]) {
        /* Whole, positive and nothing after it: atoi took "abc" and "0" for 0 scans and ended at once, silently. */
        char *end = NULL;
        errno = 0;
        long asked = strtol(positional[1], &end, 10);
        if (errno != 0 || end == positional[1] || *end != '\0' || asked < 1 || asked > 1000000) {
            fprintf(stderr, "maed_subscriber: COUNT must be a whole number of scans from 1 to 1000000, got '%s'\n", positional[1]);
            return 2;
        }
        scans = (int)asked;
    }
    /* One topic per message type; frame.rows is left to clients that want it. */
    maed_sub *sub = maed_sub_open(endpoint, MAED_TOPIC_RAW | MAED_TOPIC_DENOISED | MAED_TOPIC_ALERT | MAED_TOPIC_FINISHED,
                                  secret_file, server_file, &rc);
    if (sub == NULL) {
        fprintf(stderr, "maed_subscriber: cannot subscribe to %s: %s\n", endpoint, maed_strerror(rc));
        return 2;
    }
    float *buffer = NULL;
    int capacity = 0;
    while (ended < scans && status == 0) {
        int event = maed_sub_next(sub, -1);
        if (event == MAED_E_PROTOCOL) {
            char why[200];
            maed_sub_error(sub, why, sizeof why);
            fprintf(stderr, "maed_subscriber: %s\n", why);
            status = 1;
        } else if (event < 0) {
            fprintf(stderr, "maed_subscriber: receive failed: %s\n", maed_strerror(event));
            status = 2;
        } else if (event == MAED_EVENT_SCAN_FINISHED) {
            char scan[257], reason[32];
            int complete = 0, rows_done = 0;
            double seq = 0;
            maed_sub_scan(sub, scan, sizeof scan);
            maed_sub_seq(sub, &seq);
            maed_sub_finished(sub, &complete, &rows_done, reason, sizeof reason);
            printf("scan.finished scan=%s seq=%.0f complete=%d reason=%s rows_done=%d\n", scan, seq, complete, reason, rows_done);
            ended++;
        } else if (event == MAED_EVENT_ALERT) {  /* scan health: the row and columns to look at, and why */
            char scan[257], kind[64];
            int row = 0, start = 0, stop = 0, severity = 0;
            double seq = 0;
            maed_sub_scan(sub, scan, sizeof scan);
            maed_sub_seq(sub, &seq);
            maed_sub_alert(sub, kind, sizeof kind, &row, &start, &stop, &severity);
            printf("alert scan=%s seq=%.0f kind=%s severity=%s row=%d columns=%d:%d\n", scan, seq, kind, SEVERITY[severity],
                   row, start, stop);
        } else if (event > 0 && (rc = print_frame(sub, event, &buffer, &capacity)) != MAED_OK) {
            fprintf(stderr, "maed_subscriber: %s\n", maed_strerror(rc));
            status = 2;
        }
        fflush(stdout);
    }
    free(buffer);
    maed_sub_close(sub);
    return status;
}
