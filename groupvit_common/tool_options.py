# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The command-line tools' shared options (argparse parent parsers) and the
checks made before PyTorch is imported."""
import argparse
import itertools
import os
import os.path as osp
import re
import sys
from typing import Optional

#: What a tool prints and records when the weights are random.
RANDOM_BANNER = 'RANDOM WEIGHTS: not a real prediction.'
CHECKPOINT_HELP = ('checkpoint: a file (converted, NVlabs .pth or '
                   'transformers weights), a transformers folder, a URL or '
                   'hf://OWNER/NAME')


def runner_options() -> argparse.ArgumentParser:
    """A parent parser of the options of a tool running mmengine's runner."""
    parser = argparse.ArgumentParser(add_help=False)
    add = parser.add_argument
    add('--work-dir', help='results and log (default: work_dirs/CONFIG_NAME)')
    add_cfg_options(parser)
    add('--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher (pytorch: under torchrun)')
    add('--verbose',
        action='store_true',
        help='print mmengine\'s full log (the log file in the work dir '
        'always has it)')
    add('--local_rank', '--local-rank', type=int, default=0)
    return parser


#: Most nesting levels of a ``--cfg-options`` key (dots) or value
#: (brackets); deeper ones would exhaust Python's recursion limit.
MAX_OPTION_DEPTH = 32


def read_cfg_option(key: str, value: str):
    """The value mmengine's ``--cfg-options`` reads from ``KEY=VALUE``.

    Raises:
        ValueError: ``value`` is not read as written (its spaces would be
            deleted), nests too deeply, or has brackets that do not pair.
    """
    from mmengine.config import DictAction  # torch-free
    depth = itertools.accumulate((c in '[(') - (c in '])') for c in value)
    if max([key.count('.') + 1, *depth]) > MAX_OPTION_DEPTH:
        raise ValueError(f'{key[:80]}: nested deeper than {MAX_OPTION_DEPTH} '
                         f'levels, which no config setting is; give the key '
                         f'and value of a real setting.')
    if re.search(r'[^\s,()[\]] +[^\s,()[\]]', value):
        raise ValueError(
            f'{key[:80]}: mmengine deletes the spaces of a value, so '
            f'{value[:80]!r} would be read as {value.replace(" ", "")[:80]!r}'
            f'; set a value with spaces in a config file that inherits this '
            f'one (_base_).')
    try:  # mmengine recurses forever on brackets left open, or asserts
        return DictAction._parse_iterable(value)
    except (RecursionError, AssertionError):
        raise ValueError(f'{key[:80]}: the brackets of {value[:80]!r} do not '
                         f'pair up; write e.g. {key[:80]}="[(a,b),(c,d)]".')


def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options`` (mmengine's ``DictAction``), exiting with one
    ``error:`` line for an item :func:`read_cfg_option` refuses."""
    from mmengine.config import DictAction  # torch-free

    from .errors import error_line

    class CfgOptions(DictAction):

        def __call__(self, parser, namespace, values, option_string=None):
            options = dict(getattr(namespace, self.dest, None) or {})
            for item in values:
                key, sep, value = item.partition('=')
                try:
                    if not sep or not key:
                        raise ValueError(f'{item[:80]!r} is not KEY=VALUE; '
                                         f'write e.g. '
                                         f'model.test_cfg.bg_thresh=0.5.')
                    options[key] = read_cfg_option(key, value)
                except ValueError as e:
                    raise SystemExit(
                        error_line(f'--cfg-options {e}')) from None
            setattr(namespace, self.dest, options)

    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptions,
        help='override config settings, KEY=VALUE (a list: KEY="[a,b]" or '
        'KEY=a,b; nested: KEY="[(a,b),(c,d)]"; quotes needed, no spaces)')


def number_in(kind: type, low, high, message: str):
    """An argparse type: ``kind(text)`` in ``[low, high]``, else
    ``message`` (``{text}``: the text given)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(message.format(text=text))
        return value

    return parse


#: An argparse type of ``--atol``: a finite number, 0 or more.
tolerance = number_in(float, 0, sys.float_info.max,
                      'must be a finite number, 0 or more, got {text}')


def weight_options() -> argparse.ArgumentParser:
    """A parent parser of ``--random-weights`` and ``--seed``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        '--random-weights',
        action='store_true',
        help='random weights (seeded with --seed) instead of the config\'s '
        'load_from: an offline trial, no real prediction')
    parser.add_argument(
        '--seed',
        type=number_in(
            int, 0, 2**32 - 1, '{text!r} is not a seed: give a whole number '
            f'from 0 to {2**32 - 1}'),
        default=0,
        help=f'seed of the random weights, 0 to {2**32 - 1} (default 0)')
    return parser


def text_options(extra_classes: bool = True,
                 templates: bool = True) -> argparse.ArgumentParser:
    """A parent parser of ``--vocab``/``--vocab-file``, ``--bg-thresh`` and
    (when asked) ``--extra-classes`` and ``--templates``."""
    parser = argparse.ArgumentParser(add_help=False)
    vocab = parser.add_mutually_exclusive_group()
    vocab.add_argument(
        '--vocab',
        help='comma-separated classes, "|" between synonyms: '
        '"cat,dog|puppy,grass" (default: the model\'s classes)')
    vocab.add_argument(
        '--vocab-file', help='one class per line, commas between synonyms')
    if extra_classes:
        parser.add_argument(
            '--extra-classes',
            help='classes appended to the vocabulary (the config\'s by '
            'default), as --vocab: "grass,sky"')
    if templates:
        parser.add_argument(
            '--templates',
            nargs='+',
            help='a template set (simple, subset, full, identity) or '
            'templates with one "{}" each: "a photo of a {}."')
    parser.add_argument(
        '--bg-thresh',
        type=float,
        help='background threshold in [0, 1] (the model\'s when omitted)')
    return parser


def picture_options() -> argparse.ArgumentParser:
    """A parent parser of the pictures' ``--opacity``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        '--opacity',
        type=number_in(float, 0, 1, 'must be in [0, 1], got {text}'),
        default=0.5,
        help='colour weight of the overlays in [0, 1] (default 0.5)')
    return parser


def weights_label(checkpoint: Optional[str], seed: int) -> str:
    """How outputs name the weights: the checkpoint or the seed."""
    return checkpoint or f'random (seed {seed})'


#: Per launcher: what starts the processes, the environment mmengine reads
#: and how to start a tool (``{tool}``) with it.
LAUNCHERS = dict(
    pytorch=('torchrun', ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
             'torchrun --nproc_per_node=N {tool} ... --launcher pytorch (or '
             '{dist})'),
    slurm=('srun', ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
           'srun -n N python {tool} ... --launcher slurm'),
    mpi=('mpirun', ('OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_RANK',
                    'OMPI_COMM_WORLD_SIZE', 'MASTER_ADDR'),
         'mpirun -n N -x MASTER_ADDR=HOST python {tool} ... --launcher mpi'))


def check_paths(config: str,
                checkpoint: Optional[str] = None,
                random_weights: bool = False,
                launcher: str = 'none',
                checkpoint_option: str = 'CHECKPOINT',
                tool: str = 'tools/test.py') -> Optional[str]:
    """What is wrong with a command line's paths and launcher (that the
    environment of its starter is there), as one message (None when nothing
    is); ``tool`` names the script in the fix."""
    if not osp.isfile(config):
        which = ('configs/finetune/*.py, configs/pretrain/*.py'
                 if tool.endswith('train.py') else
                 'configs/groupvit_*.py (configs/classification/*.py for '
                 'classification)')
        return (f'config not found: {config}. Pass one of {which} or your '
                f'own config file.')
    if checkpoint and '://' not in checkpoint and not osp.exists(
            osp.expanduser(checkpoint)):
        return (f'checkpoint not found: {checkpoint}. Give a checkpoint '
                f'file or folder, a URL or hf://OWNER/NAME (see '
                f'docs/weights.md), or leave {checkpoint_option} out for '
                f'the config\'s weights.')
    if checkpoint and random_weights:
        return f'give {checkpoint_option} or --random-weights, not both.'
    if launcher in LAUNCHERS:
        starter, names, start = LAUNCHERS[launcher]
        missing = [k for k in names if k not in os.environ]
        if missing:
            dist = tool.replace('tools/', 'tools/dist_')[:-3] + '.sh'
            return (f'--launcher {launcher} needs the environment {starter} '
                    f'sets ({", ".join(missing)} not set). This run was not '
                    f'started by {starter}: start the tool with '
                    f'{start.format(tool=tool, dist=dist)}, or drop '
                    f'--launcher for one process.')
    return None


def check_device(name):
    """Raise unless ``name`` is a device of this machine: one that a tensor
    can be made on and copied back from (cpu and an available cuda do)."""
    import torch
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f'--device {name!r} is not a device name ({e}). '
                         f'Use cpu, cuda or cuda:N.') from None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    fix = 'Use --device cpu' + (' or cuda:0.' if count else '.')
    if device.type == 'cuda':
        if device.index is not None and device.index >= count or not count:
            have = (f'CUDA devices 0 to {count - 1}'
                    if count else 'no CUDA device')
            raise ValueError(f'--device {name}: this machine has {have}. '
                             f'{fix}')
    elif device.type != 'cpu':
        # A meta tensor is made but not copied back; a backend torch lacks
        # fails in its own way (RuntimeError, AssertionError, ...).
        try:
            torch.zeros(1, device=device).cpu()
        except Exception as e:
            why = ' '.join(str(e).split()).split('. ')[0].rstrip('.')
            raise ValueError(f'--device {name}: this machine cannot compute '
                             f'on it ({why}). {fix}') from None


def bench_options(config: Optional[str] = None) -> argparse.ArgumentParser:
    """The benchmark tools' parent parser (``config``: a default)."""
    parser = argparse.ArgumentParser(add_help=False)
    add = parser.add_argument
    add('config',
        nargs='?' if config else None,
        default=config,
        help='config file')
    add('--checkpoint', help='converted checkpoint (default: random, seeded)')
    add('--device', default='cpu', help='cpu or cuda[:i]')
    add('--data-root', help='dataset root of the whole-image measurements')
    add('--num-images',
        type=number_in(int, 0, 10**9, 'must be a count of images, got {text}'),
        default=10,
        help='for images/s (0: none)')
    add('--repeat',
        type=number_in(int, 1, 10**6, 'must be 1 or more, got {text}'),
        default=5,
        help='timed rounds')
    add('--window-batch',
        type=number_in(int, 1, 10**6, 'must be 1 or more, got {text}'),
        help='windows per backbone pass')
    add('--seed', type=int, default=0)
    add_cfg_options(parser)
    return parser


def add_shape_option(parser: argparse.ArgumentParser,
                     square: bool = False) -> None:
    """Add ``--shape H [W]`` (``args.shape``: ``(H, W)`` or None)."""
    from .errors import error_line
    from .files import MAX_IMAGE_PIXELS

    class Shape(argparse.Action):

        def __call__(self, parser, namespace, values, option_string=None):
            if len(values) > 2 or min(values) < 1:
                problem = '--shape takes H or H W, positive pixel counts.'
            elif values[0] * values[-1] > MAX_IMAGE_PIXELS:
                problem = (f'--shape {values[0]} {values[-1]} is more than '
                           f'the {MAX_IMAGE_PIXELS:,} pixels of an image; '
                           f'give a smaller window.')
            elif square and values[0] != values[-1]:
                problem = (f'--shape {values[0]} {values[-1]}: transformers\' '
                           f'GroupViTModel only runs square windows; give '
                           f'one side, e.g. --shape {values[0]}.')
            else:
                return setattr(namespace, self.dest, (values[0], values[-1]))
            raise SystemExit(error_line(problem))

    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        action=Shape,
        help='window H [W] (default: the config\'s crop_size)' +
        (', square' if square else ''))
