"""The embedded zoo: offline loading, every reward, every error path, and the quick build."""

import json
import os
import time

import pytest

from rlhf_core import runs, zoo
from rlhf_core.config import RunConfig
from rlhf_core.rewards import RewardError, get_reward, list_rewards

from .conftest import cli

POSITIVE = "This film is a masterpiece. Brilliant acting, a wonderful story, and I loved every minute of it."
NEGATIVE = "This film is awful. Terrible acting, a boring story, and I hated every minute of it. A waste."


@pytest.fixture(scope="module")
def policy():
    return zoo.load_policy("imdb-tiny")


def test_policy_loads_offline_and_generates(policy):
    from rlhf_core.generation import generate

    model, tok = policy
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert tok.padding_side == "left" and tok.eos_token and tok.pad_token and tok.pad_token != tok.eos_token
    assert 3000 <= len(tok) <= 5000
    n_params = sum(p.numel() for p in model.parameters())
    assert 1e6 <= n_params <= 5e6
    out = generate(model, tok, ["This movie was"], n=4, max_new_tokens=16, seed=0)
    assert len(out) == 1 and len(out[0]) == 4
    assert all(isinstance(t, str) and t.strip() for t in out[0])


def test_tokenizer_loads_with_autotokenizer():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(zoo.asset_dir("imdb-tiny"))
    assert tok.padding_side == "left"
    assert tok.decode(tok("This movie was great")["input_ids"]) == "This movie was great"


def test_sft_positive_policy_loads():
    model, tok = zoo.load_policy("imdb-tiny-sft-positive")
    assert model.config.n_layer == zoo.load_policy("imdb-tiny")[0].config.n_layer


def test_committed_weights_are_small_safetensors():
    total = 0
    for root, _, files in os.walk(zoo.ASSETS):
        for f in files:
            assert not f.endswith((".bin", ".pt", ".pkl")), f
            if f.endswith(".safetensors"):
                total += os.path.getsize(os.path.join(root, f))
    assert 0 < total <= 20 * 1024 * 1024


@pytest.mark.parametrize("name", ["vader", "learned-rm", "gold-rm", "gold-prime-rm"])
def test_sentiment_rewards_rank_positive_above_negative(name):
    reward = get_reward(name)
    pos, neg = reward([POSITIVE, NEGATIVE])
    assert pos > neg


def test_gold_prime_sees_repetition_that_gold_rm_does_not():
    """gold′'s reason to exist: on held-out endings with a word or two repeated in place, it prefers the
    natural text far more often than gold-rm does (the build measured about 0.97 against 0.54)."""
    import random

    from rlhf_core.zoo.build import CORRUPTIONS, degeneracy_pairs, pair_accuracy
    from rlhf_core.zoo.data import imdb_reviews, split

    _train, held = split(imdb_reviews())
    accuracy = {}
    for name in ("gold-rm", "gold-prime-rm"):
        model, tok = zoo.load_sequence_classifier(name, "reward model")
        pairs = [p for i, p in enumerate(degeneracy_pairs(held, 240, tok, random.Random(5)))
                 if CORRUPTIONS[i % len(CORRUPTIONS)] == "repetition"]
        accuracy[name] = pair_accuracy(model, tok, pairs)
    assert accuracy["gold-prime-rm"] >= 0.85 and accuracy["gold-rm"] <= 0.7, accuracy


def test_vader_range():
    scores = get_reward("vader")([POSITIVE, NEGATIVE, ""])
    assert all(-1 <= s <= 1 for s in scores) and scores[2] == 0


def test_length_and_keyword():
    length = get_reward("length:5")
    assert length(["one two three four five", "one", ""]) == [1.0, pytest.approx(0.2), pytest.approx(0.0)]
    assert get_reward("length")(["word " * 20])[0] == 1.0
    kw = get_reward("keyword:great")
    assert kw(["A Great film", "greatest hits", "bad"]) == [1.0, 0.0, 0.0]
    with pytest.raises(RewardError, match="keyword:<word>"):
        get_reward("keyword:")
    with pytest.raises(RewardError, match="whole number"):
        get_reward("length:abc")


def test_unknown_reward_names_choices():
    with pytest.raises(RewardError, match="unknown reward 'nope'.*vader"):
        get_reward("nope")


def test_hub_reward_offline_is_one_clear_error_within_5s():
    t0 = time.time()
    with pytest.raises(RewardError) as e:
        get_reward("hub:lvwerra/distilbert-imdb")
    assert time.time() - t0 < 5
    msg = str(e.value)
    assert "lvwerra/distilbert-imdb" in msg and "unreachable" in msg and "\n" not in msg


def test_hub_policy_offline_is_a_clear_error_not_a_fallback():
    with pytest.raises(zoo.ZooError, match="'gpt2'.*unreachable"):
        zoo.load_policy("gpt2")


def test_local_folder_errors(tmp_path):
    with pytest.raises(zoo.ZooError, match="no config.json"):
        zoo.load_policy(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(zoo.ZooError, match="pickle"):
        zoo.load_policy(str(tmp_path))
    with pytest.raises(zoo.ZooError, match="no such folder"):
        zoo.load_policy("./does/not/exist")


def test_tokenizer_model_vocab_mismatch(tmp_path):
    import shutil

    from transformers import AutoModelForCausalLM, GPT2Config

    folder = tmp_path / "mismatch"
    shutil.copytree(zoo.asset_dir("imdb-tiny"), folder)
    small = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=100, n_layer=1, n_embd=16, n_head=2))
    small.save_pretrained(folder, safe_serialization=True)
    with pytest.raises(zoo.ZooError, match="tokenizer has .* tokens but the model"):
        zoo.load_policy(str(folder))


GOOD_REWARD = "def reward(prompts, completions):\n    return [float(len(c)) for c in completions]\n"


def _write(tmp_path, body, name="r.py"):
    p = tmp_path / name
    p.write_text(body)
    return str(p)


def test_file_reward_requires_opt_in(tmp_path, monkeypatch):
    path = _write(tmp_path, GOOD_REWARD)
    with pytest.raises(RewardError, match=r"RLHF_EXPLORER_ALLOW_CODE=1 \(files in rewards/ only\) or the CLI flag"):
        get_reward(f"file:{path}:reward")
    assert get_reward(f"file:{path}:reward", allow_code=True)(["ab", "abcd"]) == [2.0, 4.0]


def test_server_opt_in_loads_code_only_from_the_rewards_folder(tmp_path, monkeypatch):
    """The opt-in ON case: with RLHF_EXPLORER_ALLOW_CODE=1 (how the UI gets it) a file in the
    rewards folder loads; a file outside it, a '..' path and a symlink leading out are refused
    before their code runs; the CLI's explicit flag still takes any path; hosted takes none."""
    folder = tmp_path / "rewards"
    folder.mkdir()
    inside = _write(folder, GOOD_REWARD)
    marker = tmp_path / "ran"
    outside = _write(tmp_path, f"open({str(marker)!r}, 'w')\n" + GOOD_REWARD, name="evil.py")
    (folder / "link.py").symlink_to(outside)
    monkeypatch.setenv("RLHF_EXPLORER_ALLOW_CODE", "1")
    monkeypatch.setenv("RLHF_EXPLORER_REWARDS_DIR", str(folder))
    assert get_reward(f"file:{inside}:reward")(["abc"]) == [3.0]
    for sneaky in (outside, f"{folder}/../evil.py", str(folder / "link.py")):
        with pytest.raises(RewardError, match="outside the rewards folder"):
            get_reward(f"file:{sneaky}:reward")
        with pytest.raises(RewardError, match="outside the rewards folder"):
            runs.preflight(RunConfig.parse({"reward": f"file:{sneaky}:reward"}))
    assert not marker.exists()
    assert get_reward(f"file:{outside}:reward", allow_code=True)(["ab"]) == [2.0]  # the CLI's flag
    monkeypatch.setenv("RLHF_EXPLORER_HOSTED", "1")
    with pytest.raises(RewardError, match="off on a hosted server"):
        get_reward(f"file:{inside}:reward")


def test_the_shipped_example_reward_loads_with_the_server_opt_in(monkeypatch):
    monkeypatch.setenv("RLHF_EXPLORER_ALLOW_CODE", "1")
    reward = get_reward("file:rewards/example.py:exclamations")  # relative to the project folder
    assert reward(["fine", "great!!", "!!!!!!"]) == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("body,match", [
    ("def reward(p, c):\n    return [1.0 for _ in c\n", "syntax error at line"),
    ("def reward(p, c):\n    raise RuntimeError('boom')\n", "raised RuntimeError: boom"),
    ("def reward(p, c):\n    return [1.0]\n", "returned 1 values for 2 texts"),
    ("def reward(p, c):\n    return ['a', 'b']\n", "returned a str at position 0"),
    ("def reward(p, c):\n    return 3.0\n", "must return a list"),
    ("x = 1\n", "defines no function 'reward'"),
])
def test_file_reward_errors(tmp_path, body, match):
    path = _write(tmp_path, body)
    with pytest.raises(RewardError, match=match):
        get_reward(f"file:{path}:reward", allow_code=True)(["a", "b"])


def test_file_reward_missing_file(tmp_path):
    with pytest.raises(RewardError, match="does not exist"):
        get_reward(f"file:{tmp_path}/nope.py:reward", allow_code=True)


def test_reward_listing_has_descriptions_and_ranges():
    rows = {r["name"]: r for r in list_rewards()}
    assert {"vader", "learned-rm", "gold-rm", "length", "keyword", "hub", "file"} <= set(rows)
    assert rows["hub"]["needs_network"] and not rows["vader"]["needs_network"]
    assert all(r["description"].endswith(".") for r in rows.values())


def test_build_quick_end_to_end(tmp_path):
    out = tmp_path / "zoo"
    r = __import__("subprocess").run(
        [__import__("sys").executable, "-m", "rlhf_core.zoo", "build", "--quick", "--out", str(out)],
        cwd=os.path.dirname(os.path.dirname(__file__)), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("imdb-tiny", "imdb-tiny-sft-positive", "learned-rm", "gold-rm", "gold-prime-rm"):
        assert os.path.isfile(out / name / "model.safetensors")
        assert os.path.isfile(out / name / "tokenizer.json")
    model, tok = zoo.load_policy(str(out / "imdb-tiny"))
    assert tok.padding_side == "left"
    report = json.loads((out / "build_report.json").read_text())
    assert 0 <= report["learned-rm"]["held_out_pair_accuracy"] <= 1
    # the judge is independent of the proxy: other reviews, another seed, another starting point
    proxy, judge = (json.loads((out / n / "zoo.json").read_text()) for n in ("learned-rm", "gold-rm"))
    assert "proxy half" in proxy["reviews"] and "gold half" in judge["reviews"]
    assert proxy["seed"] != judge["seed"] and proxy["initialised_from"] != judge["initialised_from"]
    prime = json.loads((out / "gold-prime-rm" / "zoo.json").read_text())
    assert prime["initialised_from"] == "gold-rm" and prime["degeneracy_pairs"] > 0
    assert 0 <= prime["held_out_degeneracy_accuracy"] <= 1 and len(prime["probe_scores"]) == 5
    agreement = proxy["agreement_with_gold"]
    assert 0 <= agreement["same_preference"] <= 1 and -1 <= agreement["score_correlation"] <= 1


def test_reward_model_halves_are_disjoint_and_labs_train_only_on_the_proxy_half():
    from rlhf_core.labs.support import imdb
    from rlhf_core.zoo.data import imdb_reviews, reward_model_split, split

    train, _held = split(imdb_reviews())
    gold_half, proxy_half = reward_model_split(train)
    assert len(gold_half) + len(proxy_half) == len(train)
    assert not {r.text for r in gold_half} & {r.text for r in proxy_half}
    lab_train, _ = imdb.reviews()
    assert lab_train == proxy_half


def test_cli_zoo_score_generate():
    r = cli("zoo", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert {p["name"] for p in data["policies"]} >= {"imdb-tiny", "imdb-tiny-sft-positive", "gpt2"}
    assert any(x["name"] == "learned-rm" and x["held_out_pair_accuracy"] >= 0.8 for x in data["rewards"])
    r = cli("score", "--reward", "vader", POSITIVE, NEGATIVE)
    assert r.returncode == 0, r.stderr
    pos, neg = json.loads(r.stdout)
    assert pos > 0 > neg
    r = cli("generate", "--policy", "imdb-tiny", "--prompt", "This movie was", "-n", "3", "--json")
    assert r.returncode == 0, r.stderr
    texts = json.loads(r.stdout)
    assert len(texts) == 3 and all(t.startswith("This movie was") for t in texts)
    assert r.stderr == ""  # the answer only: no weight-loading progress bars or library chatter
    r = cli("score", "--reward", "learned-rm", POSITIVE)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_zoo_eval_cli():
    r = cli("zoo", "eval", "--policy", "imdb-tiny", "--json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    data = json.loads(r.stdout)
    assert data["samples"] == 64 and 0 < data["real_word_fraction"] <= 1 and 0 < data["distinct_2"] <= 1
    assert data["heldout_loss"] > 0 and data["heldout_bits_per_char"] > 0
    assert data["real_reviews"]["real_word_fraction"] > 0.98
    r = cli("zoo", "eval", "--policy", "no-such-policy-xyz")
    assert r.returncode == 2 and "no-such-policy-xyz" in r.stderr and "Traceback" not in r.stderr


def test_readability_measures_can_tell_text_from_noise():
    """The real-word fraction and distinct-2 must separate real reviews from the same reviews
    with their letters shuffled inside each word, and from a looping "hacked" text."""
    import random

    from rlhf_core.zoo.data import imdb_reviews, split
    from rlhf_core.zoo.evaluate import distinct_2, real_word_fraction

    real = [r.text[:300] for r in split(imdb_reviews())[1][:100]]
    rng = random.Random(0)
    shuffled = [" ".join("".join(rng.sample(w, len(w))) for w in t.split()) for t in real]
    assert real_word_fraction(real) > 0.97 > 0.6 > real_word_fraction(shuffled)
    assert distinct_2(real) > 0.5 > 0.1 > distinct_2(["great great best best great great best best"] * 20)


@pytest.mark.parametrize("args,needle", [
    (("score", "--reward", "nope", "x"), "unknown reward 'nope'"),
    (("generate", "--policy", "no-such-model-xyz", "--prompt", "x"), "no-such-model-xyz"),
    (("generate", "--policy", "./missing/folder", "--prompt", "x"), "no such folder"),
])
def test_cli_bad_names_one_line(args, needle):
    r = cli(*args)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr
