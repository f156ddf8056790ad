# PASCAL VOC 2012 val, 20 classes without background (background pixels are
# ignored), the protocol of later zero-shot papers (e.g. TCL, CVPR 2023).
_base_ = ['./pascal_voc12.py']

test_dataloader = dict(
    dataset=dict(
        metainfo=dict(
            classes=('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
                     'car', 'cat', 'chair', 'cow', 'diningtable', 'dog',
                     'horse', 'motorbike', 'person', 'pottedplant', 'sheep',
                     'sofa', 'train', 'tvmonitor'))))
