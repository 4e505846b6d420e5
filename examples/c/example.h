/*
 * Helpers shared by the C examples: options from the simulator's environment variables,
 * failing with the library's own error message, and printing a header without its secret.
 */
#ifndef TRADEAUTH_EXAMPLE_H
#define TRADEAUTH_EXAMPLE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tradeauth.h"

/* The calling thread's last error message (static buffer: examples are single-threaded). */
static const char *example_last_error(void) {
    static char message[1024];
    size_t written = 0;
    if (tradeauth_last_error_message(message, sizeof message, &written) != TRADEAUTH_OK) {
        return "(message did not fit)";
    }
    return message;
}

/* Stops the example when a call fails, saying what failed and why. */
static void example_check(tradeauth_status status, const char *what) {
    if (status != TRADEAUTH_OK) {
        fprintf(stderr, "error: %s failed: %s (%s)\n", what, tradeauth_status_name(status),
                example_last_error());
        exit(1);
    }
}

/* A required environment variable (the simulator's URLs come from scripts/common.sh). */
static const char *example_env(const char *name) {
    const char *value = getenv(name);
    if (value == NULL || value[0] == '\0') {
        fprintf(stderr, "error: %s is not set (start the simulator: scripts/demo_c.sh)\n", name);
        exit(2);
    }
    return value;
}

/* Options for a venue: its base URL (argv[1] or the env var) and the simulator's CA. */
static tradeauth_options *example_options(int argc, char **argv, const char *url_var) {
    tradeauth_options *options = NULL;
    example_check(tradeauth_options_new(&options), "tradeauth_options_new");
    const char *url = argc > 1 ? argv[1] : example_env(url_var);
    example_check(tradeauth_options_set_base_url(options, url), "set_base_url");
    const char *ca = getenv("SIM_CA");
    if (ca != NULL && ca[0] != '\0') {
        example_check(tradeauth_options_add_root_file(options, ca), "add_root_file");
    }
    printf("venue base URL: %s\n", url);
    return options;
}

/* Fetches the header for the next request and prints it with the secret redacted. */
static void example_show_header(tradeauth_session *session) {
    char name[64];
    char value[4096];
    size_t name_len = 0;
    size_t value_len = 0;
    example_check(tradeauth_session_header(session, name, sizeof name, &name_len, value,
                                           sizeof value, &value_len),
                  "tradeauth_session_header");
    /* Never print a credential: show its shape only. */
    const char *scheme = strncmp(value, "Bearer ", 7) == 0 ? "Bearer " : "";
    printf("header for the next request: %s: %s<redacted, %zu characters>\n", name, scheme,
           value_len - strlen(scheme));
}

/* Builds the WebSocket auth message (request id `id`) and returns its length only: the
   message holds the credential (a client sends it on the WebSocket; it never prints it). */
static inline size_t example_ws_auth_message(tradeauth_session *session, uint64_t id) {
    char message[4096];
    size_t message_len = 0;
    example_check(tradeauth_session_ws_auth_message(session, id, message, sizeof message, &message_len),
                  "ws_auth_message");
    return message_len;
}

/* Classifies a text message received on the venue's WebSocket after the auth message.
   (Both WebSocket helpers are inline: only the Cascade and Exchange examples use them.) */
static inline tradeauth_ws_reply example_ws_reply(tradeauth_session *session, const char *text) {
    tradeauth_ws_reply reply = TRADEAUTH_WS_UNRELATED;
    example_check(tradeauth_session_ws_handle_reply(session, text, &reply), "ws_handle_reply");
    return reply;
}

/* Sends a request and prints the HTTP status, and the start of the body if `show_body`
   (off for answers that carry a key, such as Exchange's profile). Returns the status. */
static unsigned example_request(tradeauth_session *session, const char *method, const char *path,
                                const char *json_body, int show_body) {
    tradeauth_response *response = NULL;
    example_check(tradeauth_session_request(session, method, path, json_body, NULL, &response),
                  path);
    const uint8_t *body = NULL;
    size_t body_len = 0;
    example_check(tradeauth_response_body(response, &body, &body_len), "tradeauth_response_body");
    unsigned status = tradeauth_response_status(response);
    if (show_body) {
        printf("%s %s -> HTTP %u: %.160s%s\n", method, path, status, (const char *)body,
               body_len > 160 ? "..." : "");
    } else {
        printf("%s %s -> HTTP %u (%zu bytes, not shown: it holds a key)\n", method, path, status,
               body_len);
    }
    tradeauth_response_free(response);
    return status;
}

#endif /* TRADEAUTH_EXAMPLE_H */
