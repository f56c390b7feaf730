"""``query --data`` / ``select`` / ``answers`` end to end on a tiny real zoo (with and without a generator):
the answer's decision and estimates, --out, recording and reproducing, the bad-data table, select's cache."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

ARCH = "mlp-i64-h8-o3"
OTHER = "cnn-i1x8x8-c4k3-h8-o3"
TASKS = ("digits[classes=0,1,2]", "digits[classes=3,5,8]")

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _digits(classes, n=None):
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.isin(d.target, classes)
    x, y = d.images[keep].astype(np.float32), d.target[keep]
    return (x[:n], y[:n]) if n else (x, y)


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory):
    """A registry: 2 tasks x 2 seeds of ARCH and 1 of OTHER (trained 2 epochs), a tokenizer and a prior on ARCH."""
    root = tmp_path_factory.mktemp("answer")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_ZOO_EMBEDDER", "hash")
        mp.setenv("IGPG_ZOO_CACHE", str(root / "cache"))
        mp.setenv("IGPG_ZOO_PLUGINS", "none")
        from igpg_zoo.adapters import get_adapter
        from igpg_zoo.data import load_dataset
        from igpg_zoo.data.embedding import dataset_embedding_for
        from igpg_zoo.records import CheckpointMeta, Metric
        from igpg_zoo.zoo import open_zoo
        from igpg_zoo.zoobuild.trainer import accuracy, fit, init_module

        with open_zoo(str(root / "plain.db"), embedder="hash") as zoo:
            for arch, seeds in ((ARCH, (0, 1)), (OTHER, (0,))):
                for task in TASKS:
                    ds = load_dataset(task)
                    for seed in seeds:
                        m = fit(init_module(get_adapter(arch).build(arch), seed), ds.x_train, ds.y_train, epochs=2,
                                seed=seed)
                        zoo.add_weights({k: v.detach().clone() for k, v in m.state_dict().items()}, CheckpointMeta(
                            arch=arch, task=task, dataset=task, kind="trained",
                            metrics=(Metric("acc", accuracy(m, ds.x_test, ds.y_test), task + ":test"),),
                            dataset_embedding=tuple(dataset_embedding_for(task).tolist())))
        yield root


@pytest.fixture(scope="module")
def with_generator(zoo_root):
    """A copy of the plain registry with a tiny tokenizer and prior trained on ARCH."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_ZOO_EMBEDDER", "hash")
        mp.setenv("IGPG_ZOO_CACHE", str(zoo_root / "cache"))
        mp.setenv("IGPG_ZOO_PLUGINS", "none")
        from igpg_zoo.igpg.prior_train import PriorTrainConfig, train_prior
        from igpg_zoo.igpg.recipe import Recipe
        from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
        from igpg_zoo.igpg.vqvae import TokenizerConfig
        from igpg_zoo.zoo import open_zoo

        from igpg_zoo.registry.blobs import OWNER

        shutil.copy(zoo_root / "plain.db", zoo_root / "gen.db")
        shutil.copytree(zoo_root / "blobs", zoo_root / "gen-blobs", ignore=shutil.ignore_patterns(OWNER))
        with open_zoo(str(zoo_root / "gen.db"), str(zoo_root / "gen-blobs"), embedder="hash") as zoo:
            items = [(zoo.load_weights(r.id), ARCH) for r in zoo.list(arch=(ARCH,))]
            tok, _ = fit_tokenizer(items, TokenizerConfig(chunk_size=64, tokens_per_chunk=2, codebook_size=16,
                                                          hidden=(32,), code_dim=8, steps=60, refine_steps=0,
                                                          batch_size=32), seed=0, progress=False)
            tensors, config = tok.state()
            zoo.add_artifact("tokenizer", "tiny", tensors, config, {"snapshot": zoo.snapshot()})
            train_prior(zoo, Recipe(prior={"n_layer": 1, "n_embd": 32, "n_head": 2},
                                    train=PriorTrainConfig(steps=30, batch_size=8, warmup=5)),
                        filters={"arch": (ARCH,)})
    return ["--registry", str(zoo_root / "gen.db"), "--blobs", str(zoo_root / "gen-blobs")]


@pytest.fixture
def plain(zoo_root):
    return ["--registry", str(zoo_root / "plain.db")]


@pytest.fixture
def user_npz(tmp_path):
    """Digits 4, 6, 9 (no task of the zoo) as a user's .npz."""
    x, y = _digits([4, 6, 9])
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    return path


def _answers(registry_args) -> int:
    from igpg_zoo.zoo import open_zoo

    with open_zoo(*registry_args[1::2]) as zoo:
        return len(zoo.answers.list())


def test_query_data_without_generator_retrieves_scores_writes_and_records(cli, plain, user_npz, tmp_path):
    before = _answers(plain)
    r = cli("query", "--data", user_npz, *plain, "--json", "--out", tmp_path / "start.safetensors")
    assert r.exit_code == 0, r.stderr
    a = json.loads(r.stdout)
    d = a["decision"]
    assert d["choice"] == "retrieved" and d["mode"] == "auto" and d["chosen"]["id"] is not None
    assert str(d["chosen"]["estimate"])[:5] in d["reason"] or f"{d['chosen']['estimate']:.3f}" in d["reason"]
    scored = [c["estimate"] for c in a["candidates"]]
    assert all(0.0 <= e <= 1.0 for e in scored) and scored == sorted(scored, reverse=True)
    assert a["baselines"][0]["source"] == "random" and a["proposals"]  # no --arch: architectures proposed
    assert a["answer_id"] is not None and _answers(plain) == before + 1
    from safetensors.torch import load_file

    from igpg_zoo.adapters import get_adapter

    module = get_adapter(d["chosen"]["arch"]).build(d["chosen"]["arch"])
    module.load_state_dict(load_file(tmp_path / "start.safetensors"), strict=True)


def test_a_class_count_the_zoo_lacks_gets_a_resized_head(cli, plain, tmp_path):
    x, y = _digits([1, 4, 6, 9])
    np.savez(tmp_path / "four.npz", x=x, y=y)
    r = cli("query", "--data", tmp_path / "four.npz", *plain, "--json", "--no-record")
    assert r.exit_code == 0, r.stderr
    a = json.loads(r.stdout)
    assert {c["arch"] for c in a["candidates"]} <= {ARCH.replace("-o3", "-o4"), OTHER.replace("-o3", "-o4")}
    assert {c["stored_arch"] for c in a["candidates"]} <= {ARCH, OTHER} and a["answer_id"] is None


@pytest.mark.parametrize("extra, rows", [((), 4), (("--all",), 6)])
def test_candidates_are_one_per_task_and_arch_unless_all(cli, plain, user_npz, extra, rows):
    r = cli("query", "--data", user_npz, *plain, "--json", "--no-record", "--mode", "retrieve", *extra)
    assert r.exit_code == 0, r.stderr
    found = json.loads(r.stdout)["candidates"]
    groups = {(c["task"], c["stored_arch"]) for c in found}
    assert len(found) == rows and len(groups) == 4
    if not extra:
        assert {c["group_size"] for c in found if c["stored_arch"] == ARCH} == {2}


def test_generate_mode_answers_with_a_scored_draw_and_its_nearest_member(cli, with_generator, user_npz):
    r = cli("query", "--data", user_npz, *with_generator, "--json", "--mode", "generate", "--arch", ARCH, "-n", "3")
    assert r.exit_code == 0, r.stderr
    a = json.loads(r.stdout)
    drawn = [c for c in a["candidates"] if c["draw"] is not None]
    assert len(drawn) == 3 and all(c["estimate"] is not None for c in drawn)
    assert all("id" in c["draw"]["nearest"] for c in drawn)
    if a["decision"]["choice"] == "generated":
        assert a["decision"]["chosen"]["id"] is None and "nearest member #" in a["decision"]["reason"]
    else:  # every draw replicated a member: answered as that member
        assert all(c["draw"]["replica_of"] for c in drawn if c["source"] == "retrieved")


def test_auto_compares_both_and_the_recorded_answer_reproduces(cli, with_generator, user_npz):
    r = cli("query", "--data", user_npz, *with_generator, "--json", "-n", "2")
    assert r.exit_code == 0, r.stderr
    a = json.loads(r.stdout)
    assert {c["source"] for c in a["candidates"]} >= {"retrieved"} and a["decision"]["best_retrieved"]
    assert any(c["draw"] for c in a["candidates"])  # the generator covers ARCH: draws were scored too
    again = cli("answers", str(a["answer_id"]), "--reproduce", "--data", user_npz, *with_generator, "--json")
    assert again.exit_code == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["same_decision"] and out["again"]["decision"]["chosen"] == a["decision"]["chosen"]


def test_reproducing_with_other_data_is_refused(cli, plain, user_npz, tmp_path):
    a = json.loads(cli("query", "--data", user_npz, *plain, "--json").stdout)
    listed = json.loads(cli("answers", *plain, "--json").stdout)
    assert listed[0]["id"] == a["answer_id"] and listed[0]["decision"]["chosen"] == a["decision"]["chosen"]
    assert listed[0]["inputs"]["data"]["fingerprint"] == a["inputs"]["data"]["fingerprint"]
    x, y = _digits([4, 6, 9], 200)
    np.savez(tmp_path / "other.npz", x=x, y=y)
    r = cli("answers", str(a["answer_id"]), "--reproduce", "--data", tmp_path / "other.npz", *plain)
    assert r.exit_code != 0 and "not the data of answer" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _bad(kind: str, tmp_path):
    x, y = _digits([4, 6, 9], 120)
    path = tmp_path / "bad.npz"
    if kind == "one class":
        np.savez(path, x=x, y=np.zeros(len(y), dtype=int))
    elif kind == "empty":
        np.savez(path, x=x[:0], y=y[:0])
    elif kind == "not an array file":
        path.write_text("x,y\n1,2\n")
    elif kind == "pickle inside":
        np.savez(path, x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4))
    else:
        np.savez(path, x=x, y=y)
    return path


@pytest.mark.parametrize("kind, arch", [
    ("wrong shape for the architecture", "mlp-i4-h16-o3"),
    ("labels out of range", "mlp-i64-h8-o2"),
    ("one class", None), ("empty", None), ("not an array file", None), ("pickle inside", None),
])
@pytest.mark.parametrize("command", ["query", "select"])
def test_bad_data_is_one_line_and_writes_nothing(cli, plain, tmp_path, kind, arch, command):
    before = _answers(plain)
    args = ["--data", _bad(kind, tmp_path), *plain, *(["--arch", arch] if arch else [])]
    if command == "query":
        args += ["--out", tmp_path / "start.safetensors"]
    r = cli(command, *args)
    assert r.exit_code not in (0, None) and r.stderr.startswith("error:"), (r.exit_code, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "start.safetensors").exists() and _answers(plain) == before


def test_select_ranks_with_static_baselines_and_caches(cli, plain, user_npz):
    first = cli("select", "--data", user_npz, *plain, "--json", "--seed", "7", "-k", "3")
    assert first.exit_code == 0, first.stderr
    s1 = json.loads(first.stdout)
    assert s1["scored"] == 6 and s1["cache_hits"] == 0 and len(s1["rows"]) == 3
    assert all({"estimate", "stored_acc", "n_params"} <= row.keys() for row in s1["rows"])
    assert sorted(s1["ranks"]) == ["acc", "estimate", "params"] and len(s1["ranks"]["params"]) == 6
    second = json.loads(cli("select", "--data", user_npz, *plain, "--json", "--seed", "7", "-k", "3").stdout)
    assert second["cache_hits"] == 6 and [r["id"] for r in second["rows"]] == [r["id"] for r in s1["rows"]]
    assert all(r["cached"] for r in second["rows"])


@pytest.mark.parametrize("order, key", [("acc", "stored_acc"), ("params", "n_params")])
def test_select_static_orders(cli, plain, user_npz, order, key):
    r = cli("select", "--data", user_npz, *plain, "--json", "--order", order)
    assert r.exit_code == 0, r.stderr
    values = [row[key] for row in json.loads(r.stdout)["rows"]]
    assert values == sorted(values, reverse=True)


def test_library_answer_hands_out_what_it_scored(zoo_root, user_npz):
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.answer import AnswerSettings
    from igpg_zoo.answer.heads import build
    from igpg_zoo.zoo import open_zoo

    with open_zoo(str(zoo_root / "plain.db")) as zoo:
        a = zoo.answer(data=user_npz, settings=AnswerSettings(mode="retrieve"), record=False)
    c = a.decision.chosen
    assert all(torch.equal(a.weights[k], v) for k, v in a.weights_of(c).items())
    module = build(c.arch, a.weights)
    with torch.no_grad():
        held = (module(torch.as_tensor(a.sample.x_held)).argmax(1).numpy() == a.sample.y_held).mean()
    assert held == pytest.approx(c.held_accuracy) and get_adapter(c.arch).supports(c.arch)


@pytest.mark.parametrize("first", ["select", "query"])
def test_a_recorded_answer_or_select_caches_scores_the_next_answer_reads(zoo_root, user_npz, tmp_path, first):
    from igpg_zoo.answer import AnswerSettings, SelectSettings
    from igpg_zoo.registry.blobs import OWNER
    from igpg_zoo.zoo import open_zoo

    shutil.copy(zoo_root / "plain.db", tmp_path / "z.db")
    shutil.copytree(zoo_root / "blobs", tmp_path / "blobs", ignore=shutil.ignore_patterns(OWNER))
    with open_zoo(str(tmp_path / "z.db"), str(tmp_path / "blobs")) as zoo:
        settings = AnswerSettings(mode="retrieve", seed=3)
        fresh = zoo.answer(data=user_npz, settings=settings, record=False)
        assert not any(c.cached for c in fresh.retrieved)
        if first == "select":
            zoo.select(user_npz, settings=SelectSettings(seed=3))
        else:
            zoo.answer(data=user_npz, settings=settings, record=True)
        again = zoo.answer(data=user_npz, settings=settings, record=False)
    assert again.retrieved and all(c.cached for c in again.retrieved)
    assert [(c.record.id, c.estimate) for c in again.retrieved] == [(c.record.id, c.estimate) for c in fresh.retrieved]
    assert again.decision.reason == fresh.decision.reason
    assert all(torch.equal(again.weights[k], v) for k, v in fresh.weights.items())  # the head fitted alike


@pytest.mark.parametrize("distance, replica", [(0.0, True), (0.01, True), (0.5, False)])
def test_a_draw_that_replicates_a_member_is_answered_as_that_member(zoo_root, user_npz, monkeypatch, distance,
                                                                     replica):
    import igpg_zoo.answer.generated as generated
    from igpg_zoo.answer import AnswerSettings
    from igpg_zoo.zoo import open_zoo

    with open_zoo(str(zoo_root / "plain.db")) as zoo:
        member = zoo.list(arch=(ARCH,), task=(TASKS[1],))[0]
        copy = zoo.load_weights(member.id)
        near = {"id": member.id, "relative_distance": distance, "exact_copy_of": member.id if distance == 0 else None}
        monkeypatch.setattr(generated, "covered_archs", lambda zoo, prior_id=None: [ARCH])
        monkeypatch.setattr(generated, "draw", lambda *a, **k: [generated.Draw(ARCH, copy, -10.0, near, {})])
        a = zoo.answer(data=user_npz, arch=(ARCH,), settings=AnswerSettings(mode="generate", n_generate=1),
                       record=False)
    if replica:
        assert a.generated == [] and a.decision.choice == "retrieved" and a.decision.chosen.record.id == member.id
        assert a.decision.chosen.draw["replica_of"] == member.id and "replicated a member" in a.decision.reason
    else:
        assert a.decision.choice == "generated" and a.decision.chosen.record is None
        assert "nearest member #%d" % member.id in a.decision.reason


@pytest.mark.parametrize("command", ["select", "query"])
def test_tables_show_dataset_names_with_brackets(cli, plain, user_npz, command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: no cell is folded
    r = cli(command, "--data", user_npz, *plain, *(["--no-record"] if command == "query" else []))
    assert r.exit_code == 0, r.stderr
    assert "digits[classes=" in r.stdout  # not swallowed as rich markup
