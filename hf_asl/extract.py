"""Resumable, sharded descriptor extraction (descriptors + norms + ids as safetensors shards).

Images are sorted by id and cut into fixed-size shards; shard ``i`` belongs to process
``i % world_size`` under ``accelerate launch``, so processes never duplicate or miss an id. Each
shard is written atomically (temporary file, then rename) as soon as it is finished: a killed
run resumes at the first missing shard, recomputing nothing. ``extract.json`` pins the settings,
so a resume with another model or source is refused instead of mixing descriptors.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .descriptors import Descriptors, concat_descriptors, load_descriptors, save_descriptors
from .errors import InputError
from .image_sources import ImageSource

SETTINGS_FILE = "extract.json"
SHARD_DIR = "shards"


@dataclass(frozen=True)
class ShardPlan:
    ids: list[str]
    shard_size: int

    @property
    def num_shards(self) -> int:
        return max(1, -(-len(self.ids) // self.shard_size))

    def shard_ids(self, index: int) -> list[str]:
        return self.ids[index * self.shard_size : (index + 1) * self.shard_size]

    def shard_path(self, out_dir: Path, index: int) -> Path:
        return out_dir / SHARD_DIR / f"shard-{index:05d}-of-{self.num_shards:05d}.safetensors"


class _DecodeDataset:
    """Decodes and preprocesses one image per item inside DataLoader workers.

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
                rgb = image.convert("RGB")
            pixels = self.processor(images=rgb, return_tensors="pt")["pixel_values"][0]
            return image_id, pixels, None
        except (OSError, ValueError, SyntaxError) as err:
            return image_id, None, f"{type(err).__name__}: {err}"


def _collate(items):
    import torch

    good = [(i, p) for i, p, e in items if e is None]
    bad = [(i, e) for i, _, e in items if e is not None]
    pixels = torch.stack([p for _, p in good]) if good else None
    return [i for i, _ in good], pixels, bad


def _settings(model_name: str, source: ImageSource, plan: ShardPlan) -> dict:
    digest = hashlib.sha256("\n".join(plan.ids).encode()).hexdigest()
    return {
        "model": model_name,
        "source": source.name,
        "num_images": len(plan.ids),
        "ids_sha256": digest,
        "shard_size": plan.shard_size,
        "num_shards": plan.num_shards,
    }


def _check_or_write_settings(out_dir: Path, settings: dict, is_main: bool) -> None:
    path = out_dir / SETTINGS_FILE
    if path.is_file():
        found = json.loads(path.read_text())
        differing = sorted(k for k in settings if found.get(k) != settings[k])
        if differing:
            raise InputError(
                f"holds an extraction with other settings ({', '.join(differing)}); "
                "use a new output folder",
                path=path,
            )
    elif is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2) + "\n")


@dataclass
class ExtractionReport:
    shards_done: int
    shards_skipped_existing: int
    images_extracted: int
    skipped_corrupt: list[str]


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
    """Extract every image of ``source`` into ``out_dir``/shards, resuming finished shards.

    ``model`` returns an output with ``descriptor`` (L2-normalised) and ``norm`` (raw norm),
    as :class:`hf_asl.modeling_asl.ASLModel` does. With an ``accelerate.Accelerator`` each
    process takes every ``num_processes``-th shard.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    device = accelerator.device if accelerator is not None else torch.device("cpu")
    plan = ShardPlan(source.ids(), shard_size)
    _check_or_write_settings(out_dir, _settings(model_name, source, plan), is_main=rank == 0)
    if accelerator is not None:
        accelerator.wait_for_everyone()
        _check_or_write_settings(out_dir, _settings(model_name, source, plan), is_main=False)
    (out_dir / SHARD_DIR).mkdir(parents=True, exist_ok=True)

    mine = [i for i in range(plan.num_shards) if i % world == rank]
    todo = [i for i in mine if not plan.shard_path(out_dir, i).is_file()]
    model = model.to(device).eval()
    report = ExtractionReport(0, len(mine) - len(todo), 0, [])
    bar = tqdm(
        total=sum(len(plan.shard_ids(i)) for i in todo),
        desc=f"extract[{rank}]" if world > 1 else "extract",
        unit="img",
        disable=not progress,
    )
    for index in todo:
        ids, vectors, norms = [], [], []
        loader = DataLoader(
            _DecodeDataset(source, plan.shard_ids(index), processor),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=_collate,
        )
        for batch_ids, pixels, bad in loader:
            for image_id, error in bad:
                if not skip_corrupt:
                    raise InputError(f"image {image_id!r} cannot be decoded ({error})", path=source.name)
                report.skipped_corrupt.append(image_id)
            if pixels is not None:
                with torch.inference_mode():
                    output = model(pixel_values=pixels.to(device))
                ids.extend(batch_ids)
                vectors.append(output.descriptor.float().cpu().numpy())
                norms.append(output.norm.float().cpu().numpy())
            bar.update(len(batch_ids) + len(bad))
        dim = int(model.config.descriptor_dim)
        shard = Descriptors(
            ids=np.asarray(ids, dtype=str),
            vectors=np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32),
            norms=np.concatenate(norms) if norms else np.zeros((0,), np.float32),
        )
        final = plan.shard_path(out_dir, index)
        partial = final.with_name(final.name + ".partial")
        save_descriptors(partial, shard)
        os.replace(partial, final)
        report.shards_done += 1
        report.images_extracted += len(ids)
    bar.close()
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return report


def load_extracted(out_dir: str | Path) -> Descriptors:
    """Merge the finished shards of an extraction; refuses an incomplete one, naming a gap."""
    out_dir = Path(out_dir)
    settings_path = out_dir / SETTINGS_FILE
    if not settings_path.is_file():
        raise InputError("not an extraction folder (no extract.json)", path=out_dir)
    settings = json.loads(settings_path.read_text())
    plan_shards = settings["num_shards"]
    paths = [
        out_dir / SHARD_DIR / f"shard-{i:05d}-of-{plan_shards:05d}.safetensors"
        for i in range(plan_shards)
    ]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise InputError(
            f"extraction incomplete: {len(missing)} of {plan_shards} shards missing "
            f"(first: {missing[0]}); rerun the same command to resume",
            path=out_dir,
        )
    return concat_descriptors([load_descriptors(p) for p in paths])
