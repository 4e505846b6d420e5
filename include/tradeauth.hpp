// tradeauth.hpp: a header-only C++17 RAII wrapper over the C ABI in tradeauth.h.
//
// - Unique ownership: Options, Session, Response, WsOptions and WebSocket own their C
//   handle, are movable and not copyable, and free it in their destructor.
// - Errors are exceptions: every failed call throws tradeauth::Error, which carries the
//   tradeauth_status and the library's message (never a secret).
// - std::string_view in, std::string out; the hot path (Session::header(HeaderBuffer&))
//   copies into a caller-owned fixed buffer and allocates nothing.
// - Thread safety is the C library's: a const Session may be used from any number of
//   threads at once.
//
// Link with libtradeauth (pkg-config: tradeauth; CMake: find_package(tradeauth)).
#ifndef TRADEAUTH_HPP
#define TRADEAUTH_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tradeauth.h"

namespace tradeauth {

/// A failed call: the status (see tradeauth.h) and the library's message.
class Error : public std::runtime_error {
  public:
    Error(tradeauth_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}

    /// The C status, e.g. TRADEAUTH_ERR_UNAUTHORIZED.
    tradeauth_status status() const noexcept { return status_; }

    /// The status' stable name, e.g. "unauthorized".
    const char *status_name() const noexcept { return tradeauth_status_name(status_); }

  private:
    tradeauth_status status_;
};

namespace detail {

/// The calling thread's last error message.
inline std::string last_error() {
    std::string message(512, '\0');
    size_t written = 0;
    tradeauth_status st = tradeauth_last_error_message(&message[0], message.size(), &written);
    if (st == TRADEAUTH_ERR_BUFFER_TOO_SMALL) {
        message.resize(written);
        st = tradeauth_last_error_message(&message[0], message.size(), &written);
    }
    if (st != TRADEAUTH_OK) {
        return "(no message)";
    }
    message.resize(written);
    return message;
}

/// Throws Error unless `status` is TRADEAUTH_OK.
inline void check(tradeauth_status status, const char *what) {
    if (status != TRADEAUTH_OK) {
        throw Error(status, std::string(what) + ": " + tradeauth_status_name(status) + ": " +
                                last_error());
    }
}

/// A NUL-terminated copy of a string_view (the C ABI takes C strings).
inline std::string c_str(std::string_view text) { return std::string(text); }

/// Reads text through a (buf, len, written) C call, growing the buffer once if needed.
template <typename Call> std::string read_text(Call call, const char *what) {
    std::string out(256, '\0');
    size_t written = 0;
    tradeauth_status st = call(&out[0], out.size(), &written);
    if (st == TRADEAUTH_ERR_BUFFER_TOO_SMALL) {
        out.resize(written);
        st = call(&out[0], out.size(), &written);
    }
    check(st, what);
    out.resize(written);
    return out;
}

/// An external signer (Session::cascade_with_signer): signs the 32-byte EIP-191 digest
/// as a prehash, returns 65 bytes r||s||v, 64 bytes r||s or DER (at most 80 bytes).
using SignerFunction = std::function<std::vector<uint8_t>(const uint8_t *digest)>;

/// Every live C++ signer, by number. The C library is given the number, not a pointer,
/// as userdata: a call that outlived its timeout may still be running on a library
/// thread after its Session is destroyed, and it then finds either its function (kept
/// alive by the shared_ptr it copied) or nothing, never freed memory.
struct SignerRegistry {
    std::mutex lock;
    std::unordered_map<uintptr_t, std::shared_ptr<const SignerFunction>> live;
    uintptr_t next = 1;
};

inline SignerRegistry &signer_registry() {
    // Never destroyed: a signer thread may run past the end of main().
    static SignerRegistry *registry = new SignerRegistry();
    return *registry;
}

/// One signer in the registry, for as long as this object lives.
class SignerSlot {
  public:
    explicit SignerSlot(SignerFunction function) {
        auto shared = std::make_shared<const SignerFunction>(std::move(function));
        SignerRegistry &registry = signer_registry();
        std::lock_guard<std::mutex> guard(registry.lock);
        id_ = registry.next++;
        registry.live.emplace(id_, std::move(shared));
    }
    ~SignerSlot() {
        SignerRegistry &registry = signer_registry();
        std::lock_guard<std::mutex> guard(registry.lock);
        registry.live.erase(id_);
    }
    SignerSlot(const SignerSlot &) = delete;
    SignerSlot &operator=(const SignerSlot &) = delete;

    void *userdata() const noexcept { return reinterpret_cast<void *>(id_); }

  private:
    uintptr_t id_ = 0;
};

/// The tradeauth_sign_fn of every C++ signer. Returns 1 if the function threw (nothing
/// unwinds into the library), 2 if its Session is gone, 3 if it returned more than
/// out_cap bytes.
inline int32_t sign_trampoline(void *userdata, const uint8_t *digest, uint8_t *out, size_t out_cap,
                               size_t *out_len) noexcept {
    try {
        std::shared_ptr<const SignerFunction> function;
        {
            SignerRegistry &registry = signer_registry();
            std::lock_guard<std::mutex> guard(registry.lock);
            auto found = registry.live.find(reinterpret_cast<uintptr_t>(userdata));
            if (found == registry.live.end()) return 2;
            function = found->second;
        }
        std::vector<uint8_t> signature = (*function)(digest);
        if (signature.size() > out_cap) return 3;
        if (!signature.empty()) std::memcpy(out, signature.data(), signature.size());
        *out_len = signature.size();
        return 0;
    } catch (...) {
        return 1;
    }
}

inline uint32_t timeout_ms(std::chrono::milliseconds timeout) {
    if (timeout.count() <= 0) return 0;
    if (timeout.count() > static_cast<long long>(UINT32_MAX)) return UINT32_MAX;
    return static_cast<uint32_t>(timeout.count());
}

} // namespace detail

/// An external signer for Session::cascade_with_signer / update_signer.
using SignerFunction = detail::SignerFunction;

/// The library version, e.g. "0.1.0".
inline std::string version() { return tradeauth_version(); }

/// Sets the process-wide settings before the first session: the library runtime's worker
/// threads and the renewal requests in flight at once to one venue (0 keeps a setting).
inline void configure_process(uint32_t worker_threads, uint32_t max_concurrent_renewals) {
    detail::check(tradeauth_process_configure(worker_threads, max_concurrent_renewals),
                  "tradeauth_process_configure");
}

/// Session options (base URL, extra roots, timeouts, refresh). Copied by Session constructors.
class Options {
  public:
    Options() {
        tradeauth_options *raw = nullptr;
        detail::check(tradeauth_options_new(&raw), "tradeauth_options_new");
        handle_.reset(raw);
    }

    /// The venue base URL (https:// only).
    Options &base_url(std::string_view url) {
        return set(tradeauth_options_set_base_url, "tradeauth_options_set_base_url",
                   detail::c_str(url).c_str());
    }
    /// Shares the credential between processes: "memory:", "file:///dir", "redis://...".
    Options &store(std::string_view url) {
        return set(tradeauth_options_set_store, "tradeauth_options_set_store",
                   detail::c_str(url).c_str());
    }
    /// The key (64 hex chars) that encrypts store records at rest.
    Options &store_key(std::string_view key) {
        return set(tradeauth_options_set_store_key, "tradeauth_options_set_store_key",
                   detail::c_str(key).c_str());
    }
    /// How long a store lease lasts (default 15 s): the longest the other processes wait
    /// for a renewing process that died.
    Options &store_lease(std::chrono::milliseconds lease) {
        return set(tradeauth_options_set_store_lease_ms, "tradeauth_options_set_store_lease_ms",
                   static_cast<uint64_t>(lease.count()));
    }
    /// Allows unencrypted store records (off by default).
    Options &store_plaintext(bool plaintext) {
        return set(tradeauth_options_set_store_plaintext, "tradeauth_options_set_store_plaintext",
                   plaintext);
    }
    /// A connection pool of this session's own instead of the process's shared one.
    Options &private_pool(bool private_pool) {
        return set(tradeauth_options_set_private_pool, "tradeauth_options_set_private_pool",
                   private_pool);
    }
    /// Trusts the certificate(s) in this PEM text too.
    Options &add_root_pem(std::string_view pem) {
        return set(tradeauth_options_add_root_pem, "tradeauth_options_add_root_pem",
                   detail::c_str(pem).c_str());
    }
    /// Trusts the certificate(s) in this PEM file too.
    Options &add_root_file(std::string_view path) {
        return set(tradeauth_options_add_root_file, "tradeauth_options_add_root_file",
                   detail::c_str(path).c_str());
    }
    /// Bound on one HTTP exchange.
    Options &request_timeout(std::chrono::milliseconds timeout) {
        return set(tradeauth_options_set_request_timeout_ms,
                   "tradeauth_options_set_request_timeout_ms", ms(timeout));
    }
    /// Bound on one TCP + TLS connect.
    Options &connect_timeout(std::chrono::milliseconds timeout) {
        return set(tradeauth_options_set_connect_timeout_ms,
                   "tradeauth_options_set_connect_timeout_ms", ms(timeout));
    }
    /// Bound on one whole authentication, retries included.
    Options &auth_timeout(std::chrono::milliseconds timeout) {
        return set(tradeauth_options_set_auth_timeout_ms, "tradeauth_options_set_auth_timeout_ms",
                   ms(timeout));
    }
    /// Retries on transport errors, 5xx and 429.
    Options &max_retries(uint32_t retries) {
        return set(tradeauth_options_set_max_retries, "tradeauth_options_set_max_retries", retries);
    }
    /// How long before expiry a token is renewed.
    Options &refresh_window(std::chrono::milliseconds window) {
        return set(tradeauth_options_set_refresh_window_ms,
                   "tradeauth_options_set_refresh_window_ms", ms(window));
    }
    /// Background refresh on (default) or off.
    Options &background_refresh(bool enabled) {
        return set(tradeauth_options_set_background_refresh,
                   "tradeauth_options_set_background_refresh", enabled);
    }
    /// The first and the largest backoff delay between retries.
    Options &retry_delays(std::chrono::milliseconds base, std::chrono::milliseconds max) {
        return set(tradeauth_options_set_retry_delays_ms, "tradeauth_options_set_retry_delays_ms",
                   static_cast<uint64_t>(base.count()), static_cast<uint64_t>(max.count()));
    }
    /// How far a venue's `Date` header may be from our clock and still be believed.
    Options &max_date_skew(std::chrono::milliseconds skew) {
        return set(tradeauth_options_set_max_date_skew_ms, "tradeauth_options_set_max_date_skew_ms",
                   static_cast<uint64_t>(skew.count()));
    }
    /// The longest token lifetime believed (a longer stated one is clamped).
    Options &max_lifetime(std::chrono::milliseconds lifetime) {
        return set(tradeauth_options_set_max_lifetime_ms, "tradeauth_options_set_max_lifetime_ms",
                   static_cast<uint64_t>(lifetime.count()));
    }
    /// The bound on one store operation.
    Options &store_timeout(std::chrono::milliseconds timeout) {
        return set(tradeauth_options_set_store_timeout_ms, "tradeauth_options_set_store_timeout_ms",
                   static_cast<uint64_t>(timeout.count()));
    }
    /// The Redis key prefix.
    Options &store_prefix(std::string_view prefix) {
        return set(tradeauth_options_set_store_prefix, "tradeauth_options_set_store_prefix",
                   detail::c_str(prefix).c_str());
    }
    /// A `rediss://` store's CA certificate(s), PEM text.
    Options &store_ca_pem(std::string_view pem) {
        return set(tradeauth_options_set_store_ca_pem, "tradeauth_options_set_store_ca_pem",
                   detail::c_str(pem).c_str());
    }

    /// The C handle (still owned by this object).
    const tradeauth_options *get() const noexcept { return handle_.get(); }

  private:
    /// Every setter: calls the C setter on this handle, throws its error, chains.
    template <typename... Params, typename... Args>
    Options &set(tradeauth_status (*setter)(tradeauth_options *, Params...), const char *what,
                 Args... args) {
        detail::check(setter(handle_.get(), args...), what);
        return *this;
    }
    static uint64_t ms(std::chrono::milliseconds d) {
        return d.count() < 0 ? 0 : static_cast<uint64_t>(d.count());
    }
    struct Free {
        void operator()(tradeauth_options *p) const noexcept { tradeauth_options_free(p); }
    };
    std::unique_ptr<tradeauth_options, Free> handle_;
};

/// A venue's HTTP answer.
class Response {
  public:
    explicit Response(tradeauth_response *raw) noexcept : handle_(raw) {}

    /// The HTTP status code.
    uint16_t status() const noexcept { return tradeauth_response_status(handle_.get()); }

    /// The body, valid as long as this Response.
    std::string_view body() const {
        const uint8_t *data = nullptr;
        size_t len = 0;
        detail::check(tradeauth_response_body(handle_.get(), &data, &len), "tradeauth_response_body");
        return std::string_view(reinterpret_cast<const char *>(data), len);
    }

    /// A header's value (case-insensitive name), or nullopt if absent.
    std::optional<std::string> header(std::string_view name) const {
        std::string key = detail::c_str(name);
        bool found = false;
        std::string value = detail::read_text(
            [&](char *buf, size_t len, size_t *written) {
                return tradeauth_response_header(handle_.get(), key.c_str(), buf, len, written, &found);
            },
            "tradeauth_response_header");
        if (!found) {
            return std::nullopt;
        }
        return value;
    }

  private:
    struct Free {
        void operator()(tradeauth_response *p) const noexcept { tradeauth_response_free(p); }
    };
    std::unique_ptr<tradeauth_response, Free> handle_;
};

/// Caller-owned storage for the hot path: big enough for every supported venue.
struct HeaderBuffer {
    char name[64];
    char value[4096];
    size_t name_len = 0;
    size_t value_len = 0;

    std::string_view name_view() const noexcept { return std::string_view(name, name_len); }
    /// The secret header value: attach it, never log it.
    std::string_view value_view() const noexcept { return std::string_view(value, value_len); }
};

/// What a WebSocket message means for authentication.
enum class WsReply : uint32_t {
    Unrelated = TRADEAUTH_WS_UNRELATED,
    Authenticated = TRADEAUTH_WS_AUTHENTICATED,
    Rejected = TRADEAUTH_WS_REJECTED,
};

/// An authentication event (no secrets).
struct Event {
    tradeauth_event_kind kind;
    tradeauth_status error; // TRADEAUTH_OK unless kind == TRADEAUTH_EVENT_FAILED
    std::string message;
};

/// One authenticated venue account. Movable, not copyable; const methods are thread-safe.
class Session {
  public:
    /// Cadenza: email + password.
    static Session cadenza(std::string_view email, std::string_view password, const Options &options) {
        return make("tradeauth_cadenza_new", [&](tradeauth_session **out) {
            return tradeauth_cadenza_new(detail::c_str(email).c_str(), detail::c_str(password).c_str(),
                                         options.get(), out);
        });
    }
    /// Partner: client id + HMAC secret; ttl 0 = 900 s.
    static Session partner(std::string_view client_id, std::string_view secret_key,
                           std::chrono::seconds ttl, const Options &options) {
        return make("tradeauth_partner_new", [&](tradeauth_session **out) {
            return tradeauth_partner_new(detail::c_str(client_id).c_str(), detail::c_str(secret_key).c_str(),
                                         static_cast<uint64_t>(ttl.count()), options.get(), out);
        });
    }
    /// Cascade: deposit address + delegate private key.
    static Session cascade(std::string_view deposit_address, std::string_view delegate_private_key,
                           const Options &options) {
        return make("tradeauth_cascade_new", [&](tradeauth_session **out) {
            return tradeauth_cascade_new(detail::c_str(deposit_address).c_str(),
                                         detail::c_str(delegate_private_key).c_str(), options.get(), out);
        });
    }
    /// Cascade with the delegate key outside the process: `signer` signs each challenge's
    /// 32-byte EIP-191 digest for `delegate_address` on a library thread (it may block; it
    /// is never run twice at once for this registration). An exception it throws fails the
    /// sign-in with TRADEAUTH_ERR_SIGNING ("the C signer returned 1"), as does a signature
    /// by another key, more than 80 bytes, or no answer within `timeout` (0: 10 s). The
    /// Session owns `signer`; a call still running when the Session is destroyed keeps
    /// its own reference to it, so it is never used after it is freed.
    static Session cascade_with_signer(std::string_view deposit_address, std::string_view delegate_address,
                                       SignerFunction signer, const Options &options,
                                       std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
        auto slot = std::make_unique<detail::SignerSlot>(std::move(signer));
        Session session = make("tradeauth_cascade_new_with_signer", [&](tradeauth_session **out) {
            return tradeauth_cascade_new_with_signer(detail::c_str(deposit_address).c_str(),
                                                     detail::c_str(delegate_address).c_str(),
                                                     &detail::sign_trampoline, slot->userdata(),
                                                     detail::timeout_ms(timeout), options.get(), out);
        });
        session.signers_.push_back(std::move(slot));
        return session;
    }
    /// Cascade with the delegate key decrypted from a Web3 Secret Storage v3 keystore file.
    static Session cascade_from_keystore(std::string_view deposit_address, std::string_view keystore_path,
                                         std::string_view password, const Options &options) {
        return make("tradeauth_cascade_new_from_keystore", [&](tradeauth_session **out) {
            return tradeauth_cascade_new_from_keystore(detail::c_str(deposit_address).c_str(),
                                                       detail::c_str(keystore_path).c_str(),
                                                       detail::c_str(password).c_str(), options.get(), out);
        });
    }
    /// Exchange: a trader key, an admin token, or neither (public).
    static Session exchange(std::optional<std::string_view> api_key,
                            std::optional<std::string_view> admin_token, const Options &options) {
        std::optional<std::string> key;
        std::optional<std::string> admin;
        if (api_key) key = std::string(*api_key);
        if (admin_token) admin = std::string(*admin_token);
        return make("tradeauth_exchange_new", [&](tradeauth_session **out) {
            return tradeauth_exchange_new(key ? key->c_str() : nullptr, admin ? admin->c_str() : nullptr,
                                          options.get(), out);
        });
    }
    /// From CADENZA_EMAIL / CADENZA_PASSWORD / CADENZA_BASE_URL / TRADEAUTH_CA_CERT.
    static Session cadenza_from_env(const Options &options) {
        return make("tradeauth_cadenza_from_env",
                    [&](tradeauth_session **out) { return tradeauth_cadenza_from_env(options.get(), out); });
    }
    /// From PARTNER_CLIENT_ID / PARTNER_SECRET_KEY / PARTNER_BASE_URL / ...
    static Session partner_from_env(const Options &options) {
        return make("tradeauth_partner_from_env",
                    [&](tradeauth_session **out) { return tradeauth_partner_from_env(options.get(), out); });
    }
    /// From CASCADE_DEPOSIT_ADDRESS / CASCADE_DELEGATE_PRIVATE_KEY / CASCADE_BASE_URL / ...
    static Session cascade_from_env(const Options &options) {
        return make("tradeauth_cascade_from_env",
                    [&](tradeauth_session **out) { return tradeauth_cascade_from_env(options.get(), out); });
    }
    /// From EXCHANGE_API_KEY or EXCHANGE_ADMIN_TOKEN / EXCHANGE_BASE_URL / ...
    static Session exchange_from_env(const Options &options) {
        return make("tradeauth_exchange_from_env",
                    [&](tradeauth_session **out) { return tradeauth_exchange_from_env(options.get(), out); });
    }

    Session(Session &&) noexcept = default;
    Session &operator=(Session &&other) noexcept {
        if (this != &other) {
            handle_.reset(); // stop our callback before its function object goes
            handle_ = std::move(other.handle_);
            callback_ = std::move(other.callback_);
            signers_ = std::move(other.signers_);
        }
        return *this;
    }
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;
    ~Session() { handle_.reset(); /* stops the callback first; callback_ is destroyed after */ }

    /// The hot path: no allocation, no lock, no blocking while a credential is cached.
    void header(HeaderBuffer &out) const {
        detail::check(tradeauth_session_header(handle_.get(), out.name, sizeof out.name, &out.name_len,
                                               out.value, sizeof out.value, &out.value_len),
                      "tradeauth_session_header");
    }

    /// The header as strings (allocates; convenient outside the hot path).
    std::pair<std::string, std::string> header() const {
        HeaderBuffer buffer;
        header(buffer);
        return {std::string(buffer.name_view()), std::string(buffer.value_view())};
    }

    /// Our own transport saw a 401 for `rejected_value` (nullopt: whatever is current).
    void invalidate(std::optional<std::string_view> rejected_value = std::nullopt) const {
        std::optional<std::string> value;
        if (rejected_value) value = std::string(*rejected_value);
        detail::check(tradeauth_session_invalidate(handle_.get(), value ? value->c_str() : nullptr),
                      "tradeauth_session_invalidate");
    }

    /// Renews the credential now and waits for it.
    void refresh() const { detail::check(tradeauth_session_refresh(handle_.get()), "tradeauth_session_refresh"); }

    /// Wipes every credential.
    void logout() const { detail::check(tradeauth_session_logout(handle_.get()), "tradeauth_session_logout"); }

    /// The venue's WebSocket auth message (holds the secret: send it, do not log it).
    std::string ws_auth_message(uint64_t id = 1) const {
        return detail::read_text(
            [&](char *buf, size_t len, size_t *written) {
                return tradeauth_session_ws_auth_message(handle_.get(), id, buf, len, written);
            },
            "tradeauth_session_ws_auth_message");
    }

    /// Classifies a WebSocket message received after the auth message.
    WsReply ws_handle_reply(std::string_view text) const {
        tradeauth_ws_reply reply = TRADEAUTH_WS_UNRELATED;
        detail::check(tradeauth_session_ws_handle_reply(handle_.get(), detail::c_str(text).c_str(), &reply),
                      "tradeauth_session_ws_handle_reply");
        return static_cast<WsReply>(reply);
    }

    /// An authenticated request; any HTTP status is a Response, transport failures throw.
    Response request(std::string_view method, std::string_view path,
                     std::optional<std::string_view> json_body = std::nullopt,
                     std::optional<std::string_view> headers = std::nullopt) const {
        std::optional<std::string> body;
        std::optional<std::string> extra;
        if (json_body) body = std::string(*json_body);
        if (headers) extra = std::string(*headers);
        tradeauth_response *raw = nullptr;
        detail::check(tradeauth_session_request(handle_.get(), detail::c_str(method).c_str(),
                                                detail::c_str(path).c_str(), body ? body->c_str() : nullptr,
                                                extra ? extra->c_str() : nullptr, &raw),
                      "tradeauth_session_request");
        return Response(raw);
    }

    /// Replaces a secret in place: `kind` is "password" (Cadenza), "secret_key" (Partner),
    /// "api_key" (Exchange) or "delegate_private_key" (Cascade). No gap for header readers.
    /// Safe from any thread (a replaced signer is kept until the Session goes).
    void update_secret(std::string_view kind, std::string_view value) const {
        detail::check(tradeauth_session_update_secret(handle_.get(), detail::c_str(kind).c_str(),
                                                      detail::c_str(value).c_str()),
                      "tradeauth_session_update_secret");
    }

    /// Cascade: replaces the delegate key source with `signer` (as cascade_with_signer).
    void update_signer(std::string_view delegate_address, SignerFunction signer,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
        auto slot = std::make_unique<detail::SignerSlot>(std::move(signer));
        detail::check(tradeauth_session_update_signer(handle_.get(), detail::c_str(delegate_address).c_str(),
                                                      &detail::sign_trampoline, slot->userdata(),
                                                      detail::timeout_ms(timeout)),
                      "tradeauth_session_update_signer");
        signers_.clear(); // the replaced signers start no new call
        signers_.push_back(std::move(slot));
    }

    /// Calls `callback` on a library thread for every event; an empty function removes it.
    /// The callback must not throw (exceptions are swallowed at the boundary).
    void on_event(std::function<void(const Event &)> callback) {
        if (!callback) {
            detail::check(tradeauth_session_set_event_callback(handle_.get(), nullptr, nullptr),
                          "tradeauth_session_set_event_callback");
            callback_.reset();
            return;
        }
        auto fresh = std::make_unique<std::function<void(const Event &)>>(std::move(callback));
        detail::check(tradeauth_session_set_event_callback(handle_.get(), &Session::trampoline, fresh.get()),
                      "tradeauth_session_set_event_callback");
        callback_ = std::move(fresh); // the old one is no longer called once set returned
    }

    /// "cadenza", "partner", "cascade" or "exchange".
    std::string venue() const { return tradeauth_session_venue(handle_.get()); }

    /// The account label (never a secret).
    std::string account() const {
        return detail::read_text(
            [&](char *buf, size_t len, size_t *written) {
                return tradeauth_session_account(handle_.get(), buf, len, written);
            },
            "tradeauth_session_account");
    }

    /// The venue's expiry of the current credential in Unix ms (0: none / never).
    uint64_t expires_at_ms() const {
        uint64_t out = 0;
        detail::check(tradeauth_session_expires_at_ms(handle_.get(), &out), "tradeauth_session_expires_at_ms");
        return out;
    }

    /// The C handle (still owned by this object).
    const tradeauth_session *get() const noexcept { return handle_.get(); }

  private:
    struct Free {
        void operator()(tradeauth_session *p) const noexcept { tradeauth_session_free(p); }
    };

    explicit Session(tradeauth_session *raw) noexcept : handle_(raw) {}

    template <typename Make> static Session make(const char *what, Make make_raw) {
        tradeauth_session *raw = nullptr;
        detail::check(make_raw(&raw), what);
        return Session(raw);
    }

    static void trampoline(void *userdata, tradeauth_event_kind kind, tradeauth_status error,
                           const char *message) {
        auto *callback = static_cast<std::function<void(const Event &)> *>(userdata);
        try {
            (*callback)(Event{kind, error, message != nullptr ? message : ""});
        } catch (...) {
            // Nothing may unwind into the library's thread.
        }
    }

    // Declared before handle_ so it is destroyed after it: the handle's destruction
    // stops the callback thread, and only then may the function object go.
    std::unique_ptr<std::function<void(const Event &)>> callback_;
    // External signers: destroyed after handle_ too (a running call keeps its own reference).
    std::vector<std::unique_ptr<detail::SignerSlot>> signers_;
    std::unique_ptr<tradeauth_session, Free> handle_;
};

/// Where a WebSocket connection stands (tradeauth_ws_connection_state).
enum class WsState : uint32_t {
    Connecting = TRADEAUTH_WS_STATE_CONNECTING,
    Authenticating = TRADEAUTH_WS_STATE_AUTHENTICATING,
    Authenticated = TRADEAUTH_WS_STATE_AUTHENTICATED,
    Open = TRADEAUTH_WS_STATE_OPEN,
    Reconnecting = TRADEAUTH_WS_STATE_RECONNECTING,
    Closed = TRADEAUTH_WS_STATE_CLOSED,
};

/// Whether an outgoing WebSocket message needs an authenticated connection.
enum class WsPrivacy : uint32_t {
    Auto = TRADEAUTH_WS_PRIVACY_AUTO,
    Public = TRADEAUTH_WS_PRIVACY_PUBLIC,
    Private = TRADEAUTH_WS_PRIVACY_PRIVATE,
};

/// WebSocket client options (tradeauth_ws_options); unset ones keep the defaults.
class WsOptions {
  public:
    WsOptions() {
        tradeauth_ws_options *raw = nullptr;
        detail::check(tradeauth_ws_options_new(&raw), "tradeauth_ws_options_new");
        handle_.reset(raw);
    }
    WsOptions &idle_timeout(std::chrono::milliseconds t) {
        return set(tradeauth_ws_options_set_idle_timeout_ms, "tradeauth_ws_options_set_idle_timeout_ms", ms(t));
    }
    WsOptions &ping_interval(std::chrono::milliseconds t) {
        return set(tradeauth_ws_options_set_ping_interval_ms, "tradeauth_ws_options_set_ping_interval_ms", ms(t));
    }
    WsOptions &reconnect_backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max) {
        return set(tradeauth_ws_options_set_reconnect_backoff_ms, "tradeauth_ws_options_set_reconnect_backoff_ms",
                   ms(initial), ms(max));
    }
    WsOptions &max_held(size_t messages) {
        return set(tradeauth_ws_options_set_max_held, "tradeauth_ws_options_set_max_held", messages);
    }
    WsOptions &hold_timeout(std::chrono::milliseconds t) {
        return set(tradeauth_ws_options_set_hold_timeout_ms, "tradeauth_ws_options_set_hold_timeout_ms", ms(t));
    }
    WsOptions &auth_timeout(std::chrono::milliseconds t) {
        return set(tradeauth_ws_options_set_auth_timeout_ms, "tradeauth_ws_options_set_auth_timeout_ms", ms(t));
    }
    WsOptions &inbound_capacity(size_t messages) {
        return set(tradeauth_ws_options_set_inbound_capacity, "tradeauth_ws_options_set_inbound_capacity", messages);
    }

    /// The C handle (still owned by this object).
    const tradeauth_ws_options *get() const noexcept { return handle_.get(); }

  private:
    static uint64_t ms(std::chrono::milliseconds t) { return t.count() < 0 ? 0 : static_cast<uint64_t>(t.count()); }
    template <typename Setter, typename... Args> WsOptions &set(Setter setter, const char *what, Args... args) {
        detail::check(setter(handle_.get(), args...), what);
        return *this;
    }
    struct Free {
        void operator()(tradeauth_ws_options *p) const noexcept { tradeauth_ws_options_free(p); }
    };
    std::unique_ptr<tradeauth_ws_options, Free> handle_;
};

/// A WebSocket connection that stays authenticated (tradeauth_ws): connects and
/// authenticates in the constructor (throws Error, e.g. TRADEAUTH_ERR_UNAUTHORIZED with the
/// venue's reason), then calls `on_message` with each received message (the venue's JSON
/// text) on a library thread, in order, until destroyed. Movable, not copyable; the
/// destructor closes the connection and returns once no callback runs. Do not destroy a
/// WebSocket from its own callback (its function object would go while it runs). The
/// callback must not throw (exceptions are swallowed at the boundary).
class WebSocket {
  public:
    using Callback = std::function<void(std::string_view)>;

    WebSocket(const Session &session, std::string_view path, Callback on_message)
        : WebSocket(session, path, std::move(on_message), nullptr) {}
    WebSocket(const Session &session, std::string_view path, Callback on_message, const WsOptions &options)
        : WebSocket(session, path, std::move(on_message), options.get()) {}

    WebSocket(WebSocket &&) noexcept = default;
    WebSocket &operator=(WebSocket &&other) noexcept {
        if (this != &other) {
            handle_.reset(); // stops the old callback before its function object goes
            callback_ = std::move(other.callback_);
            handle_ = std::move(other.handle_);
        }
        return *this;
    }
    WebSocket(const WebSocket &) = delete;
    WebSocket &operator=(const WebSocket &) = delete;
    ~WebSocket() { handle_.reset(); }

    /// Sends a subscription (replayed on every new connection); returns once written.
    void subscribe(std::string_view json, WsPrivacy privacy = WsPrivacy::Auto) {
        detail::check(tradeauth_ws_subscribe(handle_.get(), detail::c_str(json).c_str(),
                                             static_cast<tradeauth_ws_privacy>(privacy)),
                      "tradeauth_ws_subscribe");
    }

    /// Sends one message (private ones wait for auth); returns once written.
    void send(std::string_view json) {
        detail::check(tradeauth_ws_send(handle_.get(), detail::c_str(json).c_str()), "tradeauth_ws_send");
    }

    /// Where the connection stands now.
    WsState state() const {
        tradeauth_ws_connection_state out = TRADEAUTH_WS_STATE_CLOSED;
        detail::check(tradeauth_ws_state(handle_.get(), &out), "tradeauth_ws_state");
        return static_cast<WsState>(out);
    }

    /// The C handle (still owned by this object).
    tradeauth_ws *get() const noexcept { return handle_.get(); }

  private:
    WebSocket(const Session &session, std::string_view path, Callback on_message,
              const tradeauth_ws_options *options)
        : callback_(std::make_unique<Callback>(std::move(on_message))) {
        tradeauth_ws *raw = nullptr;
        detail::check(tradeauth_ws_connect(session.get(), detail::c_str(path).c_str(), options,
                                           &WebSocket::trampoline, callback_.get(), &raw),
                      "tradeauth_ws_connect");
        handle_.reset(raw);
    }

    static void trampoline(void *userdata, const char *json, size_t len) {
        auto *callback = static_cast<Callback *>(userdata);
        try {
            if (*callback) {
                (*callback)(std::string_view(json, len));
            }
        } catch (...) {
            // Nothing may unwind into the library's thread.
        }
    }

    struct Free {
        void operator()(tradeauth_ws *p) const noexcept { tradeauth_ws_free(p); }
    };

    // Declared before handle_ so it is destroyed after it.
    std::unique_ptr<Callback> callback_;
    std::unique_ptr<tradeauth_ws, Free> handle_;
};

} // namespace tradeauth

#endif // TRADEAUTH_HPP
