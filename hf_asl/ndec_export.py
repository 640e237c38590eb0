"""Export NDEC (or a mini-NDEC build) as Hub-ready parquet shards plus a dataset card.

Layout written (what ``load_dataset(OUT, config, split=...)`` and the Hub read)::

    OUT/README.md                               card: YAML (configs:, dataset_info…) + text
    OUT/<config>/<split>-00000-of-0000N.parquet image bytes embedded, HF schema metadata
    OUT/manifest.json                           mini-NDEC only: how the build was made

Rows go straight from the release files to pyarrow in batches (no Arrow cache, no decoding),
which is several times faster than ``Dataset.from_generator(...).to_parquet``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError

logger = logging.getLogger(__name__)

DEFAULT_MAX_SHARD_SIZE = "500MB"
# Row groups of image configs stay small so that the Hub viewer and random access read little.
IMAGE_ROWS_PER_GROUP = 100
TABLE_ROWS_PER_GROUP = 100_000
MAX_BYTES_PER_GROUP = 64 << 20
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
)


@dataclass
class ExportedConfig:
    """What was written for one config."""

    config: str
    split: str
    num_examples: int
    num_bytes: int
    files: list[str]


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` value for ``num_rows`` rows."""
    for limit, name in SIZE_CATEGORIES:
        if num_rows < limit:
            return name
    return "n>100M"


def _parse_size(size: int | str) -> int:
    from datasets.utils.py_utils import convert_file_size_to_int

    try:
        value = convert_file_size_to_int(size)
    except ValueError as err:
        raise InputError(f"bad shard size {size!r} (e.g. 500MB, 2GB)") from err
    if value <= 0:
        raise InputError(f"shard size must be positive, got {size!r}")
    return value


class ShardedParquetWriter:
    """Writes rows of one config/split to ``<split>-SSSSS-of-NNNNN.parquet`` shards in batches.

    Shards are written under temporary names and renamed (replacing any earlier export of the
    same split) only by :meth:`close`, so an interrupted export never leaves a half split behind
    that ``load_dataset`` would pick up.
    """

    def __init__(self, directory: str | Path, split: str, features, *, max_shard_size: int, rows_per_group: int):
        import pyarrow as pa
        from datasets.arrow_writer import get_parquet_column_options
        from datasets.config import DEFAULT_CDC_OPTIONS

        self.directory = Path(directory)
        self.split = split
        self.features = features
        # arrow_schema carries the "huggingface" metadata that keeps Image columns typed.
        self.schema: pa.Schema = features.arrow_schema
        self.max_shard_size = max_shard_size
        self.rows_per_group = rows_per_group
        # Same writer options as `datasets`: uncompressed PLAIN image bytes and content-defined
        # chunking, so that the Hub's Xet storage deduplicates re-uploads.
        self._options = {
            **get_parquet_column_options(features, self.schema),
            "use_content_defined_chunking": DEFAULT_CDC_OPTIONS,
            "write_page_index": True,
        }
        self._rows: list[dict[str, Any]] = []
        self._row_bytes = 0
        self._writer = None
        self._shard_bytes = 0
        self._partials: list[Path] = []
        self.num_examples = 0
        self.num_bytes = 0
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        self._row_bytes += sum(len(v["bytes"]) for v in row.values() if isinstance(v, dict) and v.get("bytes"))
        # A row group cannot span two shards: keep groups below the shard size too.
        if len(self._rows) >= self.rows_per_group or self._row_bytes >= min(MAX_BYTES_PER_GROUP, self.max_shard_size):
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=self.schema)
        if self._writer is not None and self._shard_bytes + table.nbytes > self.max_shard_size:
            self._writer.close()
            self._writer = None
        if self._writer is None:
            path = self.directory / f".{self.split}-{len(self._partials):05d}.parquet.partial"
            self._partials.append(path)
            self._writer = pq.ParquetWriter(path, self.schema, **self._options)
            self._shard_bytes = 0
        self._writer.write_table(table, row_group_size=len(self._rows))
        self._shard_bytes += table.nbytes
        self.num_bytes += table.nbytes
        self.num_examples += len(self._rows)
        self._rows, self._row_bytes = [], 0

    def close(self) -> list[str]:
        """Finish the last shard and give the shards their final names; returns them."""
        self._flush()
        if self._writer is None:  # no rows at all: an empty shard keeps the split loadable
            import pyarrow.parquet as pq

            path = self.directory / f".{self.split}-00000.parquet.partial"
            self._partials.append(path)
            self._writer = pq.ParquetWriter(path, self.schema, **self._options)
        self._writer.close()
        self._writer = None
        for old in self.directory.glob(f"{self.split}-*.parquet"):
            old.unlink()
        total = len(self._partials)
        names = []
        for index, partial in enumerate(self._partials):
            name = f"{self.split}-{index:05d}-of-{total:05d}.parquet"
            partial.rename(self.directory / name)
            names.append(name)
        return names

    def abort(self) -> None:
        """Drop the shards written so far (earlier exports of this split stay untouched)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for partial in self._partials:
            partial.unlink(missing_ok=True)


def _rows_per_group(features) -> int:
    import datasets

    has_images = any(isinstance(f, datasets.Image) for f in features.values())
    return IMAGE_ROWS_PER_GROUP if has_images else TABLE_ROWS_PER_GROUP


def write_config(
    rows: Iterable[dict[str, Any]],
    out_dir: str | Path,
    config: str,
    split: str,
    features,
    *,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
) -> ExportedConfig:
    """Write ``rows`` (raw examples: images as ``{"bytes", "path"}``) as ``out_dir/config/split-*``."""
    writer = ShardedParquetWriter(
        Path(out_dir) / config,
        split,
        features,
        max_shard_size=_parse_size(max_shard_size),
        rows_per_group=_rows_per_group(features),
    )
    try:
        for row in rows:
            writer.write(row)
        files = writer.close()
    except BaseException:
        writer.abort()
        raise
    return ExportedConfig(config, split, writer.num_examples, writer.num_bytes, [f"{config}/{f}" for f in files])


def export_ndec(
    src: str | Path,
    out: str | Path,
    *,
    configs: Sequence[str] | None = None,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    skip_corrupt: bool = False,
    progress: bool = True,
    **sources: Any,
) -> list[ExportedConfig]:
    """Export the configs of an NDEC release / mini-NDEC root ``src`` to ``out`` and write the card.

    ``configs`` defaults to every config whose files are present in ``src``. Configs already
    exported to ``out`` by an earlier run stay and are described by the card too.
    """
    from tqdm.auto import tqdm

    from .ndec import NDEC, SPLITS, available_configs

    src, out = str(src), Path(out)
    if not os.path.isdir(src):
        raise InputError("not a folder (expected an NDEC release or mini-NDEC root)", path=src)
    max_shard_size = _parse_size(max_shard_size)
    if configs is None:
        configs = available_configs(src, **sources)
        if not configs:
            raise InputError("no NDEC file found here (e.g. query_images_h5.tar, public_ground_truth_h5.csv)", path=src)
    unknown = [c for c in configs if c not in SPLITS]
    if unknown:
        raise InputError(f"unknown config(s) {unknown} (expected some of {', '.join(SPLITS)})")
    out.mkdir(parents=True, exist_ok=True)
    manifest = Path(src) / "manifest.json"
    if manifest.is_file():
        shutil.copyfile(manifest, out / "manifest.json")
    config_kwargs = {k: v for k, v in sources.items() if v is not None}
    if skip_corrupt:
        config_kwargs["skip_corrupt"] = True
    exported = []
    # The builder is only used to read the sources: its cache folder stays empty and is dropped.
    with tempfile.TemporaryDirectory(prefix="hf_asl_ndec_") as cache_dir:
        for config in configs:
            builder = NDEC(config_name=config, data_dir=src, cache_dir=cache_dir, **config_kwargs)
            rows = tqdm(builder.iter_examples(), desc=f"export {config}", unit=" rows", disable=not progress)
            result = write_config(rows, out, config, SPLITS[config], builder.info.features, max_shard_size=max_shard_size)
            if builder.skipped_images:
                logger.warning("%s: skipped %d corrupt image(s)", config, len(builder.skipped_images))
            logger.info("%s: %d rows in %d shard(s)", config, result.num_examples, len(result.files))
            exported.append(result)
    write_card(out)
    return exported


# --- dataset card -------------------------------------------------------------------------------


def _exported_configs(out: Path) -> dict[str, dict[str, Any]]:
    """Config -> {split, files, num_examples, num_bytes, features} read from the parquet footers."""
    import datasets
    import pyarrow.parquet as pq

    from .ndec import SPLITS

    found: dict[str, dict[str, Any]] = {}
    for config, split in SPLITS.items():
        files = sorted((out / config).glob(f"{split}-*.parquet"))
        if not files:
            continue
        metadata = [pq.read_metadata(f) for f in files]
        schema = pq.read_schema(files[0])
        found[config] = {
            "split": split,
            "files": files,
            "num_examples": sum(m.num_rows for m in metadata),
            "num_bytes": sum(m.row_group(i).total_byte_size for m in metadata for i in range(m.num_row_groups)),
            "features": datasets.Features.from_arrow_schema(schema),
        }
    return found


def _column_counts(files: Sequence[Path], column: str) -> Counter:
    import pyarrow.parquet as pq

    counts: Counter = Counter()
    for file in files:
        counts.update(v for v in pq.read_table(file, columns=[column]).column(column).to_pylist() if v)
    return counts


def _photo_sources(manifest: dict[str, Any]) -> list[str]:
    """One line per photo package of a mini-NDEC manifest: package, version, licences, count."""
    lines = []
    for key in ("photo_sources", "sources", "photos"):
        records = manifest.get(key)
        if isinstance(records, list) and records and isinstance(records[0], dict):
            break
    else:
        return ["see manifest.json"]
    for record in records:
        licences = record.get("licences") or record.get("licence") or record.get("license") or "unknown licence"
        if isinstance(licences, list):
            licences = "; ".join(licences)
        version = f" {record['version']}" if record.get("version") else ""
        count = f" ({record['photos']} photos in the generator's pool)" if record.get("photos") is not None else ""
        lines.append(f"`{record.get('package', '?')}`{version}: {licences}{count}")
    return lines


def _generator(manifest: dict[str, Any]) -> str:
    generator = manifest.get("generator")
    if not isinstance(generator, dict):
        return str(generator or "?")
    return f"{generator.get('package', 'hf-asl')} {generator.get('version', '?')}, format {generator.get('format_version', '?')}"


def write_card(out: str | Path, *, repo_id: str | None = None) -> Path:
    """Write ``out/README.md`` describing every config exported to ``out``; returns its path."""
    import datasets
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    from hub_card import template_path

    from .ndec import CITATION, DISC21_PAGE, HF_MIRROR, HOMEPAGE, LICENSE

    out = Path(out)
    found = _exported_configs(out)
    if not found:
        raise InputError("no exported config (expected <config>/<split>-*.parquet)", path=out)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else None
    is_mini = manifest is not None
    total_rows = sum(c["num_examples"] for c in found.values())

    card_data = DatasetCardData(
        pretty_name="mini-NDEC" if is_mini else "NDEC (Negative Distractors for Edited Copy)",
        license="other" if is_mini else LICENSE,
        task_categories=["image-feature-extraction"],
        size_categories=[size_category(total_rows)],
        tags=["image-copy-detection", "near-duplicate-detection", "hard-negatives", "disc21", "ndec"],
    )
    if is_mini:
        card_data["license_name"] = "mini-ndec-photo-licences"
        card_data["license_details"] = "Photos under their packages' licences (see the card); generated edits Apache-2.0."
    else:
        card_data["source_datasets"] = ["DISC21"]
    MetadataConfigs(
        {
            config: {
                "data_files": [{"split": info["split"], "path": f"{config}/{info['split']}-*.parquet"}],
                **({"default": True} if config == "queries" else {}),
            }
            for config, info in found.items()
        }
    ).to_dataset_card_data(card_data)
    DatasetInfosDict(
        {
            config: datasets.DatasetInfo(
                features=info["features"],
                splits=datasets.SplitDict.from_split_dict(
                    [{"name": info["split"], "num_bytes": info["num_bytes"], "num_examples": info["num_examples"]}]
                ),
                dataset_size=info["num_bytes"],
            )
            for config, info in found.items()
        }
    ).to_dataset_card_data(card_data)

    kind_rows = sorted(_column_counts(found["ground_truth"]["files"], "kind").items()) if "ground_truth" in found else []
    pair_rows = sorted(_column_counts(found["negative_pairs"]["files"], "kind").items()) if "negative_pairs" in found else []
    config_rows = [
        {
            "config": config,
            "split": info["split"],
            "rows": f"{info['num_examples']:,}",
            "columns": ", ".join(f"`{name}`" for name in info["features"]),
        }
        for config, info in found.items()
    ]
    card = DatasetCard.from_template(
        card_data,
        template_path=str(template_path("dataset_card.md")),
        is_mini=is_mini,
        generator=_generator(manifest) if is_mini else "",
        seed=(manifest or {}).get("seed", "?"),
        photo_sources=_photo_sources(manifest) if is_mini else [],
        kind_rows=kind_rows,
        pair_rows=pair_rows,
        config_rows=config_rows,
        has_views="train_views" in found,
        repo_id=repo_id or ("<user>/mini-ndec" if is_mini else "<user>/ndec"),
        citation=CITATION,
        homepage=HOMEPAGE,
        hf_mirror=HF_MIRROR,
        disc21_page=DISC21_PAGE,
    )
    path = out / "README.md"
    card.save(path)
    return path
