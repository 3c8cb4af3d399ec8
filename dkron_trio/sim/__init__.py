"""Deterministic simulation of clusters and checking of what their clients observed."""
