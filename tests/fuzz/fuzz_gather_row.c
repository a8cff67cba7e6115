/* libFuzzer driver for the parser of a room row's body (gateway/src/gather.c, the replies
 * of imkit_room_row that a gateway gathers on a Redis Cluster; seeds: corpus/gather_row/).
 * It must never crash, and on success its lengths must cover exactly the text after the
 * header, and the peer must lie inside the header. */
#include "gather.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes: ASan sees any read past the body. */
    char *body = malloc(size > 0 ? size : 1);
    if (body == NULL) {
        return 0;
    }
    memcpy(body, data, size);
    imk_gather_row_t row;
    if (imk_gather_parse_row(body, size, &row) == 0) {
        size_t messages = row.messages_len > 0 ? (size_t)row.messages_len : 0;
        if (row.text < body || row.text + row.text_len != body + size ||
            row.summary_len + messages != row.text_len || row.summary_len < 2 ||
            (row.messages_len != -1 && row.messages_len < 2) || row.ts < 0 || row.unread < 0 ||
            row.text[-1] != '\n' || row.peer_len > 64 ||
            (row.peer_len > 0 && (row.peer < body || row.peer + row.peer_len >= row.text))) {
            abort();
        }
    }
    free(body);
    return 0;
}
