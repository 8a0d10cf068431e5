#include "cimage.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* a * b, or 0 when the product does not fit a size_t. Every size derived from an image header
   goes through here. */
static size_t checked_mul(size_t a, size_t b) {
    size_t product;
    return __builtin_mul_overflow(a, b, &product) ? 0 : product;
}

/* The bytes of a width x height RGB8 image; 0 when that does not fit a size_t. */
static size_t rgb_bytes(uint32_t width, uint32_t height) {
    return checked_mul(checked_mul(width, height), 3u);
}

/* Allocates the RGB output after the size check; NULL when empty, on overflow or out of memory. */
static uint8_t *allocate_rgb(uint32_t width, uint32_t height) {
    size_t bytes = rgb_bytes(width, height);
    return bytes == 0 ? NULL : malloc(bytes);
}

/* Both sides are at most 2^32 - 1, so the product fits 64 bits. */
static int exceeds_limit(uint32_t width, uint32_t height, uint64_t max_pixels) {
    return (uint64_t)width * (uint64_t)height > max_pixels;
}

/* ----------------------------------------------------------------------------------------- time */

static uint64_t monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* A decode's time budget; the clock is read once per CIMAGE_CLOCK_CHECK_WORK units of work. */
typedef struct {
    uint64_t budget_ns; /* 0: none */
    uint64_t start_ns;
    uint64_t pending_work;
} budget_clock;

static void budget_start(budget_clock *clock, uint64_t budget_ns) {
    clock->budget_ns = budget_ns;
    clock->start_ns = budget_ns == 0 ? 0 : monotonic_ns();
    clock->pending_work = 0;
}

/* Adds work done; nonzero when the clock was read and the budget is spent. */
static int budget_spent(budget_clock *clock, uint64_t work) {
    if (clock->budget_ns == 0) {
        return 0;
    }
    clock->pending_work += work;
    if (clock->pending_work < CIMAGE_CLOCK_CHECK_WORK) {
        return 0;
    }
    clock->pending_work = 0;
    return monotonic_ns() - clock->start_ns >= clock->budget_ns;
}

static void format_budget_message(char *message, size_t size, const char *format_name, const budget_clock *clock) {
    snprintf(message, size, "%s decoding took longer than its time budget of %.3f ms and was abandoned",
             format_name, (double)clock->budget_ns / 1e6);
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
    uint8_t *pixels;
    budget_clock clock;
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

static void png_check_budget(png_structp png, png_context *context, uint64_t work) {
    if (budget_spent(&context->clock, work)) {
        char message[160];
        format_budget_message(message, sizeof message, "PNG", &context->clock);
        png_fail(png, context, CIMAGE_DEADLINE, message);
    }
}

/* Every chunk header, chunk body and IDAT piece comes through here, so time spent on many small
   chunks is checked as well as time spent on rows. */
static void png_read_memory(png_structp png, png_bytep destination, png_size_t length) {
    png_context *context = png_get_io_ptr(png);
    if (length > context->len - context->offset) {
        png_fail(png, context, CIMAGE_TRUNCATED, "PNG data ends before the image does");
    }
    memcpy(destination, context->data + context->offset, length);
    context->offset += length;
    /* A read costs more than its bytes: count each as 256 bytes at least. */
    png_check_budget(png, context, (uint64_t)length + 256u);
}

/* The width and height in the IHDR chunk, which must come first; 0 when it is not there. */
static int png_peek_size(const uint8_t *data, size_t len, uint32_t *width, uint32_t *height) {
    /* signature (8), length (4) = 13, "IHDR" (4), width (4), height (4) */
    static const uint8_t ihdr[8] = {0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    if (len < 24 || memcmp(data + 8, ihdr, sizeof ihdr) != 0) {
        return 0;
    }
    *width = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 | (uint32_t)data[18] << 8 | data[19];
    *height = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 | (uint32_t)data[22] << 8 | data[23];
    return 1;
}

static void png_too_large_message(char *message, size_t size, uint32_t width, uint32_t height, uint64_t max_pixels) {
    snprintf(message, size, "PNG declares %ux%u pixels, more than the limit of %llu", width, height,
             (unsigned long long)max_pixels);
}

/* Runs between setjmp and the end of decoding; any libpng failure longjmps out of it. */
static void png_decode_body(png_structp png, png_infop info, png_context *context, uint64_t max_pixels,
                            cimage_rgb8 *out) {
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    out->width = width;
    out->height = height;
    /* Checked from the raw IHDR before libpng ran; this covers an IHDR libpng read otherwise. */
    if (exceeds_limit(width, height, max_pixels)) {
        char message[160];
        png_too_large_message(message, sizeof message, width, height, max_pixels);
        png_fail(png, context, CIMAGE_TOO_LARGE, message);
    }

    /* To RGB8 the way PIL's convert("RGB") sees it: high byte of 16-bit samples (PIL's
       ";16B" raw modes), palette and low-bit gray expanded, gray replicated, alpha (and tRNS,
       which expansion turns into alpha) dropped without compositing. No gamma is applied. */
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    size_t stride = checked_mul(width, 3u);
    if (png_get_bit_depth(png, info) != 8 || png_get_channels(png, info) != 3 || stride == 0 ||
        png_get_rowbytes(png, info) != stride) {
        png_fail(png, context, CIMAGE_CORRUPT, "PNG could not be converted to 8-bit RGB");
    }

    /* Not touched before rows are decoded into it, so a file without its pixel data does not
       make this memory resident. */
    context->pixels = allocate_rgb(width, height);
    if (context->pixels == NULL) {
        png_fail(png, context, CIMAGE_OUT_OF_MEMORY, "out of memory for the decoded PNG");
    }
    /* What png_read_image does, a row at a time so that the budget is checked between rows: every
       interlace pass over every row. y * stride < width * height * 3, which allocate_rgb found to
       fit. Trailing chunks after the image data are not needed. */
    for (int pass = 0; pass < passes; pass++) {
        for (png_uint_32 y = 0; y < height; y++) {
            png_read_row(png, context->pixels + (size_t)y * stride, NULL);
            png_check_budget(png, context, width);
        }
    }
}

cimage_status cimage_decode_png(const uint8_t *data, size_t len, uint64_t max_pixels, uint64_t budget_ns,
                                cimage_rgb8 *out, char *err, size_t errlen) {
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
    /* The size is refused from the raw header, before libpng reads a single chunk. */
    uint32_t declared_width = 0;
    uint32_t declared_height = 0;
    if (png_peek_size(data, len, &declared_width, &declared_height) &&
        exceeds_limit(declared_width, declared_height, max_pixels)) {
        out->width = declared_width;
        out->height = declared_height;
        char message[160];
        png_too_large_message(message, sizeof message, declared_width, declared_height, max_pixels);
        set_message(err, errlen, message);
        return CIMAGE_TOO_LARGE;
    }
    if (declared_width > CIMAGE_PNG_MAX_SIDE || declared_height > CIMAGE_PNG_MAX_SIDE) {
        char message[160];
        snprintf(message, sizeof message, "PNG declares %ux%u pixels; sides longer than %u are not supported",
                 declared_width, declared_height, CIMAGE_PNG_MAX_SIDE);
        set_message(err, errlen, message);
        return CIMAGE_UNSUPPORTED;
    }

    png_context context;
    memset(&context, 0, sizeof context);
    context.status = CIMAGE_OK;
    context.err = err;
    context.errlen = errlen;
    context.data = data;
    context.len = len;
    budget_start(&context.clock, budget_ns);

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
        /* Both checked above from the raw IHDR; libpng checks its own copy again. */
        png_set_user_limits(png, CIMAGE_PNG_MAX_SIDE, CIMAGE_PNG_MAX_SIDE);
        png_set_chunk_malloc_max(png, CIMAGE_PNG_CHUNK_MALLOC_MAX);
        png_set_chunk_cache_max(png, CIMAGE_PNG_CHUNK_CACHE_MAX);
        /* Skip every chunk but IHDR, PLTE, tRNS, IDAT and IEND unread: a negative count names
           all the ancillary chunks libpng knows, and the default covers unknown ones. None of
           them changes the pixels we return (no gamma, no colour management, no background). */
        png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
        png_decode_body(png, info, &context, max_pixels, out);
    }
    png_destroy_read_struct(&png, &info, NULL);
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

/* stride is width * channels, checked by the caller. */
static void png_encode_body(png_structp png, png_infop info, const uint8_t *pixels, uint32_t width,
                            uint32_t height, uint32_t channels, size_t stride, int compression_level) {
    png_set_write_fn(png, png_get_io_ptr(png), png_write_memory, png_flush_memory);
    png_set_compression_level(png, compression_level);
    png_set_IHDR(png, info, width, height, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (uint32_t y = 0; y < height; y++) {
        /* libpng's row pointer is not const, but it does not write through it. */
        png_write_row(png, (png_const_bytep)(pixels + (size_t)y * stride));
    }
    png_write_end(png, NULL);
}

cimage_status cimage_encode_png(const uint8_t *pixels, size_t pixels_len, uint32_t width, uint32_t height,
                                uint32_t channels, int compression_level, uint8_t **out_data, size_t *out_len,
                                char *err, size_t errlen) {
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
    size_t stride = checked_mul(width, channels);
    size_t expected_len = checked_mul(stride, height);
    if (expected_len == 0 || pixels_len != expected_len) {
        char message[160];
        snprintf(message, sizeof message, "%ux%u with %u channels needs %zu bytes of pixels, got %zu", width,
                 height, channels, expected_len, pixels_len);
        set_message(err, errlen, expected_len == 0 ? "PNG dimensions are too large for memory" : message);
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
        png_encode_body(png, info, pixels, width, height, channels, stride, compression_level);
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
    /* bounds, checked in the progress monitor */
    struct jpeg_progress_mgr progress;
    const uint8_t *data;
    size_t len;
    uint32_t max_scans; /* 0 until the header is read */
    budget_clock clock;
    cimage_rgb8 *out;
} jpeg_context;

uint32_t cimage_jpeg_max_scans(uint32_t width, uint32_t height) {
    uint64_t pixels = (uint64_t)width * (uint64_t)height;
    if (pixels == 0) {
        return CIMAGE_JPEG_MAX_SCANS;
    }
    uint64_t scans = CIMAGE_JPEG_MAX_PIXEL_SCANS / pixels;
    if (scans > CIMAGE_JPEG_MAX_SCANS) {
        return CIMAGE_JPEG_MAX_SCANS;
    }
    return scans < CIMAGE_JPEG_MIN_SCANS ? CIMAGE_JPEG_MIN_SCANS : (uint32_t)scans;
}

static int jpeg_is_rst(uint8_t marker) { return marker >= 0xD0 && marker <= 0xD7; }

/* The SOS markers in a JPEG, for the message of a refused one: walks the marker segments from SOI
   to EOI, skipping each scan's entropy-coded data up to the next marker (0xFF followed by
   neither a stuffed 0x00 nor a restart marker). Linear in len. */
static uint32_t jpeg_count_scans(const uint8_t *data, size_t len) {
    uint32_t scans = 0;
    size_t i = 2;
    while (i + 1 < len) {
        if (data[i] != 0xFF || data[i + 1] == 0xFF) {
            i++; /* stray byte or fill byte */
            continue;
        }
        uint8_t marker = data[i + 1];
        i += 2;
        if (marker == 0xD9) {
            break;
        }
        if (marker == 0x00 || marker == 0x01 || marker == 0xD8 || jpeg_is_rst(marker)) {
            continue; /* no length */
        }
        if (i + 1 >= len) {
            break;
        }
        size_t length = (size_t)data[i] << 8 | data[i + 1];
        if (length < 2 || length > len - i) {
            break;
        }
        i += length;
        if (marker == 0xDA) {
            if (scans < UINT32_MAX) {
                scans++;
            }
            while (i + 1 < len && !(data[i] == 0xFF && data[i + 1] != 0x00 && !jpeg_is_rst(data[i + 1]))) {
                i++;
            }
        }
    }
    return scans;
}

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

/* Fails with our own status and message; unwinds like jpeg_on_error. */
static void jpeg_refuse(jpeg_context *context, cimage_status status, const char *message) {
    if (context->status == CIMAGE_OK) {
        context->status = status;
        set_message(context->err, context->errlen, message);
    }
    longjmp(context->jump, 1);
}

/* libjpeg calls this before absorbing each iMCU row of each scan of a multi-scan file (and at
   each SOS), and once per jpeg_read_scanlines call: where the scan cap and the time budget are
   enforced. Unwinding from here is as safe as from error_exit: the decompressor is only
   destroyed afterwards. */
static void jpeg_on_progress(j_common_ptr cinfo) {
    struct jpeg_decompress_struct *dinfo = (struct jpeg_decompress_struct *)cinfo;
    jpeg_context *context = (jpeg_context *)cinfo->err;
    uint32_t scan = dinfo->input_scan_number > 0 ? (uint32_t)dinfo->input_scan_number : 0;
    if (context->max_scans != 0 && scan > context->max_scans) {
        uint32_t counted = jpeg_count_scans(context->data, context->len);
        uint32_t scans = counted > scan ? counted : scan;
        context->out->scans = scans;
        context->out->max_scans = context->max_scans;
        char message[200];
        snprintf(message, sizeof message, "JPEG has %u scans, more than the %u allowed for a %ux%u image",
                 scans, context->max_scans, dinfo->image_width, dinfo->image_height);
        jpeg_refuse(context, CIMAGE_TOO_COMPLEX, message);
    }
    /* A call covers up to an iMCU row (8 or 16 rows) of one scan, or one output row. */
    if (budget_spent(&context->clock, (uint64_t)dinfo->image_width + 64u)) {
        char message[160];
        format_budget_message(message, sizeof message, "JPEG", &context->clock);
        jpeg_refuse(context, CIMAGE_DEADLINE, message);
    }
}

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
    /* After jpeg_create_decompress, which clears every field but err. */
    context->progress.progress_monitor = jpeg_on_progress;
    cinfo->progress = &context->progress;
    jpeg_mem_src(cinfo, data, (unsigned long)len);
    jpeg_read_header(cinfo, TRUE);
    out->width = cinfo->image_width;
    out->height = cinfo->image_height;
    if (exceeds_limit(cinfo->image_width, cinfo->image_height, max_pixels)) {
        char message[160];
        snprintf(message, sizeof message, "JPEG declares %ux%u pixels, more than the limit of %llu",
                 cinfo->image_width, cinfo->image_height, (unsigned long long)max_pixels);
        jpeg_refuse(context, CIMAGE_TOO_LARGE, message);
    }
    context->max_scans = cimage_jpeg_max_scans(cinfo->image_width, cinfo->image_height);

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
        jpeg_refuse(context, CIMAGE_UNSUPPORTED, message);
    }
    }
    /* libjpeg's defaults are what PIL decodes with: JDCT_ISLOW, fancy upsampling, block smoothing. */
    /* For a multi-scan file this absorbs every scan, under the progress monitor's bounds. */
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != (cmyk ? 4 : 3)) {
        jpeg_refuse(context, CIMAGE_CORRUPT, "JPEG decoder produced an unexpected number of components");
    }

    uint32_t width = cinfo->output_width;
    uint32_t height = cinfo->output_height;
    /* Without scaling the output is the declared size, which passed the pixel limit. */
    if (exceeds_limit(width, height, max_pixels)) {
        jpeg_refuse(context, CIMAGE_CORRUPT, "JPEG output size differs from its declared size");
    }
    size_t stride = checked_mul(width, 3u);
    context->pixels = allocate_rgb(width, height);
    if (context->pixels == NULL) {
        jpeg_refuse(context, CIMAGE_OUT_OF_MEMORY, "out of memory for the decoded JPEG");
    }
    JSAMPARRAY scratch = NULL;
    if (cmyk) {
        /* JPEG sides are at most 65535, so width * 4 fits a JDIMENSION; checked all the same. */
        size_t cmyk_row = checked_mul(width, 4u);
        if (cmyk_row == 0 || cmyk_row > (JDIMENSION)-1) {
            jpeg_refuse(context, CIMAGE_OUT_OF_MEMORY, "JPEG row too wide");
        }
        /* Pool memory: released by jpeg_destroy_decompress, on every path. */
        scratch = (*cinfo->mem->alloc_sarray)((j_common_ptr)cinfo, JPOOL_IMAGE, (JDIMENSION)cmyk_row, 1);
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

cimage_status cimage_decode_jpeg(const uint8_t *data, size_t len, uint64_t max_pixels, uint64_t budget_ns,
                                 cimage_rgb8 *out, char *err, size_t errlen) {
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
    context.data = data;
    context.len = len;
    context.out = out;
    budget_start(&context.clock, budget_ns);

    if (setjmp(context.jump) == 0) {
        jpeg_decode_body(&cinfo, &context, data, len, max_pixels, out);
    }
    jpeg_destroy_decompress(&cinfo);
    if (context.status != CIMAGE_OK) {
        free(context.pixels);
        out->pixels = NULL;
        if (context.status != CIMAGE_TOO_LARGE && context.status != CIMAGE_TOO_COMPLEX) {
            out->width = 0;
            out->height = 0;
        }
        return context.status;
    }
    out->pixels = context.pixels;
    return CIMAGE_OK;
}
