"""Training LeNet-5 models: the loop, its optimizers, resuming from checkpoints, the training log.

    loop          fit(model, x, y, ...): what LeNet5.fit runs
    optimizers    SGD, Adam and the paper's SDLM behind one interface (begin_epoch, step)
    checkpoints   whether a checkpoint belongs to the run being resumed, and resuming it
    log           the JSON record and the curves `lenet-engine train` writes
"""

from lenet_engine.training.loop import fit

__all__ = ["fit"]
