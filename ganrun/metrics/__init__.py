"""Sample-quality metrics: feature extractors, real-data statistics cache, and the scores computed on features."""
