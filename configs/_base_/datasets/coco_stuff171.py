# COCO-Stuff-164k val2017, 171 classes (mmseg's COCOStuffDataset, labels
# *_labelTrainIds.png from mmseg's tools/dataset_converters/coco_stuff164k.py).
_base_ = ['./pascal_voc12.py']

dataset_type = 'COCOStuffDataset'
data_root = 'data/coco_stuff164k'
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/val2017', seg_map_path='annotations/val2017'),
        pipeline={{_base_.test_pipeline}}))
