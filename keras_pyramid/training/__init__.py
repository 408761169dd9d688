"""Training: recipe (the papers' and fine-tuning's), fit (checkpoints, exact
resume), experiment (RunConfig -> results, the one run path), finetune,
drop_schedule, distribution (data-parallel plans) and device (per-device
defaults)."""
