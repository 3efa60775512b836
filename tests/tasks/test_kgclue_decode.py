"""KgCLUE constrained decoding (spec §9): toy trie, outputs always keys, exhaustive beam = brute force, look-ahead."""

import itertools
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.tasks.kgclue_decode import KeyTrie, _step_scores, constrained_beam_search, lookahead_weights

END = 0
V = 12


def toy_trie():
    words = ["明月几时有", "明天会更好", "明天下雨", "明天下午开会", "明天下午放假", "明年见", "今夕是何年", "今天去哪里玩"]
    vocab = {ch: i + 1 for i, ch in enumerate(dict.fromkeys("".join(words)))}
    trie = KeyTrie()
    for w in words:
        trie.add([vocab[c] for c in w], w)
    return trie, vocab


def test_toy_database_of_the_post():
    trie, v = toy_trie()
    ids = lambda text: [v[c] for c in text]  # noqa: E731
    assert set(trie.next_tokens([])) == set(ids("明今"))
    assert set(trie.next_tokens(ids("明"))) == set(ids("月天年"))
    assert set(trie.next_tokens(ids("明天"))) == set(ids("会下"))
    assert set(trie.next_tokens(ids("明天下"))) == set(ids("雨午"))
    assert {trie.get(k) for k in trie.keys(ids("明天下午"))} == {"明天下午开会", "明天下午放假"}
    assert trie.next_tokens(ids("明天下雨")) == [] and trie.is_key(ids("明天下雨"))
    assert trie.get(ids("明天下")) is None and trie.size == 8


class ScriptedStepper:
    """Logits that depend only on (source row, target prefix): a seeded table, so brute force can score keys."""

    def __init__(self, seed, scale=3.0, adversarial=False):
        self.seed, self.scale, self.adversarial = seed, scale, adversarial

    def logits_of(self, src, prefix):
        g = torch.Generator().manual_seed(hash((self.seed, src, tuple(prefix))) % (2 ** 31))
        out = torch.randn(V, generator=g) * self.scale
        if self.adversarial:  # the allowed tokens get -inf or huge negative scores
            out[1:] = torch.where(torch.rand(V - 1, generator=g) < 0.5, torch.tensor(-math.inf), torch.tensor(-1e30))
            out[END] = 50.0
        return out

    def start(self, input_ids, attention_mask, token_type_ids):
        self.state = [(i, []) for i in range(input_ids.shape[0])]
        return self._out()

    def _out(self):
        return torch.stack([self.logits_of(s, p) for s, p in self.state])

    def step(self, tokens):
        self.state = [(s, p + [int(t)]) for (s, p), t in zip(self.state, tokens)]
        return self._out()

    def select(self, rows):
        self.state = [self.state[i] for i in rows.tolist()]


def random_trie(rng, n_keys):
    trie = KeyTrie()
    keys = set()
    while len(keys) < n_keys:
        keys.add(tuple(rng.randint(1, V - 1) for _ in range(rng.randint(1, 4))))
    for k in keys:
        trie.add(list(k), k)
    return trie, keys


def brute_best(stepper, src, trie, keys):
    def score(key):
        total, prefix = 0.0, []
        for token in [*key, END]:
            allowed = trie.next_tokens(prefix) + ([END] if trie.is_key(prefix) else [])
            s = _step_scores(stepper.logits_of(src, prefix), allowed, None)
            total += float(s[allowed.index(token)])
            prefix = prefix + [token]
        return total
    return max(keys, key=score)


def _batch(n):
    return {"input_ids": torch.ones(n, 3, dtype=torch.long), "attention_mask": torch.ones(n, 3, dtype=torch.long),
            "token_type_ids": torch.zeros(n, 3, dtype=torch.long)}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(1, 12), st.booleans(), st.booleans())
def test_every_output_is_a_key(seed, beam, n_keys, adversarial, lookahead):
    import random
    rng = random.Random(seed)
    trie, keys = random_trie(rng, n_keys)
    questions = [[rng.randint(1, V - 1) for _ in range(4)] for _ in range(3)]
    out = constrained_beam_search(ScriptedStepper(seed, adversarial=adversarial), _batch(3), trie, END, beam,
                                  questions=questions, lookahead=lookahead, sep_id=1)
    assert len(out) == 3
    assert all(tuple(o) in keys for o in out)


def test_exhaustive_beam_equals_brute_force():
    import random
    for seed in range(8):
        rng = random.Random(seed)
        trie, keys = random_trie(rng, 6)
        stepper = ScriptedStepper(seed)
        out = constrained_beam_search(stepper, _batch(4), trie, END, beam_size=len(keys) * 4)
        for src in range(4):
            assert tuple(out[src]) == brute_best(stepper, src, trie, keys)


def test_greedy_follows_the_best_allowed_token():
    trie = KeyTrie()
    for k in ([1, 2], [1, 3, 4], [5]):
        trie.add(k, tuple(k))
    logits = {(): [0, 5, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0], (5,): [3, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]}

    class Fixed(ScriptedStepper):
        def logits_of(self, src, prefix):
            return torch.tensor(logits.get(tuple(prefix), [0.0] * V), dtype=torch.float)
    assert constrained_beam_search(Fixed(0), _batch(1), trie, END, 1) == [[5]]


def test_step_scores_renormalise_and_never_nan():
    logits = torch.tensor([0.0, 1.0, 2.0, 3.0])
    s = _step_scores(logits, [1, 3], None)
    torch.testing.assert_close(s.exp(), torch.tensor([math.e / (math.e + math.e ** 3), math.e ** 3 / (math.e + math.e ** 3)],
                                                     dtype=torch.float64))
    s = _step_scores(torch.tensor([0.0, -math.inf, -math.inf]), [1, 2], None)
    torch.testing.assert_close(s.exp(), torch.tensor([0.5, 0.5], dtype=torch.float64))
    # all-zero Δ leaves probabilities unchanged; Δ = 2 turns p into p^(1/3) before renormalising
    p = torch.tensor([0.2, 0.5, 0.3])
    same = _step_scores(p.log(), [0, 1, 2], [1.0, 1.0, 1.0]).exp()
    torch.testing.assert_close(same, p.double())
    cube = _step_scores(p.log(), [0, 1, 2], [3.0, 1.0, 1.0]).exp()
    raw = torch.tensor([0.2 ** (1 / 3), 0.5, 0.3], dtype=torch.float64)
    torch.testing.assert_close(cube, raw / raw.sum())


def test_lookahead_weights():
    trie = KeyTrie()
    sep = 9
    # keys S=[1] sep P: [1, 9, 2, 3] and [1, 9, 4, 5]; question contains 2, 3 -> Δ = 2 on the token 2 branch
    trie.add([1, sep, 2, 3], "a")
    trie.add([1, sep, 4, 5], "b")
    question = [7, 2, 3, 8]
    assert lookahead_weights(trie, [1, sep], question, [2, 4]) == [3.0, 1.0]
    assert lookahead_weights(trie, [1, sep], [7, 7], [2, 4]) == [1.0, 1.0]
    # Δ is measured from the prefix's own LCS: a question sharing [1] only gives Δ = 0 everywhere
    assert lookahead_weights(trie, [1, sep], [1], [2, 4]) == [1.0, 1.0]
    assert list(itertools.chain(trie.keys([1, sep, 2]))) == [[1, sep, 2, 3]]
