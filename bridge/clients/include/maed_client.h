/*
 * maed_client.h: libmaed_client, the C library of the MAED-RT bridge (wire protocol v2,
 * bridge/PROTOCOL.md) for programs that cannot speak ZeroMQ and msgpack themselves: LabVIEW
 * (Call Library Function Node), MATLAB (loadlibrary), C.
 *
 * A flat C ABI: opaque handles, plain pointers, int and double, integer status codes, no struct
 * passed by value, no callback. Every function returns a status (MAED_OK = 0, an event code > 0,
 * or a MAED_E_* error < 0; maed_strerror names it) except the openers, which return a handle (NULL
 * on failure, with the reason in *status) and the closers. Strings are NUL-terminated UTF-8; a
 * key file given as NULL or "" means "no keys" (LabVIEW and MATLAB pass "" for an empty string).
 * Output strings go into a caller buffer of `capacity` bytes, NUL included; too small gives
 * MAED_E_SIZE and an empty string. A handle may be used from any thread, one call at a time per
 * handle (each handle serialises its calls with a mutex). A closed handle is gone: any call on it,
 * a second close included, is undefined.
 *
 *   subscribe  maed_sub_open, maed_sub_next, then maed_sub_frame / maed_sub_alert / ... for the
 *              message it returned; frames, row updates, alerts and finished scans
 *   push       maed_push_open, maed_push_start, maed_push_line, maed_push_end: never block; lines
 *              are kept until the bridge's journal acknowledges them and resent after a restart
 *   control    maed_ctl_open, maed_ctl_status, maed_ctl_pause, maed_ctl_resume, maed_ctl_request_json
 *
 * Frames are float (IEEE-754 binary32), C order (row after row), row 0 at the top.
 */
#ifndef MAED_CLIENT_H
#define MAED_CLIENT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Exported when the library itself is built (-DMAED_CLIENT_BUILD); plain declarations for its users,
 * so that the header parsers of MATLAB's loadlibrary and LabVIEW's import wizard read it as is. */
#if defined(MAED_CLIENT_BUILD) && defined(_WIN32)
#define MAED_API __declspec(dllexport)
#elif defined(MAED_CLIENT_BUILD)
#define MAED_API __attribute__((visibility("default")))
#else
#define MAED_API
#endif

/* Status codes. */
#define MAED_OK 0
#define MAED_TIMEOUT 0           /* maed_sub_next: nothing arrived in time (same value as MAED_OK) */
#define MAED_E_ARG (-1)          /* an argument is NULL, out of range or inconsistent */
#define MAED_E_ZMQ (-2)          /* ZeroMQ refused (bad endpoint, ...); maed_strerror cannot say more */
#define MAED_E_PROTOCOL (-3)     /* a malformed message, or one of another protocol version: dropped */
#define MAED_E_SIZE (-4)         /* the caller's buffer is too small */
#define MAED_E_FULL (-5)         /* the push queue is full: nothing queued, try again later */
#define MAED_E_KEYS (-6)         /* a key file is missing or unreadable, or libzmq has no CURVE */
#define MAED_E_NOMEM (-7)        /* out of memory */
#define MAED_E_REFUSED (-8)      /* the bridge answered ok: false (maed_ctl_error says why) */
#define MAED_E_STATE (-9)        /* not now: no scan started, or no message of that kind held */
#define MAED_E_TIMEOUT (-10)     /* a control request got no reply in time */

/* Events returned by maed_sub_next (0 = timeout). */
#define MAED_EVENT_FRAME_RAW 1
#define MAED_EVENT_FRAME_DENOISED 2
#define MAED_EVENT_FRAME_ROWS 3
#define MAED_EVENT_ALERT 4
#define MAED_EVENT_SCAN_FINISHED 5

/* Topic masks for maed_sub_open (0 = all of them). */
#define MAED_TOPIC_RAW 1
#define MAED_TOPIC_DENOISED 2
#define MAED_TOPIC_ROWS 4
#define MAED_TOPIC_ALERT 8
#define MAED_TOPIC_FINISHED 16

/* Passes and slow axes (bridge/PROTOCOL.md, "Words"). */
#define MAED_PASS_TRACE 0
#define MAED_PASS_RETRACE 1
#define MAED_SLOW_AXIS_DOWN 0
#define MAED_SLOW_AXIS_UP 1

/* Alert severities. */
#define MAED_SEVERITY_INFO 0
#define MAED_SEVERITY_WARNING 1
#define MAED_SEVERITY_CRITICAL 2

typedef struct maed_sub maed_sub;
typedef struct maed_push maed_push;
typedef struct maed_ctl maed_ctl;

/* The wire protocol version the library speaks (2). */
MAED_API int maed_protocol_version(void);
/* A one-line description of a status code (a static string, never NULL). */
MAED_API const char *maed_strerror(int status);

/* ---- subscribe (the bridge's PUB socket, default tcp://127.0.0.1:5571) ---------------------- */

/* Connect to endpoint, subscribing to the topics of the mask (MAED_TOPIC_*; 0: all). With keys,
 * secret_key_file is this client's NAME.key_secret and server_key_file the bridge's NAME.key
 * (maed keys, docs/security.md). */
MAED_API maed_sub *maed_sub_open(const char *endpoint, int topics, const char *secret_key_file,
                                 const char *server_key_file, int *status);
/* Wait up to timeout_ms (-1: forever) for the next message and hold it: returns its MAED_EVENT_*,
 * 0 on timeout, MAED_E_PROTOCOL for a malformed message or one of another version (dropped; call
 * again), another MAED_E_* on error. The getters below read the held message. */
MAED_API int maed_sub_next(maed_sub *sub, int timeout_ms);
/* frame.raw, frame.denoised, frame.rows: copy the payload (rows x cols floats, NaN where not
 * scanned) into data (capacity floats). rows is the payload's: the frame's rows for frame.raw and
 * frame.denoised, row_stop - row_start for frame.rows. Any output pointer may be NULL. rows and
 * cols are set even when MAED_E_SIZE is returned, so a caller can size its buffer (capacity 0 and
 * data NULL ask for the shape alone). */
MAED_API int maed_sub_frame(maed_sub *sub, float *data, int capacity, int *rows, int *cols, int *rows_done,
                            int *final);
/* frame.rows only: the frame rows row_start .. row_stop - 1 the payload holds, the frame's rows,
 * and the levelling plane a, b, c (plane3: 3 doubles; bridge/PROTOCOL.md, "frame.rows"). */
MAED_API int maed_sub_rows_range(maed_sub *sub, int *row_start, int *row_stop, int *frame_rows, double *plane3);
/* Any held message: scan id, sequence number, pass (MAED_PASS_*; -1 when the message has none). */
MAED_API int maed_sub_scan(maed_sub *sub, char *scan, int capacity);
MAED_API int maed_sub_seq(maed_sub *sub, double *seq);
MAED_API int maed_sub_pass(maed_sub *sub, int *pass);
/* Frames: the physical unit of the values ("m", "A"), the channel ("Z"), the frame's size in
 * metres (width along a line, height across lines), the slow axis (MAED_SLOW_AXIS_*). */
MAED_API int maed_sub_unit(maed_sub *sub, char *unit, int capacity);
MAED_API int maed_sub_channel(maed_sub *sub, char *channel, int capacity);
MAED_API int maed_sub_range(maed_sub *sub, double *width_m, double *height_m, int *slow_axis);
/* frame.denoised: the trust guard's verdict ("network", "blend", "fallback"; "" before the first). */
MAED_API int maed_sub_trust(maed_sub *sub, char *output, int capacity);
/* frame.denoised: a finished scan's trace/retrace error in the frame's unit (bridge/PROTOCOL.md): the model's,
 * the classical pipeline's (plane, rows, Gaussian of 1 pixel) and raw's; lower is better. present is 1 where
 * the frame carries them (the final frame of a scan with retrace lines), else 0 and the values 0. */
MAED_API int maed_sub_trace_retrace(maed_sub *sub, int *present, double *model, double *classical, double *raw);
/* alert: its kind ("tip_change", ...), row, columns col_start .. col_stop - 1, MAED_SEVERITY_*. */
MAED_API int maed_sub_alert(maed_sub *sub, char *kind, int capacity, int *row, int *col_start, int *col_stop,
                            int *severity);
/* alert: late 1 where it was found once its scan ended, on lines the bridge had no time to judge live (its
 * evidence's "late"; a rule acting on it would act on the next scan), else 0. */
MAED_API int maed_sub_alert_late(maed_sub *sub, int *late);
/* alert: recovered 1 where it was found again on lines a bridge restarted after it died rebuilt from its journal
 * (its evidence's "recovered"; most likely published before the bridge died: act on it only if that one was not
 * seen), else 0. */
MAED_API int maed_sub_alert_recovered(maed_sub *sub, int *recovered);
/* scan.finished: complete (0/1), trace rows done, reason ("end", "superseded", "timeout", "shutdown"). */
MAED_API int maed_sub_finished(maed_sub *sub, int *complete, int *rows_done, char *reason, int capacity);
/* Why the last maed_sub_next returned MAED_E_PROTOCOL, in one line ("" when it did not). */
MAED_API int maed_sub_error(maed_sub *sub, char *message, int capacity);
MAED_API void maed_sub_close(maed_sub *sub);

/* ---- push (the bridge's PULL socket 5570, acknowledgements on its PUB 5573) ----------------- */

/* Connect a controller to endpoint. With ack_endpoint (maed serve --ack-port, default
 * tcp://127.0.0.1:5573; NULL or "": none) every message is kept until the bridge's journal
 * acknowledges it, and what was not acknowledged is sent again, in order, after the connection was
 * lost (a restarted bridge takes it as duplicates where it had it); without, a message is let go
 * once ZeroMQ took it. queue_mib bounds the memory the queued messages take (0: 64 MiB). A
 * thread of the handle does the sending: no push call ever waits for the network. */
MAED_API maed_push *maed_push_open(const char *endpoint, const char *ack_endpoint, const char *secret_key_file,
                                   const char *server_key_file, int queue_mib, int *status);
/* Queue scan.start: scan id (1 to 256 bytes; MAED_E_ARG where it repeats the scan still open, which
 * the bridge would drop with its lines), rows and cols (1 to 4096; the bridge refuses scans over its
 * maed serve --max-pixels, default 2048 x 2048), channel ("Z") and unit ("m", 1 to 63 bytes each),
 * the frame's width and height in metres (> 0), slow_axis MAED_SLOW_AXIS_*. The following lines and
 * the end belong to this scan. MAED_E_FULL when the queue is full (nothing queued). */
MAED_API int maed_push_start(maed_push *push, const char *scan, int rows, int cols, const char *channel,
                             const char *unit, double width_m, double height_m, int slow_axis);
/* Queue one line of the current scan: frame row (0 .. rows - 1), pass (MAED_PASS_*), cols finite
 * floats in image order (column 0 at the left for both passes). Each pass's rows must advance along
 * the slow axis (rows may be skipped): a row that repeats or goes back is refused (MAED_E_ARG), as
 * the bridge would drop it. MAED_E_FULL when the queue is full. */
MAED_API int maed_push_line(maed_push *push, int row, int pass, const float *data, int cols);
/* Queue scan.end of the current scan (complete: 1 when it ran to its last line). */
MAED_API int maed_push_end(maed_push *push, int complete);
/* Messages held: not yet sent, or (with acknowledgements) sent and not yet acknowledged. */
MAED_API int maed_push_pending(maed_push *push);
/* Counters since open: messages handed to ZeroMQ (resends included), sent again after a lost
 * connection, and acknowledged (doubles: exact to 2^53). Any pointer may be NULL. */
MAED_API int maed_push_counters(maed_push *push, double *sent, double *resent, double *acknowledged);
/* Wait up to timeout_ms (-1: forever) until nothing is held: MAED_OK, or MAED_E_TIMEOUT. */
MAED_API int maed_push_wait(maed_push *push, int timeout_ms);
/* Wait up to timeout_ms for what is held (as maed_push_wait), then close; what is still held is lost. */
MAED_API void maed_push_close(maed_push *push, int timeout_ms);

/* ---- control (the bridge's ROUTER socket, default tcp://127.0.0.1:5572) ---------------------- */

MAED_API maed_ctl *maed_ctl_open(const char *endpoint, const char *secret_key_file, const char *server_key_file,
                                 int *status);
/* status: scanning (0 idle, 1 scanning), paused (0/1), trace rows received of the current scan,
 * lines received and lines dropped (since the bridge started), the current scan id ("" when idle).
 * Any output pointer may be NULL. */
MAED_API int maed_ctl_status(maed_ctl *ctl, int timeout_ms, int *scanning, int *paused, int *rows_done,
                             double *lines_received, double *lines_dropped, char *scan, int capacity);
MAED_API int maed_ctl_pause(maed_ctl *ctl, int timeout_ms);
MAED_API int maed_ctl_resume(maed_ctl *ctl, int timeout_ms);
/* Any request as a JSON object (e.g. {"cmd": "status"}); the bridge's JSON reply, whole, into reply.
 * Returns MAED_OK whatever the reply's ok (the caller reads it), MAED_E_SIZE when it does not fit. */
MAED_API int maed_ctl_request_json(maed_ctl *ctl, const char *request, int timeout_ms, char *reply, int capacity);
/* The error message of the last MAED_E_REFUSED ("" when none). */
MAED_API int maed_ctl_error(maed_ctl *ctl, char *message, int capacity);
MAED_API void maed_ctl_close(maed_ctl *ctl);

#ifdef __cplusplus
}
#endif
#endif
