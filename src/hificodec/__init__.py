"""hificodec: generative image compression (HiFiC) with receiver-side realism control."""

__version__ = "0.2.0"
