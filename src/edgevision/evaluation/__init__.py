"""Evaluation protocols (WIDER FACE, FDDB, AP, verification) and their plots."""
