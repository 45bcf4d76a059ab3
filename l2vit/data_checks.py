"""Checks of a run's datasets, on the datasets the Runner built (``l2vit.hooks.DataCheckHook`` runs them): data that
would train wrong without any error is named before the first iteration, with its fix.

Each check reads what the library's dataset holds (``get_data_info``: ``img_path``, ``height``, ``width``,
``seg_map_path``; its ``metainfo``) and the files' headers, not the pixels:

* ``category_problems``: COCO category names in the annotation file that are not among the config's ``classes``
  (mmdet's ``CocoDataset`` drops their annotations, and the images left without any, silently). A near match of a
  config class (case, or difflib) is a likely typo, and a config class without any category, an error; other
  categories (training on a subset of COCO's classes) are a warning with what is dropped.
* ``image_problems``: missing, empty or unreadable image files; a size (as the pipeline's loader sees it, after EXIF
  orientation) other than the annotation's ``height``/``width`` or the label map's; EXIF orientation that the loader
  applies to the pixels but nothing applies to the boxes, masks or label maps.
* ``label_map_problems``: label maps that are not single-channel (header); values that the pipeline's own
  ``LoadAnnotations`` (``reduce_zero_label``, ``label_map``) turns into neither a class nor the ignore index, or
  that leave every pixel ignored, on an evenly spaced sample of at most ``LABEL_SAMPLE`` maps (decoding every map
  would cost a pass over the data; ``batch_label_problem`` checks each training batch instead).
"""
import copy
import difflib
import gc
import json
import os
import os.path as osp
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

#: How many label maps ``label_map_problems`` decodes (evenly spaced over the dataset).
LABEL_SAMPLE = 64
#: How many files a message names.
SHOWN = 5
IGNORE_INDEX = 255
#: Orientation values that swap width and height.
TRANSPOSING = (5, 6, 7, 8)


def leaf_datasets(dataset, key: str) -> List[Tuple[str, object]]:
    """``[(config key, dataset)]`` for the datasets under dataset wrappers (mmengine's ``ConcatDataset``,
    ``RepeatDataset``, ``ClassBalancedDataset``, mmdet's ``MultiImageMixDataset``)."""
    inner = getattr(dataset, 'datasets', None)
    if isinstance(inner, (list, tuple)):
        return [leaf for i, d in enumerate(inner) for leaf in leaf_datasets(d, f'{key}.datasets.{i}')]
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and hasattr(inner, '__getitem__'):
        return leaf_datasets(inner, f'{key}.dataset')
    return [(key, dataset)]


def _samples(dataset) -> Iterator[dict]:
    for index in range(len(dataset)):
        yield dataset.get_data_info(index)


def _shown(items: Sequence[str]) -> str:
    return ', '.join(map(str, items[:SHOWN])) + (f' (and {len(items) - SHOWN} more)' if len(items) > SHOWN else '')


def _messages(found: Sequence[Tuple[Sequence[str], str]]) -> List[str]:
    """One message per non-empty list of files: its text with ``{n}`` (how many) and ``{files}`` (a few) filled in."""
    return [text.format(n=len(files), files=_shown(files)) for files, text in found if files]


def _pipeline_step(dataset, name: str) -> Tuple[Optional[int], object]:
    """The index and object of the pipeline's first transform of class ``name`` (``LoadImageFromFile``,
    ``LoadAnnotations``), or ``(None, None)``."""
    transforms = getattr(getattr(dataset, 'pipeline', None), 'transforms', None) or []
    return next(((i, t) for i, t in enumerate(transforms) if type(t).__name__ == name), (None, None))


# ------------------------------------------------------------------------------------------------ COCO categories
def read_categories(ann_file: str) -> Tuple[dict, List[Tuple[int, int]]]:
    """``({category id: name}, [(image_id, category_id) per annotation])`` of a COCO annotation file (the library
    deleted its own parse after loading), parsed with the cyclic garbage collector paused (its collections would
    traverse the millions of new objects; see ``l2vit.apis.checks._loading``)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        with open(ann_file) as f:
            data = json.load(f)
        categories = {c['id']: c['name'] for c in data.get('categories', [])}
        pairs = [(a.get('image_id'), a.get('category_id')) for a in data.get('annotations', [])]
        del data
    finally:
        if collecting:
            gc.enable()
    return categories, pairs


def category_problems(dataset, key: str) -> Tuple[List[str], List[str]]:
    """(errors, warnings) about the categories of a COCO-format dataset (one with ``cat_ids``: mmdet's
    ``CocoDataset`` and its subclasses) that are not among its ``classes``."""
    ann_file = getattr(dataset, 'ann_file', None)
    classes = list((dataset.metainfo or {}).get('classes') or [])
    if getattr(dataset, 'cat_ids', None) is None or not ann_file or not osp.isfile(ann_file) or not classes:
        return [], []
    categories, pairs = read_categories(ann_file)
    kept = {i for i, name in categories.items() if name in classes}
    extra = {name for i, name in categories.items() if i not in kept}
    dropped = Counter(cat for _, cat in pairs if cat not in kept)
    images = {}  # image id -> whether it keeps an annotation
    for image, cat in pairs:
        images[image] = images.get(image, False) or cat in kept
    lost_images = sum(1 for keeps in images.values() if not keeps)
    names = {name: i for i, name in categories.items()}
    errors, typos = [], set()
    classes_key = f'{key}.metainfo.classes'
    for cls in classes:
        if cls in names:
            continue
        near = [n for n in extra if n.lower() == str(cls).lower()] or difflib.get_close_matches(str(cls), extra, 1)
        if near:
            typos.add(near[0])
            errors.append(f"{ann_file}: the config's class {cls!r} is not a category of the file, which has {near[0]!r}"
                          f' (a likely typo): mmdet drops its {dropped[names[near[0]]]} annotations. Fix: rename the '
                          f"category in the file, or the class in the config's classes ({classes_key}).")
        else:
            errors.append(f"{ann_file}: the config's class {cls!r} ({classes_key}) has no category in the file "
                          f'(its categories: {_shown(sorted(names))}): nothing of it would be learned. Fix the '
                          f'classes, or the file.')
    if errors and lost_images:
        errors.append(f'  With these classes, {lost_images} of the {len(images)} annotated images of {ann_file} '
                      f'would keep no annotation (dropped from training).')
    plain = sorted(extra - typos)
    warnings = []
    if plain:
        count = sum(dropped[names[n]] for n in plain)
        warnings.append(f"{ann_file}: {len(plain)} categories are not among the config's classes ({classes_key}): "
                        f'{_shown(plain)}; mmdet drops their {count} annotations, and the {lost_images} images left '
                        f'without any. Fine when training on a subset of the classes; otherwise add them.')
    return errors, warnings


# ---------------------------------------------------------------------------------------------------- image files
def loader_applies_orientation(dataset) -> Tuple[bool, Optional[int]]:
    """Whether the pipeline's ``LoadImageFromFile`` rotates the pixels by the EXIF orientation (mmcv's
    ``color_type`` 'color' and 'grayscale' do, with the cv2 and pillow backends), and its index in the pipeline."""
    index, load = _pipeline_step(dataset, 'LoadImageFromFile')
    if load is None:
        return False, None
    color_type = str(getattr(load, 'color_type', 'color'))
    return 'ignore_orientation' not in color_type and color_type != 'unchanged', index


def read_header(path: str) -> Tuple[Optional[str], Tuple[int, int], int, int]:
    """``(problem or None, (height, width) as stored, EXIF orientation, channels)`` from the file's header only
    (PIL opens lazily: no pixel is decoded)."""
    from PIL import Image, UnidentifiedImageError
    try:
        if os.stat(path).st_size == 0:
            return 'empty (0 bytes)', (0, 0), 1, 0
        with Image.open(path) as img:
            exif = img.info.get('exif')  # read with the header (JPEG's APP1); getexif() may decode a PNG
            orientation = 1
            if exif:
                tags = Image.Exif()
                tags.load(exif)
                orientation = tags.get(0x0112, 1)
            return None, (img.height, img.width), orientation, len(img.getbands())
    except FileNotFoundError:
        return 'missing', (0, 0), 1, 0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return f'not readable as an image ({type(err).__name__}: {err})', (0, 0), 1, 0


def _read_headers(paths: Sequence[str]) -> list:
    """``read_header`` of every path, in threads (the reads wait on the disk, not on Python)."""
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 4)) as pool:
        return list(pool.map(read_header, paths, chunksize=64))


def image_problems(dataset, key: str) -> List[str]:
    """Missing, empty or unreadable images; images whose size as loaded differs from the annotation's
    ``height``/``width`` (or from the label map's); EXIF orientations the loader applies to the pixels only.

    An orientation that swaps the sides is accepted when the annotation's size is the rotated one (the annotation
    was made on the rotated view, which is what the loader gives), and any orientation is when the samples have no
    geometry to disagree with (classification: no ``height``/``width``, no label map)."""
    samples = [(s.get('img_path'), s.get('height'), s.get('width'), s.get('seg_map_path'))
               for s in _samples(dataset)]
    paths = [s[0] for s in samples if isinstance(s[0], str)]
    if not paths or any('://' in p for p in paths[:1]):
        return []  # remote storage (backend_args): not read here
    rotates, load_index = loader_applies_orientation(dataset)
    headers = dict(zip(paths, _read_headers(paths)))
    label_paths = [s[3] for s in samples if isinstance(s[3], str)]
    labels = dict(zip(label_paths, _read_headers(label_paths)))
    unreadable, wrong_size, oriented = [], [], []
    for path, height, width, seg in samples:
        if not isinstance(path, str):
            continue
        problem, stored, orientation, _ = headers[path]
        if problem:
            unreadable.append(f'{path} ({problem})')
            continue
        loaded = stored[::-1] if rotates and orientation in TRANSPOSING else stored
        expected = (height, width) if height and width else (labels[seg][1] if seg in labels else None)
        if rotates and orientation != 1 and expected and not (loaded == tuple(expected) and loaded != stored):
            oriented.append(f'{path} (orientation {orientation})')
        elif expected and tuple(expected) != (0, 0) and loaded != tuple(expected):
            source = 'annotation' if height and width else 'label map'
            wrong_size.append(f'{path} ({loaded[1]}x{loaded[0]}, the {source} says {expected[1]}x{expected[0]})')
    step = f'{key}.pipeline.{load_index}.color_type'
    return _messages([
        (unreadable, f'{{n}} of the {len(samples)} images of {key} cannot be read: {{files}}. Fix: restore or '
         f're-save them, or remove them from the annotations.'),
        (wrong_size, f'{{n}} images of {key} have another size than their annotation (width x height): {{files}}; '
         f'their boxes, masks or label maps would not fit the pixels. Fix: the annotations (or the images).'),
        (oriented, f'{{n}} images of {key} carry an EXIF orientation that LoadImageFromFile applies to the pixels '
         f'but not to the boxes, masks or label maps: {{files}}. Fix: --cfg-options {step}=color_ignore_orientation '
         f'(the annotations are of the stored pixels), or re-save the images with the rotation applied and the '
         f'orientation tag removed.')])


# ---------------------------------------------------------------------------------------------------- label maps
def label_map_problems(dataset, key: str) -> List[str]:
    """Label maps that are not single-channel (every header), and label values that the pipeline's own
    ``LoadAnnotations`` makes neither a class (``< len(classes)``) nor ignored, or with which every pixel is
    ignored (at most ``LABEL_SAMPLE`` maps, evenly spaced, decoded)."""
    paths = [s.get('seg_map_path') for s in _samples(dataset)]
    paths = [p for p in paths if isinstance(p, str) and '://' not in p]
    if not paths:
        return []
    headers = _read_headers(paths)
    # COCO panoptic PNGs hold segment ids as RGB (id = R + 256 G + 256^2 B), read by mmdet's LoadPanopticAnnotations.
    panoptic = _pipeline_step(dataset, 'LoadPanopticAnnotations')[1] is not None
    colour = [f'{p} ({c} channels)' for p, (problem, _, _, c) in zip(paths, headers)
              if not problem and c > 1 and not panoptic]
    unreadable = [f'{p} ({problem})' for p, (problem, _, _, _) in zip(paths, headers) if problem]
    errors = _messages([
        (unreadable, f'{{n}} label maps of {key} cannot be read: {{files}}. Fix: restore or re-save them.'),
        (colour, f'{{n}} of the {len(paths)} label maps of {key} are not single-channel: {{files}}. A label map holds '
         f'one class index per pixel (mode L or P). Fix: convert them, e.g. colours to indices with the dataset '
         f'palette, and save them as 8-bit PNGs.')])
    _, load = _pipeline_step(dataset, 'LoadAnnotations')
    num_classes = len((dataset.metainfo or {}).get('classes') or ())
    if errors or load is None or not num_classes or not hasattr(dataset, 'reduce_zero_label'):  # mmseg's datasets
        return errors
    load = copy.deepcopy(load)  # mmseg's keeps the reduce_zero_label it first sees
    picked = sorted(set(np.linspace(0, len(dataset) - 1, min(LABEL_SAMPLE, len(dataset))).round().astype(int)))
    bad, all_ignored = [], []
    for index in picked:
        info = dataset.get_data_info(int(index))
        if not isinstance(info.get('seg_map_path'), str):
            continue
        info.setdefault('seg_fields', [])
        values = np.unique(load(info)['gt_seg_map'])
        wrong = [int(v) for v in values if v >= num_classes and v != IGNORE_INDEX]
        if wrong:
            bad.append(f'{info["seg_map_path"]} (values {_shown(wrong)})')
        elif set(values.tolist()) <= {IGNORE_INDEX}:
            all_ignored.append(info['seg_map_path'])
    reduce = bool(getattr(dataset, 'reduce_zero_label', False))
    how = (f'with reduce_zero_label=True (0 -> {IGNORE_INDEX} ignored, v -> v - 1)' if reduce else
           'with reduce_zero_label=False')
    if bad:
        errors.append(f'{len(bad)} of {len(picked)} label maps of {key} checked hold values that, {how}, are '
                      f'neither one of the {num_classes} classes (0..{num_classes - 1}) nor {IGNORE_INDEX} '
                      f'(ignored): {_shown(bad)}. Fix: the label maps, the classes, or {key}.reduce_zero_label.')
    if all_ignored and len(all_ignored) == len(picked):
        errors.append(f'every one of the {len(picked)} label maps of {key} checked is ignored at every pixel, {how}, '
                      f'e.g. {_shown(all_ignored)}: the loss would be 0 and nothing learned (0/255 masks?). Fix: '
                      f'the label maps (class indices), or --cfg-options {key}.reduce_zero_label=False.')
    return errors


def ignored_batch(data_batch, ignore_index: int = IGNORE_INDEX) -> List[str]:
    """The label maps of a training batch when every pixel of every one is ``ignore_index`` (the batch teaches
    nothing: loss 0); an empty list otherwise."""
    samples = (data_batch or {}).get('data_samples') if isinstance(data_batch, dict) else None
    labels = [s for s in samples or [] if getattr(s, 'gt_sem_seg', None) is not None]
    if not labels or any(bool((s.gt_sem_seg.data != ignore_index).any()) for s in labels):
        return []
    return [str(s.metainfo.get('seg_map_path')) for s in labels]


def batch_label_problem(data_batch, num_classes: int, ignore_index: int = IGNORE_INDEX) -> Optional[str]:
    """A training batch's segmentation labels (``gt_sem_seg`` of its data samples, packed as 1xHxW) that are not
    single-channel, or with values that are neither a class nor ``ignore_index``, naming the files; None when they
    are fine or the batch has none."""
    samples = (data_batch or {}).get('data_samples') if isinstance(data_batch, dict) else None
    channels, wrong = [], []
    for sample in samples or []:
        gt = getattr(sample, 'gt_sem_seg', None)
        if gt is None:
            continue
        values, path = gt.data, sample.metainfo.get('seg_map_path')
        if values.dim() != 3 or values.shape[0] != 1:
            channels.append(f'{path} (labels of shape {tuple(values.shape)})')
            continue
        bad = values[(values >= num_classes) & (values != ignore_index)]
        if bad.numel():
            wrong.append(f'{path} (values {_shown(bad.unique().tolist())})')
    problems = _messages([
        (channels, 'label maps of this training batch are not single-channel: {files}. Fix: save them as 8-bit '
         'single-channel PNGs of class indices.'),
        (wrong, f'label maps of this training batch hold values that are neither one of the {num_classes} classes '
         f'nor {ignore_index} (ignored): {{files}}. Fix the label maps, the classes or reduce_zero_label.')])
    return ' '.join(problems) or None


def check_dataset(dataset, key: str) -> Tuple[List[str], List[str]]:
    """(errors, warnings) of every check on one dataset (``key``: its config key, for the fixes)."""
    errors, warnings = category_problems(dataset, key)
    errors += image_problems(dataset, key)
    errors += label_map_problems(dataset, key)
    return errors, warnings
