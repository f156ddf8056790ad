# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Speed of GroupViT zero-shot segmentation against transformers'
``GroupViTModel`` on the same weights and pixels (docs/benchmark.md)::

    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT]
        [--data-root DIR] [--num-images N] [--repeat 5] [--threads 2]
        [--device cpu|cuda] [--amp fp32|fp16|bf16] [--window-batch N]
        [--onnx DIR|auto] [--json] [--cfg-options ...]

Each ratio is the median of the interleaved rounds' ratios, marked
UNRELIABLE when the load moved or the figures contradict each other; exit
status 1 when the outputs differ by more than ``--atol``.
"""
import argparse
import contextlib
import functools
import json
import os
import os.path as osp
import sys
from typing import List, Optional

import torch
import torch.nn.functional as F
from bench_common import (autocast_setting, build_dataset, build_model,
                          build_reference, images_per_s, load_average, machine,
                          median, peak_memory, ratio, share_equal,
                          swapped_encode_decode, time_interleaved,
                          visible_device)
from get_flops import segmentor_flops, window_shape
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from groupvit_common.errors import USER_ERRORS, user_error_message
from groupvit_common.tool_options import (add_cfg_options, check_paths,
                                          weights_label)
from mmseg_groupvit.models.layers import fast_linear
from mmseg_groupvit.models.segmentors.groupvit_encoder_decoder import \
    DEFAULT_WINDOW_BATCH
from mmseg_groupvit.utils.console import (progress, quiet_profiler,
                                          quiet_warnings)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MiB = 2.0**20
#: How far the load may move (one core's worth) for trusted ratios.
LOAD_SPREAD = 1.0
#: How far apart the same figure measured twice may be.
SAME_FIGURE = 1.5
IMAGE_MODES = ('ours', 'mmseg_loop', 'naive', 'naive_plain')


def reliability(loads: List[float],
                times: dict,
                cpus: Optional[int] = None,
                again: Optional[float] = None) -> List[str]:
    """Why the ratios cannot be trusted (empty when they can): the load
    moved or took cores, a whole call was faster than its backbone, or
    ``again`` (``ours_window`` timed in another section, s) differs."""
    reasons = []
    if loads and max(loads) - min(loads) > LOAD_SPREAD:
        reasons.append(f'the load average moved from {min(loads)} to '
                       f'{max(loads)} during the timed rounds (more than '
                       f'{LOAD_SPREAD})')
    if loads and cpus and max(loads) > cpus + LOAD_SPREAD:
        reasons.append(f'the load average reached {max(loads)} on '
                       f'{cpus} CPUs: other work took cores')
    if again is not None and 'ours_window' in times:
        first = times['ours_window']['median']
        if max(first, again) > SAME_FIGURE * min(first, again):
            reasons.append(f'ours per window took {1e3 * first:.1f} ms in '
                           f'one section and {1e3 * again:.1f} ms in '
                           f'another')
    for call, part in (('ours_window', 'ours_backbone'), ('hf_window',
                                                          'hf_backbone')):
        if call in times and part in times and \
                times[call]['median'] < times[part]['median']:
            reasons.append(f'{call} took less than {part}, a part of it')
    return reasons


def matmul_peak(device, sizes: List[int], repeat: int, advance=None) -> dict:
    """Best fp32 GFLOP/s of square matrix products (``torch.mm`` and the
    fused linear kernel): the device's peak."""
    best = {}
    for size in sizes:
        a = torch.randn(size, size, device=device)
        b = torch.randn(size, size, device=device)
        fns = dict(mm=lambda: torch.mm(a, b))
        if fast_linear.available(a, b):
            fns['fused_linear'] = lambda: fast_linear.linear(a, b)
        with torch.no_grad():
            times = time_interleaved(fns, repeat, 1, device, advance)
        for name, t in times.items():
            best[name] = max(best.get(name, 0.), 2 * size**3 / t['best'] / 1e9)
    best['peak'] = max(best.values())
    return best


def naive_encode_decode(model, window, metas):
    """One window as the original ``GroupViTSegInference`` runs it: two
    image-encoder passes."""
    class_embeds = model.text_encoder()
    feats = model.image_encoder(window)
    again = model.image_encoder(window)
    feats = dict(
        feats,
        group_embeds=again['group_embeds'],
        image_embeds=again['image_embeds'])
    return model.decode_head.predict([window, feats, class_embeds], metas,
                                     model.test_cfg)


@contextlib.contextmanager
def plain_layers():
    """Plain ``F.linear`` layers instead of the fused linear kernel."""
    previous = fast_linear.set_enabled(False)
    try:
        yield
    finally:
        fast_linear.set_enabled(previous)


def predict_with(model, mode: str, inputs, data_samples):
    """``model.predict`` through one of :data:`IMAGE_MODES`."""
    from mmseg.models.segmentors import MultimodalEncoderDecoder
    metas = [s.metainfo for s in data_samples]
    if mode == 'ours':
        logits = model.inference(inputs, metas)
    elif mode == 'mmseg_loop':
        logits = MultimodalEncoderDecoder.slide_inference(model, inputs, metas)
    else:
        layers = plain_layers() if mode == 'naive_plain' else \
            contextlib.nullcontext()
        with layers, swapped_encode_decode(model, naive_encode_decode):
            logits = MultimodalEncoderDecoder.slide_inference(
                model, inputs, metas)
    return model.postprocess_result(logits, data_samples)


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
    return (a.detach().float() - b.detach().float()).abs().max().item()


def labels_equal(a, b) -> float:
    return (a.argmax(1) == b.argmax(1)).float().mean().item()


def agreement(model, hf, window, tokens, metas):
    """Max abs differences between what ours and transformers compute, and
    our head on transformers' features against ours."""
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
        for i, (a,
                b) in enumerate(zip(feats['soft_assigns'], vision.attentions)):
            diffs[f'soft_grouping_{i + 1}'] = max_diff(a, b)
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


def amp_agreement(model, window, metas, amp):
    """Our autocast outputs against our fp32 ones: scores, labels, group
    embeddings (least cosine) and soft groupings."""
    with torch.no_grad():
        fast = model.encode_decode(window, metas)
        fast_feats = model.extract_feat(window)
        with autocast_setting(model, 'fp32'):
            exact = model.encode_decode(window, metas)
            feats = model.image_encoder(window)
    cosine = F.cosine_similarity(
        fast_feats['group_embeds'], feats['group_embeds'], dim=-1)
    return dict(
        dtype=amp,
        max_abs_diff=max_diff(fast, exact),
        label_agreement=labels_equal(fast, exact),
        min_group_embed_cosine=cosine.min().item(),
        soft_grouping_max_abs_diff=max(
            max_diff(a, b) for a, b in zip(fast_feats['soft_assigns'],
                                           feats['soft_assigns'])))


def image_throughput(model, dataset, num_images, repeat, device, advance):
    """images/s of the slide paths on real images (load and resize
    included), interleaved per image."""
    n = min(num_images, len(dataset))
    shapes = {}

    def run(mode, i):
        batch = model.data_preprocessor(pseudo_collate([dataset[i]]), False)
        shapes[i] = batch['inputs'].shape[-2:]
        out = predict_with(model, mode, batch['inputs'], batch['data_samples'])
        return out[0].pred_sem_seg.data.cpu().numpy()

    with torch.no_grad():
        rates, labels = images_per_s(
            {m: functools.partial(run, m)
             for m in IMAGE_MODES}, n, repeat, device, advance)
    (sh, sw), (ch, cw) = model.test_cfg.stride, model.test_cfg.crop_size
    windows = sum((max(h - ch + sh - 1, 0) // sh + 1) *
                  (max(w - cw + sw - 1, 0) // sw + 1)
                  for h, w in shapes.values())
    return dict(
        num_images=n,
        windows_per_image=windows / max(n, 1),
        images_per_s=rates,
        label_agreement_ours_vs_naive=share_equal(labels['ours'],
                                                  labels['naive']))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark GroupViT zero-shot inference against '
        'transformers\' GroupViTModel')
    add = parser.add_argument
    add('config', help='config file')
    add('--checkpoint', help='converted checkpoint (default: random, seeded)')
    add('--data-root', help='dataset root for the images/s measurement')
    add('--num-images', type=int, default=10, help='for images/s (0: none)')
    add('--repeat', type=int, default=5, help='timed rounds (median of)')
    add('--image-repeat', type=int, default=1, help='rounds per image')
    add('--threads', type=int, default=2, help='CPU threads')
    add('--device', default='cpu', help='cpu or cuda[:i]')
    add('--amp',
        choices=['fp32', 'fp16', 'bf16'],
        default='fp32',
        help='autocast the image encoder (test_cfg.autocast)')
    add('--window-batch', type=int, help='windows per backbone pass')
    add('--shape', type=int, nargs='+', help='window H [W] (crop_size)')
    add('--peak-sizes',
        type=int,
        nargs='+',
        default=[2048, 4096],
        help='matrix sizes for the device\'s matrix-product peak')
    add('--atol', type=float, default=1e-4, help='allowed difference')
    add('--onnx',
        help='also time onnxruntime: an export folder of the same weights, '
        'or "auto" to export into a temporary folder')
    add('--seed', type=int, default=0)
    add('--json', action='store_true', help='a last line of JSON')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    device = visible_device(args.device, '')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.amp != 'fp32':
        cfg.model.test_cfg['autocast'] = args.amp
    if args.window_batch:
        cfg.model.test_cfg['window_batch'] = args.window_batch
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    shape = (args.shape[0], args.shape[-1]) if args.shape else \
        window_shape(cfg)
    load_start, loads = load_average(), []

    say('building ours and the transformers reference')
    model = build_model(cfg, args.checkpoint, device, args.seed)
    hf = build_reference(model, shape, cfg.model).to(device)
    dataset = build_dataset(cfg, args.data_root) if args.num_images else None
    window, source = first_window(dataset, model, shape, device, args.seed)
    metas = [dict(img_shape=window.shape[2:], pad_shape=window.shape[2:])]
    prompts = [p for ps in model.text_encoder.prompts() for p in ps]
    tokens = model.text_encoder.tokenize(prompts).to(device)
    longest = int(tokens.argmax(-1).max()) + 1
    short_tokens = tokens[:, :longest].contiguous()
    encoder = model.image_encoder

    with torch.no_grad():
        model.text_encoder()  # cached, as for every window after the first
        batch2 = window.expand(2, -1, -1, -1).contiguous()
        fns = dict(
            ours_window=lambda: model.encode_decode(window, metas),
            hf_window=lambda:
            hf(input_ids=tokens, pixel_values=window, output_segmentation=True
               ),
            hf_window_padded_longest=lambda: hf(
                input_ids=short_tokens,
                pixel_values=window,
                output_segmentation=True),
            ours_backbone=lambda: encoder.forward_features(window),
            hf_backbone=lambda: hf.vision_model(
                pixel_values=window, output_attentions=True),
            ours_window_batch2=lambda: model.encode_decode(batch2, metas),
            ours_text=lambda: model.text_encoder.encode_tokens(tokens),
            hf_text=lambda: hf.get_text_features(input_ids=tokens))
        with progress(args.repeat + 1, 'per-window times', 'rounds') as bar:
            times = time_interleaved(fns, args.repeat, 1, device, bar.advance,
                                     loads)
        runs = [t / 2 for t in times['ours_window_batch2']['runs']]
        times['ours_window_batch2'] = dict(
            best=min(runs), median=median(runs), runs=runs)
        names = ('ours_window', 'hf_window', 'ours_backbone', 'hf_backbone')
        memory = {}
        with progress(len(names), 'peak memory', 'calls') as bar:
            for name in names:
                memory[name] = peak_memory(fns[name], device)
                bar.advance()
    say('checking that ours and the reference agree')
    diffs, head = agreement(model, hf, window, tokens, metas)
    amp = amp_agreement(model, window, metas,
                        args.amp) if args.amp != 'fp32' else None

    say('counting FLOPs')
    flops = segmentor_flops(model, shape)
    rounds = max(2, args.repeat // 2)
    with progress(
            len(args.peak_sizes) * (rounds + 1), 'matrix-product peak',
            'rounds') as bar:
        peak = matmul_peak(device, args.peak_sizes, rounds, bar.advance)
    rates = {
        name: 2 * flops[part] / times[name]['best'] / 1e9
        for name, part in (('ours_window', 'window'), ('ours_backbone',
                                                       'image_encoder'),
                           ('hf_backbone', 'image_encoder'))
    }
    images = None
    if dataset is not None and args.num_images > 0:
        count = min(args.num_images, len(dataset))
        with progress(count, 'whole images', 'images') as bar:
            images = image_throughput(model, dataset, args.num_images,
                                      args.image_repeat, device, bar.advance)
    max_abs = max(diffs.values())
    onnx = onnx_column(args, cfg, model, dataset, window,
                       metas) if args.onnx else None
    return dict(
        onnx=onnx,
        config=args.config,
        window=list(shape),
        window_source=source,
        num_prompts=len(prompts),
        prompt_tokens=dict(padded=tokens.shape[1], longest=longest),
        amp=args.amp,
        window_batch=(model.test_cfg or {}).get('window_batch')
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
        speedup_window=ratio(times, 'hf_window', 'ours_window'),
        speedup_window_vs_padded_longest=ratio(times,
                                               'hf_window_padded_longest',
                                               'ours_window'),
        speedup_backbone=ratio(times, 'hf_backbone', 'ours_backbone'),
        speedup_window_batch2=ratio(times, 'ours_window',
                                    'ours_window_batch2'),
        unreliable=reliability(
            loads, times, os.cpu_count(),
            onnx['window_ms']['ours_window'] / 1e3 if onnx else None),
        peak_mem_mib={
            k: v / MiB
            for k, v in memory.items()
        },
        peak_mem_ratio=memory['ours_window'] / max(memory['hf_window'], 1),
        gflop={
            k: 2 * flops[k] / 1e9
            for k in ('window', 'image_encoder', 'text')
        },
        gflop_per_s=rates,
        matmul_peak_gflop_per_s=peak,
        share_of_peak={
            k: v / peak['peak']
            for k, v in rates.items()
        },
        max_abs_diff=max_abs,
        diffs=diffs,
        head_on_reference_features=head,
        amp_vs_fp32=amp,
        agree=max_abs <= args.atol,
        atol=args.atol,
        images=images)


def onnx_column(args, cfg, model, dataset, window, metas) -> Optional[dict]:
    """The onnxruntime column (``onnx_bench.py``), on CPU only."""
    import tempfile

    import onnx_bench
    if window.device.type != 'cpu':
        print('note: the onnxruntime column is measured on CPU only; run '
              'the benchmark with --device cpu for it.')
        return None
    with tempfile.TemporaryDirectory() as tmp:
        export = args.onnx
        if export == 'auto':
            # The photo of the timed window (a shipped one without data).
            image = dataset[0]['data_samples'].img_path if dataset else \
                osp.join(REPO, 'samples', 'images', 'groupvit_demo_voc.jpg')
            export = osp.join(tmp, 'export')
            from mmseg_groupvit.deployment import export_onnx
            export_onnx(model, cfg, export, image)
        return onnx_bench.run(model, cfg, dataset, window, metas, export, args)


def report(r: dict) -> str:
    t = {k: v['median'] for k, v in r['times_ms'].items()}
    m, load, mem = r['machine'], r['load_avg_1min'], r['peak_mem_mib']
    h, w = r['window']
    x = 'x UNRELIABLE' if r['unreliable'] else 'x'
    gpu = ', ' + m['gpu'] if 'gpu' in m else ''
    rate, share = r['gflop_per_s'], r['share_of_peak']
    head = r['head_on_reference_features']
    lines = [
        f'GroupViT zero-shot benchmark: {r["config"]}, {h}x{w} window '
        f'({r["window_source"]}), {r["num_prompts"]} prompts, '
        f'{r["amp"]}, weights {r["weights"]}',
        f'machine: {m["cpu"]} ({m["cpu_count"]} CPUs), {m["threads"]} '
        f'threads, device {m["device"]}{gpu}, torch {m["torch"]}, '
        f'transformers {m["transformers"]}',
        f'load average (1 min): {load["start"]} at start, {load["end"]} at '
        f'end, {load["min"]} to {load["max"]} during the timed rounds',
    ] + [
        f'RATIOS UNRELIABLE: {reason}; run again on an idle machine.'
        for reason in r['unreliable']
    ] + [
        '',
        f'per window, median of {r["repeat"]} (ms)    ours  transformers'
        f'   ratio (median of the rounds)',
        f'full zero-shot call         {t["ours_window"]:9.1f} '
        f'{t["hf_window"]:13.1f} {r["speedup_window"]:6.2f}{x}',
        f'  transformers, text padded to the longest prompt '
        f'({r["prompt_tokens"]["longest"]} tokens): '
        f'{t["hf_window_padded_longest"]:.1f} ms, '
        f'{r["speedup_window_vs_padded_longest"]:.2f}{x}',
        f'vision backbone             {t["ours_backbone"]:9.1f} '
        f'{t["hf_backbone"]:13.1f} {r["speedup_backbone"]:6.2f}{x}',
        f'text encoder ({r["num_prompts"]} prompts)    {t["ours_text"]:9.1f} '
        f'{t["hf_text"]:13.1f}   (ours: once per vocabulary)',
        f'ours, 2 windows per pass    {t["ours_window_batch2"]:9.1f}'
        f'   per window ({r["speedup_window_batch2"]:.2f}{x} one window)',
        '',
        f'peak tensor memory (MiB)    {mem["ours_window"]:9.1f}'
        f' {mem["hf_window"]:13.1f} {r["peak_mem_ratio"]:6.2f}x  (full call)',
        f'                            {mem["ours_backbone"]:9.1f} '
        f'{mem["hf_backbone"]:13.1f}          (backbone)',
        '',
        f'GFLOP per window {r["gflop"]["window"]:.2f} (backbone '
        f'{r["gflop"]["image_encoder"]:.2f}); text '
        f'{r["gflop"]["text"]:.2f} per vocabulary',
        f'GFLOP/s: ours window {rate["ours_window"]:.1f}, ours backbone '
        f'{rate["ours_backbone"]:.1f}, transformers backbone '
        f'{rate["hf_backbone"]:.1f}',
        'matrix-product peak (GFLOP/s): ' +
        ', '.join(f'{k} {v:.1f}'
                  for k, v in r['matmul_peak_gflop_per_s'].items()) +
        f'; ours backbone at {100 * share["ours_backbone"]:.0f}% of it, '
        f'transformers\' at {100 * share["hf_backbone"]:.0f}%',
        '',
        'agreement with transformers (max abs diff): ' +
        ', '.join(f'{k} {v:.1e}' for k, v in r['diffs'].items()),
        f'  max {r["max_abs_diff"]:.1e} '
        f'{"<=" if r["agree"] else "> (DISAGREE)"} atol {r["atol"]:.0e}; '
        f'our head on transformers\' features: max abs diff '
        f'{head["max_abs_diff"]:.1e}, labels '
        f'{100 * head["label_agreement"]:.3f}% equal',
    ]
    a = r['amp_vs_fp32']
    if a:
        lines.append(f'{a["dtype"]} autocast vs fp32: scores max abs diff '
                     f'{a["max_abs_diff"]:.1e}, labels '
                     f'{100 * a["label_agreement"]:.3f}% equal; group '
                     f'embeddings cosine >= {a["min_group_embed_cosine"]:.5f}'
                     f', soft groupings max abs diff '
                     f'{a["soft_grouping_max_abs_diff"]:.1e}')
    if r['images']:
        i = r['images']
        ips = i['images_per_s']
        lines += [
            '',
            f'images/s on {i["num_images"]} real images '
            f'({i["windows_per_image"]:.2f} windows each, load and resize '
            f'included):',
            f'  ours (window batch {r["window_batch"]}) {ips["ours"]:.3f}, '
            f'mmseg window loop {ips["mmseg_loop"]:.3f}, original protocol '
            f'naive (2 encoder passes, one window at a time) '
            f'{ips["naive"]:.3f}, the same with plain PyTorch linear layers '
            f'{ips["naive_plain"]:.3f}',
            f'  ours: {ips["ours"] / ips["mmseg_loop"]:.2f}x the mmseg loop, '
            f'{ips["ours"] / ips["naive"]:.2f}x the naive protocol, '
            f'{ips["ours"] / ips["naive_plain"]:.2f}x the naive protocol '
            f'with plain layers',
            f'  labels equal, ours vs naive: '
            f'{100 * i["label_agreement_ours_vs_naive"]:.4f}%',
        ]
    if r.get('onnx'):
        import onnx_bench
        lines += onnx_bench.report_lines(r['onnx'], x)
    return '\n'.join(lines)


def say(message: str) -> None:
    """Progress on standard error (the report goes to standard output)."""
    print(f'benchmark: {message}', file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    quiet_profiler()
    problem = check_paths(
        args.config, args.checkpoint, checkpoint_option='--checkpoint')
    if problem:
        print(f'error: {problem}', file=sys.stderr)
        return 1
    try:
        import transformers  # noqa: F401
    except ImportError:
        print(
            'error: the reference needs transformers '
            '(pip install "transformers>=4.37")',
            file=sys.stderr)
        return 1
    try:
        result = run(args)
    except USER_ERRORS as e:
        print(f'error: {user_error_message(e)}', file=sys.stderr)
        return 1
    print(report(result))
    if args.json:
        print(json.dumps(result))
    return 0 if result['agree'] else 1


if __name__ == '__main__':
    sys.exit(main())
