# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Export a GroupViT segmentor to ONNX (``image.onnx``, ``text.onnx``, the
BPE data and ``deploy.json``), checked against PyTorch."""
import json
import os
import os.path as osp
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import Compose, pseudo_collate
from torch import Tensor, nn

from groupvit_common import export_format
from groupvit_common.errors import ExportCheckError, first_few
from groupvit_common.export_format import image_feeds
from ..datasets.transforms import (step_kind, use_checked_steps,
                                   without_annotations)
from ..models.decode_heads.groupvit_head import chain_assignments, paint_scores

OPSET = 17
#: Largest difference from PyTorch for the export to count as done.
SCORE_ATOL = 1e-4
BPE_FILE = 'bpe_simple_vocab_16e6.txt.gz'
#: An export's files besides deploy.json.
FILES = ('image.onnx', 'text.onnx', BPE_FILE)
#: What file managers write into a folder they show (replaced with it).
FILE_MANAGER_FILES = {'.DS_Store', 'Thumbs.db', 'desktop.ini'}
#: The graphs' inputs and outputs (named as the runner reads them) with
#: their dynamic axes (the window is fixed at export).
IMAGE_INPUTS = dict(pixels='batch', class_embeds='classes', bg_thresh='')
IMAGE_OUTPUTS = dict(
    scores='batch channels',
    group_embeds='batch',
    pixel_group='batch',
    assignments='batch')
TEXT_INPUTS = dict(tokens='prompts length')
TEXT_OUTPUTS = dict(text_features='prompts')
#: Resize steps of a test pipeline (``CheckedResize``: mmcv's ``Resize``).
_RESIZES = ('Resize', 'CheckedResize')


class ImageSide(nn.Module):
    """Windows ``[B, 3, H, W]``, class embeddings ``[K, D]`` and
    ``bg_thresh`` ``[]`` to the scores ``[B, K (+1), H, W]``, group tokens
    ``[B, G, D]``, pixel-to-group map ``[B, H, W]`` and chained soft
    assignments ``[B, h*w, G]``."""

    def __init__(self, segmentor):
        super().__init__()
        self.image_encoder = segmentor.image_encoder
        self.head = segmentor.decode_head

    def forward(self, pixels: Tensor, class_embeds: Tensor, bg_thresh: Tensor):
        feats = self.image_encoder(pixels)
        pixel_group, table = self.head.assign([pixels, feats, class_embeds],
                                              bg_thresh=bg_thresh)
        scores = paint_scores(pixel_group, table)
        return (scores, feats['group_embeds'], pixel_group,
                chain_assignments(feats['soft_assigns']))


class TextSide(nn.Module):
    """Token ids ``[N, L]`` to projected text features ``[N, D]``, as
    ``encode_tokens``."""

    def __init__(self, text_encoder):
        super().__init__()
        self.encoder = text_encoder

    def forward(self, tokens: Tensor) -> Tensor:
        enc = self.encoder
        x = enc.token_embedding(tokens)
        x = x + enc.positional_embedding[:tokens.shape[1]]
        for block in enc.blocks:
            x = block(x, is_causal=True)
        x = enc.final_norm(x)
        # The end-of-text position by a one-hot product (a gather with
        # data-dependent indices exports less portably).
        select = F.one_hot(tokens.argmax(dim=-1), tokens.shape[1]).to(x.dtype)
        return enc.projector(torch.einsum('nl,nlc->nc', select, x))


def _pipeline_resize(cfg) -> dict:
    """The test pipeline's one keep-ratio cv2 bilinear ``Resize``."""
    pipeline = cfg.test_dataloader.dataset.pipeline
    resizes = [t for t in pipeline if step_kind(t) in _RESIZES]
    if len(resizes) != 1:
        raise ValueError(
            f'The config\'s test pipeline has {len(resizes)} Resize steps; '
            f'the ONNX runtime reproduces exactly one Resize with '
            f'keep_ratio=True (as configs/groupvit_*.py have).')
    resize = resizes[0]
    if not resize.get('keep_ratio', False) or resize.get(
            'interpolation', 'bilinear') != 'bilinear' or resize.get(
                'backend', 'cv2') != 'cv2' or 'scale' not in resize:
        raise ValueError(
            f'The test pipeline\'s Resize {dict(resize)} is not one the ONNX '
            f'runtime reproduces: it needs scale=(long, short), '
            f'keep_ratio=True and cv2 bilinear interpolation.')
    known = ('LoadImageFromFile', 'RobustLoadImageFromFile', 'LoadAnnotations',
             'CheckedLoadAnnotations', 'PackSegInputs') + _RESIZES
    other = [t['type'] for t in pipeline if step_kind(t) not in known]
    if other:
        raise ValueError(f'The test pipeline has steps the ONNX runtime does '
                         f'not reproduce: {", ".join(other)}.')
    return dict(scale=[int(v) for v in resize['scale']], keep_ratio=True)


def describe_protocol_for_runtime(model, cfg) -> dict:
    """``deploy.json``'s ``protocol``: what the runner needs to reproduce
    the config's slide inference."""
    test_cfg = model.test_cfg or {}
    if test_cfg.get('mode') != 'slide':
        raise ValueError(
            f'The ONNX export needs slide inference (test_cfg.mode="slide" '
            f'with crop_size and stride, as configs/groupvit_*.py have); '
            f'got mode={test_cfg.get("mode")!r}.')
    pre = model.data_preprocessor
    if not getattr(pre, 'channel_conversion', False):
        raise ValueError('The ONNX runtime reads images as RGB; the config\'s '
                         'data_preprocessor must have bgr_to_rgb=True.')
    # The config's values, not the model's float32 ones.
    pre_cfg = cfg.model.get('data_preprocessor', {})
    head, text = model.decode_head, model.text_encoder
    return dict(
        mean=[float(v) for v in pre_cfg.get('mean', pre.mean.flatten())],
        std=[float(v) for v in pre_cfg.get('std', pre.std.flatten())],
        resize=_pipeline_resize(cfg),
        crop_size=[int(v) for v in test_cfg['crop_size']],
        stride=[int(v) for v in test_cfg['stride']],
        align_corners=bool(model.align_corners),
        bg_thresh=float(test_cfg.get('bg_thresh', head.bg_thresh)),
        with_bg=bool(head.with_bg),
        topk=int(head.topk),
        templates=list(text.templates),
        classes=[list(c) for c in text.classes],
        class_names=list(model.dataset_meta['classes']),
        context_length=int(text.context_length),
        sot_id=int(text.eos_token_id) - 1,
        eot_id=int(text.eos_token_id),
        patch_size=int(model.image_encoder.patch_size))


def check_window(model, cfg, image: str) -> Tensor:
    """The top-left window ``[1, 3, h, w]`` of ``image`` as slide inference
    sees it (an ``ImageLoadError`` for a file that is no image)."""
    steps = [
        dict(step)
        for step in without_annotations(cfg.test_dataloader.dataset.pipeline)
    ]
    use_checked_steps(steps)  # a file that is no image named, as in tests
    data = Compose(steps)(dict(img_path=image))
    inputs = model.data_preprocessor(pseudo_collate([data]), False)['inputs']
    h, w = model.test_cfg['crop_size']
    if inputs.shape[-2] < h or inputs.shape[-1] < w:
        raise ValueError(f'The check image {image} is smaller than one '
                         f'{h}x{w} window after the test pipeline; pass a '
                         f'larger photo with --check-image.')
    return inputs[:, :, :h, :w].contiguous()


def _session(path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def _export(module, args, path, inputs, outputs):
    with warnings.catch_warnings():
        # The tracer's notes on shape conditions: the window is fixed.
        warnings.simplefilter('ignore')
        torch.onnx.export(
            module.eval(),
            args,
            path,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes={
                name: dict(enumerate(axes.split()))
                for name, axes in dict(inputs, **outputs).items() if axes
            },
            opset_version=OPSET,
            dynamo=False)


def check_graphs(model, out_dir: str, window: Tensor, atol: float,
                 bg_thresh: float) -> dict:
    """Both graphs of ``out_dir`` with onnxruntime against PyTorch:
    ``window_scores_max_abs_diff``, ``text_features_max_abs_diff``,
    ``labels_equal`` (share of window pixels) and ``atol``; an
    ``ExportCheckError`` when a difference exceeds ``atol``."""
    metas = [dict(img_shape=window.shape[2:], pad_shape=window.shape[2:])]
    ref = model.encode_decode(window, metas).numpy()
    session = _session(osp.join(out_dir, 'image.onnx'))
    feeds = image_feeds(
        session,
        pixels=window.numpy(),
        class_embeds=model.text_encoder().numpy(),
        bg_thresh=np.array(bg_thresh, np.float32))
    scores = session.run(['scores'], feeds)[0]
    text = model.text_encoder
    tokens = text.tokenize([p for ps in text.prompts() for p in ps])
    tokens = tokens[:, :int(tokens.argmax(-1).max()) + 1]
    ref_text = text.encode_tokens(tokens).numpy()
    text_session = _session(osp.join(out_dir, 'text.onnx'))
    feats = text_session.run(['text_features'], dict(tokens=tokens.numpy()))[0]
    result = dict(
        window_scores_max_abs_diff=float(np.abs(scores - ref).max()),
        text_features_max_abs_diff=float(np.abs(feats - ref_text).max()),
        labels_equal=float((scores.argmax(1) == ref.argmax(1)).mean()),
        atol=atol)
    bad = [
        f'{k.replace("_", " ")} {result[k]:.2e}'
        for k in ('window_scores_max_abs_diff', 'text_features_max_abs_diff')
        if not result[k] <= atol
    ]
    if bad:
        raise ExportCheckError(
            f'The exported graphs disagree with PyTorch: {", ".join(bad)} > '
            f'{atol:.0e}. The export was deleted; please report this with '
            f'your torch and onnxruntime versions.')
    return result


@torch.no_grad()
def export_onnx(model,
                cfg,
                out_dir: str,
                check_image: str,
                atol: float = SCORE_ATOL,
                weights: Optional[str] = None) -> dict:
    """Export a :class:`GroupViTEncoderDecoder` and its config into
    ``out_dir`` (new, empty or an export), moved into place only when the
    graphs agree with PyTorch within ``atol`` on the top-left window of the
    photo ``check_image``; the content of ``deploy.json`` (``weights``: what
    the weights are)."""
    if osp.islink(out_dir) or osp.exists(out_dir) and not osp.isdir(out_dir):
        raise ValueError(f'--out {out_dir} is a file or a link; pass a '
                         f'folder (an export replaces its folder).')
    found = {  # a folder named as a file manager's file is the user's
        n
        for n in (os.listdir(out_dir) if osp.isdir(out_dir) else ())
        if n not in FILE_MANAGER_FILES or osp.isdir(osp.join(out_dir, n))
    }
    if found and export_format.DEPLOY_FILE not in found:
        raise ValueError(
            f'--out {out_dir} is a non-empty folder that is not an ONNX '
            f'export (no {export_format.DEPLOY_FILE}); pass a new or empty '
            f'folder.')
    others = sorted(found - {export_format.DEPLOY_FILE, *FILES})
    if others:  # e.g. the runner's pictures: the folder is replaced
        raise ValueError(
            f'--out {out_dir} is an ONNX export that also holds files of '
            f'its own ({first_few(others)}), which exporting again would '
            f'delete; move them away, or pass a new or empty folder.')
    model = model.cpu().eval()
    protocol = describe_protocol_for_runtime(model, cfg)
    window = check_window(model, cfg, check_image)
    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.onnx-export-', dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        image_path = osp.join(tmp, 'image.onnx')
        text = model.text_encoder
        _export(
            ImageSide(model), (window, text(), torch.tensor(0.5)), image_path,
            IMAGE_INPUTS, IMAGE_OUTPUTS)
        _export(
            TextSide(text), (text.tokenize(['a photo of a cat.', 'a dog.']), ),
            osp.join(tmp, 'text.onnx'), TEXT_INPUTS, TEXT_OUTPUTS)
        check = check_graphs(model, tmp, window, atol, protocol['bg_thresh'])
        check['image'] = osp.basename(check_image)
        from mmseg.utils import tokenizer as mmseg_tokenizer
        shutil.copyfile(
            osp.join(osp.dirname(mmseg_tokenizer.__file__), BPE_FILE),
            osp.join(tmp, BPE_FILE))
        import onnx
        meta = dict(
            format=export_format.FORMAT,
            weights=weights or 'random',
            opset=OPSET,
            torch=torch.__version__,
            onnx=onnx.__version__,
            image_graph=dict(
                file='image.onnx',
                inputs=[i.name for i in _session(image_path).get_inputs()],
                outputs=list(IMAGE_OUTPUTS)),
            text_graph=dict(
                file='text.onnx',
                inputs=list(TEXT_INPUTS),
                outputs=list(TEXT_OUTPUTS)),
            tokenizer=dict(bpe_file=BPE_FILE),
            protocol=protocol,
            check=check)
        files = {name: Path(tmp, name).read_bytes() for name in FILES}
        meta['sha256'] = export_format.digests(protocol, files)
        with open(osp.join(tmp, export_format.DEPLOY_FILE), 'w') as f:
            json.dump(meta, f, indent=2)
        if osp.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp)
    return meta
