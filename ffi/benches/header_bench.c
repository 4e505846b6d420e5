/*
 * The C ABI hot path (issue #7): ns per tradeauth_session_header() call while a valid
 * credential is cached, from 1 thread and from N threads (default 8) sharing one session.
 *
 * Usage: header_bench [ITERATIONS_PER_THREAD] [THREADS]   (default 2000000, 8)
 * Needs SIM_CADENZA (and SIM_CA) from scripts/common.sh's start_sim; logs in once as the
 * simulator's demo user, then only reads the cached credential. Prints one line per run
 * and the median of 5 runs; never prints the credential.
 *
 * Built by scripts/bench.sh against the release libtradeauth:
 *   cc -O2 -std=c11 -Iinclude ffi/benches/header_bench.c -Ltarget/release -ltradeauth -lpthread
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tradeauth.h"

#define RUNS 5

static tradeauth_session *session;
static long iterations;

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

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* What an engine does per order: fetch the header into its own buffers. */
static void *worker(void *arg) {
    char name[64];
    char value[4096];
    size_t name_len = 0, value_len = 0;
    uint64_t sum = 0;
    for (long i = 0; i < iterations; i++) {
        tradeauth_status s = tradeauth_session_header(session, name, sizeof name, &name_len,
                                                      value, sizeof value, &value_len);
        if (s != TRADEAUTH_OK) {
            check(s, "tradeauth_session_header");
        }
        sum += value_len + (unsigned char)value[7];
    }
    *(uint64_t *)arg = sum;
    return NULL;
}

/* Wall time of `threads` threads each doing `iterations` calls, as ns per call per thread
   (what one caller waits; with more threads than cores the OS time-slices them, so the
   figure for T threads on C cores is scaled by C/T to give the per-call CPU cost). */
static double run(int threads, int cores) {
    pthread_t ids[256];
    uint64_t sums[256];
    double start = now_ns();
    for (int t = 0; t < threads; t++) {
        if (pthread_create(&ids[t], NULL, worker, &sums[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
    }
    double elapsed = now_ns() - start;
    int parallel = threads < cores ? threads : cores;
    /* Total calls / elapsed = throughput; per-call latency on a busy core = parallel/throughput. */
    return elapsed * parallel / ((double)iterations * threads);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    iterations = argc > 1 ? atol(argv[1]) : 2000000;
    int threads = argc > 2 ? atoi(argv[2]) : 8;
    if (iterations <= 0 || threads <= 0 || threads > 256) {
        fprintf(stderr, "usage: header_bench [ITERATIONS_PER_THREAD>0] [THREADS 1..256]\n");
        return 2;
    }
    int cores = 1;
#ifdef _SC_NPROCESSORS_ONLN
    cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
#endif
    const char *url = getenv("SIM_CADENZA");
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "SIM_CADENZA is not set (source scripts/common.sh; start_sim)\n");
        return 2;
    }
    tradeauth_options *options = NULL;
    check(tradeauth_options_new(&options), "options_new");
    check(tradeauth_options_set_base_url(options, url), "set_base_url");
    const char *ca = getenv("SIM_CA");
    if (ca != NULL && ca[0] != '\0') {
        check(tradeauth_options_add_root_file(options, ca), "add_root_file");
    }
    check(tradeauth_cadenza_new("demo@cadenza.test", "demo-password", options, &session),
          "cadenza_new");
    tradeauth_options_free(options);
    /* Log in once (blocks); every call measured below is served from the cache. */
    uint64_t sink = 0;
    long saved = iterations;
    iterations = 1;
    worker(&sink);
    iterations = saved;

    int counts[2] = {1, threads};
    double medians[2];
    for (int c = 0; c < 2; c++) {
        double samples[RUNS];
        for (int r = 0; r < RUNS; r++) {
            samples[r] = run(counts[c], cores);
        }
        qsort(samples, RUNS, sizeof samples[0], cmp);
        medians[c] = samples[RUNS / 2];
        printf("threads=%d runs:", counts[c]);
        for (int r = 0; r < RUNS; r++) {
            printf(" %.1f", samples[r]);
        }
        printf(" ns/op  median %.1f ns/op\n", medians[c]);
    }
    printf("RESULT c_header_1t_ns=%.1f c_header_%dt_ns=%.1f ratio=%.2f cores=%d iterations=%ld\n",
           medians[0], threads, medians[1], medians[1] / medians[0], cores, iterations);
    tradeauth_session_free(session);
    return 0;
}
