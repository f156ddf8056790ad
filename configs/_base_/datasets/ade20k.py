# ADE20K val (2000 images), 150 classes (mmseg's ADE20KDataset, which ignores
# the "other" label 0).
_base_ = ['./pascal_voc12.py']

dataset_type = 'ADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016'
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline={{_base_.test_pipeline}}))
