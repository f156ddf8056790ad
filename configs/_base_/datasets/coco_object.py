# COCO-Object val2017 (5000 images): background + the 80 COCO thing classes,
# label maps *_instanceTrainIds.png made by
# tools/dataset_converters/coco_object.py (stuff and unlabeled count as
# background, as in GroupViT).
_base_ = ['./pascal_voc12.py']

dataset_type = 'COCOObjectDataset'
data_root = 'data/coco_stuff164k'
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/val2017', seg_map_path='annotations/val2017'),
        pipeline={{_base_.test_pipeline}}))
