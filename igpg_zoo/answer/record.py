"""Answers kept in the registry (``answers`` table) so they can be shown and reproduced.

A recorded answer holds its inputs (text, --arch, filters, every setting, the generator artifact,
the data's name and fingerprint), each candidate with its estimate, and the decision with its
reason. ``compose.reproduce`` runs the same inputs again on data with the same fingerprint.
"""

from __future__ import annotations

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
