# PASCAL VOC 2012 val (1449 images), 21 classes with background, evaluated
# as GroupViT does: short side 448 (long side at most 2048), no flip.
dataset_type = 'PascalVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    # Labels are loaded after the resize: metrics use the original size.
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
# mmseg's IoUMetric (mIoU over every class, ignore index 255) that also
# keeps the per-class values for WORK_DIR/results.json.
test_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'])
