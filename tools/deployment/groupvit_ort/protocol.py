# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""An export folder and its protocol (``deploy.json``), checked once when
loaded: an export may come from anyone."""
import math
import os
import os.path as osp
import stat
from numbers import Real
from typing import Any, Dict, Optional, Sequence, Tuple

from groupvit_common import checks as config_checks
from groupvit_common import export_format, files
from groupvit_common.errors import DataFileError
from groupvit_common.vocabulary import check_template

__all__ = [
    'ExportError', 'check_protocol', 'check_runtime_options', 'read_export'
]

AGAIN = 'export again with tools/deployment/pytorch2onnx.py.'
#: Most bytes of deploy.json, of a graph (protobuf's limit), of the BPE file.
MAX_DEPLOY_BYTES = 16 << 20
MAX_GRAPH_BYTES = 2 << 30
MAX_BPE_BYTES = 16 << 20


class ExportError(ValueError):
    """An export folder that cannot be used."""


class _BadValue(ValueError):
    """A value of the protocol, before the file is named."""


def _is_number(value: Any) -> bool:
    return isinstance(
        value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _pair(values: dict, key: str, name: Optional[str] = None) -> list:
    value = values.get(key)
    if not (isinstance(value, list) and len(value) == 2
            and all(config_checks.is_int(v) and v >= 1 for v in value)):
        raise _BadValue(f'protocol.{name or key} must be two positive '
                        f'integers, got {value!r}')
    return value


def _check_values(protocol: dict, window: Optional[Sequence]) -> None:
    resize = protocol.get('resize')
    if not isinstance(resize, dict) or resize.get('keep_ratio') is not True:
        raise _BadValue(
            f'protocol.resize must be a keep-ratio resize, got {resize!r}')
    scale = _pair(resize, 'scale', 'resize.scale')
    if scale[0] * scale[1] > files.MAX_IMAGE_PIXELS:
        # Every photo is resized to about this many pixels.
        raise _BadValue(
            f'protocol.resize.scale {scale} would resize a photo to more '
            f'than the {files.MAX_IMAGE_PIXELS:,} pixels an image may have')
    crop = _pair(protocol, 'crop_size')
    config_checks.check_stride(crop, _pair(protocol, 'stride'), 'protocol')
    if window is not None and list(window) != crop:
        raise _BadValue(
            f'protocol.crop_size {crop} is not the image graph\'s window '
            f'{list(window)}')
    for key in ('mean', 'std'):
        value = protocol.get(key)
        if not (isinstance(value, list) and len(value) == 3
                and all(_is_number(v) for v in value)):
            raise _BadValue(
                f'protocol.{key} must be three finite numbers (RGB), got '
                f'{value!r}')
    if not all(v > 0 for v in protocol['std']):
        raise _BadValue(
            f'protocol.std must be positive, got {protocol["std"]!r}')
    if not isinstance(protocol.get('with_bg'), bool):
        raise _BadValue(f'protocol.with_bg must be true or false, got '
                        f'{protocol.get("with_bg")!r}')
    context = protocol.get('context_length')
    if not (config_checks.is_int(context) and context >= 3):
        raise _BadValue(
            f'protocol.context_length must be an integer of at least 3, got '
            f'{context!r}')
    templates = protocol.get('templates')
    if not (isinstance(templates, list) and templates):
        raise _BadValue(
            f'protocol.templates must be a list of texts with one "{{}}" '
            f'each, got {templates!r}')
    for template in templates:
        try:
            # The package's rule: exactly one empty field.
            check_template(template)
        except (TypeError, ValueError) as e:
            raise _BadValue(f'protocol.templates: {e}'.rstrip('.')) from None
    try:
        # The package's check of every threshold (also --bg-thresh).
        config_checks.check_bg_thresh(
            protocol.get('bg_thresh'), 'protocol.bg_thresh')
    except ValueError as e:
        raise _BadValue(str(e).rstrip('.')) from None
    classes = protocol.get('classes')
    if not (isinstance(classes, list) and classes and all(
            isinstance(c, list) and c and all(
                isinstance(n, str) and n.strip() for n in c)
            for c in classes)):
        raise _BadValue(
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
        raise ExportError(
            f'{source}: "protocol" must be a mapping; export again with '
            f'tools/deployment/pytorch2onnx.py.')
    try:
        _check_values(protocol, window)
    except ValueError as e:  # _BadValue or groupvit_common's
        reason = str(e).rstrip('.')
        raise ExportError(
            f'{source}: {reason}; the export is damaged or was edited: export '
            f'again with tools/deployment/pytorch2onnx.py.') from None
    return protocol


def check_runtime_options(threads: Any, window_batch: Any) -> Optional[int]:
    """``threads`` (None or at most the cores), after checking both.

    Raises:
        ValueError: Either is not an integer >= 1.
    """
    if threads is not None and not (config_checks.is_int(threads)
                                    and threads >= 1):
        raise ValueError(f'threads must be an integer >= 1 (leave --threads '
                         f'out for all cores), got {threads!r}')
    if not (config_checks.is_int(window_batch) and window_batch >= 1):
        raise ValueError(f'window batch must be an integer >= 1 '
                         f'(--window-batch), got {window_batch!r}')
    cores = os.cpu_count() or 1
    if threads is not None and threads > cores:
        # Each onnxruntime thread takes memory; more than the cores only
        # wait for each other.
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
        mode = os.lstat(path).st_mode
    except OSError:
        raise ExportError(f'{export_dir} lacks {name!r}; {AGAIN}') from None
    if stat.S_ISLNK(mode):
        raise ExportError(f'{path} is a symbolic link; an export holds its '
                          f'own files: {AGAIN}')
    try:
        return files.read_bytes(path, limit, 'export file')
    except DataFileError as e:
        raise ExportError(f'{str(e).rstrip(".")}; {AGAIN}') from None


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
    except DataFileError as e:
        raise ExportError(f'{str(e).rstrip(".")}; {AGAIN}') from None
    if not isinstance(meta, dict):
        raise ExportError(f'{meta_path} is not a JSON object; {AGAIN}')
    if meta.get('format') in export_format.OLD_FORMATS:
        raise ExportError(
            f'{meta_path} is an export of an earlier version '
            f'({meta["format"]!r}, whose files carry no digest to check '
            f'them by); {AGAIN}')
    if meta.get('format') != export_format.FORMAT:
        raise ExportError(f'{meta_path} is not an export of this version '
                          f'({export_format.FORMAT!r}); {AGAIN}')
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
    recorded = meta.get('sha256')
    if not isinstance(recorded, dict):
        raise ExportError(f'{meta_path} lacks the digests of its files '
                          f'(sha256); {AGAIN}')
    found = export_format.digests(
        meta.get('protocol'), {
            names[k]: v
            for k, v in data.items()
        })
    differ = export_format.changed(recorded, found)
    if differ:
        raise ExportError(
            f'{export_dir}: {" and ".join(differ)} differ from what was '
            f'exported and checked (SHA-256 in deploy.json): the export was '
            f'edited or damaged; {AGAIN}')
    return meta, data
