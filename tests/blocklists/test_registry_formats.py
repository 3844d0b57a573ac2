"""Registry file formats: every spelling in, exact keys out; bad lines reported by line number."""

import gzip
import random
import zipfile

import pytest

from blocklists.formats import FormatError, Source, read_batches
from blocklists.numbering import GB, NANP, BadNumber, locate_e164, scheme_for_country, split_e164
from blocklists.storage import BitmapBuilder, pack

pytestmark = pytest.mark.also_cluster


def read_all(path, fmt, scheme=NANP, **options):
    keys, deletions, bad, bad_count, lines = [], [], [], 0, 0
    for batch in read_batches(Source(path), fmt, scheme, **options):
        keys += batch.keys.tolist()
        deletions += batch.deletions
        bad += batch.bad
        bad_count += batch.bad_count
        lines += batch.lines
    return keys, deletions, bad, bad_count, lines


def e164s(keys, scheme=NANP):
    return sorted(f"+{scheme.cc}{str(k)[1:]}" for k in keys)


def write(path, text, kind="plain", member="list.txt"):
    data = text.encode()
    if kind == "gzip":
        path.write_bytes(gzip.compress(data))
    elif kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(member, data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", ["plain", "gzip", "zip"])
def test_one_number_per_line_in_any_spelling_reads_the_same_plain_gz_or_zip(tmp_path, kind):
    text = "(212) 555-0100\n+1 212 555 0101\n1-212-555-0102\n212.555.0103\r\n\n2125550104\n"
    path = write(tmp_path / f"list.{kind}", text, kind)
    keys, _, bad, bad_count, lines = read_all(path, "lines")
    assert e164s(keys) == [f"+121255501{i:02d}" for i in range(5)]
    assert (bad, bad_count, lines) == ([], 0, 6)


def test_bad_lines_are_counted_with_their_line_numbers_and_good_lines_kept(tmp_path):
    text = "2125550100\nhello\n212-155-0100\n12345\n2125550101\n+44 20 7946 0958\n"
    keys, _, bad, bad_count, _ = read_all(write(tmp_path / "l.txt", text), "lines")
    assert e164s(keys) == ["+12125550100", "+12125550101"]
    assert bad_count == 4
    assert [(b.line, b.text) for b in bad] == [(2, "hello"), (3, "212-155-0100"), (4, "12345"),
                                              (6, "+44 20 7946 0958")]
    assert "exchange" in bad[1].reason


def test_bad_lines_in_a_zip_name_their_member(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("201.txt", "2012001234\n")
        archive.writestr("202.txt", "2022001234\nnope\n")
    keys, _, bad, _, _ = read_all(path, "lines")
    assert e164s(keys) == ["+12012001234", "+12022001234"]
    assert [(b.where, b.line) for b in bad] == [("202.txt", 2)]


def test_the_fast_chunk_parser_agrees_with_the_line_parser_on_a_large_clean_file(tmp_path):
    rng = random.Random(7)
    numbers = {f"{rng.randrange(201, 990)}{rng.randrange(200, 1000)}{rng.randrange(10000):04d}" for _ in range(30000)}
    path = write(tmp_path / "big.txt", "".join(f"{n[:3]},{n[3:]}\n" for n in numbers))
    fast = read_all(path, "ftc", chunk_bytes=64 << 10)
    slow = read_all(write(tmp_path / "big-slow.txt", "".join(f"+1 {n}\n" for n in numbers)), "lines",
                    chunk_bytes=64 << 10)
    assert e164s(fast[0]) == e164s(slow[0]) == sorted("+1" + n for n in numbers)
    assert fast[3] == slow[3] == 0


def test_one_bad_line_in_a_chunk_costs_that_line_only(tmp_path):
    good = [f"212{e}0000" for e in range(200, 1000)]
    text = "\n".join([*good[:400], "212555O100", *good[400:]]) + "\n"  # letter O, not zero
    keys, _, bad, bad_count, _ = read_all(write(tmp_path / "l.txt", text), "lines", chunk_bytes=4096)
    assert len(keys) == 800 and bad_count == 1 and bad[0].line == 401


def test_ftc_full_list_is_area_code_comma_number(tmp_path):
    path = write(tmp_path / "ftc.txt", "201,2001234\n202,3004567\n203,1234567\n2045550123\n")
    keys, _, bad, _, _ = read_all(path, "ftc")
    assert e164s(keys) == ["+12012001234", "+12023004567", "+12045550123"]
    assert [b.line for b in bad] == [3]


def test_ftc_change_list_gives_additions_and_deletions_with_the_flag_in_any_field(tmp_path):
    text = "201,2001234,A\n202,3004567,D,2026-11-01\nA,2035550123\n204,5550123,X\n"
    keys, deletions, bad, _, _ = read_all(write(tmp_path / "c.txt", text, "gzip"), "ftc-changes")
    assert e164s(keys) == ["+12012001234", "+12035550123"]
    assert e164s(deletions) == ["+12023004567"]
    assert [(b.line, "flag" in b.reason) for b in bad] == [(4, True)]


def test_uk_tps_fixed_width_records_with_a_five_character_code_or_twelve_characters(tmp_path):
    text = "0207 9460958\n01212345678 \n02071234567\n0207946095x \n0207946095812345\n"
    keys, _, bad, _, _ = read_all(write(tmp_path / "tps.txt", text), "tps", GB)
    assert e164s(keys, GB) == ["+441212345678", "+442071234567", "+442079460958"]
    assert [b.line for b in bad] == [4, 5]


def test_csv_with_a_column_by_name_or_index(tmp_path):
    text = 'id,name,phone\n1,"Doe, J",+1 212 555 0100\n2,x,not-a-number\n3,y,\n4,z,2125550101\n'
    path = write(tmp_path / "l.csv", text)
    keys, _, bad, _, _ = read_all(path, "csv", column="Phone")
    assert e164s(keys) == ["+12125550100", "+12125550101"]
    assert [(b.line, b.reason) for b in bad] == [(3, "not a phone number"), (4, "empty")]
    assert e164s(read_all(path, "csv", column="3")[0]) == ["+12125550100", "+12125550101"]
    with pytest.raises(FormatError, match="no column named"):
        read_all(path, "csv", column="mobile")


def test_a_truncated_gzip_file_is_an_error_not_a_short_list(tmp_path):
    path = tmp_path / "cut.gz"
    rng = random.Random(3)
    data = "".join(f"212{rng.randrange(2000000, 9999999)}\n" for _ in range(50000)).encode()
    path.write_bytes(gzip.compress(data)[:100_000])
    with pytest.raises(FormatError, match="cannot read"):
        read_all(path, "lines")


def test_checksum_is_the_sha256_of_the_file_as_given(tmp_path):
    import hashlib

    path = write(tmp_path / "l.gz", "2125550100\n", "gzip")
    source = Source(path)
    for _ in read_batches(source, "lines", NANP):
        pass
    assert source.checksum == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_shard_and_offset_round_trip_for_nanp_uk_and_other_countries():
    for e164 in ("+12125550100", "+19999999999", "+12002000000", "+442079460958", "+441212345678",
                 "+4915112345678", "+79991234567", "+390612345678"):
        cc, nsn = split_e164(e164)
        scheme = scheme_for_country({"1": "US", "44": "GB", "49": "DE", "7": "RU", "39": "IT"}[cc])
        shard, offset = scheme.locate(nsn)
        assert (shard, offset) == locate_e164(e164)
        assert scheme.e164(scheme.shard_id(shard), offset) == e164
        assert 0 <= offset < scheme.shard_bits
    assert locate_e164("+12121550100")[0] == "-"  # exchange 155 cannot exist
    with pytest.raises(BadNumber):
        NANP.nsn_from_digits("12345")


def test_packed_bitmaps_use_redis_bit_order(redis_client):
    builder = BitmapBuilder(GB, memory_bytes=1)  # forces folding of evicted byte maps
    keys = [GB.key(n) for n in ("2079460958", "2079000000", "1212345678", "2079999999", "2079460958")]
    for key in keys:
        builder.add([key])
    shards = dict(builder.shards())
    for nsn in ("2079460958", "2079000000", "1212345678", "2079999999", "2079460959"):
        shard, offset = GB.locate(nsn)
        redis_client.set("bm:" + shard, shards[GB.shard_id(shard)])
        assert redis_client.getbit("bm:" + shard, offset) == (nsn != "2079460959")
    assert pack(bytes([1, 0, 0, 0, 0, 0, 0, 1])) == b"\x81"


def test_a_shard_folded_early_still_gets_numbers_that_come_later():
    builder = BitmapBuilder(NANP)
    early, late = NANP.key("2012001234"), NANP.key("2019999999")
    builder.add([early])
    for area in ("202", "203", "204", "205"):  # batches that do not touch 201: its byte map is folded
        builder.add([NANP.key(area + "2000000")])
    builder.add([late])
    shards = dict(builder.shards())
    bitmap = shards[NANP.shard_id("1:201")]
    for nsn in ("2012001234", "2019999999"):
        _shard, offset = NANP.locate(nsn)
        assert bitmap[offset >> 3] & (0x80 >> (offset & 7))
    assert sum(bin(b).count("1") for b in bitmap) == 2 and len(shards) == 5


def test_a_shard_that_grows_dense_keeps_every_number_across_the_switch_to_a_byte_map():
    rng = random.Random(9)
    offsets = rng.sample(range(2_000_000, 10_000_000), 100_000)  # more than 1/128 of the area code
    builder = BitmapBuilder(NANP)
    keys = [NANP.key(f"212{o:07d}") for o in offsets]
    builder.add(keys[:50_000])  # sparse so far
    builder.add(keys[50_000:])  # crosses the limit: becomes a byte map
    builder.add([NANP.key("2012000000")])  # a sparse shard beside it
    shards = dict(builder.shards())
    bitmap = shards[NANP.shard_id("1:212")]
    assert int.from_bytes(bitmap, "big").bit_count() == 100_000
    for o in offsets[:2000]:
        offset = o - NANP.base
        assert bitmap[offset >> 3] & (0x80 >> (offset & 7))
    assert shards[NANP.shard_id("1:201")] == b"\x80"


TRICKY_LINES = [
    "201,2001234", "202,3004567\r", "2035550123", "2045550124\r", "205,2001234  ", " 206,2001234",
    "207,200123", "208,20012345", "209,1001234", "109,2001234", "2101234567", "0215550100",
    "21a,2001234", "212,200123x", "2125550100 ", "12125550100", "+1 212 555 0101", "(212) 555-0102",
    "212-555-0103", "212.555.0104\r", "212 555 0105", "NPA,NUMBER", "area_code,phone_number", "",
    "   ", "\r", "---", "()", "212,5550106,", ",212,5550107", "212,,5550108", "2125550109\t",
    "２１２５５５０１１０", "212\u00a0555\u00a00111", "212\xa05550112", "212;5550113", "2,1,2,5,5,5,0,1,1,4",
    "9" * 5000, "212" + " " * 5000 + "5550115",
]


def line_parser_only(data, fmt):
    """What the line-by-line parser alone makes of ``data``: (keys, bad lines)."""
    from blocklists.formats import Batch, LineParser, _slow_lines

    batch = Batch()
    _slow_lines(enumerate(data.split(b"\n"), start=1), "", LineParser(fmt, NANP), batch, 10**6)
    return sorted(batch.keys.tolist()), batch.bad, batch.bad_count


@pytest.mark.parametrize("fmt", ["ftc", "lines"])
@pytest.mark.parametrize("chunk_bytes", [101, 1000, 1 << 20])  # lines split across chunks
@pytest.mark.parametrize("final_newline", [True, False])
def test_the_numpy_reader_gives_exactly_the_line_parsers_numbers_and_bad_lines(tmp_path, fmt, chunk_bytes,
                                                                              final_newline):
    rng = random.Random(chunk_bytes)
    clean = [f"{rng.randrange(201, 990)},{rng.randrange(200, 1000)}{rng.randrange(10000):04d}" for _ in range(3000)]
    lines = clean + [rng.choice(TRICKY_LINES) for _ in range(400)]
    rng.shuffle(lines)
    lines[:0] = ["NPA,NUMBER\r"]  # a header line first, then a clean run and the mix
    lines[1:1] = clean[:200]
    data = "\n".join(lines).encode("utf-8", "surrogateescape").replace("\xa0".encode(), b"\xa0")
    data = data.replace(b"\xc2\xa05550112", b"\xa05550112")  # a raw Latin-1 no-break space: not UTF-8
    if final_newline:
        data += b"\n"
    path = tmp_path / "tricky.txt"
    path.write_bytes(data)
    keys, _, bad, bad_count, count = read_all(path, fmt, chunk_bytes=chunk_bytes, bad_limit=10**6)
    expected_keys, expected_bad, expected_count = line_parser_only(data, fmt)
    assert sorted(keys) == expected_keys
    assert [(b.line, b.reason, b.text) for b in bad] == [(b.line, b.reason, b.text) for b in expected_bad]
    assert bad_count == expected_count > 0
    assert count == len(lines)


def test_lines_in_the_ftc_spellings_are_read_in_bulk_and_only_the_others_go_to_the_line_parser():
    from blocklists.nanp_bulk import nanp_keys

    for text in (b"201,2001234\n202,9999999\n", b"201,2001234\r\n202,9999999\r\n", b"2012001234\n2029999999",
                 b"2012001234\r\n2029999999\r\n"):
        keys, others, lines = nanp_keys(text)
        assert keys.tolist() == [12012001234, 12029999999] and others == [] and lines == 2
    keys, others, lines = nanp_keys(b"201,2001234\n\n2012001235\r\n201,1001234\n 2012001236\n1012001237\n201,2001238")
    assert keys.tolist() == [12012001234, 12012001235, 12012001238]
    assert others == [(1, b""), (3, b"201,1001234"), (4, b" 2012001236"), (5, b"1012001237")] and lines == 7


def test_unsorted_batches_under_a_small_memory_budget_give_the_same_bitmaps_as_one_sorted_batch():
    rng = random.Random(11)
    keys = [NANP.key(f"{rng.choice((201, 212, 415, 989))}{rng.randrange(2_000_000, 10_000_000)}")
            for _ in range(200_000)]
    sorted_builder = BitmapBuilder(NANP)
    sorted_builder.add(sorted(keys))
    tight = BitmapBuilder(NANP, memory_bytes=8_000_000)  # one byte map at a time: the others are folded
    for start in range(0, len(keys), 7_000):
        tight.add(keys[start:start + 7_000])
    expected = dict(sorted_builder.shards())
    assert dict(tight.shards()) == expected
    assert sum(int.from_bytes(b, "big").bit_count() for b in expected.values()) == len(set(keys))


def test_a_reader_stopped_after_its_first_batch_leaves_no_reading_thread_behind(tmp_path):
    import threading

    path = write(tmp_path / "l.txt", "".join(f"212{n:07d}\n" for n in range(2_000_000, 2_200_000)))
    batches = read_batches(Source(path), "ftc", NANP, chunk_bytes=4096)
    assert len(next(batches).keys) > 0
    batches.close()
    assert not [t for t in threading.enumerate() if t.name == "registry-reader"]


def test_a_gzip_file_of_several_members_and_zero_padding_reads_whole_in_any_block_size(tmp_path):
    import io

    from blocklists.formats import _Gunzip

    first = "".join(f"201,{n}\n" for n in range(2_000_000, 2_030_000)).encode()
    second = "".join(f"202,{n}\n" for n in range(3_000_000, 3_010_000)).encode()
    data = gzip.compress(first) + gzip.compress(second) + b"\0" * 10
    for block in (7, 4096, 1 << 20):
        stream = _Gunzip(io.BytesIO(data), block)  # type: ignore[arg-type]
        assert io.BufferedReader(stream, 1000).read() == first + second
    path = tmp_path / "two.gz"
    path.write_bytes(data)
    keys, _, bad, _, lines = read_all(path, "ftc")
    assert (len(set(keys)), bad, lines) == (40_000, [], 40_000)


def test_garbage_after_a_gzip_member_is_an_error_not_a_silent_end(tmp_path):
    path = tmp_path / "junk.gz"
    path.write_bytes(gzip.compress(b"2012001234\n") + b"this is not gzip")
    with pytest.raises(FormatError, match="cannot read"):
        read_all(path, "ftc")
