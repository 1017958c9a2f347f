/*
 * av_glue: the thin C shim between punktfunk's Rust core and libavcodec.
 *
 * Why C: the layouts of AVCodecContext, AVFrame and AVPacket belong to
 * libavcodec and change between major versions, so Rust never touches them;
 * and av_log's callback receives a va_list, which stable Rust cannot accept.
 * Everything here is generic over the codec name: which encoder to try, in
 * which pixel format, and which private options to set is decided on the
 * Rust side (src/encode/).
 *
 * The struct layouts below are owned by this project and mirrored by
 * src/encode/ffi.rs; change both together.
 */
#ifndef PUNKTFUNK_AV_GLUE_H
#define PUNKTFUNK_AV_GLUE_H

#include <stddef.h>
#include <stdint.h>

/* Return codes of pfav_encoder_open (0 = success). */
#define PFAV_OK 0
#define PFAV_ERR_INVALID (-1)   /* bad config (null name, size <= 0, ...) */
#define PFAV_ERR_NOT_FOUND (-2) /* encoder not built into this libavcodec */
#define PFAV_ERR_NO_DEVICE (-3) /* hardware device node cannot be opened */
#define PFAV_ERR_HW_DEVICE (-4) /* av_hwdevice_ctx_create failed */
#define PFAV_ERR_HW_FRAMES (-5) /* hardware frames context failed */
#define PFAV_ERR_OPEN (-6)      /* avcodec_open2 failed */
#define PFAV_ERR_NOMEM (-7)     /* an allocation failed */
#define PFAV_ERR_ENCODE (-8)    /* sending a frame / receiving a packet failed */
#define PFAV_ERR_UNSUPPORTED (-9) /* input or format the shim cannot handle */
#define PFAV_ERR_DECODE (-10)     /* sending a packet / receiving a frame failed */

/* Non-error outcomes of the send/receive calls (> 0, so `< 0` = failure). */
#define PFAV_AGAIN 1 /* nothing to return yet: feed more input (or drain) */
#define PFAV_EOF 2   /* fully drained after end of stream */

/* Colour description written into the stream and used for RGB -> YUV:
 * matrix, primaries and transfer of one standard, always limited range. */
#define PFAV_COLOR_UNSPECIFIED 0 /* leave libav's defaults (probe) */
#define PFAV_COLOR_BT709 1       /* HD */
#define PFAV_COLOR_BT601 2       /* SD (SMPTE 170M) */

/* Hardware path of an encoder. */
#define PFAV_HW_NONE 0  /* system-memory frames: software encoders, nvenc */
#define PFAV_HW_VAAPI 1 /* VAAPI surfaces (NV12) from a render node */

/* One encoder private option, applied with av_opt_set before opening.
 * A rejected option is logged as a warning and skipped, never fatal. */
struct pfav_option {
    const char *key;
    const char *value;
};

struct pfav_encoder_config {
    const char *encoder;   /* libavcodec encoder name, e.g. "libx264" */
    int32_t width;         /* pixels, > 0 */
    int32_t height;        /* pixels, > 0 */
    int32_t fps;           /* time base 1/fps, frame rate fps/1; > 0 */
    int32_t gop_size;      /* frames between key frames */
    int32_t max_b_frames;  /* 0 for low latency */
    int32_t hw;            /* PFAV_HW_* */
    int64_t bit_rate;      /* bits per second; 0 = encoder default */
    const char *hw_device; /* VAAPI render node; NULL = /dev/dri/renderD128 */
    const struct pfav_option *options;
    size_t n_options;
    /* Input pixel format name (av_get_pix_fmt), e.g. "yuv420p", "nv12",
     * "p010le"; for VAAPI the surfaces' software format. NULL or "" =
     * yuv420p (NV12 for VAAPI). */
    const char *sw_format;
    int32_t color;      /* PFAV_COLOR_* */
    int32_t closed_gop; /* 1 = AV_CODEC_FLAG_CLOSED_GOP (key frames are IDR) */
    int64_t max_rate;   /* rc_max_rate, bits/s; 0 = unset */
    int64_t min_rate;   /* rc_min_rate, bits/s; 0 = unset */
    int64_t buffer_size; /* rc_buffer_size (VBV), bits; 0 = unset */
};

struct pfav_encoder;

/* Opens an encoder. On success stores a handle in *out and returns PFAV_OK;
 * on failure returns a PFAV_ERR_* code, leaves *out NULL and writes a
 * human-readable, NUL-terminated reason into err (if err_cap > 0). */
int pfav_encoder_open(const struct pfav_encoder_config *config,
                      struct pfav_encoder **out, char *err, size_t err_cap);

/* Encodes one black frame (a VAAPI surface for VAAPI encoders) and discards
 * the packets; proves the encoder works beyond avcodec_open2. Returns PFAV_OK
 * or a PFAV_ERR_* code with a reason in err. */
int pfav_encoder_encode_blank(struct pfav_encoder *encoder, char *err,
                              size_t err_cap);

/* Flushes (end of stream; an encoder that never got a frame first gets a
 * black one, which SVT-AV1 needs to shut down) and frees everything the
 * handle owns; NULL is a no-op. */
void pfav_encoder_close(struct pfav_encoder *encoder);

/* sizeof(struct pfav_encoder_config), so the Rust mirror can check its
 * layout in tests. */
size_t pfav_encoder_config_size(void);

/* 1 if libavcodec has an encoder of that name, else 0. */
int pfav_encoder_available(const char *name);

/* Whether encoder `name` lists pixel format `pix_fmt` (an av_get_pix_fmt
 * name; "vaapi" for VAAPI encoders) among its pix_fmts: 1 yes, 0 no,
 * PFAV_ERR_NOT_FOUND if no such encoder, PFAV_ERR_INVALID if the format name
 * is unknown. An encoder without a pix_fmts list accepts anything (1). */
int pfav_encoder_pix_fmt_supported(const char *name, const char *pix_fmt);

/* ---- streaming encode ------------------------------------------------- */

/* One encoded packet. The pointers stay valid until the next receive call
 * on the same encoder, or its close. */
struct pfav_packet {
    const uint8_t *data;
    size_t size;
    int64_t pts; /* the pts given to pfav_encoder_send_converted */
    int32_t key; /* 1 = AV_PKT_FLAG_KEY (IDR / AV1 key frame) */
};

/* Converts one BGRA image (memory order B,G,R,A; alpha ignored) into the
 * encoder's reused input frame with libswscale (scaling if the size differs
 * from the encoder's), using the configured colour matrix, limited range;
 * for VAAPI also uploads it into a surface. Returns PFAV_OK or a PFAV_ERR_*
 * code with a reason in err. */
int pfav_encoder_convert_bgra(struct pfav_encoder *encoder, const uint8_t *bgra,
                              int32_t width, int32_t height, int32_t stride,
                              char *err, size_t err_cap);

/* Sends the converted frame with the given pts; force_key = 1 makes it a
 * key frame (pict_type I; an IDR with the encoders' forced-idr options).
 * Returns PFAV_OK, PFAV_AGAIN (output must be received first; the frame
 * stays converted, send again) or a PFAV_ERR_* code. */
int pfav_encoder_send_converted(struct pfav_encoder *encoder, int64_t pts,
                                int32_t force_key, char *err, size_t err_cap);

/* Signals end of stream; later receives return the remaining packets, then
 * PFAV_EOF. Idempotent. */
int pfav_encoder_send_eof(struct pfav_encoder *encoder, char *err,
                          size_t err_cap);

/* Receives one packet into *out: PFAV_OK, PFAV_AGAIN, PFAV_EOF or an error. */
int pfav_encoder_receive(struct pfav_encoder *encoder, struct pfav_packet *out,
                         char *err, size_t err_cap);

/* Updates the rate-control fields (bit_rate, rc_max_rate, rc_min_rate,
 * rc_buffer_size; 0 leaves a field as is). Encoders that re-read them per
 * frame (libx264, nvenc with dynamic bitrate) apply them from the next
 * frame on; others ignore them. */
int pfav_encoder_set_rate(struct pfav_encoder *encoder, int64_t bit_rate,
                          int64_t max_rate, int64_t min_rate,
                          int64_t buffer_size, char *err, size_t err_cap);

/* ---- decode ------------------------------------------------------------ */

struct pfav_decoder;

/* A decoded picture, planar YUV (or gray). The pointers stay valid until the
 * next receive call on the same decoder, or its close. Samples deeper than
 * 8 bits are little-endian uint16_t. */
struct pfav_picture {
    int32_t width;
    int32_t height;
    int32_t bit_depth;     /* bits per sample, e.g. 8 or 10 */
    int32_t log2_chroma_w; /* chroma plane width = ceil(width / 2^this) */
    int32_t log2_chroma_h;
    int32_t planes;        /* 3 for YUV, 1 for gray */
    const uint8_t *data[3];
    int32_t linesize[3];   /* bytes */
    int64_t pts;           /* the pts given to pfav_decoder_send */
    int32_t key;           /* 1 = key frame */
};

/* Opens decoder `name` (e.g. "h264", "hevc", "libdav1d") for low delay:
 * AV_CODEC_FLAG_LOW_DELAY, slice threads only (threads = 0: automatic count),
 * and errors reported, not concealed (AV_EF_EXPLODE). */
int pfav_decoder_open(const char *name, int32_t threads,
                      struct pfav_decoder **out, char *err, size_t err_cap);

/* 1 if libavcodec has a decoder of that name, else 0. */
int pfav_decoder_available(const char *name);

/* Sends one packet (copied into a padded buffer; size 0 = end of stream).
 * Returns PFAV_OK, PFAV_AGAIN (receive first, then send again) or an
 * error. */
int pfav_decoder_send(struct pfav_decoder *decoder, const uint8_t *data,
                      size_t size, int64_t pts, char *err, size_t err_cap);

/* Receives one picture: PFAV_OK, PFAV_AGAIN, PFAV_EOF, or an error (also for
 * a frame flagged corrupt or concealed, or a non-planar format). */
int pfav_decoder_receive(struct pfav_decoder *decoder,
                         struct pfav_picture *out, char *err, size_t err_cap);

/* Frees the decoder; NULL is a no-op. */
void pfav_decoder_close(struct pfav_decoder *decoder);

/* sizeof(struct pfav_packet) and sizeof(struct pfav_picture), for the Rust
 * mirrors' layout tests. */
size_t pfav_packet_size(void);
size_t pfav_picture_size(void);

/* Log sink: receives one line (no trailing newline, never empty) at an
 * AV_LOG_* level, prefixed with the emitting context's name ("libx264: ...").
 * Called on whatever thread libav logs from; must be thread-safe. */
typedef void (*pfav_log_sink)(int level, const char *line);

/* Routes av_log through the sink (NULL restores libav's default printer). */
void pfav_set_log_sink(pfav_log_sink sink);

/* Sets libav's log threshold (an AV_LOG_* value); more verbose messages are
 * discarded before formatting. */
void pfav_set_log_level(int av_level);

#endif
