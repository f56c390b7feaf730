"""The answer to "which weights should I start from?": retrieve, draw, score, decide, write, record.

``answer(zoo, ...)`` is what ``igpg-zoo query`` runs when it has data (``--data``) or is asked to
generate (``--mode generate``). Bad data fails before anything is scored, written or recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import igpg_zoo.answer.candidates as cands
import igpg_zoo.answer.generated as gen
from igpg_zoo.answer.candidates import Candidate
from igpg_zoo.answer.decide import Decision, decide
from igpg_zoo.answer.proposals import Proposal, propose
from igpg_zoo.answer.sample import UserSample, split_sample
from igpg_zoo.answer.settings import MODES, AnswerSettings
from igpg_zoo.errors import ConfigError, DatasetError, GeneratorError

_WILD = set("*?[")


@dataclass
class Answer:
    decision: Decision
    retrieved: list[Candidate]
    generated: list[Candidate]
    inputs: dict[str, Any]
    proposals: list[Proposal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    baselines: list[Candidate] = field(default_factory=list)  # random init of the chosen arch, for reference
    id: int | None = None  # the recorded answer
    out: str | None = None
    weights: dict | None = field(default=None, repr=False)  # the chosen start, head fitted to the data
    sample: UserSample | None = field(default=None, repr=False)

    def weights_of(self, c: Candidate) -> dict:
        """The start ``c`` would hand out (``c.arch``): head fitted on the fit part when there is data."""
        return _handed_out(c, self.sample, self.inputs["settings"]["ridge"])

    @property
    def candidates(self) -> list[Candidate]:
        return self.retrieved + self.generated

    def to_dict(self) -> dict[str, Any]:
        return {"answer_id": self.id, "decision": self.decision.to_dict(), "inputs": self.inputs,
                "candidates": [c.to_dict() for c in self.candidates],
                "baselines": [c.to_dict() for c in self.baselines],
                "proposals": [p.to_dict() for p in self.proposals], "notes": self.notes,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}, "out": self.out}


def check_settings(s: AnswerSettings) -> None:
    from igpg_zoo.answer.estimate import check_estimate

    if s.mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got '{s.mode}'")
    check_estimate(s.estimate)
    for name in ("k", "n_generate", "max_scored", "probe"):
        if getattr(s, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(s, name)}")


def load_sample(data, s: AnswerSettings, label: str = "label") -> UserSample:
    """The user's sample from a path or a loaded Dataset."""
    from igpg_zoo.data.userdata import load_user_data

    ds = load_user_data(data, label=label, seed=s.seed) if isinstance(data, (str, Path)) else data
    return split_sample(ds, s.probe, s.held_fraction, s.seed)


def check_arch(patterns: tuple[str, ...], sample: UserSample | None) -> None:
    """A concrete --arch must take the data as it is: its input shape and at least its classes."""
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.answer.heads import output_count

    for arch in patterns:
        if _WILD & set(arch):
            continue
        get_adapter(arch)  # UnknownArchitecture in one line
        if sample is None:
            continue
        outputs = output_count(arch, sample.input_shape)
        if outputs is None:
            raise DatasetError(f"the data's inputs (shape {sample.input_shape}) do not fit '{arch}'; pick an "
                               "architecture with that input, or leave --arch out to see the ones proposed")
        if outputs < sample.n_classes:
            raise DatasetError(f"the data has {sample.n_classes} classes (labels 0..{sample.n_classes - 1}) but "
                               f"'{arch}' has {outputs} outputs; use one ending in -o{sample.n_classes}")


def _score(c: Candidate, sample: UserSample | None, s: AnswerSettings, weights) -> Candidate:
    from igpg_zoo.answer.estimate import score_model
    from igpg_zoo.answer.heads import transplant

    source_arch = c.record.arch if c.record is not None else c.draw["arch"]
    c.weights = transplant(weights, source_arch, c.arch, s.seed)
    if sample is not None:
        c.scored = score_model(c.arch, c.weights, sample, s.estimate, s.ridge)
        c.estimate, c.held_accuracy = c.scored.value, c.scored.held_accuracy
    return c


def _score_retrieved(zoo, found: list[Candidate], sample: UserSample | None, s: AnswerSettings, write: bool
                     ) -> list[Candidate]:
    """Score stored candidates, reading ``select``'s cache (checkpoint, data fingerprint, estimate) first;
    new scores go into it when the answer is recorded (a write anyway)."""
    if sample is None:
        return [_score(c, None, s, zoo.blobs.load(c.record.sha256)) for c in found]
    cache = zoo.answers.scores(sample.fingerprint, s.estimate, [c.record.id for c in found])
    fresh = {}
    for c in found:
        hit = cache.get(c.record.id)
        if hit is not None and hit[0] == c.record.sha256 and hit[2].get("arch") == c.arch:
            from igpg_zoo.answer.estimate import Scored

            _score(c, None, s, zoo.blobs.load(c.record.sha256))  # weights only; the head is fitted if handed out
            c.estimate, c.held_accuracy, c.cached = hit[1], hit[2].get("held_accuracy"), True
            c.scored = Scored(hit[1], s.estimate, None, c.held_accuracy)
            continue
        _score(c, sample, s, zoo.blobs.load(c.record.sha256))
        fresh[c.record.id] = (c.record.sha256, c.estimate, {"held_accuracy": c.held_accuracy, "arch": c.arch})
    if fresh and write:
        zoo.answers.put_scores(sample.fingerprint, s.estimate, fresh)
    return found


def _rank(found: list[Candidate], has_data: bool) -> list[Candidate]:
    if not has_data:
        return found
    order = {id(c): i for i, c in enumerate(found)}
    return sorted(found, key=lambda c: (-c.estimate, order[id(c)]))


def _generate_for(zoo, patterns, sample, retrieved, s: AnswerSettings, covered: list[str]) -> list[str]:
    """The covered architectures to draw for: matching --arch, else those of the best retrieved."""
    from igpg_zoo.answer.heads import target_arch

    def fits(a: str) -> str | None:
        return target_arch(a, sample.input_shape, sample.n_classes) if sample is not None else a

    usable = [a for a in covered if fits(a) is not None]
    if patterns:
        usable = [a for a in usable if any(fnmatchcase(a, p) or fnmatchcase(fits(a), p) for p in patterns)]
    else:
        seen = [c.record.arch for c in retrieved if c.record is not None]
        usable = sorted(usable, key=lambda a: seen.index(a) if a in seen else len(seen))
    distinct: dict[str, str] = {}  # one source per architecture handed out (o3 and o10 both become o4)
    for a in usable:
        distinct.setdefault(fits(a), a)
    return list(distinct.values())[:s.generate_archs]


def _draws(zoo, archs, sample, text, s: AnswerSettings, prior_id, retrieved) -> tuple[list[Candidate], list[str]]:
    """Scored draws for ``archs``; a replica of a member joins ``retrieved`` as that member instead."""
    from igpg_zoo.answer.heads import target_arch

    out, notes, cache = [], [], {}
    known = {c.record.id: c for c in retrieved if c.record is not None}
    for arch in archs:
        task = text or (sample.dataset.info.description if sample is not None else None)
        for i, d in enumerate(gen.draw(zoo, arch, sample, task, s.n_generate, s.seed, prior_id, cache)):
            near = d.nearest
            replica = near.get("exact_copy_of") or (
                near.get("id") if near.get("relative_distance", 1.0) < s.replica_distance else None)
            info = {"arch": arch, "index": i, "seed": s.seed, "log_likelihood": round(d.log_likelihood, 4),
                    "nearest": near, "replica_of": replica, "prior_artifact_id":
                    d.provenance.get("generator", {}).get("prior_artifact_id")}
            if replica is not None:
                notes.append(f"draw {arch} {i} replicates member #{replica}; it is answered as that member")
                if replica not in known:
                    record = zoo.get(replica)
                    c = Candidate("retrieved", target_arch(record.arch, sample.input_shape, sample.n_classes)
                                  if sample is not None else record.arch, record, draw=info)
                    known[replica] = _score(c, sample, s, zoo.blobs.load(record.sha256))
                    retrieved.append(known[replica])
                continue
            target = target_arch(arch, sample.input_shape, sample.n_classes) if sample is not None else arch
            out.append(_score(Candidate("generated", target, draw=info), sample, s, d.weights))
    if not sample:
        out.sort(key=lambda c: -c.draw["log_likelihood"])
    return out, notes


def _generation(zoo, text, arch, sample, retrieved, s: AnswerSettings, prior_id, seconds: dict
                ) -> tuple[list[Candidate], list[str], list[str]]:
    """Scored draws (none in retrieve mode, or without data in auto mode), notes, and the covered archs."""
    covered = gen.covered_archs(zoo, prior_id) if s.mode != "retrieve" else []
    archs = _generate_for(zoo, arch, sample, retrieved, s, covered) if s.mode != "retrieve" else []
    if s.mode == "generate" and not archs:
        raise GeneratorError("no trained generator covers an architecture for this query; train one "
                             "(igpg-zoo train) or use --mode retrieve")
    if archs and (sample is not None or s.mode == "generate"):
        t0 = time.perf_counter()
        generated, notes = _draws(zoo, archs, sample, text, s, prior_id, retrieved)
        seconds["generate"] = time.perf_counter() - t0
        return generated, notes, covered
    if s.mode == "auto" and sample is not None:
        return [], ["no trained generator in the registry: only stored members were compared" if not covered else
                    "the generator covers no architecture of this query: only stored members were compared"], covered
    return [], [], covered


def answer(zoo, text: str | None = None, data=None, arch: tuple[str, ...] = (), filters: dict | None = None,
           settings: AnswerSettings = AnswerSettings(), out: Path | None = None, fmt: str = "safetensors",
           overwrite: bool = False, record: bool = True, label: str = "label", prior_id: int | None = None
           ) -> Answer:
    """The answer for ``data`` (a path or Dataset; optional) and/or ``text`` within ``filters``; see the package doc."""
    s, filters, arch = settings, dict(filters or {}), tuple(arch or ())
    check_settings(s)
    if out is not None:
        from igpg_zoo.export.weights import check_out

        check_out(fmt, Path(out), overwrite)
    clock = {"start": time.perf_counter()}
    sample = load_sample(data, s, label) if data is not None else None
    check_arch(arch, sample)
    if sample is None and not (text or arch) and s.mode != "generate":
        raise ConfigError("give TEXT, --data PATH or --arch to answer")
    seconds: dict[str, float] = {"data": time.perf_counter() - clock["start"]}
    retrieved = _rank(_score_retrieved(zoo, cands.retrieve(zoo, text, filters, arch, sample, s.all_members,
                                                           s.max_scored), sample, s, record), sample is not None)
    seconds["retrieve"] = time.perf_counter() - clock["start"] - seconds["data"]
    generated, notes, covered = _generation(zoo, text, arch, sample, retrieved, s, prior_id, seconds)
    retrieved = _rank(retrieved, sample is not None)  # replicas of members joined the retrieved
    decision = decide(retrieved, _rank(generated, sample is not None), s.mode, sample is not None,
                      seconds.get("generate"))
    used = next((c.draw.get("prior_artifact_id") for c in [*generated, *retrieved] if c.draw), None)
    inputs = _inputs(text, arch, filters, s, prior_id if prior_id is not None else used, label, sample)
    result = Answer(decision, retrieved, _rank(generated, sample is not None), inputs, notes=notes, seconds=seconds,
                    sample=sample)
    if sample is not None and not arch:
        result.proposals = propose(zoo, sample, covered or gen.covered_archs(zoo, prior_id))
    if sample is not None:
        result.baselines = [_random_init(decision.chosen.arch, sample, s)]
    result.weights = _handed_out(decision.chosen, sample, s.ridge)
    if out is not None:
        result.out = _write(zoo, result, sample, fmt, Path(out), overwrite)
    if record:
        from igpg_zoo.answer.record import record_answer

        result.id = record_answer(zoo, result)
    seconds["total"] = time.perf_counter() - clock["start"]
    return result


def _inputs(text, arch, filters, s: AnswerSettings, prior_id, label, sample) -> dict[str, Any]:
    """What the answer is recorded with: enough to make it again (``reproduce``)."""
    data = None if sample is None else {"name": sample.dataset.name, "fingerprint": sample.fingerprint,
                                        "input_shape": list(sample.input_shape), "n_classes": sample.n_classes}
    return {"text": text, "arch": list(arch), "filters": {k: list(v) for k, v in filters.items()},
            "settings": s.to_dict(), "prior_id": prior_id, "label": label, "data": data}


def _random_init(arch: str, sample: UserSample, s: AnswerSettings) -> Candidate:
    """A seeded fresh initialisation of ``arch``, scored the same way (a reference, never the answer)."""
    import torch

    from igpg_zoo.adapters import get_adapter

    torch.manual_seed(s.seed)
    weights = get_adapter(arch).build(arch).state_dict()
    return _score(Candidate("random", arch, draw={"arch": arch, "index": "init", "seed": s.seed,
                                                   "log_likelihood": None}), sample, s, weights)


def _handed_out(c: Candidate, sample: UserSample | None, ridge: float) -> dict:
    from igpg_zoo.answer.estimate import weights_for_user

    return weights_for_user(c.arch, c.weights, sample, c.scored, ridge) if sample is not None else dict(c.weights)


def _write(zoo, result: Answer, sample, fmt: str, out: Path, overwrite: bool) -> str:
    """Write the chosen start: a retrieved member as it is stored (no data), else its fitted weights."""
    from igpg_zoo.export import export_record, export_weights

    c = result.decision.chosen
    if sample is None and c.record is not None:
        return str(export_record(zoo, c.record.id, fmt, out, overwrite=overwrite).path)
    meta = {"answer": {"choice": result.decision.choice, "reason": result.decision.reason,
                       "data_fingerprint": sample.fingerprint if sample is not None else None},
            "parent_id": c.record.id if c.record is not None else None}
    if c.source == "generated":
        meta.update(kind="generated", provenance={"draw": c.draw})
    return str(export_weights(c.arch, result.weights, fmt, out, meta=meta, overwrite=overwrite).path)


def reproduce(zoo, answer_id: int, data=None):
    """The answer ``answer_id`` made again from its recorded inputs (not recorded again).

    ``data`` (path or Dataset) must be the same data: its sample's fingerprint is checked.
    """
    old = zoo.answers.get(answer_id)
    inputs = old.inputs
    settings = AnswerSettings(**inputs["settings"])
    if (inputs.get("data") is None) != (data is None):
        raise DatasetError(f"answer #{answer_id} was made " + ("with data: give the same --data" if data is None
                                                                else "without data: leave --data out"))
    sample = None
    if data is not None:
        sample = load_sample(data, settings, inputs.get("label") or "label")
        if sample.fingerprint != inputs["data"]["fingerprint"]:
            raise DatasetError(f"this data is not the data of answer #{answer_id} (fingerprint "
                               f"{sample.fingerprint[:12]} vs {inputs['data']['fingerprint'][:12]}); give the same file")
    filters = {k: tuple(v) for k, v in inputs.get("filters", {}).items()}
    return answer(zoo, inputs.get("text"), sample.dataset if sample is not None else None, tuple(inputs["arch"]),
                  filters, settings, record=False, label=inputs.get("label") or "label",
                  prior_id=inputs.get("prior_id"))
