/*
 * test_live.c: libmaed_client against a live bridge, both ways (push and subscribe), from C only (no msgpack
 * here): push a scan with a lost row through maed_push_*, receive its frames through maed_sub_*
 * (the final raw frame bit for bit what was pushed, NaN at the lost row), the line_missing alert
 * and scan.finished; every message acknowledged by the journal; status, pause and resume through
 * maed_ctl_*. Run by tests/with_bridge.py, which appends PULL PUB CONTROL ACK OUT.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maed_client.h"

#define ROWS 24
#define COLS 20
#define LOST 12

static int failures = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "test_live: %s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                          \
        }                                                                        \
    } while (0)

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A surface with noise, values of a height in metres, none repeating. */
static float value(int row, int col) {
    unsigned h = (unsigned)(row * 7919 + col * 104729) * 2654435761u;
    return (float)(1e-10 * (sin(row * 0.4) + cos(col * 0.3)) + 1e-12 * (double)(h >> 16));
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: test_live PULL PUB CONTROL ACK OUT\n");
        return 2;
    }
    const char *pull = argv[1], *pub = argv[2], *control = argv[3], *ack = argv[4];
    int status = -99;
    maed_sub *sub = maed_sub_open(pub, 0, "", "", &status);
    CHECK(sub != NULL && status == MAED_OK);
    maed_ctl *ctl = maed_ctl_open(control, NULL, NULL, &status);
    CHECK(ctl != NULL && status == MAED_OK);
    maed_push *push = maed_push_open(pull, ack, "", "", 0, &status);
    CHECK(push != NULL && status == MAED_OK);
    if (sub == NULL || ctl == NULL || push == NULL) return 1;

    /* Argument checks: nothing queued for a bad call. */
    float line[COLS] = {0};
    CHECK(maed_sub_open(pub, 0, "only-one.key_secret", "", &status) == NULL && status == MAED_E_ARG);
    CHECK(maed_push_line(push, 0, MAED_PASS_TRACE, line, COLS) == MAED_E_STATE);  /* no scan yet */
    CHECK(maed_push_start(push, "c-live", 0, COLS, "Z", "m", 2e-8, 2e-8, MAED_SLOW_AXIS_DOWN) == MAED_E_ARG);
    CHECK(maed_sub_frame(sub, line, COLS, NULL, NULL, NULL, NULL) == MAED_E_STATE);  /* nothing held */

    int scanning = -1, paused = -1, rows_done = -1;
    double received = -1, dropped = -1;
    char scan[300];
    CHECK(maed_ctl_status(ctl, 5000, &scanning, &paused, &rows_done, &received, &dropped, scan, sizeof scan) == MAED_OK);
    CHECK(scanning == 0 && paused == 0 && received == 0 && strcmp(scan, "") == 0);
    sleep_ms(300);  /* ZeroMQ's slow joiner: the subscription reaches the bridge */

    CHECK(maed_push_start(push, "c-live", ROWS, COLS, "Z", "m", 2e-8, 1e-8, MAED_SLOW_AXIS_DOWN) == MAED_OK);
    for (int row = 0; row < ROWS; row++) {
        for (int col = 0; col < COLS; col++) line[col] = value(row, col);
        if (row != LOST) CHECK(maed_push_line(push, row, MAED_PASS_TRACE, line, COLS) == MAED_OK);
    }
    CHECK(maed_push_line(push, 3, MAED_PASS_TRACE, line, COLS) == MAED_E_ARG);  /* back against the slow axis */
    CHECK(maed_push_line(push, ROWS - 1, MAED_PASS_TRACE, line, COLS) == MAED_E_ARG);  /* a repeat */
    line[3] = NAN;
    CHECK(maed_push_line(push, 0, MAED_PASS_TRACE, line, COLS) == MAED_E_ARG);  /* refused before the wire */
    CHECK(maed_push_line(push, 0, MAED_PASS_TRACE, line, COLS - 1) == MAED_E_ARG);
    CHECK(maed_push_end(push, 1) == MAED_OK);
    CHECK(maed_push_end(push, 1) == MAED_E_STATE);
    CHECK(maed_push_wait(push, 20000) == MAED_OK);  /* every message journaled and acknowledged */
    double sent = -1, resent = -1, acknowledged = -1;
    CHECK(maed_push_counters(push, &sent, &resent, &acknowledged) == MAED_OK);
    CHECK(maed_push_pending(push) == 0 && sent == ROWS - 1 + 2 && acknowledged == sent && resent == 0);

    static float frame[ROWS * COLS], final_raw[ROWS * COLS];
    int got_final_raw = 0, got_final_denoised = 0, got_alert = 0, got_rows = 0, finished = 0;
    for (int tries = 0; tries < 300 && !finished; tries++) {
        int event = maed_sub_next(sub, 100);
        CHECK(event >= 0);
        int rows = 0, cols = 0, done = 0, final = 0;
        if (event == MAED_EVENT_FRAME_RAW || event == MAED_EVENT_FRAME_DENOISED || event == MAED_EVENT_FRAME_ROWS) {
            CHECK(maed_sub_frame(sub, frame, 10, &rows, &cols, &done, &final) == MAED_E_SIZE && cols == COLS);
            CHECK(maed_sub_frame(sub, frame, ROWS * COLS, &rows, &cols, &done, &final) == MAED_OK);
            char unit[8], channel[8], id[64];
            double width = 0, height = 0;
            int pass = -1, axis = -1;
            CHECK(maed_sub_unit(sub, unit, sizeof unit) == MAED_OK && strcmp(unit, "m") == 0);
            CHECK(maed_sub_unit(sub, unit, 1) == MAED_E_SIZE);
            CHECK(maed_sub_channel(sub, channel, sizeof channel) == MAED_OK && strcmp(channel, "Z") == 0);
            CHECK(maed_sub_scan(sub, id, sizeof id) == MAED_OK && strcmp(id, "c-live") == 0);
            CHECK(maed_sub_range(sub, &width, &height, &axis) == MAED_OK && width == 2e-8 && height == 1e-8 &&
                  axis == MAED_SLOW_AXIS_DOWN);
            CHECK(maed_sub_pass(sub, &pass) == MAED_OK && pass == MAED_PASS_TRACE);
            CHECK(maed_sub_alert(sub, NULL, 0, NULL, NULL, NULL, NULL) == MAED_E_STATE);
            if (event == MAED_EVENT_FRAME_ROWS) {
                int start = -1, stop = -1, frame_rows = 0;
                double plane[3];
                CHECK(maed_sub_rows_range(sub, &start, &stop, &frame_rows, plane) == MAED_OK);
                CHECK(frame_rows == ROWS && 0 <= start && start < stop && stop <= ROWS && rows == stop - start);
                got_rows++;
            } else {
                CHECK(rows == ROWS && cols == COLS && done >= 1 && done <= ROWS);
            }
            if (event == MAED_EVENT_FRAME_RAW && final) {
                memcpy(final_raw, frame, sizeof frame);
                got_final_raw = 1;
                CHECK(done == ROWS);
            }
            if (event == MAED_EVENT_FRAME_DENOISED && final) {
                char trust[16];
                CHECK(maed_sub_trust(sub, trust, sizeof trust) == MAED_OK && trust[0] != '\0');
                int present = -1;
                double model = -1.0;
                CHECK(maed_sub_trace_retrace(sub, &present, &model, NULL, NULL) == MAED_OK && present == 0 &&
                      model == 0.0);  /* trace lines only: no trace/retrace error */
                got_final_denoised = 1;
            }
        } else if (event == MAED_EVENT_ALERT) {
            char kind[32];
            int row = -1, start = -1, stop = -1, severity = -1;
            CHECK(maed_sub_alert(sub, kind, sizeof kind, &row, &start, &stop, &severity) == MAED_OK);
            CHECK(0 <= start && start < stop && stop <= COLS && severity >= MAED_SEVERITY_INFO &&
                  severity <= MAED_SEVERITY_CRITICAL);
            if (strcmp(kind, "line_missing") == 0 && row == LOST) got_alert = 1;
        } else if (event == MAED_EVENT_SCAN_FINISHED) {
            int complete = -1;
            char reason[16], id[64];
            CHECK(maed_sub_finished(sub, &complete, &done, reason, sizeof reason) == MAED_OK);
            CHECK(maed_sub_scan(sub, id, sizeof id) == MAED_OK && strcmp(id, "c-live") == 0);
            CHECK(complete == 1 && done == ROWS && strcmp(reason, "end") == 0);
            finished = 1;
        }
    }
    CHECK(finished && got_final_raw && got_final_denoised && got_alert && got_rows);
    int exact = 1;
    for (int row = 0; row < ROWS; row++)
        for (int col = 0; col < COLS; col++) {
            float want = value(row, col), have = final_raw[row * COLS + col];
            if (row == LOST ? !isnan(have) : memcmp(&want, &have, sizeof want) != 0) exact = 0;
        }
    CHECK(exact);  /* frame.raw is bit for bit the pushed lines, NaN where the row was lost */

    CHECK(maed_ctl_status(ctl, 5000, &scanning, &paused, &rows_done, &received, &dropped, NULL, 0) == MAED_OK);
    CHECK(scanning == 0 && received == ROWS - 1);
    CHECK(maed_ctl_pause(ctl, 5000) == MAED_OK);
    CHECK(maed_ctl_status(ctl, 5000, NULL, &paused, NULL, NULL, NULL, NULL, 0) == MAED_OK && paused == 1);
    CHECK(maed_ctl_resume(ctl, 5000) == MAED_OK);
    char reply[65536];
    CHECK(maed_ctl_request_json(ctl, "{\"cmd\": \"status\"}", 5000, reply, sizeof reply) == MAED_OK);
    CHECK(strstr(reply, "\"paused\": false") != NULL || strstr(reply, "\"paused\":false") != NULL);
    CHECK(maed_ctl_request_json(ctl, "{\"cmd\": \"no-such\"}", 5000, reply, sizeof reply) == MAED_OK);
    CHECK(strstr(reply, "\"ok\": false") != NULL || strstr(reply, "\"ok\":false") != NULL);
    CHECK(maed_ctl_request_json(ctl, "{\"cmd\": \"status\"}", 5000, reply, 8) == MAED_E_SIZE && reply[0] == '\0');
    char error[256];
    CHECK(maed_ctl_error(ctl, error, sizeof error) == MAED_OK);
    CHECK(strcmp(maed_strerror(MAED_E_FULL), "unknown status") != 0 && maed_protocol_version() == 2);

    maed_push_close(push, 1000);
    maed_ctl_close(ctl);
    maed_sub_close(sub);
    if (failures) fprintf(stderr, "test_live: %d checks failed\n", failures);
    else printf("test_live: every check passed\n");
    return failures ? 1 : 0;
}
