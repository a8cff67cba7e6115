/* Runs a hiredis async connection on a libevent loop (link.c attaches every command
 * connection with it), like hiredis's own libevent adapter but with fewer system calls:
 * the read event stays armed for the connection's life, and the commands queued during a
 * loop iteration are written once, when that iteration's callbacks have run; EPOLLOUT is
 * armed only while connecting or when the socket refuses bytes. */
#ifndef IMK_REDIS_EVENTS_H
#define IMK_REDIS_EVENTS_H

struct event_base;
struct redisAsyncContext;

/* Attaches ac to base; hiredis frees what this allocates when ac is freed. Returns 0, or
 * IMK_ENOMEM (ac is then left unattached: the caller frees it). */
int imk_redis_events_attach(struct redisAsyncContext *ac, struct event_base *base);

#endif
