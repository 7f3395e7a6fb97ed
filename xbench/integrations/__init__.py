"""Bridges to outside tools: wandb (logging) and transformers (xbench backends inside
Hugging Face models, an optional extra)."""
