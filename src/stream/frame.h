/* The 40-byte frame header of virtnbdbackup's stream format:
 *   "<kind> <start %016x> <length %016x>\r\n"
 * kind is one of meta, data, zero, stop, comp (virtbackup-stream(5), FRAMES). */
#ifndef VB_FRAME_H
#define VB_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define STREAM_FRAME_LEN 40
#define STREAM_TERM      "\r\n"
#define STREAM_TERM_LEN  2
/* The NBD request size of qemu's servers; the compressed-frame framing depends on it
 * (virtbackup-stream(5), COMPRESSION). */
#define STREAM_SLICE_SIZE (32u * 1024 * 1024)

enum stream_frame_kind {
    STREAM_FRAME_META,
    STREAM_FRAME_DATA,
    STREAM_FRAME_ZERO,
    STREAM_FRAME_STOP,
    STREAM_FRAME_COMP,
};

struct stream_frame {
    enum stream_frame_kind kind;
    uint64_t start;
    uint64_t length;
};

const char *stream_frame_kind_name(enum stream_frame_kind kind);

/* Formats a header into buf (exactly STREAM_FRAME_LEN bytes, no NUL). */
void stream_frame_format(char buf[STREAM_FRAME_LEN], enum stream_frame_kind kind, uint64_t start,
                         uint64_t length);

/* Parses a header strictly: known kind, single spaces, 16 lower- or upper-case hex digits,
 * CRLF terminator. Returns 0, or -1 with a message (without file/offset context). */
int stream_frame_parse(const char buf[STREAM_FRAME_LEN], struct stream_frame *frame,
                       struct vb_error *err);

#endif
