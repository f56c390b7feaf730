"""A generated model exports and runs: IGPG generate -> register -> igpg-zoo export (ONNX, native)
-> onnxruntime / re-import give PyTorch's outputs; and ``igpg-zoo generate --out --format onnx``.

The zoo is tiny and untrained (random inits): this tests the plumbing, not generation quality.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

ARCH = "cnn-i1x8x8-c4k3-o3-bn"  # BatchNorm: generated models get their buffers by the tokenizer's policy
TASK = "digits[classes=0,1,2]"

# fits a tokenizer and a prior (seconds on a quiet machine, a minute on a loaded one)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A registry with 4 members, a tokenizer, a prior, and one registered generated model."""
    root = tmp_path_factory.mktemp("gen-export")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_ZOO_EMBEDDER", "hash")
        mp.setenv("IGPG_ZOO_CACHE", str(root / "cache"))
        mp.setenv("IGPG_ZOO_PLUGINS", "none")
        from igpg_zoo.adapters import get_adapter
        from igpg_zoo.data.embedding import dataset_embedding_for
        from igpg_zoo.igpg.generate import GenerateRequest, Generator
        from igpg_zoo.igpg.prior_train import PriorTrainConfig, train_prior
        from igpg_zoo.igpg.recipe import Recipe
        from igpg_zoo.igpg.sampling import SamplingSettings
        from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
        from igpg_zoo.igpg.vqvae import TokenizerConfig
        from igpg_zoo.records import CheckpointMeta
        from igpg_zoo.zoo import open_zoo
        from igpg_zoo.zoobuild.trainer import init_module

        zoo = open_zoo(str(root / "registry.db"), embedder="hash")
        embedding = tuple(dataset_embedding_for(TASK).tolist())
        items = []
        for seed in range(4):
            w = init_module(get_adapter(ARCH).build(ARCH), seed).state_dict()
            zoo.add_weights(w, CheckpointMeta(arch=ARCH, task=TASK, dataset=TASK, kind="trained",
                                              dataset_embedding=embedding))
            items.append((w, ARCH))
        tok, _ = fit_tokenizer(items, TokenizerConfig(codebook_size=16, hidden=(32,), code_dim=8, steps=30,
                                                      refine_steps=0, batch_size=16), seed=0, progress=False)
        tensors, config = tok.state()
        zoo.add_artifact("tokenizer", "tiny", tensors, config, {"snapshot": zoo.snapshot()})
        train_prior(zoo, Recipe(prior={"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 8},
                                train=PriorTrainConfig(steps=10, batch_size=4, warmup=2)))
        best = Generator.load(zoo).generate(GenerateRequest(ARCH, task=TASK, n=1, seed=3, neighbours=False,
                                                            sampling=SamplingSettings(temperature=1.0)))[0]
        record = zoo.add_weights(best.weights, CheckpointMeta(arch=ARCH, task=TASK, dataset=TASK, kind="generated",
                                                              extra={"provenance": best.provenance})).checkpoint
        zoo.close()
        yield root, record, best.weights


def _torch_outputs(weights: dict, x: torch.Tensor, estimate: bool = False) -> np.ndarray:
    """Outputs of ``weights``; with ``estimate``, BatchNorm statistics first estimated on the task's
    training split as an export of a record generated without data does (export.batchnorm)."""
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.export.batchnorm import estimate as estimate_on, training_sample

    module = get_adapter(ARCH).build(ARCH)
    module.load_state_dict(weights, strict=True)
    if estimate:
        estimate_on(module, training_sample(TASK))
    with torch.no_grad():
        return module.eval()(x).numpy()


def test_the_record_was_generated_without_batchnorm_statistics(generated):
    _, record, weights = generated
    assert float(weights["bn1.running_mean"].abs().max()) == 0.0 and bool((weights["bn1.running_var"] == 1).all())


def test_generated_record_exports_to_onnx_and_runs(generated, cli, tmp_path):
    root, record, weights = generated
    result = cli("export", record.id, "--format", "onnx", "--out", tmp_path / "gen.onnx",
                 "--registry", root / "registry.db")
    assert result.exit_code == 0, result.stderr
    assert "parity max|diff| = " in result.stdout

    x = torch.randn(5, 1, 8, 8)
    session = ort.InferenceSession(str(tmp_path / "gen.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.isfinite(got).all() and np.abs(got - _torch_outputs(weights, x, estimate=True)).max() <= 1e-4
    assert np.abs(got - _torch_outputs(weights, x)).max() > 1e-3  # the statistics did change
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "gen.onnx")).metadata_props}
    provenance = json.loads(props["provenance"])
    facts = provenance.pop("batchnorm")  # the export's facts replace generation's "fresh defaults"
    generated_with = dict(record.extra["provenance"])
    assert generated_with.pop("batchnorm").startswith("fresh defaults")
    assert props["kind"] == "generated" and provenance == generated_with
    assert facts == {"layers": 1, "statistics": "estimated", "on": f"{TASK}:train", "samples": 430, "when": "export"}


def test_generated_record_native_folder_re_imports(generated, cli, tmp_path):
    root, record, weights = generated
    result = cli("export", record.id, "--format", "native", "--out", tmp_path / "folder",
                 "--registry", root / "registry.db")
    assert result.exit_code == 0, result.stderr
    result = cli("add", tmp_path / "folder", "--json", "--registry", tmp_path / "other.db")
    assert result.exit_code == 0, result.stderr
    added = json.loads(result.stdout)
    assert added["arch"] == ARCH and added["sha256"] != record.sha256  # BatchNorm statistics estimated
    provenance = dict(added["extra"]["provenance"])
    assert provenance.pop("batchnorm")["on"] == f"{TASK}:train"
    generated_with = dict(record.extra["provenance"])
    assert generated_with.pop("batchnorm").startswith("fresh defaults")
    assert added["kind"] == "generated" and provenance == generated_with
    assert (added["task"], added["dataset"]) == (TASK, TASK)


def test_generate_out_register_then_add_keeps_the_label(generated, cli, tmp_path):
    root, _, _ = generated
    out = tmp_path / "gen.safetensors"
    result = cli("generate", "--arch", ARCH, "--dataset", TASK, "--out", out, "--register", "--seed", "5",
                 "--registry", root / "registry.db", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    added = json.loads(cli("add", out, "--json", "--registry", tmp_path / "other.db").stdout)
    assert (added["kind"], added["dataset"]) == ("generated", TASK)
    assert added["extra"]["provenance"] == json.loads(json.dumps(report["provenance"]))
    assert added["extra"]["generator_artifact_id"] == report["provenance"]["generator"]["prior_artifact_id"]


def test_generate_cli_writes_onnx_through_export_weights(generated, cli, tmp_path):
    root, _, _ = generated
    out = tmp_path / "fresh.onnx"
    result = cli("generate", "--arch", ARCH, "--dataset", TASK, "--out", out, "--format", "onnx",
                 "--registry", root / "registry.db", "--json")
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 4):  # dynamic batch axis
        y = session.run(None, {session.get_inputs()[0].name: np.random.randn(batch, 1, 8, 8).astype(np.float32)})[0]
        assert y.shape == (batch, 3) and np.isfinite(y).all()
