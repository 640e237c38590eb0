"""PNG grids of (query, reference) pairs with captions, for reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

THUMB = 160
CAPTION_LINES = 3
LINE_HEIGHT = 12
MARGIN = 6


@dataclass(frozen=True)
class PairPanel:
    query: Image.Image
    reference: Image.Image
    caption: list[str]


def _thumb(image: Image.Image) -> Image.Image:
    image = image.convert("RGB")
    image.thumbnail((THUMB, THUMB))
    canvas = Image.new("RGB", (THUMB, THUMB), (235, 235, 235))
    canvas.paste(image, ((THUMB - image.width) // 2, (THUMB - image.height) // 2))
    return canvas


def save_pair_grid(panels: list[PairPanel], path: str | Path, *, title: str, columns: int = 3) -> Path:
    """One PNG: each panel shows the query beside the reference, captions underneath.

    An empty ``panels`` list still writes the image, saying there was nothing to show, so a
    report never links a missing file.
    """
    font = ImageFont.load_default()
    panel_w = 2 * THUMB + 3 * MARGIN
    panel_h = THUMB + 2 * MARGIN + CAPTION_LINES * LINE_HEIGHT
    rows = max(1, -(-len(panels) // columns))
    header = 2 * LINE_HEIGHT + MARGIN
    grid = Image.new("RGB", (columns * panel_w, header + rows * panel_h), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((MARGIN, MARGIN), title if panels else f"{title}: none", fill="black", font=font)
    for index, panel in enumerate(panels):
        x = (index % columns) * panel_w + MARGIN
        y = header + (index // columns) * panel_h
        grid.paste(_thumb(panel.query), (x, y))
        grid.paste(_thumb(panel.reference), (x + THUMB + MARGIN, y))
        for line_no, text in enumerate(panel.caption[:CAPTION_LINES]):
            draw.text((x, y + THUMB + 2 + line_no * LINE_HEIGHT), text, fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path
