"""Index folders: the manifest, the document store, the layout, building, publishing and opening."""


class IndexLoadError(RuntimeError):
    """An index folder that cannot be served: missing, corrupt, or built with another model."""
