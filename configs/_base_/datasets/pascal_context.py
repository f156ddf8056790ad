# PASCAL Context val (5105 images), 60 classes with background (0), as
# GroupViT evaluates it. Prepare with mmseg's
# tools/dataset_converters/pascal_context.py.
_base_ = ['./pascal_voc12.py']

dataset_type = 'PascalContextDataset'
data_root = 'data/VOCdevkit/VOC2010'
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt'))
