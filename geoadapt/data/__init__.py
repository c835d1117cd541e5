"""Datasets and featurization."""
