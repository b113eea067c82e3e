"""The batch sampler steps aside when no row needs it (backend/engines/decode.py), without changing a token."""

from __future__ import annotations

from dataclasses import replace

import torch

from backend.engines.decode import BatchSampler, RowPlan, RowsDone

GREEDY = RowPlan(prompt_ids=(1, 2, 3), max_new_tokens=4, temperature=0.0, top_k=0, top_p=1.0,
                 repetition_penalty=1.0, seed=0)


def sampler(*rows: RowPlan) -> BatchSampler:
    return BatchSampler(list(rows), torch.ones((len(rows), 3), dtype=torch.long))


def test_plain_greedy_rows_run_no_logits_processor_and_any_row_that_asks_brings_it_back() -> None:
    assert len(sampler(GREEDY, GREEDY).processors()) == 0
    for asks in (replace(GREEDY, temperature=0.7), replace(GREEDY, repetition_penalty=1.3),
                 replace(GREEDY, presence_penalty=0.5), replace(GREEDY, logit_bias=((5, 2.0),)),
                 replace(GREEDY, top_alternatives=2)):
        chosen = sampler(GREEDY, asks)
        assert list(chosen.processors()) == [chosen]


def test_the_sampler_s_greedy_choice_is_generate_s_own_argmax_ties_included() -> None:
    torch.manual_seed(0)
    scores = torch.randn(4, 50)
    scores[1, 7] = scores[1, 30] = scores[1].max() + 1  # a tie: both pick the first
    one_hot = sampler(*[GREEDY] * 4)(torch.ones((4, 3), dtype=torch.long), scores.clone())
    assert torch.equal(torch.argmax(one_hot, dim=-1), torch.argmax(scores, dim=-1))
    assert int(torch.argmax(scores[1])) == 7


def test_rows_done_follows_its_flags_and_limits_while_reusing_its_copy() -> None:
    flags = torch.zeros(2, dtype=torch.bool)
    done = RowsDone([GREEDY, replace(GREEDY, max_new_tokens=2)], flags, prompt_width=3)
    ids = torch.ones((2, 4), dtype=torch.long)
    first = done(ids, torch.zeros(2, 5))
    assert first.tolist() == [False, False] and done(ids, torch.zeros(2, 5)) is first  # unchanged: not copied again
    flags[0] = True
    assert done(ids, torch.zeros(2, 5)).tolist() == [True, False]
    longer = torch.ones((2, 5), dtype=torch.long)
    assert done(longer, torch.zeros(2, 5)).tolist() == [True, True]
