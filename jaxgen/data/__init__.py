"""Data sets: the book's small files and real MNIST digits shipped as package data
(provenance in files/SOURCES.md), MNIST from tensorflow-datasets, and shuffled batches."""

from jaxgen.data.batching import batch_indices, batches, map_batches, per_example
from jaxgen.data.book import load_flower, load_height, load_height_weight, load_old_faithful
from jaxgen.data.mnist import MNIST, load_mnist

__all__ = ["MNIST", "batch_indices", "batches", "load_flower", "load_height",
           "load_height_weight", "load_mnist", "load_old_faithful", "map_batches",
           "per_example"]
