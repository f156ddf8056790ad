# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""ImageNet / CustomDataset in both layouts, and their errors."""
import numpy as np
import pytest
from PIL import Image

from groupvit_common.errors import ClassificationDataError
from mmseg_groupvit.datasets import CustomDataset, ImageNet


def infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


def write_image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def test_wnid_folders_get_the_sorted_wnid_index(tmp_path):
    # Labels by hand: tench is 0, goldfish 1, toilet paper 999.
    for wnid, name in (('n15075141', 'a.JPEG'), ('n01443537', 'b.JPEG'),
                       ('n01443537', 'c.jpeg'), ('n01440764', 'd.JPEG')):
        write_image(tmp_path / 'val' / wnid / name)
    (tmp_path / 'val' / 'n01440764' / 'notes.txt').write_text('x')
    ds = ImageNet(data_root=str(tmp_path), data_prefix='val')
    got = sorted(
        (p.split('/')[-2] + '/' + p.split('/')[-1], label)
        for p, label in ((d['img_path'], d['gt_label']) for d in infos(ds)))
    assert got == [('n01440764/d.JPEG', 0), ('n01443537/b.JPEG', 1),
                   ('n01443537/c.jpeg', 1), ('n15075141/a.JPEG', 999)]
    assert len(ds.metainfo['classes']) == 1000


def test_annotation_file(tmp_path):
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'val.txt').write_text(
        'ILSVRC2012_val_00000001.JPEG 65\n\nsub dir/x y.JPEG 999\n'
        'n15075141/z.JPEG 999\n')
    ds = ImageNet(
        data_root=str(tmp_path), data_prefix='val', ann_file='meta/val.txt')
    assert [(d['img_path'], d['gt_label']) for d in infos(ds)
            ] == [(str(tmp_path / 'val' / 'ILSVRC2012_val_00000001.JPEG'), 65),
                  (str(tmp_path / 'val' / 'sub dir/x y.JPEG'), 999),
                  (str(tmp_path / 'val' / 'n15075141/z.JPEG'), 999)]


def test_annotation_file_saved_with_a_byte_order_mark(tmp_path):
    """A list saved by a Windows editor (byte-order mark, CRLF): its first
    image was looked for as '\ufeffa.JPEG', not found."""
    (tmp_path / 'val.txt').write_bytes(b'\xef\xbb\xbfa.JPEG 3\r\nb.JPEG 4\r\n')
    ds = ImageNet(data_root=str(tmp_path), ann_file='val.txt')
    assert [(d['img_path'], d['gt_label'])
            for d in infos(ds)] == [(str(tmp_path / 'a.JPEG'), 3),
                                    (str(tmp_path / 'b.JPEG'), 4)]


def test_custom_folders_name_the_classes(tmp_path):
    for cls in ('dog', 'cat'):
        write_image(tmp_path / cls / 'a.png')
    ds = CustomDataset(data_prefix=str(tmp_path))
    assert ds.metainfo['classes'] == ('cat', 'dog')
    assert sorted(d['gt_label'] for d in infos(ds)) == [0, 1]


def test_class_folders_are_labelled_by_the_given_class_names(tmp_path):
    """Classes given in another order than the sorted folders: a folder's
    label is its name's place among them (the cat folder was labelled 0,
    'dog'); a folder that is no class is refused."""
    for cls in ('cat', 'dog'):
        write_image(tmp_path / cls / 'a.png')
    ds = CustomDataset(
        data_prefix=str(tmp_path), metainfo=dict(classes=('dog', 'cat')))
    assert sorted(
        (ds.metainfo['classes'][d['gt_label']], d['img_path'].split('/')[-2])
        for d in infos(ds)) == [('cat', 'cat'), ('dog', 'dog')]
    write_image(tmp_path / 'cow' / 'a.png')
    with pytest.raises(ClassificationDataError, match=r"known ones.*'cow'"):
        CustomDataset(
            data_prefix=str(tmp_path), metainfo=dict(classes=('dog', 'cat')))


@pytest.mark.parametrize(
    'layout, match', [
        ('empty', 'no class folders'),
        ('no_images', 'no images'),
        ('unknown_wnid', r"not among the 1000 known ones.*'n99999999'"),
        ('missing', 'does not exist'),
    ],
    ids=['empty', 'no_images', 'unknown_wnid', 'missing'])
def test_folder_errors(tmp_path, layout, match):
    root = tmp_path / 'val'
    root.mkdir()
    if layout == 'no_images':
        (root / 'n01440764').mkdir()
    elif layout == 'unknown_wnid':
        write_image(root / 'n01440764' / 'a.JPEG')
        write_image(root / 'n99999999' / 'a.JPEG')
    elif layout == 'missing':
        root = tmp_path / 'nowhere'
    with pytest.raises(ClassificationDataError, match=match):
        ImageNet(data_prefix=str(root))


@pytest.mark.parametrize(
    'line, match', [
        ('a.JPEG', 'line 2 .* has no label'),
        ('a.JPEG 1000', r'label 1000 is out of range for 1000 classes'),
        ('a.JPEG -1', 'label -1 is out of range'),
        ('a.JPEG cat', "label 'cat' is not an integer"),
        ('./b.JPEG 4', r"line 2 \('./b.JPEG 4'\) repeats the image of line 1"),
        ('n01440764/x.JPEG 1', r'in the folder of class 0 \(n01440764\) but '
         'labelled 1'),
    ],
    ids=[
        'no_label', 'too_large', 'negative', 'not_integer', 'repeated',
        'other_folder'
    ])
def test_annotation_errors(tmp_path, line, match):
    (tmp_path / 'val.txt').write_text(f'b.JPEG 3\n{line}\n')
    with pytest.raises(ClassificationDataError, match=match):
        ImageNet(data_root=str(tmp_path), ann_file='val.txt')


def test_annotation_file_needs_classes(tmp_path):
    (tmp_path / 'val.txt').write_text('b.JPEG 3\n')
    with pytest.raises(ClassificationDataError, match='class names'):
        CustomDataset(data_root=str(tmp_path), ann_file='val.txt')
