#include "frame.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {
    [STREAM_FRAME_META] = "meta", [STREAM_FRAME_DATA] = "data", [STREAM_FRAME_ZERO] = "zero",
    [STREAM_FRAME_STOP] = "stop", [STREAM_FRAME_COMP] = "comp",
};

const char *stream_frame_kind_name(enum stream_frame_kind kind)
{
    if ((size_t)kind < sizeof kind_names / sizeof kind_names[0])
        return kind_names[kind];
    return "?";
}

void stream_frame_format(char buf[STREAM_FRAME_LEN], enum stream_frame_kind kind, uint64_t start,
                         uint64_t length)
{
    char tmp[STREAM_FRAME_LEN + 1];
    snprintf(tmp, sizeof tmp, "%s %016" PRIx64 " %016" PRIx64 "\r\n", stream_frame_kind_name(kind),
             start, length);
    memcpy(buf, tmp, STREAM_FRAME_LEN);
}

static int parse_hex16(const char *p, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return -1;
        v = (v << 4) | d;
    }
    *out = v;
    return 0;
}

/* Printable rendering of a bad header, for error messages. */
static void render(const char *buf, size_t n, char *out, size_t outlen)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 5 < outlen; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[j++] = (char)c;
        else
            j += (size_t)snprintf(out + j, outlen - j, "\\x%02x", c);
    }
    out[j] = '\0';
}

int stream_frame_parse(const char buf[STREAM_FRAME_LEN], struct stream_frame *frame,
                       struct vb_error *err)
{
    int kind = -1;
    for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++) {
        if (memcmp(buf, kind_names[i], 4) == 0) {
            kind = (int)i;
            break;
        }
    }
    if (kind < 0 || buf[4] != ' ' || buf[21] != ' ' || buf[38] != '\r' || buf[39] != '\n' ||
        parse_hex16(buf + 5, &frame->start) < 0 || parse_hex16(buf + 22, &frame->length) < 0) {
        size_t printable = 0;
        for (size_t i = 0; i < STREAM_FRAME_LEN; i++)
            printable += buf[i] >= 0x20 && buf[i] < 0x7f;
        if (kind < 0 && printable < STREAM_FRAME_LEN / 2) {
            /* payload bytes where a header belongs: quoting 40 of them helps nobody */
            const unsigned char *u = (const unsigned char *)buf;
            return vb_error_set(err,
                                "no frame header here, binary data instead (%02x %02x %02x %02x "
                                "...): the file is damaged or cut before this point",
                                u[0], u[1], u[2], u[3]);
        }
        char shown[STREAM_FRAME_LEN * 4 + 1];
        render(buf, STREAM_FRAME_LEN, shown, sizeof shown);
        if (kind < 0)
            return vb_error_set(err, "unknown frame kind in header \"%s\"", shown);
        return vb_error_set(err, "malformed frame header \"%s\"", shown);
    }
    frame->kind = (enum stream_frame_kind)kind;
    return 0;
}
