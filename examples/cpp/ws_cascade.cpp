// Cascade WebSocket from C++ (tradeauth::WebSocket): connect and authenticate, a public and
// a private subscription, a private JSON-RPC query, messages in order on a library thread.
//
// Usage: ws_cascade [BASE_URL]   (default $SIM_CASCADE; trusts $SIM_CA; the simulator's demo wallet)
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "tradeauth.hpp"

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : std::getenv("SIM_CASCADE");
    if (url == nullptr) {
        std::fprintf(stderr, "error: SIM_CASCADE is not set (start the simulator)\n");
        return 2;
    }
    try {
        tradeauth::Options options;
        options.base_url(url);
        if (const char *ca = std::getenv("SIM_CA")) {
            options.add_root_file(ca);
        }
        auto session = tradeauth::Session::cascade("0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                                                   "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
                                                   options);

        std::mutex lock;
        std::condition_variable changed;
        std::vector<std::string> messages;
        tradeauth::WsOptions ws_options;
        ws_options.hold_timeout(std::chrono::seconds(20));
        tradeauth::WebSocket ws(session, "/ws",
                                [&](std::string_view json) {
                                    std::lock_guard<std::mutex> guard(lock);
                                    messages.emplace_back(json);
                                    changed.notify_all();
                                },
                                ws_options);
        std::printf("connected, authenticated: %s\n", ws.state() == tradeauth::WsState::Authenticated ? "yes" : "no");
        ws.subscribe(R"({"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"channel":"orderbook","market":"ETH-USD"}})");
        ws.subscribe(R"({"jsonrpc":"2.0","id":2,"method":"subscribe","params":{"channel":"orders"}})",
                     tradeauth::WsPrivacy::Private);
        ws.send(R"({"jsonrpc":"2.0","id":3,"method":"orders.list","params":{}})");

        std::unique_lock<std::mutex> guard(lock);
        bool answered = changed.wait_for(guard, std::chrono::seconds(10), [&] {
            for (const auto &m : messages) {
                if (m.find("\"id\":3") != std::string::npos && m.find("\"orders\"") != std::string::npos) {
                    return true;
                }
            }
            return false;
        });
        for (const auto &m : messages) {
            std::printf("message: %.100s%s\n", m.c_str(), m.size() > 100 ? "..." : "");
        }
        guard.unlock();
        if (!answered) {
            std::fprintf(stderr, "error: no orders.list answer in 10 s\n");
            return 1;
        }

        // Errors are tradeauth::Error: text that is not a JSON object is refused before sending.
        try {
            ws.send("not json");
        } catch (const tradeauth::Error &e) {
            std::printf("a send that is not a JSON object -> %s\n", e.what());
        }
        tradeauth::WebSocket moved = std::move(ws); // move-only; the callback follows
        std::printf("state after move: %s\n", moved.state() == tradeauth::WsState::Authenticated ? "authenticated" : "?");
    } catch (const tradeauth::Error &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    std::printf("closed\n");
    return 0;
}
