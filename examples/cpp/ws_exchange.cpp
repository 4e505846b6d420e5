// Exchange WebSocket from C++ (tradeauth::WebSocket): the `auth` message with the
// session's x-api-key, a public order book and a private fills subscription, an order
// placed over the socket (held until the venue has accepted the key), messages in order
// on a library thread delivered to a std::function.
//
// Usage: ws_exchange [BASE_URL]   (default $SIM_EXCHANGE; trusts $SIM_CA; EXCHANGE_API_KEY,
// else the simulator's demo trader)
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "tradeauth.hpp"

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : std::getenv("SIM_EXCHANGE");
    if (url == nullptr) {
        std::fprintf(stderr, "error: SIM_EXCHANGE is not set (start the simulator)\n");
        return 2;
    }
    const char *key = std::getenv("EXCHANGE_API_KEY");
    try {
        tradeauth::Options options;
        options.base_url(url);
        if (const char *ca = std::getenv("SIM_CA")) {
            options.add_root_file(ca);
        }
        auto session = tradeauth::Session::exchange(key != nullptr ? key : "exch_1d4208be6fa84b8cb0a2e5cfa9508d5f",
                                                    std::nullopt, options);

        std::mutex lock;
        std::condition_variable changed;
        std::vector<std::string> messages;
        bool accepted = false;
        // Runs on the library's thread; the WebSocket's destructor waits for it to return.
        tradeauth::WebSocket ws(session, "/ws", [&](std::string_view json) {
            std::lock_guard<std::mutex> guard(lock);
            messages.emplace_back(json);
            accepted = accepted || json.find("\"order_accepted\"") != std::string_view::npos;
            changed.notify_all();
        });
        std::printf("connected, authenticated: %s\n", ws.state() == tradeauth::WsState::Authenticated ? "yes" : "no");
        ws.subscribe(R"({"op":"subscribe","channel":"orderbook","market":"BTC-USD"})");
        ws.subscribe(R"({"op":"subscribe","channel":"fills"})"); // private, by the venue's rules
        ws.send(R"({"op":"place_order","market":"BTC-USD","side":"buy","price":50000.0,"quantity":0.1})");

        std::unique_lock<std::mutex> guard(lock);
        bool ok = changed.wait_for(guard, std::chrono::seconds(10), [&] { return accepted; });
        for (const auto &m : messages) {
            std::printf("message: %.100s%s\n", m.c_str(), m.size() > 100 ? "..." : "");
        }
        guard.unlock();
        if (!ok) {
            std::fprintf(stderr, "error: no order_accepted in 10 s\n");
            return 1;
        }
    } catch (const tradeauth::Error &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    std::printf("order accepted; connection closed\n");
    return 0;
}
