"""Resumable, sharded descriptor extraction (descriptors + norms + ids as safetensors shards).

Images are sorted by id and cut into fixed-size shards. A shard is written (atomically) as soon
as its last image is through the model, so a killed run loses at most the shard in progress and
a rerun of the same command starts at the first missing shard, recomputing nothing.
``extract.json`` pins what the descriptors depend on (model weights, image processor, source,
ids, shard size): resuming with anything else is refused instead of mixing descriptors.

Under ``accelerate launch`` (or ``torchrun``) the shards still missing when the run starts are
dealt round-robin to the processes, so no id is done twice or left out; the main process then
merges the shards (:func:`merge_extraction`). The output folder must be shared by all processes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .descriptors import Descriptors, concat_descriptors, load_descriptors, save_descriptors
from .errors import InputError
from .image_sources import ImageSource

SETTINGS_FILE = "extract.json"
SHARD_DIR = "shards"
MERGED_FILE = "descriptors.safetensors"
SKIPPED_FILE = "skipped_corrupt.txt"
FORMAT = "hf-asl-extraction"
FORMAT_VERSION = 1
# What the descriptors depend on: a resume must match all of these.
PINNED_SETTINGS = ("format", "version", "model_sha256", "processor_sha256", "source", "num_images",
                   "ids_sha256", "shard_size", "num_shards")


@dataclass(frozen=True)
class ShardPlan:
    """The sorted ids cut into shards of ``shard_size`` images."""

    ids: list[str]
    shard_size: int

    @property
    def num_shards(self) -> int:
        return max(1, -(-len(self.ids) // self.shard_size))

    def shard_ids(self, index: int) -> list[str]:
        return self.ids[index * self.shard_size : (index + 1) * self.shard_size]

    def shard_path(self, out_dir: Path, index: int) -> Path:
        return out_dir / SHARD_DIR / f"shard-{index:05d}-of-{self.num_shards:05d}.safetensors"

    def record_path(self, out_dir: Path, index: int) -> Path:
        """Sidecar JSON of a shard: the images it skipped as corrupt (written before the shard)."""
        return self.shard_path(out_dir, index).with_suffix(".json")


@dataclass
class ExtractionReport:
    """What one process did (under several processes, its own shards only)."""

    num_shards: int
    shards_done: int
    shards_found_done: int
    images_extracted: int
    skipped_corrupt: dict[str, str] = field(default_factory=dict)


def digest_model(model) -> str:
    """sha256 of a model's weights (names, dtypes, shapes and values): what the descriptors depend on."""
    import torch

    sha = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        sha.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def digest_processor(processor) -> str:
    """sha256 of an image processor's settings (size, resampling, mean/std...)."""
    return hashlib.sha256(processor.to_json_string().encode()).hexdigest()


def descriptors_from_output(output) -> tuple[Any, Any]:
    """``(descriptor, norm)`` of a batch: L2-normalised descriptors and the norms of the raw ones.

    An ASL model returns both. Any other transformers vision model is used through its pooled
    features (``pooler_output``, else the mean of ``last_hidden_state`` over positions), so
    that a baseline from the Hub can be evaluated the same way (its raw feature norms are then
    what an ASL score would use).
    """
    import torch

    if getattr(output, "descriptor", None) is not None and getattr(output, "norm", None) is not None:
        return output.descriptor, output.norm
    features = getattr(output, "pooler_output", None)
    if features is None:
        hidden = getattr(output, "last_hidden_state", None)
        if hidden is None:
            raise InputError(
                f"the model output ({type(output).__name__}) has neither descriptor/norm, pooler_output "
                "nor last_hidden_state: not an image feature model"
            )
        # (B, tokens, C) for transformers, (B, C, H, W) for CNNs.
        features = hidden.mean(dim=1) if hidden.ndim == 3 else hidden.flatten(2).mean(dim=2)
    features = features.flatten(1).float()
    norm = torch.linalg.vector_norm(features, dim=1)
    return features / norm.clamp(min=torch.finfo(features.dtype).tiny).unsqueeze(1), norm


class _DecodeDataset:
    """Decodes and preprocesses one image per item (inside DataLoader workers when there are any).

    A corrupt image becomes ``None`` pixels plus the error text, so the main process decides
    (report by id, or skip) rather than a worker crashing with a wrapped traceback.
    """

    def __init__(self, source: ImageSource, ids: list[str], processor):
        self.source, self.ids, self.processor = source, ids, processor

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        from PIL import Image

        image_id = self.ids[index]
        try:
            with Image.open(io.BytesIO(self.source.read_bytes(image_id))) as image:
                rgb = image.convert("RGB")  # decodes every byte: truncation shows here
        # PIL raises many types for bad data (OSError, SyntaxError, ValueError, struct.error...).
        except Exception as err:  # noqa: BLE001
            return image_id, None, f"{type(err).__name__}: {err}"
        return image_id, self.processor(images=rgb, return_tensors="pt")["pixel_values"][0], None


def _collate(items):
    import torch

    good = [(i, p) for i, p, e in items if e is None]
    bad = [(i, e) for i, _, e in items if e is not None]
    pixels = torch.stack([p for _, p in good]) if good else None
    return [i for i, _ in good], pixels, bad


def _check_ids(ids: list[str], where: str) -> None:
    # The same rules the descriptor files enforce, checked before any image is decoded.
    for image_id in ids:
        if not image_id or image_id != image_id.strip() or "\n" in image_id or "\r" in image_id:
            raise InputError(f"image id {image_id!r} is empty or has surrounding or line-break spaces", path=where)


def _ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def _settings(model, processor, model_name: str, source: ImageSource, plan: ShardPlan) -> dict:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": model_name,
        "model_sha256": digest_model(model),
        "processor_sha256": digest_processor(processor),
        "source": source.name,
        "num_images": len(plan.ids),
        "ids_sha256": _ids_digest(plan.ids),
        "shard_size": plan.shard_size,
        "num_shards": plan.num_shards,
        "skipped_by_source": list(source.skipped),
    }


def _read_settings(out_dir: Path) -> dict | None:
    path = out_dir / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"unreadable extraction settings ({err})", path=path) from None
    if settings.get("format") != FORMAT:
        raise InputError(f"not an hf-asl extraction settings file (format {settings.get('format')!r})", path=path)
    return settings


def _check_settings(out_dir: Path, settings: dict) -> None:
    found = _read_settings(out_dir)
    if found is None:
        return
    differing = [k for k in PINNED_SETTINGS if found.get(k) != settings[k]]
    if differing:
        raise InputError(
            f"holds an extraction with other settings ({', '.join(differing)} differ"
            f"{'; model was ' + repr(found.get('model')) if 'model_sha256' in differing else ''}): "
            "resuming would mix descriptors; use a new output folder",
            path=out_dir / SETTINGS_FILE,
        )


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


def _batches(plan: ShardPlan, shards: list[int], batch_size: int) -> tuple[list[list[int]], list[int]]:
    """Batches (positions in the concatenated ids of ``shards``) that never cross a shard, and
    the shard of each batch."""
    batches, owner, start = [], [], 0
    for shard in shards:
        size = len(plan.shard_ids(shard))
        for begin in range(0, size, batch_size):
            batches.append(list(range(start + begin, start + min(begin + batch_size, size))))
            owner.append(shard)
        start += size
    return batches, owner


def extract_descriptors(
    model,
    processor,
    source: ImageSource,
    out_dir: str | Path,
    *,
    model_name: str = "model",
    shard_size: int = 1024,
    batch_size: int = 32,
    num_workers: int = 0,
    skip_corrupt: bool = False,
    accelerator=None,
    progress: bool = True,
) -> ExtractionReport:
    """Extract every image of ``source`` into ``out_dir/shards``, keeping the shards already there.

    ``model`` returns ``descriptor`` and ``norm`` (an :class:`hf_asl.modeling_asl.ASLModel`) or
    pooled features (see :func:`descriptors_from_output`); ``processor`` turns a PIL image into
    ``pixel_values``. Images are decoded in ``num_workers`` DataLoader workers. A corrupt image
    raises an :class:`InputError` naming its id, or with ``skip_corrupt`` is left out and listed.
    With an ``accelerate.Accelerator`` each process takes its share of the missing shards.
    Call :func:`merge_extraction` afterwards (once, on the main process) for one file.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    if shard_size <= 0 or batch_size <= 0 or num_workers < 0:
        raise InputError(f"shard_size and batch_size must be > 0 and num_workers >= 0 "
                         f"(got {shard_size}, {batch_size}, {num_workers})")
    out_dir = Path(out_dir)
    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    device = accelerator.device if accelerator is not None else torch.device("cpu")

    ids = source.ids()
    _check_ids(ids, source.name)
    plan = ShardPlan(sorted(ids), shard_size)
    settings = _settings(model, processor, model_name, source, plan)
    _check_settings(out_dir, settings)
    if rank == 0:
        (out_dir / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        if _read_settings(out_dir) is None:
            _write_json(out_dir / SETTINGS_FILE, settings)
    todo = [i for i in range(plan.num_shards) if not plan.shard_path(out_dir, i).is_file()]
    if accelerator is not None:
        # Every process has listed the missing shards before any writes one: same lists everywhere.
        accelerator.wait_for_everyone()
    mine = todo[rank::world]
    report = ExtractionReport(plan.num_shards, 0, plan.num_shards - len(todo), 0)

    model = model.to(device).eval()
    batches, owner = _batches(plan, mine, batch_size)
    loader = DataLoader(
        _DecodeDataset(source, [i for shard in mine for i in plan.shard_ids(shard)], processor),
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
    )
    bar = tqdm(
        total=len(loader.dataset),
        desc=f"extract [process {rank}]" if world > 1 else "extract",
        unit="img",
        position=rank,
        disable=not progress,
    )
    shard_ids: list[str] = []
    vectors: list[np.ndarray] = []
    norms: list[np.ndarray] = []
    skipped: dict[str, str] = {}
    received = 0
    for (batch_ids, pixels, bad), shard in zip(loader, owner):
        for image_id, error in bad:
            if not skip_corrupt:
                raise InputError(
                    f"image {image_id!r} cannot be decoded ({error}); --skip-corrupt leaves such images out "
                    f"(the {report.shards_done + report.shards_found_done} finished shard(s) are kept)",
                    path=source.name,
                )
            skipped[image_id] = error
        if pixels is not None:
            with torch.inference_mode():
                descriptor, norm = descriptors_from_output(model(pixel_values=pixels.to(device, non_blocking=True)))
            shard_ids.extend(batch_ids)
            vectors.append(descriptor.float().cpu().numpy())
            norms.append(norm.float().cpu().numpy())
        received += len(batch_ids) + len(bad)
        bar.update(len(batch_ids) + len(bad))
        if received == len(plan.shard_ids(shard)):
            _write_shard(out_dir, plan, shard, shard_ids, vectors, norms, skipped)
            report.shards_done += 1
            report.images_extracted += len(shard_ids)
            report.skipped_corrupt.update(skipped)
            shard_ids, vectors, norms, skipped, received = [], [], [], {}, 0
    bar.close()
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return report


def _write_shard(
    out_dir: Path,
    plan: ShardPlan,
    index: int,
    ids: list[str],
    vectors: list[np.ndarray],
    norms: list[np.ndarray],
    skipped: dict[str, str],
) -> None:
    # The record goes first: a shard file present means its record is complete too.
    _write_json(plan.record_path(out_dir, index), {"images": len(ids), "skipped_corrupt": skipped})
    shard = Descriptors(
        ids=np.asarray(ids, dtype=object),
        # An all-corrupt shard has no rows and no known dimension; merging leaves it out.
        vectors=np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32),
        norms=np.concatenate(norms) if norms else np.zeros((0,), np.float32),
    )
    save_descriptors(plan.shard_path(out_dir, index), shard)  # atomic: temporary file, then rename


@dataclass(frozen=True)
class Extraction:
    """A finished extraction: its descriptors, the images left out as corrupt and its settings."""

    descriptors: Descriptors
    skipped_corrupt: dict[str, str]
    settings: dict


def load_extraction(out_dir: str | Path) -> Extraction:
    """Read back a finished extraction from its shards; refuses an incomplete one, naming a gap."""
    out_dir = Path(out_dir)
    settings = _read_settings(out_dir)
    if settings is None:
        raise InputError(f"not an extraction folder (no {SETTINGS_FILE})", path=out_dir)
    count = settings["num_shards"]
    paths = [out_dir / SHARD_DIR / f"shard-{i:05d}-of-{count:05d}.safetensors" for i in range(count)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise InputError(
            f"extraction incomplete: {len(missing)} of {count} shards missing "
            f"(first: {missing[0]}); rerun the same command to resume",
            path=out_dir,
        )
    parts = [load_descriptors(p) for p in paths]
    skipped: dict[str, str] = {}
    for path in paths:
        record = json.loads(path.with_suffix(".json").read_text())
        skipped.update(record["skipped_corrupt"])
    kept = [p for p in parts if len(p)]
    if not kept:
        raise InputError("every image was skipped as corrupt: no descriptors", path=out_dir)
    merged = concat_descriptors(kept)
    if _ids_digest([*merged.ids.tolist(), *skipped]) != settings["ids_sha256"]:
        raise InputError("the shards do not hold the ids this extraction planned (files from another run?)",
                         path=out_dir / SHARD_DIR)
    for image_id in settings.get("skipped_by_source", []):
        skipped.setdefault(image_id, "dropped as corrupt by the dataset builder")
    return Extraction(merged, skipped, settings)


def load_extracted(out_dir: str | Path) -> Descriptors:
    """The descriptors of a finished extraction (see :func:`load_extraction` for the rest)."""
    return load_extraction(out_dir).descriptors


def merge_extraction(out_dir: str | Path) -> Extraction:
    """Merge the shards into ``out_dir/descriptors.safetensors`` and list the images skipped as
    corrupt (``id<TAB>error`` lines) in ``out_dir/skipped_corrupt.txt``."""
    out_dir = Path(out_dir)
    extraction = load_extraction(out_dir)
    save_descriptors(out_dir / MERGED_FILE, extraction.descriptors)
    skipped_path = out_dir / SKIPPED_FILE
    if extraction.skipped_corrupt:
        lines = "".join(f"{i}\t{e}\n" for i, e in sorted(extraction.skipped_corrupt.items()))
        tmp = skipped_path.with_name(skipped_path.name + ".tmp")
        tmp.write_text(lines)
        os.replace(tmp, skipped_path)
    else:
        skipped_path.unlink(missing_ok=True)
    return extraction


__all__ = [
    "Extraction",
    "ExtractionReport",
    "ShardPlan",
    "descriptors_from_output",
    "digest_model",
    "digest_processor",
    "extract_descriptors",
    "load_extracted",
    "load_extraction",
    "merge_extraction",
]
