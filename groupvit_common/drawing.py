# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Pictures of predictions and groups (numpy + PIL): overlays, legends,
banners and panels."""
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from .errors import DataFileError
from .image_files import written_by_a_tool

#: A legend entry: text, RGB colour (None: uncoloured, as background) and
#: share of the pixels.
LegendEntry = Tuple[str, Optional[Sequence[int]], Optional[float]]

MIN_FONT = 8
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def get_font(size: int) -> ImageFont.ImageFont:
    """PIL's bundled font at ``size`` pixels."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def font_size_for(width: int, height: int) -> int:
    """A text size that reads well on a ``width x height`` picture."""
    return int(np.clip(round(min(width, height) / 30), 10, 20))


def overlay_labels(image: np.ndarray,
                   labels: np.ndarray,
                   palette: np.ndarray,
                   opacity: float = 0.5,
                   skip_label: Optional[int] = None) -> np.ndarray:
    """Blend ``palette[labels]`` (``[H, W]``) over an ``[H, W, 3]`` uint8
    image with weight ``opacity``, ``skip_label`` uncoloured."""
    if image.shape[:2] != labels.shape:
        raise ValueError(f'Image {image.shape[:2]} and label map '
                         f'{labels.shape} differ in size.')
    colour = np.asarray(palette, dtype=np.float32)[labels]
    mask = labels != skip_label  # all True for None
    out = image.astype(np.float32)
    out[mask] = out[mask] * (1 - opacity) + colour[mask] * opacity
    return out.round().clip(0, 255).astype(np.uint8)


def mark_boundaries(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``image`` painted white where ``labels`` changes."""
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1] |= labels[:-1] != labels[1:]
    out = image.copy()
    out[edge] = WHITE
    return out


def draw_banner(image: Image.Image,
                lines: Sequence[str],
                size: Optional[int] = None) -> Tuple[Image.Image, int]:
    """``lines`` in white on a red band across the picture's top, shrunk
    to fit; the picture and the band's height."""
    size = size or font_size_for(*image.size) + 1
    font = get_font(size)
    while size > MIN_FONT and max(map(font.getlength,
                                      lines)) > image.width - 12:
        size -= 1
        font = get_font(size)
    row = size + 6
    band = 6 + row * len(lines)
    out = image.convert('RGB')
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, 0, out.width - 1, band - 1], fill=(180, 0, 0))
    for i, line in enumerate(lines):
        draw.text((6, 4 + row * i), line, fill=WHITE, font=font)
    return out, band


def legend_entries(legend: list, every_class: bool = False) -> tuple:
    """``([LegendEntry], footer or None)``: the classes present, most
    pixels first, and how many are absent; or every class."""
    footer = None
    if not every_class:
        present = [e for e in legend if e['share'] > 0]
        absent = len(legend) - len(present)
        if absent:
            footer = f'+{absent} class{"es" if absent > 1 else ""} absent'
        legend = sorted(present, key=lambda e: -e['share'])
    entries = [(', '.join([e['name']] + e['synonyms']), e['color'], e['share'])
               for e in legend]
    return entries, footer


def draw_legend(image: Image.Image,
                entries: Sequence[LegendEntry],
                top: int = 0,
                footer: Optional[str] = None) -> Image.Image:
    """A legend box in the top-left corner below ``top``, in columns; the
    text shrinks before entries are left out (counted on a last line)."""
    texts = [t if s is None else f'{t}  {s:.1%}' for t, _, s in entries]
    width, height = image.size
    size = font_size_for(width, height)
    while True:
        font = get_font(size)
        row = size + 6
        footer_h = row if footer else 0
        rows = max(1, (height - top - 16 - footer_h) // row)
        col_w = size + 20 + math.ceil(
            max(map(font.getlength, texts + [footer or ''])))
        cols = math.ceil(len(texts) / rows)
        if cols * col_w <= width - 12 or size <= MIN_FONT:
            break
        size -= 1
    shown = len(texts)
    max_cols = max(1, (width - 12) // col_w)
    if cols > max_cols:
        cols, shown = max_cols, max_cols * rows - 1
    else:  # balanced columns: 21 entries in two of 11 and 10
        rows = math.ceil(len(texts) / cols)
    rows = max(1, min(rows, shown + (shown < len(texts))))
    x0, y0 = 6, top + 6
    rows_h = rows * row if entries else 0
    layer = Image.new('RGBA', image.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).rectangle(
        [x0, y0, x0 + cols * col_w, y0 + rows_h + footer_h + 4],
        fill=(255, 255, 255, 200))
    out = Image.alpha_composite(image.convert('RGBA'), layer).convert('RGB')
    draw = ImageDraw.Draw(out)

    def cell(i):
        return x0 + 6 + (i // rows) * col_w, y0 + 2 + (i % rows) * row

    for i, ((_, colour, _), text) in enumerate(zip(entries[:shown], texts)):
        x, y = cell(i)
        swatch = [x, y + 3, x + size, y + 3 + size]
        fill = WHITE if colour is None else tuple(map(int, colour))
        draw.rectangle(swatch, fill=fill, outline=BLACK)
        if colour is None:  # crossed: no colour
            draw.line(swatch, fill=(120, 120, 120))
        draw.text((x + size + 8, y), text, fill=BLACK, font=font)
    if shown < len(entries):
        more = f'+{len(entries) - shown} more'
        draw.text(cell(shown), more, fill=BLACK, font=font)
    if footer:
        draw.text((x0 + 6, y0 + rows_h + 2), footer, fill=BLACK, font=font)
    return out


def tile_panes(panes: Sequence[Image.Image],
               titles: Sequence[str],
               note: Optional[Sequence[str]] = None,
               gap: int = 6) -> Image.Image:
    """Equally tall pictures side by side under their titles, below a red
    band of ``note`` lines if given."""
    height = panes[0].height
    size = font_size_for(panes[0].width, height) + 1
    font = get_font(size)
    title_h = size + 10
    width = sum(p.width for p in panes) + gap * (len(panes) - 1)
    header, band = None, 0
    if note:
        header, band = draw_banner(
            Image.new('RGB', (width, height), WHITE), note, size=size + 2)
    canvas = Image.new('RGB', (width, band + title_h + height), WHITE)
    if header is not None:
        canvas.paste(header.crop((0, 0, width, band)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for pane, title in zip(panes, titles):
        draw.text((x + 4, band + 4), title, fill=BLACK, font=font)
        canvas.paste(pane.convert('RGB'), (x, band + title_h))
        x += pane.width + gap
    return canvas


def save_pngs(out_dir: str, stem: str,
              pictures: Dict[str, Tuple[Image.Image, dict]]) -> Dict[str, str]:
    """Write ``OUT_DIR/STEM_KIND.png`` of ``pictures`` (``{kind: (picture,
    PNG text)}``, non-str values as JSON) and return ``{kind: path}``; none
    of them (a ``DataFileError``) if a name is a link or a file of the
    user's, not of a tool of this package (an empty file is replaced)."""
    files = {k: osp.join(out_dir, f'{stem}_{k}.png') for k in pictures}
    for path in files.values():
        if osp.islink(path) or (osp.lexists(path) and os.path.getsize(path)
                                and not written_by_a_tool(path)):
            raise DataFileError(
                f'{path} exists and was not written by this package\'s tools '
                f'(a picture of your own?); it is not replaced. Give another '
                f'--out, or move the file away.')
    for kind, (picture, text) in pictures.items():
        info = PngInfo()
        for key, value in text.items():
            info.add_text(
                key, value if isinstance(value, str) else json.dumps(value))
        picture.save(files[kind], pnginfo=info)
    return files


def palette_png(labels: np.ndarray, palette) -> Image.Image:
    """A label map as a palette PNG (beyond 256 labels: 16-bit grey)."""
    if len(palette) > 256:
        return Image.fromarray(labels.astype(np.uint16))
    picture = Image.fromarray(labels.astype(np.uint8), mode='P')
    flat = np.zeros((256, 3), np.uint8)
    flat[:len(palette)] = np.asarray(palette, np.uint8)
    picture.putpalette(flat.flatten().tolist())
    return picture


def class_legend(names: Sequence[str], synonyms: Sequence[Sequence[str]],
                 with_bg: bool, labels: np.ndarray, palette) -> List[dict]:
    """Each class's name, synonyms, colour (None: background) and share."""
    shares = np.bincount(
        labels.ravel(), minlength=len(names)) / max(labels.size, 1)
    return [
        dict(
            name=name,
            synonyms=list(synonyms[i]),
            color=None if (with_bg and i == 0) else palette[i].tolist(),
            share=round(float(shares[i]), 6)) for i, name in enumerate(names)
    ]


def labelled_overlay(rgb: np.ndarray,
                     labels: np.ndarray,
                     palette,
                     opacity: float,
                     with_bg: bool,
                     legend: list,
                     every_class: bool = False,
                     note: Optional[Sequence[str]] = None) -> Image.Image:
    """The prediction over the photo, the banner ``note`` and the legend."""
    entries, footer = legend_entries(legend, every_class)
    picture = Image.fromarray(
        overlay_labels(rgb, labels, palette, opacity, 0 if with_bg else None))
    picture, top = draw_banner(picture, note) if note else (picture, 0)
    return draw_legend(picture, entries, top, footer=footer)


def prediction_pictures(
    kinds: Sequence[str],
    text: dict,
    rgb: np.ndarray,
    labels: np.ndarray,
    palette,
    opacity: float,
    with_bg: bool,
    legend: list,
    every_class: bool = False,
    note: Optional[Sequence[str]] = None
) -> Dict[str, Tuple[Image.Image, dict]]:
    """The pictures of ``kinds`` for :func:`save_pngs`, with ``text`` and
    the legend as PNG text: ``overlay`` (:func:`labelled_overlay`),
    ``prediction`` (:func:`palette_png`)."""
    text = dict(text, legend=legend)
    return {
        kind: (palette_png(labels, palette) if kind == 'prediction' else
               labelled_overlay(rgb, labels, palette, opacity, with_bg, legend,
                                every_class, note), text)
        for kind in kinds
    }
