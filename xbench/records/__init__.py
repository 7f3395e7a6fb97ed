"""Run records: the typed, versioned RunResult (result), how older versions are read
(migrate), where records are found (store), where a run ran (environment) and a record's
headline figures (summary)."""
