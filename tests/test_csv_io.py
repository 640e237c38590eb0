"""Reading and writing the DISC21 CSV files; every bad input names its file and line."""

from __future__ import annotations

import numpy as np
import pytest

from hf_asl.csv_io import (
    GroundTruth,
    read_ground_truth,
    read_kinds,
    read_predictions,
    read_reference_ids,
    write_predictions,
)
from hf_asl.errors import InputError

HEADER = "query_id,reference_id,score\n"


@pytest.fixture
def gt(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("query_id,reference_id\nQ00000,R000000\nQ00001,\nQ00002,R000002\n")
    return read_ground_truth(path)


def write(tmp_path, text, name="p.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_ground_truth_round_trip(gt):
    assert gt.query_ids.tolist() == ["Q00000", "Q00001", "Q00002"]
    assert gt.reference_ids.tolist() == ["R000000", "", "R000002"]
    assert len(gt) == 3 and gt.n_pairs == 2
    assert GroundTruth.from_mapping({"a": "b", "c": None}).reference_ids.tolist() == ["b", ""]


def test_predictions_round_trip(tmp_path, gt):
    path = tmp_path / "out" / "p.csv"
    scores = np.array([0.5, 0.25, 1 / 3], dtype=np.float32)
    write_predictions(path, ["Q00000", "Q00001", "Q00000"], ["R000000", "R000001", "R000007"], scores)
    assert path.read_text().splitlines()[:2] == ["query_id,reference_id,score", "Q00000,R000000,0.5"]
    predictions = read_predictions(path, ground_truth=gt)
    assert predictions.query_ids.tolist() == ["Q00000", "Q00001", "Q00000"]
    assert list(predictions.reference_ids) == ["R000000", "R000001", "R000007"]
    # float32 scores come back as the same float32 values (shortest repr round trip).
    np.testing.assert_array_equal(predictions.scores.astype(np.float32), scores)
    assert predictions.n_unknown_queries == predictions.n_unknown_references == 0
    assert not list(tmp_path.glob("out/.*"))  # no temporary file left behind


def test_write_predictions_quotes_only_when_needed(tmp_path):
    path = tmp_path / "p.csv"
    write_predictions(path, ["Q,1"], ["R1"], [1.0])
    assert path.read_text().splitlines()[1] == '"Q,1","R1",1'
    assert read_predictions(path).query_ids.tolist() == ["Q,1"]


def test_write_predictions_rejects_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="finite"):
        write_predictions(tmp_path / "p.csv", ["Q1"], ["R1"], [float("nan")])
    with pytest.raises(ValueError, match="2 query ids"):
        write_predictions(tmp_path / "p.csv", ["Q1", "Q2"], ["R1"], [1.0])


def test_blank_lines_and_bom_are_tolerated_and_lines_stay_exact(tmp_path):
    path = write(tmp_path, "\ufeff" + HEADER + "Q00000,R000000,1\n\n\nQ00000,R000000,2\n")
    with pytest.raises(InputError) as err:
        read_predictions(path)
    assert err.value.line == 5 and "repeats line 2" in str(err.value)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("query_id,score\nQ00000,1\n", 1, "missing column(s) reference_id"),
        (HEADER.strip() + ",extra\nQ00000,R000000,1,2\n", 1, "unexpected column(s) 'extra'"),
        ("", 1, "empty file"),
        (HEADER + "Q00000,R000000,1\nQ00000,R000001\n", 3, "expected 3 fields"),
        (HEADER + "Q00000,R000000,1\nQ00000,R000001,1,9\n", 3, "expected 3 fields"),
        (HEADER + "Q00000,R000000,high\n", 2, "score 'high' is not a number"),
        (HEADER + "Q00000,R000000,\n", 2, "score '' is not a number"),
        (HEADER + "Q00000,R000000,1\nQ00000,R000001,nan\n", 3, "score is nan"),
        (HEADER + "Q00000,R000000,-inf\n", 2, "score is -inf"),
        (HEADER + "Q00000,R000000,1\nQ00002,R000000,1\nQ00000,R000000,0.5\n", 4,
         "pair ('Q00000', 'R000000') repeats line 2"),
        (HEADER + "Q00000,,1\n", 2, "reference_id '' is empty"),
        (HEADER + "Q00000,R 1,1\n", 2, "reference_id 'R 1' contains whitespace"),
        (HEADER + 'Q00000,R000000,1\n"Q0\n1",R000000,1\n', 3, "query_id 'Q0\\n1' contains whitespace"),
        (HEADER + "Q00000,R000000,1\nQ00009,R000000,1\n", 3, "query id 'Q00009' is not in the ground truth"),
        (HEADER.encode() + b"Q00000,R\xe9,1\n", 2, "not UTF-8"),
    ],
)
def test_bad_predictions_name_file_and_line(tmp_path, gt, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_predictions(path, ground_truth=gt)
    assert err.value.path == str(path) and err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_predictions(tmp_path / "absent.csv")


def test_unknown_reference_needs_the_reference_list(tmp_path, gt):
    path = write(tmp_path, HEADER + "Q00000,R000000,1\nQ00000,R999999,1\n")
    assert len(read_predictions(path, ground_truth=gt)) == 2  # no list: any reference is fine
    with pytest.raises(InputError) as err:
        read_predictions(path, ground_truth=gt, reference_ids=["R000000", "R000001"])
    assert err.value.line == 3 and "reference id 'R999999' is not in the reference list" in str(err.value)


def test_allowed_unknown_ids_are_counted_not_silent(tmp_path, gt):
    path = write(tmp_path, HEADER + "Q00000,R000000,1\nQ00009,R000000,1\nQ00009,R999999,1\n")
    predictions = read_predictions(path, ground_truth=gt, reference_ids=["R000000"], allow_unknown_ids=True)
    assert len(predictions) == 3
    assert predictions.n_unknown_queries == 2 and predictions.n_unknown_references == 1
    assert len(predictions.warnings) == 2 and "2 prediction(s)" in predictions.warnings[0]


def test_budget(tmp_path, gt):
    rows = "".join(f"Q0000{i % 3},R00000{i},1\n" for i in range(31))
    path = write(tmp_path, HEADER + rows)
    assert len(read_predictions(path, ground_truth=gt, budget=31)) == 31
    with pytest.raises(InputError) as err:
        read_predictions(path, ground_truth=gt, budget="disc21")  # 10 x 3 listed queries
    assert err.value.line == 32 and "31 predictions exceed the budget of 30" in str(err.value)
    with pytest.raises(InputError) as err:
        read_predictions(path, budget=5)
    assert err.value.line == 7
    with pytest.raises(ValueError, match="needs the ground truth"):
        read_predictions(path, budget="disc21")


def test_header_only_file_has_no_predictions(tmp_path):
    assert len(read_predictions(write(tmp_path, HEADER))) == 0


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("query_id,reference_id\nQ1,R1\nQ2,\nQ1,R3\n", 4, "query 'Q1' repeats line 2"),
        ("query_id,reference_id\nQ1,R1\n,R2\n", 3, "query_id '' is empty"),
        ("query_id\nQ1\n", 1, "missing column(s) reference_id"),
        ("query_id,reference_id\nQ1,R1,R2\n", 2, "expected 2 fields"),
    ],
)
def test_bad_ground_truth(tmp_path, text, line, message):
    path = write(tmp_path, text, "gt.csv")
    with pytest.raises(InputError) as err:
        read_ground_truth(path)
    assert err.value.line == line and message in str(err.value) and str(path) in str(err.value)


def test_kinds(tmp_path):
    path = write(tmp_path, "query_id,kind\nQ1,copy\nQ2,hn_look_alike\n", "kinds.csv")
    assert read_kinds(path) == {"Q1": "copy", "Q2": "hn_look_alike"}
    bad = write(tmp_path, "query_id,kind\nQ1,copy\nQ1,distractor\n", "bad.csv")
    with pytest.raises(InputError, match=r"bad.csv:3: query 'Q1' repeats line 2"):
        read_kinds(bad)


def test_reference_ids_from_folder_or_list(tmp_path):
    folder = tmp_path / "references"
    folder.mkdir()
    for name in ("R000001.jpg", "R000000.jpg", ".hidden"):
        (folder / name).write_bytes(b"")
    assert read_reference_ids(folder) == ["R000000", "R000001"]
    listing = write(tmp_path, "R1\n\nR2 \n", "refs.txt")
    assert read_reference_ids(listing) == ["R1", "R2"]
