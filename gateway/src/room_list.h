/* room.list on a Redis Cluster. A client's room index lives in its slot and each of its
 * rooms in the room's, so no one Function call can read them all: the gateway reads the
 * index (imkit_room_index, on the client's master), then one row per room (imkit_room_row,
 * on each room's master, all sent at once), and sorts, pages and counts them as
 * imkit_room_list does on one Redis: last activity first, ties by room id bytes, the cursor
 * "<last_ts>:<room id>", unread_total over every room. */
#ifndef IMKIT_GATEWAY_ROOM_LIST_H
#define IMKIT_GATEWAY_ROOM_LIST_H

#include "gateway.h"
#include "imkit/buf.h"

#include <stdint.h>

/* Starts assembling the room list of client from (args: room.list's msgpack arguments,
 * limit and before); the answer goes to pending request req, as a query's would. Returns 0,
 * or IMK_EREDIS / IMK_ENOMEM when the first read could not be sent (nothing will answer). */
int imk_room_list_send(imk_gateway_t *gw, uint64_t req, const char *from, const imk_buf_t *args);

#endif
