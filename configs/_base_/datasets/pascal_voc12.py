# PASCAL VOC 2012 val (1449 images), 21 classes with background, evaluated
# as GroupViT does: short side 448 (long side at most 2048), no flip.
dataset_type = 'PascalVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
# The loading steps keep mmseg's names, which mmseg's inference APIs look
# for (MMSegInferencer swaps LoadImageFromFile for its own loader; it and
# inference_model drop LoadAnnotations). tools/test.py runs them as
# RobustLoadImageFromFile and CheckedLoadAnnotations (same pixels and
# labels, bad files named) and logs the swap.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # mmcv's Resize that names an image it cannot resize.
    dict(type='CheckedResize', scale=(2048, 448), keep_ratio=True),
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
# keeps the per-class values for WORK_DIR/results.json, checks each label
# map and counts pixels exactly; tools/test.py gives it the progress folder
# (WORK_DIR/progress, for --resume) and logs it.
test_evaluator = dict(type='CheckedIoUMetric', iou_metrics=['mIoU'])
