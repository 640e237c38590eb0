"""PK sampler: batch shape, content fractions, determinism, checkpoint state and process sharding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hf_asl.errors import InputError
from hf_asl.losses import NormRatioLoss
from hf_asl.pk_sampler import NegativePair, PKSampler


def _images(n: int, size: int = 64) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, size=(size, size + 16, 3), dtype=np.uint8)) for _ in range(n)]


def _pairs(n: int) -> list[NegativePair]:
    a, b = _images(2 * n, size=48)[:n], _images(2 * n, size=48)[n:]
    return [NegativePair(x, y, "hn_wider_view" if i % 2 == 0 else "hn_look_alike", 1 if i % 2 == 0 else None)
            for i, (x, y) in enumerate(zip(a, b))]


def _same(first, second) -> bool:
    return (
        torch.equal(first.labels, second.labels)
        and torch.equal(first.content, second.content)
        and torch.equal(first.ordered_pairs, second.ordered_pairs)
        and all(x.tobytes() == y.tobytes() for x, y in zip(first.images, second.images))
    )


def test_batch_shape_labels_and_content():
    sampler = PKSampler(_images(10), p=3, k=4, negative_pairs=_pairs(4), negatives_per_batch=2, seed=1)
    batch = next(sampler)
    assert len(batch) == sampler.rows_per_batch == 3 * 4 + 2 * 2 * 2
    identity_labels = batch.labels[:12].view(3, 4)
    assert (identity_labels == identity_labels[:, :1]).all() and len(set(identity_labels[:, 0].tolist())) == 3
    assert (batch.labels[12:] >= sampler.num_identities).all() and batch.labels.max() < sampler.num_classes
    content = batch.content[:12].view(3, 4)
    assert (content[:, 0] == 1.0).all()
    assert ((content[:, 1:] > 0) & (content[:, 1:] < 0.95)).all()
    # The wide view is ordered against every crop, so the norm-ratio loss always has pairs.
    mask = NormRatioLoss(0.05).pair_mask(batch.labels, batch.content)
    assert mask[:12].sum() >= 3 * 3
    # Negative-pair rows: two views per image, all full content, wider-view orderings point at real rows.
    assert (batch.content[12:] == 1.0).all()
    for wider, narrower in batch.ordered_pairs.tolist():
        assert batch.labels[wider] != batch.labels[narrower] and wider >= 12 and narrower >= 12


def test_same_seed_same_stream_other_seed_other_stream():
    images = _images(8)
    first, second = PKSampler(images, 2, 3, seed=5), PKSampler(images, 2, 3, seed=5)
    for _ in range(3):
        assert _same(next(first), next(second))
    assert not _same(PKSampler(images, 2, 3, seed=6).batch(0), first.batch(0))


def test_state_round_trip_continues_the_stream():
    images, pairs = _images(9), _pairs(3)
    running = PKSampler(images, 2, 3, negative_pairs=pairs, negatives_per_batch=1, seed=2)
    for _ in range(5):  # past the end of the first epoch (4 steps)
        next(running)
    restored = PKSampler(images, 2, 3, negative_pairs=pairs, negatives_per_batch=1, seed=2)
    restored.load_state_dict(running.state_dict())
    assert restored.step == 5
    assert _same(next(restored), next(running))


def test_state_from_another_setup_is_refused():
    state = PKSampler(_images(8), 2, 3, seed=0).state_dict()
    with pytest.raises(InputError, match="seed"):
        PKSampler(_images(8), 2, 3, seed=1).load_state_dict(state)
    with pytest.raises(InputError, match="identities_per_step"):
        PKSampler(_images(8), 2, 3, seed=0, num_processes=2).load_state_dict(state)


def test_processes_take_disjoint_identities_covering_the_epoch():
    images = _images(13)
    shards = [PKSampler(images, 3, 2, seed=4, num_processes=2, process_index=r) for r in range(2)]
    assert shards[0].steps_per_epoch == 2
    seen = []
    for step in range(2):
        per_process = [set(s.identities(step).tolist()) for s in shards]
        assert not per_process[0] & per_process[1]
        seen += [i for ids in per_process for i in ids]
    assert len(seen) == len(set(seen)) == 12  # one identity left over, as with drop_last
    # Different processes also draw different edits.
    assert not _same(shards[0].batch(0), shards[1].batch(0))


def test_too_few_identities_is_an_input_error():
    with pytest.raises(InputError, match="cannot fill"):
        PKSampler(_images(5), 3, 2, num_processes=2)
    with pytest.raises(InputError, match="K >= 2"):
        PKSampler(_images(5), 2, 1)
