"""The networks: layers, the entropy model (hyperprior + CompressAI coders) and the HiFiC model with its coding API."""
