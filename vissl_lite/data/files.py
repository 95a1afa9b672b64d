"""Which image files a split reads, and their labels, by DATA.<split>.DATA_SOURCES:

  disk_folder    torchvision's ImageFolder: root/<class>/**/<image>, classes = the sorted
                 sub-folder names, labels their indices; files found recursively; extensions
                 matched case-insensitively; hidden files and folders (a leading dot) and other
                 names ignored. A root holding images and no class folder is unlabelled (-1).
  disk_filelist  VISSL's: DATA_PATHS = [a .npy array of image paths], LABEL_PATHS = [a .npy of
                 their integer labels] (none: unlabelled).
  manifest       a .txt or .csv with one `path` or `path,label` per line (a header line
                 `path[,label]` is skipped); labels all integers, or class names mapped to the
                 indices of their sorted set.
Relative paths in a list are taken from the list's own folder. Nothing is decoded here.
"""

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import numpy as np

# torchvision's IMG_EXTENSIONS, plus the TIFF spellings Pillow reads.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
UNLABELLED = -1


@dataclass
class ImageFiles:
    """A split's files: paths (numpy str array: no per-item Python objects to copy into workers),
    labels (int64, -1 when unlabelled) and class names (empty when labels are plain numbers)."""

    paths: np.ndarray
    labels: np.ndarray
    classes: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labelled(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())

    def first(self, n: int) -> "ImageFiles":
        return ImageFiles(self.paths[:n], self.labels[:n], self.classes)


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _images_below(folder: str) -> List[str]:
    """Image files under `folder`, recursively, hidden entries skipped, in sorted order."""
    found = []
    for parent, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(parent, n) for n in sorted(names) if is_image_name(n)]
    return found


def image_folder(root: str) -> ImageFiles:
    """ImageFolder's listing of `root` (module docstring). ValueError when there is no image."""
    if not Path(root).is_dir():
        raise ValueError("not a folder")
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    classes = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    paths: List[str] = []
    labels: List[int] = []
    if classes:
        for label, name in enumerate(classes):
            found = _images_below(os.path.join(root, name))
            paths += found
            labels += [label] * len(found)
    else:
        paths = [e.path for e in entries if e.is_file() and is_image_name(e.name)]
        labels = [UNLABELLED] * len(paths)
    if not paths:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in it or in class folders below it")
    return ImageFiles(np.array(paths), np.array(labels, dtype=np.int64), classes)


def _resolve(paths, base: Path) -> np.ndarray:
    return np.array([p if os.path.isabs(p) else str(base / p) for p in paths])


def file_list(paths_npy: str, labels_npy: str = "") -> ImageFiles:
    """VISSL's disk_filelist: a .npy of paths and, optionally, a .npy of integer labels."""
    paths = np.load(paths_npy, allow_pickle=False)
    if paths.ndim != 1 or paths.dtype.kind not in "US" or not len(paths):
        raise ValueError(f"{paths_npy}: expected a non-empty 1-D array of path strings, got {paths.dtype} {paths.shape}")
    paths = _resolve([p.decode() if isinstance(p, bytes) else str(p) for p in paths], Path(paths_npy).parent)
    if not labels_npy:
        return ImageFiles(paths, np.full(len(paths), UNLABELLED, dtype=np.int64))
    labels = np.load(labels_npy, allow_pickle=False)
    if labels.shape != (len(paths),) or labels.dtype.kind not in "iu" or (labels < 0).any():
        raise ValueError(f"{labels_npy}: expected {len(paths)} integer labels >= 0, one per path, "
                         f"got {labels.dtype} {labels.shape}")
    return ImageFiles(paths, labels.astype(np.int64))


def manifest(path: str) -> ImageFiles:
    """A .txt / .csv of `path[,label]` lines (module docstring)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [(n, [cell.strip() for cell in row]) for n, row in enumerate(csv.reader(f), 1) if row and row[0].strip()]
    if rows and [c.lower() for c in rows[0][1]] in (["path"], ["path", "label"]):
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path}: no `path[,label]` lines")
    widths = {len(cells) for _, cells in rows}
    if widths - {1, 2} or len(widths) != 1:
        line = next(n for n, cells in rows if len(cells) != len(rows[0][1]) or len(cells) > 2)
        raise ValueError(f"{path}, line {line}: every line is `path` or every line is `path,label`")
    paths = _resolve([cells[0] for _, cells in rows], Path(path).parent)
    if widths == {1}:
        return ImageFiles(paths, np.full(len(paths), UNLABELLED, dtype=np.int64))
    names = [cells[1] for _, cells in rows]
    if all(n.isdigit() for n in names):
        return ImageFiles(paths, np.array([int(n) for n in names], dtype=np.int64))
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    return ImageFiles(paths, np.array([index[n] for n in names], dtype=np.int64), classes)
