"""The installed wheel: imported from site-packages, typed, complete `__all__`."""

from __future__ import annotations

from pathlib import Path

import tradeauth
from tradeauth import _native


def test_imported_from_the_installed_wheel() -> None:
    package = Path(tradeauth.__file__).parent
    assert "site-packages" in package.parts, package
    assert (package / "py.typed").exists()
    assert (package / "_native.pyi").exists()
    assert Path(_native.__file__).name.endswith(".abi3.so")


def test_public_names() -> None:
    assert tradeauth.__version__ == _native.__version__
    for name in tradeauth.__all__:
        assert hasattr(tradeauth, name), name
    assert tradeauth.CADENZA_URL == "https://cadenza-api.algo724.com"
