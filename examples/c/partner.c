/*
 * Partner API from C: replaces the page's generate_token (HS256 JWT {clientId, iat,
 * exp = iat + 900}) and "401 -> mint a new token and retry once".
 *
 * Usage: partner [BASE_URL]   (default $SIM_PARTNER, the venue root; trusts $SIM_CA;
 * PARTNER_CLIENT_ID / PARTNER_SECRET_KEY, else the simulator's demo client)
 */
#include "example.h"

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *client = getenv("PARTNER_CLIENT_ID") ? getenv("PARTNER_CLIENT_ID") : "demo-client";
    const char *secret = getenv("PARTNER_SECRET_KEY") ? getenv("PARTNER_SECRET_KEY")
                                                      : "demo-partner-secret-key-0123456789abcdef";
    tradeauth_options *options = example_options(argc, argv, "SIM_PARTNER");

    tradeauth_session *session = NULL;
    /* ttl 0 = the page's 900 s; the token is minted locally, re-minted 60 s before expiry. */
    example_check(tradeauth_partner_new(client, secret, 0, options, &session), "partner_new");
    printf("minting tokens for client %s\n", client);
    example_show_header(session);
    example_request(session, "GET", "/portfolio", NULL, 1);
    example_request(session, "POST", "/orders", "{\"symbol\":\"AAPL\",\"side\":\"buy\",\"quantity\":10}", 1);

    /* Error handling: a wrong secret is only noticed by the venue. The session re-mints
       and retries once on the 401, then hands the 401 back as a response. */
    tradeauth_session *wrong = NULL;
    example_check(tradeauth_partner_new(client, "a-wrong-secret-key", 0, options, &wrong), "partner_new");
    unsigned status = example_request(wrong, "GET", "/portfolio", NULL, 1);
    printf("with a wrong secret key the venue answers %u (check PARTNER_SECRET_KEY)\n", status);
    tradeauth_session_free(wrong);

    /* Bad input is refused before anything is sent. */
    tradeauth_response *response = NULL;
    tradeauth_status st = tradeauth_session_request(session, "POST", "/orders", "{not json", NULL, &response);
    printf("POST with a body that is not JSON -> %s: %s\n", tradeauth_status_name(st), example_last_error());

    tradeauth_options_free(options);
    tradeauth_session_free(session);
    printf("partner example done\n");
    return 0;
}
