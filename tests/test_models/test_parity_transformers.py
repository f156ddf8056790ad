# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Parity with Hugging Face transformers' ``GroupViTModel`` (5.x).

For the released architecture (``GroupViTConfig()``) and a small two-stage
one, a randomly initialised transformers model (every bias, norm, group
token, position table and BatchNorm statistic randomised, ``logit_scale`` off
its default) is saved with ``save_pretrained``, converted with
``tools/convert_weights.py`` and loaded into the model built from the
(written) config. Both then see the same real photos and VOC prompts:

- image / text embeddings, group tokens and both soft groupings, at 224x224
  (``GroupViTModel.forward``) and at non-square sizes (transformers' own
  ``interpolate_pos_encoding`` path, which its ``forward`` never takes);
- ``logits_per_image``, the contrastive loss and ``segmentation_logits``
  recomputed from our outputs with transformers' formula (below).

Run with ``pytest -s`` to see the table of measured differences.
"""
import contextlib
import io
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS
from mmseg.utils import tokenize
from PIL import Image

from mmseg_groupvit.models.decode_heads.groupvit_head import group_maps
from mmseg_groupvit.utils import get_prompt_classes
from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
from tests.conftest import load_script, randomise_hf

transformers = pytest.importorskip('transformers')
hf_groupvit = pytest.importorskip(
    'transformers.models.groupvit.modeling_groupvit')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'groupvit_voc.py')
IMAGE_DIRS = [
    osp.join(REPO, 'samples', 'images'),
    osp.join(osp.dirname(REPO), 'shared', 'data', 'images')
]
IMAGE_NAMES = [
    'groupvit_demo_voc.jpg', 'groupvit_demo_ctx.jpg', 'groupvit_demo_coco.jpg'
]
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)

# transformers' default is 2.6592. exp(4.8) = 121.5 is above the segmentation
# head's clamp (100), so using the clamped temperature where transformers
# does not (contrastive logits, segmentation_logits) would fail.
LOGIT_SCALE = 4.8
ATOL = 1e-4
# (H, W), multiples of 16 with odd patch grids (21x29, 29x21): the position
# table is resized to a grid it does not divide, and transformers'
# ``resize_attention_map`` takes both of its branches (h < w, h > w).
NON_SQUARE = [(336, 464), (464, 336)]

ARCHS = dict(
    default=dict(),
    small=dict(
        vision_config=dict(
            hidden_size=96,
            intermediate_size=192,
            num_attention_heads=3,
            depths=[1, 1],
            num_hidden_layers=2,
            num_group_tokens=[8, 4],
            num_output_groups=[8, 4]),
        text_config=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2),
        projection_dim=32,
        projection_intermediate_dim=64),
)

RESULTS = []


def record(arch, size, name, ours, ref, atol=ATOL):
    """Assert ``max|ours - ref| <= atol`` and record the max abs diff for
    the table."""
    ours, ref = ours.detach().double(), ref.detach().double()
    assert ours.shape == ref.shape, (name, ours.shape, ref.shape)
    max_diff = (ours - ref).abs().max().item()
    max_ref = ref.abs().max().item()
    RESULTS.append(
        (arch, size, name, tuple(ref.shape), max_diff, max_ref, atol))
    assert max_diff <= atol, (f'{arch} {size} {name}: max abs diff '
                              f'{max_diff:.3g} (max |ref| {max_ref:.3g}, '
                              f'tol {atol:.3g})')


@pytest.fixture(scope='module', autouse=True)
def print_table():
    grad = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    yield
    torch.set_grad_enabled(grad)
    if not RESULTS:
        return
    lines = [
        '', 'GroupViT vs transformers.GroupViTModel '
        f'{transformers.__version__} (fp32, CPU): max abs diff',
        f'{"arch":8}{"size":9}{"quantity":30}{"shape":18}'
        f'{"max|diff|":>10}{"max|ref|":>10}{"tol":>9}'
    ]
    for arch, size, name, shape, diff, ref, tol in RESULTS:
        shape = 'x'.join(map(str, shape))
        lines.append(f'{arch:8}{size:9}{name:30}{shape:18}'
                     f'{diff:10.2e}{ref:10.3g}{tol:9.1e}')
    print('\n'.join(lines))


def _find_image(name):
    for folder in IMAGE_DIRS:
        if osp.isfile(osp.join(folder, name)):
            return osp.join(folder, name)
    pytest.skip(f'sample image {name} not found in {IMAGE_DIRS}')


def load_images(size):
    """The sample photos as ImageNet-normalised RGB ``[3, 3, H, W]``."""
    batch = []
    for name in IMAGE_NAMES:
        image = Image.open(_find_image(name)).convert('RGB')
        image = image.resize((size[1], size[0]), Image.BILINEAR)
        array = (np.asarray(image, dtype=np.float32) - MEAN) / STD
        batch.append(torch.from_numpy(array.transpose(2, 0, 1).copy()))
    return torch.stack(batch)


def _load_state(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module', params=list(ARCHS))
def pair(request, tmp_path_factory):
    """(transformers model, our converted model) for one architecture."""
    arch = request.param
    tmp = tmp_path_factory.mktemp(f'hf_{arch}')
    torch.manual_seed(0)
    hf = transformers.GroupViTModel(transformers.GroupViTConfig(**ARCHS[arch]))
    randomise_hf(hf, logit_scale=LOGIT_SCALE)
    hf.eval()

    # save_pretrained writes model.safetensors (transformers 5 dropped
    # `safe_serialization`); write the legacy pytorch_model.bin layout of
    # the hub checkpoints by hand, including the old `position_ids` buffer.
    hf.save_pretrained(str(tmp / 'safetensors'))
    assert (tmp / 'safetensors' / 'model.safetensors').is_file()
    (tmp / 'bin').mkdir()
    (tmp / 'bin' / 'config.json').write_text(
        (tmp / 'safetensors' / 'config.json').read_text())
    legacy = dict(hf.state_dict())
    legacy['text_model.embeddings.position_ids'] = torch.arange(
        hf.config.text_config.max_position_embeddings)[None]
    torch.save(legacy, str(tmp / 'bin' / 'pytorch_model.bin'))

    dst = tmp / 'groupvit.pth'
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = load_script('tools/convert_weights.py').main(
            [str(tmp / 'safetensors'), str(dst)])
    stdout = stdout.getvalue()
    assert rc == 0, stdout
    # Head counts come from config.json, nothing is guessed.
    assert 'assumed' not in stdout, stdout
    info_bin = convert_checkpoint(
        str(tmp / 'bin'), str(tmp / 'groupvit_bin.pth'))
    assert info_bin['layout'] == 'hf' and not info_bin['assumed']

    cfg_path = osp.splitext(str(dst))[0] + '.py'
    if arch == 'default':
        assert not osp.exists(cfg_path), stdout
        assert info_bin['config'] is None
        cfg_path = DEFAULT_CONFIG
    else:
        assert osp.isfile(cfg_path), stdout
    cfg = Config.fromfile(cfg_path)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.eval()
    load_checkpoint(model, str(dst), map_location='cpu', strict=False)
    yield SimpleNamespace(
        arch=arch,
        hf=hf,
        model=model,
        ckpt=_load_state(str(dst)),
        ckpt_bin=_load_state(str(tmp / 'groupvit_bin.pth')),
        hf_state=hf.state_dict())


@pytest.fixture(scope='module')
def images224():
    return load_images((224, 224))


@pytest.fixture(scope='module')
def prompts():
    return [f'a photo of a {name}.' for name in get_prompt_classes('voc')]


@pytest.fixture(scope='module')
def token_ids(prompts):
    ids = tokenize(prompts, context_length=77)
    assert ids.shape == (21, 77) and int(ids[:, -1].max()) == 0
    return ids


@pytest.fixture(scope='module')
def run224(pair, images224, token_ids):
    """transformers' full forward at 224 and our outputs on the same input."""
    hf_out = pair.hf(
        input_ids=token_ids, pixel_values=images224, output_segmentation=True)
    feats = pair.model.image_encoder(images224)
    ours = pair.model.contrastive(images224, token_ids, return_loss=False)
    return hf_out, feats, ours


@pytest.mark.slow
def test_conversion(pair):
    ckpt, ckpt_bin = pair.ckpt, pair.ckpt_bin
    state = ckpt['state_dict']
    # Both weight files convert to the same state dict.
    assert set(state) == set(ckpt_bin['state_dict'])
    for key, value in state.items():
        assert torch.equal(value, ckpt_bin['state_dict'][key]), key
    assert ckpt['meta']['groupvit_arch'] == ckpt_bin['meta']['groupvit_arch']
    # Exactly the model's keys, shapes and values.
    own = pair.model.state_dict()
    assert set(state) == set(own)
    for key, value in state.items():
        assert value.shape == own[key].shape, key
        assert torch.equal(value, own[key]), key
    # Nothing of transformers' model is lost: every tensor (q/k/v fused in
    # our self-attention) is accounted for.
    numel = sum(v.numel() for v in pair.hf_state.values())
    assert sum(v.numel() for v in state.values()) == numel
    assert pair.model.decode_head.logit_scale.item() == pytest.approx(
        LOGIT_SCALE)
    vision = pair.hf.config.vision_config
    encoder = pair.model.image_encoder
    assert len(encoder.stages) == len(vision.depths)
    assert [len(s.blocks) for s in encoder.stages] == list(vision.depths)
    assert encoder.stages[0].blocks[0].attn.num_heads == \
        vision.num_attention_heads
    text = pair.hf.config.text_config
    assert pair.model.text_encoder.blocks[0].attn.num_heads == \
        text.num_attention_heads


def test_text_embeddings(pair, run224, token_ids, prompts):
    hf_out, _, ours = run224
    text_encoder = pair.model.text_encoder
    record(pair.arch, '-', 'text_embeds (77, 0-padded)', ours['text_embeds'],
           hf_out.text_embeds)
    # Projected, not normalised.
    hf_proj = pair.hf.text_projection(hf_out.text_model_output.pooler_output)
    record(pair.arch, '-', 'text projected (unnormalised)',
           text_encoder.encode_tokens(token_ids), hf_proj)
    # Cut to the longest prompt: exact under the causal mask.
    length = int(token_ids.argmax(-1).max()) + 1
    assert length < 77
    truncated = text_encoder.encode_tokens(token_ids[:, :length])
    record(pair.arch, '-', f'text projected (len {length})', truncated,
           hf_proj)
    assert torch.equal(truncated, text_encoder.encode_tokens(token_ids))
    assert torch.equal(truncated, text_encoder.encode_text(prompts))
    # forward(): the config's VOC vocabulary without background, one
    # template, normalised.
    record(pair.arch, '-', 'text_encoder() class embeds', text_encoder(),
           hf_out.text_embeds[1:])


def test_image_224(pair, run224):
    hf_out, feats, ours = run224
    vision = hf_out.vision_model_output
    record(pair.arch, '224', 'group tokens (final LN)', feats['group_tokens'],
           vision.last_hidden_state)
    record(pair.arch, '224', 'image_embeds (projected)', feats['image_embeds'],
           pair.hf.visual_projection(vision.pooler_output))
    record(pair.arch, '224', 'image_embeds (normalised)', ours['image_embeds'],
           hf_out.image_embeds)
    assert len(feats['soft_assigns']) == len(vision.attentions)
    for i, (a, b) in enumerate(zip(feats['soft_assigns'], vision.attentions)):
        record(pair.arch, '224', f'soft grouping stage {i + 1}', a, b)


def test_logits_and_loss_224(pair, run224, images224, token_ids, prompts):
    hf_out, _, ours = run224
    # Unclamped, as in transformers (|logits| <= exp(4.8) = 121.5).
    head = pair.model.decode_head
    assert head.logit_scale.exp() > head.temperature
    record(pair.arch, '224', 'logits_per_image', ours['logits_per_image'],
           hf_out.logits_per_image)
    record(pair.arch, '224', 'logits_per_text', ours['logits_per_text'],
           hf_out.logits_per_text)
    # The loss needs as many texts as images (pairs on the diagonal).
    hf_loss = pair.hf(
        input_ids=token_ids[:3], pixel_values=images224, return_loss=True).loss
    out = pair.model.contrastive(images224, token_ids[:3], return_loss=True)
    record(pair.arch, '224', 'contrastive loss', out['loss'], hf_loss)
    out = pair.model.contrastive(images224, prompts[:3], return_loss=True)
    record(pair.arch, '224', 'contrastive loss (strings)', out['loss'],
           hf_loss)


def test_segmentation_logits_224(pair, run224, images224):
    """transformers' ``segmentation_logits`` from our outputs:
    ``seg[b, t] = s^2 * sum_g R_g * cos(proj(group_g), text_t)`` with
    ``s = exp(logit_scale)`` unclamped and ``R`` the chained soft grouping
    resized bilinearly."""
    hf_out, feats, ours = run224
    scale = pair.model.decode_head.logit_scale.exp()
    maps = group_maps(feats['soft_assigns'], feats['grid'],
                      images224.shape[-2:])
    cos = F.normalize(feats['group_embeds'], dim=-1) @ \
        ours['text_embeds'].t()
    seg = scale**2 * torch.einsum('bgt,bghw->bthw', cos, maps)
    ref = hf_out.segmentation_logits
    assert ref.shape == (3, 21, 224, 224)
    # seg = s^2 * m with |m| <= 1 and s^2 = exp(9.6) = 14765: the ~1e-7
    # fp32 differences of the cosines and maps are multiplied by s^2, so the
    # bound gets a term relative to that full scale (1e-6 * s^2, about
    # 8 ulp). The scale-free part m = seg / s^2 keeps the plain 1e-4 bound.
    seg_tol = ATOL + 1e-6 * scale.item()**2
    record(pair.arch, '224', 'segmentation_logits', seg, ref, atol=seg_tol)
    record(pair.arch, '224', 'segmentation_logits / s^2', seg / scale**2,
           ref / scale**2)
    # The soft maps themselves, against transformers' helper.
    record(
        pair.arch, '224', 'grouping maps (resized)', maps,
        hf_groupvit.get_grouping_from_attentions(
            hf_out.vision_model_output.attentions, (224, 224)))


@pytest.mark.parametrize('size', NON_SQUARE, ids=lambda s: f'{s[0]}x{s[1]}')
def test_image_non_square(pair, size):
    """Non-square input through transformers' ``interpolate_pos_encoding``
    (its ``GroupViTModel.forward`` never passes it, so the sub-modules are
    called directly)."""
    images = load_images(size)
    hf = pair.hf
    embeddings = hf.vision_model.embeddings(
        images, interpolate_pos_encoding=True)
    encoded = hf.vision_model.encoder(
        hidden_states=embeddings, output_attentions=True, return_dict=True)
    tokens = hf.vision_model.layernorm(encoded.last_hidden_state)
    feats = pair.model.image_encoder(images)
    tag = f'{size[0]}x{size[1]}'
    grid = (size[0] // 16, size[1] // 16)
    assert tuple(feats['grid']) == grid
    assert feats['soft_assigns'][0].shape[-1] == grid[0] * grid[1]
    record(pair.arch, tag, 'group tokens (final LN)', feats['group_tokens'],
           tokens)
    record(pair.arch, tag, 'image_embeds (projected)', feats['image_embeds'],
           hf.visual_projection(tokens.mean(dim=1)))
    batch, groups, channels = tokens.shape
    record(
        pair.arch, tag, 'group_embeds (projected)', feats['group_embeds'],
        hf.visual_projection(tokens.reshape(-1, channels)).reshape(
            batch, groups, -1))
    assert len(feats['soft_assigns']) == len(encoded.attentions)
    for i, (a, b) in enumerate(zip(feats['soft_assigns'], encoded.attentions)):
        record(pair.arch, tag, f'soft grouping stage {i + 1}', a, b)
    record(pair.arch, tag, 'grouping maps (resized)',
           group_maps(feats['soft_assigns'], feats['grid'], size),
           hf_groupvit.get_grouping_from_attentions(encoded.attentions, size))
