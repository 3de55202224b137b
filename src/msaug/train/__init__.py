"""Training machinery of the generative engine: the shared GAN trainer, checkpoints, devices, DDP.

Documented submodules: :mod:`msaug.train.stages` (the four ``gan.*`` stage families that
domain plugins subclass), :mod:`msaug.train.distributed` (torchrun / DDP helpers) and
:mod:`msaug.train.device` (device and mixed-precision policy).
"""
