"""Console scripts: thin fronts over the library."""
