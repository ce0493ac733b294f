"""Per-format readers: each turns a model file into an :class:`~edgeml.formats.common.Inspection`."""
