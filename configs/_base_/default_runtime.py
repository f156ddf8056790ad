# mmseg's runtime defaults plus a test loop: zero-shot configs only test.
_base_ = ['mmseg::_base_/default_runtime.py']

test_cfg = dict(type='TestLoop')
# Keep the log readable: one line per 50 images. The visualization hook
# draws only when tools/test.py gets --show or --show-dir, and then every
# image (mmseg's default interval paints one image in 50).
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    visualization=dict(type='SegVisualizationHook', interval=1))
# Prediction pictures (tools/test.py --show-dir): half photo, half class
# colour; mmseg's default (0.8) hides the photo. MMSegInferencer sets its
# own on every call (its `opacity` argument, 0.8 unless given).
visualizer = dict(alpha=0.5)
# The published GCC+YFCC weights, downloaded once into torch hub's cache and
# verified (docs/weights.md); tools/test.py's CHECKPOINT replaces them.
load_from = ('https://github.com/xvjiarui/GroupViT/releases/download/v1.0.0/'
             'group_vit_gcc_yfcc_30e-879422e0.pth')
