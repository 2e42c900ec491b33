"""The .hfc file format: header, metadata section, entropy-coded latents (docs/bitstream.md)."""
