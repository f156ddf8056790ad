# Zero-shot classification of the shipped VOC photos whose label map is
# dominated by one object class (samples/README.md gives the rule; 17
# images), with VOC's 20 object classes as the vocabulary: the ImageNet
# protocol on data that is in the repository.
_base_ = ['./groupvit_imagenet.py']

model = dict(text_encoder=dict(dataset_name='voc20'))
test_dataloader = dict(
    batch_size=4,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='samples/voc2012_sample/VOCdevkit/VOC2012',
        data_prefix='',
        ann_file='ImageSets/Classification/val_dominant.txt',
        metainfo=dict(
            classes=('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
                     'car', 'cat', 'chair', 'cow', 'diningtable', 'dog',
                     'horse', 'motorbike', 'person', 'pottedplant', 'sheep',
                     'sofa', 'train', 'tvmonitor')),
        pipeline={{_base_.test_pipeline}}))
