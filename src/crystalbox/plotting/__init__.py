"""Plots: PNG through matplotlib's Agg canvas (no global backend changes)."""
