"""What ``train`` and ``generate`` print: progress bars (rich), the prior's set-up notes, one line per sample."""

from __future__ import annotations

import typer


def step_bar(desc: str):
    """A progress callback ``(step, loss)`` drawing a bar on stderr, and its ``close()``.

    The bar appears with the first step, so an error before training prints alone on its line.
    """
    from igpg_zoo.progress import Bar

    bar = Bar(desc, unit="steps")

    def update(step: int, loss: float) -> None:
        bar.set(step)
        bar.note(f"loss {loss:.3f}")

    return update, bar.close


def count_bar(desc: str, unit: str):
    """A progress callback ``(done, total)`` drawing a bar on stderr, and its ``close()``."""
    from igpg_zoo.progress import Bar

    bar = Bar(desc, unit=unit)

    def update(done: int, total: int) -> None:
        bar.set(done, total)
        if done >= total:
            bar.close()  # gone before the training bar starts

    return update, bar.close


def train_lines(prov: dict) -> list[str]:
    """What the prior's set-up skipped or decided, one line each."""
    notes = []
    if "quality" in prov:
        q = prov["quality"]
        notes.append(f"member standings: {q['top']} top half, {q['lower']} lower half, {q['unknown']} unknown "
                     f"of {q['records']}")
    if "recombine_skipped" in prov:
        notes.append(f"no recombination: {prov['recombine_skipped']}")
    elif "recombine_check" in prov:
        c = prov["recombine_check"]
        missing = (f"; {c['records_without_data']} record(s) recombine nothing: their dataset did not load or fit"
                   if c["records_without_data"] else "")
        notes.append(f"recombination checked: {c['kept']} of {c['checked']} swaps kept within {c['tol']:g} of the "
                     f"member's accuracy ({c['candidates']} offered, {c['seconds']} s){missing}")
    return notes


def prior_note(info: dict) -> str:
    """The tail of the train command's prior line: time and final loss, or why nothing trained."""
    if info["final_loss"] is None:  # resumed from a complete checkpoint: registered, nothing trained
        return " (no steps left to train: the checkpoint was complete)"
    return f" ({info['seconds']} s, loss {info['final_loss']:.3f})"


def summary(g, rank: int) -> dict:
    """One generated sample as the JSON report lists it."""
    nb = g.neighbour or {}
    return {"rank": rank, "val_acc": g.val_accuracy, "log_likelihood": g.log_likelihood, "seed": g.provenance["seed"],
            "sample_round": g.provenance["sample_round"], "sample_index": g.provenance["sample_index"],
            "nearest_id": nb.get("id"),
            "nearest_distance": nb.get("distance"), "relative_distance": nb.get("relative_distance"),
            "prediction_agreement": nb.get("prediction_agreement"), "exact_copy_of": nb.get("exact_copy_of")}


def print_result(s: dict) -> None:
    acc = f"val acc {s['val_acc']:.3f}" if s["val_acc"] is not None else "no data to score"
    copy = f"EXACT COPY of #{s['exact_copy_of']}" if s["exact_copy_of"] is not None else "new token sequence"
    near = (f"nearest zoo member #{s['nearest_id']} at distance {s['nearest_distance']:.3g} "
            f"({100 * s['relative_distance']:.1f}% of its norm)") if s["nearest_id"] is not None \
        else "no zoo member of this architecture to compare with"
    agree = (f", agrees on {100 * s['prediction_agreement']:.1f}% of the probe"
             if s.get("prediction_agreement") is not None else "")
    lik = f", prior log-likelihood {s['log_likelihood']:.1f}" if s.get("log_likelihood") is not None else ""
    where = f"{s['sample_round']}.{s['sample_index']}" if s["sample_round"] else str(s["sample_index"])
    typer.echo(f"#{s['rank']} sample {where}: {acc}{lik}; {copy}; {near}{agree}")
