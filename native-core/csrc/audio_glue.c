/*
 * C glue for the audio modules.
 *
 * 1. Non-variadic wrappers around opus_encoder_ctl / opus_multistream_encoder_ctl.
 *    The ctl functions are variadic and their request macros expand to
 *    "request id, type-checked argument"; wrapping each request we use in a
 *    fixed-signature function keeps the Rust side free of variadic calls and
 *    lets the compiler check argument types against the real headers.
 *
 * 2. Compile-time checks that the constants and struct layouts declared by hand
 *    in src/audio/opus.rs and src/audio/pulse.rs match the installed headers.
 *    If a header ever disagrees, this file stops compiling instead of the Rust
 *    code silently passing wrong values across the FFI boundary.
 */

#include <stddef.h>

#include <opus.h>
#include <opus_multistream.h>
#include <pulse/channelmap.h>
#include <pulse/def.h>
#include <pulse/sample.h>

/* ---- Opus: single-stream encoder ------------------------------------------ */

int pf_opus_encoder_set_bitrate(OpusEncoder *encoder, opus_int32 bits_per_second)
{
    return opus_encoder_ctl(encoder, OPUS_SET_BITRATE(bits_per_second));
}

int pf_opus_encoder_set_vbr(OpusEncoder *encoder, opus_int32 vbr_enabled)
{
    return opus_encoder_ctl(encoder, OPUS_SET_VBR(vbr_enabled));
}

int pf_opus_encoder_get_lookahead(OpusEncoder *encoder, opus_int32 *lookahead_samples)
{
    return opus_encoder_ctl(encoder, OPUS_GET_LOOKAHEAD(lookahead_samples));
}

/* ---- Opus: multistream encoder -------------------------------------------- */

int pf_opus_ms_encoder_set_bitrate(OpusMSEncoder *encoder, opus_int32 bits_per_second)
{
    return opus_multistream_encoder_ctl(encoder, OPUS_SET_BITRATE(bits_per_second));
}

int pf_opus_ms_encoder_set_vbr(OpusMSEncoder *encoder, opus_int32 vbr_enabled)
{
    return opus_multistream_encoder_ctl(encoder, OPUS_SET_VBR(vbr_enabled));
}

int pf_opus_ms_encoder_get_lookahead(OpusMSEncoder *encoder, opus_int32 *lookahead_samples)
{
    return opus_multistream_encoder_ctl(encoder, OPUS_GET_LOOKAHEAD(lookahead_samples));
}

/* ---- Header agreement checks (mirrors of Rust constants) ------------------ */

/* src/audio/opus.rs */
_Static_assert(OPUS_OK == 0, "OPUS_OK");
_Static_assert(OPUS_APPLICATION_AUDIO == 2049, "OPUS_APPLICATION_AUDIO");
_Static_assert(OPUS_APPLICATION_RESTRICTED_LOWDELAY == 2051,
               "OPUS_APPLICATION_RESTRICTED_LOWDELAY");
_Static_assert(sizeof(opus_int16) == 2 && sizeof(opus_int32) == 4, "opus integer widths");

/* src/audio/pulse.rs */
_Static_assert(PA_STREAM_PLAYBACK == 1 && PA_STREAM_RECORD == 2, "pa_stream_direction_t");
_Static_assert(PA_SAMPLE_S16LE == 3 && PA_SAMPLE_S16BE == 4, "pa_sample_format_t");
_Static_assert(PA_CHANNELS_MAX == 32, "PA_CHANNELS_MAX");
_Static_assert(PA_CHANNEL_POSITION_FRONT_LEFT == 1 && PA_CHANNEL_POSITION_FRONT_RIGHT == 2 &&
                   PA_CHANNEL_POSITION_FRONT_CENTER == 3 && PA_CHANNEL_POSITION_REAR_LEFT == 5 &&
                   PA_CHANNEL_POSITION_REAR_RIGHT == 6 && PA_CHANNEL_POSITION_LFE == 7 &&
                   PA_CHANNEL_POSITION_SIDE_LEFT == 10 && PA_CHANNEL_POSITION_SIDE_RIGHT == 11,
               "pa_channel_position_t");
_Static_assert(sizeof(pa_channel_position_t) == 4, "pa_channel_position_t width");
_Static_assert(sizeof(pa_sample_spec) == 12 && offsetof(pa_sample_spec, format) == 0 &&
                   offsetof(pa_sample_spec, rate) == 4 && offsetof(pa_sample_spec, channels) == 8,
               "pa_sample_spec layout");
_Static_assert(sizeof(pa_channel_map) == 4 + 4 * PA_CHANNELS_MAX &&
                   offsetof(pa_channel_map, channels) == 0 && offsetof(pa_channel_map, map) == 4,
               "pa_channel_map layout");
_Static_assert(sizeof(pa_buffer_attr) == 20 && offsetof(pa_buffer_attr, maxlength) == 0 &&
                   offsetof(pa_buffer_attr, tlength) == 4 && offsetof(pa_buffer_attr, prebuf) == 8 &&
                   offsetof(pa_buffer_attr, minreq) == 12 && offsetof(pa_buffer_attr, fragsize) == 16,
               "pa_buffer_attr layout");
