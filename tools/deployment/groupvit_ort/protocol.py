# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""An export folder and its protocol (``deploy.json``), checked once when
opened: an export may come from anyone."""
import math
import os
import os.path as osp
import stat
from numbers import Real
from typing import Any, Dict, Optional, Sequence, Tuple

from groupvit_common import export_format, files
from groupvit_common.checks import check_bg_thresh, check_stride, is_int
from groupvit_common.errors import DataFileError
from groupvit_common.vocabulary import check_template

__all__ = [
    'ExportError', 'check_protocol', 'check_runtime_options', 'read_export'
]

AGAIN = 'export again with tools/deployment/pytorch2onnx.py.'
#: Most bytes of deploy.json, of a graph (protobuf's limit), of the BPE file.
MAX_DEPLOY_BYTES, MAX_GRAPH_BYTES, MAX_BPE_BYTES = 16 << 20, 2 << 30, 16 << 20


class ExportError(ValueError):
    """An export folder that cannot be used."""


def _pair(values: dict, key: str, name: Optional[str] = None) -> list:
    value = values.get(key)
    if not (isinstance(value, list) and len(value) == 2
            and all(is_int(v) and v >= 1 for v in value)):
        raise ValueError(f'protocol.{name or key} must be two positive '
                         f'integers, got {value!r}')
    return value


def _check_values(protocol: dict, window: Optional[Sequence]) -> None:
    resize = protocol.get('resize')
    if not isinstance(resize, dict) or resize.get('keep_ratio') is not True:
        raise ValueError(
            f'protocol.resize must be a keep-ratio resize, got {resize!r}')
    scale = _pair(resize, 'scale', 'resize.scale')
    if scale[0] * scale[1] > files.MAX_IMAGE_PIXELS:
        raise ValueError(
            f'protocol.resize.scale {scale} would resize a photo to more '
            f'than the {files.MAX_IMAGE_PIXELS:,} pixels an image may have')
    crop = _pair(protocol, 'crop_size')
    check_stride(crop, _pair(protocol, 'stride'), 'protocol')
    if window is not None and list(window) != crop:
        raise ValueError(f'protocol.crop_size {crop} is not the image '
                         f'graph\'s window {list(window)}')
    for key in ('mean', 'std'):
        value = protocol.get(key)
        if not (isinstance(value, list) and len(value) == 3 and all(
                isinstance(v, Real) and not isinstance(v, bool)
                and math.isfinite(v) for v in value)):
            raise ValueError(f'protocol.{key} must be three finite numbers '
                             f'(RGB), got {value!r}')
    if not all(v > 0 for v in protocol['std']):
        raise ValueError(
            f'protocol.std must be positive, got {protocol["std"]!r}')
    if not isinstance(protocol.get('with_bg'), bool):
        raise ValueError(f'protocol.with_bg must be true or false, got '
                         f'{protocol.get("with_bg")!r}')
    context = protocol.get('context_length')
    if not (is_int(context) and context >= 3):
        raise ValueError(f'protocol.context_length must be an integer of at '
                         f'least 3, got {context!r}')
    templates = protocol.get('templates')
    if not (isinstance(templates, list) and templates):
        raise ValueError(
            f'protocol.templates must be a list of texts with one "{{}}" '
            f'each, got {templates!r}')
    for template in templates:
        try:
            check_template(template)
        except (TypeError, ValueError) as e:
            raise ValueError(f'protocol.templates: {e}') from None
    check_bg_thresh(protocol.get('bg_thresh'), 'protocol.bg_thresh')
    classes = protocol.get('classes')
    if not (isinstance(classes, list) and classes and all(
            isinstance(c, list) and c and all(
                isinstance(n, str) and n.strip() for n in c)
            for c in classes)):
        raise ValueError(
            'protocol.classes must be a list of non-empty lists of names')


def check_protocol(protocol: Any,
                   source: str,
                   window: Optional[Sequence] = None) -> dict:
    """Return ``protocol`` (of the file ``source``) if the runner can use
    every value; ``window``: the image graph's fixed ``(h, w)``, if any.

    Raises:
        ExportError: Naming the value and the fix.
    """
    if not isinstance(protocol, dict):
        raise ExportError(f'{source}: "protocol" must be a mapping; {AGAIN}')
    try:
        _check_values(protocol, window)
    except ValueError as e:
        raise ExportError(f'{source}: {str(e).rstrip(".")}; the export is '
                          f'damaged or was edited: {AGAIN}') from None
    return protocol


def check_runtime_options(threads: Any, window_batch: Any) -> Optional[int]:
    """``threads`` (None or at most the cores), after checking both.

    Raises:
        ValueError: Either is not an integer >= 1.
    """
    if threads is not None and not (is_int(threads) and threads >= 1):
        raise ValueError(f'threads must be an integer >= 1 (leave --threads '
                         f'out for all cores), got {threads!r}')
    if not (is_int(window_batch) and window_batch >= 1):
        raise ValueError(f'window batch must be an integer >= 1 '
                         f'(--window-batch), got {window_batch!r}')
    cores = os.cpu_count() or 1
    if threads is not None and threads > cores:
        # Each thread takes memory; more than the cores only wait.
        print(f'warning: --threads {threads} is more than the {cores} '
              f'cores of this machine; using {cores}.')
        threads = cores
    return threads


def _read_file(export_dir: str, name: Any, limit: int) -> bytes:
    """The bytes of a regular file of the export folder (not a link)."""
    if not isinstance(name, str) or osp.basename(name) != name or name in (
            '', '.', '..'):
        raise ExportError(f'{export_dir}: deploy.json names the file '
                          f'{name!r}, which is not a file of the export '
                          f'folder; {AGAIN}')
    path = osp.join(export_dir, name)
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise ExportError(f'{path} is a symbolic link; an export holds '
                              f'its own files: {AGAIN}')
    except OSError:
        raise ExportError(f'{export_dir} lacks {name!r}; {AGAIN}') from None
    return files.read_bytes(path, limit, 'export file')


def read_export(export_dir: str) -> Tuple[dict, Dict[str, bytes]]:
    """``deploy.json`` and ``{'image', 'text', 'bpe': bytes}``, each file
    checked against its recorded SHA-256.

    Raises:
        ExportError: One line naming what is wrong and the fix.
    """
    meta_path = osp.join(export_dir, export_format.DEPLOY_FILE)
    if not osp.isfile(meta_path):
        raise ExportError(
            f'{export_dir} is not an ONNX export (no deploy.json); '
            f'create one with tools/deployment/pytorch2onnx.py.')
    try:
        meta = files.read_json(meta_path, MAX_DEPLOY_BYTES, 'deploy.json')
        if not isinstance(meta, dict):
            raise ExportError(f'{meta_path} is not a JSON object; {AGAIN}')
        if meta.get('format') in export_format.OLD_FORMATS:
            raise ExportError(
                f'{meta_path} is an export of an earlier version '
                f'({meta["format"]!r}, whose files carry no digest to check '
                f'them by); {AGAIN}')
        if meta.get('format') != export_format.FORMAT:
            raise ExportError(f'{meta_path} is not an export of this '
                              f'version ({export_format.FORMAT!r}); {AGAIN}')
        try:
            names = dict(
                image=meta['image_graph']['file'],
                text=meta['text_graph']['file'],
                bpe=meta['tokenizer']['bpe_file'])
        except (KeyError, TypeError) as e:
            raise ExportError(f'{meta_path} lacks {e}; {AGAIN}') from None
        data = {
            key:
            _read_file(export_dir, name,
                       MAX_BPE_BYTES if key == 'bpe' else MAX_GRAPH_BYTES)
            for key, name in names.items()
        }
    except DataFileError as e:
        raise ExportError(f'{str(e).rstrip(".")}; {AGAIN}') from None
    recorded = meta.get('sha256')
    if not isinstance(recorded, dict):
        raise ExportError(f'{meta_path} lacks the digests of its files '
                          f'(sha256); {AGAIN}')
    found = export_format.digests(
        meta.get('protocol'), {
            names[k]: v
            for k, v in data.items()
        })
    differ = [name for name in found if recorded.get(name) != found[name]]
    if differ:
        raise ExportError(
            f'{export_dir}: {" and ".join(differ)} differ from what was '
            f'exported and checked (SHA-256 in deploy.json): the export was '
            f'edited or damaged; {AGAIN}')
    return meta, data
