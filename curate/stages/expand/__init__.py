"""Template expansion stages."""
