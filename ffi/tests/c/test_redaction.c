/* Issue #12: a WebSocket rejection that echoes the credential never reaches
 * `tradeauth_last_error_message`. The texts are what the simulator's `echo_credential`
 * fault answers on the Exchange WebSocket, plus one with the key pushed across the
 * 200-character cap. No network: an Exchange key session builds its auth message and
 * classifies replies locally. Exit status 0 when every check passes. */

#include <stdio.h>
#include <string.h>

#include "tradeauth.h"

#define KEY "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f"

static int failed;

static void check(int ok, const char *what) {
    if (!ok) {
        failed++;
        /* Never prints the message itself: on failure it holds the key. */
        fprintf(stderr, "FAIL: %s\n", what);
    }
}

static void expect_redacted(const struct tradeauth_session *session, const char *reply) {
    tradeauth_ws_reply result = TRADEAUTH_WS_UNRELATED;
    char message[2048];
    size_t written = 0;
    check(tradeauth_session_ws_handle_reply(session, reply, &result) == TRADEAUTH_OK,
          "ws_handle_reply returns OK");
    check(result == TRADEAUTH_WS_REJECTED, "the echo is a rejection");
    check(tradeauth_last_error_message(message, sizeof message, &written) == TRADEAUTH_OK,
          "the last error is readable");
    check(strstr(message, "invalid api key") != NULL || strstr(message, "xxxx") != NULL,
          "the last error quotes the venue");
    check(strstr(message, KEY) == NULL, "the key is not in the last error");
    check(strstr(message, "exch_1d4208be") == NULL, "no part of the key is in the last error");
}

int main(void) {
    struct tradeauth_options *options = NULL;
    struct tradeauth_session *session = NULL;
    char auth[4096];
    size_t written = 0;
    char padded[1024];

    check(tradeauth_options_new(&options) == TRADEAUTH_OK, "options");
    check(tradeauth_options_set_base_url(options, "https://127.0.0.1:9") == TRADEAUTH_OK,
          "base url");
    check(tradeauth_exchange_new(KEY, NULL, options, &session) == TRADEAUTH_OK, "session");
    tradeauth_options_free(options);
    if (session == NULL) {
        return 1;
    }
    /* A reply answers an auth message, made from the session's key. */
    check(tradeauth_session_ws_auth_message(session, 1, auth, sizeof auth, &written) ==
              TRADEAUTH_OK,
          "auth message");
    memset(auth, 0, sizeof auth);

    expect_redacted(session, "{\"type\":\"error\",\"message\":\"invalid api key: " KEY "\"}");
    memset(padded, 'x', 190);
    padded[190] = '\0';
    {
        char reply[1200];
        snprintf(reply, sizeof reply, "{\"type\":\"error\",\"message\":\"%s" KEY "\"}", padded);
        expect_redacted(session, reply);
    }
    tradeauth_session_free(session);
    if (failed) {
        fprintf(stderr, "%d check(s) failed\n", failed);
        return 1;
    }
    printf("redaction: the echoed key never reached the last error\n");
    return 0;
}
