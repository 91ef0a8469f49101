"""Public 8x8 digits rendered from the fonts matplotlib bundles: pretraining data that holds no one's writing.

DP-SGD pays for every feature it learns from the private data; features learned from public data cost nothing
(Tramer and Boneh 2021, arXiv:2011.11660; De et al. 2022, arXiv:2204.13650, pretrain on public images before
private fine-tuning). For 8x8 digits no public set ships with the Python stack, so this module draws one: each
digit 0-9 in 21 fonts (DejaVu Sans, Sans Mono and Serif in four styles, STIX in four, Computer Modern roman, bold,
sans, italic and typewriter) at three stroke widths, scaled to the full height like the NIST bitmaps behind
``load_digits`` (Alpaydin and Kaynak 1998), then per sample a random rotation, shear, width and shift and an
elastic distortion (Simard, Steinkraus and Platt 2003, ICDAR: a random displacement field smoothed by a Gaussian),
thresholded on a 32x32 grid and block-averaged to 8x8, so a pixel is the share of its 4x4 block that is ink, as in
``load_digits`` / 16. Nothing is downloaded: the fonts are files of the installed matplotlib.

Drawing 60,000 digits takes 10-20 s on one CPU thread, so the drawn set is cached under
``$AISEC_CACHE/data`` (as 0-16 ink counts, 4 MB; keyed by the arguments and the matplotlib, Pillow and torch
versions that draw it): every later process, a CLI run or another assessment, loads it in well under a second. An
entry that cannot be read is logged and drawn again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aisec.core.files import cache_root, load_cached, store_cached
from aisec.core.goals import Modality
from aisec.data.dataset import DIGITS_8X8, Dataset
from aisec.errors import InputValidationError

FONTS = (
    *(
        f"DejaVu{family}{style}.ttf"
        for family in ("Sans", "SansMono")
        for style in ("", "-Bold", "-Oblique", "-BoldOblique")
    ),
    *(f"DejaVuSerif{style}.ttf" for style in ("", "-Bold", "-Italic", "-BoldItalic")),
    *(f"STIXGeneral{style}.ttf" for style in ("", "Bol", "Italic", "BolIta")),
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmti10.ttf",
    "cmtt10.ttf",
)
CACHE_VERSION = 1  # raise when the drawing changes
STROKES = (0, 2, 4)  # extra stroke width, in pixels of a 120-point rendering
_SIDE, _HEIGHT = 96, 80  # a glyph is scaled to _HEIGHT rows and centred on a _SIDE x _SIDE canvas
log = logging.getLogger(__name__)


def font_dir() -> str:
    """The folder of matplotlib's bundled TrueType fonts."""
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")


@lru_cache(maxsize=1)
def glyphs() -> tuple[torch.Tensor, torch.Tensor]:
    """Every (font, digit, stroke) glyph: images (G, 1, 96, 96) in [0, 1] and their digits (G,)."""
    from PIL import Image, ImageDraw, ImageFont

    images, labels = [], []
    for name in FONTS:
        font = ImageFont.truetype(os.path.join(font_dir(), name), 120)
        for digit in range(10):
            for stroke in STROKES:
                canvas = Image.new("L", (260, 260), 0)
                ImageDraw.Draw(canvas).text((40, 20), str(digit), fill=255, font=font, stroke_width=stroke,
                                            stroke_fill=255)  # fmt: skip
                box = canvas.getbbox()
                if box is None:
                    continue
                glyph = canvas.crop(box)
                width = max(1, round(glyph.size[0] * _HEIGHT / glyph.size[1]))
                if width > _SIDE:
                    continue
                glyph = glyph.resize((width, _HEIGHT), Image.BILINEAR)
                square = Image.new("L", (_SIDE, _SIDE), 0)
                square.paste(glyph, ((_SIDE - width) // 2, (_SIDE - _HEIGHT) // 2))
                images.append(np.asarray(square, dtype=np.float32) / 255.0)
                labels.append(digit)
    return torch.from_numpy(np.stack(images))[:, None], torch.tensor(labels)


def _gaussian_blur(field: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma)
    k = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).to(field)
    n, c, h, w = field.shape
    out = F.conv2d(field.reshape(n * c, 1, h, w), k.view(1, 1, 1, -1), padding=(0, radius))
    return F.conv2d(out, k.view(1, 1, -1, 1), padding=(radius, 0)).view(n, c, h, w)


def render(
    n: int,
    gen: torch.Generator,
    *,
    rotate_deg: float = 20.0,
    shear: float = 0.4,
    width: float = 0.85,
    width_jitter: float = 0.2,
    shift: float = 1.0,
    elastic: float = 2.5,
    elastic_sigma: float = 4.0,
    chunk: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` distorted digits (n, 1, 8, 8) in [0, 1] and their labels.

    ``width`` scales the glyphs' width (1 keeps the font's), ``width_jitter`` varies it per sample by up to that
    share, ``shift`` moves by up to that many pixels of the 32x32 grid, ``elastic`` is the displacement field's
    standard deviation in those pixels and ``elastic_sigma`` its smoothness.
    """
    bank, labels = glyphs()
    xs, ys = [], []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        pick = torch.randint(len(bank), (m,), generator=gen)
        angle = (torch.rand(m, generator=gen) * 2 - 1) * rotate_deg * math.pi / 180
        slant = (torch.rand(m, generator=gen) * 2 - 1) * shear
        wide = width * (1 + (torch.rand(m, generator=gen) * 2 - 1) * width_jitter)
        move = (torch.rand(m, 2, generator=gen) * 2 - 1) * shift * 2 / 32
        field = torch.rand(m, 2, 32, 32, generator=gen) * 2 - 1
        # output coordinates -> glyph coordinates: the glyph's height fills the 32 rows, as in the NIST bitmaps
        s, cos, sin = _HEIGHT / _SIDE, torch.cos(angle), torch.sin(angle)
        theta = torch.zeros(m, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = s * cos / wide, s * (slant - sin) / wide
        theta[:, 1, 0], theta[:, 1, 1] = s * sin, s * cos
        theta[:, :, 2] = move
        grid = F.affine_grid(theta, [m, 1, 32, 32], align_corners=False)
        if elastic > 0:
            field = _gaussian_blur(field, elastic_sigma)
            field = field / field.flatten(1).std(1).clamp(min=1e-6).view(m, 1, 1, 1)
            grid = grid + field.permute(0, 2, 3, 1) * elastic * 2 / 32
        ink = F.grid_sample(bank[pick], grid, align_corners=False) > 0.5
        xs.append(F.avg_pool2d(ink.float(), 4))
        ys.append(labels[pick])
    return torch.cat(xs), torch.cat(ys)


def cache_path(n: int, seed: int) -> Path:
    """Where the ``n`` digits drawn with ``seed`` are cached: what draws them is in the key."""
    import matplotlib
    import PIL

    fields = {"v": CACHE_VERSION, "n": n, "seed": seed, "matplotlib": matplotlib.__version__,
              "pillow": PIL.__version__, "torch": torch.__version__.split("+")[0]}  # fmt: skip
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]
    return cache_root() / "data" / f"font_digits-{key}.pt"


def drawn(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`render` of ``n`` digits with ``seed``'s generator, from the cache when it holds them."""
    path = cache_path(n, seed)

    def parse(state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        ink, y = state["ink"], state["y"]
        if ink.dtype != torch.uint8 or tuple(ink.shape) != (n, 1, 8, 8) or int(ink.max()) > 16:
            raise ValueError(f"not {n} digits of 8x8 ink counts: {ink.dtype} {tuple(ink.shape)}")
        if tuple(y.shape) != (n,) or int(y.max()) > 9:
            raise ValueError(f"not {n} labels 0-9: {tuple(y.shape)}")
        return ink.float() / 16, y.long()

    cached = load_cached(path, parse, "font digits")
    if cached is not None:
        return cached
    log.info("drawing %d public font digits (10-20 s, once: cached in %s)", n, path.parent)
    x, y = render(n, torch.Generator().manual_seed(seed))
    counts = {"ink": (x * 16).round().to(torch.uint8), "y": y.to(torch.uint8)}  # a pixel is a share of 16 subpixels
    store_cached(path, lambda tmp: torch.save(counts, tmp), "font digits")  # the counts store it exactly
    return x, y


def load_font_digits(*, n: int = 60000, test_size: float = 0.1, seed: int = 0) -> Dataset:
    """``n`` public 8x8 digits rendered from bundled fonts (see the module docstring), split train / test.

    Shaped like :func:`aisec.data.load_digits`: (1, 8, 8) images in [0, 1], classes ``"0"``-``"9"``.
    """
    if n < 20:
        raise InputValidationError("n", "at least 20 digits", str(n))
    if not 0 < test_size < 1:
        raise InputValidationError("test_size", "a share in (0, 1)", str(test_size))
    x, y = drawn(n, seed)
    cut = n - max(1, round(n * test_size))
    return Dataset(
        name="font_digits",
        modality=Modality.IMAGE,
        x_train=x[:cut],
        y_train=y[:cut],
        x_test=x[cut:],
        y_test=y[cut:],
        class_names=tuple(str(c) for c in range(10)),
        clip=(0.0, 1.0),
        meta={
            "source": "digits rendered from matplotlib's bundled fonts",
            "fonts": len(FONTS),
            "seed": seed,
            "domain": DIGITS_8X8,
        },
    )
