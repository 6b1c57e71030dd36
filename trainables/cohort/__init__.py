"""Cohorts: K trials of one shape trained as one model, each slot following its own single-trial run."""
