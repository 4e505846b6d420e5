/*
 * External signers, keystores and secret rotation through the C ABI, against the
 * simulator over TLS (scripts/test_c.sh starts it and exports SIM_*):
 * tradeauth_cascade_new_with_signer, tradeauth_cascade_new_from_keystore,
 * tradeauth_session_update_secret and tradeauth_session_update_signer.
 *
 * The signers sign with OpenSSL's libcrypto (only this test links it; libtradeauth does
 * not): DER with OpenSSL's random nonce, DER forced to a high s, 64 bytes r||s and 65
 * bytes r||s||v. Every signature the simulator accepted must recover to the demo
 * delegate (its /stats keep the last 32 with the address they recover to). Failing
 * signers (another key, a non-zero return, a hang past the timeout, an out_len above
 * out_cap) must give TRADEAUTH_ERR_SIGNING with nothing posted.
 *
 * TRADEAUTH_TEST_KEYSTORE overrides the keystore fixture's path (default: the one under
 * ffi/tests/fixtures/keystore, relative to the repository root); TRADEAUTH_TEST_SLOW=1
 * (valgrind) loosens the time bounds; TRADEAUTH_TEST_HEADER_READS sets the header reads
 * per reader thread in the rotation test.
 */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#define DEPOSIT "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
#define DELEGATE "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
#define DELEGATE_LOWER "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
/* Public test keys (Hardhat #0 and #2); the simulator's demo delegate and a stranger. */
#define DELEGATE_KEY "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define STRANGER_KEY "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
#define KEYSTORE_PASSWORD "tradeauth demo keystore"
#define EXCHANGE_KEY "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f"
#define EXCHANGE_KEY_2 "exch_00112233445566778899aabbccddeeff"

static int slow;

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- OpenSSL keys */

/* A secp256k1 private key from 64 hex characters, as an EVP_PKEY (OpenSSL 3 API). */
static EVP_PKEY *secp256k1_key(const char *hex) {
    EVP_PKEY *pkey = NULL;
    BIGNUM *priv = NULL;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_secp256k1);
    EC_POINT *pub = group != NULL ? EC_POINT_new(group) : NULL;
    unsigned char pub_bytes[65];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (pub == NULL || bld == NULL || ctx == NULL || BN_hex2bn(&priv, hex) != 64 ||
        EC_POINT_mul(group, pub, priv, NULL, NULL, NULL) != 1 ||
        EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, pub_bytes, sizeof pub_bytes,
                           NULL) != sizeof pub_bytes ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "secp256k1", 0) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub_bytes, sizeof pub_bytes) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1) {
        pkey = NULL;
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_clear_free(priv);
    EC_POINT_free(pub);
    EC_GROUP_free(group);
    return pkey;
}

/* ---------------------------------------------------------------- the test signer */

enum shape { DER, DER_HIGH_S, RAW64, RAW65 };

typedef struct {
    EVP_PKEY *key;     /* NULL: do not sign */
    enum shape shape;
    int32_t rc;        /* returned instead of signing when non-zero */
    long sleep_ms;     /* sleeps before answering */
    size_t claim_len;  /* non-zero: writes this as *out_len (a lie) */
    pthread_mutex_t lock;
    int calls;
    int running;
    int concurrent; /* a call started while another one ran */
    long entered_ms;
} signer_ctx;

static void signer_init(signer_ctx *s, EVP_PKEY *key, enum shape shape) {
    memset(s, 0, sizeof *s);
    s->key = key;
    s->shape = shape;
    pthread_mutex_init(&s->lock, NULL);
}

static int signer_calls(signer_ctx *s) {
    pthread_mutex_lock(&s->lock);
    int calls = s->calls;
    pthread_mutex_unlock(&s->lock);
    return calls;
}

/* Waits until no call of `s` is running (a call that timed out goes on to its end). */
static void signer_drain(signer_ctx *s) {
    for (;;) {
        pthread_mutex_lock(&s->lock);
        int running = s->running;
        pthread_mutex_unlock(&s->lock);
        if (!running) {
            return;
        }
        sleep_ms(10);
    }
}

/* Signs the 32-byte prehash with OpenSSL (DER, random k), then reshapes. */
static int sign_with_openssl(signer_ctx *s, const uint8_t *digest, uint8_t *out, size_t out_cap,
                             size_t *out_len) {
    unsigned char der[80];
    size_t der_len = sizeof der;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(s->key, NULL);
    int ok = ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 &&
             EVP_PKEY_sign(ctx, der, &der_len, digest, 32) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        return 100;
    }
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (sig == NULL) {
        return 101;
    }
    int rc = 0;
    const BIGNUM *r = NULL;
    const BIGNUM *sv = NULL;
    ECDSA_SIG_get0(sig, &r, &sv);
    if (s->shape == DER_HIGH_S) {
        /* Force the upper half: s' = n - s whenever s is low (what many KMSs answer). */
        EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_secp256k1);
        BIGNUM *half = BN_dup(EC_GROUP_get0_order(group));
        BN_rshift1(half, half);
        if (BN_cmp(sv, half) <= 0) {
            BIGNUM *high = BN_new();
            BN_sub(high, EC_GROUP_get0_order(group), sv);
            ECDSA_SIG_set0(sig, BN_dup(r), high);
        }
        BN_free(half);
        EC_GROUP_free(group);
        unsigned char *q = out;
        int len = i2d_ECDSA_SIG(sig, NULL);
        if (len <= 0 || (size_t)len > out_cap) {
            rc = 102;
        } else {
            i2d_ECDSA_SIG(sig, &q);
            *out_len = (size_t)len;
        }
    } else if (s->shape == DER) {
        if (der_len > out_cap) {
            rc = 103;
        } else {
            memcpy(out, der, der_len);
            *out_len = der_len;
        }
    } else {
        ECDSA_SIG_get0(sig, &r, &sv);
        if (BN_bn2binpad(r, out, 32) != 32 || BN_bn2binpad(sv, out + 32, 32) != 32) {
            rc = 104;
        } else if (s->shape == RAW65) {
            out[64] = 0; /* any v: the library finds the recovery id itself */
            *out_len = 65;
        } else {
            *out_len = 64;
        }
    }
    ECDSA_SIG_free(sig);
    return rc;
}

static int32_t test_sign(void *userdata, const uint8_t *digest, uint8_t *out, size_t out_cap,
                         size_t *out_len) {
    signer_ctx *s = userdata;
    pthread_mutex_lock(&s->lock);
    s->calls++;
    if (s->running) {
        s->concurrent = 1;
    }
    s->running = 1;
    s->entered_ms = now_ms();
    pthread_mutex_unlock(&s->lock);
    int32_t rc = 0;
    if (out_cap != TRADEAUTH_SIGN_OUT_CAP) {
        rc = 99;
    } else if (s->sleep_ms > 0) {
        sleep_ms(s->sleep_ms);
    }
    if (rc == 0 && s->rc != 0) {
        rc = s->rc;
    } else if (rc == 0 && s->claim_len != 0) {
        memset(out, 0x30, out_cap);
        *out_len = s->claim_len;
    } else if (rc == 0) {
        rc = sign_with_openssl(s, digest, out, out_cap, out_len);
    }
    pthread_mutex_lock(&s->lock);
    s->running = 0;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---------------------------------------------------------------- helpers */

static tradeauth_options *cascade_options(void) {
    tradeauth_options *options = options_for(env("SIM_CASCADE"));
    OK(tradeauth_options_set_background_refresh(options, false));
    return options;
}

static tradeauth_session *signer_session(signer_ctx *s, uint32_t timeout_ms) {
    tradeauth_options *options = cascade_options();
    tradeauth_session *session = NULL;
    OK(tradeauth_cascade_new_with_signer(DEPOSIT, DELEGATE, test_sign, s, timeout_ms, options, &session));
    tradeauth_options_free(options);
    return session;
}

static tradeauth_status header(tradeauth_session *session, char *value, size_t value_len) {
    char name[64];
    size_t name_written = 0;
    size_t value_written = 0;
    return tradeauth_session_header(session, name, sizeof name, &name_written, value, value_len,
                                    &value_written);
}

/* Every signature in the simulator's cascade.signed recovers to the demo delegate
   (lowercase); returns how many there are. */
static long check_signed_by_delegate(void) {
    tradeauth_response *response = NULL;
    long count = 0;
    OK(tradeauth_session_request(control, "GET", "/stats", NULL, NULL, &response));
    const uint8_t *body = NULL;
    size_t len = 0;
    if (response != NULL && tradeauth_response_body(response, &body, &len) == TRADEAUTH_OK) {
        const char *needle = "\"signer\":\"";
        for (const char *at = strstr((const char *)body, needle); at != NULL;
             at = strstr(at + 1, needle)) {
            const char *addr = at + strlen(needle);
            int same = strncmp(addr, DELEGATE_LOWER "\"", strlen(DELEGATE_LOWER) + 1) == 0;
            if (!same) {
                fprintf(stderr, "an accepted signature recovers to %.42s\n", addr);
            }
            CHECK(same);
            count++;
        }
    }
    tradeauth_response_free(response);
    return count;
}

/* ---------------------------------------------------------------- the tests */

static void test_arguments(void) {
    signer_ctx s;
    signer_init(&s, NULL, DER);
    tradeauth_options *options = cascade_options();
    tradeauth_session *out = NULL;
    NULLARG(tradeauth_cascade_new_with_signer(NULL, DELEGATE, test_sign, &s, 0, options, &out));
    NULLARG(tradeauth_cascade_new_with_signer(DEPOSIT, NULL, test_sign, &s, 0, options, &out));
    NULLARG(tradeauth_cascade_new_with_signer(DEPOSIT, DELEGATE, NULL, &s, 0, options, &out));
    CHECK(strstr(last_error(), "sign") != NULL);
    NULLARG(tradeauth_cascade_new_with_signer(DEPOSIT, DELEGATE, test_sign, &s, 0, options, NULL));
    NULLARG(tradeauth_cascade_new_with_signer(DEPOSIT, "0x1234", test_sign, &s, 0, options, &out));
    NULLARG(tradeauth_cascade_new_with_signer(DEPOSIT, "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                                              test_sign, &s, 0, options, &out));
    NULLARG(tradeauth_cascade_new_from_keystore(NULL, "k.json", "pw", options, &out));
    NULLARG(tradeauth_cascade_new_from_keystore(DEPOSIT, NULL, "pw", options, &out));
    NULLARG(tradeauth_cascade_new_from_keystore(DEPOSIT, "k.json", NULL, options, &out));
    NULLARG(tradeauth_cascade_new_from_keystore(DEPOSIT, "k.json", "pw", options, NULL));
    NULLARG(tradeauth_session_update_secret(NULL, "api_key", EXCHANGE_KEY));
    NULLARG(tradeauth_session_update_signer(NULL, DELEGATE, test_sign, &s, 0));
    CHECK(out == NULL);
    CHECK(signer_calls(&s) == 0);
    tradeauth_options_free(options);
}

/* Every answer shape logs in, and each forced refresh signs a new challenge. */
static void test_shapes(EVP_PKEY *delegate) {
    const enum shape shapes[] = {DER, DER_HIGH_S, RAW64, RAW65};
    const char *names[] = {"DER (random k)", "DER, high s", "64 bytes r||s", "65 bytes r||s||v"};
    control_call("POST", "/reset", NULL);
    long logins = 0;
    for (int i = 0; i < 4; i++) {
        signer_ctx s;
        signer_init(&s, delegate, shapes[i]);
        tradeauth_session *session = signer_session(&s, 0);
        if (session == NULL) {
            continue;
        }
        char value[4096];
        OK(header(session, value, sizeof value));
        CHECK(strncmp(value, "Bearer ", 7) == 0);
        logins++;
        for (int r = 0; r < 3; r++) {
            OK(tradeauth_session_refresh(session));
            logins++;
        }
        CHECK(signer_calls(&s) == 4);
        CHECK(s.concurrent == 0);
        printf("signer %-18s: 1 login + 3 forced refreshes, %d signatures\n", names[i], signer_calls(&s));
        tradeauth_session_free(session);
    }
    /* The simulator counts every accepted POST /auth (refreshes too) as a login. */
    CHECK(stat_counter("cascade", "logins") == logins);
    long accepted = check_signed_by_delegate();
    CHECK(accepted == logins);
    printf("%ld signatures accepted by the simulator, every one recovers to %s\n", accepted, DELEGATE_LOWER);
}

static void expect_signing_failure(signer_ctx *s, uint32_t timeout_ms, const char *needle,
                                   const char *what) {
    control_call("POST", "/reset", NULL);
    tradeauth_session *session = signer_session(s, timeout_ms);
    if (session == NULL) {
        return;
    }
    char value[4096];
    long start = now_ms();
    EXPECT(header(session, value, sizeof value), TRADEAUTH_ERR_SIGNING);
    long took = now_ms() - start;
    const char *message = last_error();
    CHECK(strstr(message, needle) != NULL);
    printf("%s: signing after %ld ms: %s\n", what, took, message);
    CHECK(stat_counter("cascade", "logins") == 0);
    CHECK(check_signed_by_delegate() == 0);
    tradeauth_session_free(session);
}

static void test_failing_signers(EVP_PKEY *stranger) {
    signer_ctx s;
    signer_init(&s, stranger, DER);
    expect_signing_failure(&s, 0, "does not recover to the declared delegate address",
                           "another key's signer");
    CHECK(signer_calls(&s) == 1);

    signer_init(&s, NULL, DER);
    s.rc = 7;
    expect_signing_failure(&s, 0, "the C signer returned 7", "a signer returning 7");

    signer_init(&s, NULL, DER);
    s.claim_len = TRADEAUTH_SIGN_OUT_CAP + 1;
    expect_signing_failure(&s, 0, "out_cap", "a signer claiming 81 bytes");

    signer_init(&s, NULL, DER);
    s.claim_len = 3; /* 3 bytes of 0x30: not DER */
    expect_signing_failure(&s, 0, "DER", "a signer answering 3 bytes of garbage");
}

/* A signer that sleeps 2 s with a 300 ms timeout: SIGNING within ~1.5 s of its call, and
   while that call still runs the next sign-in fails at once without calling it again. */
static void test_hung_signer(void) {
    signer_ctx s;
    signer_init(&s, NULL, DER);
    s.sleep_ms = 2000;
    s.rc = 5;
    control_call("POST", "/reset", NULL);
    tradeauth_session *session = signer_session(&s, 300);
    if (session == NULL) {
        return;
    }
    char value[4096];
    EXPECT(header(session, value, sizeof value), TRADEAUTH_ERR_SIGNING);
    long after = now_ms() - s.entered_ms;
    CHECK(strstr(last_error(), "did not answer within") != NULL);
    printf("a signer sleeping 2 s with timeout_ms=300: SIGNING %ld ms after it was called (%s)\n",
           after, last_error());
    CHECK(after >= 290);
    CHECK(after < (slow ? 1800 : 1500));
    /* It is still running: not called again. */
    EXPECT(header(session, value, sizeof value), TRADEAUTH_ERR_SIGNING);
    CHECK(strstr(last_error(), "still running") != NULL);
    CHECK(signer_calls(&s) == 1);
    CHECK(s.concurrent == 0);
    CHECK(stat_counter("cascade", "logins") == 0);
    tradeauth_session_free(session);
    signer_drain(&s);
}

/* Freed while a sign-in waits for the signer: the blocked call returns CLOSED promptly,
   free does not wait for the signer, and no new call of it starts afterwards. */
typedef struct {
    tradeauth_session *session;
    tradeauth_status status;
    long returned_ms;
} header_call;

static void *call_header(void *arg) {
    header_call *call = arg;
    char value[4096];
    call->status = header(call->session, value, sizeof value);
    call->returned_ms = now_ms();
    return NULL;
}

static void test_free_while_signing(void) {
    signer_ctx s;
    signer_init(&s, NULL, DER);
    s.sleep_ms = 800;
    s.rc = 9;
    tradeauth_session *session = signer_session(&s, 5000);
    if (session == NULL) {
        return;
    }
    header_call call = {session, TRADEAUTH_OK, 0};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, call_header, &call) == 0);
    for (int i = 0; i < 3000 && signer_calls(&s) == 0; i++) {
        sleep_ms(5);
    }
    CHECK(signer_calls(&s) == 1);
    long start = now_ms();
    tradeauth_session_free(session);
    long free_took = now_ms() - start;
    pthread_join(thread, NULL);
    long call_took = call.returned_ms - start;
    EXPECT(call.status, TRADEAUTH_ERR_CLOSED);
    printf("freed while the signer runs: free took %ld ms, the blocked call returned %s after %ld ms\n",
           free_took, tradeauth_status_name(call.status), call_took);
    CHECK(free_took < 600);
    CHECK(call_took < 600);
    signer_drain(&s);
    CHECK(signer_calls(&s) == 1);
}

static const char *keystore_path(void) {
    const char *path = getenv("TRADEAUTH_TEST_KEYSTORE");
    return path != NULL ? path : "ffi/tests/fixtures/keystore/demo_delegate_pbkdf2.json";
}

static void test_keystore(void) {
    control_call("POST", "/reset", NULL);
    tradeauth_options *options = cascade_options();
    tradeauth_session *session = NULL;
    OK(tradeauth_cascade_new_from_keystore(DEPOSIT, keystore_path(), KEYSTORE_PASSWORD, options, &session));
    if (session != NULL) {
        char value[4096];
        OK(header(session, value, sizeof value));
        CHECK(strncmp(value, "Bearer ", 7) == 0);
        OK(tradeauth_session_refresh(session));
        CHECK(stat_counter("cascade", "logins") == 2);
        CHECK(check_signed_by_delegate() == 2);
        printf("keystore %s: logged in and refreshed\n", keystore_path());
        tradeauth_session_free(session);
    }
    /* Wrong password: INVALID_ARGUMENT naming the file, never the password. */
    tradeauth_session *out = NULL;
    const char *wrong = "hunter2-not-the-password";
    EXPECT(tradeauth_cascade_new_from_keystore(DEPOSIT, keystore_path(), wrong, options, &out),
           TRADEAUTH_ERR_INVALID_ARGUMENT);
    const char *message = last_error();
    CHECK(strstr(message, "demo_delegate_pbkdf2.json") != NULL);
    CHECK(strstr(message, wrong) == NULL);
    CHECK(strstr(message, KEYSTORE_PASSWORD) == NULL);
    CHECK(out == NULL);
    printf("wrong password: %s\n", message);
    EXPECT(tradeauth_cascade_new_from_keystore(DEPOSIT, "/nonexistent/keystore.json", KEYSTORE_PASSWORD,
                                               options, &out),
           TRADEAUTH_ERR_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "/nonexistent/keystore.json") != NULL);
    tradeauth_options_free(options);
}

/* ---------------------------------------------------------------- rotation */

typedef struct {
    tradeauth_session *session;
    long reads;
    long errors;
    long changes;
    int saw_new;
    int yield;
} reader;

static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static int stop_readers;

static int readers_stopped(void) {
    pthread_mutex_lock(&stop_lock);
    int stopped = stop_readers;
    pthread_mutex_unlock(&stop_lock);
    return stopped;
}

static void *read_headers(void *arg) {
    reader *r = arg;
    char name[64];
    char value[256];
    char previous[256] = "";
    size_t name_written = 0;
    size_t value_written = 0;
    long done = 0;
    /* A reader stops only after a full round of 256 reads that began after it saw the stop
     * flag: the flag is set after the update returned, so that round must see the new key.
     * (Stopping at the first check that saw the flag let a reader whose last read predated
     * the update leave without one read of the new key.) */
    long stop_at = -1;
    for (long i = 0;; i++) {
        if (i >= r->reads && i % 256 == 0) {
            if (stop_at >= 0 && i >= stop_at) {
                break;
            }
            if (stop_at < 0 && readers_stopped()) {
                stop_at = i + 256;
            }
        }
        done++;
        tradeauth_status st = tradeauth_session_header(r->session, name, sizeof name, &name_written,
                                                       value, sizeof value, &value_written);
        if (st != TRADEAUTH_OK || strcmp(name, "x-api-key") != 0 ||
            (strcmp(value, EXCHANGE_KEY) != 0 && strcmp(value, EXCHANGE_KEY_2) != 0)) {
            r->errors++;
            continue;
        }
        if (strcmp(previous, value) != 0) {
            r->changes++;
            memcpy(previous, value, value_written + 1);
        }
        if (strcmp(value, EXCHANGE_KEY_2) == 0) {
            r->saw_new = 1;
        }
        if (r->yield) {
            sched_yield();
        }
    }
    r->reads = done;
    return NULL;
}

static void test_rotation(void) {
    tradeauth_options *options = options_for(env("SIM_EXCHANGE"));
    tradeauth_session *exchange = NULL;
    OK(tradeauth_exchange_new(EXCHANGE_KEY, NULL, options, &exchange));
    tradeauth_options_free(options);
    if (exchange == NULL) {
        return;
    }
    const char *reads_env = getenv("TRADEAUTH_TEST_HEADER_READS");
    long reads = reads_env != NULL ? strtol(reads_env, NULL, 10) : 20000;
    enum { THREADS = 8 };
    pthread_t threads[THREADS];
    reader readers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        readers[i] = (reader){exchange, reads, 0, 0, 0, slow};
        CHECK(pthread_create(&threads[i], NULL, read_headers, &readers[i]) == 0);
    }
    sleep_ms(20);
    OK(tradeauth_session_update_secret(exchange, "api_key", EXCHANGE_KEY_2));
    pthread_mutex_lock(&stop_lock);
    stop_readers = 1;
    pthread_mutex_unlock(&stop_lock);
    long errors = 0;
    long total = 0;
    int saw_new = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        errors += readers[i].errors;
        total += readers[i].reads;
        saw_new += readers[i].saw_new;
    }
    CHECK(errors == 0);
    CHECK(saw_new == THREADS);
    char value[256];
    OK(header(exchange, value, sizeof value));
    CHECK(strcmp(value, EXCHANGE_KEY_2) == 0);
    printf("rotation: api_key replaced under %d reader threads, %ld header reads, %ld gaps\n", THREADS,
           total, errors);

    /* Wrong kind, a kind Exchange does not use, a malformed key: refused, nothing changed. */
    EXPECT(tradeauth_session_update_secret(exchange, "pasword", "x"), TRADEAUTH_ERR_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "kind") != NULL);
    EXPECT(tradeauth_session_update_secret(exchange, "password", "s3cret-value"),
           TRADEAUTH_ERR_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "s3cret-value") == NULL);
    EXPECT(tradeauth_session_update_secret(exchange, "api_key", "exch_not-a-key"),
           TRADEAUTH_ERR_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "exch_not-a-key") == NULL);
    NULLARG(tradeauth_session_update_secret(exchange, NULL, "x"));
    NULLARG(tradeauth_session_update_secret(exchange, "api_key", NULL));
    signer_ctx s;
    signer_init(&s, NULL, DER);
    EXPECT(tradeauth_session_update_signer(exchange, DELEGATE, test_sign, &s, 0),
           TRADEAUTH_ERR_INVALID_ARGUMENT);
    NULLARG(tradeauth_session_update_signer(exchange, DELEGATE, NULL, &s, 0));
    NULLARG(tradeauth_session_update_signer(exchange, NULL, test_sign, &s, 0));
    OK(header(exchange, value, sizeof value));
    CHECK(strcmp(value, EXCHANGE_KEY_2) == 0);
    CHECK(signer_calls(&s) == 0);
    tradeauth_session_free(exchange);
}

/* Cascade: key -> C signer -> key again; a replaced signer is never called again. */
static void test_cascade_rotation(EVP_PKEY *delegate) {
    control_call("POST", "/reset", NULL);
    tradeauth_options *options = cascade_options();
    tradeauth_session *session = NULL;
    OK(tradeauth_cascade_new(DEPOSIT, DELEGATE_KEY, options, &session));
    tradeauth_options_free(options);
    if (session == NULL) {
        return;
    }
    char value[4096];
    OK(header(session, value, sizeof value));
    signer_ctx s;
    signer_init(&s, delegate, DER);
    OK(tradeauth_session_update_signer(session, DELEGATE, test_sign, &s, 2000));
    CHECK(signer_calls(&s) == 0);
    OK(tradeauth_session_refresh(session));
    CHECK(signer_calls(&s) == 1);
    OK(tradeauth_session_update_secret(session, "delegate_private_key", DELEGATE_KEY));
    OK(tradeauth_session_refresh(session));
    CHECK(signer_calls(&s) == 1);
    EXPECT(tradeauth_session_update_secret(session, "api_key", EXCHANGE_KEY), TRADEAUTH_ERR_INVALID_ARGUMENT);
    EXPECT(tradeauth_session_update_secret(session, "delegate_private_key", "0xnot-a-key"),
           TRADEAUTH_ERR_INVALID_ARGUMENT);
    OK(tradeauth_session_refresh(session));
    CHECK(check_signed_by_delegate() == 4);
    printf("cascade rotation: key -> C signer -> key, the replaced signer was not called again\n");
    tradeauth_session_free(session);
}

int main(void) {
    slow = getenv("TRADEAUTH_TEST_SLOW") != NULL;
    harness_start("C external signer, keystore and rotation test");
    EVP_PKEY *delegate = secp256k1_key(DELEGATE_KEY);
    EVP_PKEY *stranger = secp256k1_key(STRANGER_KEY);
    CHECK(delegate != NULL && stranger != NULL);
    if (delegate == NULL || stranger == NULL) {
        return harness_finish();
    }
    test_arguments();
    test_shapes(delegate);
    test_failing_signers(stranger);
    test_hung_signer();
    test_free_while_signing();
    test_keystore();
    test_rotation();
    test_cascade_rotation(delegate);
    EVP_PKEY_free(delegate);
    EVP_PKEY_free(stranger);
    return harness_finish();
}
