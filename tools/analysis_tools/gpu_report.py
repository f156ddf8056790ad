# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GPU report (``gpu_report.sh``): CUDA against CPU, fp16/bf16 against
fp32 labels, then images/s against transformers and onnxruntime's CUDA
provider, into ``report.json`` and ``report.md`` (on a CPU: a dry run)."""
import argparse
import functools
import os
import os.path as osp

import mmengine
import torch
from bench_common import (DTYPES, REPO, build_dataset, build_model,
                          build_reference, machine, setup, share_equal,
                          window_shape)
from benchmark import image_throughput, max_diff, onnx_runner

from groupvit_common.errors import error_line, exit_on_user_error
from groupvit_common.tool_options import bench_options, weights_label

FIXTURE = os.environ.get(
    'GROUPVIT_FIXTURES',
    osp.join(osp.dirname(REPO), 'shared', 'fixtures', 'groupvit-original-A'))
PRECISIONS = ('fp32', 'fp16', 'bf16')


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='GroupViT GPU report: correctness, then throughput',
        parents=[bench_options(osp.join(REPO, 'configs', 'groupvit_voc.py'))])
    parser.set_defaults(
        device='cuda' if torch.cuda.is_available() else 'cpu',
        data_root=osp.join(REPO, 'samples', 'voc2012_sample', 'VOCdevkit',
                           'VOC2012'),
        num_images=25,
        window_batch=8,
        repeat=3)
    parser.add_argument('--fixture', default=FIXTURE)
    parser.add_argument('--out', default=osp.join('outputs', 'gpu_report'))
    args = parser.parse_args(argv)
    with exit_on_user_error():
        report = run(args)
    if report['dry_run']:
        print('DRY RUN on CPU: every step ran, but no figure is a GPU '
              'figure.')
    print(table(report))
    print(f'Wrote {osp.join(args.out, "report.json")} and report.md')
    return report


def fixture_check(device, fixture_dir, work_dir):
    """CUDA against CPU, and against the original code's labels, on the
    reference fixture's model and photos."""
    import numpy as np
    from mmseg.apis import inference_model

    from mmseg_groupvit.apis import init_groupvit
    from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
    if not osp.isdir(fixture_dir):
        return dict(skipped=f'reference fixture not found at {fixture_dir}')
    reference = np.load(osp.join(fixture_dir, 'reference.npz'))
    checkpoint = osp.join(work_dir, 'fixture.pth')
    config = convert_checkpoint(osp.join(fixture_dir, 'hf'),
                                checkpoint)['config']
    # A dry run compares CPU to CPU.
    devices = ['cpu'] if device.type == 'cpu' else ['cpu', str(device)]
    models = [init_groupvit(config, checkpoint, d) for d in devices]
    shared = osp.dirname(osp.dirname(fixture_dir))
    images = []
    for index, name in enumerate(reference['image_files']):
        out = [inference_model(m, osp.join(shared, str(name))) for m in models]
        scores = [o.seg_logits.data.cpu() for o in out]
        labels = [o.pred_sem_seg.data.cpu() for o in out]
        images.append(
            dict(
                image=str(name),
                scores_max_abs_diff=max_diff(scores[0], scores[-1]),
                labels_equal=bool(torch.equal(labels[0], labels[-1])),
                labels_as_original=float((labels[-1].squeeze(
                    0).numpy() == reference[f'img{index}_label']).mean())))
    # The bound of tests/test_reference_fixture.py (the original's labels
    # may differ where its own kernels tie).
    ok = all(i['labels_equal'] and i['scores_max_abs_diff'] <= 1e-3
             and i['labels_as_original'] >= 0.999 for i in images)
    return dict(images=images, passed=ok, atol=1e-3)


def hf_encode_decode(hf, tokens, precision, model, inputs, metas):
    """transformers' segmentation logits as window scores, a zero
    background channel first. Its input size and position table become
    ours for the window's shape (its forward takes no
    ``interpolate_pos_encoding``; whole mode gives it each image's shape)."""
    embeddings, shape = hf.vision_model.embeddings, tuple(inputs.shape[-2:])
    if tuple(embeddings.patch_embeddings.image_size) != shape:
        patch = model.image_encoder.patch_size
        with torch.no_grad():
            table = model.image_encoder.interpolate_pos_embed(
                (shape[0] // patch, shape[1] // patch))
        embeddings.position_embeddings = torch.nn.Parameter(
            table.detach().clone(), requires_grad=False)
        embeddings.patch_embeddings.image_size = shape
    dtype = DTYPES.get(precision)
    with torch.autocast(
            inputs.device.type, dtype=dtype, enabled=dtype is not None):
        out = hf(
            input_ids=tokens, pixel_values=inputs, output_segmentation=True)
    logits = out.segmentation_logits.float()  # at the input's size
    return torch.cat([logits.new_zeros(logits[:, :1].shape), logits], dim=1)


def throughput(model, hf, dataset, num_images, device, repeat):
    """images/s of the full protocol per precision, ours and
    transformers', interleaved per image; and the share of our fp16 / bf16
    labels equal to fp32's."""
    prompts = [p for ps in model.text_encoder.prompts() for p in ps]
    tokens = model.text_encoder.tokenize(prompts).to(device)
    rates, labels, saved = {}, {}, model.test_cfg.get('autocast')
    for precision in PRECISIONS:
        model.test_cfg['autocast'] = None if precision == 'fp32' else precision
        scores = functools.partial(hf_encode_decode, hf, tokens, precision)
        modes = dict(ours=None, transformers=scores)
        out, labels[precision] = image_throughput(model, dataset, num_images,
                                                  repeat, device, modes, None)
        rates.update((f'{who}_{precision}', v)
                     for who, v in out['images_per_s'].items())
    model.test_cfg['autocast'] = saved
    fp32 = labels['fp32']['ours']
    return rates, {
        p: share_equal(fp32, labels[p]['ours'])
        for p in PRECISIONS[1:]
    }


def onnxruntime_cuda(model, cfg, dataset, num_images, work_dir, device,
                     repeat):
    """images/s of the onnxruntime runner with the CUDA provider."""
    mode = (cfg.model.get('test_cfg') or {}).get('mode', 'whole')
    if mode != 'slide':
        return dict(skipped=f'the ONNX export runs slide inference only; '
                    f'this config\'s test_cfg mode is {mode!r}')
    try:
        import onnxruntime as ort
    except ImportError:
        return dict(skipped='onnxruntime is not installed')
    provider = 'CUDAExecutionProvider' if device.type == 'cuda' else \
        'CPUExecutionProvider'
    if provider not in ort.get_available_providers():
        return dict(skipped='onnxruntime has no CUDA provider here '
                    '(pip install onnxruntime-gpu)')
    image, options = dataset.get_data_info(0)['img_path'], dict(
        providers=[provider], window_batch=8)
    onnx = onnx_runner('auto', model.cpu(), cfg, image, work_dir, **options)
    model.to(device)
    out, _ = image_throughput(model, dataset, num_images, repeat, device,
                              dict(onnxruntime=onnx), None)
    return dict(
        provider=provider, images_per_s=out['images_per_s']['onnxruntime'])


def table(report):
    """The README table (markdown)."""
    m = report['machine']
    name = m.get('gpu') or f'{m["cpu"]} (dry run on CPU: not a GPU figure)'
    t = report['throughput']
    lines = [
        '| device | precision | ours (img/s) | transformers (img/s) | ratio '
        '| labels equal to fp32 |', '| --- ' * 6 + '|'
    ]
    for precision in PRECISIONS:
        ours, hf = t[f'ours_{precision}'], t[f'transformers_{precision}']
        agree = report['precision'].get(precision, 1.0)
        lines.append(f'| {name} | {precision} | {ours:.2f} | {hf:.2f} | '
                     f'{ours / hf:.2f}x | {100 * agree:.3f}% |')
    ort_cuda = report['onnxruntime']
    if 'images_per_s' in ort_cuda:
        lines.append(f'| {name} | onnxruntime {ort_cuda["provider"]} fp32 | '
                     f'{ort_cuda["images_per_s"]:.2f} | | | |')
    fixture = report['cuda_vs_cpu_fixture']
    if 'images' in fixture:
        worst = max(i['scores_max_abs_diff'] for i in fixture['images'])
        as_original = min(i['labels_as_original'] for i in fixture['images'])
        lines.append(f'\nCUDA against CPU on the reference fixture: '
                     f'{"passed" if fixture["passed"] else "FAILED"}; scores '
                     f'max abs diff {worst:.1e} (atol 1e-3), labels as the '
                     f'original code at {as_original:.2%} of the pixels or '
                     f'more.')
    else:
        lines.append(f'\nCUDA against CPU: {fixture["skipped"]}.')
    if 'skipped' in ort_cuda:
        lines.append(f'\nonnxruntime not measured: {ort_cuda["skipped"]}.')
    return '\n'.join(lines) + '\n'


def run(args):
    cfg, device = setup(args)
    os.makedirs(args.out, exist_ok=True)
    dataset = build_dataset(cfg, args.data_root)
    if dataset is None:
        raise SystemExit(error_line(f'data root not found: {args.data_root}'))
    num_images = min(args.num_images, len(dataset))
    if num_images < 1:
        raise SystemExit(
            error_line(f'gpu_report measures images/s on real images: give '
                       f'--num-images 1 or more and a data root with images '
                       f'({len(dataset)} in {args.data_root}).'))
    report = dict(
        dry_run=device.type != 'cuda',
        config=args.config,
        weights=weights_label(args.checkpoint, args.seed),
        num_images=num_images,
        window_batch=args.window_batch)
    report['cuda_vs_cpu_fixture'] = fixture_check(device, args.fixture,
                                                  args.out)
    model = build_model(cfg, args.checkpoint, device, args.seed)
    hf = build_reference(model, window_shape(cfg), cfg.model).to(device)
    report['throughput'], report['precision'] = throughput(
        model, hf, dataset, num_images, device, args.repeat)
    report['onnxruntime'] = onnxruntime_cuda(model, cfg, dataset, num_images,
                                             args.out, device, args.repeat)
    report['machine'] = machine(device)
    mmengine.dump(report, osp.join(args.out, 'report.json'), indent=2)
    mmengine.put_text(table(report), osp.join(args.out, 'report.md'))
    return report


if __name__ == '__main__':
    main()
