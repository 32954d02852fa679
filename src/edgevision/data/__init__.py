"""Data sets, annotation formats and transforms."""
