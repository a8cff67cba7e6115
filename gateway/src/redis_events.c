/* A hiredis async connection on the gateway's libevent loop (see redis_events.h). hiredis's
 * own adapter re-arms a one-shot read event after every read and arms EPOLLOUT for every
 * command: four epoll_ctl calls per round trip to Redis, and each write waits for the next
 * epoll_wait. Here the read event persists, and a command asks for a flush: an event
 * activated by hand, run once this loop iteration's callbacks have queued their commands,
 * which writes them all with one system call. */
#include "redis_events.h"
#include "imkit/err.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdlib.h>

struct redis_events {
    redisAsyncContext *ac;
    struct event *read;  /* EV_READ | EV_PERSIST, armed from the attach to the cleanup */
    struct event *write; /* EV_WRITE: while connecting, or while the socket refuses bytes */
    struct event *flush; /* activated by hand: write what the iteration queued */
    bool flushing;       /* inside redisAsyncHandleWrite, called by on_flush */
    bool freed_by_lib;   /* hiredis cleaned up during on_flush: on_flush frees */
};

static void free_event(struct event *ev)
{
    if (ev != NULL) {
        event_free(ev);
    }
}

static void free_events(struct redis_events *e)
{
    free_event(e->read);
    free_event(e->write);
    free_event(e->flush);
    free(e);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct redis_events *e = arg;
    redisAsyncHandleRead(e->ac); /* may free e (cleanup): not touched after */
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct redis_events *e = arg;
    redisAsyncHandleWrite(e->ac); /* may free e (cleanup): not touched after */
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct redis_events *e = arg;
    e->flushing = true;
    redisAsyncHandleWrite(e->ac);
    e->flushing = false;
    if (e->freed_by_lib) {
        free_events(e);
    }
}

/* hiredis asks this after every read: a no-op while the persistent event is pending. */
static void add_read(void *privdata)
{
    struct redis_events *e = privdata;
    event_add(e->read, NULL);
}

static void del_read(void *privdata)
{
    struct redis_events *e = privdata;
    event_del(e->read);
}

/* hiredis asks this for every command it queues, and after a write that left bytes behind.
 * Only the latter, or a connect in progress (hiredis learns of its end from the first
 * writable event), needs the kernel to say when the socket can take more. */
static void add_write(void *privdata)
{
    struct redis_events *e = privdata;
    if (e->flushing || !(e->ac->c.flags & REDIS_CONNECTED)) {
        event_add(e->write, NULL);
    } else {
        event_active(e->flush, EV_WRITE, 1); /* once per iteration: a no-op while active */
    }
}

static void del_write(void *privdata)
{
    struct redis_events *e = privdata;
    event_del(e->write);
}

static void cleanup(void *privdata)
{
    struct redis_events *e = privdata;
    if (e->flushing) {
        event_del(e->read);
        event_del(e->write);
        e->freed_by_lib = true;
        return;
    }
    free_events(e);
}

int imk_redis_events_attach(redisAsyncContext *ac, struct event_base *base)
{
    struct redis_events *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return IMK_ENOMEM;
    }
    e->ac = ac;
    e->read = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, on_read, e);
    e->write = event_new(base, ac->c.fd, EV_WRITE, on_write, e);
    e->flush = event_new(base, -1, 0, on_flush, e);
    if (e->read == NULL || e->write == NULL || e->flush == NULL) {
        free_events(e);
        return IMK_ENOMEM;
    }
    ac->ev.data = e;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    add_read(e);
    event_add(e->write, NULL); /* the connect's end */
    return 0;
}
