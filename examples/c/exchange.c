/*
 * Exchange from C: the trader API key in x-api-key, the admin bearer token, public
 * market data, and the WebSocket authenticate message.
 *
 * Usage: exchange [BASE_URL]   (default $SIM_EXCHANGE; trusts $SIM_CA; EXCHANGE_API_KEY /
 * EXCHANGE_ADMIN_TOKEN, else the simulator's demo trader and admin token)
 */
#define _POSIX_C_SOURCE 200809L
#include <unistd.h>

#include "example.h"

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *key = getenv("EXCHANGE_API_KEY") ? getenv("EXCHANGE_API_KEY")
                                                 : "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f";
    const char *admin = getenv("EXCHANGE_ADMIN_TOKEN") ? getenv("EXCHANGE_ADMIN_TOKEN") : "demo-admin-token";
    tradeauth_options *options = example_options(argc, argv, "SIM_EXCHANGE");

    /* Error handling: the key format is checked before anything is sent. */
    tradeauth_session *session = NULL;
    tradeauth_status st = tradeauth_exchange_new("exch_not-a-key", NULL, options, &session);
    printf("a malformed API key -> %s: %s\n", tradeauth_status_name(st), example_last_error());

    /* Trader. */
    example_check(tradeauth_exchange_new(key, NULL, options, &session), "exchange_new");
    example_show_header(session);
    example_request(session, "GET", "/api/v1/user", NULL, 0);
    example_request(session, "GET", "/api/v1/portfolio", NULL, 1);
    example_request(session, "POST", "/api/v1/orders",
                    "{\"market\":\"BTC-USD\",\"side\":\"buy\",\"price\":50000,\"quantity\":0.1}", 1);
    size_t message_len = example_ws_auth_message(session, 0);
    printf("WebSocket {\"op\":\"authenticate\",...} message ready: %zu bytes (not shown: it holds the key)\n",
           message_len);
    tradeauth_ws_reply reply =
        example_ws_reply(session, "{\"type\":\"authenticated\",\"trader_id\":\"t\",\"username\":\"team-alpha\"}");
    printf("reply {\"type\":\"authenticated\"} -> %s\n", reply == TRADEAUTH_WS_AUTHENTICATED ? "authenticated" : "?");
    tradeauth_session_free(session);

    /* Operator: provision a trader with the admin token (the answer holds the new key). */
    example_check(tradeauth_exchange_new(NULL, admin, options, &session), "exchange_new (admin)");
    example_show_header(session);
    char body[128];
    snprintf(body, sizeof body, "{\"username\":\"c-example-%ld\"}", (long)getpid());
    example_request(session, "POST", "/api/v1/admin/traders", body, 0);
    tradeauth_session_free(session);

    /* Public market data: no credential at all. */
    example_check(tradeauth_exchange_new(NULL, NULL, options, &session), "exchange_new (public)");
    example_request(session, "GET", "/api/v1/orderbook/BTC-USD", NULL, 1);
    tradeauth_session_free(session);

    /* An unknown (well-formed) key: the venue's 401 comes back as a response. */
    example_check(tradeauth_exchange_new("exch_00000000000000000000000000000000", NULL, options, &session),
                  "exchange_new");
    unsigned status = example_request(session, "GET", "/api/v1/user", NULL, 1);
    printf("an unknown key gets HTTP %u (check EXCHANGE_API_KEY)\n", status);
    tradeauth_session_free(session);

    tradeauth_options_free(options);
    printf("exchange example done\n");
    return 0;
}
