"""Cross-cutting infrastructure shared by every domain module; imports no domain module."""
