# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViT text encoder: a CLIP-style causal transformer turning a
vocabulary into class embeddings (``forward()``, as mmseg's
``CLIPTextEncoder``)."""
import itertools
import warnings
from collections import defaultdict
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import tokenize
from mmseg.utils.tokenizer import _tokenizer
from torch import nn

from groupvit_common.checks import check_positive_int
from groupvit_common.errors import ConfigValueError
from groupvit_common.vocabulary import resolve_classes
from ...utils import get_prompt_classes, get_templates, load_vocabulary
from ..layers import ProjectionMLP, TransformerBlock

Vocabulary = Union[str, Sequence[Union[str, Sequence[str]]]]


def _check_distinct_tokens(classes: List[List[str]]) -> None:
    """Refuse names that tokenize the same (``t-shirt``, ``t - shirt``)."""
    seen = defaultdict(list)
    for name in itertools.chain.from_iterable(classes):
        seen[tuple(_tokenizer.encode(name))].append(repr(name))
    clashes = [
        ' and '.join(names) for names in seen.values() if len(names) > 1
    ]
    if clashes:
        raise ConfigValueError(
            f'Vocabulary names that differ only in spacing or case tokenize '
            f'the same and would give identical prompts: {"; ".join(clashes)}'
            f'. Keep one of each.')


@MODELS.register_module()
class GroupViTTextEncoder(BaseModule):
    """GroupViT text encoder.

    ``forward()`` gives the class embeddings ``[K, D]``: the mean of each
    class's prompt features (synonyms x templates), L2-normalised, cached
    per vocabulary, templates, device and weights. The architecture
    arguments are transformers' ``GroupViTTextConfig`` fields.

    Args:
        vocabulary (str | list, optional): Class names, synonym lists or a
            vocabulary file; a leading ``'background'`` is dropped.
        dataset_name (str, optional): A dataset's prompt names (e.g.
            ``'voc'``), when ``vocabulary`` is None.
        extra_classes (str | list, optional): Classes appended.
        templates (str | list[str]): Template-set name (``simple``,
            ``subset``, ``full``, ``identity``) or templates with one ``{}``.
        dropout (float): Unused; kept for config parity.
        projection_dim (int): Output channels ``D``.
        frozen (bool): Freeze all weights and stay in eval mode.
        chunk_size (int): Prompts encoded per forward pass.
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
        # Keyed by vocabulary, templates, device and weights.
        self._cache_key = self._cache = None
        self.set_vocabulary(vocabulary, templates, dataset_name, extra_classes)
        if frozen:
            self.requires_grad_(False)

    def train(self, mode: bool = True):
        return super().train(mode and not self.frozen)

    def init_weights(self):
        """``init_cfg``'s weights, else CLIP's text-tower init."""
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

    def set_vocabulary(self,
                       vocabulary: Optional[Vocabulary] = None,
                       templates: Optional[Union[str, Sequence[str]]] = None,
                       dataset_name: Optional[str] = None,
                       extra_classes: Optional[Vocabulary] = None) -> None:
        """Change the vocabulary (and templates, unless None)."""
        try:
            classes, background_first = resolve_classes(
                vocabulary, dataset_name, extra_classes, get_prompt_classes)
            load_vocabulary(classes)  # a builtin list may repeat a name
            _check_distinct_tokens(classes)
            if templates is not None:
                templates = list(get_templates(templates))
        except (FileNotFoundError, TypeError, ValueError) as error:
            raise ConfigValueError(str(error)) from None
        if templates is not None:
            self.templates = templates
        #: Whether the vocabulary named ``background`` first.
        self.background_first = background_first
        self.classes: List[List[str]] = classes

    @property
    def class_names(self) -> List[str]:
        return [names[0] for names in self.classes]

    def prompts(self) -> List[List[str]]:
        """Per class, every (synonym x template) prompt."""
        return [[t.format(name) for name in names for t in self.templates]
                for names in self.classes]

    def tokenize(self, texts: List[str]) -> torch.Tensor:
        """Token ids ``[N, context_length]``, warning about prompts cut to
        the context."""
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
        """Projected (not normalised) features ``[N, D]`` of token ids
        ``[N, L]``, encoded up to the longest end token (exact under the
        causal mask)."""
        if tokens.shape[-1] > self.context_length:
            raise ValueError(f'Token sequences of length {tokens.shape[-1]} '
                             f'exceed the context of {self.context_length}.')
        tokens = tokens.to(self.token_embedding.weight.device)
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
        """Projected features ``[N, D]`` of strings, in chunks."""
        tokens = self.tokenize(texts)
        return torch.cat([
            self.encode_tokens(tokens[i:i + self.chunk_size])
            for i in range(0, len(texts), self.chunk_size)
        ])

    def forward(self) -> torch.Tensor:
        """Class embeddings ``[K, D]``, L2-normalised."""
        weight = self.token_embedding.weight
        # An in-place weight update bumps its version.
        versions = tuple(
            t._version
            for t in itertools.chain(self.parameters(), self.buffers()))
        key = (weight.device, weight.dtype, self.training, versions,
               tuple(map(tuple, self.classes)), tuple(self.templates))
        if self._cache_key == key:
            return self._cache
        prompts = self.prompts()
        flat = [p for class_prompts in prompts for p in class_prompts]
        grad = torch.is_grad_enabled() and not self.frozen
        with torch.set_grad_enabled(grad):
            feats = self.encode_text(flat)
            sizes = [len(p) for p in prompts]
            embeds = torch.stack(
                [chunk.mean(dim=0) for chunk in feats.split(sizes)])
            embeds = F.normalize(embeds, dim=-1)
        if not grad:
            self._cache_key, self._cache = key, embeds
        return embeds
