"""The NDEC `datasets` builder on a mini-NDEC build: every config, streaming, bad input."""

from __future__ import annotations

import io
import json
import logging
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import datasets
import pytest

import hf_asl
from hf_asl import ndec
from hf_asl.errors import InputError
from hf_asl.ndec import NDEC, SPLITS, load_ndec

IMAGE_COLUMNS = {
    "queries": ["image"],
    "references": ["image"],
    "train": ["image"],
    "train_views": ["image"],
    "negative_pairs": ["image_a", "image_b"],
    "ground_truth": [],
}


def _raw(dataset):
    """Rows with image columns left as stored ({"bytes", "path"}), for exact comparisons."""
    for column, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            dataset = dataset.cast_column(column, datasets.Image(decode=False))
    return list(dataset)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("ndec_cache"))


@pytest.fixture(scope="module")
def prepared(mini_ndec_dir: Path, cache_dir: str) -> dict[str, datasets.Dataset]:
    return {name: load_ndec(name, data_dir=str(mini_ndec_dir), cache_dir=cache_dir) for name in SPLITS}


@pytest.fixture(scope="module")
def manifest(mini_ndec_dir: Path) -> dict:
    return json.loads((mini_ndec_dir / "manifest.json").read_text())


def test_every_config_has_the_manifest_counts(prepared, manifest):
    sizes = manifest["sizes"]
    expected = {
        "queries": sizes["queries"],
        "references": sizes["references"],
        "ground_truth": sizes["queries"],
        "negative_pairs": sizes["negative_pairs"],
        "train": sizes["train_images"],
        "train_views": sizes["train_views"],
    }
    assert {name: ds.num_rows for name, ds in prepared.items()} == expected
    assert dict(Counter(prepared["ground_truth"]["kind"])) == sizes["queries_by_kind"]
    pair_kinds = {k: v for k, v in sizes["negative_pairs_by_kind"].items() if v}
    assert dict(Counter(prepared["negative_pairs"]["kind"])) == pair_kinds
    for name, ds in prepared.items():
        assert ds.split == SPLITS[name]
        assert [c for c, f in ds.features.items() if isinstance(f, datasets.Image)] == IMAGE_COLUMNS[name]


def test_rows_carry_the_source_bytes_and_metadata(prepared, mini_ndec_dir: Path):
    (query,) = _raw(prepared["queries"].select([0]))
    on_disk = mini_ndec_dir / "query_images_h5" / f"{query['image_id']}.jpg"
    assert query["image"] == {"bytes": on_disk.read_bytes(), "path": on_disk.name}
    image = prepared["queries"][0]["image"]
    assert image.size[0] > 0  # decodes to a PIL image

    gt = prepared["ground_truth"].to_list()
    assert all((row["reference_id"] is not None) == (row["kind"] == "copy") for row in gt)
    references = set(prepared["references"]["image_id"])
    assert {row["reference_id"] for row in gt if row["reference_id"]} <= references

    pairs = _raw(prepared["negative_pairs"])
    assert {p["wider"] for p in pairs} <= {"a", "b", None}
    assert any(p["wider"] for p in pairs if p["kind"] == "hn_wider_view")
    first = pairs[0]
    folder = mini_ndec_dir / "negative_pair" / first["pair_id"]
    assert first["image_a"]["bytes"] == (folder / first["image_a"]["path"]).read_bytes()

    views = prepared["train_views"].to_list()
    assert {v["train_id"] for v in views} <= set(prepared["train"]["image_id"])
    assert all(0 < v["content_fraction"] <= 1 for v in views)


@pytest.mark.parametrize("name", list(SPLITS))
def test_streaming_equals_prepared(prepared, mini_ndec_dir: Path, cache_dir: str, name: str):
    streamed = load_ndec(name, data_dir=str(mini_ndec_dir), cache_dir=cache_dir, streaming=True)
    assert isinstance(streamed, datasets.IterableDataset)
    assert _raw(streamed) == _raw(prepared[name])


def test_split_tar_pairs_equal_the_pair_folders(prepared, mini_ndec_dir: Path, tmp_path: Path):
    from_folders = load_ndec(
        "negative_pairs",
        data_dir=str(mini_ndec_dir),
        negative_pairs=str(mini_ndec_dir / "negative_pair"),
        cache_dir=str(tmp_path),
    )
    def by_id(rows):
        return sorted(rows, key=lambda r: r["pair_id"])

    assert by_id(_raw(from_folders)) == by_id(_raw(prepared["negative_pairs"]))


def test_missing_split_part_is_named(mini_ndec_dir: Path, tmp_path: Path):
    for part in sorted(mini_ndec_dir.glob("negative_pair.tar.*")):
        if not part.name.endswith(".ab"):
            shutil.copy(part, tmp_path / part.name)
    with pytest.raises(InputError, match=r"negative_pair\.tar\.ab: missing part"):
        load_ndec("negative_pairs", data_dir=str(mini_ndec_dir), negative_pairs=str(tmp_path / "negative_pair.tar.aa"),
                  cache_dir=str(tmp_path / "cache"))


def test_unsafe_tar_member_is_refused_by_the_builder(mini_ndec_dir: Path, tmp_path: Path):
    evil = tmp_path / "query_images_h5.tar"
    with tarfile.open(evil, "w") as tar:
        tar.add(mini_ndec_dir / "query_images_h5" / "Q00000.jpg", arcname="query_images_h5/Q00000.jpg")
        link = tarfile.TarInfo("query_images_h5/Q00001.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(InputError, match=r"query_images_h5\.tar: refusing tar member 'query_images_h5/Q00001\.jpg': symbolic"):
        load_ndec("queries", queries=str(evil), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(InputError, match="refusing tar member"):
        list(load_ndec("queries", queries=str(evil), cache_dir=str(tmp_path / "cache"), streaming=True))


@pytest.fixture()
def corrupt_queries(mini_ndec_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "query_images_h5"
    shutil.copytree(mini_ndec_dir / "query_images_h5", folder)
    victim = sorted(folder.glob("*.jpg"))[3]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # a truncated download
    return folder, victim.stem


def test_corrupt_image_is_reported_by_id(corrupt_queries, tmp_path: Path):
    folder, victim = corrupt_queries
    with pytest.raises(InputError, match=rf"corrupt image '{victim}': .*truncated"):
        load_ndec("queries", queries=str(folder), cache_dir=str(tmp_path / "cache"))


def test_corrupt_image_can_be_skipped_and_counted(corrupt_queries, tmp_path: Path, caplog):
    folder, victim = corrupt_queries
    total = len(list(folder.glob("*.jpg")))
    cache = str(tmp_path / "cache")
    builder = NDEC(config_name="queries", queries=str(folder), skip_corrupt=True, cache_dir=cache)
    with caplog.at_level(logging.WARNING, logger="hf_asl.ndec"):
        builder.download_and_prepare()
    assert builder.skipped_images == [victim]
    assert "skipped 1 corrupt image(s)" in caplog.text
    dataset = builder.as_dataset(split="test")
    assert dataset.num_rows == total - 1 and victim not in dataset["image_id"]
    # A later builder reuses the cache and still knows what was skipped.
    again = NDEC(config_name="queries", queries=str(folder), skip_corrupt=True, cache_dir=cache)
    assert again.skipped_images == [victim]
    streamed = load_ndec("queries", queries=str(folder), skip_corrupt=True, cache_dir=cache, streaming=True)
    assert len(list(streamed)) == total - 1


GT_HEADER = "query_id,reference_id\n"


def _gt_cases(gt_rows: list[str]) -> dict[str, tuple[str, str, str | None]]:
    """name -> (ground truth text, expected message regex, kinds text or None)."""
    first_query = gt_rows[0].split(",")[0]
    copy_row = next(r for r in gt_rows if r.strip().split(",")[1])
    return {
        "unknown query": (GT_HEADER + "Q99999,\n" + "".join(gt_rows), r":2: unknown query 'Q99999'", None),
        "unknown reference": (GT_HEADER + copy_row.split(",")[0] + ",R999999\n", r":2: unknown reference 'R999999'", None),
        "duplicate query": (GT_HEADER + gt_rows[0] + gt_rows[0], rf":3: query '{first_query}' repeated \(first on line 2\)",
                            None),
        "bad header": ("query,reference\n" + gt_rows[0], r":1: header lacks column", None),
        "extra field": (GT_HEADER + gt_rows[0].strip() + ",oops\n", r":2: expected 2 fields, found 3", None),
        "unknown kind": (GT_HEADER + gt_rows[0], r"kinds.csv:2: unknown kind 'crop'", f"query_id,kind\n{first_query},crop\n"),
        "contradicting kind": (GT_HEADER + copy_row, r"kinds.csv:2: kind 'distractor' contradicts the ground truth",
                               f"query_id,kind\n{copy_row.split(',')[0]},distractor\n"),
    }


@pytest.mark.parametrize(
    "case",
    ["unknown query", "unknown reference", "duplicate query", "bad header", "extra field", "unknown kind",
     "contradicting kind"],
)
def test_bad_ground_truth_row_is_named(mini_ndec_dir: Path, tmp_path: Path, case: str):
    gt_rows = (mini_ndec_dir / "public_ground_truth_h5.csv").read_text().splitlines(keepends=True)[1:]
    text, message, kinds = _gt_cases(gt_rows)[case]
    gt = tmp_path / "gt.csv"
    gt.write_text(text)
    sources = {"ground_truth": str(gt)}
    if kinds is not None:
        (tmp_path / "kinds.csv").write_text(kinds)
        sources["kinds"] = str(tmp_path / "kinds.csv")
    else:
        # A kinds file naming queries absent from the shortened GT would fail first.
        (tmp_path / "kinds.csv").write_text("query_id,kind\n")
        sources["kinds"] = str(tmp_path / "kinds.csv")
    with pytest.raises(InputError, match=message):
        load_ndec("ground_truth", data_dir=str(mini_ndec_dir), cache_dir=str(tmp_path / "cache"), **sources)


def test_missing_source_is_a_clear_error(tmp_path: Path):
    with pytest.raises(InputError, match=r"no references or references\.tar here"):
        load_ndec("references", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(InputError, match=r"needs references=.*disc21"):
        load_ndec("references", cache_dir=str(tmp_path / "cache"))


def test_unreachable_default_source_is_a_clear_error(tmp_path: Path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError, match=r"drive\.google\.com.*cannot fetch the 'ground_truth' source"):
        load_ndec("ground_truth", cache_dir=str(tmp_path / "cache"))


def test_cache_is_versioned_by_the_package(tmp_path: Path, monkeypatch):
    builder = NDEC(config_name="queries", queries=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    assert builder.cache_dir.endswith(f"/{hf_asl.__version__}")
    monkeypatch.setattr(ndec, "__version__", "99.0.0")
    newer = NDEC(config_name="queries", queries=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    assert newer.cache_dir.endswith("/99.0.0") and newer.cache_dir != builder.cache_dir


def test_unknown_config_or_source(tmp_path: Path):
    with pytest.raises(InputError, match="unknown NDEC config 'pairs'"):
        load_ndec("pairs")
    with pytest.raises(InputError, match=r"unknown NDEC source\(s\) \['query'\]"):
        load_ndec("queries", query=str(tmp_path))


def test_image_problem_flags_non_images():
    from PIL import Image

    from hf_asl.ndec_files import image_problem

    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), "red").save(buffer, "PNG")
    assert image_problem(buffer.getvalue()) is None
    assert image_problem(b"<html>not found</html>") is not None
