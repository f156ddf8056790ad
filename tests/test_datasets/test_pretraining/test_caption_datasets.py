# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Captioned photos from annotation files and webdataset shards: good
samples are read, bad ones named (files) or skipped and counted (samples
in shards)."""
import io
import json
import logging
import os.path as osp
import tarfile
from types import SimpleNamespace

import pytest
import torch
from braceexpand import braceexpand
from mmengine.logging import MMLogger

from groupvit_common.errors import (ConfigValueError, ImageLoadError,
                                    TrainingDataError)
from mmseg_groupvit.datasets.pretraining import (CaptionAnnotationDataset,
                                                 CaptionShards, count_samples)
from mmseg_groupvit.engine.hooks import (PretrainDataCheckHook,
                                         check_train_batches)
from tests.conftest import SAMPLES

PHOTO = osp.join(SAMPLES, 'images', 'groupvit_demo_voc.jpg')
PIPELINE = [
    dict(type='CaptionTokenize', multi_label=2, tagger='rules'),
    dict(type='PackCaptionInputs')
]


def write_jsonl(path, records):
    with open(path, 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in records)


def test_the_shipped_captions_load_with_every_photo():
    dataset = CaptionAnnotationDataset(
        ann_file='captions.jsonl', data_root=SAMPLES, pipeline=[])
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert len(infos) == 39
    assert all(osp.isfile(d['img_path']) for d in infos)
    assert len({d['caption'] for d in infos}) == 39


def test_an_annotation_with_a_missing_image_names_file_line_and_fix(tmp_path):
    write_jsonl(tmp_path / 'ann.jsonl', [
        dict(image=PHOTO, caption='a dog'),
        dict(image='nowhere.jpg', caption='a cat')
    ])
    with pytest.raises(TrainingDataError) as error:
        CaptionAnnotationDataset(
            ann_file=str(tmp_path / 'ann.jsonl'), data_root=str(tmp_path))
    message = str(error.value)
    assert 'ann.jsonl line 2' in message and 'nowhere.jpg not found' in message
    assert 'remove the line' in message


def test_an_annotation_naming_a_folder_or_a_device_says_what_it_is(tmp_path):
    (tmp_path / 'photos').mkdir()
    for name, kind in (('photos', 'a folder'), ('/dev/null', 'a device')):
        write_jsonl(tmp_path / 'ann.jsonl', [dict(image=name, caption='x')])
        with pytest.raises(TrainingDataError) as error:
            CaptionAnnotationDataset(
                ann_file=str(tmp_path / 'ann.jsonl'), data_root=str(tmp_path))
        assert f'{name} is {kind}, not an image file' in str(error.value)


def test_csv_annotations(tmp_path):
    (tmp_path /
     'ann.csv').write_text(f'file,text\n{PHOTO},"a small dog, a plant"\n')
    dataset = CaptionAnnotationDataset(
        ann_file=str(tmp_path / 'ann.csv'),
        image_key='file',
        caption_key='text',
        pipeline=[dict(type='LoadImageFromFile')] + PIPELINE)
    sample = dataset[0]
    assert sample['inputs'].shape == (3, 448, 448)
    assert sample['data_samples'].text_tokens.shape == (3, 77)
    assert sample['data_samples'].caption == 'a small dog, a plant'


@pytest.mark.parametrize('name, text', [
    ('ann.csv', f'image,caption\n{PHOTO},a small dog\n'),
    ('ann.jsonl', json.dumps(dict(image=PHOTO, caption='a small dog'))),
])
def test_an_annotation_file_with_a_byte_order_mark(tmp_path, name, text):
    """Excel's "CSV UTF-8" and Notepad's UTF-8 start with a BOM, which is
    not part of the first field's name."""
    (tmp_path / name).write_text(text, encoding='utf-8-sig')
    dataset = CaptionAnnotationDataset(ann_file=str(tmp_path / name))
    info = dataset.get_data_info(0)
    assert len(dataset) == 1
    assert (info['img_path'], info['caption']) == (PHOTO, 'a small dog')


@pytest.mark.parametrize(
    'content, advice',
    [(b'not a jpeg',
      'the file is truncated or corrupt (not a known image format). Copy '
      'or download it again, or remove it from annotation file {ann} line 2.'),
     (b'', 'the file is empty (0 bytes). Copy or download it again. It is '
      'listed in annotation file {ann} line 2.')],
    ids=['undecodable', 'empty'])
def test_an_image_that_does_not_load_names_the_annotation_line(
        tmp_path, content, advice):
    (tmp_path / 'bad.jpg').write_bytes(content)
    write_jsonl(tmp_path / 'ann.jsonl', [
        dict(image=PHOTO, caption='a dog'),
        dict(image='bad.jpg', caption='a cat')
    ])
    dataset = CaptionAnnotationDataset(
        ann_file=str(tmp_path / 'ann.jsonl'),
        data_root=str(tmp_path),
        pipeline=[dict(type='RobustLoadImageFromFile')])
    assert dataset[0]['img'].ndim == 3
    with pytest.raises(ImageLoadError) as error:
        dataset[1]
    assert str(error.value) == (f'Cannot load image {tmp_path}/bad.jpg: ' +
                                advice.format(ann=tmp_path / 'ann.jsonl'))


@pytest.mark.parametrize(
    'name, text, match', [
        ('latin1.jsonl', b'{"image": "a.jpg", "caption": "caf\xe9"}\n',
         'latin1.jsonl is not UTF-8 text'),
        ('deep.jsonl', b'{"image": ' + b'[' * 100000 + b'\n',
         'deep.jsonl line 1 is not JSON \\(nested too deeply\\)'),
        ('long.csv', b'image,caption\na.jpg,a dog\na.jpg,' + b'x' * 200000,
         'long.csv after line 2 is not CSV \\(field larger than'),
        ('digits.jsonl', b'{"image": "a.jpg", "n": ' + b'9' * 5000 + b'}\n',
         'digits.jsonl line 1 is not JSON \\(Exceeds the limit'),
    ],
    ids=['latin1', 'deep', 'long', 'digits'])
def test_an_unreadable_annotation_file_is_one_line(tmp_path, name, text,
                                                   match):
    (tmp_path / name).write_bytes(text)
    with pytest.raises(TrainingDataError, match=match):
        CaptionAnnotationDataset(
            ann_file=str(tmp_path / name), data_root=str(tmp_path))


@pytest.mark.parametrize(
    'name, text, where, same', [
        ('twice.csv', f'image,caption,caption\n{PHOTO},a dog,a cat\n',
         'the header of annotation file {ann}', "'caption', 'caption'"),
        ('look_alike.csv', f'image,caption, Caption\n{PHOTO},a dog,a cat\n',
         'the header of annotation file {ann}', "'caption', ' Caption'"),
        ('invisible.csv', f'image,caption,\ufeffcaption\n{PHOTO},a,b\n',
         'the header of annotation file {ann}', "'caption', '\\ufeffcaption'"),
        ('twice.jsonl', f'{{"image": "{PHOTO}", "caption": "a dog"}}\n'
         f'{{"image": "{PHOTO}", "caption": "a dog", "caption": "a cat"}}\n',
         'annotation file {ann} line 2', "'caption', 'caption'"),
    ],
    ids=['csv', 'csv_look_alike', 'csv_invisible', 'jsonl'])
def test_a_caption_field_named_twice_is_refused(tmp_path, name, text, where,
                                                same):
    """csv.DictReader and json keep one of two equal names silently: one
    caption of each pair would be trained on without a word."""
    (tmp_path / name).write_text(text)
    with pytest.raises(TrainingDataError) as error:
        CaptionAnnotationDataset(ann_file=str(tmp_path / name))
    assert str(error.value) == (
        where.format(ann=tmp_path / name) +
        f' names "caption" twice ({same}), so one of them would be ignored: '
        f'keep one.')


def test_repeated_names_inside_a_field_are_the_field_s_own(tmp_path):
    """Only the record's own fields are read: a nested object may repeat a
    name."""
    alt = '[{"caption": "machine", "caption": "human"}]'
    (tmp_path / 'ann.jsonl').write_text(
        f'{{"image": "{PHOTO}", "caption": "a dog", "alt": {alt}}}\n')
    dataset = CaptionAnnotationDataset(ann_file=str(tmp_path / 'ann.jsonl'))
    assert dataset.get_data_info(0)['caption'] == 'a dog'


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def shards(tmp_path):
    """Two img2dataset-style shards: 3 good samples, an image that does not
    decode, and an image without a caption."""
    photo = open(PHOTO, 'rb').read()
    with tarfile.open(tmp_path / 'part-00000.tar', 'w') as tar:
        for key, caption in (('000', b'a dog by a plant'), ('001',
                                                            b'a black dog')):
            add(tar, f'{key}.jpg', photo)
            add(tar, f'{key}.txt', caption)
        add(tar, '002.jpg', b'not a jpeg')
        add(tar, '002.txt', b'broken')
    with tarfile.open(tmp_path / 'part-00001.tar', 'w') as tar:
        add(tar, '100.jpg', photo)
        add(tar, '100.txt', b'a poodle')
        add(tar, '101.jpg', photo)
    return tmp_path


def test_shards_stream_good_samples_and_skip_bad_ones(shards):
    assert CaptionShards(
        [dict(path=str(shards), prefix='part-{00000..00001}.tar')
         ], ).length == 5  # counted from the tar headers
    # Shards are drawn at random: 40 samples read each shard many times.
    dataset = CaptionShards(
        [dict(path=str(shards), prefix='part-{00000..00001}.tar', length=40)],
        pipeline=PIPELINE,
        shuffle_buffer=4)
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        samples = list(dataset)
    finally:
        logger.removeHandler(handler)
    assert len(samples) == len(dataset) == 40
    captions = {s['data_samples'].caption for s in samples}
    assert captions <= {'a dog by a plant', 'a black dog', 'a poodle'}
    # Each bad sample is logged once, at its shard's first reading, and
    # counted at every reading.
    skips = sorted(r.getMessage() for r in records
                   if 'skipped' in r.getMessage())
    assert len(skips) == 2, skips
    assert ':002: the image does not decode (' in skips[0]
    assert ':101: no caption (.txt) (' in skips[1]
    assert dataset.skipped > 2


def test_the_length_counts_samples_as_the_reader_groups_them(tmp_path):
    """webdataset's key is the path up to the first dot of the file name:
    ``v1.2/a.jpg`` and ``v1.2/b.jpg`` are two samples, and a folder is
    none."""
    with tarfile.open(tmp_path / 'part.tar', 'w') as tar:
        folder = tarfile.TarInfo('v1.2')
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for key in ('v1.2/a', 'v1.2/b', 'c'):
            add(tar, f'{key}.jpg', b'x')
            add(tar, f'{key}.txt', b'y')
    assert count_samples(str(tmp_path / 'part.tar')) == 3


def test_an_empty_shard_list_is_named(tmp_path):
    with pytest.raises(TrainingDataError, match='no shard found for'):
        CaptionShards([dict(path=str(tmp_path), prefix='x-{0..3}.tar')])


def test_a_shard_that_is_not_a_tar_is_named(tmp_path):
    (tmp_path / 'a.tar').write_text('hello')
    with pytest.raises(TrainingDataError) as error:
        CaptionShards([dict(path=str(tmp_path), prefix='a.tar', length=9)])
    assert f'{tmp_path}/a.tar is not a tar file' in str(error.value)


def test_a_pattern_with_missing_shards_is_refused(shards):
    """A half-downloaded dataset is not trained on in part."""
    with pytest.raises(TrainingDataError) as error:
        CaptionShards([
            dict(path=str(shards), prefix='part-{00000..00009}.tar', length=8)
        ])
    assert str(error.value) == (
        f'8 of the 10 shards of {shards}/part-{{00000..00009}}.tar are '
        f'missing ({shards}/part-00002.tar, {shards}/part-00003.tar, '
        f'{shards}/part-00004.tar, ...): download them, or name only the '
        f'shards present in train_dataloader.dataset.datasets[0].prefix (a '
        f'brace list skips gaps: "part-{{{{00000..00009}},00011}}.tar").')
    example = str(error.value).split('"')[1]  # the advice works
    assert list(braceexpand(example)) == [
        f'part-{i:05d}.tar' for i in [*range(10), 11]
    ]


@pytest.mark.parametrize(
    'entry, start',
    [(dict(length='abc'), 'datasets[1].length must be a positive whole '
      "number of samples, got 'abc': set it to the number of samples"),
     (dict(length=8.9), 'datasets[1].length must be a positive whole number '
      'of samples, got 8.9: '),
     (dict(length=0), 'datasets[1].length must be a positive whole number '
      'of samples, got 0: '),
     (dict(prefix=None, length=8),
      'datasets[1].prefix must name the shards, got None: set it to a brace '
      'pattern')],
    ids=['text', 'fraction', 'zero', 'no-prefix'])
def test_a_malformed_shard_entry_names_its_key(shards, entry, start):
    entry = dict(dict(path=str(shards), prefix='part-00001.tar'), **entry)
    if entry['prefix'] is None:
        del entry['prefix']
    with pytest.raises(ConfigValueError) as error:
        CaptionShards([dict(path=str(shards), prefix='part-00000.tar'), entry])
    assert str(error.value).startswith('train_dataloader.dataset.' + start)


def test_datasets_must_be_a_list_of_entries(shards):
    entry = dict(path=str(shards), prefix='part-00000.tar')
    with pytest.raises(
            ConfigValueError,
            match=r'datasets must be a list of '
            r'dict\(path=..., prefix=..., length=...\), got '):
        CaptionShards(entry)
    with pytest.raises(
            ConfigValueError,
            match=r'datasets\[1\] must be '
            r"dict\(path=..., prefix=..., length=...\), got 'a'"):
        CaptionShards([entry, 'a'])


@pytest.mark.filterwarnings('ignore:This DataLoader will create')
@pytest.mark.parametrize('samples, batch, workers, drop_last',
                         [(8, 4, 3, True), (10, 4, 3, False),
                          (16, 4, 3, True)])
def test_workers_stream_whole_batches_as_many_as_the_loader_counts(
        shards, samples, batch, workers, drop_last):
    """Each worker's stream is batched on its own: 8 samples split evenly
    among 3 workers gave none a whole batch of 4 (no step at all)."""
    dataset = CaptionShards([
        dict(
            path=str(shards), prefix='part-{00000..00001}.tar', length=samples)
    ],
                            shuffle_buffer=2)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        num_workers=workers,
        drop_last=drop_last,
        collate_fn=len)
    check_train_batches(loader)  # as tools/train.py before training
    full, rest = divmod(samples, batch)
    expected = [batch] * full + [rest] * (rest > 0 and not drop_last)
    assert sorted(loader, reverse=True) == expected
    assert len(loader) == len(expected)


def test_a_batch_larger_than_the_data_stops_before_training(tmp_path):
    write_jsonl(tmp_path / 'ann.jsonl', [dict(image=PHOTO, caption='dog')])
    dataset = CaptionAnnotationDataset(ann_file=str(tmp_path / 'ann.jsonl'))
    runner = SimpleNamespace(
        train_dataloader=torch.utils.data.DataLoader(
            dataset, batch_size=8, collate_fn=list))
    with pytest.raises(TrainingDataError) as error:
        PretrainDataCheckHook().before_train(runner)
    assert 'larger than the data (1 samples per process from' in str(
        error.value)
    assert 'ann.jsonl' in str(error.value)


@pytest.mark.parametrize('drop_last', [False, True])
def test_tools_train_refuses_only_an_epoch_without_a_batch(drop_last):
    """For any epoch-based training (``tools/train.py``'s runner), 3
    samples in batches of 4 are refused only where ``drop_last`` leaves no
    batch; named by the dataset's class."""
    loader = torch.utils.data.DataLoader([0, 1, 2],
                                         batch_size=4,
                                         drop_last=drop_last)
    assert len(loader) == int(not drop_last)
    if not drop_last:
        check_train_batches(loader, any_short=False)
        return
    with pytest.raises(
            TrainingDataError, match=r'\(3 samples per process '
            r'from list\)'):
        check_train_batches(loader, any_short=False)


@pytest.mark.parametrize(
    'prefix, count', [('good-{0..1}{0..99999999}.tar', '200,000,000'),
                      ('x-{{0..999}{0..999}{0..999},y}.tar', '1,000,000,001'),
                      ('x-{0..9}{a..z}{0..9999..1}.tar', '2,600,000')],
    ids=['ranges', 'nested', 'letters'])
def test_a_pattern_of_too_many_shards_is_refused_unexpanded(
        tmp_path, prefix, count):
    """The report's 30 characters named 200 million shards (9.5 GB when
    expanded): refused from their count, before a name is made."""
    with pytest.raises(TrainingDataError) as error:
        CaptionShards([dict(path=str(tmp_path), prefix=prefix)])
    assert str(error.value) == (
        f'the pattern {tmp_path}/{prefix} names {count} shards, more than the '
        f'1,000,000 accepted: name the shards with a shorter brace range in '
        f'train_dataloader.dataset.datasets[0].prefix.')


@pytest.mark.parametrize('pattern', [
    'a', 'a{b,c}d', 'x{0..3}{a..c}', '{a,b{1..3},{c,d}e}', 'p{00..10..3}',
    '{5..1}', r'\{a\}{0..3}', '{a}', '{x,{0..2}{y,z}}-{1..2}', 'a{,b}',
    '{Z..a}', '{-2..2}'
])
def test_the_shard_count_of_a_pattern_is_braceexpand_s(pattern):
    from mmseg_groupvit.datasets.pretraining.shard_dataset import name_count
    assert name_count(pattern) == len(list(braceexpand(pattern)))


@pytest.mark.parametrize('name', ['nul.jsonl', 'nul.csv'])
def test_an_annotation_line_over_the_bound_is_refused(tmp_path, name):
    """A sparse 2 GB file of one line of NULs took 4.7 GB to be called
    "not JSON": a line is read no further than the bound."""
    from mmseg_groupvit.datasets.pretraining.annotation_dataset import \
        MAX_LINE_CHARS
    header = 'image,caption\n' if name.endswith('.csv') else ''
    (tmp_path / name).write_text(header + '\0' * (MAX_LINE_CHARS + 1))
    with pytest.raises(TrainingDataError) as error:
        CaptionAnnotationDataset(ann_file=str(tmp_path / name))
    assert str(error.value) == (
        f'annotation file {tmp_path / name} line {1 + bool(header)} is over '
        f'{MAX_LINE_CHARS:,} characters long, more than a caption line can '
        f'need: it is damaged, or not an annotation file.')
