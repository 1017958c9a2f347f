/*
 * av_glue: see av_glue.h. Kept small and generic: it opens and closes an
 * encoder by name from a plain config struct and forwards av_log lines to a
 * sink; encoder-specific knowledge (options, preference order) lives in Rust.
 */
#define _POSIX_C_SOURCE 200809L /* open(O_CLOEXEC) under -std=c11 */

#include "av_glue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/hwcontext.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>

#define PFAV_DEFAULT_VAAPI_DEVICE "/dev/dri/renderD128"
#define PFAV_LOG_LINE_MAX 2048

struct pfav_encoder {
    AVCodecContext *ctx;
    AVBufferRef *hw_device; /* VAAPI device, NULL for software frames */
    AVBufferRef *hw_frames; /* VAAPI frames pool; ctx holds its own ref */
    int64_t frames_sent;    /* frames handed to avcodec_send_frame */
};

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static void set_av_err(char *err, size_t cap, const char *what, int averr)
{
    char reason[AV_ERROR_MAX_STRING_SIZE * 2];
    av_strerror(averr, reason, sizeof reason);
    set_err(err, cap, "%s: %s", what, reason);
}

/* Hands one black frame to the encoder and discards any packets it yields
 * right away. */
static int send_blank_frame(struct pfav_encoder *enc, char *err, size_t cap)
{
    AVCodecContext *ctx = enc->ctx;
    AVFrame *frame = av_frame_alloc();
    if (!frame) {
        set_err(err, cap, "out of memory allocating a frame");
        return PFAV_ERR_NOMEM;
    }
    int ret;
    if (enc->hw_frames) {
        /* Contents of a fresh surface are unspecified; fine for a test. */
        ret = av_hwframe_get_buffer(enc->hw_frames, frame, 0);
        if (ret < 0) {
            set_av_err(err, cap, "allocating a VAAPI surface failed", ret);
            av_frame_free(&frame);
            return PFAV_ERR_ENCODE;
        }
    } else {
        frame->format = ctx->pix_fmt;
        frame->width = ctx->width;
        frame->height = ctx->height;
        ret = av_frame_get_buffer(frame, 0);
        if (ret < 0) {
            set_av_err(err, cap, "allocating a frame failed", ret);
            av_frame_free(&frame);
            return PFAV_ERR_NOMEM;
        }
        ptrdiff_t linesizes[4];
        for (int i = 0; i < 4; i++)
            linesizes[i] = frame->linesize[i];
        av_image_fill_black(frame->data, linesizes, ctx->pix_fmt,
                            AVCOL_RANGE_MPEG, ctx->width, ctx->height);
    }
    frame->pts = enc->frames_sent;
    ret = avcodec_send_frame(ctx, frame);
    av_frame_free(&frame);
    if (ret < 0) {
        set_av_err(err, cap, "avcodec_send_frame failed", ret);
        return PFAV_ERR_ENCODE;
    }
    enc->frames_sent++;

    AVPacket *pkt = av_packet_alloc();
    if (!pkt) {
        set_err(err, cap, "out of memory allocating a packet");
        return PFAV_ERR_NOMEM;
    }
    while ((ret = avcodec_receive_packet(ctx, pkt)) >= 0)
        av_packet_unref(pkt);
    av_packet_free(&pkt);
    if (ret != AVERROR(EAGAIN) && ret != AVERROR_EOF) {
        set_av_err(err, cap, "avcodec_receive_packet failed", ret);
        return PFAV_ERR_ENCODE;
    }
    return PFAV_OK;
}

int pfav_encoder_encode_blank(struct pfav_encoder *enc, char *err,
                              size_t err_cap)
{
    if (err && err_cap > 0)
        err[0] = '\0';
    if (!enc || !enc->ctx) {
        set_err(err, err_cap, "encoder is null");
        return PFAV_ERR_INVALID;
    }
    return send_blank_frame(enc, err, err_cap);
}

/* Signals end of stream and discards whatever the encoder still emits.
 * SVT-AV1 1.4 cannot be torn down without this: its deinit blocks forever
 * ("deinit called without sending EOS!") if it never saw EOS, and EOS blocks
 * forever if it never saw a frame, so an unused encoder first gets one black
 * frame. */
static void drain_encoder(struct pfav_encoder *enc)
{
    AVCodecContext *ctx = enc->ctx;
    if (!ctx || !avcodec_is_open(ctx))
        return;
    if (enc->frames_sent == 0 && send_blank_frame(enc, NULL, 0) != PFAV_OK)
        return;
    if (avcodec_send_frame(ctx, NULL) < 0)
        return;
    AVPacket *pkt = av_packet_alloc();
    if (!pkt)
        return;
    while (avcodec_receive_packet(ctx, pkt) >= 0)
        av_packet_unref(pkt);
    av_packet_free(&pkt);
}

void pfav_encoder_close(struct pfav_encoder *enc)
{
    if (!enc)
        return;
    drain_encoder(enc);
    avcodec_free_context(&enc->ctx);
    av_buffer_unref(&enc->hw_frames);
    av_buffer_unref(&enc->hw_device);
    av_free(enc);
}

size_t pfav_encoder_config_size(void)
{
    return sizeof(struct pfav_encoder_config);
}

int pfav_encoder_available(const char *name)
{
    return name && avcodec_find_encoder_by_name(name) ? 1 : 0;
}

/* Creates the VAAPI device and an NV12 surface pool and attaches the pool to
 * the codec context. */
static int setup_vaapi(struct pfav_encoder *enc,
                       const struct pfav_encoder_config *cfg, char *err,
                       size_t cap)
{
    const char *device = cfg->hw_device && cfg->hw_device[0]
                             ? cfg->hw_device
                             : PFAV_DEFAULT_VAAPI_DEVICE;

    /* libva's own failure for a missing node is a bare EINVAL; opening the
     * node first gives the caller the real reason (ENOENT, EACCES, ...). */
    int fd = open(device, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int saved = errno;
        char reason[AV_ERROR_MAX_STRING_SIZE * 2];
        av_strerror(AVERROR(saved), reason, sizeof reason);
        set_err(err, cap, "no VAAPI device: %s: %s", device, reason);
        return PFAV_ERR_NO_DEVICE;
    }
    close(fd);

    int ret = av_hwdevice_ctx_create(&enc->hw_device, AV_HWDEVICE_TYPE_VAAPI,
                                     device, NULL, 0);
    if (ret < 0) {
        char what[512];
        snprintf(what, sizeof what, "VAAPI device %s unusable", device);
        set_av_err(err, cap, what, ret);
        return PFAV_ERR_HW_DEVICE;
    }

    enc->hw_frames = av_hwframe_ctx_alloc(enc->hw_device);
    if (!enc->hw_frames) {
        set_err(err, cap, "out of memory allocating VAAPI frames context");
        return PFAV_ERR_NOMEM;
    }
    AVHWFramesContext *frames = (AVHWFramesContext *)enc->hw_frames->data;
    frames->format = AV_PIX_FMT_VAAPI;
    frames->sw_format = AV_PIX_FMT_NV12;
    frames->width = cfg->width;
    frames->height = cfg->height;
    frames->initial_pool_size = 0; /* surfaces are allocated on demand */
    ret = av_hwframe_ctx_init(enc->hw_frames);
    if (ret < 0) {
        set_av_err(err, cap, "VAAPI NV12 frames context", ret);
        return PFAV_ERR_HW_FRAMES;
    }

    enc->ctx->hw_frames_ctx = av_buffer_ref(enc->hw_frames);
    if (!enc->ctx->hw_frames_ctx) {
        set_err(err, cap, "out of memory referencing VAAPI frames context");
        return PFAV_ERR_NOMEM;
    }
    enc->ctx->pix_fmt = AV_PIX_FMT_VAAPI;
    return PFAV_OK;
}

static void apply_options(AVCodecContext *ctx,
                          const struct pfav_encoder_config *cfg)
{
    for (size_t i = 0; i < cfg->n_options; i++) {
        const struct pfav_option *opt = &cfg->options[i];
        if (!opt->key || !opt->value)
            continue;
        int ret = av_opt_set(ctx, opt->key, opt->value, AV_OPT_SEARCH_CHILDREN);
        if (ret < 0) {
            char reason[AV_ERROR_MAX_STRING_SIZE * 2];
            av_strerror(ret, reason, sizeof reason);
            av_log(ctx, AV_LOG_WARNING, "ignoring option %s=%s: %s\n",
                   opt->key, opt->value, reason);
        }
    }
}

int pfav_encoder_open(const struct pfav_encoder_config *cfg,
                      struct pfav_encoder **out, char *err, size_t err_cap)
{
    if (err && err_cap > 0)
        err[0] = '\0';
    if (!out) {
        set_err(err, err_cap, "out pointer is null");
        return PFAV_ERR_INVALID;
    }
    *out = NULL;
    if (!cfg || !cfg->encoder || cfg->width <= 0 || cfg->height <= 0 ||
        cfg->fps <= 0 || (cfg->n_options > 0 && !cfg->options) ||
        (cfg->hw != PFAV_HW_NONE && cfg->hw != PFAV_HW_VAAPI)) {
        set_err(err, err_cap, "invalid encoder config");
        return PFAV_ERR_INVALID;
    }

    const AVCodec *codec = avcodec_find_encoder_by_name(cfg->encoder);
    if (!codec) {
        set_err(err, err_cap, "encoder not built into this libavcodec");
        return PFAV_ERR_NOT_FOUND;
    }

    struct pfav_encoder *enc = av_mallocz(sizeof *enc);
    if (!enc) {
        set_err(err, err_cap, "out of memory allocating encoder");
        return PFAV_ERR_NOMEM;
    }
    enc->ctx = avcodec_alloc_context3(codec);
    if (!enc->ctx) {
        pfav_encoder_close(enc);
        set_err(err, err_cap, "out of memory allocating codec context");
        return PFAV_ERR_NOMEM;
    }

    AVCodecContext *ctx = enc->ctx;
    ctx->width = cfg->width;
    ctx->height = cfg->height;
    ctx->time_base = (AVRational){1, cfg->fps};
    ctx->framerate = (AVRational){cfg->fps, 1};
    ctx->pix_fmt = AV_PIX_FMT_YUV420P;
    ctx->gop_size = cfg->gop_size;
    ctx->max_b_frames = cfg->max_b_frames;
    if (cfg->bit_rate > 0)
        ctx->bit_rate = cfg->bit_rate;

    if (cfg->hw == PFAV_HW_VAAPI) {
        int ret = setup_vaapi(enc, cfg, err, err_cap);
        if (ret != PFAV_OK) {
            pfav_encoder_close(enc);
            return ret;
        }
    }

    apply_options(ctx, cfg);

    int ret = avcodec_open2(ctx, codec, NULL);
    if (ret < 0) {
        set_av_err(err, err_cap, "avcodec_open2 failed", ret);
        pfav_encoder_close(enc);
        return PFAV_ERR_OPEN;
    }
    *out = enc;
    return PFAV_OK;
}

/* ---- logging ---------------------------------------------------------- */

static _Atomic(pfav_log_sink) g_sink;

static void log_callback(void *avcl, int level, const char *fmt, va_list vl)
{
    pfav_log_sink sink = atomic_load_explicit(&g_sink, memory_order_acquire);
    level &= 0xff; /* upper bits may carry a colour hint */
    if (!sink || level > av_log_get_level())
        return;

    char line[PFAV_LOG_LINE_MAX];
    size_t prefix = 0;
    const AVClass *cls = avcl ? *(const AVClass *const *)avcl : NULL;
    if (cls) {
        const char *name =
            cls->item_name ? cls->item_name(avcl) : cls->class_name;
        if (name && name[0]) {
            int w = snprintf(line, sizeof line, "%s: ", name);
            if (w > 0 && (size_t)w < sizeof line)
                prefix = (size_t)w;
        }
    }
    line[prefix] = '\0';
    if (vsnprintf(line + prefix, sizeof line - prefix, fmt, vl) < 0)
        return;

    size_t len = strlen(line);
    while (len > prefix && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (len == prefix)
        return; /* empty line */
    sink(level, line);
}

void pfav_set_log_sink(pfav_log_sink sink)
{
    atomic_store_explicit(&g_sink, sink, memory_order_release);
    av_log_set_callback(sink ? log_callback : av_log_default_callback);
}

void pfav_set_log_level(int av_level)
{
    av_log_set_level(av_level);
}
