# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Fetch published GroupViT weights into the cache: downloaded once,
checked against the SHA-256 prefix of their name, converted, kept.

Usage::

    python tools/fetch_weights.py [CONFIG | URL | hf://OWNER/NAME]

Without an argument, the weights of ``configs/groupvit_voc.py`` (its
``load_from``, the published GCC+YFCC release). Prints the cache file,
which later runs read without downloading; on failure prints one
``error:`` line (offline: the ``curl`` command that places the file by
hand) and exits with status 2, the status ``tools/quickstart.sh`` (which
runs it first) takes as "run with random weights instead". Bytes that are
not what the file's name promises (its SHA-256) exit with status 1, as any
other failure: the quick start stops there.
"""
import argparse
import os.path as osp
import sys

# The exit status of weights that could not be had (offline, a bad hash).
UNAVAILABLE = 2

DEFAULT_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
    'groupvit_voc.py')


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'source',
        nargs='?',
        default=DEFAULT_CONFIG,
        help='a config (its load_from), a URL or hf://OWNER/NAME (default: '
        'configs/groupvit_voc.py)')
    source = parser.parse_args(argv).source
    from groupvit_common.errors import CheckpointError
    from mmseg_groupvit.utils.console import quiet_warnings
    from mmseg_groupvit.weights import fetch
    from mmseg_groupvit.weights.checkpoint_loader import WrongHash
    from mmseg_groupvit.weights.download import is_remote
    quiet_warnings()
    try:
        if source.endswith('.py'):
            if not osp.isfile(source):
                raise CheckpointError(
                    f'config not found: {source}. Pass a config file (its '
                    f'load_from is fetched), a URL or hf://OWNER/NAME.')
            from mmengine.config import Config
            source = Config.fromfile(source).get('load_from') or ''
        if not is_remote(source):
            raise CheckpointError(
                f'{source or "the config sets no load_from, or it"} is not a '
                f'URL or hf://OWNER/NAME: a local file needs no fetching.')
        path = fetch(source)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1 if isinstance(e, WrongHash) else UNAVAILABLE)
    print(path)
    return path


if __name__ == '__main__':
    main()
