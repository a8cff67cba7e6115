/* Open-addressing hash map with tombstones, grown at 70 % load. */
#include "imkit/map.h"
#include "imkit/err.h"

#include <stdlib.h>
#include <string.h>

struct slot {
    char *key; /* NULL: empty; TOMBSTONE: deleted */
    size_t len;
    uint64_t hash;
    void *value;
};

struct imk_map {
    struct slot *slots;
    size_t cap;    /* power of two */
    size_t used;   /* live entries */
    size_t filled; /* live entries and tombstones */
};

static char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

static uint64_t hash_bytes(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ull;
    }
    return h;
}

imk_map_t *imk_map_create(void)
{
    imk_map_t *map = calloc(1, sizeof(*map));
    if (map == NULL) {
        return NULL;
    }
    map->cap = 16;
    map->slots = calloc(map->cap, sizeof(*map->slots));
    if (map->slots == NULL) {
        free(map);
        return NULL;
    }
    return map;
}

void imk_map_destroy(imk_map_t *map)
{
    if (map == NULL) {
        return;
    }
    for (size_t i = 0; i < map->cap; i++) {
        if (map->slots[i].key != NULL && map->slots[i].key != TOMBSTONE) {
            free(map->slots[i].key);
        }
    }
    free(map->slots);
    free(map);
}

static struct slot *find(const imk_map_t *map, const char *key, size_t len, uint64_t h)
{
    size_t mask = map->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct slot *s = &map->slots[i];
        if (s->key == NULL) {
            return NULL;
        }
        if (s->key != TOMBSTONE && s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            return s;
        }
    }
}

static void place(struct slot *slots, size_t cap, struct slot entry)
{
    size_t mask = cap - 1;
    size_t i = entry.hash & mask;
    while (slots[i].key != NULL) {
        i = (i + 1) & mask;
    }
    slots[i] = entry;
}

static int grow(imk_map_t *map)
{
    size_t cap = map->used * 2 >= map->cap / 2 ? map->cap * 2 : map->cap;
    struct slot *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return IMK_ENOMEM;
    }
    for (size_t i = 0; i < map->cap; i++) {
        if (map->slots[i].key != NULL && map->slots[i].key != TOMBSTONE) {
            place(slots, cap, map->slots[i]);
        }
    }
    free(map->slots);
    map->slots = slots;
    map->cap = cap;
    map->filled = map->used;
    return 0;
}

int imk_map_put(imk_map_t *map, const char *key, size_t len, void *value)
{
    uint64_t h = hash_bytes(key, len);
    struct slot *s = find(map, key, len, h);
    if (s != NULL) {
        s->value = value;
        return 0;
    }
    if ((map->filled + 1) * 10 >= map->cap * 7 && grow(map) != 0) {
        return IMK_ENOMEM;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return IMK_ENOMEM;
    }
    memcpy(copy, key, len);
    copy[len] = '\0';
    size_t mask = map->cap - 1;
    size_t i = h & mask;
    while (map->slots[i].key != NULL && map->slots[i].key != TOMBSTONE) {
        i = (i + 1) & mask;
    }
    if (map->slots[i].key == NULL) {
        map->filled++;
    }
    map->slots[i] = (struct slot){copy, len, h, value};
    map->used++;
    return 0;
}

void *imk_map_get(const imk_map_t *map, const char *key, size_t len)
{
    struct slot *s = find(map, key, len, hash_bytes(key, len));
    return s != NULL ? s->value : NULL;
}

void *imk_map_remove(imk_map_t *map, const char *key, size_t len)
{
    struct slot *s = find(map, key, len, hash_bytes(key, len));
    if (s == NULL) {
        return NULL;
    }
    void *value = s->value;
    free(s->key);
    s->key = TOMBSTONE;
    s->value = NULL;
    map->used--;
    return value;
}

size_t imk_map_size(const imk_map_t *map)
{
    return map->used;
}

int imk_map_put_u64(imk_map_t *map, uint64_t key, void *value)
{
    return imk_map_put(map, (const char *)&key, sizeof(key), value);
}

void *imk_map_get_u64(const imk_map_t *map, uint64_t key)
{
    return imk_map_get(map, (const char *)&key, sizeof(key));
}

void *imk_map_remove_u64(imk_map_t *map, uint64_t key)
{
    return imk_map_remove(map, (const char *)&key, sizeof(key));
}

void imk_map_foreach(const imk_map_t *map,
                     void (*fn)(const char *key, size_t len, void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < map->cap; i++) {
        const struct slot *s = &map->slots[i];
        if (s->key != NULL && s->key != TOMBSTONE) {
            fn(s->key, s->len, s->value, arg);
        }
    }
}
