"""`hf-asl extract`: sources, resumable shards, corrupt images, unsafe tars, two processes."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import save_tiny_asl_model
from PIL import Image

from hf_asl import build_image_processor
from hf_asl.cli import main
from hf_asl.descriptors import load_descriptors
from hf_asl.errors import InputError
from hf_asl.extract import (
    MERGED_FILE,
    SKIPPED_FILE,
    ShardPlan,
    descriptors_from_output,
    extract_descriptors,
    load_extraction,
    merge_extraction,
)
from hf_asl.image_sources import DatasetSource, FolderSource, TarSource, open_image_source
from hf_asl.model_loading import load_model_and_processor

N_IMAGES = 10


def jpeg(seed: int, size=(40, 30)) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_asl_model(tmp_path_factory.mktemp("tiny_asl"))


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model_and_processor(str(model_dir))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for i in range(N_IMAGES):
        (folder / f"img{i:02d}.jpg").write_bytes(jpeg(i))
    (folder / ".DS_Store").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not an image either")
    return folder


@pytest.fixture(scope="module")
def reference_run(loaded, images, tmp_path_factory):
    """An uninterrupted extraction: 3 shards of 4, 4 and 2 images, batches of 2."""
    model, processor = loaded
    out = tmp_path_factory.mktemp("uninterrupted")
    extract_descriptors(model, processor, FolderSource(images), out, shard_size=4, batch_size=2, progress=False)
    return merge_extraction(out).descriptors


def test_resume_after_kill_recomputes_nothing_and_matches(loaded, images, reference_run, tmp_path, monkeypatch):
    model, processor = loaded
    real_forward = model.forward
    seen: list[int] = []

    def dies_in_second_shard(pixel_values, **kwargs):
        if len(seen) == 3:  # shard 0 = batches 1-2, then one batch of shard 1
            raise RuntimeError("killed")
        seen.append(len(pixel_values))
        return real_forward(pixel_values, **kwargs)

    source = FolderSource(images)
    monkeypatch.setattr(model, "forward", dies_in_second_shard)
    with pytest.raises(RuntimeError, match="killed"):
        extract_descriptors(model, processor, source, tmp_path, shard_size=4, batch_size=2, progress=False)
    plan = ShardPlan(source.ids(), 4)
    assert plan.shard_path(tmp_path, 0).is_file() and not plan.shard_path(tmp_path, 1).exists()
    with pytest.raises(InputError, match="incomplete: 2 of 3 shards missing"):
        load_extraction(tmp_path)
    first_shard = plan.shard_path(tmp_path, 0).stat().st_mtime_ns

    computed: list[str] = []

    def counting(pixel_values, **kwargs):
        computed.append(len(pixel_values))
        return real_forward(pixel_values, **kwargs)

    monkeypatch.setattr(model, "forward", counting)
    report = extract_descriptors(model, processor, source, tmp_path, shard_size=4, batch_size=2, progress=False)
    assert (report.shards_found_done, report.shards_done, report.images_extracted) == (1, 2, 6)
    assert computed == [2, 2, 2]  # shards 1 and 2 only
    assert plan.shard_path(tmp_path, 0).stat().st_mtime_ns == first_shard

    resumed = merge_extraction(tmp_path).descriptors
    assert resumed.ids.tolist() == reference_run.ids.tolist() == [f"img{i:02d}" for i in range(N_IMAGES)]
    np.testing.assert_array_equal(resumed.vectors, reference_run.vectors)
    np.testing.assert_array_equal(resumed.norms, reference_run.norms)
    np.testing.assert_allclose(np.linalg.norm(resumed.vectors, axis=1), 1.0, rtol=1e-5)

    computed.clear()
    again = extract_descriptors(model, processor, source, tmp_path, shard_size=4, batch_size=2, progress=False)
    assert computed == [] and again.shards_found_done == 3


def test_resume_with_other_settings_is_refused(loaded, images, tmp_path, tmp_path_factory):
    model, processor = loaded
    source = FolderSource(images)
    extract_descriptors(model, processor, source, tmp_path, shard_size=4, batch_size=4, progress=False)
    with pytest.raises(InputError, match="shard_size, num_shards differ"):
        extract_descriptors(model, processor, source, tmp_path, shard_size=5, progress=False)

    other_model, _ = load_model_and_processor(str(save_tiny_asl_model(tmp_path_factory.mktemp("other"), seed=1)))
    with pytest.raises(InputError, match="model_sha256 differ"):
        extract_descriptors(other_model, processor, source, tmp_path, shard_size=4, progress=False)
    with pytest.raises(InputError, match="processor_sha256 differ"):
        extract_descriptors(model, build_image_processor(40), source, tmp_path, shard_size=4, progress=False)

    fewer = tmp_path_factory.mktemp("fewer")
    for path in sorted(images.glob("*.jpg"))[:-1]:
        shutil.copy(path, fewer / path.name)
    with pytest.raises(InputError, match="source, num_images, ids_sha256 differ"):
        extract_descriptors(model, processor, FolderSource(fewer), tmp_path, shard_size=4, progress=False)
    assert merge_extraction(tmp_path).descriptors.ids.tolist() == source.ids()  # nothing was touched


def test_corrupt_image_named_and_skipped_only_when_asked(model_dir, images, tmp_path, capsys):
    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    whole = (folder / "img03.jpg").read_bytes()
    (folder / "img03.jpg").write_bytes(whole[: len(whole) // 2])  # truncated JPEG
    args = ["extract", str(model_dir), str(folder), str(tmp_path / "out"), "--shard-size", "4", "--num-workers", "0",
            "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "image 'img03' cannot be decoded" in err and "--skip-corrupt" in err

    assert main([*args, "--skip-corrupt"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 corrupt image(s): img03" in out
    merged = load_descriptors(tmp_path / "out" / MERGED_FILE)
    assert "img03" not in merged.ids.tolist() and len(merged) == N_IMAGES - 1
    listed = (tmp_path / "out" / SKIPPED_FILE).read_text().splitlines()
    assert len(listed) == 1 and listed[0].startswith("img03\t")


def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return path


def _member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (_member("../evil.jpg", jpeg(0)), "path with '..'"),
        (_member("/abs/evil.jpg", jpeg(0)), "absolute path"),
        (_member("queries/link.jpg", kind=tarfile.SYMTYPE, link="/etc/passwd"), "symbolic link"),
        (_member("queries/hard.jpg", kind=tarfile.LNKTYPE, link="queries/Q0.jpg"), "hard link"),
        (_member("queries/dev.jpg", kind=tarfile.CHRTYPE), "device file"),
    ],
)
def test_unsafe_tar_member_refused(tmp_path, member, problem):
    path = _tar_with(tmp_path / "q.tar", [_member("queries/Q0.jpg", jpeg(0)), member])
    with pytest.raises(InputError, match=f"refusing tar member .*{problem}"):
        TarSource(path)


def test_compressed_tar_refused_with_hint(tmp_path):
    path = tmp_path / "q.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("Q0.jpg")
        data = jpeg(0)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(InputError, match="compressed tar.*decompress it first"):
        open_image_source(path)


def test_folder_tar_and_datasets_sources_agree(loaded, mini_ndec_dir, tmp_path):
    from hf_asl.ndec_export import export_ndec

    model, processor = loaded
    exported = tmp_path / "parquet"
    export_ndec(mini_ndec_dir, exported, configs=["queries"], progress=False)
    sources = {
        "folder": open_image_source(mini_ndec_dir / "query_images_h5"),
        "tar": open_image_source(mini_ndec_dir / "query_images_h5.tar"),
        "release root": open_image_source(mini_ndec_dir, config="queries", cache_dir=tmp_path / "cache"),
        "parquet": open_image_source(exported, config="queries", cache_dir=tmp_path / "cache"),
    }
    assert [type(s) for s in sources.values()] == [FolderSource, TarSource, DatasetSource, DatasetSource]
    ids = sources["folder"].ids()
    assert len(ids) == 60 and ids == sorted(ids)
    results = {}
    for workers, (name, source) in enumerate(sources.items()):
        assert source.ids() == ids, name
        # workers 0..3: forked workers read the tar by offset and the datasets through Arrow
        out = tmp_path / name.replace(" ", "_")
        extract_descriptors(model, processor, source, out, shard_size=32, batch_size=16, num_workers=workers % 2,
                            progress=False)
        results[name] = merge_extraction(out).descriptors
    for name, result in results.items():
        assert result.ids.tolist() == ids, name
        np.testing.assert_allclose(result.vectors, results["folder"].vectors, atol=1e-6, err_msg=name)


def test_features_of_a_non_asl_model_are_normalised():
    pooled = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    descriptor, norm = descriptors_from_output(SimpleNamespace(pooler_output=pooled[:, :, None, None]))
    torch.testing.assert_close(norm, torch.tensor([5.0, 2.0]))
    torch.testing.assert_close(descriptor, torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    hidden = torch.ones(2, 3, 4)  # (batch, tokens, channels)
    descriptor, norm = descriptors_from_output(SimpleNamespace(pooler_output=None, last_hidden_state=hidden))
    torch.testing.assert_close(norm, torch.full((2,), 2.0))
    with pytest.raises(InputError, match="not an image feature model"):
        descriptors_from_output(SimpleNamespace(logits=hidden))


def test_two_processes_split_the_shards(model_dir, images, reference_run, tmp_path):
    out = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "hf_asl", "extract", str(model_dir), str(images), str(out), "--shard-size", "3",
               "--batch-size", "2", "--num-workers", "0", "--no-progress"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    # 10 images in 4 shards: process 0 takes shards 0 and 2, process 1 shards 1 and 3.
    assert "[process 0] 6 images in 2 new shard(s)" in done.stdout
    assert "[process 1] 4 images in 2 new shard(s)" in done.stdout
    merged = load_descriptors(out / MERGED_FILE)
    assert merged.ids.tolist() == reference_run.ids.tolist()
    np.testing.assert_allclose(merged.vectors, reference_run.vectors, atol=1e-5)  # other threads and batches
    np.testing.assert_allclose(merged.norms, reference_run.norms, rtol=1e-5)
