/*
 * What the C tests share: pass/fail counting (CHECK, EXPECT, OK, NULLARG), the
 * simulator's environment (scripts/test_c.sh exports SIM_*), options for a simulated
 * venue, and calls to the simulator's control API through a public session.
 * Include it once per test program, after defining _POSIX_C_SOURCE.
 */
#ifndef TRADEAUTH_TEST_HARNESS_H
#define TRADEAUTH_TEST_HARNESS_H

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tradeauth.h"

static int passed;
static int failed;
static int skipped;

static inline const char *last_error(void) {
    static char buf[2048];
    size_t written = 0;
    if (tradeauth_last_error_message(buf, sizeof buf, &written) != TRADEAUTH_OK) {
        return "(could not read the last error)";
    }
    return buf;
}

static inline void check(int ok, const char *what, const char *file, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", file, line, what, last_error());
    }
}
#define CHECK(cond) check((cond) ? 1 : 0, #cond, __FILE__, __LINE__)

static inline void expect(tradeauth_status got, tradeauth_status want, const char *call, const char *file,
                   int line) {
    if (got == want) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL %s:%d: %s returned %s, expected %s (last error: %s)\n", file, line,
                call, tradeauth_status_name(got), tradeauth_status_name(want), last_error());
    }
}
#define EXPECT(call, want) expect((call), (want), #call, __FILE__, __LINE__)
#define OK(call) EXPECT(call, TRADEAUTH_OK)
#define NULLARG(call) EXPECT(call, TRADEAUTH_ERR_INVALID_ARGUMENT)

static inline const char *env(const char *name) {
    const char *value = getenv(name);
    if (value == NULL || value[0] == '\0') {
        fprintf(stderr, "%s is not set: run this through scripts/test_c.sh\n", name);
        exit(2);
    }
    return value;
}

static inline void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* Fresh options for a venue: its sim URL, the sim CA, and no retries (faster failures).
   The connect budget is 30 s, not 5: under valgrind on a loaded machine one TLS
   handshake has taken longer than 5 s. No test here waits for a connect timeout. */
static inline tradeauth_options *options_for(const char *base_url) {
    tradeauth_options *options = NULL;
    OK(tradeauth_options_new(&options));
    OK(tradeauth_options_set_base_url(options, base_url));
    OK(tradeauth_options_add_root_file(options, env("SIM_CA")));
    OK(tradeauth_options_set_max_retries(options, 0));
    OK(tradeauth_options_set_connect_timeout_ms(options, 30000));
    return options;
}

static tradeauth_session *control;

/* Calls the simulator's control API through a public (no credential) session. */
static inline void control_call(const char *method, const char *path, const char *body) {
    tradeauth_response *response = NULL;
    tradeauth_status st = tradeauth_session_request(control, method, path, body, NULL, &response);
    EXPECT(st, TRADEAUTH_OK);
    if (st == TRADEAUTH_OK) {
        uint16_t code = tradeauth_response_status(response);
        if (code >= 300) {
            fprintf(stderr, "control %s %s answered %u\n", method, path, (unsigned)code);
        }
        CHECK(code < 300);
    }
    tradeauth_response_free(response);
}

/* Reads one counter of /stats, e.g. ("cadenza", "logins"); -1 if not found. */
static inline long stat_counter(const char *venue, const char *counter) {
    tradeauth_response *response = NULL;
    long value = -1;
    if (tradeauth_session_request(control, "GET", "/stats", NULL, NULL, &response) != TRADEAUTH_OK) {
        return -1;
    }
    const uint8_t *body = NULL;
    size_t len = 0;
    if (tradeauth_response_body(response, &body, &len) == TRADEAUTH_OK) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\":{", venue);
        const char *at = strstr((const char *)body, key);
        if (at != NULL) {
            snprintf(key, sizeof key, "\"%s\":", counter);
            at = strstr(at, key);
            if (at != NULL) {
                value = strtol(at + strlen(key), NULL, 10);
            }
        }
    }
    tradeauth_response_free(response);
    return value;
}

/* Starts a test program: unbuffered stdout, its banner, the control session, a reset
   simulator. Exits with status 1 if the simulator cannot be reached. */
static inline void harness_start(const char *what) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("tradeauth %s %s\n", tradeauth_version(), what);
    tradeauth_options *control_options = options_for(env("SIM_CONTROL"));
    OK(tradeauth_exchange_new(NULL, NULL, control_options, &control));
    tradeauth_options_free(control_options);
    if (control == NULL) {
        fprintf(stderr, "cannot reach the simulator's control API\n");
        exit(1);
    }
    control_call("POST", "/reset", NULL);
}

/* Ends a test program: frees the control session, waits TRADEAUTH_TEST_SETTLE_MS
   (default 300) for freed sessions' pooled connections to close (so valgrind sees that
   memory returned rather than in flight), prints the closing line, gives the exit code. */
static inline int harness_finish(void) {
    tradeauth_session_free(control);
    const char *settle = getenv("TRADEAUTH_TEST_SETTLE_MS");
    sleep_ms(settle != NULL ? strtol(settle, NULL, 10) : 300);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed == 0 ? 0 : 1;
}

#endif
