"""`hf-asl ndec export/push`: parquet + card that `load_dataset` reads back, offline push error."""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard

from hf_asl import cli
from hf_asl.ndec import FEATURES, NDEC, SPLITS
from hf_asl.ndec_export import write_config


@pytest.fixture(autouse=True)
def only_ndec_command(monkeypatch):
    # Test this command on its own, independent of the other subcommands' imports.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("hf_asl.commands.ndec",))


def _features(name: str) -> datasets.Features:
    return FEATURES[name]


def _raw(rows_or_dataset, features):
    for column, feature in features.items():
        if isinstance(feature, datasets.Image):
            rows_or_dataset = rows_or_dataset.cast_column(column, datasets.Image(decode=False))
    return list(rows_or_dataset)


@pytest.fixture(scope="module")
def source_rows(mini_ndec_dir: Path, tmp_path_factory) -> dict[str, list[dict]]:
    """What the builder reads from the mini-NDEC files, per config (images as stored)."""
    cache = str(tmp_path_factory.mktemp("builder_cache"))
    return {name: list(NDEC(config_name=name, data_dir=str(mini_ndec_dir), cache_dir=cache).iter_examples())
            for name in SPLITS}


@pytest.fixture(scope="module")
def exported(mini_ndec_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "mini-ndec"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "COMMAND_MODULES", ("hf_asl.commands.ndec",))
        assert cli.main(["ndec", "export", str(mini_ndec_dir), str(out), "--no-progress"]) == 0
    return out


def test_export_layout(exported: Path):
    for name, split in SPLITS.items():
        assert [p.name for p in (exported / name).iterdir()] == [f"{split}-00000-of-00001.parquet"]
    assert (exported / "README.md").is_file() and (exported / "manifest.json").is_file()


@pytest.mark.parametrize("name", list(SPLITS))
def test_load_dataset_round_trip(exported: Path, source_rows, tmp_path: Path, name: str):
    split = SPLITS[name]
    loaded = datasets.load_dataset(str(exported), name, split=split, cache_dir=str(tmp_path))
    assert loaded.features == _features(name)
    assert _raw(loaded, loaded.features) == source_rows[name]
    streamed = datasets.load_dataset(str(exported), name, split=split, streaming=True)
    assert streamed.features == _features(name)
    assert _raw(streamed, streamed.features) == source_rows[name]


def test_images_decode_after_loading(exported: Path, tmp_path: Path):
    pairs = datasets.load_dataset(str(exported), "negative_pairs", split="train", cache_dir=str(tmp_path))
    first = pairs[0]
    assert first["image_a"].size[0] > 0 and first["image_b"].size[0] > 0


def test_card_yaml_parses_back(exported: Path, mini_ndec_dir: Path):
    import json

    manifest = json.loads((mini_ndec_dir / "manifest.json").read_text())
    card = DatasetCard.load(exported / "README.md")
    data = card.data.to_dict()
    assert {c["config_name"] for c in data["configs"]} == set(SPLITS)
    queries = next(c for c in data["configs"] if c["config_name"] == "queries")
    assert queries["data_files"] == [{"split": "test", "path": "queries/test-*.parquet"}] and queries["default"]
    assert data["license"] == "other" and data["pretty_name"] == "mini-NDEC"
    assert data["task_categories"] == ["image-feature-extraction"] and data["size_categories"] == ["n<1K"]
    infos = {i["config_name"]: i for i in data["dataset_info"]}
    assert {"name": "image_a", "dtype": "image"} in infos["negative_pairs"]["features"]
    assert infos["queries"]["splits"][0]["num_examples"] == manifest["sizes"]["queries"]
    assert f"| `queries` | `test` | {manifest['sizes']['queries']} |" in card.text
    for kind, count in manifest["sizes"]["queries_by_kind"].items():
        assert f"| `{kind}` | {count} |" in card.text
    for source in manifest["photo_sources"]:
        assert f"`{source['package']}` {source['version']}: {'; '.join(source['licences'])}" in card.text
    assert "Wang, Wenhao and Sun, Yifan and Yang, Yi" in card.text


def test_sharding_and_re_export(mini_ndec_dir: Path, source_rows, tmp_path: Path):
    out = tmp_path / "out"
    args = ["ndec", "export", str(mini_ndec_dir), str(out), "--configs", "queries", "--no-progress"]
    assert cli.main([*args, "--max-shard-size", "100KB"]) == 0
    shards = sorted(p.name for p in (out / "queries").iterdir())
    assert len(shards) > 1 and shards[-1] == f"test-{len(shards) - 1:05d}-of-{len(shards):05d}.parquet"
    loaded = datasets.load_dataset(str(out), "queries", split="test", cache_dir=str(tmp_path / "c1"))
    assert _raw(loaded, loaded.features) == source_rows["queries"]
    # Exporting again replaces the old shards instead of mixing them in.
    assert cli.main(args) == 0
    assert [p.name for p in (out / "queries").iterdir()] == ["test-00000-of-00001.parquet"]


def test_failed_export_keeps_the_previous_one(exported: Path, source_rows, tmp_path: Path):
    out = tmp_path / "out"
    shutil.copytree(exported, out)
    before = (out / "queries" / "test-00000-of-00001.parquet").read_bytes()

    def broken_rows():
        yield from source_rows["queries"][:5]
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="source went away"):
        write_config(broken_rows(), out, "queries", "test", _features("queries"))
    assert [p.name for p in (out / "queries").iterdir()] == ["test-00000-of-00001.parquet"]
    assert (out / "queries" / "test-00000-of-00001.parquet").read_bytes() == before


def test_release_without_manifest_gets_the_ndec_licence(mini_ndec_dir: Path, tmp_path: Path):
    release = tmp_path / "release"
    release.mkdir()
    for name in ("query_images_h5.tar", "public_ground_truth_h5.csv"):
        shutil.copy(mini_ndec_dir / name, release / name)
    out = tmp_path / "out"
    assert cli.main(["ndec", "export", str(release), str(out), "--no-progress", "--repo-id", "someone/ndec"]) == 0
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-nc-4.0"
    assert {c["config_name"] for c in card.data.configs} == {"queries", "ground_truth"}
    assert "does not label the kind" in card.text and 'load_dataset("someone/ndec", "queries"' in card.text


def test_push_offline_fails_with_one_clear_line(exported: Path, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert cli.main(["ndec", "push", str(exported), "someone/mini-ndec"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "offline" in err and "Traceback" not in err


def test_push_refuses_a_folder_that_is_not_an_export(tmp_path: Path, capsys):
    assert cli.main(["ndec", "push", str(tmp_path), "someone/x"]) == 2
    assert "not an exported NDEC folder" in capsys.readouterr().err


def test_export_of_an_empty_folder_is_a_clear_error(tmp_path: Path, capsys):
    assert cli.main(["ndec", "export", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "no NDEC file found here" in capsys.readouterr().err


def test_benchmark_flag_writes_eval_yaml_only_when_asked(exported: Path, mini_ndec_dir: Path, tmp_path: Path):
    import yaml

    assert not (exported / "eval.yaml").exists()
    out = tmp_path / "bench"
    configs = ["--configs", "queries", "references", "ground_truth"]
    assert cli.main(["ndec", "export", str(mini_ndec_dir), str(out), "--no-progress", *configs, "--benchmark"]) == 0
    spec = yaml.safe_load((out / "eval.yaml").read_text())
    assert {"micro_ap", "recall_at_p90"} <= {task["id"] for task in spec["tasks"]}
