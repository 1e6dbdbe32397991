"""Generative tools for CSI windows: repair corrupted windows (UNIR), adversarial autoencoder, domain bridging."""
