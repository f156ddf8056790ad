# Cityscapes val (500 images), 19 classes (mmseg's CityscapesDataset, labels
# from mmseg's tools/dataset_converters/cityscapes.py).
_base_ = ['./pascal_voc12.py']

dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes'
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline={{_base_.test_pipeline}}))
