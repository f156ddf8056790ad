# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/dataset_converters/coco_object.py on hand-made and real inputs."""
import importlib.util
import json
import os
import os.path as osp
import struct
import sys
import weakref
import zlib

import mmseg
import numpy as np
import pytest
from PIL import Image

from mmseg_groupvit.datasets import COCOObjectDataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COCO_SAMPLE = osp.join(REPO, 'samples', 'coco_sample')
SAMPLE_JSON = osp.join(COCO_SAMPLE, 'annotations',
                       'instances_val2017_sample.json')

from tests.conftest import load_script  # noqa: E402

converter = load_script(
    osp.join(REPO, 'tools', 'dataset_converters', 'coco_object.py'),
    'coco_object_converter')

# (raw pixel = COCO category id - 1, expected COCO-Object label, class name)
# worked out by hand from COCO's category list, whose unused thing ids are
# 12, 26, 29, 30, 45, 66, 68, 69, 71, 83 and 91.
HAND_TABLE = [
    (0, 1, 'person'),  # id 1
    (1, 2, 'bicycle'),  # id 2
    (10, 11, 'fire hydrant'),  # id 11
    (11, 0, None),  # id 12 unused
    (12, 12, 'stop sign'),  # id 13: 12th thing because 12 is unused
    (24, 24, 'giraffe'),  # id 25
    (25, 0, None),  # id 26 unused
    (26, 25, 'backpack'),  # id 27
    (28, 0, None),  # id 29 unused
    (29, 0, None),  # id 30 unused
    (30, 27, 'handbag'),  # id 31
    (43, 40, 'bottle'),  # id 44
    (44, 0, None),  # id 45 unused
    (45, 41, 'wine glass'),  # id 46
    (64, 60, 'bed'),  # id 65
    (65, 0, None),  # id 66 unused
    (66, 61, 'dining table'),  # id 67
    (69, 62, 'toilet'),  # id 70
    (70, 0, None),  # id 71 unused
    (71, 63, 'tv'),  # id 72
    (81, 73, 'refrigerator'),  # id 82
    (82, 0, None),  # id 83 unused
    (83, 74, 'book'),  # id 84
    (89, 80, 'toothbrush'),  # id 90, the last thing
    (90, 0, None),  # id 91 unused
    (91, 0, None),  # id 92 'banner', the first stuff class
    (150, 0, None),  # stuff
    (181, 0, None),  # id 182 'wood', the last stuff class
    (255, 0, None),  # unlabeled
]


def write_png(path, array):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def read_png(path):
    return np.asarray(Image.open(path))


def make_raw_map():
    """A 4 x (3 * len(HAND_TABLE)) raw map: one 4x3 block per table row,
    plus a different row order in the bottom half."""
    raw_values = [raw for raw, _, _ in HAND_TABLE]
    top = np.repeat(np.asarray(raw_values), 3)[None, :].repeat(2, axis=0)
    bottom = np.repeat(np.asarray(raw_values[::-1]), 3)[None, :].repeat(
        2, axis=0)
    return np.concatenate([top, bottom])


def expected_map():
    labels = [label for _, label, _ in HAND_TABLE]
    top = np.repeat(np.asarray(labels), 3)[None, :].repeat(2, axis=0)
    bottom = np.repeat(np.asarray(labels[::-1]), 3)[None, :].repeat(2, axis=0)
    return np.concatenate([top, bottom])


def test_thing_ids_match_a_real_coco_file():
    with open(SAMPLE_JSON) as f:
        categories = json.load(f)['categories']
    assert converter.COCO_THING_IDS == tuple(
        sorted(c['id'] for c in categories))


def test_hand_table_names_match_class_list():
    classes = COCOObjectDataset.METAINFO['classes']
    for raw, label, name in HAND_TABLE:
        if name is not None:
            assert classes[label] == name, (raw, label, name)


def test_raw_maps_pixel_by_pixel(tmp_path, capsys):
    root = tmp_path / 'coco_stuff164k'
    raw = make_raw_map()
    write_png(str(root / 'annotations/val2017/000000000001.png'), raw)
    # Outputs of other converters must be skipped, not converted.
    write_png(
        str(root / 'annotations/val2017/000000000001_labelTrainIds.png'),
        np.zeros_like(raw))
    out = tmp_path / 'out'

    with pytest.warns(UserWarning, match='unused COCO category ids'):
        written = converter.main([str(root), '-o', str(out), '--nproc', '1'])

    assert written == {'val2017': 1}
    report = capsys.readouterr().out
    assert 'wrote 1 label maps' in report and 'skipped 1' in report
    assert 'train2017: no folder' in report
    assert sorted(os.listdir(
        out / 'annotations/val2017')) == ['000000000001_instanceTrainIds.png']
    result = Image.open(out / 'annotations/val2017/'
                        '000000000001_instanceTrainIds.png')
    assert result.mode == 'L'
    np.testing.assert_array_equal(np.asarray(result), expected_map())


def test_default_output_is_next_to_input_and_parallel(tmp_path):
    root = tmp_path / 'coco_stuff164k'
    raw = make_raw_map()
    for split, count in [('train2017', 3), ('val2017', 2)]:
        for i in range(count):
            write_png(str(root / f'annotations/{split}/{i:012d}.png'), raw)

    with pytest.warns(UserWarning, match='unused COCO category ids'):
        written = converter.main([str(root), '--nproc', '2'])

    assert written == {'train2017': 3, 'val2017': 2}
    for split, count in written.items():
        for i in range(count):
            out = root / f'annotations/{split}/{i:012d}_instanceTrainIds.png'
            np.testing.assert_array_equal(read_png(str(out)), expected_map())
    # A second run reads the raw maps again, never its own outputs.
    with pytest.warns(UserWarning):
        assert converter.main([str(root), '--splits', 'val2017']) == {
            'val2017': 2
        }


def test_lut_agrees_with_mmseg_coco_stuff_converter():
    """mmseg's own COCO-Stuff converter maps raw ids to 171 train ids with
    the 80 things first; COCO-Object = thing train id + 1, else 0."""
    path = osp.join(
        osp.dirname(mmseg.__file__), '.mim', 'tools', 'dataset_converters',
        'coco_stuff164k.py')
    if not osp.isfile(path):
        pytest.skip(f'mmseg wheel without its tools: {path}')
    cls_to_train = load_script(path, 'mmseg_coco_stuff164k').clsID_to_trID
    for raw in list(range(182)) + [255]:
        train_id = cls_to_train.get(raw, 255)
        expected = train_id + 1 if train_id < 80 else 0
        assert converter.RAW_TO_OBJECT[raw] == expected, raw


def test_invalid_raw_values_name_the_file(tmp_path):
    root = tmp_path / 'root'
    write_png(str(root / 'annotations/val2017/bad.png'), [[0, 200], [255, 7]])
    with pytest.raises(ValueError, match=r'bad\.png.*\[200\]'):
        converter.main([str(root), '--splits', 'val2017'])


def test_colour_image_is_rejected(tmp_path):
    path = tmp_path / 'annotations/val2017/rgb.png'
    os.makedirs(path.parent)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match='single-channel'):
        converter.main([str(tmp_path), '--splits', 'val2017'])


def test_no_input_found(tmp_path):
    with pytest.raises(FileNotFoundError, match='No COCO-Stuff raw maps'):
        converter.main([str(tmp_path)])


@pytest.mark.parametrize('argv', [
    [],
    ['--instances', 'x.json'],
    ['--instances', 'annotations.json', '-o', 'out'],
    ['root', '--nproc', '0'],
])
def test_bad_command_lines(argv, capsys):
    with pytest.raises(SystemExit):
        converter.parse_args(argv)
    assert 'error' in capsys.readouterr().err


def test_split_from_json_name():
    assert converter.split_from_json_name(
        '/data/coco/annotations/instances_val2017.json') == 'val2017'
    assert converter.split_from_json_name(SAMPLE_JSON) == 'val2017'
    assert converter.split_from_json_name('coco.json') is None


def test_instances_without_pycocotools_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pycocotools', None)
    monkeypatch.setitem(sys.modules, 'pycocotools.mask', None)
    with pytest.raises(ImportError, match='pip install pycocotools'):
        converter.convert_instances(SAMPLE_JSON, 'val2017', 'unused', 1)


# --- input B: COCO instances JSON (needs pycocotools) ----------------------
pycocotools_missing = importlib.util.find_spec('pycocotools') is None
needs_pycocotools = pytest.mark.skipif(
    pycocotools_missing,
    reason='pycocotools is not installed (pip install pycocotools)')


@needs_pycocotools
def test_instances_match_shipped_label_maps(tmp_path, capsys):
    written = converter.main(
        ['--instances', SAMPLE_JSON, '-o',
         str(tmp_path), '--nproc', '1'])
    assert written == {'val2017': 3}
    names = open(osp.join(COCO_SAMPLE, 'val.txt')).read().split()
    agreement = {}
    for name in names:
        ours = read_png(
            str(tmp_path / f'annotations/val2017/{name}_instanceTrainIds.png'))
        shipped = read_png(
            osp.join(COCO_SAMPLE, 'annotations', 'val2017',
                     f'{name}_instanceTrainIds.png'))
        assert ours.shape == shipped.shape
        agreement[name] = float((ours == shipped).mean())
        assert set(np.unique(ours)) == set(np.unique(shipped)), name
    with capsys.disabled():
        print('\nper-image pixel agreement with the shipped maps:', {
            k: round(v, 4)
            for k, v in agreement.items()
        })
    assert min(agreement.values()) >= 0.98, agreement


@needs_pycocotools
def test_overlap_rule_smaller_on_top_and_crowd_included(tmp_path):
    # 8x8 image. A big person box (area 36) and a small dog box (area 4)
    # that overlaps it; the dog is listed first so file order alone would
    # put the person on top. A crowd 'car' region (uncompressed RLE,
    # column-major) covers column 7.
    def box(x0, y0, x1, y1):
        return [[x0, y0, x1, y0, x1, y1, x0, y1]]

    crowd_counts = [56, 8]  # 7 columns of 0s then 1 column of 1s
    coco = {
        'images': [{
            'id': 5,
            'file_name': 'toy.jpg',
            'height': 8,
            'width': 8
        }],
        'annotations': [
            dict(
                id=1,
                image_id=5,
                category_id=18,
                iscrowd=0,
                area=4,
                segmentation=box(4, 4, 6, 6)),  # dog
            dict(
                id=2,
                image_id=5,
                category_id=1,
                iscrowd=0,
                area=36,
                segmentation=box(1, 1, 7, 7)),  # person
            dict(
                id=3,
                image_id=5,
                category_id=3,
                iscrowd=1,
                area=8,
                segmentation=dict(counts=crowd_counts, size=[8, 8])),  # car
        ],
        'categories': [],
    }
    json_file = tmp_path / 'instances_toy.json'
    json_file.write_text(json.dumps(coco))
    converter.main(['--instances', str(json_file), '-o', str(tmp_path)])
    labels = read_png(
        str(tmp_path / 'annotations/toy/toy_instanceTrainIds.png'))

    # Integer-corner boxes cover pixels [x0, x1) x [y0, y1) in pycocotools.
    expected = np.zeros((8, 8), np.uint8)
    expected[1:7, 1:7] = 1  # person, largest, painted first
    expected[:, 7] = 3  # crowd car (area 8) over the background
    expected[4:6, 4:6] = 17  # dog = 17th thing (id 18), smallest, on top
    np.testing.assert_array_equal(labels, expected)


@needs_pycocotools
def test_instances_reject_non_thing_category(tmp_path):
    coco = {
        'images': [{
            'id': 1,
            'file_name': 'a.jpg',
            'height': 4,
            'width': 4
        }],
        'annotations': [
            dict(
                id=9,
                image_id=1,
                category_id=92,
                iscrowd=0,
                area=4,
                segmentation=[[0, 0, 2, 0, 2, 2, 0, 2]])
        ],
    }
    json_file = tmp_path / 'instances_val2017.json'
    json_file.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match='category_id 92'):
        converter.main(['--instances', str(json_file), '-o', str(tmp_path)])


IMAGE = dict(id=1, file_name='a.jpg', height=4, width=4)


@needs_pycocotools
@pytest.mark.parametrize('coco, problem', [
    ([{
        'images': []
    }], ' has no "images" and "annotations" lists'),
    (dict(images={},
          annotations=[]), ' has no "images" and "annotations" lists'),
    (dict(images=[dict(IMAGE, height=None)],
          annotations=[]), ': images[0] has no "height" (a whole number)'),
    (dict(images=[IMAGE, 7], annotations=[]),
     ': images[1] has no "id" (a whole number), "file_name" (text), "height" '
     '(a whole number), "width" (a whole number)'),
    (dict(images=[IMAGE], annotations=[dict(image_id=[1], category_id=1)]),
     ': annotations[0] has no "image_id" (a whole number), "segmentation" '
     '(polygons or an RLE)'),
])
def test_instances_of_another_structure_are_named(coco, problem, tmp_path):
    """A JSON that is not an instances file (a list, a dict of lists, an
    entry without a field or with one of another type): one message naming
    the file and the entry, nothing written (a TypeError or KeyError
    before)."""
    json_file = tmp_path / 'instances_val2017.json'
    json_file.write_text(json.dumps(coco))
    with pytest.raises(ValueError) as error:
        converter.main(['--instances', str(json_file), '-o', str(tmp_path)])
    assert str(error.value) == (f'{json_file}{problem}; expected a COCO '
                                f'instances_*.json file.')
    assert not (tmp_path / 'annotations').exists()


@needs_pycocotools
def test_instances_of_a_huge_image_are_refused(tmp_path):
    """An image entry stating 100000x100000 pixels (10 GB of labels): refused
    before the label map is allocated."""
    json_file = tmp_path / 'instances_val2017.json'
    json_file.write_text(
        json.dumps(
            dict(
                images=[dict(IMAGE, height=100000, width=100000)],
                annotations=[])))
    with pytest.raises(ValueError) as error:
        converter.main(['--instances', str(json_file), '-o', str(tmp_path)])
    assert str(error.value) == (
        f'{json_file}: images[0] states 100000x100000 pixels; a label map is '
        f'1 to 134,217,728 pixels.')


@needs_pycocotools
def test_instances_of_two_images_of_one_name_are_refused(tmp_path):
    """``x/a.jpg`` and ``y/a.jpg`` would write one ``a`` label map, the
    second over the first."""
    json_file = tmp_path / 'instances_val2017.json'
    images = [
        dict(IMAGE, id=1, file_name='x/a.jpg'),
        dict(IMAGE, id=2, file_name='y/a.png')
    ]
    json_file.write_text(json.dumps(dict(images=images, annotations=[])))
    with pytest.raises(ValueError) as error:
        converter.main(['--instances', str(json_file), '-o', str(tmp_path)])
    assert str(error.value) == (
        f"{json_file}: images[0] and images[1] would write one label map, "
        f"a_instanceTrainIds.png (file names 'x/a.jpg' and 'y/a.png'); "
        f"convert one folder at a time.")
    assert not (tmp_path / 'annotations').exists()


@needs_pycocotools
@pytest.mark.parametrize('change, why', [
    (dict(area='big'), "its area is 'big', not a number"),
    (dict(segmentation=[1.0, 2.0, 3.0]), ''),
    (dict(segmentation=[[1.0, 2.0]]), ''),
    (dict(segmentation=[['a', 'b', 'c', 'd', 'e', 'f']]), ''),
    (dict(segmentation=dict(counts='abc')), ''),
    (dict(segmentation=dict(counts=5, size=[4, 4])), ''),
    (dict(segmentation=dict(counts=[16], size=[20, 20])), 'its mask is 20x20'),
])
def test_an_annotation_that_cannot_be_read_is_named(change, why, tmp_path):
    """Fields the conversion reads of another form (pycocotools raises
    TypeError, KeyError, Exception, or an IndexError when painting): one
    line naming the annotation and its image."""
    json_file = tmp_path / 'instances_val2017.json'
    annotation = dict(
        id=7, image_id=1, category_id=18, segmentation=[[0, 0, 3, 0, 3, 3]])
    json_file.write_text(
        json.dumps(
            dict(images=[IMAGE], annotations=[dict(annotation, **change)])))
    with pytest.raises(ValueError) as error:
        converter.main(['--instances', str(json_file), '-o', str(tmp_path)])
    message = str(error.value)
    assert message.startswith("Annotation 7 of image 'a.jpg' (4x4) cannot "
                              "be read (") and '\n' not in message, message
    assert why in message


@needs_pycocotools
def test_instance_masks_are_painted_one_at_a_time(tmp_path, monkeypatch):
    """Each decoded mask is painted and freed before the next is decoded
    (all of them were kept first: 120 MB each for an 11000x12000 image),
    painted in the same order as before: larger areas under smaller."""
    from pycocotools import mask as mask_utils

    decoded, most = [], []  # weak references to masks and their copies

    class Tracked(np.ndarray):

        def __array_finalize__(self, obj):
            decoded.append(weakref.ref(self))

    decode = mask_utils.decode

    def tracked_decode(rle):
        most.append(sum(ref() is not None for ref in decoded))
        return decode(rle).view(Tracked)

    monkeypatch.setattr(mask_utils, 'decode', tracked_decode)
    annotations = [
        dict(
            id=i,
            image_id=1,
            category_id=cid,
            area=area,
            segmentation=[[0, 0, side, 0, side, side, 0, side]])
        for i, (cid, area,
                side) in enumerate([(1, 4, 2), (2, 16, 4), (3, 9, 3), (4, 16,
                                                                       4)])
    ]
    json_file = tmp_path / 'instances_val2017.json'
    json_file.write_text(
        json.dumps(
            dict(
                images=[dict(IMAGE, height=6, width=6)],
                annotations=annotations)))
    converter.main(['--instances', str(json_file), '-o', str(tmp_path)])
    assert most == [0, 0, 0, 0], most
    expected = np.zeros((6, 6), np.uint8)
    expected[:4, :4] = 4  # area 16, the later of two on top
    expected[:3, :3] = 3
    expected[:2, :2] = 1
    np.testing.assert_array_equal(
        read_png(str(tmp_path / 'annotations/val2017/a_instanceTrainIds.png')),
        expected)


def png_header(width, height):
    """A PNG stating ``width`` x ``height`` grey pixels, without them."""

    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data)))

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IEND', b'')


@pytest.mark.parametrize('content, problem', [
    (lambda good: good[:len(good) // 2], 'cannot decode the label map'),
    (lambda good: b'', 'cannot decode the label map'),
    (lambda good: png_header(15000, 15000), 'more than the 134,217,728'),
])
def test_a_damaged_raw_map_is_named(content, problem, tmp_path):
    """A truncated, empty or huge raw map: a user error naming the file
    (an OSError, UnidentifiedImageError or DecompressionBombError before,
    which the tool printed as a traceback)."""
    path = tmp_path / 'annotations/val2017/a.png'
    write_png(str(path), np.arange(64 * 64).reshape(64, 64) % 181)
    path.write_bytes(content(path.read_bytes()))
    with pytest.raises(ValueError) as error:
        converter.main([str(tmp_path), '--splits', 'val2017'])
    message = str(error.value)
    assert str(path) in message and problem in message, message
    assert not (tmp_path / 'annotations/val2017/'
                'a_instanceTrainIds.png').exists()
