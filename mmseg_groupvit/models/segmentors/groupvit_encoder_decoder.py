# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Segmentor wiring for GroupViT on top of mmseg's
``MultimodalEncoderDecoder``."""
import inspect
import warnings
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import MultimodalEncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor, nn

from groupvit_common.checks import check_test_cfg
from groupvit_common.errors import ConfigValueError, ImageSizeError
from groupvit_common.palette import class_palette
from groupvit_common.vocabulary import split_background
from ...weights import check_state_dict
from ...weights.check import TRAINING_KEYS
from .large_vocabulary import LargeVocabularyMixin
from .mixed_precision import autocast, autocast_dtype, to_float32
from .postprocess import BoundedPostprocessMixin
from .sliding_windows import SlidingWindowsMixin


def describe_images(data_samples) -> str:
    """``'FILE (HxW, hxw after the test pipeline): '`` for each sample, to
    prefix an error about the batch; empty without samples."""
    if not data_samples:
        return ''
    names = []
    for sample in data_samples:
        meta = sample.metainfo
        sizes = [
            'x'.join(str(int(v)) for v in meta[key][:2])
            for key in ('ori_shape', 'img_shape') if key in meta
        ]
        sizes = ', '.join(sizes[:1] +
                          [f'{s} after the test pipeline' for s in sizes[1:]])
        names.append(f'{meta.get("img_path", "an image")} ({sizes})')
    return '; '.join(names) + ': '


def _head_default(head_type, name: str, default):
    """The default of argument ``name`` of a registered head type (its
    class, or its name in mmseg's registry); ``default`` when the head has
    no such argument."""
    cls = MODELS.get(head_type) if isinstance(head_type, str) else head_type
    if cls is None:
        return default
    param = inspect.signature(cls).parameters.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        return default
    return param.default


def _check_checkpoint_hook(module: nn.Module, state_dict: dict, prefix: str,
                           *args) -> None:
    """``load_state_dict`` pre-hook: the root call sees the whole state
    dict, so the model checks it once, there, and drops the training-only
    tensors the model does not have (``TRAINING_KEYS``)."""
    if prefix == '':
        module.check_checkpoint(state_dict)
        own = module.state_dict()
        for key in TRAINING_KEYS:
            if key not in own:
                state_dict.pop(key, None)


@MODELS.register_module()
class GroupViTEncoderDecoder(SlidingWindowsMixin, LargeVocabularyMixin,
                             BoundedPostprocessMixin,
                             MultimodalEncoderDecoder):
    """GroupViT segmentor: mmseg's ``MultimodalEncoderDecoder`` with the
    defaults and the few fixes GroupViT needs.

    ::

        predict(inputs, data_samples)
         └─ inference ─ slide_inference / whole_inference
             └─ encode_decode(window)
                 ├─ text_encoder()           -> class embeds [K, D] (cached)
                 ├─ image_encoder(window)    -> GroupViT feats (dict)
                 └─ decode_head.predict([window, feats, class embeds],
                                        metas, test_cfg)
                                            -> [B, num_classes, h, w]
         └─ postprocess_result -> resize to the original size, argmax

    The classes are the text encoder's vocabulary: the head's
    ``num_classes`` and ``out_channels`` (the vocabulary size, plus the
    background channel when the head has ``with_bg``) follow it when the
    segmentor is built and when :meth:`set_vocabulary` changes it, so a
    config sets ``model.text_encoder.vocabulary`` (or ``dataset_name``)
    alone. A config that still gives ``model.decode_head.num_classes`` must
    give that count, else building fails naming both numbers.

    Differences from the parent:

    - ``asymetric_input`` (resizing the images for the image encoder) is
      not supported: GroupViT sees each window at its own resolution, and
      ``asymetric_input=True`` is refused;
    - ``_forward`` (``mode='tensor'``) runs the whole zero-shot path, since
      the head needs the images and class embeddings, not just the backbone
      output (the parent calls ``decode_head.forward(x)``);
    - ``dataset_meta`` (read by ``mmseg.apis`` and its visualisers) names
      the classes of the current vocabulary, ``background`` first when the
      head has a background channel, so ``init_model`` and
      ``MMSegInferencer`` never label a custom vocabulary with another
      dataset's classes;
    - :meth:`contrastive` gives image and text embeddings,
      ``logits_per_image`` / ``logits_per_text`` and the symmetric
      contrastive loss, as transformers' ``GroupViTModel`` does;
    - ``slide_inference`` passes ``test_cfg.window_batch`` windows (default
      2) through the backbone at once (:class:`SlidingWindowsMixin`), and
      ``test_cfg.autocast`` (``'fp16'`` or ``'bf16'``) runs the image
      encoder under ``torch.autocast`` (:meth:`extract_feat`);
    - ``predict`` keeps memory flat in the number of classes when the dense
      score canvas at the network's size would exceed
      ``test_cfg.max_dense_scores_bytes`` (default 256 MiB; vocabularies of
      thousands of classes): same labels, no ``seg_logits``, logged once
      (:class:`LargeVocabularyMixin`);
    - ``postprocess_result`` computes the labels a few classes at a time
      when the scores resized to the original image would exceed
      ``test_cfg.max_full_size_scores_bytes`` (default 256 MiB; very large
      photos): same labels, ``seg_logits`` kept at the network's size,
      logged once (:class:`BoundedPostprocessMixin`);
    - a checkpoint whose keys or shapes differ from the model is refused,
      naming the differing architecture fields (mmengine loads
      non-strictly and would only log them);
    - ``test_cfg`` is checked when it is set (built or assigned), so a
      value that cannot give a correct result (a stride larger than the
      window, a threshold outside [0, 1], ...) fails at once with a message
      naming the key: see :func:`~.test_cfg.check_test_cfg`.

    Args:
        image_encoder (dict): :class:`GroupViT` config.
        text_encoder (dict): :class:`GroupViTTextEncoder` config.
        decode_head (dict): :class:`GroupViTHead` config (or another head);
            ``num_classes`` may be left out (it follows the vocabulary).
        asymetric_input (bool): Must be False (the default), kept for
            mmseg's signature.
        **kwargs: Passed to ``MultimodalEncoderDecoder``
            (``encoder_resolution`` is unused).
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
        super().__init__(
            image_encoder=image_encoder,
            text_encoder=text_encoder,
            decode_head=decode_head,
            asymetric_input=False,
            **kwargs)
        self._palette = None
        self.register_load_state_dict_pre_hook(_check_checkpoint_hook)

    def vocabulary_channels(self, with_bg: bool) -> int:
        """Output channels of the current vocabulary: one per class, plus
        the background channel when ``with_bg``.

        Raises:
            ConfigValueError: The vocabulary names ``background`` first (label
                0, which only a head with ``with_bg`` has) for a head without
                a background channel: every label would shift by one.
        """
        if getattr(self.text_encoder, 'background_first', False):
            # The vocabulary as given, against the head.
            split_background([['background']] + self.text_encoder.classes,
                             with_bg)
        return len(self.text_encoder.classes) + int(with_bg)

    def _init_decode_head(self, decode_head: dict) -> None:
        """Build the head with ``num_classes`` from the vocabulary; refuse a
        configured ``num_classes`` or ``out_channels`` that differs (the
        head checks their type and range)."""
        with_bg = decode_head.get(
            'with_bg',
            _head_default(decode_head.get('type'), 'with_bg', False))
        channels = self.vocabulary_channels(with_bg)
        out_channels = decode_head.get('out_channels', None)
        if out_channels is not None and out_channels != channels:
            raise ConfigValueError(
                f'model.decode_head.out_channels is {out_channels!r} but the '
                f'vocabulary has {len(self.text_encoder.classes)} classes'
                f'{" plus background" * bool(with_bg)}, so the head has '
                f'{channels} outputs. The vocabulary decides the classes: '
                f'remove model.decode_head.out_channels from the config.')
        configured = decode_head.get('num_classes', None)
        if configured is None:
            decode_head = dict(decode_head, num_classes=channels)
        super()._init_decode_head(decode_head)
        if configured is not None and self.num_classes != channels:
            count = len(self.text_encoder.classes)
            raise ConfigValueError(
                f'model.decode_head.num_classes is {self.num_classes} but '
                f'the vocabulary has {count} classes'
                f'{" plus background" * bool(with_bg)}, so the head has '
                f'{channels} outputs. The vocabulary decides the classes: '
                f'remove model.decode_head.num_classes from the config (or '
                f'set it to {channels}).')

    @property
    def test_cfg(self) -> Optional[dict]:
        """The test config (``mode``, ``crop_size``, ``stride``,
        ``bg_thresh``, ``window_batch``, ``autocast``,
        ``max_dense_scores_bytes``, ``max_full_size_scores_bytes``), checked
        when set."""
        return self._test_cfg

    @test_cfg.setter
    def test_cfg(self, test_cfg: Optional[dict]) -> None:
        check_test_cfg(test_cfg, getattr(self.image_encoder, 'patch_size',
                                         None))
        self._test_cfg = test_cfg

    def test_step(self, data) -> list:
        """mmengine's ``test_step`` (used by ``inference_model`` and the
        test loop), with the images' channels checked before the data
        preprocessor, whose mean and std would otherwise fail on a
        4-channel array with a shape error naming neither. One channel is
        accepted: the preprocessor's mean and std spread it to three."""
        inputs = data.get('inputs') if isinstance(data, dict) else None
        expected = self.image_encoder.num_channels
        for image in inputs if isinstance(inputs, (list, tuple)) else []:
            if isinstance(image, Tensor) and image.dim() == 3 and \
                    image.shape[0] not in (1, expected):
                raise ValueError(
                    f'GroupViT expects {expected}-channel images, got '
                    f'{image.shape[0]} channels (an image of shape '
                    f'{tuple(image.shape)}, channels first). Convert RGBA '
                    f'images to RGB first, e.g. array[..., :3] (mmseg\'s '
                    f'LoadImageFromFile does so with color_type="color").')
        return super().test_step(data)

    def check_checkpoint(self, state_dict: dict) -> None:
        """Refuse checkpoints whose keys or shapes differ from the model.

        mmengine loads checkpoints non-strictly and only logs mismatches,
        which would leave random weights in place silently. Called once per
        load, on the whole state dict (which is not changed); the error
        names the differing architecture fields.
        """
        check_state_dict(self, state_dict)

    def _forward(self, inputs: Tensor, data_samples=None) -> Tensor:
        """Zero-shot scores at input resolution ``[B, num_classes, H, W]``
        (no post-processing)."""
        batch_img_metas = [
            dict(img_shape=inputs.shape[2:], pad_shape=inputs.shape[2:])
        ] * inputs.shape[0]
        return self.encode_decode(inputs, batch_img_metas)

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Zero-shot scores of a batch of images (or windows).

        The parent's: cached class embeddings, one image-encoder pass
        (:meth:`extract_feat`), the head.

        Returns:
            Tensor: ``[B, num_classes, h, w]``.
        """
        class_embeds = self.text_encoder()
        feats = self.extract_feat(inputs)
        return self.decode_head.predict([inputs, feats, class_embeds],
                                        batch_img_metas, self.test_cfg)

    def extract_feat(self, inputs: Tensor) -> dict:
        """The image encoder's output for a batch of images (or windows);
        with ``test_cfg.autocast`` (``'fp16'`` or ``'bf16'``) it runs under
        ``torch.autocast`` and is returned in fp32, so the head runs in
        full precision."""
        with autocast(self.test_cfg, inputs.device):
            feats = self.image_encoder(inputs)
        if autocast_dtype(self.test_cfg) is not None:
            feats = to_float32(feats)
        return feats

    def predict(self, inputs: Tensor, data_samples=None) -> list:
        """mmseg's ``predict``; with a vocabulary so large that the dense
        score canvas would exceed ``test_cfg.max_dense_scores_bytes``
        (default 256 MiB), the same labels from compact per-window scores,
        without ``seg_logits``: see :mod:`~.large_vocabulary`. An image
        smaller than one patch after the test pipeline raises
        :class:`ImageSizeError` naming its file."""
        try:
            if self.use_large_vocabulary_path(inputs, data_samples):
                return self.predict_large_vocabulary(inputs, data_samples)
            return super().predict(inputs, data_samples)
        except ImageSizeError as error:
            # The backbone sees a tensor; name the files here.
            raise ImageSizeError(describe_images(data_samples) +
                                 str(error)) from None

    def set_vocabulary(self,
                       vocabulary=None,
                       templates: Optional[Union[str, Sequence[str]]] = None,
                       dataset_name: Optional[str] = None,
                       extra_classes=None) -> None:
        """Change the classes of a built model without rebuilding it.

        Updates the text encoder (its cache is dropped), the head's class
        count (plus background when the head has one) and
        ``dataset_meta``.

        Args:
            vocabulary: Names, synonym lists or a vocabulary file; see
                :class:`GroupViTTextEncoder`.
            templates: Template set name or list; unchanged when None.
            dataset_name (str, optional): Use a dataset's prompt names
                (e.g. ``'voc'``) when ``vocabulary`` is None.
            extra_classes: Classes appended to the vocabulary or to the
                dataset's names.
        """
        text = self.text_encoder
        before = (text.classes, text.templates, text.background_first)
        text.set_vocabulary(vocabulary, templates, dataset_name, extra_classes)
        try:
            num_classes = self.vocabulary_channels(
                getattr(self.decode_head, 'with_bg', False))
        except ConfigValueError:
            # A refused change leaves the model as it was.
            text.classes, text.templates, text.background_first = before
            text._cache_key = text._cache = None
            raise
        self._palette = None
        self.decode_head.num_classes = num_classes
        self.decode_head.out_channels = num_classes
        self.num_classes = self.out_channels = num_classes

    @property
    def dataset_meta(self) -> dict:
        """``classes`` (the first name of every class of the vocabulary,
        with ``'background'`` first when the head has a background channel)
        and a ``palette`` of as many distinct RGB colours."""
        classes = list(self.text_encoder.class_names)
        with_bg = getattr(self.decode_head, 'with_bg', False)
        if with_bg:
            classes = ['background'] + classes
        palette = self._palette
        if palette is None or len(palette) != len(classes):
            palette = class_palette(len(classes), with_bg)
        return dict(classes=classes, palette=palette)

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[dict]) -> None:
        """Keep the palette of ``meta`` when its classes are the model's;
        other class names are not taken (the vocabulary defines them), with
        a warning. ``mmseg.apis.init_model`` and ``MMSegInferencer`` assign a
        guess here when a checkpoint has no ``dataset_meta``."""
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

    def contrastive(self,
                    images: Tensor,
                    texts: Union[List[str], Tensor],
                    return_loss: bool = True) -> dict:
        """Image-text matching as in CLIP / transformers' ``GroupViTModel``.

        The temperature is ``exp(logit_scale)`` without the clamp of the
        segmentation head, as in transformers (the original clamps it to 100
        in its training loss).

        Args:
            images (Tensor): Normalised images ``[B_img, 3, H, W]``.
            texts (list[str] | Tensor): Raw strings (no template) or token
                ids ``[B_txt, L]``.
            return_loss (bool): Add the symmetric cross-entropy loss (needs
                ``B_img == B_txt``, pairs on the diagonal).

        Returns:
            dict: ``image_embeds`` ``[B_img, D]`` and ``text_embeds``
            ``[B_txt, D]`` (normalised), ``logits_per_image``
            ``[B_img, B_txt]``, ``logits_per_text`` ``[B_txt, B_img]`` and
            ``loss``.
        """
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
