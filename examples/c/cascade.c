/*
 * Cascade from C: replaces the page's viem / web3.py wallet login (GET /auth challenge,
 * EIP-191 personal_sign of signing_payload by the delegate key, POST /auth) and builds
 * the WebSocket JSON-RPC auth message.
 *
 * Usage: cascade [BASE_URL]   (default $SIM_CASCADE; trusts $SIM_CA;
 * CASCADE_DEPOSIT_ADDRESS / CASCADE_DELEGATE_PRIVATE_KEY, else the simulator's demo
 * account and its delegate, a public Hardhat test key)
 */
#include "example.h"

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *deposit = getenv("CASCADE_DEPOSIT_ADDRESS") ? getenv("CASCADE_DEPOSIT_ADDRESS")
                                                            : "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    const char *key = getenv("CASCADE_DELEGATE_PRIVATE_KEY")
                          ? getenv("CASCADE_DELEGATE_PRIVATE_KEY")
                          : "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    tradeauth_options *options = example_options(argc, argv, "SIM_CASCADE");

    /* Error handling: a malformed address is refused at once, naming the field. */
    tradeauth_session *session = NULL;
    tradeauth_status st = tradeauth_cascade_new("0x1234", key, options, &session);
    printf("deposit address 0x1234 -> %s: %s\n", tradeauth_status_name(st), example_last_error());

    /* A key that is not a delegate of the account: the venue refuses the signature. */
    st = tradeauth_cascade_new(deposit, "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
                               options, &session);
    example_check(st, "cascade_new");
    char name[64];
    char value[4096];
    size_t name_len = 0;
    size_t value_len = 0;
    st = tradeauth_session_header(session, name, sizeof name, &name_len, value, sizeof value, &value_len);
    printf("login with a key that is not a delegate -> %s: %s\n", tradeauth_status_name(st),
           example_last_error());
    tradeauth_session_free(session);

    example_check(tradeauth_cascade_new(deposit, key, options, &session), "cascade_new");
    printf("authenticating deposit account %s with its delegate key\n", deposit);
    example_show_header(session); /* challenge, signature, session token */
    example_request(session, "GET", "/account/orders", NULL, 1);
    example_request(session, "GET", "/account/positions", NULL, 1);

    /* The WebSocket auth message (send it on wss://.../ws; it carries the token). */
    size_t message_len = example_ws_auth_message(session, 1);
    printf("WebSocket auth message ready: %zu bytes, JSON-RPC method \"auth\" (not shown: it holds the token)\n",
           message_len);
    /* Classify what the venue answers. */
    tradeauth_ws_reply reply =
        example_ws_reply(session, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"authenticated\":true}}");
    printf("reply {\"result\":{\"authenticated\":true}} -> %s\n",
           reply == TRADEAUTH_WS_AUTHENTICATED ? "authenticated" : "not authenticated");
    reply = example_ws_reply(
        session, "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32001,\"message\":\"Invalid Bearer Token\"}}");
    printf("reply \"Invalid Bearer Token\" -> %s (%s); the next auth message carries a new token\n",
           reply == TRADEAUTH_WS_REJECTED ? "rejected" : "?", example_last_error());
    example_show_header(session);

    tradeauth_options_free(options);
    tradeauth_session_free(session);
    printf("cascade example done\n");
    return 0;
}
