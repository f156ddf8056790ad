# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""An export folder, checked once when opened, and mmseg's zero-shot
segmentation of whole images with it."""
import functools
import math
import os
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import onnxruntime as ort

from groupvit_common import export_format, files
from groupvit_common.checks import (check_bg_thresh, check_stride, is_int,
                                    is_number)
from groupvit_common.errors import DataFileError, shown
from groupvit_common.vocabulary import check_template
from groupvit_common.window_grid import window_boxes
from .image_ops import (normalize, read_rgb, rescale_size,
                        resize_float_bilinear, resize_uint8_bilinear)
from .tokenizer import ClipTokenizer

__all__ = ['OnnxSegmenter', 'ExportError', 'read_export']

AGAIN = 'export again with tools/deployment/pytorch2onnx.py.'
#: Most bytes of deploy.json, of a graph (protobuf's limit), of the BPE file.
MAX_DEPLOY_BYTES, MAX_GRAPH_BYTES, MAX_BPE_BYTES = 16 << 20, 2 << 30, 16 << 20


class ExportError(ValueError):
    """An export folder that cannot be used."""


def _list_of(count: int, rule) -> Callable[[Any], bool]:
    """A test: a list of ``count`` values that ``rule`` takes."""
    return lambda value: (
        isinstance(value, list) and len(value) == count and all(
            rule(v) for v in value))


_PAIR = _list_of(2, lambda v: is_int(v) and v >= 1)
_RGB = _list_of(3, lambda v: is_number(v) and math.isfinite(v))
#: The protocol's values the runner reads: key, test, what it must be.
_VALUES = (
    ('resize', lambda v: isinstance(v, dict) and v.get('keep_ratio') is True,
     'a keep-ratio resize'),
    ('resize.scale', _PAIR, 'two positive integers'),
    ('crop_size', _PAIR, 'two positive integers'),
    ('stride', _PAIR, 'two positive integers'),
    ('mean', _RGB, 'three finite numbers (RGB)'),
    ('std', _RGB, 'three finite numbers (RGB)'),
    ('std', lambda v: all(x > 0 for x in v), 'positive'),
    ('with_bg', lambda v: isinstance(v, bool), 'true or false'),
    ('context_length', lambda v: is_int(v) and v >= 3,
     'an integer of at least 3'),
    ('templates', lambda v: isinstance(v, list) and v,
     'a list of texts with one "{}" each'),
    ('classes', lambda v: isinstance(v, list) and v and all(
        isinstance(c, list) and c and all(
            isinstance(n, str) and n.strip() for n in c)
        for c in v), 'a list of non-empty lists of names'),
)


def _check_values(protocol: dict, image_inputs: list) -> None:
    """Raise ``ValueError`` unless the runner can use every value of
    ``protocol`` with the image graph of ``image_inputs``."""
    if not isinstance(protocol, dict):
        raise ValueError('"protocol" must be a mapping')
    for key, test, what in _VALUES:
        value = functools.reduce(dict.get, key.split('.'), protocol)
        if not test(value):
            raise ValueError(f'protocol.{key} must be {what}, got '
                             f'{shown(value)}')
    scale, crop = protocol['resize']['scale'], protocol['crop_size']
    if scale[0] * scale[1] > files.MAX_IMAGE_PIXELS:
        raise ValueError(
            f'protocol.resize.scale {scale} would resize a photo to more '
            f'than the {files.MAX_IMAGE_PIXELS:,} pixels an image may have')
    check_stride(crop, protocol['stride'], 'protocol')
    window = image_inputs[0].shape[2:]  # fixed, or names of sizes
    if all(isinstance(v, int) for v in window) and window != crop:
        raise ValueError(f'protocol.crop_size {crop} is not the image '
                         f'graph\'s window {window}')
    names = [i.name for i in image_inputs]
    if protocol['with_bg'] != ('bg_thresh' in names):
        raise ValueError(f'protocol.with_bg is {protocol["with_bg"]} but the '
                         f'image graph takes {names}')
    for template in protocol['templates']:
        try:
            check_template(template)
        except (TypeError, ValueError) as e:
            raise ValueError(f'protocol.templates: {e}') from None
    check_bg_thresh(protocol.get('bg_thresh'), 'protocol.bg_thresh')


def _read_file(export_dir: str, name: Any, limit: int) -> bytes:
    """The bytes of a regular file (not a link) of the export folder."""
    if not isinstance(name, str) or osp.basename(name) != name or name in (
            '', '.', '..'):
        raise ExportError(f'{export_dir}: deploy.json names the file '
                          f'{name!r}, which is not a file of the export '
                          f'folder; {AGAIN}')
    path = osp.join(export_dir, name)
    if not osp.lexists(path):
        raise ExportError(f'{export_dir} lacks {name!r}; {AGAIN}')
    if osp.islink(path):
        raise ExportError(f'{path} is a symbolic link; an export holds its '
                          f'own files: {AGAIN}')
    return files.read_bytes(path, limit, 'export file')


def read_export(export_dir: str) -> Tuple[dict, Dict[str, bytes]]:
    """``deploy.json`` and ``{'image', 'text', 'bpe': bytes}``, each file
    checked against its recorded SHA-256."""
    meta_path = osp.join(export_dir, export_format.DEPLOY_FILE)
    if not osp.isfile(meta_path):
        raise ExportError(
            f'{export_dir} is not an ONNX export (no deploy.json); '
            f'create one with tools/deployment/pytorch2onnx.py.')
    try:
        meta = files.read_json(meta_path, MAX_DEPLOY_BYTES, 'deploy.json')
        if not isinstance(meta, dict):
            raise ExportError(f'{meta_path} is not a JSON object; {AGAIN}')
        if meta.get('format') in export_format.OLD_FORMATS:
            raise ExportError(
                f'{meta_path} is an export of an earlier version '
                f'({meta["format"]!r}, whose files carry no digest to check '
                f'them by); {AGAIN}')
        if meta.get('format') != export_format.FORMAT:
            raise ExportError(f'{meta_path} is not an export of this '
                              f'version ({export_format.FORMAT!r}); {AGAIN}')
        try:
            names = dict(
                image=meta['image_graph']['file'],
                text=meta['text_graph']['file'],
                bpe=meta['tokenizer']['bpe_file'])
        except (KeyError, TypeError) as e:
            raise ExportError(f'{meta_path} lacks {e}; {AGAIN}') from None
        data = {}
        for key, name in names.items():
            limit = MAX_BPE_BYTES if key == 'bpe' else MAX_GRAPH_BYTES
            data[key] = _read_file(export_dir, name, limit)
    except DataFileError as e:
        raise ExportError(f'{str(e).rstrip(".")}; {AGAIN}') from None
    recorded = meta.get('sha256')
    if not isinstance(recorded, dict):
        raise ExportError(f'{meta_path} lacks the digests of its files '
                          f'(sha256); {AGAIN}')
    by_name = {names[k]: v for k, v in data.items()}
    found = export_format.digests(meta.get('protocol'), by_name)
    differ = [name for name in found if recorded.get(name) != found[name]]
    if differ:
        raise ExportError(
            f'{export_dir}: {" and ".join(differ)} differ from what was '
            f'exported and checked (SHA-256 in deploy.json): the export was '
            f'edited or damaged; {AGAIN}')
    return meta, data


#: Channels resized, prompts encoded at a time (bounds memory).
CHANNELS_PER_STEP, PROMPTS_PER_STEP = 8, 256


def _run(session, outputs: List[str], feeds: dict) -> list:
    try:
        return session.run(outputs, feeds)
    except Exception as e:  # onnxruntime's errors have no common base
        reason = ' '.join(str(e).split())[:300]
        raise ExportError(f'onnxruntime failed running {session.path} '
                          f'({reason}); {AGAIN}') from None


def _session(graph: bytes,
             path: str,
             threads,
             providers,
             inputs: List[str],
             outputs: List[str],
             optional: Optional[str] = None):
    """A session of a graph's bytes (it cannot read files beside it) that
    takes ``inputs`` (``optional`` may follow) and gives ``outputs``."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Idle threads sleep instead of spinning between calls.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(
            graph, options, providers=providers or ['CPUExecutionProvider'])
    except Exception as e:  # onnxruntime's errors have no common base
        reason = ' '.join(str(e).split())[:300]
        raise ExportError(f'onnxruntime cannot load {path} ({reason}); '
                          f'{AGAIN}') from None
    session.path = path
    found = [i.name for i in session.get_inputs()]
    given = [o.name for o in session.get_outputs()]
    if found not in (inputs,
                     inputs + [optional]) or not set(outputs) <= set(given):
        raise ExportError(f'{path} takes {found} and gives {given}, not the '
                          f'export\'s {inputs} and {outputs}; {AGAIN}')
    return session


class OnnxSegmenter:
    """An export folder of ``tools/deployment/pytorch2onnx.py`` run with
    ``threads`` onnxruntime threads (None: the cores), its execution
    ``providers`` (None: CPU) and ``window_batch`` windows per call."""

    def __init__(self,
                 export_dir: str,
                 threads: Optional[int] = None,
                 providers=None,
                 window_batch: int = 2):
        if threads is not None and not (is_int(threads) and threads >= 1):
            raise ValueError(f'threads must be an integer >= 1 (leave '
                             f'--threads out for all cores), got {threads!r}')
        if not (is_int(window_batch) and window_batch >= 1):
            raise ValueError(f'window batch must be an integer >= 1 '
                             f'(--window-batch), got {window_batch!r}')
        cores = os.cpu_count() or 1
        if threads is not None and threads > cores:
            # Each thread takes memory; more than the cores only wait.
            print(f'warning: --threads {threads} is more than the {cores} '
                  f'cores of this machine; using {cores}.')
            threads = cores
        self.window_batch = window_batch
        self.meta, data = read_export(export_dir)
        self.image = _session(data['image'], osp.join(export_dir,
                                                      'image.onnx'), threads,
                              providers, ['pixels', 'class_embeds'],
                              ['scores'], 'bg_thresh')
        self.protocol = self.meta.get('protocol')
        try:
            _check_values(self.protocol, self.image.get_inputs())
        except ValueError as e:
            raise ExportError(
                f'{osp.join(export_dir, export_format.DEPLOY_FILE)}: '
                f'{str(e).rstrip(".")}; the export is damaged or was edited: '
                f'{AGAIN}') from None
        self.text = _session(data['text'], osp.join(export_dir, 'text.onnx'),
                             threads, providers, ['tokens'], ['text_features'])
        self.tokenizer = ClipTokenizer(
            osp.join(export_dir, self.meta['tokenizer']['bpe_file']),
            data['bpe'])

    def class_embeddings(
            self, classes: List[List[str]]) -> Tuple[np.ndarray, List[str]]:
        """L2-normalised class embeddings ``[K, D]`` (synonym x template
        prompts averaged) and the prompts cut at the context length."""
        templates = self.protocol['templates']
        prompts = [[t.format(name) for name in names for t in templates]
                   for names in classes]
        flat = [p for ps in prompts for p in ps]
        rows, cut = self.tokenizer.tokenize(flat,
                                            self.protocol['context_length'])
        tokens = np.asarray(rows, dtype=np.int64)
        feats = []
        for start in range(0, len(flat), PROMPTS_PER_STEP):
            part = tokens[start:start + PROMPTS_PER_STEP]
            # Positions after the longest prompt change nothing (causal).
            part = part[:, :int(part.argmax(-1).max()) + 1]
            feats.append(
                _run(self.text, ['text_features'], dict(tokens=part))[0])
        sizes = np.cumsum([len(p) for p in prompts])[:-1]
        means = np.stack(
            [c.mean(axis=0) for c in np.split(np.concatenate(feats), sizes)])
        norm = np.sqrt((means * means).sum(-1, keepdims=True))
        return (means / np.maximum(norm, np.float32(1e-12))).astype(
            np.float32), [flat[i] for i in cut]

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """Keep-ratio resize and normalisation: ``[H, W, 3]`` uint8 to
        ``[1, 3, h, w]``."""
        size = rescale_size(rgb.shape[1], rgb.shape[0],
                            self.protocol['resize']['scale'])
        return normalize(
            resize_uint8_bilinear(rgb, size), self.protocol['mean'],
            self.protocol['std'])

    def window_scores(self, windows: np.ndarray, class_embeds: np.ndarray,
                      bg_thresh: float) -> np.ndarray:
        """The image graph on ``[n, 3, H, W]`` windows: ``[n, C, H, W]``."""
        feeds = export_format.image_feeds(
            self.image,
            pixels=np.ascontiguousarray(windows),
            class_embeds=class_embeds,
            bg_thresh=np.array(bg_thresh, np.float32))
        return _run(self.image, ['scores'], feeds)[0]

    def slide(self, pixels: np.ndarray, class_embeds: np.ndarray,
              bg_thresh: float) -> np.ndarray:
        """mmseg's slide inference: ``[1, 3, h, w]`` to ``[C, h, w]``."""
        _, _, height, width = pixels.shape
        crop = self.protocol['crop_size']
        if height < crop[0] or width < crop[1]:
            raise ValueError(
                f'{height}x{width} after the resize is smaller than the '
                f'export\'s {crop[0]}x{crop[1]} window (a photo more '
                f'elongated than the resize scale '
                f'{"x".join(map(str, self.protocol["resize"]["scale"]))}); '
                f'the exported graph takes whole windows only. Crop it to a '
                f'less elongated shape, or segment it with tools/demo.py.')
        boxes = window_boxes(height, width, crop, self.protocol['stride'])
        channels = len(class_embeds) + int(self.protocol['with_bg'])
        preds = np.zeros((channels, height, width), np.float32)
        count = np.zeros((height, width), np.float32)
        for start in range(0, len(boxes), self.window_batch):
            chunk = boxes[start:start + self.window_batch]
            crops = np.concatenate(
                [pixels[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in chunk])
            scores = self.window_scores(crops, class_embeds, bg_thresh)
            for (y1, y2, x1, x2), window in zip(chunk, scores):
                preds[:, y1:y2, x1:x2] += window
                count[y1:y2, x1:x2] += 1
        return preds / count

    def predict_file(self, path: str, class_embeds: np.ndarray,
                     bg_thresh: float) -> Tuple[np.ndarray, np.ndarray]:
        """``(rgb [H, W, 3], labels [H, W] int64)`` of an image file (scores
        resized a few channels at a time; ties to the first class)."""
        rgb = read_rgb(path)
        logits = self.slide(self.preprocess(rgb), class_embeds, bg_thresh)
        labels = best = 0
        for first in range(0, len(logits), CHANNELS_PER_STEP):
            part = resize_float_bilinear(
                logits[first:first + CHANNELS_PER_STEP], rgb.shape[:2])
            index = part.argmax(0)
            value = np.take_along_axis(part, index[None], 0)[0]
            better = (value > best) | (first == 0)
            labels = np.where(better, index + first, labels)
            best = np.where(better, value, best)
        return rgb, labels.astype(np.int64)
