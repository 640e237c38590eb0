"""Descriptor files: round trips in both formats and a clear error for each kind of bad file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from hf_asl.descriptors import (
    Descriptors,
    concat_descriptors,
    load_descriptors,
    make_descriptors,
    save_descriptors,
    sidecar_paths,
)
from hf_asl.errors import InputError


def sample(n: int = 6, d: int = 4, *, norms: bool = True, prefix: str = "R", seed: int = 0) -> Descriptors:
    rng = np.random.default_rng(seed)
    return make_descriptors(
        [f"{prefix}{i:06d}" for i in range(n)],
        rng.standard_normal((n, d)),
        rng.uniform(0.5, 2.0, n) if norms else None,
    )


def assert_same(a: Descriptors, b: Descriptors) -> None:
    assert a.ids.tolist() == b.ids.tolist()
    assert b.vectors.dtype == np.float32
    np.testing.assert_array_equal(a.vectors, b.vectors)
    if a.norms is None:
        assert b.norms is None
    else:
        np.testing.assert_array_equal(a.norms, b.norms)


@pytest.mark.parametrize("name", ["d.safetensors", "d.npy"])
@pytest.mark.parametrize("norms", [True, False])
def test_round_trip(tmp_path, name, norms):
    d = sample(norms=norms)
    save_descriptors(tmp_path / name, d)
    assert_same(d, load_descriptors(tmp_path / name))


def test_safetensors_layout(tmp_path):
    path = tmp_path / "d.safetensors"
    save_descriptors(path, sample())
    with safe_open(str(path), framework="numpy") as f:
        assert set(f.keys()) == {"descriptors", "norms"}
        meta = f.metadata()
    assert meta["format"] == "hf-asl-descriptors" and meta["version"] == "1"
    assert json.loads(meta["ids"])[:2] == ["R000000", "R000001"]


def test_npy_layout_mmap_and_stale_norms(tmp_path):
    path = tmp_path / "refs.npy"
    save_descriptors(path, sample())
    ids_path, norms_path = sidecar_paths(path)
    assert ids_path.name == "refs.ids.txt" and norms_path.name == "refs.norms.npy"
    assert ids_path.read_text().splitlines()[0] == "R000000"
    assert isinstance(load_descriptors(path, mmap=True).vectors, np.memmap)
    save_descriptors(path, sample(norms=False))
    assert not norms_path.exists()
    assert load_descriptors(path).norms is None


def test_temporary_safetensors_name_and_empty_set(tmp_path):
    partial = tmp_path / "shard.safetensors.partial"
    empty = Descriptors(np.asarray([], dtype=str), np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    save_descriptors(partial, empty)
    final = partial.rename(tmp_path / "shard.safetensors")
    assert len(load_descriptors(final)) == 0
    assert not list(tmp_path.glob("*.tmp"))


def test_concat(tmp_path):
    a, b = sample(3, seed=1), sample(2, prefix="S", seed=2)
    both = concat_descriptors([a, b])
    assert both.ids.tolist() == a.ids.tolist() + b.ids.tolist()
    np.testing.assert_array_equal(both.norms, np.concatenate([a.norms, b.norms]))
    with pytest.raises(InputError, match="duplicate id 'R000000'"):
        concat_descriptors([a, sample(2)])
    with pytest.raises(InputError, match="different dimensions"):
        concat_descriptors([a, sample(2, d=5, prefix="S")])
    with pytest.raises(InputError, match="some descriptor sets have norms"):
        concat_descriptors([a, sample(2, prefix="S", norms=False)])
    with pytest.raises(InputError, match="no descriptor sets"):
        concat_descriptors([])


def write_npy(tmp_path, vectors, ids, norms=None):
    path = tmp_path / "x.npy"
    np.save(path, vectors)
    if ids is not None:
        (tmp_path / "x.ids.txt").write_text(ids)
    if norms is not None:
        np.save(tmp_path / "x.norms.npy", norms)
    return path


def test_npy_errors_name_the_file(tmp_path):
    ones = np.ones((2, 3), np.float32)
    with pytest.raises(InputError, match=r"x\.ids\.txt: missing sidecar id file"):
        load_descriptors(write_npy(tmp_path, ones, None))
    with pytest.raises(InputError, match=r"x\.ids\.txt: 3 ids for 2 rows"):
        load_descriptors(write_npy(tmp_path, ones, "a\nb\nc\n"))
    with pytest.raises(InputError, match=r"x\.ids\.txt:2: empty id line"):
        load_descriptors(write_npy(tmp_path, ones, "a\n\n"))
    with pytest.raises(InputError, match=r"x\.npy: duplicate id 'a'"):
        load_descriptors(write_npy(tmp_path, ones, "a\na\n"))
    with pytest.raises(InputError, match=r"x\.npy: row 1 \(id 'b'\): descriptor has NaN"):
        load_descriptors(write_npy(tmp_path, np.array([[1, 2, 3], [np.nan, 0, 0]], np.float32), "a\nb\n"))
    with pytest.raises(InputError, match=r"x\.npy: descriptors must be floating point"):
        load_descriptors(write_npy(tmp_path, np.ones((2, 3), np.int32), "a\nb\n"))
    with pytest.raises(InputError, match=r"x\.npy: descriptors must be a 2-D matrix"):
        load_descriptors(write_npy(tmp_path, np.ones(3, np.float32), "a\nb\n"))
    with pytest.raises(InputError, match=r"x\.norms\.npy: norms have shape \(3,\)"):
        load_descriptors(write_npy(tmp_path, ones, "a\nb\n", np.ones(3, np.float32)))
    with pytest.raises(InputError, match=r"x\.norms\.npy: id 'b': norm 0.0 is not positive"):
        load_descriptors(write_npy(tmp_path, ones, "a\nb\n", np.array([1, 0], np.float32)))
    with pytest.raises(InputError, match=r"x\.norms\.npy: row 0 \(id 'a'\): norm has NaN"):
        load_descriptors(write_npy(tmp_path, ones, "a\nb\n", np.array([np.inf, 1], np.float32)))


def test_safetensors_errors_name_the_file(tmp_path):
    path = tmp_path / "x.safetensors"
    meta = {"format": "hf-asl-descriptors", "version": "1", "ids": json.dumps(["a", "b"])}
    ones = np.ones((2, 3), np.float32)
    cases = [
        ({"descriptors": ones}, {k: v for k, v in meta.items() if k != "ids"}, "metadata has no 'ids'"),
        ({"descriptors": ones}, {**meta, "format": "pt"}, "metadata 'format' is 'pt'"),
        ({"descriptors": ones}, {**meta, "version": "9"}, "format version 9 is newer"),
        ({"descriptors": ones}, {**meta, "ids": "[1, 2]"}, "metadata 'ids' must be a JSON list of strings"),
        ({"descriptors": ones}, {**meta, "ids": '["a"]'}, "1 ids for 2 descriptor rows"),
        ({"descriptors": ones}, {**meta, "ids": '["a", "a"]'}, "duplicate id 'a'"),
        ({"norms": np.ones(2, np.float32)}, meta, "no 'descriptors' tensor"),
        ({"descriptors": ones, "norms": np.ones(3, np.float32)}, meta, r"norms have shape \(3,\)"),
        ({"descriptors": np.full((2, 3), np.nan, np.float32)}, meta, r"row 0 \(id 'a'\): descriptor has NaN"),
    ]
    for tensors, metadata, message in cases:
        save_file(tensors, str(path), metadata=metadata)
        with pytest.raises(InputError, match=rf"x\.safetensors: {message}"):
            load_descriptors(path)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match=r"x\.safetensors: not a readable safetensors file"):
        load_descriptors(path)
    with pytest.raises(InputError, match="descriptor file not found"):
        load_descriptors(tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="must end in .safetensors or .npy"):
        load_descriptors(tmp_path / "x.txt")


def test_save_refuses_inconsistent_descriptors(tmp_path):
    with pytest.raises(InputError, match="line break"):
        save_descriptors(tmp_path / "x.npy", make_descriptors(["a\nb"], np.ones((1, 2))))
    with pytest.raises(InputError, match="2 ids for 3 descriptor rows"):
        make_descriptors(["a", "b"], np.ones((3, 2)))
