"""Models from transformers configs sized by presets, plus the numbers the trainer logs about them (params, MFU)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelShape:
    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int  # at least this many positions; a longer block_size raises it


PRESETS = {
    # Trains in well under a minute on a laptop CPU at block_size 128 and still learns word statistics.
    "tiny": ModelShape(n_layer=2, n_embd=128, n_head=4, n_positions=256),
    "small": ModelShape(n_layer=12, n_embd=768, n_head=12, n_positions=1024),  # GPT-2 124M
    "medium": ModelShape(n_layer=24, n_embd=1024, n_head=16, n_positions=1024),  # GPT-2 350M
}

# Dense bf16 tensor-core peaks from the vendors' datasheets, matched as substrings of the device name
# (first match wins, so the specific names come before the general ones).
PEAK_BF16_FLOPS = [
    ("H100 PCIE", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10", 125e12),
]


def padded_vocab_size(vocab_size: int, multiple: int = 64) -> int:
    """Embedding rows rounded up so the output matmul hits tensor-core friendly shapes; extra rows are never targets."""
    return -(-vocab_size // multiple) * multiple


def build_causal_lm(preset: str, vocab_size: int, block_size: int, eos_id: int):
    """GPT-2 (GPT2LMHeadModel, SDPA attention, no dropout: pretraining on fresh data does not overfit)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    shape = PRESETS[preset]
    config = GPT2Config(
        vocab_size=padded_vocab_size(vocab_size),
        n_positions=max(shape.n_positions, block_size),
        n_embd=shape.n_embd,
        n_layer=shape.n_layer,
        n_head=shape.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )
    return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")


def build_masked_lm(preset: str, vocab_size: int, block_size: int, eos_id: int, pad_id: int):
    """RoBERTa (RobertaForMaskedLM) of the same size as the GPT-2 preset."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    shape = PRESETS[preset]
    config = RobertaConfig(
        vocab_size=padded_vocab_size(vocab_size),
        hidden_size=shape.n_embd,
        num_hidden_layers=shape.n_layer,
        num_attention_heads=shape.n_head,
        intermediate_size=4 * shape.n_embd,
        # RoBERTa numbers positions from pad_id + 1 (padding positions keep pad_id), so the table needs that many more rows.
        max_position_embeddings=block_size + pad_id + 1,
        type_vocab_size=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=pad_id,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )
    return RobertaForMaskedLM._from_config(config, attn_implementation="sdpa")


def shape_of(model) -> tuple[int, int]:
    """(n_layer, n_embd) of a GPT-2 or RoBERTa config."""
    config = model.config
    return config.num_hidden_layers, config.hidden_size


def count_params(model: nn.Module, *, non_embedding: bool = True) -> int:
    """Parameters (tied ones once); without the position table, which costs no matmul FLOPs (nanoGPT's convention)."""
    n = sum(p.numel() for p in model.parameters())
    if non_embedding:
        for name, module in model.named_modules():
            if isinstance(module, nn.Embedding) and name.endswith(("wpe", "position_embeddings")):
                n -= module.weight.numel()
    return n


def flops_per_token(n_params: int, n_layer: int, n_embd: int, seq_len: int) -> float:
    """Training FLOPs per token (PaLM appendix B): 6N for the matmuls, 12·L·d·T for attention scores."""
    return 6 * n_params + 12 * n_layer * n_embd * seq_len


def peak_flops(device_name: str) -> float | None:
    """bf16 peak of a known accelerator; None for CPUs and anything not in the table (MFU then stays unknown)."""
    name = device_name.upper()
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops
    return None


def mfu(tokens_per_second: float, flops_token: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved over peak."""
    return None if peak is None else tokens_per_second * flops_token / peak


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay matrices only; biases, norms and embeddings (incl. a tied output head) are not decayed."""
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.LayerNorm):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    decay, plain = [], []
    for name, param in model.named_parameters():  # named_parameters yields a tied tensor once
        if not param.requires_grad:
            continue
        (plain if id(param) in no_decay or name.endswith("bias") or param.dim() < 2 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of token cross-entropies in nats, number of target tokens); labels are already aligned with logits."""
    loss_sum = nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return loss_sum, (labels != -100).sum()



class CausalLoss(nn.Module):
    """The training objective as a module, so that DDP and torch.compile wrap the loss with the model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return lm_loss(self.model(input_ids=input_ids).logits, labels)


class MaskedLoss(nn.Module):
    """Masked-LM loss with the prediction head run at the target positions only (sparse prediction, as in
    MosaicBERT): about 15% of the positions are targets, and the head's projection onto the vocabulary is most of
    a small model's compute, so computing logits that the loss ignores would triple the cost of a step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.encoder = getattr(model, model.base_model_prefix)  # RobertaModel or BertModel
        self.head = model.lm_head if hasattr(model, "lm_head") else model.cls  # RoBERTa or BERT naming

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        targets = labels != -100
        return lm_loss(self.head(hidden[targets]), labels[targets])


def objective_loss(model: nn.Module, objective: str) -> nn.Module:
    """The module whose forward(**batch) returns (summed cross-entropy in nats, target tokens) for the objective."""
    return CausalLoss(model) if objective == "causal" else MaskedLoss(model)
