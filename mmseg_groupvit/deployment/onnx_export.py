# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Export a GroupViT segmentor to ONNX, with everything a runtime needs to
reproduce the config's zero-shot protocol, and check the export against
PyTorch before calling it done.

The export directory holds:

- ``image.onnx``: one batch of windows (normalised RGB pixels at the
  config's ``crop_size``), the class embeddings ``[K, D]`` and ``bg_thresh``
  to the window scores, the projected group tokens, the pixel-to-group map
  and the chained soft assignments (:class:`~.onnx_modules.ImageSide`). The
  class embeddings are an input, so one export serves every vocabulary;
- ``text.onnx``: token ids ``[N, L]`` to projected text features
  (:class:`~.onnx_modules.TextSide`), so the vocabulary can change at run
  time;
- ``bpe_simple_vocab_16e6.txt.gz``: the CLIP BPE data of mmseg's tokenizer;
- ``deploy.json``: the protocol (mean, std, resize, window, stride,
  templates, classes, ``bg_thresh``, the tokenizer's context and special
  ids), the graphs' input and output names, the check's figures, and the
  SHA-256 of the protocol and of each file, which the runner checks
  (:mod:`groupvit_common.export_format`).
"""
import json
import os
import os.path as osp
import shutil
import tempfile
import warnings
from typing import Optional, Tuple

import numpy as np
import torch
from mmengine.dataset import Compose, pseudo_collate

from groupvit_common import export_format
from groupvit_common.errors import ExportCheckError
from .onnx_modules import (IMAGE_INPUTS, IMAGE_OUTPUTS, TEXT_INPUTS,
                           TEXT_OUTPUTS, ImageSide, TextSide)

__all__ = [
    'ExportCheckError', 'export_onnx', 'describe_protocol_for_runtime',
    'image_feeds'
]

#: ONNX opset of the exported graphs.
OPSET = 17
#: Largest difference of window scores allowed between onnxruntime and
#: PyTorch for the export to count as done.
SCORE_ATOL = 1e-4
DEPLOY_FILE = export_format.DEPLOY_FILE
BPE_FILE = 'bpe_simple_vocab_16e6.txt.gz'

#: Resize steps of a test pipeline (``CheckedResize``: same arguments and
#: pixels as mmcv's ``Resize``).
_RESIZES = ('Resize', 'mmseg.Resize', 'CheckedResize')


def _pipeline_resize(cfg) -> dict:
    """The ``Resize`` of the config's test pipeline, checked to be one the
    runtime reproduces (``keep_ratio=True``, bilinear, cv2)."""
    pipeline = cfg.test_dataloader.dataset.pipeline
    resizes = [t for t in pipeline if t['type'] in _RESIZES]
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
    other = [
        t['type'] for t in pipeline
        if t['type'] not in ('LoadImageFromFile', 'RobustLoadImageFromFile',
                             'LoadAnnotations', 'CheckedLoadAnnotations',
                             'PackSegInputs') + _RESIZES
    ]
    if other:
        raise ValueError(f'The test pipeline has steps the ONNX runtime does '
                         f'not reproduce: {", ".join(other)}.')
    return dict(scale=[int(v) for v in resize['scale']], keep_ratio=True)


def describe_protocol_for_runtime(model, cfg) -> dict:
    """What the runtime needs to reproduce the config's protocol.

    Returns:
        dict: ``mean``, ``std`` (RGB), ``resize``, ``crop_size``,
        ``stride``, ``align_corners``, ``bg_thresh``, ``with_bg``,
        ``templates``, ``classes`` (synonym lists, vocabulary order),
        ``class_names`` (``background`` first when the head has it) and
        the tokenizer's ``context_length``, ``sot_id`` and ``eot_id``.
    """
    test_cfg = model.test_cfg or {}
    if test_cfg.get('mode') != 'slide':
        raise ValueError(
            f'The ONNX export needs slide inference (test_cfg.mode="slide" '
            f'with crop_size and stride, as configs/groupvit_*.py have); '
            f'got mode={test_cfg.get("mode")!r}.')
    pre = model.data_preprocessor
    # The config's values (the model holds them as float32 tensors).
    pre_cfg = cfg.model.get('data_preprocessor', {})
    mean = [float(v) for v in pre_cfg.get('mean', pre.mean.flatten())]
    std = [float(v) for v in pre_cfg.get('std', pre.std.flatten())]
    if not getattr(pre, 'channel_conversion', False):
        raise ValueError('The ONNX runtime reads images as RGB; the config\'s '
                         'data_preprocessor must have bgr_to_rgb=True.')
    head = model.decode_head
    text = model.text_encoder
    return dict(
        mean=mean,
        std=std,
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


def check_window(model, cfg, image: str) -> Tuple[torch.Tensor, str]:
    """The top-left window of ``image`` after the config's test pipeline
    and data preprocessor, as the segmentor's slide inference sees it.

    Returns:
        tuple: ``[1, 3, h, w]`` window and a description.
    """
    steps = [
        t for t in cfg.test_dataloader.dataset.pipeline
        if 'LoadAnnotations' not in t['type']
    ]
    data = Compose(steps)(dict(img_path=image))
    inputs = model.data_preprocessor(pseudo_collate([data]), False)['inputs']
    h, w = model.test_cfg['crop_size']
    if inputs.shape[-2] < h or inputs.shape[-1] < w:
        raise ValueError(f'The check image {image} is smaller than one '
                         f'{h}x{w} window after the test pipeline; pass a '
                         f'larger photo with --check-image.')
    return inputs[:, :, :h, :w].contiguous(), osp.basename(image)


def _export(module, args, path, input_names, output_names, dynamic_axes):
    with warnings.catch_warnings():
        # The tracer's notes about Python conditions on shapes: the window
        # size is fixed at export by design.
        warnings.simplefilter('ignore')
        torch.onnx.export(
            module,
            args,
            path,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False)


def image_feeds(session, **arrays) -> dict:
    """The arrays the image graph takes: a head without a background
    channel does not use ``bg_thresh``, and its graph has no such input."""
    names = {i.name for i in session.get_inputs()}
    return {k: v for k, v in arrays.items() if k in names}


def _session(path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def export_graphs(model, out_dir: str, window: torch.Tensor) -> None:
    """Write ``image.onnx`` and ``text.onnx`` of ``model`` into
    ``out_dir``."""
    class_embeds = model.text_encoder()
    thresh = torch.tensor(0.5)
    _export(
        ImageSide(model).eval(), (window, class_embeds, thresh),
        osp.join(out_dir, 'image.onnx'), IMAGE_INPUTS, IMAGE_OUTPUTS,
        dict(
            pixels={0: 'batch'},
            class_embeds={0: 'classes'},
            scores={
                0: 'batch',
                1: 'channels'
            },
            group_embeds={0: 'batch'},
            pixel_group={0: 'batch'},
            assignments={0: 'batch'}))
    tokens = model.text_encoder.tokenize(['a photo of a cat.', 'a dog.'])
    _export(
        TextSide(model.text_encoder).eval(), (tokens, ),
        osp.join(out_dir, 'text.onnx'), TEXT_INPUTS, TEXT_OUTPUTS,
        dict(tokens={
            0: 'prompts',
            1: 'length'
        }, text_features={0: 'prompts'}))


def check_graphs(model, out_dir: str, window: torch.Tensor,
                 atol: float) -> dict:
    """Run both graphs with onnxruntime and compare with PyTorch.

    The image graph gets the window and the vocabulary's class embeddings
    from PyTorch; the text graph the vocabulary's prompts, tokenised by
    mmseg's tokenizer and cut after the longest prompt's end, as the
    segmentor encodes them.

    Returns:
        dict: ``window_scores_max_abs_diff``,
        ``text_features_max_abs_diff``, ``labels_equal`` (share of window
        pixels whose argmax agrees) and ``atol``.

    Raises:
        ExportCheckError: When a difference exceeds ``atol``.
    """
    bg_thresh = float(
        model.test_cfg.get('bg_thresh', model.decode_head.bg_thresh))
    metas = [dict(img_shape=window.shape[2:], pad_shape=window.shape[2:])]
    class_embeds = model.text_encoder()
    ref = model.encode_decode(window, metas).numpy()
    session = _session(osp.join(out_dir, 'image.onnx'))
    scores = session.run(['scores'],
                         image_feeds(
                             session,
                             pixels=window.numpy(),
                             class_embeds=class_embeds.numpy(),
                             bg_thresh=np.array(bg_thresh, np.float32)))[0]
    prompts = [p for ps in model.text_encoder.prompts() for p in ps]
    tokens = model.text_encoder.tokenize(prompts)
    tokens = tokens[:, :int(tokens.argmax(-1).max()) + 1]
    ref_text = model.text_encoder.encode_tokens(tokens).numpy()
    text = _session(osp.join(out_dir,
                             'text.onnx')).run(['text_features'],
                                               dict(tokens=tokens.numpy()))[0]
    result = dict(
        window_scores_max_abs_diff=float(np.abs(scores - ref).max()),
        text_features_max_abs_diff=float(np.abs(text - ref_text).max()),
        labels_equal=float((scores.argmax(1) == ref.argmax(1)).mean()),
        atol=atol)
    bad = [
        k for k in ('window_scores_max_abs_diff', 'text_features_max_abs_diff')
        if not result[k] <= atol
    ]
    if bad:
        raise ExportCheckError(
            'The exported graphs disagree with PyTorch: ' +
            ', '.join(f'{k.replace("_", " ")} {result[k]:.2e}'
                      for k in bad) + f' > {atol:.0e}. The export was '
            f'deleted; please report this with your torch and onnxruntime '
            f'versions.')
    return result


def _prepare_out_dir(out_dir: str) -> None:
    """Refuse a non-empty folder that is not a previous export."""
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise ValueError(f'--out {out_dir} is a file; pass a folder.')
    if osp.isdir(out_dir) and os.listdir(out_dir) and not osp.isfile(
            osp.join(out_dir, DEPLOY_FILE)):
        raise ValueError(
            f'--out {out_dir} is a non-empty folder that is not an ONNX '
            f'export (no {DEPLOY_FILE}); pass a new or empty folder.')


@torch.no_grad()
def export_onnx(model,
                cfg,
                out_dir: str,
                check_image: str,
                atol: float = SCORE_ATOL,
                weights: Optional[str] = None) -> dict:
    """Export ``model`` into ``out_dir`` and check it against PyTorch.

    Everything is written into a temporary folder beside ``out_dir`` and
    moved into place only when the check passes, so a failed export leaves
    nothing behind (a previous export in ``out_dir`` is replaced only by a
    checked one).

    Args:
        model: A :class:`GroupViTEncoderDecoder` (CPU, eval mode).
        cfg (Config): Its config (the test pipeline is read).
        out_dir (str): The export folder.
        check_image (str): A photo; the top-left window after the test
            pipeline is compared.
        atol (float): Largest allowed difference. Defaults to 1e-4.
        weights (str, optional): What the weights are, for ``deploy.json``.

    Returns:
        dict: The content of ``deploy.json``.
    """
    _prepare_out_dir(out_dir)
    model = model.cpu().eval()
    protocol = describe_protocol_for_runtime(model, cfg)
    window, window_name = check_window(model, cfg, check_image)
    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.onnx-export-', dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        export_graphs(model, tmp, window)
        check = check_graphs(model, tmp, window, atol)
        check['image'] = window_name
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
                inputs=[
                    i.name for i in _session(osp.join(
                        tmp, 'image.onnx')).get_inputs()
                ],
                outputs=list(IMAGE_OUTPUTS)),
            text_graph=dict(
                file='text.onnx',
                inputs=list(TEXT_INPUTS),
                outputs=list(TEXT_OUTPUTS)),
            tokenizer=dict(bpe_file=BPE_FILE),
            protocol=protocol,
            check=check)
        files = {}
        for name in ('image.onnx', 'text.onnx', BPE_FILE):
            with open(osp.join(tmp, name), 'rb') as f:
                files[name] = f.read()
        meta['sha256'] = export_format.digests(protocol, files)
        with open(osp.join(tmp, DEPLOY_FILE), 'w') as f:
            json.dump(meta, f, indent=2)
        if osp.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp)
    return meta
