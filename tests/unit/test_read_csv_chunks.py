"""Lead CSVs read in chunks by Arrow read the same as pandas would: text as written, blanks
empty, ISO times parsed, other time forms left for `prepare`, quoted line breaks kept."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from leadwatch.prediction.frames import prepare, read_csv_chunks


def write(tmp_path: Path, text: str, *, bom: bool = False) -> Path:
    path = tmp_path / "leads.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def read(path: Path, **kwargs: object) -> pd.DataFrame:
    return pd.concat(list(read_csv_chunks(path, **kwargs)), ignore_index=True)  # type: ignore[arg-type]


def test_text_blanks_and_iso_times(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "LeadID,created_at,rep,vehicle_price,sold_at\n"
        "A-1,2025-06-01 10:00,Dana Reyes,31000,\n"
        'A-2,2025-06-02T09:30:00,"Lee, Chen",,2025-06-20\n',
        bom=True,
    )
    frame = read(path, renames={"LeadID": "lead_id"})
    assert list(frame.columns) == ["lead_id", "created_at", "rep", "vehicle_price", "sold_at"]
    assert frame["lead_id"].tolist() == ["A-1", "A-2"]  # the byte order mark is gone
    assert frame["rep"].tolist() == ["Dana Reyes", "Lee, Chen"]
    assert frame["vehicle_price"].tolist() == ["31000", ""]  # text, blanks empty
    assert frame["created_at"].tolist() == [
        pd.Timestamp("2025-06-01 10:00"),
        pd.Timestamp("2025-06-02 09:30"),
    ]
    assert pd.isna(frame["sold_at"].iloc[0]) and frame["sold_at"].iloc[1] == pd.Timestamp(
        "2025-06-20"
    )


def test_other_time_forms_are_left_for_prepare_which_parses_them_alike(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "created_at,contacted_at\n06/01/2025 10:00 AM,2025-06-01T10:05:00-05:00\n",
    )
    frame = read(path)
    assert frame["created_at"].tolist() == ["06/01/2025 10:00 AM"]  # not ISO: still text
    prepared = prepare(frame)
    assert prepared["created_at"].iloc[0] == pd.Timestamp("2025-06-01 10:00")
    assert prepared["contacted_at"].iloc[0] == pd.Timestamp("2025-06-01 15:05")  # UTC


def test_quoted_line_breaks_and_only_the_wanted_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'created_at,comments,rep\n2025-06-01,"two\nlines",Dana\n2025-06-02,plain,Lee\n',
    )
    frame = read(path, columns=["created_at", "rep", "vehicle"])  # "vehicle" is not there
    assert list(frame.columns) == ["created_at", "rep"] and frame["rep"].tolist() == ["Dana", "Lee"]
    assert read(path)["comments"].tolist() == ["two\nlines", "plain"]


def test_a_broken_file_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "created_at,rep\n2025-06-01,Dana,extra\n")
    with pytest.raises(ValueError, match="not a readable CSV"):
        read(path)


def test_many_chunks_read_as_one(tmp_path: Path) -> None:
    rows = "".join(f"2025-06-{1 + i % 28:02d},Rep {i}\n" for i in range(5_000))
    path = write(tmp_path, "created_at,rep\n" + rows)
    chunks = list(read_csv_chunks(path, block_bytes=4_096))
    assert len(chunks) > 5 and sum(map(len, chunks)) == 5_000
    assert pd.concat(chunks)["rep"].tolist() == [f"Rep {i}" for i in range(5_000)]
