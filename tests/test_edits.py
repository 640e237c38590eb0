"""Copy edits: every registered edit runs, and content fractions agree with what was done."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from hf_asl import edits
from hf_asl.edits import EDITS, MILD_EDITS, apply_chain, apply_edit, random_crop


@pytest.fixture(scope="module")
def image() -> Image.Image:
    # A smooth gradient with a few blocks: structure without any photo loading.
    y, x = np.mgrid[0:192, 0:256]
    pixels = np.stack([x, y, (x + y) // 2], axis=-1).astype(np.uint8)
    pixels[40:90, 60:140] = (255, 30, 30)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def backgrounds() -> list[Image.Image]:
    return [Image.new("RGB", (400, 300), (20, 120, 200)), Image.new("RGB", (300, 500), (200, 180, 20))]


def _size(description: str) -> tuple[int, int]:
    width, height = re.search(r"(\d+)x(\d+)", description).groups()
    return int(width), int(height)


def _numbers(description: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", description)]


@pytest.mark.parametrize("name", sorted(EDITS))
def test_every_edit_runs_and_keeps_content_fraction_in_range(name, image, backgrounds):
    rng = np.random.default_rng(0)
    for _ in range(5):
        edited = apply_edit(name, image, rng, backgrounds=backgrounds)
        assert edited.image.mode == "RGB"
        assert min(edited.image.size) >= edits.MIN_SIDE
        assert max(edited.image.size) <= edits.MAX_SIDE
        assert 0 < edited.content_fraction <= 1
        assert len(edited.edits) == 1 and edited.edits[0].startswith(name)
        if EDITS[name].effect in ("photometric", "geometric"):
            assert edited.content_fraction == 1.0
        else:
            assert edited.content_fraction < 1.0


def test_random_crop_fraction_is_box_area_share(image):
    rng = np.random.default_rng(1)
    for _ in range(50):
        crop, box, fraction = random_crop(image, rng, area_range=(0.1, 0.9), aspect_range=(0.5, 2.0))
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
        assert crop.size == (x1 - x0, y1 - y0)
        assert fraction == pytest.approx((x1 - x0) * (y1 - y0) / (image.width * image.height))
        assert 0.05 < fraction <= 0.95
        assert np.array_equal(np.asarray(crop), np.asarray(image)[y0:y1, x0:x1])


def test_crop_edit_fraction_is_its_area_share(image):
    rng = np.random.default_rng(2)
    for _ in range(20):
        edited = apply_edit("crop", image, rng)
        x0, y0, x1, y1 = _numbers(edited.edits[0])
        width, height = x1 - x0, y1 - y0
        assert edited.image.size == (width, height)
        assert edited.content_fraction == pytest.approx(width * height / (image.width * image.height))


def test_fraction_follows_content_through_geometric_edits(image):
    # A lossless turn, then a crop: the crop's share of the turned image is the fraction.
    rng = np.random.default_rng(3)
    for _ in range(10):
        edited = apply_chain(image, rng, n_edits=(2, 2), names=["rotate90", "crop"])
        x0, y0, x1, y1 = _numbers(next(e for e in edited.edits if e.startswith("crop")))
        width, height = x1 - x0, y1 - y0
        assert edited.content_fraction == pytest.approx(width * height / (image.width * image.height))


def test_cover_removes_the_covered_share(image, backgrounds):
    rng = np.random.default_rng(4)
    for _ in range(10):
        edited = apply_edit("paste_under", image, rng, backgrounds=backgrounds)
        width, height = _size(edited.edits[0])
        assert edited.content_fraction == pytest.approx(1 - width * height / (image.width * image.height))


def test_crop_after_padding_counts_only_original_pixels(image):
    # Padding adds frame pixels; a later crop keeps the part of the original inside its box.
    rng = np.random.default_rng(5)
    checked = 0
    while checked < 10:
        edited = apply_chain(image, rng, n_edits=(2, 2), names=["pad", "crop"])
        if not edited.edits[0].startswith("pad"):
            continue
        left, top, _, _ = _numbers(edited.edits[0])
        x0, y0, x1, y1 = _numbers(edited.edits[1])
        visible_w = max(0, min(x1, left + image.width) - max(x0, left))
        visible_h = max(0, min(y1, top + image.height) - max(y0, top))
        expected = visible_w * visible_h / (image.width * image.height)
        assert edited.content_fraction == pytest.approx(expected, abs=1e-6)
        checked += 1


def test_chains_are_seeded_and_bounded(image, backgrounds):
    def run(seed: int) -> tuple[bytes, float, list[str]]:
        edited = apply_chain(image, np.random.default_rng(seed), backgrounds=backgrounds)
        buffer = io.BytesIO()
        edited.image.save(buffer, "PNG")
        return buffer.getvalue(), edited.content_fraction, edited.edits

    assert run(7) == run(7)
    lengths = set()
    for seed in range(60):
        _, fraction, done = run(seed)
        lengths.add(len(done))
        assert 0 < fraction <= 1
    assert lengths == {1, 2, 3, 4}


def test_mild_chains_use_only_mild_edits(image):
    rng = np.random.default_rng(8)
    for _ in range(30):
        edited = apply_chain(image, rng, mild=True)
        assert all(e.split("(")[0] in MILD_EDITS for e in edited.edits)
        assert edited.content_fraction == 1.0


def test_paste_edits_need_backgrounds_in_chains_but_degrade_alone(image):
    rng = np.random.default_rng(9)
    for _ in range(40):
        done = apply_chain(image, rng).edits
        assert not any(e.startswith(("paste_onto", "paste_under")) for e in done)
    assert apply_edit("paste_onto", image, rng).content_fraction == 1.0


def test_overlays_degrade_without_augly_assets(image, monkeypatch):
    monkeypatch.setattr(edits, "font_files", lambda: ())
    monkeypatch.setattr(edits, "emoji_files", lambda: ())
    edits._font.cache_clear()
    try:
        rng = np.random.default_rng(10)
        for name in ("text", "emoji"):
            edited = apply_edit(name, image, rng)
            assert 0 < edited.content_fraction < 1
    finally:
        edits._font.cache_clear()


def test_augly_assets_are_found_when_installed():
    if edits._augly_assets() is None:
        pytest.skip("augly wheel not installed")
    assert len(edits.font_files()) > 50
    assert len(edits.emoji_files()) > 500
    assert not any(path.name.startswith("NotoSansCuneiform") for path in edits.font_files())


def test_unknown_edit_is_named(image):
    with pytest.raises(KeyError, match="unknown edit 'swirl'"):
        apply_edit("swirl", image, np.random.default_rng(0))
