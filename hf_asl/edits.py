"""Copy edits written with PIL and numpy, each tracking how much of the original stays visible.

An edit chain turns an image into a *copy* of it (crop, rotation, overlay, JPEG, ...) and
records its **content fraction**: the share of the original image's area still visible in the
result, the training signal of ASL's norm-ratio loss. It is 1.0 for full-frame edits (colour,
blur, flips, padding, pasting the whole image into another photo), the crop's area share for a
crop, and less after an overlay hides part of the content.

To get it right whatever the order of edits, a chain carries an alpha mask of where original
content shows in the current image. Geometric edits move the mask with the image; crops and
overlays multiply the fraction by the share of masked content they keep. Edits are registered in
``EDITS`` with their effect on content, so a chain only picks from data, not from a branch list.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

Box = tuple[int, int, int, int]

# Edits never make an image side smaller than this; tiny crops stop being meaningful copies.
MIN_SIDE = 32
# ... nor larger than this, which keeps a chain of upscales and pastes cheap.
MAX_SIDE = 768

_WORDS = (
    "copy", "meme", "sale", "lol", "wow", "news", "2023", "#icd", "original", "fake", "repost",
    "follow", "breaking", "best of", "share", "omg", "photo", "viral", "like", "new!", "hf-asl",
)


@dataclass(frozen=True)
class EditedImage:
    """An edited copy, the share of the original's area still visible in it, and its edits."""

    image: Image.Image
    content_fraction: float
    edits: list[str] = field(default_factory=list)


@dataclass
class _Canvas:
    """The image being edited; ``mask`` is None while every pixel shows original content."""

    image: Image.Image
    fraction: float = 1.0
    mask: Image.Image | None = None

    def full_mask(self) -> Image.Image:
        return self.mask if self.mask is not None else Image.new("L", self.image.size, 255)

    def content(self) -> float:
        if self.mask is None:
            return float(self.image.width * self.image.height)
        return float(np.asarray(self.mask, dtype=np.float32).sum() / 255.0)


@dataclass(frozen=True)
class _Context:
    rng: np.random.Generator
    backgrounds: Sequence[Image.Image]


@dataclass(frozen=True)
class Edit:
    """A registered edit.

    ``effect`` says what it does to the content: "photometric" (pixels change, content stays),
    "geometric" (content moves or is rescaled, all of it stays visible), "crop" (part of the
    content leaves the frame) or "cover" (something is drawn over part of it). ``mild`` edits
    keep the whole frame and scene layout, so they can be applied to hard negatives without
    turning them into something else; ``weight`` is the relative chance of being drawn.
    """

    name: str
    apply: Callable[[_Canvas, _Context], str] = field(repr=False)
    effect: str
    mild: bool = False
    weight: float = 1.0
    needs_backgrounds: bool = False


# ---- helpers ------------------------------------------------------------------------------------


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = rng.integers(0, 256, size=3)
    return int(r), int(g), int(b)


def _crop(canvas: _Canvas, box: Box) -> None:
    """Crop to ``box`` and keep in the fraction the share of content that stays in frame."""
    before = canvas.content()
    canvas.image = canvas.image.crop(box)
    if canvas.mask is None:
        width, height = box[2] - box[0], box[3] - box[1]
        canvas.fraction *= (width * height) / before
    else:
        canvas.mask = canvas.mask.crop(box)
        canvas.fraction *= canvas.content() / before if before > 0 else 0.0


def _cover(canvas: _Canvas, alpha: Image.Image, paint: Image.Image, box: tuple[int, int]) -> None:
    """Paste ``paint`` at ``box`` through ``alpha`` (L), removing the covered share of content."""
    before = canvas.content()
    canvas.image.paste(paint, box, alpha)
    mask = canvas.full_mask().copy()
    mask.paste(0, box, alpha)
    canvas.mask = mask
    canvas.fraction *= canvas.content() / before if before > 0 else 0.0


def _clamp_size(width: float, height: float) -> tuple[int, int]:
    scale = min(1.0, MAX_SIDE / max(width, height))
    scale = max(scale, MIN_SIDE / min(width, height))
    return max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))


def sample_box(
    size: tuple[int, int],
    rng: np.random.Generator,
    area_range: tuple[float, float],
    aspect_range: tuple[float, float],
) -> Box:
    """A random box inside an image of ``size`` with area share and aspect (w/h) in the ranges.

    The aspect is drawn log-uniformly; the box is clipped to the image, so very elongated
    requests on a small image come back less elongated.
    """
    width, height = size
    area = rng.uniform(*area_range) * width * height
    aspect = math.exp(rng.uniform(math.log(aspect_range[0]), math.log(aspect_range[1])))
    w = round(min(width, max(min(MIN_SIDE, width), math.sqrt(area * aspect))))
    h = round(min(height, max(min(MIN_SIDE, height), math.sqrt(area / aspect))))
    x0 = int(rng.integers(0, width - w + 1))
    y0 = int(rng.integers(0, height - h + 1))
    return x0, y0, x0 + w, y0 + h


def random_crop(
    image: Image.Image,
    rng: np.random.Generator,
    area_range: tuple[float, float] = (0.1, 1.0),
    aspect_range: tuple[float, float] = (0.5, 2.0),
) -> tuple[Image.Image, Box, float]:
    """Crop a random box; returns (crop, box, content fraction = box area / image area)."""
    box = sample_box(image.size, rng, area_range, aspect_range)
    fraction = (box[2] - box[0]) * (box[3] - box[1]) / (image.width * image.height)
    return image.crop(box), box, fraction


def _background(ctx: _Context, size: tuple[int, int]) -> Image.Image:
    """A background of ``size``: a window of a background photo, or a smooth colour field."""
    rng = ctx.rng
    if ctx.backgrounds:
        photo = ctx.backgrounds[int(rng.integers(len(ctx.backgrounds)))]
        aspect = size[0] / size[1]
        # The largest window of the photo with the wanted aspect, then a random share of it.
        shrink = rng.uniform(0.5, 1.0)
        w = max(1, round(min(photo.width, photo.height * aspect) * shrink))
        h = max(1, min(photo.height, round(w / aspect)))
        x0 = int(rng.integers(0, photo.width - w + 1))
        y0 = int(rng.integers(0, photo.height - h + 1))
        return photo.crop((x0, y0, x0 + w, y0 + h)).resize(size, Image.Resampling.BILINEAR)
    # No photo to paste: a smooth random colour field still reads as "another picture".
    seed = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    return Image.fromarray(seed).resize(size, Image.Resampling.BICUBIC)


# ---- assets (augly wheel fonts and Twemoji, used as files only) ------------------------------------


@functools.lru_cache(maxsize=1)
def _augly_assets() -> Path | None:
    # find_spec on a top-level package locates it without running its __init__ (augly's
    # imports need an old Pillow), so only its bundled files are used.
    spec = importlib.util.find_spec("augly")
    if spec is None or not spec.submodule_search_locations:
        return None
    assets = Path(next(iter(spec.submodule_search_locations))) / "assets"
    return assets if assets.is_dir() else None


# Fonts whose glyphs are pictograms or non-Latin scripts would draw boxes instead of words.
_NON_LATIN_FONT_PREFIXES = ("Noto", "WC", "Entypo", "DavysDingbats", "heydings", "modernpics",
                            "SirucaPictograms", "TypeMyMusic")
_LATIN_NOTO = ("NotoSans-", "NotoSerif-", "NotoMono-", "NotoSansMono-")


@functools.lru_cache(maxsize=1)
def font_files() -> tuple[Path, ...]:
    """TrueType fonts usable for text overlays (from the augly wheel), sorted; may be empty."""
    assets = _augly_assets()
    if assets is None or not (assets / "fonts").is_dir():
        return ()
    fonts = []
    for path in sorted((assets / "fonts").glob("*.ttf")):
        name = path.name
        if name.startswith(_LATIN_NOTO) or not name.startswith(_NON_LATIN_FONT_PREFIXES):
            fonts.append(path)
    return tuple(fonts)


@functools.lru_cache(maxsize=1)
def emoji_files() -> tuple[Path, ...]:
    """Twemoji PNGs (CC-BY-4.0) from the augly wheel, sorted; may be empty."""
    assets = _augly_assets()
    if assets is None or not (assets / "twemojis").is_dir():
        return ()
    return tuple(sorted((assets / "twemojis").rglob("*.png")))


@functools.lru_cache(maxsize=256)
def _font(index: int, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    fonts = font_files()
    if fonts:
        try:
            return ImageFont.truetype(str(fonts[index % len(fonts)]), size)
        except OSError:
            pass
    return ImageFont.load_default(size)


@functools.lru_cache(maxsize=512)
def _emoji(index: int) -> Image.Image:
    files = emoji_files()
    with Image.open(files[index % len(files)]) as image:
        return image.convert("RGBA")


# ---- the edits ----------------------------------------------------------------------------------


def _edit_crop(canvas: _Canvas, ctx: _Context) -> str:
    width, height = canvas.image.size
    bounds = (0, 0, width, height)
    if canvas.mask is not None:
        # Crop around the original content, not into the frame or background a paste added.
        bounds = canvas.mask.getbbox() or bounds
        mask = np.asarray(canvas.mask, dtype=np.float32)
        total = mask.sum()
    for _ in range(10):
        x0, y0, x1, y1 = sample_box((bounds[2] - bounds[0], bounds[3] - bounds[1]), ctx.rng, (0.15, 0.9), (0.5, 2.0))
        box = (x0 + bounds[0], y0 + bounds[1], x1 + bounds[0], y1 + bounds[1])
        if canvas.mask is None or mask[box[1] : box[3], box[0] : box[2]].sum() >= 0.1 * total:
            break
    _crop(canvas, box)
    return f"crop({box[0]},{box[1]},{box[2]},{box[3]})"


def _edit_resize(canvas: _Canvas, ctx: _Context) -> str:
    scale = ctx.rng.uniform(0.4, 1.6)
    stretch = math.exp(ctx.rng.uniform(-0.2, 0.2))
    size = _clamp_size(canvas.image.width * scale * stretch, canvas.image.height * scale / stretch)
    canvas.image = canvas.image.resize(size, Image.Resampling.BILINEAR)
    if canvas.mask is not None:
        canvas.mask = canvas.mask.resize(size, Image.Resampling.BILINEAR)
    return f"resize({size[0]}x{size[1]})"


def _edit_rotate(canvas: _Canvas, ctx: _Context) -> str:
    angle = float(ctx.rng.uniform(3, 30) * ctx.rng.choice([-1, 1]))
    fill = _random_colour(ctx.rng)
    mask = canvas.full_mask()
    canvas.image = canvas.image.rotate(angle, Image.Resampling.BILINEAR, expand=True, fillcolor=fill)
    canvas.mask = mask.rotate(angle, Image.Resampling.BILINEAR, expand=True, fillcolor=0)
    return f"rotate({angle:.1f})"


def _inscribed_size(width: int, height: int, angle: float) -> tuple[int, int]:
    """Largest axis-aligned rectangle inside a width x height rectangle rotated by ``angle``."""
    a = math.radians(abs(angle)) % math.pi
    a = min(a, math.pi - a)
    sin, cos = math.sin(a), math.cos(a)
    long, short = max(width, height), min(width, height)
    if short <= 2 * sin * cos * long or abs(sin - cos) < 1e-10:
        x = 0.5 * short
        w, h = (x / sin, x / cos) if width >= height else (x / cos, x / sin)
    else:
        cos2 = cos * cos - sin * sin
        w, h = (width * cos - height * sin) / cos2, (height * cos - width * sin) / cos2
    return max(1, int(w)), max(1, int(h))


def _edit_rotate_crop(canvas: _Canvas, ctx: _Context) -> str:
    angle = float(ctx.rng.uniform(2, 20) * ctx.rng.choice([-1, 1]))
    width, height = canvas.image.size
    w, h = _inscribed_size(width, height, angle)
    box = ((width - w) // 2, (height - h) // 2, (width - w) // 2 + w, (height - h) // 2 + h)
    before = canvas.content()
    mask = canvas.full_mask().rotate(angle, Image.Resampling.BILINEAR, fillcolor=0).crop(box)
    kept = float(np.asarray(mask, dtype=np.float32).sum() / 255.0)
    if before > 0 and kept < 0.25 * before:
        # The content sits off-centre (pasted into a corner): a centred crop would lose it.
        return _edit_rotate(canvas, ctx)
    canvas.image = canvas.image.rotate(angle, Image.Resampling.BILINEAR).crop(box)
    canvas.mask = mask
    canvas.fraction *= min(1.0, kept / before) if before > 0 else 0.0
    return f"rotate_crop({angle:.1f})"


_TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)


def _edit_rotate90(canvas: _Canvas, ctx: _Context) -> str:
    turn = int(ctx.rng.integers(len(_TURNS)))
    canvas.image = canvas.image.transpose(_TURNS[turn])
    if canvas.mask is not None:
        canvas.mask = canvas.mask.transpose(_TURNS[turn])
    return f"rotate90({90 * (turn + 1)})"


def _flip(transpose: Image.Transpose, name: str) -> Callable[[_Canvas, _Context], str]:
    def edit(canvas: _Canvas, ctx: _Context) -> str:
        canvas.image = canvas.image.transpose(transpose)
        if canvas.mask is not None:
            canvas.mask = canvas.mask.transpose(transpose)
        return name

    return edit


def _perspective_coefficients(
    source: Sequence[tuple[float, float]], target: Sequence[tuple[float, float]]
) -> list[float]:
    """PIL PERSPECTIVE coefficients mapping output points ``target`` back onto ``source``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(target, source):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    return np.linalg.solve(np.asarray(rows, dtype=np.float64), np.asarray(rhs, dtype=np.float64)).tolist()


def _edit_perspective(canvas: _Canvas, ctx: _Context) -> str:
    width, height = canvas.image.size
    strength = ctx.rng.uniform(0.05, 0.2)
    inset = ctx.rng.uniform(0, strength, size=(4, 2)) * (width, height)
    corners = [(0, 0), (width, 0), (width, height), (0, height)]
    signs = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
    target = [(cx + sx * dx, cy + sy * dy) for (cx, cy), (sx, sy), (dx, dy) in zip(corners, signs, inset)]
    coefficients = _perspective_coefficients(corners, target)
    fill = _random_colour(ctx.rng)
    mask = canvas.full_mask()
    canvas.image = canvas.image.transform(
        canvas.image.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR, fillcolor=fill
    )
    canvas.mask = mask.transform(
        mask.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR, fillcolor=0
    )
    return f"perspective({strength:.2f})"


def _edit_pad(canvas: _Canvas, ctx: _Context) -> str:
    width, height = canvas.image.size
    left, top, right, bottom = (ctx.rng.uniform(0.02, 0.3, size=4) * (width, height, width, height)).astype(int)
    size = (width + left + right, height + top + bottom)
    framed = Image.new("RGB", size, _random_colour(ctx.rng))
    if ctx.rng.random() < 0.5:  # a two-tone frame, as in a mount or a screenshot border
        inner = max(1, min(left, top, right, bottom) // 2)
        ImageDraw.Draw(framed).rectangle(
            (left - inner, top - inner, left + width + inner - 1, top + height + inner - 1),
            fill=_random_colour(ctx.rng),
        )
    mask = Image.new("L", size, 0)
    mask.paste(canvas.full_mask(), (int(left), int(top)))
    framed.paste(canvas.image, (int(left), int(top)))
    canvas.image, canvas.mask = framed, mask
    return f"pad({left},{top},{right},{bottom})"


def _edit_paste_onto(canvas: _Canvas, ctx: _Context) -> str:
    width, height = canvas.image.size
    share = ctx.rng.uniform(0.35, 0.8)  # side of the pasted image relative to the background
    bg_size = _clamp_size(width / share * ctx.rng.uniform(0.9, 1.3), height / share)
    scale = min(bg_size[0] * share / width, bg_size[1] * share / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    size = (min(size[0], bg_size[0]), min(size[1], bg_size[1]))
    background = _background(ctx, bg_size)
    x0 = int(ctx.rng.integers(0, bg_size[0] - size[0] + 1))
    y0 = int(ctx.rng.integers(0, bg_size[1] - size[1] + 1))
    background.paste(canvas.image.resize(size, Image.Resampling.BILINEAR), (x0, y0))
    mask = Image.new("L", bg_size, 0)
    mask.paste(canvas.full_mask().resize(size, Image.Resampling.BILINEAR), (x0, y0))
    canvas.image, canvas.mask = background, mask
    return f"paste_onto({share:.2f})"


def _edit_paste_under(canvas: _Canvas, ctx: _Context) -> str:
    width, height = canvas.image.size
    side, stretch = math.sqrt(ctx.rng.uniform(0.1, 0.4)), math.exp(ctx.rng.uniform(-0.3, 0.3))
    w = min(width, max(1, round(width * side * stretch)))
    h = min(height, max(1, round(height * side / stretch)))
    patch = _background(ctx, (w, h))
    x0, y0 = int(ctx.rng.integers(0, width - w + 1)), int(ctx.rng.integers(0, height - h + 1))
    _cover(canvas, Image.new("L", (w, h), 255), patch, (x0, y0))
    return f"paste_under({w}x{h})"


def _edit_colour_jitter(canvas: _Canvas, ctx: _Context) -> str:
    rng = ctx.rng
    brightness, contrast, saturation = rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(0.3, 1.7)
    # Brightness then contrast (around the mean grey level) is one affine map: a lookup table.
    mean = float(np.asarray(canvas.image.convert("L").reduce(4), dtype=np.float32).mean()) * brightness
    table = np.clip(np.arange(256) * brightness * contrast + (1 - contrast) * mean, 0, 255)
    image = canvas.image.point(np.round(table).astype(np.uint8).tolist() * 3)
    image = ImageEnhance.Color(image).enhance(saturation)
    hue = int(rng.integers(-25, 26)) if rng.random() < 0.5 else 0
    if hue:
        h, s, v = image.convert("HSV").split()
        image = Image.merge("HSV", (h.point([(x + hue) % 256 for x in range(256)]), s, v)).convert("RGB")
    canvas.image = image
    return f"colour_jitter(b={brightness:.2f},c={contrast:.2f},s={saturation:.2f},h={hue})"


def _edit_greyscale(canvas: _Canvas, ctx: _Context) -> str:
    canvas.image = canvas.image.convert("L").convert("RGB")
    return "greyscale"


def _edit_blur(canvas: _Canvas, ctx: _Context) -> str:
    radius = ctx.rng.uniform(0.5, 2.5) * max(canvas.image.size) / 256
    canvas.image = canvas.image.filter(ImageFilter.GaussianBlur(radius))
    return f"blur({radius:.1f})"


def _edit_jpeg(canvas: _Canvas, ctx: _Context) -> str:
    quality = int(ctx.rng.integers(5, 36))
    buffer = io.BytesIO()
    canvas.image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        canvas.image = decoded.convert("RGB")
    return f"jpeg({quality})"


def _edit_pixelise(canvas: _Canvas, ctx: _Context) -> str:
    width, height = canvas.image.size
    block = ctx.rng.uniform(2, 8) * max(width, height) / 256
    small = (max(1, round(width / block)), max(1, round(height / block)))
    canvas.image = canvas.image.resize(small, Image.Resampling.BOX).resize((width, height), Image.Resampling.NEAREST)
    return f"pixelise({block:.1f})"


def _edit_noise(canvas: _Canvas, ctx: _Context) -> str:
    sigma = ctx.rng.uniform(4, 20)
    pixels = np.asarray(canvas.image, dtype=np.float32)
    noisy = pixels + ctx.rng.standard_normal(pixels.shape, dtype=np.float32) * np.float32(sigma)
    canvas.image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return f"noise({sigma:.0f})"


def _edit_text(canvas: _Canvas, ctx: _Context) -> str:
    rng = ctx.rng
    width, height = canvas.image.size
    lines = [" ".join(rng.choice(_WORDS, size=int(rng.integers(1, 4)))) for _ in range(int(rng.integers(1, 4)))]
    text = "\n".join(lines)
    # Sizes snap to 4 px so the font cache is reused across images.
    size = max(8, int(rng.uniform(0.06, 0.18) * height) // 4 * 4)
    font = _font(int(rng.integers(1 << 16)), size)
    stroke = int(rng.integers(0, 3))
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = measure.multiline_textbbox((0, 0), text, font=font, stroke_width=stroke)
    alpha = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(alpha).multiline_text((-left, -top), text, font=font, fill=255, stroke_width=stroke)
    alpha = alpha.crop((0, 0, min(alpha.width, width), min(alpha.height, height)))
    x0 = int(rng.integers(0, width - alpha.width + 1))
    y0 = int(rng.integers(0, height - alpha.height + 1))
    _cover(canvas, alpha, Image.new("RGB", alpha.size, _random_colour(rng)), (x0, y0))
    return f"text({len(lines)} lines,{size}px)"


def _sticker(rng: np.random.Generator, side: int) -> Image.Image:
    """A drawn RGBA shape standing in for an emoji when no Twemoji files are installed."""
    sticker = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(sticker)
    colour = (*_random_colour(rng), 255)
    shape = int(rng.integers(3))
    if shape == 0:
        draw.ellipse((0, 0, side - 1, side - 1), fill=colour)
    elif shape == 1:
        draw.rounded_rectangle((0, 0, side - 1, side - 1), radius=side // 5, fill=colour)
    else:
        draw.regular_polygon((side / 2, side / 2, side / 2), int(rng.integers(3, 9)), fill=colour)
    return sticker


def _edit_emoji(canvas: _Canvas, ctx: _Context) -> str:
    rng = ctx.rng
    width, height = canvas.image.size
    count = int(rng.integers(1, 4))
    for _ in range(count):
        side = max(8, min(width, height, int(rng.uniform(0.1, 0.35) * min(width, height))))
        if emoji_files():
            sticker = _emoji(int(rng.integers(1 << 16))).resize((side, side), Image.Resampling.BILINEAR)
        else:
            sticker = _sticker(rng, side)
        x0, y0 = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        _cover(canvas, sticker.getchannel("A"), sticker.convert("RGB"), (x0, y0))
    return f"emoji({count})"


_REGISTRY = (
    Edit("crop", _edit_crop, "crop", weight=3.0),
    Edit("resize", _edit_resize, "geometric", mild=True, weight=1.5),
    Edit("rotate", _edit_rotate, "geometric"),
    Edit("rotate_crop", _edit_rotate_crop, "crop"),
    Edit("rotate90", _edit_rotate90, "geometric", weight=0.5),
    Edit("hflip", _flip(Image.Transpose.FLIP_LEFT_RIGHT, "hflip"), "geometric", mild=True),
    Edit("vflip", _flip(Image.Transpose.FLIP_TOP_BOTTOM, "vflip"), "geometric", weight=0.3),
    Edit("perspective", _edit_perspective, "geometric"),
    Edit("pad", _edit_pad, "geometric"),
    Edit("paste_onto", _edit_paste_onto, "geometric", weight=1.5, needs_backgrounds=True),
    Edit("paste_under", _edit_paste_under, "cover", needs_backgrounds=True),
    Edit("colour_jitter", _edit_colour_jitter, "photometric", mild=True, weight=1.5),
    Edit("greyscale", _edit_greyscale, "photometric", mild=True, weight=0.5),
    Edit("blur", _edit_blur, "photometric", mild=True),
    Edit("jpeg", _edit_jpeg, "photometric", mild=True, weight=1.5),
    Edit("pixelise", _edit_pixelise, "photometric", weight=0.5),
    Edit("noise", _edit_noise, "photometric", mild=True, weight=0.5),
    Edit("text", _edit_text, "cover"),
    Edit("emoji", _edit_emoji, "cover"),
)

EDITS: Mapping[str, Edit] = MappingProxyType({edit.name: edit for edit in _REGISTRY})
MILD_EDITS: tuple[str, ...] = tuple(edit.name for edit in _REGISTRY if edit.mild)


def _run(
    image: Image.Image, names: Sequence[str], rng: np.random.Generator, backgrounds: Sequence[Image.Image]
) -> EditedImage:
    canvas = _Canvas(image.convert("RGB"))
    ctx = _Context(rng, backgrounds)
    done = [EDITS[name].apply(canvas, ctx) for name in names]
    return EditedImage(canvas.image, float(min(1.0, max(0.0, canvas.fraction))), done)


def apply_edit(
    name: str,
    image: Image.Image,
    rng: np.random.Generator,
    *,
    backgrounds: Sequence[Image.Image] = (),
) -> EditedImage:
    """Apply the registered edit ``name`` once (for online augmentation).

    Paste edits take their second photo from ``backgrounds`` (a smooth colour field without).
    """
    if name not in EDITS:
        raise KeyError(f"unknown edit {name!r}; known: {', '.join(EDITS)}")
    return _run(image, [name], rng, backgrounds)


def apply_chain(
    image: Image.Image,
    rng: np.random.Generator,
    *,
    n_edits: tuple[int, int] = (1, 4),
    names: Sequence[str] | None = None,
    mild: bool = False,
    backgrounds: Sequence[Image.Image] = (),
) -> EditedImage:
    """Apply a random chain of distinct edits, between ``n_edits[0]`` and ``n_edits[1]`` long.

    Edits are drawn by weight from ``names`` (default: all registered), only mild ones when
    ``mild`` is set; paste edits are left out when no ``backgrounds`` are given.
    """
    pool = [EDITS[n] for n in (names if names is not None else EDITS)]
    pool = [e for e in pool if (e.mild or not mild) and (backgrounds or not e.needs_backgrounds)]
    if not pool:
        raise ValueError("no edit left to draw from")
    count = min(len(pool), int(rng.integers(n_edits[0], n_edits[1] + 1)))
    weights = np.array([e.weight for e in pool], dtype=np.float64)
    picked = rng.choice(len(pool), size=count, replace=False, p=weights / weights.sum())
    return _run(image, [pool[i].name for i in picked], rng, backgrounds)
