/*
 * av_glue: the thin C shim between punktfunk's Rust core and libavcodec.
 *
 * Why C: AVCodecContext's layout belongs to libavcodec and changes between
 * major versions, so Rust never touches it; and av_log's callback receives a
 * va_list, which stable Rust cannot accept. Everything here is generic over
 * the encoder name: which encoder to try and which private options to set is
 * decided on the Rust side (src/encode/).
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

/* Hardware path of an encoder. */
#define PFAV_HW_NONE 0  /* software frames (yuv420p), also used by nvenc */
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
