"""The trainer: SGD + cosine / SGDR schedule on tensors that stay on the device.

    history = fit(model, load_cifar10(), epochs=10, out="runs/a")   # resumable from runs/a
    evaluate(model, images, labels).accuracy

One loop, no callbacks: each step takes a shuffled, augmented batch from :func:`mnf.data.batches`,
sets the learning rate of that step, runs forward / backward / SGD step.  Weight decay applies
to weights with ``dim > 1`` only (not to BN parameters or biases).  The learning rate per step
``i`` of ``T`` (``t`` = epochs done, fractional):

- ``"cosine"``: ``lr · ½(1 + cos(π i / T))``
- ``"sgdr"``: warm restarts (Loshchilov & Hutter 2017; seed 000 §3.4): the same cosine within
  periods of ``sgdr_t0``, ``sgdr_t0·sgdr_mult``, ... epochs, jumping back to ``lr`` at each
  restart.  Default ``sgdr_t0 = epochs / (1 + mult + mult²)``: three periods ending at the end.
- ``"constant"``: ``lr``.

With ``out`` the run writes ``history.json``, ``history.csv`` and ``checkpoint.pt`` there after
every epoch (atomically: temp file + ``os.replace``).  The checkpoint holds the architecture
(``model.arch``), weights, optimizer, step and RNG states, so ``fit(..., resume=True)`` continues
to exactly the weights an uninterrupted run reaches (on CPU).  Under ``torchrun`` (a process
group initialised, see :func:`setup_distributed`) the model is wrapped in DistributedDataParallel,
every rank draws the same batch and trains on its slice, BN buffers are re-synchronised from
rank 0 after every epoch, and only rank 0 writes files.

The package, a file per part: :mod:`~mnf.train.schedule` (``lr_at``), :mod:`~mnf.train.loop`
(``fit``), :mod:`~mnf.train.plan` (``plan_training``), :mod:`~mnf.train.history` (``History``),
:mod:`~mnf.train.checkpoint` (``load_checkpoint``), :mod:`~mnf.train.checks` (the data checks
``fit`` and ``plan_training`` share).  Import from ``mnf.train``.
"""
from mnf.metrics import Evaluation, evaluate, plot_confusion, plot_history
from mnf.train.checkpoint import load_checkpoint
from mnf.train.history import COLUMNS, History
from mnf.train.loop import amp_dtype_for, fit, setup_distributed
from mnf.train.plan import Plan, plan_training
from mnf.train.schedule import SCHEDULES, lr_at

__all__ = ["COLUMNS", "Evaluation", "History", "SCHEDULES", "amp_dtype_for", "evaluate", "fit", "load_checkpoint",
           "lr_at", "Plan", "plan_training", "plot_confusion", "plot_history", "setup_distributed"]
