"""Answers kept in the registry (``answers`` table) so they can be shown and reproduced.

A recorded answer holds its inputs (text, --arch, filters, every setting, the generator artifact,
the data's name and fingerprint), each candidate with its estimate, and the decision with its
reason. ``reproduce`` runs the same inputs again on data with the same fingerprint.
"""

from __future__ import annotations

from igpg_zoo.errors import DatasetError
from igpg_zoo.records import RecordedAnswer


def record_answer(zoo, result) -> int:
    """Store ``result`` (an ``Answer``); its id."""
    zoo._writable()
    data = result.inputs.get("data") or {}
    stored = zoo.answers.insert(data.get("fingerprint") or "", result.inputs,
                                [c.to_dict() for c in result.candidates],
                                {**result.decision.to_dict(), "notes": result.notes})
    return stored.id


def recorded(zoo, answer_id: int) -> RecordedAnswer:
    return zoo.answers.get(answer_id)


def reproduce(zoo, answer_id: int, data=None):
    """The answer ``answer_id`` made again from its recorded inputs (not recorded again).

    ``data`` (path or Dataset) must be the same data: its sample's fingerprint is checked.
    """
    from igpg_zoo.answer.compose import answer, load_sample
    from igpg_zoo.answer.settings import AnswerSettings

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
