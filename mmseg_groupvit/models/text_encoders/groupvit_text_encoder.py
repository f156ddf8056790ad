# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViT text encoder: a CLIP-style causal transformer plus an MLP
projection head, turning a vocabulary into class embeddings.

Paper: Xu et al., "GroupViT: Semantic Segmentation Emerges from Text
Supervision", CVPR 2022, https://arxiv.org/abs/2202.11094. Re-implemented
after the original ``models/transformer.py`` and ``build_text_embedding``
(https://github.com/NVlabs/GroupViT, NVIDIA Source Code License) and
transformers' ``GroupViTTextTransformer`` (Apache-2.0); the calling contract
(``forward()`` without arguments returns the class embeddings) is the one of
mmseg's ``CLIPTextEncoder``.
"""
import itertools
import os
import os.path as osp
import warnings
from collections import defaultdict
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import tokenize
from mmseg.utils.tokenizer import _tokenizer
from torch import nn

from groupvit_common.checks import check_positive_int
from groupvit_common.errors import ConfigValueError
from groupvit_common.vocabulary import split_background
from ...utils import get_prompt_classes, get_templates, load_vocabulary
from ..layers import ProjectionMLP, TransformerBlock

Vocabulary = Union[str, Sequence[Union[str, Sequence[str]]]]


def _read_vocabulary(value: Vocabulary, key: str) -> List[List[str]]:
    """:func:`load_vocabulary`, with a bare word given where a file or a
    list is expected (``--cfg-options model.text_encoder.extra_classes=grass``)
    named as such."""
    if isinstance(value, (str, os.PathLike)) and not osp.exists(value) and \
            os.sep not in os.fspath(value) and \
            not osp.splitext(os.fspath(value))[1]:
        raise ConfigValueError(
            f'model.text_encoder.{key} {os.fspath(value)!r} is neither a '
            f'vocabulary file nor a list of class names. Give a list, e.g. '
            f'--cfg-options "model.text_encoder.{key}=[{value}]", or the '
            f'path of a text file with one class per line.')
    return load_vocabulary(value)


def _check_background(classes: List[List[str]]) -> None:
    """Refuse ``background`` anywhere but first: it names the head's
    background channel, label 0, and is never prompted, so a second one (for
    example from ``extra_classes``) would be a prompted class with the same
    name as label 0."""
    for names in classes:
        if any(name.casefold() == 'background' for name in names):
            raise ConfigValueError(
                f'"background" is a name of the prompted class '
                f'"{", ".join(names)}", but it may only be the first class, '
                f'alone: it names label 0, the background channel, which is '
                f'never prompted. Remove it from the vocabulary or the extra '
                f'classes.')


def _check_distinct_tokens(classes: List[List[str]]) -> None:
    """Refuse names of different entries that the CLIP tokenizer turns into
    the same tokens (``t-shirt`` and ``t - shirt``, ``tv/monitor`` and
    ``tv / monitor``): their prompts, and so their classes, would be the
    same."""
    seen = defaultdict(list)
    for index, names in enumerate(classes):
        for name in names:
            seen[tuple(_tokenizer.encode(name))].append((index, name))
    clashes = [
        entries for entries in seen.values()
        if len({index
                for index, _ in entries}) > 1 or len(entries) > 1
    ]
    if clashes:
        listed = '; '.join(' and '.join(repr(name) for _, name in entries)
                           for entries in clashes)
        raise ConfigValueError(
            f'Vocabulary names that differ only in spacing or case tokenize '
            f'the same and would give identical prompts: {listed}. Keep one '
            f'of each.')


def _read_text_options(
    vocabulary: Optional[Vocabulary],
    templates: Optional[Union[str, Sequence[str]]],
    dataset_name: Optional[str], extra_classes: Optional[Vocabulary]
) -> Tuple[List[List[str]], Optional[List[str]], bool]:
    """Read and check the text options of :meth:`GroupViTTextEncoder.
    set_vocabulary`.

    Returns:
        tuple: The classes (synonym lists, without a leading
        ``background``), the templates (None: keep the current ones) and
        whether a leading ``background`` was dropped.
    """
    if vocabulary is None and dataset_name is None:
        raise ValueError(
            'GroupViTTextEncoder needs a `vocabulary` (class names, '
            'synonym lists or a vocabulary file) or a `dataset_name` '
            '(e.g. "voc").')
    if vocabulary is None:
        classes = load_vocabulary(list(get_prompt_classes(dataset_name)))
    else:
        classes = _read_vocabulary(vocabulary, 'vocabulary')
    classes, background_first = split_background(classes)
    if extra_classes is not None:
        # Loaded together so that a repeated name is reported.
        classes = load_vocabulary(
            classes + _read_vocabulary(extra_classes, 'extra_classes'))
    _check_background(classes)
    _check_distinct_tokens(classes)
    if templates is not None:
        templates = list(get_templates(templates))
    return classes, templates, background_first


def _forget_weights(module, incompatible_keys) -> None:
    """``load_state_dict`` post-hook: the weights are gathered again."""
    module._weights = None


@MODELS.register_module()
class GroupViTTextEncoder(BaseModule):
    """GroupViT text encoder.

    ``forward()`` returns one L2-normalised embedding per class ``[K, D]``,
    in the order of the vocabulary. Every prompt (class name or synonym x
    template) is tokenised with ``mmseg.utils.tokenize``, encoded, and
    projected; the **un-normalised projected** vectors of a class are averaged
    and the mean is L2-normalised, as the original ``build_text_embedding``
    does (CLIP normalises each template first; the two agree for a single
    template). The result is cached per vocabulary, templates, device and
    weights, so evaluation encodes the text once.

    Prompts are only encoded up to the longest prompt's end token: under the
    causal mask the later positions cannot change the pooled feature, so
    this is exact and saves most of the text cost.

    Every architecture field of transformers' ``GroupViTTextConfig`` is an
    argument with the same default.

    Args:
        vocabulary (str | list, optional): Class names, a list whose items are
            names or lists of synonyms, or the path of a vocabulary file (one
            class per line, comma-separated synonyms; see
            :func:`mmseg_groupvit.utils.load_vocabulary`). A leading
            ``'background'`` is dropped: it names the head's background
            channel and is never prompted.
        dataset_name (str, optional): A prompt-name list of
            :func:`mmseg_groupvit.utils.get_prompt_classes` (e.g. ``'voc'``);
            a leading ``'background'`` is dropped. Used when ``vocabulary``
            is None, so a config can default to the dataset's names and
            ``--cfg-options model.text_encoder.vocabulary=...`` overrides
            them.
        extra_classes (str | list, optional): Classes appended after
            ``vocabulary`` or the dataset's names, in the same forms as
            ``vocabulary`` (e.g. ``dataset_name='voc',
            extra_classes=['grass', 'sky, clouds']``). A name that is
            already in the vocabulary raises a ValueError naming it.
        templates (str | list[str]): Template-set name (``simple``,
            ``subset``, ``full``, ``identity``) or a list of templates with
            one ``{}``. Defaults to 'simple' (``a photo of a {}.``).
        vocab_size (int): Token vocabulary. Defaults to 49408.
        hidden_size (int): Width. Defaults to 256.
        intermediate_size (int): MLP hidden channels. Defaults to 1024.
        num_hidden_layers (int): Blocks. Defaults to 12.
        num_attention_heads (int): Heads. Defaults to 4.
        max_position_embeddings (int): Context length. Defaults to 77.
        hidden_act (str): Activation. Defaults to 'quick_gelu'.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-5.
        dropout (float): Unused at inference; kept for config parity.
            Defaults to 0.
        attention_dropout (float): Attention dropout. Defaults to 0.
        eos_token_id (int): End-of-text id; the feature at its position is
            the sentence feature. Defaults to 49407.
        projection_dim (int): Output channels. Defaults to 256.
        projection_intermediate_dim (int): Projection hidden channels.
            Defaults to 4096.
        frozen (bool): Freeze all weights (mmseg's text encoders always
            are) and stay in eval mode under ``model.train()``, so the
            projector's BatchNorm keeps its running statistics.
            Defaults to True.
        chunk_size (int): Prompts encoded per forward pass, which bounds
            memory for large vocabularies. Defaults to 256.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 vocabulary: Optional[Vocabulary] = None,
                 dataset_name: Optional[str] = None,
                 templates: Union[str, Sequence[str]] = 'simple',
                 extra_classes: Optional[Vocabulary] = None,
                 vocab_size: int = 49408,
                 hidden_size: int = 256,
                 intermediate_size: int = 1024,
                 num_hidden_layers: int = 12,
                 num_attention_heads: int = 4,
                 max_position_embeddings: int = 77,
                 hidden_act: str = 'quick_gelu',
                 layer_norm_eps: float = 1e-5,
                 dropout: float = 0.0,
                 attention_dropout: float = 0.0,
                 eos_token_id: int = 49407,
                 projection_dim: int = 256,
                 projection_intermediate_dim: int = 4096,
                 frozen: bool = True,
                 chunk_size: int = 256,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.context_length = max_position_embeddings
        self.eos_token_id = eos_token_id
        self.chunk_size = check_positive_int(
            chunk_size, 'model.text_encoder.chunk_size',
            'prompts encoded per forward pass')
        self.token_embedding = nn.Embedding(vocab_size, hidden_size)
        self.positional_embedding = nn.Parameter(
            torch.zeros(max_position_embeddings, hidden_size))
        self.blocks = nn.ModuleList([
            TransformerBlock(hidden_size, num_attention_heads,
                             intermediate_size, hidden_act, layer_norm_eps,
                             attention_dropout)
            for _ in range(num_hidden_layers)
        ])
        self.final_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.projector = ProjectionMLP(hidden_size,
                                       projection_intermediate_dim,
                                       projection_dim)
        self.frozen = frozen
        self._cache_key = None
        self._cache = None
        self._weights = None
        self.register_load_state_dict_post_hook(_forget_weights)
        self.set_vocabulary(vocabulary, templates, dataset_name, extra_classes)
        if frozen:
            self.requires_grad_(False)

    def train(self, mode: bool = True):
        """A frozen encoder ignores ``train()`` and stays in eval mode."""
        return super().train(mode and not self.frozen)

    def init_weights(self):
        """CLIP's text-tower initialisation, as the original's
        ``TextTransformer``: token embedding ``N(0, 0.02)``, position
        embedding ``N(0, 0.01)``, attention ``N(0, width^-0.5)`` (zero
        biases), output projections ``N(0, width^-0.5 (2 layers)^-0.5)``,
        MLP input ``N(0, (2 width)^-0.5)``; then ``init_cfg``."""
        if self.init_cfg is not None:
            super().init_weights()
            return
        width = self.positional_embedding.shape[1]
        proj_std = width**-0.5 * (2 * len(self.blocks))**-0.5
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for block in self.blocks:
            nn.init.normal_(block.attn.qkv.weight, std=width**-0.5)
            nn.init.zeros_(block.attn.qkv.bias)
            nn.init.normal_(block.attn.proj.weight, std=proj_std)
            nn.init.zeros_(block.attn.proj.bias)
            nn.init.normal_(block.mlp.fc1.weight, std=(2 * width)**-0.5)
            nn.init.normal_(block.mlp.fc2.weight, std=proj_std)

    # ------------------------------------------------------------------
    # vocabulary
    # ------------------------------------------------------------------
    def set_vocabulary(self,
                       vocabulary: Optional[Vocabulary] = None,
                       templates: Optional[Union[str, Sequence[str]]] = None,
                       dataset_name: Optional[str] = None,
                       extra_classes: Optional[Vocabulary] = None) -> None:
        """Change the vocabulary (and optionally the templates) of a built
        encoder; the next ``forward()`` re-encodes.

        Args:
            vocabulary (str | list, optional): See the class docstring.
            templates (str | list[str], optional): Keep the current templates
                when None.
            dataset_name (str, optional): See the class docstring.
            extra_classes (str | list, optional): See the class docstring.
        """
        try:
            classes, templates, background_first = _read_text_options(
                vocabulary, templates, dataset_name, extra_classes)
        except ConfigValueError:
            raise
        except (FileNotFoundError, TypeError, ValueError) as error:
            # The readers' messages name the input and the fix; as a
            # ConfigValueError the tools print them as one error line.
            raise ConfigValueError(str(error)) from None
        if templates is not None:
            self.templates = templates
        #: Whether the vocabulary named ``background`` first (label 0, the
        #: head's background channel); the segmentor refuses it for a head
        #: without one, whose labels would shift by one.
        self.background_first = background_first
        self.classes: List[List[str]] = [list(c) for c in classes]
        self._cache_key = None
        self._cache = None

    @property
    def class_names(self) -> List[str]:
        """The first name of every class, in order."""
        return [names[0] for names in self.classes]

    def prompts(self) -> List[List[str]]:
        """Per class, every (synonym x template) prompt."""
        return [[t.format(name) for name in names for t in self.templates]
                for names in self.classes]

    # ------------------------------------------------------------------
    # encoding
    # ------------------------------------------------------------------
    def tokenize(self, texts: List[str]) -> torch.Tensor:
        """Tokenise with mmseg's CLIP tokenizer, warning once per call about
        prompts longer than the context (they are cut, the last token forced
        to end-of-text, as CLIP does).

        Returns:
            Tensor: ``[N, context_length]`` int64 token ids.
        """
        too_long = [
            t for t in texts
            if len(_tokenizer.encode(t)) + 2 > self.context_length
        ]
        if too_long:
            warnings.warn(
                f'{len(too_long)} prompt(s) are longer than '
                f'{self.context_length} tokens and were cut, e.g. '
                f'"{too_long[0][:80]}...". Shorten the class names or '
                f'templates to keep their ends.')
        return tokenize(texts, context_length=self.context_length)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Encode token ids into projected (not normalised) features.

        Args:
            tokens (Tensor): ``[N, L]`` ids, ``L <= context_length``, with
                the end-of-text id at each sequence's end.

        Returns:
            Tensor: ``[N, projection_dim]``.
        """
        if tokens.shape[-1] > self.context_length:
            raise ValueError(f'Token sequences of length {tokens.shape[-1]} '
                             f'exceed the context of {self.context_length}.')
        tokens = tokens.to(self.token_embedding.weight.device)
        # Positions past the longest prompt's end cannot reach the pooled
        # feature through the causal mask: drop them.
        eot = tokens.argmax(dim=-1)
        length = int(eot.max()) + 1
        x = self.token_embedding(tokens[:, :length])
        x = x + self.positional_embedding[:length]
        for block in self.blocks:
            x = block(x, is_causal=True)
        x = self.final_norm(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        return self.projector(x)

    def encode_text(self, texts: List[str]) -> torch.Tensor:
        """Encode raw strings (no template), in chunks of ``chunk_size``.

        Returns:
            Tensor: ``[N, projection_dim]`` projected, not normalised.
        """
        tokens = self.tokenize(texts)
        return torch.cat([
            self.encode_tokens(tokens[i:i + self.chunk_size])
            for i in range(0, len(texts), self.chunk_size)
        ])

    def _weights_version(self) -> tuple:
        """The version counters of the weights (bumped by any in-place
        update, ``load_state_dict``'s copies included). The list of weights
        is gathered once, and again after ``to()`` or ``load_state_dict``
        (which may replace them), not on every call."""
        if self._weights is None:
            self._weights = list(
                itertools.chain(self.parameters(), self.buffers()))
        return tuple(t._version for t in self._weights)

    def _apply(self, *args, **kwargs):
        self._weights = None
        return super()._apply(*args, **kwargs)

    def forward(self) -> torch.Tensor:
        """Class embeddings of the current vocabulary.

        Returns:
            Tensor: ``[K, projection_dim]``, L2-normalised, in vocabulary
            order.
        """
        weight = self.token_embedding.weight
        # The classes and templates are part of the key, so editing them in
        # place cannot return stale embeddings.
        key = (weight.device, weight.dtype, self.training,
               self._weights_version(), tuple(map(tuple, self.classes)),
               tuple(self.templates))
        if self._cache is not None and self._cache_key == key:
            return self._cache
        prompts = self.prompts()
        flat = [p for class_prompts in prompts for p in class_prompts]
        grad = torch.is_grad_enabled() and not self.frozen
        with torch.set_grad_enabled(grad):
            feats = self.encode_text(flat)
            sizes = [len(p) for p in prompts]
            # Average the un-normalised projected prompts of each class.
            embeds = torch.stack(
                [chunk.mean(dim=0) for chunk in feats.split(sizes)])
            embeds = F.normalize(embeds, dim=-1)
        if not grad:
            self._cache_key, self._cache = key, embeds
        return embeds
