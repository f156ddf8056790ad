# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Time and peak memory of one GroupViT pretraining step, ours against
transformers' ``GroupViTModel``, each variant in a fresh process."""
import argparse
import multiprocessing as mp
import os.path as osp
import resource
import sys

from groupvit_common.errors import error_line, exit_on_user_error
from groupvit_common.tool_options import check_device, number_in

PROMPTS = 3


def architecture(name: str) -> dict:
    """The released architecture or the pretraining smoke config's."""
    from bench_common import REPO

    from mmseg_groupvit.utils.config_file import read_config
    from mmseg_groupvit.weights.arch import FIELDS, released_arch
    if name == 'released':
        return released_arch()
    model = read_config(
        osp.join(REPO, 'configs', 'pretrain', 'groupvit_samples_smoke.py'),
        test=False).model
    arch = {}
    for part, fields in FIELDS.items():
        arch[part] = {k: v for k, v in model[part].items() if k in fields}
    return arch


def _ours(arch):
    from types import SimpleNamespace

    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_groupvit  # noqa: F401
    init_default_scope('mmseg')
    MMLogger.get_instance('pretrain_benchmark', log_level='WARNING')
    model = MODELS.build(
        dict(
            type='GroupViTPretrainer',
            multi_label=PROMPTS,
            image_encoder=dict(type='GroupViT', **arch['image_encoder']),
            text_encoder=dict(
                type='GroupViTTextEncoder',
                frozen=False,
                dataset_name='voc',
                **arch['text_encoder']),
            decode_head=dict(type='GroupViTHead')))
    model.init_weights()

    def losses(images, tokens):
        samples = [SimpleNamespace(text_tokens=t) for t in tokens]
        return sum(model.loss(images, samples).values())

    return model, losses


def _plain(arch):
    import torch
    import transformers
    from bench_common import hf_config

    from mmseg_groupvit.models.pretrainers import (contrastive_loss,
                                                   multi_label_loss)
    config = hf_config(arch, 224)
    config._attn_implementation = 'eager'
    model = transformers.GroupViTModel(config)
    scale = torch.nn.Parameter(torch.tensor(2.6592))
    model.register_parameter('multi_label_logit_scale', scale)

    def losses(images, tokens):
        image_x = model.get_image_features(pixel_values=images)
        text_x = model.get_text_features(input_ids=tokens.flatten(0, 1))
        image_x = getattr(image_x, 'pooler_output', image_x)
        text_x = getattr(text_x, 'pooler_output', text_x)
        text_x = text_x.view(*tokens.shape[:2], -1)
        return (contrastive_loss(image_x, text_x[:, 0],
                                 model.logit_scale.exp().clamp(max=100)) +
                multi_label_loss(image_x, text_x[:, 1:],
                                 scale.exp().clamp(max=100)))

    return model, losses


def _measure(who, arch, batch, device, amp, repeat, threads, queue):
    import torch
    from bench_common import DTYPES, time_interleaved
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, losses = (_ours if who == 'ours' else _plain)(arch)
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    # Images and tokens (a caption and the prompts, 21 tokens each) from a
    # generator of their own: both variants see the same batch.
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 224, 224, generator=gen).to(device)
    tokens = torch.randint(1, 49406, (batch, 1 + PROMPTS, 77), generator=gen)
    tokens[..., 0] = 49406
    tokens[..., 20] = 49407
    tokens[..., 21:] = 0
    tokens = tokens.to(device)
    kind, dtype = device.split(':')[0], DTYPES.get(amp)
    scaler = torch.amp.GradScaler(kind, enabled=amp == 'fp16')
    cuda = kind == 'cuda'
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    loss = []

    def step():
        with torch.autocast(kind, dtype=dtype, enabled=dtype is not None):
            loss[:] = [losses(images, tokens)]
        optimizer.zero_grad()
        scaler.scale(loss[0]).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        scaler.step(optimizer)
        scaler.update()

    # The first step (lazy kernel and optimizer-state set-up) is timed on
    # its own and left out of the figure.
    first = time_interleaved(dict(step=step), 1, 0, device)['step']['best']
    runs = time_interleaved(dict(step=step), repeat, 0, device)['step']
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        dict(
            seconds=runs['best'],
            runs=runs['runs'],
            first_step_seconds=first,
            threads=torch.get_num_threads(),
            inputs=[float(images.double().sum()),
                    int(tokens.sum())],
            peak_mib=peak,
            loss=loss[0].item()))


def measure(who, arch, batch, device, amp, repeat, threads) -> dict:
    """One variant in a fresh process."""
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_measure,
        args=(who, arch, batch, device, amp, repeat, threads, queue))
    proc.start()
    proc.join()  # a small result: the queue does not block the exit
    if proc.exitcode != 0:
        sys.exit(
            error_line(f'the {who} {amp} measurement failed (exit code '
                       f'{proc.exitcode}); its error is above.'))
    return queue.get()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add = parser.add_argument
    count = number_in(int, 1, 10**6, 'must be 1 or more, got {text}')
    add('--batch', type=count, default=16)
    add('--device', default='cpu')
    add('--amp', nargs='+', default=['fp32'], choices=['fp32', 'fp16', 'bf16'])
    add('--repeat', type=count, default=3, help='timed steps after the first')
    add('--arch', default='released', choices=['released', 'small'])
    add('--threads',
        type=count,
        default=1,
        help='CPU threads of each variant (torch.set_num_threads), the same '
        'for both')
    add('--gpu-report',
        action='store_true',
        help='the settings of gpu_report.sh: on a GPU batch 256, fp32, '
        'fp16 and bf16; without one a dry run (small model, batch 2)')
    add('--out', help='write the results as JSON here')
    args = parser.parse_args(argv)
    if args.gpu_report:
        import torch
        if torch.cuda.is_available():
            args.device, args.batch = 'cuda', 256
            args.amp = ['fp32', 'fp16', 'bf16']
        else:
            args.arch, args.batch = 'small', 2
    with exit_on_user_error(ValueError):
        check_device(args.device)
    arch = architecture(args.arch)
    results = {}
    for amp in args.amp:
        for who in ('ours', 'plain'):
            result = measure(who, arch, args.batch, args.device, amp,
                             args.repeat, args.threads)
            result['images_per_s'] = args.batch / result['seconds']
            results[f'{who}_{amp}'] = result
            print(
                f'{who:5s} {amp}: {result["seconds"]:.3f} s/step (best of '
                f'{args.repeat}; first step {result["first_step_seconds"]:.3f}'
                f' s, not counted), {result["images_per_s"]:.1f} images/s, '
                f'peak {result["peak_mib"]:.0f} MiB',
                flush=True)
    for amp in args.amp:
        ours, plain = results[f'ours_{amp}'], results[f'plain_{amp}']
        print(f'plain / ours ({amp}): time '
              f'{plain["seconds"] / ours["seconds"]:.2f}x, peak memory '
              f'{plain["peak_mib"] / ours["peak_mib"]:.2f}x')
    print('(ours encodes each text up to the batch\'s longest end token, 21 '
          'of 77 positions here, the plain layers all 77; on CPU that is '
          'most of the time gap: docs/pretrain.md)')
    report = dict(
        batch=args.batch,
        device=args.device,
        arch=args.arch,
        threads=args.threads,
        dry_run=args.gpu_report and args.device == 'cpu',
        results=results)
    if args.out:
        import mmengine
        mmengine.dump(report, args.out, file_format='json', indent=1)
    return report


if __name__ == '__main__':
    main()
