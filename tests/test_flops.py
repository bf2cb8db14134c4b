"""The FLOPs counter against a count done by hand for a one-layer config."""

import pytest

from electra_tf import flops
from electra_tf.config import ElectraConfig


def _config(**overrides):
    values = dict(vocab_size=100, embedding_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=32, max_position_embeddings=16, max_seq_length=10, generator_hidden_size=0.5,
                  generator_layers=1.0, mask_prob=0.15, train_batch_size=4)
    values.update(overrides)
    return ElectraConfig.from_size("tiny", values)


def test_one_layer_electra_step_counted_by_hand():
    # Discriminator layer, per token (h=16, i=32, heads=2, s=10):
    #   q, k, v: 3 x (2*16*16 + 16) = 1584; scores 2*16*10 = 320, scaling 2*10 = 20, softmax + dropout
    #   (5+4)*2*10 = 180; weighted values 320; output 2*16*16 + 16 = 528; dropout, residual, LN (4+1+5)*16 = 160
    #   -> attention 3112. FFN: 2*16*32 + 32 + 8*32 = 1312, 2*32*16 + 16 = 1040, (4+1+5)*16 = 160 -> 2512.
    disc_layer = 3112 + 2512
    # Embeddings (e=8 != h=16): sum of three 2*8 = 16, LN + dropout 9*8 = 72, projection 2*8*16 + 16 = 272.
    disc = 10 * (16 + 72 + 272 + disc_layer)
    # Generator (h=8, i=32, heads=max(1, 8 // 64)=1): q, k, v 3 x (128 + 8) = 408; scores 160; scale 10;
    #   softmax + dropout 90; values 160; output 136; 80 -> 1044. FFN: 512 + 32 + 256 = 800, 512 + 8 = 520, 80.
    gen_layer = 1044 + 1400
    gen = 10 * (16 + 72 + gen_layer)  # e == h: no projection.
    # MLM head at int((0.15 + 0.005) * 10) = 1 masked position: dense 2*8*8 + 8 = 136, GELU + LN 13*8 = 104,
    # tied projection 2*8*100 + 100 = 1700, softmax 500.
    mlm = 1 * (136 + 104 + 1700 + 500)
    # Discriminator head per token: 2*16*16 + 16 + 8*16 + 2*16 + 1 = 689.
    head = 10 * 689
    expected = 3 * 4 * (gen + mlm + disc + head)  # forward + backward (2x forward), batch 4.
    assert flops.flops_per_step(_config()) == expected


def test_mlm_baseline_counts_one_full_size_masked_lm():
    config = _config(objective="mlm")
    per_token_encoder = 16 + 72 + 272 + 3112 + 2512
    mlm_head = 2 * 16 * 8 + 8 + 13 * 8 + 2 * 8 * 100 + 100 + 500
    assert flops.flops_per_step(config) == 3 * 4 * (10 * per_token_encoder + mlm_head)


def test_electra_small_forward_is_dominated_by_the_discriminator():
    small = ElectraConfig.from_size("small")
    ratio = flops.flops_per_step(small) / flops.flops_per_step(small.replace(objective="mlm"))
    # The generator is 1/4 the width: ELECTRA costs more than MLM of the same discriminator, but not 2x.
    assert 1.0 < ratio < 1.6
    assert flops.flops_per_step(small) == pytest.approx(
        flops.flops_per_step(small.replace(train_batch_size=1)) * small.train_batch_size)


# The hand counts of the one-layer config above, per sequence, forward: generator encoder, its masked-LM
# head at the 1 masked position, discriminator encoder, discriminator head at the 10 positions.
GEN, GEN_HEAD, DISC, DISC_HEAD = 10 * (16 + 72 + 1044 + 1400), 2440, 10 * (16 + 72 + 272 + 3112 + 2512), 10 * 689
# A masked-LM head on the discriminator (h=16, e=8): dense 2*16*8 + 8 = 264, GELU + LN 104, projection 1700,
# softmax 500.
FULL_HEAD = 264 + 104 + 1700 + 500


@pytest.mark.parametrize("overrides, forward", [
    ({"objective": "electra_15"}, GEN + GEN_HEAD + DISC + DISC_HEAD),  # The head still runs everywhere.
    ({"generator_kind": "uniform"}, DISC + DISC_HEAD),  # No generator network.
    ({"generator_kind": "unigram"}, DISC + DISC_HEAD),
    ({"objective": "replace_mlm"}, GEN + GEN_HEAD + DISC + 1 * FULL_HEAD),  # At the masked position.
    ({"objective": "all_tokens_mlm"}, GEN + GEN_HEAD + DISC + 10 * (FULL_HEAD + 689)),  # Every position, + copy.
    # The full-size generator is the discriminator's encoder, under its masked-LM head.
    ({"weight_sharing": "all", "generator_hidden_size": 1.0}, DISC + FULL_HEAD + DISC + DISC_HEAD),
    # Adversarial ELECTRA's baseline at the masked position, a discriminator head of the generator's width (h=8):
    # 2*8*8 + 8 + 8*8 + 2*8 + 1 = 217.
    ({"generator_training": "adversarial"}, GEN + GEN_HEAD + 1 * 217 + DISC + DISC_HEAD),
])
def test_each_variant_counts_what_it_runs(overrides, forward):
    assert flops.flops_per_step(_config(**overrides)) == 3 * 4 * forward


def test_untied_generator_embeds_at_its_own_width():
    # generator_hidden_size 0.25: h=4, so untied embeddings are 4 wide (no projection) instead of tied 8 + projection.
    tied, untied = _config(generator_hidden_size=0.25), _config(generator_hidden_size=0.25, weight_sharing="none")
    # Per token: embedding sum and LN/dropout 2*8 + 9*8 and projection 2*8*4 + 4 = 156 -> 2*4 + 9*4 = 44;
    # the head's dense 2*4*8 + 8 -> 2*4*4 + 4, GELU + LN 13*8 -> 13*4, projection 2*8*100 + 100 -> 2*4*100 + 100.
    per_sequence = 10 * ((16 + 72 + 68) - 44) + (72 - 36) + (104 - 52) + (1700 - 900)
    assert flops.flops_per_step(tied) - flops.flops_per_step(untied) == 3 * 4 * per_sequence


def test_two_stage_is_the_mean_of_its_stages():
    config = _config(two_stage_generator_steps=3, num_train_steps=4, generator_hidden_size=1.0,
                     weight_sharing="none", embedding_size=16)
    generator, discriminator = flops.generator_flops(config), flops.discriminator_flops(config)
    # The full-size untied generator is the discriminator's encoder (e = h = 16) under a masked-LM head.
    assert generator == discriminator - 10 * 689 + (2 * 16 * 16 + 16 + 13 * 16 + 2 * 16 * 100 + 100 + 500)
    # Stage 1 trains the generator (3 steps); stage 2 runs it forward and trains the discriminator (1 step).
    assert flops.flops_per_step(config) == pytest.approx((3 * 3 * generator + (generator + 3 * discriminator)) / 4 * 4)
