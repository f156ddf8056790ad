# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot segmentation of whole images with an ONNX export, in
onnxruntime and numpy, step by step as mmseg::

    photo ─ read_rgb ─ resize (cv2-equal) ─ normalise ─► [1, 3, h, w]
    windows (crop, stride; mmseg's order) ─ image.onnx ─► window scores
    sum per pixel / windows per pixel ─► [C, h, w]
    resize to the photo (PyTorch-equal bilinear) ─ argmax ─► labels
"""
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np
import onnxruntime as ort

from groupvit_common.window_grid import window_boxes
from .image_ops import (normalize, read_rgb, rescale_size,
                        resize_float_bilinear, resize_uint8_bilinear)
from .protocol import (ExportError, check_protocol, check_runtime_options,
                       read_export)
from .tokenizer import ClipTokenizer

__all__ = ['OnnxSegmenter', 'ExportError', 'window_boxes']

#: Channels resized at a time in post-processing (bounds memory).
CHANNELS_PER_STEP = 8


def _run(session, outputs: List[str], feeds: dict) -> list:
    """``session.run``; a (crafted) graph that fails is an
    :class:`ExportError`."""
    try:
        return session.run(outputs, feeds)
    except Exception as e:  # onnxruntime's errors have no common base
        reason = ' '.join(str(e).split())[:300]
        raise ExportError(f'onnxruntime failed running {session.path} '
                          f'({reason}); export again with '
                          f'tools/deployment/pytorch2onnx.py.') from None


def _check_signature(session,
                     inputs: List[str],
                     outputs: List[str],
                     optional: Optional[str] = None):
    """The graph takes ``inputs`` (``optional`` may follow), gives
    ``outputs``."""
    found = [i.name for i in session.get_inputs()]
    given = [o.name for o in session.get_outputs()]
    if found not in (inputs,
                     inputs + [optional]) or not set(outputs) <= set(given):
        raise ExportError(
            f'{session.path} takes {found} and gives {given}, not the '
            f'export\'s {inputs} and {outputs}; export again with '
            f'tools/deployment/pytorch2onnx.py.')


def _session(graph: bytes, threads: Optional[int], providers, path: str):
    """An onnxruntime session of a graph's bytes (from ``path``)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Idle threads sleep instead of spinning between calls (they would
    # take the cores from the rest of the program).
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        # From bytes: the graph cannot name files beside it (external
        # data) to read.
        session = ort.InferenceSession(
            graph, options, providers=providers or ['CPUExecutionProvider'])
    except Exception as e:  # onnxruntime's errors have no common base
        reason = ' '.join(str(e).split())[:300]
        raise ExportError(f'onnxruntime cannot load {path} ({reason}); '
                          f'export again with '
                          f'tools/deployment/pytorch2onnx.py.') from None
    session.path = path
    return session


class OnnxSegmenter:
    """An export folder of ``tools/deployment/pytorch2onnx.py``, ready to
    segment.

    Args:
        export_dir (str): The folder.
        threads (int, optional): onnxruntime threads (at most the cores).
        providers (list, optional): Execution providers (default CPU).
        window_batch (int): Windows per image-graph call. Defaults to 2.
    """

    def __init__(self,
                 export_dir: str,
                 threads: Optional[int] = None,
                 providers=None,
                 window_batch: int = 2):
        threads = check_runtime_options(threads, window_batch)
        self.meta, data = read_export(export_dir)
        self.image = _session(data['image'], threads, providers,
                              osp.join(export_dir, 'image.onnx'))
        # A head without a background channel has no threshold input.
        _check_signature(self.image, ['pixels', 'class_embeds'], ['scores'],
                         'bg_thresh')
        self.image_inputs = [i.name for i in self.image.get_inputs()]
        window = self.image.get_inputs()[0].shape[2:]
        self.protocol = check_protocol(
            self.meta.get('protocol'), osp.join(export_dir, 'deploy.json'),
            window if all(isinstance(v, int) for v in window) else None)
        if self.protocol['with_bg'] != ('bg_thresh' in self.image_inputs):
            raise ExportError(
                f'{export_dir}: protocol.with_bg is '
                f'{self.protocol["with_bg"]} but the image graph takes '
                f'{self.image_inputs}; export again with '
                f'tools/deployment/pytorch2onnx.py.')
        self.text = _session(data['text'], threads, providers,
                             osp.join(export_dir, 'text.onnx'))
        _check_signature(self.text, ['tokens'], ['text_features'])
        self.tokenizer = ClipTokenizer(
            osp.join(export_dir, self.meta['tokenizer']['bpe_file']))
        self.window_batch = window_batch

    def prompts(self,
                classes: List[List[str]],
                templates: Optional[List[str]] = None) -> List[List[str]]:
        """Per class, every (synonym x template) prompt."""
        templates = templates or self.protocol['templates']
        return [[t.format(name) for name in names for t in templates]
                for names in classes]

    def class_embeddings(self,
                         classes: List[List[str]],
                         templates: Optional[List[str]] = None,
                         chunk: int = 256) -> Tuple[np.ndarray, List[str]]:
        """L2-normalised class embeddings ``[K, D]`` as the text encoder
        computes them (prompt features averaged per class), and the prompts
        cut at the context length."""
        prompts = self.prompts(classes, templates)
        flat = [p for ps in prompts for p in ps]
        rows, cut = self.tokenizer.tokenize(flat,
                                            self.protocol['context_length'])
        tokens = np.asarray(rows, dtype=np.int64)
        feats = []
        for start in range(0, len(flat), chunk):
            part = tokens[start:start + chunk]
            # Positions after the longest prompt's end cannot change the
            # result under the causal mask (the segmentor does the same).
            length = int(part.argmax(-1).max()) + 1
            feats.append(
                _run(self.text, ['text_features'],
                     dict(tokens=part[:, :length]))[0])
        feats = np.concatenate(feats)
        sizes = np.cumsum([len(p) for p in prompts])[:-1]
        means = np.stack([c.mean(axis=0) for c in np.split(feats, sizes)])
        norm = np.sqrt((means * means).sum(-1, keepdims=True))
        return (means / np.maximum(norm, np.float32(1e-12))).astype(
            np.float32), [flat[i] for i in cut]

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """Keep-ratio resize and normalisation: ``[H, W, 3]`` uint8 to
        ``[1, 3, h, w]`` float32."""
        height, width = rgb.shape[:2]
        size = rescale_size(width, height, self.protocol['resize']['scale'])
        resized = resize_uint8_bilinear(rgb, size)
        return normalize(resized, self.protocol['mean'], self.protocol['std'])

    def window_scores(self, windows: np.ndarray, class_embeds: np.ndarray,
                      bg_thresh: float) -> np.ndarray:
        """The image graph on ``[n, 3, H, W]`` windows: ``[n, C, H, W]``."""
        feeds = dict(
            pixels=np.ascontiguousarray(windows),
            class_embeds=class_embeds,
            bg_thresh=np.array(bg_thresh, np.float32))
        # A head without a background channel has no threshold input.
        return _run(self.image, ['scores'], {
            k: v
            for k, v in feeds.items() if k in self.image_inputs
        })[0]

    def slide(self, pixels: np.ndarray, class_embeds: np.ndarray,
              bg_thresh: float) -> np.ndarray:
        """mmseg's slide inference: ``[1, 3, h, w]`` to ``[C, h, w]``."""
        _, _, height, width = pixels.shape
        crop = self.protocol['crop_size']
        if height < crop[0] or width < crop[1]:
            # The segmentor then runs windows of the image's size, but the
            # graph takes whole windows only.
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

    @staticmethod
    def resize_argmax(logits: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
        """Labels of the scores resized to ``size``, a few channels at a
        time (ties to the first class)."""
        labels = best = None
        for first in range(0, len(logits), CHANNELS_PER_STEP):
            part = resize_float_bilinear(
                logits[first:first + CHANNELS_PER_STEP], size)
            index = part.argmax(0)
            value = np.take_along_axis(part, index[None], 0)[0]
            if best is None:
                labels, best = index, value
                continue
            better = value > best
            labels = np.where(better, index + first, labels)
            best = np.where(better, value, best)
        return labels.astype(np.int64)

    def predict(self, rgb: np.ndarray, class_embeds: np.ndarray,
                bg_thresh: float) -> np.ndarray:
        """Labels ``[H, W]`` (int64) of an ``[H, W, 3]`` RGB photo."""
        logits = self.slide(self.preprocess(rgb), class_embeds, bg_thresh)
        return self.resize_argmax(logits, rgb.shape[:2])

    def predict_file(self, path: str, class_embeds: np.ndarray,
                     bg_thresh: float) -> Tuple[np.ndarray, np.ndarray]:
        """Read an image file and segment it: ``(rgb, labels)``."""
        rgb = read_rgb(path)
        return rgb, self.predict(rgb, class_embeds, bg_thresh)
