# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The onnxruntime column of ``benchmark.py``: per window and per whole
image, the export's runner against our PyTorch path (times, agreement),
the files' sizes, each CLI's peak resident memory, and the image graph's
profile per operator type."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
from collections import defaultdict
from typing import Callable, Dict, Optional

import numpy as np
import torch
from mmengine.dataset import pseudo_collate

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEPLOY = osp.join(REPO, 'tools', 'deployment')
MiB = 2.0**20


def load_runtime():
    """``tools/deployment/groupvit_ort`` (a folder of the tools, not of the
    installed package), imported from its path."""
    if 'groupvit_ort' not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            'groupvit_ort', osp.join(DEPLOY, 'groupvit_ort', '__init__.py'))
        sys.modules['groupvit_ort'] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules['groupvit_ort'])
    return sys.modules['groupvit_ort']


def _say(message: str) -> None:
    print(f'benchmark: onnxruntime: {message}', file=sys.stderr, flush=True)


def export_for(model, cfg, check_image: str, out_dir: str) -> str:
    from mmseg_groupvit.deployment import export_onnx
    export_onnx(model, cfg, out_dir, check_image)
    return out_dir


_HWM_LAUNCHER = """import atexit, os, runpy, sys
def _record():
    with open('/proc/self/status') as f:
        status = f.read()
    with open(os.environ['HWM_FILE'], 'w') as out:
        out.write(status)
atexit.register(_record)
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(sys.argv[0])  # as `python SCRIPT` has it
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def _peak_rss_mib(script, args, tmp) -> Optional[float]:
    """Peak resident memory (MiB) of a script in a child process: its own
    ``VmHWM`` at exit (``wait4`` would count this process's at the fork).
    """
    hwm_file = osp.join(tmp, 'status')
    env = dict(os.environ, HWM_FILE=hwm_file)
    proc = subprocess.run(
        [sys.executable, '-c', _HWM_LAUNCHER, script] + list(args),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    if proc.returncode != 0 or not osp.isfile(hwm_file):
        return None
    with open(hwm_file) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return None


def peak_memory(export_dir, config, checkpoint, image, threads):
    """Peak resident memory of one whole-image run of each CLI."""
    with tempfile.TemporaryDirectory() as tmp:
        onnx = _peak_rss_mib(
            osp.join(DEPLOY, 'onnx_segment.py'), [
                export_dir, image, '--out',
                osp.join(tmp, 'onnx'), '--threads',
                str(threads)
            ], tmp)
        demo_args = [
            image, '--config', config, '--show', 'overlay,prediction', '--out',
            osp.join(tmp, 'torch')
        ] + (['--checkpoint', checkpoint]
             if checkpoint else ['--random-weights'])
        ours = _peak_rss_mib(
            osp.join(REPO, 'tools', 'demo.py'), demo_args, tmp)
        return dict(onnxruntime=onnx, pytorch=ours)


def profile_image_graph(export_dir,
                        window,
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
            pixels=window,
            class_embeds=class_embeds,
            bg_thresh=np.array(bg_thresh, np.float32))
        session.run(['scores'], feeds)  # warm-up, not counted
        for _ in range(runs):
            session.run(['scores'], feeds)
        path = session.end_profiling()
        with open(path) as f:
            events = json.load(f)
    totals = defaultdict(float)
    for event in events:
        if event.get('cat') != 'Node' or 'op_name' not in event.get(
                'args', {}):
            continue
        if not event['name'].endswith('_kernel_time'):
            continue
        totals[event['args']['op_name']] += event['dur']
    # The warm-up run is in the profile too: runs + 1 calls.
    per_call = {k: v / 1e3 / (runs + 1) for k, v in totals.items()}
    return dict(sorted(per_call.items(), key=lambda kv: -kv[1]))


def run(model, cfg, dataset, window, metas, export_dir: str, num_images: int,
        repeat: int, threads: int, time_interleaved: Callable,
        checkpoint: Optional[str], config: str) -> dict:
    """The onnxruntime column (CPU, fp32)."""
    runtime = load_runtime()
    runner = runtime.OnnxSegmenter(export_dir, threads=threads)
    bg_thresh = float(model.test_cfg.get('bg_thresh', 0.95))
    with torch.no_grad():
        class_embeds = model.text_encoder().numpy()
    pixels = window.cpu().numpy()
    with torch.no_grad():
        fns = dict(
            ours_window=lambda: model.encode_decode(window, metas),
            onnxruntime_window=lambda: runner.window_scores(
                pixels, class_embeds, bg_thresh))
        _say(f'per-window times ({repeat} rounds)')
        times = time_interleaved(fns, repeat, 1, window.device)
        ours = model.encode_decode(window, metas).cpu().numpy()
    scores = runner.window_scores(pixels, class_embeds, bg_thresh)
    result = dict(
        export=export_dir,
        window_ms={
            k: v['median'] * 1e3
            for k, v in times.items()
        },
        window_max_abs_diff=float(np.abs(scores - ours).max()),
        window_labels_equal=float((scores.argmax(1) == ours.argmax(1)).mean()))
    # The median of the rounds' ratios (each round runs both).
    result['speedup_window'] = float(
        np.median(
            np.array(times['ours_window']['runs']) /
            np.array(times['onnxruntime_window']['runs'])))
    sizes = {
        name: os.path.getsize(osp.join(export_dir, name)) / MiB
        for name in ('image.onnx', 'text.onnx')
    }
    if checkpoint:
        sizes['pytorch_checkpoint'] = os.path.getsize(checkpoint) / MiB
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'state.pth')
            torch.save(model.state_dict(), path)
            sizes['pytorch_state_dict'] = os.path.getsize(path) / MiB
    result['file_mib'] = sizes
    if dataset is not None and num_images > 0:
        result['images'] = whole_images(model, cfg, dataset, runner,
                                        class_embeds, bg_thresh, num_images,
                                        repeat, time_interleaved,
                                        window.device)
        image = dataset[0]['data_samples'].img_path
        _say('peak memory of one image with each CLI')
        result['peak_rss_mib'] = peak_memory(export_dir, config, checkpoint,
                                             image, threads)
    _say('profile of the image graph')
    result['image_graph_profile_ms'] = profile_image_graph(
        export_dir, pixels, class_embeds, bg_thresh, threads)
    return result


def whole_images(model, cfg, dataset, runner, class_embeds, bg_thresh,
                 num_images, repeat, time_interleaved, device):
    """Images/s of the two whole-image paths (file read included) and their
    label agreement."""
    from hf_reference import image_steps
    steps = image_steps(cfg)
    n = min(num_images, len(dataset))
    totals = dict(pytorch=0., onnxruntime=0.)
    same = total = 0
    for i in range(n):
        _say(f'whole images: {i + 1}/{n}')
        path = dataset[i]['data_samples'].img_path
        labels = {}

        def ours():
            data = pseudo_collate([steps(dict(img_path=path))])
            batch = model.data_preprocessor(data, False)
            with torch.no_grad():
                out = model.predict(batch['inputs'], batch['data_samples'])
            labels['pytorch'] = out[0].pred_sem_seg.data[0].cpu().numpy()

        def onnx():
            labels['onnxruntime'] = runner.predict_file(
                path, class_embeds, bg_thresh)[1]

        times = time_interleaved(
            dict(pytorch=ours, onnxruntime=onnx), repeat, int(i == 0), device)
        for key in totals:
            totals[key] += times[key]['median']
        same += (labels['pytorch'] == labels['onnxruntime']).sum()
        total += labels['pytorch'].size
    return dict(
        num_images=n,
        images_per_s={
            k: n / v
            for k, v in totals.items()
        },
        labels_equal=float(same / max(total, 1)))


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
