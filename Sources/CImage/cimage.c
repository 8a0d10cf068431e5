#include "cimage.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

static void set_message(char *err, size_t errlen, const char *message) {
    if (err == NULL || errlen == 0) {
        return;
    }
    snprintf(err, errlen, "%s", message);
}

void cimage_free(void *pointer) { free(pointer); }

/* Allocates the RGB output after the size check; NULL on overflow or out of memory. */
static uint8_t *allocate_rgb(uint32_t width, uint32_t height) {
    uint64_t bytes = (uint64_t)width * (uint64_t)height * 3u;
    if (bytes == 0 || bytes > (uint64_t)SIZE_MAX) {
        return NULL;
    }
    return malloc((size_t)bytes);
}

static int exceeds_limit(uint32_t width, uint32_t height, uint64_t max_pixels) {
    return (uint64_t)width * (uint64_t)height > max_pixels;
}

/* ------------------------------------------------------------------------------------------ PNG */

typedef struct {
    jmp_buf jump;
    cimage_status status; /* set before every longjmp */
    char *err;
    size_t errlen;
    /* input */
    const uint8_t *data;
    size_t len;
    size_t offset;
    /* output (encoder) */
    uint8_t *out;
    size_t out_len;
    size_t out_cap;
    /* owned while decoding; released on every path */
    png_bytep *rows;
    uint8_t *pixels;
} png_context;

static void png_on_error(png_structp png, png_const_charp message) {
    png_context *context = png_get_error_ptr(png);
    if (context->status == CIMAGE_OK) {
        context->status = CIMAGE_CORRUPT;
        set_message(context->err, context->errlen, message);
    }
    longjmp(context->jump, 1);
}

/* libpng's warnings (unknown chunks, benign errors) are not failures; they are dropped here so
   nothing reaches stderr. */
static void png_on_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

/* Records a failure of our own (not libpng's) and unwinds through png_on_error. */
static void png_fail(png_structp png, png_context *context, cimage_status status, const char *message) {
    if (context->status == CIMAGE_OK) {
        context->status = status;
        set_message(context->err, context->errlen, message);
    }
    png_error(png, message);
}

static void png_read_memory(png_structp png, png_bytep destination, png_size_t length) {
    png_context *context = png_get_io_ptr(png);
    if (length > context->len - context->offset) {
        png_fail(png, context, CIMAGE_TRUNCATED, "PNG data ends before the image does");
    }
    memcpy(destination, context->data + context->offset, length);
    context->offset += length;
}

/* Runs between setjmp and the end of decoding; any libpng failure longjmps out of it. */
static void png_decode_body(png_structp png, png_infop info, png_context *context, uint64_t max_pixels,
                            cimage_rgb8 *out) {
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    out->width = width;
    out->height = height;
    if (exceeds_limit(width, height, max_pixels)) {
        char message[160];
        snprintf(message, sizeof message, "PNG declares %ux%u pixels, more than the limit of %llu", width, height,
                 (unsigned long long)max_pixels);
        png_fail(png, context, CIMAGE_TOO_LARGE, message);
    }

    /* To RGB8 the way PIL's convert("RGB") sees it: high byte of 16-bit samples (PIL's
       ";16B" raw modes), palette and low-bit gray expanded, gray replicated, alpha (and tRNS,
       which expansion turns into alpha) dropped without compositing. No gamma is applied. */
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    if (png_get_bit_depth(png, info) != 8 || png_get_channels(png, info) != 3 ||
        png_get_rowbytes(png, info) != (png_size_t)width * 3u) {
        png_fail(png, context, CIMAGE_CORRUPT, "PNG could not be converted to 8-bit RGB");
    }

    context->pixels = allocate_rgb(width, height);
    context->rows = malloc(sizeof(png_bytep) * (size_t)height);
    if (context->pixels == NULL || context->rows == NULL) {
        png_fail(png, context, CIMAGE_OUT_OF_MEMORY, "out of memory for the decoded PNG");
    }
    for (png_uint_32 y = 0; y < height; y++) {
        context->rows[y] = context->pixels + (size_t)y * width * 3u;
    }
    /* Reads every interlace pass; trailing chunks after the image data are not needed. */
    png_read_image(png, context->rows);
}

cimage_status cimage_decode_png(const uint8_t *data, size_t len, uint64_t max_pixels, cimage_rgb8 *out,
                                char *err, size_t errlen) {
    set_message(err, errlen, "");
    if (out == NULL || (data == NULL && len > 0)) {
        set_message(err, errlen, "invalid argument");
        return CIMAGE_INVALID_ARGUMENT;
    }
    memset(out, 0, sizeof *out);
    if (len < 8 || png_sig_cmp(data, 0, 8) != 0) {
        set_message(err, errlen, len < 8 ? "too short for a PNG signature" : "no PNG signature");
        return len < 8 && len > 0 && png_sig_cmp(data, 0, len) == 0 ? CIMAGE_TRUNCATED : CIMAGE_UNSUPPORTED;
    }

    png_context context;
    memset(&context, 0, sizeof context);
    context.status = CIMAGE_OK;
    context.err = err;
    context.errlen = errlen;
    context.data = data;
    context.len = len;

    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, png_on_error, png_on_warning);
    if (png == NULL) {
        set_message(err, errlen, "out of memory for the PNG decoder");
        return CIMAGE_OUT_OF_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        set_message(err, errlen, "out of memory for the PNG decoder");
        return CIMAGE_OUT_OF_MEMORY;
    }

    if (setjmp(context.jump) == 0) {
        png_set_read_fn(png, &context, png_read_memory);
        /* The pixel limit is ours; lift libpng's own 1,000,000 x 1,000,000 default. */
        png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
        png_decode_body(png, info, &context, max_pixels, out);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(context.rows);
    if (context.status != CIMAGE_OK) {
        free(context.pixels);
        out->pixels = NULL;
        if (context.status != CIMAGE_TOO_LARGE) {
            out->width = 0;
            out->height = 0;
        }
        return context.status;
    }
    out->pixels = context.pixels;
    return CIMAGE_OK;
}

static void png_write_memory(png_structp png, png_bytep source, png_size_t length) {
    png_context *context = png_get_io_ptr(png);
    if (length > context->out_cap - context->out_len) {
        size_t capacity = context->out_cap > 0 ? context->out_cap : 4096;
        while (length > capacity - context->out_len) {
            if (capacity > SIZE_MAX / 2) {
                png_fail(png, context, CIMAGE_OUT_OF_MEMORY, "PNG output too large");
            }
            capacity *= 2;
        }
        uint8_t *grown = realloc(context->out, capacity);
        if (grown == NULL) {
            png_fail(png, context, CIMAGE_OUT_OF_MEMORY, "out of memory for the encoded PNG");
        }
        context->out = grown;
        context->out_cap = capacity;
    }
    memcpy(context->out + context->out_len, source, length);
    context->out_len += length;
}

static void png_flush_memory(png_structp png) { (void)png; }

static void png_encode_body(png_structp png, png_infop info, const uint8_t *pixels, uint32_t width,
                            uint32_t height, uint32_t channels, int compression_level) {
    png_set_write_fn(png, png_get_io_ptr(png), png_write_memory, png_flush_memory);
    png_set_compression_level(png, compression_level);
    png_set_IHDR(png, info, width, height, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t stride = (size_t)width * channels;
    for (uint32_t y = 0; y < height; y++) {
        /* libpng's row pointer is not const, but it does not write through it. */
        png_write_row(png, (png_const_bytep)(pixels + (size_t)y * stride));
    }
    png_write_end(png, NULL);
}

cimage_status cimage_encode_png(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels,
                                int compression_level, uint8_t **out_data, size_t *out_len, char *err,
                                size_t errlen) {
    set_message(err, errlen, "");
    if (out_data == NULL || out_len == NULL) {
        set_message(err, errlen, "invalid argument");
        return CIMAGE_INVALID_ARGUMENT;
    }
    *out_data = NULL;
    *out_len = 0;
    if (pixels == NULL || width == 0 || height == 0 || width > 0x7fffffff || height > 0x7fffffff) {
        set_message(err, errlen, "PNG dimensions must be 1...2^31-1");
        return CIMAGE_INVALID_ARGUMENT;
    }
    if (channels != 1 && channels != 3) {
        set_message(err, errlen, "PNG encoding takes 1 (gray) or 3 (RGB) channels");
        return CIMAGE_INVALID_ARGUMENT;
    }
    if (compression_level < 0 || compression_level > 9) {
        set_message(err, errlen, "PNG compression level must be 0...9");
        return CIMAGE_INVALID_ARGUMENT;
    }

    png_context context;
    memset(&context, 0, sizeof context);
    context.status = CIMAGE_OK;
    context.err = err;
    context.errlen = errlen;

    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context, png_on_error, png_on_warning);
    if (png == NULL) {
        set_message(err, errlen, "out of memory for the PNG encoder");
        return CIMAGE_OUT_OF_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_write_struct(&png, NULL);
        set_message(err, errlen, "out of memory for the PNG encoder");
        return CIMAGE_OUT_OF_MEMORY;
    }
    if (setjmp(context.jump) == 0) {
        png_set_write_fn(png, &context, png_write_memory, png_flush_memory);
        png_encode_body(png, info, pixels, width, height, channels, compression_level);
    }
    png_destroy_write_struct(&png, &info);
    if (context.status != CIMAGE_OK) {
        /* Errors from libpng itself while writing are argument errors, not corrupt input. */
        cimage_status status = context.status == CIMAGE_CORRUPT ? CIMAGE_INVALID_ARGUMENT : context.status;
        free(context.out);
        return status;
    }
    *out_data = context.out;
    *out_len = context.out_len;
    return CIMAGE_OK;
}

/* ----------------------------------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr base; /* first, so the jpeg_error_mgr pointer is this struct's */
    jmp_buf jump;
    cimage_status status;
    char *err;
    size_t errlen;
    uint8_t *pixels;
} jpeg_context;

static void jpeg_fail(j_common_ptr cinfo, cimage_status status) {
    jpeg_context *context = (jpeg_context *)cinfo->err;
    if (context->status == CIMAGE_OK) {
        char message[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, message);
        context->status = status;
        set_message(context->err, context->errlen, message);
    }
    longjmp(context->jump, 1);
}

static void jpeg_on_error(j_common_ptr cinfo) {
    int code = cinfo->err->msg_code;
    int unsupported = code == JERR_BAD_PRECISION || code == JERR_CONVERSION_NOTIMPL || code == JERR_NOT_COMPILED;
    jpeg_fail(cinfo, unsupported ? CIMAGE_UNSUPPORTED : CIMAGE_CORRUPT);
}

/* libjpeg recovers from most damage with a warning and decodes on (PIL does the same), except
   running out of data: the memory source then inserts a fake EOI and the rest of the image would
   be grey, so that warning is a truncation error. Trace messages (level > 0) are ignored. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_fail(cinfo, CIMAGE_TRUNCATED);
    }
    if (level < 0) {
        cinfo->err->num_warnings++;
    }
}

static void jpeg_on_output(j_common_ptr cinfo) { (void)cinfo; }

/* PIL's CMYK -> RGB, applied to libjpeg's raw (Adobe-inverted) samples. PIL reads every CMYK
   JPEG as Adobe-inverted ("CMYK;I"), so its ink is c = 255 - C_raw and k = 255 - K_raw, and
   its conversion is R = (255 - k) - round((255 - k) * c / 255) with its MULDIV255 rounding
   (t = a * b + 128; (t + (t >> 8)) >> 8). With nk = 255 - k = K_raw that is
   R = K_raw - MULDIV255(255 - C_raw, K_raw), which this computes, exactly. */
static inline uint8_t cmyk_channel(unsigned raw_ink, unsigned raw_black) {
    unsigned t = (255u - raw_ink) * raw_black + 128u;
    unsigned scaled = ((t >> 8) + t) >> 8;
    return (uint8_t)(raw_black - scaled);
}

static void jpeg_decode_body(struct jpeg_decompress_struct *cinfo, jpeg_context *context, const uint8_t *data,
                             size_t len, uint64_t max_pixels, cimage_rgb8 *out) {
    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, data, (unsigned long)len);
    jpeg_read_header(cinfo, TRUE);
    out->width = cinfo->image_width;
    out->height = cinfo->image_height;
    if (exceeds_limit(cinfo->image_width, cinfo->image_height, max_pixels)) {
        char message[160];
        snprintf(message, sizeof message, "JPEG declares %ux%u pixels, more than the limit of %llu",
                 cinfo->image_width, cinfo->image_height, (unsigned long long)max_pixels);
        context->status = CIMAGE_TOO_LARGE;
        set_message(context->err, context->errlen, message);
        longjmp(context->jump, 1);
    }

    int cmyk = 0;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo->out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo->out_color_space = JCS_CMYK;
        cmyk = 1;
        break;
    default: {
        char message[120];
        snprintf(message, sizeof message, "JPEG colour space %d with %d components is not supported",
                 (int)cinfo->jpeg_color_space, cinfo->num_components);
        context->status = CIMAGE_UNSUPPORTED;
        set_message(context->err, context->errlen, message);
        longjmp(context->jump, 1);
    }
    }
    /* libjpeg's defaults are what PIL decodes with: JDCT_ISLOW, fancy upsampling, block smoothing. */
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != (cmyk ? 4 : 3)) {
        context->status = CIMAGE_CORRUPT;
        set_message(context->err, context->errlen, "JPEG decoder produced an unexpected number of components");
        longjmp(context->jump, 1);
    }

    uint32_t width = cinfo->output_width;
    uint32_t height = cinfo->output_height;
    context->pixels = allocate_rgb(width, height);
    if (context->pixels == NULL) {
        context->status = CIMAGE_OUT_OF_MEMORY;
        set_message(context->err, context->errlen, "out of memory for the decoded JPEG");
        longjmp(context->jump, 1);
    }
    size_t stride = (size_t)width * 3u;
    JSAMPARRAY scratch = NULL;
    if (cmyk) {
        /* Pool memory: released by jpeg_destroy_decompress, on every path. */
        scratch = (*cinfo->mem->alloc_sarray)((j_common_ptr)cinfo, JPOOL_IMAGE, width * 4u, 1);
    }
    while (cinfo->output_scanline < height) {
        uint8_t *row = context->pixels + (size_t)cinfo->output_scanline * stride;
        if (!cmyk) {
            JSAMPROW rows[1] = {row};
            jpeg_read_scanlines(cinfo, rows, 1);
            continue;
        }
        jpeg_read_scanlines(cinfo, scratch, 1);
        const uint8_t *source = scratch[0];
        for (uint32_t x = 0; x < width; x++) {
            unsigned black = source[4 * x + 3];
            row[3 * x + 0] = cmyk_channel(source[4 * x + 0], black);
            row[3 * x + 1] = cmyk_channel(source[4 * x + 1], black);
            row[3 * x + 2] = cmyk_channel(source[4 * x + 2], black);
        }
    }
    /* The image is complete; what follows the last scan (EOI, trailing bytes) is not checked,
       as PIL does not check it either. */
    jpeg_abort_decompress(cinfo);
}

cimage_status cimage_decode_jpeg(const uint8_t *data, size_t len, uint64_t max_pixels, cimage_rgb8 *out,
                                 char *err, size_t errlen) {
    set_message(err, errlen, "");
    if (out == NULL || (data == NULL && len > 0)) {
        set_message(err, errlen, "invalid argument");
        return CIMAGE_INVALID_ARGUMENT;
    }
    memset(out, 0, sizeof *out);
    if (len < 2 || data[0] != 0xFF || data[1] != 0xD8) {
        set_message(err, errlen, "no JPEG start-of-image marker");
        return CIMAGE_UNSUPPORTED;
    }
    if (len > ULONG_MAX) {
        set_message(err, errlen, "JPEG data too large");
        return CIMAGE_INVALID_ARGUMENT;
    }

    struct jpeg_decompress_struct cinfo;
    jpeg_context context;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&context, 0, sizeof context);
    context.status = CIMAGE_OK;
    context.err = err;
    context.errlen = errlen;
    cinfo.err = jpeg_std_error(&context.base);
    context.base.error_exit = jpeg_on_error;
    context.base.emit_message = jpeg_on_message;
    context.base.output_message = jpeg_on_output;

    if (setjmp(context.jump) == 0) {
        jpeg_decode_body(&cinfo, &context, data, len, max_pixels, out);
    }
    jpeg_destroy_decompress(&cinfo);
    if (context.status != CIMAGE_OK) {
        free(context.pixels);
        out->pixels = NULL;
        if (context.status != CIMAGE_TOO_LARGE) {
            out->width = 0;
            out->height = 0;
        }
        return context.status;
    }
    out->pixels = context.pixels;
    return CIMAGE_OK;
}
