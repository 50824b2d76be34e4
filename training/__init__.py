"""Pretraining (causal GPT-2 or masked RoBERTa) and fine-tuning from the corpus's token shards.

Importing the package is light: torch and transformers load only in the modules that train
(`from training.pretrain import pretrain`).
"""
