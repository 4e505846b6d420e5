/*
 * Cadenza from C: what the page's Python CadenzaClient does (login, authenticated
 * requests, refresh before expiry), plus error handling.
 *
 * Usage: cadenza [BASE_URL]   (default $SIM_CADENZA; trusts $SIM_CA; account from
 * CADENZA_EMAIL / CADENZA_PASSWORD, else the simulator's demo account)
 */
#include "example.h"

static void on_event(void *userdata, tradeauth_event_kind kind, tradeauth_status error,
                     const char *message) {
    (void)userdata;
    /* Runs on a library thread; the message never holds a secret. */
    printf("  [event %u] %s%s%s\n", (unsigned)kind, message, error != TRADEAUTH_OK ? " / " : "",
           error != TRADEAUTH_OK ? tradeauth_status_name(error) : "");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *email = getenv("CADENZA_EMAIL") ? getenv("CADENZA_EMAIL") : "demo@cadenza.test";
    const char *password = getenv("CADENZA_PASSWORD") ? getenv("CADENZA_PASSWORD") : "demo-password";
    tradeauth_options *options = example_options(argc, argv, "SIM_CADENZA");

    /* Error handling first: a wrong password is TRADEAUTH_ERR_UNAUTHORIZED with a message. */
    tradeauth_session *wrong = NULL;
    example_check(tradeauth_cadenza_new(email, "not-the-password", options, &wrong), "cadenza_new");
    char name[64];
    char value[4096];
    size_t name_len = 0;
    size_t value_len = 0;
    tradeauth_status status =
        tradeauth_session_header(wrong, name, sizeof name, &name_len, value, sizeof value, &value_len);
    printf("login with a wrong password -> %s: %s\n", tradeauth_status_name(status), example_last_error());
    tradeauth_session_free(wrong);

    /* The real session: nothing is sent until the first header or request. */
    tradeauth_session *session = NULL;
    example_check(tradeauth_cadenza_new(email, password, options, &session), "cadenza_new");
    tradeauth_options_free(options); /* the session keeps its own copy */
    example_check(tradeauth_session_set_event_callback(session, on_event, NULL), "set_event_callback");
    printf("logging in as %s\n", email);
    example_show_header(session); /* logs in (blocks once), then served from the cache */
    uint64_t expires_at = 0;
    example_check(tradeauth_session_expires_at_ms(session, &expires_at), "expires_at_ms");
    printf("access token expires at %llu (Unix ms); refreshed in the background before that\n",
           (unsigned long long)expires_at);

    example_request(session, "GET", "/api/v3/market/venue/list", NULL, 1);
    example_request(session, "GET", "/api/v3/user/profile", NULL, 1);
    example_request(session, "GET", "/api/v3/account/balances", NULL, 1);

    /* The page refreshes 5 minutes before expiry; force one now to show it. */
    example_check(tradeauth_session_refresh(session), "tradeauth_session_refresh");
    printf("forced a refresh (rotating refresh token)\n");
    example_show_header(session);

    /* Our own transport saw a 401? Report the rejected value; the next header is new. */
    example_check(tradeauth_session_header(session, name, sizeof name, &name_len, value, sizeof value,
                                           &value_len),
                  "tradeauth_session_header");
    example_check(tradeauth_session_invalidate(session, value), "tradeauth_session_invalidate");
    printf("invalidated the current token (as after a 401 on our own connection)\n");
    example_show_header(session);

    tradeauth_session_free(session);
    printf("cadenza example done\n");
    return 0;
}
