# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The onnxruntime column of ``benchmark.py`` (CPU, fp32): per window and
per whole image, the export's runner against our PyTorch path, the files'
sizes, each CLI's peak resident memory and the image graph's profile per
operator type."""
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
from collections import defaultdict
from typing import Dict, Optional

import numpy as np
import torch
from bench_common import (image_steps, images_per_s, predict_file, ratio,
                          share_equal, time_interleaved)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEPLOY = osp.join(REPO, 'tools', 'deployment')
MiB = 2.0**20


def load_runtime():
    """``tools/deployment/groupvit_ort``, imported as its CLI does."""
    if DEPLOY not in sys.path:
        sys.path.append(DEPLOY)
    import groupvit_ort
    return groupvit_ort


def _say(message: str) -> None:
    print(f'benchmark: onnxruntime: {message}', file=sys.stderr, flush=True)


# Runs a script as `python SCRIPT` does and writes its /proc/self/status at
# exit: its own VmHWM (wait4 would count this process's at the fork).
_HWM_LAUNCHER = """import atexit, os, runpy, sys
def _record():
    with open('/proc/self/status') as f:
        status = f.read()
    with open(os.environ['HWM_FILE'], 'w') as out:
        out.write(status)
atexit.register(_record)
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(sys.argv[0])
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def _peak_rss_mib(script, args, tmp) -> Optional[float]:
    """Peak resident memory (MiB) of a script run in a child process."""
    hwm_file = osp.join(tmp, 'status')
    proc = subprocess.run(
        [sys.executable, '-c', _HWM_LAUNCHER, script] + args,
        cwd=REPO,
        env=dict(os.environ, HWM_FILE=hwm_file),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    if proc.returncode != 0 or not osp.isfile(hwm_file):
        return None
    with open(hwm_file) as f:
        return next((int(line.split()[1]) / 1024
                     for line in f if line.startswith('VmHWM:')), None)


def peak_memory(export_dir, config, checkpoint, image, threads):
    """Peak resident memory of one whole-image run of each CLI."""
    with tempfile.TemporaryDirectory() as tmp:
        onnx = _peak_rss_mib(
            osp.join(DEPLOY, 'onnx_segment.py'), [
                export_dir, image, '--out',
                osp.join(tmp, 'onnx'), '--threads',
                str(threads)
            ], tmp)
        weights = ['--checkpoint', checkpoint] if checkpoint else \
            ['--random-weights']
        ours = _peak_rss_mib(
            osp.join(REPO, 'tools', 'demo.py'), [
                image, '--config', config, '--show', 'overlay,prediction',
                '--out',
                osp.join(tmp, 'torch')
            ] + weights, tmp)
        return dict(onnxruntime=onnx, pytorch=ours)


def profile_image_graph(export_dir,
                        pixels,
                        class_embeds,
                        bg_thresh,
                        threads,
                        runs=3) -> Dict[str, float]:
    """ms per call of the image graph per operator type (largest first)."""
    import onnxruntime as ort

    from mmseg_groupvit.deployment.onnx_export import image_feeds
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = osp.join(tmp, 'profile')
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.add_session_config_entry('session.intra_op.allow_spinning',
                                         '0')
        session = ort.InferenceSession(
            osp.join(export_dir, 'image.onnx'),
            options,
            providers=['CPUExecutionProvider'])
        feeds = image_feeds(
            session,
            pixels=pixels,
            class_embeds=class_embeds,
            bg_thresh=np.array(bg_thresh, np.float32))
        for _ in range(runs + 1):  # the warm-up is in the profile too
            session.run(['scores'], feeds)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    totals = defaultdict(float)
    for event in events:
        if event.get('cat') == 'Node' and 'op_name' in event.get(
                'args', {}) and event['name'].endswith('_kernel_time'):
            totals[event['args']['op_name']] += event['dur']
    per_call = {k: v / 1e3 / (runs + 1) for k, v in totals.items()}
    return dict(sorted(per_call.items(), key=lambda kv: -kv[1]))


def run(model, cfg, dataset, window, metas, export_dir: str, args) -> dict:
    """The onnxruntime column; ``args``: the benchmark's options."""
    runner = load_runtime().OnnxSegmenter(export_dir, threads=args.threads)
    bg_thresh = float(model.test_cfg.get('bg_thresh', 0.95))
    pixels = window.cpu().numpy()
    with torch.no_grad():
        class_embeds = model.text_encoder().numpy()
        fns = dict(
            ours_window=lambda: model.encode_decode(window, metas),
            onnxruntime_window=lambda: runner.window_scores(
                pixels, class_embeds, bg_thresh))
        _say(f'per-window times ({args.repeat} rounds)')
        times = time_interleaved(fns, args.repeat, 1, window.device)
        ours = model.encode_decode(window, metas).cpu().numpy()
    scores = runner.window_scores(pixels, class_embeds, bg_thresh)
    sizes = {
        name: os.path.getsize(osp.join(export_dir, name)) / MiB
        for name in ('image.onnx', 'text.onnx')
    }
    if args.checkpoint:
        sizes['pytorch_checkpoint'] = os.path.getsize(args.checkpoint) / MiB
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'state.pth')
            torch.save(model.state_dict(), path)
            sizes['pytorch_state_dict'] = os.path.getsize(path) / MiB
    result = dict(
        export=export_dir,
        window_ms={
            k: v['median'] * 1e3
            for k, v in times.items()
        },
        window_max_abs_diff=float(np.abs(scores - ours).max()),
        window_labels_equal=float((scores.argmax(1) == ours.argmax(1)).mean()),
        speedup_window=ratio(times, 'ours_window', 'onnxruntime_window'),
        file_mib=sizes)
    if dataset is not None and args.num_images > 0:
        result['images'] = whole_images(model, cfg, dataset, runner,
                                        class_embeds, bg_thresh,
                                        args.num_images, args.repeat)
        _say('peak memory of one image with each CLI')
        result['peak_rss_mib'] = peak_memory(
            export_dir, args.config, args.checkpoint,
            dataset[0]['data_samples'].img_path, args.threads)
    _say('profile of the image graph')
    result['image_graph_profile_ms'] = profile_image_graph(
        export_dir, pixels, class_embeds, bg_thresh, args.threads)
    return result


def whole_images(model, cfg, dataset, runner, class_embeds, bg_thresh,
                 num_images, repeat):
    """Images/s of the two whole-image paths (file read included) and their
    label agreement."""
    steps = image_steps(cfg)
    n = min(num_images, len(dataset))
    paths = [dataset.get_data_info(i)['img_path'] for i in range(n)]
    done = iter(range(1, n + 1))
    rates, labels = images_per_s(
        dict(
            pytorch=lambda i: predict_file(model, steps, paths[i]).pred_sem_seg
            .data[0].cpu().numpy(),
            onnxruntime=lambda i: runner.predict_file(paths[i], class_embeds,
                                                      bg_thresh)[1]),
        n,
        repeat,
        'cpu',
        advance=lambda: _say(f'whole images: {next(done)}/{n}'))
    return dict(
        num_images=n,
        images_per_s=rates,
        labels_equal=share_equal(labels['pytorch'], labels['onnxruntime']))


def report_lines(o: dict, x: str = 'x') -> list:
    """The report's onnxruntime section (``x``: the ratios' mark)."""
    w = o['window_ms']
    lines = [
        '', f'onnxruntime ({o["export"]}), fp32 CPU:',
        f'  per window (ms, median; both timed in the same rounds): ours '
        f'{w["ours_window"]:.1f}, onnxruntime '
        f'{w["onnxruntime_window"]:.1f} ({o["speedup_window"]:.2f}{x} ours'
        f'{"; slower" if o["speedup_window"] < 1 else ""}); scores max abs '
        f'diff {o["window_max_abs_diff"]:.1e}, labels '
        f'{100 * o["window_labels_equal"]:.3f}% equal',
        '  files (MiB): ' + ', '.join(f'{k} {v:.1f}'
                                      for k, v in o['file_mib'].items())
    ]
    if o.get('images'):
        i = o['images']
        ips = i['images_per_s']
        lines.append(
            f'  whole images ({i["num_images"]}, file read included): ours '
            f'{ips["pytorch"]:.3f} img/s, onnxruntime runner '
            f'{ips["onnxruntime"]:.3f} img/s; labels '
            f'{100 * i["labels_equal"]:.4f}% equal')
    if o.get('peak_rss_mib'):
        p = o['peak_rss_mib']
        fmt = (lambda v: 'failed' if v is None else f'{v:.0f} MiB')
        lines.append(f'  peak resident memory of one image, whole process: '
                     f'onnx_segment.py {fmt(p["onnxruntime"])}, '
                     f'tools/demo.py {fmt(p["pytorch"])}')
    top = list(o['image_graph_profile_ms'].items())[:6]
    lines.append('  image graph time by operator (ms per window): ' +
                 ', '.join(f'{k} {v:.1f}' for k, v in top))
    return lines
