"""Image files in and out: decoding inputs to RGB, writing outputs atomically, photo metadata (EXIF, XMP, ICC)."""
