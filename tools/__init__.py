"""Build and test tooling of the course (not imported by notebooks)."""
