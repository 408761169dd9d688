"""Training: recipe (the papers' and fine-tuning's), fit (checkpoints, exact
resume), experiment (RunConfig -> results, the one run path), run_dir
(prepare_run_dir, load_run: the one reader of run directories), finetune,
drop_schedule, distribution (data-parallel plans) and device (per-device
defaults)."""
