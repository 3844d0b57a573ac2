import os

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


def test_a_data_key_unwraps_only_for_its_own_subject_and_master_key(vault):
    digest, other = vault.digest("+79991234567"), vault.digest("+79991234568")
    data_key = vault.new_data_key()
    wrapped = vault.wrap_key(digest, data_key)
    assert wrapped.startswith(f"w1.{vault.key_id}.") and data_key.hex() not in wrapped
    assert vault.unwrap_key(digest, wrapped) == data_key
    with pytest.raises(SealError):
        vault.unwrap_key(other, wrapped)
    with pytest.raises(SealError):
        NumberVault(b"k" * 32, b"e" * 32).unwrap_key(digest, wrapped)


def test_a_retired_master_key_still_unwraps_and_rewrap_moves_the_key_to_the_new_one():
    old = NumberVault(b"k" * 32, b"o" * 32)
    new = NumberVault(b"k" * 32, b"n" * 32, previous_encryption_keys=[b"o" * 32])
    digest = old.digest("+79991234567")
    data_key = old.new_data_key()
    wrapped = old.wrap_key(digest, data_key)
    rewrapped = new.rewrap_key(digest, wrapped)
    assert rewrapped.split(".")[1] == new.key_id != old.key_id
    assert new.unwrap_key(digest, wrapped) == new.unwrap_key(digest, rewrapped) == data_key
    assert new.rewrap_key(digest, rewrapped) == rewrapped


def test_a_sealed_field_opens_only_under_its_key_digest_and_field_name(vault):
    digest = vault.digest("+79991234567")
    data_key = vault.new_data_key()
    token = vault.seal_with(data_key, digest, "number", "+79991234567")
    assert token.startswith("s1.") and "79991234567" not in token
    assert vault.open_with(data_key, digest, "number", token) == "+79991234567"
    for key, dig, name in ((vault.new_data_key(), digest, "number"), (data_key, "0" * 32, "number"),
                           (data_key, digest, "proof")):
        with pytest.raises(SealError):
            vault.open_with(key, dig, name, token)


def test_keyed_ids_are_stable_per_content_and_differ_per_key(vault):
    one = vault.keyed_id("c", "+79991234567", "promotions", "web_form", "2026-05-01T10:00:00Z")
    assert one == vault.keyed_id("c", "+79991234567", "promotions", "web_form", "2026-05-01T10:00:00Z")
    assert one != vault.keyed_id("c", "+79991234568", "promotions", "web_form", "2026-05-01T10:00:00Z")
    assert one != NumberVault(b"x" * 32, b"y" * 32).keyed_id("c", "+79991234567", "promotions", "web_form",
                                                             "2026-05-01T10:00:00Z")
    assert one.startswith("c-") and len(one) == 26


@pytest.mark.parametrize("key_length", [32, 64, 65, 200])
def test_digests_of_a_batch_equal_the_digest_of_each_number(key_length):
    vault = NumberVault(bytes(range(key_length)), os.urandom(32))
    numbers = ["+12125550100", "+442079460958", "+79991234567", "+19005550100"]
    assert vault.digests(numbers) == [vault.digest(n) for n in numbers]
    assert len(set(vault.digests(numbers))) == len(numbers)
