"""Lossless widening (spec §11, https://kexue.fm/archives/8444): function preserved, hidden = rep(x)/√k.

The BERT tests compare against an independent transcription of the article's table (generalised to k, with
the spec's corrected second-FFN bias), written here over split q/k/v matrices with ``repeat_interleave``; the
same transcription with the article's ``b/k`` or with tiled repetition must fail.
"""

from __future__ import annotations

import math

import pytest
import torch

from kexue.errors import ConfigError
from kexue.models import Transformer, TransformerConfig
from kexue.models.widening import widen_state_dict, widen_transformer
from kexue.nn.norms import ScaleFreeRMSNorm
from tests.models._tiny import max_diff, padded_batch

VOCAB = 50


def random_model(family: str = "bert", layers: int = 1, heads: int = 4, hidden: int = 16, seed: int = 0,
                 **kw) -> Transformer:
    """A float64 model in eval mode with every parameter random (non-trivial norms and biases)."""
    torch.manual_seed(seed)
    cfg = TransformerConfig(family=family, vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=24, max_position_embeddings=32,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                            mlm=kw.pop("mlm", True), **kw)
    model = Transformer(cfg).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.5 if p.dim() == 1 else 1.0 / math.sqrt(p.shape[-1]))
    return model


def run(model: Transformer):
    ids, mask, types = padded_batch(VOCAB, lengths=(12, 9, 4))
    with torch.no_grad():
        return model(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True), mask


def rep(x: torch.Tensor, k: int) -> torch.Tensor:
    return x.repeat_interleave(k, dim=-1)


def logit_diff(a: Transformer, b: Transformer) -> float:
    (oa, mask), (ob, _) = run(a), run(b)
    return max_diff(oa.mlm_logits, ob.mlm_logits, mask)


# ---------------------------------------------------------------------- the article's table, transcribed
def article_widen(state: dict, cfg: TransformerConfig, k: int, *, tiled: bool = False,
                  ffn2_bias_div: float | None = None) -> dict:
    """Spec §11's transforms for BERT (post-LN, GeLU, scaled attention, tied MLM head); ``rep`` repeats locally
    (``[x1,x1,x2,x2]``) or, with ``tiled``, as ``[x, x]``. ``ffn2_bias_div``: the divisor of the second-FFN
    bias (√k correct, the article's k wrong)."""
    def r1(v):
        return v.repeat(k) if tiled else v.repeat_interleave(k)

    def r2(w):
        return w.repeat(k, k) if tiled else w.repeat_interleave(k, 0).repeat_interleave(k, 1)

    def cols(w):
        return w.repeat(1, k) if tiled else w.repeat_interleave(k, 1)

    s = math.sqrt(k)
    q4 = k ** 0.25
    ffn2_bias_div = s if ffn2_bias_div is None else ffn2_bias_div
    out = {}
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        out[f"embeddings.{name}.weight"] = cols(state[f"embeddings.{name}.weight"]) / s
    for name, t in state.items():
        if "norm." in name:
            out[name] = r1(t) / s
    H = cfg.hidden_size
    for i in range(cfg.num_hidden_layers):
        p = f"layers.{i}."
        w, b = state[p + "attention.qkv.weight"], state[p + "attention.qkv.bias"]
        (wq, wk, wv), (bq, bk, bv) = w.split(H), b.split(H)
        out[p + "attention.qkv.weight"] = torch.cat([q4 * r2(wq) / k, q4 * r2(wk) / k, r2(wv) / k])
        out[p + "attention.qkv.bias"] = torch.cat([q4 * r1(bq) / s, q4 * r1(bk) / s, r1(bv) / s])
        out[p + "attention.output.weight"] = r2(state[p + "attention.output.weight"]) / k
        out[p + "attention.output.bias"] = r1(state[p + "attention.output.bias"]) / s
        out[p + "intermediate.weight"] = r2(state[p + "intermediate.weight"]) / s
        out[p + "intermediate.bias"] = r1(state[p + "intermediate.bias"])
        out[p + "output.weight"] = r2(state[p + "output.weight"]) / (k * s)
        out[p + "output.bias"] = r1(state[p + "output.bias"]) / ffn2_bias_div
    out["mlm_head.dense.weight"] = r2(state["mlm_head.dense.weight"]) / s
    out["mlm_head.dense.bias"] = r1(state["mlm_head.dense.bias"])
    out["mlm_head.bias"] = state["mlm_head.bias"].clone()
    assert set(out) == set(state)
    return out


def load_wide(cfg: TransformerConfig, k: int, state: dict, heads: int | None = None) -> Transformer:
    wide_cfg = TransformerConfig(**{**vars(cfg), "hidden_size": cfg.hidden_size * k,
                                    "intermediate_size": cfg.intermediate_size * k,
                                    "num_attention_heads": heads or cfg.num_attention_heads})
    model = Transformer(wide_cfg).double().eval()
    model.load_state_dict(state, strict=True)
    return model


# ---------------------------------------------------------------------- BERT: exact
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("mode", ["head_size", "heads"])
def test_bert_widening_is_lossless(k, layers, mode):
    narrow = random_model("bert", layers=layers, nsp=True)
    wide = widen_transformer(narrow, k, mode)
    assert wide.config.hidden_size == 16 * k and wide.config.intermediate_size == 24 * k
    assert wide.config.num_attention_heads == (4 * k if mode == "heads" else 4)
    (a, mask), (b, _) = run(narrow), run(wide)
    assert max_diff(a.mlm_logits, b.mlm_logits, mask) < 1e-5
    assert max_diff(a.nsp_logits, b.nsp_logits) < 1e-5
    assert len(b.hidden_states) == layers + 1
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert max_diff(rep(x, k) / math.sqrt(k), y, mask) < 1e-5
    assert b.mlm_logits.abs().max() > 1.0  # the comparison is not between two near-zero tensors


@pytest.mark.parametrize("k", [2, 3])
def test_matches_the_articles_table(k):
    narrow = random_model("bert", layers=2, pooler=False)
    state, _ = widen_state_dict(narrow.state_dict(), narrow.config, k)
    ref = article_widen(narrow.state_dict(), narrow.config, k)
    for name in ref:
        assert torch.allclose(state[name], ref[name], atol=1e-12), name


@pytest.mark.parametrize("k", [2, 3])
def test_articles_second_ffn_bias_b_over_k_is_not_lossless(k):
    narrow = random_model("bert", layers=1, pooler=False)
    wrong = load_wide(narrow.config, k, article_widen(narrow.state_dict(), narrow.config, k, ffn2_bias_div=k))
    right = load_wide(narrow.config, k, article_widen(narrow.state_dict(), narrow.config, k))
    assert logit_diff(narrow, right) < 1e-5
    diff = logit_diff(narrow, wrong)
    print(f"k={k}: second-FFN bias b/k -> max |logit diff| {diff:.3g}")
    assert diff > 1e-2
    # and the hidden state after the first block is no longer rep(x)/√k
    (a, mask), (b, _) = run(narrow), run(wrong)
    assert max_diff(rep(a.hidden_states[1], k) / math.sqrt(k), b.hidden_states[1], mask) > 1e-3


def test_tiled_repetition_breaks_with_several_heads_only():
    k = 2
    one = random_model("bert", layers=1, heads=1, pooler=False)
    tiled_one = load_wide(one.config, k, article_widen(one.state_dict(), one.config, k, tiled=True))
    assert logit_diff(one, tiled_one) < 1e-5      # one head: [x, x] is as good as local repetition
    four = random_model("bert", layers=1, heads=4, pooler=False)
    tiled_four = load_wide(four.config, k, article_widen(four.state_dict(), four.config, k, tiled=True))
    diff = logit_diff(four, tiled_four)
    print(f"tiled repetition, 4 heads: max |logit diff| {diff:.3g}")
    assert diff > 1e-2


# ---------------------------------------------------------------------- RoPE: heads mode exact, head size not
@pytest.mark.parametrize("family", ["roformer", "roformer_v2"])
@pytest.mark.parametrize("k", [2, 3])
def test_rope_heads_mode_is_exact_head_size_mode_is_not(family, k):
    narrow = random_model(family, layers=2, hidden=24, heads=3)
    exact = widen_transformer(narrow, k, "heads")
    approx = widen_transformer(narrow, k, "head_size")
    assert exact.config.head_size == narrow.config.head_size and approx.config.head_size == 8 * k
    c = 1.0 if family == "roformer_v2" else 1.0 / math.sqrt(k)
    (a, mask), (b, _), (d, _) = run(narrow), run(exact), run(approx)
    assert max_diff(a.mlm_logits, b.mlm_logits, mask) < 1e-5
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert max_diff(rep(x, k) * c, y, mask) < 1e-5
    diff = max_diff(a.mlm_logits, d.mlm_logits, mask)
    rel = diff / a.mlm_logits.abs().max().item()
    print(f"{family} k={k}: head-size mode with RoPE, max |logit diff| {diff:.3g} (relative {rel:.3g}); "
          f"heads mode {max_diff(a.mlm_logits, b.mlm_logits, mask):.3g}")
    assert diff > 1e-3


def test_rope_head_size_mode_is_exact_at_a_single_position():
    # RoPE rotates nothing at position 0: with one token the article's pair-wise repetition is exact,
    # so the inexactness above comes from the changed rotation frequencies only.
    narrow = random_model("roformer", layers=2, hidden=24, heads=3)
    wide = widen_transformer(narrow, 2, "head_size")
    ids = torch.tensor([[7], [11]])
    with torch.no_grad():
        assert max_diff(narrow(ids).mlm_logits, wide(ids).mlm_logits) < 1e-5


# ---------------------------------------------------------------------- RoFormerV2: scale-free RMS norm
def test_rms_norm_of_a_repeat_is_the_repeat_of_the_norm():
    # why V2 must keep hidden states at rep(x) (not rep(x)/√k): the norm's output always has RMS 1
    z = torch.randn(5, 16, dtype=torch.float64) * 3
    norm = ScaleFreeRMSNorm(1e-12)
    for k in (2, 3):
        assert torch.allclose(norm(rep(z, k)), rep(norm(z), k), atol=1e-12)
        assert torch.allclose(norm(rep(z, k) / math.sqrt(k)), rep(norm(z), k), atol=1e-10)
        out = norm(rep(z, k) / math.sqrt(k))
        assert torch.allclose(out.pow(2).mean(-1), torch.ones(5, dtype=torch.float64), atol=1e-10)


@pytest.mark.parametrize("k", [2, 3])
def test_roformer_v2_widening(k):
    narrow = random_model("roformer_v2", layers=2, hidden=24, heads=3, pooler=False)
    wide = widen_transformer(narrow, k, "heads")
    assert not any(n.endswith("bias") for n, _ in wide.named_parameters())
    assert not any("norm" in n for n, _ in wide.named_parameters())
    (a, mask), (b, _) = run(narrow), run(wide)
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert max_diff(rep(x, k), y, mask) < 1e-5           # rep(x), RMS unchanged
    assert max_diff(a.mlm_logits, b.mlm_logits, mask) < 1e-5
    # the LayerNorm recipe (everything /√k) cannot work: a V2 norm output never has RMS 1/√k
    assert max_diff(rep(a.hidden_states[-1], k) / math.sqrt(k), b.hidden_states[-1], mask) > 0.1


@pytest.mark.parametrize("family", ["roformer", "roformer_v2"])
def test_embedding_projection_widened(family):
    narrow = random_model(family, layers=1, hidden=24, heads=3, embedding_size=10, nsp=True)
    wide = widen_transformer(narrow, 2, "heads")
    assert wide.config.embedding_size == 20
    (a, mask), (b, _) = run(narrow), run(wide)
    assert max_diff(a.mlm_logits, b.mlm_logits, mask) < 1e-5
    assert max_diff(a.nsp_logits, b.nsp_logits) < 1e-5


def test_realformer_and_entropy_invariant_switches_survive():
    narrow = random_model("roformer", layers=3, hidden=24, heads=3, residual_attention=True,
                          attention_scale="entropy_invariant")
    wide = widen_transformer(narrow, 2, "heads")
    assert logit_diff(narrow, wide) < 1e-5


# ---------------------------------------------------------------------- plumbing
def test_factor_one_is_a_copy_and_input_is_untouched():
    narrow = random_model("bert", layers=1)
    before = {k: v.clone() for k, v in narrow.state_dict().items()}
    same = widen_transformer(narrow, 1)
    for name, t in narrow.state_dict().items():
        assert torch.equal(t, before[name]) and torch.equal(same.state_dict()[name], t)


def test_errors_name_the_options():
    narrow = random_model("bert", layers=1)
    with pytest.raises(ConfigError, match="--factor"):
        widen_transformer(narrow, 0)
    with pytest.raises(ConfigError, match="--factor"):
        widen_transformer(narrow, 1.5)
    with pytest.raises(ConfigError, match="--mode"):
        widen_transformer(narrow, 2, mode="tiled")


def test_widened_model_saves_and_loads(tmp_path):
    narrow = random_model("roformer_v2", layers=1, hidden=24, heads=3).float()
    wide = widen_transformer(narrow, 2, "heads")
    wide.save_pretrained(tmp_path / "wide")
    loaded = Transformer.from_pretrained(tmp_path / "wide")
    assert loaded.config.hidden_size == 48 and loaded.config.num_attention_heads == 6
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        assert max_diff(loaded(ids).mlm_logits, narrow(ids).mlm_logits) < 1e-4


def test_cli_widen_writes_a_loadable_folder(tmp_path, tiny_bert_dir):
    from transformers import AutoTokenizer

    from kexue.cli import main

    out = tmp_path / "wide"
    main(["widen", "--model", str(tiny_bert_dir), "--factor", "2", "--mode", "heads", "--output", str(out)])
    narrow = Transformer.from_pretrained(tiny_bert_dir)
    wide = Transformer.from_pretrained(out)
    assert wide.config.hidden_size == 64 and wide.config.num_attention_heads == 8
    tok = AutoTokenizer.from_pretrained(str(out))
    batch = tok(["a man plays the flute", "widening"], padding=True, return_tensors="pt")
    with torch.no_grad():
        a = narrow(**batch, output_hidden_states=True)
        b = wide(**batch, output_hidden_states=True)
    assert max_diff(rep(a.last_hidden_state, 2) / math.sqrt(2), b.last_hidden_state, batch["attention_mask"]) < 1e-4
    assert max_diff(a.pooler_output.repeat_interleave(2, -1), b.pooler_output) < 1e-5


def test_cli_widen_bad_factor_is_one_line_error(tmp_path, tiny_bert_dir, capsys):
    from kexue.cli import main

    with pytest.raises(SystemExit) as err:
        main(["widen", "--model", str(tiny_bert_dir), "--factor", "0", "--output", str(tmp_path / "w")])
    assert err.value.code != 0
    assert "--factor" in capsys.readouterr().err
