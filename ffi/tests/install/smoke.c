/* Links against an installed libtradeauth (scripts/test_c.sh: the unpacked release
 * tarball, through pkg-config and CMake, shared and static) and calls into it. Needs no
 * venue or simulator: the point is that the install links and loads, not the protocol
 * (ffi/tests/c covers that). Exits non-zero on any surprise. */
#include <stdio.h>
#include <string.h>

#include "tradeauth.h"

int main(void) {
    const char *version = tradeauth_version();
    if (version == NULL || version[0] == '\0') {
        fprintf(stderr, "smoke: empty tradeauth_version()\n");
        return 1;
    }
    tradeauth_options *options = NULL;
    if (tradeauth_options_new(&options) != TRADEAUTH_OK || options == NULL) {
        fprintf(stderr, "smoke: tradeauth_options_new failed\n");
        return 1;
    }
    /* Text without a CERTIFICATE block is refused by the library's PEM parser: a real
     * call through the Rust code, with a status and a last error message. */
    tradeauth_status st = tradeauth_options_add_root_pem(options, "not a certificate");
    char message[512];
    size_t written = 0;
    if (st != TRADEAUTH_ERR_INVALID_ARGUMENT ||
        tradeauth_last_error_message(message, sizeof message, &written) != TRADEAUTH_OK ||
        written == 0 || strcmp(tradeauth_status_name(st), "invalid_argument") != 0) {
        fprintf(stderr, "smoke: unexpected status %u from tradeauth_options_add_root_pem\n",
                (unsigned)st);
        tradeauth_options_free(options);
        return 1;
    }
    tradeauth_options_free(options);
    printf("libtradeauth %s (C): ok\n", version);
    return 0;
}
