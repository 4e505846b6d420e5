"""The ``tradeauth`` console script: the same command line as the Rust binary
(``cargo install --path cli``), run by the native module. See ``tradeauth --help``."""

from __future__ import annotations

import sys

from . import _native


def main() -> None:
    """Runs ``tradeauth`` with this process's arguments and exits with its code."""
    # The native code writes to the file descriptors directly: flush Python's buffers
    # first so nothing printed earlier comes out after it.
    sys.stdout.flush()
    sys.stderr.flush()
    raise SystemExit(_native._cli_main(["tradeauth", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
