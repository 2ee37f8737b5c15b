"""Recommendation models, trained daily from gold: ALS over watch strength (``implicit``), TF-IDF content
similarity (scikit-learn), a popularity baseline per segment and the hybrid that serves cold starts.

Pure parts (matrix building, content index, scoring, metrics) take arrays and frames; :mod:`.job` does the I/O
(gold through DuckDB, the model folder, Delta and Redis).
"""
