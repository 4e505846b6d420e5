/*
 * Issue #16: the per-message latency that tradeauth's WebSocket callback delivery adds.
 * Connects an Exchange WebSocket with tradeauth_ws_connect (the simulator's demo trader,
 * authenticated by the library), subscribes to BTC-USD's orderbook, asks the simulator's
 * POST /ws/burst for COUNT stamped deltas spaced INTERVAL_US apart ("stamp":true: each
 * carries "sent_unix_ns", the simulator's CLOCK_REALTIME just before it is sent) and
 * records, in the message callback, clock_gettime(CLOCK_REALTIME) minus that stamp. The
 * baseline, sim/examples/ws_latency_bare.rs, reads the same stream with bare
 * tokio-tungstenite and finds the stamp the same way (a string search).
 *
 * Usage: ws_latency [COUNT] [INTERVAL_US] [ROUNDS]   (default 5000, 1000, 3)
 * Needs SIM_EXCHANGE, SIM_CONTROL and SIM_CA from scripts/common.sh's start_sim. Prints
 * p50/p99/max per round and the medians over the rounds; never prints the key.
 *
 * Built by scripts/bench.sh:
 *   cc -O2 -std=c99 -Iinclude ffi/benches/ws_latency.c -Ltarget/release -ltradeauth -lpthread
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tradeauth.h"

/* The first deltas of each round, left out of its figures (as the Rust baseline does). */
#define WARMUP 10
#define MAX_ROUNDS 64

/* What the callback shares with main. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static uint64_t *latencies; /* ns, one per stamped delta of the running round */
static size_t wanted;       /* deltas in a round */
static size_t received;     /* stamped deltas of the running round so far */

static void check(tradeauth_status status, const char *what) {
    if (status != TRADEAUTH_OK) {
        char message[1024];
        size_t written = 0;
        if (tradeauth_last_error_message(message, sizeof message, &written) != TRADEAUTH_OK) {
            strcpy(message, "(message did not fit)");
        }
        fprintf(stderr, "error: %s failed: %s (%s)\n", what, tradeauth_status_name(status), message);
        exit(1);
    }
}

static const char *env(const char *name) {
    const char *value = getenv(name);
    if (value == NULL || value[0] == '\0') {
        fprintf(stderr, "error: %s is not set (source scripts/common.sh; start_sim)\n", name);
        exit(2);
    }
    return value;
}

static uint64_t unix_ns_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs on the library's thread, one message at a time, in order: the receipt time is
   read first, then the stamp is found by a string search (no JSON parse). */
static void on_message(void *userdata, const char *json, size_t len) {
    uint64_t now = unix_ns_now();
    (void)userdata;
    (void)len;
    const char *at = strstr(json, "\"sent_unix_ns\":");
    if (at == NULL) {
        return; /* the subscription's reply and snapshot */
    }
    uint64_t sent = strtoull(at + strlen("\"sent_unix_ns\":"), NULL, 10);
    pthread_mutex_lock(&lock);
    if (received < wanted) {
        latencies[received] = now > sent ? now - sent : 0;
    }
    received++;
    if (received == wanted) {
        pthread_cond_broadcast(&changed);
    }
    pthread_mutex_unlock(&lock);
}

static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-th percentile of sorted values, by the index (n - 1) * q / 100 (as the baseline). */
static uint64_t percentile(const uint64_t *sorted, size_t n, size_t q) {
    return sorted[(n - 1) * q / 100];
}

static tradeauth_options *options_for(const char *url, const char *ca) {
    tradeauth_options *options = NULL;
    check(tradeauth_options_new(&options), "options_new");
    check(tradeauth_options_set_base_url(options, url), "set_base_url");
    check(tradeauth_options_add_root_file(options, ca), "add_root_file");
    return options;
}

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 5000;
    long interval_us = argc > 2 ? atol(argv[2]) : 1000;
    long rounds = argc > 3 ? atol(argv[3]) : 3;
    if (count < 1 || interval_us < 0 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: ws_latency [COUNT>=1] [INTERVAL_US>=0] [ROUNDS 1..%d]\n", MAX_ROUNDS);
        return 2;
    }
    const char *ca = env("SIM_CA");
    /* The simulator's demo trader (sim/README.md): a public test key, never printed. */
    const char *key = "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f";

    tradeauth_options *options = options_for(env("SIM_EXCHANGE"), ca);
    tradeauth_session *session = NULL;
    check(tradeauth_exchange_new(key, NULL, options, &session), "exchange_new");
    tradeauth_options_free(options);
    /* A public session on the control API asks for the bursts (no credential in it). */
    options = options_for(env("SIM_CONTROL"), ca);
    tradeauth_session *control = NULL;
    check(tradeauth_exchange_new(NULL, NULL, options, &control), "exchange_new (control)");
    tradeauth_options_free(options);

    latencies = calloc((size_t)count, sizeof *latencies);
    if (latencies == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    tradeauth_ws *ws = NULL;
    check(tradeauth_ws_connect(session, "/ws", NULL, on_message, NULL, &ws), "ws_connect");
    check(tradeauth_ws_subscribe(ws, "{\"op\":\"subscribe\",\"channel\":\"orderbook\",\"market\":\"BTC-USD\"}",
                                 TRADEAUTH_WS_PRIVACY_AUTO),
          "ws_subscribe");

    uint64_t p50s[MAX_ROUNDS], p99s[MAX_ROUNDS];
    char body[160];
    snprintf(body, sizeof body, "{\"venue\":\"exchange\",\"count\":%ld,\"stamp\":true,\"interval_us\":%ld}", count,
             interval_us);
    for (long round = 1; round <= rounds; round++) {
        pthread_mutex_lock(&lock);
        wanted = (size_t)count;
        received = 0;
        pthread_mutex_unlock(&lock);
        tradeauth_response *response = NULL;
        check(tradeauth_session_request(control, "POST", "/ws/burst", body, NULL, &response), "POST /ws/burst");
        if (tradeauth_response_status(response) != 200) {
            fprintf(stderr, "error: POST /ws/burst answered %u\n", (unsigned)tradeauth_response_status(response));
            return 1;
        }
        tradeauth_response_free(response);

        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 30 + (time_t)(count * (interval_us + 1000) / 1000000);
        pthread_mutex_lock(&lock);
        int timed_out = 0;
        while (received < wanted && !timed_out) {
            timed_out = pthread_cond_timedwait(&changed, &lock, &deadline) != 0;
        }
        size_t got = received;
        pthread_mutex_unlock(&lock);
        if (got < (size_t)count) {
            fprintf(stderr, "error: %zu of %ld deltas arrived in time\n", got, count);
            return 1;
        }
        /* The callback is idle until the next burst: main may read the array. */
        uint64_t *kept = latencies;
        size_t n = (size_t)count;
        if (n > 2 * WARMUP) {
            kept += WARMUP;
            n -= WARMUP;
        }
        qsort(kept, n, sizeof *kept, by_value);
        p50s[round - 1] = percentile(kept, n, 50);
        p99s[round - 1] = percentile(kept, n, 99);
        printf("tradeauth C callback: round %ld: %zu deltas, interval %ld us: p50 %.1f us, p99 %.1f us, max %.1f us\n",
               round, n, interval_us, (double)p50s[round - 1] / 1e3, (double)p99s[round - 1] / 1e3,
               (double)kept[n - 1] / 1e3);
    }
    qsort(p50s, (size_t)rounds, sizeof p50s[0], by_value);
    qsort(p99s, (size_t)rounds, sizeof p99s[0], by_value);
    printf("RESULT tradeauth C callback: median of %ld rounds: p50 %.1f us, p99 %.1f us\n", rounds,
           (double)p50s[rounds / 2] / 1e3, (double)p99s[rounds / 2] / 1e3);
    tradeauth_ws_free(ws);
    tradeauth_session_free(control);
    tradeauth_session_free(session);
    free(latencies);
    return 0;
}
