"""Data sets: the book's small files shipped as package data (provenance in files/SOURCES.md)."""

from jaxgen.data.book import load_flower, load_height, load_height_weight, load_old_faithful

__all__ = ["load_flower", "load_height", "load_height_weight", "load_old_faithful"]
