# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Fetch published GroupViT weights into the cache (checked, converted).

Prints the cache file(s); exit status 2 when the weights cannot be had (the
quick start then uses random weights), 1 for a wrong hash."""
import argparse
import os.path as osp
import sys

# The exit status of weights that could not be had (offline, a bad hash).
UNAVAILABLE = 2
NO_WEIGHTS = ('the config sets no load_from nor a Pretrained init_cfg '
              'checkpoint, or it')

DEFAULT_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
    'groupvit_voc.py')


def config_weights(path: str) -> list:
    """The weights a config names: its ``load_from``, else the checkpoints
    of its ``Pretrained`` init_cfg (a fine-tuning config's backbone)."""
    from mmseg_groupvit.utils.config_file import find_dicts, load_config
    cfg = load_config(path).to_dict()
    if cfg.get('load_from'):
        return [cfg['load_from']]
    found = find_dicts(
        cfg.get('model'),
        lambda d: d.get('type') == 'Pretrained' and d.get('checkpoint'))
    return list(dict.fromkeys(d['checkpoint'] for _, d in found))


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'source',
        nargs='?',
        default=DEFAULT_CONFIG,
        help='a config (its load_from, else its Pretrained init_cfg '
        'checkpoint), a URL or hf://OWNER/NAME (default: '
        'configs/groupvit_voc.py)')
    source = parser.parse_args(argv).source
    from groupvit_common.errors import (CheckpointError, ConfigCheckError,
                                        error_line)
    from mmseg_groupvit.utils.console import quiet_warnings
    from mmseg_groupvit.weights import fetch
    from mmseg_groupvit.weights.checkpoint_loader import WrongHash
    from mmseg_groupvit.weights.download import is_remote
    quiet_warnings()
    try:
        sources = [source]
        if source.endswith(('.py', '.json', '.yaml', '.yml')):
            if not osp.isfile(source):
                raise CheckpointError(
                    f'config not found: {source}. Pass a config file (its '
                    f'load_from is fetched), a URL or hf://OWNER/NAME.')
            try:
                sources = config_weights(source) or ['']
            except ConfigCheckError as e:
                raise CheckpointError(
                    f'{e} Or pass a URL or hf://OWNER/NAME.') from None
        for source in sources:
            if not is_remote(source):
                raise CheckpointError(
                    f'{source or NO_WEIGHTS} is not a URL or hf://OWNER/NAME:'
                    f' a local file needs no fetching.')
        paths = [fetch(source) for source in sources]
    except CheckpointError as e:
        print(error_line(e), file=sys.stderr)
        sys.exit(1 if isinstance(e, WrongHash) else UNAVAILABLE)
    print('\n'.join(paths))
    return paths[-1]


if __name__ == '__main__':
    main()
