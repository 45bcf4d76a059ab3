"""What the preflight of tools/train.py costs on a COCO-size annotation file, against mmdet's own loading of it.

    python tools/analysis/preflight_cost.py [--config CONFIG] [--images N] [--work-dir DIR] [--repeats K]
                                            [--data-checks IMAGES]

Writes a COCO-format file the size of instances_train2017.json (118,287 images, 8 polygon instances each: about
460 MB) into DIR, then times the preflight and mmdet's DATASETS.build + full_init of it, each in a fresh process,
and prints seconds and peak memory. With --data-checks, instead: writes IMAGES small JPEGs and times the start-up
checks of l2vit.hooks.DataCheckHook (the image headers, and the categories of the large file read again).
Logic: ``l2vit.analysis.preflight_cost``.
"""
import argparse
import json
import os
import os.path as osp

from l2vit.analysis.benchmark import cpu_info
from l2vit.analysis.preflight_cost import measure, time_data_checks, write_annotations, write_image_layout
from l2vit.analysis.report import machine_text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Time the preflight on a COCO-size annotation file.')
    parser.add_argument('--config', default='configs/demo/mask-rcnn_l2vit-demo_synthetic.py')
    parser.add_argument('--images', type=int, default=118287, help='images in the file (8 instances each)')
    parser.add_argument('--work-dir', default='work_dirs/preflight_cost')
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--data-checks', type=int, metavar='IMAGES', default=0,
                        help="instead: time DataCheckHook's image checks on IMAGES small JPEGs it writes, and its "
                        're-read of the categories of the COCO-size file')
    args = parser.parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    ann_file = osp.join(osp.abspath(args.work_dir), 'instances_large.json')
    size = write_annotations(ann_file, args.images)
    print(f'{ann_file}: {size / 1e6:.0f} MB, {args.images} images; {machine_text(cpu_info(threads=1))}')
    if args.data_checks:
        image_ann_file = write_image_layout(osp.abspath(args.work_dir), args.data_checks)
        print(json.dumps(time_data_checks(osp.abspath(args.work_dir), image_ann_file, ann_file), indent=1))
        return
    print(json.dumps(measure(args.config, osp.abspath(args.work_dir), ann_file, repeats=args.repeats), indent=1))


if __name__ == '__main__':
    main()
