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
 *
 * Decoding is bounded in memory and time, not only in pixels:
 *  - Pixels: width * height above max_pixels is refused from the header (CIMAGE_TOO_LARGE), before
 *    any other chunk or segment is processed and before pixel memory is allocated. Memory is then
 *    proportional to the pixels: 3 bytes each for the output, plus libjpeg's coefficient buffer
 *    for multi-scan JPEGs (2 bytes per sample, at most 8 bytes a pixel), plus libpng's row
 *    buffers (up to 16 bytes a column, which is why a PNG side is limited, see below).
 *  - PNG ancillary chunks: none is kept or inflated. Every chunk other than IHDR, PLTE, tRNS, IDAT
 *    and IEND (text, ICC profiles, EXIF, APNG frames, private chunks) is skipped unread, so a few MB
 *    of zTXt/iTXt cannot make libpng inflate gigabytes. As a backstop, libpng may allocate at most
 *    CIMAGE_PNG_CHUNK_MALLOC_MAX bytes for one chunk and cache at most CIMAGE_PNG_CHUNK_CACHE_MAX
 *    chunks, should one ever be kept.
 *  - JPEG scans: libjpeg runs every scan over the whole image, even an empty one, so a 190 KB file
 *    with 6,000 empty scans costs 34 s of CPU (libjpeg-turbo's "Two Issues with the JPEG Standard").
 *    A JPEG may hold at most cimage_jpeg_max_scans(width, height) scans, see below; one with more
 *    is refused (CIMAGE_TOO_COMPLEX) as soon as the decoder reaches the first scan over the cap.
 *  - Time: budget_ns (0 = none) is the most wall-clock time, from CLOCK_MONOTONIC at entry, that a
 *    decode may take. The clock is read every CIMAGE_CLOCK_CHECK_WORK units of work (pixels of
 *    rows, bytes read, ...), per row for PNG (every Adam7 pass included) and in libjpeg's progress
 *    monitor for JPEG (per iMCU row of each scan, per output row). A decode past its budget stops
 *    there and returns CIMAGE_DEADLINE; a decode that finishes is returned even if it finishes
 *    late, and an image smaller than CIMAGE_CLOCK_CHECK_WORK may finish without a clock read.
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
    /* A JPEG holds more scans than cimage_jpeg_max_scans allows for its size; refused while
       decoding, once the decoder reaches the first scan over the cap. */
    CIMAGE_TOO_COMPLEX = 7,
    /* The decode ran past its time budget (budget_ns) and was abandoned. */
    CIMAGE_DEADLINE = 8,
} cimage_status;

/* The most scans any JPEG may hold: TurboJPEG's own cap for this attack (TJFLAG_LIMITSCANS), and
   50 times the 10 scans of libjpeg's standard progressive script (6 for grayscale). */
#define CIMAGE_JPEG_MAX_SCANS 500u
/* The most pixel-scans (scans * width * height) a JPEG may cost: 2^32, 64 scans of an
   8192 x 8192 image. An empty scan costs libjpeg-turbo about 0.13 ns a pixel (600 empty scans of
   8192 x 8192 took 5.5 s before this cap), so a refused file has cost about half a second at
   most, whatever its size: less than decoding a real photograph of the same size. */
#define CIMAGE_JPEG_MAX_PIXEL_SCANS 4294967296ull
/* The fewest scans any JPEG may hold, whatever its size: 3 times the standard script. Only an
   image above 2^27 pixels, more than the default pixel limit, gets this floor. */
#define CIMAGE_JPEG_MIN_SCANS 32u

/* The longest PNG side, libpng's own default limit: libpng allocates, and clears, up to 16 bytes
   per column before reading any pixel data, and per-row overhead dominates very tall images. A
   longer side is refused from the header with CIMAGE_UNSUPPORTED. (A JPEG side is at most 65535.) */
#define CIMAGE_PNG_MAX_SIDE 1000000u

/* Largest allocation libpng may make for one ancillary chunk (1 MiB) and the most ancillary
   chunks it may cache; neither should ever be reached, as no ancillary chunk is kept. */
#define CIMAGE_PNG_CHUNK_MALLOC_MAX (1024u * 1024u)
#define CIMAGE_PNG_CHUNK_CACHE_MAX 16u

/* Work between two reads of the clock under a time budget: pixels of decoded rows, bytes of
   input read. About a millisecond of decoding or less. */
#define CIMAGE_CLOCK_CHECK_WORK 65536u

/* A decoded image: width * height * 3 bytes, RGB, row-major, no row padding. */
typedef struct {
    uint8_t *pixels;
    uint32_t width;
    uint32_t height;
    /* On CIMAGE_TOO_COMPLEX: the scans the JPEG holds (counted from its markers) and the most it
       may hold at its size. 0 otherwise. */
    uint32_t scans;
    uint32_t max_scans;
} cimage_rgb8;

/*
 * The most scans a width x height JPEG may hold: CIMAGE_JPEG_MAX_PIXEL_SCANS / (width * height),
 * within CIMAGE_JPEG_MIN_SCANS ... CIMAGE_JPEG_MAX_SCANS. 500 up to 8.6 Mpixels, 64 at 8192 x 8192.
 */
uint32_t cimage_jpeg_max_scans(uint32_t width, uint32_t height);

/*
 * Decodes a PNG (any bit depth and colour type, Adam7 included) to RGB8: 16-bit samples keep
 * their high byte, palettes are expanded, gray is replicated, alpha and tRNS are dropped (no
 * compositing). budget_ns is the time budget (0 = none). On CIMAGE_OK, out->pixels must be
 * released with cimage_free. On CIMAGE_TOO_LARGE, out->width and out->height hold the declared
 * size and out->pixels is NULL.
 */
cimage_status cimage_decode_png(const uint8_t *data, size_t len, uint64_t max_pixels, uint64_t budget_ns,
                                cimage_rgb8 *out, char *err, size_t errlen);

/*
 * Decodes a JPEG (baseline, progressive, grayscale, RGB, CMYK/YCCK) to RGB8 with libjpeg's
 * defaults (islow IDCT, fancy upsampling). CMYK is read as Adobe-inverted and converted as PIL
 * does. Same ownership, budget and CIMAGE_TOO_LARGE contract as cimage_decode_png. On
 * CIMAGE_TOO_COMPLEX, out->width, out->height, out->scans and out->max_scans are set.
 */
cimage_status cimage_decode_jpeg(const uint8_t *data, size_t len, uint64_t max_pixels, uint64_t budget_ns,
                                 cimage_rgb8 *out, char *err, size_t errlen);

/*
 * Encodes 8-bit gray (channels 1) or RGB (channels 3) pixels, row-major without padding, as a
 * non-interlaced PNG. pixels_len must be exactly width * height * channels. compression_level is
 * zlib's 0...9. On CIMAGE_OK, *out_data (length *out_len) must be released with cimage_free.
 */
cimage_status cimage_encode_png(const uint8_t *pixels, size_t pixels_len, uint32_t width, uint32_t height,
                                uint32_t channels, int compression_level, uint8_t **out_data, size_t *out_len,
                                char *err, size_t errlen);

/* Releases a buffer returned by this library. NULL is allowed. */
void cimage_free(void *pointer);

#ifdef __cplusplus
}
#endif

#endif
