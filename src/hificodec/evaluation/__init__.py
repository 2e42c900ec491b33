"""Evaluation: the benchmark runner, classical codecs to compare against, reports, model cards, compare pages."""
