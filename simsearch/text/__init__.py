"""Text before it is indexed: long documents split into passages (``passages``)."""
