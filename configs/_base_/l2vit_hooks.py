# The hooks of l2vit/hooks/ that every config of ours carries (inherit this file beside the library's base; our
# configs' custom_imports register them), so that every train and test tool (ours, the libraries' own, `mim`) gives a
# run the same guarantees:
# - DataCheckHook: data that would train wrong stops the run before its first iteration (category names, image
#   sizes and EXIF orientation, label maps), and a file that breaks later names itself;
# - ConfigCheckHook: settings that do not fit together (a neck that does not fit the backbone's stages, a
#   Mask2Former class_weight for another class count, an image/crop size restated without what the base built from
#   it) stop the run with the fix, before anything is loaded or trained;
# - RNGStateHook: checkpoints carry the RNG states, so that `--resume` continues exactly;
# - FiniteLossHook: the first non-finite loss stops the run, before anything of that iteration is saved;
# - CheckpointFitHook: a checkpoint that does not fit the model (heads for other classes) is refused when testing or
#   resuming, by name.
# With them, a config sets default_hooks.checkpoint.type='SafeCheckpointHook' (a key its library's base defines, so
# it cannot live here): checkpoints never lost or half-written, `--resume` in a moved work dir, one training per
# work dir.
custom_hooks = [
    dict(type='DataCheckHook'),
    dict(type='ConfigCheckHook'),
    dict(type='RNGStateHook'),
    dict(type='FiniteLossHook'),
    dict(type='CheckpointFitHook'),
]
