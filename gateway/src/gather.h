/* Queries over many rooms on a Redis Cluster: room.list and sync. A client's room index
 * lives in its slot and each of its rooms in the room's, so no one Function call can read
 * them all. The gateway gathers them: the index (imkit_room_index, on the client's master),
 * then one row per room (imkit_room_row, on each room's master, all sent at once), then the
 * peers of the direct rooms it answers with (imkit_client_card, on each peer's master), and
 * builds the answer imkit_room_list or imkit_sync gives on one Redis: rooms by last
 * activity, ties by room id bytes; for room.list the page after the cursor
 * "<last_ts>:<room id>" and unread_total over every room; for sync every room, the known
 * rooms left, and the messages after each held seq (FUNCTIONS.md, "Queries the gateway
 * assembles"). */
#ifndef IMKIT_GATEWAY_GATHER_H
#define IMKIT_GATEWAY_GATHER_H

#include "dispatch.h"
#include "gateway.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether call is gathered here rather than sent as one FCALL_RO: room.list and sync, on
 * a Redis Cluster. */
bool imk_gather_wanted(const imk_gateway_t *gw, const imk_call_t *call);

/* Starts gathering call's answer for pending request req, which gets it as a query's.
 * Returns 0, or IMK_EREDIS / IMK_ENOMEM when the first read could not be sent (nothing
 * will answer). */
int imk_gather_send(imk_gateway_t *gw, uint64_t req, const imk_call_t *call);

/* The body of an imkit_room_row reply: "<ts> <unread> <summary bytes> <messages bytes or
 * -1> <has_more 0|1> <peer>\n", then the summary's JSON, then the messages' JSON array when
 * there are messages. peer: a direct room's other member, whose client object the gateway
 * reads in its slot (imkit_client_card) and adds to the summary; empty for other rooms.
 * peer and text borrow from the body. */
typedef struct imk_gather_row {
    int64_t ts;
    int64_t unread;
    size_t summary_len;
    int64_t messages_len; /* -1: no messages */
    bool has_more;
    const char *peer; /* not NUL-terminated */
    size_t peer_len;  /* 0: no peer */
    const char *text; /* the summary, then the messages */
    size_t text_len;
} imk_gather_row_t;

/* Parses body (len bytes, not NUL-terminated): the header's numbers are decimals, the peer
 * is empty or a valid id, and the lengths (a summary of at least 2 bytes, messages of at
 * least 2 or none) add up to exactly the rest. Returns 0, or IMK_EINVAL. */
int imk_gather_parse_row(const char *body, size_t len, imk_gather_row_t *out);

#endif
