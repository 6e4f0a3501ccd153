"""Architecture specs: how each model family names its parts, and discovery for the rest."""
