/*
 * ABI tests of libtradeauth, run against the simulator (scripts/test_c.sh starts it and
 * exports SIM_CADENZA, SIM_PARTNER, SIM_CASCADE, SIM_EXCHANGE, SIM_CONTROL, SIM_CA).
 *
 * Covers: every export with NULL in each pointer argument, non-UTF-8 input, too-small
 * buffers (size reported, buffer untouched), the event callback, 8 threads reading the
 * header during forced refreshes, the panic hook, and every status value the public API
 * can produce. Ends with "N passed, N failed, N skipped"; exits non-zero on a failure.
 *
 * TRADEAUTH_TEST_HEADER_READS (default 20000) sets the header reads per thread, so the
 * valgrind run can use fewer; TRADEAUTH_TEST_SETTLE_MS (default 300) how long to wait at
 * the end for freed sessions' connections to close (longer under valgrind).
 */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

/* ---------------------------------------------------------------- pure functions */

static void test_names_and_version(void) {
    const char *names[] = {"ok",           "invalid_argument", "insecure_url",
                           "transport",    "timeout",          "unauthorized",
                           "api_error",    "protocol",         "signing",
                           "challenge_expired", "buffer_too_small", "panic"};
    for (uint32_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        CHECK(strcmp(tradeauth_status_name(i), names[i]) == 0);
    }
    CHECK(strcmp(tradeauth_status_name(12), "closed") == 0);
    CHECK(TRADEAUTH_ERR_CLOSED == 12);
    CHECK(strcmp(tradeauth_status_name(13), "unknown") == 0);
    CHECK(strcmp(tradeauth_status_name(UINT32_MAX), "unknown") == 0);
    CHECK(TRADEAUTH_ERR_PANIC == 11 && TRADEAUTH_ERR_BUFFER_TOO_SMALL == 10);
    CHECK(tradeauth_version() != NULL && strlen(tradeauth_version()) > 0);
}

static void test_panic_hook(void) {
    EXPECT(tradeauth_test_panic(), TRADEAUTH_ERR_PANIC);
    CHECK(strstr(last_error(), "panic") != NULL);
    /* The library still works after a caught panic. */
    tradeauth_options *options = NULL;
    OK(tradeauth_options_new(&options));
    tradeauth_options_free(options);
}

/* ---------------------------------------------------------------- NULL arguments */

static void test_null_arguments(tradeauth_session *session, tradeauth_response *response) {
    char buf[64];
    size_t written = 12345;
    bool found = false;
    tradeauth_options *options = NULL;
    OK(tradeauth_options_new(&options));
    tradeauth_session *out = (tradeauth_session *)&written; /* a sentinel, never dereferenced */
    tradeauth_session *const sentinel = out;

    NULLARG(tradeauth_options_new(NULL));
    tradeauth_options_free(NULL);
    NULLARG(tradeauth_options_set_base_url(NULL, "https://x"));
    NULLARG(tradeauth_options_set_base_url(options, NULL));
    NULLARG(tradeauth_options_set_store(NULL, "memory:"));
    NULLARG(tradeauth_options_set_store(options, NULL));
    NULLARG(tradeauth_options_set_store_key(NULL, "00"));
    NULLARG(tradeauth_options_set_store_key(options, NULL));
    NULLARG(tradeauth_options_set_store_plaintext(NULL, true));
    NULLARG(tradeauth_options_set_store_lease_ms(NULL, 1000));
    NULLARG(tradeauth_options_add_root_pem(NULL, "-----BEGIN CERTIFICATE-----"));
    NULLARG(tradeauth_options_add_root_pem(options, NULL));
    NULLARG(tradeauth_options_add_root_file(NULL, "/dev/null"));
    NULLARG(tradeauth_options_add_root_file(options, NULL));
    NULLARG(tradeauth_options_set_request_timeout_ms(NULL, 1000));
    NULLARG(tradeauth_options_set_connect_timeout_ms(NULL, 1000));
    NULLARG(tradeauth_options_set_auth_timeout_ms(NULL, 1000));
    NULLARG(tradeauth_options_set_max_retries(NULL, 1));
    NULLARG(tradeauth_options_set_refresh_window_ms(NULL, 1000));
    NULLARG(tradeauth_options_set_background_refresh(NULL, false));
    NULLARG(tradeauth_options_set_retry_delays_ms(NULL, 100, 1000));
    NULLARG(tradeauth_options_set_max_date_skew_ms(NULL, 1000));
    NULLARG(tradeauth_options_set_max_lifetime_ms(NULL, 60000));
    NULLARG(tradeauth_options_set_store_timeout_ms(NULL, 1000));
    NULLARG(tradeauth_options_set_store_prefix(NULL, "p:"));
    NULLARG(tradeauth_options_set_store_prefix(options, NULL));
    NULLARG(tradeauth_options_set_store_ca_pem(NULL, "-----BEGIN CERTIFICATE-----"));
    NULLARG(tradeauth_options_set_store_ca_pem(options, NULL));

    NULLARG(tradeauth_cadenza_new(NULL, "pw", options, &out));
    NULLARG(tradeauth_cadenza_new("a@b.c", NULL, options, &out));
    NULLARG(tradeauth_cadenza_new("a@b.c", "pw", options, NULL));
    NULLARG(tradeauth_partner_new(NULL, "key", 0, options, &out));
    NULLARG(tradeauth_partner_new("client", NULL, 0, options, &out));
    NULLARG(tradeauth_partner_new("client", "key", 0, options, NULL));
    NULLARG(tradeauth_cascade_new(NULL, "0x01", options, &out));
    NULLARG(tradeauth_cascade_new("0x01", NULL, options, &out));
    NULLARG(tradeauth_cascade_new("0x01", "0x01", options, NULL));
    NULLARG(tradeauth_exchange_new(NULL, NULL, options, NULL));
    NULLARG(tradeauth_cadenza_from_env(options, NULL));
    NULLARG(tradeauth_partner_from_env(options, NULL));
    NULLARG(tradeauth_cascade_from_env(options, NULL));
    NULLARG(tradeauth_exchange_from_env(options, NULL));
    CHECK(out == sentinel); /* outputs untouched on failure */
    tradeauth_session_free(NULL);

    char value[4096];
    size_t value_written = 0;
    NULLARG(tradeauth_session_header(NULL, buf, sizeof buf, &written, value, sizeof value, &value_written));
    NULLARG(tradeauth_session_header(session, NULL, sizeof buf, &written, value, sizeof value, &value_written));
    NULLARG(tradeauth_session_header(session, buf, sizeof buf, NULL, value, sizeof value, &value_written));
    NULLARG(tradeauth_session_header(session, buf, sizeof buf, &written, NULL, sizeof value, &value_written));
    NULLARG(tradeauth_session_header(session, buf, sizeof buf, &written, value, sizeof value, NULL));
    NULLARG(tradeauth_session_invalidate(NULL, NULL));
    NULLARG(tradeauth_session_refresh(NULL));
    NULLARG(tradeauth_session_logout(NULL));
    NULLARG(tradeauth_session_ws_auth_message(NULL, 1, value, sizeof value, &written));
    NULLARG(tradeauth_session_ws_auth_message(session, 1, NULL, sizeof value, &written));
    NULLARG(tradeauth_session_ws_auth_message(session, 1, value, sizeof value, NULL));
    tradeauth_ws_reply reply = TRADEAUTH_WS_UNRELATED;
    NULLARG(tradeauth_session_ws_handle_reply(NULL, "{}", &reply));
    NULLARG(tradeauth_session_ws_handle_reply(session, NULL, &reply));
    NULLARG(tradeauth_session_ws_handle_reply(session, "{}", NULL));
    uint64_t due_ms = 0;
    bool is_private = false;
    NULLARG(tradeauth_session_ws_reauth_due_ms(NULL, &due_ms));
    NULLARG(tradeauth_session_ws_reauth_due_ms(session, NULL));
    NULLARG(tradeauth_session_ws_is_private(NULL, "{}", &is_private));
    NULLARG(tradeauth_session_ws_is_private(session, NULL, &is_private));
    NULLARG(tradeauth_session_ws_is_private(session, "{}", NULL));
    NULLARG(tradeauth_session_set_event_callback(NULL, NULL, NULL));
    CHECK(tradeauth_session_venue(NULL) == NULL);
    NULLARG(tradeauth_session_account(NULL, buf, sizeof buf, &written));
    NULLARG(tradeauth_session_account(session, NULL, sizeof buf, &written));
    NULLARG(tradeauth_session_account(session, buf, sizeof buf, NULL));
    uint64_t expiry = 0;
    NULLARG(tradeauth_session_expires_at_ms(NULL, &expiry));
    NULLARG(tradeauth_session_expires_at_ms(session, NULL));

    tradeauth_response *resp_out = NULL;
    NULLARG(tradeauth_session_request(NULL, "GET", "/", NULL, NULL, &resp_out));
    NULLARG(tradeauth_session_request(session, NULL, "/", NULL, NULL, &resp_out));
    NULLARG(tradeauth_session_request(session, "GET", NULL, NULL, NULL, &resp_out));
    NULLARG(tradeauth_session_request(session, "GET", "/", NULL, NULL, NULL));
    CHECK(resp_out == NULL);
    CHECK(tradeauth_response_status(NULL) == 0);
    const uint8_t *body = NULL;
    size_t body_len = 0;
    NULLARG(tradeauth_response_body(NULL, &body, &body_len));
    NULLARG(tradeauth_response_body(response, NULL, &body_len));
    NULLARG(tradeauth_response_body(response, &body, NULL));
    NULLARG(tradeauth_response_header(NULL, "x", buf, sizeof buf, &written, &found));
    NULLARG(tradeauth_response_header(response, NULL, buf, sizeof buf, &written, &found));
    NULLARG(tradeauth_response_header(response, "x", NULL, sizeof buf, &written, &found));
    NULLARG(tradeauth_response_header(response, "x", buf, sizeof buf, NULL, &found));
    NULLARG(tradeauth_response_header(response, "x", buf, sizeof buf, &written, NULL));
    tradeauth_response_free(NULL);

    NULLARG(tradeauth_last_error_message(NULL, 10, &written));
    NULLARG(tradeauth_last_error_message(buf, sizeof buf, NULL));
    /* The NULL message names the argument. */
    NULLARG(tradeauth_session_account(session, buf, sizeof buf, NULL));
    CHECK(strstr(last_error(), "written") != NULL);
    tradeauth_options_free(options);
}

/* ---------------------------------------------------------------- non-UTF-8 input */

static void test_bad_utf8(tradeauth_session *session, tradeauth_response *response) {
    const char *bad = "caf\xc3\x28-\xff\xfe";
    char buf[64];
    size_t written = 0;
    bool found = false;
    tradeauth_options *options = NULL;
    tradeauth_session *out = NULL;
    tradeauth_response *resp_out = NULL;
    tradeauth_ws_reply reply = TRADEAUTH_WS_UNRELATED;
    OK(tradeauth_options_new(&options));

    NULLARG(tradeauth_options_set_base_url(options, bad));
    CHECK(strstr(last_error(), "UTF-8") != NULL);
    NULLARG(tradeauth_options_set_store(options, bad));
    NULLARG(tradeauth_options_set_store_key(options, bad));
    NULLARG(tradeauth_options_add_root_pem(options, bad));
    NULLARG(tradeauth_options_add_root_file(options, bad));
    NULLARG(tradeauth_cadenza_new(bad, "pw", options, &out));
    NULLARG(tradeauth_cadenza_new("a@b.c", bad, options, &out));
    CHECK(strstr(last_error(), "password") != NULL && strstr(last_error(), "UTF-8") != NULL);
    NULLARG(tradeauth_partner_new(bad, "key", 0, options, &out));
    NULLARG(tradeauth_partner_new("client", bad, 0, options, &out));
    NULLARG(tradeauth_cascade_new(bad, "0x01", options, &out));
    NULLARG(tradeauth_cascade_new("0x01", bad, options, &out));
    NULLARG(tradeauth_exchange_new(bad, NULL, options, &out));
    NULLARG(tradeauth_exchange_new(NULL, bad, options, &out));
    CHECK(out == NULL);
    NULLARG(tradeauth_session_invalidate(session, bad));
    NULLARG(tradeauth_session_ws_handle_reply(session, bad, &reply));
    NULLARG(tradeauth_session_request(session, bad, "/", NULL, NULL, &resp_out));
    NULLARG(tradeauth_session_request(session, "GET", bad, NULL, NULL, &resp_out));
    NULLARG(tradeauth_session_request(session, "POST", "/", bad, NULL, &resp_out));
    NULLARG(tradeauth_session_request(session, "GET", "/", NULL, bad, &resp_out));
    CHECK(resp_out == NULL);
    NULLARG(tradeauth_response_header(response, bad, buf, sizeof buf, &written, &found));
    tradeauth_options_free(options);
}

/* ---------------------------------------------------------------- options and constructors */

static void test_option_and_constructor_errors(void) {
    tradeauth_options *options = NULL;
    tradeauth_session *out = NULL;
    OK(tradeauth_options_new(&options));
    NULLARG(tradeauth_options_set_request_timeout_ms(options, 0));
    NULLARG(tradeauth_options_set_store_lease_ms(options, 0));
    NULLARG(tradeauth_options_set_connect_timeout_ms(options, 0));
    NULLARG(tradeauth_options_set_auth_timeout_ms(options, 0));
    NULLARG(tradeauth_options_set_refresh_window_ms(options, 0));
    NULLARG(tradeauth_options_set_retry_delays_ms(options, 0, 1000));
    NULLARG(tradeauth_options_set_retry_delays_ms(options, 2000, 1000));
    CHECK(strstr(last_error(), "max delay") != NULL);
    OK(tradeauth_options_set_retry_delays_ms(options, 100, 1000));
    OK(tradeauth_options_set_max_date_skew_ms(options, 0)); /* believe no Date at all */
    NULLARG(tradeauth_options_set_max_lifetime_ms(options, 0));
    NULLARG(tradeauth_options_set_store_timeout_ms(options, 0));
    OK(tradeauth_options_set_store_prefix(options, "desk-7:"));
    NULLARG(tradeauth_options_set_store_ca_pem(options, "not a certificate"));
    {
        /* A max lifetime under a second reaches core, which refuses it for the session. */
        tradeauth_options *short_lived = NULL;
        tradeauth_session *none = NULL;
        OK(tradeauth_options_new(&short_lived));
        OK(tradeauth_options_set_max_lifetime_ms(short_lived, 500));
        NULLARG(tradeauth_cadenza_new("a@b.c", "pw", short_lived, &none));
        CHECK(none == NULL);
        tradeauth_options_free(short_lived);
    }
    NULLARG(tradeauth_options_add_root_pem(options, "not a certificate"));
    NULLARG(tradeauth_options_add_root_file(options, "/nonexistent/ca.pem"));
    CHECK(strstr(last_error(), "/nonexistent/ca.pem") != NULL);
    OK(tradeauth_options_set_background_refresh(options, false));

    /* NULL options means the defaults; nothing is sent before the first use. */
    OK(tradeauth_cadenza_new("a@b.c", "pw", NULL, &out));
    CHECK(out != NULL && strcmp(tradeauth_session_venue(out), "cadenza") == 0);
    tradeauth_session_free(out);
    out = NULL;

    NULLARG(tradeauth_exchange_new("exch_1d4208be6fa84b8cb0a2e5cfa9508d5f", "admin", options, &out));
    NULLARG(tradeauth_exchange_new("exch_123", NULL, options, &out));
    CHECK(strstr(last_error(), "exch_123") == NULL); /* the key is never echoed */
    NULLARG(tradeauth_cascade_new("0x1234", "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
                                  options, &out));
    NULLARG(tradeauth_cascade_new("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "0xnot-a-key", options, &out));
    CHECK(strstr(last_error(), "not-a-key") == NULL);
    /* Partner has no public host: a base URL is required. */
    NULLARG(tradeauth_partner_new("client", "key", 0, options, &out));

    OK(tradeauth_options_set_base_url(options, "http://127.0.0.1:1"));
    EXPECT(tradeauth_cadenza_new("a@b.c", "pw", options, &out), TRADEAUTH_ERR_INSECURE_URL);
    CHECK(out == NULL);

    /* from_env: a missing variable is named in the message. */
    unsetenv("CADENZA_EMAIL");
    NULLARG(tradeauth_cadenza_from_env(NULL, &out));
    CHECK(strstr(last_error(), "CADENZA_EMAIL") != NULL);
    tradeauth_options_free(options);
}

/* ---------------------------------------------------------------- buffers */

static void test_buffers(tradeauth_session *session) {
    char name[64];
    char value[4096];
    size_t name_written = 0;
    size_t value_written = 0;
    OK(tradeauth_session_header(session, name, sizeof name, &name_written, value, sizeof value,
                                &value_written));
    CHECK(strcmp(name, "authorization") == 0 && name_written == strlen(name));
    CHECK(strncmp(value, "Bearer ", 7) == 0 && value_written == strlen(value));
    size_t value_len = value_written;

    /* Name buffer too small: both sizes reported, both buffers untouched. */
    char small_name[4];
    char big_value[4096];
    memset(small_name, 'Z', sizeof small_name);
    memset(big_value, 'Z', sizeof big_value);
    EXPECT(tradeauth_session_header(session, small_name, sizeof small_name, &name_written, big_value,
                                    sizeof big_value, &value_written),
           TRADEAUTH_ERR_BUFFER_TOO_SMALL);
    CHECK(name_written == strlen("authorization") + 1);
    CHECK(value_written == value_len + 1);
    CHECK(small_name[0] == 'Z' && small_name[3] == 'Z' && big_value[0] == 'Z');

    /* Value buffer one byte short (no room for the NUL). */
    char *short_value = malloc(value_len);
    memset(short_value, 'Z', value_len);
    EXPECT(tradeauth_session_header(session, name, sizeof name, &name_written, short_value, value_len,
                                    &value_written),
           TRADEAUTH_ERR_BUFFER_TOO_SMALL);
    CHECK(value_written == value_len + 1);
    CHECK(short_value[0] == 'Z' && short_value[value_len - 1] == 'Z');
    free(short_value);

    /* Exactly the size reported works. */
    char *exact = malloc(value_len + 1);
    OK(tradeauth_session_header(session, name, 14, &name_written, exact, value_len + 1, &value_written));
    CHECK(value_written == value_len && exact[value_len] == '\0');
    free(exact);

    /* Zero-length buffers. */
    EXPECT(tradeauth_session_header(session, name, 0, &name_written, value, 0, &value_written),
           TRADEAUTH_ERR_BUFFER_TOO_SMALL);

    /* Account label. */
    char account[8];
    size_t written = 0;
    memset(account, 'Z', sizeof account);
    EXPECT(tradeauth_session_account(session, account, sizeof account, &written),
           TRADEAUTH_ERR_BUFFER_TOO_SMALL);
    CHECK(written == strlen("demo@cadenza.test") + 1 && account[0] == 'Z');
    char full[64];
    OK(tradeauth_session_account(session, full, sizeof full, &written));
    CHECK(strcmp(full, "demo@cadenza.test") == 0);

    /* Last error: too small keeps the message and leaves the buffer alone. */
    EXPECT(tradeauth_session_account(session, account, sizeof account, &written),
           TRADEAUTH_ERR_BUFFER_TOO_SMALL);
    char message[2048];
    size_t message_len = 0;
    OK(tradeauth_last_error_message(message, sizeof message, &message_len));
    CHECK(message_len == strlen(message) && strstr(message, "account") != NULL);
    char tiny[5];
    memset(tiny, 'Z', sizeof tiny);
    size_t needed = 0;
    EXPECT(tradeauth_last_error_message(tiny, sizeof tiny, &needed), TRADEAUTH_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == message_len + 1 && tiny[0] == 'Z' && tiny[4] == 'Z');
    char again[2048];
    OK(tradeauth_last_error_message(again, sizeof again, &message_len));
    CHECK(strcmp(again, message) == 0);
}

/* ---------------------------------------------------------------- requests and responses */

static void test_requests(tradeauth_session *session) {
    tradeauth_response *response = NULL;
    OK(tradeauth_session_request(session, "GET", "/api/v3/user/profile", NULL,
                                 "X-Request-Id: abc-123\r\nAccept: application/json\n", &response));
    if (response == NULL) {
        return;
    }
    CHECK(tradeauth_response_status(response) == 200);
    const uint8_t *body = NULL;
    size_t len = 0;
    OK(tradeauth_response_body(response, &body, &len));
    CHECK(len > 0 && body[len] == '\0' && strstr((const char *)body, "demo@cadenza.test") != NULL);
    char value[256];
    size_t written = 0;
    bool found = false;
    OK(tradeauth_response_header(response, "Content-Type", value, sizeof value, &written, &found));
    CHECK(found && strstr(value, "json") != NULL && written == strlen(value));
    OK(tradeauth_response_header(response, "x-not-there", value, sizeof value, &written, &found));
    CHECK(!found && written == 0 && value[0] == '\0');
    char tiny[2] = {'Z', 'Z'};
    EXPECT(tradeauth_response_header(response, "content-type", tiny, sizeof tiny, &written, &found),
           TRADEAUTH_ERR_BUFFER_TOO_SMALL);
    CHECK(written > 2 && tiny[0] == 'Z');
    tradeauth_response_free(response);

    /* Bad input is refused before anything is sent. */
    response = NULL;
    NULLARG(tradeauth_session_request(session, "TRACE", "/", NULL, NULL, &response));
    NULLARG(tradeauth_session_request(session, "POST", "/api/v3/x", "{not json", NULL, &response));
    NULLARG(tradeauth_session_request(session, "GET", "/", NULL, "no colon here", &response));
    NULLARG(tradeauth_session_request(session, "GET", "/", NULL, "X-Evil: a\x01" "b", &response));
    NULLARG(tradeauth_session_request(session, "GET", "https://elsewhere.invalid/x", NULL, NULL, &response));
    CHECK(response == NULL);

    /* An HTTP error is a response, not a failure. */
    OK(tradeauth_session_request(session, "GET", "/api/v3/no/such/path", NULL, NULL, &response));
    CHECK(tradeauth_response_status(response) == 404);
    tradeauth_response_free(response);
}

/* ---------------------------------------------------------------- invalidate / refresh / events */

typedef struct {
    pthread_mutex_t lock;
    int counts[5];
    int failed_status;
    int bad_messages;
} event_log;

static void on_event(void *userdata, tradeauth_event_kind kind, tradeauth_status error,
                     const char *message) {
    event_log *log = (event_log *)userdata;
    pthread_mutex_lock(&log->lock);
    if (kind >= 1 && kind <= 4) {
        log->counts[kind]++;
    }
    if (kind == TRADEAUTH_EVENT_FAILED) {
        log->failed_status = (int)error;
    }
    if (message == NULL || strstr(message, "Bearer") != NULL || strstr(message, "demo-password") != NULL) {
        log->bad_messages++;
    }
    pthread_mutex_unlock(&log->lock);
}

static int event_count(event_log *log, tradeauth_event_kind kind) {
    pthread_mutex_lock(&log->lock);
    int n = log->counts[kind];
    pthread_mutex_unlock(&log->lock);
    return n;
}

static int wait_for_event(event_log *log, tradeauth_event_kind kind, int at_least) {
    for (int i = 0; i < 500; i++) {
        if (event_count(log, kind) >= at_least) {
            return 1;
        }
        sleep_ms(10);
    }
    return 0;
}

static void header_value(tradeauth_session *session, char *value, size_t len) {
    char name[64];
    size_t name_written = 0;
    size_t value_written = 0;
    OK(tradeauth_session_header(session, name, sizeof name, &name_written, value, len, &value_written));
}

/* A Cadenza session on the simulator with the default options; NULL (and a failed check)
   if it cannot be made. */
static tradeauth_session *cadenza_session(void) {
    tradeauth_options *options = options_for(env("SIM_CADENZA"));
    tradeauth_session *session = NULL;
    OK(tradeauth_cadenza_new("demo@cadenza.test", "demo-password", options, &session));
    tradeauth_options_free(options);
    return session;
}

/* Asks for the session's header with buffers that always fit; the name goes to `name`
   (64 bytes), the value is not kept. Returns the status. */
static tradeauth_status header_name(tradeauth_session *session, char *name) {
    char value[4096];
    size_t name_written = 0;
    size_t value_written = 0;
    return tradeauth_session_header(session, name, 64, &name_written, value, sizeof value, &value_written);
}

static void test_invalidate_refresh_events(void) {
    event_log log;
    memset(&log, 0, sizeof log);
    pthread_mutex_init(&log.lock, NULL);
    tradeauth_session *session = cadenza_session();
    if (session == NULL) {
        return;
    }
    OK(tradeauth_session_set_event_callback(session, on_event, &log));

    char first[4096];
    char second[4096];
    header_value(session, first, sizeof first);
    CHECK(wait_for_event(&log, TRADEAUTH_EVENT_LOGGED_IN, 1));
    uint64_t expiry = 0;
    OK(tradeauth_session_expires_at_ms(session, &expiry));
    CHECK(expiry > 1700000000000ULL);

    /* A stale rejected value is ignored: no new login. */
    long logins = stat_counter("cadenza", "logins");
    long refreshes = stat_counter("cadenza", "refreshes");
    OK(tradeauth_session_invalidate(session, "Bearer some-older-token"));
    header_value(session, second, sizeof second);
    CHECK(strcmp(first, second) == 0);

    /* Invalidating the current value makes the next header a new one. */
    OK(tradeauth_session_invalidate(session, first));
    header_value(session, second, sizeof second);
    CHECK(strcmp(first, second) != 0);
    CHECK(stat_counter("cadenza", "logins") + stat_counter("cadenza", "refreshes") > logins + refreshes);

    /* A forced refresh gives a new value and a Refreshed event. */
    OK(tradeauth_session_refresh(session));
    header_value(session, first, sizeof first);
    CHECK(strcmp(first, second) != 0);
    CHECK(wait_for_event(&log, TRADEAUTH_EVENT_REFRESHED, 1));

    /* Replacing and removing the callback: nothing is delivered afterwards. */
    OK(tradeauth_session_set_event_callback(session, on_event, &log));
    OK(tradeauth_session_set_event_callback(session, NULL, NULL));
    int before = event_count(&log, TRADEAUTH_EVENT_REFRESHED);
    OK(tradeauth_session_refresh(session));
    sleep_ms(100);
    CHECK(event_count(&log, TRADEAUTH_EVENT_REFRESHED) == before);

    /* Logout wipes the credential; the next header logs in again. */
    OK(tradeauth_session_set_event_callback(session, on_event, &log));
    OK(tradeauth_session_logout(session));
    OK(tradeauth_session_expires_at_ms(session, &expiry));
    CHECK(expiry == 0);
    header_value(session, second, sizeof second);
    CHECK(strncmp(second, "Bearer ", 7) == 0);
    CHECK(wait_for_event(&log, TRADEAUTH_EVENT_LOGGED_IN, 2));
    CHECK(log.bad_messages == 0);
    /* Freed with the callback still registered: free stops it. */
    tradeauth_session_free(session);
    pthread_mutex_destroy(&log.lock);
}

/* ---------------------------------------------------------------- concurrency */

typedef struct {
    tradeauth_session *session;
    long reads;
    long errors;
    long changes;
    int yield; /* give the CPU away after each read (valgrind runs one thread at a time) */
} reader;

/* Set by the main thread when its forced refreshes are done. */
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static int stop_readers;

static int readers_stopped(void) {
    pthread_mutex_lock(&stop_lock);
    int stopped = stop_readers;
    pthread_mutex_unlock(&stop_lock);
    return stopped;
}

static void *read_headers(void *arg) {
    reader *r = (reader *)arg;
    char name[64];
    char value[4096];
    char previous[4096] = "";
    size_t name_written = 0;
    size_t value_written = 0;
    long done = 0;
    /* At least `reads` reads, and on until the refreshes are over: a last round of 1024
     * reads begun after the stop flag was seen (it is set after the last refresh returned),
     * so each reader reads the last refreshed value too. */
    long stop_at = -1;
    for (long i = 0;; i++) {
        if (i >= r->reads && i % 1024 == 0) {
            if (stop_at >= 0 && i >= stop_at) {
                break;
            }
            if (stop_at < 0 && readers_stopped()) {
                stop_at = i + 1024;
            }
        }
        done++;
        tradeauth_status st = tradeauth_session_header(r->session, name, sizeof name, &name_written,
                                                       value, sizeof value, &value_written);
        if (st != TRADEAUTH_OK || strncmp(value, "Bearer ", 7) != 0 || value_written != strlen(value)) {
            r->errors++;
            continue;
        }
        if (strcmp(previous, value) != 0) {
            r->changes++;
            memcpy(previous, value, value_written + 1);
        }
        if (r->yield) {
            sched_yield();
        }
    }
    r->reads = done;
    return NULL;
}

static void test_concurrent_reads(void) {
    const char *reads_env = getenv("TRADEAUTH_TEST_HEADER_READS");
    long reads = reads_env != NULL ? strtol(reads_env, NULL, 10) : 20000;
    /* Under valgrind every thread shares one CPU: spinning readers would starve the
       library's runtime threads and the refreshes would time out. */
    int yield = getenv("TRADEAUTH_TEST_READERS_YIELD") != NULL;
    tradeauth_session *session = cadenza_session();
    if (session == NULL) {
        return;
    }
    enum { THREADS = 8 };
    pthread_t threads[THREADS];
    reader readers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        readers[i].session = session;
        readers[i].reads = reads;
        readers[i].errors = 0;
        readers[i].changes = 0;
        readers[i].yield = yield;
        CHECK(pthread_create(&threads[i], NULL, read_headers, &readers[i]) == 0);
    }
    /* Forced refreshes while the readers run. */
    int refreshes = 0;
    for (int i = 0; i < 5; i++) {
        sleep_ms(20);
        if (tradeauth_session_refresh(session) == TRADEAUTH_OK) {
            refreshes++;
        }
    }
    pthread_mutex_lock(&stop_lock);
    stop_readers = 1;
    pthread_mutex_unlock(&stop_lock);
    long errors = 0;
    long changes = 0;
    long total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        errors += readers[i].errors;
        changes += readers[i].changes;
        total += readers[i].reads;
    }
    CHECK(refreshes == 5);
    CHECK(errors == 0);
    /* Every reader saw the first value and at least one refreshed one. */
    CHECK(changes >= 2 * THREADS);
    printf("concurrency: %d threads, %ld header reads in all, %d forced refreshes, "
           "%ld value changes seen by readers, %ld errors\n",
           THREADS, total, refreshes, changes, errors);
    tradeauth_session_free(session);
}

/* ---------------------------------------------------------------- WebSocket messages */

static void test_ws(void) {
    char message[4096];
    size_t written = 0;
    tradeauth_ws_reply reply = TRADEAUTH_WS_UNRELATED;

    tradeauth_options *options = options_for(env("SIM_CASCADE"));
    tradeauth_session *cascade = NULL;
    OK(tradeauth_cascade_new("0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                             "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80", options,
                             &cascade));
    tradeauth_options_free(options);
    if (cascade != NULL) {
        OK(tradeauth_session_ws_auth_message(cascade, 7, message, sizeof message, &written));
        CHECK(strstr(message, "\"method\":\"auth\"") != NULL && strstr(message, "\"id\":7") != NULL);
        char tiny[8];
        memset(tiny, 'Z', sizeof tiny);
        size_t needed = 0;
        EXPECT(tradeauth_session_ws_auth_message(cascade, 7, tiny, sizeof tiny, &needed),
               TRADEAUTH_ERR_BUFFER_TOO_SMALL);
        CHECK(needed == written + 1 && tiny[0] == 'Z');
        OK(tradeauth_session_ws_handle_reply(
            cascade, "{\"jsonrpc\":\"2.0\",\"method\":\"orderbook\",\"params\":{}}", &reply));
        CHECK(reply == TRADEAUTH_WS_UNRELATED);
        OK(tradeauth_session_ws_handle_reply(
            cascade, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"authenticated\":true}}", &reply));
        CHECK(reply == TRADEAUTH_WS_AUTHENTICATED);
        OK(tradeauth_session_ws_handle_reply(
            cascade,
            "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32001,\"message\":\"Invalid Bearer Token\"}}",
            &reply));
        CHECK(reply == TRADEAUTH_WS_REJECTED);
        CHECK(strstr(last_error(), "Invalid Bearer Token") != NULL);
        OK(tradeauth_session_ws_handle_reply(cascade, "not json at all", &reply));
        CHECK(reply == TRADEAUTH_WS_UNRELATED);
        /* After a rejection the next message carries a fresh token. */
        char again[4096];
        OK(tradeauth_session_ws_auth_message(cascade, 8, again, sizeof again, &written));
        CHECK(strstr(again, "\"id\":8") != NULL);
        /* A fresh token (1 h): the next auth is due before it ends, not now. */
        uint64_t due_ms = 0;
        OK(tradeauth_session_ws_reauth_due_ms(cascade, &due_ms));
        CHECK(due_ms > 0 && due_ms <= 3600u * 1000u);
        bool is_private = false;
        OK(tradeauth_session_ws_is_private(
            cascade, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"order.create\",\"params\":{}}", &is_private));
        CHECK(is_private);
        OK(tradeauth_session_ws_is_private(
            cascade,
            "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"subscribe\",\"params\":{\"channel\":\"orderbook\",\"market\":\"ETH-USD\"}}",
            &is_private));
        CHECK(!is_private);
        EXPECT(tradeauth_session_ws_is_private(cascade, "not json", &is_private),
               TRADEAUTH_ERR_INVALID_ARGUMENT);
        tradeauth_session_free(cascade);
    }

    options = options_for(env("SIM_EXCHANGE"));
    tradeauth_session *exchange = NULL;
    OK(tradeauth_exchange_new("exch_1d4208be6fa84b8cb0a2e5cfa9508d5f", NULL, options, &exchange));
    tradeauth_options_free(options);
    if (exchange != NULL) {
        OK(tradeauth_session_ws_auth_message(exchange, 0, message, sizeof message, &written));
        CHECK(strstr(message, "\"op\":\"authenticate\"") != NULL);
        OK(tradeauth_session_ws_handle_reply(
            exchange, "{\"type\":\"authenticated\",\"trader_id\":\"t\",\"username\":\"team-alpha\"}", &reply));
        CHECK(reply == TRADEAUTH_WS_AUTHENTICATED);
        OK(tradeauth_session_ws_handle_reply(exchange, "{\"type\":\"pong\"}", &reply));
        CHECK(reply == TRADEAUTH_WS_UNRELATED);
        /* A permanent key: no re-auth is ever due; trading ops wait for auth. */
        uint64_t never = 0;
        OK(tradeauth_session_ws_reauth_due_ms(exchange, &never));
        CHECK(never == UINT64_MAX);
        bool held_back = false;
        OK(tradeauth_session_ws_is_private(exchange, "{\"op\":\"place_order\"}", &held_back));
        CHECK(held_back);
        OK(tradeauth_session_ws_is_private(
            exchange, "{\"op\":\"subscribe\",\"channel\":\"orderbook\",\"market\":\"BTC-USD\"}", &held_back));
        CHECK(!held_back);
        char name[64];
        OK(header_name(exchange, name));
        CHECK(strcmp(name, "x-api-key") == 0);
        uint64_t expiry = 1;
        OK(tradeauth_session_expires_at_ms(exchange, &expiry));
        CHECK(expiry == 0);
        /* The venue refusing the key on the WebSocket withholds it, as a 401 does: the
           permanent key is not presented again until logout. */
        OK(tradeauth_session_ws_handle_reply(exchange, "{\"type\":\"error\",\"message\":\"invalid api key\"}",
                                             &reply));
        CHECK(reply == TRADEAUTH_WS_REJECTED);
        EXPECT(header_name(exchange, name), TRADEAUTH_ERR_UNAUTHORIZED);
        tradeauth_session_free(exchange);
    }

    /* Cadenza has no WebSocket auth. */
    options = options_for(env("SIM_CADENZA"));
    tradeauth_session *cadenza = NULL;
    OK(tradeauth_cadenza_new("demo@cadenza.test", "demo-password", options, &cadenza));
    tradeauth_options_free(options);
    NULLARG(tradeauth_session_ws_auth_message(cadenza, 1, message, sizeof message, &written));
    tradeauth_session_free(cadenza);
}

/* ---------------------------------------------------------------- every status */

/* Makes a Cadenza session with `options` and asks for a header, expecting `want`. */
static void expect_login(tradeauth_options *options, const char *password, tradeauth_status want,
                         const char *label) {
    tradeauth_session *session = NULL;
    OK(tradeauth_cadenza_new("demo@cadenza.test", password, options, &session));
    char name[64];
    char value[4096];
    size_t name_written = 0;
    size_t value_written = 0;
    memset(value, 'Z', sizeof value);
    tradeauth_status st = tradeauth_session_header(session, name, sizeof name, &name_written, value,
                                                   sizeof value, &value_written);
    expect(st, want, label, __FILE__, __LINE__);
    CHECK(value[0] == 'Z'); /* no output on failure */
    if (st != TRADEAUTH_OK) {
        const char *message = last_error();
        CHECK(strlen(message) > 0 && strstr(message, password) == NULL);
        printf("  %-18s <- %s: %s\n", tradeauth_status_name(st), label, message);
    }
    tradeauth_session_free(session);
}

static void test_every_status(void) {
    printf("every status:\n");
    tradeauth_options *options = options_for(env("SIM_CADENZA"));
    OK(tradeauth_options_set_background_refresh(options, false));

    /* UNAUTHORIZED: a wrong password. */
    expect_login(options, "wrong-password-x", TRADEAUTH_ERR_UNAUTHORIZED, "wrong password");

    /* API_ERROR: the venue answers 503 (no retries configured). */
    control_call("POST", "/faults",
                 "{\"venue\":\"cadenza\",\"path\":\"/api/v3/auth/login\",\"kind\":\"status\",\"status\":503}");
    expect_login(options, "demo-password", TRADEAUTH_ERR_API_ERROR, "HTTP 503 on login");

    /* PROTOCOL: a truncated JSON body. */
    control_call("POST", "/faults", "{\"venue\":\"cadenza\",\"path\":\"/api/v3/auth/login\",\"kind\":\"malformed\"}");
    expect_login(options, "demo-password", TRADEAUTH_ERR_PROTOCOL, "malformed login answer");
    control_call("DELETE", "/faults", NULL);

    /* TIMEOUT: the venue takes 800 ms to answer a login given 200 ms. */
    control_call("POST", "/faults",
                 "{\"venue\":\"cadenza\",\"path\":\"/api/v3/auth/login\",\"kind\":\"delay\",\"delay_ms\":800}");
    tradeauth_options *hurried = options_for(env("SIM_CADENZA"));
    OK(tradeauth_options_set_auth_timeout_ms(hurried, 200));
    expect_login(hurried, "demo-password", TRADEAUTH_ERR_TIMEOUT, "slow login, 200 ms budget");
    tradeauth_options_free(hurried);
    control_call("DELETE", "/faults", NULL);

    /* TRANSPORT: nothing listens on port 1. */
    tradeauth_options *nowhere = options_for("https://127.0.0.1:1");
    expect_login(nowhere, "demo-password", TRADEAUTH_ERR_TRANSPORT, "connection refused");
    tradeauth_options_free(nowhere);

    /* TRANSPORT: a server whose certificate is not trusted (no sim CA). */
    tradeauth_options *untrusted = NULL;
    OK(tradeauth_options_new(&untrusted));
    OK(tradeauth_options_set_base_url(untrusted, env("SIM_CADENZA")));
    OK(tradeauth_options_set_max_retries(untrusted, 0));
    expect_login(untrusted, "demo-password", TRADEAUTH_ERR_TRANSPORT, "untrusted certificate");
    CHECK(strstr(last_error(), "certificate") != NULL);
    tradeauth_options_free(untrusted);

    /* INSECURE_URL, INVALID_ARGUMENT, BUFFER_TOO_SMALL and PANIC are covered above. */
    tradeauth_options *plain = NULL;
    tradeauth_session *session = NULL;
    OK(tradeauth_options_new(&plain));
    OK(tradeauth_options_set_base_url(plain, "http://127.0.0.1:1"));
    EXPECT(tradeauth_cadenza_new("demo@cadenza.test", "demo-password", plain, &session),
           TRADEAUTH_ERR_INSECURE_URL);
    tradeauth_options_free(plain);

    /* CHALLENGE_EXPIRED: the sim delays the challenge answer past a 1 s nonce lifetime. */
    control_call("POST", "/lifetimes", "{\"venue\":\"cascade\",\"nonce_ttl_secs\":1}");
    control_call("POST", "/faults",
                 "{\"venue\":\"cascade\",\"path\":\"/auth\",\"kind\":\"delay\",\"delay_ms\":1300,\"count\":2}");
    tradeauth_options *cascade_options = options_for(env("SIM_CASCADE"));
    OK(tradeauth_options_set_background_refresh(cascade_options, false));
    OK(tradeauth_cascade_new("0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                             "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
                             cascade_options, &session));
    tradeauth_options_free(cascade_options);
    char name[64];
    EXPECT(header_name(session, name), TRADEAUTH_ERR_CHALLENGE_EXPIRED);
    printf("  %-18s <- nonce outlived: %s\n", "challenge_expired", last_error());
    tradeauth_session_free(session);
    control_call("DELETE", "/faults", NULL);
    control_call("POST", "/lifetimes", "{\"venue\":\"cascade\",\"nonce_ttl_secs\":300}");

    /* SIGNING: every key the constructor accepts signs; no input reaches this status. */
    printf("  %-18s <- not reachable through the API (any key accepted by the constructor signs)\n",
           "signing");
    skipped++;
    tradeauth_options_free(options);
}

/* Two sessions on one account sharing a file store: one login between them. */
static void test_store(void) {
    char dir[] = "/tmp/tradeauth-store-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char url[sizeof dir + 16];
    snprintf(url, sizeof url, "file://%s", dir);
    control_call("POST", "/reset", NULL);

    /* A store without a key is refused unless plaintext is asked for. */
    tradeauth_options *keyless = options_for(env("SIM_CADENZA"));
    OK(tradeauth_options_set_store(keyless, url));
    unsetenv("TRADEAUTH_STORE_KEY");
    tradeauth_session *refused = NULL;
    EXPECT(tradeauth_cadenza_new("demo@cadenza.test", "demo-password", keyless, &refused),
           TRADEAUTH_ERR_INVALID_ARGUMENT);
    CHECK(refused == NULL);
    tradeauth_options_free(keyless);

    tradeauth_options *options = options_for(env("SIM_CADENZA"));
    OK(tradeauth_options_set_store(options, url));
    OK(tradeauth_options_set_store_key(options,
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
    OK(tradeauth_options_set_store_lease_ms(options, 2000));
    tradeauth_session *first = NULL;
    tradeauth_session *second = NULL;
    OK(tradeauth_cadenza_new("demo@cadenza.test", "demo-password", options, &first));
    OK(tradeauth_cadenza_new("demo@cadenza.test", "demo-password", options, &second));
    tradeauth_options_free(options);
    char a[4096];
    char b[4096];
    header_value(first, a, sizeof a);
    header_value(second, b, sizeof b);
    CHECK(strcmp(a, b) == 0);
    CHECK(stat_counter("cadenza", "logins") == 1);
    tradeauth_session_free(first);
    tradeauth_session_free(second);
}

static void test_from_env(void) {
    setenv("EXCHANGE_API_KEY", "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f", 1);
    setenv("EXCHANGE_BASE_URL", env("SIM_EXCHANGE"), 1);
    setenv("TRADEAUTH_CA_CERT", env("SIM_CA"), 1);
    unsetenv("EXCHANGE_ADMIN_TOKEN");
    tradeauth_session *session = NULL;
    OK(tradeauth_exchange_from_env(NULL, &session));
    tradeauth_response *response = NULL;
    OK(tradeauth_session_request(session, "GET", "/api/v1/user", NULL, NULL, &response));
    CHECK(tradeauth_response_status(response) == 200);
    tradeauth_response_free(response);
    tradeauth_session_free(session);
    unsetenv("EXCHANGE_API_KEY");
}

/* tradeauth_session_metrics after login, a forced refresh and a revoked token met by a
   request: the counters match the simulator's; the size field guards the struct. */
static void test_metrics(void) {
    control_call("POST", "/reset", NULL);
    tradeauth_options *options = options_for(env("SIM_CADENZA"));
    OK(tradeauth_options_set_background_refresh(options, false));
    tradeauth_session *session = NULL;
    OK(tradeauth_cadenza_new("demo@cadenza.test", "demo-password", options, &session));
    tradeauth_options_free(options);
    char name[64];
    OK(header_name(session, name)); /* logs in */
    tradeauth_metrics m;
    memset(&m, 0, sizeof m);
    m.size = sizeof m;
    OK(tradeauth_session_metrics(session, &m));
    CHECK(m.size == sizeof m);
    CHECK(m.logins == 1 && m.refreshes == 0 && m.has_expiry);
    OK(tradeauth_session_refresh(session));
    control_call("POST", "/revoke", "{\"venue\":\"cadenza\",\"what\":\"access_tokens\"}");
    tradeauth_response *response = NULL;
    OK(tradeauth_session_request(session, "GET", "/api/v3/user/profile", NULL, NULL, &response));
    CHECK(response != NULL && tradeauth_response_status(response) == 200);
    tradeauth_response_free(response);
    memset(&m, 0xab, sizeof m);
    m.size = sizeof m;
    OK(tradeauth_session_metrics(session, &m));
    long logins = stat_counter("cadenza", "logins"), refreshes = stat_counter("cadenza", "refreshes");
    printf("metrics: logins %llu + relogins %llu (venue: %ld), refreshes %llu (venue: %ld), 401 re-auths %llu, "
           "renewals %llu in %.3f s, expires in %.0f s\n",
           (unsigned long long)m.logins, (unsigned long long)m.relogins, logins, (unsigned long long)m.refreshes,
           refreshes, (unsigned long long)m.reauths_after_401, (unsigned long long)m.renewal_seconds_count,
           m.renewal_seconds_sum, m.expires_in_seconds);
    CHECK((long)(m.logins + m.relogins) == logins);
    CHECK((long)m.refreshes == refreshes);
    CHECK(m.reauths_after_401 == 1);
    CHECK(m.renewal_seconds_count == 3);
    CHECK(m.renewal_seconds_buckets[TRADEAUTH_METRICS_RENEWAL_BUCKETS - 1] == 3);
    CHECK(m.renewal_seconds_sum > 0.0);
    CHECK(m.has_expiry && m.expires_in_seconds > 0.0 && m.expires_in_seconds <= 3600.0);
    for (int i = 0; i < TRADEAUTH_METRICS_STATUSES; i++) {
        CHECK(m.renewal_failures[i] == 0);
    }
    CHECK(m.ws_connects == 0 && m.store_writes == 0 && m.clock_skew_seconds == 0.0);

    /* A program built against an older, shorter struct gets its prefix, nothing more. */
    unsigned char older[sizeof(tradeauth_metrics) + 8];
    memset(older, 0xcd, sizeof older);
    size_t prefix = offsetof(tradeauth_metrics, relogins);
    memcpy(older, &prefix, sizeof prefix);
    OK(tradeauth_session_metrics(session, (tradeauth_metrics *)(void *)older));
    size_t written = 0;
    memcpy(&written, older, sizeof written);
    CHECK(written == prefix);
    uint64_t first_logins = 0;
    memcpy(&first_logins, older + offsetof(tradeauth_metrics, logins), sizeof first_logins);
    CHECK(first_logins == m.logins);
    int untouched = 1;
    for (size_t i = prefix; i < sizeof older; i++) {
        untouched &= older[i] == 0xcd;
    }
    CHECK(untouched);
    /* A newer caller's bigger struct: only ours is written, and size says so. */
    struct {
        tradeauth_metrics known;
        uint64_t later_field;
    } newer;
    memset(&newer, 0xee, sizeof newer);
    newer.known.size = sizeof newer;
    OK(tradeauth_session_metrics(session, &newer.known));
    CHECK(newer.known.size == sizeof(tradeauth_metrics));
    CHECK(newer.later_field == 0xeeeeeeeeeeeeeeeeull);

    /* Too small for even `logins`, or NULL: refused, nothing written. */
    memset(&m, 0, sizeof m);
    m.size = sizeof(size_t);
    NULLARG(tradeauth_session_metrics(session, &m));
    CHECK(m.size == sizeof(size_t) && m.logins == 0);
    NULLARG(tradeauth_session_metrics(session, NULL));
    NULLARG(tradeauth_session_metrics(NULL, &m));
    tradeauth_session_free(session);
}

/* Process-wide settings (issue #21): 0 keeps a setting, out of range is refused, the
   worker count is fixed once the runtime runs (the control session started it). */
static void test_process_configure(void) {
    OK(tradeauth_process_configure(0, 0));
    NULLARG(tradeauth_process_configure(0, 4097));
    NULLARG(tradeauth_process_configure(4097, 0));
    NULLARG(tradeauth_process_configure(7, 0));
    CHECK(strstr(last_error(), "already runs 2 worker threads") != NULL);
    OK(tradeauth_process_configure(2, 8));
}

/* Sessions share the process's connection pool unless they ask for a private one: the
   venue counts the connections each kind opened. */
static void test_shared_and_private_pools(void) {
    enum { N = 6 };
    tradeauth_session *sessions[2 * N] = {0};
    char name[64];
    char value[4096];
    size_t name_len = 0;
    size_t value_len = 0;
    for (int private_pool = 0; private_pool <= 1; private_pool++) {
        long before = stat_counter("cadenza", "connections");
        for (int i = 0; i < N; i++) {
            tradeauth_options *options = options_for(env("SIM_CADENZA"));
            OK(tradeauth_options_set_private_pool(options, private_pool != 0));
            tradeauth_session **s = &sessions[private_pool * N + i];
            OK(tradeauth_cadenza_new("demo@cadenza.test", "demo-password", options, s));
            tradeauth_options_free(options);
            OK(tradeauth_session_header(*s, name, sizeof name, &name_len, value, sizeof value,
                                        &value_len));
        }
        long opened = stat_counter("cadenza", "connections") - before;
        if (private_pool) {
            CHECK(opened >= N);
        } else {
            CHECK(opened <= 1);
        }
    }
    NULLARG(tradeauth_options_set_private_pool(NULL, true));
    for (int i = 0; i < 2 * N; i++) {
        tradeauth_session_free(sessions[i]);
    }
}

int main(void) {
    harness_start("ABI tests");
    test_process_configure();
    test_shared_and_private_pools();

    test_names_and_version();
    test_panic_hook();
    test_option_and_constructor_errors();

    tradeauth_session *session = cadenza_session();
    tradeauth_response *response = NULL;
    OK(tradeauth_session_request(session, "GET", "/api/v3/user/profile", NULL, NULL, &response));
    if (session == NULL || response == NULL) {
        fprintf(stderr, "cannot log in to the simulator\n");
        return 1;
    }
    test_null_arguments(session, response);
    test_bad_utf8(session, response);
    test_buffers(session);
    test_requests(session);
    tradeauth_response_free(response);
    tradeauth_session_free(session);

    test_invalidate_refresh_events();
    test_concurrent_reads();
    test_ws();
    test_from_env();
    test_store();
    test_every_status();
    test_metrics();

    return harness_finish();
}
