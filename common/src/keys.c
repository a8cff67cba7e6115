/* Key and channel names, one function per name. */
#include "imkit/keys.h"
#include "imkit/err.h"

#include <stdio.h>

static int format_result(int n, size_t outlen)
{
    return (n < 0 || (size_t)n >= outlen) ? IMK_ETOOBIG : n;
}

int imk_key_jobs(char *out, size_t outlen, const char *prefix, int partition)
{
    return format_result(snprintf(out, outlen, "%sjobs:%d", prefix, partition), outlen);
}

int imk_key_dead(char *out, size_t outlen, const char *prefix)
{
    return format_result(snprintf(out, outlen, "%sjobs:dead", prefix), outlen);
}

int imk_key_token(char *out, size_t outlen, const char *prefix, const char *sha256_hex)
{
    return format_result(snprintf(out, outlen, "%stok:%s", prefix, sha256_hex), outlen);
}

int imk_key_online(char *out, size_t outlen, const char *prefix, const char *client)
{
    return format_result(snprintf(out, outlen, "%sonline:{%s}", prefix, client), outlen);
}

int imk_key_gateway_alive(char *out, size_t outlen, const char *prefix, const char *gateway)
{
    return format_result(snprintf(out, outlen, "%sgw:%s", prefix, gateway), outlen);
}

int imk_key_tag(char *out, size_t outlen, const char *id, size_t len)
{
    return format_result(snprintf(out, outlen, "{%.*s}", (int)len, id), outlen);
}

int imk_key_client_rooms(char *out, size_t outlen, const char *prefix, const char *client)
{
    return format_result(snprintf(out, outlen, "%su:{%s}:rooms", prefix, client), outlen);
}

int imk_channel_gateway(char *out, size_t outlen, const char *prefix, const char *gateway)
{
    return format_result(snprintf(out, outlen, "%sch:gw:%s", prefix, gateway), outlen);
}

int imk_channel_room(char *out, size_t outlen, const char *prefix, const char *room)
{
    return format_result(snprintf(out, outlen, "%sch:r:{%s}", prefix, room), outlen);
}

int imk_channel_client(char *out, size_t outlen, const char *prefix, const char *client)
{
    return format_result(snprintf(out, outlen, "%sch:u:{%s}", prefix, client), outlen);
}

int imk_channel_presence(char *out, size_t outlen, const char *prefix, const char *client)
{
    return format_result(snprintf(out, outlen, "%sch:p:{%s}", prefix, client), outlen);
}

int imk_key_gateway_clients(char *out, size_t outlen, const char *prefix, const char *gateway)
{
    return format_result(snprintf(out, outlen, "%sgwc:%s", prefix, gateway), outlen);
}

int imk_key_gateways(char *out, size_t outlen, const char *prefix)
{
    return format_result(snprintf(out, outlen, "%sgateways", prefix), outlen);
}

int imk_partition(const char *id, size_t len, int partitions)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 16777619u;
    }
    return partitions > 0 ? (int)(h % (uint32_t)partitions) : 0;
}

int imk_key_metrics_worker(char *out, size_t outlen, const char *prefix, const char *worker)
{
    return format_result(snprintf(out, outlen, "%smetrics:worker:%s", prefix, worker), outlen);
}

int imk_key_metrics_workers(char *out, size_t outlen, const char *prefix)
{
    return format_result(snprintf(out, outlen, "%smetrics:workers", prefix), outlen);
}
