/* Jansson's memory while a client's frame is handled. A frame's JSON tree lives only while
 * its handler runs (on_text in session.c), yet jansson makes some thirty allocations for a
 * message's: the objects, their hash tables, keys and strings. Between imk_json_arena_open
 * and imk_json_arena_close they come from one arena per process instead, a bump pointer
 * rewound when the outermost scope closes; freeing one of them does nothing. Allocations
 * outside a scope, or past the arena's IMK_JSON_ARENA_BYTES, go to malloc as before, and
 * freeing those frees them whenever it happens.
 *
 * So nothing jansson allocates inside a scope may outlive it: no json_incref of the frame,
 * and text from json_dumps is copied (ops.c dumps with json_dumpb into its own buffer).
 * Under AddressSanitizer the arena's used bytes are poisoned when it is rewound, so a use
 * after the scope is reported as one. One event loop per process: not thread-safe. */
#ifndef IMKIT_GATEWAY_JSON_ARENA_H
#define IMKIT_GATEWAY_JSON_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#define IMK_JSON_ARENA_BYTES 16384

/* Makes jansson allocate through the arena (values made before are freed with free()). */
void imk_json_arena_install(void);

/* Scopes nest: only the outermost close rewinds the arena. */
void imk_json_arena_open(void);
void imk_json_arena_close(void);

/* Bytes of the arena in use (tests). */
size_t imk_json_arena_used(void);

/* Whether p points into the arena (tests). */
bool imk_json_arena_holds(const void *p);

#endif
