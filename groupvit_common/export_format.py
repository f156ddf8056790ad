# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The ONNX export folder's format, shared by the exporter
(:mod:`mmseg_groupvit.deployment`) and the runner
(``tools/deployment/groupvit_ort``): its version and the SHA-256 digests
of its protocol and files, written by the one and checked by the other, so
that an export edited after it was checked is refused instead of used."""
import hashlib
import json
from typing import Dict, List

__all__ = ['FORMAT', 'OLD_FORMATS', 'DEPLOY_FILE', 'digests', 'changed']

#: ``deploy.json``'s ``format``: the version of the export.
FORMAT = 'mmseg-groupvit onnx 2'
#: Earlier versions (without digests): to be exported again.
OLD_FORMATS = ('mmseg-groupvit onnx 1', )
DEPLOY_FILE = 'deploy.json'


def digests(protocol: dict, files: Dict[str, bytes]) -> Dict[str, str]:
    """SHA-256 of the protocol (its JSON with sorted keys) and of every
    file's bytes, by name (``protocol`` for the protocol)."""
    text = json.dumps(protocol, sort_keys=True, separators=(',', ':'))
    found = dict(protocol=hashlib.sha256(text.encode('utf-8')).hexdigest())
    for name, data in files.items():
        found[name] = hashlib.sha256(data).hexdigest()
    return found


def changed(recorded: Dict[str, str], found: Dict[str, str]) -> List[str]:
    """The names whose digest differs from the recorded one (or that have
    none recorded)."""
    return [name for name in found if recorded.get(name) != found[name]]
