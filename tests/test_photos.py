"""The offline photo pool: sources, groups, loading and the error when nothing is installed."""

from __future__ import annotations

import importlib.util

import pytest

from hf_asl import photos
from hf_asl.errors import HfAslError, InputError

HAS_MVTB = importlib.util.find_spec("mvtbdata") is not None


@pytest.fixture(scope="module")
def pool() -> photos.PhotoPool:
    return photos.load_photo_pool()


def test_every_photo_records_source_licence_and_group(pool):
    names = [p.name for p in pool.photos]
    assert len(names) == len(set(names))
    assert {"skimage/astronaut", "skimage/motorcycle_left", "sklearn/china"} <= set(names)
    for photo in pool.photos:
        assert photo.package in {"scikit-image", "scikit-learn", "mvtb-data"}
        assert photo.licence and photo.group


def test_each_group_has_one_primary_first(pool):
    for group, members in pool.groups().items():
        assert [m.primary for m in members] == [True] + [False] * (len(members) - 1), group


def test_stereo_pair_shares_a_group(pool):
    left, right = pool["skimage/motorcycle_left"], pool["skimage/motorcycle_right"]
    assert left.group == right.group
    assert left.primary and not right.primary


@pytest.mark.skipif(not HAS_MVTB, reason="mvtb-data (hf_asl[demo]) not installed")
def test_mvtb_keeps_real_photos_and_leaves_out_third_party_and_targets(pool):
    stems = {p.name.split("/", 1)[1] for p in pool.photos if p.package == "mvtb-data"}
    for excluded in ("lena", "monalisa", "58060", "butterfly", "image3", "apriltag12", "multiblobs",
                     "left01", "fisheye_target", "shark1", "wheres-wally"):
        assert excluded not in stems
    assert {"walls-l", "walls-r", "building2-1", "eiffel-2", "castle2", "P1070491"} <= stems
    assert pool["mvtb/walls-l"].group == pool["mvtb/walls-r"].group
    assert pool["mvtb/building2-1"].group == pool["mvtb/building2-3"].group
    assert pool["mvtb/castle"].grey  # grey photos are kept, loaded as RGB
    assert pool.image("mvtb/castle").mode == "RGB"


def test_image_is_rgb_bounded_and_cached(pool):
    image = pool.image("skimage/retina")
    assert image.mode == "RGB"
    assert max(image.size) <= pool.max_side
    assert pool.image("skimage/retina") is image


def test_size_from_header_matches_decoded_image():
    small_pool = photos.load_photo_pool(max_side=300)
    for name in ("sklearn/china", "skimage/coffee"):
        size = small_pool.size(name)
        assert max(size) == 300
        assert small_pool.image(name).size == size


def test_sources_summarise_packages(pool):
    records = {r["package"]: r for r in pool.sources(["skimage/astronaut", "sklearn/china", "sklearn/flower"])}
    assert set(records) == {"scikit-image", "scikit-learn"}
    assert records["scikit-learn"]["photos"] == 2
    assert records["scikit-learn"]["licences"] == ["CC-BY-2.0 (Flickr, see load_sample_images)"]
    assert records["scikit-image"]["version"]


def test_no_photo_source_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(photos, "PHOTO_SOURCES", ())
    with pytest.raises(InputError, match="no photo source is available"):
        photos.load_photo_pool()


def test_uninstalled_sources_are_named_in_the_error(monkeypatch):
    def missing() -> list[photos.Photo]:
        raise ImportError("scikit-image is not installed")

    monkeypatch.setattr(photos, "PHOTO_SOURCES", (photos.PhotoSource("scikit-image", "CC0", missing),))
    with pytest.raises(HfAslError, match=r"scikit-image is not installed.*pip install 'hf-asl\[demo\]'"):
        photos.load_photo_pool()


def test_sources_can_be_selected():
    only_sklearn = photos.load_photo_pool(["scikit-learn"])
    assert {p.package for p in only_sklearn.photos} == {"scikit-learn"}
