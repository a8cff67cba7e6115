/* RFC 6455 framing for ws.c: the client frame header is checked byte by byte as it arrives,
 * so that a broken or oversized frame is refused before its payload is waited for. */
#include "wsframe.h"

#include <string.h>

static bool opcode_known(uint8_t op)
{
    return op <= IMK_WS_OP_BINARY || (op >= IMK_WS_OP_CLOSE && op <= IMK_WS_OP_PONG);
}

int imk_wsframe_head_parse(const uint8_t *p, size_t avail, imk_wsframe_head_t *h,
                           bool *length_known)
{
    if (length_known != NULL) {
        *length_known = false;
    }
    if (avail < 1) {
        return IMK_WSFRAME_MORE;
    }
    h->fin = (p[0] & 0x80) != 0;
    h->opcode = p[0] & 0x0f;
    bool control = (h->opcode & 0x08) != 0;
    /* No extension is negotiated, so every reserved bit must be clear. */
    if ((p[0] & 0x70) != 0 || !opcode_known(h->opcode) || (control && !h->fin)) {
        return IMK_WSFRAME_EPROTO;
    }
    if (avail < 2) {
        return IMK_WSFRAME_MORE;
    }
    unsigned len7 = p[1] & 0x7f;
    if ((p[1] & 0x80) == 0 || (control && len7 > IMK_WS_CONTROL_MAX)) {
        return IMK_WSFRAME_EPROTO; /* a client must mask every frame (§5.1) */
    }
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (avail < 2 + ext) {
        return IMK_WSFRAME_MORE;
    }
    uint64_t len = len7;
    if (ext > 0) {
        len = 0;
        for (size_t i = 0; i < ext; i++) {
            len = (len << 8) | p[2 + i];
        }
    }
    if (len >> 63) {
        return IMK_WSFRAME_EPROTO; /* §5.2: the most significant bit must be 0 */
    }
    h->payload_len = len;
    h->head_len = 2 + ext + 4;
    if (length_known != NULL) {
        *length_known = true;
    }
    if (avail < h->head_len) {
        return IMK_WSFRAME_MORE;
    }
    memcpy(h->mask, p + 2 + ext, 4);
    return 0;
}

size_t imk_wsframe_head_encode(uint8_t *out, uint8_t opcode, uint64_t payload_len)
{
    out[0] = (uint8_t)(0x80 | opcode);
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    }
    return 10;
}

void imk_wsframe_unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t offset)
{
    uint8_t m[8];
    for (size_t i = 0; i < 8; i++) {
        m[i] = mask[(offset + i) & 3];
    }
    uint64_t word_mask;
    memcpy(&word_mask, m, 8);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= word_mask;
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++) {
        p[i] ^= m[i & 7];
    }
}

/* state: how many continuation bytes are still due (bits 0-7), and the range allowed for the
 * next one (bits 8-15 and 16-23), which is narrower than 80-BF right after E0, ED, F0, F4. */
bool imk_wsframe_utf8_feed(uint32_t *state, const uint8_t *p, size_t len)
{
    unsigned need = *state & 0xff;
    unsigned lo = (*state >> 8) & 0xff;
    unsigned hi = (*state >> 16) & 0xff;
    size_t i = 0;
    while (i < len) {
        if (need == 0 && i + 8 <= len) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8; /* eight ASCII bytes */
                continue;
            }
        }
        unsigned c = p[i++];
        if (need > 0) {
            if (c < lo || c > hi) {
                return false;
            }
            need--;
            lo = 0x80;
            hi = 0xbf;
        } else if (c < 0x80) {
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            lo = 0x80;
            hi = 0xbf;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80; /* E0: no overlong */
            hi = c == 0xed ? 0x9f : 0xbf; /* ED: no surrogate */
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            lo = c == 0xf0 ? 0x90 : 0x80; /* F0: no overlong */
            hi = c == 0xf4 ? 0x8f : 0xbf; /* F4: nothing above U+10FFFF */
        } else {
            return false;
        }
    }
    *state = need == 0 ? 0 : (uint32_t)(need | lo << 8 | hi << 16);
    return true;
}

bool imk_wsframe_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}
