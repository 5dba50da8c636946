"""Small supervised-training helpers used by pruning (fine-tune) and distillation, plus a tiny CNN.

``conv_classifier`` builds the digits-sized CNNs the tests and benchmarks train (8×8 images).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def conv_classifier(width: int = 32, classes: int = 10, *, image_size: int = 8) -> Any:
    """A small CNN for 1×image_size×image_size inputs; ``width`` sets the channel counts."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    flat = 2 * width * (image_size // 2) ** 2
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, 4 * width),
        nn.ReLU(),
        nn.Linear(4 * width, classes),
    )


LossFn = Callable[[Any, Any, Any], Any]


def fit(
    module: Any,
    inputs: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    loss_fn: LossFn | None = None,
    seed: int = 0,
    threads: int = 1,
) -> Any:
    """Train ``module`` with Adam; ``loss_fn(logits, labels, batch_index)`` overrides cross-entropy.

    ``threads`` defaults to 1: small models train many times faster on one thread than on
    threads that fight for a busy machine's cores.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _fit(module, inputs, labels, epochs, learning_rate, batch_size, loss_fn, seed)
    finally:
        torch.set_num_threads(previous)


def _fit(
    module: Any,
    inputs: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    loss_fn: LossFn | None,
    seed: int,
) -> Any:
    import torch

    torch.manual_seed(seed)
    x, y = torch.from_numpy(inputs.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))
    optimizer = torch.optim.Adam(module.parameters(), lr=learning_rate)
    ce = torch.nn.CrossEntropyLoss()
    module.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), batch_size):
            index = order[start : start + batch_size]
            logits = module(x[index])
            loss = loss_fn(logits, y[index], index) if loss_fn else ce(logits, y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return module.eval()


def predict(module: Any, inputs: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.asarray(module.eval()(torch.from_numpy(inputs.astype(np.float32))).numpy())


def accuracy(module: Any, inputs: np.ndarray, labels: np.ndarray) -> float:
    return float((predict(module, inputs).argmax(axis=1) == labels).mean())


def parameter_count(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))
