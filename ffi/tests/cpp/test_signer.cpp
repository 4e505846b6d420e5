// The C++ wrapper's external signer, keystore and rotation (tradeauth.hpp), against the
// simulator (scripts/test_c.sh starts it and exports SIM_*): Session::cascade_with_signer
// with a std::function signing through OpenSSL's libcrypto (only this test links it),
// a throwing signer (the exception never crosses the C boundary: TRADEAUTH_ERR_SIGNING),
// a Session destroyed while its signer still runs (the function outlives the call: ASan
// would see a use after free), Session::cascade_from_keystore and update_secret /
// update_signer. Prints "N passed, N failed"; exits non-zero on a failure.
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tradeauth.hpp"

using namespace std::chrono;

namespace {

const char *const kDeposit = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const char *const kDelegate = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
// Public test keys (Hardhat #0 and #2): the simulator's demo delegate and a stranger.
const char *const kDelegateKey = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const char *const kStrangerKey = "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

int passed = 0;
int failed = 0;

void check(bool ok, const char *what, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        std::fprintf(stderr, "FAIL test_signer.cpp:%d: %s\n", line, what);
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

std::string env(const char *name) {
    const char *value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
        std::fprintf(stderr, "%s is not set: run this through scripts/test_c.sh\n", name);
        std::exit(2);
    }
    return value;
}

tradeauth::Options cascade_options() {
    tradeauth::Options options;
    options.base_url(env("SIM_CASCADE")).add_root_file(env("SIM_CA")).max_retries(0).background_refresh(false);
    return options;
}

// A secp256k1 key from 64 hex characters (OpenSSL 3 EVP API).
std::shared_ptr<EVP_PKEY> secp256k1_key(const char *hex) {
    EVP_PKEY *pkey = nullptr;
    BIGNUM *priv = nullptr;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_secp256k1);
    EC_POINT *pub = EC_POINT_new(group);
    unsigned char pub_bytes[65];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = nullptr;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    if (BN_hex2bn(&priv, hex) != 64 || EC_POINT_mul(group, pub, priv, nullptr, nullptr, nullptr) != 1 ||
        EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, pub_bytes, sizeof pub_bytes, nullptr) !=
            sizeof pub_bytes ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "secp256k1", 0) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub_bytes, sizeof pub_bytes) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1) {
        pkey = nullptr;
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_clear_free(priv);
    EC_POINT_free(pub);
    EC_GROUP_free(group);
    return std::shared_ptr<EVP_PKEY>(pkey, EVP_PKEY_free);
}

// A signer answering DER (OpenSSL's random k, high s about half the time).
tradeauth::SignerFunction openssl_signer(std::shared_ptr<EVP_PKEY> key, std::shared_ptr<std::atomic<int>> calls) {
    return [key, calls](const uint8_t *digest) {
        calls->fetch_add(1);
        std::vector<uint8_t> der(80);
        size_t len = der.size();
        std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new(key.get(), nullptr),
                                                                          EVP_PKEY_CTX_free);
        if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 || EVP_PKEY_sign(ctx.get(), der.data(), &len, digest, 32) != 1) {
            throw std::runtime_error("OpenSSL could not sign");
        }
        der.resize(len);
        return der;
    };
}

template <typename Call> tradeauth_status status_of(Call call) {
    try {
        call();
        return TRADEAUTH_OK;
    } catch (const tradeauth::Error &e) {
        std::printf("  -> %s: %s\n", e.status_name(), e.what());
        return e.status();
    }
}

void test_signers(const std::shared_ptr<EVP_PKEY> &delegate, const std::shared_ptr<EVP_PKEY> &stranger) {
    auto calls = std::make_shared<std::atomic<int>>(0);
    {
        auto session = tradeauth::Session::cascade_with_signer(kDeposit, kDelegate, openssl_signer(delegate, calls),
                                                               cascade_options(), milliseconds(5000));
        auto header = session.header();
        CHECK(header.first == "authorization" && header.second.rfind("Bearer ", 0) == 0);
        for (int i = 0; i < 3; i++) session.refresh();
        CHECK(calls->load() == 4);
        std::printf("std::function signer (OpenSSL DER): 1 login + 3 refreshes, %d signatures\n", calls->load());

        // Replaced by a throwing signer: the exception becomes a non-zero return.
        session.update_signer(kDelegate, [](const uint8_t *) -> std::vector<uint8_t> {
            throw std::runtime_error("HSM offline");
        });
        std::printf("a throwing signer:\n");
        tradeauth_status st = status_of([&] { session.refresh(); });
        CHECK(st == TRADEAUTH_ERR_SIGNING);
        // And back to a key: signs again without any signer.
        session.update_secret("delegate_private_key", kDelegateKey);
        session.refresh();
        CHECK(calls->load() == 4);
        std::printf("wrong kind:\n");
        CHECK(status_of([&] { session.update_secret("api_key", "exch_00112233445566778899aabbccddeeff"); }) ==
              TRADEAUTH_ERR_INVALID_ARGUMENT);
    }
    {
        auto other = std::make_shared<std::atomic<int>>(0);
        auto session = tradeauth::Session::cascade_with_signer(kDeposit, kDelegate, openssl_signer(stranger, other),
                                                               cascade_options());
        std::printf("another key's signer:\n");
        CHECK(status_of([&] { session.header(); }) == TRADEAUTH_ERR_SIGNING);
        CHECK(other->load() == 1);
    }
    {
        std::printf("a signer returning 81 bytes:\n");
        auto session = tradeauth::Session::cascade_with_signer(
            kDeposit, kDelegate, [](const uint8_t *) { return std::vector<uint8_t>(81, 0x30); }, cascade_options());
        CHECK(status_of([&] { session.header(); }) == TRADEAUTH_ERR_SIGNING);
    }
}

// The Session goes while its signer is still running (it overran a 200 ms timeout): the
// running call keeps the function alive, touches its captures after the Session is gone,
// and returns; nothing is used after it is freed (ASan checks).
void test_session_destroyed_while_signing() {
    auto state = std::make_shared<std::atomic<int>>(0);
    std::weak_ptr<std::atomic<int>> watch = state;
    {
        auto session = tradeauth::Session::cascade_with_signer(
            kDeposit, kDelegate,
            [state](const uint8_t *) -> std::vector<uint8_t> {
                state->store(1);
                std::this_thread::sleep_for(milliseconds(800));
                state->store(2);
                throw std::runtime_error("too late");
            },
            cascade_options(), milliseconds(200));
        std::printf("a signer overrunning its 200 ms timeout:\n");
        CHECK(status_of([&] { session.header(); }) == TRADEAUTH_ERR_SIGNING);
        CHECK(state->load() == 1);
    }
    // The Session is gone; the call is still running and holds the function.
    CHECK(!watch.expired());
    state.reset();
    for (int i = 0; i < 300 && !watch.expired(); i++) std::this_thread::sleep_for(milliseconds(10));
    CHECK(watch.expired()); // the call returned and released the function
    std::printf("Session destroyed while its signer ran: the call finished on its own, then the function went\n");
}

void test_keystore() {
    std::string path = "ffi/tests/fixtures/keystore/demo_delegate_pbkdf2.json";
    auto session = tradeauth::Session::cascade_from_keystore(kDeposit, path, "tradeauth demo keystore", cascade_options());
    CHECK(session.header().second.rfind("Bearer ", 0) == 0);
    std::printf("wrong keystore password:\n");
    tradeauth_status st = TRADEAUTH_OK;
    try {
        tradeauth::Session::cascade_from_keystore(kDeposit, path, "not-the-password", cascade_options());
    } catch (const tradeauth::Error &e) {
        st = e.status();
        std::string message = e.what();
        CHECK(message.find("demo_delegate_pbkdf2.json") != std::string::npos);
        CHECK(message.find("not-the-password") == std::string::npos);
    }
    CHECK(st == TRADEAUTH_ERR_INVALID_ARGUMENT);
}

void test_exchange_rotation() {
    tradeauth::Options options;
    options.base_url(env("SIM_EXCHANGE")).add_root_file(env("SIM_CA"));
    const auto session =
        tradeauth::Session::exchange(std::string_view("exch_1d4208be6fa84b8cb0a2e5cfa9508d5f"), std::nullopt, options);
    session.update_secret("api_key", "exch_00112233445566778899aabbccddeeff"); // const: any thread
    CHECK(session.header().second == "exch_00112233445566778899aabbccddeeff");
    std::printf("unknown kind:\n");
    CHECK(status_of([&] { session.update_secret("pasword", "x"); }) == TRADEAUTH_ERR_INVALID_ARGUMENT);
}

} // namespace

int main() {
    std::setvbuf(stdout, nullptr, _IONBF, 0);
    std::printf("tradeauth %s C++ external signer test\n", tradeauth::version().c_str());
    auto delegate = secp256k1_key(kDelegateKey);
    auto stranger = secp256k1_key(kStrangerKey);
    CHECK(delegate && stranger);
    try {
        if (delegate && stranger) {
            test_signers(delegate, stranger);
            test_session_destroyed_while_signing();
            test_keystore();
            test_exchange_rotation();
        }
    } catch (const std::exception &e) {
        failed++;
        std::fprintf(stderr, "FAIL: unexpected exception: %s\n", e.what());
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
