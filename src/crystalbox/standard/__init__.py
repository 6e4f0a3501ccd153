"""The standardized view of a HuggingFace transformer."""
