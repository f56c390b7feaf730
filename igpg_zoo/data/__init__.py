"""Offline datasets, generated task families, user data and dataset embeddings.

Front doors: :func:`load_dataset` (built-in names and generated tasks, docs/datasets.md),
:func:`load_user_data` (``.npz`` / ``.csv`` / image folder) and
:func:`igpg_zoo.data.embedding.embed_dataset`.
"""

from igpg_zoo.data.dataset import Dataset, cache_dir
from igpg_zoo.data.sources import SOURCES, fashion_mnist_dir, is_available
from igpg_zoo.data.tasks import canonical_name, load_dataset, parse_task, split_suffix

__all__ = ["Dataset", "SOURCES", "cache_dir", "canonical_name", "fashion_mnist_dir", "is_available",
           "load_dataset", "parse_task", "split_suffix"]
