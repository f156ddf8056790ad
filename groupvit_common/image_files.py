# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The image files a command is given: files, and the images of folders."""
import os
import os.path as osp
import struct
from typing import List, Sequence

from .errors import ImageLoadError
from .files import file_kind

#: File name endings read as images in a folder.
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: How the ``Software`` text of a picture a tool of this package wrote
#: begins (``mmseg-groupvit tools/demo.py``).
SOFTWARE = 'mmseg-groupvit '


def written_by_a_tool(path: str) -> bool:
    """Whether ``path`` is a PNG a tool of this package wrote: its
    ``Software`` text, read from the chunks before the pixels (a panel
    larger than Pillow's pixel bound is one too)."""
    if not path.lower().endswith('.png') or not osp.isfile(path):
        return False  # a FIFO is named by the loader, never opened here
    try:
        with open(path, 'rb') as f:
            if f.read(8) != b'\x89PNG\r\n\x1a\n':
                return False
            while len(head := f.read(8)) == 8:
                length, kind = struct.unpack('>I4s', head)
                if kind == b'IDAT' or length > 1 << 20:
                    return False
                key, _, value = f.read(length + 4)[:length].partition(b'\0')
                if kind == b'tEXt' and key == b'Software':
                    return value.startswith(SOFTWARE.encode())
    except OSError:  # not readable: left to the reader to report
        pass
    return False


def list_images(paths: Sequence[str]) -> List[str]:
    """Image files from files (as given) and folders (sorted, not recursive,
    without the pictures of :func:`written_by_a_tool`: a second run reads
    the photos only); a FIFO or a device is refused unopened."""
    files = []
    for path in paths:
        if osp.isdir(path):
            found = sorted(
                osp.join(path, f) for f in os.listdir(path)
                if f.lower().endswith(IMAGE_EXTS))
            found = [f for f in found if not written_by_a_tool(f)]
            if not found:
                raise FileNotFoundError(
                    f'No images ({", ".join(IMAGE_EXTS)}) in folder {path}')
            files += found
        elif osp.isfile(path):
            files.append(path)
        elif osp.exists(path):
            kind = file_kind(os.stat(path).st_mode)
            raise ImageLoadError(f'{path} is {kind}, not an image file or a '
                                 f'folder. Name image files or folders.')
        else:
            raise FileNotFoundError(f'No such image or folder: {path}')
    return files


def unique_stems(paths: Sequence[str]) -> List[str]:
    """Output name stems: a file's own, or ``STEM_2``, ``STEM_3``, ... for
    the second and later of one name, never the name of another input
    (names compared as a case-insensitive file system does)."""
    stems = [osp.splitext(osp.basename(path))[0] for path in paths]
    own, taken, out = {s.casefold() for s in stems}, set(), []
    for stem in stems:
        name, count = stem, 1
        while name.casefold() in taken or (name != stem
                                           and name.casefold() in own):
            count += 1
            name = f'{stem}_{count}'
        taken.add(name.casefold())
        out.append(name)
    return out
