# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViT's zero-shot segmentor on mmseg's ``MultimodalEncoderDecoder``."""
import logging
import warnings
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmengine.utils import apply_to
from mmseg.models.segmentors import MultimodalEncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from groupvit_common.checks import (HALF_DTYPES, check_head_classes,
                                    check_test_cfg)
from groupvit_common.errors import ConfigValueError, ImageSizeError
from groupvit_common.palette import class_palette
from groupvit_common.vocabulary import split_background
from groupvit_common.window_grid import window_boxes
from ...weights.check import check_on_load, check_state_dict
from ..decode_heads.groupvit_head import head_with_bg, paint_scores

#: Windows per backbone pass without ``test_cfg.window_batch``.
DEFAULT_WINDOW_BATCH = 2
#: Defaults of ``test_cfg.max_dense_scores_bytes`` and
#: ``max_full_size_scores_bytes``.
MAX_DENSE_SCORES_BYTES = MAX_FULL_SIZE_SCORES_BYTES = 256 << 20
#: Working memory for the resized channels of one step.
CHUNK_BYTES = 64 << 20

Box = Tuple[int, int, int, int]
#: ``((y1, y2, x1, x2), pixel_group [B, h, w], table [B, G, C])``.
Window = Tuple[Box, Tensor, Tensor]


def describe_images(data_samples) -> str:
    """``'FILE (HxW, hxw after the test pipeline): '`` per sample."""
    names = []
    for sample in data_samples or []:
        meta = sample.metainfo
        sizes = [
            'x'.join(str(int(v)) for v in meta[key][:2])
            for key in ('ori_shape', 'img_shape') if key in meta
        ]
        sizes = ', '.join(sizes[:1] +
                          [f'{s} after the test pipeline' for s in sizes[1:]])
        names.append(f'{meta.get("img_path") or "an image array"} ({sizes})')
    return '; '.join(names) + ': ' if names else ''


@MODELS.register_module()
class GroupViTEncoderDecoder(MultimodalEncoderDecoder):
    """GroupViT segmentor on mmseg's ``MultimodalEncoderDecoder``.

    ``predict``: :meth:`window_scores` (compact, per window: a group per
    pixel, a ``[G, C]`` table), then :meth:`paint_windows` and mmseg's
    post-processing when the dense canvas fits
    ``test_cfg.max_dense_scores_bytes``, else :meth:`compact_results`. The
    head's ``num_classes`` follows the text encoder's vocabulary (plus
    background with ``with_bg``); ``test_cfg`` is checked when set and a
    checkpoint whose keys or shapes differ is refused.

    Args:
        image_encoder (dict): :class:`GroupViT` config.
        text_encoder (dict): :class:`GroupViTTextEncoder` config.
        decode_head (dict): :class:`GroupViTHead` config; ``num_classes``
            may be left out.
        asymetric_input (bool): Must be False.
        **kwargs: Passed to ``MultimodalEncoderDecoder``.
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 decode_head: dict,
                 asymetric_input: bool = False,
                 **kwargs):
        if asymetric_input:
            raise ConfigValueError(
                'model.asymetric_input=True is not supported by GroupViT, '
                'which segments every window at its own resolution. Remove '
                'it (and encoder_resolution) from the config.')
        kwargs.update(asymetric_input=False)
        super().__init__(image_encoder, text_encoder, decode_head, **kwargs)
        self._palette = None
        self.register_load_state_dict_pre_hook(check_on_load)

    def vocabulary_channels(self, with_bg: bool) -> int:
        """Output channels of the vocabulary; refuses a leading
        ``background`` without a background channel."""
        if getattr(self.text_encoder, 'background_first', False):
            split_background([['background']] + self.text_encoder.classes,
                             with_bg)
        return len(self.text_encoder.classes) + int(with_bg)

    def _init_decode_head(self, decode_head: dict) -> None:
        """Build the head with ``num_classes`` from the vocabulary."""
        with_bg = head_with_bg(decode_head)
        channels = check_head_classes(decode_head,
                                      len(self.text_encoder.classes), with_bg)
        self.vocabulary_channels(with_bg)
        if decode_head.get('num_classes', None) is None:
            decode_head = dict(decode_head, num_classes=channels)
        super()._init_decode_head(decode_head)

    @property
    def test_cfg(self) -> Optional[dict]:
        return self._test_cfg

    @test_cfg.setter
    def test_cfg(self, test_cfg: Optional[dict]) -> None:
        check_test_cfg(test_cfg, getattr(self.image_encoder, 'patch_size',
                                         None))
        self._test_cfg = test_cfg

    #: Refuse a state dict whose keys or shapes differ from the model.
    check_checkpoint = check_state_dict

    def set_vocabulary(self,
                       vocabulary=None,
                       templates: Optional[Union[str, Sequence[str]]] = None,
                       dataset_name: Optional[str] = None,
                       extra_classes=None) -> None:
        """Change the classes (arguments of
        :meth:`GroupViTTextEncoder.set_vocabulary`); a refused change leaves
        the model as it was."""
        text = self.text_encoder
        before = (text.classes, text.templates, text.background_first)
        text.set_vocabulary(vocabulary, templates, dataset_name, extra_classes)
        try:
            num_classes = self.vocabulary_channels(
                getattr(self.decode_head, 'with_bg', False))
        except ConfigValueError:
            text.classes, text.templates, text.background_first = before
            raise
        self._palette = None
        self.decode_head.num_classes = num_classes
        self.decode_head.out_channels = num_classes
        self.num_classes = self.out_channels = num_classes

    @property
    def dataset_meta(self) -> dict:
        """``classes`` (``'background'`` first with ``with_bg``) and
        ``palette``."""
        with_bg = getattr(self.decode_head, 'with_bg', False)
        classes = ['background'] * with_bg + self.text_encoder.class_names
        palette = self._palette
        if palette is None or len(palette) != len(classes):
            palette = class_palette(len(classes), with_bg)
        return dict(classes=classes, palette=palette)

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[dict]) -> None:
        """Keep ``meta``'s palette for the model's classes; warn on others."""
        if not meta or meta.get('classes') is None:
            return
        current = self.dataset_meta['classes']
        if list(meta['classes']) == current:
            palette = meta.get('palette')
            if palette is not None and len(palette) >= len(current):
                self._palette = [list(c) for c in palette[:len(current)]]
            return
        shown = ', '.join(current[:6]) + ', ...' * (len(current) > 6)
        warnings.warn(
            f'GroupViT names its classes after its vocabulary ({shown}); '
            f'the assigned dataset_meta classes are not used. Change them '
            f'with model.set_vocabulary(...).')

    def test_step(self, data) -> list:
        """``test_step``, checking image channels and that a batch's images
        have one size before the preprocessor (whose errors would name
        neither)."""
        inputs = data.get('inputs') if isinstance(data, dict) else None
        images = [
            image
            for image in (inputs if isinstance(inputs, (list, tuple)) else [])
            if isinstance(image, Tensor) and image.dim() == 3
        ]
        for image in images:
            self.image_encoder.check_channels(image.shape, gray=True)
        if len({image.shape[1:] for image in images}) > 1:
            raise ImageSizeError(
                describe_images(data.get('data_samples')) +
                'a batch of images of different sizes, which mmseg\'s data '
                'preprocessor cannot stack. Set --cfg-options '
                'test_dataloader.batch_size=1 (slide windows are batched by '
                'model.test_cfg.window_batch), call MMSegInferencer with '
                'batch_size=1, or give inference_model one '
                'image per call.')
        return super().test_step(data)

    def predict(self, inputs: Tensor, data_samples=None) -> list:
        """mmseg's ``predict`` of ``[B, 3, H, W]`` through the compact
        window scores: ``pred_sem_seg`` ``[1, H, W]`` and ``seg_logits``
        (or the metainfo ``score_channels``)."""
        if data_samples is None:
            shape = inputs.shape[2:]
            meta = dict(ori_shape=shape, img_shape=shape, pad_shape=shape)
            metas = [meta] * inputs.shape[0]
        else:
            metas = [sample.metainfo for sample in data_samples]
        try:
            windows = self.window_scores(inputs)
        except ImageSizeError as error:
            raise ImageSizeError(describe_images(data_samples) +
                                 str(error)) from None
        if self.keeps_seg_logits(inputs, metas):
            return self.postprocess_result(
                self.paint_windows(windows, inputs, metas), data_samples)
        return self.compact_results(windows, inputs, data_samples)

    def inference(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Dense scores ``[B, C, H, W]`` (whole or slide)."""
        return self.paint_windows(
            self.window_scores(inputs), inputs, batch_img_metas)

    def window_scores(self, inputs: Tensor) -> List[Window]:
        """A :data:`Window` per window of ``[B, 3, H, W]`` in mmseg's order."""
        test_cfg = self.test_cfg or {}
        batch_size, _, height, width = inputs.shape
        if test_cfg.get('mode', 'whole') == 'slide':
            boxes = window_boxes(height, width, tuple(test_cfg['crop_size']),
                                 tuple(test_cfg['stride']))
            per_pass = test_cfg.get('window_batch') or DEFAULT_WINDOW_BATCH
        else:
            boxes, per_pass = [(0, height, 0, width)], 1
        class_embeds = self.text_encoder()
        windows = []
        for start in range(0, len(boxes), per_pass):
            chunk = boxes[start:start + per_pass]
            # Window-major: crops.split(B) gives the windows of ``chunk``.
            crops = torch.cat(
                [inputs[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in chunk])
            pixel_group, table = self.compact_scores(crops, class_embeds)
            windows += zip(chunk, pixel_group.split(batch_size),
                           table.split(batch_size))
        return windows

    def compact_scores(self, inputs: Tensor,
                       class_embeds: Tensor) -> Tuple[Tensor, Tensor]:
        """:meth:`GroupViTHead.assign` of windows ``[N, 3, h, w]`` and
        ``class_embeds`` ``[K, D]``, with ``test_cfg.bg_thresh``."""
        feats = self.extract_feat(inputs)
        return self.decode_head.assign([inputs, feats, class_embeds],
                                       bg_thresh=(self.test_cfg
                                                  or {}).get('bg_thresh'))

    def extract_feat(self, inputs: Tensor) -> dict:
        """Image features; under ``test_cfg.autocast``, returned in fp32."""
        dtype = HALF_DTYPES.get((self.test_cfg or {}).get('autocast'))
        if dtype is None:
            return self.image_encoder(inputs)
        with torch.autocast(inputs.device.type, getattr(torch, dtype)):
            feats = self.image_encoder(inputs)
        return apply_to(
            feats, lambda x: isinstance(x, Tensor) and x.is_floating_point(),
            lambda x: x.float())

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Dense scores ``[B, C, h, w]`` at the metas' target size."""
        return self.decode_head.predict_by_feat(
            self._forward(inputs), batch_img_metas)

    def _forward(self, inputs: Tensor, data_samples=None) -> Tensor:
        """Zero-shot scores ``[B, C, H, W]`` at input resolution."""
        return paint_scores(*self.compact_scores(inputs, self.text_encoder()))

    def keeps_seg_logits(self, inputs: Tensor, metas: List[dict]) -> bool:
        """Whether ``predict`` paints ``seg_logits``: the canvas fits, one
        channel (mmseg's sigmoid rule), or ``whole`` mode resizes."""
        test_cfg = self.test_cfg or {}
        budget = test_cfg.get('max_dense_scores_bytes', MAX_DENSE_SCORES_BYTES)
        if self.out_channels < 2 or dense_scores_bytes(
                inputs, self.out_channels) <= budget:
            return True
        return test_cfg.get('mode', 'whole') != 'slide' and any(
            self.decode_head.target_size(meta) != tuple(inputs.shape[2:])
            for meta in metas)

    def paint_windows(self, windows: List[Window], inputs: Tensor,
                      metas: List[dict]) -> Tensor:
        """Dense scores ``[B, C, H, W]``; resized as mmseg's head in
        ``whole`` mode."""
        scores = average_windows(
            windows, window_counts(inputs, [box for box, _, _ in windows]))
        if (self.test_cfg or {}).get('mode', 'whole') == 'slide':
            return scores
        return self.decode_head.predict_by_feat(scores, metas)

    def postprocess_result(self, seg_logits: Tensor, data_samples=None):
        """mmseg's post-processing of ``[B, C, h, w]`` scores; above
        ``test_cfg.max_full_size_scores_bytes`` labels come from
        :func:`step_labels` and ``seg_logits`` stays at ``[C, h, w]``."""
        parent = super().postprocess_result
        channels = seg_logits.shape[1]
        if data_samples is None or channels == 1:
            return parent(seg_logits, data_samples)
        budget = (self.test_cfg or {}).get('max_full_size_scores_bytes',
                                           MAX_FULL_SIZE_SCORES_BYTES)
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            height, width = meta['ori_shape'][:2]
            full_bytes = channels * height * width * seg_logits.element_size()
            if full_bytes <= budget:
                parent(seg_logits[i:i + 1], [sample])
                continue
            logits = seg_logits[i:i + 1]
            labels = step_labels(lambda first, last: logits[:, first:last],
                                 channels, meta, logits.shape[2:],
                                 self.align_corners)
            warn_once(
                'bounded postprocess',
                f'Scores of {channels} classes at {height}x{width} would '
                f'take {full_bytes / 2**30:.1f} GiB (more than '
                f'test_cfg.max_full_size_scores_bytes = '
                f'{budget / 2**20:.0f} MiB): the labels are computed in '
                f'steps and seg_logits is kept at the network resolution. '
                f'Raise test_cfg.max_full_size_scores_bytes to keep '
                f'full-size scores.')
            sample.set_data(
                dict(
                    seg_logits=PixelData(
                        data=unpad_and_unflip(logits, meta)[0]),
                    pred_sem_seg=PixelData(data=labels)))
        return list(data_samples)

    def compact_results(self,
                        windows: List[Window],
                        inputs: Tensor,
                        data_samples: Optional[Sequence] = None) -> list:
        """Labels ``[1, H, W]`` without a dense score map
        (:func:`step_labels`); metainfo ``score_channels``, no
        ``seg_logits``."""
        channels = windows[0][2].shape[-1]
        count = window_counts(inputs, [box for box, _, _ in windows])
        samples = data_samples
        if samples is None:
            samples = [SegDataSample() for _ in range(inputs.shape[0])]
        for index, sample in enumerate(samples):
            image = slice(index, index + 1)
            labels = step_labels(
                lambda first, last: average_windows(windows, count, image,
                                                    slice(first, last)),
                channels, None if data_samples is None else sample.metainfo,
                inputs.shape[2:], self.align_corners)
            sample.set_metainfo(dict(score_channels=channels))
            sample.set_data(dict(pred_sem_seg=PixelData(data=labels)))
        warn_once(
            'compact scores',
            f'Scores of {channels} classes at {inputs.shape[2]}x'
            f'{inputs.shape[3]} would take '
            f'{dense_scores_bytes(inputs, channels) / 2**20:.0f} MiB per '
            f'batch (more than test_cfg.max_dense_scores_bytes): the labels '
            f'are computed a few classes at a time from each window\'s '
            f'groups, and the results hold no seg_logits. Raise '
            f'test_cfg.max_dense_scores_bytes to keep them.')
        return list(samples)

    def contrastive(self,
                    images: Tensor,
                    texts: Union[List[str], Tensor],
                    return_loss: bool = True) -> dict:
        """Image-text matching of ``images`` ``[B_img, 3, H, W]`` and
        ``texts`` (strings or token ids ``[B_txt, L]``) as transformers'
        ``GroupViTModel``: ``image_embeds`` ``[B_img, D]``, ``text_embeds``
        ``[B_txt, D]``, ``logits_per_image`` ``[B_img, B_txt]``,
        ``logits_per_text`` and the symmetric ``loss`` (pairs on the
        diagonal) with ``return_loss``."""
        feats = self.image_encoder(images)
        if isinstance(texts, Tensor):
            text_embeds = self.text_encoder.encode_tokens(texts)
        else:
            text_embeds = self.text_encoder.encode_text(list(texts))
        image_embeds = F.normalize(feats['image_embeds'], dim=-1)
        text_embeds = F.normalize(text_embeds, dim=-1)
        logits_per_text = text_embeds @ image_embeds.t() * \
            self.decode_head.logit_scale.exp()
        out = dict(
            image_embeds=image_embeds,
            text_embeds=text_embeds,
            logits_per_image=logits_per_text.t(),
            logits_per_text=logits_per_text)
        if return_loss:
            target = torch.arange(len(logits_per_text), device=images.device)
            out['loss'] = (F.cross_entropy(logits_per_text, target) +
                           F.cross_entropy(logits_per_text.t(), target)) / 2
        return out


def window_counts(inputs: Tensor, boxes: List[Box]) -> Tensor:
    """How many windows cover each pixel: ``[1, 1, H, W]``."""
    count = inputs.new_zeros((1, 1) + tuple(inputs.shape[2:]))
    for y1, y2, x1, x2 in boxes:
        count[:, :, y1:y2, x1:x2] += 1
    return count


def dense_scores_bytes(inputs: Tensor, channels: int) -> int:
    """Bytes of the dense score canvas ``[B, channels, H, W]``."""
    return inputs[:, :1].numel() * channels * inputs.element_size()


def average_windows(
    windows: List[Window],
    count: Tensor,
    images: slice = slice(None),
    classes: slice = slice(None)
) -> Tensor:
    """mmseg's slide canvas ``[b, c, H, W]`` of ``images`` and
    ``classes``: window scores summed in order, divided by ``count``."""
    table = windows[0][2][images, :, classes]
    canvas = count.new_zeros((table.shape[0], table.shape[2]) +
                             tuple(count.shape[2:]))
    for (y1, y2, x1, x2), pixel_group, table in windows:
        canvas[:, :, y1:y2, x1:x2] += paint_scores(pixel_group[images],
                                                   table[images, :, classes])
    return canvas / count


def step_labels(scores: Callable[[int, int],
                                 Tensor], channels: int, meta: Optional[dict],
                size: Tuple[int, int], align_corners: bool) -> Tensor:
    """Labels ``[1, H, W]`` (int64): the argmax of ``scores(first, last)``
    ``[1, last - first, h, w]`` over ``channels`` classes, a few at a time,
    post-processed with ``meta`` (None: kept at ``size`` ``(h, w)``) as
    mmseg's ``postprocess_result``, bit for bit."""
    out = tuple(size) if meta is None else tuple(meta['ori_shape'][:2])
    step = channels_per_step((max(out[0], size[0]), max(out[1], size[1])))
    labels = best = None
    for first in range(0, channels, step):
        part = scores(first, min(first + step, channels))
        if meta is not None:
            part = F.interpolate(
                unpad_and_unflip(part, meta),
                size=out,
                mode='bilinear',
                align_corners=align_corners)
        value, index = part[0].max(dim=0)  # the first maximum, as argmax
        index += first
        if best is None:
            labels, best = index, value
            continue
        better = value > best
        torch.maximum(best, value, out=best)
        labels[better] = index[better]
    return labels[None]


def channels_per_step(size: Tuple[int, int]) -> int:
    """How many fp32 maps of ``size`` fit in :data:`CHUNK_BYTES`, >= 1."""
    return max(1, CHUNK_BYTES // (int(size[0]) * int(size[1]) * 4))


def unpad_and_unflip(logits: Tensor, meta: dict) -> Tensor:
    """Undo padding and flipping of ``[1, C, h, w]`` scores as mmseg's
    ``postprocess_result`` does (Apache-2.0), without its resize and
    sigmoid."""
    height, width = logits.shape[-2:]
    padding = meta.get('img_padding_size', meta.get('padding_size', None))
    left, right, top, bottom = padding or [0] * 4
    logits = logits[:, :, top:height - bottom, left:width - right]
    if meta.get('flip', None):
        direction = meta.get('flip_direction', None)
        if direction not in ('horizontal', 'vertical'):
            raise ValueError(f'Unknown flip_direction {direction!r} in the '
                             f'image meta; expected horizontal or vertical.')
        logits = logits.flip(
            dims=(3, ) if direction == 'horizontal' else (2, ))
    return logits


_warned_keys = set()


def warn_once(key: str, message: str) -> None:
    """Log ``message`` as a warning once per ``key`` and process."""
    if key in _warned_keys:
        return
    _warned_keys.add(key)
    print_log(message, logger='current', level=logging.WARNING)
