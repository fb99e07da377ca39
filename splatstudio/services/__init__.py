"""Qt-core services (no widgets): stage processes, project runs, the run queue, system sampling."""
