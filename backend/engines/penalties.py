"""OpenAI's `presence_penalty`, `frequency_penalty` and `logit_bias`, for every row of a batch at once.

As in vLLM, the penalties count the tokens a row has generated (not its prompt): a token's logit loses
`frequency_penalty` per occurrence so far and `presence_penalty` once it has occurred. `logit_bias` adds its value to
the token's logit at every step. A row resumed in a new batch (backend/engines/batching.py: merging) carries its
generated tokens at the end of its prompt (`RowPlan.draw_offset` of them), so they still count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import torch

if TYPE_CHECKING:
    from backend.engines.decode import RowPlan


class OccurrencePenalty:
    """Called by the batch sampler on each step's logits (rows x vocabulary), before any choice."""

    def __init__(self, rows: Sequence[RowPlan], prompt_width: int, device: torch.device) -> None:
        column = lambda values: torch.tensor(values, dtype=torch.float32, device=device).unsqueeze(1)  # noqa: E731
        self.presence = column([row.presence_penalty for row in rows])
        self.frequency = column([row.frequency_penalty for row in rows])
        self.rows = list(rows)
        self.prompt_width = prompt_width
        self.device = device
        self.earlier: Optional[torch.Tensor] = None  # counts of tokens generated before this batch
        self.bias: Optional[torch.Tensor] = None

    @classmethod
    def of(cls, rows: Sequence[RowPlan], prompt_width: int, device: torch.device) -> Optional["OccurrencePenalty"]:
        """None when no row uses any of them (the common case costs nothing)."""
        if not any(row.presence_penalty or row.frequency_penalty or row.logit_bias for row in rows):
            return None
        return cls(rows, prompt_width, device)

    def _prepare(self, vocabulary: int) -> None:
        self.earlier = torch.zeros((len(self.rows), vocabulary), dtype=torch.float32, device=self.device)
        self.bias = torch.zeros((len(self.rows), vocabulary), dtype=torch.float32, device=self.device)
        for index, row in enumerate(self.rows):
            if row.draw_offset:
                carried = torch.tensor(row.prompt_ids[-row.draw_offset:], device=self.device)
                self.earlier[index].scatter_add_(0, carried, torch.ones_like(carried, dtype=torch.float32))
            for token, value in row.logit_bias:
                if token < vocabulary:
                    self.bias[index, token] = float(value)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.earlier is None:
            self._prepare(logits.shape[1])
        assert self.earlier is not None and self.bias is not None
        counts = self.earlier.clone()
        generated = input_ids[:, self.prompt_width:]
        if generated.shape[1]:
            counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=torch.float32))
        return logits + self.bias - self.frequency * counts - self.presence * (counts > 0).float()
