/* Reading an event frame as the Functions write it, without a JSON parser: the gateway
 * looks into live events only to drop the messages a room's catch-up delivered already. */
#ifndef IMKIT_GATEWAY_EVENT_SCAN_H
#define IMKIT_GATEWAY_EVENT_SCAN_H

#include <stddef.h>
#include <stdint.h>

/* The seq of a message event, {"ev":"message","data":{"room":"<id>","seq":<n>,…; 0 for an
 * event of another name; -1 for a frame of any other shape (the caller parses it). */
int64_t imk_event_message_seq(const char *frame, size_t len);

#endif
