// The C++ side of smoke.c: tradeauth.hpp against an installed libtradeauth (shared and
// static), with no venue needed. Exits non-zero on any surprise.
#include <cstdio>

#include "tradeauth.hpp"

int main() {
    const std::string version = tradeauth::version();
    if (version.empty()) {
        std::fprintf(stderr, "smoke: empty tradeauth::version()\n");
        return 1;
    }
    tradeauth::Options options;
    try {
        // Refused by the library's PEM parser: proves a real call, and that the error
        // comes back as tradeauth::Error across the C ABI.
        options.add_root_pem("not a certificate");
        std::fprintf(stderr, "smoke: add_root_pem accepted text without a certificate\n");
        return 1;
    } catch (const tradeauth::Error &e) {
        if (e.status() != TRADEAUTH_ERR_INVALID_ARGUMENT) {
            std::fprintf(stderr, "smoke: unexpected status %s\n", e.status_name());
            return 1;
        }
    }
    std::printf("libtradeauth %s (C++): ok\n", version.c_str());
    return 0;
}
