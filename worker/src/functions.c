/* Loading the embedded Lua library and the allow-list of job kinds. */
#include "functions.h"
#include "imkit/err.h"
#include "imkit/log.h"

#include <hiredis/hiredis.h>
#include <string.h>

extern const char imk_functions_lua[];
extern const size_t imk_functions_lua_len;

static const char *const commands[] = {
    "imkit_auth",          "imkit_client_put", "imkit_client_delete", "imkit_token_create",
    "imkit_tokens_revoke", "imkit_me_update",  "imkit_room_create",   "imkit_room_update",
    "imkit_room_delete",   "imkit_room_leave", "imkit_members_add",   "imkit_members_remove",
    "imkit_msg_send",      "imkit_msg_edit",   "imkit_msg_recall",    "imkit_msg_react",
    "imkit_room_read",
};

int imk_functions_load(struct redisContext *redis)
{
    redisReply *r =
        redisCommand(redis, "FUNCTION LOAD REPLACE %b", imk_functions_lua, imk_functions_lua_len);
    int rc = 0;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        IMK_ERROR("functions_load", "error=\"%s\"", r != NULL ? r->str : redis->errstr);
        rc = IMK_EREDIS;
    }
    freeReplyObject(r);
    return rc;
}

bool imk_functions_is_command(const char *kind, size_t len)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strlen(commands[i]) == len && memcmp(commands[i], kind, len) == 0) {
            return true;
        }
    }
    return false;
}
