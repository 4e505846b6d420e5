// An engine-style example: several threads read the auth header on the hot path (as an
// order gateway does before every request) while the library refreshes the Cadenza
// token in the background. It checks that no read fails, that the token does change
// underneath the readers, and reports the slowest read.
//
// Usage: engine [SECONDS]   (Cadenza at $SIM_CADENZA, CA $SIM_CA; if $SIM_CONTROL is set
// the simulator is first told to issue 3-second access tokens, so refreshes happen
// within the run.)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tradeauth.hpp"

using namespace std::chrono;

namespace {

std::string env(const char *name) {
    const char *value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
        throw std::runtime_error(std::string(name) + " is not set (run scripts/demo_c.sh)");
    }
    return value;
}

tradeauth::Options sim_options(const std::string &url) {
    tradeauth::Options options;
    options.base_url(url).add_root_file(env("SIM_CA"));
    return options;
}

struct ReaderStats {
    long reads = 0;
    long errors = 0;
    long changes = 0;
    nanoseconds slowest{0};
};

} // namespace

int main(int argc, char **argv) {
    try {
        const int seconds = argc > 1 ? std::atoi(argv[1]) : 8;
        std::printf("tradeauth %s, engine example: %d reader threads for %d s\n",
                    tradeauth::version().c_str(), 4, seconds);

        if (std::getenv("SIM_CONTROL") != nullptr) {
            // Short-lived tokens so the background refresher has work to do in the demo.
            auto control = tradeauth::Session::exchange(std::nullopt, std::nullopt, sim_options(env("SIM_CONTROL")));
            auto answer = control.request("POST", "/lifetimes", R"({"venue":"cadenza","access_ttl_secs":3})");
            std::printf("simulator now issues 3 s Cadenza access tokens (HTTP %u)\n", answer.status());
        }

        auto session = tradeauth::Session::cadenza("demo@cadenza.test", "demo-password",
                                                   sim_options(env("SIM_CADENZA")));
        std::atomic<int> refreshed{0};
        std::atomic<int> failures{0};
        session.on_event([&](const tradeauth::Event &event) {
            if (event.kind == TRADEAUTH_EVENT_REFRESHED) refreshed++;
            if (event.kind == TRADEAUTH_EVENT_FAILED) failures++;
            std::printf("  [event] %s\n", event.message.c_str());
        });

        // Warm up: the first read logs in (the only read allowed to block).
        tradeauth::HeaderBuffer first;
        session.header(first);
        std::printf("logged in as %s; header %.*s: <redacted>\n", session.account().c_str(),
                    static_cast<int>(first.name_len), first.name);

        std::atomic<bool> stop{false};
        std::vector<ReaderStats> stats(4);
        std::vector<std::thread> readers;
        for (auto &s : stats) {
            readers.emplace_back([&session, &stop, &s] {
                tradeauth::HeaderBuffer buffer; // per thread, reused: no allocation per read
                std::string previous;
                while (!stop.load(std::memory_order_relaxed)) {
                    auto t0 = steady_clock::now();
                    try {
                        session.header(buffer);
                    } catch (const tradeauth::Error &) {
                        s.errors++;
                        continue;
                    }
                    auto took = steady_clock::now() - t0;
                    s.slowest = std::max(s.slowest, duration_cast<nanoseconds>(took));
                    s.reads++;
                    if (buffer.value_view() != previous) { // compared, never printed
                        s.changes++;
                        previous.assign(buffer.value_view());
                    }
                    std::this_thread::sleep_for(microseconds(50)); // "send the order"
                }
            });
        }
        std::this_thread::sleep_for(seconds * 1s);
        stop = true;
        for (auto &t : readers) t.join();

        long reads = 0, errors = 0, changes = 0;
        nanoseconds slowest{0};
        for (const auto &s : stats) {
            reads += s.reads;
            errors += s.errors;
            changes += s.changes;
            slowest = std::max(slowest, s.slowest);
        }
        std::printf("%ld header reads, %ld errors, %ld token changes seen, %d background refreshes, "
                    "slowest read %.1f us\n",
                    reads, errors, changes, refreshed.load(), duration_cast<nanoseconds>(slowest).count() / 1000.0);
        session.on_event(nullptr);
        if (errors != 0 || (std::getenv("SIM_CONTROL") != nullptr && refreshed.load() == 0)) {
            std::fprintf(stderr, "engine example: expected no errors and at least one background refresh\n");
            return 1;
        }
        std::printf("engine example done\n");
        return 0;
    } catch (const tradeauth::Error &e) {
        std::fprintf(stderr, "tradeauth error (%s): %s\n", e.status_name(), e.what());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
