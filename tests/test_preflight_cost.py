"""tools/analysis/preflight_cost.py's pieces: the generated annotation file is COCO to mmdet (every image and
instance loaded) and passes the preflight, which the tool times."""
import json

import pytest

from helpers import ROOT
from l2vit.analysis.preflight_cost import run_one, write_annotations

DEMO_CONFIG = str(ROOT / 'configs' / 'demo' / 'mask-rcnn_l2vit-demo_synthetic.py')


def test_generated_file_loads_and_passes_the_preflight(tmp_path):
    ann_file = str(tmp_path / 'large.json')
    size = write_annotations(ann_file, images=50, per_image=3)
    data = json.loads(open(ann_file).read())
    assert size > 0 and len(data['images']) == 50 and len(data['annotations']) == 150
    for what in ('preflight', 'full_init'):
        result = run_one(what, DEMO_CONFIG, str(tmp_path), ann_file)
        assert result['seconds'] > 0 and result['peak_rss_mb'] > 0


def test_a_broken_file_stops_the_timed_preflight(tmp_path):
    ann_file = str(tmp_path / 'large.json')
    write_annotations(ann_file, images=5, per_image=2)
    data = json.loads(open(ann_file).read())
    del data['annotations'][3]['bbox']
    json.dump(data, open(ann_file, 'w'))
    with pytest.raises(RuntimeError, match=r"large\.json(.|\n)*'bbox'"):
        run_one('preflight', DEMO_CONFIG, str(tmp_path), ann_file)
