/*
 * Exchange WebSocket from C: tradeauth_ws_connect authenticates the connection with the
 * session's key, public and private messages go out (private ones only once the venue has
 * accepted the key), and received messages arrive in order on a library thread.
 *
 * Usage: ws_exchange [BASE_URL]   (default $SIM_EXCHANGE; trusts $SIM_CA; EXCHANGE_API_KEY, else
 * the simulator's demo trader)
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <time.h>

#include "example.h"

/* What the callback shares with main: a count and whether the order was accepted. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int received;
static int accepted;

/* Runs on the library's thread, one message at a time, in order. */
static void on_message(void *userdata, const char *json, size_t len) {
    (void)userdata;
    pthread_mutex_lock(&lock);
    received++;
    if (strstr(json, "\"order_accepted\"") != NULL) {
        accepted = 1;
    }
    printf("message %d: %.*s%s\n", received, len > 100 ? 100 : (int)len, json, len > 100 ? "..." : "");
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *key = getenv("EXCHANGE_API_KEY") ? getenv("EXCHANGE_API_KEY")
                                                 : "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f";
    tradeauth_options *options = example_options(argc, argv, "SIM_EXCHANGE");
    tradeauth_session *session = NULL;
    example_check(tradeauth_exchange_new(key, NULL, options, &session), "exchange_new");
    tradeauth_options_free(options);
    /* The WebSocket authenticates with the same credential the HTTP calls use. */
    example_show_header(session);
    example_request(session, "GET", "/api/v1/user", NULL, 0);

    tradeauth_ws *ws = NULL;
    example_check(tradeauth_ws_connect(session, "/ws", NULL, on_message, NULL, &ws), "ws_connect");
    tradeauth_ws_connection_state state = TRADEAUTH_WS_STATE_CLOSED;
    example_check(tradeauth_ws_state(ws, &state), "ws_state");
    printf("connected, state %s\n", state == TRADEAUTH_WS_STATE_AUTHENTICATED ? "authenticated" : "not authenticated");

    example_check(tradeauth_ws_subscribe(ws, "{\"op\":\"subscribe\",\"channel\":\"orderbook\",\"market\":\"BTC-USD\"}",
                                         TRADEAUTH_WS_PRIVACY_AUTO),
                  "ws_subscribe (public)");
    example_check(tradeauth_ws_subscribe(ws, "{\"op\":\"subscribe\",\"channel\":\"fills\"}", TRADEAUTH_WS_PRIVACY_AUTO),
                  "ws_subscribe (private)");
    example_check(tradeauth_ws_send(ws, "{\"op\":\"place_order\",\"market\":\"BTC-USD\",\"side\":\"buy\","
                                        "\"price\":50000.0,\"quantity\":0.1}"),
                  "ws_send (private)");

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&lock);
    while (!accepted && pthread_cond_timedwait(&changed, &lock, &deadline) == 0) {
    }
    int ok = accepted;
    pthread_mutex_unlock(&lock);

    /* After free returns, no callback runs: main may read the shared state unlocked. */
    tradeauth_ws_free(ws);
    tradeauth_session_free(session);
    if (!ok) {
        fprintf(stderr, "error: no order_accepted in 10 s\n");
        return 1;
    }
    printf("order accepted after %d messages; connection closed\n", received);
    return 0;
}
