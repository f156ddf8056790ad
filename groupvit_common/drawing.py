# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Pictures of predictions and groups: overlays, legends, banners and
side-by-side panels (numpy + PIL).

Every function that draws on an image keeps its size, so overlays stay
pixel-aligned with the input photo.
"""
import json
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

# (name, RGB colour or None for an uncoloured label such as background,
# share of the image's pixels in [0, 1] or None).
LegendEntry = Tuple[str, Optional[Sequence[int]], Optional[float]]

MIN_FONT = 8
BANNER_RED = (180, 0, 0)
WHITE = (255, 255, 255)


def get_font(size: int) -> ImageFont.ImageFont:
    """PIL's bundled font at ``size`` pixels (a fixed small bitmap font on
    Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def font_size_for(width: int, height: int) -> int:
    """A text size that reads well on a ``width x height`` picture."""
    return int(np.clip(round(min(width, height) / 30), 10, 20))


def _text_width(font: ImageFont.ImageFont, text: str) -> int:
    return int(math.ceil(font.getlength(text)))


def overlay_labels(image: np.ndarray,
                   labels: np.ndarray,
                   palette: np.ndarray,
                   opacity: float = 0.5,
                   skip_label: Optional[int] = None) -> np.ndarray:
    """Blend a label map over an RGB image.

    Args:
        image (ndarray): ``[H, W, 3]`` uint8 RGB.
        labels (ndarray): ``[H, W]`` int labels.
        palette (ndarray): ``[N, 3]`` uint8 colours indexed by label.
        opacity (float): Colour weight in [0, 1]. Defaults to 0.5.
        skip_label (int, optional): Label left uncoloured (background).

    Returns:
        ndarray: ``[H, W, 3]`` uint8.
    """
    if image.shape[:2] != labels.shape:
        raise ValueError(f'Image {image.shape[:2]} and label map '
                         f'{labels.shape} differ in size.')
    colour = np.asarray(palette, dtype=np.float32)[labels]
    mask = np.ones(labels.shape,
                   bool) if skip_label is None else (labels != skip_label)
    out = image.astype(np.float32)
    out[mask] = out[mask] * (1 - opacity) + colour[mask] * opacity
    return out.round().clip(0, 255).astype(np.uint8)


def mark_boundaries(image: np.ndarray,
                    labels: np.ndarray,
                    colour: Sequence[int] = WHITE) -> np.ndarray:
    """Paint the pixels where the label changes (to the right or below).

    Args:
        image (ndarray): ``[H, W, 3]`` uint8.
        labels (ndarray): ``[H, W]`` int labels.
        colour (tuple[int]): Boundary colour. Defaults to white.

    Returns:
        ndarray: A copy with the boundaries painted.
    """
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1] |= labels[:-1] != labels[1:]
    out = image.copy()
    out[edge] = colour
    return out


def draw_banner(image: Image.Image,
                lines: Sequence[str],
                fill: Sequence[int] = BANNER_RED,
                size: Optional[int] = None) -> Tuple[Image.Image, int]:
    """Write ``lines`` in white on a coloured band across the top of the
    picture (inside it: the size does not change).

    Args:
        image (Image): The picture.
        lines (list[str]): Text lines.
        fill (tuple[int]): Band colour. Defaults to dark red.
        size (int, optional): Text size; by default it follows the
            picture's size. It shrinks when a line would not fit.

    Returns:
        tuple[Image, int]: The new picture and the band's height.
    """
    size = size or font_size_for(*image.size) + 1
    font = get_font(size)
    while size > MIN_FONT and max(_text_width(font, line)
                                  for line in lines) > image.width - 12:
        size -= 1
        font = get_font(size)
    row = size + 6
    band = 6 + row * len(lines)
    out = image.convert('RGB')
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, 0, out.width - 1, band - 1], fill=tuple(fill))
    for i, line in enumerate(lines):
        draw.text((6, 4 + row * i), line, fill=(255, 255, 255), font=font)
    return out, band


def _legend_layout(texts: List[str], width: int, height: int, top: int,
                   title: Optional[str], footer: Optional[str]) -> dict:
    """Font size, rows per column, column width, and how many entries fit
    (the text shrinks down to ``MIN_FONT`` before entries are left out)."""
    size = font_size_for(width, height)
    while True:
        font = get_font(size)
        row = size + 6
        title_h = row if title else 0
        footer_h = row if footer else 0
        rows = max(1, (height - top - 16 - title_h - footer_h) // row)
        text_w = max(
            _text_width(font, t) for t in texts + [title or '', footer or ''])
        col_w = size + 8 + text_w + 12
        cols = math.ceil(len(texts) / rows)
        if cols * col_w <= width - 12 or size <= MIN_FONT:
            break
        size -= 1
    shown = len(texts)
    max_cols = max(1, (width - 12) // col_w)
    if cols > max_cols:
        # Keep what fits and say how many are left out.
        cols, shown = max_cols, max_cols * rows - 1
    else:
        # Balance the columns: 21 entries in two columns of 11 and 10.
        rows = math.ceil(len(texts) / cols)
    return dict(
        font=font,
        size=size,
        row=row,
        title_h=title_h,
        footer_h=footer_h,
        rows=max(1, min(rows, shown + (shown < len(texts)))),
        col_w=col_w,
        cols=cols,
        shown=shown)


def legend_text(entry: LegendEntry) -> str:
    """The text shown for one legend entry (name and pixel share)."""
    name, _, share = entry
    return name if share is None else f'{name}  {share:.1%}'


def legend_entries(legend: list, every_class: bool = False) -> tuple:
    """What a picture's legend shows: the classes present, most pixels
    first, then how many of the vocabulary's are absent; or every class in
    vocabulary order (``every_class``). The PNG text and ``summary.json``
    keep every class either way.

    Returns:
        tuple: ``[(text, colour, share)]`` and the closing line (or None).
    """
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
                title: Optional[str] = None,
                footer: Optional[str] = None) -> Image.Image:
    """Draw a legend box in the picture's top-left corner, below ``top``.

    Each entry is a swatch filled with its exact colour (an empty, crossed
    swatch for an uncoloured label) followed by its name and pixel share.
    Entries flow into several columns when one does not fit, and the text
    shrinks before any entry is left out (then a last line says how many).

    Args:
        image (Image): The picture; its size does not change.
        entries (list[LegendEntry]): ``(name, colour, share)`` in order.
        top (int): First row free for the legend (below a banner).
        title (str, optional): A heading.
        footer (str, optional): A last line, e.g. ``'+18 classes absent'``.

    Returns:
        Image: The picture with the legend.
    """
    texts = [legend_text(e) for e in entries]
    lay = _legend_layout(texts, image.width, image.height, top, title, footer)
    font, size, row, rows = lay['font'], lay['size'], lay['row'], lay['rows']
    x0, y0 = 6, top + 6
    rows_h = rows * row if entries else 0
    box = [
        x0, y0, x0 + lay['cols'] * lay['col_w'],
        y0 + lay['title_h'] + rows_h + lay['footer_h'] + 4
    ]
    # A translucent white box, then opaque swatches and text on it.
    layer = Image.new('RGBA', image.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).rectangle(box, fill=(255, 255, 255, 200))
    out = Image.alpha_composite(image.convert('RGBA'), layer).convert('RGB')
    draw = ImageDraw.Draw(out)
    if title:
        draw.text((x0 + 6, y0 + 2), title, fill=(0, 0, 0), font=font)

    def cell(i):
        return (x0 + 6 + (i // rows) * lay['col_w'],
                y0 + lay['title_h'] + 2 + (i % rows) * row)

    for i, ((_, colour, _),
            text) in enumerate(zip(entries[:lay['shown']], texts)):
        x, y = cell(i)
        swatch = [x, y + 3, x + size, y + 3 + size]
        if colour is None:
            draw.rectangle(swatch, fill=(255, 255, 255), outline=(0, 0, 0))
            draw.line(swatch, fill=(120, 120, 120))
        else:
            draw.rectangle(
                swatch, fill=tuple(int(c) for c in colour), outline=(0, 0, 0))
        draw.text((x + size + 8, y), text, fill=(0, 0, 0), font=font)
    if lay['shown'] < len(entries):
        draw.text(
            cell(lay['shown']),
            f'+{len(entries) - lay["shown"]} more',
            fill=(0, 0, 0),
            font=font)
    if footer:
        draw.text((x0 + 6, y0 + lay['title_h'] + rows_h + 2),
                  footer,
                  fill=(0, 0, 0),
                  font=font)
    return out


def tile_panes(panes: Sequence[Image.Image],
               titles: Sequence[str],
               note: Optional[Sequence[str]] = None,
               gap: int = 6) -> Image.Image:
    """Put equally tall pictures side by side, each under its title.

    Args:
        panes (list[Image]): Pictures of the same height.
        titles (list[str]): One title per pane.
        note (list[str], optional): Lines for a red band across the top
            (above the titles; nothing of the panes is covered).
        gap (int): White pixels between panes. Defaults to 6.

    Returns:
        Image: ``(sum of widths + gaps, band + title row + height)``.
    """
    if len(panes) != len(titles):
        raise ValueError(f'{len(panes)} panes but {len(titles)} titles.')
    height = panes[0].height
    if any(p.height != height for p in panes):
        raise ValueError('Panes must have the same height, got '
                         f'{[p.height for p in panes]}.')
    size = font_size_for(panes[0].width, height) + 1
    font = get_font(size)
    title_h = size + 10
    width = sum(p.width for p in panes) + gap * (len(panes) - 1)
    band = 0
    header = None
    if note:
        header, band = draw_banner(
            Image.new('RGB', (width, height), (255, 255, 255)),
            note,
            size=size + 2)
        header = header.crop((0, 0, width, band))
    canvas = Image.new('RGB', (width, band + title_h + height),
                       (255, 255, 255))
    if header is not None:
        canvas.paste(header, (0, 0))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for pane, title in zip(panes, titles):
        draw.text((x + 4, band + 4), title, fill=(0, 0, 0), font=font)
        canvas.paste(pane.convert('RGB'), (x, band + title_h))
        x += pane.width + gap
    return canvas


def png_text(meta: Dict[str, object]) -> PngInfo:
    """PNG text chunks for ``meta`` (non-str values as JSON), so a picture
    carries its legend and provenance: ``Image.open(f).text['legend']``."""
    info = PngInfo()
    for key, value in meta.items():
        info.add_text(key,
                      value if isinstance(value, str) else json.dumps(value))
    return info


def palette_png(labels: np.ndarray, palette) -> Image.Image:
    """A label map as a palette PNG (pixel value = label); beyond 256
    labels, a 16-bit grey PNG."""
    if len(palette) > 256:
        return Image.fromarray(labels.astype(np.uint16))
    picture = Image.fromarray(labels.astype(np.uint8), mode='P')
    flat = np.zeros((256, 3), np.uint8)
    flat[:len(palette)] = np.asarray(palette, np.uint8)[:256]
    picture.putpalette(flat.flatten().tolist())
    return picture


def class_legend(names: Sequence[str], synonyms: Sequence[Sequence[str]],
                 with_bg: bool, labels: np.ndarray, palette) -> list:
    """The legend of a prediction, every class: name, other synonyms,
    colour (None for the background, label 0 when ``with_bg``) and share
    of the pixels."""
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
    """The prediction over the photo (background uncoloured), the banner
    ``note`` on top and the legend (:func:`legend_entries`) below it."""
    entries, footer = legend_entries(legend, every_class)
    picture = Image.fromarray(
        overlay_labels(rgb, labels, palette, opacity, 0 if with_bg else None))
    top = 0
    if note:
        picture, top = draw_banner(picture, note)
    return draw_legend(picture, entries, top, footer=footer)
