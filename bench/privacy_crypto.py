"""What per-person keys cost a logged decision: wrapping a candidate data key, unwrapping the
stored one and sealing the number (the previous design sealed once under the master key).

Run: ``.venv/bin/python bench/privacy_crypto.py`` — prints microseconds per operation.
"""

from __future__ import annotations

import timeit

from callscreen.crypto import NumberVault

N = 20_000


def main() -> None:
    vault = NumberVault(bytes(range(32)), bytes(range(32, 64)))
    digest = vault.digest("+79991234567")
    wrapped = vault.wrap_key(digest, vault.new_data_key())
    key = vault.unwrap_key(digest, wrapped)
    cases = {
        "wrap a candidate data key": lambda: vault.wrap_key(digest, vault.new_data_key()),
        "unwrap the stored data key": lambda: vault.unwrap_key(digest, wrapped),
        "seal the number under it": lambda: vault.seal_with(key, digest, "number", "+79991234567"),
        "legacy: seal under the master key": lambda: vault.seal("+79991234567"),
        "keyed consent id": lambda: vault.keyed_id("c", "+79991234567", "promotions", "web_form", "2026-05-01"),
    }
    for name, call in cases.items():
        best = min(timeit.repeat(call, number=N, repeat=3)) / N
        print(f"{name:36} {best * 1e6:7.1f} µs")


if __name__ == "__main__":
    main()
