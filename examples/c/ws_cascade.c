/*
 * Cascade WebSocket from C: tradeauth_ws_connect signs the wallet challenge, sends the
 * JSON-RPC auth message with the session's JWT and keeps the connection authenticated
 * (re-auth before the token ends, reconnect and replay after a drop). A public and a
 * private subscription, then a private query; answers arrive in order on a library thread.
 *
 * Usage: ws_cascade [BASE_URL]   (default $SIM_CASCADE; trusts $SIM_CA;
 * CASCADE_DEPOSIT_ADDRESS / CASCADE_DELEGATE_PRIVATE_KEY, else the simulator's demo wallet)
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <time.h>

#include "example.h"

/* What the callback shares with main. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int received;
static int answered; /* the orders.list answer (id 3) came */

/* Runs on the library's thread, one message at a time, in order. The library's own auth
   answers are consumed: only the venue's answers to our calls and pushes arrive. */
static void on_message(void *userdata, const char *json, size_t len) {
    (void)userdata;
    pthread_mutex_lock(&lock);
    received++;
    if (strstr(json, "\"id\":3") != NULL && strstr(json, "\"orders\"") != NULL) {
        answered = 1;
    }
    printf("message %d: %.*s%s\n", received, len > 100 ? 100 : (int)len, json, len > 100 ? "..." : "");
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* Waits up to 10 s for the answer to the query. */
static int wait_answered(void) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&lock);
    while (!answered && pthread_cond_timedwait(&changed, &lock, &deadline) == 0) {
    }
    int ok = answered;
    pthread_mutex_unlock(&lock);
    return ok;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *deposit = getenv("CASCADE_DEPOSIT_ADDRESS") ? getenv("CASCADE_DEPOSIT_ADDRESS")
                                                            : "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    /* The well-known public Hardhat test key #0, the simulator's demo delegate. */
    const char *key = getenv("CASCADE_DELEGATE_PRIVATE_KEY")
                          ? getenv("CASCADE_DELEGATE_PRIVATE_KEY")
                          : "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    tradeauth_options *options = example_options(argc, argv, "SIM_CASCADE");
    tradeauth_session *session = NULL;
    example_check(tradeauth_cascade_new(deposit, key, options, &session), "cascade_new");
    tradeauth_options_free(options);
    /* The WebSocket authenticates with the JWT the HTTP calls use (one login for both). */
    example_show_header(session);
    example_request(session, "GET", "/account/orders", NULL, 0);

    /* Options are optional (NULL gives the defaults); here the hold is made explicit: a
       private message waits at most 20 s for the connection to be authenticated. */
    tradeauth_ws_options *ws_options = NULL;
    example_check(tradeauth_ws_options_new(&ws_options), "ws_options_new");
    example_check(tradeauth_ws_options_set_hold_timeout_ms(ws_options, 20000), "ws_options_set_hold_timeout_ms");
    tradeauth_ws *ws = NULL;
    example_check(tradeauth_ws_connect(session, "/ws", ws_options, on_message, NULL, &ws), "ws_connect");
    tradeauth_ws_options_free(ws_options);
    tradeauth_ws_connection_state state = TRADEAUTH_WS_STATE_CLOSED;
    example_check(tradeauth_ws_state(ws, &state), "ws_state");
    printf("connected, state %s\n", state == TRADEAUTH_WS_STATE_AUTHENTICATED ? "authenticated" : "not authenticated");

    example_check(tradeauth_ws_subscribe(ws,
                                         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"subscribe\","
                                         "\"params\":{\"channel\":\"orderbook\",\"market\":\"ETH-USD\"}}",
                                         TRADEAUTH_WS_PRIVACY_AUTO),
                  "ws_subscribe (public)");
    example_check(tradeauth_ws_subscribe(
                      ws, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"subscribe\",\"params\":{\"channel\":\"orders\"}}",
                      TRADEAUTH_WS_PRIVACY_AUTO),
                  "ws_subscribe (private)");
    example_check(tradeauth_ws_send(ws, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"orders.list\",\"params\":{}}"),
                  "ws_send (private)");
    int ok = wait_answered();

    /* Bad input is refused before anything is sent, with the reason. */
    tradeauth_status st = tradeauth_ws_send(ws, "[1, 2]");
    printf("a send that is not a JSON object -> %s (%s)\n", tradeauth_status_name(st), example_last_error());

    /* After free returns, no callback runs: main may read the shared state unlocked. */
    tradeauth_ws_free(ws);
    tradeauth_session_free(session);
    if (!ok) {
        fprintf(stderr, "error: no orders.list answer in 10 s\n");
        return 1;
    }
    printf("orders.list answered after %d messages; connection closed\n", received);
    return 0;
}
