import pytest

from callscreen.crypto import NumberVault, SealError


def test_digest_depends_on_the_key_so_a_plain_hash_table_cannot_reverse_it(vault):
    other = NumberVault(b"x" * 32, b"y" * 32)
    assert vault.digest("+79991234567") != other.digest("+79991234567")
    assert vault.digest("+79991234567") == vault.digest("+79991234567")
    assert "79991234567" not in vault.digest("+79991234567")


def test_sealed_number_opens_only_with_its_own_digest(vault):
    token = vault.seal("+79991234567")
    assert "79991234567" not in token
    assert vault.open(token, vault.digest("+79991234567")) == "+79991234567"
    with pytest.raises(SealError):
        vault.open(token, vault.digest("+79991234568"))


def test_altered_ciphertext_is_rejected(vault):
    token = vault.seal("+79991234567")
    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SealError):
        vault.open(altered, vault.digest("+79991234567"))
    with pytest.raises(SealError):
        vault.open("***not base64***", vault.digest("+79991234567"))


def test_sealing_twice_gives_different_ciphertexts(vault):
    assert vault.seal("+79991234567") != vault.seal("+79991234567")


def test_short_keys_are_refused():
    with pytest.raises(ValueError):
        NumberVault(b"short", b"e" * 32)
    with pytest.raises(ValueError):
        NumberVault(b"k" * 32, b"e" * 16)
