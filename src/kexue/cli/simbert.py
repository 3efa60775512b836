"""SimBERT / RoFormer-Sim commands: ``train simbert``, ``similar`` (generate + re-rank) and ``search`` (in-memory
index) (https://kexue.fm/archives/7427, https://kexue.fm/archives/8454)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from kexue.cli import options as O
from kexue.cli.app import app, train_app
from kexue.cli.extraction import ScratchHeads, ScratchHidden, ScratchLayers
from kexue.errors import ConfigError

Model = Annotated[str, typer.Option("--model", "-m", help="A `train simbert` run folder (its best/) or a SimBERT "
                                                          "checkpoint folder (MLM head + pooler).")]


@train_app.command("simbert")
def train_simbert_command(
    output: O.Output = Path("runs/simbert"),
    model: Annotated[str, typer.Option("--model", "-m", help="A BERT / RoFormer / RoFormerV2 checkpoint, an alias "
                                                             "(kexue-zh-mini), a run folder, or 'scratch'.")
                     ] = "scratch",
    data: Annotated[str, typer.Option("--data", "-d", help="Similar pairs: simclue_sample (its positives), afqmc "
                                                           "(label 1), stsb_zh (score >= 4), a file of a<TAB>b "
                                                           "lines, or several joined by commas.")
                    ] = "simclue_sample",
    eval_data: Annotated[str, typer.Option(help="Dataset whose dev Spearman (pooler vectors) selects best/ (not "
                                                "lcqmc after simclue_sample: they overlap).")] = "stsb_zh",
    max_length: Annotated[int, typer.Option(help="Tokens per sentence, special tokens excluded (v1 32, v2 64).")
                          ] = 32,
    scale: Annotated[float, typer.Option(help="Cosine scale of the similarity loss (v1 30, v2 20).")] = 30.0,
    noise_probability: Annotated[float, typer.Option(help="Share of rows whose source gets whole-word (jieba) "
                                                          "masking noise, 15% of words, 80/10/10 (v2: 0.5).")] = 0.0,
    teacher: Annotated[Optional[str], typer.Option(help="Sentence encoder whose cosine matrix is distilled (v2); "
                                                        "replaces the similarity loss, the generation loss stays.")
                       ] = None,
    distill_weight: Annotated[float, typer.Option(help="lambda of the distillation loss.")] = 100.0,
    dropout: Annotated[Optional[float], typer.Option(help="Hidden and attention dropout while training (default "
                                                          "the model's; v2 0.2).")] = None,
    train_limit: Annotated[Optional[int], typer.Option(help="Use only the first N pairs.")] = None,
    eval_limit: Annotated[Optional[int], typer.Option(help="Use only the first N pairs of each eval split.")] = None,
    scratch_hidden: ScratchHidden = 256, scratch_layers: ScratchLayers = 4, scratch_heads: ScratchHeads = 4,
    epochs: O.Epochs = 1, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 64, lr: O.LearningRate = 2e-5,
    warmup_ratio: O.WarmupRatio = 0.0, weight_decay: O.WeightDecay = 0.01, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    progress: O.ProgressBar = True, save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY,
    keep_checkpoints: O.KeepCheckpoints = 1, overwrite: O.Overwrite = False,
) -> None:
    """SimBERT: each pair as A->B and B->A rows, UniLM generation loss + in-batch similarity of the pooler vectors
    (or v2 distillation from --teacher); --batch-size counts pairs (2 rows each)."""
    from kexue.cli.seq2seq import _check, _scratch
    from kexue.hub import resolve_model_path
    from kexue.tasks.simbert import SimBERTConfig, train_simbert

    if batch_size < 2:
        raise ConfigError(f"--batch-size: SimBERT needs at least 2 pairs per batch (in-batch negatives), got "
                          f"{batch_size}")
    if max_length < 1:
        raise ConfigError(f"--max-length: expected an integer >= 1, got {max_length}")
    try:  # the seq2seq checks: scratch sizes, and both sentences of a row within the model's positions
        _check(model, max_length, max_length, batch_size, (scratch_hidden, scratch_layers, scratch_heads))
    except ConfigError as err:
        raise ConfigError(str(err).replace(f"--max-source-length {max_length} + --max-target-length {max_length}",
                                           f"2 x --max-length {max_length}")) from None
    if teacher is not None:
        try:
            resolve_model_path(teacher)
        except ConfigError as err:
            raise ConfigError(f"--teacher: {err}") from None
    cfg = SimBERTConfig(model=model, data=data, eval_data=eval_data, max_length=max_length, scale=scale,
                        noise_probability=noise_probability, teacher=teacher, distill_weight=distill_weight,
                        dropout=dropout, train_limit=train_limit, eval_limit=eval_limit,
                        scratch=_scratch(scratch_hidden, scratch_layers, scratch_heads))
    tcfg = O.trainer_config(output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                            warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                            eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
                            save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite,
                            metric_for_best="spearman")
    results = train_simbert(cfg, tcfg, log=typer.echo)
    if results:
        typer.echo(f"best model: {results['best_dir']}  (then: kexue similar --model {output} \"...\")")


@app.command("similar")
def similar_command(
    text: Annotated[str, typer.Argument(help="The sentence to paraphrase ([MASK] tokens allowed).")],
    model: Model,
    num_samples: Annotated[int, typer.Option(help="Candidates drawn in one batched sampling call.")] = 100,
    keep: Annotated[int, typer.Option(help="Best candidates printed (after dedup and re-ranking).")] = 20,
    top_k: Annotated[Optional[int], typer.Option(help="Sample from the k most likely tokens (v1: 5).")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Sample from the smallest set with mass >= p (v2: 0.95, "
                                                        "the default when neither is given).")] = None,
    temperature: Annotated[float, typer.Option(help="Divides the logits.")] = 1.0,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="Most generated tokens, [SEP] included (default: "
                                                               "the model's max length + 1).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampling draws.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object {text, score} per line.")] = False,
) -> None:
    """Generate sentences similar to TEXT, drop duplicates and copies of it, and print them re-ranked by the
    model's own cosine: `score<TAB>sentence`, best first."""
    from kexue.tasks.simbert import SimBERTModel
    from kexue.tasks.simbert_generate import CandidateSampler, SimilarSentenceGenerator

    for flag, value in (("--num-samples", num_samples), ("--keep", keep), ("--max-new-tokens", max_new_tokens)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")
    if not text.strip():
        raise ConfigError("TEXT: expected a sentence, got an empty string")
    CandidateSampler(seed, top_k=top_k, top_p=top_p, temperature=temperature)  # validates before loading
    sim = SimBERTModel.from_pretrained(model)
    generator = SimilarSentenceGenerator(sim.backbone, sim.encoder, sim.max_length)
    ranked = generator.generate(text, num_samples, keep, top_k=top_k, top_p=top_p, temperature=temperature,
                                max_new_tokens=max_new_tokens or sim.max_length + 1, seed=seed)
    for cand in ranked:
        typer.echo(json.dumps({"text": cand.text, "score": cand.score}, ensure_ascii=False) if as_json
                   else f"{cand.score:.4f}\t{cand.text}")


@app.command("search")
def search_command(
    queries: Annotated[Optional[list[str]], typer.Argument(help="Query sentences (default: lines of stdin).")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="A sentence encoder: a `train simbert` run (pooler "
                                                             "vectors), any run folder, checkpoint or alias.")
                     ] = "minilm",
    sentences: Annotated[Path, typer.Option("--sentences", "-s", help="The searchable sentences, one per line.")
                         ] = Path("sentences.txt"),
    top_k: Annotated[int, typer.Option(help="Results per query.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Sentences per forward pass when indexing.")] = 64,
) -> None:
    """Index the sentence file in memory (exact cosine: numpy, or faiss when installed) and print, per query, one
    JSON line {query, results: [{text, score}, ...]} best first."""
    from kexue.cli.inputs import read_text_lines
    from kexue.embeddings import SentenceEncoder
    from kexue.hub import resolve_model_path
    from kexue.tasks.simbert_generate import SentenceIndex

    for flag, value in (("--top-k", top_k), ("--batch-size", batch_size)):
        if value < 1:
            raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")
    resolve_model_path(model)
    corpus = read_text_lines(sentences, flag="--sentences")
    queries = list(queries) if queries else read_text_lines(None)
    index = SentenceIndex(SentenceEncoder.from_pretrained(model), corpus, batch_size=batch_size)
    for query, results in zip(queries, index.search(queries, top_k)):
        typer.echo(json.dumps({"query": query, "results": [{"text": c.text, "score": c.score} for c in results]},
                              ensure_ascii=False))
