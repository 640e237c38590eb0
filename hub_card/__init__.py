"""Templates of the cards hf-asl publishes on the Hub (model, dataset, metric)."""

from pathlib import Path

CARD_DIR = Path(__file__).resolve().parent


def template_path(name: str) -> Path:
    """Path of a card template shipped in this folder, e.g. ``template_path("dataset_card.md")``."""
    path = CARD_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no card template {name!r} in {CARD_DIR}")
    return path
