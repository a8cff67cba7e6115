/* The Redis Functions library the worker loads at start (worker/lua/imkit.lua, embedded in
 * the binary) and the job kinds it may run. Called by the consumer. */
#ifndef IMKIT_WORKER_FUNCTIONS_H
#define IMKIT_WORKER_FUNCTIONS_H

#include <stdbool.h>
#include <stddef.h>

struct redisContext;

/* FUNCTION LOAD REPLACE of the embedded library. Returns 0 or IMK_EREDIS (logged). */
int imk_functions_load(struct redisContext *redis);

/* Whether kind (len bytes) names a function a job may call: commands only, never a
 * query, never anything outside the library. */
bool imk_functions_is_command(const char *kind, size_t len);

#endif
