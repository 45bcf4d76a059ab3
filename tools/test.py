"""Evaluate a checkpoint with a config's test split; the config's ``default_scope`` picks the library.

    python tools/test.py CONFIG CHECKPOINT [--tta] [--work-dir DIR] [--out FILE.pkl] [--metrics-out FILE.json]
                                           [--show-dir DIR] [--cfg-options KEY=VALUE ...]
                                           [--launcher {none,pytorch,slurm,mpi}]

Without ``--tta`` the config's single-scale test pipeline is used; ``--tta`` switches to its test-time augmentation
(``tta_pipeline`` + ``tta_model``: for the ADE20K configs multi-scale + flip, the papers' "ms" number).

``--out`` pickles the predictions (mmdet: as dicts, like mmdet's own test tool; otherwise the data samples).
``--show-dir`` draws the predictions into image files: under ``DIR`` (mmseg, mmpretrain) or, as mmdet's own test tool
does, under ``WORK_DIR/<timestamp>/DIR`` (mmdet).

Installed, the same command is ``l2vit-test``; CONFIG may be a model's name, as for ``l2vit-train``.

What is done to the config before mmengine's Runner tests it: ``l2vit.apis.prepare_test``.
"""
from l2vit.apis.cli import cli_test as main

if __name__ == '__main__':
    main()
