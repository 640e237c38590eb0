"""`hf-asl push MODEL_DIR REPO_ID`: upload a trained model, its card and its leaderboard results.

Uploads every file of MODEL_DIR (the `save_pretrained` files, the image processor, the
training summary) except training checkpoints, in one commit. The model card (README.md) is
written first when MODEL_DIR has none; `--rewrite-card` refreshes one that hf-asl wrote (a card
you edited, without hf-asl's first line, is never overwritten). `--results DIR` (a folder from
`hf-asl submit`) adds its `.eval_results/*.yaml` files, which show the scores on the model page
and on the benchmark's leaderboard, and puts its metrics in the card it writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a trained model + model card + eval results to the Hub",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="folder written by `hf-asl train`")
    parser.add_argument("repo_id", metavar="REPO_ID", help="model repo, e.g. your-user/asl-mobilenet")
    parser.add_argument("--results", type=Path, metavar="DIR", help="folder written by `hf-asl submit`")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--rewrite-card", action="store_true",
                        help="rewrite a README.md that hf-asl wrote earlier (for this repo id and these results)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..hub import check_repo_id, push_files
    from ..model_card import CARD_FILE, is_generated_card, write_model_card
    from ..submission import (
        EVAL_RESULTS_DIR,
        read_eval_results,
        read_submission_metrics,
    )

    model_dir: Path = args.model_dir
    check_repo_id(args.repo_id)
    if not (model_dir / "config.json").is_file():
        raise InputError("not a saved model folder (no config.json)", path=model_dir)
    if not any(p for pattern in WEIGHT_PATTERNS for p in model_dir.glob(pattern)):
        raise InputError("no weights here (model.safetensors): save the model with save_pretrained", path=model_dir)
    if not (model_dir / "preprocessor_config.json").is_file():
        # The card tells users to load it with AutoImageProcessor.from_pretrained(REPO_ID).
        raise InputError("no preprocessor_config.json: save the image processor too (processor.save_pretrained)",
                         path=model_dir)

    results: dict[str, Path] = {}
    context, metrics = {}, None
    if args.results is not None:
        context, metrics = read_submission_metrics(args.results)
        for path in sorted((args.results / EVAL_RESULTS_DIR).glob("*.yaml")):
            read_eval_results(path)  # a malformed file fails here, not after the upload
            results[f"{EVAL_RESULTS_DIR}/{path.name}"] = path
        if not results:
            raise InputError(f"no {EVAL_RESULTS_DIR}/*.yaml here (run `hf-asl submit` first)", path=args.results)

    card = model_dir / CARD_FILE
    if not card.is_file() or (args.rewrite_card and is_generated_card(card)):
        write_model_card(
            model_dir, repo_id=args.repo_id,
            metrics=None if metrics is None else {context.get("method") or "submitted": metrics},
            training_summary=None, dataset_id=context.get("dataset_id"), limits=None,
            dataset_name=context.get("dataset_name"),
        )
        print(f"wrote {card}")
    elif args.rewrite_card:
        print(f"kept {card}: it was not written by hf-asl (or its first line was removed)")

    files = {path.relative_to(model_dir).as_posix(): path for path in _model_files(model_dir)}
    files.update(results)
    url = push_files(files, args.repo_id, private=args.private,
                     commit_message="Upload ASL model with hf-asl")
    print(f"pushed {len(files)} file(s): {url}")
    return 0


def _model_files(model_dir: Path) -> list[Path]:
    """Files to upload: everything but training checkpoints (optimizer state) and hidden files,
    except a ``.eval_results`` folder of the model's own."""
    from ..submission import EVAL_RESULTS_DIR
    from ..training import CHECKPOINT_DIR

    files = []
    for path in sorted(model_dir.rglob("*")):
        parts = path.relative_to(model_dir).parts
        if not path.is_file() or parts[0] == CHECKPOINT_DIR:
            continue
        if any(part.startswith(".") for part in parts) and parts[0] != EVAL_RESULTS_DIR:
            continue
        files.append(path)
    return files
