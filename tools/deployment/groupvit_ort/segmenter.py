# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot segmentation of whole images with an export, step by step as
mmseg: read, resize (cv2-equal), normalise; mmseg's windows through
``image.onnx``, averaged per pixel; resized back (PyTorch-equal), argmax.
"""
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np
import onnxruntime as ort

from groupvit_common.window_grid import window_boxes
from .image_ops import (normalize, read_rgb, rescale_size,
                        resize_float_bilinear, resize_uint8_bilinear)
from .protocol import (AGAIN, ExportError, check_protocol,
                       check_runtime_options, read_export)
from .tokenizer import ClipTokenizer

__all__ = ['OnnxSegmenter', 'ExportError']

#: Channels resized at a time in post-processing (bounds memory).
CHANNELS_PER_STEP = 8


def _reason(error: Exception) -> str:
    return ' '.join(str(error).split())[:300]


def _run(session, outputs: List[str], feeds: dict) -> list:
    try:
        return session.run(outputs, feeds)
    except Exception as e:  # onnxruntime's errors have no common base
        raise ExportError(f'onnxruntime failed running {session.path} '
                          f'({_reason(e)}); {AGAIN}') from None


def _session(graph: bytes,
             path: str,
             threads,
             providers,
             inputs: List[str],
             outputs: List[str],
             optional: Optional[str] = None):
    """A session of a graph's bytes (so it cannot name files beside it to
    read) that takes ``inputs`` (``optional`` may follow) and gives
    ``outputs``."""
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
        raise ExportError(f'onnxruntime cannot load {path} ({_reason(e)}); '
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
        self.window_batch = window_batch
        self.meta, data = read_export(export_dir)
        self.image = _session(data['image'], osp.join(export_dir,
                                                      'image.onnx'), threads,
                              providers, ['pixels', 'class_embeds'],
                              ['scores'], 'bg_thresh')
        self.image_inputs = [i.name for i in self.image.get_inputs()]
        window = self.image.get_inputs()[0].shape[2:]
        self.protocol = check_protocol(
            self.meta.get('protocol'), osp.join(export_dir, 'deploy.json'),
            window if all(isinstance(v, int) for v in window) else None)
        if self.protocol['with_bg'] != ('bg_thresh' in self.image_inputs):
            raise ExportError(
                f'{export_dir}: protocol.with_bg is '
                f'{self.protocol["with_bg"]} but the image graph takes '
                f'{self.image_inputs}; {AGAIN}')
        self.text = _session(data['text'], osp.join(export_dir, 'text.onnx'),
                             threads, providers, ['tokens'], ['text_features'])
        self.tokenizer = ClipTokenizer(
            osp.join(export_dir, self.meta['tokenizer']['bpe_file']))

    def class_embeddings(self,
                         classes: List[List[str]],
                         chunk: int = 256) -> Tuple[np.ndarray, List[str]]:
        """L2-normalised class embeddings ``[K, D]`` as the text encoder
        computes them (the features of every synonym x template prompt
        averaged per class), and the prompts cut at the context length."""
        templates = self.protocol['templates']
        prompts = [[t.format(name) for name in names for t in templates]
                   for names in classes]
        flat = [p for ps in prompts for p in ps]
        rows, cut = self.tokenizer.tokenize(flat,
                                            self.protocol['context_length'])
        tokens = np.asarray(rows, dtype=np.int64)
        feats = []
        for start in range(0, len(flat), chunk):
            part = tokens[start:start + chunk]
            # Positions after the longest prompt's end change nothing
            # under the causal mask (the segmentor cuts them too).
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
        ``[1, 3, h, w]`` float32."""
        size = rescale_size(rgb.shape[1], rgb.shape[0],
                            self.protocol['resize']['scale'])
        return normalize(
            resize_uint8_bilinear(rgb, size), self.protocol['mean'],
            self.protocol['std'])

    def window_scores(self, windows: np.ndarray, class_embeds: np.ndarray,
                      bg_thresh: float) -> np.ndarray:
        """The image graph on ``[n, 3, H, W]`` windows: ``[n, C, H, W]``."""
        feeds = dict(
            pixels=np.ascontiguousarray(windows),
            class_embeds=class_embeds,
            bg_thresh=np.array(bg_thresh, np.float32))
        return _run(self.image, ['scores'],
                    {k: feeds[k]
                     for k in self.image_inputs})[0]

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
        """``(rgb [H, W, 3], labels [H, W] int64)`` of an image file: the
        scores resized to the photo a few channels at a time, argmax (ties
        to the first class)."""
        rgb = read_rgb(path)
        logits = self.slide(self.preprocess(rgb), class_embeds, bg_thresh)
        labels = best = None
        for first in range(0, len(logits), CHANNELS_PER_STEP):
            part = resize_float_bilinear(
                logits[first:first + CHANNELS_PER_STEP], rgb.shape[:2])
            index = part.argmax(0)
            value = np.take_along_axis(part, index[None], 0)[0]
            if best is None:
                labels, best = index, value
                continue
            better = value > best
            labels = np.where(better, index + first, labels)
            best = np.where(better, value, best)
        return rgb, labels.astype(np.int64)
