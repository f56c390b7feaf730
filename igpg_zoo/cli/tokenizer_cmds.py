"""``igpg-zoo tokenize ID``: a model's token sequence and what the round trip through the tokenizer costs.

torch and the tokenizer load inside the command only, so ``--help`` stays instant.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer

from igpg_zoo.cli.options import BlobsOpt, JsonOpt, RegistryOpt


def _accuracy(record, weights: dict, arch: str) -> tuple[float | None, str]:
    """(test accuracy of ``weights`` on the record's dataset, "") or (None, why it was skipped)."""
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.data import load_dataset
    from igpg_zoo.errors import ZooError
    from igpg_zoo.zoobuild.trainer import accuracy

    if not record.dataset:
        return None, "the record names no dataset"
    try:
        ds = load_dataset(record.dataset)
    except ZooError as exc:
        return None, f"dataset '{record.dataset}' does not load ({exc})"
    module = get_adapter(arch).build(arch)
    module.load_state_dict(weights, strict=True)
    fits = f"dataset '{record.dataset}' (input {'x'.join(map(str, ds.info.input_shape))}, {ds.info.n_classes} classes)"
    try:
        outputs = predict_outputs(module.eval(), ds.x_test[:1])
        if outputs != ds.info.n_classes:  # argmax over another label set: a number that means nothing
            return None, f"{fits} does not fit '{arch}' ({outputs} outputs); fix the record's dataset"
        return float(accuracy(module, ds.x_test, ds.y_test)), ""
    except (RuntimeError, ValueError, IndexError) as exc:  # the record's dataset does not fit its arch
        why = (str(exc).strip().splitlines() or [""])[0][:160]
        return None, f"{fits} does not fit '{arch}' ({why}); fix the record's dataset"


def predict_outputs(module, x) -> int:
    """How many outputs (classes) ``module`` gives for the inputs ``x``."""
    import numpy as np
    import torch

    with torch.no_grad():
        return int(module(torch.tensor(np.asarray(x), dtype=torch.float32)).shape[-1])


def tokenize_report(zoo, checkpoint_id: int, artifact_id: int | None, with_accuracy: bool) -> dict[str, Any]:
    """Tokens of one record and its reconstruction error (weights; accuracy when the data loads)."""
    import torch

    from igpg_zoo.igpg.tokenizer import Tokenizer

    tok = Tokenizer.load(zoo, artifact_id)
    record = zoo.get(checkpoint_id)
    weights = zoo.load_weights(checkpoint_id)
    tokens = tok.encode(weights, record.arch)
    restored = tok.round_trip(weights, record.arch)  # decoded parameters, the record's own buffers
    names = [s.name for s in tok.layout(record.arch).specs]
    diff = torch.cat([(restored[n] - weights[n].float()).reshape(-1) for n in names])
    ref = torch.cat([weights[n].float().reshape(-1) for n in names])
    out: dict[str, Any] = {
        "id": record.id, "arch": record.arch, "dataset": record.dataset, "tokenizer": tok.artifact_id,
        "sequence_length": len(tokens), "vocab_size": tok.vocab_size, "tokens": tokens.tolist(),
        "weight_mse": float(diff.pow(2).mean()), "relative_error": float(diff.norm() / ref.norm().clamp(min=1e-12)),
    }
    if with_accuracy:
        before, skipped = _accuracy(record, weights, record.arch)
        if before is not None:
            after, _ = _accuracy(record, restored, record.arch)
            out.update(acc_before=before, acc_after=after, acc_loss_pp=100 * (before - after))
        elif record.dataset:
            out["accuracy_skipped"] = skipped
    return out


def _print(report: dict[str, Any]) -> None:
    typer.echo(f"#{report['id']} [{report['arch']}] tokenizer artifact {report['tokenizer']}: "
               f"{report['sequence_length']} tokens (vocabulary {report['vocab_size']})")
    typer.echo(" ".join(str(t) for t in report["tokens"]))
    typer.echo(f"weight MSE {report['weight_mse']:.3g}, relative error {report['relative_error']:.3g}")
    if "acc_before" in report:
        typer.echo(f"accuracy on {report['dataset']} (test): {report['acc_before']:.4f} -> {report['acc_after']:.4f} "
                   f"({report['acc_loss_pp']:+.2f} pp lost)")
    if "accuracy_skipped" in report:
        typer.echo(f"accuracy not measured: {report['accuracy_skipped']}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""

    @app.command()
    def tokenize(
        checkpoint_id: Annotated[int, typer.Argument(metavar="ID", help="record id")],
        artifact: Annotated[Optional[int], typer.Option("--artifact", help="tokenizer artifact id (default: latest)")] = None,
        no_accuracy: Annotated[bool, typer.Option("--no-accuracy", help="skip the accuracy check")] = False,
        registry: RegistryOpt = None,
        blobs: BlobsOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Show a model's token sequence and its round-trip error (weight MSE, accuracy before/after)."""
        from igpg_zoo.zoo import open_zoo

        with open_zoo(registry, blobs) as zoo:
            report = tokenize_report(zoo, checkpoint_id, artifact, with_accuracy=not no_accuracy)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            _print(report)
