# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Speed of GroupViT zero-shot segmentation against transformers'
``GroupViTModel`` (docs/benchmark.md); exit status 1 past ``--atol``."""
import argparse
import functools
import json
import os
import os.path as osp
import sys
import tempfile
from statistics import median
from typing import Callable, List

import torch
import torch.nn.functional as F
from bench_common import (REPO, build_dataset, build_model, build_reference,
                          load_average, machine, setup, share_equal,
                          swapped_encode_decode, time_interleaved,
                          window_shape)
from mmengine.dataset import pseudo_collate
from torch.profiler import ProfilerActivity, profile

from groupvit_common.errors import exit_on_user_error
from groupvit_common.tool_options import (add_shape_option, bench_options,
                                          number_in, tolerance, weights_label)
from groupvit_common.window_grid import window_boxes
from mmseg_groupvit.models.segmentors.groupvit_encoder_decoder import \
    DEFAULT_WINDOW_BATCH
from mmseg_groupvit.utils.console import (progress, quiet_profiler,
                                          quiet_warnings)

#: How far the load may move (one core's worth) for trusted ratios.
LOAD_SPREAD = 1.0
#: The per-window rows of the report: label, ours, reference (the ratio is
#: the reference's time over ours).
ROWS = (
    ('full zero-shot call', 'ours_window', 'hf_window'),
    ('  transformers, prompts padded to the longest', 'ours_window',
     'hf_window_padded_longest'),
    ('vision backbone', 'ours_backbone', 'hf_backbone'),
    ('text encoder (ours: once per vocabulary)', 'ours_text', 'hf_text'),
    ('onnxruntime image.onnx (CPU)', 'ours_window', 'onnxruntime_window'),
)


def ratio(times: dict, slower: str, faster: str) -> float:
    """The median of the rounds' time ratios ``slower / faster``."""
    return median(
        [a / b for a, b in zip(times[slower]['runs'], times[faster]['runs'])])


def peak_memory(fn: Callable, device: torch.device) -> int:
    """Peak bytes of tensor memory allocated during ``fn()``."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with profile(
            activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def reliability(loads: List[float], times: dict, cpus: int) -> List[str]:
    """Why the ratios cannot be trusted (empty when they can)."""
    reasons = []
    if loads and max(loads) - min(loads) > LOAD_SPREAD:
        reasons.append(f'the load average moved from {min(loads)} to '
                       f'{max(loads)} during the timed rounds (more than '
                       f'{LOAD_SPREAD})')
    if loads and cpus and max(loads) > cpus + LOAD_SPREAD:
        reasons.append(f'the load average reached {max(loads)} on '
                       f'{cpus} CPUs: other work took cores')
    for who in ('ours', 'hf'):
        call, part = f'{who}_window', f'{who}_backbone'
        if call in times and part in times and \
                times[call]['median'] < times[part]['median']:
            reasons.append(f'{call} took less than {part}, a part of it')
    return reasons


def naive_encode_decode(model, window, metas):
    """One window as the original ``GroupViTSegInference``: two passes."""
    class_embeds = model.text_encoder()
    feats = model.image_encoder(window)
    again = model.image_encoder(window)
    feats.update((k, again[k]) for k in ('group_embeds', 'image_embeds'))
    return model.decode_head.predict([window, feats, class_embeds], metas,
                                     model.test_cfg)


def first_window(dataset, model, shape, device, seed):
    """The first image's top-left window, or seeded noise."""
    if dataset is None:
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(1, 3, *shape, generator=gen).to(device), 'noise'
    batch = model.data_preprocessor(pseudo_collate([dataset[0]]), False)
    inputs = batch['inputs']
    if inputs.shape[-2] < shape[0] or inputs.shape[-1] < shape[1]:
        inputs = F.interpolate(
            inputs, size=shape, mode='bilinear', align_corners=False)
    name = osp.basename(batch['data_samples'][0].img_path)
    return inputs[:, :, :shape[0], :shape[1]].contiguous(), name


def max_diff(a, b) -> float:
    return (torch.as_tensor(a).float() -
            torch.as_tensor(b).float()).abs().max().item()


def labels_equal(a, b) -> float:
    return (torch.as_tensor(a).argmax(1) == torch.as_tensor(b).argmax(1)
            ).float().mean().item()


def agreement(model, hf, window, tokens, metas):
    """Max abs differences from transformers; our head on its features."""
    from mmseg_groupvit.models.decode_heads.groupvit_head import group_maps
    with torch.no_grad():
        out = hf(
            input_ids=tokens, pixel_values=window, output_segmentation=True)
        vision = out.vision_model_output
        feats = model.image_encoder(window)
        text = F.normalize(model.text_encoder.encode_tokens(tokens), dim=-1)
        scale = model.decode_head.logit_scale.exp()
        maps = group_maps(feats['soft_assigns'], feats['grid'],
                          window.shape[-2:])
        cos = F.normalize(feats['group_embeds'], dim=-1) @ text.t()
        seg = torch.einsum('bgt,bghw->bthw', cos, maps)
        diffs = dict(
            image_embeds=max_diff(
                F.normalize(feats['image_embeds'], dim=-1), out.image_embeds),
            text_embeds=max_diff(text, out.text_embeds),
            group_tokens=max_diff(feats['group_tokens'],
                                  vision.last_hidden_state),
            segmentation_logits_over_scale2=max_diff(
                seg, out.segmentation_logits / scale**2))
        for i, pair in enumerate(
                zip(feats['soft_assigns'], vision.attentions), 1):
            diffs[f'soft_grouping_{i}'] = max_diff(*pair)
        hf_feats = dict(
            soft_assigns=list(vision.attentions),
            grid=feats['grid'],
            group_embeds=hf.visual_projection(
                vision.last_hidden_state.flatten(0, 1)).view(
                    *vision.last_hidden_state.shape[:2], -1),
            image_embeds=hf.visual_projection(vision.pooler_output))
        ours = model.encode_decode(window, metas)
        from_hf = model.decode_head.predict(
            [window, hf_feats, model.text_encoder()], metas, model.test_cfg)
    return diffs, dict(
        max_abs_diff=max_diff(ours, from_hf),
        label_agreement=labels_equal(ours, from_hf))


def image_throughput(model, dataset, n, repeat, device, modes, advance):
    """images/s of inference (the config's mode) on ``n`` real images, the
    ``modes`` interleaved; labels. A mode's value: an ``onnx_runner``
    (``onnxruntime``), else None or what runs as ``encode_decode``
    (``swapped_encode_decode``) in ours (``ours``, ``transformers``) or in
    mmseg's window loop (``mmseg_loop``, ``naive``)."""
    from mmseg.models.segmentors import MultimodalEncoderDecoder as Loop
    test_cfg = model.test_cfg or {}
    whole = test_cfg.get('mode', 'whole') != 'slide'
    loop = functools.partial(
        Loop.whole_inference if whole else Loop.slide_inference, model)
    shapes, last = {}, {}

    def run(mode, i):
        """Record the labels of image ``i`` in ``mode`` as ``last[mode]``."""
        if mode == 'onnxruntime':
            runner, *rest = modes[mode]
            path = dataset.get_data_info(i)['img_path']
            last[mode] = runner.predict_file(path, *rest)[1]
            return
        batch = model.data_preprocessor(pseudo_collate([dataset[i]]), False)
        inputs, samples = batch['inputs'], batch['data_samples']
        shapes[i] = inputs.shape[-2:]
        metas = [s.metainfo for s in samples]
        infer = loop if mode in ('mmseg_loop', 'naive') else model.inference
        with swapped_encode_decode(model, modes[mode]):
            logits = infer(inputs, metas)
        out = model.postprocess_result(logits, samples)
        last[mode] = out[0].pred_sem_seg.data[0].cpu().numpy()

    seconds, labels = dict.fromkeys(modes, 0.), {m: [] for m in modes}
    for i in range(n):
        fns = {m: functools.partial(run, m, i) for m in modes}
        with torch.no_grad():
            times = time_interleaved(fns, repeat, int(i == 0), device)
        for m in modes:
            seconds[m] += times[m]['median']
            labels[m].append(last[m])
        if advance is not None:
            advance()
    windows = n if whole else sum(
        len(window_boxes(*hw, test_cfg['crop_size'], test_cfg['stride']))
        for hw in shapes.values())
    first, *others = modes
    result = dict(num_images=n, windows_per_image=windows / max(n, 1))
    result['images_per_s'] = {m: n / t for m, t in seconds.items()}
    result['label_agreement'] = {
        f'{first}_vs_{m}': share_equal(labels[first], labels[m])
        for m in others
    }
    return result, labels


def onnx_runner(export, model, cfg, image, tmp, **options):
    """The runner of an export folder (``auto``: ``model`` exported into
    ``tmp``), its class embeddings and background threshold."""
    if export == 'auto':
        export = osp.join(tmp, 'export')
        from mmseg_groupvit.deployment import export_onnx
        export_onnx(model, cfg, export, image)
    from groupvit_ort import OnnxSegmenter
    runner = OnnxSegmenter(export, **options)
    class_embeds, _ = runner.class_embeddings(runner.protocol['classes'])
    return runner, class_embeds, runner.protocol['bg_thresh']


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark GroupViT zero-shot inference against '
        'transformers\' GroupViTModel',
        parents=[bench_options()])
    add = parser.add_argument
    add('--image-repeat',
        type=number_in(int, 1, 10**6, 'must be 1 or more, got {text}'),
        default=1,
        help='rounds per image')
    add('--threads',
        type=number_in(int, 1, 4096, 'must be 1 or more, got {text}'),
        default=2,
        help='CPU threads')
    add_shape_option(parser, square=True)
    add('--atol', type=tolerance, default=1e-4, help='allowed difference')
    add('--onnx',
        help='also time onnxruntime: an export folder of the same weights, '
        'or "auto" to export into a temporary folder')
    add('--json', action='store_true', help='a last line of JSON')
    args = parser.parse_args(argv)
    quiet_warnings()
    quiet_profiler()
    with exit_on_user_error(), tempfile.TemporaryDirectory() as tmp:
        result = run(args, tmp)
    print(report(result))
    if args.json:
        print(json.dumps(result))
    return 0 if result['agree'] else 1


def run(args, tmp: str) -> dict:
    torch.set_num_threads(args.threads)
    cfg, device = setup(args)
    shape = args.shape or window_shape(cfg)
    load_start, loads = load_average(), []
    print('benchmark: building ours and the reference', file=sys.stderr)
    model = build_model(cfg, args.checkpoint, device, args.seed)
    hf = build_reference(model, shape, cfg.model).to(device)
    dataset = build_dataset(cfg, args.data_root) if args.num_images else None
    window, source = first_window(dataset, model, shape, device, args.seed)
    metas = [dict(img_shape=window.shape[2:], pad_shape=window.shape[2:])]
    text = model.text_encoder
    tokens = text.tokenize([p for ps in text.prompts() for p in ps]).to(device)
    longest = int(tokens.argmax(-1).max()) + 1
    short_tokens = tokens[:, :longest].contiguous()
    onnx = None
    if args.onnx and device.type != 'cpu':
        print('note: the onnxruntime figures are measured on CPU only; run '
              'the benchmark with --device cpu for them.')
    elif args.onnx:
        # The photo of the timed window (a shipped one without data).
        image = dataset[0]['data_samples'].img_path if dataset else \
            osp.join(REPO, 'samples', 'images', 'groupvit_demo_voc.jpg')
        onnx = onnx_runner(
            args.onnx, model, cfg, image, tmp, threads=args.threads)
    hf_call = functools.partial(
        hf, pixel_values=window, output_segmentation=True)
    with torch.no_grad():
        model.text_encoder()  # cached, as for every window after the first
        fns = dict(
            ours_window=lambda: model.encode_decode(window, metas),
            hf_window=lambda: hf_call(input_ids=tokens),
            hf_window_padded_longest=lambda: hf_call(input_ids=short_tokens),
            ours_backbone=lambda: model.image_encoder.forward_features(window),
            hf_backbone=lambda: hf.vision_model(
                pixel_values=window, output_attentions=True),
            ours_text=lambda: model.text_encoder.encode_tokens(tokens),
            hf_text=lambda: hf.get_text_features(input_ids=tokens))
        if onnx:
            pixels = window.cpu().numpy()
            fns['onnxruntime_window'] = lambda: onnx[0].window_scores(
                pixels, *onnx[1:])
        with progress(args.repeat + 1, 'per-window times', 'rounds') as bar:
            times = time_interleaved(fns, args.repeat, 1, device, bar.advance,
                                     loads)
        names = ('ours_window', 'hf_window', 'ours_backbone', 'hf_backbone')
        memory = {}
        with progress(len(names), 'peak memory', 'calls') as bar:
            for name in names:
                memory[name] = peak_memory(fns[name], device)
                bar.advance()
        if onnx:
            ours = model.encode_decode(window, metas).cpu()
            scores = fns['onnxruntime_window']()
            onnx_agree = dict(
                export=args.onnx,
                window_max_abs_diff=max_diff(scores, ours),
                window_labels_equal=labels_equal(scores, ours))
    print('benchmark: checking that they agree', file=sys.stderr)
    diffs, head = agreement(model, hf, window, tokens, metas)
    images = None
    if dataset is not None:  # built when --num-images is not 0
        count = min(args.num_images, len(dataset))
        modes = dict(ours=None, mmseg_loop=None, naive=naive_encode_decode)
        if onnx:
            modes['onnxruntime'] = onnx
        with progress(count, 'whole images', 'images') as bar:
            images, _ = image_throughput(model, dataset, count,
                                         args.image_repeat, device, modes,
                                         bar.advance)
    max_abs = max(diffs.values())
    speedup = {r: ratio(times, r, o) for _, o, r in ROWS if r in times}
    memory_mib = {k: v / 2**20 for k, v in memory.items()}
    return dict(
        config=args.config,
        window=list(shape),
        window_source=source,
        num_prompts=len(tokens),
        prompt_tokens=dict(padded=tokens.shape[1], longest=longest),
        autocast=model.test_cfg.get('autocast') or 'fp32',
        window_batch=model.test_cfg.get('window_batch')
        or DEFAULT_WINDOW_BATCH,
        weights=weights_label(args.checkpoint, args.seed),
        machine=machine(device),
        load_avg_1min=dict(
            start=load_start,
            end=load_average(),
            min=min(loads, default=None),
            max=max(loads, default=None)),
        repeat=args.repeat,
        times_ms={
            k: dict(best=t['best'] * 1e3, median=t['median'] * 1e3)
            for k, t in times.items()
        },
        speedup=speedup,
        speedup_window=speedup['hf_window'],
        speedup_backbone=speedup['hf_backbone'],
        unreliable=reliability(loads, times, os.cpu_count()),
        peak_mem_mib=memory_mib,
        peak_mem_ratio=memory['ours_window'] / max(memory['hf_window'], 1),
        max_abs_diff=max_abs,
        diffs=diffs,
        head_on_reference_features=head,
        onnx=onnx_agree if onnx else None,
        agree=max_abs <= args.atol,
        atol=args.atol,
        images=images)


def _pairs(values: dict, fmt: str = '') -> str:
    return ', '.join(f'{k} {v:{fmt}}' for k, v in values.items()
                     if not isinstance(v, str) or not fmt)


def report(r: dict) -> str:
    t, mem = r['times_ms'], r['peak_mem_mib']
    x = 'x UNRELIABLE' if r['unreliable'] else 'x'
    head, images = r['head_on_reference_features'], r['images']
    lines = [
        f'GroupViT zero-shot benchmark: {r["config"]}, {r["window"][0]}x'
        f'{r["window"][1]} window ({r["window_source"]}), '
        f'{r["num_prompts"]} prompts, {r["autocast"]}, weights '
        f'{r["weights"]}', f'machine: {_pairs(r["machine"])}',
        f'load average (1 min): {_pairs(r["load_avg_1min"])}'
    ]
    lines += [
        f'RATIOS UNRELIABLE: {why}; run again on an idle machine.'
        for why in r['unreliable']
    ]
    title = f'median of {r["repeat"]} rounds (ms)'
    lines += [
        '', f'{title:<46} {"ours":>9} {"reference":>10}  ratio (time: '
        f'reference / ours; memory: ours / reference)'
    ]
    for label, ours, ref in ROWS:
        if ref in t:
            lines.append(
                f'{label:<46} {t[ours]["median"]:9.1f} '
                f'{t[ref]["median"]:10.1f} {r["speedup"][ref]:6.2f}{x}')
    for part in ('window', 'backbone'):
        ours, ref = mem[f'ours_{part}'], mem[f'hf_{part}']
        lines.append(f'{f"peak tensor memory, {part} (MiB)":<46} {ours:9.1f} '
                     f'{ref:10.1f} {ours / max(ref, 1e-9):6.2f}x')
    lines += [
        '', f'agreement with transformers (max abs diff): '
        f'{_pairs(r["diffs"], ".1e")}', f'  max {r["max_abs_diff"]:.1e} '
        f'{"<=" if r["agree"] else "> (DISAGREE)"} atol {r["atol"]:.0e}; '
        f'our head on transformers\' features: {_pairs(head, ".3g")}'
    ]
    if r['onnx']:
        lines.append(f'onnxruntime against ours: {_pairs(r["onnx"], ".3g")}')
    if images:
        lines += [
            '', f'images/s on {images["num_images"]} real images '
            f'({images["windows_per_image"]:.2f} windows each, file read and '
            f'resize included; ours with window batch {r["window_batch"]}; '
            f'naive: the original protocol, 2 encoder passes a window): '
            f'{_pairs(images["images_per_s"], ".3f")}',
            f'  labels equal: {_pairs(images["label_agreement"], ".4%")}'
        ]
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
