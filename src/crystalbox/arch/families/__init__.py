"""One module per architecture family; each exposes ``SPECS: tuple[ArchSpec, ...]``."""
