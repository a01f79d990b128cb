"""keeper.faults.secrets: every spelling of a key is found, in texts and in files of any size; nothing else is."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from keeper.devnet.anvil import DEV_KEYS
from keeper.faults import secrets
from keeper.faults.secrets import SecretScan, leaks

KEYS = {f"dev #{i}": k for i, k in enumerate(DEV_KEYS)}
noise = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


@st.composite
def spelling(draw: st.DrawFn) -> tuple[str, str]:
    label = draw(st.sampled_from(sorted(KEYS)))
    bare = KEYS[label].removeprefix("0x")
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in bare)
    form = draw(st.sampled_from(["bare", "0x", "0X", "bytes"]))
    text = {"bare": cased, "0x": "0x" + cased, "0X": "0X" + cased, "bytes": repr(bytes.fromhex(bare))}[form]
    return label, text


@given(spelling(), noise, noise)
def test_every_spelling_is_found_and_named_by_label(found: tuple[str, str], before: str, after: str) -> None:
    label, key_text = found
    scan = SecretScan(dict(KEYS))
    scan.add_text("logs", "the log", before + key_text + after)
    assert ("the log", label) in scan.found
    assert leaks([("t", before + key_text + after)], KEYS[label]) == ["t"]
    assert KEYS[label].removeprefix("0x") not in scan.summary()


@given(noise, st.integers(min_value=1, max_value=63))
def test_a_text_without_a_whole_key_is_clean(text: str, cut: int) -> None:
    scan = SecretScan(dict(KEYS))
    partial = DEV_KEYS[1].removeprefix("0x")[:cut]  # a prefix is not the key (and addresses are 40 hex digits)
    scan.add_text("logs", "the log", text + partial)
    assert scan.found == [] and scan.counts["logs"] == 1


def test_a_key_split_across_file_chunks_is_found(tmp_path: Path) -> None:
    log = tmp_path / "big.txt"  # not *.log: the session scan globs those
    key = DEV_KEYS[0].removeprefix("0x").upper()
    log.write_text("x" * (secrets._CHUNK - 30) + key + "\n" + "y" * 100)
    scan = SecretScan(dict(KEYS))
    scan.add_file("daemon logs", "big log", log)
    assert scan.finish() == [("big log", "dev #0")]
    assert scan.counts["daemon logs"] == 1 and scan.lines == 1


def test_a_key_added_later_is_scanned_in_later_texts_and_in_files(tmp_path: Path) -> None:
    other = "0x" + "ab" * 32
    log = tmp_path / "a.txt"
    log.write_text("signer " + other)
    scan = SecretScan()
    scan.add_file("daemon logs", "a log", log)
    scan.add_key("configured", other)
    scan.add_text("outputs", "cli", other.upper())
    assert scan.finish() == [("cli", "configured"), ("a log", "configured")]
