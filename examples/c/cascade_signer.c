/*
 * Cascade from C without the delegate key in this process: an external signer (an HSM,
 * a cloud KMS, a signing service) signs each challenge's 32-byte EIP-191 digest through
 * a tradeauth_sign_fn callback. Then the same account from a Web3 Secret Storage v3
 * keystore file (geth / eth_account / Foundry / ethers JSON) instead of a raw hex key.
 *
 * The "HSM" here is OpenSSL's libcrypto holding the simulator's public demo delegate key
 * (Hardhat #0): it stands in for your KMS / PKCS#11 client and answers DER, with a random
 * nonce and a high s about half the time, as those do. libtradeauth itself does not use
 * OpenSSL: only this example links -lcrypto.
 *
 * Usage: cascade_signer [BASE_URL]   (default $SIM_CASCADE; trusts $SIM_CA;
 * CASCADE_KEYSTORE / CASCADE_KEYSTORE_PASSWORD, else the demo keystore fixture)
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include "example.h"

#define DEPOSIT "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
#define DELEGATE "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"

/* What the signer needs: its key handle (an HSM session, a KMS key id...) and a count.
   It is called on a library thread, so anything it shares with other threads is locked. */
typedef struct {
    EVP_PKEY *key;
    pthread_mutex_t lock;
    int signatures;
} hsm;

static int hsm_signatures(hsm *h) {
    pthread_mutex_lock(&h->lock);
    int n = h->signatures;
    pthread_mutex_unlock(&h->lock);
    return n;
}

/* The tradeauth_sign_fn: sign the digest as a prehash, answer DER (or 64 / 65 bytes). */
static int32_t hsm_sign(void *userdata, const uint8_t *digest, uint8_t *out, size_t out_cap,
                        size_t *out_len) {
    hsm *h = userdata;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(h->key, NULL);
    size_t len = out_cap;
    int ok = ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_sign(ctx, out, &len, digest, 32) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        return 1; /* tradeauth reports TRADEAUTH_ERR_SIGNING "the C signer returned 1" */
    }
    *out_len = len;
    pthread_mutex_lock(&h->lock);
    h->signatures++;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

/* Loads a raw secp256k1 key into OpenSSL (what a real HSM would already hold). */
static EVP_PKEY *load_demo_key(const char *hex) {
    EVP_PKEY *pkey = NULL;
    BIGNUM *priv = NULL;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_secp256k1);
    EC_POINT *pub = EC_POINT_new(group);
    unsigned char pub_bytes[65];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (BN_hex2bn(&priv, hex) == 64 && EC_POINT_mul(group, pub, priv, NULL, NULL, NULL) == 1 &&
        EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, pub_bytes, sizeof pub_bytes, NULL) ==
            sizeof pub_bytes &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "secp256k1", 0) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub_bytes, sizeof pub_bytes) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL && EVP_PKEY_fromdata_init(ctx) == 1) {
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params);
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_clear_free(priv);
    EC_POINT_free(pub);
    EC_GROUP_free(group);
    return pkey;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    tradeauth_options *options = example_options(argc, argv, "SIM_CASCADE");

    /* 1. External signer. userdata (here on the stack of main) must outlive the session
          and any signer call still running after tradeauth_session_free: main waits for
          none here because no call overran its timeout. */
    hsm h = {load_demo_key("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
             PTHREAD_MUTEX_INITIALIZER, 0};
    if (h.key == NULL) {
        fprintf(stderr, "error: OpenSSL could not load the demo key\n");
        return 1;
    }
    tradeauth_session *session = NULL;
    example_check(tradeauth_cascade_new_with_signer(DEPOSIT, DELEGATE, hsm_sign, &h, 5000 /* ms */, options,
                                                    &session),
                  "tradeauth_cascade_new_with_signer");
    printf("signing in as %s with delegate %s held by the external signer\n", DEPOSIT, DELEGATE);
    example_show_header(session); /* challenge, external signature, session token */
    example_request(session, "GET", "/account/orders", NULL, 1);
    example_check(tradeauth_session_refresh(session), "tradeauth_session_refresh");
    printf("forced refresh: a new challenge signed; %d signatures by the external signer so far\n",
           hsm_signatures(&h));

    /* A signer that says no: the sign-in fails with TRADEAUTH_ERR_SIGNING, nothing posted. */
    tradeauth_session *refused = NULL;
    example_check(tradeauth_cascade_new_with_signer(DEPOSIT, "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
                                                    hsm_sign, &h, 0, options, &refused),
                  "tradeauth_cascade_new_with_signer");
    char name[64];
    char value[4096];
    size_t name_len = 0;
    size_t value_len = 0;
    tradeauth_status st =
        tradeauth_session_header(refused, name, sizeof name, &name_len, value, sizeof value, &value_len);
    printf("signer declared for another address -> %s: %s\n", tradeauth_status_name(st), example_last_error());
    tradeauth_session_free(refused);
    tradeauth_session_free(session);

    /* 2. Keystore file: decrypted once here; wrong passwords name the file, never the password. */
    const char *keystore = getenv("CASCADE_KEYSTORE") ? getenv("CASCADE_KEYSTORE")
                                                      : "ffi/tests/fixtures/keystore/demo_delegate_pbkdf2.json";
    const char *password =
        getenv("CASCADE_KEYSTORE_PASSWORD") ? getenv("CASCADE_KEYSTORE_PASSWORD") : "tradeauth demo keystore";
    st = tradeauth_cascade_new_from_keystore(DEPOSIT, keystore, "wrong password", options, &session);
    printf("keystore with a wrong password -> %s: %s\n", tradeauth_status_name(st), example_last_error());
    example_check(tradeauth_cascade_new_from_keystore(DEPOSIT, keystore, password, options, &session),
                  "tradeauth_cascade_new_from_keystore");
    printf("delegate key decrypted from %s\n", keystore);
    example_show_header(session);
    example_request(session, "GET", "/account/positions", NULL, 1);

    /* 3. Rotation: hand the running session to the external signer, no restart, no gap. */
    example_check(tradeauth_session_update_signer(session, DELEGATE, hsm_sign, &h, 5000),
                  "tradeauth_session_update_signer");
    example_check(tradeauth_session_refresh(session), "tradeauth_session_refresh");
    printf("after tradeauth_session_update_signer the renewal was signed externally (%d signatures)\n",
           hsm_signatures(&h));
    tradeauth_session_free(session);

    tradeauth_options_free(options);
    EVP_PKEY_free(h.key);
    printf("cascade_signer example done\n");
    return 0;
}
