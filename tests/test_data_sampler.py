"""SpeakerBalancedSampler: balance, determinism, rank sharding, mid-epoch skip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from speakervlad.data.sampler import SpeakerBalancedSampler
from speakervlad.errors import ConfigError

LABELS = np.array([2] * 12 + [0] + [1] * 5)  # uneven: speaker 0 has 1 utterance, 2 has 12


def indices(sampler: SpeakerBalancedSampler) -> list[int]:
    """The item indices of one iteration (without the draw numbers)."""
    return [index for index, _ in sampler]


@pytest.mark.parametrize("per_speaker, expected", [(4, 4), (0, 6)])  # 0: ceil(18 / 3)
def test_each_speaker_is_drawn_equally_often(per_speaker, expected):
    sampler = SpeakerBalancedSampler(LABELS, utterances_per_speaker=per_speaker, seed=1)
    drawn = np.array(indices(sampler))
    assert len(drawn) == len(sampler) == 3 * expected
    np.testing.assert_array_equal(np.bincount(LABELS[drawn], minlength=3), [expected] * 3)
    for speaker in range(3):  # utterances of a speaker are used as evenly as possible
        uses = np.bincount(drawn[LABELS[drawn] == speaker], minlength=len(LABELS))[LABELS == speaker]
        assert uses.max() - uses.min() <= 1


def test_unbalanced_mode_and_unshuffled_order():
    sampler = SpeakerBalancedSampler(LABELS, balanced=False, seed=0)
    assert sorted(indices(sampler)) == list(range(len(LABELS)))
    plain = SpeakerBalancedSampler(LABELS, utterances_per_speaker=2, shuffle=False)
    assert indices(plain) == [12, 12, 13, 14, 0, 1]


def test_order_depends_only_on_seed_and_epoch():
    a = SpeakerBalancedSampler(LABELS, seed=3)
    b = SpeakerBalancedSampler(LABELS, seed=3)
    a.set_epoch(5)
    b.set_epoch(5)
    assert list(a) == list(b)
    b.set_epoch(6)
    assert list(a) != list(b)
    assert indices(SpeakerBalancedSampler(LABELS, seed=4)) != indices(SpeakerBalancedSampler(LABELS, seed=3))


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_get_equal_disjoint_strides_of_the_same_epoch(world):
    full = SpeakerBalancedSampler(LABELS, seed=2)
    full.set_epoch(1)
    epoch = full.epoch_indices()  # 18 items
    shards = []
    for rank in range(world):
        sampler = SpeakerBalancedSampler(LABELS, seed=2, rank=rank, world_size=world)
        sampler.set_epoch(1)
        shards.append(list(sampler))
    assert {len(s) for s in shards} == {int(np.ceil(18 / world))}
    # positions r, r+world, ... of the epoch, padded by wrap-around: disjoint positions,
    # and each draw is numbered by its position
    interleaved = [shards[i % world][i // world] for i in range(sum(map(len, shards)))]
    assert [index for index, _ in interleaved] == list(np.resize(epoch, len(interleaved)))
    assert [number for _, number in interleaved] == list(range(len(interleaved)))


def test_draw_numbers_are_unique_in_an_epoch_even_when_items_repeat():
    sampler = SpeakerBalancedSampler(LABELS, utterances_per_speaker=12, seed=0)  # speaker 0: 12 x item 12
    draws = list(sampler)
    assert [number for _, number in draws] == list(range(36))
    assert sum(index == 12 for index, _ in draws) == 12


def test_set_start_skips_the_next_iteration_only():
    sampler = SpeakerBalancedSampler(LABELS, seed=0)
    whole = list(sampler)
    sampler.set_start(5)
    assert list(sampler) == whole[5:] and len(sampler) == len(whole)
    assert list(sampler) == whole
    with pytest.raises(ConfigError, match="cannot skip"):
        sampler.set_start(len(whole) + 1)


def test_works_as_dataloader_sampler():
    class ByIndex(torch.utils.data.Dataset):
        def __getitem__(self, draw):
            return draw[0]

    data = ByIndex()
    sampler = SpeakerBalancedSampler(LABELS, utterances_per_speaker=4, seed=0)
    loader = torch.utils.data.DataLoader(data, batch_size=5, sampler=sampler)
    assert len(loader) == 3
    assert torch.cat(list(loader)).tolist() == indices(sampler)
