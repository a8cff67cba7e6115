/* A hash map from byte-string keys to pointers (open addressing, linear probing). The
 * gateway indexes sessions, rooms, clients and waiting requests with it. Keys are copied;
 * values are borrowed (the map never frees them). Not thread-safe; one loop owns it. */
#ifndef IMKIT_MAP_H
#define IMKIT_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct imk_map imk_map_t;

imk_map_t *imk_map_create(void);
/* Frees the map and its key copies, not the values. NULL is a no-op. */
void imk_map_destroy(imk_map_t *map);

/* Inserts or replaces. Returns 0 or IMK_ENOMEM. */
int imk_map_put(imk_map_t *map, const char *key, size_t len, void *value);
/* NULL when absent. */
void *imk_map_get(const imk_map_t *map, const char *key, size_t len);
/* Removes and returns the value, NULL when absent. */
void *imk_map_remove(imk_map_t *map, const char *key, size_t len);
size_t imk_map_size(const imk_map_t *map);

/* The same with a 64-bit integer key. */
int imk_map_put_u64(imk_map_t *map, uint64_t key, void *value);
void *imk_map_get_u64(const imk_map_t *map, uint64_t key);
void *imk_map_remove_u64(imk_map_t *map, uint64_t key);

/* Calls fn for every entry; fn must not add or remove keys (it may put a new value for a
 * key that is present, which never moves an entry). */
void imk_map_foreach(const imk_map_t *map,
                     void (*fn)(const char *key, size_t len, void *value, void *arg), void *arg);

#endif
