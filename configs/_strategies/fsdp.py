# Sharded data parallel training (mmengine's FlexibleRunner + FSDPStrategy) for models that outgrow one GPU's
# memory: parameters, gradients and AdamW states are split across the ranks, and each L2ViT block is gathered only
# while it runs. Add this file to a config's `_base_` list; launch as usual (tools/dist_train.sh, slurm_train.sh).
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        # our optimizer constructors (layer decay, paramwise settings) read the original parameter names
        use_orig_params=True,
        auto_wrap_policy=dict(type='l2vit.distributed.fsdp_wrap_l2vit_blocks')),
    # checkpoints hold the whole, unsharded model (gathered on rank 0), so tools/test.py and load_from read them
    state_dict_cfg='full')
