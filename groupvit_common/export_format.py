# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The ONNX export folder's format (version, SHA-256 digests), written by
:mod:`mmseg_groupvit.deployment` and checked by the onnxruntime runner."""
import hashlib
import json
from typing import Dict

#: ``deploy.json``'s ``format``; earlier ones (no digests) are refused.
FORMAT = 'mmseg-groupvit onnx 2'
OLD_FORMATS = ('mmseg-groupvit onnx 1', )
DEPLOY_FILE = 'deploy.json'


def digests(protocol: dict, files: Dict[str, bytes]) -> Dict[str, str]:
    """SHA-256 of the protocol (as ``protocol``: its JSON with sorted keys)
    and of every file's bytes, by name."""
    text = json.dumps(protocol, sort_keys=True, separators=(',', ':'))
    files = {'protocol': text.encode('utf-8'), **files}
    return {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}


def image_feeds(session, **arrays) -> dict:
    """The ``arrays`` an onnxruntime session of the image graph takes: a
    head without a background channel has no ``bg_thresh`` input."""
    names = {i.name for i in session.get_inputs()}
    return {k: v for k, v in arrays.items() if k in names}
