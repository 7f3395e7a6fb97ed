"""Run records: the typed, versioned RunResult and where records are found."""
