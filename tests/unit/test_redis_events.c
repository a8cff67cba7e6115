/* Unit tests of gateway/src/redis_events.c, hiredis's async connection on the loop, against
 * a TCP peer the test holds (no Redis is needed to see what reaches the socket): commands
 * queued in one loop iteration reach the peer and their replies reach their callbacks; a
 * peer that resets the connection is noticed by the write of a flush, which frees the
 * connection from inside that flush (ASan and UBSan watch it in CI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redis_events.h"

struct fixture {
    struct event_base *base;
    int listener;
    int peer; /* the accepted side of the connection */
    redisAsyncContext *ac;
    int connects, connect_status; /* the connect callback's calls, and its last status */
    int disconnects, disconnect_status;
    int replies;
};

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct fixture *f = ac->data;
    f->connects++;
    f->connect_status = status;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct fixture *f = ac->data;
    f->disconnects++;
    f->disconnect_status = status;
    f->ac = NULL; /* hiredis frees it */
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    struct fixture *f = ac->data;
    redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0) {
        f->replies++;
    }
}

/* Runs the loop until *count reaches want, for at most 200 passes of up to 10 ms. */
static void run_until(struct fixture *f, const int *count, int want)
{
    struct timeval tick = {0, 10000};
    for (int i = 0; i < 200 && *count < want; i++) {
        event_base_loopexit(f->base, &tick);
        event_base_dispatch(f->base);
    }
}

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    f.base = event_base_new();
    f.listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(f.listener, (struct sockaddr *)&addr, len), 0);
    assert_int_equal(listen(f.listener, 1), 0);
    assert_int_equal(getsockname(f.listener, (struct sockaddr *)&addr, &len), 0);

    f.ac = redisAsyncConnect("127.0.0.1", ntohs(addr.sin_port));
    assert_non_null(f.ac);
    assert_int_equal(f.ac->err, 0);
    f.ac->data = &f;
    assert_int_equal(imk_redis_events_attach(f.ac, f.base), 0);
    redisAsyncSetConnectCallback(f.ac, on_connect);
    redisAsyncSetDisconnectCallback(f.ac, on_disconnect);
    f.peer = accept(f.listener, NULL, NULL);
    assert_true(f.peer >= 0);
    run_until(&f, &f.connects, 1);
    assert_int_equal(f.connects, 1);
    assert_int_equal(f.connect_status, REDIS_OK);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->ac != NULL) {
        redisAsyncFree(f->ac);
    }
    if (f->peer >= 0) {
        close(f->peer);
    }
    close(f->listener);
    event_base_free(f->base);
    return 0;
}

static void test_commands_of_an_iteration_reach_the_peer_and_are_answered(void **state)
{
    struct fixture *f = *state;
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(redisAsyncCommand(f->ac, on_reply, NULL, "PING"), REDIS_OK);
    }
    char got[128] = {0};
    size_t have = 0;
    for (int i = 0; i < 200 && have < 3 * strlen(ping); i++) {
        struct timeval tick = {0, 10000};
        event_base_loopexit(f->base, &tick);
        event_base_dispatch(f->base);
        ssize_t n = recv(f->peer, got + have, sizeof(got) - 1 - have, MSG_DONTWAIT);
        have += n > 0 ? (size_t)n : 0;
    }
    assert_int_equal(have, 3 * strlen(ping));
    assert_memory_equal(got, "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", have);

    /* Two replies in one segment, the third in another: the read event stays armed. */
    assert_int_equal(send(f->peer, "+PONG\r\n+PONG\r\n", 14, 0), 14);
    run_until(f, &f->replies, 2);
    assert_int_equal(f->replies, 2);
    assert_int_equal(send(f->peer, "+PONG\r\n", 7, 0), 7);
    run_until(f, &f->replies, 3);
    assert_int_equal(f->replies, 3);
    assert_int_equal(f->disconnects, 0);
}

static void test_a_reset_seen_by_a_flush_frees_the_connection(void **state)
{
    struct fixture *f = *state;
    struct linger reset = {1, 0};
    assert_int_equal(setsockopt(f->peer, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)), 0);
    close(f->peer); /* an RST: the next write on the connection fails */
    f->peer = -1;
    assert_int_equal(redisAsyncCommand(f->ac, on_reply, NULL, "PING"), REDIS_OK);
    run_until(f, &f->disconnects, 1);
    assert_int_equal(f->disconnects, 1);
    assert_int_equal(f->disconnect_status, REDIS_ERR);
    assert_null(f->ac);
    assert_int_equal(f->replies, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_commands_of_an_iteration_reach_the_peer_and_are_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_reset_seen_by_a_flush_frees_the_connection, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
