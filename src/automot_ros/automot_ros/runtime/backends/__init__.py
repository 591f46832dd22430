"""Action Expert backends behind one interface (``ActionBackend``)."""
