"""The demos: drawing a detector's or a segmentor's predictions on images, and the ``make demo`` / ``make demo-seg``
pipelines (generate data, train, evaluate, draw), each step an ordinary command of this repository's tools."""
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from ..errors import ToolError
from .paths import check_device, writable_dir

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


# ---------------------------------------------------------------------------------------------- drawing on images
def list_images(image: str, config: str, checkpoint: str, max_images: int = 8) -> List[str]:
    """The images to draw (a file, or the first ``max_images`` of a folder in name order); checks that the config
    and the checkpoint exist too, so that a typo stops the demo before any model is built."""
    if max_images < 1:
        raise ToolError(f'--max-images must be at least 1, got {max_images}')
    if osp.isdir(image):
        files = sorted(f for f in os.listdir(image) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise ToolError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in folder {image}')
        images = [osp.join(image, f) for f in files[:max_images]]
    elif osp.isfile(image):
        images = [image]
    else:
        raise ToolError(f'image not found: {image}')
    for path, what in ((config, 'config'), (checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise ToolError(f'{what} not found: {path}')
    return images


def read_image(path: str):
    """The image at ``path`` as an RGB array, or a ``ToolError`` saying why it cannot be read."""
    import mmcv
    if osp.getsize(path) == 0:
        raise ToolError(f'cannot read image {path}: the file is empty (0 bytes)')
    try:
        image = mmcv.imread(path, channel_order='rgb')
    except Exception:  # OpenCV raises cv2.error for undecodable bytes
        image = None
    if image is None:
        raise ToolError(f'cannot read image {path}: it is not an image OpenCV can decode (a broken download, or a '
                        f'file of another kind with an image\'s name?)')
    return image


def _draw(init: Callable, inference: Callable, visualizers, images: Sequence[str], config: str, checkpoint: str,
          out_dir: str, device: str, dataset_meta: Callable, describe: Callable,
          visualizer_settings: Optional[dict] = None, **draw_options) -> None:
    """Build the model with ``init`` (mmdet's init_detector, mmseg's init_model; the checkpoint is read weights-only,
    which importing l2vit registered; one whose weights do not fit the config is refused) and its visualizer from the
    library's ``visualizers`` registry, then predict, draw and describe each image. An image that cannot be read is
    named on stderr and skipped; the others are drawn, then a ``ToolError`` lists the skipped ones."""
    from mmengine.runner import CheckpointLoader

    from ..checkpoint import check_checkpoint_fits
    check_device(device)
    writable_dir(out_dir, '--out-dir')
    model = init(config, checkpoint, device=device)
    # init loaded it with strict=False, keeping what does not fit at its random initialisation: read it again to check.
    for note in check_checkpoint_fits(CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu'), model,
                                      checkpoint):
        print(f'note: {checkpoint}: {note} (not used)', file=sys.stderr)
    # Without the config's vis_backends (a LocalVisBackend wants a save_dir, and says so): the PNGs are written here.
    visualizer = visualizers.build(dict(model.cfg.visualizer, vis_backends=None))
    visualizer.dataset_meta = dataset_meta(model)
    for key, value in (visualizer_settings or {}).items():
        setattr(visualizer, key, value)
    skipped = []
    for path in images:
        try:
            image = read_image(path)
        except ToolError as err:
            print(f'error: {err}; skipped', file=sys.stderr, flush=True)
            skipped.append(path)
            continue
        result = inference(model, path)
        target = osp.join(out_dir, osp.splitext(osp.basename(path))[0] + '.png')
        visualizer.add_datasample('prediction', image, data_sample=result, draw_gt=False, show=False, out_file=target,
                                  **draw_options)
        print(f'{path}: {describe(model, result)} -> {target}')
    if skipped:
        raise ToolError(f'{len(skipped)} of {len(images)} images could not be read and were skipped (named above): '
                        f'{", ".join(skipped)}; the other {len(images) - len(skipped)} are drawn in {out_dir}.')


def draw_detections(images: Sequence[str], config: str, checkpoint: str, out_dir: str, score_thr: float = 0.3,
                    device: str = 'cpu') -> None:
    """One PNG per image in ``out_dir``: the detector's boxes and masks scoring at least ``score_thr``."""
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS

    def describe(model, result) -> str:
        return f'{int((result.pred_instances.scores >= score_thr).sum())} detections >= {score_thr}'

    _draw(init_detector, inference_detector, VISUALIZERS, images, config, checkpoint, out_dir, device,
          lambda model: model.dataset_meta, describe, pred_score_thr=score_thr)


def draw_segmentation(images: Sequence[str], config: str, checkpoint: str, out_dir: str, opacity: float = 0.5,
                      device: str = 'cpu') -> None:
    """One PNG per image in ``out_dir``: each predicted class painted over it in its palette colour, and its name."""
    if not 0 <= opacity <= 1:
        raise ToolError(f'--opacity must be between 0 and 1, got {opacity}')
    import numpy as np
    from mmseg.apis import inference_model, init_model
    from mmseg.registry import VISUALIZERS

    def describe(model, result) -> str:
        classes = model.dataset_meta['classes']
        pred = result.pred_sem_seg.data.cpu().numpy().ravel()
        counts = np.bincount(pred, minlength=len(classes))
        return ', '.join(f'{classes[i]} {counts[i] / pred.size:.0%}' for i in np.argsort(-counts) if counts[i])

    def meta(model) -> dict:
        return dict(classes=model.dataset_meta['classes'], palette=model.dataset_meta['palette'])

    _draw(init_model, inference_model, VISUALIZERS, images, config, checkpoint, out_dir, device, meta, describe,
          with_labels=True, visualizer_settings=dict(alpha=opacity))


# ------------------------------------------------------------------------------------------ the make demo pipelines
class DemoSteps:
    """The steps of a demo pipeline: each an ordinary command, printed, run in the repository ``root`` and timed;
    a step that fails stops the demo with a ``ToolError`` naming it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.timings: Dict[str, float] = {}

    def run(self, name: str, cmd: Sequence[str]) -> None:
        cmd = [sys.executable, *cmd]
        print(f'\n[demo] {name}: {" ".join(cmd)}', flush=True)
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=self.root)
        if result.returncode != 0:
            raise ToolError(f'the {name} step failed (exit code {result.returncode}); its messages are above. The '
                            f'command was: {" ".join(cmd)}')
        self.timings[name] = time.perf_counter() - start

    def path(self, *parts: str) -> str:
        return osp.join(self.root, *parts)

    def time_line(self) -> str:
        steps = [f'{name} {seconds / 60:.1f} min' for name, seconds in self.timings.items()]
        return '[demo] time: ' + ', '.join(steps + [f'total {sum(self.timings.values()) / 60:.1f} min'])

    def train_test_draw(self, config: str, work_dir: str, data_override: Sequence[str],
                        draw: Sequence[str]) -> tuple:
        """Train ``config``, evaluate its last checkpoint, run the ``draw`` tool with it; (checkpoint, metrics file,
        metrics, pictures folder)."""
        self.run('train', ['tools/train.py', config, '--work-dir', work_dir, *data_override])
        with open(self.path(work_dir, 'last_checkpoint')) as f:  # the Runner writes its last checkpoint's path there
            checkpoint = f.read().strip()
        metrics_file = osp.join(work_dir, 'test_metrics.json')
        self.run('evaluate', ['tools/test.py', config, checkpoint, '--work-dir', work_dir, '--metrics-out',
                              metrics_file, *data_override])
        pictures = osp.join(work_dir, 'predictions')
        tool, image_dir, *options = draw
        self.run('draw', [tool, image_dir, config, checkpoint, '--out-dir', pictures, *options])
        with open(self.path(metrics_file)) as f:
            metrics = json.load(f)
        return checkpoint, metrics_file, metrics, pictures

    def report(self, title: str, metrics: Mapping[str, str], checkpoint: str, metrics_file: str,
               pictures: str) -> None:
        """Print the closing summary: the (formatted) metrics, the time of each step, and where the outputs are."""
        print(f'\n[demo] {title}:')
        for key, value in metrics.items():
            print(f'  {key:18s} {value}')
        print(self.time_line())
        print(f'[demo] checkpoint: {checkpoint}')
        print(f'[demo] metrics:    {metrics_file}')
        print(f'[demo] pictures:   {pictures}/ ({len(os.listdir(self.path(pictures)))} PNGs)')


def data_root_options(data_root: str, default_root: str, extra: Sequence[str] = ()) -> List[str]:
    """``--cfg-options`` pointing the train/val/test datasets (and ``extra`` keys) at ``data_root``; nothing when it
    is the config's own ``default_root``."""
    if data_root == default_root:
        return []
    return ['--cfg-options', f'train_dataloader.dataset.data_root={data_root}/',
            f'val_dataloader.dataset.data_root={data_root}/', f'test_dataloader.dataset.data_root={data_root}/',
            *extra]


def generate_data(steps: DemoSteps, data_root: str, present: bool, tool: str) -> None:
    """Write a synthetic dataset to ``data_root`` with ``tools/datasets/<tool>`` unless it is ``present``."""
    if present:
        print(f'[demo] using the synthetic dataset already in {data_root}/ (delete it to regenerate)')
    else:
        steps.run('generate data', [f'tools/datasets/{tool}', data_root])


def synthetic_coco(steps: DemoSteps, data_root: str) -> List[str]:
    """Write ``make demo``'s synthetic COCO set to ``data_root`` unless it is there; return the ``--cfg-options``
    that point the demo config at it."""
    generate_data(steps, data_root, all(
        osp.isfile(steps.path(data_root, 'annotations', f'instances_{s}2017.json')) for s in ('train', 'val')),
        'make_synthetic_coco.py')
    return data_root_options(data_root, 'data/synthetic_coco', [
        f'val_evaluator.ann_file={data_root}/annotations/instances_val2017.json',
        f'test_evaluator.ann_file={data_root}/annotations/instances_val2017.json'])


DETECTION_DEMO_CONFIG = 'configs/demo/mask-rcnn_l2vit-demo_synthetic.py'
SEGMENTATION_DEMO_CONFIG = 'configs/demo/l2vit-demo_upernet_synthetic.py'


def detection_demo(root: str, work_dir: str = 'work_dirs/demo_maskrcnn', data_root: str = 'data/synthetic_coco',
                   num_images: int = 6) -> None:
    """``make demo``: synthetic COCO shapes -> Mask R-CNN + a small L2ViT trained from scratch -> COCO bbox/segm mAP
    on the held-out split -> drawn predictions -> where each block attends on one val image."""
    steps, data_root = DemoSteps(root), data_root.rstrip('/')
    data_override = synthetic_coco(steps, data_root)
    checkpoint, metrics_file, metrics, pictures = steps.train_test_draw(
        DETECTION_DEMO_CONFIG, work_dir, data_override,
        ['tools/demo/image_demo.py', osp.join(data_root, 'val2017'), '--max-images', str(num_images),
         '--score-thr', '0.5'])
    attention = osp.join(work_dir, 'attention')
    first_val = osp.join(data_root, 'val2017', '000000000001.jpg')
    steps.run('attention maps', ['tools/analysis/attention_maps.py', DETECTION_DEMO_CONFIG, checkpoint, first_val,
                                 '--out-dir', attention])
    keys = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50')
    steps.report('Mask R-CNN + L2ViT (small, from scratch) on the synthetic shapes val split',
                 {key: f'{metrics[key]:.3f}' for key in keys}, checkpoint, metrics_file, pictures)
    print(f'[demo] attention:  {attention}/ (per-block maps, stats.json, stats_by_depth.png)')


def segmentation_demo(root: str, work_dir: str = 'work_dirs/demo_upernet', data_root: str = 'data/synthetic_ade',
                      num_images: int = 6) -> None:
    """``make demo-seg``: synthetic ADE20K-layout scenes -> UperNet + a small L2ViT trained from scratch -> mIoU on
    the held-out split -> drawn predictions."""
    steps, data_root = DemoSteps(root), data_root.rstrip('/')
    folders = ('images/training', 'images/validation', 'annotations/training', 'annotations/validation')
    generate_data(steps, data_root, all(osp.isdir(steps.path(data_root, folder)) for folder in folders),
                  'make_synthetic_ade.py')
    checkpoint, metrics_file, metrics, pictures = steps.train_test_draw(
        SEGMENTATION_DEMO_CONFIG, work_dir, data_root_options(data_root, 'data/synthetic_ade'),
        ['tools/demo/seg_demo.py', osp.join(data_root, 'images', 'validation'), '--max-images', str(num_images)])
    # mmseg's IoUMetric reports percentages.
    steps.report('UperNet + L2ViT (small, from scratch) on the synthetic scenes val split',
                 {key: f'{metrics[key]:.2f} %' for key in ('mIoU', 'mAcc', 'aAcc')}, checkpoint, metrics_file,
                 pictures)


#: ``make demo-compare``'s backbones and run length, sized for about 15 minutes on a 2-core CPU (README).
COMPARE_DEMO_BACKBONES = ('l2vit-t', 'swin-t', 'convnext-t')
COMPARE_DEMO_ITERS = 180
COMPARE_DEMO_EVAL_INTERVAL = 90
#: ``make demo-ablation``'s variants, seeds and run length, sized for about 15 minutes on a 2-core CPU: two variants
#: trained long enough to leave noise-level mAP (60 iterations did not; docs/ablation.md).
ABLATION_DEMO_BACKBONES = ('l2vit-t:full', 'l2vit-t:no-lcm')
ABLATION_DEMO_SEEDS = (0, 1, 2)
ABLATION_DEMO_ITERS = 200
ABLATION_DEMO_EVAL_INTERVAL = 100
#: ... evaluated on the first 50 of the 200 val images (the same for every run; a fourth of the evaluation time).
ABLATION_DEMO_VAL_IMAGES = 50


def compare_demo(root: str, out_dir: str = 'work_dirs/demo_compare', data_root: str = 'data/synthetic_coco',
                 backbones: Sequence[str] = COMPARE_DEMO_BACKBONES, iters: int = COMPARE_DEMO_ITERS,
                 eval_interval: int = COMPARE_DEMO_EVAL_INTERVAL, seeds: Sequence[int] = (),
                 cfg_options: Sequence[str] = ()) -> None:
    """``make demo-compare``: ``make demo``'s synthetic COCO shapes and Mask R-CNN, with L2ViT and with Swin and
    ConvNeXt narrowed to the same backbone parameter count, compared by ``tools/analysis/compare_backbones.py``
    (FLOPs, speed and memory, then ``iters`` iterations of training each, evaluated every ``eval_interval``, once per
    seed of ``seeds``: the config's seed if none; ``cfg_options``: more ``--cfg-options``). ``make demo-ablation``:
    the same with L2ViT's ablation variants (``l2vit-t:<variant>``) for ``backbones``."""
    steps, data_root = DemoSteps(root), data_root.rstrip('/')
    data_override = synthetic_coco(steps, data_root)
    if cfg_options:
        data_override = [*(data_override or ['--cfg-options']), *cfg_options]
    steps.run('compare', ['tools/analysis/compare_backbones.py', DETECTION_DEMO_CONFIG, '--backbones', *backbones,
                          '--train', str(iters), '--eval-interval', str(eval_interval), '--out-dir', out_dir,
                          '--time-size', '224', '--batch', '4', *data_override,
                          *(['--seed', *map(str, seeds)] if seeds else [])])
    print(steps.time_line())
    ablation = ', ablation.json, ablation.md, ablation_*.png' if any(':' in b for b in backbones) else ''
    print(f'[demo] outputs: {out_dir}/ (compare.json, compare.md, compare_curves.png, compare_tradeoff.png{ablation})')
