/* The arena for jansson's allocations while a frame is handled (json_arena.h). */
#include "json_arena.h"

#include <jansson.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ALIGN alignof(max_align_t)

static alignas(max_align_t) unsigned char arena[IMK_JSON_ARENA_BYTES];
static size_t used;
static int depth;

bool imk_json_arena_holds(const void *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)arena;
    return a >= lo && a < lo + sizeof(arena);
}

static void *arena_malloc(size_t n)
{
    size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (depth == 0 || n == 0 || need < n || need > sizeof(arena) - used) {
        return malloc(n);
    }
    void *p = arena + used;
    used += need;
    UNPOISON(p, n);
    return p;
}

static void arena_free(void *p)
{
    if (!imk_json_arena_holds(p)) {
        free(p);
    }
}

void imk_json_arena_install(void)
{
    POISON(arena, sizeof(arena));
    json_set_alloc_funcs(arena_malloc, arena_free);
}

void imk_json_arena_open(void)
{
    depth++;
}

void imk_json_arena_close(void)
{
    if (depth > 0 && --depth == 0) {
        POISON(arena, used);
        used = 0;
    }
}

size_t imk_json_arena_used(void)
{
    return used;
}
