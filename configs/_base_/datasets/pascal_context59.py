# PASCAL Context val, 59 classes without background (background pixels are
# ignored), the protocol of later zero-shot papers (e.g. TCL, CVPR 2023).
_base_ = ['./pascal_context.py']

test_dataloader = dict(dataset=dict(type='PascalContextDataset59'))
