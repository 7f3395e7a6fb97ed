"""Console views of one run."""
