"""Whole documents: cited summaries, comparisons of two documents, and a cited PDF page rendered."""
