"""Mini-NDEC builds: layout, ground truth, determinism, tars, hard negatives and the split."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import re
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hf_asl import mini_ndec, photos
from hf_asl.cli import main
from hf_asl.errors import InputError
from hf_asl.mini_ndec import HARD_NEGATIVE_KINDS, KINDS, SIZES, build_mini_ndec


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _tar_files(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def manifest(mini_ndec_dir: Path) -> dict:
    return json.loads((mini_ndec_dir / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def groups(manifest: dict) -> dict[str, str]:
    return {p["name"]: p["group"] for p in manifest["photos"]}


def _contains(outer: list[int], inner: list[int]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def _area(box: list[int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _intersection(a: list[int], b: list[int]) -> int:
    return _area([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])])


# ---- layout and ground truth ----------------------------------------------------------------------


def test_layout_matches_the_ndec_release(mini_ndec_dir: Path, manifest: dict):
    sizes = manifest["sizes"]
    refs = sorted(p.name for p in (mini_ndec_dir / "references").iterdir())
    queries = sorted(p.name for p in (mini_ndec_dir / "query_images_h5").iterdir())
    assert refs == [f"R{i:06d}.jpg" for i in range(sizes["references"])]
    assert queries == [f"Q{i:05d}.jpg" for i in range(sizes["queries"])]
    assert sorted(p.name for p in (mini_ndec_dir / "train").iterdir()) == [
        f"T{i:06d}.jpg" for i in range(sizes["train_images"])
    ]
    assert len(list((mini_ndec_dir / "train_views").iterdir())) == sizes["train_views"]
    assert sorted(p.name for p in mini_ndec_dir.glob("negative_pair.tar.*")) == [
        "negative_pair.tar.aa", "negative_pair.tar.ab", "negative_pair.tar.ac"
    ]
    for name in ("manifest.json", "public_ground_truth_h5.csv", "kinds.csv", "train_views.csv",
                 "negative_pairs.csv", "query_images_h5.tar"):
        assert (mini_ndec_dir / name).is_file(), name
    for path in list((mini_ndec_dir / "references").iterdir())[:5]:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert mini_ndec.MIN_IMAGE_SIDE <= max(image.size) <= mini_ndec.MAX_IMAGE_SIDE


def test_ground_truth_lists_every_query_and_only_copies_match(mini_ndec_dir: Path):
    gt_path, kinds_path = mini_ndec_dir / "public_ground_truth_h5.csv", mini_ndec_dir / "kinds.csv"
    assert _header(gt_path) == ["query_id", "reference_id"]
    assert _header(kinds_path) == ["query_id", "kind"]
    gt = {r["query_id"]: r["reference_id"] for r in _rows(gt_path)}
    kinds = {r["query_id"]: r["kind"] for r in _rows(kinds_path)}
    queries = {p.stem for p in (mini_ndec_dir / "query_images_h5").iterdir()}
    assert set(gt) == set(kinds) == queries
    refs = {p.stem for p in (mini_ndec_dir / "references").iterdir()}
    for qid, kind in kinds.items():
        assert kind in KINDS
        if kind == "copy":
            assert gt[qid] in refs
        else:
            assert gt[qid] == ""


def test_small_build_has_every_kind(manifest: dict):
    assert all(manifest["sizes"]["queries_by_kind"][kind] > 0 for kind in KINDS)
    assert all(manifest["sizes"]["negative_pairs_by_kind"][kind] > 0 for kind in HARD_NEGATIVE_KINDS)


def test_manifest_records_sources_licences_and_version(manifest: dict):
    assert manifest["seed"] == 0 and manifest["size"] == "small"
    assert manifest["generator"]["version"] == mini_ndec.__version__
    assert manifest["generator"]["format_version"] == mini_ndec.FORMAT_VERSION
    used = {p["package"] for p in manifest["photos"]}
    assert {s["package"] for s in manifest["photo_sources"]} == used
    assert all(s["licences"] and s["photos"] > 0 for s in manifest["photo_sources"])
    assert all(p["licence"] for p in manifest["photos"])
    assert not re.search(r"20\d\d-\d\d-\d\d", json.dumps(manifest))  # no timestamps


# ---- tars -----------------------------------------------------------------------------------------


def test_query_tar_holds_the_query_files(mini_ndec_dir: Path):
    members = _tar_files((mini_ndec_dir / "query_images_h5.tar").read_bytes())
    files = {f"query_images_h5/{p.name}": p.read_bytes() for p in (mini_ndec_dir / "query_images_h5").iterdir()}
    assert members == files


def test_split_tar_reassembles_into_the_negative_pairs(mini_ndec_dir: Path):
    parts = sorted(mini_ndec_dir.glob("negative_pair.tar.*"))
    assert all(p.stat().st_size > 0 for p in parts)
    members = _tar_files(b"".join(p.read_bytes() for p in parts))
    files = {str(p.relative_to(mini_ndec_dir)): p.read_bytes()
             for p in (mini_ndec_dir / "negative_pair").rglob("*.jpg")}
    assert members == files
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        infos = tar.getmembers()
    assert [m.name for m in infos] == sorted(m.name for m in infos)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in infos} == {(0, 0, 0, "", "")}


# ---- training split -------------------------------------------------------------------------------


def test_train_views_have_content_fractions(mini_ndec_dir: Path):
    path = mini_ndec_dir / "train_views.csv"
    assert _header(path) == ["image_id", "train_id", "content_fraction"]
    rows = _rows(path)
    originals = {p.stem for p in (mini_ndec_dir / "train").iterdir()}
    fractions = [float(r["content_fraction"]) for r in rows]
    assert all(mini_ndec.MIN_CONTENT_FRACTION <= f <= 1 for f in fractions)
    assert min(fractions) < 0.9 and max(fractions) == 1.0  # crops and full-frame views both occur
    for row in rows:
        assert row["train_id"] in originals and row["image_id"].startswith(row["train_id"] + "_")
        assert (mini_ndec_dir / "train_views" / f"{row['image_id']}.jpg").is_file()


def test_negative_pairs_csv_and_wider_views(mini_ndec_dir: Path, manifest: dict):
    path = mini_ndec_dir / "negative_pairs.csv"
    assert _header(path) == ["pair_id", "kind", "image_a", "image_b", "wider"]
    provenance = {p["id"]: p for p in manifest["provenance"]["negative_pairs"]}
    for row in _rows(path):
        assert row["kind"] in HARD_NEGATIVE_KINDS
        for name in (row["image_a"], row["image_b"]):
            assert (mini_ndec_dir / "negative_pair" / row["pair_id"] / name).is_file()
        pair = provenance[row["pair_id"]]
        if row["kind"] == "hn_wider_view":
            wide, narrow = (pair["a"], pair["b"]) if row["wider"] == "a.jpg" else (pair["b"], pair["a"])
            assert row["wider"] in ("a.jpg", "b.jpg")
            assert wide["photo"] == narrow["photo"] and _contains(wide["box"], narrow["box"])
            assert _area(narrow["box"]) <= 0.8 * _area(wide["box"])
        else:
            assert row["wider"] == ""


def test_train_and_test_never_share_a_scene(manifest: dict, groups: dict[str, str]):
    prov = manifest["provenance"]
    test_photos = {r["photo"] for r in prov["references"]} | {q["photo"] for q in prov["queries"]}
    train_photos = {t["photo"] for t in prov["train"]}
    train_photos |= {p[side]["photo"] for p in prov["negative_pairs"] for side in ("a", "b")}
    assert not {groups[p] for p in test_photos} & {groups[p] for p in train_photos}
    roles = {p["group"]: p["role"] for p in manifest["photos"]}
    assert {roles[groups[p]] for p in train_photos} == {"train"}
    assert {roles[groups[p]] for p in test_photos} <= {"reference", "query"}


# ---- hard negatives -------------------------------------------------------------------------------


def _thumb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float32)


def test_hard_negatives_are_not_copies(mini_ndec_dir: Path, manifest: dict, groups: dict[str, str]):
    prov = manifest["provenance"]
    refs = {r["id"]: r for r in prov["references"]}
    ref_groups = {groups[r["photo"]] for r in refs.values()}
    for q in prov["queries"]:
        kind = q["kind"]
        if kind == "copy":
            assert q["reference"] in refs and 0 < q["content_fraction"] <= 1
            continue
        if kind == "distractor":
            assert groups[q["photo"]] not in ref_groups
            continue
        ref = refs[q["reference"]]
        if kind == "hn_wider_view":
            # The query shows the reference's region and more: the reference is a crop of it.
            assert q["photo"] == ref["photo"]
            assert _contains(q["box"], ref["box"]) and _area(ref["box"]) <= 0.8 * _area(q["box"])
            assert _contains(ref["cell"], q["box"])  # never reaching into another reference
        elif kind == "hn_other_view":
            assert groups[q["photo"]] == groups[ref["photo"]]
            if q["photo"] == ref["photo"]:
                shared = _intersection(q["box"], ref["box"])
                assert shared <= 0.7 * _area(q["box"])  # not a crop of the reference
                assert 0 < shared <= 0.7 * _area(ref["box"])  # not a wider view either
                assert _contains(ref["cell"], q["box"])
        else:  # hn_look_alike: a different scene, and not the reference's pixels
            assert groups[q["photo"]] != groups[ref["photo"]]
            query = _thumb(mini_ndec_dir / "query_images_h5" / f"{q['id']}.jpg")
            reference = _thumb(mini_ndec_dir / "references" / f"{ref['id']}.jpg")
            for candidate in (reference, reference[:, ::-1]):
                assert np.abs(query - candidate).mean() > 3


def test_no_query_of_a_scene_without_references_matches_one(manifest: dict, groups: dict[str, str]):
    ref_photos = {r["photo"] for r in manifest["provenance"]["references"]}
    for q in manifest["provenance"]["queries"]:
        if q["kind"] in ("hn_look_alike", "distractor"):
            assert q["photo"] not in ref_photos


# ---- determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_another_seed_differs(mini_ndec_dir: Path, tmp_path: Path):
    build_mini_ndec(tmp_path / "again", size="small", seed=0, progress=False)
    assert _hashes(tmp_path / "again") == _hashes(mini_ndec_dir)
    build_mini_ndec(tmp_path / "other", size="small", seed=1, progress=False)
    other = _hashes(tmp_path / "other")
    first = _hashes(mini_ndec_dir)
    assert other["public_ground_truth_h5.csv"] != first["public_ground_truth_h5.csv"]
    assert other["references/R000000.jpg"] != first["references/R000000.jpg"]


# ---- sizes and errors -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mvtbdata") is None,
                    reason="the default size is made for the demo photos (pip install 'hf-asl[demo]')")
def test_default_plan_has_every_kind_at_its_preset_size():
    # Planning decides every window; writing the images only renders them, so the default
    # build's contents are checked without spending its ~15 s of encoding.
    preset = SIZES["default"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default size must fit the demo pool, not be cut down
        planner = mini_ndec._Planner(photos.load_photo_pool(), preset, seed=0)
        refs, side = planner.references(preset.references, explicit=False)
        plan = planner.queries(refs, mini_ndec._split_counts(preset.queries, mini_ndec.QUERY_SHARES), side)
        tiles, train_side = planner.train_tiles(preset.train_images)
        pairs = planner.pairs(preset.negative_pairs, train_side)
    counts = {kind: sum(q.kind == kind for q in plan) for kind in KINDS}
    assert len(refs) == preset.references and len(plan) == preset.queries
    assert min(counts.values()) >= 50, counts
    assert sum(counts[k] for k in HARD_NEGATIVE_KINDS) >= 0.4 * preset.queries
    assert len(tiles) == preset.train_images
    assert {p.kind for p in pairs} == set(HARD_NEGATIVE_KINDS) and len(pairs) == preset.negative_pairs
    assert len({(r.cell.photo, r.cell.box) for r in refs}) == len(refs)  # one reference per cell


def test_builds_without_the_demo_photos(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(photos, "PHOTO_SOURCES", tuple(s for s in photos.PHOTO_SOURCES if s.package != "mvtb-data"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the smaller pool may give fewer references than the preset
        manifest = build_mini_ndec(tmp_path / "out", size="small", progress=False)
    assert {p["package"] for p in manifest["photos"]} <= {"scikit-image", "scikit-learn"}
    assert all(manifest["sizes"]["queries_by_kind"][kind] > 0 for kind in KINDS)
    assert manifest["sizes"]["references"] >= 20


def test_no_photo_source_is_a_clear_error_and_writes_nothing(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(photos, "PHOTO_SOURCES", ())
    with pytest.raises(InputError, match="no photo source is available"):
        build_mini_ndec(tmp_path / "out", size="small", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_too_many_references_for_the_pool_is_an_error(tmp_path: Path):
    with pytest.raises(InputError, match="ask for fewer"):
        build_mini_ndec(tmp_path / "out", size="small", references=100_000, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_non_empty_folder_even_with_overwrite(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        build_mini_ndec(out, size="small", progress=False, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_cli_builds_and_reports_errors(tmp_path: Path, capsys):
    out = tmp_path / "cli"
    assert main(["mini-ndec", "build", str(out), "--size", "small", "--seed", "3", "--references", "12",
                 "--queries", "15", "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["seed"] == 3 and manifest["sizes"]["references"] == 12 and manifest["sizes"]["queries"] == 15
    assert "12 references, 15 queries" in capsys.readouterr().out
    assert main(["mini-ndec", "build", str(out), "--size", "small", "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["mini-ndec", "build", str(out), "--size", "small", "--no-progress", "--overwrite",
                 "--queries", "10", "--references", "8"]) == 0
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["sizes"]["queries"] == 10
