"""Methods: one module per family of regularizers, denoisers and samplers."""
