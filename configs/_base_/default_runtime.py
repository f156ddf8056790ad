# mmseg's runtime defaults plus a test loop: zero-shot configs only test.
_base_ = ['mmseg::_base_/default_runtime.py']

test_cfg = dict(type='TestLoop')
# Keep the log readable: one line per 50 images.
default_hooks = dict(logger=dict(type='LoggerHook', interval=50))
