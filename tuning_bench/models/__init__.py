"""Model loading support: transformers' from_pretrained and pinned, verified downloads."""
