# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Fetch published GroupViT weights into the cache (checked, converted).

Prints the cache file; exit status 2 when the weights cannot be had (the
quick start then uses random weights), 1 for a wrong hash."""
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
    from groupvit_common.errors import CheckpointError, error_line
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
        print(error_line(e), file=sys.stderr)
        sys.exit(1 if isinstance(e, WrongHash) else UNAVAILABLE)
    print(path)
    return path


if __name__ == '__main__':
    main()
