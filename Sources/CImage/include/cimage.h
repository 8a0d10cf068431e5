#ifndef CIMAGE_H
#define CIMAGE_H

/*
 * PNG and JPEG decoding to 8-bit RGB, and PNG encoding, over libpng and libjpeg.
 *
 * Every entry point returns a cimage_status and, on failure, writes a NUL-terminated message
 * into the caller's buffer (err, errlen; err may be NULL). libpng's and libjpeg's
 * setjmp/longjmp error handling never leaves cimage.c, and neither library prints anything.
 * Buffers returned through out-parameters are owned by the caller and released with
 * cimage_free.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CIMAGE_OK = 0,
    /* The data does not start like the format it was given to (PNG signature, JPEG SOI). */
    CIMAGE_UNSUPPORTED = 1,
    /* The data ends before the image does. */
    CIMAGE_TRUNCATED = 2,
    /* The data is malformed (bad CRC, bad marker, bad compressed stream, ...). */
    CIMAGE_CORRUPT = 3,
    /* width * height exceeds max_pixels; refused after the header, before pixel memory. */
    CIMAGE_TOO_LARGE = 4,
    CIMAGE_OUT_OF_MEMORY = 5,
    CIMAGE_INVALID_ARGUMENT = 6,
} cimage_status;

/* A decoded image: width * height * 3 bytes, RGB, row-major, no row padding. */
typedef struct {
    uint8_t *pixels;
    uint32_t width;
    uint32_t height;
} cimage_rgb8;

/*
 * Decodes a PNG (any bit depth and colour type, Adam7 included) to RGB8: 16-bit samples keep
 * their high byte, palettes are expanded, gray is replicated, alpha and tRNS are dropped (no
 * compositing). On CIMAGE_OK, out->pixels must be released with cimage_free. On
 * CIMAGE_TOO_LARGE, out->width and out->height hold the declared size and out->pixels is NULL.
 */
cimage_status cimage_decode_png(const uint8_t *data, size_t len, uint64_t max_pixels, cimage_rgb8 *out,
                                char *err, size_t errlen);

/*
 * Decodes a JPEG (baseline, progressive, grayscale, RGB, CMYK/YCCK) to RGB8 with libjpeg's
 * defaults (islow IDCT, fancy upsampling). CMYK is read as Adobe-inverted and converted as PIL
 * does. Same ownership and CIMAGE_TOO_LARGE contract as cimage_decode_png.
 */
cimage_status cimage_decode_jpeg(const uint8_t *data, size_t len, uint64_t max_pixels, cimage_rgb8 *out,
                                 char *err, size_t errlen);

/*
 * Encodes 8-bit gray (channels 1) or RGB (channels 3) pixels, row-major without padding, as a
 * non-interlaced PNG. compression_level is zlib's 0...9. On CIMAGE_OK, *out_data (length
 * *out_len) must be released with cimage_free.
 */
cimage_status cimage_encode_png(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels,
                                int compression_level, uint8_t **out_data, size_t *out_len, char *err,
                                size_t errlen);

/* Releases a buffer returned by this library. NULL is allowed. */
void cimage_free(void *pointer);

#ifdef __cplusplus
}
#endif

#endif
