"""Train a detector, segmentor or classifier from a config; the config's ``default_scope`` picks the library.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                                 [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Several processes (GPUs, or CPUs with gloo):
    torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch

Installed (``pip install .``), the same command is ``l2vit-train``, and CONFIG may be a model's name
(``l2vit-train mask-rcnn_l2vit-t_fpn_1x_coco``): its config is read from the package (``l2vit/.mim/configs``).

What is done to the config before mmengine's Runner trains it: ``l2vit.apis.prepare_train``.
"""
from l2vit.apis.cli import cli_train as main

if __name__ == '__main__':
    main()
