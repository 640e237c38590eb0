"""NDEC (Negative Distractors for Edited Copy) as a `datasets` builder reading the raw release.

`datasets` no longer runs loading scripts, so the builder lives in this package and is used
directly (or through :func:`load_ndec`)::

    from hf_asl.ndec import NDEC, load_ndec
    queries = load_ndec("queries", data_dir="path/to/release")          # split "test"
    pairs = load_ndec("negative_pairs", data_dir="...", streaming=True)  # split "train"

Every source can be overridden (``queries=``, ``negative_pairs=``…, see :class:`NDECConfig`);
without ``data_dir`` the NDEC files default to their public hosting (the DISC21 references and
training images must be given: Meta distributes them behind a licence agreement).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from os import PathLike
from typing import Any, ClassVar

import datasets
from datasets.builder import Key

from . import ndec_files
from .archives import resolve_parts
from .errors import HfAslError, InputError
from .version import __version__

logger = logging.getLogger(__name__)

HOMEPAGE = "https://github.com/WangWenhao0716/ASL"
HF_MIRROR = "https://huggingface.co/datasets/WenhaoWang/ASL"
GROUND_TRUTH_DRIVE_ID = "1ZrPNoa3mTAxl6lViVjNtN90i20VSuzJs"
DISC21_PAGE = "https://ai.meta.com/datasets/disc21-dataset/"
LICENSE = "cc-by-nc-4.0"

# Where the public NDEC files live (README of the NDEC repository). The DISC21 references and
# training images have no default: they need accepting Meta's licence on the DISC21 page.
DEFAULT_SOURCES: dict[str, str | list[str]] = {
    "queries": f"{HF_MIRROR}/resolve/main/query_images_h5.tar",
    "negative_pairs": [f"{HF_MIRROR}/resolve/main/negative_pair.tar.{s}" for s in ("aa", "ab", "ac")],
    "ground_truth": f"https://drive.google.com/uc?export=download&id={GROUND_TRUTH_DRIVE_ID}",
}

CITATION = """\
@inproceedings{wang2023benchmark,
  title={A Benchmark and Asymmetrical-Similarity Learning for Practical Image Copy Detection},
  author={Wang, Wenhao and Sun, Yifan and Yang, Yi},
  booktitle={Proceedings of the AAAI Conference on Artificial Intelligence},
  volume={37},
  number={3},
  pages={2672--2679},
  year={2023}
}
"""

# Each config has one split: the test side (queries, references, ground truth) or the train side.
SPLITS: dict[str, str] = {
    "queries": "test",
    "references": "test",
    "ground_truth": "test",
    "negative_pairs": "train",
    "train": "train",
    "train_views": "train",
}

_IMAGE = {"image_id": datasets.Value("string"), "image": datasets.Image()}
FEATURES: dict[str, datasets.Features] = {
    "queries": datasets.Features(_IMAGE),
    "references": datasets.Features(_IMAGE),
    "train": datasets.Features(_IMAGE),
    "ground_truth": datasets.Features(
        {
            "query_id": datasets.Value("string"),
            "reference_id": datasets.Value("string"),
            "kind": datasets.Value("string"),
        }
    ),
    "negative_pairs": datasets.Features(
        {
            "pair_id": datasets.Value("string"),
            "image_a": datasets.Image(),
            "image_b": datasets.Image(),
            "kind": datasets.Value("string"),
            "wider": datasets.Value("string"),
        }
    ),
    "train_views": datasets.Features(
        {
            "image_id": datasets.Value("string"),
            "train_id": datasets.Value("string"),
            "image": datasets.Image(),
            "content_fraction": datasets.Value("float64"),
        }
    ),
}

DESCRIPTIONS: dict[str, str] = {
    "queries": "Test query images (Q + 5 digits): edited copies of references and hard negatives.",
    "references": "DISC21 reference images (R + 6 digits).",
    "ground_truth": "One row per query: its reference, or none (hard negative / distractor), and its kind when known.",
    "negative_pairs": "Hard-negative training pairs: two images that are not copies of each other.",
    "train": "DISC21-style training images.",
    "train_views": "Pre-made edited views of training images (mini-NDEC only).",
}

# Sources each config reads; the CSV ones are fetched as files, the others are folders or tars.
_CONFIG_SOURCES: dict[str, tuple[str, ...]] = {
    "queries": ("queries",),
    "references": ("references",),
    "ground_truth": ("ground_truth", "kinds"),
    "negative_pairs": ("negative_pairs", "negative_pairs_csv"),
    "train": ("train",),
    "train_views": ("train_views", "train_views_csv", "train"),
}
_CSV_SOURCES = {"ground_truth", "kinds", "negative_pairs_csv", "train_views_csv"}
_OPTIONAL_SOURCES = {"kinds", "negative_pairs_csv"}


@dataclass
class NDECConfig(datasets.BuilderConfig):
    """One NDEC config plus where its files are.

    Each source is a local path or URL: a folder or a tar for images (``negative_pairs`` also
    takes the first part ``negative_pair.tar.aa``, a glob or a list of parts), a CSV file for the
    tables. ``data_dir`` (an NDEC release or mini-NDEC root) fills every source not given, using
    the release's file names. ``skip_corrupt`` drops unreadable images (counted and logged)
    instead of failing.
    """

    queries: str | None = None
    references: str | None = None
    ground_truth: str | None = None
    kinds: str | None = None
    negative_pairs: str | list[str] | None = None
    negative_pairs_csv: str | None = None
    train: str | None = None
    train_views: str | None = None
    train_views_csv: str | None = None
    skip_corrupt: bool = False


class NDEC(datasets.GeneratorBasedBuilder):
    """The NDEC benchmark (Wang, Sun & Yang, AAAI 2023) read from its release files."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = NDECConfig
    BUILDER_CONFIGS: ClassVar[list[NDECConfig]] = [
        NDECConfig(name=name, version=datasets.Version("1.0.0"), description=DESCRIPTIONS[name]) for name in SPLITS
    ]
    DEFAULT_CONFIG_NAME = "queries"
    # Image rows are large: small Arrow batches keep memory flat on 100k-pair configs.
    DEFAULT_WRITER_BATCH_SIZE = 100

    def __init__(self, *args: Any, hash: str | None = None, **kwargs: Any):
        # The cache path carries no code hash: tie it to the package version so that a changed
        # builder never reuses a stale cache.
        super().__init__(*args, hash=hash or __version__, **kwargs)
        self._skipped: list[str] | None = None

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=DESCRIPTIONS[self.config.name],
            features=FEATURES[self.config.name],
            homepage=HOMEPAGE,
            license=LICENSE,
            citation=CITATION,
        )

    # --- sources ------------------------------------------------------------------------------

    def _source_value(self, key: str, download_config) -> str | list[str] | None:
        value = getattr(self.config, key)
        if value is not None:
            return value
        if self.config.data_dir is not None:
            return ndec_files.find_in_release(self.config.data_dir, key, download_config)
        return DEFAULT_SOURCES.get(key)

    def _missing_source(self, key: str) -> InputError:
        if self.config.data_dir is not None:
            names = " or ".join(ndec_files.RELEASE_NAMES[key])
            return InputError(f"no {names} here (needed by the {self.config.name!r} config; or pass {key}=...)", path=self.config.data_dir)
        where = f"; DISC21 images come from {DISC21_PAGE}" if key in ("references", "train") else ""
        return InputError(f"the {self.config.name!r} config needs {key}=<folder or tar> or data_dir=<release root>{where}")

    def _fetch(self, dl_manager, path: str, key: str) -> str:
        """A local path for ``path``: URLs are downloaded (streaming: kept as URLs)."""
        if not ndec_files.is_url(path):
            if not ndec_files.path_exists(path):
                raise InputError(f"no such file or folder (source {key!r})", path=path)
            return path
        try:
            return dl_manager.download(path)
        except Exception as err:  # network, offline mode, HTTP status: all mean "cannot fetch"
            raise InputError(
                f"cannot fetch the {key!r} source ({type(err).__name__}: {err}); download it and pass "
                f"{key}=<local path> or data_dir=<release root>",
                path=path,
            ) from err

    def _resolve(self, dl_manager, key: str, *, fetch: bool = True) -> tuple[Any, str | None]:
        """``(source, display_name)``: a path for CSVs, a folder path or a tuple of tar parts."""
        download_config = dl_manager.download_config
        value = self._source_value(key, download_config)
        if value is None:
            if key in _OPTIONAL_SOURCES or not fetch:
                return None, None
            raise self._missing_source(key)
        name = value if isinstance(value, str) else str(value[0])
        if key in _CSV_SOURCES:
            return (self._fetch(dl_manager, value, key) if fetch else value), name
        if isinstance(value, str) and ndec_files.path_isdir(value, download_config):
            return value, name
        parts = resolve_parts(value, exists=lambda p: ndec_files.path_exists(p, download_config))
        if fetch:
            parts = [self._fetch(dl_manager, p, key) for p in parts]
        return tuple(parts), name

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        name = self.config.name
        gen_kwargs: dict[str, Any] = {}
        for key in _CONFIG_SOURCES[name]:
            # train_views only lists the training ids: never download the training images for that.
            fetch = not (name == "train_views" and key == "train")
            gen_kwargs[key], gen_kwargs[f"{key}_name"] = self._resolve(dl_manager, key, fetch=fetch)
        if name == "ground_truth":
            for key in ("queries", "references"):
                gen_kwargs[key], _ = self._resolve(dl_manager, key, fetch=False)
        gen_kwargs["download_config"] = dl_manager.download_config
        return [datasets.SplitGenerator(name=SPLITS[name], gen_kwargs=gen_kwargs)]

    # --- examples -----------------------------------------------------------------------------

    def _generate_examples(self, **kwargs: Any):
        generate = {
            "queries": self._generate_images,
            "references": self._generate_images,
            "train": self._generate_images,
            "ground_truth": self._generate_ground_truth,
            "negative_pairs": self._generate_pairs,
            "train_views": self._generate_views,
        }[self.config.name]
        self._skipped = []
        yield from generate(**kwargs)
        if self._skipped:
            logger.warning(
                "NDEC %s: skipped %d corrupt image(s): %s%s",
                self.config.name,
                len(self._skipped),
                ", ".join(self._skipped[:10]),
                "…" if len(self._skipped) > 10 else "",
            )

    def _usable(self, image_id: str, data: bytes, where: str) -> bool:
        """False for a corrupt image skipped under ``skip_corrupt``; raises otherwise."""
        problem = ndec_files.image_problem(data)
        if problem is None:
            return True
        if self.config.skip_corrupt:
            self._skipped.append(image_id)
            return False
        raise InputError(f"corrupt image {image_id!r}: {problem} (skip_corrupt=True drops such images)", path=where)

    def _generate_images(self, download_config=None, **sources: Any):
        (key,) = _CONFIG_SOURCES[self.config.name]
        source, where = sources[key], sources[f"{key}_name"]
        files = ndec_files.iter_image_files(source, name=where, download_config=download_config)
        for index, (image_id, file_name, data) in enumerate(files):
            if self._usable(image_id, data, where):
                yield Key(0, index), {"image_id": image_id, "image": {"bytes": data, "path": file_name}}

    def _generate_ground_truth(
        self, ground_truth, ground_truth_name, kinds, kinds_name, queries, references, download_config=None
    ):
        query_ids = ndec_files.list_image_ids(queries)
        reference_ids = ndec_files.list_image_ids(references)
        for what, ids in (("queries", query_ids), ("references", reference_ids)):
            if ids is None:
                logger.info("NDEC ground_truth: %s not available locally; their ids are not checked", what)
        rows = ndec_files.read_ground_truth(
            ground_truth,
            kinds_path=kinds,
            query_ids=query_ids,
            reference_ids=reference_ids,
            download_config=download_config,
        )
        for index, row in enumerate(rows):
            yield Key(0, index), {"query_id": row.query_id, "reference_id": row.reference_id, "kind": row.kind}

    def _generate_pairs(
        self, negative_pairs, negative_pairs_name, negative_pairs_csv, negative_pairs_csv_name, download_config=None
    ):
        where = negative_pairs_name
        listed = ndec_files.read_pairs(negative_pairs_csv, download_config) if negative_pairs_csv else None
        pending: dict[str, dict[str, bytes]] = {}
        done: set[str] = set()
        files = ndec_files.iter_pair_files(negative_pairs, name=where, download_config=download_config)
        index = 0
        for pair_id, file_name, data in files:
            if pair_id in done:
                raise InputError(f"pair {pair_id!r} holds more than two images ({file_name!r})", path=where)
            row = listed.get(pair_id) if listed is not None else None
            if listed is not None and row is None:
                raise InputError(f"pair folder {pair_id!r} is not listed in {negative_pairs_csv_name}", path=where)
            if row is not None and file_name not in (row.image_a, row.image_b):
                raise InputError(
                    f"pair {pair_id!r}: image {file_name!r} is not named on line {row.line} of {negative_pairs_csv_name}",
                    path=where,
                )
            group = pending.setdefault(pair_id, {})
            group[file_name] = data
            if len(group) < 2:
                continue
            del pending[pair_id]
            done.add(pair_id)
            names = (row.image_a, row.image_b) if row is not None else tuple(sorted(group))
            usable = [self._usable(f"{pair_id}/{n}", group[n], where) for n in names]
            if all(usable):
                yield Key(0, index), {
                    "pair_id": pair_id,
                    "image_a": {"bytes": group[names[0]], "path": names[0]},
                    "image_b": {"bytes": group[names[1]], "path": names[1]},
                    "kind": row.kind if row is not None else None,
                    "wider": row.wider if row is not None else None,
                }
            index += 1
        if pending:
            pair_id = next(iter(pending))
            raise InputError(f"pair {pair_id!r} has one image only (a pair needs two)", path=where)
        if listed is not None and len(done) < len(listed):
            pair_id = next(p for p in listed if p not in done)
            raise InputError(
                f"pair {pair_id!r} (line {listed[pair_id].line} of {negative_pairs_csv_name}) has no images",
                path=where,
            )

    def _generate_views(
        self,
        train_views,
        train_views_name,
        train_views_csv,
        train_views_csv_name,
        train,
        train_name,
        download_config=None,
    ):
        views = ndec_files.read_train_views(
            train_views_csv, ndec_files.list_image_ids(train), download_config=download_config
        )
        seen: set[str] = set()
        files = ndec_files.iter_image_files(train_views, name=train_views_name, download_config=download_config)
        for index, (image_id, file_name, data) in enumerate(files):
            row = views.get(image_id)
            if row is None:
                raise InputError(f"view image {image_id!r} is not listed in {train_views_csv_name}", path=train_views_name)
            seen.add(image_id)
            if self._usable(image_id, data, train_views_name):
                yield Key(0, index), {
                    "image_id": image_id,
                    "train_id": row.train_id,
                    "image": {"bytes": data, "path": file_name},
                    "content_fraction": row.content_fraction,
                }
        missing = [v for v in views if v not in seen]
        if missing:
            raise InputError(
                f"view {missing[0]!r} (line {views[missing[0]].line}) has no image in {train_views_name}",
                path=train_views_csv_name,
            )

    # --- preparation ----------------------------------------------------------------------------

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
        if self.config.skip_corrupt:
            ndec_files.write_skipped(self._fs, self._output_dir, self._skipped or [])

    def download_and_prepare(self, *args: Any, **kwargs: Any) -> None:
        """As `datasets`' method, but bad input surfaces as the :class:`InputError` naming it."""
        try:
            super().download_and_prepare(*args, **kwargs)
        except datasets.exceptions.DatasetGenerationError as err:
            if isinstance(err.__cause__, HfAslError):
                raise err.__cause__ from None
            raise

    @property
    def skipped_images(self) -> list[str]:
        """Ids of the corrupt images dropped under ``skip_corrupt`` (``pair_id/file`` for pairs).

        Set by the last generation (prepared or streamed); read back from the cache otherwise.
        """
        if self._skipped is None:
            self._skipped = ndec_files.read_skipped(self._cache_dir) or []
        return list(self._skipped)

    def iter_examples(self):
        """The raw examples of this config's split (image bytes undecoded), read from the sources.

        What the exporter writes: no Arrow cache is made and nothing is decoded.
        """
        from datasets.download.streaming_download_manager import (
            StreamingDownloadManager,
        )

        dl_manager = StreamingDownloadManager(
            base_path=self.base_path,
            download_config=datasets.DownloadConfig(token=self.token, storage_options=self.storage_options),
            dataset_name=self.dataset_name,
            data_dir=self.config.data_dir,
        )
        (generator,) = self._split_generators(dl_manager)
        for _, example in self._generate_examples(**generator.gen_kwargs):
            yield example


def available_configs(data_dir: str, **sources: Any) -> list[str]:
    """The configs whose required files are in ``data_dir`` (or given in ``sources``)."""
    found = []
    for name, keys in _CONFIG_SOURCES.items():
        required = [k for k in keys if k not in _OPTIONAL_SOURCES and not (name == "train_views" and k == "train")]
        if all(sources.get(k) is not None or ndec_files.find_in_release(data_dir, k) for k in required):
            found.append(name)
    return found


def _as_source(value: Any) -> str | list[str]:
    """Paths (``pathlib.Path`` included) as the strings the config stores and hashes."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value)


def load_ndec(
    config_name: str,
    *,
    data_dir: str | PathLike[str] | None = None,
    split: str | None = None,
    streaming: bool = False,
    cache_dir: str | PathLike[str] | None = None,
    skip_corrupt: bool = False,
    **sources: str | PathLike[str] | list[str] | None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Load one NDEC config: prepare it in the cache (or stream it) and return its split.

    ``split`` defaults to the config's only split (``test`` for queries, references and
    ground_truth; ``train`` for negative_pairs, train and train_views). ``sources`` override
    single files (see :class:`NDECConfig`). Bad input raises :class:`InputError`.
    """
    if config_name not in SPLITS:
        raise InputError(f"unknown NDEC config {config_name!r} (expected one of {', '.join(SPLITS)})")
    unknown = set(sources) - set(NDECConfig.__dataclass_fields__) - {"data_files"}
    if unknown:
        raise InputError(f"unknown NDEC source(s) {sorted(unknown)}")
    config_kwargs = {k: _as_source(v) for k, v in sources.items() if v is not None}
    if skip_corrupt:
        config_kwargs["skip_corrupt"] = True
    builder = NDEC(
        config_name=config_name,
        data_dir=None if data_dir is None else str(data_dir),
        cache_dir=None if cache_dir is None else str(cache_dir),
        **config_kwargs,
    )
    split = split or SPLITS[config_name]
    if streaming:
        return builder.as_streaming_dataset(split=split)
    builder.download_and_prepare()
    if builder.skipped_images:
        logger.warning("NDEC %s: %d corrupt image(s) were skipped", config_name, len(builder.skipped_images))
    return builder.as_dataset(split=split)
