"""Training and evaluating SimpleVLA (``vla train``, ``vla eval``, ``vla scene-map``).

* :mod:`.sources`: the dataset directories of ``--data``, their weights and the validation split
* :mod:`.bank`: the frame bank (frozen features of every frame, cached in :mod:`.cache`) and batches cut from it
* :mod:`.labels`: labels from the simulator's expert (relabelling, refreshing stale labels)
* :mod:`.batch`: one training batch with all its random choices
* :mod:`.optim`: AdamW, the learning-rate schedule and the EMA of the weights
* :mod:`.locator`: the target locator's part in a run and its pre-training
* :mod:`.metrics`: ADE / FDE, the command-only baseline and validation
* :mod:`.loop`: :func:`~vla_ros.training.loop.train`, checkpoints, resume, loss curve
* :mod:`.distributed`: data-parallel training under torchrun
* :mod:`.evaluate`: ``vla eval`` against baselines, and colour grounding
* :mod:`.scene`: ``vla scene-map``, the scene map trained alone
"""
