/* WebSocket framing (RFC 6455 §5), without I/O: the header of a client frame read from the
 * bytes received so far, the header of a server frame written, unmasking, and UTF-8 checked
 * fragment by fragment. Used by ws.c; pure functions over caller's storage, no allocation. */
#ifndef IMKIT_GATEWAY_WSFRAME_H
#define IMKIT_GATEWAY_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    IMK_WS_OP_CONT = 0x0,
    IMK_WS_OP_TEXT = 0x1,
    IMK_WS_OP_BINARY = 0x2,
    IMK_WS_OP_CLOSE = 0x8,
    IMK_WS_OP_PING = 0x9,
    IMK_WS_OP_PONG = 0xa,
};

#define IMK_WS_HEAD_MAX 14        /* 2 + 8 (64-bit length) + 4 (mask key) */
#define IMK_WS_SERVER_HEAD_MAX 10 /* a server frame is not masked */
#define IMK_WS_CONTROL_MAX 125

/* Results of imk_wsframe_head_parse besides 0. */
enum {
    IMK_WSFRAME_MORE = 1,      /* not enough bytes yet to decide: read more */
    IMK_WSFRAME_EPROTO = -200, /* close 1002: reserved bit, unknown opcode, unmasked, a control
                                  frame fragmented or over 125 bytes, a 64-bit length with
                                  its top bit set */
};

typedef struct imk_wsframe_head {
    bool fin;
    uint8_t opcode;
    uint8_t mask[4];
    uint64_t payload_len;
    size_t head_len; /* bytes before the payload */
} imk_wsframe_head_t;

/* Reads a client frame's header from the first avail bytes of p (the header may be
 * incomplete). Returns 0 with *h filled once the whole header is there; IMK_WSFRAME_MORE when
 * more bytes are needed; IMK_WSFRAME_EPROTO as soon as the bytes present break the protocol.
 * When it returns MORE but at least the length is known (the first 2 to 10 bytes),
 * h->payload_len and h->opcode are already set and *length_known is true, so that a caller
 * may refuse an oversized frame before its mask key arrives. length_known may be NULL. */
int imk_wsframe_head_parse(const uint8_t *p, size_t avail, imk_wsframe_head_t *h,
                           bool *length_known);

/* Writes the header of an unmasked server frame with FIN set into out (at least
 * IMK_WS_SERVER_HEAD_MAX bytes). Returns its length. */
size_t imk_wsframe_head_encode(uint8_t *out, uint8_t opcode, uint64_t payload_len);

/* Unmasks len bytes in place; offset is how many payload bytes of the frame came before. */
void imk_wsframe_unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t offset);

/* UTF-8 checked across fragments: *state is 0 at a message's start; each call checks the
 * next bytes of the message. Returns false as soon as the bytes cannot begin valid UTF-8
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). At the message's end the
 * text is valid only when *state is 0 again (no sequence left unfinished). */
bool imk_wsframe_utf8_feed(uint32_t *state, const uint8_t *p, size_t len);

/* Whether code may be sent in a close frame (RFC 6455 §7.4). */
bool imk_wsframe_close_code_valid(uint16_t code);

#endif
