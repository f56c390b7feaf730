"""A record's training probe: its decoded weights scored on a stratified sample of its dataset's
*training* split (never the test split), BatchNorm statistics re-estimated there as generation does.
"""

from __future__ import annotations

import numpy as np
import torch

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.probe import check_data_fits
from igpg_zoo.export.batchnorm import reestimate

SAMPLES = 256  # training samples per record (stratified, seeded)


class Probe:
    """A record's architecture and its training sample; scores decoded states on it."""

    def __init__(self, arch: str, sample: tuple):
        from igpg_zoo.adapters import get_adapter

        self.arch, (self.x, self.y) = arch, sample
        self.module = get_adapter(arch).build(arch).eval()

    @torch.no_grad()
    def accuracy_of_state(self, state: dict) -> float:
        self.module.load_state_dict(state, strict=True)
        reestimate(self.module, [self.x[i:i + 128] for i in range(0, len(self.x), 128)])
        logits = self.module.eval()(self.x)  # (N, classes)
        return float((logits.argmax(1) == self.y).float().mean())


def training_sample(dataset: str, seed: int, cache: dict) -> tuple | None:
    """(x, y) of up to SAMPLES stratified training samples of ``dataset``; None when it does not load."""
    from igpg_zoo.data import load_dataset
    from igpg_zoo.data.dataset import stratified_subsample
    from igpg_zoo.errors import ZooError

    if dataset not in cache:
        try:
            ds = load_dataset(dataset)
        except ZooError:
            cache[dataset] = None
            return None
        keep = stratified_subsample(ds.y_train, SAMPLES, seed)
        cache[dataset] = (torch.tensor(np.asarray(ds.x_train[keep]), dtype=torch.float32),
                          torch.tensor(np.asarray(ds.y_train[keep]), dtype=torch.long))
    return cache[dataset]


def record_probe(record, seed: int, cache: dict) -> Probe | None:
    """The record's probe; None when its dataset does not load or does not fit its architecture."""
    sample = training_sample(record.dataset, seed, cache) if record.dataset else None
    if sample is None:
        return None
    try:
        check_data_fits(record.arch, *sample)
    except GeneratorError:
        return None
    return Probe(record.arch, sample)
